//! oVirt MOM's default balloon and KSM policies, evaluated the way MOM evaluates them.
//!
//! MOM (the Memory Overcommitment Manager, github `oVirt/mom`) is the Python daemon
//! that oVirt runs on every host beside vdsm. Monitor threads sample host statistics
//! (`HostMemory`, `HostKSM`) and per-guest statistics (`GuestMemoryOptional`,
//! `GuestBalloonOptional`, …) into a history of the last `sample-history-length`
//! samples. Every `policy-engine-interval` the policy engine evaluates the
//! concatenated `*.policy` files, written in MOM's small Lisp, against those
//! samples; the rules request "controls", which the `Balloon` controller turns into
//! balloon targets (vdsm → libvirt `setMemory`, KiB) and the `KSM` controller into
//! writes to `/sys/kernel/mm/ksm` (through supervdsm). [`Mom`] is that pipeline
//! for the two memory policies, as plain data in and plain data out:
//! [`Mom::record`] is one monitor collection, [`Mom::decide`] one policy-engine
//! round plus the two controllers, [`Mom::evaluate`] both at once.
//!
//! # What is mirrored
//!
//! Read at vdsm commit `fd4b0df20b9b` (2026-06-25) and MOM commit `3de1c8e6bcb9`
//! (2025-07-07):
//!
//! * vdsm `static/etc/vdsm/mom.d/00-defines.policy` — the switches `balloonEnabled`
//!   (0), `ksmEnabled` (1), `ksmMergeAcrossNodes` (1) ([`MomConfig::vdsm`]).
//!   `01-parameters.policy` ships empty; the oVirt engine replaces it at run time
//!   (`setMOMPolicyParameters` → MOM `setNamedPolicy`) with `(set balloonEnabled …)`
//!   etc. from the cluster settings.
//! * vdsm `02-balloon.policy` — `change_big_enough`, `shrink_guest`, `grow_guest`,
//!   `balloon_logic`, the `valid` guard and the `guest_qos` rule ([`Rules::Vdsm`]).
//! * vdsm `03-ksm.policy` — `change_npages`, `apply_NUMA_policy` and the main rule.
//! * vdsm `static/etc/vdsm/mom.conf.in` — 15 s intervals, history 10, optional guest
//!   collectors.
//! * MOM `doc/balloon.rules` and `doc/ksm.rules` with `doc/mom-balloon+ksm.conf`
//!   (5 s monitors, 10 s policy, mandatory guest collectors) — [`Rules::DocSamples`].
//! * MOM `mom/Entity.py` (`Stat`, `StatAvg`), `mom/Monitor.py` (history length,
//!   missing mandatory fields), `mom/Policy/Parser.py` (Python 3 true division,
//!   dynamic scoping, errors), `mom/Policy/Policy.py` and `mom/PolicyEngine.py` (an
//!   error anywhere discards the whole round), `mom/Controllers/Balloon.py` and
//!   `mom/Controllers/KSM.py` (`int()` of the requested value; KSM writes only keys
//!   that differ from the last sample), the collectors `HostMemory.py`, `HostKSM.py`,
//!   `GuestMemory.py`, `GuestBalloon.py`, and `vdsmRpcBase.py` (which vdsm stats feed
//!   `mem_unused` and `balloon_*`).
//!
//! Arithmetic is Python's: the constants written as integers stay integers
//! (`pages_to_scan` ± boost/decay), the others are doubles, `/` is true division, and
//! the controllers truncate with `int()`. Every intermediate is computed in the same
//! order with `f64`, which gives Python's results exactly as long as the KiB values
//! and the sums inside `StatAvg` stay below 2^53 (8 EiB).
//!
//! # Differences that matter when comparing with ksmtuned and pvestatd
//!
//! * "Free" is `MemFree + Buffers + Cached` (as in ksmtuned), not `MemAvailable`, and
//!   the policies use its **average over the history** (`StatAvg`, up to 10 samples =
//!   150 s in vdsm), while the total and the committed size come from the latest
//!   sample. ksmtuned reads everything fresh every 60 s; pvestatd uses
//!   MemTotal − MemAvailable (pve-common ≥ 8.3.1) fresh every ~10 s.
//! * KSM: `pages_to_scan` is adjusted from the *current sysfs value* (kernel boot
//!   value 100), so the first boost gives 400 where ksmtuned (internal counter from 0)
//!   gives 300; the first decay gives 64 in both. The sleep is recomputed every round
//!   and truncated by `int()` (vdsm floors it at 10 ms, the doc sample does not).
//!   Only values that differ from sysfs are written, and stopping writes `run` only
//!   (plus, in vdsm, a pending `merge_across_nodes` change).
//!   vdsm writes `run = 2` (unmerge everything) instead of 0 when KSM is disabled
//!   from the engine (`ksmEnabled` 0) while pages are shared, or while a
//!   `merge_across_nodes` change waits for the unmerge.
//! * Ballooning is per guest, with no host-wide goal and no shares (unlike pvestatd's
//!   proportional allocator): under host pressure (average free < 20 %) each guest
//!   is shrunk towards `used + f × balloon_cur`, where `used` = average(balloon_cur) −
//!   average(guest MemFree) and `f` shrinks with the pressure (negative at ≤ 5 %:
//!   guests are pushed into swapping), by at most 5 % of `balloon_cur` per round;
//!   otherwise each ballooned guest grows by at least 5 % (or to its own
//!   `used + f × balloon_cur`) up to `balloon_max`. Changes of 0.25 % or less of
//!   `balloon_cur` are skipped (pvestatd: ±10 MiB dead zone on the host goal and an
//!   absolute 100 MiB step).
//! * vdsm ships `balloonEnabled 0`: unless the engine enables ballooning for the
//!   cluster, MOM never shrinks a guest but still *grows* every ballooned guest
//!   back to `balloon_max`, whatever the host pressure. vdsm itself then ignores
//!   targets for VMs whose ballooning is disabled (not modelled here).
//! * vdsm's QoS rule runs after the balloon rule and sets `balloon_min` as target
//!   for any guest below it — replacing a larger grow target decided in the same
//!   round. A guest whose balloon info is missing makes that rule compare `None` in
//!   Python, which aborts the whole round: no balloon and no KSM change for any
//!   guest ([`Abort::MissingBalloonInfo`]).
//!
//! # Not modelled
//!
//! The CPU-tune and IO-tune policies (04/05: a failure there would also discard the
//! round), the RPC server, monitor threads running out of phase with the policy
//! engine (here one [`Mom::record`] per collection, driven by the caller), vdsm's
//! 5 s stats cache and 15 s VM sampling (stale guest stats), guest monitors that
//! stop being ready after their first sample (their history would be kept), and
//! supervdsm's range checks on KSM values (never triggered with the shipped
//! constants).

use std::collections::VecDeque;
use std::fmt;

use crate::engine::SimTime;

// ---------------------------------------------------------------------------------
// Upstream constants. Names are the policy variables; values are identical in vdsm's
// 02-balloon.policy / 03-ksm.policy and MOM's doc/balloon.rules / doc/ksm.rules.
// ---------------------------------------------------------------------------------

/// `pressure_threshold` 0.20: the host is under memory pressure when the average
/// free fraction is below this (strictly).
pub const PRESSURE_THRESHOLD: f64 = 0.20;
/// `pressure_critical` 0.05: at or below this free fraction the pressure is critical.
pub const PRESSURE_CRITICAL: f64 = 0.05;
/// `min_guest_free_percent` 0.20: free fraction an unconstrained guest keeps.
pub const MIN_GUEST_FREE_PERCENT: f64 = 0.20;
/// `max_balloon_change_percent` 0.05: largest change per round, relative to
/// `balloon_cur`.
pub const MAX_BALLOON_CHANGE_PERCENT: f64 = 0.05;
/// `min_balloon_change_percent` 0.0025: a change must exceed this fraction of
/// `balloon_cur` to be requested (`change_big_enough`).
pub const MIN_BALLOON_CHANGE_PERCENT: f64 = 0.0025;
/// The literal `-0.05` added to the host free fraction in the critical branch of
/// `shrink_guest` (and vdsm's `grow_guest`). It is not derived from
/// `pressure_critical`.
pub const CRITICAL_GUEST_FREE_OFFSET: f64 = -0.05;

/// `ksm_pages_boost` 300 (an integer upstream).
pub const KSM_PAGES_BOOST: i64 = 300;
/// `ksm_pages_decay` -50.
pub const KSM_PAGES_DECAY: i64 = -50;
/// `ksm_npages_min` 64.
pub const KSM_NPAGES_MIN: i64 = 64;
/// `ksm_npages_max` 1250.
pub const KSM_NPAGES_MAX: i64 = 1250;
/// `ksm_sleep_ms_baseline` 10: ksmd's sleep for a 16 GiB host.
pub const KSM_SLEEP_MS_BASELINE: i64 = 10;
/// The literal 16777216 (KiB = 16 GiB) the baseline is scaled by.
pub const KSM_SLEEP_BASELINE_MEM_KIB: i64 = 16_777_216;
/// `ksm_free_percent` 0.20: KSM runs when the average free memory is not above
/// this fraction of MemTotal (or committed memory is large).
pub const KSM_FREE_PERCENT: f64 = 0.20;
/// The literal 10 in vdsm's `(max 10 …)` around the sleep (absent in doc/ksm.rules).
pub const VDSM_KSM_SLEEP_FLOOR_MS: i64 = 10;

/// vdsm `mom.conf.in` `policy-engine-interval`: 15 s.
pub const VDSM_POLICY_INTERVAL: SimTime = SimTime::from_secs(15);
/// vdsm `mom.conf.in` `host-monitor-interval` = `guest-monitor-interval`: 15 s.
pub const VDSM_MONITOR_INTERVAL: SimTime = SimTime::from_secs(15);
/// `sample-history-length` 10 (vdsm and the doc sample).
pub const SAMPLE_HISTORY_LENGTH: usize = 10;

/// Which policy files are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// What oVirt runs: vdsm's `mom.d/00-defines … 03-ksm.policy` with the optional
    /// guest collectors. A guest without memory statistics stays in the guest list
    /// and is skipped by the `valid` guard; the QoS rule and the switches apply.
    Vdsm,
    /// MOM's `doc/balloon.rules` then `doc/ksm.rules`, with the mandatory
    /// `GuestMemory`/`GuestBalloon` collectors of `doc/mom-balloon+ksm.conf`: a
    /// sample missing either is not recorded and the guest is left out of the round.
    /// No switches, no QoS rule (`doc/balloon-qos.rules` is a separate sample), no
    /// NUMA handling, `grow_guest` keeps `min_guest_free_percent` unscaled, and the
    /// KSM sleep has no lower bound.
    DocSamples,
}

/// MOM's configuration: intervals, history, the vdsm switches and the policy
/// constants (defaults: the upstream values above).
#[derive(Clone, Debug, PartialEq)]
pub struct MomConfig {
    pub rules: Rules,
    /// `policy-engine-interval`: how often the caller should run [`Mom::decide`]
    /// (vdsm 15 s, doc sample 10 s). Not used in the arithmetic.
    pub interval: SimTime,
    /// `host-monitor-interval` / `guest-monitor-interval`: how often the caller
    /// should run [`Mom::record`] (vdsm 15 s, doc sample 5 s).
    pub monitor_interval: SimTime,
    /// `sample-history-length`: samples kept per monitor for `StatAvg` (10).
    pub history: usize,
    /// `balloonEnabled` (vdsm `00-defines.policy`: 0). Off = never shrink; grow
    /// still runs. Ignored by [`Rules::DocSamples`].
    pub balloon_enabled: bool,
    /// `ksmEnabled` (vdsm: 1). Off = KSM stopped (unmerged while pages are
    /// shared). Ignored by [`Rules::DocSamples`].
    pub ksm_enabled: bool,
    /// `ksmMergeAcrossNodes` (vdsm: 1), the wanted `merge_across_nodes`.
    /// Ignored by [`Rules::DocSamples`].
    pub ksm_merge_across_nodes: u32,
    pub pressure_threshold: f64,
    pub pressure_critical: f64,
    pub min_guest_free_percent: f64,
    pub max_balloon_change_percent: f64,
    pub min_balloon_change_percent: f64,
    pub ksm_pages_boost: i64,
    pub ksm_pages_decay: i64,
    pub ksm_npages_min: i64,
    pub ksm_npages_max: i64,
    pub ksm_sleep_ms_baseline: i64,
    pub ksm_free_percent: f64,
}

impl MomConfig {
    /// vdsm's installation: `mom.conf.in` plus `mom.d/*.policy` as shipped (the
    /// engine usually overrides `balloon_enabled` / `ksm_enabled` per cluster).
    pub fn vdsm() -> MomConfig {
        MomConfig {
            rules: Rules::Vdsm,
            interval: VDSM_POLICY_INTERVAL,
            monitor_interval: VDSM_MONITOR_INTERVAL,
            history: SAMPLE_HISTORY_LENGTH,
            balloon_enabled: false,
            ksm_enabled: true,
            ksm_merge_across_nodes: 1,
            pressure_threshold: PRESSURE_THRESHOLD,
            pressure_critical: PRESSURE_CRITICAL,
            min_guest_free_percent: MIN_GUEST_FREE_PERCENT,
            max_balloon_change_percent: MAX_BALLOON_CHANGE_PERCENT,
            min_balloon_change_percent: MIN_BALLOON_CHANGE_PERCENT,
            ksm_pages_boost: KSM_PAGES_BOOST,
            ksm_pages_decay: KSM_PAGES_DECAY,
            ksm_npages_min: KSM_NPAGES_MIN,
            ksm_npages_max: KSM_NPAGES_MAX,
            ksm_sleep_ms_baseline: KSM_SLEEP_MS_BASELINE,
            ksm_free_percent: KSM_FREE_PERCENT,
        }
    }

    /// MOM's own samples: `doc/mom-balloon+ksm.conf` (5 s monitors, 10 s policy,
    /// history 10) with `doc/balloon.rules` and `doc/ksm.rules`.
    pub fn doc_samples() -> MomConfig {
        MomConfig {
            rules: Rules::DocSamples,
            interval: SimTime::from_secs(10),
            monitor_interval: SimTime::from_secs(5),
            ..MomConfig::vdsm()
        }
    }
}

impl Default for MomConfig {
    fn default() -> MomConfig {
        MomConfig::vdsm()
    }
}

/// The `/sys/kernel/mm/ksm` values `HostKSM` reads that the policy or the KSM
/// controller use, as they are at the time of the sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KsmSysfs {
    /// `run`: 0 stopped, 1 running, 2 unmerge.
    pub run: u32,
    pub pages_to_scan: u32,
    pub sleep_millisecs: u32,
    /// `merge_across_nodes` (NUMA kernels).
    pub merge_across_nodes: u32,
    /// `pages_shared` (KSM pages in use as merge targets).
    pub pages_shared: u64,
}

impl KsmSysfs {
    /// The kernel's values at boot: stopped, 100 pages per 20 ms, merging across
    /// nodes, nothing shared.
    pub const KERNEL_DEFAULT: KsmSysfs = KsmSysfs {
        run: 0,
        pages_to_scan: 100,
        sleep_millisecs: 20,
        merge_across_nodes: 1,
        pages_shared: 0,
    };
}

impl Default for KsmSysfs {
    fn default() -> KsmSysfs {
        KsmSysfs::KERNEL_DEFAULT
    }
}

/// One host sample (`HostMemory` + `HostKSM`), KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostStats {
    /// `mem_available` — despite the name, /proc/meminfo `MemTotal`.
    pub mem_total_kib: u64,
    /// `mem_free` = `MemFree + Buffers + Cached`.
    pub mem_free_kib: u64,
    /// `ksm_shareable`: the summed VSZ of all `pgrep qemu` processes.
    pub ksm_shareable_kib: u64,
    pub ksm: KsmSysfs,
}

/// A guest's balloon as vdsm reports it (`balloonInfo`, KiB). All three come from
/// one collector, so they are present or missing together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BalloonInfo {
    /// `balloon_cur`: libvirt's current (actual) balloon size.
    pub cur_kib: u64,
    /// `balloon_max`: the VM's memory size.
    pub max_kib: u64,
    /// `balloon_min`: the VM's guaranteed memory.
    pub min_kib: u64,
}

/// One guest sample: the statistics the memory policies read. `None` = the
/// collector had nothing (vdsm: no balloon info yet / no balloon device; no guest
/// memory statistics from the balloon driver or agent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestStats {
    pub balloon: Option<BalloonInfo>,
    /// `mem_unused`: the guest's MemFree (libvirt `balloon.unused`), KiB.
    pub mem_unused_kib: Option<u64>,
}

/// A `/sys/kernel/mm/ksm` file the KSM controller writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KsmKey {
    Run,
    PagesToScan,
    SleepMillisecs,
    MergeAcrossNodes,
}

impl KsmKey {
    /// The controller's order (`mom/Controllers/KSM.py`), which is also the order
    /// supervdsm writes the files in.
    pub const ORDER: [KsmKey; 4] = [
        KsmKey::Run,
        KsmKey::PagesToScan,
        KsmKey::SleepMillisecs,
        KsmKey::MergeAcrossNodes,
    ];

    /// The sysfs file name.
    pub fn file(self) -> &'static str {
        match self {
            KsmKey::Run => "run",
            KsmKey::PagesToScan => "pages_to_scan",
            KsmKey::SleepMillisecs => "sleep_millisecs",
            KsmKey::MergeAcrossNodes => "merge_across_nodes",
        }
    }

    fn current(self, k: &KsmSysfs) -> i64 {
        i64::from(match self {
            KsmKey::Run => k.run,
            KsmKey::PagesToScan => k.pages_to_scan,
            KsmKey::SleepMillisecs => k.sleep_millisecs,
            KsmKey::MergeAcrossNodes => k.merge_across_nodes,
        })
    }
}

impl fmt::Display for KsmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file())
    }
}

/// One sysfs write requested by the KSM controller. The value is Python's `int()`
/// of what the policy asked for; with the shipped constants it is always within
/// what supervdsm accepts (run/merge 0‥2, the others 0‥2^32−1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KsmWrite {
    pub key: KsmKey,
    pub value: i64,
}

/// Why a round changed nothing at all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Abort {
    /// No host sample yet: the policy engine skips the round (`do_controls`).
    NoHostSample,
    /// MemTotal 0: `host_free_percent` divides by zero and the evaluation fails.
    ZeroMemTotal,
    /// vdsm's `guest_qos` compared a missing `balloon_cur` (Python `None < None`
    /// raises), so the policy evaluation failed and no controller ran. `guest` is the
    /// first such slot.
    MissingBalloonInfo { guest: usize },
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Abort::NoHostSample => f.write_str("no host sample yet"),
            Abort::ZeroMemTotal => f.write_str("host MemTotal is 0 (division by zero)"),
            Abort::MissingBalloonInfo { guest } => {
                write!(f, "guest {guest} has no balloon info (QoS rule fails)")
            }
        }
    }
}

/// What one policy-engine round does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Per guest slot (same indices as the last [`Mom::record`]): the balloon target
    /// sent to vdsm in KiB, or `None` for no call. The Balloon controller does not
    /// compare with the current size; the rules never request the current size.
    pub balloon_targets: Vec<Option<u64>>,
    /// Writes to `/sys/kernel/mm/ksm`, in [`KsmKey::ORDER`], only for values that
    /// differ from the latest host sample.
    pub ksm: Vec<KsmWrite>,
    /// Set when the round was skipped or failed; then nothing else is set.
    pub aborted: Option<Abort>,
}

impl Decision {
    fn nothing(guests: usize, aborted: Option<Abort>) -> Decision {
        Decision {
            balloon_targets: vec![None; guests],
            ksm: Vec::new(),
            aborted,
        }
    }

    /// The value written to `key` this round, if any.
    pub fn ksm_write(&self, key: KsmKey) -> Option<i64> {
        self.ksm.iter().find(|w| w.key == key).map(|w| w.value)
    }
}

/// One guest's monitor (`GuestMonitor`): its kept samples.
#[derive(Clone, Debug)]
struct GuestMonitor {
    history: VecDeque<GuestStats>,
    /// False while the latest collection missed a mandatory field (doc samples
    /// only); the guest is then not in the round's guest list.
    ready: bool,
}

impl GuestMonitor {
    fn latest(&self) -> Option<&GuestStats> {
        self.history.back()
    }

    fn avg_balloon_cur(&self) -> f64 {
        stat_avg(self.history.iter().map(|s| s.balloon.map(|b| b.cur_kib)))
    }

    fn avg_mem_unused(&self) -> f64 {
        stat_avg(self.history.iter().map(|s| s.mem_unused_kib))
    }
}

/// The requests ("controls") one evaluation leaves on the entities.
#[derive(Default)]
struct KsmControls {
    run: Option<i64>,
    pages_to_scan: Option<i64>,
    /// A float in Python (true division), truncated by the controller.
    sleep_millisecs: Option<f64>,
    merge_across_nodes: Option<i64>,
}

/// MOM's memory policies with the monitors' sample history.
#[derive(Clone, Debug)]
pub struct Mom {
    cfg: MomConfig,
    host: VecDeque<HostStats>,
    /// Per guest slot: `None` = not running (no monitor, no history).
    guests: Vec<Option<GuestMonitor>>,
}

impl Mom {
    /// # Panics
    /// If `cfg.history` is 0 (MOM would keep no sample and fail every round).
    pub fn new(cfg: MomConfig) -> Mom {
        assert!(cfg.history >= 1, "sample-history-length must be at least 1");
        Mom {
            cfg,
            host: VecDeque::new(),
            guests: Vec::new(),
        }
    }

    pub fn config(&self) -> &MomConfig {
        &self.cfg
    }

    /// One collection by the host monitor and every guest monitor
    /// (`Monitor.collect`). `guests[i]` is guest slot `i`; `None` means the VM is not
    /// running: its monitor and history are dropped, and a later start begins a
    /// fresh history (MOM spawns a new `GuestMonitor`). Slots beyond `guests.len()`
    /// count as not running.
    pub fn record(&mut self, host: &HostStats, guests: &[Option<GuestStats>]) {
        push_bounded(&mut self.host, *host, self.cfg.history);
        if self.guests.len() < guests.len() {
            self.guests.resize(guests.len(), None);
        }
        for (slot, monitor) in self.guests.iter_mut().enumerate() {
            let Some(stats) = guests.get(slot).copied().flatten() else {
                *monitor = None;
                continue;
            };
            let monitor = monitor.get_or_insert_with(|| GuestMonitor {
                history: VecDeque::new(),
                ready: false,
            });
            // Monitor.collect drops a sample that lacks a mandatory field. With
            // vdsm's *Optional collectors nothing the memory policies read is
            // mandatory; with the doc sample's GuestMemory/GuestBalloon all is.
            let complete = match self.cfg.rules {
                Rules::Vdsm => true,
                Rules::DocSamples => stats.balloon.is_some() && stats.mem_unused_kib.is_some(),
            };
            if complete {
                push_bounded(&mut monitor.history, stats, self.cfg.history);
            }
            monitor.ready = complete;
        }
    }

    /// One policy-engine round on the recorded samples: the balloon rules, then the
    /// KSM rules, then the Balloon and KSM controllers.
    pub fn decide(&self) -> Decision {
        let slots = self.guests.len();
        let Some(host) = self.host.back() else {
            return Decision::nothing(slots, Some(Abort::NoHostSample));
        };
        match self.run_policy(host) {
            Ok((balloon, ksm)) => Decision {
                balloon_targets: balloon
                    .into_iter()
                    .map(|t| t.map(balloon_controller))
                    .collect(),
                ksm: ksm_controller(&ksm, &host.ksm),
                aborted: None,
            },
            Err(abort) => Decision::nothing(slots, Some(abort)),
        }
    }

    /// [`Mom::record`] then [`Mom::decide`]: one round when, as in vdsm, monitors and
    /// the policy engine share the same interval.
    pub fn evaluate(&mut self, host: &HostStats, guests: &[Option<GuestStats>]) -> Decision {
        self.record(host, guests);
        self.decide()
    }

    /// `Host.StatAvg("mem_free")` over the kept samples, KiB; `None` before the first.
    pub fn host_mem_free_avg(&self) -> Option<f64> {
        if self.host.is_empty() {
            None
        } else {
            Some(stat_avg(self.host.iter().map(|h| Some(h.mem_free_kib))))
        }
    }

    /// Number of host samples kept (at most `history`).
    pub fn host_samples(&self) -> usize {
        self.host.len()
    }

    /// Number of samples kept for guest slot `slot` (0 when it is not running).
    pub fn guest_samples(&self, slot: usize) -> usize {
        self.guests
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(0, |m| m.history.len())
    }

    /// The policy files, evaluated in order. Returns the balloon controls per slot
    /// and the host's KSM controls, or why the evaluation failed.
    fn run_policy(&self, host: &HostStats) -> Result<(Vec<Option<f64>>, KsmControls), Abort> {
        let cfg = &self.cfg;
        let vdsm = cfg.rules == Rules::Vdsm;

        // `Guests`: the entities of ready monitors (GuestManager.interrogate).
        let guests: Vec<(usize, &GuestMonitor, &GuestStats)> = self
            .guests
            .iter()
            .enumerate()
            .filter_map(|(slot, m)| {
                let m = m.as_ref().filter(|m| m.ready)?;
                Some((slot, m, m.latest()?))
            })
            .collect();

        // 02-balloon.policy / balloon.rules, main script: host_free_percent.
        if host.mem_total_kib == 0 {
            return Err(Abort::ZeroMemTotal);
        }
        let total = host.mem_total_kib as f64;
        let host_free_avg = stat_avg(self.host.iter().map(|h| Some(h.mem_free_kib)));
        let host_free_percent = host_free_avg / total;

        let mut balloon = vec![None; self.guests.len()];
        for &(slot, monitor, latest) in &guests {
            // vdsm: `(valid guest.balloon_cur (guest.Stat "mem_unused"))`, on the
            // latest sample; otherwise the guest is only logged. (With the doc
            // sample every listed guest has both.)
            let (Some(info), Some(_)) = (latest.balloon, latest.mem_unused_kib) else {
                continue;
            };
            // vdsm `balloon_logic`: shrink only when ballooning is enabled; the doc
            // sample's main script has no switch.
            let shrink =
                host_free_percent < cfg.pressure_threshold && (!vdsm || cfg.balloon_enabled);
            let control = if shrink {
                self.shrink_guest(monitor, &info, host_free_percent)
            } else {
                self.grow_guest(monitor, &info, host_free_percent)
            };
            if control.is_some() {
                balloon[slot] = control;
            }
        }

        if vdsm {
            // 02-balloon.policy `guest_qos`, for every listed guest: a guest below
            // its guaranteed memory is sent back to it, overriding the rule above.
            for &(slot, _, latest) in &guests {
                let Some(info) = latest.balloon else {
                    return Err(Abort::MissingBalloonInfo { guest: slot });
                };
                if info.cur_kib < info.min_kib {
                    balloon[slot] = Some(info.min_kib as f64);
                }
            }
        }

        let ksm = self.ksm_rules(host, host_free_avg);
        Ok((balloon, ksm))
    }

    /// `guest_free_percent` as `shrink_guest` (and vdsm's `grow_guest`) set it.
    fn scaled_guest_free_percent(&self, host_free_percent: f64) -> f64 {
        let cfg = &self.cfg;
        if host_free_percent <= cfg.pressure_critical {
            // Critical: negative free memory, to push the guest into swapping.
            CRITICAL_GUEST_FREE_OFFSET + host_free_percent
        } else {
            cfg.min_guest_free_percent * (host_free_percent / cfg.pressure_threshold)
        }
    }

    /// The balloon size the guest would need to keep `guest_free_percent` of its
    /// current size free: the policies' local `balloon_min`, never below the
    /// guaranteed `guest.balloon_min`.
    fn wanted_size(monitor: &GuestMonitor, info: &BalloonInfo, guest_free_percent: f64) -> f64 {
        let used = monitor.avg_balloon_cur() - monitor.avg_mem_unused();
        py_max(
            info.min_kib as f64,
            used + guest_free_percent * info.cur_kib as f64,
        )
    }

    /// `change_big_enough`: |new − cur| > min_balloon_change_percent × cur.
    fn change_big_enough(&self, info: &BalloonInfo, new_val: f64) -> bool {
        let cur = info.cur_kib as f64;
        (new_val - cur).abs() > self.cfg.min_balloon_change_percent * cur
    }

    /// `shrink_guest`.
    fn shrink_guest(&self, monitor: &GuestMonitor, info: &BalloonInfo, hfp: f64) -> Option<f64> {
        let gfp = self.scaled_guest_free_percent(hfp);
        let floor = Self::wanted_size(monitor, info, gfp);
        let cur = info.cur_kib as f64;
        let mut size = cur * (1.0 - self.cfg.max_balloon_change_percent);
        if size < floor {
            size = floor;
        }
        // Only a shrink (or no move) that is big enough is requested.
        (size <= cur && self.change_big_enough(info, size)).then_some(size)
    }

    /// `grow_guest` (vdsm scales the guest free percent like `shrink_guest`; the doc
    /// sample uses `min_guest_free_percent` as is).
    fn grow_guest(&self, monitor: &GuestMonitor, info: &BalloonInfo, hfp: f64) -> Option<f64> {
        let gfp = match self.cfg.rules {
            Rules::Vdsm => self.scaled_guest_free_percent(hfp),
            Rules::DocSamples => self.cfg.min_guest_free_percent,
        };
        if info.cur_kib >= info.max_kib {
            return None;
        }
        let floor = Self::wanted_size(monitor, info, gfp);
        let mut size = info.cur_kib as f64 * (1.0 + self.cfg.max_balloon_change_percent);
        if size < floor {
            size = floor;
        }
        let max = info.max_kib as f64;
        if size > max {
            size = max;
        }
        self.change_big_enough(info, size).then_some(size)
    }

    /// 03-ksm.policy / ksm.rules, main script.
    fn ksm_rules(&self, host: &HostStats, host_free_avg: f64) -> KsmControls {
        let cfg = &self.cfg;
        let vdsm = cfg.rules == Rules::Vdsm;
        let k = &host.ksm;
        let mut c = KsmControls::default();

        let total = host.mem_total_kib as f64;
        let threshold = total * cfg.ksm_free_percent; // ksm_pressure_threshold
        let committed = host.ksm_shareable_kib as f64; // ksm_committed

        // vdsm: merge_across_nodes can only change while nothing is shared, and
        // `apply_NUMA_policy` asks for an unmerge (run 2) while pages are shared and
        // either the wanted NUMA mode differs or KSM is disabled.
        let mut action = 0;
        if vdsm {
            if k.pages_shared == 0 {
                c.merge_across_nodes = Some(i64::from(cfg.ksm_merge_across_nodes));
            }
            if k.pages_shared > 0
                && (k.merge_across_nodes != cfg.ksm_merge_across_nodes || !cfg.ksm_enabled)
            {
                action = 2;
            }
        }

        let not_needed = threshold + committed < total && host_free_avg > threshold;
        let stop = not_needed || (vdsm && (!cfg.ksm_enabled || action != 0));
        if stop {
            c.run = Some(action);
            return c;
        }

        c.run = Some(1);
        let sleep = (cfg.ksm_sleep_ms_baseline * KSM_SLEEP_BASELINE_MEM_KIB) as f64 / total;
        c.sleep_millisecs = Some(match cfg.rules {
            Rules::Vdsm => py_max(VDSM_KSM_SLEEP_FLOOR_MS as f64, sleep),
            Rules::DocSamples => sleep,
        });
        // `change_npages`: from the sysfs value of the latest sample.
        let delta = if host_free_avg < threshold {
            cfg.ksm_pages_boost
        } else {
            cfg.ksm_pages_decay
        };
        let mut npages = i64::from(k.pages_to_scan) + delta;
        if npages > cfg.ksm_npages_max {
            npages = cfg.ksm_npages_max;
        }
        if npages < cfg.ksm_npages_min {
            npages = cfg.ksm_npages_min;
        }
        c.pages_to_scan = Some(npages);
        c
    }
}

/// `mom/Controllers/Balloon.py`: `int(target)`, sent as is (KiB). The rules only
/// produce non-negative targets.
fn balloon_controller(target: f64) -> u64 {
    py_int(target).max(0) as u64
}

/// `mom/Controllers/KSM.py`: `int()` of each requested value, written only when it
/// differs from the value in the latest host sample.
fn ksm_controller(c: &KsmControls, current: &KsmSysfs) -> Vec<KsmWrite> {
    KsmKey::ORDER
        .iter()
        .filter_map(|&key| {
            let value = match key {
                KsmKey::Run => c.run,
                KsmKey::PagesToScan => c.pages_to_scan,
                KsmKey::SleepMillisecs => c.sleep_millisecs.map(py_int),
                KsmKey::MergeAcrossNodes => c.merge_across_nodes,
            }?;
            (value != key.current(current)).then_some(KsmWrite { key, value })
        })
        .collect()
}

/// Append a sample, dropping the oldest beyond `len` (Monitor.collect).
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, len: usize) {
    q.push_back(item);
    while q.len() > len {
        q.pop_front();
    }
}

/// `Entity.StatAvg`: the mean over the kept samples where the statistic is present,
/// 0.0 when it is present in none. Python sums the integers exactly and divides
/// with correct rounding; so does this while the sum stays below 2^53.
fn stat_avg(values: impl Iterator<Item = Option<u64>>) -> f64 {
    let (sum, n) = values
        .flatten()
        .fold((0u128, 0u64), |(s, n), v| (s + u128::from(v), n + 1));
    if n == 0 {
        0.0
    } else {
        sum as f64 / n as f64
    }
}

/// Python's `max(a, b)` on numbers: the first argument unless the second is
/// strictly larger (equal values are the same number either way).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `int()` of a float: truncation toward zero.
fn py_int(x: f64) -> i64 {
    x.trunc() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_avg_ignores_missing_and_is_zero_when_all_missing() {
        // Entity.StatAvg: (10 + 20) / 2 = 15.0; no value at all → 0.0.
        assert_eq!(stat_avg([Some(10), None, Some(20)].into_iter()), 15.0);
        assert_eq!(stat_avg([None, None].into_iter()), 0.0);
        // 10 / 3 correctly rounded, as Python's int / int.
        assert_eq!(
            stat_avg([Some(3), Some(3), Some(4)].into_iter()),
            10.0 / 3.0
        );
    }

    #[test]
    fn python_int_and_max() {
        assert_eq!(py_int(20.9), 20);
        assert_eq!(py_int(-0.5), 0);
        assert_eq!(py_int(-1.5), -1);
        assert_eq!(py_max(10.0, 2.5), 10.0);
        assert_eq!(py_max(10.0, 10.5), 10.5);
    }

    #[test]
    fn push_bounded_keeps_newest() {
        let mut q = VecDeque::new();
        for i in 0..5 {
            push_bounded(&mut q, i, 3);
        }
        assert_eq!(q, [2, 3, 4]);
    }

    #[test]
    fn ksm_controller_writes_only_changes_in_order() {
        let c = KsmControls {
            run: Some(1),
            pages_to_scan: Some(100),
            sleep_millisecs: Some(10.9),
            merge_across_nodes: Some(0),
        };
        let w = ksm_controller(&c, &KsmSysfs::KERNEL_DEFAULT);
        let got: Vec<(KsmKey, i64)> = w.iter().map(|w| (w.key, w.value)).collect();
        assert_eq!(
            got,
            vec![
                (KsmKey::Run, 1),
                (KsmKey::SleepMillisecs, 10),
                (KsmKey::MergeAcrossNodes, 0)
            ]
        );
    }
}
