//! Risk warnings (issue #7 item 3): `/api/v1/risk/rules…`, `/api/v1/risk/warnings…`,
//! `/api/v1/risk/tasks…`, `/api/v1/risk/playbooks…`, `/api/v1/risk/events`,
//! `/api/v1/risk/dashboard`, `/api/v1/risk/psi…`. Thin handlers over
//! [`crate::warnings`]; every write appends its audit record inside its transaction.

use crate::api::partners::recorded;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiResult, Problem};
use crate::state::AppState;
use crate::warnings::psi::{self, BaselineView, PsiOverview, RunOutcome};
use crate::warnings::{
    self as svc, DashboardCounts, EvaluationReport, EventBatch, NoteInput, PlaybookInput,
    PlaybookView, RuleInput, RuleTestRequest, RuleTestResult, RuleView, TaskView, WarningDetail,
    WarningFilter, WarningPage,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

/// Every warning rule.
#[utoipa::path(get, path = "/api/v1/risk/rules", tag = "risk",
    responses((status = 200, body = [RuleView])))]
pub async fn rule_list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<RuleView>>> {
    Ok(axum::Json(svc::rules(&state).await?))
}

/// Save a new rule (disabled). A condition that does not compile is saved as a draft with
/// its `compile_error`; such a rule cannot be enabled.
#[utoipa::path(post, path = "/api/v1/risk/rules", tag = "risk", request_body = RuleInput,
    responses((status = 201, body = RuleView),
              (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rule_create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<Response> {
    let v = svc::create_rule(&state, &caller, &input).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(v)).into_response(),
    ))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/risk/rules/{code}", tag = "risk", params(("code" = String, Path)),
    responses((status = 200, body = RuleView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn rule_get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<RuleView>> {
    Ok(axum::Json(svc::rule_view(
        &svc::find_rule(&state, &code).await?,
    )))
}

/// Save a new version of a rule (send the `version` you edited). A condition that no
/// longer compiles disables the rule.
#[utoipa::path(put, path = "/api/v1/risk/rules/{code}", tag = "risk", params(("code" = String, Path)), request_body = RuleInput,
    responses((status = 200, body = RuleView),
              (status = 409, description = "Edited meanwhile", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rule_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(input): ApiJson<RuleInput>,
) -> ApiResult<Response> {
    let v = svc::update_rule(&state, &caller, &code, &input).await?;
    Ok(recorded(axum::Json(v).into_response()))
}

/// Enable a rule. Refused (422, naming the problem in `errors[0]`) while its condition
/// does not parse or refers to an unknown field.
#[utoipa::path(post, path = "/api/v1/risk/rules/{code}/enable", tag = "risk", params(("code" = String, Path)),
    responses((status = 200, body = RuleView),
              (status = 422, description = "The condition does not compile", body = Problem, content_type = "application/problem+json")))]
pub async fn rule_enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let v = svc::set_enabled(&state, &caller, &code, true).await?;
    Ok(recorded(axum::Json(v).into_response()))
}

/// Disable a rule.
#[utoipa::path(post, path = "/api/v1/risk/rules/{code}/disable", tag = "risk", params(("code" = String, Path)),
    responses((status = 200, body = RuleView)))]
pub async fn rule_disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let v = svc::set_enabled(&state, &caller, &code, false).await?;
    Ok(recorded(axum::Json(v).into_response()))
}

/// Test a condition against sample rows (JSON events, evaluated in order by the production
/// engine, windowed aggregates included). Nothing is stored.
#[utoipa::path(post, path = "/api/v1/risk/rules/test", tag = "risk", request_body = RuleTestRequest,
    responses((status = 200, body = RuleTestResult),
              (status = 422, description = "The condition does not compile, or a row is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn rule_test(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(req): ApiJson<RuleTestRequest>,
) -> ApiResult<axum::Json<RuleTestResult>> {
    Ok(axum::Json(svc::test_rule(&req, state.now_ms())?))
}

/// Report risk events: stored, evaluated by the enabled rules, warnings opened and their
/// actions run, in one transaction. A repeated `dedupe_key` is stored once.
#[utoipa::path(post, path = "/api/v1/risk/events", tag = "risk", request_body = EventBatch,
    responses((status = 200, body = EvaluationReport),
              (status = 422, description = "An event is invalid (nothing is stored)", body = Problem, content_type = "application/problem+json")))]
pub async fn events_submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<Response> {
    let events = svc::parse_events(&batch.events, state.now_ms())?;
    let report = svc::evaluate_events(&state, &events, &format!("api:{}", caller.username)).await?;
    Ok(recorded(axum::Json(report).into_response()))
}

/// Warnings in the caller's data scope, newest first.
#[utoipa::path(get, path = "/api/v1/risk/warnings", tag = "risk", params(WarningFilter),
    responses((status = 200, body = WarningPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn warning_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<WarningFilter>,
) -> ApiResult<axum::Json<WarningPage>> {
    Ok(axum::Json(svc::list(&state, &caller, &f).await?))
}

/// One warning with its tasks.
#[utoipa::path(get, path = "/api/v1/risk/warnings/{id}", tag = "risk", params(("id" = i64, Path)),
    responses((status = 200, body = WarningDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn warning_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<WarningDetail>> {
    Ok(axum::Json(svc::detail(&state, &caller, id).await?))
}

/// Acknowledge an open warning (optional note).
#[utoipa::path(post, path = "/api/v1/risk/warnings/{id}/acknowledge", tag = "risk", params(("id" = i64, Path)), request_body = NoteInput,
    responses((status = 200, body = WarningDetail), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn warning_acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(n): ApiJson<NoteInput>,
) -> ApiResult<Response> {
    let d = svc::acknowledge(&state, &caller, id, &n).await?;
    Ok(recorded(axum::Json(d).into_response()))
}

/// Close a warning; the note (what was done) is required.
#[utoipa::path(post, path = "/api/v1/risk/warnings/{id}/close", tag = "risk", params(("id" = i64, Path)), request_body = NoteInput,
    responses((status = 200, body = WarningDetail), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn warning_close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(n): ApiJson<NoteInput>,
) -> ApiResult<Response> {
    let d = svc::close(&state, &caller, id, &n).await?;
    Ok(recorded(axum::Json(d).into_response()))
}

/// Open warning tasks for the caller's roles.
#[utoipa::path(get, path = "/api/v1/risk/tasks", tag = "risk",
    responses((status = 200, body = [TaskView])))]
pub async fn task_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<TaskView>>> {
    Ok(axum::Json(svc::my_tasks(&state, &caller).await?))
}

/// Mark a task done (someone holding its role, or a risk manager).
#[utoipa::path(post, path = "/api/v1/risk/tasks/{id}/done", tag = "risk", params(("id" = i64, Path)), request_body = NoteInput,
    responses((status = 200, body = TaskView), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn task_done(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(n): ApiJson<NoteInput>,
) -> ApiResult<Response> {
    let t = svc::task_done(&state, &caller, id, &n).await?;
    Ok(recorded(axum::Json(t).into_response()))
}

/// The emergency playbook of each severity.
#[utoipa::path(get, path = "/api/v1/risk/playbooks", tag = "risk",
    responses((status = 200, body = [PlaybookView])))]
pub async fn playbook_list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<PlaybookView>>> {
    Ok(axum::Json(svc::playbooks(&state).await?))
}

/// Edit a severity's playbook (send the `version` you edited).
#[utoipa::path(put, path = "/api/v1/risk/playbooks/{severity}", tag = "risk", params(("severity" = String, Path)), request_body = PlaybookInput,
    responses((status = 200, body = PlaybookView), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn playbook_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(severity): Path<String>,
    ApiJson(input): ApiJson<PlaybookInput>,
) -> ApiResult<Response> {
    let p = svc::update_playbook(&state, &caller, &severity, &input).await?;
    Ok(recorded(axum::Json(p).into_response()))
}

/// Warning counts by type and severity (last 30 days), open and overdue.
#[utoipa::path(get, path = "/api/v1/risk/dashboard", tag = "risk",
    responses((status = 200, body = DashboardCounts)))]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<DashboardCounts>> {
    Ok(axum::Json(svc::dashboard_counts(&state, &caller).await?))
}

/// Models under stability monitoring and their PSI runs.
#[utoipa::path(get, path = "/api/v1/risk/psi", tag = "risk",
    responses((status = 200, body = PsiOverview)))]
pub async fn psi_overview(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<PsiOverview>> {
    Ok(axum::Json(psi::overview(&state).await?))
}

/// A model to monitor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineRequest {
    /// A scorecard model (the JSON `zhudai model train` writes) with its development sample.
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
}

/// Register a scorecard model for stability monitoring.
#[utoipa::path(post, path = "/api/v1/risk/psi/baselines", tag = "risk", request_body = BaselineRequest,
    responses((status = 201, body = BaselineView), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn psi_register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BaselineRequest>,
) -> ApiResult<Response> {
    let b = psi::register_baseline_as(&state, &caller, &req.model).await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(b)).into_response(),
    ))
}

/// Run population stability now (once per model and business day).
#[utoipa::path(post, path = "/api/v1/risk/psi/run", tag = "risk",
    responses((status = 200, body = [RunOutcome])))]
pub async fn psi_run(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    // The runs append their own audit records; the request itself is recorded by the
    // authorization layer.
    let r = psi::run_now(&state, &caller).await?;
    Ok(axum::Json(r).into_response())
}
