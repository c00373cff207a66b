//! The job queue: durable background work shared by every server instance.
//!
//! A job is a row. Enqueueing inside a business transaction makes the job exist exactly
//! when the business change does (the outbox pattern). Workers claim a job atomically:
//! PostgreSQL uses `FOR UPDATE SKIP LOCKED` so several instances never take the same job;
//! SQLite runs the same single `UPDATE … WHERE id = (SELECT …)`, which its one-writer rule
//! makes atomic. A claim carries a lease; if a worker dies, the lease runs out and another
//! worker takes the job again, so handlers must be idempotent. A `dedupe_key` makes
//! "once per business date" jobs impossible to enqueue twice.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub queue: &'a str,
    pub kind: &'a str,
    pub payload: serde_json::Value,
    pub run_at_ms: i64,
    pub max_attempts: i64,
    pub dedupe_key: Option<&'a str>,
}

impl<'a> NewJob<'a> {
    /// A job on the default queue, runnable at `run_at_ms`, tried up to 5 times.
    pub fn new(kind: &'a str, payload: serde_json::Value, run_at_ms: i64) -> Self {
        Self {
            queue: "default",
            kind,
            payload,
            run_at_ms,
            max_attempts: 5,
            dedupe_key: None,
        }
    }

    pub fn dedupe(mut self, key: &'a str) -> Self {
        self.dedupe_key = Some(key);
        self
    }
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_ms: i64,
}

/// What happened to a job that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled again at the given time.
    Retry { at_ms: i64 },
    /// Out of attempts: parked as `dead` for a person to look at.
    Dead,
    /// The job was not held by this worker any more (its lease ran out and it was taken).
    LostLease,
}

/// Count of jobs per queue and state, for dashboards and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCount {
    pub queue: String,
    pub state: String,
    pub count: i64,
}

fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    let payload: String = row.try_get("payload")?;
    Ok(Job {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Invalid(format!("job payload is not JSON: {e}")))?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at_ms: row.try_get("run_at_ms")?,
    })
}

/// Enqueues `job` through any executor (a pool or an open transaction). Returns the new
/// job's id, or `None` when its dedupe key was used before.
pub async fn enqueue<'c, E>(
    exec: E,
    job: &NewJob<'_>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "INSERT INTO jobs (queue, kind, payload, state, attempts, max_attempts, run_at_ms, dedupe_key, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, $7, $7)
         ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(job.queue)
    .bind(job.kind)
    .bind(job.payload.to_string())
    .bind(job.max_attempts.max(1))
    .bind(job.run_at_ms)
    .bind(job.dedupe_key)
    .bind(now_ms)
    .fetch_optional(exec)
    .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    })
}

/// Exponential backoff for the n-th failed attempt: 2^n seconds, at most one hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 12) as u32;
    (1000_i64 << exp).min(3_600_000)
}

impl Store {
    /// Enqueues a job outside any transaction.
    pub async fn enqueue(&self, job: &NewJob<'_>, now_ms: i64) -> Result<Option<i64>, StoreError> {
        enqueue(self.writer(), job, now_ms).await
    }

    /// Claims the next runnable job of `queue` for `worker`, leasing it for `lease_ms`.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Job>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET state = 'running', locked_by = $1, lease_until_ms = $2,
                    attempts = attempts + 1, updated_at_ms = $3
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE queue = $4 AND attempts < max_attempts
                   AND ((state = 'pending' AND run_at_ms <= $3)
                     OR (state = 'running' AND lease_until_ms < $3))
                 ORDER BY run_at_ms, id
                 LIMIT 1{}
             )
             RETURNING id, queue, kind, payload, attempts, max_attempts, run_at_ms",
            self.skip_locked()
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(queue)
            .fetch_optional(self.writer())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Marks a job done. Returns false if this worker no longer held it.
    pub async fn complete(&self, id: i64, worker: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', locked_by = NULL, lease_until_ms = NULL,
                    updated_at_ms = $3, finished_at_ms = $3
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failure: retried with backoff while attempts remain, otherwise dead.
    pub async fn fail(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<FailOutcome, StoreError> {
        let row = sqlx::query(
            "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .fetch_optional(self.writer())
        .await?;
        let Some(row) = row else {
            return Ok(FailOutcome::LostLease);
        };
        let attempts: i64 = row.try_get("attempts")?;
        let max_attempts: i64 = row.try_get("max_attempts")?;
        let (state, at_ms, outcome) = if attempts >= max_attempts {
            ("dead", now_ms, FailOutcome::Dead)
        } else {
            let at = now_ms + backoff_ms(attempts);
            ("pending", at, FailOutcome::Retry { at_ms: at })
        };
        let error: String = error.chars().take(2000).collect();
        let changed = sqlx::query(
            "UPDATE jobs SET state = $3, run_at_ms = $4, last_error = $5, locked_by = NULL,
                    lease_until_ms = NULL, updated_at_ms = $6,
                    finished_at_ms = CASE WHEN $3 = 'dead' THEN $6 ELSE NULL END
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(state)
        .bind(at_ms)
        .bind(error)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(if changed.rows_affected() == 1 {
            outcome
        } else {
            FailOutcome::LostLease
        })
    }

    /// Parks as dead the jobs whose worker vanished after their last allowed attempt.
    pub async fn reap_abandoned(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'dead', last_error = COALESCE(last_error, 'worker lease expired on last attempt'),
                    locked_by = NULL, lease_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1
             WHERE state = 'running' AND lease_until_ms < $1 AND attempts >= max_attempts",
        )
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, COUNT(*) AS n FROM jobs GROUP BY queue, state ORDER BY queue, state",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobCount {
                    queue: r.try_get("queue")?,
                    state: r.try_get("state")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Time of the next pending job on `queue`, for a worker deciding how long to sleep.
    pub async fn next_run_at(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(run_at_ms) AS next FROM jobs WHERE queue = $1 AND state = 'pending'",
        )
        .bind(queue)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("next")?)
    }
}
