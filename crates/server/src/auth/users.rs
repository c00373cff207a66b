//! Creating users with every rule checked: username form, password policy, known roles,
//! and separation of duties across the roles given.

use zhudai_crypto::password::{hash_password, Argon2Params, PasswordPolicy};
use zhudai_domain::access::sod_violations;
use zhudai_store::identity::NewUser;
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

/// Creates the user, or returns every problem found (nothing is written then).
pub async fn create_user(
    store: &Store,
    spec: &UserSpec<'_>,
    argon: &Argon2Params,
    now_ms: i64,
) -> Result<i64, Vec<String>> {
    let mut problems = Vec::new();
    if let Some(p) = check_username(spec.username) {
        problems.push(format!("username: {p}"));
    }
    for v in PasswordPolicy::default().check(spec.password, spec.username) {
        problems.push(format!("password: {}", v.message_en()));
    }
    let mut role_ids = Vec::new();
    let mut permissions = std::collections::BTreeSet::new();
    for code in spec.roles {
        match store.role_by_code(code).await {
            Ok(Some(role)) => {
                role_ids.push(role.id);
                match store.role_permissions(role.id).await {
                    Ok(p) => permissions.extend(p),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            Ok(None) => problems.push(format!("role: no role has the code `{code}`")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if spec.roles.is_empty() {
        problems.push("role: give at least one role".into());
    }
    for rule in sod_violations(permissions.iter().map(String::as_str)) {
        problems.push(format!(
            "role: separation of duties ({}): {}",
            rule.code, rule.en
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let password = spec.password.to_owned();
    let params = *argon;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password, &params))
        .await
        .map_err(|e| vec![e.to_string()])?
        .map_err(|e| vec![e.to_string()])?;
    store
        .user_create(
            &NewUser {
                username: spec.username,
                display_name: spec.display_name,
                org_unit_id: spec.org_unit_id,
                password_hash: &hash,
                must_change_password: spec.must_change_password,
                role_ids: &role_ids,
            },
            now_ms,
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation("users_username_key", "users.username") {
                vec![format!("username: `{}` is already taken", spec.username)]
            } else {
                vec![e.to_string()]
            }
        })
}
