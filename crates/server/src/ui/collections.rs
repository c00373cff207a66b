//! Collections (issue #8 item 4): `/collections` is the work queue — cases in the
//! caller's view filtered by bucket, assignee and state — and `/collections/cases/{id}`
//! the case: the loan's figures, days past due and bucket, the contact log with its form
//! (the compliance guards — allowed hours, the daily limit per debtor — come back as
//! plain field errors with nothing saved), the promise to pay, assignment to a collector
//! or an agency, and closure. The same service functions as the API do the work.

use crate::api::audit::shanghai;
use crate::api::collections::{filter_of, CaseSearch};
use crate::auth::{Caller, CSRF_FIELD};
use crate::collections::{self as svc, ContactInput};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::cob::{err_for, recorded_redirect};
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::classify::CollectionBucket;
use zhudai_domain::collection::{Channel, CloseReason, Outcome};
use zhudai_domain::money::Fen;

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

fn channel_name(lang: Lang, code: &str) -> String {
    match Channel::parse(code) {
        Some(c) if lang == Lang::En => c.en_name().to_owned(),
        Some(c) => c.zh_name().to_owned(),
        None => code.to_owned(),
    }
}

fn outcome_name(lang: Lang, code: &str) -> String {
    match Outcome::parse(code) {
        Some(c) if lang == Lang::En => c.en_name().to_owned(),
        Some(c) => c.zh_name().to_owned(),
        None => code.to_owned(),
    }
}

fn reason_name(lang: Lang, code: &str) -> String {
    match CloseReason::parse(code) {
        Some(c) if lang == Lang::En => c.en_name().to_owned(),
        Some(c) => c.zh_name().to_owned(),
        None => code.to_owned(),
    }
}

fn bucket_badge(bucket: &str) -> Markup {
    let css = match bucket {
        "M0" => "badge badge-ok",
        "M1" => "badge badge-warn",
        _ => "badge badge-bad",
    };
    html! { span class=(css) data-testid="bucket" { (bucket) } }
}

#[derive(Debug, Deserialize, Default)]
pub struct QueueQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    assignee: String,
}

/// GET `/collections`: the work queue.
pub async fn queue(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let search = CaseSearch {
        state: Some(q.state.clone()).filter(|s| !s.is_empty()),
        bucket: Some(q.bucket.clone()).filter(|s| !s.is_empty()),
        assignee: Some(q.assignee.clone()).filter(|s| !s.is_empty()),
        agency: None,
        limit: Some(200),
        offset: None,
    };
    let (rows, total, errors) = match filter_of(&state, &caller, &search).await {
        Ok(f) => {
            let (rows, total) = state.store().cases(&f).await?;
            (rows, total, Vec::new())
        }
        Err(ApiError::Validation(e)) => (Vec::new(), 0, e),
        Err(e) => return Err(e),
    };
    let scope = svc::scope_of(&state, &caller).await?;
    let counts = state.store().case_counts(&scope).await?;
    let bars: Vec<(String, i64)> = CollectionBucket::ALL
        .iter()
        .filter(|b| b.is_delinquent())
        .map(|b| {
            (
                b.label().to_owned(),
                counts
                    .iter()
                    .find(|(k, _)| k == b.label())
                    .map_or(0, |(_, n)| *n),
            )
        })
        .collect();
    let collectors = if caller.can("collection.assign") {
        state.store().collectors().await?
    } else {
        Vec::new()
    };
    let content = html! {
        section.card {
            form.filters method="get" action="/collections" data-testid="case-filters" {
                select name="state" aria-label=(t.get("collections.state")) {
                    @for s in ["open", "closed"] { option value=(s) selected[q.state == s] { (t.get(&format!("collections.state.{s}"))) } }
                }
                select name="bucket" aria-label=(t.get("collections.bucket")) {
                    option value="" { (t.get("collections.any_bucket")) }
                    @for b in CollectionBucket::ALL.iter().filter(|b| b.is_delinquent()) { option value=(b.label()) selected[q.bucket == b.label()] { (b.label()) } }
                }
                select name="assignee" aria-label=(t.get("collections.assignee")) {
                    option value="" { (t.get("collections.any_assignee")) }
                    option value="me" selected[q.assignee == "me"] { (t.get("collections.me")) }
                    option value="none" selected[q.assignee == "none"] { (t.get("collections.unassigned")) }
                    @for (id, name) in &collectors { option value=(id) selected[q.assignee == id.to_string()] { (name) } }
                }
                button type="submit" { (t.get("collections.filter")) }
            }
            @for e in &errors { p.field-error role="alert" { (e.field) ": " (e.message) } }
        }
        div.grid {
            section.card data-testid="bucket-chart" {
                h2 { (t.get("collections.open_by_bucket")) }
                (chart::bars(&t.get("collections.open_by_bucket"), &bars))
            }
        }
        section.card.wide {
            p.muted data-testid="case-count" { (t.get("collections.total")) " " (total) }
            @if rows.is_empty() { p.muted { (t.get("collections.none")) } }
            @else {
                table.table data-testid="case-table" {
                    thead { tr {
                        th { "#" } th { (t.get("collections.loan")) } th { (t.get("collections.customer")) }
                        th { (t.get("collections.bucket")) } th.num { (t.get("loans.dpd")) } th.num { (t.get("loans.principal_outstanding")) }
                        th { (t.get("collections.assignee")) } th { (t.get("collections.agency")) } th { (t.get("collections.promise")) }
                        th.num { (t.get("collections.contacts")) } th { (t.get("collections.last_contact")) }
                    } }
                    tbody { @for c in &rows { tr data-testid="case-row" data-case=(c.id) {
                        td { a href=(format!("/collections/cases/{}", c.id)) data-testid="case-link" { (c.id) } }
                        td { (c.loan_ref) }
                        td { (c.customer_name) }
                        td { (bucket_badge(&c.bucket)) }
                        td.num { (c.dpd) }
                        td.num { (yuan(c.principal_outstanding_fen)) }
                        td { (c.assignee_name.clone().unwrap_or_default()) }
                        td { (c.agency_code.clone().unwrap_or_default()) }
                        td { @if let (Some(a), Some(d)) = (c.promised_amount_fen, &c.promised_date) { (yuan(a)) " · " (d) } }
                        td.num { (c.contacts) }
                        td { @if let Some(ms) = c.last_contact_at_ms { (shanghai(ms, false)) } }
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
        "collections",
        &t.get("collections.title"),
        content,
    )
    .into_response())
}

/// The contact form's fields, kept when the form comes back with errors.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct ContactForm {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    promised_amount: String,
    #[serde(default)]
    promised_date: String,
    #[serde(default)]
    note: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

/// Plain-language messages for the contact form's errors; the compliance guards name
/// the hours and the limit from the settings.
fn friendly(state: &AppState, t: &Bundle, errors: Vec<FieldError>) -> Vec<FieldError> {
    let policy = state.settings().collection;
    let now = svc::local(state.now_ms()).format("%H:%M").to_string();
    errors
        .into_iter()
        .map(|mut e| {
            let key = match e.code.as_str() {
                "collection.outside_hours" => Some("collections.err.outside_hours".to_owned()),
                "collection.daily_limit" => Some("collections.err.daily_limit".to_owned()),
                _ => match e.field.as_str() {
                    "channel" | "outcome" | "promised_amount" | "promised_date" | "note" => {
                        Some(format!("collections.err.{}", e.field))
                    }
                    _ => None,
                },
            };
            if let Some(k) = key {
                e.message = t
                    .get(&k)
                    .replace("{hours}", &policy.hours.to_string())
                    .replace("{now}", &now)
                    .replace("{limit}", &policy.daily_limit.to_string());
            }
            e
        })
        .collect()
}

async fn case_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    form: Option<&ContactForm>,
    errors: &[FieldError],
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let c = svc::load(state, &caller, id).await?;
    let contacts = state.store().contacts_of(c.id).await?;
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let assignments = state.store().assignments_of(c.id, &today).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let f = form.cloned().unwrap_or_else(|| ContactForm {
        channel: "phone".into(),
        outcome: "no_answer".into(),
        ..Default::default()
    });
    let open = c.state == "open";
    let can_work = open && caller.can("collection.work");
    let can_assign = open && caller.can("collection.assign");
    let collectors = if can_assign {
        state.store().collectors().await?
    } else {
        Vec::new()
    };
    let agencies = if can_assign {
        state.store().agency_summaries(&today).await?
    } else {
        Vec::new()
    };
    let with_agency = assignments.iter().any(|a| a.active);
    let policy = state.settings().collection;
    let now_local = svc::local(state.now_ms())
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let guard = t
        .get("collections.guard_hint")
        .replace("{hours}", &policy.hours.to_string())
        .replace("{limit}", &policy.daily_limit.to_string());
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        div.grid {
            section.card data-testid="case-facts" {
                h2 { (t.get("collections.case")) " #" (c.id) " " (bucket_badge(&c.bucket)) " "
                    span.badge data-testid="case-state" { (t.get(&format!("collections.state.{}", c.state))) } }
                dl.facts {
                    dt { (t.get("collections.loan")) } dd { @if caller.can("loan.read") { a href=(format!("/loans/{}", c.loan_id)) { (c.loan_ref) } " · " a href=(format!("/loans/{}/servicing", c.loan_id)) { (t.get("servicing.title")) } } @else { (c.loan_ref) } }
                    dt { (t.get("collections.customer")) } dd { (c.customer_name) }
                    dt { (t.get("loans.funder")) } dd { (c.funder_code) }
                    dt { (t.get("loans.dpd")) } dd data-testid="case-dpd" { (c.dpd) }
                    dt { (t.get("loans.principal_outstanding")) } dd data-testid="case-principal" { (yuan(c.principal_outstanding_fen)) }
                    dt { (t.get("loans.penalty_outstanding")) } dd { (yuan(c.penalty_outstanding_fen)) }
                    dt { (t.get("collections.opened_on")) } dd { (c.opened_on) }
                    dt { (t.get("collections.assignee")) } dd data-testid="case-assignee" { (c.assignee_name.clone().unwrap_or_else(|| t.get("collections.unassigned"))) }
                    dt { (t.get("collections.agency")) } dd { (c.agency_code.clone().unwrap_or_default()) }
                    dt { (t.get("collections.promise")) } dd data-testid="case-promise" {
                        @if let (Some(a), Some(d)) = (c.promised_amount_fen, &c.promised_date) { (yuan(a)) " · " (d) } @else { span.muted { (t.get("collections.no_promise")) } }
                    }
                    @if let Some(d) = &c.closed_on {
                        dt { (t.get("collections.closed_on")) } dd { (d) " · " (c.close_reason.as_deref().map(|r| reason_name(lang, r)).unwrap_or_default())
                            @if let Some(n) = &c.close_note { br; span.muted { (n) } } @if let Some(b) = &c.closed_by { " (" (b) ")" } }
                    }
                }
            }
            @if can_work {
                section.card data-testid="contact-form" {
                    h2 { (t.get("collections.log_contact")) }
                    p.muted { (guard) }
                    @if !errors.is_empty() { p.field-error role="alert" data-testid="contact-errors" { (t.get("collections.not_saved")) } }
                    @let at = err_for(errors, "at");
                    @if !at.is_empty() { p.field-error role="alert" data-testid="error-at" { (at) } }
                    form method="post" action=(format!("/collections/cases/{id}/contacts")) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label { (t.get("collections.time")) } span data-testid="contact-time" { (now_local) } }
                        div.field { label for="ct-channel" { (t.get("collections.channel")) }
                            select #ct-channel name="channel" { @for ch in Channel::ALL { option value=(ch.code()) selected[f.channel == ch.code()] { (channel_name(lang, ch.code())) } } }
                            span.field-error data-testid="error-channel" { (err_for(errors, "channel")) } }
                        div.field { label for="ct-outcome" { (t.get("collections.outcome")) }
                            select #ct-outcome name="outcome" { @for o in Outcome::ALL { option value=(o.code()) selected[f.outcome == o.code()] { (outcome_name(lang, o.code())) } } }
                            span.field-error data-testid="error-outcome" { (err_for(errors, "outcome")) } }
                        div.field { label for="ct-amount" { (t.get("collections.promised_amount")) }
                            input #ct-amount name="promised_amount" inputmode="decimal" value=(f.promised_amount);
                            span.field-error data-testid="error-promised_amount" { (err_for(errors, "promised_amount")) } }
                        div.field { label for="ct-date" { (t.get("collections.promised_date")) }
                            input #ct-date name="promised_date" type="date" value=(f.promised_date);
                            span.field-error data-testid="error-promised_date" { (err_for(errors, "promised_date")) } }
                        div.field { label for="ct-note" { (t.get("collections.note")) }
                            textarea #ct-note name="note" rows="2" { (f.note) }
                            span.field-error { (err_for(errors, "note")) } }
                        button type="submit" data-testid="contact-submit" { (t.get("collections.save_contact")) }
                    }
                }
            }
        }
        section.card.wide data-testid="contact-log" {
            h2 { (t.get("collections.contact_log")) }
            @if contacts.is_empty() { p.muted { (t.get("collections.no_contacts")) } }
            @else {
                table.table {
                    thead { tr { th { (t.get("collections.time")) } th { (t.get("collections.channel")) } th { (t.get("collections.outcome")) } th { (t.get("collections.promise")) } th { (t.get("collections.note")) } th { (t.get("collections.by")) } } }
                    tbody { @for x in &contacts { tr data-testid="contact-row" {
                        td { (shanghai(x.at_ms, false)) }
                        td { (channel_name(lang, &x.channel)) }
                        td { (outcome_name(lang, &x.outcome)) }
                        td { @if let (Some(a), Some(d)) = (x.promised_amount_fen, &x.promised_date) { (yuan(a)) " · " (d) } }
                        td { (x.note.clone().unwrap_or_default()) }
                        td { (x.user_name) @if let Some(a) = &x.agency_code { " · " (a) } }
                    } } }
                }
            }
        }
        div.grid {
            section.card data-testid="agency" {
                h2 { (t.get("collections.agency_assignments")) }
                @if assignments.is_empty() { p.muted { (t.get("collections.no_agency")) } }
                @else {
                    table.table {
                        thead { tr { th { (t.get("collections.agency")) } th.num { (t.get("collections.rate")) } th { (t.get("collections.period")) } th.num { (t.get("collections.recovered")) } th.num { (t.get("collections.commission")) } } }
                        tbody { @for a in &assignments { tr data-testid="agency-row" {
                            td { (a.agency_code) @if a.active { " " span.badge.badge-running { (t.get("collections.active")) } } }
                            td.num { (a.commission_rate) }
                            td { (a.assigned_on) " → " (a.ended_on.clone().unwrap_or_default()) }
                            td.num { (yuan(a.recovered_fen)) }
                            td.num { (yuan(a.commission_fen)) }
                        } } }
                    }
                }
                @if can_assign && with_agency {
                    form.inline method="post" action=(format!("/collections/cases/{id}/agency/end")) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        button.secondary type="submit" data-testid="agency-end" { (t.get("collections.end_agency")) }
                    }
                }
                @if can_assign && !with_agency && !agencies.is_empty() {
                    form method="post" action=(format!("/collections/cases/{id}/agency")) data-testid="agency-form" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label for="ag-code" { (t.get("collections.agency")) }
                            select #ag-code name="agency_code" { @for a in &agencies { option value=(a.agency_code) { (a.name) @if let Some(r) = &a.commission_rate { " (" (r) ")" } } } } }
                        div.field { label for="ag-rate" { (t.get("collections.rate")) } input #ag-rate name="commission_rate" inputmode="decimal" placeholder=(t.get("collections.rate_default")); }
                        button type="submit" data-testid="agency-submit" { (t.get("collections.hand_to_agency")) }
                    }
                }
            }
            @if can_assign || (open && caller.can("collection.manage")) {
                section.card data-testid="case-actions" {
                    @if can_assign {
                        h2 { (t.get("collections.assign")) }
                        form method="post" action=(format!("/collections/cases/{id}/assign")) data-testid="assign-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="hidden" name="version" value=(c.version);
                            div.field { label for="as-user" { (t.get("collections.assignee")) }
                                select #as-user name="user_id" {
                                    option value="" { (t.get("collections.unassigned")) }
                                    @for (uid, name) in &collectors { option value=(uid) selected[c.assignee_user_id == Some(*uid)] { (name) } }
                                } }
                            button type="submit" data-testid="assign-submit" { (t.get("collections.assign")) }
                        }
                    }
                    @if open && caller.can("collection.manage") {
                        h2 { (t.get("collections.close")) }
                        form method="post" action=(format!("/collections/cases/{id}/close")) data-testid="close-form" data-confirm=(t.get("collections.close_confirm")) {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            div.field { label for="cl-reason" { (t.get("collections.close_reason")) }
                                select #cl-reason name="reason" { @for r in CloseReason::ALL { option value=(r.code()) { (reason_name(lang, r.code())) } } } }
                            div.field { label for="cl-note" { (t.get("collections.note")) } input #cl-note name="note" required; }
                            button type="submit" data-testid="close-submit" { (t.get("collections.close")) }
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
        state,
        &ctx,
        "collections",
        &format!("{} #{id}", t.get("collections.case")),
        content,
    )
    .into_response())
}

#[derive(Debug, Deserialize, Default)]
pub struct CaseQuery {
    done: Option<String>,
}

/// GET `/collections/cases/{id}`.
pub async fn case(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<CaseQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = q
        .done
        .filter(|d| {
            matches!(
                d.as_str(),
                "contact" | "assign" | "agency" | "agency_end" | "close"
            )
        })
        .map(|d| t.get(&format!("collections.done.{d}")));
    case_page(&state, lang, caller, id, None, &[], notice).await
}

/// Renders the case page again after a refused action: field errors and conflicts as a
/// notice, with the status of the refusal.
async fn refused(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    err: ApiError,
) -> Result<Response, ApiError> {
    let (status, message) = match err {
        ApiError::Validation(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
        e => return Err(e),
    };
    let mut r = case_page(state, lang, caller, id, None, &[], Some(message)).await?;
    *r.status_mut() = status;
    Ok(r)
}

/// POST `/collections/cases/{id}/contacts`: logs a contact made now.
pub async fn contact_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<ContactForm>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let input = ContactInput {
        channel: form.channel.clone(),
        outcome: form.outcome.clone(),
        promised_amount: some(&form.promised_amount),
        promised_date: some(&form.promised_date),
        note: some(&form.note),
    };
    match svc::log_contact(&state, &caller, id, &input).await {
        Ok(_) => Ok(recorded_redirect(&format!(
            "/collections/cases/{id}?done=contact"
        ))),
        Err(ApiError::Validation(errors)) => {
            let errors = friendly(&state, t, errors);
            let mut r = case_page(&state, lang, caller, id, Some(&form), &errors, None).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => refused(&state, lang, caller, id, e).await,
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct AssignForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    version: Option<i64>,
}

/// POST `/collections/cases/{id}/assign`.
pub async fn assign_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<AssignForm>,
) -> Result<Response, ApiError> {
    let user = match form.user_id.trim() {
        "" => Ok(None),
        s => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::field("user_id", "invalid", "pick a collector")),
    };
    let result = match user {
        Ok(u) => svc::assign(&state, &caller, id, u, form.version).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(recorded_redirect(&format!(
            "/collections/cases/{id}?done=assign"
        ))),
        Err(e) => refused(&state, lang, caller, id, e).await,
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct AgencyForm {
    #[serde(default)]
    agency_code: String,
    #[serde(default)]
    commission_rate: String,
}

/// POST `/collections/cases/{id}/agency`.
pub async fn agency_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<AgencyForm>,
) -> Result<Response, ApiError> {
    let rate = Some(form.commission_rate.trim()).filter(|s| !s.is_empty());
    match svc::assign_agency(&state, &caller, id, &form.agency_code, rate).await {
        Ok(_) => Ok(recorded_redirect(&format!(
            "/collections/cases/{id}?done=agency"
        ))),
        Err(e) => refused(&state, lang, caller, id, e).await,
    }
}

/// POST `/collections/cases/{id}/agency/end`.
pub async fn agency_end_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    match svc::end_agency(&state, &caller, id).await {
        Ok(_) => Ok(recorded_redirect(&format!(
            "/collections/cases/{id}?done=agency_end"
        ))),
        Err(e) => refused(&state, lang, caller, id, e).await,
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct CloseForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
}

/// POST `/collections/cases/{id}/close`.
pub async fn close_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<CloseForm>,
) -> Result<Response, ApiError> {
    match svc::close(&state, &caller, id, &form.reason, &form.note).await {
        Ok(()) => Ok(recorded_redirect(&format!(
            "/collections/cases/{id}?done=close"
        ))),
        Err(e) => refused(&state, lang, caller, id, e).await,
    }
}
