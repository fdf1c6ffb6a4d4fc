//! Invariants of `compute_alg1` on thousands of seeded random inputs (see
//! `alg1_cases/mod.rs` for what the generator covers), and agreement of `replay` with
//! `compute_alg1` on the same inputs written as JSON.

use crate::alg1_cases;

use std::collections::BTreeMap;

use alg1_cases::Case;
use memsim::autoballoon::{compute_alg1, replay, VmStatus, DEAD_ZONE, MAXCHANGE};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const CASES: usize = 6000;

fn cases(seed: u64) -> (ChaCha8Rng, Vec<Case>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cases = (0..CASES).map(|_| alg1_cases::case(&mut rng)).collect();
    (rng, cases)
}

fn run(case: &Case) -> BTreeMap<String, i64> {
    compute_alg1(&case.vms, case.goal, case.maxchange.unwrap_or(MAXCHANGE))
}

fn eligible(vm: &VmStatus) -> bool {
    vm.balloon.unwrap_or(0) != 0
        && vm.balloon_min.unwrap_or(0) != 0
        && vm.lock.as_deref() != Some("migrate")
        && vm.shares != Some(0)
}

#[test]
fn results_respect_upstream_invariants() {
    let (_, cases) = cases(0x5eed_0001);
    let mut nonempty = 0;
    for (n, case) in cases.iter().enumerate() {
        let maxchange = case.maxchange.unwrap_or(MAXCHANGE);
        let res = run(case);
        if case.goal.abs() <= DEAD_ZONE || maxchange == 0 {
            assert!(res.is_empty(), "case {n}: {case:?} -> {res:?}");
        }
        nonempty += usize::from(!res.is_empty());
        for (vmid, &target) in &res {
            let vm = &case.vms[vmid];
            assert!(
                eligible(vm),
                "case {n}: ineligible {vmid} assigned: {case:?}"
            );
            let balloon = vm.balloon.unwrap_or(0);
            assert_ne!(target, balloon, "case {n}: {case:?}");
            assert!(
                (i128::from(target) - i128::from(balloon)).abs() <= i128::from(maxchange).abs(),
                "case {n}: step too large: {case:?} -> {res:?}"
            );
            let min = vm.balloon_min.unwrap_or(0);
            if let Some(max) = vm.maxmem.filter(|&max| min <= max && maxchange >= 0) {
                let range = balloon.min(min)..=balloon.max(max);
                assert!(range.contains(&target), "case {n}: {case:?} -> {res:?}");
            }
        }
    }
    // the generator must exercise the allocator, not only its exclusions
    assert!(
        nonempty > CASES / 3,
        "only {nonempty} of {CASES} cases changed anything"
    );
}

#[test]
fn vm_order_does_not_matter() {
    let (mut rng, cases) = cases(0x5eed_0002);
    for (n, case) in cases.iter().enumerate() {
        // rename the VMs so that they sort in a shuffled order
        let mut order: Vec<usize> = (0..case.vms.len()).collect();
        order.shuffle(&mut rng);
        let renamed: BTreeMap<usize, (&String, &VmStatus)> =
            order.into_iter().zip(&case.vms).collect();
        let vms: BTreeMap<usize, VmStatus> = renamed
            .iter()
            .map(|(&k, (_, vm))| (k, (*vm).clone()))
            .collect();
        let res: BTreeMap<String, i64> =
            compute_alg1(&vms, case.goal, case.maxchange.unwrap_or(MAXCHANGE))
                .into_iter()
                .map(|(k, target)| (renamed[&k].0.clone(), target))
                .collect();
        assert_eq!(res, run(case), "case {n}: {case:?}");
    }
}

#[test]
fn replay_answers_like_compute_alg1() {
    let (mut rng, cases) = cases(0x5eed_0003);
    let mut input = String::new();
    for (n, case) in cases.iter().enumerate() {
        let line = alg1_cases::to_json(case, Some(Value::from(n)), &mut rng);
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stats = replay(input.as_bytes(), &mut out, &mut err).expect("in-memory I/O");
    assert_eq!(String::from_utf8_lossy(&err), "");
    assert_eq!((stats.cases_ok, stats.lines_bad), (CASES, 0));
    let answers: Vec<Value> = out
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("replay writes JSON"))
        .collect();
    assert_eq!(answers.len(), CASES);
    for (n, (case, answer)) in cases.iter().zip(&answers).enumerate() {
        let expected = serde_json::json!({ "id": n, "res": run(case) });
        assert_eq!(answer, &expected, "case {n}: {case:?}");
    }
}
