//! `ksm:` (the sysfs values at host boot) and `ksmtuned:` (the daemon, or `off`).
//!
//! Every `ksm:` value is checked by writing it to a freshly booted simulated kernel
//! ([`crate::ksm::Ksmd::set`]), so the scenario accepts exactly what
//! `/sys/kernel/mm/ksm` accepts. ksmtuned settings use the names of
//! `/etc/ksmtuned.conf` (`KSM_THRES_COEF`, ...) and are read by the same parser as a
//! real configuration file.

use super::located::{Node, Value};
use super::read::{choice, fields, int, string, text, At, Ctx, Fields, Slot};
use super::{KsmConfig, KsmtunedConfig};
use crate::engine::SimTime;
use crate::ksm::timing::AdvisorMode;
use crate::ksm::{Ksmd, Sysfs, Tunables};
use crate::ksmtuned::{load_conf, Config, Variant};

/// The sysfs files a scenario may set, in the order they are applied.
const SYSFS_KEYS: &[&str] = &[
    "max_page_sharing",
    "merge_across_nodes",
    "smart_scan",
    "use_zero_pages",
    "stable_node_chains_prune_millisecs",
    "sleep_millisecs",
    "advisor_target_scan_time",
    "advisor_max_cpu",
    "advisor_min_pages_to_scan",
    "advisor_max_pages_to_scan",
    "advisor_mode",
    "pages_to_scan",
    "run",
];

/// `/etc/ksmtuned.conf` settings accepted inline.
const CONF_KEYS: &[&str] = &[
    "KSM_MONITOR_INTERVAL",
    "KSM_NPAGES_BOOST",
    "KSM_NPAGES_DECAY",
    "KSM_NPAGES_MIN",
    "KSM_NPAGES_MAX",
    "KSM_SLEEP_MSEC",
    "KSM_THRES_COEF",
    "KSM_THRES_CONST",
    "KSM_PS_METRIC",
];

const VARIANTS: &[&str] = &[
    "off",
    "proxmox",
    "proxmox-1.4",
    "fedora",
    "debian",
    "original-2010",
];

/// Reads both sections; `ksmtuned` defaults to Proxmox's daemon (`proxmox`), as a
/// Proxmox VE host runs it.
pub(crate) fn ksm_config(ctx: &mut Ctx, root: &Fields) -> Option<KsmConfig> {
    let sysfs = root.nested(ctx, "ksm", sysfs).or(Tunables::default());
    let ksmtuned = root
        .nested(ctx, "ksmtuned", ksmtuned)
        .or(Some(KsmtunedConfig {
            variant: Variant::Proxmox,
            conf: Config::default(),
        }));
    Some(KsmConfig {
        sysfs: sysfs?,
        ksmtuned: ksmtuned?,
    })
}

fn sysfs(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Tunables> {
    let (writes, ok) = sysfs_writes(ctx, node, path)?;
    let mut kernel = Ksmd::default();
    let accepted = kernel_accepts(ctx, &mut kernel, SimTime::ZERO, &writes);
    (ok && accepted).then(|| *kernel.tunables())
}

/// The valid writes a mapping of sysfs files stands for, in [`SYSFS_KEYS`] order, and
/// whether every key and value was valid (the bad ones are reported); `None` when the
/// node is no mapping.
pub(super) fn sysfs_writes(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> Option<(Vec<At<Sysfs>>, bool)> {
    let f = fields(ctx, node, path, SYSFS_KEYS)?;
    let mut writes = Vec::new();
    let mut ok = true;
    for key in SYSFS_KEYS {
        match f.slot(ctx, key, |n| sysfs_write(key, n)) {
            Slot::Set(at) => writes.push(at),
            Slot::Invalid => ok = false,
            Slot::Unset => {}
        }
    }
    Some((writes, ok))
}

/// Writes `writes` to `kernel` at `now`, reporting each one it refuses; whether it
/// took them all.
pub(super) fn kernel_accepts(
    ctx: &mut Ctx,
    kernel: &mut Ksmd,
    now: SimTime,
    writes: &[At<Sysfs>],
) -> bool {
    let mut ok = true;
    for at in writes {
        if let Err(e) = kernel.set(now, at.value) {
            ctx.report_at(at, format!("the kernel refuses this value ({e})"));
            ok = false;
        }
    }
    ok
}

/// The write a `ksm:` key stands for: numbers as the kernel reads them, plus
/// `advisor_mode: none | scan-time`.
fn sysfs_write(key: &str, node: &Node) -> Result<Sysfs, String> {
    if key == "advisor_mode" {
        let mode = choice("advisor mode", &["none", "scan-time"])(node)?;
        return Ok(Sysfs::AdvisorMode(match mode {
            "scan-time" => AdvisorMode::ScanTime,
            _ => AdvisorMode::None,
        }));
    }
    let v = int(0, i64::from(u32::MAX))(node)? as u64;
    Ok(match key {
        "run" if v > 2 => return Err("must be 0 (stop), 1 (run) or 2 (unmerge all)".into()),
        "run" => Sysfs::Run(v),
        "pages_to_scan" if v == 0 => {
            return Err("must be at least 1 (ksmd would scan nothing)".into())
        }
        "pages_to_scan" => Sysfs::PagesToScan(v),
        "sleep_millisecs" => Sysfs::SleepMillisecs(v),
        "smart_scan" => Sysfs::SmartScan(v),
        "use_zero_pages" => Sysfs::UseZeroPages(v),
        "max_page_sharing" => Sysfs::MaxPageSharing(v),
        "merge_across_nodes" => Sysfs::MergeAcrossNodes(v),
        "stable_node_chains_prune_millisecs" => Sysfs::StableNodeChainsPruneMillisecs(v),
        "advisor_target_scan_time" => Sysfs::AdvisorTargetScanTime(v),
        "advisor_max_cpu" => Sysfs::AdvisorMaxCpu(v),
        "advisor_min_pages_to_scan" => Sysfs::AdvisorMinPagesToScan(v),
        _ => Sysfs::AdvisorMaxPagesToScan(v),
    })
}

/// `ksmtuned: off | VARIANT | {variant, conf, KSM_...}`; `None` inside = off.
pub(super) fn ksmtuned(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Option<KsmtunedConfig>> {
    if let Value::Scalar { .. } = node.value {
        return match choice("ksmtuned variant", VARIANTS)(node) {
            Ok(name) => Some(variant(name).map(|variant| KsmtunedConfig {
                variant,
                conf: Config::default(),
            })),
            Err(message) => {
                ctx.report(node.line, path, message);
                None
            }
        };
    }
    let mut keys = vec!["variant", "conf"];
    keys.extend_from_slice(CONF_KEYS);
    let f = fields(ctx, node, path, &keys)?;
    let name = f.slot(ctx, "variant", choice("ksmtuned variant", VARIANTS));
    let file = f.slot(ctx, "conf", string);
    let mut bad = matches!(name, Slot::Invalid);
    let mut conf = match file {
        Slot::Set(at) => load_conf(ctx.base_dir.join(&at.value)).unwrap_or_else(|e| {
            ctx.report_at(&at, e.to_string().replace('\n', "; "));
            bad = true;
            Config::default()
        }),
        Slot::Invalid => {
            bad = true;
            Config::default()
        }
        Slot::Unset => Config::default(),
    };
    for key in CONF_KEYS {
        let Some(value) = f.get(key) else { continue };
        match inline_setting(key, value) {
            Ok(one) => overlay(&mut conf, &one),
            Err(message) => {
                ctx.report(value.line, &f.child(key), message);
                bad = true;
            }
        }
    }
    if bad {
        return None;
    }
    let variant = variant(name.or("proxmox")?);
    Some(variant.map(|variant| KsmtunedConfig { variant, conf }))
}

fn variant(name: &str) -> Option<Variant> {
    (name != "off").then(|| name.parse().expect("VARIANTS lists only known variants"))
}

/// One `KSM_...: value` line read as ksmtuned.conf would hold it.
fn inline_setting(key: &str, node: &Node) -> Result<Config, String> {
    let value = text(node, "a value as in ksmtuned.conf")?;
    Config::parse(&format!("{key}={value}")).map_err(|problems| {
        let messages: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        messages.join("; ")
    })
}

/// `one`'s settings over `conf`'s.
fn overlay(conf: &mut Config, one: &Config) {
    macro_rules! over {
        ($($field:ident),*) => {$(
            if one.$field.is_some() {
                conf.$field = one.$field.clone();
            }
        )*};
    }
    over!(
        monitor_interval,
        npages_boost,
        npages_decay,
        npages_min,
        npages_max,
        sleep_msec,
        thres_coef,
        thres_const,
        ps_metric
    );
}
