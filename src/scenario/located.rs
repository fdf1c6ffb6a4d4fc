//! A YAML document as a tree in which every node knows its line.
//!
//! serde-based YAML loaders forget positions and stop at the first type error, but a
//! good error names the line and there may be many errors. So the file is read once with
//! yaml-rust2's event parser, whose events carry source marks, into this small tree;
//! the schema code then walks it by hand and reports every problem it finds.
//!
//! The tree keeps scalars as text (their meaning depends on the key: `4096` is MiB for
//! `memory`, seconds for `duration`), and sets a mapping value's line to the line of its
//! key, which is where a reader looks for it even when the value is a block below.
//!
//! The builder is iterative and bounded: at most [`MAX_DEPTH`] levels of nesting and
//! at most [`MAX_ALIAS_NODES`] nodes copied by aliases, so no input can exhaust the
//! stack, and memory stays proportional to the file's size (a "billion laughs" file is
//! rejected, not expanded).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

pub(crate) const MAX_DEPTH: usize = 64;
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    /// 1-based line: of the key for mapping values, of the node itself otherwise.
    pub line: usize,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// `plain` is false for quoted and block scalars, which are never null.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order, duplicates kept (the schema reports them).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The YAML 1.2 core schema's null: an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How the node looks, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            _ if self.is_null() => "an empty value".into(),
            Value::Scalar { text, .. } => format!("{text:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Scalar { .. } => 0,
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, n)| 1 + n.count()).sum(),
        }
    }
}

/// Why the text is not a usable YAML document: line and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses one YAML document; `Ok(None)` for a stream without one (empty, comments only).
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
            line: e.marker().line().max(1),
            message: format!(
                "YAML syntax error at column {}: {}",
                e.marker().col() + 1,
                e.info()
            ),
        })?;
        if event == Event::StreamEnd {
            return Ok(builder.root);
        }
        builder.event(event, mark)?;
    }
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(String, Node)>,
        /// The key read, waiting for its value.
        key: Option<(String, usize)>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    documents: usize,
    /// Nodes copied by aliases so far.
    copied: usize,
}

impl Builder {
    fn event(&mut self, event: Event, mark: Marker) -> Result<(), SyntaxError> {
        let line = mark.line().max(1);
        match event {
            Event::DocumentStart => self.document(line),
            Event::Scalar(text, style, anchor, _) => {
                let plain = style == TScalarStyle::Plain;
                self.add(anchor, Node::scalar(line, text, plain))
            }
            Event::Alias(id) => self.alias(id, line),
            Event::SequenceStart(anchor, _) => self.open(Frame::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.open(Frame::Map {
                line,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            _ => Ok(()),
        }
    }

    fn document(&mut self, line: usize) -> Result<(), SyntaxError> {
        self.documents += 1;
        if self.documents > 1 {
            return Err(SyntaxError {
                line,
                message: "a second YAML document starts here; a scenario is one document".into(),
            });
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            let line = match frame {
                Frame::Seq { line, .. } | Frame::Map { line, .. } => line,
            };
            return Err(SyntaxError {
                line,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq {
                line,
                anchor,
                items,
            }) => (Node::new(line, Value::Seq(items)), anchor),
            Some(Frame::Map {
                line,
                anchor,
                entries,
                ..
            }) => (Node::new(line, Value::Map(entries)), anchor),
            None => return Ok(()),
        };
        self.add(anchor, node)
    }

    fn alias(&mut self, id: usize, line: usize) -> Result<(), SyntaxError> {
        let error = |message: String| SyntaxError { line, message };
        let (node, size) = self
            .anchors
            .get(&id)
            .ok_or_else(|| error("alias to an anchor that is not complete yet".into()))?;
        self.copied += size;
        if self.copied > MAX_ALIAS_NODES {
            let message = format!("aliases expand to more than {MAX_ALIAS_NODES} nodes");
            return Err(error(message));
        }
        let node = Node {
            line,
            ..node.clone()
        };
        self.add(0, node)
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn add(&mut self, anchor: usize, node: Node) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.count()));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((name, line)) => entries.push((name, Node { line, ..node })),
                None => *key = Some(key_text(node)?),
            },
        }
        Ok(())
    }
}

fn key_text(node: Node) -> Result<(String, usize), SyntaxError> {
    match node.value {
        Value::Scalar { text, .. } => Ok((text, node.line)),
        _ => Err(SyntaxError {
            line: node.line,
            message: format!(
                "a mapping key must be a plain word, found {}",
                node.describe()
            ),
        }),
    }
}

impl Node {
    fn new(line: usize, value: Value) -> Node {
        Node { line, value }
    }

    fn scalar(line: usize, text: String, plain: bool) -> Node {
        Node::new(line, Value::Scalar { text, plain })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(String, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn lines_of_keys_and_items() {
        let root = parse("a: 1\nb:\n  - x\n  -\n    c: 2\n").unwrap().unwrap();
        let entries = map(&root);
        assert_eq!((entries[0].0.as_str(), entries[0].1.line), ("a", 1));
        assert_eq!((entries[1].0.as_str(), entries[1].1.line), ("b", 2));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(map(&items[1])[0].1.line, 5);
    }

    #[test]
    fn nulls_and_quoted_scalars() {
        let root = parse("a:\nb: ~\nc: 'null'\n").unwrap().unwrap();
        let nulls: Vec<bool> = map(&root).iter().map(|(_, n)| n.is_null()).collect();
        assert_eq!(nulls, [true, true, false]);
    }

    #[test]
    fn aliases_expand_and_bombs_do_not() {
        let root = parse("a: &x {k: 1}\nb: *x\n").unwrap().unwrap();
        assert_eq!(map(&root)[1].1.line, 2);
        assert_eq!(map(&map(&root)[1].1)[0].0, "k");
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            bomb += &format!("l{i}: &l{i} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n");
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert!(parse("a: [1, 2\n")
            .unwrap_err()
            .message
            .contains("YAML syntax"));
        assert_eq!(parse("a: 1\n---\nb: 2\n").unwrap_err().line, 2);
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        assert!(parse("? [a]\n: 1\n").unwrap_err().message.contains("key"));
    }
}
