//! Loans and the ledger (issue #8): `/api/v1/loans…` and `/api/v1/ledger…`. Reading
//! needs `loan.read` and the loan inside the caller's data scope; posting a repayment
//! `loan.repay`; reversing one `loan.reverse`; book-wide balances `ledger.read`. Money-moving
//! requests require an `Idempotency-Key` header: the same key posts once and every repeat
//! gets the first answer (with `Idempotent-Replayed: true`).

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::loans::{self as svc, DueView, RepaymentInput, RepaymentView};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::ledger::Account;
use zhudai_domain::money::Fen;
use zhudai_store::loans::{BalanceRow, LoanFilter, LoanRow};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoanView {
    pub id: i64,
    pub ref_: String,
    pub application_id: i64,
    pub customer_id: i64,
    pub product_code: String,
    pub product_version: i64,
    pub funder_code: String,
    pub funder_loan_ref: Option<String>,
    /// Yuan.
    pub principal: String,
    pub annual_rate: String,
    pub penalty_annual_rate: String,
    pub method: String,
    pub months: i64,
    pub day_count: String,
    pub disbursed_on: String,
    pub maturity_date: String,
    /// `active`, `overdue`, `paid_off`, `written_off`.
    pub status: String,
    pub principal_outstanding: String,
    pub interest_outstanding: String,
    pub fee_outstanding: String,
    pub penalty_outstanding: String,
    /// Credit held for the borrower (溢缴款).
    pub overpaid: String,
    pub dpd: i64,
    pub overdue_since: Option<String>,
    /// 五级分类: `normal`, `special_mention`, `substandard`, `doubtful`, `loss`.
    pub classification: String,
    /// `M0` … `M6+`.
    pub collection_bucket: String,
    pub last_closed_on: Option<String>,
    pub closed_on: Option<String>,
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub created_at_ms: i64,
}

pub fn loan_view(l: &LoanRow) -> LoanView {
    LoanView {
        id: l.id,
        ref_: l.ref_.clone(),
        application_id: l.application_id,
        customer_id: l.customer_id,
        product_code: l.product_code.clone(),
        product_version: l.product_version,
        funder_code: l.funder_code.clone(),
        funder_loan_ref: l.funder_loan_ref.clone(),
        principal: Fen::new(l.principal_fen).to_string(),
        annual_rate: l.annual_rate.clone(),
        penalty_annual_rate: l.penalty_annual_rate.clone(),
        method: l.method.clone(),
        months: l.months,
        day_count: l.day_count.clone(),
        disbursed_on: l.disbursed_on.clone(),
        maturity_date: l.maturity_date.clone(),
        status: l.status.clone(),
        principal_outstanding: Fen::new(l.principal_outstanding_fen).to_string(),
        interest_outstanding: Fen::new(l.interest_outstanding_fen).to_string(),
        fee_outstanding: Fen::new(l.fee_outstanding_fen).to_string(),
        penalty_outstanding: Fen::new(l.penalty_outstanding_fen).to_string(),
        overpaid: Fen::new(l.overpaid_fen).to_string(),
        dpd: l.dpd,
        overdue_since: l.overdue_since.clone(),
        classification: l.classification.clone(),
        collection_bucket: l.collection_bucket.clone(),
        last_closed_on: l.last_closed_on.clone(),
        closed_on: l.closed_on.clone(),
        owner_user_id: l.owner_user_id,
        org_unit_id: l.org_unit_id,
        created_at_ms: l.created_at_ms,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoanSearch {
    /// `active`, `overdue`, `paid_off`, `written_off`.
    pub status: Option<String>,
    pub funder_code: Option<String>,
    pub product_code: Option<String>,
    pub customer_id: Option<i64>,
    pub classification: Option<String>,
    /// Only loans at least this many days past due.
    pub min_dpd: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoanPage {
    pub total: i64,
    pub items: Vec<LoanView>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub const STATUSES: &[&str] = &["active", "overdue", "paid_off", "written_off"];

/// Checks the list filters (each bad one named).
pub fn filter_of(q: &LoanSearch) -> Result<(LoanFilter<'_>, i64, i64), ApiError> {
    let mut errors = Vec::new();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        errors.push(crate::error::FieldError::new(
            "limit",
            "out_of_range",
            "limit is 1–500",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        errors.push(crate::error::FieldError::new(
            "offset",
            "out_of_range",
            "offset is 0 or more",
        ));
    }
    let status = nonempty(&q.status);
    if status.is_some_and(|s| !STATUSES.contains(&s)) {
        errors.push(crate::error::FieldError::new(
            "status",
            "unknown",
            "status is active, overdue, paid_off or written_off",
        ));
    }
    let classification = nonempty(&q.classification);
    if classification.is_some_and(|c| zhudai_domain::FiveTierClass::parse(c).is_err()) {
        errors.push(crate::error::FieldError::new(
            "classification",
            "unknown",
            "classification is normal, special_mention, substandard, doubtful or loss",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok((
        LoanFilter {
            status,
            funder_code: nonempty(&q.funder_code),
            product_code: nonempty(&q.product_code),
            customer_id: q.customer_id,
            classification,
            min_dpd: q.min_dpd,
        },
        offset,
        limit,
    ))
}

/// Loans inside the caller's data scope, newest first.
#[utoipa::path(get, path = "/api/v1/loans", tag = "loans", operation_id = "loans_list",
    params(LoanSearch), responses((status = 200, body = LoanPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LoanSearch>,
) -> ApiResult<ApiJson<LoanPage>> {
    let (f, offset, limit) = filter_of(&q)?;
    let scope = crate::customers::scope_of(&caller, state.store()).await?;
    let (rows, total) = state.store().loans(&scope, &f, offset, limit).await?;
    Ok(ApiJson(LoanPage {
        total,
        items: rows.iter().map(loan_view).collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstallmentView {
    /// 0 = the upfront fee.
    pub number: i64,
    pub due_date: String,
    pub principal_due: String,
    pub interest_due: String,
    pub fee_due: String,
    pub penalty_accrued: String,
    pub principal_paid: String,
    pub interest_paid: String,
    pub fee_paid: String,
    pub penalty_paid: String,
    /// Still to pay on it.
    pub outstanding: String,
    pub settled_on: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    pub account: String,
    pub debit: String,
    pub credit: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub id: i64,
    pub kind: String,
    pub business_date: String,
    pub reverses_entry_id: Option<i64>,
    pub memo: Option<String>,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub lines: Vec<LineView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    pub account: String,
    pub account_number: String,
    pub account_name: String,
    /// The loan id or funder code, when the balance is of one.
    pub owner: Option<String>,
    pub debit: String,
    pub credit: String,
    /// On the account's normal side (an asset owed to us, a liability we owe).
    pub balance: String,
}

pub fn balance_view(b: &BalanceRow) -> BalanceView {
    let account = Account::parse(&b.account_code);
    BalanceView {
        account: b.account_code.clone(),
        account_number: account.map(|a| a.number().to_owned()).unwrap_or_default(),
        account_name: account.map(|a| a.zh_name().to_owned()).unwrap_or_default(),
        owner: b.owner.clone(),
        debit: Fen::new(b.debit_fen).to_string(),
        credit: Fen::new(b.credit_fen).to_string(),
        balance: Fen::new(account.map_or(b.debit_fen - b.credit_fen, |a| {
            a.balance(b.debit_fen, b.credit_fen)
        }))
        .to_string(),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoanDetail {
    #[serde(flatten)]
    pub loan: LoanView,
    pub due: DueView,
    pub schedule: Vec<InstallmentView>,
    pub repayments: Vec<RepaymentView>,
    pub journal: Vec<EntryView>,
    pub balances: Vec<BalanceView>,
}

/// Everything about one loan, for the API and the loan page.
pub async fn detail(state: &AppState, loan: LoanRow) -> Result<LoanDetail, ApiError> {
    let store = state.store();
    let rows = store.loan_installments(loan.id).await?;
    let due = svc::due_view(&loan, &rows, state.clock().today())?;
    let schedule = rows
        .iter()
        .map(|i| InstallmentView {
            number: i.number,
            due_date: i.due_date.clone(),
            principal_due: Fen::new(i.principal_due_fen).to_string(),
            interest_due: Fen::new(i.interest_due_fen).to_string(),
            fee_due: Fen::new(i.fee_due_fen).to_string(),
            penalty_accrued: Fen::new(i.penalty_accrued_fen).to_string(),
            principal_paid: Fen::new(i.principal_paid_fen).to_string(),
            interest_paid: Fen::new(i.interest_paid_fen).to_string(),
            fee_paid: Fen::new(i.fee_paid_fen).to_string(),
            penalty_paid: Fen::new(i.penalty_paid_fen).to_string(),
            outstanding: Fen::new(
                i.principal_due_fen + i.interest_due_fen + i.fee_due_fen + i.penalty_accrued_fen
                    - i.principal_paid_fen
                    - i.interest_paid_fen
                    - i.fee_paid_fen
                    - i.penalty_paid_fen,
            )
            .to_string(),
            settled_on: i.settled_on.clone(),
        })
        .collect();
    let repayments = store
        .loan_repayments(loan.id)
        .await?
        .iter()
        .map(|r| svc::repayment_view(r, &loan.status))
        .collect();
    let journal = store
        .loan_journal(loan.id)
        .await?
        .into_iter()
        .map(|(e, lines)| EntryView {
            id: e.id,
            kind: e.kind,
            business_date: e.business_date,
            reverses_entry_id: e.reverses_entry_id,
            memo: e.memo,
            created_by: e.created_by,
            created_at_ms: e.created_at_ms,
            lines: lines
                .iter()
                .map(|l| LineView {
                    account: l.account_code.clone(),
                    debit: Fen::new(l.debit_fen).to_string(),
                    credit: Fen::new(l.credit_fen).to_string(),
                })
                .collect(),
        })
        .collect();
    let balances = store
        .ledger_balances_of_loan(loan.id)
        .await?
        .iter()
        .map(balance_view)
        .collect();
    Ok(LoanDetail {
        loan: loan_view(&loan),
        due,
        schedule,
        repayments,
        journal,
        balances,
    })
}

/// One loan: its schedule, repayments, journal entries and balances.
#[utoipa::path(get, path = "/api/v1/loans/{id}", tag = "loans", operation_id = "loans_get",
    params(("id" = i64, Path)),
    responses((status = 200, body = LoanDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<LoanDetail>> {
    let loan = svc::load(&state, &caller, id).await?;
    Ok(ApiJson(detail(&state, loan).await?))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::field(
                "Idempotency-Key",
                "invalid",
                "the Idempotency-Key is 1–255 visible ASCII characters",
            )
        })?),
    };
    svc::check_idempotency_key(raw)
}

fn posted_response(p: svc::Posted, status: StatusCode) -> Response {
    let replayed = p.replayed;
    let mut r = (status, axum::Json(p.view)).into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    // A replay wrote nothing, and the first request recorded its own audit record.
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

/// Post a repayment. The `Idempotency-Key` header is required: a repeat with the same
/// key and body returns the first result without posting again (header
/// `Idempotent-Replayed: true`); the same key with another body is refused.
#[utoipa::path(post, path = "/api/v1/loans/{id}/repayments", tag = "loans", operation_id = "loans_repay",
    params(("id" = i64, Path),
        ("Idempotency-Key" = String, Header, description = "A unique key per repayment (e.g. a UUID); retries reuse it")),
    request_body = RepaymentInput,
    responses((status = 201, body = RepaymentView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Each bad field named; `Idempotency-Key` missing or reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn repay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<RepaymentInput>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let p = svc::repay(&state, &caller, id, &key, &b).await?;
    Ok(posted_response(p, StatusCode::CREATED))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReversalRequest {
    /// Why (required).
    pub reason: String,
}

/// Reverse the newest posted repayment of a loan: a mirror journal entry, never a
/// deletion. Requires an `Idempotency-Key` header like a repayment.
#[utoipa::path(post, path = "/api/v1/loans/{id}/repayments/{rid}/reversal", tag = "loans", operation_id = "loans_reverse",
    params(("id" = i64, Path), ("rid" = i64, Path),
        ("Idempotency-Key" = String, Header, description = "A unique key per reversal")),
    request_body = ReversalRequest,
    responses((status = 200, body = RepaymentView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already reversed, or not the newest posted repayment", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reverse(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, rid)): Path<(i64, i64)>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<ReversalRequest>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let p = svc::reverse(&state, &caller, id, rid, &key, &b.reason).await?;
    Ok(posted_response(p, StatusCode::OK))
}

/// Balances per account of one loan.
#[utoipa::path(get, path = "/api/v1/loans/{id}/balances", tag = "loans", operation_id = "loans_balances",
    params(("id" = i64, Path)), responses((status = 200, body = [BalanceView])))]
pub async fn loan_balances(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<Vec<BalanceView>>> {
    let loan = svc::load(&state, &caller, id).await?;
    let rows = state.store().ledger_balances_of_loan(loan.id).await?;
    Ok(ApiJson(rows.iter().map(balance_view).collect()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub code: String,
    pub number: String,
    pub name_zh: String,
    pub name_en: String,
    pub kind: String,
    pub normal_side: String,
    /// Balance over the whole book, yuan.
    pub balance: String,
}

/// The chart of accounts with each account's balance over the whole book.
#[utoipa::path(get, path = "/api/v1/ledger/accounts", tag = "loans", operation_id = "ledger_accounts",
    responses((status = 200, body = [AccountView])))]
pub async fn accounts(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<AccountView>>> {
    let balances = state.store().ledger_balances_by_account().await?;
    let chart = state.store().ledger_accounts().await?;
    Ok(ApiJson(
        chart
            .into_iter()
            .map(|(code, number, name_zh, name_en, kind, normal_side)| {
                let b = balances.iter().find(|b| b.account_code == code);
                let (d, c) = b.map_or((0, 0), |b| (b.debit_fen, b.credit_fen));
                let bal = Account::parse(&code).map_or(d - c, |a| a.balance(d, c));
                AccountView {
                    code,
                    number,
                    name_zh,
                    name_en,
                    kind,
                    normal_side,
                    balance: Fen::new(bal).to_string(),
                }
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunderQuery {
    /// One funder only.
    pub funder_code: Option<String>,
}

/// Balances per funder and account.
#[utoipa::path(get, path = "/api/v1/ledger/funders", tag = "loans", operation_id = "ledger_funders",
    params(FunderQuery), responses((status = 200, body = [BalanceView])))]
pub async fn funders(
    State(state): State<AppState>,
    Query(q): Query<FunderQuery>,
) -> ApiResult<ApiJson<Vec<BalanceView>>> {
    let f = q
        .funder_code
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let rows = state.store().ledger_balances_by_funder(f).await?;
    Ok(ApiJson(rows.iter().map(balance_view).collect()))
}
