//! Pages of the shell: home, module pages, language switch, not found.

use crate::auth::MaybeCaller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::{Lang, COOKIE};
use crate::ui::layout::{page, Ctx};
use crate::ui::modules::{self, Status, MODULES};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

pub async fn home(
    State(state): State<AppState>,
    lang: Lang,
    caller: MaybeCaller,
) -> Result<Markup, ApiError> {
    let ctx = Ctx {
        lang,
        caller: caller.0,
    };
    let t = state.i18n().bundle(lang);
    let store = state.store();
    let schema = store.schema_version().await?;
    let units = store.org_units().await?;
    let jobs = store.job_counts().await?;
    let by_state: Vec<(String, i64)> = ["pending", "running", "done", "dead"]
        .iter()
        .map(|s| {
            (
                t.get(&format!("jobs.state.{s}")),
                jobs.iter().filter(|c| c.state == *s).map(|c| c.count).sum(),
            )
        })
        .collect();
    let branches = units.iter().filter(|u| u.kind == "branch").count();
    let teams = units.iter().filter(|u| u.kind == "team").count();
    let content = html! {
        div.grid {
            section.card data-testid="system-status" {
                h2 { (t.get("home.status")) }
                dl.facts {
                    dt { (t.get("home.version")) } dd { (env!("CARGO_PKG_VERSION")) }
                    dt { (t.get("home.database")) } dd { span.badge.badge-ok { (store.backend().name()) } " " span.muted { (store.location()) } }
                    dt { (t.get("home.schema")) } dd { (schema) " / " (zhudai_store::migrate::latest_version()) }
                    dt { (t.get("app.business_date")) } dd { (state.clock().today()) }
                }
            }
            section.card data-testid="organisation" {
                h2 { (t.get("home.organisation")) }
                @if units.is_empty() {
                    p.muted { (t.get("home.organisation.empty")) }
                } @else {
                    div.kpis {
                        div.kpi { div.kpi-value { (branches) } div.kpi-label { (t.get("org.kind.branch")) } }
                        div.kpi { div.kpi-value { (teams) } div.kpi-label { (t.get("org.kind.team")) } }
                    }
                    p { a href="/m/admin" { (t.get("home.organisation.view")) } }
                }
            }
            section.card data-testid="jobs" {
                h2 { (t.get("home.jobs")) }
                (chart::bars(&t.get("home.jobs"), &by_state))
            }
        }
        section.card {
            h2 { (t.get("home.modules")) }
            div.module-grid {
                @for m in MODULES {
                    a.module-tile href=(format!("/m/{}", m.key)) {
                        strong { (t.get(&format!("module.{}.title", m.key))) }
                        span.muted { (t.get(&format!("module.{}.summary", m.key))) }
                        @match m.status {
                            Status::Available => span.badge.badge-ok { (t.get("status.available")) },
                            Status::Planned(_) => span.badge { (t.get("status.planned")) },
                        }
                    }
                }
            }
        }
    };
    Ok(page(&state, &ctx, "home", &t.get("home.title"), content))
}

pub async fn module(
    State(state): State<AppState>,
    lang: Lang,
    caller: MaybeCaller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let ctx = Ctx {
        lang,
        caller: caller.0,
    };
    let Some(m) = modules::find(&key) else {
        return Ok(not_found_page(&state, &ctx));
    };
    // Risk warnings and credit limits (issue #7): the risk module opens on its dashboard.
    if m.key == "risk" {
        return Ok(Redirect::to("/risk/dashboard").into_response());
    }
    // Built modules have their own pages at `/<key>`; the administration overview is
    // rendered here.
    if m.status == Status::Available && m.key != "admin" {
        return Ok(Redirect::to(&format!("/{}", m.key)).into_response());
    }
    // Funder network (issue #5): the module's pages live under /funders.
    if m.key == "funders" {
        return Ok(Redirect::to("/funders").into_response());
    }
    // Products and pricing (issue #5) has its own pages.
    if m.key == "products" {
        return Ok(Redirect::to("/products").into_response());
    }
    let t = state.i18n().bundle(lang);
    let title = t.get(&format!("module.{}.title", m.key));
    let content = match m.status {
        Status::Planned(issue) => html! {
            section.card.notice data-testid="not-built" {
                h2 { (t.get("module.planned.heading")) }
                p { (t.get(&format!("module.{}.summary", m.key))) }
                p.muted { (t.get("module.planned.body"))
                    @if issue > 0 { " (#" (issue) ")" } }
                h3 { (t.get("module.planned.what")) }
                ul { @for i in 1..=m.plan_items { li { (t.get(&format!("module.{}.plan.{i}", m.key))) } } }
            }
        },
        Status::Available => admin_content(&state, lang, ctx.caller.as_ref()).await?,
    };
    Ok(page(&state, &ctx, m.key, &title, content).into_response())
}

async fn admin_content(
    state: &AppState,
    lang: Lang,
    caller: Option<&crate::auth::Caller>,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let units = state.store().org_units().await?;
    let jobs = state.store().job_counts().await?;
    // Managers receive the exception alerts of their units (issue #6 item 3).
    let mut managers = Vec::with_capacity(units.len());
    for u in &units {
        managers.push(crate::ui::notifications::manager_cell(state, t, caller, u.id).await?);
    }
    let name_of = |id: Option<i64>| {
        id.and_then(|id| units.iter().find(|u| u.id == id))
            .map(|u| {
                if lang == Lang::ZhCn {
                    u.name_zh.clone()
                } else {
                    u.name_en.clone()
                }
            })
            .unwrap_or_default()
    };
    Ok(html! {
        section.card {
            p { a href="/admin/users" data-testid="link-users" { (t.get("users.title")) } " · " a href="/admin/roles" data-testid="link-roles" { (t.get("roles.title")) }
                // Exception alerts (issue #6 item 3): group-bot webhooks.
                @if caller.is_some_and(|c| c.can("notification.manage")) { " · " a href="/admin/webhooks" data-testid="link-webhooks" { (t.get("webhooks.title")) } } }
        }
        section.card data-testid="org-units" {
            h2 { (t.get("admin.org")) }
            @if units.is_empty() {
                p.muted { (t.get("home.organisation.empty")) }
            } @else {
                table.table {
                    thead { tr { th { (t.get("org.code")) } th { (t.get("org.name")) } th { (t.get("org.kind")) } th { (t.get("org.parent")) } th { (t.get("org.manager")) } } }
                    tbody { @for (u, manager) in units.iter().zip(&managers) { tr data-unit=(u.code) {
                        td { code { (u.code) } }
                        td { @if lang == Lang::ZhCn { (u.name_zh) } @else { (u.name_en) } }
                        td { span.badge { (t.get(&format!("org.kind.{}", u.kind))) } }
                        td { (name_of(u.parent_id)) }
                        td { (manager) }
                    } } }
                }
            }
        }
        section.card data-testid="job-table" {
            h2 { (t.get("home.jobs")) }
            @if jobs.is_empty() {
                p.muted { (t.get("admin.jobs.empty")) }
            } @else {
                table.table {
                    thead { tr { th { (t.get("admin.jobs.queue")) } th { (t.get("admin.jobs.state")) } th.num { (t.get("admin.jobs.count")) } } }
                    tbody { @for c in &jobs { tr {
                        td { (c.queue) }
                        td { span class=(format!("badge badge-{}", c.state)) { (t.get(&format!("jobs.state.{}", c.state))) } }
                        td.num { (c.count) }
                    } } }
                }
            }
            p.muted { a href="/metrics" { "/metrics" } " · " a href="/api/docs" { (t.get("api.title")) } }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct BackTo {
    back: Option<String>,
}

/// Remembers the chosen language in a cookie and returns to the page the user was on.
pub async fn switch_language(
    Path(code): Path<String>,
    Query(q): Query<BackTo>,
    headers: axum::http::HeaderMap,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    let referer_path = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.parse::<Uri>().ok())
        .map(|u| u.path().to_owned());
    // Only local paths: never an open redirect.
    let back = q
        .back
        .or(referer_path)
        .filter(|b| crate::http::is_local_path(b))
        .unwrap_or_else(|| "/".into());
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly",
        lang.code()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

fn not_found_page(state: &AppState, ctx: &Ctx) -> Response {
    let t = state.i18n().bundle(ctx.lang);
    let content = html! {
        section.card.notice {
            p { (t.get("notfound.body")) }
            p { a href="/" { (t.get("notfound.home")) } }
        }
    };
    (
        StatusCode::NOT_FOUND,
        page(state, ctx, "", &t.get("notfound.title"), content),
    )
        .into_response()
}

/// Fallback for every unmatched path: problem+json under `/api/`, a page elsewhere.
pub async fn not_found(
    State(state): State<AppState>,
    lang: Lang,
    caller: MaybeCaller,
    uri: Uri,
) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::NotFound(format!(
            "no API route matches {}; see /api/v1/openapi.json",
            uri.path()
        ))
        .into_response();
    }
    not_found_page(
        &state,
        &Ctx {
            lang,
            caller: caller.0,
        },
    )
}
