//! `zhudai audit …`: verify the audit chain and sign / export checkpoints from the command
//! line, against the same database the server uses.

use crate::cli::Failure;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use zhudai_server::audit_checkpoint::{self, CheckpointError};
use zhudai_server::vault::Vault;
use zhudai_store::Store;

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Re-walk the whole audit chain and every signed checkpoint; exit 1 naming the first
    /// record that was altered, deleted or reordered
    Verify,
    /// Sign the current head of the chain now and print the public key; with --export, write
    /// every checkpoint as JSON lines for anchoring outside the system
    Checkpoint {
        /// File to write the checkpoints to, one JSON object per line (`-` for standard output)
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
    },
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn failure(e: CheckpointError) -> Failure {
    match e {
        CheckpointError::Vault(_) | CheckpointError::Key(_) => Failure::Config(e.to_string()),
        other => Failure::Runtime(other.to_string()),
    }
}

/// Whether `action` needs the vault: signing always does; verifying only when there are
/// signing keys to authenticate.
pub async fn needs_vault(store: &Store, action: &AuditAction) -> Result<bool, Failure> {
    Ok(match action {
        AuditAction::Checkpoint { .. } => true,
        AuditAction::Verify => !store.audit_signing_keys().await?.is_empty(),
    })
}

pub async fn run(store: &Store, vault: Option<&Vault>, action: AuditAction) -> Result<(), Failure> {
    match action {
        AuditAction::Verify => verify(store, vault).await,
        AuditAction::Checkpoint { export } => {
            let vault = vault.ok_or_else(|| {
                Failure::Runtime("signing a checkpoint needs the encryption keys".into())
            })?;
            checkpoint(store, vault, export.as_deref()).await
        }
    }
}

async fn verify(store: &Store, vault: Option<&Vault>) -> Result<(), Failure> {
    let trusted = match vault {
        Some(v) => audit_checkpoint::trusted_keys(store, v)
            .await
            .map_err(failure)?,
        None => Vec::new(),
    };
    let report = audit_checkpoint::verify_with_keys(store, &trusted)
        .await
        .map_err(failure)?;
    match report.first_break {
        None => {
            out(&format!(
                "audit chain intact: {} records, head seq {}, hash {}",
                report.records_checked, report.head_seq, report.head_hash
            ));
            if report.checkpoints_checked > 0 {
                out(&format!(
                    "{} signed checkpoint(s) verified",
                    report.checkpoints_checked
                ));
            }
            Ok(())
        }
        Some(b) => Err(Failure::Runtime(b.to_string())),
    }
}

async fn checkpoint(store: &Store, vault: &Vault, export: Option<&Path>) -> Result<(), Failure> {
    let now = chrono_now_ms();
    let key = audit_checkpoint::active_signing_key(store, vault, now)
        .await
        .map_err(failure)?;
    match audit_checkpoint::sign_now(store, vault, now)
        .await
        .map_err(failure)?
    {
        Some(cp) => out(&format!(
            "signed checkpoint at seq {} (hash {})",
            cp.seq, cp.hash
        )),
        None => out("the audit trail is empty: nothing to sign yet"),
    }
    out(&format!("public key: {}", key.public_key_hex()));
    if let Some(path) = export {
        let all = store.audit_checkpoints().await?;
        let mut text = String::new();
        for cp in &all {
            let line = serde_json::to_string(cp)
                .map_err(|e| Failure::Runtime(format!("encoding a checkpoint: {e}")))?;
            text.push_str(&line);
            text.push('\n');
        }
        if path == Path::new("-") {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        } else {
            std::fs::write(path, text)
                .map_err(|e| Failure::Config(format!("cannot write {}: {e}", path.display())))?;
            out(&format!(
                "wrote {} checkpoint(s) to {}",
                all.len(),
                path.display()
            ));
        }
    }
    Ok(())
}

fn chrono_now_ms() -> i64 {
    use zhudai_domain::clock::Clock;
    zhudai_domain::clock::SystemClock.now().timestamp_millis()
}
