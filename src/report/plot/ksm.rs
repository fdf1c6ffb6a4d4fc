//! `ksm`: what KSM did — the sysfs page counters and the memory it saved over time,
//! with every full scan marked, and how fast ksmd scanned and skipped. On a THP host it
//! also draws AnonHugePages, which falls as ksmd splits huge pages to merge them.
//!
//! The counters are what `/sys/kernel/mm/ksm` shows (they lag the real page tables
//! until ksmd's next visit); "saved" is the memory merging saves at that moment, the
//! figure host free memory follows.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{envelope, max_y, means, Points};
use super::{build_chart, draw_legend, draw_line, gib, y_top, DrawResult, Figure, Frame, Line};
use super::{Swatch, FONT};
use crate::metrics::{HostSample, RunResult};

const SIZE: (u32, u32) = (1400, 900);
const LEGEND_WIDTH: u32 = 260;
const BUCKETS: usize = 500;
const PAGE: u64 = 4096;
/// Beyond this many full scans the marks would merge into a grey band: drop them.
const MAX_SCAN_MARKS: usize = 400;
const SCAN_COLOR: RGBColor = RGBColor(190, 190, 190);

type Counter = (&'static str, RGBColor, fn(&HostSample) -> u64);

const COUNTERS: [Counter; 5] = [
    ("saved (host memory)", RGBColor(0, 0, 0), |h| {
        h.ksm_saved_bytes
    }),
    ("pages_sharing", RGBColor(44, 160, 44), |h| {
        h.ksm_pages_sharing * PAGE
    }),
    ("pages_shared", RGBColor(31, 119, 180), |h| {
        h.ksm_pages_shared * PAGE
    }),
    ("pages_unshared", RGBColor(255, 127, 14), |h| {
        h.ksm_pages_unshared * PAGE
    }),
    ("pages_volatile", RGBColor(148, 103, 189), |h| {
        h.ksm_pages_volatile * PAGE
    }),
];

const ANON_HUGE_PAGES: Counter = ("AnonHugePages (host)", RGBColor(140, 86, 75), |h| {
    h.anon_huge_pages_bytes
});

const RATES: [Counter; 2] = [
    ("pages scanned", RGBColor(31, 119, 180), |h| {
        h.ksm_pages_scanned
    }),
    ("pages skipped (smart scan)", RGBColor(214, 39, 40), |h| {
        h.ksm_pages_skipped
    }),
];

struct Panel {
    title: &'static str,
    unit: &'static str,
    lines: Vec<Line>,
    y_top: f64,
}

pub(super) struct Ksm<'a> {
    frame: &'a Frame<'a>,
    panels: [Panel; 2],
    /// x of every sample at which `full_scans` had grown since the previous one.
    scans: Vec<f64>,
}

impl<'a> Ksm<'a> {
    pub(super) fn new(frame: &'a Frame<'a>, result: &RunResult) -> Self {
        let host = &result.host;
        // AnonHugePages only where THPs back guest RAM: merging splits them.
        let thp = host.iter().any(|h| h.anon_huge_pages_bytes > 0);
        let sizes = COUNTERS
            .iter()
            .chain(thp.then_some(&ANON_HUGE_PAGES))
            .map(|&(label, color, bytes)| {
                let points: Points = host
                    .iter()
                    .map(|h| (frame.time.x(h.t_s), gib(bytes(h))))
                    .collect();
                line(label, color, envelope(&points, BUCKETS))
            })
            .collect();
        let rates = RATES
            .iter()
            .map(|&(label, color, count)| {
                line(label, color, means(&rate(frame, host, count), BUCKETS))
            })
            .collect();
        let scans = host
            .windows(2)
            .filter(|w| w[1].ksm_full_scans > w[0].ksm_full_scans)
            .map(|w| frame.time.x(w[1].t_s))
            .collect();
        Ksm {
            frame,
            panels: [
                panel(
                    "KSM counters (as sysfs shows them) and memory saved",
                    "GiB",
                    sizes,
                ),
                panel("ksmd scan rate", "pages/s", rates),
            ],
            scans,
        }
    }
}

fn line(label: &str, color: RGBColor, points: Points) -> Line {
    Line {
        label: label.to_string(),
        color,
        dashed: false,
        points,
    }
}

fn panel(title: &'static str, unit: &'static str, lines: Vec<Line>) -> Panel {
    Panel {
        title,
        unit,
        y_top: y_top(max_y(lines.iter().map(|l| &l.points))),
        lines,
    }
}

/// Per-second rate of a cumulative counter between consecutive samples.
fn rate(frame: &Frame, host: &[HostSample], count: fn(&HostSample) -> u64) -> Points {
    host.windows(2)
        .filter(|w| w[1].t_s > w[0].t_s)
        .map(|w| {
            let per_s = count(&w[1]).saturating_sub(count(&w[0])) as f64 / (w[1].t_s - w[0].t_s);
            (frame.time.x(w[1].t_s), per_s)
        })
        .collect()
}

impl Figure for Ksm<'_> {
    const NAME: &'static str = "ksm";

    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.frame.title("KSM"), (FONT, 24))?;
        let rows = body.split_evenly((2, 1));
        for (panel, row) in self.panels.iter().zip(&rows) {
            self.draw_panel(row, panel)?;
        }
        Ok(())
    }
}

impl Ksm<'_> {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        row: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult<DB> {
        let (plot, legend) = row.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = build_chart(
            &plot,
            panel.title,
            &self.frame.time,
            (panel.y_top, panel.unit),
            14,
        )?;
        let marks = self.scans.len() <= MAX_SCAN_MARKS;
        if marks {
            let style = SCAN_COLOR.stroke_width(1);
            chart.draw_series(
                self.scans
                    .iter()
                    .map(|&x| PathElement::new(vec![(x, 0.0), (x, panel.y_top)], style)),
            )?;
        }
        for l in panel.lines.iter().rev() {
            draw_line(&mut chart, l, 2)?;
        }
        let mut entries: Vec<_> = panel
            .lines
            .iter()
            .map(|l| (l.label.clone(), Swatch::solid(l.color)))
            .collect();
        let scans = if marks {
            format!("full scan done ({})", self.scans.len())
        } else {
            format!("{} full scans (not marked)", self.scans.len())
        };
        entries.push((scans, Swatch::solid(SCAN_COLOR)));
        draw_legend(&legend.margin(30, 0, 10, 0), &entries, 13)
    }
}
