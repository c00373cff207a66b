//! Personal and business identifiers: the resident identity card number
//! ([`ResidentId`], GB 11643-1999, including the residence permits of Hong Kong, Macao and
//! Taiwan residents), the unified social credit code ([`Uscc`], GB 32100-2015), bank card
//! numbers ([`BankCard`], Luhn), mainland mobile numbers ([`Mobile`]) and e-mail addresses
//! ([`Email`]).
//!
//! Each type only holds a valid, normalised value. `Debug` prints the masked form so that
//! identifiers do not leak into logs; `Display` and `as_str` give the full value for
//! storage and for the people allowed to see it.

use crate::mask;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("resident ID number must have 18 characters (or 15 digits for an old card)")]
    ResidentIdLength,
    #[error("resident ID number must be 17 digits followed by a digit or X")]
    ResidentIdFormat,
    #[error("resident ID number check digit is wrong")]
    ResidentIdChecksum,
    #[error("resident ID number holds no valid date of birth")]
    ResidentIdBirthDate,
    #[error("resident ID number date of birth is in the future")]
    ResidentIdBirthInFuture,
    #[error("resident ID number starts with an unknown province code")]
    ResidentIdRegion,
    #[error("unified social credit code must have 18 characters")]
    UsccLength,
    #[error("unified social credit code may only use 0-9 and A-Y without I, O, Z, S, V")]
    UsccCharset,
    #[error("unified social credit code check character is wrong")]
    UsccChecksum,
    #[error("bank card number must have 16 to 19 digits")]
    BankCardLength,
    #[error("bank card number may only contain digits")]
    BankCardFormat,
    #[error("bank card number fails the Luhn check")]
    BankCardChecksum,
    #[error("mobile number must be 11 digits starting with 13-19, optionally after +86")]
    MobileFormat,
    #[error("e-mail address is not valid")]
    EmailFormat,
}

impl IdentError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            IdentError::ResidentIdLength => "resident_id.length",
            IdentError::ResidentIdFormat => "resident_id.format",
            IdentError::ResidentIdChecksum => "resident_id.checksum",
            IdentError::ResidentIdBirthDate => "resident_id.birth_date",
            IdentError::ResidentIdBirthInFuture => "resident_id.birth_in_future",
            IdentError::ResidentIdRegion => "resident_id.region",
            IdentError::UsccLength => "uscc.length",
            IdentError::UsccCharset => "uscc.charset",
            IdentError::UsccChecksum => "uscc.checksum",
            IdentError::BankCardLength => "bank_card.length",
            IdentError::BankCardFormat => "bank_card.format",
            IdentError::BankCardChecksum => "bank_card.checksum",
            IdentError::MobileFormat => "mobile.format",
            IdentError::EmailFormat => "email.format",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resident ID
// ---------------------------------------------------------------------------------------

const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_ID_CHECK: [u8; 11] = *b"10X98765432";

/// Province-level codes (first two digits, GB/T 2260) and names: the 31 mainland
/// provinces, plus 81/82/83 used by residence permits of Hong Kong, Macao and Taiwan
/// residents.
pub const PROVINCES: [(&str, &str); 34] = [
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
    ("81", "香港特别行政区"),
    ("82", "澳门特别行政区"),
    ("83", "台湾地区"),
];

/// The province name for a two-digit province code.
pub fn province_name(code: &str) -> Option<&'static str> {
    PROVINCES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// The GB 11643-1999 check character (`0`-`9` or `X`) of the first 17 digits.
/// `body` must be 17 ASCII digits; anything else gives `None`.
pub fn resident_id_check_char(body: &[u8]) -> Option<char> {
    if body.len() != 17 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = body
        .iter()
        .zip(RESIDENT_ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(char::from(RESIDENT_ID_CHECK[(sum % 11) as usize]))
}

/// What kind of document an 18-digit resident ID number belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentIdKind {
    /// 居民身份证 of a mainland resident.
    Resident,
    /// 港澳台居民居住证 for a Hong Kong resident (810000).
    HongKongResidencePermit,
    /// 港澳台居民居住证 for a Macao resident (820000).
    MacaoResidencePermit,
    /// 港澳台居民居住证 for a Taiwan resident (830000).
    TaiwanResidencePermit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn zh_name(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
        }
    }
}

/// A resident identity card number, always in the 18-character form with an upper-case
/// `X` check character. 15-digit legacy numbers are converted on parse.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResidentId(String);

fn birth_date_of(digits8: &[u8]) -> Option<NaiveDate> {
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0_u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(num(digits8.get(0..4)?)?).ok()?;
    let month = num(digits8.get(4..6)?)?;
    let day = num(digits8.get(6..8)?)?;
    if year < 1900 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

impl ResidentId {
    /// For values built valid by construction (see [`crate::generate`]).
    pub(crate) fn new_unchecked(s: String) -> Self {
        ResidentId(s)
    }

    /// Parses an 18-character number (check character `X` in either case) or a
    /// 15-digit legacy number. Surrounding whitespace is ignored.
    ///
    /// Checks: format, check character, a real date of birth from 1900 on, and a known
    /// province code. It does not know today's date; use [`ResidentId::parse_as_of`] to
    /// also refuse a date of birth in the future.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let t = s.trim();
        let b = t.as_bytes();
        let full: Vec<u8> = match b.len() {
            18 => {
                if !b[..17].iter().all(u8::is_ascii_digit) {
                    return Err(IdentError::ResidentIdFormat);
                }
                let last = b[17].to_ascii_uppercase();
                if !(last.is_ascii_digit() || last == b'X') {
                    return Err(IdentError::ResidentIdFormat);
                }
                let expected =
                    resident_id_check_char(&b[..17]).ok_or(IdentError::ResidentIdFormat)?;
                if char::from(last) != expected {
                    return Err(IdentError::ResidentIdChecksum);
                }
                let mut v = b[..17].to_vec();
                v.push(last);
                v
            }
            15 => {
                if !b.iter().all(u8::is_ascii_digit) {
                    return Err(IdentError::ResidentIdFormat);
                }
                let mut v = Vec::with_capacity(18);
                v.extend_from_slice(&b[..6]);
                v.extend_from_slice(b"19");
                v.extend_from_slice(&b[6..]);
                let check = resident_id_check_char(&v).ok_or(IdentError::ResidentIdFormat)?;
                v.push(check as u8);
                v
            }
            _ => return Err(IdentError::ResidentIdLength),
        };
        if birth_date_of(&full[6..14]).is_none() {
            return Err(IdentError::ResidentIdBirthDate);
        }
        let province = std::str::from_utf8(&full[..2]).map_err(|_| IdentError::ResidentIdFormat)?;
        if province_name(province).is_none() {
            return Err(IdentError::ResidentIdRegion);
        }
        String::from_utf8(full)
            .map(ResidentId)
            .map_err(|_| IdentError::ResidentIdFormat)
    }

    /// Like [`ResidentId::parse`], and also refuses a date of birth after `today`.
    pub fn parse_as_of(s: &str, today: NaiveDate) -> Result<Self, IdentError> {
        let id = Self::parse(s)?;
        if id.birth_date() > today {
            return Err(IdentError::ResidentIdBirthInFuture);
        }
        Ok(id)
    }

    /// Builds the number from its first 17 digits, computing the check character.
    pub fn from_body(body17: &str) -> Result<Self, IdentError> {
        let check =
            resident_id_check_char(body17.as_bytes()).ok_or(IdentError::ResidentIdFormat)?;
        Self::parse(&format!("{body17}{check}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> ResidentIdKind {
        match &self.0[..2] {
            "81" => ResidentIdKind::HongKongResidencePermit,
            "82" => ResidentIdKind::MacaoResidencePermit,
            "83" => ResidentIdKind::TaiwanResidencePermit,
            _ => ResidentIdKind::Resident,
        }
    }

    /// The date of birth (digits 7–14).
    pub fn birth_date(&self) -> NaiveDate {
        // Checked on parse; the fallback is unreachable but keeps the code panic-free.
        birth_date_of(&self.0.as_bytes()[6..14]).unwrap_or(NaiveDate::MIN)
    }

    /// Age in completed years on `date`, or `None` if `date` is before the birth date.
    /// Someone born on 29 February turns a year older on 1 March in common years.
    pub fn age_on(&self, date: NaiveDate) -> Option<u32> {
        let birth = self.birth_date();
        if date < birth {
            return None;
        }
        let mut age = date.year() - birth.year();
        if (date.month(), date.day()) < (birth.month(), birth.day()) {
            age -= 1;
        }
        u32::try_from(age).ok()
    }

    /// Gender from the 17th digit: odd is male, even is female.
    pub fn gender(&self) -> Gender {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// The six-digit administrative division code of the issuing place (first 6 digits).
    pub fn region_code(&self) -> &str {
        &self.0[..6]
    }

    /// The province-level code (first two digits).
    pub fn province_code(&self) -> &str {
        &self.0[..2]
    }

    /// The province-level name of the issuing place, e.g. `北京市`.
    pub fn province_name(&self) -> &'static str {
        province_name(self.province_code()).unwrap_or("")
    }

    /// The masked form for display: `110***********002X`.
    pub fn masked(&self) -> String {
        mask::resident_id(&self.0)
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

impl FromStr for ResidentId {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ResidentId {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResidentId> for String {
    fn from(v: ResidentId) -> String {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// Unified social credit code
// ---------------------------------------------------------------------------------------

/// The 31 characters of GB 32100-2015, in value order (no I, O, Z, S, V).
pub const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn uscc_value(c: u8) -> Option<u32> {
    USCC_CHARSET.iter().position(|&x| x == c).map(|p| p as u32)
}

/// The check character of the first 17 characters of a USCC (upper case expected).
pub fn uscc_check_char(body: &[u8]) -> Option<char> {
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0_u32;
    for (c, w) in body.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(*c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(char::from(USCC_CHARSET[check as usize]))
}

/// A unified social credit code (统一社会信用代码), upper case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uscc(String);

impl Uscc {
    /// For values built valid by construction (see [`crate::generate`]).
    pub(crate) fn new_unchecked(s: String) -> Self {
        Uscc(s)
    }

    /// Parses an 18-character code; lower case is accepted and normalised.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let t = s.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        if b.len() != 18 {
            return Err(IdentError::UsccLength);
        }
        if !b.iter().all(|&c| uscc_value(c).is_some()) {
            return Err(IdentError::UsccCharset);
        }
        let expected = uscc_check_char(&b[..17]).ok_or(IdentError::UsccCharset)?;
        if char::from(b[17]) != expected {
            return Err(IdentError::UsccChecksum);
        }
        Ok(Uscc(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Registration authority code (登记管理部门代码), the first character.
    pub fn authority_code(&self) -> char {
        char::from(self.0.as_bytes()[0])
    }

    /// Six-digit administrative division code (characters 3–8).
    pub fn region_code(&self) -> &str {
        &self.0[2..8]
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Uscc {
    // A company code is public information; no masking.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uscc({})", self.0)
    }
}

impl FromStr for Uscc {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Uscc {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Uscc> for String {
    fn from(v: Uscc) -> String {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// Bank card
// ---------------------------------------------------------------------------------------

/// The Luhn check digit to append to `body` (ASCII digits), or `None` if not all digits.
pub fn luhn_check_digit(body: &[u8]) -> Option<u8> {
    let mut sum = 0_u32;
    // Counting from the right of the body, the digits in odd positions get doubled
    // (they become the even positions once the check digit is appended).
    for (i, b) in body.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A bank card number: 16–19 digits passing the Luhn check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BankCard(String);

impl BankCard {
    /// For values built valid by construction (see [`crate::generate`]).
    pub(crate) fn new_unchecked(s: String) -> Self {
        BankCard(s)
    }

    /// Parses a card number; spaces and dashes between digit groups are ignored.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let digits: String = s
            .trim()
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentError::BankCardFormat);
        }
        let b = digits.as_bytes();
        if !(16..=19).contains(&b.len()) {
            return Err(IdentError::BankCardLength);
        }
        if luhn_check_digit(&b[..b.len() - 1]) != Some(b[b.len() - 1]) {
            return Err(IdentError::BankCardChecksum);
        }
        Ok(BankCard(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// China UnionPay card (BIN starting with 62).
    pub fn is_unionpay(&self) -> bool {
        self.0.starts_with("62")
    }

    /// The first six digits (issuer identification number).
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// Masked for display: `6222 **** **** 1234`.
    pub fn masked(&self) -> String {
        mask::bank_card(&self.0)
    }
}

impl fmt::Display for BankCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BankCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BankCard({})", self.masked())
    }
}

impl FromStr for BankCard {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for BankCard {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<BankCard> for String {
    fn from(v: BankCard) -> String {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// Mobile
// ---------------------------------------------------------------------------------------

/// A mainland China mobile number, normalised to its 11 digits (`13812345678`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mobile(String);

impl Mobile {
    /// For values built valid by construction (see [`crate::generate`]).
    pub(crate) fn new_unchecked(s: String) -> Self {
        Mobile(s)
    }

    /// Parses `13812345678`, `+86 138 1234 5678`, `86-138-1234-5678`, `0086…`.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let t = s.trim();
        let t = t.strip_prefix('+').unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentError::MobileFormat);
        }
        let national = match digits.len() {
            11 => digits.as_str(),
            13 if digits.starts_with("86") => &digits[2..],
            15 if digits.starts_with("0086") => &digits[4..],
            _ => return Err(IdentError::MobileFormat),
        };
        let b = national.as_bytes();
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(IdentError::MobileFormat);
        }
        Ok(Mobile(national.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// E.164 form: `+8613812345678`.
    pub fn e164(&self) -> String {
        format!("+86{}", self.0)
    }

    /// Masked for display: `138****5678`.
    pub fn masked(&self) -> String {
        mask::mobile(&self.0)
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mobile({})", self.masked())
    }
}

impl FromStr for Mobile {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Mobile {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Mobile> for String {
    fn from(v: Mobile) -> String {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// E-mail
// ---------------------------------------------------------------------------------------

/// An e-mail address, checked pragmatically (not the full RFC 5322 grammar): one `@`,
/// a local part of 1–64 printable ASCII characters without spaces, quotes or brackets,
/// and a domain of at least two dot-separated labels of letters, digits and hyphens.
/// The domain is lower-cased; the local part is kept as given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let t = s.trim();
        let (local, domain) = t.split_once('@').ok_or(IdentError::EmailFormat)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let tld_ok = domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if !(local_ok && labels_ok && tld_ok && domain.len() <= 253) {
            return Err(IdentError::EmailFormat);
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// Masked for display: `z***@example.com`.
    pub fn masked(&self) -> String {
        mask::email(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

impl FromStr for Email {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Email {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn resident_id_vectors_from_rules() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(
            ResidentId::parse("110105194912310021"),
            Err(IdentError::ResidentIdChecksum)
        );
        // Lower-case x is accepted and normalised.
        assert_eq!(
            ResidentId::parse("11010519491231002x").unwrap().as_str(),
            "11010519491231002X"
        );
    }

    #[test]
    fn resident_id_derived_facts() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.birth_date(), d(1949, 12, 31));
        assert_eq!(id.gender(), Gender::Female); // 17th digit 2
        assert_eq!(id.region_code(), "110105");
        assert_eq!(id.province_name(), "北京市");
        assert_eq!(id.kind(), ResidentIdKind::Resident);
        assert_eq!(id.age_on(d(2024, 12, 30)), Some(74));
        assert_eq!(id.age_on(d(2024, 12, 31)), Some(75));
        assert_eq!(id.age_on(d(1949, 12, 30)), None);
        assert_eq!(format!("{id:?}"), "ResidentId(110***********002X)");
    }

    #[test]
    fn resident_id_rejects() {
        assert_eq!(
            ResidentId::parse("1101051949"),
            Err(IdentError::ResidentIdLength)
        );
        assert_eq!(
            ResidentId::parse("1101051949123100AX"),
            Err(IdentError::ResidentIdFormat)
        );
        // 1949-02-30 does not exist.
        let body = "11010519490230002";
        let check = resident_id_check_char(body.as_bytes()).unwrap();
        assert_eq!(
            ResidentId::parse(&format!("{body}{check}")),
            Err(IdentError::ResidentIdBirthDate)
        );
        // Year before 1900.
        assert_eq!(
            ResidentId::from_body("11010518991231002"),
            Err(IdentError::ResidentIdBirthDate)
        );
        // Unknown province 99.
        assert_eq!(
            ResidentId::from_body("99010519491231002"),
            Err(IdentError::ResidentIdRegion)
        );
        let future = ResidentId::from_body("11010520300101002").unwrap();
        assert_eq!(
            ResidentId::parse_as_of(future.as_str(), d(2026, 1, 1)),
            Err(IdentError::ResidentIdBirthInFuture)
        );
        assert!(ResidentId::parse_as_of("11010519491231002X", d(2026, 1, 1)).is_ok());
    }

    #[test]
    fn resident_id_legacy_15_digits() {
        let id = ResidentId::parse("110105491231002").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn residence_permits() {
        for (prefix, kind, name) in [
            (
                "810000",
                ResidentIdKind::HongKongResidencePermit,
                "香港特别行政区",
            ),
            (
                "820000",
                ResidentIdKind::MacaoResidencePermit,
                "澳门特别行政区",
            ),
            ("830000", ResidentIdKind::TaiwanResidencePermit, "台湾地区"),
        ] {
            let id = ResidentId::from_body(&format!("{prefix}19900101123")).unwrap();
            assert_eq!(id.kind(), kind);
            assert_eq!(id.province_name(), name);
            assert_eq!(id.region_code(), prefix);
            assert_eq!(id.gender(), Gender::Male);
        }
    }

    #[test]
    fn resident_id_serde() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"11010519491231002X\"");
        assert_eq!(serde_json::from_str::<ResidentId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ResidentId>("\"110105194912310021\"").is_err());
    }

    #[test]
    fn uscc_vector_from_rules() {
        let u = Uscc::parse("91110000600037341L").unwrap();
        assert_eq!(u.authority_code(), '9');
        assert_eq!(u.region_code(), "110000");
        assert_eq!(Uscc::parse("91110000600037341l").unwrap(), u);
        assert_eq!(
            Uscc::parse("91110000600037341M"),
            Err(IdentError::UsccChecksum)
        );
        assert_eq!(
            Uscc::parse("9111000060003734IL"),
            Err(IdentError::UsccCharset)
        );
        assert_eq!(Uscc::parse("911100006"), Err(IdentError::UsccLength));
    }

    #[test]
    fn bank_cards() {
        // A well-known Luhn-valid test number.
        let c = BankCard::parse("4111 1111 1111 1111").unwrap();
        assert_eq!(c.as_str(), "4111111111111111");
        assert!(!c.is_unionpay());
        assert_eq!(c.last4(), "1111");
        assert_eq!(
            BankCard::parse("4111111111111112"),
            Err(IdentError::BankCardChecksum)
        );
        assert_eq!(
            BankCard::parse("411111111111"),
            Err(IdentError::BankCardLength)
        );
        assert_eq!(
            BankCard::parse("4111a11111111111"),
            Err(IdentError::BankCardFormat)
        );
        let body = "622202100112345678";
        let check = luhn_check_digit(body.as_bytes()).unwrap();
        let up = BankCard::parse(&format!("{body}{}", char::from(check))).unwrap();
        assert!(up.is_unionpay());
        assert_eq!(up.bin(), "622202");
        assert_eq!(
            format!("{up:?}"),
            format!("BankCard(6222 **** **** {})", up.last4())
        );
    }

    #[test]
    fn mobiles() {
        for ok in [
            "13812345678",
            "+8613812345678",
            "+86 138 1234 5678",
            "86-138-1234-5678",
            "008613812345678",
        ] {
            assert_eq!(Mobile::parse(ok).unwrap().as_str(), "13812345678", "{ok}");
        }
        for bad in [
            "12812345678",
            "1381234567",
            "138123456789",
            "2381234567x",
            "+8713812345678",
        ] {
            assert_eq!(Mobile::parse(bad), Err(IdentError::MobileFormat), "{bad}");
        }
        let m = Mobile::parse("13812345678").unwrap();
        assert_eq!(m.e164(), "+8613812345678");
        assert_eq!(m.masked(), "138****5678");
    }

    #[test]
    fn emails() {
        let e = Email::parse(" zhang.san+loan@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "zhang.san+loan@example.com");
        assert_eq!(e.domain(), "example.com");
        assert_eq!(e.masked(), "z***@example.com");
        for bad in [
            "",
            "a",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a b@example.com",
            "a@-x.com",
            "a..b@example.com",
            "a@example.c0m",
            "张@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(IdentError::EmailFormat), "{bad}");
        }
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            IdentError::ResidentIdChecksum.code(),
            "resident_id.checksum"
        );
        assert_eq!(IdentError::UsccChecksum.code(), "uscc.checksum");
        assert_eq!(IdentError::MobileFormat.code(), "mobile.format");
    }
}
