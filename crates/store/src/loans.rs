//! Loans, their installments, the journal (double-entry ledger), repayments and
//! idempotency keys (migration 0011). Writes take the caller's connection, so a
//! repayment, its journal entry, the installments it pays, the loan's balances, the
//! idempotency key and the audit record commit together. The rules (allocation, what
//! balances) live in `zhudai_domain::servicing` and `zhudai_domain::ledger`; this module
//! stores and sums.

use crate::batch::{Arg, Stmt};
use crate::customers::{bind_all, scope_sql, Bind, ScopeFilter};
use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanRow {
    pub id: i64,
    pub ref_: String,
    pub application_id: i64,
    pub customer_id: i64,
    pub product_code: String,
    pub product_version: i64,
    pub funder_code: String,
    pub funder_loan_ref: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub principal_fen: i64,
    pub annual_rate: String,
    pub penalty_annual_rate: String,
    pub method: String,
    pub months: i64,
    pub day_count: String,
    pub terms_json: String,
    pub disbursed_on: String,
    pub maturity_date: String,
    pub status: String,
    pub principal_outstanding_fen: i64,
    pub interest_outstanding_fen: i64,
    pub fee_outstanding_fen: i64,
    pub penalty_outstanding_fen: i64,
    pub overpaid_fen: i64,
    pub dpd: i64,
    pub overdue_since: Option<String>,
    pub classification: String,
    pub classification_floor: Option<String>,
    pub collection_bucket: String,
    pub last_closed_on: Option<String>,
    pub closed_on: Option<String>,
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const LOAN_COLUMNS: &str = "id, ref, application_id, customer_id, product_code, product_version, funder_code, \
    funder_loan_ref, owner_user_id, org_unit_id, principal_fen, annual_rate, penalty_annual_rate, method, months, \
    day_count, terms_json, disbursed_on, maturity_date, status, principal_outstanding_fen, interest_outstanding_fen, \
    fee_outstanding_fen, penalty_outstanding_fen, overpaid_fen, dpd, overdue_since, classification, \
    classification_floor, collection_bucket, last_closed_on, closed_on, version, created_at_ms, updated_at_ms";

fn loan_row(r: &AnyRow) -> Result<LoanRow, StoreError> {
    Ok(LoanRow {
        id: r.try_get("id")?,
        ref_: r.try_get("ref")?,
        application_id: r.try_get("application_id")?,
        customer_id: r.try_get("customer_id")?,
        product_code: r.try_get("product_code")?,
        product_version: r.try_get("product_version")?,
        funder_code: r.try_get("funder_code")?,
        funder_loan_ref: r.try_get("funder_loan_ref")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        principal_fen: r.try_get("principal_fen")?,
        annual_rate: r.try_get("annual_rate")?,
        penalty_annual_rate: r.try_get("penalty_annual_rate")?,
        method: r.try_get("method")?,
        months: r.try_get("months")?,
        day_count: r.try_get("day_count")?,
        terms_json: r.try_get("terms_json")?,
        disbursed_on: r.try_get("disbursed_on")?,
        maturity_date: r.try_get("maturity_date")?,
        status: r.try_get("status")?,
        principal_outstanding_fen: r.try_get("principal_outstanding_fen")?,
        interest_outstanding_fen: r.try_get("interest_outstanding_fen")?,
        fee_outstanding_fen: r.try_get("fee_outstanding_fen")?,
        penalty_outstanding_fen: r.try_get("penalty_outstanding_fen")?,
        overpaid_fen: r.try_get("overpaid_fen")?,
        dpd: r.try_get("dpd")?,
        overdue_since: r.try_get("overdue_since")?,
        classification: r.try_get("classification")?,
        classification_floor: r.try_get("classification_floor")?,
        collection_bucket: r.try_get("collection_bucket")?,
        last_closed_on: r.try_get("last_closed_on")?,
        closed_on: r.try_get("closed_on")?,
        version: r.try_get("version")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// A new loan.
#[derive(Debug, Clone)]
pub struct NewLoan<'a> {
    pub ref_: &'a str,
    pub application_id: i64,
    pub customer_id: i64,
    pub product_code: &'a str,
    pub product_version: i64,
    pub funder_code: &'a str,
    pub funder_loan_ref: Option<&'a str>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub principal_fen: i64,
    pub annual_rate: &'a str,
    pub penalty_annual_rate: &'a str,
    pub method: &'a str,
    pub months: i64,
    pub day_count: &'a str,
    pub terms_json: &'a str,
    pub disbursed_on: &'a str,
    pub maturity_date: &'a str,
    pub interest_outstanding_fen: i64,
    pub fee_outstanding_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentRow {
    pub id: i64,
    pub loan_id: i64,
    pub number: i64,
    pub due_date: String,
    pub principal_due_fen: i64,
    pub interest_due_fen: i64,
    pub fee_due_fen: i64,
    pub penalty_accrued_fen: i64,
    pub principal_paid_fen: i64,
    pub interest_paid_fen: i64,
    pub fee_paid_fen: i64,
    pub penalty_paid_fen: i64,
    pub penalty_accrued_through: Option<String>,
    pub settled_on: Option<String>,
}

const INSTALLMENT_COLUMNS: &str =
    "id, loan_id, number, due_date, principal_due_fen, interest_due_fen, fee_due_fen, \
    penalty_accrued_fen, principal_paid_fen, interest_paid_fen, fee_paid_fen, penalty_paid_fen, \
    penalty_accrued_through, settled_on";

fn installment_row(r: &AnyRow) -> Result<InstallmentRow, StoreError> {
    Ok(InstallmentRow {
        id: r.try_get("id")?,
        loan_id: r.try_get("loan_id")?,
        number: r.try_get("number")?,
        due_date: r.try_get("due_date")?,
        principal_due_fen: r.try_get("principal_due_fen")?,
        interest_due_fen: r.try_get("interest_due_fen")?,
        fee_due_fen: r.try_get("fee_due_fen")?,
        penalty_accrued_fen: r.try_get("penalty_accrued_fen")?,
        principal_paid_fen: r.try_get("principal_paid_fen")?,
        interest_paid_fen: r.try_get("interest_paid_fen")?,
        fee_paid_fen: r.try_get("fee_paid_fen")?,
        penalty_paid_fen: r.try_get("penalty_paid_fen")?,
        penalty_accrued_through: r.try_get("penalty_accrued_through")?,
        settled_on: r.try_get("settled_on")?,
    })
}

/// The due amounts of a new installment.
#[derive(Debug, Clone, Copy)]
pub struct NewInstallment<'a> {
    pub number: i64,
    pub due_date: &'a str,
    pub principal_due_fen: i64,
    pub interest_due_fen: i64,
    pub fee_due_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub id: i64,
    pub kind: String,
    pub loan_id: Option<i64>,
    pub funder_code: Option<String>,
    pub business_date: String,
    pub reverses_entry_id: Option<i64>,
    pub memo: Option<String>,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub id: i64,
    pub entry_id: i64,
    pub account_code: String,
    pub loan_id: Option<i64>,
    pub funder_code: Option<String>,
    pub debit_fen: i64,
    pub credit_fen: i64,
}

/// A new journal entry (its lines are given separately).
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub kind: &'a str,
    pub loan_id: Option<i64>,
    pub funder_code: Option<&'a str>,
    pub business_date: &'a str,
    pub reverses_entry_id: Option<i64>,
    pub memo: Option<&'a str>,
    pub created_by: Option<&'a str>,
}

/// A new journal line: account code, debit fen, credit fen (one of them zero).
pub type NewLine<'a> = (&'a str, i64, i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepaymentRow {
    pub id: i64,
    pub ref_: String,
    pub loan_id: i64,
    pub kind: String,
    pub amount_fen: i64,
    pub value_date: String,
    pub payer_name: String,
    pub third_party: bool,
    pub payer_relation: Option<String>,
    pub channel: String,
    pub external_ref: Option<String>,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub fee_fen: i64,
    pub penalty_fen: i64,
    pub overpaid_fen: i64,
    pub credit_used_fen: i64,
    pub entry_id: i64,
    pub status: String,
    pub reversal_entry_id: Option<i64>,
    pub reversal_reason: Option<String>,
    pub reversed_by: Option<String>,
    pub reversed_at_ms: Option<i64>,
    pub prior_state: String,
    pub created_by: String,
    pub created_at_ms: i64,
}

const REPAYMENT_COLUMNS: &str = "id, ref, loan_id, kind, amount_fen, value_date, payer_name, third_party, \
    payer_relation, channel, external_ref, principal_fen, interest_fen, fee_fen, penalty_fen, overpaid_fen, \
    credit_used_fen, entry_id, status, reversal_entry_id, reversal_reason, reversed_by, reversed_at_ms, \
    prior_state, created_by, created_at_ms";

fn repayment_row(r: &AnyRow) -> Result<RepaymentRow, StoreError> {
    Ok(RepaymentRow {
        id: r.try_get("id")?,
        ref_: r.try_get("ref")?,
        loan_id: r.try_get("loan_id")?,
        kind: r.try_get("kind")?,
        amount_fen: r.try_get("amount_fen")?,
        value_date: r.try_get("value_date")?,
        payer_name: r.try_get("payer_name")?,
        third_party: r.try_get::<i64, _>("third_party")? != 0,
        payer_relation: r.try_get("payer_relation")?,
        channel: r.try_get("channel")?,
        external_ref: r.try_get("external_ref")?,
        principal_fen: r.try_get("principal_fen")?,
        interest_fen: r.try_get("interest_fen")?,
        fee_fen: r.try_get("fee_fen")?,
        penalty_fen: r.try_get("penalty_fen")?,
        overpaid_fen: r.try_get("overpaid_fen")?,
        credit_used_fen: r.try_get("credit_used_fen")?,
        entry_id: r.try_get("entry_id")?,
        status: r.try_get("status")?,
        reversal_entry_id: r.try_get("reversal_entry_id")?,
        reversal_reason: r.try_get("reversal_reason")?,
        reversed_by: r.try_get("reversed_by")?,
        reversed_at_ms: r.try_get("reversed_at_ms")?,
        prior_state: r.try_get("prior_state")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// A new repayment.
#[derive(Debug, Clone)]
pub struct NewRepayment<'a> {
    pub ref_: &'a str,
    pub loan_id: i64,
    pub kind: &'a str,
    pub amount_fen: i64,
    pub value_date: &'a str,
    pub payer_name: &'a str,
    pub third_party: bool,
    pub payer_relation: Option<&'a str>,
    pub channel: &'a str,
    pub external_ref: Option<&'a str>,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub fee_fen: i64,
    pub penalty_fen: i64,
    pub overpaid_fen: i64,
    pub credit_used_fen: i64,
    pub prior_state: &'a str,
    pub created_by: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRow {
    pub id: i64,
    pub repayment_id: i64,
    pub installment_id: i64,
    pub principal_fen: i64,
    pub interest_fen: i64,
    pub fee_fen: i64,
    pub penalty_fen: i64,
    pub old_principal_due_fen: Option<i64>,
    pub old_interest_due_fen: Option<i64>,
    pub old_fee_due_fen: Option<i64>,
    pub old_settled_on: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Writes (inside the caller's transaction)
// ---------------------------------------------------------------------------------------

/// Inserts the loan of an application; `None` when the application already has one
/// (a concurrent opening waits for the other transaction, then finds it).
pub async fn loan_insert(
    conn: &mut AnyConnection,
    l: &NewLoan<'_>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO loans (ref, application_id, customer_id, product_code, product_version, funder_code,
            funder_loan_ref, owner_user_id, org_unit_id, principal_fen, annual_rate, penalty_annual_rate, method,
            months, day_count, terms_json, disbursed_on, maturity_date, principal_outstanding_fen,
            interest_outstanding_fen, fee_outstanding_fen, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $10, $19, $20, $21, $21)
         ON CONFLICT (application_id) DO NOTHING
         RETURNING id",
    )
    .bind(l.ref_)
    .bind(l.application_id)
    .bind(l.customer_id)
    .bind(l.product_code)
    .bind(l.product_version)
    .bind(l.funder_code)
    .bind(l.funder_loan_ref)
    .bind(l.owner_user_id)
    .bind(l.org_unit_id)
    .bind(l.principal_fen)
    .bind(l.annual_rate)
    .bind(l.penalty_annual_rate)
    .bind(l.method)
    .bind(l.months)
    .bind(l.day_count)
    .bind(l.terms_json)
    .bind(l.disbursed_on)
    .bind(l.maturity_date)
    .bind(l.interest_outstanding_fen)
    .bind(l.fee_outstanding_fen)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The loan opened for an application, if any.
pub async fn loan_id_by_application<'c, E>(
    exec: E,
    application_id: i64,
) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(
        sqlx::query_scalar("SELECT id FROM loans WHERE application_id = $1")
            .bind(application_id)
            .fetch_optional(exec)
            .await?,
    )
}

pub async fn installments_insert(
    conn: &mut AnyConnection,
    loan_id: i64,
    rows: &[NewInstallment<'_>],
) -> Result<(), StoreError> {
    // Multi-row inserts of at most 100 rows (7 values each).
    for chunk in rows.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO loan_installments (loan_id, number, due_date, principal_due_fen, interest_due_fen, fee_due_fen) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            let b = i * 5 + 2;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "($1, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4
            ));
        }
        let mut q = sqlx::query(&sql).bind(loan_id);
        for r in chunk {
            q = q
                .bind(r.number)
                .bind(r.due_date)
                .bind(r.principal_due_fen)
                .bind(r.interest_due_fen)
                .bind(r.fee_due_fen);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts an entry and its lines; returns the entry id. The caller has checked the
/// lines balance (a `zhudai_domain::ledger::Entry`).
pub async fn entry_insert(
    conn: &mut AnyConnection,
    e: &NewEntry<'_>,
    lines: &[NewLine<'_>],
    now_ms: i64,
) -> Result<i64, StoreError> {
    let id = entry_id_from_rows(&entry_stmt(e, now_ms).fetch_all(conn).await?)?;
    let mut b = crate::batch::Batch::new();
    b.extend(lines_stmts(id, e, lines));
    b.run(conn).await?;
    Ok(id)
}

/// The journal entry's row alone (no lines), as a statement returning its id; read with
/// [`entry_id_from_rows`], then add [`lines_stmts`].
pub fn entry_stmt(e: &NewEntry<'_>, now_ms: i64) -> Stmt {
    Stmt::new(
        format!("INSERT INTO journal_entries ({ENTRY_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"),
        entry_args(e, now_ms),
    )
}

/// The columns [`entry_args`] fills, in its order.
const ENTRY_INSERT_COLUMNS: &str =
    "kind, loan_id, funder_code, business_date, reverses_entry_id, memo, created_by, created_at_ms";

fn entry_args(e: &NewEntry<'_>, now_ms: i64) -> Vec<Arg> {
    vec![
        e.kind.into(),
        e.loan_id.into(),
        e.funder_code.into(),
        e.business_date.into(),
        e.reverses_entry_id.into(),
        e.memo.into(),
        e.created_by.into(),
        now_ms.into(),
    ]
}

pub fn entry_id_from_rows(rows: &[AnyRow]) -> Result<i64, StoreError> {
    Ok(rows
        .first()
        .ok_or_else(|| StoreError::Invalid("the journal entry insert returned no id".into()))?
        .try_get("id")?)
}

/// The lines of entry `entry_id` (one statement per 100 lines).
pub fn lines_stmts(entry_id: i64, e: &NewEntry<'_>, lines: &[NewLine<'_>]) -> Vec<Stmt> {
    lines
        .chunks(100)
        .map(|chunk| {
            let mut sql = String::from(
                "INSERT INTO journal_lines (entry_id, loan_id, funder_code, account_code, debit_fen, credit_fen) VALUES ",
            );
            for (i, _) in chunk.iter().enumerate() {
                let b = i * 3 + 4;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("($3, $1, $2, ${}, ${}, ${})", b, b + 1, b + 2));
            }
            let mut args: Vec<Arg> = vec![e.loan_id.into(), e.funder_code.into(), entry_id.into()];
            for (account, debit, credit) in chunk {
                args.extend([(*account).into(), (*debit).into(), (*credit).into()]);
            }
            Stmt::new(sql, args)
        })
        .collect()
}

/// Locks the loan for a write (the row lock on PostgreSQL, the write lock on SQLite)
/// and returns it. `None` when there is no such loan.
pub async fn loan_lock(conn: &mut AnyConnection, id: i64) -> Result<Option<LoanRow>, StoreError> {
    loan_from_rows(&loan_lock_stmt(id).fetch_all(conn).await?)
}

/// [`loan_lock`] as a statement for a [`Batch`](crate::batch::Batch); read its rows
/// with [`loan_from_rows`].
pub fn loan_lock_stmt(id: i64) -> Stmt {
    Stmt::new(
        format!("UPDATE loans SET version = version + 1 WHERE id = $1 RETURNING {LOAN_COLUMNS}"),
        vec![id.into()],
    )
}

/// The loan in `rows` (from a loan statement), if any.
pub fn loan_from_rows(rows: &[AnyRow]) -> Result<Option<LoanRow>, StoreError> {
    rows.first().map(loan_row).transpose()
}

/// The loan's installments in order, as a statement; read with [`installments_from_rows`].
pub fn installments_of_stmt(loan_id: i64) -> Stmt {
    Stmt::new(
        format!("SELECT {INSTALLMENT_COLUMNS} FROM loan_installments WHERE loan_id = $1 ORDER BY number"),
        vec![loan_id.into()],
    )
}

pub fn installments_from_rows(rows: &[AnyRow]) -> Result<Vec<InstallmentRow>, StoreError> {
    rows.iter().map(installment_row).collect()
}

/// The loan's installments as **one** row: a JSON array with one array per installment
/// (the columns of [`installments_of_stmt`], in order); read with
/// [`installments_from_packed`]. For hot paths on SQLite, where sqlx hands every result
/// row from the connection's thread to the caller's task separately (a thread wake-up
/// each): a repayment reads a schedule of 12–36 installments inside its transaction.
pub fn installments_packed_stmt(loan_id: i64, backend: crate::db::Backend) -> Stmt {
    let sql = match backend {
        crate::db::Backend::Sqlite => format!(
            "SELECT json_group_array(json_array({INSTALLMENT_COLUMNS})) AS packed \
             FROM loan_installments WHERE loan_id = $1"
        ),
        crate::db::Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_array({INSTALLMENT_COLUMNS})), '[]')::text AS packed \
             FROM loan_installments WHERE loan_id = $1"
        ),
    };
    Stmt::new(sql, vec![loan_id.into()])
}

/// One installment as [`installments_packed_stmt`] packs it.
type PackedInstallment = (
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

/// The installments of [`installments_packed_stmt`]'s row, in order of number.
pub fn installments_from_packed(rows: &[AnyRow]) -> Result<Vec<InstallmentRow>, StoreError> {
    let Some(row) = rows.first() else {
        return Ok(Vec::new());
    };
    let packed: String = row.try_get("packed")?;
    let items: Vec<PackedInstallment> = serde_json::from_str(&packed)
        .map_err(|e| StoreError::Invalid(format!("packed installments: {e}")))?;
    let mut out: Vec<InstallmentRow> = items
        .into_iter()
        .map(|i| InstallmentRow {
            id: i.0,
            loan_id: i.1,
            number: i.2,
            due_date: i.3,
            principal_due_fen: i.4,
            interest_due_fen: i.5,
            fee_due_fen: i.6,
            penalty_accrued_fen: i.7,
            principal_paid_fen: i.8,
            interest_paid_fen: i.9,
            fee_paid_fen: i.10,
            penalty_paid_fen: i.11,
            penalty_accrued_through: i.12,
            settled_on: i.13,
        })
        .collect();
    out.sort_by_key(|i| i.number);
    Ok(out)
}

pub async fn loan_get<'c, E>(exec: E, id: i64) -> Result<Option<LoanRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(&format!("SELECT {LOAN_COLUMNS} FROM loans WHERE id = $1"))
        .bind(id)
        .fetch_optional(exec)
        .await?;
    r.as_ref().map(loan_row).transpose()
}

pub async fn installments_of<'c, E>(
    exec: E,
    loan_id: i64,
) -> Result<Vec<InstallmentRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(&format!(
        "SELECT {INSTALLMENT_COLUMNS} FROM loan_installments WHERE loan_id = $1 ORDER BY number"
    ))
    .bind(loan_id)
    .fetch_all(exec)
    .await?;
    rows.iter().map(installment_row).collect()
}

/// Rewrites several installments, one statement per 100 rows (an
/// early repayment rewrites the whole remaining schedule; one round trip per row would
/// hold the writer that much longer).
pub async fn installments_update_many(
    conn: &mut AnyConnection,
    rows: &[InstallmentRow],
) -> Result<(), StoreError> {
    for (stmt, chunk) in installments_update_stmts(rows).iter().zip(rows.chunks(100)) {
        let n = stmt.execute(conn).await?;
        if n != chunk.len() as u64 {
            return Err(StoreError::Invalid(format!(
                "{n} of {} installments updated: an installment id is unknown",
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// [`installments_update_many`] as statements (one per 100 rows).
pub fn installments_update_stmts(rows: &[InstallmentRow]) -> Vec<Stmt> {
    rows.chunks(100)
        .map(|chunk| {
            let values = crate::batch::placeholder_rows(chunk.len(), 9, 1);
            // VALUES columns are named column1… on both databases.
            let sql = format!(
                "UPDATE loan_installments SET principal_due_fen = v.column2, interest_due_fen = v.column3,
                    fee_due_fen = v.column4, principal_paid_fen = v.column5, interest_paid_fen = v.column6,
                    fee_paid_fen = v.column7, penalty_paid_fen = v.column8, settled_on = v.column9
                   FROM (VALUES {values}) AS v WHERE loan_installments.id = v.column1"
            );
            let mut args = Vec::with_capacity(chunk.len() * 9);
            for i in chunk {
                args.extend([
                    i.id.into(),
                    i.principal_due_fen.into(),
                    i.interest_due_fen.into(),
                    i.fee_due_fen.into(),
                    i.principal_paid_fen.into(),
                    i.interest_paid_fen.into(),
                    i.fee_paid_fen.into(),
                    i.penalty_paid_fen.into(),
                    i.settled_on.clone().into(),
                ]);
            }
            Stmt::new(sql, args)
        })
        .collect()
}

/// A loan's state after a posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanState<'a> {
    pub status: &'a str,
    pub principal_outstanding_fen: i64,
    pub interest_outstanding_fen: i64,
    pub fee_outstanding_fen: i64,
    pub penalty_outstanding_fen: i64,
    pub overpaid_fen: i64,
    pub dpd: i64,
    pub overdue_since: Option<&'a str>,
    pub closed_on: Option<&'a str>,
}

/// Stores a loan's state after a posting (a statement for a batch).
pub fn loan_set_state_stmt(id: i64, s: &LoanState<'_>, now_ms: i64) -> Stmt {
    Stmt::new(
        "UPDATE loans SET status = $2, principal_outstanding_fen = $3, interest_outstanding_fen = $4,
            fee_outstanding_fen = $5, penalty_outstanding_fen = $6, overpaid_fen = $7, dpd = $8, overdue_since = $9,
            closed_on = $10, updated_at_ms = $11
         WHERE id = $1",
        vec![
            id.into(),
            s.status.into(),
            s.principal_outstanding_fen.into(),
            s.interest_outstanding_fen.into(),
            s.fee_outstanding_fen.into(),
            s.penalty_outstanding_fen.into(),
            s.overpaid_fen.into(),
            s.dpd.into(),
            s.overdue_since.into(),
            s.closed_on.into(),
            now_ms.into(),
        ],
    )
}

/// The ids the next journal entry and the next repayment will take (columns
/// `entry_id` and `repayment_id`), for a transaction that writes both in one round trip
/// and must name them before they exist (the allocations, the audit record and the
/// idempotency key's stored response all carry them). On PostgreSQL the identity
/// sequences hand them out (never twice, also across servers); on SQLite the ids after
/// the largest used, counting the AUTOINCREMENT high-water mark so an id is never
/// reused — only valid inside a write transaction, which on SQLite holds the one writer
/// from here to the inserts.
pub fn next_repayment_ids_stmt(backend: crate::db::Backend) -> Stmt {
    let sql = match backend {
        crate::db::Backend::Sqlite => {
            let next = |t: &str| {
                format!(
                    "MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{t}'), 0), \
                     COALESCE((SELECT MAX(id) FROM {t}), 0)) + 1"
                )
            };
            format!(
                "SELECT {} AS entry_id, {} AS repayment_id",
                next("journal_entries"),
                next("repayments")
            )
        }
        crate::db::Backend::Postgres => {
            "SELECT nextval(pg_get_serial_sequence('journal_entries', 'id')) AS entry_id, \
             nextval(pg_get_serial_sequence('repayments', 'id')) AS repayment_id"
                .to_owned()
        }
    };
    Stmt::new(sql, Vec::new())
}

/// The `(entry_id, repayment_id)` of [`next_repayment_ids_stmt`].
pub fn next_repayment_ids_from_rows(rows: &[AnyRow]) -> Result<(i64, i64), StoreError> {
    let r = rows
        .first()
        .ok_or_else(|| StoreError::Invalid("the next ids query returned no row".into()))?;
    Ok((r.try_get("entry_id")?, r.try_get("repayment_id")?))
}

/// The journal entry `e` inserted with the id `id` (see [`next_repayment_ids_stmt`]).
pub fn entry_stmt_with_id(id: i64, e: &NewEntry<'_>, now_ms: i64) -> Stmt {
    let mut args = entry_args(e, now_ms);
    args.push(id.into());
    Stmt::new(
        format!("INSERT INTO journal_entries ({ENTRY_INSERT_COLUMNS}, id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        args,
    )
}

impl NewRepayment<'_> {
    /// The row this repayment becomes when inserted as `id` on entry `entry_id` at
    /// `now_ms` by [`repayment_insert_with_id_stmt`] (a new repayment is `posted`).
    pub fn row(&self, id: i64, entry_id: i64, now_ms: i64) -> RepaymentRow {
        RepaymentRow {
            id,
            ref_: self.ref_.to_owned(),
            loan_id: self.loan_id,
            kind: self.kind.to_owned(),
            amount_fen: self.amount_fen,
            value_date: self.value_date.to_owned(),
            payer_name: self.payer_name.to_owned(),
            third_party: self.third_party,
            payer_relation: self.payer_relation.map(str::to_owned),
            channel: self.channel.to_owned(),
            external_ref: self.external_ref.map(str::to_owned),
            principal_fen: self.principal_fen,
            interest_fen: self.interest_fen,
            fee_fen: self.fee_fen,
            penalty_fen: self.penalty_fen,
            overpaid_fen: self.overpaid_fen,
            credit_used_fen: self.credit_used_fen,
            entry_id,
            status: "posted".to_owned(),
            reversal_entry_id: None,
            reversal_reason: None,
            reversed_by: None,
            reversed_at_ms: None,
            prior_state: self.prior_state.to_owned(),
            created_by: self.created_by.to_owned(),
            created_at_ms: now_ms,
        }
    }
}

/// Inserts the repayment as `row` describes it (from [`NewRepayment::row`]); returns no
/// rows.
pub fn repayment_insert_with_id_stmt(row: &RepaymentRow) -> Stmt {
    Stmt::new(
        "INSERT INTO repayments (id, ref, loan_id, kind, amount_fen, value_date, payer_name, third_party, payer_relation,
            channel, external_ref, principal_fen, interest_fen, fee_fen, penalty_fen, overpaid_fen, credit_used_fen,
            prior_state, created_by, created_at_ms, entry_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        vec![
            row.id.into(),
            row.ref_.as_str().into(),
            row.loan_id.into(),
            row.kind.as_str().into(),
            row.amount_fen.into(),
            row.value_date.as_str().into(),
            row.payer_name.as_str().into(),
            row.third_party.into(),
            row.payer_relation.as_deref().into(),
            row.channel.as_str().into(),
            row.external_ref.as_deref().into(),
            row.principal_fen.into(),
            row.interest_fen.into(),
            row.fee_fen.into(),
            row.penalty_fen.into(),
            row.overpaid_fen.into(),
            row.credit_used_fen.into(),
            row.prior_state.as_str().into(),
            row.created_by.as_str().into(),
            row.created_at_ms.into(),
            row.entry_id.into(),
        ],
    )
}

/// What a repayment did to each installment, one statement per 100 rows (ids ascend in
/// slice order).
pub fn allocations_insert_stmts(rows: &[AllocationRow]) -> Vec<Stmt> {
    rows.chunks(100)
        .map(|chunk| {
            let values = crate::batch::placeholder_rows(chunk.len(), 10, 1);
            let sql = format!(
                "INSERT INTO repayment_allocations (repayment_id, installment_id, principal_fen, interest_fen, fee_fen,
                    penalty_fen, old_principal_due_fen, old_interest_due_fen, old_fee_due_fen, old_settled_on)
                 VALUES {values}"
            );
            let mut args = Vec::with_capacity(chunk.len() * 10);
            for a in chunk {
                args.extend([
                    a.repayment_id.into(),
                    a.installment_id.into(),
                    a.principal_fen.into(),
                    a.interest_fen.into(),
                    a.fee_fen.into(),
                    a.penalty_fen.into(),
                    a.old_principal_due_fen.into(),
                    a.old_interest_due_fen.into(),
                    a.old_fee_due_fen.into(),
                    a.old_settled_on.clone().into(),
                ]);
            }
            Stmt::new(sql, args)
        })
        .collect()
}

pub async fn allocations_of<'c, E>(
    exec: E,
    repayment_id: i64,
) -> Result<Vec<AllocationRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT id, repayment_id, installment_id, principal_fen, interest_fen, fee_fen, penalty_fen,
            old_principal_due_fen, old_interest_due_fen, old_fee_due_fen, old_settled_on
         FROM repayment_allocations WHERE repayment_id = $1 ORDER BY id",
    )
    .bind(repayment_id)
    .fetch_all(exec)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AllocationRow {
                id: r.try_get("id")?,
                repayment_id: r.try_get("repayment_id")?,
                installment_id: r.try_get("installment_id")?,
                principal_fen: r.try_get("principal_fen")?,
                interest_fen: r.try_get("interest_fen")?,
                fee_fen: r.try_get("fee_fen")?,
                penalty_fen: r.try_get("penalty_fen")?,
                old_principal_due_fen: r.try_get("old_principal_due_fen")?,
                old_interest_due_fen: r.try_get("old_interest_due_fen")?,
                old_fee_due_fen: r.try_get("old_fee_due_fen")?,
                old_settled_on: r.try_get("old_settled_on")?,
            })
        })
        .collect()
}

pub async fn repayment_get<'c, E>(exec: E, id: i64) -> Result<Option<RepaymentRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(&format!(
        "SELECT {REPAYMENT_COLUMNS} FROM repayments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(exec)
    .await?;
    r.as_ref().map(repayment_row).transpose()
}

/// The newest posted (not reversed) repayment of a loan.
pub async fn last_posted_repayment<'c, E>(
    exec: E,
    loan_id: i64,
) -> Result<Option<RepaymentRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(&format!(
        "SELECT {REPAYMENT_COLUMNS} FROM repayments WHERE loan_id = $1 AND status = 'posted' ORDER BY id DESC LIMIT 1"
    ))
    .bind(loan_id)
    .fetch_optional(exec)
    .await?;
    r.as_ref().map(repayment_row).transpose()
}

/// [`last_posted_repayment`] as a statement; read with [`repayment_from_rows`].
pub fn last_posted_repayment_stmt(loan_id: i64) -> Stmt {
    Stmt::new(
        format!(
            "SELECT {REPAYMENT_COLUMNS} FROM repayments WHERE loan_id = $1 AND status = 'posted' ORDER BY id DESC LIMIT 1"
        ),
        vec![loan_id.into()],
    )
}

pub fn repayment_from_rows(rows: &[AnyRow]) -> Result<Option<RepaymentRow>, StoreError> {
    rows.first().map(repayment_row).transpose()
}

/// Marks a posted repayment reversed; false if it was not posted.
pub async fn repayment_mark_reversed(
    conn: &mut AnyConnection,
    id: i64,
    reversal_entry_id: i64,
    reason: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE repayments SET status = 'reversed', reversal_entry_id = $2, reversal_reason = $3, reversed_by = $4,
            reversed_at_ms = $5
         WHERE id = $1 AND status = 'posted'",
    )
    .bind(id)
    .bind(reversal_entry_id)
    .bind(reason)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn lines_of_entry<'c, E>(exec: E, entry_id: i64) -> Result<Vec<LineRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT id, entry_id, account_code, loan_id, funder_code, debit_fen, credit_fen
         FROM journal_lines WHERE entry_id = $1 ORDER BY id",
    )
    .bind(entry_id)
    .fetch_all(exec)
    .await?;
    rows.iter().map(line_row).collect()
}

fn line_row(r: &AnyRow) -> Result<LineRow, StoreError> {
    Ok(LineRow {
        id: r.try_get("id")?,
        entry_id: r.try_get("entry_id")?,
        account_code: r.try_get("account_code")?,
        loan_id: r.try_get("loan_id")?,
        funder_code: r.try_get("funder_code")?,
        debit_fen: r.try_get("debit_fen")?,
        credit_fen: r.try_get("credit_fen")?,
    })
}

fn entry_row(r: &AnyRow) -> Result<EntryRow, StoreError> {
    Ok(EntryRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        loan_id: r.try_get("loan_id")?,
        funder_code: r.try_get("funder_code")?,
        business_date: r.try_get("business_date")?,
        reverses_entry_id: r.try_get("reverses_entry_id")?,
        memo: r.try_get("memo")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

// ---------------------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------------------

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new and now held by this transaction: do the work, then
    /// [`idempotency_complete`].
    New,
    /// A request with this key committed before.
    Existing {
        request_digest: String,
        response_status: Option<i64>,
        response_body: Option<String>,
        resource: Option<String>,
    },
}

/// Claims `(scope, key)` as the first statement of the request's transaction. A
/// concurrent claim of the same key waits until this transaction ends (PostgreSQL: the
/// unique index; SQLite: the single writer), then sees the stored response.
pub async fn idempotency_claim(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    digest: &str,
    now_ms: i64,
) -> Result<Claim, StoreError> {
    let mut b = crate::batch::Batch::new();
    b.extend(idempotency_claim_stmts(scope, key, digest, now_ms));
    let rows = b.run(conn).await?;
    claim_from_rows(&rows[0], &rows[1])
}

/// [`idempotency_claim`] as two statements for a batch: the insert (a row back when it
/// is new) and the key's row as it stands after it. Read with [`claim_from_rows`].
pub fn idempotency_claim_stmts(scope: &str, key: &str, digest: &str, now_ms: i64) -> [Stmt; 2] {
    [
        Stmt::new(
            "INSERT INTO idempotency_keys (scope, key, request_digest, created_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, key) DO NOTHING RETURNING scope",
            vec![scope.into(), key.into(), digest.into(), now_ms.into()],
        ),
        Stmt::new(
            "SELECT request_digest, response_status, response_body, resource FROM idempotency_keys
             WHERE scope = $1 AND key = $2",
            vec![scope.into(), key.into()],
        ),
    ]
}

pub fn claim_from_rows(inserted: &[AnyRow], existing: &[AnyRow]) -> Result<Claim, StoreError> {
    if !inserted.is_empty() {
        return Ok(Claim::New);
    }
    let r = existing
        .first()
        .ok_or_else(|| StoreError::Invalid("an idempotency key vanished".into()))?;
    Ok(Claim::Existing {
        request_digest: r.try_get("request_digest")?,
        response_status: r.try_get("response_status")?,
        response_body: r.try_get("response_body")?,
        resource: r.try_get("resource")?,
    })
}

/// Stores the response of the request holding `(scope, key)`.
pub async fn idempotency_complete(
    conn: &mut AnyConnection,
    scope: &str,
    key: &str,
    status: i64,
    body: &str,
    resource: Option<&str>,
) -> Result<(), StoreError> {
    idempotency_complete_stmt(scope, key, status, body, resource)
        .fetch_all(conn)
        .await?;
    Ok(())
}

/// [`idempotency_complete`] as a statement.
pub fn idempotency_complete_stmt(
    scope: &str,
    key: &str,
    status: i64,
    body: &str,
    resource: Option<&str>,
) -> Stmt {
    Stmt::new(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4, resource = $5
         WHERE scope = $1 AND key = $2",
        vec![
            scope.into(),
            key.into(),
            status.into(),
            body.into(),
            resource.into(),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

/// Filters of the loan list.
#[derive(Debug, Clone, Default)]
pub struct LoanFilter<'a> {
    pub status: Option<&'a str>,
    pub funder_code: Option<&'a str>,
    pub product_code: Option<&'a str>,
    pub customer_id: Option<i64>,
    pub classification: Option<&'a str>,
    /// Only loans with days past due ≥ this.
    pub min_dpd: Option<i64>,
}

/// A balance: debits, credits, and the balance on the account's normal side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    pub account_code: String,
    /// The loan or funder the balance belongs to (`None` for the whole book).
    pub owner: Option<String>,
    pub debit_fen: i64,
    pub credit_fen: i64,
}

impl Store {
    /// Loans inside a scope (same rule as customers), newest first.
    pub async fn loans(
        &self,
        scope: &ScopeFilter,
        f: &LoanFilter<'_>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<LoanRow>, i64), StoreError> {
        let mut cond = String::from(" WHERE 1 = 1");
        let mut binds = Vec::new();
        scope_sql(scope, &mut cond, &mut binds);
        if let Some(s) = f.status {
            binds.push(Bind::Str(s));
            cond.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(s) = f.funder_code {
            binds.push(Bind::Str(s));
            cond.push_str(&format!(" AND funder_code = ${}", binds.len()));
        }
        if let Some(s) = f.product_code {
            binds.push(Bind::Str(s));
            cond.push_str(&format!(" AND product_code = ${}", binds.len()));
        }
        if let Some(s) = f.classification {
            binds.push(Bind::Str(s));
            cond.push_str(&format!(" AND classification = ${}", binds.len()));
        }
        if let Some(c) = f.customer_id {
            binds.push(Bind::I64(c));
            cond.push_str(&format!(" AND customer_id = ${}", binds.len()));
        }
        if let Some(d) = f.min_dpd {
            binds.push(Bind::I64(d));
            cond.push_str(&format!(" AND dpd >= ${}", binds.len()));
        }
        let total: i64 = bind_all(
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM loans{cond}")),
            &binds,
        )
        .fetch_one(self.reader())
        .await?
        .try_get("n")?;
        let sql = format!(
            "SELECT {LOAN_COLUMNS} FROM loans{cond} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        );
        let rows = bind_all(sqlx::query(&sql), &binds)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.reader())
            .await?;
        Ok((rows.iter().map(loan_row).collect::<Result<_, _>>()?, total))
    }

    pub async fn loan(&self, id: i64) -> Result<Option<LoanRow>, StoreError> {
        loan_get(self.reader(), id).await
    }

    pub async fn loan_by_application(
        &self,
        application_id: i64,
    ) -> Result<Option<LoanRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {LOAN_COLUMNS} FROM loans WHERE application_id = $1"
        ))
        .bind(application_id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(loan_row).transpose()
    }

    pub async fn loan_installments(&self, loan_id: i64) -> Result<Vec<InstallmentRow>, StoreError> {
        installments_of(self.reader(), loan_id).await
    }

    /// A loan's repayments, oldest first.
    pub async fn loan_repayments(&self, loan_id: i64) -> Result<Vec<RepaymentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPAYMENT_COLUMNS} FROM repayments WHERE loan_id = $1 ORDER BY id"
        ))
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(repayment_row).collect()
    }

    pub async fn repayment(&self, id: i64) -> Result<Option<RepaymentRow>, StoreError> {
        repayment_get(self.reader(), id).await
    }

    /// A loan's journal: its entries, oldest first, each with its lines.
    pub async fn loan_journal(
        &self,
        loan_id: i64,
    ) -> Result<Vec<(EntryRow, Vec<LineRow>)>, StoreError> {
        let entries = sqlx::query(
            "SELECT id, kind, loan_id, funder_code, business_date, reverses_entry_id, memo, created_by, created_at_ms
             FROM journal_entries WHERE loan_id = $1 ORDER BY id",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        let lines = sqlx::query(
            "SELECT id, entry_id, account_code, loan_id, funder_code, debit_fen, credit_fen
             FROM journal_lines WHERE loan_id = $1 ORDER BY entry_id, id",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        let mut by_entry: BTreeMap<i64, Vec<LineRow>> = BTreeMap::new();
        for l in &lines {
            let l = line_row(l)?;
            by_entry.entry(l.entry_id).or_default().push(l);
        }
        entries
            .iter()
            .map(|e| {
                let e = entry_row(e)?;
                let ls = by_entry.remove(&e.id).unwrap_or_default();
                Ok((e, ls))
            })
            .collect()
    }

    /// Balances per account of one loan.
    pub async fn ledger_balances_of_loan(
        &self,
        loan_id: i64,
    ) -> Result<Vec<BalanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_code, CAST(SUM(debit_fen) AS BIGINT) AS d, CAST(SUM(credit_fen) AS BIGINT) AS c FROM journal_lines
             WHERE loan_id = $1 GROUP BY account_code ORDER BY account_code",
        )
        .bind(loan_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| balance_row(r, Some(loan_id.to_string())))
            .collect()
    }

    /// Balances per funder and account (`funder` limits it to one funder).
    pub async fn ledger_balances_by_funder(
        &self,
        funder: Option<&str>,
    ) -> Result<Vec<BalanceRow>, StoreError> {
        let sql = format!(
            "SELECT funder_code, account_code, CAST(SUM(debit_fen) AS BIGINT) AS d, CAST(SUM(credit_fen) AS BIGINT) AS c
             FROM journal_lines WHERE funder_code IS NOT NULL{}
             GROUP BY funder_code, account_code ORDER BY funder_code, account_code",
            if funder.is_some() { " AND funder_code = $1" } else { "" }
        );
        let mut q = sqlx::query(&sql);
        if let Some(f) = funder {
            q = q.bind(f);
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let owner: Option<String> = r.try_get("funder_code")?;
                balance_row(r, owner)
            })
            .collect()
    }

    /// Balances per account over the whole book.
    pub async fn ledger_balances_by_account(&self) -> Result<Vec<BalanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_code, CAST(SUM(debit_fen) AS BIGINT) AS d, CAST(SUM(credit_fen) AS BIGINT) AS c FROM journal_lines
             GROUP BY account_code ORDER BY account_code",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| balance_row(r, None)).collect()
    }

    /// The chart of accounts: (code, number, zh, en, kind, normal side).
    pub async fn ledger_accounts(
        &self,
    ) -> Result<Vec<(String, String, String, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT code, number, name_zh, name_en, kind, normal_side FROM ledger_accounts ORDER BY number",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("code")?,
                    r.try_get("number")?,
                    r.try_get("name_zh")?,
                    r.try_get("name_en")?,
                    r.try_get("kind")?,
                    r.try_get("normal_side")?,
                ))
            })
            .collect()
    }

    /// Proves the ledger: every entry balances, every loan's stored outstanding amounts
    /// equal its lines per account and its installments' due − paid, Σ principal due =
    /// principal, and posted repayments' allocations add up to what the installments
    /// record as paid.
    pub async fn ledger_verify(&self) -> Result<LedgerReport, StoreError> {
        let mut report = LedgerReport::default();
        let r = self.reader();
        report.entries = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM journal_entries")
            .fetch_one(r)
            .await?;
        report.lines = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM journal_lines")
            .fetch_one(r)
            .await?;
        // 1. Entries: balanced, at least one line on each side, lines one-sided.
        for row in sqlx::query(
            "SELECT entry_id, CAST(SUM(debit_fen) AS BIGINT) AS d, CAST(SUM(credit_fen) AS BIGINT) AS c,
                CAST(SUM(CASE WHEN (debit_fen > 0 AND credit_fen = 0) OR (debit_fen = 0 AND credit_fen > 0) THEN 0 ELSE 1 END) AS BIGINT) AS bad
             FROM journal_lines GROUP BY entry_id
             HAVING CAST(SUM(debit_fen) AS BIGINT) <> CAST(SUM(credit_fen) AS BIGINT) OR CAST(SUM(debit_fen) AS BIGINT) = 0
                OR CAST(SUM(CASE WHEN (debit_fen > 0 AND credit_fen = 0) OR (debit_fen = 0 AND credit_fen > 0) THEN 0 ELSE 1 END) AS BIGINT) > 0
             ORDER BY entry_id",
        )
        .fetch_all(r)
        .await?
        {
            let id: i64 = row.try_get("entry_id")?;
            let d: i64 = row.try_get("d")?;
            let c: i64 = row.try_get("c")?;
            report.problem(format!(
                "journal entry {id} does not balance: debits {d} fen, credits {c} fen"
            ));
        }
        for id in sqlx::query_scalar::<_, i64>(
            "SELECT e.id FROM journal_entries e WHERE NOT EXISTS (SELECT 1 FROM journal_lines l WHERE l.entry_id = e.id)
             ORDER BY e.id",
        )
        .fetch_all(r)
        .await?
        {
            report.problem(format!("journal entry {id} has no lines"));
        }
        for row in sqlx::query(
            "SELECT l.id, l.entry_id FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
             WHERE COALESCE(l.loan_id, -1) <> COALESCE(e.loan_id, -1)
                OR COALESCE(l.funder_code, '') <> COALESCE(e.funder_code, '')
             ORDER BY l.id",
        )
        .fetch_all(r)
        .await?
        {
            let id: i64 = row.try_get("id")?;
            let e: i64 = row.try_get("entry_id")?;
            report.problem(format!(
                "journal line {id} names another loan or funder than its entry {e}"
            ));
        }
        // 2. Loans against their lines and installments.
        let mut ledger: HashMap<i64, HashMap<String, i64>> = HashMap::new();
        for row in sqlx::query(
            "SELECT loan_id, account_code, CAST(SUM(debit_fen) AS BIGINT) AS d, CAST(SUM(credit_fen) AS BIGINT) AS c FROM journal_lines
             WHERE loan_id IS NOT NULL GROUP BY loan_id, account_code",
        )
        .fetch_all(r)
        .await?
        {
            let loan: i64 = row.try_get("loan_id")?;
            let acct: String = row.try_get("account_code")?;
            let d: i64 = row.try_get("d")?;
            let c: i64 = row.try_get("c")?;
            ledger.entry(loan).or_default().insert(acct, d - c);
        }
        let mut inst: HashMap<i64, [i64; 9]> = HashMap::new();
        for row in sqlx::query(
            "SELECT loan_id,
                CAST(SUM(principal_due_fen - principal_paid_fen) AS BIGINT) AS p, CAST(SUM(interest_due_fen - interest_paid_fen) AS BIGINT) AS i,
                CAST(SUM(fee_due_fen - fee_paid_fen) AS BIGINT) AS f, CAST(SUM(penalty_accrued_fen - penalty_paid_fen) AS BIGINT) AS n,
                CAST(SUM(principal_due_fen) AS BIGINT) AS pd, CAST(SUM(principal_paid_fen) AS BIGINT) AS pp, CAST(SUM(interest_paid_fen) AS BIGINT) AS ip,
                CAST(SUM(fee_paid_fen) AS BIGINT) AS fp, CAST(SUM(penalty_paid_fen) AS BIGINT) AS np
             FROM loan_installments GROUP BY loan_id",
        )
        .fetch_all(r)
        .await?
        {
            let loan: i64 = row.try_get("loan_id")?;
            let mut v = [0_i64; 9];
            for (k, col) in ["p", "i", "f", "n", "pd", "pp", "ip", "fp", "np"]
                .iter()
                .enumerate()
            {
                v[k] = row.try_get(*col)?;
            }
            inst.insert(loan, v);
        }
        let mut alloc: HashMap<i64, [i64; 4]> = HashMap::new();
        for row in sqlx::query(
            "SELECT r.loan_id, CAST(SUM(a.principal_fen) AS BIGINT) AS p, CAST(SUM(a.interest_fen) AS BIGINT) AS i, CAST(SUM(a.fee_fen) AS BIGINT) AS f,
                CAST(SUM(a.penalty_fen) AS BIGINT) AS n
             FROM repayment_allocations a JOIN repayments r ON r.id = a.repayment_id
             WHERE r.status = 'posted' GROUP BY r.loan_id",
        )
        .fetch_all(r)
        .await?
        {
            let loan: i64 = row.try_get("loan_id")?;
            alloc.insert(
                loan,
                [
                    row.try_get("p")?,
                    row.try_get("i")?,
                    row.try_get("f")?,
                    row.try_get("n")?,
                ],
            );
        }
        for row in sqlx::query(
            "SELECT id FROM repayments WHERE status = 'posted'
               AND amount_fen + credit_used_fen <> principal_fen + interest_fen + fee_fen + penalty_fen + overpaid_fen
             ORDER BY id",
        )
        .fetch_all(r)
        .await?
        {
            let id: i64 = row.try_get("id")?;
            report.problem(format!(
                "repayment {id}: amount and credit used differ from what it paid"
            ));
        }
        let loans = sqlx::query(
            "SELECT id, principal_fen, principal_outstanding_fen, interest_outstanding_fen, fee_outstanding_fen,
                penalty_outstanding_fen, overpaid_fen FROM loans ORDER BY id",
        )
        .fetch_all(r)
        .await?;
        let empty = HashMap::new();
        for row in &loans {
            report.loans += 1;
            let id: i64 = row.try_get("id")?;
            let principal: i64 = row.try_get("principal_fen")?;
            let stored: [i64; 5] = [
                row.try_get("principal_outstanding_fen")?,
                row.try_get("interest_outstanding_fen")?,
                row.try_get("fee_outstanding_fen")?,
                row.try_get("penalty_outstanding_fen")?,
                row.try_get("overpaid_fen")?,
            ];
            let l = ledger.get(&id).unwrap_or(&empty);
            let dc = |code: &str| l.get(code).copied().unwrap_or(0);
            // Assets: debit − credit; the overpayment liability: credit − debit.
            let from_ledger = [
                dc("loan_principal"),
                dc("interest_receivable"),
                dc("fee_receivable"),
                dc("penalty_receivable"),
                -dc("borrower_overpayment"),
            ];
            let i = inst.get(&id).copied().unwrap_or_default();
            let names = ["principal", "interest", "fee", "penalty", "overpaid"];
            for k in 0..5 {
                if stored[k] != from_ledger[k] {
                    report.problem(format!(
                        "loan {id}: {} outstanding is {} fen on the loan but {} fen in its journal lines",
                        names[k], stored[k], from_ledger[k]
                    ));
                }
                if k < 4 && i[k] != from_ledger[k] {
                    report.problem(format!(
                        "loan {id}: {} due − paid over its installments is {} fen but {} fen in its journal lines",
                        names[k], i[k], from_ledger[k]
                    ));
                }
            }
            if i[4] != principal {
                report.problem(format!(
                    "loan {id}: its installments ask for {} fen of principal, the loan is {} fen",
                    i[4], principal
                ));
            }
            let a = alloc.get(&id).copied().unwrap_or_default();
            let paid = [i[5], i[6], i[7], i[8]];
            if a != paid {
                report.problem(format!(
                    "loan {id}: its installments record {paid:?} fen paid (principal, interest, fee, penalty) but its posted repayments allocated {a:?}"
                ));
            }
        }
        Ok(report)
    }
}

fn balance_row(r: &AnyRow, owner: Option<String>) -> Result<BalanceRow, StoreError> {
    Ok(BalanceRow {
        account_code: r.try_get("account_code")?,
        owner,
        debit_fen: r.try_get::<Option<i64>, _>("d")?.unwrap_or(0),
        credit_fen: r.try_get::<Option<i64>, _>("c")?.unwrap_or(0),
    })
}

/// The result of [`Store::ledger_verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    pub entries: i64,
    pub lines: i64,
    pub loans: i64,
    /// Every problem found, each naming the entry, line, repayment or loan (the first
    /// 1,000; `problem_count` counts all).
    pub problems: Vec<String>,
    pub problem_count: usize,
}

impl LedgerReport {
    fn problem(&mut self, p: String) {
        self.problem_count += 1;
        if self.problems.len() < 1000 {
            self.problems.push(p);
        }
    }

    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
}

/// What opening a loan needs from its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationForLoan {
    pub id: i64,
    pub customer_id: i64,
    pub product_code: String,
    pub product_version: i64,
    pub amount_fen: i64,
    pub months: i64,
    pub method: String,
    pub status: String,
    pub funder_code: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
}

/// Reads an application inside the caller's transaction.
pub async fn application_for_loan(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<ApplicationForLoan>, StoreError> {
    let r = sqlx::query(
        "SELECT id, customer_id, product_code, product_version, amount_fen, months, method, status, funder_code,
            owner_user_id, org_unit_id FROM applications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    r.map(|r| {
        Ok(ApplicationForLoan {
            id: r.try_get("id")?,
            customer_id: r.try_get("customer_id")?,
            product_code: r.try_get("product_code")?,
            product_version: r.try_get("product_version")?,
            amount_fen: r.try_get("amount_fen")?,
            months: r.try_get("months")?,
            method: r.try_get("method")?,
            status: r.try_get("status")?,
            funder_code: r.try_get("funder_code")?,
            owner_user_id: r.try_get("owner_user_id")?,
            org_unit_id: r.try_get("org_unit_id")?,
        })
    })
    .transpose()
}
