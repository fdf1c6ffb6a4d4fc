//! The top of the file: run settings, `host:`, `pvestatd:`, and the order in which the
//! sections are read (host and duration before VMs, whose checks need them).

use std::fs;
use std::path::Path;

use super::actions::actions;
use super::error::{Problem, ScenarioError};
use super::ksm::ksm_config;
use super::located::{self, Node};
use super::read::{
    boolean, choice, fields, positive_duration, size, string, text, uint32, uint64, At, Ctx, Slot,
};
use super::units::{format_duration, format_size, Bare};
use super::vm::{templates, vms, Limits};
use super::{HostConfig, MemusedFormula, PvestatdConfig, Scenario, Thp};
use crate::engine::SimTime;
use crate::policy::Policy;

const ROOT_KEYS: &[&str] = &[
    "name",
    "seed",
    "duration",
    "tick",
    "sample_interval",
    "host",
    "pvestatd",
    "ksm",
    "ksmtuned",
    "qemu_start_target",
    "policy",
    "actions",
    "templates",
    "vms",
    // Read by `memsim sweep` (src/sweep.rs); a plain run ignores it.
    "sweep",
];
const HOST_KEYS: &[&str] = &[
    "memory",
    "reserved",
    "page_cache",
    "qemu_overhead",
    "swap",
    "swappiness",
    "numa_nodes",
    "thp",
    "zfs_arc",
];
const PVESTATD_KEYS: &[&str] = &[
    "enabled",
    "ballooning-target",
    "memused",
    "interval",
    "maxchange",
];

const MIB: u64 = 1 << 20;

/// Reads a scenario file; relative trace paths are relative to its folder.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let (text, file) = read_text(path, "scenario")?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// A YAML input's text and its name for messages; a file that cannot be read is one
/// problem ("cannot read the `what`: …") like any other bad input. Shared by every
/// reader of memsim's YAML files (scenarios, sweeps, side-channel experiments).
pub(crate) fn read_text(path: &Path, what: &str) -> Result<(String, String), ScenarioError> {
    let file = path.display().to_string();
    match fs::read_to_string(path) {
        Ok(text) => Ok((text, file)),
        Err(e) => Err(ScenarioError::new(vec![Problem {
            file,
            line: None,
            path: String::new(),
            message: format!("cannot read the {what}: {e}"),
        }])),
    }
}

/// Parses scenario text. `file` names it in messages and gives the default `name`;
/// relative trace paths are resolved against `base_dir`.
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
    let mut ctx = Ctx::new(file, base_dir);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let scenario = match located::parse(text) {
        Err(e) => {
            ctx.report(e.line, "", e.message);
            None
        }
        Ok(Some(root)) if !root.is_null() => scenario(&mut ctx, &root),
        Ok(_) => {
            let message = "the file is empty; a scenario needs at least duration, host and vms";
            ctx.report(1, "", message);
            None
        }
    };
    match scenario {
        Some(s) if ctx.problems.is_empty() => Ok(s),
        _ => Err(ScenarioError::new(ctx.problems)),
    }
}

fn scenario(ctx: &mut Ctx, root: &Node) -> Option<Scenario> {
    let f = fields(ctx, root, "", ROOT_KEYS)?;
    let name = f.slot(ctx, "name", string).or(default_name(ctx.file));
    let seed = f.slot(ctx, "seed", uint64).or(1);
    let duration = f.required(ctx, "duration", positive_duration);
    let tick = f.slot(ctx, "tick", positive_duration);
    let sample_interval = f.slot(ctx, "sample_interval", positive_duration);
    let (tick, sample_interval) = check_steps(ctx, tick, sample_interval, duration.as_ref());
    let host = f.required_nested(ctx, "host", host);
    let pvestatd = f.nested(ctx, "pvestatd", pvestatd).or(PvestatdConfig {
        enabled: true,
        ballooning_target: 80,
        memused: MemusedFormula::Available,
        interval: SimTime::from_secs(10),
        maxchange: 100 * MIB,
    });
    let ksm = ksm_config(ctx, &f);
    let end = duration.as_ref().map(|d| d.value);
    let actions = match f.get("actions") {
        Some(node) => actions(ctx, node, ksm.as_ref(), end),
        None => Some(Vec::new()),
    };
    let qemu_start_target = f.slot(ctx, "qemu_start_target", boolean).or(true);
    let policy = f.slot(ctx, "policy", |n| {
        text(n, "a policy name")?.parse::<Policy>()
    });
    let templates = f.get("templates").map(|n| templates(ctx, n));
    let limits = Limits {
        host_memory: host.as_ref().map(|h| h.memory),
        duration: duration.as_ref().map(|d| d.value),
    };
    let vms = match f.get("vms") {
        Some(node) => vms(ctx, node, &templates.unwrap_or_default(), &limits),
        None => {
            f.missing(ctx, "vms", " (a scenario needs at least one VM)");
            None
        }
    };
    let mut sc = Scenario {
        name: name?,
        seed: seed?,
        duration: duration?.value,
        tick: tick?,
        sample_interval: sample_interval?,
        host: host?,
        pvestatd: pvestatd?,
        ksm: ksm?,
        mom: None,
        qemu_start_target: qemu_start_target?,
        policy: None,
        vms: vms?,
        actions: actions?,
    };
    if let Some(p) = policy.optional()? {
        p.apply(&mut sc);
    }
    Some(sc)
}

/// The file's stem: `scenarios/quickstart.yaml` is named `quickstart`.
fn default_name(file: &str) -> String {
    let stem = Path::new(file).file_stem().and_then(|s| s.to_str());
    stem.filter(|s| !s.is_empty())
        .unwrap_or("scenario")
        .to_string()
}

/// Applies the defaults of `tick` (1 s) and `sample_interval` (10 s) and checks
/// `tick <= sample_interval` and `tick <= duration`, blaming whichever key was written.
fn check_steps(
    ctx: &mut Ctx,
    tick: Slot<SimTime>,
    sample: Slot<SimTime>,
    duration: Option<&At<SimTime>>,
) -> (Option<SimTime>, Option<SimTime>) {
    let tick_value = tick.clone().or(SimTime::from_secs(1));
    let sample_value = sample.clone().or(SimTime::from_secs(10));
    if let (Some(t), Some(s)) = (tick_value, sample_value) {
        if s < t {
            let (t, s) = (format_duration(t), format_duration(s));
            match (&sample, &tick) {
                (Slot::Set(at), _) => {
                    ctx.report_at(at, format!("{s} is shorter than tick {t}"));
                }
                (_, Slot::Set(at)) => {
                    let message = format!("{t} is longer than the default sample_interval {s}; set sample_interval too");
                    ctx.report_at(at, message);
                }
                _ => {}
            }
        }
    }
    if let (Slot::Set(t), Some(d)) = (&tick, duration) {
        if t.value > d.value {
            let message = format!(
                "{} is longer than duration {}",
                format_duration(t.value),
                format_duration(d.value)
            );
            ctx.report_at(t, message);
        }
    }
    (tick_value, sample_value)
}

fn host(ctx: &mut Ctx, node: &Node, path: &str) -> Option<HostConfig> {
    let f = fields(ctx, node, path, HOST_KEYS)?;
    let sz = size(Bare::Reject);
    let memory = f.required(ctx, "memory", |n| match sz(n)? {
        0 => Err("must be larger than 0".to_string()),
        bytes => Ok(bytes),
    });
    let reserved = f.slot(ctx, "reserved", &sz);
    let zfs_arc = f.slot(ctx, "zfs_arc", &sz);
    let thp = f.slot(
        ctx,
        "thp",
        choice("thp setting", &["never", "madvise", "always"]),
    );
    // Only `memory` is needed by later checks (VM sizes); other invalid keys fall back
    // to their defaults, which never leave `parse` because a problem was reported.
    let host = HostConfig {
        memory: memory?.value,
        reserved: reserved.clone().or(1536 * MIB).unwrap_or_default(),
        page_cache: f
            .slot(ctx, "page_cache", &sz)
            .or(512 * MIB)
            .unwrap_or_default(),
        qemu_overhead: f
            .slot(ctx, "qemu_overhead", &sz)
            .or(150 * MIB)
            .unwrap_or_default(),
        swap: f.slot(ctx, "swap", &sz).or(0).unwrap_or_default(),
        swappiness: f
            .slot(ctx, "swappiness", uint32(0, 200))
            .or(60)
            .unwrap_or_default(),
        numa_nodes: f
            .slot(ctx, "numa_nodes", uint32(1, 64))
            .or(1)
            .unwrap_or_default(),
        thp: match thp.or("madvise") {
            Some("never") => Thp::Never,
            Some("always") => Thp::Always,
            _ => Thp::Madvise,
        },
        zfs_arc: zfs_arc.clone().or(0).unwrap_or_default(),
    };
    if !matches!(reserved, Slot::Invalid) && !matches!(zfs_arc, Slot::Invalid) {
        check_host_room(ctx, &host, &reserved, &zfs_arc);
    }
    Some(host)
}

/// The host OS and the ARC must leave some memory for VMs.
fn check_host_room(ctx: &mut Ctx, host: &HostConfig, reserved: &Slot<u64>, arc: &Slot<u64>) {
    if host.reserved.saturating_add(host.zfs_arc) < host.memory {
        return;
    }
    let message = format!(
        "reserved {} + zfs_arc {} leave nothing of memory {} for VMs",
        format_size(host.reserved),
        format_size(host.zfs_arc),
        format_size(host.memory)
    );
    match (arc, reserved) {
        (Slot::Set(at), _) | (_, Slot::Set(at)) => ctx.report_at(at, message),
        _ => {}
    }
}

fn pvestatd(ctx: &mut Ctx, node: &Node, path: &str) -> Option<PvestatdConfig> {
    let f = fields(ctx, node, path, PVESTATD_KEYS)?;
    let enabled = f.slot(ctx, "enabled", boolean).or(true);
    let target = f.slot(ctx, "ballooning-target", uint32(0, 100)).or(80);
    let memused = f.slot(
        ctx,
        "memused",
        choice("memused formula", &["available", "legacy"]),
    );
    let interval = f
        .slot(ctx, "interval", positive_duration)
        .or(SimTime::from_secs(10));
    let maxchange = f.slot(ctx, "maxchange", |n| match size(Bare::Reject)(n)? {
        0 => Err("must be larger than 0 (to stop auto-ballooning, set enabled: false)".to_string()),
        bytes => Ok(bytes),
    });
    Some(PvestatdConfig {
        enabled: enabled?,
        ballooning_target: target?,
        memused: match memused.or("available")? {
            "legacy" => MemusedFormula::Legacy,
            _ => MemusedFormula::Available,
        },
        interval: interval?,
        maxchange: maxchange.or(100 * MIB)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_is_the_stem() {
        assert_eq!(default_name("scenarios/quickstart.yaml"), "quickstart");
        assert_eq!(default_name(""), "scenario");
    }
}
