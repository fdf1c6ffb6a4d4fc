//! Parameter paths: `pvestatd.ballooning-target`, `vms.0.count`, `vms[name=web].count`.
//!
//! A path is resolved against the scenario's YAML tree, not against the schema, so a
//! key added to the scenario format later is sweepable without a change here; the
//! loader, which runs on every grid point, still checks the key and its values.
//! Resolution turns selectors into list positions and spells the path the way the
//! loader does in its messages (`vms[0].count`), so that a problem the loader finds can
//! be traced back to the sweep line that caused it.

use super::located::{Node, Value};

/// One step down the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// A mapping key, or a list index written as a key (`vms.0`).
    Key(String),
    /// `[3]`
    Index(usize),
    /// `[name=web]`: the one list item that is a mapping with this key and value.
    Select { key: String, value: String },
}

/// Where a parameter's values go in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// Child positions from the root down to the node replaced, or to the mapping that
    /// receives [`Target::insert`].
    pub at: Vec<usize>,
    /// Keys the scenario does not write (left at their defaults), outermost first: the
    /// values are added under them, with mappings for all but the last. Whether the
    /// keys exist at all is the loader's to say.
    pub insert: Vec<String>,
    /// The path as the loader spells it: map keys joined by `.`, list items `[i]`.
    pub canonical: String,
}

impl Target {
    /// Whether the two targets touch the same part of the tree (one contains the
    /// other), so that the values of one would overwrite or move the other's.
    pub fn overlaps(&self, other: &Target) -> bool {
        self.contains(&other.canonical) || other.contains(&self.canonical)
    }

    /// Whether the loader's key path `path` is this target or inside it.
    pub fn contains(&self, path: &str) -> bool {
        within(path, &self.canonical)
    }

    /// Whether `path` is one of the mappings this target adds above its value (where
    /// a misspelt key shows up).
    pub fn adds(&self, path: &str) -> bool {
        if self.insert.is_empty() {
            return false;
        }
        let below: usize = self.insert[1..].iter().map(|k| k.len() + 1).sum();
        let added_root = &self.canonical[..self.canonical.len() - below];
        within(path, added_root) && !self.contains(path)
    }

    /// Puts `value` at this target in `root`, which must be (a copy of) the tree the
    /// target was resolved in, changed at most at targets that do not overlap this one:
    /// then every position in [`Target::at`] exists. A replaced node keeps its line, so
    /// the loader's messages about it point into the scenario; an added key has none.
    pub fn apply(&self, root: &mut Node, value: &Node) {
        let mut node = root;
        for &pos in &self.at {
            node = match &mut node.value {
                Value::Map(entries) => &mut entries[pos].1,
                Value::Seq(items) => &mut items[pos],
                Value::Scalar { .. } => unreachable!("targets end at scalars"),
            };
        }
        let Some((last, above)) = self.insert.split_last() else {
            *node = relined(value, node.line);
            return;
        };
        for key in above {
            node = entry(node, key);
        }
        if let Value::Map(entries) = &mut node.value {
            entries.push((last.clone(), relined(value, 0)));
        }
    }
}

/// The value under `key` in the mapping `node`, added as an empty mapping if missing
/// (two parameters may add keys under one new mapping).
fn entry<'n>(node: &'n mut Node, key: &str) -> &'n mut Node {
    let Value::Map(entries) = &mut node.value else {
        unreachable!("keys are added under mappings only");
    };
    let pos = match entries.iter().position(|(k, _)| k == key) {
        Some(pos) => pos,
        None => {
            let empty = Node {
                line: 0,
                value: Value::Map(Vec::new()),
            };
            entries.push((key.to_string(), empty));
            entries.len() - 1
        }
    };
    &mut entries[pos].1
}

/// Whether the key path `path` is `outer` or inside it.
fn within(path: &str, outer: &str) -> bool {
    path.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A copy of `node` with every line set to `line` (0: none), so that it is written
/// where it is put, not where the sweep section had it.
fn relined(node: &Node, line: usize) -> Node {
    let value = match &node.value {
        Value::Scalar { .. } => node.value.clone(),
        Value::Seq(items) => Value::Seq(items.iter().map(|n| relined(n, line)).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, n)| (k.clone(), relined(n, line)))
                .collect(),
        ),
    };
    Node { line, value }
}

/// Finds `path` in the tree under `root`.
pub(super) fn resolve(root: &Node, path: &str) -> Result<Target, String> {
    let steps = parse(path)?;
    let mut node = root;
    let mut target = Target {
        at: Vec::new(),
        insert: Vec::new(),
        canonical: String::new(),
    };
    for (i, step) in steps.iter().enumerate() {
        let here = place(&target.canonical);
        let (pos, child) = match (step, &node.value) {
            (Step::Key(key), Value::Map(entries)) => {
                match entries.iter().position(|(k, _)| k == key) {
                    Some(pos) => {
                        target.canonical = join(&target.canonical, key);
                        (pos, &entries[pos].1)
                    }
                    None => return added(target, &steps[i..], &here, entries),
                }
            }
            (Step::Key(key), Value::Seq(items)) => match key.parse::<usize>() {
                Ok(index) => item(&mut target, &here, items, index)?,
                Err(_) => {
                    return Err(format!(
                        "{here} is a list: pick an item by index ([0]) or by a key ([name=...]), not {key:?}"
                    ))
                }
            },
            (Step::Index(index), Value::Seq(items)) => item(&mut target, &here, items, *index)?,
            (Step::Select { key, value }, Value::Seq(items)) => {
                let index = select(&here, items, key, value)?;
                item(&mut target, &here, items, index)?
            }
            (Step::Index(_) | Step::Select { .. }, Value::Map(_)) => {
                return Err(format!(
                    "{here} is a mapping, not a list: name a key with .key"
                ))
            }
            (_, Value::Scalar { .. }) => {
                return Err(format!(
                    "{here} is a single value; it has nothing inside to select"
                ))
            }
        };
        target.at.push(pos);
        node = child;
    }
    Ok(target)
}

fn item<'n>(
    target: &mut Target,
    here: &str,
    items: &'n [Node],
    index: usize,
) -> Result<(usize, &'n Node), String> {
    let node = items.get(index).ok_or_else(|| {
        format!(
            "{here} has {} items (indices from 0): there is no [{index}]",
            items.len()
        )
    })?;
    target.canonical = format!("{}[{index}]", target.canonical);
    Ok((index, node))
}

/// The position of the one item of `items` that has `key: value`.
fn select(here: &str, items: &[Node], key: &str, value: &str) -> Result<usize, String> {
    let matches: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| scalar_at(item, key) == Some(value))
        .map(|(i, _)| i)
        .collect();
    match matches[..] {
        [only] => Ok(only),
        [] => {
            let present: Vec<&str> = items.iter().filter_map(|i| scalar_at(i, key)).collect();
            let known = match present.len() {
                0 => format!("no item has a {key}"),
                _ => format!("{key}s: {}", present.join(", ")),
            };
            Err(format!("no item of {here} has {key}={value} ({known})"))
        }
        _ => {
            let list: Vec<String> = matches.iter().map(|i| format!("[{i}]")).collect();
            Err(format!(
                "{} items of {here} have {key}={value} ({}): pick one by index",
                matches.len(),
                list.join(", ")
            ))
        }
    }
}

/// The scalar text under `key` if `node` is a mapping that has it.
fn scalar_at<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    match &entries.iter().find(|(k, _)| k == key)?.1.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// The target for `rest`, steps the scenario does not write: only keys can be added,
/// since a list item added would be a new VM or process, not a changed setting.
fn added(
    mut target: Target,
    rest: &[Step],
    here: &str,
    entries: &[(String, Node)],
) -> Result<Target, String> {
    for step in rest {
        let Step::Key(key) = step else {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            return Err(format!(
                "{here} has no {:?} (it has {}), and list items cannot be added by a sweep",
                target.insert.first().map_or("", String::as_str),
                keys.join(", ")
            ));
        };
        target.canonical = join(&target.canonical, key);
        target.insert.push(key.clone());
    }
    Ok(target)
}

fn place(canonical: &str) -> String {
    match canonical {
        "" => "the scenario".to_string(),
        path => path.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The last key of a path: `count` in `vms[name=db.1].count`, `vms` in `vms[0]`.
pub(super) fn last_key(path: &str) -> String {
    let steps = parse(path).unwrap_or_default();
    let key = steps.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        _ => None,
    });
    key.unwrap_or(path).to_string()
}

/// `a.b[1][k=v].c` → steps; every `.`-separated part starts with a key.
fn parse(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in split_dots(path)? {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if name.is_empty() {
            return Err(format!(
                "{path:?}: every part between dots needs a key name"
            ));
        }
        steps.push(Step::Key(name.to_string()));
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return Err(format!("{path:?}: [ without ]"));
            };
            steps.push(bracket(path, &inner[..end])?);
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("{path:?}: {rest:?} after ] must start with . or ["));
        }
    }
    Ok(steps)
}

/// Splits at the dots outside brackets (a selector's value may contain dots).
fn split_dots(path: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (i, c) in path.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            ']' if depth == 1 => depth = 0,
            '[' | ']' => return Err(format!("{path:?}: unbalanced [ ]")),
            '.' if depth == 0 => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{path:?}: [ without ]"));
    }
    parts.push(&path[start..]);
    Ok(parts)
}

fn bracket(path: &str, inner: &str) -> Result<Step, String> {
    let inner = inner.trim();
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        return inner
            .parse()
            .map(Step::Index)
            .map_err(|_| format!("{path:?}: index [{inner}] is too large"));
    }
    match inner.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
            Ok(Step::Select {
                key: key.trim().to_string(),
                value: value.trim().to_string(),
            })
        }
        _ => Err(format!(
            "{path:?}: [{inner}] is neither an index ([0]) nor a selector ([name=web])"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::located;
    use super::*;

    const TREE: &str = "\
host: {memory: 64GiB}
vms:
  - {vmid: 101, name: web, count: 6}
  - {vmid: 201, name: db.1}
  - {vmid: 202, name: dup}
  - {vmid: 203, name: dup}
";

    fn tree() -> Node {
        located::parse(TREE).unwrap().unwrap()
    }

    fn canonical(path: &str) -> Result<String, String> {
        resolve(&tree(), path).map(|t| t.canonical)
    }

    #[test]
    fn keys_indices_and_selectors_reach_the_same_field() {
        for path in ["vms[0].count", "vms.0.count", "vms[name=web].count"] {
            assert_eq!(canonical(path).unwrap(), "vms[0].count", "{path}");
        }
        assert_eq!(canonical("vms[name=db.1].vmid").unwrap(), "vms[1].vmid");
        assert_eq!(canonical("vms[vmid=202]").unwrap(), "vms[2]");
        assert_eq!(canonical("host.memory").unwrap(), "host.memory");
    }

    #[test]
    fn missing_keys_are_added_but_not_list_items() {
        let t = resolve(&tree(), "host.swap").unwrap();
        assert_eq!(
            (t.insert, t.canonical),
            (vec!["swap".to_string()], "host.swap".into())
        );
        let t = resolve(&tree(), "pvestatd.ballooning-target").unwrap();
        assert_eq!(t.insert, ["pvestatd", "ballooning-target"]);
        assert!(t.adds("pvestatd"));
        assert!(!t.adds("pvestatd.ballooning-target"), "that is its value");
        assert!(!t.adds("host"));
        let err = resolve(&tree(), "templates[0].memory").unwrap_err();
        assert!(err.contains("the scenario has no \"templates\""), "{err}");
        assert!(err.contains("list items cannot be added"), "{err}");
    }

    #[test]
    fn keys_added_by_two_parameters_share_their_new_mapping() {
        let mut root = tree();
        let seven = located::parse("7").unwrap().unwrap();
        for path in ["pvestatd.interval", "pvestatd.maxchange"] {
            resolve(&tree(), path).unwrap().apply(&mut root, &seven);
        }
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        let added: Vec<&Node> = entries
            .iter()
            .filter(|(k, _)| k == "pvestatd")
            .map(|(_, n)| n)
            .collect();
        assert_eq!(added.len(), 1);
        assert_eq!(scalar_at(added[0], "maxchange"), Some("7"));
        assert_eq!(scalar_at(added[0], "interval"), Some("7"));
    }

    #[test]
    fn paths_that_name_nothing_say_why() {
        let cases = [
            (
                "vms[name=app].count",
                "no item of vms has name=app (names: web, db.1, dup, dup)",
            ),
            (
                "vms[name=dup].count",
                "2 items of vms have name=dup ([2], [3])",
            ),
            ("vms[7].count", "vms has 4 items"),
            ("vms.web", "vms is a list"),
            ("host[0]", "host is a mapping"),
            ("host.memory.size", "host.memory is a single value"),
            ("vms[0", "[ without ]"),
            ("vms[x]", "neither an index"),
            ("host..memory", "needs a key name"),
            ("vms[0]x", "after ]"),
        ];
        for (path, want) in cases {
            let err = canonical(path).unwrap_err();
            assert!(err.contains(want), "{path}: {err}");
        }
    }

    #[test]
    fn apply_replaces_in_place_or_adds_the_key() {
        let mut root = tree();
        let value = located::parse("[8]").unwrap().unwrap();
        let Value::Seq(items) = value.value else {
            panic!()
        };
        resolve(&tree(), "vms[name=web].count")
            .unwrap()
            .apply(&mut root, &items[0]);
        resolve(&tree(), "host.swap")
            .unwrap()
            .apply(&mut root, &items[0]);
        let t = resolve(&root, "vms[0].count").unwrap();
        assert!(t.insert.is_empty());
        assert_eq!(scalar_at(&root_item(&root, "vms", 0), "count"), Some("8"));
        assert!(resolve(&root, "host.swap").unwrap().insert.is_empty());
    }

    fn root_item(root: &Node, key: &str, index: usize) -> Node {
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        let Value::Seq(items) = &entries.iter().find(|(k, _)| k == key).unwrap().1.value else {
            panic!()
        };
        items[index].clone()
    }

    #[test]
    fn last_keys() {
        assert_eq!(last_key("vms[name=db.1].count"), "count");
        assert_eq!(last_key("vms[name=db.1]"), "vms");
        assert_eq!(last_key("pvestatd.ballooning-target"), "ballooning-target");
    }

    #[test]
    fn overlapping_targets() {
        let t = |p: &str| resolve(&tree(), p).unwrap();
        assert!(t("vms[0]").overlaps(&t("vms[name=web].count")));
        assert!(t("host.memory").overlaps(&t("host")));
        assert!(!t("vms[0].count").overlaps(&t("vms[0].vmid")));
        let named = |canonical: &str| Target {
            at: Vec::new(),
            canonical: canonical.to_string(),
            insert: Vec::new(),
        };
        assert!(!named("vms[1]").overlaps(&named("vms[10]")));
        assert!(!named("host.mem").overlaps(&named("host.memory")));
    }
}
