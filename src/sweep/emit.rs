//! A tree back to YAML text, line for line.
//!
//! Each grid point's scenario is the base tree with that point's values put in, and it
//! is read by the normal loader, which takes text. The text is written in flow style
//! (`{name: x, vms: [{vmid: 101}]}`) with every node on the line it had in the file:
//! flow collections may span lines, so padding with newlines before a node is enough.
//! The loader's messages about a grid point then name the same lines as for the file
//! itself. Scalars keep their quoting where it matters to the loader (a plain `null`
//! is empty, a quoted one is not).

use super::located::{Node, Value};

/// `root` as YAML whose nodes start on their recorded lines (line 0: anywhere).
pub(super) fn emit(root: &Node) -> String {
    let mut e = Emitter {
        out: String::new(),
        line: 1,
        keep_lines: true,
    };
    e.node(root);
    e.out.push('\n');
    e.out
}

/// `node` on one line, for a CSV cell, a run id or a plot axis: a scalar as written,
/// a collection in flow style.
pub(super) fn one_line(node: &Node) -> String {
    if let Value::Scalar { text, .. } = &node.value {
        return text.clone();
    }
    let mut e = Emitter {
        out: String::new(),
        line: 1,
        keep_lines: false,
    };
    e.node(node);
    e.out
}

struct Emitter {
    out: String,
    /// The line being written, from 1.
    line: usize,
    keep_lines: bool,
}

impl Emitter {
    fn goto(&mut self, line: usize) {
        while self.keep_lines && self.line < line {
            self.out.push('\n');
            self.line += 1;
        }
    }

    fn node(&mut self, node: &Node) {
        self.goto(node.line);
        match &node.value {
            Value::Scalar { text, .. } if node.is_null() => {
                self.out
                    .push_str(if text.is_empty() { "null" } else { text });
            }
            Value::Scalar { text, plain } => self.scalar(text, *plain),
            Value::Seq(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.node(item);
                }
                self.out.push(']');
            }
            Value::Map(entries) => {
                self.out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    // A mapping value carries its key's line.
                    self.goto(value.line);
                    self.scalar(key, true);
                    self.out.push_str(": ");
                    self.node(value);
                }
                self.out.push('}');
            }
        }
    }

    /// Plain where the text cannot be misread in flow style, double-quoted otherwise.
    fn scalar(&mut self, text: &str, plain: bool) {
        if plain && safe_plain(text) {
            self.out.push_str(text);
        } else {
            quote(&mut self.out, text);
        }
    }
}

/// Text that reads back as the same plain scalar in a flow collection: no indicator
/// characters, no spaces, and not null-like (a plain null is written as it was, above).
fn safe_plain(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+', '.']).unwrap_or(text);
    body.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/+-=".contains(&b))
        && !matches!(text, "null" | "Null" | "NULL")
}

/// A YAML double-quoted scalar; anything that is not printable on one line is escaped.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::located;
    use super::*;

    const FILE: &str = "\
# a comment
name: x   # trailing
host:
  memory: 64GiB
  note: \"a, b: [c]\"
vms:
  - vmid: 101
    workload: |
      two
      lines
  - {vmid: 102, empty: ~, quoted: 'null', odd: \"tab\\there \\u00e9 \\\\ \\\"q\\\"\"}
last: -1
";

    #[test]
    fn emitted_text_reads_back_as_the_same_tree_on_the_same_lines() {
        let tree = located::parse(FILE).unwrap().unwrap();
        let text = emit(&tree);
        let back = located::parse(&text).unwrap().unwrap();
        assert_eq!(back, tree, "{text}");
        assert!(text.starts_with("\n{name: x"), "{text}");
    }

    #[test]
    fn aliases_are_written_out() {
        let tree = located::parse("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        assert_eq!(emit(&tree), "{a: {k: v}, \nb: {k: v}}\n");
    }

    #[test]
    fn one_line_renders_scalars_as_written_and_collections_in_flow_style() {
        let tree = located::parse("a: 6GiB\nb:\n  shape: ramp\n  from: 1GiB\n").unwrap();
        let Value::Map(entries) = tree.unwrap().value else {
            panic!()
        };
        assert_eq!(one_line(&entries[0].1), "6GiB");
        assert_eq!(one_line(&entries[1].1), "{shape: ramp, from: 1GiB}");
    }
}
