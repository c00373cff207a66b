//! Deterministic builders of valid identifiers from a numeric seed, for the synthetic
//! data generator and for tests. Same seed, same value, on every platform; no `rand`
//! crate: [`SplitMix64`] is enough for test data and is not for anything secret.

use crate::ident::{
    luhn_check_digit, resident_id_check_char, uscc_check_char, BankCard, Gender, IdentError,
    Mobile, ResidentId, Uscc, PROVINCES, USCC_CHARSET,
};
use chrono::{Datelike, NaiveDate};

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (0 if `bound` is 0). Multiply-shift; the bias is below
    /// 2^-32 for the small bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// An ASCII digit string of length `len`.
    pub fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Mainland province codes (excludes the 81/82/83 permit codes).
fn mainland_provinces() -> impl Iterator<Item = &'static str> {
    PROVINCES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !matches!(*c, "81" | "82" | "83"))
}

/// A valid resident ID of a mainland resident born between 1950 and 2005.
pub fn resident_id(seed: u64) -> ResidentId {
    let mut rng = SplitMix64::new(seed);
    let from = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or(NaiveDate::MIN);
    let birth = from
        .checked_add_days(chrono::Days::new(rng.below(56 * 365)))
        .unwrap_or(from);
    let gender = if rng.below(2) == 0 {
        Gender::Male
    } else {
        Gender::Female
    };
    let provinces: Vec<&str> = mainland_provinces().collect();
    let province = provinces[rng.below(provinces.len() as u64) as usize];
    build_resident_id(&mut rng, province, birth, gender)
}

/// A valid resident ID with the given province code (e.g. `"44"`, or `"81"` for a Hong
/// Kong residence permit), date of birth and gender.
pub fn resident_id_with(
    seed: u64,
    province_code: &str,
    birth: NaiveDate,
    gender: Gender,
) -> Result<ResidentId, IdentError> {
    if !PROVINCES.iter().any(|(c, _)| *c == province_code) {
        return Err(IdentError::ResidentIdRegion);
    }
    if birth.year() < 1900 || birth.year() > 9999 {
        return Err(IdentError::ResidentIdBirthDate);
    }
    let mut rng = SplitMix64::new(seed);
    Ok(build_resident_id(&mut rng, province_code, birth, gender))
}

fn build_resident_id(
    rng: &mut SplitMix64,
    province: &str,
    birth: NaiveDate,
    gender: Gender,
) -> ResidentId {
    let region = if matches!(province, "81" | "82" | "83") {
        format!("{province}0000")
    } else {
        // Prefecture and county 01..=09 under the province: plausible, not a real lookup.
        format!("{province}01{:02}", 1 + rng.below(9))
    };
    let seq = rng.below(50) * 2 + 1; // odd 1..=99
    let seq = match gender {
        Gender::Male => rng.below(10) * 100 + seq, // odd third digit
        Gender::Female => rng.below(10) * 100 + seq - 1, // even third digit
    };
    let body = format!(
        "{region}{:04}{:02}{:02}{seq:03}",
        birth.year(),
        birth.month(),
        birth.day()
    );
    let check = resident_id_check_char(body.as_bytes()).unwrap_or('0');
    ResidentId::new_unchecked(format!("{body}{check}"))
}

/// A valid unified social credit code of a company (`91` + a region + an organisation
/// code with its GB 11714 check digit + the GB 32100 check character).
pub fn uscc(seed: u64) -> Uscc {
    let mut rng = SplitMix64::new(seed);
    let provinces: Vec<&str> = mainland_provinces().collect();
    let province = provinces[rng.below(provinces.len() as u64) as usize];
    let org = rng.digits(8);
    // GB 11714: weights 3 7 9 10 5 8 4 2; check = 11 − Σ mod 11 (10 → X, 11 → 0).
    let sum: u32 = org
        .bytes()
        .zip([3, 7, 9, 10, 5, 8, 4, 2])
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let org_check = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        v => char::from(b'0' + v as u8),
    };
    let body = format!("91{province}0000{org}{org_check}");
    debug_assert!(body.bytes().all(|b| USCC_CHARSET.contains(&b)));
    let check = uscc_check_char(body.as_bytes()).unwrap_or('0');
    Uscc::new_unchecked(format!("{body}{check}"))
}

/// A valid card number starting with `prefix` (digits) and `len` digits long (16–19),
/// the rest random, the last digit the Luhn check.
pub fn bank_card(seed: u64, prefix: &str, len: usize) -> Result<BankCard, IdentError> {
    if !(16..=19).contains(&len) {
        return Err(IdentError::BankCardLength);
    }
    if !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdentError::BankCardFormat);
    }
    if prefix.len() >= len {
        return Err(IdentError::BankCardLength);
    }
    let mut rng = SplitMix64::new(seed);
    let body = format!("{prefix}{}", rng.digits(len - 1 - prefix.len()));
    let check = luhn_check_digit(body.as_bytes()).ok_or(IdentError::BankCardFormat)?;
    Ok(BankCard::new_unchecked(format!(
        "{body}{}",
        char::from(check)
    )))
}

/// A valid 19-digit UnionPay debit card number (BIN 62…).
pub fn unionpay_card(seed: u64) -> BankCard {
    let mut rng = SplitMix64::new(seed);
    let body = format!("62{}", rng.digits(16));
    let check = luhn_check_digit(body.as_bytes()).unwrap_or(b'0');
    BankCard::new_unchecked(format!("{body}{}", char::from(check)))
}

/// A valid mainland mobile number.
pub fn mobile(seed: u64) -> Mobile {
    let mut rng = SplitMix64::new(seed);
    let second = 3 + rng.below(7);
    Mobile::new_unchecked(format!("1{second}{}", rng.digits(9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        // Reference value of SplitMix64 with seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn generated_values_parse() {
        for seed in 0..2_000 {
            let id = resident_id(seed);
            assert_eq!(ResidentId::parse(id.as_str()).as_ref(), Ok(&id), "{id}");
            let u = uscc(seed);
            assert_eq!(Uscc::parse(u.as_str()).as_ref(), Ok(&u));
            let c = unionpay_card(seed);
            assert_eq!(BankCard::parse(c.as_str()).as_ref(), Ok(&c));
            assert!(c.is_unionpay());
            let c = bank_card(seed, "622202", 16 + (seed % 4) as usize).unwrap();
            assert_eq!(BankCard::parse(c.as_str()).as_ref(), Ok(&c));
            let m = mobile(seed);
            assert_eq!(Mobile::parse(m.as_str()).as_ref(), Ok(&m));
        }
        assert_eq!(resident_id(7), resident_id(7));
    }

    #[test]
    fn resident_id_with_facts() {
        let birth = NaiveDate::from_ymd_opt(1988, 2, 29).unwrap();
        for seed in 0..200 {
            for gender in [Gender::Male, Gender::Female] {
                let id = resident_id_with(seed, "81", birth, gender).unwrap();
                assert_eq!(ResidentId::parse(id.as_str()).as_ref(), Ok(&id));
                assert_eq!(id.gender(), gender);
                assert_eq!(id.birth_date(), birth);
                assert_eq!(id.region_code(), "810000");
            }
        }
        assert_eq!(
            resident_id_with(1, "99", birth, Gender::Male),
            Err(IdentError::ResidentIdRegion)
        );
        assert!(bank_card(1, "62", 15).is_err());
    }
}
