//! Sizes and durations as people write them: `4GiB`, `512 MiB`, `1.5h`.
//!
//! **Sizes are binary everywhere.** `K`, `KB` and `KiB` all mean 1024 bytes (likewise
//! M, G, T). Memory is sized in powers of two in every tool this simulator models:
//! Proxmox's `memory: 4096` is MiB, QEMU's `-m 4G` is GiB, `/proc/meminfo` says `kB`
//! and means KiB. Reading `8GB` as 8·10⁹ bytes would silently make a VM 7 % smaller
//! than its author meant, so decimal prefixes are not offered at all. Units are
//! case-insensitive and may be separated from the number by spaces.
//!
//! A bare number has no unit to disagree with, so its meaning is chosen per key
//! ([`Bare`]): MiB for a VM's `memory` and `balloon` (as in a Proxmox VM config), bytes
//! in trace files, and elsewhere only `0` is accepted, because `swap: 512` is too
//! likely to mean something other than 512 bytes.
//!
//! **Durations** take `ms`, `s`, `m`, `h`, `d` (lower case: `M` is a size); a bare
//! number is seconds.
//!
//! Decimals are exact: `1.5GiB` is parsed as the integer 15 scaled by 1/10, never
//! through a float, then rounded half-up to whole bytes or nanoseconds. Limits keep
//! later arithmetic safe: sizes up to 2⁵³ bytes (8 PiB), the largest integer an `f64`
//! (used by the smooth workload shapes) holds exactly; durations up to 36500 days, so
//! that adding two never overflows [`SimTime`].

use crate::engine::SimTime;

/// Largest accepted size: 2⁵³ bytes = 8 PiB.
pub const MAX_SIZE: u64 = 1 << 53;

/// Largest accepted duration: 36500 days.
pub const MAX_DURATION: SimTime = SimTime::from_secs(36_500 * 86_400);

/// What a number without a unit means for a given key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bare {
    /// MiB, as Proxmox's `memory` and `balloon` options.
    Mib,
    /// Bytes (trace files).
    Bytes,
    /// Not allowed, except `0`.
    Reject,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", KIB),
    ("kb", KIB),
    ("kib", KIB),
    ("m", MIB),
    ("mb", MIB),
    ("mib", MIB),
    ("g", GIB),
    ("gb", GIB),
    ("gib", GIB),
    ("t", TIB),
    ("tb", TIB),
    ("tib", TIB),
];

const NS_PER_SEC: u64 = SimTime::NS_PER_SEC;

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1_000_000),
    ("s", NS_PER_SEC),
    ("m", 60 * NS_PER_SEC),
    ("h", 3_600 * NS_PER_SEC),
    ("d", 86_400 * NS_PER_SEC),
];

/// Parses a size such as `4GiB`, `1.5 g`, `4096` (with `Bare::Mib`) into bytes.
pub fn parse_size(text: &str, bare: Bare) -> Result<u64, String> {
    let (number, unit) = split(text, "size", "4GiB")?;
    let factor = match unit {
        "" => match bare {
            Bare::Mib => MIB,
            Bare::Bytes => 1,
            Bare::Reject if number.is_zero() => 1,
            Bare::Reject => {
                return Err(format!(
                    "{:?} needs a unit, e.g. {}MiB (only 0 may be written without one)",
                    text.trim(),
                    text.trim()
                ))
            }
        },
        _ => size_unit(unit).ok_or_else(|| unknown_size_unit(text, unit))?,
    };
    let bytes = number.scale(factor).filter(|b| *b <= u128::from(MAX_SIZE));
    bytes.map(|b| b as u64).ok_or_else(|| {
        format!(
            "size {:?} is too large (at most {})",
            text.trim(),
            format_size(MAX_SIZE)
        )
    })
}

/// Parses a duration such as `500ms`, `1.5h`, `90` (seconds).
pub fn parse_duration(text: &str) -> Result<SimTime, String> {
    let (number, unit) = split(text, "duration", "10s")?;
    let factor = match unit {
        "" => NS_PER_SEC,
        _ => duration_unit(unit).ok_or_else(|| unknown_duration_unit(text, unit))?,
    };
    let ns = number
        .scale(factor)
        .filter(|ns| *ns <= u128::from(MAX_DURATION.0));
    ns.map(|ns| SimTime(ns as u64)).ok_or_else(|| {
        format!(
            "duration {:?} is too long (at most {})",
            text.trim(),
            format_duration(MAX_DURATION)
        )
    })
}

/// Exact, compact form for messages: the largest binary unit that divides `bytes`
/// (`9GiB`, `1536MiB`, `100B`).
pub fn format_size(bytes: u64) -> String {
    let units = [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)];
    match units.iter().find(|(_, u)| bytes >= *u && bytes % u == 0) {
        Some((name, u)) => format!("{}{name}", bytes / u),
        None => format!("{bytes}B"),
    }
}

/// Exact, compact form for messages: `90m`, `2h`, `1500ms`, `0s`.
pub fn format_duration(t: SimTime) -> String {
    if t.0 == 0 {
        return "0s".into();
    }
    let mut units: Vec<(&str, u64)> = DURATION_UNITS.to_vec();
    units.reverse();
    match units.iter().find(|(_, u)| t.0 % u == 0) {
        Some((name, u)) => format!("{}{name}", t.0 / u),
        None => format!("{}ns", t.0),
    }
}

fn size_unit(unit: &str) -> Option<u64> {
    let lower = unit.to_ascii_lowercase();
    SIZE_UNITS
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, f)| *f)
}

fn duration_unit(unit: &str) -> Option<u64> {
    DURATION_UNITS
        .iter()
        .find(|(n, _)| *n == unit)
        .map(|(_, f)| *f)
}

fn unknown_size_unit(text: &str, unit: &str) -> String {
    if duration_unit(unit).is_some() {
        format!(
            "{:?} is a duration, not a size (use B, KiB, MiB, GiB or TiB)",
            text.trim()
        )
    } else {
        format!(
            "unknown size unit {unit:?} in {:?} (use B, KiB, MiB, GiB or TiB)",
            text.trim()
        )
    }
}

fn unknown_duration_unit(text: &str, unit: &str) -> String {
    if size_unit(unit).is_some() {
        format!(
            "{:?} is a size, not a duration (use ms, s, m, h or d)",
            text.trim()
        )
    } else {
        format!(
            "unknown duration unit {unit:?} in {:?} (use ms, s, m, h or d)",
            text.trim()
        )
    }
}

/// A non-negative decimal number held exactly: `digits / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    digits: u128,
    scale: u32,
}

impl Decimal {
    fn is_zero(self) -> bool {
        self.digits == 0
    }

    /// `self * factor`, rounded half-up to an integer; `None` on overflow.
    fn scale(self, factor: u64) -> Option<u128> {
        let pow = 10u128.checked_pow(self.scale)?;
        let product = self.digits.checked_mul(u128::from(factor))?;
        Some(product / pow + u128::from(product % pow >= pow.div_ceil(2)))
    }
}

/// Splits `"1.5 GiB"` into its number and unit (`""` when none).
fn split<'t>(text: &'t str, what: &str, example: &str) -> Result<(Decimal, &'t str), String> {
    let trimmed = text.trim();
    let end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(end);
    if trimmed.starts_with('-') {
        return Err(format!("{what} {trimmed:?} is negative"));
    }
    let number = decimal(number).ok_or_else(|| {
        format!("{trimmed:?} is not a {what}: expected a number and a unit, e.g. {example}")
    })?;
    let number = number.map_err(|()| format!("{what} {trimmed:?} has too many digits"))?;
    Ok((number, unit.trim_start()))
}

/// `None` if not a number; `Some(Err)` if it has more digits than we can hold exactly.
fn decimal(text: &str) -> Option<Result<Decimal, ()>> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let mut all = int.bytes().chain(frac.bytes());
    let digits = all.try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    });
    let scale = u32::try_from(frac.len()).ok().filter(|s| *s <= 38);
    Some(match (digits, scale) {
        (Some(digits), Some(scale)) => Ok(Decimal { digits, scale }),
        _ => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Result<u64, String> {
        parse_size(text, Bare::Reject)
    }

    #[test]
    fn binary_units_in_every_spelling() {
        for text in [
            "4GiB", "4G", "4GB", "4 gib", "4g", "4096M", "4096MiB", "4194304k",
        ] {
            assert_eq!(size(text), Ok(4 << 30), "{text}");
        }
        assert_eq!(size("1T"), Ok(1 << 40));
        assert_eq!(size("100B"), Ok(100));
        assert_eq!(size("512 KiB"), Ok(512 << 10));
    }

    #[test]
    fn decimals_are_exact_and_rounded_half_up() {
        assert_eq!(size("1.5GiB"), Ok(3 << 29));
        assert_eq!(size("0.5K"), Ok(512));
        assert_eq!(size("1.5B"), Ok(2));
        assert_eq!(size("1.4B"), Ok(1));
        assert_eq!(size(".5KiB"), Ok(512));
        assert_eq!(size("2.KiB"), Ok(2048));
        assert_eq!(size("0.1GiB"), Ok(107_374_182));
    }

    #[test]
    fn bare_numbers_depend_on_the_key() {
        assert_eq!(parse_size("4096", Bare::Mib), Ok(4 << 30));
        assert_eq!(parse_size("4096", Bare::Bytes), Ok(4096));
        assert_eq!(parse_size("0", Bare::Reject), Ok(0));
        let err = parse_size("512", Bare::Reject).unwrap_err();
        assert!(err.contains("needs a unit"), "{err}");
    }

    #[test]
    fn bad_sizes_say_why() {
        let cases = [
            ("-1GiB", "negative"),
            ("GiB", "not a size"),
            ("", "not a size"),
            ("nan", "not a size"),
            ("inf", "not a size"),
            ("1.2.3G", "not a size"),
            ("4XB", "unknown size unit \"XB\""),
            ("1e9", "unknown size unit \"e9\""),
            ("10s", "is a duration"),
            ("9000TiB", "too large"),
            (
                "99999999999999999999999999999999999999999G",
                "too many digits",
            ),
            (
                "1.000000000000000000000000000000000000001G",
                "too many digits",
            ),
        ];
        for (text, want) in cases {
            let err = size(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn largest_size_is_accepted() {
        assert_eq!(size("8192TiB"), Ok(MAX_SIZE));
        assert!(size("8192.001TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(SimTime::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(SimTime::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(SimTime::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(SimTime::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(SimTime::from_secs(86_400)));
        assert_eq!(parse_duration("90"), Ok(SimTime::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(SimTime::from_millis(1500)));
        assert_eq!(parse_duration(" 1.5 h "), Ok(SimTime::from_secs(5400)));
        assert_eq!(parse_duration("0.0000000004"), Ok(SimTime(0)));
        assert_eq!(parse_duration("0.0000000005"), Ok(SimTime(1)));
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("-5s", "negative"),
            ("5M", "is a size"),
            ("4GiB", "is a size"),
            ("5x", "unknown duration unit \"x\""),
            ("5 min", "unknown duration unit \"min\""),
            ("soon", "not a duration"),
            ("36501d", "too long"),
        ];
        for (text, want) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
    }

    #[test]
    fn formatting_is_exact() {
        assert_eq!(format_size(9 << 30), "9GiB");
        assert_eq!(format_size(3 << 29), "1536MiB");
        assert_eq!(format_size(100), "100B");
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_duration(SimTime::from_secs(5400)), "90m");
        assert_eq!(format_duration(SimTime::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(SimTime(7)), "7ns");
        assert_eq!(format_duration(SimTime::ZERO), "0s");
    }
}
