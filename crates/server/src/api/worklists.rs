//! Worklists (issue #6 item 3): the caller's done list and watch list,
//! `/api/v1/tasks/done`, `/api/v1/tasks/watched`, `/api/v1/watches/{id}` (the to-do list
//! is `/api/v1/tasks` in [`crate::api::workflows`]).

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use crate::worklists::{self as svc, DoneItem, WatchItem};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

pub fn limit(q: Option<i64>) -> Result<i64, ApiError> {
    let limit = q.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–500"));
    }
    Ok(limit)
}

/// The caller's done list (已办): instances they acted on, their latest action first.
#[utoipa::path(get, path = "/api/v1/tasks/done", tag = "workflow", operation_id = "tasks_done", params(ListQuery),
    responses((status = 200, body = [DoneItem])))]
pub async fn done(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<ApiJson<Vec<DoneItem>>> {
    Ok(ApiJson(svc::done(&state, &caller, limit(q.limit)?).await?))
}

/// The caller's watch list (关注), the most recently changed first, with the number of
/// steps since they last marked it seen.
#[utoipa::path(get, path = "/api/v1/tasks/watched", tag = "workflow", operation_id = "tasks_watched", params(ListQuery),
    responses((status = 200, body = [WatchItem])))]
pub async fn watched(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<ApiJson<Vec<WatchItem>>> {
    Ok(ApiJson(
        svc::watched(&state, &caller, limit(q.limit)?).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SeenBody {
    /// One instance; absent: every watched instance.
    pub instance_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub count: u64,
}

/// Marks the caller's watched instances (one, or all) as seen now.
#[utoipa::path(post, path = "/api/v1/tasks/watched/seen", tag = "workflow", operation_id = "tasks_watched_seen",
    request_body = SeenBody, responses((status = 200, body = Count)))]
pub async fn seen(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<SeenBody>,
) -> ApiResult<ApiJson<Count>> {
    let count = state
        .store()
        .watches_seen(caller.user_id, b.instance_id, state.now_ms())
        .await?;
    Ok(ApiJson(Count { count }))
}

/// Watch a workflow instance (an application's instance: see `instance_id` on the
/// application). 201 when added, 200 when already watched; 403 outside your data scope.
#[utoipa::path(put, path = "/api/v1/watches/{id}", tag = "workflow", operation_id = "watches_put",
    params(("id" = i64, Path, description = "Workflow instance id")),
    responses((status = 201, description = "Now watched"), (status = 200, description = "Already watched"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let added = svc::watch(&state, &caller, id).await?;
    Ok(if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
    .into_response())
}

/// Stop watching a workflow instance. 204, or 404 when it was not watched.
#[utoipa::path(delete, path = "/api/v1/watches/{id}", tag = "workflow", operation_id = "watches_delete",
    params(("id" = i64, Path, description = "Workflow instance id")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unwatch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if svc::unwatch(&state, &caller, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "you do not watch instance {id}"
        )))
    }
}
