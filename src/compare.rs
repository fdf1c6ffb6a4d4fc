//! `memsim compare`: one scenario run under several policies with the same seeds, so
//! that what each policy buys (host memory) and costs (swap, refaults, OOM kills, ksmd
//! CPU) can be read side by side.
//!
//! Every (policy, seed) run is an ordinary run — its full outputs go to
//! `DIR/<run id>/` — done in parallel (rayon). Then comes one row per policy in
//! `comparison.csv` (means over the seeds, with minimum and maximum where seeds
//! disagree), overlay plots of the runs over time and bar charts of the main figures.
//! Rows and lines follow the order the policies were given in and the seeds' order,
//! never completion order, so every output is byte-identical whatever the thread count.
//!
//! Policies are taken from [`Policy::ALL`] and applied with [`Policy::apply`]; a new
//! policy needs no change here.

mod metrics;
mod page;
mod table;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::metrics::RunResult;
use crate::policy::Policy;
use crate::report::comparisons::{self, BarPanel, Overlay};
use crate::scenario::Scenario;

pub use metrics::{RunMetrics, Spread};
pub use table::terminal;

/// More seeds than this is a typo, not a comparison.
pub const MAX_SEEDS: usize = 1000;

/// What to compare: the scenario, the policies in the order shown, the seeds.
#[derive(Clone, Debug)]
pub struct Plan {
    scenario: Scenario,
    /// The scenario file's text, for report.html.
    source: Option<String>,
    policies: Vec<Policy>,
    seeds: Vec<u64>,
}

/// One run of a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub policy: Policy,
    pub seed: u64,
    /// Its output folder's name: the policy, and the seed when there are several.
    pub id: String,
}

impl Plan {
    /// `policies` empty means all of them; `seeds` count up from the scenario's own.
    /// Every problem with the options is reported at once.
    pub fn new(scenario: Scenario, policies: &[Policy], seeds: usize) -> Result<Plan, Vec<String>> {
        let problems = option_problems(policies, seeds);
        if !problems.is_empty() {
            return Err(problems);
        }
        let policies = match policies {
            [] => Policy::ALL.to_vec(),
            given => given.to_vec(),
        };
        let seeds = (0..seeds as u64)
            .map(|r| scenario.seed.wrapping_add(r))
            .collect();
        Ok(Plan {
            scenario,
            source: None,
            policies,
            seeds,
        })
    }

    /// The YAML text the scenario was read from, shown in report.html (without it,
    /// the report shows the scenario as resolved).
    pub fn with_source(mut self, yaml: String) -> Plan {
        self.source = Some(yaml);
        self
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// Policies in the given order, seeds innermost.
    pub fn runs(&self) -> Vec<Run> {
        let several = self.seeds.len() > 1;
        self.policies
            .iter()
            .flat_map(|&policy| {
                self.seeds.iter().map(move |&seed| Run {
                    policy,
                    seed,
                    id: match several {
                        true => format!("{policy}-seed={seed}"),
                        false => policy.to_string(),
                    },
                })
            })
            .collect()
    }

    /// The scenario of `run`: its policy applied, its seed, and named after the run so
    /// that its plots and summary say which run they show.
    pub fn run_scenario(&self, run: &Run) -> Scenario {
        let mut sc = self.scenario.clone();
        sc.seed = run.seed;
        run.policy.apply(&mut sc);
        sc.name = format!("{}/{}", self.scenario.name, run.id);
        sc
    }
}

/// What is wrong with `--policies` and `--seeds`, every problem: checked before the
/// scenario is, so that both are reported together.
pub fn option_problems(policies: &[Policy], seeds: usize) -> Vec<String> {
    let mut problems = policy_problems(policies);
    if !(1..=MAX_SEEDS).contains(&seeds) {
        problems.push(format!(
            "--seeds {seeds}: expected a number of seeds from 1 to {MAX_SEEDS}"
        ));
    }
    problems
}

/// A policy given twice would be run twice and shown twice.
pub(crate) fn policy_problems(policies: &[Policy]) -> Vec<String> {
    policies
        .iter()
        .enumerate()
        .filter(|&(i, p)| policies[..i].contains(p) && !policies[i + 1..].contains(p))
        .map(|(_, p)| format!("--policies: {p} is given more than once"))
        .collect()
}

/// One policy's runs, in seed order.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRuns {
    pub policy: Policy,
    pub runs: Vec<RunMetrics>,
}

impl PolicyRuns {
    pub fn spread(&self, value: fn(&RunMetrics) -> f64) -> Spread {
        Spread::of(&self.runs, value)
    }
}

/// The results of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub scenario: String,
    pub seeds: Vec<u64>,
    /// In the plan's order.
    pub policies: Vec<PolicyRuns>,
}

/// What [`execute`] did.
#[derive(Debug)]
pub struct Outcome {
    pub comparison: Comparison,
    /// comparison.csv, the plots and report.html.
    pub files: Vec<PathBuf>,
}

/// Does every run of `plan` (each run's outputs, report.html included, to
/// `out/<run id>/`), then writes comparison.csv and the comparison plots to `out`, all
/// staged before any replaces an earlier file, and report.html from them.
pub fn execute(plan: &Plan, out: &Path, progress: &ProgressBar) -> anyhow::Result<Outcome> {
    let runs = plan.runs();
    progress.set_length(runs.len() as u64);
    let done = runs
        .par_iter()
        .map(|run| {
            let done = run_one(plan, run, out);
            progress.inc(1);
            done
        })
        .collect::<anyhow::Result<Vec<(RunMetrics, RunResult)>>>()?;
    progress.finish_and_clear();
    let comparison = Comparison {
        scenario: plan.scenario.name.clone(),
        seeds: plan.seeds.clone(),
        policies: plan
            .policies
            .iter()
            .zip(done.chunks(plan.seeds.len()))
            .map(|(&policy, runs)| PolicyRuns {
                policy,
                runs: runs.iter().map(|(m, _)| m.clone()).collect(),
            })
            .collect(),
    };
    // The plots over time show each policy's run with the first seed.
    let overlays: Vec<Overlay> = done
        .chunks(plan.seeds.len())
        .zip(&plan.policies)
        .map(|(runs, &policy)| Overlay {
            policy,
            result: &runs[0].1,
        })
        .collect();
    let csv = table::csv(&comparison)?;
    let mut files = comparisons::write_compare(
        out,
        &plan.scenario,
        &caption(&comparison),
        &overlays,
        &bar_panels(&comparison),
        &csv,
    )?;
    files.push(page::write(out, plan, &comparison, &csv, &files)?);
    Ok(Outcome { comparison, files })
}

fn run_one(plan: &Plan, run: &Run, out: &Path) -> anyhow::Result<(RunMetrics, RunResult)> {
    let sc = plan.run_scenario(run);
    let result = crate::sim::run(&sc);
    let dir = out.join(&run.id);
    crate::report::write_run_with_report(&dir, &sc, &result, None)
        .with_context(|| format!("writing the run {}", run.id))?;
    Ok((RunMetrics::of(&result), result))
}

/// "quickstart" or "quickstart, seed 42 (of 3)": which runs the time plots show.
fn caption(c: &Comparison) -> String {
    match c.seeds.len() {
        1 => c.scenario.clone(),
        n => format!("{}, seed {} (of {n})", c.scenario, c.seeds[0]),
    }
}

const GIB: f64 = (1u64 << 30) as f64;
const PAGE_GIB: f64 = 4096.0 / GIB;

/// The bar charts: the figures a reader compares first, in display units.
fn bar_panels(c: &Comparison) -> Vec<BarPanel> {
    type Panel = (&'static str, fn(&RunMetrics) -> f64);
    const PANELS: [Panel; 9] = [
        ("peak host memused (% of MemTotal)", |m| m.peak_memused_pct),
        ("mean host memused (% of MemTotal)", |m| m.mean_memused_pct),
        ("time above the ballooning target (min)", |m| {
            m.summary.time_above_target_s / 60.0
        }),
        ("KSM savings, mean (GiB)", |m| {
            m.summary.mean_ksm_saved_bytes as f64 / GIB
        }),
        ("ksmd CPU (% of one core)", RunMetrics::ksmd_cpu_pct),
        ("balloon memory moved (GiB)", |m| {
            m.summary.balloon_moved_bytes as f64 / GIB
        }),
        ("guest swap-out (GiB)", |m| {
            m.summary.guest_swap_out_pages as f64 * PAGE_GIB
        }),
        ("page-cache refaults (GiB)", |m| {
            m.summary.cache_refault_pages as f64 * PAGE_GIB
        }),
        ("OOM kills (guest + host)", |m| {
            (m.summary.guest_oom_kills + m.summary.host_oom_kills) as f64
        }),
    ];
    PANELS
        .iter()
        .map(|&(title, value)| BarPanel {
            title,
            bars: c
                .policies
                .iter()
                .map(|p| (p.policy, p.spread(value)))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(policies: &[Policy], seeds: usize) -> Result<Plan, Vec<String>> {
        let sc = crate::scenario::parse(
            "seed: 7\nduration: 1m\nhost: {memory: 4GiB}\nvms: [{vmid: 100, memory: 1GiB}]\n",
            "s.yaml",
            Path::new("."),
        )
        .unwrap();
        Plan::new(sc, policies, seeds)
    }

    #[test]
    fn runs_go_by_policy_then_seed_and_name_their_folders() {
        let p = plan(&[Policy::Ksm, Policy::None], 2).unwrap();
        let ids: Vec<String> = p.runs().into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            ["ksm-seed=7", "ksm-seed=8", "none-seed=7", "none-seed=8"]
        );
        let one = plan(&[], 1).unwrap();
        assert_eq!(one.policies(), Policy::ALL);
        assert_eq!(one.runs()[1].id, "balloon");
        let sc = one.run_scenario(&one.runs()[1]);
        assert_eq!(
            (sc.name.as_str(), sc.policy),
            ("s/balloon", Some(Policy::Balloon))
        );
    }

    #[test]
    fn bad_options_are_all_reported() {
        let err = plan(&[Policy::Ksm, Policy::None, Policy::Ksm, Policy::Ksm], 0).unwrap_err();
        assert_eq!(
            err,
            [
                "--policies: ksm is given more than once",
                "--seeds 0: expected a number of seeds from 1 to 1000"
            ]
        );
    }
}
