//! Credit limits (issue #7 item 4): `/api/v1/risk/limits…`. Thin handlers over
//! [`crate::limits`]; every change appends its audit record inside its transaction.
//! Draws (reserve / release) are not an HTTP resource: the loans capability calls
//! [`crate::limits::reserve`] and [`crate::limits::release`] inside its own transactions.

use crate::api::partners::recorded;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::limits::{
    self as svc, AdjustmentRequest, AdjustmentView, Decision, LimitDetail, LimitView,
};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Filters of the line list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitFilter {
    /// `active`, `frozen`, `expired`, `closed`.
    pub status: Option<String>,
    /// `customer` or `group`.
    pub scope: Option<String>,
    pub customer_id: Option<i64>,
}

/// Credit lines in the caller's data scope.
#[utoipa::path(get, path = "/api/v1/risk/limits", tag = "risk", params(LimitFilter),
    responses((status = 200, body = [LimitView]), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn limit_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<LimitFilter>,
) -> ApiResult<axum::Json<Vec<LimitView>>> {
    let status = f.status.as_deref().filter(|s| !s.is_empty());
    if status.is_some_and(|s| zhudai_domain::credit_limit::LimitStatus::parse(s).is_none()) {
        return Err(ApiError::field(
            "status",
            "invalid",
            "use active, frozen, expired or closed",
        ));
    }
    let scope = f.scope.as_deref().filter(|s| !s.is_empty());
    if scope.is_some_and(|s| zhudai_domain::credit_limit::LimitScope::parse(s).is_none()) {
        return Err(ApiError::field("scope", "invalid", "use customer or group"));
    }
    let q = zhudai_store::limits::LimitQuery {
        status,
        scope,
        customer_id: f.customer_id,
        include_closed: status == Some("closed"),
        limit: 500,
    };
    Ok(axum::Json(svc::list(&state, &caller, &q).await?))
}

/// One line with its history, reservations and change requests.
#[utoipa::path(get, path = "/api/v1/risk/limits/{id}", tag = "risk", params(("id" = i64, Path)),
    responses((status = 200, body = LimitDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn limit_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<LimitDetail>> {
    Ok(axum::Json(svc::detail(&state, &caller, id).await?))
}

/// Request a new line or a new amount / end date (approved by another person).
#[utoipa::path(post, path = "/api/v1/risk/limits/adjustments", tag = "risk", request_body = AdjustmentRequest,
    responses((status = 201, body = AdjustmentView),
              (status = 409, description = "A change of the line is already pending", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn adjustment_request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<AdjustmentRequest>,
) -> ApiResult<Response> {
    let a = svc::request_adjustment(&state, &caller, &req).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(a)).into_response(),
    ))
}

/// Change requests waiting for approval, in the caller's data scope.
#[utoipa::path(get, path = "/api/v1/risk/limits/adjustments", tag = "risk",
    responses((status = 200, body = [AdjustmentView])))]
pub async fn adjustment_pending(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<AdjustmentView>>> {
    Ok(axum::Json(svc::pending(&state, &caller).await?))
}

/// Approve (apply) or reject a pending change. The requester cannot decide their own
/// request (409).
#[utoipa::path(post, path = "/api/v1/risk/limits/adjustments/{id}/decision", tag = "risk", params(("id" = i64, Path)), request_body = Decision,
    responses((status = 200, body = AdjustmentView),
              (status = 409, description = "Four eyes, or already decided", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn adjustment_decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(d): ApiJson<Decision>,
) -> ApiResult<Response> {
    let a = svc::decide(&state, &caller, id, &d).await?;
    Ok(recorded(axum::Json(a).into_response()))
}

/// A reason for a freeze or an unfreeze request.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonInput {
    pub reason: String,
}

/// Freeze a line at once (no new draws).
#[utoipa::path(post, path = "/api/v1/risk/limits/{id}/freeze", tag = "risk", params(("id" = i64, Path)), request_body = ReasonInput,
    responses((status = 200, body = LimitView), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn limit_freeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(r): ApiJson<ReasonInput>,
) -> ApiResult<Response> {
    let v = svc::freeze(&state, &caller, id, &r.reason).await?;
    Ok(recorded(axum::Json(v).into_response()))
}

/// Ask for a frozen line to be unfrozen (approved by another person).
#[utoipa::path(post, path = "/api/v1/risk/limits/{id}/unfreeze", tag = "risk", params(("id" = i64, Path)), request_body = ReasonInput,
    responses((status = 201, body = AdjustmentView), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn limit_unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(r): ApiJson<ReasonInput>,
) -> ApiResult<Response> {
    let a = svc::request_unfreeze(&state, &caller, id, &r.reason).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(a)).into_response(),
    ))
}
