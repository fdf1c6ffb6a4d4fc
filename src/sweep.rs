//! Sweeps: one scenario run over a grid of parameter values and seeds, to answer
//! capacity questions ("how many web VMs fit, at which ballooning target?") with one
//! table instead of hand-edited copies of a scenario.
//!
//! A scenario's `sweep:` section names fields by their path in the YAML and lists
//! values for each (`docs/scenario-format.md`). Values are put into the YAML *tree*,
//! before the scenario is read, and every grid point goes through the normal loader:
//! so every field is sweepable, including ones added to the format later, and every
//! value gets the loader's checks and messages. Loading happens in steps, each in its
//! own file:
//!
//! 1. `definition.rs` reads the `sweep:` section; `path.rs` resolves each parameter's
//!    path in the tree (`vms[name=web].count` → `vms[0].count`).
//! 2. `grid.rs` puts each grid point's values into a copy of the tree, writes it back
//!    as YAML on the same lines (`emit.rs`) and loads it; the loader's problems are
//!    traced back to the sweep line and grid point that caused them.
//!
//! Running ([`execute`]) is parallel over runs (rayon; each run is itself parallel
//! over VMs, and rayon nests). Every output is a pure function of the sweep, and rows
//! are kept in run order, so the outputs are byte-identical whatever the thread count
//! or completion order. `table.rs` makes `sweep.csv`, `heatmap.rs` the heatmap,
//! `shard.rs` splits a sweep over machines and `merge.rs` joins the pieces.

mod definition;
mod emit;
mod grid;
mod heatmap;
/// The scenario loader's YAML reader: a tree whose nodes know their line.
use crate::scenario::located;
mod merge;
mod page;
mod path;
mod set;
mod shard;
mod table;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::scenario::{self, Problem, Scenario, ScenarioError};

pub(crate) use merge::{check_shard_set, manifest_files, shard_of_name, ShardManifest};
pub use merge::{merge, MergeError};
pub use set::load_with;
pub use shard::Shard;
pub(crate) use shard::{fingerprint, write_json};
pub use table::{Row, Table};

/// One swept field, as the outputs show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// As written in `sweep.parameters`; the sweep.csv column.
    pub path: String,
    /// Short name for run ids and plot axes: the path's last key (`count`).
    pub label: String,
    /// The values on one line each, as written (`6GiB`, `{shape: ramp, ...}`).
    pub values: Vec<String>,
}

/// What a sweep is, without its results: all that a merge needs besides the rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The scenario's name.
    pub scenario: String,
    /// In the order written; the first varies slowest in run order.
    pub parameters: Vec<Parameter>,
    pub seeds: Vec<u64>,
    /// The sweep.csv column the heatmap shows.
    pub heatmap: String,
}

impl Definition {
    pub fn grid_points(&self) -> usize {
        self.parameters.iter().map(|p| p.values.len()).product()
    }

    pub fn runs(&self) -> usize {
        self.grid_points() * self.seeds.len()
    }

    /// The value index of each parameter at grid point `point` (row-major).
    pub fn coordinates(&self, point: usize) -> Vec<usize> {
        let mut rest = point;
        let mut out = vec![0; self.parameters.len()];
        for (slot, p) in out.iter_mut().zip(&self.parameters).rev() {
            *slot = rest % p.values.len();
            rest /= p.values.len();
        }
        out
    }

    /// `count=6 target=80`: a grid point for people.
    fn describe_point(&self, point: usize) -> String {
        let parts: Vec<String> = self
            .parameters
            .iter()
            .zip(self.coordinates(point))
            .map(|(p, i)| format!("{}={}", p.label, p.values[i]))
            .collect();
        parts.join(" ")
    }

    /// `0007-count=6-target=80-seed=43`: the index first (it sorts and it is unique),
    /// then what varies, in characters safe in any file name, short enough for one
    /// (many parameters are cut, the seed is kept).
    fn run_id(&self, index: usize) -> String {
        let width = (self.runs().saturating_sub(1)).to_string().len().max(4);
        let point = index / self.seeds.len();
        let mut id = format!("{index:0width$}");
        for (p, i) in self.parameters.iter().zip(self.coordinates(point)) {
            id += &format!("-{}={}", file_safe(&p.label), file_safe(&p.values[i]));
        }
        id.truncate(MAX_ID_PARAMETERS);
        id + &format!("-seed={}", self.seeds[index % self.seeds.len()])
    }
}

/// Length of a run id before its seed: with the seed (at most 26 more) it stays well
/// below the 255 bytes of a file name.
const MAX_ID_PARAMETERS: usize = 200;

/// At most 32 characters of `text`, others than `A-Za-z0-9._+-` replaced by `_`.
fn file_safe(text: &str) -> String {
    text.chars()
        .take(32)
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '+' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// One run of a sweep: a grid point with a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Position in run order: grid points in row-major order, seeds innermost.
    pub index: usize,
    pub id: String,
    pub point: usize,
    pub seed: u64,
}

/// A loaded sweep: its definition and the scenario of every grid point.
#[derive(Clone, Debug)]
pub struct Sweep {
    definition: Definition,
    fingerprint: String,
    /// The scenario file's text (what the fingerprint covers), for report.html.
    text: String,
    points: Vec<Scenario>,
}

impl Sweep {
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// Identifies the sweep (memsim version, scenario text, definition), so that shards
    /// of different sweeps are never merged.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn runs(&self) -> Vec<Run> {
        let seeds = &self.definition.seeds;
        (0..self.definition.runs())
            .map(|index| Run {
                index,
                id: self.definition.run_id(index),
                point: index / seeds.len(),
                seed: seeds[index % seeds.len()],
            })
            .collect()
    }

    /// The scenario of `run`: its grid point with its seed, named after the run so
    /// that its plots and summary say which run they show.
    pub fn scenario(&self, run: &Run) -> Scenario {
        let mut sc = self.points[run.point].clone();
        sc.seed = run.seed;
        sc.name = format!("{}/{}", self.definition.scenario, run.id);
        sc
    }
}

/// Problems of a sweep file, in the loader's format (`file:line: path: message`).
struct Problems {
    file: String,
    list: Vec<Problem>,
}

impl Problems {
    fn report(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            line: Some(line),
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// Reads a scenario file with a `sweep:` section; relative trace paths are relative
/// to its folder.
pub fn load(path: &Path) -> Result<Sweep, ScenarioError> {
    let (text, file) = scenario::read_text(path, "scenario")?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses a sweep: the scenario must load on its own (it is what `memsim run` runs),
/// the `sweep:` section must make sense, and every grid point must load. Every problem
/// of all three is reported.
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Sweep, ScenarioError> {
    let mut p = Problems {
        file: file.to_string(),
        list: Vec::new(),
    };
    let base =
        scenario::parse(text, file, base_dir).map_err(|e| p.list.extend_from_slice(e.problems()));
    // Syntax errors and an empty file were reported by the loader.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(Some(tree)) = located::parse(text) else {
        return Err(ScenarioError::new(p.list));
    };
    let section = definition::read(&mut p, &tree, &table::metric_columns());
    // With problems in the sweep section, the grid of its good parameters is still
    // loaded: every problem is reported at once.
    let (Ok(base), Some(section)) = (base, section) else {
        return Err(ScenarioError::new(p.list));
    };
    let definition = Definition {
        scenario: base.name.clone(),
        parameters: parameters(&section.parameters),
        seeds: section.seeds.resolve(base.seed),
        heatmap: section.heatmap.clone(),
    };
    let points = grid::load_points(&mut p, &tree, &section.parameters, &definition, base_dir);
    match points.filter(|_| p.list.is_empty()) {
        Some(points) => Ok(Sweep {
            fingerprint: shard::fingerprint(text, &definition),
            text: text.to_string(),
            definition,
            points,
        }),
        None => Err(ScenarioError::new(p.list)),
    }
}

/// Labels are the paths' last keys, or the whole path where two would be the same.
fn parameters(swept: &[definition::Swept]) -> Vec<Parameter> {
    let keys: Vec<String> = swept.iter().map(|s| path::last_key(&s.path)).collect();
    swept
        .iter()
        .zip(&keys)
        .map(|(s, key)| Parameter {
            path: s.path.clone(),
            label: match keys.iter().filter(|k| *k == key).count() {
                1 => key.clone(),
                _ => file_safe(&s.path),
            },
            values: s.values.iter().map(emit::one_line).collect(),
        })
        .collect()
}

/// A progress bar with ETA on stderr when it is a terminal, hidden otherwise (logs and
/// batch jobs get no control characters).
pub fn progress_bar(runs: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} runs  {elapsed_precise} elapsed, ETA {eta_precise}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(runs as u64).with_style(style)
}

/// Does the runs of `sweep` (those of `shard`, or all), writing each run's outputs to
/// `out/runs/<run id>/` (report.html included); then `sweep.csv`, the heatmap and
/// report.html for a whole sweep, or the shard's manifest for `memsim merge`. Returns the files written besides the runs'.
pub fn execute(
    sweep: &Sweep,
    shard: Option<Shard>,
    out: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<PathBuf>> {
    let runs: Vec<Run> = sweep
        .runs()
        .into_iter()
        .filter(|r| shard.is_none_or(|s| s.includes(r.index)))
        .collect();
    progress.set_length(runs.len() as u64);
    let rows = runs
        .par_iter()
        .map(|run| {
            let row = run_one(sweep, run, out);
            progress.inc(1);
            row
        })
        .collect::<anyhow::Result<Vec<Row>>>()?;
    progress.finish_and_clear();
    let table = Table {
        header: table::header(&sweep.definition),
        rows,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    match shard {
        None => write_results(out, &sweep.definition, &table, &sweep.text),
        Some(s) => shard::write_manifest(out, s, sweep, table).map(|path| vec![path]),
    }
}

fn run_one(sweep: &Sweep, run: &Run, out: &Path) -> anyhow::Result<Row> {
    let sc = sweep.scenario(run);
    let result = crate::sim::run(&sc);
    let dir = out.join("runs").join(&run.id);
    crate::report::write_run_with_report(&dir, &sc, &result, None)?;
    Ok(table::row(&sweep.definition, run, &result))
}

/// `sweep.csv`, with two parameters `sweep_heatmap.png`/`.svg`, and `report.html`
/// (showing `text`, the scenario file): all rendered before any is written, each
/// written atomically.
fn write_results(
    out: &Path,
    def: &Definition,
    table: &Table,
    text: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![(out.join("sweep.csv"), table::to_csv(table)?)];
    let mut svg = None;
    if let Some(map) = heatmap::Heatmap::new(def, table) {
        let (png, text) = map.render()?;
        files.push((out.join("sweep_heatmap.png"), png));
        svg = Some(text);
    }
    let page = page::page(def, table, text, svg.as_deref())?.render();
    if let Some(svg) = svg {
        files.push((out.join("sweep_heatmap.svg"), svg.into_bytes()));
    }
    files.push((out.join("report.html"), page.into_bytes()));
    files
        .into_iter()
        .map(|(path, bytes)| {
            crate::report::write_atomic(&path, &bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(parameters: Vec<Parameter>, seeds: Vec<u64>) -> Definition {
        Definition {
            scenario: "s".into(),
            parameters,
            seeds,
            heatmap: "peak_memused_pct".into(),
        }
    }

    fn parameter(label: &str, values: &[&str]) -> Parameter {
        Parameter {
            path: label.into(),
            label: label.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn runs_go_row_major_with_seeds_innermost() {
        let def = definition(
            vec![
                parameter("count", &["4", "6"]),
                parameter("target", &["70", "80", "90"]),
            ],
            vec![42, 43],
        );
        assert_eq!((def.grid_points(), def.runs()), (6, 12));
        assert_eq!(def.coordinates(4), [1, 1]);
        assert_eq!(def.run_id(9), "0009-count=6-target=80-seed=43");
        assert_eq!(def.describe_point(4), "count=6 target=80");
    }

    #[test]
    fn run_ids_are_file_names() {
        let long = "x".repeat(100);
        let params = (0..12)
            .map(|i| parameter(&format!("mémoire{i}"), &[&long, "{a: 1}"]))
            .collect();
        let id = definition(params, vec![u64::MAX]).run_id(0);
        assert!(id.len() <= 255, "{}", id.len());
        assert!(id.starts_with("0000-m_moire0=xxx"), "{id}");
        assert!(id.ends_with(&format!("-seed={}", u64::MAX)), "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-=".contains(&b)));
    }
}
