//! Proxmox VE's automatic ballooning, replayed exactly.
//!
//! Every ~10 s `pvestatd` (`PVE/Service/pvestatd.pm`, `auto_ballooning`) computes a
//! host-wide *goal*: how many bytes the VMs may take (positive) or must give back
//! (negative) so that host memory use sits at the node's `ballooning-target` percent
//! ([`goal`]). It then asks `compute_alg1` from `PVE/AutoBalloon.pm` (pve-manager)
//! for new balloon targets and sends one QMP `balloon` command per returned VM. The
//! allocator is stateless: each cycle starts from the guests' *actual* sizes.
//!
//! Only VMs with a running balloon (`balloon`), a configured minimum
//! (`balloon_min`), no `migrate` lock and non-zero `shares` take part in
//! [`compute_alg1`]. It splits them into VMs under memory pressure (little `freemem`) and VMs with room to
//! spare; a grow request serves the pressured VMs first and a shrink request takes
//! from the roomy ones first, each falling back to all VMs when that made no net
//! progress. Requests within ±10 MiB ([`DEAD_ZONE`]) do nothing.
//!
//! A pass hands the pool `Σ(current − balloon_min) + rest` out again in proportion
//! to `shares`, clamps each VM's share into `[balloon_min, maxmem]`, and moves each VM
//! at most `maxchange` away from its *original* `balloon`. VMs that need no move leave
//! the pool and their share is redistributed in the next iteration, until the pass
//! stops making progress. The result therefore is a proportional-share rebalance
//! gated by the goal's sign rather than a goal tracker: grow passes may shrink VMs
//! holding more than their share, and a VM at `maxmem` can flap by `maxchange` from
//! cycle to cycle. All of that is upstream behaviour and is reproduced here, down to
//! Perl's treatment of undefined fields and its integer/double arithmetic
//! (see `perl_num`).
//!
//! [`replay`] answers JSON-line cases with the same allocator (`memsim replay
//! autoballoon`).

mod perl_num;
mod replay;

use std::collections::BTreeMap;

use perl_num::PerlNum;
pub use replay::{replay, ReplayStats};

/// Per-VM input, as qemu-server's vmstatus gives it. None = undefined upstream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VmStatus {
    /// Current *actual* guest size in bytes (QMP `query-balloon`); unset when the
    /// query failed or the VM has no balloon device.
    pub balloon: Option<i64>,
    /// Configured minimum (`balloon` option × MiB); unset when auto-ballooning is off.
    pub balloon_min: Option<i64>,
    /// Guest RAM size in bytes.
    pub maxmem: Option<i64>,
    /// Relative weight; unset counts as 1000, 0 excludes the VM.
    pub shares: Option<i64>,
    /// Guest MemFree in bytes, when the guest reports statistics.
    pub freemem: Option<i64>,
    /// Config lock; only `migrate` excludes the VM.
    pub lock: Option<String>,
}

/// Largest change of one VM's balloon per cycle: 100 MiB, hard-coded in pvestatd.
pub const MAXCHANGE: i64 = 104_857_600;

/// |goal| <= this: no action.
pub const DEAD_ZONE: i64 = 10 * 1024 * 1024;

/// Weight of a VM whose `shares` is unset (qemu-server's schema default).
const DEFAULT_SHARES: i64 = 1000;

/// compute_alg1: returns exactly the hash upstream returns (only VMs it assigned), keyed like the input.
///
/// Values are bytes. Where upstream's answer is not a plain byte map, the result is
/// what pvestatd would act on:
///
/// * With `maxmem` undefined, upstream can store `undef` as a target (it copies the
///   undefined `maxmem`). pvestatd sends `int(undef)`, i.e. 0, so 0 is returned.
/// * With negative `shares` the shares of the pool can sum to 0 and upstream dies
///   with "Illegal division by zero"; pvestatd catches that and changes nothing, so
///   the result is empty.
/// * With `maxmem` undefined upstream's loop can drift: an `undef` target is not
///   `defined`, so the VM keeps counting from its original `balloon`, the same
///   non-zero change repeats every iteration and only `rest` moves. Such stretches
///   are fast-forwarded exactly (they can last billions of iterations upstream).
///   When one never ends, upstream never returns and pvestatd would hang without
///   sending anything, so the result is empty. The same holds if a pass is still
///   running 10 000 iterations beyond the (VMs in the pass + 2) iterations a pass
///   without `undef` targets can take. (vmstatus always sets `maxmem`, so none of
///   this happens on a real host.)
///
/// Arithmetic is exact in `i128` (no overflow is possible for `i64` inputs); results
/// outside `i64` (only with absurd inputs such as `balloon` near `i64::MAX` plus a
/// huge `maxchange`) saturate. Perl would switch to doubles in those ranges, so the
/// output matches upstream exactly as long as Perl's own integers do not overflow.
pub fn compute_alg1<K: Ord + Clone>(
    vms: &BTreeMap<K, VmStatus>,
    goal: i64,
    maxchange: i64,
) -> BTreeMap<K, i64> {
    let (keys, eligible): (Vec<&K>, Vec<Eligible>) = vms
        .iter()
        .filter_map(|(key, vm)| Eligible::new(vm).map(|e| (key, e)))
        .unzip();
    let mut alloc = Allocator::new(&eligible, maxchange);
    match alloc.run(i128::from(goal)) {
        Ok(()) => keys
            .into_iter()
            .zip(alloc.res)
            .filter_map(|(key, slot)| slot.map(|target| (key.clone(), target.to_bytes())))
            .collect(),
        Err(NoAnswer) => BTreeMap::new(),
    }
}

/// pvestatd's goal: int(memtotal * target / 100 - memused) with Perl's double arithmetic (spec a.3).
///
/// The product is an exact integer, `/ 100` a double division (an integer one only
/// for exact quotients of products above 2^53), and the subtraction stays integral
/// when that quotient is. Results beyond `i64` saturate.
pub fn goal(memtotal: u64, memused: u64, target_percent: u32) -> i64 {
    let value = PerlNum::from_exact(i128::from(memtotal))
        .multiply(i64::from(target_percent))
        .divide(PerlNum::Int(100))
        .subtract(memused)
        .trunc();
    saturate(value)
}

fn saturate(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Iterations beyond the worst case of a terminating pass after which a pass is
/// taken to be upstream's endless loop (see [`compute_alg1`]).
const ENDLESS_LOOP_GUARD: usize = 10_000;

/// Upstream would not return: it dies because a pool's shares sum to zero (only
/// possible with negative shares), or loops forever (only with `maxmem` undefined).
struct NoAnswer;

/// A value upstream may store: a number or `undef`. Arithmetic and comparisons see
/// `undef` as 0, but `defined` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scalar {
    Num(i128),
    Undef,
}

impl Scalar {
    fn num(self) -> i128 {
        match self {
            Scalar::Num(x) => x,
            Scalar::Undef => 0,
        }
    }

    /// What pvestatd sends for this target: its `int()`, so `undef` becomes 0.
    fn to_bytes(self) -> i64 {
        saturate(self.num())
    }
}

/// A VM that takes part in auto-ballooning, with the fields upstream reads.
struct Eligible {
    balloon: i128,
    balloon_min: i128,
    maxmem: Scalar,
    /// `S(v)`: the VM's weight, never 0.
    shares: i64,
    /// In upstream's "memory pressure" list: grown first, shrunk last.
    pressure: bool,
}

impl Eligible {
    /// `None` for VMs upstream skips: no running balloon, no configured minimum
    /// (both by Perl truthiness, so 0 counts as unset), a `migrate` lock, or shares 0.
    fn new(vm: &VmStatus) -> Option<Eligible> {
        let balloon = vm.balloon.filter(|&b| b != 0)?;
        let balloon_min = vm.balloon_min.filter(|&m| m != 0)?;
        if vm.lock.as_deref() == Some("migrate") || vm.shares == Some(0) {
            return None;
        }
        // A VM has room to give when its guest reports more than a quarter of its
        // minimum as free (compared as doubles, like Perl) and it is not below its
        // minimum already.
        let roomy = vm
            .freemem
            .is_some_and(|f| f != 0 && f as f64 > balloon_min as f64 * 0.25)
            && balloon >= balloon_min;
        Some(Eligible {
            balloon: i128::from(balloon),
            balloon_min: i128::from(balloon_min),
            maxmem: vm
                .maxmem
                .map_or(Scalar::Undef, |m| Scalar::Num(i128::from(m))),
            shares: vm.shares.unwrap_or(DEFAULT_SHARES),
            pressure: !roomy,
        })
    }

    /// Clamps a proportional target into `[balloon_min, maxmem]`; reports whether it
    /// had to. `maxmem` is tested first, so it wins when the bounds cross, and an
    /// undefined `maxmem` (0 in the comparison) is copied as `undef`.
    fn clamp(&self, desired: i128) -> (Scalar, bool) {
        if desired > self.maxmem.num() {
            (self.maxmem, true)
        } else if desired < self.balloon_min {
            (Scalar::Num(self.balloon_min), true)
        } else {
            (Scalar::Num(desired), false)
        }
    }

    /// The next target on the way to `desired`, at most `maxchange` from the
    /// original `balloon` (not from an earlier assignment in this call). `None`
    /// means the VM is done for this pass: it is already there, or it would have to
    /// grow while the pass may only shrink. Shrinking is allowed in grow passes.
    fn step_towards(&self, desired: Scalar, may_grow: bool, maxchange: i128) -> Option<Scalar> {
        let wanted = desired.num() - self.balloon;
        if may_grow && wanted > 0 {
            let new = self.balloon + maxchange;
            Some(if new > desired.num() {
                desired
            } else {
                Scalar::Num(new)
            })
        } else if wanted < 0 {
            let new = self.balloon - maxchange;
            Some(if new > desired.num() {
                Scalar::Num(new)
            } else {
                desired
            })
        } else {
            None
        }
    }
}

/// The shared state of one `compute_alg1` call.
struct Allocator<'a> {
    vms: &'a [Eligible],
    maxchange: i128,
    /// Upstream's result hash by VM index: `None` = no key. Entries are never
    /// removed, so a VM later found done keeps its earlier assignment.
    res: Vec<Option<Scalar>>,
}

/// What a VM does in one iteration of a pass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Move {
    /// Leaves the pass: at its share already, or would grow in a shrink pass.
    Done,
    /// Its step lands on its original `balloon`: nothing is written.
    Stay,
    /// Assigned this target.
    To(Scalar),
}

/// What one iteration of a pass did.
struct Iteration {
    /// Net bytes moved towards the pass's request.
    changes: i128,
    /// Some target was clamped or some assignment changed: try again.
    repeat: bool,
    /// Some assignment changed.
    progress: bool,
    /// No VM left the pass and no entry of the result changed, so the next
    /// iteration can differ only through `rest` (see [`Allocator::skip_drift`]).
    steady: bool,
}

impl<'a> Allocator<'a> {
    fn new(vms: &'a [Eligible], maxchange: i64) -> Self {
        Allocator {
            vms,
            maxchange: i128::from(maxchange),
            res: vec![None; vms.len()],
        }
    }

    /// Grow or shrink request with a fallback to all VMs when the preferred group
    /// made no net progress (`rest` did not move towards zero).
    fn run(&mut self, goal: i128) -> Result<(), NoAnswer> {
        let all: Vec<usize> = (0..self.vms.len()).collect();
        let (pressure, roomy): (Vec<usize>, Vec<usize>) =
            all.iter().copied().partition(|&i| self.vms[i].pressure);
        let dead_zone = i128::from(DEAD_ZONE);
        if goal > dead_zone {
            let rest = self.pass(&pressure, goal)?;
            if rest >= goal {
                self.pass(&all, rest)?;
            }
        } else if goal < -dead_zone {
            let rest = self.pass(&roomy, goal)?;
            if rest <= goal {
                self.pass(&all, rest)?;
            }
        }
        Ok(())
    }

    /// The value upstream continues from: the assignment made so far in this call
    /// if it is defined, else the VM's original `balloon`.
    fn current(&self, i: usize) -> i128 {
        match self.res[i] {
            Some(Scalar::Num(x)) => x,
            _ => self.vms[i].balloon,
        }
    }

    /// Tries to move `bytes` (signed; its sign decides whether VMs may grow) within
    /// `list`; returns the part that could not be moved.
    fn pass(&mut self, list: &[usize], bytes: i128) -> Result<i128, NoAnswer> {
        let may_grow = bytes > 0;
        let mut rest = bytes;
        let mut done = vec![false; self.vms.len()];
        let mut keep_going = true;
        let mut iterations_left = list.len() + 2 + ENDLESS_LOOP_GUARD;
        while rest != 0 && keep_going {
            iterations_left = iterations_left.checked_sub(1).ok_or(NoAnswer)?;
            let active: Vec<usize> = list.iter().copied().filter(|&i| !done[i]).collect();
            let step = self.iteration(&active, rest, may_grow, &mut done)?;
            rest -= step.changes;
            keep_going = step.repeat && step.progress;
            if keep_going && step.steady {
                rest = self.skip_drift(&active, rest, step.changes, may_grow)?;
            }
        }
        Ok(rest)
    }

    /// The pool of the `active` VMs beyond their minimums: `alloc_new` minus `rest`.
    fn allocated(&self, active: &[usize]) -> i128 {
        active
            .iter()
            .map(|&i| self.current(i) - self.vms[i].balloon_min)
            .sum()
    }

    fn shares_total(&self, active: &[usize]) -> Result<i128, NoAnswer> {
        let total: i128 = active.iter().map(|&i| i128::from(self.vms[i].shares)).sum();
        if total == 0 && !active.is_empty() {
            return Err(NoAnswer);
        }
        Ok(total)
    }

    /// Each active VM's move when `alloc_new` is split by shares, and whether any
    /// share had to be clamped. Reads the state, changes nothing.
    fn plan(
        &self,
        active: &[usize],
        alloc_new: i128,
        shares_total: i128,
        may_grow: bool,
    ) -> (Vec<Move>, bool) {
        let mut clamped_any = false;
        let moves = active
            .iter()
            .map(|&i| {
                let vm = &self.vms[i];
                let share = share_step(alloc_new, shares_total, vm.shares);
                let (desired, clamped) = vm.clamp(vm.balloon_min.saturating_add(share));
                clamped_any |= clamped;
                match vm.step_towards(desired, may_grow, self.maxchange) {
                    None => Move::Done,
                    Some(target) if target.num() == vm.balloon => Move::Stay,
                    Some(target) => Move::To(target),
                }
            })
            .collect();
        (moves, clamped_any)
    }

    /// Re-splits the pool of the `active` VMs plus `rest` by shares and moves each
    /// VM one step towards its share.
    fn iteration(
        &mut self,
        active: &[usize],
        rest: i128,
        may_grow: bool,
        done: &mut [bool],
    ) -> Result<Iteration, NoAnswer> {
        let shares_total = self.shares_total(active)?;
        let alloc_new = self.allocated(active) + rest;
        let (moves, clamped) = self.plan(active, alloc_new, shares_total, may_grow);
        let mut step = Iteration {
            changes: 0,
            repeat: clamped,
            progress: false,
            steady: true,
        };
        for (&i, &planned) in active.iter().zip(&moves) {
            match planned {
                Move::Done => {
                    done[i] = true;
                    step.steady = false;
                }
                Move::Stay => {}
                Move::To(target) => {
                    let change = target.num() - self.current(i);
                    step.steady &= self.res[i] == Some(target);
                    self.res[i] = Some(target);
                    if change != 0 {
                        step.changes += change;
                        step.repeat = true;
                        step.progress = true;
                    }
                }
            }
        }
        Ok(step)
    }

    /// Fast-forwards upstream's drift. After a steady iteration that still changed
    /// something, the changes come only from `undef` targets (an undefined `maxmem`):
    /// such a VM counts from its original `balloon` again, so every following
    /// iteration repeats the same plan and only `rest` moves, by `changes` each
    /// time, until the plan differs or `rest` hits 0. Upstream may loop like that for
    /// billions of iterations; this finds the end by galloping and bisection (each
    /// VM's move is a monotone step function of `rest`, so the plan stays the same
    /// on a prefix). Returns `rest` before the first differing iteration, or 0.
    /// With `changes` 0, or no end before `rest` leaves Perl's integer range,
    /// upstream never returns.
    fn skip_drift(
        &self,
        active: &[usize],
        rest: i128,
        changes: i128,
        may_grow: bool,
    ) -> Result<i128, NoAnswer> {
        if changes == 0 {
            return Err(NoAnswer);
        }
        let allocated = self.allocated(active);
        let shares_total = self.shares_total(active)?;
        let plan_at = |rest: i128| {
            self.plan(active, allocated + rest, shares_total, may_grow)
                .0
        };
        let reference = plan_at(rest + changes);
        let rest_after = |j: i128| rest - j * changes;
        let same = |j: i128| plan_at(rest_after(j)) == reference;

        let last = drift_room(rest, changes);
        let first_change = first_false(same, last);
        let hits_zero = (rest % changes == 0)
            .then(|| rest / changes)
            .filter(|&j| (0..=first_change.unwrap_or(last)).contains(&j));
        match (hits_zero, first_change) {
            (Some(_), _) => Ok(0),
            (None, Some(j)) => Ok(rest_after(j)),
            (None, None) => Err(NoAnswer),
        }
    }
}

/// How many drift steps of `changes` keep `rest` within Perl's native integers
/// (the range in which upstream's arithmetic is exact).
fn drift_room(rest: i128, changes: i128) -> i128 {
    let room = if changes > 0 {
        rest - i128::from(i64::MIN)
    } else {
        i128::from(u64::MAX) - rest
    };
    (room / changes.abs()).max(0)
}

/// Smallest `j` in `0..=last` with `!pred(j)`, for a predicate that holds on a
/// prefix; `None` if it holds throughout.
fn first_false(pred: impl Fn(i128) -> bool, last: i128) -> Option<i128> {
    // gallop to a failing bound, then bisect: pred(lo) holds, pred(hi) fails
    let (mut lo, mut hi) = (-1, 0);
    while hi <= last && pred(hi) {
        lo = hi;
        hi = if hi == 0 { 1 } else { hi.saturating_mul(2) };
    }
    if hi > last {
        if pred(last) {
            return None;
        }
        hi = last;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// A VM's proportional part of the pool, `int((alloc_new / shares_total) * shares)`
/// with Perl's mix of double and integer arithmetic. `shares_total` is non-zero.
fn share_step(alloc_new: i128, shares_total: i128, shares: i64) -> i128 {
    PerlNum::from_exact(alloc_new)
        .divide(PerlNum::from_exact(shares_total))
        .multiply(shares)
        .trunc()
}
