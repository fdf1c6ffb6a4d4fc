//! `density`: what the host went through at each VM count a density search tried, one
//! panel per limit (peak host memused, peak swap-in, OOM kills), one line per policy,
//! a dot per count tried, and the limit as a dashed line: where a policy's line
//! crosses its limit is how many VMs it carries.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::{draw_legend, draw_line, y_top, DrawResult, Figure, Line, Swatch, FONT};
use super::{policy_color, LIMIT_COLOR};
use crate::policy::Policy;

const SIZE: (u32, u32) = (1400, 1100);
const LEGEND_WIDTH: u32 = 280;

/// The figure's content.
pub(crate) struct Capacity {
    pub title: String,
    /// What the x axis counts (`web VMs`).
    pub x_desc: String,
    /// The policies in legend order.
    pub policies: Vec<Policy>,
    pub panels: Vec<CapacityPanel>,
}

/// One measure against the VM count.
pub(crate) struct CapacityPanel {
    pub title: &'static str,
    pub unit: &'static str,
    /// Per policy, (count, value) in count order.
    pub lines: Vec<(Policy, Vec<(f64, f64)>)>,
    pub limit: Option<f64>,
}

impl Capacity {
    fn x_top(&self) -> f64 {
        let most = self
            .panels
            .iter()
            .flat_map(|p| &p.lines)
            .flat_map(|(_, points)| points)
            .map(|&(x, _)| x)
            .fold(0.0, f64::max);
        (most + 1.0).max(2.0)
    }
}

impl Figure for Capacity {
    const NAME: &'static str = "density";

    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.title, (FONT, 24))?;
        let (plots, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let rows = plots.split_evenly((self.panels.len().max(1), 1));
        for (panel, row) in self.panels.iter().zip(&rows) {
            self.draw_panel(row, panel)?;
        }
        let mut entries: Vec<(String, Swatch)> = self
            .policies
            .iter()
            .map(|&p| (p.to_string(), Swatch::solid(policy_color(p))))
            .collect();
        if self.panels.iter().any(|p| p.limit.is_some()) {
            let swatch = Swatch::Line {
                color: LIMIT_COLOR,
                dashed: true,
            };
            entries.push(("limit".to_string(), swatch));
        }
        draw_legend(&legend.margin(40, 0, 10, 0), &entries, 15)
    }
}

/// Counts are whole numbers: ticks between them stay unlabelled.
fn whole(x: &f64) -> String {
    match x.fract() {
        0.0 => format!("{x:.0}"),
        _ => String::new(),
    }
}

impl Capacity {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &CapacityPanel,
    ) -> DrawResult<DB> {
        let x_top = self.x_top();
        let highest = panel
            .lines
            .iter()
            .flat_map(|(_, points)| points)
            .map(|&(_, y)| y)
            .chain(panel.limit)
            .fold(0.0, f64::max);
        let y_top = y_top(highest);
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, (FONT, 19))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_top, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(panel.unit)
            .x_label_formatter(&whole)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        if let Some(limit) = panel.limit {
            let line = Line {
                label: String::new(),
                color: LIMIT_COLOR,
                dashed: true,
                points: vec![(0.0, limit), (x_top, limit)],
            };
            draw_line(&mut chart, &line, 2)?;
        }
        // The first policy last, on top of lines that coincide with it.
        for (policy, points) in panel.lines.iter().rev() {
            let color = policy_color(*policy);
            let line = Line {
                label: policy.to_string(),
                color,
                dashed: false,
                points: points.clone(),
            };
            draw_line(&mut chart, &line, 2)?;
            chart.draw_series(points.iter().map(|&at| Circle::new(at, 4, color.filled())))?;
        }
        Ok(())
    }
}
