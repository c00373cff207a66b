//! The server's field-encryption service: it owns the master-key directory, the
//! system and per-subject data keys (DEKs), blind indexes and master-key rotation.
//!
//! Every sensitive field goes through [`Vault::encrypt_field`] /
//! [`Vault::decrypt_field`]; exact-match search goes through [`Vault::blind_index`];
//! PIPL deletion goes through [`Vault::shred_subject`].
//!
//! # Key directory (`DATA_DIR/keys/`, mode 0700)
//!
//! ```text
//! master-<id>.key   one per master key, mode 0600, the format of zhudai_crypto::keys
//! active            one line: the id of the key that wraps new DEKs
//! ```
//!
//! Every `master-*.key` file is loaded into the [`Keyring`]: the active one plus the
//! retired ones, so DEKs wrapped under any of them stay readable. A file that is group-
//! or world-accessible, malformed, or not named after its own key id stops the start.
//! With `ZHUDAI_MASTER_KEY` set, that key is the active one, nothing is created on disk,
//! and key files already in the directory are still loaded as retired keys.
//!
//! Several instances serving one PostgreSQL must share the key directory (one volume)
//! or the same `ZHUDAI_MASTER_KEY`: a DEK wrapped by one instance must unwrap in all.
//!
//! # Decisions (a newcomer would ask)
//!
//! * **The blind-index key does not follow the master key.** Deriving it from the
//!   master key (what [`BlindIndexKey::derive`] does) would change every stored index
//!   at each rotation, and recomputing them needs every value decrypted. Instead a
//!   random 32-byte *index root* is made once, stored in `system_meta` encrypted under
//!   the system DEK, and the index key is derived from it. A rotation rewraps the
//!   system DEK like any other, so the indexes never change.
//! * **Rotation switches `active` first, then rewraps** ([`rotate_master`]). The new
//!   key file exists before anything is wrapped with it, so every reader can always
//!   find the key of every DEK (a server meeting an unknown key id reloads the
//!   directory). Switching first means DEKs created by running servers during the
//!   sweep are already under the new key (a server re-reads `active` before wrapping
//!   a new DEK); sweeps repeat until one finds nothing left to do.
//! * **Unwrapped subject DEKs are cached** (bounded, [`CACHE_CAPACITY`] entries, each
//!   for at most [`CACHE_TTL`]). Shredding evicts the entry on the instance that
//!   shreds; other instances stop using a shredded key within the TTL.
//! * **Errors say what is wrong, never with what value**: no plaintext, key bytes or
//!   key-file contents appear in any error or `Debug` output. Decryption failures are
//!   one opaque [`VaultError::Decrypt`], except a destroyed key, which is
//!   [`VaultError::Shredded`] (the data is gone by design, not damaged).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};
use zhudai_crypto::blind_index::BlindIndexKey;
use zhudai_crypto::envelope::{new_dek, unwrap_dek, wrap_dek, Dek, FieldCipher, WrappedDek};
use zhudai_crypto::keys::{Keyring, MasterKey};
use zhudai_crypto::CryptoError;
use zhudai_domain::clock::Clock;
use zhudai_store::keys::SubjectDek;
use zhudai_store::{Store, StoreError};

pub use zhudai_crypto::blind_index::FieldKind;
pub use zhudai_crypto::envelope::Algorithm;

/// Subdirectory of the data directory holding the master keys.
pub const KEYS_DIR: &str = "keys";
/// File in the key directory naming the active master key.
pub const ACTIVE_FILE: &str = "active";
/// Most unwrapped subject DEKs kept in memory.
pub const CACHE_CAPACITY: usize = 10_000;
/// Longest time an unwrapped subject DEK is used without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// `system_meta` key of the encrypted blind-index root.
const BLIND_INDEX_META_KEY: &str = "crypto.blind_index_root.v1";
/// DEKs read per page during a rotation.
const ROTATION_PAGE: i64 = 256;
/// Sweeps of a rotation before it reports what is left.
const ROTATION_MAX_PASSES: u32 = 5;

/// Errors of the vault. None carries a plaintext, a key or a key file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error("key directory {path}: {reason}")]
    KeyDir { path: PathBuf, reason: String },
    /// A key file is missing, insecure (mode) or malformed; the message says which and how to fix it.
    #[error(transparent)]
    KeyFile(CryptoError),
    #[error("ZHUDAI_MASTER_KEY is not a usable master key: it must be 32 random bytes in standard base64 (e.g. the output of `openssl rand -base64 32`)")]
    EnvKey,
    #[error("data key {dek_id} is wrapped by master key {master_key_id}, which is not in {dir}: restore that key file (was a retired key removed too early?)")]
    UnknownMasterKey {
        dek_id: String,
        master_key_id: String,
        dir: PathBuf,
    },
    #[error("data key {dek_id} does not unwrap with master key {master_key_id}: the stored key was altered")]
    DataKeyDamaged {
        dek_id: String,
        master_key_id: String,
    },
    #[error("the data of {subject} was erased (its key was destroyed) and can no longer be read or written")]
    Shredded { subject: String },
    #[error("decryption failed: wrong place (table, column or row), wrong subject, or tampered ciphertext")]
    Decrypt,
    #[error("malformed ciphertext: {0}")]
    Malformed(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("the master key comes from ZHUDAI_MASTER_KEY, so there is no key file to rotate: `zhudai keys rotate` only rotates the key files of DATA_DIR/keys. Rotate an environment key in the secrets manager that provides it, or unset ZHUDAI_MASTER_KEY to use key files")]
    EnvKeyRotation,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Maps a crypto error on field data: every authentication failure is the same opaque error.
fn field_error(e: CryptoError) -> VaultError {
    match e {
        CryptoError::Decrypt | CryptoError::WrongDek { .. } => VaultError::Decrypt,
        CryptoError::MalformedCiphertext(what) => VaultError::Malformed(what.to_owned()),
        CryptoError::UnsupportedVersion(v) => VaultError::Malformed(format!("version {v}")),
        CryptoError::UnknownAlgorithm(a) => VaultError::Malformed(format!("algorithm code {a}")),
        CryptoError::Random(_) | CryptoError::Encrypt => VaultError::Encrypt(e.to_string()),
        other => VaultError::Encrypt(other.to_string()),
    }
}

/// The place a value is written to, bound into its ciphertext as associated data: a
/// ciphertext copied into another table, column or row does not decrypt.
///
/// `row` must be known before the write and never change: a primary key chosen by the
/// application (UUID), or the owning subject's id for one-per-subject tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAad<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl<'a> FieldAad<'a> {
    pub fn new(table: &'a str, column: &'a str, row: &'a str) -> Self {
        Self { table, column, row }
    }

    /// Length-prefixed, so `("a", "bc")` and `("ab", "c")` differ.
    fn to_bytes(self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(32 + self.table.len() + self.column.len() + self.row.len());
        out.extend_from_slice(b"zhudai/field/v1");
        for part in [self.table, self.column, self.row] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The field-encryption service. Cheap to clone (an `Arc` inside), `Send + Sync`.
#[derive(Clone)]
pub struct Vault(Arc<Inner>);

struct Inner {
    store: Store,
    keys: KeyDir,
    /// The active key comes from `ZHUDAI_MASTER_KEY`; the directory only adds retired keys.
    env_key: bool,
    keyring: RwLock<Keyring>,
    algorithm: Algorithm,
    cipher: FieldCipher,
    system: Arc<Dek>,
    blind: BlindIndexKey,
    cache: Mutex<DekCache>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.ring();
        f.debug_struct("Vault")
            .field("keys_dir", &self.0.keys.path)
            .field("master_keys", &ring.ids())
            .field(
                "master_key_source",
                &if self.0.env_key { "env" } else { "file" },
            )
            .field("algorithm", &self.0.algorithm)
            .field("system_dek", &self.0.system.id())
            .field("blind_index_key", &self.0.blind.master_key_id())
            .field("cached_subject_keys", &self.cache().map.len())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault: loads (or, on first run without `env_master_key`, creates) the
    /// key directory `data_dir/keys`, gets or creates the system DEK and the blind-index
    /// root in `store`. `env_master_key` is the base64 value of `ZHUDAI_MASTER_KEY`.
    /// `algorithm` wraps new DEKs and encrypts new fields; reading accepts both.
    pub async fn open(
        store: &Store,
        data_dir: &Path,
        env_master_key: Option<&SecretString>,
        algorithm: Algorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Vault, VaultError> {
        let keys = KeyDir::new(data_dir);
        let keyring = match env_master_key {
            Some(encoded) => {
                let active = MasterKey::from_base64(encoded.expose_secret())
                    .map_err(|_| VaultError::EnvKey)?;
                let mut ring = Keyring::new(active);
                for key in keys.load_all()? {
                    ring.add_retired(key);
                }
                ring
            }
            None => keys.open_or_init()?,
        };
        let now_ms = clock.now().timestamp_millis();
        let cipher = FieldCipher::new(algorithm);
        let keyring = RwLock::new(keyring);

        let candidate = {
            let ring = read(&keyring);
            new_dek(&ring, algorithm).map_err(field_error)?
        };
        let stored = store.data_key_system(&candidate.1, now_ms).await?;
        let system = if stored.id == candidate.0.id() {
            candidate.0
        } else {
            drop(candidate);
            match unwrap_dek(&stored, &read(&keyring)) {
                Ok(dek) => dek,
                Err(CryptoError::UnknownMasterKey(_)) => {
                    return Err(VaultError::UnknownMasterKey {
                        dek_id: stored.id.clone(),
                        master_key_id: stored.master_key_id.clone(),
                        dir: keys.path.clone(),
                    })
                }
                Err(_) => {
                    return Err(VaultError::DataKeyDamaged {
                        dek_id: stored.id.clone(),
                        master_key_id: stored.master_key_id.clone(),
                    })
                }
            }
        };
        let blind = blind_index_key(store, &system, cipher, now_ms).await?;
        Ok(Vault(Arc::new(Inner {
            store: store.clone(),
            keys,
            env_key: env_master_key.is_some(),
            keyring,
            algorithm,
            cipher,
            system: Arc::new(system),
            blind,
            cache: Mutex::new(DekCache::default()),
            clock,
        })))
    }

    /// Encrypts `plaintext` for its place `aad`, under the DEK of `subject` (e.g.
    /// `"person:42"`, created on first use) or, with `None`, the system DEK.
    pub async fn encrypt_field(
        &self,
        subject: Option<&str>,
        aad: &FieldAad<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, VaultError> {
        let dek = self.dek_for(subject, true).await?;
        self.0
            .cipher
            .encrypt(&dek, &aad.to_bytes(), plaintext.as_bytes())
            .map_err(field_error)
    }

    /// Decrypts a ciphertext of [`Vault::encrypt_field`] made for the same `subject`
    /// and place. [`VaultError::Shredded`] when the subject's key was destroyed.
    pub async fn decrypt_field(
        &self,
        subject: Option<&str>,
        aad: &FieldAad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<String>, VaultError> {
        FieldCipher::key_id_of(ciphertext).map_err(field_error)?;
        let dek = self.dek_for(subject, false).await?;
        let mut plain = self
            .0
            .cipher
            .decrypt(&dek, &aad.to_bytes(), ciphertext)
            .map_err(field_error)?;
        match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(VaultError::Malformed("the value is not UTF-8 text".into()))
            }
        }
    }

    // --- Customer documents (issue #4): binary contents under a subject's DEK. ---

    /// Encrypts binary content (a document) for its place `aad` under the DEK of
    /// `subject` (created on first use). One AES-256-GCM (or SM4-GCM) ciphertext.
    pub async fn encrypt_bytes(
        &self,
        subject: Option<&str>,
        aad: &FieldAad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let dek = self.dek_for(subject, true).await?;
        self.0
            .cipher
            .encrypt(&dek, &aad.to_bytes(), plaintext)
            .map_err(field_error)
    }

    /// Decrypts a ciphertext of [`Vault::encrypt_bytes`]; [`VaultError::Shredded`] when
    /// the subject's key was destroyed.
    pub async fn decrypt_bytes(
        &self,
        subject: Option<&str>,
        aad: &FieldAad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        FieldCipher::key_id_of(ciphertext).map_err(field_error)?;
        let dek = self.dek_for(subject, false).await?;
        self.0
            .cipher
            .decrypt(&dek, &aad.to_bytes(), ciphertext)
            .map_err(field_error)
    }

    /// The blind index (32 lowercase hex characters) of `value` normalised for `kind`:
    /// equal values give equal indexes; different kinds give unrelated ones.
    pub fn blind_index(&self, kind: FieldKind, value: &str) -> String {
        self.0.blind.index_hex(kind, value)
    }

    /// Crypto-shreds `subject`: destroys their DEK in the store and forgets it here.
    /// True when a live key was destroyed, false when there was none.
    pub async fn shred_subject(&self, subject: &str) -> Result<bool, VaultError> {
        let now_ms = self.0.clock.now().timestamp_millis();
        let destroyed = self
            .0
            .store
            .data_key_destroy_subject(subject, now_ms)
            .await?;
        self.cache().map.remove(subject);
        Ok(destroyed.is_some())
    }

    /// Id of the master key that wraps new DEKs.
    pub fn active_master_key_id(&self) -> String {
        self.ring().active().id().to_owned()
    }

    /// Ids of all loaded master keys, the active one first.
    pub fn master_key_ids(&self) -> Vec<String> {
        self.ring().ids().into_iter().map(str::to_owned).collect()
    }

    /// An id of the blind-index key (not secret), to record next to stored indexes.
    pub fn blind_index_key_id(&self) -> &str {
        self.0.blind.master_key_id()
    }

    /// The algorithm of new ciphertexts and new DEK wraps.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    async fn dek_for(&self, subject: Option<&str>, create: bool) -> Result<Arc<Dek>, VaultError> {
        let Some(subject) = subject else {
            return Ok(self.0.system.clone());
        };
        let cached = self.cache().get(subject);
        if let Some(dek) = cached {
            return Ok(dek);
        }
        let store = &self.0.store;
        let found = match store.data_key_of_subject(subject).await? {
            Some(found) => found,
            // Nothing was ever written for this subject, so nothing can decrypt.
            None if !create => return Err(VaultError::Decrypt),
            None => {
                // A rotation may have switched the active key since we loaded it.
                self.refresh_active()?;
                let (dek, wrapped) = {
                    let ring = self.ring();
                    new_dek(&ring, self.0.algorithm).map_err(field_error)?
                };
                let now_ms = self.0.clock.now().timestamp_millis();
                match store
                    .data_key_for_subject(subject, &wrapped, now_ms)
                    .await?
                {
                    SubjectDek::Ready(won) if won.id == dek.id() => {
                        let dek = Arc::new(dek);
                        self.cache().insert(subject, dek.clone());
                        return Ok(dek);
                    }
                    other => other,
                }
            }
        };
        match found {
            SubjectDek::Destroyed { .. } => Err(VaultError::Shredded {
                subject: subject.to_owned(),
            }),
            SubjectDek::Ready(wrapped) => {
                let dek = Arc::new(self.unwrap_with_reload(&wrapped)?);
                self.cache().insert(subject, dek.clone());
                Ok(dek)
            }
        }
    }

    /// Unwraps `wrapped`; if its master key is unknown (a rotation ran elsewhere),
    /// reloads the key directory once and tries again.
    fn unwrap_with_reload(&self, wrapped: &WrappedDek) -> Result<Dek, VaultError> {
        let first = unwrap_dek(wrapped, &self.ring());
        let result = match first {
            Err(CryptoError::UnknownMasterKey(_)) => {
                self.reload_keys()?;
                unwrap_dek(wrapped, &self.ring())
            }
            other => other,
        };
        result.map_err(|e| match e {
            CryptoError::UnknownMasterKey(_) => VaultError::UnknownMasterKey {
                dek_id: wrapped.id.clone(),
                master_key_id: wrapped.master_key_id.clone(),
                dir: self.0.keys.path.clone(),
            },
            _ => VaultError::DataKeyDamaged {
                dek_id: wrapped.id.clone(),
                master_key_id: wrapped.master_key_id.clone(),
            },
        })
    }

    /// Reloads when the `active` file names another key than ours.
    fn refresh_active(&self) -> Result<(), VaultError> {
        if self.0.env_key {
            return Ok(());
        }
        match self.0.keys.read_active()? {
            Some(id) if id != self.ring().active().id() => self.reload_keys(),
            _ => Ok(()),
        }
    }

    /// Re-reads the key directory: new key files become retired keys, and the key the
    /// `active` file names becomes active (unless the active key comes from the env).
    fn reload_keys(&self) -> Result<(), VaultError> {
        let keys = &self.0.keys;
        let active_id = if self.0.env_key {
            None
        } else {
            keys.read_active()?
        };
        let found = keys.load_all()?;
        let mut ring = self.ring_mut();
        for key in found {
            if Some(key.id()) == active_id.as_deref() && ring.active().id() != key.id() {
                ring.rotate(key);
            } else {
                ring.add_retired(key);
            }
        }
        Ok(())
    }

    fn ring(&self) -> RwLockReadGuard<'_, Keyring> {
        read(&self.0.keyring)
    }

    fn ring_mut(&self) -> RwLockWriteGuard<'_, Keyring> {
        // A panic while holding the lock cannot leave a keyring half-changed (each
        // change is one method call), so a poisoned lock is still usable.
        self.0
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cache(&self) -> MutexGuard<'_, DekCache> {
        self.0
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------------------
// Bulk import: subject keys made in memory and stored by the caller's own transaction,
// and synchronous field encryption with a key in hand, so that many customers can be
// encrypted in parallel and written together with their keys (one transaction per batch
// instead of one key write per new subject).

impl Vault {
    /// Re-reads the key directory if a rotation switched the active master key; call
    /// before a batch of [`Vault::new_subject_key`].
    pub fn refresh_master_keys(&self) -> Result<(), VaultError> {
        self.refresh_active()
    }

    /// A fresh data key for a new subject, with id `key_id` (1–64 characters of
    /// `[A-Za-z0-9_.:-]`, unique), wrapped under the active master key. Nothing is
    /// stored: the caller inserts the [`WrappedDek`] (with its subject) in the same
    /// transaction as the data encrypted with the [`Dek`]
    /// (`zhudai_store::imports::data_keys_insert_prepare`).
    pub fn new_subject_key(&self, key_id: &str) -> Result<(Dek, WrappedDek), VaultError> {
        let dek = Dek::generate_with_id(key_id).map_err(field_error)?;
        let wrapped =
            wrap_dek(&dek, self.ring().active(), self.0.algorithm).map_err(field_error)?;
        Ok((dek, wrapped))
    }

    /// Unwraps a subject's stored key (read in bulk by the caller).
    pub fn open_subject_key(&self, subject: &str, stored: &SubjectDek) -> Result<Dek, VaultError> {
        match stored {
            SubjectDek::Destroyed { .. } => Err(VaultError::Shredded {
                subject: subject.to_owned(),
            }),
            SubjectDek::Ready(wrapped) => self.unwrap_with_reload(wrapped),
        }
    }

    /// [`Vault::encrypt_field`] with the subject's key in hand: no store access.
    pub fn encrypt_with(
        &self,
        dek: &Dek,
        aad: &FieldAad<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, VaultError> {
        self.0
            .cipher
            .encrypt(dek, &aad.to_bytes(), plaintext.as_bytes())
            .map_err(field_error)
    }

    /// [`Vault::decrypt_field`] with the subject's key in hand: no store access.
    pub fn decrypt_with(
        &self,
        dek: &Dek,
        aad: &FieldAad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<String>, VaultError> {
        let mut plain = self
            .0
            .cipher
            .decrypt(dek, &aad.to_bytes(), ciphertext)
            .map_err(field_error)?;
        match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(VaultError::Malformed("the value is not UTF-8 text".into()))
            }
        }
    }

    /// Encrypts `plaintext` under the system data key (data that belongs to no subject,
    /// e.g. an uploaded import file waiting for the worker).
    pub fn encrypt_system(
        &self,
        aad: &FieldAad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.0
            .cipher
            .encrypt(&self.0.system, &aad.to_bytes(), plaintext)
            .map_err(field_error)
    }

    /// Decrypts what [`Vault::encrypt_system`] made for the same place.
    pub fn decrypt_system(
        &self,
        aad: &FieldAad<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        self.0
            .cipher
            .decrypt(&self.0.system, &aad.to_bytes(), ciphertext)
            .map_err(field_error)
    }
}

fn read(lock: &RwLock<Keyring>) -> RwLockReadGuard<'_, Keyring> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Gets or creates the blind-index root (see the module doc) and derives the index key.
async fn blind_index_key(
    store: &Store,
    system: &Dek,
    cipher: FieldCipher,
    now_ms: i64,
) -> Result<BlindIndexKey, VaultError> {
    let aad = FieldAad::new("system_meta", "value", BLIND_INDEX_META_KEY).to_bytes();
    let stored = match store.meta_get(BLIND_INDEX_META_KEY).await? {
        Some(value) => value,
        None => {
            let root = MasterKey::generate().map_err(field_error)?;
            let sealed = cipher
                .encrypt(system, &aad, root.to_base64().as_bytes())
                .map_err(field_error)?;
            // Several instances may race on first start: the first value stored wins.
            store
                .meta_set_once(BLIND_INDEX_META_KEY, &hex::encode(sealed), now_ms)
                .await?;
            store
                .meta_get(BLIND_INDEX_META_KEY)
                .await?
                .ok_or_else(|| StoreError::Invalid("the blind-index root vanished".into()))?
        }
    };
    let sealed = hex::decode(stored)
        .map_err(|_| VaultError::Malformed("the stored blind-index root is not hex".into()))?;
    let encoded = cipher.decrypt(system, &aad, &sealed).map_err(field_error)?;
    let root = std::str::from_utf8(&encoded)
        .ok()
        .and_then(|text| MasterKey::from_base64(text).ok())
        .ok_or_else(|| VaultError::Malformed("the stored blind-index root".into()))?;
    Ok(BlindIndexKey::derive(&root))
}

/// Unwrapped subject DEKs, bounded in number and age.
#[derive(Default)]
struct DekCache {
    map: HashMap<String, (Arc<Dek>, Instant)>,
}

impl DekCache {
    fn get(&mut self, subject: &str) -> Option<Arc<Dek>> {
        let (dek, at) = self.map.get(subject)?;
        if at.elapsed() <= CACHE_TTL {
            return Some(dek.clone());
        }
        self.map.remove(subject);
        None
    }

    fn insert(&mut self, subject: &str, dek: Arc<Dek>) {
        if self.map.len() >= CACHE_CAPACITY && !self.map.contains_key(subject) {
            self.map.retain(|_, (_, at)| at.elapsed() <= CACHE_TTL);
            if self.map.len() >= CACHE_CAPACITY {
                // Any entry will do: a miss costs one indexed read and an unwrap (~2 µs).
                if let Some(victim) = self.map.keys().next().cloned() {
                    self.map.remove(&victim);
                }
            }
        }
        self.map.insert(subject.to_owned(), (dek, Instant::now()));
    }
}

/// The master-key directory, `DATA_DIR/keys`.
#[derive(Debug, Clone)]
struct KeyDir {
    path: PathBuf,
}

impl KeyDir {
    fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(KEYS_DIR),
        }
    }

    fn err(&self, reason: impl Into<String>) -> VaultError {
        VaultError::KeyDir {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn key_path(&self, id: &str) -> PathBuf {
        self.path.join(format!("master-{id}.key"))
    }

    /// Creates the directory (mode 0700) if it does not exist.
    fn ensure(&self) -> Result<(), VaultError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|e| self.err(format!("cannot create it: {e}")))
    }

    /// The id in the `active` file, `None` when there is no such file.
    fn read_active(&self) -> Result<Option<String>, VaultError> {
        let path = self.path.join(ACTIVE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(format!("cannot read {ACTIVE_FILE}: {e}"))),
        };
        let id = text.trim();
        if !is_key_id(id) {
            return Err(self.err(format!(
                "{ACTIVE_FILE} must hold one master key id (16 lowercase hex characters)"
            )));
        }
        Ok(Some(id.to_owned()))
    }

    /// Every `master-<id>.key` file, each checked (mode, format, name matches the key).
    fn load_all(&self) -> Result<Vec<MasterKey>, VaultError> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(format!("cannot list it: {e}"))),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.err(format!("cannot list it: {e}")))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("master-"))
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let key = match MasterKey::load(&entry.path()) {
                Ok(key) => key,
                // Removed since listed: the unused key of a process that lost the
                // first-start race.
                Err(CryptoError::KeyFileIo { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(VaultError::KeyFile(e)),
            };
            if key.id() != id {
                return Err(self.err(format!(
                    "master-{id}.key holds key {}: a key file must be named master-<its id>.key",
                    key.id()
                )));
            }
            keys.push(key);
        }
        keys.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(keys)
    }

    /// The keyring of a file-keyed deployment, creating the first key on first run.
    fn open_or_init(&self) -> Result<Keyring, VaultError> {
        self.ensure()?;
        let mut keys = self.load_all()?;
        let active_id = match self.read_active()? {
            Some(id) => id,
            None => {
                let (proposed, created) = match keys.as_slice() {
                    [] => {
                        let key = self.create_key()?;
                        let id = key.id().to_owned();
                        keys.push(key);
                        (id, true)
                    }
                    // A crash between writing the first key and naming it active.
                    [only] => (only.id().to_owned(), false),
                    _ => {
                        return Err(self.err(format!(
                            "several master-*.key files but no {ACTIVE_FILE} file: write the id of the key in use into {ACTIVE_FILE}"
                        )))
                    }
                };
                let winner = self.init_active(&proposed)?;
                if winner != proposed {
                    // Another process initialised the directory at the same moment: its
                    // key is the one; ours was never used.
                    if created {
                        let _ = fs::remove_file(self.key_path(&proposed));
                    }
                    keys = self.load_all()?;
                }
                winner
            }
        };
        let position = keys
            .iter()
            .position(|k| k.id() == active_id)
            .ok_or_else(|| {
                self.err(format!(
                    "{ACTIVE_FILE} names key {active_id}, but master-{active_id}.key is missing"
                ))
            })?;
        let mut ring = Keyring::new(keys.swap_remove(position));
        for key in keys {
            ring.add_retired(key);
        }
        Ok(ring)
    }

    /// A fresh key in a new `master-<id>.key` (mode 0600, written and synced by
    /// [`MasterKey::load_or_create`] under a temporary name, then renamed).
    fn create_key(&self) -> Result<MasterKey, VaultError> {
        self.ensure()?;
        let tmp = self
            .path
            .join(format!(".master-new-{}.tmp", uuid::Uuid::new_v4().simple()));
        let key = MasterKey::load_or_create(&tmp).map_err(VaultError::KeyFile)?;
        let path = self.key_path(key.id());
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("cannot name the new key file: {e}")));
        }
        self.sync();
        Ok(key)
    }

    /// Names `id` active unless a racing process named one first; returns the winner.
    fn init_active(&self, id: &str) -> Result<String, VaultError> {
        let tmp = self.write_temp(id)?;
        let linked = fs::hard_link(&tmp, self.path.join(ACTIVE_FILE));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                self.sync();
                Ok(id.to_owned())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                .read_active()?
                .ok_or_else(|| self.err(format!("{ACTIVE_FILE} vanished"))),
            Err(e) => Err(self.err(format!("cannot write {ACTIVE_FILE}: {e}"))),
        }
    }

    /// Atomically replaces the `active` file (a reader sees the old or the new id).
    fn set_active(&self, id: &str) -> Result<(), VaultError> {
        let tmp = self.write_temp(id)?;
        if let Err(e) = fs::rename(&tmp, self.path.join(ACTIVE_FILE)) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("cannot replace {ACTIVE_FILE}: {e}")));
        }
        self.sync();
        Ok(())
    }

    fn write_temp(&self, id: &str) -> Result<PathBuf, VaultError> {
        let tmp = self
            .path
            .join(format!(".active-{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(format!("{id}\n").as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(format!("cannot write a temporary file: {e}")));
        }
        Ok(tmp)
    }

    /// Makes renames and new entries durable; not every filesystem allows it.
    fn sync(&self) {
        if let Ok(dir) = fs::File::open(&self.path) {
            let _ = dir.sync_all();
        }
    }
}

fn is_key_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a master-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The new active master key.
    pub new_master_key_id: String,
    /// The key that was active before.
    pub previous_master_key_id: String,
    /// DEKs now wrapped under the new key.
    pub rewrapped: u64,
    /// DEKs destroyed (shredded) or rewrapped by someone else while we worked.
    pub skipped: u64,
    /// DEKs that did not unwrap (altered rows); they stay under their old key.
    pub failed: Vec<String>,
    /// Live DEKs wrapped under master keys with no key file here (cannot be rewrapped).
    pub unknown_master: u64,
    /// Retired keys still in the key directory (old key files are never deleted).
    pub retired_key_ids: Vec<String>,
    /// Live DEKs still wrapped under retired keys after the last sweep (0 when done).
    pub remaining_under_retired: u64,
    /// Sweeps over the DEK table.
    pub passes: u32,
}

impl RotationReport {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "master key rotated: {} -> {}; {} data key(s) rewrapped in {} pass(es)",
            self.previous_master_key_id, self.new_master_key_id, self.rewrapped, self.passes
        );
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped (destroyed meanwhile)", self.skipped));
        }
        if !self.failed.is_empty() {
            line.push_str(&format!(
                "; {} damaged data key(s) left under their old key: {}",
                self.failed.len(),
                self.failed.join(", ")
            ));
        }
        if self.unknown_master > 0 {
            line.push_str(&format!(
                "; {} data key(s) are wrapped under master keys with no key file here",
                self.unknown_master
            ));
        }
        if self.remaining_under_retired == 0 && self.failed.is_empty() {
            line.push_str(&format!(
                ". Retired key file(s) {} are no longer used by the database, but keep them as long as you keep backups made before this rotation",
                self.retired_key_ids.join(", ")
            ));
        } else {
            line.push_str(&format!(
                ". {} data key(s) still use retired keys: keep the retired key files and run the rotation again",
                self.remaining_under_retired
            ));
        }
        line
    }
}

/// Master-key rotation of a file-keyed deployment, safe while servers run.
///
/// Creates a new `master-<id>.key`, makes it active (atomic rename of `active`), then
/// rewraps every live DEK wrapped under an older key in pages, sweeping until a pass
/// finds nothing left (servers that wrapped a DEK under the old key just before the
/// switch are caught by the next pass). Field ciphertexts and blind indexes do not
/// change. Old key files are kept. `wrap_algorithm` re-wraps every DEK with that
/// algorithm; `None` keeps each DEK's own. `progress(done, total)` is called after
/// each DEK; `total` may grow when servers create DEKs under the old key meanwhile.
///
/// Refused when the active key comes from `ZHUDAI_MASTER_KEY`.
pub async fn rotate_master(
    store: &Store,
    data_dir: &Path,
    env_master_key: Option<&SecretString>,
    wrap_algorithm: Option<Algorithm>,
    progress: impl Fn(u64, u64),
) -> Result<RotationReport, VaultError> {
    if env_master_key.is_some() {
        return Err(VaultError::EnvKeyRotation);
    }
    let keys = KeyDir::new(data_dir);
    if keys.read_active()?.is_none() {
        return Err(keys.err(format!(
            "no {ACTIVE_FILE} file: no server has run with this data directory yet, so there is no key to rotate"
        )));
    }
    let mut ring = keys.open_or_init()?;
    let previous = ring.active().id().to_owned();
    let new_key = keys.create_key()?;
    let new_id = new_key.id().to_owned();
    ring.rotate(new_key);
    keys.set_active(&new_id)?;

    let mut report = RotationReport {
        new_master_key_id: new_id.clone(),
        previous_master_key_id: previous,
        rewrapped: 0,
        skipped: 0,
        failed: Vec::new(),
        unknown_master: 0,
        retired_key_ids: Vec::new(),
        remaining_under_retired: 0,
        passes: 0,
    };
    let mut failed = BTreeSet::new();
    let mut done = 0u64;
    let mut counts = master_key_counts(store).await?;
    while report.passes < ROTATION_MAX_PASSES {
        let todo: Vec<(String, u64)> = counts
            .iter()
            .filter(|(id, _)| **id != new_id && ring.get(id).is_some())
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        let pending = todo
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>()
            .saturating_sub(failed.len() as u64);
        if pending == 0 {
            break;
        }
        report.passes += 1;
        let total = done + pending;
        progress(done, total);
        let mut rewrapped_this_pass = 0u64;
        for (old_id, _) in &todo {
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .data_keys_by_master(old_id, after.as_deref(), ROTATION_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for wrapped in &page {
                    if failed.contains(&wrapped.id) {
                        continue;
                    }
                    let algorithm = wrap_algorithm.unwrap_or(wrapped.algorithm);
                    let rewrapped = unwrap_dek(wrapped, &ring)
                        .and_then(|dek| wrap_dek(&dek, ring.active(), algorithm));
                    match rewrapped {
                        Ok(rewrapped) => {
                            if store.data_key_rewrap(&rewrapped, old_id).await? {
                                report.rewrapped += 1;
                                rewrapped_this_pass += 1;
                            } else {
                                report.skipped += 1;
                            }
                        }
                        Err(_) => {
                            failed.insert(wrapped.id.clone());
                        }
                    }
                    done += 1;
                    progress(done, total.max(done));
                }
            }
        }
        counts = master_key_counts(store).await?;
        if rewrapped_this_pass == 0 {
            // Only damaged keys are left: another pass would not change anything.
            break;
        }
    }
    report.remaining_under_retired = counts
        .iter()
        .filter(|(id, _)| **id != new_id && ring.get(id).is_some())
        .map(|(_, n)| n)
        .sum();
    report.unknown_master = counts
        .iter()
        .filter(|(id, _)| ring.get(id).is_none())
        .map(|(_, n)| n)
        .sum();
    report.failed = failed.into_iter().collect();
    report.retired_key_ids = ring
        .ids()
        .into_iter()
        .filter(|id| *id != new_id)
        .map(str::to_owned)
        .collect();
    Ok(report)
}

/// Live DEKs per master key id.
// This query belongs in zhudai_store::keys (`data_key_counts_by_master`); it lives
// here until that file can take it.
async fn master_key_counts(store: &Store) -> Result<HashMap<String, u64>, VaultError> {
    Ok(store
        .data_key_counts_by_master()
        .await?
        .into_iter()
        .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
        .collect())
}
