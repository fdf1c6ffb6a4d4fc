//! `memsim sweep` and `memsim merge` end to end, on a tiny scenario (two simulated
//! minutes per run): byte-identical outputs whatever the thread count, shards merged
//! into exactly the unsharded sweep.csv and report.html, a grid whose values really
//! change the runs, and bad input (exit status 2, the problem named, nothing written).

use crate::common::cli::{csv_cells, memsim, ok, stderr, tree};
use std::path::{Path, PathBuf};
use std::process::Output;

const TINY: &str = "\
name: tiny
seed: 7
duration: 2m
host: {memory: 16GiB, reserved: 1GiB}
templates:
  small: {memory: 1GiB, balloon: 512MiB, workload: web}
vms:
  - {vmid: 100, name: web, count: 2, template: small}
  - vmid: 200
    name: db
    memory: 2GiB
    workload:
      processes:
        - {name: job, anon: {shape: bursty, base: 256MiB, burst: 512MiB, every: 30s, length: 20s}}
";

/// 2 web counts × 2 targets × 2 seeds = 8 runs.
const GRID: &str = "\
sweep:
  parameters:
    vms[name=web].count: [1, 4]
    pvestatd.ballooning-target: [70, 90]
  seeds: 2
";

/// Writes the tiny scenario with `sweep` appended into `dir`.
fn scenario(dir: &Path, file: &str, sweep: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, format!("{TINY}{sweep}")).unwrap();
    path
}

fn sweep(scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "sweep",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    memsim(&args)
}

#[test]
fn outputs_are_byte_identical_with_one_or_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "tiny.yaml", GRID);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&sweep(&sc, &a, &["--threads", "1"]));
    ok(&sweep(&sc, &b, &["--threads", "2"]));
    let (fa, fb) = (tree(&a), tree(&b));
    let names: Vec<String> = fa.iter().map(|(p, _)| p.display().to_string()).collect();
    for want in [
        "sweep.csv",
        "sweep_heatmap.png",
        "sweep_heatmap.svg",
        "report.html",
        "runs/0000-count=1-ballooning-target=70-seed=7/summary.json",
        "runs/0000-count=1-ballooning-target=70-seed=7/report.html",
        "runs/0007-count=4-ballooning-target=90-seed=8/host_memory.png",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| n.ends_with("summary.json")).count(),
        8
    );
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{} differs between 1 and 2 threads", name.display());
    }
    assert_eq!(fa.len(), fb.len());
}

#[test]
fn the_grid_has_a_row_per_run_whose_values_change_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "tiny.yaml", GRID);
    let out = tmp.path().join("out");
    ok(&sweep(&sc, &out, &[]));
    let (header, rows) = csv_cells(&out.join("sweep.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(
        &header[..3],
        ["run", "vms[name=web].count", "pvestatd.ballooning-target"]
    );
    for summary_field in [
        "seed",
        "peak_memused_bytes",
        "guest_oom_kills",
        "host_oom_victims",
    ] {
        col(summary_field);
    }
    assert_eq!(rows.len(), 8);
    let cells = |c: &str| rows.iter().map(|r| r[col(c)].clone()).collect::<Vec<_>>();
    assert_eq!(
        cells("vms[name=web].count"),
        ["1", "1", "1", "1", "4", "4", "4", "4"]
    );
    assert_eq!(
        cells("pvestatd.ballooning-target"),
        ["70", "70", "90", "90"].repeat(2)
    );
    assert_eq!(
        cells("seed"),
        ["7", "8"].repeat(4),
        "seeds counted up from the scenario's"
    );
    // The count really reaches the simulation: web VMs + the db VM.
    assert_eq!(cells("vms"), ["2", "2", "2", "2", "5", "5", "5", "5"]);
    let peak: Vec<u64> = cells("peak_memused_bytes")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    for i in 0..4 {
        assert!(peak[i + 4] > peak[i], "4 web VMs use more than 1: {peak:?}");
    }
    assert!(rows[0][0].starts_with("0000-count=1-ballooning-target=70-seed=7"));
}

#[test]
fn two_shards_merged_equal_the_unsharded_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "tiny.yaml", GRID);
    let whole = tmp.path().join("whole");
    ok(&sweep(&sc, &whole, &[]));
    let shards: Vec<PathBuf> = (1..=2).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        ok(&sweep(&sc, dir, &["--shard", &format!("{}/2", i + 1)]));
        assert!(dir.join(format!("shard-{}-of-2.json", i + 1)).exists());
        for whole_only in ["sweep.csv", "report.html"] {
            assert!(
                !dir.join(whole_only).exists(),
                "a shard writes no {whole_only}"
            );
        }
    }
    let runs = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(runs(&shards[0]).len(), 4);
    let index = |name: &String| name[..4].parse::<usize>().unwrap();
    assert!(
        runs(&shards[0]).iter().all(|n| index(n) % 2 == 0),
        "shard 1 does runs 0, 2, 4, 6"
    );
    let mut together = [runs(&shards[0]), runs(&shards[1])].concat();
    together.sort();
    assert_eq!(together, runs(&whole));

    let merged = tmp.path().join("merged");
    let s: Vec<&str> = shards.iter().map(|d| d.to_str().unwrap()).collect();
    ok(&memsim(&[
        "merge",
        s[1],
        s[0],
        "--out",
        merged.to_str().unwrap(),
    ]));
    for f in [
        "sweep.csv",
        "sweep_heatmap.png",
        "sweep_heatmap.svg",
        "report.html",
    ] {
        let (m, w) = (
            std::fs::read(merged.join(f)).unwrap(),
            std::fs::read(whole.join(f)).unwrap(),
        );
        assert!(m == w, "merged {f} differs from the unsharded one");
    }
}

#[test]
fn merge_refuses_other_sweeps_missing_and_duplicate_shards_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = scenario(
        tmp.path(),
        "a.yaml",
        "sweep:\n  parameters:\n    vms[name=web].count: [1, 2]\n",
    );
    let b = scenario(
        tmp.path(),
        "b.yaml",
        "sweep:\n  parameters:\n    vms[name=web].count: [1, 3]\n",
    );
    let dir = |name: &str| tmp.path().join(name);
    ok(&sweep(&a, &dir("a1"), &["--shard", "1/2"]));
    ok(&sweep(&a, &dir("a2"), &["--shard", "2/2"]));
    ok(&sweep(&b, &dir("b2"), &["--shard", "2/2"]));
    // A manifest of the previous layout, without the scenario text for report.html.
    std::fs::create_dir(dir("old")).unwrap();
    let json = std::fs::read_to_string(dir("a2").join("shard-2-of-2.json")).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old["format"] = "memsim sweep shard 1".into();
    old.as_object_mut().unwrap().remove("scenario_text");
    std::fs::write(dir("old").join("shard-2-of-2.json"), old.to_string()).unwrap();
    let out = dir("merged");
    let merge = |inputs: &[&str]| {
        let mut args = vec!["merge"];
        let paths: Vec<String> = inputs
            .iter()
            .map(|i| dir(i).display().to_string())
            .collect();
        args.extend(paths.iter().map(String::as_str));
        args.extend(["--out", out.to_str().unwrap()]);
        memsim(&args)
    };
    let cases: [(&[&str], &str); 5] = [
        (&["a1", "b2"], "a shard of a different sweep"),
        (
            &["a1", "old"],
            "manifest format \"memsim sweep shard 1\", this memsim reads \"memsim sweep shard 2\"",
        ),
        (&["a1"], "shard 2 of 2 is missing"),
        (&["a1", "a1", "a2"], "shard 1 of 2 is given twice"),
        (&["a1", "nowhere"], "nowhere"),
    ];
    for (inputs, want) in cases {
        let o = merge(inputs);
        assert_eq!(o.status.code(), Some(2), "{inputs:?}");
        assert!(stderr(&o).contains(want), "{inputs:?}: {}", stderr(&o));
        assert!(!out.exists(), "{inputs:?}: nothing may be written");
    }
    ok(&merge(&["a2", "a1"]));
}

#[test]
fn bad_sweeps_exit_2_name_file_line_and_problem_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases = [
        // A path that names no field: the sweep key's line.
        (
            "sweep:\n  parameters:\n    vms[name=nope].count: [1, 2]\n",
            vec!["bad.yaml:17: sweep.parameters.vms[name=nope].count: no item of vms has name=nope (names: web, db)"],
        ),
        (
            "sweep:\n  parameters:\n    host.swapiness: [10]\n",
            vec!["bad.yaml:17: host.swapiness: unknown key \"swapiness\"; did you mean \"swappiness\"? (at sweep point swapiness=10)"],
        ),
        // A value of the wrong type: the loader's message, at the value, with the point.
        (
            "sweep:\n  parameters:\n    vms[name=web].count:\n      - 2\n      - many\n",
            vec!["bad.yaml:19: vms[0].count: expected an integer, found \"many\" (at sweep point count=many)"],
        ),
        // Every problem at once.
        (
            "sweep:\n  parameters:\n    vms[0].memory: [1GiB, 1 lot]\n    host.nothing.here: [1]\n  seeds: 0\n  heatmap: colour\n",
            vec![
                "bad.yaml:17: vms[0].memory:",
                "bad.yaml:18: host.nothing: unknown key \"nothing\"",
                "bad.yaml:19: sweep.seeds: expected a number of seeds",
                "bad.yaml:20: sweep.heatmap: expected a numeric sweep.csv column",
            ],
        ),
        ("", vec!["bad.yaml:1: sweep: missing: memsim sweep needs a sweep: section"]),
        (
            "sweep:\n  parameters:\n    seed: [1, 2]\n",
            vec!["sweep.parameters.seed: seeds are swept by sweep.seeds"],
        ),
    ];
    for (section, wants) in cases {
        let sc = scenario(tmp.path(), "bad.yaml", section);
        let o = sweep(&sc, &out, &[]);
        assert_eq!(o.status.code(), Some(2), "{section}");
        let err = stderr(&o);
        for want in wants {
            assert!(err.contains(want), "want {want:?} in:\n{err}");
        }
        assert!(!out.exists(), "nothing may be written on bad input");
    }
}

#[test]
fn bad_shard_specs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "tiny.yaml", GRID);
    let out = tmp.path().join("out");
    for (spec, want) in [
        ("3/2", "between 1 and 2"),
        ("0/2", "between 1 and 2"),
        ("x/2", "expected I/N"),
    ] {
        let o = sweep(&sc, &out, &["--shard", spec]);
        assert_eq!(o.status.code(), Some(2), "{spec}");
        assert!(stderr(&o).contains(want), "{spec}: {}", stderr(&o));
        assert!(!out.exists());
    }
}

#[test]
fn one_parameter_makes_no_heatmap_and_the_example_ships_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(
        tmp.path(),
        "tiny.yaml",
        "sweep:\n  parameters:\n    host.swap: [0, 1GiB]\n  seeds: [3]\n",
    );
    let out = tmp.path().join("out");
    ok(&sweep(&sc, &out, &[]));
    assert_eq!(csv_cells(&out.join("sweep.csv")).1.len(), 2);
    assert!(!out.join("sweep_heatmap.png").exists());
    assert!(out.join("runs/0001-swap=1GiB-seed=3/summary.json").exists());

    let example = memsim::sweep::load(Path::new("scenarios/sweep-example.yaml")).unwrap();
    assert_eq!(example.runs().len(), 18);
    ok(&memsim(&["validate", "scenarios/sweep-example.yaml"]));
}
