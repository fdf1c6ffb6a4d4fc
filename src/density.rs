//! `memsim density`: how many VMs of one group (a `vms:` entry with `count:`) the host
//! carries under each policy while every seed stays within the limits — OOM kills,
//! swap-in rate, host memory used.
//!
//! The answer is searched for, not read off a grid: from the scenario's own count the
//! count doubles until it breaks a limit (or halves until it keeps them), then the
//! bracket is bisected, assuming that what breaks a limit at some count breaks it at
//! every larger one. Each seed keeps its own bracket, so the spread over seeds is exact
//! too; while the seeds agree they ask for the same counts, and each (policy, count) is
//! then loaded once and run for all its seeds in parallel. A count is set in the YAML
//! tree through the sweep machinery ([`crate::sweep::load_with`]), so it is checked like
//! a scenario file: a count the loader refuses (vmids running into the next entry's) is
//! a count the host does not carry, with the loader's message as the note.
//!
//! The outputs are pure functions of the evaluated (policy, count, seed) triples, kept
//! sorted: byte-identical whatever the thread count, and a sharded search (`--shard`,
//! policies dealt round-robin) merges into exactly the unsharded outputs
//! (`shard.rs`). Policies are applied with [`Policy::apply`]; a new policy needs no
//! change here.

mod page;
mod results;
mod search;
mod shard;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::scenario::located::{self, Node, Value};
use crate::scenario::{self, Scenario};
use crate::sweep::Shard;

pub use results::{Answer, Evaluation, Measures, Outcome, Results};
pub use shard::{has_manifests, merge, Merged};

/// More seeds than this is a typo, not a search.
pub const MAX_SEEDS: usize = 1000;

/// What every seed must stay within at a count for the host to carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Guest OOM kills plus VMs killed by the host's OOM killer, over the run.
    pub max_oom_kills: u64,
    /// Peak over the samples of the guests' swap-in rate (summed over the VMs) plus the
    /// host's, MiB/s.
    pub max_swap_in_mib_s: Option<f64>,
    /// Peak over the samples of pvestatd's memused, % of MemTotal.
    pub max_host_used_pct: Option<f64>,
}

/// The command line's choices.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub group: String,
    /// Empty: all.
    pub policies: Vec<Policy>,
    pub seeds: usize,
    pub limits: Limits,
    /// The search's range of counts; without `max`, the count grows until a limit
    /// (or the loader) stops it.
    pub min: u32,
    pub max: Option<u32>,
}

/// What a search is, without its results: all a merge of its shards needs besides
/// them, and what its fingerprint covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The scenario's name.
    pub scenario: String,
    pub group: String,
    #[serde(with = "policy_names")]
    pub policies: Vec<Policy>,
    pub seeds: Vec<u64>,
    pub limits: Limits,
    pub min: u32,
    pub max: Option<u32>,
    /// The group's count in the scenario: where the search starts.
    pub start: u32,
}

/// A search ready to run: its definition and the scenario text counts are put into.
#[derive(Clone, Debug)]
pub struct Search {
    definition: Definition,
    fingerprint: String,
    text: String,
    file: String,
    base_dir: PathBuf,
    /// `vms[i].count` of the group.
    field: String,
}

impl Search {
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// The scenario at `count` VMs in the group, or why the loader refuses it.
    fn scenario(&self, count: u32) -> Result<Scenario, String> {
        crate::sweep::load_with(
            &self.text,
            &self.file,
            &self.base_dir,
            &self.field,
            &count.to_string(),
        )
        .map_err(|e| {
            let lines: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
            lines.join("; ")
        })
    }
}

/// Reads the scenario and checks it, the options and the group: every problem at once.
pub fn prepare(path: &Path, options: &Options) -> Result<Search, Vec<String>> {
    let mut problems = option_problems(options);
    let (text, file) = match scenario::read_text(path, "scenario") {
        Ok(read) => read,
        Err(e) => {
            problems.extend(e.problems().iter().map(|p| p.to_string()));
            return Err(problems);
        }
    };
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let loaded = scenario::parse(&text, &file, &base_dir);
    if let Err(e) = &loaded {
        problems.extend(e.problems().iter().map(|p| p.to_string()));
    }
    // Without a YAML tree the loader has said why; there is no group to look for.
    let group = find_group(&text, &options.group);
    if let Some(Err(message)) = &group {
        problems.push(format!("--group {}: {message}", options.group));
    }
    let (Ok(sc), Some(Ok((index, start))), true) = (loaded, group, problems.is_empty()) else {
        return Err(problems);
    };
    let definition = Definition {
        scenario: sc.name.clone(),
        group: options.group.clone(),
        policies: match &options.policies[..] {
            [] => Policy::ALL.to_vec(),
            given => given.to_vec(),
        },
        seeds: (0..options.seeds as u64)
            .map(|r| sc.seed.wrapping_add(r))
            .collect(),
        limits: options.limits.clone(),
        min: options.min,
        max: options.max,
        start,
    };
    let definition = as_merged(definition);
    Ok(Search {
        fingerprint: crate::sweep::fingerprint(&text, &definition),
        definition,
        text,
        file,
        base_dir,
        field: format!("vms[{index}].count"),
    })
}

/// The definition as a merge of shards reads it back from their manifests. A limit
/// written with many digits may come back from JSON one bit off; judging by the
/// read-back value from the start keeps an unsharded search and a merged one equal.
fn as_merged(definition: Definition) -> Definition {
    serde_json::to_string(&definition)
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or(definition)
}

/// Every problem with the options alone.
fn option_problems(o: &Options) -> Vec<String> {
    let mut problems = crate::compare::policy_problems(&o.policies);
    if !(1..=MAX_SEEDS).contains(&o.seeds) {
        problems.push(format!(
            "--seeds {}: expected a number of seeds from 1 to {MAX_SEEDS}",
            o.seeds
        ));
    }
    if let Some(pct) = o.limits.max_host_used_pct {
        if !(pct > 0.0 && pct <= 100.0) {
            problems.push(format!(
                "--max-host-used {pct}: a share of MemTotal in percent, above 0 and at most 100"
            ));
        }
    }
    if let Some(rate) = o.limits.max_swap_in_mib_s {
        if !(rate >= 0.0 && rate.is_finite()) {
            problems.push(format!("--max-swap-in {rate}: a rate in MiB/s, 0 or more"));
        }
    }
    if o.min == 0 {
        problems.push("--min 0: a group has at least 1 VM".to_string());
    }
    if let Some(max) = o.max.filter(|&max| max < o.min) {
        problems.push(format!("--max {max} is below --min {}", o.min));
    }
    problems
}

/// The position of the `vms:` entry named `group` that has a `count:`, and that count;
/// `None` if the text is no YAML (the loader says why).
fn find_group(text: &str, group: &str) -> Option<Result<(usize, u32), String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = located::parse(text).ok()??;
    let Some(Value::Seq(items)) = map_get(&root, "vms").map(|n| &n.value) else {
        return Some(Err("the scenario has no vms: list".to_string()));
    };
    let named: Vec<usize> = (0..items.len())
        .filter(|&i| scalar(map_get(&items[i], "name")) == Some(group))
        .collect();
    let groups: Vec<&str> = items
        .iter()
        .filter(|item| map_get(item, "count").is_some())
        .filter_map(|item| scalar(map_get(item, "name")))
        .collect();
    let known = match groups.len() {
        0 => "the scenario has no vms: entry with a name and a count:".to_string(),
        _ => format!("groups (entries with count:): {}", groups.join(", ")),
    };
    Some(match named[..] {
        [] => Err(format!("no vms: entry is named {group} ({known})")),
        [i] => match scalar(map_get(&items[i], "count")).map(str::parse::<u32>) {
            Some(Ok(count)) => Ok((i, count)),
            _ => Err(format!(
                "vms[{i}] ({group}) has no count: to vary ({known})"
            )),
        },
        _ => Err(format!(
            "{} vms: entries are named {group}: name one group",
            named.len()
        )),
    })
}

fn map_get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, n)| n),
        _ => None,
    }
}

fn scalar(node: Option<&Node>) -> Option<&str> {
    match &node?.value {
        Value::Scalar { text, .. } => Some(text.trim()),
        _ => None,
    }
}

/// What [`execute`] did.
#[derive(Debug)]
pub struct Done {
    /// The policies searched: a shard's share, or all.
    pub policies: Vec<Policy>,
    pub results: Results,
    pub runs: usize,
    pub files: Vec<PathBuf>,
}

/// Searches every policy of `shard` (or all), in parallel, and writes density.csv,
/// the density plot and report.html to `out` — or, for a shard, its manifest for `memsim merge`.
pub fn execute(
    search: &Search,
    shard: Option<Shard>,
    out: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<Done> {
    let policies: Vec<Policy> = search
        .definition
        .policies
        .iter()
        .enumerate()
        .filter(|&(i, _)| shard.is_none_or(|s| s.includes(i)))
        .map(|(_, &p)| p)
        .collect();
    let evaluations = search::run(search, &policies, progress);
    progress.finish_and_clear();
    let runs = evaluations
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Ran(_)))
        .count();
    let results = Results::new(search.definition.clone(), evaluations);
    let files = match shard {
        None => results.write(out, &search.text)?,
        Some(s) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            vec![shard::write_manifest(out, s, search, &results)?]
        }
    };
    Ok(Done {
        policies,
        results,
        runs,
        files,
    })
}

/// A policy by name in manifests: the name is what users and files know it by.
mod policy_name {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::policy::Policy;

    pub fn serialize<S: Serializer>(policy: &Policy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(policy.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// Policies by name, as [`policy_name`].
mod policy_names {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::policy::Policy;

    pub fn serialize<S: Serializer>(policies: &[Policy], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(policies.iter().map(|p| p.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Policy>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|name| name.parse().map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
duration: 1m
host: {memory: 8GiB}
vms:
  - {vmid: 100, name: web, count: 3, memory: 1GiB}
  - {vmid: 200, name: db, memory: 1GiB}
  - {vmid: 300, name: app, count: 2, memory: 1GiB}
";

    #[test]
    fn groups_are_named_entries_with_a_count() {
        let no_count = "vms[1] (db) has no count: to vary (groups (entries with count:): web, app)";
        let unknown = "no vms: entry is named nope (groups (entries with count:): web, app)";
        assert_eq!(find_group(TEXT, "app"), Some(Ok((2, 2))));
        assert_eq!(find_group(TEXT, "web"), Some(Ok((0, 3))));
        assert_eq!(find_group(TEXT, "db"), Some(Err(no_count.into())));
        assert_eq!(find_group(TEXT, "nope"), Some(Err(unknown.into())));
        assert_eq!(find_group("vms: [", "web"), None, "the loader says why");
    }

    fn options() -> Options {
        Options {
            group: "web".into(),
            policies: vec![],
            seeds: 1,
            limits: Limits {
                max_oom_kills: 0,
                max_swap_in_mib_s: None,
                max_host_used_pct: None,
            },
            min: 1,
            max: None,
        }
    }

    #[test]
    fn every_bad_option_is_reported() {
        let o = Options {
            policies: vec![Policy::Ksm, Policy::Ksm],
            seeds: 0,
            limits: Limits {
                max_oom_kills: 0,
                max_swap_in_mib_s: Some(-1.0),
                max_host_used_pct: Some(150.0),
            },
            min: 5,
            max: Some(4),
            ..options()
        };
        let problems = option_problems(&o);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems[2].starts_with("--max-host-used 150: "),
            "{problems:?}"
        );
        assert_eq!(problems[4], "--max 4 is below --min 5");
        assert!(option_problems(&options()).is_empty());
    }
}
