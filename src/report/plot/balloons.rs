//! `balloons`: one small panel per VM with the balloon's bounds, target and actual size,
//! and what the guest and the host make of the memory.
//!
//! Panels sit in a grid sized to the VM count, with one shared legend, so 48 VMs stay
//! legible; beyond [`MAX_PANELS`] the first VMs by vmid are shown and the title says so.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{envelope, max_y, Points};
use super::{
    build_chart, draw_legend, draw_line, gib, y_top, DrawResult, Figure, Frame, Line, Swatch, FONT,
};
use crate::metrics::VmSample;

const MAX_PANELS: usize = 64;
const MAX_COLUMNS: usize = 8;
const HEADER_HEIGHT: u32 = 50;
const LEGEND_WIDTH: u32 = 230;

struct Series {
    label: &'static str,
    color: RGBColor,
    dashed: bool,
    bytes: fn(&VmSample) -> u64,
}

const SERIES: [Series; 8] = [
    series("maxmem", RGBColor(90, 90, 90), true, |s| s.maxmem_bytes),
    series("balloon min", RGBColor(160, 160, 160), true, |s| {
        s.balloon_min_bytes
    }),
    series("actual", RGBColor(255, 127, 14), false, |s| s.actual_bytes),
    // Dashed and drawn over `actual`: the two coincide whenever the balloon has settled.
    series("target", RGBColor(31, 119, 180), true, |s| s.target_bytes),
    series("host resident", RGBColor(44, 160, 44), false, |s| {
        s.host_resident_bytes
    }),
    series("guest free", RGBColor(148, 103, 189), false, |s| {
        s.guest_mem_free_bytes
    }),
    series("guest cache", RGBColor(140, 86, 75), false, |s| {
        s.guest_cached_bytes
    }),
    // What the Proxmox memory panel shows: the guest's view with balloon statistics,
    // the host's without.
    series("PVE panel mem", RGBColor(214, 39, 40), true, |s| {
        s.pve_mem_bytes
    }),
];

const fn series(
    label: &'static str,
    color: RGBColor,
    dashed: bool,
    bytes: fn(&VmSample) -> u64,
) -> Series {
    Series {
        label,
        color,
        dashed,
        bytes,
    }
}

struct Panel {
    title: String,
    lines: Vec<Line>,
    y_top: f64,
}

/// Columns × rows of the grid and the pixel size of one panel.
struct Grid {
    columns: usize,
    rows: usize,
    panel: (u32, u32),
}

impl Grid {
    fn new(panels: usize) -> Grid {
        // Roughly 1.6 columns per row keeps a wide figure of wide panels.
        let columns = ((panels as f64 * 1.6).sqrt().ceil() as usize).clamp(1, MAX_COLUMNS);
        let rows = panels.div_ceil(columns).max(1);
        let width = (1100 / columns as u32).max(320);
        Grid {
            columns,
            rows,
            panel: (width, width * 5 / 8),
        }
    }

    fn font_px(&self) -> u32 {
        if self.columns >= 5 {
            10
        } else {
            13
        }
    }
}

pub(super) struct Balloons<'a> {
    frame: &'a Frame<'a>,
    panels: Vec<Panel>,
    /// VMs left out beyond [`MAX_PANELS`].
    hidden: usize,
    grid: Grid,
}

impl<'a> Balloons<'a> {
    pub(super) fn new(frame: &'a Frame<'a>) -> Self {
        let grid = Grid::new(frame.vms.len().min(MAX_PANELS));
        let buckets = grid.panel.0 as usize / 2;
        let panels = frame
            .vms
            .iter()
            .take(MAX_PANELS)
            .map(|(vmid, samples)| panel(frame, *vmid, samples, buckets))
            .collect();
        Balloons {
            frame,
            panels,
            hidden: frame.vms.len().saturating_sub(MAX_PANELS),
            grid,
        }
    }

    fn title(&self) -> String {
        let what = if self.hidden > 0 {
            let total = self.panels.len() + self.hidden;
            format!(
                "balloons (first {} of {total} VMs by vmid)",
                self.panels.len()
            )
        } else {
            "balloons per VM".to_string()
        };
        self.frame.title(&what)
    }
}

fn panel(frame: &Frame, vmid: u32, samples: &[&VmSample], buckets: usize) -> Panel {
    let lines: Vec<Line> = SERIES
        .iter()
        .map(|series| {
            let points: Points = samples
                .iter()
                .map(|s| (frame.time.x(s.t_s), gib((series.bytes)(s))))
                .collect();
            Line {
                label: series.label.to_string(),
                color: series.color,
                dashed: series.dashed,
                points: envelope(&points, buckets),
            }
        })
        .collect();
    let name = samples.first().map_or("", |s| s.name.as_str());
    Panel {
        title: format!("{vmid} {name}"),
        y_top: y_top(max_y(lines.iter().map(|l| &l.points))),
        lines,
    }
}

impl Figure for Balloons<'_> {
    const NAME: &'static str = "balloons";

    fn size(&self) -> (u32, u32) {
        let (w, h) = self.grid.panel;
        (
            w * self.grid.columns as u32 + LEGEND_WIDTH,
            h * self.grid.rows as u32 + HEADER_HEIGHT,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        header.draw_text(
            &self.title(),
            &(FONT, 24).into_font().color(&BLACK),
            (15, 12),
        )?;
        let (grid, legend) = body.split_horizontally(self.size().0 - LEGEND_WIDTH);
        if self.panels.is_empty() {
            let note = (FONT, 16).into_font().color(&BLACK);
            return grid.draw_text("no VM samples in this run", &note, (15, 15));
        }
        let cells = grid.split_evenly((self.grid.rows, self.grid.columns));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            self.draw_panel(cell, panel)?;
        }
        let entries: Vec<_> = SERIES
            .iter()
            .map(|s| {
                (
                    s.label.to_string(),
                    Swatch::Line {
                        color: s.color,
                        dashed: s.dashed,
                    },
                )
            })
            .collect();
        draw_legend(&legend.margin(10, 0, 10, 0), &entries, 14)
    }
}

impl Balloons<'_> {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        cell: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult<DB> {
        let font_px = self.grid.font_px();
        let mut chart = build_chart(
            cell,
            &panel.title,
            &self.frame.time,
            (panel.y_top, "GiB"),
            font_px,
        )?;
        for line in &panel.lines {
            draw_line(&mut chart, line, 1)?;
        }
        Ok(())
    }
}
