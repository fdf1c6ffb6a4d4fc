//! oVirt MOM in the run loop: every policy-engine interval it samples the host and the
//! guests as vdsm's collectors would, evaluates its rules (`crate::mom`), and sends the
//! balloon targets and KSM writes they ask for.

use super::{nominal, Sim, VmState};
use crate::balloon::PAGE;
use crate::engine::SimTime;
use crate::ksm::Sysfs;
use crate::ksmtuned::CommittedMeasure;
use crate::metrics::EventKind;
use crate::mom::{BalloonInfo, GuestStats, HostStats, KsmKey, KsmSysfs, KsmWrite};

impl Sim<'_> {
    /// One MOM round: record one sample, decide, act.
    pub(super) fn mom(&mut self, t: SimTime) {
        let host = self.mom_host_stats();
        let guests = self.mom_guest_stats();
        let Some(mom) = self.mom.as_mut() else {
            return;
        };
        let d = mom.evaluate(&host, &guests);
        if let Some(why) = d.aborted {
            if !self.mom_failed {
                self.mom_failed = true;
                let detail =
                    format!("MOM: policy round failed ({why}); nothing changes while it does");
                self.record(t, 0, EventKind::MomRoundFailed, 0, detail);
            }
            return;
        }
        for (i, target) in d.balloon_targets.iter().enumerate() {
            if let Some(kib) = target {
                self.mom_balloon(t, i, kib * 1024);
            }
        }
        for w in &d.ksm {
            self.mom_ksm(t, *w);
        }
    }

    fn mom_balloon(&mut self, t: SimTime, i: usize, target: u64) {
        let Some(g) = self.vms[i].guest.as_mut() else {
            return;
        };
        let current = g.balloon().actual_guest_bytes();
        g.set_balloon_target(target);
        self.balloon_commands += 1;
        let cfg = self.cfg(i);
        let detail = format!(
            "MOM: {} {} MiB -> {} MiB",
            cfg.name,
            current >> 20,
            target >> 20
        );
        let change = target as i64 - current as i64;
        self.record(t, cfg.vmid, EventKind::BalloonTarget, change, detail);
    }

    fn mom_ksm(&mut self, t: SimTime, w: KsmWrite) {
        let Some(k) = self.ksm.as_mut() else {
            return;
        };
        let Ok(v) = u64::try_from(w.value) else {
            return; // the kernel refuses a negative number
        };
        let was = k.run();
        k.write(
            nominal(t),
            match w.key {
                KsmKey::Run => Sysfs::Run(v),
                KsmKey::PagesToScan => Sysfs::PagesToScan(v),
                KsmKey::SleepMillisecs => Sysfs::SleepMillisecs(v),
                KsmKey::MergeAcrossNodes => Sysfs::MergeAcrossNodes(v),
            },
        );
        let now = k.run();
        if w.key == KsmKey::Run && now != was {
            let (kind, what) = if now == 1 {
                (EventKind::KsmStart, "KSM on")
            } else {
                (EventKind::KsmStop, "KSM off")
            };
            let detail = format!("MOM: {what} (run={now})");
            self.record(t, 0, kind, i64::from(now), detail);
        }
    }

    /// `HostMemory` + `HostKSM`: MemTotal, MemFree + Buffers + Cached, the QEMU
    /// processes' summed VSZ, and the KSM sysfs values.
    fn mom_host_stats(&self) -> HostStats {
        let info = self.host.meminfo();
        let ksm = self.ksm.as_ref().map_or(KsmSysfs::KERNEL_DEFAULT, |k| {
            let (run, pages, sleep, across, shared) = k.sysfs();
            KsmSysfs {
                run: u32::from(run),
                pages_to_scan: u32::try_from(pages).unwrap_or(u32::MAX),
                sleep_millisecs: u32::try_from(sleep).unwrap_or(u32::MAX),
                merge_across_nodes: u32::from(across),
                pages_shared: shared,
            }
        });
        let shareable = self
            .ksm
            .as_ref()
            .map_or(0, |k| k.committed_kib(&CommittedMeasure::Vsz, &self.host));
        HostStats {
            mem_total_kib: info.mem_total / 1024,
            mem_free_kib: (info.mem_free + info.buffers + info.cached) / 1024,
            ksm_shareable_kib: shareable,
            ksm,
        }
    }

    /// `GuestBalloon` + `GuestMemory` per VM: `None` when the VM is not running. A VM
    /// without a balloon device has no balloon info; one without a working driver
    /// reports no memory statistics. The guaranteed memory is `balloon:` (the
    /// configured memory when unset: never shrunk).
    fn mom_guest_stats(&self) -> Vec<Option<GuestStats>> {
        self.vms
            .iter()
            .zip(&self.sc.vms)
            .map(|(vm, cfg)| {
                let g = vm.guest.as_ref().filter(|_| vm.state == VmState::Running)?;
                let balloon = cfg.balloon_device.then(|| BalloonInfo {
                    cur_kib: g.balloon().actual_guest_bytes() / 1024,
                    max_kib: cfg.memory / 1024,
                    min_kib: cfg.balloon_min.unwrap_or(cfg.memory) / 1024,
                });
                let unused =
                    (cfg.balloon_device && cfg.balloon_driver).then(|| g.mem_free() * PAGE / 1024);
                Some(GuestStats {
                    balloon,
                    mem_unused_kib: unused,
                })
            })
            .collect()
    }
}
