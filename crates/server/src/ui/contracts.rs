//! Contract pages (issue #6): the contract section of an application page (generate,
//! download, signatures, sign form, void, disbursement and the loan link), and the
//! contract template pages (list, edit — every save a new version — version view with a
//! sample preview, sample PDF).

use crate::api::audit::shanghai;
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::contracts::{self as svc, SignInput};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::contract::Block;
use zhudai_domain::money::Fen;
use zhudai_store::applications::ApplicationRow;
use zhudai_store::workflow::InstanceRow;

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "signed" => "badge badge-ok",
        "draft" => "badge badge-running",
        _ => "badge badge-bad",
    };
    html! { span class=(class) data-testid="contract-status" { (t.get(&format!("contracts.status.{status}"))) } }
}

/// The contract card of an application page.
pub async fn application_section(
    state: &AppState,
    t: &Bundle,
    caller: &Caller,
    app: &ApplicationRow,
    inst: &InstanceRow,
) -> Result<Markup, ApiError> {
    let store = state.store();
    let live = store.contract_live(app.id).await?;
    let sigs = match &live {
        Some(c) => store.contract_signatures(c.id).await?,
        None => Vec::new(),
    };
    let disbursement = store.disbursement_of(app.id).await?;
    let at_contract = inst.node == "contract" && inst.status == "running";
    if live.is_none() && disbursement.is_none() && !at_contract {
        return Ok(html! {});
    }
    let can_manage = caller.can("contract.manage");
    let csrf = caller.csrf.clone().unwrap_or_default();
    let templates = if at_contract && can_manage {
        store.contract_templates().await?
    } else {
        Vec::new()
    };
    let missing: Vec<&str> = svc::PARTIES
        .iter()
        .copied()
        .filter(|p| !sigs.iter().any(|s| s.party == *p))
        .collect();
    Ok(html! {
        section.card data-testid="contract-section" {
            h2 { (t.get("contracts.title")) }
            @if let Some(c) = &live {
                dl.facts {
                    dt { (t.get("contracts.no")) } dd data-testid="contract-no" { (c.contract_no) " " (status_badge(t, &c.status)) }
                    dt { (t.get("contracts.apr")) } dd { (c.apr) }
                    dt { (t.get("contracts.amount")) } dd { (Fen::new(c.amount_fen)) }
                    dt { (t.get("contracts.sha256")) } dd { code title=(c.pdf_sha256) data-testid="contract-sha256" { (short(&c.pdf_sha256)) "…" } " (" (c.pdf_bytes / 1024) " KiB)" }
                    dt { (t.get("contracts.generated")) } dd { (shanghai(c.generated_at_ms, false)) " · " (c.generated_by) }
                    @if let Some(s) = c.signed_at_ms { dt { (t.get("contracts.signed_at")) } dd { (shanghai(s, false)) } }
                }
                @if caller.can("contract.read") {
                    p { a.button href=(format!("/contracts/{}/pdf", c.id)) data-testid="contract-pdf" { (t.get("contracts.download")) } }
                }
                h3 { (t.get("contracts.signatures")) }
                @if sigs.is_empty() { p.muted { (t.get("contracts.no_signatures")) } }
                @else {
                    table.table data-testid="signature-table" {
                        thead { tr { th { (t.get("contracts.party")) } th { (t.get("contracts.method")) } th { (t.get("contracts.signer")) } th { (t.get("contracts.provider_ref")) } th { (t.get("contracts.evidence")) } th { (t.get("contracts.signed_at")) } th { (t.get("contracts.recorded_by")) } } }
                        tbody { @for s in &sigs { tr {
                            td { (t.get(&format!("contracts.party.{}", s.party))) }
                            td { (t.get(&format!("contracts.method.{}", s.method))) }
                            td { (s.signer_name) }
                            td { (s.provider_ref.clone().unwrap_or_default()) }
                            td { code title=(s.evidence_sha256) { (short(&s.evidence_sha256)) "…" } }
                            td { (shanghai(s.signed_at_ms, false)) }
                            td { (s.recorded_by) }
                        } } }
                    }
                }
                @if c.status == "draft" && can_manage && at_contract {
                    form method="post" action=(format!("/contracts/{}/signatures", c.id)) data-testid="sign-form" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label for="sg-party" { (t.get("contracts.party")) }
                            select #sg-party name="party" { @for p in &missing { option value=(p) { (t.get(&format!("contracts.party.{p}"))) } } } }
                        div.field { label for="sg-method" { (t.get("contracts.method")) }
                            select #sg-method name="method" { @for m in svc::METHODS { option value=(m) { (t.get(&format!("contracts.method.{m}"))) } } } }
                        div.field { label for="sg-signer" { (t.get("contracts.signer")) } input #sg-signer name="signer_name" placeholder=(t.get("contracts.signer.default")); }
                        div.field { label for="sg-ref" { (t.get("contracts.provider_ref")) } input #sg-ref name="provider_ref"; }
                        div.field { label for="sg-evidence" { (t.get("contracts.evidence")) } input #sg-evidence name="evidence_sha256" placeholder=(t.get("contracts.evidence.hint")); }
                        button type="submit" data-testid="sign-contract" { (t.get("contracts.sign")) }
                    }
                }
                @if c.status != "void" && can_manage && at_contract {
                    form.inline method="post" action=(format!("/contracts/{}/void", c.id)) data-confirm=(t.get("contracts.void.confirm")) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input name="reason" placeholder=(t.get("applications.reason")) aria-label=(t.get("applications.reason")) required minlength="4";
                        button.secondary type="submit" { (t.get("contracts.void")) }
                    }
                }
                @if c.status == "signed" && at_contract {
                    p.muted data-testid="contract-ready" { (t.get("contracts.ready")) }
                }
            } @else if at_contract && can_manage {
                form method="post" action=(format!("/applications/{}/contract", app.id)) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="ct-template" { (t.get("contracts.template")) }
                        select #ct-template name="template" { @for tp in &templates { option value=(tp.code) { (tp.name) " (" (tp.code) " v" (tp.version) ")" } } } }
                    button type="submit" data-testid="generate-contract" { (t.get("contracts.generate")) }
                }
            } @else if at_contract {
                p.muted { (t.get("contracts.none")) }
            }
            @if let Some(d) = &disbursement {
                h3 { (t.get("contracts.disbursement")) }
                dl.facts data-testid="disbursement" {
                    dt { (t.get("applications.funder")) } dd { (d.funder_code) }
                    dt { (t.get("contracts.funder_loan_ref")) } dd { code { (d.funder_loan_ref) } }
                    dt { (t.get("contracts.amount")) } dd { (Fen::new(d.amount_fen)) }
                    dt { (t.get("contracts.disbursed_on")) } dd { (d.disbursed_on) }
                    dt { (t.get("contracts.source")) } dd { (t.get(&format!("contracts.source.{}", d.source))) }
                    @if let Some(l) = d.loan_id {
                        dt { (t.get("contracts.loan")) } dd { a href=(format!("/loans/{l}")) data-testid="loan-link" { "#" (l) } }
                    }
                }
            }
        }
    })
}

/// A refusal re-renders the application page with the message and the refusal's status.
async fn back_with(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    app_id: i64,
    e: ApiError,
) -> Result<Response, ApiError> {
    let (status, msg) = match &e {
        ApiError::Conflict(m) => (axum::http::StatusCode::CONFLICT, m.clone()),
        ApiError::Unavailable(m) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, m.clone()),
        ApiError::Validation(errs) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            errs.iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => return Err(e),
    };
    let mut r =
        crate::ui::applications::detail_page(state, lang, caller, app_id, Some(msg)).await?;
    *r.status_mut() = status;
    Ok(r)
}

fn done(path: String) -> Response {
    let mut r = Redirect::to(&path).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

#[derive(Debug, Deserialize)]
pub struct GenerateForm {
    #[serde(default)]
    template: String,
}

/// POST `/applications/{id}/contract`.
pub async fn generate(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<GenerateForm>,
) -> Result<Response, ApiError> {
    match svc::generate(&state, &caller, id, Some(&f.template)).await {
        Ok(_) => Ok(done(format!("/applications/{id}"))),
        Err(e) => back_with(&state, lang, caller, id, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SignForm {
    party: String,
    method: String,
    #[serde(default)]
    signer_name: String,
    #[serde(default)]
    provider_ref: String,
    #[serde(default)]
    evidence_sha256: String,
}

/// POST `/contracts/{id}/signatures`.
pub async fn sign(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<SignForm>,
) -> Result<Response, ApiError> {
    let (c, app) = svc::load(&state, &caller, id).await?;
    let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    let input = SignInput {
        party: f.party,
        method: f.method,
        signer_name: opt(f.signer_name),
        provider_ref: opt(f.provider_ref),
        evidence_sha256: opt(f.evidence_sha256),
        signed_at_ms: None,
    };
    match svc::sign(&state, &caller, c.id, &input).await {
        Ok(_) => Ok(done(format!("/applications/{}", app.id))),
        Err(e) => back_with(&state, lang, caller, app.id, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct VoidForm {
    #[serde(default)]
    reason: String,
}

/// POST `/contracts/{id}/void`.
pub async fn void(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<VoidForm>,
) -> Result<Response, ApiError> {
    let (c, app) = svc::load(&state, &caller, id).await?;
    match svc::void(&state, &caller, c.id, &f.reason).await {
        Ok(_) => Ok(done(format!("/applications/{}", app.id))),
        Err(e) => back_with(&state, lang, caller, app.id, e).await,
    }
}

/// GET `/contracts/{id}/pdf`.
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (c, app) = svc::load(&state, &caller, id).await?;
    let bytes = svc::pdf(&state, &c, &app).await?;
    let mut r = crate::api::documents::file_response(
        bytes,
        "application/pdf",
        &format!("{}.pdf", c.contract_no),
        AuditNote::action("contract.download")
            .target(format!("application:{}", app.id))
            .digest(c.pdf_sha256.clone()),
    );
    // Shown in the browser's viewer rather than saved.
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("inline; filename=\"{}.pdf\"", c.contract_no))
    {
        r.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// Templates

/// GET `/contract-templates`.
pub async fn templates(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let rows = state.store().contract_templates().await?;
    let can = caller.can("contract.template.manage");
    let content = html! {
        section.card {
            p.muted { (t.get("templates.intro")) }
            table.table data-testid="template-table" {
                thead { tr { th { (t.get("templates.code")) } th { (t.get("templates.name")) } th.num { (t.get("templates.version")) } th { (t.get("templates.saved")) } } }
                tbody { @for r in &rows { tr {
                    td { a href=(format!("/contract-templates/{}", r.code)) { code { (r.code) } } }
                    td { (r.name) }
                    td.num { a href=(format!("/contract-templates/{}/{}", r.code, r.version)) { "v" (r.version) } }
                    td { (shanghai(r.created_at_ms, false)) " · " (r.created_by.clone().unwrap_or_default()) }
                } } }
            }
            @if can {
                p { a.button href="/contract-templates/new" data-testid="new-template" { (t.get("templates.new")) } }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "products", &t.get("templates.title"), content).into_response())
}

fn placeholder_help(t: &Bundle, lang: Lang) -> Markup {
    html! {
        details data-testid="placeholders" {
            summary { (t.get("templates.placeholders")) }
            p.muted { (t.get("templates.syntax")) }
            table.table { tbody {
                @for (n, zh, en) in zhudai_domain::contract::PLACEHOLDERS {
                    tr { td { code { "{{" (n) "}}" } } td { @if lang == Lang::ZhCn { (zh) } @else { (en) } } }
                }
                tr { td { code { (zhudai_domain::contract::TABLE_DISCLOSURE) } } td { (t.get("templates.block.disclosure")) } }
                tr { td { code { (zhudai_domain::contract::TABLE_SCHEDULE) } } td { (t.get("templates.block.schedule")) } }
                tr { td { code { (zhudai_domain::contract::SIGNATURES) } } td { (t.get("templates.block.signatures")) } }
            } }
        }
    }
}

async fn edit_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    code: &str,
    form: Option<&TemplateForm>,
    errors: &[crate::error::FieldError],
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let versions = if code == "new" {
        Vec::new()
    } else {
        state.store().contract_template_versions(code).await?
    };
    if versions.is_empty() && code != "new" && form.is_none() {
        return Err(ApiError::NotFound(format!("no template `{code}`")));
    }
    let latest = versions.first();
    let can = caller.can("contract.template.manage");
    let (f_code, f_name, f_body) = match (form, latest) {
        (Some(f), _) => (f.code.clone(), f.name.clone(), f.body.clone()),
        (None, Some(l)) => (l.code.clone(), l.name.clone(), l.body.clone()),
        (None, None) => (
            String::new(),
            String::new(),
            zhudai_domain::contract::DEFAULT_TEMPLATE.to_owned(),
        ),
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        @if !errors.is_empty() {
            section.card.notice role="alert" data-testid="template-errors" {
                ul { @for e in errors { li { (e.message) } } }
            }
        }
        div.grid {
            section.card {
                @if let Some(l) = latest {
                    p { (t.get("templates.latest")) " v" (l.version) " · " (shanghai(l.created_at_ms, false)) " · "
                        a href=(format!("/contract-templates/{}/{}", l.code, l.version)) { (t.get("templates.preview")) } }
                }
                @if can {
                    form method="post" action=(format!("/contract-templates/{}", if code == "new" { "new" } else { code })) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label for="tp-code" { (t.get("templates.code")) }
                            input #tp-code name="code" value=(f_code) required readonly[code != "new"]; }
                        div.field { label for="tp-name" { (t.get("templates.name")) } input #tp-name name="name" value=(f_name) required; }
                        div.field { label for="tp-body" { (t.get("templates.body")) }
                            textarea #tp-body name="body" rows="28" style="width:100%;font-family:monospace" { (f_body) } }
                        button type="submit" data-testid="save-template" { (t.get("templates.save")) }
                        p.muted { (t.get("templates.versioned")) }
                    }
                } @else {
                    pre { (f_body) }
                }
            }
            section.card {
                (placeholder_help(t, lang))
                @if !versions.is_empty() {
                    h3 { (t.get("templates.versions")) }
                    table.table data-testid="template-versions" { tbody { @for v in &versions { tr {
                        td { a href=(format!("/contract-templates/{}/{}", v.code, v.version)) { "v" (v.version) } }
                        td { (shanghai(v.created_at_ms, false)) }
                        td { (v.created_by.clone().unwrap_or_default()) }
                        td { code title=(v.digest) { (short(&v.digest)) "…" } }
                    } } } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let title = if code == "new" {
        t.get("templates.new")
    } else {
        format!("{} · {code}", t.get("templates.title"))
    };
    Ok(page(state, &ctx, "products", &title, content).into_response())
}

/// GET `/contract-templates/{code}` (`new` for a new template).
pub async fn edit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    edit_page(&state, lang, caller, &code, None, &[]).await
}

#[derive(Debug, Deserialize)]
pub struct TemplateForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    body: String,
}

/// POST `/contract-templates/{code}`: saves a new version.
pub async fn save(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Form(f): Form<TemplateForm>,
) -> Result<Response, ApiError> {
    // An existing template keeps its code; `new` takes the code from the form.
    let target = if code == "new" {
        f.code.clone()
    } else {
        code.clone()
    };
    match svc::save_template(&state, &caller, &target, &f.name, &f.body).await {
        Ok(row) => Ok(done(format!(
            "/contract-templates/{}/{}",
            row.code, row.version
        ))),
        Err(ApiError::Validation(errors)) => {
            let mut r = edit_page(&state, lang, caller, &code, Some(&f), &errors).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

/// The blocks of a filled template as HTML (the preview).
fn blocks_html(blocks: &[Block], facts: &svc::ContractFacts) -> Markup {
    let doc = svc::doc_of("", "", blocks, facts);
    html! {
        div.contract-preview data-testid="template-preview" {
            @for b in &doc.blocks {
                @match b {
                    crate::contract_pdf::PdfBlock::Title(s) => { h2 style="text-align:center" { (s) } }
                    crate::contract_pdf::PdfBlock::Heading(s) => { h3 { (s) } }
                    crate::contract_pdf::PdfBlock::Paragraph(s) => { p { (s) } }
                    crate::contract_pdf::PdfBlock::Table(tb) => {
                        @if let Some(c) = &tb.caption { h4 style="text-align:center" { (c) } }
                        table.table {
                            thead { tr { @for h in &tb.header { th { (h) } } } }
                            tbody { @for r in &tb.rows { tr { @for (i, c) in r.iter().enumerate() {
                                @if tb.right.get(i).copied().unwrap_or(false) { td.num { (c) } } @else { td { (c) } }
                            } } } }
                        }
                    }
                    crate::contract_pdf::PdfBlock::Signatures(ps) => {
                        @for p in ps { p { (p.role) "：" (p.name) "　　签章：________　日期：________" } }
                    }
                }
            }
        }
    }
}

/// GET `/contract-templates/{code}/{version}`: one version, filled with sample data.
pub async fn version(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path((code, version)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let row = state
        .store()
        .contract_template(&code, Some(version))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no template `{code}` version {version}")))?;
    let (blocks, facts) = svc::preview_blocks(&state, &row)?;
    let content = html! {
        section.card {
            p { (row.name) " · " code { (row.code) } " v" (row.version) " · " (shanghai(row.created_at_ms, false)) " · " (row.created_by.clone().unwrap_or_default()) }
            p { a.button href=(format!("/contract-templates/{code}/{version}/preview.pdf")) data-testid="preview-pdf" { (t.get("templates.preview_pdf")) }
                " " a href=(format!("/contract-templates/{code}")) { (t.get("templates.edit")) } }
            p.muted { (t.get("templates.sample_note")) }
        }
        section.card { (blocks_html(&blocks, &facts)) }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        &state,
        &ctx,
        "products",
        &format!("{} v{version}", row.name),
        content,
    )
    .into_response())
}

/// GET `/contract-templates/{code}/{version}/preview.pdf`.
pub async fn preview_pdf(
    State(state): State<AppState>,
    _caller: Caller,
    Path((code, version)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let row = state
        .store()
        .contract_template(&code, Some(version))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no template `{code}` version {version}")))?;
    let pdf = svc::preview_pdf(&state, &row).await?;
    let mut r = pdf.into_response();
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/pdf"),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}
