//! Contracts and disbursement (issue #6): `/api/v1/contract-templates…` (versioned
//! templates, sample preview), `/api/v1/applications/{id}/contract` (generate, show),
//! `/api/v1/contracts/{id}…` (PDF, signatures, void). Disbursements arrive through the
//! funders' signed callback (`api::routing`).

use crate::api::documents::file_response;
use crate::api::partners::recorded;
use crate::auth::{AuditNote, Caller};
use crate::contracts::{self as svc, SignInput};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhudai_domain::money::Fen;
use zhudai_store::contracts::{ContractRow, DisbursementRow, SignatureRow, TemplateRow};

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub id: i64,
    pub code: String,
    pub version: i64,
    pub name: String,
    pub language: String,
    pub body: String,
    /// SHA-256 hex of `body`.
    pub digest: String,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

pub fn template_view(t: TemplateRow) -> TemplateView {
    TemplateView {
        id: t.id,
        code: t.code,
        version: t.version,
        name: t.name,
        language: t.language,
        body: t.body,
        digest: t.digest,
        created_by: t.created_by,
        created_at_ms: t.created_at_ms,
    }
}

/// The newest version of every contract template.
#[utoipa::path(get, path = "/api/v1/contract-templates", tag = "contracts", operation_id = "contract_templates_list",
    responses((status = 200, body = [TemplateView])))]
pub async fn templates_list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<TemplateView>>> {
    let rows = state.store().contract_templates().await?;
    Ok(axum::Json(rows.into_iter().map(template_view).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TemplateSave {
    /// `personal_loan`; a new code starts a new template.
    pub code: String,
    pub name: String,
    /// The template text (see `zhudai_domain::contract`): `# title`, `## heading`,
    /// paragraphs with `{{placeholders}}`, and the lines `{{table:disclosure}}`,
    /// `{{table:schedule}}`, `{{signatures}}`.
    pub body: String,
}

/// Save a template: stored as the next version of its code (old versions never change).
#[utoipa::path(post, path = "/api/v1/contract-templates", tag = "contracts", operation_id = "contract_templates_save",
    request_body = TemplateSave,
    responses((status = 201, body = TemplateView),
              (status = 422, description = "Unknown placeholder (with a suggestion), unclosed `{{`, no disclosure table or signatures: each named with its line", body = Problem, content_type = "application/problem+json")))]
pub async fn templates_save(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<TemplateSave>,
) -> ApiResult<Response> {
    let t = svc::save_template(&state, &caller, &b.code, &b.name, &b.body).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(template_view(t))).into_response(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceholderView {
    pub name: String,
    pub zh: String,
    pub en: String,
}

/// The placeholders a template may use.
#[utoipa::path(get, path = "/api/v1/contract-templates/placeholders", tag = "contracts", operation_id = "contract_templates_placeholders",
    responses((status = 200, body = [PlaceholderView])))]
pub async fn placeholders(_caller: Caller) -> axum::Json<Vec<PlaceholderView>> {
    axum::Json(
        zhudai_domain::contract::PLACEHOLDERS
            .iter()
            .map(|(n, zh, en)| PlaceholderView {
                name: (*n).into(),
                zh: (*zh).into(),
                en: (*en).into(),
            })
            .collect(),
    )
}

async fn template_of(state: &AppState, code: &str, version: i64) -> ApiResult<TemplateRow> {
    state
        .store()
        .contract_template(code, Some(version))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no template `{code}` version {version}")))
}

/// Every version of a template, newest first.
#[utoipa::path(get, path = "/api/v1/contract-templates/{code}", tag = "contracts", operation_id = "contract_templates_versions",
    params(("code" = String, Path)),
    responses((status = 200, body = [TemplateView]), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn template_versions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<TemplateView>>> {
    let rows = state.store().contract_template_versions(&code).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("no template `{code}`")));
    }
    Ok(axum::Json(rows.into_iter().map(template_view).collect()))
}

/// One version of a template.
#[utoipa::path(get, path = "/api/v1/contract-templates/{code}/versions/{version}", tag = "contracts", operation_id = "contract_templates_get",
    params(("code" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = TemplateView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn template_get(
    State(state): State<AppState>,
    _caller: Caller,
    Path((code, version)): Path<(String, i64)>,
) -> ApiResult<axum::Json<TemplateView>> {
    Ok(axum::Json(template_view(
        template_of(&state, &code, version).await?,
    )))
}

/// A template version filled with sample data, as PDF.
#[utoipa::path(get, path = "/api/v1/contract-templates/{code}/versions/{version}/preview", tag = "contracts", operation_id = "contract_templates_preview",
    params(("code" = String, Path), ("version" = i64, Path)),
    responses((status = 200, description = "A sample contract", content_type = "application/pdf"),
              (status = 503, description = "No CJK font", body = Problem, content_type = "application/problem+json")))]
pub async fn template_preview(
    State(state): State<AppState>,
    _caller: Caller,
    Path((code, version)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let t = template_of(&state, &code, version).await?;
    let pdf = svc::preview_pdf(&state, &t).await?;
    let mut r = file_response(
        pdf,
        "application/pdf",
        &format!("{code}-v{version}-sample.pdf"),
        AuditNote::default(),
    );
    r.extensions_mut().remove::<AuditNote>();
    Ok(r)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignatureView {
    pub id: i64,
    /// `borrower`, `funder` or `company`.
    pub party: String,
    /// `click_through`, `e_signature` or `wet_ink`.
    pub method: String,
    pub signer_name: String,
    pub provider_ref: Option<String>,
    pub evidence_sha256: String,
    pub signed_at_ms: i64,
    pub recorded_by: String,
    pub recorded_at_ms: i64,
}

fn signature_view(s: SignatureRow) -> SignatureView {
    SignatureView {
        id: s.id,
        party: s.party,
        method: s.method,
        signer_name: s.signer_name,
        provider_ref: s.provider_ref,
        evidence_sha256: s.evidence_sha256,
        signed_at_ms: s.signed_at_ms,
        recorded_by: s.recorded_by,
        recorded_at_ms: s.recorded_at_ms,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisbursementView {
    pub id: i64,
    pub funder_code: String,
    pub funder_loan_ref: String,
    /// Yuan.
    pub amount: String,
    pub disbursed_on: String,
    /// `callback` or `simulated`.
    pub source: String,
    /// The loan opened for it (`/loans/{id}`).
    pub loan_id: Option<i64>,
    pub created_at_ms: i64,
}

pub fn disbursement_view(d: DisbursementRow) -> DisbursementView {
    DisbursementView {
        id: d.id,
        funder_code: d.funder_code,
        funder_loan_ref: d.funder_loan_ref,
        amount: Fen::new(d.amount_fen).to_string(),
        disbursed_on: d.disbursed_on,
        source: d.source,
        loan_id: d.loan_id,
        created_at_ms: d.created_at_ms,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContractView {
    pub id: i64,
    pub contract_no: String,
    pub application_id: i64,
    /// `draft`, `signed` or `void`.
    pub status: String,
    pub template_code: Option<String>,
    pub template_version: Option<i64>,
    pub funder_code: String,
    /// Yuan.
    pub amount: String,
    pub months: i64,
    pub method: String,
    /// The all-in annual cost frozen in the contract.
    pub apr: String,
    /// SHA-256 hex of the PDF.
    pub pdf_sha256: String,
    pub pdf_bytes: i64,
    /// SHA-256 hex of `snapshot`.
    pub snapshot_digest: String,
    /// What was filled in (ID number masked) and the frozen quote with its disclosure.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
    pub generated_by: String,
    pub generated_at_ms: i64,
    pub signed_at_ms: Option<i64>,
    pub void_reason: Option<String>,
    pub signatures: Vec<SignatureView>,
    /// Parties still to sign.
    pub missing: Vec<String>,
}

pub async fn contract_view(state: &AppState, c: ContractRow) -> ApiResult<ContractView> {
    let sigs = state.store().contract_signatures(c.id).await?;
    contract_view_with(state, c, sigs).await
}

/// [`contract_view`] with the contract's signatures already read.
pub async fn contract_view_with(
    state: &AppState,
    c: ContractRow,
    sigs: Vec<SignatureRow>,
) -> ApiResult<ContractView> {
    let t = state.store().contract_template_by_id(c.template_id).await?;
    let missing = svc::PARTIES
        .iter()
        .filter(|p| !sigs.iter().any(|s| s.party == **p))
        .map(|p| (*p).to_owned())
        .collect();
    Ok(ContractView {
        id: c.id,
        contract_no: c.contract_no,
        application_id: c.application_id,
        status: c.status,
        template_code: t.as_ref().map(|t| t.code.clone()),
        template_version: t.map(|t| t.version),
        funder_code: c.funder_code,
        amount: Fen::new(c.amount_fen).to_string(),
        months: c.months,
        method: c.method,
        apr: c.apr,
        pdf_sha256: c.pdf_sha256,
        pdf_bytes: c.pdf_bytes,
        snapshot_digest: c.snapshot_digest,
        snapshot: serde_json::from_str(&c.snapshot).unwrap_or(serde_json::Value::Null),
        generated_by: c.generated_by,
        generated_at_ms: c.generated_at_ms,
        signed_at_ms: c.signed_at_ms,
        void_reason: c.void_reason,
        signatures: sigs.into_iter().map(signature_view).collect(),
        missing,
    })
}

#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct GenerateRequest {
    /// The template code (default `personal_loan`); its newest version is used.
    #[serde(default)]
    pub template: Option<String>,
}

/// Generate the application's contract (at the workflow's contract step): fills the
/// newest template version, freezes the cost disclosure, renders the PDF with a CJK font
/// and stores it encrypted with its SHA-256. A draft without signatures is replaced.
#[utoipa::path(post, path = "/api/v1/applications/{id}/contract", tag = "contracts", operation_id = "contracts_generate",
    params(("id" = i64, Path)), request_body = GenerateRequest,
    responses((status = 201, body = ContractView),
              (status = 409, description = "Not at the contract step, or a signed contract exists", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "No CJK font is installed or configured", body = Problem, content_type = "application/problem+json")))]
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // The body is optional: none, or `{"template": "…"}`.
    let b: GenerateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        GenerateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::field("body", "invalid", e.to_string()))?
    };
    let c = svc::generate(&state, &caller, id, b.template.as_deref()).await?;
    Ok(recorded(
        (
            StatusCode::CREATED,
            axum::Json(contract_view_with(&state, c, Vec::new()).await?),
        )
            .into_response(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationContract {
    /// The live contract, if one was generated and not voided.
    pub contract: Option<ContractView>,
    /// Earlier (void) contracts, newest first.
    pub void: Vec<ContractView>,
    pub disbursement: Option<DisbursementView>,
}

/// The application's contract, its signatures, and its disbursement.
#[utoipa::path(get, path = "/api/v1/applications/{id}/contract", tag = "contracts", operation_id = "contracts_of_application",
    params(("id" = i64, Path)),
    responses((status = 200, body = ApplicationContract), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn of_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ApplicationContract>> {
    let app = crate::applications::load(&state, &caller, id).await?;
    let mut live = None;
    let mut void = Vec::new();
    for c in state.store().contracts_of(app.id).await? {
        let v = contract_view(&state, c).await?;
        if v.status == "void" {
            void.push(v);
        } else {
            live = Some(v);
        }
    }
    let disbursement = state
        .store()
        .disbursement_of(app.id)
        .await?
        .map(disbursement_view);
    Ok(axum::Json(ApplicationContract {
        contract: live,
        void,
        disbursement,
    }))
}

/// Download a contract's PDF (decrypted and checked against its SHA-256; audited).
#[utoipa::path(get, path = "/api/v1/contracts/{id}/pdf", tag = "contracts", operation_id = "contracts_pdf",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The contract", content_type = "application/pdf"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let (c, app) = svc::load(&state, &caller, id).await?;
    let bytes = svc::pdf(&state, &c, &app).await?;
    Ok(file_response(
        bytes,
        "application/pdf",
        &format!("{}.pdf", c.contract_no),
        AuditNote::action("contract.download")
            .target(format!("application:{}", app.id))
            .digest(c.pdf_sha256.clone()),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignRequest {
    /// `borrower`, `funder` or `company`.
    pub party: String,
    /// `click_through`, `e_signature` (needs `provider_ref` and `evidence_sha256`) or
    /// `wet_ink` (needs `evidence_sha256` of the scan).
    pub method: String,
    /// Defaults to the party's name in the contract.
    pub signer_name: Option<String>,
    pub provider_ref: Option<String>,
    pub evidence_sha256: Option<String>,
    /// When it was signed (unix ms); defaults to now.
    pub signed_at_ms: Option<i64>,
}

/// Record one party's signature; the last one makes the contract `signed`.
#[utoipa::path(post, path = "/api/v1/contracts/{id}/signatures", tag = "contracts", operation_id = "contracts_sign",
    params(("id" = i64, Path)), request_body = SignRequest,
    responses((status = 201, body = ContractView),
              (status = 409, description = "Already signed by this party, or void", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<SignRequest>,
) -> ApiResult<Response> {
    let signed = svc::sign(
        &state,
        &caller,
        id,
        &SignInput {
            party: b.party,
            method: b.method,
            signer_name: b.signer_name,
            provider_ref: b.provider_ref,
            evidence_sha256: b.evidence_sha256,
            signed_at_ms: b.signed_at_ms,
        },
    )
    .await?;
    Ok(recorded(
        (
            StatusCode::CREATED,
            axum::Json(contract_view_with(&state, signed.contract, signed.signatures).await?),
        )
            .into_response(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VoidRequest {
    pub reason: String,
}

/// Void a contract (only while the application is at the contract step).
#[utoipa::path(post, path = "/api/v1/contracts/{id}/void", tag = "contracts", operation_id = "contracts_void",
    params(("id" = i64, Path)), request_body = VoidRequest,
    responses((status = 200, body = ContractView),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn void(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<VoidRequest>,
) -> ApiResult<Response> {
    let c = svc::void(&state, &caller, id, &b.reason).await?;
    Ok(recorded(
        axum::Json(contract_view(&state, c).await?).into_response(),
    ))
}
