//! Funder reconciliation (issue #8 item 5): `/reconciliation` lists the imported files
//! and the open breaks and takes a funder's repayment file (CSV, multipart);
//! `/reconciliation/files/{id}` shows a file's matches and breaks (missing, extra, amount
//! differs), each open break with a form to resolve it with a note. The same service
//! functions as the API do the work.

use crate::api::audit::shanghai;
use crate::auth::{urlencode, Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::reconciliation as svc;
use crate::state::AppState;
use crate::ui::cob::recorded_redirect;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::money::Fen;
use zhudai_store::recon::BreakRow;

/// The largest file the page takes.
const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

fn kind_badge(t: &Bundle, kind: &str) -> Markup {
    let css = match kind {
        "amount_differs" => "badge badge-warn",
        _ => "badge badge-bad",
    };
    html! { span class=(css) data-testid="break-kind" { (t.get(&format!("recon.kind.{kind}"))) } }
}

fn breaks_table(t: &Bundle, caller: &Caller, breaks: &[BreakRow], back: &str) -> Markup {
    let csrf = caller.csrf.clone().unwrap_or_default();
    html! {
        table.table data-testid="break-table" {
            thead { tr {
                th { "#" } th { (t.get("recon.kind")) } th { (t.get("recon.loan")) } th { (t.get("recon.value_date")) }
                th.num { (t.get("recon.funder_amount")) } th.num { (t.get("recon.our_amount")) } th { (t.get("recon.state")) } th {}
            } }
            tbody { @for b in breaks { tr data-testid="break-row" data-kind=(b.kind) {
                td { (b.id) " " a.muted href=(format!("/reconciliation/files/{}", b.file_id)) { (t.get("recon.file")) " #" (b.file_id) } }
                td { (kind_badge(t, &b.kind)) }
                td { @match b.loan_id { Some(l) => { a href=(format!("/loans/{l}")) { (b.loan_ref) } } None => { (b.loan_ref) } } }
                td { (b.value_date) }
                td.num data-testid="funder-amount" { (yuan(b.funder_fen)) }
                td.num data-testid="our-amount" { (yuan(b.ours_fen)) }
                td {
                    @if b.state == "open" { span.badge.badge-bad { (t.get("recon.open")) } }
                    @else {
                        span.badge.badge-ok { (t.get("recon.resolved")) }
                        @if let Some(n) = &b.resolution_note { br; span.muted { (n) } }
                        @if let (Some(by), Some(at)) = (&b.resolved_by, b.resolved_at_ms) { br; span.muted { (by) " · " (shanghai(at, false)) } }
                    }
                }
                td { @if b.state == "open" {
                    form.inline method="post" action=(format!("/reconciliation/breaks/{}/resolve", b.id)) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="back" value=(back);
                        input name="note" placeholder=(t.get("recon.note")) aria-label=(t.get("recon.note")) required;
                        button type="submit" data-testid="resolve" { (t.get("recon.resolve")) }
                    }
                } }
            } } }
        }
    }
}

async fn list_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let files = state.store().recon_files(100).await?;
    let open = state.store().recon_breaks("open", 500).await?;
    let funders = state.store().partners(Some("funder"), None).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let action = format!("/reconciliation?{}={}", CSRF_FIELD, urlencode(&csrf));
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        section.card data-testid="recon-upload" {
            h2 { (t.get("recon.upload")) }
            p.muted { (t.get("recon.hint")) }
            @if let Some(e) = &error { p.field-error role="alert" data-testid="recon-error" { (e) } }
            form method="post" action=(action) enctype="multipart/form-data" {
                div.field { label for="rc-funder" { (t.get("recon.funder")) }
                    select #rc-funder name="funder" { @for p in &funders { option value=(p.code) { (if lang == Lang::En { &p.name_en } else { &p.name_zh }) " (" (p.code) ")" } } } }
                div.field { label for="rc-file" { (t.get("recon.file")) } input #rc-file type="file" name="file" accept=".csv,text/csv" required; }
                button type="submit" data-testid="recon-submit" { (t.get("recon.import")) }
            }
        }
        section.card.wide data-testid="recon-files" {
            h2 { (t.get("recon.files")) }
            @if files.is_empty() { p.muted { (t.get("recon.no_files")) } }
            @else {
                table.table {
                    thead { tr {
                        th { "#" } th { (t.get("recon.funder")) } th { (t.get("recon.file_name")) } th { (t.get("recon.dates")) }
                        th.num { (t.get("recon.lines")) } th.num { (t.get("recon.matched")) } th.num { (t.get("recon.breaks")) } th.num { (t.get("recon.open_breaks")) }
                        th.num { (t.get("recon.funder_total")) } th.num { (t.get("recon.our_total")) } th { (t.get("recon.imported")) }
                    } }
                    tbody { @for f in &files { tr data-testid="file-row" {
                        td { a href=(format!("/reconciliation/files/{}", f.id)) data-testid="file-link" { (f.id) } }
                        td { (f.funder_code) }
                        td { (f.file_name) }
                        td { (f.date_from) " → " (f.date_to) }
                        td.num { (f.lines) } td.num { (f.matched) } td.num { (f.breaks) } td.num { (f.open_breaks) }
                        td.num { (yuan(f.funder_total_fen)) } td.num { (yuan(f.ours_total_fen)) }
                        td { (f.imported_by) br; span.muted { (shanghai(f.imported_at_ms, false)) } }
                    } } }
                }
            }
        }
        section.card.wide data-testid="recon-open-breaks" {
            h2 { (t.get("recon.open_breaks")) " (" (open.len()) ")" }
            @if open.is_empty() { p.muted { (t.get("recon.no_breaks")) } }
            @else { (breaks_table(t, &caller, &open, "list")) }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "funders", &t.get("recon.title"), content).into_response())
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    resolved: Option<i64>,
}

/// GET `/reconciliation`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = q
        .resolved
        .map(|id| format!("{} #{id}", t.get("recon.resolved_notice")));
    list_page(&state, lang, caller, None, notice).await
}

async fn read_form(mut form: Multipart) -> Result<(String, String, Vec<u8>), ApiError> {
    let bad = |m: String| ApiError::field("file", "invalid", m);
    let (mut funder, mut name, mut bytes) = (String::new(), String::new(), Vec::new());
    while let Some(mut field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        match field.name().unwrap_or_default() {
            "funder" => funder = field.text().await.map_err(|e| bad(e.to_string()))?,
            "file" => {
                name = field.file_name().unwrap_or("upload.csv").to_owned();
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.to_string()))? {
                    if bytes.len() + chunk.len() > MAX_FILE_BYTES {
                        return Err(ApiError::field(
                            "file",
                            "too_large",
                            "the file is larger than 8 MB",
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
            }
            _ => {}
        }
    }
    if bytes.is_empty() {
        return Err(ApiError::field("file", "required", "choose a CSV file"));
    }
    Ok((funder, name, bytes))
}

/// POST `/reconciliation` (multipart: `funder`, `file`): imports and matches the file.
pub async fn upload(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    form: Multipart,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let result = match read_form(form).await {
        Ok((funder, name, bytes)) => svc::import(&state, &caller, &funder, &name, &bytes).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(out) => Ok(recorded_redirect(&format!(
            "/reconciliation/files/{}{}",
            out.file_id,
            if out.replayed { "?replayed=1" } else { "" }
        ))),
        Err(ApiError::Validation(errs)) => {
            let msg = format!(
                "{} {}",
                t.get("recon.refused"),
                errs.into_iter()
                    .map(|e| e.message)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let mut r = list_page(&state, lang, caller, Some(msg), None).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct FileQuery {
    replayed: Option<String>,
    resolved: Option<i64>,
}

async fn file_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let f = state
        .store()
        .recon_file(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no reconciliation file has id {id}")))?;
    let breaks = state.store().recon_breaks_of(id).await?;
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        section.card data-testid="recon-file" {
            h2 { (f.file_name) }
            dl.facts {
                dt { (t.get("recon.funder")) } dd { (f.funder_code) }
                dt { (t.get("recon.dates")) } dd { (f.date_from) " → " (f.date_to) }
                dt { (t.get("recon.lines")) } dd data-testid="file-lines" { (f.lines) }
                dt { (t.get("recon.matched")) } dd data-testid="file-matched" { (f.matched) }
                dt { (t.get("recon.breaks")) } dd data-testid="file-breaks" { (f.breaks) " (" (t.get("recon.open_breaks")) " " (f.open_breaks) ")" }
                dt { (t.get("recon.funder_total")) } dd data-testid="file-funder-total" { (yuan(f.funder_total_fen)) }
                dt { (t.get("recon.our_total")) } dd data-testid="file-our-total" { (yuan(f.ours_total_fen)) }
                dt { (t.get("recon.imported")) } dd { (f.imported_by) " · " (shanghai(f.imported_at_ms, false)) }
                dt { "SHA-256" } dd { code.muted { (f.sha256) } }
            }
            p { a href="/reconciliation" { (t.get("recon.back")) } }
        }
        section.card.wide data-testid="file-breaks-list" {
            h2 { (t.get("recon.breaks")) }
            @if breaks.is_empty() { p.muted data-testid="all-matched" { (t.get("recon.all_matched")) } }
            @else { (breaks_table(t, &caller, &breaks, &id.to_string())) }
            p.muted { (t.get("recon.kinds_note")) }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        state,
        &ctx,
        "funders",
        &format!("{} #{id}", t.get("recon.file")),
        content,
    )
    .into_response())
}

/// GET `/reconciliation/files/{id}`.
pub async fn file(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = match (q.replayed, q.resolved) {
        (Some(_), _) => Some(t.get("recon.replayed_notice")),
        (_, Some(b)) => Some(format!("{} #{b}", t.get("recon.resolved_notice"))),
        _ => None,
    };
    file_page(&state, lang, caller, id, notice).await
}

#[derive(Debug, Deserialize, Default)]
pub struct ResolveForm {
    #[serde(default)]
    note: String,
    /// `list`, or the file id the form was on.
    #[serde(default)]
    back: String,
}

/// POST `/reconciliation/breaks/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, ApiError> {
    let file_id = form.back.parse::<i64>().ok();
    match svc::resolve(&state, &caller, id, &form.note).await {
        Ok(()) => Ok(recorded_redirect(&match file_id {
            Some(f) => format!("/reconciliation/files/{f}?resolved={id}"),
            None => format!("/reconciliation?resolved={id}"),
        })),
        Err(ApiError::Validation(errs)) => {
            let msg = errs
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            let mut r = match file_id {
                Some(f) => file_page(&state, lang, caller, f, Some(msg)).await?,
                None => list_page(&state, lang, caller, Some(msg), None).await?,
            };
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = match file_id {
                Some(f) => file_page(&state, lang, caller, f, Some(m)).await?,
                None => list_page(&state, lang, caller, None, Some(m)).await?,
            };
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
