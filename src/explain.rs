//! `memsim explain`: a run told as a timeline of plain sentences, the way an admin
//! would tell it after reading the host's graphs and the guests' `dmesg` — each with
//! its simulated time and the numbers behind it.
//!
//! The account is built from a [`RunResult`] alone (events and samples) and the
//! scenario it ran, so the same sentences appear on the terminal and in `report.html`.
//! It reads three ways ([`Level`]):
//!
//! - `summary`: a handful of lines — when the host first went above its target, the
//!   first reclaim, swap-out and OOM kill, totals, peak memused and what KSM saved;
//! - `decisions`: the timeline — pvestatd's balloon commands, one sentence for all the
//!   VMs of a cycle, and one for a stretch of cycles that repeat one decision (a phase
//!   on one side of the target, or hunting around it; see `cycles`), pressure episodes
//!   with their figures from the samples, OOM kills, host swap and OOM, ksmd started
//!   and stopped, VMs started, stopped and migrated;
//! - `everything`: the same sentences, each followed by the details under it — every
//!   cycle of a stretch and every VM's command with its size before and after. Every
//!   line of `decisions` appears unchanged in `everything`.
//!
//! Sentences at the same instant that say the same thing about different VMs are
//! merged into one (`web-1…web-6: started …`). Output is deterministic: it depends on
//! the run's data only, in its order.

mod cycles;
mod detail;
mod format;
mod incidents;
mod mom;
mod pressure;
mod run;
mod story;

use std::fmt;
use std::str::FromStr;

use crate::engine::SimTime;
use crate::metrics::RunResult;
use crate::scenario::Scenario;
pub use format::{clock, parse_offset};
pub(crate) use format::{size, span};
use run::Run;

/// How much of the run to tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Summary,
    #[default]
    Decisions,
    Everything,
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "summary" => Ok(Level::Summary),
            "decisions" => Ok(Level::Decisions),
            "everything" => Ok(Level::Everything),
            _ => Err(format!(
                "unknown level {s:?}: use summary, decisions or everything"
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Summary => "summary",
            Level::Decisions => "decisions",
            Level::Everything => "everything",
        })
    }
}

/// The stretch of simulated time to tell, both ends included; unbounded by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    since: Option<SimTime>,
    until: Option<SimTime>,
}

impl Window {
    /// A window from `since` to `until`; an error if it ends before it begins.
    pub fn new(since: Option<SimTime>, until: Option<SimTime>) -> Result<Window, String> {
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(format!(
                    "--since {} is after --until {}",
                    clock(s.as_secs_f64()),
                    clock(u.as_secs_f64())
                ));
            }
        }
        Ok(Window { since, until })
    }

    pub fn contains(&self, t_s: f64) -> bool {
        self.since.is_none_or(|s| t_s >= s.as_secs_f64())
            && self.until.is_none_or(|u| t_s <= u.as_secs_f64())
    }

    fn is_whole_run(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// Start and end in seconds, the run's own bounds where the window has none.
    fn bounds(&self, run_end: f64) -> (f64, f64) {
        (
            self.since.map_or(0.0, SimTime::as_secs_f64),
            self.until.map_or(run_end, SimTime::as_secs_f64),
        )
    }
}

/// One line of the account.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Simulated seconds of what it tells; `None` for statements about the whole run.
    pub at: Option<f64>,
    /// 0 for the account itself, 1 and 2 for the details under a line (`everything`).
    pub depth: u8,
    pub text: String,
}

/// Tells the run `result` of `scenario` at `level`, limited to `window`.
pub fn explain(scenario: &Scenario, result: &RunResult, level: Level, window: Window) -> Vec<Line> {
    let run = Run::new(scenario, result, window);
    let mut lines = vec![story::preamble(&run)];
    match level {
        Level::Summary => lines.extend(story::tell(&run)),
        Level::Decisions | Level::Everything => {
            lines.extend(timeline(&run, level == Level::Everything))
        }
    }
    lines
}

/// The account as text: one line each, the clock first, details indented.
pub fn to_text(lines: &[Line]) -> String {
    let mut out = String::new();
    for line in lines {
        let time = line.at.map_or_else(|| " ".repeat(8), clock);
        let indent = "    ".repeat(usize::from(line.depth));
        out.push_str(&format!("{time}  {indent}{}\n", line.text));
    }
    out
}

/// Who a sentence is about: VMs (merged when several say the same thing at once)
/// or one of the host's actors.
#[derive(Clone, Debug, PartialEq)]
enum Subject {
    Vms(Vec<u32>),
    Host(String),
}

/// A sentence before it is written out.
struct Item {
    t: f64,
    /// Order among sentences of the same instant: the index of the event it tells.
    seq: usize,
    /// What kind of sentence it is: only sentences of one kind merge.
    kind: &'static str,
    subject: Subject,
    body: String,
    /// The details under it, shown at `everything`.
    details: Vec<Line>,
}

impl Item {
    fn vm(t: f64, seq: usize, kind: &'static str, vmid: u32, body: String) -> Item {
        Item {
            t,
            seq,
            kind,
            subject: Subject::Vms(vec![vmid]),
            body,
            details: Vec::new(),
        }
    }

    fn host(t: f64, seq: usize, kind: &'static str, who: impl Into<String>, body: String) -> Item {
        Item {
            t,
            seq,
            kind,
            subject: Subject::Host(who.into()),
            body,
            details: Vec::new(),
        }
    }

    /// Whether `other` says the same as this at the same instant, about other VMs.
    fn absorbs(&mut self, other: &Item) -> bool {
        let same = self.t == other.t
            && self.kind == other.kind
            && self.body == other.body
            && self.details.is_empty()
            && other.details.is_empty();
        match (&mut self.subject, &other.subject) {
            (Subject::Vms(mine), Subject::Vms(theirs)) if same => {
                mine.extend(theirs);
                mine.sort_unstable();
                true
            }
            _ => false,
        }
    }
}

fn timeline(run: &Run, detailed: bool) -> Vec<Line> {
    let mut items = Vec::new();
    items.extend(incidents::items(run));
    if run.sc.mom.is_some() {
        items.extend(mom::items(run));
    } else {
        items.extend(cycles::items(run));
    }
    items.extend(pressure::items(run));
    items.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.seq.cmp(&b.seq)));
    let mut merged: Vec<Item> = Vec::new();
    for item in items {
        let absorbed = merged
            .iter_mut()
            .rev()
            .take_while(|m| m.t == item.t)
            .any(|m| m.absorbs(&item));
        if !absorbed {
            merged.push(item);
        }
    }
    let mut lines = Vec::new();
    for item in merged {
        let subject = match &item.subject {
            Subject::Vms(vmids) => run.names_of(vmids),
            Subject::Host(who) => who.clone(),
        };
        lines.push(Line {
            at: Some(item.t),
            depth: 0,
            text: format!("{subject}: {}", item.body),
        });
        if detailed {
            lines.extend(item.details);
        }
    }
    lines
}
