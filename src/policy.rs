//! Memory-overcommit policies as named presets, so that runs under each can be compared
//! on the same scenario and seeds (`memsim compare`, a `policy:` key, a swept `policy`).
//!
//! A policy decides which controllers move guest memory — pvestatd's auto-ballooning,
//! ksmd and who drives it, free page reporting — and leaves everything else in the
//! scenario alone. Each policy is one file with one `apply(&mut Scenario)`; adding a
//! policy is a file, a variant and a line in [`Policy::ALL`].

mod balloon;
mod both;
mod free_page_reporting;
mod ksm;
mod ksm_always;
mod mom;
mod none;

use std::fmt;
use std::str::FromStr;

use crate::ksmtuned::{Config, Variant};
use crate::scenario::{KsmtunedConfig, Scenario};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    None,
    Balloon,
    Ksm,
    Both,
    KsmAlways,
    FreePageReporting,
    Mom,
}

impl Policy {
    /// Every policy, in the order comparisons list them.
    pub const ALL: [Policy; 7] = [
        Policy::None,
        Policy::Balloon,
        Policy::Ksm,
        Policy::Both,
        Policy::KsmAlways,
        Policy::FreePageReporting,
        Policy::Mom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Balloon => "balloon",
            Policy::Ksm => "ksm",
            Policy::Both => "both",
            Policy::KsmAlways => "ksm-always",
            Policy::FreePageReporting => "free-page-reporting",
            Policy::Mom => "mom",
        }
    }

    /// One line for `--help` and reports.
    pub fn summary(self) -> &'static str {
        match self {
            Policy::None => "no balloon moves (guests at full size), no KSM",
            Policy::Balloon => "pvestatd auto-ballooning, no KSM",
            Policy::Ksm => "ksmd driven by ksmtuned, no auto-ballooning",
            Policy::Both => "auto-ballooning and ksmtuned (the Proxmox default)",
            Policy::KsmAlways => "ksmd always on at the scenario's ksm: rate, no ksmtuned",
            Policy::FreePageReporting => {
                "free page reporting in every guest, no auto-ballooning, no KSM"
            }
            Policy::Mom => "oVirt MOM's balloon and KSM policies (vdsm's, ballooning on)",
        }
    }

    /// The scenario as run under this policy.
    pub fn apply(self, sc: &mut Scenario) {
        match self {
            Policy::None => none::apply(sc),
            Policy::Balloon => balloon::apply(sc),
            Policy::Ksm => ksm::apply(sc),
            Policy::Both => both::apply(sc),
            Policy::KsmAlways => ksm_always::apply(sc),
            Policy::FreePageReporting => free_page_reporting::apply(sc),
            Policy::Mom => mom::apply(sc),
        }
        sc.policy = Some(self);
    }

    /// Names as the command line and scenarios write them.
    pub fn names() -> Vec<&'static str> {
        Policy::ALL.iter().map(|p| p.name()).collect()
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown policy \"{s}\" (valid: {})",
                    Policy::names().join(", ")
                )
            })
    }
}

/// Neither pvestatd nor MOM moves balloons, and guests start at full size: without
/// auto-ballooning nothing would grow them back from qemu-server's start-up target.
fn balloon_off(sc: &mut Scenario) {
    sc.pvestatd.enabled = false;
    sc.mom = None;
    sc.qemu_start_target = false;
}

/// Nobody runs ksmd; the scenario's admin actions, which all concern KSM, go too.
fn ksm_off(sc: &mut Scenario) {
    sc.ksm.sysfs.run = 0;
    sc.ksm.ksmtuned = None;
    sc.mom = None;
    sc.actions.clear();
}

/// ksmtuned as the scenario configures it, or Proxmox's when the scenario turned it off.
fn ksmtuned_on(sc: &mut Scenario) {
    sc.ksm.ksmtuned.get_or_insert_with(|| KsmtunedConfig {
        variant: Variant::Proxmox,
        conf: Config::default(),
    });
}
