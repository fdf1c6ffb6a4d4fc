//! One VM's memory as its Linux (or Windows) kernel sees it.
//!
//! Guest RAM is counted in 4 KiB pages, by owner: reserved (memmap, kernel image:
//! never in MemTotal), kernel (slab and friends), the balloon, free pages, page cache
//! and each process's anonymous memory. Every page is also either *touched* (the host
//! backs it: it counts in QEMU's RSS) or not. Free pages come in three kinds, because
//! the host cares where a free page came from:
//!
//! * `untouched` — never touched, or discarded by the balloon or free page reporting:
//!   costs the host nothing;
//! * `contig` — freed in bulk (process exit, OOM kill, shrinking heap): whole 2 MiB
//!   blocks, which free page reporting can return and which leave no THP behind;
//! * `scattered` — freed 4 KiB at a time by reclaim: the balloon can still return them,
//!   but on THP-backed RAM the host keeps them in split-pending huge pages (lab E2).
//!
//! Allocation order follows Linux: free pages first (recently freed, touched ones
//! before untouched ones), then reclaim — once-read (cold) cache, then cold anon to
//! swap if there is swap (lab E2 g2, E7: the kernel swaps the database rather than drop
//! the hot cache), then hot cache and hot anon split by `swappiness` — and, for an
//! ordinary allocation that still cannot be met, the OOM killer (`mm/oom_kill.c`
//! `oom_badness`, `select_bad_process`). The balloon allocates with `__GFP_NORETRY`:
//! reclaim yes, OOM killer never.
//!
//! The guest reports what the host must do as deltas ([`HostDelta`]): pages newly
//! touched, and touched pages handed back by the balloon or free page reporting.
//!
//! Beside the counts, every page has an index and every owner a set of indices
//! ([`pages`]), so that KSM can later see *which* pages change; the counts stay the
//! source of truth for reclaim and OOM, and the index sets follow them exactly.

mod pages;

use pages::{BootFree, Pages};
pub use pages::{Owner, PageMove};

use crate::balloon::{Balloon, Driver, Plan, PAGE};
use crate::engine::{rng_stream, SimTime};
use crate::scenario::{Os, VmConfig};
use crate::workload::{Demand, ProcessSpec};

/// Reads of a missing file working set, swap-ins and swap-outs are each bounded by the virtual disk:
/// 256 MiB/s (an SSD-backed virtio disk; an assumption).
const DISK_PAGES_PER_SEC: u64 = (256 << 20) / PAGE;
/// Free page reporting returns at most this much per 2 s pass (lab E4b: ≈250 MiB).
const FPR_BATCH_PAGES: u64 = (256 << 20) / PAGE;
/// Free page reporting only runs while free memory exceeds low watermark + 32 × 2 MiB
/// (`mm/page_reporting.c`).
const FPR_HEADROOM_PAGES: u64 = (64 << 20) / PAGE;
/// How fast a process can fault fresh anonymous memory in: 1 GiB/s (an assumption;
/// first-touch faults with zeroing run at a few GiB/s on current CPUs).
const FAULT_PAGES_PER_SEC: u64 = (1 << 30) / PAGE;
/// OOM kills or balloon deflations tried per allocation before giving up on it.
const MAX_OOM_ROUNDS: u32 = 64;

/// Zone watermarks (`mm/page_alloc.c`): `min_free_kbytes = sqrt(16 × lowmem kB)`
/// clamped to [128 KiB, 256 MiB]; `low`/`high` add `max(min/4, 0.1 % of memory)`
/// once and twice (`watermark_scale_factor` = 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub min: u64,
    pub low: u64,
    pub high: u64,
}

impl Watermarks {
    pub fn for_managed(pages: u64) -> Watermarks {
        let kb = pages * (PAGE / 1024);
        let min_kb = ((16.0 * kb as f64).sqrt() as u64).clamp(128, 256 * 1024);
        let min = min_kb / (PAGE / 1024);
        let step = (min / 4).max(pages * 10 / 10_000);
        Watermarks {
            min,
            low: min + step,
            high: min + 2 * step,
        }
    }
}

/// Free pages by how the host backs them (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Free {
    pub untouched: u64,
    pub scattered: u64,
    pub contig: u64,
}

impl Free {
    pub fn total(&self) -> u64 {
        self.untouched + self.scattered + self.contig
    }

    /// Takes `n` pages, touched ones first (the buddy allocator hands out recently
    /// freed, cache-hot pages first). Caller guarantees `n <= total()`.
    fn take(&mut self, n: u64) -> Free {
        let scattered = n.min(self.scattered);
        let contig = (n - scattered).min(self.contig);
        let untouched = n - scattered - contig;
        self.scattered -= scattered;
        self.contig -= contig;
        self.untouched -= untouched;
        Free {
            untouched,
            scattered,
            contig,
        }
    }
}

/// What the host must do after a guest step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostDelta {
    /// Pages the guest touched for the first time (the host must back them).
    pub touched: u64,
    /// Touched pages handed back 4 KiB at a time (balloon over reclaimed memory).
    pub discard_scattered: u64,
    /// Touched pages handed back in whole 2 MiB blocks.
    pub discard_contig: u64,
}

/// Cumulative pressure counters (like `/proc/vmstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub swap_in: u64,
    pub swap_out: u64,
    pub cache_refaults: u64,
    pub major_faults: u64,
    pub oom_kills: u64,
    /// Pages of cache dropped by reclaim.
    pub cache_reclaimed: u64,
}

/// Something worth an entry in `events.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestEvent {
    OomKill {
        process: String,
        badness: i64,
        freed_pages: u64,
        triggered_by: String,
    },
    DeflateOnOom {
        pages: u64,
    },
    OutOfPuff {
        wanted: u64,
    },
    ProcessRestart {
        process: String,
    },
    /// No process could be killed and the allocation failed.
    OomNoVictim {
        triggered_by: String,
    },
}

#[derive(Clone, Debug)]
struct Process {
    spec: ProcessSpec,
    demand: Demand,
    alive: bool,
    restart_at: Option<SimTime>,
    hot_res: u64,
    cold_res: u64,
    hot_sw: u64,
    cold_sw: u64,
    /// Resident pages of the process's file working set (hot page cache).
    cache_hot: u64,
    /// Pages of the file working set evicted since last read (refault shadows).
    cache_shadow: u64,
}

impl Process {
    fn rss(&self) -> u64 {
        self.hot_res + self.cold_res
    }
    fn swapped(&self) -> u64 {
        self.hot_sw + self.cold_sw
    }
    fn anon(&self) -> u64 {
        self.rss() + self.swapped()
    }
    /// `oom_badness`: rss + swap entries + page tables (8 bytes per mapped page),
    /// plus `oom_score_adj × totalpages / 1000`. `None` = unkillable (adj −1000).
    fn badness(&self, totalpages: u64) -> Option<i64> {
        if !self.alive || self.spec.oom_score_adj <= -1000 {
            return None;
        }
        let pgtables = self.anon() * 8 / PAGE;
        let points = (self.rss() + self.swapped() + pgtables) as i64;
        Some(points + i64::from(self.spec.oom_score_adj) * (totalpages / 1000) as i64)
    }
}

/// Who is allocating: decides how far reclaim may go and whether OOM may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Requester {
    Process,
    HotCache,
    ColdCache,
    Balloon(Driver),
}

/// One guest's memory.
#[derive(Clone, Debug)]
pub struct Guest {
    os: Os,
    ram: u64,
    reserved: u64,
    kernel: u64,
    balloon: Balloon,
    deflate_on_oom: bool,
    free_page_reporting: bool,
    free: Free,
    /// Which indices each owner holds (mirrors the counts).
    pages: Pages,
    cache_cold: u64,
    procs: Vec<Process>,
    swap_total: u64,
    swappiness: u64,
    wm: Watermarks,
    counters: Counters,
    delta: HostDelta,
    events: Vec<GuestEvent>,
    /// End of the step being simulated (for restart times).
    now: SimTime,
    /// Pages swap-out may still write in this step (the virtual disk's bandwidth).
    swap_budget: u64,
}

fn pages(bytes: u64) -> u64 {
    bytes / PAGE
}

/// Memory a Linux guest frees after boot with its boot content still in it: the
/// initrd image once unpacked and the initramfs once the real root is mounted
/// (`free_initrd_mem`, switch_root), the kernel's init sections (`free_initmem`). It
/// is in MemTotal and touched; clones hold the same bytes there, so KSM merges it,
/// and the guest's first allocations reuse it: copy-on-write breaks (lab E1: while the
/// workloads allocated, `pages_sharing` fell by 14 300 over four clones ≈ 28 MiB of
/// merged boot pages per guest at the default `kernel_shared`). Sized from that
/// observation (a Debian 12 initrd is of this order), not measured in the guest.
const LINUX_BOOT_FREED: u64 = 28 << 20;

impl Guest {
    /// A freshly booted guest: the kernel's own footprint is touched, and what Linux
    /// freed after boot ([`LINUX_BOOT_FREED`]); Windows zeroes (touches) all of its RAM
    /// at boot.
    pub fn boot(vm: &VmConfig, seed: u64, horizon: SimTime) -> Guest {
        let ram = pages(vm.memory);
        // Not in MemTotal: memmap (64 B per page) and kernel image/initrd (≈48 MiB;
        // a 512 MiB Debian 6.1 guest shows MemTotal 457 MiB, lab E2).
        let reserved = (ram / 64 + pages(48 << 20)).min(ram / 4);
        // Used in MemTotal: slab, page tables of the kernel, per-cpu data.
        let kernel = (pages(24 << 20) + ram / 128).min(ram / 8);
        let managed = ram - reserved;
        let mut rng = rng_stream(seed, &format!("workload/{}", vm.vmid));
        let procs = vm
            .processes
            .iter()
            .map(|spec| Process {
                demand: Demand::new(&spec.anon, horizon, &mut rng),
                spec: spec.clone(),
                alive: true,
                restart_at: None,
                hot_res: 0,
                cold_res: 0,
                hot_sw: 0,
                cold_sw: 0,
                cache_hot: 0,
                cache_shadow: 0,
            })
            .collect();
        let free_pages = managed - kernel;
        let boot_freed = pages(LINUX_BOOT_FREED).min(free_pages / 4);
        let (boot_free, free) = match vm.os {
            Os::Windows => (
                BootFree::Touched,
                Free {
                    contig: free_pages,
                    ..Free::default()
                },
            ),
            Os::Linux => (
                BootFree::Untouched { boot_freed },
                Free {
                    scattered: boot_freed,
                    untouched: free_pages - boot_freed,
                    ..Free::default()
                },
            ),
        };
        let index_map = Pages::new(ram, reserved, kernel, vm.processes.len(), boot_free);
        let touched = ram - free.untouched;
        Guest {
            os: vm.os,
            ram,
            reserved,
            kernel,
            balloon: Balloon::new(ram, vm.os, vm.balloon_device && vm.balloon_driver),
            deflate_on_oom: vm.deflate_on_oom,
            free_page_reporting: vm.free_page_reporting,
            free,
            pages: index_map,
            cache_cold: 0,
            procs,
            swap_total: pages(vm.swap),
            swappiness: u64::from(vm.swappiness.min(200)),
            wm: Watermarks::for_managed(managed),
            counters: Counters::default(),
            delta: HostDelta {
                touched,
                ..HostDelta::default()
            },
            events: Vec::new(),
            now: SimTime::ZERO,
            swap_budget: 0,
        }
    }

    // ---- what others may ask -------------------------------------------------------

    pub fn balloon(&self) -> &Balloon {
        &self.balloon
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// MemTotal: shrinks with the balloon unless deflate-on-oom is negotiated.
    pub fn mem_total(&self) -> u64 {
        let managed = self.ram - self.reserved;
        if self.deflate_on_oom {
            managed
        } else {
            managed - self.balloon.actual()
        }
    }

    pub fn mem_free(&self) -> u64 {
        self.free.total()
    }

    pub fn cached(&self) -> u64 {
        self.cache_cold + self.procs.iter().map(|p| p.cache_hot).sum::<u64>()
    }

    pub fn anon_resident(&self) -> u64 {
        self.procs.iter().map(Process::rss).sum()
    }

    pub fn kernel(&self) -> u64 {
        self.kernel
    }

    pub fn swap_used(&self) -> u64 {
        self.procs.iter().map(Process::swapped).sum()
    }

    /// Pages the host backs (touched and not handed back).
    pub fn touched(&self) -> u64 {
        self.ram - self.free.untouched - self.balloon.actual()
    }

    /// The balloon statistic MEMFREE, which pvestatd reads as `freemem`: Linux reports
    /// truly free pages; Windows reports AvailablePages, which include the standby
    /// (cache) list (`guest.md` §1.7, §1.11).
    pub fn stat_free_bytes(&self) -> u64 {
        let free = match self.os {
            Os::Linux => self.mem_free(),
            Os::Windows => self.mem_free() + self.cached(),
        };
        free * PAGE
    }

    /// Resident anon pages the workload touches every second (for the host's guess at
    /// which host-swapped pages fault back).
    pub fn hot_resident(&self) -> u64 {
        self.procs
            .iter()
            .map(|p| p.hot_res + p.cache_hot)
            .sum::<u64>()
            + self.kernel
    }

    /// Per-process `(name, rss, swap, badness)` for tests and reports.
    pub fn processes(&self) -> Vec<(String, u64, u64, Option<i64>)> {
        let total = self.oom_totalpages();
        self.procs
            .iter()
            .map(|p| (p.spec.name.clone(), p.rss(), p.swapped(), p.badness(total)))
            .collect()
    }

    /// Takes what the host must do since the last call.
    pub fn take_delta(&mut self) -> HostDelta {
        std::mem::take(&mut self.delta)
    }

    /// Takes the events since the last call.
    pub fn take_events(&mut self) -> Vec<GuestEvent> {
        std::mem::take(&mut self.events)
    }

    /// Every owner with the page indices it holds: a partition of `0..memory / 4 KiB`
    /// (empty owners left out).
    pub fn page_owners(&self) -> Vec<(Owner, Vec<u32>)> {
        self.pages.owners()
    }

    /// The pages the processes write in a step of `dt` (`write_rate` each): the most
    /// recently used end of each live process's hot anonymous memory. Writing changes a
    /// page's content, which breaks KSM sharing and keeps it volatile.
    pub fn written_pages(&self, dt: SimTime) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, p) in self.procs.iter().enumerate().filter(|(_, p)| p.alive) {
            let n = dt.of_rate(pages(p.spec.write_rate));
            out.extend(self.pages.top(Owner::AnonHot(i as u32), n));
        }
        out
    }

    /// Starts recording page moves for [`Guest::take_page_moves`] (off by default: the
    /// log costs memory for every page moved).
    pub fn record_page_moves(&mut self) {
        self.pages.record();
    }

    /// Takes the page moves since the last call (empty unless recording).
    pub fn take_page_moves(&mut self) -> Vec<PageMove> {
        self.pages.take_moves()
    }

    // ---- one step --------------------------------------------------------------------

    /// Advances the guest by `dt` ending at `now`: restarts, workload demand, swap-ins of
    /// hot pages, file reads, then the balloon driver.
    pub fn step(&mut self, now: SimTime, dt: SimTime) {
        self.now = now;
        self.swap_budget = dt.of_rate(DISK_PAGES_PER_SEC);
        for i in 0..self.procs.len() {
            self.restart_if_due(i, now);
            if !self.procs[i].alive {
                continue;
            }
            self.follow_demand(i, now, dt);
            self.fault_back(i, dt);
            self.read_files(i, dt);
        }
        self.step_balloon(now, dt);
    }

    /// A 2-second free page reporting pass (`mm/page_reporting.c`, `PAGE_REPORTING_DELAY`):
    /// whole free 2 MiB blocks go back to the host while free memory is above the
    /// low watermark plus 64 MiB.
    pub fn report_free_pages(&mut self) {
        if !self.free_page_reporting || self.balloon.driver().is_none() {
            return;
        }
        let floor = self.wm.low + FPR_HEADROOM_PAGES;
        let room = self.free.total().saturating_sub(floor);
        let n = room.min(self.free.contig).min(FPR_BATCH_PAGES);
        self.free.contig -= n;
        self.free.untouched += n;
        self.pages.mv(Owner::FreeContig, Owner::FreeUntouched, n);
        self.delta.discard_contig += n;
    }

    /// The VM's balloon target was set by the host (`balloon` QMP command).
    pub fn set_balloon_target(&mut self, guest_bytes: u64) -> bool {
        self.balloon.set_guest_size(guest_bytes)
    }

    fn restart_if_due(&mut self, i: usize, now: SimTime) {
        let p = &mut self.procs[i];
        if !p.alive && p.restart_at.is_some_and(|t| t <= now) {
            p.alive = true;
            p.restart_at = None;
            let process = p.spec.name.clone();
            self.events.push(GuestEvent::ProcessRestart { process });
        }
    }

    /// Grows or shrinks the process's anonymous memory toward its demand, keeping the
    /// hot/cold split.
    fn follow_demand(&mut self, i: usize, now: SimTime, dt: SimTime) {
        let p = &self.procs[i];
        let want = pages(p.demand.at(now));
        let want_hot = (want as f64 * p.spec.hot_fraction.clamp(0.0, 1.0)).round() as u64;
        let want_cold = want - want_hot;
        let (hot, cold) = (p.hot_res + p.hot_sw, p.cold_res + p.cold_sw);
        if hot > want_hot {
            self.release_anon(i, hot - want_hot, true);
        }
        if cold > want_cold {
            self.release_anon(i, cold - want_cold, false);
        }
        // A process faults its memory in at a finite pace.
        let (need_hot, need_cold) = (want_hot.saturating_sub(hot), want_cold.saturating_sub(cold));
        let grow = (need_hot + need_cold).min(dt.of_rate(FAULT_PAGES_PER_SEC));
        let grow_hot = split_proportional(&[need_hot, need_cold], grow)[0];
        self.grow_anon(i, grow_hot, true);
        self.grow_anon(i, grow - grow_hot, false);
    }

    fn grow_anon(&mut self, i: usize, n: u64, hot: bool) {
        if n == 0 || !self.procs[i].alive {
            return;
        }
        let got = self.alloc_for(i, n, anon_owner(i, hot));
        let p = &mut self.procs[i];
        if hot {
            p.hot_res += got;
        } else {
            p.cold_res += got;
        }
    }

    /// The process frees anonymous memory (munmap/free): swap slots first, then
    /// resident pages, which come back as whole blocks.
    fn release_anon(&mut self, i: usize, n: u64, hot: bool) {
        let p = &mut self.procs[i];
        let (res, sw) = if hot {
            (&mut p.hot_res, &mut p.hot_sw)
        } else {
            (&mut p.cold_res, &mut p.cold_sw)
        };
        let from_sw = n.min(*sw);
        *sw -= from_sw;
        let from_res = (n - from_sw).min(*res);
        *res -= from_res;
        self.free.contig += from_res;
        self.pages
            .mv(anon_owner(i, hot), Owner::FreeContig, from_res);
    }

    /// Hot pages that were swapped out fault back in (major faults), and writes landing
    /// on swapped cold pages bring those back too; bounded by the disk.
    fn fault_back(&mut self, i: usize, dt: SimTime) {
        let cap = dt.of_rate(DISK_PAGES_PER_SEC);
        let p = &self.procs[i];
        let anon = p.anon().max(1);
        let writes = dt.of_rate(pages(p.spec.write_rate));
        let cold_hits = (writes as u128 * u128::from(p.cold_sw) / u128::from(anon)) as u64;
        let hot_in = p.hot_sw.min(cap);
        let cold_in = cold_hits.min(cap - hot_in);
        for (n, hot) in [(hot_in, true), (cold_in, false)] {
            if n == 0 {
                continue;
            }
            let got = self.alloc_for(i, n, anon_owner(i, hot));
            let Some(p) = self.procs.get_mut(i).filter(|p| p.alive) else {
                return;
            };
            let (res, sw) = if hot {
                (&mut p.hot_res, &mut p.hot_sw)
            } else {
                (&mut p.cold_res, &mut p.cold_sw)
            };
            let excess = got.saturating_sub(*sw);
            let got = got - excess;
            *sw -= got;
            *res += got;
            self.free.contig += excess;
            self.pages.mv(anon_owner(i, hot), Owner::FreeContig, excess);
            self.counters.swap_in += got;
            self.counters.major_faults += got;
        }
    }

    /// The process re-reads its file working set (missing pages are read back; those
    /// evicted earlier count as refaults) and streams `read_rate` of once-read data
    /// into the page cache.
    fn read_files(&mut self, i: usize, dt: SimTime) {
        let p = &self.procs[i];
        let missing = pages(p.spec.cache).saturating_sub(p.cache_hot);
        let n = missing.min(dt.of_rate(DISK_PAGES_PER_SEC));
        if n > 0 {
            let got = self.alloc(n, Requester::HotCache, Owner::CacheHot(i as u32));
            let p = &mut self.procs[i];
            let refaults = n.min(p.cache_shadow);
            p.cache_shadow -= refaults;
            p.cache_hot += got;
            self.counters.cache_refaults += refaults;
            self.counters.major_faults += refaults;
        }
        let stream = dt.of_rate(pages(self.procs[i].spec.read_rate));
        if stream > 0 {
            let got = self.alloc(stream, Requester::ColdCache, Owner::CacheCold);
            self.cache_cold += got;
        }
    }

    fn step_balloon(&mut self, now: SimTime, dt: SimTime) {
        match self.balloon.plan(now, dt) {
            Plan::Idle => {}
            Plan::Deflate(n) => {
                self.balloon.deflated(n);
                self.give_back_balloon_pages(n);
            }
            Plan::Inflate(n) => {
                let driver = self.balloon.driver().unwrap_or(Driver::Linux);
                let took = self.take(n, Requester::Balloon(driver), Owner::Balloon);
                let got = took.total();
                self.delta.discard_scattered += took.scattered;
                self.delta.discard_contig += took.contig;
                if self.balloon.inflated(now, n, got) {
                    self.events.push(GuestEvent::OutOfPuff { wanted: n - got });
                }
            }
        }
    }

    /// Pages the balloon deflated go back to the guest's free lists. Linux leaves them
    /// alone until it needs them, so the host backs them again only then; Windows'
    /// zero-page thread zeroes every freed page, touching it at once (the same
    /// behaviour that zeroes all of its RAM at boot, `guest.md` §1.11, §5.4).
    fn give_back_balloon_pages(&mut self, n: u64) {
        match self.os {
            Os::Linux => {
                self.free.untouched += n;
                self.pages.mv(Owner::Balloon, Owner::FreeUntouched, n);
            }
            Os::Windows => {
                self.free.contig += n;
                self.pages.mv(Owner::Balloon, Owner::FreeContig, n);
                self.delta.touched += n;
            }
        }
    }

    // ---- allocation, reclaim, OOM ----------------------------------------------------

    /// An ordinary allocation of `n` pages by process `i`: reclaim, then deflate-on-oom
    /// or the OOM killer while pages are still missing. Returns the pages granted (less
    /// than `n` only if the process itself was killed or nothing could be freed).
    ///
    /// Granted pages go to `to` at once, before the counts catch up.
    fn alloc_for(&mut self, i: usize, n: u64, to: Owner) -> u64 {
        let mut got = self.alloc(n, Requester::Process, to);
        let mut rounds = 0;
        while got < n && self.procs[i].alive && rounds < MAX_OOM_ROUNDS {
            rounds += 1;
            if self.swap_throttled() || !self.out_of_memory(i) {
                break;
            }
            got += self.alloc(n - got, Requester::Process, to);
        }
        if !self.procs[i].alive {
            // The allocating process was the victim: what it got dies with it (`kill`
            // freed what `to` held then; pages granted after the kill are freed here).
            self.free.contig += got;
            self.pages.mv_all(to, Owner::FreeContig);
            return 0;
        }
        got
    }

    /// `out_of_memory()`: the balloon's OOM notifier first (deflate-on-oom), else kill
    /// the process with the highest badness. Returns whether memory was freed.
    fn out_of_memory(&mut self, trigger: usize) -> bool {
        if self.deflate_on_oom {
            let n = self.balloon.oom_deflate();
            if n > 0 {
                self.free.untouched += n;
                self.pages.mv(Owner::Balloon, Owner::FreeUntouched, n);
                self.events.push(GuestEvent::DeflateOnOom { pages: n });
                return true;
            }
        }
        let total = self.oom_totalpages();
        let victim = self
            .procs
            .iter()
            .enumerate()
            .filter_map(|(j, p)| p.badness(total).map(|b| (b, j)))
            // Highest badness; on a tie the later task wins, as `select_bad_process`
            // replaces the chosen task when points are equal.
            .max_by_key(|&(b, j)| (b, j));
        let triggered_by = self.procs[trigger].spec.name.clone();
        let Some((badness, j)) = victim else {
            self.events.push(GuestEvent::OomNoVictim { triggered_by });
            return false;
        };
        let freed = self.kill(j);
        self.counters.oom_kills += 1;
        self.events.push(GuestEvent::OomKill {
            process: self.procs[j].spec.name.clone(),
            badness,
            freed_pages: freed,
            triggered_by,
        });
        true
    }

    /// `totalpages` of a global OOM: RAM the guest manages plus swap.
    fn oom_totalpages(&self) -> u64 {
        self.mem_total() + self.swap_total
    }

    /// Kills process `j`: its anon memory and swap go (the OOM reaper frees the
    /// address space in bulk); its file pages stay in the cache as once-read pages.
    fn kill(&mut self, j: usize) -> u64 {
        let now = self.now;
        let p = &mut self.procs[j];
        let freed = p.rss();
        self.free.contig += freed;
        self.cache_cold += p.cache_hot;
        p.hot_res = 0;
        p.cold_res = 0;
        p.hot_sw = 0;
        p.cold_sw = 0;
        p.cache_hot = 0;
        p.cache_shadow = 0;
        p.alive = false;
        p.restart_at = p.spec.restart_after.map(|d| now + d);
        // Whole lists: they may also hold pages granted to an allocation of this
        // process that is still in progress (see `alloc_for`).
        let k = j as u32;
        self.pages.mv_all(Owner::AnonHot(k), Owner::FreeContig);
        self.pages.mv_all(Owner::AnonCold(k), Owner::FreeContig);
        self.pages.mv_all(Owner::CacheHot(k), Owner::CacheCold);
        freed
    }

    /// Allocates up to `n` pages for `who`, reclaiming as its allocation context
    /// allows; returns the pages granted.
    fn alloc(&mut self, n: u64, who: Requester, to: Owner) -> u64 {
        let took = self.take(n, who, to);
        self.delta.touched += took.untouched;
        took.total()
    }

    /// Takes up to `n` free pages, reclaiming first when the allocation would dip below
    /// the low watermark (kswapd brings free memory back to `high`). Ordinary
    /// allocations may use free pages down to `min`.
    fn take(&mut self, n: u64, who: Requester, to: Owner) -> Free {
        let free = self.free.total();
        if free >= n + self.wm.low {
            return self.take_free(n, to);
        }
        if who == Requester::ColdCache {
            // Streaming reads do not push anything out but older once-read pages,
            // which they recycle one for one (cache trim mode): no net growth.
            let room = free.saturating_sub(self.wm.high);
            return self.take_free(n.min(room), to);
        }
        self.reclaim(n + self.wm.high - free, who);
        let floor = match who {
            Requester::Balloon(_) => self.wm.low,
            _ => self.wm.min,
        };
        let grant = n.min(self.free.total().saturating_sub(floor));
        self.take_free(grant, to)
    }

    /// Takes `n` free pages (at most what is free) for `to`, counts and indices alike.
    fn take_free(&mut self, n: u64, to: Owner) -> Free {
        let took = self.free.take(n);
        let moved = self.pages.take_free(n, to);
        debug_assert_eq!(
            (moved.untouched, moved.scattered, moved.contig),
            (took.untouched, took.scattered, took.contig)
        );
        took
    }

    /// Frees at least `want` pages if it can, in Linux's order (module doc). Returns
    /// the pages freed; they become scattered free pages.
    fn reclaim(&mut self, want: u64, who: Requester) -> u64 {
        let may_swap = !matches!(who, Requester::Balloon(Driver::Windows));
        let mut got = self.drop_cold_cache(want);
        if may_swap && self.swappiness > 0 {
            got += self.swap_out(want.saturating_sub(got), false);
        }
        if got < want {
            // Hot cache and hot anon, weighted by swappiness (anon ≈ swappiness,
            // file ≈ 200 − swappiness).
            let rest = want - got;
            let anon_part = if may_swap {
                rest * self.swappiness / 200
            } else {
                0
            };
            got += self.evict_hot_cache(rest - anon_part);
            if may_swap {
                got += self.swap_out(want.saturating_sub(got), true);
            }
            got += self.evict_hot_cache(want.saturating_sub(got));
        }
        if may_swap && got < want {
            // swappiness 0: anon only once the file pages are gone.
            got += self.swap_out(want - got, false);
            got += self.swap_out(want.saturating_sub(got), true);
        }
        got
    }

    fn drop_cold_cache(&mut self, n: u64) -> u64 {
        let k = n.min(self.cache_cold);
        self.cache_cold -= k;
        self.free.scattered += k;
        self.pages.mv(Owner::CacheCold, Owner::FreeScattered, k);
        self.counters.cache_reclaimed += k;
        k
    }

    /// Evicts pages of the processes' file working sets, in proportion to their size;
    /// each evicted page leaves a shadow so that its re-read counts as a refault.
    fn evict_hot_cache(&mut self, n: u64) -> u64 {
        let sizes: Vec<u64> = self.procs.iter().map(|p| p.cache_hot).collect();
        let parts = split_proportional(&sizes, n);
        for (j, (p, &k)) in self.procs.iter_mut().zip(&parts).enumerate() {
            p.cache_hot -= k;
            p.cache_shadow += k;
            self.pages
                .mv(Owner::CacheHot(j as u32), Owner::FreeScattered, k);
        }
        let k: u64 = parts.iter().sum();
        self.free.scattered += k;
        self.counters.cache_reclaimed += k;
        k
    }

    /// Swaps out resident anon pages (cold or hot) in proportion to each process's
    /// share, as far as free swap slots allow.
    fn swap_out(&mut self, n: u64, hot: bool) -> u64 {
        let room = self
            .swap_total
            .saturating_sub(self.swap_used())
            .min(self.swap_budget);
        let sizes: Vec<u64> = self
            .procs
            .iter()
            .map(|p| if hot { p.hot_res } else { p.cold_res })
            .collect();
        let parts = split_proportional(&sizes, n.min(room));
        for (j, (p, &k)) in self.procs.iter_mut().zip(&parts).enumerate() {
            if hot {
                p.hot_res -= k;
                p.hot_sw += k;
            } else {
                p.cold_res -= k;
                p.cold_sw += k;
            }
            // Guest swap: the content goes to the guest's disk, the index to the free pool.
            self.pages.mv(anon_owner(j, hot), Owner::FreeScattered, k);
        }
        let k: u64 = parts.iter().sum();
        self.free.scattered += k;
        self.counters.swap_out += k;
        self.swap_budget -= k;
        k
    }

    /// Reclaim is waiting for swap writeback: this step's write budget is spent while
    /// swap slots and resident anon remain. The allocation stalls until the next step
    /// instead of calling the OOM killer (the kernel keeps retrying while reclaim
    /// makes progress).
    fn swap_throttled(&self) -> bool {
        self.swap_budget == 0
            && self.swap_used() < self.swap_total
            && self.anon_resident() > 0
            && self.swappiness > 0
    }
}

/// The owner of process `i`'s resident hot or cold anon pages.
fn anon_owner(i: usize, hot: bool) -> Owner {
    if hot {
        Owner::AnonHot(i as u32)
    } else {
        Owner::AnonCold(i as u32)
    }
}

/// Splits `n` (at most `Σ sizes`) in proportion to `sizes`, integer-exact: floors
/// first, the remainder to the first entries with room.
fn split_proportional(sizes: &[u64], n: u64) -> Vec<u64> {
    let total: u64 = sizes.iter().sum();
    let n = n.min(total);
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let mut out: Vec<u64> = sizes
        .iter()
        .map(|&s| (u128::from(n) * u128::from(s) / u128::from(total)) as u64)
        .collect();
    let mut rest = n - out.iter().sum::<u64>();
    for (o, &s) in out.iter_mut().zip(sizes) {
        let extra = (s - *o).min(rest);
        *o += extra;
        rest -= extra;
    }
    out
}
