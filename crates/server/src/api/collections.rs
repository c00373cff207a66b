//! Collections (issue #8 item 4): `/api/v1/collections…`. Reading needs
//! `collection.read` (and the case in the caller's view: an `own` scope sees the cases
//! assigned to it); logging a contact `collection.work`; assigning to a collector or an
//! agency `collection.assign`; closing a case and agency commission rates
//! `collection.manage`.

use crate::auth::{AuditNote, Caller};
use crate::collections::{self as svc, ContactInput};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::money::Fen;
use zhudai_store::collections::{Assignee, AssignmentRow, CaseFilter, CaseRow, ContactRow};

fn recorded<T: IntoResponse>(v: T) -> Response {
    let mut r = v.into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaseView {
    pub id: i64,
    pub loan_id: i64,
    pub loan_ref: String,
    pub customer_id: i64,
    pub customer_name: String,
    /// `M1` … `M6+` (`M0` only on a closed case).
    pub bucket: String,
    /// `open` or `closed`.
    pub state: String,
    pub opened_on: String,
    pub assignee_user_id: Option<i64>,
    pub assignee_name: Option<String>,
    /// The agency working it now.
    pub agency_code: Option<String>,
    /// The latest promise to pay (yuan).
    pub promised_amount: Option<String>,
    pub promised_date: Option<String>,
    pub contacts: i64,
    pub last_contact_at_ms: Option<i64>,
    pub closed_on: Option<String>,
    /// `cured`, `paid_off`, `written_off`, `guarantee_paid`, `other`.
    pub close_reason: Option<String>,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
    pub version: i64,
    pub dpd: i64,
    pub principal_outstanding: String,
    pub penalty_outstanding: String,
    pub funder_code: String,
}

pub fn case_view(c: CaseRow) -> CaseView {
    CaseView {
        id: c.id,
        loan_id: c.loan_id,
        loan_ref: c.loan_ref,
        customer_id: c.customer_id,
        customer_name: c.customer_name,
        bucket: c.bucket,
        state: c.state,
        opened_on: c.opened_on,
        assignee_user_id: c.assignee_user_id,
        assignee_name: c.assignee_name,
        agency_code: c.agency_code,
        promised_amount: c.promised_amount_fen.map(|f| Fen::new(f).to_string()),
        promised_date: c.promised_date,
        contacts: c.contacts,
        last_contact_at_ms: c.last_contact_at_ms,
        closed_on: c.closed_on,
        close_reason: c.close_reason,
        closed_by: c.closed_by,
        close_note: c.close_note,
        version: c.version,
        dpd: c.dpd,
        principal_outstanding: Fen::new(c.principal_outstanding_fen).to_string(),
        penalty_outstanding: Fen::new(c.penalty_outstanding_fen).to_string(),
        funder_code: c.funder_code,
    }
}

#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct CaseSearch {
    /// `open` (default) or `closed`.
    pub state: Option<String>,
    /// `M1` … `M6+`.
    pub bucket: Option<String>,
    /// `me`, `none` (unassigned) or a user id.
    pub assignee: Option<String>,
    pub agency: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CasePage {
    pub total: i64,
    pub cases: Vec<CaseView>,
    /// Open cases in the caller's view per bucket.
    pub open_by_bucket: Vec<BucketCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketCount {
    pub bucket: String,
    pub cases: i64,
}

/// Builds the queue filter of a search for the caller.
pub async fn filter_of(
    state: &AppState,
    caller: &Caller,
    q: &CaseSearch,
) -> Result<CaseFilter, ApiError> {
    let st = q.state.clone().unwrap_or_else(|| "open".into());
    if !matches!(st.as_str(), "open" | "closed") {
        return Err(ApiError::field("state", "invalid", "open or closed"));
    }
    let bucket = q.bucket.clone().filter(|b| !b.is_empty());
    if let Some(b) = &bucket {
        if zhudai_domain::classify::CollectionBucket::parse(b).is_none() {
            return Err(ApiError::field("bucket", "invalid", "M1 … M6+"));
        }
    }
    let assignee = match q.assignee.as_deref().map(str::trim).unwrap_or("") {
        "" | "any" => Assignee::Any,
        "me" => Assignee::User(caller.user_id),
        "none" => Assignee::Unassigned,
        other => Assignee::User(
            other
                .parse()
                .map_err(|_| ApiError::field("assignee", "invalid", "me, none or a user id"))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–500"));
    }
    Ok(CaseFilter {
        scope: svc::scope_of(state, caller).await?,
        state: st,
        bucket,
        assignee,
        agency: q.agency.clone().filter(|a| !a.is_empty()),
        limit,
        offset: q.offset.unwrap_or(0).max(0),
    })
}

/// The work queue: cases in the caller's view, most days past due first.
#[utoipa::path(get, path = "/api/v1/collections/cases", tag = "collections", operation_id = "collection_cases",
    params(CaseSearch), responses((status = 200, body = CasePage)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CaseSearch>,
) -> ApiResult<ApiJson<CasePage>> {
    let f = filter_of(&state, &caller, &q).await?;
    let (rows, total) = state.store().cases(&f).await?;
    let counts = state.store().case_counts(&f.scope).await?;
    Ok(ApiJson(CasePage {
        total,
        cases: rows.into_iter().map(case_view).collect(),
        open_by_bucket: counts
            .into_iter()
            .map(|(bucket, cases)| BucketCount { bucket, cases })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub id: i64,
    pub at_ms: i64,
    pub local_date: String,
    pub channel: String,
    pub outcome: String,
    pub promised_amount: Option<String>,
    pub promised_date: Option<String>,
    pub note: Option<String>,
    pub user_name: String,
    pub agency_code: Option<String>,
}

pub fn contact_view(c: ContactRow) -> ContactView {
    ContactView {
        id: c.id,
        at_ms: c.at_ms,
        local_date: c.local_date,
        channel: c.channel,
        outcome: c.outcome,
        promised_amount: c.promised_amount_fen.map(|f| Fen::new(f).to_string()),
        promised_date: c.promised_date,
        note: c.note,
        user_name: c.user_name,
        agency_code: c.agency_code,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentView {
    pub id: i64,
    pub agency_code: String,
    pub commission_rate: String,
    pub assigned_on: String,
    pub ended_on: Option<String>,
    pub active: bool,
    /// Posted repayments with a value date in the assignment (yuan; frozen at the end).
    pub recovered: String,
    /// commission_rate × recovered (yuan).
    pub commission: String,
    pub assigned_by: String,
}

pub fn assignment_view(a: AssignmentRow) -> AssignmentView {
    AssignmentView {
        id: a.id,
        agency_code: a.agency_code,
        commission_rate: a.commission_rate,
        assigned_on: a.assigned_on,
        ended_on: a.ended_on,
        active: a.active,
        recovered: Fen::new(a.recovered_fen).to_string(),
        commission: Fen::new(a.commission_fen).to_string(),
        assigned_by: a.assigned_by,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseView,
    pub contacts: Vec<ContactView>,
    pub agency_assignments: Vec<AssignmentView>,
}

/// A case with its contact log and agency assignments.
#[utoipa::path(get, path = "/api/v1/collections/cases/{id}", tag = "collections", operation_id = "collection_case",
    params(("id" = i64, Path)),
    responses((status = 200, body = CaseDetail), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<CaseDetail>> {
    let case = svc::load(&state, &caller, id).await?;
    let contacts = state.store().contacts_of(case.id).await?;
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let assignments = state.store().assignments_of(case.id, &today).await?;
    Ok(ApiJson(CaseDetail {
        case: case_view(case),
        contacts: contacts.into_iter().map(contact_view).collect(),
        agency_assignments: assignments.into_iter().map(assignment_view).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// Log a contact made now. Refused outside the allowed hours and beyond the daily limit
/// of contacts per debtor (both settings), with the rule named.
#[utoipa::path(post, path = "/api/v1/collections/cases/{id}/contacts", tag = "collections", operation_id = "collection_contact",
    params(("id" = i64, Path)), request_body = ContactInput,
    responses((status = 201, body = Created),
              (status = 422, description = "Bad input, or the contact is not allowed now (`collection.outside_hours`, `collection.daily_limit`)", body = Problem, content_type = "application/problem+json")))]
pub async fn contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ContactInput>,
) -> ApiResult<Response> {
    let cid = svc::log_contact(&state, &caller, id, &b).await?;
    Ok(recorded((
        StatusCode::CREATED,
        axum::Json(Created { id: cid }),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    /// The collector; absent to unassign.
    pub user_id: Option<i64>,
    /// The case `version` you read (optional).
    pub version: Option<i64>,
}

/// Assign a case to a collector.
#[utoipa::path(post, path = "/api/v1/collections/cases/{id}/assignment", tag = "collections", operation_id = "collection_assign",
    params(("id" = i64, Path)), request_body = AssignRequest,
    responses((status = 204), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<AssignRequest>,
) -> ApiResult<Response> {
    svc::assign(&state, &caller, id, b.user_id, b.version).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AgencyRequest {
    pub agency_code: String,
    /// e.g. `0.15`; the agency's default when absent.
    pub commission_rate: Option<String>,
}

/// Hand a case to an outsourced collection agency.
#[utoipa::path(post, path = "/api/v1/collections/cases/{id}/agency", tag = "collections", operation_id = "collection_agency_assign",
    params(("id" = i64, Path)), request_body = AgencyRequest,
    responses((status = 201, body = Created), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn agency(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<AgencyRequest>,
) -> ApiResult<Response> {
    let aid = svc::assign_agency(
        &state,
        &caller,
        id,
        &b.agency_code,
        b.commission_rate.as_deref(),
    )
    .await?;
    Ok(recorded((
        StatusCode::CREATED,
        axum::Json(Created { id: aid }),
    )))
}

/// Take a case back from its agency (recovered and commission frozen).
#[utoipa::path(post, path = "/api/v1/collections/cases/{id}/agency/end", tag = "collections", operation_id = "collection_agency_end",
    params(("id" = i64, Path)),
    responses((status = 200, body = AssignmentView), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn agency_end(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let a = svc::end_agency(&state, &caller, id).await?;
    Ok(recorded(axum::Json(assignment_view(a))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CloseRequest {
    /// `cured`, `paid_off`, `written_off`, `guarantee_paid`, `other`.
    pub reason: String,
    pub note: String,
}

/// Close a case by hand.
#[utoipa::path(post, path = "/api/v1/collections/cases/{id}/closure", tag = "collections", operation_id = "collection_close",
    params(("id" = i64, Path)), request_body = CloseRequest,
    responses((status = 204), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<CloseRequest>,
) -> ApiResult<Response> {
    svc::close(&state, &caller, id, &b.reason, &b.note).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyView {
    pub agency_code: String,
    pub name: String,
    pub commission_rate: Option<String>,
    pub active_cases: i64,
    pub assignments: i64,
    /// Yuan.
    pub recovered: String,
    /// Yuan.
    pub commission: String,
}

/// Collection agencies: cases held, recovered and commission to date.
#[utoipa::path(get, path = "/api/v1/collections/agencies", tag = "collections", operation_id = "collection_agencies",
    responses((status = 200, body = [AgencyView])))]
pub async fn agencies(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<AgencyView>>> {
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let rows = state.store().agency_summaries(&today).await?;
    Ok(ApiJson(
        rows.into_iter()
            .map(|a| AgencyView {
                agency_code: a.agency_code,
                name: a.name,
                commission_rate: a.commission_rate,
                active_cases: a.active_cases,
                assignments: a.assignments,
                recovered: Fen::new(a.recovered_fen).to_string(),
                commission: Fen::new(a.commission_fen).to_string(),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RateRequest {
    /// e.g. `0.15` (0 < rate ≤ 0.5).
    pub commission_rate: String,
}

/// Set a collection agency's default commission rate.
#[utoipa::path(put, path = "/api/v1/collections/agencies/{code}", tag = "collections", operation_id = "collection_agency_rate",
    params(("code" = String, Path)), request_body = RateRequest,
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn agency_rate(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(b): ApiJson<RateRequest>,
) -> ApiResult<Response> {
    svc::set_agency_rate(&state, &caller, &code, &b.commission_rate).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}
