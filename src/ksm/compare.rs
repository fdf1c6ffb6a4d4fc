//! The yardstick: `shared/tools/ksm_compare.py` in Rust. Compares a simulated trace with
//! a real recording of the same workload, pass end by pass end.
//!
//! For every full scan `k ≥ 1` present in both traces, the first row showing
//! `full_scans = k` is that pass's end. Before the workload's first event (writer start,
//! late `madvise`, unmerge, exit) every counter of [`EXACT`] and the growth of
//! `pages_skipped` must be equal; after it `pages_sharing`, `general_profit` and
//! `pages_to_scan` are scored by relative error (denominator at least 1000, or 1 for
//! `pages_to_scan`). Pass-end times after 0.05 s are scored by relative error. The real
//! trace's last row is dropped (it may show teardown).

use super::trace::{Counters, Row, Trace};
use super::workload::Workload;

/// Counters that must match exactly before the first event.
pub const EXACT: [&str; 7] = [
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "ksm_zero_pages",
    "stable_node_chains",
    "stable_node_dups",
];

/// One counter of a row by its sysfs name.
pub fn counter(c: &Counters, name: &str) -> f64 {
    (match name {
        "full_scans" => c.full_scans as i64,
        "pages_scanned" => c.pages_scanned as i64,
        "pages_shared" => c.pages_shared as i64,
        "pages_sharing" => c.pages_sharing as i64,
        "pages_unshared" => c.pages_unshared as i64,
        "pages_volatile" => c.pages_volatile as i64,
        "pages_skipped" => c.pages_skipped as i64,
        "ksm_zero_pages" => c.ksm_zero_pages as i64,
        "general_profit" => c.general_profit,
        "stable_node_chains" => c.stable_node_chains as i64,
        "stable_node_dups" => c.stable_node_dups as i64,
        "pages_to_scan" => c.pages_to_scan as i64,
        _ => 0,
    }) as f64
}

/// A pass end whose exact counters differ: `(counter, real, sim)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub pass: u64,
    pub real_t_s: f64,
    pub fields: Vec<(String, f64, f64)>,
}

/// The scores of one comparison (the script's JSON line, plus the details).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    pub passes_compared: usize,
    pub exact_total: usize,
    pub exact_ok: usize,
    pub mismatches: Vec<Mismatch>,
    pub approx_mean_rel_err: Option<f64>,
    pub time_mean_rel_err: Option<f64>,
    /// `(pass, counter, real, sim, relative error)` after the first event.
    pub approx: Vec<(u64, String, f64, f64, f64)>,
    /// `(pass, real t, sim t)` of every timed pass end.
    pub times: Vec<(u64, f64, f64)>,
}

/// Time of the workload's first event (∞ if none).
pub fn first_event_s(w: &Workload) -> f64 {
    let mut t = f64::INFINITY;
    for p in &w.processes {
        for wr in &p.writers {
            t = t.min(wr.start_s);
        }
        for v in [p.unmerge_at_s, p.exit_at_s].into_iter().flatten() {
            t = t.min(v);
        }
        if p.madvise_at_s > 0.0 {
            t = t.min(p.madvise_at_s);
        }
    }
    t
}

/// First row of each `full_scans` value.
pub fn pass_ends(rows: &[Row]) -> std::collections::BTreeMap<u64, &Row> {
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        out.entry(r.counters.full_scans).or_insert(r);
    }
    out
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Scores `sim` against `real` for workload `w`, as `ksm_compare.py` does.
pub fn compare(w: &Workload, real: &Trace, sim: &Trace) -> Score {
    let real_rows = &real.rows[..real.rows.len().saturating_sub(1)];
    let (r_ends, s_ends) = (pass_ends(real_rows), pass_ends(&sim.rows));
    let skip0_r = real_rows
        .first()
        .map_or(0.0, |r| counter(&r.counters, "pages_skipped"));
    let skip0_s = sim
        .rows
        .first()
        .map_or(0.0, |r| counter(&r.counters, "pages_skipped"));
    let t_ev = first_event_s(w);
    let mut score = Score::default();
    let (mut approx_err, mut time_err) = (Vec::new(), Vec::new());
    for (&k, r) in r_ends.iter().filter(|(k, _)| **k >= 1) {
        let Some(s) = s_ends.get(&k) else { continue };
        score.passes_compared += 1;
        let tr = r.t_s;
        if tr < t_ev {
            score.exact_total += 1;
            let mut bad: Vec<(String, f64, f64)> = EXACT
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        counter(&r.counters, c),
                        counter(&s.counters, c),
                    )
                })
                .filter(|(_, a, b)| a != b)
                .collect();
            let dr = counter(&r.counters, "pages_skipped") - skip0_r;
            let ds = counter(&s.counters, "pages_skipped") - skip0_s;
            if dr != ds {
                bad.push(("pages_skipped(delta)".into(), dr, ds));
            }
            if bad.is_empty() {
                score.exact_ok += 1;
            } else {
                score.mismatches.push(Mismatch {
                    pass: k,
                    real_t_s: tr,
                    fields: bad,
                });
            }
        } else {
            for c in ["pages_sharing", "general_profit", "pages_to_scan"] {
                let (a, b) = (counter(&r.counters, c), counter(&s.counters, c));
                let floor = if c == "pages_to_scan" { 1.0 } else { 1000.0 };
                let e = (a - b).abs() / a.abs().max(floor);
                approx_err.push(e);
                score.approx.push((k, c.to_string(), a, b, e));
            }
        }
        if tr > 0.05 {
            time_err.push((s.t_s - tr).abs() / tr);
            score.times.push((k, tr, s.t_s));
        }
    }
    score.approx_mean_rel_err = mean(&approx_err);
    score.time_mean_rel_err = mean(&time_err);
    score
}
