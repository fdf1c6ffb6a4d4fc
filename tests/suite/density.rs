//! `memsim density` end to end, on a small scenario (web clones and a batch VM with
//! random bursts on a 4 GiB host, fifteen simulated minutes, no KSM): the searched
//! answer is the one an exhaustive scan over every count finds, also per seed; outputs
//! are byte-identical whatever the thread count; shards merge into exactly the
//! unsharded outputs and mismatched shards are refused; a count the loader refuses is
//! a count the host does not carry; bad input exits 2 naming the problem, writing
//! nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::cli::{csv_maps, files, memsim, ok, stderr};
use memsim::policy::Policy;

const SMALL: &str = "\
name: small
seed: 3
duration: 15m
host: {memory: 4GiB, reserved: 256MiB, page_cache: 128MiB, qemu_overhead: 32MiB, thp: never}
pvestatd: {ballooning-target: 80}
templates:
  clone: {memory: 512MiB, balloon: 256MiB, workload: web}
vms:
  - {vmid: 100, name: web, count: 2, template: clone}
  - vmid: 200
    name: batch
    memory: 1GiB
    balloon: 768MiB
    workload:
      processes:
        - {name: job, anon: {shape: bursty, base: 128MiB, burst: 512MiB, every: 3m, length: 2m}, hot_fraction: 0.3}
";

const MAX_USED_PCT: f64 = 85.0;
const RANGE: (u32, u32) = (1, 12);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `memsim density` on `scenario` for the web group, within 85 % host memused and no
/// OOM kills, counts 1 to 12.
fn density(scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "density",
        scenario.to_str().unwrap(),
        "--group",
        "web",
        "--max-host-used",
        "85",
        "--min",
        "1",
        "--max",
        "12",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    memsim(&args)
}

/// Whether the host carries `count` web VMs under `policy` with `seed`, found without
/// memsim's search or its measures: the scenario text edited, run, and judged here.
fn carries(policy: Policy, count: u32, seed: u64) -> bool {
    let text = SMALL.replace("count: 2,", &format!("count: {count},"));
    let mut sc = memsim::scenario::parse(&text, "small.yaml", Path::new(".")).unwrap();
    sc.seed = seed;
    policy.apply(&mut sc);
    let result = memsim::sim::run(&sc);
    let peak_pct = result
        .host
        .iter()
        .map(|s| s.memused_bytes as f64 * 100.0 / s.mem_total_bytes as f64)
        .fold(0.0, f64::max);
    let kills = result.summary.guest_oom_kills + result.summary.host_oom_kills;
    kills == 0 && peak_pct <= MAX_USED_PCT
}

#[test]
fn the_search_finds_what_a_scan_of_every_count_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "small.yaml", SMALL);
    let out = tmp.path().join("out");
    let stdout = ok(&density(
        &sc,
        &out,
        &["--policies", "none,balloon", "--seeds", "2"],
    ));
    let rows = csv_maps(&out.join("density.csv"));
    for (policy, seeds) in [(Policy::None, [3, 4]), (Policy::Balloon, [3, 4])] {
        let mut per_seed = Vec::new();
        for seed in seeds {
            let scan: Vec<bool> = (RANGE.0..=RANGE.1)
                .map(|c| carries(policy, c, seed))
                .collect();
            let largest = (RANGE.0..=RANGE.1)
                .filter(|&c| scan[(c - 1) as usize])
                .max();
            let carried_below = scan.iter().take_while(|&&ok| ok).count() as u32;
            assert_eq!(
                largest,
                (carried_below > 0).then_some(carried_below),
                "{policy} seed {seed}: the scan is not monotone ({scan:?}), pick another case"
            );
            let found = rows
                .iter()
                .filter(|r| r["policy"] == policy.name() && r["seed"] == seed.to_string())
                .filter(|r| r["within_limits"] == "true")
                .map(|r| r["count"].parse::<u32>().unwrap())
                .max();
            assert_eq!(found, largest, "{policy} seed {seed}");
            per_seed.push(largest.unwrap());
        }
        let answer = per_seed.iter().min().unwrap();
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{policy} ")))
            .unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], answer.to_string(), "{stdout}");
        let tried: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|r| r["policy"] == policy.name())
            .map(|r| r["count"].as_str())
            .collect();
        assert!(tried.len() < 8, "{policy}: a search, not a scan: {tried:?}");
    }
    // The seeds differ under ballooning in this case: the spread shows it.
    assert!(stdout.contains("5 / 5.5 / 6"), "{stdout}");
    for f in ["density.png", "density.svg"] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 1000, "{f}");
    }
}

const THREE: [&str; 4] = [
    "--policies",
    "none,balloon,free-page-reporting",
    "--seeds",
    "2",
];

#[test]
fn shards_merge_into_the_unsharded_outputs_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "small.yaml", SMALL);
    let dir = |name: &str| tmp.path().join(name);
    ok(&density(
        &sc,
        &dir("one"),
        &[&THREE[..], &["--threads", "1"]].concat(),
    ));
    ok(&density(
        &sc,
        &dir("two"),
        &[&THREE[..], &["--threads", "2"]].concat(),
    ));
    let whole = files(&dir("one"));
    assert_eq!(
        whole,
        files(&dir("two")),
        "outputs differ between 1 and 2 threads"
    );
    let names: Vec<&str> = whole.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["density.csv", "density.png", "density.svg", "report.html"]
    );

    // Shard 1 of 2 searches policies 1 and 3, shard 2 policy 2.
    let s1 = ok(&density(
        &sc,
        &dir("s1"),
        &[&THREE[..], &["--shard", "1/2"]].concat(),
    ));
    let s2 = ok(&density(
        &sc,
        &dir("s2"),
        &[&THREE[..], &["--shard", "2/2"]].concat(),
    ));
    assert!(
        s1.contains("free-page-reporting") && !s1.contains("balloon "),
        "{s1}"
    );
    assert!(s2.contains("balloon ") && !s2.contains("none "), "{s2}");
    for (d, i) in [("s1", 1), ("s2", 2)] {
        let names: Vec<String> = files(&dir(d)).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [format!("density-shard-{i}-of-2.json")],
            "a shard writes its manifest only"
        );
    }
    let merged = dir("merged");
    ok(&memsim(&[
        "merge",
        dir("s2").to_str().unwrap(),
        dir("s1").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]));
    assert!(
        files(&merged) == whole,
        "merged outputs differ from the unsharded ones"
    );
}

#[test]
fn merge_refuses_mismatched_shards_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "small.yaml", SMALL);
    let dir = |name: &str| tmp.path().join(name);
    ok(&density(
        &sc,
        &dir("a1"),
        &[&THREE[..], &["--shard", "1/2"]].concat(),
    ));
    ok(&density(
        &sc,
        &dir("a2"),
        &[&THREE[..], &["--shard", "2/2"]].concat(),
    ));
    // Another search: a different limit.
    let other = [&THREE[..], &["--shard", "2/2", "--max-oom-kills", "3"]].concat();
    ok(&density(&sc, &dir("b2"), &other));
    // Another split of the same search.
    ok(&density(
        &sc,
        &dir("c3"),
        &[&THREE[..], &["--shard", "1/3"]].concat(),
    ));
    let out = dir("merged");
    let merge = |inputs: &[&str]| {
        let paths: Vec<String> = inputs
            .iter()
            .map(|i| dir(i).display().to_string())
            .collect();
        let mut args = vec!["merge"];
        args.extend(paths.iter().map(String::as_str));
        args.extend(["--out", out.to_str().unwrap()]);
        memsim(&args)
    };
    // Files that are no manifest, or an edited one.
    std::fs::create_dir(dir("junk")).unwrap();
    write(&dir("junk"), "density-shard-1-of-1.json", "{}");
    let edited = std::fs::read_to_string(dir("a2").join("density-shard-2-of-2.json")).unwrap();
    let edited = edited.replacen("\"seeds\": [\n      3,\n      4\n    ]", "\"seeds\": []", 1);
    assert!(edited.contains("\"seeds\": []"), "{edited}");
    std::fs::create_dir(dir("edited")).unwrap();
    write(&dir("edited"), "density-shard-2-of-2.json", &edited);
    let cases: [(&[&str], &str); 6] = [
        (&["a1", "b2"], "a shard of a different density search"),
        (&["a1"], "shard 2 of 2 is missing"),
        (&["a1", "a2", "a2"], "shard 2 of 2 is given twice"),
        (&["a1", "c3"], "shard 1 of 3, but"),
        (&["junk"], "not a density shard manifest"),
        (&["a1", "edited"], "an inconsistent manifest"),
    ];
    for (inputs, want) in cases {
        let o = merge(inputs);
        assert_eq!(o.status.code(), Some(2), "{inputs:?}");
        assert!(stderr(&o).contains(want), "{inputs:?}: {}", stderr(&o));
        assert!(!out.exists(), "{inputs:?}: nothing may be written");
    }
    ok(&merge(&["a1", "a2"]));
}

#[test]
fn a_count_the_loader_refuses_is_not_carried() {
    let tmp = tempfile::tempdir().unwrap();
    // The batch VM's vmid 105 is where a sixth web VM would go.
    let sc = write(
        tmp.path(),
        "small.yaml",
        &SMALL.replace("vmid: 200", "vmid: 105"),
    );
    let out = tmp.path().join("out");
    let stdout = ok(&memsim(&[
        "density",
        sc.to_str().unwrap(),
        "--group",
        "web",
        "--policies",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]));
    let rows = csv_maps(&out.join("density.csv"));
    let refused: Vec<&BTreeMap<String, String>> =
        rows.iter().filter(|r| !r["note"].is_empty()).collect();
    assert!(!refused.is_empty(), "{rows:?}");
    for r in refused {
        assert!(r["count"].parse::<u32>().unwrap() >= 6);
        assert_eq!(r["within_limits"], "false");
        assert!(
            r["note"].contains("vmid 105 is already used"),
            "{}",
            r["note"]
        );
    }
    assert!(stdout.contains("6: does not load"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("none "))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("5"), "{stdout}");
}

#[test]
fn bad_input_exits_2_names_the_problem_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "small.yaml", SMALL);
    let out = tmp.path().join("out");
    let run = |args: &[&str]| {
        let mut all = vec![
            "density",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        memsim(&all)
    };
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--group", "nope"],
            &["--group nope: no vms: entry is named nope (groups (entries with count:): web)"],
        ),
        (
            &["--group", "batch"],
            &["--group batch: vms[1] (batch) has no count:"],
        ),
        (
            &["--group", "web", "--policies", "ksm,balon"],
            &["unknown policy \"balon\"", "valid: none, balloon,"],
        ),
        (
            &["--group", "web", "--max-host-used", "150"],
            &["--max-host-used 150: a share of MemTotal in percent, above 0 and at most 100"],
        ),
        (
            &["--group", "web", "--shard", "3/2"],
            &["--shard", "between 1 and 2"],
        ),
        // Every problem at once.
        (
            &[
                "--group", "nope", "--seeds", "0", "--min", "4", "--max", "2",
            ],
            &["--seeds 0", "--max 2 is below --min 4", "--group nope"],
        ),
    ];
    for (args, wants) in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        for want in wants {
            assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        }
        assert!(!out.exists(), "{args:?}: nothing may be written");
    }
}

#[test]
fn the_example_ships_valid_with_its_group() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    ok(&memsim(&["validate", "scenarios/density-example.yaml"]));
    let stdout = ok(&memsim(&[
        "density",
        "scenarios/density-example.yaml",
        "--group",
        "web",
        "--policies",
        "balloon",
        "--min",
        "6",
        "--max",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        stdout.contains("balloon ") && stdout.contains("--max 6 reached"),
        "{stdout}"
    );
}
