//! Funder routing: `/api/v1/routing/runs` (start and history), `/api/v1/routing/waterfall`,
//! and the funders' signed callbacks `POST /api/v1/funder-callbacks/{code}`.

use crate::api::partners::recorded;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::routing::{self, CallbackBody, CallbackResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::routing::{CustomerFacts, DecisionFacts, RoutingRequest, Waterfall};
use zhudai_store::partners::{RunRow, StepRow};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    pub age: i64,
    pub province: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub risk_grade: String,
    pub score: i64,
}

/// An approved application to place with a funder.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub application_ref: String,
    pub product_code: String,
    pub amount_fen: i64,
    pub months: i64,
    /// Opaque customer reference (per-customer exposure limit).
    pub customer_ref: String,
    pub customer: CustomerInput,
    pub decision: DecisionInput,
    /// Funder codes the product version allows; absent = no restriction.
    #[serde(default)]
    pub allowed_funders: Option<Vec<String>>,
}

impl From<RunRequest> for RoutingRequest {
    fn from(r: RunRequest) -> Self {
        RoutingRequest {
            application_ref: r.application_ref.trim().to_owned(),
            product_code: r.product_code.trim().to_owned(),
            amount_fen: r.amount_fen,
            months: r.months,
            customer_ref: r.customer_ref.trim().to_owned(),
            customer: CustomerFacts {
                age: r.customer.age,
                province: r.customer.province.trim().to_owned(),
            },
            decision: DecisionFacts {
                risk_grade: r.decision.risk_grade.trim().to_owned(),
                score: r.decision.score,
            },
            allowed_funders: r.allowed_funders,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub seq: i64,
    pub partner_code: String,
    /// `skipped`, `pending`, `approved`, `declined`, `timeout`, `error`.
    pub outcome: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub attempt: i64,
    pub external_ref: Option<String>,
    pub started_at_ms: i64,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    pub application_ref: String,
    pub product_code: String,
    pub amount_fen: i64,
    pub months: i64,
    /// `running`, `pending` (waiting for a callback), `retrying`, `routed`, `exhausted`.
    pub state: String,
    /// The funder that approved (or is deciding, while pending).
    pub funder_code: Option<String>,
    /// Funder codes in waterfall order.
    pub plan: Vec<String>,
    pub started_by: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub steps: Vec<StepView>,
}

pub fn run_view(run: RunRow, steps: Vec<StepRow>) -> RunView {
    RunView {
        plan: serde_json::from_str(&run.plan).unwrap_or_default(),
        id: run.id,
        application_ref: run.application_ref,
        product_code: run.product_code,
        amount_fen: run.amount_fen,
        months: run.months,
        state: run.state,
        funder_code: run.funder_code,
        started_by: run.started_by,
        started_at_ms: run.started_at_ms,
        finished_at_ms: run.finished_at_ms,
        steps: steps
            .into_iter()
            .map(|s| StepView {
                seq: s.seq,
                partner_code: s.partner_code,
                outcome: s.outcome,
                reason_code: s.reason_code,
                reason: s.reason,
                attempt: s.attempt,
                external_ref: s.external_ref,
                started_at_ms: s.started_at_ms,
                duration_ms: s.duration_ms,
            })
            .collect(),
    }
}

async fn load(state: &AppState, id: i64) -> ApiResult<RunView> {
    let (run, steps) = state
        .store()
        .routing_run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no routing run has id {id}")))?;
    Ok(run_view(run, steps))
}

/// Route an approved application: tries funders by the waterfall until one approves.
/// Answers when the run is routed, exhausted, waiting for a funder's callback, or
/// waiting to retry an unreachable funder.
#[utoipa::path(post, path = "/api/v1/routing/runs", tag = "routing", request_body = RunRequest,
    responses((status = 201, body = RunView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn routing_start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    let req: RoutingRequest = req.into();
    let problems = req.problems();
    if !problems.is_empty() {
        return Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError::new(p.field, p.code, p.message))
                .collect(),
        ));
    }
    let id = routing::start_run(&state, &req, &caller.username)
        .await
        .map_err(ApiError::internal)?
        .id;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(load(&state, id).await?)).into_response(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Runs that reached this funder (tried or skipped).
    pub partner: Option<String>,
    pub application_ref: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Routing history, newest first.
#[utoipa::path(get, path = "/api/v1/routing/runs", tag = "routing", params(RunFilter),
    responses((status = 200, body = [RunView])))]
pub async fn routing_list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(f): Query<RunFilter>,
) -> ApiResult<axum::Json<Vec<RunView>>> {
    let limit = f.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–500"));
    }
    let store = state.store();
    let mut out = Vec::new();
    for run in store
        .routing_runs(
            f.partner.as_deref().filter(|p| !p.is_empty()),
            f.application_ref.as_deref().filter(|p| !p.is_empty()),
            limit,
        )
        .await?
    {
        out.push(load(&state, run.id).await?);
    }
    Ok(axum::Json(out))
}

/// One run with every step.
#[utoipa::path(get, path = "/api/v1/routing/runs/{id}", tag = "routing", params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn routing_get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<RunView>> {
    Ok(axum::Json(load(&state, id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaterfallView {
    /// Ordering criteria, each breaking ties of the one before: `priority`, `rate`,
    /// `approval_rate`, `quota_left`.
    pub order: Vec<String>,
    /// Retries of an unreachable funder before moving on (1–10).
    pub max_retries: i64,
}

/// The routing waterfall.
#[utoipa::path(get, path = "/api/v1/routing/waterfall", tag = "routing",
    responses((status = 200, body = WaterfallView)))]
pub async fn routing_waterfall_get(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<WaterfallView>> {
    let w = routing::waterfall(state.store()).await?;
    Ok(axum::Json(WaterfallView {
        order: w.order.iter().map(|c| c.as_str().to_owned()).collect(),
        max_retries: w.max_retries,
    }))
}

/// Configure the routing waterfall.
#[utoipa::path(put, path = "/api/v1/routing/waterfall", tag = "routing", request_body = WaterfallView,
    responses((status = 200, body = WaterfallView), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn routing_waterfall_put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<WaterfallView>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let order = match Waterfall::parse_order(&req.order.join(",")) {
        Ok(o) => o,
        Err(e) => {
            errors.push(FieldError::new("order", "invalid", e));
            Vec::new()
        }
    };
    if !(1..=10).contains(&req.max_retries) {
        errors.push(FieldError::new("max_retries", "out_of_range", "use 1–10"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    routing::set_waterfall(
        state.store(),
        &Waterfall {
            order,
            max_retries: req.max_retries,
        },
        state.now_ms(),
    )
    .await?;
    let mut resp = axum::Json(req).into_response();
    resp.extensions_mut().insert(
        crate::auth::AuditNote::action("routing.waterfall")
            .target("routing.waterfall".to_owned())
            .actor(caller.username),
    );
    Ok(resp)
}

/// A funder's message: the decision on a pending request, or (issue #6) a disbursement.
/// Signed like outbound requests: `x-zhudai-timestamp` (unix ms, within ±5 minutes) and
/// `x-zhudai-signature` = hex HMAC-SHA256(key, timestamp + "." + body).
///
/// * A decision (`{callback_id, application_ref, decision, …}`) is idempotent by
///   `callback_id`: a repeat is answered 200 with the first result and changes nothing.
/// * A disbursement (`{"message": "disbursed", application_ref, amount, disbursed_on,
///   funder_loan_ref}`) is idempotent by `funder_loan_ref`: it is stored once, opens the
///   loan and moves the application to `loan` in one transaction; a repeat answers the
///   first result with `duplicate: true`. Any funder with a callback key may send it.
#[utoipa::path(post, path = "/api/v1/funder-callbacks/{code}", tag = "routing", params(("code" = String, Path)), request_body = FunderMessage,
    responses((status = 200, description = "A decision's result (`CallbackResult`) or a disbursement's (`DisbursedResult`)", body = CallbackResult),
              (status = 401, description = "Bad or stale signature", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such funder with a callback key", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Disbursement: the application is not waiting for it, was placed elsewhere, or the reference belongs to another application", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn funder_callback(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // Contracts (issue #6): disbursements may come from any funder holding a callback key;
    // decisions only from HTTP funders (a simulated one decides at once).
    let disbursed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(|m| m == "disbursed")
        })
        .unwrap_or(false);
    let partner = state
        .store()
        .partner_by_code(&code)
        .await?
        .filter(|p| {
            if disbursed {
                p.kind == "funder"
            } else {
                p.adapter == "http"
            }
        })
        .ok_or_else(|| ApiError::NotFound(format!("no HTTP funder has code `{code}`")))?;
    let key = routing::hmac_key(&state, &partner)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::NotFound(format!("funder `{code}` has no callback key")))?;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    routing::verify(
        &key,
        header(routing::TIMESTAMP_HEADER),
        header(routing::SIGNATURE_HEADER),
        &body,
        state.now_ms(),
    )
    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    if disbursed {
        return disbursed_callback(&state, &partner.code, &body).await;
    }
    let cb: CallbackBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::field("body", "invalid", e.to_string()))?;
    let mut errors = Vec::new();
    if cb.callback_id.trim().is_empty() || cb.callback_id.len() > 128 {
        errors.push(FieldError::new(
            "callback_id",
            "required",
            "1–128 characters",
        ));
    }
    if !matches!(cb.decision.as_str(), "approved" | "declined") {
        errors.push(FieldError::new(
            "decision",
            "invalid",
            "approved or declined",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let result = routing::apply_callback(&state, &partner, &cb)
        .await
        .map_err(ApiError::internal)?;
    let duplicate = result.duplicate;
    let resp = axum::Json(result).into_response();
    // A repeat changed nothing and appended no record: let the audit layer note it.
    Ok(if duplicate { resp } else { recorded(resp) })
}

// --- Contracts and disbursement (issue #6) ---

/// What a funder posts to `POST /api/v1/funder-callbacks/{code}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FunderMessage {
    Disbursed(DisbursedCallback),
    Decision(CallbackBody),
}

/// A funder reports that it disbursed the loan of an application.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisbursedCallback {
    /// Always `disbursed`.
    pub message: String,
    pub application_ref: String,
    /// Yuan, e.g. `"30000.00"`; must equal the contract's principal.
    pub amount: String,
    /// `YYYY-MM-DD`.
    pub disbursed_on: String,
    /// The funder's own loan reference: a repeat with the same reference changes nothing.
    pub funder_loan_ref: String,
    /// Optional, for the funder's own bookkeeping.
    #[serde(default)]
    pub callback_id: Option<String>,
}

async fn disbursed_callback(state: &AppState, funder: &str, body: &[u8]) -> ApiResult<Response> {
    let cb: DisbursedCallback = serde_json::from_slice(body)
        .map_err(|e| ApiError::field("body", "invalid", e.to_string()))?;
    let mut errors = Vec::new();
    let amount = zhudai_domain::money::Fen::parse(cb.amount.trim())
        .ok()
        .filter(|a| a.is_positive());
    if amount.is_none() {
        errors.push(FieldError::new(
            "amount",
            "invalid",
            "a positive sum in yuan such as 30000.00",
        ));
    }
    let on = chrono::NaiveDate::parse_from_str(cb.disbursed_on.trim(), "%Y-%m-%d").ok();
    match on {
        None => errors.push(FieldError::new("disbursed_on", "invalid", "use YYYY-MM-DD")),
        Some(d) if d > state.clock().today() => errors.push(FieldError::new(
            "disbursed_on",
            "future",
            "a disbursement cannot be dated in the future",
        )),
        Some(_) => {}
    }
    let r = cb.funder_loan_ref.trim();
    if r.is_empty() || r.len() > 128 {
        errors.push(FieldError::new(
            "funder_loan_ref",
            "required",
            "1–128 characters",
        ));
    }
    if cb.application_ref.trim().is_empty() {
        errors.push(FieldError::new(
            "application_ref",
            "required",
            "the application's reference",
        ));
    }
    let (Some(amount), Some(on), true) = (amount, on, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let result = crate::contracts::record_disbursement(
        state,
        &crate::contracts::DisbursedInput {
            application_ref: cb.application_ref.trim().to_owned(),
            funder_code: funder.to_owned(),
            funder_loan_ref: r.to_owned(),
            amount_fen: amount.as_fen(),
            disbursed_on: on,
            source: "callback",
        },
    )
    .await?;
    let duplicate = result.duplicate;
    let resp = axum::Json(result).into_response();
    Ok(if duplicate { resp } else { recorded(resp) })
}
