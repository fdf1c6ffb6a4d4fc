//! KSM-only workloads: the format of `../shared/data/ksm-real/FORMAT.md`.
//!
//! One file (JSON, hence also YAML) describes processes, each with one private
//! anonymous mapping laid out from segments of page contents, when it is marked
//! `MADV_MERGEABLE`, unmerged or exits, and writers that rewrite pages. The same
//! workload runs in the simulator (`memsim ksm-trace`) and on the real kernel
//! (`memsim ksm-trace --real`), so the two traces can be compared counter by counter.
//!
//! Contents are numbers: content `T` is one fixed non-zero page; `unique` pages equal
//! nothing else; no numbered content equals the zero page.
//!
//! [`load_workload`] reads a file and reports every problem at once, each naming its
//! key (`processes[1].writers[0].range: …`). Beyond the recordings' format a workload
//! may carry a `seed` (default 0) for the simulator's random writers.

use std::path::Path;

use serde::Deserialize;

/// A whole workload file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    /// Run length in seconds (≤ 120 for real runs).
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// One row every this many milliseconds.
    #[serde(default = "default_sample_ms")]
    pub sample_ms: u64,
    /// Also one row whenever `full_scans` changes.
    #[serde(default)]
    pub row_on_full_scan: bool,
    /// How often the real runner polls `full_scans` for that.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// sysfs settings applied before the start; absent = kernel default.
    #[serde(default)]
    pub ksm: KsmSettings,
    pub processes: Vec<Process>,
    /// Seed of the simulator's random streams (random writers); absent = 0.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_duration() -> f64 {
    20.0
}
fn default_sample_ms() -> u64 {
    100
}
fn default_poll_ms() -> u64 {
    5
}

/// `/sys/kernel/mm/ksm` tunables a workload may set; `None` = leave the kernel default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KsmSettings {
    pub pages_to_scan: Option<u64>,
    pub sleep_millisecs: Option<u64>,
    pub smart_scan: Option<u8>,
    pub use_zero_pages: Option<u8>,
    pub max_page_sharing: Option<u64>,
    pub merge_across_nodes: Option<u8>,
    pub stable_node_chains_prune_millisecs: Option<u64>,
    pub advisor_mode: Option<String>,
    pub advisor_target_scan_time: Option<u64>,
    pub advisor_min_pages_to_scan: Option<u64>,
    pub advisor_max_pages_to_scan: Option<u64>,
    pub advisor_max_cpu: Option<u64>,
}

/// One process (one mm) with one private anonymous mapping.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub name: String,
    /// Laid out back to back. Empty when the `pages` shorthand is used.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Shorthand: `shared_fraction × pages` pages of content `template`, then unique.
    pub pages: Option<u64>,
    pub shared_fraction: Option<f64>,
    pub template: Option<u64>,
    /// When the mapping is marked `MADV_MERGEABLE` (0 = before ksmd starts).
    #[serde(default)]
    pub madvise_at_s: f64,
    pub unmerge_at_s: Option<f64>,
    pub exit_at_s: Option<f64>,
    #[serde(default)]
    pub writers: Vec<Writer>,
}

/// A run of pages in a process's mapping.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Segment {
    /// `pages` pages that all hold content `id`.
    Template { id: u64, pages: u64 },
    /// Page `i` holds content `base + (i mod k)`.
    Distinct { k: u64, base: u64, pages: u64 },
    /// Every page different from every other page anywhere.
    Unique { pages: u64 },
    /// Zero-filled and faulted in.
    Zero { pages: u64 },
    /// Mapped, never touched: not present, never scanned.
    Untouched { pages: u64 },
}

/// Every `every_ms`, write `pages_per_tick` pages of indices `[range.0, range.1)`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Writer {
    pub range: (u64, u64),
    pub pages_per_tick: u64,
    pub every_ms: u64,
    pub mode: WriteMode,
    #[serde(default)]
    pub order: WriteOrder,
    #[serde(default)]
    pub start_s: f64,
    pub stop_s: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// New random content each write (stays volatile).
    Random,
    /// Rewrite the page's own original content (breaks COW, content unchanged).
    Restore,
    /// A unique marker once per page (breaks COW; later ticks skip flipped pages).
    FlipOnce,
    /// Increment the first byte (content changes every write).
    Byte,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOrder {
    #[default]
    Cycle,
    Random,
}

/// One problem with a workload: the key it concerns and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `processes[0].writers[1].range`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Largest numbered content (`template` id, `distinct` base + k − 1) the simulator takes.
pub const MAX_CONTENT_ID: u64 = (1 << 62) - 2;
/// Most pages of all processes together (512 GiB of 4 KiB pages; the simulator holds
/// 18 bytes per page).
pub const MAX_PAGES: u64 = 1 << 27;
/// Most rows a workload may ask for (`duration_s` / `sample_ms`).
pub const MAX_SAMPLES: u64 = 2_000_000;

/// Reads a workload file (JSON or YAML), checks it and returns it, or every problem
/// found (file name first in the key).
pub fn load_workload(path: impl AsRef<Path>) -> Result<Workload, Vec<Problem>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![problem(path.display().to_string(), e.to_string())])?;
    parse_workload(&text)
}

/// Parses and checks a workload given as JSON or YAML text.
pub fn parse_workload(text: &str) -> Result<Workload, Vec<Problem>> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| vec![problem("", format!("not JSON/YAML: {e}"))])?;
    let mut problems = Vec::new();
    check_shape(&value, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let w: Workload =
        serde_yaml::from_value(value).map_err(|e| vec![problem("", e.to_string())])?;
    let problems = validate(&w);
    if problems.is_empty() {
        Ok(w)
    } else {
        Err(problems)
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "duration_s",
    "sample_ms",
    "row_on_full_scan",
    "poll_ms",
    "ksm",
    "processes",
    "seed",
];
const KSM_KEYS: &[&str] = &[
    "pages_to_scan",
    "sleep_millisecs",
    "smart_scan",
    "use_zero_pages",
    "max_page_sharing",
    "merge_across_nodes",
    "stable_node_chains_prune_millisecs",
    "advisor_mode",
    "advisor_target_scan_time",
    "advisor_min_pages_to_scan",
    "advisor_max_pages_to_scan",
    "advisor_max_cpu",
];
const PROCESS_KEYS: &[&str] = &[
    "name",
    "segments",
    "pages",
    "shared_fraction",
    "template",
    "madvise_at_s",
    "unmerge_at_s",
    "exit_at_s",
    "writers",
];
const WRITER_KEYS: &[&str] = &[
    "range",
    "pages_per_tick",
    "every_ms",
    "mode",
    "order",
    "start_s",
    "stop_s",
];

type Map = serde_yaml::Mapping;

fn keys_of<'a>(
    v: &'a serde_yaml::Value,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a Map> {
    match v.as_mapping() {
        Some(m) => Some(m),
        None => {
            problems.push(problem(key, "expected a mapping of keys"));
            None
        }
    }
}

fn check_keys(m: &Map, allowed: &[&str], prefix: &str, problems: &mut Vec<Problem>) {
    for k in m.keys() {
        match k.as_str() {
            Some(name) if allowed.contains(&name) => {}
            Some(name) => problems.push(problem(
                join(prefix, name),
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            )),
            None => problems.push(problem(prefix, format!("key {k:?} is not a string"))),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Checks a number-valued key: non-negative integer (`int`) or non-negative finite
/// number of seconds.
fn check_num(m: &Map, name: &str, prefix: &str, int: bool, problems: &mut Vec<Problem>) {
    let Some(v) = m.get(name) else { return };
    if v.is_null() {
        return;
    }
    let key = join(prefix, name);
    if int {
        if v.as_u64().is_none() {
            let what = if v.as_i64().is_some_and(|x| x < 0) {
                "must not be negative"
            } else {
                "must be a whole number ≥ 0"
            };
            problems.push(problem(key, format!("{what} (got {})", show(v))));
        }
    } else {
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => {}
            Some(x) if x < 0.0 => {
                problems.push(problem(key, format!("must not be negative (got {x})")))
            }
            _ => problems.push(problem(
                key,
                format!("must be a number of seconds ≥ 0 (got {})", show(v)),
            )),
        }
    }
}

fn show(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn check_required(m: &Map, names: &[&str], prefix: &str, problems: &mut Vec<Problem>) {
    for n in names {
        if m.get(*n).is_none_or(|v| v.is_null()) {
            problems.push(problem(join(prefix, n), "missing"));
        }
    }
}

fn check_shape(v: &serde_yaml::Value, problems: &mut Vec<Problem>) {
    let Some(top) = keys_of(v, "", problems) else {
        return;
    };
    check_keys(top, TOP_KEYS, "", problems);
    check_required(top, &["name", "processes"], "", problems);
    check_num(top, "duration_s", "", false, problems);
    for k in ["sample_ms", "poll_ms", "seed"] {
        check_num(top, k, "", true, problems);
    }
    if let Some(ksm) = top.get("ksm") {
        if let Some(m) = keys_of(ksm, "ksm", problems) {
            check_keys(m, KSM_KEYS, "ksm", problems);
            for k in KSM_KEYS.iter().filter(|k| **k != "advisor_mode") {
                check_num(m, k, "ksm", true, problems);
            }
            if let Some(mode) = m.get("advisor_mode") {
                if !matches!(mode.as_str(), Some("none" | "scan-time")) {
                    problems.push(problem(
                        "ksm.advisor_mode",
                        format!("unknown mode {} (expected none or scan-time)", show(mode)),
                    ));
                }
            }
        }
    }
    let Some(procs) = top.get("processes") else {
        return;
    };
    let Some(procs) = procs.as_sequence() else {
        problems.push(problem("processes", "expected a list of processes"));
        return;
    };
    for (i, p) in procs.iter().enumerate() {
        let pk = format!("processes[{i}]");
        let Some(m) = keys_of(p, &pk, problems) else {
            continue;
        };
        check_keys(m, PROCESS_KEYS, &pk, problems);
        check_required(m, &["name"], &pk, problems);
        for k in ["pages", "template"] {
            check_num(m, k, &pk, true, problems);
        }
        for k in [
            "shared_fraction",
            "madvise_at_s",
            "unmerge_at_s",
            "exit_at_s",
        ] {
            check_num(m, k, &pk, false, problems);
        }
        if let Some(segs) = m.get("segments") {
            match segs.as_sequence() {
                None => problems.push(problem(join(&pk, "segments"), "expected a list")),
                Some(segs) => {
                    for (j, s) in segs.iter().enumerate() {
                        check_segment(s, &format!("{pk}.segments[{j}]"), problems);
                    }
                }
            }
        }
        if let Some(ws) = m.get("writers") {
            match ws.as_sequence() {
                None => problems.push(problem(join(&pk, "writers"), "expected a list")),
                Some(ws) => {
                    for (j, w) in ws.iter().enumerate() {
                        check_writer(w, &format!("{pk}.writers[{j}]"), problems);
                    }
                }
            }
        }
    }
}

fn check_segment(s: &serde_yaml::Value, key: &str, problems: &mut Vec<Problem>) {
    let Some(m) = keys_of(s, key, problems) else {
        return;
    };
    let kind = m.get("kind").and_then(|k| k.as_str());
    let fields: &[&str] = match kind {
        Some("template") => &["kind", "id", "pages"],
        Some("distinct") => &["kind", "k", "base", "pages"],
        Some("unique" | "zero" | "untouched") => &["kind", "pages"],
        Some(other) => {
            problems.push(problem(
                join(key, "kind"),
                format!("unknown kind `{other}` (expected template, distinct, unique, zero or untouched)"),
            ));
            return;
        }
        None => {
            problems.push(problem(join(key, "kind"), "missing"));
            return;
        }
    };
    check_keys(m, fields, key, problems);
    check_required(m, fields, key, problems);
    for f in fields.iter().filter(|f| **f != "kind") {
        check_num(m, f, key, true, problems);
    }
}

fn check_writer(w: &serde_yaml::Value, key: &str, problems: &mut Vec<Problem>) {
    let Some(m) = keys_of(w, key, problems) else {
        return;
    };
    check_keys(m, WRITER_KEYS, key, problems);
    check_required(
        m,
        &["range", "pages_per_tick", "every_ms", "mode"],
        key,
        problems,
    );
    check_num(m, "pages_per_tick", key, true, problems);
    check_num(m, "every_ms", key, true, problems);
    check_num(m, "start_s", key, false, problems);
    check_num(m, "stop_s", key, false, problems);
    if let Some(r) = m.get("range") {
        let ok = r
            .as_sequence()
            .is_some_and(|s| s.len() == 2 && s.iter().all(|x| x.as_u64().is_some()));
        if !ok {
            problems.push(problem(
                join(key, "range"),
                format!("expected [first, end) page indices ≥ 0 (got {})", show(r)),
            ));
        }
    }
    if let Some(mode) = m.get("mode") {
        if !matches!(
            mode.as_str(),
            Some("random" | "restore" | "flip_once" | "byte")
        ) {
            problems.push(problem(
                join(key, "mode"),
                format!(
                    "unknown mode {} (expected random, restore, flip_once or byte)",
                    show(mode)
                ),
            ));
        }
    }
    if let Some(order) = m.get("order") {
        if !matches!(order.as_str(), Some("cycle" | "random")) {
            problems.push(problem(
                join(key, "order"),
                format!("unknown order {} (expected cycle or random)", show(order)),
            ));
        }
    }
}

impl Process {
    /// The mapping's layout: `segments`, or the two segments of the `pages` shorthand
    /// (`round(shared_fraction × pages)` template pages, then the rest unique). The one
    /// layout rule: the simulator and the real runner both lay processes out from it.
    pub fn layout(&self) -> Vec<Segment> {
        if !self.segments.is_empty() {
            return self.segments.clone();
        }
        let pages = self.pages.unwrap_or(0);
        let frac = self.shared_fraction.unwrap_or(0.0).clamp(0.0, 1.0);
        let shared = ((pages as f64) * frac).round() as u64;
        let mut out = Vec::new();
        if shared > 0 {
            out.push(Segment::Template {
                id: self.template.unwrap_or(0),
                pages: shared,
            });
        }
        if pages > shared {
            out.push(Segment::Unique {
                pages: pages - shared,
            });
        }
        out
    }

    /// Pages in the mapping.
    pub fn total_pages(&self) -> u64 {
        self.layout()
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(s.pages()))
    }
}

impl Segment {
    pub fn pages(&self) -> u64 {
        match self {
            Segment::Template { pages, .. }
            | Segment::Distinct { pages, .. }
            | Segment::Unique { pages }
            | Segment::Zero { pages }
            | Segment::Untouched { pages } => *pages,
        }
    }
}

/// The semantic checks of a parsed workload (every problem, with its key).
pub fn validate(w: &Workload) -> Vec<Problem> {
    let mut p = Vec::new();
    if w.name.trim().is_empty() {
        p.push(problem("name", "must not be empty"));
    }
    if !(w.duration_s.is_finite() && w.duration_s > 0.0) {
        p.push(problem(
            "duration_s",
            format!("must be > 0 (got {})", w.duration_s),
        ));
    } else if w.duration_s > 86_400.0 {
        p.push(problem("duration_s", "at most 86400 s"));
    }
    if w.sample_ms == 0 {
        p.push(problem("sample_ms", "must be > 0"));
    } else if w.duration_s.is_finite()
        && w.duration_s * 1000.0 / w.sample_ms as f64 > MAX_SAMPLES as f64
    {
        p.push(problem(
            "sample_ms",
            format!("more than {MAX_SAMPLES} rows over duration_s"),
        ));
    }
    if w.poll_ms == 0 {
        p.push(problem("poll_ms", "must be > 0"));
    }
    let k = &w.ksm;
    if k.pages_to_scan == Some(0) {
        p.push(problem(
            "ksm.pages_to_scan",
            "0 would scan nothing (give at least 1)",
        ));
    }
    if k.pages_to_scan.is_some_and(|v| v > u64::from(u32::MAX)) {
        p.push(problem(
            "ksm.pages_to_scan",
            "larger than the kernel's unsigned int",
        ));
    }
    if k.sleep_millisecs.is_some_and(|v| v > u64::from(u32::MAX)) {
        p.push(problem(
            "ksm.sleep_millisecs",
            "larger than the kernel's unsigned int",
        ));
    }
    for (name, v) in [
        ("smart_scan", k.smart_scan),
        ("use_zero_pages", k.use_zero_pages),
        ("merge_across_nodes", k.merge_across_nodes),
    ] {
        if let Some(v) = v.filter(|v| *v > 1) {
            p.push(problem(format!("ksm.{name}"), format!("{v} is not 0 or 1")));
        }
    }
    if k.max_page_sharing
        .is_some_and(|v| !(2..=i32::MAX as u64).contains(&v))
    {
        p.push(problem("ksm.max_page_sharing", "must be at least 2"));
    }
    if k.advisor_target_scan_time == Some(0) {
        p.push(problem(
            "ksm.advisor_target_scan_time",
            "must be at least 1",
        ));
    }
    if let Some(mode) = &k.advisor_mode {
        if mode != "none" && mode != "scan-time" {
            p.push(problem(
                "ksm.advisor_mode",
                format!("`{mode}` is not `none` or `scan-time`"),
            ));
        } else if mode == "scan-time" && k.pages_to_scan.is_some() {
            p.push(problem(
                "ksm.pages_to_scan",
                "cannot be set while advisor_mode is scan-time (the kernel answers EINVAL)",
            ));
        }
    }
    if w.processes.is_empty() {
        p.push(problem("processes", "at least one process"));
    }
    let all: u64 = w
        .processes
        .iter()
        .fold(0u64, |a, pr| a.saturating_add(pr.total_pages()));
    if all > MAX_PAGES {
        p.push(problem(
            "processes",
            format!("{all} pages in all: at most {MAX_PAGES}"),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, pr) in w.processes.iter().enumerate() {
        let key = format!("processes[{i}]");
        if pr.name.trim().is_empty() {
            p.push(problem(format!("{key}.name"), "must not be empty"));
        } else if !names.insert(pr.name.as_str()) {
            p.push(problem(
                format!("{key}.name"),
                format!("`{}` used twice", pr.name),
            ));
        }
        validate_process(pr, &key, &mut p);
    }
    p
}

fn validate_process(pr: &Process, key: &str, p: &mut Vec<Problem>) {
    let shorthand = pr.pages.is_some() || pr.shared_fraction.is_some() || pr.template.is_some();
    if shorthand && !pr.segments.is_empty() {
        p.push(problem(
            format!("{key}.pages"),
            "give either segments or the pages/shared_fraction/template shorthand, not both",
        ));
    }
    if pr.segments.is_empty() && pr.pages.is_none() {
        p.push(problem(
            format!("{key}.segments"),
            "no pages: give segments or pages",
        ));
    }
    if let Some(f) = pr.shared_fraction {
        if !(0.0..=1.0).contains(&f) {
            p.push(problem(
                format!("{key}.shared_fraction"),
                "must be between 0 and 1",
            ));
        }
        if f > 0.0 && pr.template.is_none() {
            p.push(problem(
                format!("{key}.template"),
                "missing (needed with shared_fraction)",
            ));
        }
    }
    if pr.template.is_some_and(|t| t > MAX_CONTENT_ID) {
        p.push(problem(
            format!("{key}.template"),
            format!("content ids go up to {MAX_CONTENT_ID}"),
        ));
    }
    for (j, s) in pr.segments.iter().enumerate() {
        let sk = format!("{key}.segments[{j}]");
        match s {
            Segment::Template { id, .. } if *id > MAX_CONTENT_ID => p.push(problem(
                format!("{sk}.id"),
                format!("content ids go up to {MAX_CONTENT_ID}"),
            )),
            Segment::Distinct { k, base, .. } => {
                if *k == 0 {
                    p.push(problem(format!("{sk}.k"), "must be at least 1"));
                } else if base
                    .checked_add(k - 1)
                    .is_none_or(|last| last > MAX_CONTENT_ID)
                {
                    p.push(problem(
                        format!("{sk}.base"),
                        format!("content ids go up to {MAX_CONTENT_ID}"),
                    ));
                }
            }
            _ => {}
        }
    }
    let total = pr.total_pages();
    if total > MAX_PAGES {
        p.push(problem(
            format!("{key}.segments"),
            format!("{total} pages: at most {MAX_PAGES}"),
        ));
    } else if total == 0 && (pr.pages.is_some() || !pr.segments.is_empty()) {
        p.push(problem(
            format!("{key}.segments"),
            "the mapping has no pages",
        ));
    }
    for (name, v) in [
        ("madvise_at_s", Some(pr.madvise_at_s)),
        ("unmerge_at_s", pr.unmerge_at_s),
        ("exit_at_s", pr.exit_at_s),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                p.push(problem(
                    format!("{key}.{name}"),
                    format!("{v} is not a time ≥ 0"),
                ));
            }
        }
    }
    for (j, wr) in pr.writers.iter().enumerate() {
        let wk = format!("{key}.writers[{j}]");
        let (a, b) = wr.range;
        if a >= b {
            p.push(problem(
                format!("{wk}.range"),
                format!("[{a}, {b}) is empty"),
            ));
        } else if b > total {
            p.push(problem(
                format!("{wk}.range"),
                format!("[{a}, {b}) goes beyond the process's {total} pages"),
            ));
        }
        if wr.every_ms == 0 {
            p.push(problem(format!("{wk}.every_ms"), "must be > 0"));
        }
        if wr.pages_per_tick == 0 {
            p.push(problem(format!("{wk}.pages_per_tick"), "must be > 0"));
        } else if a < b && wr.pages_per_tick > b - a {
            p.push(problem(
                format!("{wk}.pages_per_tick"),
                format!("more than the {} pages of its range", b - a),
            ));
        }
        if !(wr.start_s.is_finite() && wr.start_s >= 0.0) {
            p.push(problem(format!("{wk}.start_s"), "must be a time ≥ 0"));
        }
        if let Some(stop) = wr.stop_s {
            if !(stop.is_finite() && stop >= wr.start_s) {
                p.push(problem(format!("{wk}.stop_s"), "must be a time ≥ start_s"));
            }
        }
    }
}

/// How the pages of one run of a mapping are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Page `i` of the run holds content `base + (i mod k)` (a template is `k` = 1).
    Numbered {
        base: u64,
        k: u64,
    },
    Unique,
    Zero,
    Untouched,
}

/// `pages` pages from page `start` of the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub pages: u64,
    pub fill: Fill,
}

/// What one page held once laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Original {
    Numbered(u64),
    Unique,
    Zero,
    Untouched,
}

/// A process's mapping: its segments back to back, as runs. The one place that says
/// what each page of a mapping originally holds, for the simulator and the real
/// runner alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    runs: Vec<Run>,
    pages: u64,
}

impl Layout {
    /// Lays out [`Process::layout`] (the one expansion of the `pages` shorthand, shared
    /// with the simulator) as runs. Expects a process [`validate`] accepted.
    pub fn of(p: &Process) -> Layout {
        let mut runs = Vec::new();
        let mut start = 0u64;
        for s in p.layout() {
            let (pages, fill) = match s {
                Segment::Template { id, pages } => (pages, Fill::Numbered { base: id, k: 1 }),
                Segment::Distinct { k, base, pages } => (pages, Fill::Numbered { base, k }),
                Segment::Unique { pages } => (pages, Fill::Unique),
                Segment::Zero { pages } => (pages, Fill::Zero),
                Segment::Untouched { pages } => (pages, Fill::Untouched),
            };
            runs.push(Run { start, pages, fill });
            start += pages;
        }
        Layout { runs, pages: start }
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Pages that are faulted in (all but `untouched` ones).
    pub fn touched(&self) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.fill != Fill::Untouched)
            .map(|r| r.pages)
            .sum()
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The original content of page `i` (< [`Layout::pages`]).
    pub fn original(&self, i: u64) -> Original {
        let run = self
            .runs
            .iter()
            .find(|r| i >= r.start && i - r.start < r.pages)
            .expect("page index within the mapping");
        match run.fill {
            Fill::Numbered { base, k } => {
                Original::Numbered(base.wrapping_add((i - run.start) % k))
            }
            Fill::Unique => Original::Unique,
            Fill::Zero => Original::Zero,
            Fill::Untouched => Original::Untouched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_workload_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.ends_with(".meta.json") {
                let w = load_workload(&p).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert!(!w.processes.is_empty());
                n += 1;
            }
        }
        assert!(n >= 8);
    }

    fn errors(text: &str) -> Vec<String> {
        parse_workload(text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn problems_name_their_key() {
        let e = errors(
            r#"{"name": "x", "bogus": 1, "ksm": {"pages_to_scan": 0, "smart": 1},
                "processes": [{"name": "a", "segments": [{"kind": "weird", "pages": 3},
                                                        {"kind": "zero", "pages": -4}],
                               "writers": [{"range": [0, 5], "pages_per_tick": 1, "every_ms": 5, "mode": "paint"}]}]}"#,
        );
        let all = e.join("\n");
        for want in [
            "bogus: unknown key",
            "ksm.smart: unknown key",
            "processes[0].segments[0].kind: unknown kind `weird`",
            "processes[0].segments[1].pages: must not be negative",
            "processes[0].writers[0].mode: unknown mode",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        let e = errors(
            r#"{"name": "x", "ksm": {"pages_to_scan": 0},
                "processes": [{"name": "a", "segments": [{"kind": "unique", "pages": 3}],
                               "writers": [{"range": [2, 9], "pages_per_tick": 1, "every_ms": 5, "mode": "byte"}]}]}"#,
        )
        .join("\n");
        assert!(e.contains("ksm.pages_to_scan: 0 would scan nothing"), "{e}");
        assert!(
            e.contains("processes[0].writers[0].range: [2, 9) goes beyond"),
            "{e}"
        );
    }

    #[test]
    fn yaml_works_too() {
        let w = parse_workload(
            "name: y\nprocesses:\n  - name: a\n    pages: 10\n    shared_fraction: 0.5\n    template: 3\n",
        )
        .unwrap();
        assert_eq!(
            w.processes[0].layout(),
            vec![
                Segment::Template { id: 3, pages: 5 },
                Segment::Unique { pages: 5 }
            ]
        );
    }
}
