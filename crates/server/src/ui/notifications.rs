//! Notifications in the web UI (issue #6 item 3): the bell's unread count (computed once
//! per page request by [`with_unread`] and read by the layout), `/notifications` with
//! mark-read, the group-bot webhook administration (`/admin/webhooks…`, secrets masked,
//! the delivery log per target) and the org-unit manager form.

use crate::api::audit::shanghai;
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::notify::{self as svc, Format, TargetChange, TargetInput, KINDS};
use crate::state::AppState;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

tokio::task_local! {
    static UNREAD: Option<i64>;
}

/// Middleware on the UI routes: counts the signed-in caller's unread notifications for
/// the bell in the page header (GET pages only).
pub async fn with_unread(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let user = req.extensions().get::<Caller>().map(|c| c.user_id);
    let count = match user {
        Some(u) if req.method() == Method::GET => state.store().unread_count(u).await.ok(),
        _ => None,
    };
    UNREAD.scope(count, next.run(req)).await
}

/// The unread count of the current page request, if known.
pub fn unread() -> Option<i64> {
    UNREAD.try_with(|c| *c).ok().flatten()
}

/// The bell: a link to `/notifications` with the unread count.
pub fn bell(t: &Bundle) -> Markup {
    let n = unread().unwrap_or(0);
    html! {
        a.bell href="/notifications" data-testid="bell" title=(t.get("notifications.title")) aria-label=(format!("{} ({n})", t.get("notifications.title"))) {
            svg width="18" height="18" viewBox="0 0 24 24" aria-hidden="true" {
                path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2z" fill="currentColor" {}
            }
            @if n > 0 { span.bell-count data-testid="bell-count" { (n) } }
        }
    }
}

fn kind_badge(t: &Bundle, kind: &str, severity: &str) -> Markup {
    let class = match severity {
        "critical" => "badge badge-bad",
        "warning" => "badge badge-warn",
        _ => "badge",
    };
    html! { span class=(class) { (t.get(&format!("notify.kind.{kind}"))) } }
}

/// GET `/notifications`.
pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let rows = state.store().inbox(caller.user_id, false, 200).await?;
    let unread = rows.iter().filter(|r| r.read_at_ms.is_none()).count();
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let m = svc::message(&state, &r.event, lang).await;
        items.push((r, m));
    }
    let content = html! {
        section.card {
            p.muted { (t.get("notifications.intro")) }
            @if unread > 0 {
                form method="post" action="/notifications/read-all" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button.secondary type="submit" data-testid="read-all" { (t.get("notifications.read_all")) }
                }
            }
            @if items.is_empty() { p.muted data-testid="no-notifications" { (t.get("notifications.none")) } }
            @else {
                ul.inbox data-testid="notifications" {
                    @for (n, m) in &items {
                        li.unread[n.read_at_ms.is_none()] data-testid="notification" data-kind=(n.event.kind) data-id=(n.id) {
                            div {
                                (kind_badge(t, &n.event.kind, &n.event.severity)) " "
                                a href=(m.link) { strong { (m.title) } }
                                " " span.muted { (shanghai(n.event.created_at_ms, false)) " · " (t.get(&format!("notifications.reason.{}", n.reason))) }
                            }
                            dl.facts { @for (k, v) in &m.lines { dt { (k) } dd { (v) } } }
                            @if n.read_at_ms.is_none() {
                                form.inline method="post" action=(format!("/notifications/{}/read", n.id)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    button.link type="submit" data-testid="mark-read" { (t.get("notifications.mark_read")) }
                                }
                            }
                        }
                    }
                }
            }
            @if caller.can("notification.manage") { p { a href="/admin/webhooks" { (t.get("webhooks.title")) } } }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(
        &state,
        &ctx,
        "tasks",
        &t.get("notifications.title"),
        content,
    )
    .into_response())
}

/// POST `/notifications/{id}/read`.
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    crate::api::notifications::mark_read(&state, &caller, id).await?;
    Ok(Redirect::to("/notifications").into_response())
}

/// POST `/notifications/read-all`.
pub async fn read_all(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    state
        .store()
        .notifications_read_all(caller.user_id, state.now_ms())
        .await?;
    Ok(Redirect::to("/notifications").into_response())
}

// ---------------------------------------------------------------------------------------
// Webhook administration

/// The webhook form (creation and changes). Kinds are one checkbox each.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct TargetForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    msg_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    secret: String,
    /// `1`: remove the secret (changes only).
    #[serde(default)]
    clear_secret: Option<String>,
    #[serde(default)]
    org_unit_id: String,
    #[serde(default)]
    kind_stuck: Option<String>,
    #[serde(default)]
    kind_sla_breach: Option<String>,
    #[serde(default)]
    kind_funder_timeout: Option<String>,
    #[serde(default)]
    kind_override: Option<String>,
    /// `1` active, `0` paused (changes only).
    #[serde(default)]
    active: Option<String>,
}

impl TargetForm {
    fn kinds(&self) -> Vec<String> {
        [
            (&self.kind_stuck, "stuck"),
            (&self.kind_sla_breach, "sla_breach"),
            (&self.kind_funder_timeout, "funder_timeout"),
            (&self.kind_override, "override"),
        ]
        .iter()
        .filter(|(v, _)| v.is_some())
        .map(|(_, k)| (*k).to_owned())
        .collect()
    }

    fn unit(&self) -> Result<Option<i64>, FieldError> {
        let u = self.org_unit_id.trim();
        if u.is_empty() {
            return Ok(None);
        }
        u.parse()
            .map(Some)
            .map_err(|_| FieldError::new("org_unit_id", "invalid", "choose a unit"))
    }
}

fn err_for(errors: &[FieldError], field: &str) -> Option<String> {
    let m: Vec<&str> = errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.as_str())
        .collect();
    (!m.is_empty()).then(|| m.join("; "))
}

async fn unit_options(
    state: &AppState,
    lang: Lang,
    selected: Option<i64>,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let units = state.store().org_tree().await?;
    Ok(html! {
        option value="" selected[selected.is_none()] { (t.get("webhooks.all_units")) }
        @for u in &units {
            option value=(u.id) selected[selected == Some(u.id)] {
                (if lang == Lang::En { &u.name_en } else { &u.name_zh }) " (" (u.code) ")"
            }
        }
    })
}

fn kind_checks(t: &Bundle, chosen: &[String]) -> Markup {
    html! {
        div.checks {
            @for k in KINDS {
                label {
                    input type="checkbox" name=(format!("kind_{}", k.as_str())) value="1" checked[chosen.iter().any(|c| c == k.as_str())];
                    " " (t.get(&format!("notify.kind.{}", k.as_str())))
                }
            }
        }
        p.muted { (t.get("webhooks.kinds.hint")) }
    }
}

async fn webhooks_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    form: &TargetForm,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let targets = state.store().webhook_targets().await?;
    let units = state.store().org_tree().await?;
    let unit_name = |id: Option<i64>| {
        id.and_then(|id| units.iter().find(|u| u.id == id))
            .map(|u| {
                if lang == Lang::En {
                    u.name_en.clone()
                } else {
                    u.name_zh.clone()
                }
            })
            .unwrap_or_else(|| t.get("webhooks.all_units"))
    };
    let field = |name: &str, label: String, input: Markup| {
        html! {
            div.field {
                label for=(name) { (label) }
                (input)
                @if let Some(e) = err_for(errors, name) { span.field-error role="alert" { (e) } }
            }
        }
    };
    let chosen_unit = form.unit().ok().flatten();
    let unit_opts = unit_options(state, lang, chosen_unit).await?;
    let content = html! {
        section.card {
            p.muted { (t.get("webhooks.intro")) }
            @if targets.is_empty() { p.muted data-testid="no-webhooks" { (t.get("webhooks.none")) } }
            @else {
                table.table data-testid="webhook-table" {
                    thead { tr { th { (t.get("webhooks.name")) } th { (t.get("webhooks.format")) } th { (t.get("webhooks.url")) } th { (t.get("webhooks.secret")) } th { (t.get("webhooks.kinds")) } th { (t.get("webhooks.unit")) } th { (t.get("webhooks.state")) } } }
                    tbody { @for w in &targets { tr {
                        td { a href=(format!("/admin/webhooks/{}", w.id)) { (w.name) } }
                        td { (t.get(&format!("webhooks.format.{}", w.format))) " · " code { (w.msg_type) } }
                        td { code data-testid="url-hint" { (w.url_hint) } }
                        td { @if w.secret_enc.is_some() { span.badge.badge-ok { (t.get("webhooks.secret.set")) } " ••••••" } @else { span.muted { (t.get("webhooks.secret.none")) } } }
                        td { @if w.kinds.is_empty() { (t.get("webhooks.kinds.all")) } @else { @for k in &w.kinds { span.badge { (t.get(&format!("notify.kind.{k}"))) } " " } } }
                        td { (unit_name(w.org_unit_id)) }
                        td { @if w.active { span.badge.badge-ok { (t.get("webhooks.active")) } } @else { span.badge { (t.get("webhooks.paused")) } } }
                    } } }
                }
            }
        }
        section.card {
            h2 { (t.get("webhooks.new")) }
            form method="post" action="/admin/webhooks" data-testid="webhook-form" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                (field("name", t.get("webhooks.name"), html! { input #name name="name" value=(form.name) required maxlength="60"; }))
                (field("format", t.get("webhooks.format"), html! {
                    select #format name="format" {
                        @for f in ["wecom", "dingtalk", "feishu"] { option value=(f) selected[form.format == f] { (t.get(&format!("webhooks.format.{f}"))) } }
                    }
                }))
                (field("msg_type", t.get("webhooks.msg_type"), html! {
                    select #msg_type name="msg_type" {
                        option value="" { (t.get("webhooks.msg_type.default")) }
                        @for m in ["markdown", "text", "post", "interactive"] { option value=(m) selected[form.msg_type == m] { (m) } }
                    }
                }))
                (field("url", t.get("webhooks.url"), html! { input #url name="url" type="url" required placeholder="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"; }))
                (field("secret", t.get("webhooks.secret"), html! { input #secret name="secret" type="password" autocomplete="off"; span.muted { (t.get("webhooks.secret.hint")) } }))
                (field("org_unit_id", t.get("webhooks.unit"), html! { select #org_unit_id name="org_unit_id" { (unit_opts) } }))
                (field("kinds", t.get("webhooks.kinds"), kind_checks(t, &form.kinds())))
                button type="submit" data-testid="webhook-create" { (t.get("webhooks.create")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let mut r = page(state, &ctx, "admin", &t.get("webhooks.title"), content).into_response();
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// GET `/admin/webhooks`.
pub async fn webhooks(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    webhooks_page(&state, lang, caller, &TargetForm::default(), &[]).await
}

/// POST `/admin/webhooks`: add a target.
pub async fn webhook_create(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(form): Form<TargetForm>,
) -> Result<Response, ApiError> {
    let unit = match form.unit() {
        Ok(u) => u,
        Err(e) => return webhooks_page(&state, lang, caller, &form, &[e]).await,
    };
    let input = TargetInput {
        name: form.name.clone(),
        format: form.format.clone(),
        msg_type: form.msg_type.clone(),
        url: form.url.clone(),
        secret: form.secret.clone(),
        kinds: form.kinds(),
        org_unit_id: unit,
    };
    match svc::create_target(&state, &caller, &input).await {
        Ok(id) => Ok(recorded(
            Redirect::to(&format!("/admin/webhooks/{id}")).into_response(),
        )),
        Err(ApiError::Validation(errors)) => {
            webhooks_page(&state, lang, caller, &form, &errors).await
        }
        Err(e) => Err(e),
    }
}

fn recorded(mut r: Response) -> Response {
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

async fn webhook_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    id: i64,
    errors: &[FieldError],
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let csrf = caller.csrf.clone().unwrap_or_default();
    let w = state
        .store()
        .webhook_target(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook target {id}")))?;
    let deliveries = state.store().deliveries(Some(id), 50).await?;
    let mut log = Vec::new();
    for d in deliveries {
        let attempts = state.store().delivery_attempts(d.id).await?;
        let event = state.store().event(d.event_id).await?;
        log.push((d, attempts, event));
    }
    let format = Format::parse(&w.format);
    let unit_opts = unit_options(state, lang, w.org_unit_id).await?;
    let content = html! {
        section.card data-testid="webhook" {
            h2 { (w.name) " " @if w.active { span.badge.badge-ok { (t.get("webhooks.active")) } } @else { span.badge { (t.get("webhooks.paused")) } } }
            dl.facts {
                dt { (t.get("webhooks.format")) } dd { (t.get(&format!("webhooks.format.{}", w.format))) " · " code { (w.msg_type) } }
                dt { (t.get("webhooks.url")) } dd { code data-testid="url-hint" { (w.url_hint) } }
                dt { (t.get("webhooks.secret")) } dd data-testid="secret-state" { @if w.secret_enc.is_some() { (t.get("webhooks.secret.set")) " ••••••" } @else { (t.get("webhooks.secret.none")) } }
            }
            form.inline method="post" action=(format!("/admin/webhooks/{id}/test")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button type="submit" data-testid="webhook-test" { (t.get("webhooks.test")) }
            }
        }
        section.card {
            h2 { (t.get("webhooks.edit")) }
            @if !errors.is_empty() { div.field-error role="alert" { ul { @for e in errors { li { code { (e.field) } " — " (e.message) } } } } }
            form method="post" action=(format!("/admin/webhooks/{id}")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                div.field {
                    label for="msg_type" { (t.get("webhooks.msg_type")) }
                    select #msg_type name="msg_type" {
                        @for m in format.map(|f| f.msg_types()).unwrap_or(&[]) { option value=(m) selected[w.msg_type == *m] { (m) } }
                    }
                }
                div.field { label for="url" { (t.get("webhooks.url.new")) } input #url name="url" type="url" placeholder=(w.url_hint); }
                div.field { label for="secret" { (t.get("webhooks.secret.new")) } input #secret name="secret" type="password" autocomplete="off";
                    label { input type="checkbox" name="clear_secret" value="1"; " " (t.get("webhooks.secret.clear")) } }
                div.field { label for="org_unit_id" { (t.get("webhooks.unit")) } select #org_unit_id name="org_unit_id" { (unit_opts) } }
                div.field { label { (t.get("webhooks.kinds")) } (kind_checks(t, &w.kinds)) }
                div.field { label for="active" { (t.get("webhooks.state")) }
                    select #active name="active" { option value="1" selected[w.active] { (t.get("webhooks.active")) } option value="0" selected[!w.active] { (t.get("webhooks.paused")) } } }
                button type="submit" data-testid="webhook-save" { (t.get("webhooks.save")) }
            }
        }
        section.card data-testid="delivery-log" {
            h2 { (t.get("webhooks.log")) }
            @if log.is_empty() { p.muted { (t.get("webhooks.log.none")) } }
            @else {
                table.table {
                    thead { tr { th { "#" } th { (t.get("webhooks.log.event")) } th { (t.get("webhooks.state")) } th { (t.get("webhooks.log.attempts")) } } }
                    tbody { @for (d, attempts, event) in &log { tr data-delivery=(d.id) {
                        td { (d.id) }
                        td { @if let Some(e) = event { (kind_badge(t, &e.kind, &e.severity)) " " (shanghai(e.created_at_ms, false)) } }
                        td { span class=(match d.state.as_str() { "sent" => "badge badge-ok", "failed" => "badge badge-bad", _ => "badge badge-warn" }) data-testid="delivery-state" { (t.get(&format!("webhooks.delivery.{}", d.state))) } }
                        td { ul { @for a in attempts { li {
                            (a.attempt) ". " (shanghai(a.at_ms, false)) " · "
                            @if let Some(s) = a.http_status { "HTTP " (s) } @else { "—" }
                            " · " (a.duration_ms) " ms"
                            @if let Some(dt) = &a.detail { " · " code { (dt.chars().take(160).collect::<String>()) } }
                        } } } }
                    } } }
                }
            }
            p { a href="/admin/webhooks" { (t.get("webhooks.back")) } }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let mut r = page(state, &ctx, "admin", &w.name, content).into_response();
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// GET `/admin/webhooks/{id}`.
pub async fn webhook(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    webhook_page(&state, lang, caller, id, &[]).await
}

/// POST `/admin/webhooks/{id}`: change a target (a blank URL or secret keeps the old one).
pub async fn webhook_update(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<TargetForm>,
) -> Result<Response, ApiError> {
    let unit = match form.unit() {
        Ok(u) => u,
        Err(e) => return webhook_page(&state, lang, caller, id, &[e]).await,
    };
    let change = TargetChange {
        msg_type: (!form.msg_type.is_empty()).then(|| form.msg_type.clone()),
        url: (!form.url.trim().is_empty()).then(|| form.url.clone()),
        secret: if form.clear_secret.is_some() {
            Some(String::new())
        } else {
            (!form.secret.trim().is_empty()).then(|| form.secret.clone())
        },
        kinds: Some(form.kinds()),
        org_unit_id: Some(unit),
        active: form.active.as_deref().map(|a| a == "1"),
    };
    match svc::update_target(&state, &caller, id, &change).await {
        Ok(()) => Ok(recorded(
            Redirect::to(&format!("/admin/webhooks/{id}")).into_response(),
        )),
        Err(ApiError::Validation(errors)) => webhook_page(&state, lang, caller, id, &errors).await,
        Err(e) => Err(e),
    }
}

/// POST `/admin/webhooks/{id}/test`.
pub async fn webhook_test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    svc::send_test(&state, &caller, id).await?;
    Ok(recorded(
        Redirect::to(&format!("/admin/webhooks/{id}")).into_response(),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ManagerForm {
    /// A username; empty clears the manager.
    #[serde(default)]
    username: String,
}

/// POST `/admin/org-units/{id}/manager`: the manager by username (empty: none).
pub async fn set_manager(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<ManagerForm>,
) -> Result<Response, ApiError> {
    let name = f.username.trim();
    let user = if name.is_empty() {
        None
    } else {
        Some(
            state
                .store()
                .user_by_username(name)
                .await?
                .ok_or_else(|| ApiError::field("username", "unknown", format!("no user `{name}`")))?
                .id,
        )
    };
    svc::set_manager(&state, &caller, id, user).await?;
    Ok(recorded(Redirect::to("/m/admin").into_response()))
}

/// The manager column of the organisation table on `/m/admin`: the manager's name and,
/// for holders of `org.manage`, a form to change it.
pub async fn manager_cell(
    state: &AppState,
    t: &Bundle,
    caller: Option<&Caller>,
    unit: i64,
) -> Result<Markup, ApiError> {
    let tree = state.store().org_tree().await?;
    let manager = tree
        .iter()
        .find(|u| u.id == unit)
        .and_then(|u| u.manager_user_id);
    let user = match manager {
        Some(m) => state.store().user_by_id(m).await?,
        None => None,
    };
    let can = caller.is_some_and(|c| c.can("org.manage"));
    let csrf = caller.and_then(|c| c.csrf.clone()).unwrap_or_default();
    Ok(html! {
        @if let Some(u) = &user { span data-testid="manager" { (u.display_name) " (" (u.username) ")" } }
        @else { span.muted { (t.get("org.manager.none")) } }
        @if can {
            form.inline method="post" action=(format!("/admin/org-units/{unit}/manager")) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                " " input name="username" size="14" placeholder=(t.get("org.manager.username")) aria-label=(t.get("org.manager.username")) value=(user.as_ref().map(|u| u.username.clone()).unwrap_or_default());
                " " button.secondary type="submit" { (t.get("org.manager.set")) }
            }
        }
    })
}
