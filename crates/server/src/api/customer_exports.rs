//! Customer export over HTTP. Small exports download directly
//! (`GET /api/v1/customers/export`); larger ones (over `export_approval_rows`) go through
//! a request another person approves (`POST /api/v1/customers/exports`,
//! `…/exports/pending`, `…/exports/{id}/decision`), then the requester downloads once
//! (`GET …/exports/{id}/file`). Every export is audited with its row count and the fields
//! that left in clear.

use crate::auth::{AuditNote, Caller};
use crate::customers::{audit_draft, scope_of};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::export::{clear_columns, export_to_bytes, ExportFormat};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_store::imports::{self as db, ExportRequest};

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
}

fn format_of(s: Option<&str>) -> ApiResult<ExportFormat> {
    ExportFormat::parse(s.unwrap_or("csv"))
        .ok_or_else(|| ApiError::field("format", "invalid", "format is csv or xlsx"))
}

fn clear_fields(caller: &Caller) -> Vec<&str> {
    caller.clear_fields.iter().map(String::as_str).collect()
}

async fn file_response(
    state: &AppState,
    caller: &Caller,
    format: ExportFormat,
    request: Option<i64>,
) -> ApiResult<Response> {
    let scope = scope_of(caller, state.store()).await?;
    let clear = clear_fields(caller);
    let now = state.now_ms();
    let (bytes, rows, draft) = export_to_bytes(
        state.store(),
        state.vault(),
        &scope,
        &clear,
        format,
        &caller.username,
        &caller.roles.join(","),
        now,
    )
    .await
    .map_err(ApiError::internal)?;
    let mut draft = draft;
    if let Some(id) = crate::http::request_id::current_request_id() {
        draft = draft.request_id(id);
    }
    let mut tx = state.store().begin().await?;
    if let Some(id) = request {
        if !db::export_request_consume(&mut tx, id, caller.user_id, now).await? {
            return Err(ApiError::Conflict(format!(
                "export request {id} is not approved for you, or was already downloaded"
            )));
        }
        draft = draft.target(format!("customer_export:{id}"));
    }
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await.map_err(zhudai_store::StoreError::from)?;
    let mut resp = (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"customers.{}\"", format.as_str()),
            ),
            (
                header::HeaderName::from_static("x-export-rows"),
                rows.to_string(),
            ),
        ],
        bytes,
    )
        .into_response();
    let mut note = AuditNote::action("customer.export");
    note.recorded = true;
    resp.extensions_mut().insert(note);
    Ok(resp)
}

/// Export the customers in the caller's data scope (at most `export_approval_rows`;
/// above that, file an export request). Sensitive fields are masked unless the caller's
/// role sees them in clear.
#[utoipa::path(operation_id = "customer_exports_export", get, path = "/api/v1/customers/export", tag = "customers", params(ExportQuery),
    responses((status = 200, description = "CSV (UTF-8 with BOM) or XLSX", body = Vec<u8>),
              (status = 409, description = "`approval_required`: more rows than export_approval_rows", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let format = format_of(q.format.as_deref())?;
    let scope = scope_of(&caller, state.store()).await?;
    let rows = state.store().customers_in_scope(&scope).await?;
    let limit = state.settings().export_approval_rows;
    if rows as u64 > limit {
        return Err(ApiError::Conflict(format!(
            "approval_required: this export has {rows} rows, more than {limit}; file an export request (POST /api/v1/customers/exports) for another person to approve"
        )));
    }
    file_response(&state, &caller, format, None).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExportRequest {
    /// `csv` or `xlsx`.
    pub format: Option<String>,
    /// Why the data is needed (shown to the approver, kept in the audit trail).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportRequestView {
    pub id: i64,
    pub requested_by: i64,
    pub format: String,
    pub row_count: i64,
    /// Fields that will be in clear (the requester's clear-field permissions).
    pub clear_fields: Vec<String>,
    pub reason: String,
    /// `pending`, `approved`, `rejected` or `downloaded`.
    pub status: String,
    pub decided_by: Option<i64>,
    pub decision_note: Option<String>,
    pub created_at_ms: i64,
}

impl From<ExportRequest> for ExportRequestView {
    fn from(r: ExportRequest) -> Self {
        ExportRequestView {
            id: r.id,
            requested_by: r.requested_by,
            format: r.file_format,
            row_count: r.row_count,
            clear_fields: r
                .clear_fields
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            reason: r.reason,
            status: r.status,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            created_at_ms: r.created_at_ms,
        }
    }
}

/// Ask for an export that needs approval.
#[utoipa::path(operation_id = "customer_exports_request", post, path = "/api/v1/customers/exports", tag = "customers", request_body = NewExportRequest,
    responses((status = 201, body = ExportRequestView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewExportRequest>,
) -> ApiResult<Response> {
    let format = format_of(req.format.as_deref())?;
    let reason = req.reason.trim();
    if reason.chars().count() < 4 || reason.chars().count() > 500 {
        return Err(ApiError::field(
            "reason",
            "length",
            "say why the data is needed (4–500 characters)",
        ));
    }
    let scope = scope_of(&caller, state.store()).await?;
    let rows = state.store().customers_in_scope(&scope).await?;
    let clear = clear_columns(&clear_fields(&caller)).join(",");
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = db::export_request_insert(
        &mut tx,
        caller.user_id,
        format.as_str(),
        rows,
        &clear,
        reason,
        now,
    )
    .await?;
    let draft = audit_draft(
        &caller,
        now,
        "customer.export.request",
        format!("customer_export:{id}"),
    )
    .reason(format!("{rows} row(s); in clear: {clear}; {reason}"));
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await.map_err(zhudai_store::StoreError::from)?;
    let view = state
        .store()
        .export_request(id)
        .await?
        .map(ExportRequestView::from)
        .ok_or_else(|| ApiError::Internal("the export request vanished".into()))?;
    let mut resp = (StatusCode::CREATED, axum::Json(view)).into_response();
    let mut note =
        AuditNote::action("customer.export.request").target(format!("customer_export:{id}"));
    note.recorded = true;
    resp.extensions_mut().insert(note);
    Ok(resp)
}

/// The caller's own export requests, newest first.
#[utoipa::path(operation_id = "customer_exports_mine", get, path = "/api/v1/customers/exports", tag = "customers",
    responses((status = 200, body = Vec<ExportRequestView>)))]
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ExportRequestView>>> {
    let list = state
        .store()
        .export_requests(Some(caller.user_id), 100)
        .await?;
    Ok(axum::Json(list.into_iter().map(Into::into).collect()))
}

/// Export requests waiting for a decision, other people's only.
#[utoipa::path(operation_id = "customer_exports_pending", get, path = "/api/v1/customers/exports/pending", tag = "customers",
    responses((status = 200, body = Vec<ExportRequestView>)))]
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ExportRequestView>>> {
    let list = state.store().export_requests(None, 500).await?;
    Ok(axum::Json(
        list.into_iter()
            .filter(|r| r.status == "pending" && r.requested_by != caller.user_id)
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDecision {
    pub approve: bool,
    pub note: Option<String>,
}

/// Approve or reject someone else's export request (four eyes: never your own).
#[utoipa::path(operation_id = "customer_exports_decide", post, path = "/api/v1/customers/exports/{id}/decision", tag = "customers", params(("id" = i64, Path)),
    request_body = ExportDecision,
    responses((status = 200, body = ExportRequestView),
              (status = 409, description = "Your own request, or not pending", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(d): ApiJson<ExportDecision>,
) -> ApiResult<Response> {
    let req = state
        .store()
        .export_request(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no export request has id {id}")))?;
    if req.requested_by == caller.user_id {
        return Err(ApiError::Conflict(
            "four eyes: someone else must decide on your own export request".into(),
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !db::export_request_decide(
        &mut tx,
        id,
        caller.user_id,
        d.approve,
        d.note.as_deref(),
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(format!(
            "export request {id} is not pending"
        )));
    }
    let action = if d.approve {
        "customer.export.approve"
    } else {
        "customer.export.reject"
    };
    let draft = audit_draft(&caller, now, action, format!("customer_export:{id}"))
        .reason(d.note.clone().unwrap_or_default());
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await.map_err(zhudai_store::StoreError::from)?;
    let view = state
        .store()
        .export_request(id)
        .await?
        .map(ExportRequestView::from)
        .ok_or_else(|| ApiError::Internal("the export request vanished".into()))?;
    let mut resp = axum::Json(view).into_response();
    let mut note = AuditNote::action(action).target(format!("customer_export:{id}"));
    note.recorded = true;
    resp.extensions_mut().insert(note);
    Ok(resp)
}

/// Download an approved export (once, by its requester).
#[utoipa::path(operation_id = "customer_exports_download", get, path = "/api/v1/customers/exports/{id}/file", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, description = "CSV or XLSX", body = Vec<u8>),
              (status = 409, description = "Not approved, or already downloaded", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let req = state
        .store()
        .export_request(id)
        .await?
        .filter(|r| r.requested_by == caller.user_id)
        .ok_or_else(|| ApiError::NotFound(format!("no export request of yours has id {id}")))?;
    let format = format_of(Some(&req.file_format))?;
    file_response(&state, &caller, format, Some(id)).await
}
