//! `report.html` of a comparison: the main figures per policy, comparison.csv as
//! written, the comparison plots (their SVGs, embedded), a link to each run's own
//! report and the scenario — one file a browser opens from disk.

use std::path::{Path, PathBuf};

use super::table::{by_figure, seeds_note, KSMD_NOTE};
use super::{Comparison, Plan};
use crate::explain::span;
use crate::report::html::{Page, Section, Svg, Table};
use crate::report::scenario_section;

/// What each comparison figure shows, by file stem.
const CAPTIONS: &[(&str, &str)] = &[
    (
        "compare_host_memory",
        "pvestatd's memused over time, a line per policy, with the ballooning target and MemTotal.",
    ),
    (
        "compare_swap",
        "Guest swap-out (summed over the VMs) and host swap traffic, MiB/s, a line per policy.",
    ),
    (
        "compare_oom",
        "Running counts of guest OOM kills and of VMs killed by the host OOM killer.",
    ),
    (
        "compare_bars",
        "The main figures as bars per policy: mean over the seeds, whiskers from the minimum to the maximum.",
    ),
];

/// Writes `out/report.html` from the comparison, comparison.csv's bytes and the files
/// the comparison wrote (their SVGs are embedded, in that order).
pub(super) fn write(
    out: &Path,
    plan: &Plan,
    comparison: &Comparison,
    csv: &[u8],
    written: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    let figures = Section::new("Figures")
        .text(format!(
            "The plots over time show each policy's run with seed {}.",
            comparison.seeds[0]
        ))
        .figures(Svg::read_all(written)?, CAPTIONS);
    let page = Page::new(format!("memsim compare — {}", comparison.scenario))
        .intro(intro(plan))
        .section(in_short(comparison))
        .section(figures)
        .section(
            Section::new("comparison.csv")
                .text("One row per policy, as in comparison.csv: means over the seeds, min_ and max_ where seeds may differ.")
                .table(Table::from_csv(csv)?),
        )
        .section(runs(plan)?)
        .section(scenario_section(plan.scenario(), plan.source()));
    page.write(out)
}

/// `4 policies × 2 seeds, 10 min simulated each: …`
fn intro(plan: &Plan) -> String {
    let seeds = plan.seeds();
    let names: Vec<String> = plan.policies().iter().map(|p| p.to_string()).collect();
    format!(
        "{} policies ({}) × {} seed{} ({}), {} simulated each. Every run is an ordinary memsim run with its own outputs and report.",
        names.len(),
        names.join(", "),
        seeds.len(),
        if seeds.len() == 1 { "" } else { "s" },
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        span(plan.scenario().duration.as_secs_f64()),
    )
}

/// The terminal's table: a column per policy, the main figures in display units.
fn in_short(c: &Comparison) -> Section {
    let rows = by_figure(c);
    let columns: Vec<usize> = (1..rows[0].len()).collect();
    let mut table = Table::new(&rows[0]).numeric(&columns);
    for row in &rows[1..] {
        table.row(row.iter().cloned());
    }
    let mut section = Section::new("In short").table(table);
    if let Some(note) = seeds_note(c) {
        section = section.text(note);
    }
    section.text(KSMD_NOTE)
}

/// A row per run, linking to its folder's report.
fn runs(plan: &Plan) -> anyhow::Result<Section> {
    let mut table = Table::new(&["run", "policy", "seed"]).numeric(&[2]);
    for run in plan.runs() {
        let cells = [run.id.clone(), run.policy.to_string(), run.seed.to_string()];
        table
            .linked_row(cells, 0, &format!("{}/report.html", run.id))
            .map_err(anyhow::Error::msg)?;
    }
    Ok(Section::new("Runs")
        .text("Each run's own report, in its folder beside this file.")
        .table(table))
}
