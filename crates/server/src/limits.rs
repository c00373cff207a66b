//! Credit limits (授信额度, issue #7 item 4), shared by the API (`api::limits`), the pages
//! (`ui::limits`), the warning engine's actions and — through [`reserve`] and
//! [`release`] — the loans capability.
//!
//! * Lines per customer and per enterprise group; what a draw may use is checked by
//!   `zhudai_domain::credit_limit::check_draw` against the customer line and every group
//!   line over the customer, with the rows locked (see `zhudai_store::limits`).
//! * A new line, a new amount or end date, and lifting a freeze are requested by one
//!   person (`risk.limit`) and approved by another (`risk.limit.approve`, never the
//!   requester). Freezing is immediate.
//! * A daily job ([`EXPIRE_JOB`]) marks lines past their end date expired; a draw on a
//!   lapsed line is refused even before the job runs.
//! * Every change writes the line's history and an audit record in the same transaction.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;
use zhudai_domain::credit_limit::{
    check_draw, check_four_eyes, check_request, cut, LimitScope, LimitStatus, Line, Refusal,
};
use zhudai_domain::Fen;
use zhudai_store::audit::AuditDraft;
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::limits::{self as sl, AdjustmentRow, LimitRow, ReservationRow};
use zhudai_store::sqlx;
use zhudai_store::{Store, StoreError};

/// Job kind: mark lines past their end date expired (daily).
pub const EXPIRE_JOB: &str = "risk.limits.expire";
const DAY_MS: i64 = 86_400_000;

fn date_of(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn line_of(r: &LimitRow, used: i64) -> Line {
    Line {
        scope: LimitScope::parse(&r.scope).unwrap_or(LimitScope::Customer),
        amount: Fen::new(r.amount_fen),
        used: Fen::new(used),
        status: LimitStatus::parse(&r.status).unwrap_or(LimitStatus::Closed),
        // An unreadable date is treated as long past: refuse rather than lend.
        valid_until: date_of(&r.valid_until).unwrap_or(NaiveDate::MIN),
    }
}

/// A refused draw as a problem: 422 naming `amount`, with the refusal's code.
pub fn refusal_error(r: &Refusal) -> ApiError {
    ApiError::Validation(vec![FieldError::new("amount", r.code(), r.to_string())])
}

fn system_draft(now_ms: i64, action: &str, actor: &str, target: String) -> AuditDraft {
    let mut d = AuditDraft::new(now_ms, action, "success")
        .actor(actor.to_owned())
        .target(target);
    if let Some(id) = crate::http::request_id::current_request_id() {
        d = d.request_id(id);
    }
    d
}

// ---------------------------------------------------------------------------------------
// Draws: the functions the loans code calls inside its own transaction

/// A reservation of part of a customer's line.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReservationView {
    pub id: i64,
    pub limit_id: i64,
    pub reference: String,
    /// Yuan.
    #[schema(value_type = String)]
    pub amount: Fen,
    #[schema(value_type = String)]
    pub released: Fen,
    /// `reserved` or `released`.
    pub status: String,
}

impl From<ReservationRow> for ReservationView {
    fn from(r: ReservationRow) -> Self {
        ReservationView {
            id: r.id,
            limit_id: r.limit_id,
            reference: r.reference,
            amount: Fen::new(r.amount_fen),
            released: Fen::new(r.released_fen),
            status: r.status,
        }
    }
}

/// Reserves `amount` of the customer's line for `reference` (a contract or loan number),
/// inside the caller's transaction. Checks the customer line and every group line over
/// the customer (frozen, expired, lapsed, beyond the available amount: a 422 naming the
/// refusal). Reserving the same reference again with the same amount returns the
/// existing reservation; with another amount it is a conflict. Writes the line's history
/// and an audit record (`actor` is who draws: a user name or `loans`).
pub async fn reserve(
    conn: &mut AnyConnection,
    customer_id: i64,
    amount: Fen,
    reference: &str,
    actor: &str,
    today: NaiveDate,
    now_ms: i64,
) -> ApiResult<ReservationView> {
    if reference.trim().is_empty() {
        return Err(ApiError::field(
            "reference",
            "required",
            "a reservation needs the caller's reference",
        ));
    }
    if !amount.is_positive() {
        return Err(refusal_error(&Refusal::NotPositive));
    }
    if let Some(existing) = sl::reservation_by_reference(conn, reference).await? {
        if existing.amount_fen == amount.as_fen() {
            return Ok(existing.into());
        }
        return Err(ApiError::Conflict(format!(
            "reference `{reference}` already reserved {}",
            Fen::new(existing.amount_fen)
        )));
    }
    let line = sl::limit_current(conn, "customer", customer_id)
        .await?
        .ok_or_else(|| refusal_error(&Refusal::NoLine))?;
    let groups = sl::group_lines_over(conn, customer_id).await?;
    // Lock in id order so two draws over the same lines cannot deadlock.
    let mut ids: Vec<i64> = groups.iter().map(|g| g.id).chain([line.id]).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        sl::limit_lock(conn, *id).await?;
    }
    // Re-read after locking: the values are now the committed ones.
    let line = sl::limit_get(conn, line.id)
        .await?
        .ok_or_else(|| refusal_error(&Refusal::NoLine))?;
    check_draw(&line_of(&line, line.used_fen), amount, today).map_err(|r| refusal_error(&r))?;
    for g in &groups {
        let g = sl::limit_get(conn, g.id)
            .await?
            .unwrap_or_else(|| g.clone());
        let used = sl::group_used(conn, g.customer_id).await?;
        check_draw(&line_of(&g, used), amount, today).map_err(|r| refusal_error(&r))?;
    }
    if !sl::limit_add_used(conn, line.id, amount.as_fen(), now_ms).await? {
        return Err(ApiError::Conflict("the line changed meanwhile".into()));
    }
    let id =
        sl::reservation_insert(conn, line.id, reference, amount.as_fen(), actor, now_ms).await?;
    sl::history_insert(
        conn,
        line.id,
        actor,
        "reserve",
        (Some(line.used_fen), None),
        (Some(line.used_fen + amount.as_fen()), None),
        Some(reference),
        now_ms,
    )
    .await?;
    zhudai_store::audit::append(
        conn,
        &system_draft(
            now_ms,
            "credit_limit.reserve",
            actor,
            format!("credit_limit:{}", line.id),
        )
        .reason(format!("{amount} for {reference}")),
    )
    .await?;
    Ok(ReservationView {
        id,
        limit_id: line.id,
        reference: reference.to_owned(),
        amount,
        released: Fen::ZERO,
        status: "reserved".into(),
    })
}

/// Gives back `amount` (all that is still reserved when `None`) of the reservation
/// `reference` to its line (repayment, cancellation), inside the caller's transaction.
pub async fn release(
    conn: &mut AnyConnection,
    reference: &str,
    amount: Option<Fen>,
    actor: &str,
    now_ms: i64,
) -> ApiResult<ReservationView> {
    let r = sl::reservation_by_reference(conn, reference)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no reservation has reference `{reference}`")))?;
    let open = r.amount_fen - r.released_fen;
    let give = amount.map_or(open, Fen::as_fen);
    if give <= 0 || give > open {
        return Err(ApiError::field(
            "amount",
            "invalid",
            format!("between 0.01 and the {} still reserved", Fen::new(open)),
        ));
    }
    sl::limit_lock(conn, r.limit_id).await?;
    if !sl::reservation_release(conn, r.id, give, now_ms).await? {
        return Err(ApiError::Conflict(
            "the reservation changed meanwhile".into(),
        ));
    }
    let line = sl::limit_get(conn, r.limit_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    // The use cannot go below zero (a CHECK guards it as well).
    let delta = -give.min(line.used_fen);
    sl::limit_add_used(conn, line.id, delta, now_ms).await?;
    sl::history_insert(
        conn,
        line.id,
        actor,
        "release",
        (Some(line.used_fen), None),
        (Some(line.used_fen + delta), None),
        Some(reference),
        now_ms,
    )
    .await?;
    zhudai_store::audit::append(
        conn,
        &system_draft(
            now_ms,
            "credit_limit.release",
            actor,
            format!("credit_limit:{}", line.id),
        )
        .reason(format!("{} for {reference}", Fen::new(give))),
    )
    .await?;
    let after = sl::reservation_by_reference(conn, reference)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(after.into())
}

// ---------------------------------------------------------------------------------------
// Immediate protective changes (also the warning engine's actions)

/// What a freeze or cut did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protective {
    Done { limit_id: i64, detail: String },
    NoLine,
    Unchanged { limit_id: i64, detail: String },
}

/// Freezes the customer's current line inside the caller's transaction; returns the
/// audit record to append (last) when something changed.
pub async fn freeze_in(
    conn: &mut AnyConnection,
    customer_id: i64,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(Protective, Option<AuditDraft>), StoreError> {
    let Some(line) = sl::limit_current(conn, "customer", customer_id).await? else {
        return Ok((Protective::NoLine, None));
    };
    if line.status != "active" {
        return Ok((
            Protective::Unchanged {
                limit_id: line.id,
                detail: format!("line is {}", line.status),
            },
            None,
        ));
    }
    let ok = sl::limit_update(
        conn,
        line.id,
        line.version,
        &sl::LimitChange {
            amount_fen: line.amount_fen,
            valid_until: &line.valid_until,
            status: "frozen",
            frozen_reason: Some(reason),
        },
        now_ms,
    )
    .await?;
    if !ok {
        return Ok((
            Protective::Unchanged {
                limit_id: line.id,
                detail: "the line changed meanwhile".into(),
            },
            None,
        ));
    }
    sl::history_insert(
        conn,
        line.id,
        actor,
        "freeze",
        (None, Some("active")),
        (None, Some("frozen")),
        Some(reason),
        now_ms,
    )
    .await?;
    let d = system_draft(
        now_ms,
        "credit_limit.freeze",
        actor,
        format!("credit_limit:{}", line.id),
    )
    .reason(reason.to_owned());
    Ok((
        Protective::Done {
            limit_id: line.id,
            detail: format!("line {} frozen", line.id),
        },
        Some(d),
    ))
}

/// Cuts the customer's current line by `percent` inside the caller's transaction.
pub async fn cut_in(
    conn: &mut AnyConnection,
    customer_id: i64,
    percent: u32,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(Protective, Option<AuditDraft>), StoreError> {
    let Some(line) = sl::limit_current(conn, "customer", customer_id).await? else {
        return Ok((Protective::NoLine, None));
    };
    let to = cut(Fen::new(line.amount_fen), percent).as_fen();
    if to == line.amount_fen {
        return Ok((
            Protective::Unchanged {
                limit_id: line.id,
                detail: "nothing to cut".into(),
            },
            None,
        ));
    }
    let ok = sl::limit_update(
        conn,
        line.id,
        line.version,
        &sl::LimitChange {
            amount_fen: to,
            valid_until: &line.valid_until,
            status: &line.status,
            frozen_reason: line.frozen_reason.as_deref(),
        },
        now_ms,
    )
    .await?;
    if !ok {
        return Ok((
            Protective::Unchanged {
                limit_id: line.id,
                detail: "the line changed meanwhile".into(),
            },
            None,
        ));
    }
    sl::history_insert(
        conn,
        line.id,
        actor,
        "cut",
        (Some(line.amount_fen), None),
        (Some(to), None),
        Some(reason),
        now_ms,
    )
    .await?;
    let d = system_draft(
        now_ms,
        "credit_limit.cut",
        actor,
        format!("credit_limit:{}", line.id),
    )
    .reason(format!(
        "{} → {}: {reason}",
        Fen::new(line.amount_fen),
        Fen::new(to)
    ));
    Ok((
        Protective::Done {
            limit_id: line.id,
            detail: format!("line {} cut by {percent}% to {}", line.id, Fen::new(to)),
        },
        Some(d),
    ))
}

// ---------------------------------------------------------------------------------------
// Views

/// A credit line.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct LimitView {
    pub id: i64,
    /// `customer` or `group` (set on an enterprise; covers it and the persons linked to it).
    pub scope: String,
    pub customer_id: i64,
    pub customer_name: String,
    /// Yuan.
    #[schema(value_type = String)]
    pub amount: Fen,
    /// Reserved by draws; for a group line, the sum of its members' use.
    #[schema(value_type = String)]
    pub used: Fen,
    #[schema(value_type = String)]
    pub available: Fen,
    /// Used / amount in percent, one decimal (`"45.0"`); `null` for a zero line.
    pub utilisation_pct: Option<String>,
    /// `active`, `frozen`, `expired`, `closed`.
    pub status: String,
    pub valid_until: String,
    pub frozen_reason: Option<String>,
    pub version: i64,
}

fn utilisation(used: i64, amount: i64) -> Option<String> {
    (amount > 0).then(|| {
        let permille = (i128::from(used) * 1000 + i128::from(amount) / 2) / i128::from(amount);
        format!("{}.{}", permille / 10, permille % 10)
    })
}

/// The view of a line (a group line's use summed over its members).
pub async fn view(store: &Store, r: LimitRow) -> ApiResult<LimitView> {
    let used = if r.scope == "group" {
        let mut conn = store.reader().acquire().await.map_err(StoreError::from)?;
        sl::group_used(&mut conn, r.customer_id).await?
    } else {
        r.used_fen
    };
    Ok(LimitView {
        id: r.id,
        scope: r.scope,
        customer_id: r.customer_id,
        customer_name: r.customer_name,
        amount: Fen::new(r.amount_fen),
        used: Fen::new(used),
        available: Fen::new((r.amount_fen - used).max(0)),
        utilisation_pct: utilisation(used, r.amount_fen),
        status: r.status,
        valid_until: r.valid_until,
        frozen_reason: r.frozen_reason,
        version: r.version,
    })
}

/// A requested change.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct AdjustmentView {
    pub id: i64,
    pub limit_id: Option<i64>,
    pub scope: String,
    pub customer_id: i64,
    pub customer_name: String,
    /// `set` (new line, amount or end date) or `unfreeze`.
    pub kind: String,
    #[schema(value_type = Option<String>)]
    pub new_amount: Option<Fen>,
    pub new_valid_until: Option<String>,
    pub reason: String,
    /// `pending`, `approved`, `rejected`.
    pub status: String,
    pub requested_by: i64,
    pub requested_by_name: String,
    pub requested_at_ms: i64,
    pub decided_by: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub decision_note: Option<String>,
}

impl From<AdjustmentRow> for AdjustmentView {
    fn from(a: AdjustmentRow) -> Self {
        AdjustmentView {
            id: a.id,
            limit_id: a.limit_id,
            scope: a.scope,
            customer_id: a.customer_id,
            customer_name: a.customer_name,
            kind: a.kind,
            new_amount: a.new_amount_fen.map(Fen::new),
            new_valid_until: a.new_valid_until,
            reason: a.reason,
            status: a.status,
            requested_by: a.requested_by,
            requested_by_name: a.requested_by_name,
            requested_at_ms: a.requested_at_ms,
            decided_by: a.decided_by,
            decided_at_ms: a.decided_at_ms,
            decision_note: a.decision_note,
        }
    }
}

/// One entry of a line's history.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct HistoryView {
    pub at_ms: i64,
    pub actor: String,
    /// `open`, `set`, `reserve`, `release`, `freeze`, `unfreeze`, `cut`, `expire`.
    pub action: String,
    #[schema(value_type = Option<String>)]
    pub from_amount: Option<Fen>,
    #[schema(value_type = Option<String>)]
    pub to_amount: Option<Fen>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
}

/// A line with its history, reservations and requests.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitDetail {
    pub line: LimitView,
    pub history: Vec<HistoryView>,
    pub reservations: Vec<ReservationView>,
    pub adjustments: Vec<AdjustmentView>,
}

/// Lines the caller may see (their data scope), newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: &sl::LimitQuery<'_>,
) -> ApiResult<Vec<LimitView>> {
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    let mut out = Vec::new();
    for r in state.store().credit_limits(q).await? {
        if scope.admits(r.owner_user_id, r.org_unit_id) {
            out.push(view(state.store(), r).await?);
        }
    }
    Ok(out)
}

async fn load(state: &AppState, caller: &Caller, id: i64) -> ApiResult<LimitRow> {
    let r = state
        .store()
        .credit_limit(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no credit line has id {id}")))?;
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    if !scope.admits(r.owner_user_id, r.org_unit_id) {
        return Err(ApiError::Forbidden(
            "this customer is outside your data scope".into(),
        ));
    }
    Ok(r)
}

pub async fn detail(state: &AppState, caller: &Caller, id: i64) -> ApiResult<LimitDetail> {
    let r = load(state, caller, id).await?;
    let customer_id = r.customer_id;
    let scope = r.scope.clone();
    let line = view(state.store(), r).await?;
    let history = state
        .store()
        .credit_limit_history(id)
        .await?
        .into_iter()
        .map(|h| HistoryView {
            at_ms: h.at_ms,
            actor: h.actor,
            action: h.action,
            from_amount: h.from_amount_fen.map(Fen::new),
            to_amount: h.to_amount_fen.map(Fen::new),
            from_status: h.from_status,
            to_status: h.to_status,
            note: h.note,
        })
        .collect();
    let reservations = state
        .store()
        .credit_limit_reservations(id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let adjustments = state
        .store()
        .credit_limit_adjustments(None, Some(customer_id))
        .await?
        .into_iter()
        .filter(|a| a.scope == scope)
        .map(Into::into)
        .collect();
    Ok(LimitDetail {
        line,
        history,
        reservations,
        adjustments,
    })
}

/// Pending requests in the caller's scope.
pub async fn pending(state: &AppState, caller: &Caller) -> ApiResult<Vec<AdjustmentView>> {
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    let mut out = Vec::new();
    for a in state
        .store()
        .credit_limit_adjustments(Some("pending"), None)
        .await?
    {
        if let Some(c) = state.store().customer_get(a.customer_id).await? {
            if scope.admits(c.owner_user_id, c.org_unit_id) {
                out.push(a.into());
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Maker-checker changes

/// A request to open a line or change its amount or end date.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub customer_id: i64,
    /// `customer` (default) or `group` (the customer must be an enterprise).
    #[serde(default)]
    pub scope: Option<String>,
    /// The new amount in yuan, e.g. `"50000.00"`.
    pub amount: String,
    /// The new end date `YYYY-MM-DD` (after today).
    pub valid_until: String,
    pub reason: String,
}

fn reason_of(field: &str, r: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let t = r.trim();
    if t.is_empty() || t.chars().count() > 500 {
        errors.push(FieldError::new(
            field,
            "required",
            "give a reason of 1 to 500 characters",
        ));
        None
    } else {
        Some(t.to_owned())
    }
}

fn pending_conflict(e: StoreError) -> ApiError {
    if e.is_unique_violation(
        "credit_limit_adjustments_pending_key",
        "credit_limit_adjustments.pending_key",
    ) {
        ApiError::Conflict(
            "a change of this line is already waiting for approval; decide that one first".into(),
        )
    } else {
        e.into()
    }
}

/// Records a pending change; nothing changes until another person approves it.
pub async fn request_adjustment(
    state: &AppState,
    caller: &Caller,
    req: &AdjustmentRequest,
) -> ApiResult<AdjustmentView> {
    let (customer, _) = crate::customers::load_in_scope(state, caller, req.customer_id).await?;
    let mut errors = Vec::new();
    let scope = match LimitScope::parse(req.scope.as_deref().unwrap_or("customer")) {
        Some(sc) => Some(sc),
        None => {
            errors.push(FieldError::new("scope", "invalid", "use customer or group"));
            None
        }
    };
    if scope == Some(LimitScope::Group) && customer.kind != "enterprise" {
        errors.push(FieldError::new(
            "scope",
            "not_enterprise",
            "a group line is set on an enterprise",
        ));
    }
    let amount = match Fen::parse(&req.amount) {
        Ok(a) => Some(a),
        Err(e) => {
            errors.push(FieldError::new("amount", e.code(), e.to_string()));
            None
        }
    };
    let valid_until = date_of(req.valid_until.trim());
    if valid_until.is_none() {
        errors.push(FieldError::new(
            "valid_until",
            "invalid_date",
            "use a date YYYY-MM-DD",
        ));
    }
    let reason = reason_of("reason", &req.reason, &mut errors);
    let today = state.clock().today();
    if let Some(v) = valid_until {
        for (f, c, m) in check_request(amount.unwrap_or(Fen::ZERO), v, today) {
            errors.push(FieldError::new(f, c, m));
        }
    }
    let (Some(scope), Some(amount), Some(valid_until), Some(reason)) =
        (scope, amount, valid_until, reason)
    else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let current = sl::limit_current(&mut tx, scope.as_str(), customer.id).await?;
    let until = valid_until.to_string();
    let id = sl::adjustment_insert(
        &mut tx,
        &sl::NewAdjustment {
            limit_id: current.as_ref().map(|l| l.id),
            scope: scope.as_str(),
            customer_id: customer.id,
            kind: "set",
            new_amount_fen: Some(amount.as_fen()),
            new_valid_until: Some(&until),
            reason: &reason,
            requested_by: caller.user_id,
        },
        now,
    )
    .await
    .map_err(pending_conflict)?;
    let d = crate::customers::audit_draft(
        caller,
        now,
        "credit_limit.request",
        format!("customer:{}", customer.id),
    )
    .reason(format!(
        "{} line → {amount} until {until}: {reason}",
        scope.as_str()
    ));
    zhudai_store::audit::append(&mut tx, &d).await?;
    let row = sl::adjustment_get(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(row.into())
}

/// Asks for a frozen line to be unfrozen (approved by another person).
pub async fn request_unfreeze(
    state: &AppState,
    caller: &Caller,
    limit_id: i64,
    reason: &str,
) -> ApiResult<AdjustmentView> {
    let line = load(state, caller, limit_id).await?;
    let mut errors = Vec::new();
    let reason = reason_of("reason", reason, &mut errors);
    if line.status != "frozen" {
        errors.push(FieldError::new(
            "status",
            "not_frozen",
            format!("the line is {}, not frozen", line.status),
        ));
    }
    let Some(reason) = reason.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = sl::adjustment_insert(
        &mut tx,
        &sl::NewAdjustment {
            limit_id: Some(line.id),
            scope: &line.scope,
            customer_id: line.customer_id,
            kind: "unfreeze",
            new_amount_fen: None,
            new_valid_until: None,
            reason: &reason,
            requested_by: caller.user_id,
        },
        now,
    )
    .await
    .map_err(pending_conflict)?;
    let d = crate::customers::audit_draft(
        caller,
        now,
        "credit_limit.request",
        format!("credit_limit:{}", line.id),
    )
    .reason(format!("unfreeze: {reason}"));
    zhudai_store::audit::append(&mut tx, &d).await?;
    let row = sl::adjustment_get(&mut tx, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(row.into())
}

/// The checker's decision.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approve` or `reject`.
    pub decision: String,
    /// Required when rejecting.
    #[serde(default)]
    pub note: Option<String>,
}

/// Approves (applying the change) or rejects a pending request; never the requester's.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    adjustment_id: i64,
    d: &Decision,
) -> ApiResult<AdjustmentView> {
    let approve = match d.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(ApiError::field(
                "decision",
                "invalid",
                "use approve or reject",
            ))
        }
    };
    let note = d
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if !approve && note.is_none() {
        return Err(ApiError::field(
            "note",
            "required",
            "say why the change is rejected",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let a = sl::adjustment_get(&mut tx, adjustment_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no limit request has id {adjustment_id}")))?;
    // The scope check reads the customer outside the transaction (it only reads).
    crate::customers::load_in_scope(state, caller, a.customer_id).await?;
    if a.status != "pending" {
        return Err(ApiError::Conflict(format!(
            "the request is already {}",
            a.status
        )));
    }
    if let Err(m) = check_four_eyes(a.requested_by, caller.user_id) {
        return Err(ApiError::Conflict(m.into()));
    }
    let mut limit_id = a.limit_id;
    let mut summary = String::new();
    if approve {
        let (id, text) = apply(&mut tx, &a, &caller.username, note.as_deref(), now).await?;
        limit_id = Some(id);
        summary = text;
    }
    if !sl::adjustment_decide(
        &mut tx,
        a.id,
        approve,
        caller.user_id,
        note.as_deref(),
        limit_id,
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the request was decided meanwhile".into(),
        ));
    }
    let draft = crate::customers::audit_draft(
        caller,
        now,
        if approve {
            "credit_limit.approve"
        } else {
            "credit_limit.reject"
        },
        format!("credit_limit_request:{}", a.id),
    )
    .reason(if approve {
        format!(
            "{summary} (requested by {}: {})",
            a.requested_by_name, a.reason
        )
    } else {
        note.clone().unwrap_or_default()
    });
    zhudai_store::audit::append(&mut tx, &draft).await?;
    let row = sl::adjustment_get(&mut tx, a.id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(row.into())
}

/// Applies an approved request; returns the line id and what changed.
async fn apply(
    conn: &mut AnyConnection,
    a: &AdjustmentRow,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> ApiResult<(i64, String)> {
    let current = sl::limit_current(conn, &a.scope, a.customer_id).await?;
    let note = note.unwrap_or(&a.reason);
    match (a.kind.as_str(), current) {
        ("set", None) => {
            let amount = a.new_amount_fen.unwrap_or(0);
            let until = a.new_valid_until.clone().unwrap_or_default();
            let id =
                sl::limit_insert(conn, &a.scope, a.customer_id, amount, &until, actor, now).await?;
            sl::history_insert(
                conn,
                id,
                actor,
                "open",
                (None, None),
                (Some(amount), Some("active")),
                Some(note),
                now,
            )
            .await?;
            Ok((id, format!("opened {} until {until}", Fen::new(amount))))
        }
        ("set", Some(line)) => {
            let amount = a.new_amount_fen.unwrap_or(line.amount_fen);
            let until = a
                .new_valid_until
                .clone()
                .unwrap_or(line.valid_until.clone());
            // A renewed expired line is active again; a frozen one stays frozen.
            let status = if line.status == "expired" {
                "active"
            } else {
                line.status.as_str()
            };
            if !sl::limit_update(
                conn,
                line.id,
                line.version,
                &sl::LimitChange {
                    amount_fen: amount,
                    valid_until: &until,
                    status,
                    frozen_reason: line.frozen_reason.as_deref(),
                },
                now,
            )
            .await?
            {
                return Err(ApiError::Conflict("the line changed meanwhile".into()));
            }
            sl::history_insert(
                conn,
                line.id,
                actor,
                "set",
                (Some(line.amount_fen), Some(&line.status)),
                (Some(amount), Some(status)),
                Some(note),
                now,
            )
            .await?;
            Ok((
                line.id,
                format!(
                    "{} → {} until {until}",
                    Fen::new(line.amount_fen),
                    Fen::new(amount)
                ),
            ))
        }
        ("unfreeze", Some(line)) if line.status == "frozen" => {
            if !sl::limit_update(
                conn,
                line.id,
                line.version,
                &sl::LimitChange {
                    amount_fen: line.amount_fen,
                    valid_until: &line.valid_until,
                    status: "active",
                    frozen_reason: None,
                },
                now,
            )
            .await?
            {
                return Err(ApiError::Conflict("the line changed meanwhile".into()));
            }
            sl::history_insert(
                conn,
                line.id,
                actor,
                "unfreeze",
                (None, Some("frozen")),
                (None, Some("active")),
                Some(note),
                now,
            )
            .await?;
            Ok((line.id, "unfrozen".into()))
        }
        _ => Err(ApiError::Conflict(
            "the line is no longer in the state the request was made for".into(),
        )),
    }
}

/// Freezes a line at once (protective; lifting it needs approval).
pub async fn freeze(
    state: &AppState,
    caller: &Caller,
    limit_id: i64,
    reason: &str,
) -> ApiResult<LimitView> {
    let line = load(state, caller, limit_id).await?;
    let mut errors = Vec::new();
    let Some(reason) = reason_of("reason", reason, &mut errors) else {
        return Err(ApiError::Validation(errors));
    };
    if line.status != "active" {
        return Err(ApiError::Conflict(format!(
            "the line is {}; only an active line can be frozen",
            line.status
        )));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let ok = sl::limit_update(
        &mut tx,
        line.id,
        line.version,
        &sl::LimitChange {
            amount_fen: line.amount_fen,
            valid_until: &line.valid_until,
            status: "frozen",
            frozen_reason: Some(&reason),
        },
        now,
    )
    .await?;
    if !ok {
        return Err(ApiError::Conflict(
            "the line changed meanwhile; reload and try again".into(),
        ));
    }
    sl::history_insert(
        &mut tx,
        line.id,
        &caller.username,
        "freeze",
        (None, Some("active")),
        (None, Some("frozen")),
        Some(&reason),
        now,
    )
    .await?;
    let d = crate::customers::audit_draft(
        caller,
        now,
        "credit_limit.freeze",
        format!("credit_limit:{}", line.id),
    )
    .reason(reason);
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let r = state
        .store()
        .credit_limit(line.id)
        .await?
        .ok_or(StoreError::NotFound)?;
    view(state.store(), r).await
}

// ---------------------------------------------------------------------------------------
// Expiry job

/// Marks every line past its end date expired (history and audit in one transaction).
/// Returns how many lines it expired; running it again finds none.
pub async fn expire_lapsed(
    store: &Store,
    today: NaiveDate,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let lapsed = sl::limits_lapsed(&mut tx, &today.to_string()).await?;
    let mut drafts = Vec::new();
    for l in &lapsed {
        let ok = sl::limit_update(
            &mut tx,
            l.id,
            l.version,
            &sl::LimitChange {
                amount_fen: l.amount_fen,
                valid_until: &l.valid_until,
                status: "expired",
                frozen_reason: l.frozen_reason.as_deref(),
            },
            now_ms,
        )
        .await?;
        if ok {
            sl::history_insert(
                &mut tx,
                l.id,
                "system",
                "expire",
                (None, Some(&l.status)),
                (None, Some("expired")),
                Some(&format!("ended {}", l.valid_until)),
                now_ms,
            )
            .await?;
            drafts.push(
                system_draft(
                    now_ms,
                    "credit_limit.expire",
                    "system",
                    format!("credit_limit:{}", l.id),
                )
                .reason(format!("ended {}", l.valid_until)),
            );
        }
    }
    for d in &drafts {
        zhudai_store::audit::append(&mut tx, d).await?;
    }
    tx.commit().await?;
    Ok(drafts.len())
}

async fn enqueue_expiry(store: &Store, day: i64, now_ms: i64) -> Result<(), StoreError> {
    // 00:10 Shanghai time (16:10 UTC the day before).
    let run_at = day * DAY_MS + 16 * 3_600_000 + 600_000;
    store
        .enqueue(
            &NewJob::new(EXPIRE_JOB, serde_json::json!({ "day": day }), run_at)
                .dedupe(&format!("{EXPIRE_JOB}:{day}")),
            now_ms,
        )
        .await?;
    Ok(())
}

/// Schedules the next daily expiry run (once however many servers start).
pub async fn schedule(store: &Store, now_ms: i64) -> Result<(), StoreError> {
    enqueue_expiry(store, now_ms.div_euclid(DAY_MS), now_ms).await
}

/// The job handler: schedules tomorrow's run, then expires what lapsed.
pub async fn run_expiry_job(state: AppState, _job: Job) -> Result<(), String> {
    let now = state.now_ms();
    enqueue_expiry(state.store(), now.div_euclid(DAY_MS) + 1, now)
        .await
        .map_err(|e| e.to_string())?;
    let n = expire_lapsed(state.store(), state.clock().today(), now)
        .await
        .map_err(|e| e.to_string())?;
    if n > 0 {
        tracing::info!(expired = n, "credit lines expired");
    }
    Ok(())
}
