//! Funder network pages: the partner list (filters by kind and status, approval-rate and
//! volume charts, XLSX export), the partner page (licences, contacts, admission, limits,
//! pricing, reminders, performance charts, routing history) and the admission checklist
//! form with its four-eyes approval.

use crate::auth::{Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::partners::{self as svc, AdmissionDecision, AdmissionSubmit, ChecklistItemInput};
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::partner::{PartnerKind, PartnerStatus};
use zhudai_domain::Fen;
use zhudai_store::partners::Partner;

fn name(p: &Partner, lang: Lang) -> &str {
    if lang == Lang::ZhCn {
        &p.name_zh
    } else {
        &p.name_en
    }
}

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "admitted" => "badge badge-ok",
        "applying" => "badge badge-warn",
        _ => "badge badge-bad",
    };
    html! { span class=(class) data-testid="partner-status" { (t.get(&format!("partners.status.{status}"))) } }
}

fn money(fen: i64) -> String {
    Fen::new(fen).to_string()
}

fn percent(rate: &Option<String>) -> String {
    rate.as_deref()
        .and_then(|r| r.parse::<rust_decimal::Decimal>().ok())
        .map(|d| format!("{}%", (d * rust_decimal::Decimal::from(100)).round_dp(1)))
        .unwrap_or_else(|| "—".into())
}

#[derive(Debug, Deserialize, Default)]
pub struct ListFilter {
    kind: Option<String>,
    status: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(f): Query<ListFilter>,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let kind = f
        .kind
        .as_deref()
        .filter(|k| PartnerKind::parse(k).is_some());
    let status = f
        .status
        .as_deref()
        .filter(|s| PartnerStatus::parse(s).is_some());
    let partners = state.store().partners(kind, status).await?;
    let today = state.clock().today();
    let mut rows = Vec::new();
    for p in partners {
        let o = svc::origination(state.store(), &p, today).await?;
        rows.push((p, o));
    }
    let perf = svc::performances(&state).await?;
    let rate_bars: Vec<(String, i64)> = perf
        .iter()
        .map(|p| {
            let pct = p
                .approval_rate
                .as_deref()
                .and_then(|r| r.parse::<rust_decimal::Decimal>().ok())
                .map(|d| (d * rust_decimal::Decimal::from(100)).round())
                .and_then(|d| d.to_string().parse::<i64>().ok())
                .unwrap_or(0);
            (p.code.clone(), pct)
        })
        .collect();
    let volume_bars: Vec<(String, i64)> =
        perf.iter().map(|p| (p.code.clone(), p.attempts)).collect();
    let content = html! {
        section.card {
            form.filters method="get" action="/funders" data-testid="partner-filters" {
                select name="kind" {
                    option value="" { (t.get("partners.filter.all_kinds")) }
                    @for k in PartnerKind::ALL { option value=(k.as_str()) selected[kind == Some(k.as_str())] { (t.get(&format!("partners.kind.{}", k.as_str()))) } }
                }
                select name="status" {
                    option value="" { (t.get("partners.filter.all_statuses")) }
                    @for s in PartnerStatus::ALL { option value=(s.as_str()) selected[status == Some(s.as_str())] { (t.get(&format!("partners.status.{}", s.as_str()))) } }
                }
                button type="submit" { (t.get("partners.filter.go")) }
            }
            table.table data-testid="partner-table" {
                thead { tr {
                    th { (t.get("partners.code")) } th { (t.get("partners.name")) } th { (t.get("partners.kind")) }
                    th { (t.get("partners.status")) } th { (t.get("partners.listed_us_on")) } th { (t.get("partners.agreement_end_on")) }
                    th { (t.get("partners.may_originate")) }
                } }
                tbody { @for (p, o) in &rows { tr {
                    td { a href=(format!("/funders/{}", p.code)) { code { (p.code) } } }
                    td { (name(p, lang)) }
                    td { (t.get(&format!("partners.kind.{}", p.kind))) }
                    td { (status_badge(t, &p.status)) }
                    td { (p.listed_us_on.clone().unwrap_or_else(|| "—".into())) }
                    td { (p.agreement_end_on.clone().unwrap_or_else(|| "—".into())) }
                    td { @if p.kind == "funder" {
                        @if o.allowed { span.badge.badge-ok { "✓" } } @else { span.muted title=(o.reason.clone().unwrap_or_default()) { (t.get(&format!("partners.reason.{}", o.reason_code.clone().unwrap_or_default()))) } }
                    } @else { "—" } }
                } } }
            }
            @if rows.is_empty() { p.muted { (t.get("partners.none")) } }
        }
        div.grid {
            section.card data-testid="approval-chart" {
                h2 { (t.get("partners.chart.approval_rate")) }
                (chart::bars(&t.get("partners.chart.approval_rate"), &rate_bars))
            }
            section.card data-testid="volume-chart" {
                h2 { (t.get("partners.chart.volume")) }
                (chart::bars(&t.get("partners.chart.volume"), &volume_bars))
            }
        }
        p { a href="/api/v1/funder-performance.xlsx" data-testid="export-xlsx" { (t.get("partners.export")) } }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        &state,
        &ctx,
        "funders",
        &t.get("partners.title"),
        content,
    ))
}

#[derive(Debug, Deserialize, Default)]
pub struct PageFlags {
    submitted: Option<String>,
    decided: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Query(flags): Query<PageFlags>,
) -> Result<Response, ApiError> {
    let notice = if flags.submitted.is_some() {
        Some((true, "partners.admission.submitted"))
    } else if flags.decided.is_some() {
        Some((true, "partners.admission.decided"))
    } else {
        None
    };
    partner_page(
        &state,
        lang,
        caller,
        &code,
        notice.map(|(ok, k)| (ok, state.i18n().bundle(lang).get(k))),
    )
    .await
}

async fn partner_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    code: &str,
    notice: Option<(bool, String)>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let p = svc::find(state, code).await?;
    let (d, clear) = crate::api::partners::detail(state, &caller, p.clone()).await?;
    let perf = svc::performance(state, &p).await?;
    let runs = state.store().routing_runs(Some(code), None, 20).await?;
    let mut run_rows = Vec::new();
    for r in runs {
        if let Some((run, steps)) = state.store().routing_run(r.id).await? {
            let mine: Vec<_> = steps
                .into_iter()
                .filter(|s| s.partner_code == code)
                .collect();
            run_rows.push((run, mine));
        }
    }
    let open = d.admissions.iter().find(|a| a.state == "submitted");
    let open_submitter = match open {
        Some(_) => state
            .store()
            .admissions(p.id)
            .await?
            .into_iter()
            .find(|a| a.state == "submitted")
            .map(|a| a.submitted_by),
        None => None,
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let standards = state.store().admission_standards().await?;
    let title_of = |c: &str| {
        standards
            .iter()
            .find(|s| s.code == c)
            .map(|s| {
                if lang == Lang::ZhCn {
                    s.title_zh.clone()
                } else {
                    s.title_en.clone()
                }
            })
            .unwrap_or_else(|| c.to_owned())
    };
    let daily_bars: Vec<(String, i64)> = perf
        .daily
        .iter()
        .map(|x| (x.date[5..].to_owned(), x.attempts))
        .collect();
    let outcome_bars: Vec<(String, i64)> = vec![
        (t.get("routing.outcome.approved"), perf.approved),
        (t.get("routing.outcome.declined"), perf.declined),
        (t.get("routing.outcome.timeout"), perf.timeouts),
        (t.get("routing.outcome.error"), perf.errors),
    ];
    let o = &d.partner.origination;
    let content = html! {
        @if let Some((ok, text)) = &notice {
            section.card.notice data-testid=(if *ok { "notice-ok" } else { "notice-error" }) role=(if *ok { "status" } else { "alert" }) { p { (text) } }
        }
        div.grid {
            section.card data-testid="partner-facts" {
                h2 { (name(&p, lang)) }
                dl.facts {
                    dt { (t.get("partners.code")) } dd { code { (p.code) } }
                    dt { (t.get("partners.kind")) } dd { (t.get(&format!("partners.kind.{}", p.kind))) }
                    dt { (t.get("partners.status")) } dd { (status_badge(t, &p.status)) " " span.muted { (p.status_since) } }
                    @if let Some(r) = &p.status_reason { dt { (t.get("partners.status_reason")) } dd { (r) } }
                    dt { (t.get("partners.uscc")) } dd { (p.uscc.clone().unwrap_or_else(|| "—".into())) }
                    dt { (t.get("partners.listed_us_on")) } dd { (p.listed_us_on.clone().unwrap_or_else(|| t.get("partners.not_listed"))) }
                    dt { (t.get("partners.agreement")) } dd { (p.agreement_start_on.clone().unwrap_or_else(|| "—".into())) " – " (p.agreement_end_on.clone().unwrap_or_else(|| "—".into())) }
                    dt { (t.get("partners.next_review_on")) } dd { (p.next_review_on.clone().unwrap_or_else(|| "—".into())) }
                    dt { (t.get("partners.adapter")) } dd { (t.get(&format!("partners.adapter.{}", p.adapter))) }
                    dt { (t.get("partners.rule")) } dd { code { (p.eligibility_rule) } " " span.muted { "v" (p.rule_version) } }
                    @if p.kind == "funder" {
                        dt { (t.get("partners.may_originate")) }
                        dd data-testid="may-originate" { @if o.allowed { span.badge.badge-ok { (t.get("partners.may_originate.yes")) } } @else { span.badge.badge-bad { (t.get(&format!("partners.reason.{}", o.reason_code.clone().unwrap_or_default()))) } } }
                    }
                }
            }
            section.card data-testid="reminders" {
                h2 { (t.get("partners.reminders")) }
                @if d.due.is_empty() && d.reminders.is_empty() { p.muted { (t.get("partners.reminders.none")) } }
                ul {
                    @for r in &d.due { li { span.badge.badge-warn { (t.get(&format!("partners.reminder.{}", r.kind))) } " " (r.due_on) } }
                    @for r in d.reminders.iter().filter(|r| !d.due.iter().any(|x| x.kind == r.kind && x.due_on == r.due_on)) { li.muted { (t.get(&format!("partners.reminder.{}", r.kind))) " " (r.due_on) } }
                }
            }
        }
        section.card data-testid="performance" {
            h2 { (t.get("partners.performance")) }
            div.kpis {
                div.kpi { div.kpi-value data-testid="kpi-attempts" { (perf.attempts) } div.kpi-label { (t.get("partners.perf.attempts")) } }
                div.kpi { div.kpi-value data-testid="kpi-approval" { (percent(&perf.approval_rate)) } div.kpi-label { (t.get("partners.perf.approval_rate")) } }
                div.kpi { div.kpi-value { (perf.avg_decision_ms.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into())) } div.kpi-label { (t.get("partners.perf.avg_decision")) } }
                div.kpi { div.kpi-value { (money(perf.approved_amount_fen)) } div.kpi-label { (t.get("partners.perf.approved_amount")) } }
                div.kpi { div.kpi-value data-testid="kpi-balance" { (perf.disbursed_balance_fen.map(money).unwrap_or_else(|| "—".into())) } div.kpi-label { (t.get("partners.perf.balance")) } }
                div.kpi { div.kpi-value { (percent(&perf.overdue_rate)) } div.kpi-label { (t.get("partners.perf.overdue_rate")) } }
            }
            div.grid {
                div { h3 { (t.get("partners.chart.daily")) } (chart::bars(&t.get("partners.chart.daily"), &daily_bars)) }
                div { h3 { (t.get("partners.chart.outcomes")) } (chart::bars(&t.get("partners.chart.outcomes"), &outcome_bars)) }
            }
        }
        section.card data-testid="admission" {
            h2 { (t.get("partners.admission")) }
            @if let Some(a) = open {
                p { (t.get("partners.admission.awaiting")) " · " (t.get("partners.admission.submitted_by")) " " strong data-testid="submitter" { (a.submitted_by) } }
                (checklist_table(t, &a.items, &title_of))
                @if caller.can("funder.admit") {
                    @if open_submitter == Some(caller.user_id) {
                        p.muted data-testid="four-eyes" { (t.get("partners.admission.four_eyes")) }
                    } @else {
                        // One form per decision: app.js disables submit buttons on submit, so a
                        // button's own name/value would not be sent.
                        form method="post" action=(format!("/funders/{code}/admission/decision")) data-testid="decision-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="hidden" name="decision" value="approve";
                            div.field { label for="decision-note" { (t.get("partners.admission.note")) } textarea #decision-note name="note" rows="2" {} }
                            button type="submit" data-testid="approve" { (t.get("partners.admission.approve")) }
                        }
                        form method="post" action=(format!("/funders/{code}/admission/decision")) data-testid="reject-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="hidden" name="decision" value="reject";
                            div.field { label for="reject-note" { (t.get("partners.admission.reject_note")) } textarea #reject-note name="note" rows="2" required {} }
                            button.secondary type="submit" data-testid="reject" { (t.get("partners.admission.reject")) }
                        }
                    }
                }
            } @else if p.status == "applying" {
                p.muted { (t.get("partners.admission.not_submitted")) }
                @if caller.can("funder.manage") { p { a href=(format!("/funders/{code}/admission")) data-testid="start-admission" { (t.get("partners.admission.start")) } } }
            }
            @for a in d.admissions.iter().filter(|a| a.state != "submitted") {
                details {
                    summary { span class=(if a.state == "approved" { "badge badge-ok" } else { "badge badge-bad" }) { (t.get(&format!("partners.admission.state.{}", a.state))) } " " (a.submitted_by) " → " (a.decided_by.clone().unwrap_or_default()) }
                    (checklist_table(t, &a.items, &title_of))
                    @if let Some(n) = &a.decision_note { p.muted { (n) } }
                }
            }
        }
        div.grid {
            section.card data-testid="licences" {
                h2 { (t.get("partners.licences")) }
                table.table {
                    thead { tr { th { (t.get("partners.licence.type")) } th { (t.get("partners.licence.number")) } th { (t.get("partners.licence.issuer")) } th { (t.get("partners.licence.valid_until")) } } }
                    tbody { @for l in &d.licences { tr { td { (l.licence_type) } td { code { (l.number) } } td { (l.issuer) } td { (l.valid_until.clone().unwrap_or_else(|| "—".into())) } } } }
                }
                h3 { (t.get("partners.documents")) }
                ul { @for doc in &d.documents { li { code { (doc.reference) } " " (doc.description) @if let Some(s) = &doc.sha256 { " " span.muted title=(s) { "sha256 " (&s[..12.min(s.len())]) "…" } } } } }
            }
            section.card data-testid="contacts" {
                h2 { (t.get("partners.contacts")) }
                table.table {
                    thead { tr { th { (t.get("partners.contact.name")) } th { (t.get("partners.contact.title")) } th { (t.get("partners.contact.phone")) } th { (t.get("partners.contact.email")) } } }
                    tbody { @for c in &d.contacts { tr { td { (c.name) } td { (c.title) } td { (c.phone.clone().unwrap_or_default()) } td { (c.email.clone().unwrap_or_default()) } } } }
                }
            }
        }
        div.grid {
            section.card data-testid="limits" {
                h2 { (t.get("partners.limits")) }
                @match &d.limits {
                    Some(l) => dl.facts {
                        dt { (t.get("partners.limits.daily")) } dd { (money(l.daily_used_fen)) " / " (money(l.daily_quota_fen)) }
                        dt { (t.get("partners.limits.total")) } dd { (money(l.total_used_fen)) " / " (money(l.total_quota_fen)) }
                        dt { (t.get("partners.limits.per_customer")) } dd { (l.per_customer_max_fen.map(money).unwrap_or_else(|| "—".into())) }
                    },
                    None => p.muted { (t.get("partners.limits.none")) },
                }
            }
            section.card data-testid="pricing" {
                h2 { (t.get("partners.pricing")) }
                table.table {
                    thead { tr { th { (t.get("partners.pricing.product")) } th.num { (t.get("partners.pricing.rate")) } } }
                    tbody { @for pr in &d.pricing { tr { td { code { (pr.product_code) } } td.num { (pr.annual_rate) } } } }
                }
            }
        }
        section.card data-testid="routing-history" {
            h2 { (t.get("partners.routing")) }
            @if run_rows.is_empty() { p.muted { (t.get("partners.routing.none")) } }
            @else {
                table.table {
                    thead { tr { th { "#" } th { (t.get("routing.application")) } th { (t.get("routing.product")) } th.num { (t.get("routing.amount")) } th { (t.get("routing.step")) } th { (t.get("routing.run_state")) } } }
                    tbody { @for (run, steps) in &run_rows { tr {
                        td { (run.id) }
                        td { code { (run.application_ref) } }
                        td { (run.product_code) }
                        td.num { (money(run.amount_fen)) }
                        td { @for s in steps { span class=(format!("badge badge-{}", match s.outcome.as_str() { "approved" => "ok", "declined" | "error" | "timeout" => "bad", _ => "warn" })) title=(s.reason.clone().unwrap_or_default()) { (t.get(&format!("routing.outcome.{}", s.outcome))) } " " } }
                        td { (t.get(&format!("routing.state.{}", run.state))) @if let Some(f) = &run.funder_code { " → " code { (f) } } }
                    } } }
                }
            }
        }
        section.card data-testid="status-history" {
            h2 { (t.get("partners.history")) }
            table.table {
                thead { tr { th { (t.get("partners.history.date")) } th { (t.get("partners.status")) } th { (t.get("partners.status_reason")) } th { (t.get("partners.history.actor")) } } }
                tbody { @for h in &d.history { tr { td { (h.on_date) } td { (h.from_status.clone().map(|f| t.get(&format!("partners.status.{f}"))).unwrap_or_default()) " → " (t.get(&format!("partners.status.{}", h.to_status))) } td { (h.reason.clone().unwrap_or_default()) } td { (h.actor.clone().unwrap_or_default()) } } } }
            }
        }
    };
    let title = format!("{} · {}", t.get("partners.title"), name(&p, lang));
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let mut resp = page(state, &ctx, "funders", &title, content).into_response();
    if clear {
        resp.extensions_mut().insert(
            crate::auth::AuditNote::action("field.read_clear")
                .target(format!("partner:{code}.contacts.phone")),
        );
    }
    Ok(resp)
}

fn checklist_table(
    t: &Bundle,
    items: &serde_json::Value,
    title_of: &dyn Fn(&str) -> String,
) -> Markup {
    let items = items.as_array().cloned().unwrap_or_default();
    html! {
        table.table data-testid="checklist" {
            thead { tr { th { (t.get("partners.admission.standard")) } th { (t.get("partners.admission.result")) } th { (t.get("partners.admission.evidence")) } } }
            tbody { @for i in &items {
                @let code = i["code"].as_str().unwrap_or_default();
                tr {
                    td { (title_of(code)) }
                    td { @if i["passed"].as_bool() == Some(true) { span.badge.badge-ok { (t.get("partners.admission.pass")) } } @else { span.badge.badge-bad { (t.get("partners.admission.fail")) } } }
                    td { (i["evidence"].as_str().unwrap_or_default()) @if let Some(d) = i["document_ref"].as_str() { " " code { (d) } } }
                }
            } }
        }
    }
}

/// The admission checklist form.
pub async fn admission_form(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Markup, ApiError> {
    checklist_page(&state, lang, caller, &code, &[], &[]).await
}

async fn checklist_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    code: &str,
    values: &[(String, String)],
    errors: &[FieldError],
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let p = svc::find(state, code).await?;
    let kind = PartnerKind::parse(&p.kind).unwrap_or(PartnerKind::Funder);
    let standards = svc::standards_domain(&state.store().admission_standards().await?);
    let value = |k: &str| {
        values
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        section.card data-testid="admission-form" {
            p { (t.get("partners.admission.form_hint")) }
            @if !errors.is_empty() {
                div.field-error role="alert" data-testid="form-errors" { ul { @for e in errors { li { (e.message) } } } }
            }
            form method="post" action=(format!("/funders/{code}/admission")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                table.table {
                    thead { tr { th { (t.get("partners.admission.standard")) } th { (t.get("partners.admission.pass")) } th { (t.get("partners.admission.evidence")) } th { (t.get("partners.admission.document")) } } }
                    tbody { @for s in standards.iter().filter(|s| s.applies_to(kind)) { tr {
                        td { (if lang == Lang::ZhCn { &s.title_zh } else { &s.title_en }) @if s.required { " *" } }
                        td { input type="checkbox" name=(format!("passed_{}", s.code)) id=(format!("passed_{}", s.code)) checked[value(&format!("passed_{}", s.code)) == "on"]; }
                        td { input type="text" name=(format!("evidence_{}", s.code)) id=(format!("evidence_{}", s.code)) value=(value(&format!("evidence_{}", s.code))); }
                        td { input type="text" name=(format!("doc_{}", s.code)) id=(format!("doc_{}", s.code)) value=(value(&format!("doc_{}", s.code))); }
                    } } }
                }
                button type="submit" data-testid="submit-admission" { (t.get("partners.admission.submit")) }
            }
        }
    };
    let title = format!("{} · {}", t.get("partners.admission"), name(&p, lang));
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "funders", &title, content))
}

pub async fn admission_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let p = svc::find(&state, &code).await?;
    let kind = PartnerKind::parse(&p.kind).unwrap_or(PartnerKind::Funder);
    let standards = svc::standards_domain(&state.store().admission_standards().await?);
    let get = |k: String| {
        values
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let items: Vec<ChecklistItemInput> = standards
        .iter()
        .filter(|s| s.applies_to(kind))
        .filter_map(|s| {
            let evidence = get(format!("evidence_{}", s.code));
            let passed = get(format!("passed_{}", s.code)) == "on";
            let doc = get(format!("doc_{}", s.code));
            (passed || !evidence.is_empty() || !doc.is_empty()).then(|| ChecklistItemInput {
                code: s.code.clone(),
                passed,
                evidence,
                document_ref: (!doc.is_empty()).then_some(doc),
            })
        })
        .collect();
    match svc::submit_admission(&state, &caller, &code, &AdmissionSubmit { items }).await {
        Ok(_) => Ok(crate::api::partners::recorded(
            Redirect::to(&format!("/funders/{code}?submitted=1")).into_response(),
        )),
        Err(ApiError::Validation(errors)) => Ok(checklist_page(
            &state, lang, caller, &code, &values, &errors,
        )
        .await?
        .into_response()),
        Err(ApiError::Conflict(m)) => Ok(checklist_page(
            &state,
            lang,
            caller,
            &code,
            &values,
            &[FieldError::new("items", "conflict", m)],
        )
        .await?
        .into_response()),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

pub async fn admission_decide(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let req = AdmissionDecision {
        approve: form.decision == "approve",
        note: Some(form.note.trim().to_owned()).filter(|n| !n.is_empty()),
    };
    match svc::decide_admission(&state, &caller, &code, &req).await {
        Ok(_) => Ok(crate::api::partners::recorded(
            Redirect::to(&format!("/funders/{code}?decided=1")).into_response(),
        )),
        Err(ApiError::Conflict(m)) => {
            partner_page(&state, lang, caller, &code, Some((false, m))).await
        }
        Err(ApiError::Validation(errors)) => {
            let m = errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ");
            partner_page(&state, lang, caller, &code, Some((false, m))).await
        }
        Err(e) => Err(e),
    }
}
