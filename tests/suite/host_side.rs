//! The host's side of guest memory against the lab (`lab_observed.md` E2, E2b) and the
//! kernel's rules: what a discard gives back, THP deferred splits, pinned VMs,
//! the two memused formulas, and the host OOM killer.

use crate::common;

use common::*;
use memsim::guest::Guest;
use memsim::host::Host;
use memsim::metrics::EventKind;
use memsim::scenario::{MemusedFormula, Thp, VmConfig};
use memsim::workload::Shape;

const PAGE: u64 = 4096;

fn host(thp: Thp) -> Host {
    let mut sc = scenario(16 * GIB, secs(1), vec![]);
    sc.host.thp = thp;
    sc.host.page_cache = 0;
    Host::new(&sc.host, 1)
}

/// Steps the guest from `from` to `to` seconds, passing each step's delta to the host.
fn advance(g: &mut Guest, h: &mut Host, from: u64, to: u64) {
    for t in from..=to {
        g.step(secs(t), secs(1));
        h.apply(0, g.take_delta()).expect("host has room");
    }
}

fn mib(pages: u64) -> i64 {
    (pages * PAGE / MIB) as i64
}

/// E2b: a filler touched 640 MiB of a 1 GiB guest and exited.
fn e2b() -> (Guest, Host, VmConfig) {
    let filler = Shape::Step {
        initial: 640 * MIB,
        steps: vec![(secs(30), 0)],
    };
    let cfg = vm(101, GIB, None, vec![process("filler", filler, 1.0, 0)]);
    let mut g = Guest::boot(&cfg, 1, secs(120));
    let mut h = host(Thp::Madvise);
    h.start_vm(0, GIB / PAGE, false).unwrap();
    h.apply(0, g.take_delta()).unwrap();
    advance(&mut g, &mut h, 1, 35);
    (g, h, cfg)
}

#[test]
fn inflating_over_memory_freed_in_bulk_returns_it_at_once() {
    let (mut g, mut h, _) = e2b();
    let rss0 = h.backing(0).resident;
    let free0 = h.meminfo().mem_free;
    g.set_balloon_target(256 * MIB);
    advance(&mut g, &mut h, 36, 40);
    let rss_drop = mib(rss0 - h.backing(0).resident);
    let free_gain = ((h.meminfo().mem_free - free0) / MIB) as i64;
    // Lab: QEMU RSS 862 → 220 MiB and host MemFree +632 MiB within 2 s.
    assert!((600..=700).contains(&rss_drop), "rss drop {rss_drop} MiB");
    assert!(
        (free_gain - rss_drop).abs() <= 2,
        "MemFree +{free_gain} MiB"
    );
}

#[test]
fn inflating_over_never_touched_memory_returns_nothing() {
    let (mut g, mut h, _) = e2b();
    g.set_balloon_target(256 * MIB);
    advance(&mut g, &mut h, 36, 40);
    g.set_balloon_target(GIB);
    advance(&mut g, &mut h, 41, 45);
    let (rss, free) = (h.backing(0).resident, h.meminfo().mem_free);
    // Lab: re-inflating 1024 → 256 over non-resident memory: RSS 221 → 220, MemFree same.
    g.set_balloon_target(256 * MIB);
    advance(&mut g, &mut h, 46, 50);
    assert_eq!(g.balloon().actual(), 768 * MIB / PAGE);
    assert_eq!(h.backing(0).resident, rss);
    assert_eq!(h.meminfo().mem_free, free);
}

/// E2: the balloon takes memory the guest freed by dropping page cache — scattered
/// 4 KiB pages. On THP-backed RAM, RSS falls but MemFree does not (deferred split);
/// without THP both move together.
fn cache_squeeze(thp: Thp) -> (i64, i64, Host) {
    let cfg = vm(
        101,
        GIB,
        None,
        vec![process("reader", Shape::Constant(8 * MIB), 1.0, 700 * MIB)],
    );
    let mut g = Guest::boot(&cfg, 1, secs(120));
    let mut h = host(thp);
    h.start_vm(0, GIB / PAGE, false).unwrap();
    h.apply(0, g.take_delta()).unwrap();
    advance(&mut g, &mut h, 1, 10);
    let (rss0, free0) = (h.backing(0).resident, h.meminfo().mem_free);
    g.set_balloon_target(512 * MIB);
    advance(&mut g, &mut h, 11, 15);
    let rss_drop = mib(rss0 - h.backing(0).resident);
    let free_gain = (h.meminfo().mem_free as i64 - free0 as i64) / MIB as i64;
    (rss_drop, free_gain, h)
}

#[test]
fn scattered_discards_on_thp_lower_rss_before_they_free_host_memory() {
    let (rss_drop, free_gain, h) = cache_squeeze(Thp::Madvise);
    assert!(rss_drop > 200, "RSS fell {rss_drop} MiB");
    assert!(
        free_gain.abs() < 5,
        "MemFree moved {free_gain} MiB (lab: −15 MiB)"
    );
    assert_eq!(mib(h.thp_deferred()), rss_drop);
    let (rss_drop, free_gain, h) = cache_squeeze(Thp::Never);
    assert_eq!(
        free_gain, rss_drop,
        "without THP the memory comes back at once"
    );
    assert_eq!(h.thp_deferred(), 0);
}

#[test]
fn passthrough_pins_all_ram_and_the_balloon_returns_nothing() {
    let mut sc = scenario(16 * GIB, secs(600), vec![]);
    let mut pt = vm(
        101,
        4 * GIB,
        Some(GIB),
        vec![process("app", Shape::Constant(512 * MIB), 0.5, 0)],
    );
    pt.passthrough = true;
    sc.vms = vec![pt];
    sc.pvestatd.ballooning_target = 10; // always shrink
    let r = memsim::sim::run(&sc);
    let last = r.vms.last().unwrap();
    assert_eq!(last.actual_bytes, GIB, "the guest inflated to its minimum");
    assert_eq!(
        last.host_resident_bytes,
        4 * GIB,
        "but the host still backs all of it"
    );
}

#[test]
fn memused_formulas_differ_by_the_page_cache_and_both_count_the_arc() {
    let mut sc = scenario(64 * GIB, secs(1), vec![]);
    sc.host.page_cache = 4 * GIB;
    let h = Host::new(&sc.host, 0);
    let m = h.meminfo();
    let legacy = m.memused(MemusedFormula::Legacy);
    let available = m.memused(MemusedFormula::Available);
    assert_eq!(legacy, m.mem_total - m.mem_free - m.buffers - m.cached);
    assert_eq!(available, m.mem_total - m.mem_available);
    // Cache is free for the legacy formula, mostly free for MemAvailable.
    assert!(available > legacy && available - legacy < GIB);
    sc.host.zfs_arc = 8 * GIB;
    let arc = Host::new(&sc.host, 0).meminfo();
    assert_eq!(arc.memused(MemusedFormula::Legacy) - legacy, 8 * GIB);
    assert_eq!(arc.memused(MemusedFormula::Available) - available, 8 * GIB);
}

#[test]
fn the_host_oom_killer_kills_the_biggest_vm() {
    let big = vm(
        101,
        6 * GIB,
        None,
        vec![process("a", Shape::Constant(5 * GIB), 1.0, 0)],
    );
    let mut small = vm(
        102,
        4 * GIB,
        None,
        vec![process("b", Shape::Constant(GIB), 1.0, 0)],
    );
    small.processes[0].anon = Shape::Step {
        initial: GIB,
        steps: vec![(secs(30), 3 * GIB + GIB / 2)],
    };
    let sc = scenario(8 * GIB, secs(120), vec![big, small]);
    let r = memsim::sim::run(&sc);
    let kills: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::HostOomKill)
        .collect();
    assert_eq!(kills.len(), 1, "{kills:?}");
    assert_eq!(
        kills[0].vmid, 101,
        "the biggest QEMU goes, not the one that asked"
    );
    assert_eq!(r.summary.host_oom_victims, vec![101]);
    let last_101 = r.vms.iter().rev().find(|v| v.vmid == 101).unwrap();
    assert_eq!(last_101.state, "killed");
}

/// E4b: a filler touches 600 MiB of a 1 GiB guest and exits. With free page reporting
/// the host gets it back within a few seconds, in batches of ≈250 MiB every 2 s; without
/// it, nothing comes back.
fn fpr_run(reporting: bool) -> Vec<u64> {
    let filler = Shape::Step {
        initial: 600 * MIB,
        steps: vec![(secs(30), 0)],
    };
    let mut cfg = vm(101, GIB, None, vec![process("filler", filler, 1.0, 0)]);
    cfg.free_page_reporting = reporting;
    let mut sc = scenario(16 * GIB, secs(60), vec![cfg]);
    sc.sample_interval = secs(1);
    let r = memsim::sim::run(&sc);
    r.vms.iter().map(|v| v.host_resident_bytes / MIB).collect()
}

#[test]
fn free_page_reporting_returns_freed_memory_in_2_second_batches() {
    let on = fpr_run(true);
    let off = fpr_run(false);
    assert!(
        on[29] >= 600 && off[29] >= 600,
        "filler resident: {} {}",
        on[29],
        off[29]
    );
    assert_eq!(off[29], off[60], "without reporting nothing comes back");
    let drop = on[29] - on[40];
    assert!(drop >= 550, "reported back {drop} MiB");
    let steps: Vec<u64> = on
        .windows(2)
        .map(|w| w[0].saturating_sub(w[1]))
        .filter(|&d| d > 0)
        .collect();
    assert!(
        steps.iter().all(|&d| d <= 256),
        "batches of at most 256 MiB: {steps:?}"
    );
    assert!(steps.len() >= 3, "several 2-second passes: {steps:?}");
}

#[test]
fn host_swap_absorbs_overcommit_before_the_host_oom_killer() {
    let guest = |vmid| {
        vm(
            vmid,
            6 * GIB,
            None,
            vec![process("app", Shape::Constant(4 * GIB + GIB / 2), 0.2, 0)],
        )
    };
    let mut sc = scenario(8 * GIB, secs(300), vec![guest(101), guest(102)]);
    sc.host.swap = 8 * GIB;
    let r = memsim::sim::run(&sc);
    assert_eq!(
        r.summary.host_oom_kills, 0,
        "{:?}",
        r.summary.host_oom_victims
    );
    assert!(r.events.iter().any(|e| e.kind == EventKind::HostSwapOut));
    let last = r.host.last().unwrap();
    assert!(
        last.swap_used_bytes > GIB,
        "host swap used {} MiB",
        last.swap_used_bytes / MIB
    );
    // Guest RAM is swapped LRU-blind, so each VM loses some of its RAM to host swap.
    let swapped: Vec<u64> = r
        .vms
        .iter()
        .rev()
        .take(2)
        .map(|v| v.host_swapped_bytes)
        .collect();
    assert!(swapped.iter().all(|&s| s > 0), "{swapped:?}");
    let swapped_in: u64 = r.host.iter().map(|h| h.host_swap_in_pages).sum();
    let swapped_out: u64 = r.host.iter().map(|h| h.host_swap_out_pages).sum();
    assert!(
        swapped_out * PAGE > GIB,
        "host swap-out {} MiB",
        swapped_out * PAGE / MIB
    );
    assert!(swapped_in > 0, "hot guest pages fault back from host swap");
    // Without swap the same host must kill a VM.
    sc.host.swap = 0;
    assert_eq!(memsim::sim::run(&sc).summary.host_oom_kills, 1);
}

#[test]
fn windows_touches_all_its_ram_at_boot_and_linux_does_not() {
    let idle = || vec![process("svc", Shape::Constant(256 * MIB), 0.5, 0)];
    let mut win = vm(101, 4 * GIB, None, idle());
    win.os = memsim::scenario::Os::Windows;
    let linux = vm(102, 4 * GIB, None, idle());
    let r = memsim::sim::run(&scenario(32 * GIB, secs(60), vec![win, linux]));
    let last = |vmid| {
        r.vms
            .iter()
            .rfind(|v| v.vmid == vmid)
            .unwrap()
            .host_resident_bytes
    };
    assert_eq!(last(101), 4 * GIB, "Windows zeroes every page at boot");
    assert!(
        last(102) < GIB,
        "Linux touches what it uses: {} MiB",
        last(102) / MIB
    );
}
