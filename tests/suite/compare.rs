//! `memsim compare` end to end, on a small scenario (three clones of one template and
//! a database on a 2 GiB host, ten simulated minutes, ksmd at a low rate): every policy
//! runs, its row of comparison.csv is its run's summary.json, each policy switches what
//! it names (no balloon commands without pvestatd, no scanning without ksmd, merging of
//! the clones when ksmd always runs), outputs are byte-identical whatever the thread
//! count, and bad input exits 2 naming the problem, writing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::cli::{csv_maps, memsim, ok, stderr, tree};
use memsim::policy::Policy;

const SMALL: &str = "\
name: small
seed: 3
duration: 10m
host: {memory: 2GiB, reserved: 256MiB, page_cache: 128MiB, qemu_overhead: 32MiB, thp: never}
pvestatd: {ballooning-target: 80}
ksm: {pages_to_scan: 200, sleep_millisecs: 20}
templates:
  clone: {memory: 512MiB, balloon: 192MiB, workload: web}
vms:
  - {vmid: 100, name: web, count: 3, template: clone}
  - vmid: 200
    name: db
    memory: 512MiB
    balloon: 128MiB
    workload:
      processes:
        - name: postgres
          anon: {shape: ramp, from: 64MiB, to: 420MiB, start: 1m, over: 4m}
          hot_fraction: 0.5
          restart_after: 1m
";

fn scenario(dir: &Path) -> PathBuf {
    let path = dir.join("small.yaml");
    std::fs::write(&path, SMALL).unwrap();
    path
}

fn compare(scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compare",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    memsim(&args)
}

fn num(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column}: {:?}", row[column]))
}

#[test]
fn every_policy_runs_and_its_row_is_its_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let stdout = ok(&compare(&scenario(tmp.path()), &out, &[]));
    let rows = csv_maps(&out.join("comparison.csv"));
    let policies: Vec<&str> = rows.iter().map(|r| r["policy"].as_str()).collect();
    assert_eq!(policies, Policy::names(), "a row per policy, in order");
    for row in &rows {
        let policy = &row["policy"];
        assert_eq!(row["seeds"], "1");
        let text = std::fs::read_to_string(out.join(policy).join("summary.json")).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
        let summary = summary.as_object().unwrap();
        let mut shared = 0;
        for (field, value) in summary {
            if let (Some(cell), Some(v)) = (row.get(field), value.as_f64()) {
                let c: f64 = cell.parse().unwrap();
                assert_eq!(c, v, "{policy}: {field}");
                shared += 1;
            }
        }
        assert_eq!(shared, 14, "{policy}: summary columns in comparison.csv");
        assert_eq!(
            row["guest_oom_victims"].is_empty(),
            summary["guest_oom_kills"] == 0,
            "{policy}"
        );
        let cpu = summary["ksmd_cpu_s"].as_f64().unwrap() * 100.0 / 600.0;
        assert!((num(row, "ksmd_cpu_pct") - cpu).abs() < 1e-9, "{policy}");
        for file in ["summary.json", "timeseries_host.csv", "host_memory.png"] {
            assert!(out.join(policy).join(file).exists(), "{policy}/{file}");
        }
    }
    let row = |name: &str| rows.iter().find(|r| r["policy"] == name).unwrap();
    let (none, balloon, always) = (row("none"), row("balloon"), row("ksm-always"));
    // Without auto-ballooning nothing is sent and guests start at full size: nothing moves.
    assert_eq!(num(none, "balloon_commands"), 0.0);
    assert_eq!(num(none, "balloon_moved_bytes"), 0.0);
    assert!(num(balloon, "balloon_commands") > 0.0);
    assert!(num(balloon, "balloon_moved_bytes") > num(none, "balloon_moved_bytes"));
    assert!(num(balloon, "time_above_target_s") > 0.0);
    for name in ["none", "balloon", "free-page-reporting"] {
        assert_eq!(num(row(name), "ksm_pages_scanned"), 0.0, "{name}");
        assert_eq!(num(row(name), "peak_ksm_saved_bytes"), 0.0, "{name}");
    }
    // ksmd always on merges the clones' template pages, and it costs CPU.
    assert!(num(always, "ksm_pages_scanned") > 0.0);
    assert!(num(always, "mean_ksm_saved_bytes") > 32.0 * 1048576.0);
    assert!(num(always, "ksmd_cpu_pct") > 0.0);

    for name in [
        "compare_host_memory",
        "compare_swap",
        "compare_oom",
        "compare_bars",
    ] {
        for ext in ["png", "svg"] {
            let path = out.join(format!("{name}.{ext}"));
            assert!(
                std::fs::metadata(&path).unwrap().len() > 1000,
                "{name}.{ext}"
            );
        }
    }
    let header = stdout.lines().nth(1).unwrap();
    assert!(
        Policy::names().iter().all(|p| header.contains(p)),
        "{stdout}"
    );
    assert!(stdout.contains("200/postgres ×"), "{stdout}");
    assert!(stdout.contains("src/ksm/timing.rs"), "{stdout}");
}

#[test]
fn outputs_are_byte_identical_with_one_or_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let args = ["--policies", "ksm-always,none", "--seeds", "2"];
    ok(&compare(
        &sc,
        &a,
        &[&args[..], &["--threads", "1"]].concat(),
    ));
    ok(&compare(
        &sc,
        &b,
        &[&args[..], &["--threads", "2"]].concat(),
    ));
    let (fa, fb) = (tree(&a), tree(&b));
    let names: Vec<String> = fa.iter().map(|(p, _)| p.display().to_string()).collect();
    for want in [
        "comparison.csv",
        "compare_bars.svg",
        "ksm-always-seed=3/summary.json",
        "none-seed=4/events.csv",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert_eq!(fa.len(), fb.len());
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{} differs between 1 and 2 threads", name.display());
    }
    let rows = csv_maps(&a.join("comparison.csv"));
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["policy"].as_str(), rows[0]["seeds"].as_str()),
        ("ksm-always", "2")
    );
    let (lo, hi) = (
        num(&rows[0], "min_guest_oom_kills"),
        num(&rows[0], "max_guest_oom_kills"),
    );
    assert!(lo <= num(&rows[0], "guest_oom_kills") && num(&rows[0], "guest_oom_kills") <= hi);
}

#[test]
fn bad_input_exits_2_names_the_problem_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path());
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, SMALL.replace("count: 3", "count: lots")).unwrap();
    let out = tmp.path().join("out");
    let cases: [(&Path, &[&str], &[&str]); 4] = [
        (
            &sc,
            &["--policies", "none,balon"],
            &[
                "unknown policy \"balon\"",
                "valid: none, balloon, ksm, both, ksm-always, free-page-reporting",
            ],
        ),
        (
            &sc,
            &["--seeds", "0"],
            &["--seeds 0: expected a number of seeds"],
        ),
        // Every problem at once: the scenario's and the options'.
        (
            &bad,
            &["--policies", "ksm,ksm"],
            &[
                "bad.yaml:10: vms[0].count: expected an integer",
                "--policies: ksm is given more than once",
            ],
        ),
        (
            &tmp.path().join("missing.yaml"),
            &[],
            &["cannot read the scenario"],
        ),
    ];
    for (scenario, args, wants) in cases {
        let o = compare(scenario, &out, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        for want in wants {
            assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        }
        assert!(!out.exists(), "{args:?}: nothing may be written");
    }
}

#[test]
fn help_lists_every_policy_with_what_it_does() {
    let help = ok(&memsim(&["compare", "--help"]));
    for p in Policy::ALL {
        assert!(
            help.contains(p.name()) && help.contains(p.summary()),
            "{p}: {help}"
        );
    }
}
