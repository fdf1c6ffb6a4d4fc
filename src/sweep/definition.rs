//! The `sweep:` section: which fields take which values, how many seeds, and which
//! metric the heatmap shows. Read by hand from the located tree, like the rest of the
//! scenario, so that every problem is reported with its line, all at once.

use super::located::{Node, Value};
use super::path::{self, Target};
use super::Problems;

/// Upper bound on the runs of one sweep, to bound memory and catch a stray extra zero.
pub(super) const MAX_RUNS: usize = 100_000;
/// What the heatmap shows unless `heatmap:` says otherwise: comparable across host sizes.
pub(super) const DEFAULT_HEATMAP: &str = "peak_memused_pct";
const KEYS: &[&str] = &["parameters", "seeds", "heatmap"];

/// One swept field.
pub(super) struct Swept {
    /// As written in `sweep.parameters`.
    pub path: String,
    /// The line of that key.
    pub line: usize,
    pub target: Target,
    /// The values as nodes of the sweep section (with their lines, for messages).
    pub values: Vec<Node>,
}

/// Replicas per grid point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seeds {
    /// This many seeds, counted up from the scenario's own.
    Count(usize),
    List(Vec<u64>),
}

impl Seeds {
    pub fn resolve(&self, scenario_seed: u64) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..*n as u64)
                .map(|r| scenario_seed.wrapping_add(r))
                .collect(),
            Seeds::List(seeds) => seeds.clone(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Seeds::Count(n) => *n,
            Seeds::List(seeds) => seeds.len(),
        }
    }
}

pub(super) struct Section {
    pub parameters: Vec<Swept>,
    pub seeds: Seeds,
    /// A numeric sweep.csv column.
    pub heatmap: String,
}

/// Reads the `sweep:` section of the scenario tree `root`; `metrics` are the numeric
/// columns the heatmap may show. A part with problems is reported and left out (the
/// parameter) or left at its default, so that the grid of the rest can still be
/// checked and every problem reported in one go; `None` if there is no grid to check.
pub(super) fn read(p: &mut Problems, root: &Node, metrics: &[String]) -> Option<Section> {
    // A root that is no mapping has been reported by the scenario loader.
    let Value::Map(top) = &root.value else {
        return None;
    };
    let Some((_, sweep)) = top.iter().find(|(k, _)| k == "sweep") else {
        let message = "missing: memsim sweep needs a sweep: section with parameters and/or seeds (docs/scenario-format.md)";
        p.report(root.line, "sweep", message);
        return None;
    };
    let entries = mapping(p, sweep, "sweep", KEYS)?;
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, n)| n);
    let section = Section {
        parameters: get("parameters").map_or(Vec::new(), |n| parameters(p, n, root)),
        seeds: get("seeds")
            .and_then(|n| seeds(p, n))
            .unwrap_or(Seeds::Count(1)),
        heatmap: get("heatmap")
            .and_then(|n| heatmap(p, n, metrics))
            .unwrap_or_else(|| DEFAULT_HEATMAP.to_string()),
    };
    check_size(p, &section, sweep.line).then_some(section)
}

/// The entries of a mapping, reporting keys not in `allowed` and repeated keys.
fn mapping<'n>(
    p: &mut Problems,
    node: &'n Node,
    path: &str,
    allowed: &[&str],
) -> Option<&'n [(String, Node)]> {
    let Value::Map(entries) = &node.value else {
        let message = format!(
            "expected a mapping with keys {}, found {}",
            allowed.join(", "),
            node.describe()
        );
        p.report(node.line, path, message);
        return None;
    };
    for (i, (key, value)) in entries.iter().enumerate() {
        let key_path = format!("{path}.{key}");
        if let Some((_, first)) = entries[..i].iter().find(|(k, _)| k == key) {
            let message = format!("duplicate key (first at line {})", first.line);
            p.report(value.line, &key_path, message);
        } else if !allowed.contains(&key.as_str()) {
            let message = format!("unknown key {key:?} (valid: {})", allowed.join(", "));
            p.report(value.line, &key_path, message);
        }
    }
    Some(entries)
}

/// `path: [values]` entries, each path resolved in the scenario tree; those with a
/// problem are reported and left out.
fn parameters(p: &mut Problems, node: &Node, root: &Node) -> Vec<Swept> {
    let Value::Map(entries) = &node.value else {
        let message = format!(
            "expected a mapping of field paths to lists of values, such as `vms[name=web].count: [4, 6, 8]`, found {}",
            node.describe()
        );
        p.report(node.line, "sweep.parameters", message);
        return Vec::new();
    };
    let mut out: Vec<Swept> = Vec::new();
    for (i, (path, values)) in entries.iter().enumerate() {
        let at = format!("sweep.parameters.{path}");
        if let Some((_, first)) = entries[..i].iter().find(|(k, _)| k == path) {
            let message = format!("duplicate parameter (first at line {})", first.line);
            p.report(values.line, &at, message);
            continue;
        }
        match swept(root, path, values, &out) {
            Ok(s) => out.push(s),
            Err(messages) => {
                for m in messages {
                    p.report(values.line, &at, m);
                }
            }
        }
    }
    out
}

/// One parameter, checked against the tree and the parameters before it.
fn swept(root: &Node, path: &str, values: &Node, before: &[Swept]) -> Result<Swept, Vec<String>> {
    let target = sweepable(root, path);
    let list = match &values.value {
        Value::Seq(items) if !items.is_empty() => Ok(items.clone()),
        _ => Err(format!(
            "expected a list of values such as [4, 6, 8], found {}",
            values.describe()
        )),
    };
    let (target, list) = match (target, list) {
        (Ok(t), Ok(l)) => (t, l),
        (t, l) => return Err(t.err().into_iter().chain(l.err()).collect()),
    };
    if let Some(other) = before.iter().find(|o| o.target.overlaps(&target)) {
        return Err(vec![format!(
            "sets the same part of the scenario as {} (line {}): sweep one or the other",
            other.path, other.line
        )]);
    }
    Ok(Swept {
        path: path.to_string(),
        line: values.line,
        target,
        values: list,
    })
}

/// Resolves a path, refusing the fields the sweep itself sets.
fn sweepable(root: &Node, path: &str) -> Result<Target, String> {
    let target = path::resolve(root, path)?;
    match target.canonical.as_str() {
        c if c == "sweep" || c.starts_with("sweep.") => {
            Err("the sweep section cannot sweep itself".into())
        }
        "seed" => Err("seeds are swept by sweep.seeds, not as a parameter".into()),
        _ => Ok(target),
    }
}

/// `seeds: 3` or `seeds: [1, 7, 42]`.
fn seeds(p: &mut Problems, node: &Node) -> Option<Seeds> {
    const PATH: &str = "sweep.seeds";
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Some(Seeds::Count(n)),
            _ => {
                let message = format!(
                    "expected a number of seeds (at least 1) or a list of seeds, found {}",
                    node.describe()
                );
                p.report(node.line, PATH, message);
                None
            }
        },
        Value::Seq(items) if !items.is_empty() => seed_list(p, items),
        _ => {
            let message = format!(
                "expected a number of seeds such as 3, or a list of seeds such as [1, 2, 3], found {}",
                node.describe()
            );
            p.report(node.line, PATH, message);
            None
        }
    }
}

fn seed_list(p: &mut Problems, items: &[Node]) -> Option<Seeds> {
    let mut seeds = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("sweep.seeds[{i}]");
        let seed = match &item.value {
            Value::Scalar { text, .. } if !item.is_null() => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        match seed {
            Some(s) if seeds.contains(&s) => {
                p.report(item.line, &path, format!("seed {s} is listed twice"));
                ok = false;
            }
            Some(s) => seeds.push(s),
            None => {
                let message = format!("expected a non-negative integer, found {}", item.describe());
                p.report(item.line, &path, message);
                ok = false;
            }
        }
    }
    ok.then_some(Seeds::List(seeds))
}

fn heatmap(p: &mut Problems, node: &Node, metrics: &[String]) -> Option<String> {
    if let Value::Scalar { text, .. } = &node.value {
        if metrics.contains(text) {
            return Some(text.clone());
        }
    }
    let message = format!(
        "expected a numeric sweep.csv column ({}), found {}",
        metrics.join(", "),
        node.describe()
    );
    p.report(node.line, "sweep.heatmap", message);
    None
}

/// At most [`MAX_RUNS`] runs.
fn check_size(p: &mut Problems, section: &Section, line: usize) -> bool {
    let runs = section
        .parameters
        .iter()
        .try_fold(section.seeds.len(), |n, s| n.checked_mul(s.values.len()));
    match runs {
        Some(n) if n <= MAX_RUNS => true,
        _ => {
            let sizes: Vec<String> = section
                .parameters
                .iter()
                .map(|s| s.values.len().to_string())
                .chain([section.seeds.len().to_string()])
                .collect();
            let message = format!(
                "{} runs are too many (at most {MAX_RUNS}); split the sweep",
                sizes.join(" × ")
            );
            p.report(line, "sweep", message);
            false
        }
    }
}
