//! Upstream's own regression checks (pve-manager `test/balloontest.pl`, T1..T19)
//! and the worked examples of the design note, against `compute_alg1`.
//!
//! The test uses decimal units (MB = 10^6, GB = 10^9) and `maxchange` = 10^8 in every
//! call. Expected values are upstream's; the extra examples were checked by running
//! upstream's module.

use std::collections::BTreeMap;

use memsim::autoballoon::{compute_alg1, goal, VmStatus, DEAD_ZONE, MAXCHANGE};

const MB: i64 = 1_000_000;
const GB: i64 = 1_000_000_000;
const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;
/// `maxchange` of upstream's test: 100 decimal MB.
const TEST_MAXCHANGE: i64 = 100 * MB;

type Status = BTreeMap<u32, VmStatus>;

fn vm(maxmem: i64, shares: Option<i64>, balloon: i64, balloon_min: i64, freemem: i64) -> VmStatus {
    VmStatus {
        balloon: Some(balloon),
        balloon_min: Some(balloon_min),
        maxmem: Some(maxmem),
        shares,
        freemem: Some(freemem),
        lock: None,
    }
}

fn expect(pairs: &[(u32, i64)]) -> BTreeMap<u32, i64> {
    pairs.iter().copied().collect()
}

fn status1() -> Status {
    Status::from([
        (100, vm(2 * GB, Some(2000), GB, GB, 0)),
        (101, vm(2 * GB, Some(1000), GB, GB, 0)),
    ])
}

fn status2() -> Status {
    Status::from([
        (100, vm(2 * GB, Some(2000), 2 * GB, 2 * GB, 0)),
        (101, vm(2 * GB, Some(1000), GB, GB, 0)),
    ])
}

fn status3() -> Status {
    Status::from([
        (100, vm(2 * GB, Some(2000), 2 * GB, 2 * GB, 0)),
        (101, vm(2 * GB, Some(1000), GB + 7 * MB, GB, 0)),
        (102, vm(2 * GB, Some(1000), GB, GB, 512 * MB)),
    ])
}

/// Result of a closed-loop simulation.
struct Sim {
    /// Last target of every VM that ever changed.
    sum: BTreeMap<u32, i64>,
    /// Final state (balloons and freemem updated).
    state: Status,
    /// Calls of `compute_alg1`, counting the final one without change.
    rounds: usize,
    /// Goal left after the last round.
    goal: i64,
}

/// The test's `absim`: apply each result instantly (freemem follows the change,
/// floored at 0), reduce the goal by the net change, repeat until nothing changes.
fn simulate(start: &Status, mut goal: i64, maxchange: i64) -> Sim {
    let mut state = start.clone();
    let mut sum = BTreeMap::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let res = compute_alg1(&state, goal, maxchange);
        let (mut net, mut moved) = (0, 0);
        for (vmid, target) in res {
            let vm = state.get_mut(&vmid).expect("result only names known VMs");
            let diff = target - vm.balloon.unwrap_or(0);
            if diff != 0 {
                vm.freemem = Some((vm.freemem.unwrap_or(0) + diff).max(0));
                vm.balloon = Some(target);
                sum.insert(vmid, target);
                net += diff;
                moved += diff.abs();
            }
        }
        goal -= net;
        if moved == 0 {
            return Sim {
                sum,
                state,
                rounds,
                goal,
            };
        }
    }
}

fn alg1(status: &Status, goal: i64) -> BTreeMap<u32, i64> {
    compute_alg1(status, goal, TEST_MAXCHANGE)
}

fn sim(status: &Status, goal: i64) -> Sim {
    simulate(status, goal, TEST_MAXCHANGE)
}

/// Final state of T16, which upstream's test feeds to T17..T19.
fn status3_after_t16() -> Status {
    sim(&status3(), 593 * MB).state
}

#[test]
fn t01_to_t04_status1_single_calls() {
    assert_eq!(alg1(&status1(), 0), expect(&[]));
    // 2:1 split by shares
    assert_eq!(
        alg1(&status1(), 90 * MB),
        expect(&[(100, 1060 * MB), (101, 1030 * MB)])
    );
    // per-call step clamp
    assert_eq!(
        alg1(&status1(), 150 * MB),
        expect(&[(100, 1100 * MB), (101, 1050 * MB)])
    );
    assert_eq!(
        alg1(&status1(), 270 * MB),
        expect(&[(100, 1100 * MB), (101, 1090 * MB)])
    );
}

#[test]
fn t05_to_t08_status1_simulations() {
    let cases = [
        (180, (1120, 1060), 3),
        (270, (1180, 1090), 3),
        (600, (1300, 1300), 5),
        (900, (1600, 1300), 7),
    ];
    for (goal_mb, (a, b), rounds) in cases {
        let run = sim(&status1(), goal_mb * MB);
        assert_eq!(
            run.sum,
            expect(&[(100, a * MB), (101, b * MB)]),
            "goal {goal_mb} MB"
        );
        assert_eq!((run.rounds, run.goal), (rounds, 0), "goal {goal_mb} MB");
    }
}

#[test]
fn t09_to_t11_status2_vm_pinned_at_max() {
    assert_eq!(alg1(&status2(), 0), expect(&[]));
    assert_eq!(alg1(&status2(), 18 * MB), expect(&[(101, 1018 * MB)]));
    assert_eq!(alg1(&status2(), 500 * MB), expect(&[(101, 1100 * MB)]));
}

#[test]
fn t12_to_t15_status3_single_calls() {
    assert_eq!(alg1(&status3(), 0), expect(&[]));
    // T13 is the design note's worked example (b.6): 101 first shrinks by 1 MB,
    // then gets the whole pool once 100 (at max) leaves it.
    assert_eq!(alg1(&status3(), 11 * MB), expect(&[(101, 1018 * MB)]));
    assert_eq!(alg1(&status3(), 80 * MB), expect(&[(101, 1087 * MB)]));
    assert_eq!(alg1(&status3(), 200 * MB), expect(&[(101, 1107 * MB)]));
}

#[test]
fn t16_status3_simulation_and_its_final_state() {
    let run = sim(&status3(), 593 * MB);
    assert_eq!(run.sum, expect(&[(101, 1300 * MB), (102, 1300 * MB)]));
    assert_eq!((run.rounds, run.goal), (9, 0));
    let after = Status::from([
        (100, vm(2 * GB, Some(2000), 2 * GB, 2 * GB, 0)),
        (101, vm(2 * GB, Some(1000), 1300 * MB, GB, 293 * MB)),
        (102, vm(2 * GB, Some(1000), 1300 * MB, GB, 812 * MB)),
    ]);
    assert_eq!(run.state, after);
}

#[test]
fn t17_to_t19_shrinking_from_t16_state() {
    let cases = [
        (200, (1200 * MB, 1200 * MB), 2),
        // 101 drops out of the "free" list once its freemem is below 25 % of its minimum
        (400, (1200 * MB, GB), 4),
        // the free list stalls at 102's minimum; the all-VMs pass shrinks 101
        (593, (1007 * MB, GB), 6),
    ];
    for (shrink_mb, (a, b), rounds) in cases {
        let run = sim(&status3_after_t16(), -shrink_mb * MB);
        assert_eq!(
            run.sum,
            expect(&[(101, a), (102, b)]),
            "goal -{shrink_mb} MB"
        );
        assert_eq!((run.rounds, run.goal), (rounds, 0), "goal -{shrink_mb} MB");
    }
}

#[test]
fn grow_pass_shrinks_a_vm_above_its_share() {
    let status = Status::from([
        (1, vm(4 * GIB, None, 4 * GIB, GIB, 0)),
        (2, vm(4 * GIB, None, GIB, GIB, 0)),
    ]);
    assert_eq!(
        compute_alg1(&status, 50 * MIB, MAXCHANGE),
        expect(&[(1, 4 * GIB - 100 * MIB), (2, GIB + 100 * MIB)])
    );
}

#[test]
fn vm_at_maxmem_flaps_with_period_two() {
    let mut status = Status::from([
        (1, vm(8 * GIB, None, 8 * GIB, GIB, 0)),
        (2, vm(2 * GIB, None, 2 * GIB, GIB, 0)),
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let res = compute_alg1(&status, GIB, MAXCHANGE);
        for (vmid, target) in &res {
            status.get_mut(vmid).expect("known VM").balloon = Some(*target);
        }
        seen.push(res);
    }
    let down = expect(&[(1, 8 * GIB - 100 * MIB)]);
    let up = expect(&[(1, 8 * GIB)]);
    assert_eq!(seen, [down.clone(), up.clone(), down, up]);
}

#[test]
fn pve_docs_shares_example() {
    // qm docs: a database VM with shares 3000 and three web VMs with the default
    // 1000 split the memory above their minimums 3:1:1:1. Host 32 GiB, 16 GiB used,
    // target 80 %.
    let goal = goal(32 * GIB as u64, 16 * GIB as u64, 80);
    assert_eq!(goal, 10_307_921_510);
    let web = vm(16 * GIB, None, 2 * GIB, 2 * GIB, 0);
    let status = Status::from([
        (101, vm(16 * GIB, Some(3000), 2 * GIB, 2 * GIB, 0)),
        (102, web.clone()),
        (103, web.clone()),
        (104, web),
    ]);
    let run = simulate(&status, goal, MAXCHANGE);
    assert_eq!(
        run.sum,
        expect(&[
            (101, 7_301_444_404),
            (102, 3_865_470_566),
            (103, 3_865_470_566),
            (104, 3_865_470_566)
        ])
    );
    assert_eq!((run.rounds, run.goal), (51, 0));
    let extra = |vmid| run.sum[&vmid] - 2 * GIB;
    assert!((extra(101) - 3 * extra(102)).abs() <= 3);
}

#[test]
fn dead_zone_is_inclusive() {
    let status = status1();
    for g in [-DEAD_ZONE, -1, 0, 1, DEAD_ZONE] {
        assert_eq!(compute_alg1(&status, g, MAXCHANGE), expect(&[]), "goal {g}");
    }
    assert_eq!(
        compute_alg1(&status, DEAD_ZONE + 1, MAXCHANGE).len(),
        2,
        "just above the dead zone"
    );
}

#[test]
fn undefined_maxmem_is_zero_in_comparisons_and_copied_as_undef() {
    // desired > undef (0): desired becomes undef; the shrink step then keeps
    // balloon - maxchange because it is above 0
    let status = BTreeMap::from([(
        1,
        VmStatus {
            balloon: Some(4 * GIB),
            balloon_min: Some(GIB),
            ..VmStatus::default()
        },
    )]);
    assert_eq!(
        compute_alg1(&status, -50 * MIB, MAXCHANGE),
        expect(&[(1, 4 * GIB - 100 * MIB)])
    );
}

#[test]
fn endless_upstream_loop_yields_no_change() {
    // Upstream never returns here: the VM's target is undef (copied from maxmem),
    // which does not count as defined, so the same change repeats forever.
    let status = BTreeMap::from([(
        1,
        VmStatus {
            balloon: Some(50_000_000),
            balloon_min: Some(GIB),
            ..VmStatus::default()
        },
    )]);
    assert_eq!(compute_alg1(&status, 50 * MIB, MAXCHANGE), expect(&[]));
}

/// A negative `balloon` with `maxmem` undefined: each iteration stores `undef` and
/// `rest` drifts down by `-balloon` until the VM's share is no longer above 0
/// (`undef` in the comparison); then it is clamped to its minimum and gets one
/// step, `balloon + maxchange`.
fn drifting_vm(balloon: i64) -> BTreeMap<u32, VmStatus> {
    BTreeMap::from([(
        1,
        VmStatus {
            balloon: Some(balloon),
            balloon_min: Some(GIB),
            shares: Some(1),
            ..VmStatus::default()
        },
    )])
}

#[test]
fn drift_through_undefined_maxmem_ends_like_upstream() {
    // upstream needs 12 584 iterations for this one (checked with the Perl module)
    assert_eq!(
        compute_alg1(&drifting_vm(-1000), 12 * MIB, MAXCHANGE),
        expect(&[(1, MAXCHANGE - 1000)])
    );
    // ~10^15 iterations upstream: only the fast-forward gets here
    assert_eq!(
        compute_alg1(&drifting_vm(-1), 1_000_000_000_000_000, MAXCHANGE),
        expect(&[(1, MAXCHANGE - 1)])
    );
}

#[test]
fn zero_share_total_yields_no_change() {
    // Upstream dies with "Illegal division by zero"; pvestatd then changes nothing.
    let status = Status::from([
        (1, vm(2 * GB, Some(-1000), GB, GB, 0)),
        (2, vm(2 * GB, Some(1000), GB, GB, 0)),
    ]);
    assert_eq!(compute_alg1(&status, 50 * MIB, MAXCHANGE), expect(&[]));
}

#[test]
fn goal_follows_perl_arithmetic() {
    // values printed by perl 5.36 for int($total * $target / 100 - $used)
    assert_eq!(goal(34_359_738_368, 17_179_869_184, 80), 10_307_921_510);
    assert_eq!(goal(1, 9_007_199_254_740_991, 50), -9_007_199_254_740_990);
    assert_eq!(goal(0, 0, 80), 0);
    assert_eq!(goal(16 * GIB as u64, 16 * GIB as u64, 100), 0);
    assert_eq!(goal(1000, 0, 0), 0);
    // 99.99 -> 99 and -0.5 -> 0: truncation toward zero
    assert_eq!(goal(9999, 0, 1), 99);
    assert_eq!(goal(50, 1, 1), 0);
}
