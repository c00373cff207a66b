//! Bulk customer import and export: the import job rows, their row-level errors, the
//! uploaded file waiting for the worker, multi-row customer and data-key writes for the
//! import's batches, keyset scans for exports, and the four-eyes export requests.
//!
//! Every write takes a connection (`&mut *tx`) so the import engine can put a batch of
//! customers, their data keys, their errors, the job's progress and the audit record in
//! one transaction: after a crash either all of a batch is there or none of it.

use crate::customers::{
    bind_all, row, scope_sql, Bind, CustomerRow, CustomerValues, ScopeFilter, COLUMNS,
};
use crate::db::Store;
use crate::error::StoreError;
use crate::keys::SubjectDek;
use crate::Backend;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{AnyConnection, Row};
use zhudai_crypto::envelope::WrappedDek;

/// Rows per multi-row INSERT of `cols` values each. SQLite looks a parameter up by
/// walking the statement's parameter list (sqlx asks for every parameter's name), so a
/// statement's binding cost grows with the square of its parameters: about 100 values
/// per statement keeps that cost small next to the insert itself. PostgreSQL takes large statements (limit 65535
/// values). Full batches reuse one prepared statement.
fn rows_per_statement(conn: &AnyConnection, cols: usize) -> usize {
    per_statement(Backend::of(conn), cols)
}

/// Values per `IN (…)` list of the batch look-ups.
pub const LOOKUP_PER_STATEMENT: usize = 100;

/// How often the import's own checkpointer copies SQLite's log into the database file
/// (milliseconds). While an import runs the writer does not checkpoint (see
/// [`sqlite_bulk`]); a task on a reader connection does, beside it, on the other core.
pub const IMPORT_CHECKPOINT_EVERY_MS: u64 = 250;

/// Refreshes PostgreSQL's statistics of the tables an import fills. A table that grew
/// from nothing has no statistics, and the planner's default guess (0.5 % of the rows per
/// value) turns the batch look-ups (`IN` of 100 blind indexes) into sequential scans; one
/// ANALYZE after the first batch tells it the column is unique. No-op on SQLite.
pub async fn analyze_for_import(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if !conn.backend_name().eq_ignore_ascii_case("sqlite") {
        sqlx::query("ANALYZE customers").execute(&mut *conn).await?;
        sqlx::query("ANALYZE data_keys").execute(&mut *conn).await?;
    }
    Ok(())
}

/// The writer's page cache during an import, in KiB (1 GiB, taken only as it is used).
pub const BULK_CACHE_KIB: u32 = 1_048_576;

/// Switches the SQLite writer into (`true`) or out of (`false`) bulk-import settings:
/// it stops checkpointing after its commits (`wal_autocheckpoint = 0`; back to SQLite's
/// default 1,000 pages after). An import batch dirties most leaves of the blind-index
/// B-trees, so each commit writes many pages to the log, and copying them into the
/// database file on the writer's thread holds up the next batch; the import runs
/// [`checkpoint_passive`] beside it instead. Its page cache grows to
/// [`BULK_CACHE_KIB`] meanwhile. No-op on PostgreSQL.
pub async fn sqlite_bulk(conn: &mut AnyConnection, on: bool) -> Result<(), StoreError> {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        let pages = if on { 0 } else { 1_000 };
        sqlx::query(&format!("PRAGMA wal_autocheckpoint = {pages}"))
            .execute(&mut *conn)
            .await?;
        // A large batch dirties its rows' pages and about every leaf of the blind
        // indexes; they must all stay in the cache until COMMIT, or SQLite writes them
        // to the log early and again at the commit.
        let kib = if on {
            BULK_CACHE_KIB
        } else {
            crate::db::WRITER_CACHE_KIB
        };
        sqlx::query(&format!("PRAGMA cache_size = -{kib}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The customers' search indexes a large import builds once at its end instead of row by
/// row: the phone and bank-card blind indexes (exact search and the duplicate flags).
/// Each new row lands at a random place in both B-trees, so a large batch dirties about
/// every leaf and writes it to SQLite's log again at each commit; one `CREATE INDEX`
/// sorts instead (measured at a million rows: 27,291 rows/s with both kept, 36,086
/// without them, and 3.1 s to build both afterwards). The ID-number index stays: the
/// import looks rows up through it. SQLite only (a PostgreSQL `DROP INDEX` would lock out
/// every reader of the table until it commits). See ADR 0011.
pub const DEFERRABLE_INDEXES: [(&str, &str); 2] = [
    ("customers_phone_bidx_idx", "customers (phone_bidx)"),
    ("customers_bank_card_bidx_idx", "customers (bank_card_bidx)"),
];

/// An import of at least this many rows, into a table holding at most half as many,
/// builds the [`DEFERRABLE_INDEXES`] at its end (rebuilding then costs no more than
/// keeping them).
pub const DEFER_INDEXES_FROM_ROWS: i64 = 100_000;

/// Whether an import of `rows` rows into a table of `existing` customers defers the
/// search indexes (on SQLite), from `from_rows` rows (normally
/// [`DEFER_INDEXES_FROM_ROWS`]). Only when the table holds at most half as many rows as
/// the file, so most of the file is new customers: a file of the same size as the table
/// is mostly customers already there (a periodic re-import, corrections), whose
/// unchanged rows write nothing to the indexes; dropping them would make every phone and
/// card search a full scan while it runs, rebuild a million-row index for nothing, and
/// change the schema, which costs each reader connection a schema re-read and its whole
/// page cache on its next query (measured after re-importing a million customers: the
/// first exact-ID search took 6.5–9.1 ms with the indexes dropped and rebuilt).
pub fn defers_indexes(rows: i64, existing: i64, from_rows: i64) -> bool {
    rows >= from_rows && existing.saturating_mul(2) <= rows
}

/// Drops the [`DEFERRABLE_INDEXES`] (SQLite only; returns whether it did). Meanwhile
/// exact phone and card searches read the whole table: slower, still right.
/// [`search_indexes_restore`] puts them back; [`Store::migrate`] does too, so a crash in
/// between costs only the rebuild at the next start.
pub async fn search_indexes_defer(conn: &mut AnyConnection) -> Result<bool, StoreError> {
    if !anonymous(conn) {
        return Ok(false);
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for (name, _) in DEFERRABLE_INDEXES {
        sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Creates those of the [`DEFERRABLE_INDEXES`] that are missing, in one transaction (both
/// backends; nothing to do when they exist).
pub async fn search_indexes_restore(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for (name, on) in DEFERRABLE_INDEXES {
        sqlx::query(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Copies what it can of SQLite's log into the database file without waiting for
/// anyone (`wal_checkpoint(PASSIVE)`); from any connection. No-op on PostgreSQL.
pub async fn checkpoint_passive(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A new import job.
#[derive(Debug, Clone)]
pub struct NewImport<'a> {
    pub file_name: &'a str,
    /// `csv` or `xlsx`.
    pub file_format: &'a str,
    pub file_digest: &'a str,
    pub file_size: i64,
    pub dry_run: bool,
    pub strict: bool,
    /// `queued` (waiting for the worker) or `running` (the CLI runs it now).
    pub status: &'a str,
    pub requested_by: Option<i64>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    /// `cli:<host>:<pid>` or `worker`.
    pub runner: Option<&'a str>,
}

/// The counts of an import so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    /// Rows handled in file order; everything up to here is committed.
    pub processed: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
}

/// An import job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    pub id: i64,
    pub file_name: String,
    pub file_format: String,
    pub file_digest: String,
    pub file_size: i64,
    pub dry_run: bool,
    pub strict: bool,
    pub status: String,
    pub phase: String,
    pub total_rows: i64,
    pub counts: ImportCounts,
    pub requested_by: Option<i64>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub error: Option<String>,
    pub runner: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub heartbeat_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// One problem of a rejected row (the value masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub row_no: i64,
    pub field: String,
    pub code: String,
    pub message: String,
    pub value_masked: Option<String>,
}

const IMPORT_COLUMNS: &str = "id, file_name, file_format, file_digest, file_size, dry_run, strict, status, phase, \
    total_rows, processed_rows, inserted, updated, unchanged, rejected, requested_by, owner_user_id, org_unit_id, \
    error, runner, created_at_ms, started_at_ms, heartbeat_at_ms, finished_at_ms";

fn import_row(r: &AnyRow) -> Result<ImportJob, StoreError> {
    Ok(ImportJob {
        id: r.try_get("id")?,
        file_name: r.try_get("file_name")?,
        file_format: r.try_get("file_format")?,
        file_digest: r.try_get("file_digest")?,
        file_size: r.try_get("file_size")?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        strict: r.try_get::<i64, _>("strict")? != 0,
        status: r.try_get("status")?,
        phase: r.try_get("phase")?,
        total_rows: r.try_get("total_rows")?,
        counts: ImportCounts {
            processed: r.try_get("processed_rows")?,
            inserted: r.try_get("inserted")?,
            updated: r.try_get("updated")?,
            unchanged: r.try_get("unchanged")?,
            rejected: r.try_get("rejected")?,
        },
        requested_by: r.try_get("requested_by")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        error: r.try_get("error")?,
        runner: r.try_get("runner")?,
        created_at_ms: r.try_get("created_at_ms")?,
        started_at_ms: r.try_get("started_at_ms")?,
        heartbeat_at_ms: r.try_get("heartbeat_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
    })
}

/// Creates an import job; returns its id.
pub async fn import_insert(
    conn: &mut AnyConnection,
    job: &NewImport<'_>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customer_imports (file_name, file_format, file_digest, file_size, dry_run, strict, status,
            requested_by, owner_user_id, org_unit_id, created_at_ms, runner)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(job.file_name)
    .bind(job.file_format)
    .bind(job.file_digest)
    .bind(job.file_size)
    .bind(i64::from(job.dry_run))
    .bind(i64::from(job.strict))
    .bind(job.status)
    .bind(job.requested_by)
    .bind(job.owner_user_id)
    .bind(job.org_unit_id)
    .bind(now_ms)
    .bind(job.runner)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Marks an import running (keeping its first start time) in `phase`, with its size.
pub async fn import_start(
    conn: &mut AnyConnection,
    id: i64,
    phase: &str,
    total_rows: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customer_imports SET status = 'running', phase = $2, total_rows = $3,
            started_at_ms = COALESCE(started_at_ms, $4), heartbeat_at_ms = $4, error = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .bind(total_rows)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes over an interrupted import: `runner` now runs it.
pub async fn import_take_over(
    conn: &mut AnyConnection,
    id: i64,
    runner: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE customer_imports SET runner = $2, heartbeat_at_ms = $3 WHERE id = $1")
        .bind(id)
        .bind(runner)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the counts of an import (inside the batch's transaction).
pub async fn import_progress(
    conn: &mut AnyConnection,
    id: i64,
    phase: &str,
    c: &ImportCounts,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customer_imports SET phase = $2, processed_rows = $3, inserted = $4, updated = $5, unchanged = $6,
            rejected = $7, heartbeat_at_ms = $8
         WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .bind(c.processed)
    .bind(c.inserted)
    .bind(c.updated)
    .bind(c.unchanged)
    .bind(c.rejected)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends an import: `done`, `rejected` (strict mode found bad rows) or `failed`.
pub async fn import_finish(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
    error: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customer_imports SET status = $2, error = $3, finished_at_ms = $4, heartbeat_at_ms = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    // A dry run keeps its (encrypted) file until it is confirmed or discarded, so the
    // import wizard can import exactly the file that was checked.
    sqlx::query(
        "DELETE FROM customer_import_files WHERE import_id = $1
           AND import_id IN (SELECT id FROM customer_imports WHERE dry_run = 0)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Discards the kept file of a dry run (after it was confirmed as a new import).
pub async fn import_file_discard(conn: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_import_files WHERE import_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Forgets the counts and errors of an import (a strict import starting over).
pub async fn import_reset(conn: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_import_errors WHERE import_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    import_progress(conn, id, "validating", &ImportCounts::default(), 0).await
}

/// Appends row errors (multi-row INSERTs).
pub async fn import_errors_insert(
    conn: &mut AnyConnection,
    import_id: i64,
    errors: &[ImportError],
) -> Result<(), StoreError> {
    for chunk in errors.chunks(rows_per_statement(conn, 6)) {
        let mut sql = String::from(
            "INSERT INTO customer_import_errors (import_id, row_no, field, code, message, value_masked) VALUES ",
        );
        push_values(&mut sql, chunk.len(), 6, anonymous(conn));
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(import_id)
                .bind(e.row_no)
                .bind(e.field.as_str())
                .bind(e.code.as_str())
                .bind(e.message.as_str())
                .bind(e.value_masked.as_deref());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores the uploaded file of a queued import (already encrypted).
pub async fn import_file_put(
    conn: &mut AnyConnection,
    import_id: i64,
    content_enc: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO customer_import_files (import_id, content_enc) VALUES ($1, $2)")
        .bind(import_id)
        .bind(content_enc.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `($1, $2, …), (…)` for `rows` rows of `cols` values.
/// Whether a connection is SQLite: its multi-row statements use anonymous `?`
/// placeholders. SQLite looks a numbered parameter's name up by walking the statement's
/// list of named parameters, and sqlx asks for every parameter's name when binding, so
/// `$n` costs time quadratic in a statement's parameters; anonymous `?` have no names.
/// Every statement built here is purely positional, so both spellings bind alike.
fn anonymous(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("sqlite")
}

fn push_values(sql: &mut String, rows: usize, cols: usize, anonymous: bool) {
    use std::fmt::Write;
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if anonymous {
                sql.push('?');
            } else {
                let _ = write!(sql, "${n}");
            }
        }
        sql.push(')');
    }
}

/// `$k, $k+1, …` (`count` placeholders starting at `first`).
fn marks(first: usize, count: usize, anonymous: bool) -> String {
    (first..first + count)
        .map(|i| {
            if anonymous {
                "?".to_owned()
            } else {
                format!("${i}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Multi-row INSERT statements with their values bound, built away from the writer (the
/// import builds them beside the encryption, on the other core): copying a batch's
/// values into statement arguments took about 4.6 s of a million-row import, in series
/// with the writer, when it was done at write time. [`execute_prepared`] runs them.
pub struct PreparedInserts {
    statements: Vec<(String, AnyArguments<'static>)>,
}

impl PreparedInserts {
    /// How many statements.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

impl std::fmt::Debug for PreparedInserts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedInserts")
            .field("statements", &self.statements.len())
            .finish()
    }
}

fn arg<T>(args: &mut AnyArguments<'static>, v: T) -> Result<(), StoreError>
where
    T: 'static + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Arguments::add(args, v).map_err(|e| StoreError::Invalid(format!("binding a value: {e}")))
}

/// A text or blob value that moves into a statement's arguments.
///
/// sqlx's `Encode<Any>` for `String`, `Vec<u8>` and `Option<_>` implements only
/// `encode_by_ref`, so `Arguments::add` of an owned value clones it (and the original is
/// freed): for an import batch that was every string and ciphertext of 200,000 rows
/// copied once more, a third of the planner's memory copying (`perf record --call-graph
/// dwarf`). `Moved` hands the value itself to the argument buffer.
enum Moved {
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl From<String> for Moved {
    fn from(v: String) -> Self {
        Moved::Text(Some(v))
    }
}

impl From<Option<String>> for Moved {
    fn from(v: Option<String>) -> Self {
        Moved::Text(v)
    }
}

impl From<Vec<u8>> for Moved {
    fn from(v: Vec<u8>) -> Self {
        Moved::Blob(Some(v))
    }
}

impl From<Option<Vec<u8>>> for Moved {
    fn from(v: Option<Vec<u8>>) -> Self {
        Moved::Blob(v)
    }
}

impl sqlx::Type<sqlx::Any> for Moved {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        // Only the value's own kind (below) reaches the driver.
        <String as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for Moved {
    fn encode(
        self,
        buf: &mut sqlx_core::any::AnyArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        use sqlx::any::AnyTypeInfoKind as Kind;
        use sqlx_core::any::AnyValueKind as Value;
        use std::borrow::Cow;
        let (value, null) = match self {
            Moved::Text(Some(v)) => (Value::Text(Cow::Owned(v)), false),
            Moved::Text(None) => (Value::Null(Kind::Text), true),
            Moved::Blob(Some(v)) => (Value::Blob(Cow::Owned(v)), false),
            Moved::Blob(None) => (Value::Null(Kind::Blob), true),
        };
        buf.0.push(value);
        Ok(if null {
            sqlx::encode::IsNull::Yes
        } else {
            sqlx::encode::IsNull::No
        })
    }

    fn encode_by_ref(
        &self,
        buf: &mut sqlx_core::any::AnyArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        let copy = match self {
            Moved::Text(v) => Moved::Text(v.clone()),
            Moved::Blob(v) => Moved::Blob(v.clone()),
        };
        copy.encode(buf)
    }
}

/// [`arg`] for a string or blob, moved rather than copied (see [`Moved`]).
fn moved(args: &mut AnyArguments<'static>, v: impl Into<Moved>) -> Result<(), StoreError> {
    arg(args, v.into())
}

/// The head of a multi-row INSERT into `table`: on SQLite `INSERT OR FAIL`, which never
/// needs a statement journal. A multi-row INSERT whose
/// constraints may abort it makes SQLite copy every page it changes first, so that the
/// statement alone can be undone (measured: 7 % of an import's CPU). `OR FAIL` stops at
/// the failing row instead; the import then rolls the whole batch back, so nothing of
/// it stays either way. Used inside [`Writer::begin_alone`](crate::writer::Writer::begin_alone)
/// transactions, whose foreign keys the caller checked.
fn statement_head(backend: Backend, table: &str, columns: &str) -> String {
    let verb = if backend == Backend::Sqlite {
        "INSERT OR FAIL"
    } else {
        "INSERT"
    };
    format!("{verb} INTO {table} ({columns}) VALUES ")
}

/// Rows per statement of `cols` values for `backend` (see [`rows_per_statement`]):
/// anonymous placeholders on SQLite (no name walk), so large statements.
fn per_statement(backend: Backend, cols: usize) -> usize {
    let budget = if backend == Backend::Sqlite {
        2_000
    } else {
        8_000
    };
    (budget / cols).max(1)
}

/// The statements inserting new customers (no ids returned); see [`execute_prepared`].
pub fn customers_insert_prepare(
    backend: Backend,
    rows: Vec<CustomerValues>,
    now_ms: i64,
) -> Result<PreparedInserts, StoreError> {
    const COLS: usize = 21;
    let head = statement_head(
        backend,
        "customers",
        "ref, kind, name, id_kind, id_number_enc, id_number_bidx, phone_enc, phone_bidx,
            bank_card_enc, bank_card_bidx, email_enc, address_enc, monthly_income_enc, birth_date, gender, region_code,
            owner_user_id, org_unit_id, created_by, created_at_ms, updated_at_ms",
    );
    let per = per_statement(backend, COLS);
    let mut statements = Vec::with_capacity(rows.len().div_ceil(per));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<CustomerValues> = rows.by_ref().take(per).collect();
        let mut sql = head.clone();
        push_values(&mut sql, chunk.len(), COLS, backend == Backend::Sqlite);
        let mut a = AnyArguments::default();
        sqlx::Arguments::reserve(&mut a, chunk.len() * COLS, 0);
        // The values move into the arguments (a batch has up to 200,000 rows: copying
        // them would double the memory the planner touches).
        for v in chunk {
            moved(&mut a, v.ref_)?;
            moved(&mut a, v.kind)?;
            moved(&mut a, v.name)?;
            moved(&mut a, v.id_kind)?;
            moved(&mut a, v.id_number_enc)?;
            moved(&mut a, v.id_number_bidx)?;
            moved(&mut a, v.phone_enc)?;
            moved(&mut a, v.phone_bidx)?;
            moved(&mut a, v.bank_card_enc)?;
            moved(&mut a, v.bank_card_bidx)?;
            moved(&mut a, v.email_enc)?;
            moved(&mut a, v.address_enc)?;
            moved(&mut a, v.monthly_income_enc)?;
            moved(&mut a, v.birth_date)?;
            moved(&mut a, v.gender)?;
            moved(&mut a, v.region_code)?;
            arg(&mut a, v.owner_user_id)?;
            arg(&mut a, v.org_unit_id)?;
            arg(&mut a, v.created_by)?;
            arg(&mut a, now_ms)?;
            arg(&mut a, now_ms)?;
        }
        statements.push((sql, a));
    }
    Ok(PreparedInserts { statements })
}

/// The statements storing new subject data keys; see [`execute_prepared`].
pub fn data_keys_insert_prepare(
    backend: Backend,
    keys: Vec<(WrappedDek, String)>,
    now_ms: i64,
) -> Result<PreparedInserts, StoreError> {
    const COLS: usize = 6;
    let head = statement_head(
        backend,
        "data_keys",
        "id, subject, wrapped, master_key_id, algorithm, created_at_ms",
    );
    let per = per_statement(backend, COLS);
    let mut statements = Vec::with_capacity(keys.len().div_ceil(per));
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<(WrappedDek, String)> = keys.by_ref().take(per).collect();
        let mut sql = head.clone();
        push_values(&mut sql, chunk.len(), COLS, backend == Backend::Sqlite);
        let mut a = AnyArguments::default();
        sqlx::Arguments::reserve(&mut a, chunk.len() * COLS, 0);
        for (k, subject) in chunk {
            moved(&mut a, k.id)?;
            moved(&mut a, subject)?;
            moved(&mut a, k.wrapped)?;
            moved(&mut a, k.master_key_id)?;
            arg(&mut a, k.algorithm.as_str())?;
            arg(&mut a, now_ms)?;
        }
        statements.push((sql, a));
    }
    Ok(PreparedInserts { statements })
}

/// Runs prepared inserts, in order, inside the caller's transaction. On SQLite they are
/// `INSERT OR FAIL` (no statement journal): used inside
/// [`Writer::begin_alone`](crate::writer::Writer::begin_alone) transactions, whose
/// foreign keys the caller checked, and rolled back whole on an error.
pub async fn execute_prepared(
    conn: &mut AnyConnection,
    prepared: PreparedInserts,
) -> Result<(), StoreError> {
    for (sql, args) in prepared.statements {
        sqlx::query_with(&sql, args).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Of `bidx` (ID-number blind indexes of customers this transaction just inserted), those
/// that another customer (not erased) has too: someone created it between the import's
/// look-up and its write.
pub async fn id_bidx_repeated(
    conn: &mut AnyConnection,
    bidx: &[String],
) -> Result<Vec<String>, StoreError> {
    // The index alone answers the first question; erased customers are looked at only
    // for the (rare) values found twice.
    let twice = id_bidx_query(
        conn,
        bidx,
        "",
        "GROUP BY id_number_bidx HAVING COUNT(*) > 1",
    )
    .await?;
    if twice.is_empty() {
        return Ok(twice);
    }
    id_bidx_query(
        conn,
        &twice,
        "AND status <> 'erased'",
        "GROUP BY id_number_bidx HAVING COUNT(*) > 1",
    )
    .await
}

/// `SELECT id_number_bidx FROM customers WHERE id_number_bidx IN (…) {filter} {tail}`
/// over `bidx`, [`LOOKUP_PER_STATEMENT`] values at a time.
async fn id_bidx_query(
    conn: &mut AnyConnection,
    bidx: &[String],
    filter: &str,
    tail: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for chunk in bidx.chunks(LOOKUP_PER_STATEMENT) {
        let sql = format!(
            "SELECT id_number_bidx FROM customers WHERE id_number_bidx IN ({}) {filter} {tail}",
            marks(1, chunk.len(), anonymous(conn))
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for b in chunk {
            q = q.bind(b.as_str());
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Takes back a customer this transaction inserted, and its data key (key subject
/// `subject`): the import found the same ID number on a customer created meanwhile.
pub async fn customer_insert_undo(
    conn: &mut AnyConnection,
    ref_: &str,
    subject: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customers WHERE ref = $1")
        .bind(ref_)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM data_keys WHERE subject = $1")
        .bind(subject)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Customers (not erased) whose ID-number blind index is one of `bidx`.
pub async fn customers_by_id_bidx(
    conn: &mut AnyConnection,
    bidx: &[String],
) -> Result<Vec<CustomerRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in bidx.chunks(LOOKUP_PER_STATEMENT) {
        let sql = format!(
            "SELECT {COLUMNS} FROM customers WHERE id_number_bidx IN ({}) AND status <> 'erased'",
            marks(1, chunk.len(), anonymous(conn))
        );
        let mut q = sqlx::query(&sql);
        for b in chunk {
            q = q.bind(b.as_str());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(row(&r)?);
        }
    }
    Ok(out)
}

/// The data keys of `subjects` (those that have one).
pub async fn data_keys_of_subjects(
    conn: &mut AnyConnection,
    subjects: &[String],
) -> Result<Vec<(String, SubjectDek)>, StoreError> {
    let mut out = Vec::new();
    for chunk in subjects.chunks(LOOKUP_PER_STATEMENT) {
        let sql = format!(
            "SELECT id, subject, wrapped, master_key_id, algorithm, destroyed_at_ms FROM data_keys WHERE subject IN ({})",
            marks(1, chunk.len(), anonymous(conn))
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.as_str());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let subject: String = r.try_get("subject")?;
            let dek = match r.try_get::<Option<i64>, _>("destroyed_at_ms")? {
                Some(at) => SubjectDek::Destroyed {
                    id: r.try_get("id")?,
                    destroyed_at_ms: at,
                },
                None => {
                    let algorithm: String = r.try_get("algorithm")?;
                    SubjectDek::Ready(WrappedDek {
                        id: r.try_get("id")?,
                        wrapped: r.try_get("wrapped")?,
                        master_key_id: r.try_get("master_key_id")?,
                        algorithm: algorithm
                            .parse()
                            .map_err(|e| StoreError::Invalid(format!("data key algorithm: {e}")))?,
                    })
                }
            };
            out.push((subject, dek));
        }
    }
    Ok(out)
}

/// An export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub id: i64,
    pub requested_by: i64,
    pub file_format: String,
    pub row_count: i64,
    pub clear_fields: String,
    pub reason: String,
    pub status: String,
    pub decided_by: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
    pub downloaded_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

const EXPORT_COLUMNS: &str =
    "id, requested_by, file_format, row_count, clear_fields, reason, status, decided_by, \
    decided_at_ms, decision_note, downloaded_at_ms, created_at_ms";

fn export_row(r: &AnyRow) -> Result<ExportRequest, StoreError> {
    Ok(ExportRequest {
        id: r.try_get("id")?,
        requested_by: r.try_get("requested_by")?,
        file_format: r.try_get("file_format")?,
        row_count: r.try_get("row_count")?,
        clear_fields: r.try_get("clear_fields")?,
        reason: r.try_get("reason")?,
        status: r.try_get("status")?,
        decided_by: r.try_get("decided_by")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        decision_note: r.try_get("decision_note")?,
        downloaded_at_ms: r.try_get("downloaded_at_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// Records an export request waiting for approval; returns its id.
pub async fn export_request_insert(
    conn: &mut AnyConnection,
    requested_by: i64,
    file_format: &str,
    row_count: i64,
    clear_fields: &str,
    reason: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO customer_exports (requested_by, file_format, row_count, clear_fields, reason, status, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING id",
    )
    .bind(requested_by)
    .bind(file_format)
    .bind(row_count)
    .bind(clear_fields)
    .bind(reason)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// Approves or rejects a pending request, never by its requester. False when the
/// request is not pending or the approver is the requester.
pub async fn export_request_decide(
    conn: &mut AnyConnection,
    id: i64,
    approver: i64,
    approve: bool,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customer_exports SET status = $3, decided_by = $2, decided_at_ms = $4, decision_note = $5
         WHERE id = $1 AND status = 'pending' AND requested_by <> $2",
    )
    .bind(id)
    .bind(approver)
    .bind(if approve { "approved" } else { "rejected" })
    .bind(now_ms)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Uses up an approved request (one download). False when it is not approved or was
/// already downloaded, or belongs to someone else.
pub async fn export_request_consume(
    conn: &mut AnyConnection,
    id: i64,
    requester: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE customer_exports SET status = 'downloaded', downloaded_at_ms = $3
         WHERE id = $1 AND status = 'approved' AND requested_by = $2",
    )
    .bind(id)
    .bind(requester)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    pub async fn import_get(&self, id: i64) -> Result<Option<ImportJob>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM customer_imports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(import_row).transpose()
    }

    /// The newest imports, of one requester or (with `None`) everyone's.
    pub async fn import_list(
        &self,
        requested_by: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ImportJob>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM customer_imports WHERE ($1 < 0 OR requested_by = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(requested_by.unwrap_or(-1))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(import_row).collect()
    }

    /// The newest import of this file with these options for this owner that is still
    /// marked running (crashed, or running right now: the caller tells by its runner
    /// and heartbeat).
    pub async fn import_interrupted(
        &self,
        file_digest: &str,
        owner_user_id: i64,
        dry_run: bool,
        strict: bool,
    ) -> Result<Option<ImportJob>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM customer_imports
             WHERE file_digest = $1 AND owner_user_id = $2 AND dry_run = $3 AND strict = $4
               AND status = 'running'
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(file_digest)
        .bind(owner_user_id)
        .bind(i64::from(dry_run))
        .bind(i64::from(strict))
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(import_row).transpose()
    }

    /// Row errors of an import in file order (at most `limit`).
    pub async fn import_errors(
        &self,
        import_id: i64,
        limit: i64,
    ) -> Result<Vec<ImportError>, StoreError> {
        let rows = sqlx::query(
            "SELECT row_no, field, code, message, value_masked FROM customer_import_errors
             WHERE import_id = $1 ORDER BY row_no, id LIMIT $2",
        )
        .bind(import_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ImportError {
                    row_no: r.try_get("row_no")?,
                    field: r.try_get("field")?,
                    code: r.try_get("code")?,
                    message: r.try_get("message")?,
                    value_masked: r.try_get("value_masked")?,
                })
            })
            .collect()
    }

    /// The encrypted uploaded file of an import, while it exists.
    pub async fn import_file(&self, import_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT content_enc FROM customer_import_files WHERE import_id = $1",
            )
            .bind(import_id)
            .fetch_optional(self.reader())
            .await?,
        )
    }

    /// Up to `limit` customers in scope with an id above `after_id`, in id order (an
    /// export's pages).
    pub async fn customers_scan(
        &self,
        scope: &ScopeFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<CustomerRow>, StoreError> {
        let mut cond = String::from(" WHERE status <> 'erased'");
        let mut binds: Vec<Bind<'_>> = Vec::new();
        scope_sql(scope, &mut cond, &mut binds);
        binds.push(Bind::I64(after_id));
        cond.push_str(&format!(" AND id > ${}", binds.len()));
        binds.push(Bind::I64(limit));
        let sql = format!(
            "SELECT {COLUMNS} FROM customers{cond} ORDER BY id LIMIT ${}",
            binds.len()
        );
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(row).collect()
    }

    /// How many customers (not erased) are in scope.
    pub async fn customers_in_scope(&self, scope: &ScopeFilter) -> Result<i64, StoreError> {
        let mut cond = String::from(" WHERE status <> 'erased'");
        let mut binds: Vec<Bind<'_>> = Vec::new();
        scope_sql(scope, &mut cond, &mut binds);
        let sql = format!("SELECT COUNT(*) FROM customers{cond}");
        Ok(bind_all(sqlx::query(&sql), &binds)
            .fetch_one(self.reader())
            .await?
            .try_get(0)?)
    }

    pub async fn export_request(&self, id: i64) -> Result<Option<ExportRequest>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {EXPORT_COLUMNS} FROM customer_exports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(export_row).transpose()
    }

    /// The newest export requests (of one requester, or everyone's with `None`).
    pub async fn export_requests(
        &self,
        requested_by: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ExportRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EXPORT_COLUMNS} FROM customer_exports WHERE ($1 < 0 OR requested_by = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(requested_by.unwrap_or(-1))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(export_row).collect()
    }
}
