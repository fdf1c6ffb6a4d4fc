//! `report::write_run` and `report::write_atomic` on synthetic runs: which files appear,
//! what their headers and sizes are, that identical input gives identical bytes, and
//! that edge cases (no samples, one sample, all zeros, many VMs) render.

use std::fs;
use std::path::{Path, PathBuf};

use memsim::engine::SimTime;
use memsim::ksm::Tunables;
use memsim::metrics::{Event, EventKind, HostSample, RunResult, Summary, VmSample};
use memsim::report::{write_atomic, write_run};
use memsim::scenario::{HostConfig, KsmConfig, MemusedFormula, PvestatdConfig, Scenario, Thp};

const GIB: u64 = 1 << 30;
const FILES: [&str; 12] = [
    "timeseries_host.csv",
    "timeseries_vms.csv",
    "events.csv",
    "summary.json",
    "host_memory.png",
    "host_memory.svg",
    "balloons.png",
    "balloons.svg",
    "pressure.png",
    "pressure.svg",
    "ksm.png",
    "ksm.svg",
];
const HOST_COLUMNS: &str = "t_s,mem_total_bytes,mem_free_bytes,buffers_bytes,cached_bytes,\
    mem_available_bytes,memused_bytes,target_bytes,goal_bytes,host_reserved_bytes,\
    guest_resident_bytes,qemu_overhead_bytes,thp_deferred_bytes,anon_huge_pages_bytes,zfs_arc_bytes,\
    swap_total_bytes,swap_used_bytes,host_swap_out_pages,host_swap_in_pages,vms_running,\
    ksm_saved_bytes,ksm_run,ksm_pages_to_scan,ksm_sleep_millisecs,ksm_full_scans,\
    ksm_pages_scanned,ksm_pages_shared,ksm_pages_sharing,ksm_pages_unshared,\
    ksm_pages_volatile,ksm_pages_skipped,ksm_zero_pages,ksm_general_profit_bytes";
const VM_COLUMNS: &str = "t_s,vmid,name,state,maxmem_bytes,balloon_min_bytes,target_bytes,\
    actual_bytes,guest_mem_total_bytes,guest_mem_free_bytes,guest_cached_bytes,\
    guest_anon_bytes,guest_kernel_bytes,guest_swap_used_bytes,host_resident_bytes,\
    host_swapped_bytes,swap_in_pages,swap_out_pages,cache_refault_pages,major_faults,oom_kills,\
    ksm_merging_pages,ksm_process_profit_bytes,pve_mem_bytes,pve_memhost_bytes";
const EVENT_COLUMNS: &str = "t_s,vmid,kind,value,detail";

/// The report reads only the name, duration and sample interval; the VM list stays
/// empty (the per-VM data comes from the samples).
fn scenario(name: &str, duration_s: u64) -> Scenario {
    Scenario {
        name: name.to_string(),
        seed: 7,
        duration: SimTime::from_secs(duration_s),
        tick: SimTime::from_secs(1),
        sample_interval: SimTime::from_secs(10),
        host: HostConfig {
            memory: 64 * GIB,
            reserved: 2 * GIB,
            page_cache: 4 * GIB,
            qemu_overhead: 200 << 20,
            swap: 8 * GIB,
            swappiness: 60,
            numa_nodes: 1,
            thp: Thp::Madvise,
            zfs_arc: 0,
        },
        pvestatd: PvestatdConfig {
            enabled: true,
            ballooning_target: 80,
            memused: MemusedFormula::Available,
            interval: SimTime::from_secs(10),
            maxchange: 100 << 20,
        },
        mom: None,
        qemu_start_target: true,
        policy: None,
        ksm: KsmConfig {
            sysfs: Tunables::default(),
            ksmtuned: None,
        },
        vms: Vec::new(),
        actions: Vec::new(),
    }
}

/// A smooth, deterministic stand-in for a simulation: `vms` VMs sampled `samples`
/// times every 10 s, with a swap storm, refaults and two OOM kills.
fn synthetic(vms: u32, samples: usize) -> RunResult {
    let wave = |i: usize, period: f64| (i as f64 / period).sin() * 0.5 + 0.5;
    let mut result = RunResult::default();
    for i in 0..samples {
        let t_s = i as f64 * 10.0;
        let total = 63 * GIB;
        let fixed = 2 * GIB + vms as u64 * (200 << 20);
        let room = total.saturating_sub(fixed) as f64;
        let guest = (room * 0.7 * (0.5 + 0.5 * wave(i, 90.0))) as u64;
        let cache = (room * 0.1 * (1.0 - wave(i, 90.0))) as u64;
        let used = fixed + guest;
        result.host.push(HostSample {
            t_s,
            mem_total_bytes: total,
            mem_free_bytes: total.saturating_sub(used + cache),
            cached_bytes: cache,
            buffers_bytes: 100 << 20,
            mem_available_bytes: total.saturating_sub(used),
            memused_bytes: used,
            target_bytes: total * 8 / 10,
            host_reserved_bytes: 2 * GIB,
            guest_resident_bytes: guest,
            qemu_overhead_bytes: vms as u64 * (200 << 20),
            thp_deferred_bytes: GIB / 4,
            vms_running: vms,
            ..HostSample::default()
        });
        for v in 0..vms {
            let maxmem = (2 + v as u64 % 4) * GIB;
            let actual = maxmem - (wave(i + v as usize * 7, 60.0) * (maxmem / 2) as f64) as u64;
            let storm = (200..260).contains(&i);
            result.vms.push(VmSample {
                t_s,
                vmid: 100 + v,
                name: format!("vm{v}"),
                state: "running",
                maxmem_bytes: maxmem,
                balloon_min_bytes: maxmem / 2,
                target_bytes: actual,
                actual_bytes: actual,
                guest_mem_total_bytes: actual,
                guest_mem_free_bytes: actual / 5,
                host_resident_bytes: actual * 9 / 10,
                swap_out_pages: if storm { (v as u64 + 1) * 500 } else { 0 },
                swap_in_pages: if storm { (v as u64 + 1) * 100 } else { 0 },
                cache_refault_pages: (wave(i, 20.0) * 300.0) as u64 * (v as u64 % 3),
                ..VmSample::default()
            });
        }
    }
    let last = samples.saturating_sub(1) as f64 * 10.0;
    result.events = vec![
        event(last * 0.3, 101, EventKind::BalloonTarget, "target 2 GiB"),
        event(
            last * 0.5,
            102,
            EventKind::GuestOomKill,
            "killed postgres, \"big\"",
        ),
        event(last * 0.8, 103, EventKind::HostOomKill, "killed kvm 103"),
    ];
    result.summary = Summary {
        scenario: "synthetic".to_string(),
        duration_s: last,
        vms,
        guest_oom_kills: 1,
        guest_oom_victims: vec!["102/postgres".to_string()],
        host_oom_kills: 1,
        host_oom_victims: vec![103],
        ..Summary::default()
    };
    result
}

fn event(t_s: f64, vmid: u32, kind: EventKind, detail: &str) -> Event {
    Event {
        t_s,
        vmid,
        kind,
        value: 1,
        detail: detail.to_string(),
    }
}

fn write(dir: &Path, vms: u32, samples: usize) -> Vec<PathBuf> {
    write_run(
        dir,
        &scenario("test-run", samples as u64 * 10),
        &synthetic(vms, samples),
    )
    .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn text(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

fn header(columns: &str) -> String {
    columns.split_whitespace().collect()
}

/// Width and height from the IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn assert_outputs_valid(dir: &Path) {
    let mut expected: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names(dir), expected, "exactly the outputs, no temp files");
    for name in FILES.iter().filter(|n| n.ends_with(".png")) {
        let bytes = fs::read(dir.join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
        assert!(bytes.len() > 1000, "{name}");
    }
    for name in FILES.iter().filter(|n| n.ends_with(".svg")) {
        let svg = text(dir, name);
        assert!(svg.contains("<svg"), "{name}");
        assert!(svg.contains("test-run"), "{name}: title");
    }
}

#[test]
fn writes_every_output_with_expected_content() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let paths = write(&out, 4, 360);
    assert_eq!(paths, FILES.map(|n| out.join(n)));
    assert_outputs_valid(&out);

    let host = text(&out, "timeseries_host.csv");
    assert_eq!(host.lines().next().unwrap(), header(HOST_COLUMNS));
    assert_eq!(host.lines().count(), 1 + 360);
    let vms = text(&out, "timeseries_vms.csv");
    assert_eq!(vms.lines().next().unwrap(), header(VM_COLUMNS));
    assert_eq!(vms.lines().count(), 1 + 4 * 360);
    assert!(vms
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("0.0,100,vm0,running,"));
    let events = text(&out, "events.csv");
    assert_eq!(events.lines().next().unwrap(), EVENT_COLUMNS);
    assert_eq!(events.lines().count(), 1 + 3);
    assert!(events.contains(",102,guest_oom_kill,1,\"killed postgres, \"\"big\"\"\""));

    let summary = text(&out, "summary.json");
    assert!(summary.ends_with("}\n"));
    let json: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(json["vms"], 4);
    assert_eq!(json["guest_oom_victims"][0], "102/postgres");
    assert_eq!(json["host_oom_victims"][0], 103);

    let svg = text(&out, "pressure.svg");
    assert!(svg.contains("OOM 102") && svg.contains("host OOM 103"));
    assert!(text(&out, "balloons.svg").contains("103 vm3"));
}

#[test]
fn rewriting_identical_input_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 5, 200);
    let first: Vec<Vec<u8>> = FILES
        .iter()
        .map(|n| fs::read(dir.path().join(n)).unwrap())
        .collect();
    write(dir.path(), 5, 200);
    for (name, bytes) in FILES.iter().zip(&first) {
        assert_eq!(
            &fs::read(dir.path().join(name)).unwrap(),
            bytes,
            "{name} changed on re-run"
        );
    }
    assert_outputs_valid(dir.path());
}

#[test]
fn empty_run_writes_headers_and_empty_plots() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &scenario("test-run", 0), &RunResult::default()).unwrap();
    assert_outputs_valid(dir.path());
    assert_eq!(
        text(dir.path(), "timeseries_host.csv"),
        header(HOST_COLUMNS) + "\n"
    );
    assert_eq!(
        text(dir.path(), "timeseries_vms.csv"),
        header(VM_COLUMNS) + "\n"
    );
    assert_eq!(text(dir.path(), "events.csv"), format!("{EVENT_COLUMNS}\n"));
    assert!(text(dir.path(), "balloons.svg").contains("no VM samples"));
}

#[test]
fn single_sample_and_all_zero_data_render() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 2, 1);
    assert_outputs_valid(dir.path());

    let mut zeros = synthetic(3, 50);
    zeros.host.iter_mut().for_each(|s| {
        *s = HostSample {
            t_s: s.t_s,
            ..HostSample::default()
        }
    });
    zeros.vms.iter_mut().for_each(|s| {
        *s = VmSample {
            t_s: s.t_s,
            vmid: s.vmid,
            name: s.name.clone(),
            ..VmSample::default()
        }
    });
    zeros.events.clear();
    write_run(dir.path(), &scenario("test-run", 500), &zeros).unwrap();
    assert_outputs_valid(dir.path());
    assert!(text(dir.path(), "pressure.svg").contains("no activity"));
}

#[test]
fn many_vms_get_a_grid_and_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 48, 30);
    let (width, height) = png_size(&fs::read(dir.path().join("balloons.png")).unwrap());
    assert!(
        width > 2000 && height > 1000,
        "48 panels in a grid: {width}x{height}"
    );
    assert!(text(dir.path(), "balloons.svg").contains("147 vm47"));
    assert!(text(dir.path(), "pressure.svg").contains("other 27 VMs"));

    write(dir.path(), 70, 5);
    let svg = text(dir.path(), "balloons.svg");
    assert!(svg.contains("first 64 of 70 VMs"));
    assert!(svg.contains("163 vm63") && !svg.contains("164 vm64"));
    assert_outputs_valid(dir.path());
}

#[test]
fn failed_write_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where an output goes cannot be replaced by a file.
    let blocker = dir.path().join("ksm.svg");
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("keep"), "x").unwrap();
    let err = write_run(dir.path(), &scenario("test-run", 200), &synthetic(2, 20)).unwrap_err();
    assert!(format!("{err:#}").contains("ksm.svg"), "{err:#}");
    assert_eq!(names(&blocker), ["keep"]);
    let mut expected: Vec<_> = FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names(dir.path()), expected, "no temp files left");
}

#[test]
fn write_atomic_replaces_whole_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.txt");
    write_atomic(&path, b"a much longer first version\n").unwrap();
    write_atomic(&path, b"v2\n").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"v2\n");
    assert_eq!(names(dir.path()), ["file.txt"]);
    assert!(write_atomic(&dir.path().join("missing/file.txt"), b"x").is_err());
    assert_eq!(names(dir.path()), ["file.txt"]);
}
