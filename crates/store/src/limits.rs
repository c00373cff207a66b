//! Credit lines at rest (issue #7 item 4): lines per customer and per enterprise group,
//! reservations (what draws use), maker-checker adjustments and each line's history.
//!
//! The rules (may this be drawn, four eyes, cuts) are in `zhudai_domain::credit_limit`;
//! the server's `limits` service runs them inside one transaction with the audit record.
//!
//! # Draws under concurrency
//!
//! A reservation first locks every line it touches — the customer's line and each group
//! line over the customer, in id order — with a no-op `UPDATE` ([`limit_lock`]), then
//! reads the amounts it checks (a group's use is summed *after* its row is locked). On
//! PostgreSQL a concurrent draw on the same lines waits for the locks and then sees the
//! committed use; on SQLite the single writer serialises them. `CHECK (used_fen >= 0)`
//! keeps the use from going negative whatever happens.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A credit line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRow {
    pub id: i64,
    pub scope: String,
    pub customer_id: i64,
    /// The customer's name (joined).
    pub customer_name: String,
    pub customer_kind: String,
    /// The customer's owner and org unit (joined), for data scopes.
    pub owner_user_id: i64,
    pub org_unit_id: Option<i64>,
    pub amount_fen: i64,
    pub used_fen: i64,
    pub status: String,
    pub valid_until: String,
    pub frozen_reason: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
}

const LIMIT_SELECT: &str = "SELECT l.id, l.scope, l.customer_id, c.name AS customer_name, c.kind AS customer_kind, \
    c.owner_user_id, c.org_unit_id, l.amount_fen, l.used_fen, l.status, l.valid_until, l.frozen_reason, l.created_by, l.created_at_ms, \
    l.updated_at_ms, l.version FROM credit_limits l JOIN customers c ON c.id = l.customer_id";

fn limit_row(r: &AnyRow) -> Result<LimitRow, StoreError> {
    Ok(LimitRow {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        customer_id: r.try_get("customer_id")?,
        customer_name: r.try_get("customer_name")?,
        customer_kind: r.try_get("customer_kind")?,
        owner_user_id: r.try_get("owner_user_id")?,
        org_unit_id: r.try_get("org_unit_id")?,
        amount_fen: r.try_get("amount_fen")?,
        used_fen: r.try_get("used_fen")?,
        status: r.try_get("status")?,
        valid_until: r.try_get("valid_until")?,
        frozen_reason: r.try_get("frozen_reason")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        version: r.try_get("version")?,
    })
}

/// `<scope>:<customer_id>`: the key of the current (not closed) line.
pub fn current_key(scope: &str, customer_id: i64) -> String {
    format!("{scope}:{customer_id}")
}

/// The current line of a customer in a scope.
pub async fn limit_current(
    conn: &mut AnyConnection,
    scope: &str,
    customer_id: i64,
) -> Result<Option<LimitRow>, StoreError> {
    let r = sqlx::query(&format!("{LIMIT_SELECT} WHERE l.current_key = $1"))
        .bind(current_key(scope, customer_id))
        .fetch_optional(&mut *conn)
        .await?;
    r.as_ref().map(limit_row).transpose()
}

/// A line by id, inside a transaction.
pub async fn limit_get(conn: &mut AnyConnection, id: i64) -> Result<Option<LimitRow>, StoreError> {
    let r = sqlx::query(&format!("{LIMIT_SELECT} WHERE l.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    r.as_ref().map(limit_row).transpose()
}

/// The current group lines over a customer: the line of the enterprise itself and of
/// every enterprise the customer is linked to.
pub async fn group_lines_over(
    conn: &mut AnyConnection,
    customer_id: i64,
) -> Result<Vec<LimitRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "{LIMIT_SELECT} WHERE l.scope = 'group' AND l.current_key IS NOT NULL AND (l.customer_id = $1
            OR l.customer_id IN (SELECT enterprise_id FROM customer_relations WHERE person_id = $1))
         ORDER BY l.id"
    ))
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(limit_row).collect()
}

/// What a group draws: the sum of the current customer lines' use of the enterprise and
/// of every person linked to it.
pub async fn group_used(conn: &mut AnyConnection, enterprise_id: i64) -> Result<i64, StoreError> {
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back for the Any driver.
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(used_fen) AS BIGINT) FROM credit_limits WHERE scope = 'customer' AND current_key IS NOT NULL AND (customer_id = $1
            OR customer_id IN (SELECT person_id FROM customer_relations WHERE enterprise_id = $1))",
    )
    .bind(enterprise_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(v.unwrap_or(0))
}

/// The customers in an enterprise's group (the enterprise and linked persons).
pub async fn group_members(
    conn: &mut AnyConnection,
    enterprise_id: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST($1 AS BIGINT) AS id UNION SELECT person_id FROM customer_relations WHERE enterprise_id = $1 ORDER BY id",
    )
    .bind(enterprise_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Locks a line's row until the transaction ends (a no-op update).
pub async fn limit_lock(conn: &mut AnyConnection, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE credit_limits SET updated_at_ms = updated_at_ms WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Opens a line; returns its id. Fails on the current-line key if one exists.
#[allow(clippy::too_many_arguments)]
pub async fn limit_insert(
    conn: &mut AnyConnection,
    scope: &str,
    customer_id: i64,
    amount_fen: i64,
    valid_until: &str,
    created_by: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO credit_limits (scope, customer_id, amount_fen, used_fen, status, valid_until, current_key, created_by,
            created_at_ms, updated_at_ms, version)
         VALUES ($1, $2, $3, 0, 'active', $4, $5, $6, $7, $7, 1) RETURNING id",
    )
    .bind(scope)
    .bind(customer_id)
    .bind(amount_fen)
    .bind(valid_until)
    .bind(current_key(scope, customer_id))
    .bind(created_by)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// New values of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitChange<'a> {
    pub amount_fen: i64,
    pub valid_until: &'a str,
    pub status: &'a str,
    pub frozen_reason: Option<&'a str>,
}

/// Applies a change if the line is still at `expected_version`.
pub async fn limit_update(
    conn: &mut AnyConnection,
    id: i64,
    expected_version: i64,
    c: &LimitChange<'_>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credit_limits SET amount_fen = $1, valid_until = $2, status = $3, frozen_reason = $4,
            current_key = CASE WHEN $3 = 'closed' THEN NULL ELSE current_key END,
            updated_at_ms = $5, version = version + 1
         WHERE id = $6 AND version = $7",
    )
    .bind(c.amount_fen)
    .bind(c.valid_until)
    .bind(c.status)
    .bind(c.frozen_reason)
    .bind(now_ms)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Adds `delta` fen (negative to release) to a line's use.
pub async fn limit_add_used(
    conn: &mut AnyConnection,
    id: i64,
    delta: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credit_limits SET used_fen = used_fen + $1, updated_at_ms = $2 WHERE id = $3 AND used_fen + $1 >= 0",
    )
    .bind(delta)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Lines past their end date that are still active or frozen.
pub async fn limits_lapsed(
    conn: &mut AnyConnection,
    today: &str,
) -> Result<Vec<LimitRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "{LIMIT_SELECT} WHERE l.status IN ('active', 'frozen') AND l.valid_until < $1 ORDER BY l.id"
    ))
    .bind(today)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(limit_row).collect()
}

/// One entry of a line's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: i64,
    pub limit_id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub from_amount_fen: Option<i64>,
    pub to_amount_fen: Option<i64>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
}

/// Appends to a line's history.
#[allow(clippy::too_many_arguments)]
pub async fn history_insert(
    conn: &mut AnyConnection,
    limit_id: i64,
    actor: &str,
    action: &str,
    from: (Option<i64>, Option<&str>),
    to: (Option<i64>, Option<&str>),
    note: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credit_limit_history (limit_id, at_ms, actor, action, from_amount_fen, to_amount_fen, from_status, to_status, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(limit_id)
    .bind(now_ms)
    .bind(actor)
    .bind(action)
    .bind(from.0)
    .bind(to.0)
    .bind(from.1)
    .bind(to.1)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A reservation of part of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    pub id: i64,
    pub limit_id: i64,
    pub reference: String,
    pub amount_fen: i64,
    pub released_fen: i64,
    pub status: String,
    pub actor: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const RESERVATION_COLUMNS: &str =
    "id, limit_id, reference, amount_fen, released_fen, status, actor, created_at_ms, updated_at_ms";

fn reservation_row(r: &AnyRow) -> Result<ReservationRow, StoreError> {
    Ok(ReservationRow {
        id: r.try_get("id")?,
        limit_id: r.try_get("limit_id")?,
        reference: r.try_get("reference")?,
        amount_fen: r.try_get("amount_fen")?,
        released_fen: r.try_get("released_fen")?,
        status: r.try_get("status")?,
        actor: r.try_get("actor")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

pub async fn reservation_by_reference(
    conn: &mut AnyConnection,
    reference: &str,
) -> Result<Option<ReservationRow>, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM credit_limit_reservations WHERE reference = $1"
    ))
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(reservation_row).transpose()
}

pub async fn reservation_insert(
    conn: &mut AnyConnection,
    limit_id: i64,
    reference: &str,
    amount_fen: i64,
    actor: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO credit_limit_reservations (limit_id, reference, amount_fen, released_fen, status, actor, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, 0, 'reserved', $4, $5, $5) RETURNING id",
    )
    .bind(limit_id)
    .bind(reference)
    .bind(amount_fen)
    .bind(actor)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// Adds to a reservation's released amount; fully released turns it `released`.
pub async fn reservation_release(
    conn: &mut AnyConnection,
    id: i64,
    amount_fen: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credit_limit_reservations SET released_fen = released_fen + $1,
            status = CASE WHEN released_fen + $1 >= amount_fen THEN 'released' ELSE 'reserved' END, updated_at_ms = $2
         WHERE id = $3 AND status = 'reserved' AND released_fen + $1 <= amount_fen",
    )
    .bind(amount_fen)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// A requested change of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentRow {
    pub id: i64,
    pub limit_id: Option<i64>,
    pub scope: String,
    pub customer_id: i64,
    pub customer_name: String,
    pub kind: String,
    pub new_amount_fen: Option<i64>,
    pub new_valid_until: Option<String>,
    pub reason: String,
    pub status: String,
    pub requested_by: i64,
    pub requested_by_name: String,
    pub requested_at_ms: i64,
    pub decided_by: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

const ADJUSTMENT_SELECT: &str = "SELECT a.id, a.limit_id, a.scope, a.customer_id, c.name AS customer_name, a.kind, \
    a.new_amount_fen, a.new_valid_until, a.reason, a.status, a.requested_by, u.display_name AS requested_by_name, \
    a.requested_at_ms, a.decided_by, a.decided_at_ms, a.decision_note \
    FROM credit_limit_adjustments a JOIN customers c ON c.id = a.customer_id JOIN users u ON u.id = a.requested_by";

fn adjustment_row(r: &AnyRow) -> Result<AdjustmentRow, StoreError> {
    Ok(AdjustmentRow {
        id: r.try_get("id")?,
        limit_id: r.try_get("limit_id")?,
        scope: r.try_get("scope")?,
        customer_id: r.try_get("customer_id")?,
        customer_name: r.try_get("customer_name")?,
        kind: r.try_get("kind")?,
        new_amount_fen: r.try_get("new_amount_fen")?,
        new_valid_until: r.try_get("new_valid_until")?,
        reason: r.try_get("reason")?,
        status: r.try_get("status")?,
        requested_by: r.try_get("requested_by")?,
        requested_by_name: r.try_get("requested_by_name")?,
        requested_at_ms: r.try_get("requested_at_ms")?,
        decided_by: r.try_get("decided_by")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        decision_note: r.try_get("decision_note")?,
    })
}

/// A change to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdjustment<'a> {
    pub limit_id: Option<i64>,
    pub scope: &'a str,
    pub customer_id: i64,
    pub kind: &'a str,
    pub new_amount_fen: Option<i64>,
    pub new_valid_until: Option<&'a str>,
    pub reason: &'a str,
    pub requested_by: i64,
}

/// Stores a pending request; fails on the pending key if the line already has one.
pub async fn adjustment_insert(
    conn: &mut AnyConnection,
    a: &NewAdjustment<'_>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO credit_limit_adjustments (limit_id, scope, customer_id, kind, new_amount_fen, new_valid_until, reason,
            status, requested_by, requested_at_ms, pending_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10) RETURNING id",
    )
    .bind(a.limit_id)
    .bind(a.scope)
    .bind(a.customer_id)
    .bind(a.kind)
    .bind(a.new_amount_fen)
    .bind(a.new_valid_until)
    .bind(a.reason)
    .bind(a.requested_by)
    .bind(now_ms)
    .bind(current_key(a.scope, a.customer_id))
    .fetch_one(&mut *conn)
    .await?)
}

pub async fn adjustment_get(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<AdjustmentRow>, StoreError> {
    let r = sqlx::query(&format!("{ADJUSTMENT_SELECT} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    r.as_ref().map(adjustment_row).transpose()
}

/// Decides a pending request; `false` if it is no longer pending.
pub async fn adjustment_decide(
    conn: &mut AnyConnection,
    id: i64,
    approve: bool,
    by: i64,
    note: Option<&str>,
    limit_id: Option<i64>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE credit_limit_adjustments SET status = $1, decided_by = $2, decided_at_ms = $3, decision_note = $4,
            limit_id = COALESCE($5, limit_id), pending_key = NULL
         WHERE id = $6 AND status = 'pending'",
    )
    .bind(if approve { "approved" } else { "rejected" })
    .bind(by)
    .bind(now_ms)
    .bind(note)
    .bind(limit_id)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// A line search.
#[derive(Debug, Clone, Default)]
pub struct LimitQuery<'a> {
    pub status: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub customer_id: Option<i64>,
    /// Include closed lines.
    pub include_closed: bool,
    pub limit: i64,
}

impl Store {
    pub async fn credit_limit(&self, id: i64) -> Result<Option<LimitRow>, StoreError> {
        let r = sqlx::query(&format!("{LIMIT_SELECT} WHERE l.id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(limit_row).transpose()
    }

    /// Lines matching the query, newest first.
    pub async fn credit_limits(&self, q: &LimitQuery<'_>) -> Result<Vec<LimitRow>, StoreError> {
        let mut cond = String::from(" WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.status.is_some() {
            cond.push_str(&format!(" AND l.status = {}", next()));
        }
        if q.scope.is_some() {
            cond.push_str(&format!(" AND l.scope = {}", next()));
        }
        if q.customer_id.is_some() {
            cond.push_str(&format!(" AND l.customer_id = {}", next()));
        }
        if !q.include_closed {
            cond.push_str(" AND l.status <> 'closed'");
        }
        let lim = next();
        let sql = format!("{LIMIT_SELECT}{cond} ORDER BY l.id DESC LIMIT {lim}");
        let mut query = sqlx::query(&sql);
        if let Some(s) = q.status {
            query = query.bind(s);
        }
        if let Some(s) = q.scope {
            query = query.bind(s);
        }
        if let Some(c) = q.customer_id {
            query = query.bind(c);
        }
        let rows = query
            .bind(if q.limit > 0 { q.limit } else { 500 })
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(limit_row).collect()
    }

    pub async fn credit_limit_history(&self, limit_id: i64) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, limit_id, at_ms, actor, action, from_amount_fen, to_amount_fen, from_status, to_status, note
             FROM credit_limit_history WHERE limit_id = $1 ORDER BY id",
        )
        .bind(limit_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    id: r.try_get("id")?,
                    limit_id: r.try_get("limit_id")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    from_amount_fen: r.try_get("from_amount_fen")?,
                    to_amount_fen: r.try_get("to_amount_fen")?,
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    pub async fn credit_limit_reservations(
        &self,
        limit_id: i64,
    ) -> Result<Vec<ReservationRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM credit_limit_reservations WHERE limit_id = $1 ORDER BY id DESC LIMIT 200"
        ))
        .bind(limit_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(reservation_row).collect()
    }

    /// Requests by status (all when `None`), newest first.
    pub async fn credit_limit_adjustments(
        &self,
        status: Option<&str>,
        customer_id: Option<i64>,
    ) -> Result<Vec<AdjustmentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "{ADJUSTMENT_SELECT} WHERE ($1 = '' OR a.status = $1) AND ($2 = 0 OR a.customer_id = $2) ORDER BY a.id DESC LIMIT 500"
        ))
        .bind(status.unwrap_or(""))
        .bind(customer_id.unwrap_or(0))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(adjustment_row).collect()
    }
}
