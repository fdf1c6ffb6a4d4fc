//! comparison.csv (one row per policy, every column) and the terminal table (one
//! column per policy, the main figures in display units).
//!
//! The terminal table is transposed: a comparison has a handful of policies but many
//! figures, and a column per policy keeps it within a terminal's width.

use super::metrics::{Spread, COLUMNS};
use super::{Comparison, PolicyRuns};
use crate::compare::RunMetrics;
use crate::metrics::tally;

pub(super) fn csv(c: &Comparison) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header())?;
    for p in &c.policies {
        w.write_record(row(p))?;
    }
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// `policy, seeds`, each column (with `min_`/`max_` beside the spread ones), victims.
fn header() -> Vec<String> {
    let mut header = vec!["policy".to_string(), "seeds".to_string()];
    for col in &COLUMNS {
        header.push(col.name.to_string());
        if col.spread {
            header.push(format!("min_{}", col.name));
            header.push(format!("max_{}", col.name));
        }
    }
    header.extend(["guest_oom_victims".into(), "host_oom_victims".into()]);
    header
}

fn row(p: &PolicyRuns) -> Vec<String> {
    let mut cells = vec![p.policy.to_string(), p.runs.len().to_string()];
    for col in &COLUMNS {
        let s = p.spread(col.value);
        cells.push(s.mean.to_string());
        if col.spread {
            cells.extend([s.min.to_string(), s.max.to_string()]);
        }
    }
    cells.push(guest_victims(p));
    cells.push(tally(
        p.runs
            .iter()
            .flat_map(|r| r.summary.host_oom_victims.iter()),
    ));
    cells
}

/// Over all seeds, in seed order.
fn guest_victims(p: &PolicyRuns) -> String {
    tally(
        p.runs
            .iter()
            .flat_map(|r| r.summary.guest_oom_victims.iter()),
    )
}

const GIB: f64 = (1u64 << 30) as f64;
const PAGE_GIB: f64 = 4096.0 / GIB;

/// A row of the terminal table: its label and its cell for a policy, given the
/// decimals for counts (none with one seed, one for a mean over several).
type Line = (&'static str, fn(&PolicyRuns, usize) -> String);

const LINES: [Line; 12] = [
    ("host memused peak, GiB", |p, _| {
        cell(p, 1, |m| m.summary.peak_memused_bytes as f64 / GIB)
    }),
    ("host memused peak, % of MemTotal", |p, _| {
        cell(p, 1, |m| m.peak_memused_pct)
    }),
    ("host memused mean, GiB", |p, _| {
        cell(p, 1, |m| m.summary.mean_memused_bytes as f64 / GIB)
    }),
    ("time above the target, min", |p, _| {
        cell(p, 1, |m| m.summary.time_above_target_s / 60.0)
    }),
    ("KSM saved peak / mean, GiB", |p, _| {
        pair(
            p,
            |m| m.summary.peak_ksm_saved_bytes as f64 / GIB,
            |m| m.summary.mean_ksm_saved_bytes as f64 / GIB,
        )
    }),
    ("ksmd CPU, % of one core (*)", |p, _| {
        cell(p, 1, RunMetrics::ksmd_cpu_pct)
    }),
    ("balloon memory moved, GiB", |p, _| {
        cell(p, 1, |m| m.summary.balloon_moved_bytes as f64 / GIB)
    }),
    ("guest swap-out / -in, GiB", |p, _| {
        pair(
            p,
            |m| m.summary.guest_swap_out_pages as f64 * PAGE_GIB,
            |m| m.summary.guest_swap_in_pages as f64 * PAGE_GIB,
        )
    }),
    ("page-cache refaults, GiB", |p, _| {
        cell(p, 1, |m| m.summary.cache_refault_pages as f64 * PAGE_GIB)
    }),
    ("host swap-out / -in, GiB", |p, _| {
        pair(
            p,
            |m| m.host_swap_out_pages as f64 * PAGE_GIB,
            |m| m.host_swap_in_pages as f64 * PAGE_GIB,
        )
    }),
    ("guest OOM kills", |p, d| {
        cell(p, d, |m| m.summary.guest_oom_kills as f64)
    }),
    ("VMs killed by the host OOM killer", |p, d| {
        cell(p, d, |m| m.summary.host_oom_kills as f64)
    }),
];

/// The mean, and the range over the seeds where they differ: `3.0 (1–5)`.
fn cell(p: &PolicyRuns, decimals: usize, value: fn(&RunMetrics) -> f64) -> String {
    let Spread { mean, min, max } = p.spread(value);
    if min == max {
        format!("{mean:.decimals$}")
    } else {
        format!("{mean:.decimals$} ({min:.decimals$}–{max:.decimals$})")
    }
}

/// Two means: `8.3 / 6.0`.
fn pair(p: &PolicyRuns, a: fn(&RunMetrics) -> f64, b: fn(&RunMetrics) -> f64) -> String {
    format!("{:.1} / {:.1}", p.spread(a).mean, p.spread(b).mean)
}

/// The main figures in display units: a header row (an empty cell, then the
/// policies), then a row per figure with its label and a cell per policy.
pub(super) fn by_figure(c: &Comparison) -> Vec<Vec<String>> {
    let decimals = usize::from(c.seeds.len() > 1);
    let mut rows: Vec<Vec<String>> = vec![std::iter::once(String::new())
        .chain(c.policies.iter().map(|p| p.policy.to_string()))
        .collect()];
    for (label, value) in &LINES {
        rows.push(
            std::iter::once(label.to_string())
                .chain(c.policies.iter().map(|p| value(p, decimals)))
                .collect(),
        );
    }
    rows
}

/// What the cells of [`by_figure`] are, when the seeds are several.
pub(super) fn seeds_note(c: &Comparison) -> Option<String> {
    (c.seeds.len() > 1).then(|| {
        format!(
            "means over seeds {}..={}; (min–max) where the seeds differ",
            c.seeds[0],
            c.seeds[c.seeds.len() - 1]
        )
    })
}

pub(super) const KSMD_NOTE: &str =
    "(*) ksmd's CPU time by its per-page cost model, calibrated against the real kernel (src/ksm/timing.rs)";

/// The table, the OOM victims per policy, and what the figures are.
pub fn terminal(c: &Comparison) -> String {
    let mut out = aligned(&by_figure(c));
    out += &victims(c);
    if let Some(note) = seeds_note(c) {
        out += &format!("  {note}\n");
    }
    out += &format!("  {KSMD_NOTE}\n");
    out
}

/// Columns right-aligned to their widest cell, the first left-aligned.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = format!("  {:<w$}", row[0], w = widths[0]);
        for (cell, &w) in row[1..].iter().zip(&widths[1..]) {
            line += &format!("  {cell:>w$}");
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `  OOM victims: balloon: 201/postgres ×16; host 105`, one line per policy with kills.
fn victims(c: &Comparison) -> String {
    let lines: Vec<String> = c
        .policies
        .iter()
        .filter_map(|p| {
            let guest = guest_victims(p);
            let host = tally(
                p.runs
                    .iter()
                    .flat_map(|r| r.summary.host_oom_victims.iter()),
            );
            let parts: Vec<String> = [("guest", guest), ("host", host)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(who, v)| format!("{who} {v}"))
                .collect();
            (!parts.is_empty()).then(|| format!("    {}: {}\n", p.policy, parts.join("; ")))
        })
        .collect();
    match lines.is_empty() {
        true => "  no OOM kills\n".to_string(),
        false => format!("  OOM victims (vmid/process ×kills):\n{}", lines.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Summary;
    use crate::policy::Policy;

    fn run(kills: &[&str], peak: u64) -> RunMetrics {
        RunMetrics {
            summary: Summary {
                peak_memused_bytes: peak,
                guest_oom_kills: kills.len() as u64,
                guest_oom_victims: kills.iter().map(|k| k.to_string()).collect(),
                ..Summary::default()
            },
            peak_memused_pct: 50.0,
            mean_memused_pct: 40.0,
            host_swap_out_pages: 0,
            host_swap_in_pages: 0,
        }
    }

    fn comparison() -> Comparison {
        Comparison {
            scenario: "s".into(),
            seeds: vec![1, 2],
            policies: vec![
                PolicyRuns {
                    policy: Policy::Balloon,
                    runs: vec![
                        run(&["201/pg", "201/pg"], 2 << 30),
                        run(&["301/job"], 4 << 30),
                    ],
                },
                PolicyRuns {
                    policy: Policy::None,
                    runs: vec![run(&[], 1 << 30), run(&[], 1 << 30)],
                },
            ],
        }
    }

    #[test]
    fn csv_has_a_row_per_policy_with_means_spreads_and_victims() {
        let bytes = csv(&comparison()).unwrap();
        let mut r = csv::Reader::from_reader(&bytes[..]);
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            &header[..5],
            [
                "policy",
                "seeds",
                "peak_memused_bytes",
                "min_peak_memused_bytes",
                "max_peak_memused_bytes"
            ]
        );
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), header.len());
        let at = |name: &str| &rows[0][header.iter().position(|h| h == name).unwrap()];
        assert_eq!(at("peak_memused_bytes"), (3u64 << 30).to_string());
        assert_eq!(
            (
                at("guest_oom_kills"),
                at("min_guest_oom_kills"),
                at("max_guest_oom_kills")
            ),
            ("1.5", "1", "2")
        );
        assert_eq!(at("guest_oom_victims"), "201/pg ×2, 301/job");
    }

    #[test]
    fn terminal_table_has_a_column_per_policy() {
        let text = terminal(&comparison());
        let cells = |line: &str| -> Vec<String> {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(cells(lines[0]), ["balloon", "none"], "{text}");
        assert_eq!(
            cells(lines[1]),
            ["host memused peak, GiB", "3.0 (2.0–4.0)", "1.0"],
            "{text}"
        );
        assert!(
            text.contains("    balloon: guest 201/pg ×2, 301/job\n"),
            "{text}"
        );
        assert!(text.contains("means over seeds 1..=2"), "{text}");
    }
}
