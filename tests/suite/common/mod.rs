//! Builders shared by the integration tests: scenarios and VMs in code, so that tests
//! do not depend on YAML files for what they check.

pub mod cli;

use std::path::{Path, PathBuf};

use memsim::engine::SimTime;
use memsim::scenario::*;
use memsim::workload::*;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The path of `scenarios/<name>.yaml`, a file the project ships.
pub fn shipped_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.yaml"))
}

/// The shipped scenario `scenarios/<name>.yaml`, loaded as `memsim run` loads it.
pub fn shipped(name: &str) -> Scenario {
    memsim::scenario::load(&shipped_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn secs(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

pub fn process(name: &str, anon: Shape, hot: f64, cache: u64) -> ProcessSpec {
    ProcessSpec {
        name: name.into(),
        anon,
        hot_fraction: hot,
        cache,
        read_rate: 0,
        write_rate: 0,
        oom_score_adj: 0,
        restart_after: None,
    }
}

pub fn vm(
    vmid: u32,
    memory: u64,
    balloon_min: Option<u64>,
    processes: Vec<ProcessSpec>,
) -> VmConfig {
    VmConfig {
        vmid,
        name: format!("vm{vmid}"),
        template: None,
        os: Os::Linux,
        memory,
        balloon_device: true,
        balloon_min,
        shares: 1000,
        balloon_driver: true,
        deflate_on_oom: false,
        free_page_reporting: false,
        swap: 0,
        swappiness: 60,
        start_at: SimTime::ZERO,
        stop_at: None,
        migrations: vec![],
        hugepages: false,
        passthrough: false,
        ksm: true,
        content: Content::default_for(Os::Linux),
        workload: "custom".into(),
        processes,
    }
}

pub fn scenario(host_memory: u64, duration: SimTime, vms: Vec<VmConfig>) -> Scenario {
    Scenario {
        name: "test".into(),
        seed: 1,
        duration,
        tick: secs(1),
        sample_interval: secs(10),
        host: HostConfig {
            memory: host_memory,
            reserved: 2 * GIB,
            page_cache: GIB,
            qemu_overhead: 150 * MIB,
            swap: 0,
            swappiness: 60,
            numa_nodes: 1,
            thp: Thp::Madvise,
            zfs_arc: 0,
        },
        pvestatd: PvestatdConfig {
            enabled: true,
            ballooning_target: 80,
            memused: MemusedFormula::Available,
            interval: secs(10),
            maxchange: 100 * MIB,
        },
        // KSM off: these tests compare with lab runs that had it off.
        mom: None,
        qemu_start_target: true,
        policy: None,
        ksm: KsmConfig {
            sysfs: memsim::ksm::Tunables::default(),
            ksmtuned: None,
        },
        vms,
        actions: Vec::new(),
    }
}
