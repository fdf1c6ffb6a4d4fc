//! `memsim side-channel` (issue 5, CVE-2021-3714): the shipped experiment
//! `scenarios/ksm-side-channel.yaml` run on the kernel model of ksmd. With ksmd
//! stopped the attacker's accuracy is chance; with ksmd running it detects the
//! software once ksmd visited its copies twice; the accuracy grows with the wait;
//! results do not depend on the thread count; bad input is reported with file, line
//! and key.

use std::path::PathBuf;

use crate::common::cli::{files, memsim};
use memsim::engine::SimTime;
use memsim::sidechannel::{self, Experiment, Row};

fn shipped_path() -> PathBuf {
    crate::common::shipped_path("ksm-side-channel")
}

fn shipped() -> Experiment {
    sidechannel::load(&shipped_path()).expect("the shipped experiment loads")
}

/// The shipped experiment with only the configuration called `name`.
fn only(name: &str, trials: u32) -> Experiment {
    let mut e = shipped();
    e.configs.retain(|c| c.name == name);
    assert_eq!(e.configs.len(), 1, "{name} is in the shipped file");
    e.trials = trials;
    e
}

fn run(e: &Experiment) -> Vec<Row> {
    sidechannel::run(e).expect("the experiment runs")
}

#[test]
fn with_ksm_off_the_attacker_is_at_chance() {
    let e = only("ksm off", 400);
    for r in run(&e) {
        // Nothing merges: every write is fast, the attacker always answers "no".
        assert_eq!(r.merged_when_runs, Some(0.0), "{r:?}");
        assert_eq!(r.true_positive_rate(), Some(0.0), "{r:?}");
        // Accuracy = share of victims not running the software, Binomial(400, 0.5):
        // within 3 standard deviations (±7.5 points) of one half.
        let sd = (0.25f64 / f64::from(r.trials)).sqrt();
        assert!((r.accuracy() - 0.5).abs() <= 3.0 * sd, "{r:?}");
    }
}

#[test]
fn with_ksm_on_the_accuracy_rises_with_the_wait_to_near_certainty() {
    let mut e = only("ksm on", 60);
    e.waits = vec![
        SimTime::from_millis(500),
        SimTime::from_secs(4),
        SimTime::from_secs(24),
    ];
    let rows = run(&e);
    let acc: Vec<f64> = rows.iter().map(Row::accuracy).collect();
    // Half a second is less than ksmd needs to visit the copies twice (a pass over the
    // three VMs' ~12 300 pages takes ~3 s at 100 pages per 24 ms): chance, more or less.
    assert!(acc[0] < 0.7, "{rows:?}");
    assert!(acc[0] < acc[1] && acc[1] <= acc[2], "{acc:?}");
    let last = &rows[2];
    assert!(last.accuracy() >= 0.9, "{last:?}");
    assert!(last.true_positive_rate().unwrap() >= 0.95, "{last:?}");
    assert!(last.merged_when_runs.unwrap() >= 0.99, "{last:?}");
    // The only false positives are trials in which the bystander runs the software:
    // the attacker cannot tell whose pages its copies merged with.
    let bystander_only = (0..e.trials)
        .map(|t| sidechannel::draw(&e, t))
        .filter(|d| !d.victim && d.bystanders[0])
        .count() as u32;
    assert!(
        bystander_only > 0,
        "the shipped bystander runs the software sometimes"
    );
    assert_eq!(last.false_positives, bystander_only, "{last:?}");
    let merged: Vec<f64> = rows.iter().map(|r| r.merged_when_runs.unwrap()).collect();
    assert!(merged.windows(2).all(|w| w[0] <= w[1]), "{merged:?}");
}

/// True-positive rate per wait of configuration `name` in `rows`.
fn tpr(rows: &[Row], name: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.config == name)
        .map(|r| r.true_positive_rate().unwrap())
        .collect()
}

fn ksm_on_only(mut e: Experiment, trials: u32, waits: &[u64]) -> Experiment {
    e.configs.retain(|c| c.run);
    e.trials = trials;
    e.waits = waits.iter().map(|&s| SimTime::from_secs(s)).collect();
    e
}

#[test]
fn smart_scan_delays_detection_of_software_loaded_at_boot() {
    // The victim loaded the software at boot and the attacker writes its copies into
    // memory it has used since boot (the shipped setting): both sets of pages failed
    // to merge for a minute, so smart scan visits them one pass in nine. Merging
    // waits for the next pass in which the copies are visited with an unchanged
    // checksum: 9 to 18 passes after the load instead of 1 to 2.
    let e = ksm_on_only(shipped(), 40, &[8, 32]);
    let rows = run(&e);
    let (plain, smart) = (tpr(&rows, "ksm on"), tpr(&rows, "ksm on, smart scan"));
    assert_eq!(plain, [1.0, 1.0], "{rows:?}");
    assert!(smart[0] < 0.2, "{rows:?}");
    assert_eq!(smart[1], 1.0, "{rows:?}");
}

#[test]
fn smart_scan_can_keep_fresh_copies_from_ever_meeting_aged_pages() {
    // Copies in fresh memory get new rmap_items and their own skip schedule; the
    // victim's aged pages are visited one pass in nine. The unstable tree lives one
    // pass, so the two merge only in a pass that visits both: in some trials none
    // comes, however long the attacker waits. Without smart scan every pass does.
    let mut e = ksm_on_only(shipped(), 40, &[32]);
    e.attacker.memory = sidechannel::Memory::Fresh;
    let rows = run(&e);
    let (plain, smart) = (tpr(&rows, "ksm on"), tpr(&rows, "ksm on, smart scan"));
    assert_eq!(plain, [1.0], "{rows:?}");
    assert!(smart[0] > 0.1 && smart[0] < 0.8, "{rows:?}");
}

#[test]
fn a_victim_with_ksm_off_is_not_exposed() {
    // `ksm: false` on the victim (QEMU mem-merge=off): its pages are never mergeable.
    // The attacker's copies still merge with the bystander's when it runs the
    // software, so the guess follows the bystander, not the victim: chance.
    // Without smart scan no ageing matters: a shorter run-up keeps the test quick.
    let mut e = ksm_on_only(shipped(), 300, &[8]);
    e.configs.retain(|c| !c.smart_scan);
    e.attacker.loads_at = SimTime::from_secs(10);
    e.victim.ksm = false;
    let r = &run(&e)[0];
    assert!(r.merged_when_runs.unwrap() < 0.3, "{r:?}");
    let sd = (0.25f64 / f64::from(r.trials)).sqrt();
    assert!((r.accuracy() - 0.5).abs() <= 3.0 * sd, "{r:?}");
}

#[test]
fn outputs_are_byte_identical_with_one_or_three_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shipped_path()).unwrap();
    let small = text.replace("trials: 200", "trials: 12").replace(
        "waits: [1s, 2s, 4s, 6s, 8s, 12s, 16s, 20s, 24s, 32s]",
        "waits: [1s, 8s]",
    );
    assert_ne!(small, text, "the shipped file still has the replaced lines");
    let file = tmp.path().join("small.yaml");
    std::fs::write(&file, small).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, threads) in [(&a, "1"), (&b, "3")] {
        let args = [
            "side-channel",
            file.to_str().unwrap(),
            "--threads",
            threads,
            "--out",
            dir.to_str().unwrap(),
        ];
        let o = memsim(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(
            table.contains("ksm on, smart scan") && table.contains("accuracy"),
            "{table}"
        );
    }
    let (fa, fb) = (files(&a), files(&b));
    let names: Vec<&str> = fa.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["side_channel.csv", "side_channel.png", "side_channel.svg"]
    );
    assert!(fa == fb, "outputs differ between 1 and 3 threads");
    let csv = String::from_utf8(fa[0].1.clone()).unwrap();
    // Header plus 3 configurations × 2 waits.
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(
        csv.starts_with("config,run,smart_scan,wait_s,trials"),
        "{csv}"
    );
}

#[test]
fn bad_input_names_file_line_and_key_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    let text = "name: bad\n\
                trials: 0\n\
                target_pages: 8\n\
                waits: [2s, 1s]\n\
                victim: {pages: 10, common_pages: 20}\n\
                attacker: {pages: 10, loads_at: 1s, memroy: fresh}\n\
                configs:\n\
                \x20 - {name: a, run: 1, smart_scan: 2}\n\
                \x20 - {name: a, run: 2}\n";
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    let o = memsim(&[
        "side-channel",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let f = file.display().to_string();
    for want in [
        format!("{f}:2: trials: must be between 1 and"),
        format!("{f}:4: waits[1]: waits must increase"),
        format!("{f}:5: victim.common_pages: 20 common pages do not fit in 10 pages"),
        format!("{f}:6: attacker.memroy: unknown key \"memroy\"; did you mean \"memory\"?"),
        format!("{f}:8: configs[0].smart_scan: the kernel refuses 2"),
        format!("{f}:9: configs[1].run: must be between 0 and 1"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!out.exists(), "nothing is written for bad input");
    // A YAML syntax error names its line too.
    std::fs::write(&file, "name: x\nwaits: [1s\n").unwrap();
    let o = memsim(&["side-channel", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("{f}:")),
        "{o:?}"
    );
}
