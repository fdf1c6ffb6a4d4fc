//! How the account writes times, sizes and lists of VMs: the way an admin reads them
//! in `dmesg`, `free -h` and the Proxmox GUI, not the exact bytes of the CSVs.

use std::fmt::Write as _;

use crate::engine::SimTime;
use crate::scenario::units::parse_duration;

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// Simulated time as a clock, `00:43:10`; hours go past 24 in long runs, and a
/// fraction of a second (sub-second ticks) is kept so that no two instants print alike.
pub fn clock(t_s: f64) -> String {
    let whole = t_s.max(0.0).floor() as u64;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        whole / 3600,
        whole / 60 % 60,
        whole % 60
    );
    let millis = ((t_s - whole as f64) * 1000.0).round() as u64;
    if millis > 0 && millis < 1000 {
        let _ = write!(out, ".{millis:03}");
    }
    out
}

/// A run-relative time as the user types it: `10m`, `1h30m`, `90s`, `2h`, or a clock
/// as [`clock`] prints it (`00:43:10`, `43:10`), so that a time can be copied from the
/// account into `--since`.
pub fn parse_offset(text: &str) -> Result<SimTime, String> {
    let text = text.trim();
    if text.contains(':') {
        return parse_clock(text);
    }
    let parts = compound_parts(text);
    if parts.len() > 1
        && parts
            .iter()
            .any(|p| p.ends_with(|c: char| c.is_ascii_digit()))
    {
        return Err(format!(
            "{text:?}: every part of a compound duration needs a unit (e.g. 1h30m)"
        ));
    }
    let mut total = SimTime::ZERO;
    for part in parts {
        let t = parse_duration(part)?;
        total = SimTime(total.0.checked_add(t.0).ok_or("duration too long")?);
    }
    if text.is_empty() {
        return Err("empty duration: expected e.g. 10m, 1h30m or 00:43:10".into());
    }
    Ok(total)
}

/// `1h30m` → `1h`, `30m`: a new part starts where a digit follows a unit letter.
fn compound_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i].is_ascii_digit() && bytes[i - 1].is_ascii_alphabetic() {
            parts.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

/// `HH:MM:SS` or `MM:SS`, whole seconds.
fn parse_clock(text: &str) -> Result<SimTime, String> {
    let bad = || format!("{text:?} is not a time: expected HH:MM:SS, MM:SS or e.g. 1h30m");
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() > 3 || fields.iter().any(|f| f.is_empty()) {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    for (i, f) in fields.iter().enumerate() {
        let v: u64 = f.parse().map_err(|_| bad())?;
        if i > 0 && v >= 60 {
            return Err(bad());
        }
        secs = secs
            .checked_mul(60)
            .and_then(|s| s.checked_add(v))
            .ok_or_else(bad)?;
    }
    parse_duration(&secs.to_string())
}

/// A size for reading: `3.1 GiB` from 1 GiB up, `820 MiB` below, and a tenth of a MiB
/// under 10 MiB where it is not whole (`1.5 MiB`, `3 MiB`).
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    let tenths_of_mib = (b / MIB * 10.0).round() as u64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else if b >= 10.0 * MIB || tenths_of_mib % 10 == 0 {
        format!("{:.0} MiB", b / MIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// A change of size, its unit written once where both ends share it: `6.6 → 4.4 GiB`,
/// `820 MiB → 1.2 GiB`; in MiB where rounding would print both ends alike
/// (`2662 → 2612 MiB`).
pub fn size_change(from: u64, to: u64) -> String {
    let (a, b) = (size(from), size(to));
    if a == b && from >> 20 != to >> 20 {
        return format!("{} → {} MiB", from >> 20, to >> 20);
    }
    match (a.split_once(' '), b.split_once(' ')) {
        (Some((x, unit_a)), Some((_, unit_b))) if unit_a == unit_b => format!("{x} → {b}"),
        _ => format!("{a} → {b}"),
    }
}

/// A signed size with its sign spelled out: `+13.6 GiB`, `−114 MiB`.
pub fn signed_size(bytes: i64) -> String {
    let sign = if bytes < 0 { "−" } else { "+" };
    format!("{sign}{}", size(bytes.unsigned_abs()))
}

/// A rate per second: `43 MiB/s`.
pub fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return size(bytes);
    }
    format!("{}/s", size((bytes as f64 / seconds).round() as u64))
}

/// One decimal is what separates "at target" from "just above it": `80.2 %`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "– %".into();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

/// A span of simulated time for sentences: `1h27m`, `5m`, `40s`.
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        s if s >= 3600 && s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// VM names in the given order, with runs of clones written as a range: `web-1…web-6,
/// app-1, app-2, db1`. A range needs three or more consecutive numbers under one prefix.
pub fn names(list: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i + 1;
        if let Some((prefix, first)) = numbered(&list[i]) {
            while j < list.len() && numbered(&list[j]) == Some((prefix, first + (j - i) as u64)) {
                j += 1;
            }
        }
        if j - i >= 3 {
            parts.push(format!("{}…{}", list[i], list[j - 1]));
        } else {
            parts.extend(list[i..j].iter().cloned());
        }
        i = j;
    }
    parts.join(", ")
}

/// `web-12` → (`web-`, 12): the naming `count:` gives clones.
fn numbered(name: &str) -> Option<(&str, u64)> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, number) = name.split_at(name.len() - digits);
    if digits == 0 || prefix.is_empty() || number.len() > 1 && number.starts_with('0') {
        return None;
    }
    Some((prefix, number.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn clones_collapse_into_ranges() {
        let list = s(&[
            "web-1", "web-2", "web-3", "app-1", "app-2", "db1", "db2", "db3",
        ]);
        assert_eq!(names(&list), "web-1…web-3, app-1, app-2, db1…db3");
        assert_eq!(names(&s(&["a-1", "a-3", "a-4"])), "a-1, a-3, a-4");
        assert_eq!(names(&s(&["x01", "x02", "x03"])), "x01, x02, x03");
        assert_eq!(names(&[]), "");
    }

    #[test]
    fn clock_and_offsets_round_trip() {
        assert_eq!(clock(2590.0), "00:43:10");
        assert_eq!(clock(90_000.5), "25:00:00.500");
        for text in ["43m10s", "00:43:10", "43:10", "2590", "2590s"] {
            assert_eq!(parse_offset(text), Ok(SimTime::from_secs(2590)), "{text}");
        }
        assert_eq!(parse_offset("1h30m"), Ok(SimTime::from_secs(5400)));
        for bad in ["", "1h30", "ten", "1:60", "1:2:3:4", "-5m", "5M", ":10"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_like_free_h() {
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(size(820 << 20), "820 MiB");
        assert_eq!(size(3 << 19), "1.5 MiB");
        assert_eq!(signed_size(-(114 << 20)), "−114 MiB");
        assert_eq!(size_change(66 << 28, 44 << 28), "16.5 → 11.0 GiB");
        assert_eq!(size_change(820 << 20, 3 << 29), "820 MiB → 1.5 GiB");
        assert_eq!(size_change(2662 << 20, 2612 << 20), "2662 → 2612 MiB");
        assert_eq!(size_change(100 << 20, 100 << 20), "100 → 100 MiB");
        assert_eq!(signed_size(13 << 30), "+13.0 GiB");
        assert_eq!(percent(86, 100), "86.0 %");
        assert_eq!(span(5220.0), "1h27m");
        assert_eq!(span(3600.0), "1h");
    }
}
