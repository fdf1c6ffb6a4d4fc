//! `report.html`: one run on one page, for reading in a browser or attaching to a
//! ticket — the story in a few lines, the run's four figures (the SVGs it has just
//! written, embedded), summary.json and the VMs as tables, the timeline of
//! `memsim explain`, and the scenario as run.

use std::path::{Path, PathBuf};

use super::html::{Page, Section, Svg, Table};
use crate::balloon::PAGE;
use crate::explain::{self, size, span, Level, Window};
use crate::metrics::{tally, EventKind, RunResult, Summary};
use crate::scenario::Scenario;

/// What each figure shows, by file stem; figures not listed are captioned by name.
const CAPTIONS: &[(&str, &str)] = &[
    (
        "host_memory",
        "Host memory as pvestatd sees it: memused against the ballooning target, and what the memory holds.",
    ),
    (
        "balloons",
        "Each VM's balloon target and actual size, with its minimum.",
    ),
    (
        "pressure",
        "Guest memory pressure: swap and page cache refault rates, OOM kills marked.",
    ),
    (
        "ksm",
        "KSM: ksmtuned's settings, ksmd's counters, the memory merging saves and the scan rate.",
    ),
];

/// Writes `dir/report.html` for a run whose other outputs are `written` (their SVGs are
/// embedded, in that order). `source` is the scenario's YAML text, when there is one.
pub(super) fn write(
    dir: &Path,
    scenario: &Scenario,
    result: &RunResult,
    source: Option<&str>,
    written: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    page(scenario, result, source, Svg::read_all(written)?).write(dir)
}

/// The page itself, from the run and its figures.
fn page(
    scenario: &Scenario,
    result: &RunResult,
    source: Option<&str>,
    figures: Vec<(String, Svg)>,
) -> Page {
    let story = explain::explain(scenario, result, Level::Summary, Window::default());
    let timeline = explain::explain(scenario, result, Level::Decisions, Window::default());
    let (preamble, story) = story
        .split_first()
        .map_or((String::new(), &[][..]), |(p, rest)| (p.text.clone(), rest));
    let plots = Section::new("Figures").figures(figures, CAPTIONS);
    Page::new(format!("memsim — {}", scenario.name))
        .intro(preamble)
        .section(Section::new("In short").timeline(story))
        .section(plots)
        .section(Section::new("Summary").table(summary_table(&result.summary)))
        .section(Section::new("VMs").table(vm_table(scenario, result)))
        .section(
            Section::new("Timeline")
                .text("What happened, as memsim explain tells it (level decisions).")
                .timeline(timeline.get(1..).unwrap_or_default()),
        )
        .section(scenario_section(scenario, source))
}

/// summary.json, one figure per row, readable units beside the field it comes from.
fn summary_table(s: &Summary) -> Table {
    let pages = |n: u64| size(n * PAGE);
    let rows: Vec<(&str, String, &str)> = vec![
        ("scenario", s.scenario.clone(), "scenario"),
        ("seed", s.seed.to_string(), "seed"),
        ("simulated time", span(s.duration_s), "duration_s"),
        ("VMs", s.vms.to_string(), "vms"),
        (
            "peak memused",
            size(s.peak_memused_bytes),
            "peak_memused_bytes",
        ),
        (
            "mean memused",
            size(s.mean_memused_bytes),
            "mean_memused_bytes",
        ),
        (
            "time above target",
            span(s.time_above_target_s),
            "time_above_target_s",
        ),
        (
            "balloon commands",
            s.balloon_commands.to_string(),
            "balloon_commands",
        ),
        (
            "balloon moved",
            size(s.balloon_moved_bytes),
            "balloon_moved_bytes",
        ),
        (
            "guest swap-out",
            pages(s.guest_swap_out_pages),
            "guest_swap_out_pages",
        ),
        (
            "guest swap-in",
            pages(s.guest_swap_in_pages),
            "guest_swap_in_pages",
        ),
        (
            "page cache refaults",
            pages(s.cache_refault_pages),
            "cache_refault_pages",
        ),
        (
            "guest OOM kills",
            s.guest_oom_kills.to_string(),
            "guest_oom_kills",
        ),
        (
            "guest OOM victims",
            or_none(tally(&s.guest_oom_victims)),
            "guest_oom_victims",
        ),
        (
            "host OOM kills",
            s.host_oom_kills.to_string(),
            "host_oom_kills",
        ),
        (
            "host OOM victims",
            or_none(tally(&s.host_oom_victims)),
            "host_oom_victims",
        ),
        (
            "peak host swap used",
            size(s.peak_host_swap_used_bytes),
            "peak_host_swap_used_bytes",
        ),
        (
            "KSM saved, peak",
            size(s.peak_ksm_saved_bytes),
            "peak_ksm_saved_bytes",
        ),
        (
            "KSM saved, mean",
            size(s.mean_ksm_saved_bytes),
            "mean_ksm_saved_bytes",
        ),
        (
            "pages ksmd scanned",
            s.ksm_pages_scanned.to_string(),
            "ksm_pages_scanned",
        ),
        (
            "ksmd CPU time",
            format!(
                "{:.1} s ({:.1} % of a core)",
                s.ksmd_cpu_s,
                100.0 * s.ksmd_cpu_s / s.duration_s.max(1.0)
            ),
            "ksmd_cpu_s",
        ),
    ];
    let mut table = Table::new(&["figure", "value", "summary.json"]).numeric(&[1]);
    for (label, value, key) in rows {
        table.row([label.to_string(), value, key.to_string()]);
    }
    table
}

/// `none` for an empty list.
fn or_none(list: String) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list
    }
}

/// One row per VM: its configuration where the scenario has it, the rest from samples.
fn vm_table(scenario: &Scenario, result: &RunResult) -> Table {
    let mut vmids: Vec<u32> = scenario.vms.iter().map(|v| v.vmid).collect();
    vmids.extend(result.vms.iter().map(|s| s.vmid));
    vmids.sort_unstable();
    vmids.dedup();
    let header = [
        "vmid",
        "name",
        "memory",
        "balloon min",
        "shares",
        "balloon driver",
        "guest swap",
        "OOM kills",
        "peak guest swap used",
        "peak host swap",
    ];
    let mut table = Table::new(&header).numeric(&[0, 2, 3, 4, 6, 7, 8, 9]);
    for vmid in vmids {
        table.row(vm_row(scenario, result, vmid));
    }
    table
}

fn vm_row(scenario: &Scenario, result: &RunResult, vmid: u32) -> Vec<String> {
    let samples: Vec<_> = result.vms.iter().filter(|s| s.vmid == vmid).collect();
    let cfg = scenario.vms.iter().find(|v| v.vmid == vmid);
    let first = samples.first();
    let name = cfg
        .map(|c| c.name.clone())
        .or(first.map(|s| s.name.clone()));
    let memory = cfg.map(|c| c.memory).or(first.map(|s| s.maxmem_bytes));
    let min = match cfg {
        Some(c) if !c.balloon_device => "no balloon".to_string(),
        Some(c) => c
            .balloon_min
            .filter(|&m| m > 0)
            .map_or("unset".into(), size),
        None => first.map_or(String::new(), |s| size(s.balloon_min_bytes)),
    };
    let kills = samples
        .iter()
        .map(|s| s.oom_kills)
        .max()
        .unwrap_or_else(|| {
            let events = result.events.iter();
            events
                .filter(|e| e.vmid == vmid && e.kind == EventKind::GuestOomKill && e.value > 0)
                .count() as u64
        });
    let peak = |f: fn(&crate::metrics::VmSample) -> u64| {
        size(samples.iter().map(|s| f(s)).max().unwrap_or(0))
    };
    vec![
        vmid.to_string(),
        name.unwrap_or_default(),
        memory.map_or(String::new(), size),
        min,
        cfg.map_or(String::new(), |c| c.shares.to_string()),
        cfg.map_or(String::new(), |c| yes_no(c.balloon_driver).to_string()),
        cfg.map_or(String::new(), |c| size(c.swap)),
        kills.to_string(),
        peak(|s| s.guest_swap_used_bytes),
        peak(|s| s.host_swapped_bytes),
    ]
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The YAML as it was read, or — for a scenario built in code — its resolved form.
pub(crate) fn scenario_section(scenario: &Scenario, source: Option<&str>) -> Section {
    match source {
        Some(yaml) => scenario_file_section(yaml),
        None => Section::new("Scenario")
            .text("The scenario as the simulator resolved it (no YAML text was given).")
            .preformatted(format!("{scenario:#?}")),
    }
}

/// The scenario file's text, as it was read and run.
pub(crate) fn scenario_file_section(yaml: &str) -> Section {
    Section::new("Scenario")
        .text("The scenario file as run.")
        .preformatted(yaml)
}
