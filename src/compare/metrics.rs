//! The figures a comparison shows for each run, and for each policy over its seeds.
//!
//! Most come straight from the run's [`Summary`], so comparison.csv agrees with every
//! run's summary.json; the rest are what the summary leaves out and a comparison
//! needs: memused as a share of MemTotal (comparable whatever the host size), ksmd's
//! CPU as a share of one core, and the host's own swap traffic.

use crate::metrics::{RunResult, Summary};

/// One run's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    pub summary: Summary,
    pub peak_memused_pct: f64,
    pub mean_memused_pct: f64,
    /// Guest RAM the host swapped out / faulted back in, over the run.
    pub host_swap_out_pages: u64,
    pub host_swap_in_pages: u64,
}

impl RunMetrics {
    pub fn of(result: &RunResult) -> RunMetrics {
        let pct: Vec<f64> = result
            .host
            .iter()
            .filter(|s| s.mem_total_bytes > 0)
            .map(|s| s.memused_bytes as f64 * 100.0 / s.mem_total_bytes as f64)
            .collect();
        RunMetrics {
            summary: result.summary.clone(),
            peak_memused_pct: pct.iter().copied().fold(0.0, f64::max),
            mean_memused_pct: pct.iter().sum::<f64>() / pct.len().max(1) as f64,
            host_swap_out_pages: result.host.iter().map(|s| s.host_swap_out_pages).sum(),
            host_swap_in_pages: result.host.iter().map(|s| s.host_swap_in_pages).sum(),
        }
    }

    /// ksmd's CPU time as a share of one core over the run. The CPU time comes from the
    /// per-page cost model calibrated against the real kernel (`src/ksm/timing.rs`).
    pub fn ksmd_cpu_pct(&self) -> f64 {
        100.0 * self.summary.ksmd_cpu_s / self.summary.duration_s.max(1.0)
    }
}

/// A column of comparison.csv: a number per run, shown as the mean over the seeds, and
/// with `spread` also as the minimum and maximum (where seeds tell different stories).
pub struct Column {
    /// The CSV column, named like the summary field it comes from (unit last).
    pub name: &'static str,
    pub spread: bool,
    pub value: fn(&RunMetrics) -> f64,
}

const fn column(name: &'static str, spread: bool, value: fn(&RunMetrics) -> f64) -> Column {
    Column {
        name,
        spread,
        value,
    }
}

/// Every numeric column, in CSV order.
pub const COLUMNS: [Column; 19] = [
    column("peak_memused_bytes", true, |m| {
        m.summary.peak_memused_bytes as f64
    }),
    column("peak_memused_pct", true, |m| m.peak_memused_pct),
    column("mean_memused_bytes", false, |m| {
        m.summary.mean_memused_bytes as f64
    }),
    column("mean_memused_pct", false, |m| m.mean_memused_pct),
    column("peak_ksm_saved_bytes", false, |m| {
        m.summary.peak_ksm_saved_bytes as f64
    }),
    column("mean_ksm_saved_bytes", false, |m| {
        m.summary.mean_ksm_saved_bytes as f64
    }),
    column("ksm_pages_scanned", false, |m| {
        m.summary.ksm_pages_scanned as f64
    }),
    column("ksmd_cpu_pct", false, RunMetrics::ksmd_cpu_pct),
    column("balloon_moved_bytes", false, |m| {
        m.summary.balloon_moved_bytes as f64
    }),
    column("balloon_commands", false, |m| {
        m.summary.balloon_commands as f64
    }),
    column("guest_swap_out_pages", true, |m| {
        m.summary.guest_swap_out_pages as f64
    }),
    column("guest_swap_in_pages", true, |m| {
        m.summary.guest_swap_in_pages as f64
    }),
    column("cache_refault_pages", false, |m| {
        m.summary.cache_refault_pages as f64
    }),
    column("host_swap_out_pages", false, |m| {
        m.host_swap_out_pages as f64
    }),
    column("host_swap_in_pages", false, |m| m.host_swap_in_pages as f64),
    column("peak_host_swap_used_bytes", false, |m| {
        m.summary.peak_host_swap_used_bytes as f64
    }),
    column("guest_oom_kills", true, |m| {
        m.summary.guest_oom_kills as f64
    }),
    column("host_oom_kills", true, |m| m.summary.host_oom_kills as f64),
    column("time_above_target_s", true, |m| {
        m.summary.time_above_target_s
    }),
];

/// Mean, minimum and maximum of one column over a policy's seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Over `runs` in seed order (the sum's order is fixed, so the mean is too).
    pub fn of(runs: &[RunMetrics], value: fn(&RunMetrics) -> f64) -> Spread {
        let values: Vec<f64> = runs.iter().map(value).collect();
        Spread {
            mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
            min: values.iter().copied().reduce(f64::min).unwrap_or(0.0),
            max: values.iter().copied().reduce(f64::max).unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tally;
    use crate::metrics::HostSample;

    #[test]
    fn shares_of_memtotal_and_of_a_core() {
        let sample = |used: u64, swap_in: u64| HostSample {
            mem_total_bytes: 1000,
            memused_bytes: used,
            host_swap_in_pages: swap_in,
            ..HostSample::default()
        };
        let result = RunResult {
            host: vec![sample(500, 1), sample(900, 0), sample(700, 2)],
            summary: Summary {
                duration_s: 200.0,
                ksmd_cpu_s: 3.0,
                ..Summary::default()
            },
            ..RunResult::default()
        };
        let m = RunMetrics::of(&result);
        assert_eq!(m.peak_memused_pct, 90.0);
        assert_eq!(m.mean_memused_pct, 70.0);
        assert_eq!(m.host_swap_in_pages, 3);
        assert_eq!(m.ksmd_cpu_pct(), 1.5);
    }

    #[test]
    fn spreads_and_tallies() {
        let run = |kills: u64| RunMetrics {
            summary: Summary {
                guest_oom_kills: kills,
                ..Summary::default()
            },
            peak_memused_pct: 0.0,
            mean_memused_pct: 0.0,
            host_swap_out_pages: 0,
            host_swap_in_pages: 0,
        };
        let s = Spread::of(&[run(1), run(5), run(3)], |m| {
            m.summary.guest_oom_kills as f64
        });
        assert_eq!(
            s,
            Spread {
                mean: 3.0,
                min: 1.0,
                max: 5.0
            }
        );
        assert_eq!(tally(["a", "b", "a", "a"]), "a ×3, b");
        assert_eq!(tally(Vec::<u32>::new()), "");
    }
}
