//! `memsim merge`: the shard manifests of one sweep → the sweep.csv (and heatmap, and
//! report.html) that the sweep run whole would have written.
//!
//! A merge that silently mixed two sweeps, or left out a shard, would give a table
//! that looks complete and is wrong; so every manifest is checked first — same
//! fingerprint, same shard count, each shard exactly once, rows exactly the shard's
//! runs — every problem is reported, and nothing is written unless all is well.

use std::fmt;
use std::path::{Path, PathBuf};

use super::definition::MAX_RUNS;
use super::shard::{Manifest, Shard, FORMAT, MAX_SHARDS, PREFIX};
use super::{write_results, Table};

/// Why a merge wrote nothing.
#[derive(Debug)]
pub enum MergeError {
    /// The inputs are not the complete shards of one sweep: each problem on a line.
    Input(Vec<String>),
    /// Writing the outputs failed.
    Output(anyhow::Error),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::Input(problems) => write!(f, "{}", problems.join("\n")),
            MergeError::Output(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for MergeError {}

/// What a merge wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub shards: usize,
    pub runs: usize,
    pub files: Vec<PathBuf>,
}

/// Merges the manifests found in `inputs` (folders holding `shard-I-of-N.json` files,
/// or such files) into `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let mut problems = Vec::new();
    let files: Vec<PathBuf> = inputs
        .iter()
        .flat_map(|input| manifest_files(input, PREFIX, "shard", &mut problems))
        .collect();
    let manifests: Vec<(PathBuf, Manifest)> = files
        .into_iter()
        .filter_map(|path| match read(&path) {
            Ok(m) => Some((path, m)),
            Err(message) => {
                problems.push(format!("{}: {message}", path.display()));
                None
            }
        })
        .collect();
    check(&manifests, &mut problems);
    let Some((_, first)) = manifests.first().filter(|_| problems.is_empty()) else {
        return Err(MergeError::Input(problems));
    };
    let mut rows: Vec<_> = manifests
        .iter()
        .flat_map(|(_, m)| m.table.rows.iter().cloned())
        .collect();
    rows.sort_by_key(|r| r.index);
    let table = Table {
        header: first.table.header.clone(),
        rows,
    };
    std::fs::create_dir_all(out)
        .map_err(|e| MergeError::Output(anyhow::anyhow!("creating {}: {e}", out.display())))?;
    let files = write_results(out, &first.definition, &table, &first.scenario_text)
        .map_err(MergeError::Output)?;
    Ok(Merged {
        shards: first.shards,
        runs: table.rows.len(),
        files,
    })
}

/// The manifests named by one input, in shard order: the input itself if it is a file,
/// else every `<prefix>I-of-N.json` in the folder. `what` names them in the message
/// for a folder without any ("shard", "density shard"). Shared by sweep and density.
pub(crate) fn manifest_files(
    input: &Path,
    prefix: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<PathBuf> {
    if input.is_file() {
        return vec![input.to_path_buf()];
    }
    let entries = match std::fs::read_dir(input) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("{}: {e}", input.display()));
            return Vec::new();
        }
    };
    let mut found: Vec<(Shard, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let shard = shard_of_name(&e.file_name().to_string_lossy(), prefix)?;
            Some((shard, e.path()))
        })
        .collect();
    found.sort_by_key(|(s, _)| (s.count, s.index));
    if found.is_empty() {
        problems.push(format!(
            "{}: no {what} manifests ({prefix}I-of-N.json) in this folder",
            input.display()
        ));
    }
    found.into_iter().map(|(_, path)| path).collect()
}

/// `<prefix>2-of-8.json` → 2/8.
pub(crate) fn shard_of_name(name: &str, prefix: &str) -> Option<Shard> {
    let spec = name.strip_prefix(prefix)?.strip_suffix(".json")?;
    spec.replacen("-of-", "/", 1).parse().ok()
}

fn read(path: &Path) -> Result<Manifest, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a sweep shard manifest ({e})"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "manifest format {:?}, this memsim reads {FORMAT:?}",
            manifest.format
        ));
    }
    let def = &manifest.definition;
    let runs = def
        .parameters
        .iter()
        .try_fold(def.seeds.len(), |n, p| n.checked_mul(p.values.len()));
    let shard_ok = (1..=MAX_SHARDS).contains(&manifest.shards)
        && (1..=manifest.shards).contains(&manifest.shard);
    if !shard_ok || !runs.is_some_and(|n| (1..=MAX_RUNS).contains(&n)) {
        return Err("an inconsistent manifest (the file was changed)".into());
    }
    Ok(manifest)
}

/// One sweep, one shard count, every shard once, each with exactly its runs.
fn check(manifests: &[(PathBuf, Manifest)], problems: &mut Vec<String>) {
    check_shard_set(manifests, ("sweep", "sweep"), check_rows, problems);
}

/// What a merge checks of a shard manifest, whatever was sharded (a sweep, a density
/// search).
pub(crate) trait ShardManifest {
    fn fingerprint(&self) -> &str;
    /// Whether `other` is a shard of the same search: same fingerprint and definition.
    fn same_search(&self, other: &Self) -> bool;
    /// `(shard, shards)`, which the reader checked: 1 ≤ shard ≤ shards.
    fn shard(&self) -> (usize, usize);
}

/// One search, one shard count, every shard once; `each` checks a manifest's own
/// content. `what` names the search in messages: (`"density search"`, `"search"`).
pub(crate) fn check_shard_set<M: ShardManifest>(
    manifests: &[(PathBuf, M)],
    what: (&str, &str),
    each: impl Fn(&Path, &M, &mut Vec<String>),
    problems: &mut Vec<String>,
) {
    let Some((first_path, first)) = manifests.first() else {
        return;
    };
    let name = |path: &Path| path.display().to_string();
    let shards = first.shard().1;
    let mut by_shard: Vec<Option<&Path>> = vec![None; shards];
    for (path, m) in manifests {
        if !m.same_search(first) {
            problems.push(format!(
                "{}: a shard of a different {} (fingerprint {}; {} has {}): merge only the shards of one {}",
                name(path), what.0, m.fingerprint(), name(first_path), first.fingerprint(), what.1
            ));
            continue;
        }
        let (shard, count) = m.shard();
        if count != shards {
            problems.push(format!(
                "{}: shard {shard} of {count}, but {} is of {shards} shards",
                name(path),
                name(first_path),
            ));
            continue;
        }
        each(path, m, problems);
        match &mut by_shard[shard - 1] {
            Some(other) => problems.push(format!(
                "shard {shard} of {count} is given twice: {} and {}",
                name(other),
                name(path)
            )),
            slot => *slot = Some(path),
        }
    }
    let missing: Vec<String> = (1..=shards)
        .filter(|i| by_shard[i - 1].is_none())
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        let (noun, verb) = match missing.len() {
            1 => ("shard", "is"),
            _ => ("shards", "are"),
        };
        problems.push(format!(
            "{noun} {} of {shards} {verb} missing: each of the {shards} shards must be given once",
            missing.join(", "),
        ));
    }
}

/// A manifest's rows must be the runs of its shard, in order, with the sweep's columns.
fn check_rows(path: &Path, m: &Manifest, problems: &mut Vec<String>) {
    let expected = Shard {
        index: m.shard,
        count: m.shards,
    }
    .runs(m.definition.runs());
    let indices: Vec<usize> = m.table.rows.iter().map(|r| r.index).collect();
    let widths_ok = m
        .table
        .rows
        .iter()
        .all(|r| r.cells.len() == m.table.header.len());
    if indices != expected || m.runs != expected || !widths_ok {
        problems.push(format!(
            "{}: its rows are not the runs of shard {} of {} (the file was changed or cut short)",
            path.display(),
            m.shard,
            m.shards
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names() {
        assert_eq!(
            shard_of_name("shard-2-of-8.json", PREFIX),
            Some(Shard { index: 2, count: 8 })
        );
        assert_eq!(shard_of_name("shard-9-of-8.json", PREFIX), None);
        assert_eq!(shard_of_name("sweep.csv", PREFIX), None);
    }
}
