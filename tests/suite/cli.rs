//! The `memsim` binary end to end: the default run, byte-identical outputs whatever
//! the thread count, and bad input (exit status 2, every problem listed, nothing
//! written).

use std::process::Command;

use crate::common::cli::{files, memsim};

#[test]
fn outputs_are_byte_identical_with_one_or_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, threads) in [(&a, "1"), (&b, "2")] {
        let o = memsim(&["run", "--threads", threads, "--out", dir.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (fa, fb) = (files(&a), files(&b));
    let names: Vec<&str> = fa.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "timeseries_host.csv",
        "timeseries_vms.csv",
        "events.csv",
        "summary.json",
        "host_memory.png",
        "host_memory.svg",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(fa == fb, "outputs differ between 1 and 2 threads");
}

#[test]
fn bad_input_lists_every_problem_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "duration: 1h\nhost:\n  memory: 8GiB\nvms:\n  - vmid: 100\n    memory: 4GiB\n    balloon: 6GiB\n    shares: 90000\n    colour: blue\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = memsim(&["run", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml:7: vms[0].balloon"), "{err}");
    assert!(err.contains("bad.yaml:8: vms[0].shares"), "{err}");
    assert!(err.contains("bad.yaml:9: vms[0].colour"), "{err}");
    assert!(!out.exists(), "nothing may be written on bad input");
    let v = memsim(&["validate", bad.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(2));
    assert_eq!(v.stderr, o.stderr);
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    for f in ["scenarios/quickstart.yaml", "scenarios/large-48vm.yaml"] {
        let o = memsim(&["validate", f]);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_missing_file_is_bad_input() {
    let o = memsim(&["run", "no/such/scenario.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/scenario.yaml"));
}

#[test]
fn ksm_trace_simulates_a_workload_into_the_recordings_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w1.csv");
    let o = memsim(&[
        "ksm-trace",
        "tests/data/ksm-real/w1_identical.json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sim = std::fs::read_to_string(&out).unwrap();
    let real = std::fs::read_to_string("tests/data/ksm-real/w1_identical.csv").unwrap();
    assert_eq!(
        sim.lines().next(),
        real.lines().next(),
        "same columns as the recording"
    );
    assert!(
        sim.lines().nth(1).unwrap().starts_with("0,0,0,"),
        "counters start at 0"
    );
}

#[test]
fn a_bad_ksm_workload_names_the_key_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "x", "ksm": {"pages_to_scan": 0}, "processes": [{"name": "p", "segments": [{"kind": "template", "id": 1, "pages": 10}], "writers": [{"range": [0, 50], "pages_per_tick": 1, "every_ms": 5, "mode": "random"}]}]}"#,
    )
    .unwrap();
    let out = tmp.path().join("out.csv");
    let o = memsim(&[
        "ksm-trace",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pages_to_scan"), "{err}");
    assert!(err.contains("range"), "{err}");
    assert!(!out.exists());
}

#[test]
fn replay_ksmtuned_prints_run_npages_sleep_per_cycle() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memsim"))
        .args(["replay", "ksmtuned", "--variant", "proxmox"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    // 16 GiB host, free below the 20 % threshold: KSM starts and boosts by 300.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"16777216 1000000 8000000\n16777216 1000000 8000000\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 300 100\n1 600 100\n");
}
