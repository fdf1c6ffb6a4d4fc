//! The ballooning phenomena of the scenario library (issue 5): each test loads its
//! shipped `scenarios/<name>.yaml`, runs it, and checks the claim in the file's header
//! against the simulated data. Contrasts are built by changing the loaded scenario in
//! code.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use memsim::density::{self, Limits, Options};
use memsim::engine::SimTime;
use memsim::metrics::{EventKind, RunResult, VmSample};
use memsim::policy::Policy;
use memsim::scenario::Scenario;

use crate::common::{shipped, shipped_path};

fn vm_index(sc: &Scenario, name: &str) -> usize {
    sc.vms.iter().position(|v| v.name == name).unwrap()
}

/// The VM's samples, in time order.
fn series<'r>(r: &'r RunResult, name: &str) -> Vec<&'r VmSample> {
    r.vms.iter().filter(|v| v.name == name).collect()
}

/// The VM's sample at `t_s` (samples are every 10 s).
fn at<'r>(r: &'r RunResult, name: &str, t_s: f64) -> &'r VmSample {
    r.vms
        .iter()
        .find(|v| v.name == name && v.t_s == t_s)
        .unwrap_or_else(|| panic!("{name} has a sample at {t_s} s"))
}

/// The VM's last sample.
fn last<'r>(r: &'r RunResult, name: &str) -> &'r VmSample {
    r.vms.iter().rfind(|v| v.name == name).unwrap()
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

// ---- idle-give-back -------------------------------------------------------------------

/// Host footprint drop of a VM between `before` and the end of the run, % of `before`.
fn footprint_drop_pct(r: &RunResult, name: &str, before: f64) -> f64 {
    let from = at(r, name, before).host_resident_bytes as f64;
    let to = last(r, name).host_resident_bytes as f64;
    (from - to) * 100.0 / from
}

#[test]
fn idle_guests_give_back_what_the_host_backs_windows_and_cached_linux_not_fresh_linux() {
    let sc = shipped("idle-give-back");
    let r = memsim::sim::run(&sc);
    // The load starts growing at 25 min; until then the host is below its target and
    // pvestatd has grown every idle VM back to its maximum.
    let before = 25.0 * 60.0 - 10.0;
    let host_before = r.host.iter().find(|h| h.t_s == before).unwrap();
    assert!(host_before.memused_bytes < host_before.target_bytes);
    let host_end = r.host.last().unwrap();
    assert!(
        r.host
            .iter()
            .any(|h| h.t_s > before && h.memused_bytes > h.target_bytes),
        "the load pushes the host above ballooning-target"
    );
    assert_eq!(r.summary.guest_oom_kills + r.summary.host_oom_kills, 0);
    for name in ["win-1", "win-2", "win-3"] {
        // Grown back from qemu-server's start-up target, and zeroed again by Windows
        // as the balloon deflated: all of it backed.
        let s = at(&r, name, before);
        assert!(s.actual_bytes == s.maxmem_bytes, "{name} back at full size");
        assert_eq!(
            s.host_resident_bytes, s.maxmem_bytes,
            "{name} backed in full"
        );
    }
    // The host never backs more of a guest than the guest holds outside its balloon
    // (pages touched and ballooned within one step, as at boot, are not left behind).
    for s in &r.vms {
        assert!(
            s.host_resident_bytes <= s.actual_bytes,
            "{} at {} s: resident {} MiB, actual {} MiB",
            s.name,
            s.t_s,
            mib(s.host_resident_bytes),
            mib(s.actual_bytes)
        );
    }
    let win = footprint_drop_pct(&r, "win-1", before);
    let cached = footprint_drop_pct(&r, "linux-cached-1", before);
    let fresh = footprint_drop_pct(&r, "linux-1", before);
    eprintln!("idle footprint drop: windows {win:.1} %, linux with cache {cached:.1} %, fresh linux {fresh:.1} %");
    // Windows zeroed (touched) all of its 1 GiB, so all of it is backed: the squeeze
    // takes it to its 256 MiB minimum, a drop of at most 75 %, and at least half way.
    assert!((50.0..=75.0).contains(&win), "windows drop {win:.1} %");
    // Linux with a page cache that filled its RAM: the cache goes, the drop lands in
    // the quoted 40-60 % band or above, below the Windows drop (pvestatd squeezes the
    // VMs with free memory first, and this one's cache leaves it little).
    assert!(
        (30.0..win).contains(&cached),
        "cached linux drop {cached:.1} %"
    );
    // A freshly booted idle Linux guest never touched most of its RAM: the balloon
    // takes untouched pages and the host gets (almost) nothing back.
    assert!(fresh < 5.0, "fresh linux drop {fresh:.1} %");
    let fresh_last = last(&r, "linux-1");
    assert!(
        fresh_last.actual_bytes < fresh_last.maxmem_bytes / 2,
        "it was ballooned all the same"
    );
    assert!(host_end.memused_bytes <= host_end.target_bytes + (64 << 20));
}

/// The shipped scenario with only the VM group `keep` of the three idle kinds (its
/// one-line entry, count 2), so that a density search counts one kind at a time.
fn only_group(keep: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(shipped_path("idle-give-back")).unwrap();
    let kinds = ["win", "linux", "linux-cached"];
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            !kinds
                .iter()
                .any(|k| *k != keep && l.contains(&format!("name: {k},")))
        })
        .collect();
    let out = dir.join(format!("only-{keep}.yaml"));
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

/// `memsim density` for the group under `none` and `balloon`: no OOM kill, host
/// memused at most 95 %.
fn density_none_balloon(file: &Path, group: &str, out: &Path) -> (u32, u32) {
    let options = Options {
        group: group.into(),
        policies: vec![Policy::None, Policy::Balloon],
        seeds: 1,
        limits: Limits {
            max_oom_kills: 0,
            max_swap_in_mib_s: None,
            max_host_used_pct: Some(95.0),
        },
        min: 1,
        max: Some(40),
    };
    let search = density::prepare(file, &options).expect("the search is valid");
    let done = density::execute(&search, None, out, &ProgressBar::hidden()).unwrap();
    let answers = done.results.answers(&done.policies);
    let count = |p: Policy| {
        answers
            .iter()
            .find(|a| a.policy == p)
            .and_then(|a| a.count)
            .unwrap_or(0)
    };
    (count(Policy::None), count(Policy::Balloon))
}

#[test]
fn auto_ballooning_carries_more_idle_vms_only_where_they_touched_their_ram() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = Vec::new();
    for group in ["win", "linux-cached", "linux"] {
        let file = only_group(group, dir.path());
        let (none, balloon) = density_none_balloon(&file, group, &dir.path().join(group));
        eprintln!("{group}: none {none}, balloon {balloon}");
        assert!(
            none >= 1,
            "{group}: the host carries some without ballooning"
        );
        extra.push((group, none, balloon));
    }
    // Windows and cache-filled Linux: each VM costs its full 1 GiB without ballooning
    // but only its 256 MiB minimum (plus QEMU) squeezed, so the host carries well over
    // the quoted ~30 % more; at least twice as many.
    for &(group, none, balloon) in &extra[..2] {
        assert!(balloon >= 2 * none, "{group}: {none} -> {balloon}");
    }
    // Fresh idle Linux guests cost ~180 MiB either way: ballooning adds nothing.
    let (_, none, balloon) = extra[2];
    assert!(balloon <= none + 1, "fresh linux: {none} -> {balloon}");
}

// ---- pressure-chain ---------------------------------------------------------------------

/// First sample time after `from` at which `f` holds for the VM.
fn first_when(r: &RunResult, name: &str, from: f64, f: impl Fn(&VmSample) -> bool) -> f64 {
    series(r, name)
        .into_iter()
        .find(|s| s.t_s > from && f(s))
        .map(|s| s.t_s)
        .unwrap_or(f64::INFINITY)
}

#[test]
fn the_squeeze_drops_cache_then_swaps_then_kills_the_database_unless_the_minimum_is_sensible() {
    let sc = shipped("pressure-chain");
    let r = memsim::sim::run(&sc);
    let db = vm_index(&sc, "db");
    // The squeeze starts when pvestatd first shrinks db below its full size after it
    // had grown it back from the start-up target.
    let full = first_when(&r, "db", 0.0, |s| s.actual_bytes == s.maxmem_bytes);
    let squeeze = first_when(&r, "db", full, |s| s.target_bytes < s.maxmem_bytes);
    let peak = series(&r, "db")
        .into_iter()
        .filter(|s| s.t_s <= squeeze)
        .max_by_key(|s| s.guest_cached_bytes)
        .unwrap();
    let peak_cache = peak.guest_cached_bytes;
    let cache_falls = first_when(&r, "db", peak.t_s, |s| {
        s.guest_cached_bytes + (64 << 20) < peak_cache
    });
    let swap_rises = first_when(&r, "db", full, |s| s.guest_swap_used_bytes > 0);
    let oom = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::GuestOomKill && e.vmid == sc.vms[db].vmid)
        .expect("db's guest OOM killer fires")
        .t_s;
    eprintln!("squeeze {squeeze} s, cache falls {cache_falls} s, swap {swap_rises} s, OOM {oom} s");
    assert!(
        squeeze <= cache_falls && cache_falls < swap_rises && swap_rises < oom,
        "cache {cache_falls} < swap {swap_rises} < oom {oom}"
    );
    // Nothing was swapped before the squeeze: the boot-time squeeze to the minimum did
    // not reach the database's memory.
    assert!(series(&r, "db")
        .iter()
        .filter(|s| s.t_s < squeeze)
        .all(|s| s.guest_swap_used_bytes == 0));
    assert_eq!(
        r.summary.guest_oom_victims,
        vec!["101/postgres".to_string()]
    );
    assert_eq!(r.summary.host_oom_kills, 0);
    // The same host with a minimum that covers the database's working set.
    let mut sensible = sc.clone();
    sensible.vms[db].balloon_min = Some(1536 << 20);
    let s = memsim::sim::run(&sensible);
    assert_eq!(s.summary.guest_oom_kills, 0);
    assert_eq!(s.summary.host_oom_kills, 0);
    let db_last = last(&s, "db").actual_bytes;
    assert!(db_last >= 1536 << 20, "db held {} MiB", mib(db_last));
}

// ---- shares ---------------------------------------------------------------------------

#[test]
fn spare_memory_is_split_by_shares_and_shares_zero_is_never_ballooned() {
    let sc = shipped("shares");
    let r = memsim::sim::run(&sc);
    let min = |name: &str| sc.vms[vm_index(&sc, name)].balloon_min.unwrap();
    // Converged: the last 10 minutes (the host reaches its target after ~15 minutes).
    let settled = sc.duration.as_secs_f64() - 600.0;
    let extra = |name: &str| -> Vec<f64> {
        series(&r, name)
            .iter()
            .filter(|s| s.t_s >= settled)
            .map(|s| (s.actual_bytes - min(name)) as f64)
            .collect()
    };
    let (gold, silver) = (extra("gold"), extra("silver"));
    for (g, s) in gold.iter().zip(&silver) {
        let ratio = g / s;
        // pvestatd's allocator gives each VM min + pool × shares / Σshares. Once the
        // host sits at its target (goal inside pvestatd's ±10 MiB dead zone) nothing
        // moves, and the split is exact up to that dead zone and 4 KiB pages: 5 %
        // (validation_ideas.md V4) is far above both over ~700 MiB of extra.
        assert!((ratio - 2.0).abs() < 0.1, "gold:silver extra {ratio:.3}");
        assert!(*s > (256 << 20) as f64, "the split is of real memory");
    }
    let host_last = r.host.last().unwrap();
    assert!(host_last.memused_bytes.abs_diff(host_last.target_bytes) < 64 << 20);
    // shares 0: qemu-server's start-up target (`balloon:`) is the manual size and
    // pvestatd never sends it anything.
    let manual = sc.vms[vm_index(&sc, "manual")].clone();
    assert!(series(&r, "manual")
        .iter()
        .skip(1)
        .all(|s| s.target_bytes == manual.balloon_min.unwrap()));
    assert!(!r
        .events
        .iter()
        .any(|e| e.kind == EventKind::BalloonTarget && e.vmid == manual.vmid));
    // With default shares the same VM is auto-ballooned.
    let mut shared = sc.clone();
    shared.vms[vm_index(&sc, "manual")].shares = 1000;
    let s = memsim::sim::run(&shared);
    assert!(s
        .events
        .iter()
        .any(|e| e.kind == EventKind::BalloonTarget && e.vmid == manual.vmid));
}

// ---- left-alone -----------------------------------------------------------------------

#[test]
fn no_driver_passthrough_and_migrating_vms_are_not_squeezed_and_the_others_pay() {
    let sc = shipped("left-alone");
    let r = memsim::sim::run(&sc);
    let vmid = |name: &str| sc.vms[vm_index(&sc, name)].vmid;
    let targets = |r: &RunResult, name: &str| -> Vec<f64> {
        r.events
            .iter()
            .filter(|e| e.kind == EventKind::BalloonTarget && e.vmid == vmid(name))
            .map(|e| e.t_s)
            .collect()
    };
    // Without a driver: pvestatd keeps asking (QEMU still answers `query-balloon`
    // with the full size), the guest never moves and its host footprint stays full.
    assert!(!targets(&r, "nodriver").is_empty());
    assert!(series(&r, "nodriver")
        .iter()
        .all(|s| s.actual_bytes == s.maxmem_bytes));
    assert_eq!(last(&r, "nodriver").host_resident_bytes, 2 << 30);
    // Passthrough: the guest is ballooned like any other, but VFIO pinned all of its
    // RAM, so the host frees nothing.
    let gpu = series(&r, "gpu");
    assert!(gpu.iter().any(|s| s.actual_bytes < s.maxmem_bytes / 2));
    assert!(gpu[1..].iter().all(|s| s.host_resident_bytes == 2 << 30));
    // Migrating: `lock: migrate` takes the VM out of pvestatd's list for the window.
    let (from, to) = sc.vms[vm_index(&sc, "moving")].migrations[0];
    let window = from.as_secs_f64()..to.as_secs_f64();
    assert!(!targets(&r, "moving").iter().any(|t| window.contains(t)));
    assert!(targets(&r, "moving").iter().any(|t| *t > window.end));
    // The others pay: with the three as ordinary balloonable VMs the web VMs keep
    // more memory and the host reaches its target.
    let mut ordinary = sc.clone();
    for name in ["nodriver", "gpu", "moving"] {
        let v = &mut ordinary.vms[vm_index(&sc, name)];
        v.balloon_driver = true;
        v.passthrough = false;
        v.migrations.clear();
    }
    let o = memsim::sim::run(&ordinary);
    let end = SimTime::from_secs(30 * 60).as_secs_f64();
    for name in ["web-1", "web-2"] {
        let left = at(&r, name, end).actual_bytes;
        let plain = at(&o, name, end).actual_bytes;
        eprintln!("{name}: {} MiB vs {} MiB", mib(left), mib(plain));
        assert!(
            left + (256 << 20) < plain,
            "{name}: {} MiB with the three left alone, {} MiB without",
            mib(left),
            mib(plain)
        );
    }
    let pct = |r: &RunResult| {
        let h = r.host.iter().find(|h| h.t_s == end).unwrap();
        h.memused_bytes as f64 * 100.0 / h.mem_total_bytes as f64
    };
    assert!(pct(&r) > pct(&o) + 5.0, "{} vs {}", pct(&r), pct(&o));
    assert_eq!(r.summary.host_oom_kills + o.summary.host_oom_kills, 0);
}

// ---- memory-panel ---------------------------------------------------------------------

#[test]
fn without_guest_statistics_the_panel_shows_host_memory_not_guest_use() {
    let sc = shipped("memory-panel");
    let r = memsim::sim::run(&sc);
    let pct = |part: u64, whole: u64| part as f64 * 100.0 / whole as f64;
    let guest_used =
        |s: &VmSample| s.guest_mem_total_bytes - s.guest_mem_free_bytes - s.guest_cached_bytes;
    // After the burst (freed at 6 min) the guest uses little, but the host still backs
    // everything it touched: no balloon device, so no statistics and no balloon.
    let late = series(&r, "nostats");
    let late: Vec<_> = late.iter().filter(|s| s.t_s >= 480.0).collect();
    assert!(!late.is_empty());
    for s in late {
        let panel = pct(s.pve_mem_bytes, s.maxmem_bytes);
        let inside = pct(guest_used(s), s.guest_mem_total_bytes);
        assert_eq!(
            s.pve_mem_bytes, s.pve_memhost_bytes,
            "mem falls back to memhost"
        );
        assert!(panel > 70.0, "panel {panel:.1} %");
        assert!(inside < 30.0, "guest {inside:.1} %");
    }
    // The twin with a balloon driver reports statistics: the panel shows MemTotal -
    // MemFree, the guest's own view (its page cache counted as used).
    let s = last(&r, "stats");
    let panel = pct(s.pve_mem_bytes, s.maxmem_bytes);
    assert_eq!(
        s.pve_mem_bytes,
        s.guest_mem_total_bytes - s.guest_mem_free_bytes
    );
    assert!(panel < 30.0, "panel with statistics {panel:.1} %");
    assert!(
        s.pve_memhost_bytes > s.maxmem_bytes * 7 / 10,
        "the host backs the same as for the twin"
    );
}
