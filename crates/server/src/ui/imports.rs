//! The customer import wizard: upload a CSV or XLSX (a dry run by default), watch the
//! progress, read the row-level report (and download it as XLSX), then confirm to import
//! the same file for real. The pages call the same functions as the import API.

use crate::api::audit::shanghai;
use crate::api::customer_imports::{read_upload, start, visible, ImportView, Upload};
use crate::auth::{urlencode, AuditNote, Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};

fn status_badge(t: &crate::ui::i18n::Bundle, status: &str) -> Markup {
    let class = match status {
        "done" => "badge badge-ok",
        "queued" | "running" => "badge badge-running",
        _ => "badge badge-bad",
    };
    html! { span class=(class) data-testid="import-status" { (t.get(&format!("imports.status.{status}"))) } }
}

fn upload_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    error: Option<String>,
    recent: &[zhudai_store::imports::ImportJob],
) -> Response {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let action = format!("/customers/import?{}={}", CSRF_FIELD, urlencode(&csrf));
    let content = html! {
        section.card data-testid="import-upload" {
            h2 { (t.get("imports.step1")) }
            p.muted { (t.get("imports.hint")) }
            @if let Some(e) = &error { p.field-error role="alert" data-testid="import-error" { (e) } }
            form method="post" action=(action) enctype="multipart/form-data" {
                div.field { label for="im-file" { (t.get("imports.file")) } input #im-file type="file" name="file" accept=".csv,.xlsx,text/csv" required; }
                div.field { label { input type="checkbox" name="dry_run" value="true" checked; " " (t.get("imports.dry_run")) } }
                div.field { label { input type="checkbox" name="strict" value="true"; " " (t.get("imports.strict")) } }
                button type="submit" data-testid="import-submit" { (t.get("imports.upload")) }
            }
        }
        @if !recent.is_empty() {
            section.card {
                h2 { (t.get("imports.recent")) }
                table.table { tbody { @for j in recent { tr {
                    td { a href=(format!("/customers/import/{}", j.id)) { "#" (j.id) " " (j.file_name) } }
                    td { (status_badge(t, &j.status)) @if j.dry_run { " " span.badge { (t.get("imports.dry_run.badge")) } } }
                    td.num { (j.counts.processed) " / " (j.total_rows) }
                    td { (shanghai(j.created_at_ms, false)) }
                } } } }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    page(state, &ctx, "customers", &t.get("imports.title"), content).into_response()
}

/// GET `/customers/import`.
pub async fn wizard(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let recent = state.store().import_list(Some(caller.user_id), 10).await?;
    Ok(upload_page(&state, lang, caller, None, &recent))
}

/// POST `/customers/import` (multipart): stores the file and queues the import.
pub async fn upload(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    form: Multipart,
) -> Result<Response, ApiError> {
    let result = match read_upload(form).await {
        Ok(up) => start(&state, &caller, up).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(id) => {
            let mut r = Redirect::to(&format!("/customers/import/{id}")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errs)) => {
            let msg = errs
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            let recent = state.store().import_list(Some(caller.user_id), 10).await?;
            let mut r = upload_page(&state, lang, caller, Some(msg), &recent);
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

/// GET `/customers/import/{id}`: progress, counts and the row-level report.
pub async fn progress(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let job = visible(&state, &caller, id).await?;
    let problems = state.store().import_errors(id, 200).await?;
    let v = ImportView::of(&job, problems);
    let running = matches!(v.status.as_str(), "queued" | "running");
    let csrf = caller.csrf.clone().unwrap_or_default();
    let total = v.total_rows.max(1);
    let content = html! {
        @if running { (PreEscaped("<meta http-equiv=\"refresh\" content=\"2\">")) }
        section.card data-testid="import-progress" {
            h2 { "#" (v.id) " " (v.file_name) " " (status_badge(t, &v.status)) @if v.dry_run { " " span.badge { (t.get("imports.dry_run.badge")) } } }
            progress max=(total) value=(v.processed_rows) style="width:100%" aria-label=(t.get("imports.progress")) {}
            p.muted { (v.processed_rows) " / " (v.total_rows) " " (t.get("imports.rows")) }
            dl.facts data-testid="import-counts" {
                dt { (t.get("imports.inserted")) } dd { (v.inserted) }
                dt { (t.get("imports.updated")) } dd { (v.updated) }
                dt { (t.get("imports.unchanged")) } dd { (v.unchanged) }
                dt { (t.get("imports.rejected")) } dd data-testid="import-rejected" { (v.rejected) }
            }
            @if let Some(e) = &v.error { p.field-error role="alert" { (e) } }
            @if v.dry_run && v.status == "done" {
                p { (t.get("imports.dry_run.done")) }
                form method="post" action=(format!("/customers/import/{id}/confirm")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button type="submit" data-testid="import-confirm" { (t.get("imports.confirm")) }
                }
            }
        }
        @if !v.problems.is_empty() {
            section.card data-testid="import-problems" {
                h2 { (t.get("imports.problems")) }
                p { a href=(format!("/api/v1/customers/imports/{id}/errors.xlsx")) data-testid="import-errors-xlsx" { (t.get("imports.download_errors")) } }
                table.table {
                    thead { tr { th { (t.get("imports.row")) } th { (t.get("imports.column")) } th { (t.get("imports.value")) } th { (t.get("imports.problem")) } th { (t.get("imports.fix")) } } }
                    tbody { @for p in &v.problems { tr {
                        td.num { (p.row) } td { (p.column) } td { code { (p.value_masked.clone().unwrap_or_default()) } }
                        td { @if lang == Lang::ZhCn { (p.problem_zh) } @else { (p.problem_en) } }
                        td { @if lang == Lang::ZhCn { (p.fix_zh) } @else { (p.fix_en) } }
                    } } }
                }
            }
        }
        p { a href="/customers/import" { (t.get("imports.another")) } " · " a href="/customers" { (t.get("customers.title")) } }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "customers", &t.get("imports.title"), content).into_response())
}

/// POST `/customers/import/{id}/confirm`: imports for real the file a dry run checked.
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let job = visible(&state, &caller, id).await?;
    if !job.dry_run || job.status != "done" {
        return Err(ApiError::Conflict(
            "only a finished dry run can be confirmed".into(),
        ));
    }
    let sealed =
        state.store().import_file(id).await?.ok_or_else(|| {
            ApiError::Conflict("the checked file is gone; upload it again".into())
        })?;
    let bytes = state
        .vault()
        .decrypt_system(&crate::import::job::file_aad(&id.to_string()), &sealed)
        .map_err(ApiError::internal)?;
    let new_id = start(
        &state,
        &caller,
        Upload {
            bytes: bytes.to_vec(),
            name: job.file_name.clone(),
            dry_run: false,
            strict: job.strict,
        },
    )
    .await?;
    let mut conn = state.store().writer().acquire().await?;
    zhudai_store::imports::import_file_discard(&mut conn, id).await?;
    drop(conn);
    let mut r = Redirect::to(&format!("/customers/import/{new_id}")).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(r)
}
