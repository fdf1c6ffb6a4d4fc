//! The resolved scenario: plain data, every default filled in, every unit converted
//! (sizes in bytes, times as [`SimTime`]), `count:` expanded into one [`VmConfig`]
//! per VM, templates applied. The simulator reads only this.

use crate::engine::SimTime;
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
    /// One entry per VM, sorted by vmid.
    pub vms: Vec<VmConfig>,
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
    /// Workload name (a preset or `custom`) and its processes.
    pub workload: String,
    pub processes: Vec<ProcessSpec>,
}
