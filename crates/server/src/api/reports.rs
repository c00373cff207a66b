//! Portfolio reports (issue #8 item 6): the dashboard's figures as JSON (`report.read`)
//! and as an XLSX workbook (`report.export`), and roll rates between two closes.

use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::portfolio::{self as svc, Dashboard, Roll};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct RollParams {
    /// First close `YYYY-MM-DD` (default: the close a month before `to`, else the first).
    pub from: Option<String>,
    /// Second close (default: the last one).
    pub to: Option<String>,
    /// XLSX only: `en` for English sheet names and headings (default Chinese).
    pub lang: Option<String>,
}

fn check(d: Option<&str>, field: &str) -> Result<(), ApiError> {
    if let Some(d) = d {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::field(field, "invalid", "a date such as 2026-11-28"))?;
    }
    Ok(())
}

/// The portfolio as of the last close: balance by tier and bucket, NPL trend, vintage
/// curves, roll rates.
#[utoipa::path(get, path = "/api/v1/reports/portfolio", tag = "reports", operation_id = "report_portfolio",
    params(RollParams), responses((status = 200, body = Dashboard), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn portfolio(
    State(state): State<AppState>,
    Query(q): Query<RollParams>,
) -> ApiResult<ApiJson<Dashboard>> {
    check(q.from.as_deref(), "from")?;
    check(q.to.as_deref(), "to")?;
    Ok(ApiJson(
        svc::dashboard(&state, q.from.as_deref(), q.to.as_deref()).await?,
    ))
}

/// The same figures as an XLSX workbook.
#[utoipa::path(get, path = "/api/v1/reports/portfolio.xlsx", tag = "reports", operation_id = "report_portfolio_xlsx",
    params(RollParams), responses((status = 200, description = "XLSX workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn portfolio_xlsx(
    State(state): State<AppState>,
    Query(q): Query<RollParams>,
) -> ApiResult<Response> {
    check(q.from.as_deref(), "from")?;
    check(q.to.as_deref(), "to")?;
    let d = svc::dashboard(&state, q.from.as_deref(), q.to.as_deref()).await?;
    let bytes = svc::xlsx(&d, q.lang.as_deref() != Some("en")).map_err(ApiError::internal)?;
    let name = format!(
        "portfolio-{}.xlsx",
        d.as_of.clone().unwrap_or_else(|| "none".into())
    );
    Ok((
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
        .into_response())
}

/// The roll-rate matrix between two closes.
#[utoipa::path(get, path = "/api/v1/reports/roll-rates", tag = "reports", operation_id = "report_roll_rates",
    params(RollParams), responses((status = 200, body = Roll), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn roll_rates(
    State(state): State<AppState>,
    Query(q): Query<RollParams>,
) -> ApiResult<ApiJson<Roll>> {
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return Err(ApiError::field(
            "from",
            "required",
            "give from and to (YYYY-MM-DD)",
        ));
    };
    check(Some(from), "from")?;
    check(Some(to), "to")?;
    if from >= to {
        return Err(ApiError::field("to", "invalid", "to must be after from"));
    }
    Ok(ApiJson(svc::roll(&state, from, to).await?))
}
