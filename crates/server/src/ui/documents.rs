//! Customer documents in the UI: the documents section of a customer (list, versions,
//! upload form, downloads) and the verification queue (`/documents/verify`) with the
//! automatic cross-checks and verify / reject / needs-more forms.
//!
//! [`documents_section`] and [`crate::ui::privacy::consents_section`] are fragments the
//! customer page embeds; `/customers/{id}/documents` shows them on their own page until
//! then.

use crate::api::documents::{file_response, queue, read_upload};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::customer_docs as docs;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::document::{AgeLimits, CrossCheck, DocumentType, RetentionClass};
use zhudai_store::customers::CustomerRow;

/// A message carried back to a page after a form (`?ok=` / `?error=`).
#[derive(Debug, Deserialize, Default)]
pub struct Flash {
    pub ok: Option<String>,
    pub error: Option<String>,
}

pub fn flash(f: &Flash) -> Markup {
    html! {
        @if let Some(m) = &f.ok { section.card.notice data-testid="flash-ok" { p { (m) } } }
        @if let Some(m) = &f.error { section.card.notice data-testid="flash-error" { p.field-error { (m) } } }
    }
}

/// Where to go after a form: `back` with `?ok=` or `?error=` (the error's details).
pub fn back(path: &str, result: Result<String, ApiError>) -> Response {
    let (k, v) = match result {
        Ok(m) => ("ok", m),
        Err(ApiError::Validation(errs)) => (
            "error",
            errs.iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => ("error", e.to_problem().detail.unwrap_or_default()),
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{path}{sep}{k}={}",
        crate::auth::urlencode(&v.chars().take(600).collect::<String>())
    ))
    .into_response()
}

fn check_badge(c: &CrossCheck) -> &'static str {
    if c.ok {
        "badge badge-ok"
    } else {
        "badge badge-bad"
    }
}

/// The cross-checks as a list (title by code, detail below).
pub fn checks_list(state: &AppState, lang: Lang, checks: &[CrossCheck]) -> Markup {
    let t = state.i18n().bundle(lang);
    html! {
        ul.checks data-testid="cross-checks" {
            @for c in checks {
                li data-check=(c.code) {
                    span class=(check_badge(c)) { (t.get(&format!("docs.check.{}", c.code))) }
                    " " span.muted { (c.detail) }
                }
            }
        }
    }
}

fn status_badge(status: &str) -> &'static str {
    match status {
        "verified" => "badge badge-ok",
        "rejected" => "badge badge-bad",
        "needs_more" => "badge badge-warn",
        _ => "badge",
    }
}

/// The documents section of a customer page: every version with status and download,
/// and the upload form for callers who may upload.
pub async fn documents_section(state: &AppState, ctx: &Ctx, customer: &CustomerRow) -> Markup {
    let t = state.i18n().bundle(ctx.lang);
    let Some(caller) = &ctx.caller else {
        return html! {};
    };
    let views = match docs::list_views(state, caller, customer).await {
        Ok((v, _)) => v,
        Err(e) => {
            return html! { section.card { p.field-error { (e.to_problem().detail.unwrap_or_default()) } } }
        }
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let max_mib = state.settings().document_max_bytes / (1024 * 1024);
    html! {
        section.card data-testid="documents-section" {
            h2 { (t.get("docs.title")) }
            @if views.is_empty() { p.muted { (t.get("docs.none")) } } @else {
                table.table data-testid="document-table" {
                    thead { tr {
                        th { (t.get("docs.type")) } th { (t.get("docs.version")) } th { (t.get("docs.content_type")) }
                        th { (t.get("docs.size")) } th { (t.get("docs.expiry")) } th { (t.get("docs.retention")) }
                        th { (t.get("docs.status")) } th {}
                    } }
                    tbody { @for d in &views { tr data-doc-id=(d.id) data-doc-type=(d.doc_type) {
                        td { (t.get(&format!("docs.type.{}", d.doc_type))) }
                        td { "v" (d.version) @if !d.current { " " span.muted { (t.get("docs.superseded")) } } }
                        td { code { (d.content_type) } }
                        td.num { (d.size_bytes) }
                        td { (d.expiry_date.clone().unwrap_or_default()) @if d.expired { " " span.badge.badge-bad { (t.get("docs.expired")) } } }
                        td { (t.get(&format!("docs.retention.{}", d.retention_class))) br; span.muted { (d.retain_until.clone().unwrap_or_else(|| t.get("docs.retain_open"))) } }
                        td { span class=(status_badge(&d.status)) data-testid="doc-status" { (t.get(&format!("docs.status.{}", d.status))) }
                             @if let Some(n) = &d.verification_note { br; span.muted { (n) } } }
                        td { @if !d.erased && caller.can("document.read") {
                            a href=(format!("/customers/{}/documents/{}/content", customer.id, d.id)) { (t.get("docs.download")) }
                        } }
                    } } }
                }
            }
            @if caller.can("document.upload") && customer.status != "erased" {
                h3 { (t.get("docs.upload")) }
                // Multipart bodies are not read by the CSRF check, so the token rides in the query.
                form method="post" enctype="multipart/form-data" data-testid="upload-form"
                    action=(format!("/customers/{}/documents?{}={}", customer.id, CSRF_FIELD, csrf)) {
                    label { (t.get("docs.type")) " "
                        select name="doc_type" { @for ty in DocumentType::ALL { option value=(ty.as_str()) { (t.get(&format!("docs.type.{}", ty.as_str()))) } } } }
                    " "
                    label { (t.get("docs.retention")) " "
                        select name="retention_class" { option value="" { (t.get("docs.retention.default")) }
                            @for c in RetentionClass::ALL { option value=(c.as_str()) { (t.get(&format!("docs.retention.{}", c.as_str()))) } } } }
                    br;
                    label { (t.get("docs.expiry")) " " input type="date" name="expiry_date"; } " "
                    label { (t.get("docs.issued")) " " input type="date" name="issued_date"; } " "
                    label { (t.get("docs.contract_end")) " " input type="date" name="contract_end_date"; }
                    br;
                    label { (t.get("docs.declared_name")) " " input name="declared_name"; } " "
                    label { (t.get("docs.declared_id_number")) " " input name="declared_id_number"; }
                    br;
                    input type="file" name="file" required accept=".pdf,.jpg,.jpeg,.png,.webp,.tif,.tiff,.heic,.heif" data-testid="upload-file";
                    " " span.muted { (t.get("docs.limit")) " " (max_mib) " MiB" }
                    " " button type="submit" data-testid="upload-submit" { (t.get("docs.upload.go")) }
                }
            }
        }
    }
}

/// GET `/customers/{id}/documents`: the customer's documents and consents.
pub async fn customer_documents_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(f): Query<Flash>,
) -> ApiResult<Markup> {
    let customer = docs::customer_in_scope(&state, &caller, id).await?;
    let t = state.i18n().bundle(lang);
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let content = html! {
        (flash(&f))
        section.card { p { (t.get("docs.customer")) " " strong data-testid="customer-name" { (customer.name) } " · #" (customer.id) } }
        (documents_section(&state, &ctx, &customer).await)
        (crate::ui::privacy::consents_section(&state, &ctx, &customer).await)
    };
    Ok(page(
        &state,
        &ctx,
        "customers",
        &t.get("docs.page_title"),
        content,
    ))
}

/// POST `/customers/{id}/documents`: the upload form.
pub async fn upload_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    let path = format!("/customers/{id}/documents");
    let result = async {
        let customer = docs::customer_in_scope(&state, &caller, id).await?;
        let mp = mp.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let up = read_upload(mp, state.settings().document_max_bytes).await?;
        let (v, note) = docs::upload(&state, &caller, &customer, up).await?;
        Ok::<_, ApiError>((format!("{} v{}", v.doc_type, v.version), note))
    }
    .await;
    match result {
        Ok((msg, note)) => {
            let mut r = back(&path, Ok(msg));
            r.extensions_mut().insert(note);
            r
        }
        Err(e) => back(&path, Err(e)),
    }
}

/// GET `/customers/{id}/documents/{doc_id}/content`: download (audited).
pub async fn download(
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

/// GET `/documents/verify`: the verification queue.
pub async fn verify_queue(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(f): Query<Flash>,
) -> ApiResult<Markup> {
    let t = state.i18n().bundle(lang);
    let entries = queue(&state, &caller, AgeLimits::default()).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (flash(&f))
        section.card {
            p.muted { (t.get("docs.queue.hint")) }
            @if entries.is_empty() { p.muted data-testid="queue-empty" { (t.get("docs.queue.empty")) } }
            @for e in &entries {
                article.card data-testid="queue-item" data-doc-id=(e.document.id) {
                    h3 { (e.customer_name) " · " (t.get(&format!("docs.type.{}", e.document.doc_type))) " v" (e.document.version) }
                    p.muted {
                        code { (e.document.content_type) } " · " (e.document.size_bytes) " B · sha256 " code { (e.document.sha256.chars().take(16).collect::<String>()) "…" }
                        @if let Some(n) = &e.document.declared_name { " · " (t.get("docs.declared_name")) " " (n) }
                        @if let Some(n) = &e.document.declared_id_number { " · " (t.get("docs.declared_id_number")) " " (n) }
                        @if let Some(x) = &e.document.expiry_date { " · " (t.get("docs.expiry")) " " (x) }
                    }
                    p { a href=(format!("/customers/{}/documents/{}/content", e.document.customer_id, e.document.id)) { (t.get("docs.download")) } }
                    (checks_list(&state, lang, &e.checks))
                    @if e.own_upload {
                        p.muted data-testid="own-upload" { (t.get("docs.queue.own")) }
                    } @else {
                        form method="post" action=(format!("/documents/verify/{}", e.document.id)) {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="hidden" name="customer_id" value=(e.document.customer_id);
                            // One submit button: app.js disables buttons on submit, which
                            // would drop a clicked button's value.
                            select name="decision" data-testid="verify-decision" {
                                option value="verified" { (t.get("docs.decision.verified")) }
                                option value="needs_more" { (t.get("docs.decision.needs_more")) }
                                option value="rejected" { (t.get("docs.decision.rejected")) }
                            }
                            " " label { (t.get("docs.note")) " " input name="note" data-testid="verify-note"; }
                            " " button type="submit" data-testid="verify-submit" { (t.get("docs.decide")) }
                        }
                    }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        &state,
        &ctx,
        "customers",
        &t.get("docs.queue.title"),
        content,
    ))
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    customer_id: i64,
    decision: String,
    #[serde(default)]
    note: String,
}

/// POST `/documents/verify/{doc_id}`.
pub async fn verify_submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(doc_id): Path<i64>,
    Form(f): Form<VerifyForm>,
) -> Response {
    let result = async {
        let customer = docs::customer_in_scope(&state, &caller, f.customer_id).await?;
        docs::verify(
            &state,
            &caller,
            &customer,
            doc_id,
            &f.decision,
            Some(f.note.as_str()),
            AgeLimits::default(),
        )
        .await
    }
    .await;
    match result {
        Ok((v, note)) => {
            let mut r = back("/documents/verify", Ok(format!("#{} {}", v.id, v.status)));
            r.extensions_mut().insert(note);
            r
        }
        Err(e) => back("/documents/verify", Err(e)),
    }
}
