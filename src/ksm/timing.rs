//! When ksmd runs and how long its work takes: the wake cycle of `ksm_scan_thread`, the
//! kernel's jiffy rounding, a per-page CPU cost model, and the scan-time advisor
//! (`scan_time_advisor`).
//!
//! **Wake cycle.** After each batch (`ksm_do_scan`) ksmd sleeps in
//! `wait_event_freezable_timeout(…, msecs_to_jiffies(sleep_millisecs))`. The timeout is a
//! timer-wheel timer: it is armed in whole jiffies counted from the jiffy in which the
//! batch ended, and the wheel rounds its expiry up by one more jiffy so that it never
//! fires early (`calc_index` in kernel/time/timer.c). With HZ=250 and the default
//! 20 ms that is `5 + 1` jiffies = 24 ms from a batch that starts on a tick and ends
//! within the same jiffy — the ~24 ms period measured on the real 6.18 kernel
//! (`ksm_observed.md`). `sleep_millisecs=0` is a zero timeout: no wait at all, the next
//! batch starts as soon as the previous one ends.
//!
//! **CPU cost.** Batches take simulated CPU time: a fixed cost per page by what
//! `cmp_and_merge_page` did with it, calibrated on the W6 recording (sleep 0, where
//! pass times are pure CPU): first visit / changed checksum 4.4 µs, unchanged unique
//! page (stable search + unstable insert) 9.4 µs, already merged page 1.5 µs, merge into
//! an existing KSM page 8.5 µs. W7 in `ksm_observed.md` (5.0 µs per page in steady
//! state, 40 000 pair merges in 1.72 s) agrees within 10 %; its first pass (1.25 µs per
//! page) was faster than W6's, whose sampler polled every millisecond.

use crate::engine::SimTime;

/// The kernel's timer frequency on the recorded host.
pub const HZ: u64 = 250;

/// Nanoseconds per jiffy.
pub const fn jiffy_ns(hz: u64) -> u64 {
    1_000_000_000 / hz
}

/// `msecs_to_jiffies`: milliseconds rounded **up** to whole jiffies.
pub const fn msecs_to_jiffies(ms: u64, hz: u64) -> u64 {
    (ms.saturating_mul(hz)).div_ceil(1000)
}

/// Per-page and per-batch CPU costs of ksmd, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostModel {
    pub hz: u64,
    /// Walking past an address with nothing to scan (hole, zero page, not mergeable).
    pub walk_ns: u64,
    /// A page skipped by smart scan.
    pub skip_ns: u64,
    /// Freeing a stale rmap_item (page gone, VMA no longer mergeable, mm exiting).
    pub free_item_ns: u64,
    /// A page that already is the KSM page its rmap_item hangs off.
    pub ksm_revisit_ns: u64,
    /// Checksum changed (every first visit): rmap_item set-up plus checksum.
    pub volatile_ns: u64,
    /// Checksum unchanged, no merge: stable-tree search and unstable-tree search/insert.
    pub tree_ns: u64,
    /// Merge into an existing KSM page found in the stable tree.
    pub merge_ns: u64,
    /// Merge of two ordinary pages into a new KSM page (unstable-tree match).
    pub merge_pair_ns: u64,
    /// Replacement of a zero-filled page by the shared zero page.
    pub zero_merge_ns: u64,
    /// Fixed cost of one batch (mutex, loop set-up); keeps time moving when a batch has
    /// nothing to do.
    pub batch_ns: u64,
    /// Delay between the timer tick and the first page of the batch it wakes.
    pub wake_latency_ns: u64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            hz: HZ,
            walk_ns: 20,
            skip_ns: 100,
            free_item_ns: 200,
            ksm_revisit_ns: 1_500,
            volatile_ns: 4_400,
            tree_ns: 9_400,
            merge_ns: 8_500,
            merge_pair_ns: 12_000,
            zero_merge_ns: 6_000,
            batch_ns: 2_000,
            wake_latency_ns: 0,
        }
    }
}

impl CostModel {
    /// When ksmd wakes after a batch that ended at `end`, sleeping `sleep_ms`
    /// (`None` = no wait: `sleep_millisecs=0`).
    pub fn wake_after(&self, end: SimTime, sleep_ms: u64) -> SimTime {
        if sleep_ms == 0 {
            return end;
        }
        let j = jiffy_ns(self.hz.max(1));
        let now_jiffy = end.as_nanos() / j;
        let expires = now_jiffy + msecs_to_jiffies(sleep_ms, self.hz) + 1;
        SimTime(
            expires
                .saturating_mul(j)
                .saturating_add(self.wake_latency_ns),
        )
    }

    /// The jiffies counter at `t` (starts at 0 at simulated time 0).
    pub fn jiffies(&self, t: SimTime) -> u64 {
        t.as_nanos() / jiffy_ns(self.hz.max(1))
    }
}

/// `advisor_mode` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdvisorMode {
    #[default]
    None,
    ScanTime,
}

/// `struct advisor_ctx`: what the scan-time advisor remembers between passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdvisorCtx {
    pub start_scan: SimTime,
    /// Previous pass time in whole seconds (0 = none yet).
    pub scan_time: u64,
    /// Smoothed change, percent.
    pub change: u64,
    /// ksmd CPU time (ns) at the last adjustment.
    pub cpu_time: u64,
}

/// Advisor tunables (sysfs `advisor_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvisorTunables {
    pub target_scan_time: u64,
    pub max_cpu: u64,
    pub min_pages_to_scan: u64,
    pub max_pages_to_scan: u64,
}

impl Default for AdvisorTunables {
    fn default() -> Self {
        AdvisorTunables {
            target_scan_time: 200,
            max_cpu: 70,
            min_pages_to_scan: 500,
            max_pages_to_scan: 30_000,
        }
    }
}

/// Lower CPU bound of the advisor, percent (`KSM_ADVISOR_MIN_CPU`).
const ADVISOR_MIN_CPU: u64 = 10;
/// Weight of the newest sample in the change average, percent (`EWMA_WEIGHT`).
const EWMA_WEIGHT: u64 = 30;

/// `scan_time_advisor`: the new `pages_to_scan` at the end of a pass that ended at
/// `now`, with ksmd's total CPU time `cpu_now` (ns). Integer arithmetic as upstream.
pub fn scan_time_advisor(
    ctx: &mut AdvisorCtx,
    tun: &AdvisorTunables,
    pages_to_scan: u64,
    now: SimTime,
    cpu_now: u64,
) -> u64 {
    let elapsed_ms = now.saturating_sub(ctx.start_scan).as_nanos() / 1_000_000;
    let scan_time = (elapsed_ms / 1000).max(1);
    let cpu_diff_ms = cpu_now.saturating_sub(ctx.cpu_time) / 1_000_000;
    let cpu_percent = (cpu_diff_ms.saturating_mul(100) / (scan_time * 1000)).max(1);
    let last_scan_time = if ctx.scan_time != 0 {
        ctx.scan_time
    } else {
        scan_time
    };
    let factor = (tun.target_scan_time.saturating_mul(100) / scan_time).max(1);
    let change = (scan_time * 100 / last_scan_time).max(1);
    let change = ((100 - EWMA_WEIGHT) * ctx.change + EWMA_WEIGHT * change) / 100;
    let mut pages = pages_to_scan.saturating_mul(100) / factor;
    pages = pages.saturating_mul(change) / 100;
    let per_page_cost = (pages_to_scan / cpu_percent).max(1);
    pages = pages.min(per_page_cost.saturating_mul(tun.max_cpu));
    pages = pages.max(per_page_cost.saturating_mul(ADVISOR_MIN_CPU));
    pages = pages.min(tun.max_pages_to_scan);
    ctx.change = change;
    ctx.scan_time = scan_time;
    ctx.cpu_time = cpu_now;
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sleep_is_six_jiffies_from_a_tick() {
        let c = CostModel::default();
        assert_eq!(msecs_to_jiffies(20, 250), 5);
        assert_eq!(msecs_to_jiffies(1, 250), 1);
        // batch from 0 to 0.5 ms → wake at 24 ms
        assert_eq!(c.wake_after(SimTime(500_000), 20), SimTime::from_millis(24));
        // a batch ending in the next jiffy pushes the wake one jiffy later
        assert_eq!(
            c.wake_after(SimTime(4_100_000), 20),
            SimTime::from_millis(28)
        );
        assert_eq!(c.wake_after(SimTime(7), 0), SimTime(7));
    }

    #[test]
    fn advisor_first_pass_follows_the_formula() {
        let mut ctx = AdvisorCtx::default();
        let tun = AdvisorTunables::default();
        // 10 s pass, 1 s CPU: cpu 10 %, factor 2000, change ewma(0, 100) = 30
        let p = scan_time_advisor(&mut ctx, &tun, 500, SimTime::from_secs(10), 1_000_000_000);
        // pages = 500*100/2000 = 25; *30/100 = 7; per_page_cost = 50; max(7, 500) = 500
        assert_eq!(p, 500);
        assert_eq!(ctx.change, 30);
        assert_eq!(ctx.scan_time, 10);
    }
}
