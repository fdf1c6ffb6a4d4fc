//! Splitting a sweep over machines: `--shard I/N` does the runs whose index mod N is
//! I-1, and records them in a manifest, `shard-I-of-N.json`, for `memsim merge`.
//!
//! Runs are dealt round-robin rather than in blocks, so each shard gets a similar mix
//! of cheap and expensive grid points. A manifest carries the sweep's fingerprint and
//! definition, the scenario file's text and its rows exactly as sweep.csv would hold
//! them, so the merge needs nothing but the manifests to write the same sweep.csv and
//! report.html, byte for byte, as an unsharded run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::definition::MAX_RUNS;
use super::{Definition, Sweep, Table};

/// The file-name prefix of a sweep's shard manifests (`shard-2-of-8.json`).
pub(super) const PREFIX: &str = "shard-";

/// Names the manifest layout, so that a merge refuses files it does not understand.
pub(super) const FORMAT: &str = "memsim sweep shard 2";
/// More shards than a sweep can have runs would only make empty shards.
pub(super) const MAX_SHARDS: usize = MAX_RUNS;

/// `--shard I/N`: the I-th of N shares of the runs, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the run with this index is this shard's.
    pub fn includes(&self, run: usize) -> bool {
        run % self.count == self.index - 1
    }

    /// The run indices of this shard among `runs` runs.
    pub fn runs(&self, runs: usize) -> Vec<usize> {
        (self.index - 1..runs).step_by(self.count).collect()
    }

    pub(super) fn file_name(&self) -> String {
        format!("{PREFIX}{}-of-{}.json", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let usage =
            || format!("expected I/N such as 2/8 (the I-th of N shards, from 1), found {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let number = |t: &str| {
            let t = t.trim();
            t.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| t.parse::<usize>().ok())
                .flatten()
        };
        let (Some(index), Some(count)) = (number(i), number(n)) else {
            return Err(usage());
        };
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "{s}: the number of shards must be between 1 and {MAX_SHARDS}"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "{s}: the shard number must be between 1 and {count}"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// `shard-I-of-N.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub format: String,
    pub fingerprint: String,
    pub shard: usize,
    pub shards: usize,
    pub definition: Definition,
    /// The scenario file's text, for report.html. Absent from manifests of format 1,
    /// which the format check then refuses with a clear message.
    #[serde(default)]
    pub scenario_text: String,
    /// The run indices done, in order.
    pub runs: Vec<usize>,
    pub table: Table,
}

impl super::merge::ShardManifest for Manifest {
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

pub(super) fn write_manifest(
    out: &Path,
    shard: Shard,
    sweep: &Sweep,
    table: Table,
) -> anyhow::Result<PathBuf> {
    let manifest = Manifest {
        format: FORMAT.to_string(),
        fingerprint: sweep.fingerprint.clone(),
        shard: shard.index,
        shards: shard.count,
        definition: sweep.definition.clone(),
        scenario_text: sweep.text.clone(),
        runs: table.rows.iter().map(|r| r.index).collect(),
        table,
    };
    write_json(&out.join(shard.file_name()), &manifest)
}

/// Writes a shard manifest as pretty JSON, atomically; returns its path.
pub(crate) fn write_json(path: &Path, manifest: &impl Serialize) -> anyhow::Result<PathBuf> {
    let mut json = serde_json::to_vec_pretty(manifest)?;
    json.push(b'\n');
    crate::report::write_atomic(path, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// FNV-1a (64 bits) over the memsim version, the scenario text and the definition:
/// a different build, file or grid gives a different fingerprint. It guards against
/// mistakes, not forgery, so a small stable hash is enough.
pub(crate) fn fingerprint(text: &str, def: &impl Serialize) -> String {
    let def_json = serde_json::to_string(def).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [env!("CARGO_PKG_VERSION"), text, &def_json] {
        for b in part.bytes().chain([0]) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!("2/8".parse(), Ok(Shard { index: 2, count: 8 }));
        for (bad, why) in [
            ("3/2", "between 1 and 2"),
            ("0/2", "between 1 and 2"),
            ("1/0", "between 1 and 100000"),
            ("1/100001", "between 1 and 100000"),
            ("x/2", "expected I/N"),
            ("2", "expected I/N"),
            ("-1/2", "expected I/N"),
            ("1/2/3", "expected I/N"),
        ] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn shards_deal_runs_round_robin_and_cover_each_once() {
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        assert_eq!(shards[1].runs(8), [1, 4, 7]);
        let mut all: Vec<usize> = shards.iter().flat_map(|s| s.runs(8)).collect();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert!(shards[2].includes(5) && !shards[2].includes(6));
        assert_eq!(Shard { index: 4, count: 5 }.runs(3), Vec::<usize>::new());
    }
}
