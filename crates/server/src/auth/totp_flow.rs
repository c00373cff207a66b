//! Two-factor enrolment: a secret is created and stored encrypted (not yet enabled), the
//! user scans the QR code, and proves one code to enable it. An enabled second factor
//! cannot be replaced through this flow (that would let a stolen session remove it).

use crate::auth::login::{subject_of_user, totp_aad};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use zhudai_crypto::totp::{enrolment_url, qr_svg, verify, TotpSecret};

/// What the user needs to add the account to an authenticator app.
#[derive(Debug)]
pub struct Enrolment {
    pub otpauth_url: String,
    pub qr_svg: String,
    pub secret_base32: String,
}

pub async fn start(state: &AppState, caller: &Caller) -> Result<Enrolment, ApiError> {
    let user = state
        .store()
        .user_by_id(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the account no longer exists".into()))?;
    if user.totp_enabled {
        return Err(ApiError::Conflict(
            "two-factor authentication is already enabled; ask the security officer to reset it"
                .into(),
        ));
    }
    let secret = TotpSecret::generate().map_err(ApiError::internal)?;
    let b32 = secret.to_base32();
    let row = user.id.to_string();
    let enc = state
        .vault()
        .encrypt_field(Some(&subject_of_user(user.id)), &totp_aad(&row), &b32)
        .await
        .map_err(ApiError::internal)?;
    state
        .store()
        .user_set_totp_secret(user.id, &enc, state.now_ms())
        .await?;
    let url = enrolment_url(&secret, &user.username).map_err(ApiError::internal)?;
    let svg = qr_svg(&url).map_err(ApiError::internal)?;
    Ok(Enrolment {
        otpauth_url: url.to_string(),
        qr_svg: svg,
        secret_base32: b32.to_string(),
    })
}

/// Enables two-factor when `code` is right; false when it is not.
pub async fn confirm(state: &AppState, caller: &Caller, code: &str) -> Result<bool, ApiError> {
    let store = state.store();
    let user = store
        .user_by_id(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the account no longer exists".into()))?;
    if user.totp_enabled {
        return Err(ApiError::Conflict(
            "two-factor authentication is already enabled".into(),
        ));
    }
    let Some(enc) = user.totp_secret_enc.clone() else {
        return Err(ApiError::Conflict("start the enrolment first".into()));
    };
    let row = user.id.to_string();
    let b32 = state
        .vault()
        .decrypt_field(Some(&subject_of_user(user.id)), &totp_aad(&row), &enc)
        .await
        .map_err(ApiError::internal)?;
    let secret = TotpSecret::from_base32(&b32).map_err(ApiError::internal)?;
    let now_s = (state.now_ms() / 1000) as u64;
    let Some(step) = verify(&secret, code, now_s, None).map_err(ApiError::internal)? else {
        return Ok(false);
    };
    store.user_advance_totp_step(user.id, step as i64).await?;
    Ok(store.user_enable_totp(user.id, state.now_ms()).await?)
}
