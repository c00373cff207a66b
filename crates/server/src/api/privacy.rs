//! PIPL: consents per purpose and recipient (record, list, withdraw) and data-subject
//! requests (access/copy export, correction, deletion) tracked against a deadline.

use crate::api::documents::file_response;
use crate::auth::{AuditNote, Caller};
use crate::customer_docs::{self as docs, ConsentView, RequestAction, RequestView};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::privacy::ConsentInput;

fn with_note(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentBody {
    /// A purpose code, e.g. `credit_assessment`, `funder_sharing`, `marketing`.
    pub purpose: Option<String>,
    /// Recipient codes (e.g. a funder's code); empty for the company's own use.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub policy_version: Option<String>,
    /// `app`, `web`, `paper` or `phone`.
    pub channel: Option<String>,
    /// When the customer consented (unix ms); now when absent.
    pub given_at_ms: Option<i64>,
    /// A document of this customer holding the signed consent.
    pub evidence_document_id: Option<i64>,
}

/// Record a consent.
#[utoipa::path(post, path = "/api/v1/customers/{id}/consents", tag = "privacy",
    params(("id" = i64, Path)), request_body = ConsentBody,
    responses((status = 201, body = ConsentView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn consent_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ConsentBody>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let input = ConsentInput {
        purpose: b.purpose,
        recipients: b.recipients,
        policy_version: b.policy_version,
        channel: b.channel,
        given_at_ms: b.given_at_ms,
        evidence_document_id: b.evidence_document_id,
    };
    let (v, note) = docs::consent_record(&state, &caller, &customer, &input).await?;
    Ok(with_note(
        (StatusCode::CREATED, axum::Json(v)).into_response(),
        note,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentList {
    pub consents: Vec<ConsentView>,
}

/// A customer's consents, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/consents", tag = "privacy",
    params(("id" = i64, Path)), responses((status = 200, body = ConsentList)))]
pub async fn consent_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ConsentList>> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let now = state.now_ms();
    let consents = state
        .store()
        .consents_of_customer(customer.id)
        .await?
        .into_iter()
        .map(|c| docs::consent_view(c, now))
        .collect();
    Ok(axum::Json(ConsentList { consents }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WithdrawBody {
    /// `app`, `web`, `paper` or `phone`.
    pub channel: Option<String>,
    /// When the customer withdrew (unix ms); now when absent.
    pub at_ms: Option<i64>,
}

/// Withdraw a consent.
#[utoipa::path(post, path = "/api/v1/customers/{id}/consents/{cid}/withdraw", tag = "privacy",
    params(("id" = i64, Path), ("cid" = i64, Path)), request_body = WithdrawBody,
    responses((status = 200, body = ConsentView),
              (status = 409, description = "Already withdrawn", body = Problem, content_type = "application/problem+json")))]
pub async fn consent_withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, cid)): Path<(i64, i64)>,
    ApiJson(b): ApiJson<WithdrawBody>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let (v, note) = docs::consent_withdraw(
        &state,
        &caller,
        &customer,
        cid,
        b.channel.as_deref(),
        b.at_ms,
    )
    .await?;
    Ok(with_note(axum::Json(v).into_response(), note))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestBody {
    pub customer_id: i64,
    /// `access`, `correction` or `deletion`.
    pub kind: Option<String>,
    /// How the request arrived: `app`, `web`, `paper` or `phone`.
    pub channel: Option<String>,
    /// What the person asks; for a correction, the change (required).
    pub details: Option<String>,
}

/// Record a data-subject request; due `privacy_request_days` calendar days later.
#[utoipa::path(post, path = "/api/v1/privacy/requests", tag = "privacy", request_body = RequestBody,
    responses((status = 201, body = RequestView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn request_create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<RequestBody>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, b.customer_id)
        .await
        .map_err(|_| {
            ApiError::field("customer_id", "not_found", "no such customer in your scope")
        })?;
    let (v, note) = docs::request_create(
        &state,
        &caller,
        &customer,
        b.kind.as_deref(),
        b.channel.as_deref(),
        b.details.as_deref(),
    )
    .await?;
    Ok(with_note(
        (StatusCode::CREATED, axum::Json(v)).into_response(),
        note,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestFilter {
    /// Only requests not yet completed or refused.
    pub open: Option<bool>,
    pub customer_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    /// Open first, earliest due first.
    pub requests: Vec<RequestView>,
    pub overdue: usize,
}

/// Data-subject requests in the caller's scope, with deadlines.
#[utoipa::path(get, path = "/api/v1/privacy/requests", tag = "privacy", params(RequestFilter),
    responses((status = 200, body = RequestList)))]
pub async fn request_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<RequestFilter>,
) -> ApiResult<axum::Json<RequestList>> {
    let requests = list(&state, &caller, f.open.unwrap_or(false), f.customer_id).await?;
    Ok(axum::Json(RequestList {
        overdue: requests.iter().filter(|r| r.overdue).count(),
        requests,
    }))
}

/// The requests the caller may see (shared with the UI).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    open_only: bool,
    customer_id: Option<i64>,
) -> ApiResult<Vec<RequestView>> {
    let scope = docs::scope_of(caller, state.store()).await?;
    let mut out = Vec::new();
    for r in state
        .store()
        .privacy_requests(open_only, customer_id, 500)
        .await?
    {
        let Some(c) = state.store().customer_get(r.customer_id).await? else {
            continue;
        };
        if scope.admits(c.owner_user_id, c.org_unit_id) {
            out.push(docs::request_view(state, r, Some(&c)).await?);
        }
    }
    Ok(out)
}

/// One request.
#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}", tag = "privacy",
    params(("id" = i64, Path)), responses((status = 200, body = RequestView),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn request_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<RequestView>> {
    let (r, c) = docs::request_in_scope(&state, &caller, id).await?;
    Ok(axum::Json(docs::request_view(&state, r, Some(&c)).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ActBody {
    /// What was done, or (refusing) why; required to refuse.
    pub resolution: Option<String>,
}

async fn act(
    state: AppState,
    caller: Caller,
    id: i64,
    action: RequestAction,
    body: ActBody,
) -> ApiResult<Response> {
    let (v, note) =
        docs::request_act(&state, &caller, id, action, body.resolution.as_deref()).await?;
    Ok(with_note(axum::Json(v).into_response(), note))
}

/// Start handling a request (open → in_progress).
#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/start", tag = "privacy",
    params(("id" = i64, Path)), request_body = ActBody,
    responses((status = 200, body = RequestView),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn request_start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ActBody>,
) -> ApiResult<Response> {
    act(state, caller, id, RequestAction::Start, b).await
}

/// Complete a request. For a deletion this erases the customer (crypto-shredding), or,
/// under a legal hold (the customer's `legal_hold_until`, AML or contract retention),
/// refuses the request with the holds as its reason.
#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/complete", tag = "privacy",
    params(("id" = i64, Path)), request_body = ActBody,
    responses((status = 200, body = RequestView),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn request_complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ActBody>,
) -> ApiResult<Response> {
    act(state, caller, id, RequestAction::Complete, b).await
}

/// Refuse a request, with the reason.
#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/refuse", tag = "privacy",
    params(("id" = i64, Path)), request_body = ActBody,
    responses((status = 200, body = RequestView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn request_refuse(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ActBody>,
) -> ApiResult<Response> {
    act(state, caller, id, RequestAction::Refuse, b).await
}

/// The access/copy export of an access request's customer: a ZIP of their data,
/// decrypted (audited).
#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}/export", tag = "privacy",
    params(("id" = i64, Path)),
    responses((status = 200, description = "ZIP: customer.json, documents.json, consents.json, requests.json, documents/*", content_type = "application/zip"),
              (status = 409, description = "Not an open access request", body = Problem, content_type = "application/problem+json")))]
pub async fn request_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let (r, c) = docs::request_in_scope(&state, &caller, id).await?;
    if r.kind != "access" || !matches!(r.status.as_str(), "open" | "in_progress") {
        return Err(ApiError::Conflict(
            "an export is made for an access request that is open or in progress".into(),
        ));
    }
    let zip = docs::export_zip(&state, &caller, &c).await?;
    Ok(file_response(
        zip,
        "application/zip",
        &format!("customer-{}-export.zip", c.id),
        AuditNote::action("privacy.export")
            .target(format!("customer:{}/privacy_request:{id}", c.id))
            .reason("access/copy request: customer data exported in clear"),
    ))
}
