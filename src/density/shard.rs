//! Splitting a density search over machines: `--shard I/N` searches the policies whose
//! position (in the search's policy list) mod N is I−1 and records its evaluations in
//! `density-shard-I-of-N.json`; `memsim merge` joins the manifests into the density.csv,
//! plot and report.html of the whole search, byte for byte (a manifest carries the
//! scenario file's text for the report).
//!
//! It follows the sweep's shards (`src/sweep/shard.rs`, `merge.rs`): a manifest carries
//! the search's fingerprint (memsim version, scenario text, definition) and its
//! definition, and a merge refuses — reporting every problem, writing nothing — shards
//! of different searches, missing or repeated shards, and manifests whose evaluations
//! are not exactly their shard's policies.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::results::{Evaluation, Results};
use super::{Definition, Search};
use crate::policy::Policy;
use crate::sweep::{
    check_shard_set, manifest_files, shard_of_name, write_json, MergeError, Shard, ShardManifest,
};

/// Names the manifest layout, so that a merge refuses files it does not understand.
const FORMAT: &str = "memsim density shard 2";
/// As for sweeps: more shards than this only makes empty ones.
const MAX_SHARDS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format: String,
    fingerprint: String,
    shard: usize,
    shards: usize,
    definition: Definition,
    /// The scenario file's text, for report.html. Absent from manifests of format 1,
    /// which the format check then refuses with a clear message.
    #[serde(default)]
    scenario_text: String,
    evaluations: Vec<Evaluation>,
}

fn file_name(shard: Shard) -> String {
    format!("{PREFIX}{}-of-{}.json", shard.index, shard.count)
}

/// The file-name prefix of a density search's shard manifests.
const PREFIX: &str = "density-shard-";

/// The policies of `shard` among the search's.
fn policies_of(def: &Definition, shard: Shard) -> Vec<Policy> {
    def.policies
        .iter()
        .enumerate()
        .filter(|&(i, _)| shard.includes(i))
        .map(|(_, &p)| p)
        .collect()
}

pub(super) fn write_manifest(
    out: &Path,
    shard: Shard,
    search: &Search,
    results: &Results,
) -> anyhow::Result<PathBuf> {
    let manifest = Manifest {
        format: FORMAT.to_string(),
        fingerprint: search.fingerprint.clone(),
        shard: shard.index,
        shards: shard.count,
        definition: search.definition.clone(),
        scenario_text: search.text.clone(),
        evaluations: results.evaluations.clone(),
    };
    write_json(&out.join(file_name(shard)), &manifest)
}

/// Whether `inputs` (folders or files) hold density shard manifests: then `memsim
/// merge` merges a density search rather than a sweep.
pub fn has_manifests(inputs: &[PathBuf]) -> bool {
    inputs.iter().any(|input| {
        let named = |p: &Path| {
            p.file_name()
                .is_some_and(|n| shard_of_name(&n.to_string_lossy(), PREFIX).is_some())
        };
        match std::fs::read_dir(input) {
            Ok(entries) => entries.filter_map(|e| e.ok()).any(|e| named(&e.path())),
            Err(_) => named(input),
        }
    })
}

/// What a merge wrote.
#[derive(Debug)]
pub struct Merged {
    pub shards: usize,
    pub results: Results,
    pub files: Vec<PathBuf>,
}

/// Merges the manifests found in `inputs` (folders holding `density-shard-I-of-N.json`
/// files, or such files) into density.csv and the density plot in `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let mut problems = Vec::new();
    let files: Vec<PathBuf> = inputs
        .iter()
        .flat_map(|input| manifest_files(input, PREFIX, "density shard", &mut problems))
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
    let evaluations = manifests
        .iter()
        .flat_map(|(_, m)| m.evaluations.iter().cloned())
        .collect();
    let results = Results::new(first.definition.clone(), evaluations);
    let files = results
        .write(out, &first.scenario_text)
        .map_err(MergeError::Output)?;
    Ok(Merged {
        shards: first.shards,
        results,
        files,
    })
}

fn read(path: &Path) -> Result<Manifest, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("not a density shard manifest ({e})"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "manifest format {:?}, this memsim reads {FORMAT:?}",
            manifest.format
        ));
    }
    let shard_ok = (1..=MAX_SHARDS).contains(&manifest.shards)
        && (1..=manifest.shards).contains(&manifest.shard);
    let def = &manifest.definition;
    let search_ok = !def.policies.is_empty()
        && !def.seeds.is_empty()
        && def.min >= 1
        && def.max.is_none_or(|max| max >= def.min);
    if !shard_ok || !search_ok {
        return Err("an inconsistent manifest (the file was changed)".into());
    }
    Ok(manifest)
}

/// One search, one shard count, every shard once, each with exactly its policies.
fn check(manifests: &[(PathBuf, Manifest)], problems: &mut Vec<String>) {
    check_shard_set(
        manifests,
        ("density search", "search"),
        check_policies,
        problems,
    );
}

impl ShardManifest for Manifest {
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    fn same_search(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && self.definition == other.definition
            && self.scenario_text == other.scenario_text
    }
    fn shard(&self) -> (usize, usize) {
        (self.shard, self.shards)
    }
}

/// A manifest's evaluations must be of its shard's policies, each searched.
fn check_policies(path: &Path, m: &Manifest, problems: &mut Vec<String>) {
    let shard = Shard {
        index: m.shard,
        count: m.shards,
    };
    let expected = policies_of(&m.definition, shard);
    let mut found: Vec<Policy> = m.evaluations.iter().map(|e| e.policy).collect();
    found.dedup();
    if found != expected {
        problems.push(format!(
            "{}: its evaluations are not the searches of shard {shard} (the file was changed or cut short)",
            path.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names() {
        let s = Shard { index: 2, count: 8 };
        assert_eq!(file_name(s), "density-shard-2-of-8.json");
        assert_eq!(shard_of_name(&file_name(s), PREFIX), Some(s));
        assert_eq!(shard_of_name("shard-2-of-8.json", PREFIX), None);
        assert_eq!(shard_of_name("density-shard-9-of-8.json", PREFIX), None);
    }
}
