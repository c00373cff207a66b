//! The background side of an HTTP import: the upload is stored encrypted with its job
//! row, a queue job runs the engine, and the job can be run again after a crash (the
//! engine resumes after the last committed batch).

use super::engine::{Engine, ImportOptions, DEFAULT_BATCH_ROWS};
use super::read::Table;
use crate::state::AppState;
use crate::vault::FieldAad;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zhudai_store::customers::ScopeFilter;
use zhudai_store::imports as db;
use zhudai_store::jobs::Job;

/// The queue job kind.
pub const JOB_KIND: &str = "customer.import";

/// The place (AAD) of an uploaded file's ciphertext.
pub fn file_aad(import_id: &str) -> FieldAad<'_> {
    FieldAad::new("customer_import_files", "content_enc", import_id)
}

/// A data scope as a job payload carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScopePayload {
    All,
    Units { units: Vec<i64>, owner: i64 },
    Owner { owner: i64 },
}

impl From<&ScopeFilter> for ScopePayload {
    fn from(s: &ScopeFilter) -> Self {
        match s {
            ScopeFilter::All => ScopePayload::All,
            ScopeFilter::Units { units, owner } => ScopePayload::Units {
                units: units.clone(),
                owner: *owner,
            },
            ScopeFilter::Owner(o) => ScopePayload::Owner { owner: *o },
        }
    }
}

impl From<ScopePayload> for ScopeFilter {
    fn from(s: ScopePayload) -> Self {
        match s {
            ScopePayload::All => ScopeFilter::All,
            ScopePayload::Units { units, owner } => ScopeFilter::Units { units, owner },
            ScopePayload::Owner { owner } => ScopeFilter::Owner(owner),
        }
    }
}

/// What the queue job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportPayload {
    pub import_id: i64,
    pub scope: ScopePayload,
    pub actor: String,
    pub roles: String,
}

/// Runs a queued import. Idempotent: a finished import is left alone, an interrupted
/// one resumes.
pub async fn run_job(state: AppState, job: Job) -> Result<(), String> {
    let p: ImportPayload =
        serde_json::from_value(job.payload).map_err(|e| format!("bad import payload: {e}"))?;
    let store = state.store();
    let Some(imp) = store
        .import_get(p.import_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err(format!("import {} does not exist", p.import_id));
    };
    if matches!(imp.status.as_str(), "done" | "rejected" | "failed") {
        return Ok(());
    }
    let fail = |msg: String| {
        let state = state.clone();
        async move {
            if let Ok(mut conn) = state.store().writer().acquire().await {
                let _ =
                    db::import_finish(&mut conn, p.import_id, "failed", Some(&msg), state.now_ms())
                        .await;
            }
            Err::<(), String>(msg)
        }
    };
    let Some(sealed) = store
        .import_file(p.import_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return fail("the uploaded file is gone; upload it again".into()).await;
    };
    let id_text = p.import_id.to_string();
    let bytes = state
        .vault()
        .decrypt_system(&file_aad(&id_text), &sealed)
        .map_err(|e| e.to_string())?;
    let table = match Table::parse(&bytes) {
        Ok(t) => t,
        Err(e) => return fail(e.to_string()).await,
    };
    drop(bytes);
    let engine = Engine {
        store: store.clone(),
        vault: state.vault().clone(),
        clock: state.clock_arc(),
    };
    let opts = ImportOptions {
        dry_run: imp.dry_run,
        strict: imp.strict,
        owner_user_id: imp.owner_user_id,
        org_unit_id: imp.org_unit_id,
        requested_by: imp.requested_by,
        scope: p.scope.into(),
        actor: p.actor,
        roles: p.roles,
        today: state.clock().today(),
        batch_rows: DEFAULT_BATCH_ROWS,
        defer_indexes_from_rows: zhudai_store::imports::DEFER_INDEXES_FROM_ROWS,
    };
    match engine
        .run(p.import_id, table, &opts, Arc::new(|_, _, _| {}))
        .await
    {
        Ok(_) => Ok(()),
        // Retried by the queue; the engine resumes after the committed batches.
        Err(e) => Err(e.to_string()),
    }
}
