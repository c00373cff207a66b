//! Blob storage for document contents: a small interface (put / get / delete by key)
//! with a local-filesystem implementation under `DATA_DIR/blobs/`. An object store (S3,
//! OSS, MinIO…) can implement [`BlobStore`] later without touching the callers.
//!
//! Blobs are opaque bytes to the store: callers encrypt before `put` (documents are
//! AES-256-GCM ciphertexts under the customer's data key), so neither the disk nor an
//! object store ever holds a plaintext document.
//!
//! The local store writes atomically: the bytes go to a temporary file in the same
//! directory, which is fsynced and then renamed over the final name (and the directory
//! fsynced), so a crash leaves either the old blob, the new blob, or a stray `*.tmp`
//! file — never a torn blob.

use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A boxed future, so the trait stays object-safe (`Arc<dyn BlobStore>`).
pub type BlobFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// Where document contents are kept.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `key`, replacing any blob there; durable when it returns.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()>;
    /// The blob under `key`, `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>>;
    /// Deletes the blob under `key`; false when there was none.
    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, bool>;
}

/// Subdirectory of the data directory holding the local blobs.
pub const BLOBS_DIR: &str = "blobs";

/// Blobs as files under a root directory: key `documents/<uuid>` is the file
/// `<root>/documents/<uuid>`.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// A key is 1–200 characters of `a-z 0-9 - _ /`, with no empty, `.` or `..` segment,
/// so it cannot leave the root.
pub fn check_key(key: &str) -> io::Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '/'))
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a blob key is lower-case letters, digits, `-`, `_` and `/`",
        ))
    }
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBlobStore { root: root.into() }
    }

    /// The store of a data directory: `data_dir/blobs`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(BLOBS_DIR))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key` (checked).
    pub fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn put_sync(path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

impl BlobStore for LocalBlobStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            tokio::task::spawn_blocking(move || Self::put_sync(&path, &bytes))
                .await
                .map_err(io::Error::other)?
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::read(&path).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, bool> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn put_get_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::in_data_dir(dir.path());
        assert_eq!(s.get("documents/a1").await.unwrap(), None);
        s.put("documents/a1", b"one".to_vec()).await.unwrap();
        s.put("documents/a1", b"two".to_vec()).await.unwrap();
        assert_eq!(s.get("documents/a1").await.unwrap().unwrap(), b"two");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/documents"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["a1"]);
        assert!(s.delete("documents/a1").await.unwrap());
        assert!(!s.delete("documents/a1").await.unwrap());
        assert_eq!(s.get("documents/a1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::in_data_dir(dir.path());
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "",
            "A",
            "a b",
            "a/..",
        ] {
            assert!(s.put(bad, vec![1]).await.is_err(), "{bad:?}");
            assert!(s.get(bad).await.is_err(), "{bad:?}");
        }
    }
}
