//! The crate's error type. Messages name what is wrong without echoing secrets.

use std::path::PathBuf;

/// Errors from key handling, encryption and the other fallible operations of this crate.
///
/// Decryption failures are deliberately one opaque variant
/// ([`CryptoError::Decrypt`]): a wrong key, a wrong AAD and a tampered
/// ciphertext look the same to the caller, as they must.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} has mode {mode:04o}: it must not be readable, writable or executable by group or others (chmod 600 it)")]
    KeyFileInsecure { path: PathBuf, mode: u32 },
    #[error("key file {path} is malformed: {reason}")]
    KeyFileMalformed { path: PathBuf, reason: String },
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("environment variable {0} is not set or not valid UTF-8")]
    MissingEnv(String),
    #[error("no master key with id {0} in the keyring")]
    UnknownMasterKey(String),
    #[error("ciphertext was made with data key {found}, not with the given key {expected}")]
    WrongDek { expected: String, found: String },
    #[error("invalid key id {0:?}: 1..=64 characters of [A-Za-z0-9_.:-]")]
    InvalidKeyId(String),
    #[error("malformed ciphertext: {0}")]
    MalformedCiphertext(&'static str),
    #[error("unsupported ciphertext version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown algorithm code {0}")]
    UnknownAlgorithm(u8),
    #[error("unknown algorithm {0:?}: expected aes-256-gcm or sm4-gcm")]
    UnknownAlgorithmName(String),
    #[error("decryption failed: wrong key, wrong associated data, or tampered ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("random number generator failed: {0}")]
    Random(String),
    #[error("password hashing: {0}")]
    PasswordHash(String),
    #[error("TOTP: {0}")]
    Totp(String),
    #[error("QR code: {0}")]
    Qr(String),
    #[error("signature verification failed")]
    BadSignature,
}
