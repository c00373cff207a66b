//! Exception alerts and notifications (issue #6 item 3): the events (raised once per
//! dedupe key), each recipient's in-app notification, the managers of org units who
//! receive them, group-bot webhook targets, and the delivery log of every webhook call.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

/// A unit of the organisation with its manager (the tree used to route alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgNode {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub kind: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub manager_user_id: Option<i64>,
}

/// A new exception (or test message).
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub severity: &'a str,
    pub subject_type: Option<&'a str>,
    pub subject_id: Option<i64>,
    pub subject_ref: Option<&'a str>,
    pub instance_id: Option<i64>,
    pub node: Option<&'a str>,
    pub owner_user_id: Option<i64>,
    pub org_unit_id: Option<i64>,
    pub waited_ms: Option<i64>,
    pub limit_ms: Option<i64>,
    pub detail: Option<&'a str>,
    pub raised_by: &'a str,
    pub dedupe_key: &'a str,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub severity: String,
    pub subject_type: Option<String>,
    pub subject_id: Option<i64>,
    pub subject_ref: Option<String>,
    pub instance_id: Option<i64>,
    pub node: Option<String>,
    pub owner_user_id: Option<i64>,
    pub org_unit_id: Option<i64>,
    pub waited_ms: Option<i64>,
    pub limit_ms: Option<i64>,
    pub detail: Option<String>,
    pub raised_by: String,
    pub dedupe_key: String,
    pub created_at_ms: i64,
}

const EVENT_COLUMNS: &str = "e.id, e.kind, e.severity, e.subject_type, e.subject_id, e.subject_ref, e.instance_id, \
    e.node, e.owner_user_id, e.org_unit_id, e.waited_ms, e.limit_ms, e.detail, e.raised_by, e.dedupe_key, e.created_at_ms";

fn event_row(r: &AnyRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        severity: r.try_get("severity")?,
        subject_type: r.try_get("subject_type")?,
        subject_id: r.try_get("subject_id")?,
        subject_ref: r.try_get("subject_ref")?,
        instance_id: r.try_get("instance_id")?,
        node: r.try_get("node")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        waited_ms: r.try_get("waited_ms")?,
        limit_ms: r.try_get("limit_ms")?,
        detail: r.try_get("detail")?,
        raised_by: r.try_get("raised_by")?,
        dedupe_key: r.try_get("dedupe_key")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// An in-app notification with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    pub reason: String,
    pub read_at_ms: Option<i64>,
    pub event: EventRow,
}

/// Stores an event unless its dedupe key is taken; its id when new.
pub async fn event_insert<'c, E>(
    exec: E,
    e: &NewEvent<'_>,
    now_ms: i64,
) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO notification_events (kind, severity, subject_type, subject_id, subject_ref, instance_id, node,
            owner_user_id, org_unit_id, waited_ms, limit_ms, detail, raised_by, dedupe_key, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(e.kind)
    .bind(e.severity)
    .bind(e.subject_type)
    .bind(e.subject_id)
    .bind(e.subject_ref)
    .bind(e.instance_id)
    .bind(e.node)
    .bind(e.owner_user_id)
    .bind(e.org_unit_id)
    .bind(e.waited_ms)
    .bind(e.limit_ms)
    .bind(e.detail)
    .bind(e.raised_by)
    .bind(e.dedupe_key)
    .bind(now_ms)
    .fetch_optional(exec)
    .await?)
}

/// Gives `user` an in-app notification of `event` (once).
pub async fn notification_insert<'c, E>(
    exec: E,
    event: i64,
    user: i64,
    reason: &str,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO notifications (event_id, user_id, reason, created_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id, user_id) DO NOTHING",
    )
    .bind(event)
    .bind(user)
    .bind(reason)
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Creates the delivery of `event` to webhook `target` (once); its id when new.
pub async fn delivery_insert<'c, E>(
    exec: E,
    event: i64,
    target: i64,
    now_ms: i64,
) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (event_id, target_id, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $3)
         ON CONFLICT (event_id, target_id) DO NOTHING RETURNING id",
    )
    .bind(event)
    .bind(target)
    .bind(now_ms)
    .fetch_optional(exec)
    .await?)
}

/// Sets (or clears) the manager of an org unit; false when the unit does not exist.
pub async fn org_unit_set_manager<'c, E>(
    exec: E,
    unit: i64,
    manager: Option<i64>,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("UPDATE org_units SET manager_user_id = $2 WHERE id = $1")
        .bind(unit)
        .bind(manager)
        .execute(exec)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a webhook target; its id.
pub async fn webhook_target_insert<'c, E>(
    exec: E,
    t: &NewTarget<'_>,
    now_ms: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_targets (name, format, msg_type, url_enc, url_hint, secret_enc, kinds, org_unit_id,
            created_by, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(t.name)
    .bind(t.format)
    .bind(t.msg_type)
    .bind(t.url_enc)
    .bind(t.url_hint)
    .bind(t.secret_enc)
    .bind(t.kinds.join(","))
    .bind(t.org_unit_id)
    .bind(t.created_by)
    .bind(now_ms)
    .fetch_one(exec)
    .await?)
}

/// Applies `u` to target `id`; false when it does not exist.
pub async fn webhook_target_update<'c, E>(
    exec: E,
    id: i64,
    u: &TargetUpdate<'_>,
    now_ms: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE webhook_targets SET
            msg_type = COALESCE($2, msg_type),
            url_enc = CASE WHEN $3 = 1 THEN $4 ELSE url_enc END,
            url_hint = COALESCE($5, url_hint),
            secret_enc = CASE WHEN $6 = 1 THEN $7 ELSE secret_enc END,
            kinds = COALESCE($8, kinds),
            org_unit_id = CASE WHEN $9 = 1 THEN $10 ELSE org_unit_id END,
            active = COALESCE($11, active),
            updated_at_ms = $12
         WHERE id = $1",
    )
    .bind(id)
    .bind(u.msg_type)
    .bind(i64::from(u.url_enc.is_some()))
    .bind(u.url_enc.unwrap_or_default())
    .bind(u.url_hint)
    .bind(i64::from(u.secret_enc.is_some()))
    .bind(u.secret_enc.flatten())
    .bind(u.kinds.map(|k| k.join(",")))
    .bind(i64::from(u.org_unit_id.is_some()))
    .bind(u.org_unit_id.flatten())
    .bind(u.active.map(i64::from))
    .bind(now_ms)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A configured group-bot webhook (URL and secret still encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    pub id: i64,
    pub name: String,
    pub format: String,
    pub msg_type: String,
    pub url_enc: Vec<u8>,
    pub url_hint: String,
    pub secret_enc: Option<Vec<u8>>,
    /// Event kinds it receives; empty: every kind.
    pub kinds: Vec<String>,
    pub org_unit_id: Option<i64>,
    pub active: bool,
    pub created_by: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const TARGET_COLUMNS: &str =
    "id, name, format, msg_type, url_enc, url_hint, secret_enc, kinds, org_unit_id, active, \
    created_by, created_at_ms, updated_at_ms";

fn target_row(r: &AnyRow) -> Result<TargetRow, StoreError> {
    let kinds: String = r.try_get("kinds")?;
    Ok(TargetRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        format: r.try_get("format")?,
        msg_type: r.try_get("msg_type")?,
        url_enc: r.try_get("url_enc")?,
        url_hint: r.try_get("url_hint")?,
        secret_enc: r.try_get("secret_enc")?,
        kinds: kinds
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        org_unit_id: r.try_get("org_unit_id")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// A new webhook target, its URL and secret already encrypted.
#[derive(Debug, Clone)]
pub struct NewTarget<'a> {
    pub name: &'a str,
    pub format: &'a str,
    pub msg_type: &'a str,
    pub url_enc: &'a [u8],
    pub url_hint: &'a str,
    pub secret_enc: Option<&'a [u8]>,
    pub kinds: &'a [String],
    pub org_unit_id: Option<i64>,
    pub created_by: Option<i64>,
}

/// What changes on a target (`None`: unchanged). `secret_enc: Some(None)` removes the
/// secret.
#[derive(Debug, Clone, Default)]
pub struct TargetUpdate<'a> {
    pub msg_type: Option<&'a str>,
    pub url_enc: Option<&'a [u8]>,
    pub url_hint: Option<&'a str>,
    pub secret_enc: Option<Option<&'a [u8]>>,
    pub kinds: Option<&'a [String]>,
    pub org_unit_id: Option<Option<i64>>,
    pub active: Option<bool>,
}

/// A delivery with its target's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub target_id: i64,
    pub target_name: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub sent_at_ms: Option<i64>,
}

fn delivery_row(r: &AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        target_id: r.try_get("target_id")?,
        target_name: r.try_get("target_name")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        sent_at_ms: r.try_get("sent_at_ms")?,
    })
}

const DELIVERY_SELECT: &str =
    "SELECT d.id, d.event_id, d.target_id, t.name AS target_name, d.state, d.attempts, \
    d.last_status, d.last_error, d.created_at_ms, d.updated_at_ms, d.sent_at_ms \
    FROM webhook_deliveries d JOIN webhook_targets t ON t.id = d.target_id";

/// One logged webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at_ms: i64,
    pub http_status: Option<i64>,
    pub ok: bool,
    pub detail: Option<String>,
    pub duration_ms: i64,
}

/// The result of one webhook call, to log.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub http_status: Option<i64>,
    pub ok: bool,
    pub detail: Option<&'a str>,
    pub duration_ms: i64,
    /// No attempt is left: a failure is final.
    pub last: bool,
}

impl Store {
    /// The organisation tree with managers (parents before children).
    pub async fn org_tree(&self) -> Result<Vec<OrgNode>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, parent_id, kind, code, name_zh, name_en, manager_user_id FROM org_units ORDER BY id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OrgNode {
                    id: r.try_get("id")?,
                    parent_id: r.try_get("parent_id")?,
                    kind: r.try_get("kind")?,
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                    manager_user_id: r.try_get("manager_user_id")?,
                })
            })
            .collect()
    }

    /// Active users holding `permission` through one of their roles.
    pub async fn users_with_permission(&self, permission: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT u.id FROM users u
             JOIN user_roles ur ON ur.user_id = u.id
             JOIN role_permissions rp ON rp.role_id = ur.role_id
             WHERE rp.permission = $1 AND u.status = 'active' ORDER BY u.id",
        )
        .bind(permission)
        .fetch_all(self.reader())
        .await?)
    }

    pub async fn event(&self, id: i64) -> Result<Option<EventRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM notification_events e WHERE e.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(event_row).transpose()
    }

    /// Events about an instance, oldest first.
    pub async fn events_of_instance(&self, instance: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM notification_events e WHERE e.instance_id = $1 ORDER BY e.id"
        ))
        .bind(instance)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Who was notified of an event, and why: (user, reason).
    pub async fn recipients(&self, event: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, reason FROM notifications WHERE event_id = $1 ORDER BY user_id",
        )
        .bind(event)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("reason")?)))
            .collect()
    }

    /// A user's notifications, newest first.
    pub async fn inbox(
        &self,
        user: i64,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<InboxRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT n.id AS n_id, n.reason, n.read_at_ms, {EVENT_COLUMNS}
             FROM notifications n JOIN notification_events e ON e.id = n.event_id
             WHERE n.user_id = $1 AND ($2 = 0 OR n.read_at_ms IS NULL)
             ORDER BY n.id DESC LIMIT $3"
        ))
        .bind(user)
        .bind(i64::from(unread_only))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InboxRow {
                    id: r.try_get("n_id")?,
                    reason: r.try_get("reason")?,
                    read_at_ms: r.try_get("read_at_ms")?,
                    event: event_row(r)?,
                })
            })
            .collect()
    }

    pub async fn unread_count(&self, user: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at_ms IS NULL",
        )
        .bind(user)
        .fetch_one(self.reader())
        .await?)
    }

    /// Marks one of `user`'s notifications read; false when it is not theirs or was read.
    pub async fn notification_read(
        &self,
        user: i64,
        id: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at_ms = $3 WHERE id = $1 AND user_id = $2 AND read_at_ms IS NULL",
        )
        .bind(id)
        .bind(user)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether notification `id` belongs to `user`.
    pub async fn notification_owned(&self, user: i64, id: i64) -> Result<bool, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user)
                .fetch_one(self.reader())
                .await?;
        Ok(n > 0)
    }

    /// Marks all of `user`'s notifications read; how many were unread.
    pub async fn notifications_read_all(&self, user: i64, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at_ms = $2 WHERE user_id = $1 AND read_at_ms IS NULL",
        )
        .bind(user)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn webhook_targets(&self) -> Result<Vec<TargetRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM webhook_targets ORDER BY name"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(target_row).collect()
    }

    pub async fn webhook_target(&self, id: i64) -> Result<Option<TargetRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM webhook_targets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(target_row).transpose()
    }

    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>, StoreError> {
        let r = sqlx::query(&format!("{DELIVERY_SELECT} WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(delivery_row).transpose()
    }

    /// The deliveries of a target (or of every target), newest first.
    pub async fn deliveries(
        &self,
        target: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DELIVERY_SELECT} WHERE ($1 IS NULL OR d.target_id = $1) ORDER BY d.id DESC LIMIT $2"
        ))
        .bind(target)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// The deliveries of an event.
    pub async fn deliveries_of_event(&self, event: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DELIVERY_SELECT} WHERE d.event_id = $1 ORDER BY d.id"
        ))
        .bind(event)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Logs one call of a delivery and updates its state: `sent` on success, `failed` on
    /// a failure when no attempt is left, else still `pending`. A delivery already sent
    /// stays sent.
    pub async fn delivery_record(
        &self,
        id: i64,
        a: &Attempt<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let attempt: i64 = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                state = CASE WHEN state = 'sent' THEN 'sent' WHEN $4 = 1 THEN 'sent' WHEN $5 = 1 THEN 'failed' ELSE 'pending' END,
                sent_at_ms = CASE WHEN $4 = 1 AND sent_at_ms IS NULL THEN $6 ELSE sent_at_ms END,
                updated_at_ms = $6
             WHERE id = $1 RETURNING attempts",
        )
        .bind(id)
        .bind(a.http_status)
        .bind(if a.ok { None } else { a.detail })
        .bind(i64::from(a.ok))
        .bind(i64::from(a.last))
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at_ms, http_status, ok, detail, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(attempt)
        .bind(now_ms)
        .bind(a.http_status)
        .bind(i64::from(a.ok))
        .bind(a.detail)
        .bind(a.duration_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every logged call of a delivery, in order.
    pub async fn delivery_attempts(&self, delivery: i64) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, at_ms, http_status, ok, detail, duration_ms FROM webhook_attempts
             WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRow {
                    attempt: r.try_get("attempt")?,
                    at_ms: r.try_get("at_ms")?,
                    http_status: r.try_get("http_status")?,
                    ok: r.try_get::<i64, _>("ok")? != 0,
                    detail: r.try_get("detail")?,
                    duration_ms: r.try_get("duration_ms")?,
                })
            })
            .collect()
    }
}
