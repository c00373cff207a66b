//! Envelope encryption of field values: data-encryption keys (DEKs), their
//! wrapping under the master key, and the self-describing field ciphertext.
//!
//! # Keys
//!
//! * A [`Dek`] is 32 random bytes with an id. The intended use is **one DEK per
//!   data subject** (a person, an enterprise): every sensitive field of that
//!   subject is encrypted under it, so deleting the subject's [`WrappedDek`] row
//!   crypto-shreds all of their data at once, backups included once the row is
//!   gone from them (PIPL deletion requests).
//! * A DEK is persisted only as a [`WrappedDek`]: the DEK encrypted with a key
//!   derived from a [`MasterKey`]. The store keeps `WrappedDek`s in a table
//!   (`id`, `wrapped`, `master_key_id`, `algorithm`, plus its own subject link).
//!   The wrap is bound (as AAD) to the DEK id, the master key id and the
//!   algorithm, so a wrapped blob copied into another row does not unwrap.
//! * Master-key rotation: [`rewrap`] each `WrappedDek`; no field is re-encrypted.
//!   DEK rotation: [`reencrypt`] / [`FieldCipher::reencrypt`] each field.
//!
//! Key separation: the AES-256-GCM wrap key is `HMAC-SHA256(master, label)`, the
//! SM4 keys (128-bit) are the first 16 bytes of an HMAC of the master key / DEK
//! under their own labels. The AES field key is the DEK itself.
//!
//! # Field ciphertext layout (version 1)
//!
//! ```text
//! offset  size  field
//! 0       1     version = 0x01
//! 1       1     algorithm: 0x01 AES-256-GCM, 0x02 SM4-GCM
//! 2       1     n = length of the DEK id (1..=64)
//! 3       n     DEK id, ASCII [A-Za-z0-9_.:-]
//! 3+n     12    nonce (random, 96 bits)
//! 15+n    L     ciphertext (L = plaintext length)
//! 15+n+L  16    GCM tag
//! ```
//!
//! The AEAD associated data is `header ‖ caller_aad`, where `header` is bytes
//! `0 .. 3+n` (self-delimiting, so the concatenation is unambiguous). The header
//! is thus authenticated, and the caller's AAD binds the value to its place:
//! pass e.g. `b"customer.id_number:<customer uuid>"`, and a ciphertext copied into
//! another row or column fails to decrypt.
//!
//! Random 96-bit nonces are safe up to ~2³² encryptions per DEK; per-subject
//! DEKs stay many orders of magnitude below that.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, AesGcm, Nonce, Tag};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{Keyring, MasterKey};
use crate::CryptoError;

/// SM4 in GCM mode with a 96-bit nonce (GB/T 36624, RFC 8998).
type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

/// Current field ciphertext version byte.
pub const CIPHERTEXT_VERSION: u8 = 1;
/// Length of a DEK in bytes.
pub const DEK_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;

/// The AEAD used to wrap a DEK or to encrypt a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Algorithm {
    /// AES-256-GCM (the default).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// SM4-GCM, for deployments that must use 国密 algorithms.
    #[serde(rename = "sm4-gcm")]
    Sm4Gcm,
}

impl Algorithm {
    /// The byte stored in ciphertexts.
    pub fn code(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 1,
            Algorithm::Sm4Gcm => 2,
        }
    }

    /// The algorithm for a stored byte.
    pub fn from_code(code: u8) -> Result<Self, CryptoError> {
        match code {
            1 => Ok(Algorithm::Aes256Gcm),
            2 => Ok(Algorithm::Sm4Gcm),
            other => Err(CryptoError::UnknownAlgorithm(other)),
        }
    }

    /// A stable name for configuration and database columns: `aes-256-gcm` or `sm4-gcm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::Sm4Gcm => "sm4-gcm",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aes-256-gcm" => Ok(Algorithm::Aes256Gcm),
            "sm4-gcm" => Ok(Algorithm::Sm4Gcm),
            other => Err(CryptoError::UnknownAlgorithmName(other.to_owned())),
        }
    }
}

/// A data-encryption key: 32 bytes and an id, zeroized on drop, redacted in `Debug`.
pub struct Dek {
    id: String,
    key: Zeroizing<[u8; DEK_LEN]>,
    sm4_key: Zeroizing<[u8; 16]>,
}

impl Dek {
    /// A fresh random DEK with a random id (32 lowercase hex characters).
    pub fn generate() -> Result<Self, CryptoError> {
        let mut raw_id = [0u8; 16];
        crate::fill_public_random(&mut raw_id)?;
        Self::generate_with_id(&hex::encode(raw_id))
    }

    /// A fresh random DEK with a caller-chosen id (1..=64 of `[A-Za-z0-9_.:-]`,
    /// e.g. a UUID). Ids must be unique: the store looks DEKs up by id.
    pub fn generate_with_id(id: &str) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; DEK_LEN]);
        crate::fill_random(key.as_mut())?;
        Self::from_parts(id, key)
    }

    /// The DEK's id, as written into every ciphertext made with it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn from_parts(id: &str, key: Zeroizing<[u8; DEK_LEN]>) -> Result<Self, CryptoError> {
        validate_key_id(id)?;
        let sm4_key = sm4_key_from(&key, b"zhudai/dek/sm4-key/v1");
        Ok(Self {
            id: id.to_owned(),
            key,
            sm4_key,
        })
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dek")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// A DEK as persisted: encrypted under a master key.
///
/// `wrapped` is `nonce (12) ‖ encrypted DEK (32) ‖ tag (16)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDek {
    /// The DEK id (primary key of the store's DEK table).
    pub id: String,
    /// The encrypted DEK.
    pub wrapped: Vec<u8>,
    /// Id of the master key that wrapped it.
    pub master_key_id: String,
    /// The algorithm that wrapped it.
    pub algorithm: Algorithm,
}

/// Creates a fresh DEK (e.g. for a new data subject) wrapped under the
/// keyring's active master key. Persist the `WrappedDek`, use the `Dek`.
pub fn new_dek(keyring: &Keyring, algorithm: Algorithm) -> Result<(Dek, WrappedDek), CryptoError> {
    let dek = Dek::generate()?;
    let wrapped = wrap_dek(&dek, keyring.active(), algorithm)?;
    Ok((dek, wrapped))
}

/// Encrypts `dek` under `master` with `algorithm`.
pub fn wrap_dek(
    dek: &Dek,
    master: &MasterKey,
    algorithm: Algorithm,
) -> Result<WrappedDek, CryptoError> {
    let aad = wrap_aad(&dek.id, master.id(), algorithm);
    let (aes_key, sm4_key) = wrap_keys(master, algorithm);
    let mut out = vec![0u8; NONCE_LEN + DEK_LEN + TAG_LEN];
    let (nonce, rest) = out.split_at_mut(NONCE_LEN);
    crate::fill_public_random(nonce)?;
    let (body, tag_out) = rest.split_at_mut(DEK_LEN);
    body.copy_from_slice(dek.key.as_ref());
    let tag = seal(algorithm, &aes_key, &sm4_key, nonce, &aad, body)?;
    tag_out.copy_from_slice(&tag);
    Ok(WrappedDek {
        id: dek.id.clone(),
        wrapped: out,
        master_key_id: master.id().to_owned(),
        algorithm,
    })
}

/// Decrypts a wrapped DEK with the master key from `keyring` that wrapped it.
pub fn unwrap_dek(wrapped: &WrappedDek, keyring: &Keyring) -> Result<Dek, CryptoError> {
    let master = keyring.require(&wrapped.master_key_id)?;
    if wrapped.wrapped.len() != NONCE_LEN + DEK_LEN + TAG_LEN {
        return Err(CryptoError::MalformedCiphertext(
            "wrapped DEK has the wrong length",
        ));
    }
    validate_key_id(&wrapped.id)?;
    let aad = wrap_aad(&wrapped.id, master.id(), wrapped.algorithm);
    let (aes_key, sm4_key) = wrap_keys(master, wrapped.algorithm);
    let (nonce, rest) = wrapped.wrapped.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(DEK_LEN);
    let mut key = Zeroizing::new([0u8; DEK_LEN]);
    key.copy_from_slice(body);
    open(
        wrapped.algorithm,
        &aes_key,
        &sm4_key,
        nonce,
        &aad,
        key.as_mut(),
        tag,
    )?;
    Dek::from_parts(&wrapped.id, key)
}

/// Master-key rotation: unwraps with `old` (which must hold the key that wrapped
/// it) and wraps again under `new_master`, keeping the DEK id and algorithm.
/// Field ciphertexts stay valid.
pub fn rewrap(
    wrapped: &WrappedDek,
    old: &Keyring,
    new_master: &MasterKey,
) -> Result<WrappedDek, CryptoError> {
    let dek = unwrap_dek(wrapped, old)?;
    wrap_dek(&dek, new_master, wrapped.algorithm)
}

/// DEK rotation of one field: decrypts with `from`, encrypts with `to` under
/// the same AAD, keeping the ciphertext's algorithm.
pub fn reencrypt(
    ciphertext: &[u8],
    aad: &[u8],
    from: &Dek,
    to: &Dek,
) -> Result<Vec<u8>, CryptoError> {
    let header = parse(ciphertext)?;
    FieldCipher::new(header.algorithm).reencrypt(ciphertext, aad, from, to)
}

/// Encrypts and decrypts field values with a DEK. Cheap to construct and `Copy`;
/// the algorithm applies to new ciphertexts, decryption reads it from the ciphertext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldCipher {
    algorithm: Algorithm,
}

impl FieldCipher {
    /// A cipher producing ciphertexts with `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        Self { algorithm }
    }

    /// The algorithm of new ciphertexts.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Encrypts `plaintext` under `dek`, bound to `aad` (the value's place,
    /// e.g. `b"customer.phone:<row id>"`). Fails only if the system RNG fails.
    pub fn encrypt(&self, dek: &Dek, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = dek.id.as_bytes();
        let header_len = 3 + id.len();
        let body_start = header_len + NONCE_LEN;
        let mut out = Vec::with_capacity(body_start + plaintext.len() + TAG_LEN);
        out.push(CIPHERTEXT_VERSION);
        out.push(self.algorithm.code());
        // validate_key_id guarantees 1..=64 bytes.
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.resize(body_start, 0);
        crate::fill_public_random(&mut out[header_len..body_start])?;
        out.extend_from_slice(plaintext);

        let mut full_aad = Vec::with_capacity(header_len + aad.len());
        full_aad.extend_from_slice(&out[..header_len]);
        full_aad.extend_from_slice(aad);

        let (head, body) = out.split_at_mut(body_start);
        let nonce = &head[header_len..];
        let tag = seal(
            self.algorithm,
            &dek.key,
            &dek.sm4_key,
            nonce,
            &full_aad,
            body,
        )?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a ciphertext made by [`FieldCipher::encrypt`] (with any algorithm).
    ///
    /// Errors: [`CryptoError::WrongDek`] if the ciphertext names another DEK id,
    /// [`CryptoError::Decrypt`] if the key, the AAD or any byte is wrong.
    pub fn decrypt(
        &self,
        dek: &Dek,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let h = parse(ciphertext)?;
        if h.key_id != dek.id {
            return Err(CryptoError::WrongDek {
                expected: dek.id.clone(),
                found: h.key_id.to_owned(),
            });
        }
        let mut full_aad = Vec::with_capacity(h.header_len + aad.len());
        full_aad.extend_from_slice(&ciphertext[..h.header_len]);
        full_aad.extend_from_slice(aad);
        let mut plain = Zeroizing::new(h.body.to_vec());
        open(
            h.algorithm,
            &dek.key,
            &dek.sm4_key,
            h.nonce,
            &full_aad,
            plain.as_mut_slice(),
            h.tag,
        )?;
        Ok(plain)
    }

    /// The DEK id written in a ciphertext, so the store can fetch the right DEK.
    pub fn key_id_of(ciphertext: &[u8]) -> Result<&str, CryptoError> {
        Ok(parse(ciphertext)?.key_id)
    }

    /// The algorithm written in a ciphertext.
    pub fn algorithm_of(ciphertext: &[u8]) -> Result<Algorithm, CryptoError> {
        Ok(parse(ciphertext)?.algorithm)
    }

    /// DEK rotation (or algorithm migration) of one field: decrypts with `from`,
    /// encrypts with `to` and this cipher's algorithm, under the same AAD.
    pub fn reencrypt(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        from: &Dek,
        to: &Dek,
    ) -> Result<Vec<u8>, CryptoError> {
        let plain = self.decrypt(from, aad, ciphertext)?;
        self.encrypt(to, aad, &plain)
    }
}

struct Parsed<'a> {
    algorithm: Algorithm,
    key_id: &'a str,
    header_len: usize,
    nonce: &'a [u8],
    body: &'a [u8],
    tag: &'a [u8],
}

fn parse(ct: &[u8]) -> Result<Parsed<'_>, CryptoError> {
    let [version, alg, id_len, rest @ ..] = ct else {
        return Err(CryptoError::MalformedCiphertext("too short"));
    };
    if *version != CIPHERTEXT_VERSION {
        return Err(CryptoError::UnsupportedVersion(*version));
    }
    let algorithm = Algorithm::from_code(*alg)?;
    let id_len = usize::from(*id_len);
    if id_len == 0 || id_len > MAX_KEY_ID_LEN {
        return Err(CryptoError::MalformedCiphertext("bad key id length"));
    }
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::MalformedCiphertext("too short"));
    }
    let (id, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(id)
        .ok()
        .filter(|s| key_id_chars_ok(s))
        .ok_or(CryptoError::MalformedCiphertext("bad key id"))?;
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Parsed {
        algorithm,
        key_id,
        header_len: 3 + id_len,
        nonce,
        body,
        tag,
    })
}

fn key_id_chars_ok(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn validate_key_id(id: &str) -> Result<(), CryptoError> {
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !key_id_chars_ok(id) {
        return Err(CryptoError::InvalidKeyId(id.to_owned()));
    }
    Ok(())
}

fn sm4_key_from(key: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 16]> {
    let derived = Zeroizing::new(crate::hmac_sha256(key, &[label]));
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&derived[..16]);
    out
}

/// The keys a master key uses for wrapping; only the one for `algorithm` is real.
fn wrap_keys(
    master: &MasterKey,
    algorithm: Algorithm,
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 16]>) {
    match algorithm {
        Algorithm::Aes256Gcm => (
            Zeroizing::new(crate::hmac_sha256(
                master.bytes(),
                &[b"zhudai/master/dek-wrap/aes-256-gcm/v1"],
            )),
            Zeroizing::new([0u8; 16]),
        ),
        Algorithm::Sm4Gcm => (
            Zeroizing::new([0u8; 32]),
            sm4_key_from(master.bytes(), b"zhudai/master/dek-wrap/sm4-gcm/v1"),
        ),
    }
}

fn wrap_aad(dek_id: &str, master_id: &str, algorithm: Algorithm) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + dek_id.len() + master_id.len());
    aad.extend_from_slice(b"zhudai/dek-wrap/v1");
    aad.push(algorithm.code());
    for part in [dek_id, master_id] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn seal(
    algorithm: Algorithm,
    aes_key: &[u8; 32],
    sm4_key: &[u8; 16],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<Tag, CryptoError> {
    let nonce = Nonce::from_slice(nonce);
    match algorithm {
        Algorithm::Aes256Gcm => {
            Aes256Gcm::new(aes_key.into()).encrypt_in_place_detached(nonce, aad, buf)
        }
        Algorithm::Sm4Gcm => Sm4Gcm::new(sm4_key.into()).encrypt_in_place_detached(nonce, aad, buf),
    }
    .map_err(|_| CryptoError::Encrypt)
}

fn open(
    algorithm: Algorithm,
    aes_key: &[u8; 32],
    sm4_key: &[u8; 16],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), CryptoError> {
    let nonce = Nonce::from_slice(nonce);
    let tag = Tag::from_slice(tag);
    let result = match algorithm {
        Algorithm::Aes256Gcm => {
            Aes256Gcm::new(aes_key.into()).decrypt_in_place_detached(nonce, aad, buf, tag)
        }
        Algorithm::Sm4Gcm => {
            Sm4Gcm::new(sm4_key.into()).decrypt_in_place_detached(nonce, aad, buf, tag)
        }
    };
    if result.is_err() {
        // Do not leave unauthenticated plaintext behind in the caller's buffer.
        zeroize::Zeroize::zeroize(buf);
        return Err(CryptoError::Decrypt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::Sm4Gcm];

    fn ring() -> Keyring {
        Keyring::new(MasterKey::generate().unwrap())
    }

    #[test]
    fn sm4_gcm_matches_rfc8998_test_vector() {
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let nonce = hex::decode("00001234567800000000ABCD").unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let mut buf = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let sm4_key: [u8; 16] = key.try_into().unwrap();
        let tag = seal(
            Algorithm::Sm4Gcm,
            &[0; 32],
            &sm4_key,
            &nonce,
            &aad,
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex::encode_upper(&buf),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        );
        assert_eq!(hex::encode_upper(tag), "83DE3541E4C2B58177E065A9BF7B62EC");
    }

    #[test]
    fn roundtrip_both_algorithms_and_layout() {
        let dek = Dek::generate().unwrap();
        for alg in ALGS {
            let c = FieldCipher::new(alg);
            let ct = c
                .encrypt(&dek, b"customer.id_number:42", b"110101199003074258")
                .unwrap();
            assert_eq!(ct[0], CIPHERTEXT_VERSION);
            assert_eq!(ct[1], alg.code());
            assert_eq!(usize::from(ct[2]), dek.id().len());
            assert_eq!(ct.len(), 3 + dek.id().len() + 12 + 18 + 16);
            assert_eq!(FieldCipher::key_id_of(&ct).unwrap(), dek.id());
            assert_eq!(FieldCipher::algorithm_of(&ct).unwrap(), alg);
            // Decrypting does not depend on the cipher's own algorithm.
            let other = FieldCipher::new(ALGS.into_iter().find(|a| *a != alg).unwrap());
            let pt = other.decrypt(&dek, b"customer.id_number:42", &ct).unwrap();
            assert_eq!(pt.as_slice(), b"110101199003074258");
            // Empty plaintext works too.
            let ct = c.encrypt(&dek, b"", b"").unwrap();
            assert!(c.decrypt(&dek, b"", &ct).unwrap().is_empty());
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let dek = Dek::generate().unwrap();
        let c = FieldCipher::default();
        let a = c.encrypt(&dek, b"x", b"same").unwrap();
        let b = c.encrypt(&dek, b"x", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn ciphertext_copied_to_another_row_fails() {
        let dek = Dek::generate().unwrap();
        for alg in ALGS {
            let c = FieldCipher::new(alg);
            let ct = c
                .encrypt(&dek, b"customer.phone:row-1", b"13800138000")
                .unwrap();
            assert!(matches!(
                c.decrypt(&dek, b"customer.phone:row-2", &ct),
                Err(CryptoError::Decrypt)
            ));
            assert!(matches!(
                c.decrypt(&dek, b"customer.email:row-1", &ct),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let dek = Dek::generate().unwrap();
        for alg in ALGS {
            let c = FieldCipher::new(alg);
            let ct = c.encrypt(&dek, b"aad", b"6222020200112233445").unwrap();
            for i in 0..ct.len() {
                let mut bad = ct.clone();
                bad[i] ^= 0x01;
                assert!(c.decrypt(&dek, b"aad", &bad).is_err(), "byte {i} ({alg})");
            }
            assert!(c.decrypt(&dek, b"aad", &ct[..ct.len() - 1]).is_err());
            // Switching the algorithm byte to the other valid one fails too.
            let mut switched = ct.clone();
            switched[1] = if alg == Algorithm::Aes256Gcm { 2 } else { 1 };
            assert!(matches!(
                c.decrypt(&dek, b"aad", &switched),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn wrong_dek_is_reported() {
        let a = Dek::generate().unwrap();
        let b = Dek::generate().unwrap();
        let c = FieldCipher::default();
        let ct = c.encrypt(&a, b"", b"secret").unwrap();
        assert!(matches!(
            c.decrypt(&b, b"", &ct),
            Err(CryptoError::WrongDek { .. })
        ));
        // A DEK with the same id but another key (e.g. a forged row) fails authentication.
        let forged = Dek::generate_with_id(a.id()).unwrap();
        assert!(matches!(
            c.decrypt(&forged, b"", &ct),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn malformed_ciphertexts_are_rejected() {
        assert!(FieldCipher::key_id_of(&[]).is_err());
        assert!(matches!(
            FieldCipher::key_id_of(&[9, 1, 1, b'a']),
            Err(CryptoError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            FieldCipher::key_id_of(&[1, 7, 1, b'a']),
            Err(CryptoError::UnknownAlgorithm(7))
        ));
        let mut short = vec![1, 1, 1, b'a'];
        short.extend_from_slice(&[0; 27]);
        assert!(FieldCipher::key_id_of(&short).is_err());
        short.push(0);
        assert_eq!(FieldCipher::key_id_of(&short).unwrap(), "a");
        assert!(Dek::generate_with_id("").is_err());
        assert!(Dek::generate_with_id("has space").is_err());
        assert!(Dek::generate_with_id(&"x".repeat(65)).is_err());
        assert!(Dek::generate_with_id("550e8400-e29b-41d4-a716-446655440000").is_ok());
    }

    #[test]
    fn wrap_unwrap_and_binding() {
        let ring = ring();
        for alg in ALGS {
            let (dek, wrapped) = new_dek(&ring, alg).unwrap();
            assert_eq!(wrapped.master_key_id, ring.active().id());
            assert_eq!(wrapped.algorithm, alg);
            assert_eq!(wrapped.wrapped.len(), 60);
            let ct = FieldCipher::new(alg).encrypt(&dek, b"r", b"v").unwrap();
            let again = unwrap_dek(&wrapped, &ring).unwrap();
            assert_eq!(
                FieldCipher::default()
                    .decrypt(&again, b"r", &ct)
                    .unwrap()
                    .as_slice(),
                b"v"
            );
            // Copying the wrapped bytes under another DEK id fails.
            let (_, other) = new_dek(&ring, alg).unwrap();
            let swapped = WrappedDek {
                wrapped: wrapped.wrapped.clone(),
                ..other
            };
            assert!(matches!(
                unwrap_dek(&swapped, &ring),
                Err(CryptoError::Decrypt)
            ));
            // Claiming the other algorithm fails.
            let mut relabelled = wrapped.clone();
            relabelled.algorithm = if alg == Algorithm::Aes256Gcm {
                Algorithm::Sm4Gcm
            } else {
                Algorithm::Aes256Gcm
            };
            assert!(unwrap_dek(&relabelled, &ring).is_err());
        }
        // Unknown master key.
        let (_, wrapped) = new_dek(&ring, Algorithm::Aes256Gcm).unwrap();
        assert!(matches!(
            unwrap_dek(&wrapped, &self::ring()),
            Err(CryptoError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn master_key_rotation_rewraps_without_touching_data() {
        let mut ring = ring();
        let (dek, wrapped) = new_dek(&ring, Algorithm::Sm4Gcm).unwrap();
        let cipher = FieldCipher::new(Algorithm::Aes256Gcm);
        let ct = cipher.encrypt(&dek, b"row", b"13800138000").unwrap();
        drop(dek);

        let new_master = MasterKey::generate().unwrap();
        let new_id = new_master.id().to_owned();
        let new_master_copy = MasterKey::from_base64(&new_master.to_base64()).unwrap();
        let rewrapped = rewrap(&wrapped, &ring, &new_master).unwrap();
        assert_eq!(rewrapped.id, wrapped.id);
        assert_eq!(rewrapped.master_key_id, new_id);
        assert_eq!(rewrapped.algorithm, Algorithm::Sm4Gcm);

        // After rotation and removal of the old key, only the rewrapped DEK works.
        ring.rotate(new_master_copy);
        let old_id = wrapped.master_key_id.clone();
        assert!(ring.remove_retired(&old_id));
        assert!(unwrap_dek(&wrapped, &ring).is_err());
        let dek = unwrap_dek(&rewrapped, &ring).unwrap();
        assert_eq!(
            cipher.decrypt(&dek, b"row", &ct).unwrap().as_slice(),
            b"13800138000"
        );
    }

    #[test]
    fn dek_rotation_reencrypts() {
        let from = Dek::generate().unwrap();
        let to = Dek::generate().unwrap();
        let sm4 = FieldCipher::new(Algorithm::Sm4Gcm);
        let ct = sm4.encrypt(&from, b"aad", b"value").unwrap();
        let moved = reencrypt(&ct, b"aad", &from, &to).unwrap();
        assert_eq!(FieldCipher::key_id_of(&moved).unwrap(), to.id());
        assert_eq!(
            FieldCipher::algorithm_of(&moved).unwrap(),
            Algorithm::Sm4Gcm
        );
        assert_eq!(
            sm4.decrypt(&to, b"aad", &moved).unwrap().as_slice(),
            b"value"
        );
        assert!(reencrypt(&ct, b"other", &from, &to).is_err());
        // Algorithm migration via a cipher of the target algorithm.
        let aes = FieldCipher::new(Algorithm::Aes256Gcm)
            .reencrypt(&ct, b"aad", &from, &to)
            .unwrap();
        assert_eq!(
            FieldCipher::algorithm_of(&aes).unwrap(),
            Algorithm::Aes256Gcm
        );
    }

    #[test]
    fn crypto_shredding_a_subject() {
        // Two subjects, two DEKs: losing one wrapped DEK loses exactly that subject's data.
        let ring = ring();
        let (alice, alice_row) = new_dek(&ring, Algorithm::Aes256Gcm).unwrap();
        let (bob, _bob_row) = new_dek(&ring, Algorithm::Aes256Gcm).unwrap();
        let c = FieldCipher::default();
        let ct = c.encrypt(&alice, b"p:alice", b"alice's phone").unwrap();
        assert!(c.decrypt(&bob, b"p:alice", &ct).is_err());
        drop(alice);
        drop(alice_row); // the store deletes the row
                         // Nothing else can open it: a regenerated DEK with the same id fails.
        let regenerated = Dek::generate_with_id(FieldCipher::key_id_of(&ct).unwrap()).unwrap();
        assert!(c.decrypt(&regenerated, b"p:alice", &ct).is_err());
    }

    #[test]
    fn algorithm_names_roundtrip_and_debug_redacts() {
        for alg in ALGS {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
            assert_eq!(Algorithm::from_code(alg.code()).unwrap(), alg);
            assert_eq!(
                serde_json::to_string(&alg).unwrap(),
                format!("\"{}\"", alg.as_str())
            );
        }
        let dek = Dek::generate().unwrap();
        let dbg = format!("{dek:?}");
        assert!(dbg.contains("REDACTED") && dbg.contains(dek.id()));
    }
}
