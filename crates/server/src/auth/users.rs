//! Creating and changing users with every rule checked: username form, password policy,
//! known roles, separation of duties across the roles held, and valid personal fields
//! (stored encrypted under the person's own key, with blind indexes).

use crate::error::FieldError;
use crate::vault::{FieldAad, Vault};
use std::collections::BTreeSet;
use zhudai_crypto::blind_index::FieldKind;
use zhudai_crypto::password::{hash_password, Argon2Params, PasswordPolicy};
use zhudai_domain::access::sod_violations;
use zhudai_domain::ident::{Mobile, ResidentId};
use zhudai_store::identity::NewUser;
use zhudai_store::staff::StaffPii;
use zhudai_store::Store;

/// A user to create.
#[derive(Debug)]
pub struct UserSpec<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub roles: &'a [String],
    pub org_unit_id: Option<i64>,
    pub must_change_password: bool,
    pub phone: Option<&'a str>,
    pub id_number: Option<&'a str>,
}

/// The data key subject of a staff member: deleting it shreds their personal fields.
pub fn staff_subject(username: &str) -> String {
    format!("staff:{username}")
}

/// Problems with a username, or none.
pub fn check_username(username: &str) -> Option<String> {
    let ok_len = (3..=64).contains(&username.chars().count());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!ok_len || !ok_chars)
        .then(|| "a username is 3–64 characters of letters, digits, `_`, `.` or `-`".to_owned())
}

/// Resolves role codes to ids and checks separation of duties over their union.
pub async fn check_roles(
    store: &Store,
    roles: &[String],
    errors: &mut Vec<FieldError>,
) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut permissions = BTreeSet::new();
    if roles.is_empty() {
        errors.push(FieldError::new(
            "roles",
            "required",
            "give at least one role",
        ));
    }
    for code in roles {
        match store.role_by_code(code).await {
            Ok(Some(role)) => {
                ids.push(role.id);
                match store.role_permissions(role.id).await {
                    Ok(p) => permissions.extend(p),
                    Err(e) => errors.push(FieldError::new("roles", "internal", e.to_string())),
                }
            }
            Ok(None) => errors.push(FieldError::new(
                "roles",
                "unknown",
                format!("no role has the code `{code}`"),
            )),
            Err(e) => errors.push(FieldError::new("roles", "internal", e.to_string())),
        }
    }
    for rule in sod_violations(permissions.iter().map(String::as_str)) {
        errors.push(FieldError::new(
            "roles",
            rule.code,
            format!("separation of duties: {}", rule.en),
        ));
    }
    ids
}

/// Creates the user, or returns every problem found (nothing is written then).
pub async fn create_user(
    store: &Store,
    vault: &Vault,
    spec: &UserSpec<'_>,
    argon: &Argon2Params,
    now_ms: i64,
) -> Result<i64, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(p) = check_username(spec.username) {
        errors.push(FieldError::new("username", "invalid", p));
    }
    if spec.display_name.trim().is_empty() {
        errors.push(FieldError::new(
            "display_name",
            "required",
            "enter the person's name",
        ));
    }
    for v in PasswordPolicy::default().check(spec.password, spec.username) {
        errors.push(FieldError::new("password", v.code(), v.message_en()));
    }
    let phone = match spec.phone.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => match Mobile::parse(p) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.push(FieldError::new("phone", e.code(), e.to_string()));
                None
            }
        },
        None => None,
    };
    let id_number = match spec.id_number.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => match ResidentId::parse(p) {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(FieldError::new("id_number", e.code(), e.to_string()));
                None
            }
        },
        None => None,
    };
    let role_ids = check_roles(store, spec.roles, &mut errors).await;
    if !errors.is_empty() {
        return Err(errors);
    }
    let internal = |e: String| vec![FieldError::new("body", "internal", e)];
    let subject = staff_subject(spec.username);
    let mut pii = StaffPii::default();
    if let Some(m) = &phone {
        let aad = FieldAad::new("users", "phone_enc", spec.username);
        pii.phone_enc = Some(
            vault
                .encrypt_field(Some(&subject), &aad, m.as_str())
                .await
                .map_err(|e| internal(e.to_string()))?,
        );
        pii.phone_bidx = Some(vault.blind_index(FieldKind::Phone, m.as_str()));
    }
    if let Some(id) = &id_number {
        let aad = FieldAad::new("users", "id_number_enc", spec.username);
        pii.id_number_enc = Some(
            vault
                .encrypt_field(Some(&subject), &aad, id.as_str())
                .await
                .map_err(|e| internal(e.to_string()))?,
        );
        pii.id_number_bidx = Some(vault.blind_index(FieldKind::IdNumber, id.as_str()));
    }
    let password = spec.password.to_owned();
    let params = *argon;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password, &params))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    store
        .user_create_with_pii(
            &NewUser {
                username: spec.username,
                display_name: spec.display_name.trim(),
                org_unit_id: spec.org_unit_id,
                password_hash: &hash,
                must_change_password: spec.must_change_password,
                role_ids: &role_ids,
            },
            &pii,
            now_ms,
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation("users_username_key", "users.username") {
                vec![FieldError::new(
                    "username",
                    "taken",
                    format!("`{}` is already taken", spec.username),
                )]
            } else if e.violation().is_some() {
                vec![FieldError::new(
                    "org_unit_id",
                    "unknown",
                    "no such organisation unit",
                )]
            } else {
                internal(e.to_string())
            }
        })
}

/// Decrypts one personal field of a user for display to someone allowed to see it.
pub async fn reveal(
    store: &Store,
    vault: &Vault,
    user_id: i64,
    field: &str,
) -> Result<Option<String>, String> {
    let Some(user) = store.user_by_id(user_id).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(pii) = store.user_pii(user_id).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let (column, enc) = match field {
        "phone" => ("phone_enc", pii.phone_enc),
        "id_number" => ("id_number_enc", pii.id_number_enc),
        _ => return Ok(None),
    };
    let Some(enc) = enc else { return Ok(None) };
    let aad = FieldAad::new("users", column, &user.username);
    let clear = vault
        .decrypt_field(Some(&staff_subject(&user.username)), &aad, &enc)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(clear.to_string()))
}
