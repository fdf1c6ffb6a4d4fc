//! `report.html` of a density search: each policy's answer with its spread over the
//! seeds, the limits it was judged by, the density plot (its SVG, embedded), every
//! evaluation as in density.csv, and the scenario file.
//!
//! Built from the results, density.csv's bytes and the scenario text only, so a merge
//! of shards writes the same bytes as the unsharded search.

use std::path::{Path, PathBuf};

use super::results::{describe, spread};
use super::Results;
use crate::report::html::{Page, Section, Svg, Table};
use crate::report::scenario_file_section;

/// Writes `out/report.html`; `written` are the files the search wrote (the density
/// plot's SVG among them is embedded).
pub(super) fn write(
    out: &Path,
    results: &Results,
    csv: &[u8],
    text: &str,
    written: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    let def = &results.definition;
    let figure = Section::new("Figure").figures(
        Svg::read_all(written)?,
        &[(
            "density",
            "Per policy and count, the worst seed of each measure; the limits dashed in red (density.svg).",
        )],
    );
    let seeds: Vec<String> = def.seeds.iter().map(u64::to_string).collect();
    let range = match def.max {
        Some(max) => format!("{} to {max}", def.min),
        None => format!("from {}, no upper bound", def.min),
    };
    let page = Page::new(format!(
        "memsim density — {}: how many {} VMs fit?",
        def.scenario, def.group
    ))
    .intro(format!(
        "The largest count of the group {} that the host carries under each policy, every seed staying within the limits. Searched from the scenario's count ({}) over the range {range}; seeds {}.",
        def.group,
        def.start,
        seeds.join(", ")
    ))
    .section(answers(results))
    .section(
        Section::new("Limits").text(format!(
            "Every seed must stay within: {}.",
            describe(&def.limits)
        )),
    )
    .section(figure)
    .section(
        Section::new("density.csv")
            .text("Every (policy, count, seed) the search ran, as in density.csv.")
            .table(Table::from_csv(csv)?),
    )
    .section(scenario_file_section(text));
    page.write(out)
}

/// A row per policy: the answer, its spread over the seeds, each seed's, what stopped it.
fn answers(results: &Results) -> Section {
    let def = &results.definition;
    let show = |c: Option<u32>| match c {
        Some(c) => c.to_string(),
        None => format!("<{}", def.min),
    };
    let mut table = Table::new(&[
        "policy".to_string(),
        format!("{} VMs (every seed)", def.group),
        "per seed: min / median / max".to_string(),
        "per seed".to_string(),
        "stopped by".to_string(),
    ])
    .numeric(&[1]);
    for a in results.answers(&def.policies) {
        let each: Vec<String> = def
            .seeds
            .iter()
            .zip(&a.per_seed)
            .map(|(seed, &c)| format!("{seed}: {}", show(c)))
            .collect();
        table.row([
            a.policy.to_string(),
            show(a.count),
            spread(&a.per_seed, show),
            each.join(", "),
            a.stopped_by,
        ]);
    }
    Section::new("Answer")
        .text("<N means the host does not carry even the search's minimum.")
        .table(table)
}
