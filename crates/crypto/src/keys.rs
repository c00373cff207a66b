//! Master keys: loading, creating, identifying and rotating them.
//!
//! A [`MasterKey`] is 32 random bytes. It never encrypts data itself: it wraps
//! data-encryption keys ([`crate::envelope`]) and is the root from which the
//! blind-index key is derived ([`crate::blind_index`]).
//!
//! **Sources.** A key file ([`MasterKey::load`], [`MasterKey::load_or_create`])
//! or a base64 string from the environment ([`MasterKey::from_env`],
//! [`MasterKey::from_base64`]), e.g. injected by a secrets manager.
//!
//! **Key file format.** One line: the 32 key bytes in standard base64 (44
//! characters), optionally followed by a newline. Nothing else is accepted. The
//! file must be mode `0600` (or stricter): any group or other permission bit
//! makes loading fail, as an ssh client does for private keys.
//!
//! **Key id.** Decision: the id is *derived*, not stored:
//! `hex(SHA-256("zhudai/master-key-id/v1" ‖ key))[..16]` (64 bits). The same key
//! gets the same id whether it comes from a file or from the environment, the
//! file format stays a bare key, and the id reveals nothing about the key. Ids
//! are recorded next to every wrapped DEK so that, after a rotation, the
//! [`Keyring`] finds the master key that wrapped it.
//!
//! **Rotation.** A [`Keyring`] holds the active key (used to wrap new DEKs)
//! and retired keys (only used to unwrap). Rotating = load the new key as
//! active, the old one as retired, [`crate::envelope::rewrap`] every wrapped
//! DEK, then drop the retired key. Data ciphertexts are untouched.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// The root secret of a deployment: 32 bytes, zeroized on drop, redacted in `Debug`.
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        crate::fill_random(bytes.as_mut())?;
        Ok(Self::from_array(bytes))
    }

    /// A key from raw bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|_| {
            CryptoError::MalformedKey(format!(
                "a master key is {MASTER_KEY_LEN} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_array(Zeroizing::new(arr)))
    }

    /// A key from its standard base64 form (surrounding whitespace ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| CryptoError::MalformedKey("not valid standard base64".into()))?,
        );
        Self::from_bytes(&decoded)
    }

    /// A key from the base64 value of environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, CryptoError> {
        let value = Zeroizing::new(
            std::env::var(var).map_err(|_| CryptoError::MissingEnv(var.to_owned()))?,
        );
        Self::from_base64(&value)
    }

    /// Loads an existing key file, refusing insecure permissions or malformed content.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(CryptoError::KeyFileMalformed {
                path: path.to_owned(),
                reason: "not a regular file".into(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFileInsecure {
                path: path.to_owned(),
                mode,
            });
        }
        let content = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        let line = content.strip_suffix('\n').unwrap_or(&content);
        let malformed = |reason: &str| CryptoError::KeyFileMalformed {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if line.contains('\n') || line.contains(char::is_whitespace) {
            return Err(malformed(
                "expected exactly one line holding the base64 key and nothing else",
            ));
        }
        let decoded = Zeroizing::new(
            STANDARD
                .decode(line)
                .map_err(|_| malformed("not valid standard base64"))?,
        );
        if decoded.len() != MASTER_KEY_LEN {
            return Err(malformed(&format!(
                "the key must be {MASTER_KEY_LEN} bytes, found {}",
                decoded.len()
            )));
        }
        Self::from_bytes(&decoded)
    }

    /// Loads the key file at `path`, or creates it with a fresh key and mode
    /// `0600` if it does not exist (first run). Never overwrites a file.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match fs::symlink_metadata(path) {
            Ok(_) => return Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CryptoError::KeyFileIo {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let key = Self::generate()?;
        let io_err = |source| CryptoError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            // Another process created it between our check and our create: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Self::load(path),
            Err(e) => return Err(io_err(e)),
        };
        // The umask can only remove bits, but make the mode explicit anyway.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
        let mut line = key.to_base64();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the new directory entry durable; not all filesystems allow it.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(key)
    }

    /// The key id (16 lowercase hex characters, derived from the key; see the module doc).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key in standard base64, for a backup or a secrets manager. Handle with care.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_ref()))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    fn from_array(bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> Self {
        let mut h = Sha256::new();
        h.update(b"zhudai/master-key-id/v1");
        h.update(bytes.as_ref());
        let digest = h.finalize();
        let id = hex::encode(&digest[..8]);
        Self { id, bytes }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// The active master key plus retired ones still needed to unwrap old DEKs.
#[derive(Debug)]
pub struct Keyring {
    active: MasterKey,
    retired: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring with only `active`.
    pub fn new(active: MasterKey) -> Self {
        Self {
            active,
            retired: Vec::new(),
        }
    }

    /// Adds a retired key (builder style). A key equal to the active one is ignored.
    pub fn with_retired(mut self, key: MasterKey) -> Self {
        self.add_retired(key);
        self
    }

    /// Adds a retired key. Duplicates (same id) are ignored.
    pub fn add_retired(&mut self, key: MasterKey) {
        if self.get(key.id()).is_none() {
            self.retired.push(key);
        }
    }

    /// Makes `new_active` the active key; the previous active key becomes retired.
    pub fn rotate(&mut self, new_active: MasterKey) {
        if new_active.id() == self.active.id() {
            return;
        }
        self.retired.retain(|k| k.id() != new_active.id());
        let old = std::mem::replace(&mut self.active, new_active);
        self.retired.push(old);
    }

    /// Drops a retired key once nothing is wrapped under it any more.
    /// Returns whether a key was removed. The active key cannot be removed.
    pub fn remove_retired(&mut self, id: &str) -> bool {
        let before = self.retired.len();
        self.retired.retain(|k| k.id() != id);
        before != self.retired.len()
    }

    /// The key that wraps new DEKs.
    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    /// The key with this id, active or retired.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.active)
            .chain(self.retired.iter())
            .find(|k| k.id() == id)
    }

    /// Like [`Keyring::get`], with an error naming the missing id.
    pub fn require(&self, id: &str) -> Result<&MasterKey, CryptoError> {
        self.get(id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(id.to_owned()))
    }

    /// Ids of all keys, the active one first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.active)
            .chain(self.retired.iter())
            .map(MasterKey::id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_same_key_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(created.id(), loaded.id());
        assert_eq!(created.bytes(), loaded.bytes());
        assert_eq!(created.id().len(), 16);
        let content = fs::read_to_string(&path).unwrap();
        assert_eq!(content.trim_end().len(), 44);
    }

    #[test]
    fn refuses_group_or_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::KeyFileInsecure { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(MasterKey::load(&path).is_ok());
    }

    #[test]
    fn refuses_malformed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        for content in [
            "not base64!!\n",
            "AAAA\n",
            "",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nextra\n",
        ] {
            let _ = fs::remove_file(&path);
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::KeyFileMalformed { .. }),
                "{content:?}: {err}"
            );
        }
        // The file was left alone, not overwritten.
        assert!(fs::read_to_string(&path).unwrap().contains("extra"));
    }

    #[test]
    fn base64_and_file_give_the_same_id() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&format!(" {} \n", key.to_base64().as_str())).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(MasterKey::from_base64("AAAA").is_err());
        assert!(MasterKey::from_bytes(&[0u8; 31]).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::from_bytes(&[0xAB; 32]).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("REDACTED"));
        assert!(!dbg.to_lowercase().contains("abab"));
        assert!(!dbg.contains(key.to_base64().as_str()));
    }

    #[test]
    fn keyring_rotation() {
        let k1 = MasterKey::generate().unwrap();
        let k2 = MasterKey::generate().unwrap();
        let (id1, id2) = (k1.id().to_owned(), k2.id().to_owned());
        let mut ring = Keyring::new(k1);
        ring.rotate(k2);
        assert_eq!(ring.active().id(), id2);
        assert!(ring.get(&id1).is_some());
        assert_eq!(ring.ids(), vec![id2.as_str(), id1.as_str()]);
        assert!(ring.remove_retired(&id1));
        assert!(matches!(
            ring.require(&id1),
            Err(CryptoError::UnknownMasterKey(_))
        ));
        assert!(!ring.remove_retired(&id2));
    }
}
