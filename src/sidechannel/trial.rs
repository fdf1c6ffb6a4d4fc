//! One trial on the kernel model of ksmd: the VMs' memory as QEMU processes whose guest
//! RAM is `MADV_MERGEABLE`, ksmd scanning with one configuration's sysfs settings, and
//! at each wait the state of the attacker's copies when it writes them.
//!
//! **Memory.** Each VM is one mm, registered with ksmd at boot (t = 0) in the order
//! victim, bystanders, attacker (QEMU marks all guest RAM mergeable when the VM
//! starts, unless the VM has `ksm: false`, QEMU's `mem-merge=off`). Its pages are `common_pages` pages of the guest OS that every VM holds
//! alike (they merge across VMs whatever happens), then pages of content no other page
//! has, then N pages where the software goes. A VM that runs the software writes the N
//! pages of it there at `starts_at` (at boot when 0); until then, and in a VM that does
//! not run it, they hold other data of its own. The attacker writes its copies of the
//! N pages at `loads_at`, into memory the guest never touched before (`fresh`: not
//! present, so ksmd meets them as new pages with new rmap_items) or into memory it used
//! since boot (`reused`: present, with the rmap_items — and smart scan's ages — of
//! their earlier contents).
//!
//! **The probe.** At `loads_at + wait` the attacker writes its N pages; a write to a
//! page that maps a KSM page is a copy-on-write fault (`PageState::Ksm`), any other
//! is not. The run is not disturbed by the probe: every wait of a trial observes the
//! same history, as independent attackers that chose different waits would.

use anyhow::Context as _;
use rand::Rng;

use super::{Config, Experiment, Memory, Tenant};
use crate::engine::{rng_stream, SimTime};
use crate::ksm::{Ksmd, MmId, MmOptions, PageState, Sysfs};

/// Content id of the `i`th guest-OS page every VM holds.
fn os_content(i: u32) -> u64 {
    1 + u64::from(i)
}

/// Content id of the software's `j`th page.
fn software_content(j: u32) -> u64 {
    (1 << 40) + u64::from(j)
}

/// Content id of page `page` of VM `vm` that nothing else holds.
fn own_content(vm: usize, page: u32) -> u64 {
    (1 << 50) + ((vm as u64) << 24) + u64::from(page)
}

/// What is left to chance in one trial: who runs the software, and when the attacker
/// loads its copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draw {
    pub victim: bool,
    pub bystanders: Vec<bool>,
    pub loads_at: SimTime,
}

/// The trial's draw, from its own stream: the same in every configuration, so the
/// configurations are compared on the same victims.
pub fn draw(e: &Experiment, trial: u32) -> Draw {
    let mut rng = rng_stream(e.seed, &format!("side-channel/trial/{trial}"));
    let victim = rng.random_bool(e.victim.runs_software);
    let bystanders = e
        .bystanders
        .iter()
        .map(|b| rng.random_bool(b.runs_software))
        .collect();
    let jitter = e.attacker.load_jitter.as_nanos();
    let offset = if jitter > 0 {
        rng.random_range(0..jitter)
    } else {
        0
    };
    Draw {
        victim,
        bystanders,
        loads_at: e.attacker.loads_at + SimTime(offset),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A tenant (index into the mms) loads the software.
    Starts(usize),
    /// The attacker writes its copies.
    Loads,
    /// The attacker probes after the `i`th wait.
    Probes(usize),
}

/// For each wait, how many of the attacker's N copies map a KSM page at the probe.
pub fn merged_copies(e: &Experiment, config: &Config, draw: &Draw) -> anyhow::Result<Vec<u32>> {
    let n = e.target_pages;
    let mut k = Ksmd::new(1);
    let t0 = SimTime::ZERO;
    for w in [
        Sysfs::PagesToScan(config.pages_to_scan),
        Sysfs::SleepMillisecs(config.sleep_millisecs),
        Sysfs::SmartScan(u64::from(config.smart_scan)),
    ] {
        k.set(t0, w).with_context(|| format!("{w:?}"))?;
    }
    let mut tenants: Vec<(&Tenant, bool)> = vec![(&e.victim, draw.victim)];
    tenants.extend(e.bystanders.iter().zip(draw.bystanders.iter().copied()));
    let mut mms = Vec::new();
    let mut events = Vec::new();
    for (vm, (t, runs)) in tenants.iter().enumerate() {
        let at_boot = *runs && t.starts_at == SimTime::ZERO;
        let mm = boot(&mut k, vm, t, n, |page| {
            if at_boot {
                Some(software_content(page))
            } else {
                Some(own_content(vm, t.pages + page))
            }
        })?;
        if *runs && !at_boot {
            events.push((t.starts_at, Event::Starts(vm)));
        }
        mms.push(mm);
    }
    let a = &e.attacker;
    let attacker_vm = mms.len();
    let layout = Tenant {
        pages: a.pages,
        common_pages: a.common_pages,
        runs_software: 0.0,
        starts_at: SimTime::ZERO,
        ksm: true,
    };
    let attacker = boot(&mut k, attacker_vm, &layout, n, |page| {
        (a.memory == Memory::Reused).then(|| own_content(attacker_vm, a.pages + page))
    })?;
    if config.run {
        k.set(t0, Sysfs::Run(1)).context("run=1")?;
    }
    events.push((draw.loads_at, Event::Loads));
    events.extend(
        e.waits
            .iter()
            .enumerate()
            .map(|(i, w)| (draw.loads_at + *w, Event::Probes(i))),
    );
    events.sort();

    let mut merged = vec![0; e.waits.len()];
    for (t, ev) in events {
        k.run_until(t);
        match ev {
            Event::Starts(vm) => {
                let base = tenants[vm].0.pages;
                k.populate(mms[vm], base, base + n, |p| software_content(p - base))?;
            }
            Event::Loads => {
                k.populate(attacker, a.pages, a.pages + n, |p| {
                    software_content(p - a.pages)
                })?;
            }
            Event::Probes(i) => {
                merged[i] = (a.pages..a.pages + n)
                    .filter(|&p| matches!(k.page_state(attacker, p), Some(PageState::Ksm { .. })))
                    .count() as u32;
            }
        }
    }
    Ok(merged)
}

/// Boots VM `vm`: its mm with the guest OS pages, its own pages, and the N pages
/// where the software goes (`software(j)`: content of the `j`th, `None` = not touched),
/// all marked mergeable unless the VM has `ksm` off (QEMU `mem-merge=off`).
fn boot(
    k: &mut Ksmd,
    vm: usize,
    t: &Tenant,
    n: u32,
    software: impl Fn(u32) -> Option<u64>,
) -> anyhow::Result<MmId> {
    let (pages, common) = (t.pages, t.common_pages);
    let total = pages + n;
    let mm = k.add_mm(total, MmOptions::default())?;
    k.populate(mm, 0, pages, |p| {
        if p < common {
            os_content(p)
        } else {
            own_content(vm, p)
        }
    })?;
    for j in 0..n {
        if let Some(c) = software(j) {
            k.write_page(mm, pages + j, c)?;
        }
    }
    if t.ksm {
        k.madvise_mergeable(SimTime::ZERO, mm, 0, total)?;
    }
    Ok(mm)
}
