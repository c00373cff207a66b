//! Workflow definitions and worklists: `/api/v1/workflows…`, `/api/v1/tasks`.

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, FieldError, Problem};
use crate::state::AppState;
use crate::workflow as wf;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_workflow::Definition;

#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionSummary {
    pub code: String,
    pub version: i64,
    pub name: String,
    pub digest: String,
    pub created_at_ms: i64,
}

/// Every version of every workflow definition.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflow", operation_id = "workflows_list",
    responses((status = 200, body = [DefinitionSummary])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<DefinitionSummary>>> {
    wf::ensure_defaults(state.store(), state.now_ms()).await?;
    Ok(ApiJson(
        state
            .store()
            .definitions()
            .await?
            .into_iter()
            .map(|d| DefinitionSummary {
                code: d.code,
                version: d.version,
                name: d.name,
                digest: d.digest,
                created_at_ms: d.created_at_ms,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DefinitionSource {
    /// The definition in TOML (see `crates/workflow/definitions/origination.toml`).
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Installed {
    pub code: String,
    pub version: i64,
}

/// Check a definition and store it as the next version of its code. Running instances
/// stay on their version. Every problem is a field error whose `field` is the path in
/// the definition (`nodes[approval].chain[0].when`).
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflow", operation_id = "workflows_install",
    request_body = DefinitionSource,
    responses((status = 201, body = Installed),
              (status = 422, description = "The definition has problems, each named", body = Problem, content_type = "application/problem+json")))]
pub async fn install(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DefinitionSource>,
) -> ApiResult<Response> {
    let (code, version) = wf::install(
        state.store(),
        &body.source,
        Some(caller.user_id),
        state.now_ms(),
    )
    .await?;
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(Installed {
            code: code.clone(),
            version,
        }),
    )
        .into_response();
    resp.extensions_mut().insert(
        AuditNote::action("workflow.install")
            .target(format!("workflow:{code}"))
            .reason(format!(
                "version {version}, sha256 {}",
                wf::digest(&body.source)
            )),
    );
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub problems: Vec<FieldError>,
}

/// Check a definition without storing it.
#[utoipa::path(post, path = "/api/v1/workflows/validate", tag = "workflow", operation_id = "workflows_validate",
    request_body = DefinitionSource, responses((status = 200, body = Validation)))]
pub async fn validate(ApiJson(body): ApiJson<DefinitionSource>) -> ApiJson<Validation> {
    let problems = match Definition::from_toml(&body.source) {
        Ok(_) => Vec::new(),
        Err(p) => wf::problems_to_fields(p),
    };
    ApiJson(Validation {
        valid: problems.is_empty(),
        problems,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// `task`, `approval`, `automatic`, `wait` or `end`.
    pub kind: String,
    pub name: String,
    pub assignee_role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EdgeView {
    pub from: String,
    pub to: String,
    pub on: String,
    pub guard: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionDetail {
    pub code: String,
    pub version: i64,
    pub name: String,
    pub source: String,
    pub start: String,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

/// One version of a definition, with its nodes and transitions.
#[utoipa::path(get, path = "/api/v1/workflows/{code}/{version}", tag = "workflow", operation_id = "workflows_get",
    params(("code" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = DefinitionDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    Path((code, version)): Path<(String, i64)>,
) -> ApiResult<ApiJson<DefinitionDetail>> {
    wf::ensure_defaults(state.store(), state.now_ms()).await?;
    let row = state
        .store()
        .definition_version(&code, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow `{code}` version {version}")))?;
    let def = wf::definition(state.store(), &code, version).await?;
    Ok(ApiJson(detail(&def, version, row.source)))
}

pub fn detail(def: &Definition, version: i64, source: String) -> DefinitionDetail {
    DefinitionDetail {
        code: def.spec.code.clone(),
        version,
        name: def.spec.name.clone(),
        source,
        start: def.spec.start.clone(),
        nodes: def
            .nodes
            .iter()
            .map(|n| NodeView {
                id: n.spec.id.clone(),
                kind: serde_json::to_value(n.spec.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                name: n.spec.name.clone(),
                assignee_role: n
                    .spec
                    .assignee
                    .as_ref()
                    .map(|a| a.role.clone())
                    .or_else(|| {
                        n.chain.first().map(|c| {
                            c.levels
                                .iter()
                                .map(|l| l.role.as_str())
                                .collect::<Vec<_>>()
                                .join(" → ")
                        })
                    }),
            })
            .collect(),
        edges: def
            .edges()
            .into_iter()
            .map(|(from, to, on, guard)| EdgeView {
                from,
                to,
                on,
                guard,
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The caller's to-do list (待办): steps waiting for one of their roles or for them,
/// oldest first, each with its due time and how long it is overdue.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "workflow", operation_id = "tasks_list", params(TaskQuery),
    responses((status = 200, body = [crate::worklists::TodoItem])))]
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TaskQuery>,
) -> ApiResult<ApiJson<Vec<crate::worklists::TodoItem>>> {
    let limit = crate::api::worklists::limit(q.limit)?;
    Ok(ApiJson(
        crate::worklists::todo(&state, &caller, limit).await?,
    ))
}
