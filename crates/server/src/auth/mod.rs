//! Authentication and authorization: one layer every request passes through.
//!
//! The layer (1) identifies the caller from a session cookie or an `Authorization: Bearer`
//! token, (2) checks CSRF on cookie-authenticated writes, (3) looks the route up in the
//! [`policy::POLICY`] table and refuses with 401/403 (fail closed for unknown routes),
//! (4) hands the [`Caller`] to the handler, and (5) appends an audit record for every
//! write, every refusal and every response a handler marks with an [`AuditNote`].

pub mod login;
pub mod policy;
pub mod seed;
pub mod totp_flow;
pub mod users;

use crate::error::ApiError;
use crate::http::cookie_value;
use crate::http::request_id::current_request_id;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use policy::Access;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use zhudai_store::audit::AuditDraft;

pub const SESSION_COOKIE: &str = "zhudai_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "_csrf";

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// Browser session cookie (CSRF applies).
    Cookie { session_id: i64 },
    /// A session token sent as a bearer token (API clients after login).
    SessionBearer { session_id: i64 },
    /// A scoped API token.
    ApiToken { token_id: i64 },
}

/// The signed-in user of a request, with everything authorization needs.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub org_unit_id: Option<i64>,
    pub roles: Vec<String>,
    pub permissions: BTreeSet<String>,
    /// Sensitive fields this caller sees in clear.
    pub clear_fields: BTreeSet<String>,
    /// The widest data scope among the caller's roles.
    pub scope: String,
    pub auth: AuthKind,
    /// The CSRF token for forms (cookie sessions only).
    pub csrf: Option<String>,
    /// Signed in with a password but two-factor enrolment is still required.
    pub needs_2fa_enrolment: bool,
    /// The customers and applications this caller may see, computed with the caller's
    /// cached access ([`crate::customers::scope_of`] reads the org units when `None`).
    pub scope_filter: Option<zhudai_store::customers::ScopeFilter>,
}

impl Caller {
    pub fn can(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    pub fn sees_clear(&self, field: &str) -> bool {
        self.clear_fields.contains(field)
    }

    pub fn session_id(&self) -> Option<i64> {
        match self.auth {
            AuthKind::Cookie { session_id } | AuthKind::SessionBearer { session_id } => {
                Some(session_id)
            }
            AuthKind::ApiToken { .. } => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("sign in first".into()))
    }
}

/// The caller when there is one (for public pages that adapt to a signed-in user).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(parts.extensions.get::<Caller>().cloned()))
    }
}

/// What a handler tells the audit layer about its response.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub change_digest: Option<String>,
    pub outcome: Option<String>,
    /// The handler already appended its record inside its own transaction.
    pub recorded: bool,
}

impl AuditNote {
    pub fn action(action: impl Into<String>) -> Self {
        AuditNote {
            action: Some(action.into()),
            ..Default::default()
        }
    }
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.change_digest = Some(digest.into());
        self
    }
}

/// SHA-256 hex of a secret token, as stored.
pub fn token_hash(token: &str) -> String {
    zhudai_crypto::tokens::hash_token(token).to_hex()
}

/// The CSRF token of a session, derived from its (secret, HttpOnly) cookie token so it
/// need not be stored: `hex(SHA-256("zhudai-csrf:" || token))`.
pub fn csrf_for(session_token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("zhudai-csrf:{session_token}").as_bytes(),
    ))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

/// Why no caller could be established from the credentials presented.
#[derive(Debug)]
enum Unauthenticated {
    None,
    Invalid(&'static str),
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Caller, Unauthenticated>, ApiError> {
    let store = state.store();
    let now = state.now_ms();
    let policy = &state.settings().auth;
    let (token, from_cookie) = match (bearer(headers), cookie_value(headers, SESSION_COOKIE)) {
        (Some(t), _) => (t, false),
        (None, Some(c)) => (c, true),
        (None, None) => return Ok(Err(Unauthenticated::None)),
    };
    let hash = token_hash(&token);
    let (user_id, auth, scopes, stamp) =
        if let Some((session, stamp)) = store.session_by_token_hash_stamped(&hash).await? {
            if !session.is_active(now, policy.idle_timeout_ms()) {
                return Ok(Err(Unauthenticated::Invalid(
                    "the session has expired or was signed out; sign in again",
                )));
            }
            if now - session.last_seen_ms > 30_000 {
                store.session_touch(session.id, now).await?;
            }
            let auth = if from_cookie {
                AuthKind::Cookie {
                    session_id: session.id,
                }
            } else {
                AuthKind::SessionBearer {
                    session_id: session.id,
                }
            };
            (session.user_id, auth, None, stamp)
        } else if !from_cookie {
            match store.api_token_by_hash_stamped(&hash).await? {
                Some((t, stamp)) if t.is_usable(now) => {
                    if t.last_used_ms.is_none_or(|l| now - l > 30_000) {
                        store.api_token_touch(t.id, now).await?;
                    }
                    (
                        t.user_id,
                        AuthKind::ApiToken { token_id: t.id },
                        Some(t.scopes),
                        stamp,
                    )
                }
                Some(_) => {
                    return Ok(Err(Unauthenticated::Invalid(
                        "the API token has expired or was revoked",
                    )))
                }
                None => {
                    return Ok(Err(Unauthenticated::Invalid(
                        "the credentials are not valid; sign in again",
                    )))
                }
            }
        } else {
            return Ok(Err(Unauthenticated::Invalid(
                "the session is not valid; sign in again",
            )));
        };
    let Some(access) = state.access_cache().get(store, user_id, stamp).await? else {
        return Ok(Err(Unauthenticated::Invalid(
            "the account no longer exists",
        )));
    };
    let user = &access.user;
    if user.status != zhudai_store::identity::UserStatus::Active {
        return Ok(Err(Unauthenticated::Invalid(
            "the account is locked or disabled",
        )));
    }
    let roles = &access.roles;
    let mut permissions = access.permissions.clone();
    if let Some(scopes) = scopes {
        // An API token carries at most the permissions named in its scopes.
        permissions.retain(|p| scopes.iter().any(|s| s == p));
    }
    let clear_fields = access.clear_fields.clone();
    let scope = widest_scope(roles);
    let needs_2fa_enrolment =
        policy.enforce_2fa && !user.totp_enabled && roles.iter().any(|r| r.requires_2fa);
    let csrf = matches!(auth, AuthKind::Cookie { .. }).then(|| csrf_for(&token));
    Ok(Ok(Caller {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        org_unit_id: user.org_unit_id,
        roles: roles.iter().map(|r| r.code.clone()).collect(),
        permissions,
        clear_fields,
        scope,
        auth,
        csrf,
        needs_2fa_enrolment,
        scope_filter: Some(access.scope_filter.clone()),
    }))
}

/// The widest data scope among `roles` (`own` without any).
fn widest_scope(roles: &[zhudai_store::identity::Role]) -> String {
    roles
        .iter()
        .map(|r| r.data_scope)
        .max()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|| "own".into())
}

/// What a user may do, as the database said under one access stamp.
#[derive(Debug)]
pub struct UserAccess {
    pub user: zhudai_store::identity::User,
    pub roles: Vec<zhudai_store::identity::Role>,
    pub permissions: BTreeSet<String>,
    pub clear_fields: BTreeSet<String>,
    /// The user's data scope over the org tree as it stood under the stamp.
    pub scope_filter: zhudai_store::customers::ScopeFilter,
}

/// Per-user [`UserAccess`], valid while the database's access stamp is unchanged.
///
/// Every request reads the stamp with its session (one statement); triggers bump it on
/// any change to users, roles, role assignments, permissions or field rules, from any
/// instance, so a hit is never staler than the request's own read. Loading after the
/// stamp was read means the cached value is at least as new as its stamp.
#[derive(Debug, Default)]
pub struct AccessCache {
    map: std::sync::Mutex<std::collections::HashMap<i64, (i64, std::sync::Arc<UserAccess>)>>,
}

impl AccessCache {
    /// Staff accounts number in the thousands; past this the cache starts over.
    const MAX_USERS: usize = 50_000;

    pub async fn get(
        &self,
        store: &zhudai_store::Store,
        user_id: i64,
        stamp: i64,
    ) -> Result<Option<std::sync::Arc<UserAccess>>, ApiError> {
        if let Ok(map) = self.map.lock() {
            if let Some((s, a)) = map.get(&user_id) {
                if *s == stamp {
                    return Ok(Some(a.clone()));
                }
            }
        }
        let Some(user) = store.user_by_id(user_id).await? else {
            return Ok(None);
        };
        let roles = store.user_roles(user.id).await?;
        let scope = widest_scope(&roles);
        // Team and branch scopes depend on the org tree; org-unit changes bump the stamp.
        let units = match scope.as_str() {
            "team" | "branch" => store.org_units().await?,
            _ => Vec::new(),
        };
        let access = std::sync::Arc::new(UserAccess {
            scope_filter: crate::customers::scope_filter_for(
                user.id,
                user.org_unit_id,
                &scope,
                &units,
            ),
            roles,
            permissions: store.user_permissions(user.id).await?,
            clear_fields: store.user_field_access(user.id).await?,
            user,
        });
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= Self::MAX_USERS {
                map.clear();
            }
            // Keep the newer of two concurrent loads.
            let keep = map.get(&user_id).is_none_or(|(s, _)| *s <= stamp);
            if keep {
                map.insert(user_id, (stamp, access.clone()));
            }
        }
        Ok(Some(access))
    }
}

/// Routes a signed-in user who must still enrol in two-factor may use.
const ENROLMENT_ROUTES: &[&str] = &[
    "/account",
    "/account/totp",
    "/account/totp/confirm",
    "/logout",
    "/api/v1/auth/me",
    "/api/v1/auth/logout",
    "/api/v1/auth/totp/enrol",
    "/api/v1/auth/totp/confirm",
    "/api/v1/auth/password",
];

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authorization layer. See the module documentation.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let is_api = path.starts_with("/api/");
    let access = match &route {
        // A method the route does not serve: let the router answer 405.
        Some(r)
            if policy::access_for(&method, r).is_none()
                && policy::POLICY.iter().any(|(_, p, _)| p == r) =>
        {
            Some(Access::Public)
        }
        Some(r) => policy::access_for(&method, r),
        // Unmatched paths reach the fallback (404 page or problem), which reveals nothing.
        None => Some(Access::Public),
    };
    let Some(access) = access else {
        tracing::error!(%method, route = route.as_deref().unwrap_or("-"), "route has no access policy; refused");
        return ApiError::Forbidden(
            "this route has no access policy and is refused to everyone".into(),
        )
        .into_response();
    };
    let caller = match resolve(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let audit_base = |outcome: &str, action: String| {
        let mut d = AuditDraft::new(state.now_ms(), action, outcome).target(path.clone());
        if let Some(ip) = &ip {
            d = d.source_ip(ip.clone());
        }
        if let Some(id) = current_request_id() {
            d = d.request_id(id);
        }
        d
    };
    let action_name = format!("{method} {}", route.as_deref().unwrap_or(&path));
    let refuse = |status: StatusCode, message: String, caller: Option<&Caller>| {
        let state = state.clone();
        let mut draft = audit_base("denied", action_name.clone()).reason(message.clone());
        if let Some(c) = caller {
            draft = draft.actor(c.username.clone()).role(c.roles.join(","));
        }
        async move {
            if let Err(e) = state.store().audit_append(&draft).await {
                tracing::error!(error = %e, "could not record a refused request in the audit trail");
            }
            let err = match status {
                StatusCode::UNAUTHORIZED => ApiError::Unauthorized(message),
                _ => ApiError::Forbidden(message),
            };
            err.into_response()
        }
    };
    let caller = match (access, caller) {
        (Access::Public, Ok(c)) => Some(c),
        (Access::Public, Err(_)) => None,
        (_, Err(reason)) => {
            // Browsers asking for a page go to the login form instead of a bare 401.
            if !is_api && method == Method::GET {
                return Redirect::to(&format!("/login?next={}", urlencode(&path))).into_response();
            }
            let message = match reason {
                Unauthenticated::None => {
                    "sign in first: send the session cookie or an `Authorization: Bearer` token"
                        .to_owned()
                }
                Unauthenticated::Invalid(m) => m.to_owned(),
            };
            return refuse(StatusCode::UNAUTHORIZED, message, None).await;
        }
        (Access::SignedIn, Ok(c)) => Some(c),
        (Access::Permission(p), Ok(c)) => {
            if !c.can(p) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!("your role does not include the permission `{p}`"),
                    Some(&c),
                )
                .await;
            }
            Some(c)
        }
    };
    if let Some(c) = &caller {
        if c.needs_2fa_enrolment
            && access != Access::Public
            && !ENROLMENT_ROUTES.contains(&route.as_deref().unwrap_or(""))
        {
            if !is_api && method == Method::GET {
                return Redirect::to("/account?enrol=1").into_response();
            }
            return refuse(
                StatusCode::FORBIDDEN,
                "your role requires two-factor authentication: enrol at /account first".into(),
                Some(c),
            )
            .await;
        }
    }
    // CSRF: a cookie-authenticated write must prove it comes from our own page.
    let mut req = req;
    if let Some(c) = &caller {
        if let (AuthKind::Cookie { .. }, true) = (&c.auth, is_unsafe(&method)) {
            let expected = c.csrf.clone().unwrap_or_default();
            let (ok, rebuilt) = check_csrf(req, &expected, state.settings().body_limit_bytes).await;
            req = rebuilt;
            if !ok {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the form is missing a valid CSRF token; reload the page and try again".into(),
                    Some(c),
                )
                .await;
            }
        }
    }
    if let Some(c) = &caller {
        req.extensions_mut().insert(c.clone());
    }
    let response = next.run(req).await;
    let note = response.extensions().get::<AuditNote>().cloned();
    if is_unsafe(&method) || note.is_some() {
        let note = note.unwrap_or_default();
        if !note.recorded {
            let status = response.status();
            let outcome = note.outcome.clone().unwrap_or_else(|| {
                if status.is_success() || status.is_redirection() {
                    "success".into()
                } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    "denied".into()
                } else if status.is_client_error() {
                    "rejected".into()
                } else {
                    "error".into()
                }
            });
            let mut draft =
                audit_base(&outcome, note.action.clone().unwrap_or(action_name.clone()));
            if let Some(t) = note.target {
                draft = draft.target(t);
            }
            match (&caller, note.actor) {
                (_, Some(actor)) => draft = draft.actor(actor),
                (Some(c), None) => draft = draft.actor(c.username.clone()).role(c.roles.join(",")),
                (None, None) => {}
            }
            if let Some(r) = note.reason {
                draft = draft.reason(r);
            }
            if let Some(d) = note.change_digest {
                draft = draft.change_digest(d);
            }
            if let Err(e) = state.store().audit_append(&draft).await {
                tracing::error!(error = %e, "could not append an audit record");
            }
        }
    }
    response
}

/// Checks the CSRF token in the `x-csrf-token` header or, for HTML forms, the `_csrf`
/// field of the url-encoded body (buffered within the body limit and put back).
async fn check_csrf(req: Request, expected: &str, limit: usize) -> (bool, Request) {
    if expected.is_empty() {
        return (false, req);
    }
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let ok = zhudai_crypto::tokens::ct_eq_str(h, expected);
        return (ok, req);
    }
    // Multipart uploads (documents) are not buffered here: their forms carry the token
    // in the query string (`?_csrf=`), which only our own pages know.
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let ok = req
            .uri()
            .query()
            .and_then(|q| form_urlencoded_value(q.as_bytes(), CSRF_FIELD))
            .is_some_and(|v| zhudai_crypto::tokens::ct_eq_str(&v, expected));
        return (ok, req);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, req);
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return (false, Request::from_parts(parts, Body::empty())),
    };
    let ok = form_urlencoded_value(&bytes, CSRF_FIELD)
        .is_some_and(|v| zhudai_crypto::tokens::ct_eq_str(&v, expected));
    (ok, Request::from_parts(parts, Body::from(bytes)))
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|v| v.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}
