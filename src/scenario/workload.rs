//! The `workload:` key: a preset name, or processes with demand shapes.
//!
//! What is parsed here does not depend on the VM, so a template's workload (trace
//! files included) is read and checked once, however many VMs use it. Only the preset's
//! processes wait for the VM's memory, because presets scale with it
//! ([`WorkloadSpec::build`]).

use std::fs;

use super::located::{Node, Value};
use super::read::{
    choice, duration, fields, fraction, int, list, positive_duration, rate, size, string, At, Ctx,
    Fields, Slot,
};
use super::units::{self, Bare};
use crate::engine::SimTime;
use crate::workload::{preset, ProcessSpec, Shape, PRESETS};

const WORKLOAD_KEYS: &[&str] = &["preset", "processes"];
const PROCESS_KEYS: &[&str] = &[
    "name",
    "anon",
    "hot_fraction",
    "cache",
    "read_rate",
    "write_rate",
    "oom_score_adj",
    "restart_after",
];
const SHAPES: &[&str] = &["constant", "ramp", "step", "diurnal", "bursty", "trace"];
const STEP_KEYS: &[&str] = &["at", "size"];

/// Trace-file problems shown per file; the rest are counted.
const MAX_TRACE_PROBLEMS: usize = 5;

/// A parsed `workload:`, before the VM's memory is known.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WorkloadSpec {
    pub preset: Option<&'static str>,
    /// Processes given in the file; they follow the preset's.
    pub processes: Vec<ProcessSpec>,
}

impl WorkloadSpec {
    /// What a VM runs when neither it nor its template says.
    pub fn idle() -> WorkloadSpec {
        WorkloadSpec {
            preset: Some("idle"),
            processes: Vec::new(),
        }
    }

    /// The workload's name (the preset, or `custom` once processes are listed) and its
    /// processes for a VM of `memory` bytes.
    pub fn build(&self, memory: u64) -> (String, Vec<ProcessSpec>) {
        let mut processes: Vec<ProcessSpec> = self
            .preset
            .and_then(|p| preset(p, memory))
            .unwrap_or_default();
        processes.extend(self.processes.iter().cloned());
        let name = match (self.preset, self.processes.is_empty()) {
            (Some(p), true) => p,
            _ => "custom",
        };
        (name.to_string(), processes)
    }
}

/// Reads `workload:`: a preset name or a mapping with `preset` and/or `processes`.
pub(crate) fn workload(ctx: &mut Ctx, node: &Node, path: &str) -> Option<WorkloadSpec> {
    if let Value::Map(_) = node.value {
        return workload_map(ctx, node, path);
    }
    match choice("preset", PRESETS)(node) {
        Ok(p) => Some(WorkloadSpec {
            preset: Some(p),
            processes: Vec::new(),
        }),
        Err(message) => {
            ctx.report(node.line, path, message);
            None
        }
    }
}

fn workload_map(ctx: &mut Ctx, node: &Node, path: &str) -> Option<WorkloadSpec> {
    let f = fields(ctx, node, path, WORKLOAD_KEYS)?;
    let base = f.slot(ctx, "preset", choice("preset", PRESETS));
    let taken = preset_process_names(&base);
    let processes = f.nested(ctx, "processes", |ctx, node, path| {
        processes(ctx, node, path, taken)
    });
    let runs_nothing = matches!(base, Slot::Unset)
        && match &processes {
            Slot::Unset => true,
            Slot::Set(at) => at.value.is_empty(),
            Slot::Invalid => false,
        };
    if runs_nothing {
        ctx.report(
            node.line,
            path,
            "runs nothing: give a preset, processes, or both",
        );
        return None;
    }
    Some(WorkloadSpec {
        preset: base.optional()?,
        processes: processes.or(Vec::new())?,
    })
}

/// Names of the preset's processes, with who owns them, for the uniqueness check.
fn preset_process_names(base: &Slot<&'static str>) -> Vec<(String, String)> {
    let Slot::Set(at) = base else {
        return Vec::new();
    };
    let processes = preset(at.value, 0).unwrap_or_default();
    let owner = format!("preset {}", at.value);
    processes
        .into_iter()
        .map(|p| (p.name, owner.clone()))
        .collect()
}

/// Reads the list; process names identify processes in events and OOM reports, so
/// they must differ from each other and from the preset's (`taken`).
fn processes(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    mut taken: Vec<(String, String)>,
) -> Option<Vec<ProcessSpec>> {
    let items = match list(node, "a list of processes") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, path, message);
            return None;
        }
    };
    let mut out = Some(Vec::new());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let process = process(ctx, item, &item_path);
        if let Some(at) = &process {
            if let Some((_, owner)) = taken.iter().find(|(n, _)| *n == at.value.name) {
                let message = format!(
                    "process name {:?} is already used by {owner}",
                    at.value.name
                );
                ctx.report_at(at, message);
                out = None;
            }
            taken.push((at.value.name.clone(), item_path));
        }
        out = out.zip(process).map(|(mut v, p)| {
            v.push(p.value);
            v
        });
    }
    out
}

/// One process, located at its `name` key.
fn process(ctx: &mut Ctx, node: &Node, path: &str) -> Option<At<ProcessSpec>> {
    let f = fields(ctx, node, path, PROCESS_KEYS)?;
    let name = f.required(ctx, "name", string);
    let anon = f.required_nested(ctx, "anon", anon);
    let hot_fraction = f.slot(ctx, "hot_fraction", fraction).or(0.5);
    let cache = f.slot(ctx, "cache", sz).or(0);
    let read_rate = f.slot(ctx, "read_rate", rate).or(0);
    let write_rate = f.slot(ctx, "write_rate", rate).or(0);
    let oom_score_adj = f.slot(ctx, "oom_score_adj", int(-1000, 1000)).or(0);
    let restart_after = f.slot(ctx, "restart_after", duration).optional();
    let name = name?;
    let spec = ProcessSpec {
        name: name.value,
        anon: anon?,
        hot_fraction: hot_fraction?,
        cache: cache?,
        read_rate: read_rate?,
        write_rate: write_rate?,
        oom_score_adj: oom_score_adj? as i32,
        restart_after: restart_after?,
    };
    Some(At {
        value: spec,
        line: name.line,
        path: name.path,
    })
}

/// `anon:` is a size (constant) or a mapping with `shape:`.
fn anon(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Shape> {
    if let Value::Map(entries) = &node.value {
        let Some((_, kind)) = entries.iter().find(|(k, _)| k == "shape") else {
            let message = format!("required key is missing (one of {})", SHAPES.join(", "));
            ctx.report(node.line, &format!("{path}.shape"), message);
            return None;
        };
        let kind = match choice("shape", SHAPES)(kind) {
            Ok(kind) => kind,
            Err(message) => {
                ctx.report(kind.line, &format!("{path}.shape"), message);
                return None;
            }
        };
        return shape(ctx, node, path, kind);
    }
    match size(Bare::Reject)(node) {
        Ok(bytes) => Some(Shape::Constant(bytes)),
        Err(message) => {
            ctx.report(node.line, path, message);
            None
        }
    }
}

fn shape(ctx: &mut Ctx, node: &Node, path: &str, kind: &str) -> Option<Shape> {
    let keys: &[&str] = match kind {
        "constant" => &["shape", "size"],
        "ramp" => &["shape", "from", "to", "start", "over"],
        "step" => &["shape", "initial", "steps"],
        "diurnal" => &["shape", "mean", "amplitude", "period", "phase"],
        "bursty" => &["shape", "base", "burst", "every", "length"],
        _ => &["shape", "file"],
    };
    let f = fields(ctx, node, path, keys)?;
    match kind {
        "constant" => Some(Shape::Constant(f.required(ctx, "size", sz)?.value)),
        "ramp" => ramp(ctx, &f),
        "step" => step(ctx, &f),
        "diurnal" => diurnal(ctx, &f),
        "bursty" => bursty(ctx, &f),
        _ => trace(ctx, &f),
    }
}

fn sz(node: &Node) -> Result<u64, String> {
    size(Bare::Reject)(node)
}

fn ramp(ctx: &mut Ctx, f: &Fields) -> Option<Shape> {
    let from = f.required(ctx, "from", sz);
    let to = f.required(ctx, "to", sz);
    let start = f.slot(ctx, "start", duration).or(SimTime::ZERO);
    let over = f.required(ctx, "over", duration);
    Some(Shape::Ramp {
        from: from?.value,
        to: to?.value,
        start: start?,
        over: over?.value,
    })
}

fn step(ctx: &mut Ctx, f: &Fields) -> Option<Shape> {
    let initial = f.required(ctx, "initial", sz);
    let steps = f.required_nested(ctx, "steps", steps);
    Some(Shape::Step {
        initial: initial?.value,
        steps: steps?,
    })
}

/// `steps: [{at: 10m, size: 4GiB}, ...]`, strictly increasing in `at`.
fn steps(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<(SimTime, u64)>> {
    let items = match list(node, "a list of {at, size} steps") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, path, message);
            return None;
        }
    };
    let mut out = Some(Vec::new());
    for (i, item) in items.iter().enumerate() {
        let step = step_item(ctx, item, &format!("{path}[{i}]"));
        out = out.zip(step).map(|(mut v, s)| {
            v.push(s);
            v
        });
    }
    let out = out?;
    let unordered = out.windows(2).position(|w| w[1].0 <= w[0].0);
    if let Some(i) = unordered {
        let message = format!(
            "at {} is not after the previous step's {}",
            units::format_duration(out[i + 1].0),
            units::format_duration(out[i].0)
        );
        ctx.report(items[i + 1].line, &format!("{path}[{}].at", i + 1), message);
        return None;
    }
    Some(out)
}

fn step_item(ctx: &mut Ctx, node: &Node, path: &str) -> Option<(SimTime, u64)> {
    let f = fields(ctx, node, path, STEP_KEYS)?;
    let at = f.required(ctx, "at", duration);
    let size = f.required(ctx, "size", sz);
    Some((at?.value, size?.value))
}

fn diurnal(ctx: &mut Ctx, f: &Fields) -> Option<Shape> {
    let mean = f.required(ctx, "mean", sz);
    let amplitude = f.required(ctx, "amplitude", sz);
    let period = f
        .slot(ctx, "period", positive_duration)
        .or(SimTime::from_secs(86_400));
    let phase = f.slot(ctx, "phase", duration).or(SimTime::ZERO);
    Some(Shape::Diurnal {
        mean: mean?.value,
        amplitude: amplitude?.value,
        period: period?,
        phase: phase?,
    })
}

fn bursty(ctx: &mut Ctx, f: &Fields) -> Option<Shape> {
    let base = f.required(ctx, "base", sz);
    let burst = f.required(ctx, "burst", sz);
    let every = f.required(ctx, "every", positive_duration);
    let length = f.required(ctx, "length", positive_duration);
    Some(Shape::Bursty {
        base: base?.value,
        burst: burst?.value,
        every: every?.value,
        length: length?.value,
    })
}

/// `{shape: trace, file: x.csv}`: reads the CSV now, relative to the scenario's folder.
fn trace(ctx: &mut Ctx, f: &Fields) -> Option<Shape> {
    let file = f.required(ctx, "file", string)?;
    let full = ctx.base_dir.join(&file.value);
    let text = match fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read trace file {}: {e}", full.display());
            ctx.report_at(&file, message);
            return None;
        }
    };
    match parse_trace(&text) {
        Ok(points) => Some(Shape::Trace(points)),
        Err(problems) => {
            for p in problems {
                ctx.report_at(&file, format!("{}:{p}", file.value));
            }
            None
        }
    }
}

/// Parses a trace: header `t_s,bytes`, then rows of seconds (decimals allowed) and
/// integer bytes, strictly increasing in time. Problems read `line: message`.
pub(crate) fn parse_trace(text: &str) -> Result<Vec<(SimTime, u64)>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    match reader.headers() {
        Ok(h) if h.iter().eq(["t_s", "bytes"]) => {}
        Ok(h) => {
            let found = h.iter().collect::<Vec<_>>().join(",");
            return Err(vec![format!(
                "1: expected the header t_s,bytes, found {found:?}"
            )]);
        }
        Err(e) => return Err(vec![format!("1: {e}")]),
    }
    let mut points: Vec<(SimTime, u64)> = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                if let Err(e) = trace_row(&r, &points).map(|p| points.push(p)) {
                    problems.push(format!("{line}: {e}"));
                }
            }
            Err(e) => problems.push(csv_problem(&e)),
        }
    }
    if points.is_empty() && problems.is_empty() {
        problems.push("1: no data rows after the header".into());
    }
    if problems.is_empty() {
        return Ok(points);
    }
    let more = problems.len().saturating_sub(MAX_TRACE_PROBLEMS);
    problems.truncate(MAX_TRACE_PROBLEMS);
    if more > 0 {
        let last = problems.last().cloned().unwrap_or_default();
        let line = last.split(':').next().unwrap_or("1").to_string();
        problems.push(format!("{line}: ... and {more} more problems in this file"));
    }
    Err(problems)
}

fn trace_row(r: &csv::StringRecord, points: &[(SimTime, u64)]) -> Result<(SimTime, u64), String> {
    let (Some(t_text), Some(bytes_text)) = (r.get(0), r.get(1)) else {
        return Err("expected 2 fields".into());
    };
    let plain = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !plain(t_text) {
        return Err(format!(
            "t_s: expected seconds (a number), found {t_text:?}"
        ));
    }
    let t = units::parse_duration(t_text).map_err(|e| format!("t_s: {e}"))?;
    let bytes = match bytes_text.parse::<u64>() {
        Ok(b) if b <= units::MAX_SIZE => b,
        Ok(_) => return Err(format!("bytes: {bytes_text} is too large")),
        Err(_) => return Err(format!("bytes: expected an integer, found {bytes_text:?}")),
    };
    match points.last() {
        Some((prev, _)) if t <= *prev => Err(format!(
            "t_s {t_text} is not after the previous row's {prev}"
        )),
        _ => Ok((t, bytes)),
    }
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
            ..
        } => {
            let line = pos.as_ref().map_or(0, |p| p.line());
            format!("{line}: expected {expected_len} fields, found {len}")
        }
        _ => format!("1: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_reads_seconds_and_bytes() {
        let points = parse_trace("t_s,bytes\n0,100\n1.5, 200\n3600,1073741824\n").unwrap();
        assert_eq!(
            points,
            [
                (SimTime::ZERO, 100),
                (SimTime::from_millis(1500), 200),
                (SimTime::from_secs(3600), 1 << 30)
            ]
        );
    }

    #[test]
    fn trace_problems_name_their_line() {
        let err = parse_trace("t_s,bytes\n0,100\n5,abc\n0,1\n9\n").unwrap_err();
        assert!(
            err[0].starts_with("3: bytes: expected an integer"),
            "{err:?}"
        );
        assert!(err[1].starts_with("4: t_s 0 is not after"), "{err:?}");
        assert!(
            err[2].starts_with("5: expected 2 fields, found 1"),
            "{err:?}"
        );
        assert!(parse_trace("time,bytes\n0,1\n").unwrap_err()[0].contains("header"));
        assert!(parse_trace("").unwrap_err()[0].contains("header"));
        assert!(parse_trace("t_s,bytes\n").unwrap_err()[0].contains("no data rows"));
        let many = "t_s,bytes\n".to_string() + &"x,1\n".repeat(20);
        let err = parse_trace(&many).unwrap_err();
        assert_eq!(err.len(), MAX_TRACE_PROBLEMS + 1);
        assert!(err[MAX_TRACE_PROBLEMS].contains("and 15 more"), "{err:?}");
    }
}
