//! A simulated trace against a real recording of the same workload, pass end by pass
//! end, scored as `shared/tools/ksm_compare.py` scores it:
//!
//! - the real trace's last row is dropped (it may show the processes being torn down);
//! - the end of pass k is the first row whose `full_scans` is k, in each trace; pass k
//!   of the real trace is matched with pass k of the simulated one (k ≥ 1, present in
//!   both);
//! - before the workload's first writer or process event (a writer's `start_s`, an
//!   `unmerge_at_s` or `exit_at_s`, a `madvise_at_s` > 0) every pass end must match
//!   exactly in pages_shared, pages_sharing, pages_unshared, pages_volatile,
//!   ksm_zero_pages, stable_node_chains, stable_node_dups and in pages_skipped counted
//!   from each trace's first row;
//! - from then on pages_sharing, general_profit and pages_to_scan are compared by
//!   relative error (|real − sim| / max(|real|, 1000), or / max(|real|, 1) for
//!   pages_to_scan), whose mean must be within 10 %;
//! - the pass-end times (those after 0.05 s) by relative error, mean within 15 %.
//!
//! Besides the score, every counter is listed at every matched pass end.
//!
//! One model for every user: the fidelity tests (`tests/suite/ksm_fidelity.rs`) check each
//! mismatching pass end ([`Comparison::mismatches`]), `memsim calibrate` prints and
//! tabulates the whole [`Comparison`], and the real-kernel tests score a fresh
//! recording with it. Comparing two traces needs no kernel, so it lives here rather
//! than with the real runner.

use std::collections::BTreeMap;
use std::fmt;

use crate::ksm::trace::{Row, Trace, PER_PROCESS};
use crate::ksm::workload::Workload;

/// Counters that must match exactly before the first event (then `pages_skipped`
/// counted from the first row).
const EXACT: [&str; 7] = [
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "ksm_zero_pages",
    "stable_node_chains",
    "stable_node_dups",
];
const SKIPPED: &str = "pages_skipped(delta)";
/// Counters scored by relative error after the first event.
const APPROX: [&str; 3] = ["pages_sharing", "general_profit", "pages_to_scan"];
/// Limits on the mean relative errors.
pub const APPROX_LIMIT: f64 = 0.10;
pub const TIME_LIMIT: f64 = 0.15;
/// Pass ends earlier than this are too short for a relative time error.
const MIN_TIME_S: f64 = 0.05;

/// Global counters at a pass end, in the order they are listed. `pages_scanned` and
/// `pages_skipped` are cumulative since boot: counted from the trace's first row.
const GLOBAL: [&str; 11] = [
    "pages_scanned(delta)",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    SKIPPED,
    "ksm_zero_pages",
    "general_profit",
    "stable_node_chains",
    "stable_node_dups",
    "pages_to_scan",
];

/// The whole comparison of one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub workload: String,
    /// The workload's first writer or process event, if any.
    pub first_event_s: Option<f64>,
    /// The last pass completed in each trace (the real one without its last row).
    pub real_passes: u64,
    pub sim_passes: u64,
    /// The pass ends found in both traces, by pass.
    pub passes: Vec<PassEnd>,
    pub summary: Summary,
}

/// One pass end in both traces.
#[derive(Clone, Debug, PartialEq)]
pub struct PassEnd {
    pub pass: u64,
    pub t_real_s: f64,
    pub t_sim_s: f64,
    /// Before the first event: scored exactly (else by relative error).
    pub exact: bool,
    /// Global counters, then `<process>.<field>` for every process of either trace.
    pub counters: Vec<CounterDiff>,
}

/// One counter at one pass end; `None` where a trace has no value (a process that
/// has exited, or that the trace lacks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDiff {
    pub counter: String,
    pub real: Option<i64>,
    pub sim: Option<i64>,
}

impl CounterDiff {
    /// `sim − real`.
    pub fn error(&self) -> Option<i64> {
        Some(self.sim? - self.real?)
    }
}

impl PassEnd {
    /// `(real, sim)` of global counter `name`.
    fn values(&self, name: &str) -> (i64, i64) {
        let c = self
            .counters
            .iter()
            .find(|c| c.counter == name)
            .expect("a global counter");
        (c.real.unwrap_or(0), c.sim.unwrap_or(0))
    }

    /// The exactly scored counters that differ here; empty for a pass end scored by
    /// relative error.
    pub fn mismatches(&self) -> Vec<(String, i64, i64)> {
        if !self.exact {
            return Vec::new();
        }
        EXACT
            .iter()
            .chain([&SKIPPED])
            .map(|&c| (c, self.values(c)))
            .filter(|(_, (a, b))| a != b)
            .map(|(c, (a, b))| (c.to_string(), a, b))
            .collect()
    }
}

/// The score, as `ksm_compare.py` prints it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub passes_compared: usize,
    pub exact_total: usize,
    pub exact_ok: usize,
    /// The first two pass ends that did not match exactly, with up to three of their
    /// counters each.
    pub first_mismatches: Vec<Mismatch>,
    pub approx_mean_rel_err: Option<f64>,
    pub time_mean_rel_err: Option<f64>,
}

/// A pass end scored exactly that did not match: (counter, real, sim), in the order
/// the script checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub pass: u64,
    pub counters: Vec<(String, i64, i64)>,
}

impl Summary {
    pub fn exact_passed(&self) -> bool {
        self.exact_ok == self.exact_total
    }

    pub fn approx_passed(&self) -> bool {
        self.approx_mean_rel_err.is_none_or(|e| e <= APPROX_LIMIT)
    }

    pub fn time_passed(&self) -> bool {
        self.time_mean_rel_err.is_none_or(|e| e <= TIME_LIMIT)
    }

    /// All three criteria met, and at least one pass end compared.
    pub fn passed(&self) -> bool {
        self.passes_compared > 0
            && self.exact_passed()
            && self.approx_passed()
            && self.time_passed()
    }

    /// The JSON object `ksm_compare.py` prints (means rounded to 4 decimals; a
    /// mismatch of pages_skipped shows its deltas where the script shows 0).
    pub fn to_json(&self) -> serde_json::Value {
        let round = |x: Option<f64>| x.map(|x| (x * 1e4).round() / 1e4);
        let mismatches: Vec<serde_json::Value> = self
            .first_mismatches
            .iter()
            .map(|m| {
                let counters: serde_json::Map<String, serde_json::Value> = m
                    .counters
                    .iter()
                    .map(|(c, r, s)| (c.clone(), serde_json::json!([*r as f64, *s as f64])))
                    .collect();
                serde_json::json!([m.pass, counters])
            })
            .collect();
        serde_json::json!({
            "passes_compared": self.passes_compared,
            "exact_total": self.exact_total,
            "exact_ok": self.exact_ok,
            "first_mismatches": mismatches,
            "approx_mean_rel_err": round(self.approx_mean_rel_err),
            "time_mean_rel_err": round(self.time_mean_rel_err),
        })
    }
}

/// The workload's first writer or process event (`ksm_compare.py`'s `first_event_s`).
fn first_event_s(w: &Workload) -> Option<f64> {
    w.processes
        .iter()
        .flat_map(|p| {
            p.writers
                .iter()
                .map(|wr| wr.start_s)
                .chain(p.unmerge_at_s)
                .chain(p.exit_at_s)
                .chain((p.madvise_at_s > 0.0).then_some(p.madvise_at_s))
        })
        .min_by(f64::total_cmp)
}

/// The first row of each `full_scans` value: pass k ends at `pass_ends(rows)[&k]`.
/// Public so that a caller can go back from a [`PassEnd`] to the raw rows (the
/// fidelity tests read cumulative counters the comparison counts from the first row).
pub fn pass_ends(rows: &[Row]) -> BTreeMap<u64, &Row> {
    let mut out = BTreeMap::new();
    for r in rows {
        out.entry(r.counters.full_scans).or_insert(r);
    }
    out
}

/// Global counter `name` of `row`; the cumulative ones counted from `first`.
fn global(name: &str, row: &Row, first: &Row) -> i64 {
    let c = &row.counters;
    let v = match name {
        "pages_scanned(delta)" => {
            return c.pages_scanned as i64 - first.counters.pages_scanned as i64
        }
        SKIPPED => return c.pages_skipped as i64 - first.counters.pages_skipped as i64,
        "pages_shared" => c.pages_shared,
        "pages_sharing" => c.pages_sharing,
        "pages_unshared" => c.pages_unshared,
        "pages_volatile" => c.pages_volatile,
        "ksm_zero_pages" => c.ksm_zero_pages,
        "stable_node_chains" => c.stable_node_chains,
        "stable_node_dups" => c.stable_node_dups,
        "pages_to_scan" => c.pages_to_scan,
        "general_profit" => return c.general_profit,
        _ => unreachable!("unknown counter {name}"),
    };
    v as i64
}

fn process_field(trace: &Trace, row: &Row, process: &str, field: usize) -> Option<i64> {
    let i = trace.processes.iter().position(|p| p == process)?;
    let p = (*row.processes.get(i)?)?;
    Some(match field {
        0 => p.ksm_rmap_items as i64,
        1 => p.ksm_zero_pages as i64,
        2 => p.ksm_merging_pages as i64,
        _ => p.ksm_process_profit,
    })
}

/// Compares `sim` with the real recording `real` of workload `w`.
pub fn compare(w: &Workload, real: &Trace, sim: &Trace) -> Comparison {
    let real_rows = &real.rows[..real.rows.len().saturating_sub(1)];
    let t_event = first_event_s(w);
    let r_ends = pass_ends(real_rows);
    let s_ends = pass_ends(&sim.rows);
    let mut names: Vec<&String> = real.processes.iter().collect();
    names.extend(sim.processes.iter().filter(|p| !real.processes.contains(p)));

    let mut passes = Vec::new();
    if let (Some(r0), Some(s0)) = (real_rows.first(), sim.rows.first()) {
        for (&k, &r) in r_ends.range(1..) {
            let Some(&s) = s_ends.get(&k) else { continue };
            let mut counters: Vec<CounterDiff> = GLOBAL
                .iter()
                .map(|&name| CounterDiff {
                    counter: name.to_string(),
                    real: Some(global(name, r, r0)),
                    sim: Some(global(name, s, s0)),
                })
                .collect();
            for name in &names {
                for (f, field) in PER_PROCESS.iter().enumerate() {
                    counters.push(CounterDiff {
                        counter: format!("{name}.{field}"),
                        real: process_field(real, r, name, f),
                        sim: process_field(sim, s, name, f),
                    });
                }
            }
            passes.push(PassEnd {
                pass: k,
                t_real_s: r.t_s,
                t_sim_s: s.t_s,
                exact: t_event.is_none_or(|t| r.t_s < t),
                counters,
            });
        }
    }
    let last = |rows: &[Row]| {
        rows.iter()
            .map(|r| r.counters.full_scans)
            .max()
            .unwrap_or(0)
    };
    let mut cmp = Comparison {
        workload: w.name.clone(),
        first_event_s: t_event,
        real_passes: last(real_rows),
        sim_passes: last(&sim.rows),
        passes,
        summary: Summary::default(),
    };
    cmp.summary = cmp.score();
    cmp
}

impl Comparison {
    /// Every pass end scored exactly that did not match, with every counter that
    /// differs (the summary keeps the script's first two, three counters each).
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.passes
            .iter()
            .map(|p| Mismatch {
                pass: p.pass,
                counters: p.mismatches(),
            })
            .filter(|m| !m.counters.is_empty())
            .collect()
    }

    /// Scores the pass ends as `ksm_compare.py` does.
    fn score(&self) -> Summary {
        let exact_total = self.passes.iter().filter(|p| p.exact).count();
        let mismatches = self.mismatches();
        let approx: Vec<f64> = self
            .passes
            .iter()
            .filter(|p| !p.exact)
            .flat_map(|p| {
                APPROX.map(|c| {
                    let (a, b) = p.values(c);
                    let floor = if c == "pages_to_scan" { 1.0 } else { 1000.0 };
                    (a - b).abs() as f64 / (a.abs() as f64).max(floor)
                })
            })
            .collect();
        let times: Vec<f64> = self
            .passes
            .iter()
            .filter(|p| p.t_real_s > MIN_TIME_S)
            .map(|p| (p.t_sim_s - p.t_real_s).abs() / p.t_real_s)
            .collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Summary {
            passes_compared: self.passes.len(),
            exact_total,
            exact_ok: exact_total - mismatches.len(),
            first_mismatches: mismatches
                .into_iter()
                .take(2)
                .map(|mut m| {
                    m.counters.truncate(3);
                    m
                })
                .collect(),
            approx_mean_rel_err: mean(&approx),
            time_mean_rel_err: mean(&times),
        }
    }

    /// Per counter, the largest |sim − real| over the pass ends and the first pass
    /// where it occurs; counters that always agree are left out.
    pub fn largest_errors(&self) -> Vec<(String, i64, u64)> {
        let mut out: Vec<(String, i64, u64)> = Vec::new();
        for p in &self.passes {
            for c in &p.counters {
                let Some(e) = c.error().filter(|e| *e != 0) else {
                    continue;
                };
                match out.iter_mut().find(|(n, _, _)| *n == c.counter) {
                    Some(entry) if e.abs() > entry.1.abs() => {
                        *entry = (c.counter.clone(), e, p.pass)
                    }
                    Some(_) => {}
                    None => out.push((c.counter.clone(), e, p.pass)),
                }
            }
        }
        out
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILED"
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "{}: {} pass ends compared (real: {} passes, simulated: {})",
            self.workload, s.passes_compared, self.real_passes, self.sim_passes
        )?;
        let event = self
            .first_event_s
            .map_or("no writer or process event".to_string(), |t| {
                format!("first writer/process event at {t} s")
            });
        writeln!(
            f,
            "  exact before it ({event}): {}/{} pass ends match  {}",
            s.exact_ok,
            s.exact_total,
            verdict(s.exact_passed())
        )?;
        for m in &s.first_mismatches {
            let list: Vec<String> = m
                .counters
                .iter()
                .map(|(c, r, s)| format!("{c} real {r} sim {s}"))
                .collect();
            writeln!(f, "    pass {}: {}", m.pass, list.join(", "))?;
        }
        let pct = |e: Option<f64>| e.map_or("—".to_string(), |e| format!("{:.1} %", e * 100.0));
        writeln!(
            f,
            "  after it, pages_sharing/general_profit/pages_to_scan: mean rel. error {} (≤ {:.0} %)  {}",
            pct(s.approx_mean_rel_err),
            APPROX_LIMIT * 100.0,
            verdict(s.approx_passed())
        )?;
        writeln!(
            f,
            "  pass-end times: mean rel. error {} (≤ {:.0} %)  {}",
            pct(s.time_mean_rel_err),
            TIME_LIMIT * 100.0,
            verdict(s.time_passed())
        )?;
        let largest = self.largest_errors();
        if largest.is_empty() {
            writeln!(f, "  every counter agrees at every compared pass end")?;
        } else {
            let list: Vec<String> = largest
                .iter()
                .map(|(c, e, k)| format!("{c} {e:+} (pass {k})"))
                .collect();
            writeln!(f, "  largest sim − real: {}", list.join(", "))?;
        }
        write!(f, "  verdict: {}", if s.passed() { "PASS" } else { "FAIL" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(name: &str) -> (Workload, Trace) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
        let w: Workload =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap())
                .unwrap();
        let t =
            Trace::read_csv(std::fs::File::open(dir.join(format!("{name}.csv"))).unwrap()).unwrap();
        (w, t)
    }

    const ALL: [&str; 8] = [
        "w1_identical",
        "w2_unique_smart_off",
        "w2_unique_smart_on",
        "w3_writers_events",
        "w4_zero_pages_off",
        "w4_zero_pages_on",
        "w5_max_sharing",
        "w6_timing_sleep0",
    ];

    #[test]
    fn a_recording_compared_with_itself_has_no_error() {
        for name in ALL {
            let (w, t) = recording(name);
            let c = compare(&w, &t, &t);
            assert!(c.passes.len() > 1, "{name}");
            for p in &c.passes {
                for d in &p.counters {
                    assert!(
                        matches!(d.error(), Some(0) | None) && d.real == d.sim,
                        "{name} pass {} {}",
                        p.pass,
                        d.counter
                    );
                }
                assert_eq!(p.t_real_s, p.t_sim_s);
            }
            let s = &c.summary;
            assert_eq!(s.exact_ok, s.exact_total, "{name}");
            assert!(s.first_mismatches.is_empty());
            assert!(s.approx_mean_rel_err.is_none_or(|e| e == 0.0), "{name}");
            assert_eq!(s.time_mean_rel_err, Some(0.0), "{name}");
            assert!(s.passed(), "{name}");
            assert!(c.largest_errors().is_empty());
        }
    }

    #[test]
    fn the_score_is_ksm_compare_py_s() {
        // ksm_compare.py w1_identical.json w1_identical.csv w1_identical.csv
        let (w, t) = recording("w1_identical");
        let c = compare(&w, &t, &t);
        assert_eq!(
            c.summary.to_json(),
            serde_json::json!({"passes_compared": 13, "exact_total": 13, "exact_ok": 13,
                "first_mismatches": [], "approx_mean_rel_err": null, "time_mean_rel_err": 0.0})
        );
        // w3 has a writer from t = 0: everything is scored approximately.
        let (w, t) = recording("w3_writers_events");
        let c = compare(&w, &t, &t);
        assert_eq!(c.first_event_s, Some(0.0));
        assert_eq!(c.summary.exact_total, 0);
        assert_eq!(c.summary.approx_mean_rel_err, Some(0.0));
    }

    /// Adds `by` to `pages_volatile` in the row where `full_scans` first reaches `pass`.
    fn bump_volatile(t: &mut Trace, pass: u64, by: u64) {
        let row = t
            .rows
            .iter_mut()
            .find(|r| r.counters.full_scans == pass)
            .unwrap();
        row.counters.pages_volatile += by;
    }

    #[test]
    fn a_perturbed_counter_is_flagged_at_its_pass() {
        let (w, real) = recording("w1_identical");
        let mut sim = real.clone();
        bump_volatile(&mut sim, 3, 7);
        let c = compare(&w, &real, &sim);
        let s = &c.summary;
        assert_eq!((s.exact_ok, s.exact_total), (12, 13));
        assert_eq!(
            s.first_mismatches,
            [Mismatch {
                pass: 3,
                counters: vec![("pages_volatile".into(), 0, 7)]
            }]
        );
        assert!(!s.passed());
        assert_eq!(c.largest_errors(), [("pages_volatile".to_string(), 7, 3)]);
        // Only that counter of that pass differs.
        for p in &c.passes {
            for d in &p.counters {
                let expected = if p.pass == 3 && d.counter == "pages_volatile" {
                    7
                } else {
                    0
                };
                assert_eq!(d.error(), Some(expected), "pass {} {}", p.pass, d.counter);
            }
        }
        assert!(c
            .to_string()
            .contains("pass 3: pages_volatile real 0 sim 7"));
    }

    #[test]
    fn every_mismatch_is_listed_where_the_summary_keeps_the_first_two() {
        let (w, real) = recording("w1_identical");
        let mut sim = real.clone();
        for pass in [2, 4, 6] {
            bump_volatile(&mut sim, pass, 1);
        }
        let row = sim
            .rows
            .iter_mut()
            .find(|r| r.counters.full_scans == 4)
            .unwrap();
        row.counters.pages_shared += 1;
        row.counters.pages_sharing += 1;
        row.counters.stable_node_dups += 1;
        let c = compare(&w, &real, &sim);
        let all = c.mismatches();
        assert_eq!(all.iter().map(|m| m.pass).collect::<Vec<_>>(), [2, 4, 6]);
        assert_eq!(all[1].counters.len(), 4);
        let s = &c.summary;
        assert_eq!((s.exact_ok, s.exact_total), (10, 13));
        assert_eq!(
            s.first_mismatches,
            [all[0].clone(), {
                let mut m = all[1].clone();
                m.counters.truncate(3);
                m
            }]
        );
        assert!(c
            .passes
            .iter()
            .all(|p| p.mismatches().is_empty() != [2, 4, 6].contains(&p.pass)));
    }

    #[test]
    fn skipped_pages_count_from_the_first_row() {
        let (w, real) = recording("w2_unique_smart_on");
        let mut sim = real.clone();
        // Another boot: every cumulative counter offset, nothing else changed.
        for r in &mut sim.rows {
            r.counters.pages_skipped += 1_000_000;
            r.counters.pages_scanned += 5;
        }
        assert!(compare(&w, &real, &sim).summary.passed());
        // One pass skipping 100 more pages than the real one.
        let at = sim
            .rows
            .iter()
            .position(|r| r.counters.full_scans == 6)
            .unwrap();
        for r in &mut sim.rows[at..] {
            r.counters.pages_skipped += 100;
        }
        let s = compare(&w, &real, &sim).summary;
        assert_eq!(s.first_mismatches[0].pass, 6);
        assert_eq!(s.first_mismatches[0].counters[0].0, "pages_skipped(delta)");
        assert_eq!(s.exact_ok, 5, "passes 1-5 still match");
    }

    #[test]
    fn sharing_off_by_a_fifth_after_the_first_event_fails_the_ten_percent() {
        let (w, real) = recording("w3_writers_events");
        let mut sim = real.clone();
        for r in &mut sim.rows {
            r.counters.pages_sharing = r.counters.pages_sharing * 6 / 5;
        }
        let s = compare(&w, &real, &sim).summary;
        let e = s.approx_mean_rel_err.unwrap();
        // One of the three scored counters is off by ~20 %: the mean is ~6.7 %...
        assert!(e > 0.05 && e < 0.07, "{e}");
        assert!(s.approx_passed());
        // ...and with general_profit off too, over 10 %.
        for r in &mut sim.rows {
            r.counters.general_profit = r.counters.general_profit * 6 / 5;
        }
        let s = compare(&w, &real, &sim).summary;
        assert!(s.approx_mean_rel_err.unwrap() > APPROX_LIMIT);
        assert!(!s.passed());
        assert!(s.time_passed() && s.exact_passed());
    }

    #[test]
    fn slow_passes_fail_the_time_criterion_only() {
        let (w, real) = recording("w1_identical");
        let mut sim = real.clone();
        for r in &mut sim.rows {
            r.t_s *= 1.2;
        }
        let s = compare(&w, &real, &sim).summary;
        assert!((s.time_mean_rel_err.unwrap() - 0.2).abs() < 1e-9);
        assert!(!s.time_passed());
        assert!(s.exact_passed());
    }

    #[test]
    fn missing_passes_and_processes_are_not_compared() {
        let (w, real) = recording("w3_writers_events");
        let mut sim = real.clone();
        sim.rows.truncate(sim.rows.len() / 2);
        sim.processes[3] = "other".into();
        let c = compare(&w, &real, &sim);
        assert_eq!(c.passes.last().unwrap().pass, c.sim_passes);
        assert!(c.sim_passes < c.real_passes);
        let p = &c.passes[0];
        let get = |name: &str| p.counters.iter().find(|d| d.counter == name).unwrap();
        assert_eq!(get("p3.ksm_rmap_items").sim, None);
        assert_eq!(get("other.ksm_rmap_items").real, None);
        assert!(get("other.ksm_rmap_items").sim.is_some());
        let empty = Trace::default();
        let c = compare(&w, &real, &empty);
        assert_eq!(c.summary.passes_compared, 0);
        assert!(!c.summary.passed());
    }
}
