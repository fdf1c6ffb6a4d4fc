//! The physical host: its memory, what `/proc/meminfo` shows, host swap, and the host
//! OOM killer.
//!
//! Host memory is spent on the host's own services (`reserved`), the ZFS ARC, the host
//! page cache, and per running VM: QEMU's overhead plus the guest RAM the guest has
//! touched (QEMU's RSS). Guest RAM is faulted in lazily, so a VM costs what its guest
//! touched, not its configured size — except with PCI passthrough (VFIO pins all of
//! it) or hugetlbfs backing (preallocated), where all of it is taken at start and
//! nothing ever comes back (`guest.md` §4.1, §4.5).
//!
//! When the guest hands pages back (balloon inflation, free page reporting), QEMU
//! discards them (`MADV_DONTNEED`). On THP-backed guest RAM (host `thp` not `never`;
//! QEMU madvises `MADV_HUGEPAGE`), a discard of scattered 4 KiB pages only splits the
//! huge page's mapping: RSS falls, but the memory stays allocated until the
//! deferred-split shrinker runs under memory pressure, so MemFree and MemAvailable do
//! not rise (lab E2). Whole 2 MiB blocks come back at once (lab E2b, E4b).
//!
//! Under pressure the host drops its page cache, then the THPs waiting for a deferred
//! split, then swaps guest RAM out (blind to what the guest thinks is hot), and at the
//! end its OOM killer kills the QEMU process with the highest badness — the whole VM
//! (`mm/oom_kill.c`; Proxmox leaves QEMU's `oom_score_adj` at 0).

use crate::balloon::PAGE;
use crate::engine::SimTime;
use crate::guest::{HostDelta, Watermarks};
use crate::scenario::{HostConfig, MemusedFormula, Thp};

/// Host swap-ins are bounded by the host's disk: 512 MiB/s (an assumption).
const SWAP_IN_PAGES_PER_SEC: u64 = (512 << 20) / PAGE;
/// The host page cache grows back at this pace when memory is free (an assumption).
const CACHE_REFILL_PAGES_PER_SEC: u64 = (16 << 20) / PAGE;
/// min_free_kbytes once khugepaged has raised it for THP (read on this project's
/// 24 GiB host: 67 584 kB).
const THP_MIN_FREE_PAGES: u64 = 67_584 / 4;

/// `/proc/meminfo` fields pvestatd reads, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    pub buffers: u64,
    pub cached: u64,
    pub mem_available: u64,
}

impl MemInfo {
    /// pvestatd's `memused` (pve-common `PVE::ProcFSTools::read_meminfo`).
    pub fn memused(&self, formula: MemusedFormula) -> u64 {
        match formula {
            MemusedFormula::Available => self.mem_total.saturating_sub(self.mem_available),
            MemusedFormula::Legacy => self
                .mem_total
                .saturating_sub(self.mem_free + self.buffers + self.cached),
        }
    }
}

/// How the host backs one VM's RAM, in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backing {
    pub running: bool,
    /// Passthrough or hugepages: all RAM taken at start, never swapped or discarded.
    pub pinned: bool,
    /// Configured guest RAM (what QEMU maps).
    pub ram: u64,
    pub resident: u64,
    pub swapped: u64,
    /// Discarded pages still held in split-pending THPs.
    pub deferred: u64,
    pub overhead: u64,
}

/// The host OOM killer must pick a VM: `shortfall` pages could not be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub shortfall: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    pub swap_in: u64,
    pub swap_out: u64,
}

#[derive(Clone, Debug)]
pub struct Host {
    mem_total: u64,
    reserved: u64,
    zfs_arc: u64,
    cache: u64,
    cache_max: u64,
    qemu_overhead: u64,
    swap_total: u64,
    thp_backed: bool,
    wm: Watermarks,
    vms: Vec<Backing>,
    counters: HostCounters,
    /// Guest RAM pages KSM saves (mapped more than once, or mapped to the zero page).
    ksm_saved: u64,
    /// ksmd's rmap_items slab, pages.
    ksm_slab: u64,
}

impl Host {
    pub fn new(cfg: &HostConfig, vm_count: usize) -> Host {
        let physical = cfg.memory / PAGE;
        // Firmware, memmap and the kernel image are not in MemTotal: ≈2 % here
        // (24 GiB host: MemTotal 24 684 084 kB).
        let mem_total = physical - physical / 50;
        let mut wm = Watermarks::for_managed(mem_total);
        if cfg.thp != Thp::Never && wm.min < THP_MIN_FREE_PAGES {
            let step = wm.low - wm.min;
            wm = Watermarks {
                min: THP_MIN_FREE_PAGES,
                low: THP_MIN_FREE_PAGES + step,
                high: THP_MIN_FREE_PAGES + 2 * step,
            };
        }
        Host {
            mem_total,
            reserved: cfg.reserved / PAGE,
            zfs_arc: cfg.zfs_arc / PAGE,
            cache: cfg.page_cache / PAGE,
            cache_max: cfg.page_cache / PAGE,
            qemu_overhead: cfg.qemu_overhead / PAGE,
            swap_total: cfg.swap / PAGE,
            thp_backed: cfg.thp != Thp::Never,
            wm,
            vms: vec![Backing::default(); vm_count],
            counters: HostCounters::default(),
            ksm_saved: 0,
            ksm_slab: 0,
        }
    }

    pub fn backing(&self, vm: usize) -> Backing {
        self.vms[vm]
    }

    pub fn counters(&self) -> HostCounters {
        self.counters
    }

    pub fn swap_total(&self) -> u64 {
        self.swap_total
    }

    pub fn swap_used(&self) -> u64 {
        self.vms.iter().map(|b| b.swapped).sum()
    }

    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    pub fn zfs_arc(&self) -> u64 {
        self.zfs_arc
    }

    /// Σ guest RAM resident in QEMU processes.
    pub fn guest_resident(&self) -> u64 {
        self.vms.iter().map(|b| b.resident).sum()
    }

    pub fn qemu_overhead(&self) -> u64 {
        self.vms.iter().map(|b| b.overhead).sum()
    }

    pub fn thp_deferred(&self) -> u64 {
        self.vms.iter().map(|b| b.deferred).sum()
    }

    fn used(&self) -> u64 {
        let vms = self
            .vms
            .iter()
            .map(|b| b.resident + b.deferred + b.overhead)
            .sum::<u64>();
        (self.reserved + self.zfs_arc + self.cache + vms + self.ksm_slab)
            .saturating_sub(self.ksm_saved)
    }

    pub fn ksm_saved(&self) -> u64 {
        self.ksm_saved
    }

    /// KSM's effect on host memory: `saved` guest pages share a page with another
    /// mapping (or the zero page), and ksmd's rmap_items take `slab` pages. Per-VM RSS
    /// keeps counting merged pages, as the kernel's does (it matters for the OOM
    /// killer's choice). When merging shrinks — copy-on-write breaks, `run=2` — the
    /// copies need memory now, which may make the host reclaim, swap or OOM-kill.
    ///
    /// Host swap-out of guest RAM is blind to merging here: the savings stay as
    /// counted (bounded by the guest RAM still resident).
    pub fn set_ksm(&mut self, saved: u64, slab: u64) -> Result<(), OutOfMemory> {
        let saved = saved.min(self.guest_resident());
        let grows = (self.ksm_saved + slab).saturating_sub(saved + self.ksm_slab);
        let short = self.make_room(grows);
        self.ksm_saved = saved;
        self.ksm_slab = slab;
        short
    }

    fn free(&self) -> u64 {
        self.mem_total.saturating_sub(self.used())
    }

    /// What `/proc/meminfo` would show. MemAvailable follows the kernel's
    /// `si_mem_available`: free minus the reserve (≈ high watermark), plus the page
    /// cache minus `min(cache / 2, low watermark)`. The ARC and THPs awaiting a
    /// deferred split are not available.
    pub fn meminfo(&self) -> MemInfo {
        let free = self.free();
        let buffers = self.cache / 16;
        let available = (free + self.cache)
            .saturating_sub(self.wm.high)
            .saturating_sub((self.cache / 2).min(self.wm.low));
        MemInfo {
            mem_total: self.mem_total * PAGE,
            mem_free: free * PAGE,
            buffers: buffers * PAGE,
            cached: (self.cache - buffers) * PAGE,
            mem_available: available * PAGE,
        }
    }

    /// QEMU starts: its overhead is touched; a pinned VM takes all its RAM now.
    pub fn start_vm(&mut self, vm: usize, ram_pages: u64, pinned: bool) -> Result<(), OutOfMemory> {
        self.vms[vm] = Backing {
            running: true,
            pinned,
            ram: ram_pages,
            ..Backing::default()
        };
        let need = self.qemu_overhead + if pinned { ram_pages } else { 0 };
        let short = self.make_room(need);
        let b = &mut self.vms[vm];
        b.overhead = self.qemu_overhead;
        b.resident = need - self.qemu_overhead;
        short
    }

    /// QEMU exits (shutdown or host OOM kill): everything it held is freed.
    pub fn stop_vm(&mut self, vm: usize) {
        self.vms[vm] = Backing::default();
    }

    /// Applies a guest step: newly touched pages are faulted in (reclaiming, swapping
    /// or failing as needed); discarded pages come back as described in the module doc.
    pub fn apply(&mut self, vm: usize, d: HostDelta) -> Result<(), OutOfMemory> {
        if !self.vms[vm].running || self.vms[vm].pinned {
            return Ok(());
        }
        // Within a guest step the processes touch memory before the balloon and free
        // page reporting hand pages back (`Guest::step`). A guest cannot discard a
        // page it never touched, so discards beyond what the host holds are pages
        // first touched in this same step: they never need host memory. Discarding
        // first against the old backing would lose them and leave those pages
        // resident for good.
        let b = self.vms[vm];
        let same_step = (d.discard_contig + d.discard_scattered)
            .saturating_sub(b.resident + b.swapped)
            .min(d.touched);
        let contig_same_step = same_step.min(d.discard_contig);
        self.discard(vm, d.discard_contig - contig_same_step, false);
        self.discard(
            vm,
            d.discard_scattered - (same_step - contig_same_step),
            self.thp_backed,
        );
        let touched = d.touched - same_step;
        let short = self.make_room(touched);
        self.vms[vm].resident += touched;
        short
    }

    fn discard(&mut self, vm: usize, n: u64, deferred: bool) {
        let b = &mut self.vms[vm];
        // LRU-blind host swap: a discarded page is swapped out with the VM's odds.
        let touched = (b.resident + b.swapped).max(1);
        let from_swap = (u128::from(n) * u128::from(b.swapped) / u128::from(touched)) as u64;
        let from_swap = from_swap.min(b.swapped);
        let from_res = (n - from_swap).min(b.resident);
        b.swapped -= from_swap;
        b.resident -= from_res;
        if deferred {
            b.deferred += from_res;
        }
    }

    /// One host step: host-swapped pages that the guest uses fault back in
    /// (`hot[vm]` = pages the guest touches every second, `touched[vm]` = all it
    /// touched), and the page cache grows back when memory is free.
    pub fn step(&mut self, dt: SimTime, hot: &[(u64, u64)]) -> Vec<(usize, OutOfMemory)> {
        let mut failures = Vec::new();
        let cap = dt.of_rate(SWAP_IN_PAGES_PER_SEC);
        for (vm, &(hot_pages, touched)) in hot.iter().enumerate() {
            let b = self.vms[vm];
            if !b.running || b.swapped == 0 || touched == 0 {
                continue;
            }
            let want = (u128::from(b.swapped) * u128::from(hot_pages.min(touched))
                / u128::from(touched)) as u64;
            let n = want.min(cap);
            if n == 0 {
                continue;
            }
            let short = self.make_room(n);
            let b = &mut self.vms[vm];
            let n = n.min(b.swapped);
            b.swapped -= n;
            b.resident += n;
            self.counters.swap_in += n;
            if let Err(e) = short {
                failures.push((vm, e));
            }
        }
        let free = self.free();
        if self.cache < self.cache_max && free > self.wm.high * 2 {
            let grow = dt
                .of_rate(CACHE_REFILL_PAGES_PER_SEC)
                .min(self.cache_max - self.cache)
                .min(free - self.wm.high * 2);
            self.cache += grow;
        }
        failures
    }

    /// Makes `n` pages available, reclaiming toward the high watermark: page cache,
    /// then split-pending THPs, then swap. Err when even that leaves free memory below
    /// `min` after the allocation (the caller runs the host OOM killer).
    fn make_room(&mut self, n: u64) -> Result<(), OutOfMemory> {
        let free = self.free();
        if free >= n + self.wm.low {
            return Ok(());
        }
        let mut want = n + self.wm.high - free;
        let floor = (32 << 20) / PAGE;
        let from_cache = want.min(self.cache.saturating_sub(floor));
        self.cache -= from_cache;
        want -= from_cache;
        want -= self.split_deferred(want);
        self.swap_out(want);
        let free = self.free();
        if free >= n + self.wm.min {
            Ok(())
        } else {
            Err(OutOfMemory {
                shortfall: n + self.wm.min - free,
            })
        }
    }

    /// The deferred-split shrinker frees the discarded parts of split THPs.
    fn split_deferred(&mut self, want: u64) -> u64 {
        let mut got = 0;
        for b in &mut self.vms {
            let k = b.deferred.min(want - got);
            b.deferred -= k;
            got += k;
        }
        got
    }

    /// Swaps guest RAM out of unpinned VMs in proportion to their resident memory.
    fn swap_out(&mut self, want: u64) {
        let room = self.swap_total.saturating_sub(self.swap_used());
        let want = want.min(room);
        let total: u64 = self
            .vms
            .iter()
            .filter(|b| !b.pinned)
            .map(|b| b.resident)
            .sum();
        if want == 0 || total == 0 {
            return;
        }
        let mut left = want.min(total);
        for b in self.vms.iter_mut().filter(|b| !b.pinned) {
            let share = (u128::from(want) * u128::from(b.resident) / u128::from(total)) as u64;
            let k = share.max(1).min(b.resident).min(left);
            b.resident -= k;
            b.swapped += k;
            left -= k;
            self.counters.swap_out += k;
        }
    }

    /// The host OOM killer's victim: the running QEMU with the highest badness
    /// (RSS + swap + overhead; `oom_score_adj` 0 for all). Ties go to the later VM.
    pub fn oom_victim(&self) -> Option<usize> {
        self.vms
            .iter()
            .enumerate()
            .filter(|(_, b)| b.running)
            .max_by_key(|(i, b)| (b.resident + b.swapped + b.overhead, *i))
            .map(|(i, _)| i)
    }
}
