//! ksmtuned: the worked examples of `shared/design/ksmtuned.md` §9 (produced there by
//! running the real scripts), the mawk failure modes, thresholds at their
//! boundaries, configuration files and the replay format. The corpus produced by the
//! real scripts is replayed in `ksmtuned_differential.rs`.

use std::time::Duration;

use memsim::ksmtuned::{
    load_conf, replay, Awk, CommittedMeasure, ConfError, Config, Decision, Ksmtuned, ReplayStats,
    Settings, Status, Variant,
};

const GIB: u64 = 1024 * 1024; // in KiB

fn d(run: u8, pages_to_scan: u32, sleep_millisecs: u32) -> Decision {
    Decision {
        run,
        pages_to_scan,
        sleep_millisecs,
    }
}

fn daemon(variant: Variant, total: u64) -> Ksmtuned {
    Ksmtuned::new(variant, &Config::default(), total)
}

/// The spec's "FED" column: Fedora's script as the spec ran it, with mawk and the
/// kernel's sysfs defaults before the first cycle.
fn fedora_as_measured(total: u64) -> Ksmtuned {
    daemon(Variant::Fedora, total)
        .with_awk(Awk::Mawk)
        .with_boot_sysfs(Decision::KERNEL_DEFAULT)
}

/// §9, one cycle from a freshly started daemon: (case, total, committed, free,
/// thres, PVE out, FED out).
const SPEC_ROWS: [(&str, u64, u64, u64, i64, Decision, Decision); 17] = [
    (
        "64G 55 committed 5 free",
        67_108_864,
        57_671_680,
        5_242_880,
        13_421_772,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "same, realistic MemTotal",
        65_803_000,
        57_671_680,
        5_242_880,
        13_160_600,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "64G 40 committed 20 free",
        67_108_864,
        41_943_040,
        20_971_520,
        13_421_772,
        Decision::KERNEL_DEFAULT,
        Decision::KERNEL_DEFAULT,
    ),
    (
        "64G 52 committed 14 free",
        67_108_864,
        54_525_952,
        14_680_064,
        13_421_772,
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 10,
        },
    ),
    (
        "64G 30 committed 10 free (ZFS ARC)",
        67_108_864,
        31_457_280,
        10_485_760,
        13_421_772,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "committed+thres == total, free == thres",
        67_108_864,
        53_687_092,
        13_421_772,
        13_421_772,
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 10,
        },
    ),
    (
        "total-1, free == thres",
        67_108_864,
        53_687_091,
        13_421_772,
        13_421_772,
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 25,
        },
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 10,
        },
    ),
    (
        "total-1, free == thres+1",
        67_108_864,
        53_687_091,
        13_421_773,
        13_421_772,
        Decision::KERNEL_DEFAULT,
        Decision::KERNEL_DEFAULT,
    ),
    (
        "256G 200 committed 40 free",
        268_435_456,
        209_715_200,
        41_943_040,
        53_687_091,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "256G 210 committed 50 free",
        268_435_456,
        220_200_960,
        52_428_800,
        53_687_091,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "256G 210 committed 60 free",
        268_435_456,
        220_200_960,
        62_914_560,
        53_687_091,
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 10,
        },
        Decision {
            run: 1,
            pages_to_scan: 64,
            sleep_millisecs: 10,
        },
    ),
    (
        "256G 150 committed 100 free",
        268_435_456,
        157_286_400,
        104_857_600,
        53_687_091,
        Decision::KERNEL_DEFAULT,
        Decision::KERNEL_DEFAULT,
    ),
    (
        "16G 13 committed 2 free",
        16_777_216,
        13_631_488,
        2_097_152,
        3_355_443,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 100,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "8G 7 committed 1 free",
        8_388_608,
        7_340_032,
        1_048_576,
        1_677_721,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 200,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 20,
        },
    ),
    (
        "1T 900G committed 150 free",
        1_073_741_824,
        943_718_400,
        157_286_400,
        214_748_364,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
    ),
    (
        "4T 2.2e9 committed (mawk)",
        4_294_967_296,
        2_200_000_000,
        314_572_800,
        858_993_459,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 10,
        },
        Decision::KERNEL_DEFAULT,
    ),
    (
        "tiny 8000 KiB, no VM",
        8_000,
        0,
        1_000,
        2_048,
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 209_715,
        },
        Decision {
            run: 1,
            pages_to_scan: 300,
            sleep_millisecs: 20_971,
        },
    ),
];

#[test]
fn spec_worked_examples_single_cycle() {
    for (case, total, committed, free, thres, pve, fed) in SPEC_ROWS {
        let mut proxmox = daemon(Variant::Proxmox, total);
        assert_eq!(proxmox.thres(), thres, "{case}: thres");
        assert_eq!(proxmox.cycle(free, committed), pve, "{case}: PVE");
        let mut fedora = fedora_as_measured(total);
        assert_eq!(fedora.thres(), thres, "{case}: thres");
        assert_eq!(fedora.cycle(free, committed), fed, "{case}: FED");
    }
}

#[test]
fn spec_other_variants_match_below_2_pow_31() {
    // "Debian and PVE 1.4 give the FED/PVE numbers respectively as long as sums
    // stay below 2^31" (with the kernel's sysfs defaults before the first cycle)
    for (case, total, committed, free, _, pve, fed) in SPEC_ROWS {
        let below = committed < 1 << 31 && free < 1 << 31;
        let start = |variant| daemon(variant, total).with_boot_sysfs(Decision::KERNEL_DEFAULT);
        let pve14 = start(Variant::Proxmox14).cycle(free, committed);
        let debian = start(Variant::Debian).cycle(free, committed);
        let fedora = start(Variant::Fedora).cycle(free, committed);
        let original = start(Variant::Original2010).cycle(free, committed);
        if below {
            assert_eq!(pve14, pve, "{case}: PVE 1.4");
            assert_eq!(debian, fed, "{case}: Debian");
        } else {
            // the 4 TiB row: PVE 1.4's and Debian's daemons exit (mawk)
            assert_eq!(pve14, Decision::KERNEL_DEFAULT, "{case}: PVE 1.4");
            assert_eq!(debian, Decision::KERNEL_DEFAULT, "{case}: Debian");
        }
        // Fedora and the original run with gawk: exact at any size
        let exact = if pve.run == 0 {
            pve
        } else {
            d(1, pve.pages_to_scan, fed_sleep(total))
        };
        assert_eq!(fedora, exact, "{case}");
        assert_eq!(original, fedora, "{case}: original");
        if below {
            assert_eq!(fedora, fed, "{case}: Fedora with gawk");
        }
    }
}

/// `sleep_millisecs` for `KSM_SLEEP_MSEC` 10, as long as the cycle started KSM.
fn fed_sleep(total: u64) -> u32 {
    (10 * 16 * GIB / total).max(10) as u32
}

#[test]
fn spec_sleep_by_memtotal() {
    // (GiB, Proxmox, others)
    let table = [
        (8, 200, 20),
        (16, 100, 10),
        (32, 50, 10),
        (64, 25, 10),
        (128, 12, 10),
        (160, 10, 10),
        (256, 10, 10),
    ];
    for (gib, pve, others) in table {
        for variant in Variant::ALL {
            let expected = if variant.default_sleep_msec() == 100 {
                pve
            } else {
                others
            };
            assert_eq!(
                daemon(variant, gib * GIB).sleep_msec(),
                Some(expected),
                "{variant} {gib} GiB"
            );
        }
    }
    // no upper bound: a 1 GiB Proxmox host gets 1600 ms
    assert_eq!(daemon(Variant::Proxmox, GIB).sleep_msec(), Some(1600));
}

#[test]
fn spec_multi_cycle_trajectory() {
    let total = 64 * GIB;
    let stop = (20 * GIB, 40 * GIB);
    let boost = (5 * GIB, 55 * GIB);
    let decay = (14 * GIB, 52 * GIB);
    let trace = [
        stop, boost, boost, boost, boost, boost, decay, decay, stop, decay,
    ];
    let expected_pve = [
        (0, 100, 20),
        (1, 300, 25),
        (1, 600, 25),
        (1, 900, 25),
        (1, 1200, 25),
        (1, 1250, 25),
        (1, 1200, 25),
        (1, 1150, 25),
        (0, 1150, 25),
        (1, 1100, 25),
    ];
    for variant in Variant::ALL {
        let mut ksmtuned = daemon(variant, total).with_boot_sysfs(Decision::KERNEL_DEFAULT);
        let sleep = if variant.default_sleep_msec() == 100 {
            25
        } else {
            10
        };
        for (n, ((free, committed), (run, pages, pve_sleep))) in
            trace.into_iter().zip(expected_pve).enumerate()
        {
            let sleep = if n == 0 { pve_sleep } else { sleep };
            assert_eq!(
                ksmtuned.cycle(free, committed),
                d(run, pages, sleep),
                "{variant} cycle {}",
                n + 1
            );
        }
        assert_eq!(ksmtuned.npages(), 1100);
    }
}

#[test]
fn spec_decay_from_max_reaches_min_after_24_cycles() {
    let mut ksmtuned = daemon(Variant::Proxmox, 64 * GIB);
    for _ in 0..5 {
        ksmtuned.cycle(5 * GIB, 55 * GIB);
    }
    assert_eq!(ksmtuned.npages(), 1250);
    let pages: Vec<u32> = (0..25)
        .map(|_| ksmtuned.cycle(14 * GIB, 52 * GIB).pages_to_scan)
        .collect();
    assert_eq!(pages[22], 100, "1250 -> 100 after 23 decays");
    assert_eq!(pages[23], 64, "then 50 is clamped to 64");
    assert_eq!(pages[24], 64);
}

#[test]
fn threshold_boundaries() {
    let total = 64 * GIB;
    let thres = 13_421_772;
    let fresh = || daemon(Variant::Fedora, total);
    // stop needs committed + thres < total AND free > thres, both strict
    let stop_committed = total - thres as u64 - 1;
    let free_above = thres as u64 + 1;
    assert_eq!(fresh().cycle(free_above, stop_committed).run, 0);
    // committed + thres == total: runs, and free > thres makes it a decay
    assert_eq!(fresh().cycle(free_above, stop_committed + 1), d(1, 64, 10));
    // free == thres: runs, decay (neither < nor >)
    assert_eq!(fresh().cycle(thres as u64, stop_committed), d(1, 64, 10));
    // free == thres - 1: boost
    assert_eq!(
        fresh().cycle(thres as u64 - 1, stop_committed),
        d(1, 300, 10)
    );
    // KSM_THRES_CONST is a floor: 2 MiB on tiny hosts
    assert_eq!(daemon(Variant::Proxmox, 10_240).thres(), 2048);
    assert_eq!(daemon(Variant::Proxmox, 10_245).thres(), 2049);
}

#[test]
fn stop_keeps_npages_and_the_other_files() {
    let mut ksmtuned = daemon(Variant::Proxmox, 64 * GIB);
    for _ in 0..3 {
        ksmtuned.cycle(5 * GIB, 55 * GIB);
    }
    assert_eq!(ksmtuned.cycle(20 * GIB, 40 * GIB), d(0, 900, 25));
    assert_eq!(ksmtuned.cycle(20 * GIB, 40 * GIB), d(0, 900, 25));
    assert_eq!(ksmtuned.npages(), 900);
    assert_eq!(ksmtuned.cycle(5 * GIB, 55 * GIB), d(1, 1200, 25));
}

#[test]
fn mawk_committed_of_2_pow_31_kills_the_daemon() {
    let total = 4096 * GIB;
    for variant in [Variant::Proxmox14, Variant::Debian] {
        let mut ksmtuned = daemon(variant, total);
        let sleep = ksmtuned.sleep_msec().unwrap() as u32;
        // exact up to 2^31 - 1 KiB
        assert_eq!(ksmtuned.cycle(GIB, (1 << 31) - 1), d(1, 300, sleep));
        assert_eq!(ksmtuned.cycle(GIB, (1 << 31) - 1), d(1, 600, sleep));
        // mawk prints 2^31 as 2.14748e+09: `$[committed + thres]` is a syntax error
        assert_eq!(ksmtuned.cycle(GIB, 1 << 31), d(1, 600, sleep), "{variant}");
        assert_eq!(
            ksmtuned.status(),
            &Status::Exited {
                cycle: 3,
                error: "2.14748e+09: arithmetic syntax error (mawk's text for 2147483648)"
                    .to_owned()
            }
        );
        // frozen: even a cycle that would stop KSM leaves it running
        for _ in 0..3 {
            assert_eq!(ksmtuned.cycle(2000 * GIB, 0), d(1, 600, sleep));
        }
        assert_eq!(ksmtuned.npages(), 600);
    }
    // dying in the first cycle leaves what was there at boot: Debian's ksm.service
    // had set run=1, Proxmox has no such unit
    assert_eq!(
        daemon(Variant::Debian, total).cycle(GIB, 1 << 31),
        d(1, 100, 20)
    );
    assert_eq!(
        daemon(Variant::Proxmox14, total).cycle(GIB, 1 << 31),
        Decision::KERNEL_DEFAULT
    );
}

#[test]
fn exact_printing_never_kills() {
    // Proxmox 1.5 prints with printf("%.0f"); gawk prints integers exactly
    let total = 16_384 * GIB;
    let mut proxmox = daemon(Variant::Proxmox, total);
    let mut fedora = daemon(Variant::Fedora, total);
    let mut original = daemon(Variant::Original2010, total);
    for ksmtuned in [&mut proxmox, &mut fedora, &mut original] {
        assert_eq!(ksmtuned.cycle(GIB, 15_000 * GIB), d(1, 300, 10));
        // 8 TiB free, 1 TiB committed: stop
        assert_eq!(ksmtuned.cycle(8192 * GIB, 1024 * GIB), d(0, 300, 10));
        assert_eq!(ksmtuned.status(), &Status::Running);
    }
    // the same Fedora script on a mawk system dies
    let mut fedora_mawk = daemon(Variant::Fedora, total).with_awk(Awk::Mawk);
    fedora_mawk.cycle(GIB, 15_000 * GIB);
    assert!(matches!(
        fedora_mawk.status(),
        Status::Exited { cycle: 1, .. }
    ));
}

#[test]
fn mawk_free_of_2_pow_31_never_stops_and_decays() {
    // 8 TiB host, 3 TiB free+cache, little committed: would stop, but `[` fails on
    // mawk's 3.29853e+09 so KSM keeps running, and the boost test fails too: decay
    let total = 8192 * GIB;
    let free = 3072 * GIB;
    for variant in [Variant::Proxmox14, Variant::Debian] {
        let mut ksmtuned = daemon(variant, total);
        ksmtuned.cycle(GIB, 10 * GIB); // free below thres: boost to 300
        let pages: Vec<u32> = (0..6)
            .map(|_| ksmtuned.cycle(free, 10 * GIB).pages_to_scan)
            .collect();
        assert_eq!(pages, [250, 200, 150, 100, 64, 64], "{variant}");
        assert_eq!(ksmtuned.sysfs().run, 1);
        assert_eq!(ksmtuned.status(), &Status::Running);
        // just below 2^31 it stops as it should
        assert_eq!(ksmtuned.cycle((1 << 31) - 1, 10 * GIB).run, 0);
    }
    for variant in [Variant::Proxmox, Variant::Fedora] {
        assert_eq!(daemon(variant, total).cycle(free, 10 * GIB).run, 0);
    }
}

#[test]
fn kernel_refuses_out_of_range_values() {
    // npages may go negative with a negative KSM_NPAGES_MIN: `echo -100 >
    // pages_to_scan` fails with EINVAL and the file keeps its value
    let conf = Config::parse("KSM_NPAGES_MIN=-100\nKSM_NPAGES_DECAY=-80\n").unwrap();
    let mut ksmtuned = Ksmtuned::new(Variant::Proxmox, &conf, 64 * GIB);
    let decay = (14 * GIB, 52 * GIB);
    assert_eq!(ksmtuned.cycle(decay.0, decay.1), d(1, 100, 25));
    assert_eq!(ksmtuned.npages(), -80);
    assert_eq!(ksmtuned.cycle(decay.0, decay.1), d(1, 100, 25));
    assert_eq!(ksmtuned.npages(), -100);
    assert_eq!(ksmtuned.cycle(5 * GIB, 55 * GIB), d(1, 200, 25));
    // a sleep beyond 2^32 - 1 ms is refused as well
    let conf = Config::parse("KSM_SLEEP_MSEC=100000000").unwrap();
    let mut ksmtuned = Ksmtuned::new(Variant::Fedora, &conf, 8000);
    assert_eq!(ksmtuned.sleep_msec(), Some(209_715_200_000));
    assert_eq!(ksmtuned.cycle(1000, 0), d(1, 300, 20));
}

#[test]
fn memtotal_zero_leaves_sleep_unset() {
    // `$[… / total]` fails at start-up; the script goes on with `sleep` unset, and
    // every start writes an empty line to sleep_millisecs, which the kernel refuses
    let mut ksmtuned = daemon(Variant::Proxmox, 0);
    assert_eq!(ksmtuned.sleep_msec(), None);
    assert_eq!(ksmtuned.thres(), 2048);
    assert_eq!(ksmtuned.cycle(0, 0), d(1, 300, 20));
    assert_eq!(ksmtuned.cycle(5000, 0), d(1, 250, 20));
}

#[test]
fn bash_wraps_64_bit_arithmetic() {
    // npages + boost overflows: bash wraps to a negative number, which the
    // minimum clamp catches
    let conf = Config::parse("KSM_NPAGES_BOOST=9223372036854775807").unwrap();
    let mut ksmtuned = Ksmtuned::new(Variant::Fedora, &conf, 64 * GIB);
    assert_eq!(ksmtuned.cycle(GIB, 60 * GIB).pages_to_scan, 1250);
    assert_eq!(ksmtuned.cycle(GIB, 60 * GIB).pages_to_scan, 64);
    // a MemTotal beyond 2^63 - 1 is fine for awk but not for `[`: never a stop
    let mut huge = daemon(Variant::Proxmox, u64::MAX);
    assert_eq!(huge.thres(), 2048, "total * 20 wraps negative");
    assert_eq!(huge.sleep_msec(), Some(10));
    assert_eq!(huge.cycle(1 << 40, 0).run, 1);
}

#[test]
fn crossed_limits_test_the_minimum_first() {
    let conf = Config::parse("KSM_NPAGES_MIN=100\nKSM_NPAGES_MAX=50").unwrap();
    let mut ksmtuned = Ksmtuned::new(Variant::Proxmox, &conf, 64 * GIB);
    let boost = (5 * GIB, 55 * GIB);
    let decay = (14 * GIB, 52 * GIB);
    assert_eq!(ksmtuned.cycle(boost.0, boost.1).pages_to_scan, 50); // 300 > max
    assert_eq!(ksmtuned.cycle(decay.0, decay.1).pages_to_scan, 100); // 0 < min
    assert_eq!(ksmtuned.cycle(decay.0, decay.1).pages_to_scan, 100); // 50 < min
}

#[test]
fn empty_pidfile_never_starts() {
    let conf = Config::parse("PIDFILE=\n").unwrap();
    for variant in Variant::ALL {
        let mut ksmtuned = Ksmtuned::new(variant, &conf, 64 * GIB);
        assert_eq!(ksmtuned.status(), &Status::NotStarted);
        for _ in 0..3 {
            assert_eq!(ksmtuned.cycle(GIB, 60 * GIB), variant.boot_sysfs());
        }
    }
    // a path starts as usual
    let conf = Config::parse("PIDFILE=/run/ksmtune.pid\n").unwrap();
    assert_eq!(
        Ksmtuned::new(Variant::Proxmox, &conf, 64 * GIB).status(),
        &Status::Running
    );
}

#[test]
fn variant_facts() {
    use CommittedMeasure::*;
    let facts = [
        (Variant::Proxmox, 100, Pss, Awk::Mawk, 0, false),
        (Variant::Proxmox14, 100, Vsz, Awk::Mawk, 0, false),
        (Variant::Fedora, 10, Rss, Awk::Gawk, 1, true),
        (Variant::Debian, 10, Rss, Awk::Mawk, 1, true),
        (Variant::Original2010, 10, Rss, Awk::Gawk, 1, true),
    ];
    for (variant, sleep, measure, awk, boot_run, usr1) in facts {
        assert_eq!(variant.default_sleep_msec(), sleep);
        assert_eq!(variant.committed_measure(), measure);
        assert_eq!(variant.awk(), awk);
        assert_eq!(variant.boot_sysfs(), d(boot_run, 100, 20));
        assert_eq!(variant.usr1_wakes_early(), usr1);
        let ksmtuned = daemon(variant, 64 * GIB);
        assert_eq!(ksmtuned.monitor_interval(), Duration::from_secs(60));
        assert_eq!(ksmtuned.committed_measure(), variant.committed_measure());
    }
}

#[test]
fn ps_metric_only_on_proxmox() {
    let conf = Config::parse("KSM_PS_METRIC=rsz").unwrap();
    let measure = |variant| Ksmtuned::new(variant, &conf, GIB).committed_measure();
    assert_eq!(measure(Variant::Proxmox), CommittedMeasure::Rss);
    assert_eq!(measure(Variant::Proxmox14), CommittedMeasure::Vsz);
    assert_eq!(measure(Variant::Fedora), CommittedMeasure::Rss);
    let conf = Config::parse("KSM_PS_METRIC=\"uss\"").unwrap();
    assert_eq!(
        Ksmtuned::new(Variant::Proxmox, &conf, GIB).committed_measure(),
        CommittedMeasure::Column("uss".to_owned())
    );
}

// ---- configuration files ----

#[test]
fn shipped_config_files_are_all_defaults() {
    // Proxmox 1.5-1's /etc/ksmtuned.conf: everything commented out
    let shipped = "# Configuration file for ksmtuned.\n\n\
        # How long ksmtuned should sleep between tuning adjustments\n\
        # KSM_MONITOR_INTERVAL=60\n\n\
        # Millisecond sleep between ksm scans for 16Gb server.\n\
        # Smaller servers sleep more, bigger sleep less.\n\
        # KSM_SLEEP_MSEC=100\n\n\
        # KSM_NPAGES_BOOST=300\n# KSM_NPAGES_DECAY=-50\n\
        # KSM_NPAGES_MIN=64\n# KSM_NPAGES_MAX=1250\n\n\
        # KSM_THRES_COEF=20\n# KSM_THRES_CONST=2048\n\n\
        # KSM_PS_METRIC=pss\n\n\
        # LOGFILE=/var/log/ksmtuned\n# DEBUG=1\n";
    assert_eq!(Config::parse(shipped), Ok(Config::default()));
    for variant in Variant::ALL {
        let s = Settings::defaults(variant);
        assert_eq!(
            (s.npages_boost, s.npages_decay, s.npages_min, s.npages_max),
            (300, -50, 64, 1250)
        );
        assert_eq!((s.thres_coef, s.thres_const), (20, 2048));
        assert_eq!(s.sleep_msec, variant.default_sleep_msec());
        assert_eq!(s.monitor_interval, Duration::from_secs(60));
        let metric = (variant == Variant::Proxmox).then(|| "pss".to_owned());
        assert_eq!(s.ps_metric, metric);
    }
}

#[test]
fn config_reads_like_bash_sources_it() {
    let text = "KSM_MONITOR_INTERVAL=30\n\
        export KSM_NPAGES_BOOST=\"600\" KSM_NPAGES_MAX='5000'  # raised\n\
        KSM_NPAGES_DECAY=-100; KSM_NPAGES_MIN=+32\n\
        \tKSM_THRES_COEF=25 KSM_THRES_CONST=4096;\n\
        KSM_SLEEP_MSEC=50\n\
        KSM_SLEEP_MSEC=20   # the last assignment wins\n\
        DEBUG=1 LOGFILE=/var/log/ksmtuned\n\
        KSM_NPAGE_BOOST=900\n\
        export KSM_NPAGES_MIN\n\
        KSM_PS_METRIC=rsz=\n";
    let conf = Config::parse(text).unwrap();
    let settings = Settings::new(Variant::Proxmox, &conf);
    assert_eq!(settings.monitor_interval, Duration::from_secs(30));
    assert_eq!(
        (
            settings.npages_boost,
            settings.npages_decay,
            settings.npages_min,
            settings.npages_max
        ),
        (600, -100, 32, 5000)
    );
    assert_eq!((settings.thres_coef, settings.thres_const), (25, 4096));
    assert_eq!(settings.sleep_msec, 20);
    assert_eq!(settings.ps_metric.as_deref(), Some("rsz="));
    assert_eq!(conf.debug.as_deref(), Some("1"));
    assert_eq!(conf.logfile.as_deref(), Some("/var/log/ksmtuned"));
    assert_eq!(conf.unknown, [(8, "KSM_NPAGE_BOOST".to_owned())]);
}

#[test]
fn empty_assignments_mean_the_default() {
    let conf = Config::parse("KSM_NPAGES_BOOST=\nKSM_SLEEP_MSEC=''\nKSM_PS_METRIC=\"\"").unwrap();
    assert_eq!(
        Settings::new(Variant::Proxmox, &conf),
        Settings::defaults(Variant::Proxmox)
    );
    // except PIDFILE, read with ${PIDFILE-…}
    assert_eq!(
        Config::parse("PIDFILE=''").unwrap().pidfile.as_deref(),
        Some("")
    );
}

#[test]
fn monitor_interval_as_sleep_reads_it() {
    let interval = |text: &str| {
        Config::parse(&format!("KSM_MONITOR_INTERVAL={text}"))
            .map(|c| Settings::new(Variant::Fedora, &c).monitor_interval)
    };
    assert_eq!(interval("90"), Ok(Duration::from_secs(90)));
    assert_eq!(interval("1.5"), Ok(Duration::from_millis(1500)));
    assert_eq!(interval(".25s"), Ok(Duration::from_millis(250)));
    assert_eq!(interval("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(interval("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(interval("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(interval("0"), Ok(Duration::ZERO));
    assert_eq!(interval("0.0000000019"), Ok(Duration::from_nanos(1)));
    for bad in [
        "-5",
        "1e3",
        "1.5x",
        "m",
        ".",
        "1 2",
        "99999999999999999999999d",
    ] {
        assert!(interval(&format!("'{bad}'")).is_err(), "{bad}");
    }
}

#[test]
fn config_problems_name_line_and_key() {
    let text = "KSM_NPAGES_BOOST=abc\n\
        KSM_SLEEP_MSEC=010\n\
        KSM_THRES_COEF=20\r\n\
        KSM_NPAGES_MAX=$KSM_NPAGES_BOOST\n\
        echo hello\n\
        KSM_NPAGES_MIN='64\n\
        KSM_THRES_CONST=99999999999999999999\n\
        KSM_NPAGES_DECAY=-0\n\
        KSM_MONITOR_INTERVAL=-1\n\
        KSM_NPAGES_MIN = 64\n";
    let problems = Config::parse(text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let expected_starts = [
        "line 1: KSM_NPAGES_BOOST: \"abc\" is not a decimal integer",
        "line 2: KSM_SLEEP_MSEC: \"010\" has a leading zero",
        "line 3: KSM_THRES_COEF: \"20\\r\" ends in a carriage return",
        "line 4: the expansion `$`: not modelled",
        "line 5: `echo` is a command, not an assignment: not modelled",
        "line 6: a quote continued on the next line: not modelled",
        "line 7: KSM_THRES_CONST: \"99999999999999999999\" is beyond bash's 64-bit integers",
        "line 8: KSM_NPAGES_DECAY: \"-0\" is not modelled",
        "line 9: KSM_MONITOR_INTERVAL: \"-1\": `sleep` rejects a negative interval",
        "line 10: `KSM_NPAGES_MIN` is a command, not an assignment",
    ];
    assert_eq!(shown.len(), expected_starts.len(), "{shown:#?}");
    for (line, start) in shown.iter().zip(expected_starts) {
        assert!(
            line.starts_with(start),
            "{line:?} should start with {start:?}"
        );
    }
}

#[test]
fn later_assignment_repairs_an_earlier_bad_value() {
    // bash only cares about the value when the defaults are applied
    let conf = Config::parse("KSM_NPAGES_BOOST=abc\nKSM_NPAGES_BOOST=400\n").unwrap();
    assert_eq!(conf.npages_boost, Some(400));
}

#[test]
fn load_conf_reports_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ksmtuned.conf");
    std::fs::write(&path, "# mine\nKSM_NPAGES_BOOST=500\nKSM_NPAGES_MAX=lots\n").unwrap();
    let err = load_conf(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: KSM_NPAGES_MAX: \"lots\" is not a decimal integer (bash would evaluate \
             it as an arithmetic expression or fail; not modelled)",
            path.display()
        )
    );
    assert!(matches!(&err, ConfError::Invalid { problems, .. } if problems.len() == 1));
    std::fs::write(&path, "KSM_NPAGES_BOOST=500\n").unwrap();
    assert_eq!(load_conf(&path).unwrap().npages_boost, Some(500));
    let missing = dir.path().join("absent.conf");
    let err = load_conf(&missing).unwrap_err();
    assert!(matches!(err, ConfError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with(&format!("{}: ", missing.display())));
}

// ---- replay ----

fn run(variant: Variant, conf: Option<Config>, input: &str) -> (String, String, ReplayStats) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stats = replay(variant, conf, input.as_bytes(), &mut out, &mut err).unwrap();
    let text = |bytes| String::from_utf8(bytes).unwrap();
    (text(out), text(err), stats)
}

#[test]
fn replay_prints_one_line_per_cycle() {
    let input = "# 64 GiB host\n\
        67108864 20971520 41943040\n\
        \n\
        67108864 5242880 57671680\n\
           # indented comment\n\
        67108864 5242880\t57671680  \n";
    let (out, err, stats) = run(Variant::Proxmox, None, input);
    assert_eq!(out, "0 100 20\n1 300 25\n1 600 25\n");
    assert_eq!(err, "");
    assert_eq!(
        stats,
        ReplayStats {
            cycles: 3,
            lines_bad: 0,
            exited_on_line: None
        }
    );
    assert_eq!(
        run(Variant::Proxmox, None, ""),
        (String::new(), String::new(), ReplayStats::default())
    );
}

#[test]
fn replay_reports_malformed_lines_and_goes_on() {
    let input = "67108864 5242880 57671680\n\
        67108864 5242880\n\
        67108864 -5 57671680\n\
        67108864 5.5 57671680\n\
        67108864 5242880 18446744073709551616\n\
        total free committed\n\
        67108864 5242880 57671680 1\n\
        67108864 5242880 57671680\n";
    let mut bytes = input.as_bytes().to_vec();
    bytes.extend_from_slice(b"\xff\xfe 1 2\n67108864 5242880 57671680\n");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stats = replay(Variant::Fedora, None, &bytes[..], &mut out, &mut err).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1 300 10\n1 600 10\n1 900 10\n"
    );
    let err = String::from_utf8(err).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 7, "{err}");
    assert_eq!(
        lines[..6],
        [
            "line 2: expected 3 fields `total_kib free_kib committed_kib`, got 2",
            "line 3: free_kib: `-5` is not a non-negative integer (KiB)",
            "line 4: free_kib: `5.5` is not a non-negative integer (KiB)",
            "line 5: committed_kib: `18446744073709551616` is beyond 2^64 - 1",
            "line 6: total_kib: `total` is not a non-negative integer (KiB)",
            "line 7: expected 3 fields `total_kib free_kib committed_kib`, got 4",
        ]
    );
    assert!(
        lines[6].starts_with("line 9: not valid UTF-8"),
        "{}",
        lines[6]
    );
    assert_eq!(stats.cycles, 3);
    assert_eq!(stats.lines_bad, 7);
}

#[test]
fn replay_freezes_after_the_daemon_exits() {
    // Debian on a 4 TiB host: a committed sum of 2^31 KiB kills the daemon
    let input = "4294967296 1048576 2147483647\n\
        4294967296 1048576 2147483648\n\
        4294967296 1000000000 10\n\
        4294967296 1048576 2147483647\n";
    let (out, err, stats) = run(Variant::Debian, None, input);
    assert_eq!(out, "1 300 10\n1 300 10\n1 300 10\n1 300 10\n");
    assert_eq!(
        err,
        "line 2: ksmtuned exited: 2.14748e+09: arithmetic syntax error (mawk's text for \
         2147483648); sysfs stays at 1 300 10\n"
    );
    assert_eq!(
        stats,
        ReplayStats {
            cycles: 4,
            lines_bad: 0,
            exited_on_line: Some(2)
        }
    );
}

#[test]
fn replay_takes_memtotal_from_the_first_cycle_only() {
    // 64 GiB at start-up; the later 256 GiB is ignored like by the real daemon
    let input = "67108864 5242880 57671680\n268435456 5242880 57671680\n";
    let (out, _, _) = run(Variant::Proxmox, None, input);
    assert_eq!(out, "1 300 25\n1 600 25\n");
    // a malformed first line does not start the daemon
    let (out, _, _) = run(Variant::Proxmox, None, "x\n268435456 5242880 257671680\n");
    assert_eq!(out, "1 300 10\n");
}

#[test]
fn replay_uses_the_configuration() {
    let conf = Config::parse("KSM_NPAGES_BOOST=1000\nKSM_SLEEP_MSEC=40").unwrap();
    let input = "67108864 5242880 57671680\n67108864 5242880 57671680\n";
    let (out, _, _) = run(Variant::Proxmox, Some(conf), input);
    assert_eq!(out, "1 1000 10\n1 1250 10\n");
}

// ---- robustness ----

/// Seeded random configuration files and traces: parsing and replay report
/// problems, never panic; every valid cycle is answered.
#[test]
fn random_input_never_panics() {
    use rand::seq::IndexedRandom;
    use rand::{Rng, SeedableRng};
    let pieces = [
        "KSM_NPAGES_BOOST",
        "KSM_MONITOR_INTERVAL",
        "PIDFILE",
        "KSM_SLEEP_MSEC",
        "=",
        "='",
        "\"",
        "'",
        "\\",
        "#",
        ";",
        " ",
        "\t",
        "\r",
        "\n",
        "$",
        "`",
        "export ",
        "-",
        "+",
        "0",
        "9",
        "99999999999999999999",
        ".",
        "s",
        "d",
        "é",
        "(",
        "=x",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6b5e);
    for _ in 0..3000 {
        let text: String = (0..rng.random_range(0..30))
            .map(|_| *pieces.choose(&mut rng).unwrap())
            .collect();
        let conf = Config::parse(&text).unwrap_or_default();
        let variant = *Variant::ALL.choose(&mut rng).unwrap();
        let numbers = [
            "0",
            "1",
            "2147483648",
            "18446744073709551615",
            "x",
            "-1",
            "",
            "#",
        ];
        let trace: String = (0..rng.random_range(0..8))
            .map(|_| {
                let fields: Vec<&str> = (0..rng.random_range(0..5))
                    .map(|_| *numbers.choose(&mut rng).unwrap())
                    .collect();
                fields.join(" ") + "\n"
            })
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let stats = replay(variant, Some(conf), trace.as_bytes(), &mut out, &mut err).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), stats.cycles);
    }
    // extreme settings and sizes: bash's wrapping arithmetic, no overflow panics
    let extremes = [i64::MIN, -1, 0, 1, 100, i64::MAX];
    let sizes = [0, 1, 2048, 1 << 31, 1 << 53, 1 << 63, u64::MAX];
    for _ in 0..3000 {
        let mut pick = || Some(*extremes.choose(&mut rng).unwrap());
        let conf = Config {
            npages_boost: pick(),
            npages_decay: pick(),
            npages_min: pick(),
            npages_max: pick(),
            sleep_msec: pick(),
            thres_coef: pick(),
            thres_const: pick(),
            ..Config::default()
        };
        let variant = *Variant::ALL.choose(&mut rng).unwrap();
        let mut ksmtuned = Ksmtuned::new(variant, &conf, *sizes.choose(&mut rng).unwrap());
        for _ in 0..5 {
            let free = *sizes.choose(&mut rng).unwrap();
            ksmtuned.cycle(free, rng.random());
        }
    }
}
