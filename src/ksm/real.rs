//! Running a KSM workload on the real kernel and recording what ksmd does
//! (`memsim ksm-trace --real`), and comparing such a recording with a simulated trace
//! (`memsim calibrate`).
//!
//! A real run does what the reference probe did (`shared/design/ksm_observed.md`):
//!
//! 1. saves every KSM setting (`run` and each tunable of `/sys/kernel/mm/ksm`);
//! 2. writes `run=2` — ksmd stops and unmerges everything, `full_scans` restarts from
//!    0 — and waits until nothing is merged;
//! 3. applies the workload's `ksm` settings; a tunable the workload leaves out gets the
//!    kernel default (FORMAT.md: "absent = kernel defaults"), so that a recording does
//!    not depend on how the host happened to be tuned; on the reference machine the
//!    defaults were also what was found, so this is what the probe did there;
//! 4. forks one process per workload process, one after the other (each is ready —
//!    mapped, filled, and marked `MADV_MERGEABLE` if `madvise_at_s` is 0 — before the
//!    next is forked, so ksmd's mm list is in workload order);
//! 5. writes `run=1`: t = 0. The processes then follow their schedule (mergeable,
//!    unmergeable, exit, writers) on the same clock, and the runner samples the global
//!    counters and each process's `/proc/<pid>/ksm_stat` every `sample_ms`, plus,
//!    with `row_on_full_scan`, whenever `full_scans` changes (polled every `poll_ms`).
//!    Pass ends are only timed to a row without it: the reference recording of
//!    `w1_identical` has pass-end rows although its workload leaves the key out (the
//!    probe seems to have recorded them regardless), so set it for a comparable trace;
//! 6. at `duration_s` (≤ 120 s) kills the processes, writes `run=2` again (nothing of
//!    the run stays merged or registered), and writes every saved setting back, `run`
//!    last.
//!
//! Step 6 happens whatever ends the run: success, an error, a panic (guards restore in
//! `Drop`), Ctrl-C, SIGTERM or SIGHUP (a handler only flags the run to stop, so the
//! run ends through the normal path). Only SIGKILL of the runner defeats it: the
//! children then die with it (`PR_SET_PDEATHSIG`) but the settings stay as applied.
//!
//! Because `run=2` unmerges every KSM user of the host, a run refuses to start while
//! other processes have merged pages ([`check_available`]); runs are serialised by a
//! lock file.
//!
//! Writing a calibration ([`write_calibration`]) needs no kernel; the comparison it
//! tabulates is [`crate::ksm::compare`], shared with the fidelity tests.

mod calibration;
mod child;
mod content;
mod kids;
mod plan;
mod sysfs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use child::{ns, ChildPlan, Clock, Msg};
use kids::Kids;
use sysfs::{Session, Sysfs, HOST_ROOT};

use super::trace::{Counters, ProcessCounters, Row, Trace};
use super::workload::Workload;

pub use calibration::write_calibration;
pub use sysfs::SettingsReport;

/// How long `run=2` may take to unmerge everything.
const UNMERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to map and fill its memory.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after `duration_s` the sampling loop may overrun before the run is
/// abandoned (it only could if reading sysfs stalled).
const OVERRUN: Duration = Duration::from_secs(10);
/// How long to wait at the end for the processes' last messages.
const FINISH_WAIT: Duration = Duration::from_secs(1);

/// Why a real run could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    #[error("not running as root (euid {0}): a real KSM run writes /sys/kernel/mm/ksm")]
    NotRoot(u32),
    #[error("{}: no KSM here (kernel built without CONFIG_KSM?)", .0.display())]
    NoKsm(PathBuf),
    #[error("{} is not writable: {source}", path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "other processes have KSM-merged pages (pages_sharing={pages_sharing}, \
         ksm_zero_pages={zero_pages}); a real run starts with run=2, which would unmerge \
         them: stop those KSM users (or write 2 to /sys/kernel/mm/ksm/run) first"
    )]
    OtherUsers { pages_sharing: u64, zero_pages: u64 },
    #[error("another real KSM run is in progress (lock {} is held)", .0.display())]
    Busy(PathBuf),
    #[error("workload: {0}")]
    Workload(String),
    #[error("the page size is {0} bytes; the workload format counts 4096-byte pages")]
    PageSize(i64),
    #[error(
        "the workload touches {needed_mib} MiB, more than half of MemAvailable \
         ({available_mib} MiB)"
    )]
    Memory { needed_mib: u64, available_mib: u64 },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{}: unexpected content {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    #[error("{}: reads {got} after writing {wanted}", path.display())]
    NotApplied {
        path: PathBuf,
        wanted: String,
        got: String,
    },
    #[error("process {name}: {message}")]
    Child { name: String, message: String },
    #[error("cannot install the Ctrl-C/SIGTERM handler: {0}")]
    Signals(String),
    #[error("interrupted (KSM settings restored)")]
    Interrupted,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("restoring KSM settings: {0}")]
    Restore(String),
}

/// Whether a real run can start here: root, a writable `/sys/kernel/mm/ksm`, and no
/// other process with merged pages. Changes nothing.
pub fn check_available() -> Result<(), RealError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(RealError::NotRoot(euid));
    }
    sysfs::check_dir(Path::new(HOST_ROOT))
}

/// Runs `w` on the real kernel and returns its trace (see the module documentation).
pub fn run_real(w: &Workload) -> Result<Trace, RealError> {
    record(w).map(|r| r.trace)
}

/// One real run: the trace, the processes' own events, and the settings touched.
#[derive(Clone, Debug)]
pub struct Recording {
    pub trace: Trace,
    /// In time order; `madvise_at_s` = 0 happens before the start and is logged at 0.
    pub events: Vec<Event>,
    pub settings: SettingsReport,
}

/// One event of a workload process, as in the recordings' `<name>.events.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub t_s: f64,
    /// Index of the process in the workload.
    pub process: usize,
    /// `madvise_mergeable`, `madvise_unmergeable`, `exit`, `writer<j>_tick`,
    /// `writer<j>_done`.
    pub event: String,
    /// `pages=1300`, `took_ms=3.190`, `ticks=50 writes=1000`, or empty.
    pub detail: String,
}

impl Recording {
    /// `t_s,proc,event,detail`, as the recordings' `<name>.events.csv`.
    pub fn write_events_csv<W: Write>(&self, w: W) -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(["t_s", "proc", "event", "detail"])?;
        for e in &self.events {
            out.write_record([
                format!("{:.6}", e.t_s),
                e.process.to_string(),
                e.event.clone(),
                e.detail.clone(),
            ])?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Where the events of a trace written to `out` go: `x.csv` → `x.events.csv`, any
/// other name gets `.events.csv` appended.
pub fn events_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".csv").unwrap_or(&name);
    out.with_file_name(format!("{stem}.events.csv"))
}

/// Runs `w` on the real kernel; see the module documentation. Nothing on the host is
/// changed if the workload or the host does not qualify.
pub fn record(w: &Workload) -> Result<Recording, RealError> {
    let layouts = plan::check(w).map_err(RealError::Workload)?;
    check_available()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
    if page != content::PAGE as i64 {
        return Err(RealError::PageSize(page));
    }
    let needed: u64 = layouts.iter().map(|l| l.touched()).sum::<u64>() * content::PAGE as u64;
    let available = mem_available()?;
    if needed > available / 2 {
        return Err(RealError::Memory {
            needed_mib: needed >> 20,
            available_mib: available >> 20,
        });
    }
    let _lock = HostLock::acquire()?;
    let _active = Active::enter()?;
    let mut session = Session::begin(Sysfs::new(HOST_ROOT), &w.ksm, UNMERGE_TIMEOUT)?;
    let run = Runner::new(w, &layouts).run(&mut session);
    let restored = session.restore();
    match (run, restored) {
        (Ok((trace, events)), Ok(settings)) => {
            if interrupted() {
                return Err(RealError::Interrupted);
            }
            Ok(Recording {
                trace,
                events,
                settings,
            })
        }
        (Err(e), Ok(_)) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Err(run), Err(restore)) => Err(RealError::Restore(format!("{restore} (after: {run})"))),
    }
}

fn mem_available() -> Result<u64, RealError> {
    let path = Path::new("/proc/meminfo");
    let text = std::fs::read_to_string(path).map_err(|source| RealError::Io {
        op: "reading",
        path: path.into(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| RealError::Parse {
            path: path.into(),
            content: "no MemAvailable line".into(),
        })
}

/// Serialises real runs on this host (across processes, and threads of one process).
struct HostLock {
    _file: std::fs::File,
}

impl HostLock {
    fn acquire() -> Result<HostLock, RealError> {
        use std::os::fd::AsRawFd;
        let dir = Path::new("/run/lock");
        let dir = if dir.is_dir() {
            dir.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join("memsim-ksm-real.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RealError::Io {
                op: "opening",
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own; the lock goes with the descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(RealError::Busy(path));
        }
        Ok(HostLock { _file: file })
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicBool = AtomicBool::new(false);

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// While alive, SIGINT, SIGTERM and SIGHUP only ask the run to stop (it then restores
/// the settings and returns [`RealError::Interrupted`]); outside a run they end the
/// process with status 130, as the default action would (nearly) have.
struct Active;

impl Active {
    fn enter() -> Result<Active, RealError> {
        static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                ctrlc::set_handler(|| {
                    if ACTIVE.load(Ordering::SeqCst) {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                    } else {
                        std::process::exit(130);
                    }
                })
                .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(RealError::Signals)?;
        INTERRUPTED.store(false, Ordering::SeqCst);
        ACTIVE.store(true, Ordering::SeqCst);
        Ok(Active)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// The parent's view of the processes during a run.
struct Runner<'a> {
    w: &'a Workload,
    layouts: &'a [crate::ksm::workload::Layout],
    ready: Vec<bool>,
    exited: Vec<bool>,
    finished: Vec<bool>,
    events: Vec<Event>,
}

impl<'a> Runner<'a> {
    fn new(w: &'a Workload, layouts: &'a [crate::ksm::workload::Layout]) -> Runner<'a> {
        let n = w.processes.len();
        Runner {
            w,
            layouts,
            ready: vec![false; n],
            exited: vec![false; n],
            finished: vec![false; n],
            events: Vec::new(),
        }
    }

    fn run(mut self, session: &mut Session) -> Result<(Trace, Vec<Event>), RealError> {
        let w = self.w;
        let base = Instant::now();
        let nonce: u64 = rand::random();
        // Every child's plan is built before the first fork (children must not allocate).
        let mut plans: Vec<ChildPlan> = w
            .processes
            .iter()
            .zip(self.layouts)
            .enumerate()
            .map(|(i, (p, l))| ChildPlan::new(i, p, l.clone(), w.duration_s, nonce))
            .collect();
        let mut kids = Kids::new();
        for (i, plan) in plans.iter_mut().enumerate() {
            kids.spawn(&w.processes[i].name, plan, base)?;
            let deadline = Instant::now() + READY_TIMEOUT;
            while !self.ready[i] {
                self.check(&mut kids)?;
                if Instant::now() > deadline {
                    return Err(RealError::Timeout(format!(
                        "process {} not ready after {} s",
                        w.processes[i].name,
                        READY_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let t0 = Clock::since_base(base);
        session.start()?;
        let clock = Clock::new(base, t0);
        kids.start(t0)?;
        let trace = self.sample(session.ksm(), &mut kids, &clock)?;
        let deadline = Instant::now() + FINISH_WAIT;
        while kids
            .iter()
            .zip(&self.finished)
            .any(|(k, f)| !f && !k.reaped())
            && Instant::now() < deadline
        {
            self.check(&mut kids)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        kids.kill_all();
        self.events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        Ok((trace, self.events))
    }

    /// The sampling loop, from t = 0 to `duration_s`.
    fn sample(&mut self, ksm: &Sysfs, kids: &mut Kids, clock: &Clock) -> Result<Trace, RealError> {
        let w = self.w;
        let end = ns(w.duration_s);
        let every = w.sample_ms * 1_000_000;
        let poll = w.poll_ms * 1_000_000;
        let hard_end = end + OVERRUN.as_nanos() as u64;
        let mut trace = Trace {
            processes: w.processes.iter().map(|p| p.name.clone()).collect(),
            rows: Vec::new(),
        };
        let mut next_sample = 0;
        let mut full_scans = None;
        loop {
            self.check(kids)?;
            let now = clock.now_ns();
            if now > hard_end {
                return Err(RealError::Timeout(format!(
                    "sampling overran the run's end by {} s",
                    OVERRUN.as_secs()
                )));
            }
            if now >= next_sample {
                let row = read_row(ksm, kids, now)?;
                full_scans = Some(row.counters.full_scans);
                trace.rows.push(row);
                if next_sample >= end {
                    return Ok(trace);
                }
                next_sample = ((now / every + 1) * every).min(end);
            } else if w.row_on_full_scan && Some(ksm.read_u64("full_scans")?) != full_scans {
                let row = read_row(ksm, kids, now)?;
                full_scans = Some(row.counters.full_scans);
                trace.rows.push(row);
            }
            let wake = if w.row_on_full_scan {
                next_sample.min(now + poll)
            } else {
                next_sample
            };
            clock.sleep_until(wake);
        }
    }

    /// Takes in the processes' messages and reaps those that ended: an error if one
    /// failed or ended other than by its planned exit, or on Ctrl-C/SIGTERM.
    fn check(&mut self, kids: &mut Kids) -> Result<(), RealError> {
        if interrupted() {
            return Err(RealError::Interrupted);
        }
        // Reap first: a process writes its last message before it ends.
        let ended = kids.reap();
        for (i, msg) in kids.messages()? {
            let name = &self.w.processes[i].name;
            let (t_ns, event, detail) = match msg {
                Msg::Ready => {
                    self.ready[i] = true;
                    continue;
                }
                Msg::Finished => {
                    self.finished[i] = true;
                    continue;
                }
                Msg::Failed { step, errno } => {
                    return Err(RealError::Child {
                        name: name.clone(),
                        message: format!(
                            "{}: {}",
                            step.call(),
                            std::io::Error::from_raw_os_error(errno)
                        ),
                    })
                }
                Msg::Mergeable { t_ns, pages } => (
                    t_ns.unwrap_or(0),
                    "madvise_mergeable".to_string(),
                    format!("pages={pages}"),
                ),
                Msg::Unmergeable { t_ns, took_ns } => (
                    t_ns,
                    "madvise_unmergeable".to_string(),
                    format!("took_ms={:.3}", took_ns as f64 / 1e6),
                ),
                Msg::Exit { t_ns } => {
                    self.exited[i] = true;
                    (t_ns, "exit".to_string(), String::new())
                }
                Msg::Tick {
                    t_ns,
                    writer,
                    ticks,
                    writes,
                } => (
                    t_ns,
                    format!("writer{writer}_tick"),
                    format!("ticks={ticks} writes={writes}"),
                ),
                Msg::Done {
                    t_ns,
                    writer,
                    ticks,
                    writes,
                } => (
                    t_ns,
                    format!("writer{writer}_done"),
                    format!("ticks={ticks} writes={writes}"),
                ),
            };
            self.events.push(Event {
                t_s: t_ns as f64 / 1e9,
                process: i,
                event,
                detail,
            });
        }
        for (i, status) in ended {
            if !(self.exited[i] && kids::clean_exit(status)) {
                return Err(RealError::Child {
                    name: kids.get(i).name.clone(),
                    message: kids::describe(status),
                });
            }
        }
        Ok(())
    }
}

/// One row: the global counters, one file at a time (as the probe: not an atomic
/// snapshot), then each process's `ksm_stat` (none once it has ended).
fn read_row(ksm: &Sysfs, kids: &Kids, now_ns: u64) -> Result<Row, RealError> {
    let u = |name: &str| ksm.read_u64(name);
    let counters = Counters {
        full_scans: u("full_scans")?,
        pages_scanned: u("pages_scanned")?,
        pages_shared: u("pages_shared")?,
        pages_sharing: u("pages_sharing")?,
        pages_unshared: u("pages_unshared")?,
        pages_volatile: u("pages_volatile")?,
        pages_skipped: u("pages_skipped")?,
        ksm_zero_pages: u("ksm_zero_pages")?,
        general_profit: ksm.read_i64("general_profit")?,
        stable_node_chains: u("stable_node_chains")?,
        stable_node_dups: u("stable_node_dups")?,
        pages_to_scan: u("pages_to_scan")?,
    };
    let processes = kids
        .iter()
        .map(|k| if k.reaped() { None } else { ksm_stat(k.pid) })
        .collect();
    Ok(Row {
        t_s: now_ns as f64 / 1e9,
        counters,
        processes,
    })
}

/// `/proc/<pid>/ksm_stat`; `None` when the process is gone or has no mm any more (a
/// zombie's file is empty).
fn ksm_stat(pid: libc::pid_t) -> Option<ProcessCounters> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/ksm_stat")).ok()?;
    parse_ksm_stat(&text)
}

fn parse_ksm_stat(text: &str) -> Option<ProcessCounters> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::trim)
    };
    Some(ProcessCounters {
        ksm_rmap_items: field("ksm_rmap_items")?.parse().ok()?,
        ksm_zero_pages: field("ksm_zero_pages")?.parse().ok()?,
        ksm_merging_pages: field("ksm_merging_pages")?.parse().ok()?,
        ksm_process_profit: field("ksm_process_profit")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksm_stat_is_parsed_and_an_empty_file_is_no_process() {
        let text = "ksm_rmap_items 1300\nksm_zero_pages 0\nksm_merging_pages 1000\n\
                    ksm_process_profit 4019200\nksm_merge_any: no\nksm_mergeable: yes\n";
        assert_eq!(
            parse_ksm_stat(text),
            Some(ProcessCounters {
                ksm_rmap_items: 1300,
                ksm_zero_pages: 0,
                ksm_merging_pages: 1000,
                ksm_process_profit: 4019200,
            })
        );
        assert_eq!(parse_ksm_stat(""), None);
        assert_eq!(
            parse_ksm_stat("ksm_rmap_items 1\n").map(|c| c.ksm_rmap_items),
            None
        );
    }

    #[test]
    fn events_go_next_to_the_trace() {
        assert_eq!(
            events_path(Path::new("out/w1.csv")),
            Path::new("out/w1.events.csv")
        );
        assert_eq!(events_path(Path::new("w1")), Path::new("w1.events.csv"));
    }

    #[test]
    fn events_are_written_like_the_recordings() {
        let rec = Recording {
            trace: Trace::default(),
            events: vec![
                Event {
                    t_s: 0.0,
                    process: 1,
                    event: "madvise_mergeable".into(),
                    detail: "pages=1300".into(),
                },
                Event {
                    t_s: 6.000164,
                    process: 2,
                    event: "exit".into(),
                    detail: String::new(),
                },
            ],
            settings: SettingsReport::default(),
        };
        let mut out = Vec::new();
        rec.write_events_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t_s,proc,event,detail\n0.000000,1,madvise_mergeable,pages=1300\n6.000164,2,exit,\n"
        );
    }

    #[test]
    fn a_bad_workload_is_refused_before_anything_else() {
        let w: Workload =
            serde_json::from_str(r#"{"name": "x", "duration_s": 121, "processes": []}"#).unwrap();
        let err = record(&w).unwrap_err().to_string();
        assert!(err.starts_with("workload: duration_s: 121"), "{err}");
    }
}
