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
