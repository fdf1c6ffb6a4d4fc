//! Every class of bad input yields a problem naming file, line and key path, and a file
//! with several problems lists all of them.

use std::path::Path;

use memsim::scenario::{load, parse};

const FIXTURES: &str = "tests/fixtures/scenarios";

/// Lines 1–6 of every inline case; a case's own lines start at 7.
const HEAD: &str = "duration: 2h\nhost:\n  memory: 64GiB\nvms:\n  - vmid: 100\n    memory: 8GiB\n";

/// The problems of `text`, one string each, as printed.
fn problems(text: &str) -> Vec<String> {
    match parse(text, "x.yaml", Path::new(FIXTURES)) {
        Ok(s) => panic!("expected problems, got {s:?}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

/// `HEAD` plus `tail`, expecting exactly `want`.
fn check(tail: &str, want: &[&str]) {
    assert_eq!(problems(&(HEAD.to_string() + tail)), want, "for:\n{tail}");
}

#[test]
fn head_alone_is_valid() {
    assert!(parse(HEAD, "x.yaml", Path::new(FIXTURES)).is_ok());
}

#[test]
fn malformed_yaml() {
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB\nvms: []\n"),
        ["x.yaml:3: YAML syntax error at column 4: while parsing a flow mapping, did not find expected ',' or '}'"]
    );
    assert_eq!(
        problems("duration: 2h\nhost:\n\tmemory: 1\n"),
        ["x.yaml:3: YAML syntax error at column 2: tabs disallowed within this context (block indentation)"]
    );
    assert_eq!(
        problems("vms:\n  - vmid: 100\n   memory: 1GiB\n"),
        ["x.yaml:3: YAML syntax error at column 10: while parsing a block collection, did not find expected '-' indicator"]
    );
    assert_eq!(
        problems("a: 1\n---\nb: 2\n"),
        ["x.yaml:2: a second YAML document starts here; a scenario is one document"]
    );
}

#[test]
fn byte_order_mark_is_ignored() {
    assert!(parse(&format!("\u{feff}{HEAD}"), "x.yaml", Path::new(".")).is_ok());
}

#[test]
fn empty_file_and_no_vms() {
    let empty = ["x.yaml:1: the file is empty; a scenario needs at least duration, host and vms"];
    assert_eq!(problems(""), empty);
    assert_eq!(problems("# just a comment\n"), empty);
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB}\n"),
        ["x.yaml:1: vms: required key is missing (a scenario needs at least one VM)"]
    );
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB}\nvms: []\n"),
        ["x.yaml:3: vms: the list is empty: a scenario needs at least one VM"]
    );
}

#[test]
fn unknown_keys_suggest_the_closest() {
    check(
        "    balon: 1GiB\n    Shares: 10\n    cpu: 4\n",
        &[
            "x.yaml:7: vms[0].balon: unknown key \"balon\"; did you mean \"balloon\"?",
            "x.yaml:8: vms[0].Shares: unknown key \"Shares\"; did you mean \"shares\"?",
            "x.yaml:9: vms[0].cpu: unknown key \"cpu\" (valid: vmid, name, count, template, os, memory, balloon, shares, balloon_driver, deflate_on_oom, free_page_reporting, swap, swappiness, start_at, stop_at, migrations, hugepages, passthrough, ksm, content, workload)",
        ],
    );
    assert_eq!(
        problems("duration: 2h\nsample-interval: 5s\nhost: {memory: 64GiB}\npvestatd: {ballooning_target: 5}\nvms: [{vmid: 100, memory: 1GiB}]\n"),
        [
            "x.yaml:2: sample-interval: unknown key \"sample-interval\"; did you mean \"sample_interval\"?",
            "x.yaml:4: pvestatd.ballooning_target: unknown key \"ballooning_target\"; did you mean \"ballooning-target\"?",
        ]
    );
}

#[test]
fn duplicate_keys() {
    check(
        "    memory: 4GiB\n",
        &["x.yaml:7: vms[0].memory: duplicate key (first at line 6)"],
    );
}

#[test]
fn wrong_units() {
    check(
        "    swap: 512\n    start_at: 4GiB\n    balloon: 10s\n  - vmid: 101\n    memory: 4XB\n",
        &[
            "x.yaml:7: vms[0].swap: \"512\" needs a unit, e.g. 512MiB (only 0 may be written without one)",
            "x.yaml:8: vms[0].start_at: \"4GiB\" is a size, not a duration (use ms, s, m, h or d)",
            "x.yaml:9: vms[0].balloon: \"10s\" is a duration, not a size (use B, KiB, MiB, GiB or TiB)",
            "x.yaml:11: vms[1].memory: unknown size unit \"XB\" in \"4XB\" (use B, KiB, MiB, GiB or TiB)",
        ],
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        problems("duration: [2h]\nseed: abc\nhost: 64GiB\nvms: {vmid: 100}\n"),
        [
            "x.yaml:1: duration: expected a duration such as 10s, found a list",
            "x.yaml:2: seed: expected a non-negative integer, found \"abc\"",
            "x.yaml:3: host: expected a mapping with keys such as memory, reserved, page_cache, found \"64GiB\"",
            "x.yaml:4: vms: expected a list of VMs, found a mapping",
        ]
    );
    check(
        "    hugepages: 1\n    name: [a]\n    shares: 1.5\n    migrations: 30m\n    balloon:\n",
        &[
            "x.yaml:7: vms[0].hugepages: expected true or false, found \"1\"",
            "x.yaml:8: vms[0].name: expected a name, found a list",
            "x.yaml:9: vms[0].shares: expected an integer, found \"1.5\"",
            "x.yaml:10: vms[0].migrations: expected a list of {at, duration} windows, found \"30m\"",
            "x.yaml:11: vms[0].balloon: expected a size such as 4GiB, found an empty value",
        ],
    );
}

#[test]
fn impossible_sizes() {
    check(
        "    balloon: 9GiB\n  - vmid: 101\n    memory: -1GiB\n  - vmid: 102\n    memory: 128GiB\n  - vmid: 103\n    memory: 0\n  - vmid: 104\n    memory: 9000TiB\n",
        &[
            "x.yaml:7: vms[0].balloon: minimum 9GiB is larger than memory 8GiB",
            "x.yaml:9: vms[1].memory: size \"-1GiB\" is negative",
            "x.yaml:11: vms[2].memory: 128GiB is larger than the host's memory 64GiB",
            "x.yaml:13: vms[3].memory: must be larger than 0",
            "x.yaml:15: vms[4].memory: size \"9000TiB\" is too large (at most 8192TiB)",
        ],
    );
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 8GiB, reserved: 6GiB, zfs_arc: 2GiB}\nvms: [{vmid: 100, memory: 1GiB}]\n"),
        ["x.yaml:2: host.zfs_arc: reserved 6GiB + zfs_arc 2GiB leave nothing of memory 8GiB for VMs"]
    );
}

#[test]
fn out_of_range_numbers() {
    check(
        "    shares: 50001\n    swappiness: -1\n  - vmid: 99\n    memory: 1GiB\n",
        &[
            "x.yaml:7: vms[0].shares: must be between 0 and 50000, found 50001",
            "x.yaml:8: vms[0].swappiness: must be between 0 and 200, found -1",
            "x.yaml:9: vms[1].vmid: must be between 100 and 999999999, found 99",
        ],
    );
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB, numa_nodes: 0}\npvestatd:\n  ballooning-target: 101\n  maxchange: 0\nvms: [{vmid: 100, memory: 1GiB}]\n"),
        [
            "x.yaml:2: host.numa_nodes: must be between 1 and 64, found 0",
            "x.yaml:4: pvestatd.ballooning-target: must be between 0 and 100, found 101",
            "x.yaml:5: pvestatd.maxchange: must be larger than 0 (to stop auto-ballooning, set enabled: false)",
        ]
    );
}

#[test]
fn duplicate_vmids_also_after_count() {
    check(
        "  - vmid: 100\n    memory: 1GiB\n  - vmid: 98\n    count: 5\n    memory: 1GiB\n  - vmid: 999999998\n    count: 3\n    memory: 1GiB\n",
        &[
            "x.yaml:7: vms[1].vmid: vmid 100 is already used by vms[0]",
            "x.yaml:9: vms[2].vmid: must be between 100 and 999999999, found 98",
            "x.yaml:13: vms[3].count: vmid 999999998 with count 3 reaches 1000000000, above the largest vmid 999999999",
        ],
    );
    check(
        "    count: 3\n  - vmid: 102\n    memory: 1GiB\n  - vmid: 101\n    count: 4\n    memory: 1GiB\n",
        &[
            "x.yaml:8: vms[1].vmid: vmid 102 is already used by vms[0] (vmids 100..=102 via count)",
            "x.yaml:10: vms[2].vmid: vmid 101 is already used by vms[0] (vmids 100..=102 via count) (vmids 101..=104 via count)",
            "x.yaml:10: vms[2].vmid: vmid 102 is already used by vms[1] (vmids 101..=104 via count)",
        ],
    );
}

#[test]
fn run_times_and_migration_windows() {
    check(
        "    start_at: 1h\n    stop_at: 30m\n  - vmid: 101\n    memory: 1GiB\n    start_at: 3h\n    stop_at: 4h\n",
        &[
            "x.yaml:8: vms[0].stop_at: 30m is not after start_at 1h",
            "x.yaml:11: vms[1].start_at: 3h is not before the end of the run (duration 2h)",
            "x.yaml:12: vms[1].stop_at: 4h is after the end of the run (duration 2h)",
        ],
    );
    check(
        "    start_at: 10m\n    stop_at: 100m\n    migrations:\n      - {at: 30m, duration: 10m}\n      - {at: 35m, duration: 1m}\n  - vmid: 101\n    memory: 1GiB\n    start_at: 10m\n    stop_at: 100m\n    migrations:\n      - {at: 5m, duration: 1m}\n      - {at: 99m, duration: 2m}\n      - {at: 50m, duration: 0s}\n",
        &[
            "x.yaml:11: vms[0].migrations[1]: window 35m..36m overlaps vms[0].migrations[0] (30m..40m)",
            "x.yaml:19: vms[1].migrations[2].duration: must be longer than 0s",
        ],
    );
    check(
        "    migrations: [{at: 5m, duration: 1m}, {at: 119m, duration: 2m}]\n    start_at: 10m\n",
        &[
            "x.yaml:7: vms[0].migrations[0]: window 5m..6m starts before the VM (start_at 10m)",
            "x.yaml:7: vms[0].migrations[1]: window 119m..121m does not end within the run (duration 2h)",
        ],
    );
}

#[test]
fn run_settings() {
    assert_eq!(
        problems("duration: 0s\ntick: 1s\nsample_interval: 500ms\nhost: {memory: 64GiB}\nvms: [{vmid: 100, memory: 1GiB}]\n"),
        [
            "x.yaml:1: duration: must be longer than 0s",
            "x.yaml:3: sample_interval: 500ms is shorter than tick 1s",
        ]
    );
    assert_eq!(
        problems("duration: 2h\ntick: 20s\nhost: {memory: 64GiB}\nvms: [{vmid: 100, memory: 1GiB}]\n"),
        ["x.yaml:2: tick: 20s is longer than the default sample_interval 10s; set sample_interval too"]
    );
}

#[test]
fn unknown_names() {
    check(
        "    os: bsd\n    workload: databse\n  - vmid: 101\n    memory: 1GiB\n    template: debain\n  - vmid: 102\n    memory: 1GiB\n    workload:\n      processes:\n        - {name: a, anon: {shape: wave}}\n        - {name: b, anon: {from: 1GiB}}\n",
        &[
            "x.yaml:7: vms[0].os: unknown os \"bsd\" (valid: linux, windows)",
            "x.yaml:8: vms[0].workload: unknown preset \"databse\"; did you mean \"database\"?",
            "x.yaml:11: vms[1].template: unknown template \"debain\" (none are defined)",
            "x.yaml:16: vms[2].workload.processes[0].anon.shape: unknown shape \"wave\" (valid: constant, ramp, step, diurnal, bursty, trace)",
            "x.yaml:17: vms[2].workload.processes[1].anon.shape: required key is missing (one of constant, ramp, step, diurnal, bursty, trace)",
        ],
    );
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB, thp: sometimes}\ntemplates:\n  debian12: {memory: 1GiB}\nvms: [{vmid: 100, template: debain12}]\n"),
        [
            "x.yaml:2: host.thp: unknown thp setting \"sometimes\" (valid: never, madvise, always)",
            "x.yaml:5: vms[0].template: unknown template \"debain12\"; did you mean \"debian12\"?",
        ]
    );
}

#[test]
fn process_values() {
    check(
        "    workload:\n      preset: web\n      processes:\n        - name: nginx\n          anon: 1GiB\n        - name: p\n          anon: {shape: ramp, from: 1GiB, to: 2GiB}\n          hot_fraction: 1.5\n          oom_score_adj: 1001\n        - name: q\n          anon: 1GiB\n          hot_fraction: .nan\n          read_rate: 1GiB/h\n        - name: r\n          anon: {shape: step, initial: 0, steps: [{at: 10m, size: 1GiB}, {at: 5m, size: 0}]}\n",
        &[
            "x.yaml:10: vms[0].workload.processes[0].name: process name \"nginx\" is already used by preset web",
            "x.yaml:13: vms[0].workload.processes[1].anon.over: required key is missing",
            "x.yaml:14: vms[0].workload.processes[1].hot_fraction: must be between 0 and 1, found 1.5",
            "x.yaml:15: vms[0].workload.processes[1].oom_score_adj: must be between -1000 and 1000, found 1001",
            "x.yaml:18: vms[0].workload.processes[2].hot_fraction: expected a number between 0 and 1, found \".nan\"",
            "x.yaml:19: vms[0].workload.processes[2].read_rate: unknown size unit \"GiB/h\" in \"1GiB/h\" (use B, KiB, MiB, GiB or TiB)",
            "x.yaml:21: vms[0].workload.processes[3].anon.steps[1].at: at 5m is not after the previous step's 10m",
        ],
    );
    check(
        "    workload: {}\n",
        &["x.yaml:7: vms[0].workload: runs nothing: give a preset, processes, or both"],
    );
}

#[test]
fn template_problems_point_at_the_template() {
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB}\ntemplates:\n  t:\n    memory: 8GiB\n    balloon: 9GiB\n    vmid: 5\nvms:\n  - {vmid: 100, template: t}\n  - {vmid: 101, template: t, balloon: 10GiB}\n"),
        [
            "x.yaml:6: templates.t.balloon: minimum 9GiB is larger than memory 8GiB (for vms[0])",
            "x.yaml:7: templates.t.vmid: belongs on a VM, not in a template (templates hold shared defaults)",
            "x.yaml:10: vms[1].balloon: minimum 10GiB is larger than memory 8GiB",
        ]
    );
}

#[test]
fn missing_memory_mentions_the_template() {
    assert_eq!(
        problems("duration: 2h\nhost: {memory: 64GiB}\ntemplates:\n  t: {os: windows}\nvms:\n  - vmid: 100\n    template: t\n"),
        ["x.yaml:6: vms[0].memory: required key is missing (set it on the VM or in its template)"]
    );
}

#[test]
fn trace_files() {
    let err = load(&Path::new(FIXTURES).join("bad_trace.yaml")).unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    let file = format!("{FIXTURES}/bad_trace.yaml");
    assert_eq!(
        lines,
        [
            format!("{file}:10: vms[0].workload.processes[0].anon.file: traces/bad.csv:3: bytes: expected an integer, found \"lots\""),
            format!("{file}:10: vms[0].workload.processes[0].anon.file: traces/bad.csv:5: t_s 5 is not after the previous row's 10"),
            format!("{file}:10: vms[0].workload.processes[0].anon.file: traces/bad.csv:6: expected 2 fields, found 1"),
            format!("{file}:12: vms[0].workload.processes[1].anon.file: cannot read trace file {FIXTURES}/traces/missing.csv: No such file or directory (os error 2)"),
        ]
    );
}

#[test]
fn unreadable_scenario_file() {
    let err = load(Path::new("tests/fixtures/scenarios/nope.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/fixtures/scenarios/nope.yaml: cannot read the scenario: No such file or directory (os error 2)"
    );
}

#[test]
fn one_file_lists_all_its_problems() {
    let err = load(&Path::new(FIXTURES).join("many_problems.yaml")).unwrap_err();
    let f = format!("{FIXTURES}/many_problems.yaml");
    let want = [
        format!("{f}:3: tick: must be longer than 0s"),
        format!("{f}:6: host.swappiness: must be between 0 and 200, found 300"),
        format!("{f}:8: pvestatd.ballooning-target: must be between 0 and 100, found 120"),
        format!(
            "{f}:10: templates.small.balloon: minimum 3GiB is larger than memory 2GiB (for vms[0])"
        ),
        format!("{f}:16: vms[1].balloon: minimum 9GiB is larger than memory 8GiB"),
        format!("{f}:17: vms[1].shares: must be between 0 and 50000, found 60000"),
        format!("{f}:18: vms[1].os: unknown os \"solaris\" (valid: linux, windows)"),
        format!("{f}:19: vms[2].vmid: vmid 101 is already used by vms[1]"),
        format!("{f}:20: vms[2].memory: 128GiB is larger than the host's memory 64GiB"),
        format!("{f}:22: vms[2].stop_at: 30m is not after start_at 1h"),
        format!("{f}:23: vms[3].memory: required key is missing"),
        format!("{f}:24: vms[3].memroy: unknown key \"memroy\"; did you mean \"memory\"?"),
        format!("{f}:25: vms[3].workload: unknown preset \"databse\"; did you mean \"database\"?"),
    ];
    let got: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(got, want);
    assert_eq!(err.to_string(), want.join("\n"));
}

#[test]
fn ksm_sections_and_content_keys() {
    check(
        "    content: {kernel_shared: 1.5, zero_freed: maybe}\n\
         ksm:\n  run: 3\n  pages_to_scan: 0\n  max_page_sharing: 1\n  bogus: 1\n\
         ksmtuned:\n  variant: proxmx\n  KSM_THRES_COEF: abc\n",
        &[
            "x.yaml:7: vms[0].content.kernel_shared: must be between 0 and 1, found 1.5",
            "x.yaml:7: vms[0].content.zero_freed: expected true or false, found \"maybe\"",
            "x.yaml:9: ksm.run: must be 0 (stop), 1 (run) or 2 (unmerge all)",
            "x.yaml:10: ksm.pages_to_scan: must be at least 1 (ksmd would scan nothing)",
            "x.yaml:11: ksm.max_page_sharing: the kernel refuses this value (EINVAL: invalid value)",
            "x.yaml:12: ksm.bogus: unknown key \"bogus\" (valid: max_page_sharing, merge_across_nodes, smart_scan, use_zero_pages, stable_node_chains_prune_millisecs, sleep_millisecs, advisor_target_scan_time, advisor_max_cpu, advisor_min_pages_to_scan, advisor_max_pages_to_scan, advisor_mode, pages_to_scan, run)",
            "x.yaml:14: ksmtuned.variant: unknown ksmtuned variant \"proxmx\"; did you mean \"proxmox\"?",
            "x.yaml:15: ksmtuned.KSM_THRES_COEF: \"abc\" is not a decimal integer (bash would evaluate it as an arithmetic expression or fail; not modelled)",
        ],
    );
    check(
        "ksmtuned: sometimes\n",
        &["x.yaml:7: ksmtuned: unknown ksmtuned variant \"sometimes\" (valid: off, proxmox, proxmox-1.4, fedora, debian, original-2010)"],
    );
}

/// `actions:`: every bad entry at once — an `at` past the end, an unknown key, a value
/// the kernel refuses (checked in time order, so `pages_to_scan` after the admin
/// switched on the scan-time advisor is EINVAL), an unknown daemon, an empty action.
#[test]
fn admin_actions() {
    check(
        "actions:\n  - at: 3h\n    ksm: {run: 2}\n  - at: 1h\n    ksm: {run: 3, page_to_scan: 5}\n  - at: 10m\n    ksm: {advisor_mode: scan-time}\n  - at: 20m\n    ksm: {pages_to_scan: 500}\n    ksmtuned: pve\n  - at: 30m\n  - {at: 40m, sysfs: {run: 1}}\n",
        &[
            "x.yaml:8: actions[0].at: 3h is after the end of the run (duration 2h)",
            "x.yaml:11: actions[1].ksm.page_to_scan: unknown key \"page_to_scan\"; did you mean \"pages_to_scan\"?",
            "x.yaml:11: actions[1].ksm.run: must be 0 (stop), 1 (run) or 2 (unmerge all)",
            "x.yaml:15: actions[3].ksm.pages_to_scan: the kernel refuses this value (EINVAL: invalid value)",
            "x.yaml:16: actions[3].ksmtuned: unknown ksmtuned variant \"pve\" (valid: off, proxmox, proxmox-1.4, fedora, debian, original-2010)",
            "x.yaml:17: actions[4]: an action needs `ksm:` (sysfs writes) or `ksmtuned:` (off or a variant)",
            "x.yaml:18: actions[5].sysfs: unknown key \"sysfs\" (valid: at, ksm, ksmtuned)",
            "x.yaml:18: actions[5]: an action needs `ksm:` (sysfs writes) or `ksmtuned:` (off or a variant)",
        ],
    );
    check(
        "actions: {at: 1h}\n",
        &["x.yaml:7: actions: expected a list of {at, ksm, ksmtuned} actions, found a mapping"],
    );
}
