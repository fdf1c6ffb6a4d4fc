//! The run loop: one [`Event`] enum, one queue, one loop.
//!
//! ```text
//! Tick ─▶ every guest steps (workload, reclaim, swap, OOM, balloon driver) ─▶ host backs
//!         the pages they touched, takes back what they discarded, swaps, OOM-kills VMs
//! StatsPoll (2 s) ─▶ each guest's MEMFREE is what pvestatd will read as `freemem`
//! PageReporting (2 s) ─▶ guests with free page reporting hand free blocks back
//! Pvestatd (10 s) ─▶ host meminfo ─▶ goal ─▶ compute_alg1 ─▶ QMP `balloon` targets
//! Sample ─▶ one row per host and per VM
//! ```
//!
//! Periodic events that fall on the same instant run in a fixed order — tick, stats
//! poll, page reporting, pvestatd, sample — because each chain is scheduled a few
//! nanoseconds after the previous one (`Phase`); within one instant the queue's
//! insertion order decides. VM lifecycle events (start, stop, migration) and admin
//! actions are scheduled before the run starts, at their nominal instant, so they
//! run before the tick of their instant, in that order: an admin's `run=2` is
//! unmerged before the guests step and host memory shows it in the same tick, and a
//! ksmtuned cycle or sample of that instant already sees it. Guests step in parallel (each owns its memory and its
//! own random stream); everything that touches shared state — the host, the event
//! log — runs afterwards in VM order, so the result does not depend on the number of
//! threads.

mod ksm;
mod mom;

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::autoballoon::{self, VmStatus};
use crate::balloon::PAGE;
use crate::engine::{EventQueue, SimTime};
use crate::guest::{Counters, Guest, GuestEvent, HostDelta};
use crate::host::{Host, HostCounters, OutOfMemory};
use crate::metrics::{Event as Record, EventKind, HostSample, RunResult, Summary, VmSample};
use crate::mom::Mom;
use crate::scenario::{Scenario, Thp, VmConfig};
use ksm::{Cycle, HostKsm};

/// The one event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    VmStart(usize),
    VmStop(usize),
    MigrationStart(usize),
    MigrationEnd(usize),
    /// The admin action `sc.actions[i]`.
    Admin(usize),
    Tick,
    StatsPoll,
    PageReporting,
    Pvestatd,
    Ksmtuned,
    Mom,
    Sample,
}

/// Offsets that order periodic events falling on the same nominal instant.
#[derive(Clone, Copy)]
enum Phase {
    Tick = 0,
    StatsPoll = 1,
    PageReporting = 2,
    Pvestatd = 3,
    Ksmtuned = 4,
    Mom = 5,
    Sample = 6,
}

impl Phase {
    fn at(self, nominal: SimTime) -> SimTime {
        SimTime(nominal.as_nanos() + self as u64)
    }
}

/// qemu-server polls guest statistics every 2 s (`guest-stats-polling-interval`).
const STATS_INTERVAL: SimTime = SimTime::from_secs(2);
/// `PAGE_REPORTING_DELAY` in `mm/page_reporting.c`.
const REPORTING_INTERVAL: SimTime = SimTime::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VmState {
    NotStarted,
    Running,
    Stopped,
    Killed,
}

impl VmState {
    fn label(self) -> &'static str {
        match self {
            VmState::NotStarted | VmState::Stopped => "stopped",
            VmState::Running => "running",
            VmState::Killed => "killed",
        }
    }
}

struct Vm {
    guest: Option<Guest>,
    state: VmState,
    migrating: bool,
    /// Last MEMFREE the guest reported, bytes (None until the first report).
    stat_free: Option<u64>,
    /// Counters at the previous sample, for per-sample deltas.
    last: Counters,
    /// Counters of guests that ended (so totals survive a stop or kill).
    ended: Counters,
    /// Counters at the previous tick, to notice when reclaim or swapping starts.
    prev_tick: Counters,
    /// Last tick with page cache reclaim / with swap-out.
    reclaim_seen: Option<SimTime>,
    swap_seen: Option<SimTime>,
    ended_moved_pages: u64,
}

impl Vm {
    fn counters(&self) -> Counters {
        let now = self.guest.as_ref().map(Guest::counters).unwrap_or_default();
        add_counters(now, self.ended)
    }
}

fn add_counters(a: Counters, b: Counters) -> Counters {
    Counters {
        swap_in: a.swap_in + b.swap_in,
        swap_out: a.swap_out + b.swap_out,
        cache_refaults: a.cache_refaults + b.cache_refaults,
        major_faults: a.major_faults + b.major_faults,
        oom_kills: a.oom_kills + b.oom_kills,
        cache_reclaimed: a.cache_reclaimed + b.cache_reclaimed,
    }
}

/// A run in progress.
struct Sim<'a> {
    sc: &'a Scenario,
    queue: EventQueue<Event>,
    host: Host,
    vms: Vec<Vm>,
    out: RunResult,
    last_goal: i64,
    balloon_commands: u64,
    /// Last tick with host swap-out.
    host_swap_seen: Option<SimTime>,
    /// `"vmid/process"` of every guest OOM victim, in kill order.
    guest_victims: Vec<String>,
    /// Host swap counters at the previous sample, for per-sample deltas.
    last_host: HostCounters,
    /// ksmd and ksmtuned, when KSM can run at all.
    ksm: Option<HostKsm>,
    /// oVirt MOM, when the scenario runs it instead of pvestatd and ksmtuned.
    mom: Option<Mom>,
    /// A MOM round has failed (logged once).
    mom_failed: bool,
    /// When the running ksmtuned's next cycle is due; `Ksmtuned` events at other
    /// times belong to a daemon an admin stopped or restarted and are dropped.
    ksmtuned_due: Option<SimTime>,
}

/// Runs a scenario to its end and returns everything it recorded.
///
/// The loop itself runs on a rayon worker (`rayon::scope` moves it there when called
/// from outside the pool), so each tick's parallel step is a cheap fork inside the
/// pool instead of a hand-off to it and back — 4× faster on the quickstart.
pub fn run(sc: &Scenario) -> RunResult {
    rayon::scope(|_| {
        let mut sim = Sim::new(sc);
        while let Some((t, ev)) = sim.queue.pop() {
            if t > Phase::Sample.at(sc.duration) {
                break;
            }
            sim.handle(t, ev);
        }
        sim.finish()
    })
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Sim<'a> {
        let mut queue = EventQueue::default();
        for (i, vm) in sc.vms.iter().enumerate() {
            queue.schedule(vm.start_at, Event::VmStart(i));
            if let Some(stop) = vm.stop_at {
                queue.schedule(stop, Event::VmStop(i));
            }
            for &(from, to) in &vm.migrations {
                queue.schedule(from, Event::MigrationStart(i));
                queue.schedule(to, Event::MigrationEnd(i));
            }
        }
        queue.schedule(Phase::Tick.at(sc.tick), Event::Tick);
        queue.schedule(Phase::StatsPoll.at(STATS_INTERVAL), Event::StatsPoll);
        queue.schedule(
            Phase::PageReporting.at(REPORTING_INTERVAL),
            Event::PageReporting,
        );
        if sc.pvestatd.enabled {
            // pvestatd skips its first cycle after start ("cycle 0").
            queue.schedule(Phase::Pvestatd.at(sc.pvestatd.interval), Event::Pvestatd);
        }
        queue.schedule(Phase::Sample.at(SimTime::ZERO), Event::Sample);
        let host = Host::new(&sc.host, sc.vms.len());
        for (i, a) in sc.actions.iter().enumerate() {
            queue.schedule(a.at, Event::Admin(i));
        }
        let ksm = HostKsm::new(sc, host.meminfo().mem_total / 1024);
        let ksmtuned_due = ksm
            .as_ref()
            .and_then(HostKsm::monitor_interval)
            .map(|every| Phase::Ksmtuned.at(every));
        if let Some(due) = ksmtuned_due {
            queue.schedule(due, Event::Ksmtuned);
        }
        let mom = sc.mom.clone().map(Mom::new);
        if let Some(m) = &mom {
            queue.schedule(Phase::Mom.at(m.config().interval), Event::Mom);
        }
        let vms = sc
            .vms
            .iter()
            .map(|_| Vm {
                guest: None,
                state: VmState::NotStarted,
                migrating: false,
                stat_free: None,
                last: Counters::default(),
                ended: Counters::default(),
                prev_tick: Counters::default(),
                reclaim_seen: None,
                swap_seen: None,
                ended_moved_pages: 0,
            })
            .collect();
        Sim {
            sc,
            queue,
            host,
            vms,
            out: RunResult::default(),
            last_goal: 0,
            balloon_commands: 0,
            host_swap_seen: None,
            guest_victims: Vec::new(),
            last_host: HostCounters::default(),
            ksm,
            mom,
            mom_failed: false,
            ksmtuned_due,
        }
    }

    fn handle(&mut self, t: SimTime, ev: Event) {
        match ev {
            Event::VmStart(i) => self.start_vm(t, i),
            Event::VmStop(i) => self.end_vm(t, i, VmState::Stopped),
            Event::MigrationStart(i) | Event::MigrationEnd(i) => {
                let start = matches!(ev, Event::MigrationStart(_));
                self.vms[i].migrating = start;
                let kind = if start {
                    EventKind::MigrationStart
                } else {
                    EventKind::MigrationEnd
                };
                self.record(t, self.sc.vms[i].vmid, kind, 0, String::new());
            }
            Event::Tick => {
                self.tick(t);
                self.again(t, self.sc.tick, ev);
            }
            Event::StatsPoll => {
                self.poll_stats();
                self.again(t, STATS_INTERVAL, ev);
            }
            Event::PageReporting => {
                self.report_free_pages(t);
                self.again(t, REPORTING_INTERVAL, ev);
            }
            Event::Pvestatd => {
                self.pvestatd(t);
                self.again(t, self.sc.pvestatd.interval, ev);
            }
            Event::Admin(i) => self.admin(t, i),
            Event::Ksmtuned if self.ksmtuned_due == Some(t) => {
                self.ksmtuned_due = self
                    .ksm
                    .as_ref()
                    .and_then(HostKsm::monitor_interval)
                    .map(|every| t + every);
                self.ksmtuned(t);
                if let Some(due) = self.ksmtuned_due {
                    self.queue.schedule(due, ev);
                }
            }
            Event::Ksmtuned => {}
            Event::Mom => {
                self.mom(t);
                if let Some(every) = self.mom.as_ref().map(|m| m.config().interval) {
                    self.again(t, every, ev);
                }
            }
            Event::Sample => {
                self.sample(t);
                self.again(t, self.sc.sample_interval, ev);
            }
        }
    }

    fn again(&mut self, t: SimTime, period: SimTime, ev: Event) {
        self.queue.schedule(t + period, ev);
    }

    fn cfg(&self, i: usize) -> &'a VmConfig {
        &self.sc.vms[i]
    }

    /// Σ `AnonHugePages` of the guests, pages: what ksmd's page tables say for the VMs
    /// whose pages KSM follows; all resident guest RAM of the other THP-backed VMs
    /// (hugetlbfs is not anonymous memory).
    fn anon_huge_pages(&self) -> u64 {
        if self.sc.host.thp == Thp::Never {
            return 0;
        }
        (0..self.vms.len())
            .map(
                |i| match self.ksm.as_ref().and_then(|k| k.anon_huge_pages(i)) {
                    Some(n) => n,
                    None if self.cfg(i).hugepages => 0,
                    None => self.host.backing(i).resident,
                },
            )
            .sum()
    }

    fn record(&mut self, t: SimTime, vmid: u32, kind: EventKind, value: i64, detail: String) {
        self.out.events.push(Record {
            t_s: nominal(t).as_secs_f64(),
            vmid,
            kind,
            value,
            detail,
        });
    }

    // ---- VM lifecycle ----------------------------------------------------------------

    /// QEMU starts and the guest boots. On Proxmox, qemu-server then sets the balloon
    /// target to `balloon_min` at once (`vm_start`), so pvestatd has to grow the VM back.
    fn start_vm(&mut self, t: SimTime, i: usize) {
        let cfg = self.cfg(i);
        let mut guest = Guest::boot(cfg, self.sc.seed, self.sc.duration);
        if let (true, true, Some(min)) = (
            self.sc.qemu_start_target,
            cfg.balloon_device,
            cfg.balloon_min.filter(|&m| m > 0),
        ) {
            guest.set_balloon_target(min);
        }
        let merged = match self.ksm.as_mut() {
            Some(k) => k.start_vm(nominal(t), i, cfg, &mut guest),
            None => Ok(()),
        };
        let detail = match merged {
            Ok(()) => String::new(),
            Err(e) => format!("KSM cannot track this VM's RAM ({e}); it is never merged"),
        };
        let vm = &mut self.vms[i];
        vm.guest = Some(guest);
        vm.state = VmState::Running;
        vm.stat_free = None;
        self.record(t, cfg.vmid, EventKind::VmStart, cfg.memory as i64, detail);
        let pinned = cfg.passthrough || cfg.hugepages;
        if let Err(oom) = self.host.start_vm(i, cfg.memory / PAGE, pinned) {
            self.host_oom(t, oom);
        }
        // What the guest touches while it boots (its kernel and, Windows, all of its
        // RAM, which it zeroes) is touched before its balloon driver loads: QEMU has
        // faulted it in by the time qemu-server's start-up target is inflated, so the
        // balloon's first discards free host memory. Settled in one step with them,
        // the discards would find nothing resident yet and the boot pages would stay
        // backed for good.
        self.settle_guest(t, i, SimTime::ZERO);
    }

    fn end_vm(&mut self, t: SimTime, i: usize, state: VmState) {
        let vm = &mut self.vms[i];
        let Some(guest) = vm.guest.take() else {
            return;
        };
        vm.ended = add_counters(vm.ended, guest.counters());
        let b = guest.balloon();
        vm.ended_moved_pages += b.inflated_pages + b.deflated_pages;
        vm.state = state;
        vm.stat_free = None;
        self.host.stop_vm(i);
        if let Some(k) = self.ksm.as_mut() {
            k.stop_vm(i);
        }
        if state == VmState::Stopped {
            self.record(t, self.cfg(i).vmid, EventKind::VmStop, 0, String::new());
        }
    }

    /// The host could not find memory: its OOM killer kills the biggest QEMU.
    fn host_oom(&mut self, t: SimTime, oom: OutOfMemory) {
        let Some(v) = self.host.oom_victim() else {
            return;
        };
        let b = self.host.backing(v);
        let vmid = self.cfg(v).vmid;
        let detail = format!(
            "host OOM killer killed QEMU of VM {vmid} ({}): rss {} MiB, swap {} MiB; {} MiB were missing",
            self.cfg(v).name,
            mib(b.resident + b.overhead),
            mib(b.swapped),
            mib(oom.shortfall)
        );
        self.end_vm(t, v, VmState::Killed);
        self.record(
            t,
            vmid,
            EventKind::HostOomKill,
            (b.resident * PAGE) as i64,
            detail,
        );
    }

    // ---- periodic work ---------------------------------------------------------------

    fn tick(&mut self, t: SimTime) {
        let now = nominal(t);
        let dt = self.sc.tick;
        let host_swap_before = self.host.counters().swap_out;
        if let Some(k) = self.ksm.as_mut() {
            k.scan_until(now);
        }
        self.vms
            .par_iter_mut()
            .filter_map(|vm| vm.guest.as_mut())
            .for_each(|g| g.step(now, dt));
        for i in 0..self.vms.len() {
            self.settle_guest(t, i, dt);
        }
        self.settle_ksm(t);
        let hot: Vec<(u64, u64)> = self
            .vms
            .iter()
            .map(|vm| {
                vm.guest
                    .as_ref()
                    .map_or((0, 0), |g| (g.hot_resident(), g.touched()))
            })
            .collect();
        for (_, oom) in self.host.step(dt, &hot) {
            self.host_oom(t, oom);
        }
        self.record_host_swap_onset(t, host_swap_before);
    }

    /// Logs the start of a host swap-out episode (host swap-outs happen inside guest
    /// settles and the host step; `before` is the counter at the start of the tick).
    fn record_host_swap_onset(&mut self, t: SimTime, before: u64) {
        let swapped = self.host.counters().swap_out - before;
        if onset(&mut self.host_swap_seen, t, swapped > 0) {
            let detail = format!(
                "host swap-out started: {} MiB in the first second",
                mib(swapped)
            );
            self.record(
                t,
                0,
                EventKind::HostSwapOut,
                (swapped * PAGE) as i64,
                detail,
            );
        }
    }

    /// KSM's savings as they are after this step's writes and scans reach the host.
    fn settle_ksm(&mut self, t: SimTime) {
        let Some(k) = self.ksm.as_ref() else {
            return;
        };
        if let Err(oom) = k.update_host(&mut self.host) {
            self.host_oom(t, oom);
        }
    }

    /// Passes a guest's host delta, page contents (the writes of a `dt` step) and
    /// events on, in VM order.
    fn settle_guest(&mut self, t: SimTime, i: usize, dt: SimTime) {
        let Some(g) = self.vms[i].guest.as_mut() else {
            return;
        };
        let freed_at_once = match self.ksm.as_mut() {
            Some(k) => k
                .settle(i, g, dt)
                .expect("guest page indices lie inside the VM's ksmd mm"),
            None => 0,
        };
        let mut delta: HostDelta = g.take_delta();
        // Scattered pages of huge pages KSM split are 4 KiB pages: freed at once.
        let n = freed_at_once.min(delta.discard_scattered);
        delta.discard_scattered -= n;
        delta.discard_contig += n;
        let events = g.take_events();
        let now = g.counters();
        let prev = std::mem::replace(&mut self.vms[i].prev_tick, now);
        self.record_pressure_onset(t, i, prev, now);
        let vmid = self.cfg(i).vmid;
        for e in events {
            self.record_guest_event(t, vmid, e);
        }
        if let Err(oom) = self.host.apply(i, delta) {
            self.host_oom(t, oom);
        }
    }

    /// Logs the start of a reclaim or swap-out episode — activity after at least
    /// [`EPISODE_GAP`] without — rather than every tick of it.
    fn record_pressure_onset(&mut self, t: SimTime, i: usize, prev: Counters, now: Counters) {
        let vmid = self.cfg(i).vmid;
        let reclaimed = now.cache_reclaimed - prev.cache_reclaimed;
        let swapped = now.swap_out - prev.swap_out;
        let vm = &mut self.vms[i];
        let cache_onset = onset(&mut vm.reclaim_seen, t, reclaimed > 0);
        let swap_onset = onset(&mut vm.swap_seen, t, swapped > 0);
        if cache_onset {
            let mib = mib(reclaimed);
            let detail = format!("page cache reclaim started: {mib} MiB in the first second");
            self.record(
                t,
                vmid,
                EventKind::ReclaimCache,
                (reclaimed * PAGE) as i64,
                detail,
            );
        }
        if swap_onset {
            let mib = mib(swapped);
            let detail = format!("swap-out started: {mib} MiB in the first second");
            self.record(t, vmid, EventKind::SwapOut, (swapped * PAGE) as i64, detail);
        }
    }

    fn record_guest_event(&mut self, t: SimTime, vmid: u32, e: GuestEvent) {
        let (kind, value, detail) = match e {
            GuestEvent::OomKill {
                process,
                badness,
                freed_pages,
                triggered_by,
            } => {
                self.guest_victims.push(format!("{vmid}/{process}"));
                (
                EventKind::GuestOomKill,
                badness,
                format!(
                    "guest OOM: {triggered_by} invoked oom-killer; killed {process} (badness {badness}), freed {} MiB",
                    mib(freed_pages)
                ),
            )
            }
            GuestEvent::OomNoVictim { triggered_by } => (
                EventKind::GuestOomKill,
                0,
                format!("guest OOM: {triggered_by} invoked oom-killer; no killable process"),
            ),
            GuestEvent::DeflateOnOom { pages } => (
                EventKind::DeflateOnOom,
                (pages * PAGE) as i64,
                "deflate-on-oom released balloon pages instead of a kill".into(),
            ),
            GuestEvent::OutOfPuff { wanted } => (
                EventKind::BalloonOutOfPuff,
                (wanted * PAGE) as i64,
                format!("balloon: Out of puff! Can't get {wanted} pages"),
            ),
            GuestEvent::ProcessRestart { process } => {
                (EventKind::ProcessRestart, 0, format!("{process} restarted"))
            }
        };
        self.record(t, vmid, kind, value, detail);
    }

    fn poll_stats(&mut self) {
        for (vm, cfg) in self.vms.iter_mut().zip(&self.sc.vms) {
            vm.stat_free = match &vm.guest {
                Some(g) if cfg.balloon_device && cfg.balloon_driver => Some(g.stat_free_bytes()),
                _ => None,
            };
        }
    }

    fn report_free_pages(&mut self, t: SimTime) {
        for i in 0..self.vms.len() {
            if let Some(g) = self.vms[i].guest.as_mut() {
                g.report_free_pages();
            }
            self.settle_guest(t, i, SimTime::ZERO);
        }
        self.settle_ksm(t);
    }

    /// One pvestatd `auto_ballooning` cycle (`PVE/Service/pvestatd.pm`).
    fn pvestatd(&mut self, t: SimTime) {
        let p = &self.sc.pvestatd;
        let info = self.host.meminfo();
        let memused = info.memused(p.memused);
        let goal = autoballoon::goal(info.mem_total, memused, p.ballooning_target);
        self.last_goal = goal;
        let status = self.vmstatus();
        let res = autoballoon::compute_alg1(&status, goal, p.maxchange as i64);
        for (key, target) in res {
            let i = self.index_of(&key);
            let Some(g) = self.vms[i].guest.as_mut() else {
                continue;
            };
            let current = g.balloon().actual_guest_bytes() as i64;
            if target == current || target <= 0 {
                continue;
            }
            g.set_balloon_target(target as u64);
            self.balloon_commands += 1;
            let cfg = self.cfg(i);
            let detail = format!(
                "pvestatd: goal {} MiB; {} {} MiB -> {} MiB",
                goal >> 20,
                cfg.name,
                current >> 20,
                target >> 20
            );
            self.record(
                t,
                cfg.vmid,
                EventKind::BalloonTarget,
                target - current,
                detail,
            );
        }
    }

    /// One ksmtuned cycle; a start or stop of ksmd, or the daemon's death, goes into
    /// the event log. A `run=2` an admin wrote counts as stopped: ksmtuned writing 1
    /// over it starts ksmd again, writing 0 over it changes nothing worth logging.
    fn ksmtuned(&mut self, t: SimTime) {
        let info = self.host.meminfo();
        let Some(k) = self.ksm.as_mut() else {
            return;
        };
        let Some(c) = k.ksmtuned_cycle(nominal(t), &info, &self.host) else {
            return;
        };
        if let Some(error) = &c.exited {
            let detail = format!(
                "ksmtuned exited: {error}; sysfs keeps run={} pages_to_scan={} and nobody adjusts it any more",
                c.after.run, c.after.pages_to_scan
            );
            self.ksmtuned_due = None;
            self.record(
                t,
                0,
                EventKind::KsmtunedExit,
                i64::from(c.after.run),
                detail,
            );
            return;
        }
        let started = c.after.run == 1 && c.before.run != 1;
        let stopped = c.after.run == 0 && c.before.run == 1;
        if !started && !stopped {
            return;
        }
        let (kind, detail) = ksmtuned_detail(&c);
        self.record(t, 0, kind, i64::from(c.after.pages_to_scan), detail);
    }

    /// An admin action: `systemctl stop|restart ksmtuned` and sysfs writes. A
    /// (re)started daemon cycles one `KSM_MONITOR_INTERVAL` later, like at boot.
    fn admin(&mut self, t: SimTime, i: usize) {
        let action = &self.sc.actions[i];
        let total_kib = self.host.meminfo().mem_total / 1024;
        let Some(k) = self.ksm.as_mut() else {
            return;
        };
        let saved_before = k.pages_saved();
        let detail = k.admin(nominal(t), action, total_kib);
        let saved_after = k.pages_saved();
        if action.ksmtuned.is_some() {
            self.ksmtuned_due = k
                .monitor_interval()
                .map(|every| Phase::Ksmtuned.at(t + every));
            if let Some(due) = self.ksmtuned_due {
                self.queue.schedule(due, Event::Ksmtuned);
            }
        }
        let change = (saved_after as i64 - saved_before as i64) * PAGE as i64;
        let detail = format!(
            "admin: {detail}; merging now saves {} MiB (before: {} MiB)",
            mib(saved_after),
            mib(saved_before)
        );
        self.record(t, 0, EventKind::AdminAction, change, detail);
        self.settle_ksm(t);
    }

    /// qemu-server's `vmstatus`, keyed by vmid as a string: pvestatd applies results in
    /// string order ("1000" before "999"), which this map keeps.
    fn vmstatus(&self) -> BTreeMap<String, VmStatus> {
        let mut out = BTreeMap::new();
        for (vm, cfg) in self.vms.iter().zip(&self.sc.vms) {
            let Some(g) = &vm.guest else { continue };
            let min = cfg.balloon_min.filter(|&m| m > 0 && cfg.balloon_device);
            let status = VmStatus {
                balloon: cfg
                    .balloon_device
                    .then(|| g.balloon().actual_guest_bytes() as i64),
                balloon_min: min.map(|m| m as i64),
                maxmem: Some(cfg.memory as i64),
                shares: min.map(|_| i64::from(cfg.shares)),
                freemem: vm.stat_free.map(|f| f as i64),
                lock: vm.migrating.then(|| "migrate".to_string()),
            };
            out.insert(cfg.vmid.to_string(), status);
        }
        out
    }

    fn index_of(&self, vmid: &str) -> usize {
        self.sc
            .vms
            .iter()
            .position(|v| v.vmid.to_string() == vmid)
            .expect("compute_alg1 returns only vmids it was given")
    }

    // ---- recording -------------------------------------------------------------------

    fn sample(&mut self, t: SimTime) {
        let now = nominal(t);
        let t_s = now.as_secs_f64();
        let info = self.host.meminfo();
        let host = self.host.counters();
        let p = &self.sc.pvestatd;
        self.out.host.push(HostSample {
            t_s,
            mem_total_bytes: info.mem_total,
            mem_free_bytes: info.mem_free,
            buffers_bytes: info.buffers,
            cached_bytes: info.cached,
            mem_available_bytes: info.mem_available,
            memused_bytes: info.memused(p.memused),
            target_bytes: info.mem_total / 100 * u64::from(p.ballooning_target),
            goal_bytes: self.last_goal,
            host_reserved_bytes: self.host.reserved() * PAGE,
            guest_resident_bytes: self.host.guest_resident() * PAGE,
            qemu_overhead_bytes: self.host.qemu_overhead() * PAGE,
            thp_deferred_bytes: self.host.thp_deferred() * PAGE,
            anon_huge_pages_bytes: self.anon_huge_pages() * PAGE,
            zfs_arc_bytes: self.host.zfs_arc() * PAGE,
            swap_total_bytes: self.host.swap_total() * PAGE,
            swap_used_bytes: self.host.swap_used() * PAGE,
            host_swap_out_pages: host.swap_out - self.last_host.swap_out,
            host_swap_in_pages: host.swap_in - self.last_host.swap_in,
            vms_running: self.vms.iter().filter(|v| v.guest.is_some()).count() as u32,
            ..HostSample::default()
        });
        if let (Some(k), Some(row)) = (&self.ksm, self.out.host.last_mut()) {
            ksm_columns(k, row);
        }
        self.last_host = host;
        for i in 0..self.vms.len() {
            let row = self.vm_sample(i, t_s);
            self.out.vms.push(row);
        }
    }

    fn vm_sample(&mut self, i: usize, t_s: f64) -> VmSample {
        let cfg = self.cfg(i);
        let backing = self.host.backing(i);
        let vm = &mut self.vms[i];
        let c = vm.counters();
        let d = |now: u64, then: u64| now - then;
        let mut row = VmSample {
            t_s,
            vmid: cfg.vmid,
            name: cfg.name.clone(),
            state: vm.state.label(),
            maxmem_bytes: cfg.memory,
            balloon_min_bytes: cfg.balloon_min.unwrap_or(cfg.memory),
            swap_in_pages: d(c.swap_in, vm.last.swap_in),
            swap_out_pages: d(c.swap_out, vm.last.swap_out),
            cache_refault_pages: d(c.cache_refaults, vm.last.cache_refaults),
            major_faults: d(c.major_faults, vm.last.major_faults),
            oom_kills: c.oom_kills,
            host_resident_bytes: backing.resident * PAGE,
            host_swapped_bytes: backing.swapped * PAGE,
            pve_memhost_bytes: (backing.resident + backing.overhead) * PAGE,
            ..VmSample::default()
        };
        vm.last = c;
        if let Some(stat) = self.ksm.as_ref().and_then(|k| k.vm_stat(i)) {
            row.ksm_merging_pages = stat.ksm_merging_pages;
            row.ksm_process_profit_bytes = stat.ksm_process_profit;
        }
        if let Some(g) = &vm.guest {
            row.target_bytes = g.balloon().target_guest_bytes();
            row.actual_bytes = g.balloon().actual_guest_bytes();
            row.guest_mem_total_bytes = g.mem_total() * PAGE;
            row.guest_mem_free_bytes = g.mem_free() * PAGE;
            row.guest_cached_bytes = g.cached() * PAGE;
            row.guest_anon_bytes = g.anon_resident() * PAGE;
            row.guest_kernel_bytes = g.kernel() * PAGE;
            row.guest_swap_used_bytes = g.swap_used() * PAGE;
        }
        row.pve_mem_bytes = match (&vm.guest, cfg.balloon_device && cfg.balloon_driver) {
            // `vmstatus` takes `total_mem − free_mem` from `query-balloon` when the
            // guest delivers statistics, else keeps the host's `memhost`.
            (Some(g), true) => (g.mem_total() * PAGE).saturating_sub(g.stat_free_bytes()),
            _ => row.pve_memhost_bytes,
        };
        row
    }

    fn finish(mut self) -> RunResult {
        self.out.summary = self.summarize();
        self.out
    }

    fn summarize(&self) -> Summary {
        let sc = self.sc;
        let host = &self.out.host;
        let memused: Vec<u64> = host.iter().map(|h| h.memused_bytes).collect();
        // Each sample stands for the interval up to the next one; the last stands for none.
        let above = host
            .iter()
            .take(host.len().saturating_sub(1))
            .filter(|h| h.memused_bytes > h.target_bytes)
            .count();
        let totals = self.vms.iter().fold(Counters::default(), |acc, vm| {
            add_counters(acc, vm.counters())
        });
        let moved: u64 = self
            .vms
            .iter()
            .map(|vm| {
                vm.ended_moved_pages
                    + vm.guest.as_ref().map_or(0, |g| {
                        g.balloon().inflated_pages + g.balloon().deflated_pages
                    })
            })
            .sum();
        let events = &self.out.events;
        let host_victims: Vec<u32> = events
            .iter()
            .filter(|e| e.kind == EventKind::HostOomKill)
            .map(|e| e.vmid)
            .collect();
        Summary {
            scenario: sc.name.clone(),
            seed: sc.seed,
            duration_s: sc.duration.as_secs_f64(),
            vms: sc.vms.len() as u32,
            peak_memused_bytes: memused.iter().copied().max().unwrap_or(0),
            mean_memused_bytes: memused.iter().sum::<u64>() / memused.len().max(1) as u64,
            peak_host_swap_used_bytes: host.iter().map(|h| h.swap_used_bytes).max().unwrap_or(0),
            time_above_target_s: above as f64 * sc.sample_interval.as_secs_f64(),
            balloon_moved_bytes: moved * PAGE,
            balloon_commands: self.balloon_commands,
            guest_swap_in_pages: totals.swap_in,
            guest_swap_out_pages: totals.swap_out,
            cache_refault_pages: totals.cache_refaults,
            guest_oom_kills: totals.oom_kills,
            guest_oom_victims: self.guest_victims.clone(),
            host_oom_kills: host_victims.len() as u64,
            host_oom_victims: host_victims,
            peak_ksm_saved_bytes: host.iter().map(|h| h.ksm_saved_bytes).max().unwrap_or(0),
            mean_ksm_saved_bytes: host.iter().map(|h| h.ksm_saved_bytes).sum::<u64>()
                / host.len().max(1) as u64,
            ksm_pages_scanned: self.ksm.as_ref().map_or(0, |k| k.counters().pages_scanned),
            ksmd_cpu_s: self.ksm.as_ref().map_or(0.0, HostKsm::cpu_s),
        }
    }
}

/// The KSM columns of a host sample.
fn ksm_columns(k: &HostKsm, row: &mut HostSample) {
    let c = k.counters();
    row.ksm_saved_bytes = k.pages_saved() * PAGE;
    row.ksm_run = k.run();
    row.ksm_pages_to_scan = c.pages_to_scan;
    row.ksm_sleep_millisecs = k.sleep_millisecs();
    row.ksm_full_scans = c.full_scans;
    row.ksm_pages_scanned = c.pages_scanned;
    row.ksm_pages_shared = c.pages_shared;
    row.ksm_pages_sharing = c.pages_sharing;
    row.ksm_pages_unshared = c.pages_unshared;
    row.ksm_pages_volatile = c.pages_volatile;
    row.ksm_pages_skipped = c.pages_skipped;
    row.ksm_zero_pages = c.ksm_zero_pages;
    row.ksm_general_profit_bytes = c.general_profit;
}

/// Why ksmtuned started or stopped ksmd, in the script's own terms.
fn ksmtuned_detail(c: &Cycle) -> (EventKind, String) {
    let mib = |kib: u64| kib >> 10;
    let thres = mib(c.thres_kib.max(0) as u64);
    let (free, committed) = (mib(c.free_kib), mib(c.committed_kib));
    if c.after.run != 1 {
        let detail = format!(
            "ksmtuned: free {free} MiB > thres {thres} MiB and committed {committed} MiB + thres < total; KSM off (merged pages stay merged)"
        );
        return (EventKind::KsmStop, detail);
    }
    let exact_stop = i128::from(c.committed_kib) + i128::from(c.thres_kib)
        < i128::from(c.total_kib)
        && i128::from(c.free_kib) > i128::from(c.thres_kib);
    let why = if exact_stop {
        // the numbers say stop; only a comparison on awk's text can have failed
        format!(
            "free {free} MiB > thres {thres} MiB and committed {committed} MiB + thres < total, \
             but awk printed a sum of 2^31 KiB or more as text that `[ -gt ]` cannot compare, so the stop test failed"
        )
    } else {
        format!("free {free} MiB < thres {thres} MiB or committed {committed} MiB + thres > total")
    };
    let detail = format!(
        "ksmtuned: {why}; KSM on: {} pages every {} ms",
        c.after.pages_to_scan, c.after.sleep_millisecs
    );
    (EventKind::KsmStart, detail)
}

/// Quiet time that separates two pressure episodes in the event log.
const EPISODE_GAP: SimTime = SimTime::from_secs(60);

/// Whether activity at `t` starts a new episode; remembers `t` when active.
fn onset(seen: &mut Option<SimTime>, t: SimTime, active: bool) -> bool {
    if !active {
        return false;
    }
    let new = seen.is_none_or(|last| t.saturating_sub(last) > EPISODE_GAP);
    *seen = Some(t);
    new
}

/// The nominal instant of an event (its time without the ordering phase).
fn nominal(t: SimTime) -> SimTime {
    SimTime(t.as_nanos() - t.as_nanos() % 1_000)
}

/// Pages as whole MiB, for messages.
fn mib(pages: u64) -> u64 {
    (pages * PAGE) >> 20
}
