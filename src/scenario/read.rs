//! Reading typed values out of the located tree while collecting problems.
//!
//! Converters (`size`, `duration`, `uint`, ...) are pure: they turn one node into a value
//! or an explanation. [`Fields`] knows where a node sits (line, key path) and turns
//! explanations into [`Problem`]s in the [`Ctx`]. A bad value never stops the walk; it
//! becomes a problem and the value is treated as missing, so later checks that depend
//! on it are skipped instead of piling up follow-on errors.

use std::path::Path;

use super::error::Problem;
use super::located::{Node, Value};
use super::units::{self, Bare};
use crate::engine::SimTime;

/// Where problems go while one file is read.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    /// Relative trace paths are resolved against this directory.
    pub base_dir: &'a Path,
    pub problems: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, base_dir: &'a Path) -> Ctx<'a> {
        Ctx {
            file,
            base_dir,
            problems: Vec::new(),
        }
    }

    pub fn report(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: Some(line),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Reports at the place a resolved value came from.
    pub fn report_at<T>(&mut self, at: &At<T>, message: impl Into<String>) {
        self.report(at.line, &at.path, message);
    }
}

/// A value with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub line: usize,
    pub path: String,
}

/// An optional key after reading: not written, written but invalid, or a value.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Slot<T> {
    #[default]
    Unset,
    Invalid,
    Set(At<T>),
}

impl<T: Clone> Slot<T> {
    /// This slot, or `base` where this one is unset (VM over template).
    pub fn over(&self, base: &Slot<T>) -> Slot<T> {
        match self {
            Slot::Unset => base.clone(),
            _ => self.clone(),
        }
    }

    /// The value, `default` when unset, `None` when invalid.
    pub fn or(self, default: T) -> Option<T> {
        match self {
            Slot::Unset => Some(default),
            Slot::Invalid => None,
            Slot::Set(at) => Some(at.value),
        }
    }

    /// `Some(None)` when unset, `None` when invalid.
    pub fn optional(self) -> Option<Option<T>> {
        match self {
            Slot::Unset => Some(None),
            Slot::Invalid => None,
            Slot::Set(at) => Some(Some(at.value)),
        }
    }
}

/// `a.b`, or `b` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The entries of a mapping whose keys have been checked.
pub(crate) struct Fields<'n> {
    pub path: String,
    pub line: usize,
    entries: &'n [(String, Node)],
}

/// Reads `node` as a mapping with keys from `allowed`, reporting other keys (with the
/// closest allowed one), duplicates, and a node that is no mapping at all.
pub(crate) fn fields<'n>(
    ctx: &mut Ctx,
    node: &'n Node,
    path: &str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let Value::Map(entries) = &node.value else {
        let message = format!(
            "expected a mapping with keys such as {}, found {}",
            allowed
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            node.describe()
        );
        ctx.report(node.line, path, message);
        return None;
    };
    for (i, (key, value)) in entries.iter().enumerate() {
        let key_path = join(path, key);
        if let Some((_, first)) = entries[..i].iter().find(|(k, _)| k == key) {
            let message = format!("duplicate key (first at line {})", first.line);
            ctx.report(value.line, &key_path, message);
        } else if !allowed.contains(&key.as_str()) {
            ctx.report(value.line, &key_path, unknown("key", key, allowed));
        }
    }
    Some(Fields {
        path: path.to_string(),
        line: node.line,
        entries,
    })
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Reads an optional key.
    pub fn slot<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        convert: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Slot<T> {
        let Some(node) = self.get(key) else {
            return Slot::Unset;
        };
        let path = self.child(key);
        match convert(node) {
            Ok(value) => Slot::Set(At {
                value,
                line: node.line,
                path,
            }),
            Err(message) => {
                ctx.report(node.line, &path, message);
                Slot::Invalid
            }
        }
    }

    /// Reads an optional key whose value is a structure read by its own function, which
    /// reports its problems itself and returns `None` when there were any.
    pub fn nested<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        read: impl FnOnce(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Slot<T> {
        let Some(node) = self.get(key) else {
            return Slot::Unset;
        };
        let path = self.child(key);
        match read(ctx, node, &path) {
            Some(value) => Slot::Set(At {
                value,
                line: node.line,
                path,
            }),
            None => Slot::Invalid,
        }
    }

    /// Reads a required key, reporting it when missing.
    pub fn required<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        convert: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<At<T>> {
        match self.slot(ctx, key, convert) {
            Slot::Set(at) => Some(at),
            Slot::Invalid => None,
            Slot::Unset => {
                self.missing(ctx, key, "");
                None
            }
        }
    }

    /// Like [`Fields::nested`] for a required key.
    pub fn required_nested<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        read: impl FnOnce(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        match self.nested(ctx, key, read) {
            Slot::Set(at) => Some(at.value),
            Slot::Invalid => None,
            Slot::Unset => {
                self.missing(ctx, key, "");
                None
            }
        }
    }

    pub fn missing(&self, ctx: &mut Ctx, key: &str, hint: &str) {
        let message = format!("required key is missing{hint}");
        ctx.report(self.line, &self.child(key), message);
    }
}

/// `unknown key "balon"; did you mean "balloon"?`, or the list of valid names.
pub(crate) fn unknown(what: &str, word: &str, valid: &[&str]) -> String {
    match closest(word, valid) {
        _ if valid.is_empty() => format!("unknown {what} {word:?} (none are defined)"),
        Some(best) => format!("unknown {what} {word:?}; did you mean {best:?}?"),
        None => format!("unknown {what} {word:?} (valid: {})", valid.join(", ")),
    }
}

/// The candidate nearest to `word` in edit distance, if near enough to be a typo.
/// Case and `-` vs `_` do not count as differences.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let word_n = norm(word);
    let limit = match word.chars().count() {
        0..=3 => 1,
        4..=9 => 2,
        _ => 3,
    };
    candidates
        .iter()
        .map(|c| (edit_distance(&word_n, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The text of a non-null scalar.
pub(crate) fn text<'n>(node: &'n Node, expected: &str) -> Result<&'n str, String> {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => Ok(text),
        _ => Err(format!("expected {expected}, found {}", node.describe())),
    }
}

pub(crate) fn size(bare: Bare) -> impl Fn(&Node) -> Result<u64, String> {
    move |node| units::parse_size(text(node, "a size such as 4GiB")?, bare)
}

/// A size per second: `1MiB` or `1MiB/s`.
pub(crate) fn rate(node: &Node) -> Result<u64, String> {
    let t = text(node, "a rate such as 1MiB/s")?;
    units::parse_size(t.trim().strip_suffix("/s").unwrap_or(t), Bare::Reject)
}

pub(crate) fn duration(node: &Node) -> Result<SimTime, String> {
    units::parse_duration(text(node, "a duration such as 10s")?)
}

pub(crate) fn positive_duration(node: &Node) -> Result<SimTime, String> {
    match duration(node)? {
        SimTime::ZERO => Err("must be longer than 0s".into()),
        t => Ok(t),
    }
}

/// An integer in `min..=max`.
pub(crate) fn int(min: i64, max: i64) -> impl Fn(&Node) -> Result<i64, String> {
    move |node| {
        let t = text(node, "an integer")?.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected an integer, found {}", node.describe()));
        }
        match t.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!("must be between {min} and {max}, found {t}")),
        }
    }
}

pub(crate) fn uint32(min: u32, max: u32) -> impl Fn(&Node) -> Result<u32, String> {
    move |node| int(min.into(), max.into())(node).map(|v| v as u32)
}

/// A `u64` (the seed): any non-negative integer.
pub(crate) fn uint64(node: &Node) -> Result<u64, String> {
    let t = text(node, "a non-negative integer")?.trim();
    t.parse::<u64>()
        .map_err(|_| format!("expected a non-negative integer, found {}", node.describe()))
}

pub(crate) fn boolean(node: &Node) -> Result<bool, String> {
    match text(node, "true or false")? {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        _ => Err(format!("expected true or false, found {}", node.describe())),
    }
}

pub(crate) fn string(node: &Node) -> Result<String, String> {
    let t = text(node, "a name")?;
    if t.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(t.to_string())
}

/// A number in `0..=1`.
pub(crate) fn fraction(node: &Node) -> Result<f64, String> {
    let t = text(node, "a number between 0 and 1")?.trim();
    let looks_numeric = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    match t.parse::<f64>() {
        Ok(v) if looks_numeric && (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) if looks_numeric => Err(format!("must be between 0 and 1, found {t}")),
        _ => Err(format!(
            "expected a number between 0 and 1, found {}",
            node.describe()
        )),
    }
}

/// One of a fixed set of words; `what` names the set in messages ("preset").
pub(crate) fn choice<'c>(
    what: &'c str,
    valid: &'c [&'c str],
) -> impl Fn(&Node) -> Result<&'c str, String> + 'c {
    move |node| {
        let t = text(node, &format!("a {what} ({})", valid.join(", ")))?;
        valid
            .iter()
            .find(|v| **v == t)
            .copied()
            .ok_or_else(|| unknown(what, t, valid))
    }
}

/// The items of a list.
pub(crate) fn list<'n>(node: &'n Node, expected: &str) -> Result<&'n [Node], String> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ => Err(format!("expected {expected}, found {}", node.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_tolerate_typos_case_and_dashes() {
        let keys = ["balloon", "ballooning-target", "memory", "sample_interval"];
        assert_eq!(closest("balon", &keys), Some("balloon"));
        assert_eq!(closest("memroy", &keys), Some("memory"));
        assert_eq!(closest("Memory", &keys), Some("memory"));
        assert_eq!(
            closest("ballooning_target", &keys),
            Some("ballooning-target")
        );
        assert_eq!(closest("sample-interval", &keys), Some("sample_interval"));
        assert_eq!(closest("cpu", &keys), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
