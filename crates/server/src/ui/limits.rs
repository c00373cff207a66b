//! Credit limit pages (issue #7 item 4): `/risk/limits` (lines, changes waiting for
//! approval with approve / reject for the checker, the request form) and
//! `/risk/limits/{id}` (a line with its history, reservations, freeze and the unfreeze
//! request).

use crate::api::partners::recorded;
use crate::auth::{Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::limits::{self as svc, AdjustmentRequest, AdjustmentView, Decision};
use crate::state::AppState;
use crate::ui::account::fmt_ms;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use crate::ui::warnings::{errors_box, notice, refusal_lines, tabs};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "active" => "badge badge-ok",
        "frozen" => "badge badge-bad",
        _ => "badge badge-warn",
    };
    html! { span class=(class) data-testid="limit-status" { (t.get(&format!("limits.status.{status}"))) } }
}

fn ctx(lang: Lang, caller: Caller) -> Ctx {
    Ctx {
        lang,
        caller: Some(caller),
    }
}

fn adjustment_row(t: &Bundle, a: &AdjustmentView) -> Markup {
    html! {
        td { a href=(format!("/customers/{}", a.customer_id)) { (a.customer_name) } }
        td { (t.get(&format!("limits.scope.{}", a.scope))) }
        td { (t.get(&format!("limits.kind.{}", a.kind))) }
        td.num { (a.new_amount.map(|f| f.to_string()).unwrap_or_else(|| "—".into())) }
        td { (a.new_valid_until.clone().unwrap_or_else(|| "—".into())) }
        td { (a.reason) }
        td { (a.requested_by_name) " " span.muted { (fmt_ms(a.requested_at_ms)) } }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    done: Option<String>,
}

pub async fn list_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let ok = q
        .done
        .as_deref()
        .map(|k| t.get(&format!("limits.done.{k}")));
    render_list(
        &state,
        lang,
        caller,
        q.status,
        ok,
        Vec::new(),
        &RequestForm::default(),
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_list(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    status: Option<String>,
    ok: Option<String>,
    errors: Vec<String>,
    form: &RequestForm,
    code: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let status = status.filter(|s| zhudai_domain::credit_limit::LimitStatus::parse(s).is_some());
    let lines = svc::list(
        state,
        &caller,
        &zhudai_store::limits::LimitQuery {
            status: status.as_deref(),
            include_closed: status.as_deref() == Some("closed"),
            limit: 500,
            ..Default::default()
        },
    )
    .await?;
    let pending = svc::pending(state, &caller).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (tabs(t, "limits"))
        @if let Some(n) = &ok { (notice(n)) }
        (errors_box(&errors))
        section.card data-testid="pending-adjustments" {
            h2 { (t.get("limits.pending")) }
            @if pending.is_empty() { p.muted { (t.get("limits.pending.none")) } }
            @else {
                table.table {
                    thead { tr {
                        th { (t.get("limits.customer")) } th { (t.get("limits.scope")) } th { (t.get("limits.kind")) } th.num { (t.get("limits.amount")) }
                        th { (t.get("limits.valid_until")) } th { (t.get("limits.reason")) } th { (t.get("limits.requested_by")) } th {}
                    } }
                    tbody { @for a in &pending { tr data-testid="pending-row" {
                        (adjustment_row(t, a))
                        td {
                            @if !caller.can("risk.limit.approve") { span.muted { (t.get("limits.awaiting_checker")) } }
                            @else if a.requested_by == caller.user_id { span.muted data-testid="four-eyes" { (t.get("limits.four_eyes")) } }
                            @else {
                                form.inline method="post" action=(format!("/risk/limits/adjustments/{}/decision", a.id)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    input type="hidden" name="decision" value="approve";
                                    button type="submit" data-testid="approve" { (t.get("limits.approve")) }
                                }
                                " "
                                form.inline method="post" action=(format!("/risk/limits/adjustments/{}/decision", a.id)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    input type="hidden" name="decision" value="reject";
                                    input type="text" name="note" placeholder=(t.get("limits.reject_note")) required;
                                    " " button.secondary type="submit" data-testid="reject" { (t.get("limits.reject")) }
                                }
                            }
                        }
                    } } }
                }
            }
        }
        @if caller.can("risk.limit") {
            section.card data-testid="request-form" {
                h2 { (t.get("limits.request")) }
                p.muted { (t.get("limits.request.hint")) }
                form.filters method="post" action="/risk/limits/request" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    label { (t.get("limits.customer_id")) " " input type="number" name="customer_id" value=(form.customer_id) required; }
                    label { (t.get("limits.scope")) " " select name="scope" {
                        option value="customer" selected[form.scope != "group"] { (t.get("limits.scope.customer")) }
                        option value="group" selected[form.scope == "group"] { (t.get("limits.scope.group")) }
                    } }
                    label { (t.get("limits.amount")) " " input type="text" name="amount" value=(form.amount) placeholder="50000.00" required; }
                    label { (t.get("limits.valid_until")) " " input type="date" name="valid_until" value=(form.valid_until) required; }
                    label { (t.get("limits.reason")) " " input type="text" name="reason" value=(form.reason) required; }
                    button type="submit" data-testid="request-submit" { (t.get("limits.request.submit")) }
                }
            }
        }
        section.card {
            form.filters method="get" action="/risk/limits" {
                select name="status" {
                    option value="" { (t.get("limits.filter.current")) }
                    @for s in ["active", "frozen", "expired", "closed"] { option value=(s) selected[status.as_deref() == Some(s)] { (t.get(&format!("limits.status.{s}"))) } }
                }
                button type="submit" { (t.get("risk.filter.go")) }
            }
            table.table data-testid="limit-table" {
                thead { tr {
                    th { "#" } th { (t.get("limits.customer")) } th { (t.get("limits.scope")) } th.num { (t.get("limits.amount")) }
                    th.num { (t.get("limits.used")) } th.num { (t.get("limits.available")) } th.num { (t.get("limits.utilisation")) }
                    th { (t.get("limits.status")) } th { (t.get("limits.valid_until")) }
                } }
                tbody { @for l in &lines { tr {
                    td { a href=(format!("/risk/limits/{}", l.id)) { (l.id) } }
                    td { a href=(format!("/risk/limits/{}", l.id)) { (l.customer_name) } }
                    td { (t.get(&format!("limits.scope.{}", l.scope))) }
                    td.num { (l.amount) } td.num { (l.used) } td.num { (l.available) }
                    td.num { (l.utilisation_pct.clone().map(|p| format!("{p}%")).unwrap_or_else(|| "—".into())) }
                    td { (status_badge(t, &l.status)) }
                    td { (l.valid_until) }
                } } }
            }
            @if lines.is_empty() { p.muted { (t.get("limits.none")) } }
        }
    };
    Ok((
        code,
        page(
            state,
            &ctx(lang, caller),
            "risk",
            &t.get("limits.title"),
            content,
        ),
    )
        .into_response())
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct RequestForm {
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    reason: String,
}

pub async fn request_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(f): Form<RequestForm>,
) -> Result<Response, ApiError> {
    let result = match f.customer_id.trim().parse::<i64>() {
        Ok(customer_id) => {
            svc::request_adjustment(
                &state,
                &caller,
                &AdjustmentRequest {
                    customer_id,
                    scope: Some(f.scope.clone()).filter(|s| !s.is_empty()),
                    amount: f.amount.clone(),
                    valid_until: f.valid_until.clone(),
                    reason: f.reason.clone(),
                },
            )
            .await
        }
        Err(_) => Err(ApiError::field(
            "customer_id",
            "invalid",
            "a customer number",
        )),
    };
    match result {
        Ok(_) => Ok(recorded(
            Redirect::to("/risk/limits?done=requested").into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => {
                render_list(&state, lang, caller, None, None, lines, &f, e.status()).await
            }
            None => Err(e),
        },
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: Option<String>,
}

pub async fn decision_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let d = Decision {
        decision: f.decision,
        note: f.note,
    };
    match svc::decide(&state, &caller, id, &d).await {
        Ok(a) => Ok(recorded(
            Redirect::to(&format!("/risk/limits?done={}", a.status)).into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => {
                render_list(
                    &state,
                    lang,
                    caller,
                    None,
                    None,
                    lines,
                    &RequestForm::default(),
                    e.status(),
                )
                .await
            }
            None => Err(e),
        },
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DoneFlag {
    done: Option<String>,
}

pub async fn detail_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(flag): Query<DoneFlag>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let ok = flag
        .done
        .as_deref()
        .map(|k| t.get(&format!("limits.done.{k}")));
    render_detail(&state, lang, caller, id, ok, Vec::new(), StatusCode::OK).await
}

async fn render_detail(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    ok: Option<String>,
    errors: Vec<String>,
    code: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let d = svc::detail(state, &caller, id).await?;
    let l = &d.line;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (tabs(t, "limits"))
        @if let Some(n) = &ok { (notice(n)) }
        (errors_box(&errors))
        div.grid {
            section.card data-testid="limit-facts" {
                h2 { a href=(format!("/customers/{}", l.customer_id)) { (l.customer_name) } " · " (t.get(&format!("limits.scope.{}", l.scope))) }
                dl.facts {
                    dt { (t.get("limits.status")) } dd { (status_badge(t, &l.status)) @if let Some(r) = &l.frozen_reason { " " span.muted { (r) } } }
                    dt { (t.get("limits.amount")) } dd data-testid="limit-amount" { (l.amount) }
                    dt { (t.get("limits.used")) } dd data-testid="limit-used" { (l.used) }
                    dt { (t.get("limits.available")) } dd data-testid="limit-available" { (l.available) }
                    dt { (t.get("limits.utilisation")) } dd { (l.utilisation_pct.clone().map(|p| format!("{p}%")).unwrap_or_else(|| "—".into())) }
                    dt { (t.get("limits.valid_until")) } dd { (l.valid_until) }
                }
            }
            @if caller.can("risk.limit") {
                section.card {
                    @if l.status == "active" {
                        h2 { (t.get("limits.freeze")) }
                        form method="post" action=(format!("/risk/limits/{id}/freeze")) data-testid="freeze-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            div.field { label for="freeze-reason" { (t.get("limits.reason")) } input #freeze-reason type="text" name="reason" required; }
                            button type="submit" data-testid="freeze" { (t.get("limits.freeze")) }
                        }
                    } @else if l.status == "frozen" {
                        h2 { (t.get("limits.unfreeze")) }
                        p.muted { (t.get("limits.unfreeze.hint")) }
                        form method="post" action=(format!("/risk/limits/{id}/unfreeze")) data-testid="unfreeze-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            div.field { label for="unfreeze-reason" { (t.get("limits.reason")) } input #unfreeze-reason type="text" name="reason" required; }
                            button type="submit" data-testid="unfreeze" { (t.get("limits.unfreeze")) }
                        }
                    } @else {
                        p.muted { (t.get("limits.renew.hint")) }
                    }
                }
            }
        }
        section.card data-testid="limit-history" {
            h2 { (t.get("limits.history")) }
            table.table {
                thead { tr { th { (t.get("limits.history.at")) } th { (t.get("limits.history.actor")) } th { (t.get("limits.history.action")) } th { (t.get("limits.history.change")) } th { (t.get("limits.reason")) } } }
                tbody { @for h in &d.history { tr {
                    td { (fmt_ms(h.at_ms)) } td { (h.actor) } td { code { (h.action) } }
                    td {
                        @if h.from_amount.is_some() || h.to_amount.is_some() { (h.from_amount.map(|f| f.to_string()).unwrap_or_default()) " → " (h.to_amount.map(|f| f.to_string()).unwrap_or_default()) " " }
                        @if h.from_status.is_some() || h.to_status.is_some() { (h.from_status.clone().unwrap_or_default()) " → " (h.to_status.clone().unwrap_or_default()) }
                    }
                    td { (h.note.clone().unwrap_or_default()) }
                } } }
            }
        }
        div.grid {
            section.card data-testid="limit-reservations" {
                h2 { (t.get("limits.reservations")) }
                @if d.reservations.is_empty() { p.muted { (t.get("limits.reservations.none")) } }
                table.table { tbody { @for r in &d.reservations { tr { td { code { (r.reference) } } td.num { (r.amount) } td.num { (r.released) } td { (r.status) } } } } }
            }
            section.card data-testid="limit-adjustments" {
                h2 { (t.get("limits.adjustments")) }
                table.table { tbody { @for a in &d.adjustments { tr {
                    td { (t.get(&format!("limits.kind.{}", a.kind))) } td.num { (a.new_amount.map(|f| f.to_string()).unwrap_or_else(|| "—".into())) }
                    td { (a.reason) } td { (a.requested_by_name) } td { (t.get(&format!("limits.adjustment.{}", a.status))) }
                    td { (a.decision_note.clone().unwrap_or_default()) }
                } } } }
            }
        }
    };
    let title = format!("{} #{}", t.get("limits.title"), l.id);
    Ok((
        code,
        page(state, &ctx(lang, caller), "risk", &title, content),
    )
        .into_response())
}

#[derive(Debug, Deserialize, Default)]
pub struct ReasonForm {
    #[serde(default)]
    reason: String,
}

pub async fn freeze_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ApiError> {
    match svc::freeze(&state, &caller, id, &f.reason).await {
        Ok(_) => Ok(recorded(
            Redirect::to(&format!("/risk/limits/{id}?done=frozen")).into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => render_detail(&state, lang, caller, id, None, lines, e.status()).await,
            None => Err(e),
        },
    }
}

pub async fn unfreeze_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> Result<Response, ApiError> {
    match svc::request_unfreeze(&state, &caller, id, &f.reason).await {
        Ok(_) => Ok(recorded(
            Redirect::to(&format!("/risk/limits/{id}?done=requested")).into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => render_detail(&state, lang, caller, id, None, lines, e.status()).await,
            None => Err(e),
        },
    }
}
