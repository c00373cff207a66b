//! The daily close and a loan's servicing history (issue #8 item 3): `/cob` lists the
//! closes with their figures, state and chunks, and asks for a close (`cob.run`, through
//! the job queue as the API does); `/loans/{id}/servicing` shows a loan's classification
//! and bucket history, manual floor requests (asked with `loan.classify`, decided by
//! another person with `loan.classify.approve`), restructurings, the guarantee payout
//! and its collection cases. The same service functions as the API do the work.

use crate::api::audit::shanghai;
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::cob::{self as svc, FloorInput};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::classify::FiveTierClass;
use zhudai_domain::money::Fen;

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

/// A redirect that the audit layer records as a change.
pub fn recorded_redirect(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

/// The messages of the errors of `field`, joined.
pub fn err_for(errors: &[FieldError], field: &str) -> String {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

fn state_badge(t: &Bundle, s: &str) -> Markup {
    let css = match s {
        "done" | "approved" => "badge badge-ok",
        "rejected" => "badge badge-bad",
        _ => "badge badge-running",
    };
    html! { span class=(css) data-testid="state" { (t.get(&format!("cob.state.{s}"))) } }
}

fn tier_name(lang: Lang, code: &str) -> String {
    match FiveTierClass::parse(code) {
        Ok(t) if lang == Lang::En => t.en_name().to_owned(),
        Ok(t) => t.zh_name().to_owned(),
        Err(_) => code.to_owned(),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct RunsQuery {
    requested: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct RunForm {
    #[serde(default)]
    business_date: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

async fn runs_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: Option<&RunForm>,
    errors: &[FieldError],
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let runs = state.store().cob_runs(60).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let yesterday = state
        .clock()
        .today()
        .pred_opt()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let date = form.map(|f| f.business_date.clone()).unwrap_or(yesterday);
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        @if caller.can("cob.run") {
            section.card data-testid="cob-run-form" {
                h2 { (t.get("cob.request")) }
                p.muted { (t.get("cob.request_hint")) }
                form method="post" action="/cob/run" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field {
                        label for="cob-date" { (t.get("cob.business_date")) }
                        input #cob-date type="date" name="business_date" value=(date) required;
                        span.field-error data-testid="error-business_date" { (err_for(errors, "business_date")) }
                    }
                    button type="submit" data-testid="cob-run" { (t.get("cob.run")) }
                }
            }
        }
        section.card.wide data-testid="cob-runs" {
            h2 { (t.get("cob.runs")) }
            @if runs.is_empty() { p.muted { (t.get("cob.none")) } }
            @else {
                table.table {
                    thead { tr {
                        th { (t.get("cob.business_date")) } th { (t.get("cob.state")) } th.num { (t.get("cob.chunks")) }
                        th.num { (t.get("cob.loans_closed")) } th.num { (t.get("cob.overdue_loans")) } th.num { (t.get("cob.penalty")) }
                        th.num { (t.get("cob.reclassified")) } th.num { (t.get("cob.bucket_moves")) }
                        th.num { (t.get("cob.cases_opened")) } th.num { (t.get("cob.cases_closed")) }
                        th.num { (t.get("cob.payouts")) } th { (t.get("cob.started")) } th { (t.get("cob.finished")) }
                    } }
                    tbody { @for r in &runs { tr data-testid="cob-run-row" data-date=(r.business_date) {
                        td { (r.business_date) }
                        td { (state_badge(t, &r.state)) }
                        td.num { (r.chunks_done) " / " (r.chunks_total) }
                        td.num data-testid="loans-closed" { (r.totals.loans_closed) }
                        td.num data-testid="overdue-loans" { (r.totals.overdue_loans) }
                        td.num { (yuan(r.totals.penalty_fen)) }
                        td.num { (r.totals.reclassified) }
                        td.num { (r.totals.bucket_moves) }
                        td.num data-testid="cases-opened" { (r.totals.cases_opened) }
                        td.num { (r.totals.cases_closed) }
                        td.num { (r.totals.payouts) " · " (yuan(r.totals.payout_fen)) }
                        td { (r.started_by) br; span.muted { (shanghai(r.started_at_ms, false)) } }
                        td { @if let Some(f) = r.finished_at_ms { (shanghai(f, false)) } }
                    } } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "loans", &t.get("cob.title"), content).into_response())
}

/// GET `/cob`.
pub async fn runs(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = q
        .requested
        .map(|d| format!("{} {d}", t.get("cob.requested_notice")));
    runs_page(&state, lang, caller, None, &[], notice).await
}

async fn request_close(state: &AppState, caller: &Caller, date: &str) -> Result<String, ApiError> {
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::field("business_date", "invalid", "a date such as 2026-11-28"))?;
    let ds = d.format("%Y-%m-%d").to_string();
    if let Some(later) = state
        .store()
        .cob_runs(1)
        .await?
        .into_iter()
        .next()
        .filter(|r| r.business_date > ds)
    {
        return Err(svc::CobError::LaterRunExists(later.business_date).into());
    }
    svc::request(state, caller, d).await?;
    Ok(ds)
}

/// POST `/cob/run`: asks for the close of a business day (a job worker runs it).
pub async fn run_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(form): Form<RunForm>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    match request_close(&state, &caller, &form.business_date).await {
        Ok(d) => Ok(recorded_redirect(&format!("/cob?requested={d}"))),
        Err(ApiError::Validation(errors)) => {
            let errors: Vec<FieldError> = errors
                .into_iter()
                .map(|mut e| {
                    e.field = "business_date".into();
                    if e.code == "invalid" {
                        e.message = t.get("cob.bad_date");
                    } else if e.code == "not_allowed" {
                        e.message = t
                            .get("cob.not_allowed")
                            .replace("{date}", form.business_date.trim());
                    }
                    e
                })
                .collect();
            let mut r = runs_page(&state, lang, caller, Some(&form), &errors, None).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = runs_page(&state, lang, caller, Some(&form), &[], Some(m)).await?;
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

// --- A loan's servicing history ---

#[derive(Debug, Deserialize, Default, Clone)]
pub struct FloorForm {
    #[serde(default)]
    floor: String,
    #[serde(default)]
    reason: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct ServicingQuery {
    requested: Option<i64>,
    decided: Option<i64>,
}

async fn servicing_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    form: Option<&FloorForm>,
    errors: &[FieldError],
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let loan = crate::loans::load(state, &caller, id).await?;
    let s = state.store();
    let classification = s.classification_history(loan.id).await?;
    let buckets = s.bucket_history(loan.id).await?;
    let payout = s.guarantee_payout_of(loan.id).await?;
    let restructurings = s.restructurings_of(loan.id).await?;
    let floor_requests = s.floor_requests_of(loan.id).await?;
    let cases = s.cases_of_loan(loan.id).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let f = form.cloned().unwrap_or_default();
    let pending = floor_requests.iter().any(|r| r.state == "pending");
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        section.card data-testid="servicing-loan" {
            h2 { a href=(format!("/loans/{}", loan.id)) { (t.get("loans.loan")) " #" (loan.id) } }
            dl.facts {
                dt { (t.get("loans.classification")) } dd data-testid="classification" { (tier_name(lang, &loan.classification)) @if let Some(fl) = &loan.classification_floor { " · " (t.get("servicing.floor")) " " (tier_name(lang, fl)) } }
                dt { (t.get("servicing.bucket")) } dd data-testid="bucket" { (loan.collection_bucket) }
                dt { (t.get("loans.dpd")) } dd data-testid="dpd" { (loan.dpd) }
                dt { (t.get("loans.principal_outstanding")) } dd { (yuan(loan.principal_outstanding_fen)) }
                @if let Some(c) = &loan.last_closed_on { dt { (t.get("loans.last_closed_on")) } dd { (c) } }
            }
        }
        div.grid {
            section.card data-testid="class-history" {
                h2 { (t.get("servicing.class_history")) }
                @if classification.is_empty() { p.muted { (t.get("servicing.none")) } }
                @else {
                    table.table {
                        thead { tr { th { (t.get("servicing.date")) } th { (t.get("servicing.from")) } th { (t.get("servicing.to")) } th.num { (t.get("loans.dpd")) } th { (t.get("servicing.source")) } } }
                        tbody { @for c in &classification { tr {
                            td { (c.business_date) } td { (tier_name(lang, &c.from_class)) } td { (tier_name(lang, &c.to_class)) } td.num { (c.dpd) }
                            td { (t.get(&format!("servicing.source.{}", c.source))) @if let Some(n) = &c.note { br; span.muted { (n) } } }
                        } } }
                    }
                }
            }
            section.card data-testid="bucket-history" {
                h2 { (t.get("servicing.bucket_history")) }
                @if buckets.is_empty() { p.muted { (t.get("servicing.none")) } }
                @else {
                    table.table {
                        thead { tr { th { (t.get("servicing.date")) } th { (t.get("servicing.from")) } th { (t.get("servicing.to")) } th.num { (t.get("loans.dpd")) } } }
                        tbody { @for b in &buckets { tr { td { (b.business_date) } td { (b.from_bucket) } td { (b.to_bucket) } td.num { (b.dpd) } } } }
                    }
                }
            }
        }
        section.card data-testid="floor-requests" {
            h2 { (t.get("servicing.floors")) }
            p.muted { (t.get("servicing.floors_hint")) }
            @if floor_requests.is_empty() { p.muted { (t.get("servicing.none")) } }
            @else {
                table.table {
                    thead { tr { th { "#" } th { (t.get("servicing.floor")) } th { (t.get("servicing.reason")) } th { (t.get("servicing.requested_by")) } th { (t.get("cob.state")) } th { (t.get("servicing.decision")) } } }
                    tbody { @for r in &floor_requests { tr data-testid="floor-request" {
                        td { (r.id) }
                        td { @match &r.floor { Some(fl) => { (tier_name(lang, fl)) } None => { (t.get("servicing.no_floor")) } } }
                        td { (r.reason) }
                        td { (r.requested_by_name) br; span.muted { (shanghai(r.requested_at_ms, false)) } }
                        td { (state_badge(t, &r.state)) }
                        td {
                            @if let Some(d) = &r.decided_by_name { (d) @if let Some(n) = &r.decision_note { ": " (n) } }
                            @if r.state == "pending" && caller.can("loan.classify.approve") && r.requested_by != caller.user_id {
                                form.inline method="post" action=(format!("/classification-requests/{}/decision", r.id)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    input type="hidden" name="loan_id" value=(loan.id);
                                    input name="note" placeholder=(t.get("servicing.note")) aria-label=(t.get("servicing.note"));
                                    button type="submit" name="approve" value="true" data-testid="floor-approve" { (t.get("servicing.approve")) }
                                    " "
                                    button.secondary type="submit" name="approve" value="false" data-testid="floor-reject" { (t.get("servicing.reject")) }
                                }
                            }
                        }
                    } } }
                }
            }
            @if caller.can("loan.classify") && !pending {
                form method="post" action=(format!("/loans/{}/classification-requests", loan.id)) data-testid="floor-form" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field {
                        label for="fl-floor" { (t.get("servicing.floor")) }
                        select #fl-floor name="floor" {
                            option value="" { (t.get("servicing.no_floor")) }
                            @for c in FiveTierClass::ALL { option value=(c.code()) selected[f.floor == c.code()] { (tier_name(lang, c.code())) } }
                        }
                        span.field-error { (err_for(errors, "floor")) }
                    }
                    div.field {
                        label for="fl-reason" { (t.get("servicing.reason")) }
                        input #fl-reason name="reason" value=(f.reason) required;
                        span.field-error data-testid="error-reason" { (err_for(errors, "reason")) }
                    }
                    button type="submit" data-testid="floor-submit" { (t.get("servicing.ask_floor")) }
                }
            }
        }
        div.grid {
            section.card data-testid="restructurings" {
                h2 { (t.get("servicing.restructurings")) }
                @if restructurings.is_empty() { p.muted { (t.get("servicing.none")) } }
                @else {
                    table.table {
                        thead { tr { th { (t.get("servicing.restructured_on")) } th { (t.get("servicing.observation")) } th { (t.get("cob.state")) } th { (t.get("servicing.note")) } } }
                        tbody { @for r in &restructurings { tr {
                            td { (r.restructured_on) }
                            td { (r.observe_from) " → " (r.observation_ends_on) }
                            td { @if r.active { span.badge.badge-warn { (t.get("servicing.observing")) } } @else { span.badge { (t.get("servicing.ended")) " " (r.ended_on.clone().unwrap_or_default()) } } }
                            td { (r.note) }
                        } } }
                    }
                }
            }
            section.card data-testid="payout" {
                h2 { (t.get("servicing.payout")) }
                @match &payout {
                    Some(p) => {
                        dl.facts {
                            dt { (t.get("loans.funder")) } dd { (p.funder_code) }
                            dt { (t.get("servicing.date")) } dd { (p.business_date) " (" (t.get("loans.dpd")) " " (p.dpd) ")" }
                            dt { (t.get("loans.principal")) } dd { (yuan(p.principal_fen)) }
                            dt { (t.get("loans.interest")) } dd { (yuan(p.interest_fen)) }
                            dt { (t.get("servicing.total")) } dd { (yuan(p.total_fen)) " · " (t.get("servicing.entry")) " #" (p.entry_id) }
                        }
                    }
                    None => { p.muted { (t.get("servicing.no_payout")) } }
                }
            }
        }
        section.card data-testid="loan-cases" {
            h2 { (t.get("collections.cases")) }
            @if cases.is_empty() { p.muted { (t.get("servicing.none")) } }
            @else {
                table.table {
                    thead { tr { th { "#" } th { (t.get("collections.bucket")) } th { (t.get("cob.state")) } th { (t.get("collections.opened_on")) } th { (t.get("collections.closed_on")) } } }
                    tbody { @for c in &cases { tr {
                        td { @if caller.can("collection.read") { a href=(format!("/collections/cases/{}", c.id)) { (c.id) } } @else { (c.id) } }
                        td { (c.bucket) }
                        td { (t.get(&format!("collections.state.{}", c.state))) }
                        td { (c.opened_on) }
                        td { (c.closed_on.clone().unwrap_or_default()) }
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
        state,
        &ctx,
        "loans",
        &format!(
            "{} #{id} · {}",
            t.get("loans.loan"),
            t.get("servicing.title")
        ),
        content,
    )
    .into_response())
}

/// GET `/loans/{id}/servicing`.
pub async fn servicing(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ServicingQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = match (q.requested, q.decided) {
        (Some(r), _) => Some(format!("{} #{r}", t.get("servicing.requested_notice"))),
        (_, Some(r)) => Some(format!("{} #{r}", t.get("servicing.decided_notice"))),
        _ => None,
    };
    servicing_page(&state, lang, caller, id, None, &[], notice).await
}

/// POST `/loans/{id}/classification-requests`.
pub async fn floor_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<FloorForm>,
) -> Result<Response, ApiError> {
    let input = FloorInput {
        floor: Some(form.floor.clone()).filter(|s| !s.trim().is_empty()),
        reason: form.reason.clone(),
    };
    match svc::request_floor(&state, &caller, id, &input).await {
        Ok(rid) => Ok(recorded_redirect(&format!(
            "/loans/{id}/servicing?requested={rid}"
        ))),
        Err(ApiError::Validation(errors)) => {
            let mut r =
                servicing_page(&state, lang, caller, id, Some(&form), &errors, None).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = servicing_page(&state, lang, caller, id, Some(&form), &[], Some(m)).await?;
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DecisionForm {
    #[serde(default)]
    approve: String,
    #[serde(default)]
    note: String,
    /// Where to go back to (the service reads the request's own loan).
    #[serde(default)]
    loan_id: Option<i64>,
}

/// POST `/classification-requests/{id}/decision` (four eyes: not your own request).
pub async fn floor_decide(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let approve = form.approve == "true";
    match svc::decide_floor(&state, &caller, id, approve, &form.note).await {
        Ok(()) => Ok(recorded_redirect(&match form.loan_id {
            Some(l) => format!("/loans/{l}/servicing?decided={id}"),
            None => "/loans".to_owned(),
        })),
        Err(ApiError::Conflict(m) | ApiError::Forbidden(m)) if form.loan_id.is_some() => {
            let loan = form.loan_id.unwrap_or_default();
            let mut r = servicing_page(&state, lang, caller, loan, None, &[], Some(m)).await?;
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
