//! Partners (合作机构): `/api/v1/partners…`, `/api/v1/admission-standards`,
//! `/api/v1/funder-performance.xlsx`. Thin handlers over [`crate::partners`]; every write
//! appends its audit record inside its own transaction.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::partners::{
    self as svc, AdmissionDecision, AdmissionSubmit, ContactRequest, ContactView, DocumentRequest,
    LicenceRequest, LimitsRequest, NewPartnerRequest, Origination, PartnerPatch, Performance,
    PricingRequest, StandardInput, StatusRequest,
};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_store::partners::Partner;

/// Marks a response whose audit record the handler appended itself.
pub fn recorded(mut resp: Response) -> Response {
    resp.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    resp
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerView {
    pub code: String,
    /// `funder`, `credit_enhancer`, `data_provider`, `collection_agency`.
    pub kind: String,
    pub name_zh: String,
    pub name_en: String,
    pub uscc: Option<String>,
    /// `applying`, `admitted`, `suspended`, `exited`.
    pub status: String,
    pub status_since: String,
    pub status_reason: Option<String>,
    /// From when their published partner list includes us; `null` = not listed.
    pub listed_us_on: Option<String>,
    pub agreement_start_on: Option<String>,
    pub agreement_end_on: Option<String>,
    pub next_review_on: Option<String>,
    /// `none`, `simulated`, `http`.
    pub adapter: String,
    pub endpoint_url: Option<String>,
    pub has_hmac_key: bool,
    pub timeout_ms: i64,
    pub sim_approval_bp: i64,
    pub sim_latency_ms: i64,
    pub priority: i64,
    pub eligibility_rule: String,
    pub rule_version: i64,
    pub notes: Option<String>,
    /// May the partner take new loans today (funders only).
    pub origination: Origination,
}

pub async fn view(state: &AppState, p: Partner) -> ApiResult<PartnerView> {
    let origination = svc::origination(state.store(), &p, state.clock().today()).await?;
    Ok(PartnerView {
        has_hmac_key: p.hmac_key_enc.is_some(),
        code: p.code,
        kind: p.kind,
        name_zh: p.name_zh,
        name_en: p.name_en,
        uscc: p.uscc,
        status: p.status,
        status_since: p.status_since,
        status_reason: p.status_reason,
        listed_us_on: p.listed_us_on,
        agreement_start_on: p.agreement_start_on,
        agreement_end_on: p.agreement_end_on,
        next_review_on: p.next_review_on,
        adapter: p.adapter,
        endpoint_url: p.endpoint_url,
        timeout_ms: p.timeout_ms,
        sim_approval_bp: p.sim_approval_bp,
        sim_latency_ms: p.sim_latency_ms,
        priority: p.priority,
        eligibility_rule: p.eligibility_rule,
        rule_version: p.rule_version,
        notes: p.notes,
        origination,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerFilter {
    pub kind: Option<String>,
    pub status: Option<String>,
}

/// List partners.
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", params(PartnerFilter),
    responses((status = 200, body = [PartnerView]),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(f): Query<PartnerFilter>,
) -> ApiResult<axum::Json<Vec<PartnerView>>> {
    let mut errors = Vec::new();
    let kind = f.kind.as_deref().filter(|k| !k.is_empty());
    if kind.is_some_and(|k| zhudai_domain::partner::PartnerKind::parse(k).is_none()) {
        errors.push(FieldError::new("kind", "invalid", "unknown partner kind"));
    }
    let status = f.status.as_deref().filter(|k| !k.is_empty());
    if status.is_some_and(|k| zhudai_domain::partner::PartnerStatus::parse(k).is_none()) {
        errors.push(FieldError::new("status", "invalid", "unknown status"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut out = Vec::new();
    for p in state.store().partners(kind, status).await? {
        out.push(view(&state, p).await?);
    }
    Ok(axum::Json(out))
}

/// Register a partner (status `applying`).
#[utoipa::path(post, path = "/api/v1/partners", tag = "partners", request_body = NewPartnerRequest,
    responses((status = 201, body = PartnerView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewPartnerRequest>,
) -> ApiResult<Response> {
    let p = svc::create(&state, &caller, &req).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(view(&state, p).await?)).into_response(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LicenceView {
    pub id: i64,
    pub licence_type: String,
    pub number: String,
    pub issuer: String,
    pub valid_until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: i64,
    pub reference: String,
    pub description: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionView {
    pub id: i64,
    /// `submitted`, `approved`, `rejected`.
    pub state: String,
    pub items: serde_json::Value,
    pub submitted_by: String,
    pub submitted_at_ms: i64,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    pub daily_quota_fen: i64,
    pub total_quota_fen: i64,
    pub per_customer_max_fen: Option<i64>,
    pub total_used_fen: i64,
    pub daily_used_fen: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    pub product_code: String,
    pub annual_rate: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReminderView {
    /// `annual_review` or `agreement_expiry`.
    pub kind: String,
    pub due_on: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusHistoryView {
    pub from_status: Option<String>,
    pub to_status: String,
    pub on_date: String,
    pub reason: Option<String>,
    pub actor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerDetail {
    pub partner: PartnerView,
    pub licences: Vec<LicenceView>,
    pub documents: Vec<DocumentView>,
    pub contacts: Vec<ContactView>,
    pub admissions: Vec<AdmissionView>,
    pub limits: Option<LimitsView>,
    pub pricing: Vec<PriceView>,
    /// Reminders recorded by the reminder job.
    pub reminders: Vec<ReminderView>,
    /// Reviews and agreement ends due within 30 days, computed now.
    pub due: Vec<ReminderView>,
    pub history: Vec<StatusHistoryView>,
}

/// Everything about a partner, and whether a contact phone was shown in clear.
pub async fn detail(
    state: &AppState,
    caller: &Caller,
    p: Partner,
) -> ApiResult<(PartnerDetail, bool)> {
    let store = state.store();
    let today = state.clock().today();
    let (contacts, clear) = svc::contacts(state, caller, p.id).await?;
    let limits = match store.partner_limits(p.id).await? {
        Some(l) => Some(LimitsView {
            daily_used_fen: store.partner_daily_used(p.id, &today.to_string()).await?,
            daily_quota_fen: l.daily_quota_fen,
            total_quota_fen: l.total_quota_fen,
            per_customer_max_fen: l.per_customer_max_fen,
            total_used_fen: l.total_used_fen,
        }),
        None => None,
    };
    let due = svc::due_reminders(&p, today)
        .into_iter()
        .map(|(kind, due_on)| ReminderView { kind, due_on })
        .collect();
    let d = PartnerDetail {
        licences: store
            .partner_licences(p.id)
            .await?
            .into_iter()
            .map(|l| LicenceView {
                id: l.id,
                licence_type: l.licence_type,
                number: l.number,
                issuer: l.issuer,
                valid_until: l.valid_until,
            })
            .collect(),
        documents: store
            .partner_documents(p.id)
            .await?
            .into_iter()
            .map(|d| DocumentView {
                id: d.id,
                reference: d.reference,
                description: d.description,
                sha256: d.sha256,
            })
            .collect(),
        contacts,
        admissions: store
            .admissions(p.id)
            .await?
            .into_iter()
            .map(|a| AdmissionView {
                id: a.id,
                state: a.state,
                items: serde_json::from_str(&a.items).unwrap_or(serde_json::Value::Null),
                submitted_by: a.submitted_by_name,
                submitted_at_ms: a.submitted_at_ms,
                decided_by: a.decided_by_name,
                decided_at_ms: a.decided_at_ms,
                decision_note: a.decision_note,
            })
            .collect(),
        limits,
        pricing: store
            .partner_pricing(p.id)
            .await?
            .into_iter()
            .map(|(product_code, annual_rate)| PriceView {
                product_code,
                annual_rate,
            })
            .collect(),
        reminders: store
            .partner_reminders(p.id)
            .await?
            .into_iter()
            .map(|r| ReminderView {
                kind: r.kind,
                due_on: r.due_on,
            })
            .collect(),
        due,
        history: store
            .partner_status_history(p.id)
            .await?
            .into_iter()
            .map(|h| StatusHistoryView {
                from_status: h.from_status,
                to_status: h.to_status,
                on_date: h.on_date,
                reason: h.reason,
                actor: h.actor,
            })
            .collect(),
        partner: view(state, p).await?,
    };
    Ok((d, clear))
}

/// One partner with its licences, documents, contacts, admissions, limits and pricing.
#[utoipa::path(get, path = "/api/v1/partners/{code}", tag = "partners", params(("code" = String, Path)),
    responses((status = 200, body = PartnerDetail),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = svc::find(&state, &code).await?;
    let (d, clear) = detail(&state, &caller, p).await?;
    let mut resp = axum::Json(d).into_response();
    if clear {
        resp.extensions_mut().insert(
            AuditNote::action("field.read_clear").target(format!("partner:{code}.contacts.phone")),
        );
    }
    Ok(resp)
}

/// Change a partner's details, partner-list date, agreement, adapter or eligibility rule.
#[utoipa::path(patch, path = "/api/v1/partners/{code}", tag = "partners", params(("code" = String, Path)), request_body = PartnerPatch,
    responses((status = 200, body = PartnerView),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<PartnerPatch>,
) -> ApiResult<Response> {
    let p = svc::patch(&state, &caller, &code, &req).await?;
    Ok(recorded(axum::Json(view(&state, p).await?).into_response()))
}

/// Suspend, reinstate or exit a partner (admission goes through the checklist).
#[utoipa::path(post, path = "/api/v1/partners/{code}/status", tag = "partners", params(("code" = String, Path)), request_body = StatusRequest,
    responses((status = 200, body = PartnerView),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Illegal transition or missing reason", body = Problem, content_type = "application/problem+json")))]
pub async fn partner_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<Response> {
    let p = svc::change_status(&state, &caller, &code, &req).await?;
    Ok(recorded(axum::Json(view(&state, p).await?).into_response()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

fn created(id: i64) -> Response {
    recorded((StatusCode::CREATED, axum::Json(Created { id })).into_response())
}

/// Register a licence.
#[utoipa::path(post, path = "/api/v1/partners/{code}/licences", tag = "partners", params(("code" = String, Path)), request_body = LicenceRequest,
    responses((status = 201, body = Created), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_add_licence(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<LicenceRequest>,
) -> ApiResult<Response> {
    Ok(created(
        svc::add_licence(&state, &caller, &code, &req).await?,
    ))
}

/// Register a document (metadata and an optional SHA-256; files live in document storage).
#[utoipa::path(post, path = "/api/v1/partners/{code}/documents", tag = "partners", params(("code" = String, Path)), request_body = DocumentRequest,
    responses((status = 201, body = Created), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_add_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<DocumentRequest>,
) -> ApiResult<Response> {
    Ok(created(
        svc::add_document(&state, &caller, &code, &req).await?,
    ))
}

/// Add a contact person (mobile stored encrypted).
#[utoipa::path(post, path = "/api/v1/partners/{code}/contacts", tag = "partners", params(("code" = String, Path)), request_body = ContactRequest,
    responses((status = 201, body = Created), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_add_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<ContactRequest>,
) -> ApiResult<Response> {
    Ok(created(
        svc::add_contact(&state, &caller, &code, &req).await?,
    ))
}

/// Submit the admission checklist for approval.
#[utoipa::path(post, path = "/api/v1/partners/{code}/admission", tag = "partners", params(("code" = String, Path)), request_body = AdmissionSubmit,
    responses((status = 201, body = Created),
              (status = 409, description = "Not applying, or a submission is already open", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_submit_admission(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<AdmissionSubmit>,
) -> ApiResult<Response> {
    Ok(created(
        svc::submit_admission(&state, &caller, &code, &req).await?,
    ))
}

/// Approve (admits the partner) or reject the open admission. The approver must not be
/// the submitter (four eyes).
#[utoipa::path(post, path = "/api/v1/partners/{code}/admission/decision", tag = "partners", params(("code" = String, Path)), request_body = AdmissionDecision,
    responses((status = 200, body = PartnerView),
              (status = 409, description = "Nothing to decide, same person, or failed standards", body = Problem, content_type = "application/problem+json")))]
pub async fn partner_decide_admission(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<AdmissionDecision>,
) -> ApiResult<Response> {
    let p = svc::decide_admission(&state, &caller, &code, &req).await?;
    Ok(recorded(axum::Json(view(&state, p).await?).into_response()))
}

/// Set the daily, total and per-customer quotas (fen).
#[utoipa::path(put, path = "/api/v1/partners/{code}/limits", tag = "partners", params(("code" = String, Path)), request_body = LimitsRequest,
    responses((status = 204), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_set_limits(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<LimitsRequest>,
) -> ApiResult<Response> {
    svc::set_limits(&state, &caller, &code, &req).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

/// Set (or remove) the funder's rate for a product code.
#[utoipa::path(put, path = "/api/v1/partners/{code}/pricing", tag = "partners", params(("code" = String, Path)), request_body = PricingRequest,
    responses((status = 204), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_set_pricing(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<PricingRequest>,
) -> ApiResult<Response> {
    svc::set_pricing(&state, &caller, &code, &req).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

/// A funder's volume, approval rate, time to decide, balance and overdue rate.
#[utoipa::path(get, path = "/api/v1/partners/{code}/performance", tag = "partners", params(("code" = String, Path)),
    responses((status = 200, body = Performance), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn partner_performance(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Performance>> {
    let p = svc::find(&state, &code).await?;
    Ok(axum::Json(svc::performance(&state, &p).await?))
}

/// Every funder's performance as an XLSX workbook (sheets `Funders` and `Daily`).
#[utoipa::path(get, path = "/api/v1/funder-performance.xlsx", tag = "partners",
    responses((status = 200, description = "XLSX workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn funder_performance_export(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Response> {
    let rows = svc::performances(&state).await?;
    let bytes = svc::performance_xlsx(&rows).map_err(ApiError::internal)?;
    let name = format!("funder-performance-{}.xlsx", state.clock().today());
    let mut resp = (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("partner.performance.export").target("funders".to_owned()));
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StandardView {
    pub code: String,
    pub title_zh: String,
    pub title_en: String,
    pub kinds: Vec<String>,
    pub required: bool,
}

/// The admission checklist's standards.
#[utoipa::path(get, path = "/api/v1/admission-standards", tag = "partners",
    responses((status = 200, body = [StandardView])))]
pub async fn admission_standards(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<StandardView>>> {
    Ok(axum::Json(
        state
            .store()
            .admission_standards()
            .await?
            .into_iter()
            .map(|s| StandardView {
                kinds: s
                    .kinds
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect(),
                code: s.code,
                title_zh: s.title_zh,
                title_en: s.title_en,
                required: s.required,
            })
            .collect(),
    ))
}

/// Replace the admission standards (unlisted ones are retired, kept for old checklists).
#[utoipa::path(put, path = "/api/v1/admission-standards", tag = "partners", request_body = [StandardInput],
    responses((status = 204), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn admission_standards_replace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Vec<StandardInput>>,
) -> ApiResult<Response> {
    svc::replace_standards(&state, &caller, &req).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}
