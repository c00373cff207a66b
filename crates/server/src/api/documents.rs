//! Customer documents: upload (multipart), list, download (decrypted, audited),
//! versions, verification by a second person with automatic cross-checks, the
//! verification queue, and the completeness status the application workflow reads.

use crate::auth::{AuditNote, Caller};
use crate::customer_docs::{self as docs, DocumentView, Upload};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::document::{
    materials_complete, parse_type_list, AgeLimits, CrossCheck, MissingMaterial,
};

fn with_note(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

fn clear_read_note(resp: Response, clear: Vec<String>) -> Response {
    if clear.is_empty() {
        return resp;
    }
    with_note(
        resp,
        AuditNote::action("field.read_clear")
            .target(clear.join(",").chars().take(500).collect::<String>()),
    )
}

/// Reads a multipart upload: the `file` part (counted against `max` bytes while it
/// streams in) and the metadata fields.
pub async fn read_upload(mut mp: Multipart, max: usize) -> ApiResult<Upload> {
    let mut up = Upload::default();
    let mut saw_file = false;
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("a document is at most {max} bytes"))
        } else {
            ApiError::BadRequest(format!(
                "the multipart body is malformed: {}",
                e.body_text()
            ))
        }
    };
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            saw_file = true;
            up.file_name = field.file_name().unwrap_or_default().to_owned();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                if up.bytes.len() + chunk.len() > max {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "a document is at most {max} bytes (setting document_max_bytes)"
                    )));
                }
                up.bytes.extend_from_slice(&chunk);
            }
            continue;
        }
        let value = field.text().await.map_err(bad)?;
        if value.len() > 4096 {
            return Err(ApiError::field(
                &name,
                "too_long",
                "a form field is at most 4096 bytes",
            ));
        }
        let slot = match name.as_str() {
            "doc_type" => &mut up.meta.doc_type,
            "retention_class" => &mut up.meta.retention_class,
            "expiry_date" => &mut up.meta.expiry_date,
            "issued_date" => &mut up.meta.issued_date,
            "contract_end_date" => &mut up.meta.contract_end_date,
            "declared_name" => &mut up.meta.declared_name,
            "declared_id_number" => &mut up.meta.declared_id_number,
            _ => continue,
        };
        *slot = Some(value);
    }
    if !saw_file {
        return Err(ApiError::field(
            "file",
            "required",
            "attach the document as the `file` part",
        ));
    }
    Ok(up)
}

/// The multipart form of an upload (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The document: PDF, JPEG, PNG, WebP, TIFF or HEIC, detected from its content; the
    /// file name's extension must agree.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `id_front`, `id_back`, `residence_permit`, `income_proof`, `bank_statement`,
    /// `credit_report`, `business_licence`, `contract` or `other`.
    doc_type: String,
    /// `aml_10y`, `contract_5y_after_end` or `standard_3y`; the type's default if absent.
    retention_class: Option<String>,
    /// `YYYY-MM-DD`; required for id_back, residence_permit and business_licence.
    expiry_date: Option<String>,
    issued_date: Option<String>,
    contract_end_date: Option<String>,
    /// Name printed on an identity document.
    declared_name: Option<String>,
    /// ID number (USCC on a business licence) printed on an identity document.
    declared_id_number: Option<String>,
}

/// Upload a document (a new version of its type).
#[utoipa::path(post, path = "/api/v1/customers/{id}/documents", tag = "documents",
    params(("id" = i64, Path, description = "Customer id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = DocumentView),
              (status = 404, description = "No such customer in your scope", body = Problem, content_type = "application/problem+json"),
              (status = 413, description = "Larger than document_max_bytes; nothing stored", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Bad metadata, unknown content type or extension mismatch; nothing stored", body = Problem, content_type = "application/problem+json")))]
pub async fn upload_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let mp = mp.map_err(|e| {
        ApiError::UnsupportedMediaType(format!(
            "send the document as multipart/form-data with a `file` part ({})",
            e.body_text()
        ))
    })?;
    let up = read_upload(mp, state.settings().document_max_bytes).await?;
    let (view, note) = docs::upload(&state, &caller, &customer, up).await?;
    Ok(with_note(
        (StatusCode::CREATED, axum::Json(view)).into_response(),
        note,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    /// Every version of every type, by type then version.
    pub documents: Vec<DocumentView>,
}

/// List a customer's documents (every version).
#[utoipa::path(get, path = "/api/v1/customers/{id}/documents", tag = "documents",
    params(("id" = i64, Path, description = "Customer id")),
    responses((status = 200, body = DocumentList),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_documents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let (documents, clear) = docs::list_views(&state, &caller, &customer).await?;
    Ok(clear_read_note(
        axum::Json(DocumentList { documents }).into_response(),
        clear,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationView {
    pub decision: String,
    pub note: Option<String>,
    pub verifier_id: i64,
    pub at_ms: i64,
    /// The cross-checks the verifier saw.
    pub checks: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentDetail {
    pub document: DocumentView,
    pub verifications: Vec<VerificationView>,
}

/// One document version with its verification history.
#[utoipa::path(get, path = "/api/v1/customers/{id}/documents/{doc_id}", tag = "documents",
    params(("id" = i64, Path), ("doc_id" = i64, Path)),
    responses((status = 200, body = DocumentDetail),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_document(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, doc_id)): Path<(i64, i64)>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let d = docs::document_of(&state, &customer, doc_id).await?;
    let latest = state
        .store()
        .document_latest_version(customer.id, &d.doc_type)
        .await?
        .unwrap_or(d.version);
    let mut clear = Vec::new();
    let document = docs::view(&state, &caller, &customer, &d, latest, &mut clear).await?;
    let verifications = state
        .store()
        .document_verifications(d.id)
        .await?
        .into_iter()
        .map(|v| VerificationView {
            decision: v.decision,
            note: v.note,
            verifier_id: v.verifier_id,
            at_ms: v.at_ms,
            checks: serde_json::from_str(&v.checks_json).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(clear_read_note(
        axum::Json(DocumentDetail {
            document,
            verifications,
        })
        .into_response(),
        clear,
    ))
}

/// Download a document's content (decrypted; every download is audited).
#[utoipa::path(get, path = "/api/v1/customers/{id}/documents/{doc_id}/content", tag = "documents",
    params(("id" = i64, Path), ("doc_id" = i64, Path)),
    responses((status = 200, description = "The document, with its detected content type", content_type = "application/octet-stream"),
              (status = 404, description = "No such document, or erased", body = Problem, content_type = "application/problem+json")))]
pub async fn download_document(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, doc_id)): Path<(i64, i64)>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let d = docs::document_of(&state, &customer, doc_id).await?;
    let (bytes, name) = docs::content(&state, &customer, &d).await?;
    Ok(file_response(
        bytes.to_vec(),
        &d.content_type,
        &name,
        AuditNote::action("document.download")
            .target(format!("customer:{}/document:{}", customer.id, d.id))
            .digest(d.sha256.clone()),
    ))
}

/// A download response: content type, attachment name, no sniffing, no caching.
pub fn file_response(bytes: Vec<u8>, content_type: &str, name: &str, note: AuditNote) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_note(resp, note)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyBody {
    /// `verified`, `rejected` or `needs_more`.
    pub decision: String,
    /// The reason (rejected) or what is needed (needs_more).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgeQuery {
    /// Youngest accepted age (default 18) until products define it.
    pub min_age: Option<u32>,
    /// Oldest accepted age (default 65).
    pub max_age: Option<u32>,
}

impl AgeQuery {
    pub fn limits(&self) -> ApiResult<AgeLimits> {
        let d = AgeLimits::default();
        let l = AgeLimits {
            min: self.min_age.unwrap_or(d.min),
            max: self.max_age.unwrap_or(d.max),
        };
        if l.min > l.max || l.max > 150 {
            return Err(ApiError::field(
                "max_age",
                "out_of_range",
                "min_age ≤ max_age ≤ 150",
            ));
        }
        Ok(l)
    }
}

/// Decide a document version: verified, rejected (with a reason) or needs more (with a
/// note). The uploader may not verify their own upload (four eyes).
#[utoipa::path(post, path = "/api/v1/customers/{id}/documents/{doc_id}/verification", tag = "documents",
    params(("id" = i64, Path), ("doc_id" = i64, Path), AgeQuery),
    request_body = VerifyBody,
    responses((status = 200, body = DocumentView),
              (status = 403, description = "You uploaded it (four eyes), or no `document.verify`", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Already decided or superseded by a newer version", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Bad decision or missing note", body = Problem, content_type = "application/problem+json")))]
pub async fn verify_document(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, doc_id)): Path<(i64, i64)>,
    Query(age): Query<AgeQuery>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Response> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let (view, note) = docs::verify(
        &state,
        &caller,
        &customer,
        doc_id,
        &body.decision,
        body.note.as_deref(),
        age.limits()?,
    )
    .await?;
    Ok(with_note(axum::Json(view).into_response(), note))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Comma-separated required types, e.g. `id_front,id_back,income_proof`.
    pub required: Option<String>,
    pub min_age: Option<u32>,
    pub max_age: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaterialsStatus {
    /// Every required type has a verified, unexpired current version.
    pub complete: bool,
    #[schema(value_type = Vec<Object>)]
    pub missing: Vec<MissingMaterial>,
    /// The automatic cross-checks over the current versions.
    #[schema(value_type = Vec<Object>)]
    pub checks: Vec<CrossCheck>,
}

/// Whether the required materials are complete and verified (the document-review gate
/// of an application), with the cross-checks.
#[utoipa::path(get, path = "/api/v1/customers/{id}/documents/status", tag = "documents",
    params(("id" = i64, Path), StatusQuery),
    responses((status = 200, body = MaterialsStatus),
              (status = 422, description = "Unknown document type in `required`", body = Problem, content_type = "application/problem+json")))]
pub async fn documents_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<StatusQuery>,
) -> ApiResult<axum::Json<MaterialsStatus>> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let required = parse_type_list(q.required.as_deref().unwrap_or("")).map_err(docs::problem)?;
    let limits = AgeQuery {
        min_age: q.min_age,
        max_age: q.max_age,
    }
    .limits()?;
    let (cf, facts) = docs::facts(&state, &customer).await?;
    let today = state.clock().today();
    let missing = materials_complete(&required, &facts, today)
        .err()
        .unwrap_or_default();
    let checks = zhudai_domain::document::cross_checks(&cf, &facts, today, limits);
    Ok(axum::Json(MaterialsStatus {
        complete: missing.is_empty(),
        missing,
        checks,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    pub document: DocumentView,
    pub customer_name: String,
    #[schema(value_type = Vec<Object>)]
    pub checks: Vec<CrossCheck>,
    /// The caller uploaded it, so must leave it to someone else.
    pub own_upload: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    pub pending: Vec<QueueEntry>,
}

/// The verification queue: pending current versions in the caller's scope, oldest
/// first, with the cross-checks of each customer.
#[utoipa::path(get, path = "/api/v1/documents/pending", tag = "documents", params(AgeQuery),
    responses((status = 200, body = Queue)))]
pub async fn pending_documents(
    State(state): State<AppState>,
    caller: Caller,
    Query(age): Query<AgeQuery>,
) -> ApiResult<axum::Json<Queue>> {
    let entries = queue(&state, &caller, age.limits()?).await?;
    Ok(axum::Json(Queue { pending: entries }))
}

/// The queue entries (shared with the UI).
pub async fn queue(
    state: &AppState,
    caller: &Caller,
    limits: AgeLimits,
) -> ApiResult<Vec<QueueEntry>> {
    let scope = docs::scope_of(caller, state.store()).await?;
    let mut out = Vec::new();
    for item in state.store().documents_pending(500).await? {
        if !scope.admits(item.owner_user_id, item.org_unit_id) {
            continue;
        }
        let Some(customer) = state
            .store()
            .customer_get(item.document.customer_id)
            .await?
        else {
            continue;
        };
        let latest = state
            .store()
            .document_latest_version(customer.id, &item.document.doc_type)
            .await?
            .unwrap_or(item.document.version);
        if latest != item.document.version {
            continue;
        }
        let mut clear = Vec::new();
        let document =
            docs::view(state, caller, &customer, &item.document, latest, &mut clear).await?;
        out.push(QueueEntry {
            own_upload: item.document.uploaded_by == Some(caller.user_id),
            checks: docs::checks_for(state, &customer, limits).await?,
            customer_name: item.customer_name,
            document,
        });
    }
    Ok(out)
}
