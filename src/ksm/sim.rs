//! `memsim ksm-trace`: run a KSM workload on the simulated ksmd and record its counters
//! the way the real-kernel probe does.
//!
//! The set-up follows the probe (`ksm_observed.md`): run=2 first (so `full_scans` starts
//! at 0), the workload's sysfs settings, then the processes one by one, each faulting in
//! its mapping and — if `madvise_at_s` is 0 — marking it `MADV_MERGEABLE` (mm list order
//! = process order), then run=1 at t = 0. From then on the workload's events (late
//! `madvise`, `MADV_UNMERGEABLE`, exits, writer ticks) happen at their times, interleaved
//! with ksmd page by page. A row is recorded every `sample_ms` from t = 0 and, with
//! `row_on_full_scan`, at every pass end. `pages_scanned` and `pages_skipped` start at 0.
//!
//! Contents: a numbered content `T` is id `T + 1` (0 is the zero page); unique pages,
//! random and flip_once writes draw fresh ids nothing else has; a `byte` write turns a
//! content into a tagged variant that counts the increments (two pages with the same
//! content and the same number of byte writes are identical, as in the real run; the
//! wrap back to the original content after 256 increments is not modelled).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::hash::mix64;
use super::ksmd::{Ksmd, MmId, MmOptions, Sysfs, ZERO_CONTENT};
use super::timing::AdvisorMode;
use super::trace::{Row, Trace};
use super::workload::{
    validate, Layout, Original, Problem, Workload, WriteMode, WriteOrder, Writer,
};
use crate::engine::{rng_stream, EventQueue, SimTime};

const TAG_SHIFT: u32 = 62;
const TAG_UNIQUE: u64 = 1 << TAG_SHIFT;
const TAG_FRESH: u64 = 2 << TAG_SHIFT;
const TAG_BYTE: u64 = 3 << TAG_SHIFT;
const TAG_MASK: u64 = 3 << TAG_SHIFT;

/// Content id of numbered content `t` (template id, distinct content).
fn numbered(t: u64) -> u64 {
    t + 1
}

/// The content id page `page` of process `proc_index` starts with (`None` for an
/// untouched page); the layout itself is shared with the real runner.
fn original(layout: &Layout, proc_index: usize, page: u64) -> Option<u64> {
    match layout.original(page) {
        Original::Numbered(t) => Some(numbered(t)),
        Original::Unique => Some(TAG_UNIQUE | ((proc_index as u64) << 32) | page),
        Original::Zero => Some(ZERO_CONTENT),
        Original::Untouched => None,
    }
}

/// `byte` write: the first byte incremented.
fn bump(c: u64) -> u64 {
    if c & TAG_MASK == TAG_BYTE {
        (c & !0xff) | ((c + 1) & 0xff)
    } else {
        TAG_BYTE | ((mix64(c) & ((1 << 54) - 1)) << 8) | 1
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Sample,
    Madvise(usize),
    Unmerge(usize),
    Exit(usize),
    Tick(usize, usize),
}

struct WriterState {
    cursor: u64,
    /// flip_once: pages already flipped (index − range start).
    flipped: Vec<bool>,
    /// flip_once with random order: pages not flipped yet.
    unflipped: Vec<u64>,
    rng: ChaCha8Rng,
}

fn secs(s: f64) -> SimTime {
    SimTime((s.max(0.0) * 1e9).round() as u64)
}

/// Simulates a workload; every problem of the workload if it is not valid.
pub fn simulate(w: &Workload) -> Result<Trace, Vec<Problem>> {
    let problems = validate(w);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut k = Ksmd::new(1);
    k.record_pass_ends(w.row_on_full_scan);
    apply_settings(&mut k, w)?;

    let layouts: Vec<Layout> = w.processes.iter().map(Layout::of).collect();
    let mut mms = Vec::new();
    for (i, p) in w.processes.iter().enumerate() {
        let pages = p.total_pages() as u32;
        let mm = k
            .add_mm(pages, MmOptions::default())
            .map_err(|e| internal(&e))?;
        for page in 0..pages {
            if let Some(c) = original(&layouts[i], i, u64::from(page)) {
                k.write_page(mm, page, c).map_err(|e| internal(&e))?;
            }
        }
        if p.madvise_at_s == 0.0 {
            k.madvise_mergeable(SimTime::ZERO, mm, 0, pages)
                .map_err(|e| internal(&e))?;
        }
        mms.push(mm);
    }
    k.set(SimTime::ZERO, Sysfs::Run(1))
        .map_err(|e| vec![problem_of("ksm.run", e)])?;

    let end = secs(w.duration_s);
    let mut q = EventQueue::default();
    let step = SimTime::from_millis(w.sample_ms);
    let mut t = SimTime::ZERO;
    while t <= end {
        q.schedule(t, Ev::Sample);
        t = t + step;
    }
    let seed = w.seed.unwrap_or(0);
    let mut writers: Vec<Vec<WriterState>> = Vec::new();
    for (i, p) in w.processes.iter().enumerate() {
        if p.madvise_at_s > 0.0 {
            q.schedule(secs(p.madvise_at_s), Ev::Madvise(i));
        }
        if let Some(s) = p.unmerge_at_s {
            q.schedule(secs(s), Ev::Unmerge(i));
        }
        if let Some(s) = p.exit_at_s {
            q.schedule(secs(s), Ev::Exit(i));
        }
        let mut states = Vec::new();
        for (j, wr) in p.writers.iter().enumerate() {
            q.schedule(secs(wr.start_s), Ev::Tick(i, j));
            let len = (wr.range.1 - wr.range.0) as usize;
            states.push(WriterState {
                cursor: 0,
                flipped: if wr.mode == WriteMode::FlipOnce {
                    vec![false; len]
                } else {
                    Vec::new()
                },
                unflipped: if wr.mode == WriteMode::FlipOnce && wr.order == WriteOrder::Random {
                    (0..len as u64).collect()
                } else {
                    Vec::new()
                },
                rng: rng_stream(seed, &format!("ksm-writer/{}/{j}", p.name)),
            });
        }
        writers.push(states);
    }

    let mut trace = Trace {
        processes: w.processes.iter().map(|p| p.name.clone()).collect(),
        rows: Vec::new(),
    };
    let mut exited = vec![false; mms.len()];
    let mut fresh = 0u64;
    while let Some((t, ev)) = q.pop() {
        if t > end {
            break;
        }
        k.run_until(t);
        for pe in k.drain_pass_ends() {
            trace.rows.push(Row {
                t_s: pe.time.as_secs_f64(),
                counters: pe.counters,
                processes: (0..mms.len())
                    .map(|i| pe.mms.get(i).copied().flatten())
                    .collect(),
            });
        }
        match ev {
            Ev::Sample => trace.rows.push(Row {
                t_s: t.as_secs_f64(),
                counters: k.counters(),
                processes: mms.iter().map(|m| k.mm_stat(*m).map(Into::into)).collect(),
            }),
            Ev::Madvise(i) if !exited[i] => {
                let pages = k.mm_pages(mms[i]);
                k.madvise_mergeable(t, mms[i], 0, pages)
                    .map_err(|e| internal(&e))?;
            }
            Ev::Unmerge(i) if !exited[i] => {
                let pages = k.mm_pages(mms[i]);
                k.madvise_unmergeable(mms[i], 0, pages)
                    .map_err(|e| internal(&e))?;
            }
            Ev::Exit(i) if !exited[i] => {
                exited[i] = true;
                k.exit_mm(mms[i]).map_err(|e| internal(&e))?;
            }
            Ev::Tick(i, j) if !exited[i] => {
                let wr = &w.processes[i].writers[j];
                let stop = wr.stop_s.map_or(end, secs);
                if t < stop {
                    write_tick(
                        &mut k,
                        mms[i],
                        wr,
                        &mut writers[i][j],
                        &layouts[i],
                        i,
                        &mut fresh,
                    )
                    .map_err(|e| internal(&e))?;
                    let next = t + SimTime::from_millis(wr.every_ms);
                    if next < stop && next <= end {
                        q.schedule(next, Ev::Tick(i, j));
                    }
                }
            }
            _ => {}
        }
    }
    trace.rows.sort_by(|a, b| {
        a.t_s
            .partial_cmp(&b.t_s)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(trace)
}

fn write_tick(
    k: &mut Ksmd,
    mm: MmId,
    wr: &Writer,
    st: &mut WriterState,
    layout: &Layout,
    proc_index: usize,
    fresh: &mut u64,
) -> Result<(), super::ksmd::KsmError> {
    let (a, b) = wr.range;
    let len = b - a;
    for _ in 0..wr.pages_per_tick {
        let idx = match (wr.mode, wr.order) {
            (WriteMode::FlipOnce, WriteOrder::Random) => {
                if st.unflipped.is_empty() {
                    break;
                }
                let pick = st.rng.random_range(0..st.unflipped.len());
                st.unflipped.swap_remove(pick)
            }
            (WriteMode::FlipOnce, WriteOrder::Cycle) => {
                let mut found = None;
                for _ in 0..len {
                    let i = st.cursor;
                    st.cursor = (st.cursor + 1) % len;
                    if !st.flipped[i as usize] {
                        found = Some(i);
                        break;
                    }
                }
                match found {
                    Some(i) => i,
                    None => break,
                }
            }
            (_, WriteOrder::Random) => st.rng.random_range(0..len),
            (_, WriteOrder::Cycle) => {
                let i = st.cursor;
                st.cursor = (st.cursor + 1) % len;
                i
            }
        };
        let page = a + idx;
        let content = match wr.mode {
            WriteMode::Random | WriteMode::FlipOnce => {
                *fresh += 1;
                if wr.mode == WriteMode::FlipOnce {
                    st.flipped[idx as usize] = true;
                }
                TAG_FRESH | *fresh
            }
            WriteMode::Restore => original(layout, proc_index, page).unwrap_or(ZERO_CONTENT),
            WriteMode::Byte => bump(k.page_content(mm, page as u32).unwrap_or(ZERO_CONTENT)),
        };
        k.write_page(mm, page as u32, content)?;
    }
    Ok(())
}

/// A numeric sysfs knob of the workload: name, value, how to write it.
type Knob<'a> = (&'a str, Option<u64>, fn(u64) -> Sysfs);

fn apply_settings(k: &mut Ksmd, w: &Workload) -> Result<(), Vec<Problem>> {
    let s = &w.ksm;
    let t = SimTime::ZERO;
    let mut problems = Vec::new();
    let mut set = |name: &str, v: Sysfs| {
        if let Err(e) = k.set(t, v) {
            problems.push(problem_of(&format!("ksm.{name}"), e));
        }
    };
    set("run", Sysfs::Run(2));
    if let Some(m) = &s.advisor_mode {
        let mode = if m == "scan-time" {
            AdvisorMode::ScanTime
        } else {
            AdvisorMode::None
        };
        set("advisor_mode", Sysfs::AdvisorMode(mode));
    }
    let knobs: [Knob; 11] = [
        (
            "advisor_target_scan_time",
            s.advisor_target_scan_time,
            Sysfs::AdvisorTargetScanTime,
        ),
        (
            "advisor_min_pages_to_scan",
            s.advisor_min_pages_to_scan,
            Sysfs::AdvisorMinPagesToScan,
        ),
        (
            "advisor_max_pages_to_scan",
            s.advisor_max_pages_to_scan,
            Sysfs::AdvisorMaxPagesToScan,
        ),
        ("advisor_max_cpu", s.advisor_max_cpu, Sysfs::AdvisorMaxCpu),
        ("pages_to_scan", s.pages_to_scan, Sysfs::PagesToScan),
        ("sleep_millisecs", s.sleep_millisecs, Sysfs::SleepMillisecs),
        ("smart_scan", s.smart_scan.map(u64::from), Sysfs::SmartScan),
        (
            "use_zero_pages",
            s.use_zero_pages.map(u64::from),
            Sysfs::UseZeroPages,
        ),
        (
            "max_page_sharing",
            s.max_page_sharing,
            Sysfs::MaxPageSharing,
        ),
        (
            "merge_across_nodes",
            s.merge_across_nodes.map(u64::from),
            Sysfs::MergeAcrossNodes,
        ),
        (
            "stable_node_chains_prune_millisecs",
            s.stable_node_chains_prune_millisecs,
            Sysfs::StableNodeChainsPruneMillisecs,
        ),
    ];
    for (name, v, f) in knobs {
        if let Some(v) = v {
            set(name, f(v));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn problem_of(key: &str, e: super::ksmd::SysfsError) -> Problem {
    Problem {
        key: key.to_string(),
        message: format!("the kernel refuses this value ({e})"),
    }
}

fn internal(e: &super::ksmd::KsmError) -> Vec<Problem> {
    vec![Problem {
        key: String::new(),
        message: format!("internal: {e}"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ksm::workload::parse_workload;

    #[test]
    fn byte_writes_count_increments() {
        let c = numbered(5);
        let b1 = bump(c);
        assert_ne!(b1, c);
        assert_eq!(bump(c), b1);
        assert_ne!(bump(b1), b1);
        assert_eq!(bump(b1) & TAG_MASK, TAG_BYTE);
    }

    #[test]
    fn simulation_is_deterministic_and_records_pass_ends() {
        let w = parse_workload(
            r#"{"name": "t", "duration_s": 2, "sample_ms": 100, "row_on_full_scan": true, "seed": 3,
                "processes": [{"name": "a", "pages": 300, "shared_fraction": 0.5, "template": 1,
                  "writers": [{"range": [0, 50], "pages_per_tick": 5, "every_ms": 10, "mode": "random", "order": "random"}]}]}"#,
        )
        .unwrap();
        let a = simulate(&w).unwrap();
        let b = simulate(&w).unwrap();
        assert_eq!(a, b);
        assert!(a.rows.iter().any(|r| r.counters.full_scans >= 2));
        assert!(a.rows.windows(2).all(|p| p[0].t_s <= p[1].t_s));
    }

    #[test]
    fn odd_workloads_never_panic() {
        use rand::Rng;
        let mut rng = crate::engine::rng_stream(7, "odd-workloads");
        let kinds = ["template", "distinct", "unique", "zero", "untouched"];
        let modes = ["random", "restore", "flip_once", "byte"];
        for _ in 0..60 {
            let mut procs = Vec::new();
            for i in 0..rng.random_range(1..4) {
                let mut segs = Vec::new();
                let mut total = 0;
                for _ in 0..rng.random_range(1..4) {
                    let n = rng.random_range(0..80);
                    total += n;
                    let kind = kinds[rng.random_range(0..kinds.len())];
                    segs.push(match kind {
                        "template" => format!(
                            r#"{{"kind": "template", "id": {}, "pages": {n}}}"#,
                            rng.random_range(0..3)
                        ),
                        "distinct" => format!(
                            r#"{{"kind": "distinct", "k": {}, "base": 1, "pages": {n}}}"#,
                            rng.random_range(1..4)
                        ),
                        k => format!(r#"{{"kind": "{k}", "pages": {n}}}"#),
                    });
                }
                let mut writers = Vec::new();
                if total > 1 && rng.random_bool(0.6) {
                    let a = rng.random_range(0..total - 1);
                    let b = rng.random_range(a + 1..=total);
                    writers.push(format!(
                        r#"{{"range": [{a}, {b}], "pages_per_tick": {}, "every_ms": {}, "mode": "{}", "order": "{}", "start_s": {}}}"#,
                        rng.random_range(1..=b - a),
                        rng.random_range(1..100),
                        modes[rng.random_range(0..4)],
                        if rng.random_bool(0.5) { "cycle" } else { "random" },
                        rng.random_range(0.0..1.0)
                    ));
                }
                let mut extra = String::new();
                for key in ["madvise_at_s", "unmerge_at_s", "exit_at_s"] {
                    if rng.random_bool(0.3) {
                        extra += &format!(r#", "{key}": {}"#, rng.random_range(0.0..2.0));
                    }
                }
                procs.push(format!(
                    r#"{{"name": "p{i}", "segments": [{}], "writers": [{}]{extra}}}"#,
                    segs.join(","),
                    writers.join(",")
                ));
            }
            let text = format!(
                r#"{{"name": "odd", "duration_s": 2, "sample_ms": 50, "row_on_full_scan": {}, "seed": 5,
                    "ksm": {{"pages_to_scan": {}, "sleep_millisecs": {}, "max_page_sharing": {}, "use_zero_pages": {}, "smart_scan": {}}},
                    "processes": [{}]}}"#,
                rng.random_bool(0.5),
                rng.random_range(1..200),
                rng.random_range(0..30),
                rng.random_range(2..10),
                rng.random_range(0..2),
                rng.random_range(0..2),
                procs.join(",")
            );
            match parse_workload(&text) {
                Ok(w) => {
                    let t = simulate(&w).unwrap();
                    assert!(t.rows.windows(2).all(|p| p[0].counters.pages_scanned
                        <= p[1].counters.pages_scanned
                        || p[0].t_s == p[1].t_s));
                }
                Err(problems) => assert!(!problems.is_empty()),
            }
        }
    }
}
