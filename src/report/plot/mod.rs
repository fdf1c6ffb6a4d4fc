//! The four figures of a run, each drawn once per backend (PNG and SVG) by the same
//! drawing code.
//!
//! A figure is first *prepared*: its series are extracted from the run, converted to
//! display units (GiB, MiB/s, minutes or hours) and downsampled to about one point per
//! pixel column, so drawing cost no longer depends on run length. Then it is *drawn*,
//! generically over the plotters backend, once as PNG and once as SVG, each into a
//! staged temporary file that the caller renames into place with the run's other
//! outputs.
//!
//! Text is set in the bundled DejaVu Sans, registered with plotters under the generic
//! family name `sans-serif`. That name is what plotters' own defaults look up, so no
//! label can fall back to a system font library (there is none: no fontconfig), and it
//! is also what an SVG viewer can always resolve.

mod balloons;
pub(crate) mod comparisons;
mod host_memory;
mod ksm;
mod pressure;
mod series;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use anyhow::Context as _;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use rayon::prelude::*;

use super::atomic::{stage, write_new, Staged};
use crate::metrics::{RunResult, VmSample};
use crate::scenario::Scenario;
use series::Points;

/// Family name under which the bundled font is registered.
pub(crate) const FONT: &str = "sans-serif";
static FONT_DATA: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A prepared figure that can draw itself on any backend.
trait Figure: Sync {
    /// Output file name without extension.
    const NAME: &'static str;
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Renders every figure as PNG and SVG, in parallel, and stages each file next to its
/// target in `dir` (see [`super::atomic`]). Returns the staged files in a fixed order.
pub(super) fn stage_all(
    dir: &Path,
    scenario: &Scenario,
    result: &RunResult,
) -> anyhow::Result<Vec<Staged>> {
    register_bundled_font();
    let frame = Frame::new(scenario, result);
    let host = host_memory::HostMemory::new(&frame, result);
    let balloons = balloons::Balloons::new(&frame);
    let pressure = pressure::Pressure::new(&frame, scenario, result);
    let ksm = ksm::Ksm::new(&frame, result);
    type Job<'a> = &'a (dyn Fn(&Path) -> anyhow::Result<Staged> + Sync);
    let jobs: [Job; 8] = [
        &|dir| png(&host, dir),
        &|dir| svg(&host, dir),
        &|dir| png(&balloons, dir),
        &|dir| svg(&balloons, dir),
        &|dir| png(&pressure, dir),
        &|dir| svg(&pressure, dir),
        &|dir| png(&ksm, dir),
        &|dir| svg(&ksm, dir),
    ];
    jobs.par_iter().map(|job| job(dir)).collect()
}

/// Registers the bundled font under [`FONT`] (once per process). Other figures of
/// the crate (the KSM calibration plot) call it too.
pub(crate) fn register_bundled_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let registered = register_font(FONT, FontStyle::Normal, FONT_DATA);
        assert!(registered.is_ok(), "bundled DejaVuSans.ttf must parse");
    });
}

/// The bitmap backend encodes PNG only into a file it creates by path; the staged
/// temporary file is that path.
fn png<F: Figure>(figure: &F, dir: &Path) -> anyhow::Result<Staged> {
    let path = dir.join(format!("{}.png", F::NAME));
    stage(&path, |tmp| -> anyhow::Result<()> {
        let root = BitMapBackend::new(tmp, figure.size()).into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
        Ok(())
    })
    .with_context(|| format!("rendering {}", path.display()))
}

/// The SVG backend is drawn into a string (its own file output swallows write errors).
fn svg<F: Figure>(figure: &F, dir: &Path) -> anyhow::Result<Staged> {
    let path = dir.join(format!("{}.svg", F::NAME));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, figure.size()).into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
    }
    text.push('\n');
    stage(&path, |tmp| write_new(tmp, text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// What all figures of a run share: the scenario name for titles, the time axis, and
/// the per-VM samples grouped by vmid (ascending), each VM's in time order.
struct Frame<'a> {
    scenario: &'a str,
    time: TimeAxis,
    vms: BTreeMap<u32, Vec<&'a VmSample>>,
}

impl<'a> Frame<'a> {
    fn new(scenario: &'a Scenario, result: &'a RunResult) -> Frame<'a> {
        let last_sample = result
            .host
            .iter()
            .map(|s| s.t_s)
            .chain(result.vms.iter().map(|s| s.t_s))
            .fold(0.0, f64::max);
        let mut vms: BTreeMap<u32, Vec<&VmSample>> = BTreeMap::new();
        for sample in &result.vms {
            vms.entry(sample.vmid).or_default().push(sample);
        }
        for samples in vms.values_mut() {
            samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        }
        Frame {
            scenario: &scenario.name,
            time: TimeAxis::new(scenario.duration.as_secs_f64().max(last_sample)),
            vms,
        }
    }

    fn title(&self, what: &str) -> String {
        format!("{} — {what}", self.scenario)
    }
}

/// Simulated time shown in minutes for runs up to two hours, in hours beyond.
struct TimeAxis {
    seconds_per_unit: f64,
    unit: &'static str,
    end: f64,
}

impl TimeAxis {
    fn new(span_s: f64) -> TimeAxis {
        let (seconds_per_unit, unit) = if span_s <= 2.0 * 3600.0 {
            (60.0, "min")
        } else {
            (3600.0, "h")
        };
        let end = span_s / seconds_per_unit;
        TimeAxis {
            seconds_per_unit,
            unit,
            end: if end > 0.0 { end } else { 1.0 },
        }
    }

    fn x(&self, t_s: f64) -> f64 {
        t_s / self.seconds_per_unit
    }

    fn desc(&self) -> String {
        format!("simulated time ({})", self.unit)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

/// `0..max` with a little headroom; `0..1` when there is nothing positive to show, so
/// an empty or all-zero series never yields a degenerate (or NaN) axis.
fn y_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.05
    } else {
        1.0
    }
}

/// An axis tick without a needless `.0`: `5`, `2.5`, `0.25`.
fn tick(v: &f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A cartesian chart with the usual mesh, axis descriptions and fonts.
fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    time: &TimeAxis,
    y: (f64, &str),
    font_px: u32,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, font_px + 4))
        .margin(font_px / 2 + 2)
        .x_label_area_size(font_px * 3)
        .y_label_area_size(font_px * 4)
        .build_cartesian_2d(0.0..time.end, 0.0..y.0)?;
    // Small panels (one per VM) get fewer ticks, so their labels never run together.
    let (width, height) = area.dim_in_pixel();
    let fit = |px: u32, per: u32| (px / (font_px * per).max(1)).clamp(3, 10) as usize;
    chart
        .configure_mesh()
        .x_labels(fit(width, 6))
        .y_labels(fit(height, 3))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc(time.desc())
        .y_desc(y.1)
        .label_style((FONT, font_px))
        .axis_desc_style((FONT, font_px + 1))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    Ok(chart)
}

/// A line of a figure: its legend label, look and (display-unit) points.
struct Line {
    label: String,
    color: RGBColor,
    dashed: bool,
    points: Points,
}

fn draw_line<DB: DrawingBackend>(chart: &mut Chart<DB>, line: &Line, width: u32) -> DrawResult<DB> {
    let style = line.color.stroke_width(width);
    if let [only] = line.points[..] {
        // One sample draws no segment: mark it.
        chart.draw_series(std::iter::once(Circle::new(
            only,
            width + 2,
            style.filled(),
        )))?;
    } else if line.dashed {
        let dash = (width * 4) as i32;
        chart.draw_series(DashedLineSeries::new(
            line.points.iter().copied(),
            dash,
            dash,
            style,
        ))?;
    } else {
        chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
    }
    Ok(())
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum Swatch {
    Fill(RGBColor),
    Line { color: RGBColor, dashed: bool },
}

impl Swatch {
    fn solid(color: RGBColor) -> Swatch {
        Swatch::Line {
            color,
            dashed: false,
        }
    }
}

/// A legend as a column of entries in its own area (outside any plot, so it never
/// hides data).
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
    font_px: u32,
) -> DrawResult<DB> {
    let step = (font_px + font_px / 2) as i32;
    let half = (font_px / 2) as i32;
    let style = (FONT, font_px).into_font();
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let y = step * i as i32 + half;
        match *swatch {
            Swatch::Fill(color) => {
                area.draw(&Rectangle::new(
                    [(0, y - half), (24, y + half)],
                    color.filled(),
                ))?;
            }
            Swatch::Line { color, dashed } => {
                let style = color.stroke_width(2);
                let segments: &[(i32, i32)] = if dashed {
                    &[(0, 9), (15, 24)]
                } else {
                    &[(0, 24)]
                };
                for &(x0, x1) in segments {
                    area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
                }
            }
        }
        area.draw_text(label, &style.color(&BLACK), (32, y - half))?;
    }
    Ok(())
}
