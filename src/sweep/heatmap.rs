//! `sweep_heatmap.png` / `.svg`: for a sweep of two parameters, one metric per grid
//! cell (the mean over the seeds), so the safe region of the grid shows at a glance.
//!
//! Like the run plots (`report/plot`) it is drawn once per backend by the same code,
//! with the bundled font, from integer pixel arithmetic only, so its bytes depend on
//! nothing but the table. The first parameter runs up the y axis, the second along x;
//! values are categories (as written), so uneven steps do not distort the picture.
//! Each cell also prints its value: colour alone is hard to read exactly.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::path::last_key;
use super::{Definition, Parameter, Table};
use crate::report::{register_bundled_font, FONT};

const SIZE: (u32, u32) = (1200, 860);
const LEGEND_WIDTH: u32 = 230;
/// Room around the grid for tick labels and axis titles: left, bottom, top, right.
const MARGINS: (i32, i32, i32, i32) = (190, 110, 20, 30);
/// Tick labels longer than this are cut (a mapping value can be long).
const MAX_TICK_CHARS: usize = 24;
const NO_DATA: RGBColor = RGBColor(220, 220, 220);
/// Viridis at five stops: perceptually even, readable in greyscale and by the
/// colour-blind.
const STOPS: [(u8, u8, u8); 5] = [
    (68, 1, 84),
    (59, 82, 139),
    (33, 145, 140),
    (94, 201, 98),
    (253, 231, 37),
];

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A prepared heatmap.
pub(super) struct Heatmap {
    title: String,
    legend_title: [String; 2],
    x: Axis,
    y: Axis,
    /// Mean per cell in display units, `[y][x]`; `None` where no run has a value.
    cells: Vec<Vec<Option<f64>>>,
    range: (f64, f64),
}

struct Axis {
    title: String,
    ticks: Vec<String>,
}

/// How a column's values are shown: its name says its unit (`_bytes`, `_pct`, ...).
struct Unit {
    words: String,
    unit: &'static str,
    divisor: f64,
}

impl Unit {
    fn of(column: &str) -> Unit {
        const SUFFIXES: [(&str, &str, f64); 4] = [
            ("_bytes", "GiB", (1u64 << 30) as f64),
            ("_pct", "%", 1.0),
            ("_s", "s", 1.0),
            ("_pages", "pages", 1.0),
        ];
        let (stem, unit, divisor) = SUFFIXES
            .iter()
            .find_map(|&(suffix, unit, div)| Some((column.strip_suffix(suffix)?, unit, div)))
            .unwrap_or((column, "", 1.0));
        Unit {
            words: stem.replace('_', " "),
            unit,
            divisor,
        }
    }

    fn label(&self) -> String {
        match self.unit {
            "" => self.words.clone(),
            unit => format!("{} ({unit})", self.words),
        }
    }
}

impl Heatmap {
    /// The heatmap of `table`, if the sweep has exactly two parameters.
    pub(super) fn new(def: &Definition, table: &Table) -> Option<Heatmap> {
        let [py, px] = &def.parameters[..] else {
            return None;
        };
        let column = table.header.iter().position(|h| *h == def.heatmap)?;
        let unit = Unit::of(&def.heatmap);
        let (nx, ny) = (px.values.len(), py.values.len());
        let mut sums = vec![vec![(0.0, 0u32); nx]; ny];
        for row in &table.rows {
            let value = row.cells.get(column).and_then(|c| c.parse::<f64>().ok());
            let cell = sums
                .get_mut(row.point / nx)
                .and_then(|r| r.get_mut(row.point % nx));
            if let (Some(v), Some(cell)) = (value.filter(|v| v.is_finite()), cell) {
                cell.0 += v / unit.divisor;
                cell.1 += 1;
            }
        }
        let cells: Vec<Vec<Option<f64>>> = sums
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&(s, n)| (n > 0).then(|| s / f64::from(n)))
                    .collect()
            })
            .collect();
        let seeds = match def.seeds.len() {
            1 => "one seed".to_string(),
            n => format!("mean of {n} seeds"),
        };
        Some(Heatmap {
            title: format!("{}: {}, {seeds}", def.scenario, unit.label()),
            legend_title: [
                unit.words.clone(),
                match unit.unit {
                    "" => String::new(),
                    u => format!("({u})"),
                },
            ],
            range: range(&cells),
            x: Axis::new(px),
            y: Axis::new(py),
            cells,
        })
    }

    /// The PNG bytes and the SVG text.
    pub(super) fn render(&self) -> anyhow::Result<(Vec<u8>, String)> {
        register_bundled_font();
        let (w, h) = SIZE;
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present()?;
        }
        let mut png_bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut png_bytes, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present()?;
        }
        svg.push('\n');
        Ok((png_bytes, svg))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 26))?;
        let (plot, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let (w, h) = plot.dim_in_pixel();
        let (left, bottom, top, right) = MARGINS;
        let grid = Grid {
            x0: left,
            y0: top,
            x1: w as i32 - right,
            y1: h as i32 - bottom,
            nx: self.x.ticks.len() as i32,
            ny: self.y.ticks.len() as i32,
        };
        self.draw_cells(&plot, &grid)?;
        self.draw_axes(&plot, &grid)?;
        self.draw_legend(&legend, grid.y0, grid.y1)
    }

    fn draw_cells<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        g: &Grid,
    ) -> DrawResult<DB> {
        let font_px = (g.cell_height(0) / 4)
            .min(g.cell_width(0) / 8)
            .clamp(10, 24) as u32;
        for (yi, row) in self.cells.iter().enumerate() {
            for (xi, value) in row.iter().enumerate() {
                let (x0, y0, x1, y1) = g.cell(xi as i32, yi as i32);
                let t = value.map(|v| self.position(v));
                let fill = t.map_or(NO_DATA, viridis);
                area.draw(&Rectangle::new([(x0, y0), (x1, y1)], fill.filled()))?;
                area.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.stroke_width(1)))?;
                let text = value.map_or("no data".to_string(), number);
                let color = if t.is_some_and(|t| t < 0.6) {
                    WHITE
                } else {
                    BLACK
                };
                let style = (FONT, font_px)
                    .into_font()
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw_text(&text, &style, ((x0 + x1) / 2, (y0 + y1) / 2))?;
            }
        }
        Ok(())
    }

    fn draw_axes<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        g: &Grid,
    ) -> DrawResult<DB> {
        let tick = |h, v| (FONT, 17).into_font().color(&BLACK).pos(Pos::new(h, v));
        for (xi, label) in self.x.ticks.iter().enumerate() {
            let (x0, _, x1, _) = g.cell(xi as i32, 0);
            area.draw_text(
                label,
                &tick(HPos::Center, VPos::Top),
                ((x0 + x1) / 2, g.y1 + 10),
            )?;
        }
        for (yi, label) in self.y.ticks.iter().enumerate() {
            let (_, y0, _, y1) = g.cell(0, yi as i32);
            area.draw_text(
                label,
                &tick(HPos::Right, VPos::Center),
                (g.x0 - 10, (y0 + y1) / 2),
            )?;
        }
        let title = (FONT, 20).into_font().color(&BLACK);
        let x_title = title.pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text(&self.x.title, &x_title, ((g.x0 + g.x1) / 2, g.y1 + 55))?;
        let y_title = title
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text(&self.y.title, &y_title, (20, (g.y0 + g.y1) / 2))?;
        area.draw(&Rectangle::new(
            [(g.x0, g.y0), (g.x1, g.y1)],
            BLACK.stroke_width(1),
        ))
    }

    /// A colour bar with the metric's name and unit above and five values beside it.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        top: i32,
        bottom: i32,
    ) -> DrawResult<DB> {
        let text = |px| (FONT, px).into_font().color(&BLACK);
        let bar_top = top + 60;
        for (i, line) in self.legend_title.iter().enumerate() {
            area.draw_text(line, &text(18), (10, top + 22 * i as i32))?;
        }
        let height = (bottom - bar_top).max(1);
        for dy in 0..height {
            let t = 1.0 - f64::from(dy) / f64::from(height);
            let y = bar_top + dy;
            area.draw(&Rectangle::new([(10, y), (40, y + 1)], viridis(t).filled()))?;
        }
        area.draw(&Rectangle::new(
            [(10, bar_top), (40, bottom)],
            BLACK.stroke_width(1),
        ))?;
        let (lo, hi) = self.range;
        for k in 0..=4 {
            let y = bottom - height * k / 4;
            let value = lo + (hi - lo) * f64::from(k) / 4.0;
            let style = text(16).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&PathElement::new(
                vec![(40, y), (46, y)],
                BLACK.stroke_width(1),
            ))?;
            area.draw_text(&number(value), &style, (50, y))?;
        }
        Ok(())
    }

    /// Where `value` sits in the colour range, 0..=1 (the middle when all are equal).
    fn position(&self, value: f64) -> f64 {
        let (lo, hi) = self.range;
        if hi > lo {
            ((value - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// Units of keys whose values are usually written as bare numbers, for axis titles
/// only (the loader decides what a value means; this merely says it to the reader).
const BARE_UNITS: [(&str, &str); 10] = [
    ("ballooning-target", "%"),
    ("count", "VMs"),
    ("memory", "MiB"),
    ("balloon", "MiB"),
    ("duration", "s"),
    ("tick", "s"),
    ("sample_interval", "s"),
    ("interval", "s"),
    ("start_at", "s"),
    ("stop_at", "s"),
];

impl Axis {
    /// Ticks are the values as written; a unit they all share moves into the title,
    /// and bare numbers get their key's usual unit.
    fn new(p: &Parameter) -> Axis {
        let written = common_unit(&p.values);
        let ticks = p
            .values
            .iter()
            .map(|v| match written {
                Some(u) => cut(v.strip_suffix(u).unwrap_or(v).trim()),
                None => cut(v),
            })
            .collect();
        let bare = p.values.iter().all(|v| unit_after_number(v) == Some(""));
        let key = last_key(&p.path);
        let implied = BARE_UNITS
            .iter()
            .find(|(k, _)| bare && *k == key.as_str())
            .map(|(_, u)| *u);
        Axis {
            title: match written.or(implied) {
                Some(u) => format!("{} ({u})", p.path),
                None => p.path.clone(),
            },
            ticks,
        }
    }
}

/// The unit suffix every value has after a number (`GiB` in `48GiB, 64GiB`), if any.
fn common_unit(values: &[String]) -> Option<&str> {
    let first = unit_after_number(values.first()?)?;
    (!first.is_empty() && values.iter().all(|v| unit_after_number(v) == Some(first)))
        .then_some(first)
}

/// `"48GiB"` → `Some("GiB")`, `"70"` → `Some("")`, `"web"` → `None`.
fn unit_after_number(v: &str) -> Option<&str> {
    let at = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(at);
    (number.parse::<f64>().is_ok()).then_some(unit.trim())
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_TICK_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Cells in pixel coordinates; row 0 at the bottom. Edges come from integer division
/// of the whole span, so cells tile the grid exactly.
struct Grid {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
    nx: i32,
    ny: i32,
}

impl Grid {
    fn cell(&self, xi: i32, yi: i32) -> (i32, i32, i32, i32) {
        let x = |i: i32| self.x0 + (self.x1 - self.x0) * i / self.nx.max(1);
        let y = |i: i32| self.y1 - (self.y1 - self.y0) * i / self.ny.max(1);
        (x(xi), y(yi + 1), x(xi + 1), y(yi))
    }

    fn cell_width(&self, xi: i32) -> i32 {
        let (x0, _, x1, _) = self.cell(xi, 0);
        x1 - x0
    }

    fn cell_height(&self, yi: i32) -> i32 {
        let (_, y0, _, y1) = self.cell(0, yi);
        y1 - y0
    }
}

/// The smallest and largest cell value; `(0, 1)` when there is none.
fn range(cells: &[Vec<Option<f64>>]) -> (f64, f64) {
    let values = cells.iter().flatten().flatten().copied();
    let lo = values.clone().reduce(f64::min);
    let hi = values.reduce(f64::max);
    match (lo, hi) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0.0, 1.0),
    }
}

/// Three significant digits or so, without a trailing `.0` on whole numbers.
fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Viridis at `t` in 0..=1, linear between the stops.
fn viridis(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let scaled = t * (STOPS.len() - 1) as f64;
    let i = (scaled.floor() as usize).min(STOPS.len() - 2);
    let f = scaled - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_from_the_column_name() {
        assert_eq!(Unit::of("peak_memused_pct").label(), "peak memused (%)");
        assert_eq!(Unit::of("peak_memused_bytes").label(), "peak memused (GiB)");
        assert_eq!(Unit::of("guest_oom_kills").label(), "guest oom kills");
    }

    #[test]
    fn a_shared_unit_moves_to_the_axis_title() {
        let p = |values: &[&str]| Parameter {
            path: "host.memory".into(),
            label: "memory".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let a = Axis::new(&p(&["48GiB", "64GiB"]));
        assert_eq!(
            (a.title.as_str(), a.ticks.clone()),
            (
                "host.memory (GiB)",
                vec!["48".to_string(), "64".to_string()]
            )
        );
        let b = Axis::new(&p(&["48GiB", "65536MiB"]));
        assert_eq!(b.ticks, ["48GiB", "65536MiB"]);
        assert_eq!(Axis::new(&p(&["4096", "8192"])).title, "host.memory (MiB)");
        let target = Parameter {
            path: "pvestatd.ballooning-target".into(),
            ..p(&["70", "80"])
        };
        assert_eq!(Axis::new(&target).title, "pvestatd.ballooning-target (%)");
        let other = Parameter {
            path: "host.swappiness".into(),
            ..p(&["10", "60"])
        };
        assert_eq!(Axis::new(&other).title, "host.swappiness");
    }

    #[test]
    fn colours_and_numbers() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        assert_eq!(number(3.0), "3");
        assert_eq!(number(81.234), "81.2");
        assert_eq!(number(0.125), "0.12");
    }
}
