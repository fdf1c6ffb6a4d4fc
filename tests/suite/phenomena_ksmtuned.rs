//! Phenomena of ksmtuned and of KSM with ballooning, each from its shipped scenario
//! under `scenarios/` (issue 5): ksmtuned's threshold and an admin's `run=2`
//! (`ksmtuned-threshold.yaml`), the mawk 2^31 KiB failure on a multi-TiB host
//! (`ksmtuned-mawk.yaml`), and ballooning plus KSM against each alone
//! (`balloon-plus-ksm.yaml`).

use std::path::{Path, PathBuf};

use memsim::ksmtuned::{Settings, Variant};
use memsim::metrics::{EventKind, HostSample, RunResult};
use memsim::scenario::{self, Scenario};

const MIB: u64 = 1 << 20;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn load(name: &str) -> Scenario {
    scenario::load(&shipped(name)).expect("the shipped scenario loads")
}

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
    let sc = load("ksmtuned-threshold.yaml");
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
    let mut sc = load("ksmtuned-threshold.yaml");
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

// ---- ksmtuned-mawk --------------------------------------------------------------------

/// The mawk scenario with another ksmtuned variant.
fn mawk_run(variant: Variant) -> RunResult {
    let mut sc = load("ksmtuned-mawk.yaml");
    sc.ksm.ksmtuned.as_mut().expect("ksmtuned runs").variant = variant;
    memsim::sim::run(&sc)
}

/// The sums ksmtuned saw really are past 2^31 KiB in this run: committed as VSZ
/// (configured RAM + QEMU overhead of every VM) and free.
#[test]
fn the_mawk_host_has_sums_past_2_pow_31_kib() {
    let sc = load("ksmtuned-mawk.yaml");
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
