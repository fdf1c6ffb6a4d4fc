//! oVirt MOM's balloon and KSM policies (`memsim::mom`): steps computed by hand from
//! vdsm's `mom.d/02-balloon.policy` / `03-ksm.policy` and MOM's `doc/*.rules`, plus a
//! differential test against the real Python MOM (run when `MOM_SRC` and
//! `VDSM_MOM_D` are set, see `differential_against_upstream_python`).
//!
//! Sizes are KiB; 1 GiB = 1048576 KiB. "hfp" = host_free_percent =
//! StatAvg(mem_free) / MemTotal, "gfp" = guest_free_percent, "used" =
//! StatAvg(balloon_cur) − StatAvg(mem_unused), "want" = the rules' local
//! `balloon_min` = max(guest balloon_min, used + gfp × cur), "thr" = the change a
//! step must exceed = 0.0025 × cur.

use std::io::Write;
use std::process::{Command, Stdio};

use memsim::engine::SimTime;
use memsim::mom::{
    Abort, BalloonInfo, Decision, GuestStats, HostStats, KsmKey, KsmSysfs, KsmWrite, Mom,
    MomConfig, Rules,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GIB: u64 = 1 << 20;
const HOST16: u64 = 16 * GIB; // 16777216

fn host(total: u64, free: u64, shareable: u64) -> HostStats {
    HostStats {
        mem_total_kib: total,
        mem_free_kib: free,
        ksm_shareable_kib: shareable,
        ksm: KsmSysfs::KERNEL_DEFAULT,
    }
}

fn host_ksm(total: u64, free: u64, shareable: u64, ksm: KsmSysfs) -> HostStats {
    HostStats {
        ksm,
        ..host(total, free, shareable)
    }
}

fn guest(cur: u64, max: u64, min: u64, unused: Option<u64>) -> Option<GuestStats> {
    Some(GuestStats {
        balloon: Some(BalloonInfo {
            cur_kib: cur,
            max_kib: max,
            min_kib: min,
        }),
        mem_unused_kib: unused,
    })
}

/// vdsm's policies with ballooning enabled by the engine (the cluster setting).
fn vdsm_ballooning() -> MomConfig {
    MomConfig {
        balloon_enabled: true,
        ..MomConfig::vdsm()
    }
}

fn one_round(cfg: MomConfig, h: HostStats, guests: &[Option<GuestStats>]) -> Decision {
    Mom::new(cfg).evaluate(&h, guests)
}

fn w(key: KsmKey, value: i64) -> KsmWrite {
    KsmWrite { key, value }
}

const RUNNING: KsmSysfs = KsmSysfs {
    run: 1,
    pages_to_scan: 400,
    sleep_millisecs: 10,
    merge_across_nodes: 1,
    pages_shared: 0,
};

// ---------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------

#[test]
fn defaults_are_vdsm_shipped_values() {
    let c = MomConfig::default();
    assert_eq!(c.rules, Rules::Vdsm);
    assert_eq!(c.interval, SimTime::from_secs(15));
    assert_eq!(c.monitor_interval, SimTime::from_secs(15));
    assert_eq!(c.history, 10);
    // 00-defines.policy: balloonEnabled 0, ksmEnabled 1, ksmMergeAcrossNodes 1.
    assert!(!c.balloon_enabled);
    assert!(c.ksm_enabled);
    assert_eq!(c.ksm_merge_across_nodes, 1);
    assert_eq!(
        (
            c.pressure_threshold,
            c.pressure_critical,
            c.min_guest_free_percent
        ),
        (0.20, 0.05, 0.20)
    );
    assert_eq!(
        (c.max_balloon_change_percent, c.min_balloon_change_percent),
        (0.05, 0.0025)
    );
    assert_eq!(
        (
            c.ksm_pages_boost,
            c.ksm_pages_decay,
            c.ksm_npages_min,
            c.ksm_npages_max
        ),
        (300, -50, 64, 1250)
    );
    assert_eq!((c.ksm_sleep_ms_baseline, c.ksm_free_percent), (10, 0.20));
    let d = MomConfig::doc_samples();
    assert_eq!(d.rules, Rules::DocSamples);
    assert_eq!(
        (d.interval, d.monitor_interval),
        (SimTime::from_secs(10), SimTime::from_secs(5))
    );
}

// ---------------------------------------------------------------------------------
// Balloon rule
// ---------------------------------------------------------------------------------

#[test]
fn grow_step_five_percent() {
    // Host 16 GiB, free 8 GiB: hfp = 0.5 ≥ 0.20 → grow_guest.
    // vdsm gfp = 0.20 × (0.5 / 0.20) = 0.5. Guest cur 2 GiB (2097152), max 4 GiB,
    // min 1 GiB, unused 1.5 GiB: used = 524288, want = max(1048576, 524288 +
    // 0.5 × 2097152) = 1572864. size = 2097152 × 1.05 = 2202009.6 > want, < max;
    // |Δ| = 104857.6 > thr 5242.88 → target int(2202009.6) = 2202009.
    let d = one_round(
        MomConfig::vdsm(),
        host(HOST16, 8 * GIB, 0),
        &[guest(2 * GIB, 4 * GIB, GIB, Some(1536 * 1024))],
    );
    assert_eq!(d.aborted, None);
    assert_eq!(d.balloon_targets, vec![Some(2_202_009)]);
}

#[test]
fn grow_step_to_guest_need_vdsm_scales_free_percent_doc_does_not() {
    // hfp = 0.5 as above. Guest cur 2 GiB, max 4 GiB, min 1 GiB, unused 256 MiB:
    // used = 2097152 − 262144 = 1835008.
    // vdsm: gfp = 0.5 → want = 1835008 + 0.5 × 2097152 = 2883584 > 2202009.6 → 2883584.
    // doc/balloon.rules: gfp = min_guest_free_percent = 0.20 → want = 1835008 +
    // 419430.4 = 2254438.4 → int → 2254438.
    let g = [guest(2 * GIB, 4 * GIB, GIB, Some(256 * 1024))];
    let h = host(HOST16, 8 * GIB, 0);
    assert_eq!(
        one_round(MomConfig::vdsm(), h, &g).balloon_targets,
        vec![Some(2_883_584)]
    );
    assert_eq!(
        one_round(MomConfig::doc_samples(), h, &g).balloon_targets,
        vec![Some(2_254_438)]
    );
}

#[test]
fn grow_capped_at_balloon_max_and_deadband() {
    // hfp = 0.5; both guests: max 4 GiB (4194304), min 1 GiB, unused 2 GiB.
    // Guest 0: cur = 4194304 − 8192 = 4186112; size = 4186112 × 1.05 > max → 4194304;
    //   |Δ| = 8192, thr = 0.0025 × 4186112 = 10465.28 → 8192 ≤ thr: no call.
    // Guest 1: cur = 4194304 − 12288 = 4182016; capped to 4194304; |Δ| = 12288 >
    //   thr 10455.04 → target 4194304.
    // Guest 2: cur = max: nothing to grow.
    let d = one_round(
        MomConfig::vdsm(),
        host(HOST16, 8 * GIB, 0),
        &[
            guest(4 * GIB - 8192, 4 * GIB, GIB, Some(2 * GIB)),
            guest(4 * GIB - 12288, 4 * GIB, GIB, Some(2 * GIB)),
            guest(4 * GIB, 4 * GIB, GIB, Some(2 * GIB)),
        ],
    );
    assert_eq!(d.balloon_targets, vec![None, Some(4 * GIB), None]);
}

#[test]
fn shrink_step_normal_pressure() {
    // Host 16 GiB, free 2 GiB: hfp = 0.125 < 0.20, balloonEnabled 1 → shrink_guest.
    // 0.125 > 0.05: gfp = 0.20 × (0.125 / 0.20) = 0.125.
    // Guest cur 4 GiB (4194304), max 4 GiB, min 1 GiB, unused 640 MiB (655360):
    // used = 3538944; want = max(1048576, 3538944 + 0.125 × 4194304) = 4063232.
    // size = 4194304 × 0.95 = 3984588.8 < want → 4063232 ≤ cur; |Δ| = 131072 >
    // thr 10485.76 → target 4063232.
    let d = one_round(
        vdsm_ballooning(),
        host(HOST16, 2 * GIB, 0),
        &[guest(4 * GIB, 4 * GIB, GIB, Some(640 * 1024))],
    );
    assert_eq!(d.balloon_targets, vec![Some(4_063_232)]);
}

#[test]
fn shrink_limited_to_five_percent_per_step() {
    // hfp = 0.125, gfp = 0.125 as above; guest unused 2 GiB: used = 2097152,
    // want = 2097152 + 524288 = 2621440. size = 4194304 × 0.95 = 3984588.8 ≥ want,
    // so the 5 % step limit wins: target int(3984588.8) = 3984588.
    let d = one_round(
        vdsm_ballooning(),
        host(HOST16, 2 * GIB, 0),
        &[guest(4 * GIB, 4 * GIB, GIB, Some(2 * GIB))],
    );
    assert_eq!(d.balloon_targets, vec![Some(3_984_588)]);
}

#[test]
fn shrink_critical_pressure_goes_below_used_memory() {
    // Host 16 GiB, free 512 MiB: hfp = 524288 / 16777216 = 0.03125 ≤ 0.05 (critical):
    // gfp = −0.05 + 0.03125 = −0.01875. Guest cur 4 GiB, unused 64 MiB:
    // used = 4194304 − 65536 = 4128768; want = 4128768 − 0.01875 × 4194304
    // = 4128768 − 78643.2 = 4050124.8 (below what the guest uses: it must swap).
    // size = 3984588.8 < want → 4050124.8; |Δ| = 144179.2 > 10485.76 → 4050124.
    let g = [guest(4 * GIB, 4 * GIB, GIB, Some(64 * 1024))];
    let d = one_round(vdsm_ballooning(), host(HOST16, 512 * 1024, 0), &g);
    assert_eq!(d.balloon_targets, vec![Some(4_050_124)]);
    // The same guest under normal pressure (hfp = 0.125, gfp = 0.125):
    // want = 4128768 + 524288 = 4653056 > cur → no shrink at all.
    let d = one_round(vdsm_ballooning(), host(HOST16, 2 * GIB, 0), &g);
    assert_eq!(d.balloon_targets, vec![None]);
}

#[test]
fn critical_threshold_is_inclusive() {
    // MemTotal 1000000, guest cur 400000, max 400000, min 0, unused 20000:
    // used = 380000, size = 400000 × 0.95 = 380000, thr = 1000.
    // free 50000: hfp = 0.05 ≤ 0.05 → critical, gfp = −0.05 + 0.05 = 0 → want =
    //   380000 → target 380000.
    // free 51000: hfp = 0.051 → normal, gfp = 0.20 × (0.051 / 0.20) ≈ 0.051 →
    //   want ≈ 380000 + 20400 > cur → nothing.
    let g = [guest(400_000, 400_000, 0, Some(20_000))];
    let d = one_round(vdsm_ballooning(), host(1_000_000, 50_000, 0), &g);
    assert_eq!(d.balloon_targets, vec![Some(380_000)]);
    let d = one_round(vdsm_ballooning(), host(1_000_000, 51_000, 0), &g);
    assert_eq!(d.balloon_targets, vec![None]);
}

#[test]
fn shrink_deadband() {
    // hfp = 0.125, gfp = 0.125. Guest cur 4 GiB, unused = 524288 + 8192 = 532480:
    // used = 3661824, want = 3661824 + 524288 = 4186112 → size 4186112;
    // |Δ| = 8192 ≤ thr 10485.76 → no call.
    // With unused 524288 + 12288: want = 4182016, |Δ| = 12288 > thr → 4182016.
    let d = one_round(
        vdsm_ballooning(),
        host(HOST16, 2 * GIB, 0),
        &[
            guest(4 * GIB, 4 * GIB, GIB, Some(524_288 + 8192)),
            guest(4 * GIB, 4 * GIB, GIB, Some(524_288 + 12_288)),
        ],
    );
    assert_eq!(d.balloon_targets, vec![None, Some(4 * GIB - 12_288)]);
}

#[test]
fn balloon_min_floor_in_shrink() {
    // As shrink_limited_to_five_percent_per_step (rule wants 3984588.8), but the
    // guaranteed memory is 3.9375 GiB (4128768): want = max(4128768, 2621440) =
    // 4128768 > 3984588.8 → size 4128768; |Δ| = 65536 > 10485.76 → 4128768.
    let d = one_round(
        vdsm_ballooning(),
        host(HOST16, 2 * GIB, 0),
        &[guest(4 * GIB, 4 * GIB, 4_128_768, Some(2 * GIB))],
    );
    assert_eq!(d.balloon_targets, vec![Some(4_128_768)]);
}

#[test]
fn qos_rule_restores_balloon_min_and_overrides_a_larger_grow() {
    // hfp = 0.5 (grow). Guest 0: cur 3 GiB (3145728), max 4 GiB, min 3200000,
    // unused 2 GiB: used = 1048576, want = max(3200000, 1048576 + 0.5 × 3145728 =
    // 2621440) = 3200000; size = 3145728 × 1.05 = 3303014.4 > want → grow asks for
    // 3303014.4, then guest_qos (cur 3145728 < min 3200000) replaces it with 3200000.
    // Guest 1: no memory stats → the balloon rule skips it, but the QoS rule still
    // applies: cur 3 GiB < min 3.5 GiB (3670016) → 3670016.
    let d = one_round(
        MomConfig::vdsm(),
        host(HOST16, 8 * GIB, 0),
        &[
            guest(3 * GIB, 4 * GIB, 3_200_000, Some(2 * GIB)),
            guest(3 * GIB, 4 * GIB, 3_670_016, None),
        ],
    );
    assert_eq!(d.balloon_targets, vec![Some(3_200_000), Some(3_670_016)]);
    // doc/balloon.rules have no QoS rule: gfp = 0.20, want = max(3200000, 1048576 + 629145.6) =
    // 3200000, size 3303014.4 → 3303014; the second guest is not listed at all.
    let d = one_round(
        MomConfig::doc_samples(),
        host(HOST16, 8 * GIB, 0),
        &[
            guest(3 * GIB, 4 * GIB, 3_200_000, Some(2 * GIB)),
            guest(3 * GIB, 4 * GIB, 3_670_016, None),
        ],
    );
    assert_eq!(d.balloon_targets, vec![Some(3_303_014), None]);
}

#[test]
fn vdsm_default_balloon_disabled_still_grows_under_pressure() {
    // Shipped balloonEnabled 0, hfp = 0.125 < 0.20: balloon_logic calls grow_guest.
    // gfp = 0.125; guest cur 2 GiB, max 4 GiB, min 1 GiB, unused 1 GiB:
    // used = 1048576, want = max(1048576, 1048576 + 262144) = 1310720;
    // size = 2202009.6 → target 2202009.
    let g = [guest(2 * GIB, 4 * GIB, GIB, Some(GIB))];
    let d = one_round(MomConfig::vdsm(), host(HOST16, 2 * GIB, 0), &g);
    assert_eq!(d.balloon_targets, vec![Some(2_202_009)]);
    // Enabled: shrink. want = 1310720 < 2097152 × 0.95 = 1992294.4 → 1992294.
    let d = one_round(vdsm_ballooning(), host(HOST16, 2 * GIB, 0), &g);
    assert_eq!(d.balloon_targets, vec![Some(1_992_294)]);
}

#[test]
fn guest_without_stats_left_alone() {
    // hfp = 0.5 (grow). Slot 0: balloon info but no mem_unused → `valid` fails, no
    // call, even though it is ballooned (cur 2 GiB < max 4 GiB) and at/above min.
    // Slot 1: full stats → the 5 % grow of grow_step_five_percent (2202009).
    // Slot 2: not running.
    let d = one_round(
        MomConfig::vdsm(),
        host(HOST16, 8 * GIB, 0),
        &[
            guest(2 * GIB, 4 * GIB, GIB, None),
            guest(2 * GIB, 4 * GIB, GIB, Some(1536 * 1024)),
            None,
        ],
    );
    assert_eq!(d.aborted, None);
    assert_eq!(d.balloon_targets, vec![None, Some(2_202_009), None]);
}

#[test]
fn missing_balloon_info_aborts_the_whole_vdsm_round() {
    // Slot 1 has no balloon info: guest_qos evaluates `None < None` → the policy
    // fails → neither balloon nor KSM controls run, although slot 0 would grow
    // (2202009) and KSM would start (free 3 GiB < 20 % of 16 GiB).
    let no_balloon = Some(GuestStats {
        balloon: None,
        mem_unused_kib: Some(GIB),
    });
    let d = one_round(
        MomConfig::vdsm(),
        host(HOST16, 3 * GIB, 4 * GIB),
        &[guest(2 * GIB, 4 * GIB, GIB, Some(1536 * 1024)), no_balloon],
    );
    assert_eq!(d.aborted, Some(Abort::MissingBalloonInfo { guest: 1 }));
    assert_eq!(d.balloon_targets, vec![None, None]);
    assert!(d.ksm.is_empty());
    // The doc sample's mandatory collectors simply leave that guest out.
    let d = one_round(
        MomConfig::doc_samples(),
        host(HOST16, 3 * GIB, 4 * GIB),
        &[guest(2 * GIB, 4 * GIB, GIB, Some(1536 * 1024)), no_balloon],
    );
    assert_eq!(d.aborted, None);
    assert_eq!(d.balloon_targets[1], None);
    assert_eq!(d.ksm_write(KsmKey::Run), Some(1));
}

#[test]
fn guest_stat_avg_skips_missing_samples() {
    // Round 1: mem_unused missing (guest skipped). Round 2: unused 256 MiB. StatAvg
    // of mem_unused averages the one present value (262144), not (0 + 262144) / 2,
    // so round 2 gives grow_step_to_guest_need's vdsm target 2883584 (averaging the
    // gap as 0 would give used 1966080 and 3014656).
    let mut mom = Mom::new(MomConfig::vdsm());
    let h = host(HOST16, 8 * GIB, 0);
    let d = mom.evaluate(&h, &[guest(2 * GIB, 4 * GIB, GIB, None)]);
    assert_eq!(d.balloon_targets, vec![None]);
    let d = mom.evaluate(&h, &[guest(2 * GIB, 4 * GIB, GIB, Some(256 * 1024))]);
    assert_eq!(d.balloon_targets, vec![Some(2_883_584)]);
    assert_eq!(mom.guest_samples(0), 2);
}

#[test]
fn guest_balloon_cur_is_averaged_over_history() {
    // hfp = 0.5, vdsm gfp = 0.5, max 8 GiB, min 0, unused 256 MiB each round.
    // Round 1: cur 2 GiB → used 1835008, want 2883584 → target 2883584.
    // Round 2: cur 2883584 (the balloon moved): StatAvg(balloon_cur) =
    //   (2097152 + 2883584) / 2 = 2490368, used = 2490368 − 262144 = 2228224,
    //   want = 2228224 + 0.5 × 2883584 = 3670016 > 2883584 × 1.05 = 3027763.2
    //   → 3670016.
    let mut mom = Mom::new(MomConfig::vdsm());
    let h = host(HOST16, 8 * GIB, 0);
    let d = mom.evaluate(&h, &[guest(2 * GIB, 8 * GIB, 0, Some(256 * 1024))]);
    assert_eq!(d.balloon_targets, vec![Some(2_883_584)]);
    let d = mom.evaluate(&h, &[guest(2_883_584, 8 * GIB, 0, Some(256 * 1024))]);
    assert_eq!(d.balloon_targets, vec![Some(3_670_016)]);
}

#[test]
fn stopped_guest_loses_its_history() {
    let mut mom = Mom::new(MomConfig::vdsm());
    let h = host(HOST16, 8 * GIB, 0);
    let g = guest(2 * GIB, 4 * GIB, GIB, Some(GIB));
    mom.record(&h, &[g]);
    mom.record(&h, &[g]);
    assert_eq!(mom.guest_samples(0), 2);
    mom.record(&h, &[None]);
    assert_eq!(mom.guest_samples(0), 0);
    mom.record(&h, &[g]);
    assert_eq!(mom.guest_samples(0), 1);
    // A shorter slice: missing slots count as stopped.
    mom.record(&h, &[]);
    assert_eq!(mom.guest_samples(0), 0);
    assert_eq!(mom.decide().balloon_targets, vec![None]);
}

#[test]
fn doc_samples_drop_incomplete_guest_samples() {
    // Mandatory collectors: a sample without mem_unused is not recorded and the
    // guest is not listed; the earlier complete sample stays in the history.
    let mut mom = Mom::new(MomConfig::doc_samples());
    let h = host(HOST16, 8 * GIB, 0);
    mom.record(&h, &[guest(2 * GIB, 4 * GIB, GIB, Some(256 * 1024))]);
    let d = mom.evaluate(&h, &[guest(2 * GIB, 4 * GIB, GIB, None)]);
    assert_eq!(mom.guest_samples(0), 1);
    assert_eq!(d.balloon_targets, vec![None]);
    // Complete again: two samples, both cur 2 GiB / unused 256 MiB → 2254438 as
    // in grow_step_to_guest_need_vdsm_scales_free_percent_doc_does_not.
    let d = mom.evaluate(&h, &[guest(2 * GIB, 4 * GIB, GIB, Some(256 * 1024))]);
    assert_eq!(mom.guest_samples(0), 2);
    assert_eq!(d.balloon_targets, vec![Some(2_254_438)]);
}

// ---------------------------------------------------------------------------------
// KSM rule
// ---------------------------------------------------------------------------------

#[test]
fn ksm_start_when_free_below_20_percent() {
    // Host 16 GiB: threshold = 16777216 × 0.20 = 3355443.2. Free 3 GiB (3145728),
    // committed 4 GiB: 3355443.2 + 4194304 < 16777216 but free is not > threshold
    // → run. sleep = max(10, 10 × 16777216 / 16777216 = 10.0) = 10 (sysfs 20 → write).
    // free < threshold → boost: 100 + 300 = 400. merge_across_nodes requested 1 =
    // sysfs → not written.
    let d = one_round(MomConfig::vdsm(), host(HOST16, 3 * GIB, 4 * GIB), &[]);
    assert_eq!(
        d.ksm,
        vec![
            w(KsmKey::Run, 1),
            w(KsmKey::PagesToScan, 400),
            w(KsmKey::SleepMillisecs, 10)
        ]
    );
}

#[test]
fn ksm_start_on_committed_memory_decays_to_64() {
    // Free 8 GiB (> 3355443.2) but committed 14 GiB: 3355443.2 + 14680064 =
    // 18035507.2 ≥ 16777216 → run. free is not < threshold → decay:
    // 100 − 50 = 50 → clamped to ksm_npages_min 64.
    let d = one_round(MomConfig::vdsm(), host(HOST16, 8 * GIB, 14 * GIB), &[]);
    assert_eq!(
        d.ksm,
        vec![
            w(KsmKey::Run, 1),
            w(KsmKey::PagesToScan, 64),
            w(KsmKey::SleepMillisecs, 10)
        ]
    );
    // From 1250 the decay is a plain −50.
    let sysfs = KsmSysfs {
        pages_to_scan: 1250,
        ..RUNNING
    };
    let d = one_round(
        MomConfig::vdsm(),
        host_ksm(HOST16, 8 * GIB, 14 * GIB, sysfs),
        &[],
    );
    assert_eq!(d.ksm, vec![w(KsmKey::PagesToScan, 1200)]);
}

#[test]
fn ksm_npages_boost_chain_from_sysfs_value() {
    // Free 3 GiB < threshold every round; each round's sysfs is what the previous
    // one wrote: 100 → 400 → 700 → 1000 → 1300 clamped to 1250 → 1250 (equal to
    // sysfs: nothing is written at all).
    let mut mom = Mom::new(MomConfig::vdsm());
    let mut sysfs = KsmSysfs::KERNEL_DEFAULT;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let d = mom.evaluate(&host_ksm(HOST16, 3 * GIB, 4 * GIB, sysfs), &[]);
        seen.push(d.ksm_write(KsmKey::PagesToScan));
        for wr in &d.ksm {
            let v = u32::try_from(wr.value).unwrap();
            match wr.key {
                KsmKey::Run => sysfs.run = v,
                KsmKey::PagesToScan => sysfs.pages_to_scan = v,
                KsmKey::SleepMillisecs => sysfs.sleep_millisecs = v,
                KsmKey::MergeAcrossNodes => sysfs.merge_across_nodes = v,
            }
        }
        if seen.len() == 5 {
            assert!(d.ksm.is_empty());
        }
    }
    assert_eq!(
        seen,
        vec![Some(400), Some(700), Some(1000), Some(1250), None]
    );
}

#[test]
fn ksm_stop() {
    // Running KSM; free 8 GiB > 3355443.2 and 3355443.2 + 4 GiB < 16 GiB → stop:
    // only run ← 0; pages_to_scan and sleep stay as they are.
    let d = one_round(
        MomConfig::vdsm(),
        host_ksm(HOST16, 8 * GIB, 4 * GIB, RUNNING),
        &[],
    );
    assert_eq!(d.ksm, vec![w(KsmKey::Run, 0)]);
    // Free exactly at the threshold is not "above": MemTotal 1000000, threshold
    // 200000, free 200000 → KSM runs (decay branch, since free is not below either).
    let d = one_round(
        MomConfig::vdsm(),
        host_ksm(1_000_000, 200_000, 0, RUNNING),
        &[],
    );
    // sleep = max(10, 167772160 / 1000000 = 167.77216) → 167.
    assert_eq!(
        d.ksm,
        vec![w(KsmKey::PagesToScan, 350), w(KsmKey::SleepMillisecs, 167)]
    );
}

#[test]
fn ksm_sleep_formula() {
    // sleep = 10 × 16777216 / MemTotal, vdsm: max(10, …); the KSM controller int()s.
    let sleep = |cfg: MomConfig, total: u64| {
        one_round(cfg, host(total, 0, 0), &[]).ksm_write(KsmKey::SleepMillisecs)
    };
    // 64 GiB = 67108864: 167772160 / 67108864 = 2.5 → vdsm 10; doc/ksm.rules int(2.5) = 2.
    assert_eq!(sleep(MomConfig::vdsm(), 64 * GIB), Some(10));
    assert_eq!(sleep(MomConfig::doc_samples(), 64 * GIB), Some(2));
    // 8 GiB = 8388608: 20.0 → 20 = kernel default 20 → nothing written.
    assert_eq!(sleep(MomConfig::vdsm(), 8 * GIB), None);
    assert_eq!(sleep(MomConfig::doc_samples(), 8 * GIB), None);
    // A real "8 GiB" MemTotal, 8024360: 20.9078… → 20 → nothing written either.
    assert_eq!(sleep(MomConfig::vdsm(), 8_024_360), None);
    // 3900000: 43.0185… → 43.
    assert_eq!(sleep(MomConfig::vdsm(), 3_900_000), Some(43));
}

#[test]
fn ksm_uses_stat_avg_of_free_with_fewer_samples_than_history() {
    // 16 GiB host, committed 4 GiB, threshold 3355443.2, history 10. Free samples
    // 8 GiB, 1 GiB, 1 GiB, 1 GiB: the average is over the samples present:
    // 8388608 → stop (run already 0: nothing written);
    // (8388608 + 1048576) / 2 = 4718592 > threshold → still stopped (ksmtuned,
    //   which reads free fresh, would start here);
    // 10485760 / 3 = 3495253.33… → still stopped;
    // 11534336 / 4 = 2883584 < threshold → start, boost 100 → 400.
    let mut mom = Mom::new(MomConfig::vdsm());
    let frees = [8 * GIB, GIB, GIB, GIB];
    let avgs = [8_388_608.0, 4_718_592.0, 10_485_760.0 / 3.0, 2_883_584.0];
    for (i, &free) in frees.iter().enumerate() {
        let d = mom.evaluate(&host(HOST16, free, 4 * GIB), &[]);
        assert_eq!(mom.host_mem_free_avg(), Some(avgs[i]));
        if i < 3 {
            assert!(d.ksm.is_empty(), "round {i}: {:?}", d.ksm);
        } else {
            assert_eq!(d.ksm_write(KsmKey::Run), Some(1));
            assert_eq!(d.ksm_write(KsmKey::PagesToScan), Some(400));
        }
    }
    assert_eq!(mom.host_samples(), 4);
}

#[test]
fn stat_avg_window_drops_oldest_sample() {
    // history 3: after 8 GiB, 1, 1, 1 GiB the 8 GiB sample is gone → average 1 GiB.
    let mut mom = Mom::new(MomConfig {
        history: 3,
        ..MomConfig::vdsm()
    });
    for free in [8 * GIB, GIB, GIB, GIB] {
        mom.record(&host(HOST16, free, 0), &[]);
    }
    assert_eq!(mom.host_samples(), 3);
    assert_eq!(mom.host_mem_free_avg(), Some(GIB as f64));
    // History 10 keeps at most 10.
    let mut mom = Mom::new(MomConfig::vdsm());
    for _ in 0..12 {
        mom.record(&host(HOST16, GIB, 0), &[]);
    }
    assert_eq!(mom.host_samples(), 10);
}

#[test]
fn ksm_disabled_and_numa_switches() {
    // ksmEnabled 0, nothing shared: run ← 0 (here from 1), nothing else.
    let off = MomConfig {
        ksm_enabled: false,
        ..MomConfig::vdsm()
    };
    let d = one_round(off.clone(), host_ksm(HOST16, 3 * GIB, 0, RUNNING), &[]);
    assert_eq!(d.ksm, vec![w(KsmKey::Run, 0)]);
    // ksmEnabled 0 with shared pages: apply_NUMA_policy returns 2 → unmerge all.
    let shared = KsmSysfs {
        pages_shared: 5000,
        ..RUNNING
    };
    let d = one_round(off, host_ksm(HOST16, 3 * GIB, 0, shared), &[]);
    assert_eq!(d.ksm, vec![w(KsmKey::Run, 2)]);
    // ksmMergeAcrossNodes 0 wanted while pages are shared: unmerge first …
    let numa = MomConfig {
        ksm_merge_across_nodes: 0,
        ..MomConfig::vdsm()
    };
    let d = one_round(numa.clone(), host_ksm(HOST16, 3 * GIB, 0, shared), &[]);
    assert_eq!(d.ksm, vec![w(KsmKey::Run, 2)]);
    // … then, with nothing shared (run still 2), switch the mode and resume:
    // run 1, boost 400 → 700, sleep 10 unchanged, merge_across_nodes 0.
    let unmerged = KsmSysfs {
        run: 2,
        pages_shared: 0,
        ..RUNNING
    };
    let d = one_round(numa, host_ksm(HOST16, 3 * GIB, 0, unmerged), &[]);
    assert_eq!(
        d.ksm,
        vec![
            w(KsmKey::Run, 1),
            w(KsmKey::PagesToScan, 700),
            w(KsmKey::MergeAcrossNodes, 0)
        ]
    );
    // The doc rules know none of this: stop is run ← 0 even with shared pages.
    let d = one_round(
        MomConfig::doc_samples(),
        host_ksm(HOST16, 8 * GIB, 0, shared),
        &[],
    );
    assert_eq!(d.ksm, vec![w(KsmKey::Run, 0)]);
}

#[test]
fn aborted_rounds() {
    let mom = Mom::new(MomConfig::vdsm());
    assert_eq!(mom.decide().aborted, Some(Abort::NoHostSample));
    let d = one_round(
        MomConfig::vdsm(),
        host(0, 0, 0),
        &[guest(GIB, 2 * GIB, 0, Some(0))],
    );
    assert_eq!(d.aborted, Some(Abort::ZeroMemTotal));
    assert_eq!(d.balloon_targets, vec![None]);
    assert!(d.ksm.is_empty());
}

// ---------------------------------------------------------------------------------
// Differential test against the real Python MOM
// ---------------------------------------------------------------------------------

/// Runs MOM's own `Policy`, `Entity` and `Balloon`/`KSM` controllers on scripted
/// samples (fake monitors, fake hypervisor interface). stdin: a JSON list of cases;
/// stdout: per case, per round, `{ok, targets, ksm}`.
const HARNESS: &str = r#"
import json, os, sys, logging
from collections import deque
logging.disable(logging.CRITICAL)
from mom.Entity import Entity
from mom.Policy.Policy import Policy
from mom.Controllers.Balloon import Balloon
from mom.Controllers.KSM import KSM

HOST = {'mem_available', 'mem_free', 'ksm_run', 'ksm_pages_to_scan',
        'ksm_sleep_millisecs', 'ksm_merge_across_nodes', 'ksm_pages_shared',
        'ksm_shareable'}
GUEST = {'balloon_cur', 'balloon_max', 'balloon_min', 'mem_unused'}

class Mon:
    def __init__(self, fields, optional, history, props):
        self.fields, self.optional_fields = fields, optional
        self.valid_fields = fields | optional
        self.statistics, self.history = deque(), history
        self.properties, self.ready = props, False
        self.logger = logging.getLogger('harness')
    def collect(self, data):
        if not set(data).issuperset(self.fields):
            self.ready = False
            return
        for k in self.optional_fields:
            data.setdefault(k, None)
        self.statistics.append(data)
        if len(self.statistics) > self.history:
            self.statistics.popleft()
        self.ready = True
    def update_variables(self, v):
        pass
    def entity(self):
        if not self.ready:
            return None
        e = Entity(monitor=self)
        for k, v in self.properties.items():
            e._set_property(k, v)
        e._set_statistics(self.statistics)
        e._finalize()
        return e

class Iface:
    def __init__(self):
        self.targets, self.ksm = {}, {}
    def setVmBalloonTarget(self, uuid, target):
        self.targets[uuid] = target
    def ksmTune(self, outputs):
        self.ksm = outputs

POLICIES = {}

def load(case):
    # Parsing is slow (spark); evaluation starts from a fresh Evaluator each round,
    # so one Policy per rule set and switch combination can be shared.
    key = json.dumps([case['rules'], case['params']], sort_keys=True)
    if key not in POLICIES:
        POLICIES[key] = make_policy(case)
    return POLICIES[key]

def make_policy(case):
    policy = Policy()
    if case['rules'] == 'vdsm':
        d = os.environ['VDSM_MOM_D']
        for n in ['00-defines', '01-parameters', '02-balloon', '03-ksm']:
            with open(os.path.join(d, n + '.policy')) as f:
                assert policy.set_policy(n, f.read())
        params = '\n'.join('(set %s %d)' % kv for kv in case['params'].items())
        assert policy.set_policy('01-parameters', params)
    else:
        d = os.path.join(os.environ['MOM_SRC'], 'doc')
        for n in ['balloon', 'ksm']:
            with open(os.path.join(d, n + '.rules')) as f:
                assert policy.set_policy(n, f.read())
    return policy

def run(case):
    policy = load(case)
    # vdsm's collectors are the *Optional ones; the doc sample's are mandatory.
    gfields, gopt = (set(), GUEST) if case['rules'] == 'vdsm' else (GUEST, set())
    hist = case['history']
    host = Mon(HOST, set(), hist, {})
    guests, out = {}, []
    for rnd in case['rounds']:
        host.collect(dict(rnd['host']))
        for i, g in enumerate(rnd['guests']):
            if g is None:
                guests.pop(i, None)
                continue
            m = guests.setdefault(i, Mon(gfields, gopt, hist, {'uuid': i, 'name': str(i)}))
            m.collect(dict(g))
        for i in [i for i in guests if i >= len(rnd['guests'])]:
            guests.pop(i)
        he = host.entity()
        ges = [e for e in (guests[i].entity() for i in sorted(guests)) if e is not None]
        ok = policy.evaluate(he, ges)
        iface = Iface()
        if ok:
            Balloon({'hypervisor_iface': iface}).process(he, ges)
            KSM({'hypervisor_iface': iface}).process(he, ges)
        out.append({'ok': ok,
                    'targets': [iface.targets.get(i) for i in range(len(rnd['guests']))],
                    'ksm': [[k, v] for k, v in iface.ksm.items()]})
    return out

json.dump([run(c) for c in json.load(sys.stdin)], sys.stdout)
"#;

struct Case {
    cfg: MomConfig,
    rounds: Vec<(HostStats, Vec<Option<GuestStats>>)>,
}

/// A free amount: anywhere, or right around the 5 % / 20 % thresholds.
fn pick_free(rng: &mut ChaCha8Rng, total: u64) -> u64 {
    let frac = match rng.random_range(0..4) {
        0 => rng.random_range(0.0..0.8),
        1 => 0.05 + rng.random_range(-0.002..0.002),
        2 => 0.20 + rng.random_range(-0.002..0.002),
        _ => rng.random_range(0.0..0.25),
    };
    ((total as f64) * frac) as u64
}

fn random_case(rng: &mut ChaCha8Rng) -> Case {
    let vdsm = rng.random_bool(0.7);
    let base = if vdsm {
        MomConfig::vdsm()
    } else {
        MomConfig::doc_samples()
    };
    let cfg = MomConfig {
        history: if rng.random_bool(0.6) {
            10
        } else {
            rng.random_range(1..=12)
        },
        balloon_enabled: rng.random_bool(0.7),
        ksm_enabled: rng.random_bool(0.85),
        ksm_merge_across_nodes: u32::from(rng.random_bool(0.8)),
        ..base
    };
    let total = if rng.random_bool(0.3) {
        rng.random_range(1..=64u64) * GIB
    } else {
        rng.random_range(GIB..512 * GIB)
    };
    let slots = rng.random_range(0..=4usize);
    let mut sysfs = KsmSysfs::KERNEL_DEFAULT;
    let mut curs: Vec<Option<(u64, u64, u64)>> = vec![None; slots];
    let mut rounds = Vec::new();
    for _ in 0..rng.random_range(1..=14) {
        if rng.random_bool(0.15) {
            sysfs.pages_shared = if sysfs.pages_shared == 0 {
                rng.random_range(1..100_000)
            } else {
                0
            };
        }
        if rng.random_bool(0.05) {
            sysfs.merge_across_nodes ^= 1;
        }
        let h = HostStats {
            mem_total_kib: total,
            mem_free_kib: pick_free(rng, total),
            ksm_shareable_kib: rng.random_range(0..=total + total / 2),
            ksm: sysfs,
        };
        let mut guests = Vec::new();
        for cur in curs.iter_mut() {
            if rng.random_bool(0.07) {
                *cur = None;
                guests.push(None);
                continue;
            }
            let (c, max, min) = *cur.get_or_insert_with(|| {
                let max = rng.random_range(256 * 1024..32 * GIB);
                let min = if rng.random_bool(0.2) {
                    max
                } else {
                    rng.random_range(0..=max)
                };
                (rng.random_range(max / 4..=max), max, min)
            });
            let balloon = (!(vdsm && rng.random_bool(0.03))).then_some(BalloonInfo {
                cur_kib: c,
                max_kib: max,
                min_kib: min,
            });
            let unused = (!rng.random_bool(0.12)).then(|| rng.random_range(0..=c));
            guests.push(Some(GuestStats {
                balloon,
                mem_unused_kib: unused,
            }));
        }
        rounds.push((h, guests));
        // Let the host state drift as if the controllers' requests took effect.
        let mut probe = Mom::new(cfg.clone());
        for (h, g) in &rounds {
            probe.record(h, g);
        }
        let d = probe.decide();
        for wr in d.ksm.iter().filter(|_| rng.random_bool(0.85)) {
            let v = u32::try_from(wr.value).unwrap();
            match wr.key {
                KsmKey::Run => sysfs.run = v,
                KsmKey::PagesToScan => sysfs.pages_to_scan = v,
                KsmKey::SleepMillisecs => sysfs.sleep_millisecs = v,
                KsmKey::MergeAcrossNodes => sysfs.merge_across_nodes = v,
            }
        }
        for (cur, t) in curs.iter_mut().zip(&d.balloon_targets) {
            if let (Some((c, _, _)), Some(t)) = (cur.as_mut(), t) {
                if rng.random_bool(0.8) {
                    *c = *t;
                }
            }
        }
    }
    Case { cfg, rounds }
}

fn case_json(c: &Case) -> serde_json::Value {
    let rounds: Vec<serde_json::Value> = c
        .rounds
        .iter()
        .map(|(h, gs)| {
            let guests: Vec<serde_json::Value> = gs
                .iter()
                .map(|g| match g {
                    None => serde_json::Value::Null,
                    Some(g) => {
                        let mut m = serde_json::Map::new();
                        if let Some(b) = g.balloon {
                            m.insert("balloon_cur".into(), b.cur_kib.into());
                            m.insert("balloon_max".into(), b.max_kib.into());
                            m.insert("balloon_min".into(), b.min_kib.into());
                        }
                        if let Some(u) = g.mem_unused_kib {
                            m.insert("mem_unused".into(), u.into());
                        }
                        serde_json::Value::Object(m)
                    }
                })
                .collect();
            serde_json::json!({
                "host": {
                    "mem_available": h.mem_total_kib,
                    "mem_free": h.mem_free_kib,
                    "ksm_shareable": h.ksm_shareable_kib,
                    "ksm_run": h.ksm.run,
                    "ksm_pages_to_scan": h.ksm.pages_to_scan,
                    "ksm_sleep_millisecs": h.ksm.sleep_millisecs,
                    "ksm_merge_across_nodes": h.ksm.merge_across_nodes,
                    "ksm_pages_shared": h.ksm.pages_shared,
                },
                "guests": guests,
            })
        })
        .collect();
    serde_json::json!({
        "rules": if c.cfg.rules == Rules::Vdsm { "vdsm" } else { "doc" },
        "params": {
            "balloonEnabled": u8::from(c.cfg.balloon_enabled),
            "ksmEnabled": u8::from(c.cfg.ksm_enabled),
            "ksmMergeAcrossNodes": c.cfg.ksm_merge_across_nodes,
        },
        "history": c.cfg.history,
        "rounds": rounds,
    })
}

/// Compares with MOM itself on random sample sequences. Needs python3 and:
/// `MOM_SRC` = a checkout of github oVirt/mom (the directory holding `mom/` and
/// `doc/`), `VDSM_MOM_D` = vdsm's `static/etc/vdsm/mom.d`. Skipped otherwise.
/// `MOM_DIFF_CASES` sets the number of cases (default 400).
#[test]
fn differential_against_upstream_python() {
    let (Ok(mom_src), Ok(mom_d)) = (std::env::var("MOM_SRC"), std::env::var("VDSM_MOM_D")) else {
        eprintln!("MOM_SRC / VDSM_MOM_D not set: differential test skipped");
        return;
    };
    let n: usize = std::env::var("MOM_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut rng = ChaCha8Rng::seed_from_u64(0x4d4f4d);
    let cases: Vec<Case> = (0..n).map(|_| random_case(&mut rng)).collect();
    let input = serde_json::Value::Array(cases.iter().map(case_json).collect()).to_string();

    let mut child = Command::new("python3")
        .arg("-c")
        .arg(HARNESS)
        .env("PYTHONPATH", &mom_src)
        .env("MOM_SRC", &mom_src)
        .env("VDSM_MOM_D", &mom_d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "harness failed");
    let expected: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out.stdout).unwrap();

    let mut rounds = 0;
    let (mut aborts, mut targets, mut writes) = (0, 0, 0);
    for (ci, (case, exp)) in cases.iter().zip(&expected).enumerate() {
        let mut mom = Mom::new(case.cfg.clone());
        for (ri, ((h, gs), e)) in case.rounds.iter().zip(exp).enumerate() {
            let d = mom.evaluate(h, gs);
            let ctx = format!(
                "case {ci} round {ri}: {:?}\nhost {h:?}\nguests {gs:?}",
                case.cfg
            );
            assert_eq!(d.aborted.is_none(), e["ok"].as_bool().unwrap(), "{ctx}");
            let exp_targets: Vec<Option<u64>> = e["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(serde_json::Value::as_u64)
                .collect();
            assert_eq!(d.balloon_targets, exp_targets, "{ctx}");
            let exp_ksm: Vec<(String, i64)> = e["ksm"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].as_i64().unwrap()))
                .collect();
            let got_ksm: Vec<(String, i64)> = d
                .ksm
                .iter()
                .map(|w| (w.key.file().to_owned(), w.value))
                .collect();
            assert_eq!(got_ksm, exp_ksm, "{ctx}");
            rounds += 1;
            aborts += usize::from(d.aborted.is_some());
            targets += d.balloon_targets.iter().flatten().count();
            writes += d.ksm.len();
        }
    }
    eprintln!(
        "{n} cases, {rounds} rounds identical to MOM: {aborts} aborted, \
         {targets} balloon targets, {writes} KSM writes"
    );
}
