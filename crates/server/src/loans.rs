//! Loans (issue #8): opened from a disbursed application with its schedule and the
//! balanced disbursement entry; repayments (scheduled, partial, early partial, early
//! full; a third party flagged) allocated by `zhudai_domain::servicing` and posted to the
//! ledger; reversals as mirror entries. Every money-moving request carries an
//! idempotency key claimed first in its transaction, so the same key posts once however
//! often and however concurrently it is sent.

use crate::auth::Caller;
use crate::customers::{audit_draft, scope_of};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use zhudai_domain::ledger::{Account, Entry, EntryBuilder, EntryKind};
use zhudai_domain::money::Fen;
use zhudai_domain::schedule::{LoanTerms, RepaymentMethod};
use zhudai_domain::servicing::{self, Amounts, Installment, RepaymentKind, Request};
use zhudai_store::batch::Batch;
use zhudai_store::loans::{self as st, Claim, InstallmentRow, LoanRow, LoanState};
use zhudai_store::{sqlx, StoreError};

/// A disbursement reported for an approved application.
#[derive(Debug, Clone)]
pub struct Disbursement {
    pub application_id: i64,
    /// Principal actually disbursed, fen.
    pub amount_fen: i64,
    /// Value date.
    pub disbursed_on: chrono::NaiveDate,
    pub funder_code: String,
    pub funder_loan_ref: Option<String>,
}

/// Application statuses from which a loan may be opened.
const OPENABLE: &[&str] = &["approved", "disbursed"];

const DATE: &str = "%Y-%m-%d";

/// Creates the loan for an approved application: its schedule (from the application's
/// product version: method, months, rate, day count, fees), and the balanced
/// disbursement journal entry, inside the caller's transaction. Idempotent per
/// application (a second call returns the same loan id).
pub async fn open_from_application(
    tx: &mut zhudai_store::writer::WriteTx,
    state: &crate::state::AppState,
    d: &Disbursement,
    now_ms: i64,
) -> Result<i64, crate::error::ApiError> {
    if let Some(id) = st::loan_id_by_application(&mut **tx, d.application_id).await? {
        return Ok(id);
    }
    let app = st::application_for_loan(tx, d.application_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no application has id {}", d.application_id)))?;
    if !OPENABLE.contains(&app.status.as_str()) {
        return Err(ApiError::Conflict(format!(
            "application {} is {}; a loan is opened only for an approved application",
            app.id, app.status
        )));
    }
    let mut errors = Vec::new();
    if d.amount_fen <= 0 || d.amount_fen > app.amount_fen {
        errors.push(FieldError::new(
            "amount_fen",
            "out_of_range",
            format!(
                "the disbursed principal must be more than 0 and at most the {} yuan applied for",
                Fen::new(app.amount_fen)
            ),
        ));
    }
    if d.funder_code.trim().is_empty() {
        errors.push(FieldError::new(
            "funder_code",
            "required",
            "name the funder",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let version = state
        .store()
        .product_version_of(&app.product_code, app.product_version)
        .await?
        .ok_or_else(|| ApiError::Internal("product version vanished".into()))?;
    let method = RepaymentMethod::parse(&app.method).map_err(ApiError::internal)?;
    let months = u32::try_from(app.months).map_err(ApiError::internal)?;
    let terms = version
        .spec
        .terms(method, Fen::new(d.amount_fen), months, d.disbursed_on)
        .ok_or_else(|| ApiError::field("months", "out_of_range", "the term is not possible"))?;
    let (schedule, insts) = servicing::opening_installments(&terms)
        .map_err(|e| ApiError::field("amount_fen", e.code(), e.to_string()))?;
    let total = servicing::outstanding(&insts);
    let maturity = insts
        .last()
        .map(|i| i.due_date)
        .unwrap_or(d.disbursed_on)
        .format(DATE)
        .to_string();
    let terms_json = serde_json::to_string(&terms).map_err(ApiError::internal)?;
    let ref_ = uuid::Uuid::now_v7().to_string();
    let disbursed_on = d.disbursed_on.format(DATE).to_string();
    let rate = terms.annual_rate.to_string();
    let penalty = version.spec.penalty_annual_rate().to_string();
    let funder = d.funder_code.trim();
    let inserted = st::loan_insert(
        tx,
        &st::NewLoan {
            ref_: &ref_,
            application_id: app.id,
            customer_id: app.customer_id,
            product_code: &app.product_code,
            product_version: app.product_version,
            funder_code: funder,
            funder_loan_ref: d.funder_loan_ref.as_deref(),
            owner_user_id: app.owner_user_id,
            org_unit_id: app.org_unit_id,
            principal_fen: d.amount_fen,
            annual_rate: &rate,
            penalty_annual_rate: &penalty,
            method: method.code(),
            months: app.months,
            day_count: terms.day_count.code(),
            terms_json: &terms_json,
            disbursed_on: &disbursed_on,
            maturity_date: &maturity,
            interest_outstanding_fen: total.interest,
            fee_outstanding_fen: total.fee,
        },
        now_ms,
    )
    .await?;
    let Some(id) = inserted else {
        // Opened by a concurrent call that committed first.
        return st::loan_id_by_application(&mut **tx, d.application_id)
            .await?
            .ok_or_else(|| ApiError::Conflict("the loan is being opened; try again".into()));
    };
    let dates: Vec<String> = insts
        .iter()
        .map(|i| i.due_date.format(DATE).to_string())
        .collect();
    let rows: Vec<st::NewInstallment> = insts
        .iter()
        .zip(&dates)
        .map(|(i, date)| st::NewInstallment {
            number: i64::from(i.number),
            due_date: date,
            principal_due_fen: i.due.principal,
            interest_due_fen: i.due.interest,
            fee_due_fen: i.due.fee,
        })
        .collect();
    st::installments_insert(tx, id, &rows).await?;
    // A loan recorded after its first due dates (a late report of the disbursement) is
    // overdue from the start; the daily close keeps it current from then on.
    let del = servicing::delinquency(&insts, state.clock().today());
    if del.dpd > 0 {
        let loan = st::loan_get(&mut **tx, id)
            .await?
            .ok_or_else(|| ApiError::Internal("the new loan vanished".into()))?;
        set_state(tx, &loan, &insts, 0, None, state.clock().today(), now_ms).await?;
    }
    let entry = zhudai_domain::ledger::disbursement(
        Fen::new(d.amount_fen),
        Fen::new(total.interest),
        Fen::new(total.fee),
    )
    .map_err(ApiError::internal)?;
    let memo = format!("loan {ref_} disbursed");
    insert_entry(
        tx,
        &entry,
        id,
        funder,
        &disbursed_on,
        None,
        &memo,
        "system",
        now_ms,
    )
    .await?;
    let mut draft = zhudai_store::audit::AuditDraft::new(now_ms, "loan.open", "success")
        .actor("system")
        .target(format!("loan:{id}"))
        .reason(format!(
            "application:{} {} yuan {} months {} funder {} total interest {} fees {}",
            app.id,
            Fen::new(d.amount_fen),
            app.months,
            method.code(),
            funder,
            schedule.total_interest(),
            Fen::new(total.fee)
        ));
    if let Some(rid) = crate::http::request_id::current_request_id() {
        draft = draft.request_id(rid);
    }
    zhudai_store::audit::append(tx, &draft).await?;
    Ok(id)
}

/// Writes an entry's lines with the loan and funder on every line.
#[allow(clippy::too_many_arguments)]
async fn insert_entry(
    conn: &mut sqlx::AnyConnection,
    entry: &Entry,
    loan_id: i64,
    funder: &str,
    business_date: &str,
    reverses: Option<i64>,
    memo: &str,
    by: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let (e, lines) = entry_parts(entry, loan_id, funder, business_date, reverses, memo, by);
    st::entry_insert(conn, &e, &lines, now_ms).await
}

/// A balanced entry as the store's rows: the entry and its lines.
fn entry_parts<'a>(
    entry: &'a Entry,
    loan_id: i64,
    funder: &'a str,
    business_date: &'a str,
    reverses: Option<i64>,
    memo: &'a str,
    by: &'a str,
) -> (st::NewEntry<'a>, Vec<st::NewLine<'a>>) {
    let lines: Vec<st::NewLine> = entry
        .lines()
        .iter()
        .map(|l| (l.account.code(), l.debit_fen(), l.credit_fen()))
        .collect();
    (
        st::NewEntry {
            kind: entry.kind().code(),
            loan_id: Some(loan_id),
            funder_code: Some(funder),
            business_date,
            reverses_entry_id: reverses,
            memo: Some(memo),
            created_by: Some(by),
        },
        lines,
    )
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// Loads a loan inside the caller's data scope (404 unknown, 403 outside).
pub async fn load(state: &AppState, caller: &Caller, id: i64) -> Result<LoanRow, ApiError> {
    let loan = state
        .store()
        .loan(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no loan has id {id}")))?;
    let scope = scope_of(caller, state.store()).await?;
    if !scope.admits(loan.owner_user_id, loan.org_unit_id) {
        return Err(ApiError::Forbidden(
            "this loan is outside your data scope".into(),
        ));
    }
    Ok(loan)
}

/// The frozen terms of a loan.
pub fn terms_of(loan: &LoanRow) -> Result<LoanTerms, ApiError> {
    serde_json::from_str(&loan.terms_json)
        .map_err(|e| ApiError::Internal(format!("loan {}: terms: {e}", loan.id)))
}

fn date(s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, DATE).map_err(|e| ApiError::Internal(format!("date {s}: {e}")))
}

/// The domain view of stored installments.
pub fn domain_installments(rows: &[InstallmentRow]) -> Result<Vec<Installment>, ApiError> {
    rows.iter()
        .map(|r| {
            Ok(Installment {
                number: u32::try_from(r.number).map_err(ApiError::internal)?,
                due_date: date(&r.due_date)?,
                due: Amounts {
                    principal: r.principal_due_fen,
                    interest: r.interest_due_fen,
                    fee: r.fee_due_fen,
                    penalty: r.penalty_accrued_fen,
                },
                paid: Amounts {
                    principal: r.principal_paid_fen,
                    interest: r.interest_paid_fen,
                    fee: r.fee_paid_fen,
                    penalty: r.penalty_paid_fen,
                },
            })
        })
        .collect()
}

/// What the borrower owes now and what settles the loan today.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DueView {
    /// Business date these figures are for.
    pub as_of: String,
    /// Outstanding on installments due by today (penalty included), yuan.
    pub due_now: String,
    /// Early full repayment today, yuan (absent when nothing is left to repay early).
    pub payoff: Option<String>,
}

pub fn due_view(
    loan: &LoanRow,
    rows: &[InstallmentRow],
    today: NaiveDate,
) -> Result<DueView, ApiError> {
    let insts = domain_installments(rows)?;
    let terms = terms_of(loan)?;
    let payoff = servicing::payoff_quote(&insts, &terms, today)
        .ok()
        .map(|q| q.total.to_string());
    Ok(DueView {
        as_of: today.format(DATE).to_string(),
        due_now: servicing::due_now(&insts, today).to_string(),
        payoff,
    })
}

// ---------------------------------------------------------------------------------------
// Repayments
// ---------------------------------------------------------------------------------------

/// A repayment as asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RepaymentInput {
    /// `scheduled`, `partial`, `early_partial` or `early_full`.
    pub kind: String,
    /// Yuan, e.g. `"8884.88"`.
    pub amount: String,
    /// Value date `YYYY-MM-DD`; today when absent.
    #[serde(default)]
    pub value_date: Option<String>,
    /// Who paid.
    pub payer_name: String,
    /// Paid by someone other than the borrower (代还); flagged for AML review.
    #[serde(default)]
    pub third_party: bool,
    /// A third party's relation to the borrower (e.g. 配偶, 亲属, 担保人).
    #[serde(default)]
    pub payer_relation: Option<String>,
    /// `transfer` (default), `withhold` (代扣), `counter`, `funder`.
    #[serde(default)]
    pub channel: Option<String>,
    /// The channel's transaction reference (for reconciliation).
    #[serde(default)]
    pub external_ref: Option<String>,
}

pub const CHANNELS: &[&str] = &["transfer", "withhold", "counter", "funder"];

/// A posted (or reversed) repayment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RepaymentView {
    pub id: i64,
    pub ref_: String,
    pub loan_id: i64,
    pub kind: String,
    /// Yuan.
    pub amount: String,
    pub value_date: String,
    pub payer_name: String,
    pub third_party: bool,
    pub payer_relation: Option<String>,
    pub channel: String,
    pub external_ref: Option<String>,
    /// What it paid, yuan.
    pub principal: String,
    pub interest: String,
    pub fee: String,
    pub penalty: String,
    /// Excess held for the borrower (溢缴款), yuan.
    pub overpaid: String,
    /// Held credit this posting used, yuan.
    pub credit_used: String,
    /// `posted` or `reversed`.
    pub status: String,
    pub entry_id: i64,
    pub reversal_entry_id: Option<i64>,
    pub reversal_reason: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
    /// The loan's status after the posting.
    pub loan_status: String,
}

pub fn repayment_view(r: &st::RepaymentRow, loan_status: &str) -> RepaymentView {
    RepaymentView {
        id: r.id,
        ref_: r.ref_.clone(),
        loan_id: r.loan_id,
        kind: r.kind.clone(),
        amount: Fen::new(r.amount_fen).to_string(),
        value_date: r.value_date.clone(),
        payer_name: r.payer_name.clone(),
        third_party: r.third_party,
        payer_relation: r.payer_relation.clone(),
        channel: r.channel.clone(),
        external_ref: r.external_ref.clone(),
        principal: Fen::new(r.principal_fen).to_string(),
        interest: Fen::new(r.interest_fen).to_string(),
        fee: Fen::new(r.fee_fen).to_string(),
        penalty: Fen::new(r.penalty_fen).to_string(),
        overpaid: Fen::new(r.overpaid_fen).to_string(),
        credit_used: Fen::new(r.credit_used_fen).to_string(),
        status: r.status.clone(),
        entry_id: r.entry_id,
        reversal_entry_id: r.reversal_entry_id,
        reversal_reason: r.reversal_reason.clone(),
        created_by: r.created_by.clone(),
        created_at_ms: r.created_at_ms,
        loan_status: loan_status.to_owned(),
    }
}

/// The result of a money-moving request: the view, and whether it replays an earlier
/// request with the same idempotency key.
#[derive(Debug, Clone)]
pub struct Posted {
    pub view: RepaymentView,
    pub replayed: bool,
}

/// Checks an `Idempotency-Key` value: 1–255 visible ASCII characters.
pub fn check_idempotency_key(key: Option<&str>) -> Result<String, ApiError> {
    match key.map(str::trim) {
        None | Some("") => Err(ApiError::field(
            "Idempotency-Key",
            "required",
            "send an Idempotency-Key header (e.g. a UUID) so a retry cannot post twice",
        )),
        Some(k) if k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ApiError::field(
                "Idempotency-Key",
                "invalid",
                "the Idempotency-Key is 1–255 visible ASCII characters",
            ))
        }
        Some(k) => Ok(k.to_owned()),
    }
}

fn digest(parts: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(parts.to_string().as_bytes()))
}

/// What claiming a key in a transaction decided.
enum Claimed {
    New,
    Replay(RepaymentView),
}

async fn claim(
    tx: &mut zhudai_store::writer::WriteTx,
    scope: &str,
    key: &str,
    digest: &str,
    now_ms: i64,
) -> Result<Claimed, ApiError> {
    claimed(
        st::idempotency_claim(tx, scope, key, digest, now_ms).await?,
        digest,
    )
}

/// What a claim of a key means for the request with `digest`.
fn claimed(claim: Claim, digest: &str) -> Result<Claimed, ApiError> {
    match claim {
        Claim::New => Ok(Claimed::New),
        Claim::Existing {
            request_digest,
            response_body,
            ..
        } => {
            if request_digest != digest {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "reused",
                    "this Idempotency-Key was used for a different request; use a new key",
                ));
            }
            let body = response_body.ok_or_else(|| {
                ApiError::Conflict("the first request with this key is still running".into())
            })?;
            let view = serde_json::from_str(&body).map_err(ApiError::internal)?;
            Ok(Claimed::Replay(view))
        }
    }
}

fn field_errors_of(
    input: &RepaymentInput,
    today: NaiveDate,
) -> (Vec<FieldError>, Option<(RepaymentKind, Fen, NaiveDate)>) {
    let mut errors = Vec::new();
    let kind = RepaymentKind::parse(&input.kind);
    if kind.is_none() {
        errors.push(FieldError::new(
            "kind",
            "unknown",
            "the kind is scheduled, partial, early_partial or early_full",
        ));
    }
    let amount = match Fen::parse(&input.amount) {
        Ok(a) if a.is_positive() => Some(a),
        Ok(_) => {
            errors.push(FieldError::new(
                "amount",
                "not_positive",
                "the amount must be more than 0",
            ));
            None
        }
        Err(e) => {
            errors.push(FieldError::new("amount", e.code(), e.to_string()));
            None
        }
    };
    let value_date = match input
        .value_date
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Some(today),
        Some(s) => match NaiveDate::parse_from_str(s, DATE) {
            Ok(d) if d > today => {
                errors.push(FieldError::new(
                    "value_date",
                    "future",
                    "the value date cannot be after today",
                ));
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(FieldError::new(
                    "value_date",
                    "invalid",
                    "the value date is YYYY-MM-DD",
                ));
                None
            }
        },
    };
    let payer = input.payer_name.trim();
    if payer.is_empty() || payer.chars().count() > 100 {
        errors.push(FieldError::new(
            "payer_name",
            "required",
            "name who paid (1–100 characters)",
        ));
    }
    if input.third_party
        && input
            .payer_relation
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        errors.push(FieldError::new(
            "payer_relation",
            "required",
            "a third-party payment needs the payer's relation to the borrower",
        ));
    }
    if input
        .payer_relation
        .as_deref()
        .is_some_and(|r| r.chars().count() > 50)
    {
        errors.push(FieldError::new(
            "payer_relation",
            "too_long",
            "at most 50 characters",
        ));
    }
    if let Some(c) = input.channel.as_deref().filter(|c| !c.is_empty()) {
        if !CHANNELS.contains(&c) {
            errors.push(FieldError::new(
                "channel",
                "unknown",
                "the channel is transfer, withhold, counter or funder",
            ));
        }
    }
    if input
        .external_ref
        .as_deref()
        .is_some_and(|r| r.chars().count() > 100)
    {
        errors.push(FieldError::new(
            "external_ref",
            "too_long",
            "at most 100 characters",
        ));
    }
    match (kind, amount, value_date, errors.is_empty()) {
        (Some(k), Some(a), Some(d), true) => (errors, Some((k, a, d))),
        _ => (errors, None),
    }
}

/// Posts a repayment on a loan in the caller's scope. The same `key` with the same
/// request returns the first result (`replayed`); with another request it is refused.
pub async fn repay(
    state: &AppState,
    caller: &Caller,
    loan_id: i64,
    key: &str,
    input: &RepaymentInput,
) -> Result<Posted, ApiError> {
    let scope = scope_of(caller, state.store()).await?;
    let today = state.clock().today();
    let (mut errors, parsed) = field_errors_of(input, today);
    let digest = digest(&serde_json::json!({
        "loan_id": loan_id,
        "kind": input.kind.trim(),
        "amount": parsed.map(|p| p.1.as_fen()),
        "amount_text": input.amount.trim(),
        "value_date": input.value_date.as_deref().map(str::trim),
        "payer_name": input.payer_name.trim(),
        "third_party": input.third_party,
        "payer_relation": input.payer_relation.as_deref().map(str::trim),
        "channel": input.channel.as_deref(),
        "external_ref": input.external_ref.as_deref(),
    }));
    // Bad input changes nothing, not even the key.
    let Some((kind, amount, value_date)) = parsed else {
        return Err(ApiError::Validation(errors));
    };
    let now = state.now_ms();
    // Two round trips to the database on SQLite (see `zhudai_store::batch`):
    // (1) BEGIN, claim the key, lock the loan, read its last repayment and installments,
    // the audit chain's head and the ids the journal entry and the repayment will take;
    // (2) the entry and its lines, the repayment and its allocations, the schedule, the
    // loan's state, the audit record, the key's response and COMMIT. The writer is held
    // from the first to the second, so every hand-over between them is time nobody else
    // can write in. (PostgreSQL runs the same statements one by one.)
    let backend = state.store().backend();
    let mut b = Batch::new();
    b.extend(st::idempotency_claim_stmts(
        "loan.repayment",
        key,
        &digest,
        now,
    ));
    b.push(st::loan_lock_stmt(loan_id));
    b.push(st::last_posted_repayment_stmt(loan_id));
    b.push(st::installments_packed_stmt(loan_id, backend));
    b.push(zhudai_store::audit::head_reserve_stmt(backend));
    b.push(st::next_repayment_ids_stmt(backend));
    let (mut tx, r) = state.store().begin_with(b).await?;
    // The loan is checked once locked (a dropped transaction undoes the claim).
    let loan = st::loan_from_rows(&r[2])?
        .ok_or_else(|| ApiError::NotFound(format!("no loan has id {loan_id}")))?;
    if !scope.admits(loan.owner_user_id, loan.org_unit_id) {
        return Err(ApiError::Forbidden(
            "this loan is outside your data scope".into(),
        ));
    }
    if let Claimed::Replay(view) = claimed(st::claim_from_rows(&r[0], &r[1])?, &digest)? {
        tx.rollback().await?;
        return Ok(Posted {
            view,
            replayed: true,
        });
    }
    let disbursed = date(&loan.disbursed_on)?;
    if value_date < disbursed {
        errors.push(FieldError::new(
            "value_date",
            "before_disbursement",
            format!("the loan was disbursed on {disbursed}"),
        ));
    }
    if let Some(last) = st::repayment_from_rows(&r[3])? {
        if value_date.format(DATE).to_string() < last.value_date {
            errors.push(FieldError::new(
                "value_date",
                "before_last_repayment",
                format!(
                    "a later repayment (value date {}) is already posted; reverse it first or use a later date",
                    last.value_date
                ),
            ));
        }
    }
    if loan.status == "written_off" {
        return Err(ApiError::Conflict("the loan is written off".into()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows = st::installments_from_packed(&r[4])?;
    // Daily close (issue #8 items 3–7): the loan is brought up to the day before the
    // value date (penalty interest, days past due, tier, bucket) so the repayment never
    // meets it stale. A loan closed through that day already, or one the close would not
    // touch (current, nothing due before that day: most of a book), is left as it is
    // without running the close's statements.
    let stale = value_date
        .pred_opt()
        .is_some_and(|through| zhudai_store::cob::loan_needs_close(&loan, &rows, through));
    let reserved = (r[5].as_slice(), r[6].as_slice());
    let reread;
    let ((loan, rows), (head, ids)) = if stale
        && crate::cob::close_before(
            &mut tx,
            state,
            loan.id,
            loan.last_closed_on.as_deref(),
            value_date,
        )
        .await?
        .loans_closed
            > 0
    {
        // The close wrote journal entries and audit records: the head and the next
        // ids are read again with the loan.
        let mut b = Batch::new();
        b.push(st::loan_lock_stmt(loan.id));
        b.push(st::installments_of_stmt(loan.id));
        b.push(zhudai_store::audit::head_reserve_stmt(backend));
        b.push(st::next_repayment_ids_stmt(backend));
        reread = b.run(&mut tx).await?;
        let loan = st::loan_from_rows(&reread[0])?
            .ok_or_else(|| ApiError::NotFound(format!("no loan has id {loan_id}")))?;
        (
            (loan, st::installments_from_rows(&reread[1])?),
            (reread[2].as_slice(), reread[3].as_slice()),
        )
    } else {
        ((loan, rows), reserved)
    };
    let (entry_id, rid) = st::next_repayment_ids_from_rows(ids)?;
    let insts = domain_installments(&rows)?;
    let terms = terms_of(&loan)?;
    let posting = servicing::post(
        &insts,
        &terms,
        &state.settings().repayment_order,
        &Request {
            kind,
            cash: amount,
            credit: Fen::new(loan.overpaid_fen),
            value_date,
        },
    )
    .map_err(|e| ApiError::field(e.field(), e.code(), e.to_string()))?;
    let entry = posting.entry().map_err(ApiError::internal)?;
    let vd = value_date.format(DATE).to_string();
    let rref = uuid::Uuid::now_v7().to_string();
    let memo = format!("repayment {rref} ({})", kind.code());
    let (new_entry, lines) = entry_parts(
        &entry,
        loan.id,
        &loan.funder_code,
        &vd,
        None,
        &memo,
        &caller.username,
    );
    let prior = serde_json::json!({
        "status": loan.status,
        "dpd": loan.dpd,
        "overdue_since": loan.overdue_since,
        "closed_on": loan.closed_on,
        "overpaid_fen": loan.overpaid_fen,
    })
    .to_string();
    let channel = input
        .channel
        .as_deref()
        .filter(|c| !c.is_empty())
        .unwrap_or("transfer");
    let relation = input
        .payer_relation
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let external = input
        .external_ref
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let new = st::NewRepayment {
        ref_: &rref,
        loan_id: loan.id,
        kind: kind.code(),
        amount_fen: amount.as_fen(),
        value_date: &vd,
        payer_name: input.payer_name.trim(),
        third_party: input.third_party,
        payer_relation: relation,
        channel,
        external_ref: external,
        principal_fen: posting.paid.principal,
        interest_fen: posting.paid.interest,
        fee_fen: posting.paid.fee,
        penalty_fen: posting.paid.penalty,
        overpaid_fen: posting.overpaid.as_fen(),
        credit_used_fen: posting.credit_used.as_fen(),
        prior_state: &prior,
        created_by: &caller.username,
    };
    let row = new.row(rid, entry_id, now);
    let mut updated = Vec::with_capacity(posting.changes.len());
    for ch in &posting.changes {
        let old = rows
            .get(ch.index)
            .ok_or_else(|| ApiError::Internal("posting names an unknown installment".into()))?;
        let after = posting
            .after
            .get(ch.index)
            .ok_or_else(|| ApiError::Internal("posting names an unknown installment".into()))?;
        let mut row = old.clone();
        row.principal_due_fen = after.due.principal;
        row.interest_due_fen = after.due.interest;
        row.fee_due_fen = after.due.fee;
        row.principal_paid_fen = after.paid.principal;
        row.interest_paid_fen = after.paid.interest;
        row.fee_paid_fen = after.paid.fee;
        row.penalty_paid_fen = after.paid.penalty;
        if ch.settles {
            row.settled_on = Some(vd.clone());
        }
        updated.push(row);
    }
    let overpaid = loan.overpaid_fen + posting.overpaid.as_fen() - posting.credit_used.as_fen();
    let (state_stmt, status) = loan_state_stmt(
        &loan,
        &posting.after,
        overpaid,
        posting.paid_off.then_some(vd.as_str()),
        today,
        now,
    );
    let allocations: Vec<st::AllocationRow> = posting
        .changes
        .iter()
        .filter_map(|ch| rows.get(ch.index).map(|old| (ch, old)))
        .map(|(ch, old)| st::AllocationRow {
            id: 0,
            repayment_id: rid,
            installment_id: old.id,
            principal_fen: ch.paid.principal,
            interest_fen: ch.paid.interest,
            fee_fen: ch.paid.fee,
            penalty_fen: ch.paid.penalty,
            old_principal_due_fen: ch.new_due.map(|_| old.principal_due_fen),
            old_interest_due_fen: ch.new_due.map(|_| old.interest_due_fen),
            old_fee_due_fen: ch.new_due.map(|_| old.fee_due_fen),
            old_settled_on: old.settled_on.clone(),
        })
        .collect();
    let record = zhudai_store::audit::seal_after(
        head,
        &audit_draft(caller, now, "loan.repayment", format!("loan:{}", loan.id)).reason(format!(
            "repayment:{rid} {} {} yuan value {} payer {}{}",
            kind.code(),
            amount,
            vd,
            input.payer_name.trim(),
            if input.third_party {
                " (third party)"
            } else {
                ""
            }
        )),
    )?;
    let view = repayment_view(&row, status);
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    // (2) Entry, lines, repayment, allocations, schedule, loan, audit record, the key's
    // response, COMMIT.
    let mut b = Batch::new();
    b.push(st::entry_stmt_with_id(entry_id, &new_entry, now));
    b.extend(st::lines_stmts(entry_id, &new_entry, &lines));
    b.push(st::repayment_insert_with_id_stmt(&row));
    b.extend(st::allocations_insert_stmts(&allocations));
    b.extend(st::installments_update_stmts(&updated));
    b.push(state_stmt);
    b.extend(zhudai_store::audit::record_stmts(&record));
    b.push(st::idempotency_complete_stmt(
        "loan.repayment",
        key,
        201,
        &body,
        Some(&format!("repayment:{rid}")),
    ));
    tx.commit_with(b).await?;
    Ok(Posted {
        view,
        replayed: false,
    })
}

/// Stores the loan's balances from its installments, its days past due as of `today`,
/// and its status; returns the status.
async fn set_state(
    conn: &mut sqlx::AnyConnection,
    loan: &LoanRow,
    after: &[Installment],
    overpaid: i64,
    closed_on: Option<&str>,
    today: NaiveDate,
    now: i64,
) -> Result<&'static str, ApiError> {
    let (stmt, status) = loan_state_stmt(loan, after, overpaid, closed_on, today, now);
    stmt.fetch_all(conn).await?;
    Ok(status)
}

/// [`set_state`] as a statement, with the status it stores.
fn loan_state_stmt(
    loan: &LoanRow,
    after: &[Installment],
    overpaid: i64,
    closed_on: Option<&str>,
    today: NaiveDate,
    now: i64,
) -> (zhudai_store::batch::Stmt, &'static str) {
    let out = servicing::outstanding(after);
    let paid_off = after.iter().all(Installment::is_settled);
    let del = servicing::delinquency(after, today);
    let status = if paid_off {
        "paid_off"
    } else if del.dpd > 0 {
        "overdue"
    } else {
        "active"
    };
    let since = del.overdue_since.map(|d| d.format(DATE).to_string());
    let stmt = st::loan_set_state_stmt(
        loan.id,
        &LoanState {
            status,
            principal_outstanding_fen: out.principal,
            interest_outstanding_fen: out.interest,
            fee_outstanding_fen: out.fee,
            penalty_outstanding_fen: out.penalty,
            overpaid_fen: overpaid,
            dpd: i64::from(del.dpd),
            overdue_since: since.as_deref(),
            closed_on: if paid_off { closed_on } else { None },
        },
        now,
    );
    (stmt, status)
}

/// Reverses the newest posted repayment of a loan: the mirror entry of its journal
/// entry, the installments and the schedule as they were, the row marked reversed.
pub async fn reverse(
    state: &AppState,
    caller: &Caller,
    loan_id: i64,
    repayment_id: i64,
    key: &str,
    reason: &str,
) -> Result<Posted, ApiError> {
    let loan = load(state, caller, loan_id).await?;
    let reason = reason.trim();
    let digest = digest(&serde_json::json!({
        "loan_id": loan_id,
        "repayment_id": repayment_id,
        "reason": reason,
    }));
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::field(
            "reason",
            "required",
            "say why the repayment is reversed (1–500 characters)",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if let Claimed::Replay(view) = claim(&mut tx, "loan.reversal", key, &digest, now).await? {
        tx.rollback().await?;
        return Ok(Posted {
            view,
            replayed: true,
        });
    }
    let loan = st::loan_lock(&mut tx, loan.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no loan has id {loan_id}")))?;
    let r = st::repayment_get(&mut *tx, repayment_id)
        .await?
        .filter(|r| r.loan_id == loan.id)
        .ok_or_else(|| {
            ApiError::NotFound(format!("loan {loan_id} has no repayment {repayment_id}"))
        })?;
    if r.status != "posted" {
        return Err(ApiError::Conflict(
            "the repayment is already reversed".into(),
        ));
    }
    let last = st::last_posted_repayment(&mut *tx, loan.id).await?;
    if last.as_ref().map(|l| l.id) != Some(r.id) {
        return Err(ApiError::Conflict(
            "only the newest posted repayment can be reversed; reverse the later ones first".into(),
        ));
    }
    let lines = st::lines_of_entry(&mut *tx, r.entry_id).await?;
    let mut b = EntryBuilder::new(EntryKind::Reversal);
    for l in &lines {
        let account = Account::parse(&l.account_code)
            .ok_or_else(|| ApiError::Internal(format!("unknown account {}", l.account_code)))?;
        // The mirror: each debit becomes a credit and the other way round.
        b = b
            .credit(account, Fen::new(l.debit_fen))
            .debit(account, Fen::new(l.credit_fen));
    }
    let entry = b.build().map_err(ApiError::internal)?;
    let today = state.clock().today();
    let td = today.format(DATE).to_string();
    let entry_id = insert_entry(
        &mut tx,
        &entry,
        loan.id,
        &loan.funder_code,
        &td,
        Some(r.entry_id),
        &format!("reversal of repayment {}: {reason}", r.ref_),
        &caller.username,
        now,
    )
    .await?;
    let allocations = st::allocations_of(&mut *tx, r.id).await?;
    let mut rows = st::installments_of(&mut *tx, loan.id).await?;
    for a in &allocations {
        let row = rows
            .iter_mut()
            .find(|i| i.id == a.installment_id)
            .ok_or_else(|| ApiError::Internal("allocated installment vanished".into()))?;
        row.principal_paid_fen -= a.principal_fen;
        row.interest_paid_fen -= a.interest_fen;
        row.fee_paid_fen -= a.fee_fen;
        row.penalty_paid_fen -= a.penalty_fen;
        if let Some(v) = a.old_principal_due_fen {
            row.principal_due_fen = v;
        }
        if let Some(v) = a.old_interest_due_fen {
            row.interest_due_fen = v;
        }
        if let Some(v) = a.old_fee_due_fen {
            row.fee_due_fen = v;
        }
        row.settled_on = a.old_settled_on.clone();
    }
    let touched: Vec<st::InstallmentRow> = rows
        .iter()
        .filter(|i| allocations.iter().any(|a| a.installment_id == i.id))
        .cloned()
        .collect();
    st::installments_update_many(&mut tx, &touched).await?;
    if !st::repayment_mark_reversed(&mut tx, r.id, entry_id, reason, &caller.username, now).await? {
        return Err(ApiError::Conflict(
            "the repayment is already reversed".into(),
        ));
    }
    let insts = domain_installments(&rows)?;
    let overpaid = loan.overpaid_fen - r.overpaid_fen + r.credit_used_fen;
    let status = set_state(&mut tx, &loan, &insts, overpaid, None, today, now).await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "loan.repayment.reverse",
            format!("loan:{}", loan.id),
        )
        .reason(format!("repayment:{} reversed: {reason}", r.id)),
    )
    .await?;
    let row = st::repayment_get(&mut *tx, r.id)
        .await?
        .ok_or_else(|| ApiError::Internal("repayment vanished".into()))?;
    let view = repayment_view(&row, status);
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    st::idempotency_complete(
        &mut tx,
        "loan.reversal",
        key,
        200,
        &body,
        Some(&format!("repayment:{}", r.id)),
    )
    .await?;
    tx.commit().await?;
    Ok(Posted {
        view,
        replayed: false,
    })
}
