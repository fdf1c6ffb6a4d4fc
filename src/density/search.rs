//! The search: for each policy, a bracket per seed — the largest count known to stay
//! within the limits and the smallest known not to — narrowed in rounds until the two
//! are neighbours (or the range's end is reached).
//!
//! A bracket with no upper end doubles its count, one with no lower end halves it,
//! one with both bisects. All seeds start at the same count and move alike while they
//! agree, so a round usually asks for one count: it is loaded once and run for every
//! seed in parallel. Policies are searched in parallel too (rayon nests).

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::results::{Evaluation, Measures, Outcome};
use super::Search;
use crate::policy::Policy;
use crate::scenario::Scenario;

/// What is known about one seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Bracket {
    /// The largest count that stayed within the limits.
    pub within: Option<u32>,
    /// The smallest count that did not.
    pub over: Option<u32>,
}

impl Bracket {
    /// The count to try next, or `None` once the answer is known.
    pub fn next(&self, start: u32, min: u32, max: Option<u32>) -> Option<u32> {
        let max = max.unwrap_or(u32::MAX);
        match (self.within, self.over) {
            (None, None) => Some(start.clamp(min, max)),
            (Some(lo), None) => (lo < max).then(|| lo.saturating_mul(2).min(max)),
            (None, Some(hi)) => (hi > min).then(|| (hi / 2).max(min)),
            (Some(lo), Some(hi)) => (hi - lo > 1).then(|| lo + (hi - lo) / 2),
        }
    }

    fn record(&mut self, count: u32, within: bool) {
        if within {
            self.within = Some(count);
        } else {
            self.over = Some(count);
        }
    }
}

/// Every evaluation of every policy in `policies`, in (policy, count, seed) order.
pub(super) fn run(search: &Search, policies: &[Policy], progress: &ProgressBar) -> Vec<Evaluation> {
    policies
        .par_iter()
        .flat_map_iter(|&policy| search_policy(search, policy, progress))
        .collect()
}

fn search_policy(search: &Search, policy: Policy, progress: &ProgressBar) -> Vec<Evaluation> {
    let def = &search.definition;
    let mut brackets = vec![Bracket::default(); def.seeds.len()];
    let mut done = Vec::new();
    loop {
        // Seed positions by the count they ask for next.
        let mut asks: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, b) in brackets.iter().enumerate() {
            if let Some(count) = b.next(def.start, def.min, def.max) {
                asks.entry(count).or_default().push(i);
            }
        }
        if asks.is_empty() {
            break;
        }
        let jobs: Vec<(u32, usize, Result<Scenario, String>)> = asks
            .into_iter()
            .flat_map(|(count, seeds)| {
                let loaded = search.scenario(count);
                seeds.into_iter().map(move |i| (count, i, loaded.clone()))
            })
            .collect();
        progress.inc_length(jobs.len() as u64);
        let round: Vec<(usize, Evaluation)> = jobs
            .into_par_iter()
            .map(|(count, i, loaded)| {
                let seed = def.seeds[i];
                let outcome = match loaded {
                    Ok(sc) => Outcome::Ran(evaluate(sc, policy, seed)),
                    Err(note) => Outcome::NotLoaded(note),
                };
                progress.inc(1);
                let e = Evaluation {
                    policy,
                    count,
                    seed,
                    outcome,
                };
                (i, e)
            })
            .collect();
        for (i, e) in &round {
            brackets[*i].record(e.count, e.within(&def.limits));
        }
        done.extend(round);
    }
    done.sort_by_key(|&(i, ref e)| (e.count, i));
    done.into_iter().map(|(_, e)| e).collect()
}

/// One run: the scenario at a count, under `policy`, with `seed`.
fn evaluate(mut sc: Scenario, policy: Policy, seed: u64) -> Measures {
    sc.seed = seed;
    policy.apply(&mut sc);
    Measures::of(&crate::sim::run(&sc), sc.sample_interval.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts a search asks for when a seed stays within the limits up to `fits`.
    fn path(start: u32, min: u32, max: Option<u32>, fits: u32) -> (Vec<u32>, Option<u32>) {
        let mut b = Bracket::default();
        let mut asked = Vec::new();
        while let Some(count) = b.next(start, min, max) {
            asked.push(count);
            b.record(count, count <= fits);
        }
        (asked, b.within)
    }

    #[test]
    fn doubles_then_bisects() {
        assert_eq!(
            path(6, 1, None, 20),
            (vec![6, 12, 24, 18, 21, 19, 20], Some(20))
        );
    }

    #[test]
    fn halves_then_bisects() {
        assert_eq!(path(6, 1, None, 2), (vec![6, 3, 1, 2], Some(2)));
    }

    #[test]
    fn stops_at_the_range_ends() {
        assert_eq!(path(6, 1, Some(10), 99), (vec![6, 10], Some(10)));
        assert_eq!(path(6, 4, None, 0), (vec![6, 4], None));
        assert_eq!(path(6, 8, Some(9), 8), (vec![8, 9], Some(8)));
        assert_eq!(path(6, 7, Some(7), 99), (vec![7], Some(7)));
    }

    #[test]
    fn agrees_with_a_scan_for_every_answer() {
        for fits in 0..=40 {
            let (_, found) = path(5, 1, Some(33), fits);
            let scan = (1..=33).filter(|&c| c <= fits).max();
            assert_eq!(found, scan, "fits {fits}");
        }
    }
}
