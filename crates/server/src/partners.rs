//! The partner registry's operations, shared by the API (`api::partners`) and the pages
//! (`ui::funders`): validation into domain rules, one transaction per change with its
//! audit record inside, and the views both render.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use crate::vault::FieldAad;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhudai_domain::ident::Mobile;
use zhudai_domain::partner::{
    check_approval, check_checklist, check_code, check_transition, may_originate, next_review,
    reminders_due, AdmissionStandard, ApprovalError, ChecklistItem, PartnerKind, PartnerStatus,
    TransitionPath, REMINDER_WINDOW_DAYS,
};
use zhudai_store::audit::AuditDraft;
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::partners::{self as sp, Partner, StandardRow};
use zhudai_store::{Store, StoreError};

/// Job kind: record review and agreement-expiry reminders (daily).
pub const REMINDER_JOB: &str = "funders.reminders";
const DAY_MS: i64 = 86_400_000;
const CONTACT_TABLE: &str = "partner_contacts";
const CONTACT_COLUMN: &str = "phone_enc";

pub fn parse_date(field: &str, v: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d.to_string()),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid_date",
                "use a date YYYY-MM-DD",
            ));
            None
        }
    }
}

fn opt_date(field: &str, v: &Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    match v.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => parse_date(field, d, errors),
    }
}

/// An audit record of the caller's action, appended inside the change's transaction.
pub fn draft(state: &AppState, caller: &Caller, action: &str, target: String) -> AuditDraft {
    let mut d = AuditDraft::new(state.now_ms(), action, "success")
        .actor(caller.username.clone())
        .role(caller.roles.join(","))
        .target(target);
    if let Some(id) = crate::http::request_id::current_request_id() {
        d = d.request_id(id);
    }
    d
}

pub async fn find(state: &AppState, code: &str) -> ApiResult<Partner> {
    state
        .store()
        .partner_by_code(code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no partner has code `{code}`")))
}

// ---------------------------------------------------------------------------------------
// Create and edit

/// A new partner.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartnerRequest {
    /// `a-z 0-9 _`, e.g. `bank_a`; products list funders by this code.
    pub code: String,
    /// `funder`, `credit_enhancer`, `data_provider` or `collection_agency`.
    pub kind: String,
    pub name_zh: String,
    pub name_en: String,
    /// Unified social credit code (统一社会信用代码).
    #[serde(default)]
    pub uscc: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Editable fields; absent fields are unchanged, `""` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    pub name_zh: Option<String>,
    pub name_en: Option<String>,
    pub uscc: Option<String>,
    /// From when their published partner list includes us (`YYYY-MM-DD`; `""` = not listed).
    pub listed_us_on: Option<String>,
    pub agreement_start_on: Option<String>,
    pub agreement_end_on: Option<String>,
    pub next_review_on: Option<String>,
    /// `none`, `simulated` or `http`.
    pub adapter: Option<String>,
    pub endpoint_url: Option<String>,
    /// Write-only HMAC key (at least 32 characters); stored encrypted.
    pub hmac_key: Option<String>,
    pub timeout_ms: Option<i64>,
    /// Simulated funder: approvals per 10,000.
    pub sim_approval_bp: Option<i64>,
    pub sim_latency_ms: Option<i64>,
    pub sim_seed: Option<i64>,
    /// Lower is tried first (with the `priority` criterion).
    pub priority: Option<i64>,
    /// Eligibility rule in the expression language over `app.amount` (yuan, decimal),
    /// `app.months`, `app.product`, `customer.age`, `customer.province`,
    /// `decision.grade`, `decision.score`.
    pub eligibility_rule: Option<String>,
    pub notes: Option<String>,
}

fn blank_to_none(v: &str) -> Option<String> {
    let t = v.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: &NewPartnerRequest,
) -> ApiResult<Partner> {
    let mut errors = Vec::new();
    let code = req.code.trim();
    if let Err(m) = check_code(code) {
        errors.push(FieldError::new("code", "invalid", m));
    }
    if PartnerKind::parse(&req.kind).is_none() {
        errors.push(FieldError::new(
            "kind",
            "invalid",
            "use funder, credit_enhancer, data_provider or collection_agency",
        ));
    }
    if req.name_zh.trim().is_empty() {
        errors.push(FieldError::new(
            "name_zh",
            "required",
            "give the Chinese name",
        ));
    }
    if req.name_en.trim().is_empty() {
        errors.push(FieldError::new(
            "name_en",
            "required",
            "give the English name",
        ));
    }
    let uscc = req.uscc.as_deref().and_then(blank_to_none);
    if let Some(u) = &uscc {
        if let Err(e) = zhudai_domain::Uscc::parse(u) {
            errors.push(FieldError::new("uscc", e.code(), e.to_string()));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = state.now_ms();
    let p = Partner {
        id: 0,
        code: code.to_owned(),
        kind: req.kind.clone(),
        name_zh: req.name_zh.trim().to_owned(),
        name_en: req.name_en.trim().to_owned(),
        uscc,
        status: PartnerStatus::Applying.as_str().into(),
        status_since: state.clock().today().to_string(),
        status_reason: None,
        listed_us_on: None,
        agreement_start_on: None,
        agreement_end_on: None,
        next_review_on: None,
        adapter: "none".into(),
        endpoint_url: None,
        hmac_key_enc: None,
        timeout_ms: 5000,
        sim_approval_bp: 7000,
        sim_latency_ms: 0,
        sim_seed: 1,
        priority: 100,
        eligibility_rule: "true".into(),
        rule_version: 1,
        notes: req.notes.as_deref().and_then(blank_to_none),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let mut tx = state.store().begin().await?;
    match sp::partner_insert(&mut tx, &p, &caller.username, now).await {
        Ok(_) => {}
        Err(e) if e.is_unique_violation("partners_code_key", "partners.code") => {
            return Err(ApiError::field(
                "code",
                "taken",
                format!("the code `{code}` is already used"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    zhudai_store::audit::append(
        &mut tx,
        &draft(state, caller, "partner.create", format!("partner:{code}")),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    find(state, code).await
}

pub async fn patch(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &PartnerPatch,
) -> ApiResult<Partner> {
    let mut p = find(state, code).await?;
    let mut errors = Vec::new();
    if let Some(v) = &req.name_zh {
        match blank_to_none(v) {
            Some(v) => p.name_zh = v,
            None => errors.push(FieldError::new(
                "name_zh",
                "required",
                "the name cannot be empty",
            )),
        }
    }
    if let Some(v) = &req.name_en {
        match blank_to_none(v) {
            Some(v) => p.name_en = v,
            None => errors.push(FieldError::new(
                "name_en",
                "required",
                "the name cannot be empty",
            )),
        }
    }
    if let Some(v) = &req.uscc {
        p.uscc = blank_to_none(v);
        if let Some(u) = &p.uscc {
            if let Err(e) = zhudai_domain::Uscc::parse(u) {
                errors.push(FieldError::new("uscc", e.code(), e.to_string()));
            }
        }
    }
    if req.listed_us_on.is_some() {
        p.listed_us_on = opt_date("listed_us_on", &req.listed_us_on, &mut errors);
    }
    if req.agreement_start_on.is_some() {
        p.agreement_start_on = opt_date("agreement_start_on", &req.agreement_start_on, &mut errors);
    }
    if req.agreement_end_on.is_some() {
        p.agreement_end_on = opt_date("agreement_end_on", &req.agreement_end_on, &mut errors);
    }
    if let (Some(s), Some(e)) = (&p.agreement_start_on, &p.agreement_end_on) {
        if e < s {
            errors.push(FieldError::new(
                "agreement_end_on",
                "before_start",
                "the agreement cannot end before it starts",
            ));
        }
    }
    if req.next_review_on.is_some() {
        p.next_review_on = opt_date("next_review_on", &req.next_review_on, &mut errors);
    }
    if let Some(a) = &req.adapter {
        if matches!(a.as_str(), "none" | "simulated" | "http") {
            p.adapter = a.clone();
        } else {
            errors.push(FieldError::new(
                "adapter",
                "invalid",
                "use none, simulated or http",
            ));
        }
    }
    if let Some(u) = &req.endpoint_url {
        p.endpoint_url = blank_to_none(u);
        if let Some(u) = &p.endpoint_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                errors.push(FieldError::new(
                    "endpoint_url",
                    "invalid",
                    "use an http(s) URL",
                ));
            }
        }
    }
    if let Some(k) = &req.hmac_key {
        if k.len() < 32 {
            errors.push(FieldError::new(
                "hmac_key",
                "too_short",
                "the key needs at least 32 characters",
            ));
        } else {
            p.hmac_key_enc = Some(
                state
                    .vault()
                    .encrypt_field(
                        None,
                        &FieldAad::new(
                            crate::routing::KEY_TABLE,
                            crate::routing::KEY_COLUMN,
                            &p.code,
                        ),
                        k,
                    )
                    .await
                    .map_err(ApiError::internal)?,
            );
        }
    }
    let mut range = |field: &str, v: Option<i64>, lo: i64, hi: i64, target: &mut i64| {
        if let Some(v) = v {
            if (lo..=hi).contains(&v) {
                *target = v;
            } else {
                errors.push(FieldError::new(
                    field,
                    "out_of_range",
                    format!("use {lo}–{hi}"),
                ));
            }
        }
    };
    range("timeout_ms", req.timeout_ms, 10, 120_000, &mut p.timeout_ms);
    range(
        "sim_approval_bp",
        req.sim_approval_bp,
        0,
        10_000,
        &mut p.sim_approval_bp,
    );
    range(
        "sim_latency_ms",
        req.sim_latency_ms,
        0,
        120_000,
        &mut p.sim_latency_ms,
    );
    range(
        "sim_seed",
        req.sim_seed,
        i64::MIN,
        i64::MAX,
        &mut p.sim_seed,
    );
    range("priority", req.priority, 0, 1_000_000, &mut p.priority);
    if let Some(rule) = &req.eligibility_rule {
        let rule = if rule.trim().is_empty() {
            "true"
        } else {
            rule.trim()
        };
        match crate::routing::check_rule(rule) {
            Ok(()) => p.eligibility_rule = rule.to_owned(),
            Err(e) => errors.push(FieldError::new("eligibility_rule", "invalid_rule", e)),
        }
    }
    if let Some(n) = &req.notes {
        p.notes = blank_to_none(n);
    }
    if p.adapter == "http" && (p.endpoint_url.is_none() || p.hmac_key_enc.is_none()) {
        errors.push(FieldError::new(
            "adapter",
            "incomplete",
            "the HTTP adapter needs endpoint_url and hmac_key",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.store().begin().await?;
    sp::partner_save(&mut tx, &p, state.now_ms()).await?;
    let changed: Vec<&str> = [
        ("name_zh", req.name_zh.is_some()),
        ("name_en", req.name_en.is_some()),
        ("uscc", req.uscc.is_some()),
        ("listed_us_on", req.listed_us_on.is_some()),
        ("agreement_start_on", req.agreement_start_on.is_some()),
        ("agreement_end_on", req.agreement_end_on.is_some()),
        ("next_review_on", req.next_review_on.is_some()),
        ("adapter", req.adapter.is_some()),
        ("endpoint_url", req.endpoint_url.is_some()),
        ("hmac_key", req.hmac_key.is_some()),
        ("eligibility_rule", req.eligibility_rule.is_some()),
        ("priority", req.priority.is_some()),
    ]
    .into_iter()
    .filter(|(_, c)| *c)
    .map(|(n, _)| n)
    .collect();
    let d = draft(state, caller, "partner.update", format!("partner:{code}"))
        .reason(format!("changed: {}", changed.join(", ")));
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    find(state, code).await
}

/// A status change request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `admitted` (reinstating a suspended partner), `suspended` or `exited`.
    pub to: String,
    /// Required for suspending and exiting.
    #[serde(default)]
    pub reason: Option<String>,
    /// Effective date (default: today).
    #[serde(default)]
    pub on_date: Option<String>,
}

pub async fn change_status(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &StatusRequest,
) -> ApiResult<Partner> {
    let p = find(state, code).await?;
    let from = PartnerStatus::parse(&p.status)
        .ok_or_else(|| ApiError::internal("stored status unknown"))?;
    let Some(to) = PartnerStatus::parse(&req.to) else {
        return Err(ApiError::field(
            "to",
            "invalid",
            "use admitted, suspended or exited",
        ));
    };
    let mut errors = Vec::new();
    let on_date = match &req.on_date {
        Some(d) => parse_date("on_date", d, &mut errors),
        None => Some(state.clock().today().to_string()),
    };
    if let Err(e) = check_transition(from, to, TransitionPath::Direct, req.reason.as_deref()) {
        let field = if matches!(e, zhudai_domain::partner::TransitionError::ReasonRequired) {
            "reason"
        } else {
            "to"
        };
        errors.push(FieldError::new(field, e.code(), e.to_string()));
    }
    let Some(on_date) = on_date.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let mut tx = state.store().begin().await?;
    let changed = sp::partner_set_status(
        &mut tx,
        &sp::StatusChange {
            partner_id: p.id,
            from: from.as_str(),
            to: to.as_str(),
            on_date: &on_date,
            reason: req.reason.as_deref(),
            actor: &caller.username,
            next_review_on: None,
        },
        state.now_ms(),
    )
    .await?;
    if !changed {
        return Err(ApiError::Conflict(
            "the partner's status changed meanwhile; reload and try again".into(),
        ));
    }
    let d = draft(state, caller, "partner.status", format!("partner:{code}")).reason(format!(
        "{} → {}: {}",
        from.as_str(),
        to.as_str(),
        req.reason.clone().unwrap_or_default()
    ));
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    find(state, code).await
}

// ---------------------------------------------------------------------------------------
// Licences, documents, contacts

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenceRequest {
    /// e.g. `金融许可证`, `消费金融牌照`, `融资担保业务经营许可证`.
    pub licence_type: String,
    pub number: String,
    pub issuer: String,
    /// `YYYY-MM-DD`; absent = no expiry.
    #[serde(default)]
    pub valid_until: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    /// A reference into document storage (e.g. `doc:2026/ba-licence.pdf`).
    pub reference: String,
    pub description: String,
    /// SHA-256 of the file, hex, if known.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Mobile; stored encrypted, shown masked.
    #[serde(default)]
    pub phone: Option<String>,
}

fn required(field: &str, v: &str, errors: &mut Vec<FieldError>) {
    if v.trim().is_empty() {
        errors.push(FieldError::new(field, "required", "this field is required"));
    }
}

pub async fn add_licence(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &LicenceRequest,
) -> ApiResult<i64> {
    let p = find(state, code).await?;
    let mut errors = Vec::new();
    required("licence_type", &req.licence_type, &mut errors);
    required("number", &req.number, &mut errors);
    required("issuer", &req.issuer, &mut errors);
    let valid_until = opt_date("valid_until", &req.valid_until, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.store().begin().await?;
    let l = sp::Licence {
        id: 0,
        licence_type: req.licence_type.trim().into(),
        number: req.number.trim().into(),
        issuer: req.issuer.trim().into(),
        valid_until,
    };
    let id = match sp::licence_insert(&mut tx, p.id, &l, state.now_ms()).await {
        Ok(id) => id,
        Err(e) if e.is_unique_violation("partner_licences_number_key", "partner_licences.") => {
            return Err(ApiError::field(
                "number",
                "taken",
                "this licence is registered already",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    zhudai_store::audit::append(
        &mut tx,
        &draft(
            state,
            caller,
            "partner.licence.add",
            format!("partner:{code}"),
        )
        .reason(format!("{} {}", l.licence_type, l.number)),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

pub async fn add_document(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &DocumentRequest,
) -> ApiResult<i64> {
    let p = find(state, code).await?;
    let mut errors = Vec::new();
    required("reference", &req.reference, &mut errors);
    required("description", &req.description, &mut errors);
    let sha = req
        .sha256
        .as_deref()
        .and_then(blank_to_none)
        .map(|s| s.to_ascii_lowercase());
    if let Some(s) = &sha {
        if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            errors.push(FieldError::new(
                "sha256",
                "invalid",
                "64 hexadecimal characters",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.store().begin().await?;
    let d = sp::Document {
        id: 0,
        reference: req.reference.trim().into(),
        description: req.description.trim().into(),
        sha256: sha,
    };
    let id = match sp::document_insert(&mut tx, p.id, &d, state.now_ms()).await {
        Ok(id) => id,
        Err(e)
            if e.is_unique_violation("partner_documents_reference_key", "partner_documents.") =>
        {
            return Err(ApiError::field(
                "reference",
                "taken",
                "this document is registered already",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    zhudai_store::audit::append(
        &mut tx,
        &draft(
            state,
            caller,
            "partner.document.add",
            format!("partner:{code}"),
        )
        .reason(d.reference.clone()),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

pub async fn add_contact(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &ContactRequest,
) -> ApiResult<i64> {
    let p = find(state, code).await?;
    let mut errors = Vec::new();
    required("name", &req.name, &mut errors);
    let phone = match req.phone.as_deref().and_then(blank_to_none) {
        Some(v) => match Mobile::parse(&v) {
            Ok(m) => Some(m.as_str().to_owned()),
            Err(e) => {
                errors.push(FieldError::new("phone", e.code(), e.to_string()));
                None
            }
        },
        None => None,
    };
    let email = req.email.as_deref().and_then(blank_to_none);
    if let Some(e) = &email {
        if let Err(err) = zhudai_domain::Email::parse(e) {
            errors.push(FieldError::new("email", err.code(), err.to_string()));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let row_key = uuid::Uuid::now_v7().simple().to_string();
    let phone_enc = match &phone {
        Some(m) => Some(
            state
                .vault()
                .encrypt_field(
                    None,
                    &FieldAad::new(CONTACT_TABLE, CONTACT_COLUMN, &row_key),
                    m,
                )
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let mut tx = state.store().begin().await?;
    let c = sp::Contact {
        id: 0,
        name: req.name.trim().into(),
        title: req.title.clone().unwrap_or_default().trim().into(),
        email,
        phone_enc,
        row_key,
    };
    let id = sp::contact_insert(&mut tx, p.id, &c, state.now_ms()).await?;
    zhudai_store::audit::append(
        &mut tx,
        &draft(
            state,
            caller,
            "partner.contact.add",
            format!("partner:{code}"),
        )
        .reason(c.name.clone()),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

/// A contact as shown: the mobile masked unless the caller sees it in clear.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactView {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The contacts of a partner, and whether a phone was shown in clear (to audit).
pub async fn contacts(
    state: &AppState,
    caller: &Caller,
    partner_id: i64,
) -> ApiResult<(Vec<ContactView>, bool)> {
    let clear = caller.sees_clear("partner.contact_phone");
    let mut shown_clear = false;
    let mut out = Vec::new();
    for c in state.store().partner_contacts(partner_id).await? {
        let phone = match &c.phone_enc {
            Some(enc) => {
                let v = state
                    .vault()
                    .decrypt_field(
                        None,
                        &FieldAad::new(CONTACT_TABLE, CONTACT_COLUMN, &c.row_key),
                        enc,
                    )
                    .await
                    .map_err(ApiError::internal)?;
                if clear {
                    shown_clear = true;
                    Some(v.to_string())
                } else {
                    Some(zhudai_domain::mask::mobile(&v))
                }
            }
            None => None,
        };
        out.push(ContactView {
            id: c.id,
            name: c.name,
            title: c.title,
            email: c.email,
            phone,
        });
    }
    Ok((out, shown_clear))
}

// ---------------------------------------------------------------------------------------
// Admission

pub fn standards_domain(rows: &[StandardRow]) -> Vec<AdmissionStandard> {
    rows.iter()
        .map(|r| AdmissionStandard {
            code: r.code.clone(),
            title_zh: r.title_zh.clone(),
            title_en: r.title_en.clone(),
            kinds: r
                .kinds
                .split(',')
                .filter_map(|k| PartnerKind::parse(k.trim()))
                .collect(),
            required: r.required,
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSubmit {
    pub items: Vec<ChecklistItemInput>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItemInput {
    /// The standard's code.
    pub code: String,
    pub passed: bool,
    pub evidence: String,
    #[serde(default)]
    pub document_ref: Option<String>,
}

pub async fn submit_admission(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &AdmissionSubmit,
) -> ApiResult<i64> {
    let p = find(state, code).await?;
    let kind =
        PartnerKind::parse(&p.kind).ok_or_else(|| ApiError::internal("stored kind unknown"))?;
    if p.status != PartnerStatus::Applying.as_str() {
        return Err(ApiError::Conflict(format!(
            "the partner is {}; only an applying partner is admitted",
            p.status
        )));
    }
    let standards = standards_domain(&state.store().admission_standards().await?);
    let items: Vec<ChecklistItem> = req
        .items
        .iter()
        .map(|i| ChecklistItem {
            code: i.code.clone(),
            passed: i.passed,
            evidence: i.evidence.trim().to_owned(),
            document_ref: i.document_ref.as_deref().and_then(blank_to_none),
        })
        .collect();
    let problems = check_checklist(kind, &standards, &items);
    if !problems.is_empty() {
        return Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError::new(p.field, p.code, p.message))
                .collect(),
        ));
    }
    let json = serde_json::to_string(&items).map_err(ApiError::internal)?;
    let mut tx = state.store().begin().await?;
    let Some(id) = sp::admission_submit(
        &mut tx,
        p.id,
        &json,
        caller.user_id,
        &caller.display_name,
        state.now_ms(),
    )
    .await?
    else {
        return Err(ApiError::Conflict(
            "an admission of this partner is already awaiting approval".into(),
        ));
    };
    let failed = items.iter().filter(|i| !i.passed).count();
    zhudai_store::audit::append(
        &mut tx,
        &draft(
            state,
            caller,
            "partner.admission.submit",
            format!("partner:{code}"),
        )
        .reason(format!("{} items, {failed} failed", items.len())),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionDecision {
    /// True to approve (admits the partner), false to reject.
    pub approve: bool,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn decide_admission(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &AdmissionDecision,
) -> ApiResult<Partner> {
    let p = find(state, code).await?;
    let kind =
        PartnerKind::parse(&p.kind).ok_or_else(|| ApiError::internal("stored kind unknown"))?;
    let now = state.now_ms();
    let today = state.clock().today();
    let mut tx = state.store().begin().await?;
    let Some(open) = sp::admission_open(&mut tx, p.id).await? else {
        return Err(ApiError::Conflict(
            "there is no admission awaiting approval".into(),
        ));
    };
    let items: Vec<ChecklistItem> =
        serde_json::from_str(&open.items).map_err(ApiError::internal)?;
    let standards = standards_domain(&state.store().admission_standards().await?);
    if open.submitted_by == caller.user_id {
        return Err(ApiError::Conflict(ApprovalError::SameUser.to_string()));
    }
    if req.approve {
        if let Err(e) = check_approval(open.submitted_by, caller.user_id, kind, &standards, &items)
        {
            return Err(ApiError::Conflict(e.to_string()));
        }
    } else if req.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::field(
            "note",
            "required",
            "say why the admission is rejected",
        ));
    }
    let state_str = if req.approve { "approved" } else { "rejected" };
    if !sp::admission_decide(
        &mut tx,
        open.id,
        state_str,
        caller.user_id,
        &caller.display_name,
        req.note.as_deref(),
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the admission was decided meanwhile".into(),
        ));
    }
    if req.approve {
        check_transition(
            PartnerStatus::Applying,
            PartnerStatus::Admitted,
            TransitionPath::AdmissionApproval,
            None,
        )
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
        let review = next_review(today).to_string();
        let today_s = today.to_string();
        let ok = sp::partner_set_status(
            &mut tx,
            &sp::StatusChange {
                partner_id: p.id,
                from: "applying",
                to: "admitted",
                on_date: &today_s,
                reason: Some("admission approved"),
                actor: &caller.username,
                next_review_on: Some(&review),
            },
            now,
        )
        .await?;
        if !ok {
            return Err(ApiError::Conflict(
                "the partner is no longer applying".into(),
            ));
        }
    }
    let d = draft(
        state,
        caller,
        &format!(
            "partner.admission.{}",
            if req.approve { "approve" } else { "reject" }
        ),
        format!("partner:{code}"),
    )
    .reason(format!(
        "submitted by {}; {}",
        open.submitted_by_name,
        req.note.clone().unwrap_or_default()
    ));
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    find(state, code).await
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandardInput {
    pub code: String,
    pub title_zh: String,
    pub title_en: String,
    /// Kinds it applies to; empty = every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

pub async fn replace_standards(
    state: &AppState,
    caller: &Caller,
    items: &[StandardInput],
) -> ApiResult<()> {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in items.iter().enumerate() {
        if check_code(&s.code).is_err() {
            errors.push(FieldError::new(
                format!("[{i}].code"),
                "invalid",
                "use a-z, 0-9 and _",
            ));
        }
        if !seen.insert(s.code.clone()) {
            errors.push(FieldError::new(
                format!("[{i}].code"),
                "duplicate",
                "listed twice",
            ));
        }
        if s.title_zh.trim().is_empty() || s.title_en.trim().is_empty() {
            errors.push(FieldError::new(
                format!("[{i}].title_zh"),
                "required",
                "give both titles",
            ));
        }
        for k in &s.kinds {
            if PartnerKind::parse(k).is_none() {
                errors.push(FieldError::new(
                    format!("[{i}].kinds"),
                    "invalid",
                    format!("unknown kind `{k}`"),
                ));
            }
        }
    }
    if items.is_empty() {
        errors.push(FieldError::new(
            "body",
            "required",
            "list at least one standard",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows: Vec<StandardRow> = items
        .iter()
        .enumerate()
        .map(|(i, s)| StandardRow {
            code: s.code.clone(),
            title_zh: s.title_zh.trim().into(),
            title_en: s.title_en.trim().into(),
            kinds: s.kinds.join(","),
            required: s.required,
            position: (i as i64 + 1) * 10,
        })
        .collect();
    let mut tx = state.store().begin().await?;
    sp::standards_replace(&mut tx, &rows).await?;
    zhudai_store::audit::append(
        &mut tx,
        &draft(
            state,
            caller,
            "partner.standards.replace",
            "admission_standards".into(),
        )
        .reason(format!("{} standards", rows.len())),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Limits and pricing

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    pub daily_quota_fen: i64,
    pub total_quota_fen: i64,
    /// Concentration limit: the most one customer may hold with this funder (reserved and
    /// funded), fen. Absent = no per-customer limit.
    #[serde(default)]
    pub per_customer_max_fen: Option<i64>,
}

pub async fn set_limits(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &LimitsRequest,
) -> ApiResult<()> {
    let p = find(state, code).await?;
    let mut errors = Vec::new();
    if req.daily_quota_fen < 0 {
        errors.push(FieldError::new(
            "daily_quota_fen",
            "out_of_range",
            "cannot be negative",
        ));
    }
    if req.total_quota_fen < 0 {
        errors.push(FieldError::new(
            "total_quota_fen",
            "out_of_range",
            "cannot be negative",
        ));
    }
    if req.daily_quota_fen > req.total_quota_fen {
        errors.push(FieldError::new(
            "daily_quota_fen",
            "above_total",
            "the daily quota cannot exceed the total quota",
        ));
    }
    if req.per_customer_max_fen.is_some_and(|v| v <= 0) {
        errors.push(FieldError::new(
            "per_customer_max_fen",
            "out_of_range",
            "must be positive",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.store().begin().await?;
    sp::limits_set(
        &mut tx,
        p.id,
        req.daily_quota_fen,
        req.total_quota_fen,
        req.per_customer_max_fen,
        state.now_ms(),
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &draft(state, caller, "partner.limits", format!("partner:{code}")).reason(format!(
            "daily {} total {} per customer {:?}",
            req.daily_quota_fen, req.total_quota_fen, req.per_customer_max_fen
        )),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingRequest {
    pub product_code: String,
    /// The funder's annual rate for the product, decimal string (`"0.0850"`); `null`
    /// removes the price.
    pub annual_rate: Option<String>,
}

pub async fn set_pricing(
    state: &AppState,
    caller: &Caller,
    code: &str,
    req: &PricingRequest,
) -> ApiResult<()> {
    let p = find(state, code).await?;
    let mut errors = Vec::new();
    if req.product_code.trim().is_empty() || req.product_code.len() > 64 {
        errors.push(FieldError::new(
            "product_code",
            "required",
            "give the product code",
        ));
    }
    let rate = match &req.annual_rate {
        None => None,
        Some(r) => match r.trim().parse::<Decimal>() {
            // The 36 % ceiling applies to every price (rules-cn.md).
            Ok(d) if d > Decimal::ZERO && d <= Decimal::new(36, 2) => {
                Some(d.normalize().to_string())
            }
            _ => {
                errors.push(FieldError::new(
                    "annual_rate",
                    "out_of_range",
                    "a decimal rate above 0 and at most 0.36",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.store().begin().await?;
    sp::pricing_set(
        &mut tx,
        p.id,
        req.product_code.trim(),
        rate.as_deref(),
        state.now_ms(),
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &draft(state, caller, "partner.pricing", format!("partner:{code}")).reason(format!(
            "{} = {}",
            req.product_code.trim(),
            rate.clone().unwrap_or_else(|| "removed".into())
        )),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The partner view

/// Whether the partner may take new loans today, and why not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Origination {
    pub allowed: bool,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
}

pub async fn origination(
    store: &Store,
    p: &Partner,
    today: NaiveDate,
) -> Result<Origination, StoreError> {
    let facts = crate::routing::origination_facts(store, p).await?;
    Ok(match may_originate(&facts, today) {
        Ok(()) => Origination {
            allowed: true,
            reason_code: None,
            reason: None,
        },
        Err(r) => Origination {
            allowed: false,
            reason_code: Some(r.code().into()),
            reason: Some(r.to_string()),
        },
    })
}

/// Reminders due now, computed from the partner's dates.
pub fn due_reminders(p: &Partner, today: NaiveDate) -> Vec<(String, String)> {
    let d = |s: &Option<String>| {
        s.as_deref()
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
    };
    reminders_due(
        PartnerStatus::parse(&p.status).unwrap_or(PartnerStatus::Exited),
        d(&p.next_review_on),
        d(&p.agreement_end_on),
        today,
        REMINDER_WINDOW_DAYS,
    )
    .into_iter()
    .map(|(k, on)| (k.as_str().to_owned(), on.to_string()))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Reminders job

/// Enqueues today's reminder run (once per business date, whoever asks).
pub async fn schedule_reminders(store: &Store, now_ms: i64) -> Result<Option<i64>, StoreError> {
    let day = now_ms.div_euclid(DAY_MS);
    let key = format!("{REMINDER_JOB}:{day}");
    zhudai_store::jobs::enqueue(
        store.writer(),
        &NewJob::new(REMINDER_JOB, serde_json::json!({}), now_ms).dedupe(&key),
        now_ms,
    )
    .await
}

/// Records the reminders due for every partner (once per partner, kind and due date), each
/// with an audit entry. Returns how many were new.
pub async fn record_reminders(state: &AppState) -> Result<usize, StoreError> {
    let today = state.clock().today();
    let now = state.now_ms();
    let mut new = 0;
    for p in state.store().partners(None, None).await? {
        for (kind, due_on) in due_reminders(&p, today) {
            let mut tx = state.store().begin().await?;
            if sp::reminder_insert_once(&mut tx, p.id, &kind, &due_on, now).await? {
                let d = AuditDraft::new(now, format!("partner.reminder.{kind}"), "success")
                    .actor("system")
                    .target(format!("partner:{}", p.code))
                    .reason(format!("{kind} due on {due_on}"));
                zhudai_store::audit::append(&mut tx, &d).await?;
                new += 1;
            }
            tx.commit().await?;
        }
    }
    Ok(new)
}

/// The handler of [`REMINDER_JOB`]: schedules tomorrow's run, then records reminders.
pub async fn run_reminder_job(state: AppState, _job: Job) -> Result<(), String> {
    let now = state.now_ms();
    let next = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
    let key = format!("{REMINDER_JOB}:{}", next.div_euclid(DAY_MS));
    zhudai_store::jobs::enqueue(
        state.store().writer(),
        &NewJob::new(REMINDER_JOB, serde_json::json!({}), next).dedupe(&key),
        now,
    )
    .await
    .map_err(|e| e.to_string())?;
    record_reminders(&state)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Performance

/// One day of a funder's routing.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct DailyPoint {
    pub date: String,
    pub attempts: i64,
    pub approved: i64,
    pub declined: i64,
}

/// A funder's performance from routing data and, once loans exist, the loan ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Performance {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Applications sent to the funder (skipped candidates not counted).
    pub attempts: i64,
    pub approved: i64,
    pub declined: i64,
    pub timeouts: i64,
    pub errors: i64,
    pub pending: i64,
    /// approved / (approved + declined), 4 decimals; `null` before any decision.
    pub approval_rate: Option<String>,
    /// Average time to decide, ms.
    pub avg_decision_ms: Option<i64>,
    /// Sum of approved amounts, fen.
    pub approved_amount_fen: i64,
    /// Outstanding principal of the funder's loans (`funder_exposures`, filled by the loan
    /// ledger); `null` until it has rows.
    pub disbursed_balance_fen: Option<i64>,
    /// Outstanding principal more than 0 days past due / outstanding principal;
    /// `null` until the loan ledger has rows.
    pub overdue_rate: Option<String>,
    /// The last 14 business days, oldest first.
    pub daily: Vec<DailyPoint>,
}

fn ratio(num: i64, den: i64) -> Option<String> {
    (den > 0).then(|| {
        (Decimal::from(num) / Decimal::from(den))
            .round_dp(4)
            .normalize()
            .to_string()
    })
}

pub const PERFORMANCE_DAYS: i64 = 14;

pub async fn performance(state: &AppState, p: &Partner) -> ApiResult<Performance> {
    let store = state.store();
    let stats = store
        .routing_stats()
        .await?
        .into_iter()
        .find(|s| s.partner_code == p.code)
        .unwrap_or_default();
    let exposure = store.funder_exposure(&p.code).await?;
    let today = state.clock().today();
    let first = today - chrono::Duration::days(PERFORMANCE_DAYS - 1);
    // Business days are Shanghai dates: midnight there is 16:00 UTC the day before.
    let from_ms = first
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis() - 8 * 3_600_000)
        .unwrap_or(0);
    let mut daily: Vec<DailyPoint> = (0..PERFORMANCE_DAYS)
        .map(|i| DailyPoint {
            date: (first + chrono::Duration::days(i)).to_string(),
            attempts: 0,
            approved: 0,
            declined: 0,
        })
        .collect();
    for (at_ms, outcome, _) in store.routing_steps_since(&p.code, from_ms).await? {
        let Some(at) = chrono::DateTime::from_timestamp_millis(at_ms) else {
            continue;
        };
        let d = zhudai_domain::clock::business_date(at).to_string();
        if let Some(point) = daily.iter_mut().find(|x| x.date == d) {
            point.attempts += 1;
            match outcome.as_str() {
                "approved" => point.approved += 1,
                "declined" => point.declined += 1,
                _ => {}
            }
        }
    }
    Ok(Performance {
        code: p.code.clone(),
        name_zh: p.name_zh.clone(),
        name_en: p.name_en.clone(),
        attempts: stats.attempts,
        approved: stats.approved,
        declined: stats.declined,
        timeouts: stats.timeouts,
        errors: stats.errors,
        pending: stats.pending,
        approval_rate: ratio(stats.approved, stats.approved + stats.declined),
        avg_decision_ms: stats.avg_decision_ms,
        approved_amount_fen: stats.approved_amount_fen,
        disbursed_balance_fen: exposure.map(|e| e.outstanding_fen),
        overdue_rate: exposure.and_then(|e| ratio(e.overdue_outstanding_fen, e.outstanding_fen)),
        daily,
    })
}

/// Every funder's performance.
pub async fn performances(state: &AppState) -> ApiResult<Vec<Performance>> {
    let mut out = Vec::new();
    for p in state.store().partners(Some("funder"), None).await? {
        out.push(performance(state, &p).await?);
    }
    Ok(out)
}

fn fen_to_yuan(fen: i64) -> f64 {
    // Display only (a spreadsheet number cell); amounts are kept in fen everywhere else.
    Decimal::new(fen, 2).to_string().parse().unwrap_or(0.0)
}

fn rate_number(r: &Option<String>) -> Option<f64> {
    r.as_deref().and_then(|v| v.parse().ok())
}

/// The performance of every funder as an XLSX workbook: a summary sheet and a daily one.
pub fn performance_xlsx(rows: &[Performance]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("#,##0.00");
    let pct = Format::new().set_num_format("0.00%");
    let sheet = book.add_worksheet();
    sheet.set_name("Funders")?;
    let headers = [
        "code",
        "name",
        "attempts",
        "approved",
        "declined",
        "timeouts",
        "errors",
        "approval_rate",
        "avg_decision_ms",
        "approved_amount_yuan",
        "disbursed_balance_yuan",
        "overdue_rate",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &r.code)?;
        sheet.write_string(row, 1, &r.name_zh)?;
        sheet.write_number(row, 2, r.attempts as f64)?;
        sheet.write_number(row, 3, r.approved as f64)?;
        sheet.write_number(row, 4, r.declined as f64)?;
        sheet.write_number(row, 5, r.timeouts as f64)?;
        sheet.write_number(row, 6, r.errors as f64)?;
        match rate_number(&r.approval_rate) {
            Some(v) => sheet.write_number_with_format(row, 7, v, &pct)?,
            None => sheet.write_string(row, 7, "—")?,
        };
        match r.avg_decision_ms {
            Some(v) => sheet.write_number(row, 8, v as f64)?,
            None => sheet.write_string(row, 8, "—")?,
        };
        sheet.write_number_with_format(row, 9, fen_to_yuan(r.approved_amount_fen), &money)?;
        match r.disbursed_balance_fen {
            Some(v) => sheet.write_number_with_format(row, 10, fen_to_yuan(v), &money)?,
            None => sheet.write_string(row, 10, "—")?,
        };
        match rate_number(&r.overdue_rate) {
            Some(v) => sheet.write_number_with_format(row, 11, v, &pct)?,
            None => sheet.write_string(row, 11, "—")?,
        };
    }
    sheet.autofit();
    let daily = book.add_worksheet();
    daily.set_name("Daily")?;
    for (c, h) in ["code", "date", "attempts", "approved", "declined"]
        .iter()
        .enumerate()
    {
        daily.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let mut row = 1;
    for r in rows {
        for d in &r.daily {
            daily.write_string(row, 0, &r.code)?;
            daily.write_string(row, 1, &d.date)?;
            daily.write_number(row, 2, d.attempts as f64)?;
            daily.write_number(row, 3, d.approved as f64)?;
            daily.write_number(row, 4, d.declined as f64)?;
            row += 1;
        }
    }
    book.save_to_buffer()
}
