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

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Add to an authenticator app (or scan `qr_svg`).
    pub otpauth_url: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
    /// The secret, for typing in by hand.
    pub secret_base32: String,
}

/// Start two-factor enrolment: a new secret (not active until confirmed).
#[utoipa::path(post, path = "/api/v1/auth/totp/enrol", tag = "auth",
    responses((status = 200, body = TotpEnrolment),
              (status = 409, description = "Already enabled", body = Problem, content_type = "application/problem+json")))]
pub async fn totp_enrol(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let e = crate::auth::totp_flow::start(&state, &caller).await?;
    let mut resp = axum::Json(TotpEnrolment {
        otpauth_url: e.otpauth_url,
        qr_svg: e.qr_svg,
        secret_base32: e.secret_base32,
    })
    .into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.totp_enrol"));
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    /// The current 6-digit code from the authenticator app.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnabled {
    pub enabled: bool,
}

/// Finish enrolment by proving one code.
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", request_body = TotpConfirm,
    responses((status = 200, body = TotpEnabled),
              (status = 422, description = "Wrong code", body = Problem, content_type = "application/problem+json")))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TotpConfirm>,
) -> ApiResult<Response> {
    if !crate::auth::totp_flow::confirm(&state, &caller, &req.code).await? {
        return Err(ApiError::field(
            "code",
            "totp_invalid",
            "the code is wrong or expired; enter the current code",
        ));
    }
    let mut resp = axum::Json(TotpEnabled { enabled: true }).into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.totp_enabled"));
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "nightly export".
    pub name: String,
    /// Permissions the token carries: a subset of the caller's.
    pub scopes: Vec<String>,
    /// 1–365 days.
    pub expires_in_days: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    /// Shown once; only its hash is stored.
    pub token: String,
    pub expires_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

/// Create a scoped, expiring API token.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = TokenCreated),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn token_create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        errors.push(crate::error::FieldError::new(
            "name",
            "invalid",
            "give the token a name of 1–100 characters",
        ));
    }
    if req.scopes.is_empty() {
        errors.push(crate::error::FieldError::new(
            "scopes",
            "required",
            "name at least one permission",
        ));
    }
    for s in &req.scopes {
        if !caller.can(s) {
            errors.push(crate::error::FieldError::new(
                "scopes",
                "not_held",
                format!("you do not hold `{s}`, so a token cannot carry it"),
            ));
        }
    }
    if !(1..=365).contains(&req.expires_in_days) {
        errors.push(crate::error::FieldError::new(
            "expires_in_days",
            "out_of_range",
            "1–365 days",
        ));
    }
    if matches!(caller.auth, crate::auth::AuthKind::ApiToken { .. }) {
        errors.push(crate::error::FieldError::new(
            "body",
            "token_auth",
            "an API token cannot create tokens; sign in",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (token, hash) = zhudai_crypto::tokens::Token::generate().map_err(ApiError::internal)?;
    let expires_at_ms = state.now_ms() + req.expires_in_days * 86_400_000;
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    let id = state
        .store()
        .api_token_create(
            &zhudai_store::identity::NewApiToken {
                token_hash: &hash.to_hex(),
                user_id: caller.user_id,
                name: req.name.trim(),
                scopes: &scopes,
                expires_at_ms: Some(expires_at_ms),
            },
            state.now_ms(),
        )
        .await?;
    let body = TokenCreated {
        id,
        token: secrecy::ExposeSecret::expose_secret(&token).to_owned(),
        expires_at_ms,
    };
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    resp.extensions_mut().insert(
        AuditNote::action("auth.token_create")
            .target(format!("token:{id}"))
            .reason(req.scopes.join(" ")),
    );
    Ok(resp)
}

/// The caller's API tokens (never the token values).
#[utoipa::path(get, path = "/api/v1/auth/tokens", tag = "auth", responses((status = 200, body = [TokenView])))]
pub async fn token_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Vec<TokenView>>> {
    let list = state.store().api_tokens_of_user(caller.user_id).await?;
    Ok(ApiJson(
        list.into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                scopes: t.scopes,
                created_at_ms: t.created_at_ms,
                expires_at_ms: t.expires_at_ms,
                revoked_at_ms: t.revoked_at_ms,
                last_used_ms: t.last_used_ms,
            })
            .collect(),
    ))
}

/// Revoke one of the caller's API tokens.
#[utoipa::path(delete, path = "/api/v1/auth/tokens/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn token_revoke(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> ApiResult<Response> {
    let mine = state
        .store()
        .api_tokens_of_user(caller.user_id)
        .await?
        .into_iter()
        .any(|t| t.id == id);
    if !mine {
        return Err(ApiError::NotFound(format!(
            "you have no token with id {id}"
        )));
    }
    state.store().api_token_revoke(id, state.now_ms()).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.token_revoke").target(format!("token:{id}")));
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change the caller's password; every other session is signed out.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204, description = "Changed"),
              (status = 422, description = "Wrong current password or a weak new one", body = Problem, content_type = "application/problem+json")))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<Response> {
    let store = state.store();
    let user = store
        .user_by_id(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the account no longer exists".into()))?;
    let (current, hash) = (req.current_password.clone(), user.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        zhudai_crypto::password::verify_password(&current, &hash)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let mut errors = Vec::new();
    if !ok {
        errors.push(crate::error::FieldError::new(
            "current_password",
            "wrong",
            "the current password is wrong",
        ));
    }
    for v in state
        .settings()
        .auth
        .password_policy
        .check(&req.new_password, &user.username)
    {
        errors.push(crate::error::FieldError::new(
            "new_password",
            v.code(),
            v.message_en(),
        ));
    }
    if req.new_password == req.current_password {
        errors.push(crate::error::FieldError::new(
            "new_password",
            "unchanged",
            "choose a password different from the current one",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let hash = crate::auth::login::hash(req.new_password.clone(), state.settings().auth.argon2)
        .await
        .map_err(ApiError::Internal)?;
    let now = state.now_ms();
    store
        .user_set_password_hash(user.id, &hash, false, now)
        .await?;
    store
        .session_revoke_all(user.id, caller.session_id(), now)
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.extensions_mut()
        .insert(AuditNote::action("auth.password_change"));
    Ok(resp)
}
