//! Figures that put policies side by side: `memsim compare`'s runs over time
//! (`overlay`) and its main figures as bars (`bars`), `memsim density`'s figures
//! against the VM count (`capacity`), and `memsim side-channel`'s accuracy of the
//! attacker per ksmd configuration against its wait (`side_channel`).
//!
//! They follow the run plots' conventions — bundled font, PNG and SVG drawn by the
//! same code, downsampled series, legends outside the plot — and give each policy one
//! colour in every figure, by its place in [`Policy::ALL`], so that a policy added
//! later gets a colour without a change here. A command's table and figures are staged
//! together and renamed into place only once all of them are ready.

mod bars;
mod capacity;
mod overlay;
mod side_channel;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::style::RGBColor;
use rayon::prelude::*;

use super::super::atomic::{self, stage, write_new, Staged};
use super::{png, register_bundled_font, svg};
use crate::compare::Spread;
use crate::metrics::RunResult;
use crate::policy::Policy;
use crate::scenario::Scenario;

pub(crate) use capacity::{Capacity, CapacityPanel};

/// One policy's run, drawn over time.
pub(crate) struct Overlay<'a> {
    pub policy: Policy,
    pub result: &'a RunResult,
}

/// One bar chart: a figure per policy, in display units (the unit in the title).
pub(crate) struct BarPanel {
    pub title: &'static str,
    pub bars: Vec<(Policy, Spread)>,
}

/// Writes `comparison.csv` and the compare figures (`compare_host_memory`,
/// `compare_swap`, `compare_oom`, `compare_bars`, each PNG and SVG) into `dir`.
pub(crate) fn write_compare(
    dir: &Path,
    scenario: &Scenario,
    caption: &str,
    overlays: &[Overlay],
    bars: &[BarPanel],
    csv: &[u8],
) -> anyhow::Result<Vec<PathBuf>> {
    register_bundled_font();
    let host = overlay::host_memory(scenario, caption, overlays);
    let swap = overlay::swap(scenario, caption, overlays);
    let oom = overlay::oom(scenario, caption, overlays);
    let bars = bars::Bars::new(&scenario.name, bars);
    type Job<'a> = &'a (dyn Fn(&Path) -> anyhow::Result<Staged> + Sync);
    let jobs: [Job; 9] = [
        &|dir| stage_bytes(&dir.join("comparison.csv"), csv),
        &|dir| png(&host, dir),
        &|dir| svg(&host, dir),
        &|dir| png(&swap, dir),
        &|dir| svg(&swap, dir),
        &|dir| png(&oom, dir),
        &|dir| svg(&oom, dir),
        &|dir| png(&bars, dir),
        &|dir| svg(&bars, dir),
    ];
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = jobs
        .par_iter()
        .map(|job| job(dir))
        .collect::<anyhow::Result<Vec<Staged>>>()?;
    commit(dir, staged)
}

/// Writes `name` (the table) and `density.png`/`.svg` into `dir`.
pub(crate) fn write_capacity(
    dir: &Path,
    name: &str,
    table: &[u8],
    figure: &Capacity,
) -> anyhow::Result<Vec<PathBuf>> {
    register_bundled_font();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = vec![
        stage_bytes(&dir.join(name), table)?,
        png(figure, dir)?,
        svg(figure, dir)?,
    ];
    commit(dir, staged)
}

/// Writes `side_channel.csv` (given as bytes) and `side_channel.png`/`.svg` into `dir`.
pub(crate) fn write_side_channel(
    dir: &Path,
    e: &crate::sidechannel::Experiment,
    rows: &[crate::sidechannel::Row],
    csv: &[u8],
) -> anyhow::Result<Vec<PathBuf>> {
    register_bundled_font();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let figure = side_channel::Accuracy::new(e, rows);
    let staged = vec![
        stage_bytes(&dir.join("side_channel.csv"), csv)?,
        png(&figure, dir)?,
        svg(&figure, dir)?,
    ];
    commit(dir, staged)
}

fn stage_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<Staged> {
    stage(path, |tmp| write_new(tmp, bytes)).with_context(|| format!("writing {}", path.display()))
}

/// Renames every staged file into place, then makes the renames durable.
fn commit(dir: &Path, staged: Vec<Staged>) -> anyhow::Result<Vec<PathBuf>> {
    let paths = staged
        .into_iter()
        .map(|file| {
            let target = file.target().display().to_string();
            file.commit().with_context(|| format!("replacing {target}"))
        })
        .collect::<anyhow::Result<_>>()?;
    atomic::sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(paths)
}

/// Distinct from the red of targets, limits and OOM marks.
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// The colour of `policy` in every comparison figure.
fn policy_color(policy: Policy) -> RGBColor {
    let index = Policy::ALL.iter().position(|&p| p == policy).unwrap_or(0);
    PALETTE[index % PALETTE.len()]
}

/// Red, for what the data is measured against: targets and limits.
const LIMIT_COLOR: RGBColor = RGBColor(214, 39, 40);
