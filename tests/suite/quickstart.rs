//! The built-in scenario tells the story its header promises, and it does so
//! deterministically whatever the number of threads.

use std::path::Path;

use memsim::metrics::{EventKind, RunResult};
use memsim::scenario::{self, Scenario};

fn quickstart() -> Scenario {
    scenario::load(Path::new("scenarios/quickstart.yaml")).expect("quickstart loads")
}

fn run_with_threads(sc: &Scenario, threads: usize) -> RunResult {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| memsim::sim::run(sc))
}

fn first(r: &RunResult, kind: EventKind, vmid: u32, after: f64) -> Option<f64> {
    r.events
        .iter()
        .find(|e| e.kind == kind && e.vmid == vmid && e.t_s > after)
        .map(|e| e.t_s)
}

#[test]
fn the_squeeze_drops_cache_then_swaps_then_kills_the_database_with_a_low_minimum() {
    let r = memsim::sim::run(&quickstart());
    // Past the boot-time squeeze to balloon minimums (first minutes), the host goes
    // above its target and pvestatd takes memory back.
    let settle = 300.0;
    let over = r
        .host
        .iter()
        .find(|h| h.t_s > settle && h.memused_bytes > h.target_bytes)
        .expect("the host goes above its ballooning target")
        .t_s;
    let shrink = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::BalloonTarget && e.t_s > over && e.value < 0)
        .expect("pvestatd shrinks a VM")
        .t_s;
    let cache = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::ReclaimCache && e.t_s >= shrink)
        .map(|e| e.t_s)
        .next()
        .expect("page cache is reclaimed under the squeeze");
    let swap = first(&r, EventKind::SwapOut, 301, settle).expect("the batch VM swaps");
    let oom = first(&r, EventKind::GuestOomKill, 201, 0.0).expect("db1 is OOM-killed");
    assert!(
        cache < swap && swap < oom,
        "cache {cache} < swap {swap} < oom {oom}"
    );
    assert_eq!(
        r.summary.guest_oom_victims.first().map(String::as_str),
        Some("201/postgres")
    );
    assert!(
        first(&r, EventKind::GuestOomKill, 202, 0.0).is_none(),
        "db2 has a sensible minimum"
    );
    assert_eq!(r.summary.host_oom_kills, 0);
    // db1 was squeezed: pvestatd had shrunk it, and at the kill it held less than
    // half of its 16 GiB.
    let shrunk = r
        .events
        .iter()
        .any(|e| e.kind == EventKind::BalloonTarget && e.vmid == 201 && e.value < 0 && e.t_s < oom);
    assert!(shrunk, "pvestatd shrank db1 before the kill");
    let db1_at_kill = r
        .vms
        .iter()
        .rfind(|v| v.vmid == 201 && v.t_s <= oom)
        .unwrap();
    assert!(
        db1_at_kill.actual_bytes < db1_at_kill.maxmem_bytes / 2,
        "db1 at {} MiB",
        db1_at_kill.actual_bytes >> 20
    );
    // Proxmox's ksmtuned starts ksmd once the squeeze begins, not before, and the
    // eight clones of one template then share pages.
    let ksm_on = first(&r, EventKind::KsmStart, 0, 0.0).expect("ksmtuned starts ksmd");
    assert!(r
        .host
        .iter()
        .filter(|h| h.t_s < ksm_on)
        .all(|h| h.ksm_pages_scanned == 0));
    assert!(
        r.summary.peak_ksm_saved_bytes > 2 << 30,
        "KSM saved {} MiB",
        r.summary.peak_ksm_saved_bytes >> 20
    );
}

#[test]
fn the_same_seed_gives_identical_results_with_one_or_two_threads() {
    let sc = quickstart();
    let one = run_with_threads(&sc, 1);
    let two = run_with_threads(&sc, 2);
    assert!(one == two, "results differ between thread counts");
    assert!(!one.events.is_empty() && !one.vms.is_empty());
}

#[test]
fn a_different_seed_changes_only_the_random_workloads() {
    // The quickstart has no random shapes, so its result does not depend on the seed;
    // the bursty batch preset does.
    let mut sc = quickstart();
    let base = memsim::sim::run(&sc);
    sc.seed += 1;
    let reseeded = memsim::sim::run(&sc);
    assert_eq!(base.host, reseeded.host);
    let large = scenario::load(Path::new("scenarios/large-48vm.yaml")).unwrap();
    let mut short = large.clone();
    short.vms.retain(|v| v.workload == "batch");
    short.duration = memsim::engine::SimTime::from_secs(3 * 3600);
    let a = memsim::sim::run(&short);
    short.seed += 1;
    let b = memsim::sim::run(&short);
    assert_ne!(a.vms, b.vms, "bursty batch jobs follow the seed");
}
