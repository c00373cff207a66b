//! Loan applications: `/api/v1/applications…`. Creating needs `application.create`;
//! acting on one needs the role its current step waits for (the workflow engine checks
//! it, with four eyes) and the application inside the caller's data scope.

use crate::applications::{self as svc, ApplicationInput};
use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::money::Fen;
use zhudai_workflow::Action;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplicationCreate {
    pub customer_id: i64,
    pub product_code: String,
    /// Yuan, e.g. `"30000.00"`.
    pub amount: String,
    pub months: i64,
    /// The product's first method when absent.
    pub method: Option<String>,
    pub purpose: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationCreated {
    pub id: i64,
}

/// Create an application (it starts at the draft step of the origination workflow).
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", operation_id = "applications_create",
    request_body = ApplicationCreate,
    responses((status = 201, body = ApplicationCreated),
              (status = 422, description = "Each bad field named (customer, product, amount, term, method, age)", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<ApplicationCreate>,
) -> ApiResult<Response> {
    let id = svc::create(
        &state,
        &caller,
        &ApplicationInput {
            customer_id: b.customer_id,
            product_code: b.product_code,
            amount: b.amount,
            months: b.months,
            method: b.method.unwrap_or_default(),
            purpose: b.purpose,
        },
    )
    .await?;
    let mut r = (StatusCode::CREATED, axum::Json(ApplicationCreated { id })).into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(r)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationView {
    pub id: i64,
    pub customer_id: i64,
    pub product_code: String,
    pub product_version: i64,
    /// Yuan.
    pub amount: String,
    pub months: i64,
    pub method: String,
    /// `draft`, `in_progress`, `approved`, `rejected`, `withdrawn`, `expired`, `disbursed`.
    pub status: String,
    /// The workflow step it is at.
    pub node: String,
    pub created_at_ms: i64,
}

fn view(a: zhudai_store::applications::ApplicationRow) -> ApplicationView {
    ApplicationView {
        id: a.id,
        customer_id: a.customer_id,
        product_code: a.product_code,
        product_version: a.product_version,
        amount: Fen::new(a.amount_fen).to_string(),
        months: a.months,
        method: a.method,
        status: a.status,
        node: a.node,
        created_at_ms: a.created_at_ms,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplicationSearch {
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Applications inside the caller's data scope, newest first.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", operation_id = "applications_list",
    params(ApplicationSearch), responses((status = 200, body = [ApplicationView])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ApplicationSearch>,
) -> ApiResult<ApiJson<Vec<ApplicationView>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "out_of_range", "limit is 1–500"));
    }
    let scope = crate::customers::scope_of(&caller, state.store()).await?;
    let rows = state
        .store()
        .applications(&scope, q.status.as_deref().filter(|s| !s.is_empty()), limit)
        .await?;
    Ok(ApiJson(rows.into_iter().map(view).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<i64>,
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationDetail {
    #[serde(flatten)]
    pub application: ApplicationView,
    /// Send this back with an action (optimistic concurrency).
    pub version: i64,
    /// The role the current step waits for, if any.
    pub waiting_for_role: Option<String>,
    /// The person the current step waits for, if any.
    pub waiting_for_user: Option<i64>,
    /// Every required material verified (the document-review step needs it).
    pub documents_complete: bool,
    pub history: Vec<StepView>,
}

/// One application: where it is, who it waits for, and everything that happened.
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", operation_id = "applications_get",
    params(("id" = i64, Path)),
    responses((status = 200, body = ApplicationDetail), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<ApplicationDetail>> {
    let (app, inst) = svc::load_at(&state, &caller, id).await?;
    let history = state
        .store()
        .steps(inst.id)
        .await?
        .into_iter()
        .map(|s| StepView {
            seq: s.seq,
            at_ms: s.at_ms,
            actor: s.actor,
            action: s.action,
            from_node: s.from_node,
            to_node: s.to_node,
            detail: s.detail,
        })
        .collect();
    let documents_complete = svc::documents_complete(&state, &app).await?;
    Ok(ApiJson(ApplicationDetail {
        application: view(app),
        version: inst.version,
        waiting_for_role: inst.assignee_role,
        waiting_for_user: inst.assignee_user,
        documents_complete,
        history,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionRequest {
    /// `submit`, `complete`, `approve`, `reject`, `return`, `transfer`, `add_approver`,
    /// `withdraw` or `comment`.
    pub action: String,
    /// The `version` you read; a 409 tells you someone acted first.
    pub version: Option<i64>,
    /// Required for reject, return and withdraw; the text of a comment.
    pub reason: Option<String>,
    /// `return`: the step to go back to.
    pub to: Option<String>,
    /// `transfer` / `add_approver`: the person.
    pub user_id: Option<i64>,
    /// `add_approver`: before (true) or after the current level.
    pub before: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResult {
    pub node: String,
    pub finished: Option<String>,
    pub version: i64,
}

/// Act on an application's current step.
#[utoipa::path(post, path = "/api/v1/applications/{id}/actions", tag = "applications", operation_id = "applications_act",
    params(("id" = i64, Path)), request_body = ActionRequest,
    responses((status = 200, body = ActionResult),
              (status = 403, description = "Not your step, or four eyes", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Not possible now, or someone acted first", body = Problem, content_type = "application/problem+json")))]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ActionRequest>,
) -> ApiResult<Response> {
    let reason = b.reason.clone().unwrap_or_default();
    let need_user = || {
        b.user_id
            .ok_or_else(|| ApiError::field("user_id", "required", "name the person"))
    };
    let action = match b.action.as_str() {
        "submit" => Action::Submit,
        "complete" => Action::Complete,
        "approve" => Action::Approve,
        "reject" => Action::Reject { reason },
        "return" => Action::Return {
            to: b
                .to
                .clone()
                .ok_or_else(|| ApiError::field("to", "required", "name the step to return to"))?,
            reason,
        },
        "transfer" => Action::Transfer {
            to_user: need_user()?,
        },
        "add_approver" => Action::AddApprover {
            user: need_user()?,
            before: b.before.unwrap_or(false),
        },
        "withdraw" => Action::Withdraw { reason },
        "comment" => Action::Comment { text: reason },
        other => {
            return Err(ApiError::field(
                "action",
                "unknown",
                format!("`{other}` is not an action; use submit, complete, approve, reject, return, transfer, add_approver, withdraw or comment"),
            ))
        }
    };
    let acted = svc::act(&state, &caller, id, b.version, &action).await?;
    let mut r = axum::Json(ActionResult {
        node: acted.node,
        finished: acted.finished,
        version: acted.version,
    })
    .into_response();
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    Ok(r)
}
