//! Funder reconciliation (issue #8 item 5): `/api/v1/reconciliation…`, all under
//! `funder.reconcile`. Import a funder's repayment file (CSV in the body), list files
//! and their breaks, resolve a break with a note.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::reconciliation as svc;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::money::Fen;
use zhudai_store::recon::{BreakRow, FileRow};

fn recorded<T: IntoResponse>(v: T) -> Response {
    let mut r = v.into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub id: i64,
    pub funder_code: String,
    pub file_name: String,
    pub sha256: String,
    pub date_from: String,
    pub date_to: String,
    pub lines: i64,
    /// Loan-days whose totals agree.
    pub matched: i64,
    pub breaks: i64,
    pub open_breaks: i64,
    /// Yuan.
    pub funder_total: String,
    /// Yuan.
    pub ours_total: String,
    pub imported_by: String,
    pub imported_at_ms: i64,
}

pub fn file_view(f: FileRow) -> FileView {
    FileView {
        id: f.id,
        funder_code: f.funder_code,
        file_name: f.file_name,
        sha256: f.sha256,
        date_from: f.date_from,
        date_to: f.date_to,
        lines: f.lines,
        matched: f.matched,
        breaks: f.breaks,
        open_breaks: f.open_breaks,
        funder_total: Fen::new(f.funder_total_fen).to_string(),
        ours_total: Fen::new(f.ours_total_fen).to_string(),
        imported_by: f.imported_by,
        imported_at_ms: f.imported_at_ms,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakView {
    pub id: i64,
    pub file_id: i64,
    pub funder_code: String,
    /// `missing` (the funder reports it, we have no record), `extra` (we have it, the
    /// funder does not report it), `amount_differs`.
    pub kind: String,
    pub loan_id: Option<i64>,
    pub loan_ref: String,
    pub value_date: String,
    /// Yuan.
    pub funder_amount: String,
    /// Yuan.
    pub our_amount: String,
    /// `open` or `resolved`.
    pub state: String,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at_ms: Option<i64>,
}

pub fn break_view(b: BreakRow) -> BreakView {
    BreakView {
        id: b.id,
        file_id: b.file_id,
        funder_code: b.funder_code,
        kind: b.kind,
        loan_id: b.loan_id,
        loan_ref: b.loan_ref,
        value_date: b.value_date,
        funder_amount: Fen::new(b.funder_fen).to_string(),
        our_amount: Fen::new(b.ours_fen).to_string(),
        state: b.state,
        resolution_note: b.resolution_note,
        resolved_by: b.resolved_by,
        resolved_at_ms: b.resolved_at_ms,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The funder's partner code.
    pub funder: String,
    /// The file's name, for the record.
    pub file_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileDetail {
    #[serde(flatten)]
    pub file: FileView,
    pub breaks: Vec<BreakView>,
    /// The same file was imported before; this is that import.
    pub replayed: bool,
}

/// Import a funder's daily repayment file (CSV as the body; UTF-8, GBK or UTF-16) and
/// match it against our repayments.
#[utoipa::path(post, path = "/api/v1/reconciliation/files", tag = "reconciliation", operation_id = "recon_import",
    params(ImportParams),
    request_body(content = String, content_type = "text/csv", description = "header: loan_ref and/or funder_loan_ref, value_date, amount[, external_ref]"),
    responses((status = 201, body = FileDetail), (status = 200, description = "The same file again: the earlier import", body = FileDetail),
              (status = 422, description = "Bad lines, each named", body = Problem, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let name = q.file_name.unwrap_or_else(|| "upload.csv".into());
    let out = svc::import(&state, &caller, &q.funder, &name, &body).await?;
    let detail = detail(&state, out.file_id, out.replayed).await?;
    let status = if out.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(recorded((status, axum::Json(detail))))
}

async fn detail(state: &AppState, id: i64, replayed: bool) -> Result<FileDetail, ApiError> {
    let f = state
        .store()
        .recon_file(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no reconciliation file has id {id}")))?;
    let breaks = state.store().recon_breaks_of(id).await?;
    Ok(FileDetail {
        file: file_view(f),
        breaks: breaks.into_iter().map(break_view).collect(),
        replayed,
    })
}

/// Imported files, newest first.
#[utoipa::path(get, path = "/api/v1/reconciliation/files", tag = "reconciliation", operation_id = "recon_files",
    responses((status = 200, body = [FileView])))]
pub async fn files(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<FileView>>> {
    let rows = state.store().recon_files(200).await?;
    Ok(ApiJson(rows.into_iter().map(file_view).collect()))
}

/// A file with its breaks.
#[utoipa::path(get, path = "/api/v1/reconciliation/files/{id}", tag = "reconciliation", operation_id = "recon_file",
    params(("id" = i64, Path)), responses((status = 200, body = FileDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn file(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<FileDetail>> {
    Ok(ApiJson(detail(&state, id, false).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreakSearch {
    /// `open` (default) or `resolved`.
    pub state: Option<String>,
}

/// Breaks across files, oldest first.
#[utoipa::path(get, path = "/api/v1/reconciliation/breaks", tag = "reconciliation", operation_id = "recon_breaks",
    params(BreakSearch), responses((status = 200, body = [BreakView])))]
pub async fn breaks(
    State(state): State<AppState>,
    Query(q): Query<BreakSearch>,
) -> ApiResult<ApiJson<Vec<BreakView>>> {
    let st = q.state.unwrap_or_else(|| "open".into());
    if !matches!(st.as_str(), "open" | "resolved") {
        return Err(ApiError::field("state", "invalid", "open or resolved"));
    }
    let rows = state.store().recon_breaks(&st, 1000).await?;
    Ok(ApiJson(rows.into_iter().map(break_view).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Resolution {
    /// How it was resolved (at least a few words).
    pub note: String,
}

/// Resolve a break with a note (audited).
#[utoipa::path(post, path = "/api/v1/reconciliation/breaks/{id}/resolution", tag = "reconciliation", operation_id = "recon_resolve",
    params(("id" = i64, Path)), request_body = Resolution,
    responses((status = 204), (status = 409, description = "Resolved already", body = Problem, content_type = "application/problem+json")))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<Resolution>,
) -> ApiResult<Response> {
    svc::resolve(&state, &caller, id, &b.note).await?;
    Ok(recorded(StatusCode::NO_CONTENT))
}
