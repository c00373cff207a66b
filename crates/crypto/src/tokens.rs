//! Opaque bearer tokens (sessions, API keys, receipt codes) and constant-time comparison.
//!
//! A token is a readable prefix plus 32 random bytes in unpadded base64url,
//! e.g. `zd_q3J…` (46 characters). The plaintext is shown once (set as a
//! cookie, displayed to the API client) and only its SHA-256 ([`TokenHash`]) is
//! stored, so a leaked database holds no usable token. A plain, unsalted hash is
//! right here: the input has 256 bits of entropy, so there is nothing to guess,
//! and the store can look a token up by its hash with an ordinary index.
//!
//! The prefix lets secret scanners and people recognise a leaked zhudai token
//! and tell kinds apart (`zd_` default; e.g. `zds_` session, `zdk_` API key).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::CryptoError;

/// The default token prefix.
pub const DEFAULT_PREFIX: &str = "zd_";
/// Random bytes per token.
pub const TOKEN_BYTES: usize = 32;

/// The SHA-256 of a token's full plaintext (prefix included). Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The 32 hash bytes, e.g. for a `BLOB`/`bytea` column.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, e.g. for a text column.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::MalformedKey("a token hash is 32 bytes".into()))?;
        Ok(Self(arr))
    }

    /// From stored hex.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(s)
            .map_err(|_| CryptoError::MalformedKey("a token hash is 64 hex characters".into()))?;
        Self::from_bytes(&bytes)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

// Same relation as the constant-time `eq`: byte equality.
impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

/// Token generation.
#[derive(Debug, Clone, Copy)]
pub struct Token;

impl Token {
    /// A fresh `zd_` token and its hash. Store the hash, hand out the plaintext.
    pub fn generate() -> Result<(SecretString, TokenHash), CryptoError> {
        Self::generate_with_prefix(DEFAULT_PREFIX)
    }

    /// A fresh token with another readable prefix (ASCII letters, digits, `_`, `-`; up to 16).
    pub fn generate_with_prefix(prefix: &str) -> Result<(SecretString, TokenHash), CryptoError> {
        if prefix.len() > 16
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(CryptoError::MalformedKey(format!(
                "invalid token prefix {prefix:?}"
            )));
        }
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        crate::fill_random(raw.as_mut())?;
        let mut plaintext = String::with_capacity(prefix.len() + 43);
        plaintext.push_str(prefix);
        URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut plaintext);
        let hash = hash_token(&plaintext);
        Ok((SecretString::from(plaintext), hash))
    }
}

/// The hash under which a presented token is looked up.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Constant-time equality of two byte strings (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Constant-time equality of two strings (the lengths are not secret).
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generate_and_hash() {
        let (plain, hash) = Token::generate().unwrap();
        let plain = plain.expose_secret();
        assert!(plain.starts_with("zd_"));
        assert_eq!(plain.len(), 3 + 43);
        assert!(plain[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(hash_token(plain), hash);
        assert_ne!(hash_token(&format!("{plain}x")), hash);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert_eq!(TokenHash::from_bytes(hash.as_bytes()).unwrap(), hash);
        assert!(TokenHash::from_hex("abcd").is_err());
        // SHA-256 of the full string.
        assert_eq!(
            hash_token("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_are_unique_and_prefixes_checked() {
        let (a, _) = Token::generate().unwrap();
        let (b, _) = Token::generate_with_prefix("zdk_").unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(b.expose_secret().starts_with("zdk_"));
        assert!(Token::generate_with_prefix("bad prefix").is_err());
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn constant_time_helpers() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq_str("", ""));
        assert!(!ct_eq_str("x", ""));
    }
}
