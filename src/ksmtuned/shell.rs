//! The values ksmtuned's bash computes with: text printed by awk, read back by bash.
//!
//! bash reads the same text two ways. `$[ … ]` arithmetic parses decimal digits into
//! a 64-bit integer without overflow checks (the value wraps modulo 2^64) and fails
//! on anything else, such as mawk's `2.2e+09`. `[ A -lt B ]` uses `strtoimax` and
//! fails ("integer expression expected") on junk and on values beyond 64 bits.

use super::Awk;

/// A shell variable holding a number as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Word {
    /// Plain decimal digits, of any size.
    Decimal(u128),
    /// What mawk prints for this integral value of 2^31 or more: `%.6g` text.
    MawkFloat(u128),
}

impl Word {
    pub(super) fn from_u64(value: u64) -> Word {
        Word::Decimal(u128::from(value))
    }

    /// The value of `$[word]`, or bash's complaint. Digits wrap modulo 2^64, as
    /// bash parses them without overflow checks.
    pub(super) fn arith(self) -> Result<i64, String> {
        match self {
            // truncation to the low 64 bits is the wrap
            Word::Decimal(value) => Ok(value as u64 as i64),
            Word::MawkFloat(value) => Err(format!(
                "{}: arithmetic syntax error (mawk's text for {value})",
                format_g6(value)
            )),
        }
    }

    /// The integer `[` sees, `None` when `[` rejects the operand.
    pub(super) fn test_int(self) -> Option<i64> {
        match self {
            Word::Decimal(value) => i64::try_from(value).ok(),
            Word::MawkFloat(_) => None,
        }
    }
}

impl Awk {
    /// `print` of a sum equal to `kib`. awk sums in doubles, so the value is first
    /// rounded to one (exact below 2^53).
    pub(super) fn print(self, kib: u64) -> Word {
        let sum = kib as f64;
        // an integral double below 2^64 + 1, so the conversion is exact
        let value = sum as u128;
        match self {
            // mawk prints integral values as integers only up to 2^31 - 1
            Awk::Mawk if sum > 2_147_483_647.0 => Word::MawkFloat(value),
            Awk::Mawk | Awk::Gawk => Word::Decimal(value),
        }
    }
}

/// C's `%.6g` of an integer of at least 10^6 (always the exponent form then):
/// six significant digits rounded half to even, trailing zeros dropped.
fn format_g6(value: u128) -> String {
    let digits = value.to_string().len() as u32;
    if digits <= 6 {
        return value.to_string();
    }
    let mut exponent = digits - 1;
    let shift = 10u128.pow(digits - 6);
    let (mut mantissa, rest) = (value / shift, value % shift);
    if rest > shift / 2 || (rest == shift / 2 && mantissa % 2 == 1) {
        mantissa += 1;
        if mantissa == 1_000_000 {
            mantissa = 100_000;
            exponent += 1;
        }
    }
    let mantissa = mantissa.to_string();
    let (first, rest) = mantissa.split_at(1);
    let rest = rest.trim_end_matches('0');
    let dot = if rest.is_empty() { "" } else { "." };
    format!("{first}{dot}{rest}e+{exponent:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mawk_prints_like_mawk_1_3_4() {
        // outputs of mawk 1.3.4-20200120: `printf 'N\n' | mawk '{s+=$1} END {print s}'`
        let cases = [
            (2_147_483_647, "2147483647"),
            (2_147_483_648, "2.14748e+09"),
            (2_200_000_000, "2.2e+09"),
            (2_147_485_000, "2.14748e+09"),
            (2_147_495_000, "2.1475e+09"),
            (9_999_995_000, "1e+10"),
            (9_999_994_999, "9.99999e+09"),
            (4_294_967_296, "4.29497e+09"),
            (100_000_000_000, "1e+11"),
            (99_999_950_000, "1e+11"),
            (9_007_199_254_740_993, "9.0072e+15"),
        ];
        for (kib, text) in cases {
            let shown = match Awk::Mawk.print(kib) {
                Word::Decimal(value) => value.to_string(),
                Word::MawkFloat(value) => format_g6(value),
            };
            assert_eq!(shown, text, "{kib}");
        }
    }

    #[test]
    fn gawk_prints_the_double_exactly() {
        assert_eq!(
            Awk::Gawk.print(100_000_000_000),
            Word::Decimal(100_000_000_000)
        );
        // above 2^53 the double sum rounds (to even)
        assert_eq!(
            Awk::Gawk.print(9_007_199_254_740_993),
            Word::Decimal(9_007_199_254_740_992)
        );
        assert_eq!(Awk::Gawk.print(u64::MAX), Word::Decimal(1 << 64));
    }

    #[test]
    fn bash_reads_digits_two_ways() {
        // bash 5.2: $[18446744073709551617 + 0] is 1, $[9223372036854775808] wraps
        assert_eq!(Word::Decimal((1 << 64) + 1).arith(), Ok(1));
        assert_eq!(Word::Decimal(1 << 63).arith(), Ok(i64::MIN));
        // while `[ 9223372036854775808 -gt 0 ]` is "integer expression expected"
        assert_eq!(Word::Decimal(1 << 63).test_int(), None);
        assert_eq!(Word::Decimal(42).test_int(), Some(42));
        let err = Word::MawkFloat(2_200_000_000).arith().unwrap_err();
        assert!(err.starts_with("2.2e+09: arithmetic syntax error"), "{err}");
        assert_eq!(Word::MawkFloat(2_200_000_000).test_int(), None);
    }
}
