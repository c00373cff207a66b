//! The auditor's page `/audit`: search the trail, page through it, export it as CSV, and
//! verify the chain. Viewing the page is itself audited (`audit.search`).

use crate::api::audit::{shanghai, AuditQuery, DEFAULT_PAGE, MAX_PAGE};
use crate::audit_checkpoint::{self, VerifyReport};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use zhudai_crypto::audit_chain::AuditRecord;
use zhudai_store::audit::{AuditFilter, AuditPage};

/// Outcomes offered in the filter and counted in the chart.
pub const OUTCOMES: &[&str] = &["success", "denied", "rejected", "failed", "error", "locked"];

fn badge_class(outcome: &str) -> &'static str {
    match outcome {
        "success" => "badge badge-ok",
        "rejected" => "badge badge-warn",
        "denied" | "failed" | "error" | "locked" => "badge badge-bad",
        _ => "badge",
    }
}

fn outcome_label(t: &crate::ui::i18n::Bundle, outcome: &str) -> String {
    if OUTCOMES.contains(&outcome) {
        t.get(&format!("audit.outcome.{outcome}"))
    } else {
        outcome.to_owned()
    }
}

/// GET `/audit`.
pub async fn audit_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    uri: Uri,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let note = AuditNote::action("audit.search").target(match &query {
        Ok(Query(q)) => q.audit_target(),
        Err(_) => format!(
            "audit?{}",
            uri.query()
                .unwrap_or_default()
                .chars()
                .take(600)
                .collect::<String>()
        ),
    });
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let mut resp = match render(&state, lang, caller, &q, None).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(note);
    resp
}

/// POST `/audit/verify`: verifies the chain and shows the verdict on the page.
pub async fn verify_submit(State(state): State<AppState>, lang: Lang, caller: Caller) -> Response {
    let note = AuditNote::action("audit.verify");
    let (report, note) = match audit_checkpoint::verify(state.store(), state.vault()).await {
        Ok(r) => {
            let note = match &r.first_break {
                None => note.outcome("success").reason(format!(
                    "intact: {} records, head seq {}",
                    r.records_checked, r.head_seq
                )),
                Some(b) => note.outcome("failed").reason(b.to_string()),
            };
            (r, note)
        }
        Err(e) => {
            let mut resp = ApiError::internal(e).into_response();
            resp.extensions_mut().insert(note);
            return resp;
        }
    };
    let mut resp = match render(&state, lang, caller, &AuditQuery::default(), Some(report)).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(note);
    resp
}

async fn outcome_counts(
    state: &AppState,
    filter: &AuditFilter,
) -> Result<Vec<(String, i64)>, ApiError> {
    let mut out = Vec::new();
    for o in OUTCOMES {
        let f = AuditFilter {
            outcome: Some((*o).to_owned()),
            ..filter.clone()
        };
        out.push(((*o).to_owned(), state.store().audit_count(&f).await?));
    }
    Ok(out)
}

async fn render(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    q: &AuditQuery,
    verified: Option<VerifyReport>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let (errors, page_data, counts, total) = match q.parse(MAX_PAGE, DEFAULT_PAGE) {
        Ok(p) => {
            let page = state
                .store()
                .audit_search(&p.filter, p.before_seq, p.limit)
                .await?;
            let without_outcome = AuditFilter {
                outcome: None,
                ..p.filter.clone()
            };
            let counts = outcome_counts(state, &without_outcome).await?;
            let total = state.store().audit_count(&p.filter).await?;
            (Vec::new(), Some(page), counts, total)
        }
        Err(ApiError::Validation(errors)) => (errors, None, Vec::new(), 0),
        Err(e) => return Err(e),
    };
    let filter_qs = q.filter_query();
    // The export takes the filter only: its `limit` is a row cap, not a page size.
    let export_href = format!("/api/v1/audit/export?{filter_qs}");
    let page_limit = q
        .limit
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_urlencoded::to_string([("limit", l)]).unwrap_or_default())
        .unwrap_or_default();
    let join = |extra: String| {
        let mut parts: Vec<String> = Vec::new();
        if !filter_qs.is_empty() {
            parts.push(filter_qs.clone());
        }
        if !page_limit.is_empty() {
            parts.push(page_limit.clone());
        }
        if !extra.is_empty() {
            parts.push(extra);
        }
        parts.join("&")
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let chart_items: Vec<(String, i64)> = counts
        .iter()
        .map(|(o, n)| (outcome_label(t, o), *n))
        .collect();
    let content = html! {
        @if let Some(r) = &verified { (verify_card(t, r)) }
        section.card data-testid="audit-filter" {
            h2 { (t.get("audit.filter")) }
            @if !errors.is_empty() {
                div.field-error role="alert" data-testid="audit-errors" {
                    (t.get("audit.invalid"))
                    ul { @for e in &errors { li { code { (e.field) } ": " (e.message) } } }
                }
            }
            form method="get" action="/audit" style="display:flex;flex-wrap:wrap;gap:0 14px;align-items:flex-end" {
                div.field { label for="from" { (t.get("audit.from")) } input #from name="from" type="date" value=(v(&q.from)); }
                div.field { label for="to" { (t.get("audit.to")) } input #to name="to" type="date" value=(v(&q.to)); }
                div.field { label for="actor" { (t.get("audit.actor")) } input #actor name="actor" value=(v(&q.actor)); }
                div.field { label for="action" { (t.get("audit.action")) } input #action name="action" value=(v(&q.action)) placeholder=(t.get("audit.action.hint")); }
                div.field { label for="target" { (t.get("audit.target")) } input #target name="target" value=(v(&q.target)); }
                div.field { label for="outcome" { (t.get("audit.outcome")) }
                    select #outcome name="outcome" {
                        option value="" { (t.get("audit.outcome.any")) }
                        @for o in OUTCOMES {
                            option value=(o) selected[q.outcome.as_deref() == Some(*o)] { (outcome_label(t, o)) }
                        }
                    }
                }
                div.field { button type="submit" { (t.get("audit.search")) } }
                div.field { a href="/audit" { (t.get("audit.reset")) } }
            }
        }
        div.grid {
            section.card data-testid="audit-chart" {
                h2 { (t.get("audit.chart")) }
                (chart::bars(&t.get("audit.chart"), &chart_items))
            }
            section.card data-testid="audit-tools" {
                h2 { (t.get("audit.tools")) }
                p { a.button href=(export_href) data-testid="audit-export" { (t.get("audit.export")) } }
                p.muted { (t.get("audit.export.hint")) }
                form method="post" action="/audit/verify" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button.secondary type="submit" data-testid="audit-verify" { (t.get("audit.verify")) }
                }
                p.muted { (t.get("audit.verify.hint")) }
            }
        }
        section.card data-testid="audit-records" {
            h2 { (t.get("audit.records")) @if page_data.is_some() { " " span.muted { "(" (t.get("audit.total")) " " (total) ")" } } }
            @match &page_data {
                Some(AuditPage { records, next_before_seq }) => {
                    @if records.is_empty() {
                        p.muted { (t.get("audit.empty")) }
                    } @else {
                        div style="overflow-x:auto" {
                            table.table {
                                thead { tr {
                                    th { (t.get("audit.time")) } th { (t.get("audit.actor")) } th { (t.get("audit.role")) }
                                    th { (t.get("audit.ip")) } th { (t.get("audit.action")) } th { (t.get("audit.target")) }
                                    th { (t.get("audit.outcome")) } th { (t.get("audit.reason")) }
                                    th.num style="white-space:nowrap" { (t.get("audit.seq")) } th { (t.get("audit.hash")) }
                                } }
                                tbody { @for r in records { (row(t, r)) } }
                            }
                        }
                    }
                    p {
                        @if q.before_seq.as_deref().is_some_and(|s| !s.trim().is_empty()) {
                            a href=(format!("/audit?{}", join(String::new()))) { (t.get("audit.first")) } " · "
                        }
                        @if let Some(next) = next_before_seq {
                            a href=(format!("/audit?{}", join(format!("before_seq={next}")))) data-testid="audit-next" rel="next" { (t.get("audit.next")) }
                        }
                    }
                }
                None => {}
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "audit", &t.get("audit.title"), content).into_response())
}

fn row(t: &crate::ui::i18n::Bundle, r: &AuditRecord) -> Markup {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        tr data-seq=(r.seq) {
            td style="white-space:nowrap" { (shanghai(r.at_ms, false)) }
            td { (o(&r.actor)) }
            td { (o(&r.role)) }
            td { (o(&r.source_ip)) }
            td { code { (r.action) } }
            td style="word-break:break-all" { (o(&r.target)) }
            td style="white-space:nowrap" { span class=(badge_class(&r.outcome)) { (outcome_label(t, &r.outcome)) } }
            td { (o(&r.reason)) }
            td.num { (r.seq) }
            td { code title=(r.hash) { (r.hash.get(..10).unwrap_or(&r.hash)) } }
        }
    }
}

fn verify_card(t: &crate::ui::i18n::Bundle, r: &VerifyReport) -> Markup {
    html! {
        section.card.notice data-testid="audit-verify-result" data-ok=(r.ok) {
            h2 {
                @if r.ok { span.badge.badge-ok { (t.get("audit.verify.ok")) } }
                @else { span.badge.badge-bad { (t.get("audit.verify.broken")) } }
            }
            dl.facts {
                dt { (t.get("audit.verify.records")) } dd { (r.records_checked) }
                dt { (t.get("audit.verify.head")) } dd { (r.head_seq) " · " code { (r.head_hash) } }
                dt { (t.get("audit.verify.checkpoints")) } dd { (r.checkpoints_checked) }
                @if let Some(b) = &r.first_break {
                    dt { (t.get("audit.verify.first_break")) }
                    dd data-testid="audit-break" { (t.get("audit.seq")) " " strong { (b.seq) } " · " code { (b.kind) } " — " (b.detail) }
                }
            }
        }
    }
}
