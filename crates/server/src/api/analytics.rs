//! Process analytics (issue #6 item 4): `/api/v1/workflows/analytics` (JSON) and
//! `/api/v1/workflows/analytics.xlsx`.

use crate::analytics as svc;
use crate::auth::AuditNote;
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use zhudai_workflow::analytics::Report;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The workflow definition code (default `origination`); every version counts.
    pub code: Option<String>,
    /// First business date, `YYYY-MM-DD` (default: 29 days before `to`).
    pub from: Option<String>,
    /// Last business date, included (default: today).
    pub to: Option<String>,
}

async fn compute(state: &AppState, q: &AnalyticsQuery) -> Result<(String, Report), ApiError> {
    let code = q
        .code
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "origination".into());
    let w = svc::window(q.from.as_deref(), q.to.as_deref(), state.clock().today())?;
    let r = svc::report(state, &code, w).await?;
    Ok((code, r))
}

/// Time spent per node (stays: count, mean, p50, p90, max), how stays ended (approval and
/// rejection rates per node), decisions per approval level, instances started and
/// finished per business day, cycle time with its histogram, and the bottlenecks (longest
/// p90 stays, biggest queues). Stays count when they ended in the window; queues are now.
#[utoipa::path(get, path = "/api/v1/workflows/analytics", tag = "workflow", operation_id = "workflows_analytics",
    params(AnalyticsQuery),
    responses((status = 200, description = "The report (see zhudai_workflow::analytics::Report)", body = serde_json::Value),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn report(
    State(state): State<AppState>,
    Query(q): Query<AnalyticsQuery>,
) -> ApiResult<ApiJson<Report>> {
    Ok(ApiJson(compute(&state, &q).await?.1))
}

/// The same report as an XLSX workbook (sheets Nodes, Levels, Daily, Cycle time).
#[utoipa::path(get, path = "/api/v1/workflows/analytics.xlsx", tag = "workflow", operation_id = "workflows_analytics_xlsx",
    params(AnalyticsQuery),
    responses((status = 200, description = "XLSX workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn export(
    State(state): State<AppState>,
    Query(q): Query<AnalyticsQuery>,
) -> ApiResult<Response> {
    let (code, r) = compute(&state, &q).await?;
    let bytes = svc::xlsx(&code, &r).map_err(ApiError::internal)?;
    let name = format!("workflow-analytics-{code}-{}-{}.xlsx", r.from, r.to);
    let mut resp = (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response();
    resp.extensions_mut().insert(
        AuditNote::action("workflow.analytics.export")
            .target(format!("workflow:{code}"))
            .reason(format!("{} – {}", r.from, r.to)),
    );
    Ok(resp)
}
