//! Mutation fuzzing: thousands of damaged variants of a valid file must load or fail
//! with located problems, never panic. Seeded, so a failure reproduces; set
//! `FUZZ_SEED=<n>` to explore other variants.

use std::path::Path;

use memsim::scenario::parse;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VARIANTS: usize = 2000;

/// Characters and snippets that matter to YAML or to the schema.
const CHARS: &[char] = &[
    ':', '-', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ',
    '\n', '\t', ',', '?', '0', '9', '.', 'e', 'G', 'x', '\u{feff}', 'é',
];
const SNIPPETS: &[&str] = &[
    "memory: 1GiB",
    "- vmid: 100",
    "count: 10000",
    "balloon: 9GiB",
    "stop_at: 0s",
    "&a ",
    "*a",
    "<<: *a",
    "  ",
    "~",
    "null",
    "-1",
    "99999999999999999999999999999999999999999",
    "1e400",
    ".nan",
    "{shape: trace, file: traces/db.csv}",
    "{shape: trace, file: /}",
    "[[[[[[[[",
    "---\n",
    "...\n",
];

fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..=3) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..7) {
            0 if at < chars.len() => chars[at] = *CHARS.choose(rng).unwrap(),
            1 => chars.insert(at, *CHARS.choose(rng).unwrap()),
            2 if at < chars.len() => {
                chars.remove(at);
            }
            3 => {
                let snippet = SNIPPETS.choose(rng).unwrap();
                chars.splice(at..at, snippet.chars());
            }
            4 => chars.truncate(at),
            _ => chars = shuffle_lines(&chars, rng),
        }
    }
    chars.into_iter().collect()
}

/// Deletes, duplicates or swaps whole lines.
fn shuffle_lines(chars: &[char], rng: &mut ChaCha8Rng) -> Vec<char> {
    let text: String = chars.iter().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.len() >= 2 {
        let (a, b) = (
            rng.random_range(0..lines.len()),
            rng.random_range(0..lines.len()),
        );
        match rng.random_range(0..3) {
            0 => {
                lines.remove(a);
            }
            1 => lines.insert(a, lines[b]),
            _ => lines.swap(a, b),
        }
    }
    lines.join("\n").chars().collect()
}

#[test]
fn mutated_files_never_panic() {
    let dir = Path::new("tests/fixtures/scenarios");
    let valid = std::fs::read_to_string(dir.join("full.yaml")).unwrap();
    assert!(parse(&valid, "full.yaml", dir).is_ok());
    let mut rng =
        ChaCha8Rng::seed_from_u64(std::env::var("FUZZ_SEED").map_or(7, |s| s.parse().unwrap()));
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..VARIANTS {
        let text = mutate(&valid, &mut rng);
        match parse(&text, "full.yaml", dir) {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                assert!(!e.problems().is_empty(), "no problems for:\n{text}");
                for p in e.problems() {
                    assert!(p.line.is_some_and(|l| l >= 1), "{p} for:\n{text}");
                }
            }
        }
    }
    // Both outcomes must be common, or the mutations are too weak or too strong.
    assert!(
        ok > VARIANTS / 20 && failed > VARIANTS / 4,
        "ok {ok}, failed {failed}"
    );
}
