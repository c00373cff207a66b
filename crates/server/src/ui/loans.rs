//! Loan pages (issue #8): the list in the caller's scope with filters and status badges,
//! and the loan page with its schedule, repayments, journal entries and balances, a
//! repayment form for `loan.repay` and reversal of the newest repayment for
//! `loan.reverse`. The forms carry an idempotency key generated when the page is
//! rendered, so a double submit or a browser retry posts once. The same service
//! functions as the API do the work.

use crate::api::audit::shanghai;
use crate::api::loans::{detail, filter_of, LoanDetail, LoanSearch, STATUSES};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::loans::{self as svc, RepaymentInput, CHANNELS};
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::ledger::Account;
use zhudai_domain::money::Fen;

const PAGE: i64 = 50;

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "active" => "badge badge-ok",
        "paid_off" => "badge badge-done",
        "overdue" => "badge badge-bad",
        _ => "badge badge-warn",
    };
    html! { span class=(class) data-testid="loan-status" { (t.get(&format!("loans.status.{status}"))) } }
}

fn class_badge(t: &Bundle, class: &str) -> Markup {
    let css = match class {
        "normal" => "badge badge-ok",
        "special_mention" => "badge badge-warn",
        _ => "badge badge-bad",
    };
    html! { span class=(css) { (t.get(&format!("loans.class.{class}"))) } }
}

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    funder_code: String,
    #[serde(default)]
    product_code: String,
    #[serde(default)]
    classification: String,
    #[serde(default)]
    min_dpd: String,
    #[serde(default)]
    page: Option<i64>,
}

/// GET `/loans`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let page_no = q.page.unwrap_or(1).max(1);
    let search = LoanSearch {
        status: Some(q.status.clone()),
        funder_code: Some(q.funder_code.clone()),
        product_code: Some(q.product_code.clone()),
        customer_id: None,
        classification: Some(q.classification.clone()),
        min_dpd: q.min_dpd.trim().parse().ok(),
        offset: Some((page_no - 1) * PAGE),
        limit: Some(PAGE),
    };
    let (rows, total, errors) = match filter_of(&search) {
        Ok((f, offset, limit)) => {
            let scope = crate::customers::scope_of(&caller, state.store()).await?;
            let (rows, total) = state.store().loans(&scope, &f, offset, limit).await?;
            (rows, total, Vec::new())
        }
        Err(ApiError::Validation(e)) => (Vec::new(), 0, e),
        Err(e) => return Err(e),
    };
    let pages = (total + PAGE - 1) / PAGE;
    let link = |p: i64| {
        format!(
            "/loans?status={}&funder_code={}&product_code={}&classification={}&min_dpd={}&page={p}",
            q.status, q.funder_code, q.product_code, q.classification, q.min_dpd
        )
    };
    let content = html! {
        section.card {
            form.filters method="get" action="/loans" data-testid="loan-filters" {
                select name="status" aria-label=(t.get("loans.status")) {
                    option value="" { (t.get("loans.filter.any_status")) }
                    @for s in STATUSES { option value=(s) selected[q.status == *s] { (t.get(&format!("loans.status.{s}"))) } }
                }
                select name="classification" aria-label=(t.get("loans.classification")) {
                    option value="" { (t.get("loans.filter.any_class")) }
                    @for c in ["normal", "special_mention", "substandard", "doubtful", "loss"] { option value=(c) selected[q.classification == c] { (t.get(&format!("loans.class.{c}"))) } }
                }
                input name="funder_code" value=(q.funder_code) placeholder=(t.get("loans.funder")) aria-label=(t.get("loans.funder"));
                input name="product_code" value=(q.product_code) placeholder=(t.get("loans.product")) aria-label=(t.get("loans.product"));
                input name="min_dpd" value=(q.min_dpd) inputmode="numeric" placeholder=(t.get("loans.filter.min_dpd")) aria-label=(t.get("loans.filter.min_dpd"));
                button type="submit" { (t.get("loans.filter.apply")) }
            }
            @for e in &errors { p.field-error role="alert" { (e.field) ": " (e.message) } }
            p.muted data-testid="loan-count" { (t.get("loans.total")) " " (total)
                " · " a href="/cob" { (t.get("cob.title")) }
                @if caller.can("funder.reconcile") { " · " a href="/reconciliation" { (t.get("recon.title")) } }
            }
            @if rows.is_empty() { p.muted { (t.get("loans.none")) } }
            @else {
                table.table data-testid="loan-table" {
                    thead { tr {
                        th { "#" } th { (t.get("loans.product")) } th { (t.get("loans.funder")) }
                        th.num { (t.get("loans.principal")) } th.num { (t.get("loans.principal_outstanding")) }
                        th { (t.get("loans.disbursed_on")) } th.num { (t.get("loans.dpd")) }
                        th { (t.get("loans.classification")) } th { (t.get("loans.status")) }
                    } }
                    tbody { @for l in &rows { tr {
                        td { a href=(format!("/loans/{}", l.id)) data-testid="loan-link" { (l.id) } }
                        td { code { (l.product_code) } " v" (l.product_version) }
                        td { (l.funder_code) }
                        td.num { (yuan(l.principal_fen)) }
                        td.num { (yuan(l.principal_outstanding_fen)) }
                        td { (l.disbursed_on) }
                        td.num { (l.dpd) }
                        td { (class_badge(t, &l.classification)) " " span.muted { (l.collection_bucket) } }
                        td { (status_badge(t, &l.status)) }
                    } } }
                }
                @if pages > 1 {
                    p.pager {
                        @if page_no > 1 { a href=(link(page_no - 1)) { (t.get("loans.prev")) } " " }
                        (page_no) " / " (pages)
                        @if page_no < pages { " " a href=(link(page_no + 1)) { (t.get("loans.next")) } }
                    }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "loans", &t.get("loans.title"), content).into_response())
}

/// The repayment form's fields, kept when the form comes back with errors.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct RepayForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    value_date: String,
    #[serde(default)]
    payer_name: String,
    #[serde(default)]
    third_party: Option<String>,
    #[serde(default)]
    payer_relation: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    external_ref: String,
    /// Generated when the form was rendered; a resubmission reuses it.
    #[serde(default)]
    idempotency_key: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

fn err_for(errors: &[FieldError], field: &str) -> String {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

fn account_name(lang: Lang, code: &str) -> String {
    match Account::parse(code) {
        Some(a) if lang == Lang::En => a.en_name().to_owned(),
        Some(a) => a.zh_name().to_owned(),
        None => code.to_owned(),
    }
}

async fn loan_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    form: Option<&RepayForm>,
    errors: &[FieldError],
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let loan = svc::load(state, &caller, id).await?;
    let d: LoanDetail = detail(state, loan).await?;
    let l = &d.loan;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let fresh = RepayForm {
        kind: "scheduled".into(),
        amount: d.due.due_now.clone(),
        value_date: d.due.as_of.clone(),
        payer_name: String::new(),
        channel: "transfer".into(),
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let f = form.cloned().unwrap_or(fresh);
    let newest_posted = d
        .repayments
        .iter()
        .rev()
        .find(|r| r.status == "posted")
        .map(|r| r.id);
    let can_repay = caller.can("loan.repay") && l.status != "paid_off" && l.status != "written_off";
    let content = html! {
        @if let Some(n) = &notice { section.card.notice data-testid="notice" role="status" { p { (n) } } }
        div.grid {
            section.card data-testid="loan-facts" {
                h2 { (t.get("loans.loan")) " #" (l.id) " " (status_badge(t, &l.status)) }
                p { a href=(format!("/loans/{}/servicing", l.id)) data-testid="servicing-link" { (t.get("servicing.title")) } }
                dl.facts {
                    dt { (t.get("loans.customer")) } dd { a href=(format!("/customers/{}", l.customer_id)) { "#" (l.customer_id) } }
                    dt { (t.get("loans.application")) } dd { a href=(format!("/applications/{}", l.application_id)) { "#" (l.application_id) } }
                    dt { (t.get("loans.product")) } dd { code { (l.product_code) } " v" (l.product_version) }
                    dt { (t.get("loans.funder")) } dd { (l.funder_code) @if let Some(r) = &l.funder_loan_ref { " · " (r) } }
                    dt { (t.get("loans.principal")) } dd { (l.principal) }
                    dt { (t.get("loans.rate")) } dd { (l.annual_rate) " / " (t.get("loans.penalty_rate")) " " (l.penalty_annual_rate) }
                    dt { (t.get("loans.method")) } dd { (t.get(&format!("applications.method.{}", l.method))) " · " (l.months) " " (t.get("loans.months")) }
                    dt { (t.get("loans.disbursed_on")) } dd { (l.disbursed_on) " → " (l.maturity_date) }
                    dt { (t.get("loans.classification")) } dd { (class_badge(t, &l.classification)) " " (l.collection_bucket) @if l.last_closed_on.is_none() { " " span.muted { (t.get("loans.not_closed_yet")) } } }
                    dt { (t.get("loans.dpd")) } dd data-testid="loan-dpd" { (l.dpd) @if let Some(s) = &l.overdue_since { " (" (t.get("loans.overdue_since")) " " (s) ")" } }
                    @if let Some(c) = &l.last_closed_on { dt { (t.get("loans.last_closed_on")) } dd { (c) } }
                    @if let Some(c) = &l.closed_on { dt { (t.get("loans.closed_on")) } dd { (c) } }
                }
            }
            section.card data-testid="loan-balances" {
                h2 { (t.get("loans.outstanding")) }
                dl.facts {
                    dt { (t.get("loans.principal_outstanding")) } dd data-testid="principal-outstanding" { (l.principal_outstanding) }
                    dt { (t.get("loans.interest_outstanding")) } dd { (l.interest_outstanding) }
                    dt { (t.get("loans.fee_outstanding")) } dd { (l.fee_outstanding) }
                    dt { (t.get("loans.penalty_outstanding")) } dd { (l.penalty_outstanding) }
                    dt { (t.get("loans.overpaid")) } dd { (l.overpaid) }
                    dt { (t.get("loans.due_now")) } dd data-testid="due-now" { (d.due.due_now) " (" (d.due.as_of) ")" }
                    @if let Some(p) = &d.due.payoff { dt { (t.get("loans.payoff")) } dd data-testid="payoff" { (p) } }
                }
            }
        }
        @if can_repay {
            section.card data-testid="repayment-form" {
                h2 { (t.get("loans.repay")) }
                @if !errors.is_empty() { p.field-error role="alert" { (t.get("loans.fix_errors")) } }
                form method="post" action=(format!("/loans/{id}/repayments")) {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="idempotency_key" value=(f.idempotency_key);
                    div.field { label for="rp-kind" { (t.get("loans.kind")) }
                        select #rp-kind name="kind" {
                            @for k in ["scheduled", "partial", "early_partial", "early_full"] { option value=(k) selected[f.kind == k] { (t.get(&format!("loans.kind.{k}"))) } }
                        }
                        span.field-error { (err_for(errors, "kind")) } }
                    div.field { label for="rp-amount" { (t.get("loans.amount")) } input #rp-amount name="amount" inputmode="decimal" value=(f.amount) required; span.field-error data-testid="error-amount" { (err_for(errors, "amount")) } }
                    div.field { label for="rp-date" { (t.get("loans.value_date")) } input #rp-date name="value_date" type="date" value=(f.value_date); span.field-error { (err_for(errors, "value_date")) } }
                    div.field { label for="rp-payer" { (t.get("loans.payer_name")) } input #rp-payer name="payer_name" value=(f.payer_name) required; span.field-error { (err_for(errors, "payer_name")) } }
                    div.field { label { input type="checkbox" name="third_party" value="1" checked[f.third_party.is_some()]; " " (t.get("loans.third_party")) } }
                    div.field { label for="rp-relation" { (t.get("loans.payer_relation")) } input #rp-relation name="payer_relation" value=(f.payer_relation); span.field-error { (err_for(errors, "payer_relation")) } }
                    div.field { label for="rp-channel" { (t.get("loans.channel")) }
                        select #rp-channel name="channel" { @for c in CHANNELS { option value=(c) selected[f.channel == *c] { (t.get(&format!("loans.channel.{c}"))) } } } }
                    div.field { label for="rp-ref" { (t.get("loans.external_ref")) } input #rp-ref name="external_ref" value=(f.external_ref); }
                    @if !err_for(errors, "Idempotency-Key").is_empty() { p.field-error { (err_for(errors, "Idempotency-Key")) } }
                    button type="submit" data-testid="post-repayment" { (t.get("loans.post")) }
                }
            }
        }
        section.card data-testid="loan-schedule" {
            h2 { (t.get("loans.schedule")) }
            table.table {
                thead { tr {
                    th { (t.get("loans.period")) } th { (t.get("loans.due_date")) }
                    th.num { (t.get("loans.principal")) } th.num { (t.get("loans.interest")) } th.num { (t.get("loans.fee")) } th.num { (t.get("loans.penalty")) }
                    th.num { (t.get("loans.paid")) } th.num { (t.get("loans.left")) } th { (t.get("loans.settled_on")) }
                } }
                tbody { @for s in &d.schedule { tr data-testid="installment" {
                    td { @if s.number == 0 { (t.get("loans.upfront")) } @else { (s.number) } }
                    td { (s.due_date) }
                    td.num { (s.principal_due) } td.num { (s.interest_due) } td.num { (s.fee_due) } td.num { (s.penalty_accrued) }
                    td.num { (sum(&[&s.principal_paid, &s.interest_paid, &s.fee_paid, &s.penalty_paid])) }
                    td.num { (s.outstanding) }
                    td { @if let Some(x) = &s.settled_on { span.badge.badge-ok { (x) } } }
                } } }
            }
        }
        section.card data-testid="loan-repayments" {
            h2 { (t.get("loans.repayments")) }
            @if d.repayments.is_empty() { p.muted { (t.get("loans.no_repayments")) } }
            @else {
                table.table {
                    thead { tr {
                        th { "#" } th { (t.get("loans.value_date")) } th { (t.get("loans.kind")) } th.num { (t.get("loans.amount")) }
                        th.num { (t.get("loans.principal")) } th.num { (t.get("loans.interest")) } th.num { (t.get("loans.fee")) } th.num { (t.get("loans.penalty")) } th.num { (t.get("loans.overpaid")) }
                        th { (t.get("loans.payer_name")) } th { (t.get("loans.status")) } th {}
                    } }
                    tbody { @for r in &d.repayments { tr data-testid="repayment-row" {
                        td { (r.id) }
                        td { (r.value_date) }
                        td { (t.get(&format!("loans.kind.{}", r.kind))) }
                        td.num { (r.amount) }
                        td.num { (r.principal) } td.num { (r.interest) } td.num { (r.fee) } td.num { (r.penalty) } td.num { (r.overpaid) }
                        td { (r.payer_name) @if r.third_party { " " span.badge.badge-warn title=(r.payer_relation.clone().unwrap_or_default()) { (t.get("loans.third_party_short")) } } }
                        td { @if r.status == "reversed" { span.badge.badge-bad title=(r.reversal_reason.clone().unwrap_or_default()) { (t.get("loans.reversed")) } } @else { span.badge.badge-ok { (t.get("loans.posted")) } } }
                        td { @if caller.can("loan.reverse") && Some(r.id) == newest_posted {
                            form.inline method="post" action=(format!("/loans/{id}/repayments/{}/reversal", r.id)) data-confirm=(t.get("loans.reverse_confirm")) {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7().to_string());
                                input name="reason" placeholder=(t.get("loans.reverse_reason")) aria-label=(t.get("loans.reverse_reason")) required;
                                button type="submit" data-testid="reverse" { (t.get("loans.reverse")) }
                            }
                        } }
                    } } }
                }
            }
        }
        div.grid {
            section.card data-testid="loan-journal" {
                h2 { (t.get("loans.journal")) }
                table.table {
                    thead { tr { th { "#" } th { (t.get("loans.value_date")) } th { (t.get("loans.entry_kind")) } th { (t.get("loans.account")) } th.num { (t.get("loans.debit")) } th.num { (t.get("loans.credit")) } } }
                    tbody { @for e in &d.journal { @for (i, line) in e.lines.iter().enumerate() { tr {
                        td { @if i == 0 { (e.id) } }
                        td { @if i == 0 { (e.business_date) } }
                        td { @if i == 0 { (t.get(&format!("loans.entry.{}", e.kind))) @if let Some(r) = e.reverses_entry_id { " ← #" (r) } } }
                        td { (account_name(lang, &line.account)) }
                        td.num { @if line.debit != "0.00" { (line.debit) } }
                        td.num { @if line.credit != "0.00" { (line.credit) } }
                    } } } }
                }
            }
            section.card data-testid="loan-ledger-balances" {
                h2 { (t.get("loans.balances")) }
                table.table {
                    thead { tr { th { (t.get("loans.account")) } th.num { (t.get("loans.debit")) } th.num { (t.get("loans.credit")) } th.num { (t.get("loans.balance")) } } }
                    tbody { @for b in &d.balances { tr {
                        td { (b.account_number) " " (account_name(lang, &b.account)) }
                        td.num { (b.debit) } td.num { (b.credit) } td.num { (b.balance) }
                    } } }
                }
                p.muted { (t.get("loans.created")) " " (shanghai(l.created_at_ms, false)) }
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
        &format!("{} #{id}", t.get("loans.loan")),
        content,
    )
    .into_response())
}

fn sum(parts: &[&str]) -> String {
    yuan(
        parts
            .iter()
            .filter_map(|p| Fen::parse_signed(p).ok())
            .map(Fen::as_fen)
            .sum(),
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct ShowQuery {
    posted: Option<i64>,
    reversed: Option<i64>,
}

/// GET `/loans/{id}`.
pub async fn show(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let notice = match (q.posted, q.reversed) {
        (Some(r), _) => Some(format!("{} #{r}", t.get("loans.posted_notice"))),
        (_, Some(r)) => Some(format!("{} #{r}", t.get("loans.reversed_notice"))),
        _ => None,
    };
    loan_page(&state, lang, caller, id, None, &[], notice).await
}

/// POST `/loans/{id}/repayments`.
pub async fn repay(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<RepayForm>,
) -> Result<Response, ApiError> {
    let input = RepaymentInput {
        kind: form.kind.clone(),
        amount: form.amount.clone(),
        value_date: Some(form.value_date.clone()).filter(|s| !s.trim().is_empty()),
        payer_name: form.payer_name.clone(),
        third_party: form.third_party.is_some(),
        payer_relation: Some(form.payer_relation.clone()).filter(|s| !s.trim().is_empty()),
        channel: Some(form.channel.clone()).filter(|s| !s.is_empty()),
        external_ref: Some(form.external_ref.clone()).filter(|s| !s.trim().is_empty()),
    };
    let result = match svc::check_idempotency_key(Some(&form.idempotency_key)) {
        Ok(key) => svc::repay(&state, &caller, id, &key, &input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => {
            let mut r = Redirect::to(&format!("/loans/{id}?posted={}", p.view.id)).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => {
            let mut r = loan_page(&state, lang, caller, id, Some(&form), &errors, None).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = loan_page(&state, lang, caller, id, Some(&form), &[], Some(m)).await?;
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ReverseForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    idempotency_key: String,
}

/// POST `/loans/{id}/repayments/{rid}/reversal`.
pub async fn reverse(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path((id, rid)): Path<(i64, i64)>,
    Form(form): Form<ReverseForm>,
) -> Result<Response, ApiError> {
    let result = match svc::check_idempotency_key(Some(&form.idempotency_key)) {
        Ok(key) => svc::reverse(&state, &caller, id, rid, &key, &form.reason).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            let mut r = Redirect::to(&format!("/loans/{id}?reversed={rid}")).into_response();
            r.extensions_mut().insert(AuditNote {
                recorded: true,
                ..Default::default()
            });
            Ok(r)
        }
        Err(ApiError::Validation(errs)) => {
            let m = errs
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            let mut r = loan_page(&state, lang, caller, id, None, &[], Some(m)).await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(ApiError::Conflict(m)) => {
            let mut r = loan_page(&state, lang, caller, id, None, &[], Some(m)).await?;
            *r.status_mut() = StatusCode::CONFLICT;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
