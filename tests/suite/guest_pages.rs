//! Guest page indices (`docs/ksm-integration.md` step 1): after every step of random
//! scenarios — workloads growing and shrinking, balloon inflate and deflate, OOM kills,
//! swap, free page reporting, Windows and Linux — the owners' index sets partition
//! `0..memory / 4 KiB`, their sizes match the guest's counts, and the page-move log
//! replayed from boot gives exactly the owners of now.

use crate::common;

use common::*;
use memsim::guest::{Guest, Owner};
use memsim::scenario::{Os, VmConfig};
use memsim::workload::{ProcessSpec, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

const PAGE: u64 = 4096;

fn random_process(rng: &mut ChaCha8Rng, k: usize, memory: u64) -> ProcessSpec {
    let size = |rng: &mut ChaCha8Rng| rng.random_range(0..memory * 3 / 4);
    let anon = match rng.random_range(0..3) {
        0 => Shape::Constant(size(rng)),
        1 => Shape::Ramp {
            from: size(rng),
            to: size(rng),
            start: secs(rng.random_range(0..40)),
            over: secs(rng.random_range(1..60)),
        },
        _ => Shape::Step {
            initial: size(rng),
            steps: (0..3)
                .map(|_| (secs(rng.random_range(0..90)), size(rng)))
                .collect(),
        },
    };
    let mut p = process(
        &format!("p{k}"),
        anon,
        rng.random_range(0.0..=1.0),
        rng.random_range(0..memory / 4),
    );
    p.read_rate = rng.random_range(0..16 * MIB);
    p.write_rate = rng.random_range(0..64 * MIB);
    p.oom_score_adj = rng.random_range(-1000..=1000);
    p.restart_after = rng.random_bool(0.5).then(|| secs(rng.random_range(1..20)));
    p
}

fn random_vm(rng: &mut ChaCha8Rng) -> VmConfig {
    let memory = rng.random_range(192..=768) * MIB;
    let procs = (0..rng.random_range(0..4))
        .map(|k| random_process(rng, k, memory))
        .collect();
    let mut cfg = vm(100, memory, Some(memory / 4), procs);
    if rng.random_bool(0.3) {
        cfg.os = Os::Windows;
    }
    cfg.swap = [0, 64 * MIB, 256 * MIB][rng.random_range(0..3)];
    cfg.swappiness = [0, 60, 100, 200][rng.random_range(0..4)];
    cfg.deflate_on_oom = rng.random_bool(0.5);
    cfg.free_page_reporting = rng.random_bool(0.5);
    cfg
}

/// Checks the partition and the counts; returns each index's owner.
fn check(g: &Guest, ram: u64) -> Vec<Owner> {
    let mut owner_of: Vec<Option<Owner>> = vec![None; ram as usize];
    let mut size: HashMap<Owner, u64> = HashMap::new();
    for (owner, pages) in g.page_owners() {
        for &p in &pages {
            assert!(u64::from(p) < ram, "page {p} beyond RAM ({owner:?})");
            let slot = &mut owner_of[p as usize];
            assert_eq!(*slot, None, "page {p} owned by {slot:?} and {owner:?}");
            *slot = Some(owner);
        }
        *size.entry(owner).or_default() += pages.len() as u64;
    }
    let n = |o: Owner| size.get(&o).copied().unwrap_or(0);
    let sum = |f: &dyn Fn(&Owner) -> bool| size.iter().filter(|(o, _)| f(o)).map(|(_, n)| n).sum();
    let free = n(Owner::FreeUntouched) + n(Owner::FreeScattered) + n(Owner::FreeContig);
    assert_eq!(free, g.mem_free());
    assert_eq!(n(Owner::Kernel), g.kernel());
    assert_eq!(n(Owner::Balloon), g.balloon().actual());
    assert_eq!(
        ram - n(Owner::FreeUntouched) - n(Owner::Balloon),
        g.touched()
    );
    let cache: u64 = sum(&|o| matches!(o, Owner::CacheCold | Owner::CacheHot(_)));
    assert_eq!(cache, g.cached());
    for (i, (name, rss, _, _)) in g.processes().into_iter().enumerate() {
        let i = i as u32;
        assert_eq!(n(Owner::AnonHot(i)) + n(Owner::AnonCold(i)), rss, "{name}");
    }
    owner_of
        .into_iter()
        .enumerate()
        .map(|(p, o)| o.unwrap_or_else(|| panic!("page {p} has no owner")))
        .collect()
}

#[test]
fn page_indices_partition_guest_ram_and_follow_the_counts() {
    let mut kills = 0;
    let mut swapped = 0;
    let mut inflated = 0;
    for seed in 0..12 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cfg = random_vm(&mut rng);
        let ram = cfg.memory / PAGE;
        let mut g = Guest::boot(&cfg, seed, secs(100));
        g.record_page_moves();
        let mut replay = check(&g, ram);
        for t in 1..=100 {
            if rng.random_bool(0.1) {
                g.set_balloon_target(rng.random_range(cfg.memory / 4..=cfg.memory));
            }
            g.step(secs(t), secs(1));
            if t % 2 == 0 {
                g.report_free_pages();
            }
            for m in g.take_page_moves() {
                for &p in &m.pages {
                    let o = &mut replay[p as usize];
                    assert_eq!(*o, m.from, "seed {seed} t {t}: page {p} moved {m:?}");
                    *o = m.to;
                }
            }
            assert_eq!(replay, check(&g, ram), "seed {seed} t {t}");
            inflated = inflated.max(g.balloon().actual());
        }
        kills += g.counters().oom_kills;
        swapped += g.counters().swap_out;
    }
    // The random scenarios do reach the interesting paths.
    assert!(
        kills > 0 && swapped > 0 && inflated > 0,
        "{kills} {swapped} {inflated}"
    );
}
