//! `host_memory`: where the host's RAM goes over time, against the lines pvestatd
//! steers by (memused and the ballooning target).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{envelope, max_y, means, Points};
use super::{
    build_chart, draw_legend, draw_line, gib, y_top, DrawResult, Figure, Frame, Line, Swatch,
};
use crate::metrics::{HostSample, RunResult};

const SIZE: (u32, u32) = (1400, 800);
const LEGEND_WIDTH: u32 = 300;
/// About one bucket per pixel column of the plot.
const BUCKETS: usize = 1000;

/// A layer of the stack, bottom first.
struct Layer {
    label: &'static str,
    color: RGBColor,
    bytes: fn(&HostSample) -> u64,
}

const LAYERS: [Layer; 8] = [
    layer("host reserved", RGBColor(112, 128, 144), |s| {
        s.host_reserved_bytes
    }),
    layer("QEMU overhead", RGBColor(166, 118, 29), |s| {
        s.qemu_overhead_bytes
    }),
    layer("guest resident (all VMs)", RGBColor(70, 130, 180), |s| {
        s.guest_resident_bytes
    }),
    layer("THP deferred split", RGBColor(152, 78, 163), |s| {
        s.thp_deferred_bytes
    }),
    layer("ZFS ARC", RGBColor(27, 158, 119), |s| s.zfs_arc_bytes),
    layer(
        "page cache (buffers + cached)",
        RGBColor(253, 180, 98),
        page_cache,
    ),
    layer("other (unaccounted)", RGBColor(200, 200, 200), unaccounted),
    layer("free", RGBColor(204, 235, 197), |s| s.mem_free_bytes),
];

const fn layer(label: &'static str, color: RGBColor, bytes: fn(&HostSample) -> u64) -> Layer {
    Layer {
        label,
        color,
        bytes,
    }
}

fn page_cache(s: &HostSample) -> u64 {
    s.buffers_bytes + s.cached_bytes
}

/// MemTotal not covered by any other layer (kernel memory the model does not itemize).
fn unaccounted(s: &HostSample) -> u64 {
    let accounted = s.host_reserved_bytes
        + s.qemu_overhead_bytes
        + s.guest_resident_bytes
        + s.thp_deferred_bytes
        + s.zfs_arc_bytes
        + page_cache(s)
        + s.mem_free_bytes;
    s.mem_total_bytes.saturating_sub(accounted)
}

pub(super) struct HostMemory<'a> {
    frame: &'a Frame<'a>,
    /// Layers that are non-zero somewhere, bottom first, each as the top edge of the
    /// stack up to and including it.
    stack: Vec<(&'static Layer, Points)>,
    lines: Vec<Line>,
    y_top: f64,
}

impl<'a> HostMemory<'a> {
    pub(super) fn new(frame: &'a Frame<'a>, result: &RunResult) -> Self {
        let samples = &result.host;
        let x: Vec<f64> = samples.iter().map(|s| frame.time.x(s.t_s)).collect();
        let mut top = vec![0u64; samples.len()];
        let stack: Vec<_> = LAYERS
            .iter()
            .filter(|layer| samples.iter().any(|s| (layer.bytes)(s) > 0))
            .map(|layer| {
                for (acc, s) in top.iter_mut().zip(samples) {
                    *acc += (layer.bytes)(s);
                }
                let points: Points = x.iter().zip(&top).map(|(&x, &b)| (x, gib(b))).collect();
                (layer, means(&points, BUCKETS))
            })
            .collect();
        let line = |label: &str, color: RGBColor, dashed: bool, bytes: fn(&HostSample) -> u64| {
            let points: Points = x
                .iter()
                .zip(samples)
                .map(|(&x, s)| (x, gib(bytes(s))))
                .collect();
            Line {
                label: label.to_string(),
                color,
                dashed,
                points: envelope(&points, BUCKETS / 2),
            }
        };
        let lines = vec![
            line("MemTotal", RGBColor(80, 80, 80), false, |s| {
                s.mem_total_bytes
            }),
            line("ballooning target", RGBColor(214, 39, 40), true, |s| {
                s.target_bytes
            }),
            line("memused (pvestatd)", BLACK, false, |s| s.memused_bytes),
        ];
        let y_max = max_y(
            stack
                .iter()
                .map(|(_, p)| p)
                .chain(lines.iter().map(|l| &l.points)),
        );
        HostMemory {
            frame,
            stack,
            lines,
            y_top: y_top(y_max),
        }
    }

    fn legend(&self) -> Vec<(String, Swatch)> {
        // Top of the stack first, as the layers appear on screen.
        let layers = self
            .stack
            .iter()
            .rev()
            .map(|(l, _)| (l.label.to_string(), Swatch::Fill(l.color)));
        let lines = self.lines.iter().map(|l| {
            (
                l.label.clone(),
                Swatch::Line {
                    color: l.color,
                    dashed: l.dashed,
                },
            )
        });
        layers.chain(lines).collect()
    }
}

impl Figure for HostMemory<'_> {
    const NAME: &'static str = "host_memory";

    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let title = self.frame.title("host memory");
        let mut chart = build_chart(&plot, &title, &self.frame.time, (self.y_top, "GiB"), 16)?;
        // Highest edge first: each lower layer paints over the one above it.
        for (layer, points) in self.stack.iter().rev() {
            chart.draw_series(AreaSeries::new(
                points.iter().copied(),
                0.0,
                layer.color.filled(),
            ))?;
        }
        for line in &self.lines {
            draw_line(&mut chart, line, 2)?;
        }
        draw_legend(&legend.margin(60, 0, 10, 0), &self.legend(), 15)
    }
}
