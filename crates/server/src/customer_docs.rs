//! Customer documents, verification, consents and data-subject requests: the steps the
//! API (`api::documents`, `api::privacy`) and the UI (`ui::documents`, `ui::privacy`)
//! share. Rules live in `zhudai_domain::{document, privacy}`, SQL in
//! `zhudai_store::documents`; this module encrypts, stores blobs, applies the caller's
//! scope and writes the audit record inside each business transaction.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use crate::vault::{FieldAad, VaultError};
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use utoipa::ToSchema;
use zhudai_domain::customer::FieldProblem;
use zhudai_domain::document::{
    check_content, cross_checks, may_verify, AgeLimits, ContentType, CrossCheck, CustomerFacts,
    Decision, DocFacts, DocumentInput, DocumentType, RetentionClass, VerificationStatus,
    VerifyRefusal,
};
use zhudai_domain::privacy::{
    erasure_holds, is_overdue, ConsentFacts, RequestKind, RequestStatus, RetentionFacts,
};
use zhudai_store::audit::AuditDraft;
use zhudai_store::customers::{CustomerRow, ScopeFilter};
use zhudai_store::documents::{ConsentRow, DocumentRow, NewDocument, PrivacyRequestRow};
use zhudai_store::{Store, StoreError};

/// Room for the multipart framing and the metadata fields around a document of
/// `document_max_bytes`.
pub const MULTIPART_OVERHEAD: usize = 256 * 1024;

/// The routes that accept document uploads (bodies up to `document_max_bytes`).
pub const UPLOAD_ROUTES: &[&str] = &[
    "/api/v1/customers/{id}/documents",
    "/customers/{id}/documents",
];

/// Keeps `body_limit_bytes` for every route but the uploads: the outer body-limit layer
/// admits document-sized bodies, so a declared `Content-Length` above the ordinary limit
/// is refused here with 413 (bodies without a length are still capped by
/// `DefaultBodyLimit` in the extractors).
pub async fn body_limit_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let upload = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|m| UPLOAD_ROUTES.contains(&m.as_str()));
    let limit = state.settings().body_limit_bytes;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if !upload && declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge(format!(
            "the request body is larger than the configured limit ({limit} bytes)"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Table name in the AAD of document contents and fields.
const DOC_TABLE: &str = "customer_documents";

/// The vault subject of a customer: their own data key, destroyed on erasure.
pub fn subject_of(customer: &CustomerRow) -> String {
    format!("customer:{}", customer.ref_)
}

/// The AAD of a customer's encrypted column. Kept in one place so the customer API and
/// this module agree (`customers`, column, the customer's ref).
pub fn customer_field_aad<'a>(column: &'a str, customer: &'a CustomerRow) -> FieldAad<'a> {
    FieldAad::new("customers", column, &customer.ref_)
}

pub fn problems(p: Vec<FieldProblem>) -> ApiError {
    ApiError::Validation(
        p.into_iter()
            .map(|p| FieldError::new(p.field, p.code, p.message))
            .collect(),
    )
}

pub fn problem(p: FieldProblem) -> ApiError {
    problems(vec![p])
}

fn vault_err(e: VaultError) -> ApiError {
    match e {
        VaultError::Shredded { .. } => {
            ApiError::NotFound("the customer's data was erased and can no longer be read".into())
        }
        other => ApiError::Internal(other.to_string()),
    }
}

/// The customers a caller may see (one rule for the whole product: see
/// [`crate::customers::scope_of`]).
pub async fn scope_of(caller: &Caller, store: &Store) -> Result<ScopeFilter, StoreError> {
    crate::customers::scope_of(caller, store).await
}

/// The customer if it exists (404) and is inside the caller's data scope (403), as for
/// every customer route.
pub async fn customer_in_scope(
    state: &AppState,
    caller: &Caller,
    customer_id: i64,
) -> ApiResult<CustomerRow> {
    crate::customers::load_in_scope(state, caller, customer_id)
        .await
        .map(|(row, _)| row)
}

/// An audit record of `caller` doing `action` to `target`, for a business transaction.
pub fn draft(state: &AppState, caller: &Caller, action: &str, target: String) -> AuditDraft {
    crate::customers::audit_draft(caller, state.now_ms(), action, target)
}

/// Marks a response as already audited in its transaction.
pub fn recorded(action: &str) -> AuditNote {
    AuditNote {
        recorded: true,
        ..AuditNote::action(action)
    }
}

fn date(s: &Option<String>) -> Option<NaiveDate> {
    s.as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// A document version as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: i64,
    pub customer_id: i64,
    pub doc_type: String,
    pub version: i64,
    /// The newest version of its type.
    pub current: bool,
    /// Detected from the content (`application/pdf`, `image/png`, …).
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 (hex) of the plaintext content.
    pub sha256: String,
    pub original_name: Option<String>,
    pub retention_class: String,
    pub retain_until: Option<String>,
    pub expiry_date: Option<String>,
    /// Expired on the current business date.
    pub expired: bool,
    pub issued_date: Option<String>,
    pub contract_end_date: Option<String>,
    pub declared_name: Option<String>,
    /// Masked unless the caller's role sees `customer.id_number` in clear.
    pub declared_id_number: Option<String>,
    /// `pending`, `verified`, `rejected` or `needs_more`.
    pub status: String,
    pub uploaded_by: Option<i64>,
    pub uploaded_at_ms: i64,
    pub verified_by: Option<i64>,
    pub verified_at_ms: Option<i64>,
    pub verification_note: Option<String>,
    pub erased: bool,
}

/// Decrypts one of a document's fields; `None` when absent or erased.
async fn doc_field(
    state: &AppState,
    subject: &str,
    column: &str,
    d: &DocumentRow,
    enc: &Option<Vec<u8>>,
) -> ApiResult<Option<String>> {
    let Some(ct) = enc else { return Ok(None) };
    match state
        .vault()
        .decrypt_field(
            Some(subject),
            &FieldAad::new(DOC_TABLE, column, &d.ref_),
            ct,
        )
        .await
    {
        Ok(v) => Ok(Some(v.to_string())),
        Err(VaultError::Shredded { .. }) => Ok(None),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The view of `d`; records in `clear_reads` when a declared ID number is shown in clear.
pub async fn view(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    d: &DocumentRow,
    latest: i64,
    clear_reads: &mut Vec<String>,
) -> ApiResult<DocumentView> {
    let subject = subject_of(customer);
    let today = state.clock().today();
    let id_number = doc_field(
        state,
        &subject,
        "declared_id_number",
        d,
        &d.declared_id_number_enc,
    )
    .await?
    .map(|v| {
        if caller.sees_clear("customer.id_number") {
            clear_reads.push(format!("document:{}.declared_id_number", d.id));
            v
        } else {
            zhudai_domain::mask::resident_id(&v)
        }
    });
    Ok(DocumentView {
        id: d.id,
        customer_id: d.customer_id,
        doc_type: d.doc_type.clone(),
        version: d.version,
        current: d.version == latest,
        content_type: d.content_type.clone(),
        size_bytes: d.size_bytes,
        sha256: d.sha256.clone(),
        original_name: doc_field(state, &subject, "original_name", d, &d.original_name_enc).await?,
        retention_class: d.retention_class.clone(),
        retain_until: d.retain_until.clone(),
        expired: date(&d.expiry_date).is_some_and(|e| e < today),
        expiry_date: d.expiry_date.clone(),
        issued_date: d.issued_date.clone(),
        contract_end_date: d.contract_end_date.clone(),
        declared_name: doc_field(state, &subject, "declared_name", d, &d.declared_name_enc).await?,
        declared_id_number: id_number,
        status: d.status.clone(),
        uploaded_by: d.uploaded_by,
        uploaded_at_ms: d.uploaded_at_ms,
        verified_by: d.verified_by,
        verified_at_ms: d.verified_at_ms,
        verification_note: d.verification_note.clone(),
        erased: d.erased_at_ms.is_some(),
    })
}

/// The newest version per type among `docs`.
fn latest_of(docs: &[DocumentRow], doc_type: &str) -> i64 {
    docs.iter()
        .filter(|d| d.doc_type == doc_type)
        .map(|d| d.version)
        .max()
        .unwrap_or(0)
}

/// Every document of a customer, viewed; with the clear reads to audit.
pub async fn list_views(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
) -> ApiResult<(Vec<DocumentView>, Vec<String>)> {
    let docs = state.store().documents_of_customer(customer.id).await?;
    let mut clear = Vec::new();
    let mut out = Vec::with_capacity(docs.len());
    for d in &docs {
        let latest = latest_of(&docs, &d.doc_type);
        out.push(view(state, caller, customer, d, latest, &mut clear).await?);
    }
    Ok((out, clear))
}

/// An uploaded file with its form fields.
#[derive(Debug, Default)]
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub meta: DocumentInput,
}

/// Stores a new version: checks metadata and content (422 naming the field, nothing
/// stored), encrypts the content under the customer's key into the blob store, then
/// records the version and its audit record in one transaction. A failed transaction
/// deletes the blob again.
pub async fn upload(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    up: Upload,
) -> ApiResult<(DocumentView, AuditNote)> {
    if customer.status == "erased" {
        return Err(ApiError::Conflict(
            "the customer was erased; no documents can be added".into(),
        ));
    }
    let today = state.clock().today();
    let mut errs = Vec::new();
    let meta = up.meta.validate(today).map_err(|p| errs.extend(p)).ok();
    let content = check_content(&up.file_name, &up.bytes)
        .map_err(|p| errs.push(p))
        .ok();
    let (Some(meta), Some(content)) = (meta, content) else {
        return Err(problems(errs));
    };
    let subject = subject_of(customer);
    let doc_ref = uuid::Uuid::new_v4().to_string();
    let blob_key = format!("documents/{doc_ref}");
    let vault = state.vault();
    let enc = |column: &'static str, value: Option<String>| {
        let subject = subject.clone();
        let doc_ref = doc_ref.clone();
        async move {
            match value {
                Some(v) => vault
                    .encrypt_field(
                        Some(&subject),
                        &FieldAad::new(DOC_TABLE, column, &doc_ref),
                        &v,
                    )
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }
    };
    let name = up.file_name.trim().chars().take(200).collect::<String>();
    let original_name_enc = enc("original_name", Some(name).filter(|n| !n.is_empty()))
        .await
        .map_err(vault_err)?;
    let declared_name_enc = enc("declared_name", meta.declared_name.clone())
        .await
        .map_err(vault_err)?;
    let declared_id_number_enc = enc("declared_id_number", meta.declared_id_number.clone())
        .await
        .map_err(vault_err)?;
    let sha256 = hex::encode(Sha256::digest(&up.bytes));
    let sealed = vault
        .encrypt_bytes(
            Some(&subject),
            &FieldAad::new(DOC_TABLE, "content", &doc_ref),
            &up.bytes,
        )
        .await
        .map_err(vault_err)?;
    state
        .blobs()
        .put(&blob_key, sealed)
        .await
        .map_err(ApiError::internal)?;
    let new = NewDocument {
        ref_: doc_ref.clone(),
        customer_id: customer.id,
        doc_type: meta.doc_type.as_str().to_owned(),
        content_type: content.mime().to_owned(),
        size_bytes: up.bytes.len() as i64,
        sha256: sha256.clone(),
        blob_key: blob_key.clone(),
        original_name_enc,
        retention_class: meta.retention_class.as_str().to_owned(),
        retain_until: meta.retain_until(today).map(|d| d.to_string()),
        expiry_date: meta.expiry_date.map(|d| d.to_string()),
        issued_date: meta.issued_date.map(|d| d.to_string()),
        contract_end_date: meta.contract_end_date.map(|d| d.to_string()),
        declared_name_enc,
        declared_id_number_enc,
        uploaded_by: Some(caller.user_id),
    };
    let now = state.now_ms();
    let written: Result<(i64, i64), StoreError> = async {
        let mut tx = state.store().begin().await?;
        let (id, version) = zhudai_store::documents::document_insert(&mut tx, &new, now).await?;
        let d = draft(
            state,
            caller,
            "document.upload",
            format!("customer:{}/document:{id}", customer.id),
        )
        .change_digest(sha256.clone())
        .reason(format!("{} v{version}", new.doc_type));
        zhudai_store::audit::append(&mut tx, &d).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok((id, version))
    }
    .await;
    let (id, _) = match written {
        Ok(v) => v,
        Err(e) => {
            if let Err(del) = state.blobs().delete(&blob_key).await {
                tracing::warn!(error = %del, key = %blob_key, "could not delete the blob of a failed upload");
            }
            if e.is_unique_violation(
                "customer_documents_version_key",
                "customer_documents.version",
            ) {
                return Err(ApiError::Conflict(
                    "another upload of the same type finished first; try again".into(),
                ));
            }
            return Err(e.into());
        }
    };
    let row = state
        .store()
        .document_get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the new document vanished".into()))?;
    let mut clear = Vec::new();
    let v = view(state, caller, customer, &row, row.version, &mut clear).await?;
    Ok((v, recorded("document.upload")))
}

/// The document `doc_id` of `customer` (404 when it belongs to another customer).
pub async fn document_of(
    state: &AppState,
    customer: &CustomerRow,
    doc_id: i64,
) -> ApiResult<DocumentRow> {
    match state.store().document_get(doc_id).await? {
        Some(d) if d.customer_id == customer.id => Ok(d),
        _ => Err(ApiError::NotFound(format!(
            "customer {} has no document {doc_id}",
            customer.id
        ))),
    }
}

/// The decrypted content of a document and a download file name.
pub async fn content(
    state: &AppState,
    customer: &CustomerRow,
    d: &DocumentRow,
) -> ApiResult<(zeroize::Zeroizing<Vec<u8>>, String)> {
    if d.erased_at_ms.is_some() {
        return Err(ApiError::NotFound("the document was erased".into()));
    }
    let sealed = state
        .blobs()
        .get(&d.blob_key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("the document's content is missing".into()))?;
    let plain = state
        .vault()
        .decrypt_bytes(
            Some(&subject_of(customer)),
            &FieldAad::new(DOC_TABLE, "content", &d.ref_),
            &sealed,
        )
        .await
        .map_err(vault_err)?;
    let ext = ContentType::from_mime(&d.content_type)
        .and_then(|c| c.extensions().first().copied())
        .unwrap_or("bin");
    Ok((plain, format!("{}-v{}.{ext}", d.doc_type, d.version)))
}

/// The facts the cross-checks and the completeness rule need.
pub async fn facts(
    state: &AppState,
    customer: &CustomerRow,
) -> ApiResult<(CustomerFacts, Vec<DocFacts>)> {
    let subject = subject_of(customer);
    let id_number = match &customer.id_number_enc {
        Some(ct) => state
            .vault()
            .decrypt_field(
                Some(&subject),
                &customer_field_aad("id_number", customer),
                ct,
            )
            .await
            .ok()
            .map(|v| v.to_string()),
        None => None,
    };
    let cf = CustomerFacts {
        name: customer.name.clone(),
        id_number,
        birth_date: date(&customer.birth_date),
    };
    let mut docs = Vec::new();
    for d in state.store().documents_of_customer(customer.id).await? {
        if d.erased_at_ms.is_some() {
            continue;
        }
        let (Some(doc_type), Some(status)) = (
            DocumentType::parse(&d.doc_type),
            VerificationStatus::parse(&d.status),
        ) else {
            continue;
        };
        docs.push(DocFacts {
            id: d.id,
            doc_type,
            version: d.version,
            status,
            expiry_date: date(&d.expiry_date),
            declared_name: doc_field(state, &subject, "declared_name", &d, &d.declared_name_enc)
                .await?,
            declared_id_number: doc_field(
                state,
                &subject,
                "declared_id_number",
                &d,
                &d.declared_id_number_enc,
            )
            .await?,
        });
    }
    Ok((cf, docs))
}

/// The automatic cross-checks of a customer's current documents.
pub async fn checks_for(
    state: &AppState,
    customer: &CustomerRow,
    limits: AgeLimits,
) -> ApiResult<Vec<CrossCheck>> {
    let (cf, docs) = facts(state, customer).await?;
    Ok(cross_checks(&cf, &docs, state.clock().today(), limits))
}

/// Records a verifier's decision on a document version (four eyes: never the uploader).
pub async fn verify(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    doc_id: i64,
    decision: &str,
    note: Option<&str>,
    limits: AgeLimits,
) -> ApiResult<(DocumentView, AuditNote)> {
    let d = document_of(state, customer, doc_id).await?;
    let decision = Decision::parse(decision, note).map_err(problem)?;
    let latest = state
        .store()
        .document_latest_version(customer.id, &d.doc_type)
        .await?
        .unwrap_or(d.version);
    let status = VerificationStatus::parse(&d.status).unwrap_or(VerificationStatus::Pending);
    match may_verify(d.uploaded_by, caller.user_id, status, d.version == latest) {
        Ok(()) => {}
        Err(VerifyRefusal::OwnUpload) => {
            return Err(ApiError::Forbidden(
                "four eyes: you uploaded this document, so someone else must verify it".into(),
            ))
        }
        Err(VerifyRefusal::AlreadyDecided(s)) => {
            return Err(ApiError::Conflict(format!(
                "this version was already decided ({})",
                s.as_str()
            )))
        }
        Err(VerifyRefusal::Superseded) => {
            return Err(ApiError::Conflict(
                "a newer version of this document exists; verify that one".into(),
            ))
        }
    }
    if d.erased_at_ms.is_some() {
        return Err(ApiError::Conflict("the document was erased".into()));
    }
    let checks = checks_for(state, customer, limits).await?;
    let checks_json = serde_json::to_string(&checks).map_err(ApiError::internal)?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let done = zhudai_store::documents::document_decide(
        &mut tx,
        d.id,
        decision.status().as_str(),
        decision.note(),
        &checks_json,
        caller.user_id,
        now,
    )
    .await?;
    if !done {
        return Err(ApiError::Conflict(
            "someone decided this version first".into(),
        ));
    }
    let mut a = draft(
        state,
        caller,
        "document.verify",
        format!("customer:{}/document:{}", customer.id, d.id),
    )
    .reason(decision.status().as_str().to_owned());
    if let Some(n) = decision.note() {
        a = a.reason(format!("{}: {n}", decision.status().as_str()));
    }
    zhudai_store::audit::append(&mut tx, &a).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let row = document_of(state, customer, d.id).await?;
    let mut clear = Vec::new();
    let v = view(state, caller, customer, &row, latest, &mut clear).await?;
    Ok((v, recorded("document.verify")))
}

// ---------------------------------------------------------------- consents

/// A consent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: i64,
    pub customer_id: i64,
    pub purpose: String,
    pub recipients: Vec<String>,
    pub policy_version: String,
    /// `app`, `web`, `paper` or `phone`.
    pub channel: String,
    pub given_at_ms: i64,
    pub evidence_document_id: Option<i64>,
    pub recorded_by: Option<i64>,
    pub recorded_at_ms: i64,
    pub withdrawn_at_ms: Option<i64>,
    pub withdrawn_channel: Option<String>,
    /// In force now (given and not withdrawn).
    pub active: bool,
}

pub fn consent_view(c: ConsentRow, now_ms: i64) -> ConsentView {
    ConsentView {
        active: c.given_at_ms <= now_ms && c.withdrawn_at_ms.is_none_or(|w| w > now_ms),
        id: c.id,
        customer_id: c.customer_id,
        purpose: c.purpose,
        recipients: c.recipients,
        policy_version: c.policy_version,
        channel: c.channel,
        given_at_ms: c.given_at_ms,
        evidence_document_id: c.evidence_document_id,
        recorded_by: c.recorded_by,
        recorded_at_ms: c.recorded_at_ms,
        withdrawn_at_ms: c.withdrawn_at_ms,
        withdrawn_channel: c.withdrawn_channel,
    }
}

/// Records a consent.
pub async fn consent_record(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    input: &zhudai_domain::privacy::ConsentInput,
) -> ApiResult<(ConsentView, AuditNote)> {
    let now = state.now_ms();
    let mut errs = Vec::new();
    let valid = input.validate(now).map_err(|p| errs.extend(p)).ok();
    if let Some(doc) = input.evidence_document_id {
        match state.store().document_get(doc).await? {
            Some(d) if d.customer_id == customer.id => {}
            _ => errs.push(FieldProblem::new(
                "evidence_document_id",
                "not_found",
                "the evidence must be a document of this customer",
            )),
        }
    }
    let Some(v) = valid.filter(|_| errs.is_empty()) else {
        return Err(problems(errs));
    };
    let mut tx = state.store().begin().await?;
    let id = zhudai_store::documents::consent_insert(
        &mut *tx,
        &zhudai_store::documents::NewConsent {
            customer_id: customer.id,
            purpose: v.purpose.clone(),
            recipients: v.recipients.clone(),
            policy_version: v.policy_version.clone(),
            channel: v.channel.as_str().to_owned(),
            given_at_ms: v.given_at_ms,
            evidence_document_id: v.evidence_document_id,
            recorded_by: Some(caller.user_id),
        },
        now,
    )
    .await?;
    let a = draft(
        state,
        caller,
        "consent.record",
        format!("customer:{}/consent:{id}", customer.id),
    )
    .reason(format!(
        "{} → [{}] policy {}",
        v.purpose,
        v.recipients.join(","),
        v.policy_version
    ));
    zhudai_store::audit::append(&mut tx, &a).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let row = state
        .store()
        .consent_get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the new consent vanished".into()))?;
    Ok((consent_view(row, now), recorded("consent.record")))
}

/// Withdraws a consent in force.
pub async fn consent_withdraw(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    consent_id: i64,
    channel: Option<&str>,
    at_ms: Option<i64>,
) -> ApiResult<(ConsentView, AuditNote)> {
    let now = state.now_ms();
    let c = match state.store().consent_get(consent_id).await? {
        Some(c) if c.customer_id == customer.id => c,
        _ => {
            return Err(ApiError::NotFound(format!(
                "customer {} has no consent {consent_id}",
                customer.id
            )))
        }
    };
    let mut errs = Vec::new();
    let channel = match channel.and_then(zhudai_domain::privacy::Channel::parse) {
        Some(ch) => Some(ch),
        None => {
            errs.push(FieldProblem::new(
                "channel",
                "invalid",
                "the channel is app, web, paper or phone",
            ));
            None
        }
    };
    let at = at_ms.unwrap_or(now);
    if at > now || at < c.given_at_ms {
        errs.push(FieldProblem::new(
            "at_ms",
            "out_of_range",
            "a withdrawal is dated between the consent and now",
        ));
    }
    let Some(channel) = channel.filter(|_| errs.is_empty()) else {
        return Err(problems(errs));
    };
    let mut tx = state.store().begin().await?;
    let done = zhudai_store::documents::consent_withdraw(
        &mut *tx,
        c.id,
        at,
        channel.as_str(),
        Some(caller.user_id),
    )
    .await?;
    if !done {
        return Err(ApiError::Conflict(
            "the consent was already withdrawn".into(),
        ));
    }
    let a = draft(
        state,
        caller,
        "consent.withdraw",
        format!("customer:{}/consent:{}", customer.id, c.id),
    )
    .reason(format!("{} via {}", c.purpose, channel.as_str()));
    zhudai_store::audit::append(&mut tx, &a).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let row = state
        .store()
        .consent_get(c.id)
        .await?
        .ok_or_else(|| ApiError::Internal("the consent vanished".into()))?;
    Ok((consent_view(row, now), recorded("consent.withdraw")))
}

/// Whether customer `customer_id` consents to `purpose` for `recipient` (`None`: the
/// company's own processing) at instant `at_ms`. For the workflow and funder issues.
pub async fn has_consent(
    store: &Store,
    customer_id: i64,
    purpose: &str,
    recipient: Option<&str>,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let facts: Vec<ConsentFacts> = store
        .consents_of_customer(customer_id)
        .await?
        .into_iter()
        .map(|c| ConsentFacts {
            purpose: c.purpose,
            recipients: c.recipients,
            given_at_ms: c.given_at_ms,
            withdrawn_at_ms: c.withdrawn_at_ms,
        })
        .collect();
    Ok(zhudai_domain::privacy::has_consent(
        &facts, purpose, recipient, at_ms,
    ))
}

// ---------------------------------------------------------------- data-subject requests

/// A data-subject request as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestView {
    pub id: i64,
    pub customer_id: i64,
    /// `access`, `correction` or `deletion`.
    pub kind: String,
    /// `open`, `in_progress`, `completed` or `refused`.
    pub status: String,
    pub channel: String,
    /// What the person asked (gone once the customer is erased).
    pub details: Option<String>,
    pub received_on: String,
    pub due_on: String,
    pub overdue: bool,
    /// Days until the due date (negative when overdue).
    pub days_left: i64,
    pub created_by: Option<i64>,
    pub handled_by: Option<i64>,
    pub resolution: Option<String>,
    pub closed_at_ms: Option<i64>,
    /// For a correction: where staff make the change.
    pub customer_edit_url: Option<String>,
}

pub async fn request_view(
    state: &AppState,
    r: PrivacyRequestRow,
    customer: Option<&CustomerRow>,
) -> ApiResult<RequestView> {
    let today = state.clock().today();
    let due = NaiveDate::parse_from_str(&r.due_on, "%Y-%m-%d").unwrap_or(today);
    let status = RequestStatus::parse(&r.status).unwrap_or(RequestStatus::Open);
    let details = match (&r.details_enc, customer) {
        (Some(ct), Some(c)) => state
            .vault()
            .decrypt_field(
                Some(&subject_of(c)),
                &FieldAad::new("privacy_requests", "details", &r.id.to_string()),
                ct,
            )
            .await
            .ok()
            .map(|v| v.to_string()),
        _ => None,
    };
    Ok(RequestView {
        overdue: is_overdue(status, due, today),
        days_left: (due - today).num_days(),
        customer_edit_url: (r.kind == "correction")
            .then(|| format!("/customers/{}/edit", r.customer_id)),
        id: r.id,
        customer_id: r.customer_id,
        kind: r.kind,
        status: r.status,
        channel: r.channel,
        details,
        received_on: r.received_on,
        due_on: r.due_on,
        created_by: r.created_by,
        handled_by: r.handled_by,
        resolution: r.resolution,
        closed_at_ms: r.closed_at_ms,
    })
}

/// Records a new request; its due date is `privacy_request_days` calendar days later.
pub async fn request_create(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
    kind: Option<&str>,
    channel: Option<&str>,
    details: Option<&str>,
) -> ApiResult<(RequestView, AuditNote)> {
    let mut errs = Vec::new();
    let kind = match kind.and_then(RequestKind::parse) {
        Some(k) => Some(k),
        None => {
            errs.push(FieldProblem::new(
                "kind",
                "invalid",
                "the kind is access, correction or deletion",
            ));
            None
        }
    };
    let channel = match channel.and_then(zhudai_domain::privacy::Channel::parse) {
        Some(c) => Some(c),
        None => {
            errs.push(FieldProblem::new(
                "channel",
                "invalid",
                "the channel is app, web, paper or phone",
            ));
            None
        }
    };
    let details = match kind {
        Some(k) => zhudai_domain::privacy::check_details(k, details)
            .map_err(|p| errs.push(p))
            .ok()
            .flatten(),
        None => None,
    };
    let (Some(kind), Some(channel)) = (kind, channel) else {
        return Err(problems(errs));
    };
    if !errs.is_empty() {
        return Err(problems(errs));
    }
    if customer.status == "erased" {
        return Err(ApiError::Conflict("the customer was already erased".into()));
    }
    let today = state.clock().today();
    let due = zhudai_domain::privacy::due_date(today, state.settings().privacy_request_days);
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = zhudai_store::documents::privacy_request_insert(
        &mut *tx,
        &zhudai_store::documents::NewPrivacyRequest {
            customer_id: customer.id,
            kind: kind.as_str().to_owned(),
            channel: channel.as_str().to_owned(),
            details_enc: None,
            received_on: today.to_string(),
            due_on: due.to_string(),
            created_by: Some(caller.user_id),
        },
        now,
    )
    .await?;
    if let Some(text) = &details {
        // The row id is the AAD row key, so the details are sealed after the insert.
        let ct = state
            .vault()
            .encrypt_field(
                Some(&subject_of(customer)),
                &FieldAad::new("privacy_requests", "details", &id.to_string()),
                text,
            )
            .await
            .map_err(vault_err)?;
        zhudai_store::documents::privacy_request_set_details(&mut *tx, id, &ct).await?;
    }
    let a = draft(
        state,
        caller,
        "privacy.request.create",
        format!("customer:{}/privacy_request:{id}", customer.id),
    )
    .reason(format!("{} due {due}", kind.as_str()));
    zhudai_store::audit::append(&mut tx, &a).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let row = state
        .store()
        .privacy_request_get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the new request vanished".into()))?;
    Ok((
        request_view(state, row, Some(customer)).await?,
        recorded("privacy.request.create"),
    ))
}

/// A request and its customer, if the caller may see that customer.
pub async fn request_in_scope(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<(PrivacyRequestRow, CustomerRow)> {
    let r = state
        .store()
        .privacy_request_get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no privacy request {id}")))?;
    let c = customer_in_scope(state, caller, r.customer_id)
        .await
        .map_err(|_| ApiError::NotFound(format!("no privacy request {id}")))?;
    Ok((r, c))
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    Start,
    Complete,
    Refuse,
}

/// Moves a request on. Completing a deletion erases the customer (crypto-shredding:
/// the key is destroyed, the row's personal fields and every document's content are
/// deleted) unless a legal hold applies, in which case the request is refused with the
/// holds as its reason.
pub async fn request_act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: RequestAction,
    resolution: Option<&str>,
) -> ApiResult<(RequestView, AuditNote)> {
    let (r, customer) = request_in_scope(state, caller, id).await?;
    let from = RequestStatus::parse(&r.status).unwrap_or(RequestStatus::Open);
    let resolution = resolution.map(str::trim).filter(|s| !s.is_empty());
    let to = match action {
        RequestAction::Start => RequestStatus::InProgress,
        RequestAction::Complete => RequestStatus::Completed,
        RequestAction::Refuse => RequestStatus::Refused,
    };
    if !from.may_become(to) {
        return Err(ApiError::Conflict(format!(
            "a request that is {} cannot become {}",
            from.as_str(),
            to.as_str()
        )));
    }
    if to == RequestStatus::Refused && resolution.is_none() {
        return Err(ApiError::field(
            "resolution",
            "required",
            "give the reason for refusing the request (the person is told why)",
        ));
    }
    if resolution.is_some_and(|s| s.chars().count() > 2000) {
        return Err(ApiError::field(
            "resolution",
            "too_long",
            "a resolution is at most 2000 characters",
        ));
    }
    let now = state.now_ms();
    let target = format!("customer:{}/privacy_request:{id}", customer.id);
    if action == RequestAction::Complete && r.kind == RequestKind::Deletion.as_str() {
        return erase(state, caller, &r, &customer, from, resolution).await;
    }
    let mut tx = state.store().begin().await?;
    let ok = zhudai_store::documents::privacy_request_transition(
        &mut *tx,
        id,
        from.as_str(),
        to.as_str(),
        caller.user_id,
        resolution,
        now,
    )
    .await?;
    if !ok {
        return Err(ApiError::Conflict(
            "the request changed meanwhile; reload".into(),
        ));
    }
    let action_name = format!("privacy.request.{}", to.as_str());
    let mut a = draft(state, caller, &action_name, target);
    if let Some(res) = resolution {
        a = a.reason(res.to_owned());
    }
    zhudai_store::audit::append(&mut tx, &a).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let row = state
        .store()
        .privacy_request_get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("the request vanished".into()))?;
    Ok((
        request_view(state, row, Some(&customer)).await?,
        recorded(&action_name),
    ))
}

async fn erase(
    state: &AppState,
    caller: &Caller,
    r: &PrivacyRequestRow,
    customer: &CustomerRow,
    from: RequestStatus,
    resolution: Option<&str>,
) -> ApiResult<(RequestView, AuditNote)> {
    let today = state.clock().today();
    let now = state.now_ms();
    let docs = state.store().documents_of_customer(customer.id).await?;
    let retention: Vec<RetentionFacts> = docs
        .iter()
        .filter(|d| d.erased_at_ms.is_none())
        .filter_map(|d| {
            Some(RetentionFacts {
                document_id: d.id,
                class: RetentionClass::parse(&d.retention_class)?,
                retain_until: date(&d.retain_until),
            })
        })
        .collect();
    let holds = erasure_holds(date(&customer.legal_hold_until), &retention, today);
    let target = format!("customer:{}/privacy_request:{}", customer.id, r.id);
    if !holds.is_empty() {
        // Refused with the reasons; nothing is erased.
        let reason = format!(
            "refused: legal hold — {}",
            holds
                .iter()
                .map(|h| h.detail.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let mut tx = state.store().begin().await?;
        let ok = zhudai_store::documents::privacy_request_transition(
            &mut *tx,
            r.id,
            from.as_str(),
            RequestStatus::Refused.as_str(),
            caller.user_id,
            Some(&reason),
            now,
        )
        .await?;
        if !ok {
            return Err(ApiError::Conflict(
                "the request changed meanwhile; reload".into(),
            ));
        }
        let a = draft(state, caller, "privacy.deletion.refused", target).reason(reason);
        zhudai_store::audit::append(&mut tx, &a).await?;
        tx.commit().await.map_err(StoreError::from)?;
    } else {
        // Destroy the key first: from here on every ciphertext of this person —
        // fields, documents, backups — is unreadable, even if a later step fails (a
        // retry finishes the clean-up).
        let subject = subject_of(customer);
        state
            .vault()
            .shred_subject(&subject)
            .await
            .map_err(ApiError::internal)?;
        let mut tx = state.store().begin().await?;
        let keys =
            zhudai_store::documents::documents_erase_customer(&mut tx, customer.id, now).await?;
        zhudai_store::customers::customer_erase(&mut *tx, customer.id, now).await?;
        let text = format!(
            "erased: data key destroyed, personal fields cleared, {} document file(s) deleted{}",
            keys.len(),
            resolution.map(|r| format!(" — {r}")).unwrap_or_default()
        );
        let ok = zhudai_store::documents::privacy_request_transition(
            &mut *tx,
            r.id,
            from.as_str(),
            RequestStatus::Completed.as_str(),
            caller.user_id,
            Some(&text),
            now,
        )
        .await?;
        if !ok {
            return Err(ApiError::Conflict(
                "the request changed meanwhile; reload".into(),
            ));
        }
        let a = draft(state, caller, "privacy.deletion.completed", target).reason(text);
        zhudai_store::audit::append(&mut tx, &a).await?;
        tx.commit().await.map_err(StoreError::from)?;
        for key in keys {
            if let Err(e) = state.blobs().delete(&key).await {
                // The blob is unreadable without the destroyed key; log and go on.
                tracing::warn!(error = %e, %key, "could not delete an erased document's blob");
            }
        }
    }
    let row = state
        .store()
        .privacy_request_get(r.id)
        .await?
        .ok_or_else(|| ApiError::Internal("the request vanished".into()))?;
    let customer = state
        .store()
        .customer_get(customer.id)
        .await?
        .unwrap_or_else(|| customer.clone());
    Ok((
        request_view(state, row, Some(&customer)).await?,
        recorded("privacy.deletion"),
    ))
}

/// The access/copy export of a customer: a ZIP with `customer.json` (every field
/// decrypted), `documents.json`, `consents.json`, `requests.json` and each document's
/// content under `documents/`.
pub async fn export_zip(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerRow,
) -> ApiResult<Vec<u8>> {
    let subject = subject_of(customer);
    let field = |column: &'static str, enc: &Option<Vec<u8>>| {
        let enc = enc.clone();
        let subject = subject.clone();
        async move {
            match enc {
                Some(ct) => state
                    .vault()
                    .decrypt_field(Some(&subject), &customer_field_aad(column, customer), &ct)
                    .await
                    .map(|v| Some(v.to_string()))
                    .map_err(vault_err),
                None => Ok(None),
            }
        }
    };
    let person = serde_json::json!({
        "id": customer.id,
        "ref": customer.ref_,
        "kind": customer.kind,
        "name": customer.name,
        "id_kind": customer.id_kind,
        "id_number": field("id_number", &customer.id_number_enc).await?,
        "phone": field("phone", &customer.phone_enc).await?,
        "bank_card": field("bank_card", &customer.bank_card_enc).await?,
        "email": field("email", &customer.email_enc).await?,
        "address": field("address", &customer.address_enc).await?,
        "monthly_income": field("monthly_income", &customer.monthly_income_enc).await?,
        "birth_date": customer.birth_date,
        "gender": customer.gender,
        "region_code": customer.region_code,
        "status": customer.status,
        "created_at_ms": customer.created_at_ms,
    });
    let (docs, _) = list_views(state, &full_view(caller), customer).await?;
    let consents: Vec<ConsentView> = state
        .store()
        .consents_of_customer(customer.id)
        .await?
        .into_iter()
        .map(|c| consent_view(c, state.now_ms()))
        .collect();
    let mut requests = Vec::new();
    for r in state
        .store()
        .privacy_requests(false, Some(customer.id), 1000)
        .await?
    {
        requests.push(request_view(state, r, Some(customer)).await?);
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut put = |name: &str, bytes: &[u8]| -> ApiResult<()> {
            zip.start_file(name, opts).map_err(ApiError::internal)?;
            zip.write_all(bytes).map_err(ApiError::internal)
        };
        let json = |v: &dyn erased_serde_json::Json| v.pretty();
        put("customer.json", &json(&person)?)?;
        put("documents.json", &json(&docs)?)?;
        put("consents.json", &json(&consents)?)?;
        put("requests.json", &json(&requests)?)?;
        for d in state.store().documents_of_customer(customer.id).await? {
            if d.erased_at_ms.is_some() {
                continue;
            }
            let (bytes, name) = content(state, customer, &d).await?;
            put(&format!("documents/{name}"), &bytes)?;
        }
        zip.finish().map_err(ApiError::internal)?;
    }
    Ok(buf.into_inner())
}

/// The caller as someone who sees every field in clear (the export gives the person
/// their own data unmasked).
fn full_view(caller: &Caller) -> Caller {
    let mut c = caller.clone();
    c.clear_fields.insert("customer.id_number".into());
    c
}

mod erased_serde_json {
    //! Pretty JSON of any serialisable value, as an object-safe trait.
    use crate::error::{ApiError, ApiResult};

    pub trait Json {
        fn pretty(&self) -> ApiResult<Vec<u8>>;
    }

    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> ApiResult<Vec<u8>> {
            serde_json::to_vec_pretty(self).map_err(ApiError::internal)
        }
    }
}
