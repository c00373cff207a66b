//! The audit trail at rest: the appender, search, the streaming verifier, signed
//! checkpoints and the checkpoint signing keys. What makes a chain intact is decided by
//! [`zhudai_crypto::audit_chain`]; this module stores and reads.
//!
//! # Appending
//!
//! [`append`] runs inside the caller's transaction, so the record commits exactly when
//! the business change does. Its first statement,
//! `UPDATE audit_head SET seq = seq + 1 … RETURNING seq, hash`, reserves the next seq and
//! reads the previous hash in one step and holds the head row until commit. On
//! PostgreSQL that row lock serialises every appender on the database, several server
//! instances included (it does what a `pg_advisory_xact_lock` would, and also works on
//! SQLite, where the same statement takes the database's single write lock before
//! anything is read, so two processes on one file cannot both read the same head). A
//! rolled-back transaction gives its seq back, so seqs have no gaps. Consequences for
//! callers: append last in a transaction (the head is a hot row, held until commit), and
//! use PostgreSQL's default READ COMMITTED isolation.
//!
//! Nothing here updates or deletes a record; database triggers refuse it as well.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use zhudai_crypto::audit_chain::{AuditRecord, ChainBreak, ChainHead, ChainVerifier, Checkpoint};

/// Records read per query while verifying.
pub const VERIFY_PAGE_SIZE: i64 = 10_000;

/// A record to append: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditDraft {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub change_digest: Option<String>,
}

impl AuditDraft {
    pub fn new(at_ms: i64, action: impl Into<String>, outcome: impl Into<String>) -> Self {
        Self {
            at_ms,
            action: action.into(),
            outcome: outcome.into(),
            ..Self::default()
        }
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    pub fn source_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = Some(ip.into());
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn change_digest(mut self, digest: impl Into<String>) -> Self {
        self.change_digest = Some(digest.into());
        self
    }
}

/// Search criteria; every given one must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `at_ms >= from_ms`.
    pub from_ms: Option<i64>,
    /// `at_ms < to_ms`.
    pub to_ms: Option<i64>,
    pub actor: Option<String>,
    /// The action starts with this (case-sensitive), e.g. `customer.` or `auth.login`.
    pub action_prefix: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
}

/// One page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `before_seq` for the next (older) page; `None` on the last page.
    pub next_before_seq: Option<i64>,
}

/// The newest position of the chain as the appender sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// A checkpoint signing key as stored: the ed25519 secret encrypted by the caller
/// ([`zhudai_crypto::audit_chain::CheckpointSigningKey::encrypt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub public_key: String,
    pub secret_enc: Vec<u8>,
    pub active: bool,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
}

const RECORD_COLUMNS: &str =
    "seq, at_ms, actor, role, source_ip, request_id, action, target, outcome, reason, \
    change_digest, prev_hash, hash";

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        source_ip: row.try_get("source_ip")?,
        request_id: row.try_get("request_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        reason: row.try_get("reason")?,
        change_digest: row.try_get("change_digest")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn checkpoint_from_row(row: &AnyRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
        at_ms: row.try_get("at_ms")?,
        signature: row.try_get("signature")?,
        public_key: row.try_get("public_key")?,
    })
}

fn signing_key_from_row(row: &AnyRow) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        public_key: row.try_get("public_key")?,
        secret_enc: row.try_get("secret_enc")?,
        active: row.try_get::<Option<i64>, _>("active")?.is_some(),
        created_at_ms: row.try_get("created_at_ms")?,
        retired_at_ms: row.try_get("retired_at_ms")?,
    })
}

/// Appends `draft` to the chain inside the caller's open transaction (pass `&mut tx`);
/// the record exists if and only if that transaction commits. See the module doc for
/// the locking.
pub async fn append(
    conn: &mut AnyConnection,
    draft: &AuditDraft,
) -> Result<AuditRecord, StoreError> {
    let head = head_advance_stmt().fetch_all(conn).await?;
    let record = seal_after(&head, draft)?;
    // The record and the new head in one round trip on SQLite.
    let mut b = crate::batch::Batch::new();
    b.extend(record_stmts(&record));
    b.run(conn).await?;
    Ok(record)
}

/// Appends `drafts`, in order, as the last writes of `tx` and commits: the head is
/// reserved in one round trip ([`head_reserve_stmt`]); the sealed records, the head,
/// `extra` (statements that need no answer) and the `COMMIT` go in the next, on SQLite
/// as one batch. Where a transaction would end with [`append`] and `commit`, this saves a
/// round trip per record while the writer is held. Returns the records.
pub async fn commit_with_records(
    mut tx: crate::writer::WriteTx,
    drafts: &[AuditDraft],
    extra: crate::batch::Batch,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut records: Vec<AuditRecord> = Vec::with_capacity(drafts.len());
    if !drafts.is_empty() {
        let head = head_reserve_stmt(tx.backend()).fetch_all(&mut tx).await?;
        for d in drafts {
            let r = match records.last() {
                None => seal_after(&head, d)?,
                Some(prev) => seal_next(prev, d),
            };
            records.push(r);
        }
    }
    let mut b = extra;
    for r in &records {
        b.extend(record_stmts(r));
    }
    tx.commit_with(b).await?;
    Ok(records)
}

/// The first half of [`append`] as a statement: takes the next sequence number and the
/// previous hash (and, on PostgreSQL, the head row's lock until the transaction ends).
pub fn head_advance_stmt() -> crate::batch::Stmt {
    crate::batch::Stmt::new(
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
        Vec::new(),
    )
}

/// [`head_advance_stmt`] without the write: the next sequence number and the previous
/// hash, for a transaction that seals its record before its next round trip and writes
/// it (and the head, through [`record_stmts`]) in that round trip. On PostgreSQL it takes
/// the head row's lock until the transaction ends, as the advance does; on SQLite the
/// write transaction already holds the one writer. Nothing else may append to the chain
/// in the same transaction between this read and [`record_stmts`] (read it again after
/// such a step).
pub fn head_reserve_stmt(backend: crate::db::Backend) -> crate::batch::Stmt {
    let lock = match backend {
        crate::db::Backend::Sqlite => "",
        crate::db::Backend::Postgres => " FOR UPDATE",
    };
    crate::batch::Stmt::new(
        format!("SELECT seq + 1 AS seq, hash FROM audit_head WHERE id = 1{lock}"),
        Vec::new(),
    )
}

/// The record `draft` becomes under the head returned by [`head_advance_stmt`] or
/// [`head_reserve_stmt`].
pub fn seal_after(head: &[AnyRow], draft: &AuditDraft) -> Result<AuditRecord, StoreError> {
    let head = head
        .first()
        .ok_or_else(|| StoreError::Invalid("the audit_head row is missing".into()))?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    Ok(seal_as(seq, &prev_hash, draft))
}

/// The record `draft` becomes right after `prev` in the chain, for a transaction that
/// writes several records in one round trip (the first sealed by [`seal_after`]).
pub fn seal_next(prev: &AuditRecord, draft: &AuditDraft) -> AuditRecord {
    seal_as(prev.seq + 1, &prev.hash, draft)
}

fn seal_as(seq: i64, prev_hash: &str, draft: &AuditDraft) -> AuditRecord {
    AuditRecord {
        seq,
        at_ms: draft.at_ms,
        actor: draft.actor.clone(),
        role: draft.role.clone(),
        source_ip: draft.source_ip.clone(),
        request_id: draft.request_id.clone(),
        action: draft.action.clone(),
        target: draft.target.clone(),
        outcome: draft.outcome.clone(),
        reason: draft.reason.clone(),
        change_digest: draft.change_digest.clone(),
        prev_hash: String::new(),
        hash: String::new(),
    }
    .seal(prev_hash)
}

/// The second half of [`append`]: the sealed record's row and the head's new sequence
/// number and hash.
pub fn record_stmts(record: &AuditRecord) -> [crate::batch::Stmt; 2] {
    [
        crate::batch::Stmt::new(
            format!(
                "INSERT INTO audit_log ({RECORD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            vec![
                record.seq.into(),
                record.at_ms.into(),
                record.actor.clone().into(),
                record.role.clone().into(),
                record.source_ip.clone().into(),
                record.request_id.clone().into(),
                record.action.clone().into(),
                record.target.clone().into(),
                record.outcome.clone().into(),
                record.reason.clone().into(),
                record.change_digest.clone().into(),
                record.prev_hash.clone().into(),
                record.hash.clone().into(),
            ],
        ),
        crate::batch::Stmt::new(
            "UPDATE audit_head SET seq = $2, hash = $1 WHERE id = 1",
            vec![record.hash.clone().into(), record.seq.into()],
        ),
    ]
}

/// A bind value of a dynamically built query.
enum Arg {
    Int(i64),
    Text(String),
}

/// Dynamically built conditions and their arguments, `?` numbered as they are added.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    args: Vec<Arg>,
}

impl Conditions {
    /// Adds a condition whose `?`s all stand for `arg`.
    fn push(&mut self, sql: &str, arg: Arg) {
        self.args.push(arg);
        self.sql
            .push(sql.replace('?', &format!("${}", self.args.len())));
    }
}

/// `WHERE …` for `filter` (and `seq < before_seq`), with its arguments in placeholder order.
fn where_clause(filter: &AuditFilter, before_seq: Option<i64>) -> (String, Vec<Arg>) {
    let mut c = Conditions::default();
    if let Some(v) = before_seq {
        c.push("seq < ?", Arg::Int(v));
    }
    if let Some(v) = filter.from_ms {
        c.push("at_ms >= ?", Arg::Int(v));
    }
    if let Some(v) = filter.to_ms {
        c.push("at_ms < ?", Arg::Int(v));
    }
    if let Some(v) = &filter.actor {
        c.push("actor = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = filter.action_prefix.as_ref().filter(|p| !p.is_empty()) {
        // substr/length rather than LIKE: the same case-sensitive meaning on both
        // databases and no wildcard escaping.
        c.push("substr(action, 1, length(?)) = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &filter.target {
        c.push("target = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &filter.outcome {
        c.push("outcome = ?", Arg::Text(v.clone()));
    }
    let clause = if c.sql.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", c.sql.join(" AND "))
    };
    (clause, c.args)
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.as_str()),
        };
    }
    query
}

impl Store {
    /// Appends `draft` in a transaction of its own.
    pub async fn audit_append(&self, draft: &AuditDraft) -> Result<AuditRecord, StoreError> {
        let mut tx = self.begin().await?;
        let record = append(&mut tx, draft).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The newest seq and hash recorded by the appender.
    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| StoreError::Invalid("the audit_head row is missing".into()))?;
        Ok(AuditHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
        })
    }

    /// One record by seq.
    pub async fn audit_record(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM audit_log WHERE seq = $1"
        ))
        .bind(seq)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Records matching `filter`, newest first, `limit` (1..=1000) at a time; pass the
    /// previous page's `next_before_seq` as `before_seq` to continue (keyset paging: stable
    /// while records are being appended, and as fast on page 1000 as on page 1).
    pub async fn audit_search(
        &self,
        filter: &AuditFilter,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let (clause, args) = where_clause(filter, before_seq);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_log{clause} ORDER BY seq DESC LIMIT ${}",
            args.len() + 1
        );
        let rows = bind_all(sqlx::query(&sql), &args)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_before_seq = if records.len() as i64 == limit {
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(AuditPage {
            records,
            next_before_seq,
        })
    }

    /// How many records match `filter`.
    pub async fn audit_count(&self, filter: &AuditFilter) -> Result<i64, StoreError> {
        let (clause, args) = where_clause(filter, None);
        let sql = format!("SELECT COUNT(*) AS n FROM audit_log{clause}");
        let row = bind_all(sqlx::query(&sql), &args)
            .fetch_one(self.reader())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Up to `limit` records with seq greater than `after_seq`, in seq order: a page of a
    /// full walk (verification, export).
    pub async fn audit_records_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit.max(1))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Re-walks the whole chain from genesis in pages of [`VERIFY_PAGE_SIZE`]. The outer
    /// error is a database failure; the inner result is the verdict: the verified head, or
    /// the first break (naming its seq). `checkpoints` must already have had their
    /// signatures checked against a trusted key
    /// ([`zhudai_crypto::audit_chain::verify_checkpoint`]); the chain must pass through
    /// each, and through the appender's recorded head, so deleting the newest records is
    /// caught too.
    pub async fn audit_verify(
        &self,
        checkpoints: &[Checkpoint],
    ) -> Result<Result<ChainHead, ChainBreak>, StoreError> {
        self.audit_verify_paged(checkpoints, VERIFY_PAGE_SIZE).await
    }

    /// [`Store::audit_verify`] with a chosen page size.
    pub async fn audit_verify_paged(
        &self,
        checkpoints: &[Checkpoint],
        page_size: i64,
    ) -> Result<Result<ChainHead, ChainBreak>, StoreError> {
        let head = self.audit_head().await?;
        let mut verifier = ChainVerifier::from_genesis();
        if head.seq > 0 {
            // The head row is not signed, so trusted checkpoints (added after) win on a tie.
            verifier = verifier.expect_checkpoint(&Checkpoint {
                seq: head.seq,
                hash: head.hash,
                at_ms: 0,
                signature: String::new(),
                public_key: String::new(),
            });
        }
        for cp in checkpoints {
            verifier = verifier.expect_checkpoint(cp);
        }
        let mut after = 0;
        loop {
            let page = self.audit_records_after(after, page_size).await?;
            for record in &page {
                if let Err(brk) = verifier.push(record) {
                    return Ok(Err(brk));
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 >= page_size.max(1) => after = last.seq,
                _ => break,
            }
        }
        Ok(verifier.finish())
    }

    /// Stores a signed checkpoint (idempotent for the same seq).
    pub async fn audit_checkpoint_store(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at_ms, signature, public_key) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(cp.seq)
        .bind(cp.hash.as_str())
        .bind(cp.at_ms)
        .bind(cp.signature.as_str())
        .bind(cp.public_key.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// All checkpoints, in seq order.
    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, hash, at_ms, signature, public_key FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    /// The newest checkpoint.
    pub async fn audit_checkpoint_latest(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, hash, at_ms, signature, public_key FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    /// The active checkpoint signing key, storing this one if there is none yet
    /// (race-safe: concurrent first starts all get the same key; compare public keys).
    pub async fn audit_signing_key_init(
        &self,
        public_key: &str,
        secret_enc: &[u8],
        now_ms: i64,
    ) -> Result<StoredSigningKey, StoreError> {
        sqlx::query(
            "INSERT INTO audit_signing_keys (public_key, secret_enc, active, created_at_ms) VALUES ($1, $2, 1, $3)
             ON CONFLICT (active) DO NOTHING",
        )
        .bind(public_key)
        .bind(secret_enc.to_vec())
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        self.audit_signing_key_active().await?.ok_or_else(|| {
            StoreError::Invalid("no active audit signing key after storing one".into())
        })
    }

    pub async fn audit_signing_key_active(&self) -> Result<Option<StoredSigningKey>, StoreError> {
        let row = sqlx::query(
            "SELECT public_key, secret_enc, active, created_at_ms, retired_at_ms FROM audit_signing_keys WHERE active = 1",
        )
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(signing_key_from_row).transpose()
    }

    /// Retires the active signing key and makes this one active, atomically.
    pub async fn audit_signing_key_rotate(
        &self,
        public_key: &str,
        secret_enc: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE audit_signing_keys SET active = NULL, retired_at_ms = $1 WHERE active = 1",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_signing_keys (public_key, secret_enc, active, created_at_ms) VALUES ($1, $2, 1, $3)",
        )
        .bind(public_key)
        .bind(secret_enc.to_vec())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every signing key, active and retired (the public keys verify old checkpoints).
    pub async fn audit_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT public_key, secret_enc, active, created_at_ms, retired_at_ms FROM audit_signing_keys
             ORDER BY created_at_ms, public_key",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }
}
