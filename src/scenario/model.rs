//! The resolved scenario: plain data, every default filled in, every unit converted
//! (sizes in bytes, times as [`SimTime`]), `count:` expanded into one [`VmConfig`]
//! per VM, templates applied. The simulator reads only this.

use crate::engine::SimTime;
use crate::ksm::{Sysfs, Tunables};
use crate::ksmtuned::{Config as KsmtunedConf, Variant};
use crate::mom::MomConfig;
use crate::policy::Policy;
use crate::workload::ProcessSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub duration: SimTime,
    /// Guest/workload step (default 1 s).
    pub tick: SimTime,
    /// Time between samples in the time series (default 10 s).
    pub sample_interval: SimTime,
    pub host: HostConfig,
    pub pvestatd: PvestatdConfig,
    pub ksm: KsmConfig,
    /// oVirt MOM's balloon and KSM policies, instead of pvestatd and ksmtuned (the
    /// `mom` policy).
    pub mom: Option<MomConfig>,
    /// qemu-server sets each balloon target to `balloon_min` when the VM starts (it
    /// expects pvestatd to grow it back). Policies without auto-ballooning turn this
    /// off, so their guests run at full size instead of stuck at the minimum.
    pub qemu_start_target: bool,
    /// The `policy:` preset applied over the settings above, if any.
    pub policy: Option<Policy>,
    /// One entry per VM, sorted by vmid.
    pub vms: Vec<VmConfig>,
    /// What an administrator does during the run (`actions:`), sorted by time.
    pub actions: Vec<AdminAction>,
}

impl Scenario {
    /// Whether ksmd can ever scan in this run: at boot, through a daemon, or because
    /// an admin action may start it. When not, the simulation keeps no page contents.
    pub fn ksm_may_run(&self) -> bool {
        self.ksm.may_run() || self.mom.is_some() || !self.actions.is_empty()
    }
}

/// An administrator's command at a simulated time: stopping or (re)starting ksmtuned
/// (`systemctl stop|restart ksmtuned`), then writing `/sys/kernel/mm/ksm` files.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminAction {
    pub at: SimTime,
    /// `Some(None)`: stop the daemon; `Some(Some(..))`: start this one, replacing a
    /// running daemon (a restart computes its start-up values afresh).
    pub ksmtuned: Option<Option<KsmtunedConfig>>,
    /// The writes, in the order the boot-time `ksm:` key applies them.
    pub ksm: Vec<Sysfs>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    /// Physical RAM (MemTotal before the host kernel's own reservation).
    pub memory: u64,
    /// Host OS and services (pmxcfs, pveproxy, ...): used, not reclaimable.
    pub reserved: u64,
    /// Host page cache (Buffers + Cached) when memory is plentiful; shrinks under pressure.
    pub page_cache: u64,
    /// QEMU's own memory per running VM, on top of guest RAM.
    pub qemu_overhead: u64,
    /// Host swap size.
    pub swap: u64,
    pub swappiness: u32,
    pub numa_nodes: u32,
    pub thp: Thp,
    /// ZFS ARC size: counted as used by both memused formulas.
    pub zfs_arc: u64,
}

/// Host transparent hugepages setting (`/sys/kernel/mm/transparent_hugepage/enabled`).
/// QEMU madvises guest RAM `MADV_HUGEPAGE`, so `madvise` and `always` both back guest
/// RAM with THPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thp {
    Never,
    Madvise,
    Always,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PvestatdConfig {
    /// Auto-ballooning on (pvestatd running). Off = balloon targets never change
    /// after VM start.
    pub enabled: bool,
    /// Node option `ballooning-target`, percent 0..=100 (default 80).
    pub ballooning_target: u32,
    pub memused: MemusedFormula,
    /// pvestatd's update period (10 s upstream).
    pub interval: SimTime,
    /// Per-VM step per cycle (100 MiB upstream).
    pub maxchange: u64,
}

/// The host's KSM: what `/sys/kernel/mm/ksm` holds at boot, and the daemon that
/// rewrites `run`, `pages_to_scan` and `sleep_millisecs` afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct KsmConfig {
    /// The sysfs values at host boot (kernel defaults unless the scenario says).
    pub sysfs: Tunables,
    /// ksmtuned, or `None` when it is off (ksmd then keeps `sysfs` for the whole run).
    pub ksmtuned: Option<KsmtunedConfig>,
}

impl KsmConfig {
    /// Whether ksmd can ever scan in this run: it starts running, or a daemon may
    /// start it. When not, the simulation keeps no page contents at all.
    pub fn may_run(&self) -> bool {
        self.sysfs.run == 1 || self.ksmtuned.is_some()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KsmtunedConfig {
    pub variant: Variant,
    /// `/etc/ksmtuned.conf`: the file's settings with the scenario's inline keys over them.
    pub conf: KsmtunedConf,
}

/// How pvestatd computes host `memused` (pve-common `read_meminfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemusedFormula {
    /// `MemTotal − MemAvailable` (libpve-common-perl ≥ 8.3.1, 2025-04).
    Available,
    /// `MemTotal − MemFree − Buffers − Cached` (before 8.3.1).
    Legacy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    Linux,
    Windows,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VmConfig {
    pub vmid: u32,
    pub name: String,
    /// Template the VM was cloned from, if any.
    pub template: Option<String>,
    pub os: Os,
    /// `memory`: maximum guest RAM, bytes.
    pub memory: u64,
    /// A virtio-balloon device exists (`balloon: 0` removes it).
    pub balloon_device: bool,
    /// `balloon`: the minimum (bytes) pvestatd may shrink to. `None` when the option is
    /// unset: the device exists but the VM is never auto-ballooned.
    pub balloon_min: Option<u64>,
    /// `shares` (0..=50000, default 1000; 0 = excluded from auto-ballooning).
    pub shares: u32,
    /// The guest has a working balloon driver (Windows without VirtIO drivers: false).
    pub balloon_driver: bool,
    pub deflate_on_oom: bool,
    pub free_page_reporting: bool,
    /// Guest swap size, bytes.
    pub swap: u64,
    pub swappiness: u32,
    pub start_at: SimTime,
    pub stop_at: Option<SimTime>,
    /// `[start, end)` windows during which the VM is migrating (`lock: migrate`).
    pub migrations: Vec<(SimTime, SimTime)>,
    /// Guest RAM backed by host hugetlbfs pages (preallocated, never returned).
    pub hugepages: bool,
    /// PCI passthrough (VFIO): all guest RAM pinned, balloon discards inhibited.
    pub passthrough: bool,
    /// QEMU `mem-merge`: guest RAM is madvised `MADV_MERGEABLE` (on by default;
    /// hugepage-backed and passthrough RAM is never merged whatever this says).
    pub ksm: bool,
    /// What KSM can find in the guest's pages.
    pub content: Content,
    /// Workload name (a preset or `custom`) and its processes.
    pub workload: String,
    pub processes: Vec<ProcessSpec>,
}

/// Which of a guest's pages hold content that other guests hold too. Clones of one
/// template (`VmConfig::template`) have the template's content page for page until they
/// write it; a VM without a template shares only what its OS family shares. Fractions
/// are of each kind of page; the defaults per OS are in `Content::default_for` and
/// `docs/scenario-format.md`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Content {
    /// Kernel image, initramfs, memmap and slab pages identical across clones.
    pub kernel_shared: f64,
    /// File working sets read from the template's files rather than the VM's own data.
    pub cache_shared: f64,
    /// Anonymous memory identical across clones running the same process.
    pub anon_shared: f64,
    /// Of the template-shared pages, the part identical in every template of the same
    /// OS (the same distribution release): what a mixed fleet still shares.
    pub family_shared: f64,
    /// Freed pages are zeroed (Windows' zero-page thread; Linux with `init_on_free=1`).
    pub zero_freed: bool,
}

impl Content {
    /// Defaults per OS (`guest.md` §6, lab E1): about 70 % of a Linux clone's boot
    /// footprint merged in lab E1 (≈ 60 MiB of a 384 MiB guest); Windows zeroes its
    /// free memory and relocates images (ASLR), so less of its kernel is identical.
    pub fn default_for(os: Os) -> Content {
        match os {
            Os::Linux => Content {
                kernel_shared: 0.7,
                cache_shared: 0.5,
                anon_shared: 0.02,
                family_shared: 0.25,
                zero_freed: false,
            },
            Os::Windows => Content {
                kernel_shared: 0.5,
                cache_shared: 0.5,
                anon_shared: 0.02,
                family_shared: 0.25,
                zero_freed: true,
            },
        }
    }
}
