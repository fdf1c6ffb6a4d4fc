//! The virtio-balloon device and its guest driver: target vs actual.
//!
//! The host writes a target (`num_pages`, the balloon size QEMU derives from the QMP
//! `balloon` value: `(ram_size − value) >> 12`, value clamped to RAM size, 0 ignored —
//! QEMU `hw/virtio/virtio-balloon.c`). A config change wakes the guest driver, which
//! works toward the target in batches — 256 PFNs (1 MiB) per request for Linux
//! (`VIRTIO_BALLOON_ARRAY_PFNS_MAX` in `drivers/virtio/virtio_balloon.c`), 512 (2 MiB)
//! for the Windows driver — and goes idle once it gets there. It does not look again
//! until the next config change: a deflate-on-oom release leaves it below target and
//! nothing re-inflates it until the host sends a new target (lab E5).
//!
//! Inflation allocates with `__GFP_NORETRY`: it may push the guest into reclaim
//! (kswapd drops cache and swaps), but never into the OOM killer. When no page can be
//! had the Linux driver logs "Out of puff", sleeps 200 ms and retries, forever; the
//! Windows driver stops at the guest's low-memory condition until the next target.
//! This module holds the device state and the pace; the guest decides where pages come
//! from ([`crate::guest::Guest`]).

use crate::engine::SimTime;
use crate::scenario::Os;

/// Bytes per balloon page (`VIRTIO_BALLOON_PFN_SHIFT` = 12).
pub const PAGE: u64 = 4096;
/// Pages released per guest OOM-notifier call with deflate-on-oom
/// (`VIRTIO_BALLOON_OOM_NR_PAGES`).
pub const OOM_DEFLATE_PAGES: u64 = 256;
/// Retry period after a failed inflate allocation (`msleep(200)` in `fill_balloon`).
pub const RETRY: SimTime = SimTime::from_millis(200);
/// Inflate pace when pages are at hand: 1.7 GB/s, the one published KVM figure (7 GB
/// of an idle 8 GB guest in 4.1 s, Wei Wang's 2017 `VIRTIO_BALLOON_F_SG` cover
/// letter). The lab's TCG guests managed ≈380 MiB/s (E2b).
pub const INFLATE_PAGES_PER_SEC: u64 = 1_700_000_000 / PAGE;
/// Deflate pace: no allocation, only acks: ≈2 GiB/s (lab: 768 MiB in 0.7 s under TCG).
pub const DEFLATE_PAGES_PER_SEC: u64 = (2 << 30) / PAGE;

/// Which driver runs in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Linux,
    Windows,
}

/// What the driver wants to do during one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Idle,
    Inflate(u64),
    Deflate(u64),
}

#[derive(Clone, Debug)]
pub struct Balloon {
    ram_pages: u64,
    /// `num_pages`: the balloon size the host asked for.
    target: u64,
    /// `actual`: pages in the balloon now.
    actual: u64,
    /// A config change is being worked on.
    pending: bool,
    driver: Option<Driver>,
    retry_at: SimTime,
    /// Inside a run of failed allocations (for logging "Out of puff" once per run).
    starving: bool,
    pub inflated_pages: u64,
    pub deflated_pages: u64,
}

impl Balloon {
    /// A device on a VM of `ram_pages`; `driver` is `None` when the guest has no driver
    /// (the device answers `query-balloon`, but the balloon never moves).
    pub fn new(ram_pages: u64, os: Os, driver_loaded: bool) -> Balloon {
        let driver = driver_loaded.then_some(match os {
            Os::Linux => Driver::Linux,
            Os::Windows => Driver::Windows,
        });
        Balloon {
            ram_pages,
            target: 0,
            actual: 0,
            pending: false,
            driver,
            retry_at: SimTime::ZERO,
            starving: false,
            inflated_pages: 0,
            deflated_pages: 0,
        }
    }

    pub fn driver(&self) -> Option<Driver> {
        self.driver
    }

    /// QMP `balloon value=<bytes>`: the guest size wanted. Values above RAM are clamped,
    /// 0 is ignored (as QEMU does). Returns whether the target changed.
    pub fn set_guest_size(&mut self, bytes: u64) -> bool {
        if bytes == 0 {
            return false;
        }
        let ram = self.ram_pages * PAGE;
        let target = (ram - bytes.min(ram)) / PAGE;
        let changed = target != self.target;
        self.target = target;
        self.pending = true;
        changed
    }

    /// Pages in the balloon.
    pub fn actual(&self) -> u64 {
        self.actual
    }

    /// Balloon size the host asked for, in pages.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// `query-balloon` `actual`: guest RAM minus the balloon, bytes.
    pub fn actual_guest_bytes(&self) -> u64 {
        (self.ram_pages - self.actual) * PAGE
    }

    /// The target as a guest size in bytes (what QMP `balloon` was told).
    pub fn target_guest_bytes(&self) -> u64 {
        (self.ram_pages - self.target) * PAGE
    }

    /// What the driver tries during a step of length `dt` starting at `now`: whole
    /// driver batches, bounded by the pace, none while waiting for a retry.
    pub fn plan(&self, now: SimTime, dt: SimTime) -> Plan {
        let Some(driver) = self.driver else {
            return Plan::Idle;
        };
        if !self.pending || now < self.retry_at {
            return Plan::Idle;
        }
        let batch = match driver {
            Driver::Linux => 256,
            Driver::Windows => 512,
        };
        let per_step = |rate: u64| dt.of_rate(rate).max(batch);
        if self.target > self.actual {
            Plan::Inflate((self.target - self.actual).min(per_step(INFLATE_PAGES_PER_SEC)))
        } else if self.target < self.actual {
            Plan::Deflate((self.actual - self.target).min(per_step(DEFLATE_PAGES_PER_SEC)))
        } else {
            Plan::Idle
        }
    }

    /// Records an inflate attempt that wanted `wanted` pages and got `got`. Returns true
    /// when this starts a run of failures ("Out of puff", worth one log line).
    pub fn inflated(&mut self, now: SimTime, wanted: u64, got: u64) -> bool {
        self.actual += got;
        self.inflated_pages += got;
        if got < wanted {
            match self.driver {
                Some(Driver::Windows) => self.pending = false,
                _ => self.retry_at = now + RETRY,
            }
            let first = !self.starving;
            self.starving = true;
            return first;
        }
        self.starving = false;
        self.settle();
        false
    }

    pub fn deflated(&mut self, pages: u64) {
        let n = pages.min(self.actual);
        self.actual -= n;
        self.deflated_pages += n;
        self.settle();
    }

    /// Deflate-on-oom: the OOM notifier releases up to [`OOM_DEFLATE_PAGES`] without
    /// touching the target. Returns the pages released.
    pub fn oom_deflate(&mut self) -> u64 {
        let n = self.actual.min(OOM_DEFLATE_PAGES);
        self.actual -= n;
        self.deflated_pages += n;
        n
    }

    fn settle(&mut self) {
        if self.actual == self.target {
            self.pending = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(n: u64) -> u64 {
        n << 20
    }

    #[test]
    fn target_follows_qemu_semantics() {
        let mut b = Balloon::new(mib(1024) / PAGE, Os::Linux, true);
        assert!(b.set_guest_size(mib(256)));
        assert_eq!(b.target(), mib(768) / PAGE);
        assert!(!b.set_guest_size(0), "0 is ignored");
        assert_eq!(b.target(), mib(768) / PAGE);
        b.set_guest_size(mib(4096));
        assert_eq!(b.target(), 0, "above RAM clamps to RAM");
        b.set_guest_size(mib(256) + 100);
        assert_eq!(b.target_guest_bytes(), mib(256) + 4096, "4 KiB granular");
    }

    #[test]
    fn plan_is_paced_and_idle_without_driver() {
        let mut b = Balloon::new(mib(8192) / PAGE, Os::Linux, true);
        b.set_guest_size(mib(1024));
        let Plan::Inflate(n) = b.plan(SimTime::ZERO, SimTime::from_secs(1)) else {
            panic!("should inflate")
        };
        assert_eq!(n, INFLATE_PAGES_PER_SEC);
        let mut none = Balloon::new(mib(8192) / PAGE, Os::Linux, false);
        none.set_guest_size(mib(1024));
        assert_eq!(none.plan(SimTime::ZERO, SimTime::from_secs(1)), Plan::Idle);
    }

    #[test]
    fn failed_inflate_retries_after_200ms_and_windows_stops() {
        let mut b = Balloon::new(mib(1024) / PAGE, Os::Linux, true);
        b.set_guest_size(mib(512));
        assert!(b.inflated(SimTime::ZERO, 1000, 10), "first failure logs");
        assert!(!b.inflated(SimTime::ZERO, 1000, 10), "a run logs once");
        assert_eq!(b.plan(SimTime::from_millis(100), SimTime(1)), Plan::Idle);
        assert!(matches!(
            b.plan(SimTime::from_millis(200), SimTime(1)),
            Plan::Inflate(_)
        ));
        let mut w = Balloon::new(mib(1024) / PAGE, Os::Windows, true);
        w.set_guest_size(mib(512));
        w.inflated(SimTime::ZERO, 1000, 10);
        assert_eq!(w.plan(SimTime::from_secs(5), SimTime(1)), Plan::Idle);
    }

    #[test]
    fn oom_deflate_leaves_target_and_goes_idle() {
        let mut b = Balloon::new(mib(1024) / PAGE, Os::Linux, true);
        b.set_guest_size(mib(512));
        b.inflated(SimTime::ZERO, mib(512) / PAGE, mib(512) / PAGE);
        assert_eq!(b.oom_deflate(), OOM_DEFLATE_PAGES);
        assert_eq!(b.target(), mib(512) / PAGE);
        assert_eq!(
            b.plan(SimTime::from_secs(9), SimTime::from_secs(1)),
            Plan::Idle
        );
    }
}
