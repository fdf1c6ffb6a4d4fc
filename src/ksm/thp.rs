//! Transparent huge pages of an mm, per 2 MiB region: what `AnonHugePages` counts and
//! what ksmd must split before it can merge a page.
//!
//! QEMU madvises guest RAM `MADV_HUGEPAGE`, so with THP `madvise` or `always` the first
//! fault in an empty, aligned 2 MiB region maps a whole huge page with one PMD
//! (`do_huge_pmd_anonymous_page`). ksmd scans such a region 4 KiB subpage by subpage,
//! but merging a subpage needs a 4 KiB page: `try_to_merge_one_page` (`mm/ksm.c`) calls
//! `split_huge_page` first, for the page that becomes the KSM page and for each page
//! that then maps it. A failed split (extra references, e.g. both candidates in one
//! huge page) is not modelled: the split always succeeds.
//! A split region stays mapped by 4 KiB PTEs: later faults there are 4 KiB too, until
//! khugepaged collapses it again (not modelled).
//!
//! A discard (`MADV_DONTNEED`) of part of a huge region only splits the PMD
//! (`__split_huge_pmd`): the huge page leaves `AnonHugePages` but its memory waits for
//! the deferred-split shrinker (the host model's `deferred` pages). A discard of a page
//! of a region that KSM split frees that 4 KiB page at once.
//!
//! memsim counts a VM's host memory in touched 4 KiB pages (QEMU RSS = pages the guest
//! touched), so a huge region contributes the pages of it that are present, not 2 MiB.

/// 4 KiB pages per 2 MiB huge page (x86-64 `HPAGE_PMD_NR`).
pub const HPAGE_PMD_NR: u32 = 512;

/// What maps one 2 MiB region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// `pmd_none`: nothing mapped yet; the next fault maps a huge page.
    Empty,
    /// One PMD maps a huge page: counted in `AnonHugePages`.
    Huge,
    /// The PMD was split by a partial discard; the huge page itself waits for the
    /// deferred-split shrinker.
    PmdSplit,
    /// Split into 4 KiB pages (by KSM, or after a split region emptied).
    Split,
}

/// The region states of one THP-backed mm and its present pages per region.
#[derive(Clone, Debug)]
pub struct HugeRegions {
    state: Vec<Region>,
    present: Vec<u16>,
    /// Σ present pages in [`Region::Huge`] regions.
    huge_pages: u64,
    /// Huge pages split by ksmd (`thp_split_page` caused by KSM).
    ksm_splits: u64,
}

impl HugeRegions {
    pub fn new(pages: u32) -> Self {
        let n = pages.div_ceil(HPAGE_PMD_NR) as usize;
        HugeRegions {
            state: vec![Region::Empty; n],
            present: vec![0; n],
            huge_pages: 0,
            ksm_splits: 0,
        }
    }

    fn region(page: u32) -> usize {
        (page / HPAGE_PMD_NR) as usize
    }

    pub fn state(&self, page: u32) -> Region {
        self.state[Self::region(page)]
    }

    /// Present pages in huge regions (`AnonHugePages` of this mm, in pages).
    pub fn huge_pages(&self) -> u64 {
        self.huge_pages
    }

    pub fn ksm_splits(&self) -> u64 {
        self.ksm_splits
    }

    /// A not-present page is faulted in.
    pub fn fault(&mut self, page: u32) {
        let r = Self::region(page);
        if self.state[r] == Region::Empty {
            self.state[r] = Region::Huge;
        }
        self.present[r] += 1;
        if self.state[r] == Region::Huge {
            self.huge_pages += 1;
        }
    }

    /// A present page is unmapped. A huge page with nothing mapped any more is freed
    /// whole (its region can fault a huge page again); a split region keeps its PTE
    /// table.
    pub fn zap(&mut self, page: u32) {
        let r = Self::region(page);
        self.present[r] = self.present[r].saturating_sub(1);
        if self.state[r] == Region::Huge {
            self.huge_pages -= 1;
        }
        if self.present[r] == 0 {
            self.state[r] = match self.state[r] {
                Region::Huge | Region::Empty => Region::Empty,
                Region::PmdSplit | Region::Split => Region::Split,
            };
        }
    }

    /// A partial discard at `page`: a huge region's PMD is split.
    pub fn split_pmd(&mut self, page: u32) {
        let r = Self::region(page);
        if self.state[r] == Region::Huge {
            self.state[r] = Region::PmdSplit;
            self.huge_pages -= u64::from(self.present[r]);
        }
    }

    /// ksmd is about to merge `page`: its huge page is split into 4 KiB pages.
    pub fn split_for_merge(&mut self, page: u32) {
        let r = Self::region(page);
        match self.state[r] {
            Region::Huge => {
                self.huge_pages -= u64::from(self.present[r]);
                self.state[r] = Region::Split;
                self.ksm_splits += 1;
            }
            Region::PmdSplit => {
                self.state[r] = Region::Split;
                self.ksm_splits += 1;
            }
            Region::Empty | Region::Split => {}
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.state.capacity() + self.present.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_maps_a_huge_page_that_a_merge_splits_for_good() {
        let mut h = HugeRegions::new(1024);
        for p in 0..10 {
            h.fault(p);
        }
        h.fault(600);
        assert_eq!(h.huge_pages(), 11);
        h.split_for_merge(3);
        assert_eq!((h.huge_pages(), h.state(0)), (1, Region::Split));
        for p in 0..10 {
            h.zap(p);
        }
        h.fault(5);
        assert_eq!(h.state(5), Region::Split, "the PTE table stays");
        assert_eq!(h.ksm_splits(), 1);
    }

    #[test]
    fn a_whole_discard_frees_the_huge_page_and_a_partial_one_splits_the_pmd() {
        let mut h = HugeRegions::new(1024);
        h.fault(1);
        h.zap(1);
        assert_eq!(h.state(1), Region::Empty);
        h.fault(513);
        h.fault(514);
        h.split_pmd(513);
        h.zap(513);
        assert_eq!((h.state(514), h.huge_pages()), (Region::PmdSplit, 0));
        h.zap(514);
        assert_eq!(h.state(514), Region::Split);
    }
}
