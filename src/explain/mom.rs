//! oVirt MOM's balloon commands (the `mom` policy). MOM has no goal or target: every
//! 15 s it shrinks every guest when host free memory (averaged) is under 20 % and
//! grows it otherwise, at most 5 % per round. Consecutive rounds that move the guests
//! the same way are told as one stretch: who, from which size to which.

use std::collections::BTreeMap;

use crate::metrics::EventKind;

use super::detail;
use super::format::{clock, names, percent, size};
use super::run::Run;
use super::Item;

struct Round {
    t: f64,
    seq: usize,
    shrink: bool,
    /// vmid → (from, to) MiB.
    moves: BTreeMap<u32, (u64, u64)>,
}

pub(super) fn items(run: &Run) -> Vec<Item> {
    let mut stretches: Vec<Vec<Round>> = Vec::new();
    for r in rounds(run) {
        match stretches.last_mut() {
            Some(s) if s[0].shrink == r.shrink => s.push(r),
            _ => stretches.push(vec![r]),
        }
    }
    stretches.iter().map(|s| stretch(run, s)).collect()
}

fn rounds(run: &Run) -> Vec<Round> {
    let mut out: Vec<Round> = Vec::new();
    for (seq, e) in run.events_of(EventKind::BalloonTarget) {
        let Some((from, to)) = detail::balloon_command(&e.detail) else {
            continue;
        };
        match out.last_mut() {
            Some(r) if r.t == e.t_s => {
                r.moves.insert(e.vmid, (from, to));
            }
            _ => out.push(Round {
                t: e.t_s,
                seq,
                shrink: e.value < 0,
                moves: BTreeMap::from([(e.vmid, (from, to))]),
            }),
        }
    }
    out
}

/// `MOM, 6 rounds to 00:01:30: host free 7.9 % < 20 %; shrinking g-1, g-2 (4.0 GiB → 3.4 GiB)`.
fn stretch(run: &Run, rounds: &[Round]) -> Item {
    let first = &rounds[0];
    let last = &rounds[rounds.len() - 1];
    let mut span: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for r in rounds {
        for (&vmid, &(from, to)) in &r.moves {
            span.entry(vmid)
                .and_modify(|m| m.1 = to)
                .or_insert((from, to));
        }
    }
    let free = run.host_at(first.t).map_or(String::new(), |h| {
        let free = h.mem_free_bytes + h.buffers_bytes + h.cached_bytes;
        let side = if first.shrink { "<" } else { "≥" };
        format!(
            "host free {} {side} 20 %; ",
            percent(free, h.mem_total_bytes)
        )
    });
    let verb = if first.shrink { "shrinking" } else { "growing" };
    let rounds_said = if rounds.len() == 1 {
        "MOM".to_string()
    } else {
        format!("MOM, {} rounds to {}", rounds.len(), clock(last.t))
    };
    let sizes: Vec<(u64, u64)> = span.values().copied().collect();
    let moves = if sizes.windows(2).all(|w| w[0] == w[1]) {
        let who = names(&span.keys().map(|&v| run.name(v)).collect::<Vec<_>>());
        let (from, to) = sizes[0];
        let each = if sizes.len() > 1 { " each" } else { "" };
        format!("{who} {} → {}{each}", size(from << 20), size(to << 20))
    } else {
        let each: Vec<String> = span
            .iter()
            .map(|(&vmid, &(from, to))| {
                format!(
                    "{} {} → {}",
                    run.name(vmid),
                    size(from << 20),
                    size(to << 20)
                )
            })
            .collect();
        each.join(", ")
    };
    let body = format!("{free}{verb} {moves}");
    Item::host(first.t, first.seq, "mom", rounds_said, body)
}
