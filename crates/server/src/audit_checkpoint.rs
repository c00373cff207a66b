//! Signed checkpoints of the audit chain and the verification that uses them.
//!
//! * **The signing key** is an ed25519 key made on first use. Its secret is encrypted with
//!   the vault's system data key (bound to the key's own row, so a ciphertext copied to
//!   another row does not decrypt) and stored by
//!   [`zhudai_store::Store::audit_signing_key_init`]; several instances starting at once
//!   all end up with the same key.
//! * **Which public keys are trusted.** A public key in `audit_signing_keys` is trusted
//!   only when its stored secret decrypts with the vault to the matching private key: a
//!   row inserted by someone with database access but without the master key is not.
//!   Checkpoints are verified against those keys before the chain is walked.
//! * **Signing** ([`sign_now`]) first re-walks the records added since the newest trusted
//!   checkpoint, so a tampered head is never blessed with a signature.
//! * **Schedule.** The job kind [`JOB_KIND`] signs the head once an hour: the server
//!   enqueues the current hour's job at start ([`schedule`]); each run enqueues the next
//!   hour's before signing. Dedupe keys per hour make several instances enqueue one job.

use crate::state::AppState;
use crate::vault::{FieldAad, Vault, VaultError};
use serde::Serialize;
use utoipa::ToSchema;
use zeroize::Zeroizing;
use zhudai_crypto::audit_chain::{
    sign_checkpoint, verify_checkpoint, BreakKind, ChainBreak, ChainVerifier, Checkpoint,
    CheckpointSigningKey,
};
use zhudai_store::audit::{AuditFilter, VERIFY_PAGE_SIZE};
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::{Store, StoreError};

/// The job kind that signs a checkpoint.
pub const JOB_KIND: &str = "audit.checkpoint";
const HOUR_MS: i64 = 3_600_000;
/// Where the encrypted secret lives, bound into its ciphertext.
const KEY_TABLE: &str = "audit_signing_keys";
const KEY_COLUMN: &str = "secret_enc";
/// Records searched after a broken link for the record it points to (a reorder is local).
const REORDER_LOOKAHEAD: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("audit storage: {0}")]
    Store(#[from] StoreError),
    #[error("the audit signing key cannot be used: {0}")]
    Vault(#[from] VaultError),
    #[error("the audit signing key is damaged: {0}")]
    Key(String),
    /// The chain is broken: nothing is signed.
    #[error("refusing to sign a checkpoint: {0}")]
    Broken(BreakReport),
}

/// The first bad record, as an auditor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BreakReport {
    /// Seq of the first record that was altered, deleted or moved.
    pub seq: i64,
    /// `altered`, `deleted`, `reordered`, `replaced`, `rewritten` or `forged_checkpoint`.
    pub kind: String,
    /// What exactly does not match.
    pub detail: String,
}

impl std::fmt::Display for BreakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit chain broken at seq {}: {} — {}",
            self.seq, self.kind, self.detail
        )
    }
}

/// The verdict of a full verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when every record and every checkpoint is intact.
    pub ok: bool,
    /// Seq of the newest record (the verified head when `ok`, else the appender's head).
    pub head_seq: i64,
    /// Hash of that record.
    pub head_hash: String,
    /// Records verified before the first break (all of them when `ok`).
    pub records_checked: u64,
    /// Signed checkpoints whose signature verified and that the chain passes through.
    pub checkpoints_checked: usize,
    /// The first problem, or `null`.
    pub first_break: Option<BreakReport>,
}

/// A stored signing key and whether the vault authenticates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeyStatus {
    /// ed25519 public key, hex.
    pub public_key: String,
    /// The key signing new checkpoints.
    pub active: bool,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
    /// Its secret decrypts with this installation's keys to this public key.
    pub trusted: bool,
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn aad(public_key: &str) -> FieldAad<'_> {
    FieldAad::new(KEY_TABLE, KEY_COLUMN, public_key)
}

async fn encrypt_key(
    vault: &Vault,
    key: &CheckpointSigningKey,
) -> Result<Vec<u8>, CheckpointError> {
    let public = key.public_key_hex();
    let seed = Zeroizing::new(hex::encode(key.to_bytes().as_ref()));
    Ok(vault.encrypt_field(None, &aad(&public), &seed).await?)
}

async fn decrypt_key(
    vault: &Vault,
    public_key: &str,
    secret_enc: &[u8],
) -> Result<CheckpointSigningKey, CheckpointError> {
    let seed_hex = vault
        .decrypt_field(None, &aad(public_key), secret_enc)
        .await?;
    let seed = Zeroizing::new(
        hex::decode(seed_hex.as_bytes())
            .map_err(|_| CheckpointError::Key("the stored secret is not hex".into()))?,
    );
    let key =
        CheckpointSigningKey::from_bytes(&seed).map_err(|e| CheckpointError::Key(e.to_string()))?;
    if key.public_key_hex() != public_key {
        return Err(CheckpointError::Key(
            "the stored secret does not belong to its public key".into(),
        ));
    }
    Ok(key)
}

/// The active signing key, created and stored (encrypted) on first use.
pub async fn active_signing_key(
    store: &Store,
    vault: &Vault,
    now_ms: i64,
) -> Result<CheckpointSigningKey, CheckpointError> {
    if let Some(stored) = store.audit_signing_key_active().await? {
        return decrypt_key(vault, &stored.public_key, &stored.secret_enc).await;
    }
    let fresh =
        CheckpointSigningKey::generate().map_err(|e| CheckpointError::Key(e.to_string()))?;
    let sealed = encrypt_key(vault, &fresh).await?;
    let stored = store
        .audit_signing_key_init(&fresh.public_key_hex(), &sealed, now_ms)
        .await?;
    if stored.public_key == fresh.public_key_hex() {
        tracing::info!(public_key = %stored.public_key, "created the audit checkpoint signing key");
        Ok(fresh)
    } else {
        // Another instance stored its key first: use that one.
        decrypt_key(vault, &stored.public_key, &stored.secret_enc).await
    }
}

/// Every stored signing key with whether the vault authenticates it.
pub async fn key_statuses(store: &Store, vault: &Vault) -> Result<Vec<KeyStatus>, CheckpointError> {
    let mut out = Vec::new();
    for k in store.audit_signing_keys().await? {
        let trusted = match decrypt_key(vault, &k.public_key, &k.secret_enc).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(public_key = %k.public_key, error = %e, "an audit signing key does not authenticate");
                false
            }
        };
        out.push(KeyStatus {
            public_key: k.public_key,
            active: k.active,
            created_at_ms: k.created_at_ms,
            retired_at_ms: k.retired_at_ms,
            trusted,
        });
    }
    Ok(out)
}

/// The public keys (hex) checkpoints may be signed with: the stored ones the vault
/// authenticates.
pub async fn trusted_keys(store: &Store, vault: &Vault) -> Result<Vec<String>, CheckpointError> {
    Ok(key_statuses(store, vault)
        .await?
        .into_iter()
        .filter(|k| k.trusted)
        .map(|k| k.public_key)
        .collect())
}

/// Whether one of `trusted` signed `cp`.
pub fn signed_by_any(cp: &Checkpoint, trusted: &[String]) -> bool {
    trusted.iter().any(|k| verify_checkpoint(cp, k).is_ok())
}

/// Explains a chain break in an auditor's words; `seq` names the first bad record.
pub async fn describe(store: &Store, brk: &ChainBreak) -> Result<BreakReport, StoreError> {
    let seq = brk.seq;
    let report = |seq: i64, kind: &str, detail: String| BreakReport {
        seq,
        kind: kind.to_owned(),
        detail,
    };
    Ok(match &brk.kind {
        BreakKind::AlteredContent { stored, computed } => report(
            seq,
            "altered",
            format!(
                "record {seq} was altered: its content hashes to {}…, the stored hash is {}…",
                short(computed),
                short(stored)
            ),
        ),
        BreakKind::SeqGap { expected, found } if found > expected => {
            let range = if *found - *expected > 1 {
                format!("records {expected}..{} are missing", found - 1)
            } else {
                format!("record {expected} is missing")
            };
            report(
                *expected,
                "deleted",
                format!("{range}; the next record present is {found}"),
            )
        }
        BreakKind::SeqGap { expected, found } => report(
            seq,
            "reordered",
            format!("expected seq {expected} but found {found}: records were moved"),
        ),
        BreakKind::BrokenLink { found_prev, .. } => {
            let later = store.audit_records_after(seq, REORDER_LOOKAHEAD).await?;
            match later.iter().find(|r| r.hash == *found_prev) {
                Some(r) => report(
                    seq,
                    "reordered",
                    format!(
                        "record {seq} follows the record now stored at seq {}: records were swapped or moved",
                        r.seq
                    ),
                ),
                None => report(
                    seq,
                    "replaced",
                    format!(
                        "record {seq} does not link to record {}: the record before it was rewritten, or records before it were deleted and the rest renumbered",
                        seq - 1
                    ),
                ),
            }
        }
        BreakKind::CheckpointMismatch { found, .. } if found.is_empty() => {
            let newest = store
                .audit_search(&AuditFilter::default(), None, 1)
                .await?
                .records
                .first()
                .map_or(0, |r| r.seq);
            let first_missing = (newest + 1).min(seq);
            let range = if first_missing < seq {
                format!("records {first_missing}..{seq} are missing")
            } else {
                format!("record {seq} is missing")
            };
            report(
                first_missing,
                "deleted",
                format!(
                    "{range}: the chain ends at seq {newest}, but the chain head or a signed checkpoint records seq {seq} (the newest records were deleted)"
                ),
            )
        }
        BreakKind::CheckpointMismatch {
            checkpoint_hash,
            found,
        } => report(
            seq,
            "rewritten",
            format!(
                "record {seq} hashes to {}…, the signed checkpoint says {}…: the chain was rewritten up to here",
                short(found),
                short(checkpoint_hash)
            ),
        ),
    })
}

/// Verifies every checkpoint's signature against `trusted`, then re-walks the whole chain
/// (paged) through the checkpoints that verified and the appender's head.
pub async fn verify_with_keys(
    store: &Store,
    trusted: &[String],
) -> Result<VerifyReport, CheckpointError> {
    let head = store.audit_head().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let (good, forged): (Vec<Checkpoint>, Vec<Checkpoint>) = checkpoints
        .into_iter()
        .partition(|cp| signed_by_any(cp, trusted));
    let forged = forged.into_iter().next().map(|cp| BreakReport {
        seq: cp.seq,
        kind: "forged_checkpoint".into(),
        detail: format!(
            "the checkpoint at seq {} is not signed by a trusted audit signing key (it names key {}…)",
            cp.seq,
            short(&cp.public_key)
        ),
    });
    let chain = store.audit_verify(&good).await?;
    let (verified, chain_break) = match chain {
        Ok(h) => (Some(h), None),
        Err(brk) => (None, Some(describe(store, &brk).await?)),
    };
    let first_break = match (chain_break, forged) {
        (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
        (a, b) => a.or(b),
    };
    let checkpoints_checked = match &first_break {
        None => good.len(),
        Some(b) => good.iter().filter(|cp| cp.seq < b.seq).count(),
    };
    Ok(match (verified, first_break) {
        (Some(h), None) => VerifyReport {
            ok: true,
            head_seq: h.seq,
            head_hash: h.hash,
            records_checked: h.records_checked,
            checkpoints_checked,
            first_break: None,
        },
        (verified, Some(b)) => VerifyReport {
            ok: false,
            head_seq: head.seq,
            head_hash: head.hash,
            records_checked: verified
                .map(|h| h.records_checked)
                .unwrap_or_else(|| u64::try_from(b.seq - 1).unwrap_or(0)),
            checkpoints_checked,
            first_break: Some(b),
        },
        (None, None) => VerifyReport {
            ok: false,
            head_seq: head.seq,
            head_hash: head.hash,
            records_checked: 0,
            checkpoints_checked,
            first_break: None,
        },
    })
}

/// [`verify_with_keys`] with the keys the vault authenticates.
pub async fn verify(store: &Store, vault: &Vault) -> Result<VerifyReport, CheckpointError> {
    let trusted = trusted_keys(store, vault).await?;
    verify_with_keys(store, &trusted).await
}

/// Signs the current head and stores the checkpoint, after re-walking the records since
/// the newest trusted checkpoint. `None` when the trail is still empty. Signing a head
/// that already has a checkpoint returns that one.
pub async fn sign_now(
    store: &Store,
    vault: &Vault,
    now_ms: i64,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let key = active_signing_key(store, vault, now_ms).await?;
    let head = store.audit_head().await?;
    if head.seq == 0 {
        return Ok(None);
    }
    let trusted = trusted_keys(store, vault).await?;
    let latest = store
        .audit_checkpoint_latest()
        .await?
        .filter(|cp| signed_by_any(cp, &trusted));
    if let Some(cp) = latest
        .as_ref()
        .filter(|cp| cp.seq == head.seq && cp.hash == head.hash)
    {
        return Ok(Some(cp.clone()));
    }
    // Resume after the newest trusted checkpoint below the head; otherwise walk from the
    // first record, still requiring the chain to pass through that checkpoint.
    let anchor = latest.as_ref().filter(|cp| cp.seq < head.seq);
    let (mut verifier, mut after) = match anchor {
        Some(cp) => (ChainVerifier::from_anchor(cp.seq, &cp.hash), cp.seq),
        None => (ChainVerifier::from_genesis(), 0),
    };
    verifier = verifier.expect_checkpoint(&Checkpoint {
        seq: head.seq,
        hash: head.hash.clone(),
        at_ms: 0,
        signature: String::new(),
        public_key: String::new(),
    });
    if let Some(cp) = latest
        .as_ref()
        .filter(|cp| cp.seq <= head.seq && anchor.is_none())
    {
        // Added after the head: a signed checkpoint wins over the unsigned head row.
        verifier = verifier.expect_checkpoint(cp);
    }
    'walk: loop {
        let page = store.audit_records_after(after, VERIFY_PAGE_SIZE).await?;
        for record in page.iter().take_while(|r| r.seq <= head.seq) {
            if let Err(brk) = verifier.push(record) {
                return Err(CheckpointError::Broken(describe(store, &brk).await?));
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 >= VERIFY_PAGE_SIZE && last.seq < head.seq => {
                after = last.seq
            }
            _ => break 'walk,
        }
    }
    if let Err(brk) = verifier.finish() {
        return Err(CheckpointError::Broken(describe(store, &brk).await?));
    }
    let cp = sign_checkpoint(&key, head.seq, &head.hash, now_ms);
    store.audit_checkpoint_store(&cp).await?;
    tracing::info!(seq = cp.seq, hash = %cp.hash, "signed an audit checkpoint");
    Ok(Some(cp))
}

/// [`sign_now`] for a running server.
pub async fn sign_checkpoint_now(state: &AppState) -> Result<Option<Checkpoint>, CheckpointError> {
    sign_now(state.store(), state.vault(), state.now_ms()).await
}

async fn enqueue_hour(
    store: &Store,
    hour: i64,
    run_at_ms: i64,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let key = format!("{JOB_KIND}:{hour}");
    store
        .enqueue(
            &NewJob::new(JOB_KIND, serde_json::json!({ "hour": hour }), run_at_ms).dedupe(&key),
            now_ms,
        )
        .await
}

/// Enqueues this hour's checkpoint job (once per hour however many instances start).
pub async fn schedule(store: &Store, now_ms: i64) -> Result<Option<i64>, StoreError> {
    enqueue_hour(store, now_ms.div_euclid(HOUR_MS), now_ms, now_ms).await
}

/// The handler of [`JOB_KIND`]: enqueues the next hour's run, then signs the head.
pub async fn run_job(state: AppState, _job: Job) -> Result<(), String> {
    let now = state.now_ms();
    let next = now.div_euclid(HOUR_MS) + 1;
    enqueue_hour(state.store(), next, next * HOUR_MS, now)
        .await
        .map_err(|e| format!("scheduling the next audit checkpoint: {e}"))?;
    sign_checkpoint_now(&state)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
