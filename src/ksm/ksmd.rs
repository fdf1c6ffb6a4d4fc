//! ksmd: the kernel samepage merging daemon of Linux 6.x (`mm/ksm.c`), page by page.
//!
//! **The scan.** ksmd walks a circular list of mm slots (processes that marked memory
//! `MADV_MERGEABLE`), and inside each mm the present anonymous pages of its mergeable
//! areas in address order (`scan_get_next_rmap_item`). Each page it hands on is
//! processed by `cmp_and_merge_page`, which consumes one unit of the batch budget
//! (`pages_to_scan`) and counts in `pages_scanned`. Reaching the end of the list completes
//! a *full scan* (`full_scans`) and ends the batch, whatever budget is left. Between
//! batches ksmd sleeps `sleep_millisecs` (see [`super::timing`]).
//!
//! **Two trees.** The *stable tree* holds the KSM pages: write-protected pages that
//! several mappings share, sorted by content. The *unstable tree* holds ordinary pages
//! that did not change since the previous pass, sorted by content too, but since they are
//! writable it may go out of date, so it is thrown away at the start of every pass. A
//! page is first looked up in the stable tree (`stable_tree_search`): a match maps the
//! KSM page instead of the page (`try_to_merge_with_ksm_page`). Otherwise, if its checksum
//! is unchanged since the last visit, it is looked up in the unstable tree
//! (`unstable_tree_search_insert`): a match turns the pair into a new KSM page
//! (`try_to_merge_two_pages`) filed in the stable tree (`stable_tree_insert`); no match
//! inserts it. A page whose checksum changed only records the new checksum: every page
//! needs two visits before it can merge, and a page written between visits never gets
//! further (`pages_volatile`).
//!
//! **rmap_items.** Each visited page has an rmap_item (see [`super::mm`]) that is in the
//! stable tree (hanging off a KSM page's stable node), in the unstable tree, or in
//! neither. The counters are kept as upstream keeps them: `pages_shared` counts stable
//! nodes with at least one rmap_item, `pages_sharing` the further rmap_items,
//! `pages_unshared` the rmap_items flagged unstable, and `pages_volatile` is what is
//! left of all rmap_items. They change only when ksmd visits an rmap_item: a write to a
//! merged page (copy-on-write) or `MADV_UNMERGEABLE` shows in the counters when the scan
//! next reaches the page; an exit, in the next batch. `ksm_zero_pages` alone changes at
//! once.
//!
//! **Limits and extras.** A KSM page takes at most `max_page_sharing` rmap_items; more
//! pages of its content form further KSM pages, and the content's tree entry becomes a
//! chain of those *dups* (`stable_node_chains`, `stable_node_dups`). With
//! `use_zero_pages` zero-filled pages are replaced by the shared zero page instead
//! (`ksm_zero_pages`). With `merge_across_nodes=0` each NUMA node has its own trees.
//! Smart scan (`should_skip_rmap_item`) skips pages that repeatedly failed to merge, on
//! a growing schedule; the scan-time advisor retunes `pages_to_scan` at each pass end.
//!
//! **Contents are ids.** Page contents are `u64` ids (equal id = identical 4 KiB), the
//! checksum a 32-bit hash of the id ([`checksum`]; [`ZERO_CONTENT`] is the zero page).
//! The trees are hash maps keyed by content (stable) and by checksum (unstable): a
//! lookup meets the same page that the kernel's content-ordered rbtree walk would stop
//! at, because the kernel too compares whole contents. Which page pairs first is
//! decided by the order pages are visited, which follows the kernel's scan order
//! exactly (mm list order, address order, one page at a time), so results are the same
//! page for page. What the model leaves out is documented where it matters: side work
//! of rbtree walks on unrelated nodes (`stable.rs`), page migration, failed merges
//! (page locks, GUP pins, failed THP splits), and swap. THP-backed mms split the huge
//! page of a page before merging it ([`super::thp`]).

use super::hash::{mix64, IntMap};
use super::mm::{
    Mm, MmState, Pages, Smart, ITEM, MERGEABLE, ODD_PASS, PTE_ANON, PTE_KSM, PTE_MASK, PTE_NONE,
    PTE_ZERO, STABLE, UNSTABLE,
};
use super::stable::{Root, StableTree, NONE};
use super::thp::HugeRegions;
use super::timing::{
    msecs_to_jiffies, scan_time_advisor, AdvisorCtx, AdvisorMode, AdvisorTunables, CostModel,
};
use super::trace::{Counters, ProcessCounters};
use super::unstable::UnstableTable;
use crate::engine::SimTime;

/// How many pages ahead of the scan cursor [`Ksmd::prefetch`] looks.
const PREFETCH_AHEAD: u32 = 12;

/// Content id of a zero-filled page.
pub const ZERO_CONTENT: u64 = 0;
/// Bytes per page (x86-64).
pub const PAGE_SIZE: i64 = 4096;
/// `sizeof(struct ksm_rmap_item)` on 64-bit kernels, used by `general_profit`.
pub const RMAP_ITEM_SIZE: i64 = 64;

/// The 32-bit checksum of a content (stands for `xxhash(page, PAGE_SIZE, 0)`).
pub fn checksum(content: u64) -> u32 {
    (mix64(content ^ 0x6b73_6d64_5f63_736d) >> 32) as u32
}

/// Handle of an mm (a process address space) inside a [`Ksmd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MmId(pub u32);

/// Options of a new mm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmOptions {
    /// Memory backed by hugetlbfs: `MADV_MERGEABLE` is ignored, KSM never sees it.
    pub hugetlb: bool,
    /// Transparent huge pages back the memory (see [`super::thp`]): faults map 2 MiB
    /// huge pages, which ksmd splits before it merges a page of one.
    pub thp: bool,
    /// `(first page, NUMA node)` runs; empty = all pages on node 0.
    pub numa: Vec<(u32, u16)>,
}

/// A call on an mm that does not exist (any more) or a page range outside it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KsmError {
    #[error("no mm {0}")]
    NoSuchMm(u32),
    #[error("mm {0} has exited")]
    Exited(u32),
    #[error("pages {start}..{end} are outside mm {mm} ({len} pages)")]
    Range {
        mm: u32,
        start: u32,
        end: u32,
        len: u32,
    },
    #[error("no room for {0} more pages (at most 2^32 pages in all live mms)")]
    TooManyPages(u32),
}

/// A sysfs write the kernel refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SysfsError {
    #[error("EINVAL: invalid value")]
    Invalid,
    #[error("EBUSY: KSM pages exist (write run=2 first)")]
    Busy,
}

/// A write to `/sys/kernel/mm/ksm/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysfs {
    Run(u64),
    PagesToScan(u64),
    SleepMillisecs(u64),
    SmartScan(u64),
    UseZeroPages(u64),
    MaxPageSharing(u64),
    MergeAcrossNodes(u64),
    StableNodeChainsPruneMillisecs(u64),
    AdvisorMode(AdvisorMode),
    AdvisorTargetScanTime(u64),
    AdvisorMaxCpu(u64),
    AdvisorMinPagesToScan(u64),
    AdvisorMaxPagesToScan(u64),
}

impl std::fmt::Display for Sysfs {
    /// `file=value` as an admin would `echo value > /sys/kernel/mm/ksm/file`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (file, value) = match *self {
            Sysfs::Run(v) => ("run", v),
            Sysfs::PagesToScan(v) => ("pages_to_scan", v),
            Sysfs::SleepMillisecs(v) => ("sleep_millisecs", v),
            Sysfs::SmartScan(v) => ("smart_scan", v),
            Sysfs::UseZeroPages(v) => ("use_zero_pages", v),
            Sysfs::MaxPageSharing(v) => ("max_page_sharing", v),
            Sysfs::MergeAcrossNodes(v) => ("merge_across_nodes", v),
            Sysfs::StableNodeChainsPruneMillisecs(v) => ("stable_node_chains_prune_millisecs", v),
            Sysfs::AdvisorMode(AdvisorMode::None) => return f.write_str("advisor_mode=none"),
            Sysfs::AdvisorMode(AdvisorMode::ScanTime) => {
                return f.write_str("advisor_mode=scan-time")
            }
            Sysfs::AdvisorTargetScanTime(v) => ("advisor_target_scan_time", v),
            Sysfs::AdvisorMaxCpu(v) => ("advisor_max_cpu", v),
            Sysfs::AdvisorMinPagesToScan(v) => ("advisor_min_pages_to_scan", v),
            Sysfs::AdvisorMaxPagesToScan(v) => ("advisor_max_pages_to_scan", v),
        };
        write!(f, "{file}={value}")
    }
}

/// The sysfs tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunables {
    pub run: u8,
    pub pages_to_scan: u64,
    pub sleep_millisecs: u64,
    pub smart_scan: bool,
    pub use_zero_pages: bool,
    pub max_page_sharing: u64,
    pub merge_across_nodes: bool,
    pub stable_node_chains_prune_millisecs: u64,
    pub advisor_mode: AdvisorMode,
    pub advisor: AdvisorTunables,
}

impl Tunables {
    /// The sysfs writes that take a freshly booted kernel to these values: the
    /// advisor's knobs before its mode (the mode resets `pages_to_scan`), and `run`
    /// last, so ksmd starts with everything else in place.
    pub fn writes(&self) -> Vec<Sysfs> {
        let a = &self.advisor;
        let mut w = vec![
            Sysfs::MaxPageSharing(self.max_page_sharing),
            Sysfs::MergeAcrossNodes(u64::from(self.merge_across_nodes)),
            Sysfs::SmartScan(u64::from(self.smart_scan)),
            Sysfs::UseZeroPages(u64::from(self.use_zero_pages)),
            Sysfs::StableNodeChainsPruneMillisecs(self.stable_node_chains_prune_millisecs),
            Sysfs::SleepMillisecs(self.sleep_millisecs),
            Sysfs::AdvisorTargetScanTime(a.target_scan_time),
            Sysfs::AdvisorMaxCpu(a.max_cpu),
            Sysfs::AdvisorMinPagesToScan(a.min_pages_to_scan),
            Sysfs::AdvisorMaxPagesToScan(a.max_pages_to_scan),
            Sysfs::AdvisorMode(self.advisor_mode),
        ];
        if self.advisor_mode == AdvisorMode::None {
            w.push(Sysfs::PagesToScan(self.pages_to_scan));
        }
        w.push(Sysfs::Run(u64::from(self.run)));
        w
    }
}

impl Default for Tunables {
    /// Kernel defaults (ksmd stopped, as after boot).
    fn default() -> Self {
        Tunables {
            run: 0,
            pages_to_scan: 100,
            sleep_millisecs: 20,
            smart_scan: true,
            use_zero_pages: false,
            max_page_sharing: 256,
            merge_across_nodes: true,
            stable_node_chains_prune_millisecs: 2000,
            advisor_mode: AdvisorMode::None,
            advisor: AdvisorTunables::default(),
        }
    }
}

/// `/proc/<pid>/ksm_stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmStat {
    pub ksm_rmap_items: u64,
    pub ksm_zero_pages: u64,
    pub ksm_merging_pages: u64,
    pub ksm_process_profit: i64,
    pub ksm_merge_any: bool,
    pub ksm_mergeable: bool,
}

impl From<MmStat> for ProcessCounters {
    fn from(s: MmStat) -> Self {
        ProcessCounters {
            ksm_rmap_items: s.ksm_rmap_items,
            ksm_zero_pages: s.ksm_zero_pages,
            ksm_merging_pages: s.ksm_merging_pages,
            ksm_process_profit: s.ksm_process_profit,
        }
    }
}

/// What a page of an mm currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    NotPresent,
    Private {
        content: u64,
    },
    /// Maps a KSM page (identified by its stable node index).
    Ksm {
        content: u64,
        node: u32,
    },
    /// Maps the zero page, placed by KSM.
    KsmZero,
}

/// The counters at the end of one full scan.
#[derive(Clone, Debug, PartialEq)]
pub struct PassEnd {
    pub time: SimTime,
    pub counters: Counters,
    /// `ksm_stat` of every mm ever added, by [`MmId`] (`None` once exited).
    pub mms: Vec<Option<ProcessCounters>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Thread {
    /// Waiting for `run=1` and a registered mm.
    Idle,
    /// Next batch starts at this time.
    Sleeping(SimTime),
    /// In a batch with this much budget left; the next step starts at `clock`.
    Batch { left: u64 },
}

/// Reference to one page: mm index and page index packed into a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageRef {
    mm: u32,
    page: u32,
}

impl PageRef {
    fn pack(self) -> u64 {
        (u64::from(self.mm) << 32) | u64::from(self.page)
    }
    fn unpack(v: u64) -> PageRef {
        PageRef {
            mm: (v >> 32) as u32,
            page: v as u32,
        }
    }
}

/// `skip_age`: how many passes smart scan skips a page of this age.
fn skip_age(age: u8) -> u8 {
    match age {
        0..=3 => 1,
        4..=5 => 2,
        6..=8 => 4,
        _ => 8,
    }
}

/// The KSM daemon with everything it owns: mm slots, rmap_items, both trees, counters,
/// tunables and its own clock.
pub struct Ksmd {
    tun: Tunables,
    cost: CostModel,
    numa_nodes: u16,
    mms: Vec<Mm>,
    /// mm slot list in scan order (indices into `mms`).
    list: Vec<u32>,
    /// Slot the scan cursor is on (`None` = the list head, between passes).
    cursor: Option<usize>,
    /// Next page index to look at in the cursor's mm.
    scan_addr: u32,
    /// Completed full scans (`ksm_scan.seqnr`).
    seqnr: u64,
    stable: StableTree,
    /// Unstable trees per NUMA node: checksum → global page index (see
    /// `unstable_tree_search_insert`).
    unstable: Vec<UnstableTable>,
    /// Live mms' page ranges in the global page numbering: `(base, pages, mm)` by base.
    spaces: Vec<(u32, u32, u32)>,
    /// Free ranges of the global page numbering, by base.
    free_space: Vec<(u32, u32)>,
    /// rmap_items still hanging off a stable node whose page they no longer map
    /// (written, unmapped, unmerged): what `remove_node_from_stable_tree` must walk
    /// when the node turns out stale.
    detached: IntMap<u32, Vec<u64>>,
    pages_shared: u64,
    pages_sharing: u64,
    pages_unshared: u64,
    rmap_items: u64,
    pages_scanned: u64,
    pages_skipped: u64,
    zero_pages: u64,
    /// Σ mapcount over all KSM pages, and how many KSM pages are mapped at all: the
    /// physical memory merging saves right now (not what the lagging sysfs counters say).
    ksm_mappings: u64,
    ksm_pages_mapped: u64,
    thread: Thread,
    clock: SimTime,
    cpu_ns: u64,
    advisor: AdvisorCtx,
    pass_log: Option<Vec<PassEnd>>,
}

impl Default for Ksmd {
    fn default() -> Self {
        Ksmd::new(1)
    }
}

impl Ksmd {
    /// A ksmd on a host with `numa_nodes` NUMA nodes, kernel defaults (run=0).
    pub fn new(numa_nodes: u16) -> Self {
        Ksmd {
            tun: Tunables::default(),
            cost: CostModel::default(),
            numa_nodes: numa_nodes.max(1),
            mms: Vec::new(),
            list: Vec::new(),
            cursor: None,
            scan_addr: 0,
            seqnr: 0,
            stable: StableTree::new(1),
            unstable: vec![UnstableTable::default()],
            spaces: Vec::new(),
            free_space: vec![(0, u32::MAX)],
            detached: IntMap::default(),
            pages_shared: 0,
            pages_sharing: 0,
            pages_unshared: 0,
            rmap_items: 0,
            pages_scanned: 0,
            pages_skipped: 0,
            zero_pages: 0,
            ksm_mappings: 0,
            ksm_pages_mapped: 0,
            thread: Thread::Idle,
            clock: SimTime::ZERO,
            cpu_ns: 0,
            advisor: AdvisorCtx::default(),
            pass_log: None,
        }
    }

    /// Replaces the CPU cost model.
    pub fn with_cost_model(mut self, cost: CostModel) -> Self {
        self.cost = cost;
        self
    }

    pub fn cost_model(&self) -> &CostModel {
        &self.cost
    }

    pub fn tunables(&self) -> &Tunables {
        &self.tun
    }

    /// Keep a [`PassEnd`] record of every full scan (drain with [`Ksmd::drain_pass_ends`]).
    pub fn record_pass_ends(&mut self, on: bool) {
        self.pass_log = if on { Some(Vec::new()) } else { None };
    }

    pub fn drain_pass_ends(&mut self) -> Vec<PassEnd> {
        self.pass_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    // ----- mms -----------------------------------------------------------------

    /// A new process with `pages` pages of one private anonymous mapping, none present
    /// yet and none mergeable. Fails only when the live mms would hold more than 2^32
    /// pages together.
    pub fn add_mm(&mut self, pages: u32, opts: MmOptions) -> Result<MmId, KsmError> {
        let numa = opts
            .numa
            .into_iter()
            .map(|(p, n)| (p, n.min(self.numa_nodes - 1)))
            .collect();
        let base = self.alloc_space(pages)?;
        let id = self.mms.len() as u32;
        let mut mm = Mm::new(pages, base, numa, opts.hugetlb);
        if opts.thp && !opts.hugetlb {
            mm.thp = Some(HugeRegions::new(pages));
        }
        self.mms.push(mm);
        self.insert_space(base, pages, id);
        Ok(MmId(id))
    }

    /// First fit in the free ranges of the global page numbering.
    fn alloc_space(&mut self, pages: u32) -> Result<u32, KsmError> {
        let i = self
            .free_space
            .iter()
            .position(|(_, len)| *len >= pages)
            .ok_or(KsmError::TooManyPages(pages))?;
        let (base, len) = self.free_space[i];
        if len == pages {
            self.free_space.remove(i);
        } else {
            self.free_space[i] = (base + pages, len - pages);
        }
        Ok(base)
    }

    fn insert_space(&mut self, base: u32, pages: u32, mm: u32) {
        let at = self.spaces.partition_point(|s| s.0 < base);
        self.spaces.insert(at, (base, pages, mm));
    }

    fn free_space_of(&mut self, mm: u32) {
        let Some(i) = self.spaces.iter().position(|s| s.2 == mm) else {
            return;
        };
        let (base, len, _) = self.spaces.remove(i);
        if len == 0 {
            return;
        }
        let at = self.free_space.partition_point(|f| f.0 < base);
        self.free_space.insert(at, (base, len));
        // coalesce with the neighbours
        if at + 1 < self.free_space.len() {
            let (b, l) = self.free_space[at];
            let (nb, nl) = self.free_space[at + 1];
            if b.checked_add(l) == Some(nb) {
                self.free_space[at] = (b, l.saturating_add(nl));
                self.free_space.remove(at + 1);
            }
        }
        if at > 0 {
            let (pb, pl) = self.free_space[at - 1];
            let (b, l) = self.free_space[at];
            if pb.checked_add(pl) == Some(b) {
                self.free_space[at - 1] = (pb, pl.saturating_add(l));
                self.free_space.remove(at);
            }
        }
    }

    fn global(&self, r: PageRef) -> u32 {
        self.mms[r.mm as usize].base + r.page
    }

    fn page_at_global(&self, g: u32) -> Option<PageRef> {
        let i = self.spaces.partition_point(|s| s.0 <= g).checked_sub(1)?;
        let (base, len, mm) = self.spaces[i];
        (g - base < len).then_some(PageRef { mm, page: g - base })
    }

    fn live_mm(&self, mm: MmId) -> Result<&Mm, KsmError> {
        let m = self
            .mms
            .get(mm.0 as usize)
            .ok_or(KsmError::NoSuchMm(mm.0))?;
        if m.state != MmState::Active {
            return Err(KsmError::Exited(mm.0));
        }
        Ok(m)
    }

    fn check_range(&self, mm: MmId, start: u32, end: u32) -> Result<(), KsmError> {
        let len = self.live_mm(mm)?.pages.len();
        if start > end || end > len {
            return Err(KsmError::Range {
                mm: mm.0,
                start,
                end,
                len,
            });
        }
        Ok(())
    }

    /// Writes `content` to a page: faults it in if absent, copies it if it maps a KSM
    /// page or the zero page (copy-on-write). ksmd notices at its next visit.
    pub fn write_page(&mut self, mm: MmId, page: u32, content: u64) -> Result<(), KsmError> {
        self.check_range(mm, page, page.saturating_add(1))?;
        self.write(PageRef { mm: mm.0, page }, content);
        Ok(())
    }

    /// `write_page` for every page of `start..end`, content from `f(page)`.
    pub fn populate(
        &mut self,
        mm: MmId,
        start: u32,
        end: u32,
        mut f: impl FnMut(u32) -> u64,
    ) -> Result<(), KsmError> {
        self.check_range(mm, start, end)?;
        for page in start..end {
            self.write(PageRef { mm: mm.0, page }, f(page));
        }
        Ok(())
    }

    /// `MADV_DONTNEED` / munmap of a range: pages go; rmap_items stay until ksmd passes.
    pub fn unmap(&mut self, mm: MmId, start: u32, end: u32) -> Result<(), KsmError> {
        self.check_range(mm, start, end)?;
        for page in start..end {
            self.zap(PageRef { mm: mm.0, page });
        }
        Ok(())
    }

    /// `MADV_DONTNEED` of part of a THP-backed 2 MiB region splits its PMD
    /// (`__split_huge_pmd`) before the pages go; call before [`Ksmd::unmap`].
    pub fn split_huge_pmd(&mut self, mm: MmId, page: u32) -> Result<(), KsmError> {
        self.check_range(mm, page, page.saturating_add(1))?;
        if let Some(h) = self.mms[mm.0 as usize].thp.as_mut() {
            h.split_pmd(page);
        }
        Ok(())
    }

    /// The THP state of a THP-backed mm (`None` otherwise).
    pub fn huge_regions(&self, mm: MmId) -> Option<&HugeRegions> {
        self.mms.get(mm.0 as usize)?.thp.as_ref()
    }

    /// `MADV_MERGEABLE` on a range (registers the mm with ksmd on first use).
    pub fn madvise_mergeable(
        &mut self,
        now: SimTime,
        mm: MmId,
        start: u32,
        end: u32,
    ) -> Result<(), KsmError> {
        self.check_range(mm, start, end)?;
        let m = &mut self.mms[mm.0 as usize];
        if m.hugetlb {
            return Ok(()); // vma_ksm_compatible: advice silently ignored
        }
        for f in &mut m.pages.flags[start as usize..end as usize] {
            if *f & MERGEABLE == 0 {
                *f |= MERGEABLE;
                m.mergeable_pages += 1;
            }
        }
        if !m.registered && start < end {
            self.ksm_enter(now, mm.0);
        }
        Ok(())
    }

    /// `MADV_UNMERGEABLE` on a range: every KSM page and KSM zero page in it is replaced
    /// by a private copy at once (`unmerge_ksm_pages`); the rmap_items go when ksmd
    /// next walks the mm.
    pub fn madvise_unmergeable(&mut self, mm: MmId, start: u32, end: u32) -> Result<(), KsmError> {
        self.check_range(mm, start, end)?;
        for page in start..end {
            let r = PageRef { mm: mm.0, page };
            if self.flags(r) & MERGEABLE != 0 {
                self.break_ksm(r);
                let m = &mut self.mms[mm.0 as usize];
                m.pages.flags[page as usize] &= !MERGEABLE;
                m.mergeable_pages -= 1;
            }
        }
        Ok(())
    }

    /// `prctl(PR_SET_MEMORY_MERGE, on)`: all of the mm mergeable (registering it), or
    /// unmerge and clear it all.
    pub fn set_merge_any(&mut self, now: SimTime, mm: MmId, on: bool) -> Result<(), KsmError> {
        let len = self.live_mm(mm)?.pages.len();
        if self.mms[mm.0 as usize].hugetlb {
            return Ok(());
        }
        if on {
            self.madvise_mergeable(now, mm, 0, len)?;
        } else if self.mms[mm.0 as usize].merge_any {
            self.madvise_unmergeable(mm, 0, len)?;
        }
        self.mms[mm.0 as usize].merge_any = on;
        Ok(())
    }

    /// The process exits: its pages are unmapped at once (`ksm_zero_pages` drops); its
    /// mm slot is freed now if ksmd holds nothing of it, else moved next in line for
    /// ksmd to free its rmap_items (`__ksm_exit`).
    pub fn exit_mm(&mut self, mm: MmId) -> Result<(), KsmError> {
        let len = self.live_mm(mm)?.pages.len();
        for page in 0..len {
            self.zap(PageRef { mm: mm.0, page });
        }
        let m = &mut self.mms[mm.0 as usize];
        m.state = MmState::Exiting;
        if !m.registered {
            self.release_mm(mm.0);
            return Ok(());
        }
        let Some(pos) = self.list.iter().position(|x| *x == mm.0) else {
            self.release_mm(mm.0);
            return Ok(());
        };
        if self.cursor == Some(pos) {
            return Ok(()); // ksmd is on it: it notices the exit at its next step
        }
        self.list_remove(pos);
        if self.mms[mm.0 as usize].rmap_items == 0 {
            self.release_mm(mm.0);
        } else {
            let at = self.cursor.map_or(0, |c| c + 1);
            self.list_insert(at, mm.0);
        }
        Ok(())
    }

    /// `fork()`: a child mm with the parent's mappings (KSM pages stay shared, with no
    /// rmap_items of the child's; private pages are copied; KSM-placed zero pages map as
    /// plain zero pages, not counted). Registered with ksmd if the parent is; its
    /// `ksm_stat` counters start at zero (6.18).
    pub fn fork_mm(&mut self, now: SimTime, parent: MmId) -> Result<MmId, KsmError> {
        let len = self.live_mm(parent)?.pages.len();
        let base = self.alloc_space(len)?;
        let p = &self.mms[parent.0 as usize];
        let mut child = Mm::new(len, base, p.numa.clone(), p.hugetlb);
        child.merge_any = p.merge_any;
        child.thp = p.thp.clone();
        let registered = p.registered;
        let mut ksm_maps = Vec::new();
        for i in 0..p.pages.len() as usize {
            let f = p.pages.flags[i];
            if f & MERGEABLE != 0 {
                child.pages.flags[i] |= MERGEABLE;
                child.mergeable_pages += 1;
            }
            match f & PTE_MASK {
                PTE_ANON => {
                    child.pages.flags[i] |= PTE_ANON;
                    child.pages.content[i] = p.pages.content[i];
                }
                PTE_KSM => {
                    child.pages.flags[i] |= PTE_KSM;
                    child.pages.node[i] = p.pages.node[i];
                    ksm_maps.push(p.pages.node[i]);
                }
                _ => {}
            }
        }
        for n in ksm_maps {
            self.add_mapping(n);
        }
        self.mms.push(child);
        let id = (self.mms.len() - 1) as u32;
        self.insert_space(base, len, id);
        if registered {
            self.ksm_enter(now, id);
        }
        Ok(MmId(id))
    }

    fn release_mm(&mut self, mm: u32) {
        self.free_space_of(mm);
        let m = &mut self.mms[mm as usize];
        m.state = MmState::Gone;
        m.registered = false;
        m.pages = Pages::default();
    }

    fn list_remove(&mut self, pos: usize) {
        self.list.remove(pos);
        if let Some(c) = self.cursor {
            if pos < c {
                self.cursor = Some(c - 1);
            }
        }
    }

    fn list_insert(&mut self, at: usize, mm: u32) {
        self.list.insert(at, mm);
        if let Some(c) = self.cursor {
            if at <= c {
                self.cursor = Some(c + 1);
            }
        }
    }

    /// `__ksm_enter`: link a new mm slot just behind the cursor (= at the tail between
    /// passes), or at the tail while run=2; wake ksmd if this is the first.
    fn ksm_enter(&mut self, now: SimTime, mm: u32) {
        let was_empty = self.list.is_empty();
        match self.cursor {
            Some(c) if self.tun.run != 2 => self.list_insert(c, mm),
            _ => self.list.push(mm),
        }
        self.mms[mm as usize].registered = true;
        if was_empty {
            self.wake(now);
        }
    }

    // ----- page-table changes (outside ksmd) -------------------------------------

    fn flags(&self, r: PageRef) -> u8 {
        self.mms[r.mm as usize].pages.flags[r.page as usize]
    }

    fn pages_mut(&mut self, mm: u32) -> &mut Pages {
        &mut self.mms[mm as usize].pages
    }

    fn set_pte(&mut self, r: PageRef, pte: u8) {
        let f = &mut self.pages_mut(r.mm).flags[r.page as usize];
        *f = (*f & !PTE_MASK) | pte;
    }

    /// The PTE stops mapping the KSM page of its node: the node loses a mapping, and
    /// the rmap_item (if it hangs off that node) is remembered as detached.
    fn drop_ksm_mapping(&mut self, r: PageRef) {
        let f = self.flags(r);
        let k = self.mms[r.mm as usize].pages.node[r.page as usize];
        self.remove_mapping(k);
        if f & STABLE != 0 {
            self.detached.entry(k).or_default().push(r.pack());
        } else {
            self.pages_mut(r.mm).node[r.page as usize] = NONE;
        }
    }

    fn drop_zero_mapping(&mut self, r: PageRef) {
        self.zero_pages = self.zero_pages.saturating_sub(1);
        let m = &mut self.mms[r.mm as usize];
        m.zero_pages = m.zero_pages.saturating_sub(1);
    }

    fn write(&mut self, r: PageRef, content: u64) {
        match self.flags(r) & PTE_MASK {
            PTE_KSM => self.drop_ksm_mapping(r),
            PTE_ZERO => self.drop_zero_mapping(r),
            PTE_NONE => {
                if let Some(h) = self.mms[r.mm as usize].thp.as_mut() {
                    h.fault(r.page);
                }
            }
            _ => {}
        }
        self.set_pte(r, PTE_ANON);
        self.pages_mut(r.mm).content[r.page as usize] = content;
    }

    fn zap(&mut self, r: PageRef) {
        match self.flags(r) & PTE_MASK {
            PTE_KSM => self.drop_ksm_mapping(r),
            PTE_ZERO => self.drop_zero_mapping(r),
            PTE_NONE => return,
            _ => {}
        }
        if let Some(h) = self.mms[r.mm as usize].thp.as_mut() {
            h.zap(r.page);
        }
        self.set_pte(r, PTE_NONE);
    }

    /// `try_to_merge_one_page` splits the huge page a page lies in before merging it.
    fn split_huge_page(&mut self, r: PageRef) {
        if let Some(h) = self.mms[r.mm as usize].thp.as_mut() {
            h.split_for_merge(r.page);
        }
    }

    /// `break_ksm`: a KSM page or KSM zero page becomes a private copy.
    fn break_ksm(&mut self, r: PageRef) {
        match self.flags(r) & PTE_MASK {
            PTE_KSM => {
                let k = self.mms[r.mm as usize].pages.node[r.page as usize];
                let content = self.stable.node(k).content;
                self.write(r, content);
            }
            PTE_ZERO => self.write(r, ZERO_CONTENT),
            _ => {}
        }
    }

    // ----- sysfs -------------------------------------------------------------------

    /// Writes a sysfs tunable at time `now`, with the kernel's checks and side effects.
    /// Writes that take `ksm_thread_mutex` (run, max_page_sharing, merge_across_nodes)
    /// first let a batch in progress finish, as the mutex makes them wait for it.
    pub fn set(&mut self, now: SimTime, w: Sysfs) -> Result<(), SysfsError> {
        let uint = |v: u64| u32::try_from(v).map_err(|_| SysfsError::Invalid);
        let boolean = |v: u64| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SysfsError::Invalid),
        };
        match w {
            Sysfs::Run(v) => {
                if v > 2 {
                    return Err(SysfsError::Invalid);
                }
                self.finish_batch();
                let v = v as u8;
                if self.tun.run != v {
                    self.tun.run = v;
                    if v == 2 {
                        self.unmerge_and_remove_all_rmap_items();
                    }
                }
                if v == 1 {
                    self.wake(now);
                }
            }
            Sysfs::PagesToScan(v) => {
                if self.tun.advisor_mode != AdvisorMode::None {
                    return Err(SysfsError::Invalid);
                }
                self.tun.pages_to_scan = u64::from(uint(v)?);
            }
            Sysfs::SleepMillisecs(v) => {
                let v = u64::from(uint(v)?);
                let changed = v != self.tun.sleep_millisecs;
                self.tun.sleep_millisecs = v;
                if changed {
                    if let Thread::Sleeping(w) = self.thread {
                        if w > now {
                            self.thread = Thread::Sleeping(now.max(self.clock));
                        }
                    }
                }
            }
            Sysfs::SmartScan(v) => self.tun.smart_scan = boolean(v)?,
            Sysfs::UseZeroPages(v) => self.tun.use_zero_pages = boolean(v)?,
            Sysfs::MaxPageSharing(v) => {
                if !(2..=i32::MAX as u64).contains(&v) {
                    return Err(SysfsError::Invalid);
                }
                if v == self.tun.max_page_sharing {
                    return Ok(());
                }
                self.finish_batch();
                if self.pages_shared != 0 || !self.remove_all_stable_nodes() {
                    return Err(SysfsError::Busy);
                }
                self.tun.max_page_sharing = v;
            }
            Sysfs::MergeAcrossNodes(v) => {
                let on = boolean(v)?;
                if on == self.tun.merge_across_nodes {
                    return Ok(());
                }
                self.finish_batch();
                if self.pages_shared != 0 || !self.remove_all_stable_nodes() {
                    return Err(SysfsError::Busy);
                }
                self.tun.merge_across_nodes = on;
                let trees = if on { 1 } else { usize::from(self.numa_nodes) };
                self.stable.set_trees(trees);
                self.unstable.resize_with(trees, UnstableTable::default);
            }
            Sysfs::StableNodeChainsPruneMillisecs(v) => {
                self.tun.stable_node_chains_prune_millisecs = u64::from(uint(v)?)
            }
            Sysfs::AdvisorMode(m) => {
                if m != self.tun.advisor_mode {
                    self.tun.advisor_mode = m;
                    match m {
                        AdvisorMode::None => self.tun.pages_to_scan = 100,
                        AdvisorMode::ScanTime => {
                            self.advisor = AdvisorCtx::default();
                            self.tun.pages_to_scan = self.tun.advisor.min_pages_to_scan;
                        }
                    }
                }
            }
            Sysfs::AdvisorTargetScanTime(v) => {
                if v < 1 {
                    return Err(SysfsError::Invalid);
                }
                self.tun.advisor.target_scan_time = v;
            }
            Sysfs::AdvisorMaxCpu(v) => self.tun.advisor.max_cpu = v,
            Sysfs::AdvisorMinPagesToScan(v) => self.tun.advisor.min_pages_to_scan = v,
            Sysfs::AdvisorMaxPagesToScan(v) => self.tun.advisor.max_pages_to_scan = v,
        }
        Ok(())
    }

    fn should_run(&self) -> bool {
        self.tun.run == 1 && !self.list.is_empty()
    }

    /// `wake_up_interruptible(&ksm_thread_wait)`: an idle ksmd that should run starts a
    /// batch now.
    fn wake(&mut self, now: SimTime) {
        if self.thread == Thread::Idle && self.should_run() {
            self.thread = Thread::Sleeping(now.max(self.clock));
        }
    }

    /// run=2: unmerge every KSM page and KSM zero page of every registered mm, free all
    /// rmap_items and stable nodes, reset `full_scans`.
    fn unmerge_and_remove_all_rmap_items(&mut self) {
        let list = self.list.clone();
        for mm in list {
            let len = self.mms[mm as usize].pages.len();
            if self.mms[mm as usize].state == MmState::Active {
                for page in 0..len {
                    let r = PageRef { mm, page };
                    if self.flags(r) & MERGEABLE != 0 {
                        self.break_ksm(r);
                    }
                }
            }
            for page in 0..len {
                let r = PageRef { mm, page };
                if self.flags(r) & ITEM != 0 {
                    self.remove_rmap_item_from_tree(r);
                    self.free_rmap_item(r);
                }
            }
            if self.mms[mm as usize].state != MmState::Active {
                if let Some(pos) = self.list.iter().position(|x| *x == mm) {
                    self.list.remove(pos);
                }
                self.release_mm(mm);
            }
        }
        self.remove_all_stable_nodes();
        for t in &mut self.unstable {
            t.clear();
        }
        self.seqnr = 0;
        self.cursor = None;
        self.scan_addr = 0;
    }

    /// `remove_all_stable_nodes`: frees every KSM page's node that nothing maps any more;
    /// false if some KSM page is still mapped (EBUSY for the knobs that need this).
    fn remove_all_stable_nodes(&mut self) -> bool {
        let mut all = true;
        for n in self.stable.live_nodes() {
            if self.stable.node(n).mapcount == 0 {
                self.remove_node_from_stable_tree(n);
            } else {
                all = false;
            }
        }
        for c in self.stable.live_chains() {
            if self.stable.chains[c as usize].dups.is_empty() {
                self.stable.free_chain(c);
            }
        }
        all
    }

    // ----- time --------------------------------------------------------------------

    /// When ksmd next does something (start of a batch, or its next page), `None` when
    /// it waits for run=1 or a registered mm.
    pub fn next_event_time(&self) -> Option<SimTime> {
        match self.thread {
            Thread::Idle => None,
            Thread::Sleeping(w) => Some(w),
            Thread::Batch { .. } => Some(self.clock),
        }
    }

    /// ksmd's total CPU time so far (ns), as `task_sched_runtime` would show.
    pub fn cpu_time_ns(&self) -> u64 {
        self.cpu_ns
    }

    /// Runs ksmd for every step (one page, or a batch start/end) that starts before `t`,
    /// and returns the counters then.
    pub fn run_until(&mut self, t: SimTime) -> Counters {
        loop {
            match self.thread {
                Thread::Idle => break,
                Thread::Sleeping(w) => {
                    if w >= t {
                        break;
                    }
                    self.begin_batch(w);
                }
                Thread::Batch { .. } => {
                    if self.clock >= t {
                        break;
                    }
                    self.batch_step();
                }
            }
        }
        self.counters()
    }

    /// Runs ksmd until `n` more full scans have completed (or `limit` is reached) and
    /// returns the counters then; the time is [`Ksmd::now`].
    pub fn run_full_scans(&mut self, n: u64, limit: SimTime) -> Counters {
        let target = self.seqnr.saturating_add(n);
        while self.seqnr < target {
            match self.thread {
                Thread::Idle => break,
                Thread::Sleeping(w) => {
                    if w >= limit {
                        break;
                    }
                    self.begin_batch(w);
                }
                Thread::Batch { .. } => {
                    if self.clock >= limit {
                        break;
                    }
                    self.batch_step();
                }
            }
        }
        self.counters()
    }

    /// ksmd's own clock: the end of its last step.
    pub fn now(&self) -> SimTime {
        self.clock
    }

    fn finish_batch(&mut self) {
        while let Thread::Batch { .. } = self.thread {
            self.batch_step();
        }
    }

    fn charge(&mut self, ns: u64) {
        self.clock = self.clock + SimTime(ns);
        self.cpu_ns += ns;
    }

    fn begin_batch(&mut self, at: SimTime) {
        self.clock = at.max(self.clock);
        if self.should_run() {
            self.thread = Thread::Batch {
                left: self.tun.pages_to_scan,
            };
            self.charge(self.cost.batch_ns);
        } else {
            self.thread = Thread::Idle;
        }
    }

    /// One iteration of `ksm_do_scan`.
    fn batch_step(&mut self) {
        let Thread::Batch { left } = self.thread else {
            return;
        };
        if left == 0 {
            self.end_batch();
            return;
        }
        match self.scan_get_next_rmap_item() {
            Some(r) => {
                self.cmp_and_merge_page(r);
                self.pages_scanned += 1;
                self.thread = Thread::Batch { left: left - 1 };
            }
            None => self.end_batch(),
        }
    }

    fn end_batch(&mut self) {
        self.thread = if self.should_run() {
            Thread::Sleeping(self.cost.wake_after(self.clock, self.tun.sleep_millisecs))
        } else {
            Thread::Idle
        };
    }

    // ----- the scanner -----------------------------------------------------------

    /// `scan_get_next_rmap_item`: the next page to hand to `cmp_and_merge_page`, or
    /// `None` at the end of a full scan (or with no mm registered).
    fn scan_get_next_rmap_item(&mut self) -> Option<PageRef> {
        if self.list.is_empty() {
            return None;
        }
        if self.cursor.is_none() {
            // Start of a pass: the unstable trees are thrown away.
            if self.tun.advisor_mode == AdvisorMode::ScanTime {
                self.advisor.start_scan = self.clock;
            }
            for t in &mut self.unstable {
                t.reset();
            }
            self.cursor = Some(0);
            self.scan_addr = 0;
        }
        loop {
            let idx = self.cursor?;
            let mm = *self.list.get(idx)?;
            let len = self.mms[mm as usize].pages.len();
            if self.mms[mm as usize].state == MmState::Active {
                while self.scan_addr < len {
                    let r = PageRef {
                        mm,
                        page: self.scan_addr,
                    };
                    let f = self.flags(r);
                    let pte = f & PTE_MASK;
                    self.scan_addr += 1;
                    if f & MERGEABLE != 0 && (pte == PTE_ANON || pte == PTE_KSM) {
                        if f & ITEM == 0 {
                            self.alloc_rmap_item(r);
                        }
                        if self.should_skip_rmap_item(r) {
                            self.charge(self.cost.skip_ns);
                            continue;
                        }
                        self.prefetch(PageRef {
                            mm,
                            page: r.page + PREFETCH_AHEAD,
                        });
                        return Some(r);
                    }
                    // Nothing to scan here: an rmap_item left from an earlier pass is
                    // stale (get_next_rmap_item frees those below the next address).
                    if f & ITEM != 0 {
                        self.remove_rmap_item_from_tree(r);
                        self.free_rmap_item(r);
                        self.charge(self.cost.free_item_ns);
                    }
                    self.charge(self.cost.walk_ns);
                }
            } else {
                // Exiting: every rmap_item goes (remove_trailing_rmap_items from 0).
                for page in 0..len {
                    let r = PageRef { mm, page };
                    if self.flags(r) & ITEM != 0 {
                        self.remove_rmap_item_from_tree(r);
                        self.free_rmap_item(r);
                        self.charge(self.cost.free_item_ns);
                    }
                }
            }
            // End of this mm: drop its slot if it exited or has nothing mergeable left.
            let m = &self.mms[mm as usize];
            let next = if m.state != MmState::Active || m.mergeable_pages == 0 {
                self.list.remove(idx);
                if self.mms[mm as usize].state == MmState::Active {
                    self.mms[mm as usize].registered = false;
                } else {
                    self.release_mm(mm);
                }
                idx
            } else {
                idx + 1
            };
            if next >= self.list.len() {
                self.end_of_pass();
                return None;
            }
            self.cursor = Some(next);
            self.scan_addr = 0;
        }
    }

    fn end_of_pass(&mut self) {
        self.cursor = None;
        self.scan_addr = 0;
        if self.tun.advisor_mode == AdvisorMode::ScanTime {
            self.tun.pages_to_scan = scan_time_advisor(
                &mut self.advisor,
                &self.tun.advisor,
                self.tun.pages_to_scan,
                self.clock,
                self.cpu_ns,
            );
        }
        self.seqnr += 1;
        if self.pass_log.is_some() {
            let entry = PassEnd {
                time: self.clock,
                counters: self.counters(),
                mms: (0..self.mms.len() as u32)
                    .map(|i| self.mm_stat(MmId(i)).map(ProcessCounters::from))
                    .collect(),
            };
            if let Some(log) = self.pass_log.as_mut() {
                log.push(entry);
            }
        }
    }

    fn alloc_rmap_item(&mut self, r: PageRef) {
        let p = r.page as usize;
        let m = &mut self.mms[r.mm as usize];
        m.pages.flags[p] = (m.pages.flags[p] & !(STABLE | UNSTABLE)) | ITEM;
        m.pages.checksum[p] = 0;
        m.pages.smart[p] = 0;
        m.rmap_items += 1;
        self.rmap_items += 1;
    }

    fn free_rmap_item(&mut self, r: PageRef) {
        let m = &mut self.mms[r.mm as usize];
        m.pages.flags[r.page as usize] &= !ITEM;
        m.rmap_items -= 1;
        self.rmap_items -= 1;
    }

    /// `should_skip_rmap_item` (smart scan).
    fn should_skip_rmap_item(&mut self, r: PageRef) -> bool {
        if !self.tun.smart_scan || self.flags(r) & PTE_MASK == PTE_KSM {
            return false;
        }
        let p = r.page as usize;
        let pages = self.pages_mut(r.mm);
        let smart = Smart(pages.smart[p]);
        let age = smart.age();
        let skips = smart.remaining_skips();
        let aged = age.saturating_add(1).min(Smart::AGE_MAX);
        if age < 3 {
            pages.smart[p] = Smart::new(aged, skips).0;
            return false;
        }
        if skips == 0 {
            pages.smart[p] = Smart::new(aged, skip_age(age)).0;
            return false;
        }
        pages.smart[p] = Smart::new(aged, skips - 1).0;
        self.pages_skipped += 1;
        self.remove_rmap_item_from_tree(r);
        true
    }

    /// Prefetches the unstable-table slot the page's content would be looked up in
    /// (a hint only: the content may change before ksmd gets there).
    fn prefetch(&self, r: PageRef) {
        let pages = &self.mms[r.mm as usize].pages;
        let Some(&content) = pages.content.get(r.page as usize) else {
            return;
        };
        if let Some(t) = self.unstable.get(usize::from(self.tree_nid(r))) {
            t.prefetch(checksum(content));
        }
    }

    fn tree_nid(&self, r: PageRef) -> u16 {
        if self.tun.merge_across_nodes {
            0
        } else {
            self.mms[r.mm as usize].nid(r.page)
        }
    }

    /// `cmp_and_merge_page`.
    fn cmp_and_merge_page(&mut self, r: PageRef) {
        let p = r.page as usize;
        let f = self.flags(r);
        let mut page_node = NONE;
        let mut cs = 0;
        let content;
        if f & PTE_MASK == PTE_KSM {
            let k = self.mms[r.mm as usize].pages.node[p];
            if f & STABLE != 0 {
                // Already hangs off the KSM page it maps: the common revisit.
                self.charge(self.cost.ksm_revisit_ns);
                return;
            }
            // A KSM page mapped without our rmap_item (forked): join its node, beyond
            // max_page_sharing if need be (upstream's max_page_sharing_bypass only
            // silences the warning).
            page_node = k;
            content = self.stable.node(k).content;
        } else {
            self.remove_rmap_item_from_tree(r);
            content = self.mms[r.mm as usize].pages.content[p];
            cs = checksum(content);
            let pages = self.pages_mut(r.mm);
            if pages.checksum[p] != cs {
                pages.checksum[p] = cs;
                self.charge(self.cost.volatile_ns);
                return;
            }
            if self.tun.use_zero_pages && cs == checksum(ZERO_CONTENT) && content == ZERO_CONTENT {
                // try_to_merge_with_zero_page
                self.split_huge_page(r);
                self.set_pte(r, PTE_ZERO);
                self.zero_pages += 1;
                self.mms[r.mm as usize].zero_pages += 1;
                self.charge(self.cost.zero_merge_ns);
                return;
            }
        }
        let nid = self.tree_nid(r);
        let found = if page_node != NONE {
            Some(page_node)
        } else {
            self.stable_tree_search(nid, content)
        };
        if let Some(k) = found {
            // try_to_merge_with_ksm_page, then stable_tree_append.
            if page_node == NONE {
                self.map_ksm_page(r, k);
            }
            self.stable_tree_append(r, k);
            self.charge(self.cost.merge_ns);
            return;
        }
        match self.unstable_tree_search_insert(r, content, cs, nid) {
            Some(t) => {
                // try_to_merge_two_pages: our page becomes the KSM page, the tree page
                // is replaced by it; then stable_tree_insert and both appended.
                let k = self.stable.alloc_node(content, nid);
                self.map_ksm_page(r, k);
                self.map_ksm_page(t, k);
                self.remove_rmap_item_from_tree(t);
                self.stable_tree_insert(k);
                self.stable_tree_append(t, k);
                self.stable_tree_append(r, k);
                self.charge(self.cost.merge_pair_ns);
            }
            None => self.charge(self.cost.tree_ns),
        }
    }

    /// The page's PTE now maps KSM page `k` (replace_page, or the page itself upgraded).
    fn map_ksm_page(&mut self, r: PageRef, k: u32) {
        self.split_huge_page(r);
        self.set_pte(r, PTE_KSM);
        self.pages_mut(r.mm).node[r.page as usize] = k;
        self.add_mapping(k);
    }

    fn add_mapping(&mut self, k: u32) {
        let node = self.stable.node_mut(k);
        node.mapcount += 1;
        if node.mapcount == 1 {
            self.ksm_pages_mapped += 1;
        }
        self.ksm_mappings += 1;
    }

    fn remove_mapping(&mut self, k: u32) {
        let node = self.stable.node_mut(k);
        if node.mapcount == 0 {
            return;
        }
        node.mapcount -= 1;
        if node.mapcount == 0 {
            self.ksm_pages_mapped -= 1;
        }
        self.ksm_mappings -= 1;
    }

    fn is_page_sharing_candidate(&self, k: u32, offset: u64) -> bool {
        let len = u64::from(self.stable.node(k).len);
        len != 0 && len + offset < self.tun.max_page_sharing
    }

    /// `stable_tree_append`.
    fn stable_tree_append(&mut self, r: PageRef, k: u32) {
        let node = self.stable.node_mut(k);
        node.len += 1;
        if node.len > 1 {
            self.pages_sharing += 1;
        } else {
            self.pages_shared += 1;
        }
        let m = &mut self.mms[r.mm as usize];
        m.pages.flags[r.page as usize] |= STABLE;
        m.pages.node[r.page as usize] = k;
        m.merging_pages += 1;
    }

    /// `ksm_get_folio` on a node: false (and the node removed) if its KSM page is gone.
    fn node_alive(&mut self, k: u32) -> bool {
        if self.stable.node(k).mapcount == 0 {
            self.remove_node_from_stable_tree(k);
            false
        } else {
            true
        }
    }

    /// `remove_node_from_stable_tree`: every rmap_item still hanging off the node leaves
    /// it (`pages_sharing` for all but the last, `pages_shared` for the last).
    fn remove_node_from_stable_tree(&mut self, k: u32) {
        let len = u64::from(self.stable.node(k).len);
        if len > 0 {
            self.pages_shared -= 1;
            self.pages_sharing -= len - 1;
        }
        for v in self.detached.remove(&k).unwrap_or_default() {
            let r = PageRef::unpack(v);
            let m = &mut self.mms[r.mm as usize];
            let p = r.page as usize;
            if m.pages.flags[p] & STABLE != 0 && m.pages.node[p] == k {
                m.pages.flags[p] &= !STABLE;
                m.pages.node[p] = NONE;
                m.merging_pages -= 1;
            }
        }
        self.stable.unlink_and_free(k);
    }

    /// `remove_rmap_item_from_tree`.
    fn remove_rmap_item_from_tree(&mut self, r: PageRef) {
        let p = r.page as usize;
        let f = self.flags(r);
        if f & STABLE != 0 {
            let k = self.mms[r.mm as usize].pages.node[p];
            if !self.node_alive(k) {
                return; // remove_node_from_stable_tree took the item off too
            }
            let node = self.stable.node_mut(k);
            node.len -= 1;
            if node.len > 0 {
                self.pages_sharing -= 1;
            } else {
                self.pages_shared -= 1;
            }
            let m = &mut self.mms[r.mm as usize];
            m.merging_pages -= 1;
            m.pages.flags[p] &= !STABLE;
            if f & PTE_MASK != PTE_KSM {
                m.pages.node[p] = NONE;
                if let Some(list) = self.detached.get_mut(&k) {
                    if let Some(i) = list.iter().position(|v| *v == r.pack()) {
                        list.swap_remove(i);
                    }
                    if list.is_empty() {
                        self.detached.remove(&k);
                    }
                }
            }
        } else if f & UNSTABLE != 0 {
            let m = &mut self.mms[r.mm as usize];
            m.pages.flags[p] &= !(UNSTABLE | ODD_PASS);
            let key = m.pages.checksum[p];
            let this_pass = (f & ODD_PASS != 0) == (self.seqnr & 1 == 1);
            if this_pass {
                let g = self.global(r);
                let nid = usize::from(self.tree_nid(r));
                if let Some(t) = self.unstable.get_mut(nid) {
                    t.remove(key, g);
                }
            }
            self.pages_unshared -= 1;
        }
    }

    /// `stable_tree_search`: a KSM page of this content with room for one more sharer.
    fn stable_tree_search(&mut self, nid: u16, content: u64) -> Option<u32> {
        loop {
            match self.stable.root(nid, content)? {
                Root::Node(n) => {
                    if !self.node_alive(n) {
                        continue;
                    }
                    return self.is_page_sharing_candidate(n, 0).then_some(n);
                }
                Root::Chain(c) => match self.stable_node_dup(c, true) {
                    None => continue,
                    Some(found) => {
                        return self.is_page_sharing_candidate(found, 0).then_some(found)
                    }
                },
            }
        }
    }

    /// `stable_node_dup` (via `chain_prune`/`chain`): picks a dup of chain `c`, dropping
    /// stale dups on the way. Without pruning it takes the first dup with room; when the
    /// chain is due for pruning (every `stable_node_chains_prune_millisecs`) it walks all
    /// and takes the fullest with room. A single remaining dup collapses the chain; a
    /// chosen dup with room for two more moves to the head. `None` if no dup is left
    /// (the chain is freed).
    fn stable_node_dup(&mut self, c: u32, prune_requested: bool) -> Option<u32> {
        let now_j = self.cost.jiffies(self.clock);
        let period = msecs_to_jiffies(self.tun.stable_node_chains_prune_millisecs, self.cost.hz);
        let chain = &mut self.stable.chains[c as usize];
        let prune = prune_requested && now_j >= chain.prune_jiffies.saturating_add(period);
        if prune {
            chain.prune_jiffies = now_j;
        }
        let mut found: Option<u32> = None;
        let mut found_len = 0;
        let mut i = 0;
        while let Some(&d) = self.stable.chains[c as usize].dups.get(i) {
            if !self.node_alive(d) {
                continue; // removed from the chain at position i
            }
            i += 1;
            let cand = self.is_page_sharing_candidate(d, 0);
            let better = match found {
                None => true,
                Some(f) => {
                    cand && (!self.is_page_sharing_candidate(f, 0)
                        || self.stable.node(d).len > found_len)
                }
            };
            if better {
                found = Some(d);
                found_len = self.stable.node(d).len;
                if !prune && cand {
                    break;
                }
            }
        }
        match found {
            Some(f) => {
                let dups = &self.stable.chains[c as usize].dups;
                if dups.len() == 1 {
                    self.stable.collapse(c, f);
                } else if dups.first() != Some(&f) && self.is_page_sharing_candidate(f, 1) {
                    self.stable.move_to_front(c, f);
                }
                Some(f)
            }
            None => {
                self.stable.free_chain(c);
                None
            }
        }
    }

    /// `stable_tree_insert`: file new KSM page `k`; if its content is already there
    /// (every KSM page of it was full), the entry becomes or extends a chain.
    fn stable_tree_insert(&mut self, k: u32) {
        let (nid, content) = (self.stable.node(k).nid, self.stable.node(k).content);
        let now_j = self.cost.jiffies(self.clock);
        loop {
            match self.stable.root(nid, content) {
                None => {
                    self.stable.insert_plain(k);
                    return;
                }
                Some(Root::Node(n)) => {
                    if !self.node_alive(n) {
                        continue;
                    }
                    let c = self.stable.make_chain(n, now_j);
                    self.stable.add_dup(c, k);
                    return;
                }
                Some(Root::Chain(c)) => {
                    if self.stable_node_dup(c, false).is_none() {
                        continue;
                    }
                    match self.stable.root(nid, content) {
                        Some(Root::Chain(c)) => self.stable.add_dup(c, k),
                        Some(Root::Node(n)) => {
                            let c = self.stable.make_chain(n, now_j);
                            self.stable.add_dup(c, k);
                        }
                        None => self.stable.insert_plain(k),
                    }
                    return;
                }
            }
        }
    }

    /// `unstable_tree_search_insert`: a page of the unstable tree with the same
    /// content, or insert this one. The tree is keyed by the checksum the page had when
    /// inserted and the match is confirmed on the current contents (a tree page written
    /// since is no match, as in the kernel's walk; this page then takes its key). A tree
    /// page that is no longer a mergeable anonymous page ends the search without
    /// insertion, as `get_mergeable_page` failing does upstream.
    fn unstable_tree_search_insert(
        &mut self,
        r: PageRef,
        content: u64,
        cs: u32,
        nid: u16,
    ) -> Option<PageRef> {
        let table = usize::from(nid);
        if let Some(t) = self
            .unstable
            .get(table)
            .and_then(|t| t.get(cs))
            .and_then(|g| self.page_at_global(g))
        {
            let tm = &self.mms[t.mm as usize];
            if tm.state != MmState::Active {
                return None;
            }
            let tf = tm.pages.flags[t.page as usize];
            if tf & MERGEABLE == 0 || tf & PTE_MASK != PTE_ANON {
                return None;
            }
            if tm.pages.content[t.page as usize] == content {
                return Some(t);
            }
        }
        let g = self.global(r);
        let odd = if self.seqnr & 1 == 1 { ODD_PASS } else { 0 };
        self.mms[r.mm as usize].pages.flags[r.page as usize] |= UNSTABLE | odd;
        if let Some(t) = self.unstable.get_mut(table) {
            t.insert(cs, g);
        }
        self.pages_unshared += 1;
        None
    }

    // ----- counters ------------------------------------------------------------------

    /// The sysfs counters now.
    pub fn counters(&self) -> Counters {
        let volatile = self
            .rmap_items
            .saturating_sub(self.pages_shared + self.pages_sharing + self.pages_unshared);
        Counters {
            full_scans: self.seqnr,
            pages_scanned: self.pages_scanned,
            pages_shared: self.pages_shared,
            pages_sharing: self.pages_sharing,
            pages_unshared: self.pages_unshared,
            pages_volatile: volatile,
            pages_skipped: self.pages_skipped,
            ksm_zero_pages: self.zero_pages,
            general_profit: (self.pages_sharing + self.zero_pages) as i64 * PAGE_SIZE
                - self.rmap_items as i64 * RMAP_ITEM_SIZE,
            stable_node_chains: self.stable.n_chains,
            stable_node_dups: self.stable.n_dups,
            pages_to_scan: self.tun.pages_to_scan,
        }
    }

    /// Pages of physical memory merging saves now: every mapping of a KSM page beyond
    /// the one page each KSM page occupies, plus every mapping of the zero page placed
    /// by KSM. A copy-on-write break costs its page at once, while `pages_sharing`
    /// only drops when ksmd next looks, so this, not the counters, is what the host's
    /// free memory follows.
    pub fn pages_saved(&self) -> u64 {
        self.ksm_mappings - self.ksm_pages_mapped + self.zero_pages
    }

    /// rmap_items alive: their slab (64 B each) is the memory merging costs.
    pub fn rmap_items(&self) -> u64 {
        self.rmap_items
    }

    /// `/proc/<pid>/ksm_stat` of an mm, `None` once it has exited.
    pub fn mm_stat(&self, mm: MmId) -> Option<MmStat> {
        let m = self.mms.get(mm.0 as usize)?;
        if m.state != MmState::Active {
            return None;
        }
        Some(MmStat {
            ksm_rmap_items: m.rmap_items,
            ksm_zero_pages: m.zero_pages,
            ksm_merging_pages: m.merging_pages,
            ksm_process_profit: (m.merging_pages + m.zero_pages) as i64 * PAGE_SIZE
                - m.rmap_items as i64 * RMAP_ITEM_SIZE,
            ksm_merge_any: m.merge_any,
            ksm_mergeable: m.mergeable_pages > 0,
        })
    }

    /// What a page is now (`None` for an unknown or exited mm or page).
    pub fn page_state(&self, mm: MmId, page: u32) -> Option<PageState> {
        let m = self.live_mm(mm).ok()?;
        let p = page as usize;
        let f = *m.pages.flags.get(p)?;
        Some(match f & PTE_MASK {
            PTE_ANON => PageState::Private {
                content: m.pages.content[p],
            },
            PTE_KSM => {
                let node = m.pages.node[p];
                PageState::Ksm {
                    content: self.stable.node(node).content,
                    node,
                }
            }
            PTE_ZERO => PageState::KsmZero,
            _ => PageState::NotPresent,
        })
    }

    /// Content a read of the page would see (`None` if not present).
    pub fn page_content(&self, mm: MmId, page: u32) -> Option<u64> {
        match self.page_state(mm, page)? {
            PageState::NotPresent => None,
            PageState::Private { content } | PageState::Ksm { content, .. } => Some(content),
            PageState::KsmZero => Some(ZERO_CONTENT),
        }
    }

    /// Number of pages of an mm (0 for unknown or exited ones).
    pub fn mm_pages(&self, mm: MmId) -> u32 {
        self.live_mm(mm).map_or(0, |m| m.pages.len())
    }

    /// Heap bytes held by the simulator for ksmd (page arrays, trees, lists).
    pub fn heap_bytes(&self) -> usize {
        let mms: usize = self
            .mms
            .iter()
            .map(|m| {
                m.pages.heap_bytes()
                    + m.numa.capacity() * 8
                    + m.thp.as_ref().map_or(0, HugeRegions::heap_bytes)
            })
            .sum::<usize>()
            + self.mms.capacity() * std::mem::size_of::<Mm>();
        let unstable: usize = self.unstable.iter().map(UnstableTable::heap_bytes).sum();
        let detached: usize = self.detached.values().map(|v| v.capacity() * 8 + 40).sum();
        mms + unstable + detached + self.stable.heap_bytes() + self.list.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    impl Ksmd {
        /// Recounts every counter from the page arrays and nodes and compares.
        fn check_invariants(&self) {
            let mut items = 0;
            let mut unshared = 0;
            let mut zero = 0;
            let mut node_len: std::collections::HashMap<u32, u64> = Default::default();
            let mut node_map: std::collections::HashMap<u32, u32> = Default::default();
            for (i, m) in self.mms.iter().enumerate() {
                if m.state == MmState::Gone {
                    continue;
                }
                let (mut mi, mut mz, mut mm) = (0, 0, 0);
                for p in 0..m.pages.len() as usize {
                    let f = m.pages.flags[p];
                    assert!(
                        f & (STABLE | UNSTABLE) == 0 || f & ITEM != 0,
                        "tree flag without item"
                    );
                    assert!(f & STABLE == 0 || f & UNSTABLE == 0);
                    if f & ITEM != 0 {
                        mi += 1;
                    }
                    if f & UNSTABLE != 0 {
                        unshared += 1;
                    }
                    if f & STABLE != 0 {
                        mm += 1;
                        *node_len.entry(m.pages.node[p]).or_default() += 1;
                        // a merged page maps the node it hangs off (one shared field);
                        // otherwise its item must be listed as detached
                        if f & PTE_MASK != PTE_KSM {
                            let k = m.pages.node[p];
                            let r = PageRef {
                                mm: i as u32,
                                page: p as u32,
                            }
                            .pack();
                            assert!(
                                self.detached.get(&k).is_some_and(|v| v.contains(&r)),
                                "detached item not listed"
                            );
                        }
                    }
                    match f & PTE_MASK {
                        PTE_KSM => *node_map.entry(m.pages.node[p]).or_default() += 1,
                        PTE_ZERO => mz += 1,
                        _ => {}
                    }
                }
                assert_eq!(m.rmap_items, mi, "mm {i} rmap_items");
                assert_eq!(m.zero_pages, mz, "mm {i} zero pages");
                assert_eq!(m.merging_pages, mm, "mm {i} merging pages");
                items += mi;
                zero += mz;
            }
            assert_eq!(self.rmap_items, items, "rmap_items");
            assert_eq!(self.pages_unshared, unshared, "pages_unshared");
            assert_eq!(self.zero_pages, zero, "ksm_zero_pages");
            let (mut shared, mut sharing) = (0, 0);
            for n in self.stable.live_nodes() {
                let node = self.stable.node(n);
                let len = node_len.get(&n).copied().unwrap_or(0);
                assert_eq!(u64::from(node.len), len, "node {n} len");
                assert_eq!(
                    node.mapcount,
                    node_map.get(&n).copied().unwrap_or(0),
                    "node {n} mapcount"
                );
                if len > 0 {
                    shared += 1;
                    sharing += len - 1;
                }
            }
            for k in node_len.keys().chain(node_map.keys()) {
                assert!(self.stable.node(*k).live, "page refers to freed node {k}");
            }
            assert_eq!((self.pages_shared, self.pages_sharing), (shared, sharing));
            let chains = self.stable.live_chains();
            assert_eq!(self.stable.n_chains, chains.len() as u64);
            let dups: usize = chains
                .iter()
                .map(|c| self.stable.chains[*c as usize].dups.len())
                .sum();
            assert_eq!(self.stable.n_dups, dups as u64);
        }
    }

    #[test]
    fn random_operations_keep_every_counter_consistent() {
        let mut seen = [false; 5];
        for seed in 0..12u64 {
            let mut rng = crate::engine::rng_stream(seed, "ksmd-invariants");
            let mut k = Ksmd::new(2);
            let mut t = SimTime::ZERO;
            let mut mms: Vec<MmId> = Vec::new();
            let pool = |r: &mut rand_chacha::ChaCha8Rng| match r.random_range(0..10) {
                0 => ZERO_CONTENT,
                1..=6 => r.random_range(1..6),
                _ => r.random_range(1000..1_000_000),
            };
            k.set(t, Sysfs::PagesToScan(rng.random_range(1..40)))
                .unwrap();
            k.set(t, Sysfs::MaxPageSharing(rng.random_range(2..6)))
                .unwrap();
            k.set(t, Sysfs::Run(1)).unwrap();
            for _ in 0..600 {
                let live: Vec<MmId> = mms
                    .iter()
                    .copied()
                    .filter(|m| k.mm_stat(*m).is_some())
                    .collect();
                let pick = |r: &mut rand_chacha::ChaCha8Rng| live[r.random_range(0..live.len())];
                match rng.random_range(0..20) {
                    0 | 1 if mms.len() < 8 => {
                        let n = rng.random_range(1..60);
                        let numa = if rng.random_bool(0.3) {
                            vec![(0, 0), (n / 2, 1)]
                        } else {
                            vec![]
                        };
                        let mm = k
                            .add_mm(
                                n,
                                MmOptions {
                                    hugetlb: rng.random_bool(0.1),
                                    thp: false,
                                    numa,
                                },
                            )
                            .unwrap();
                        k.populate(mm, 0, n, |_| 0).unwrap();
                        for p in 0..n {
                            if rng.random_bool(0.9) {
                                k.write_page(mm, p, pool(&mut rng)).unwrap();
                            } else {
                                k.unmap(mm, p, p + 1).unwrap();
                            }
                        }
                        k.madvise_mergeable(t, mm, 0, n).unwrap();
                        mms.push(mm);
                    }
                    2..=6 if !live.is_empty() => {
                        let mm = pick(&mut rng);
                        let n = k.mm_pages(mm);
                        let p = rng.random_range(0..n);
                        let c = pool(&mut rng);
                        k.write_page(mm, p, c).unwrap();
                    }
                    7 if !live.is_empty() => {
                        let mm = pick(&mut rng);
                        let n = k.mm_pages(mm);
                        let a = rng.random_range(0..n);
                        let b = rng.random_range(a..=n);
                        match rng.random_range(0..4) {
                            0 => k.madvise_unmergeable(mm, a, b).unwrap(),
                            1 => k.madvise_mergeable(t, mm, a, b).unwrap(),
                            2 => k.unmap(mm, a, b).unwrap(),
                            _ => k.set_merge_any(t, mm, rng.random_bool(0.5)).unwrap(),
                        }
                    }
                    8 if !live.is_empty() => {
                        let mm = pick(&mut rng);
                        k.exit_mm(mm).unwrap();
                    }
                    9 if !live.is_empty() && mms.len() < 10 => {
                        let mm = pick(&mut rng);
                        mms.push(k.fork_mm(t, mm).unwrap());
                    }
                    10 => {
                        let w = match rng.random_range(0..7) {
                            0 => Sysfs::Run(rng.random_range(0..3)),
                            1 => Sysfs::MaxPageSharing(rng.random_range(2..6)),
                            2 => Sysfs::UseZeroPages(rng.random_range(0..2)),
                            3 => Sysfs::SmartScan(rng.random_range(0..2)),
                            4 => Sysfs::MergeAcrossNodes(rng.random_range(0..2)),
                            5 => Sysfs::SleepMillisecs(rng.random_range(0..30)),
                            _ => Sysfs::StableNodeChainsPruneMillisecs(rng.random_range(0..50)),
                        };
                        let _ = k.set(t, w);
                        if rng.random_bool(0.5) {
                            let _ = k.set(t, Sysfs::Run(1));
                        }
                    }
                    _ => {
                        t = t + SimTime(rng.random_range(1_000..30_000_000));
                        k.run_until(t);
                    }
                }
                k.check_invariants();
                let c = k.counters();
                seen[0] |= c.pages_sharing > 0;
                seen[1] |= c.stable_node_chains > 0;
                seen[2] |= c.ksm_zero_pages > 0;
                seen[3] |= c.pages_skipped > 0;
                seen[4] |= c.pages_unshared > 0;
            }
            // everything unmerges
            k.set(t, Sysfs::Run(2)).unwrap();
            k.check_invariants();
            let c = k.counters();
            assert_eq!(
                (
                    c.pages_shared,
                    c.pages_sharing,
                    c.pages_unshared,
                    c.ksm_zero_pages,
                    c.full_scans
                ),
                (0, 0, 0, 0, 0),
                "seed {seed}"
            );
        }
        assert_eq!(
            seen, [true; 5],
            "sharing, chains, zero pages, skips, unshared exercised"
        );
    }

    fn setup(contents: &[u64]) -> (Ksmd, MmId) {
        let mut k = Ksmd::new(1);
        let mm = k
            .add_mm(contents.len() as u32, MmOptions::default())
            .unwrap();
        k.populate(mm, 0, contents.len() as u32, |p| contents[p as usize])
            .unwrap();
        k.set(SimTime::ZERO, Sysfs::SleepMillisecs(0)).unwrap();
        k.madvise_mergeable(SimTime::ZERO, mm, 0, contents.len() as u32)
            .unwrap();
        k.set(SimTime::ZERO, Sysfs::Run(1)).unwrap();
        (k, mm)
    }

    fn run_scans(k: &mut Ksmd, n: u64) -> Counters {
        let target = k.counters().full_scans + n;
        while k.counters().full_scans < target {
            let t = k.next_event_time().expect("ksmd runs");
            k.run_until(t + SimTime(1));
        }
        k.counters()
    }

    #[test]
    fn identical_pages_merge_at_the_second_pass() {
        let (mut k, mm) = setup(&[7; 10]);
        let c = run_scans(&mut k, 1);
        assert_eq!((c.pages_volatile, c.pages_shared), (10, 0));
        let c = run_scans(&mut k, 1);
        assert_eq!(
            (c.pages_shared, c.pages_sharing, c.pages_volatile),
            (1, 9, 0)
        );
        assert_eq!(k.mm_stat(mm).unwrap().ksm_merging_pages, 10);
        assert_eq!(c.general_profit, 9 * 4096 - 10 * 64);
    }

    #[test]
    fn cow_break_is_seen_at_the_next_visit_and_stale_node_goes() {
        let (mut k, mm) = setup(&[7, 7]);
        run_scans(&mut k, 2);
        k.write_page(mm, 0, 100).unwrap();
        k.write_page(mm, 1, 101).unwrap();
        assert_eq!(k.counters().pages_shared, 1);
        let c = run_scans(&mut k, 1);
        assert_eq!(
            (c.pages_shared, c.pages_sharing, c.pages_volatile),
            (0, 0, 2)
        );
        assert_eq!(k.mm_stat(mm).unwrap().ksm_merging_pages, 0);
    }

    #[test]
    fn smart_scan_schedule() {
        let (mut k, _) = setup(&[1]);
        // visit n happens in pass n; skipped on 5, 7, 8, 10..=13, 15..=22
        let mut skipped = Vec::new();
        let mut last = 0;
        for pass in 1..=32u64 {
            let c = run_scans(&mut k, 1);
            if c.pages_skipped > last {
                skipped.push(pass);
            }
            last = c.pages_skipped;
        }
        let expect: Vec<u64> = [5, 7, 8, 10, 11, 12, 13]
            .into_iter()
            .chain(15..=22)
            .chain(24..=31)
            .collect();
        assert_eq!(skipped, expect);
    }

    /// A ksmd with default timing (sleep 20 ms, 100 pages per batch) and the given mms.
    fn host(mms: &[&[u64]]) -> (Ksmd, Vec<MmId>) {
        let mut k = Ksmd::new(1);
        let ids = mms
            .iter()
            .map(|c| {
                let mm = k.add_mm(c.len() as u32, MmOptions::default()).unwrap();
                k.populate(mm, 0, c.len() as u32, |p| c[p as usize])
                    .unwrap();
                k.madvise_mergeable(SimTime::ZERO, mm, 0, c.len() as u32)
                    .unwrap();
                mm
            })
            .collect();
        k.set(SimTime::ZERO, Sysfs::Run(1)).unwrap();
        (k, ids)
    }

    #[test]
    fn batches_are_24_ms_apart_and_a_pass_end_cuts_the_batch() {
        let (mut k, _) = host(&[&[9; 250]]);
        k.record_pass_ends(true);
        k.run_until(SimTime::from_secs(1));
        let ends: Vec<u64> = k
            .drain_pass_ends()
            .iter()
            .map(|e| e.time.as_nanos() / 1_000_000)
            .collect();
        // 250 pages = 3 batches per pass (100 + 100 + 50, the pass end ends the third)
        assert_eq!(&ends[..3], &[48, 120, 192]);
    }

    #[test]
    fn new_mm_is_scanned_from_the_next_pass_just_before_the_cursor_slot() {
        let (mut k, ids) = host(&[&[1; 150], &[2; 150]]);
        // t = 30 ms: the cursor is in the second mm (batch 2 started at 24 ms)
        k.run_until(SimTime::from_millis(30));
        let late = k.add_mm(10, MmOptions::default()).unwrap();
        k.populate(late, 0, 10, |_| 3).unwrap();
        k.madvise_mergeable(SimTime::from_millis(30), late, 0, 10)
            .unwrap();
        assert_eq!(k.list, vec![ids[0].0, late.0, ids[1].0]);
        // not visited in the current pass
        let c = k.run_until(SimTime::from_millis(80));
        assert_eq!(c.full_scans, 1);
        assert_eq!(k.mm_stat(late).unwrap().ksm_rmap_items, 0);
    }

    #[test]
    fn exit_moves_the_slot_after_the_cursor_and_frees_in_the_next_batch() {
        let (mut k, ids) = host(&[&[1; 100], &[1; 100], &[5; 100]]);
        let c = k.run_full_scans(2, SimTime::from_secs(10));
        assert_eq!((c.pages_shared, c.pages_sharing), (2, 298));
        let t = k.now();
        k.exit_mm(ids[0]).unwrap();
        assert_eq!(k.mm_stat(ids[0]), None);
        // counters unchanged until ksmd gets to it: next in line, freed at once
        assert_eq!(k.counters().pages_sharing, 298);
        assert_eq!(k.list[0], ids[0].0);
        let c = k.run_until(t + SimTime::from_millis(30));
        assert_eq!((c.pages_shared, c.pages_sharing), (2, 198));
        assert!(!k.list.contains(&ids[0].0));
    }

    #[test]
    fn run_0_keeps_everything_and_run_2_unmerges_all() {
        let (mut k, ids) = host(&[&[1; 40], &[ZERO_CONTENT; 10]]);
        k.set(SimTime::ZERO, Sysfs::UseZeroPages(1)).unwrap();
        let c = k.run_full_scans(2, SimTime::from_secs(10));
        assert_eq!((c.pages_sharing, c.ksm_zero_pages), (39, 10));
        let t = k.now();
        k.set(t, Sysfs::Run(0)).unwrap();
        assert_eq!(k.run_until(t + SimTime::from_secs(5)), c);
        k.set(t, Sysfs::Run(2)).unwrap();
        let c = k.counters();
        assert_eq!(
            (
                c.pages_shared,
                c.pages_sharing,
                c.ksm_zero_pages,
                c.full_scans
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(c.pages_volatile, 0);
        assert_eq!(
            k.page_state(ids[0], 0),
            Some(PageState::Private { content: 1 })
        );
        assert_eq!(
            k.page_state(ids[1], 0),
            Some(PageState::Private {
                content: ZERO_CONTENT
            })
        );
        // pages_scanned and pages_skipped are never reset
        assert!(c.pages_scanned > 0);
    }

    #[test]
    fn writing_a_different_sleep_wakes_ksmd() {
        let (mut k, _) = host(&[&[1; 10]]);
        k.set(SimTime::ZERO, Sysfs::SleepMillisecs(10_000)).unwrap();
        k.run_until(SimTime::from_millis(1));
        assert_eq!(k.next_event_time(), Some(SimTime::from_millis(10_004)));
        k.set(SimTime::from_millis(2), Sysfs::SleepMillisecs(10_000))
            .unwrap();
        assert_eq!(k.next_event_time(), Some(SimTime::from_millis(10_004)));
        k.set(SimTime::from_millis(2), Sysfs::SleepMillisecs(20))
            .unwrap();
        assert_eq!(k.next_event_time(), Some(SimTime::from_millis(2)));
    }

    #[test]
    fn hugetlb_memory_is_invisible() {
        let mut k = Ksmd::new(1);
        let mm = k
            .add_mm(
                10,
                MmOptions {
                    hugetlb: true,
                    ..Default::default()
                },
            )
            .unwrap();
        k.populate(mm, 0, 10, |_| 1).unwrap();
        k.madvise_mergeable(SimTime::ZERO, mm, 0, 10).unwrap();
        k.set(SimTime::ZERO, Sysfs::Run(1)).unwrap();
        let c = k.run_until(SimTime::from_secs(2));
        assert_eq!((c.full_scans, c.pages_scanned, c.pages_sharing), (0, 0, 0));
        assert!(!k.mm_stat(mm).unwrap().ksm_mergeable);
    }

    #[test]
    fn scan_time_advisor_retunes_pages_to_scan_at_pass_ends() {
        let (mut k, _) = host(&[&[1; 3000]]);
        k.set(SimTime::ZERO, Sysfs::AdvisorMode(AdvisorMode::ScanTime))
            .unwrap();
        assert_eq!(k.counters().pages_to_scan, 500);
        assert_eq!(
            k.set(SimTime::ZERO, Sysfs::PagesToScan(7)),
            Err(SysfsError::Invalid)
        );
        k.set(SimTime::ZERO, Sysfs::AdvisorTargetScanTime(1))
            .unwrap();
        k.run_full_scans(3, SimTime::from_secs(100));
        // passes take well under the 1 s target: the advisor asks for fewer pages, but
        // not below 10 % of its per-CPU budget
        let p = k.counters().pages_to_scan;
        assert!(p != 500, "{p}");
        k.set(k.now(), Sysfs::AdvisorMode(AdvisorMode::None))
            .unwrap();
        assert_eq!(k.counters().pages_to_scan, 100);
    }

    #[test]
    fn full_dups_become_stale_and_the_chain_collapses() {
        // max_page_sharing 2: 4 pages → 2 KSM pages of one content → a chain of 2 dups
        let mut k = Ksmd::new(1);
        k.set(SimTime::ZERO, Sysfs::MaxPageSharing(2)).unwrap();
        k.set(SimTime::ZERO, Sysfs::SmartScan(0)).unwrap();
        let mm = k.add_mm(5, MmOptions::default()).unwrap();
        k.populate(mm, 0, 5, |p| if p < 4 { 1 } else { 2 }).unwrap();
        k.madvise_mergeable(SimTime::ZERO, mm, 0, 5).unwrap();
        k.set(SimTime::ZERO, Sysfs::Run(1)).unwrap();
        let c = k.run_full_scans(2, SimTime::from_secs(10));
        assert_eq!((c.pages_shared, c.pages_sharing), (2, 2));
        assert_eq!((c.stable_node_chains, c.stable_node_dups), (1, 2));
        // both mappings of the first KSM page are written: it is freed
        k.write_page(mm, 0, 50).unwrap();
        k.write_page(mm, 1, 51).unwrap();
        let c = k.run_full_scans(1, SimTime::from_secs(20));
        assert_eq!((c.pages_shared, c.pages_sharing), (1, 1));
        // the stale dup went when its items were visited; the chain collapses at the
        // next search of its content
        k.write_page(mm, 4, 1).unwrap();
        let c = k.run_full_scans(2, SimTime::from_secs(30));
        assert_eq!((c.stable_node_chains, c.stable_node_dups), (0, 0));
        assert_eq!((c.pages_shared, c.pages_sharing), (1, 1));
        k.check_invariants();
    }
}
