//! The daily close of business (issue #8 item 3), set-based.
//!
//! A run for a business date is cut into chunks of loan ids ([`Store::cob_plan`]). A
//! worker claims a chunk ([`Store::cob_claim_chunk`], the job queue's safe-claim pattern),
//! then [`close_chunk`] closes the loans of the chunk with a fixed number of statements —
//! whatever the number of loans — in the caller's transaction, and [`chunk_done`] marks
//! the chunk done in the same transaction. A crash loses the chunk in progress only;
//! a rerun skips done chunks; a chunk whose worker died is claimed again when its lease
//! runs out (or at once, when the caller knows the worker is gone).
//!
//! The per-loan rules are `zhudai_domain::cob::close_loan`; the statements here compute
//! exactly the same figures (the server's tests compare them loan by loan):
//!
//! 1. the loans the date concerns: open loans of the range with an unsettled installment
//!    due before the date, or not in the plain state (overdue, a bucket other than M0, a
//!    tier other than 正常, a manual floor) — a current loan with nothing due is not
//!    rewritten every night;
//! 2. on PostgreSQL those loans are locked (`FOR UPDATE`), so a repayment of one of them
//!    waits, or the chunk waits for it; loans already closed through the date (by
//!    [`close_range`] before a repayment) are left out;
//! 3. days past due from the oldest unsettled installment, status, bucket, tier;
//! 4. penalty interest per overdue installment (`penalty_accrued_through` makes it
//!    idempotent), journalled per loan;
//! 5. history rows for every tier and bucket change; collection cases opened, moved,
//!    closed; the guarantee payout at the funder's threshold, journalled;
//! 6. the loans' stored state.
//!
//! The facts live in a temporary table `cob_work` (one row per loan of the chunk) that
//! stays readable until the transaction ends, so a hook run before the commit (the
//! risk-warning engine) can read what changed.

use crate::db::{Backend, Store};
use crate::error::StoreError;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use zhudai_domain::classify::{ClassificationPolicy, CollectionBucket, ObservationPolicy};
use zhudai_domain::cob::capped_penalty_rate_e8;
use zhudai_domain::ledger::{Account, EntryBuilder, EntryKind};
use zhudai_domain::money::Fen;

const DATE: &str = "%Y-%m-%d";

/// What a close needs to know besides the data.
#[derive(Debug, Clone)]
pub struct CloseParams {
    pub business_date: NaiveDate,
    pub policy: ClassificationPolicy,
    pub observation: ObservationPolicy,
    /// The all-in cost cap: the penalty rate applied is at most this.
    pub apr_cap: Decimal,
    pub now_ms: i64,
    /// Who the journal entries and history name.
    pub actor: String,
}

impl CloseParams {
    fn date(&self) -> String {
        self.business_date.format(DATE).to_string()
    }
}

/// How the close writes its journal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// One `INSERT … SELECT` for all entries of the chunk and one per side for their
    /// lines (the nightly run).
    Bulk,
    /// Each entry built by `zhudai_domain::ledger::EntryBuilder` and written by
    /// [`crate::loans::entry_insert`] (one loan before a write).
    PerEntry,
}

/// What a chunk (or a single-loan close) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CloseCounts {
    pub loans_closed: i64,
    pub overdue_loans: i64,
    pub penalty_fen: i64,
    pub reclassified: i64,
    pub bucket_moves: i64,
    pub cases_opened: i64,
    pub cases_closed: i64,
    pub payouts: i64,
    pub payout_fen: i64,
}

impl CloseCounts {
    pub fn add(&mut self, o: &CloseCounts) {
        self.loans_closed += o.loans_closed;
        self.overdue_loans += o.overdue_loans;
        self.penalty_fen += o.penalty_fen;
        self.reclassified += o.reclassified;
        self.bucket_moves += o.bucket_moves;
        self.cases_opened += o.cases_opened;
        self.cases_closed += o.cases_closed;
        self.payouts += o.payouts;
        self.payout_fen += o.payout_fen;
    }
}

/// Whole days from the date in `from` to the date in `to` (both `YYYY-MM-DD` text).
fn days_sql(b: Backend, from: &str, to: &str) -> String {
    match b {
        Backend::Sqlite => format!("CAST(julianday({to}) - julianday({from}) AS INTEGER)"),
        Backend::Postgres => format!("(CAST({to} AS DATE) - CAST({from} AS DATE))"),
    }
}

/// The day after the date in `x`, as `YYYY-MM-DD` text.
fn next_day_sql(b: Backend, x: &str) -> String {
    match b {
        Backend::Sqlite => format!("date({x}, '+1 day')"),
        Backend::Postgres => format!("to_char(CAST({x} AS DATE) + 1, 'YYYY-MM-DD')"),
    }
}

/// `zhudai_domain::cob::daily_penalty_fen(p, r)` in integer SQL that never overflows a
/// 64-bit integer for any principal up to the schedule's maximum and rates up to 36 %:
/// with `p = h·10⁶ + l`, `p·r/(360·10⁸) = ⌊h·r/36000⌋ + ((h·r mod 36000)·10⁶ + l·r)/(36·10⁹)`,
/// rounded half-up by adding 18·10⁹ before the last division.
pub fn daily_penalty_sql(p: &str, r: &str) -> String {
    format!(
        "((({p}) / 1000000) * ({r}) / 36000 + \
          (((({p}) / 1000000) * ({r})) % 36000 * 1000000 + (({p}) % 1000000) * ({r}) + 18000000000) / 36000000000)"
    )
}

/// The same integer arithmetic as [`daily_penalty_sql`], for tests.
pub fn daily_penalty_split(p: i64, r: i64) -> i64 {
    let (h, l) = (p / 1_000_000, p % 1_000_000);
    h * r / 36_000 + ((h * r) % 36_000 * 1_000_000 + l * r + 18_000_000_000) / 36_000_000_000
}

/// Something is still outstanding on the installment (`a` is its alias, with the dot).
fn outstanding(a: &str) -> String {
    format!(
        "{a}principal_due_fen + {a}interest_due_fen + {a}fee_due_fen + {a}penalty_accrued_fen \
         > {a}principal_paid_fen + {a}interest_paid_fen + {a}fee_paid_fen + {a}penalty_paid_fen"
    )
}

const ATTENTION: &str = "status IN ('active', 'overdue') \
    AND (status = 'overdue' OR dpd > 0 OR collection_bucket <> 'M0' OR classification <> 'normal' OR classification_floor IS NOT NULL)";

/// Step 1's selection: the ids of the loans in `$1..=$2` a close through `$3` concerns.
fn selection_sql() -> String {
    format!(
        "SELECT id FROM loans WHERE id BETWEEN $1 AND $2 AND {ATTENTION}
         UNION
         SELECT loan_id FROM loan_installments
          WHERE settled_on IS NULL AND loan_id BETWEEN $1 AND $2 AND due_date < $3 AND {}",
        outstanding("")
    )
}

/// The ids of the loans in `first..=last` a close through `date` would work on (step 1),
/// ascending. [`loan_needs_close`] answers the same question for one loan in hand.
pub async fn loans_to_close(
    conn: &mut AnyConnection,
    first: i64,
    last: i64,
    date: NaiveDate,
) -> Result<Vec<i64>, StoreError> {
    let mut ids: Vec<i64> = sqlx::query_scalar(&selection_sql())
        .bind(first)
        .bind(last)
        .bind(date.format(DATE).to_string())
        .fetch_all(&mut *conn)
        .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Whether a close of this one loan through `date` has anything to do: the Rust mirror of
/// step 1's selection ([`ATTENTION`], or an outstanding installment due before the date).
/// A write path that has the loan and its installments in hand already asks this first and
/// skips the close's statements for a current loan with nothing due (most of the book).
pub fn loan_needs_close(
    loan: &crate::loans::LoanRow,
    installments: &[crate::loans::InstallmentRow],
    date: NaiveDate,
) -> bool {
    let open = matches!(loan.status.as_str(), "active" | "overdue");
    let attention = open
        && (loan.status == "overdue"
            || loan.dpd > 0
            || loan.collection_bucket != "M0"
            || loan.classification != "normal"
            || loan.classification_floor.is_some());
    let d = date.format(DATE).to_string();
    attention
        || installments.iter().any(|i| {
            i.settled_on.is_none()
                && i.due_date.as_str() < d.as_str()
                && i.principal_due_fen + i.interest_due_fen + i.fee_due_fen + i.penalty_accrued_fen
                    > i.principal_paid_fen
                        + i.interest_paid_fen
                        + i.fee_paid_fen
                        + i.penalty_paid_fen
        })
}

async fn exec(conn: &mut AnyConnection, sql: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(sql).execute(&mut *conn).await?.rows_affected())
}

/// Creates (once per connection) and empties the temporary tables of the close.
async fn prepare_work(conn: &mut AnyConnection) -> Result<(), StoreError> {
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS cob_work (
            loan_id BIGINT PRIMARY KEY,
            skip BIGINT NOT NULL DEFAULT 0,
            funder_code TEXT, customer_id BIGINT, owner_user_id BIGINT, org_unit_id BIGINT,
            penalty_rate TEXT, rate_e8 BIGINT NOT NULL DEFAULT 0,
            old_dpd BIGINT NOT NULL DEFAULT 0, old_class TEXT, old_bucket TEXT, old_status TEXT,
            floor_rank BIGINT NOT NULL DEFAULT 0, obs_rank BIGINT NOT NULL DEFAULT 0,
            oldest_due TEXT,
            new_dpd BIGINT NOT NULL DEFAULT 0, new_since TEXT, new_status TEXT, new_bucket TEXT,
            dpd_rank BIGINT NOT NULL DEFAULT 0, new_class TEXT,
            penalty_fen BIGINT NOT NULL DEFAULT 0,
            payout_dpd BIGINT, payout BIGINT NOT NULL DEFAULT 0,
            payout_principal BIGINT NOT NULL DEFAULT 0, payout_interest BIGINT NOT NULL DEFAULT 0)",
        "CREATE TEMP TABLE IF NOT EXISTS cob_pen (
            installment_id BIGINT PRIMARY KEY, loan_id BIGINT NOT NULL, fen BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS cob_pen_loan_idx ON cob_pen (loan_id)",
        "DELETE FROM cob_work",
        "DELETE FROM cob_pen",
    ] {
        exec(conn, sql).await?;
    }
    Ok(())
}

/// Closes the loans with ids in `first..=last` for `p.business_date`, in the caller's
/// transaction. Idempotent: a loan already closed through the date is left alone, and
/// closing it again would change nothing. The temporary table `cob_work` holds one row
/// per closed loan until the transaction ends.
pub async fn close_range(
    conn: &mut AnyConnection,
    first: i64,
    last: i64,
    p: &CloseParams,
    journal: Journal,
) -> Result<CloseCounts, StoreError> {
    let b = Backend::of(conn);
    let d = p.date();
    prepare_work(conn).await?;
    // 1. The loans this date concerns.
    sqlx::query(&format!(
        "INSERT INTO cob_work (loan_id) {}",
        selection_sql()
    ))
    .bind(first)
    .bind(last)
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    // 2. Lock them (PostgreSQL); read their state after the lock.
    if b == Backend::Postgres {
        exec(conn, "ANALYZE cob_work").await?;
        sqlx::query(
            "SELECT COUNT(*) FROM (SELECT id FROM loans WHERE id IN (SELECT loan_id FROM cob_work) ORDER BY id FOR UPDATE) s",
        )
        .fetch_one(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE cob_work SET
            skip = CASE WHEN l.status NOT IN ('active', 'overdue') OR l.disbursed_on > $1
                          OR (l.last_closed_on IS NOT NULL AND l.last_closed_on >= $1) THEN 1 ELSE 0 END,
            funder_code = l.funder_code, customer_id = l.customer_id, owner_user_id = l.owner_user_id,
            org_unit_id = l.org_unit_id, penalty_rate = l.penalty_annual_rate,
            old_dpd = l.dpd, old_class = l.classification, old_bucket = l.collection_bucket, old_status = l.status,
            floor_rank = CASE l.classification_floor WHEN 'special_mention' THEN 1 WHEN 'substandard' THEN 2
                WHEN 'doubtful' THEN 3 WHEN 'loss' THEN 4 ELSE 0 END
         FROM loans l WHERE l.id = cob_work.loan_id AND l.id IN (SELECT loan_id FROM cob_work)",
    )
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    exec(conn, "DELETE FROM cob_work WHERE skip = 1").await?;
    // Nothing in the range needs the close (a current loan with nothing due, or closed
    // through the date already): the remaining statements would find no rows.
    let work: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cob_work")
        .fetch_one(&mut *conn)
        .await?;
    if work == 0 {
        let repaid = close_cases_of_settled_loans(conn, p, first, last).await?;
        return Ok(CloseCounts {
            cases_closed: repaid as i64,
            ..CloseCounts::default()
        });
    }
    // 3. Delinquency, status, bucket, tier.
    sqlx::query(&format!(
        "UPDATE cob_work SET
            oldest_due = (SELECT MIN(i.due_date) FROM loan_installments i
                           WHERE i.loan_id = cob_work.loan_id AND i.settled_on IS NULL AND i.due_date < $1
                             AND {}),
            obs_rank = CASE WHEN EXISTS (SELECT 1 FROM loan_restructurings o WHERE o.loan_id = cob_work.loan_id
                             AND o.active_flag = 1 AND o.observation_ends_on >= $1) THEN 1 ELSE 0 END",
        outstanding("i.")
    ))
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "UPDATE cob_work SET
            new_dpd = CASE WHEN oldest_due IS NULL THEN 0 ELSE {} END,
            new_since = CASE WHEN oldest_due IS NULL THEN NULL ELSE {} END",
        days_sql(b, "oldest_due", "$1"),
        next_day_sql(b, "oldest_due")
    ))
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    let u = CollectionBucket::UPPER_DPD;
    sqlx::query(
        "UPDATE cob_work SET
            new_status = CASE WHEN new_dpd > 0 THEN 'overdue' ELSE 'active' END,
            new_bucket = CASE WHEN new_dpd <= $1 THEN 'M0' WHEN new_dpd <= $2 THEN 'M1' WHEN new_dpd <= $3 THEN 'M2'
                WHEN new_dpd <= $4 THEN 'M3' WHEN new_dpd <= $5 THEN 'M4' WHEN new_dpd <= $6 THEN 'M5' ELSE 'M6+' END,
            dpd_rank = CASE WHEN new_dpd > $7 THEN 4 WHEN new_dpd > $8 THEN 3 WHEN new_dpd > $9 THEN 2
                WHEN new_dpd > $10 THEN 1 ELSE 0 END",
    )
    .bind(i64::from(u[0]))
    .bind(i64::from(u[1]))
    .bind(i64::from(u[2]))
    .bind(i64::from(u[3]))
    .bind(i64::from(u[4]))
    .bind(i64::from(u[5]))
    .bind(i64::from(p.policy.loss_after_days))
    .bind(i64::from(p.policy.doubtful_after_days))
    .bind(i64::from(p.policy.substandard_after_days))
    .bind(i64::from(p.policy.technical_delay_tolerance_days))
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "UPDATE cob_work SET new_class = CASE (CASE WHEN dpd_rank >= floor_rank AND dpd_rank >= obs_rank THEN dpd_rank
                WHEN floor_rank >= obs_rank THEN floor_rank ELSE obs_rank END)
            WHEN 1 THEN 'special_mention' WHEN 2 THEN 'substandard' WHEN 3 THEN 'doubtful' WHEN 4 THEN 'loss'
            ELSE 'normal' END",
    )
    .await?;
    // 4. Penalty interest, at the loan's rate capped by the all-in cost cap.
    let rates: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT penalty_rate FROM cob_work")
            .fetch_all(&mut *conn)
            .await?;
    for rate in rates.into_iter().flatten() {
        let e8 = rate
            .trim()
            .parse::<Decimal>()
            .map(|r| capped_penalty_rate_e8(r, p.apr_cap))
            .map_err(|_| {
                StoreError::Invalid(format!("a loan's penalty rate `{rate}` is not a decimal"))
            })?;
        sqlx::query("UPDATE cob_work SET rate_e8 = $1 WHERE penalty_rate = $2")
            .bind(e8)
            .bind(&rate)
            .execute(&mut *conn)
            .await?;
    }
    let through = "CASE WHEN i.penalty_accrued_through IS NOT NULL AND i.penalty_accrued_through > i.due_date \
                   THEN i.penalty_accrued_through ELSE i.due_date END";
    // `CROSS JOIN`: SQLite then walks the chunk's few loans and looks their installments
    // up by index (with a plain JOIN and no statistics on the temporary table it scanned
    // every installment of the book: 15 s a chunk at a million loans); PostgreSQL plans
    // it as any inner join.
    sqlx::query(&format!(
        "INSERT INTO cob_pen (installment_id, loan_id, fen)
         SELECT i.id, i.loan_id, {} * {}
           FROM cob_work w CROSS JOIN loan_installments i
          WHERE i.loan_id = w.loan_id
            AND i.settled_on IS NULL AND i.due_date < $1 AND i.principal_due_fen > i.principal_paid_fen
            AND (i.penalty_accrued_through IS NULL OR i.penalty_accrued_through < $1)",
        daily_penalty_sql("i.principal_due_fen - i.principal_paid_fen", "w.rate_e8"),
        days_sql(b, through, "$1"),
    ))
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE loan_installments SET penalty_accrued_fen = loan_installments.penalty_accrued_fen + p.fen,
            penalty_accrued_through = $1
         FROM cob_pen p WHERE loan_installments.id = p.installment_id",
    )
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "UPDATE cob_work SET penalty_fen = COALESCE((SELECT SUM(p.fen) FROM cob_pen p WHERE p.loan_id = cob_work.loan_id), 0)",
    )
    .await?;
    // Guarantee payouts due at the funders' thresholds (once per loan).
    exec(
        conn,
        "UPDATE cob_work SET payout_dpd = (SELECT pa.guarantee_payout_dpd FROM partners pa WHERE pa.code = cob_work.funder_code)",
    )
    .await?;
    sqlx::query(
        "UPDATE cob_work SET payout = 1,
            payout_principal = COALESCE((SELECT SUM(i.principal_due_fen - i.principal_paid_fen) FROM loan_installments i
                                          WHERE i.loan_id = cob_work.loan_id), 0),
            payout_interest = COALESCE((SELECT SUM(i.interest_due_fen - i.interest_paid_fen) FROM loan_installments i
                                         WHERE i.loan_id = cob_work.loan_id AND i.due_date < $1), 0)
         WHERE payout_dpd IS NOT NULL AND new_dpd >= payout_dpd
           AND NOT EXISTS (SELECT 1 FROM guarantee_payouts g WHERE g.loan_id = cob_work.loan_id)",
    )
    .bind(&d)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "UPDATE cob_work SET payout = 0 WHERE payout = 1 AND payout_principal + payout_interest <= 0",
    )
    .await?;
    // The journal.
    match journal {
        Journal::Bulk => bulk_journal(conn, p).await?,
        Journal::PerEntry => per_entry_journal(conn, p).await?,
    }
    // 5. History.
    sqlx::query(
        "INSERT INTO loan_classification_history (loan_id, business_date, from_class, to_class, dpd, source, created_at_ms)
         SELECT loan_id, $1, old_class, new_class, new_dpd, 'cob', $2 FROM cob_work WHERE old_class <> new_class",
    )
    .bind(&d)
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO loan_bucket_history (loan_id, business_date, from_bucket, to_bucket, dpd, created_at_ms)
         SELECT loan_id, $1, old_bucket, new_bucket, new_dpd, $2 FROM cob_work WHERE old_bucket <> new_bucket",
    )
    .bind(&d)
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?;
    // Collection cases: opened when a loan leaves M0, moved with the bucket, closed when
    // back to M0, or when the loan was repaid or written off.
    let opened = sqlx::query(
        "INSERT INTO collection_cases (loan_id, customer_id, owner_user_id, org_unit_id, bucket, state, open_flag,
            opened_on, created_at_ms, updated_at_ms)
         SELECT w.loan_id, w.customer_id, w.owner_user_id, w.org_unit_id, w.new_bucket, 'open', 1, $1, $2, $2
           FROM cob_work w
          WHERE w.old_bucket = 'M0' AND w.new_bucket <> 'M0'
            AND NOT EXISTS (SELECT 1 FROM collection_cases c WHERE c.loan_id = w.loan_id AND c.open_flag = 1)",
    )
    .bind(&d)
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE collection_cases SET bucket = w.new_bucket, updated_at_ms = $1, version = collection_cases.version + 1
           FROM cob_work w
          WHERE collection_cases.loan_id = w.loan_id AND collection_cases.open_flag = 1
            AND collection_cases.loan_id IN (SELECT loan_id FROM cob_work)
            AND w.new_bucket <> 'M0' AND collection_cases.bucket <> w.new_bucket",
    )
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?;
    let cured = sqlx::query(
        "UPDATE collection_cases SET state = 'closed', open_flag = NULL, closed_on = $1, close_reason = 'cured',
            closed_by = $2, updated_at_ms = $3, version = collection_cases.version + 1
           FROM cob_work w
          WHERE collection_cases.loan_id = w.loan_id AND collection_cases.open_flag = 1 AND w.new_bucket = 'M0'
            AND collection_cases.loan_id IN (SELECT loan_id FROM cob_work)",
    )
    .bind(&d)
    .bind(&p.actor)
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let repaid = close_cases_of_settled_loans(conn, p, first, last).await?;
    if cured > 0 && repaid == 0 {
        end_agency_assignments_of_closed_cases(conn, &d, first, last, &p.actor).await?;
    }
    // Restructured loans: a past-due day restarts the observation; a finished one ends.
    observations(conn, p).await?;
    // 6. The loans. (The `IN` lets SQLite find them by key instead of scanning the book.)
    sqlx::query(
        "UPDATE loans SET dpd = w.new_dpd, overdue_since = w.new_since, status = w.new_status,
            classification = w.new_class, collection_bucket = w.new_bucket,
            penalty_outstanding_fen = loans.penalty_outstanding_fen + w.penalty_fen,
            last_closed_on = $1, updated_at_ms = $2, version = loans.version + 1
           FROM cob_work w WHERE loans.id = w.loan_id AND loans.id IN (SELECT loan_id FROM cob_work)",
    )
    .bind(&d)
    .bind(p.now_ms)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n,
            CAST(COALESCE(SUM(CASE WHEN new_dpd > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS overdue,
            CAST(COALESCE(SUM(penalty_fen), 0) AS BIGINT) AS penalty,
            CAST(COALESCE(SUM(CASE WHEN old_class <> new_class THEN 1 ELSE 0 END), 0) AS BIGINT) AS reclassified,
            CAST(COALESCE(SUM(CASE WHEN old_bucket <> new_bucket THEN 1 ELSE 0 END), 0) AS BIGINT) AS moves,
            CAST(COALESCE(SUM(payout), 0) AS BIGINT) AS payouts,
            CAST(COALESCE(SUM(CASE WHEN payout = 1 THEN payout_principal + payout_interest ELSE 0 END), 0) AS BIGINT) AS payout_fen
         FROM cob_work",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(CloseCounts {
        loans_closed: row.try_get("n")?,
        overdue_loans: row.try_get("overdue")?,
        penalty_fen: row.try_get("penalty")?,
        reclassified: row.try_get("reclassified")?,
        bucket_moves: row.try_get("moves")?,
        cases_opened: opened as i64,
        cases_closed: (cured + repaid) as i64,
        payouts: row.try_get("payouts")?,
        payout_fen: row.try_get("payout_fen")?,
    })
}

/// Closes the open collection cases of the range's loans that were repaid or written off
/// (they are not in `cob_work`), and ends their agency assignments. Returns how many.
async fn close_cases_of_settled_loans(
    conn: &mut AnyConnection,
    p: &CloseParams,
    first: i64,
    last: i64,
) -> Result<u64, StoreError> {
    let d = p.date();
    let repaid = sqlx::query(
        "UPDATE collection_cases SET state = 'closed', open_flag = NULL, closed_on = $1,
            close_reason = CASE WHEN l.status = 'written_off' THEN 'written_off' ELSE 'paid_off' END,
            closed_by = $2, updated_at_ms = $3, version = collection_cases.version + 1
           FROM loans l
          WHERE l.id = collection_cases.loan_id AND collection_cases.open_flag = 1
            AND collection_cases.loan_id BETWEEN $4 AND $5 AND l.status IN ('paid_off', 'written_off')",
    )
    .bind(&d)
    .bind(&p.actor)
    .bind(p.now_ms)
    .bind(first)
    .bind(last)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if repaid > 0 {
        end_agency_assignments_of_closed_cases(conn, &d, first, last, &p.actor).await?;
    }
    Ok(repaid)
}

async fn bulk_journal(conn: &mut AnyConnection, p: &CloseParams) -> Result<(), StoreError> {
    let d = p.date();
    for (kind, amount, debit, credit, memo, filter) in [
        (
            EntryKind::PenaltyAccrual,
            "w.penalty_fen",
            Account::PenaltyReceivable,
            Account::PenaltyIncome,
            format!("daily close {d}: penalty interest"),
            "w.penalty_fen > 0",
        ),
        (
            EntryKind::GuaranteePayout,
            "w.payout_principal + w.payout_interest",
            Account::GuaranteeRecoverable,
            Account::FunderPayable,
            format!("daily close {d}: guarantee payout"),
            "w.payout = 1",
        ),
    ] {
        let before: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM journal_entries")
                .fetch_one(&mut *conn)
                .await?;
        let n = sqlx::query(&format!(
            "INSERT INTO journal_entries (kind, loan_id, funder_code, business_date, memo, created_by, created_at_ms)
             SELECT $1, w.loan_id, w.funder_code, $2, $3, $4, $5 FROM cob_work w WHERE {filter} ORDER BY w.loan_id"
        ))
        .bind(kind.code())
        .bind(&d)
        .bind(&memo)
        .bind(&p.actor)
        .bind(p.now_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if n == 0 {
            continue;
        }
        for (account, debit_col, credit_col) in [(debit, amount, "0"), (credit, "0", amount)] {
            sqlx::query(&format!(
                "INSERT INTO journal_lines (entry_id, account_code, loan_id, funder_code, debit_fen, credit_fen)
                 SELECT e.id, $1, e.loan_id, e.funder_code, {debit_col}, {credit_col}
                   FROM journal_entries e JOIN cob_work w ON w.loan_id = e.loan_id
                  WHERE e.id > $2 AND e.kind = $3"
            ))
            .bind(account.code())
            .bind(before)
            .bind(kind.code())
            .execute(&mut *conn)
            .await?;
        }
        if kind == EntryKind::GuaranteePayout {
            sqlx::query(
                "INSERT INTO guarantee_payouts (loan_id, funder_code, business_date, dpd, principal_fen, interest_fen,
                    total_fen, entry_id, created_at_ms)
                 SELECT w.loan_id, w.funder_code, $1, w.new_dpd, w.payout_principal, w.payout_interest,
                    w.payout_principal + w.payout_interest, e.id, $2
                   FROM journal_entries e JOIN cob_work w ON w.loan_id = e.loan_id
                  WHERE e.id > $3 AND e.kind = 'guarantee_payout'",
            )
            .bind(&d)
            .bind(p.now_ms)
            .bind(before)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn per_entry_journal(conn: &mut AnyConnection, p: &CloseParams) -> Result<(), StoreError> {
    let d = p.date();
    let rows = sqlx::query(
        "SELECT loan_id, funder_code, penalty_fen, payout, payout_principal, payout_interest, new_dpd
           FROM cob_work WHERE penalty_fen > 0 OR payout = 1 ORDER BY loan_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let loan_id: i64 = r.try_get("loan_id")?;
        let funder: Option<String> = r.try_get("funder_code")?;
        let penalty: i64 = r.try_get("penalty_fen")?;
        let payout: i64 = r.try_get("payout")?;
        let principal: i64 = r.try_get("payout_principal")?;
        let interest: i64 = r.try_get("payout_interest")?;
        let dpd: i64 = r.try_get("new_dpd")?;
        let write = |kind: EntryKind, debit: Account, credit: Account, amount: i64| {
            EntryBuilder::new(kind)
                .debit(debit, Fen::new(amount))
                .credit(credit, Fen::new(amount))
                .build()
                .map_err(|e| StoreError::Invalid(format!("loan {loan_id}: {e}")))
        };
        if penalty > 0 {
            let entry = write(
                EntryKind::PenaltyAccrual,
                Account::PenaltyReceivable,
                Account::PenaltyIncome,
                penalty,
            )?;
            insert_entry(
                conn,
                &entry,
                loan_id,
                funder.as_deref(),
                &d,
                &format!("daily close {d}: penalty interest"),
                p,
            )
            .await?;
        }
        if payout == 1 {
            let entry = write(
                EntryKind::GuaranteePayout,
                Account::GuaranteeRecoverable,
                Account::FunderPayable,
                principal + interest,
            )?;
            let entry_id = insert_entry(
                conn,
                &entry,
                loan_id,
                funder.as_deref(),
                &d,
                &format!("daily close {d}: guarantee payout"),
                p,
            )
            .await?;
            sqlx::query(
                "INSERT INTO guarantee_payouts (loan_id, funder_code, business_date, dpd, principal_fen, interest_fen,
                    total_fen, entry_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(loan_id)
            .bind(funder.as_deref().unwrap_or_default())
            .bind(&d)
            .bind(dpd)
            .bind(principal)
            .bind(interest)
            .bind(principal + interest)
            .bind(entry_id)
            .bind(p.now_ms)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn insert_entry(
    conn: &mut AnyConnection,
    entry: &zhudai_domain::ledger::Entry,
    loan_id: i64,
    funder: Option<&str>,
    date: &str,
    memo: &str,
    p: &CloseParams,
) -> Result<i64, StoreError> {
    let lines: Vec<crate::loans::NewLine> = entry
        .lines()
        .iter()
        .map(|l| (l.account.code(), l.debit_fen(), l.credit_fen()))
        .collect();
    crate::loans::entry_insert(
        conn,
        &crate::loans::NewEntry {
            kind: entry.kind().code(),
            loan_id: Some(loan_id),
            funder_code: funder,
            business_date: date,
            reverses_entry_id: None,
            memo: Some(memo),
            created_by: Some(&p.actor),
        },
        &lines,
        p.now_ms,
    )
    .await
}

/// Ends the agency assignments of cases the close just closed, freezing what was
/// recovered (posted repayments with a value date in the assignment) and the commission.
async fn end_agency_assignments_of_closed_cases(
    conn: &mut AnyConnection,
    d: &str,
    first: i64,
    last: i64,
    actor: &str,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT a.id, a.commission_rate,
            CAST(COALESCE((SELECT SUM(r.amount_fen) FROM repayments r WHERE r.loan_id = a.loan_id AND r.status = 'posted'
                 AND r.value_date >= a.assigned_on AND r.value_date <= $1), 0) AS BIGINT) AS recovered
           FROM collection_agency_assignments a JOIN collection_cases c ON c.id = a.case_id
          WHERE a.active_flag = 1 AND c.open_flag IS NULL AND c.closed_on = $1 AND c.loan_id BETWEEN $2 AND $3",
    )
    .bind(d)
    .bind(first)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let rate: String = r.try_get("commission_rate")?;
        let recovered: i64 = r.try_get("recovered")?;
        let rate = rate.parse::<Decimal>().unwrap_or(Decimal::ZERO);
        let commission = zhudai_domain::collection::commission(Fen::new(recovered), rate);
        sqlx::query(
            "UPDATE collection_agency_assignments SET active_flag = NULL, ended_on = $2, ended_by = $3,
                recovered_fen = $4, commission_fen = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(d)
        .bind(actor)
        .bind(recovered)
        .bind(commission.as_fen())
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE collection_cases SET agency_code = NULL WHERE id = (SELECT case_id FROM collection_agency_assignments WHERE id = $1)")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A past-due close restarts the observation period of a restructured loan; the period
/// ends once its last day has passed.
async fn observations(conn: &mut AnyConnection, p: &CloseParams) -> Result<(), StoreError> {
    let d = p.date();
    let rows = sqlx::query(
        "SELECT o.id, o.loan_id, o.observation_ends_on, w.new_dpd, l.maturity_date
           FROM loan_restructurings o JOIN cob_work w ON w.loan_id = o.loan_id JOIN loans l ON l.id = o.loan_id
          WHERE o.active_flag = 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let loan_id: i64 = r.try_get("loan_id")?;
        let ends: String = r.try_get("observation_ends_on")?;
        let dpd: i64 = r.try_get("new_dpd")?;
        let maturity: String = r.try_get("maturity_date")?;
        if dpd > 0 {
            let dues = due_dates(conn, loan_id).await?;
            let maturity = parse_date(&maturity)?;
            let new_end = p.observation.ends_on(p.business_date, &dues, maturity);
            sqlx::query(
                "UPDATE loan_restructurings SET observe_from = $2, observation_ends_on = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(&d)
            .bind(new_end.format(DATE).to_string())
            .execute(&mut *conn)
            .await?;
        } else if ends.as_str() < d.as_str() {
            sqlx::query(
                "UPDATE loan_restructurings SET active_flag = NULL, ended_on = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(&d)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// A loan the close just moved into a later collection bucket while past due: what the
/// risk-warning engine hears as an `overdue` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueMove {
    pub loan_id: i64,
    pub loan_ref: String,
    pub customer_id: i64,
    pub dpd: i64,
    pub bucket: String,
    pub principal_fen: i64,
    /// Principal, interest, fee and penalty outstanding after the close.
    pub outstanding_fen: i64,
    pub product_code: String,
    pub funder_code: String,
    pub status: String,
}

/// The loans of the current [`close_range`] (same transaction: `cob_work` lives until it
/// ends) that entered a new bucket past due, in loan id order.
pub async fn overdue_moves(conn: &mut AnyConnection) -> Result<Vec<OverdueMove>, StoreError> {
    let rows = sqlx::query(
        "SELECT w.loan_id, l.ref, l.customer_id, w.new_dpd, w.new_bucket, l.principal_fen,
                l.principal_outstanding_fen + l.interest_outstanding_fen + l.fee_outstanding_fen
                  + l.penalty_outstanding_fen AS outstanding,
                l.product_code, l.funder_code, l.status
           FROM cob_work w CROSS JOIN loans l
          WHERE l.id = w.loan_id AND w.new_dpd > 0 AND w.new_bucket <> COALESCE(w.old_bucket, '')
          ORDER BY w.loan_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OverdueMove {
                loan_id: r.try_get(0)?,
                loan_ref: r.try_get(1)?,
                customer_id: r.try_get(2)?,
                dpd: r.try_get(3)?,
                bucket: r.try_get(4)?,
                principal_fen: r.try_get(5)?,
                outstanding_fen: r.try_get(6)?,
                product_code: r.try_get(7)?,
                funder_code: r.try_get(8)?,
                status: r.try_get(9)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Due dates of a loan's periods (installment 1 onwards).
pub async fn due_dates(
    conn: &mut AnyConnection,
    loan_id: i64,
) -> Result<Vec<NaiveDate>, StoreError> {
    let dues: Vec<String> = sqlx::query_scalar(
        "SELECT due_date FROM loan_installments WHERE loan_id = $1 AND number >= 1 ORDER BY due_date",
    )
    .bind(loan_id)
    .fetch_all(&mut *conn)
    .await?;
    dues.iter().map(|s| parse_date(s)).collect()
}

fn parse_date(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, DATE)
        .map_err(|_| StoreError::Invalid(format!("`{s}` is not a date")))
}

// ---------------------------------------------------------------------------------------
// Runs and chunks
// ---------------------------------------------------------------------------------------

/// A close run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub business_date: String,
    pub state: String,
    pub chunk_size: i64,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub started_by: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub totals: CloseCounts,
}

const RUN_COLUMNS: &str = "r.id, r.business_date, r.state, r.chunk_size, r.chunks_total, r.started_by, r.started_at_ms, \
    r.finished_at_ms, r.loans_closed, r.overdue_loans, r.penalty_fen, r.reclassified, r.bucket_moves, r.cases_opened, \
    r.cases_closed, r.payouts, r.payout_fen, \
    (SELECT COUNT(*) FROM cob_chunks c WHERE c.run_id = r.id AND c.state = 'done') AS chunks_done";

fn counts_of(r: &AnyRow) -> Result<CloseCounts, StoreError> {
    Ok(CloseCounts {
        loans_closed: r.try_get("loans_closed")?,
        overdue_loans: r.try_get("overdue_loans")?,
        penalty_fen: r.try_get("penalty_fen")?,
        reclassified: r.try_get("reclassified")?,
        bucket_moves: r.try_get("bucket_moves")?,
        cases_opened: r.try_get("cases_opened")?,
        cases_closed: r.try_get("cases_closed")?,
        payouts: r.try_get("payouts")?,
        payout_fen: r.try_get("payout_fen")?,
    })
}

fn run_row(r: &AnyRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: r.try_get("id")?,
        business_date: r.try_get("business_date")?,
        state: r.try_get("state")?,
        chunk_size: r.try_get("chunk_size")?,
        chunks_total: r.try_get("chunks_total")?,
        chunks_done: r.try_get("chunks_done")?,
        started_by: r.try_get("started_by")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        totals: counts_of(r)?,
    })
}

/// A claimed chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkClaim {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub first_loan_id: i64,
    pub last_loan_id: i64,
    pub attempts: i64,
}

/// What planning a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Created now.
    Created(RunRow),
    /// The run of this date exists (running or done).
    Existing(RunRow),
    /// A later date is closed already: closes only move forward.
    LaterRunExists(String),
}

/// Marks a claimed chunk done with its counts, in the transaction that did its work.
/// False when the worker no longer holds the chunk (then roll back).
pub async fn chunk_done(
    conn: &mut AnyConnection,
    chunk_id: i64,
    worker: &str,
    c: &CloseCounts,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE cob_chunks SET state = 'done', locked_by = NULL, lease_until_ms = NULL, finished_at_ms = $3,
            loans_closed = $4, overdue_loans = $5, penalty_fen = $6, reclassified = $7, bucket_moves = $8,
            cases_opened = $9, cases_closed = $10, payouts = $11, payout_fen = $12
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind(chunk_id)
    .bind(worker)
    .bind(now_ms)
    .bind(c.loans_closed)
    .bind(c.overdue_loans)
    .bind(c.penalty_fen)
    .bind(c.reclassified)
    .bind(c.bucket_moves)
    .bind(c.cases_opened)
    .bind(c.cases_closed)
    .bind(c.payouts)
    .bind(c.payout_fen)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Takes the chunk row's lock (PostgreSQL) and checks the worker still holds it: the
/// first statement of a chunk's transaction, so two workers holding the same chunk
/// after a lease ran out serialise here and the second finds it done.
pub async fn chunk_hold(
    conn: &mut AnyConnection,
    chunk_id: i64,
    worker: &str,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE cob_chunks SET attempts = attempts WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind(chunk_id)
    .bind(worker)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

impl Store {
    /// Creates the run of `date` cut into chunks of `chunk_size` loan ids, unless it
    /// exists; refuses a date before a closed or running later one.
    pub async fn cob_plan(
        &self,
        date: NaiveDate,
        chunk_size: i64,
        started_by: &str,
        now_ms: i64,
    ) -> Result<Planned, StoreError> {
        let d = date.format(DATE).to_string();
        if let Some(run) = self.cob_run(&d).await? {
            return Ok(Planned::Existing(run));
        }
        let later: Option<String> =
            sqlx::query_scalar("SELECT MAX(business_date) FROM cob_runs WHERE business_date > $1")
                .bind(&d)
                .fetch_one(self.reader())
                .await?;
        if let Some(later) = later {
            return Ok(Planned::LaterRunExists(later));
        }
        let size = chunk_size.max(1);
        let mut tx = self.begin().await?;
        let (lo, hi): (Option<i64>, Option<i64>) = {
            let r = sqlx::query("SELECT MIN(id) AS lo, MAX(id) AS hi FROM loans")
                .fetch_one(&mut *tx)
                .await?;
            (r.try_get("lo")?, r.try_get("hi")?)
        };
        let (lo, hi) = (lo.unwrap_or(1), hi.unwrap_or(0));
        let chunks = if hi >= lo { (hi - lo) / size + 1 } else { 0 };
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO cob_runs (business_date, state, chunk_size, chunks_total, started_by, started_at_ms)
             VALUES ($1, 'running', $2, $3, $4, $5)
             ON CONFLICT (business_date) DO NOTHING RETURNING id",
        )
        .bind(&d)
        .bind(size)
        .bind(chunks)
        .bind(started_by)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run_id) = id else {
            tx.rollback().await?;
            return match self.cob_run(&d).await? {
                Some(run) => Ok(Planned::Existing(run)),
                None => Err(StoreError::NotFound),
            };
        };
        // Chunk rows in multi-row inserts of 200.
        let mut seq = 0_i64;
        while seq < chunks {
            let n = (chunks - seq).min(200);
            let mut sql = String::from(
                "INSERT INTO cob_chunks (run_id, seq, first_loan_id, last_loan_id) VALUES ",
            );
            for k in 0..n {
                if k > 0 {
                    sql.push_str(", ");
                }
                let b = k * 3 + 2;
                sql.push_str(&format!("($1, ${}, ${}, ${})", b, b + 1, b + 2));
            }
            let mut q = sqlx::query(&sql).bind(run_id);
            for k in 0..n {
                let s = seq + k;
                let first = lo + s * size;
                q = q.bind(s).bind(first).bind((first + size - 1).min(hi));
            }
            q.execute(&mut *tx).await?;
            seq += n;
        }
        tx.commit().await?;
        match self.cob_run(&d).await? {
            Some(run) => Ok(Planned::Created(run)),
            None => Err(StoreError::NotFound),
        }
    }

    pub async fn cob_run(&self, date: &str) -> Result<Option<RunRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM cob_runs r WHERE r.business_date = $1"
        ))
        .bind(date)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(run_row).transpose()
    }

    /// The newest runs first.
    pub async fn cob_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM cob_runs r ORDER BY r.business_date DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(run_row).collect()
    }

    /// The newest finished close.
    pub async fn cob_last_done(&self) -> Result<Option<RunRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM cob_runs r WHERE r.state = 'done' ORDER BY r.business_date DESC LIMIT 1"
        ))
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(run_row).transpose()
    }

    /// Claims the next chunk of a run: a pending one, one whose lease ran out, or one
    /// held by a worker in `gone` (known dead). One statement, `FOR UPDATE SKIP LOCKED`
    /// on PostgreSQL, so concurrent workers never take the same chunk.
    pub async fn cob_claim_chunk(
        &self,
        run_id: i64,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        gone: &[String],
    ) -> Result<Option<ChunkClaim>, StoreError> {
        let mut stolen = String::new();
        for i in 0..gone.len() {
            stolen.push_str(&format!(
                " OR (state = 'running' AND locked_by = ${})",
                i + 5
            ));
        }
        let sql = format!(
            "UPDATE cob_chunks SET state = 'running', locked_by = $1, lease_until_ms = $2, attempts = attempts + 1
             WHERE id = (
                 SELECT id FROM cob_chunks
                 WHERE run_id = $4 AND (state = 'pending' OR (state = 'running' AND lease_until_ms < $3){stolen})
                 ORDER BY seq LIMIT 1{}
             )
             RETURNING id, run_id, seq, first_loan_id, last_loan_id, attempts",
            self.skip_locked()
        );
        let mut q = sqlx::query(&sql)
            .bind(worker)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(run_id);
        for g in gone {
            q = q.bind(g);
        }
        let r = q.fetch_optional(self.writer()).await?;
        r.map(|r| {
            Ok(ChunkClaim {
                id: r.try_get("id")?,
                run_id: r.try_get("run_id")?,
                seq: r.try_get("seq")?,
                first_loan_id: r.try_get("first_loan_id")?,
                last_loan_id: r.try_get("last_loan_id")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    /// The workers holding running chunks of a run.
    pub async fn cob_chunk_holders(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT locked_by FROM cob_chunks WHERE run_id = $1 AND state = 'running' AND locked_by IS NOT NULL",
        )
        .bind(run_id)
        .fetch_all(self.reader())
        .await?)
    }

    /// Finishes a run whose chunks are all done: totals, and the snapshot of open loans
    /// by tier and bucket. Returns the run when this call finished it.
    pub async fn cob_finish(&self, run_id: i64, now_ms: i64) -> Result<Option<RunRow>, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE cob_runs SET state = 'done', finished_at_ms = $2,
                loans_closed = (SELECT CAST(COALESCE(SUM(loans_closed), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                overdue_loans = (SELECT CAST(COALESCE(SUM(overdue_loans), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                penalty_fen = (SELECT CAST(COALESCE(SUM(penalty_fen), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                reclassified = (SELECT CAST(COALESCE(SUM(reclassified), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                bucket_moves = (SELECT CAST(COALESCE(SUM(bucket_moves), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                cases_opened = (SELECT CAST(COALESCE(SUM(cases_opened), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                cases_closed = (SELECT CAST(COALESCE(SUM(cases_closed), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                payouts = (SELECT CAST(COALESCE(SUM(payouts), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1),
                payout_fen = (SELECT CAST(COALESCE(SUM(payout_fen), 0) AS BIGINT) FROM cob_chunks WHERE run_id = $1)
             WHERE id = $1 AND state = 'running'
               AND NOT EXISTS (SELECT 1 FROM cob_chunks WHERE run_id = $1 AND state <> 'done')",
        )
        .bind(run_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let d: String = sqlx::query_scalar("SELECT business_date FROM cob_runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO cob_snapshots (business_date, classification, collection_bucket, loans, principal_fen)
             SELECT $1, classification, collection_bucket, COUNT(*), CAST(SUM(principal_outstanding_fen) AS BIGINT)
               FROM loans WHERE status IN ('active', 'overdue') AND disbursed_on <= $1
              GROUP BY classification, collection_bucket",
        )
        .bind(&d)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.cob_run(&d).await
    }
}

// ---------------------------------------------------------------------------------------
// Manual floors, restructuring, funder settings
// ---------------------------------------------------------------------------------------

/// A manual-floor request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FloorRequest {
    pub id: i64,
    pub loan_id: i64,
    pub floor: Option<String>,
    pub reason: String,
    pub state: String,
    pub requested_by: i64,
    pub requested_by_name: String,
    pub requested_at_ms: i64,
    pub decided_by_name: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

const FLOOR_COLUMNS: &str =
    "id, loan_id, floor, reason, state, requested_by, requested_by_name, requested_at_ms, \
    decided_by_name, decided_at_ms, decision_note";

fn floor_row(r: &AnyRow) -> Result<FloorRequest, StoreError> {
    Ok(FloorRequest {
        id: r.try_get("id")?,
        loan_id: r.try_get("loan_id")?,
        floor: r.try_get("floor")?,
        reason: r.try_get("reason")?,
        state: r.try_get("state")?,
        requested_by: r.try_get("requested_by")?,
        requested_by_name: r.try_get("requested_by_name")?,
        requested_at_ms: r.try_get("requested_at_ms")?,
        decided_by_name: r.try_get("decided_by_name")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        decision_note: r.try_get("decision_note")?,
    })
}

/// Files a request; `None` when the loan has one open already.
pub async fn floor_request_insert(
    conn: &mut AnyConnection,
    loan_id: i64,
    floor: Option<&str>,
    reason: &str,
    by: i64,
    by_name: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO classification_requests (loan_id, floor, reason, state, open_flag, requested_by, requested_by_name, requested_at_ms)
         VALUES ($1, $2, $3, 'pending', 1, $4, $5, $6)
         ON CONFLICT (loan_id, open_flag) DO NOTHING RETURNING id",
    )
    .bind(loan_id)
    .bind(floor)
    .bind(reason)
    .bind(by)
    .bind(by_name)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?)
}

pub async fn floor_request_get(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<FloorRequest>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {FLOOR_COLUMNS} FROM classification_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(floor_row).transpose()
}

/// Decides a pending request; false when it was not pending any more.
pub async fn floor_request_decide(
    conn: &mut AnyConnection,
    id: i64,
    approve: bool,
    by: i64,
    by_name: &str,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE classification_requests SET state = $2, open_flag = NULL, decided_by = $3, decided_by_name = $4,
            decided_at_ms = $5, decision_note = $6
         WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(if approve { "approved" } else { "rejected" })
    .bind(by)
    .bind(by_name)
    .bind(now_ms)
    .bind(note.trim())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Sets a loan's manual floor and reclassifies it at once: max(floor by its stored days
/// past due, the floor, 关注 under an active observation on `today`). A change of tier
/// is recorded in the history with `note`.
pub async fn apply_floor(
    conn: &mut AnyConnection,
    loan_id: i64,
    floor: Option<&str>,
    policy: &ClassificationPolicy,
    today: NaiveDate,
    note: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    use zhudai_domain::classify::{ClassificationFacts, FiveTierClass};
    let r = sqlx::query("SELECT dpd, classification FROM loans WHERE id = $1")
        .bind(loan_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let dpd: i64 = r.try_get("dpd")?;
    let old: String = r.try_get("classification")?;
    let d = today.format(DATE).to_string();
    let observed: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM loan_restructurings WHERE loan_id = $1 AND active_flag = 1 AND observation_ends_on >= $2",
    )
    .bind(loan_id)
    .bind(&d)
    .fetch_optional(&mut *conn)
    .await?;
    let manual = floor.and_then(|f| FiveTierClass::parse(f).ok());
    let tier = policy.classify(&ClassificationFacts {
        days_past_due: u32::try_from(dpd.max(0)).unwrap_or(u32::MAX),
        manual_floor: manual,
        restructured_in_observation: observed.is_some(),
    });
    sqlx::query(
        "UPDATE loans SET classification_floor = $2, classification = $3, version = version + 1, updated_at_ms = $4 WHERE id = $1",
    )
    .bind(loan_id)
    .bind(floor)
    .bind(tier.code())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if tier.code() != old {
        sqlx::query(
            "INSERT INTO loan_classification_history (loan_id, business_date, from_class, to_class, dpd, source, note, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(loan_id)
        .bind(&d)
        .bind(&old)
        .bind(tier.code())
        .bind(dpd)
        .bind(if observed.is_some() && note.starts_with("restructured") { "restructuring" } else { "manual" })
        .bind(note)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Starts an observation period; false when one is active already.
pub async fn restructuring_insert(
    conn: &mut AnyConnection,
    loan_id: i64,
    on: NaiveDate,
    ends_on: NaiveDate,
    note: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO loan_restructurings (loan_id, restructured_on, observe_from, observation_ends_on, active_flag, note, created_by, created_at_ms)
         VALUES ($1, $2, $2, $3, 1, $4, $5, $6)
         ON CONFLICT (loan_id, active_flag) DO NOTHING RETURNING id",
    )
    .bind(loan_id)
    .bind(on.format(DATE).to_string())
    .bind(ends_on.format(DATE).to_string())
    .bind(note)
    .bind(by)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.is_some())
}

/// A funder's guarantee-payout threshold; false when there is no such funder.
pub async fn set_payout_dpd(
    conn: &mut AnyConnection,
    code: &str,
    dpd: Option<i64>,
) -> Result<bool, StoreError> {
    let n = sqlx::query("UPDATE partners SET guarantee_payout_dpd = $2 WHERE code = $1 AND kind IN ('funder', 'credit_enhancer')")
        .bind(code)
        .bind(dpd)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// A tier change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassChange {
    pub business_date: String,
    pub from_class: String,
    pub to_class: String,
    pub dpd: i64,
    pub source: String,
    pub note: Option<String>,
}

/// A bucket change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketChange {
    pub business_date: String,
    pub from_bucket: String,
    pub to_bucket: String,
    pub dpd: i64,
}

/// A guarantee payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutRow {
    pub loan_id: i64,
    pub funder_code: String,
    pub business_date: String,
    pub dpd: i64,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub total_fen: i64,
    pub entry_id: i64,
}

/// An observation period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestructuringRow {
    pub restructured_on: String,
    pub observe_from: String,
    pub observation_ends_on: String,
    pub active: bool,
    pub ended_on: Option<String>,
    pub note: String,
}

impl Store {
    pub async fn classification_history(
        &self,
        loan_id: i64,
    ) -> Result<Vec<ClassChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT business_date, from_class, to_class, dpd, source, note FROM loan_classification_history
              WHERE loan_id = $1 ORDER BY id",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClassChange {
                    business_date: r.try_get("business_date")?,
                    from_class: r.try_get("from_class")?,
                    to_class: r.try_get("to_class")?,
                    dpd: r.try_get("dpd")?,
                    source: r.try_get("source")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    pub async fn bucket_history(&self, loan_id: i64) -> Result<Vec<BucketChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT business_date, from_bucket, to_bucket, dpd FROM loan_bucket_history WHERE loan_id = $1 ORDER BY id",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BucketChange {
                    business_date: r.try_get("business_date")?,
                    from_bucket: r.try_get("from_bucket")?,
                    to_bucket: r.try_get("to_bucket")?,
                    dpd: r.try_get("dpd")?,
                })
            })
            .collect()
    }

    pub async fn guarantee_payout_of(&self, loan_id: i64) -> Result<Option<PayoutRow>, StoreError> {
        let r = sqlx::query(
            "SELECT loan_id, funder_code, business_date, dpd, principal_fen, interest_fen, total_fen, entry_id
               FROM guarantee_payouts WHERE loan_id = $1",
        )
        .bind(loan_id)
        .fetch_optional(self.reader())
        .await?;
        r.map(|r| {
            Ok(PayoutRow {
                loan_id: r.try_get("loan_id")?,
                funder_code: r.try_get("funder_code")?,
                business_date: r.try_get("business_date")?,
                dpd: r.try_get("dpd")?,
                principal_fen: r.try_get("principal_fen")?,
                interest_fen: r.try_get("interest_fen")?,
                total_fen: r.try_get("total_fen")?,
                entry_id: r.try_get("entry_id")?,
            })
        })
        .transpose()
    }

    pub async fn restructurings_of(
        &self,
        loan_id: i64,
    ) -> Result<Vec<RestructuringRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT restructured_on, observe_from, observation_ends_on, active_flag, ended_on, note
               FROM loan_restructurings WHERE loan_id = $1 ORDER BY id",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RestructuringRow {
                    restructured_on: r.try_get("restructured_on")?,
                    observe_from: r.try_get("observe_from")?,
                    observation_ends_on: r.try_get("observation_ends_on")?,
                    active: r.try_get::<Option<i64>, _>("active_flag")?.is_some(),
                    ended_on: r.try_get("ended_on")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    /// Floor requests in a state (`pending`, …), newest first.
    pub async fn floor_requests(
        &self,
        state: &str,
        limit: i64,
    ) -> Result<Vec<FloorRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {FLOOR_COLUMNS} FROM classification_requests WHERE state = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(state)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(floor_row).collect()
    }

    pub async fn floor_requests_of(&self, loan_id: i64) -> Result<Vec<FloorRequest>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {FLOOR_COLUMNS} FROM classification_requests WHERE loan_id = $1 ORDER BY id DESC"
        ))
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(floor_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhudai_domain::cob::daily_penalty_fen;

    #[test]
    fn split_penalty_arithmetic_equals_the_domain_rule() {
        let mut s = zhudai_domain::generate::SplitMix64::new(7);
        for _ in 0..200_000 {
            // Principal anywhere up to the schedule's maximum, rates up to 36 %.
            let p = match s.below(3) {
                0 => s.below(10_000_000) as i64,
                1 => s.below(100_000_000_000) as i64,
                _ => s.below(1_000_000_000_000_000) as i64,
            };
            let r = s.below(36_000_001) as i64;
            assert_eq!(
                daily_penalty_split(p, r),
                daily_penalty_fen(p, r),
                "p={p} r={r}"
            );
        }
        assert_eq!(daily_penalty_split(2_500, 7_200_000), 1);
        assert_eq!(
            daily_penalty_split(1_000_000_000_000_000, 36_000_000),
            1_000_000_000_000
        );
    }
}
