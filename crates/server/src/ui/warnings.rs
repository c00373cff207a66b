//! Risk warning pages (issue #7 item 3): `/risk/dashboard` (warning counts by type and
//! severity, overdue, population stability charts), `/risk/warnings` (list with filters,
//! overdue highlighted; detail with acknowledge / close and tasks), `/risk/rules` (write,
//! test against sample rows, enable), `/risk/playbooks`. `/risk/decisions` and
//! `/risk/models` belong to the credit decision pages.

use crate::api::partners::recorded;
use crate::auth::{Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::account::fmt_ms;
use crate::ui::chart;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use crate::warnings::engine::FIELDS;
use crate::warnings::{
    self as svc, ConditionError, NoteInput, PlaybookInput, RuleInput, RuleTestRequest,
    RuleTestResult, RuleView, SampleRow, WarningFilter,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_domain::risk_warning::{Category, Severity, Stage, EVENT_TYPES};

// ---------------------------------------------------------------------------------------
// Shared pieces

/// The sub-navigation of the risk pages.
pub fn tabs(t: &Bundle, active: &str) -> Markup {
    let items = [
        ("dashboard", "/risk/dashboard"),
        ("warnings", "/risk/warnings"),
        ("rules", "/risk/rules"),
        ("playbooks", "/risk/playbooks"),
        ("limits", "/risk/limits"),
        // Credit decisions (ui::risk).
        ("credit", "/risk"),
        ("decisions", "/risk/decisions"),
        ("models", "/risk/models"),
        ("policy_rules", "/risk/policy-rules"),
    ];
    html! {
        nav.filters data-testid="risk-tabs" {
            @for (key, href) in items {
                @if key == active { strong { (t.get(&format!("risk.tab.{key}"))) } }
                @else { a href=(href) { (t.get(&format!("risk.tab.{key}"))) } }
            }
        }
    }
}

pub fn severity_badge(t: &Bundle, sev: &str) -> Markup {
    html! { span class=(format!("badge sev-{sev}")) data-testid="severity" { (t.get(&format!("risk.severity.{sev}"))) } }
}

fn status_badge(t: &Bundle, status: &str) -> Markup {
    let class = match status {
        "open" => "badge badge-bad",
        "acknowledged" => "badge badge-warn",
        _ => "badge badge-ok",
    };
    html! { span class=(class) data-testid="warning-status" { (t.get(&format!("risk.status.{status}"))) } }
}

/// User-facing lines of a refused request; `None` for an internal error (propagated).
pub fn refusal_lines(e: &ApiError) -> Option<Vec<String>> {
    match e {
        ApiError::Validation(errors) => Some(
            errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
        ),
        ApiError::Conflict(m)
        | ApiError::BadRequest(m)
        | ApiError::Forbidden(m)
        | ApiError::NotFound(m) => Some(vec![m.clone()]),
        _ => None,
    }
}

pub fn errors_box(errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            section.card.notice role="alert" data-testid="form-errors" {
                ul.field-error { @for e in errors { li { (e) } } }
            }
        }
    }
}

pub fn notice(text: &str) -> Markup {
    html! { section.card.notice role="status" data-testid="notice-ok" { p { (text) } } }
}

fn ctx(lang: Lang, caller: Caller) -> Ctx {
    Ctx {
        lang,
        caller: Some(caller),
    }
}

fn with_status(status: StatusCode, m: Markup) -> Response {
    (status, m).into_response()
}

fn warnings_table(t: &Bundle, items: &[svc::WarningView]) -> Markup {
    html! {
        table.table data-testid="warning-table" {
            thead { tr {
                th { "#" } th { (t.get("risk.warning.title")) } th { (t.get("risk.severity")) } th { (t.get("risk.category")) }
                th { (t.get("risk.stage")) } th { (t.get("risk.warning.status")) } th { (t.get("risk.warning.opened")) }
                th { (t.get("risk.warning.due")) } th.num { (t.get("risk.warning.hits")) }
            } }
            tbody { @for w in items {
                tr.overdue[w.overdue] data-testid=(if w.overdue { "warning-overdue" } else { "warning-row" }) {
                    td { a href=(format!("/risk/warnings/{}", w.id)) { (w.id) } }
                    td { a href=(format!("/risk/warnings/{}", w.id)) { (w.title) } }
                    td { (severity_badge(t, &w.severity)) }
                    td { (t.get(&format!("risk.category.{}", w.category))) }
                    td { (t.get(&format!("risk.stage.{}", w.stage))) }
                    td { (status_badge(t, &w.status)) }
                    td { (fmt_ms(w.opened_at_ms)) }
                    td { (fmt_ms(w.due_at_ms)) @if w.overdue { " " span.overdue-flag { (t.get("risk.warning.overdue")) } } }
                    td.num { (w.hits) }
                }
            } }
        }
        @if items.is_empty() { p.muted { (t.get("risk.warnings.none")) } }
    }
}

fn tasks_table(t: &Bundle, csrf: &str, tasks: &[svc::TaskView], show_warning: bool) -> Markup {
    html! {
        table.table data-testid="task-table" {
            thead { tr {
                @if show_warning { th { (t.get("risk.warning.title")) } }
                th { (t.get("risk.task.role")) } th { (t.get("risk.task.title")) } th { (t.get("risk.warning.due")) } th { (t.get("risk.warning.status")) } th {}
            } }
            tbody { @for k in tasks {
                tr.overdue[k.overdue] {
                    @if show_warning { td { a href=(format!("/risk/warnings/{}", k.warning_id)) { (k.warning_title) } } }
                    td { code { (k.role) } }
                    td { (k.title) }
                    td { (fmt_ms(k.due_at_ms)) @if k.overdue { " " span.overdue-flag { (t.get("risk.warning.overdue")) } } }
                    td { @if k.status == "done" { span.badge.badge-ok { (t.get("risk.task.done")) } } @else { span.badge.badge-warn { (t.get("risk.task.open")) } } }
                    td { @if k.status == "open" {
                        form.inline method="post" action=(format!("/risk/tasks/{}/done", k.id)) {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="text" name="note" placeholder=(t.get("risk.note"));
                            " " button.secondary type="submit" data-testid="task-done" { (t.get("risk.task.mark_done")) }
                        }
                    } }
                }
            } }
        }
        @if tasks.is_empty() { p.muted { (t.get("risk.tasks.none")) } }
    }
}

// ---------------------------------------------------------------------------------------
// Dashboard

pub async fn dashboard(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let counts = svc::dashboard_counts(&state, &caller).await?;
    let recent = svc::list(
        &state,
        &caller,
        &WarningFilter {
            status: Some("active".into()),
            ..Default::default()
        },
    )
    .await?;
    let tasks = svc::my_tasks(&state, &caller).await?;
    let psi = svc::psi::overview(&state).await?;
    let legend: Vec<String> = Severity::ALL
        .iter()
        .map(|s| t.get(&format!("risk.severity.{}", s.as_str())))
        .collect();
    let rows: Vec<(String, Vec<i64>)> = Category::ALL
        .iter()
        .map(|c| {
            let v = Severity::ALL
                .iter()
                .map(|s| {
                    counts
                        .by_type
                        .iter()
                        .filter(|x| x.category == c.as_str() && x.severity == s.as_str())
                        .map(|x| x.count)
                        .sum()
                })
                .collect::<Vec<i64>>();
            (t.get(&format!("risk.category.{}", c.as_str())), v)
        })
        .filter(|(_, v)| v.iter().any(|x| *x > 0))
        .collect();
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (tabs(t, "dashboard"))
        section.card data-testid="risk-kpis" {
            div.kpis {
                div.kpi { div.kpi-value data-testid="kpi-open" { (counts.open) } div.kpi-label { (t.get("risk.status.open")) } }
                div.kpi { div.kpi-value data-testid="kpi-acknowledged" { (counts.acknowledged) } div.kpi-label { (t.get("risk.status.acknowledged")) } }
                div.kpi { div.kpi-value data-testid="kpi-overdue" { (counts.overdue) } div.kpi-label { (t.get("risk.warning.overdue")) } }
                div.kpi { div.kpi-value data-testid="kpi-closed" { (counts.closed) } div.kpi-label { (t.get("risk.status.closed")) } }
            }
            p.muted { (t.get("risk.dashboard.since")) " " (fmt_ms(counts.since_ms)) }
        }
        div.grid {
            section.card data-testid="chart-by-type" {
                h2 { (t.get("risk.dashboard.by_type")) }
                @if rows.is_empty() { p.muted { (t.get("risk.warnings.none")) } }
                @else { (chart::stacked_rows(&t.get("risk.dashboard.by_type"), &legend, &rows)) }
            }
            section.card data-testid="my-tasks" {
                h2 { (t.get("risk.tasks.mine")) }
                (tasks_table(t, &csrf, &tasks, true))
            }
        }
        section.card data-testid="recent-warnings" {
            h2 { (t.get("risk.dashboard.active")) }
            (warnings_table(t, &recent.items.iter().take(15).cloned().collect::<Vec<_>>()))
            p { a href="/risk/warnings?status=active" { (t.get("risk.dashboard.all_warnings")) } }
        }
        section.card data-testid="psi" {
            h2 { (t.get("risk.psi.title")) }
            p.muted { (t.get("risk.psi.hint")) " " (t.get("risk.psi.threshold")) " " strong data-testid="psi-threshold" { (psi.threshold) } " · " (t.get("risk.psi.window")) " " (psi.window_days) " · " (t.get("risk.psi.min_rows")) " " (psi.min_rows) }
            @if psi.baselines.is_empty() { p.muted { (t.get("risk.psi.none")) } }
            @for b in &psi.baselines {
                (psi_card(t, b, psi.threshold))
            }
        }
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.dashboard.title"),
        content,
    )
    .into_response())
}

fn psi_card(t: &Bundle, b: &svc::psi::BaselineView, threshold: f64) -> Markup {
    // Oldest run first on the time axis.
    let runs: Vec<&svc::psi::RunView> = b.runs.iter().rev().collect();
    let labels: Vec<String> = runs
        .iter()
        .map(|r| r.run_on.get(5..).unwrap_or(&r.run_on).to_owned())
        .collect();
    let mut names: Vec<String> = Vec::new();
    for r in &runs {
        for x in &r.results {
            if !names.contains(&x.name) {
                names.push(x.name.clone());
            }
        }
    }
    let series: Vec<(String, Vec<Option<f64>>)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                runs.iter()
                    .map(|r| r.results.iter().find(|x| &x.name == n).map(|x| x.psi))
                    .collect(),
            )
        })
        .collect();
    let latest = b.runs.first();
    let score_hist: Vec<(String, f64, f64)> = latest
        .and_then(|r| r.results.iter().find(|x| x.name == "score"))
        .map(|s| {
            s.bins
                .iter()
                .zip(s.expected.iter().zip(&s.actual))
                .map(|(l, (e, a))| (l.clone(), *e, *a))
                .collect()
        })
        .unwrap_or_default();
    html! {
        div data-testid="psi-model" {
            h3 { code { (b.model_name) ":" (b.model_version) } }
            @if runs.is_empty() { p.muted { (t.get("risk.psi.no_runs")) } }
            @else {
                div.grid {
                    div data-testid="psi-lines" { h3 { (t.get("risk.psi.over_time")) } (chart::lines(&t.get("risk.psi.over_time"), &labels, &series, Some(threshold))) }
                    div data-testid="psi-histogram" { h3 { (t.get("risk.psi.histogram")) } (chart::paired_columns(&t.get("risk.psi.histogram"), (&t.get("risk.psi.development"), &t.get("risk.psi.recent")), &score_hist)) }
                }
                @if let Some(r) = latest {
                    table.table data-testid="psi-latest" {
                        thead { tr { th { (t.get("risk.psi.feature")) } th.num { "PSI" } th {} } }
                        tbody { @for x in &r.results { tr {
                            td { (x.name) } td.num { (format!("{:.4}", x.psi)) }
                            td { @if x.alert { span.badge.badge-bad { (t.get("risk.psi.drift")) } } @else { span.badge.badge-ok { (t.get("risk.psi.stable")) } } }
                        } } }
                    }
                    p.muted { (r.run_on) " · " (r.rows) " " (t.get("risk.psi.rows"))
                        @if let Some(w) = r.warning_id { " · " a href=(format!("/risk/warnings/{w}")) { (t.get("risk.psi.warning")) " #" (w) } } }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Warnings

pub async fn warnings_list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(f): Query<WarningFilter>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let (page_data, errors) = match svc::list(&state, &caller, &f).await {
        Ok(p) => (Some(p), Vec::new()),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => (None, lines),
            None => return Err(e),
        },
    };
    let tasks = svc::my_tasks(&state, &caller).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let content = html! {
        (tabs(t, "warnings"))
        (errors_box(&errors))
        section.card {
            form.filters method="get" action="/risk/warnings" data-testid="warning-filters" {
                select name="status" {
                    option value="" { (t.get("risk.filter.any_status")) }
                    option value="active" selected[sel(&f.status, "active")] { (t.get("risk.status.active")) }
                    @for s in ["open", "acknowledged", "closed"] { option value=(s) selected[sel(&f.status, s)] { (t.get(&format!("risk.status.{s}"))) } }
                }
                select name="severity" {
                    option value="" { (t.get("risk.filter.any_severity")) }
                    @for s in Severity::ALL { option value=(s.as_str()) selected[sel(&f.severity, s.as_str())] { (t.get(&format!("risk.severity.{}", s.as_str()))) } }
                }
                select name="category" {
                    option value="" { (t.get("risk.filter.any_category")) }
                    @for c in Category::ALL { option value=(c.as_str()) selected[sel(&f.category, c.as_str())] { (t.get(&format!("risk.category.{}", c.as_str()))) } }
                }
                select name="stage" {
                    option value="" { (t.get("risk.filter.any_stage")) }
                    @for s in Stage::ALL { option value=(s.as_str()) selected[sel(&f.stage, s.as_str())] { (t.get(&format!("risk.stage.{}", s.as_str()))) } }
                }
                label { input type="checkbox" name="overdue" value="true" checked[f.overdue == Some(true)]; " " (t.get("risk.filter.overdue")) }
                button type="submit" { (t.get("risk.filter.go")) }
            }
            @if let Some(p) = &page_data {
                (warnings_table(t, &p.items))
                p.muted data-testid="warning-total" { (t.get("risk.warnings.total")) " " (p.total) }
                @if p.page > 1 || p.page * p.per_page < p.total {
                    p {
                        @if p.page > 1 { a href=(pager_href(&f, p.page - 1)) { "← " (t.get("risk.page.prev")) } " " }
                        @if p.page * p.per_page < p.total { a href=(pager_href(&f, p.page + 1)) { (t.get("risk.page.next")) " →" } }
                    }
                }
            }
        }
        section.card data-testid="my-tasks" {
            h2 { (t.get("risk.tasks.mine")) }
            (tasks_table(t, &csrf, &tasks, true))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(with_status(
        status,
        page(
            &state,
            &ctx(lang, caller),
            "risk",
            &t.get("risk.warnings.title"),
            content,
        ),
    ))
}

fn pager_href(f: &WarningFilter, page: i64) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("status", &f.status),
        ("severity", &f.severity),
        ("category", &f.category),
        ("stage", &f.stage),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.push((k, v.to_owned()));
        }
    }
    if f.overdue == Some(true) {
        q.push(("overdue", "true".into()));
    }
    q.push(("page", page.to_string()));
    format!(
        "/risk/warnings?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct DoneFlag {
    done: Option<String>,
}

pub async fn warning_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Query(flag): Query<DoneFlag>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let note = flag
        .done
        .as_deref()
        .map(|k| t.get(&format!("risk.done.{k}")));
    render_warning(&state, lang, caller, id, note, Vec::new(), StatusCode::OK).await
}

async fn render_warning(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    ok: Option<String>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let d = svc::detail(state, &caller, id).await?;
    let w = &d.warning;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let facts = serde_json::to_string_pretty(&w.facts).unwrap_or_default();
    let content = html! {
        (tabs(t, "warnings"))
        @if let Some(n) = &ok { (notice(n)) }
        (errors_box(&errors))
        div.grid {
            section.card data-testid="warning-facts" {
                h2 { (w.title) }
                dl.facts {
                    dt { (t.get("risk.severity")) } dd { (severity_badge(t, &w.severity)) }
                    dt { (t.get("risk.warning.status")) } dd { (status_badge(t, &w.status)) }
                    dt { (t.get("risk.category")) } dd { (t.get(&format!("risk.category.{}", w.category))) }
                    dt { (t.get("risk.stage")) } dd { (t.get(&format!("risk.stage.{}", w.stage))) }
                    dt { (t.get("risk.rule")) } dd { @if w.rule_code == svc::psi::PSI_RULE { code { (w.rule_code) } } @else { a href=(format!("/risk/rules/{}", w.rule_code)) { code { (w.rule_code) } } } " v" (w.rule_version) }
                    dt { (t.get("risk.warning.subject")) } dd {
                        @if let Some(c) = w.customer_id { a href=(format!("/customers/{c}")) { (w.customer_name.clone().unwrap_or_default()) } }
                        @else { (t.get(&format!("risk.subject.{}", w.subject_type))) " " code { (w.subject_ref) } }
                    }
                    dt { (t.get("risk.warning.opened")) } dd { (fmt_ms(w.opened_at_ms)) }
                    dt { (t.get("risk.warning.due")) } dd data-testid="warning-due" { (fmt_ms(w.due_at_ms)) @if w.overdue { " " span.overdue-flag data-testid="overdue" { (t.get("risk.warning.overdue")) } } }
                    dt { (t.get("risk.warning.hits")) } dd { (w.hits) " · " (t.get("risk.warning.last_hit")) " " (fmt_ms(w.last_hit_at_ms)) }
                    @if let Some(n) = &w.acknowledge_note { dt { (t.get("risk.warning.ack_note")) } dd { (n) } }
                    @if let Some(n) = &w.close_note { dt { (t.get("risk.warning.close_note")) } dd data-testid="close-note" { (n) } }
                }
            }
            section.card data-testid="warning-playbook" {
                h2 { (t.get("risk.playbook")) }
                p { (t.get("risk.playbook.notify")) " " @for r in &w.notify_roles { code { (r) } " " } }
                p style="white-space: pre-wrap" { (w.playbook_steps) }
                h3 { (t.get("risk.warning.actions")) }
                @if w.actions_taken.is_empty() { p.muted { (t.get("risk.warning.no_actions")) } }
                ul data-testid="actions-taken" { @for a in &w.actions_taken {
                    li { @if a.done { span.badge.badge-ok { "✓" } } @else { span.badge.badge-warn { "–" } } " " code { (a.kind) } " " (a.detail) }
                } }
            }
        }
        section.card {
            h2 { (t.get("risk.warning.tasks")) }
            (tasks_table(t, &csrf, &d.tasks, false))
        }
        @if w.status != "closed" && caller.can("risk.manage") {
            div.grid {
                @if w.status == "open" {
                    section.card {
                        h2 { (t.get("risk.warning.acknowledge")) }
                        form method="post" action=(format!("/risk/warnings/{id}/acknowledge")) data-testid="ack-form" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            div.field { label for="ack-note" { (t.get("risk.note")) } textarea #ack-note name="note" rows="2" {} }
                            button type="submit" data-testid="acknowledge" { (t.get("risk.warning.acknowledge")) }
                        }
                    }
                }
                section.card {
                    h2 { (t.get("risk.warning.close")) }
                    form method="post" action=(format!("/risk/warnings/{id}/close")) data-testid="close-form" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        div.field { label for="close-note" { (t.get("risk.warning.close_note")) } textarea #close-note name="note" rows="2" {} }
                        button type="submit" data-testid="close" { (t.get("risk.warning.close")) }
                    }
                }
            }
        }
        section.card {
            h2 { (t.get("risk.warning.facts")) }
            pre data-testid="warning-facts-json" { (facts) }
        }
    };
    let title = format!("{} #{}", t.get("risk.warning"), w.id);
    Ok(with_status(
        status,
        page(state, &ctx(lang, caller), "risk", &title, content),
    ))
}

#[derive(Debug, Deserialize, Default)]
pub struct NoteForm {
    #[serde(default)]
    note: Option<String>,
}

async fn warning_action(
    state: AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    form: NoteForm,
    close: bool,
) -> Result<Response, ApiError> {
    let n = NoteInput { note: form.note };
    let r = if close {
        svc::close(&state, &caller, id, &n).await
    } else {
        svc::acknowledge(&state, &caller, id, &n).await
    };
    match r {
        Ok(_) => Ok(recorded(
            Redirect::to(&format!(
                "/risk/warnings/{id}?done={}",
                if close { "closed" } else { "acknowledged" }
            ))
            .into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => render_warning(&state, lang, caller, id, None, lines, e.status()).await,
            None => Err(e),
        },
    }
}

pub async fn acknowledge_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<NoteForm>,
) -> Result<Response, ApiError> {
    warning_action(state, lang, caller, id, form, false).await
}

pub async fn close_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<NoteForm>,
) -> Result<Response, ApiError> {
    warning_action(state, lang, caller, id, form, true).await
}

pub async fn task_done_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<NoteForm>,
) -> Result<Response, ApiError> {
    let n = NoteInput { note: form.note };
    match svc::task_done(&state, &caller, id, &n).await {
        Ok(task) => Ok(recorded(
            Redirect::to(&format!("/risk/warnings/{}?done=task", task.warning_id)).into_response(),
        )),
        Err(e) => {
            let Some(lines) = refusal_lines(&e) else {
                return Err(e);
            };
            let t = state.i18n().bundle(lang);
            let content = html! { (tabs(t, "warnings")) (errors_box(&lines)) p { a href="/risk/warnings" { (t.get("risk.warnings.title")) } } };
            Ok(with_status(
                e.status(),
                page(
                    &state,
                    &ctx(lang, caller),
                    "risk",
                    &t.get("risk.warnings.title"),
                    content,
                ),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rules

pub async fn rules_list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let rules = svc::rules(&state).await?;
    let content = html! {
        (tabs(t, "rules"))
        section.card {
            @if caller.can("risk.manage") { p { a.button href="/risk/rules/new" data-testid="new-rule" { (t.get("risk.rules.new")) } } }
            table.table data-testid="rule-table" {
                thead { tr {
                    th { (t.get("risk.rule.code")) } th { (t.get("risk.rule.name")) } th { (t.get("risk.category")) } th { (t.get("risk.stage")) }
                    th { (t.get("risk.severity")) } th { (t.get("risk.rule.on_events")) } th { (t.get("risk.rule.state")) } th.num { "v" }
                } }
                tbody { @for r in &rules { tr {
                    td { a href=(format!("/risk/rules/{}", r.code)) { code { (r.code) } } }
                    td { (r.name) }
                    td { (t.get(&format!("risk.category.{}", r.category))) }
                    td { (t.get(&format!("risk.stage.{}", r.stage))) }
                    td { (severity_badge(t, &r.severity)) }
                    td { @if r.on_events.is_empty() { span.muted { (t.get("risk.rule.all_events")) } } @else { code { (r.on_events.join(", ")) } } }
                    td { (rule_state(t, r)) }
                    td.num { (r.version) }
                } } }
            }
            @if rules.is_empty() { p.muted { (t.get("risk.rules.none")) } }
        }
        (reference_card(t, lang))
    };
    Ok(page(
        &state,
        &ctx(lang, caller),
        "risk",
        &t.get("risk.rules.title"),
        content,
    )
    .into_response())
}

fn rule_state(t: &Bundle, r: &RuleView) -> Markup {
    html! {
        @if r.compile_error.is_some() { span.badge.badge-bad data-testid="rule-state" { (t.get("risk.rule.invalid")) } }
        @else if r.enabled { span.badge.badge-ok data-testid="rule-state" { (t.get("risk.rule.enabled")) } }
        @else { span.badge data-testid="rule-state" { (t.get("risk.rule.disabled")) } }
    }
}

/// What a rule may use: the fields, the event types, aggregates and actions.
fn reference_card(t: &Bundle, lang: Lang) -> Markup {
    html! {
        section.card data-testid="rule-reference" {
            h2 { (t.get("risk.reference")) }
            p.muted { (t.get("risk.reference.hint")) }
            div.grid {
                div {
                    h3 { (t.get("risk.reference.fields")) }
                    table.table { tbody { @for (name, ty) in FIELDS { tr { td { code { (name) } } td { code { (ty.to_type()) } } } } } }
                }
                div {
                    h3 { (t.get("risk.reference.events")) }
                    table.table { tbody { @for e in EVENT_TYPES { tr {
                        td { code { (e.code) } }
                        td { (if lang == Lang::ZhCn { e.zh } else { e.en }) }
                        td { @for f in e.fields { code { (f.as_str()) } " " } }
                    } } } }
                    h3 { (t.get("risk.reference.aggregates")) }
                    p { code { "count(repayment_failed, 30d) >= 3" } }
                    p { code { "sum(repayment_made.amount, 90d) < 1000.00" } }
                    h3 { (t.get("risk.reference.actions")) }
                    pre { r#"[{"kind": "assign_task", "role": "post_loan", "title": "致电客户"},
 {"kind": "freeze_line"}, {"kind": "cut_line", "percent": 50},
 {"kind": "suspend_partner"}]"# }
                }
            }
        }
    }
}

/// The rule form's fields, as typed.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct RuleForm {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    severity: String,
    /// Comma-separated.
    #[serde(default)]
    on_events: String,
    #[serde(default)]
    condition: String,
    /// A JSON list.
    #[serde(default)]
    actions: String,
    #[serde(default)]
    version: Option<i64>,
}

impl RuleForm {
    fn of(r: &RuleView) -> Self {
        RuleForm {
            code: Some(r.code.clone()),
            name: r.name.clone(),
            category: r.category.clone(),
            stage: r.stage.clone(),
            severity: r.severity.clone(),
            on_events: r.on_events.join(", "),
            condition: r.condition.clone(),
            actions: serde_json::to_string(&r.actions).unwrap_or_else(|_| "[]".into()),
            version: Some(r.version),
        }
    }

    fn input(&self) -> Result<RuleInput, ApiError> {
        let actions = if self.actions.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str::<Vec<serde_json::Value>>(&self.actions).map_err(|e| {
                ApiError::field(
                    "actions",
                    "invalid_json",
                    format!("a JSON list of actions: {e}"),
                )
            })?
        };
        Ok(RuleInput {
            code: self.code.clone(),
            name: self.name.clone(),
            category: self.category.clone(),
            stage: self.stage.clone(),
            severity: self.severity.clone(),
            on_events: self
                .on_events
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            condition: self.condition.clone(),
            actions,
            version: self.version,
        })
    }
}

fn rule_form(t: &Bundle, csrf: &str, action: &str, f: &RuleForm, new: bool) -> Markup {
    html! {
        form method="post" action=(action) data-testid="rule-form" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            @if let Some(v) = f.version { input type="hidden" name="version" value=(v); }
            div.grid {
                div {
                    @if new {
                        div.field { label for="code" { (t.get("risk.rule.code")) } input #code name="code" type="text" required value=(f.code.clone().unwrap_or_default()) placeholder="overdue_3x"; }
                    }
                    div.field { label for="name" { (t.get("risk.rule.name")) } input #name name="name" type="text" required value=(f.name); }
                    div.field { label for="category" { (t.get("risk.category")) }
                        select #category name="category" { @for c in Category::ALL { option value=(c.as_str()) selected[f.category == c.as_str()] { (t.get(&format!("risk.category.{}", c.as_str()))) } } } }
                    div.field { label for="stage" { (t.get("risk.stage")) }
                        select #stage name="stage" { @for s in Stage::ALL { option value=(s.as_str()) selected[f.stage == s.as_str()] { (t.get(&format!("risk.stage.{}", s.as_str()))) } } } }
                    div.field { label for="severity" { (t.get("risk.severity")) }
                        select #severity name="severity" { @for s in Severity::ALL { option value=(s.as_str()) selected[f.severity == s.as_str()] { (t.get(&format!("risk.severity.{}", s.as_str()))) } } } }
                    div.field { label for="on_events" { (t.get("risk.rule.on_events")) } input #on_events name="on_events" type="text" value=(f.on_events) placeholder="repayment_failed, overdue"; span.muted { (t.get("risk.rule.on_events.hint")) } }
                }
                div {
                    div.field { label for="condition" { (t.get("risk.rule.condition")) } textarea.code #condition name="condition" rows="5" required { (f.condition) } }
                    div.field { label for="actions" { (t.get("risk.rule.actions")) } textarea.code #actions name="actions" rows="5" { (f.actions) } }
                }
            }
            button type="submit" data-testid="save-rule" { (t.get("risk.rule.save")) }
        }
    }
}

pub async fn rule_new(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let f = RuleForm {
        category: "repayment".into(),
        stage: "in_loan".into(),
        severity: "medium".into(),
        actions: "[]".into(),
        ..Default::default()
    };
    render_new(&state, lang, caller, &f, Vec::new(), StatusCode::OK).await
}

async fn render_new(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    f: &RuleForm,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        (tabs(t, "rules"))
        (errors_box(&errors))
        section.card { (rule_form(t, &csrf, "/risk/rules/new", f, true)) }
        (reference_card(t, lang))
    };
    Ok(with_status(
        status,
        page(
            state,
            &ctx(lang, caller),
            "risk",
            &t.get("risk.rules.new"),
            content,
        ),
    ))
}

pub async fn rule_create_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(f): Form<RuleForm>,
) -> Result<Response, ApiError> {
    let result = match f.input() {
        Ok(input) => svc::create_rule(&state, &caller, &input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => Ok(recorded(
            Redirect::to(&format!("/risk/rules/{}?done=saved", r.code)).into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => render_new(&state, lang, caller, &f, lines, e.status()).await,
            None => Err(e),
        },
    }
}

const SAMPLE_ROWS: &str = r#"[
  {"type": "repayment_failed", "amount": "1200.00", "customer": {"age": 35}},
  {"type": "repayment_failed", "amount": "1200.00"},
  {"type": "repayment_failed", "amount": "1200.00", "loan": {"days_past_due": 12}}
]"#;

pub async fn rule_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Query(flag): Query<DoneFlag>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let ok = flag
        .done
        .as_deref()
        .map(|k| t.get(&format!("risk.done.{k}")));
    let r = svc::rule_view(&svc::find_rule(&state, &code).await?);
    let f = RuleForm::of(&r);
    let test = TestForm {
        condition: r.condition.clone(),
        on_events: r.on_events.join(", "),
        rows: SAMPLE_ROWS.into(),
    };
    render_rule(
        &state,
        lang,
        caller,
        &r,
        &f,
        &test,
        None,
        ok,
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct TestForm {
    #[serde(default)]
    condition: String,
    #[serde(default)]
    on_events: String,
    #[serde(default)]
    rows: String,
}

#[allow(clippy::too_many_arguments)]
async fn render_rule(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    r: &RuleView,
    f: &RuleForm,
    test: &TestForm,
    result: Option<&RuleTestResult>,
    ok: Option<String>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let manage = caller.can("risk.manage");
    let content = html! {
        (tabs(t, "rules"))
        @if let Some(n) = &ok { (notice(n)) }
        (errors_box(&errors))
        section.card data-testid="rule-facts" {
            h2 { code { (r.code) } " · " (r.name) }
            p { (rule_state(t, r)) " " span.muted { "v" (r.version) " · " (fmt_ms(r.updated_at_ms)) } }
            @if let Some(e) = &r.compile_error { (compile_error_box(t, e)) }
            @if !r.aggregates.is_empty() { p { (t.get("risk.rule.aggregates")) " " @for a in &r.aggregates { code { (a) } " " } } }
            @if manage {
                @if r.enabled {
                    form.inline method="post" action=(format!("/risk/rules/{}/disable", r.code)) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        button.secondary type="submit" data-testid="disable-rule" { (t.get("risk.rule.disable")) }
                    }
                } @else {
                    form.inline method="post" action=(format!("/risk/rules/{}/enable", r.code)) {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        button type="submit" data-testid="enable-rule" { (t.get("risk.rule.enable")) }
                    }
                }
            }
        }
        @if manage {
            section.card {
                h2 { (t.get("risk.rule.edit")) }
                (rule_form(t, &csrf, &format!("/risk/rules/{}", r.code), f, false))
            }
            section.card data-testid="rule-test" {
                h2 { (t.get("risk.rule.test")) }
                p.muted { (t.get("risk.rule.test.hint")) }
                form method="post" action=(format!("/risk/rules/{}/test", r.code)) data-testid="test-form" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="test-condition" { (t.get("risk.rule.condition")) } textarea.code #test-condition name="condition" rows="3" { (test.condition) } }
                    div.field { label for="test-on" { (t.get("risk.rule.on_events")) } input #test-on name="on_events" type="text" value=(test.on_events); }
                    div.field { label for="test-rows" { (t.get("risk.rule.test.rows")) } textarea.code #test-rows name="rows" rows="8" { (test.rows) } }
                    button type="submit" data-testid="run-test" { (t.get("risk.rule.test.run")) }
                }
                @if let Some(res) = result {
                    p data-testid="test-summary" { (t.get("risk.rule.test.fired")) " " strong { (res.fired) } " / " (res.rows.len()) }
                    table.table data-testid="test-results" {
                        thead { tr { th { "#" } th { (t.get("risk.rule.test.outcome")) } th { (t.get("risk.rule.aggregates")) } } }
                        tbody { @for row in &res.rows { tr {
                            td { (row.row + 1) }
                            td { @match row.outcome.as_str() {
                                "fired" => span.badge.badge-bad data-testid="outcome" { (t.get("risk.rule.test.outcome.fired")) },
                                "not_fired" => span.badge.badge-ok data-testid="outcome" { (t.get("risk.rule.test.outcome.not_fired")) },
                                "error" => span.badge.badge-warn data-testid="outcome" title=(row.error.clone().unwrap_or_default()) { (t.get("risk.rule.test.outcome.error")) " " (row.error.clone().unwrap_or_default()) },
                                _ => span.badge data-testid="outcome" { (t.get("risk.rule.test.outcome.not_evaluated")) },
                            } }
                            td { @for (k, v) in &row.aggregates { code { (k) " = " (v) } " " } }
                        } } }
                    }
                }
            }
        } @else {
            section.card { pre { (r.condition) } }
        }
        (reference_card(t, lang))
    };
    let title = format!("{} · {}", t.get("risk.rules.title"), r.code);
    Ok(with_status(
        status,
        page(state, &ctx(lang, caller), "risk", &title, content),
    ))
}

fn compile_error_box(t: &Bundle, e: &ConditionError) -> Markup {
    html! {
        div data-testid="compile-error" {
            p.field-error { (t.get("risk.rule.cannot_enable")) " " code { (e.code) } " " (e.message) }
            pre.rule-error { (e.rendered) }
        }
    }
}

pub async fn rule_update_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Form(f): Form<RuleForm>,
) -> Result<Response, ApiError> {
    let result = match f.input() {
        Ok(input) => svc::update_rule(&state, &caller, &code, &input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(recorded(
            Redirect::to(&format!("/risk/rules/{code}?done=saved")).into_response(),
        )),
        Err(e) => {
            let Some(lines) = refusal_lines(&e) else {
                return Err(e);
            };
            let r = svc::rule_view(&svc::find_rule(&state, &code).await?);
            let test = TestForm {
                condition: r.condition.clone(),
                on_events: r.on_events.join(", "),
                rows: SAMPLE_ROWS.into(),
            };
            render_rule(
                &state,
                lang,
                caller,
                &r,
                &f,
                &test,
                None,
                None,
                lines,
                e.status(),
            )
            .await
        }
    }
}

async fn toggle(
    state: AppState,
    lang: Lang,
    caller: Caller,
    code: String,
    enable: bool,
) -> Result<Response, ApiError> {
    match svc::set_enabled(&state, &caller, &code, enable).await {
        Ok(_) => Ok(recorded(
            Redirect::to(&format!(
                "/risk/rules/{code}?done={}",
                if enable { "enabled" } else { "disabled" }
            ))
            .into_response(),
        )),
        Err(e) => {
            let Some(lines) = refusal_lines(&e) else {
                return Err(e);
            };
            let r = svc::rule_view(&svc::find_rule(&state, &code).await?);
            let f = RuleForm::of(&r);
            let test = TestForm {
                condition: r.condition.clone(),
                on_events: r.on_events.join(", "),
                rows: SAMPLE_ROWS.into(),
            };
            render_rule(
                &state,
                lang,
                caller,
                &r,
                &f,
                &test,
                None,
                None,
                lines,
                e.status(),
            )
            .await
        }
    }
}

pub async fn rule_enable_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    toggle(state, lang, caller, code, true).await
}

pub async fn rule_disable_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    toggle(state, lang, caller, code, false).await
}

pub async fn rule_test_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(code): Path<String>,
    Form(test): Form<TestForm>,
) -> Result<Response, ApiError> {
    let r = svc::rule_view(&svc::find_rule(&state, &code).await?);
    let f = RuleForm::of(&r);
    let result = serde_json::from_str::<Vec<SampleRow>>(&test.rows)
        .map_err(|e| {
            ApiError::field(
                "rows",
                "invalid_json",
                format!("a JSON list of sample events: {e}"),
            )
        })
        .and_then(|rows| {
            svc::test_rule(
                &RuleTestRequest {
                    condition: test.condition.clone(),
                    on_events: test
                        .on_events
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    rows,
                },
                state.now_ms(),
            )
        });
    match result {
        Ok(res) => {
            render_rule(
                &state,
                lang,
                caller,
                &r,
                &f,
                &test,
                Some(&res),
                None,
                Vec::new(),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => match refusal_lines(&e) {
            Some(lines) => {
                render_rule(
                    &state,
                    lang,
                    caller,
                    &r,
                    &f,
                    &test,
                    None,
                    None,
                    lines,
                    e.status(),
                )
                .await
            }
            None => Err(e),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Playbooks

pub async fn playbooks_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(flag): Query<DoneFlag>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let ok = flag
        .done
        .as_deref()
        .map(|k| t.get(&format!("risk.done.{k}")));
    render_playbooks(&state, lang, caller, ok, Vec::new(), StatusCode::OK).await
}

async fn render_playbooks(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    ok: Option<String>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let books = svc::playbooks(state).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let manage = caller.can("risk.manage");
    let content = html! {
        (tabs(t, "playbooks"))
        @if let Some(n) = &ok { (notice(n)) }
        (errors_box(&errors))
        p.muted { (t.get("risk.playbooks.hint")) }
        div.grid {
            @for p in &books {
                section.card data-testid=(format!("playbook-{}", p.severity)) {
                    h2 { (severity_badge(t, &p.severity)) }
                    @if manage {
                        form method="post" action=(format!("/risk/playbooks/{}", p.severity)) {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            input type="hidden" name="version" value=(p.version);
                            div.field { label { (t.get("risk.playbook.hours")) } input type="number" name="respond_within_hours" min="1" max="720" value=(p.respond_within_hours); }
                            div.field { label { (t.get("risk.playbook.notify")) } input type="text" name="notify_roles" value=(p.notify_roles.join(", ")); }
                            div.field { label { (t.get("risk.playbook.steps")) } textarea name="steps" rows="5" { (p.steps) } }
                            button type="submit" data-testid="save-playbook" { (t.get("risk.playbook.save")) }
                        }
                    } @else {
                        dl.facts {
                            dt { (t.get("risk.playbook.hours")) } dd { (p.respond_within_hours) }
                            dt { (t.get("risk.playbook.notify")) } dd { (p.notify_roles.join(", ")) }
                        }
                        p style="white-space: pre-wrap" { (p.steps) }
                    }
                    p.muted { "v" (p.version) @if p.updated_at_ms > 0 { " · " (fmt_ms(p.updated_at_ms)) } }
                }
            }
        }
    };
    Ok(with_status(
        status,
        page(
            state,
            &ctx(lang, caller),
            "risk",
            &t.get("risk.playbooks.title"),
            content,
        ),
    ))
}

#[derive(Debug, Deserialize, Default)]
pub struct PlaybookForm {
    #[serde(default)]
    respond_within_hours: String,
    #[serde(default)]
    notify_roles: String,
    #[serde(default)]
    steps: String,
    #[serde(default)]
    version: i64,
}

pub async fn playbook_submit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(severity): Path<String>,
    Form(f): Form<PlaybookForm>,
) -> Result<Response, ApiError> {
    let hours = f.respond_within_hours.trim().parse::<i64>().unwrap_or(0);
    let input = PlaybookInput {
        respond_within_hours: hours,
        notify_roles: f
            .notify_roles
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        steps: f.steps,
        version: f.version,
    };
    match svc::update_playbook(&state, &caller, &severity, &input).await {
        Ok(_) => Ok(recorded(
            Redirect::to("/risk/playbooks?done=playbook").into_response(),
        )),
        Err(e) => match refusal_lines(&e) {
            Some(lines) => render_playbooks(&state, lang, caller, None, lines, e.status()).await,
            None => Err(e),
        },
    }
}
