//! Application pages: the list in the caller's scope, a new-application form, and the
//! application page showing where it is, whom it waits for, everything that happened,
//! and the actions the caller may take now. The same service functions as the API.

use crate::api::audit::shanghai;
use crate::applications::{self as svc, ApplicationInput};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::money::Fen;
use zhudai_workflow::Action;

fn status_badge(t: &crate::ui::i18n::Bundle, status: &str) -> Markup {
    let class = match status {
        "approved" | "disbursed" => "badge badge-ok",
        "draft" | "in_progress" => "badge badge-running",
        _ => "badge badge-bad",
    };
    html! { span class=(class) data-testid="application-status" { (t.get(&format!("applications.status.{status}"))) } }
}

/// GET `/applications`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let scope = crate::customers::scope_of(&caller, state.store()).await?;
    let rows = state.store().applications(&scope, None, 200).await?;
    let content = html! {
        section.card {
            @if caller.can("application.create") {
                p { a.button href="/applications/new" data-testid="new-application" { (t.get("applications.new")) } }
            }
            @if rows.is_empty() { p.muted { (t.get("applications.none")) } }
            @else {
                table.table data-testid="application-table" {
                    thead { tr { th { "#" } th { (t.get("applications.product")) } th.num { (t.get("applications.amount")) } th.num { (t.get("applications.months")) } th { (t.get("applications.step")) } th { (t.get("applications.status")) } th { (t.get("applications.created")) } } }
                    tbody { @for a in &rows { tr {
                        td { a href=(format!("/applications/{}", a.id)) { (a.id) } }
                        td { code { (a.product_code) } " v" (a.product_version) }
                        td.num { (Fen::new(a.amount_fen)) }
                        td.num { (a.months) }
                        td { (a.node) }
                        td { (status_badge(t, &a.status)) }
                        td { (shanghai(a.created_at_ms, false)) }
                    } } }
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
        "applications",
        &t.get("applications.title"),
        content,
    )
    .into_response())
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct NewForm {
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    product_code: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    months: String,
    #[serde(default)]
    method: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

async fn new_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &NewForm,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let products: Vec<_> = state
        .store()
        .products()
        .await?
        .into_iter()
        .filter(|p| p.status == zhudai_domain::product::ProductStatus::Active)
        .collect();
    let err = |f: &str| {
        errors
            .iter()
            .filter(|e| e.field == f)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        section.card data-testid="application-form" {
            @if !errors.is_empty() { p.field-error role="alert" { (t.get("customers.fix_errors")) } }
            form method="post" action="/applications/new" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                div.field { label for="ap-customer" { (t.get("applications.customer_id")) } input #ap-customer name="customer_id" inputmode="numeric" value=(form.customer_id) required; span.field-error { (err("customer_id")) } }
                div.field { label for="ap-product" { (t.get("applications.product")) }
                    select #ap-product name="product_code" { @for p in &products { option value=(p.code) selected[p.code == form.product_code] { (p.name) " (" (p.code) ")" } } }
                    span.field-error { (err("product_code")) } }
                div.field { label for="ap-amount" { (t.get("applications.amount")) } input #ap-amount name="amount" inputmode="decimal" value=(form.amount) required; span.field-error { (err("amount")) } }
                div.field { label for="ap-months" { (t.get("applications.months")) } input #ap-months name="months" inputmode="numeric" value=(form.months) required; span.field-error { (err("months")) } }
                div.field { label for="ap-method" { (t.get("applications.method")) }
                    select #ap-method name="method" {
                        option value="" { (t.get("applications.method.default")) }
                        @for m in ["equal_installment", "equal_principal", "interest_first", "bullet"] { option value=(m) selected[form.method == m] { (t.get(&format!("applications.method.{m}"))) } }
                    }
                    span.field-error { (err("method")) } }
                button type="submit" data-testid="create-application" { (t.get("applications.create")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        state,
        &ctx,
        "applications",
        &t.get("applications.new"),
        content,
    )
    .into_response())
}

/// GET `/applications/new`.
pub async fn new_form(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(form): Query<NewForm>,
) -> Result<Response, ApiError> {
    new_page(&state, lang, caller, &form, &[]).await
}

/// POST `/applications/new`.
pub async fn create(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(form): Form<NewForm>,
) -> Result<Response, ApiError> {
    let customer_id = form.customer_id.trim().parse::<i64>().unwrap_or(0);
    let months = form.months.trim().parse::<i64>().unwrap_or(0);
    let input = ApplicationInput {
        customer_id,
        product_code: form.product_code.clone(),
        amount: form.amount.clone(),
        months,
        method: form.method.clone(),
        purpose: None,
    };
    match svc::create(&state, &caller, &input).await {
        Ok(id) => {
            let mut r = Redirect::to(&format!("/applications/{id}")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let mut r = new_page(&state, lang, caller, &form, &errors).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

pub async fn detail_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let app = svc::load(state, &caller, id).await?;
    let inst = svc::instance(state, &app).await?;
    let steps = state.store().steps(inst.id).await?;
    let complete = svc::documents_complete(state, &app).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let waiting_for_me = inst.status == "running"
        && (inst.assignee_user == Some(caller.user_id)
            || inst
                .assignee_role
                .as_ref()
                .is_some_and(|r| caller.roles.contains(r)));
    let is_submitter = inst.submitter == Some(caller.user_id);
    // Contracts (issue #6): the contract card.
    let contract_card =
        crate::ui::contracts::application_section(state, t, &caller, &app, &inst).await?;
    // Worklists (issue #6 item 3): watch / unwatch this application's workflow.
    let watching = state.store().is_watching(caller.user_id, inst.id).await?;
    let action_form = |action: &str, label: String, with_reason: bool| -> Markup {
        html! {
            form.inline method="post" action=(format!("/applications/{id}/actions")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="action" value=(action);
                input type="hidden" name="version" value=(inst.version);
                @if with_reason { input name="reason" placeholder=(t.get("applications.reason")) aria-label=(t.get("applications.reason")) required; }
                button type="submit" data-testid=(format!("act-{action}")) { (label) }
            }
        }
    };
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" { p { (n) } } }
        div.grid {
            section.card data-testid="application-facts" {
                h2 { "#" (app.id) " " (status_badge(t, &app.status)) }
                dl.facts {
                    dt { (t.get("applications.customer_id")) } dd { a href=(format!("/customers/{}", app.customer_id)) { "#" (app.customer_id) } }
                    dt { (t.get("applications.product")) } dd { code { (app.product_code) } " v" (app.product_version) }
                    dt { (t.get("applications.amount")) } dd { (Fen::new(app.amount_fen)) }
                    dt { (t.get("applications.months")) } dd { (app.months) }
                    dt { (t.get("applications.method")) } dd { (t.get(&format!("applications.method.{}", app.method))) }
                    dt { (t.get("applications.step")) } dd data-testid="application-node" { (inst.node) }
                    dt { (t.get("applications.waiting_for")) } dd { (inst.assignee_role.clone().unwrap_or_default()) @if let Some(u) = inst.assignee_user { " #" (u) } }
                    dt { (t.get("applications.documents")) } dd { @if complete { span.badge.badge-ok { (t.get("applications.documents.complete")) } } @else { span.badge.badge-warn { (t.get("applications.documents.missing")) } } }
                    @if let Some(f) = &app.funder_code { dt { (t.get("applications.funder")) } dd { a href=(format!("/funders/{f}")) { (f) } } }
                }
            }
            section.card data-testid="application-actions" {
                h2 { (t.get("applications.actions")) }
                @if inst.status != "running" { p.muted { (t.get("applications.finished")) } }
                @else if waiting_for_me {
                    @match inst.node.as_str() {
                        "draft" => { (action_form("submit", t.get("applications.act.submit"), false)) }
                        "approval" | "doc_review" => {
                            (action_form("approve", t.get("applications.act.approve"), false))
                            (action_form("reject", t.get("applications.act.reject"), true))
                        }
                        _ => { (action_form("complete", t.get("applications.act.complete"), false)) }
                    }
                } @else { p.muted { (t.get("applications.not_yours")) } }
                @if inst.status == "running" && is_submitter {
                    (action_form("withdraw", t.get("applications.act.withdraw"), true))
                }
                @if inst.status == "running" { (action_form("comment", t.get("applications.act.comment"), true)) }
                (crate::ui::worklists::watch_button(t, &csrf, inst.id, watching, &format!("/applications/{id}")))
            }
        }
        (contract_card)
        section.card data-testid="application-history" {
            h2 { (t.get("applications.history")) }
            table.table {
                thead { tr { th { (t.get("customers.history.at")) } th { (t.get("customers.history.actor")) } th { (t.get("customers.history.action")) } th { (t.get("applications.step")) } th { (t.get("customers.history.detail")) } } }
                tbody { @for s in &steps { tr {
                    td { (shanghai(s.at_ms, false)) }
                    td { @if let Some(a) = s.actor { "#" (a) } @else { (t.get("applications.system")) } }
                    td { code { (s.action) } }
                    td { (s.from_node) " → " (s.to_node) }
                    td { (s.detail.clone().unwrap_or_default()) }
                } } }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "applications", &format!("#{id}"), content).into_response())
}

/// GET `/applications/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    detail_page(&state, lang, caller, id, None).await
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    action: String,
    version: i64,
    #[serde(default)]
    reason: String,
}

/// POST `/applications/{id}/actions`.
pub async fn act(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<ActForm>,
) -> Result<Response, ApiError> {
    let reason = form.reason.clone();
    let action = match form.action.as_str() {
        "submit" => Action::Submit,
        "complete" => Action::Complete,
        "approve" => Action::Approve,
        "reject" => Action::Reject { reason },
        "withdraw" => Action::Withdraw { reason },
        "comment" => Action::Comment { text: reason },
        other => {
            return Err(ApiError::field(
                "action",
                "unknown",
                format!("`{other}` is not an action"),
            ))
        }
    };
    match svc::act(&state, &caller, id, Some(form.version), &action).await {
        Ok(_) => {
            let mut r = Redirect::to(&format!("/applications/{id}")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        // Refusals re-render the page with the reason, keeping the refusal's status so the
        // audit trail records it as refused, not as a success.
        Err(ApiError::Conflict(m)) => {
            let mut r = detail_page(&state, lang, caller, id, Some(m)).await?;
            *r.status_mut() = axum::http::StatusCode::CONFLICT;
            Ok(r)
        }
        Err(ApiError::Forbidden(m)) => {
            let mut r = detail_page(&state, lang, caller, id, Some(m)).await?;
            *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
            Ok(r)
        }
        Err(ApiError::Validation(errs)) => {
            let m = errs
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            let mut r = detail_page(&state, lang, caller, id, Some(m)).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
