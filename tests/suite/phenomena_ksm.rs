//! Scenario library (issue 5), KSM phenomena: each test runs a shipped file from
//! `scenarios/` and checks the phenomenon its header claims from the simulated data.
//! Contrasts (THP `never`, a mixed fleet) are built by changing the loaded scenario.

use crate::common;
use crate::common::shipped;
use memsim::content::Contents;
use memsim::engine::SimTime;
use memsim::guest::{Guest, Owner, PageMove};
use memsim::ksm::thp::Region;
use memsim::ksm::{Ksmd, Sysfs};
use memsim::metrics::{HostSample, RunResult};
use memsim::scenario::{Scenario, Thp};
use memsim::workload::Shape;

const PAGE: u64 = 4096;

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// The first sample at or after `t_s`.
fn at(r: &RunResult, t_s: f64) -> &HostSample {
    r.host.iter().find(|h| h.t_s >= t_s).expect("sampled")
}

/// The first sample where `f` holds.
fn first(r: &RunResult, f: impl Fn(&HostSample) -> bool) -> Option<&HostSample> {
    r.host.iter().find(|h| f(h))
}

fn vmids(sc: &Scenario, hugepages: bool) -> Vec<u32> {
    sc.vms
        .iter()
        .filter(|v| v.hugepages == hugepages)
        .map(|v| v.vmid)
        .collect()
}

// ----- hugepages-vs-thp ----------------------------------------------------------------

#[test]
fn hugetlbfs_vms_are_invisible_to_ksm_while_thp_backed_ones_are_split_and_merged() {
    let sc = shipped("hugepages-vs-thp");
    let r = memsim::sim::run(&sc);
    let huge = vmids(&sc, true);
    assert!(!huge.is_empty() && !vmids(&sc, false).is_empty());
    // Hugetlbfs VMs: never merged, all their RAM resident from the start.
    for row in r.vms.iter().filter(|v| huge.contains(&v.vmid)) {
        assert_eq!(row.ksm_merging_pages, 0, "vm {} at {}", row.vmid, row.t_s);
        assert_eq!(row.host_resident_bytes, row.maxmem_bytes);
    }
    // ... and never scanned: without the THP VMs ksmd has nothing to look at.
    let mut only_huge = sc.clone();
    only_huge.vms.retain(|v| v.hugepages);
    let h = memsim::sim::run(&only_huge);
    assert!(h
        .host
        .iter()
        .all(|s| s.ksm_pages_scanned == 0 && s.ksm_saved_bytes == 0));
    assert!(h.host.iter().all(|s| s.anon_huge_pages_bytes == 0));

    // THP VMs: the workload faults in huge pages; merging splits them.
    let peak = r
        .host
        .iter()
        .map(|s| s.anon_huge_pages_bytes)
        .max()
        .unwrap();
    let at_peak = first(&r, |s| s.anon_huge_pages_bytes == peak).unwrap();
    let end = r.host.last().unwrap();
    assert!(
        peak >= 400 << 20,
        "both THP clones' memwork is huge: {} MiB",
        mib(peak)
    );
    assert!(
        at_peak.ksm_saved_bytes < end.ksm_saved_bytes / 2,
        "AnonHugePages peaks before most merging"
    );
    assert!(
        end.anon_huge_pages_bytes < peak / 4,
        "AnonHugePages {} MiB of {} MiB peak after merging",
        mib(end.anon_huge_pages_bytes),
        mib(peak)
    );
    // Where AnonHugePages fell, savings rose: every sample after the peak that lost
    // huge pages had gained savings since the peak.
    for w in r.host.windows(2).filter(|w| w[0].t_s >= at_peak.t_s) {
        if w[1].anon_huge_pages_bytes < w[0].anon_huge_pages_bytes {
            assert!(
                w[1].ksm_saved_bytes > at_peak.ksm_saved_bytes,
                "t={}",
                w[1].t_s
            );
        }
    }
    assert!(
        end.ksm_saved_bytes > 150 << 20,
        "{}",
        mib(end.ksm_saved_bytes)
    );
}

#[test]
fn thp_never_saves_the_same_without_any_split() {
    let sc = shipped("hugepages-vs-thp");
    let thp = memsim::sim::run(&sc);
    let mut never = sc.clone();
    never.host.thp = Thp::Never;
    let r = memsim::sim::run(&never);
    assert!(r.host.iter().all(|s| s.anon_huge_pages_bytes == 0));
    let (a, b) = (thp.host.last().unwrap(), r.host.last().unwrap());
    // Splitting costs TLB reach, not merging: the same pages merge.
    assert_eq!(a.ksm_pages_shared, b.ksm_pages_shared);
    assert_eq!(a.ksm_pages_sharing, b.ksm_pages_sharing);
    assert_eq!(a.ksm_saved_bytes, b.ksm_saved_bytes);
}

// ----- ksm-clones-vs-mixed ---------------------------------------------------------------

/// ksmd's pass length from what sysfs shows at `s`: the pages it visits (the guests'
/// resident RAM: untouched guest pages are not present) / `pages_to_scan` batches,
/// each followed by `sleep_millisecs`.
fn pass_length_s(s: &HostSample) -> f64 {
    let pages = (s.guest_resident_bytes / PAGE) as f64;
    pages / s.ksm_pages_to_scan as f64 * s.ksm_sleep_millisecs as f64 / 1000.0
}

/// Every clone on a template of its own: the same OS, nothing else in common.
fn mixed(sc: &Scenario) -> Scenario {
    let mut m = sc.clone();
    for v in &mut m.vms {
        v.template = Some(format!("own-{}", v.vmid));
    }
    m
}

#[test]
fn clones_of_one_template_save_several_times_what_a_mixed_fleet_saves() {
    let sc = shipped("ksm-clones-vs-mixed");
    let clones = memsim::sim::run(&sc);
    let fleet = memsim::sim::run(&mixed(&sc));
    let (c, m) = (
        clones.host.last().unwrap().ksm_saved_bytes as f64,
        fleet.host.last().unwrap().ksm_saved_bytes as f64,
    );
    // Content defaults (docs/scenario-format.md `content`, guest.md §6): clones share
    // every template-shared page; different templates of one OS only the family's
    // part of them. The ratio follows from `family_shared`.
    let family = sc.vms[0].content.family_shared;
    let expected = 1.0 / family;
    let ratio = c / m;
    assert!(
        m > 0.0,
        "a mixed fleet of one OS still shares its family's pages"
    );
    assert!(
        ratio > 0.8 * expected && ratio < 1.2 * expected,
        "clones saved {:.0} MiB, mixed {:.0} MiB: ratio {ratio:.2}, expected ≈ {expected:.1}",
        c / 1048576.0,
        m / 1048576.0
    );
}

#[test]
fn savings_appear_after_one_pass_and_mostly_within_three() {
    let sc = shipped("ksm-clones-vs-mixed");
    let r = memsim::sim::run(&sc);
    let start = first(&r, |s| s.ksm_run == 1).expect("ksmd runs");
    // Pass length once the guests' memory is faulted in (first second).
    let pass = pass_length_s(at(&r, start.t_s + 1.0));
    let end = r.host.last().unwrap().ksm_saved_bytes;
    let first_saving = first(&r, |s| s.ksm_saved_bytes > 0).expect("savings").t_s;
    let most = first(&r, |s| s.ksm_saved_bytes >= end * 9 / 10)
        .unwrap()
        .t_s;
    assert!(
        first_saving >= start.t_s + pass,
        "a page merges on its second visit: first saving at {first_saving} s, pass {pass:.1} s"
    );
    assert!(
        most <= start.t_s + 3.0 * pass,
        "90 % of the savings at {most} s, pass {pass:.1} s"
    );
    assert!(
        most >= start.t_s + 1.5 * pass,
        "the merge spreads over the second pass: {most} s"
    );
}

// ----- ksm-boot-merge-cow ----------------------------------------------------------------

/// Lab E1 (`lab_observed.md`), four 384 MiB clones, ksmd at 1 000 pages / 20 ms from
/// t = 0, memwork allocating 192 MiB per guest at t ≈ 50 s:
/// before the workloads (t = 45) `pages_shared` 6 732, `pages_sharing` 61 020;
/// while they allocated `pages_sharing` fell 61 020 → 46 726 (`cow_ksm` +14 400);
/// then the template merge: Δ`pages_shared` 32 431, `pages_sharing` 144 188 at the end.
const LAB_BOOT_SHARING: f64 = 61_020.0;
const LAB_COW_DROP: f64 = 61_020.0 - 46_726.0;
const LAB_TEMPLATE_SHARED: f64 = 32_431.0;
const LAB_END_SHARING: f64 = 144_188.0;

fn near(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

#[test]
fn clones_merge_their_boot_content_and_lose_part_of_it_to_copy_on_write() {
    let sc = shipped("ksm-boot-merge-cow");
    let r = memsim::sim::run(&sc);
    let alloc_s = 50.0;
    let boot = at(&r, alloc_s - 5.0);
    assert!(
        near(boot.ksm_pages_sharing as f64, LAB_BOOT_SHARING, 0.10),
        "boot merge: pages_sharing {} (lab 61 020)",
        boot.ksm_pages_sharing
    );
    // Four clones: every boot KSM page has three further sharers. The lab's 6 732
    // KSM pages held chains of one content (zeros) with > 256 sharers each, which
    // memsim's boot content (no in-guest duplicates) does not have.
    assert_eq!(boot.ksm_pages_sharing, 3 * boot.ksm_pages_shared);

    // The workloads' first allocations reuse the freed boot pages: copy-on-write
    // breaks, the copies cost host memory at once, sysfs sees them at ksmd's visit.
    let low = r
        .host
        .iter()
        .filter(|h| h.t_s >= alloc_s && h.t_s < alloc_s + 10.0)
        .min_by_key(|h| h.ksm_pages_sharing)
        .unwrap();
    let drop = (boot.ksm_pages_sharing - low.ksm_pages_sharing) as f64;
    assert!(
        near(drop, LAB_COW_DROP, 0.15),
        "pages_sharing fell {drop} (lab 14 294) to {} at t={}",
        low.ksm_pages_sharing,
        low.t_s
    );
    let saved_after = at(&r, alloc_s + 1.0).ksm_saved_bytes;
    assert!(
        saved_after + (drop as u64) * PAGE * 9 / 10 <= boot.ksm_saved_bytes,
        "host memory pays for the copies: saved {} → {} MiB",
        mib(boot.ksm_saved_bytes),
        mib(saved_after)
    );

    // Then the template pages merge, within the lab's ≈ 15 s.
    let end = r.host.last().unwrap();
    let shared = (end.ksm_pages_shared - low.ksm_pages_shared) as f64;
    assert!(
        near(shared, LAB_TEMPLATE_SHARED, 0.05),
        "template KSM pages {shared} (lab 32 431)"
    );
    assert!(
        near(end.ksm_pages_sharing as f64, LAB_END_SHARING, 0.05),
        "pages_sharing at the end {} (lab 144 188)",
        end.ksm_pages_sharing
    );
    let gained = end.ksm_pages_sharing - low.ksm_pages_sharing;
    let most = first(&r, |h| {
        h.t_s > low.t_s && h.ksm_pages_sharing >= low.ksm_pages_sharing + gained * 95 / 100
    })
    .unwrap();
    assert!(
        most.t_s <= alloc_s + 20.0,
        "95 % of the template merge by t={} (lab: ≈ 13 s after the allocation)",
        most.t_s
    );
}

// ----- the THP model behind them ---------------------------------------------------------

/// Two clones' page contents in one ksmd, on a THP host, with every boot page shared.
fn thp_clones() -> (Ksmd, Vec<(Contents, Guest)>) {
    let mut k = Ksmd::new(1);
    let vms = (0..2)
        .map(|i| {
            let app = common::process("app", Shape::Constant(0), 0.5, 0);
            let mut v = common::vm(100 + i, 64 * common::MIB, None, vec![app]);
            v.template = Some("t".into());
            v.content.kernel_shared = 1.0;
            v.content.anon_shared = 0.0;
            let g = Guest::boot(&v, 1, common::secs(10));
            let c = Contents::boot(&mut k, SimTime::ZERO, &v, (1, true), &g).unwrap();
            (c, g)
        })
        .collect();
    (k, vms)
}

fn owned(g: &Guest, owner: Owner) -> Vec<u32> {
    g.page_owners()
        .into_iter()
        .filter(|(o, _)| *o == owner)
        .flat_map(|(_, p)| p)
        .collect()
}

#[test]
fn ksmd_splits_the_huge_pages_it_merges_in_and_their_discards_are_freed_at_once() {
    let (mut k, mut vms) = thp_clones();
    let boot_huge = |k: &Ksmd, vms: &[(Contents, Guest)]| -> u64 {
        vms.iter().map(|(c, _)| c.anon_huge_pages(k)).sum()
    };
    let before = boot_huge(&k, &vms);
    assert!(before > 0, "boot faults map huge pages");
    // A fresh, unique page range in clone 0: huge, never merged.
    let (c0, g0) = &mut vms[0];
    let untouched = owned(g0, Owner::FreeUntouched);
    let fresh: Vec<u32> = untouched
        .iter()
        .copied()
        .filter(|p| p % 512 < 8)
        .take(8)
        .collect();
    let first_fresh = fresh[0];
    let touch = PageMove {
        from: Owner::FreeUntouched,
        to: Owner::AnonHot(0),
        pages: fresh.clone(),
    };
    assert_eq!(c0.apply(&mut k, &[touch]).unwrap(), 0);
    let with_fresh = boot_huge(&k, &vms);
    assert_eq!(with_fresh, before + fresh.len() as u64);

    k.set(SimTime::ZERO, Sysfs::Run(1)).unwrap();
    k.run_full_scans(3, common::secs(60));
    assert!(k.pages_saved() > 0);
    // Every boot region held a merged page: split. The unique range stays huge.
    let (c0, g0) = &mut vms[0];
    let huge = c0.anon_huge_pages(&k);
    assert_eq!(huge, fresh.len() as u64, "only the unique range is huge");
    assert_eq!(
        k.huge_regions(c0.mm()).unwrap().state(first_fresh),
        Region::Huge
    );

    // The balloon takes scattered free pages: those in split regions are 4 KiB pages
    // (freed at once); one from the huge range only splits its PMD (deferred).
    let boot_freed = owned(g0, Owner::FreeScattered);
    assert!(!boot_freed.is_empty(), "Linux frees boot memory");
    let give = |pages: Vec<u32>| PageMove {
        from: Owner::FreeScattered,
        to: Owner::Balloon,
        pages,
    };
    let n = boot_freed.len().min(16);
    let freed = c0.apply(&mut k, &[give(boot_freed[..n].to_vec())]).unwrap();
    assert_eq!(freed, n as u64);
    let free_it = PageMove {
        from: Owner::AnonHot(0),
        to: Owner::FreeScattered,
        pages: vec![first_fresh],
    };
    c0.apply(&mut k, &[free_it]).unwrap();
    assert_eq!(c0.apply(&mut k, &[give(vec![first_fresh])]).unwrap(), 0);
    assert_eq!(
        c0.anon_huge_pages(&k),
        0,
        "the PMD split takes the range out"
    );
    assert_eq!(
        k.huge_regions(c0.mm()).unwrap().state(first_fresh),
        Region::PmdSplit
    );
}
