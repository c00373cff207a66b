//! Bulk customer import over HTTP: `POST /api/v1/customers/imports` (multipart upload,
//! runs as a background job), `GET …/imports/{id}` (status, progress, counts, first
//! problems) and `GET …/imports/{id}/errors.xlsx` (the row-level error report).

use crate::auth::{AuditNote, Caller};
use crate::customers::{audit_draft, scope_of};
use crate::error::{ApiError, ApiResult, Problem};
use crate::import::job::{file_aad, ImportPayload, ScopePayload, JOB_KIND};
use crate::import::report::{column_title, errors_xlsx, fix, problem_zh};
use crate::import::{digest, Table};
use crate::state::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_store::imports::{self as db, ImportJob, NewImport};
use zhudai_store::jobs::NewJob;

/// An import job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    pub id: i64,
    pub file_name: String,
    /// `csv` or `xlsx`.
    pub file_format: String,
    pub dry_run: bool,
    pub strict: bool,
    /// `queued`, `running`, `done`, `rejected` (strict mode found bad rows; nothing
    /// imported) or `failed`.
    pub status: String,
    /// `validating` (strict mode's first pass) or `writing`.
    pub phase: String,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub error: Option<String>,
    /// The first problems (at most 200); all of them are in `errors.xlsx`.
    pub problems: Vec<ProblemView>,
}

/// One problem of a rejected row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemView {
    pub row: i64,
    pub field: String,
    pub column: String,
    pub code: String,
    pub value_masked: Option<String>,
    pub problem_zh: String,
    pub problem_en: String,
    pub fix_zh: String,
    pub fix_en: String,
}

impl ImportView {
    pub fn of(j: &ImportJob, problems: Vec<db::ImportError>) -> Self {
        ImportView {
            id: j.id,
            file_name: j.file_name.clone(),
            file_format: j.file_format.clone(),
            dry_run: j.dry_run,
            strict: j.strict,
            status: j.status.clone(),
            phase: j.phase.clone(),
            total_rows: j.total_rows,
            processed_rows: j.counts.processed,
            inserted: j.counts.inserted,
            updated: j.counts.updated,
            unchanged: j.counts.unchanged,
            rejected: j.counts.rejected,
            error: j.error.clone(),
            problems: problems
                .into_iter()
                .map(|e| {
                    let (fix_zh, fix_en) = fix(&e.field, &e.code);
                    ProblemView {
                        row: e.row_no,
                        column: column_title(&e.field),
                        problem_zh: problem_zh(&e.code).to_owned(),
                        problem_en: e.message,
                        fix_zh: fix_zh.to_owned(),
                        fix_en: fix_en.to_owned(),
                        field: e.field,
                        code: e.code,
                        value_masked: e.value_masked,
                    }
                })
                .collect(),
        }
    }
}

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The CSV (UTF-8 or GBK) or XLSX file; the format is read from the content.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `true`: validate and report, write nothing.
    pub dry_run: Option<bool>,
    /// `true`: import nothing if any row is bad.
    pub strict: Option<bool>,
}

fn flag(v: &str) -> bool {
    matches!(v.trim(), "true" | "1" | "on" | "yes")
}

/// The upload: file bytes, name, flags.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub name: String,
    pub dry_run: bool,
    pub strict: bool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes are personal data: never printed.
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .field("dry_run", &self.dry_run)
            .field("strict", &self.strict)
            .finish()
    }
}

/// Reads the multipart form.
pub async fn read_upload(mut form: Multipart) -> ApiResult<Upload> {
    let mut up = Upload {
        bytes: Vec::new(),
        name: String::new(),
        dry_run: false,
        strict: false,
    };
    let mut have_file = false;
    while let Some(field) = form.next_field().await.map_err(|e| {
        ApiError::field(
            "file",
            "unreadable",
            format!("the upload cannot be read: {e}"),
        )
    })? {
        match field.name().unwrap_or("") {
            "file" => {
                up.name = field
                    .file_name()
                    .unwrap_or("upload")
                    .chars()
                    .take(200)
                    .collect();
                up.bytes = field
                    .bytes()
                    .await
                    .map_err(|e| {
                        ApiError::field(
                            "file",
                            "unreadable",
                            format!("the upload cannot be read: {e}"),
                        )
                    })?
                    .to_vec();
                have_file = true;
            }
            "dry_run" => up.dry_run = flag(&field.text().await.unwrap_or_default()),
            "strict" => up.strict = flag(&field.text().await.unwrap_or_default()),
            _ => {}
        }
    }
    if !have_file || up.bytes.is_empty() {
        return Err(ApiError::field(
            "file",
            "required",
            "choose a CSV or XLSX file",
        ));
    }
    Ok(up)
}

/// Stores the upload and queues its import; returns the import id. Nothing is stored
/// when the file cannot be read or lacks the required columns (422 naming `file`).
pub async fn start(state: &AppState, caller: &Caller, up: Upload) -> ApiResult<i64> {
    let table =
        Table::parse(&up.bytes).map_err(|e| ApiError::field("file", e.code(), e.to_string()))?;
    let scope = scope_of(caller, state.store()).await?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = db::import_insert(
        &mut tx,
        &NewImport {
            file_name: &up.name,
            file_format: table.format.as_str(),
            file_digest: &digest(&up.bytes),
            file_size: up.bytes.len() as i64,
            dry_run: up.dry_run,
            strict: up.strict,
            status: "queued",
            requested_by: Some(caller.user_id),
            owner_user_id: caller.user_id,
            org_unit_id: caller.org_unit_id,
            runner: Some("worker"),
        },
        now,
    )
    .await?;
    let sealed = state
        .vault()
        .encrypt_system(&file_aad(&id.to_string()), &up.bytes)
        .map_err(ApiError::internal)?;
    db::import_file_put(&mut tx, id, &sealed).await?;
    let payload = serde_json::to_value(ImportPayload {
        import_id: id,
        scope: ScopePayload::from(&scope),
        actor: caller.username.clone(),
        roles: caller.roles.join(","),
    })
    .map_err(ApiError::internal)?;
    zhudai_store::jobs::enqueue(&mut *tx, &NewJob::new(JOB_KIND, payload, now), now).await?;
    let draft = audit_draft(
        caller,
        now,
        "customer.import.start",
        format!("customer_import:{id}"),
    )
    .reason(format!(
        "{} ({} bytes, {}){}{}",
        up.name,
        up.bytes.len(),
        table.format.as_str(),
        if up.dry_run { ", dry run" } else { "" },
        if up.strict { ", strict" } else { "" }
    ));
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await.map_err(zhudai_store::StoreError::from)?;
    Ok(id)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportStarted {
    pub id: i64,
    pub status: String,
}

/// Upload a customer file (CSV or XLSX) and import it in the background.
#[utoipa::path(operation_id = "customer_imports_create", post, path = "/api/v1/customers/imports", tag = "customers",
    request_body(content = ImportUpload, content_type = "multipart/form-data"),
    responses((status = 202, body = ImportStarted),
              (status = 422, description = "No file, or a file that cannot be read or lacks the name / id_number columns", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    form: Multipart,
) -> ApiResult<Response> {
    let up = read_upload(form).await?;
    let id = start(&state, &caller, up).await?;
    let mut resp = (
        StatusCode::ACCEPTED,
        axum::Json(ImportStarted {
            id,
            status: "queued".into(),
        }),
    )
        .into_response();
    let mut note =
        AuditNote::action("customer.import.start").target(format!("customer_import:{id}"));
    note.recorded = true;
    resp.extensions_mut().insert(note);
    Ok(resp)
}

/// The import, if the caller may see it: their own, or anyone's for a caller whose data
/// scope is everything.
pub async fn visible(state: &AppState, caller: &Caller, id: i64) -> ApiResult<ImportJob> {
    let job = state
        .store()
        .import_get(id)
        .await?
        .filter(|j| j.requested_by == Some(caller.user_id) || caller.scope == "all")
        .ok_or_else(|| ApiError::NotFound(format!("no import has id {id}")))?;
    Ok(job)
}

/// Status, progress and counts of an import, with its first problems.
#[utoipa::path(operation_id = "customer_imports_get_one", get, path = "/api/v1/customers/imports/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = ImportView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ImportView>> {
    let job = visible(&state, &caller, id).await?;
    let problems = state.store().import_errors(id, 200).await?;
    Ok(axum::Json(ImportView::of(&job, problems)))
}

/// The row-level error report (XLSX): row, column, masked value, what is wrong and how
/// to fix it, in Chinese and English.
#[utoipa::path(operation_id = "customer_imports_errors", get, path = "/api/v1/customers/imports/{id}/errors.xlsx", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, description = "XLSX workbook", body = Vec<u8>, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    visible(&state, &caller, id).await?;
    let all = state.store().import_errors(id, i64::MAX).await?;
    let bytes = errors_xlsx(&all).map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-errors.xlsx\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
