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

use memsim::ksm::compare::{compare, pass_ends, Comparison};
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
    cmp: Comparison,
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
    let cmp = compare(&w, &real, &sim);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data().join(format!("{name}.meta.json"))).unwrap(),
    )
    .unwrap();
    let scanned_before = meta["counters_before"]["pages_scanned"].as_u64().unwrap();
    eprintln!("{cmp}");
    Case {
        name,
        real,
        sim,
        cmp,
        scanned_before,
    }
}

/// Asserts the yardstick for one recording: exact pass ends (late rows excepted and
/// listed), approximate counters within 10 %, pass-end times within 15 %.
fn assert_fidelity(c: &Case, min_exact: usize) {
    let real_rows = &c.real.rows[..c.real.rows.len() - 1];
    let (r_ends, s_ends) = (pass_ends(real_rows), pass_ends(&c.sim.rows));
    for m in c.cmp.mismatches() {
        let real_scanned = r_ends[&m.pass].counters.pages_scanned - c.scanned_before;
        let sim_scanned = s_ends[&m.pass].counters.pages_scanned;
        assert!(
            real_scanned > sim_scanned,
            "{}: pass {} differs although the real row is a true pass-end snapshot \
             (pages_scanned {real_scanned} = sim {sim_scanned}): {:?}",
            c.name,
            m.pass,
            m.counters
        );
    }
    let s = &c.cmp.summary;
    assert!(
        s.exact_total >= min_exact,
        "{}: only {} pass ends before the first event",
        c.name,
        s.exact_total
    );
    if let Some(e) = s.approx_mean_rel_err {
        assert!(e <= 0.10, "{}: approximate counters off by {e}", c.name);
    }
    let t = s.time_mean_rel_err.expect("timed passes");
    assert!(t <= 0.15, "{}: pass-end times off by {t}", c.name);
}

#[test]
fn w1_identical_distinct_unique() {
    let c = run("w1_identical");
    assert_eq!(c.cmp.summary.exact_ok, c.cmp.summary.exact_total);
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
        assert_eq!(c.cmp.summary.exact_ok, c.cmp.summary.exact_total, "{name}");
        assert_fidelity(&c, 25);
    }
}

#[test]
fn w3_writers_and_process_events() {
    let c = run("w3_writers_events");
    // The random writer starts at t=0: every pass is scored approximately.
    assert_fidelity(&c, 0);
    assert!(c.cmp.summary.passes_compared >= 20);
}

#[test]
fn w4_zero_pages_off_and_on() {
    for name in ["w4_zero_pages_off", "w4_zero_pages_on"] {
        let c = run(name);
        assert_eq!(c.cmp.summary.exact_ok, c.cmp.summary.exact_total, "{name}");
        assert_fidelity(&c, 5);
    }
}

#[test]
fn w5_max_page_sharing_chains() {
    let c = run("w5_max_sharing");
    assert_eq!(c.cmp.summary.exact_ok, c.cmp.summary.exact_total);
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
    let mismatches = c.cmp.mismatches();
    assert!(mismatches.len() <= 3, "{mismatches:?}");
}

#[test]
fn per_process_counters_match_at_pass_ends_before_events() {
    for name in RECORDINGS {
        let c = run(name);
        let real_rows = &c.real.rows[..c.real.rows.len() - 1];
        let (r_ends, s_ends) = (pass_ends(real_rows), pass_ends(&c.sim.rows));
        // The pass ends in both traces before the first event: those scored exactly.
        for k in c.cmp.passes.iter().filter(|p| p.exact).map(|p| p.pass) {
            let (r, s) = (r_ends[&k], s_ends[&k]);
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
        let script: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_same_score(name, &c.cmp.summary.to_json(), &script);
    }
}

/// Our JSON line is the script's: the same counts, the same mismatching passes and
/// counters with the same values, and the means within 1e-3 (or both null). The one
/// value allowed to differ is `pages_skipped(delta)`'s: the script looks up a column of
/// that name, finds none and shows 0.
fn assert_same_score(name: &str, ours: &serde_json::Value, script: &serde_json::Value) {
    for key in ["passes_compared", "exact_total", "exact_ok"] {
        assert_eq!(ours[key], script[key], "{name} {key}");
    }
    for key in ["approx_mean_rel_err", "time_mean_rel_err"] {
        match (ours[key].as_f64(), script[key].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-3, "{name} {key}: {a} vs {b}"),
            _ => assert_eq!(ours[key], script[key], "{name} {key}"),
        }
    }
    let (ours, script) = (&ours["first_mismatches"], &script["first_mismatches"]);
    let (a, b) = (ours.as_array().unwrap(), script.as_array().unwrap());
    assert_eq!(a.len(), b.len(), "{name}: {ours} vs {script}");
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a[0], b[0], "{name}: {ours} vs {script}");
        let (a, b) = (a[1].as_object().unwrap(), b[1].as_object().unwrap());
        assert!(a.keys().eq(b.keys()), "{name}: {ours} vs {script}");
        for (counter, value) in a {
            if counter != "pages_skipped(delta)" {
                assert_eq!(*value, b[counter], "{name} {counter}: {ours} vs {script}");
            }
        }
    }
}
