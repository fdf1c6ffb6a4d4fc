//! KSM on the simulated host: one ksmd scanning every mergeable VM's guest RAM, and
//! ksmtuned starting, boosting and stopping it from the host's free memory.
//!
//! ksmd keeps its own clock and is deterministic, so the run loop lets it catch up
//! ([`HostKsm::scan_until`]) at each tick before the guests step; the guests' page
//! moves and writes of that step then reach it in VM order ([`HostKsm::settle`]).
//! Copy-on-write breaks therefore show in host memory within the tick they happen,
//! while ksmd's counters notice them at its next visit, as on a real host.

use crate::content::{mergeable, Contents};
use crate::engine::SimTime;
use crate::guest::Guest;
use crate::host::{Host, MemInfo};
use crate::ksm::trace::Counters;
use crate::ksm::{KsmError, Ksmd, MmStat, Sysfs};
use crate::ksmtuned::{CommittedMeasure, Decision, Ksmtuned, Status};
use crate::scenario::{AdminAction, KsmtunedConfig, Scenario, Thp, VmConfig};

/// ksmd, ksmtuned and the page contents of every VM.
pub(super) struct HostKsm {
    ksmd: Ksmd,
    tuned: Option<Ksmtuned>,
    /// Page contents per VM while it runs and is mergeable.
    vms: Vec<Option<Contents>>,
    /// Starts per VM, so that a restarted VM's private contents are new.
    boots: Vec<u64>,
    /// The host backs guest RAM with transparent huge pages (`host.thp` not `never`).
    thp: bool,
}

/// What a ksmtuned cycle changed, for the event log. `before` and `after` are the
/// kernel's values, which an admin may have written in between the daemon's cycles.
pub(super) struct Cycle {
    pub before: Decision,
    pub after: Decision,
    pub free_kib: u64,
    pub committed_kib: u64,
    pub thres_kib: i64,
    pub total_kib: u64,
    /// The daemon's loop ended in this cycle, with bash's error.
    pub exited: Option<String>,
}

impl HostKsm {
    /// `None` when ksmd can never run in this scenario (no contents are kept then).
    pub fn new(sc: &Scenario, mem_total_kib: u64) -> Option<HostKsm> {
        if !sc.ksm_may_run() {
            return None;
        }
        let numa = u16::try_from(sc.host.numa_nodes).unwrap_or(u16::MAX);
        let mut ksmd = Ksmd::new(numa);
        for w in sc.ksm.sysfs.writes() {
            // The scenario loader checked every value against the same kernel model.
            ksmd.set(SimTime::ZERO, w)
                .expect("the scenario loader validated the ksm settings");
        }
        let tuned = sc.ksm.ksmtuned.as_ref().map(|t| {
            let boot = Decision {
                run: sc.ksm.sysfs.run,
                pages_to_scan: sc.ksm.sysfs.pages_to_scan as u32,
                sleep_millisecs: sc.ksm.sysfs.sleep_millisecs as u32,
            };
            Ksmtuned::new(t.variant, &t.conf, mem_total_kib).with_boot_sysfs(boot)
        });
        Some(HostKsm {
            ksmd,
            tuned,
            vms: vec![None; sc.vms.len()],
            boots: vec![0; sc.vms.len()],
            thp: sc.host.thp != Thp::Never,
        })
    }

    /// Time from start-up to ksmtuned's first cycle and between cycles.
    pub fn monitor_interval(&self) -> Option<SimTime> {
        let t = self.tuned.as_ref()?;
        let d = t.monitor_interval();
        Some(SimTime::from_millis(d.as_millis().max(1) as u64))
    }

    /// QEMU starts: its guest RAM becomes an mm of ksmd, unless it cannot be merged.
    pub fn start_vm(
        &mut self,
        now: SimTime,
        i: usize,
        cfg: &VmConfig,
        guest: &mut Guest,
    ) -> Result<(), KsmError> {
        if !mergeable(cfg) {
            return Ok(());
        }
        self.boots[i] += 1;
        let boot = (self.boots[i], self.thp);
        let contents = Contents::boot(&mut self.ksmd, now, cfg, boot, guest)?;
        guest.record_page_moves();
        self.vms[i] = Some(contents);
        Ok(())
    }

    /// QEMU exits: its pages are unmapped at once, ksmd drops its rmap_items later.
    pub fn stop_vm(&mut self, i: usize) {
        if let Some(c) = self.vms[i].take() {
            // The mm was live until now, so exiting it cannot fail.
            let _ = self.ksmd.exit_mm(c.mm());
        }
    }

    /// ksmd scans up to `t` with the contents as they are.
    pub fn scan_until(&mut self, t: SimTime) {
        self.ksmd.run_until(t);
    }

    /// Carries a guest's page moves and writes of the last step over to its contents.
    /// Returns how many scattered pages it handed back lay in huge pages KSM had split
    /// (freed at once rather than held for the deferred split).
    pub fn settle(&mut self, i: usize, guest: &mut Guest, dt: SimTime) -> Result<u64, KsmError> {
        let Some(c) = self.vms[i].as_mut() else {
            return Ok(0);
        };
        let moves = guest.take_page_moves();
        let freed_at_once = c.apply(&mut self.ksmd, &moves)?;
        c.write(&mut self.ksmd, &guest.written_pages(dt))?;
        Ok(freed_at_once)
    }

    /// `AnonHugePages` of a running, mergeable VM's guest RAM, in pages (`None` when
    /// memsim does not follow its pages).
    pub fn anon_huge_pages(&self, i: usize) -> Option<u64> {
        let c = self.vms[i].as_ref()?;
        Some(c.anon_huge_pages(&self.ksmd))
    }

    /// Passes the current savings and slab to the host.
    pub fn update_host(&self, host: &mut Host) -> Result<(), crate::host::OutOfMemory> {
        let slab = (self.ksmd.rmap_items() * 64).div_ceil(4096);
        host.set_ksm(self.ksmd.pages_saved(), slab)
    }

    /// One ksmtuned cycle: reads free memory and the QEMU processes' committed size,
    /// and writes its decision to ksmd's sysfs.
    pub fn ksmtuned_cycle(&mut self, now: SimTime, info: &MemInfo, host: &Host) -> Option<Cycle> {
        let measure = self.tuned.as_ref()?.committed_measure();
        let committed_kib = self.committed_kib(&measure, host);
        let free_kib = (info.mem_free + info.buffers + info.cached) / 1024;
        let before = self.decision();
        let tuned = self.tuned.as_mut()?;
        if *tuned.status() != Status::Running {
            return None;
        }
        let run = tuned.cycle(free_kib, committed_kib).run;
        let thres_kib = tuned.thres();
        let exited = match tuned.status() {
            Status::Exited { error, .. } => Some(error.clone()),
            _ => None,
        };
        if exited.is_none() {
            self.write_sysfs(now, run);
        }
        Some(Cycle {
            before,
            after: self.decision(),
            free_kib,
            committed_kib,
            thres_kib,
            total_kib: info.mem_total / 1024,
            exited,
        })
    }

    /// `run`, `pages_to_scan` and `sleep_millisecs` as the kernel holds them.
    fn decision(&self) -> Decision {
        let t = self.ksmd.tunables();
        Decision {
            run: t.run,
            pages_to_scan: u32::try_from(t.pages_to_scan).unwrap_or(u32::MAX),
            sleep_millisecs: u32::try_from(t.sleep_millisecs).unwrap_or(u32::MAX),
        }
    }

    /// An admin's action: `systemctl stop` or `restart ksmtuned`, then the sysfs
    /// writes, each checked by the kernel. Returns what was done, for the event log.
    pub fn admin(&mut self, now: SimTime, action: &AdminAction, mem_total_kib: u64) -> String {
        self.ksmd.run_until(now);
        let mut done = Vec::new();
        match &action.ksmtuned {
            Some(None) => {
                let was = self.tuned.take();
                done.push(match was {
                    Some(_) => "systemctl stop ksmtuned".to_string(),
                    None => "systemctl stop ksmtuned (it was not running)".to_string(),
                });
            }
            Some(Some(cfg)) => {
                let verb = if self.tuned.is_some() {
                    "restart"
                } else {
                    "start"
                };
                self.tuned = Some(self.start_ksmtuned(cfg, mem_total_kib));
                done.push(format!("systemctl {verb} ksmtuned ({})", cfg.variant));
            }
            None => {}
        }
        for &w in &action.ksm {
            done.push(match self.ksmd.set(now, w) {
                Ok(()) => format!("wrote {w}"),
                Err(e) => format!("wrote {w}: refused ({e})"),
            });
        }
        done.join("; ")
    }

    /// A daemon started now: its start-up reads MemTotal, and sysfs holds what the
    /// kernel holds.
    fn start_ksmtuned(&self, cfg: &KsmtunedConfig, mem_total_kib: u64) -> Ksmtuned {
        Ksmtuned::new(cfg.variant, &cfg.conf, mem_total_kib).with_boot_sysfs(self.decision())
    }

    /// Writes to `/sys/kernel/mm/ksm` from another controller (MOM). The kernel may
    /// refuse one (EBUSY for `merge_across_nodes` while pages are shared), as it
    /// would refuse the real write; the value then stays.
    pub fn write(&mut self, now: SimTime, w: Sysfs) {
        let _ = self.ksmd.set(now, w);
    }

    /// `(run, pages_to_scan, sleep_millisecs, merge_across_nodes, pages_shared)` as
    /// sysfs shows them now.
    pub fn sysfs(&self) -> (u8, u64, u64, bool, u64) {
        let t = self.ksmd.tunables();
        let c = self.ksmd.counters();
        (
            t.run,
            t.pages_to_scan,
            t.sleep_millisecs,
            t.merge_across_nodes,
            c.pages_shared,
        )
    }

    /// The script's writes, every cycle (ksmtuned.md §6): on a stop only `run` ← 0; on
    /// a start `pages_to_scan` ← npages, `sleep_millisecs` ← sleep, then `run` ← 1.
    /// The kernel refuses what is not an `unsigned int` (a negative npages, an unset
    /// sleep) and keeps its value; an admin's values are overwritten, as on a host.
    fn write_sysfs(&mut self, now: SimTime, run: u8) {
        let Some(tuned) = self.tuned.as_ref() else {
            return;
        };
        let mut writes = Vec::new();
        if run == 1 {
            if let Ok(pages) = u64::try_from(tuned.npages()) {
                writes.push(Sysfs::PagesToScan(pages));
            }
            if let Some(sleep) = tuned.sleep_msec().and_then(|s| u64::try_from(s).ok()) {
                writes.push(Sysfs::SleepMillisecs(sleep));
            }
        }
        writes.push(Sysfs::Run(u64::from(run)));
        for w in writes {
            let _ = self.ksmd.set(now, w);
        }
    }

    /// Σ over running QEMU processes of what `ps` shows in the variant's column, KiB.
    /// PSS divides each KSM page among its mappers, so Σ PSS = Σ RSS − the pages
    /// merging saves. A column the model does not know sums as 0, as awk sums text.
    pub fn committed_kib(&self, measure: &CommittedMeasure, host: &Host) -> u64 {
        let rss: u64 = (0..self.vms.len())
            .map(|i| host.backing(i))
            .filter(|b| b.running)
            .map(|b| b.resident + b.overhead)
            .sum();
        let pages = match measure {
            CommittedMeasure::Rss => rss,
            CommittedMeasure::Pss => rss.saturating_sub(self.ksmd.pages_saved()),
            CommittedMeasure::Vsz => (0..self.vms.len())
                .map(|i| host.backing(i))
                .filter(|b| b.running)
                .map(|b| b.ram + b.overhead)
                .sum(),
            CommittedMeasure::Column(_) => 0,
        };
        pages * 4
    }

    /// `ksm_stat` of a running, mergeable VM's QEMU process.
    pub fn vm_stat(&self, i: usize) -> Option<MmStat> {
        let c = self.vms[i].as_ref()?;
        self.ksmd.mm_stat(c.mm())
    }

    pub fn counters(&self) -> Counters {
        self.ksmd.counters()
    }

    pub fn run(&self) -> u8 {
        self.ksmd.tunables().run
    }

    pub fn sleep_millisecs(&self) -> u64 {
        self.ksmd.tunables().sleep_millisecs
    }

    pub fn pages_saved(&self) -> u64 {
        self.ksmd.pages_saved()
    }

    pub fn cpu_s(&self) -> f64 {
        self.ksmd.cpu_time_ns() as f64 / 1e9
    }
}
