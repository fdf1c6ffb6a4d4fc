//! `compare_bars`: the main figures of a comparison as small bar charts, one per
//! figure, a bar per policy in the policies' colours, each bar labelled with its value
//! (colour alone is hard to read exactly). With several seeds a bar is the mean and a
//! whisker spans the minimum to the maximum.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::{draw_legend, y_top, DrawResult, Figure, Swatch, FONT};
use super::{policy_color, BarPanel};

const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (420, 300);
const LEGEND_WIDTH: u32 = 260;
const HEADER_HEIGHT: u32 = 50;

pub(super) struct Bars<'a> {
    title: String,
    panels: &'a [BarPanel],
}

impl<'a> Bars<'a> {
    pub(super) fn new(scenario: &str, panels: &'a [BarPanel]) -> Self {
        Bars {
            title: format!("{scenario} — policies compared"),
            panels,
        }
    }

    fn rows(&self) -> usize {
        self.panels.len().div_ceil(COLUMNS).max(1)
    }
}

impl Figure for Bars<'_> {
    const NAME: &'static str = "compare_bars";

    fn size(&self) -> (u32, u32) {
        (
            PANEL.0 * COLUMNS as u32 + LEGEND_WIDTH,
            PANEL.1 * self.rows() as u32 + HEADER_HEIGHT,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        header.draw_text(&self.title, &(FONT, 24).into_font().color(&BLACK), (15, 12))?;
        let (grid, legend) = body.split_horizontally(PANEL.0 * COLUMNS as u32);
        let cells = grid.split_evenly((self.rows(), COLUMNS));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            draw_panel(cell, panel)?;
        }
        let entries: Vec<_> = self
            .panels
            .first()
            .map(|p| &p.bars[..])
            .unwrap_or_default()
            .iter()
            .map(|(policy, _)| (policy.to_string(), Swatch::Fill(policy_color(*policy))))
            .collect();
        draw_legend(&legend.margin(40, 0, 10, 0), &entries, 15)
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &BarPanel,
) -> DrawResult<DB> {
    let n = panel.bars.len().max(1) as f64;
    let top = y_top(panel.bars.iter().map(|(_, s)| s.max).fold(0.0, f64::max)) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 16))
        .margin(10)
        .x_label_area_size(8)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..n, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .label_style((FONT, 13))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    let label = (FONT, 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, (policy, spread)) in panel.bars.iter().enumerate() {
        let x = i as f64;
        let color = policy_color(*policy);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, 0.0), (x + 0.85, spread.mean)],
            color.filled(),
        )))?;
        let mut label_at = spread.mean;
        if spread.min < spread.max {
            let whisker = BLACK.stroke_width(1);
            let mid = x + 0.5;
            chart.draw_series(
                [
                    vec![(mid, spread.min), (mid, spread.max)],
                    vec![(mid - 0.1, spread.min), (mid + 0.1, spread.min)],
                    vec![(mid - 0.1, spread.max), (mid + 0.1, spread.max)],
                ]
                .into_iter()
                .map(|points| PathElement::new(points, whisker)),
            )?;
            label_at = spread.max;
        }
        chart.draw_series(std::iter::once(Text::new(
            value_label(spread.mean),
            (x + 0.5, label_at),
            label.clone(),
        )))?;
    }
    Ok(())
}

/// Three significant figures or so, no exponent, no trailing zeros: `0`, `0.042`,
/// `2.46`, `83.6`, `19` (a count stays a whole number), `1234`.
fn value_label(v: f64) -> String {
    let text = match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 0.1 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    };
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_a_few_digits() {
        let labels: Vec<String> = [0.0, 0.0421, 0.5, 2.4567, 19.0, 83.64, 1234.4]
            .into_iter()
            .map(value_label)
            .collect();
        assert_eq!(labels, ["0", "0.042", "0.5", "2.46", "19", "83.6", "1234"]);
    }
}
