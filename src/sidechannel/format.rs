//! The side-channel experiment file (`scenarios/ksm-side-channel.yaml`): read with the
//! scenario loader's located tree, so every problem is reported at once as
//! `file:line: key.path: message` (see `docs/side-channel.md` for the keys).
//!
//! sysfs values are checked by writing them to a scratch [`Ksmd`]: what the simulated
//! kernel refuses (`pages_to_scan: 0`) is refused here with the key that asked for it.

use std::path::Path;

use super::{Attacker, Classifier, Config, Experiment, LatencyModel, Memory, Tenant};
use crate::engine::SimTime;
use crate::ksm::{Ksmd, Sysfs};
use crate::scenario::located::{self, Node};
use crate::scenario::read::{
    boolean, choice, duration, fields, fraction, int, list, string, uint64, At, Ctx, Fields, Slot,
};
use crate::scenario::units::format_duration;
use crate::scenario::ScenarioError;

const ROOT_KEYS: &[&str] = &[
    "name",
    "seed",
    "trials",
    "target_pages",
    "waits",
    "victim",
    "bystanders",
    "attacker",
    "configs",
    "latency",
    "classifier",
];
const TENANT_KEYS: &[&str] = &["pages", "common_pages", "runs_software", "starts_at", "ksm"];
const BYSTANDER_KEYS: &[&str] = &[
    "count",
    "pages",
    "common_pages",
    "runs_software",
    "starts_at",
    "ksm",
];
const ATTACKER_KEYS: &[&str] = &["pages", "common_pages", "loads_at", "load_jitter", "memory"];
const CONFIG_KEYS: &[&str] = &[
    "name",
    "run",
    "pages_to_scan",
    "sleep_millisecs",
    "smart_scan",
];
const LATENCY_KEYS: &[&str] = &[
    "write_median_ns",
    "cow_median_ns",
    "spread",
    "interference_probability",
    "interference_mean_ns",
];
const CLASSIFIER_KEYS: &[&str] = &["threshold_ns", "min_slow_fraction"];

/// Most trials per configuration and wait.
pub const MAX_TRIALS: i64 = 100_000;
/// Most pages of one VM (the simulator holds 18 bytes per page; a trial is one ksmd).
pub const MAX_VM_PAGES: i64 = 1 << 20;
/// Most pages of the software.
pub const MAX_TARGET_PAGES: i64 = 65_536;
/// Latest simulated time a trial may reach (attacker load + longest wait).
pub const MAX_SPAN: SimTime = SimTime::from_secs(3_600);

/// Reads an experiment file.
pub fn load(path: &Path) -> Result<Experiment, ScenarioError> {
    let (text, file) = crate::scenario::read_text(path, "experiment")?;
    parse(&text, &file)
}

/// Parses experiment text; `file` names it in messages.
pub fn parse(text: &str, file: &str) -> Result<Experiment, ScenarioError> {
    let mut ctx = Ctx::new(file, Path::new("."));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let experiment = match located::parse(text) {
        Err(e) => {
            ctx.report(e.line, "", e.message);
            None
        }
        Ok(Some(root)) if !root.is_null() => experiment(&mut ctx, &root),
        Ok(_) => {
            ctx.report(1, "", "the file is empty; an experiment needs at least trials, target_pages, waits, victim, attacker and configs");
            None
        }
    };
    match experiment {
        Some(e) if ctx.problems.is_empty() => Ok(e),
        _ => Err(ScenarioError::new(ctx.problems)),
    }
}

fn experiment(ctx: &mut Ctx, root: &Node) -> Option<Experiment> {
    let f = fields(ctx, root, "", ROOT_KEYS)?;
    let name = f.required(ctx, "name", string);
    let seed = f.slot(ctx, "seed", uint64).or(0);
    let trials = f.required(ctx, "trials", int(1, MAX_TRIALS));
    let target_pages = f.required(ctx, "target_pages", int(1, MAX_TARGET_PAGES));
    let waits = f.required_nested(ctx, "waits", waits);
    let victim = f.required_nested(ctx, "victim", |c, n, p| tenant(c, n, p, TENANT_KEYS));
    let bystanders = f.nested(ctx, "bystanders", bystanders).optional();
    let attacker = f.required_nested(ctx, "attacker", attacker);
    let configs = f.required_nested(ctx, "configs", configs);
    let latency = f
        .nested(ctx, "latency", latency)
        .or(LatencyModel::default());
    let classifier = f
        .nested(ctx, "classifier", classifier)
        .or(Classifier::default());
    let e = Experiment {
        name: name?.value,
        seed: seed?,
        trials: trials?.value as u32,
        target_pages: target_pages?.value as u32,
        waits: waits?,
        victim: victim?,
        bystanders: bystanders?.map_or_else(Vec::new, |(n, b)| vec![b; n]),
        attacker: attacker?,
        configs: configs?,
        latency: latency?,
        classifier: classifier?,
    };
    check_span(ctx, &f, &e);
    Some(e)
}

/// The attacker's last probe must stay within [`MAX_SPAN`].
fn check_span(ctx: &mut Ctx, f: &Fields, e: &Experiment) {
    let last = e.waits.last().copied().unwrap_or(SimTime::ZERO);
    let latest = e.attacker.loads_at + e.attacker.load_jitter + last;
    if latest > MAX_SPAN {
        let line = f.get("waits").map_or(f.line, |n| n.line);
        let message = format!(
            "attacker.loads_at + load_jitter + the longest wait is {}, more than the {} a trial may simulate",
            format_duration(latest),
            format_duration(MAX_SPAN)
        );
        ctx.report(line, "waits", message);
    }
}

/// A non-empty list of strictly increasing durations.
fn waits(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<SimTime>> {
    let items = match list(node, "a list of durations such as [1s, 5s, 20s]") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, path, message);
            return None;
        }
    };
    if items.is_empty() {
        ctx.report(node.line, path, "needs at least one wait");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match duration(item) {
            Ok(t) if out.last().is_some_and(|prev: &SimTime| *prev >= t) => {
                ctx.report(item.line, &item_path, "waits must increase");
                ok = false;
            }
            Ok(t) => out.push(t),
            Err(message) => {
                ctx.report(item.line, &item_path, message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn vm_pages(ctx: &mut Ctx, f: &Fields) -> Option<(u32, u32)> {
    let pages = f.required(ctx, "pages", int(0, MAX_VM_PAGES));
    let common = f.slot(ctx, "common_pages", int(0, MAX_VM_PAGES));
    let pages = pages?.value as u32;
    match common {
        Slot::Set(at) if at.value as u32 > pages => {
            let message = format!("{} common pages do not fit in {pages} pages", at.value);
            ctx.report_at(&at, message);
            None
        }
        Slot::Set(at) => Some((pages, at.value as u32)),
        Slot::Unset => Some((pages, 0)),
        Slot::Invalid => None,
    }
}

fn tenant(ctx: &mut Ctx, node: &Node, path: &str, keys: &[&str]) -> Option<Tenant> {
    let f = fields(ctx, node, path, keys)?;
    tenant_of(ctx, &f)
}

fn tenant_of(ctx: &mut Ctx, f: &Fields) -> Option<Tenant> {
    let pages = vm_pages(ctx, f);
    let runs = f.slot(ctx, "runs_software", fraction).or(0.5);
    let starts_at = f.slot(ctx, "starts_at", duration).or(SimTime::ZERO);
    let ksm = f.slot(ctx, "ksm", boolean).or(true);
    let (pages, common_pages) = pages?;
    Some(Tenant {
        pages,
        common_pages,
        runs_software: runs?,
        starts_at: starts_at?,
        ksm: ksm?,
    })
}

fn bystanders(ctx: &mut Ctx, node: &Node, path: &str) -> Option<(usize, Tenant)> {
    let f = fields(ctx, node, path, BYSTANDER_KEYS)?;
    let count = f.required(ctx, "count", int(0, 16));
    let t = tenant_of(ctx, &f);
    Some((count?.value as usize, t?))
}

fn attacker(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Attacker> {
    let f = fields(ctx, node, path, ATTACKER_KEYS)?;
    let pages = vm_pages(ctx, &f);
    let loads_at = f.required(ctx, "loads_at", duration);
    let jitter = f.slot(ctx, "load_jitter", duration).or(SimTime::ZERO);
    let memory = f
        .slot(ctx, "memory", choice("memory", &["fresh", "reused"]))
        .or("fresh");
    let (pages, common_pages) = pages?;
    Some(Attacker {
        pages,
        common_pages,
        loads_at: loads_at?.value,
        load_jitter: jitter?,
        memory: if memory? == "fresh" {
            Memory::Fresh
        } else {
            Memory::Reused
        },
    })
}

fn configs(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<Config>> {
    let items = match list(node, "a list of ksmd configurations") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, path, message);
            return None;
        }
    };
    if items.is_empty() {
        ctx.report(node.line, path, "needs at least one configuration");
        return None;
    }
    let mut out: Vec<Config> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match config(ctx, item, &item_path) {
            Some((c, at)) if out.iter().any(|o| o.name == c.name) => {
                ctx.report_at(&at, format!("duplicate configuration name {:?}", c.name));
                ok = false;
            }
            Some((c, _)) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// One configuration; its name with its place, for the duplicate check.
fn config(ctx: &mut Ctx, node: &Node, path: &str) -> Option<(Config, At<String>)> {
    let f = fields(ctx, node, path, CONFIG_KEYS)?;
    let name = f.required(ctx, "name", string);
    let run = f.required(ctx, "run", int(0, 1));
    let defaults = Config::default();
    let knob = |ctx: &mut Ctx, key: &str, default: u64, write: fn(u64) -> Sysfs| {
        let at = f.slot(ctx, key, uint64).optional()?;
        let Some(v) = at else {
            return Some(default);
        };
        let mut scratch = Ksmd::new(1);
        match scratch.set(SimTime::ZERO, write(v)) {
            Ok(()) => Some(v),
            Err(e) => {
                let line = f.get(key).map_or(f.line, |n| n.line);
                let message = format!("the kernel refuses {v} ({e})");
                ctx.report(line, &f.child(key), message);
                None
            }
        }
    };
    let pages_to_scan = knob(
        ctx,
        "pages_to_scan",
        defaults.pages_to_scan,
        Sysfs::PagesToScan,
    );
    let sleep = knob(
        ctx,
        "sleep_millisecs",
        defaults.sleep_millisecs,
        Sysfs::SleepMillisecs,
    );
    let smart = knob(
        ctx,
        "smart_scan",
        u64::from(defaults.smart_scan),
        Sysfs::SmartScan,
    );
    let name = name?;
    let config = Config {
        name: name.value.clone(),
        run: run?.value == 1,
        pages_to_scan: pages_to_scan?,
        sleep_millisecs: sleep?,
        smart_scan: smart? == 1,
    };
    Some((config, name))
}

fn latency(ctx: &mut Ctx, node: &Node, path: &str) -> Option<LatencyModel> {
    let f = fields(ctx, node, path, LATENCY_KEYS)?;
    let d = LatencyModel::default();
    let ns = |ctx: &mut Ctx, key: &str, default: f64| {
        f.slot(ctx, key, int(1, 1_000_000_000))
            .optional()
            .map(|v| v.map_or(default, |v| v as f64))
    };
    let write = ns(ctx, "write_median_ns", d.write_median_ns);
    let cow = ns(ctx, "cow_median_ns", d.cow_median_ns);
    let spread = f.slot(ctx, "spread", fraction).or(d.spread);
    let p = f
        .slot(ctx, "interference_probability", fraction)
        .or(d.interference_probability);
    let mean = ns(ctx, "interference_mean_ns", d.interference_mean_ns);
    Some(LatencyModel {
        write_median_ns: write?,
        cow_median_ns: cow?,
        spread: spread?,
        interference_probability: p?,
        interference_mean_ns: mean?,
    })
}

fn classifier(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Classifier> {
    let f = fields(ctx, node, path, CLASSIFIER_KEYS)?;
    let d = Classifier::default();
    let threshold = f.slot(ctx, "threshold_ns", int(1, 1_000_000_000));
    let min = f.slot(ctx, "min_slow_fraction", fraction);
    let min = match min {
        Slot::Set(at) if at.value == 0.0 => {
            ctx.report_at(&at, "must be above 0 (0 would always answer \"runs\")");
            None
        }
        other => other.or(d.min_slow_fraction),
    };
    Some(Classifier {
        threshold_ns: threshold.optional()?.map_or(d.threshold_ns, |v| v as f64),
        min_slow_fraction: min?,
    })
}
