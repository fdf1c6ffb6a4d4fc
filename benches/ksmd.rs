//! The simulated ksmd's own cost: scanning speed (wall ns per visited page) and memory
//! (bytes of simulator memory per guest page) on a 10 M-page host.
//!
//! The mix, per VM (40 VMs × 262 144 pages = 10.5 M pages, 40 GiB of guest memory):
//! 30 % guest-image pages identical across VMs, 10 % from 16 hot contents, 30 % unique,
//! 15 % zero-filled (`use_zero_pages=0`: they merge like any content), 5 % never touched,
//! 10 % written between passes by the guest (0.5 % of all pages per pass, new content).
//! Defaults otherwise (smart scan on, `max_page_sharing` 256); `sleep_millisecs=0` so
//! passes run back to back. After two warm-up passes (checksums, then merging), each
//! iteration is one full steady-state pass; "visited" = `pages_scanned + pages_skipped`.
//! Memory is measured by a counting global allocator (everything the simulator holds
//! for ksmd after the warm-up) and from the data structure sizes (`Ksmd::heap_bytes`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memsim::engine::SimTime;
use memsim::ksm::ksmd::{Ksmd, MmId, MmOptions, Sysfs, ZERO_CONTENT};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_peak() {
    PEAK.fetch_max(ALLOCATED.load(Ordering::Relaxed), Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        note_peak();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new, Ordering::Relaxed);
        note_peak();
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const VMS: u32 = 40;
const PAGES: u32 = 262_144;

fn content(vm: u32, p: u32) -> Option<u64> {
    let slot = p % 100;
    Some(match slot {
        0..=29 => 1_000 + u64::from(p),     // guest image
        30..=39 => 100 + u64::from(p % 16), // hot contents
        40..=69 => (1 << 40) + (u64::from(vm) << 20) + u64::from(p), // unique
        70..=84 => ZERO_CONTENT,
        85..=89 => return None,                                // untouched
        _ => (2 << 40) + (u64::from(vm) << 20) + u64::from(p), // written by the guest
    })
}

struct Host {
    k: Ksmd,
    mms: Vec<MmId>,
    fresh: u64,
    rng: u64,
}

impl Host {
    fn new() -> Host {
        let mut k = Ksmd::new(1);
        let t = SimTime::ZERO;
        k.set(t, Sysfs::SleepMillisecs(0)).unwrap();
        k.set(t, Sysfs::PagesToScan(10_000)).unwrap();
        let mut mms = Vec::new();
        for vm in 0..VMS {
            let mm = k.add_mm(PAGES, MmOptions::default()).unwrap();
            for p in 0..PAGES {
                if let Some(c) = content(vm, p) {
                    k.write_page(mm, p, c).unwrap();
                }
            }
            k.madvise_mergeable(t, mm, 0, PAGES).unwrap();
            mms.push(mm);
        }
        k.set(t, Sysfs::Run(1)).unwrap();
        Host {
            k,
            mms,
            fresh: 1 << 50,
            rng: 0x1234_5678,
        }
    }

    /// The guests write 0.5 % of all pages (inside their written 10 %).
    fn guest_writes(&mut self) {
        for _ in 0..(u64::from(VMS) * u64::from(PAGES) / 200) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let vm = (self.rng % u64::from(VMS)) as usize;
            let p = ((self.rng >> 20) % u64::from(PAGES / 100)) as u32 * 100
                + 90
                + (self.rng >> 50) as u32 % 10;
            self.fresh += 1;
            self.k.write_page(self.mms[vm], p, self.fresh).unwrap();
        }
    }

    /// One full pass; returns (wall time, visited pages).
    fn pass(&mut self) -> (Duration, u64) {
        self.guest_writes();
        let before = self.k.counters();
        let t0 = Instant::now();
        let after = self.k.run_full_scans(1, SimTime(u64::MAX));
        let dt = t0.elapsed();
        let visited = (after.pages_scanned - before.pages_scanned)
            + (after.pages_skipped - before.pages_skipped);
        (dt, visited)
    }
}

fn ksmd(c: &mut Criterion) {
    let base = ALLOCATED.load(Ordering::Relaxed);
    let mut h = Host::new();
    let guest_pages = u64::from(VMS) * u64::from(PAGES);
    let mut early = Vec::new();
    for i in 0..16 {
        let r = h.pass();
        if i >= 2 {
            early.push(r); // passes 3..16: smart scan still settling
        }
    }
    // steady state: every 9th pass scans the unique pages
    let mut sample = Vec::new();
    for _ in 0..9 {
        sample.push(h.pass());
    }
    let (ew, ev) = early
        .iter()
        .fold((Duration::ZERO, 0), |(a, b), (d, v)| (a + *d, b + v));
    eprintln!(
        "ksmd bench: passes 3-16: {:.1} ns per visited page",
        ew.as_nanos() as f64 / ev as f64
    );
    let held = ALLOCATED.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let (wall, visited) = sample
        .iter()
        .fold((Duration::ZERO, 0), |(a, b), (d, v)| (a + *d, b + v));
    let cnt = h.k.counters();
    eprintln!(
        "ksmd bench: steady state: {guest_pages} guest pages, visited {} per pass, {:.1} ns per visited page",
        visited / sample.len() as u64,
        wall.as_nanos() as f64 / visited as f64
    );
    eprintln!(
        "  memory: {:.2} bytes per guest page (allocator; peak {:.2} during the first passes), {:.2} (data structures), {} B per page in the page arrays",
        held as f64 / guest_pages as f64,
        peak as f64 / guest_pages as f64,
        h.k.heap_bytes() as f64 / guest_pages as f64,
        memsim::ksm::mm::Pages::BYTES_PER_PAGE
    );
    eprintln!(
        "  counters: shared {} sharing {} unshared {} volatile {} skipped {} chains {} dups {}; simulated pass {:.3} s",
        cnt.pages_shared,
        cnt.pages_sharing,
        cnt.pages_unshared,
        cnt.pages_volatile,
        cnt.pages_skipped,
        cnt.stable_node_chains,
        cnt.stable_node_dups,
        h.k.now().as_secs_f64() / cnt.full_scans as f64
    );
    let mut g = c.benchmark_group("ksmd");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(visited / sample.len() as u64));
    g.bench_function("steady_state_pass_10M_pages", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| h.pass().0).sum())
    });
    g.finish();
}

criterion_group!(benches, ksmd);
criterion_main!(benches);
