//! A complete, valid scenario resolves to exactly the expected plain data: defaults,
//! templates, `count:` expansion, presets, custom shapes and trace files.

use std::path::Path;

use memsim::engine::SimTime;
use memsim::ksm::Tunables;
use memsim::ksmtuned::{Config, Variant};
use memsim::scenario::{
    load, parse, Content, HostConfig, KsmConfig, KsmtunedConfig, MemusedFormula, Os,
    PvestatdConfig, Scenario, Thp, VmConfig,
};
use memsim::workload::{preset, ProcessSpec, Shape};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn secs(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

/// A VM with every default, as the loader fills them in.
fn vm(vmid: u32, name: &str, memory: u64) -> VmConfig {
    VmConfig {
        vmid,
        name: name.into(),
        template: None,
        os: Os::Linux,
        memory,
        balloon_device: true,
        balloon_min: None,
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
        workload: "idle".into(),
        processes: preset("idle", memory).unwrap(),
    }
}

fn process(name: &str, anon: Shape) -> ProcessSpec {
    ProcessSpec {
        name: name.into(),
        anon,
        hot_fraction: 0.5,
        cache: 0,
        read_rate: 0,
        write_rate: 0,
        oom_score_adj: 0,
        restart_after: None,
    }
}

fn db() -> VmConfig {
    let mut processes = preset("database", 16 * GIB).unwrap();
    processes.push(ProcessSpec {
        hot_fraction: 0.25,
        cache: GIB,
        read_rate: MIB,
        write_rate: 512 << 10,
        oom_score_adj: 500,
        restart_after: Some(secs(60)),
        ..process(
            "loader",
            Shape::Trace(vec![
                (SimTime::ZERO, GIB),
                (secs(600), 2 * GIB),
                (SimTime::from_millis(3_600_500), GIB),
            ]),
        )
    });
    VmConfig {
        balloon_min: Some(4 * GIB),
        deflate_on_oom: true,
        free_page_reporting: true,
        swap: 2 * GIB,
        swappiness: 30,
        start_at: secs(60),
        stop_at: Some(secs(5400)),
        migrations: vec![(secs(600), secs(660)), (secs(1800), secs(1920))],
        workload: "custom".into(),
        processes,
        ..vm(100, "db", 16 * GIB)
    }
}

fn web(vmid: u32, name: &str) -> VmConfig {
    VmConfig {
        template: Some("debian12".into()),
        balloon_min: Some(GIB),
        shares: 500,
        workload: "web".into(),
        processes: preset("web", 4 * GIB).unwrap(),
        ..vm(vmid, name, 4 * GIB)
    }
}

fn shapes() -> VmConfig {
    let processes = vec![
        process("const", Shape::Constant(256 * MIB)),
        process(
            "ramp",
            Shape::Ramp {
                from: GIB,
                to: 3 * GIB / 2,
                start: secs(600),
                over: secs(3600),
            },
        ),
        process(
            "step",
            Shape::Step {
                initial: GIB,
                steps: vec![(secs(600), 4 * GIB), (secs(1200), 0)],
            },
        ),
        process(
            "diurnal",
            Shape::Diurnal {
                mean: 2 * GIB,
                amplitude: GIB,
                period: secs(86_400),
                phase: secs(6 * 3600),
            },
        ),
        process(
            "bursty",
            Shape::Bursty {
                base: GIB,
                burst: 2 * GIB,
                every: secs(1800),
                length: secs(300),
            },
        ),
        process("constant", Shape::Constant(MIB)),
    ];
    VmConfig {
        workload: "custom".into(),
        processes,
        ..vm(400, "vm400", 2 * GIB)
    }
}

fn expected() -> Scenario {
    Scenario {
        name: "full-example".into(),
        seed: 42,
        duration: secs(7200),
        tick: SimTime::from_millis(500),
        sample_interval: secs(10),
        host: HostConfig {
            memory: 64 * GIB,
            reserved: 2 * GIB,
            page_cache: GIB,
            qemu_overhead: 200 * MIB,
            swap: 8 * GIB,
            swappiness: 10,
            numa_nodes: 2,
            thp: Thp::Always,
            zfs_arc: 4 * GIB,
        },
        pvestatd: PvestatdConfig {
            enabled: true,
            ballooning_target: 75,
            memused: MemusedFormula::Legacy,
            interval: secs(10),
            maxchange: 50 * MIB,
        },
        mom: None,
        qemu_start_target: true,
        policy: None,
        ksm: KsmConfig {
            sysfs: Tunables {
                pages_to_scan: 1000,
                use_zero_pages: true,
                ..Tunables::default()
            },
            ksmtuned: Some(KsmtunedConfig {
                variant: Variant::Fedora,
                conf: Config {
                    thres_coef: Some(30),
                    ..Config::default()
                },
            }),
        },
        vms: vec![
            db(),
            web(200, "web-1"),
            web(201, "web-2"),
            web(202, "web-3"),
            VmConfig {
                template: Some("win".into()),
                os: Os::Windows,
                content: Content::default_for(Os::Windows),
                balloon_device: false,
                balloon_driver: false,
                ..vm(300, "vm300", 8 * GIB)
            },
            shapes(),
            vm(500, "vm500", GIB),
        ],
        actions: Vec::new(),
    }
}

#[test]
fn full_file_resolves_to_the_expected_scenario() {
    let got = load(Path::new("tests/fixtures/scenarios/full.yaml")).unwrap();
    let want = expected();
    assert_eq!(got.vms.len(), want.vms.len());
    for (g, w) in got.vms.iter().zip(&want.vms) {
        assert_eq!(g, w, "vm {}", w.vmid);
    }
    assert_eq!(got, want);
}

#[test]
fn minimal_file_gets_every_default() {
    let text = "duration: 1h\nhost: {memory: 16GiB}\nvms: [{vmid: 100, memory: 2048}]\n";
    let got = parse(text, "scenarios/minimal.yaml", Path::new(".")).unwrap();
    let want = Scenario {
        name: "minimal".into(),
        seed: 1,
        duration: secs(3600),
        tick: secs(1),
        sample_interval: secs(10),
        host: HostConfig {
            memory: 16 * GIB,
            reserved: 1536 * MIB,
            page_cache: 512 * MIB,
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
        mom: None,
        qemu_start_target: true,
        policy: None,
        ksm: KsmConfig {
            sysfs: Tunables::default(),
            ksmtuned: Some(KsmtunedConfig {
                variant: Variant::Proxmox,
                conf: Config::default(),
            }),
        },
        vms: vec![vm(100, "vm100", 2 * GIB)],
        actions: Vec::new(),
    };
    assert_eq!(got, want);
}

#[test]
fn count_without_name_and_yaml_anchors() {
    let text = "duration: 1h\nhost: {memory: 16GiB}\nvms:\n  - &base {vmid: 105, count: 2, memory: 1GiB}\n  - {vmid: 101, memory: 1GiB, name: solo}\n";
    let got = parse(text, "x.yaml", Path::new(".")).unwrap();
    let names: Vec<(u32, &str)> = got.vms.iter().map(|v| (v.vmid, v.name.as_str())).collect();
    assert_eq!(names, [(101, "solo"), (105, "vm105"), (106, "vm106")]);
}
