//! `memsim replay ksmtuned`: what the daemon leaves in sysfs, cycle by cycle.
//!
//! Input is one line per monitor cycle:
//!
//! ```text
//! total_kib free_kib committed_kib
//! ```
//!
//! three non-negative decimal integers separated by blanks: MemTotal, MemFree +
//! Buffers + Cached, and the QEMU processes' summed size in the variant's
//! [`CommittedMeasure`](super::CommittedMeasure). Blank lines and lines starting
//! with `#` are skipped. The daemon starts with the `total_kib` of the first cycle
//! and, like the real one, never looks at MemTotal again: later values are read
//! but have no effect.
//!
//! Each cycle is answered with one line `run pages_to_scan sleep_millisecs`, the
//! sysfs values after that cycle; after the daemon died (see
//! [`Status::Exited`](super::Status::Exited)) the values it left, for every
//! remaining cycle. A malformed line is reported as `line N: <reason>` on the error
//! stream and skipped; the daemon's death is reported there once too, as
//! `line N: ksmtuned exited: <bash's error>`.

use std::io::{self, BufRead, Write};

use super::{Config, Ksmtuned, Status, Variant};

/// Outcome of a [`replay`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Cycles answered on the output stream.
    pub cycles: usize,
    /// Non-blank, non-comment lines rejected with a message on the error stream.
    pub lines_bad: usize,
    /// The input line of the cycle in which the daemon exited, if it did.
    pub exited_on_line: Option<usize>,
}

/// Replays `variant`'s daemon with `conf` (`None`: no ksmtuned.conf) over the cycles
/// in `input`. Only I/O errors abort. Output is not buffered here; pass a locked or
/// buffered writer for long traces.
pub fn replay(
    variant: Variant,
    conf: Option<Config>,
    mut input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> io::Result<ReplayStats> {
    let conf = conf.unwrap_or_default();
    let mut daemon: Option<Ksmtuned> = None;
    let mut stats = ReplayStats::default();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let [total, free, committed] = match parse_line(&line) {
            Ok(Some(fields)) => fields,
            Ok(None) => continue,
            Err(reason) => {
                writeln!(err, "line {number}: {reason}")?;
                stats.lines_bad += 1;
                continue;
            }
        };
        let daemon = daemon.get_or_insert_with(|| Ksmtuned::new(variant, &conf, total));
        let sysfs = daemon.cycle(free, committed);
        if let (None, Status::Exited { error, .. }) = (stats.exited_on_line, daemon.status()) {
            stats.exited_on_line = Some(number);
            writeln!(
                err,
                "line {number}: ksmtuned exited: {error}; sysfs stays at {sysfs}"
            )?;
        }
        writeln!(out, "{sysfs}")?;
        stats.cycles += 1;
    }
    out.flush()?;
    err.flush()?;
    Ok(stats)
}

const FIELDS: [&str; 3] = ["total_kib", "free_kib", "committed_kib"];

/// `Ok(None)` for a blank or comment line.
fn parse_line(bytes: &[u8]) -> Result<Option<[u64; 3]>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() != FIELDS.len() {
        return Err(format!(
            "expected 3 fields `{}`, got {}",
            FIELDS.join(" "),
            words.len()
        ));
    }
    let mut values = [0u64; 3];
    for ((value, word), name) in values.iter_mut().zip(&words).zip(FIELDS) {
        *value = parse_kib(word).map_err(|why| format!("{name}: `{word}` {why}"))?;
    }
    Ok(Some(values))
}

fn parse_kib(word: &str) -> Result<u64, &'static str> {
    if !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a non-negative integer (KiB)");
    }
    word.parse().map_err(|_| "is beyond 2^64 - 1")
}
