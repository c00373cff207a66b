//! Users and roles: `/api/v1/users…`, `/api/v1/roles…`, `/api/v1/permissions`.
//! Personal fields come back masked unless the caller's role may see them in clear;
//! `POST …/reveal` shows one field after a reason is given, rate-limited and audited.

use crate::auth::login::AuthPolicy;
use crate::auth::users::{check_roles, create_user, reveal as reveal_field, UserSpec};
use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_crypto::blind_index::FieldKind;
use zhudai_domain::access::{
    is_permission, is_sensitive_field, sod_violations, PERMISSIONS, SENSITIVE_FIELDS,
};
use zhudai_domain::ident::Mobile;
use zhudai_domain::mask;
use zhudai_store::audit::AuditFilter;
use zhudai_store::identity::{DataScope, RoleUpdate, User, UserQuery, UserStatus, UserUpdate};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub org_unit_id: Option<i64>,
    /// `active`, `locked` or `disabled`.
    pub status: String,
    pub roles: Vec<String>,
    /// Masked (`138****5678`) unless the caller's role sees `user.phone` in clear.
    pub phone: Option<String>,
    /// Masked (`110***********002X`) unless the caller's role sees `user.id_number` in clear.
    pub id_number: Option<String>,
    pub totp_enabled: bool,
    /// A failed-login lockout is in force.
    pub locked_out: bool,
}

async fn shown(
    state: &AppState,
    caller: &Caller,
    user_id: i64,
    field: &str,
    clear_field: &str,
    masker: fn(&str) -> String,
) -> ApiResult<Option<String>> {
    let value = reveal_field(state.store(), state.vault(), user_id, field)
        .await
        .map_err(ApiError::Internal)?;
    Ok(value.map(|v| {
        if caller.sees_clear(clear_field) {
            v
        } else {
            masker(&v)
        }
    }))
}

async fn view(
    state: &AppState,
    caller: &Caller,
    user: User,
    clear_reads: &mut Vec<String>,
) -> ApiResult<UserView> {
    let roles = state
        .store()
        .user_roles(user.id)
        .await?
        .into_iter()
        .map(|r| r.code)
        .collect();
    let phone = shown(state, caller, user.id, "phone", "user.phone", mask::mobile).await?;
    let id_number = shown(
        state,
        caller,
        user.id,
        "id_number",
        "user.id_number",
        mask::resident_id,
    )
    .await?;
    if phone.is_some() && caller.sees_clear("user.phone") {
        clear_reads.push(format!("user:{}.phone", user.id));
    }
    if id_number.is_some() && caller.sees_clear("user.id_number") {
        clear_reads.push(format!("user:{}.id_number", user.id));
    }
    Ok(UserView {
        locked_out: user.is_locked_out(state.now_ms()),
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        org_unit_id: user.org_unit_id,
        status: user.status.as_str().to_owned(),
        roles,
        phone,
        id_number,
        totp_enabled: user.totp_enabled,
    })
}

/// Every read of a sensitive field in clear is audited.
fn with_clear_read_audit(mut resp: Response, clear_reads: Vec<String>) -> Response {
    if !clear_reads.is_empty() {
        resp.extensions_mut().insert(
            AuditNote::action("field.read_clear")
                .target(clear_reads.join(",").chars().take(500).collect::<String>()),
        );
    }
    resp
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of the username or name.
    pub q: Option<String>,
    /// Exact mobile number (searched through its blind index; never stored in clear).
    pub phone: Option<String>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPageView {
    pub users: Vec<UserView>,
    pub total: i64,
}

/// List or search users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserSearch),
    responses((status = 200, body = UserPageView),
              (status = 403, description = "Needs `user.read`", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Bad search", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<UserSearch>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–200"));
    }
    let mut clear_reads = Vec::new();
    let mut out = Vec::new();
    let total;
    if let Some(phone) = q.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        let m =
            Mobile::parse(phone).map_err(|e| ApiError::field("phone", e.code(), e.to_string()))?;
        let ids = state
            .store()
            .users_by_phone_index(&state.vault().blind_index(FieldKind::Phone, m.as_str()))
            .await?;
        total = ids.len() as i64;
        for id in ids {
            if let Some(u) = state.store().user_by_id(id).await? {
                out.push(view(&state, &caller, u, &mut clear_reads).await?);
            }
        }
    } else {
        let page = state
            .store()
            .user_list(&UserQuery {
                text: q.q.as_deref(),
                offset: q.offset.unwrap_or(0).max(0),
                limit,
            })
            .await?;
        total = page.total;
        for u in page.users {
            out.push(view(&state, &caller, u, &mut clear_reads).await?);
        }
    }
    Ok(with_clear_read_audit(
        axum::Json(UserPageView { users: out, total }).into_response(),
        clear_reads,
    ))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let user = state
        .store()
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user has id {id}")))?;
    let mut clear_reads = Vec::new();
    let v = view(&state, &caller, user, &mut clear_reads).await?;
    Ok(with_clear_read_audit(
        axum::Json(v).into_response(),
        clear_reads,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub username: String,
    pub display_name: String,
    /// The initial password (the user should change it).
    pub password: String,
    /// Role codes, e.g. `["customer_manager"]`.
    pub roles: Vec<String>,
    #[serde(default)]
    pub org_unit_id: Option<i64>,
    /// Mobile number (stored encrypted).
    #[serde(default)]
    pub phone: Option<String>,
    /// Resident ID number (stored encrypted).
    #[serde(default)]
    pub id_number: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserRequest,
    responses((status = 201, body = Created),
              (status = 422, description = "Invalid fields (each listed)", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(req): ApiJson<NewUserRequest>,
) -> ApiResult<Response> {
    let spec = UserSpec {
        username: req.username.trim(),
        display_name: &req.display_name,
        password: &req.password,
        roles: &req.roles,
        org_unit_id: req.org_unit_id,
        must_change_password: true,
        phone: req.phone.as_deref(),
        id_number: req.id_number.as_deref(),
    };
    let id = create_user(
        state.store(),
        state.vault(),
        &spec,
        &state.settings().auth.argon2,
        state.now_ms(),
    )
    .await
    .map_err(ApiError::Validation)?;
    let digest = zhudai_crypto::audit_chain::digest_change(
        &serde_json::Value::Null,
        &serde_json::json!({"username": spec.username, "roles": req.roles, "org_unit_id": req.org_unit_id,
            "phone": req.phone.is_some(), "id_number": req.id_number.is_some()}),
    );
    let mut resp = (StatusCode::CREATED, axum::Json(Created { id })).into_response();
    resp.extensions_mut().insert(
        AuditNote::action("user.create")
            .target(format!("user:{id}"))
            .digest(digest),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    /// `active`, `locked` or `disabled`.
    pub status: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// Change a user's name, status or roles.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<UserPatch>,
) -> ApiResult<Response> {
    let store = state.store();
    let before = store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user has id {id}")))?;
    let mut errors = Vec::new();
    let status = match req.status.as_deref() {
        Some(s) => match UserStatus::parse(s) {
            Ok(st) => Some(st),
            Err(_) => {
                errors.push(FieldError::new(
                    "status",
                    "invalid",
                    "use active, locked or disabled",
                ));
                None
            }
        },
        None => None,
    };
    if id == caller.user_id && (req.roles.is_some() || status.is_some()) {
        errors.push(FieldError::new(
            "roles",
            "self",
            "you cannot change your own roles or status; ask another administrator",
        ));
    }
    if req
        .display_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        errors.push(FieldError::new(
            "display_name",
            "required",
            "the name cannot be empty",
        ));
    }
    let role_ids = match &req.roles {
        Some(r) => Some(check_roles(store, r, &mut errors).await),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    store
        .user_update(
            id,
            &UserUpdate {
                display_name: req.display_name.as_deref().map(str::trim),
                org_unit_id: None,
                status,
                role_ids: role_ids.as_deref(),
            },
            state.now_ms(),
        )
        .await?;
    if matches!(status, Some(UserStatus::Disabled | UserStatus::Locked)) {
        store.session_revoke_all(id, None, state.now_ms()).await?;
    }
    let after = store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user has id {id}")))?;
    let digest = zhudai_crypto::audit_chain::digest_change(
        &serde_json::json!({"display_name": before.display_name, "status": before.status.as_str(), "role_ids": before.role_ids}),
        &serde_json::json!({"display_name": after.display_name, "status": after.status.as_str(), "role_ids": after.role_ids}),
    );
    let mut clear_reads = Vec::new();
    let v = view(&state, &caller, after, &mut clear_reads).await?;
    let mut resp = axum::Json(v).into_response();
    resp.extensions_mut().insert(
        AuditNote::action("user.update")
            .target(format!("user:{id}"))
            .digest(digest),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// `phone` or `id_number`.
    pub field: String,
    /// Why the clear value is needed (kept in the audit trail).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revealed {
    pub field: String,
    pub value: String,
}

/// Show one personal field in clear. Needs a reason; rate-limited; audited.
#[utoipa::path(post, path = "/api/v1/users/{id}/reveal", tag = "users", params(("id" = i64, Path)), request_body = RevealRequest,
    responses((status = 200, body = Revealed),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "Too many reveals this hour", body = Problem, content_type = "application/problem+json")))]
pub async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<RevealRequest>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    if !matches!(req.field.as_str(), "phone" | "id_number") {
        errors.push(FieldError::new(
            "field",
            "invalid",
            "use `phone` or `id_number`",
        ));
    }
    if req.reason.trim().chars().count() < 4 {
        errors.push(FieldError::new(
            "reason",
            "required",
            "say why you need the clear value (at least 4 characters)",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let policy: &AuthPolicy = &state.settings().auth;
    let hour_ago = state.now_ms() - 3_600_000;
    let used = state
        .store()
        .audit_count(&AuditFilter {
            actor: Some(caller.username.clone()),
            action_prefix: Some("field.reveal".into()),
            from_ms: Some(hour_ago),
            outcome: Some("success".into()),
            ..Default::default()
        })
        .await?;
    if used >= policy.reveals_per_hour {
        return Err(ApiError::TooManyRequests(format!(
            "you have revealed {used} values in the last hour (limit {}); try later",
            policy.reveals_per_hour
        )));
    }
    let value = reveal_field(state.store(), state.vault(), id, &req.field)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::NotFound(format!("user {id} has no {}", req.field)))?;
    let mut resp = axum::Json(Revealed {
        field: req.field.clone(),
        value,
    })
    .into_response();
    resp.extensions_mut().insert(
        AuditNote::action("field.reveal")
            .target(format!("user:{id}.{}", req.field))
            .reason(req.reason.trim().to_owned()),
    );
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// `own`, `team`, `branch` or `all`.
    pub data_scope: String,
    pub requires_2fa: bool,
    pub is_system: bool,
    pub permissions: Vec<String>,
    /// Sensitive fields this role sees in clear.
    pub clear_fields: Vec<String>,
}

/// Roles with their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users", responses((status = 200, body = [RoleView])))]
pub async fn roles(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<RoleView>>> {
    let mut out = Vec::new();
    for r in state.store().roles().await? {
        out.push(RoleView {
            permissions: state.store().role_permissions(r.id).await?,
            clear_fields: state.store().role_field_access(r.id).await?,
            code: r.code,
            name_zh: r.name_zh,
            name_en: r.name_en,
            data_scope: r.data_scope.as_str().to_owned(),
            requires_2fa: r.requires_2fa,
            is_system: r.is_system,
        });
    }
    Ok(ApiJson(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub name_zh: String,
    pub name_en: String,
    pub data_scope: String,
    pub requires_2fa: bool,
    pub permissions: Vec<String>,
    pub clear_fields: Vec<String>,
}

/// Change a role's permissions, clear-text fields, scope and 2FA rule.
#[utoipa::path(put, path = "/api/v1/roles/{code}", tag = "users", params(("code" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = RoleView),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Response> {
    let store = state.store();
    let role = store
        .role_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no role has the code `{code}`")))?;
    let mut errors = Vec::new();
    for p in &req.permissions {
        if !is_permission(p) {
            errors.push(FieldError::new(
                "permissions",
                "unknown",
                format!("`{p}` is not a permission"),
            ));
        }
    }
    for f in &req.clear_fields {
        if !is_sensitive_field(f) {
            errors.push(FieldError::new(
                "clear_fields",
                "unknown",
                format!("`{f}` is not a sensitive field"),
            ));
        }
    }
    for rule in sod_violations(req.permissions.iter().map(String::as_str)) {
        errors.push(FieldError::new(
            "permissions",
            rule.code,
            format!("separation of duties: {}", rule.en),
        ));
    }
    let scope = DataScope::parse(&req.data_scope);
    if scope.is_err() {
        errors.push(FieldError::new(
            "data_scope",
            "invalid",
            "use own, team, branch or all",
        ));
    }
    if caller.roles.contains(&code) {
        errors.push(FieldError::new(
            "permissions",
            "self",
            "you cannot change a role you hold; ask another administrator",
        ));
    }
    if req.name_zh.trim().is_empty() || req.name_en.trim().is_empty() {
        errors.push(FieldError::new(
            "name_zh",
            "required",
            "both names are required",
        ));
    }
    let Ok(scope) = scope else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let before = serde_json::json!({"permissions": store.role_permissions(role.id).await?, "clear_fields": store.role_field_access(role.id).await?});
    let now = state.now_ms();
    store
        .role_update(
            role.id,
            &RoleUpdate {
                name_zh: req.name_zh.trim(),
                name_en: req.name_en.trim(),
                data_scope: scope,
                requires_2fa: req.requires_2fa,
            },
            now,
        )
        .await?;
    let perms: Vec<&str> = req.permissions.iter().map(String::as_str).collect();
    let fields: Vec<&str> = req.clear_fields.iter().map(String::as_str).collect();
    store.role_set_permissions(role.id, &perms, now).await?;
    store.role_set_field_access(role.id, &fields, now).await?;
    let after =
        serde_json::json!({"permissions": req.permissions, "clear_fields": req.clear_fields});
    let digest = zhudai_crypto::audit_chain::digest_change(&before, &after);
    let view = RoleView {
        code: role.code.clone(),
        name_zh: req.name_zh.trim().to_owned(),
        name_en: req.name_en.trim().to_owned(),
        data_scope: scope.as_str().to_owned(),
        requires_2fa: req.requires_2fa,
        is_system: role.is_system,
        permissions: req.permissions,
        clear_fields: req.clear_fields,
    };
    let mut resp = axum::Json(view).into_response();
    resp.extensions_mut().insert(
        AuditNote::action("role.update")
            .target(format!("role:{code}"))
            .digest(digest),
    );
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Catalogue {
    pub permissions: Vec<CatalogueEntry>,
    pub sensitive_fields: Vec<CatalogueEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueEntry {
    pub code: String,
    pub zh: String,
    pub en: String,
}

/// Every permission and sensitive field zhudai knows.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "users", responses((status = 200, body = Catalogue)))]
pub async fn permissions() -> ApiJson<Catalogue> {
    ApiJson(Catalogue {
        permissions: PERMISSIONS
            .iter()
            .map(|p| CatalogueEntry {
                code: p.code.into(),
                zh: p.zh.into(),
                en: p.en.into(),
            })
            .collect(),
        sensitive_fields: SENSITIVE_FIELDS
            .iter()
            .map(|f| CatalogueEntry {
                code: f.code.into(),
                zh: f.zh.into(),
                en: f.en.into(),
            })
            .collect(),
    })
}
