//! Risk warnings at rest (issue #7 item 3): warning rules and their versions, the
//! playbook of each severity, risk events, warnings and their tasks, and population
//! stability (PSI baselines, score observations, runs and results).
//!
//! The engine (compiling rules, windowed aggregates, what fires) is in the server; this
//! module stores and reads. Functions that must join the caller's transaction take
//! `&mut AnyConnection`.

use crate::customers::{bind_all, scope_sql, Bind, ScopeFilter};
use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

// ---------------------------------------------------------------------------------------
// Rules

/// A warning rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub category: String,
    pub stage: String,
    pub severity: String,
    /// Comma-separated event types; empty = every event.
    pub on_events: String,
    pub condition: String,
    /// JSON list of actions.
    pub actions: String,
    pub enabled: bool,
    pub compile_error: Option<String>,
    pub version: i64,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub updated_by: Option<i64>,
    pub updated_at_ms: i64,
}

const RULE_COLUMNS: &str =
    "id, code, name, category, stage, severity, on_events, condition, actions, enabled, \
    compile_error, version, created_by, created_at_ms, updated_by, updated_at_ms";

fn rule_row(r: &AnyRow) -> Result<RuleRow, StoreError> {
    Ok(RuleRow {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        category: r.try_get("category")?,
        stage: r.try_get("stage")?,
        severity: r.try_get("severity")?,
        on_events: r.try_get("on_events")?,
        condition: r.try_get("condition")?,
        actions: r.try_get("actions")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        compile_error: r.try_get("compile_error")?,
        version: r.try_get("version")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_by: r.try_get("updated_by")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// The editable values of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleValues<'a> {
    pub name: &'a str,
    pub category: &'a str,
    pub stage: &'a str,
    pub severity: &'a str,
    pub on_events: &'a str,
    pub condition: &'a str,
    pub actions: &'a str,
    /// The compile error of `condition`, if any.
    pub compile_error: Option<&'a str>,
}

async fn rule_version_insert(
    conn: &mut AnyConnection,
    rule_id: i64,
    version: i64,
    v: &RuleValues<'_>,
    by: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO risk_rule_versions (rule_id, version, name, category, stage, severity, on_events, condition, actions, changed_by, changed_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(rule_id)
    .bind(version)
    .bind(v.name)
    .bind(v.category)
    .bind(v.stage)
    .bind(v.severity)
    .bind(v.on_events)
    .bind(v.condition)
    .bind(v.actions)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts a new (disabled) rule and its version 1; returns its id.
pub async fn rule_insert(
    conn: &mut AnyConnection,
    code: &str,
    v: &RuleValues<'_>,
    by: Option<i64>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO risk_rules (code, name, category, stage, severity, on_events, condition, actions, enabled, compile_error,
            version, created_by, created_at_ms, updated_by, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, 1, $10, $11, $10, $11) RETURNING id",
    )
    .bind(code)
    .bind(v.name)
    .bind(v.category)
    .bind(v.stage)
    .bind(v.severity)
    .bind(v.on_events)
    .bind(v.condition)
    .bind(v.actions)
    .bind(v.compile_error)
    .bind(by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    rule_version_insert(conn, id, 1, v, by, now_ms).await?;
    Ok(id)
}

/// Replaces a rule's values if it is still at `expected_version`; an invalid condition
/// also disables it. Returns the new version, or `None` if it changed meanwhile.
pub async fn rule_update(
    conn: &mut AnyConnection,
    id: i64,
    expected_version: i64,
    v: &RuleValues<'_>,
    by: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_rules SET name = $1, category = $2, stage = $3, severity = $4, on_events = $5, condition = $6,
            actions = $7, compile_error = $8, enabled = CASE WHEN $8 IS NULL THEN enabled ELSE 0 END,
            version = version + 1, updated_by = $9, updated_at_ms = $10
         WHERE id = $11 AND version = $12",
    )
    .bind(v.name)
    .bind(v.category)
    .bind(v.stage)
    .bind(v.severity)
    .bind(v.on_events)
    .bind(v.condition)
    .bind(v.actions)
    .bind(v.compile_error)
    .bind(by)
    .bind(now_ms)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(None);
    }
    let version = expected_version + 1;
    rule_version_insert(conn, id, version, v, by, now_ms).await?;
    Ok(Some(version))
}

/// Enables or disables a rule; enabling only succeeds while it compiles. Returns whether
/// the row changed.
pub async fn rule_set_enabled(
    conn: &mut AnyConnection,
    id: i64,
    enabled: bool,
    by: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_rules SET enabled = $1, updated_by = $2, updated_at_ms = $3
         WHERE id = $4 AND enabled <> $1 AND ($1 = 0 OR compile_error IS NULL)",
    )
    .bind(i64::from(enabled))
    .bind(by)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

// ---------------------------------------------------------------------------------------
// Playbooks

/// The emergency playbook of one severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookRow {
    pub severity: String,
    pub respond_within_hours: i64,
    /// Comma-separated role codes.
    pub notify_roles: String,
    pub steps: String,
    pub version: i64,
    pub updated_by: Option<i64>,
    pub updated_at_ms: i64,
}

fn playbook_row(r: &AnyRow) -> Result<PlaybookRow, StoreError> {
    Ok(PlaybookRow {
        severity: r.try_get("severity")?,
        respond_within_hours: r.try_get("respond_within_hours")?,
        notify_roles: r.try_get("notify_roles")?,
        steps: r.try_get("steps")?,
        version: r.try_get("version")?,
        updated_by: r.try_get("updated_by")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

const PLAYBOOK_COLUMNS: &str =
    "severity, respond_within_hours, notify_roles, steps, version, updated_by, updated_at_ms";

/// The playbook of a severity, inside a transaction.
pub async fn playbook_get(
    conn: &mut AnyConnection,
    severity: &str,
) -> Result<Option<PlaybookRow>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {PLAYBOOK_COLUMNS} FROM risk_playbooks WHERE severity = $1"
    ))
    .bind(severity)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(playbook_row).transpose()
}

/// Replaces a playbook if it is still at `expected_version`.
#[allow(clippy::too_many_arguments)]
pub async fn playbook_update(
    conn: &mut AnyConnection,
    severity: &str,
    expected_version: i64,
    respond_within_hours: i64,
    notify_roles: &str,
    steps: &str,
    by: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_playbooks SET respond_within_hours = $1, notify_roles = $2, steps = $3, version = version + 1,
            updated_by = $4, updated_at_ms = $5
         WHERE severity = $6 AND version = $7",
    )
    .bind(respond_within_hours)
    .bind(notify_roles)
    .bind(steps)
    .bind(by)
    .bind(now_ms)
    .bind(severity)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

// ---------------------------------------------------------------------------------------
// Events

/// A risk event to store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub customer_id: Option<i64>,
    pub loan_ref: Option<&'a str>,
    pub partner_code: Option<&'a str>,
    pub occurred_at_ms: i64,
    pub amount_fen: Option<i64>,
    pub days: Option<i64>,
    pub count_value: Option<i64>,
    pub rate: Option<&'a str>,
    pub code: Option<&'a str>,
    pub payload: &'a str,
    pub source: &'a str,
    pub dedupe_key: Option<&'a str>,
}

/// A stored risk event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub customer_id: Option<i64>,
    pub loan_ref: Option<String>,
    pub partner_code: Option<String>,
    pub occurred_at_ms: i64,
    pub amount_fen: Option<i64>,
    pub days: Option<i64>,
    pub count_value: Option<i64>,
    pub rate: Option<String>,
    pub code: Option<String>,
    pub payload: String,
    pub source: String,
    pub received_at_ms: i64,
}

const EVENT_COLUMNS: &str =
    "id, event_type, customer_id, loan_ref, partner_code, occurred_at_ms, amount_fen, days, \
    count_value, rate, code, payload, source, received_at_ms";

fn event_row(r: &AnyRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: r.try_get("id")?,
        event_type: r.try_get("event_type")?,
        customer_id: r.try_get("customer_id")?,
        loan_ref: r.try_get("loan_ref")?,
        partner_code: r.try_get("partner_code")?,
        occurred_at_ms: r.try_get("occurred_at_ms")?,
        amount_fen: r.try_get("amount_fen")?,
        days: r.try_get("days")?,
        count_value: r.try_get("count_value")?,
        rate: r.try_get("rate")?,
        code: r.try_get("code")?,
        payload: r.try_get("payload")?,
        source: r.try_get("source")?,
        received_at_ms: r.try_get("received_at_ms")?,
    })
}

/// Stores an event; with a dedupe key already stored, returns the earlier event's id and
/// `false` (nothing new).
pub async fn event_insert(
    conn: &mut AnyConnection,
    e: &NewEvent<'_>,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    if let Some(key) = e.dedupe_key {
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM risk_events WHERE dedupe_key = $1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO risk_events (event_type, customer_id, loan_ref, partner_code, occurred_at_ms, amount_fen, days,
            count_value, rate, code, payload, source, dedupe_key, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(e.event_type)
    .bind(e.customer_id)
    .bind(e.loan_ref)
    .bind(e.partner_code)
    .bind(e.occurred_at_ms)
    .bind(e.amount_fen)
    .bind(e.days)
    .bind(e.count_value)
    .bind(e.rate)
    .bind(e.code)
    .bind(e.payload)
    .bind(e.source)
    .bind(e.dedupe_key)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, true))
}

/// A customer's events with `from_ms < occurred_at_ms <= to_ms`, oldest first (ties by
/// id), for the windowed aggregates.
pub async fn customer_events(
    conn: &mut AnyConnection,
    customer_id: i64,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM risk_events WHERE customer_id = $1 AND occurred_at_ms > $2 AND occurred_at_ms <= $3
         ORDER BY occurred_at_ms, id"
    ))
    .bind(customer_id)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_row).collect()
}

// ---------------------------------------------------------------------------------------
// Warnings and tasks

/// A warning to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWarning<'a> {
    pub rule_id: Option<i64>,
    pub rule_code: &'a str,
    pub rule_version: i64,
    pub category: &'a str,
    pub stage: &'a str,
    pub severity: &'a str,
    pub subject_type: &'a str,
    pub subject_ref: &'a str,
    pub customer_id: Option<i64>,
    pub event_id: Option<i64>,
    pub title: &'a str,
    pub facts: &'a str,
    pub opened_at_ms: i64,
    pub due_at_ms: i64,
    pub notify_roles: &'a str,
    pub playbook_steps: &'a str,
}

impl NewWarning<'_> {
    /// The key that allows one open warning per rule and subject.
    pub fn open_key(&self) -> String {
        open_key(self.rule_code, self.subject_type, self.subject_ref)
    }
}

/// `<rule>|<subject_type>:<subject_ref>`.
pub fn open_key(rule_code: &str, subject_type: &str, subject_ref: &str) -> String {
    format!("{rule_code}|{subject_type}:{subject_ref}")
}

/// A stored warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningRow {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub rule_code: String,
    pub rule_version: i64,
    pub category: String,
    pub stage: String,
    pub severity: String,
    pub subject_type: String,
    pub subject_ref: String,
    pub customer_id: Option<i64>,
    /// The customer's name (joined), if any.
    pub customer_name: Option<String>,
    pub event_id: Option<i64>,
    pub title: String,
    pub facts: String,
    pub status: String,
    pub hits: i64,
    pub last_hit_at_ms: i64,
    pub opened_at_ms: i64,
    pub due_at_ms: i64,
    pub notify_roles: String,
    pub playbook_steps: String,
    pub actions_taken: String,
    pub acknowledged_by: Option<i64>,
    pub acknowledged_at_ms: Option<i64>,
    pub acknowledge_note: Option<String>,
    pub closed_by: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub close_note: Option<String>,
}

const WARNING_COLUMNS: &str = "w.id, w.rule_id, w.rule_code, w.rule_version, w.category, w.stage, w.severity, \
    w.subject_type, w.subject_ref, w.customer_id, c.name AS customer_name, w.event_id, w.title, w.facts, w.status, \
    w.hits, w.last_hit_at_ms, w.opened_at_ms, w.due_at_ms, w.notify_roles, w.playbook_steps, w.actions_taken, \
    w.acknowledged_by, w.acknowledged_at_ms, w.acknowledge_note, w.closed_by, w.closed_at_ms, w.close_note";

fn warning_row(r: &AnyRow) -> Result<WarningRow, StoreError> {
    Ok(WarningRow {
        id: r.try_get("id")?,
        rule_id: r.try_get("rule_id")?,
        rule_code: r.try_get("rule_code")?,
        rule_version: r.try_get("rule_version")?,
        category: r.try_get("category")?,
        stage: r.try_get("stage")?,
        severity: r.try_get("severity")?,
        subject_type: r.try_get("subject_type")?,
        subject_ref: r.try_get("subject_ref")?,
        customer_id: r.try_get("customer_id")?,
        customer_name: r.try_get("customer_name")?,
        event_id: r.try_get("event_id")?,
        title: r.try_get("title")?,
        facts: r.try_get("facts")?,
        status: r.try_get("status")?,
        hits: r.try_get("hits")?,
        last_hit_at_ms: r.try_get("last_hit_at_ms")?,
        opened_at_ms: r.try_get("opened_at_ms")?,
        due_at_ms: r.try_get("due_at_ms")?,
        notify_roles: r.try_get("notify_roles")?,
        playbook_steps: r.try_get("playbook_steps")?,
        actions_taken: r.try_get("actions_taken")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledged_at_ms: r.try_get("acknowledged_at_ms")?,
        acknowledge_note: r.try_get("acknowledge_note")?,
        closed_by: r.try_get("closed_by")?,
        closed_at_ms: r.try_get("closed_at_ms")?,
        close_note: r.try_get("close_note")?,
    })
}

/// The open (or acknowledged) warning of a rule and subject, if any: `(id, hits)`.
pub async fn warning_open_for(
    conn: &mut AnyConnection,
    open_key: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let r = sqlx::query("SELECT id, hits FROM risk_warnings WHERE open_key = $1")
        .bind(open_key)
        .fetch_optional(&mut *conn)
        .await?;
    r.map(|r| Ok((r.try_get("id")?, r.try_get("hits")?)))
        .transpose()
}

/// Opens a warning; returns its id.
pub async fn warning_insert(
    conn: &mut AnyConnection,
    w: &NewWarning<'_>,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO risk_warnings (rule_id, rule_code, rule_version, category, stage, severity, subject_type, subject_ref,
            customer_id, event_id, title, facts, status, hits, last_hit_at_ms, opened_at_ms, due_at_ms, notify_roles,
            playbook_steps, actions_taken, open_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', 1, $13, $13, $14, $15, $16, '[]', $17)
         RETURNING id",
    )
    .bind(w.rule_id)
    .bind(w.rule_code)
    .bind(w.rule_version)
    .bind(w.category)
    .bind(w.stage)
    .bind(w.severity)
    .bind(w.subject_type)
    .bind(w.subject_ref)
    .bind(w.customer_id)
    .bind(w.event_id)
    .bind(w.title)
    .bind(w.facts)
    .bind(w.opened_at_ms)
    .bind(w.due_at_ms)
    .bind(w.notify_roles)
    .bind(w.playbook_steps)
    .bind(w.open_key())
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Counts a repeat hit on an open warning.
pub async fn warning_hit(conn: &mut AnyConnection, id: i64, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE risk_warnings SET hits = hits + 1, last_hit_at_ms = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records what the actions did (JSON list).
pub async fn warning_set_actions(
    conn: &mut AnyConnection,
    id: i64,
    actions_taken: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE risk_warnings SET actions_taken = $1 WHERE id = $2")
        .bind(actions_taken)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Acknowledges an open warning; `false` if it is not open.
pub async fn warning_acknowledge(
    conn: &mut AnyConnection,
    id: i64,
    by: i64,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_warnings SET status = 'acknowledged', acknowledged_by = $1, acknowledged_at_ms = $2, acknowledge_note = $3
         WHERE id = $4 AND status = 'open'",
    )
    .bind(by)
    .bind(now_ms)
    .bind(note)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Closes a warning that is not closed; frees its rule and subject for a new warning.
pub async fn warning_close(
    conn: &mut AnyConnection,
    id: i64,
    by: Option<i64>,
    note: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_warnings SET status = 'closed', closed_by = $1, closed_at_ms = $2, close_note = $3, open_key = NULL
         WHERE id = $4 AND status <> 'closed'",
    )
    .bind(by)
    .bind(now_ms)
    .bind(note)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// A task of a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: i64,
    pub warning_id: i64,
    pub role: String,
    pub title: String,
    pub due_at_ms: i64,
    pub status: String,
    pub done_by: Option<i64>,
    pub done_at_ms: Option<i64>,
    pub note: Option<String>,
    pub created_at_ms: i64,
    /// The warning's title and severity (joined).
    pub warning_title: String,
    pub warning_severity: String,
}

fn task_row(r: &AnyRow) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: r.try_get("id")?,
        warning_id: r.try_get("warning_id")?,
        role: r.try_get("role")?,
        title: r.try_get("title")?,
        due_at_ms: r.try_get("due_at_ms")?,
        status: r.try_get("status")?,
        done_by: r.try_get("done_by")?,
        done_at_ms: r.try_get("done_at_ms")?,
        note: r.try_get("note")?,
        created_at_ms: r.try_get("created_at_ms")?,
        warning_title: r.try_get("warning_title")?,
        warning_severity: r.try_get("warning_severity")?,
    })
}

const TASK_SELECT: &str =
    "SELECT t.id, t.warning_id, t.role, t.title, t.due_at_ms, t.status, t.done_by, t.done_at_ms, \
    t.note, t.created_at_ms, w.title AS warning_title, w.severity AS warning_severity \
    FROM risk_tasks t JOIN risk_warnings w ON w.id = t.warning_id";

/// Adds a task to a warning; returns its id.
pub async fn task_insert(
    conn: &mut AnyConnection,
    warning_id: i64,
    role: &str,
    title: &str,
    due_at_ms: i64,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO risk_tasks (warning_id, role, title, due_at_ms, status, created_at_ms)
         VALUES ($1, $2, $3, $4, 'open', $5) RETURNING id",
    )
    .bind(warning_id)
    .bind(role)
    .bind(title)
    .bind(due_at_ms)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// Marks an open task done; `false` if it is not open.
pub async fn task_done(
    conn: &mut AnyConnection,
    id: i64,
    by: i64,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE risk_tasks SET status = 'done', done_by = $1, done_at_ms = $2, note = $3 WHERE id = $4 AND status = 'open'",
    )
    .bind(by)
    .bind(now_ms)
    .bind(note)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// A warning search.
#[derive(Debug, Clone)]
pub struct WarningQuery<'a> {
    pub scope: &'a ScopeFilter,
    pub status: Option<&'a str>,
    /// `true`: only open or acknowledged.
    pub not_closed: bool,
    pub severity: Option<&'a str>,
    pub category: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub customer_id: Option<i64>,
    /// Only those past due and not closed, as of this instant.
    pub overdue_at_ms: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// One count of warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningCount {
    pub category: String,
    pub severity: String,
    pub status: String,
    pub count: i64,
}

/// A PSI run with its results.
#[derive(Debug, Clone, PartialEq)]
pub struct PsiRun {
    pub id: i64,
    pub baseline_id: i64,
    pub run_on: String,
    pub window_from_ms: i64,
    pub window_to_ms: i64,
    pub rows: i64,
    pub threshold: f64,
    pub alert: bool,
    pub warning_id: Option<i64>,
    pub created_at_ms: i64,
    pub results: Vec<PsiResult>,
}

/// PSI of one distribution in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PsiResult {
    pub name: String,
    pub psi: f64,
    pub alert: bool,
    /// JSON: bins, expected, actual.
    pub bins: String,
}

/// A model under stability monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineRow {
    pub id: i64,
    pub model_name: String,
    pub model_version: String,
    pub model_json: String,
    pub active: bool,
    pub registered_by: String,
    pub registered_at_ms: i64,
}

/// A scored application, as fed by the decision engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRow {
    pub id: i64,
    pub subject: Option<String>,
    pub observed_at_ms: i64,
    pub score: i64,
    /// JSON object: feature → value.
    pub features: String,
}

/// Registers a model for monitoring (a second registration of the same version is
/// ignored); returns its id.
pub async fn baseline_insert(
    conn: &mut AnyConnection,
    model_name: &str,
    model_version: &str,
    model_json: &str,
    by: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    sqlx::query(
        "INSERT INTO psi_baselines (model_name, model_version, model_json, active, registered_by, registered_at_ms)
         VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (model_name, model_version) DO NOTHING",
    )
    .bind(model_name)
    .bind(model_version)
    .bind(model_json)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_scalar(
        "SELECT id FROM psi_baselines WHERE model_name = $1 AND model_version = $2",
    )
    .bind(model_name)
    .bind(model_version)
    .fetch_one(&mut *conn)
    .await?)
}

/// Records one scored application (the decision engine calls this in its transaction).
pub async fn observation_insert(
    conn: &mut AnyConnection,
    model_name: &str,
    model_version: &str,
    subject: Option<&str>,
    observed_at_ms: i64,
    score: i64,
    features_json: &str,
) -> Result<i64, StoreError> {
    let rows = observation_insert_stmt(
        model_name,
        model_version,
        subject,
        observed_at_ms,
        score,
        features_json,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .first()
        .ok_or_else(|| StoreError::Invalid("the observation insert returned no id".into()))?
        .try_get("id")?)
}

/// [`observation_insert`] as a statement (returning the id).
pub fn observation_insert_stmt(
    model_name: &str,
    model_version: &str,
    subject: Option<&str>,
    observed_at_ms: i64,
    score: i64,
    features_json: &str,
) -> crate::batch::Stmt {
    crate::batch::Stmt::new(
        "INSERT INTO score_observations (model_name, model_version, subject, observed_at_ms, score, features)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        vec![
            model_name.into(),
            model_version.into(),
            subject.into(),
            observed_at_ms.into(),
            score.into(),
            features_json.into(),
        ],
    )
}

/// Stores a run, once per baseline and day: `None` if the day's run exists.
#[allow(clippy::too_many_arguments)]
pub async fn psi_run_insert(
    conn: &mut AnyConnection,
    baseline_id: i64,
    run_on: &str,
    window_from_ms: i64,
    window_to_ms: i64,
    rows: i64,
    threshold: f64,
    alert: bool,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM psi_runs WHERE baseline_id = $1 AND run_on = $2")
            .bind(baseline_id)
            .bind(run_on)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_some() {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO psi_runs (baseline_id, run_on, window_from_ms, window_to_ms, rows_observed, threshold, alert, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(baseline_id)
    .bind(run_on)
    .bind(window_from_ms)
    .bind(window_to_ms)
    .bind(rows)
    .bind(threshold)
    .bind(i64::from(alert))
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(id))
}

/// Stores one distribution's PSI of a run.
pub async fn psi_result_insert(
    conn: &mut AnyConnection,
    run_id: i64,
    name: &str,
    psi: f64,
    alert: bool,
    bins_json: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO psi_results (run_id, name, psi, alert, bins) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(run_id)
    .bind(name)
    .bind(psi)
    .bind(i64::from(alert))
    .bind(bins_json)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Links a run to the warning it opened.
pub async fn psi_run_set_warning(
    conn: &mut AnyConnection,
    run_id: i64,
    warning_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE psi_runs SET warning_id = $1 WHERE id = $2")
        .bind(warning_id)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn baseline_row(r: &AnyRow) -> Result<BaselineRow, StoreError> {
    Ok(BaselineRow {
        id: r.try_get("id")?,
        model_name: r.try_get("model_name")?,
        model_version: r.try_get("model_version")?,
        model_json: r.try_get("model_json")?,
        active: r.try_get::<i64, _>("active")? != 0,
        registered_by: r.try_get("registered_by")?,
        registered_at_ms: r.try_get("registered_at_ms")?,
    })
}

/// The enabled rules, read on the caller's connection (inside a transaction that must
/// not wait for a second pool connection).
pub async fn rules_enabled(conn: &mut AnyConnection) -> Result<Vec<RuleRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM risk_rules WHERE enabled = 1 ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(rule_row).collect()
}

impl Store {
    /// Every rule, by code.
    pub async fn risk_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM risk_rules ORDER BY code"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(rule_row).collect()
    }

    /// The enabled rules, by id.
    pub async fn risk_rules_enabled(&self) -> Result<Vec<RuleRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM risk_rules WHERE enabled = 1 ORDER BY id"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(rule_row).collect()
    }

    pub async fn risk_rule_by_code(&self, code: &str) -> Result<Option<RuleRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM risk_rules WHERE code = $1"
        ))
        .bind(code)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(rule_row).transpose()
    }

    /// Every playbook, low to critical.
    pub async fn risk_playbooks(&self) -> Result<Vec<PlaybookRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAYBOOK_COLUMNS} FROM risk_playbooks ORDER BY respond_within_hours DESC, severity"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(playbook_row).collect()
    }

    pub async fn risk_event(&self, id: i64) -> Result<Option<EventRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM risk_events WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(event_row).transpose()
    }

    /// One warning, whatever the scope (check the scope before showing it).
    pub async fn risk_warning(&self, id: i64) -> Result<Option<WarningRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {WARNING_COLUMNS} FROM risk_warnings w LEFT JOIN customers c ON c.id = w.customer_id WHERE w.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(warning_row).transpose()
    }

    /// Warnings matching the query in its scope, newest first, and the total.
    pub async fn risk_warnings(
        &self,
        q: &WarningQuery<'_>,
    ) -> Result<(Vec<WarningRow>, i64), StoreError> {
        let mut binds: Vec<Bind<'_>> = Vec::new();
        let mut scope = String::from("(1 = 1");
        scope_sql(q.scope, &mut scope, &mut binds);
        scope.push(')');
        let mut cond = format!(" WHERE (w.customer_id IS NULL OR {scope})");
        for (col, v) in [
            ("w.status", q.status),
            ("w.severity", q.severity),
            ("w.category", q.category),
            ("w.stage", q.stage),
        ] {
            if let Some(v) = v {
                binds.push(Bind::Str(v));
                cond.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        if q.not_closed {
            cond.push_str(" AND w.status <> 'closed'");
        }
        if let Some(c) = q.customer_id {
            binds.push(Bind::I64(c));
            cond.push_str(&format!(" AND w.customer_id = ${}", binds.len()));
        }
        if let Some(now) = q.overdue_at_ms {
            binds.push(Bind::I64(now));
            cond.push_str(&format!(
                " AND w.status <> 'closed' AND w.due_at_ms < ${}",
                binds.len()
            ));
        }
        let from = "FROM risk_warnings w LEFT JOIN customers c ON c.id = w.customer_id";
        let total: i64 = bind_all(
            sqlx::query(&format!("SELECT COUNT(*) {from}{cond}")),
            &binds,
        )
        .fetch_one(self.reader())
        .await?
        .try_get(0)?;
        let n = binds.len();
        let rows = bind_all(
            sqlx::query(&format!(
                "SELECT {WARNING_COLUMNS} {from}{cond} ORDER BY w.id DESC LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            )),
            &binds,
        )
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(self.reader())
        .await?;
        Ok((
            rows.iter().map(warning_row).collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Warnings by category, severity and status, opened at or after `since_ms`, in scope.
    pub async fn risk_warning_counts(
        &self,
        scope: &ScopeFilter,
        since_ms: i64,
    ) -> Result<Vec<WarningCount>, StoreError> {
        let mut binds: Vec<Bind<'_>> = vec![Bind::I64(since_ms)];
        let mut s = String::from("(1 = 1");
        scope_sql(scope, &mut s, &mut binds);
        s.push(')');
        let rows = bind_all(
            sqlx::query(&format!(
                "SELECT w.category, w.severity, w.status, COUNT(*) AS n
                 FROM risk_warnings w LEFT JOIN customers c ON c.id = w.customer_id
                 WHERE w.opened_at_ms >= $1 AND (w.customer_id IS NULL OR {s})
                 GROUP BY w.category, w.severity, w.status ORDER BY w.category, w.severity, w.status"
            )),
            &binds,
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WarningCount {
                    category: r.try_get("category")?,
                    severity: r.try_get("severity")?,
                    status: r.try_get("status")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// The tasks of a warning.
    pub async fn risk_tasks_of(&self, warning_id: i64) -> Result<Vec<TaskRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{TASK_SELECT} WHERE t.warning_id = $1 ORDER BY t.id"
        ))
        .bind(warning_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(task_row).collect()
    }

    pub async fn risk_task(&self, id: i64) -> Result<Option<TaskRow>, StoreError> {
        let r = sqlx::query(&format!("{TASK_SELECT} WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(task_row).transpose()
    }

    /// Open tasks for any of `roles`, earliest due first.
    pub async fn risk_tasks_for_roles(&self, roles: &[String]) -> Result<Vec<TaskRow>, StoreError> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=roles.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "{TASK_SELECT} WHERE t.status = 'open' AND t.role IN ({}) ORDER BY t.due_at_ms, t.id LIMIT 200",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in roles {
            q = q.bind(r.as_str());
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(task_row).collect()
    }

    /// Models under monitoring (all, or only active ones).
    pub async fn psi_baselines(&self, only_active: bool) -> Result<Vec<BaselineRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, model_name, model_version, model_json, active, registered_by, registered_at_ms
             FROM psi_baselines WHERE active = 1 OR $1 = 0 ORDER BY model_name, model_version",
        )
        .bind(i64::from(only_active))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(baseline_row).collect()
    }

    /// Observations of a model version with `from_ms < observed_at_ms <= to_ms`.
    pub async fn score_observations(
        &self,
        model_name: &str,
        model_version: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ObservationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, subject, observed_at_ms, score, features FROM score_observations
             WHERE model_name = $1 AND model_version = $2 AND observed_at_ms > $3 AND observed_at_ms <= $4
             ORDER BY observed_at_ms, id",
        )
        .bind(model_name)
        .bind(model_version)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ObservationRow {
                    id: r.try_get("id")?,
                    subject: r.try_get("subject")?,
                    observed_at_ms: r.try_get("observed_at_ms")?,
                    score: r.try_get("score")?,
                    features: r.try_get("features")?,
                })
            })
            .collect()
    }

    /// The latest runs of a baseline (newest first) with their results.
    pub async fn psi_runs(&self, baseline_id: i64, limit: i64) -> Result<Vec<PsiRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, baseline_id, run_on, window_from_ms, window_to_ms, rows_observed, threshold, alert, warning_id, created_at_ms
             FROM psi_runs WHERE baseline_id = $1 ORDER BY run_on DESC, id DESC LIMIT $2",
        )
        .bind(baseline_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let results = sqlx::query(
                "SELECT name, psi, alert, bins FROM psi_results WHERE run_id = $1 ORDER BY CASE WHEN name = 'score' THEN 0 ELSE 1 END, id",
            )
            .bind(id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|x| {
                Ok(PsiResult {
                    name: x.try_get("name")?,
                    psi: x.try_get("psi")?,
                    alert: x.try_get::<i64, _>("alert")? != 0,
                    bins: x.try_get("bins")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(PsiRun {
                id,
                baseline_id: r.try_get("baseline_id")?,
                run_on: r.try_get("run_on")?,
                window_from_ms: r.try_get("window_from_ms")?,
                window_to_ms: r.try_get("window_to_ms")?,
                rows: r.try_get("rows_observed")?,
                threshold: r.try_get("threshold")?,
                alert: r.try_get::<i64, _>("alert")? != 0,
                warning_id: r.try_get("warning_id")?,
                created_at_ms: r.try_get("created_at_ms")?,
                results,
            });
        }
        Ok(out)
    }
}

/// A partner's events that have no customer, `from_ms < occurred_at_ms <= to_ms`.
pub async fn partner_events(
    conn: &mut AnyConnection,
    partner_code: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM risk_events WHERE customer_id IS NULL AND partner_code = $1
            AND occurred_at_ms > $2 AND occurred_at_ms <= $3 ORDER BY occurred_at_ms, id"
    ))
    .bind(partner_code)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_row).collect()
}

/// What rules may know of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFactsRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub birth_date: Option<String>,
    pub region_code: Option<String>,
    /// Links to enterprises or persons in `customer_relations`.
    pub links: i64,
}

pub async fn customer_facts(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<CustomerFactsRow>, StoreError> {
    let r = sqlx::query(
        "SELECT id, name, kind, birth_date, region_code,
            (SELECT COUNT(*) FROM customer_relations WHERE enterprise_id = $1 OR person_id = $1) AS links
         FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    r.map(|r| {
        Ok(CustomerFactsRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            birth_date: r.try_get("birth_date")?,
            region_code: r.try_get("region_code")?,
            links: r.try_get("links")?,
        })
    })
    .transpose()
}
