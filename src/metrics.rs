//! What a run records: host and per-VM time series, discrete events, and a summary.
//!
//! Column names carry their unit (`_bytes`, `_pages`, `_s`) so a CSV needs no legend.
//! Counters named `*_pages` in the per-VM rows are deltas since the previous sample;
//! `oom_kills` is cumulative.

use serde::Serialize;

/// One row of `timeseries_host.csv`: the host as `/proc/meminfo` would show it, and
/// pvestatd's view of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HostSample {
    pub t_s: f64,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub buffers_bytes: u64,
    pub cached_bytes: u64,
    pub mem_available_bytes: u64,
    /// pvestatd's memused under the configured formula.
    pub memused_bytes: u64,
    /// `ballooning-target` percent of MemTotal.
    pub target_bytes: u64,
    /// Goal of the last pvestatd cycle (signed bytes).
    pub goal_bytes: i64,
    pub host_reserved_bytes: u64,
    /// Σ guest RAM resident in QEMU processes (without QEMU overhead).
    pub guest_resident_bytes: u64,
    pub qemu_overhead_bytes: u64,
    /// Discarded 4 KiB pages still held in partly-split host THPs.
    pub thp_deferred_bytes: u64,
    /// `/proc/meminfo` AnonHugePages: guest RAM mapped by whole 2 MiB huge pages (of
    /// the pages the guests touched). Exact for VMs whose pages KSM follows; for the
    /// others all resident guest RAM on a THP host counts (an upper bound).
    pub anon_huge_pages_bytes: u64,
    pub zfs_arc_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// Guest RAM the host swapped out / faulted back in since the previous sample
    /// (host swap-ins are guest accesses stalled on the host's disk: double paging).
    pub host_swap_out_pages: u64,
    pub host_swap_in_pages: u64,
    pub vms_running: u32,
    /// Memory KSM saves now (every extra mapping of a KSM page, KSM zero pages).
    pub ksm_saved_bytes: u64,
    /// `/sys/kernel/mm/ksm`: the knobs ksmtuned writes, then ksmd's counters.
    pub ksm_run: u8,
    pub ksm_pages_to_scan: u64,
    pub ksm_sleep_millisecs: u64,
    pub ksm_full_scans: u64,
    pub ksm_pages_scanned: u64,
    pub ksm_pages_shared: u64,
    pub ksm_pages_sharing: u64,
    pub ksm_pages_unshared: u64,
    pub ksm_pages_volatile: u64,
    pub ksm_pages_skipped: u64,
    pub ksm_zero_pages: u64,
    pub ksm_general_profit_bytes: i64,
}

/// One row of `timeseries_vms.csv`, per VM per sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmSample {
    pub t_s: f64,
    pub vmid: u32,
    pub name: String,
    /// `running`, `stopped` or `killed` (by the host OOM killer).
    pub state: &'static str,
    pub maxmem_bytes: u64,
    pub balloon_min_bytes: u64,
    /// Balloon target as guest size (QMP `balloon` value).
    pub target_bytes: u64,
    /// `query-balloon` actual: guest size minus balloon.
    pub actual_bytes: u64,
    pub guest_mem_total_bytes: u64,
    pub guest_mem_free_bytes: u64,
    pub guest_cached_bytes: u64,
    pub guest_anon_bytes: u64,
    pub guest_kernel_bytes: u64,
    pub guest_swap_used_bytes: u64,
    /// Guest RAM resident on the host (QEMU RSS without overhead).
    pub host_resident_bytes: u64,
    pub host_swapped_bytes: u64,
    pub swap_in_pages: u64,
    pub swap_out_pages: u64,
    pub cache_refault_pages: u64,
    pub major_faults: u64,
    pub oom_kills: u64,
    /// `/proc/<qemu pid>/ksm_stat`: pages of this VM's RAM that map a KSM page, and
    /// what merging earns this VM (`ksm_process_profit`).
    pub ksm_merging_pages: u64,
    pub ksm_process_profit_bytes: i64,
    /// What the Proxmox GUI's memory panel shows for the VM: qemu-server's `vmstatus`
    /// `mem` (`PVE/QemuServer.pm`). With guest statistics from a balloon driver it is
    /// the guest's MemTotal − MEMFREE (Linux: MemFree, so page cache counts as used;
    /// Windows: AvailablePages); without them it falls back to `memhost`.
    pub pve_mem_bytes: u64,
    /// qemu-server's `memhost`: the VM cgroup's memory less file pages (pve-common
    /// `PVE::CGroup::get_memory_stat`; qemu-server 551c0078, fix #6935): the guest RAM
    /// QEMU holds plus QEMU's own overhead; KSM merging is not taken into account.
    pub pve_memhost_bytes: u64,
}

/// What happened, for `events.csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    VmStart,
    VmStop,
    MigrationStart,
    MigrationEnd,
    /// pvestatd set a new balloon target.
    BalloonTarget,
    /// The balloon driver could not allocate ("Out of puff") and will retry.
    BalloonOutOfPuff,
    /// The guest began reclaiming page cache / swapping in this tick.
    ReclaimCache,
    SwapOut,
    GuestOomKill,
    /// Deflate-on-oom gave balloon pages back instead of a kill.
    DeflateOnOom,
    ProcessRestart,
    HostSwapOut,
    HostOomKill,
    /// ksmtuned or MOM wrote `run=1` after `run=0` or an admin's `run=2` (or at its first start).
    KsmStart,
    /// ksmtuned or MOM wrote `run=0` (MOM: or `run=2`).
    KsmStop,
    /// A MOM policy round failed (logged the first time).
    MomRoundFailed,
    /// ksmtuned's loop process died (bash error); ksmd keeps the last values written.
    KsmtunedExit,
    /// An admin action from the scenario's `actions:` (detail: what was run).
    AdminAction,
}

/// One row of `events.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub t_s: f64,
    /// 0 for host-wide events.
    pub vmid: u32,
    pub kind: EventKind,
    /// Main quantity of the event (bytes moved, badness points, ...), 0 if none.
    pub value: i64,
    /// Human-readable detail ("killed postgres (badness 812345)").
    pub detail: String,
}

/// Whole-run figures, for `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub duration_s: f64,
    pub vms: u32,
    pub peak_memused_bytes: u64,
    pub mean_memused_bytes: u64,
    pub peak_host_swap_used_bytes: u64,
    /// Seconds of samples with memused above the ballooning target.
    pub time_above_target_s: f64,
    pub balloon_moved_bytes: u64,
    pub balloon_commands: u64,
    pub guest_swap_in_pages: u64,
    pub guest_swap_out_pages: u64,
    pub cache_refault_pages: u64,
    pub guest_oom_kills: u64,
    /// `"vmid/process"` of each guest OOM victim, in order.
    pub guest_oom_victims: Vec<String>,
    pub host_oom_kills: u64,
    pub host_oom_victims: Vec<u32>,
    pub peak_ksm_saved_bytes: u64,
    pub mean_ksm_saved_bytes: u64,
    /// Pages ksmd looked at over the run, and its CPU time by the scan cost model.
    pub ksm_pages_scanned: u64,
    pub ksmd_cpu_s: f64,
}

/// Everything one run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    pub host: Vec<HostSample>,
    pub vms: Vec<VmSample>,
    pub events: Vec<Event>,
    pub summary: Summary,
}

/// "201/postgres ×14, 301/job": OOM victims (or any names) with their counts, in order
/// of first mention; empty for none. Every table and sentence that lists victims uses it.
pub fn tally<T: ToString>(victims: impl IntoIterator<Item = T>) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for v in victims.into_iter().map(|v| v.to_string()) {
        match counts.iter_mut().find(|(name, _)| *name == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(v, n)| if n == 1 { v } else { format!("{v} ×{n}") })
        .collect();
    parts.join(", ")
}
