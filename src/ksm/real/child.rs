//! One workload process, run in a forked child: its mapping, its schedule
//! (`MADV_MERGEABLE`, `MADV_UNMERGEABLE`, exit) and its writers, and the messages it
//! sends the parent.
//!
//! The child is forked from a process that may have other threads (the Ctrl-C
//! handler's, a test harness's), so after `fork` it must not take a lock another thread
//! might have held: everything it needs is prepared by the parent beforehand
//! ([`ChildPlan`]), and the child itself only computes, makes system calls (mmap,
//! madvise, read/write on its pipes, nanosleep, clock_gettime) and ends with `_exit`,
//! never returning into the parent's code (no destructors, no restore of settings).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::content::{self, PAGE};
use crate::ksm::workload::{Fill, Layout, Original, Process, WriteMode, WriteOrder, Writer};

/// Time of a run: nanoseconds since `run=1` was written, on the monotonic clock that
/// parent and children share (an `Instant` taken before the fork is valid in both).
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    base: Instant,
    t0_ns: u64,
}

impl Clock {
    pub(super) fn new(base: Instant, t0_ns: u64) -> Clock {
        Clock { base, t0_ns }
    }

    /// Nanoseconds from `base` to now.
    pub(super) fn since_base(base: Instant) -> u64 {
        base.elapsed().as_nanos() as u64
    }

    pub(super) fn now_ns(&self) -> u64 {
        Clock::since_base(self.base).saturating_sub(self.t0_ns)
    }

    /// Sleeps until run time `t_ns` (returns at once if it has passed).
    pub(super) fn sleep_until(&self, t_ns: u64) {
        let now = self.now_ns();
        if t_ns > now {
            std::thread::sleep(Duration::from_nanos(t_ns - now));
        }
    }
}

pub(super) fn ns(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

/// What failed in a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    Mmap,
    NoHugePage,
    Mergeable,
    Unmergeable,
    DeathSignal,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::Mmap,
        Step::NoHugePage,
        Step::Mergeable,
        Step::Unmergeable,
        Step::DeathSignal,
    ];

    pub(super) fn call(self) -> &'static str {
        match self {
            Step::Mmap => "mmap(MAP_PRIVATE|MAP_ANONYMOUS)",
            Step::NoHugePage => "madvise(MADV_NOHUGEPAGE)",
            Step::Mergeable => "madvise(MADV_MERGEABLE)",
            Step::Unmergeable => "madvise(MADV_UNMERGEABLE)",
            Step::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
        }
    }
}

/// A child's message to the parent: fixed-size records on a pipe (each shorter than
/// `PIPE_BUF`, so written atomically). Times are run time in ns; `None` = before t = 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Msg {
    /// Mapped, filled, and marked mergeable if that happens before the start.
    Ready,
    Mergeable {
        t_ns: Option<u64>,
        pages: u64,
    },
    Unmergeable {
        t_ns: u64,
        took_ns: u64,
    },
    Exit {
        t_ns: u64,
    },
    /// Writer `writer` ran its `ticks`-th tick; `writes` pages written so far.
    Tick {
        t_ns: u64,
        writer: u64,
        ticks: u64,
        writes: u64,
    },
    /// Writer `writer` stopped (its `stop_s`, or the end of the run).
    Done {
        t_ns: u64,
        writer: u64,
        ticks: u64,
        writes: u64,
    },
    /// The run's end reached; the child waits to be killed.
    Finished,
    Failed {
        step: Step,
        errno: i32,
    },
}

pub(super) const MSG_LEN: usize = 40;
const BEFORE_START: u64 = u64::MAX;

impl Msg {
    pub(super) fn encode(self) -> [u8; MSG_LEN] {
        let words: [u64; 5] = match self {
            Msg::Ready => [1, 0, 0, 0, 0],
            Msg::Mergeable { t_ns, pages } => [2, t_ns.unwrap_or(BEFORE_START), pages, 0, 0],
            Msg::Unmergeable { t_ns, took_ns } => [3, t_ns, took_ns, 0, 0],
            Msg::Exit { t_ns } => [4, t_ns, 0, 0, 0],
            Msg::Tick {
                t_ns,
                writer,
                ticks,
                writes,
            } => [5, t_ns, writer, ticks, writes],
            Msg::Done {
                t_ns,
                writer,
                ticks,
                writes,
            } => [6, t_ns, writer, ticks, writes],
            Msg::Finished => [7, 0, 0, 0, 0],
            Msg::Failed { step, errno } => {
                let code = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
                [8, 0, code as u64, errno as u64, 0]
            }
        };
        let mut out = [0u8; MSG_LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Msg> {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        if bytes.len() != MSG_LEN {
            return None;
        }
        let (t, a, b, c) = (word(1), word(2), word(3), word(4));
        Some(match word(0) {
            1 => Msg::Ready,
            2 => Msg::Mergeable {
                t_ns: (t != BEFORE_START).then_some(t),
                pages: a,
            },
            3 => Msg::Unmergeable {
                t_ns: t,
                took_ns: a,
            },
            4 => Msg::Exit { t_ns: t },
            5 => Msg::Tick {
                t_ns: t,
                writer: a,
                ticks: b,
                writes: c,
            },
            6 => Msg::Done {
                t_ns: t,
                writer: a,
                ticks: b,
                writes: c,
            },
            7 => Msg::Finished,
            8 => Msg::Failed {
                step: *Step::ALL.get(a as usize)?,
                errno: b as i32,
            },
            _ => return None,
        })
    }
}

/// Everything a child needs, prepared before the fork.
pub(super) struct ChildPlan {
    index: u64,
    layout: Layout,
    /// `None`: marked mergeable before the start.
    madvise_at_ns: Option<u64>,
    unmerge_at_ns: Option<u64>,
    exit_at_ns: Option<u64>,
    end_ns: u64,
    nonce: u64,
    writers: Vec<WriterRun>,
}

impl ChildPlan {
    pub(super) fn new(
        index: usize,
        p: &Process,
        layout: Layout,
        duration_s: f64,
        nonce: u64,
    ) -> ChildPlan {
        let end_ns = ns(duration_s);
        let writers = p
            .writers
            .iter()
            .enumerate()
            .map(|(j, w)| {
                WriterRun::new(
                    j as u64,
                    w,
                    end_ns,
                    nonce ^ content::mix((index * 64 + j) as u64),
                )
            })
            .collect();
        ChildPlan {
            index: index as u64,
            layout,
            madvise_at_ns: (p.madvise_at_s > 0.0).then(|| ns(p.madvise_at_s)),
            unmerge_at_ns: p.unmerge_at_s.map(ns),
            exit_at_ns: p.exit_at_s.map(ns),
            end_ns,
            nonce,
            writers,
        }
    }
}

/// A writer's schedule and state. Tick `n` is due at `start + n × every`; ticks
/// missed by more than a period (the child was not scheduled) are skipped, not
/// caught up.
struct WriterRun {
    index: u64,
    a: u64,
    len: u64,
    per_tick: u64,
    every_ns: u64,
    mode: WriteMode,
    order: WriteOrder,
    start_ns: u64,
    /// Exclusive; at most the run's end.
    stop_ns: u64,
    next: u64,
    ticks: u64,
    writes: u64,
    cursor: u64,
    /// `flip_once`: pages of the range already flipped.
    flipped: Vec<bool>,
    rng: ChaCha8Rng,
    done: bool,
}

impl WriterRun {
    fn new(index: u64, w: &Writer, end_ns: u64, seed: u64) -> WriterRun {
        let (a, b) = w.range;
        let len = b - a;
        WriterRun {
            index,
            a,
            len,
            per_tick: w.pages_per_tick,
            every_ns: w.every_ms * 1_000_000,
            mode: w.mode,
            order: w.order,
            start_ns: ns(w.start_s),
            stop_ns: w.stop_s.map_or(end_ns, |s| ns(s).min(end_ns)),
            next: 0,
            ticks: 0,
            writes: 0,
            cursor: 0,
            flipped: if w.mode == WriteMode::FlipOnce {
                vec![false; len as usize]
            } else {
                Vec::new()
            },
            rng: ChaCha8Rng::seed_from_u64(seed),
            done: false,
        }
    }

    fn due_ns(&self) -> u64 {
        self.start_ns + self.next * self.every_ns
    }

    /// When this writer next needs the child awake.
    fn wake_ns(&self) -> Option<u64> {
        (!self.done).then(|| self.due_ns().min(self.stop_ns))
    }

    /// Runs what is due at `now`: the end (a `Done` message if it ever could run), or
    /// a tick (a `Tick` message for ticks 1–3 and every 50th, as the reference probe
    /// logged them).
    fn run_due(&mut self, now: u64, map: &mut Mapping, plan: &PlanInfo, out: &mut Out) {
        if self.done {
            return;
        }
        if now >= self.stop_ns {
            self.done = true;
            if self.start_ns < self.stop_ns {
                out.send(Msg::Done {
                    t_ns: now,
                    writer: self.index,
                    ticks: self.ticks,
                    writes: self.writes,
                });
            }
            return;
        }
        if now < self.due_ns() {
            return;
        }
        self.tick(map, plan);
        if self.ticks <= 3 || self.ticks % 50 == 0 {
            out.send(Msg::Tick {
                t_ns: now,
                writer: self.index,
                ticks: self.ticks,
                writes: self.writes,
            });
        }
        let elapsed_ticks = (now - self.start_ns) / self.every_ns;
        self.next = (self.next + 1).max(elapsed_ticks + 1);
    }

    fn tick(&mut self, map: &mut Mapping, plan: &PlanInfo) {
        self.ticks += 1;
        for _ in 0..self.per_tick {
            let offset = match self.order {
                WriteOrder::Cycle => {
                    let o = self.cursor;
                    self.cursor = (self.cursor + 1) % self.len;
                    o
                }
                WriteOrder::Random => self.rng.random_range(0..self.len),
            };
            let i = self.a + offset;
            let page = map.page(i);
            match self.mode {
                WriteMode::Random => {
                    let r = self.rng.next_u64();
                    content::marker(page, content::RANDOM, r, plan.index << 32 | self.index, i);
                }
                WriteMode::Restore => plan.write_original(page, i),
                WriteMode::FlipOnce => {
                    let flipped = &mut self.flipped[offset as usize];
                    if *flipped {
                        continue;
                    }
                    *flipped = true;
                    content::marker(page, content::FLIP, plan.nonce, plan.index, i);
                }
                WriteMode::Byte => page[0] = page[0].wrapping_add(1),
            }
            self.writes += 1;
        }
    }
}

/// The parts of a plan the writers read.
struct PlanInfo<'a> {
    index: u64,
    nonce: u64,
    layout: &'a Layout,
}

impl PlanInfo<'_> {
    /// Writes page `i`'s original content (zeros for zero pages, and for untouched
    /// ones, which this faults in).
    fn write_original(&self, page: &mut [u8], i: u64) {
        match self.layout.original(i) {
            Original::Numbered(t) => content::numbered(page, t),
            Original::Unique => content::unique(page, self.nonce, self.index, i),
            Original::Zero | Original::Untouched => page.fill(0),
        }
    }
}

/// The child's one private anonymous mapping. Never unmapped: the child ends with
/// `_exit`.
struct Mapping {
    ptr: NonNull<u8>,
    pages: u64,
}

impl Mapping {
    fn new(pages: u64) -> Result<Mapping, i32> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages as usize * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(libc::ENOMEM)?;
        Ok(Mapping { ptr, pages })
    }

    fn advise(&self, advice: libc::c_int) -> Result<(), i32> {
        // SAFETY: the range is exactly our own mapping; these advices change no content.
        let r =
            unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.pages as usize * PAGE, advice) };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn page(&mut self, i: u64) -> &mut [u8] {
        assert!(i < self.pages, "page {i} outside the mapping");
        // SAFETY: page i lies within the live mapping (checked above), which only this
        // single-threaded process uses, and the borrow of `self` keeps it exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i as usize * PAGE), PAGE) }
    }

    fn fill(&mut self, info: &PlanInfo) {
        for run in info.layout.runs() {
            for i in run.start..run.start + run.pages {
                match run.fill {
                    Fill::Numbered { base, k } => {
                        content::numbered(self.page(i), base.wrapping_add((i - run.start) % k))
                    }
                    Fill::Unique => content::unique(self.page(i), info.nonce, info.index, i),
                    // A written zero faults in a private zero-filled page (a read would
                    // map the shared zero page, which KSM does not scan).
                    Fill::Zero => self.page(i)[0] = 0,
                    Fill::Untouched => {}
                }
            }
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The message pipe. A failed write means the parent is gone: the child ends.
struct Out(File);

impl Out {
    fn send(&mut self, msg: Msg) {
        if self.0.write_all(&msg.encode()).is_err() {
            exit(1);
        }
    }

    /// Reports a failed system call; returns the child's exit status.
    fn fail(&mut self, step: Step, errno: i32) -> i32 {
        self.send(Msg::Failed { step, errno });
        1
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: ends this (forked) process at once, running no destructor or atexit
    // handler of the parent's state.
    unsafe { libc::_exit(code) }
}

/// The forked child's whole life. Never returns. `base` is the parent's clock base
/// (taken before the fork), `parent` the parent's pid.
pub(super) fn run(
    plan: &mut ChildPlan,
    go: OwnedFd,
    msgs: OwnedFd,
    base: Instant,
    parent: libc::pid_t,
) -> ! {
    let lived = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        live(plan, File::from(go), Out(File::from(msgs)), base, parent)
    }));
    exit(lived.unwrap_or(101))
}

/// Returns the exit status: 0, or 1 after a failure (reported to the parent first).
fn live(
    plan: &mut ChildPlan,
    mut go: File,
    mut out: Out,
    base: Instant,
    parent: libc::pid_t,
) -> i32 {
    let ChildPlan {
        index,
        layout,
        madvise_at_ns,
        unmerge_at_ns,
        exit_at_ns,
        end_ns,
        nonce,
        writers,
    } = plan;
    // The parent's handler would only notify its handler thread, which does not exist
    // here: take the default actions, and die with the parent.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sets the default disposition; no handler code is involved.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: only sets this process's parent-death signal.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return out.fail(Step::DeathSignal, errno());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return 0; // the parent is already gone
    }
    let info = PlanInfo {
        index: *index,
        nonce: *nonce,
        layout,
    };
    let mut map = match Mapping::new(layout.pages()) {
        Ok(m) => m,
        Err(errno) => return out.fail(Step::Mmap, errno),
    };
    // As the reference probe: no THP, so that KSM sees 4 KiB pages. EINVAL = a
    // kernel without THP, nothing to turn off.
    if let Err(errno) = map.advise(libc::MADV_NOHUGEPAGE) {
        if errno != libc::EINVAL {
            return out.fail(Step::NoHugePage, errno);
        }
    }
    map.fill(&info);
    if madvise_at_ns.is_none() {
        if let Err(errno) = map.advise(libc::MADV_MERGEABLE) {
            return out.fail(Step::Mergeable, errno);
        }
        out.send(Msg::Mergeable {
            t_ns: None,
            pages: layout.pages(),
        });
    }
    out.send(Msg::Ready);
    let mut t0 = [0u8; 8];
    if go.read_exact(&mut t0).is_err() {
        return 0; // the parent gave up before the start
    }
    let clock = Clock::new(base, u64::from_le_bytes(t0));
    let mut events = Events {
        madvise_at: *madvise_at_ns,
        unmerge_at: *unmerge_at_ns,
        exit_at: *exit_at_ns,
        end: *end_ns,
    };
    match events.run(writers, &info, &mut map, &clock, &mut out) {
        Ended::Exit => 0,
        Ended::Failed(step, errno) => out.fail(step, errno),
        Ended::Finished => {
            // Wait to be killed (or for the parent to close the pipe).
            let mut rest = [0u8; 1];
            while matches!(go.read(&mut rest), Ok(n) if n > 0) {}
            0
        }
    }
}

/// The process's own events still to come (run time, ns).
struct Events {
    madvise_at: Option<u64>,
    unmerge_at: Option<u64>,
    exit_at: Option<u64>,
    end: u64,
}

enum Ended {
    Exit,
    Finished,
    Failed(Step, i32),
}

impl Events {
    /// From t = 0 to the run's end or the process's exit: at each wake-up, does what is
    /// due (mergeable, writer ticks, unmergeable, exit, in that order), then sleeps
    /// until the next thing is due.
    fn run(
        &mut self,
        writers: &mut [WriterRun],
        info: &PlanInfo,
        map: &mut Mapping,
        clock: &Clock,
        out: &mut Out,
    ) -> Ended {
        let due = |t: Option<u64>, now: u64| t.is_some_and(|t| now >= t);
        loop {
            let now = clock.now_ns();
            if due(self.madvise_at, now) {
                self.madvise_at = None;
                if let Err(errno) = map.advise(libc::MADV_MERGEABLE) {
                    return Ended::Failed(Step::Mergeable, errno);
                }
                out.send(Msg::Mergeable {
                    t_ns: Some(now),
                    pages: map.pages,
                });
            }
            for w in writers.iter_mut() {
                w.run_due(now, map, info, out);
            }
            if due(self.unmerge_at, now) {
                self.unmerge_at = None;
                if let Err(errno) = map.advise(libc::MADV_UNMERGEABLE) {
                    return Ended::Failed(Step::Unmergeable, errno);
                }
                out.send(Msg::Unmergeable {
                    t_ns: now,
                    took_ns: clock.now_ns() - now,
                });
            }
            if due(self.exit_at, now) {
                out.send(Msg::Exit { t_ns: now });
                return Ended::Exit;
            }
            if now >= self.end {
                out.send(Msg::Finished);
                return Ended::Finished;
            }
            let wake = [
                self.madvise_at,
                self.unmerge_at,
                self.exit_at,
                Some(self.end),
            ]
            .into_iter()
            .chain(writers.iter().map(WriterRun::wake_ns))
            .flatten()
            .min()
            .unwrap_or(self.end);
            clock.sleep_until(wake);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let all = [
            Msg::Ready,
            Msg::Mergeable {
                t_ns: None,
                pages: 1300,
            },
            Msg::Mergeable {
                t_ns: Some(2_000_130_000),
                pages: 300,
            },
            Msg::Unmergeable {
                t_ns: 8_000_168_000,
                took_ns: 3_190_000,
            },
            Msg::Exit { t_ns: 6 },
            Msg::Tick {
                t_ns: 857_000,
                writer: 0,
                ticks: 1,
                writes: 20,
            },
            Msg::Done {
                t_ns: 12,
                writer: 1,
                ticks: 2398,
                writes: 47960,
            },
            Msg::Finished,
            Msg::Failed {
                step: Step::Unmergeable,
                errno: libc::EAGAIN,
            },
        ];
        for m in all {
            assert_eq!(Msg::decode(&m.encode()), Some(m));
        }
        assert_eq!(Msg::decode(&[0; MSG_LEN]), None);
        assert_eq!(Msg::decode(&[1; 8]), None);
    }

    fn writer(json: &str) -> WriterRun {
        let w: Writer = serde_json::from_str(json).unwrap();
        WriterRun::new(0, &w, ns(12.0), 7)
    }

    /// `pages` pages of content 9, in a plain buffer standing for the mapping.
    struct Bench {
        layout: Layout,
        buf: Vec<u8>,
        out: Out,
    }

    impl Bench {
        fn new(pages: u64) -> Bench {
            let p: Process = serde_json::from_str(&format!(
                r#"{{"name": "p", "segments": [{{"kind": "template", "id": 9, "pages": {pages}}}]}}"#
            ))
            .unwrap();
            let layout = Layout::of(&p);
            let mut bench = Bench {
                layout,
                buf: vec![0; pages as usize * PAGE],
                out: Out(tempfile::tempfile().unwrap()),
            };
            let mut map = bench.mapping();
            map.fill(&PlanInfo {
                index: 0,
                nonce: 1,
                layout: &bench.layout,
            });
            bench
        }

        fn mapping(&mut self) -> Mapping {
            Mapping {
                ptr: NonNull::new(self.buf.as_mut_ptr()).unwrap(),
                pages: (self.buf.len() / PAGE) as u64,
            }
        }

        fn page(&self, i: u64) -> &[u8] {
            &self.buf[i as usize * PAGE..(i as usize + 1) * PAGE]
        }

        /// Lets `w` run what is due at `t_s`; returns the pages that changed.
        fn at(&mut self, w: &mut WriterRun, t_s: f64) -> Vec<u64> {
            let before = self.buf.clone();
            let mut map = self.mapping();
            let info = PlanInfo {
                index: 0,
                nonce: 1,
                layout: &self.layout,
            };
            w.run_due(ns(t_s), &mut map, &info, &mut self.out);
            (0..(self.buf.len() / PAGE) as u64)
                .filter(|&i| {
                    let r = i as usize * PAGE..(i as usize + 1) * PAGE;
                    before[r.clone()] != self.buf[r]
                })
                .collect()
        }

        fn messages(&mut self) -> Vec<Msg> {
            use std::io::Seek;
            let mut bytes = Vec::new();
            self.out.0.rewind().unwrap();
            self.out.0.read_to_end(&mut bytes).unwrap();
            bytes
                .chunks(MSG_LEN)
                .map(|c| Msg::decode(c).unwrap())
                .collect()
        }
    }

    #[test]
    fn the_layout_is_filled_as_planned() {
        let p: Process = serde_json::from_str(
            r#"{"name": "p", "segments": [{"kind": "distinct", "k": 2, "base": 50, "pages": 3},
                {"kind": "unique", "pages": 2}, {"kind": "zero", "pages": 1}]}"#,
        )
        .unwrap();
        let layout = Layout::of(&p);
        let mut buf = vec![0xAAu8; 6 * PAGE];
        let mut map = Mapping {
            ptr: NonNull::new(buf.as_mut_ptr()).unwrap(),
            pages: 6,
        };
        map.fill(&PlanInfo {
            index: 3,
            nonce: 5,
            layout: &layout,
        });
        let page = |i: usize| &buf[i * PAGE..(i + 1) * PAGE];
        let mut c50 = vec![0; PAGE];
        content::numbered(&mut c50, 50);
        let mut c51 = vec![0; PAGE];
        content::numbered(&mut c51, 51);
        assert_eq!(page(0), &c50[..]);
        assert_eq!(page(1), &c51[..]);
        assert_eq!(page(2), &c50[..]);
        assert_ne!(page(3), page(4));
        let mut u = vec![0; PAGE];
        content::unique(&mut u, 5, 3, 4);
        assert_eq!(page(4), &u[..]);
        // Only the first byte is written: what matters is the fault.
        assert_eq!(page(5)[0], 0);
    }

    #[test]
    fn a_cycling_writer_walks_its_range_on_schedule() {
        let mut b = Bench::new(120);
        let mut w = writer(
            r#"{"range": [10, 110], "pages_per_tick": 20, "every_ms": 5, "mode": "random"}"#,
        );
        assert_eq!(b.at(&mut w, 0.0), (10..30).collect::<Vec<_>>());
        assert!(b.at(&mut w, 0.004).is_empty(), "not due before 5 ms");
        assert_eq!(b.at(&mut w, 0.005), (30..50).collect::<Vec<_>>());
        // 26 ms: ticks at 10, 15, 20 ms were missed; one tick now, next due at 30 ms.
        assert_eq!(b.at(&mut w, 0.026), (50..70).collect::<Vec<_>>());
        assert!(b.at(&mut w, 0.029).is_empty());
        assert_eq!(b.at(&mut w, 0.030), (70..90).collect::<Vec<_>>());
        assert_eq!(b.at(&mut w, 0.035), (90..110).collect::<Vec<_>>());
        assert_eq!(b.at(&mut w, 0.040), (10..30).collect::<Vec<_>>());
        // Random writes make every page different from every other.
        let mut seen = std::collections::HashSet::new();
        for i in 10..110 {
            assert!(seen.insert(b.page(i).to_vec()), "page {i}");
        }
        assert_eq!(w.ticks, 6);
        assert_eq!(w.writes, 120);
        let ticks: Vec<u64> = b
            .messages()
            .iter()
            .filter_map(|m| match m {
                Msg::Tick { ticks, .. } => Some(*ticks),
                _ => None,
            })
            .collect();
        assert_eq!(ticks, [1, 2, 3], "ticks 1-3 and every 50th are reported");
    }

    #[test]
    fn flip_once_skips_flipped_pages_and_reports_done_at_its_stop() {
        let mut b = Bench::new(200);
        let mut w = writer(
            r#"{"range": [0, 100], "pages_per_tick": 50, "every_ms": 500, "mode": "flip_once",
                "start_s": 4.0, "stop_s": 5.5}"#,
        );
        assert!(b.at(&mut w, 3.9).is_empty());
        assert_eq!(b.at(&mut w, 4.0).len(), 50);
        assert_eq!(b.at(&mut w, 4.5).len(), 50);
        assert!(b.at(&mut w, 5.0).is_empty(), "all flipped");
        assert!(b.at(&mut w, 5.5).is_empty());
        assert_eq!(w.wake_ns(), None);
        let msgs = b.messages();
        assert_eq!(
            msgs.last(),
            Some(&Msg::Done {
                t_ns: ns(5.5),
                writer: 0,
                ticks: 3,
                writes: 100
            })
        );
        assert!(msgs.contains(&Msg::Tick {
            t_ns: ns(5.0),
            writer: 0,
            ticks: 3,
            writes: 100
        }));
        // Flipped pages differ from each other and from the template.
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            assert!(seen.insert(b.page(i).to_vec()));
        }
        assert_eq!(b.page(100), b.page(199));
    }

    #[test]
    fn byte_changes_the_content_and_restore_puts_the_original_back() {
        let mut b = Bench::new(4);
        let original = b.page(0).to_vec();
        let mut byte =
            writer(r#"{"range": [0, 2], "pages_per_tick": 2, "every_ms": 10, "mode": "byte"}"#);
        b.at(&mut byte, 0.0);
        assert_eq!(b.page(0)[0], original[0].wrapping_add(1));
        assert_eq!(b.page(0)[1..], original[1..]);
        let mut restore =
            writer(r#"{"range": [0, 4], "pages_per_tick": 4, "every_ms": 10, "mode": "restore"}"#);
        assert_eq!(b.at(&mut restore, 0.0), [0, 1]);
        for i in 0..4 {
            assert_eq!(b.page(i), &original[..]);
        }
    }

    #[test]
    fn random_order_stays_within_the_range() {
        let mut b = Bench::new(50);
        let mut w = writer(
            r#"{"range": [20, 30], "pages_per_tick": 30, "every_ms": 1, "mode": "byte", "order": "random"}"#,
        );
        let changed = b.at(&mut w, 0.0);
        assert!(!changed.is_empty() && changed.iter().all(|i| (20..30).contains(i)));
        assert_eq!(w.writes, 30);
    }
}
