//! Time-based one-time passwords (RFC 6238): secret generation, the
//! `otpauth://` enrolment URL and its QR code as SVG, and verification.
//!
//! Fixed parameters, the ones every authenticator app supports: HMAC-SHA-1,
//! 6 digits, 30-second steps, issuer `zhudai`, 160-bit secrets (RFC 4226 §4).
//!
//! Time is a parameter: every function takes the unix time from the caller's
//! injected clock. [`verify`] accepts the previous, current and next step
//! (±30 s of clock skew) and returns the **step** that matched; the caller
//! stores it and passes it back as `last_used_step`, so a code seen once (by a
//! shoulder-surfer, a phishing proxy) cannot be replayed within its window.
//!
//! The secret is stored by the caller encrypted ([`crate::envelope`]), not hashed:
//! verification needs it.

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

use crate::CryptoError;

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "zhudai";
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Secret length in bytes.
pub const SECRET_LEN: usize = 20;
/// Steps of tolerance either side of the current one.
pub const SKEW_STEPS: u64 = 1;

/// A TOTP shared secret. Zeroized on drop, redacted in `Debug`.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A fresh random 160-bit secret.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        crate::fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A secret from raw bytes (at least 16, as RFC 4226 requires).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() < 16 {
            return Err(CryptoError::Totp(format!(
                "a TOTP secret needs at least 16 bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret from its base32 form (RFC 4648, as shown to users; case, spaces
    /// and `=` padding ignored).
    pub fn from_base32(encoded: &str) -> Result<Self, CryptoError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            encoded
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .flat_map(char::to_uppercase)
                .collect(),
        );
        let bytes = Zeroizing::new(
            Secret::Encoded(cleaned.to_string())
                .to_bytes()
                .map_err(|_| CryptoError::Totp("secret is not valid base32".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// The raw bytes, e.g. to encrypt for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded base32, for manual entry in an authenticator app.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(Secret::Raw(self.0.to_vec()).to_encoded().to_string())
    }

    fn totp(&self, account_name: &str) -> Result<TOTP, CryptoError> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            // totp-rs's own skew is unused: `verify` walks the steps itself to report the match.
            0,
            STEP_SECONDS,
            self.0.to_vec(),
            Some(ISSUER.to_owned()),
            account_name.to_owned(),
        )
        .map_err(|e| CryptoError::Totp(format!("{e:?}")))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// The `otpauth://totp/zhudai:<account>?secret=…&issuer=zhudai` URL for enrolment.
/// `account_name` (the username) must not contain `:`.
pub fn enrolment_url(
    secret: &TotpSecret,
    account_name: &str,
) -> Result<Zeroizing<String>, CryptoError> {
    Ok(Zeroizing::new(secret.totp(account_name)?.get_url()))
}

/// The step number of a unix time.
pub fn step_of(unix_time: u64) -> u64 {
    unix_time / STEP_SECONDS
}

/// The code for the step containing `unix_time`.
pub fn code_at(secret: &TotpSecret, unix_time: u64) -> Result<String, CryptoError> {
    Ok(secret.totp("")?.generate(unix_time))
}

/// Checks `code` at `unix_time` with ±1 step of skew. Returns the matched
/// step, or `None` if the code is wrong or its step is not after
/// `last_used_step` (a replay). Spaces in `code` are ignored.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_time: u64,
    last_used_step: Option<u64>,
) -> Result<Option<u64>, CryptoError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = secret.totp("")?;
    let now = step_of(unix_time);
    let mut matched = None;
    // Check every candidate (no early exit) so timing does not reveal which step matched.
    for step in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
        let expected = totp.generate(step.saturating_mul(STEP_SECONDS));
        let fresh = last_used_step.is_none_or(|last| step > last);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    Ok(matched)
}

/// The enrolment URL as a QR code in SVG (for the server-rendered enrolment page).
pub fn qr_svg(url: &str) -> Result<String, CryptoError> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .map_err(|e| CryptoError::Qr(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 seed "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc6238_vectors_last_six_digits() {
        let s = rfc_secret();
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(&s, t).unwrap(), code, "t={t}");
        }
    }

    #[test]
    fn verify_with_skew_returns_matched_step() {
        let s = rfc_secret();
        let t = 1_111_111_111;
        let step = step_of(t);
        assert_eq!(verify(&s, "050471", t, None).unwrap(), Some(step));
        assert_eq!(verify(&s, "050 471", t, None).unwrap(), Some(step));
        // The same code 30 s later is still accepted (previous step), 60 s later not.
        assert_eq!(verify(&s, "050471", t + 30, None).unwrap(), Some(step));
        assert_eq!(verify(&s, "050471", t + 60, None).unwrap(), None);
        // A code from the next step is accepted early (client clock ahead).
        let next = code_at(&s, t + 30).unwrap();
        assert_eq!(verify(&s, &next, t, None).unwrap(), Some(step + 1));
        assert_eq!(verify(&s, "000000", t, None).unwrap(), None);
        assert_eq!(verify(&s, "12345", t, None).unwrap(), None);
        assert_eq!(verify(&s, "abcdef", t, None).unwrap(), None);
        // Near the epoch there is no previous step; no underflow.
        assert_eq!(verify(&s, "287082", 59, None).unwrap(), Some(1));
        assert_eq!(
            verify(&s, &code_at(&s, 0).unwrap(), 5, None).unwrap(),
            Some(0)
        );
    }

    #[test]
    fn replay_of_a_used_step_is_rejected() {
        let s = TotpSecret::generate().unwrap();
        let t = 1_700_000_000;
        let code = code_at(&s, t).unwrap();
        let step = verify(&s, &code, t, None).unwrap().unwrap();
        assert_eq!(verify(&s, &code, t + 5, Some(step)).unwrap(), None);
        let next = code_at(&s, t + 30).unwrap();
        assert_eq!(
            verify(&s, &next, t + 30, Some(step)).unwrap(),
            Some(step + 1)
        );
    }

    #[test]
    fn secret_encoding_and_url() {
        let s = TotpSecret::generate().unwrap();
        assert_eq!(s.as_bytes().len(), SECRET_LEN);
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        let again = TotpSecret::from_base32(&b32.to_lowercase()).unwrap();
        assert_eq!(again.as_bytes(), s.as_bytes());
        assert!(TotpSecret::from_base32("not base32 !!").is_err());
        assert!(TotpSecret::from_bytes(&[0; 10]).is_err());
        assert_eq!(format!("{s:?}"), "TotpSecret([REDACTED])");

        let url = enrolment_url(&s, "li.lei@example.cn").unwrap();
        assert!(
            url.starts_with("otpauth://totp/zhudai:li.lei%40example.cn?"),
            "{}",
            *url
        );
        assert!(url.contains(&format!("secret={}", b32.as_str())));
        assert!(url.contains("issuer=zhudai"));
        assert!(enrolment_url(&s, "bad:name").is_err());
    }

    #[test]
    fn qr_code_is_svg() {
        let s = TotpSecret::generate().unwrap();
        let url = enrolment_url(&s, "lilei").unwrap();
        let svg = qr_svg(&url).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#000000"));
    }
}
