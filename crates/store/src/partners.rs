//! The funder network (合作机构) at rest: partners, licences, documents, contacts, status
//! history, admission standards and checklists, limits and quota usage, per-product
//! pricing, routing runs and steps, funder callbacks, reminders and funder exposures.
//!
//! Rules (which transitions are legal, four eyes, may-originate) live in
//! `zhudai_domain::partner`; this module stores and reads. Functions that must join the
//! caller's transaction take `&mut AnyConnection`.
//!
//! # Quotas under concurrency
//!
//! [`quota_reserve`] is a sequence of *conditional* updates in the caller's transaction:
//! `UPDATE partner_limits SET total_used_fen = total_used_fen + $amt WHERE … AND
//! total_used_fen + $amt <= total_quota_fen`, then the same for the day's row of
//! `partner_daily_usage`. On PostgreSQL (READ COMMITTED) a concurrent updater waits for
//! the row lock and re-evaluates the `WHERE` against the committed value, so two
//! reservations can never both pass a limit that only one fits; on SQLite the single
//! writer serialises them. The per-customer exposure is summed *after* the limits row is
//! locked, so it sees every reservation committed before. `CHECK (… >= 0)` constraints
//! keep used amounts from going negative whatever happens.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A partner as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partner {
    pub id: i64,
    pub code: String,
    pub kind: String,
    pub name_zh: String,
    pub name_en: String,
    pub uscc: Option<String>,
    pub status: String,
    pub status_since: String,
    pub status_reason: Option<String>,
    pub listed_us_on: Option<String>,
    pub agreement_start_on: Option<String>,
    pub agreement_end_on: Option<String>,
    pub next_review_on: Option<String>,
    pub adapter: String,
    pub endpoint_url: Option<String>,
    #[serde(skip)]
    pub hmac_key_enc: Option<Vec<u8>>,
    pub timeout_ms: i64,
    pub sim_approval_bp: i64,
    pub sim_latency_ms: i64,
    pub sim_seed: i64,
    pub priority: i64,
    pub eligibility_rule: String,
    pub rule_version: i64,
    pub notes: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const PARTNER_COLUMNS: &str = "id, code, kind, name_zh, name_en, uscc, status, status_since, status_reason, \
    listed_us_on, agreement_start_on, agreement_end_on, next_review_on, adapter, endpoint_url, hmac_key_enc, \
    timeout_ms, sim_approval_bp, sim_latency_ms, sim_seed, priority, eligibility_rule, rule_version, notes, \
    created_at_ms, updated_at_ms";

fn partner_from_row(r: &AnyRow) -> Result<Partner, StoreError> {
    Ok(Partner {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        kind: r.try_get("kind")?,
        name_zh: r.try_get("name_zh")?,
        name_en: r.try_get("name_en")?,
        uscc: r.try_get("uscc")?,
        status: r.try_get("status")?,
        status_since: r.try_get("status_since")?,
        status_reason: r.try_get("status_reason")?,
        listed_us_on: r.try_get("listed_us_on")?,
        agreement_start_on: r.try_get("agreement_start_on")?,
        agreement_end_on: r.try_get("agreement_end_on")?,
        next_review_on: r.try_get("next_review_on")?,
        adapter: r.try_get("adapter")?,
        endpoint_url: r.try_get("endpoint_url")?,
        hmac_key_enc: r.try_get("hmac_key_enc")?,
        timeout_ms: r.try_get("timeout_ms")?,
        sim_approval_bp: r.try_get("sim_approval_bp")?,
        sim_latency_ms: r.try_get("sim_latency_ms")?,
        sim_seed: r.try_get("sim_seed")?,
        priority: r.try_get("priority")?,
        eligibility_rule: r.try_get("eligibility_rule")?,
        rule_version: r.try_get("rule_version")?,
        notes: r.try_get("notes")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// Inserts `p` (its `id`, `rule_version` and times are ignored) with the first status
/// history row. Returns the new id.
pub async fn partner_insert(
    conn: &mut AnyConnection,
    p: &Partner,
    actor: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partners (code, kind, name_zh, name_en, uscc, status, status_since, status_reason, listed_us_on,
            agreement_start_on, agreement_end_on, next_review_on, adapter, endpoint_url, hmac_key_enc, timeout_ms,
            sim_approval_bp, sim_latency_ms, sim_seed, priority, eligibility_rule, rule_version, notes, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, 1, $22, $23, $23)
         RETURNING id",
    )
    .bind(&p.code)
    .bind(&p.kind)
    .bind(&p.name_zh)
    .bind(&p.name_en)
    .bind(&p.uscc)
    .bind(&p.status)
    .bind(&p.status_since)
    .bind(&p.status_reason)
    .bind(&p.listed_us_on)
    .bind(&p.agreement_start_on)
    .bind(&p.agreement_end_on)
    .bind(&p.next_review_on)
    .bind(&p.adapter)
    .bind(&p.endpoint_url)
    .bind(&p.hmac_key_enc)
    .bind(p.timeout_ms)
    .bind(p.sim_approval_bp)
    .bind(p.sim_latency_ms)
    .bind(p.sim_seed)
    .bind(p.priority)
    .bind(&p.eligibility_rule)
    .bind(&p.notes)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    let id: i64 = row.try_get("id")?;
    status_history_insert(
        conn,
        id,
        None,
        &p.status,
        &p.status_since,
        None,
        actor,
        now_ms,
    )
    .await?;
    Ok(id)
}

/// Saves the editable fields of `p` (not its status: see [`partner_set_status`]). The
/// rule version goes up when the eligibility rule text changes.
pub async fn partner_save(
    conn: &mut AnyConnection,
    p: &Partner,
    now_ms: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE partners SET name_zh = $2, name_en = $3, uscc = $4, listed_us_on = $5, agreement_start_on = $6,
            agreement_end_on = $7, next_review_on = $8, adapter = $9, endpoint_url = $10, hmac_key_enc = $11,
            timeout_ms = $12, sim_approval_bp = $13, sim_latency_ms = $14, sim_seed = $15, priority = $16,
            rule_version = CASE WHEN eligibility_rule = $17 THEN rule_version ELSE rule_version + 1 END,
            eligibility_rule = $17, notes = $18, updated_at_ms = $19
         WHERE id = $1",
    )
    .bind(p.id)
    .bind(&p.name_zh)
    .bind(&p.name_en)
    .bind(&p.uscc)
    .bind(&p.listed_us_on)
    .bind(&p.agreement_start_on)
    .bind(&p.agreement_end_on)
    .bind(&p.next_review_on)
    .bind(&p.adapter)
    .bind(&p.endpoint_url)
    .bind(&p.hmac_key_enc)
    .bind(p.timeout_ms)
    .bind(p.sim_approval_bp)
    .bind(p.sim_latency_ms)
    .bind(p.sim_seed)
    .bind(p.priority)
    .bind(&p.eligibility_rule)
    .bind(&p.notes)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Reads a partner inside a transaction (locking its row on PostgreSQL).
pub async fn partner_for_update(
    conn: &mut AnyConnection,
    store: &Store,
    code: &str,
) -> Result<Option<Partner>, StoreError> {
    let lock = match store.backend() {
        crate::Backend::Postgres => " FOR UPDATE",
        crate::Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT {PARTNER_COLUMNS} FROM partners WHERE code = $1{lock}"
    ))
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(partner_from_row).transpose()
}

#[allow(clippy::too_many_arguments)]
async fn status_history_insert(
    conn: &mut AnyConnection,
    partner_id: i64,
    from: Option<&str>,
    to: &str,
    on_date: &str,
    reason: Option<&str>,
    actor: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO partner_status_history (partner_id, from_status, to_status, on_date, reason, actor, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(partner_id)
    .bind(from)
    .bind(to)
    .bind(on_date)
    .bind(reason)
    .bind(actor)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A status change the caller has checked against the lifecycle rules.
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    pub partner_id: i64,
    pub from: &'a str,
    pub to: &'a str,
    pub on_date: &'a str,
    pub reason: Option<&'a str>,
    pub actor: &'a str,
    /// Set the next annual review date (on admission).
    pub next_review_on: Option<&'a str>,
}

/// Moves a partner from `from` to `to` if it is still in `from` (false otherwise: someone
/// changed it meanwhile), recording the history row.
pub async fn partner_set_status(
    conn: &mut AnyConnection,
    c: &StatusChange<'_>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE partners SET status = $3, status_since = $4, status_reason = $5,
            next_review_on = COALESCE($6, next_review_on), updated_at_ms = $7
         WHERE id = $1 AND status = $2",
    )
    .bind(c.partner_id)
    .bind(c.from)
    .bind(c.to)
    .bind(c.on_date)
    .bind(c.reason)
    .bind(c.next_review_on)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    status_history_insert(
        conn,
        c.partner_id,
        Some(c.from),
        c.to,
        c.on_date,
        c.reason,
        c.actor,
        now_ms,
    )
    .await?;
    Ok(true)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusHistory {
    pub from_status: Option<String>,
    pub to_status: String,
    pub on_date: String,
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Licence {
    pub id: i64,
    pub licence_type: String,
    pub number: String,
    pub issuer: String,
    pub valid_until: Option<String>,
}

fn licence_row(r: &AnyRow) -> Result<Licence, StoreError> {
    Ok(Licence {
        id: r.try_get("id")?,
        licence_type: r.try_get("licence_type")?,
        number: r.try_get("number")?,
        issuer: r.try_get("issuer")?,
        valid_until: r.try_get("valid_until")?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    pub id: i64,
    pub reference: String,
    pub description: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub email: Option<String>,
    pub phone_enc: Option<Vec<u8>>,
    pub row_key: String,
}

pub async fn licence_insert(
    conn: &mut AnyConnection,
    partner_id: i64,
    l: &Licence,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partner_licences (partner_id, licence_type, number, issuer, valid_until, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(partner_id)
    .bind(&l.licence_type)
    .bind(&l.number)
    .bind(&l.issuer)
    .bind(&l.valid_until)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

pub async fn document_insert(
    conn: &mut AnyConnection,
    partner_id: i64,
    d: &Document,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partner_documents (partner_id, reference, description, sha256, created_at_ms)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(partner_id)
    .bind(&d.reference)
    .bind(&d.description)
    .bind(&d.sha256)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

pub async fn contact_insert(
    conn: &mut AnyConnection,
    partner_id: i64,
    c: &Contact,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partner_contacts (partner_id, name, title, email, phone_enc, row_key, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(partner_id)
    .bind(&c.name)
    .bind(&c.title)
    .bind(&c.email)
    .bind(&c.phone_enc)
    .bind(&c.row_key)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

/// A configurable admission standard as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardRow {
    pub code: String,
    pub title_zh: String,
    pub title_en: String,
    /// Kinds it applies to (`funder,credit_enhancer`); empty = every kind.
    pub kinds: String,
    pub required: bool,
    pub position: i64,
}

/// Replaces the active standards: rows not listed are deactivated (kept for old
/// checklists), listed ones are inserted or updated.
pub async fn standards_replace(
    conn: &mut AnyConnection,
    rows: &[StandardRow],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE admission_standards SET active = 0")
        .execute(&mut *conn)
        .await?;
    for s in rows {
        sqlx::query(
            "INSERT INTO admission_standards (code, title_zh, title_en, kinds, required, position, active)
             VALUES ($1, $2, $3, $4, $5, $6, 1)
             ON CONFLICT (code) DO UPDATE SET title_zh = $2, title_en = $3, kinds = $4, required = $5, position = $6, active = 1",
        )
        .bind(&s.code)
        .bind(&s.title_zh)
        .bind(&s.title_en)
        .bind(&s.kinds)
        .bind(i64::from(s.required))
        .bind(s.position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One admission submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Admission {
    pub id: i64,
    pub partner_id: i64,
    pub state: String,
    /// The checklist as JSON (`[{code, passed, evidence, document_ref}]`).
    pub items: String,
    pub submitted_by: i64,
    pub submitted_by_name: String,
    pub submitted_at_ms: i64,
    pub decided_by: Option<i64>,
    pub decided_by_name: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

const ADMISSION_COLUMNS: &str =
    "id, partner_id, state, items, submitted_by, submitted_by_name, submitted_at_ms, \
    decided_by, decided_by_name, decided_at_ms, decision_note";

fn admission_from_row(r: &AnyRow) -> Result<Admission, StoreError> {
    Ok(Admission {
        id: r.try_get("id")?,
        partner_id: r.try_get("partner_id")?,
        state: r.try_get("state")?,
        items: r.try_get("items")?,
        submitted_by: r.try_get("submitted_by")?,
        submitted_by_name: r.try_get("submitted_by_name")?,
        submitted_at_ms: r.try_get("submitted_at_ms")?,
        decided_by: r.try_get("decided_by")?,
        decided_by_name: r.try_get("decided_by_name")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        decision_note: r.try_get("decision_note")?,
    })
}

/// Records a submitted checklist. `None` when the partner already has an open one.
pub async fn admission_submit(
    conn: &mut AnyConnection,
    partner_id: i64,
    items_json: &str,
    by: i64,
    by_name: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partner_admissions (partner_id, state, open_flag, items, submitted_by, submitted_by_name, submitted_at_ms)
         VALUES ($1, 'submitted', 1, $2, $3, $4, $5)
         ON CONFLICT (partner_id, open_flag) DO NOTHING
         RETURNING id",
    )
    .bind(partner_id)
    .bind(items_json)
    .bind(by)
    .bind(by_name)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
}

/// The open (submitted, undecided) admission of a partner.
pub async fn admission_open(
    conn: &mut AnyConnection,
    partner_id: i64,
) -> Result<Option<Admission>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ADMISSION_COLUMNS} FROM partner_admissions WHERE partner_id = $1 AND open_flag = 1"
    ))
    .bind(partner_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(admission_from_row).transpose()
}

/// Decides an open admission (`approved` or `rejected`). False when it was not open.
pub async fn admission_decide(
    conn: &mut AnyConnection,
    admission_id: i64,
    state: &str,
    by: i64,
    by_name: &str,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE partner_admissions SET state = $2, open_flag = NULL, decided_by = $3, decided_by_name = $4,
            decided_at_ms = $5, decision_note = $6
         WHERE id = $1 AND open_flag = 1",
    )
    .bind(admission_id)
    .bind(state)
    .bind(by)
    .bind(by_name)
    .bind(now_ms)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A partner's quotas and what is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub daily_quota_fen: i64,
    pub total_quota_fen: i64,
    pub per_customer_max_fen: Option<i64>,
    pub total_used_fen: i64,
}

/// Sets the quotas (the used amount is kept).
pub async fn limits_set(
    conn: &mut AnyConnection,
    partner_id: i64,
    daily_quota_fen: i64,
    total_quota_fen: i64,
    per_customer_max_fen: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO partner_limits (partner_id, daily_quota_fen, total_quota_fen, per_customer_max_fen, total_used_fen, updated_at_ms)
         VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (partner_id) DO UPDATE SET daily_quota_fen = $2, total_quota_fen = $3, per_customer_max_fen = $4, updated_at_ms = $5",
    )
    .bind(partner_id)
    .bind(daily_quota_fen)
    .bind(total_quota_fen)
    .bind(per_customer_max_fen)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets the funder's annual rate (decimal text) for a product; `None` removes it.
pub async fn pricing_set(
    conn: &mut AnyConnection,
    partner_id: i64,
    product_code: &str,
    annual_rate: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    match annual_rate {
        Some(rate) => {
            sqlx::query(
                "INSERT INTO partner_pricing (partner_id, product_code, annual_rate, updated_at_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (partner_id, product_code) DO UPDATE SET annual_rate = $3, updated_at_ms = $4",
            )
            .bind(partner_id)
            .bind(product_code)
            .bind(rate)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM partner_pricing WHERE partner_id = $1 AND product_code = $2")
                .bind(partner_id)
                .bind(product_code)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaRefusal {
    NoLimits,
    TotalQuota,
    DailyQuota,
    CustomerLimit,
}

impl QuotaRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaRefusal::NoLimits => "no_limits",
            QuotaRefusal::TotalQuota => "total_quota",
            QuotaRefusal::DailyQuota => "daily_quota",
            QuotaRefusal::CustomerLimit => "customer_limit",
        }
    }
}

/// A quota reservation to make.
#[derive(Debug, Clone)]
pub struct ReserveRequest<'a> {
    pub partner_id: i64,
    pub run_id: Option<i64>,
    pub customer_ref: &'a str,
    pub amount_fen: i64,
    /// Business date `YYYY-MM-DD` the daily quota is counted on.
    pub day: &'a str,
}

/// Reserves `amount_fen` of the partner's total, daily and per-customer limits in the
/// caller's transaction. On `Ok(Err(_))` the usage is as it was (a refusal after the
/// first updates takes them back), so the caller may go on with its transaction.
pub async fn quota_reserve(
    conn: &mut AnyConnection,
    r: &ReserveRequest<'_>,
    now_ms: i64,
) -> Result<Result<i64, QuotaRefusal>, StoreError> {
    if r.amount_fen <= 0 {
        return Err(StoreError::Invalid("a reservation must be positive".into()));
    }
    let limits = sqlx::query(
        "UPDATE partner_limits SET total_used_fen = total_used_fen + $2, updated_at_ms = $3
         WHERE partner_id = $1 AND total_used_fen + $2 <= total_quota_fen
         RETURNING daily_quota_fen, per_customer_max_fen",
    )
    .bind(r.partner_id)
    .bind(r.amount_fen)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(limits) = limits else {
        let exists = sqlx::query("SELECT 1 AS one FROM partner_limits WHERE partner_id = $1")
            .bind(r.partner_id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(Err(if exists.is_some() {
            QuotaRefusal::TotalQuota
        } else {
            QuotaRefusal::NoLimits
        }));
    };
    let daily: i64 = limits.try_get("daily_quota_fen")?;
    let per_customer: Option<i64> = limits.try_get("per_customer_max_fen")?;
    sqlx::query(
        "INSERT INTO partner_daily_usage (partner_id, day, used_fen) VALUES ($1, $2, 0)
         ON CONFLICT (partner_id, day) DO NOTHING",
    )
    .bind(r.partner_id)
    .bind(r.day)
    .execute(&mut *conn)
    .await?;
    let day_ok = sqlx::query(
        "UPDATE partner_daily_usage SET used_fen = used_fen + $3
         WHERE partner_id = $1 AND day = $2 AND used_fen + $3 <= $4",
    )
    .bind(r.partner_id)
    .bind(r.day)
    .bind(r.amount_fen)
    .bind(daily)
    .execute(&mut *conn)
    .await?;
    if day_ok.rows_affected() != 1 {
        undo_usage(conn, r, false, now_ms).await?;
        return Ok(Err(QuotaRefusal::DailyQuota));
    }
    if let Some(max) = per_customer {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS used FROM quota_reservations
             WHERE partner_id = $1 AND customer_ref = $2 AND state IN ('reserved', 'consumed')",
        )
        .bind(r.partner_id)
        .bind(r.customer_ref)
        .fetch_one(&mut *conn)
        .await?;
        let used: i64 = row.try_get("used")?;
        if used + r.amount_fen > max {
            undo_usage(conn, r, true, now_ms).await?;
            return Ok(Err(QuotaRefusal::CustomerLimit));
        }
    }
    let row = sqlx::query(
        "INSERT INTO quota_reservations (partner_id, run_id, customer_ref, amount_fen, day, state, created_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $6) RETURNING id",
    )
    .bind(r.partner_id)
    .bind(r.run_id)
    .bind(r.customer_ref)
    .bind(r.amount_fen)
    .bind(r.day)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Ok(row.try_get("id")?))
}

/// Takes back the usage a refused reservation added (the rows stay locked by this
/// transaction, so nobody saw the intermediate values).
async fn undo_usage(
    conn: &mut AnyConnection,
    r: &ReserveRequest<'_>,
    daily_too: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE partner_limits SET total_used_fen = total_used_fen - $2, updated_at_ms = $3 WHERE partner_id = $1",
    )
    .bind(r.partner_id)
    .bind(r.amount_fen)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if daily_too {
        sqlx::query(
            "UPDATE partner_daily_usage SET used_fen = used_fen - $3 WHERE partner_id = $1 AND day = $2",
        )
        .bind(r.partner_id)
        .bind(r.day)
        .bind(r.amount_fen)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Gives a reservation back (a decline, a timeout). Idempotent: false when it was not
/// reserved any more.
pub async fn quota_release(
    conn: &mut AnyConnection,
    reservation_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "UPDATE quota_reservations SET state = 'released', updated_at_ms = $2
         WHERE id = $1 AND state = 'reserved' RETURNING partner_id, amount_fen, day",
    )
    .bind(reservation_id)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let partner_id: i64 = row.try_get("partner_id")?;
    let amount: i64 = row.try_get("amount_fen")?;
    let day: String = row.try_get("day")?;
    sqlx::query(
        "UPDATE partner_limits SET total_used_fen = total_used_fen - $2, updated_at_ms = $3 WHERE partner_id = $1",
    )
    .bind(partner_id)
    .bind(amount)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE partner_daily_usage SET used_fen = used_fen - $3 WHERE partner_id = $1 AND day = $2",
    )
    .bind(partner_id)
    .bind(&day)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Turns a reservation into a consumed amount (the funder approved). Idempotent.
pub async fn quota_consume(
    conn: &mut AnyConnection,
    reservation_id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE quota_reservations SET state = 'consumed', updated_at_ms = $2 WHERE id = $1 AND state = 'reserved'",
    )
    .bind(reservation_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Quota left for one partner, customer and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaLeft {
    pub daily_left_fen: i64,
    pub total_left_fen: i64,
    pub customer_left_fen: Option<i64>,
}

/// A routing run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub application_ref: String,
    pub product_code: String,
    pub amount_fen: i64,
    pub months: i64,
    pub customer_ref: String,
    /// The request as JSON.
    pub request: String,
    /// JSON array of funder codes in order.
    pub plan: String,
    pub state: String,
    pub next_index: i64,
    pub funder_code: Option<String>,
    pub started_by: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

const RUN_COLUMNS: &str =
    "id, application_ref, product_code, amount_fen, months, customer_ref, request, plan, \
    state, next_index, funder_code, started_by, started_at_ms, finished_at_ms";

fn run_from_row(r: &AnyRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: r.try_get("id")?,
        application_ref: r.try_get("application_ref")?,
        product_code: r.try_get("product_code")?,
        amount_fen: r.try_get("amount_fen")?,
        months: r.try_get("months")?,
        customer_ref: r.try_get("customer_ref")?,
        request: r.try_get("request")?,
        plan: r.try_get("plan")?,
        state: r.try_get("state")?,
        next_index: r.try_get("next_index")?,
        funder_code: r.try_get("funder_code")?,
        started_by: r.try_get("started_by")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
    })
}

/// Inserts a run (`id`, `finished_at_ms` ignored). Returns its id.
pub async fn run_insert(conn: &mut AnyConnection, r: &RunRow) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO routing_runs (application_ref, product_code, amount_fen, months, customer_ref, request, plan, state,
            next_index, funder_code, started_by, started_at_ms, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
    )
    .bind(&r.application_ref)
    .bind(&r.product_code)
    .bind(r.amount_fen)
    .bind(r.months)
    .bind(&r.customer_ref)
    .bind(&r.request)
    .bind(&r.plan)
    .bind(&r.state)
    .bind(r.next_index)
    .bind(&r.funder_code)
    .bind(&r.started_by)
    .bind(r.started_at_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

/// Moves a run on, if it is still in `from_state` at `from_index` (an optimistic check:
/// two workers cannot both advance one run). Finished states set `finished_at_ms`.
#[allow(clippy::too_many_arguments)]
pub async fn run_advance(
    conn: &mut AnyConnection,
    run_id: i64,
    from_state: &str,
    from_index: i64,
    to_state: &str,
    to_index: i64,
    funder_code: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let finished = matches!(to_state, "routed" | "exhausted").then_some(now_ms);
    let done = sqlx::query(
        "UPDATE routing_runs SET state = $4, next_index = $5, funder_code = COALESCE($6, funder_code),
            finished_at_ms = COALESCE($7, finished_at_ms), updated_at_ms = $8
         WHERE id = $1 AND state = $2 AND next_index = $3",
    )
    .bind(run_id)
    .bind(from_state)
    .bind(from_index)
    .bind(to_state)
    .bind(to_index)
    .bind(funder_code)
    .bind(finished)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn run_get(conn: &mut AnyConnection, run_id: i64) -> Result<Option<RunRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM routing_runs WHERE id = $1"
    ))
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(run_from_row).transpose()
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub partner_code: String,
    pub outcome: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub attempt: i64,
    pub reservation_id: Option<i64>,
    pub external_ref: Option<String>,
    pub started_at_ms: i64,
    pub duration_ms: Option<i64>,
    pub decided_at_ms: Option<i64>,
}

const STEP_COLUMNS: &str =
    "id, run_id, seq, partner_code, outcome, reason_code, reason, attempt, reservation_id, \
    external_ref, started_at_ms, duration_ms, decided_at_ms";

fn step_from_row(r: &AnyRow) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        seq: r.try_get("seq")?,
        partner_code: r.try_get("partner_code")?,
        outcome: r.try_get("outcome")?,
        reason_code: r.try_get("reason_code")?,
        reason: r.try_get("reason")?,
        attempt: r.try_get("attempt")?,
        reservation_id: r.try_get("reservation_id")?,
        external_ref: r.try_get("external_ref")?,
        started_at_ms: r.try_get("started_at_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
    })
}

/// Appends a step (its `seq` is the next of the run; `id`/`seq` of `s` are ignored).
pub async fn step_insert(conn: &mut AnyConnection, s: &StepRow) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO routing_steps (run_id, seq, partner_code, outcome, reason_code, reason, attempt, reservation_id,
            external_ref, started_at_ms, duration_ms, decided_at_ms)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM routing_steps WHERE run_id = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id",
    )
    .bind(s.run_id)
    .bind(&s.partner_code)
    .bind(&s.outcome)
    .bind(&s.reason_code)
    .bind(&s.reason)
    .bind(s.attempt)
    .bind(s.reservation_id)
    .bind(&s.external_ref)
    .bind(s.started_at_ms)
    .bind(s.duration_ms)
    .bind(s.decided_at_ms)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

/// Decides a pending step (a callback). False when it was not pending any more.
pub async fn step_decide(
    conn: &mut AnyConnection,
    step_id: i64,
    outcome: &str,
    reason: Option<&str>,
    external_ref: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE routing_steps SET outcome = $2, reason = COALESCE($3, reason), external_ref = COALESCE($4, external_ref),
            decided_at_ms = $5, duration_ms = $5 - started_at_ms
         WHERE id = $1 AND outcome = 'pending'",
    )
    .bind(step_id)
    .bind(outcome)
    .bind(reason)
    .bind(external_ref)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn steps_of_run(
    conn: &mut AnyConnection,
    run_id: i64,
) -> Result<Vec<StepRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {STEP_COLUMNS} FROM routing_steps WHERE run_id = $1 ORDER BY seq"
    ))
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(step_from_row).collect()
}

/// The pending step of a partner for an application (what a callback refers to).
pub async fn pending_step(
    conn: &mut AnyConnection,
    partner_code: &str,
    application_ref: &str,
) -> Result<Option<StepRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM routing_steps s JOIN routing_runs r ON r.id = s.run_id
         WHERE s.partner_code = $1 AND r.application_ref = $2 AND s.outcome = 'pending'
         ORDER BY s.id DESC LIMIT 1",
        STEP_COLUMNS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(partner_code)
    .bind(application_ref)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(step_from_row).transpose()
}

/// Stores a callback's result the first time its id is seen. `Ok(None)` when stored now;
/// `Ok(Some(result))` with the first result when the id was seen before.
pub async fn callback_record_once(
    conn: &mut AnyConnection,
    partner_id: i64,
    callback_id: &str,
    step_id: Option<i64>,
    result: &str,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO funder_callbacks (partner_id, callback_id, step_id, received_at_ms, result) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (partner_id, callback_id) DO NOTHING RETURNING id",
    )
    .bind(partner_id)
    .bind(callback_id)
    .bind(step_id)
    .bind(now_ms)
    .bind(result)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT result FROM funder_callbacks WHERE partner_id = $1 AND callback_id = $2",
    )
    .bind(partner_id)
    .bind(callback_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(row.try_get("result")?))
}

/// Stores the result of a callback claimed by [`callback_record_once`].
pub async fn callback_set_result(
    conn: &mut AnyConnection,
    partner_id: i64,
    callback_id: &str,
    step_id: Option<i64>,
    result: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE funder_callbacks SET result = $3, step_id = $4 WHERE partner_id = $1 AND callback_id = $2",
    )
    .bind(partner_id)
    .bind(callback_id)
    .bind(result)
    .bind(step_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a reminder once per (partner, kind, due date). True when new.
pub async fn reminder_insert_once(
    conn: &mut AnyConnection,
    partner_id: i64,
    kind: &str,
    due_on: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "INSERT INTO partner_reminders (partner_id, kind, due_on, created_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (partner_id, kind, due_on) DO NOTHING RETURNING id",
    )
    .bind(partner_id)
    .bind(kind)
    .bind(due_on)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reminder {
    pub kind: String,
    pub due_on: String,
    pub created_at_ms: i64,
}

/// Routing figures of one funder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutingStats {
    pub partner_code: String,
    /// Steps that reached the funder (not skipped).
    pub attempts: i64,
    pub approved: i64,
    pub declined: i64,
    pub timeouts: i64,
    pub errors: i64,
    pub pending: i64,
    /// Average time to decide (approved or declined), ms.
    pub avg_decision_ms: Option<i64>,
    /// Sum of amounts the funder approved, fen.
    pub approved_amount_fen: i64,
}

/// Balances from [`funder_exposures`](crate::partners) (filled by the loan ledger).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Exposure {
    pub loans: i64,
    pub outstanding_fen: i64,
    pub overdue_fen: i64,
    /// Outstanding principal of loans more than 0 days past due.
    pub overdue_outstanding_fen: i64,
}

impl Store {
    pub async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PARTNER_COLUMNS} FROM partners WHERE code = $1"
        ))
        .bind(code)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(partner_from_row).transpose()
    }

    /// Partners, optionally of one kind and/or status, by code.
    pub async fn partners(
        &self,
        kind: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<Partner>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PARTNER_COLUMNS} FROM partners
             WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR status = $2) ORDER BY code"
        ))
        .bind(kind)
        .bind(status)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(partner_from_row).collect()
    }

    pub async fn partner_status_history(
        &self,
        partner_id: i64,
    ) -> Result<Vec<StatusHistory>, StoreError> {
        let rows = sqlx::query(
            "SELECT from_status, to_status, on_date, reason, actor, at_ms FROM partner_status_history
             WHERE partner_id = $1 ORDER BY id",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StatusHistory {
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    on_date: r.try_get("on_date")?,
                    reason: r.try_get("reason")?,
                    actor: r.try_get("actor")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    /// The licences of every partner, as (partner id, licence), ordered like
    /// [`Store::partner_licences`] within a partner: one statement for a whole waterfall.
    pub async fn all_partner_licences(&self) -> Result<Vec<(i64, Licence)>, StoreError> {
        let rows = sqlx::query(
            "SELECT partner_id, id, licence_type, number, issuer, valid_until FROM partner_licences ORDER BY partner_id, id",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("partner_id")?, licence_row(r)?)))
            .collect()
    }

    pub async fn partner_licences(&self, partner_id: i64) -> Result<Vec<Licence>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, licence_type, number, issuer, valid_until FROM partner_licences WHERE partner_id = $1 ORDER BY id",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(licence_row).collect()
    }

    pub async fn partner_documents(&self, partner_id: i64) -> Result<Vec<Document>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, reference, description, sha256 FROM partner_documents WHERE partner_id = $1 ORDER BY id",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Document {
                    id: r.try_get("id")?,
                    reference: r.try_get("reference")?,
                    description: r.try_get("description")?,
                    sha256: r.try_get("sha256")?,
                })
            })
            .collect()
    }

    pub async fn partner_contacts(&self, partner_id: i64) -> Result<Vec<Contact>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, title, email, phone_enc, row_key FROM partner_contacts WHERE partner_id = $1 ORDER BY id",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Contact {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    title: r.try_get("title")?,
                    email: r.try_get("email")?,
                    phone_enc: r.try_get("phone_enc")?,
                    row_key: r.try_get("row_key")?,
                })
            })
            .collect()
    }

    /// The active admission standards in order.
    pub async fn admission_standards(&self) -> Result<Vec<StandardRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT code, title_zh, title_en, kinds, required, position FROM admission_standards
             WHERE active = 1 ORDER BY position, code",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StandardRow {
                    code: r.try_get("code")?,
                    title_zh: r.try_get("title_zh")?,
                    title_en: r.try_get("title_en")?,
                    kinds: r.try_get("kinds")?,
                    required: r.try_get::<i64, _>("required")? == 1,
                    position: r.try_get("position")?,
                })
            })
            .collect()
    }

    /// A partner's admissions, newest first.
    pub async fn admissions(&self, partner_id: i64) -> Result<Vec<Admission>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ADMISSION_COLUMNS} FROM partner_admissions WHERE partner_id = $1 ORDER BY id DESC"
        ))
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(admission_from_row).collect()
    }

    pub async fn partner_limits(&self, partner_id: i64) -> Result<Option<Limits>, StoreError> {
        let row = sqlx::query(
            "SELECT daily_quota_fen, total_quota_fen, per_customer_max_fen, total_used_fen FROM partner_limits WHERE partner_id = $1",
        )
        .bind(partner_id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(Limits {
                daily_quota_fen: r.try_get("daily_quota_fen")?,
                total_quota_fen: r.try_get("total_quota_fen")?,
                per_customer_max_fen: r.try_get("per_customer_max_fen")?,
                total_used_fen: r.try_get("total_used_fen")?,
            })
        })
        .transpose()
    }

    /// Used amount of a partner's daily quota on `day`.
    pub async fn partner_daily_used(&self, partner_id: i64, day: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT used_fen FROM partner_daily_usage WHERE partner_id = $1 AND day = $2",
        )
        .bind(partner_id)
        .bind(day)
        .fetch_optional(self.reader())
        .await?;
        Ok(match row {
            Some(r) => r.try_get("used_fen")?,
            None => 0,
        })
    }

    /// What a customer holds (reserved or consumed) at a partner.
    pub async fn partner_customer_exposure(
        &self,
        partner_id: i64,
        customer_ref: &str,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS used FROM quota_reservations
             WHERE partner_id = $1 AND customer_ref = $2 AND state IN ('reserved', 'consumed')",
        )
        .bind(partner_id)
        .bind(customer_ref)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("used")?)
    }

    /// Quota left today for a customer; `None` when the partner has no limits (nothing
    /// may be reserved then). One statement: the limits, the day's usage and the
    /// customer's exposure (as [`Store::partner_limits`], [`Store::partner_daily_used`]
    /// and [`Store::partner_customer_exposure`] read them).
    pub async fn quota_left(
        &self,
        partner_id: i64,
        day: &str,
        customer_ref: &str,
    ) -> Result<Option<QuotaLeft>, StoreError> {
        let row = sqlx::query(
            "SELECT l.daily_quota_fen, l.total_quota_fen, l.per_customer_max_fen, l.total_used_fen,
                    COALESCE((SELECT u.used_fen FROM partner_daily_usage u
                              WHERE u.partner_id = l.partner_id AND u.day = $2), 0) AS daily_used,
                    (SELECT CAST(COALESCE(SUM(r.amount_fen), 0) AS BIGINT) FROM quota_reservations r
                     WHERE r.partner_id = l.partner_id AND r.customer_ref = $3
                       AND r.state IN ('reserved', 'consumed')) AS customer_used
             FROM partner_limits l WHERE l.partner_id = $1",
        )
        .bind(partner_id)
        .bind(day)
        .bind(customer_ref)
        .fetch_optional(self.reader())
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let daily_quota: i64 = r.try_get("daily_quota_fen")?;
        let total_quota: i64 = r.try_get("total_quota_fen")?;
        let per_customer: Option<i64> = r.try_get("per_customer_max_fen")?;
        let total_used: i64 = r.try_get("total_used_fen")?;
        let daily_used: i64 = r.try_get("daily_used")?;
        let customer_used: i64 = r.try_get("customer_used")?;
        Ok(Some(QuotaLeft {
            daily_left_fen: (daily_quota - daily_used).max(0),
            total_left_fen: (total_quota - total_used).max(0),
            customer_left_fen: per_customer.map(|max| (max - customer_used).max(0)),
        }))
    }

    /// Reserves quota in its own transaction (tests and simple callers).
    pub async fn quota_reserve_now(
        &self,
        r: &ReserveRequest<'_>,
        now_ms: i64,
    ) -> Result<Result<i64, QuotaRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let out = quota_reserve(&mut tx, r, now_ms).await?;
        if out.is_ok() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(out)
    }

    /// Every partner's annual rate for one product, as (partner id, rate).
    pub async fn partner_rates_for(
        &self,
        product_code: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT partner_id, annual_rate FROM partner_pricing WHERE product_code = $1 ORDER BY partner_id",
        )
        .bind(product_code)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("partner_id")?, r.try_get("annual_rate")?)))
            .collect()
    }

    /// Every (product code, annual rate) a partner prices.
    pub async fn partner_pricing(
        &self,
        partner_id: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT product_code, annual_rate FROM partner_pricing WHERE partner_id = $1 ORDER BY product_code",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("product_code")?, r.try_get("annual_rate")?)))
            .collect()
    }

    pub async fn partner_reminders(&self, partner_id: i64) -> Result<Vec<Reminder>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, due_on, created_at_ms FROM partner_reminders WHERE partner_id = $1 ORDER BY due_on, kind",
        )
        .bind(partner_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Reminder {
                    kind: r.try_get("kind")?,
                    due_on: r.try_get("due_on")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Runs, newest first, optionally those that tried one funder (skipped candidates do not
    /// count) or of one application.
    pub async fn routing_runs(
        &self,
        partner_code: Option<&str>,
        application_ref: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM routing_runs r
             WHERE ($1 IS NULL OR EXISTS (SELECT 1 FROM routing_steps s WHERE s.run_id = r.id AND s.partner_code = $1 AND s.outcome <> 'skipped'))
               AND ($2 IS NULL OR application_ref = $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(partner_code)
        .bind(application_ref)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    pub async fn routing_run(
        &self,
        run_id: i64,
    ) -> Result<Option<(RunRow, Vec<StepRow>)>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        let Some(run) = run_get(&mut conn, run_id).await? else {
            return Ok(None);
        };
        let steps = steps_of_run(&mut conn, run_id).await?;
        Ok(Some((run, steps)))
    }

    /// Routing figures per funder code (every code that has ever had a step).
    pub async fn routing_stats(&self) -> Result<Vec<RoutingStats>, StoreError> {
        // Kept per funder by triggers on routing_steps (migration 19): one row per
        // funder, however many steps the book has.
        let rows = sqlx::query(
            "SELECT partner_code AS code, attempts, approved, declined, timeouts, errors, pending,
                decided_ms, timed, approved_amount
             FROM partner_routing_stats ORDER BY partner_code",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let timed: i64 = r.try_get("timed")?;
                let decided_ms: i64 = r.try_get("decided_ms")?;
                Ok(RoutingStats {
                    partner_code: r.try_get("code")?,
                    attempts: r.try_get("attempts")?,
                    approved: r.try_get("approved")?,
                    declined: r.try_get("declined")?,
                    timeouts: r.try_get("timeouts")?,
                    errors: r.try_get("errors")?,
                    pending: r.try_get("pending")?,
                    avg_decision_ms: (timed > 0).then(|| decided_ms / timed),
                    approved_amount_fen: r.try_get("approved_amount")?,
                })
            })
            .collect()
    }

    /// (started_at_ms, outcome, amount_fen) of a funder's non-skipped steps since `from_ms`.
    pub async fn routing_steps_since(
        &self,
        partner_code: &str,
        from_ms: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.started_at_ms, s.outcome, r.amount_fen FROM routing_steps s JOIN routing_runs r ON r.id = s.run_id
             WHERE s.partner_code = $1 AND s.outcome <> 'skipped' AND s.started_at_ms >= $2 ORDER BY s.started_at_ms",
        )
        .bind(partner_code)
        .bind(from_ms)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("started_at_ms")?,
                    r.try_get("outcome")?,
                    r.try_get("amount_fen")?,
                ))
            })
            .collect()
    }

    /// Disbursed balance and overdue of a funder from `funder_exposures`; `None` when the
    /// loan ledger has written no row for it.
    pub async fn funder_exposure(
        &self,
        partner_code: &str,
    ) -> Result<Option<Exposure>, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS loans,
                CAST(COALESCE(SUM(outstanding_fen), 0) AS BIGINT) AS outstanding,
                CAST(COALESCE(SUM(overdue_fen), 0) AS BIGINT) AS overdue,
                CAST(COALESCE(SUM(CASE WHEN days_past_due > 0 THEN outstanding_fen ELSE 0 END), 0) AS BIGINT) AS overdue_outstanding
             FROM funder_exposures WHERE partner_code = $1",
        )
        .bind(partner_code)
        .fetch_one(self.reader())
        .await?;
        let loans: i64 = row.try_get("loans")?;
        if loans == 0 {
            return Ok(None);
        }
        Ok(Some(Exposure {
            loans,
            outstanding_fen: row.try_get("outstanding")?,
            overdue_fen: row.try_get("overdue")?,
            overdue_outstanding_fen: row.try_get("overdue_outstanding")?,
        }))
    }
}
