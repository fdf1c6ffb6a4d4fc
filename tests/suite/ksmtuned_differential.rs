//! Differential tests against the real ksmtuned scripts.
//!
//! * `real_script_corpus_matches_exactly` (always runs) replays
//!   `tests/data/ksmtuned_real_cases.jsonl`. Each line is one run of a real script:
//!   `variant`, the `awk` it ran with, the sysfs values at `boot`, the `conf` file
//!   text (or null), the `trace` (replay input) and `expect`, the sysfs values the
//!   script left after each cycle, as `tests/tools/ksmtuned_driver.sh` recorded them.
//!   memsim must produce exactly `expect`, through [`Ksmtuned`] and, where awk and
//!   boot values are the variant's own, through `replay` too. The cases are the
//!   named ones below (the design notes' worked examples and the corner cases) and
//!   random traces around the thresholds, the mawk limit and odd configurations,
//!   each run by every variant with its own awk, and by Fedora and the original
//!   with mawk as well.
//! * `live_real_script_differential` (ignored; opt-in) runs cases through the real
//!   scripts and compares with memsim:
//!
//!   ```text
//!   apt-get download ksmtuned          # Debian's package
//!   git clone https://github.com/proxmox/ksm-control-daemon /tmp/pve-ksm
//!   git clone https://github.com/ksmtuned/ksmtuned /tmp/ksmtuned
//!   tests/tools/ksmtuned_scripts.sh /tmp/ksmtuned-scripts /tmp/pve-ksm /tmp/ksmtuned \
//!       ksmtuned_4.20150326+b1_amd64.deb
//!   MEMSIM_KSMTUNED_SCRIPTS=/tmp/ksmtuned-scripts \
//!       cargo test --test suite ksmtuned_differential:: -- --ignored --nocapture
//!   ```
//!
//!   It needs bash, mawk and gawk (`MEMSIM_MAWK` and `MEMSIM_GAWK` name other
//!   binaries). `MEMSIM_DIFF_SEED` and `MEMSIM_DIFF_CASES` pick the random cases (the
//!   seed is printed); with `MEMSIM_REGEN_KSMTUNED_CORPUS=1` it uses the corpus seed
//!   and rewrites the corpus file from the scripts' answers.

use std::io::Write;
use std::process::{Command, Stdio};

use memsim::ksmtuned::{replay, Awk, Config, Decision, Ksmtuned, Status, Variant};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/ksmtuned_real_cases.jsonl"
);
const DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/tools/ksmtuned_driver.sh"
);
const CORPUS_SEED: u64 = 0x6b5e_7ed0;
const CORPUS_RANDOM_CASES: usize = 120;

const GIB: u64 = 1024 * 1024; // in KiB

/// One run of one script.
struct Run {
    id: String,
    variant: Variant,
    awk: Awk,
    boot: Decision,
    conf: Option<String>,
    trace: String,
    /// The real script's output, when known.
    expect: Option<String>,
}

fn awk_name(awk: Awk) -> &'static str {
    match awk {
        Awk::Mawk => "mawk",
        Awk::Gawk => "gawk",
    }
}

impl Run {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "variant": self.variant.name(),
            "awk": awk_name(self.awk),
            "boot": self.boot.to_string(),
            "conf": self.conf,
            "trace": self.trace,
            "expect": self.expect,
        })
    }

    fn from_json(value: &Value) -> Run {
        let text = |key: &str| {
            value[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {value}"))
        };
        let boot: Vec<u32> = text("boot")
            .split(' ')
            .map(|n| n.parse().expect("boot value"))
            .collect();
        Run {
            id: text("id").to_owned(),
            variant: text("variant").parse().expect("variant"),
            awk: match text("awk") {
                "mawk" => Awk::Mawk,
                "gawk" => Awk::Gawk,
                other => panic!("awk {other}"),
            },
            boot: Decision {
                run: boot[0] as u8,
                pages_to_scan: boot[1],
                sleep_millisecs: boot[2],
            },
            conf: value["conf"].as_str().map(str::to_owned),
            trace: text("trace").to_owned(),
            expect: value["expect"].as_str().map(str::to_owned),
        }
    }

    fn config(&self) -> Option<Config> {
        self.conf
            .as_deref()
            .map(|text| Config::parse(text).unwrap_or_else(|e| panic!("{}: {e:?}", self.id)))
    }

    /// memsim's answer through the daemon API, in replay's output format, and
    /// whether the daemon exited.
    fn memsim(&self) -> (String, bool) {
        let conf = self.config().unwrap_or_default();
        let mut daemon: Option<Ksmtuned> = None;
        let mut out = String::new();
        for line in self.trace.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n: Vec<u64> = line
                .split_whitespace()
                .map(|w| w.parse().expect("trace value"))
                .collect();
            let daemon = daemon.get_or_insert_with(|| {
                Ksmtuned::new(self.variant, &conf, n[0])
                    .with_awk(self.awk)
                    .with_boot_sysfs(self.boot)
            });
            out.push_str(&format!("{}\n", daemon.cycle(n[1], n[2])));
        }
        let exited = daemon.is_some_and(|d| matches!(d.status(), Status::Exited { .. }));
        (out, exited)
    }

    /// memsim's answer through `replay`, when the run uses the variant's own awk and
    /// boot values; checks that only the daemon's exit is reported.
    fn replayed(&self) -> Option<String> {
        if self.awk != self.variant.awk() || self.boot != self.variant.boot_sysfs() {
            return None;
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let stats = replay(
            self.variant,
            self.config(),
            self.trace.as_bytes(),
            &mut out,
            &mut err,
        )
        .expect("in-memory I/O");
        let err = String::from_utf8(err).expect("UTF-8");
        assert_eq!(stats.lines_bad, 0, "{}: {err}", self.id);
        assert_eq!(
            err.lines().count(),
            usize::from(stats.exited_on_line.is_some())
        );
        Some(String::from_utf8(out).expect("UTF-8"))
    }
}

/// Descriptions of the runs where memsim differs from `expect`.
fn differences(runs: &[Run]) -> Vec<String> {
    let mut diff = Vec::new();
    for run in runs {
        let expect = run.expect.as_deref().expect("an expected answer");
        let (got, _) = run.memsim();
        if got != expect {
            diff.push(format!(
                "{} {} ({}, boot {}), conf {:?}\ntrace:\n{}real:\n{expect}memsim:\n{got}",
                run.id,
                run.variant,
                awk_name(run.awk),
                run.boot,
                run.conf,
                run.trace
            ));
        } else if let Some(replayed) = run.replayed() {
            if replayed != expect {
                diff.push(format!(
                    "{} {}: replay printed\n{replayed}",
                    run.id, run.variant
                ));
            }
        }
    }
    diff
}

#[test]
fn real_script_corpus_matches_exactly() {
    let text = std::fs::read_to_string(CORPUS).expect("corpus file");
    let runs: Vec<Run> = text
        .lines()
        .map(|line| Run::from_json(&serde_json::from_str(line).expect("a JSON line")))
        .collect();
    assert!(
        runs.len() >= CORPUS_RANDOM_CASES * COMBOS.len(),
        "{} runs",
        runs.len()
    );
    for variant in Variant::ALL {
        assert!(runs.iter().any(|r| r.variant == variant));
    }
    // the corpus covers the failure modes
    let exited = runs.iter().filter(|run| run.memsim().1).count();
    assert!(exited >= 20, "{exited} runs in which the daemon exits");
    let diff = differences(&runs);
    assert!(
        diff.is_empty(),
        "{} of {} runs differ from the real scripts:\n{}",
        diff.len(),
        runs.len(),
        diff[..diff.len().min(5)].join("\n")
    );
}

// ---- cases ----

/// Every variant with the awk of its distribution, and Fedora's and the original's
/// scripts on a mawk system too (how the design notes' "FED" column was produced).
const COMBOS: [(Variant, Awk); 7] = [
    (Variant::Proxmox, Awk::Mawk),
    (Variant::Proxmox14, Awk::Mawk),
    (Variant::Fedora, Awk::Gawk),
    (Variant::Debian, Awk::Mawk),
    (Variant::Original2010, Awk::Gawk),
    (Variant::Fedora, Awk::Mawk),
    (Variant::Original2010, Awk::Mawk),
];

/// A trace and the configuration it runs with; every combo runs it.
struct Case {
    id: String,
    conf: Option<&'static str>,
    cycles: Vec<[u64; 3]>,
}

fn runs_of(cases: Vec<Case>) -> Vec<Run> {
    let mut runs = Vec::new();
    for case in cases {
        let trace: String = case
            .cycles
            .iter()
            .map(|[t, f, c]| format!("{t} {f} {c}\n"))
            .collect();
        for (variant, awk) in COMBOS {
            runs.push(Run {
                id: case.id.clone(),
                variant,
                awk,
                boot: variant.boot_sysfs(),
                conf: case.conf.map(str::to_owned),
                trace: format!("# {}\n{trace}", case.id),
                expect: None,
            });
        }
    }
    runs
}

const CONFS: [&str; 18] = [
    "KSM_NPAGES_BOOST=1000\nKSM_NPAGES_MAX=5000\n",
    "KSM_THRES_COEF=50\nKSM_THRES_CONST=4096\n",
    "KSM_NPAGES_MIN=100\nKSM_NPAGES_MAX=50\n",
    "KSM_NPAGES_MIN=-100\nKSM_NPAGES_DECAY=-80\n",
    "KSM_SLEEP_MSEC=100000000\n",
    "KSM_SLEEP_MSEC=-5\n",
    "KSM_NPAGES_DECAY=50\n",
    "KSM_THRES_COEF=0\nKSM_THRES_CONST=0\n",
    "# tuned\nexport KSM_NPAGES_BOOST=\"600\"; KSM_NPAGES_DECAY='-100' # faster decay\n",
    "KSM_THRES_COEF=200\n",
    "KSM_NPAGES_BOOST=9223372036854775807\n",
    "KSM_THRES_COEF=9223372036854775807\n",
    "KSM_PS_METRIC=rsz\nKSM_MONITOR_INTERVAL=10\n",
    "KSM_NPAGES_BOOST=\nKSM_SLEEP_MSEC=\n",
    "KSM_SLEEP_MSEC=1\nKSM_NPAGES_MAX=4294967296\nKSM_NPAGES_BOOST=2000000000\n",
    "PIDFILE=\n",
    "DEBUG=1\n",
    "KSM_THRES_CONST=+4096 KSM_NPAGES_MIN=\" 10\"\n",
];

const TOTALS: [u64; 13] = [
    8_000,
    10_240,
    GIB,
    8 * GIB,
    16 * GIB,
    65_803_000,
    64 * GIB,
    128 * GIB,
    256 * GIB,
    1024 * GIB,
    4096 * GIB,
    16_384 * GIB,
    3 << 31,
];

fn named_cases() -> Vec<Case> {
    let rows: [(u64, u64, u64); 17] = [
        (67_108_864, 57_671_680, 5_242_880),
        (65_803_000, 57_671_680, 5_242_880),
        (67_108_864, 41_943_040, 20_971_520),
        (67_108_864, 54_525_952, 14_680_064),
        (67_108_864, 31_457_280, 10_485_760),
        (67_108_864, 53_687_092, 13_421_772),
        (67_108_864, 53_687_091, 13_421_772),
        (67_108_864, 53_687_091, 13_421_773),
        (268_435_456, 209_715_200, 41_943_040),
        (268_435_456, 220_200_960, 52_428_800),
        (268_435_456, 220_200_960, 62_914_560),
        (268_435_456, 157_286_400, 104_857_600),
        (16_777_216, 13_631_488, 2_097_152),
        (8_388_608, 7_340_032, 1_048_576),
        (1_073_741_824, 943_718_400, 157_286_400),
        (4_294_967_296, 2_200_000_000, 314_572_800),
        (8_000, 0, 1_000),
    ];
    let mut cases: Vec<Case> = rows
        .iter()
        .enumerate()
        .map(|(n, &(total, committed, free))| Case {
            id: format!("spec-row-{}", n + 1),
            conf: None,
            cycles: vec![[total, free, committed]],
        })
        .collect();
    let t = 64 * GIB;
    let (stop, boost, decay) = (
        [t, 20 * GIB, 40 * GIB],
        [t, 5 * GIB, 55 * GIB],
        [t, 14 * GIB, 52 * GIB],
    );
    let mut trajectory = vec![
        stop, boost, boost, boost, boost, boost, decay, decay, stop, decay,
    ];
    // a later MemTotal is ignored
    trajectory.push([256 * GIB, 14 * GIB, 52 * GIB]);
    cases.push(Case {
        id: "spec-trajectory".into(),
        conf: None,
        cycles: trajectory,
    });
    let t4 = 4096 * GIB;
    cases.push(Case {
        id: "mawk-committed-2^31".into(),
        conf: None,
        cycles: vec![
            [t4, GIB, (1 << 31) - 1],
            [t4, GIB, (1 << 31) - 1],
            [t4, GIB, 1 << 31],
            [t4, 1_000_000_000, 10],
            [t4, GIB, (1 << 31) - 1],
        ],
    });
    let t8 = 8192 * GIB;
    cases.push(Case {
        id: "mawk-free-2^31".into(),
        conf: None,
        cycles: [[t8, GIB, 10 * GIB]]
            .into_iter()
            .chain(std::iter::repeat_n([t8, 3072 * GIB, 10 * GIB], 6))
            .chain([[t8, (1 << 31) - 1, 10 * GIB], [t8, 1 << 31, 10 * GIB]])
            .collect(),
    });
    cases.push(Case {
        id: "memtotal-0".into(),
        conf: None,
        cycles: vec![[0, 0, 0], [0, 5000, 0], [0, 0, 7]],
    });
    cases.push(Case {
        id: "memtotal-beyond-i64".into(),
        conf: None,
        cycles: vec![[u64::MAX, 1 << 40, 0], [u64::MAX, 1, 5]],
    });
    cases.push(Case {
        id: "memtotal-2^63".into(),
        conf: None,
        cycles: vec![[1 << 63, 1 << 40, 0], [1 << 63, 1, 5]],
    });
    for (n, conf) in CONFS.iter().enumerate() {
        cases.push(Case {
            id: format!("conf-{}", n + 1),
            conf: Some(conf),
            cycles: vec![boost, boost, decay, stop, decay, [t, 0, 0], [t, t, t]],
        });
    }
    cases
}

fn random_case(rng: &mut ChaCha8Rng, n: usize) -> Case {
    let conf = if rng.random_bool(0.4) {
        CONFS.choose(rng).copied()
    } else {
        None
    };
    let mut total = *TOTALS.choose(rng).expect("totals");
    if rng.random_bool(0.2) {
        total = rng.random_range(1..1 << 36);
    }
    let parsed = conf
        .map(|c| Config::parse(c).expect("valid conf"))
        .unwrap_or_default();
    let thres = Ksmtuned::new(Variant::Proxmox, &parsed, total).thres();
    let thres = u64::try_from(thres).unwrap_or(0);
    let near =
        |rng: &mut ChaCha8Rng, x: u64| x.saturating_add(rng.random_range(0..3)).saturating_sub(1);
    let mawk_edge = |rng: &mut ChaCha8Rng| match rng.random_range(0..3) {
        0 => (1 << 31) - 1,
        1 => 1 << 31,
        _ => rng.random_range(1 << 31..1 << 42),
    };
    let cycles = (0..rng.random_range(1..=15))
        .map(|_| {
            let t = if rng.random_bool(0.05) {
                rng.random_range(1..1 << 36)
            } else {
                total
            };
            let free = match rng.random_range(0..10) {
                0..=3 => near(rng, thres),
                4..=6 => rng.random_range(0..=total),
                7 => 0,
                _ => mawk_edge(rng),
            };
            let committed = match rng.random_range(0..10) {
                0..=3 => near(rng, total.saturating_sub(thres)),
                4..=6 => rng.random_range(0..=total),
                7 => 0,
                8 => total,
                _ => mawk_edge(rng),
            };
            // awk's double sums are exact below 2^53, the range memsim claims
            [t, free.min(1 << 53), committed.min(1 << 53)]
        })
        .collect();
    Case {
        id: format!("random-{n}"),
        conf,
        cycles,
    }
}

fn random_cases(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|n| random_case(&mut rng, n)).collect()
}

// ---- the real scripts ----

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}")),
    )
}

/// The real script's answer for `run`, via the driver.
fn run_real(scripts: &std::path::Path, run: &Run) -> String {
    let awk = match run.awk {
        Awk::Mawk => std::env::var("MEMSIM_MAWK").unwrap_or_else(|_| "mawk".into()),
        Awk::Gawk => std::env::var("MEMSIM_GAWK").unwrap_or_else(|_| "gawk".into()),
    };
    let awk = which(&awk);
    let conf_file = run.conf.as_ref().map(|text| {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write conf");
        file
    });
    let mut command = Command::new("bash");
    command
        .arg(DRIVER)
        .arg(scripts.join(run.variant.name()))
        .arg(awk)
        .arg(run.boot.to_string());
    if let Some(file) = &conf_file {
        command.arg(file.path());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the driver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(run.trace.as_bytes())
        .expect("write trace");
    let output = child.wait_with_output().expect("driver output");
    assert!(
        output.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// An absolute path for a program name (the driver calls it from another PATH).
fn which(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    let output = Command::new("bash")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("bash");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{program} not found: install it or set MEMSIM_MAWK/MEMSIM_GAWK"
    );
    path
}

#[test]
#[ignore = "needs bash, mawk, gawk and the real scripts: set MEMSIM_KSMTUNED_SCRIPTS"]
fn live_real_script_differential() {
    let Some(scripts) = std::env::var_os("MEMSIM_KSMTUNED_SCRIPTS") else {
        eprintln!("skipped: set MEMSIM_KSMTUNED_SCRIPTS (see this file's documentation)");
        return;
    };
    let scripts = std::path::PathBuf::from(scripts);
    let regenerate = std::env::var_os("MEMSIM_REGEN_KSMTUNED_CORPUS").is_some();
    let (seed, count) = if regenerate {
        (CORPUS_SEED, CORPUS_RANDOM_CASES)
    } else {
        let seed = env_number("MEMSIM_DIFF_SEED").unwrap_or_else(|| rand::rng().random());
        (
            seed,
            env_number("MEMSIM_DIFF_CASES").map_or(30, |n| n as usize),
        )
    };
    eprintln!("live differential: MEMSIM_DIFF_SEED={seed} MEMSIM_DIFF_CASES={count}");
    let mut cases = named_cases();
    cases.extend(random_cases(seed, count));
    let mut runs = runs_of(cases);
    for run in &mut runs {
        run.expect = Some(run_real(&scripts, run));
    }
    let diff = differences(&runs);
    eprintln!("{} runs compared, {} differ", runs.len(), diff.len());
    assert!(diff.is_empty(), "{}", diff[..diff.len().min(5)].join("\n"));
    if regenerate {
        let text: String = runs
            .iter()
            .map(|run| format!("{}\n", run.to_json()))
            .collect();
        std::fs::write(CORPUS, text).expect("write corpus");
    }
}
