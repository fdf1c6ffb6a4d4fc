//! `memsim side-channel`: the attacker's accuracy against how long it waited before
//! probing, one line per ksmd configuration with its 95 % interval at every wait, and
//! the accuracy of guessing without probing (chance) as a dashed line.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::{draw_legend, draw_line, DrawResult, Figure, Line, Swatch, FONT};
use super::{LIMIT_COLOR, PALETTE};
use crate::sidechannel::{chance, Experiment, Row};

const SIZE: (u32, u32) = (1400, 800);
const LEGEND_WIDTH: u32 = 300;

/// One measured point: wait (s), accuracy, and its 95 % interval.
struct Point {
    wait_s: f64,
    accuracy: f64,
    low: f64,
    high: f64,
}

/// The figure's content: per configuration, its name and points by wait.
pub(crate) struct Accuracy {
    title: String,
    chance: f64,
    lines: Vec<(String, Vec<Point>)>,
}

impl Accuracy {
    pub(crate) fn new(e: &Experiment, rows: &[Row]) -> Accuracy {
        let lines = e
            .configs
            .iter()
            .map(|c| {
                let points = rows
                    .iter()
                    .filter(|r| r.config == c.name)
                    .map(|r| {
                        let (lo, hi) = r.accuracy_interval();
                        Point {
                            wait_s: r.wait.as_secs_f64(),
                            accuracy: r.accuracy(),
                            low: lo,
                            high: hi,
                        }
                    })
                    .collect();
                (c.name.clone(), points)
            })
            .collect();
        Accuracy {
            title: format!("{} — attacker's accuracy by wait", e.name),
            chance: chance(e),
            lines,
        }
    }

    fn x_top(&self) -> f64 {
        let most = self
            .lines
            .iter()
            .flat_map(|(_, p)| p)
            .map(|p| p.wait_s)
            .fold(0.0, f64::max);
        if most > 0.0 {
            most * 1.05
        } else {
            1.0
        }
    }
}

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

impl Figure for Accuracy {
    const NAME: &'static str = "side_channel";

    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.title, (FONT, 24))?;
        let (plot, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let x_top = self.x_top();
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_top, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc("wait after loading the copies (simulated s)")
            .y_desc("accuracy (share of right guesses)")
            .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        let chance = Line {
            label: String::new(),
            color: LIMIT_COLOR,
            dashed: true,
            points: vec![(0.0, self.chance), (x_top, self.chance)],
        };
        draw_line(&mut chart, &chance, 2)?;
        // The first configuration last, on top of lines that coincide with it.
        for (i, (name, points)) in self.lines.iter().enumerate().rev() {
            let c = color(i);
            let line = Line {
                label: name.clone(),
                color: c,
                dashed: false,
                points: points.iter().map(|p| (p.wait_s, p.accuracy)).collect(),
            };
            draw_line(&mut chart, &line, 2)?;
            let dot = |p: &Point| Circle::new((p.wait_s, p.accuracy), 4, c.filled());
            chart.draw_series(points.iter().map(dot))?;
            let bar = |p: &Point| {
                let ends = vec![(p.wait_s, p.low), (p.wait_s, p.high)];
                PathElement::new(ends, c.stroke_width(1))
            };
            chart.draw_series(points.iter().map(bar))?;
        }
        let mut entries: Vec<(String, Swatch)> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), Swatch::solid(color(i))))
            .collect();
        let swatch = Swatch::Line {
            color: LIMIT_COLOR,
            dashed: true,
        };
        entries.push((format!("chance ({:.0} %)", self.chance * 100.0), swatch));
        entries.push(("bars: 95 % interval".to_string(), Swatch::Fill(WHITE)));
        draw_legend(&legend.margin(40, 0, 10, 0), &entries, 16)
    }
}
