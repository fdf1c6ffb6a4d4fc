//! `memsim calibrate`'s outputs: both traces, the comparison at every pass end, and a
//! plot of the two traces over each other.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::ksm::compare::Comparison;
use crate::ksm::trace::{Row, Trace};
use crate::ksm::workload::Workload;
use crate::report::{register_bundled_font, write_atomic, FONT};

/// Writes into `dir` (created if missing), each file atomically: `real.csv` and
/// `sim.csv` (the traces), `comparison.csv` (one row per matched pass end per counter:
/// real, sim, error) and `calibration.png`/`.svg` (page counters and `full_scans` over
/// time, real solid and simulated dashed, pass ends marked). Returns the paths written.
pub fn write_calibration(
    dir: &Path,
    w: &Workload,
    real: &Trace,
    sim: &Trace,
    cmp: &Comparison,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for (name, trace) in [("real.csv", real), ("sim.csv", sim)] {
        let mut bytes = Vec::new();
        trace.write_csv(&mut bytes)?;
        put(name, &bytes)?;
    }
    put("comparison.csv", &comparison_csv(cmp)?)?;
    let figure = Overlay::new(w, real, sim, cmp);
    put("calibration.svg", figure.svg()?.as_bytes())?;
    written.push(figure.png(&dir.join("calibration.png"))?);
    Ok(written)
}

/// `pass,t_real_s,t_sim_s,scored,counter,real,sim,error,rel_error`: `scored` is
/// `exact` before the workload's first event, `approx` after; `error` = sim − real,
/// `rel_error` = |error| / max(|real|, 1); cells without a value are empty.
fn comparison_csv(cmp: &Comparison) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "pass",
        "t_real_s",
        "t_sim_s",
        "scored",
        "counter",
        "real",
        "sim",
        "error",
        "rel_error",
    ])?;
    let cell = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
    for p in &cmp.passes {
        for c in &p.counters {
            let rel = match (c.error(), c.real) {
                (Some(e), Some(r)) => seconds(e.abs() as f64 / (r.abs() as f64).max(1.0)),
                _ => String::new(),
            };
            out.write_record([
                p.pass.to_string(),
                seconds(p.t_real_s),
                seconds(p.t_sim_s),
                (if p.exact { "exact" } else { "approx" }).to_string(),
                c.counter.clone(),
                cell(c.real),
                cell(c.sim),
                cell(c.error()),
                rel,
            ])?;
        }
    }
    Ok(out.into_inner()?)
}

/// At most 6 decimals, trailing zeros trimmed.
fn seconds(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
/// A page counter of the upper panel: name, colour, value of a row.
type PageCounter = (&'static str, RGBColor, fn(&Row) -> u64);

const SIZE: (u32, u32) = (1200, 820);
const HEADER: u32 = 44;
const LEGEND: u32 = 230;
const REAL: RGBColor = RGBColor(20, 20, 20);
const SIM: RGBColor = RGBColor(214, 39, 40);
/// More pass ends than this and the per-pass vertical lines would hide the data.
const MAX_PASS_LINES: usize = 60;

/// Counters drawn in the upper panel (pages).
const PAGES: [PageCounter; 5] = [
    ("pages_sharing", RGBColor(31, 119, 180), |r| {
        r.counters.pages_sharing
    }),
    ("pages_shared", RGBColor(255, 127, 14), |r| {
        r.counters.pages_shared
    }),
    ("pages_unshared", RGBColor(44, 160, 44), |r| {
        r.counters.pages_unshared
    }),
    ("pages_volatile", RGBColor(148, 103, 189), |r| {
        r.counters.pages_volatile
    }),
    ("ksm_zero_pages", RGBColor(140, 86, 75), |r| {
        r.counters.ksm_zero_pages
    }),
];

/// The overlay figure, prepared once and drawn on both backends.
struct Overlay<'a> {
    title: String,
    subtitle: String,
    real: &'a Trace,
    sim: &'a Trace,
    t_end: f64,
    pages_top: f64,
    scans_top: f64,
    first_event_s: Option<f64>,
    real_ends: Vec<(f64, f64)>,
    sim_ends: Vec<(f64, f64)>,
}

/// (t, full_scans) of the first row of each pass count ≥ 1.
fn pass_ends(t: &Trace) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut last = 0;
    for r in &t.rows {
        if r.counters.full_scans > last {
            last = r.counters.full_scans;
            out.push((r.t_s, last as f64));
        }
    }
    out
}

fn top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.08
    } else {
        1.0
    }
}

impl<'a> Overlay<'a> {
    fn new(w: &Workload, real: &'a Trace, sim: &'a Trace, cmp: &Comparison) -> Overlay<'a> {
        let rows = || real.rows.iter().chain(&sim.rows);
        let t_end = rows().map(|r| r.t_s).fold(w.duration_s, f64::max);
        let pages_max = rows()
            .flat_map(|r| PAGES.iter().map(move |(_, _, f)| f(r)))
            .max()
            .unwrap_or(0);
        let scans_max = rows().map(|r| r.counters.full_scans).max().unwrap_or(0);
        let s = &cmp.summary;
        let pct = |e: Option<f64>| e.map_or("—".to_string(), |e| format!("{:.1} %", e * 100.0));
        Overlay {
            title: format!("{} — real ksmd (solid) vs simulated (dashed)", w.name),
            subtitle: format!(
                "exact {}/{} pass ends, approx. error {}, pass-time error {}: {}",
                s.exact_ok,
                s.exact_total,
                pct(s.approx_mean_rel_err),
                pct(s.time_mean_rel_err),
                if s.passed() { "PASS" } else { "FAIL" }
            ),
            real,
            sim,
            t_end: if t_end > 0.0 { t_end } else { 1.0 },
            pages_top: top(pages_max as f64),
            scans_top: top(scans_max as f64),
            first_event_s: cmp.first_event_s,
            real_ends: pass_ends(real),
            sim_ends: pass_ends(sim),
        }
    }

    fn svg(&self) -> anyhow::Result<String> {
        register_bundled_font();
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
            root.fill(&WHITE)?;
            self.draw(&root)?;
            root.present()?;
        }
        text.push('\n');
        Ok(text)
    }

    /// The bitmap backend encodes only into a file it creates by path (and picks the
    /// format by the extension): draw into a temporary `.png` next to `path`, then
    /// rename it over `path`.
    fn png(&self, path: &Path) -> anyhow::Result<PathBuf> {
        register_bundled_font();
        let tmp = path.with_file_name(format!(".calibration.tmp-{}.png", std::process::id()));
        let drawn = (|| -> anyhow::Result<()> {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            root.fill(&WHITE)?;
            self.draw(&root)?;
            root.present()?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        })();
        if drawn.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        drawn.with_context(|| format!("rendering {}", path.display()))?;
        Ok(path.to_path_buf())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = root.split_vertically(HEADER);
        header.draw_text(&self.title, &(FONT, 20).into_font().color(&BLACK), (12, 4))?;
        header.draw_text(
            &self.subtitle,
            &(FONT, 14).into_font().color(&BLACK.mix(0.7)),
            (12, 26),
        )?;
        let (plots, legend) = body.split_horizontally(SIZE.0 - LEGEND);
        let height = SIZE.1 - HEADER;
        let (upper, lower) = plots.split_vertically(height * 64 / 100);
        self.draw_pages(&upper)?;
        self.draw_scans(&lower)?;
        self.draw_legend(&legend.margin(20, 0, 10, 0))
    }

    fn chart<'b, DB: DrawingBackend>(
        &self,
        area: &'b DrawingArea<DB, Shift>,
        y_top: f64,
        y_desc: &str,
    ) -> Result<Chart<'b, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..self.t_end, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc("time since run=1 (s)")
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        Ok(chart)
    }

    fn draw_pages<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut chart = self.chart(area, self.pages_top, "pages")?;
        let y = self.pages_top;
        if self.real_ends.len() + self.sim_ends.len() <= MAX_PASS_LINES {
            for &(t, _) in &self.real_ends {
                chart.draw_series(LineSeries::new([(t, 0.0), (t, y)], REAL.mix(0.18)))?;
            }
            for &(t, _) in &self.sim_ends {
                chart.draw_series(DashedLineSeries::new(
                    [(t, 0.0), (t, y)],
                    4,
                    4,
                    SIM.mix(0.25).into(),
                ))?;
            }
        }
        if let Some(t) = self.first_event_s.filter(|t| *t > 0.0) {
            chart.draw_series(LineSeries::new([(t, 0.0), (t, y)], BLACK.stroke_width(1)))?;
        }
        for (_, color, value) in PAGES {
            let points = |t: &Trace| -> Vec<(f64, f64)> {
                t.rows.iter().map(|r| (r.t_s, value(r) as f64)).collect()
            };
            chart.draw_series(LineSeries::new(points(self.real), color.stroke_width(2)))?;
            chart.draw_series(DashedLineSeries::new(
                points(self.sim),
                8,
                6,
                color.stroke_width(2),
            ))?;
        }
        Ok(())
    }

    fn draw_scans<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut chart = self.chart(area, self.scans_top, "full_scans")?;
        let points = |t: &Trace| -> Vec<(f64, f64)> {
            t.rows
                .iter()
                .map(|r| (r.t_s, r.counters.full_scans as f64))
                .collect()
        };
        chart.draw_series(LineSeries::new(points(self.real), REAL.stroke_width(1)))?;
        chart.draw_series(DashedLineSeries::new(
            points(self.sim),
            6,
            4,
            SIM.stroke_width(1),
        ))?;
        chart.draw_series(
            self.real_ends
                .iter()
                .map(|&p| Circle::new(p, 3, REAL.filled())),
        )?;
        chart.draw_series(
            self.sim_ends
                .iter()
                .map(|&p| Cross::new(p, 4, SIM.stroke_width(2))),
        )?;
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let font = (FONT, 14).into_font().color(&BLACK);
        let mut y = 10;
        let line = |y: i32, color: RGBColor, dashed: bool| -> DrawResult<DB> {
            let segments: &[(i32, i32)] = if dashed {
                &[(0, 9), (15, 24)]
            } else {
                &[(0, 24)]
            };
            for &(a, b) in segments {
                area.draw(&PathElement::new(
                    vec![(a, y), (b, y)],
                    color.stroke_width(2),
                ))?;
            }
            Ok(())
        };
        for (label, color, _) in PAGES {
            line(y, color, false)?;
            area.draw_text(label, &font, (32, y - 8))?;
            y += 22;
        }
        y += 12;
        line(y, REAL, false)?;
        area.draw_text("real", &font, (32, y - 8))?;
        y += 22;
        line(y, REAL, true)?;
        area.draw_text("simulated", &font, (32, y - 8))?;
        y += 34;
        area.draw(&Circle::new((12, y), 3, REAL.filled()))?;
        area.draw_text("real pass end", &font, (32, y - 8))?;
        y += 22;
        area.draw(&Cross::new((12, y), 4, SIM.stroke_width(2)))?;
        area.draw_text("simulated pass end", &font, (32, y - 8))?;
        if self.first_event_s.is_some_and(|t| t > 0.0) {
            y += 22;
            area.draw(&PathElement::new(
                vec![(12, y - 8), (12, y + 8)],
                BLACK.stroke_width(1),
            ))?;
            area.draw_text("first writer/process event", &font, (32, y - 8))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ksm::compare::compare;

    #[test]
    fn writes_both_traces_the_table_and_the_plot() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
        let w: Workload =
            serde_json::from_slice(&std::fs::read(data.join("w1_identical.json")).unwrap())
                .unwrap();
        let real =
            Trace::read_csv(std::fs::File::open(data.join("w1_identical.csv")).unwrap()).unwrap();
        let mut sim = real.clone();
        for r in &mut sim.rows {
            r.t_s *= 1.05;
        }
        sim.rows
            .iter_mut()
            .find(|r| r.counters.full_scans == 2)
            .unwrap()
            .counters
            .pages_sharing -= 4;
        let cmp = compare(&w, &real, &sim);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cal");
        let written = write_calibration(&out, &w, &real, &sim, &cmp).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "real.csv",
                "sim.csv",
                "comparison.csv",
                "calibration.svg",
                "calibration.png"
            ]
        );
        // Only the outputs: no temporary file is left behind.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5);
        let back = Trace::read_csv(std::fs::File::open(out.join("sim.csv")).unwrap()).unwrap();
        assert_eq!(back.rows.len(), sim.rows.len());
        let table = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
        assert!(
            table.starts_with("pass,t_real_s,t_sim_s,scored,counter,real,sim,error,rel_error\n")
        );
        assert!(
            table.contains("\n2,1.2329,1.294545,exact,pages_sharing,2282,2278,-4,0.001753\n"),
            "{table}"
        );
        assert!(table.contains("\n2,1.2329,1.294545,exact,pages_shared,18,18,0,0\n"));
        assert_eq!(
            table.lines().count(),
            1 + cmp.passes.len() * cmp.passes[0].counters.len()
        );
        let png = std::fs::read(out.join("calibration.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(out.join("calibration.svg")).unwrap();
        assert!(svg.contains("w1_identical") && svg.contains("FAIL"));
    }
}
