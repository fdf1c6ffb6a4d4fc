//! `memsim side-channel`: the KSM memory-deduplication side channel (CVE-2021-3714).
//!
//! An attacker VM that knows the contents of some software's pages loads its own copies,
//! waits while ksmd scans, then writes each copy and times the write. If another VM
//! holds the same pages, ksmd has merged the attacker's copies with them and each write
//! takes a copy-on-write fault, which is slow; otherwise the writes are fast. From the
//! timings the attacker guesses whether the victim runs the software.
//!
//! Whether a copy is merged when the attacker writes is not assumed: every trial runs
//! the kernel model of ksmd ([`crate::ksm::ksmd`]) over the VMs' pages with the
//! configuration's sysfs settings ([`trial`]). Only the timing of a write, given
//! merged or not, is a model with documented numbers ([`latency`]). An experiment
//! runs every configuration for `trials` trials and reports, per configuration and wait,
//! how often the attacker's guess was right ([`Row`]).
//!
//! Determinism: each trial's draw (does the victim run the software?) and each
//! probe's timing noise come from streams named after the trial, configuration and
//! wait, and results are gathered in trial order, so the numbers do not depend on the
//! number of threads.

mod format;
mod latency;
mod trial;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::engine::{rng_stream, SimTime};
use crate::scenario::units::format_duration;

pub use format::{load, parse};
pub use latency::{Classifier, LatencyModel};
pub use trial::{draw, merged_copies, Draw};

/// A whole experiment file.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub seed: u64,
    /// Trials per configuration (each wait is probed in every trial).
    pub trials: u32,
    /// N: pages of the software the attacker knows and loads.
    pub target_pages: u32,
    /// How long the attacker waits after loading its copies, increasing.
    pub waits: Vec<SimTime>,
    pub victim: Tenant,
    /// Other VMs that may run the software too (the attacker cannot tell them apart
    /// from the victim: they are where false positives come from).
    pub bystanders: Vec<Tenant>,
    pub attacker: Attacker,
    pub configs: Vec<Config>,
    pub latency: LatencyModel,
    pub classifier: Classifier,
}

/// A VM that may run the software.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    /// Pages besides the software's N.
    pub pages: u32,
    /// Of those, pages of the guest OS every VM holds alike.
    pub common_pages: u32,
    /// Chance that it runs the software in a trial.
    pub runs_software: f64,
    /// When the software is loaded (0 = at boot).
    pub starts_at: SimTime,
    /// QEMU `mem-merge` (memsim's per-VM `ksm:`): guest RAM madvised mergeable.
    pub ksm: bool,
}

/// The attacker's VM.
#[derive(Clone, Debug, PartialEq)]
pub struct Attacker {
    pub pages: u32,
    pub common_pages: u32,
    /// When it writes its copies of the software's pages: at `loads_at` plus a time
    /// drawn uniformly from `[0, load_jitter)` per trial, since the attacker cannot see
    /// where ksmd's scan is.
    pub loads_at: SimTime,
    pub load_jitter: SimTime,
    pub memory: Memory,
}

/// Where the attacker puts its copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Guest memory never touched before: new pages, new rmap_items.
    Fresh,
    /// Guest memory in use since boot: its rmap_items (and smart scan's ages) stay.
    Reused,
}

/// One ksmd configuration: the sysfs knobs that decide how fast pages merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub run: bool,
    pub pages_to_scan: u64,
    pub sleep_millisecs: u64,
    pub smart_scan: bool,
}

impl Default for Config {
    /// Kernel defaults, ksmd running.
    fn default() -> Self {
        Config {
            name: String::new(),
            run: true,
            pages_to_scan: 100,
            sleep_millisecs: 20,
            smart_scan: true,
        }
    }
}

/// How the attacker did in one configuration at one wait.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub config: String,
    pub run: bool,
    pub smart_scan: bool,
    pub wait: SimTime,
    pub trials: u32,
    /// Trials in which the victim ran the software.
    pub victim_runs: u32,
    pub true_positives: u32,
    pub false_positives: u32,
    /// Mean fraction of the attacker's copies merged at the probe, over the trials in
    /// which the victim ran the software (`None` if it never did) and over the others.
    pub merged_when_runs: Option<f64>,
    pub merged_when_not: Option<f64>,
}

impl Row {
    fn true_negatives(&self) -> u32 {
        self.trials - self.victim_runs - self.false_positives
    }

    /// Share of right guesses.
    pub fn accuracy(&self) -> f64 {
        f64::from(self.true_positives + self.true_negatives()) / f64::from(self.trials)
    }

    /// Share of the victims running the software that were detected.
    pub fn true_positive_rate(&self) -> Option<f64> {
        (self.victim_runs > 0).then(|| f64::from(self.true_positives) / f64::from(self.victim_runs))
    }

    /// Share of the victims not running it that were accused.
    pub fn false_positive_rate(&self) -> Option<f64> {
        let idle = self.trials - self.victim_runs;
        (idle > 0).then(|| f64::from(self.false_positives) / f64::from(idle))
    }

    /// Wilson 95 % interval of the accuracy.
    pub fn accuracy_interval(&self) -> (f64, f64) {
        wilson(self.accuracy(), f64::from(self.trials))
    }
}

/// Wilson score interval (z = 1.96) of a proportion `p` out of `n`.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z: f64 = 1.96;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// What the attacker saw in one trial of one configuration, per wait.
struct Probe {
    victim_runs: bool,
    merged: Vec<u32>,
    says_runs: Vec<bool>,
}

/// Runs every configuration of the experiment (trials in parallel) and returns one
/// row per configuration and wait, configurations in file order, waits increasing.
pub fn run(e: &Experiment) -> anyhow::Result<Vec<Row>> {
    let jobs: Vec<(usize, u32)> = (0..e.configs.len())
        .flat_map(|c| (0..e.trials).map(move |t| (c, t)))
        .collect();
    let probes = jobs
        .par_iter()
        .map(|&(c, t)| probe(e, c, t))
        .collect::<anyhow::Result<Vec<Probe>>>()?;
    let mut rows = Vec::new();
    for (c, config) in e.configs.iter().enumerate() {
        let of_config = &probes[c * e.trials as usize..(c + 1) * e.trials as usize];
        for (i, wait) in e.waits.iter().enumerate() {
            rows.push(tally(e, config, *wait, i, of_config));
        }
    }
    Ok(rows)
}

fn probe(e: &Experiment, c: usize, t: u32) -> anyhow::Result<Probe> {
    let config = &e.configs[c];
    let d = draw(e, t);
    let merged = merged_copies(e, config, &d)?;
    let says_runs = merged
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            let label = format!("side-channel/latency/{}/{t}/{i}", config.name);
            let mut rng = rng_stream(e.seed, &label);
            let timings: Vec<f64> = (0..e.target_pages)
                .map(|page| e.latency.sample(&mut rng, page < m))
                .collect();
            e.classifier.says_runs(&timings)
        })
        .collect();
    Ok(Probe {
        victim_runs: d.victim,
        merged,
        says_runs,
    })
}

fn tally(e: &Experiment, config: &Config, wait: SimTime, i: usize, probes: &[Probe]) -> Row {
    let mut row = Row {
        config: config.name.clone(),
        run: config.run,
        smart_scan: config.smart_scan,
        wait,
        trials: probes.len() as u32,
        victim_runs: 0,
        true_positives: 0,
        false_positives: 0,
        merged_when_runs: None,
        merged_when_not: None,
    };
    let (mut merged_runs, mut merged_not) = (0u64, 0u64);
    for p in probes {
        if p.victim_runs {
            row.victim_runs += 1;
            row.true_positives += u32::from(p.says_runs[i]);
            merged_runs += u64::from(p.merged[i]);
        } else {
            row.false_positives += u32::from(p.says_runs[i]);
            merged_not += u64::from(p.merged[i]);
        }
    }
    let n = f64::from(e.target_pages);
    let idle = row.trials - row.victim_runs;
    row.merged_when_runs =
        (row.victim_runs > 0).then(|| merged_runs as f64 / n / f64::from(row.victim_runs));
    row.merged_when_not = (idle > 0).then(|| merged_not as f64 / n / f64::from(idle));
    row
}

/// The accuracy of always answering the likelier case without probing.
pub fn chance(e: &Experiment) -> f64 {
    e.victim.runs_software.max(1.0 - e.victim.runs_software)
}

const CSV_HEADER: &str = "config,run,smart_scan,wait_s,trials,victim_runs,accuracy,accuracy_low,accuracy_high,true_positive_rate,false_positive_rate,merged_when_runs,merged_when_not";

/// `side_channel.csv`: one line per row, fixed decimals (byte-identical across runs).
pub fn csv(rows: &[Row]) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let (lo, hi) = r.accuracy_interval();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.4},{:.4},{:.4},{},{},{},{}",
            csv_field(&r.config),
            u8::from(r.run),
            u8::from(r.smart_scan),
            r.wait.as_secs_f64(),
            r.trials,
            r.victim_runs,
            r.accuracy(),
            lo,
            hi,
            opt(r.true_positive_rate()),
            opt(r.false_positive_rate()),
            opt(r.merged_when_runs),
            opt(r.merged_when_not),
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The terminal table: accuracy, TPR, FPR and merged share per configuration and wait.
pub fn table(e: &Experiment, rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.config.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1} %", v * 100.0));
    let mut out = format!(
        "{} — {} trials per cell, chance {:.1} %\n{:width$}  {:>7}  {:>9}  {:>15}  {:>8}  {:>8}  {:>8}\n",
        e.name,
        e.trials,
        chance(e) * 100.0,
        "config",
        "wait",
        "accuracy",
        "95 % interval",
        "TPR",
        "FPR",
        "merged",
    );
    for r in rows {
        let (lo, hi) = r.accuracy_interval();
        let _ = writeln!(
            out,
            "{:width$}  {:>7}  {:>9}  {:>15}  {:>8}  {:>8}  {:>8}",
            r.config,
            format_duration(r.wait),
            pct(Some(r.accuracy())),
            format!("{:.1}–{:.1} %", lo * 100.0, hi * 100.0),
            pct(r.true_positive_rate()),
            pct(r.false_positive_rate()),
            pct(r.merged_when_runs),
        );
    }
    out
}

/// Writes `side_channel.csv` and `side_channel.png`/`.svg` into `dir`, all staged and
/// renamed into place together. Returns the paths written.
pub fn write(dir: &Path, e: &Experiment, rows: &[Row]) -> anyhow::Result<Vec<PathBuf>> {
    crate::report::comparisons::write_side_channel(dir, e, rows, csv(rows).as_bytes())
}
