//! System routes: liveness, readiness, metrics, instance information.

use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_store::jobs::JobCount;
use zhudai_store::meta::OrgUnit;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub schema_version: i64,
}

/// Readiness: the database answers and its schema is current.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Readiness>> {
    let store = state.store();
    store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the database does not answer: {e}")))?;
    let schema_version = store
        .schema_version()
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot read the schema version: {e}")))?;
    if schema_version < zhudai_store::migrate::latest_version() {
        return Err(ApiError::Unavailable(format!(
            "the database schema is at version {schema_version}; run `zhudai migrate`"
        )));
    }
    Ok(Json(Readiness {
        status: "ready",
        database: store.backend().name(),
        schema_version,
    }))
}

/// Metrics in the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Gauges read from the database at scrape time.
    if let Ok(counts) = state.store().job_counts().await {
        for c in counts {
            metrics::gauge!("zhudai_jobs", "queue" => c.queue, "state" => c.state)
                .set(c.count as f64);
        }
    }
    metrics::gauge!("zhudai_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("zhudai_start_time_seconds").set(state.started_at_ms() as f64 / 1000.0);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemInfo {
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub schema_version: i64,
    pub latest_schema_version: i64,
    pub demo: bool,
    /// Unix milliseconds at which this process started.
    pub started_at_ms: i64,
    /// Today's business date (Asia/Shanghai).
    pub business_date: String,
    /// Audit records are kept at least this long; the application never deletes them.
    pub audit_retention_days: u32,
}

/// Version, database and schema of this instance.
#[utoipa::path(get, path = "/api/v1/system/info", tag = "system",
    responses((status = 200, description = "Instance information", body = SystemInfo)))]
pub async fn info(State(state): State<AppState>) -> ApiResult<Json<SystemInfo>> {
    Ok(Json(SystemInfo {
        version: env!("CARGO_PKG_VERSION"),
        database: state.store().backend().name(),
        schema_version: state.store().schema_version().await?,
        latest_schema_version: zhudai_store::migrate::latest_version(),
        demo: state.settings().demo,
        started_at_ms: state.started_at_ms(),
        business_date: state.clock().today().to_string(),
        audit_retention_days: state.settings().audit_retention_days,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobStat {
    pub queue: String,
    /// `pending`, `running`, `done` or `dead`.
    pub state: String,
    pub count: i64,
}

impl From<JobCount> for JobStat {
    fn from(c: JobCount) -> Self {
        Self {
            queue: c.queue,
            state: c.state,
            count: c.count,
        }
    }
}

/// Background jobs by queue and state.
#[utoipa::path(get, path = "/api/v1/system/jobs", tag = "system",
    responses((status = 200, description = "Job counts", body = [JobStat])))]
pub async fn job_stats(State(state): State<AppState>) -> ApiResult<Json<Vec<JobStat>>> {
    Ok(Json(
        state
            .store()
            .job_counts()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgUnitView {
    pub id: i64,
    pub parent_id: Option<i64>,
    /// `company`, `branch` or `team`.
    pub kind: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

impl From<OrgUnit> for OrgUnitView {
    fn from(u: OrgUnit) -> Self {
        Self {
            id: u.id,
            parent_id: u.parent_id,
            kind: u.kind,
            code: u.code,
            name_zh: u.name_zh,
            name_en: u.name_en,
        }
    }
}

/// The organisation tree as a flat list (parents before children).
#[utoipa::path(get, path = "/api/v1/org-units", tag = "organisation",
    responses((status = 200, description = "Company, branches and teams", body = [OrgUnitView])))]
pub async fn org_units(State(state): State<AppState>) -> ApiResult<Json<Vec<OrgUnitView>>> {
    Ok(Json(
        state
            .store()
            .org_units()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
