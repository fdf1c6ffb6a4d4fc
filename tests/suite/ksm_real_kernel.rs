//! Real-kernel KSM runs (`memsim ksm-trace --real`) against the committed recordings
//! of the reference probe (`tests/data/ksm-real/`, Linux 6.18, 2 vCPUs).
//!
//! **Opt-in only.** Every test here is `#[ignore]` *and* returns at once unless the
//! environment has `MEMSIM_REAL_KSM=1`, so neither `cargo test` nor
//! `cargo test -- --ignored` alone touches the host. They need root and a kernel with
//! KSM; each run changes `/sys/kernel/mm/ksm` for its duration (restoring every setting
//! afterwards, which the tests check) and starts with `run=2`, which unmerges every KSM
//! user of the host. About 40 s:
//!
//! ```sh
//! sudo MEMSIM_REAL_KSM=1 cargo test --test suite ksm_real_kernel:: -- --ignored --test-threads=1
//! ```
//!
//! On a kernel of the same family the pass-end counters match the recordings exactly
//! and pass-end times within the calibration tolerance.

use std::path::Path;
use std::sync::Mutex;

use memsim::ksm::compare::compare;
use memsim::ksm::real;
use memsim::ksm::trace::Trace;
use memsim::ksm::workload::Workload;

/// One real run at a time (they would refuse each other anyway).
static HOST: Mutex<()> = Mutex::new(());

fn enabled() -> bool {
    let on = std::env::var("MEMSIM_REAL_KSM").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped: set MEMSIM_REAL_KSM=1 to run KSM on this machine's kernel");
    }
    on
}

fn recording(name: &str) -> (Workload, Trace) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
    let w =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let t = Trace::read_csv(std::fs::File::open(dir.join(format!("{name}.csv"))).unwrap()).unwrap();
    (w, t)
}

/// Every KSM setting (not the counters) as the host has it now.
fn host_settings() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir("/sys/kernel/mm/ksm")
        .unwrap()
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| !m.permissions().readonly()))
        .map(|e| {
            let value = std::fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), value)
        })
        .collect();
    v.sort();
    v
}

/// Runs `name` for real and checks it against its recording.
fn matches_the_recording(name: &str, pass_ends_at_least: usize) {
    let _host = HOST.lock().unwrap_or_else(|e| e.into_inner());
    real::check_available().expect("a host where a real KSM run can start");
    let (mut w, reference) = recording(name);
    // The recordings have a row at every pass end; w1's workload leaves
    // row_on_full_scan out although the probe recorded those rows.
    w.row_on_full_scan = true;
    let before = host_settings();
    let rec = real::record(&w).unwrap();
    assert_eq!(host_settings(), before, "settings restored");
    assert_eq!(rec.settings.before, rec.settings.after);

    let cmp = compare(&w, &reference, &rec.trace);
    eprintln!("{cmp}");
    let s = &cmp.summary;
    assert!(s.passes_compared >= pass_ends_at_least, "{cmp}");
    assert!(s.exact_passed(), "pass-end counters differ:\n{cmp}");
    assert!(s.time_passed(), "pass-end times differ:\n{cmp}");
}

#[test]
#[ignore = "runs KSM on the real kernel: root and MEMSIM_REAL_KSM=1"]
fn w1_identical_merges_as_recorded() {
    if !enabled() {
        return;
    }
    matches_the_recording("w1_identical", 10);
}

#[test]
#[ignore = "runs KSM on the real kernel: root and MEMSIM_REAL_KSM=1"]
fn w2_unique_pages_are_skipped_by_smart_scan_as_recorded() {
    if !enabled() {
        return;
    }
    matches_the_recording("w2_unique_smart_on", 140);
}

#[test]
#[ignore = "runs KSM on the real kernel: root and MEMSIM_REAL_KSM=1"]
fn w2_unique_pages_without_smart_scan_as_recorded() {
    if !enabled() {
        return;
    }
    matches_the_recording("w2_unique_smart_off", 25);
}
