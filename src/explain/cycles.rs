//! pvestatd's balloon commands.
//!
//! Every 10 s pvestatd computes a goal (target memused minus memused) and sends each VM
//! it wants to move a new balloon target, at most `maxchange` (100 MiB) away from the
//! VM's current size. A cycle is told by where the host stood (memused % and goal, from
//! the host sample taken at that instant) and whom pvestatd grew or shrank by how much.
//! pvestatd repeats itself for minutes, so cycles are told in stretches:
//!
//! - a phase: consecutive cycles with the host on one side of its target — pvestatd
//!   squeezing or handing memory back. One sentence: memused and goal from the first
//!   cycle to the last (and the peak above target), and each VM's size before the
//!   phase and balloon target after it, grouped by whether pvestatd only inflated,
//!   only deflated or moved it both ways. A phase of one cycle says each VM's step.
//! - hunting: memused hovering around the target, crossing it every few cycles while
//!   pvestatd shuffles memory back and forth. One sentence: the band, the number of
//!   crossings, the goal's range, and where each VM's target ended up.
//!
//! VMs without a balloon driver get a target every cycle and never move; that is said
//! once, in the first sentence that sends them one. `everything` lists, under each
//! sentence, every cycle and every VM's command (theirs included).

use std::cmp::Ordering;
use std::ops::Range;

use crate::metrics::EventKind;

use super::format::{clock, percent, signed_size, size, size_change};
use super::run::Run;
use super::{detail, Item, Line};

/// A same-side run of at most this many cycles (a minute) counts towards hunting.
const HUNT_SEGMENT: usize = 6;
/// Cycles in a row that may send nothing (a VM already at its target is not sent
/// it again) without ending a stretch: a minute's worth.
const SILENT_CYCLES: f64 = 6.0;
/// Hunting needs the host to cross its target at least twice.
const HUNT_SEGMENTS: usize = 3;

/// One balloon command: `delta` = new target − current size (negative inflates).
struct Command {
    vmid: u32,
    delta: i64,
    /// Size before and after, MiB, from the event's detail.
    sizes: Option<(u64, u64)>,
}

/// One pvestatd cycle that sent at least one command.
struct Cycle {
    t: f64,
    seq: usize,
    commands: Vec<Command>,
    host: Option<HostView>,
}

/// The host as pvestatd saw it in a cycle.
#[derive(Clone, Copy)]
struct HostView {
    memused: u64,
    total: u64,
    target: u64,
    goal: i64,
}

impl HostView {
    fn side(&self) -> Ordering {
        self.memused.cmp(&self.target)
    }

    fn percent(&self) -> f64 {
        self.memused as f64 * 100.0 / self.total.max(1) as f64
    }
}

pub(super) fn items(run: &Run) -> Vec<Item> {
    let cycles = cycles(run);
    let first_ignored = cycles
        .iter()
        .find(|c| c.commands.iter().any(|m| run.ignores_balloon(m.vmid)))
        .map(|c| c.t);
    let mut items = Vec::new();
    for stretch in consecutive(run, &cycles) {
        for (range, hunting) in split(stretch) {
            let part = &stretch[range];
            let mention = part.iter().any(|c| Some(c.t) == first_ignored);
            let mut item = if hunting {
                hunt(run, part)
            } else {
                phase(run, part)
            };
            if let Some(clause) = mention.then(|| ignored(run, part)).flatten() {
                item.body.push_str(&format!("; {clause}"));
            }
            item.details = details(run, part);
            items.push(item);
        }
    }
    items
}

/// The commands of each cycle in the window, grouped by instant, in vmid order.
fn cycles(run: &Run) -> Vec<Cycle> {
    let mut out: Vec<Cycle> = Vec::new();
    for (seq, e) in run.events_of(EventKind::BalloonTarget) {
        let command = Command {
            vmid: e.vmid,
            delta: e.value,
            sizes: detail::balloon_command(&e.detail),
        };
        match out.last_mut() {
            Some(c) if c.t == e.t_s => c.commands.push(command),
            _ => out.push(Cycle {
                t: e.t_s,
                seq,
                commands: vec![command],
                host: host_view(run, e.t_s),
            }),
        }
    }
    for c in &mut out {
        c.commands.sort_by_key(|c| c.vmid);
    }
    out
}

/// The host sample of the cycle's instant (taken right after pvestatd ran) carries the
/// cycle's goal; between samples, the last sample and the goal its memused gives.
fn host_view(run: &Run, t: f64) -> Option<HostView> {
    let s = run.host_at(t)?;
    let goal = if s.t_s == t {
        s.goal_bytes
    } else {
        s.target_bytes as i64 - s.memused_bytes as i64
    };
    Some(HostView {
        memused: s.memused_bytes,
        total: s.mem_total_bytes,
        target: s.target_bytes,
        goal,
    })
}

/// Runs of cycles without a minute of silence between them (a cycle that sends
/// nothing leaves no event).
fn consecutive<'c>(run: &Run, cycles: &'c [Cycle]) -> Vec<&'c [Cycle]> {
    let every = run.sc.pvestatd.interval.as_secs_f64();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=cycles.len() {
        if i == cycles.len() || cycles[i].t - cycles[i - 1].t > every * (SILENT_CYCLES + 0.5) {
            out.push(&cycles[start..i]);
            start = i;
        }
    }
    out
}

/// Cuts consecutive cycles into phases (one side of the target) and hunting (at least
/// [`HUNT_SEGMENTS`] phases in a row of at most [`HUNT_SEGMENT`] cycles each); `true`
/// marks hunting. Cycles without a host sample are phases of their own.
fn split(cycles: &[Cycle]) -> Vec<(Range<usize>, bool)> {
    let side = |c: &Cycle| c.host.map(|h| h.side() == Ordering::Greater);
    let mut phases: Vec<Range<usize>> = Vec::new();
    for (i, c) in cycles.iter().enumerate() {
        match phases.last_mut() {
            Some(p) if side(c).is_some() && side(&cycles[p.start]) == side(c) => p.end = i + 1,
            _ => phases.push(i..i + 1),
        }
    }
    let short = |p: &Range<usize>| p.len() <= HUNT_SEGMENT && side(&cycles[p.start]).is_some();
    let mut out = Vec::new();
    let mut i = 0;
    while i < phases.len() {
        let run = phases[i..].iter().take_while(|p| short(p)).count();
        if run >= HUNT_SEGMENTS {
            out.push((phases[i].start..phases[i + run - 1].end, true));
            i += run;
        } else {
            out.push((phases[i].clone(), false));
            i += 1;
        }
    }
    out
}

/// `pvestatd, 18 cycles to 00:28:00`: every cycle of the stretch counts, also those
/// that had nothing to send.
fn stretch_name(run: &Run, cycles: &[Cycle]) -> String {
    let (first, last) = (cycles[0].t, cycles[cycles.len() - 1].t);
    let every = run.sc.pvestatd.interval.as_secs_f64();
    let n = if every > 0.0 {
        ((last - first) / every).round() as u64 + 1
    } else {
        cycles.len() as u64
    };
    format!("pvestatd, {n} cycles to {}", clock(last))
}

/// Cycles with the host on one side of its target, as one sentence.
fn phase(run: &Run, cycles: &[Cycle]) -> Item {
    let first = &cycles[0];
    let (who, moves) = if cycles.len() == 1 {
        ("pvestatd".to_string(), steps(run, first))
    } else {
        (stretch_name(run, cycles), moves(run, cycles))
    };
    let body = [host_clause(run, cycles), moves]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    Item::host(first.t, first.seq, "pvestatd", who, body)
}

/// `host at 86.0 % > target 80 %, goal −3.1 GiB`; over several cycles, first → last,
/// and the peak of a stretch above target.
fn host_clause(run: &Run, cycles: &[Cycle]) -> Option<String> {
    let a = cycles[0].host?;
    let b = cycles[cycles.len() - 1].host?;
    let target = run.sc.pvestatd.ballooning_target;
    let (pa, pb) = (used_percent(a, target), used_percent(b, target));
    let used = if pa == pb {
        format!("host at {pa}")
    } else {
        format!("host {} → {pb}", pa.trim_end_matches(" %"))
    };
    let cmp = match a.side() {
        Ordering::Greater => ">",
        Ordering::Equal => "=",
        Ordering::Less => "<",
    };
    let (ga, gb) = (signed_size(a.goal), signed_size(b.goal));
    let goal = if ga == gb {
        format!("goal {ga}")
    } else {
        format!("goal {ga} → {gb}")
    };
    Some(format!(
        "{used} {cmp} target {target} %{}, {goal}",
        peak(cycles, target).unwrap_or_default()
    ))
}

/// ` (peak 85.0 % at 00:16:30)` when a stretch above target peaked between its ends.
fn peak(cycles: &[Cycle], target: u32) -> Option<String> {
    let top = cycles
        .iter()
        .filter_map(|c| c.host.map(|h| (c.t, h)))
        .filter(|(_, h)| h.side() == Ordering::Greater)
        .max_by(|x, y| x.1.memused.cmp(&y.1.memused).then(y.0.total_cmp(&x.0)))?;
    let ends = [cycles[0].host?, cycles[cycles.len() - 1].host?];
    let text = used_percent(top.1, target);
    let shown = ends.iter().any(|h| used_percent(*h, target) == text);
    (!shown).then(|| format!(" (peak {text} at {})", clock(top.0)))
}

/// memused in percent of MemTotal; with two decimals where one would print the target
/// itself (`80.03 % > target 80 %`, not `80.0 %`).
fn used_percent(h: HostView, target: u32) -> String {
    let p = percent(h.memused, h.total);
    if p == format!("{target}.0 %") && h.memused != h.target {
        format!("{:.2} %", h.percent())
    } else {
        p
    }
}

/// One cycle's commands: `inflating db1 by 100 MiB; deflating web-1…web-6 by 100 MiB
/// each`, the direction that serves the goal first, VMs with the same step together.
fn steps(run: &Run, cycle: &Cycle) -> Option<String> {
    let above = cycle.host.is_some_and(|h| h.goal < 0);
    let order = if above { [true, false] } else { [false, true] };
    let parts: Vec<String> = order
        .iter()
        .filter_map(|&inflate| {
            let chosen = cycle
                .commands
                .iter()
                .filter(|m| (m.delta < 0) == inflate && !run.ignores_balloon(m.vmid))
                .map(|m| (m.vmid, format!("by {}", size(m.delta.unsigned_abs()))));
            let verb = if inflate { "inflating" } else { "deflating" };
            grouped(run, chosen).map(|list| format!("{verb} {list}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Where one VM went over a stretch: its size before the first command, the target of
/// the last, and which ways pvestatd moved it.
struct Move {
    vmid: u32,
    sizes: Option<(u64, u64)>,
    inflated: bool,
    deflated: bool,
}

impl Move {
    /// `2.7 → 1.6 GiB`, `back at 3.7 GiB`, or nothing when the sizes are unknown.
    fn change(&self) -> String {
        match self.sizes {
            Some((from, to)) if from == to => format!("back at {}", size(from << 20)),
            Some((from, to)) => size_change(from << 20, to << 20),
            None => String::new(),
        }
    }
}

/// Each VM's move over `cycles`, in vmid order, VMs without a balloon driver left out.
fn vm_moves(run: &Run, cycles: &[Cycle]) -> Vec<Move> {
    let mut out: Vec<Move> = Vec::new();
    for m in cycles.iter().flat_map(|c| &c.commands) {
        if run.ignores_balloon(m.vmid) {
            continue;
        }
        let i = match out.iter().position(|v| v.vmid == m.vmid) {
            Some(i) => i,
            None => {
                out.push(Move {
                    vmid: m.vmid,
                    sizes: m.sizes,
                    inflated: false,
                    deflated: false,
                });
                out.len() - 1
            }
        };
        let v = &mut out[i];
        v.sizes = v.sizes.zip(m.sizes).map(|(a, b)| (a.0, b.1));
        v.inflated |= m.delta < 0;
        v.deflated |= m.delta > 0;
    }
    out.sort_by_key(|v| v.vmid);
    out
}

/// A phase's commands by outcome: `inflating web-1…web-6 2.7 → 1.6 GiB each;
/// deflating db2 6.0 → 8.0 GiB; back and forth: app-1, app-2 2.0 → 3.6 GiB each`.
fn moves(run: &Run, cycles: &[Cycle]) -> Option<String> {
    let all = vm_moves(run, cycles);
    let above = cycles[0].host.is_some_and(|h| h.goal < 0);
    let (first, second) = if above {
        ("inflating", "deflating")
    } else {
        ("deflating", "inflating")
    };
    let class = |m: &Move| match (m.inflated, m.deflated) {
        (true, false) => "inflating",
        (false, true) => "deflating",
        _ => "back and forth",
    };
    let parts: Vec<String> = [first, second, "back and forth"]
        .iter()
        .filter_map(|&verb| {
            let chosen = all
                .iter()
                .filter(|m| class(m) == verb)
                .map(|m| (m.vmid, m.change()));
            let label = if verb == "back and forth" { ":" } else { "" };
            grouped(run, chosen).map(|list| format!("{verb}{label} {list}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `web-1…web-6 by 100 MiB each, db1 by 24 MiB`: VMs with the same phrase together, in
/// order of their first VM; `None` for no VMs.
fn grouped(run: &Run, vms: impl Iterator<Item = (u32, String)>) -> Option<String> {
    let mut groups: Vec<(Vec<u32>, String)> = Vec::new();
    for (vmid, phrase) in vms {
        match groups.iter_mut().find(|g| g.1 == phrase) {
            Some(g) => g.0.push(vmid),
            None => groups.push((vec![vmid], phrase)),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(vmids, phrase)| {
            let each = if vmids.len() > 1 && !phrase.is_empty() {
                " each"
            } else {
                ""
            };
            let sep = if phrase.is_empty() { "" } else { " " };
            format!("{}{sep}{phrase}{each}", run.names_of(&vmids))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Hunting, as one sentence: the band memused moved in, how often it crossed the
/// target, the goal's range, and where each VM's balloon target ended up.
fn hunt(run: &Run, cycles: &[Cycle]) -> Item {
    let first = &cycles[0];
    let target = run.sc.pvestatd.ballooning_target;
    let hosts: Vec<HostView> = cycles.iter().filter_map(|c| c.host).collect();
    let low = hosts
        .iter()
        .map(HostView::percent)
        .fold(f64::INFINITY, f64::min);
    let high = hosts
        .iter()
        .map(HostView::percent)
        .fold(f64::NEG_INFINITY, f64::max);
    let goal_low = hosts.iter().map(|h| h.goal).min().unwrap_or(0);
    let goal_high = hosts.iter().map(|h| h.goal).max().unwrap_or(0);
    let crossings = hosts
        .windows(2)
        .filter(|w| w[0].side() != w[1].side())
        .count();
    let moved: Vec<(u32, String)> = vm_moves(run, cycles)
        .iter()
        .filter(|m| m.sizes.is_some_and(|(from, to)| from != to))
        .map(|m| (m.vmid, m.change()))
        .collect();
    let targets = grouped(run, moved.into_iter()).map_or_else(
        || "no VM ends it at another size".to_string(),
        |list| format!("balloon targets over the stretch: {list}"),
    );
    let body = format!(
        "hunting around the {target} % target: host {low:.1}–{high:.1} %, crossing it \
         {crossings} times, goal {} to {}; {targets}",
        signed_size(goal_low),
        signed_size(goal_high)
    );
    Item::host(
        first.t,
        first.seq,
        "pvestatd",
        stretch_name(run, cycles),
        body,
    )
}

/// VMs without a balloon driver are sent targets too; their guest never moves.
fn ignored(run: &Run, cycles: &[Cycle]) -> Option<String> {
    let mut vmids: Vec<u32> = cycles
        .iter()
        .flat_map(|c| &c.commands)
        .map(|m| m.vmid)
        .filter(|&v| run.ignores_balloon(v))
        .collect();
    vmids.sort_unstable();
    vmids.dedup();
    let (verb, its) = match vmids.len() {
        0 => return None,
        1 => ("ignores", "its"),
        _ => ("ignore", "their"),
    };
    Some(format!(
        "{} {verb} {its} targets: no balloon driver (pvestatd keeps sending them every \
         cycle; not repeated below)",
        run.names_of(&vmids)
    ))
}

/// `everything`: under a stretch, each of its cycles (when there are several) and
/// each command.
fn details(run: &Run, cycles: &[Cycle]) -> Vec<Line> {
    let several = cycles.len() > 1;
    let mut out = Vec::new();
    for c in cycles {
        if several {
            let one = std::slice::from_ref(c);
            let body = [host_clause(run, one), steps(run, c)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            out.push(Line {
                at: Some(c.t),
                depth: 1,
                text: format!("cycle: {body}"),
            });
        }
        out.extend(c.commands.iter().map(|m| Line {
            at: Some(c.t),
            depth: 1 + u8::from(several),
            text: command_line(run, m),
        }));
    }
    out
}

/// `web-1: 1536 MiB → 1636 MiB, deflating by 100 MiB`.
fn command_line(run: &Run, m: &Command) -> String {
    let verb = if m.delta < 0 {
        "inflating"
    } else {
        "deflating"
    };
    let sizes = m.sizes.map_or(String::new(), |(from, to)| {
        format!("{from} MiB → {to} MiB, ")
    });
    let ignored = if run.ignores_balloon(m.vmid) {
        " (no balloon driver: ignored)"
    } else {
        ""
    };
    format!(
        "{}: {sizes}{verb} by {}{ignored}",
        run.name(m.vmid),
        size(m.delta.unsigned_abs())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cycles 10 s apart with memused above (`true`) or below the 80 % target.
    fn cycles(above: &[bool]) -> Vec<Cycle> {
        above
            .iter()
            .enumerate()
            .map(|(i, &up)| Cycle {
                t: 10.0 * i as f64,
                seq: i,
                commands: Vec::new(),
                host: Some(HostView {
                    memused: if up { 81 } else { 79 },
                    total: 100,
                    target: 80,
                    goal: if up { -1 } else { 1 },
                }),
            })
            .collect()
    }

    #[test]
    fn short_phases_in_a_row_are_hunting_long_ones_are_phases() {
        let mut sides = vec![false; 8];
        sides.extend([true, true, false, false, true, true, true, false]);
        sides.extend([true; 10]);
        let split = split(&cycles(&sides));
        assert_eq!(split, vec![(0..8, false), (8..16, true), (16..26, false)]);
        // Crossing twice is hunting, crossing once is not.
        let split = super::split(&cycles(&[false, false, true, true, false, false]));
        assert_eq!(split, vec![(0..6, true)]);
        let split = super::split(&cycles(&[false, false, true, true]));
        assert_eq!(split, vec![(0..2, false), (2..4, false)]);
    }
}
