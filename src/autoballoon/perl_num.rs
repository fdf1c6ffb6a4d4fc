//! Just enough of Perl 5's number model to reproduce upstream's arithmetic bit for bit.
//!
//! Perl keeps a number as a native integer (IV, `i64`, or UV, `u64`) for as long as it
//! can and falls back to a double (NV) otherwise. Most of the allocator only adds and
//! compares integers, which we do exactly in `i128`. Two expressions mix in doubles:
//! the proportional share step `int((alloc_new / shares_total) * shares)` and
//! pvestatd's goal `int(memtotal * target / 100 - memused)`. For those, which of the
//! two representations Perl picks at each step changes the last bits of the result
//! once values pass 2^53, so this module mirrors the rules of perl 5.36 on x86-64
//! (64-bit IV, IEEE double NV, `NV_PRESERVES_UV_BITS` = 53):
//!
//! * `/` divides as integers only when both operands are integers, the dividend's
//!   magnitude exceeds 2^53 and the division is exact; otherwise it divides doubles.
//! * `*` and `-` use integer arithmetic when both operands are integers or doubles
//!   holding an integral value below 2^53 in magnitude, and the result fits an IV or
//!   UV; otherwise they use doubles.
//! * `int()` truncates toward zero.

/// Doubles represent every integer of magnitude below this exactly (2^53); Perl
/// treats an integral double as an integer only below it.
const NV_EXACT_LIMIT: i128 = 1 << 53;

/// A Perl number: an integer (IV or UV; always within [`i64::MIN`, `u64::MAX`]) or a
/// double (NV).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum PerlNum {
    Int(i128),
    Float(f64),
}

/// Whether Perl can hold `x` as a native integer (IV or UV).
fn fits_native(x: i128) -> bool {
    (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&x)
}

impl PerlNum {
    /// The number an exact integer computation produced, as Perl would hold it:
    /// an integer while it fits, a (rounded) double beyond.
    pub(super) fn from_exact(x: i128) -> PerlNum {
        if fits_native(x) {
            PerlNum::Int(x)
        } else {
            PerlNum::Float(x as f64)
        }
    }

    /// The integer Perl's arithmetic operators would use for this operand, if any:
    /// doubles count only when integral and below 2^53 in magnitude.
    fn as_integer(self) -> Option<i128> {
        match self {
            PerlNum::Int(i) => Some(i),
            PerlNum::Float(f) if f.fract() == 0.0 && f.abs() < NV_EXACT_LIMIT as f64 => {
                Some(f as i128)
            }
            PerlNum::Float(_) => None,
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            PerlNum::Int(i) => i as f64,
            PerlNum::Float(f) => f,
        }
    }

    /// `self / rhs`. The caller must rule out a zero divisor first (Perl dies there);
    /// if it does not, the result is an infinity or NaN, never a panic.
    pub(super) fn divide(self, rhs: PerlNum) -> PerlNum {
        if let (Some(l), Some(r)) = (self.as_integer(), rhs.as_integer()) {
            if let Some(q) = exact_big_quotient(l, r) {
                return PerlNum::from_exact(q);
            }
        }
        PerlNum::Float(self.to_f64() / rhs.to_f64())
    }

    /// `self * rhs` for an integer `rhs`.
    pub(super) fn multiply(self, rhs: i64) -> PerlNum {
        self.integer_op(rhs, i128::checked_mul)
            .unwrap_or_else(|| PerlNum::Float(self.to_f64() * rhs as f64))
    }

    /// `self - rhs` for a native unsigned integer `rhs`.
    pub(super) fn subtract(self, rhs: u64) -> PerlNum {
        self.integer_op(rhs, i128::checked_sub)
            .unwrap_or_else(|| PerlNum::Float(self.to_f64() - rhs as f64))
    }

    /// Applies `op` in integers if Perl would: both operands integral and the result
    /// still a native integer.
    fn integer_op<R: Into<i128>>(
        self,
        rhs: R,
        op: fn(i128, i128) -> Option<i128>,
    ) -> Option<PerlNum> {
        let result = op(self.as_integer()?, rhs.into())?;
        fits_native(result).then_some(PerlNum::Int(result))
    }

    /// Perl's `int()`: truncation toward zero. Doubles beyond the `i128` range
    /// saturate (they cannot arise from `i64` inputs and a sane VM count).
    pub(super) fn trunc(self) -> i128 {
        match self {
            PerlNum::Int(i) => i,
            PerlNum::Float(f) => f.trunc() as i128,
        }
    }
}

/// Perl's integer division shortcut: taken only for an exact quotient whose
/// dividend is too large for a double to hold exactly (and not smaller than the
/// divisor).
fn exact_big_quotient(l: i128, r: i128) -> Option<i128> {
    let (al, ar) = (l.unsigned_abs(), r.unsigned_abs());
    let big = al >= ar && al > NV_EXACT_LIMIT as u128;
    if !big || ar == 0 || al % ar != 0 {
        return None;
    }
    let q = (al / ar) as i128;
    Some(if (l < 0) == (r < 0) { q } else { -q })
}

#[cfg(test)]
mod tests {
    use super::PerlNum::{self, Float, Int};

    // Expected values were printed by perl 5.36 (x86_64-linux-gnu) for the same
    // expressions.

    fn share(n: i128, t: i128, s: i64) -> i128 {
        PerlNum::from_exact(n)
            .divide(PerlNum::from_exact(t))
            .multiply(s)
            .trunc()
    }

    #[test]
    fn small_operands_divide_as_doubles() {
        assert_eq!(Int(7).divide(Int(2)), Float(3.5));
        assert_eq!(share(18_000_000, 3000, 2000), 12_000_000);
        assert_eq!(share(-5, 3, 1000), -1666);
    }

    #[test]
    fn dividend_of_exactly_2_pow_53_still_divides_as_doubles() {
        assert_eq!(Int(1 << 53).divide(Int(1)), Float(9_007_199_254_740_992.0));
    }

    #[test]
    fn big_exact_quotients_stay_integers() {
        // perl: int((9007199254740993/1)*1) == 9007199254740993
        assert_eq!(share(9_007_199_254_740_993, 1, 1), 9_007_199_254_740_993);
        // perl: int((-18014398509481986/2)*1) == -9007199254740993
        assert_eq!(share(-18_014_398_509_481_986, 2, 1), -9_007_199_254_740_993);
        // not exact: double division rounds
        assert_eq!(
            Int(9_007_199_254_740_993 * 3 + 1).divide(Int(3)).trunc(),
            9_007_199_254_740_994
        );
    }

    #[test]
    fn integral_quotient_multiplies_as_integer() {
        // perl: $q = 10000000001000/1000; int($q*1000001) == 10000010001000001
        assert_eq!(
            share(10_000_000_001_000, 1000, 1_000_001),
            10_000_010_001_000_001
        );
        // fractional quotient: double product, perl prints 10000010001001000
        assert_eq!(
            share(10_000_000_001_001, 1000, 1_000_001),
            10_000_010_001_001_000
        );
    }

    #[test]
    fn subtraction_of_fractional_value_rounds_like_doubles() {
        // perl: int(1*50/100 - 9007199254740991) == -9007199254740990
        let half = Int(50).divide(Int(100));
        assert_eq!(
            half.subtract(9_007_199_254_740_991).trunc(),
            -9_007_199_254_740_990
        );
    }

    #[test]
    fn values_beyond_native_integers_become_doubles() {
        assert_eq!(
            PerlNum::from_exact(1 << 64),
            Float(18_446_744_073_709_551_616.0)
        );
        assert_eq!(
            Int(i128::from(u64::MAX)).multiply(2),
            Float(u64::MAX as f64 * 2.0)
        );
    }
}
