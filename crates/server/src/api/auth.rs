//! Signing in and out, and the caller's own account: `/api/v1/auth/…`.

use crate::auth::login::{clear_cookie, login, session_cookie, Credentials, LoginError};
use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The current 6-digit code, when two-factor authentication is enabled.
    #[serde(default)]
    pub totp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`; browsers get the same session as a cookie.
    pub token: String,
    /// For cookie sessions: send as the `x-csrf-token` header on writes.
    pub csrf_token: String,
    pub expires_at_ms: i64,
    pub username: String,
}

/// Sign in with username and password (and TOTP code when enabled).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = LoginResponse),
        (status = 401, description = "Wrong credentials, locked, or two-factor code needed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_api(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    let mut errors = Vec::new();
    if req.username.trim().is_empty() {
        errors.push(crate::error::FieldError::new(
            "username",
            "required",
            "enter a username",
        ));
    }
    if req.password.is_empty() {
        errors.push(crate::error::FieldError::new(
            "password",
            "required",
            "enter a password",
        ));
    }
    if !errors.is_empty() {
        return ApiError::Validation(errors).into_response();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let creds = Credentials {
        username: &req.username,
        password: &req.password,
        totp: req.totp.as_deref(),
        ip: Some(addr.ip()),
        user_agent: ua,
    };
    let note = AuditNote::action("auth.login").actor(req.username.trim().to_owned());
    match login(&state, &creds).await {
        Ok(s) => {
            let body = LoginResponse {
                token: s.token.clone(),
                csrf_token: s.csrf,
                expires_at_ms: s.expires_at_ms,
                username: s.username,
            };
            let mut resp = (
                [(header::SET_COOKIE, session_cookie(&state, &s.token))],
                axum::Json(body),
            )
                .into_response();
            resp.extensions_mut().insert(note.outcome("success"));
            resp
        }
        Err(e) => login_error_response(e, note),
    }
}

pub fn login_error_response(e: LoginError, note: AuditNote) -> Response {
    let err = match &e {
        LoginError::Throttled => ApiError::TooManyRequests(e.message()),
        LoginError::Internal(detail) => ApiError::Internal(detail.clone()),
        _ => ApiError::Unauthorized(e.message()),
    };
    let mut resp = err.into_response();
    let outcome = match e {
        LoginError::Locked { .. } => "locked",
        LoginError::Internal(_) => "error",
        _ => "failed",
    };
    resp.extensions_mut()
        .insert(note.outcome(outcome).reason(e.code()));
    resp
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// `own`, `team`, `branch` or `all`.
    pub data_scope: String,
    pub org_unit_id: Option<i64>,
    /// True until a role that requires two-factor authentication is enrolled.
    pub needs_2fa_enrolment: bool,
}

/// Who the caller is and what they may do.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The signed-in user", body = Me),
              (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json")))]
pub async fn me(caller: Caller) -> ApiJson<Me> {
    ApiJson(Me {
        user_id: caller.user_id,
        username: caller.username,
        display_name: caller.display_name,
        roles: caller.roles,
        permissions: caller.permissions.into_iter().collect(),
        data_scope: caller.scope,
        org_unit_id: caller.org_unit_id,
        needs_2fa_enrolment: caller.needs_2fa_enrolment,
    })
}

/// Sign out of this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out"),
              (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json")))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    if let Some(id) = caller.session_id() {
        state.store().session_revoke(id, state.now_ms()).await?;
    }
    let mut resp = (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie())],
    )
        .into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.logout"));
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub sessions_revoked: u64,
}

/// Sign out everywhere: every session of the caller, this one included.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    responses((status = 200, description = "All sessions revoked", body = Revoked),
              (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json")))]
pub async fn logout_all(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let n = state
        .store()
        .session_revoke_all(caller.user_id, None, state.now_ms())
        .await?;
    let mut resp = (
        [(header::SET_COOKIE, clear_cookie())],
        axum::Json(Revoked {
            sessions_revoked: n,
        }),
    )
        .into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.logout_all"));
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
    pub absolute_expires_at_ms: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// This is the session making the request.
    pub current: bool,
}

/// The caller's active sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "Active sessions", body = [SessionView]),
              (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json")))]
pub async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Vec<SessionView>>> {
    let idle = state.settings().auth.idle_timeout_ms();
    let list = state
        .store()
        .sessions_active(caller.user_id, state.now_ms(), idle)
        .await?;
    let current = caller.session_id();
    Ok(ApiJson(
        list.into_iter()
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                created_at_ms: s.created_at_ms,
                last_seen_ms: s.last_seen_ms,
                absolute_expires_at_ms: s.absolute_expires_at_ms,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    ))
}
