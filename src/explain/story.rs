//! The run in a few lines (`summary`), and the one line that opens every account.
//!
//! The story an admin tells a colleague: what the host is, when it first went above
//! its ballooning target and how far, when guests first felt it (page cache dropped,
//! swap, an OOM kill), what pvestatd and KSM did about it, and whether the host itself
//! swapped or killed a VM. Everything is counted inside the window, so `--since` and
//! `--until` give the story of that stretch.

use crate::balloon::PAGE;
use crate::metrics::{tally, Event, EventKind, HostSample};
use crate::scenario::MemusedFormula;

use super::format::{percent, size, span};
use super::run::Run;
use super::{clock, detail, Line};

/// What the host is, what manages its memory, how long the run is.
pub(super) fn preamble(run: &Run) -> Line {
    let sc = run.sc;
    let vmids = run.vmids();
    let configured: u64 = vmids
        .iter()
        .map(|&v| match run.config(v) {
            Some(c) => c.memory,
            None => run.vm_samples(v).first().map_or(0, |s| s.maxmem_bytes),
        })
        .sum();
    let host = sc.host.memory;
    let ratio = if host > 0 {
        format!(" ({:.2}× overcommitted)", configured as f64 / host as f64)
    } else {
        String::new()
    };
    let p = &sc.pvestatd;
    let pvestatd = if p.enabled {
        let formula = match p.memused {
            MemusedFormula::Available => "MemTotal − MemAvailable",
            MemusedFormula::Legacy => "MemTotal − MemFree − Buffers − Cached",
        };
        format!(
            "pvestatd ballooning target {} % (memused = {formula})",
            p.ballooning_target
        )
    } else if sc.mom.is_some() {
        "oVirt MOM's balloon and KSM policies instead of pvestatd and ksmtuned".to_string()
    } else {
        "pvestatd auto-ballooning off".to_string()
    };
    let ksm = match (&sc.ksm.ksmtuned, sc.ksm.sysfs.run) {
        _ if sc.mom.is_some() => "KSM driven by MOM".to_string(),
        (Some(t), _) => format!("KSM driven by ksmtuned ({})", t.variant),
        (None, 1) => "ksmd always on".to_string(),
        (None, _) => "KSM off".to_string(),
    };
    let mut text = format!(
        "{}: {} VMs with {} of RAM on a {} host{ratio}; {pvestatd}; {ksm}; {} simulated, seed {}",
        sc.name,
        vmids.len(),
        size(configured),
        size(host),
        span(sc.duration.as_secs_f64()),
        sc.seed
    );
    if !run.window.is_whole_run() {
        let (from, to) = run.window.bounds(sc.duration.as_secs_f64());
        text.push_str(&format!("; told from {} to {}", clock(from), clock(to)));
    }
    Line {
        at: None,
        depth: 0,
        text,
    }
}

/// One thing the story says: something that happened at a time, a statement about
/// the whole window, or something that never happened (these share one line).
enum Fact {
    At(f64, String),
    Note(String),
    Never(&'static str),
}

/// The `summary` level: the turning points in time order, then the totals, then what
/// never happened.
pub(super) fn tell(run: &Run) -> Vec<Line> {
    let mut facts = vec![
        above_target(run),
        first_reclaim(run),
        guest_swap(run),
        guest_oom(run),
        host_swap(run),
        host_oom(run),
    ];
    facts.extend(ksm(run));
    facts.extend(pvestatd(run));
    let mut timed: Vec<(f64, String)> = Vec::new();
    let mut notes = Vec::new();
    let mut never = Vec::new();
    for fact in facts {
        match fact {
            Fact::At(t, text) => timed.push((t, text)),
            Fact::Note(text) => notes.push(text),
            Fact::Never(what) => never.push(format!("no {what}")),
        }
    }
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !never.is_empty() {
        notes.push(never.join(", "));
    }
    let line = |at, text| Line { at, depth: 0, text };
    timed
        .into_iter()
        .map(|(t, text)| line(Some(t), text))
        .chain(notes.into_iter().map(|text| line(None, text)))
        .collect()
}

/// The host samples inside the window.
fn samples<'a>(run: &Run<'a>) -> Vec<&'a HostSample> {
    run.result
        .host
        .iter()
        .filter(|s| run.window.contains(s.t_s))
        .collect()
}

/// When the host first went above its ballooning target, how long it stayed, its peak.
fn above_target(run: &Run) -> Fact {
    let host = samples(run);
    let target = run.sc.pvestatd.ballooning_target;
    let Some(peak) = host.iter().max_by(|a, b| {
        a.memused_bytes
            .cmp(&b.memused_bytes)
            .then(b.t_s.total_cmp(&a.t_s))
    }) else {
        return Fact::Note("no host samples".to_string());
    };
    let peak_text = format!(
        "peak memused {} ({}) at {}",
        size(peak.memused_bytes),
        percent(peak.memused_bytes, peak.mem_total_bytes),
        clock(peak.t_s)
    );
    let above: Vec<&&HostSample> = host
        .iter()
        .filter(|s| s.memused_bytes > s.target_bytes)
        .collect();
    let Some(first) = above.first() else {
        return Fact::Note(format!(
            "host never above its {target} % target; {peak_text}"
        ));
    };
    // Each sample stands for the interval up to the next; the run's last for none.
    let last_t = run.result.host.last().map_or(0.0, |s| s.t_s);
    let counted = above.iter().filter(|s| s.t_s < last_t).count();
    let time_above = counted as f64 * run.sc.sample_interval.as_secs_f64();
    Fact::At(
        first.t_s,
        format!(
            "host first above its {target} % target: memused {} ({}); above it for {} in all, {peak_text}",
            size(first.memused_bytes),
            percent(first.memused_bytes, first.mem_total_bytes),
            span(time_above)
        ),
    )
}

/// The first event of `kind` in the window and every VM it happened to at that
/// instant; `None` if there is none.
fn first_of<'a>(run: &Run<'a>, kind: EventKind) -> Option<(&'a Event, String, Vec<&'a Event>)> {
    let events: Vec<&Event> = run.events_of(kind).map(|(_, e)| e).collect();
    let first = *events.first()?;
    let at_once: Vec<u32> = events
        .iter()
        .filter(|e| e.t_s == first.t_s)
        .map(|e| e.vmid)
        .collect();
    Some((first, run.names_of(&at_once), events))
}

/// `11 episodes in 9 VMs`.
fn episodes(events: &[&Event]) -> String {
    let mut vms: Vec<u32> = events.iter().map(|e| e.vmid).collect();
    vms.sort_unstable();
    vms.dedup();
    format!(
        "{} in {}",
        count(events.len(), "episode"),
        count(vms.len(), "VM")
    )
}

/// `1 VM`, `11 VMs`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn first_reclaim(run: &Run) -> Fact {
    match first_of(run, EventKind::ReclaimCache) {
        Some((first, names, all)) => Fact::At(
            first.t_s,
            format!(
                "first page cache reclaim in {names}; {} in all",
                episodes(&all)
            ),
        ),
        None => Fact::Never("page cache reclaim"),
    }
}

/// The first guest swap-out and how much the guests swapped out in all.
fn guest_swap(run: &Run) -> Fact {
    let Some((first, names, all)) = first_of(run, EventKind::SwapOut) else {
        return Fact::Never("guest swap-out");
    };
    let pages: u64 = run
        .result
        .vms
        .iter()
        .filter(|s| run.window.contains(s.t_s))
        .map(|s| s.swap_out_pages)
        .sum();
    Fact::At(
        first.t_s,
        format!(
            "first guest swap-out in {names}; {} in all, {} swapped out",
            episodes(&all),
            size(pages * PAGE)
        ),
    )
}

/// The first guest OOM kill with its victim and badness, and a tally of all kills.
fn guest_oom(run: &Run) -> Fact {
    let kills: Vec<(&Event, detail::OomKill)> = run
        .events_of(EventKind::GuestOomKill)
        .filter_map(|(_, e)| detail::oom_kill(&e.detail).map(|k| (e, k)))
        .collect();
    let Some((first, k)) = kills.first() else {
        return Fact::Never("guest OOM kill");
    };
    let victims: Vec<String> = kills
        .iter()
        .map(|(e, k)| format!("{}/{}", run.name(e.vmid), k.victim))
        .collect();
    Fact::At(
        first.t_s,
        format!(
            "first guest OOM kill: {} in {}, badness {}; {} kills in all ({})",
            k.victim,
            run.name(first.vmid),
            first.value,
            kills.len(),
            tally(&victims)
        ),
    )
}

/// When the host first swapped guest RAM out, and the most swap it had in use.
fn host_swap(run: &Run) -> Fact {
    let Some((_, first)) = run.events_of(EventKind::HostSwapOut).next() else {
        return Fact::Never("host swap-out");
    };
    let peak = samples(run)
        .iter()
        .map(|s| s.swap_used_bytes)
        .max()
        .unwrap_or(0);
    Fact::At(
        first.t_s,
        format!(
            "first host swap-out of guest RAM; up to {} of swap in use",
            size(peak)
        ),
    )
}

/// The host OOM killer's first victim and all it killed.
fn host_oom(run: &Run) -> Fact {
    let kills: Vec<&Event> = run
        .events_of(EventKind::HostOomKill)
        .map(|(_, e)| e)
        .collect();
    let Some(first) = kills.first() else {
        return Fact::Never("host OOM kill");
    };
    let names: Vec<String> = kills.iter().map(|e| run.name(e.vmid)).collect();
    Fact::At(
        first.t_s,
        format!(
            "first host OOM kill: the QEMU of {}; {} in all ({})",
            run.name(first.vmid),
            count(kills.len(), "kill"),
            tally(&names)
        ),
    )
}

/// When ksmtuned first started ksmd and why, and what merging saved; nothing when KSM
/// cannot run at all.
fn ksm(run: &Run) -> Option<Fact> {
    if !run.sc.ksm.may_run() && run.sc.actions.is_empty() {
        return None;
    }
    let host = samples(run);
    let peak = host.iter().map(|s| s.ksm_saved_bytes).max().unwrap_or(0);
    let mean = host.iter().map(|s| s.ksm_saved_bytes).sum::<u64>() / host.len().max(1) as u64;
    let saved = format!("merging saved up to {} (mean {})", size(peak), size(mean));
    let starts: Vec<&Event> = run.events_of(EventKind::KsmStart).map(|(_, e)| e).collect();
    let stops = run.events_of(EventKind::KsmStop).count();
    let Some(first) = starts.first() else {
        return Some(if peak > 0 {
            Fact::Note(format!("ksmd ran without being started here; {saved}"))
        } else {
            Fact::Never("KSM merging")
        });
    };
    let why = detail::ksmtuned(&first.detail)
        .filter(|k| k.free_mib < k.thres_mib)
        .map_or(String::new(), |k| {
            format!(
                " (host free {} < threshold {})",
                size(k.free_mib << 20),
                size(k.thres_mib << 20)
            )
        });
    Some(Fact::At(
        first.t_s,
        format!(
            "ksmtuned first started ksmd{why}; {}, {}; {saved}",
            count(starts.len(), "start"),
            count(stops, "stop")
        ),
    ))
}

/// What pvestatd did in all; nothing when auto-ballooning is off.
fn pvestatd(run: &Run) -> Option<Fact> {
    if !run.sc.pvestatd.enabled {
        return None;
    }
    let commands: Vec<&Event> = run
        .events_of(EventKind::BalloonTarget)
        .map(|(_, e)| e)
        .collect();
    if commands.is_empty() {
        return Some(Fact::Never("balloon command from pvestatd"));
    }
    let mut cycles: Vec<f64> = commands.iter().map(|e| e.t_s).collect();
    cycles.dedup();
    let inflations = commands.iter().filter(|e| e.value < 0).count();
    let moved = if run.window.is_whole_run() {
        format!(
            "; the balloons moved {} in all",
            size(run.result.summary.balloon_moved_bytes)
        )
    } else {
        String::new()
    };
    Some(Fact::Note(format!(
        "pvestatd sent {} balloon commands in {} cycles ({inflations} inflating, {} deflating){moved}",
        commands.len(),
        cycles.len(),
        commands.len() - inflations
    )))
}
