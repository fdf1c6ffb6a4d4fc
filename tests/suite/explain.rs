//! `memsim explain`: the levels nest, `--since`/`--until` cut the account by time, the
//! sentences carry the numbers of the events and samples they tell, and bad arguments
//! are refused with exit status 2 before anything runs.

use std::path::Path;

use crate::common::cli::memsim;
use memsim::engine::SimTime;
use memsim::explain::{clock, explain, to_text, Level, Line, Window};
use memsim::metrics::{EventKind, RunResult};
use memsim::scenario::{self, Scenario};

const SCENARIO: &str = "tests/fixtures/scenarios/squeeze_small.yaml";

fn simulate() -> (Scenario, RunResult) {
    let sc = scenario::load(Path::new(SCENARIO)).expect("fixture loads");
    let result = memsim::sim::run(&sc);
    (sc, result)
}

fn tell(sc: &Scenario, r: &RunResult, level: Level) -> Vec<Line> {
    explain(sc, r, level, Window::default())
}

/// Whether `small` appears in `big` in the same order (not necessarily adjacent).
fn is_subsequence(small: &[Line], big: &[Line]) -> bool {
    let mut rest = big.iter();
    small.iter().all(|s| rest.any(|b| b == s))
}

/// The guest OOM kills of a run: time, vmid, victim (from summary.json's list, in kill
/// order) and badness (the event's value).
fn kills(r: &RunResult) -> Vec<(f64, u32, String, i64)> {
    let events = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::GuestOomKill && e.value > 0);
    events
        .zip(&r.summary.guest_oom_victims)
        .map(|(e, v)| {
            let (vmid, process) = v.split_once('/').unwrap();
            assert_eq!(vmid, e.vmid.to_string());
            (e.t_s, e.vmid, process.to_string(), e.value)
        })
        .collect()
}

#[test]
fn levels_nest_summary_in_decisions_in_everything() {
    let (sc, r) = simulate();
    let summary = tell(&sc, &r, Level::Summary);
    let decisions = tell(&sc, &r, Level::Decisions);
    let everything = tell(&sc, &r, Level::Everything);
    assert!(summary.len() < 10, "a handful of lines: {summary:#?}");
    assert!(decisions.len() > summary.len());
    assert!(everything.len() > decisions.len());
    assert!(
        is_subsequence(&decisions, &everything),
        "every line of `decisions` appears, in order, in `everything`"
    );
    // Every turning point of the summary is a moment the timeline tells too.
    let times: Vec<f64> = decisions.iter().filter_map(|l| l.at).collect();
    for line in summary.iter().filter(|l| l.at.is_some()) {
        assert!(
            times.contains(&line.at.unwrap()),
            "{line:?} not in decisions"
        );
    }
    // `everything` has every single balloon command, `decisions` one sentence per stretch.
    let commands = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::BalloonTarget)
        .count();
    let deep = everything.iter().filter(|l| l.depth > 0).count();
    assert!(
        deep >= commands,
        "{deep} detail lines for {commands} commands"
    );
    assert!(decisions.iter().all(|l| l.depth == 0));
    assert_eq!(summary[0], decisions[0], "all open with the same preamble");
}

#[test]
fn oom_kills_are_told_with_the_events_victim_and_badness() {
    let (sc, r) = simulate();
    let kills = kills(&r);
    assert!(kills.len() >= 2, "the fixture kills postgres repeatedly");
    for level in [Level::Decisions, Level::Everything] {
        let lines = tell(&sc, &r, level);
        for (t, vmid, victim, badness) in &kills {
            let want = format!("guest OOM — killed {victim}, badness {badness}");
            let found = lines
                .iter()
                .any(|l| l.at == Some(*t) && l.text.starts_with("db: ") && l.text.contains(&want));
            assert!(
                found,
                "{level}: no line at {} for VM {vmid}: {want}",
                clock(*t)
            );
        }
    }
    let summary = to_text(&tell(&sc, &r, Level::Summary));
    let (t, _, victim, badness) = &kills[0];
    let first = format!(
        "{}  first guest OOM kill: {victim} in db, badness {badness}; {} kills in all (db/postgres ×{})",
        clock(*t),
        kills.len(),
        kills.len()
    );
    assert!(summary.contains(&first), "{summary}");
}

#[test]
fn pressure_ksm_and_lifecycle_events_each_get_a_sentence_at_their_time() {
    let (sc, r) = simulate();
    let lines = tell(&sc, &r, Level::Decisions);
    let at = |t: f64, needle: &str| {
        lines
            .iter()
            .any(|l| l.at == Some(t) && l.text.contains(needle))
    };
    let mut seen = 0;
    for e in &r.events {
        let needle = match e.kind {
            EventKind::VmStart => "started with",
            EventKind::ReclaimCache => "page cache reclaim starts",
            EventKind::SwapOut => "swap-out starts",
            EventKind::KsmStart => "→ ksmd on",
            EventKind::KsmStop => "→ ksmd off",
            EventKind::ProcessRestart => "postgres restarted, 3m after it was killed",
            EventKind::BalloonOutOfPuff => "out of puff",
            _ => continue,
        };
        assert!(at(e.t_s, needle), "{:?} at {} untold", e.kind, clock(e.t_s));
        seen += 1;
    }
    assert!(seen > 10);
    for kind in [EventKind::SwapOut, EventKind::KsmStart, EventKind::KsmStop] {
        assert!(
            r.events.iter().any(|e| e.kind == kind),
            "fixture lacks {kind:?}"
        );
    }
    // Figures come out of the event details, never the details themselves.
    let text = to_text(&tell(&sc, &r, Level::Everything));
    for raw in ["guest OOM: ", "pvestatd: goal", "ksmtuned: free", " -> "] {
        assert!(
            !text.contains(raw),
            "unparsed detail {raw:?} in the account"
        );
    }
}

#[test]
fn the_first_pvestatd_sentence_quotes_the_host_sample_of_its_cycle() {
    let (sc, r) = simulate();
    let first = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::BalloonTarget)
        .unwrap();
    let sample = r.host.iter().find(|s| s.t_s == first.t_s).unwrap();
    let percent = format!(
        "host {:.1} →",
        sample.memused_bytes as f64 * 100.0 / sample.mem_total_bytes as f64
    );
    let goal = format!(
        "goal +{:.1} GiB",
        sample.goal_bytes as f64 / (1u64 << 30) as f64
    );
    let lines = tell(&sc, &r, Level::Decisions);
    let line = lines
        .iter()
        .find(|l| l.text.starts_with("pvestatd"))
        .unwrap();
    assert_eq!(line.at, Some(first.t_s));
    assert!(line.text.contains(&percent), "{percent:?} in {}", line.text);
    assert!(line.text.contains(&goal), "{goal:?} in {}", line.text);
    assert!(line.text.contains("< target 80 %"), "{}", line.text);
}

#[test]
fn since_and_until_keep_only_their_stretch() {
    let (sc, r) = simulate();
    let (since, until) = (SimTime::from_secs(600), SimTime::from_secs(1200));
    let window = Window::new(Some(since), Some(until)).unwrap();
    for level in [Level::Summary, Level::Decisions, Level::Everything] {
        let lines = explain(&sc, &r, level, window);
        assert!(lines[0].text.ends_with("told from 00:10:00 to 00:20:00"));
        for l in lines.iter().filter_map(|l| l.at) {
            assert!(
                (600.0..=1200.0).contains(&l),
                "{level}: {} outside",
                clock(l)
            );
        }
    }
    let inside = explain(&sc, &r, Level::Decisions, window);
    for (t, _, victim, _) in kills(&r) {
        let told = inside
            .iter()
            .any(|l| l.at == Some(t) && l.text.contains(&victim));
        assert_eq!(told, (600.0..=1200.0).contains(&t), "kill at {}", clock(t));
    }
    // The command line gives the same account.
    let o = memsim(&["explain", SCENARIO, "--since", "10m", "--until", "00:20:00"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), to_text(&inside));
}

#[test]
fn the_account_is_deterministic_and_defaults_to_decisions() {
    let (sc, r) = simulate();
    let a = memsim(&["explain", SCENARIO]);
    let b = memsim(&["explain", SCENARIO, "--level", "decisions"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    assert_eq!(text, to_text(&tell(&sc, &r, Level::Decisions)));
    assert!(text.contains("00:00:00  web-1, web-2: started with 2.0 GiB"));
}

#[test]
fn bad_arguments_exit_2_and_print_nothing() {
    for (args, message) in [
        (vec!["--level", "loud"], "unknown level \"loud\""),
        (
            vec!["--since", "20m", "--until", "10m"],
            "--since 00:20:00 is after --until 00:10:00",
        ),
        (vec!["--since", "1h30"], "needs a unit"),
        (vec!["--until", "ten"], "is not a duration"),
        (vec!["--since", "2h"], "after the end of the run (00:30:00)"),
    ] {
        let mut all = vec!["explain", SCENARIO];
        all.extend(args.iter().copied());
        let o = memsim(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    let o = memsim(&["explain", "tests/fixtures/scenarios/many_problems.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

#[test]
fn host_swap_and_host_oom_kills_are_told_with_their_victims() {
    let sc = scenario::load(Path::new("tests/fixtures/scenarios/host_oom_small.yaml")).unwrap();
    let r = memsim::sim::run(&sc);
    let lines = tell(&sc, &r, Level::Decisions);
    let swap = r
        .events
        .iter()
        .find(|e| e.kind == EventKind::HostSwapOut)
        .expect("the fixture makes the host swap");
    let told = lines.iter().any(|l| {
        l.at == Some(swap.t_s) && l.text.starts_with("host: swap-out of guest RAM starts")
    });
    assert!(told, "host swap at {} untold", clock(swap.t_s));
    let kills: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::HostOomKill)
        .collect();
    assert_eq!(kills.len(), 2, "the fixture's host kills both VMs");
    for k in &kills {
        let name = if k.vmid == 101 { "a" } else { "b" };
        let resident = format!(
            "{name}: host OOM killer kills its QEMU ({:.1} GiB of guest RAM resident",
            k.value as f64 / (1u64 << 30) as f64
        );
        let told = lines
            .iter()
            .any(|l| l.at == Some(k.t_s) && l.text.starts_with(&resident));
        assert!(told, "{resident} at {}", clock(k.t_s));
    }
    let summary = to_text(&tell(&sc, &r, Level::Summary));
    let first = &kills[0];
    let victim = if first.vmid == 101 { "a" } else { "b" };
    assert!(
        summary.contains(&format!(
            "{}  first host OOM kill: the QEMU of {victim}; 2 kills in all",
            clock(first.t_s)
        )),
        "{summary}"
    );
    assert!(summary.contains("no page cache reclaim, no guest swap-out, no guest OOM kill"));
}
