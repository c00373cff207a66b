//! The import engine: a three-stage pipeline.
//!
//! 1. **Read and validate** (a blocking thread; validation in parallel on the import's
//!    threads, one fewer than the cores: [`import_threads`]): rows
//!    in batches, each checked by [`CustomerInput::validate`] (exactly the API's rules)
//!    and given the blind index of its ID number.
//! 2. **Plan and encrypt** (async look-ups, crypto in parallel on the same threads): repeated ID
//!    numbers inside the file are rejected; the ID numbers are looked up through the
//!    blind index; a new customer gets a fresh data key made in memory and its fields
//!    encrypted; an existing one is decrypted and compared (no change → `unchanged`),
//!    then re-encrypted under its own key if anything changed. Empty cells never erase
//!    a stored value.
//! 3. **Write** (the single writer): per batch one transaction holding the data keys,
//!    the customers (multi-row INSERTs), the updates (optimistic, by version), the row
//!    errors, the job's counts and resume point, and an audit record. A crash leaves
//!    whole batches only; a re-run resumes after the last one.
//!
//! Stages overlap: batch *n + 1* is encrypted while batch *n* is written.
//!
//! Strict mode validates the whole file first (a dry run); only a file without a bad row
//! is then written, in **one** transaction, so a row refused at write time (a concurrent
//! change) still leaves nothing imported.

use super::read::{RawRow, Table};
use super::report::masked_value;
use crate::customers::{index_kind, subject};
use crate::vault::{FieldAad, Vault, VaultError};
use chrono::NaiveDate;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use zhudai_crypto::blind_index::FieldKind;
use zhudai_crypto::envelope::{Dek, WrappedDek};
use zhudai_domain::clock::Clock;
use zhudai_domain::customer::{FieldProblem, ValidCustomer};
use zhudai_domain::ident::Gender;
use zhudai_store::audit::AuditDraft;
use zhudai_store::customers::{
    customer_update, CustomerRow, CustomerValues, IndexedField, ScopeFilter,
};
use zhudai_store::imports::{self as db, ImportCounts, ImportError};
use zhudai_store::keys::SubjectDek;
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::{Store, StoreError};

/// Rows per batch (one transaction each in lenient mode). A batch of random blind
/// indexes dirties most leaves of their B-trees, so a larger batch writes each leaf to
/// SQLite's log fewer times per row (measured at 200,000 rows: 5,000 → 25,000 rows per
/// batch, 25,419 → 35,059 rows/s). The writer is held for about half a second per
/// batch; the first batches are smaller (see `pass`).
pub const DEFAULT_BATCH_ROWS: usize = 25_000;
/// At most this many times `batch_rows` in one batch (200,000 rows by default: about
/// a gigabyte of validated, encrypted rows in memory and a few seconds of the writer).
pub const MAX_BATCH_GROWTH: usize = 8;

/// Rows in the next batch once the table holds `table_rows`: a quarter of the table,
/// rounded down to a multiple of `batch_rows`, between `batch_rows` and
/// [`MAX_BATCH_GROWTH`] times it. A batch dirties about every leaf of each random
/// blind-index B-tree, however few rows it has, once the table is large; a batch that
/// grows with the table writes each leaf to SQLite's log a bounded number of times per
/// row instead of once per batch (ADR 0011).
pub fn grown_batch(batch_rows: usize, table_rows: usize) -> usize {
    let b = batch_rows.max(1);
    ((table_rows / 4) / b * b).clamp(b, b.saturating_mul(MAX_BATCH_GROWTH))
}

/// A PASSIVE checkpoint of SQLite's log from a reader connection, beside the writer;
/// a failure is only logged (the next one, or SQLite's own, catches up).
async fn checkpoint_on_reader(store: &Store) {
    let done = match store.reader().acquire().await {
        Ok(mut conn) => db::checkpoint_passive(&mut conn).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, "checkpoint during or after an import");
    }
}

/// Threads validating and encrypting an import's rows: one fewer than the machine's
/// cores (at least one), leaving a core to the database's single writer. With rayon's
/// global pool (a thread per core) the writer shared its core with a validating or
/// encrypting thread while it wrote a batch, and the writer is what an import waits for
/// (measured at a million rows on 2 cores, `RAYON_NUM_THREADS=1` against the default,
/// alternated: 48,566 and 53,528 against 46,163 and 42,625 rows/s; docs/benchmarks.md,
/// session 12).
pub fn import_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// The thread pool of one import run ([`import_threads`]).
fn import_pool() -> Result<Arc<rayon::ThreadPool>, ImportFailure> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(import_threads(cores))
        .thread_name(|i| format!("zhudai-import-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| ImportFailure::Internal(format!("starting the import's threads: {e}")))
}

/// A running import not heard of for this long is taken as crashed and may be resumed.
pub const STALE_AFTER_MS: i64 = 120_000;

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub strict: bool,
    /// Owner and org unit of the customers created.
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub requested_by: Option<i64>,
    /// Existing customers outside this scope are not touched (the row is rejected).
    pub scope: ScopeFilter,
    /// For the audit trail.
    pub actor: String,
    pub roles: String,
    /// The date ID numbers are checked against (no birth in the future).
    pub today: NaiveDate,
    pub batch_rows: usize,
    /// From how many rows an import into a table at most half its size builds the
    /// phone and card search indexes at its end (SQLite; normally
    /// [`db::DEFER_INDEXES_FROM_ROWS`]).
    pub defer_indexes_from_rows: i64,
}

/// How an import ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `done`, `rejected` (strict mode: bad rows, nothing written) or `failed`.
    pub status: &'static str,
    pub total_rows: i64,
    pub counts: ImportCounts,
    /// Every problem found by this run (resumed runs: only those after the resume point).
    pub errors: Vec<ImportError>,
    pub error: Option<String>,
    /// Rows skipped because an earlier run had committed them.
    pub resumed_after: i64,
}

/// Told after every committed batch: phase, counts, total rows (and once with phase
/// `indexing` before a large import builds its search indexes).
pub type ProgressFn = Arc<dyn Fn(&str, &ImportCounts, i64) + Send + Sync>;

/// What stops an import (as opposed to a bad row).
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("encryption: {0}")]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Internal(String),
}

impl From<zhudai_store::sqlx::Error> for ImportFailure {
    fn from(e: zhudai_store::sqlx::Error) -> Self {
        ImportFailure::Store(e.into())
    }
}

// ---------------------------------------------------------------------------------------
// Stage 1: validation

struct Checked {
    row: RawRow,
    /// The validated customer and the blind index of its ID number.
    result: Result<(ValidCustomer, String), Vec<FieldProblem>>,
}

struct CheckedBatch {
    /// Rows of the file handled up to and including this batch.
    through: i64,
    /// Rows of this batch an earlier run already committed (first `skip` rows).
    skip: usize,
    rows: Vec<Checked>,
}

fn check(vault: &Vault, today: NaiveDate, row: RawRow) -> Checked {
    let result = row.input.validate(today).map(|c| {
        let bidx = vault.blind_index(
            index_kind(IndexedField::IdNumber, Some(c.id_kind)),
            &c.id_number,
        );
        (c, bidx)
    });
    Checked { row, result }
}

// ---------------------------------------------------------------------------------------
// Stage 2: plans

/// The clear values an import compares and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Plain {
    name: String,
    phone: Option<String>,
    bank_card: Option<String>,
    email: Option<String>,
    address: Option<String>,
    monthly_income: Option<String>,
}

impl Plain {
    fn of(c: &ValidCustomer) -> Plain {
        Plain {
            name: c.name.clone(),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            bank_card: c.bank_card.as_ref().map(|b| b.as_str().to_owned()),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            address: c.address.clone(),
            monthly_income: c.monthly_income.map(|i| i.to_string()),
        }
    }

    /// `self` with the fields it lacks taken from `stored` (empty cells never erase).
    fn over(self, stored: &Plain) -> Plain {
        Plain {
            name: self.name,
            phone: self.phone.or_else(|| stored.phone.clone()),
            bank_card: self.bank_card.or_else(|| stored.bank_card.clone()),
            email: self.email.or_else(|| stored.email.clone()),
            address: self.address.or_else(|| stored.address.clone()),
            monthly_income: self
                .monthly_income
                .or_else(|| stored.monthly_income.clone()),
        }
    }
}

fn aad<'a>(column: &'a str, ref_: &'a str) -> FieldAad<'a> {
    FieldAad::new("customers", column, ref_)
}

/// Encrypts a customer's values under its key: the same columns, places (AAD), subject
/// and value spellings as [`crate::customers::encrypt`], so the API reads them alike.
fn seal(
    vault: &Vault,
    dek: &Dek,
    ref_: &str,
    c: &ValidCustomer,
    p: &Plain,
) -> Result<CustomerValues, VaultError> {
    let enc = |column: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, VaultError> {
        v.as_deref()
            .map(|v| vault.encrypt_with(dek, &aad(column, ref_), v))
            .transpose()
    };
    Ok(CustomerValues {
        ref_: ref_.to_owned(),
        kind: c.kind.as_str().to_owned(),
        name: p.name.clone(),
        id_kind: c.id_kind.as_str().to_owned(),
        id_number_enc: Some(vault.encrypt_with(dek, &aad("id_number_enc", ref_), &c.id_number)?),
        id_number_bidx: Some(vault.blind_index(
            index_kind(IndexedField::IdNumber, Some(c.id_kind)),
            &c.id_number,
        )),
        phone_enc: enc("phone_enc", &p.phone)?,
        phone_bidx: p
            .phone
            .as_deref()
            .map(|v| vault.blind_index(FieldKind::Phone, v)),
        bank_card_enc: enc("bank_card_enc", &p.bank_card)?,
        bank_card_bidx: p
            .bank_card
            .as_deref()
            .map(|v| vault.blind_index(FieldKind::BankCard, v)),
        email_enc: enc("email_enc", &p.email)?,
        address_enc: enc("address_enc", &p.address)?,
        monthly_income_enc: enc("monthly_income_enc", &p.monthly_income)?,
        birth_date: c.birth_date.map(|d| d.to_string()),
        gender: c.gender.map(|g| match g {
            Gender::Male => "male".to_owned(),
            Gender::Female => "female".to_owned(),
        }),
        region_code: c.region_code.clone(),
        ..Default::default()
    })
}

/// The stored clear values of a row, decrypted with its key.
fn unseal(vault: &Vault, dek: &Dek, row: &CustomerRow) -> Result<Plain, VaultError> {
    let dec = |column: &str, ct: &Option<Vec<u8>>| -> Result<Option<String>, VaultError> {
        ct.as_deref()
            .map(|ct| {
                vault
                    .decrypt_with(dek, &aad(column, &row.ref_), ct)
                    .map(|v| v.to_string())
            })
            .transpose()
    };
    Ok(Plain {
        name: row.name.clone(),
        phone: dec("phone_enc", &row.phone_enc)?,
        bank_card: dec("bank_card_enc", &row.bank_card_enc)?,
        email: dec("email_enc", &row.email_enc)?,
        address: dec("address_enc", &row.address_enc)?,
        monthly_income: dec("monthly_income_enc", &row.monthly_income_enc)?,
    })
}

/// A new customer's values and its data key (wrapped), to insert together. Boxed, like
/// an update's values, so that a [`Plan`] stays a few words: a batch holds up to
/// 200,000 of them, and collecting them copies each.
type NewCustomer = Box<(CustomerValues, WrappedDek)>;

enum Plan {
    /// Already committed by an earlier run.
    Skip,
    Reject(Vec<ImportError>),
    /// A new customer: its values and data key (`None` in a dry run, and once they are
    /// in the batch's prepared statements), and its reference (`None` in a dry run).
    Insert {
        row_no: i64,
        bidx: String,
        ref_: Option<String>,
        new: Option<NewCustomer>,
    },
    /// An existing customer that changes (values `None` in a dry run).
    Update {
        row_no: i64,
        id: i64,
        version: i64,
        values: Option<Box<CustomerValues>>,
    },
    Unchanged,
}

struct PlannedBatch {
    through: i64,
    plans: Vec<Plan>,
    /// The new customers' and their data keys' INSERT statements, built here beside
    /// the encryption rather than on the writer's path (`None` in a dry run).
    prepared: Option<(db::PreparedInserts, db::PreparedInserts)>,
}

fn problems_of(row: &RawRow, problems: &[FieldProblem]) -> Vec<ImportError> {
    problems
        .iter()
        .map(|p| ImportError {
            row_no: row.row_no,
            field: p.field.to_owned(),
            code: p.code.to_owned(),
            message: p.message.clone(),
            value_masked: masked_value(p.field, row.value(p.field)),
        })
        .collect()
}

fn row_problem(row: &RawRow, field: &'static str, code: &'static str, message: String) -> Plan {
    Plan::Reject(problems_of(row, &[FieldProblem::new(field, code, message)]))
}

/// What each row of the batch will do, with its encrypted values.
struct Planner {
    vault: Vault,
    /// Where the rows are encrypted ([`import_pool`]).
    pool: Arc<rayon::ThreadPool>,
    store: Store,
    /// The new customers' creation time is read when their statements are built.
    clock: Arc<dyn Clock>,
    dry_run: bool,
    scope: ScopeFilter,
    owner: i64,
    unit: Option<i64>,
    created_by: Option<i64>,
    /// Blind index (as a number) → row number where the file first had it.
    seen: HashMap<u128, i64>,
}

impl Planner {
    async fn plan(&mut self, batch: CheckedBatch) -> Result<PlannedBatch, ImportFailure> {
        let started = std::time::Instant::now();
        // Repeats inside the file (also across batches, and over rows an earlier run
        // committed, so a resumed run decides exactly as an uninterrupted one).
        let mut firsts: Vec<Option<i64>> = Vec::with_capacity(batch.rows.len());
        for c in &batch.rows {
            firsts.push(match &c.result {
                Ok((_, bidx)) => {
                    let key = u128::from_str_radix(bidx, 16).unwrap_or_default();
                    match self.seen.get(&key) {
                        Some(first) => Some(*first),
                        None => {
                            self.seen.insert(key, c.row.row_no);
                            None
                        }
                    }
                }
                Err(_) => None,
            });
        }
        // Existing customers with these ID numbers, and their keys.
        let wanted: Vec<String> = batch
            .rows
            .iter()
            .enumerate()
            .skip(batch.skip)
            .filter(|(i, _)| firsts[*i].is_none())
            .filter_map(|(_, c)| c.result.as_ref().ok().map(|(_, b)| b.clone()))
            .collect();
        let mut existing: HashMap<String, Vec<CustomerRow>> = HashMap::new();
        let mut keys: HashMap<String, SubjectDek> = HashMap::new();
        if !wanted.is_empty() {
            let mut conn = self.store.reader().acquire().await?;
            for row in db::customers_by_id_bidx(&mut conn, &wanted).await? {
                if let Some(b) = row.id_number_bidx.clone() {
                    existing.entry(b).or_default().push(row);
                }
            }
            if !existing.is_empty() {
                let subjects: Vec<String> = existing
                    .values()
                    .flatten()
                    .map(|r| subject(&r.ref_))
                    .collect();
                keys = db::data_keys_of_subjects(&mut conn, &subjects)
                    .await?
                    .into_iter()
                    .collect();
            }
        }
        let looked_up = started.elapsed();
        if !self.dry_run {
            self.vault.refresh_master_keys()?;
        }
        let vault = self.vault.clone();
        let (dry_run, scope, owner, unit, created_by) = (
            self.dry_run,
            self.scope.clone(),
            self.owner,
            self.unit,
            self.created_by,
        );
        let through = batch.through;
        let skip = batch.skip;
        let (backend, now_ms) = (self.store.backend(), self.clock.now().timestamp_millis());
        let pool = self.pool.clone();
        let (plans, prepared) = tokio::task::spawn_blocking(move || {
            // Collected straight into one vector of the batch's length (an indexed
            // collect), then unwrapped in place: no list of pieces copied together.
            let mut results: Vec<Result<Plan, ImportFailure>> = Vec::new();
            pool.install(|| {
                batch
                    .rows
                    .into_par_iter()
                    .zip(firsts.into_par_iter())
                    .enumerate()
                    .map(|(i, (c, first))| {
                        if i < skip {
                            return Ok(Plan::Skip);
                        }
                        let (valid, bidx) = match c.result {
                            Err(problems) => {
                                return Ok(Plan::Reject(problems_of(&c.row, &problems)))
                            }
                            Ok(v) => v,
                        };
                        if let Some(first) = first {
                            return Ok(row_problem(
                                &c.row,
                                "id_number",
                                "duplicate_in_file",
                                format!(
                                    "the same ID number is already on row {first} of this file"
                                ),
                            ));
                        }
                        let plain = Plain::of(&valid);
                        match existing.get(&bidx).map(Vec::as_slice) {
                            None | Some([]) => {
                                if dry_run {
                                    return Ok(Plan::Insert {
                                        row_no: c.row.row_no,
                                        bidx,
                                        ref_: None,
                                        new: None,
                                    });
                                }
                                let ref_ = uuid::Uuid::now_v7().to_string();
                                let key_id = uuid::Uuid::now_v7().simple().to_string();
                                let (dek, wrapped) = vault.new_subject_key(&key_id)?;
                                let mut values = seal(&vault, &dek, &ref_, &valid, &plain)?;
                                values.owner_user_id = owner;
                                values.org_unit_id = unit;
                                values.created_by = created_by;
                                Ok(Plan::Insert {
                                    row_no: c.row.row_no,
                                    bidx,
                                    ref_: Some(ref_),
                                    new: Some(Box::new((values, wrapped))),
                                })
                            }
                            Some([stored]) => {
                                if !scope.admits(stored.owner_user_id, stored.org_unit_id) {
                                    return Ok(row_problem(
                                    &c.row,
                                    "id_number",
                                    "outside_scope",
                                    "a customer with this ID number exists outside your data scope"
                                        .into(),
                                ));
                                }
                                let subj = subject(&stored.ref_);
                                let dek = match keys
                                    .get(&subj)
                                    .map(|k| vault.open_subject_key(&subj, k))
                                {
                                    Some(Ok(dek)) => dek,
                                    Some(Err(VaultError::Shredded { .. })) => {
                                        return Ok(row_problem(
                                            &c.row,
                                            "id_number",
                                            "erased",
                                            "the customer with this ID number was erased".into(),
                                        ))
                                    }
                                    Some(Err(e)) => return Err(ImportFailure::Vault(e)),
                                    None => {
                                        return Err(ImportFailure::Internal(format!(
                                            "customer {} has no data key",
                                            stored.id
                                        )))
                                    }
                                };
                                let before = unseal(&vault, &dek, stored)?;
                                let after = plain.over(&before);
                                if after == before {
                                    return Ok(Plan::Unchanged);
                                }
                                let values = if dry_run {
                                    None
                                } else {
                                    Some(Box::new(seal(
                                        &vault,
                                        &dek,
                                        &stored.ref_,
                                        &valid,
                                        &after,
                                    )?))
                                };
                                Ok(Plan::Update {
                                    row_no: c.row.row_no,
                                    id: stored.id,
                                    version: stored.version,
                                    values,
                                })
                            }
                            Some(_) => Ok(row_problem(
                                &c.row,
                                "id_number",
                                "ambiguous",
                                "several customers have this ID number".into(),
                            )),
                        }
                    })
                    .collect_into_vec(&mut results)
            });
            let mut plans = results
                .into_iter()
                .collect::<Result<Vec<Plan>, ImportFailure>>()?;
            if dry_run {
                return Ok((plans, None));
            }
            // The statements, on this thread: the values move out of the plans and into
            // the statements' arguments.
            let new_rows = plans
                .iter()
                .filter(|p| matches!(p, Plan::Insert { new: Some(_), .. }))
                .count();
            let mut rows = Vec::with_capacity(new_rows);
            let mut keys = Vec::with_capacity(new_rows);
            for p in &mut plans {
                if let Plan::Insert { new, .. } = p {
                    if let Some(boxed) = new.take() {
                        let (values, key) = *boxed;
                        keys.push((key, subject(&values.ref_)));
                        rows.push(values);
                    }
                }
            }
            let prepared = (
                db::data_keys_insert_prepare(backend, keys, now_ms)?,
                db::customers_insert_prepare(backend, rows, now_ms)?,
            );
            Ok::<_, ImportFailure>((plans, Some(prepared)))
        })
        .await
        .map_err(|e| ImportFailure::Internal(format!("encryption task: {e}")))??;
        tracing::debug!(
            through,
            lookup_ms = looked_up.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "import batch planned"
        );
        Ok(PlannedBatch {
            through,
            plans,
            prepared,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Stage 3: writing

struct Written {
    counts: ImportCounts,
    errors: Vec<ImportError>,
}

/// Writes one planned batch inside `tx`. Returns the batch's counts and errors; rows
/// refused at write time (a concurrent change) are among the errors.
#[allow(clippy::too_many_arguments)]
async fn write_batch(
    conn: &mut AnyConnection,
    import_id: i64,
    batch: PlannedBatch,
    dry_run: bool,
    now_ms: i64,
    actor: &str,
    roles: &str,
) -> Result<Written, ImportFailure> {
    let mut c = ImportCounts::default();
    let mut errors = Vec::new();
    let mut inserts: Vec<(i64, String, Option<String>)> = Vec::new();
    let mut updates = Vec::new();
    for p in batch.plans {
        match p {
            Plan::Skip => {}
            Plan::Reject(e) => {
                c.rejected += 1;
                errors.extend(e);
            }
            Plan::Unchanged => c.unchanged += 1,
            Plan::Insert {
                row_no, bidx, ref_, ..
            } => inserts.push((row_no, bidx, ref_)),
            Plan::Update {
                row_no,
                id,
                version,
                values,
            } => updates.push((row_no, id, version, values)),
        }
    }
    let mut digest = Sha256::new();
    if dry_run {
        c.inserted += inserts.len() as i64;
    } else if !inserts.is_empty() {
        let (Some((keys, customers)), true) =
            (batch.prepared, inserts.iter().all(|(_, _, r)| r.is_some()))
        else {
            return Err(ImportFailure::Internal(
                "a planned batch came without its statements".into(),
            ));
        };
        db::execute_prepared(&mut *conn, keys).await?;
        db::execute_prepared(&mut *conn, customers).await?;
        // Someone may have created a customer with one of these ID numbers since the
        // batch was planned: that row is taken back and reported (checked after the
        // inserts, against the index alone, so the values could be bound beforehand).
        let bidx: Vec<String> = inserts.iter().map(|(_, b, _)| b.clone()).collect();
        let twice: std::collections::HashSet<String> = db::id_bidx_repeated(&mut *conn, &bidx)
            .await?
            .into_iter()
            .collect();
        for (row_no, bidx, ref_) in inserts {
            let ref_ = ref_.unwrap_or_default();
            if twice.contains(&bidx) {
                db::customer_insert_undo(&mut *conn, &ref_, &subject(&ref_)).await?;
                c.rejected += 1;
                errors.push(changed(row_no));
                continue;
            }
            digest.update(ref_.as_bytes());
            c.inserted += 1;
        }
    }
    for (row_no, id, version, values) in updates {
        match values {
            None => c.updated += 1,
            Some(v) => {
                if customer_update(&mut *conn, id, version, &v, now_ms).await? {
                    digest.update(v.ref_.as_bytes());
                    c.updated += 1;
                } else {
                    c.rejected += 1;
                    errors.push(changed(row_no));
                }
            }
        }
    }
    errors.sort_by_key(|e| e.row_no);
    db::import_errors_insert(&mut *conn, import_id, &errors).await?;
    if !dry_run && c.inserted + c.updated > 0 {
        let draft = AuditDraft::new(now_ms, "customer.import", "success")
            .actor(actor.to_owned())
            .role(roles.to_owned())
            .target(format!("customer_import:{import_id}"))
            .reason(format!(
                "rows through {}: {} inserted, {} updated",
                batch.through, c.inserted, c.updated
            ))
            .change_digest(hex::encode(digest.finalize()));
        zhudai_store::audit::append(&mut *conn, &draft).await?;
    }
    Ok(Written { counts: c, errors })
}

fn changed(row_no: i64) -> ImportError {
    ImportError {
        row_no,
        field: "id_number".into(),
        code: "changed_during_import".into(),
        message: "this customer was created or changed by someone else during the import; import the file again".into(),
        value_masked: None,
    }
}

fn add(total: &mut ImportCounts, c: &ImportCounts) {
    total.inserted += c.inserted;
    total.updated += c.updated;
    total.unchanged += c.unchanged;
    total.rejected += c.rejected;
}

// ---------------------------------------------------------------------------------------
// The pipeline

/// The context an import runs in.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

enum Mode {
    /// One transaction per batch.
    Batches,
    /// Validate only.
    DryRun,
    /// Everything in one transaction.
    Single,
}

impl Engine {
    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Runs import `import_id` (its job row must exist) over `table`. Resumes after the
    /// rows an interrupted run of the same job committed.
    pub async fn run(
        &self,
        import_id: i64,
        table: Table,
        opts: &ImportOptions,
        progress: ProgressFn,
    ) -> Result<Outcome, ImportFailure> {
        let job =
            self.store.import_get(import_id).await?.ok_or_else(|| {
                ImportFailure::Internal(format!("import {import_id} does not exist"))
            })?;
        let table = Arc::new(table);
        let total = {
            let t = table.clone();
            tokio::task::spawn_blocking(move || t.rows().count() as i64)
                .await
                .map_err(|e| ImportFailure::Internal(e.to_string()))?
        };
        if !opts.dry_run {
            self.check_references(opts).await?;
        }
        let bulk = !opts.dry_run && self.store.backend() == zhudai_store::Backend::Sqlite;
        let checkpointer = if bulk {
            let mut conn = self.store.writer().acquire().await?;
            db::sqlite_bulk(&mut conn, true).await?;
            drop(conn);
            let store = self.store.clone();
            Some(tokio::spawn(async move {
                let every = std::time::Duration::from_millis(db::IMPORT_CHECKPOINT_EVERY_MS);
                loop {
                    tokio::time::sleep(every).await;
                    checkpoint_on_reader(&store).await;
                }
            }))
        } else {
            None
        };
        // A large import into a small table builds the phone and card search indexes
        // once at its end (ADR 0011).
        let deferred = if bulk
            && db::defers_indexes(
                total,
                self.store.customer_count().await?,
                opts.defer_indexes_from_rows,
            ) {
            let mut conn = self.store.writer().acquire().await?;
            db::search_indexes_defer(&mut conn).await?
        } else {
            false
        };
        let result = self
            .run_passes(import_id, table, total, opts, progress.clone(), &job)
            .await;
        // Back to the normal settings whatever happened (a failure to build the indexes
        // is reported after the rest is undone; the next start builds them).
        let restored = if deferred {
            if let Ok(o) = &result {
                progress("indexing", &o.counts, total);
            }
            let started = std::time::Instant::now();
            let built = match self.store.writer().acquire().await {
                Ok(mut conn) => db::search_indexes_restore(&mut conn).await,
                Err(e) => Err(e),
            };
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                ok = built.is_ok(),
                "import search indexes built"
            );
            built
        } else {
            Ok(())
        };
        if let Some(task) = checkpointer {
            task.abort();
            // What the import left in the log is copied into the database file here, on
            // a reader's thread; otherwise the next write's automatic checkpoint would do
            // it on the writer's (measured: the job's closing UPDATE took 1.2 s after a
            // million rows).
            checkpoint_on_reader(&self.store).await;
        }
        let mut conn = self.store.writer().acquire().await?;
        if bulk {
            db::sqlite_bulk(&mut conn, false).await?;
        }
        let result = result?;
        restored?;
        db::import_finish(
            &mut conn,
            import_id,
            result.status,
            result.error.as_deref(),
            self.now_ms(),
        )
        .await?;
        Ok(result)
    }

    /// The users and unit every new customer will refer to exist: the batches are
    /// written with SQLite's foreign-key checks off (see `Writer::begin_alone`).
    async fn check_references(&self, opts: &ImportOptions) -> Result<(), ImportFailure> {
        for (what, id) in [
            ("owner", Some(opts.owner_user_id)),
            ("requesting user", opts.requested_by),
        ] {
            if let Some(id) = id {
                if self.store.user_by_id(id).await?.is_none() {
                    return Err(ImportFailure::Internal(format!(
                        "the {what} (user {id}) does not exist"
                    )));
                }
            }
        }
        if let Some(unit) = opts.org_unit_id {
            if !self.store.org_units().await?.iter().any(|u| u.id == unit) {
                return Err(ImportFailure::Internal(format!(
                    "the organisation unit {unit} does not exist"
                )));
            }
        }
        Ok(())
    }

    async fn run_passes(
        &self,
        import_id: i64,
        table: Arc<Table>,
        total: i64,
        opts: &ImportOptions,
        progress: ProgressFn,
        job: &db::ImportJob,
    ) -> Result<Outcome, ImportFailure> {
        let mut conn = self.store.writer().acquire().await?;
        let result = if opts.strict {
            db::import_reset(&mut conn, import_id).await?;
            db::import_start(&mut conn, import_id, "validating", total, self.now_ms()).await?;
            drop(conn);
            let first = self
                .pass(
                    import_id,
                    table.clone(),
                    total,
                    opts,
                    Mode::DryRun,
                    0,
                    ImportCounts::default(),
                    "validating",
                    progress.clone(),
                )
                .await?;
            if first.counts.rejected > 0 || opts.dry_run {
                first
            } else {
                let mut conn = self.store.writer().acquire().await?;
                db::import_start(&mut conn, import_id, "writing", total, self.now_ms()).await?;
                drop(conn);
                self.pass(
                    import_id,
                    table,
                    total,
                    opts,
                    Mode::Single,
                    0,
                    ImportCounts::default(),
                    "writing",
                    progress,
                )
                .await?
            }
        } else {
            db::import_start(&mut conn, import_id, "writing", total, self.now_ms()).await?;
            drop(conn);
            let resume = job.counts.processed;
            let mode = if opts.dry_run {
                Mode::DryRun
            } else {
                Mode::Batches
            };
            self.pass(
                import_id, table, total, opts, mode, resume, job.counts, "writing", progress,
            )
            .await?
        };
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pass(
        &self,
        import_id: i64,
        table: Arc<Table>,
        total: i64,
        opts: &ImportOptions,
        mode: Mode,
        resume: i64,
        start: ImportCounts,
        phase: &'static str,
        progress: ProgressFn,
    ) -> Result<Outcome, ImportFailure> {
        let batch_rows = opts.batch_rows.max(1);
        let dry_run = matches!(mode, Mode::DryRun);
        // Customers already in the table: batches grow with it (see below).
        let existing = if dry_run {
            0
        } else {
            usize::try_from(self.store.customer_count().await?).unwrap_or(0)
        };
        // Stage 1 on a blocking thread.
        let (checked_tx, mut checked_rx) = tokio::sync::mpsc::channel::<CheckedBatch>(2);
        let (vault, today) = (self.vault.clone(), opts.today);
        let pool = import_pool()?;
        let checking = pool.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut rows = table.rows();
            let mut handled = 0_i64;
            loop {
                // The first batches are smaller (an eighth, an eighth, a quarter, a half),
                // so that the writer starts early instead of waiting for a whole batch to
                // be validated and encrypted; from then on batches end on multiples of
                // `batch_rows`, and grow with the table.
                let size = if handled == 0 {
                    (batch_rows / 8).max(1)
                } else {
                    (handled as usize).min(grown_batch(batch_rows, existing + handled as usize))
                };
                let started = std::time::Instant::now();
                let chunk: Vec<_> = rows.by_ref().take(size).collect();
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len() as i64;
                let skip = (resume - handled).clamp(0, n) as usize;
                handled += n;
                let checked: Vec<Checked> = checking.install(|| {
                    chunk
                        .into_par_iter()
                        .map(|r| match r {
                            Ok(row) => check(&vault, today, row),
                            Err((row_no, msg)) => Checked {
                                row: RawRow {
                                    row_no,
                                    ..Default::default()
                                },
                                result: Err(vec![FieldProblem::new("row", "unreadable_row", msg)]),
                            },
                        })
                        .collect()
                });
                tracing::debug!(
                    through = handled,
                    ms = started.elapsed().as_millis() as u64,
                    "import batch validated"
                );
                if checked_tx
                    .blocking_send(CheckedBatch {
                        through: handled,
                        skip,
                        rows: checked,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        // Stage 2 as a task.
        let (planned_tx, mut planned_rx) =
            tokio::sync::mpsc::channel::<Result<PlannedBatch, ImportFailure>>(1);
        let mut planner = Planner {
            vault: self.vault.clone(),
            pool,
            store: self.store.clone(),
            clock: self.clock.clone(),
            dry_run,
            scope: opts.scope.clone(),
            owner: opts.owner_user_id,
            unit: opts.org_unit_id,
            created_by: opts.requested_by,
            seen: HashMap::new(),
        };
        let planner_task = tokio::spawn(async move {
            while let Some(batch) = checked_rx.recv().await {
                let planned = planner.plan(batch).await;
                let failed = planned.is_err();
                if planned_tx.send(planned).await.is_err() || failed {
                    break;
                }
            }
        });
        // Stage 3 here.
        let mut counts = start;
        let mut errors = Vec::new();
        let mut single: Option<zhudai_store::writer::WriteTx> = match mode {
            Mode::Single => Some(self.store.writer().begin_alone(false).await?),
            _ => None,
        };
        let mut failure: Option<ImportFailure> = None;
        let mut refused = false;
        let mut batches = 0_u64;
        while let Some(planned) = planned_rx.recv().await {
            let batch = match planned {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let through = batch.through;
            if through <= resume {
                continue;
            }
            let now = self.now_ms();
            let write_started = std::time::Instant::now();
            let written = match single.as_mut() {
                Some(tx) => {
                    let w = write_batch(
                        &mut *tx,
                        import_id,
                        batch,
                        false,
                        now,
                        &opts.actor,
                        &opts.roles,
                    )
                    .await;
                    match w {
                        Ok(w) if w.counts.rejected > 0 => {
                            // A concurrent change refused a row: strict mode imports nothing.
                            add(&mut counts, &w.counts);
                            errors.extend(w.errors);
                            refused = true;
                            break;
                        }
                        other => other,
                    }
                }
                None => {
                    let mut tx = self.store.writer().begin_alone(false).await?;
                    let w = write_batch(
                        &mut tx,
                        import_id,
                        batch,
                        dry_run,
                        now,
                        &opts.actor,
                        &opts.roles,
                    )
                    .await;
                    if let Ok(w) = &w {
                        let mut next = counts;
                        add(&mut next, &w.counts);
                        next.processed = through;
                        db::import_progress(&mut tx, import_id, phase, &next, now).await?;
                        tx.commit().await?;
                    }
                    w
                }
            };
            batches += 1;
            tracing::debug!(
                through,
                write_ms = write_started.elapsed().as_millis() as u64,
                "import batch written"
            );

            if !dry_run && matches!(batches, 1 | 20) {
                let analyzed = match single.as_mut() {
                    Some(tx) => db::analyze_for_import(&mut *tx).await,
                    None => match self.store.writer().acquire().await {
                        Ok(mut conn) => db::analyze_for_import(&mut conn).await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = analyzed {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
            }
            match written {
                Ok(w) => {
                    add(&mut counts, &w.counts);
                    counts.processed = through;
                    errors.extend(w.errors);
                    progress(phase, &counts, total);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(planned_rx);
        let _ = planner_task.await;
        let _ = reader.await;
        if let Some(e) = failure {
            if let Some(tx) = single {
                let _ = tx.rollback().await;
            }
            return Err(e);
        }
        let status = if let Some(mut tx) = single {
            if refused {
                tx.rollback().await?;
                let mut tx = self.store.begin().await?;
                db::import_errors_insert(&mut tx, import_id, &errors).await?;
                tx.commit().await?;
                "failed"
            } else {
                db::import_progress(&mut tx, import_id, phase, &counts, self.now_ms()).await?;
                tx.commit().await?;
                "done"
            }
        } else if opts.strict && counts.rejected > 0 {
            "rejected"
        } else {
            "done"
        };
        let error = match status {
            "failed" => Some("some customers changed during the import, so nothing was imported (strict mode); import the file again".to_owned()),
            "rejected" => Some(format!("{} row(s) are invalid, so nothing was imported (strict mode)", counts.rejected)),
            _ => None,
        };
        if status != "done" {
            // Nothing was written: the counts say what would have happened.
            let mut conn = self.store.writer().acquire().await?;
            db::import_progress(&mut conn, import_id, phase, &counts, self.now_ms()).await?;
        }
        Ok(Outcome {
            status,
            total_rows: total,
            counts,
            errors,
            error,
            resumed_after: resume,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_is_left_to_the_writer() {
        assert_eq!(import_threads(0), 1);
        assert_eq!(import_threads(1), 1);
        assert_eq!(import_threads(2), 1);
        assert_eq!(import_threads(8), 7);
    }

    #[test]
    fn batches_grow_with_the_table_in_whole_batches_up_to_the_cap() {
        // A small table: the configured size.
        assert_eq!(grown_batch(25_000, 0), 25_000);
        assert_eq!(grown_batch(25_000, 120_000), 25_000);
        // A quarter of the table, rounded down to whole batches.
        assert_eq!(grown_batch(25_000, 200_000), 50_000);
        assert_eq!(grown_batch(25_000, 430_000), 100_000);
        // Never more than MAX_BATCH_GROWTH batches.
        assert_eq!(grown_batch(25_000, 10_000_000), 25_000 * MAX_BATCH_GROWTH);
        // Every size is a multiple of the configured one (resumes count whole batches).
        for table in (0..5_000).step_by(37) {
            assert_eq!(grown_batch(200, table) % 200, 0, "table {table}");
        }
        assert_eq!(
            grown_batch(0, 100),
            8,
            "a zero batch size is taken as one row"
        );
    }
}
