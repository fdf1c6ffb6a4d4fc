//! What the attacker's clock shows when it writes one of its pages, and how it turns
//! N such timings into an answer.
//!
//! A write to a private, present, writable page of guest RAM completes without any
//! fault: the cost of a store that misses the caches. A write to a page that ksmd has
//! merged hits a write-protected PTE: an EPT violation exits to the host, which breaks
//! copy-on-write (`do_wp_page` → `wp_page_copy`: allocate a page, copy 4 KiB, remap,
//! flush the TLB entry) before the guest resumes. Both are drawn from log-normal
//! distributions (timings are positive and right-skewed) with the given medians and the
//! same `spread` (σ of the logarithm); on top, with a small probability, a write is
//! delayed by an exponentially distributed interruption (timer interrupt, host
//! preemption of the vCPU), which is what makes a single timing unreliable and the
//! attacker probe N pages. The default numbers are assumptions, documented with their
//! reasoning in `docs/side-channel.md`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

/// Write latency distributions, in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyModel {
    /// Median of a write to an unmerged page (no fault).
    pub write_median_ns: f64,
    /// Median of a write that breaks copy-on-write of a KSM page.
    pub cow_median_ns: f64,
    /// σ of the logarithm of both distributions.
    pub spread: f64,
    /// Chance that a write is also hit by an interruption.
    pub interference_probability: f64,
    /// Mean length of such an interruption.
    pub interference_mean_ns: f64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            write_median_ns: 250.0,
            cow_median_ns: 6_000.0,
            spread: 0.3,
            interference_probability: 0.02,
            interference_mean_ns: 20_000.0,
        }
    }
}

impl LatencyModel {
    /// One write's latency; `cow` when the page maps a KSM page.
    pub fn sample(&self, rng: &mut ChaCha8Rng, cow: bool) -> f64 {
        let median = if cow {
            self.cow_median_ns
        } else {
            self.write_median_ns
        };
        let mut ns = match LogNormal::new(median.ln(), self.spread) {
            Ok(d) => d.sample(rng),
            Err(_) => median,
        };
        if rng.random_bool(self.interference_probability) {
            if let Ok(d) = Exp::new(1.0 / self.interference_mean_ns) {
                ns += d.sample(rng);
            }
        }
        ns
    }
}

/// The attacker's rule: a write slower than `threshold_ns` is taken for a
/// copy-on-write fault, and the victim is said to run the software when at least
/// `min_slow_fraction` of the N writes were slow.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    pub threshold_ns: f64,
    pub min_slow_fraction: f64,
}

impl Default for Classifier {
    /// The threshold sits between the two default medians (their geometric mean is
    /// 1.2 µs; 1.5 µs leaves the fast writes' tail further behind); half the pages
    /// slow is a majority vote.
    fn default() -> Self {
        Classifier {
            threshold_ns: 1_500.0,
            min_slow_fraction: 0.5,
        }
    }
}

impl Classifier {
    /// Whether these timings say "the victim runs the software".
    pub fn says_runs(&self, latencies_ns: &[f64]) -> bool {
        if latencies_ns.is_empty() {
            return false;
        }
        let slow = latencies_ns
            .iter()
            .filter(|&&ns| ns > self.threshold_ns)
            .count();
        slow as f64 >= self.min_slow_fraction * latencies_ns.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng_stream;

    #[test]
    fn cow_writes_are_slow_and_plain_writes_fast() {
        let m = LatencyModel::default();
        let c = Classifier::default();
        let mut rng = rng_stream(1, "latency-test");
        let fast: Vec<f64> = (0..2000).map(|_| m.sample(&mut rng, false)).collect();
        let slow: Vec<f64> = (0..2000).map(|_| m.sample(&mut rng, true)).collect();
        let above = |v: &[f64]| v.iter().filter(|&&x| x > c.threshold_ns).count();
        // Only interruptions push a plain write over the threshold (2 % of writes).
        assert!(above(&fast) < 80, "{}", above(&fast));
        assert!(above(&slow) > 1990, "{}", above(&slow));
        assert!(c.says_runs(&slow[..32]) && !c.says_runs(&fast[..32]));
    }
}
