//! The daily close of business (issue #8 item 3): runs over every loan in chunks
//! (several workers and several server instances share the chunks without doing one
//! twice), the nightly job that starts it, the close of a single loan before a write,
//! and manual classification floors (maker-checker) and restructuring.
//!
//! The SQL is `zhudai_store::cob`; the per-loan rules are `zhudai_domain::cob`. See
//! `docs/decisions/0018-daily-close-and-collections.md`.

use crate::auth::Caller;
use crate::customers::audit_draft;
use crate::error::ApiError;
use crate::state::AppState;
use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zhudai_domain::classify::{ClassificationPolicy, FiveTierClass, ObservationPolicy};
use zhudai_store::cob::{self as st, CloseCounts, CloseParams, Journal, Planned, RunRow};
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::{sqlx, Store, StoreError};

const DATE: &str = "%Y-%m-%d";

/// Settings of the close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CobSettings {
    /// Five-tier thresholds (rules-cn.md; each a setting).
    pub policy: ClassificationPolicy,
    /// Observation period of restructured loans.
    pub observation: ObservationPolicy,
    /// Loan ids per chunk (one transaction each).
    pub chunk_size: i64,
    /// A chunk not finished within this time may be taken over by another worker.
    pub chunk_lease_ms: i64,
    /// Local time (Asia/Shanghai) the nightly job closes the previous day.
    pub daily_at: NaiveTime,
}

impl Default for CobSettings {
    fn default() -> Self {
        CobSettings {
            policy: ClassificationPolicy::default(),
            observation: ObservationPolicy::default(),
            chunk_size: 20_000,
            chunk_lease_ms: 120_000,
            daily_at: NaiveTime::from_hms_opt(0, 30, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

/// Why a run could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum CobError {
    #[error("{0} is closed already; closes only move forward (close {0} or later)")]
    LaterRunExists(String),
    #[error("{0} is in the future; close a business day once it is over")]
    Future(NaiveDate),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the risk-warning hook failed: {0}")]
    Hook(String),
}

impl From<sqlx::Error> for CobError {
    fn from(e: sqlx::Error) -> Self {
        CobError::Store(StoreError::from(e))
    }
}

impl From<CobError> for ApiError {
    fn from(e: CobError) -> Self {
        match e {
            CobError::LaterRunExists(_) | CobError::Future(_) => {
                ApiError::field("business_date", "not_allowed", e.to_string())
            }
            CobError::Store(s) => ApiError::from(s),
            CobError::Hook(h) => ApiError::Internal(h),
        }
    }
}

/// Options of one invocation of [`run`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Who works the chunks (`cli:<host>:<pid>`, `job:<id>`, …).
    pub worker: String,
    /// Workers known to be dead whose chunks may be taken at once.
    pub gone: Vec<String>,
    /// Stop after this many chunks (tests simulate a crash; `None`: all).
    pub max_chunks: Option<usize>,
    /// Tests: do the work of the n-th chunk (1-based) claimed by this call, then drop
    /// its transaction without committing, as a killed process would.
    pub crash_in_chunk: Option<usize>,
}

/// Where a run stands, for progress bars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub chunks_total: i64,
    pub chunks_done: i64,
    pub counts: CloseCounts,
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub run: RunRow,
    /// Chunks this call closed.
    pub chunks: usize,
    /// This call's counts.
    pub counts: CloseCounts,
    /// The run is done (by this call or earlier).
    pub done: bool,
    /// The run was done before this call.
    pub already_done: bool,
}

/// The parameters of a close of `date`.
pub fn params(
    settings: &CobSettings,
    apr_cap: Decimal,
    date: NaiveDate,
    now_ms: i64,
    actor: &str,
) -> CloseParams {
    CloseParams {
        business_date: date,
        policy: settings.policy,
        observation: settings.observation,
        apr_cap,
        now_ms,
        actor: actor.to_owned(),
    }
}

/// Closes business day `date` for every loan: plans the run (once), then claims and
/// closes chunks until none is left (or `opts.max_chunks`), then finishes the run when
/// every chunk is done. Safe to call from several workers and processes at once, and
/// again after a crash: nothing is counted twice.
pub async fn run(
    store: &Store,
    settings: &CobSettings,
    apr_cap: Decimal,
    date: NaiveDate,
    today: NaiveDate,
    now: &(dyn Fn() -> i64 + Send + Sync),
    opts: &RunOptions,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<RunOutcome, CobError> {
    if date > today {
        return Err(CobError::Future(date));
    }
    let planned = store
        .cob_plan(date, settings.chunk_size, &opts.worker, now())
        .await?;
    let run = match planned {
        Planned::Created(r) => r,
        Planned::Existing(r) => r,
        Planned::LaterRunExists(later) => return Err(CobError::LaterRunExists(later)),
    };
    if run.state == "done" {
        on_progress(&Progress {
            chunks_total: run.chunks_total,
            chunks_done: run.chunks_done,
            counts: run.totals,
        });
        return Ok(RunOutcome {
            run,
            chunks: 0,
            counts: CloseCounts::default(),
            done: true,
            already_done: true,
        });
    }
    let mut progress = Progress {
        chunks_total: run.chunks_total,
        chunks_done: run.chunks_done,
        counts: CloseCounts::default(),
    };
    on_progress(&progress);
    let warn = warnings_enabled(store).await.map_err(CobError::Hook)?;
    let mut mine = CloseCounts::default();
    let mut chunks = 0_usize;
    loop {
        if opts.max_chunks.is_some_and(|m| chunks >= m) {
            break;
        }
        let Some(chunk) = store
            .cob_claim_chunk(
                run.id,
                &opts.worker,
                now(),
                settings.chunk_lease_ms,
                &opts.gone,
            )
            .await?
        else {
            break;
        };
        let p = params(settings, apr_cap, date, now(), "cob");
        let mut tx = store.begin().await?;
        if !st::chunk_hold(&mut tx, chunk.id, &opts.worker).await? {
            tx.rollback().await?;
            continue;
        }
        let counts = st::close_range(
            &mut tx,
            chunk.first_loan_id,
            chunk.last_loan_id,
            &p,
            Journal::Bulk,
        )
        .await?;
        risk_warning_hook(&mut tx, date, now(), today, warn)
            .await
            .map_err(CobError::Hook)?;
        if opts.crash_in_chunk == Some(chunks + 1) {
            // The process "dies" here: the transaction is dropped, never committed.
            drop(tx);
            return Ok(RunOutcome {
                run,
                chunks,
                counts: mine,
                done: false,
                already_done: false,
            });
        }
        if !st::chunk_done(&mut tx, chunk.id, &opts.worker, &counts, now()).await? {
            tx.rollback().await?;
            continue;
        }
        tx.commit().await?;
        chunks += 1;
        mine.add(&counts);
        progress.chunks_done += 1;
        progress.counts.add(&counts);
        on_progress(&progress);
    }
    let finished = store.cob_finish(run.id, now()).await?;
    let (run, done) = match finished {
        Some(r) => {
            tracing::info!(business_date = %r.business_date, loans = r.totals.loans_closed, penalty_fen = r.totals.penalty_fen, "daily close done");
            after_run(store, &r).await;
            (r, true)
        }
        None => {
            let r = store
                .cob_run(&run.business_date)
                .await?
                .ok_or(StoreError::NotFound)?;
            let done = r.state == "done";
            (r, done)
        }
    };
    Ok(RunOutcome {
        run,
        chunks,
        counts: mine,
        done,
        already_done: false,
    })
}

/// Work after a run finished: the vintage curves are recomputed as a job of their own
/// (outside the close's time).
async fn after_run(store: &Store, run: &RunRow) {
    let key = format!("portfolio.vintages:{}", run.business_date);
    let job = NewJob::new(
        crate::portfolio::VINTAGE_JOB,
        serde_json::json!({ "as_of": run.business_date }),
        run.finished_at_ms.unwrap_or(0),
    )
    .dedupe(&key);
    if let Err(e) = store.enqueue(&job, run.finished_at_ms.unwrap_or(0)).await {
        tracing::warn!(error = %e, "could not enqueue the vintage refresh");
    }
}

/// The risk-warning rules of the daily close (issue #8 item 3, issue #7 item 3).
///
/// Called inside every chunk's transaction of the daily close (and of the on-demand close
/// of one loan), after the loans were closed for `business_date` and before the chunk
/// commits. Each loan the close moved into a later collection bucket while past due
/// becomes an `overdue` event (days past due, the overdue amount, the loan's facts) for
/// the enabled warning rules; warnings and their actions are written in the same
/// transaction, so a crash re-runs them with the chunk, and the event's dedupe key (loan
/// and day) keeps a re-run from counting twice. `enabled` is false when no enabled rule
/// reacts to `overdue` events: then nothing is read or written.
pub async fn risk_warning_hook(
    conn: &mut AnyConnection,
    business_date: NaiveDate,
    now_ms: i64,
    today: NaiveDate,
    enabled: bool,
) -> Result<usize, String> {
    if !enabled {
        return Ok(0);
    }
    let moves = st::overdue_moves(conn).await.map_err(|e| e.to_string())?;
    if moves.is_empty() {
        return Ok(0);
    }
    // The end of the business day in China (UTC+8), never after now.
    let end_of_day = business_date
        .and_hms_opt(15, 59, 59)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(now_ms)
        .min(now_ms);
    let events: Vec<crate::warnings::RiskEvent> = moves
        .iter()
        .map(|m| crate::warnings::RiskEvent {
            event_type: "overdue".into(),
            customer_id: Some(m.customer_id),
            loan_ref: Some(m.loan_ref.clone()),
            occurred_at_ms: end_of_day,
            amount_fen: Some(m.outstanding_fen),
            days: Some(m.dpd),
            code: None,
            loan: Some(crate::warnings::engine::LoanFacts {
                principal_fen: Some(m.principal_fen),
                outstanding_fen: Some(m.outstanding_fen),
                days_past_due: Some(m.dpd),
                product: Some(m.product_code.clone()),
                funder: Some(m.funder_code.clone()),
                status: Some(m.status.clone()),
            }),
            dedupe_key: Some(format!("cob:{}:{}:{}", m.loan_id, business_date, m.bucket)),
            ..Default::default()
        })
        .collect();
    let report = crate::warnings::evaluate_close_events(conn, now_ms, today, &events)
        .await
        .map_err(|e| format!("risk-warning rules: {e}"))?;
    Ok(report.hits.len())
}

/// Whether the close should report `overdue` events (an enabled rule reacts to them).
pub async fn warnings_enabled(store: &Store) -> Result<bool, String> {
    crate::warnings::any_rule_on(store, "overdue")
        .await
        .map_err(|e| format!("risk-warning rules: {e}"))
}

/// Closes one loan through `through` (normally the day before a repayment's value date)
/// inside the caller's transaction, so a write never works on a stale loan: penalty
/// interest accrued to that day, days past due, tier, bucket, case and payout as the
/// nightly close would have left them. Nothing happens when the loan is closed through
/// that day already; the nightly close later skips it. The repayment path calls this
/// after locking the loan, passing the locked row's `last_closed_on`.
pub async fn close_loan_through(
    conn: &mut AnyConnection,
    state: &AppState,
    loan_id: i64,
    last_closed_on: Option<&str>,
    through: NaiveDate,
) -> Result<CloseCounts, ApiError> {
    // Closed through that day already (the nightly close, or an earlier write today):
    // nothing to do.
    if last_closed_on.is_some_and(|d| d >= through.format("%Y-%m-%d").to_string().as_str()) {
        return Ok(CloseCounts::default());
    }
    let p = params(
        &state.settings().cob,
        state.settings().apr_cap,
        through,
        state.now_ms(),
        "cob:loan",
    );
    let counts = st::close_range(conn, loan_id, loan_id, &p, Journal::PerEntry).await?;
    if counts.loans_closed > 0 {
        // On the transaction's own connection: with every pool connection in a
        // transaction (concurrent repayments on PostgreSQL), asking the pool for another
        // would wait forever.
        let warn = crate::warnings::any_rule_on_in(conn, "overdue")
            .await
            .map_err(|e| ApiError::Internal(format!("risk-warning rules: {e}")))?;
        risk_warning_hook(conn, through, state.now_ms(), state.clock().today(), warn)
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(counts)
}

/// [`close_loan_through`] the day before `value_date`: what a repayment on `value_date`
/// should find.
pub async fn close_before(
    conn: &mut AnyConnection,
    state: &AppState,
    loan_id: i64,
    last_closed_on: Option<&str>,
    value_date: NaiveDate,
) -> Result<CloseCounts, ApiError> {
    match value_date.pred_opt() {
        Some(d) => close_loan_through(conn, state, loan_id, last_closed_on, d).await,
        None => Ok(CloseCounts::default()),
    }
}

// ---------------------------------------------------------------------------------------
// The nightly job
// ---------------------------------------------------------------------------------------

/// The job kind of the nightly close (and of a close asked for through the API).
pub const JOB_KIND: &str = "cob.run";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPayload {
    /// The business date to close.
    pub business_date: String,
    /// The nightly job enqueues the next night's when it starts.
    #[serde(default)]
    pub nightly: bool,
}

/// The instant (ms) of `date` at `at` in Shanghai.
fn local_ms(date: NaiveDate, at: NaiveTime) -> i64 {
    let offset = i64::from(zhudai_domain::clock::BUSINESS_UTC_OFFSET_SECS) * 1000;
    date.and_time(at).and_utc().timestamp_millis() - offset
}

async fn enqueue_nightly(
    store: &Store,
    settings: &CobSettings,
    run_on: NaiveDate,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(close) = run_on.pred_opt() else {
        return Ok(None);
    };
    let d = close.format(DATE).to_string();
    let key = format!("cob:{d}");
    let job = NewJob::new(
        JOB_KIND,
        serde_json::to_value(JobPayload {
            business_date: d.clone(),
            nightly: true,
        })
        .unwrap_or_default(),
        local_ms(run_on, settings.daily_at),
    )
    .dedupe(&key);
    store.enqueue(&job, now_ms).await
}

/// Schedules the next nightly close (idempotent: one job per date, however many
/// instances start).
pub async fn schedule(
    store: &Store,
    settings: &CobSettings,
    today: NaiveDate,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let run_on = if now_ms < local_ms(today, settings.daily_at) {
        today
    } else {
        today.succ_opt().unwrap_or(today)
    };
    enqueue_nightly(store, settings, run_on, now_ms).await
}

/// Asks for a close of `date` through the job queue (the API's "run now").
pub async fn request(
    state: &AppState,
    caller: &Caller,
    date: NaiveDate,
) -> Result<Option<i64>, ApiError> {
    let today = state.clock().today();
    if date > today {
        return Err(CobError::Future(date).into());
    }
    let d = date.format(DATE).to_string();
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let key = format!("cob:{d}");
    let id = zhudai_store::jobs::enqueue(
        &mut *tx,
        &NewJob::new(
            JOB_KIND,
            serde_json::to_value(JobPayload {
                business_date: d.clone(),
                nightly: false,
            })
            .unwrap_or_default(),
            now,
        )
        .dedupe(&key),
        now,
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "cob.request", format!("cob:{d}"))
            .reason(format!("close of business day {d} requested")),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The handler of [`JOB_KIND`].
pub async fn run_job(state: AppState, job: Job) -> Result<(), String> {
    let payload: JobPayload =
        serde_json::from_value(job.payload.clone()).map_err(|e| format!("payload: {e}"))?;
    let date = NaiveDate::parse_from_str(&payload.business_date, DATE)
        .map_err(|e| format!("business date: {e}"))?;
    let settings = state.settings().cob.clone();
    if payload.nightly {
        // Tomorrow night's close first, so one failing night does not stop the next.
        let run_on = date.succ_opt().and_then(|d| d.succ_opt()).unwrap_or(date);
        enqueue_nightly(state.store(), &settings, run_on, state.now_ms())
            .await
            .map_err(|e| format!("scheduling the next close: {e}"))?;
    }
    let clock = state.clock_arc();
    let now = move || clock.now().timestamp_millis();
    let opts = RunOptions {
        worker: format!("job:{}:{}", job.id, uuid::Uuid::new_v4().simple()),
        ..Default::default()
    };
    let outcome = run(
        state.store(),
        &settings,
        state.settings().apr_cap,
        date,
        state.clock().today(),
        &now,
        &opts,
        &mut |_| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    if outcome.done {
        Ok(())
    } else {
        // Another worker holds the last chunks; try again later to finish the run.
        Err(format!(
            "close of {} not finished: {} of {} chunks done",
            outcome.run.business_date, outcome.run.chunks_done, outcome.run.chunks_total
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Manual floors (maker-checker) and restructuring
// ---------------------------------------------------------------------------------------

/// A request to set (or remove, `floor: None`) a loan's manual classification floor.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FloorInput {
    /// `normal` … `loss` or 正常 … 损失; absent or empty removes the floor.
    #[serde(default)]
    pub floor: Option<String>,
    pub reason: String,
}

fn parse_floor(s: Option<&str>) -> Result<Option<FiveTierClass>, ApiError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => FiveTierClass::parse(s).map(Some).map_err(|e| {
            ApiError::field(
                "floor",
                e.code(),
                "use normal, special_mention, substandard, doubtful or loss",
            )
        }),
    }
}

/// Files a floor request for another person to decide.
pub async fn request_floor(
    state: &AppState,
    caller: &Caller,
    loan_id: i64,
    input: &FloorInput,
) -> Result<i64, ApiError> {
    let loan = crate::loans::load(state, caller, loan_id).await?;
    let floor = parse_floor(input.floor.as_deref())?;
    let reason = input.reason.trim();
    if reason.chars().count() < 4 {
        return Err(ApiError::field(
            "reason",
            "required",
            "say why the floor is needed (at least a few words)",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = st::floor_request_insert(
        &mut tx,
        loan.id,
        floor.map(FiveTierClass::code),
        reason,
        caller.user_id,
        &caller.display_name,
        now,
    )
    .await?
    .ok_or_else(|| {
        ApiError::Conflict("this loan already has a floor request waiting for a decision".into())
    })?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "loan.classification.request",
            format!("loan:{}", loan.id),
        )
        .reason(format!(
            "request:{id} floor {} — {reason}",
            floor.map_or("none", FiveTierClass::code)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Approves or rejects a floor request (not the requester's own). Approval sets the
/// floor and reclassifies the loan at once: max(floor by its days past due, the new
/// floor, 关注 while under observation).
pub async fn decide_floor(
    state: &AppState,
    caller: &Caller,
    request_id: i64,
    approve: bool,
    note: &str,
) -> Result<(), ApiError> {
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let req = st::floor_request_get(&mut tx, request_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no floor request has id {request_id}")))?;
    crate::loans::load(state, caller, req.loan_id).await?;
    if req.state != "pending" {
        return Err(ApiError::Conflict(format!(
            "the request is {} already",
            req.state
        )));
    }
    if req.requested_by == caller.user_id {
        return Err(ApiError::Forbidden(
            "four eyes: someone other than the requester decides".into(),
        ));
    }
    if !st::floor_request_decide(
        &mut tx,
        request_id,
        approve,
        caller.user_id,
        &caller.display_name,
        note,
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the request was decided meanwhile".into(),
        ));
    }
    if approve {
        let floor = parse_floor(req.floor.as_deref())?;
        st::apply_floor(
            &mut tx,
            req.loan_id,
            floor.map(FiveTierClass::code),
            &state.settings().cob.policy,
            state.clock().today(),
            &format!("request {request_id}: {}", req.reason),
            now,
        )
        .await?;
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "loan.classification.decide",
            format!("loan:{}", req.loan_id),
        )
        .reason(format!(
            "request:{request_id} {} floor {} — {}",
            if approve { "approved" } else { "rejected" },
            req.floor.as_deref().unwrap_or("none"),
            note.trim()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks a loan restructured on `on`: it stays at least 关注 through its observation
/// period (two periods and a year by default, restarted by any past-due day).
pub async fn restructure(
    state: &AppState,
    caller: &Caller,
    loan_id: i64,
    on: NaiveDate,
    note: &str,
) -> Result<NaiveDate, ApiError> {
    let loan = crate::loans::load(state, caller, loan_id).await?;
    if !matches!(loan.status.as_str(), "active" | "overdue") {
        return Err(ApiError::Conflict(format!("the loan is {}", loan.status)));
    }
    let today = state.clock().today();
    if on > today {
        return Err(ApiError::field(
            "restructured_on",
            "future",
            "a restructuring is recorded once it happened",
        ));
    }
    if note.trim().chars().count() < 4 {
        return Err(ApiError::field(
            "note",
            "required",
            "describe the restructuring",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let dues = st::due_dates(&mut tx, loan.id).await?;
    let maturity =
        NaiveDate::parse_from_str(&loan.maturity_date, DATE).map_err(ApiError::internal)?;
    let ends = state
        .settings()
        .cob
        .observation
        .ends_on(on, &dues, maturity);
    if !st::restructuring_insert(
        &mut tx,
        loan.id,
        on,
        ends,
        note.trim(),
        &caller.username,
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the loan is already under observation".into(),
        ));
    }
    st::apply_floor(
        &mut tx,
        loan.id,
        loan.classification_floor.as_deref(),
        &state.settings().cob.policy,
        today,
        &format!("restructured on {on}, observed until {ends}"),
        now,
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "loan.restructure", format!("loan:{}", loan.id)).reason(format!(
            "restructured on {on}, observation until {ends}: {}",
            note.trim()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(ends)
}

/// Sets a funder's guarantee-payout threshold (days past due; `None`: no guarantee).
pub async fn set_payout_dpd(
    state: &AppState,
    caller: &Caller,
    code: &str,
    dpd: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(d) = dpd {
        if !(1..=720).contains(&d) {
            return Err(ApiError::field(
                "payout_dpd",
                "out_of_range",
                "1–720 days past due",
            ));
        }
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !st::set_payout_dpd(&mut tx, code, dpd).await? {
        return Err(ApiError::NotFound(format!("no funder has code {code}")));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "partner.guarantee", format!("partner:{code}")).reason(
            match dpd {
                Some(d) => format!("guarantee payout at {d} days past due"),
                None => "no guarantee payout".into(),
            },
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The independent check (DuckDB)
// ---------------------------------------------------------------------------------------

/// The DuckDB script that recomputes the five tiers from exported rows.
pub const DUCKDB_SCRIPT: &str = include_str!("../../../scripts/cob_duckdb.py");

/// Writes what `scripts/cob_duckdb.py` needs into `dir`: the parameters, the open loans
/// with what the close stored, every installment of theirs due before the date with its
/// raw amounts, and the restructurings. Reads in keyset pages of 50,000 loans. Returns
/// the number of loans.
pub async fn export_check_inputs(
    store: &Store,
    settings: &CobSettings,
    date: NaiveDate,
    dir: &std::path::Path,
) -> Result<u64, CobError> {
    use std::io::Write;
    use zhudai_store::sqlx::Row;
    let io = |e: std::io::Error| CobError::Hook(format!("writing the check files: {e}"));
    let d = date.format(DATE).to_string();
    let p = &settings.policy;
    std::fs::write(
        dir.join("params.json"),
        serde_json::json!({
            "business_date": d,
            "tolerance": p.technical_delay_tolerance_days,
            "substandard": p.substandard_after_days,
            "doubtful": p.doubtful_after_days,
            "loss": p.loss_after_days,
        })
        .to_string(),
    )
    .map_err(io)?;
    let mut loans =
        std::io::BufWriter::new(std::fs::File::create(dir.join("loans.csv")).map_err(io)?);
    let mut inst =
        std::io::BufWriter::new(std::fs::File::create(dir.join("installments.csv")).map_err(io)?);
    writeln!(loans, "loan_id,floor,ours_class,ours_dpd,ours_bucket").map_err(io)?;
    writeln!(inst, "loan_id,due_date,principal_due,principal_paid,interest_due,interest_paid,fee_due,fee_paid,penalty_accrued,penalty_paid").map_err(io)?;
    let mut last = 0_i64;
    let mut n = 0_u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, COALESCE(classification_floor, '') AS floor, classification, dpd, collection_bucket FROM loans
              WHERE id > $1 AND status IN ('active', 'overdue') AND disbursed_on <= $2 ORDER BY id LIMIT 50000",
        )
        .bind(last)
        .bind(&d)
        .fetch_all(store.reader())
        .await?;
        let Some(end) = rows.last().map(|r| r.try_get::<i64, _>("id")).transpose()? else {
            break;
        };
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let floor: String = r.try_get("floor")?;
            let class: String = r.try_get("classification")?;
            let dpd: i64 = r.try_get("dpd")?;
            let bucket: String = r.try_get("collection_bucket")?;
            writeln!(loans, "{id},{floor},{class},{dpd},{bucket}").map_err(io)?;
            n += 1;
        }
        let irows = sqlx::query(
            "SELECT i.loan_id, i.due_date, i.principal_due_fen, i.principal_paid_fen, i.interest_due_fen, i.interest_paid_fen,
                i.fee_due_fen, i.fee_paid_fen, i.penalty_accrued_fen, i.penalty_paid_fen
               FROM loan_installments i JOIN loans l ON l.id = i.loan_id
              WHERE i.loan_id > $1 AND i.loan_id <= $2 AND i.due_date < $3 AND l.status IN ('active', 'overdue')
              ORDER BY i.loan_id, i.number",
        )
        .bind(last)
        .bind(end)
        .bind(&d)
        .fetch_all(store.reader())
        .await?;
        for r in &irows {
            let due: String = r.try_get(1)?;
            let mut cells = vec![r.try_get::<i64, _>(0)?.to_string(), due];
            for k in 2..10 {
                cells.push(r.try_get::<i64, _>(k)?.to_string());
            }
            writeln!(inst, "{}", cells.join(",")).map_err(io)?;
        }
        last = end;
    }
    loans.flush().map_err(io)?;
    inst.flush().map_err(io)?;
    let mut obs =
        std::io::BufWriter::new(std::fs::File::create(dir.join("observations.csv")).map_err(io)?);
    writeln!(obs, "loan_id,active,ends_on").map_err(io)?;
    for r in sqlx::query("SELECT loan_id, COALESCE(active_flag, 0) AS a, observation_ends_on FROM loan_restructurings")
        .fetch_all(store.reader())
        .await?
    {
        let loan: i64 = r.try_get(0)?;
        let a: i64 = r.try_get(1)?;
        let e: String = r.try_get(2)?;
        writeln!(obs, "{loan},{a},{e}").map_err(io)?;
    }
    obs.flush().map_err(io)?;
    Ok(n)
}

/// Runs the DuckDB script over the files of [`export_check_inputs`] and returns its JSON
/// (`loans`, `mismatches`, `examples`, `by_tier`, `load_seconds`, `query_seconds`).
/// The interpreter is `ZHUDAI_PYTHON` or `python3`.
pub fn run_duckdb_check(dir: &std::path::Path) -> Result<serde_json::Value, String> {
    let script = dir.join("cob_duckdb.py");
    std::fs::write(&script, DUCKDB_SCRIPT).map_err(|e| e.to_string())?;
    let python = std::env::var("ZHUDAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the DuckDB check failed ({}; exit 3 = duckdb missing, run scripts/install-deps.sh): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the DuckDB check's output: {e}"))
}
