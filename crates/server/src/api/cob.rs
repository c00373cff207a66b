//! The daily close (issue #8 item 3): `/api/v1/cob/runs…` (asking for a close needs
//! `cob.run`; reading runs `loan.read`), a loan's servicing history, manual
//! classification floors with maker-checker (`loan.classify` asks, another person with
//! `loan.classify.approve` decides), restructuring, and a funder's guarantee-payout
//! threshold (`funder.manage`).

use crate::auth::{AuditNote, Caller};
use crate::cob::{self as svc, FloorInput};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::money::Fen;
use zhudai_store::cob::{CloseCounts, RunRow};

fn recorded<T: IntoResponse>(v: T) -> Response {
    let mut r = v.into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

fn parse_date(field: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::field(field, "invalid", "a date such as 2026-11-28"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Totals {
    pub loans_closed: i64,
    pub overdue_loans: i64,
    /// Yuan.
    pub penalty: String,
    pub reclassified: i64,
    pub bucket_moves: i64,
    pub cases_opened: i64,
    pub cases_closed: i64,
    pub payouts: i64,
    /// Yuan.
    pub payout_total: String,
}

impl From<CloseCounts> for Totals {
    fn from(c: CloseCounts) -> Self {
        Totals {
            loans_closed: c.loans_closed,
            overdue_loans: c.overdue_loans,
            penalty: Fen::new(c.penalty_fen).to_string(),
            reclassified: c.reclassified,
            bucket_moves: c.bucket_moves,
            cases_opened: c.cases_opened,
            cases_closed: c.cases_closed,
            payouts: c.payouts,
            payout_total: Fen::new(c.payout_fen).to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub business_date: String,
    /// `running` or `done`.
    pub state: String,
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub started_by: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Filled when done.
    pub totals: Totals,
}

pub fn run_view(r: RunRow) -> RunView {
    RunView {
        business_date: r.business_date,
        state: r.state,
        chunks_total: r.chunks_total,
        chunks_done: r.chunks_done,
        started_by: r.started_by,
        started_at_ms: r.started_at_ms,
        finished_at_ms: r.finished_at_ms,
        totals: r.totals.into(),
    }
}

/// The latest closes, newest first.
#[utoipa::path(get, path = "/api/v1/cob/runs", tag = "cob", operation_id = "cob_runs",
    responses((status = 200, body = [RunView])))]
pub async fn runs(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<RunView>>> {
    let rows = state.store().cob_runs(60).await?;
    Ok(ApiJson(rows.into_iter().map(run_view).collect()))
}

/// One close.
#[utoipa::path(get, path = "/api/v1/cob/runs/{date}", tag = "cob", operation_id = "cob_run",
    params(("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn run_one(
    State(state): State<AppState>,
    Path(date): Path<String>,
) -> ApiResult<ApiJson<RunView>> {
    let d = parse_date("date", &date)?;
    let r = state
        .store()
        .cob_run(&d.format("%Y-%m-%d").to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{d} has not been closed")))?;
    Ok(ApiJson(run_view(r)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RunRequest {
    /// The business day to close, `YYYY-MM-DD` (today or earlier).
    pub business_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunRequested {
    pub business_date: String,
    /// The queued job (absent when one for this date was queued before).
    pub job_id: Option<i64>,
}

/// Asks for the close of a business day; a job worker runs it (see the run's state).
#[utoipa::path(post, path = "/api/v1/cob/runs", tag = "cob", operation_id = "cob_request",
    request_body = RunRequest,
    responses((status = 202, body = RunRequested),
              (status = 422, description = "A future date, or one before a closed later date", body = Problem, content_type = "application/problem+json")))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    let d = parse_date("business_date", &b.business_date)?;
    if let Some(later) = state
        .store()
        .cob_runs(1)
        .await?
        .into_iter()
        .next()
        .filter(|r| r.business_date > d.format("%Y-%m-%d").to_string())
    {
        return Err(svc::CobError::LaterRunExists(later.business_date).into());
    }
    let job_id = svc::request(&state, &caller, d).await?;
    Ok(recorded((
        StatusCode::ACCEPTED,
        axum::Json(RunRequested {
            business_date: d.to_string(),
            job_id,
        }),
    )))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassChangeView {
    pub business_date: String,
    pub from_class: String,
    pub to_class: String,
    pub dpd: i64,
    /// `cob`, `manual` or `restructuring`.
    pub source: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketChangeView {
    pub business_date: String,
    pub from_bucket: String,
    pub to_bucket: String,
    pub dpd: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutView {
    pub funder_code: String,
    pub business_date: String,
    pub dpd: i64,
    pub principal: String,
    pub interest: String,
    pub total: String,
    pub entry_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObservationView {
    pub restructured_on: String,
    pub observe_from: String,
    pub observation_ends_on: String,
    pub active: bool,
    pub ended_on: Option<String>,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FloorRequestView {
    pub id: i64,
    pub loan_id: i64,
    /// Absent: remove the floor.
    pub floor: Option<String>,
    pub reason: String,
    /// `pending`, `approved`, `rejected`.
    pub state: String,
    pub requested_by_name: String,
    pub requested_at_ms: i64,
    pub decided_by_name: Option<String>,
    pub decision_note: Option<String>,
}

pub fn floor_view(r: zhudai_store::cob::FloorRequest) -> FloorRequestView {
    FloorRequestView {
        id: r.id,
        loan_id: r.loan_id,
        floor: r.floor,
        reason: r.reason,
        state: r.state,
        requested_by_name: r.requested_by_name,
        requested_at_ms: r.requested_at_ms,
        decided_by_name: r.decided_by_name,
        decision_note: r.decision_note,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServicingHistory {
    pub classification: Vec<ClassChangeView>,
    pub buckets: Vec<BucketChangeView>,
    pub payout: Option<PayoutView>,
    pub restructurings: Vec<ObservationView>,
    pub floor_requests: Vec<FloorRequestView>,
    /// The loan's collection cases, newest first.
    pub cases: Vec<crate::api::collections::CaseView>,
}

/// A loan's classification and bucket history, guarantee payout, observation periods,
/// floor requests and collection cases.
#[utoipa::path(get, path = "/api/v1/loans/{id}/servicing", tag = "cob", operation_id = "loan_servicing_history",
    params(("id" = i64, Path)),
    responses((status = 200, body = ServicingHistory), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn servicing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<ServicingHistory>> {
    let loan = crate::loans::load(&state, &caller, id).await?;
    let s = state.store();
    let classification = s
        .classification_history(loan.id)
        .await?
        .into_iter()
        .map(|c| ClassChangeView {
            business_date: c.business_date,
            from_class: c.from_class,
            to_class: c.to_class,
            dpd: c.dpd,
            source: c.source,
            note: c.note,
        })
        .collect();
    let buckets = s
        .bucket_history(loan.id)
        .await?
        .into_iter()
        .map(|b| BucketChangeView {
            business_date: b.business_date,
            from_bucket: b.from_bucket,
            to_bucket: b.to_bucket,
            dpd: b.dpd,
        })
        .collect();
    let payout = s.guarantee_payout_of(loan.id).await?.map(|p| PayoutView {
        funder_code: p.funder_code,
        business_date: p.business_date,
        dpd: p.dpd,
        principal: Fen::new(p.principal_fen).to_string(),
        interest: Fen::new(p.interest_fen).to_string(),
        total: Fen::new(p.total_fen).to_string(),
        entry_id: p.entry_id,
    });
    let restructurings = s
        .restructurings_of(loan.id)
        .await?
        .into_iter()
        .map(|r| ObservationView {
            restructured_on: r.restructured_on,
            observe_from: r.observe_from,
            observation_ends_on: r.observation_ends_on,
            active: r.active,
            ended_on: r.ended_on,
            note: r.note,
        })
        .collect();
    let floor_requests = s
        .floor_requests_of(loan.id)
        .await?
        .into_iter()
        .map(floor_view)
        .collect();
    let cases = s
        .cases_of_loan(loan.id)
        .await?
        .into_iter()
        .map(crate::api::collections::case_view)
        .collect();
    Ok(ApiJson(ServicingHistory {
        classification,
        buckets,
        payout,
        restructurings,
        floor_requests,
        cases,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// Ask for a manual classification floor (or its removal); another person decides.
#[utoipa::path(post, path = "/api/v1/loans/{id}/classification-requests", tag = "cob", operation_id = "classification_request",
    params(("id" = i64, Path)), request_body = FloorInput,
    responses((status = 201, body = Created),
              (status = 409, description = "A request is waiting already", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn floor_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<FloorInput>,
) -> ApiResult<Response> {
    let rid = svc::request_floor(&state, &caller, id, &b).await?;
    Ok(recorded((
        StatusCode::CREATED,
        axum::Json(Created { id: rid }),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FloorSearch {
    /// `pending` (default), `approved` or `rejected`.
    pub state: Option<String>,
}

/// Floor requests, newest first.
#[utoipa::path(get, path = "/api/v1/classification-requests", tag = "cob", operation_id = "classification_requests",
    params(FloorSearch), responses((status = 200, body = [FloorRequestView])))]
pub async fn floor_requests(
    State(state): State<AppState>,
    Query(q): Query<FloorSearch>,
) -> ApiResult<ApiJson<Vec<FloorRequestView>>> {
    let st = q.state.unwrap_or_else(|| "pending".into());
    if !matches!(st.as_str(), "pending" | "approved" | "rejected") {
        return Err(ApiError::field(
            "state",
            "invalid",
            "pending, approved or rejected",
        ));
    }
    let rows = state.store().floor_requests(&st, 200).await?;
    Ok(ApiJson(rows.into_iter().map(floor_view).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Decision {
    pub approve: bool,
    #[serde(default)]
    pub note: String,
}

/// Approve or reject a floor request (four eyes: not your own). Approval sets the floor
/// and reclassifies the loan at once.
#[utoipa::path(post, path = "/api/v1/classification-requests/{id}/decision", tag = "cob", operation_id = "classification_decide",
    params(("id" = i64, Path)), request_body = Decision,
    responses((status = 204),
              (status = 403, description = "Your own request", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Decided already", body = Problem, content_type = "application/problem+json")))]
pub async fn floor_decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<Decision>,
) -> ApiResult<Response> {
    svc::decide_floor(&state, &caller, id, b.approve, &b.note).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RestructureRequest {
    /// `YYYY-MM-DD`, today or earlier.
    pub restructured_on: String,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Restructured {
    /// The last day of the observation period (restarted by any past-due day).
    pub observation_ends_on: String,
}

/// Record a restructuring: the loan stays at least 关注 through its observation period.
#[utoipa::path(post, path = "/api/v1/loans/{id}/restructuring", tag = "cob", operation_id = "loan_restructure",
    params(("id" = i64, Path)), request_body = RestructureRequest,
    responses((status = 201, body = Restructured), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn restructure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<RestructureRequest>,
) -> ApiResult<Response> {
    let on = parse_date("restructured_on", &b.restructured_on)?;
    let ends = svc::restructure(&state, &caller, id, on, &b.note).await?;
    Ok(recorded((
        StatusCode::CREATED,
        axum::Json(Restructured {
            observation_ends_on: ends.to_string(),
        }),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GuaranteeSetting {
    /// Days past due at which the guarantor pays the funder (代偿); absent: no payout.
    pub payout_dpd: Option<i64>,
}

/// Set a funder's guarantee-payout threshold, read by the daily close.
#[utoipa::path(put, path = "/api/v1/partners/{code}/guarantee", tag = "cob", operation_id = "partner_guarantee",
    params(("code" = String, Path)), request_body = GuaranteeSetting,
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn guarantee(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(b): ApiJson<GuaranteeSetting>,
) -> ApiResult<Response> {
    svc::set_payout_dpd(&state, &caller, &code, b.payout_dpd).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}
