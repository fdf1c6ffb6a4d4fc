//! Differential tests against upstream's Perl allocator (pve-manager
//! `PVE/AutoBalloon.pm`, `compute_alg1`).
//!
//! * `upstream_corpus_matches_exactly` (always runs) replays
//!   `tests/data/autoballoon_upstream_cases.jsonl`: generated cases (see
//!   `alg1_cases/mod.rs`), each carrying `expect`, the answer upstream's module gave via
//!   `tests/tools/alg1_driver.pl`, and `died` where upstream died. Every answer must
//!   match exactly. Cases upstream did not finish within the driver's timeout (long
//!   drifts with an undefined `maxmem`) have no known answer and are left out.
//! * `live_upstream_differential` (ignored; opt-in) runs fresh random cases through
//!   the real module and compares:
//!
//!   ```text
//!   # AutoBalloon.pm from a pve-manager checkout, e.g. /tmp/pve/AutoBalloon.pm
//!   MEMSIM_PVE_AUTOBALLOON_PM=/tmp/pve/AutoBalloon.pm \
//!       cargo test --test suite autoballoon_differential:: -- --ignored --nocapture
//!   ```
//!
//!   `MEMSIM_DIFF_SEED` and `MEMSIM_DIFF_CASES` pick the cases (the seed is printed);
//!   with `MEMSIM_REGEN_AUTOBALLOON_CORPUS=1` it uses the corpus seed instead and
//!   rewrites the corpus file from upstream's answers. Cases on which upstream timed
//!   out are not compared, only counted.

use crate::alg1_cases;

use std::io::{Seek, Write};
use std::process::{Command, Stdio};

use memsim::autoballoon::replay;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/autoballoon_upstream_cases.jsonl"
);
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/alg1_driver.pl");
const CORPUS_SEED: u64 = 0xba11_0011;
const CORPUS_CASES: usize = 3000;

/// Runs `input` through `replay`; every line must be a valid case.
fn replay_all(input: &str) -> Vec<Value> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stats = replay(input.as_bytes(), &mut out, &mut err).expect("in-memory I/O");
    assert_eq!(String::from_utf8_lossy(&err), "", "replay rejected lines");
    let answers = json_lines(&String::from_utf8_lossy(&out));
    assert_eq!(answers.len(), stats.cases_ok);
    answers
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Upstream's answer in replay's output shape.
fn upstream_answer(id: Option<&Value>, res: &Value) -> Value {
    match id {
        Some(id) => json!({ "id": id, "res": res }),
        None => json!({ "res": res }),
    }
}

/// Descriptions of the first few differences.
fn differences(inputs: &[Value], expected: &[Value], got: &[Value]) -> Vec<String> {
    assert_eq!(expected.len(), got.len(), "answer count");
    inputs
        .iter()
        .zip(expected.iter().zip(got))
        .enumerate()
        .filter(|(_, (_, (e, g)))| e != g)
        .map(|(n, (input, (e, g)))| format!("case {n}: {input}\n  upstream {e}\n  memsim   {g}"))
        .collect()
}

#[test]
fn upstream_corpus_matches_exactly() {
    let text = std::fs::read_to_string(CORPUS).expect("corpus file");
    let cases = json_lines(&text);
    assert!(
        cases.len() >= CORPUS_CASES,
        "corpus has {} cases",
        cases.len()
    );
    let expected: Vec<Value> = cases
        .iter()
        .map(|case| upstream_answer(case.get("id"), &case["expect"]))
        .collect();
    let got = replay_all(&text);
    let diff = differences(&cases, &expected, &got);
    assert!(
        diff.is_empty(),
        "{} of {} cases differ from upstream:\n{}",
        diff.len(),
        cases.len(),
        diff[..diff.len().min(10)].join("\n")
    );
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}")),
    )
}

fn generate(seed: u64, count: usize) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|n| {
            let case = alg1_cases::case(&mut rng);
            let id = match rng.random_range(0..10) {
                0 => None,
                1 => Some(json!(format!("case-{n}"))),
                2 => Some(json!({ "n": n })),
                _ => Some(json!(n)),
            };
            alg1_cases::to_json(&case, id, &mut rng)
        })
        .collect()
}

/// Upstream's answers, one per input line, from the Perl driver.
fn run_upstream(module: &std::ffi::OsStr, input: &str) -> Vec<Value> {
    let mut stdin = tempfile::tempfile().expect("temp file");
    stdin.write_all(input.as_bytes()).expect("write temp file");
    stdin.rewind().expect("rewind temp file");
    let timeout = std::env::var("MEMSIM_ALG1_TIMEOUT").unwrap_or_else(|_| "2".to_owned());
    let output = Command::new("perl")
        .arg(DRIVER)
        .env("MEMSIM_PVE_AUTOBALLOON_PM", module)
        .env("MEMSIM_ALG1_TIMEOUT", timeout)
        .stdin(Stdio::from(stdin))
        .output()
        .expect("run perl");
    assert!(
        output.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_lines(&String::from_utf8_lossy(&output.stdout))
}

fn write_corpus(inputs: &[Value], upstream: &[Value]) {
    let mut text = String::new();
    for (input, answer) in inputs.iter().zip(upstream).take(CORPUS_CASES) {
        let mut line = input.clone();
        line["expect"] = answer["res"].clone();
        if let Some(died) = answer.get("died") {
            line["died"] = died.clone();
        }
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(CORPUS, text).expect("write corpus");
}

#[test]
#[ignore = "needs upstream's PVE/AutoBalloon.pm: set MEMSIM_PVE_AUTOBALLOON_PM"]
fn live_upstream_differential() {
    let Some(module) = std::env::var_os("MEMSIM_PVE_AUTOBALLOON_PM") else {
        eprintln!("skipped: set MEMSIM_PVE_AUTOBALLOON_PM to the path of PVE/AutoBalloon.pm");
        return;
    };
    let regenerate = std::env::var_os("MEMSIM_REGEN_AUTOBALLOON_CORPUS").is_some();
    let (seed, count) = if regenerate {
        // a little extra in case upstream times out on some
        (CORPUS_SEED, CORPUS_CASES + CORPUS_CASES / 20)
    } else {
        let seed = env_number("MEMSIM_DIFF_SEED").unwrap_or_else(|| rand::rng().random());
        (
            seed,
            env_number("MEMSIM_DIFF_CASES").map_or(2000, |n| n as usize),
        )
    };
    eprintln!("live differential: MEMSIM_DIFF_SEED={seed} MEMSIM_DIFF_CASES={count}");
    let generated = generate(seed, count);
    let text: String = generated.iter().map(|case| format!("{case}\n")).collect();
    let answers = run_upstream(&module, &text);
    assert_eq!(answers.len(), generated.len(), "driver answered every case");
    let (inputs, upstream): (Vec<Value>, Vec<Value>) = generated
        .into_iter()
        .zip(answers)
        .filter(|(_, answer)| answer.get("timed_out").is_none())
        .unzip();
    let timed_out = count - inputs.len();
    let died = upstream.iter().filter(|a| a.get("died").is_some()).count();
    let expected: Vec<Value> = inputs
        .iter()
        .zip(&upstream)
        .map(|(input, answer)| upstream_answer(input.get("id"), &answer["res"]))
        .collect();
    let text: String = inputs.iter().map(|case| format!("{case}\n")).collect();
    let diff = differences(&inputs, &expected, &replay_all(&text));
    eprintln!(
        "{} cases compared, {} differ; upstream died in {died}, timed out in {timed_out}",
        inputs.len(),
        diff.len()
    );
    assert!(diff.is_empty(), "{}", diff[..diff.len().min(10)].join("\n"));
    if regenerate {
        write_corpus(&inputs, &upstream);
    }
}
