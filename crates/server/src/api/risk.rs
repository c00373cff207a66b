//! Credit decisions, scorecard models, rule sets and the blacklist (issue #7):
//! `/api/v1/decisions…`, `/api/v1/models…`, `/api/v1/rule-sets…`, `/api/v1/blacklist`.
//! Reading needs `risk.read`; deciding, uploading, promoting, editing rules and overrides
//! need `risk.manage`. Decisions of applications are shown inside the caller's data scope.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::risk as svc;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::money::Fen;
use zhudai_store::risk::{DecisionQuery, DecisionRow, ModelRow, RuleSetRow};

fn recorded(mut r: Response) -> Response {
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

// ------------------------------------------------------------------ decisions

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionSummary {
    pub id: i64,
    pub application_id: Option<i64>,
    pub subject: String,
    /// The engine's outcome: `approve`, `refer` or `reject`.
    pub outcome: String,
    /// The outcome in force (an approved override's, else the engine's).
    pub final_outcome: String,
    pub score: i64,
    pub grade: String,
    /// Recommended limit, yuan.
    pub limit: String,
    pub price_band: String,
    pub model_id: i64,
    pub rule_set_id: i64,
    pub created_at_ms: i64,
}

fn summary(d: &DecisionRow) -> DecisionSummary {
    DecisionSummary {
        id: d.id,
        application_id: d.application_id,
        subject: d.subject.clone(),
        outcome: d.outcome.clone(),
        final_outcome: d.final_outcome.clone(),
        score: d.score,
        grade: d.grade.clone(),
        limit: Fen::new(d.limit_fen).to_string(),
        price_band: d.price_band.clone(),
        model_id: d.model_id,
        rule_set_id: d.rule_set_id,
        created_at_ms: d.created_at_ms,
    }
}

/// Whether the caller may see a decision: an application's inside their data scope.
pub async fn visible(state: &AppState, caller: &Caller, d: &DecisionRow) -> Result<bool, ApiError> {
    let Some(app_id) = d.application_id else {
        return Ok(true);
    };
    if caller.scope == "all" {
        return Ok(true);
    }
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    Ok(state
        .store()
        .application(app_id)
        .await?
        .is_some_and(|a| scope.admits(a.owner_user_id, a.org_unit_id)))
}

/// A decision the caller may see (404 unknown, 403 outside the scope).
pub async fn load_decision(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<DecisionRow, ApiError> {
    let d = state
        .store()
        .risk_decision(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no decision has id {id}")))?;
    if !visible(state, caller, &d).await? {
        return Err(ApiError::Forbidden(
            "this decision's application is outside your data scope".into(),
        ));
    }
    Ok(d)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionSearch {
    /// `approve`, `refer` or `reject` (the outcome in force).
    pub outcome: Option<String>,
    pub application_id: Option<i64>,
    /// Decisions with an id below this (next page).
    pub before: Option<i64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Decisions, newest first (those of applications outside the caller's scope left out).
#[utoipa::path(get, path = "/api/v1/decisions", tag = "risk", operation_id = "decisions_list",
    params(DecisionSearch), responses((status = 200, body = [DecisionSummary])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DecisionSearch>,
) -> ApiResult<ApiJson<Vec<DecisionSummary>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–500"));
    }
    let rows = state
        .store()
        .risk_decisions(&DecisionQuery {
            outcome: q.outcome.as_deref().filter(|s| !s.is_empty()),
            application_id: q.application_id,
            before_id: q.before,
            limit,
        })
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for d in &rows {
        if visible(&state, &caller, d).await? {
            out.push(summary(d));
        }
    }
    Ok(ApiJson(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengerView {
    pub model_id: i64,
    pub score: i64,
    pub probability: String,
    pub outcome: String,
    pub grade: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideView {
    pub id: i64,
    pub outcome: String,
    pub reason: String,
    pub requested_by: i64,
    pub requested_at_ms: i64,
    /// `pending`, `approved` or `refused`.
    pub state: String,
    pub decided_by: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDetail {
    #[serde(flatten)]
    pub decision: DecisionSummary,
    /// Probability of the bad outcome (champion).
    pub probability: String,
    /// Reason codes in plain language: `{kind, code, zh, en, points_below_best}`.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    pub rules_fired: Vec<String>,
    /// The applicant facts the decision read.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// SHA-256 of the input.
    pub input_digest: String,
    pub challengers: Vec<ChallengerView>,
    pub overrides: Vec<OverrideView>,
}

pub async fn detail(state: &AppState, d: DecisionRow) -> Result<DecisionDetail, ApiError> {
    let challengers = state.store().risk_challenger_scores(d.id).await?;
    let overrides = state.store().risk_overrides(d.id).await?;
    detail_of(d, challengers, overrides)
}

/// [`detail`] from rows in hand (a decision just stored has no overrides).
pub fn detail_of(
    d: DecisionRow,
    challengers: Vec<zhudai_store::risk::ChallengerRow>,
    overrides: Vec<zhudai_store::risk::OverrideRow>,
) -> Result<DecisionDetail, ApiError> {
    let challengers = challengers
        .into_iter()
        .map(|c| ChallengerView {
            model_id: c.model_id,
            score: c.score,
            probability: c.probability,
            outcome: c.outcome,
            grade: c.grade,
        })
        .collect();
    let overrides = overrides
        .into_iter()
        .map(|o| OverrideView {
            id: o.id,
            outcome: o.outcome,
            reason: o.reason,
            requested_by: o.requested_by,
            requested_at_ms: o.requested_at_ms,
            state: o.state,
            decided_by: o.decided_by,
            decided_at_ms: o.decided_at_ms,
            note: o.decision_note,
        })
        .collect();
    Ok(DecisionDetail {
        probability: d.probability.clone(),
        reasons: serde_json::from_str(&d.reasons).map_err(ApiError::internal)?,
        rules_fired: serde_json::from_str(&d.rules_fired).map_err(ApiError::internal)?,
        input: serde_json::from_str(&d.input).map_err(ApiError::internal)?,
        input_digest: d.input_digest.clone(),
        decision: summary(&d),
        challengers,
        overrides,
    })
}

/// One decision with its explanation, challengers and overrides.
#[utoipa::path(get, path = "/api/v1/decisions/{id}", tag = "risk", operation_id = "decisions_get",
    params(("id" = i64, Path)),
    responses((status = 200, body = DecisionDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<DecisionDetail>> {
    let d = load_decision(&state, &caller, id).await?;
    Ok(ApiJson(detail(&state, d).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Decide for this application (facts gathered from what zhudai knows); the workflow
    /// is not moved.
    pub application_id: Option<i64>,
    /// Or decide for these applicant facts (see `zhudai_risk::Applicant`).
    #[schema(value_type = Object)]
    pub applicant: Option<serde_json::Value>,
    /// The caller's reference for a raw applicant.
    pub subject: Option<String>,
}

/// Decide and store: for an application in the caller's scope, or for raw applicant facts,
/// with the enabled rule set and the champion (challengers scored alongside).
#[utoipa::path(post, path = "/api/v1/decisions", tag = "risk", operation_id = "decisions_create",
    request_body = DecideRequest,
    responses((status = 201, body = DecisionDetail),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<DecideRequest>,
) -> ApiResult<Response> {
    let (pending, app_id, subject) = match (b.application_id, b.applicant) {
        (Some(id), None) => {
            let app = crate::applications::load(&state, &caller, id).await?;
            let p = svc::decide_application(&state, &app).await?;
            (p, Some(app.id), format!("application:{}", app.id))
        }
        (None, Some(v)) => {
            let applicant: zhudai_risk::Applicant = serde_json::from_value(v)
                .map_err(|e| ApiError::field("applicant", "invalid", e.to_string()))?;
            let policy = svc::policy_ready(state.store(), state.now_ms()).await?;
            let decision = svc::run(&policy, &applicant)?;
            let subject = b
                .subject
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "api".into());
            if subject.chars().count() > 200 {
                return Err(ApiError::field(
                    "subject",
                    "too_long",
                    "at most 200 characters",
                ));
            }
            (
                svc::Pending {
                    observation: Some(svc::observation(&policy, &applicant)),
                    applicant,
                    decision,
                    model_id: policy.champion.id,
                    rule_set_id: policy.rule_set_id,
                },
                None,
                subject,
            )
        }
        _ => {
            return Err(ApiError::field(
                "application_id",
                "one_of",
                "give either application_id or applicant",
            ))
        }
    };
    let (d, challengers) = svc::store(&state, &pending, app_id, &subject, Some(&caller)).await?;
    let body = detail_of(d, challengers, Vec::new())?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(body)).into_response(),
    ))
}

/// Re-run a stored decision from its stored input with its own model and rule set
/// versions: the outcome, score and reasons must come out the same.
#[utoipa::path(post, path = "/api/v1/decisions/{id}/replay", tag = "risk", operation_id = "decisions_replay",
    params(("id" = i64, Path)), responses((status = 200, body = svc::Replay)))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<svc::Replay>> {
    let d = load_decision(&state, &caller, id).await?;
    Ok(ApiJson(svc::replay(state.store(), &d).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideRequest {
    /// `approve`, `refer` or `reject`.
    pub outcome: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// Ask for a decision's outcome to be overridden; another person must approve it.
#[utoipa::path(post, path = "/api/v1/decisions/{id}/overrides", tag = "risk", operation_id = "decisions_override",
    params(("id" = i64, Path)), request_body = OverrideRequest,
    responses((status = 201, body = Created), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn request_override(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<OverrideRequest>,
) -> ApiResult<Response> {
    load_decision(&state, &caller, id).await?;
    let oid = svc::request_override(&state, &caller, id, &b.outcome, &b.reason).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(Created { id: oid })).into_response(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideDecision {
    pub approve: bool,
    pub note: Option<String>,
}

/// Approve or refuse an override (two-person rule: never its requester).
#[utoipa::path(post, path = "/api/v1/decisions/{id}/overrides/{override_id}/decision", tag = "risk",
    operation_id = "decisions_override_decide",
    params(("id" = i64, Path), ("override_id" = i64, Path)), request_body = OverrideDecision,
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn decide_override(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, override_id)): Path<(i64, i64)>,
    ApiJson(b): ApiJson<OverrideDecision>,
) -> ApiResult<Response> {
    load_decision(&state, &caller, id).await?;
    svc::decide_override(
        &state,
        &caller,
        id,
        override_id,
        b.approve,
        b.note.as_deref(),
    )
    .await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

// ------------------------------------------------------------------ models

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSummary {
    pub id: i64,
    pub name: String,
    pub version: String,
    /// `champion`, `challenger` or `retired`.
    pub status: String,
    pub digest: String,
    pub features: usize,
    pub note: Option<String>,
    pub created_at_ms: i64,
    pub promoted_at_ms: Option<i64>,
}

fn model_summary(m: &ModelRow) -> ModelSummary {
    ModelSummary {
        id: m.id,
        name: m.name.clone(),
        version: m.version.clone(),
        status: m.status.clone(),
        digest: m.digest.clone(),
        features: svc::parse_model(m).map_or(0, |s| s.feature_count()),
        note: m.note.clone(),
        created_at_ms: m.created_at_ms,
        promoted_at_ms: m.promoted_at_ms,
    }
}

/// Every model version, newest first.
#[utoipa::path(get, path = "/api/v1/models", tag = "risk", operation_id = "models_list",
    responses((status = 200, body = [ModelSummary])))]
pub async fn models(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<ModelSummary>>> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    Ok(ApiJson(
        state
            .store()
            .risk_models()
            .await?
            .iter()
            .map(model_summary)
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// The scorecard JSON.
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
    /// Its input mapping.
    #[schema(value_type = Vec<Object>)]
    pub inputs: serde_json::Value,
}

/// One model: the scorecard and its input mapping.
#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "risk", operation_id = "models_get",
    params(("id" = i64, Path)), responses((status = 200, body = ModelDetail)))]
pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<ModelDetail>> {
    let m = state
        .store()
        .risk_model(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no model has id {id}")))?;
    Ok(ApiJson(ModelDetail {
        summary: model_summary(&m),
        model: serde_json::from_str(&m.spec).map_err(ApiError::internal)?,
        inputs: serde_json::from_str(&m.inputs).map_err(ApiError::internal)?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelUpload {
    /// The scorecard (zhudai-scorecard JSON format 1, e.g. from `zhudai model train`).
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
    /// Input mapping: `[{feature, from?, map?, label_zh?, label_en?}]`; unmapped features
    /// score missing unless given directly.
    #[schema(value_type = Vec<Object>)]
    pub inputs: Option<serde_json::Value>,
    pub note: Option<String>,
}

/// Upload a model: it becomes a challenger (the champion if there is none).
#[utoipa::path(post, path = "/api/v1/models", tag = "risk", operation_id = "models_upload",
    request_body = ModelUpload,
    responses((status = 201, body = Created), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<ModelUpload>,
) -> ApiResult<Response> {
    let spec = serde_json::to_string_pretty(&b.model).map_err(ApiError::internal)?;
    let inputs = match &b.inputs {
        Some(v) => serde_json::to_string_pretty(v).map_err(ApiError::internal)?,
        None => "[]".into(),
    };
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    let id = svc::upload_model(&state, &caller, &spec, &inputs, b.note.as_deref()).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(Created { id })).into_response(),
    ))
}

/// Make a model the champion (the current champion becomes a challenger); audited.
#[utoipa::path(post, path = "/api/v1/models/{id}/promote", tag = "risk", operation_id = "models_promote",
    params(("id" = i64, Path)), responses((status = 204)))]
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    svc::promote(&state, &caller, id).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelStatus {
    /// `challenger` or `retired`.
    pub status: String,
}

/// Retire a model, or bring a retired one back as a challenger.
#[utoipa::path(post, path = "/api/v1/models/{id}/status", tag = "risk", operation_id = "models_status",
    params(("id" = i64, Path)), request_body = ModelStatus, responses((status = 204)))]
pub async fn model_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ModelStatus>,
) -> ApiResult<Response> {
    svc::set_model_status(&state, &caller, id, &b.status).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CompareRequest {
    pub a: i64,
    pub b: i64,
    /// Optional labelled sample (CSV with the models' features and the target column) to
    /// measure AUC / KS / Gini of both on.
    pub sample_csv: Option<String>,
    /// Target column of the sample (default: the models' own target).
    pub target: Option<String>,
    /// Value of the target meaning bad (default: the models' own).
    pub bad_value: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSide {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub status: String,
    /// Development sample: rows, bad rows, score bands `[upper, count]`.
    pub dev_rows: Option<u64>,
    pub dev_bad: Option<u64>,
    pub dev_score_bands: Vec<(Option<i64>, u64)>,
    /// IV per feature from the development counts in the bins.
    pub features: Vec<FeatureSide>,
    /// On the given sample.
    pub auc: Option<f64>,
    pub ks: Option<f64>,
    pub gini: Option<f64>,
    /// Scores given in decisions (as champion or challenger), newest 5,000.
    pub live_scores: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureSide {
    pub name: String,
    pub iv: Option<f64>,
    /// `(label, points)` per bin, the missing bin last.
    pub bins: Vec<(String, i64)>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    pub a: ModelSide,
    pub b: ModelSide,
}

pub async fn compare_models(state: &AppState, b: &CompareRequest) -> Result<Comparison, ApiError> {
    let sample = match b
        .sample_csv
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(csv) => {
            let mut table = zhudai_scorecard::io::read_csv(csv.as_bytes())
                .map_err(|e| ApiError::field("sample_csv", "invalid", e.to_string()))?;
            // A feature the sample lacks is missing on every row (its missing bin).
            for id in [b.a, b.b] {
                let m = svc::bound_model(state.store(), id).await?;
                for f in m.model.feature_names() {
                    if !table.header.iter().any(|h| h.trim() == f) {
                        table.header.push(f.to_owned());
                        for r in &mut table.records {
                            r.push(String::new());
                        }
                    }
                }
            }
            Some(
                zhudai_scorecard::Dataset::from_text_records(&table.header, &table.records, &[])
                    .map_err(|e| ApiError::field("sample_csv", "invalid", e.to_string()))?,
            )
        }
        None => None,
    };
    let side = |id: i64| {
        let sample = sample.as_ref();
        async move {
            let row = state
                .store()
                .risk_model(id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no model has id {id}")))?;
            let m = svc::bound_model(state.store(), id).await?;
            let spec = m.model.spec();
            let features = spec
                .features
                .iter()
                .map(|f| {
                    let mut bins: Vec<(String, i64)> = f
                        .binning
                        .bins()
                        .iter()
                        .map(|b| (b.label.clone(), b.points))
                        .collect();
                    bins.push((f.missing.label.clone(), f.missing.points));
                    let stats: Vec<_> = f
                        .binning
                        .bins()
                        .iter()
                        .map(|b| b.dev)
                        .chain(std::iter::once(f.missing.dev))
                        .collect();
                    let iv = stats.iter().all(Option::is_some).then(|| {
                        let (g, bd): (f64, f64) =
                            stats.iter().flatten().fold((0.0, 0.0), |acc, s| {
                                (acc.0 + (s.count - s.bad) as f64, acc.1 + s.bad as f64)
                            });
                        stats
                            .iter()
                            .flatten()
                            .filter(|s| s.count > 0)
                            .map(|s| {
                                let pg = ((s.count - s.bad) as f64).max(0.5) / g.max(1.0);
                                let pb = (s.bad as f64).max(0.5) / bd.max(1.0);
                                (pg - pb) * (pg / pb).ln()
                            })
                            .sum::<f64>()
                    });
                    FeatureSide {
                        name: f.name.clone(),
                        iv,
                        bins,
                    }
                })
                .collect();
            let perf = match sample {
                Some(data) => {
                    let target = match (&b.target, &spec.target) {
                        (Some(col), t) => Some(zhudai_scorecard::TargetSpec {
                            column: col.clone(),
                            bad_value: b
                                .bad_value
                                .clone()
                                .or_else(|| t.as_ref().map(|t| t.bad_value.clone()))
                                .unwrap_or_else(|| "1".into()),
                        }),
                        (None, Some(t)) => Some(zhudai_scorecard::TargetSpec {
                            column: t.column.clone(),
                            bad_value: b.bad_value.clone().unwrap_or_else(|| t.bad_value.clone()),
                        }),
                        (None, None) => None,
                    };
                    Some(
                        zhudai_scorecard::evaluate(&m.model, data, target.as_ref())
                            .map_err(|e| ApiError::field("sample_csv", "invalid", e.to_string()))?,
                    )
                }
                None => None,
            };
            Ok::<ModelSide, ApiError>(ModelSide {
                id,
                name: row.name,
                version: row.version,
                status: row.status,
                dev_rows: spec.development.as_ref().map(|d| d.rows),
                dev_bad: spec.development.as_ref().map(|d| d.bad),
                dev_score_bands: spec
                    .development
                    .as_ref()
                    .map(|d| d.score_bands.iter().map(|b| (b.upper, b.count)).collect())
                    .unwrap_or_default(),
                features,
                auc: perf.as_ref().map(|p| p.auc),
                ks: perf.as_ref().map(|p| p.ks),
                gini: perf.as_ref().map(|p| p.gini),
                live_scores: state.store().risk_model_scores(id, 5000).await?,
            })
        }
    };
    Ok(Comparison {
        a: side(b.a).await?,
        b: side(b.b).await?,
    })
}

/// Compare two models: development-sample statistics and bins side by side, scores given
/// in decisions, and AUC / KS / Gini on a labelled sample when one is given.
#[utoipa::path(post, path = "/api/v1/models/compare", tag = "risk", operation_id = "models_compare",
    request_body = CompareRequest, responses((status = 200, body = Comparison)))]
pub async fn compare(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<CompareRequest>,
) -> ApiResult<ApiJson<Comparison>> {
    Ok(ApiJson(compare_models(&state, &b).await?))
}

// ------------------------------------------------------------------ rule sets

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleSetView {
    pub id: i64,
    pub version: i64,
    pub name: String,
    pub enabled: bool,
    pub digest: String,
    pub source: String,
    pub created_at_ms: i64,
    pub enabled_at_ms: Option<i64>,
}

fn rule_view(r: RuleSetRow) -> RuleSetView {
    RuleSetView {
        id: r.id,
        version: r.version,
        name: r.name,
        enabled: r.active,
        digest: r.digest,
        source: r.source,
        created_at_ms: r.created_at_ms,
        enabled_at_ms: r.enabled_at_ms,
    }
}

/// Every rule set version, newest first.
#[utoipa::path(get, path = "/api/v1/rule-sets", tag = "risk", operation_id = "rule_sets_list",
    responses((status = 200, body = [RuleSetView])))]
pub async fn rule_sets(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<RuleSetView>>> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    Ok(ApiJson(
        state
            .store()
            .risk_rule_sets()
            .await?
            .into_iter()
            .map(rule_view)
            .collect(),
    ))
}

/// One rule set version.
#[utoipa::path(get, path = "/api/v1/rule-sets/{id}", tag = "risk", operation_id = "rule_sets_get",
    params(("id" = i64, Path)), responses((status = 200, body = RuleSetView)))]
pub async fn rule_set(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<RuleSetView>> {
    let r = state
        .store()
        .risk_rule_set(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rule set has id {id}")))?;
    Ok(ApiJson(rule_view(r)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleSetSave {
    /// The rule set in TOML.
    pub source: String,
    /// Enable it at once (default false: save, test, then enable).
    #[serde(default)]
    pub enable: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleSetSaved {
    pub id: i64,
    pub version: i64,
    pub enabled: bool,
}

/// Save a new rule set version. A rule that does not parse or names an unknown field is
/// refused (422, each problem named: `rules.<code>.when`).
#[utoipa::path(post, path = "/api/v1/rule-sets", tag = "risk", operation_id = "rule_sets_save",
    request_body = RuleSetSave,
    responses((status = 201, body = RuleSetSaved), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn save_rule_set(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<RuleSetSave>,
) -> ApiResult<Response> {
    svc::ensure_defaults(state.store(), state.now_ms()).await?;
    let (id, version) = svc::save_rules(&state, &caller, &b.source, b.enable).await?;
    Ok(recorded(
        (
            StatusCode::CREATED,
            axum::Json(RuleSetSaved {
                id,
                version,
                enabled: b.enable,
            }),
        )
            .into_response(),
    ))
}

/// Enable a stored version (checked again first); the enabled one before is disabled.
#[utoipa::path(post, path = "/api/v1/rule-sets/{id}/enable", tag = "risk", operation_id = "rule_sets_enable",
    params(("id" = i64, Path)), responses((status = 204)))]
pub async fn enable_rule_set(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    svc::enable_rules(&state, &caller, id).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleSetTest {
    pub source: String,
    /// A JSON array of applicants, or CSV whose header names fields (`app.amount`,
    /// `applicant.age`, `features.<name>`).
    pub samples: String,
}

/// Check a rule set and run it over sample rows with the champion: which rules fire,
/// which cannot be evaluated, and the outcome per row. Nothing is stored.
#[utoipa::path(post, path = "/api/v1/rule-sets/test", tag = "risk", operation_id = "rule_sets_test",
    request_body = RuleSetTest,
    responses((status = 200, body = [svc::RuleTestRow]), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn test_rule_set(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<RuleSetTest>,
) -> ApiResult<ApiJson<Vec<svc::RuleTestRow>>> {
    Ok(ApiJson(
        svc::test_rules(&state, &b.source, &b.samples).await?,
    ))
}

// ------------------------------------------------------------------ blacklist

#[derive(Debug, Serialize, ToSchema)]
pub struct BlacklistEntry {
    pub id: i64,
    /// `id_number`, `phone` or `bank_card` (the value is kept only as a blind index).
    pub field: String,
    pub reason: String,
    pub created_at_ms: i64,
}

/// Blacklist entries, newest first.
#[utoipa::path(get, path = "/api/v1/blacklist", tag = "risk", operation_id = "blacklist_list",
    responses((status = 200, body = [BlacklistEntry])))]
pub async fn blacklist(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<BlacklistEntry>>> {
    Ok(ApiJson(
        state
            .store()
            .risk_blacklist(500)
            .await?
            .into_iter()
            .map(|b| BlacklistEntry {
                id: b.id,
                field: b.field,
                reason: b.reason,
                created_at_ms: b.created_at_ms,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BlacklistAdd {
    pub field: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlacklistAdded {
    /// False when it was listed already.
    pub added: bool,
}

/// Add an ID number, phone or bank card to the blacklist (`applicant.blacklisted`).
#[utoipa::path(post, path = "/api/v1/blacklist", tag = "risk", operation_id = "blacklist_add",
    request_body = BlacklistAdd, responses((status = 201, body = BlacklistAdded)))]
pub async fn blacklist_add(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<BlacklistAdd>,
) -> ApiResult<Response> {
    let added = svc::blacklist_add(&state, &caller, &b.field, &b.value, &b.reason).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(BlacklistAdded { added })).into_response(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BlacklistRemoval {
    /// Why the entry is removed (audited).
    pub reason: String,
}

/// Remove a blacklist entry, with a reason (audited).
#[utoipa::path(post, path = "/api/v1/blacklist/{id}/removal", tag = "risk", operation_id = "blacklist_remove",
    params(("id" = i64, Path)), request_body = BlacklistRemoval,
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn blacklist_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<BlacklistRemoval>,
) -> ApiResult<Response> {
    svc::blacklist_remove(&state, &caller, id, &b.reason).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}
