//! Population stability (PSI) of the score and of each feature against the development
//! sample, computed daily by a job; above the threshold (`psi_threshold`, default 0.25) it
//! opens a `model_drift` warning.
//!
//! # The seam with credit decisions
//!
//! The credit decision engine (issue #7 item 1, built alongside) owns the models and the
//! decisions. Stability needs only two things from it, both through this module, so the
//! two capabilities stay independent:
//!
//! 1. **Baselines**: a model under monitoring is registered with [`register_baseline`]
//!    (its JSON, which carries the development sample's score bands and per-bin counts;
//!    `zhudai_scorecard::DevelopmentSample`). The decision engine calls it when it
//!    promotes a model; `POST /api/v1/risk/psi/baselines` does the same by hand.
//! 2. **Observations**: each scored application is recorded with [`record_observation`]
//!    (model name and version, score, the feature values it was scored on) inside the
//!    decision's own transaction, into the `score_observations` table this module owns.
//!
//! The job bins each observation with the model (the same bins as the development
//! sample) and compares shares with `zhudai_scorecard::psi`.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_domain::risk_warning::{due_at_ms, Category, Severity, Stage};
use zhudai_scorecard::{Scorecard, StabilityMonitor, StabilityReport, Value};
use zhudai_store::audit::AuditDraft;
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::warnings::{self as sw, BaselineRow, ObservationRow};
use zhudai_store::{Store, StoreError};

/// The default `psi_threshold` (the usual rule of thumb: above 0.25 is a significant shift).
pub const DEFAULT_THRESHOLD: f64 = zhudai_scorecard::DEFAULT_PSI_THRESHOLD;

/// Job kind: the daily stability run.
pub const PSI_JOB: &str = "risk.psi";
/// Scored applications of the last this many days are compared.
pub const WINDOW_DAYS: i64 = 30;
/// Fewer observations than this in the window: no run (PSI of a handful is noise).
pub const MIN_ROWS: usize = 50;
const DAY_MS: i64 = 86_400_000;
/// The pseudo-rule code of stability warnings.
pub const PSI_RULE: &str = "psi";

/// Records a scored application for stability monitoring, inside the caller's
/// transaction (the decision engine's). `features` maps feature names to the values the
/// model scored (numbers, text, or null for missing).
pub async fn record_observation(
    conn: &mut AnyConnection,
    model_name: &str,
    model_version: &str,
    subject: Option<&str>,
    observed_at_ms: i64,
    score: i64,
    features: &serde_json::Map<String, serde_json::Value>,
) -> Result<i64, StoreError> {
    let text = serde_json::Value::Object(features.clone()).to_string();
    sw::observation_insert(
        conn,
        model_name,
        model_version,
        subject,
        observed_at_ms,
        score,
        &text,
    )
    .await
}

/// Checks that a model can be monitored (it carries its development distributions).
pub fn check_model(json: &str) -> Result<Scorecard, String> {
    let model = Scorecard::from_json(json).map_err(|e| e.to_string())?;
    StabilityMonitor::new(&model).map_err(|e| e.to_string())?;
    Ok(model)
}

/// Registers a model (JSON) for monitoring; registering the same version again keeps the
/// first. Returns the baseline id.
pub async fn register_baseline(
    conn: &mut AnyConnection,
    model_json: &str,
    by: &str,
    now_ms: i64,
) -> ApiResult<i64> {
    let model =
        check_model(model_json).map_err(|m| ApiError::field("model", "invalid_model", m))?;
    let meta = &model.spec().metadata;
    if meta.name.trim().is_empty() || meta.version.trim().is_empty() {
        return Err(ApiError::field(
            "model",
            "invalid_model",
            "the model needs metadata.name and metadata.version",
        ));
    }
    Ok(sw::baseline_insert(conn, &meta.name, &meta.version, model_json, by, now_ms).await?)
}

/// Registers a baseline on behalf of a user (audited).
pub async fn register_baseline_as(
    state: &AppState,
    caller: &Caller,
    model: &serde_json::Value,
) -> ApiResult<BaselineView> {
    let json = model.to_string();
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = register_baseline(&mut tx, &json, &caller.username, now).await?;
    let d = crate::customers::audit_draft(
        caller,
        now,
        "risk.psi.baseline",
        format!("psi_baseline:{id}"),
    );
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    overview(state)
        .await?
        .baselines
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| ApiError::internal("baseline vanished"))
}

/// Bins `observations` with `model` and reports PSI against its development sample.
/// Observations whose feature values cannot be read are skipped (counted in the second
/// value).
pub fn compute(
    model: &Scorecard,
    observations: &[ObservationRow],
    threshold: f64,
) -> Result<(StabilityReport, usize), String> {
    let mut monitor = StabilityMonitor::new(model).map_err(|e| e.to_string())?;
    let names: Vec<String> = model.feature_names().map(str::to_owned).collect();
    let mut skipped = 0;
    let mut texts: Vec<String> = Vec::with_capacity(names.len());
    for o in observations {
        let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(&o.features)
        else {
            skipped += 1;
            continue;
        };
        texts.clear();
        let mut nums: Vec<Option<f64>> = Vec::with_capacity(names.len());
        for n in &names {
            match map.get(n) {
                Some(serde_json::Value::Number(x)) => {
                    nums.push(x.as_f64());
                    texts.push(String::new());
                }
                Some(serde_json::Value::String(s)) => {
                    nums.push(None);
                    texts.push(s.clone());
                }
                _ => {
                    nums.push(None);
                    texts.push(String::new());
                }
            }
        }
        let row: Vec<Value<'_>> = nums
            .iter()
            .zip(&texts)
            .map(|(n, t)| match (n, t.is_empty()) {
                (Some(x), _) => Value::Number(*x),
                (None, false) => Value::Text(t),
                (None, true) => Value::Missing,
            })
            .collect();
        match model.score(&row) {
            Ok(r) => monitor.observe(&r),
            Err(_) => skipped += 1,
        }
    }
    let report = monitor.report(threshold).map_err(|e| e.to_string())?;
    Ok((report, skipped))
}

/// What one stability run did for one model.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RunOutcome {
    pub model: String,
    /// `ran`, `already_ran` (today's run exists), `too_few` (fewer than the minimum rows)
    /// or `error`.
    pub outcome: String,
    pub rows: usize,
    pub score_psi: Option<f64>,
    pub alert: bool,
    pub warning_id: Option<i64>,
    pub detail: Option<String>,
}

/// Runs stability for every active baseline over the last [`WINDOW_DAYS`] days, once
/// per baseline and business date.
pub async fn run(
    store: &Store,
    threshold: f64,
    today: NaiveDate,
    now_ms: i64,
) -> Result<Vec<RunOutcome>, StoreError> {
    let mut out = Vec::new();
    for b in store.psi_baselines(true).await? {
        out.push(run_one(store, &b, threshold, today, now_ms).await?);
    }
    Ok(out)
}

async fn run_one(
    store: &Store,
    b: &BaselineRow,
    threshold: f64,
    today: NaiveDate,
    now_ms: i64,
) -> Result<RunOutcome, StoreError> {
    let name = format!("{}:{}", b.model_name, b.model_version);
    let mut outcome = RunOutcome {
        model: name.clone(),
        outcome: "ran".into(),
        rows: 0,
        score_psi: None,
        alert: false,
        warning_id: None,
        detail: None,
    };
    let model = match Scorecard::from_json(&b.model_json) {
        Ok(m) => m,
        Err(e) => {
            outcome.outcome = "error".into();
            outcome.detail = Some(e.to_string());
            return Ok(outcome);
        }
    };
    let from = now_ms - WINDOW_DAYS * DAY_MS;
    let obs = store
        .score_observations(&b.model_name, &b.model_version, from, now_ms)
        .await?;
    outcome.rows = obs.len();
    if obs.len() < MIN_ROWS {
        outcome.outcome = "too_few".into();
        outcome.detail = Some(format!(
            "{} scored applications in {WINDOW_DAYS} days; at least {MIN_ROWS} are needed",
            obs.len()
        ));
        return Ok(outcome);
    }
    let (report, skipped) = match compute(&model, &obs, threshold) {
        Ok(r) => r,
        Err(e) => {
            outcome.outcome = "error".into();
            outcome.detail = Some(e);
            return Ok(outcome);
        }
    };
    outcome.score_psi = Some(report.score.psi);
    outcome.alert = report.alert;
    if skipped > 0 {
        outcome.detail = Some(format!("{skipped} observations could not be scored"));
    }
    let mut tx = store.begin().await?;
    let Some(run_id) = sw::psi_run_insert(
        &mut tx,
        b.id,
        &today.to_string(),
        from,
        now_ms,
        i64::try_from(report.rows).unwrap_or(i64::MAX),
        threshold,
        report.alert,
        now_ms,
    )
    .await?
    else {
        outcome.outcome = "already_ran".into();
        return Ok(outcome);
    };
    for d in std::iter::once(&report.score).chain(&report.features) {
        let bins = serde_json::json!({"bins": d.bins, "expected": d.expected, "actual": d.actual})
            .to_string();
        let psi = if d.psi.is_finite() { d.psi } else { f64::MAX };
        sw::psi_result_insert(&mut tx, run_id, &d.name, psi, d.alert, &bins).await?;
    }
    let mut drafts = vec![AuditDraft::new(now_ms, "risk.psi.run", "success")
        .actor("system")
        .target(format!("psi_baseline:{}", b.id))
        .reason(format!(
            "{name}: {} rows, score PSI {:.4}{}",
            report.rows,
            report.score.psi,
            if report.alert { " (alert)" } else { "" }
        ))];
    if report.alert {
        let drifted: Vec<String> = std::iter::once(&report.score)
            .chain(&report.features)
            .filter(|d| d.alert)
            .map(|d| format!("{} {:.3}", d.name, d.psi))
            .collect();
        let key = sw::open_key(PSI_RULE, "model", &name);
        let warning_id = if let Some((id, _)) = sw::warning_open_for(&mut tx, &key).await? {
            sw::warning_hit(&mut tx, id, now_ms).await?;
            id
        } else {
            let sev = Severity::High;
            let pb = sw::playbook_get(&mut tx, sev.as_str()).await?;
            let (hours, notify, steps) = pb
                .map(|p| (p.respond_within_hours, p.notify_roles, p.steps))
                .unwrap_or((24, String::new(), String::new()));
            let title = format!("PSI > {threshold} · {name} · {}", drifted.join(", "));
            let facts = serde_json::json!({
                "model": name, "rows": report.rows, "threshold": threshold,
                "psi": std::iter::once(&report.score).chain(&report.features)
                    .map(|d| (d.name.clone(), serde_json::json!(d.psi))).collect::<serde_json::Map<_, _>>(),
                "run_id": run_id,
            })
            .to_string();
            let id = sw::warning_insert(
                &mut tx,
                &sw::NewWarning {
                    rule_id: None,
                    rule_code: PSI_RULE,
                    rule_version: 1,
                    category: Category::ModelDrift.as_str(),
                    stage: Stage::PreLoan.as_str(),
                    severity: sev.as_str(),
                    subject_type: "model",
                    subject_ref: &name,
                    customer_id: None,
                    event_id: None,
                    title: &title,
                    facts: &facts,
                    opened_at_ms: now_ms,
                    due_at_ms: due_at_ms(now_ms, hours),
                    notify_roles: &notify,
                    playbook_steps: &steps,
                },
            )
            .await?;
            drafts.push(
                AuditDraft::new(now_ms, "risk.warning.open", "success")
                    .actor("system")
                    .target(format!("risk_warning:{id}"))
                    .reason(title),
            );
            id
        };
        sw::psi_run_set_warning(&mut tx, run_id, warning_id).await?;
        outcome.warning_id = Some(warning_id);
    }
    for d in &drafts {
        zhudai_store::audit::append(&mut tx, d).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

async fn enqueue(store: &Store, day: i64, now_ms: i64) -> Result<(), StoreError> {
    // 02:00 Shanghai time (18:00 UTC the day before).
    let run_at = day * DAY_MS + 18 * 3_600_000;
    store
        .enqueue(
            &NewJob::new(PSI_JOB, serde_json::json!({ "day": day }), run_at)
                .dedupe(&format!("{PSI_JOB}:{day}")),
            now_ms,
        )
        .await?;
    Ok(())
}

/// Schedules the next daily stability run (once however many servers start).
pub async fn schedule(store: &Store, now_ms: i64) -> Result<(), StoreError> {
    enqueue(store, now_ms.div_euclid(DAY_MS), now_ms).await
}

/// The job handler: schedules tomorrow's run, then runs.
pub async fn run_job(state: AppState, _job: Job) -> Result<(), String> {
    let now = state.now_ms();
    enqueue(state.store(), now.div_euclid(DAY_MS) + 1, now)
        .await
        .map_err(|e| e.to_string())?;
    let outcomes = run(
        state.store(),
        state.settings().psi_threshold,
        state.clock().today(),
        now,
    )
    .await
    .map_err(|e| e.to_string())?;
    for o in outcomes {
        tracing::info!(model = %o.model, outcome = %o.outcome, rows = o.rows, score_psi = ?o.score_psi, alert = o.alert, "population stability");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Views

/// One distribution's PSI in a run.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ResultView {
    /// `score` or a feature name.
    pub name: String,
    pub psi: f64,
    pub alert: bool,
    pub bins: Vec<String>,
    /// Development shares.
    pub expected: Vec<f64>,
    /// Observed shares.
    pub actual: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RunView {
    pub run_on: String,
    pub rows: i64,
    pub threshold: f64,
    pub alert: bool,
    pub warning_id: Option<i64>,
    pub results: Vec<ResultView>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct BaselineView {
    pub id: i64,
    pub model_name: String,
    pub model_version: String,
    pub active: bool,
    pub registered_by: String,
    pub registered_at_ms: i64,
    /// Newest first (at most 30).
    pub runs: Vec<RunView>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct PsiOverview {
    /// The alert threshold (`psi_threshold`).
    pub threshold: f64,
    pub window_days: i64,
    pub min_rows: usize,
    pub baselines: Vec<BaselineView>,
}

pub async fn overview(state: &AppState) -> ApiResult<PsiOverview> {
    let mut baselines = Vec::new();
    for b in state.store().psi_baselines(false).await? {
        let runs = state
            .store()
            .psi_runs(b.id, 30)
            .await?
            .into_iter()
            .map(|r| RunView {
                run_on: r.run_on,
                rows: r.rows,
                threshold: r.threshold,
                alert: r.alert,
                warning_id: r.warning_id,
                results: r
                    .results
                    .into_iter()
                    .map(|x| {
                        let v: serde_json::Value =
                            serde_json::from_str(&x.bins).unwrap_or_default();
                        let strings = |k: &str| -> Vec<String> {
                            v[k].as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|s| s.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default()
                        };
                        let floats = |k: &str| -> Vec<f64> {
                            v[k].as_array()
                                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                                .unwrap_or_default()
                        };
                        ResultView {
                            name: x.name,
                            psi: x.psi,
                            alert: x.alert,
                            bins: strings("bins"),
                            expected: floats("expected"),
                            actual: floats("actual"),
                        }
                    })
                    .collect(),
            })
            .collect();
        baselines.push(BaselineView {
            id: b.id,
            model_name: b.model_name,
            model_version: b.model_version,
            active: b.active,
            registered_by: b.registered_by,
            registered_at_ms: b.registered_at_ms,
            runs,
        });
    }
    Ok(PsiOverview {
        threshold: state.settings().psi_threshold,
        window_days: WINDOW_DAYS,
        min_rows: MIN_ROWS,
        baselines,
    })
}

/// Runs stability now (the day's run is not repeated); audited by the job's records.
pub async fn run_now(state: &AppState, caller: &Caller) -> ApiResult<Vec<RunOutcome>> {
    let outcomes = run(
        state.store(),
        state.settings().psi_threshold,
        state.clock().today(),
        state.now_ms(),
    )
    .await?;
    tracing::info!(user = %caller.username, runs = outcomes.len(), "stability run requested");
    Ok(outcomes)
}
