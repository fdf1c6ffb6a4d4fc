//! `pressure`: how hard the guests are squeezed — swap traffic and page-cache refaults
//! as rates, with OOM kills marked where they happen.
//!
//! The per-VM counters are deltas since the previous sample, so a rate is the delta
//! divided by the sample interval. With many VMs, each panel shows the [`TOP_N`] VMs
//! with the most activity of its kind and sums the rest into one line.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{envelope, max_y, Points};
use super::{
    build_chart, draw_legend, draw_line, y_top, DrawResult, Figure, Frame, Line, Swatch, FONT,
};
use crate::metrics::{EventKind, RunResult, VmSample};
use crate::scenario::Scenario;

const SIZE: (u32, u32) = (1400, 1000);
const LEGEND_WIDTH: u32 = 260;
const BUCKETS: usize = 500;
const TOP_N: usize = 5;
/// Beyond this many OOM kills only the marker lines are drawn, not their labels.
const MAX_OOM_LABELS: usize = 30;
const PAGE_BYTES: f64 = 4096.0;
const MIB: f64 = (1u64 << 20) as f64;
const OOM_COLOR: RGBColor = RGBColor(214, 39, 40);
const COLORS: [RGBColor; TOP_N + 1] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];
const OTHERS_COLOR: RGBColor = RGBColor(127, 127, 127);

struct Metric {
    title: &'static str,
    pages: fn(&VmSample) -> u64,
}

const METRICS: [Metric; 3] = [
    Metric {
        title: "guest swap-out",
        pages: |s| s.swap_out_pages,
    },
    Metric {
        title: "guest swap-in",
        pages: |s| s.swap_in_pages,
    },
    Metric {
        title: "page-cache refaults",
        pages: |s| s.cache_refault_pages,
    },
];

struct Panel {
    title: &'static str,
    lines: Vec<Line>,
    y_top: f64,
}

struct OomKill {
    x: f64,
    label: String,
}

pub(super) struct Pressure<'a> {
    frame: &'a Frame<'a>,
    panels: Vec<Panel>,
    kills: Vec<OomKill>,
}

impl<'a> Pressure<'a> {
    pub(super) fn new(frame: &'a Frame<'a>, scenario: &Scenario, result: &RunResult) -> Self {
        let interval_s = scenario.sample_interval.as_secs_f64();
        // A zero interval would make every rate infinite: show none instead.
        let mib_s_per_page = if interval_s > 0.0 {
            PAGE_BYTES / MIB / interval_s
        } else {
            0.0
        };
        let panels = METRICS
            .iter()
            .map(|m| panel(frame, m, mib_s_per_page))
            .collect();
        let kills = result
            .events
            .iter()
            .filter_map(|e| {
                let what = match e.kind {
                    EventKind::GuestOomKill => "OOM",
                    EventKind::HostOomKill => "host OOM",
                    _ => return None,
                };
                Some(OomKill {
                    x: frame.time.x(e.t_s),
                    label: format!("{what} {}", e.vmid),
                })
            })
            .collect();
        Pressure {
            frame,
            panels,
            kills,
        }
    }
}

fn panel(frame: &Frame, metric: &Metric, mib_s_per_page: f64) -> Panel {
    let mut active: Vec<(u64, u32)> = frame
        .vms
        .iter()
        .map(|(&vmid, samples)| (samples.iter().map(|s| (metric.pages)(s)).sum(), vmid))
        .filter(|&(total, _)| total > 0)
        .collect();
    // Most active first; ties by vmid.
    active.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let shown = if active.len() <= TOP_N + 1 {
        active.len()
    } else {
        TOP_N
    };
    let rate = |pages: u64| pages as f64 * mib_s_per_page;
    let mut lines: Vec<Line> = active[..shown]
        .iter()
        .zip(COLORS)
        .map(|(&(_, vmid), color)| {
            let samples = &frame.vms[&vmid];
            let points: Points = samples
                .iter()
                .map(|s| (frame.time.x(s.t_s), rate((metric.pages)(s))))
                .collect();
            let label = format!("{vmid} {}", samples[0].name);
            Line {
                label,
                color,
                dashed: false,
                points: envelope(&points, BUCKETS),
            }
        })
        .collect();
    let rest = &active[shown..];
    if !rest.is_empty() {
        let points = summed(frame, rest.iter().map(|&(_, vmid)| vmid), |s| {
            rate((metric.pages)(s))
        });
        lines.push(Line {
            label: format!("other {} VMs", rest.len()),
            color: OTHERS_COLOR,
            dashed: false,
            points: envelope(&points, BUCKETS),
        });
    }
    Panel {
        title: metric.title,
        y_top: y_top(max_y(lines.iter().map(|l| &l.points))),
        lines,
    }
}

/// Σ over `vmids` of `value`, per sample time (exact nanoseconds, so equal times meet).
fn summed(
    frame: &Frame,
    vmids: impl Iterator<Item = u32>,
    value: impl Fn(&VmSample) -> f64,
) -> Points {
    let mut by_time: BTreeMap<u64, f64> = BTreeMap::new();
    for vmid in vmids {
        for s in &frame.vms[&vmid] {
            *by_time.entry((s.t_s * 1e9).round() as u64).or_default() += value(s);
        }
    }
    by_time
        .into_iter()
        .map(|(ns, v)| (frame.time.x(ns as f64 / 1e9), v))
        .collect()
}

impl Figure for Pressure<'_> {
    const NAME: &'static str = "pressure";

    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.frame.title("guest memory pressure"), (FONT, 24))?;
        let rows = body.split_evenly((self.panels.len(), 1));
        for (i, (panel, row)) in self.panels.iter().zip(&rows).enumerate() {
            self.draw_panel(row, panel, i == 0)?;
        }
        Ok(())
    }
}

impl Pressure<'_> {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        row: &DrawingArea<DB, Shift>,
        panel: &Panel,
        label_kills: bool,
    ) -> DrawResult<DB> {
        let (plot, legend) = row.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = build_chart(
            &plot,
            panel.title,
            &self.frame.time,
            (panel.y_top, "MiB/s"),
            14,
        )?;
        let kill_style = OOM_COLOR.stroke_width(1);
        chart.draw_series(
            self.kills
                .iter()
                .map(|k| PathElement::new(vec![(k.x, 0.0), (k.x, panel.y_top)], kill_style)),
        )?;
        if label_kills && self.kills.len() <= MAX_OOM_LABELS {
            let style = (FONT, 12).into_font().color(&OOM_COLOR);
            // Three staggered rows, so kills close in time do not overprint each other.
            chart.draw_series(self.kills.iter().enumerate().map(|(i, k)| {
                let y = panel.y_top * (0.97 - 0.08 * (i % 3) as f64);
                Text::new(format!(" {}", k.label), (k.x, y), style.clone())
            }))?;
        }
        // Most active VM last, on top; the (often larger) sum of the rest underneath.
        for line in panel.lines.iter().rev() {
            draw_line(&mut chart, line, 2)?;
        }
        if panel.lines.is_empty() {
            let note = (FONT, 14).into_font().color(&BLACK.mix(0.6));
            let at = (self.frame.time.end * 0.02, panel.y_top * 0.5);
            chart.draw_series(std::iter::once(Text::new("no activity", at, note)))?;
        }
        let mut entries: Vec<_> = panel
            .lines
            .iter()
            .map(|l| (l.label.clone(), Swatch::solid(l.color)))
            .collect();
        if !self.kills.is_empty() {
            let what = format!("OOM kill ({})", self.kills.len());
            entries.push((what, Swatch::solid(OOM_COLOR)));
        }
        draw_legend(&legend.margin(30, 0, 10, 0), &entries, 13)
    }
}
