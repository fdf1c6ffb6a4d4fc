//! Memory demand over time: what each process inside a guest wants.
//!
//! A guest runs a few processes. Each has an anonymous working set whose size follows a
//! [`Shape`] over simulated time, a hot fraction (pages it touches every second and that
//! must stay resident), a file working set it re-reads (page cache it wants to keep hot),
//! a rate of streaming reads that leave once-read (cold) page cache behind, and an
//! `oom_score_adj`. The guest model turns demand into allocations, reclaim and faults;
//! this module only says what is wanted.
//!
//! Presets (`idle`, `web`, `database`, `desktop`, `batch`) scale with the VM's memory
//! so one name fits a 2 GiB and a 64 GiB VM. Their numbers are modelling assumptions
//! (documented on [`preset`]), not measurements.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::engine::SimTime;

/// A size in bytes as a function of simulated time (absolute, since the run began).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Constant(u64),
    /// Linear from `from` to `to` between `start` and `start + over`, flat outside.
    Ramp {
        from: u64,
        to: u64,
        start: SimTime,
        over: SimTime,
    },
    /// `initial` until the first step, then each `(at, size)` from `at` on.
    Step {
        initial: u64,
        steps: Vec<(SimTime, u64)>,
    },
    /// `mean + amplitude * sin(2π (t + phase) / period)`, floored at 0.
    Diurnal {
        mean: u64,
        amplitude: u64,
        period: SimTime,
        phase: SimTime,
    },
    /// `base`, plus `burst` during bursts whose gaps and lengths are exponentially
    /// distributed with the given means. The schedule is drawn once per process from
    /// its own random stream (see [`Demand::new`]).
    Bursty {
        base: u64,
        burst: u64,
        every: SimTime,
        length: SimTime,
    },
    /// Piecewise-linear through `(t, size)` points (sorted by time), flat outside.
    Trace(Vec<(SimTime, u64)>),
}

/// One process of a workload, as the scenario describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    pub name: String,
    /// Anonymous working set over time.
    pub anon: Shape,
    /// Fraction of the anonymous set touched every second (must stay resident).
    pub hot_fraction: f64,
    /// File working set the process keeps re-reading (hot page cache), bytes.
    pub cache: u64,
    /// Streaming reads that leave once-read (cold) page cache behind, bytes per second.
    pub read_rate: u64,
    /// Anonymous memory rewritten per second, bytes (dirties pages; breaks KSM sharing).
    pub write_rate: u64,
    pub oom_score_adj: i32,
    /// Restart this long after an OOM kill; `None` = stays dead.
    pub restart_after: Option<SimTime>,
}

/// A process's demand, with any random schedule already drawn.
#[derive(Clone, Debug)]
pub struct Demand {
    shape: Shape,
    /// For `Bursty`: sorted, non-overlapping `[start, end)` burst intervals.
    bursts: Vec<(SimTime, SimTime)>,
}

impl Demand {
    /// Draws the burst schedule (if any) up to `horizon` from `rng`.
    pub fn new(shape: &Shape, horizon: SimTime, rng: &mut ChaCha8Rng) -> Demand {
        let bursts = match shape {
            Shape::Bursty { every, length, .. } => draw_bursts(*every, *length, horizon, rng),
            _ => Vec::new(),
        };
        Demand {
            shape: shape.clone(),
            bursts,
        }
    }

    /// Wanted anonymous bytes at time `t`.
    pub fn at(&self, t: SimTime) -> u64 {
        match &self.shape {
            Shape::Constant(v) => *v,
            Shape::Ramp {
                from,
                to,
                start,
                over,
            } => ramp(*from, *to, *start, *over, t),
            Shape::Step { initial, steps } => steps
                .iter()
                .take_while(|(at, _)| *at <= t)
                .last()
                .map_or(*initial, |(_, v)| *v),
            Shape::Diurnal {
                mean,
                amplitude,
                period,
                phase,
            } => {
                let x = (t.as_nanos() as f64 + phase.as_nanos() as f64) / period.as_nanos() as f64;
                let v = *mean as f64 + *amplitude as f64 * (std::f64::consts::TAU * x).sin();
                v.max(0.0) as u64
            }
            Shape::Bursty { base, burst, .. } => {
                let idx = self.bursts.partition_point(|(s, _)| *s <= t);
                let in_burst = idx > 0 && t < self.bursts[idx - 1].1;
                base + if in_burst { *burst } else { 0 }
            }
            Shape::Trace(points) => trace_at(points, t),
        }
    }
}

fn ramp(from: u64, to: u64, start: SimTime, over: SimTime, t: SimTime) -> u64 {
    if t <= start || over.as_nanos() == 0 {
        return if t < start || over.as_nanos() != 0 {
            from
        } else {
            to
        };
    }
    let done = t.as_nanos() - start.as_nanos();
    if done >= over.as_nanos() {
        return to;
    }
    let frac = done as f64 / over.as_nanos() as f64;
    (from as f64 + (to as f64 - from as f64) * frac).round() as u64
}

fn trace_at(points: &[(SimTime, u64)], t: SimTime) -> u64 {
    let idx = points.partition_point(|(at, _)| *at <= t);
    match (idx.checked_sub(1).map(|i| points[i]), points.get(idx)) {
        (None, Some((_, v))) => *v,
        (Some((_, v)), None) => v,
        (Some((t0, v0)), Some((t1, v1))) => ramp(v0, *v1, t0, SimTime(t1.0 - t0.0), t),
        (None, None) => 0,
    }
}

fn draw_bursts(
    every: SimTime,
    length: SimTime,
    horizon: SimTime,
    rng: &mut ChaCha8Rng,
) -> Vec<(SimTime, SimTime)> {
    let mut out = Vec::new();
    if every.as_nanos() == 0 || length.as_nanos() == 0 {
        return out;
    }
    let gap = Exp::new(1.0 / every.as_secs_f64()).expect("positive mean gap");
    let len = Exp::new(1.0 / length.as_secs_f64()).expect("positive mean length");
    let mut t = 0.0f64;
    let end = horizon.as_secs_f64();
    while t < end {
        t += gap.sample(rng);
        let l: f64 = len.sample(rng).max(1.0);
        let start = SimTime((t * 1e9) as u64);
        let stop = SimTime(((t + l) * 1e9) as u64);
        if start < horizon {
            out.push((start, stop));
        }
        t += l;
        // Keep the stream position independent of float rounding in `t`.
        let _: u32 = rng.random();
    }
    out
}

/// The processes a named preset runs in a VM of `memory` bytes, or `None` for an
/// unknown name. Fractions are of the VM's memory; all are modelling assumptions:
///
/// | preset | processes (anon, hot, file cache, reads) |
/// |---|---|
/// | `idle` | system 3 % (hot 0.3), cache 5 % |
/// | `web` | system 3 %; nginx+php 20 % (hot 0.5), cache 20 %, reads 256 KiB/s |
/// | `database` | system 3 %; postgres 45 % (hot 0.6, adj 0), cache 30 %, reads 1 MiB/s, writes 512 KiB/s |
/// | `desktop` | system 3 %; session 25 % diurnal ±10 % (hot 0.4), cache 15 % |
/// | `batch` | system 3 %; job bursting from 10 % to 60 % (hot 0.8), reads 4 MiB/s |
pub fn preset(name: &str, memory: u64) -> Option<Vec<ProcessSpec>> {
    let pct = |p: u64| memory * p / 100;
    let system = ProcessSpec {
        name: "system".into(),
        anon: Shape::Constant(pct(3)),
        hot_fraction: 0.3,
        cache: 0,
        read_rate: 0,
        write_rate: 0,
        oom_score_adj: 0,
        restart_after: None,
    };
    let proc_ = |name: &str, anon: Shape, hot: f64, cache: u64| ProcessSpec {
        name: name.into(),
        anon,
        hot_fraction: hot,
        cache,
        read_rate: 0,
        write_rate: 0,
        oom_score_adj: 0,
        restart_after: Some(SimTime::from_secs(60)),
    };
    let procs = match name {
        "idle" => vec![ProcessSpec {
            cache: pct(5),
            ..system
        }],
        "web" => vec![
            system,
            ProcessSpec {
                read_rate: 256 << 10,
                ..proc_("nginx", Shape::Constant(pct(20)), 0.5, pct(20))
            },
        ],
        "database" => vec![
            system,
            ProcessSpec {
                read_rate: 1 << 20,
                write_rate: 512 << 10,
                ..proc_("postgres", Shape::Constant(pct(45)), 0.6, pct(30))
            },
        ],
        "desktop" => vec![
            system,
            proc_(
                "session",
                Shape::Diurnal {
                    mean: pct(25),
                    amplitude: pct(10),
                    period: SimTime::from_secs(86_400),
                    phase: SimTime::ZERO,
                },
                0.4,
                pct(15),
            ),
        ],
        "batch" => vec![
            system,
            ProcessSpec {
                read_rate: 4 << 20,
                ..proc_(
                    "job",
                    Shape::Bursty {
                        base: pct(10),
                        burst: pct(50),
                        every: SimTime::from_secs(1800),
                        length: SimTime::from_secs(600),
                    },
                    0.8,
                    0,
                )
            },
        ],
        _ => return None,
    };
    Some(procs)
}

/// Names accepted by [`preset`], for error messages.
pub const PRESETS: &[&str] = &["idle", "web", "database", "desktop", "batch"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng_stream;

    fn demand(shape: Shape) -> Demand {
        Demand::new(&shape, SimTime::from_secs(86_400), &mut rng_stream(7, "t"))
    }

    #[test]
    fn ramp_is_flat_outside_and_linear_inside() {
        let d = demand(Shape::Ramp {
            from: 100,
            to: 300,
            start: SimTime::from_secs(10),
            over: SimTime::from_secs(20),
        });
        assert_eq!(d.at(SimTime::from_secs(0)), 100);
        assert_eq!(d.at(SimTime::from_secs(20)), 200);
        assert_eq!(d.at(SimTime::from_secs(30)), 300);
        assert_eq!(d.at(SimTime::from_secs(99)), 300);
    }

    #[test]
    fn step_and_trace_follow_their_points() {
        let s = demand(Shape::Step {
            initial: 1,
            steps: vec![(SimTime::from_secs(5), 2), (SimTime::from_secs(9), 3)],
        });
        assert_eq!(
            [0, 5, 8, 9].map(|t| s.at(SimTime::from_secs(t))),
            [1, 2, 2, 3]
        );
        let tr = demand(Shape::Trace(vec![
            (SimTime::from_secs(10), 0),
            (SimTime::from_secs(20), 1000),
        ]));
        assert_eq!(
            [0, 15, 25].map(|t| tr.at(SimTime::from_secs(t))),
            [0, 500, 1000]
        );
    }

    #[test]
    fn bursty_alternates_and_repeats_with_seed() {
        let shape = Shape::Bursty {
            base: 10,
            burst: 90,
            every: SimTime::from_secs(300),
            length: SimTime::from_secs(60),
        };
        let a = demand(shape.clone());
        let b = demand(shape);
        let values: Vec<u64> = (0..86_400)
            .step_by(10)
            .map(|t| a.at(SimTime::from_secs(t)))
            .collect();
        assert!(values.contains(&10) && values.contains(&100));
        assert!((0..86_400)
            .step_by(10)
            .all(|t| a.at(SimTime::from_secs(t)) == b.at(SimTime::from_secs(t))));
    }

    #[test]
    fn presets_scale_with_memory_and_unknown_is_none() {
        let small = preset("database", 4 << 30).unwrap();
        let big = preset("database", 8 << 30).unwrap();
        let anon = |p: &[ProcessSpec]| match p[1].anon {
            Shape::Constant(v) => v,
            _ => unreachable!(),
        };
        assert_eq!(anon(&big), 2 * anon(&small));
        assert!(preset("nosuch", 1 << 30).is_none());
        assert!(PRESETS.iter().all(|p| preset(p, 1 << 30).is_some()));
    }
}
