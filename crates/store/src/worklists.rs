//! Worklists beyond the to-do list (issue #6 item 3): what a user has done (已办), what
//! they watch (关注), the instances that stopped moving, and the raw histories process
//! analytics is computed from.

use crate::db::Store;
use crate::error::StoreError;
use crate::workflow::{instance_row, InstanceRow, INSTANCE_COLUMNS};
use sqlx::Row;

/// `INSTANCE_COLUMNS` with the `i.` alias.
fn instance_columns_of_i() -> String {
    INSTANCE_COLUMNS
        .split(',')
        .map(|c| format!("i.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An instance the user acted on, with their latest action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneRow {
    pub instance: InstanceRow,
    pub action: String,
    /// The node the user acted at.
    pub at_node: String,
    pub at_ms: i64,
    pub detail: Option<String>,
}

/// A watched instance and what changed since the user last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRow {
    pub instance: InstanceRow,
    pub watched_at_ms: i64,
    pub seen_at_ms: i64,
    /// Steps after `seen_at_ms`.
    pub changes: i64,
    pub last_action: Option<String>,
    pub last_at_ms: Option<i64>,
}

/// One stored step for analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsStep {
    pub instance_id: i64,
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<i64>,
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    pub approval_level: Option<i64>,
    pub approval_role: Option<String>,
}

impl Store {
    /// Instances `user` acted on, the most recent action first (已办). Automatic steps
    /// the engine took after a person's action carry that person as actor; they are
    /// not the person's action and are skipped.
    pub async fn done_list(&self, user: i64, limit: i64) -> Result<Vec<DoneRow>, StoreError> {
        let sql = format!(
            "SELECT {}, s.action AS my_action, s.from_node AS my_node, s.at_ms AS my_at, s.detail AS my_detail
             FROM (SELECT instance_id, MAX(seq) AS seq FROM workflow_steps WHERE actor = $1 AND action <> 'auto' GROUP BY instance_id) d
             JOIN workflow_steps s ON s.instance_id = d.instance_id AND s.seq = d.seq
             JOIN workflow_instances i ON i.id = d.instance_id
             ORDER BY s.at_ms DESC, s.id DESC LIMIT $2",
            instance_columns_of_i()
        );
        let rows = sqlx::query(&sql)
            .bind(user)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DoneRow {
                    instance: instance_row(r)?,
                    action: r.try_get("my_action")?,
                    at_node: r.try_get("my_node")?,
                    at_ms: r.try_get("my_at")?,
                    detail: r.try_get("my_detail")?,
                })
            })
            .collect()
    }

    /// Adds an instance to a user's watch list; false when it was there already.
    pub async fn watch(&self, user: i64, instance: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO workflow_watches (user_id, instance_id, created_at_ms, seen_at_ms)
             VALUES ($1, $2, $3, $3) ON CONFLICT (user_id, instance_id) DO NOTHING",
        )
        .bind(user)
        .bind(instance)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an instance from a user's watch list; false when it was not there.
    pub async fn unwatch(&self, user: i64, instance: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM workflow_watches WHERE user_id = $1 AND instance_id = $2")
                .bind(user)
                .bind(instance)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn is_watching(&self, user: i64, instance: i64) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_watches WHERE user_id = $1 AND instance_id = $2",
        )
        .bind(user)
        .bind(instance)
        .fetch_one(self.reader())
        .await?;
        Ok(n > 0)
    }

    /// The users watching an instance.
    pub async fn watchers(&self, instance: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM workflow_watches WHERE instance_id = $1 ORDER BY user_id",
        )
        .bind(instance)
        .fetch_all(self.reader())
        .await?)
    }

    /// A user's watch list, the most recently changed first.
    pub async fn watched(&self, user: i64, limit: i64) -> Result<Vec<WatchRow>, StoreError> {
        let sql = format!(
            "SELECT {}, w.created_at_ms AS watched_at, w.seen_at_ms AS seen_at,
                (SELECT COUNT(*) FROM workflow_steps s WHERE s.instance_id = w.instance_id AND s.at_ms > w.seen_at_ms) AS changes,
                (SELECT s.action FROM workflow_steps s WHERE s.instance_id = w.instance_id ORDER BY s.seq DESC LIMIT 1) AS last_action,
                (SELECT MAX(s.at_ms) FROM workflow_steps s WHERE s.instance_id = w.instance_id) AS last_at
             FROM workflow_watches w JOIN workflow_instances i ON i.id = w.instance_id
             WHERE w.user_id = $1
             ORDER BY i.updated_at_ms DESC, i.id DESC LIMIT $2",
            instance_columns_of_i()
        );
        let rows = sqlx::query(&sql)
            .bind(user)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WatchRow {
                    instance: instance_row(r)?,
                    watched_at_ms: r.try_get("watched_at")?,
                    seen_at_ms: r.try_get("seen_at")?,
                    changes: r.try_get("changes")?,
                    last_action: r.try_get("last_action")?,
                    last_at_ms: r.try_get("last_at")?,
                })
            })
            .collect()
    }

    /// Marks a user's watched instances (one, or all) as seen up to `now_ms`.
    pub async fn watches_seen(
        &self,
        user: i64,
        instance: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE workflow_watches SET seen_at_ms = $3
             WHERE user_id = $1 AND ($2 IS NULL OR instance_id = $2) AND seen_at_ms < $3",
        )
        .bind(user)
        .bind(instance)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Submitted, running instances with no step since `before_ms` (stopped moving).
    pub async fn instances_idle_since(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instances
             WHERE status = 'running' AND updated_at_ms < $1 AND submitter IS NOT NULL
             ORDER BY updated_at_ms, id LIMIT $2"
        ))
        .bind(before_ms)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(instance_row).collect()
    }

    /// Every step of the instances of `code` that moved in `[from_ms, to_ms)` or are still
    /// running (their open stays are queues), ordered by instance and sequence.
    pub async fn analytics_steps(
        &self,
        code: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AnalyticsStep>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.instance_id, s.seq, s.at_ms, s.actor, s.action, s.from_node, s.to_node,
                    s.approval_level, s.approval_role
             FROM workflow_steps s JOIN workflow_instances i ON i.id = s.instance_id
             WHERE i.definition_code = $1
               AND ((i.created_at_ms < $3 AND i.updated_at_ms >= $2) OR i.status = 'running')
             ORDER BY s.instance_id, s.seq",
        )
        .bind(code)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AnalyticsStep {
                    instance_id: r.try_get("instance_id")?,
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    from_node: r.try_get("from_node")?,
                    to_node: r.try_get("to_node")?,
                    approval_level: r.try_get("approval_level")?,
                    approval_role: r.try_get("approval_role")?,
                })
            })
            .collect()
    }

    /// Routing runs still `running` (a worker is calling a funder) that have not changed
    /// since `before_ms`: the worker died or the funder hangs. (id, application ref,
    /// current funder, updated at.)
    pub async fn routing_runs_stale(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(i64, String, Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, application_ref, funder_code, updated_at_ms FROM routing_runs
             WHERE state = 'running' AND updated_at_ms < $1 ORDER BY id LIMIT 1000",
        )
        .bind(before_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("application_ref")?,
                    r.try_get("funder_code")?,
                    r.try_get("updated_at_ms")?,
                ))
            })
            .collect()
    }
}
