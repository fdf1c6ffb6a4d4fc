//! One process's address space as ksmd sees it: its pages' page-table state and the
//! rmap_item of each visited page, as a structure of arrays.
//!
//! Upstream keeps a `struct ksm_rmap_item` (64 bytes) per visited page in a sorted
//! singly linked list per mm (`mm_slot->rmap_list`). Here every page of the mm has a
//! slot in a few parallel arrays (20 bytes per page): the page's content id, the
//! rmap_item's `oldchecksum`, one stable-node index shared by the PTE (the KSM page it
//! maps) and the rmap_item (`head`, the node it hangs off — when both are set they are
//! the same node), a byte of flags and a byte for smart scan's `age` and
//! `remaining_skips` (18 bytes per page). "The rmap_item exists" is a flag, and the
//! list order is the address order of the arrays. Of the pass number upstream keeps with
//! an unstable rmap_item (`address & SEQNR_MASK`) one bit is enough, [`ODD_PASS`]: an
//! item is at most one pass old when ksmd meets it again.

use super::stable::NONE;
use super::thp::HugeRegions;

/// Page-table state of an address (two bits of [`Pages::flags`]).
pub const PTE_MASK: u8 = 0b11;
/// Not present: never touched, unmapped, or mapping the shared zero page on read.
pub const PTE_NONE: u8 = 0;
/// An ordinary private anonymous page holding `content`.
pub const PTE_ANON: u8 = 1;
/// Maps the KSM page of stable node `node`.
pub const PTE_KSM: u8 = 2;
/// Maps the shared zero page, placed there by KSM (`use_zero_pages`).
pub const PTE_ZERO: u8 = 3;
/// The address lies in a VM_MERGEABLE area.
pub const MERGEABLE: u8 = 1 << 2;
/// An rmap_item exists for the address.
pub const ITEM: u8 = 1 << 3;
/// The rmap_item hangs off stable node `node` (`STABLE_FLAG`).
pub const STABLE: u8 = 1 << 4;
/// The rmap_item is in an unstable tree (`UNSTABLE_FLAG`).
pub const UNSTABLE: u8 = 1 << 5;
/// With [`UNSTABLE`]: the item was filed in an odd-numbered pass. Only an item filed in
/// the current pass is still in a tree (the others went with the tree at the pass
/// start), which is what upstream's `age` test in `remove_rmap_item_from_tree` decides.
pub const ODD_PASS: u8 = 1 << 6;

/// Smart scan's `age` and `remaining_skips` in one byte. Upstream's `age` is a `u8`
/// saturating at 255, but `should_skip_rmap_item` only distinguishes ages up to 9
/// (`skip_age`), so saturating at 15 behaves identically; `remaining_skips` is at most 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smart(pub u8);

impl Smart {
    pub const AGE_MAX: u8 = 15;
    pub fn age(self) -> u8 {
        self.0 & 0x0f
    }
    pub fn remaining_skips(self) -> u8 {
        self.0 >> 4
    }
    pub fn new(age: u8, remaining_skips: u8) -> Smart {
        Smart(age.min(Self::AGE_MAX) | (remaining_skips.min(15) << 4))
    }
}

/// Lifecycle of an mm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmState {
    Active,
    /// Exited; its slot waits for ksmd to free its rmap_items.
    Exiting,
    /// Freed.
    Gone,
}

/// The per-page arrays.
#[derive(Clone, Debug, Default)]
pub struct Pages {
    pub content: Vec<u64>,
    pub checksum: Vec<u32>,
    pub node: Vec<u32>,
    pub flags: Vec<u8>,
    /// [`Smart`] bytes.
    pub smart: Vec<u8>,
}

impl Pages {
    pub fn new(n: u32) -> Self {
        let n = n as usize;
        Pages {
            content: vec![0; n],
            checksum: vec![0; n],
            node: vec![NONE; n],
            flags: vec![0; n],
            smart: vec![0; n],
        }
    }

    pub fn len(&self) -> u32 {
        self.flags.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Bytes of simulator memory per page.
    pub const BYTES_PER_PAGE: usize = 8 + 4 + 4 + 1 + 1;

    pub fn heap_bytes(&self) -> usize {
        self.content.capacity() * 8
            + self.checksum.capacity() * 4
            + self.node.capacity() * 4
            + self.flags.capacity()
            + self.smart.capacity()
    }
}

/// One mm (process) and its KSM bookkeeping (`struct ksm_mm_slot` plus the `mm->ksm_*`
/// counters).
#[derive(Clone, Debug)]
pub struct Mm {
    pub pages: Pages,
    /// Index of page 0 in ksmd's global page numbering (used by the unstable trees).
    pub base: u32,
    /// `(first page, NUMA node)` runs, sorted; empty = all on node 0.
    pub numa: Vec<(u32, u16)>,
    /// Backed by hugetlbfs: KSM never sees it (`vma_ksm_compatible` refuses VM_HUGETLB).
    pub hugetlb: bool,
    /// THP-backed (`MADV_HUGEPAGE` with THP `madvise` or `always`): its 2 MiB regions.
    pub thp: Option<HugeRegions>,
    pub state: MmState,
    /// On the mm_slot list (`MMF_VM_MERGEABLE`).
    pub registered: bool,
    /// `PR_SET_MEMORY_MERGE` (`MMF_VM_MERGE_ANY`).
    pub merge_any: bool,
    /// Pages in VM_MERGEABLE areas.
    pub mergeable_pages: u64,
    pub rmap_items: u64,
    pub zero_pages: u64,
    pub merging_pages: u64,
}

impl Mm {
    pub fn new(pages: u32, base: u32, numa: Vec<(u32, u16)>, hugetlb: bool) -> Self {
        let mut numa = numa;
        numa.sort_unstable();
        Mm {
            pages: Pages::new(pages),
            base,
            numa,
            hugetlb,
            thp: None,
            state: MmState::Active,
            registered: false,
            merge_any: false,
            mergeable_pages: 0,
            rmap_items: 0,
            zero_pages: 0,
            merging_pages: 0,
        }
    }

    /// NUMA node of page `p`.
    pub fn nid(&self, p: u32) -> u16 {
        match self.numa.partition_point(|(first, _)| *first <= p) {
            0 => 0,
            i => self.numa[i - 1].1,
        }
    }
}
