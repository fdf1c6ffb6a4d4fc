//! Simulated time, the event queue and the seeded random streams.
//!
//! Time is an integer count of nanoseconds ([`SimTime`]); no float ever decides when
//! something happens. Events wait in one queue ordered by `(time, sequence)`: two
//! events scheduled for the same instant run in the order they were scheduled, so a
//! run is a pure function of the scenario and its seed.
//!
//! Every component that draws random numbers gets its own stream
//! ([`rng_stream`]), derived from the scenario seed and a stable label (component
//! name and VM id). Adding a VM therefore does not change the draws of the others,
//! and the draws do not depend on thread scheduling.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A point in simulated time, or a duration, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const NS_PER_SEC: u64 = 1_000_000_000;

    pub const fn from_secs(s: u64) -> SimTime {
        SimTime(s * Self::NS_PER_SEC)
    }

    pub const fn from_millis(ms: u64) -> SimTime {
        SimTime(ms * 1_000_000)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds as a float, for output and for smooth workload shapes only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::NS_PER_SEC as f64
    }

    /// How much of something produced at `per_sec` per second accrues over this
    /// duration (integer, rounded down).
    pub fn of_rate(self, per_sec: u64) -> u64 {
        (u128::from(per_sec) * u128::from(self.0) / u128::from(Self::NS_PER_SEC)) as u64
    }

    pub fn saturating_sub(self, other: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(other.0))
    }
}

impl std::ops::Add for SimTime {
    type Output = SimTime;
    fn add(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for SimTime {
    /// Exact decimal seconds: `10`, `0.5`, `3600.000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / Self::NS_PER_SEC;
        let frac = self.0 % Self::NS_PER_SEC;
        if frac == 0 {
            write!(f, "{secs}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{secs}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// A queue of events of type `E`, ordered by `(time, insertion sequence)`.
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(SimTime, u64, Slot<E>)>>,
    seq: u64,
}

/// Wrapper that keeps the payload out of the ordering: ordering is by (time, seq) only.
struct Slot<E>(E);

impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn schedule(&mut self, at: SimTime, event: E) {
        self.heap.push(Reverse((at, self.seq, Slot(event))));
        self.seq += 1;
    }

    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.heap.pop().map(|Reverse((t, _, Slot(e)))| (t, e))
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// A random stream for one component, derived from the scenario seed and a label
/// (FNV-1a over the label bytes, mixed with the seed by SplitMix64).
pub fn rng_stream(seed: u64, label: &str) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ h))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn equal_times_pop_in_insertion_order() {
        let mut q = EventQueue::default();
        q.schedule(SimTime(5), "b");
        q.schedule(SimTime(1), "a");
        q.schedule(SimTime(5), "c");
        q.schedule(SimTime(5), "d");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn streams_differ_by_label_and_repeat_by_seed() {
        let a: u64 = rng_stream(1, "vm/100").random();
        let b: u64 = rng_stream(1, "vm/101").random();
        let a2: u64 = rng_stream(1, "vm/100").random();
        assert_ne!(a, b);
        assert_eq!(a, a2);
    }

    #[test]
    fn display_is_exact_decimal_seconds() {
        assert_eq!(SimTime::from_secs(10).to_string(), "10");
        assert_eq!(SimTime::from_millis(500).to_string(), "0.5");
        assert_eq!(SimTime(3_600_000_000_001).to_string(), "3600.000000001");
    }
}
