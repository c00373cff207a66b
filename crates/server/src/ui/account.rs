//! Sign-in page, sign-out, and the user's own account page.

use crate::api::auth::login_error_response;
use crate::auth::login::{clear_cookie, login, session_cookie, Credentials};
use crate::auth::{AuditNote, Caller, MaybeCaller, CSRF_FIELD};
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use std::net::SocketAddr;

const LOGIN_CSRF_COOKIE: &str = "zhudai_login_csrf";

/// The demo accounts shown on the login page in demo mode (never otherwise).
pub const DEMO_PASSWORD: &str = "Demo-2026-zhudai";

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| crate::http::is_local_path(n))
        .unwrap_or("/")
        .to_owned()
}

pub async fn login_page(
    State(state): State<AppState>,
    lang: Lang,
    Query(q): Query<LoginQuery>,
) -> Response {
    let t = state.i18n().bundle(lang);
    let csrf = match zhudai_crypto::tokens::Token::generate() {
        Ok((tok, _)) => secrecy::ExposeSecret::expose_secret(&tok).to_owned(),
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let next = safe_next(q.next.as_deref());
    let error = q
        .error
        .as_deref()
        .map(|code| t.get(&format!("login.error.{code}")));
    let demo_roles = if state.settings().demo {
        zhudai_domain::access::SEED_ROLES
    } else {
        &[]
    };
    let content = html! {
        div.login-wrap {
            section.card.login-card {
                h2 { (t.get("login.heading")) }
                @if let Some(e) = &error { p.field-error role="alert" data-testid="login-error" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="next" value=(next);
                    div.field { label for="username" { (t.get("login.username")) } input #username name="username" autocomplete="username" required; }
                    div.field { label for="password" { (t.get("login.password")) } input #password name="password" type="password" autocomplete="current-password" required; }
                    div.field { label for="totp" { (t.get("login.totp")) } input #totp name="totp" inputmode="numeric" autocomplete="one-time-code" placeholder=(t.get("login.totp.hint")); }
                    button type="submit" { (t.get("login.submit")) }
                }
            }
            @if !demo_roles.is_empty() {
                section.card data-testid="demo-accounts" {
                    h2 { (t.get("login.demo.heading")) }
                    p.muted { (t.get("login.demo.body")) " " code { (DEMO_PASSWORD) } }
                    table.table { thead { tr { th { (t.get("login.username")) } th { (t.get("login.demo.role")) } } }
                        tbody { @for r in demo_roles { tr { td { code { (format!("demo_{}", r.code)) } } td { @if lang == Lang::ZhCn { (r.zh) } @else { (r.en) } } } } } }
                }
            }
        }
    };
    let ctx = Ctx { lang, caller: None };
    let cookie =
        format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    (
        [(header::SET_COOKIE, cookie)],
        page(&state, &ctx, "login", &t.get("login.title"), content),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    next: Option<String>,
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let back = |code: &str| {
        Redirect::to(&format!(
            "/login?error={code}&next={}",
            crate::auth::urlencode(&next)
        ))
        .into_response()
    };
    // Login CSRF: the form's token must equal the cookie set with the form.
    let expected = crate::http::cookie_value(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !zhudai_crypto::tokens::ct_eq_str(&expected, &form.csrf) {
        let mut r = back("csrf");
        r.extensions_mut().insert(
            AuditNote::action("auth.login")
                .actor(form.username.trim().to_owned())
                .outcome("denied")
                .reason("login form CSRF token missing or wrong"),
        );
        return r;
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let creds = Credentials {
        username: &form.username,
        password: &form.password,
        totp: form.totp.as_deref(),
        ip: Some(addr.ip()),
        user_agent: ua,
    };
    let note = AuditNote::action("auth.login").actor(form.username.trim().to_owned());
    match login(&state, &creds).await {
        Ok(s) => {
            let mut r = (
                [(header::SET_COOKIE, session_cookie(&state, &s.token))],
                Redirect::to(&next),
            )
                .into_response();
            r.extensions_mut().insert(note.outcome("success"));
            r
        }
        Err(e) => {
            // The same audit record as the API; the person gets the form back with a message.
            let code = e.code();
            let api = login_error_response(e, note);
            let mut r = back(code);
            if let Some(n) = api.extensions().get::<AuditNote>().cloned() {
                r.extensions_mut().insert(n);
            }
            r
        }
    }
}

pub async fn logout_submit(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if let Some(id) = caller.session_id() {
        state.store().session_revoke(id, state.now_ms()).await?;
    }
    let mut r = (
        [(header::SET_COOKIE, clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response();
    r.extensions_mut().insert(AuditNote::action("auth.logout"));
    Ok(r)
}

pub async fn account_page(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let idle = state.settings().auth.idle_timeout_ms();
    let sessions = state
        .store()
        .sessions_active(caller.user_id, state.now_ms(), idle)
        .await?;
    let roles = state.store().user_roles(caller.user_id).await?;
    let current = caller.session_id();
    let csrf = caller.csrf.clone().unwrap_or_default();
    let totp_enabled = state
        .store()
        .user_by_id(caller.user_id)
        .await?
        .is_some_and(|u| u.totp_enabled);
    let content = html! {
        @if caller.needs_2fa_enrolment {
            section.card.notice data-testid="enrol-2fa" { p { (t.get("account.enrol_required")) } }
        }
        section.card {
            h2 { (t.get("account.profile")) }
            dl.facts {
                dt { (t.get("login.username")) } dd { code { (caller.username) } }
                dt { (t.get("account.display_name")) } dd { (caller.display_name) }
                dt { (t.get("account.roles")) } dd { @for r in &roles { span.badge { @if lang == Lang::ZhCn { (r.name_zh) } @else { (r.name_en) } } " " } }
                dt { (t.get("account.scope")) } dd { (t.get(&format!("scope.{}", caller.scope))) }
            }
        }
        section.card data-testid="two-factor" {
            h2 { (t.get("account.totp")) }
            @if totp_enabled {
                p { span.badge.badge-ok { (t.get("account.totp.on")) } }
            } @else {
                p.muted { (t.get("account.totp.off")) }
                form method="post" action="/account/totp" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    button type="submit" { (t.get("account.totp.start")) }
                }
            }
        }
        section.card data-testid="my-sessions" {
            h2 { (t.get("account.sessions")) }
            table.table {
                thead { tr { th { (t.get("account.sessions.started")) } th { (t.get("account.sessions.ip")) } th { (t.get("account.sessions.agent")) } th {} } }
                tbody { @for s in &sessions { tr {
                    td { (fmt_ms(s.created_at_ms)) }
                    td { (s.ip.clone().unwrap_or_default()) }
                    td.muted { (s.user_agent.clone().unwrap_or_default().chars().take(60).collect::<String>()) }
                    td { @if Some(s.id) == current { span.badge.badge-ok { (t.get("account.sessions.current")) } } }
                } } }
            }
            form method="post" action="/account/sessions/revoke-others" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button.secondary type="submit" { (t.get("account.sessions.revoke_others")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller.clone()),
    };
    Ok(page(
        &state,
        &ctx,
        "account",
        &t.get("account.title"),
        content,
    ))
}

pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    state
        .store()
        .session_revoke_all(caller.user_id, caller.session_id(), state.now_ms())
        .await?;
    let mut r = Redirect::to("/account").into_response();
    r.extensions_mut()
        .insert(AuditNote::action("auth.revoke_other_sessions"));
    Ok(r)
}

/// Unix milliseconds as a Shanghai local time.
pub fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .and_then(|t| {
            chrono::FixedOffset::east_opt(zhudai_domain::clock::BUSINESS_UTC_OFFSET_SECS)
                .map(|tz| t.with_timezone(&tz))
        })
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A convenience for pages that render for a signed-in user.
pub fn ctx(lang: Lang, caller: MaybeCaller) -> Ctx {
    Ctx {
        lang,
        caller: caller.0,
    }
}

/// Starts two-factor enrolment and shows the QR code with the confirmation form.
pub async fn totp_start(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let e = crate::auth::totp_flow::start(&state, &caller).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        section.card data-testid="totp-enrol" {
            h2 { (t.get("account.totp.scan")) }
            div.qr { (maud::PreEscaped(e.qr_svg.clone())) }
            p.muted { (t.get("account.totp.manual")) " " code data-testid="totp-secret" { (e.secret_base32) } }
            form method="post" action="/account/totp/confirm" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                div.field { label for="code" { (t.get("login.totp")) } input #code name="code" inputmode="numeric" autocomplete="one-time-code" required; }
                button type="submit" { (t.get("account.totp.confirm")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller.clone()),
    };
    let mut r = page(&state, &ctx, "account", &t.get("account.totp"), content).into_response();
    r.extensions_mut()
        .insert(AuditNote::action("auth.totp_enrol"));
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub struct TotpCode {
    code: String,
}

pub async fn totp_confirm(
    State(state): State<AppState>,
    caller: Caller,
    Form(form): Form<TotpCode>,
) -> Result<Response, ApiError> {
    let ok = crate::auth::totp_flow::confirm(&state, &caller, &form.code).await?;
    let mut r = Redirect::to(if ok {
        "/account?totp=on"
    } else {
        "/account?totp=wrong"
    })
    .into_response();
    r.extensions_mut()
        .insert(AuditNote::action("auth.totp_enabled").outcome(if ok {
            "success"
        } else {
            "failed"
        }));
    Ok(r)
}
