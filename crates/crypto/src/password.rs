//! Passwords: argon2id hashing into PHC strings, verification, rehash
//! detection, and the password policy.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so
//! the parameters travel with each hash: raising [`Argon2Params`] later makes
//! [`needs_rehash`] true for old hashes, and the server rehashes at the next
//! successful login. Verification reads the parameters from the hash itself.
//!
//! The policy ([`PasswordPolicy`]) returns every failed rule at once as a
//! [`PolicyViolation`] with a stable code (`password.too_short`, …) for the UI
//! to translate, plus English and Chinese messages for logs and APIs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::CryptoError;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// The OWASP baseline: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl Argon2Params {
    fn hasher(&self) -> Result<Argon2<'static>, CryptoError> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| CryptoError::PasswordHash(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(
            argon2::Algorithm::Argon2id,
            Version::V0x13,
            params,
        ))
    }
}

/// Hashes `password` with argon2id and a fresh 16-byte salt; returns the PHC string.
pub fn hash_password(password: &str, params: &Argon2Params) -> Result<String, CryptoError> {
    let mut salt = [0u8; 16];
    crate::fill_random(&mut salt)?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    Ok(params
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?
        .to_string())
}

/// Checks `password` against a PHC hash (in constant time, by argon2).
/// `Ok(false)` for a wrong password; an error only if `phc` is not a valid argon2 hash.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, CryptoError> {
    let parsed = PasswordHash::new(phc).map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(CryptoError::PasswordHash(e.to_string())),
    }
}

/// Whether a stored hash should be replaced (after a successful login): not
/// argon2id v19, or made with parameters other than `params`. A hash that does
/// not parse also needs replacing.
pub fn needs_rehash(phc: &str, params: &Argon2Params) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => {
            p.m_cost() != params.m_cost_kib
                || p.t_cost() != params.t_cost
                || p.p_cost() != params.p_cost
                || p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                    != Params::DEFAULT_OUTPUT_LEN
        }
        Err(_) => true,
    }
}

/// Rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Minimum length in characters (default 10).
    pub min_length: usize,
    /// Maximum length in characters (default 128), bounding hashing work.
    pub max_length: usize,
    /// How many of the four classes (lower, upper, digit, symbol) are required (default 3).
    pub min_classes: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 10,
            max_length: 128,
            min_classes: 3,
        }
    }
}

/// One failed password rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code")]
pub enum PolicyViolation {
    /// Shorter than the minimum.
    #[serde(rename = "password.too_short")]
    TooShort { min: usize },
    /// Longer than the maximum.
    #[serde(rename = "password.too_long")]
    TooLong { max: usize },
    /// Too few character classes.
    #[serde(rename = "password.too_few_classes")]
    TooFewClasses { required: u8, found: u8 },
    /// Same as the username (ignoring case and surrounding spaces).
    #[serde(rename = "password.equals_username")]
    EqualsUsername,
    /// In the embedded list of common passwords.
    #[serde(rename = "password.common")]
    Common,
}

impl PolicyViolation {
    /// A stable code for the UI to translate.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "password.too_short",
            PolicyViolation::TooLong { .. } => "password.too_long",
            PolicyViolation::TooFewClasses { .. } => "password.too_few_classes",
            PolicyViolation::EqualsUsername => "password.equals_username",
            PolicyViolation::Common => "password.common",
        }
    }

    /// English text.
    pub fn message_en(&self) -> String {
        match self {
            PolicyViolation::TooShort { min } => format!("must be at least {min} characters long"),
            PolicyViolation::TooLong { max } => format!("must be at most {max} characters long"),
            PolicyViolation::TooFewClasses { required, .. } => format!(
                "must contain at least {required} of: lowercase letters, uppercase letters, digits, symbols"
            ),
            PolicyViolation::EqualsUsername => "must not be the same as the username".into(),
            PolicyViolation::Common => "is too common; choose a less predictable password".into(),
        }
    }

    /// Chinese text.
    pub fn message_zh(&self) -> String {
        match self {
            PolicyViolation::TooShort { min } => format!("密码长度至少为 {min} 个字符"),
            PolicyViolation::TooLong { max } => format!("密码长度不能超过 {max} 个字符"),
            PolicyViolation::TooFewClasses { required, .. } => {
                format!("密码须至少包含小写字母、大写字母、数字、符号中的 {required} 类")
            }
            PolicyViolation::EqualsUsername => "密码不能与用户名相同".into(),
            PolicyViolation::Common => "密码过于常见，请选择更难猜测的密码".into(),
        }
    }
}

/// Common passwords (compared case-insensitively): leaked-list favourites and
/// the patterns seen in Chinese leaks, including ones that pass the class rules.
const COMMON_PASSWORDS: &[&str] = &[
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "0123456789",
    "111111",
    "1111111111",
    "000000",
    "0000000000",
    "888888",
    "8888888888",
    "666666",
    "6666666666",
    "123123",
    "123123123",
    "123321",
    "654321",
    "987654321",
    "9876543210",
    "password",
    "password1",
    "password123",
    "password1!",
    "password@123",
    "p@ssw0rd",
    "p@ssw0rd1",
    "p@ssw0rd123",
    "p@ssword123",
    "passw0rd",
    "passw0rd!",
    "passw0rd123",
    "qwerty",
    "qwerty123",
    "qwerty123!",
    "qwertyuiop",
    "qwe123",
    "qwe123456",
    "qwe@123456",
    "qwer1234",
    "qwer1234!",
    "1qaz2wsx",
    "1qaz2wsx3edc",
    "1qaz@wsx",
    "1qaz@wsx3edc",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "zaq12wsx",
    "zaq1@wsx",
    "abc123",
    "abc123456",
    "abc@123456",
    "abcd1234",
    "abcd@1234",
    "abcd1234!",
    "abcdef123",
    "aa123456",
    "aa123456789",
    "a123456",
    "a123456789",
    "a1234567890",
    "a1b2c3d4",
    "a1b2c3d4e5",
    "aa112233",
    "admin",
    "admin123",
    "admin@123",
    "admin@1234",
    "admin@12345",
    "admin@123456",
    "admin123456",
    "administrator",
    "root@123",
    "root@123456",
    "test@123",
    "test@123456",
    "welcome",
    "welcome1",
    "welcome@123",
    "welcome123",
    "changeme",
    "changeme123",
    "iloveyou",
    "iloveyou1",
    "woaini",
    "woaini1314",
    "woaini520",
    "5201314",
    "520520520",
    "1314520",
    "13145201314",
    "wang123456",
    "zhang123456",
    "li123456",
    "liu123456",
    "chen123456",
    "huang123456",
    "zhudai",
    "zhudai123",
    "zhudai@123",
    "zhudai@2024",
    "zhudai@2025",
    "zhudai@2026",
    "dragon",
    "monkey",
    "sunshine",
    "football",
    "baseball",
    "superman",
    "letmein",
    "trustno1",
    "computer",
    "internet",
    "asdfghjkl",
    "asdf1234",
    "asd123456",
    "zxcvbnm",
    "zxcvbnm123",
    "zxc123456",
    "qazwsxedc",
    "q1w2e3r4t5",
    "aa123456!",
    "aaa111111",
    "abc12345678",
    "china123",
    "china@123",
    "beijing123",
    "shanghai123",
    "p@55w0rd",
    "p@55word",
    "pa$$w0rd",
    "pa$$word",
    "Passw0rd@123",
];

impl PasswordPolicy {
    /// Every rule `password` fails for `username`; empty when it is acceptable.
    pub fn check(&self, password: &str, username: &str) -> Vec<PolicyViolation> {
        let mut failed = Vec::new();
        let len = password.chars().count();
        if len < self.min_length {
            failed.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if len > self.max_length {
            failed.push(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }
        let found = character_classes(password);
        if found < self.min_classes {
            failed.push(PolicyViolation::TooFewClasses {
                required: self.min_classes,
                found,
            });
        }
        let username = username.trim();
        if !username.is_empty() && password.trim().to_lowercase() == username.to_lowercase() {
            failed.push(PolicyViolation::EqualsUsername);
        }
        let lower = password.to_lowercase();
        if COMMON_PASSWORDS.iter().any(|c| c.to_lowercase() == lower) {
            failed.push(PolicyViolation::Common);
        }
        failed
    }
}

fn character_classes(password: &str) -> u8 {
    let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
    for c in password.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_ascii_digit() {
            digit = true;
        } else {
            // Punctuation, spaces, and uncased letters such as 汉字.
            symbol = true;
        }
    }
    [lower, upper, digit, symbol]
        .into_iter()
        .filter(|b| *b)
        .count() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters keep the tests fast; the default is exercised once.
    const FAST: Argon2Params = Argon2Params {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn hash_and_verify_with_defaults() {
        let params = Argon2Params::default();
        let phc = hash_password("Correct horse 9", &params).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("Correct horse 9", &phc).unwrap());
        assert!(!verify_password("correct horse 9", &phc).unwrap());
        assert!(!needs_rehash(&phc, &params));
    }

    #[test]
    fn salts_differ_and_malformed_hash_is_an_error() {
        let a = hash_password("same password", &FAST).unwrap();
        let b = hash_password("same password", &FAST).unwrap();
        assert_ne!(a, b);
        assert!(verify_password("x", "not a phc string").is_err());
        assert!(hash_password(
            "x",
            &Argon2Params {
                m_cost_kib: 1,
                t_cost: 1,
                p_cost: 1
            }
        )
        .is_err());
    }

    #[test]
    fn needs_rehash_when_parameters_change() {
        let phc = hash_password("Some password 1", &FAST).unwrap();
        assert!(!needs_rehash(&phc, &FAST));
        assert!(needs_rehash(&phc, &Argon2Params::default()));
        assert!(needs_rehash(&phc, &Argon2Params { t_cost: 2, ..FAST }));
        assert!(needs_rehash("garbage", &FAST));
        // An argon2i hash verifies but must be upgraded.
        let salt = SaltString::encode_b64(&[5u8; 16]).unwrap();
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("pw", &argon2i).unwrap());
        assert!(needs_rehash(&argon2i, &FAST));
    }

    fn codes(v: &[PolicyViolation]) -> Vec<&'static str> {
        v.iter().map(PolicyViolation::code).collect()
    }

    #[test]
    fn policy_accepts_good_passwords() {
        let p = PasswordPolicy::default();
        assert!(p.check("Tr0ub4dor&3x", "lilei").is_empty());
        assert!(p.check("horse battery 9 staple", "lilei").is_empty());
        assert!(p.check("风控审核Review2024", "lilei").is_empty());
    }

    #[test]
    fn policy_reports_every_failed_rule() {
        let p = PasswordPolicy::default();
        assert_eq!(
            codes(&p.check("abc", "u")),
            vec!["password.too_short", "password.too_few_classes"]
        );
        assert_eq!(
            codes(&p.check("alllowercaseletters", "u")),
            vec!["password.too_few_classes"]
        );
        assert_eq!(
            codes(&p.check("Wang.Lei2024", "wang.lei2024")),
            vec!["password.equals_username"]
        );
        assert_eq!(
            codes(&p.check("Admin@123456", "root")),
            vec!["password.common"]
        );
        assert_eq!(
            codes(&p.check("P@ssw0rd123", "root")),
            vec!["password.common"]
        );
        assert_eq!(codes(&p.check("Woaini1314!", "root")), Vec::<&str>::new());
        assert_eq!(
            codes(&p.check(&"Aa1!".repeat(40), "root")),
            vec!["password.too_long"]
        );
    }

    #[test]
    fn violations_have_messages_in_both_languages() {
        let all = [
            PolicyViolation::TooShort { min: 10 },
            PolicyViolation::TooLong { max: 128 },
            PolicyViolation::TooFewClasses {
                required: 3,
                found: 1,
            },
            PolicyViolation::EqualsUsername,
            PolicyViolation::Common,
        ];
        let mut seen = std::collections::HashSet::new();
        for v in &all {
            assert!(v.code().starts_with("password."));
            assert!(seen.insert(v.code()));
            assert!(!v.message_en().is_empty());
            assert!(v.message_zh().contains("密码"));
        }
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "password.too_short", "min": 10})
        );
    }
}
