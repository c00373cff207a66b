//! Workflow definitions, instances and their step history. The engine (crate
//! `zhudai-workflow`) decides; this module stores what it decided, with an optimistic
//! version on each instance so that two simultaneous actions on one step produce one
//! outcome.

use crate::batch::{Arg, Stmt};
use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionRow {
    pub id: i64,
    pub code: String,
    pub version: i64,
    pub name: String,
    pub source: String,
    pub digest: String,
    pub active: bool,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
}

fn def_row(r: &AnyRow) -> Result<DefinitionRow, StoreError> {
    Ok(DefinitionRow {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        version: r.try_get("version")?,
        name: r.try_get("name")?,
        source: r.try_get("source")?,
        digest: r.try_get("digest")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

const DEF_COLUMNS: &str =
    "id, code, version, name, source, digest, active, created_by, created_at_ms";

/// An instance row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: i64,
    pub definition_code: String,
    pub definition_version: i64,
    pub subject_type: String,
    pub subject_id: i64,
    pub node: String,
    pub status: String,
    pub outcome: Option<String>,
    pub state: String,
    pub assignee_role: Option<String>,
    pub assignee_user: Option<i64>,
    pub submitter: Option<i64>,
    pub node_entered_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
}

pub(crate) const INSTANCE_COLUMNS: &str = "id, definition_code, definition_version, subject_type, subject_id, node, status, outcome, \
    state, assignee_role, assignee_user, submitter, node_entered_at_ms, created_at_ms, updated_at_ms, version";

pub(crate) fn instance_row(r: &AnyRow) -> Result<InstanceRow, StoreError> {
    instance_row_as(r, "")
}

/// [`INSTANCE_COLUMNS`] as `{table}.{column} AS {prefix}{column}`, for a join.
pub(crate) fn instance_columns_as(table: &str, prefix: &str) -> String {
    INSTANCE_COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| format!("{table}.{c} AS {prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An instance from columns named `{prefix}{column}` ([`instance_columns_as`]).
pub(crate) fn instance_row_as(r: &AnyRow, prefix: &str) -> Result<InstanceRow, StoreError> {
    let c = |name: &str| -> String { format!("{prefix}{name}") };
    Ok(InstanceRow {
        id: r.try_get(c("id").as_str())?,
        definition_code: r.try_get(c("definition_code").as_str())?,
        definition_version: r.try_get(c("definition_version").as_str())?,
        subject_type: r.try_get(c("subject_type").as_str())?,
        subject_id: r.try_get(c("subject_id").as_str())?,
        node: r.try_get(c("node").as_str())?,
        status: r.try_get(c("status").as_str())?,
        outcome: r.try_get(c("outcome").as_str())?,
        state: r.try_get(c("state").as_str())?,
        assignee_role: r.try_get(c("assignee_role").as_str())?,
        assignee_user: r.try_get(c("assignee_user").as_str())?,
        submitter: r.try_get(c("submitter").as_str())?,
        node_entered_at_ms: r.try_get(c("node_entered_at_ms").as_str())?,
        created_at_ms: r.try_get(c("created_at_ms").as_str())?,
        updated_at_ms: r.try_get(c("updated_at_ms").as_str())?,
        version: r.try_get(c("version").as_str())?,
    })
}

/// The new values of an instance after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUpdate<'a> {
    pub node: &'a str,
    pub finished: bool,
    pub outcome: Option<&'a str>,
    pub state: &'a str,
    pub assignee_role: Option<&'a str>,
    pub assignee_user: Option<i64>,
    pub submitter: Option<i64>,
    /// The node changed: restart its clock.
    pub node_changed: bool,
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<i64>,
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    pub detail: Option<String>,
}

/// Stores a new definition version (the next number for its code); returns the version.
pub async fn definition_insert(
    conn: &mut sqlx::AnyConnection,
    code: &str,
    name: &str,
    source: &str,
    digest: &str,
    created_by: Option<i64>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM workflow_definitions WHERE code = $1",
    )
    .bind(code)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO workflow_definitions (code, version, name, source, digest, created_by, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(code)
    .bind(next)
    .bind(name)
    .bind(source)
    .bind(digest)
    .bind(created_by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(next)
}

/// Creates an instance; returns its id.
#[allow(clippy::too_many_arguments)] // one column each
pub async fn instance_insert<'c, E>(
    exec: E,
    code: &str,
    version: i64,
    subject_type: &str,
    subject_id: i64,
    node: &str,
    state: &str,
    assignee_role: Option<&str>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO workflow_instances (definition_code, definition_version, subject_type, subject_id, node, status,
            state, assignee_role, node_entered_at_ms, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $8, $8) RETURNING id",
    )
    .bind(code)
    .bind(version)
    .bind(subject_type)
    .bind(subject_id)
    .bind(node)
    .bind(state)
    .bind(assignee_role)
    .bind(now_ms)
    .fetch_one(exec)
    .await?)
}

const INSTANCE_UPDATE: &str = "UPDATE workflow_instances SET node = $3, status = $4, outcome = $5, state = $6, assignee_role = $7,
            assignee_user = $8, submitter = $9,
            node_entered_at_ms = CASE WHEN $10 = 1 THEN $11 ELSE node_entered_at_ms END,
            updated_at_ms = $11, version = version + 1
         WHERE id = $1 AND version = $2";

fn instance_update_args(
    id: i64,
    expected_version: i64,
    u: &InstanceUpdate<'_>,
    now_ms: i64,
) -> Vec<Arg> {
    vec![
        id.into(),
        expected_version.into(),
        u.node.into(),
        (if u.finished { "finished" } else { "running" }).into(),
        u.outcome.into(),
        u.state.into(),
        u.assignee_role.into(),
        u.assignee_user.into(),
        u.submitter.into(),
        u.node_changed.into(),
        now_ms.into(),
    ]
}

/// Writes the result of an action if the instance is still at `expected_version`;
/// false when someone else acted first (nothing written).
pub async fn instance_update(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    expected_version: i64,
    u: &InstanceUpdate<'_>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = Stmt::new(
        INSTANCE_UPDATE,
        instance_update_args(id, expected_version, u, now_ms),
    )
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// [`instance_update`] as a statement for a batch: it returns one row (the instance's
/// id) when it wrote, none when someone else acted first.
pub fn instance_update_stmt(
    id: i64,
    expected_version: i64,
    u: &InstanceUpdate<'_>,
    now_ms: i64,
) -> Stmt {
    Stmt::new(
        format!("{INSTANCE_UPDATE} RETURNING id"),
        instance_update_args(id, expected_version, u, now_ms),
    )
}

/// A step for [`step_insert_stmt`].
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    pub instance_id: i64,
    pub at_ms: i64,
    pub actor: Option<i64>,
    pub action: &'a str,
    pub from_node: &'a str,
    pub to_node: &'a str,
    pub detail: Option<&'a str>,
    /// The approval level and the role that approved at it.
    pub level: Option<(i64, &'a str)>,
}

/// Appends a step to an instance's history as one statement (its sequence number the
/// next after the instance's last), for a batch. Run it after the instance's update in
/// the same transaction: on PostgreSQL that update's row lock keeps two transactions
/// from taking the same number.
pub fn step_insert_stmt(s: &NewStep<'_>) -> Stmt {
    Stmt::new(
        "INSERT INTO workflow_steps (instance_id, seq, at_ms, actor, action, from_node, to_node, detail,
            approval_level, approval_role)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9
         FROM workflow_steps WHERE instance_id = $1",
        vec![
            s.instance_id.into(),
            s.at_ms.into(),
            s.actor.into(),
            s.action.into(),
            s.from_node.into(),
            s.to_node.into(),
            s.detail.into(),
            s.level.map(|l| l.0).into(),
            s.level.map(|l| l.1).into(),
        ],
    )
}

/// Appends a step to an instance's history (sequence numbers without gaps); its number.
#[allow(clippy::too_many_arguments)] // one column each
pub async fn step_append(
    conn: &mut sqlx::AnyConnection,
    instance_id: i64,
    at_ms: i64,
    actor: Option<i64>,
    action: &str,
    from_node: &str,
    to_node: &str,
    detail: Option<&str>,
) -> Result<i64, StoreError> {
    let mut stmt = step_insert_stmt(&NewStep {
        instance_id,
        at_ms,
        actor,
        action,
        from_node,
        to_node,
        detail,
        level: None,
    });
    stmt.sql.push_str(" RETURNING seq");
    let rows = stmt.fetch_all(conn).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Invalid("the step's insert returned no row".into()))?;
    Ok(row.try_get("seq")?)
}

impl Store {
    /// The newest active version of a definition.
    pub async fn definition_latest(&self, code: &str) -> Result<Option<DefinitionRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DEF_COLUMNS} FROM workflow_definitions WHERE code = $1 AND active = 1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(code)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(def_row).transpose()
    }

    pub async fn definition_version(
        &self,
        code: &str,
        version: i64,
    ) -> Result<Option<DefinitionRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DEF_COLUMNS} FROM workflow_definitions WHERE code = $1 AND version = $2"
        ))
        .bind(code)
        .bind(version)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(def_row).transpose()
    }

    /// Every version of every definition, newest first within a code.
    pub async fn definitions(&self) -> Result<Vec<DefinitionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEF_COLUMNS} FROM workflow_definitions ORDER BY code, version DESC"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(def_row).collect()
    }

    pub async fn instance(&self, id: i64) -> Result<Option<InstanceRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(instance_row).transpose()
    }

    pub async fn instance_of(
        &self,
        subject_type: &str,
        subject_id: i64,
    ) -> Result<Option<InstanceRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE subject_type = $1 AND subject_id = $2
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(subject_type)
        .bind(subject_id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(instance_row).transpose()
    }

    /// Running instances waiting for one of `roles` or for `user` (a worklist), oldest
    /// step first.
    pub async fn worklist(
        &self,
        roles: &[String],
        user: i64,
        limit: i64,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        let mut marks = Vec::new();
        for i in 0..roles.len() {
            marks.push(format!("${}", i + 3));
        }
        let role_cond = if marks.is_empty() {
            String::new()
        } else {
            format!(
                " OR (assignee_user IS NULL AND assignee_role IN ({}))",
                marks.join(", ")
            )
        };
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instances
             WHERE status = 'running' AND (assignee_user = $1{role_cond})
             ORDER BY node_entered_at_ms, id LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(user).bind(limit);
        for r in roles {
            q = q.bind(r.as_str());
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(instance_row).collect()
    }

    /// Running instances that entered their node before `before_ms` (time limits).
    pub async fn instances_waiting_since(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE status = 'running' AND node_entered_at_ms < $1
             ORDER BY node_entered_at_ms LIMIT $2"
        ))
        .bind(before_ms)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(instance_row).collect()
    }

    /// The history of an instance, in order.
    pub async fn steps(&self, instance_id: i64) -> Result<Vec<StepRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, action, from_node, to_node, detail FROM workflow_steps
             WHERE instance_id = $1 ORDER BY seq",
        )
        .bind(instance_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRow {
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    from_node: r.try_get("from_node")?,
                    to_node: r.try_get("to_node")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Time spent per node over every instance of a definition: (node, times it was
    /// left, total milliseconds spent in it), from consecutive steps of the history.
    pub async fn node_durations(&self, code: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.to_node AS node,
                    CAST(SUM(CASE WHEN b.to_node <> a.to_node THEN 1 ELSE 0 END) AS BIGINT) AS n,
                    CAST(SUM(b.at_ms - a.at_ms) AS BIGINT) AS total
             FROM workflow_steps a
             JOIN workflow_steps b ON b.instance_id = a.instance_id AND b.seq = a.seq + 1
             JOIN workflow_instances i ON i.id = a.instance_id
             WHERE i.definition_code = $1
             GROUP BY a.to_node ORDER BY a.to_node",
        )
        .bind(code)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("node")?,
                    r.try_get("n")?,
                    r.try_get::<Option<i64>, _>("total")?.unwrap_or(0),
                ))
            })
            .collect()
    }
}

/// An exception about an instance (time limit reached, stuck).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    pub instance_id: i64,
    pub node: String,
    pub kind: String,
    pub assignee_role: Option<String>,
    pub assignee_user: Option<i64>,
    pub detail: Option<String>,
    pub created_at_ms: i64,
}

fn alert_row(r: &AnyRow) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        instance_id: r.try_get("instance_id")?,
        node: r.try_get("node")?,
        kind: r.try_get("kind")?,
        assignee_role: r.try_get("assignee_role")?,
        assignee_user: r.try_get("assignee_user")?,
        detail: r.try_get("detail")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// Raises an alert once per (instance, node entry, kind); true when it is new.
#[allow(clippy::too_many_arguments)] // one column each
pub async fn alert_raise<'c, E>(
    exec: E,
    instance_id: i64,
    node: &str,
    node_entered_at_ms: i64,
    kind: &str,
    assignee_role: Option<&str>,
    assignee_user: Option<i64>,
    detail: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO workflow_alerts (instance_id, node, node_entered_at_ms, kind, assignee_role, assignee_user, detail, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (instance_id, node_entered_at_ms, kind) DO NOTHING",
    )
    .bind(instance_id)
    .bind(node)
    .bind(node_entered_at_ms)
    .bind(kind)
    .bind(assignee_role)
    .bind(assignee_user)
    .bind(detail)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Open alerts for one of `roles` or for `user`, newest first.
    pub async fn open_alerts(
        &self,
        roles: &[String],
        user: i64,
        limit: i64,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let mut marks = Vec::new();
        for i in 0..roles.len() {
            marks.push(format!("${}", i + 3));
        }
        let role_cond = if marks.is_empty() {
            String::new()
        } else {
            format!(" OR assignee_role IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT id, instance_id, node, kind, assignee_role, assignee_user, detail, created_at_ms
             FROM workflow_alerts WHERE acknowledged_at_ms IS NULL AND (assignee_user = $1{role_cond})
             ORDER BY id DESC LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(user).bind(limit);
        for r in roles {
            q = q.bind(r.as_str());
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(alert_row).collect()
    }

    /// All alerts of an instance, oldest first.
    pub async fn alerts_of(&self, instance_id: i64) -> Result<Vec<AlertRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, instance_id, node, kind, assignee_role, assignee_user, detail, created_at_ms
             FROM workflow_alerts WHERE instance_id = $1 ORDER BY id",
        )
        .bind(instance_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(alert_row).collect()
    }
}
