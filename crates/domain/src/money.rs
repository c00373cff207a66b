//! Money and rates: the exact amount type [`Fen`] (an integer number of 分), the annual
//! interest [`Rate`], the monthly [`FeeRate`], and the one rounding rule of the system
//! (half-up, i.e. half away from zero, to the fen).
//!
//! Amounts never touch `f64`. Text and JSON carry amounts as decimal strings in yuan
//! (`"1234.56"`), never as JSON numbers, so no client can lose a fen to a float.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a money or rate input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount is not a decimal number of yuan such as 1234.56")]
    Invalid,
    #[error("amount has more than 2 decimal places (the smallest unit is the fen)")]
    TooManyDecimals,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount is too large")]
    Overflow,
    #[error("rate is not a decimal number such as 0.12")]
    InvalidRate,
    #[error("rate is out of range (annual rate must be at least 0 and below 10, fee rate at least 0 and below 1)")]
    RateOutOfRange,
    #[error("rate has more than 10 decimal places")]
    RateTooPrecise,
}

impl MoneyError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::Empty => "money.empty",
            MoneyError::Invalid => "money.invalid",
            MoneyError::TooManyDecimals => "money.too_many_decimals",
            MoneyError::Negative => "money.negative",
            MoneyError::Overflow => "money.overflow",
            MoneyError::InvalidRate => "rate.invalid",
            MoneyError::RateOutOfRange => "rate.out_of_range",
            MoneyError::RateTooPrecise => "rate.too_precise",
        }
    }
}

/// Integer division of `numer` by a positive `denom`, rounded half away from zero
/// ("half-up" in the Chinese banking sense: 0.005 yuan → 0.01 yuan, −0.005 → −0.01).
///
/// Uses 64-bit division when both operands fit, because 128-bit division is a
/// software routine and this sits in the schedule hot loop.
#[inline]
pub fn div_round_half_up(numer: i128, denom: i128) -> i128 {
    debug_assert!(denom > 0);
    let neg = numer < 0;
    let n = numer.unsigned_abs();
    let d = denom.unsigned_abs();
    let q = if n <= u64::MAX as u128 && d <= u64::MAX as u128 {
        let (n, d) = (n as u64, d as u64);
        let (q, r) = (n / d, n % d);
        // r < d, so r >= d - r avoids overflowing 2r.
        (q + u64::from(r >= d - r)) as u128
    } else {
        let (q, r) = (n / d, n % d);
        q + u128::from(r >= d - r)
    };
    let q = q as i128;
    if neg {
        -q
    } else {
        q
    }
}

/// Rounds an amount in yuan half-up to the fen.
pub fn round_yuan_half_up(yuan: Decimal) -> Result<Fen, MoneyError> {
    let fen = yuan
        .checked_mul(Decimal::ONE_HUNDRED)
        .ok_or(MoneyError::Overflow)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(fen)
        .map(Fen)
        .map_err(|_| MoneyError::Overflow)
}

/// An exact amount of money in fen (分, 0.01 yuan).
///
/// The type is signed so that adjustments and cash flows can be expressed; inputs that
/// must not be negative are parsed with [`Fen::parse`], which refuses a minus sign.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);
    pub const MAX: Fen = Fen(i64::MAX);

    /// An amount of `fen` fen.
    pub const fn new(fen: i64) -> Self {
        Fen(fen)
    }

    /// Whole yuan; fails on overflow.
    pub fn from_yuan(yuan: i64) -> Result<Self, MoneyError> {
        yuan.checked_mul(100).map(Fen).ok_or(MoneyError::Overflow)
    }

    /// The amount in fen.
    pub const fn as_fen(self) -> i64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Parses a non-negative amount in yuan: `"1234.56"`, `"1234.5"`, `"1234"`.
    /// Surrounding whitespace is ignored; thousands separators, exponents and more than
    /// two decimals are refused.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        parse_yuan(s, false)
    }

    /// Like [`Fen::parse`] but also accepts a leading minus sign.
    pub fn parse_signed(s: &str) -> Result<Self, MoneyError> {
        parse_yuan(s, true)
    }

    pub fn checked_add(self, other: Fen) -> Result<Fen, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Fen)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Fen) -> Result<Fen, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Fen)
            .ok_or(MoneyError::Overflow)
    }

    /// Multiplies by an integer count (e.g. a fee per period × periods).
    pub fn checked_mul(self, times: i64) -> Result<Fen, MoneyError> {
        self.0
            .checked_mul(times)
            .map(Fen)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_neg(self) -> Result<Fen, MoneyError> {
        self.0.checked_neg().map(Fen).ok_or(MoneyError::Overflow)
    }

    /// Sum of amounts; fails on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Fen>>(items: I) -> Result<Fen, MoneyError> {
        items
            .into_iter()
            .try_fold(Fen::ZERO, |acc, x| acc.checked_add(x))
    }

    /// `self × factor`, rounded half-up to the fen (e.g. an amount times a rate).
    pub fn mul_decimal_half_up(self, factor: Decimal) -> Result<Fen, MoneyError> {
        let product = Decimal::from(self.0)
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow)?
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        i64::try_from(product)
            .map(Fen)
            .map_err(|_| MoneyError::Overflow)
    }

    /// The amount in yuan, exactly (scale 2).
    pub fn to_yuan(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// An amount given in yuan. The value must be a whole number of fen
    /// (`1.50`, `1.500` are fine; `1.505` is refused). See [`round_yuan_half_up`] to round.
    pub fn from_yuan_decimal(yuan: Decimal) -> Result<Self, MoneyError> {
        if yuan.normalize().scale() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        round_yuan_half_up(yuan)
    }
}

fn parse_yuan(s: &str, allow_negative: bool) -> Result<Fen, MoneyError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(MoneyError::Empty);
    }
    let (negative, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) {
        return Err(MoneyError::Invalid);
    }
    let mut fen: i64 = 0;
    for b in int_part.bytes() {
        fen = fen
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(MoneyError::Overflow)?;
    }
    fen = fen.checked_mul(100).ok_or(MoneyError::Overflow)?;
    if let Some(f) = frac_part {
        if !all_digits(f) {
            return Err(MoneyError::Invalid);
        }
        if f.len() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        let bytes = f.as_bytes();
        let mut cents = i64::from(bytes[0] - b'0') * 10;
        if let Some(b) = bytes.get(1) {
            cents += i64::from(b - b'0');
        }
        fen = fen.checked_add(cents).ok_or(MoneyError::Overflow)?;
    }
    if negative && fen != 0 {
        if !allow_negative {
            return Err(MoneyError::Negative);
        }
        fen = -fen;
    }
    Ok(Fen(fen))
}

impl fmt::Display for Fen {
    /// Yuan with exactly two decimals, no separators: `-1234.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Debug for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fen({self})")
    }
}

impl FromStr for Fen {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fen::parse_signed(s)
    }
}

impl From<Fen> for Decimal {
    fn from(f: Fen) -> Decimal {
        f.to_yuan()
    }
}

impl TryFrom<Decimal> for Fen {
    type Error = MoneyError;
    fn try_from(d: Decimal) -> Result<Self, Self::Error> {
        Fen::from_yuan_decimal(d)
    }
}

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Fen::parse_signed(&s).map_err(serde::de::Error::custom)
    }
}

/// Largest scale (decimal places) accepted for a rate; keeps rate × amount inside `i128`.
pub const MAX_RATE_SCALE: u32 = 10;

/// A rate held as an exact fraction `numer / denom` (reduced), with the decimal it came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Fraction {
    numer: i64,
    denom: i64,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

fn fraction_of(d: Decimal, upper: Decimal) -> Result<(Decimal, Fraction), MoneyError> {
    let d = d.normalize();
    if (d.is_sign_negative() && !d.is_zero()) || d >= upper {
        return Err(MoneyError::RateOutOfRange);
    }
    if d.scale() > MAX_RATE_SCALE {
        return Err(MoneyError::RateTooPrecise);
    }
    let numer = i64::try_from(d.mantissa()).map_err(|_| MoneyError::RateOutOfRange)?;
    let denom = 10_i64.pow(d.scale());
    let g = gcd(numer, denom);
    Ok((
        d,
        Fraction {
            numer: numer / g,
            denom: denom / g,
        },
    ))
}

fn parse_rate_decimal(s: &str) -> Result<Decimal, MoneyError> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
    {
        return Err(MoneyError::InvalidRate);
    }
    Decimal::from_str_exact(t).map_err(|_| MoneyError::InvalidRate)
}

/// A nominal annual interest rate as a fraction (`0.12` = 12 % a year), 0 ≤ r < 10,
/// at most 10 decimal places. The monthly rate is exactly `annual / 12` (kept as a
/// fraction, never truncated).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    decimal: Decimal,
    frac: Fraction,
}

impl Rate {
    pub const ZERO: Rate = Rate {
        decimal: Decimal::ZERO,
        frac: Fraction { numer: 0, denom: 1 },
    };

    /// Parses a rate written as a decimal fraction, e.g. `"0.12"` or `"0.0365"`.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Self::from_decimal(parse_rate_decimal(s)?)
    }

    pub fn from_decimal(d: Decimal) -> Result<Self, MoneyError> {
        let (decimal, frac) = fraction_of(d, Decimal::TEN)?;
        Ok(Rate { decimal, frac })
    }

    /// The annual rate as a decimal fraction.
    pub fn annual(&self) -> Decimal {
        self.decimal
    }

    /// The monthly rate `annual / 12` as an exact fraction `(numerator, denominator)`.
    pub fn monthly_fraction(&self) -> (i128, i128) {
        let n = i128::from(self.frac.numer);
        let d = i128::from(self.frac.denom) * 12;
        let g = i128::from(gcd(self.frac.numer, 12));
        (n / g, d / g)
    }

    /// The monthly rate as a decimal (28 significant digits; use
    /// [`Rate::monthly_fraction`] where exactness matters).
    pub fn monthly(&self) -> Decimal {
        self.decimal / Decimal::from(12)
    }

    pub fn is_zero(&self) -> bool {
        self.frac.numer == 0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.decimal, f)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({})", self.decimal)
    }
}

impl FromStr for Rate {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rate::parse(s)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.decimal)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A monthly fee rate on the original principal (`0.003` = 0.3 % a month), 0 ≤ r < 1,
/// at most 10 decimal places.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeeRate {
    decimal: Decimal,
    frac: Fraction,
}

impl FeeRate {
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Self::from_decimal(parse_rate_decimal(s)?)
    }

    pub fn from_decimal(d: Decimal) -> Result<Self, MoneyError> {
        let (decimal, frac) = fraction_of(d, Decimal::ONE)?;
        Ok(FeeRate { decimal, frac })
    }

    pub fn as_decimal(&self) -> Decimal {
        self.decimal
    }

    /// `amount × rate`, rounded half-up to the fen.
    pub fn apply(&self, amount: Fen) -> Fen {
        // |amount| < 2^63 and numer < 10^10, so the product fits in i128; the result
        // is at most |amount| because the rate is below 1.
        let v = div_round_half_up(
            i128::from(amount.0) * i128::from(self.frac.numer),
            i128::from(self.frac.denom),
        );
        Fen(v as i64)
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.decimal, f)
    }
}

impl fmt::Debug for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeeRate({})", self.decimal)
    }
}

impl Serialize for FeeRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.decimal)
    }
}

impl<'de> Deserialize<'de> for FeeRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        FeeRate::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parses_yuan_strings() {
        assert_eq!(Fen::parse("1234.56"), Ok(Fen::new(123_456)));
        assert_eq!(Fen::parse("1234.5"), Ok(Fen::new(123_450)));
        assert_eq!(Fen::parse(" 1234 "), Ok(Fen::new(123_400)));
        assert_eq!(Fen::parse("0.01"), Ok(Fen::new(1)));
        assert_eq!(Fen::parse("+7"), Ok(Fen::new(700)));
        assert_eq!(Fen::parse("-0"), Ok(Fen::ZERO));
        assert_eq!(Fen::parse_signed("-1.05"), Ok(Fen::new(-105)));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Fen::parse(""), Err(MoneyError::Empty));
        assert_eq!(Fen::parse("1.234"), Err(MoneyError::TooManyDecimals));
        assert_eq!(Fen::parse("-1"), Err(MoneyError::Negative));
        for bad in [
            "1,000", "1e3", ".5", "1.", "abc", "--1", "1.2.3", "¥1", "１",
        ] {
            assert_eq!(Fen::parse(bad), Err(MoneyError::Invalid), "{bad}");
        }
        assert_eq!(
            Fen::parse("92233720368547758.08"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Fen::parse("92233720368547758.07"), Ok(Fen::new(i64::MAX)));
        assert_eq!(
            MoneyError::TooManyDecimals.code(),
            "money.too_many_decimals"
        );
    }

    #[test]
    fn displays_as_yuan() {
        assert_eq!(Fen::new(123_456).to_string(), "1234.56");
        assert_eq!(Fen::new(5).to_string(), "0.05");
        assert_eq!(Fen::new(-5).to_string(), "-0.05");
        assert_eq!(Fen::new(i64::MIN).to_string(), "-92233720368547758.08");
    }

    #[test]
    fn checked_arithmetic() {
        let a = Fen::new(100);
        assert_eq!(a.checked_add(Fen::new(1)), Ok(Fen::new(101)));
        assert_eq!(a.checked_sub(Fen::new(101)), Ok(Fen::new(-1)));
        assert_eq!(a.checked_mul(3), Ok(Fen::new(300)));
        assert_eq!(Fen::MAX.checked_add(a), Err(MoneyError::Overflow));
        assert_eq!(Fen::MAX.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(Fen::new(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
        assert_eq!(Fen::checked_sum([a, a, a]), Ok(Fen::new(300)));
    }

    #[test]
    fn decimal_round_trip_and_rounding() {
        assert_eq!(Fen::new(123_456).to_yuan(), dec!(1234.56));
        assert_eq!(Fen::from_yuan_decimal(dec!(1.500)), Ok(Fen::new(150)));
        assert_eq!(
            Fen::from_yuan_decimal(dec!(1.505)),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(round_yuan_half_up(dec!(1.005)), Ok(Fen::new(101)));
        assert_eq!(round_yuan_half_up(dec!(1.0049)), Ok(Fen::new(100)));
        assert_eq!(round_yuan_half_up(dec!(-1.005)), Ok(Fen::new(-101)));
        assert_eq!(
            Fen::new(10_000_000).mul_decimal_half_up(dec!(0.01)),
            Ok(Fen::new(100_000))
        );
        assert_eq!(Fen::new(5).mul_decimal_half_up(dec!(0.1)), Ok(Fen::new(1)));
    }

    #[test]
    fn integer_half_up() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(div_round_half_up(-4, 10), 0);
        assert_eq!(div_round_half_up(15, 10), 2);
        let big = i128::from(i64::MAX) * 1_000_000;
        assert_eq!(div_round_half_up(big, 1_000_000), i128::from(i64::MAX));
    }

    #[test]
    fn serde_as_yuan_string() {
        let json = serde_json::to_string(&Fen::new(123_456)).unwrap();
        assert_eq!(json, "\"1234.56\"");
        let back: Fen = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Fen::new(123_456));
        assert!(serde_json::from_str::<Fen>("1234.56").is_err());
        assert!(serde_json::from_str::<Fen>("\"1.001\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(fen in proptest::num::i64::ANY) {
            let f = Fen::new(fen);
            proptest::prop_assert_eq!(Fen::parse_signed(&f.to_string()), Ok(f));
            proptest::prop_assert_eq!(Fen::from_yuan_decimal(f.to_yuan()), Ok(f));
        }
    }

    #[test]
    fn rates() {
        let r = Rate::parse("0.12").unwrap();
        assert_eq!(r.annual(), dec!(0.12));
        assert_eq!(r.monthly_fraction(), (1, 100));
        assert_eq!(r.monthly(), dec!(0.01));
        assert_eq!(Rate::parse("0.1").unwrap().monthly_fraction(), (1, 120));
        assert_eq!(Rate::parse("0").unwrap().monthly_fraction(), (0, 1));
        assert_eq!(Rate::parse("10"), Err(MoneyError::RateOutOfRange));
        assert_eq!(Rate::parse("-0.01"), Err(MoneyError::RateOutOfRange));
        assert_eq!(Rate::parse("abc"), Err(MoneyError::InvalidRate));
        assert_eq!(Rate::parse("1e-2"), Err(MoneyError::InvalidRate));
        assert_eq!(
            Rate::parse("0.00000000001"),
            Err(MoneyError::RateTooPrecise)
        );
        assert_eq!(
            Rate::parse("9.9999999999").unwrap().to_string(),
            "9.9999999999"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"0.12\"");
        assert_eq!(serde_json::from_str::<Rate>(&json).unwrap(), r);
    }

    #[test]
    fn fee_rate_applies_half_up() {
        let f = FeeRate::parse("0.003").unwrap();
        assert_eq!(f.apply(Fen::new(10_000_000)), Fen::new(30_000));
        assert_eq!(f.apply(Fen::new(500)), Fen::new(2)); // 1.5 fen → 2
        assert_eq!(FeeRate::parse("1"), Err(MoneyError::RateOutOfRange));
    }
}
