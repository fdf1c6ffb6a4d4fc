//! Phenomena of ksmtuned and of KSM with ballooning, each from its shipped scenario
//! under `scenarios/` (issue 5): ksmtuned's threshold and an admin's `run=2`
//! (`ksmtuned-threshold.yaml`), the mawk 2^31 KiB failure on a multi-TiB host
//! (`ksmtuned-mawk.yaml`), and ballooning plus KSM against each alone
//! (`balloon-plus-ksm.yaml`).

use memsim::compare::{Plan, RunMetrics};
use memsim::engine::SimTime;
use memsim::ksm::Sysfs;
use memsim::ksmtuned::{Settings, Variant};
use memsim::metrics::{EventKind, HostSample, RunResult};
use memsim::policy::Policy;
use memsim::scenario::{AdminAction, Scenario};

use crate::common::shipped;

const MIB: u64 = 1 << 20;

/// What ksmtuned reads as `free`, KiB: MemFree + Buffers + Cached.
fn free_kib(h: &HostSample) -> u64 {
    (h.mem_free_bytes + h.buffers_bytes + h.cached_bytes) / 1024
}

fn sample_at(r: &RunResult, t_s: f64) -> &HostSample {
    r.host
        .iter()
        .find(|h| h.t_s == t_s)
        .unwrap_or_else(|| panic!("no host sample at {t_s} s"))
}

fn events(r: &RunResult, kind: EventKind) -> Vec<f64> {
    r.events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.t_s)
        .collect()
}

// ---- ksmtuned-threshold ---------------------------------------------------------------

/// ksmtuned keeps KSM off while free > thres, starts it on the first cycle that sees
/// free < thres and boosts `pages_to_scan` by 300 per cycle; the admin's `run=2`
/// unmerges everything and host memory grows by what merging had saved.
#[test]
fn ksmtuned_starts_below_its_threshold_and_run_2_gives_the_savings_back() {
    let sc = shipped("ksmtuned-threshold");
    let tuned = sc
        .ksm
        .ksmtuned
        .as_ref()
        .expect("the scenario runs ksmtuned");
    let settings = Settings::new(tuned.variant, &tuned.conf);
    let interval = settings.monitor_interval.as_secs_f64();
    let r = memsim::sim::run(&sc);
    let total_kib = (r.host[0].mem_total_bytes / 1024) as i64;
    // ksmtuned's start-up: thres = total * KSM_THRES_COEF / 100, at least KSM_THRES_CONST
    let thres = (total_kib * settings.thres_coef / 100).max(settings.thres_const) as u64;

    let starts = events(&r, EventKind::KsmStart);
    let start = *starts.first().expect("ksmtuned starts ksmd");
    // before the start, every sample with free above thres has KSM off
    for h in r.host.iter().filter(|h| h.t_s < start) {
        assert_eq!(
            h.ksm_run, 0,
            "KSM off before ksmtuned starts it (t {})",
            h.t_s
        );
        assert!(
            free_kib(h) > thres || h.t_s > start - interval,
            "t {}",
            h.t_s
        );
    }
    // the cycle before saw free above thres, the starting one below
    assert!(free_kib(sample_at(&r, start - interval)) > thres);
    assert!(free_kib(sample_at(&r, start)) < thres);
    assert_eq!(sample_at(&r, start).ksm_run, 1);

    // boost steps while free stays below thres: 300, 600, 900, 1200, then the max
    let steps: Vec<u64> = (0..5)
        .map(|k| sample_at(&r, start + k as f64 * interval))
        .inspect(|h| assert!(free_kib(h) < thres, "boosting needs free < thres"))
        .map(|h| h.ksm_pages_to_scan)
        .collect();
    let boost = settings.npages_boost as u64;
    let max = settings.npages_max as u64;
    let want: Vec<u64> = (1..=5).map(|k| (k * boost).min(max)).collect();
    assert_eq!(steps, want);

    // the admin's run=2: savings to 0, memused up by about what they were
    let admin = events(&r, EventKind::AdminAction);
    let at = *admin.first().expect("the admin acts");
    let before = sample_at(&r, at - sc.sample_interval.as_secs_f64());
    let after = sample_at(&r, at);
    let last = r.host.last().unwrap();
    assert!(
        before.ksm_saved_bytes > 1000 * MIB,
        "{}",
        before.ksm_saved_bytes
    );
    assert_eq!(after.ksm_run, 2);
    assert!(after.ksm_saved_bytes < MIB && last.ksm_saved_bytes < MIB);
    let rise = after.memused_bytes as f64 - before.memused_bytes as f64;
    let saved = before.ksm_saved_bytes as f64;
    assert!(
        (0.85 * saved..=1.05 * saved).contains(&rise),
        "memused rose {} MiB for {} MiB unmerged",
        rise as u64 / MIB,
        saved as u64 / MIB
    );
    assert_eq!(r.summary.host_oom_kills, 0);
}

/// Contrast: an admin who writes `run=2` but leaves ksmtuned running is overruled at
/// the daemon's next cycle, which writes `run=1` again (free is below thres) at the
/// npages it had reached.
#[test]
fn a_running_ksmtuned_undoes_the_admins_run_2_at_its_next_cycle() {
    let mut sc = shipped("ksmtuned-threshold");
    for a in &mut sc.actions {
        a.ksmtuned = None;
    }
    let r = memsim::sim::run(&sc);
    let at = events(&r, EventKind::AdminAction)[0];
    let restart = events(&r, EventKind::KsmStart)
        .into_iter()
        .find(|&t| t >= at)
        .expect("ksmtuned starts ksmd again");
    assert!(restart - at <= 60.0, "within one monitor interval");
    let h = sample_at(&r, restart);
    assert_eq!((h.ksm_run, h.ksm_pages_to_scan), (1, 1250));
    assert!(r.host.last().unwrap().ksm_saved_bytes > 500 * MIB);
}

/// A restarted ksmtuned starts afresh: `systemctl start` after the admin's stop and
/// `run=2` gives a daemon whose npages is 0 again, so its first start writes 300
/// pages (not the 1250 the old daemon had reached), one monitor interval later.
#[test]
fn a_restarted_ksmtuned_starts_from_npages_0() {
    let mut sc = shipped("ksmtuned-threshold");
    let restart_at = 35 * 60;
    sc.actions.push(AdminAction {
        at: SimTime::from_secs(restart_at),
        ksmtuned: Some(sc.ksm.ksmtuned.clone()),
        ksm: Vec::new(),
    });
    let r = memsim::sim::run(&sc);
    let again = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::KsmStart && e.t_s > restart_at as f64)
        .expect("the new daemon starts ksmd");
    assert_eq!(again.t_s, (restart_at + 60) as f64);
    assert_eq!(again.value, 300);
}

/// What the kernel refuses at run time is logged with the action and changes
/// nothing: `merge_across_nodes` while KSM pages exist is EBUSY (`mm/ksm.c`
/// `merge_across_nodes_store`), accepted once `run=2` has unmerged them.
#[test]
fn a_write_the_kernel_refuses_at_run_time_is_logged() {
    let mut sc = shipped("ksmtuned-threshold");
    let write = |at_s: u64| AdminAction {
        at: SimTime::from_secs(at_s),
        ksmtuned: None,
        ksm: vec![Sysfs::MergeAcrossNodes(0)],
    };
    sc.actions.insert(0, write(28 * 60));
    sc.actions.push(write(36 * 60));
    let r = memsim::sim::run(&sc);
    let admin: Vec<&str> = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::AdminAction)
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(admin.len(), 3);
    assert!(
        admin[0].contains("merge_across_nodes=0: refused (EBUSY"),
        "{}",
        admin[0]
    );
    assert!(admin[1].contains("wrote run=2"), "{}", admin[1]);
    assert!(
        admin[2].starts_with("admin: wrote merge_across_nodes=0;"),
        "{}",
        admin[2]
    );
    // the refused write left the merged pages alone
    let before = sample_at(&r, (28 * 60 - 10) as f64).ksm_saved_bytes;
    assert_eq!(sample_at(&r, (28 * 60) as f64).ksm_saved_bytes, before);
}

// ---- ksmtuned-mawk --------------------------------------------------------------------

/// The mawk scenario with another ksmtuned variant.
fn mawk_run(variant: Variant) -> RunResult {
    let mut sc = shipped("ksmtuned-mawk");
    sc.ksm.ksmtuned.as_mut().expect("ksmtuned runs").variant = variant;
    memsim::sim::run(&sc)
}

/// The sums ksmtuned saw really are past 2^31 KiB in this run: committed as VSZ
/// (configured RAM + QEMU overhead of every VM) and free.
#[test]
fn the_mawk_host_has_sums_past_2_pow_31_kib() {
    let sc = shipped("ksmtuned-mawk");
    let vsz_kib: u64 = sc
        .vms
        .iter()
        .map(|v| (v.memory + sc.host.qemu_overhead) / 1024)
        .sum();
    assert!(vsz_kib >= 1 << 31, "{vsz_kib}");
    let r = mawk_run(Variant::Proxmox);
    assert!(r.host.iter().all(|h| free_kib(h) >= 1 << 31));
}

/// Proxmox ≤ 8.1's daemon dies in its first cycle on the VSZ sum, leaving ksmd off for
/// good; Debian's never stops KSM on a host with 2.9 TiB free; Proxmox 1.5 (exact
/// printf) and Fedora (gawk) stop it, as the numbers say.
#[test]
fn mawk_kills_proxmox_1_4_and_keeps_debians_ksm_on_where_proxmox_1_5_stops_it() {
    let first_cycle = 60.0;

    let old = mawk_run(Variant::Proxmox14);
    let exits: Vec<_> = old
        .events
        .iter()
        .filter(|e| e.kind == EventKind::KsmtunedExit)
        .collect();
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0].t_s, first_cycle);
    assert!(
        exits[0].detail.contains("arithmetic syntax error"),
        "{}",
        exits[0].detail
    );
    assert!(old.host.iter().all(|h| h.ksm_run == 0));
    assert!(events(&old, EventKind::KsmStart).is_empty());

    let debian = mawk_run(Variant::Debian);
    assert_eq!(events(&debian, EventKind::KsmStart), [first_cycle]);
    assert!(events(&debian, EventKind::KsmStop).is_empty());
    let on: Vec<_> = debian
        .host
        .iter()
        .filter(|h| h.t_s >= first_cycle)
        .collect();
    assert!(on
        .iter()
        .all(|h| h.ksm_run == 1 && h.ksm_pages_to_scan == 64));
    assert!(
        debian.summary.ksmd_cpu_s > 1.0,
        "{}",
        debian.summary.ksmd_cpu_s
    );

    for good in [Variant::Proxmox, Variant::Fedora] {
        let r = mawk_run(good);
        assert!(r.host.iter().all(|h| h.ksm_run == 0), "{good}");
        assert!(
            r.events.iter().all(|e| e.kind == EventKind::VmStart),
            "{good}"
        );
        assert_eq!(r.summary.ksmd_cpu_s, 0.0);
    }
}

// ---- balloon-plus-ksm -----------------------------------------------------------------

const POLICIES: [Policy; 4] = [Policy::None, Policy::Balloon, Policy::Ksm, Policy::Both];

/// `memsim compare SCENARIO --policies none,balloon,ksm,both` through the library:
/// each policy's run and its comparison figures, in that order.
fn compare(sc: Scenario) -> Vec<(Policy, RunResult, RunMetrics)> {
    let plan = Plan::new(sc, &POLICIES, 1).expect("a valid comparison");
    plan.runs()
        .iter()
        .map(|run| {
            let r = memsim::sim::run(&plan.run_scenario(run));
            let m = RunMetrics::of(&r);
            (run.policy, r, m)
        })
        .collect()
}

/// Mean memused over the samples from `from_s` on (the steady state).
fn mean_memused_from(r: &RunResult, from_s: f64) -> f64 {
    let late: Vec<f64> = r
        .host
        .iter()
        .filter(|h| h.t_s >= from_s)
        .map(|h| h.memused_bytes as f64)
        .collect();
    late.iter().sum::<f64>() / late.len() as f64
}

/// Neither and KSM alone lose VMs to the host OOM killer (KSM merges too late: its
/// first pass only fills the unstable tree); ballooning alone and both keep every VM,
/// and both holds host memory lower than ballooning alone, by about what KSM saves
/// below the balloon minimums, where ballooning alone stops.
#[test]
fn balloon_plus_ksm_beats_each_alone() {
    let runs = compare(shipped("balloon-plus-ksm"));
    let by = |p: Policy| runs.iter().find(|(q, _, _)| *q == p).unwrap();
    let (_, none, _) = by(Policy::None);
    let (_, ksm, _) = by(Policy::Ksm);
    let (_, balloon, balloon_m) = by(Policy::Balloon);
    let (_, both, both_m) = by(Policy::Both);

    assert!(none.summary.host_oom_kills > 0);
    assert!(ksm.summary.host_oom_kills > 0);
    let first_kill = ksm
        .events
        .iter()
        .find(|e| e.kind == EventKind::HostOomKill)
        .unwrap()
        .t_s;
    let first_saving = ksm.host.iter().find(|h| h.ksm_saved_bytes > 0).unwrap().t_s;
    assert!(first_kill < first_saving, "KSM alone merges too late");
    assert_eq!(balloon.summary.host_oom_kills, 0);
    assert_eq!(both.summary.host_oom_kills, 0);
    assert_eq!(
        both.summary.guest_oom_kills + balloon.summary.guest_oom_kills,
        0
    );

    // ballooning alone ends at the minimums; both merges below them
    let sc = shipped("balloon-plus-ksm");
    let floor = sc.vms[0].balloon_min.unwrap();
    let end = balloon
        .vms
        .iter()
        .filter(|v| v.t_s == balloon.host.last().unwrap().t_s);
    assert!(
        end.clone().count() == sc.vms.len() && end.into_iter().all(|v| v.actual_bytes == floor)
    );
    let steady = 20.0 * 60.0;
    let gap = mean_memused_from(balloon, steady) - mean_memused_from(both, steady);
    let saved = both.host.last().unwrap().ksm_saved_bytes as f64;
    assert!(saved > 512.0 * MIB as f64, "{saved}");
    assert!(
        (0.5 * saved..=1.1 * saved).contains(&gap),
        "gap {gap}, saved {saved}"
    );
    assert!(both_m.mean_memused_pct < balloon_m.mean_memused_pct);
    // ballooning alone stays well above pvestatd's target; with KSM memused is at the
    // target, and pvestatd gives the guests what KSM saves beyond it
    let last = |r: &RunResult| r.host.last().unwrap().clone();
    let (b, k) = (last(balloon), last(both));
    assert!(b.memused_bytes > b.target_bytes + 512 * MIB);
    assert!(k.memused_bytes.abs_diff(k.target_bytes) < 64 * MIB);
    let grown = both.vms.iter().filter(|v| v.t_s == k.t_s);
    assert!(grown.into_iter().all(|v| v.actual_bytes > floor));
}

/// Contrast: with minimums low enough for pvestatd to hold its 80 % target, ksmtuned's
/// free (MemFree + Buffers + Cached) stays above its 20 % threshold by the watermark
/// reserve that MemAvailable, and so memused, leaves out. Under `both`, KSM runs at
/// most while pvestatd is still catching up and never merges a page; the guests,
/// squeezed below their page-cache working sets, refault instead.
#[test]
fn with_low_minimums_ballooning_preempts_ksm() {
    let mut sc = shipped("balloon-plus-ksm");
    for v in &mut sc.vms {
        v.balloon_min = Some(768 * MIB);
    }
    // the steady state is reached by 7 min; 20 min keep the thrashing run short
    sc.duration = SimTime::from_secs(20 * 60);
    Policy::Both.apply(&mut sc);
    let tuned = sc.ksm.ksmtuned.clone().unwrap();
    let settings = Settings::new(tuned.variant, &tuned.conf);
    let r = memsim::sim::run(&sc);
    let total_kib = (r.host[0].mem_total_bytes / 1024) as i64;
    let thres = (total_kib * settings.thres_coef / 100).max(settings.thres_const) as u64;
    // the first sample back at the target (within a few MiB: pvestatd steps) after
    // the guests' growth overshot it
    let at_target = |h: &HostSample| h.memused_bytes <= h.target_bytes + 64 * MIB;
    let over = r.host.iter().position(|h| !at_target(h));
    let held = over
        .and_then(|o| r.host[o..].iter().position(at_target).map(|b| o + b))
        .expect("pvestatd brings memused back to its target");
    let after = &r.host[held..];
    assert!(after.len() > r.host.len() / 2);
    for h in after {
        assert!(free_kib(h) > thres, "t {}", h.t_s);
        assert_eq!(h.ksm_run, 0, "t {}", h.t_s);
        assert!(at_target(h), "t {}", h.t_s);
    }
    assert!(events(&r, EventKind::KsmStart).len() <= 1);
    assert_eq!(r.summary.peak_ksm_saved_bytes, 0);
    assert_eq!(r.summary.host_oom_kills, 0);
    assert!(r.summary.cache_refault_pages * 4096 > 10 * 1024 * MIB);
}
