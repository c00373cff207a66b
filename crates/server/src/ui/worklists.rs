//! `/tasks` (issue #6 item 3): the caller's worklists as tabs — to do (待办, overdue steps
//! highlighted with how long they are overdue), done (已办) and watched (关注) — and the
//! watch / unwatch buttons used here and on the application page.

use crate::api::audit::shanghai;
use crate::auth::{Caller, CSRF_FIELD};
use crate::error::ApiError;
use crate::notify::duration_text;
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use crate::worklists::{self as svc, ItemHead};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

/// A form button that adds an instance to (or removes it from) the caller's watch list,
/// then returns to `back`.
pub fn watch_button(t: &Bundle, csrf: &str, instance: i64, watching: bool, back: &str) -> Markup {
    let (action, label, testid) = if watching {
        (
            format!("/tasks/unwatch/{instance}"),
            t.get("tasks.unwatch"),
            "unwatch",
        )
    } else {
        (
            format!("/tasks/watch/{instance}"),
            t.get("tasks.watch"),
            "watch",
        )
    };
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="back" value=(back);
            button.secondary type="submit" data-testid=(testid) { (label) }
        }
    }
}

fn subject(t: &Bundle, h: &ItemHead) -> Markup {
    let label = match h.subject_type.as_str() {
        "application" => t.get("notify.subject.application"),
        other => other.to_owned(),
    };
    html! {
        @if h.subject_type == "application" {
            a href=(format!("/applications/{}", h.subject_id)) {
                (label) " " (h.subject_ref.clone().unwrap_or_else(|| format!("#{}", h.subject_id)))
            }
        } @else {
            (label) " #" (h.subject_id)
        }
    }
}

fn name(lang: Lang, zh: &str, en: &Option<String>) -> String {
    match (lang, en) {
        (Lang::En, Some(en)) => en.clone(),
        _ => zh.to_owned(),
    }
}

fn status(t: &Bundle, lang: Lang, h: &ItemHead) -> Markup {
    html! {
        @if h.status == "running" {
            span.badge.badge-running { (name(lang, &h.node_name, &h.node_name_en)) }
        } @else {
            span.badge.badge-done { (name(lang, &h.node_name, &h.node_name_en)) }
            " " span.muted { (t.get("tasks.finished")) }
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct TabQuery {
    tab: Option<String>,
}

/// GET `/tasks?tab=todo|done|watch`.
pub async fn tasks(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<TabQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let tab = match q.tab.as_deref() {
        Some("done") => "done",
        Some("watch") => "watch",
        _ => "todo",
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let todo = svc::todo(&state, &caller, 200).await?;
    let watched = svc::watched(&state, &caller, 200).await?;
    let changed: i64 = watched.iter().map(|w| w.changes).sum();
    let overdue = todo.iter().filter(|i| i.overdue).count();
    let body = match tab {
        "done" => {
            let done = svc::done(&state, &caller, 200).await?;
            html! {
                @if done.is_empty() { p.muted data-testid="no-done" { (t.get("tasks.done.none")) } }
                @else {
                    table.table data-testid="done-table" {
                        thead { tr { th { (t.get("tasks.item")) } th { (t.get("tasks.my_action")) } th { (t.get("tasks.acted_at")) } th { (t.get("tasks.now")) } } }
                        tbody { @for d in &done { tr data-instance=(d.head.instance_id) {
                            td { (subject(t, &d.head)) }
                            td { code { (d.my_action) } " · " (name(lang, &d.my_node_name, &d.my_node_name_en)) }
                            td { (shanghai(d.acted_at_ms, false)) }
                            td { (status(t, lang, &d.head)) }
                        } } }
                    }
                }
            }
        }
        "watch" => html! {
            @if watched.is_empty() { p.muted data-testid="no-watched" { (t.get("tasks.watch.none")) } }
            @else {
                table.table data-testid="watch-table" {
                    thead { tr { th { (t.get("tasks.item")) } th { (t.get("tasks.now")) } th { (t.get("tasks.last_change")) } th { (t.get("tasks.changes")) } th {} } }
                    tbody { @for w in &watched { tr data-instance=(w.head.instance_id) {
                        td { (subject(t, &w.head)) }
                        td { (status(t, lang, &w.head)) }
                        td { @if let Some(at) = w.last_at_ms { (shanghai(at, false)) } @if let Some(a) = &w.last_action { " · " code { (a) } } }
                        td { @if w.changes > 0 { span.badge.badge-warn data-testid="watch-changes" { (t.get("tasks.changes.new").replace("{n}", &w.changes.to_string())) } } }
                        td { (watch_button(t, &csrf, w.head.instance_id, true, "/tasks?tab=watch")) }
                    } } }
                }
                @if changed > 0 {
                    form method="post" action="/tasks/watched/seen" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        button.secondary type="submit" data-testid="watch-seen" { (t.get("tasks.mark_seen")) }
                    }
                }
            }
        },
        _ => {
            let alerts = state
                .store()
                .open_alerts(&caller.roles, caller.user_id, 50)
                .await?;
            let now = state.now_ms();
            html! {
                @if !alerts.is_empty() {
                    div.notice data-testid="alerts" {
                        h3 { (t.get("tasks.alerts")) }
                        ul { @for a in &alerts { li {
                            span class=(if a.kind == "remind" { "badge badge-warn" } else { "badge badge-bad" }) { (t.get(&format!("tasks.alert.{}", a.kind))) }
                            " #" (a.instance_id) " · " (a.node) " · " (shanghai(a.created_at_ms, false))
                            @if let Some(d) = &a.detail { " — " (d) }
                        } } }
                    }
                }
                @if todo.is_empty() { p.muted data-testid="no-tasks" { (t.get("tasks.none")) } }
                @else {
                    table.table data-testid="task-table" {
                        thead { tr { th { (t.get("tasks.item")) } th { (t.get("tasks.step")) } th { (t.get("tasks.since")) } th { (t.get("tasks.due")) } th {} } }
                        tbody { @for i in &todo { tr.overdue[i.overdue] data-instance=(i.head.instance_id) {
                            td { (subject(t, &i.head)) }
                            td { (name(lang, &i.head.node_name, &i.head.node_name_en)) }
                            td { (shanghai(i.waiting_since_ms, false)) " " span.muted { "(" (duration_text(t, now - i.waiting_since_ms)) ")" } }
                            td { @if let Some(d) = i.due_at_ms { (shanghai(d, false)) } }
                            td { @if i.overdue {
                                span.badge.badge-bad data-testid="overdue" { (t.get("tasks.overdue_by").replace("{d}", &duration_text(t, i.overdue_ms))) }
                            } }
                        } } }
                    }
                }
            }
        }
    };
    let tab_link = |key: &str, label: String, count: Option<usize>| {
        html! {
            a.tab.active[tab == key] href=(format!("/tasks?tab={key}")) data-testid=(format!("tab-{key}")) {
                (label) @if let Some(n) = count { @if n > 0 { " " span.tab-count { (n) } } }
            }
        }
    };
    let content = html! {
        nav.tabs aria-label=(t.get("tasks.title")) {
            (tab_link("todo", t.get("tasks.tab.todo"), Some(todo.len())))
            (tab_link("done", t.get("tasks.tab.done"), None))
            (tab_link("watch", t.get("tasks.tab.watch"), Some(changed.max(0) as usize)))
        }
        section.card data-testid=(format!("tab-body-{tab}")) {
            @if tab == "todo" && overdue > 0 {
                p.field-error data-testid="overdue-summary" { (t.get("tasks.overdue_count").replace("{n}", &overdue.to_string())) }
            }
            (body)
            p.muted {
                @if caller.can("workflow.read") { a href="/workflows" { (t.get("workflows.title")) } " · " a href="/workflows/analytics" { (t.get("analytics.title")) } " · " }
                a href="/notifications" { (t.get("notifications.title")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "tasks", &t.get("tasks.title"), content).into_response())
}

#[derive(Debug, Deserialize)]
pub struct BackForm {
    #[serde(default)]
    back: String,
}

fn back_to(back: &str, default: &str) -> Redirect {
    if crate::http::is_local_path(back) {
        Redirect::to(back)
    } else {
        Redirect::to(default)
    }
}

/// POST `/tasks/watch/{id}`.
pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<BackForm>,
) -> Result<Response, ApiError> {
    svc::watch(&state, &caller, id).await?;
    Ok(back_to(&f.back, "/tasks?tab=watch").into_response())
}

/// POST `/tasks/unwatch/{id}`.
pub async fn unwatch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<BackForm>,
) -> Result<Response, ApiError> {
    svc::unwatch(&state, &caller, id).await?;
    Ok(back_to(&f.back, "/tasks?tab=watch").into_response())
}

/// POST `/tasks/watched/seen`: every watched item seen now.
pub async fn seen(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    state
        .store()
        .watches_seen(caller.user_id, None, state.now_ms())
        .await?;
    Ok(Redirect::to("/tasks?tab=watch").into_response())
}
