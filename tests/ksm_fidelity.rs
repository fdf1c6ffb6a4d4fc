//! Fidelity of the simulated ksmd against the real Linux 6.18 ksmd.
//!
//! Every recording in `tests/data/ksm-real/` is simulated from its workload and scored by
//! the rules of `shared/tools/ksm_compare.py`, reimplemented in `memsim::ksm::compare`
//! (the `#[ignore]`d test at the end runs the script itself when python3 is there):
//!
//! * every pass-end counter exact before the workload's first event;
//! * `pages_sharing`, `general_profit`, `pages_to_scan` within 10 % after it;
//! * pass-end times within 15 % (mean relative error).
//!
//! **The one known gap** is not the model's: the probe reads sysfs one file at a time
//! and polls `full_scans` every `poll_ms`, so a "pass-end" row can be read after ksmd
//! has moved on into the next pass. With `sleep_millisecs=0` (W6) ksmd does not pause
//! between batches, and three of W6's 72 pass-end rows were read 1 to 25 ms late, in the
//! middle of `cmp_and_merge_page` on a unique page (taken out of the unstable tree,
//! not yet put back: `pages_unshared` 4999, `pages_volatile` 1). Such rows are
//! recognised by their `pages_scanned`: larger than at the pass end. The tests require
//! every other pass end to be exact, and every mismatching one to be such a late row.

use std::path::{Path, PathBuf};
use std::process::Command;

use memsim::ksm::compare::{compare, pass_ends, Score};
use memsim::ksm::sim::simulate;
use memsim::ksm::trace::Trace;
use memsim::ksm::workload::{load_workload, Workload};

const RECORDINGS: [&str; 8] = [
    "w1_identical",
    "w2_unique_smart_off",
    "w2_unique_smart_on",
    "w3_writers_events",
    "w4_zero_pages_off",
    "w4_zero_pages_on",
    "w5_max_sharing",
    "w6_timing_sleep0",
];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real")
}

struct Case {
    name: &'static str,
    real: Trace,
    sim: Trace,
    score: Score,
    /// `pages_scanned` of the real machine before the run (cumulative since boot).
    scanned_before: u64,
}

fn workload(name: &str) -> Workload {
    let mut w = load_workload(data().join(format!("{name}.json"))).unwrap();
    // The probe records a row at every pass end even when the workload does not ask
    // for it (w1's recording has them), so the simulation does too.
    w.row_on_full_scan = true;
    w
}

fn run(name: &'static str) -> Case {
    let w = workload(name);
    let real =
        Trace::read_csv(std::fs::File::open(data().join(format!("{name}.csv"))).unwrap()).unwrap();
    let sim = simulate(&w).unwrap();
    let score = compare(&w, &real, &sim);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data().join(format!("{name}.meta.json"))).unwrap(),
    )
    .unwrap();
    let scanned_before = meta["counters_before"]["pages_scanned"].as_u64().unwrap();
    eprintln!(
        "{name}: passes {} exact {}/{} approx {:?} time {:?}",
        score.passes_compared,
        score.exact_ok,
        score.exact_total,
        score.approx_mean_rel_err,
        score.time_mean_rel_err
    );
    Case {
        name,
        real,
        sim,
        score,
        scanned_before,
    }
}

/// Asserts the yardstick for one recording: exact pass ends (late rows excepted and
/// listed), approximate counters within 10 %, pass-end times within 15 %.
fn assert_fidelity(c: &Case, min_exact: usize) {
    let real_rows = &c.real.rows[..c.real.rows.len() - 1];
    let (r_ends, s_ends) = (pass_ends(real_rows), pass_ends(&c.sim.rows));
    for m in &c.score.mismatches {
        let real_scanned = r_ends[&m.pass].counters.pages_scanned - c.scanned_before;
        let sim_scanned = s_ends[&m.pass].counters.pages_scanned;
        assert!(
            real_scanned > sim_scanned,
            "{}: pass {} differs although the real row is a true pass-end snapshot \
             (pages_scanned {real_scanned} = sim {sim_scanned}): {:?}",
            c.name,
            m.pass,
            m.fields
        );
    }
    assert!(
        c.score.exact_total >= min_exact,
        "{}: only {} pass ends before the first event",
        c.name,
        c.score.exact_total
    );
    if let Some(e) = c.score.approx_mean_rel_err {
        assert!(e <= 0.10, "{}: approximate counters off by {e}", c.name);
    }
    let t = c.score.time_mean_rel_err.expect("timed passes");
    assert!(t <= 0.15, "{}: pass-end times off by {t}", c.name);
}

#[test]
fn w1_identical_distinct_unique() {
    let c = run("w1_identical");
    assert_eq!(c.score.exact_ok, c.score.exact_total);
    assert_fidelity(&c, 10);
    // pass 2: 8 KSM pages for 2000 template pages (limit 256) + 10 distinct contents
    let end2 = pass_ends(&c.sim.rows)[&2].counters;
    assert_eq!(
        (end2.pages_shared, end2.pages_sharing, end2.pages_unshared),
        (18, 2282, 200)
    );
    assert_eq!(end2.general_profit, 9_187_072);
}

#[test]
fn w2_unique_pages_smart_scan_off_and_on() {
    for name in ["w2_unique_smart_off", "w2_unique_smart_on"] {
        let c = run(name);
        assert_eq!(c.score.exact_ok, c.score.exact_total, "{name}");
        assert_fidelity(&c, 25);
    }
}

#[test]
fn w3_writers_and_process_events() {
    let c = run("w3_writers_events");
    // The random writer starts at t=0: every pass is scored approximately.
    assert_fidelity(&c, 0);
    assert!(c.score.passes_compared >= 20);
}

#[test]
fn w4_zero_pages_off_and_on() {
    for name in ["w4_zero_pages_off", "w4_zero_pages_on"] {
        let c = run(name);
        assert_eq!(c.score.exact_ok, c.score.exact_total, "{name}");
        assert_fidelity(&c, 5);
    }
}

#[test]
fn w5_max_page_sharing_chains() {
    let c = run("w5_max_sharing");
    assert_eq!(c.score.exact_ok, c.score.exact_total);
    assert_fidelity(&c, 100);
    let end2 = pass_ends(&c.sim.rows)[&2].counters;
    assert_eq!(
        (
            end2.pages_shared,
            end2.pages_sharing,
            end2.pages_unshared,
            end2.stable_node_chains,
            end2.stable_node_dups
        ),
        (6, 15, 1, 2, 5)
    );
}

#[test]
fn w6_timing_with_sleep_zero() {
    let c = run("w6_timing_sleep0");
    assert_fidelity(&c, 60);
    // the late rows are the only misses, and they are few
    assert!(c.score.mismatches.len() <= 3, "{:?}", c.score.mismatches);
}

#[test]
fn per_process_counters_match_at_pass_ends_before_events() {
    for name in RECORDINGS {
        let c = run(name);
        let t_ev = memsim::ksm::compare::first_event_s(&workload(name));
        let real_rows = &c.real.rows[..c.real.rows.len() - 1];
        let (r_ends, s_ends) = (pass_ends(real_rows), pass_ends(&c.sim.rows));
        for (k, r) in r_ends.iter().filter(|(k, r)| **k >= 1 && r.t_s < t_ev) {
            let Some(s) = s_ends.get(k) else { continue };
            let late = r.counters.pages_scanned - c.scanned_before > s.counters.pages_scanned;
            if !late {
                assert_eq!(r.processes, s.processes, "{name} pass {k}");
            }
        }
    }
}

#[test]
#[ignore = "needs python3 and ../shared/tools/ksm_compare.py"]
fn python_yardstick_agrees() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/ksm_compare.py");
    let dir = std::env::temp_dir().join("memsim-ksm-fidelity");
    std::fs::create_dir_all(&dir).unwrap();
    for name in RECORDINGS {
        let c = run(name);
        let sim_csv = dir.join(format!("{name}.csv"));
        c.sim
            .write_csv(std::fs::File::create(&sim_csv).unwrap())
            .unwrap();
        let out = Command::new("python3")
            .arg(&script)
            .arg(data().join(format!("{name}.json")))
            .arg(data().join(format!("{name}.csv")))
            .arg(&sim_csv)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["exact_ok"].as_u64(),
            Some(c.score.exact_ok as u64),
            "{name}"
        );
        assert_eq!(
            v["exact_total"].as_u64(),
            Some(c.score.exact_total as u64),
            "{name}"
        );
        if let Some(e) = c.score.time_mean_rel_err {
            assert!(
                (v["time_mean_rel_err"].as_f64().unwrap() - e).abs() < 1e-3,
                "{name}"
            );
        }
    }
}
