//! The background worker: claims jobs from the database queue and runs the handler
//! registered for each job kind. Several server instances may run workers on one
//! PostgreSQL; the queue's claim step keeps them from taking the same job.

use crate::state::AppState;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use zhudai_store::jobs::{FailOutcome, Job};

pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Handler = Arc<dyn Fn(AppState, Job) -> JobFuture + Send + Sync>;

/// Job kinds and what runs them.
#[derive(Clone, Default)]
pub struct JobRegistry {
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for JobRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRegistry")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JobRegistry {
    /// Registers `handler` for jobs of `kind`. Handlers must be idempotent: a job whose
    /// worker died is run again.
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F)
    where
        F: Fn(AppState, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.handlers.insert(
            kind.to_owned(),
            Arc::new(move |s, j| Box::pin(handler(s, j))),
        );
    }

    pub fn kinds(&self) -> impl Iterator<Item = &String> {
        self.handlers.keys()
    }

    /// The handlers every server runs.
    pub fn standard() -> Self {
        let mut registry = JobRegistry::default();
        registry.register(
            crate::audit_checkpoint::JOB_KIND,
            crate::audit_checkpoint::run_job,
        );
        registry.register(crate::workflow::SLA_JOB, crate::workflow::run_sla_job);
        // Group-bot webhooks of exception alerts (issue #6 item 3).
        registry.register(crate::notify::WEBHOOK_JOB, crate::notify::run_webhook_job);
        // Funder network (issue #5).
        registry.register(crate::routing::ADVANCE_JOB, crate::routing::run_advance_job);
        registry.register(
            crate::partners::REMINDER_JOB,
            crate::partners::run_reminder_job,
        );
        // Bulk customer import (issue #4 part 5).
        registry.register(crate::import::job::JOB_KIND, crate::import::job::run_job);
        // Contracts and disbursement (issue #6): the simulated funder disburses.
        registry.register(
            crate::contracts::SIM_DISBURSE_JOB,
            crate::contracts::run_sim_disburse_job,
        );
        // Risk warnings and credit limits (issue #7 items 3 and 4).
        registry.register(crate::warnings::psi::PSI_JOB, crate::warnings::psi::run_job);
        registry.register(crate::limits::EXPIRE_JOB, crate::limits::run_expiry_job);
        // Daily close and portfolio reports (issue #8 items 3–7).
        registry.register(crate::cob::JOB_KIND, crate::cob::run_job);
        registry.register(
            crate::portfolio::VINTAGE_JOB,
            crate::portfolio::run_vintage_job,
        );
        registry
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub queue: String,
    pub worker_id: String,
    pub lease: Duration,
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            queue: "default".into(),
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(300),
            idle_poll: Duration::from_millis(1000),
        }
    }
}

/// Runs jobs until `shutdown` fires. A job in progress when shutdown comes is finished
/// first (or, if the process is killed, re-run by another worker when its lease ends).
pub async fn run_worker(
    state: AppState,
    registry: JobRegistry,
    settings: WorkerSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tracing::info!(worker = %settings.worker_id, kinds = ?registry.kinds().collect::<Vec<_>>(), "job worker started");
    let lease_ms = settings.lease.as_millis() as i64;
    let mut last_reap = 0_i64;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = state.now_ms();
        if now - last_reap > 60_000 {
            if let Err(e) = state.store().reap_abandoned(now).await {
                tracing::warn!(error = %e, "reaping abandoned jobs failed");
            }
            last_reap = now;
        }
        let claimed = state
            .store()
            .claim(&settings.queue, &settings.worker_id, now, lease_ms)
            .await;
        match claimed {
            Ok(Some(job)) => run_one(&state, &registry, &settings.worker_id, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(settings.idle_poll) => {},
                    _ = shutdown.changed() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a job failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(settings.idle_poll * 5) => {},
                    _ = shutdown.changed() => {},
                }
            }
        }
    }
    tracing::info!(worker = %settings.worker_id, "job worker stopped");
}

async fn run_one(state: &AppState, registry: &JobRegistry, worker: &str, job: Job) {
    let id = job.id;
    let kind = job.kind.clone();
    let result = match registry.handlers.get(&kind) {
        Some(handler) => {
            // A panicking handler must not take the worker down with it.
            match tokio::spawn(handler(state.clone(), job)).await {
                Ok(r) => r,
                Err(e) => Err(format!("handler crashed: {e}")),
            }
        }
        None => Err(format!("no handler is registered for job kind `{kind}`")),
    };
    let now = state.now_ms();
    match result {
        Ok(()) => {
            metrics::counter!("zhudai_jobs_completed_total", "kind" => kind.clone()).increment(1);
            if let Err(e) = state.store().complete(id, worker, now).await {
                tracing::error!(job = id, error = %e, "could not mark job done");
            }
        }
        Err(message) => {
            metrics::counter!("zhudai_jobs_failed_total", "kind" => kind.clone()).increment(1);
            match state.store().fail(id, worker, &message, now).await {
                Ok(FailOutcome::Dead) => {
                    tracing::error!(job = id, kind, error = %message, "job failed for the last time")
                }
                Ok(FailOutcome::Retry { at_ms }) => {
                    tracing::warn!(job = id, kind, error = %message, retry_at_ms = at_ms, "job failed; will retry")
                }
                Ok(FailOutcome::LostLease) => {
                    tracing::warn!(job = id, kind, "job lease was lost while running")
                }
                Err(e) => tracing::error!(job = id, error = %e, "could not record job failure"),
            }
        }
    }
}
