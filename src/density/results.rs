//! What a search found: every evaluated (policy, count, seed) with its measures, and
//! what follows from them — each policy's answer, density.csv, the density plot and the
//! terminal report.
//!
//! Everything here is computed from the evaluations alone, sorted by (policy, count,
//! seed), and the measures are kept as integers (pages, bytes, nanoseconds): a merge of
//! shards, which reads them back from JSON, computes exactly the same outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Definition, Limits};
use crate::metrics::RunResult;
use crate::policy::Policy;
use crate::report::comparisons::{write_capacity, Capacity, CapacityPanel};

const MIB: f64 = (1u64 << 20) as f64;
const PAGE_BYTES: u64 = 4096;

/// The figures a count is judged by, from one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measures {
    pub guest_oom_kills: u64,
    pub host_oom_kills: u64,
    /// The most pages swapped in during one sample interval: the guests' (summed over
    /// the VMs) and the host's.
    pub peak_swap_in_pages: u64,
    pub sample_interval_ns: u64,
    /// memused and MemTotal at the sample where memused was the largest share.
    pub peak_memused_bytes: u64,
    pub mem_total_bytes: u64,
}

impl Measures {
    pub fn of(result: &RunResult, sample_interval_ns: u64) -> Measures {
        let mut swap_in: BTreeMap<u64, u64> = BTreeMap::new();
        let key = |t_s: f64| (t_s * 1e9).round() as u64;
        for s in &result.vms {
            *swap_in.entry(key(s.t_s)).or_default() += s.swap_in_pages;
        }
        for s in &result.host {
            *swap_in.entry(key(s.t_s)).or_default() += s.host_swap_in_pages;
        }
        let share = |used: u64, total: u64| used as f64 / total as f64;
        let peak = result
            .host
            .iter()
            .filter(|s| s.mem_total_bytes > 0)
            .map(|s| (s.memused_bytes, s.mem_total_bytes))
            .reduce(|a, b| {
                if share(b.0, b.1) > share(a.0, a.1) {
                    b
                } else {
                    a
                }
            })
            .unwrap_or((0, 0));
        Measures {
            guest_oom_kills: result.summary.guest_oom_kills,
            host_oom_kills: result.summary.host_oom_kills,
            peak_swap_in_pages: swap_in.values().copied().max().unwrap_or(0),
            sample_interval_ns,
            peak_memused_bytes: peak.0,
            mem_total_bytes: peak.1,
        }
    }

    /// Guest OOM kills and VMs killed by the host's OOM killer.
    pub fn oom_kills(&self) -> u64 {
        self.guest_oom_kills + self.host_oom_kills
    }

    pub fn peak_swap_in_mib_s(&self) -> f64 {
        match self.sample_interval_ns {
            0 => 0.0,
            ns => (self.peak_swap_in_pages * PAGE_BYTES) as f64 / MIB / (ns as f64 / 1e9),
        }
    }

    pub fn peak_memused_pct(&self) -> f64 {
        match self.mem_total_bytes {
            0 => 0.0,
            total => self.peak_memused_bytes as f64 * 100.0 / total as f64,
        }
    }

    /// The limits this run breaks: (short name for the CSV, description).
    pub fn exceeded(&self, limits: &Limits) -> Vec<(&'static str, String)> {
        let mut over = Vec::new();
        if self.oom_kills() > limits.max_oom_kills {
            let what = format!("OOM kills {} > {}", self.oom_kills(), limits.max_oom_kills);
            over.push(("oom_kills", what));
        }
        if let Some(max) = limits
            .max_swap_in_mib_s
            .filter(|&m| self.peak_swap_in_mib_s() > m)
        {
            let what = format!("swap-in {:.3} MiB/s > {max}", self.peak_swap_in_mib_s());
            over.push(("swap_in", what));
        }
        if let Some(max) = limits
            .max_host_used_pct
            .filter(|&m| self.peak_memused_pct() > m)
        {
            let what = format!("host memused {:.2} % > {max}", self.peak_memused_pct());
            over.push(("host_used", what));
        }
        over
    }
}

/// How one (policy, count, seed) went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ran(Measures),
    /// The loader refused the scenario at this count: its problems.
    NotLoaded(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    #[serde(with = "super::policy_name")]
    pub policy: Policy,
    pub count: u32,
    pub seed: u64,
    pub outcome: Outcome,
}

impl Evaluation {
    /// Whether the host carries this count: it loads and every limit holds.
    pub fn within(&self, limits: &Limits) -> bool {
        match &self.outcome {
            Outcome::Ran(m) => m.exceeded(limits).is_empty(),
            Outcome::NotLoaded(_) => false,
        }
    }

    /// Why the host does not carry this count; empty if it does.
    fn why_not(&self, limits: &Limits) -> String {
        match &self.outcome {
            Outcome::Ran(m) => {
                let over: Vec<String> = m.exceeded(limits).into_iter().map(|(_, w)| w).collect();
                over.join(", ")
            }
            Outcome::NotLoaded(note) => format!("does not load: {note}"),
        }
    }
}

/// One policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub policy: Policy,
    /// The largest count every seed carries; `None` if not even the search's minimum.
    pub count: Option<u32>,
    /// The largest count each seed carries on its own, in seed order.
    pub per_seed: Vec<Option<u32>>,
    /// What stopped it: the next count tried and why it is out, or the range's end.
    pub stopped_by: String,
}

/// The evaluations of a search (or of some of its policies), sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub definition: Definition,
    pub evaluations: Vec<Evaluation>,
}

impl Results {
    /// Sorts `evaluations` by policy (in the definition's order), count and seed.
    pub fn new(definition: Definition, mut evaluations: Vec<Evaluation>) -> Results {
        let position = |list: &[u64], x: u64| list.iter().position(|&s| s == x);
        let policy = |p: Policy| definition.policies.iter().position(|&q| q == p);
        evaluations.sort_by_key(|e| {
            (
                policy(e.policy),
                e.count,
                position(&definition.seeds, e.seed),
            )
        });
        Results {
            definition,
            evaluations,
        }
    }

    fn of_policy(&self, policy: Policy) -> impl Iterator<Item = &Evaluation> {
        self.evaluations.iter().filter(move |e| e.policy == policy)
    }

    /// The answer for each of `policies`. The search never tries a count above a
    /// seed's first failure, so a seed's answer is the largest count it carried.
    pub fn answers(&self, policies: &[Policy]) -> Vec<Answer> {
        let def = &self.definition;
        policies
            .iter()
            .map(|&policy| {
                let per_seed: Vec<Option<u32>> = def
                    .seeds
                    .iter()
                    .map(|&seed| {
                        self.of_policy(policy)
                            .filter(|e| e.seed == seed && e.within(&def.limits))
                            .map(|e| e.count)
                            .max()
                    })
                    .collect();
                let count = per_seed.iter().copied().min().flatten();
                Answer {
                    policy,
                    count,
                    stopped_by: self.stopped_by(policy, count),
                    per_seed,
                }
            })
            .collect()
    }

    /// The first evaluation above `count` that some seed failed, described.
    fn stopped_by(&self, policy: Policy, count: Option<u32>) -> String {
        let failed = self
            .of_policy(policy)
            .filter(|e| count.is_none_or(|c| e.count > c))
            .find(|e| !e.within(&self.definition.limits));
        match failed {
            Some(e) if self.definition.seeds.len() > 1 => {
                format!(
                    "{} (seed {}): {}",
                    e.count,
                    e.seed,
                    e.why_not(&self.definition.limits)
                )
            }
            Some(e) => format!("{}: {}", e.count, e.why_not(&self.definition.limits)),
            None => format!("--max {} reached", self.definition.max.unwrap_or(0)),
        }
    }

    /// density.csv: every evaluation, in order.
    pub fn csv(&self) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "policy",
            "count",
            "seed",
            "within_limits",
            "guest_oom_kills",
            "host_oom_kills",
            "peak_swap_in_mib_s",
            "peak_memused_pct",
            "exceeded",
            "note",
        ])?;
        let limits = &self.definition.limits;
        for e in &self.evaluations {
            let mut row = vec![
                e.policy.to_string(),
                e.count.to_string(),
                e.seed.to_string(),
                e.within(limits).to_string(),
            ];
            match &e.outcome {
                Outcome::Ran(m) => {
                    let over: Vec<&str> = m.exceeded(limits).into_iter().map(|(n, _)| n).collect();
                    row.extend([
                        m.guest_oom_kills.to_string(),
                        m.host_oom_kills.to_string(),
                        format!("{:.3}", m.peak_swap_in_mib_s()),
                        format!("{:.2}", m.peak_memused_pct()),
                        over.join(";"),
                        String::new(),
                    ]);
                }
                Outcome::NotLoaded(note) => {
                    row.extend(["", "", "", "", "", note].map(String::from));
                }
            }
            w.write_record(&row)?;
        }
        Ok(w.into_inner().map_err(|e| e.into_error())?)
    }

    /// The density plot: per policy and count, the worst seed of each measure.
    fn figure(&self) -> Capacity {
        type Measure = fn(&Measures) -> f64;
        let def = &self.definition;
        let panel = |title, unit, measure: Measure, limit| CapacityPanel {
            title,
            unit,
            lines: def
                .policies
                .iter()
                .map(|&p| (p, self.worst(p, measure)))
                .filter(|(_, points)| !points.is_empty())
                .collect(),
            limit,
        };
        let seeds = match def.seeds.len() {
            1 => "one seed".to_string(),
            n => format!("worst of {n} seeds"),
        };
        Capacity {
            title: format!(
                "{}: how many {} VMs fit? ({seeds})",
                def.scenario, def.group
            ),
            x_desc: format!("{} VMs", def.group),
            policies: def.policies.clone(),
            panels: vec![
                panel(
                    "peak host memused (pvestatd)",
                    "% of MemTotal",
                    Measures::peak_memused_pct,
                    def.limits.max_host_used_pct,
                ),
                panel(
                    "peak swap-in, guests + host",
                    "MiB/s",
                    Measures::peak_swap_in_mib_s,
                    def.limits.max_swap_in_mib_s,
                ),
                panel(
                    "OOM kills, guest + host",
                    "kills",
                    |m| m.oom_kills() as f64,
                    Some(def.limits.max_oom_kills as f64),
                ),
            ],
        }
    }

    /// (count, largest `measure` over the seeds run at that count), by count.
    fn worst(&self, policy: Policy, measure: fn(&Measures) -> f64) -> Vec<(f64, f64)> {
        let mut by_count: BTreeMap<u32, f64> = BTreeMap::new();
        for e in self.of_policy(policy) {
            if let Outcome::Ran(m) = &e.outcome {
                let v = by_count.entry(e.count).or_insert(f64::MIN);
                *v = v.max(measure(m));
            }
        }
        by_count
            .into_iter()
            .map(|(c, v)| (f64::from(c), v))
            .collect()
    }

    /// Writes density.csv and density.png/.svg into `out`, staged together, then
    /// report.html from them, showing `text`, the scenario file.
    pub fn write(&self, out: &Path, text: &str) -> anyhow::Result<Vec<PathBuf>> {
        let csv = self.csv()?;
        let mut files = write_capacity(out, "density.csv", &csv, &self.figure())?;
        files.push(super::page::write(out, self, &csv, text, &files)?);
        Ok(files)
    }

    /// The answers of `policies` as a table, with the limits and each answer's spread.
    pub fn report(&self, policies: &[Policy]) -> String {
        let def = &self.definition;
        let show = |c: Option<u32>| match c {
            Some(c) => c.to_string(),
            None => format!("<{}", def.min),
        };
        let mut rows = vec![[
            "policy".to_string(),
            format!("{} VMs", def.group),
            "per seed: min / median / max".to_string(),
            "stopped by".to_string(),
        ]];
        for a in self.answers(policies) {
            rows.push([
                a.policy.to_string(),
                show(a.count),
                spread(&a.per_seed, show),
                a.stopped_by,
            ]);
        }
        let widths: Vec<usize> = (0..3)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("  limits: {}\n", describe(&def.limits));
        for r in rows {
            out += &format!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
        out
    }
}

/// `7 / 7.5 / 8`: the seeds' answers (not carrying the minimum counts lowest).
pub(super) fn spread(per_seed: &[Option<u32>], show: impl Fn(Option<u32>) -> String) -> String {
    let mut sorted = per_seed.to_vec();
    sorted.sort();
    let n = sorted.len();
    let median = match (sorted.get(n.saturating_sub(1) / 2), sorted.get(n / 2)) {
        (Some(Some(a)), Some(Some(b))) => format!("{}", (f64::from(*a) + f64::from(*b)) / 2.0),
        (Some(a), _) => show(*a),
        _ => String::new(),
    };
    let (first, last) = (
        sorted.first().copied().flatten(),
        sorted.last().copied().flatten(),
    );
    format!("{} / {median} / {}", show(first), show(last))
}

/// `OOM kills ≤ 0, swap-in ≤ 50 MiB/s, host memused ≤ 90 %`.
pub(super) fn describe(limits: &Limits) -> String {
    let mut parts = vec![format!("OOM kills ≤ {}", limits.max_oom_kills)];
    if let Some(rate) = limits.max_swap_in_mib_s {
        parts.push(format!("peak swap-in ≤ {rate} MiB/s"));
    }
    if let Some(pct) = limits.max_host_used_pct {
        parts.push(format!("peak host memused ≤ {pct} % of MemTotal"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{HostSample, Summary, VmSample};

    #[test]
    fn measures_sum_swap_in_per_sample_and_take_the_peak_share() {
        let host = |t_s: f64, used: u64, swap_in: u64| HostSample {
            t_s,
            mem_total_bytes: 1000,
            memused_bytes: used,
            host_swap_in_pages: swap_in,
            ..HostSample::default()
        };
        let vm = |t_s: f64, swap_in: u64| VmSample {
            t_s,
            swap_in_pages: swap_in,
            ..VmSample::default()
        };
        let result = RunResult {
            host: vec![host(0.0, 500, 0), host(10.0, 950, 100), host(20.0, 700, 10)],
            vms: vec![vm(10.0, 300), vm(10.0, 100), vm(20.0, 600)],
            summary: Summary {
                guest_oom_kills: 2,
                host_oom_kills: 1,
                ..Summary::default()
            },
            ..RunResult::default()
        };
        let m = Measures::of(&result, 10_000_000_000);
        assert_eq!(m.peak_swap_in_pages, 610);
        assert_eq!(m.peak_memused_pct(), 95.0);
        assert_eq!(m.oom_kills(), 3);
        assert_eq!(m.peak_swap_in_mib_s(), 610.0 * 4096.0 / MIB / 10.0);
        let limits = Limits {
            max_oom_kills: 3,
            max_swap_in_mib_s: Some(0.2),
            max_host_used_pct: Some(95.0),
        };
        let over = m.exceeded(&limits);
        assert_eq!(over, [("swap_in", "swap-in 0.238 MiB/s > 0.2".to_string())]);
    }

    #[test]
    fn spreads_show_seeds_below_the_minimum() {
        let show = |c: Option<u32>| c.map_or("<1".to_string(), |c| c.to_string());
        assert_eq!(spread(&[Some(8), Some(7)], show), "7 / 7.5 / 8");
        assert_eq!(spread(&[Some(8), None, Some(9)], show), "<1 / 8 / 9");
        assert_eq!(spread(&[Some(3)], show), "3 / 3 / 3");
        assert_eq!(spread(&[], show), "<1 /  / <1");
    }
}
