//! User and role management pages for the system administrator.

use crate::auth::users::{create_user, UserSpec};
use crate::auth::{AuditNote, Caller, CSRF_FIELD};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use zhudai_crypto::blind_index::FieldKind;
use zhudai_domain::access::PERMISSIONS;
use zhudai_domain::ident::Mobile;
use zhudai_domain::mask;
use zhudai_store::identity::UserQuery;

#[derive(Debug, Deserialize, Default)]
pub struct UserFilter {
    q: Option<String>,
    phone: Option<String>,
    created: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct NewUserForm {
    username: String,
    display_name: String,
    password: String,
    role: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    id_number: String,
    #[serde(rename = "_csrf", default)]
    _csrf: String,
}

async fn users_page(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    filter: UserFilter,
    form: NewUserForm,
    errors: Vec<FieldError>,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let store = state.store();
    let (users, total, phone_error) = match filter
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(p) => match Mobile::parse(p) {
            Ok(m) => {
                let ids = store
                    .users_by_phone_index(&state.vault().blind_index(FieldKind::Phone, m.as_str()))
                    .await?;
                let mut v = Vec::new();
                for id in ids {
                    if let Some(u) = store.user_by_id(id).await? {
                        v.push(u);
                    }
                }
                let n = v.len() as i64;
                (v, n, None)
            }
            Err(e) => (Vec::new(), 0, Some(e.to_string())),
        },
        None => {
            let page = store
                .user_list(&UserQuery {
                    text: filter.q.as_deref(),
                    offset: 0,
                    limit: 100,
                })
                .await?;
            (page.users, page.total, None)
        }
    };
    let roles = store.roles().await?;
    let mut rows = Vec::new();
    for u in users {
        let role_names: Vec<String> = store
            .user_roles(u.id)
            .await?
            .into_iter()
            .map(|r| {
                if lang == Lang::ZhCn {
                    r.name_zh
                } else {
                    r.name_en
                }
            })
            .collect();
        let phone = crate::auth::users::reveal(store, state.vault(), u.id, "phone")
            .await
            .map_err(ApiError::Internal)?;
        let phone = phone.map(|p| {
            if caller.sees_clear("user.phone") {
                p
            } else {
                mask::mobile(&p)
            }
        });
        rows.push((u, role_names, phone));
    }
    let csrf = caller.csrf.clone().unwrap_or_default();
    let err = |field: &str| {
        errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let content = html! {
        @if filter.created.is_some() { section.card.notice data-testid="created" { p { (t.get("users.created")) } } }
        section.card {
            form.filters method="get" action="/admin/users" {
                input name="q" value=(filter.q.clone().unwrap_or_default()) placeholder=(t.get("users.search"));
                input name="phone" value=(filter.phone.clone().unwrap_or_default()) placeholder=(t.get("users.search_phone"));
                button type="submit" { (t.get("users.search.go")) }
            }
            @if let Some(e) = phone_error { p.field-error { (e) } }
            table.table data-testid="user-table" {
                thead { tr { th { (t.get("login.username")) } th { (t.get("account.display_name")) } th { (t.get("account.roles")) } th { (t.get("users.phone")) } th { (t.get("users.status")) } th { (t.get("account.totp")) } } }
                tbody { @for (u, role_names, phone) in &rows { tr {
                    td { code { (u.username) } }
                    td { (u.display_name) }
                    td { @for r in role_names { span.badge { (r) } " " } }
                    td { (phone.clone().unwrap_or_default()) }
                    td { span class=(format!("badge badge-{}", if u.status.as_str() == "active" { "ok" } else { "bad" })) { (t.get(&format!("users.status.{}", u.status.as_str()))) } }
                    td { @if u.totp_enabled { "✓" } }
                } } }
            }
            p.muted { (t.get("users.total")) " " (total) }
        }
        @if caller.can("user.manage") {
            section.card data-testid="new-user" {
                h2 { (t.get("users.new")) }
                @if !errors.is_empty() { p.field-error role="alert" { (t.get("users.fix_errors")) } }
                form method="post" action="/admin/users" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    div.field { label for="nu-username" { (t.get("login.username")) } input #nu-username name="username" value=(form.username) required; span.field-error { (err("username")) } }
                    div.field { label for="nu-name" { (t.get("account.display_name")) } input #nu-name name="display_name" value=(form.display_name) required; span.field-error { (err("display_name")) } }
                    div.field { label for="nu-password" { (t.get("users.initial_password")) } input #nu-password name="password" type="password" autocomplete="new-password" required; span.field-error { (err("password")) } }
                    div.field { label for="nu-role" { (t.get("account.roles")) }
                        select #nu-role name="role" { @for r in &roles { option value=(r.code) selected[r.code == form.role] { @if lang == Lang::ZhCn { (r.name_zh) } @else { (r.name_en) } } } }
                        span.field-error { (err("roles")) } }
                    div.field { label for="nu-phone" { (t.get("users.phone")) } input #nu-phone name="phone" value=(form.phone) inputmode="tel"; span.field-error { (err("phone")) } }
                    div.field { label for="nu-id" { (t.get("users.id_number")) } input #nu-id name="id_number" value=(form.id_number); span.field-error { (err("id_number")) } }
                    button type="submit" { (t.get("users.create")) }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(state, &ctx, "admin", &t.get("users.title"), content))
}

pub async fn list(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(filter): Query<UserFilter>,
) -> Result<Markup, ApiError> {
    users_page(
        &state,
        lang,
        caller,
        filter,
        NewUserForm::default(),
        Vec::new(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Form(form): Form<NewUserForm>,
) -> Result<Response, ApiError> {
    let roles = vec![form.role.clone()];
    let spec = UserSpec {
        username: form.username.trim(),
        display_name: &form.display_name,
        password: &form.password,
        roles: &roles,
        org_unit_id: None,
        must_change_password: true,
        phone: Some(&form.phone),
        id_number: Some(&form.id_number),
    };
    match create_user(
        state.store(),
        state.vault(),
        &spec,
        &state.settings().auth.argon2,
        state.now_ms(),
    )
    .await
    {
        Ok(id) => {
            let mut r = Redirect::to("/admin/users?created=1").into_response();
            r.extensions_mut()
                .insert(AuditNote::action("user.create").target(format!("user:{id}")));
            Ok(r)
        }
        Err(errors) => {
            let mut r = users_page(
                &state,
                lang,
                caller,
                UserFilter::default(),
                NewUserForm {
                    password: String::new(),
                    ..form
                },
                errors,
            )
            .await?
            .into_response();
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            r.extensions_mut()
                .insert(AuditNote::action("user.create").outcome("rejected"));
            Ok(r)
        }
    }
}

pub async fn roles(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Markup, ApiError> {
    let t = state.i18n().bundle(lang);
    let store = state.store();
    let roles = store.roles().await?;
    let mut grants = Vec::new();
    for r in &roles {
        grants.push(store.role_permissions(r.id).await?);
    }
    let can_edit = caller.can("role.manage");
    let content = html! {
        section.card.wide data-testid="role-matrix" {
            p.muted { (t.get("roles.hint")) }
            table.table.matrix {
                thead { tr { th { (t.get("roles.permission")) } @for r in &roles { th title=(r.code) {
                    @let name = if lang == Lang::ZhCn { r.name_zh.clone() } else { r.name_en.clone() };
                    @if can_edit { a href=(format!("/admin/roles/{}", r.code)) { (name) } } @else { (name) }
                } } } }
                tbody {
                    tr { td { (t.get("account.scope")) } @for r in &roles { td { (t.get(&format!("scope.{}", r.data_scope.as_str()))) } } }
                    tr { td { (t.get("account.totp")) } @for r in &roles { td { @if r.requires_2fa { "✓" } } } }
                    @for p in PERMISSIONS { tr {
                        td { @if lang == Lang::ZhCn { (p.zh) } @else { (p.en) } " " code.muted { (p.code) } }
                        @for g in &grants { td.center { @if g.iter().any(|x| x == p.code) { "●" } } }
                    } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "admin", &t.get("roles.title"), content))
}

/// The edit form of one role: permissions and clear-text fields as checkboxes.
pub async fn role_edit(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    role_form(&state, lang, caller, &code, Vec::new()).await
}

async fn role_form(
    state: &AppState,
    lang: Lang,
    caller: Caller,
    code: &str,
    errors: Vec<FieldError>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let store = state.store();
    let role = store
        .role_by_code(code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no role has the code `{code}`")))?;
    let held = store.role_permissions(role.id).await?;
    let clear = store.role_field_access(role.id).await?;
    let csrf = caller.csrf.clone().unwrap_or_default();
    let content = html! {
        section.card data-testid="role-edit" {
            @if !errors.is_empty() { ul.field-error role="alert" { @for e in &errors { li { (e.message) } } } }
            form method="post" action=(format!("/admin/roles/{}", role.code)) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                div.field { label { "中文名" } input name="name_zh" value=(role.name_zh) required; }
                div.field { label { "English" } input name="name_en" value=(role.name_en) required; }
                div.field { label { (t.get("account.scope")) }
                    select name="data_scope" { @for s in ["own", "team", "branch", "all"] { option value=(s) selected[role.data_scope.as_str() == s] { (t.get(&format!("scope.{s}"))) } } } }
                div.field { label { input type="checkbox" name="requires_2fa" value="1" checked[role.requires_2fa]; " " (t.get("account.totp")) } }
                h3 { (t.get("roles.permission")) }
                div.checks { @for p in PERMISSIONS {
                    label { input type="checkbox" name="permission" value=(p.code) checked[held.iter().any(|h| h == p.code)]; " " @if lang == Lang::ZhCn { (p.zh) } @else { (p.en) } " " code.muted { (p.code) } }
                } }
                h3 { (t.get("roles.clear_fields")) }
                div.checks { @for f in zhudai_domain::access::SENSITIVE_FIELDS {
                    label { input type="checkbox" name="clear_field" value=(f.code) checked[clear.iter().any(|c| c == f.code)]; " " @if lang == Lang::ZhCn { (f.zh) } @else { (f.en) } }
                } }
                button type="submit" { (t.get("roles.save")) }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let title = format!(
        "{} · {}",
        t.get("roles.title"),
        if lang == Lang::ZhCn {
            &role.name_zh
        } else {
            &role.name_en
        }
    );
    let mut r = page(state, &ctx, "admin", &title, content).into_response();
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// Saves the role form through the same rules as `PUT /api/v1/roles/{code}`.
pub async fn role_save(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    axum::extract::Path(code): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let one = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let many = |k: &str| {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let change = crate::api::users::RoleChange {
        name_zh: one("name_zh"),
        name_en: one("name_en"),
        data_scope: one("data_scope"),
        requires_2fa: one("requires_2fa") == "1",
        permissions: many("permission"),
        clear_fields: many("clear_field"),
    };
    let result = crate::api::users::update_role(
        State(state.clone()),
        caller.clone(),
        axum::extract::Path(code.clone()),
        crate::error::ApiJson(change),
    )
    .await;
    match result {
        Ok(resp) => {
            let mut r = Redirect::to("/admin/roles?saved=1").into_response();
            if let Some(note) = resp.extensions().get::<AuditNote>().cloned() {
                r.extensions_mut().insert(note);
            }
            Ok(r)
        }
        Err(ApiError::Validation(errors)) => role_form(&state, lang, caller, &code, errors).await,
        Err(e) => Err(e),
    }
}
