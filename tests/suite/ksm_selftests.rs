//! The kernel's own KSM selftests, ported to the simulated ksmd with the kernel's
//! expected results: `tools/testing/selftests/mm/ksm_tests.c` (as run by
//! `run_vmtests.sh`, plus the two timing tests it does not run) and
//! `ksm_functional_tests.c` (6.18, 10 tests). See `ksm.md` §14.
//!
//! Their set-up is reproduced: tunables as `ksm_tests` sets them (run=2 first,
//! `sleep_millisecs=0`, `pages_to_scan` = page count, `merge_across_nodes=1`), memory
//! filled before merging is enabled, then run=1 and "wait until `full_scans` has grown
//! by 2". Where a test checks something the model has no notion of (PFNs, THP,
//! userfaultfd, exec), the check is restated in the model's terms and noted.

use memsim::engine::SimTime;
use memsim::ksm::ksmd::{Ksmd, MmId, MmOptions, PageState, Sysfs, ZERO_CONTENT};

/// Page contents of the tests' fill bytes.
const STAR: u64 = b'*' as u64; // '*'
const XCF: u64 = 0xcf;
const X11: u64 = 0x11;
/// 2 MiB of 4 KiB pages (the functional tests' area).
const AREA: u32 = 512;

/// A host running one ksmd, with the test harness's clock.
struct Host {
    k: Ksmd,
    now: SimTime,
}

impl Host {
    /// `ksm_tests` set-up: save (implicit), run=2, sleep 0, pages_to_scan, mergeable
    /// across nodes.
    fn ksm_tests(pages_to_scan: u64, numa_nodes: u16) -> Host {
        let mut h = Host {
            k: Ksmd::new(numa_nodes),
            now: SimTime::ZERO,
        };
        h.set(Sysfs::Run(2));
        h.set(Sysfs::SleepMillisecs(0));
        h.set(Sysfs::MergeAcrossNodes(1));
        h.set(Sysfs::PagesToScan(pages_to_scan));
        h
    }

    /// `ksm_functional_tests` set-up (it leaves the tunables as found: defaults).
    fn functional() -> Host {
        Host {
            k: Ksmd::new(1),
            now: SimTime::ZERO,
        }
    }

    fn set(&mut self, w: Sysfs) {
        self.k.set(self.now, w).expect("sysfs write accepted");
    }

    /// `allocate_memory`: mmap private anonymous, memset with `fill`, mprotect.
    fn allocate(&mut self, pages: u32, fill: u64, opts: MmOptions) -> MmId {
        let mm = self.k.add_mm(pages, opts).unwrap();
        self.k.populate(mm, 0, pages, |_| fill).unwrap();
        mm
    }

    /// `ksm_do_scan(n)`: poll `full_scans` until it has grown by `n` (timeout 120 s).
    /// The test polls in a tight loop, so it sees the increment as it happens: here the
    /// harness follows ksmd step by step.
    fn wait_scans(&mut self, n: u64) {
        let init = self.k.counters().full_scans;
        let limit = self.now + SimTime::from_secs(120);
        while self.k.counters().full_scans < init + n {
            let next = self.k.next_event_time().expect("ksmd is running");
            self.now = self.now.max(next) + SimTime(1);
            assert!(self.now < limit, "scan time limit exceeded");
            self.k.run_until(self.now);
        }
    }

    /// `ksm_merge_pages`: madvise (or prctl), run=1, two full scans.
    fn merge(&mut self, mm: MmId, prctl: bool) {
        if prctl {
            self.k.set_merge_any(self.now, mm, true).unwrap();
        } else {
            let pages = self.k.mm_pages(mm);
            self.k.madvise_mergeable(self.now, mm, 0, pages).unwrap();
        }
        self.set(Sysfs::Run(1));
        self.wait_scans(2);
    }

    /// `assert_ksm_pages_count`: the selftest's formula for `dupl` duplicate pages.
    fn assert_pages_count(&self, dupl: u64) {
        let c = self.k.counters();
        let m = self.k.tunables().max_page_sharing;
        let (shared, sharing) = if dupl % m <= 1 {
            (dupl / m, dupl / m * (m - 1))
        } else {
            (dupl / m + 1, dupl - (dupl / m + 1))
        };
        assert_eq!(
            (c.pages_shared, c.pages_sharing),
            (shared, sharing),
            "{dupl} duplicate pages, max_page_sharing {m}"
        );
    }

    /// `range_maps_duplicates`: do two pages of the range map the same physical page?
    /// In the model: a KSM page mapped twice, or the KSM-placed zero page.
    fn maps_duplicates(&self, mm: MmId, start: u32, end: u32) -> bool {
        let mut seen = std::collections::HashSet::new();
        (start..end).any(|p| match self.k.page_state(mm, p) {
            Some(PageState::Ksm { node, .. }) => !seen.insert(node),
            Some(PageState::KsmZero) => !seen.insert(u32::MAX),
            _ => false,
        })
    }

    /// `ksm_functional_tests`' `mmap_and_merge_range`: run=2, check the process has no
    /// merging pages, map and fill 2 MiB, enable merging, run=1, two more full scans,
    /// and require merging pages unless the fill is zero.
    fn mmap_and_merge_range(&mut self, fill: u64, prctl: bool) -> MmId {
        self.set(Sysfs::Run(2));
        let mm = self.allocate(AREA, fill, MmOptions::default());
        assert_eq!(self.k.mm_stat(mm).unwrap().ksm_merging_pages, 0);
        self.merge(mm, prctl);
        if fill != ZERO_CONTENT {
            assert!(self.k.mm_stat(mm).unwrap().ksm_merging_pages > 0);
        }
        mm
    }
}

// ----- ksm_tests.c -------------------------------------------------------------------

/// `ksm_tests -M -p 10` (and `-t 1`, prctl): 10 identical pages → 1 shared, 9 sharing.
#[test]
fn check_ksm_merge() {
    for prctl in [false, true] {
        let mut h = Host::ksm_tests(10, 1);
        let mm = h.allocate(10, STAR, MmOptions::default());
        h.merge(mm, prctl);
        h.assert_pages_count(10);
    }
}

/// The `assert_ksm_pages_count` formula over page counts and sharing limits (what
/// `-M -p N` checks with `max_page_sharing` changed).
#[test]
fn check_ksm_merge_formula_with_sharing_limits() {
    for m in [2, 3, 4, 10, 256] {
        for n in [2, 3, 9, 10, 11, 20, 21, 257, 600] {
            let mut h = Host::ksm_tests(n, 1);
            h.set(Sysfs::MaxPageSharing(m));
            let mm = h.allocate(n as u32, STAR, MmOptions::default());
            h.merge(mm, false);
            h.assert_pages_count(n);
        }
    }
}

/// `ksm_tests -U`: 2 merged pages, one byte changed in each, one more full scan →
/// nothing merged.
#[test]
fn check_ksm_unmerge() {
    let mut h = Host::ksm_tests(10, 1);
    let mm = h.allocate(2, STAR, MmOptions::default());
    h.merge(mm, false);
    h.assert_pages_count(2);
    h.k.write_page(mm, 0, 1000).unwrap(); // '-' at offset 0
    h.k.write_page(mm, 1, 1001).unwrap(); // '+' at offset 0
    h.wait_scans(1);
    h.assert_pages_count(0);
}

/// `ksm_tests -Z -p 10 -z 0` and `-z 1`.
#[test]
fn check_ksm_zero_page_merge() {
    for use_zero_pages in [0, 1] {
        let mut h = Host::ksm_tests(10, 1);
        h.set(Sysfs::UseZeroPages(use_zero_pages));
        let mm = h.allocate(10, ZERO_CONTENT, MmOptions::default());
        h.merge(mm, false);
        if use_zero_pages == 1 {
            h.assert_pages_count(0);
            assert_eq!(h.k.counters().ksm_zero_pages, 10);
        } else {
            h.assert_pages_count(10);
        }
    }
}

/// `ksm_tests -N -m 1` / `-N -m 0`: one identical page on each of two NUMA nodes.
#[test]
fn check_ksm_numa_merge() {
    for across in [1, 0] {
        let mut h = Host::ksm_tests(10, 2);
        h.set(Sysfs::MergeAcrossNodes(across));
        let opts = MmOptions {
            numa: vec![(0, 0), (1, 1)],
            ..Default::default()
        };
        let mm = h.allocate(2, STAR, opts);
        // The test merges each allocation in turn.
        h.k.madvise_mergeable(h.now, mm, 0, 1).unwrap();
        h.set(Sysfs::Run(1));
        h.wait_scans(2);
        h.merge(mm, false);
        h.assert_pages_count(if across == 1 { 2 } else { 0 });
    }
}

/// `merge_across_nodes` cannot change while KSM pages exist (EBUSY); run=2 frees them.
#[test]
fn numa_knob_is_busy_while_pages_are_shared() {
    let mut h = Host::ksm_tests(10, 2);
    let mm = h.allocate(4, STAR, MmOptions::default());
    h.merge(mm, false);
    assert_eq!(
        h.k.set(h.now, Sysfs::MergeAcrossNodes(0)),
        Err(memsim::ksm::ksmd::SysfsError::Busy)
    );
    assert_eq!(
        h.k.set(h.now, Sysfs::MaxPageSharing(10)),
        Err(memsim::ksm::ksmd::SysfsError::Busy)
    );
    h.set(Sysfs::Run(2));
    h.set(Sysfs::MergeAcrossNodes(0));
    h.set(Sysfs::MaxPageSharing(10));
}

/// `ksm_tests -P -s 100` (and `-H -s 100`, THP-backed: THP is not modelled, a huge page
/// is scanned as its 512 subpages, which is what ksmd does): 100 MiB of one content must
/// be merged within the time limit. Prints the merge time like the test.
#[test]
fn ksm_merge_time() {
    let pages = 100 * 256;
    let mut h = Host::ksm_tests(10, 1);
    let mm = h.allocate(pages, STAR, MmOptions::default());
    h.merge(mm, false);
    h.assert_pages_count(u64::from(pages));
    eprintln!(
        "Total size:    100 MiB\nTotal time:    {} s (simulated)",
        h.now
    );
    assert!(h.now < SimTime::from_secs(120));
}

/// `ksm_tests -D -s 10` (not run by run_vmtests.sh): merged area, then
/// MADV_UNMERGEABLE: no page stays merged, and the counters follow at the next scan.
#[test]
fn ksm_unmerge_time() {
    let pages = 10 * 256;
    let mut h = Host::ksm_tests(10, 1);
    let mm = h.allocate(pages, STAR, MmOptions::default());
    h.merge(mm, false);
    h.k.madvise_unmergeable(mm, 0, pages).unwrap();
    assert!(!h.maps_duplicates(mm, 0, pages));
    h.wait_scans(1);
    h.assert_pages_count(0);
    // nothing mergeable is left: the pass dropped the mm's rmap_items and its slot
    assert_eq!(h.k.mm_stat(mm).map(|s| s.ksm_rmap_items), Some(0));
}

/// `ksm_tests -C` (not run by run_vmtests.sh): 2000 pairs of identical pages (pair i
/// has i+1 bytes of '+'), merged; one byte written in one page of each pair breaks COW.
#[test]
fn ksm_cow_time() {
    let mut h = Host::ksm_tests(10, 1);
    let mm = h.allocate(4000, 0, MmOptions::default());
    h.k.populate(mm, 0, 4000, |p| 10_000 + u64::from(p / 2))
        .unwrap();
    h.merge(mm, false);
    let c = h.k.counters();
    assert_eq!((c.pages_shared, c.pages_sharing), (2000, 2000));
    for pair in 0..2000 {
        h.k.write_page(mm, pair * 2, 20_000 + u64::from(pair))
            .unwrap();
    }
    h.wait_scans(1);
    let c = h.k.counters();
    // Each KSM page keeps its other mapping: still a KSM page, no longer shared.
    assert_eq!((c.pages_shared, c.pages_sharing), (2000, 0));
}

// ----- ksm_functional_tests.c ----------------------------------------------------------

#[test]
fn test_unmerge() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(XCF, false);
    h.k.madvise_unmergeable(mm, 0, AREA).unwrap();
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

#[test]
fn test_unmerge_zero_pages() {
    let mut h = Host::functional();
    h.set(Sysfs::UseZeroPages(1));
    let mm = h.mmap_and_merge_range(ZERO_CONTENT, false);
    assert_eq!(h.k.mm_stat(mm).unwrap().ksm_zero_pages, u64::from(AREA));
    h.k.madvise_unmergeable(mm, 0, AREA / 2).unwrap();
    assert_eq!(h.k.mm_stat(mm).unwrap().ksm_zero_pages, u64::from(AREA / 2));
    for p in AREA / 2..AREA {
        h.k.write_page(mm, p, 5000 + u64::from(p)).unwrap(); // one word per page
    }
    assert_eq!(h.k.mm_stat(mm).unwrap().ksm_zero_pages, 0);
    assert_eq!(h.k.counters().ksm_zero_pages, 0);
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

#[test]
fn test_unmerge_discarded() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(XCF, false);
    h.k.unmap(mm, 0, AREA / 2).unwrap(); // MADV_DONTNEED
    h.k.madvise_unmergeable(mm, 0, AREA).unwrap();
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

/// userfaultfd write-protection is not modelled; the unmerge it exercises is the same.
#[test]
fn test_unmerge_uffd_wp() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(XCF, false);
    h.k.madvise_unmergeable(mm, 0, AREA).unwrap();
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

#[test]
fn test_prot_none() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(X11, false);
    for p in 0..AREA / 2 {
        h.k.write_page(mm, p, 7000 + u64::from(p)).unwrap(); // via /proc/self/mem
    }
    h.k.madvise_unmergeable(mm, AREA / 2, AREA).unwrap();
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

#[test]
fn test_prctl() {
    let mut h = Host::functional();
    let mm = h.k.add_mm(AREA, MmOptions::default()).unwrap();
    h.k.set_merge_any(h.now, mm, true).unwrap();
    assert!(h.k.mm_stat(mm).unwrap().ksm_merge_any);
    h.k.set_merge_any(h.now, mm, false).unwrap();
    assert!(!h.k.mm_stat(mm).unwrap().ksm_merge_any);
}

#[test]
fn test_prctl_fork() {
    let mut h = Host::functional();
    h.set(Sysfs::Run(2));
    let parent = h.k.add_mm(AREA, MmOptions::default()).unwrap();
    h.k.set_merge_any(h.now, parent, true).unwrap();
    let child = h.k.fork_mm(h.now, parent).unwrap();
    assert!(h.k.mm_stat(child).unwrap().ksm_merge_any);
    // the child fills 2 MiB and it merges
    h.k.populate(child, 0, AREA, |_| XCF).unwrap();
    h.set(Sysfs::Run(1));
    h.wait_scans(2);
    assert!(h.k.mm_stat(child).unwrap().ksm_merging_pages > 0);
}

/// exec is not modelled as such: the new image is a new mm that inherits
/// `MMF_VM_MERGE_ANY`, which is what the test checks.
#[test]
fn test_prctl_fork_exec() {
    let mut h = Host::functional();
    h.set(Sysfs::Run(2));
    let parent = h.k.add_mm(AREA, MmOptions::default()).unwrap();
    h.k.set_merge_any(h.now, parent, true).unwrap();
    let child = h.k.fork_mm(h.now, parent).unwrap();
    let inherited = h.k.mm_stat(child).unwrap().ksm_merge_any;
    h.k.exit_mm(child).unwrap();
    let exec = h.k.add_mm(AREA, MmOptions::default()).unwrap();
    h.k.set_merge_any(h.now, exec, inherited).unwrap();
    assert!(h.k.mm_stat(exec).unwrap().ksm_merge_any);
    h.k.populate(exec, 0, AREA, |_| XCF).unwrap();
    h.set(Sysfs::Run(1));
    h.wait_scans(2);
    assert!(h.k.mm_stat(exec).unwrap().ksm_merging_pages > 0);
}

#[test]
fn test_prctl_unmerge() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(XCF, true);
    h.k.set_merge_any(h.now, mm, false).unwrap();
    assert!(!h.maps_duplicates(mm, 0, AREA));
}

/// 6.18: fork does not copy the per-mm KSM counters.
#[test]
fn test_fork_ksm_merging_page_count() {
    let mut h = Host::functional();
    let mm = h.mmap_and_merge_range(XCF, false);
    let child = h.k.fork_mm(h.now, mm).unwrap();
    assert_eq!(h.k.mm_stat(child).unwrap().ksm_merging_pages, 0);
    assert!(h.k.mm_stat(mm).unwrap().ksm_merging_pages > 0);
    // the child's KSM mappings join the KSM page at its first visit, beyond the limit
    // if need be (max_page_sharing_bypass)
    h.wait_scans(2);
    assert_eq!(
        h.k.mm_stat(child).unwrap().ksm_merging_pages,
        u64::from(AREA)
    );
}
