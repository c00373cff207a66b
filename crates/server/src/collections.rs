//! Collections (issue #8 item 4): queues by bucket and assignee, the contact log with its
//! compliance guards (allowed hours and a daily limit per debtor, both settings),
//! assignment to collectors and outsourced agencies (commission = rate × recovered), and
//! closure. Cases are opened, moved and closed (cured, repaid) by the daily close.
//!
//! Who sees a case: a caller with an `all` scope sees every case; a `team` or `branch`
//! scope sees the cases of its org units and those assigned to it; an `own` scope (a
//! collector) only the cases assigned to it.

use crate::auth::Caller;
use crate::customers::audit_draft;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhudai_domain::collection::{self as dom, Channel, CloseReason, Outcome};
use zhudai_domain::money::Fen;
use zhudai_store::collections::{self as st, CaseRow, CaseScope};

/// The caller's view of cases.
pub async fn scope_of(state: &AppState, caller: &Caller) -> Result<CaseScope, ApiError> {
    Ok(match caller.scope.as_str() {
        "all" => CaseScope::All,
        "own" => CaseScope::Assigned(caller.user_id),
        _ => match crate::customers::scope_of(caller, state.store()).await? {
            zhudai_store::customers::ScopeFilter::All => CaseScope::All,
            zhudai_store::customers::ScopeFilter::Units { units, .. } => CaseScope::Units {
                units,
                me: caller.user_id,
            },
            zhudai_store::customers::ScopeFilter::Owner(_) => CaseScope::Assigned(caller.user_id),
        },
    })
}

/// A case the caller may see (404 unknown, 403 outside the scope).
pub async fn load(state: &AppState, caller: &Caller, id: i64) -> Result<CaseRow, ApiError> {
    let case = state
        .store()
        .case(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no collection case has id {id}")))?;
    if !scope_of(state, caller).await?.admits(&case) {
        return Err(ApiError::Forbidden(
            "this case is neither yours nor in your org units".into(),
        ));
    }
    Ok(case)
}

/// Local (Asia/Shanghai) date and time of an instant.
pub fn local(ms: i64) -> NaiveDateTime {
    let offset = i64::from(zhudai_domain::clock::BUSINESS_UTC_OFFSET_SECS) * 1000;
    DateTime::from_timestamp_millis(ms + offset)
        .unwrap_or_default()
        .naive_utc()
}

/// A contact to log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ContactInput {
    /// `phone`, `sms`, `wechat`, `letter`, `visit`, `email`.
    pub channel: String,
    /// `promise_to_pay`, `no_answer`, `left_message`, `refused`, `dispute`,
    /// `wrong_number`, `third_party`, `paid`, `other`.
    pub outcome: String,
    /// Promise to pay: yuan.
    #[serde(default)]
    pub promised_amount: Option<String>,
    /// Promise to pay: `YYYY-MM-DD`, today or later.
    #[serde(default)]
    pub promised_date: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Logs a contact on a case the caller works, now. Refused (422, each reason named)
/// for bad input; outside the allowed hours (`collection.outside_hours`); or when the
/// debtor was contacted as often as the daily limit allows (`collection.daily_limit`).
pub async fn log_contact(
    state: &AppState,
    caller: &Caller,
    case_id: i64,
    input: &ContactInput,
) -> Result<i64, ApiError> {
    let case = load(state, caller, case_id).await?;
    let now = state.now_ms();
    let at = local(now);
    let today = at.date();
    let mut errors = Vec::new();
    let channel = Channel::parse(&input.channel);
    if channel.is_none() {
        errors.push(FieldError::new(
            "channel",
            "invalid",
            "use phone, sms, wechat, letter, visit or email",
        ));
    }
    let outcome = Outcome::parse(&input.outcome);
    if outcome.is_none() {
        errors.push(FieldError::new(
            "outcome",
            "invalid",
            "use promise_to_pay, no_answer, left_message, refused, dispute, wrong_number, third_party, paid or other",
        ));
    }
    let amount = match input
        .promised_amount
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match Fen::parse(s) {
            Ok(f) => Some(f),
            Err(e) => {
                errors.push(FieldError::new("promised_amount", e.code(), e.to_string()));
                None
            }
        },
    };
    let date = match input
        .promised_date
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(FieldError::new(
                    "promised_date",
                    "invalid",
                    "a date such as 2026-12-05",
                ));
                None
            }
        },
    };
    let note = input
        .note
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if note.is_some_and(|n| n.chars().count() > 2000) {
        errors.push(FieldError::new(
            "note",
            "too_long",
            "at most 2,000 characters",
        ));
    }
    let mut promise = None;
    if let Some(o) = outcome {
        match dom::promise(o, amount, date, today) {
            Ok(p) => promise = p,
            Err(e) => errors.push(FieldError::new(e.field(), "invalid", e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some(channel), Some(outcome)) = (channel, outcome) else {
        return Err(ApiError::Internal("checked above".into()));
    };
    if case.state != "open" {
        return Err(ApiError::Conflict("the case is closed".into()));
    }
    let policy = state.settings().collection;
    let local_date = today.format("%Y-%m-%d").to_string();
    let mut tx = state.store().begin().await?;
    let made = st::contacts_on(&mut tx, case.customer_id, &local_date).await?;
    if let Err(refusal) = policy.check(at.time(), u32::try_from(made).unwrap_or(u32::MAX)) {
        return Err(ApiError::field("at", refusal.code(), refusal.to_string()));
    }
    if st::contact_slot(
        &mut tx,
        case.customer_id,
        &local_date,
        i64::from(policy.daily_limit),
    )
    .await?
    .is_none()
    {
        let refusal = dom::ContactRefusal::DailyLimit {
            made: policy.daily_limit,
            limit: policy.daily_limit,
        };
        return Err(ApiError::field("at", refusal.code(), refusal.to_string()));
    }
    let pd = promise.map(|p| p.date.format("%Y-%m-%d").to_string());
    let id = st::contact_insert(
        &mut tx,
        &st::NewContact {
            case_id: case.id,
            loan_id: case.loan_id,
            customer_id: case.customer_id,
            at_ms: now,
            local_date: &local_date,
            channel: channel.code(),
            outcome: outcome.code(),
            promised_amount_fen: promise.map(|p| p.amount.as_fen()),
            promised_date: pd.as_deref(),
            note,
            user_id: caller.user_id,
            user_name: &caller.display_name,
            agency_code: case.agency_code.as_deref(),
        },
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "collection.contact",
            format!("case:{}", case.id),
        )
        .reason(format!(
            "contact:{id} {} {}{}",
            channel.code(),
            outcome.code(),
            promise
                .map(|p| format!(" promise {} yuan by {}", p.amount, p.date))
                .unwrap_or_default()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Assigns a case to a collector (who must be able to work cases), or unassigns it.
pub async fn assign(
    state: &AppState,
    caller: &Caller,
    case_id: i64,
    user_id: Option<i64>,
    version: Option<i64>,
) -> Result<(), ApiError> {
    let case = load(state, caller, case_id).await?;
    if let Some(u) = user_id {
        if !state
            .store()
            .collectors()
            .await?
            .iter()
            .any(|(id, _)| *id == u)
        {
            return Err(ApiError::field(
                "user_id",
                "not_a_collector",
                "the person cannot work collection cases (no collection.work)",
            ));
        }
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !st::case_assign(&mut tx, case.id, user_id, version, now).await? {
        return Err(ApiError::Conflict(
            "the case is closed or was changed meanwhile; reload it".into(),
        ));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "collection.assign",
            format!("case:{}", case.id),
        )
        .reason(match user_id {
            Some(u) => format!("assigned to user:{u}"),
            None => "unassigned".into(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Hands a case to an outsourced agency at a commission rate (the agency's default when
/// absent).
pub async fn assign_agency(
    state: &AppState,
    caller: &Caller,
    case_id: i64,
    agency: &str,
    rate: Option<&str>,
) -> Result<i64, ApiError> {
    let case = load(state, caller, case_id).await?;
    if case.state != "open" {
        return Err(ApiError::Conflict("the case is closed".into()));
    }
    let default = match state.store().agency_rate(agency.trim()).await {
        Ok(r) => r,
        Err(zhudai_store::StoreError::NotFound) => {
            return Err(ApiError::field(
                "agency_code",
                "unknown",
                format!("`{agency}` is not a collection agency"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let rate_text = rate
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or(default)
        .ok_or_else(|| {
            ApiError::field(
                "commission_rate",
                "required",
                "the agency has no default commission rate; give one (e.g. 0.15)",
            )
        })?;
    let rate = dom::parse_commission_rate(&rate_text)
        .map_err(|m| ApiError::field("commission_rate", "invalid", m))?;
    let now = state.now_ms();
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let mut tx = state.store().begin().await?;
    let id = st::agency_assign(
        &mut tx,
        case.id,
        case.loan_id,
        agency.trim(),
        &rate.to_string(),
        &today,
        &caller.username,
        now,
    )
    .await?
    .ok_or_else(|| {
        ApiError::Conflict("the case is with an agency already; end that first".into())
    })?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "collection.agency",
            format!("case:{}", case.id),
        )
        .reason(format!(
            "assignment:{id} to {} at commission {rate}",
            agency.trim()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes a case back from its agency: recovered and commission are frozen.
pub async fn end_agency(
    state: &AppState,
    caller: &Caller,
    case_id: i64,
) -> Result<st::AssignmentRow, ApiError> {
    let case = load(state, caller, case_id).await?;
    let now = state.now_ms();
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let mut tx = state.store().begin().await?;
    let a = st::agency_end(&mut tx, case.id, &today, &caller.username, now)
        .await?
        .ok_or_else(|| ApiError::Conflict("the case is not with an agency".into()))?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "collection.agency_end",
            format!("case:{}", case.id),
        )
        .reason(format!(
            "assignment:{} ended: recovered {} yuan, commission {} yuan",
            a.id,
            Fen::new(a.recovered_fen),
            Fen::new(a.commission_fen)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(a)
}

/// Closes a case by hand (an agency assignment ends with it).
pub async fn close(
    state: &AppState,
    caller: &Caller,
    case_id: i64,
    reason: &str,
    note: &str,
) -> Result<(), ApiError> {
    let case = load(state, caller, case_id).await?;
    let reason = CloseReason::parse(reason).ok_or_else(|| {
        ApiError::field(
            "reason",
            "invalid",
            "use cured, paid_off, written_off, guarantee_paid or other",
        )
    })?;
    let note = note.trim();
    if note.chars().count() < 4 {
        return Err(ApiError::field(
            "note",
            "required",
            "say why the case closes",
        ));
    }
    let now = state.now_ms();
    let today = state.clock().today().format("%Y-%m-%d").to_string();
    let mut tx = state.store().begin().await?;
    st::agency_end(&mut tx, case.id, &today, &caller.username, now).await?;
    if !st::case_close(
        &mut tx,
        case.id,
        reason.code(),
        note,
        &caller.username,
        &today,
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict("the case is closed already".into()));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "collection.close", format!("case:{}", case.id))
            .reason(format!("{}: {note}", reason.code())),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a collection agency's default commission rate.
pub async fn set_agency_rate(
    state: &AppState,
    caller: &Caller,
    code: &str,
    rate: &str,
) -> Result<(), ApiError> {
    let r = dom::parse_commission_rate(rate)
        .map_err(|m| ApiError::field("commission_rate", "invalid", m))?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !st::set_agency_rate(&mut tx, code, &r.to_string()).await? {
        return Err(ApiError::NotFound(format!(
            "no collection agency has code {code}"
        )));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "collection.agency_rate",
            format!("partner:{code}"),
        )
        .reason(format!("commission rate {r}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
