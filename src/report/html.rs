//! Self-contained HTML pages: one file with its style, figures and text inline, that
//! any browser opens from disk — no server, no network, no script.
//!
//! A [`Page`] is a title, an introduction and [`Section`]s of blocks: paragraphs,
//! [`Table`]s, figures ([`Svg`]), preformatted text and timelines (the sentences of
//! [`crate::explain`]). `memsim run`, `compare`, `sweep` and `density` each write one
//! (`report.html`) from these blocks.
//!
//! All text is escaped when the page is rendered, so any scenario name, VM name or
//! YAML comment shows as written and can never become markup. The only markup taken
//! as is comes from [`Svg::new`], which accepts a plain SVG document (what the plots
//! render) and refuses scripts, event handlers, links and embedded HTML, so the page
//! stays inert and needs nothing outside itself. The only links besides the page's own
//! anchors are table cells linking to other reports by a relative path
//! ([`Table::linked_row`]), checked to stay relative. Rendering is deterministic: the
//! same blocks give the same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::explain::{clock, Line};

/// An HTML document under construction.
#[derive(Clone, Debug, Default)]
pub struct Page {
    title: String,
    intro: Vec<String>,
    sections: Vec<Section>,
}

/// A titled part of a page, listed in the page's table of contents.
#[derive(Clone, Debug)]
pub struct Section {
    heading: String,
    blocks: Vec<Block>,
}

#[derive(Clone, Debug)]
enum Block {
    Text(String),
    Table(Table),
    Figure { svg: Svg, caption: String },
    Pre(String),
    Timeline(Vec<Line>),
}

/// A table of text cells; columns marked numeric are right-aligned.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    numeric: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

/// A table cell: text, or text linking to another file by a relative path.
#[derive(Clone, Debug)]
struct Cell {
    text: String,
    href: Option<String>,
}

/// An SVG document checked to be inert (see [`Svg::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Svg(String);

impl Page {
    pub fn new(title: impl Into<String>) -> Page {
        Page {
            title: title.into(),
            ..Page::default()
        }
    }

    /// A paragraph under the title.
    pub fn intro(mut self, text: impl Into<String>) -> Page {
        self.intro.push(text.into());
        self
    }

    pub fn section(mut self, section: Section) -> Page {
        self.sections.push(section);
        self
    }

    /// Writes the page to `dir/report.html`, atomically; returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("report.html");
        super::write_atomic(&path, self.render().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let ids = section_ids(&self.sections);
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let _ = writeln!(out, "<title>{}</title>", escape(&self.title));
        let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<header>");
        let _ = writeln!(out, "<h1>{}</h1>", escape(&self.title));
        for p in &self.intro {
            let _ = writeln!(out, "<p>{}</p>", escape(p));
        }
        if !self.sections.is_empty() {
            out.push_str("<nav><ul>\n");
            for (s, id) in self.sections.iter().zip(&ids) {
                let _ = writeln!(out, "<li><a href=\"#{id}\">{}</a></li>", escape(&s.heading));
            }
            out.push_str("</ul></nav>\n");
        }
        out.push_str("</header>\n<main>\n");
        for (s, id) in self.sections.iter().zip(&ids) {
            s.render(id, &mut out);
        }
        let _ = writeln!(
            out,
            "</main>\n<footer>memsim {}</footer>\n</body>\n</html>",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

impl Section {
    pub fn new(heading: impl Into<String>) -> Section {
        Section {
            heading: heading.into(),
            blocks: Vec::new(),
        }
    }

    pub fn text(mut self, text: impl Into<String>) -> Section {
        self.blocks.push(Block::Text(text.into()));
        self
    }

    pub fn table(mut self, table: Table) -> Section {
        self.blocks.push(Block::Table(table));
        self
    }

    pub fn figure(mut self, svg: Svg, caption: impl Into<String>) -> Section {
        let caption = caption.into();
        self.blocks.push(Block::Figure { svg, caption });
        self
    }

    /// Adds each of `figures` (file stem, SVG), captioned from `captions` by its stem
    /// (figures not listed are captioned by their stem).
    pub fn figures(mut self, figures: Vec<(String, Svg)>, captions: &[(&str, &str)]) -> Section {
        for (stem, svg) in figures {
            let caption = captions
                .iter()
                .find(|(name, _)| *name == stem)
                .map_or(stem.clone(), |(_, c)| c.to_string());
            self = self.figure(svg, caption);
        }
        self
    }

    /// Text shown as is, in a monospaced font (a YAML file, a log).
    pub fn preformatted(mut self, text: impl Into<String>) -> Section {
        self.blocks.push(Block::Pre(text.into()));
        self
    }

    /// Sentences with their simulated time, details indented by their depth.
    pub fn timeline(mut self, lines: &[Line]) -> Section {
        self.blocks.push(Block::Timeline(lines.to_vec()));
        self
    }

    fn render(&self, id: &str, out: &mut String) {
        let _ = writeln!(
            out,
            "<section id=\"{id}\">\n<h2>{}</h2>",
            escape(&self.heading)
        );
        for block in &self.blocks {
            match block {
                Block::Text(t) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(t));
                }
                Block::Table(t) => t.render(out),
                Block::Figure { svg, caption } => {
                    let _ = writeln!(
                        out,
                        "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                        svg.0,
                        escape(caption)
                    );
                }
                Block::Pre(t) => {
                    let _ = writeln!(out, "<pre>{}</pre>", escape(t));
                }
                Block::Timeline(lines) => render_timeline(lines, out),
            }
        }
        out.push_str("</section>\n");
    }
}

impl Table {
    pub fn new<S: AsRef<str>>(header: &[S]) -> Table {
        Table {
            header: header.iter().map(|h| h.as_ref().to_string()).collect(),
            numeric: vec![false; header.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the given columns (numbers line up by their last digit).
    pub fn numeric(mut self, columns: &[usize]) -> Table {
        for &c in columns {
            if let Some(n) = self.numeric.get_mut(c) {
                *n = true;
            }
        }
        self
    }

    /// A CSV file as written (header and records, cells unchanged), its number
    /// columns right-aligned.
    pub fn from_csv(bytes: &[u8]) -> anyhow::Result<Table> {
        let mut reader = csv::Reader::from_reader(bytes);
        let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
        let mut table = Table::new(&header);
        for record in reader.records() {
            table.row(record?.iter().map(String::from));
        }
        Ok(table.numeric_where_numbers())
    }

    /// Right-aligns the columns whose cells are all numbers (or empty, but not all).
    pub fn numeric_where_numbers(mut self) -> Table {
        for (c, numeric) in self.numeric.iter_mut().enumerate() {
            let cells = || self.rows.iter().map(|r| r[c].text.as_str());
            *numeric = cells().any(|t| !t.is_empty())
                && cells().all(|t| t.is_empty() || t.parse::<f64>().is_ok());
        }
        self
    }

    /// Adds a row; missing cells are left empty, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<Cell> = cells
            .into_iter()
            .map(|text| Cell {
                text: text.into(),
                href: None,
            })
            .collect();
        row.resize_with(self.header.len(), || Cell {
            text: String::new(),
            href: None,
        });
        self.rows.push(row);
    }

    /// Adds a row whose cell in `column` links to `href`, a relative path to another
    /// file of the same output (`runs/0001-…/report.html`); a link that could leave the
    /// output (a scheme, an absolute path, `..`) is an error.
    pub fn linked_row<S: Into<String>>(
        &mut self,
        cells: impl IntoIterator<Item = S>,
        column: usize,
        href: &str,
    ) -> Result<(), String> {
        if !is_local(href) {
            return Err(format!(
                "{href:?} is not a relative path inside the output folder"
            ));
        }
        self.row(cells);
        if let Some(cell) = self.rows.last_mut().and_then(|r| r.get_mut(column)) {
            cell.href = Some(href.to_string());
        }
        Ok(())
    }

    fn render(&self, out: &mut String) {
        out.push_str("<div class=\"wide\"><table>\n<thead><tr>");
        for (h, &num) in self.header.iter().zip(&self.numeric) {
            let _ = write!(out, "<th{}>{}</th>", align(num), escape(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for (cell, &num) in row.iter().zip(&self.numeric) {
                let text = escape(&cell.text);
                match &cell.href {
                    Some(href) => {
                        let href = escape(href);
                        let _ = write!(out, "<td{}><a href=\"{href}\">{text}</a></td>", align(num));
                    }
                    None => {
                        let _ = write!(out, "<td{}>{text}</td>", align(num));
                    }
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table></div>\n");
    }
}

/// A path relative to the page that stays below its folder: no scheme, no absolute
/// path, no `..`, no query or fragment, nothing but file-name characters and `/`.
fn is_local(href: &str) -> bool {
    !href.is_empty()
        && !href.starts_with('/')
        && href.split('/').all(|part| !part.is_empty() && part != "..")
        && href
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-=/".contains(&b))
}

impl Svg {
    /// Accepts an SVG document (an XML declaration before it is dropped) that cannot
    /// act or reach out: no `<script>`, no `<foreignObject>`, no `on…=` event handler,
    /// no `href` (links and external images), no `javascript:`.
    pub fn new(text: &str) -> Result<Svg, String> {
        let mut body = text.trim();
        if body.starts_with("<?xml") {
            body = body
                .split_once("?>")
                .map_or("", |(_, rest)| rest)
                .trim_start();
        }
        if !body.starts_with("<svg") || !body.ends_with("</svg>") {
            return Err("not an SVG document (expected <svg …>…</svg>)".into());
        }
        let lower = body.to_ascii_lowercase();
        for banned in [
            "<script",
            "<foreignobject",
            "href",
            "javascript:",
            "<!entity",
        ] {
            if lower.contains(banned) {
                return Err(format!(
                    "SVG contains {banned:?}, which a report may not embed"
                ));
            }
        }
        if has_event_handler(&lower) {
            return Err("SVG contains an event handler attribute (on…=)".into());
        }
        Ok(Svg(body.to_string()))
    }

    /// An SVG file an output has just written, checked by [`Svg::new`].
    pub fn read(path: &Path) -> anyhow::Result<Svg> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} for report.html", path.display()))?;
        Svg::new(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The SVG files among `written`, in that order, each with its file stem.
    pub fn read_all(written: &[PathBuf]) -> anyhow::Result<Vec<(String, Svg)>> {
        written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "svg"))
            .map(|path| {
                let stem = path
                    .file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned());
                Ok((stem, Svg::read(path)?))
            })
            .collect()
    }
}

/// Whether an attribute named `on…` appears: whitespace, `on`, letters, `=`.
fn has_event_handler(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    lower.match_indices("on").any(|(i, _)| {
        let after_space = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let rest = &bytes[i + 2..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let next = rest[letters..].iter().find(|b| !b.is_ascii_whitespace());
        after_space && letters > 0 && next == Some(&b'=')
    })
}

fn render_timeline(lines: &[Line], out: &mut String) {
    out.push_str("<table class=\"timeline\">\n<tbody>\n");
    for line in lines {
        let time = line.at.map_or(String::new(), clock);
        let _ = writeln!(
            out,
            "<tr class=\"d{}\"><td class=\"t\">{}</td><td>{}</td></tr>",
            line.depth.min(2),
            escape(&time),
            escape(&line.text)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn align(numeric: bool) -> &'static str {
    if numeric {
        " class=\"n\""
    } else {
        ""
    }
}

/// Unique, stable anchors from the headings: `summary`, `vms`, `vms-2`.
fn section_ids(sections: &[Section]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for s in sections {
        let mut slug: String = s
            .heading
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        slug = slug
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        if slug.is_empty() {
            slug = "section".into();
        }
        let base = slug.clone();
        let mut n = 1;
        while ids.contains(&slug) {
            n += 1;
            slug = format!("{base}-{n}");
        }
        ids.push(slug);
    }
    ids
}

/// Text as HTML character data or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain and print-friendly: system fonts, wide tables scroll, figures scale down.
const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0 auto;max-width:1400px;padding:1em 2em;color:#1d1d1f;background:#fff;line-height:1.45}
h1{margin:.2em 0 .4em;font-size:1.7em}
h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4em 1.2em}
nav a{color:#0b5cad;text-decoration:none}
.wide{overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border-bottom:1px solid #e5e5e5;padding:.25em .7em;text-align:left;vertical-align:top}
th{background:#f4f5f7}
.n{text-align:right;font-variant-numeric:tabular-nums}
td a{white-space:nowrap}
table.timeline td.t{font-family:ui-monospace,'DejaVu Sans Mono',monospace;white-space:nowrap;color:#555}
table.timeline tr.d1 td:last-child{padding-left:2.2em;color:#444}
table.timeline tr.d2 td:last-child{padding-left:4.4em;color:#666}
figure{margin:1em 0;overflow-x:auto}
figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#555;font-size:.92em;margin-top:.3em}
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:.88em}
footer{margin-top:3em;color:#888;font-size:.85em}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let mut table = Table::new(&["a<b", "n"]).numeric(&[1]);
        table.row(["<script>alert(1)</script>", "1 & 2"]);
        let page = Page::new("t\"<x>").intro("it's").section(
            Section::new("S & S")
                .text("<b>")
                .table(table)
                .preformatted("k: <v>"),
        );
        let html = page.render();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
        for want in [
            "<title>t&quot;&lt;x&gt;</title>",
            "it&#39;s",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "1 &amp; 2",
            "<th>a&lt;b</th>",
            "k: &lt;v&gt;",
            "<a href=\"#s-s\">S &amp; S</a>",
        ] {
            assert!(html.contains(want), "{want} missing in {html}");
        }
    }

    #[test]
    fn svg_must_be_inert() {
        let ok = "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\" xmlns=\"http://www.w3.org/2000/svg\"><text>on = off</text></svg>\n";
        assert!(Svg::new(ok).unwrap().0.starts_with("<svg"));
        for bad in [
            "<svg><script>x()</script></svg>",
            "<svg onload=\"x()\"></svg>",
            "<svg><rect ONCLICK = 'x'/></svg>",
            "<svg><image href=\"http://x/y.png\"/></svg>",
            "<svg><foreignObject><p>hi</p></foreignObject></svg>",
            "<p>not svg</p>",
            "<svg>",
        ] {
            assert!(Svg::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_stay_relative_and_inside_the_output() {
        let mut table = Table::new(&["run", "x"]);
        table
            .linked_row(["a&b", "1"], 0, "runs/0001-count=2-seed=7/report.html")
            .unwrap();
        for bad in [
            "http://example.com/x",
            "/etc/passwd",
            "../other/report.html",
            "runs//x",
            "javascript:alert(1)",
            "x\" onclick=\"y",
            "",
        ] {
            assert!(table.linked_row(["r", "1"], 0, bad).is_err(), "{bad}");
        }
        let html = Page::new("p")
            .section(Section::new("s").table(table))
            .render();
        assert!(
            html.contains("<td><a href=\"runs/0001-count=2-seed=7/report.html\">a&amp;b</a></td>"),
            "{html}"
        );
        assert_eq!(html.matches("<tr>").count(), 2, "refused links add no row");
    }

    #[test]
    fn csv_tables_keep_their_cells_and_align_number_columns() {
        let table =
            Table::from_csv(b"policy,peak,note\nnone,1.5,\nballoon,-2e3,\"a, b\"\n").unwrap();
        let html = Page::new("p")
            .section(Section::new("s").table(table))
            .render();
        assert!(html.contains("<th>policy</th><th class=\"n\">peak</th><th>note</th>"));
        assert!(html.contains("<td>balloon</td><td class=\"n\">-2e3</td><td>a, b</td>"));
    }

    #[test]
    fn sections_get_unique_anchors() {
        let page = Page::new("p")
            .section(Section::new("VMs"))
            .section(Section::new("VMs"))
            .section(Section::new("  "));
        let html = page.render();
        for id in ["id=\"vms\"", "id=\"vms-2\"", "id=\"section\""] {
            assert!(html.contains(id), "{id}");
        }
    }
}
