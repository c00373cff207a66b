//! Identity and access: roles with their permissions, data scope and clear-text field
//! rights; users with password, lockout and TOTP state; browser sessions; API tokens.
//!
//! The store keeps state and makes each change atomic; policy (password rules, lockout
//! threshold and duration, idle timeout, which codes are valid) belongs to the caller,
//! which also passes the time (`now_ms`). Secrets are never stored in clear: passwords as
//! argon2id hashes, session/CSRF/API tokens as SHA-256 hashes, TOTP secrets encrypted by
//! the caller.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which records a role's holder may see.
/// Ordered from narrowest to widest, so the widest of several is their `max`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DataScope {
    /// Records the user owns.
    Own,
    /// Records owned by anyone in the user's team.
    Team,
    /// Records of the user's branch and the teams under it.
    Branch,
    /// Everything.
    All,
}

impl DataScope {
    pub fn as_str(self) -> &'static str {
        match self {
            DataScope::Own => "own",
            DataScope::Team => "team",
            DataScope::Branch => "branch",
            DataScope::All => "all",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "own" => Ok(DataScope::Own),
            "team" => Ok(DataScope::Team),
            "branch" => Ok(DataScope::Branch),
            "all" => Ok(DataScope::All),
            other => Err(StoreError::Invalid(format!("unknown data scope `{other}`"))),
        }
    }
}

/// A user's administrative state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    /// Locked by an administrator until unlocked (a lockout after failed logins is
    /// temporary and shows as [`User::locked_until_ms`] instead).
    Locked,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Locked => "locked",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(UserStatus::Active),
            "locked" => Ok(UserStatus::Locked),
            "disabled" => Ok(UserStatus::Disabled),
            other => Err(StoreError::Invalid(format!(
                "unknown user status `{other}`"
            ))),
        }
    }
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub id: i64,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub data_scope: DataScope,
    /// Seeded by zhudai; an admin may edit it but the UI should not delete it.
    pub is_system: bool,
    pub requires_2fa: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A role to create.
#[derive(Debug, Clone)]
pub struct NewRole<'a> {
    pub code: &'a str,
    pub name_zh: &'a str,
    pub name_en: &'a str,
    pub data_scope: DataScope,
    pub is_system: bool,
    pub requires_2fa: bool,
}

/// The editable part of a role.
#[derive(Debug, Clone)]
pub struct RoleUpdate<'a> {
    pub name_zh: &'a str,
    pub name_en: &'a str,
    pub data_scope: DataScope,
    pub requires_2fa: bool,
}

/// A user. `Debug` leaves out the password hash and the TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub org_unit_id: Option<i64>,
    pub password_hash: String,
    pub status: UserStatus,
    pub failed_logins: i64,
    pub locked_until_ms: Option<i64>,
    /// The TOTP secret, encrypted by the caller.
    pub totp_secret_enc: Option<Vec<u8>>,
    pub totp_enabled: bool,
    /// The last TOTP time step accepted; a code of this step or earlier is a replay.
    pub totp_last_step: i64,
    pub must_change_password: bool,
    pub password_changed_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Ids of the user's roles, ascending.
    pub role_ids: Vec<i64>,
}

impl User {
    /// Whether a failed-login lockout is in force at `now_ms`.
    pub fn is_locked_out(&self, now_ms: i64) -> bool {
        self.locked_until_ms.is_some_and(|t| t > now_ms)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("org_unit_id", &self.org_unit_id)
            .field("password_hash", &"[REDACTED]")
            .field("status", &self.status)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until_ms", &self.locked_until_ms)
            .field(
                "totp_secret_enc",
                &self.totp_secret_enc.as_ref().map(|_| "[REDACTED]"),
            )
            .field("totp_enabled", &self.totp_enabled)
            .field("totp_last_step", &self.totp_last_step)
            .field("must_change_password", &self.must_change_password)
            .field("password_changed_at_ms", &self.password_changed_at_ms)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .field("role_ids", &self.role_ids)
            .finish()
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub org_unit_id: Option<i64>,
    pub password_hash: &'a str,
    pub must_change_password: bool,
    pub role_ids: &'a [i64],
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate<'a> {
    pub display_name: Option<&'a str>,
    /// `Some(None)` detaches the user from any org unit.
    pub org_unit_id: Option<Option<i64>>,
    pub status: Option<UserStatus>,
    /// Replaces the user's roles.
    pub role_ids: Option<&'a [i64]>,
}

/// Which users to list.
#[derive(Debug, Clone)]
pub struct UserQuery<'a> {
    /// Case-insensitive substring of the username or display name.
    pub text: Option<&'a str>,
    pub offset: i64,
    pub limit: i64,
}

/// One page of users and how many match in all.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: i64,
}

/// The state after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedLogin {
    /// Consecutive failures, this one included.
    pub failed_logins: i64,
    /// Set when this or an earlier failure reached the threshold.
    pub locked_until_ms: Option<i64>,
}

/// A browser session. Only hashes of the cookie and CSRF tokens are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: i64,
    pub token_hash: String,
    pub user_id: i64,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
    pub absolute_expires_at_ms: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub csrf_token_hash: String,
    pub revoked_at_ms: Option<i64>,
}

impl Session {
    /// Not revoked, before its absolute expiry, and seen within `idle_timeout_ms`.
    pub fn is_active(&self, now_ms: i64, idle_timeout_ms: i64) -> bool {
        self.revoked_at_ms.is_none()
            && now_ms < self.absolute_expires_at_ms
            && now_ms < self.last_seen_ms.saturating_add(idle_timeout_ms)
    }
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub absolute_expires_at_ms: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub csrf_token_hash: &'a str,
}

/// A bearer token for API access. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub token_hash: String,
    pub user_id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

impl ApiToken {
    /// Not revoked and not expired at `now_ms`.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// An API token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub name: &'a str,
    /// Scope names; none may be empty or contain whitespace.
    pub scopes: &'a [&'a str],
    pub expires_at_ms: Option<i64>,
}

fn flag(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

fn role_from_row(row: &AnyRow) -> Result<Role, StoreError> {
    Ok(Role {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name_zh: row.try_get("name_zh")?,
        name_en: row.try_get("name_en")?,
        data_scope: DataScope::parse(&row.try_get::<String, _>("data_scope")?)?,
        is_system: flag(row, "is_system")?,
        requires_2fa: flag(row, "requires_2fa")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

const ROLE_COLUMNS: &str =
    "id, code, name_zh, name_en, data_scope, is_system, requires_2fa, created_at_ms, updated_at_ms";

const USER_COLUMNS: &str =
    "id, username, display_name, org_unit_id, password_hash, status, failed_logins, \
    locked_until_ms, totp_secret_enc, totp_enabled, totp_last_step, must_change_password, \
    password_changed_at_ms, created_at_ms, updated_at_ms";

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        org_unit_id: row.try_get("org_unit_id")?,
        password_hash: row.try_get("password_hash")?,
        status: UserStatus::parse(&row.try_get::<String, _>("status")?)?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until_ms: row.try_get("locked_until_ms")?,
        totp_secret_enc: row.try_get("totp_secret_enc")?,
        totp_enabled: flag(row, "totp_enabled")?,
        totp_last_step: row.try_get("totp_last_step")?,
        must_change_password: flag(row, "must_change_password")?,
        password_changed_at_ms: row.try_get("password_changed_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        role_ids: Vec::new(),
    })
}

const SESSION_COLUMNS: &str =
    "id, token_hash, user_id, created_at_ms, last_seen_ms, absolute_expires_at_ms, \
    ip, user_agent, csrf_token_hash, revoked_at_ms";

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        absolute_expires_at_ms: row.try_get("absolute_expires_at_ms")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        csrf_token_hash: row.try_get("csrf_token_hash")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, token_hash, user_id, name, scopes, created_at_ms, expires_at_ms, revoked_at_ms, last_used_ms";

fn token_from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

/// `%`, `_` and `\` made literal for `LIKE … ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn not_found_unless(affected: u64) -> Result<(), StoreError> {
    if affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

async fn replace_strings(
    tx: &mut crate::writer::WriteTx,
    table: &str,
    column: &str,
    role_id: i64,
    values: &[&str],
) -> Result<(), StoreError> {
    sqlx::query(&format!("DELETE FROM {table} WHERE role_id = $1"))
        .bind(role_id)
        .execute(&mut **tx)
        .await?;
    let unique: BTreeSet<&str> = values.iter().copied().collect();
    for value in unique {
        sqlx::query(&format!(
            "INSERT INTO {table} (role_id, {column}) VALUES ($1, $2)"
        ))
        .bind(role_id)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn replace_user_roles(
    tx: &mut crate::writer::WriteTx,
    user_id: i64,
    role_ids: &[i64],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let unique: BTreeSet<i64> = role_ids.iter().copied().collect();
    for role_id in unique {
        sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)")
            .bind(user_id)
            .bind(role_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    // ----- roles -----

    /// Creates a role; a taken code is a unique violation on `roles_code_key` / `roles.code`.
    pub async fn role_create(&self, role: &NewRole<'_>, now_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO roles (code, name_zh, name_en, data_scope, is_system, requires_2fa, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(role.code)
        .bind(role.name_zh)
        .bind(role.name_en)
        .bind(role.data_scope.as_str())
        .bind(i64::from(role.is_system))
        .bind(i64::from(role.requires_2fa))
        .bind(now_ms)
        .fetch_one(self.writer())
        .await?;
        Ok(row.try_get("id")?)
    }

    pub async fn role_update(
        &self,
        id: i64,
        update: &RoleUpdate<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE roles SET name_zh = $2, name_en = $3, data_scope = $4, requires_2fa = $5, updated_at_ms = $6
             WHERE id = $1",
        )
        .bind(id)
        .bind(update.name_zh)
        .bind(update.name_en)
        .bind(update.data_scope.as_str())
        .bind(i64::from(update.requires_2fa))
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        not_found_unless(done.rows_affected())
    }

    /// All roles, by id.
    pub async fn roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY id"))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(role_from_row).collect()
    }

    pub async fn role_by_code(&self, code: &str) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM roles WHERE code = $1"))
            .bind(code)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(role_from_row).transpose()
    }

    /// Replaces the permissions of a role.
    pub async fn role_set_permissions(
        &self,
        role_id: i64,
        permissions: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.role_replace_strings(
            role_id,
            "role_permissions",
            "permission",
            permissions,
            now_ms,
        )
        .await
    }

    /// Replaces the sensitive fields a role may see in clear.
    pub async fn role_set_field_access(
        &self,
        role_id: i64,
        fields: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.role_replace_strings(role_id, "role_field_access", "field", fields, now_ms)
            .await
    }

    async fn role_replace_strings(
        &self,
        role_id: i64,
        table: &str,
        column: &str,
        values: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Touching the role first takes its row lock, so two concurrent replacements of
        // the same role's set serialise instead of interleaving their deletes and inserts.
        let done = sqlx::query("UPDATE roles SET updated_at_ms = $2 WHERE id = $1")
            .bind(role_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        not_found_unless(done.rows_affected())?;
        replace_strings(&mut tx, table, column, role_id, values).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The permissions of a role, sorted.
    pub async fn role_permissions(&self, role_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT permission FROM role_permissions WHERE role_id = $1 ORDER BY permission",
        )
        .bind(role_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("permission")?)).collect()
    }

    /// The fields a role may see in clear, sorted.
    pub async fn role_field_access(&self, role_id: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT field FROM role_field_access WHERE role_id = $1 ORDER BY field")
                .bind(role_id)
                .fetch_all(self.reader())
                .await?;
        rows.iter().map(|r| Ok(r.try_get("field")?)).collect()
    }

    /// The union of the permissions of all the user's roles.
    pub async fn user_permissions(&self, user_id: i64) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.permission FROM user_roles ur
             JOIN role_permissions p ON p.role_id = ur.role_id
             WHERE ur.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("permission")?)).collect()
    }

    /// The union of the clear-text fields of all the user's roles.
    pub async fn user_field_access(&self, user_id: i64) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT f.field FROM user_roles ur
             JOIN role_field_access f ON f.role_id = ur.role_id
             WHERE ur.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("field")?)).collect()
    }

    /// The roles a user holds, by id.
    pub async fn user_roles(&self, user_id: i64) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1 ORDER BY r.id",
            ROLE_COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(user_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(role_from_row).collect()
    }

    // ----- users -----

    /// Creates a user holding `role_ids`. A taken username is a unique violation on
    /// `users_username_key` / `users.username`; an unknown role or org unit a foreign-key
    /// violation.
    pub async fn user_create(&self, user: &NewUser<'_>, now_ms: i64) -> Result<i64, StoreError> {
        self.user_create_with_pii(user, &crate::staff::StaffPii::default(), now_ms)
            .await
    }

    /// Creates a user, their roles and their encrypted personal fields in one transaction.
    pub async fn user_create_with_pii(
        &self,
        user: &NewUser<'_>,
        pii: &crate::staff::StaffPii,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO users (username, display_name, org_unit_id, password_hash, status, must_change_password,
                                password_changed_at_ms, created_at_ms, updated_at_ms,
                                phone_enc, phone_bidx, id_number_enc, id_number_bidx)
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $6, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.org_unit_id)
        .bind(user.password_hash)
        .bind(i64::from(user.must_change_password))
        .bind(now_ms)
        .bind(pii.phone_enc.clone())
        .bind(pii.phone_bidx.clone())
        .bind(pii.id_number_enc.clone())
        .bind(pii.id_number_bidx.clone())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        replace_user_roles(&mut tx, id, user.role_ids).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        self.user_with_roles(row).await
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.reader())
        .await?;
        self.user_with_roles(row).await
    }

    async fn user_with_roles(&self, row: Option<AnyRow>) -> Result<Option<User>, StoreError> {
        let Some(row) = row else {
            return Ok(None);
        };
        let mut user = user_from_row(&row)?;
        user.role_ids = self
            .role_ids_of(&[user.id])
            .await?
            .remove(&user.id)
            .unwrap_or_default();
        Ok(Some(user))
    }

    /// Role ids of each of `user_ids`.
    async fn role_ids_of(&self, user_ids: &[i64]) -> Result<BTreeMap<i64, Vec<i64>>, StoreError> {
        let mut map: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        if user_ids.is_empty() {
            return Ok(map);
        }
        let placeholders: Vec<String> = (1..=user_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT user_id, role_id FROM user_roles WHERE user_id IN ({}) ORDER BY user_id, role_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in user_ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(self.reader()).await? {
            map.entry(row.try_get("user_id")?)
                .or_default()
                .push(row.try_get("role_id")?);
        }
        Ok(map)
    }

    /// A page of users ordered by username, with the total number matching.
    pub async fn user_list(&self, q: &UserQuery<'_>) -> Result<UserPage, StoreError> {
        let pattern = q
            .text
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| format!("%{}%", like_escape(&t.to_lowercase())));
        let filter = if pattern.is_some() {
            " WHERE LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\'"
        } else {
            ""
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM users{filter}");
        let mut count = sqlx::query(&count_sql);
        if let Some(p) = &pattern {
            count = count.bind(p.clone());
        }
        let total: i64 = count.fetch_one(self.reader()).await?.try_get("n")?;

        let (limit_at, offset_at) = if pattern.is_some() { (2, 3) } else { (1, 2) };
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users{filter} ORDER BY username LIMIT ${limit_at} OFFSET ${offset_at}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(p) = &pattern {
            query = query.bind(p.clone());
        }
        let rows = query
            .bind(q.limit.clamp(0, 1000))
            .bind(q.offset.max(0))
            .fetch_all(self.reader())
            .await?;
        let mut users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let mut roles = self.role_ids_of(&ids).await?;
        for user in &mut users {
            user.role_ids = roles.remove(&user.id).unwrap_or_default();
        }
        Ok(UserPage { users, total })
    }

    /// Applies `update` in one transaction.
    pub async fn user_update(
        &self,
        id: i64,
        update: &UserUpdate<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET updated_at_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        not_found_unless(done.rows_affected())?;
        if let Some(name) = update.display_name {
            sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(org) = update.org_unit_id {
            sqlx::query("UPDATE users SET org_unit_id = $2 WHERE id = $1")
                .bind(id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(status) = update.status {
            sqlx::query("UPDATE users SET status = $2 WHERE id = $1")
                .bind(id)
                .bind(status.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(role_ids) = update.role_ids {
            replace_user_roles(&mut tx, id, role_ids).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new password hash; `must_change` forces a change at next login (e.g. after
    /// an admin reset).
    pub async fn user_set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        must_change: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, must_change_password = $3, password_changed_at_ms = $4,
                              updated_at_ms = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(password_hash)
        .bind(i64::from(must_change))
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        not_found_unless(done.rows_affected())
    }

    /// Counts a failed login in one atomic statement. When the count reaches `threshold`
    /// the user is locked out until `lock_until_ms`. The count keeps growing until
    /// [`Store::user_reset_failed_logins`], so a failure after a lockout ran out locks again.
    pub async fn user_record_failed_login(
        &self,
        id: i64,
        threshold: i64,
        lock_until_ms: i64,
        now_ms: i64,
    ) -> Result<FailedLogin, StoreError> {
        let row = sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1,
                 locked_until_ms = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until_ms END,
                 updated_at_ms = $4
             WHERE id = $1
             RETURNING failed_logins, locked_until_ms",
        )
        .bind(id)
        .bind(threshold)
        .bind(lock_until_ms)
        .bind(now_ms)
        .fetch_optional(self.writer())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(FailedLogin {
            failed_logins: row.try_get("failed_logins")?,
            locked_until_ms: row.try_get("locked_until_ms")?,
        })
    }

    /// Clears the failure count and any lockout (after a successful login, or by an admin).
    pub async fn user_reset_failed_logins(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until_ms = NULL, updated_at_ms = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        not_found_unless(done.rows_affected())
    }

    /// Stores a new (caller-encrypted) TOTP secret, not yet enabled: enrolment is finished
    /// by [`Store::user_enable_totp`] once the user proves a code.
    pub async fn user_set_totp_secret(
        &self,
        id: i64,
        secret_enc: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret_enc = $2, totp_enabled = 0, totp_last_step = 0, updated_at_ms = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(secret_enc.to_vec())
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        not_found_unless(done.rows_affected())
    }

    /// Enables TOTP; false when the user has no secret.
    pub async fn user_enable_totp(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = 1, updated_at_ms = $2 WHERE id = $1 AND totp_secret_enc IS NOT NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Disables TOTP and forgets the secret.
    pub async fn user_disable_totp(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = 0, totp_secret_enc = NULL, totp_last_step = 0, updated_at_ms = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        not_found_unless(done.rows_affected())
    }

    /// Records that a TOTP code of time step `step` was used, only if `step` is later than
    /// any used before. A single conditional statement, so of two concurrent logins with
    /// the same code exactly one gets `true`; `false` means a replay.
    pub async fn user_advance_totp_step(&self, id: i64, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
        )
        .bind(id)
        .bind(step)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ----- sessions -----

    pub async fn session_create(&self, s: &NewSession<'_>, now_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, last_seen_ms, absolute_expires_at_ms, ip,
                                   user_agent, csrf_token_hash)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(s.token_hash)
        .bind(s.user_id)
        .bind(now_ms)
        .bind(s.absolute_expires_at_ms)
        .bind(s.ip)
        .bind(s.user_agent)
        .bind(s.csrf_token_hash)
        .fetch_one(self.writer())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The session with this token hash, revoked or expired ones included: check
    /// [`Session::is_active`].
    pub async fn session_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// [`session_by_token_hash`](Self::session_by_token_hash) with the current access
    /// stamp (see migration 0017) read in the same statement: a per-user cache of roles
    /// and permissions is valid while the stamp is unchanged.
    pub async fn session_by_token_hash_stamped(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Session, i64)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, (SELECT n FROM access_stamp WHERE id = 1) AS access_stamp
             FROM sessions WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        match row {
            Some(r) => Ok(Some((session_from_row(&r)?, r.try_get("access_stamp")?))),
            None => Ok(None),
        }
    }

    /// The access stamp alone (see [`session_by_token_hash_stamped`](Self::session_by_token_hash_stamped)).
    pub async fn access_stamp(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT n FROM access_stamp WHERE id = 1")
                .fetch_one(self.reader())
                .await?,
        )
    }

    /// Moves `last_seen_ms` forward (never back); false when the session is revoked or
    /// gone (or `now_ms` is before its last sighting).
    pub async fn session_touch(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET last_seen_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL AND last_seen_ms <= $2",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes one session; false when it was already revoked or does not exist.
    pub async fn session_revoke(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every session of a user ("log out everywhere"), except `keep` (the current
    /// one) when given. Returns how many were revoked.
    pub async fn session_revoke_all(
        &self,
        user_id: i64,
        keep: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $2
             WHERE user_id = $1 AND revoked_at_ms IS NULL AND id <> $3",
        )
        .bind(user_id)
        .bind(now_ms)
        .bind(keep.unwrap_or(0))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// A user's sessions that are active at `now_ms` (see [`Session::is_active`]), newest first.
    pub async fn sessions_active(
        &self,
        user_id: i64,
        now_ms: i64,
        idle_timeout_ms: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions
             WHERE user_id = $1 AND revoked_at_ms IS NULL AND absolute_expires_at_ms > $2 AND last_seen_ms > $3
             ORDER BY id DESC"
        ))
        .bind(user_id)
        .bind(now_ms)
        .bind(now_ms.saturating_sub(idle_timeout_ms))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    // ----- API tokens -----

    pub async fn api_token_create(
        &self,
        t: &NewApiToken<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        if let Some(bad) = t
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(StoreError::Invalid(format!("invalid token scope `{bad}`")));
        }
        let row = sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, name, scopes, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(t.token_hash)
        .bind(t.user_id)
        .bind(t.name)
        .bind(t.scopes.join(" "))
        .bind(now_ms)
        .bind(t.expires_at_ms)
        .fetch_one(self.writer())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The token with this hash, revoked or expired ones included: check [`ApiToken::is_usable`].
    pub async fn api_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// [`api_token_by_hash`](Self::api_token_by_hash) with the access stamp.
    pub async fn api_token_by_hash_stamped(
        &self,
        token_hash: &str,
    ) -> Result<Option<(ApiToken, i64)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, (SELECT n FROM access_stamp WHERE id = 1) AS access_stamp
             FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        match row {
            Some(r) => Ok(Some((token_from_row(&r)?, r.try_get("access_stamp")?))),
            None => Ok(None),
        }
    }

    /// All tokens of a user, newest first.
    pub async fn api_tokens_of_user(&self, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC"
        ))
        .bind(user_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; false when it was already revoked or does not exist.
    pub async fn api_token_revoke(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a use of the token (moves `last_used_ms` forward, never back).
    pub async fn api_token_touch(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_ms = $2 WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
        )
        .bind(id)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
