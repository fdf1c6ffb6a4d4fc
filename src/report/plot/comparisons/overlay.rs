//! `memsim compare`'s figures over time, one line per policy: host memused against the
//! ballooning target, swap traffic, and OOM kills as running counts with a mark at
//! each kill.
//!
//! Swap counters are deltas per sample, so a rate is the delta over the sample
//! interval; the guests' are summed over the VMs at each sample time.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::series::{envelope, max_y, Points};
use super::super::{
    build_chart, draw_legend, draw_line, gib, y_top, DrawResult, Figure, Line, Swatch, TimeAxis,
    FONT,
};
use super::{policy_color, Overlay, LIMIT_COLOR};
use crate::metrics::{EventKind, HostSample, RunResult};
use crate::scenario::Scenario;

const WIDTH: u32 = 1400;
const LEGEND_WIDTH: u32 = 280;
/// About one bucket per pixel column of the plot.
const BUCKETS: usize = 1000;
const MIB: f64 = (1u64 << 20) as f64;
const PAGE_BYTES: f64 = 4096.0;

/// Panels over one time axis with one legend beside them.
pub(super) struct TimePanels {
    title: String,
    time: TimeAxis,
    panels: Vec<Panel>,
    legend: Vec<(String, Swatch)>,
    height: u32,
}

struct Panel {
    title: &'static str,
    unit: &'static str,
    lines: Vec<Line>,
    /// Points marked with a dot (OOM kills).
    marks: Vec<((f64, f64), RGBColor)>,
    y_top: f64,
    /// Shown instead when every line is zero.
    idle: &'static str,
}

impl Panel {
    fn new(title: &'static str, unit: &'static str, lines: Vec<Line>, idle: &'static str) -> Self {
        Panel {
            title,
            unit,
            y_top: y_top(max_y(lines.iter().map(|l| &l.points))),
            lines,
            marks: Vec::new(),
            idle,
        }
    }
}

/// One line per run, `value` per host sample in display units.
fn policy_lines(
    time: &TimeAxis,
    overlays: &[Overlay],
    value: impl Fn(&RunResult) -> Vec<(f64, f64)>,
) -> Vec<Line> {
    overlays
        .iter()
        .map(|o| {
            let points: Points = value(o.result)
                .into_iter()
                .map(|(t, v)| (time.x(t), v))
                .collect();
            Line {
                label: o.policy.to_string(),
                color: policy_color(o.policy),
                dashed: false,
                points: envelope(&points, BUCKETS),
            }
        })
        .collect()
}

fn policy_legend(overlays: &[Overlay]) -> Vec<(String, Swatch)> {
    overlays
        .iter()
        .map(|o| (o.policy.to_string(), Swatch::solid(policy_color(o.policy))))
        .collect()
}

fn host_series(r: &RunResult, value: impl Fn(&HostSample) -> f64) -> Vec<(f64, f64)> {
    r.host.iter().map(|s| (s.t_s, value(s))).collect()
}

fn time_axis(sc: &Scenario) -> TimeAxis {
    TimeAxis::new(sc.duration.as_secs_f64())
}

pub(super) struct HostMemory(TimePanels);
pub(super) struct Swap(TimePanels);
pub(super) struct Oom(TimePanels);

/// pvestatd's memused per policy, with the target and MemTotal of the first run
/// (the policies do not change them).
pub(super) fn host_memory(sc: &Scenario, caption: &str, overlays: &[Overlay]) -> HostMemory {
    let time = time_axis(sc);
    let mut lines = policy_lines(&time, overlays, |r| {
        host_series(r, |s| gib(s.memused_bytes))
    });
    let mut legend = policy_legend(overlays);
    if let Some(first) = overlays.first() {
        let reference =
            |label: String, color: RGBColor, dashed: bool, bytes: fn(&HostSample) -> u64| {
                let points = host_series(first.result, |s| gib(bytes(s)))
                    .into_iter()
                    .map(|(t, v)| (time.x(t), v))
                    .collect::<Points>();
                Line {
                    label,
                    color,
                    dashed,
                    points: envelope(&points, BUCKETS),
                }
            };
        let target = format!("ballooning target ({} %)", sc.pvestatd.ballooning_target);
        lines.push(reference(target, LIMIT_COLOR, true, |s| s.target_bytes));
        lines.push(reference(
            "MemTotal".into(),
            RGBColor(80, 80, 80),
            false,
            |s| s.mem_total_bytes,
        ));
        for l in &lines[overlays.len()..] {
            let swatch = Swatch::Line {
                color: l.color,
                dashed: l.dashed,
            };
            legend.push((l.label.clone(), swatch));
        }
    }
    let panel = Panel::new("memused (pvestatd) by policy", "GiB", lines, "no samples");
    HostMemory(TimePanels {
        title: format!("{caption} — host memory by policy"),
        time,
        panels: vec![panel],
        legend,
        height: 800,
    })
}

/// The guests' swap-out summed over the VMs, and the host's swap traffic.
pub(super) fn swap(sc: &Scenario, caption: &str, overlays: &[Overlay]) -> Swap {
    let time = time_axis(sc);
    let interval_s = sc.sample_interval.as_secs_f64();
    // A zero interval would make every rate infinite: show none instead.
    let mib_s = if interval_s > 0.0 {
        PAGE_BYTES / MIB / interval_s
    } else {
        0.0
    };
    let guest = policy_lines(&time, overlays, |r| {
        let mut by_time: BTreeMap<u64, u64> = BTreeMap::new();
        for s in &r.vms {
            *by_time.entry((s.t_s * 1e9).round() as u64).or_default() += s.swap_out_pages;
        }
        by_time
            .into_iter()
            .map(|(ns, pages)| (ns as f64 / 1e9, pages as f64 * mib_s))
            .collect()
    });
    let host = policy_lines(&time, overlays, |r| {
        r.host
            .iter()
            .map(|s| {
                let pages = s.host_swap_out_pages + s.host_swap_in_pages;
                (s.t_s, pages as f64 * mib_s)
            })
            .collect()
    });
    Swap(TimePanels {
        title: format!("{caption} — swap by policy"),
        time,
        panels: vec![
            Panel::new(
                "guest swap-out, all VMs",
                "MiB/s",
                guest,
                "no guest swap-out",
            ),
            Panel::new(
                "host swap-out + swap-in (guest RAM)",
                "MiB/s",
                host,
                "no host swap",
            ),
        ],
        legend: policy_legend(overlays),
        height: 900,
    })
}

/// Running counts of guest OOM kills and of VMs killed by the host, a dot per kill.
pub(super) fn oom(sc: &Scenario, caption: &str, overlays: &[Overlay]) -> Oom {
    let time = time_axis(sc);
    let panel = |title, unit, kind, idle| {
        let mut marks = Vec::new();
        let lines = overlays
            .iter()
            .map(|o| {
                let color = policy_color(o.policy);
                let points = steps(&time, o.result, kind);
                // Every rise of the step is a kill.
                marks.extend(
                    points
                        .windows(2)
                        .filter(|w| w[1].1 > w[0].1)
                        .map(|w| (w[1], color)),
                );
                Line {
                    label: o.policy.to_string(),
                    color,
                    dashed: false,
                    points,
                }
            })
            .collect();
        let mut p = Panel::new(title, unit, lines, idle);
        p.marks = marks;
        p
    };
    let panels = vec![
        panel(
            "guest OOM kills (running count)",
            "kills",
            EventKind::GuestOomKill,
            "no guest OOM kills",
        ),
        panel(
            "VMs killed by the host OOM killer (running count)",
            "VMs",
            EventKind::HostOomKill,
            "no host OOM kills",
        ),
    ];
    Oom(TimePanels {
        title: format!("{caption} — OOM kills by policy"),
        time,
        panels,
        legend: policy_legend(overlays),
        height: 800,
    })
}

/// The running count of `kind` events as a step line from 0 to the end of the run.
fn steps(time: &TimeAxis, result: &RunResult, kind: EventKind) -> Points {
    let mut points = vec![(0.0, 0.0)];
    let mut n = 0.0;
    for e in result.events.iter().filter(|e| e.kind == kind) {
        let x = time.x(e.t_s);
        points.push((x, n));
        n += 1.0;
        points.push((x, n));
    }
    points.push((time.end, n));
    points
}

impl TimePanels {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = root.titled(&self.title, (FONT, 24))?;
        let (plots, legend) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
        let rows = plots.split_evenly((self.panels.len(), 1));
        for (panel, row) in self.panels.iter().zip(&rows) {
            self.draw_panel(row, panel)?;
        }
        draw_legend(&legend.margin(40, 0, 10, 0), &self.legend, 15)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult<DB> {
        let mut chart = build_chart(area, panel.title, &self.time, (panel.y_top, panel.unit), 15)?;
        // The first policy last, on top of lines and marks that coincide with it.
        for line in panel.lines.iter().rev() {
            draw_line(&mut chart, line, 2)?;
        }
        chart.draw_series(
            panel
                .marks
                .iter()
                .rev()
                .map(|&(at, color)| Circle::new(at, 4, color.filled())),
        )?;
        let all_zero = panel
            .lines
            .iter()
            .all(|l| l.points.iter().all(|&(_, y)| y == 0.0));
        if all_zero {
            let note = (FONT, 15).into_font().color(&BLACK.mix(0.6));
            let at = (self.time.end * 0.02, panel.y_top * 0.5);
            chart.draw_series(std::iter::once(Text::new(panel.idle, at, note)))?;
        }
        Ok(())
    }
}

/// A [`Figure`] of [`TimePanels`] under a file name.
macro_rules! time_figure {
    ($figure:ident, $name:literal) => {
        impl Figure for $figure {
            const NAME: &'static str = $name;

            fn size(&self) -> (u32, u32) {
                (WIDTH, self.0.height)
            }

            fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
                self.0.draw(root)
            }
        }
    };
}

time_figure!(HostMemory, "compare_host_memory");
time_figure!(Swap, "compare_swap");
time_figure!(Oom, "compare_oom");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Event;

    #[test]
    fn oom_steps_rise_at_each_kill_and_reach_the_end() {
        let kill = |t_s: f64, kind| Event {
            t_s,
            vmid: 1,
            kind,
            value: 0,
            detail: String::new(),
        };
        let result = RunResult {
            events: vec![
                kill(60.0, EventKind::GuestOomKill),
                kill(90.0, EventKind::HostOomKill),
                kill(120.0, EventKind::GuestOomKill),
            ],
            ..RunResult::default()
        };
        let time = TimeAxis::new(600.0);
        assert_eq!(
            steps(&time, &result, EventKind::GuestOomKill),
            [
                (0.0, 0.0),
                (1.0, 0.0),
                (1.0, 1.0),
                (2.0, 1.0),
                (2.0, 2.0),
                (10.0, 2.0)
            ]
        );
    }
}
