//! Data-encryption keys (DEKs) at rest: each stored wrapped by a master key
//! ([`zhudai_crypto::envelope::WrappedDek`]); the key material never reaches the database
//! in clear.
//!
//! Two kinds: the *system* DEK, which encrypts data that belongs to no one person (e.g.
//! the checkpoint signing key), and one DEK per data *subject* (a borrower), so that
//! destroying that one key makes everything written about them unreadable wherever it
//! was copied (crypto-shredding, used by PIPL deletion). A destroyed key keeps its row
//! (so "this data was erased" can be told apart from "this key never existed") but loses
//! its wrapped bytes, and no function returns it as usable again.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::Row;
use zhudai_crypto::envelope::WrappedDek;

/// `system_meta` key naming the system DEK.
const SYSTEM_DEK_META_KEY: &str = "crypto.system_dek_id";

/// What the store knows of a subject's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectDek {
    /// The key, ready to unwrap.
    Ready(WrappedDek),
    /// The key was destroyed: the subject's encrypted data is gone for good.
    Destroyed { id: String, destroyed_at_ms: i64 },
}

/// Bookkeeping of a DEK, without its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    pub id: String,
    pub subject: Option<String>,
    pub master_key_id: String,
    pub algorithm: String,
    pub created_at_ms: i64,
    pub destroyed_at_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, subject, wrapped, master_key_id, algorithm, created_at_ms, destroyed_at_ms";

fn wrapped_from_row(row: &AnyRow) -> Result<WrappedDek, StoreError> {
    let algorithm: String = row.try_get("algorithm")?;
    Ok(WrappedDek {
        id: row.try_get("id")?,
        wrapped: row.try_get("wrapped")?,
        master_key_id: row.try_get("master_key_id")?,
        algorithm: algorithm
            .parse()
            .map_err(|e| StoreError::Invalid(format!("data key algorithm: {e}")))?,
    })
}

fn info_from_row(row: &AnyRow) -> Result<DataKeyInfo, StoreError> {
    Ok(DataKeyInfo {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        master_key_id: row.try_get("master_key_id")?,
        algorithm: row.try_get("algorithm")?,
        created_at_ms: row.try_get("created_at_ms")?,
        destroyed_at_ms: row.try_get("destroyed_at_ms")?,
    })
}

fn subject_dek_from_row(row: &AnyRow) -> Result<SubjectDek, StoreError> {
    match row.try_get::<Option<i64>, _>("destroyed_at_ms")? {
        Some(destroyed_at_ms) => Ok(SubjectDek::Destroyed {
            id: row.try_get("id")?,
            destroyed_at_ms,
        }),
        None => Ok(SubjectDek::Ready(wrapped_from_row(row)?)),
    }
}

impl Store {
    /// Stores a new DEK, for `subject` or (with `None`) a system key.
    pub async fn data_key_insert(
        &self,
        key: &WrappedDek,
        subject: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO data_keys (id, subject, wrapped, master_key_id, algorithm, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.as_str())
        .bind(subject)
        .bind(key.wrapped.clone())
        .bind(key.master_key_id.as_str())
        .bind(key.algorithm.as_str())
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// A usable DEK by id; `None` when it does not exist or was destroyed.
    pub async fn data_key(&self, id: &str) -> Result<Option<WrappedDek>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM data_keys WHERE id = $1 AND destroyed_at_ms IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(wrapped_from_row).transpose()
    }

    /// What is known about a DEK, destroyed or not (no key material).
    pub async fn data_key_info(&self, id: &str) -> Result<Option<DataKeyInfo>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM data_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(info_from_row).transpose()
    }

    /// The subject's DEK, if one was ever made.
    pub async fn data_key_of_subject(
        &self,
        subject: &str,
    ) -> Result<Option<SubjectDek>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM data_keys WHERE subject = $1"
        ))
        .bind(subject)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(subject_dek_from_row).transpose()
    }

    /// The subject's DEK, storing `candidate` (freshly made by the caller) if the subject
    /// has none yet. Race-safe: of concurrent callers exactly one candidate is stored and
    /// all get that one; compare the returned id with the candidate's to know whether
    /// yours won. A destroyed key is reported as such and never replaced.
    pub async fn data_key_for_subject(
        &self,
        subject: &str,
        candidate: &WrappedDek,
        now_ms: i64,
    ) -> Result<SubjectDek, StoreError> {
        if let Some(found) = self.data_key_of_subject(subject).await? {
            return Ok(found);
        }
        sqlx::query(
            "INSERT INTO data_keys (id, subject, wrapped, master_key_id, algorithm, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(candidate.id.as_str())
        .bind(subject)
        .bind(candidate.wrapped.clone())
        .bind(candidate.master_key_id.as_str())
        .bind(candidate.algorithm.as_str())
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        // The winner's insert is committed once ours returned (ours waited for it on
        // PostgreSQL; SQLite has one writer), so this read sees it.
        self.data_key_of_subject(subject)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("data key of subject `{subject}` vanished")))
    }

    /// The system DEK, storing `candidate` if there is none yet (race-safe like
    /// [`Store::data_key_for_subject`]).
    pub async fn data_key_system(
        &self,
        candidate: &WrappedDek,
        now_ms: i64,
    ) -> Result<WrappedDek, StoreError> {
        if let Some(id) = self.meta_get(SYSTEM_DEK_META_KEY).await? {
            return self.system_key_by_id(&id).await;
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO data_keys (id, subject, wrapped, master_key_id, algorithm, created_at_ms)
             VALUES ($1, NULL, $2, $3, $4, $5)",
        )
        .bind(candidate.id.as_str())
        .bind(candidate.wrapped.clone())
        .bind(candidate.master_key_id.as_str())
        .bind(candidate.algorithm.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO system_meta (key, value, updated_at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(SYSTEM_DEK_META_KEY)
        .bind(candidate.id.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let winner: String = sqlx::query("SELECT value FROM system_meta WHERE key = $1")
            .bind(SYSTEM_DEK_META_KEY)
            .fetch_one(&mut *tx)
            .await?
            .try_get("value")?;
        if winner != candidate.id {
            // Another instance was first; our candidate was never used by anyone.
            sqlx::query("DELETE FROM data_keys WHERE id = $1")
                .bind(candidate.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.system_key_by_id(&winner).await
    }

    async fn system_key_by_id(&self, id: &str) -> Result<WrappedDek, StoreError> {
        self.data_key(id).await?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "the system data key `{id}` is missing or destroyed"
            ))
        })
    }

    /// Up to `limit` usable DEKs wrapped by `master_key_id`, ordered by id after `after_id`:
    /// the work list of a master-key rotation.
    pub async fn data_keys_by_master(
        &self,
        master_key_id: &str,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<WrappedDek>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM data_keys
             WHERE master_key_id = $1 AND destroyed_at_ms IS NULL AND id > $2
             ORDER BY id LIMIT $3"
        ))
        .bind(master_key_id)
        .bind(after_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(wrapped_from_row).collect()
    }

    /// Replaces a DEK's wrapping (after [`zhudai_crypto::envelope::rewrap`]), only if it
    /// is still wrapped by `previous_master_key_id` and not destroyed. False otherwise,
    /// so a rotation racing a destruction can never bring a key back.
    pub async fn data_key_rewrap(
        &self,
        rewrapped: &WrappedDek,
        previous_master_key_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE data_keys SET wrapped = $2, master_key_id = $3, algorithm = $4
             WHERE id = $1 AND master_key_id = $5 AND destroyed_at_ms IS NULL",
        )
        .bind(rewrapped.id.as_str())
        .bind(rewrapped.wrapped.clone())
        .bind(rewrapped.master_key_id.as_str())
        .bind(rewrapped.algorithm.as_str())
        .bind(previous_master_key_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Crypto-shreds a subject: erases the wrapped key and marks it destroyed. Returns the
    /// destroyed key's id, `None` when the subject had no live key.
    pub async fn data_key_destroy_subject(
        &self,
        subject: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "UPDATE data_keys SET wrapped = $3, destroyed_at_ms = $2
             WHERE subject = $1 AND destroyed_at_ms IS NULL
             RETURNING id",
        )
        .bind(subject)
        .bind(now_ms)
        .bind(Vec::<u8>::new())
        .fetch_optional(self.writer())
        .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }
}

impl Store {
    /// How many live (not destroyed) data keys each master key wraps; for rotation progress.
    pub async fn data_key_counts_by_master(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT master_key_id, COUNT(*) AS n FROM data_keys
             WHERE destroyed_at_ms IS NULL GROUP BY master_key_id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("master_key_id")?, row.try_get("n")?)))
            .collect()
    }
}
