//! Signing in: password (argon2id), lockout after repeated failures, per-address
//! throttling, TOTP two-factor with replay protection, and session creation.

use crate::auth::{csrf_for, token_hash};
use crate::state::AppState;
use crate::vault::FieldAad;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use zhudai_crypto::password::{hash_password, verify_password, Argon2Params, PasswordPolicy};
use zhudai_store::identity::{NewSession, UserStatus};

/// Sign-in policy; every number is a setting.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub lockout_threshold: i64,
    pub lockout_duration: Duration,
    /// Sign-in attempts allowed per source address per minute.
    pub attempts_per_minute: u32,
    /// Roles marked `requires_2fa` must enrol before doing anything else.
    pub enforce_2fa: bool,
    pub argon2: Argon2Params,
    pub password_policy: PasswordPolicy,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// Sensitive-field reveals allowed per user per hour.
    pub reveals_per_hour: i64,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(15 * 60),
            attempts_per_minute: 30,
            enforce_2fa: true,
            argon2: Argon2Params::default(),
            password_policy: PasswordPolicy::default(),
            cookie_secure: false,
            reveals_per_hour: 30,
        }
    }
}

impl AuthPolicy {
    pub fn idle_timeout_ms(&self) -> i64 {
        self.idle_timeout.as_millis() as i64
    }
}

/// Per-address attempt counter (in memory: it slows guessing from one address; the
/// per-account lockout in the database is what holds across instances).
#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl Throttle {
    /// Counts an attempt; false when the address is over its budget for this minute.
    pub fn allow(&self, ip: IpAddr, now_ms: i64, per_minute: u32) -> bool {
        let Ok(mut map) = self.windows.lock() else {
            return true;
        };
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now_ms - *start < 60_000);
        }
        let entry = map.entry(ip).or_insert((now_ms, 0));
        if now_ms - entry.0 >= 60_000 {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
        entry.1 <= per_minute
    }
}

/// What the user typed.
#[derive(Debug)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub totp: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// A new session.
#[derive(Debug)]
pub struct SignedIn {
    pub user_id: i64,
    pub username: String,
    pub token: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

/// Why signing in failed. Unknown user and wrong password look the same to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    Invalid,
    Locked { until_ms: i64 },
    Disabled,
    TotpRequired,
    TotpInvalid,
    Throttled,
    Internal(String),
}

impl LoginError {
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::Invalid => "invalid_credentials",
            LoginError::Locked { .. } => "locked",
            LoginError::Disabled => "disabled",
            LoginError::TotpRequired => "totp_required",
            LoginError::TotpInvalid => "totp_invalid",
            LoginError::Throttled => "throttled",
            LoginError::Internal(_) => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            LoginError::Invalid => "the username or password is wrong".into(),
            LoginError::Locked { .. } => "too many failed attempts: the account is locked for a while; try again later or ask an administrator".into(),
            LoginError::Disabled => "the account is disabled; ask an administrator".into(),
            LoginError::TotpRequired => "enter the 6-digit code from your authenticator app".into(),
            LoginError::TotpInvalid => "the two-factor code is wrong or was already used".into(),
            LoginError::Throttled => "too many sign-in attempts from this address; wait a minute".into(),
            LoginError::Internal(_) => "sign-in failed because of an internal error".into(),
        }
    }
}

/// A hash that never verifies, checked for unknown users so they take as long as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J4moa2MM0/6uf3HbY2Tf5Fux8JIBTwIhmhxGRE8EAQ";

/// Where a user's TOTP secret lives, bound into its ciphertext.
pub fn totp_aad(row: &str) -> FieldAad<'_> {
    FieldAad::new("users", "totp_secret_enc", row)
}

pub fn subject_of_user(user_id: i64) -> String {
    format!("user:{user_id}")
}

async fn verify(password: String, hash: String) -> Result<bool, LoginError> {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?
        .map_err(|e| LoginError::Internal(e.to_string()))
}

/// Hashes a password off the async threads (argon2id is deliberately slow).
pub async fn hash(password: String, params: Argon2Params) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_password(&password, &params))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

pub async fn login(state: &AppState, creds: &Credentials<'_>) -> Result<SignedIn, LoginError> {
    let policy = &state.settings().auth;
    let now = state.now_ms();
    if let Some(ip) = creds.ip {
        if !state.throttle().allow(ip, now, policy.attempts_per_minute) {
            return Err(LoginError::Throttled);
        }
    }
    let store = state.store();
    let internal = |e: zhudai_store::StoreError| LoginError::Internal(e.to_string());
    let Some(user) = store
        .user_by_username(creds.username.trim())
        .await
        .map_err(internal)?
    else {
        let _ = verify(creds.password.to_owned(), DUMMY_HASH.to_owned()).await;
        return Err(LoginError::Invalid);
    };
    if let Some(until) = user.locked_until_ms.filter(|u| *u > now) {
        return Err(LoginError::Locked { until_ms: until });
    }
    let lock_until = now + policy.lockout_duration.as_millis() as i64;
    if !verify(creds.password.to_owned(), user.password_hash.clone()).await? {
        let failed = store
            .user_record_failed_login(user.id, policy.lockout_threshold, lock_until, now)
            .await
            .map_err(internal)?;
        return Err(match failed.locked_until_ms {
            Some(until) if until > now => LoginError::Locked { until_ms: until },
            _ => LoginError::Invalid,
        });
    }
    if user.status != UserStatus::Active {
        return Err(LoginError::Disabled);
    }
    if user.totp_enabled {
        let Some(code) = creds.totp.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(LoginError::TotpRequired);
        };
        let secret_enc = user.totp_secret_enc.clone().unwrap_or_default();
        let row = user.id.to_string();
        let secret = state
            .vault()
            .decrypt_field(
                Some(&subject_of_user(user.id)),
                &totp_aad(&row),
                &secret_enc,
            )
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let secret = zhudai_crypto::totp::TotpSecret::from_base32(&secret)
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let last = u64::try_from(user.totp_last_step).ok().filter(|s| *s > 0);
        let step = zhudai_crypto::totp::verify(&secret, code, (now / 1000) as u64, last)
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let accepted = match step {
            Some(step) => store
                .user_advance_totp_step(user.id, step as i64)
                .await
                .map_err(internal)?,
            None => false,
        };
        if !accepted {
            store
                .user_record_failed_login(user.id, policy.lockout_threshold, lock_until, now)
                .await
                .map_err(internal)?;
            return Err(LoginError::TotpInvalid);
        }
    }
    store
        .user_reset_failed_logins(user.id, now)
        .await
        .map_err(internal)?;
    let (token, _) = zhudai_crypto::tokens::Token::generate()
        .map_err(|e| LoginError::Internal(e.to_string()))?;
    let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
    let csrf = csrf_for(&token);
    let expires_at_ms = now + policy.absolute_timeout.as_millis() as i64;
    let ip = creds.ip.map(|i| i.to_string());
    store
        .session_create(
            &NewSession {
                token_hash: &token_hash(&token),
                user_id: user.id,
                absolute_expires_at_ms: expires_at_ms,
                ip: ip.as_deref(),
                user_agent: creds.user_agent.map(|u| &u[..u.len().min(300)]),
                csrf_token_hash: &token_hash(&csrf),
            },
            now,
        )
        .await
        .map_err(internal)?;
    Ok(SignedIn {
        user_id: user.id,
        username: user.username,
        token,
        csrf,
        expires_at_ms,
    })
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(state: &AppState, token: &str) -> String {
    let policy = &state.settings().auth;
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        crate::auth::SESSION_COOKIE,
        policy.absolute_timeout.as_secs(),
        if policy.cookie_secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        crate::auth::SESSION_COOKIE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_counts_per_address_per_minute() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| t.allow(a, 0, 3)));
        assert!(!t.allow(a, 1_000, 3), "fourth attempt in the minute");
        assert!(t.allow(b, 1_000, 3), "another address has its own budget");
        assert!(t.allow(a, 61_000, 3), "a new minute resets the budget");
    }
}
