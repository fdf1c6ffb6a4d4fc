//! `memsim replay autoballoon`: answer recorded or generated allocator inputs.
//!
//! Input is one JSON object per line:
//!
//! ```text
//! {"goal": <bytes>, "maxchange": <bytes>, "vms": {"<vmid>": {"balloon": .., "balloon_min": ..,
//!   "maxmem": .., "shares": .., "freemem": .., "lock": ..}}, "id": <any JSON>}
//! ```
//!
//! `goal` and `vms` are required. Every other field may be absent or `null`, which
//! means "undefined" upstream; an absent or `null` `maxchange` means pvestatd's
//! [`MAXCHANGE`]. Unknown fields are ignored, so raw vmstatus dumps and test corpora
//! with extra keys can be replayed as they are. Each case is answered with one line
//! `{"id": .., "res": {"<vmid>": <target bytes>, ..}}` (`id` only when given), VM ids
//! sorted as strings like pvestatd sorts them. Blank lines are skipped.
//!
//! Numbers must be integers in the `i64` range. A JSON float with an integral value
//! below 2^53 in magnitude (`2048.0`, `1e9`) is accepted, since Perl computes with
//! it as with that integer; larger floats are rejected because Perl would compute
//! with them as doubles. (serde_json, as configured here, may misread float literals
//! with more than 15 significant digits by one unit in the last place, so write
//! byte counts of 10^15 and more as integers.) A string is
//! accepted only in canonical decimal form (`"0"`, `"-12"`, `"4096"`): for those Perl's
//! numeric value and truthiness agree, while strings like `"00"`, `"-0"` or `"0.0"`
//! are true in Perl but numerically zero and `" 12abc"` is silently numified, which
//! an `i64` cannot mirror. Anything else is reported as `line N: <reason>` on the
//! error stream, and replay continues with the next line.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use serde_json::{Map, Number, Value};

use super::{compute_alg1, VmStatus, MAXCHANGE};

/// Outcome of a [`replay`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Cases answered on the output stream.
    pub cases_ok: usize,
    /// Non-blank lines rejected with a message on the error stream.
    pub lines_bad: usize,
}

/// Reads cases from `input`, writes one answer line per case to `out` and one message
/// per malformed line to `err`. Only I/O errors abort. Output is not buffered here;
/// pass a locked or buffered writer for large inputs.
pub fn replay(
    mut input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some(case)) => {
                serde_json::to_writer(&mut out, &case.answer())?;
                out.write_all(b"\n")?;
                stats.cases_ok += 1;
            }
            Err(reason) => {
                writeln!(err, "line {number}: {reason}")?;
                stats.lines_bad += 1;
            }
        }
    }
    out.flush()?;
    err.flush()?;
    Ok(stats)
}

/// One input case.
struct Case {
    id: Option<Value>,
    goal: i64,
    maxchange: i64,
    vms: BTreeMap<String, VmStatus>,
}

impl Case {
    fn answer(self) -> Value {
        let res = compute_alg1(&self.vms, self.goal, self.maxchange)
            .into_iter()
            .map(|(vmid, target)| (vmid, Value::from(target)))
            .collect();
        let mut answer = Map::new();
        if let Some(id) = self.id {
            answer.insert("id".to_owned(), id);
        }
        answer.insert("res".to_owned(), Value::Object(res));
        Value::Object(answer)
    }
}

/// `Ok(None)` for a blank line.
fn parse_line(bytes: &[u8]) -> Result<Option<Case>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    let goal = integer(fields.get("goal"), "goal")?.ok_or("missing field `goal`")?;
    let maxchange = integer(fields.get("maxchange"), "maxchange")?.unwrap_or(MAXCHANGE);
    let vms = match fields.get("vms") {
        None | Some(Value::Null) => return Err("missing field `vms`".to_owned()),
        Some(Value::Object(vms)) => vms
            .iter()
            .map(|(vmid, vm)| Ok((vmid.clone(), vm_status(vmid, vm)?)))
            .collect::<Result<_, String>>()?,
        Some(other) => return Err(format!("`vms`: expected an object, got {}", kind(other))),
    };
    Ok(Some(Case {
        id: fields.remove("id"),
        goal,
        maxchange,
        vms,
    }))
}

fn vm_status(vmid: &str, vm: &Value) -> Result<VmStatus, String> {
    let Value::Object(fields) = vm else {
        return Err(format!(
            "`vms.{vmid}`: expected an object, got {}",
            kind(vm)
        ));
    };
    let int = |name: &str| integer(fields.get(name), &format!("vms.{vmid}.{name}"));
    Ok(VmStatus {
        balloon: int("balloon")?,
        balloon_min: int("balloon_min")?,
        maxmem: int("maxmem")?,
        shares: int("shares")?,
        freemem: int("freemem")?,
        lock: match fields.get("lock") {
            None | Some(Value::Null) => None,
            Some(Value::String(lock)) => Some(lock.clone()),
            Some(other) => {
                return Err(format!(
                    "`vms.{vmid}.lock`: expected a string, got {}",
                    kind(other)
                ))
            }
        },
    })
}

/// An optional integer field; `None` when absent or `null`.
fn integer(value: Option<&Value>, field: &str) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => number_as_i64(n).map(Some).ok_or_else(|| {
            format!("`{field}`: {n} is not an integer (i64, or a float below 2^53)")
        }),
        Some(Value::String(s)) => canonical_integer(s)
            .map(Some)
            .ok_or_else(|| format!("`{field}`: string {s:?} is not a canonical decimal integer")),
        Some(other) => Err(format!(
            "`{field}`: expected an integer, got {}",
            kind(other)
        )),
    }
}

fn number_as_i64(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Perl treats an integral double as an integer only below 2^53
    let limit = 9_007_199_254_740_992.0;
    (f.fract() == 0.0 && f.abs() < limit).then_some(f as i64)
}

/// `"0"` or an optional `-` followed by digits without a leading zero.
fn canonical_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = if digits == "0" {
        digits.len() == s.len()
    } else {
        digits.starts_with(|c: char| c.is_ascii_digit() && c != '0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
