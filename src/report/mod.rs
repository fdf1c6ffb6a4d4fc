//! Writing one run's outputs: the CSV time series, `summary.json` and the plots.
//!
//! Results are what a user compares between runs and scenarios, so they must be
//! trustworthy files:
//!
//! - **Never half-written.** Every output is first written completely, and synced, under
//!   a temporary name next to its target; only when *all* of them are ready are they
//!   renamed over the previous run's files. A run that fails while rendering or writing
//!   (a plotting error, a full disk) leaves the previous outputs exactly as they were
//!   and removes its temporary files; a crash at that stage leaves at most hidden
//!   `.name.tmp-*` files. Only a failure among the final renames can mix old and new
//!   outputs, and even then each file is whole. [`write_atomic`] does the same for a
//!   single file.
//! - **Byte-identical for identical input.** No timestamps, no hash-map iteration, floats
//!   formatted by `ryu`, plots downsampled by integer bucket arithmetic and rendered with
//!   a bundled font. A re-run that changes nothing changes no byte, so `git diff` or
//!   `cmp` on an output directory shows exactly what a code or scenario change did.
//!
//! The outputs are produced in parallel (rayon): the tables alongside the eight plot
//! renderings. Each output is independent of the others, so the bytes do not depend on
//! scheduling.

mod atomic;
pub mod html;
mod plot;
mod run_page;
mod tables;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use atomic::write_atomic;
pub(crate) use plot::comparisons;
pub(crate) use plot::{register_bundled_font, FONT};
pub(crate) use run_page::{scenario_file_section, scenario_section};

use crate::metrics::RunResult;
use crate::scenario::Scenario;
use atomic::{stage, Staged};

/// Writes every output of one run into `dir` (created if missing): timeseries_host.csv,
/// timeseries_vms.csv, events.csv, summary.json, and plots host_memory.{png,svg},
/// balloons.{png,svg}, pressure.{png,svg}, ksm.{png,svg}. Each file is written atomically
/// (temp file in the same dir + fsync + rename), so a re-run never leaves a half-written file
/// and an interrupted run never corrupts earlier results. Returns the paths written.
pub fn write_run(
    dir: &Path,
    scenario: &Scenario,
    result: &RunResult,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (tables, plots) = rayon::join(
        || stage_tables(dir, result),
        || plot::stage_all(dir, scenario, result),
    );
    let mut staged = tables?;
    staged.extend(plots.context("rendering plots")?);
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

/// [`write_run`], then `report.html` beside the outputs (written atomically right after
/// them, from the SVGs just written): what `memsim run` writes. `source` is the
/// scenario's YAML text, shown in the report when given. Returns every path written.
pub fn write_run_with_report(
    dir: &Path,
    scenario: &Scenario,
    result: &RunResult,
    source: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = write_run(dir, scenario, result)?;
    let report = run_page::write(dir, scenario, result, source, &paths)?;
    paths.push(report);
    Ok(paths)
}

fn stage_tables(dir: &Path, result: &RunResult) -> anyhow::Result<Vec<Staged>> {
    type Table = fn(&RunResult, &mut dyn Write) -> anyhow::Result<()>;
    let tables: [(&str, Table); 4] = [
        ("timeseries_host.csv", tables::host_csv),
        ("timeseries_vms.csv", tables::vms_csv),
        ("events.csv", tables::events_csv),
        ("summary.json", tables::summary_json),
    ];
    tables
        .iter()
        .map(|&(name, write)| {
            let path = dir.join(name);
            stage(&path, |tmp| -> anyhow::Result<()> {
                let mut out = BufWriter::new(File::create_new(tmp)?);
                write(result, &mut out)?;
                out.into_inner().map_err(|e| e.into_error())?;
                Ok(())
            })
            .with_context(|| format!("writing {}", path.display()))
        })
        .collect()
}
