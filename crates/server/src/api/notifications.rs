//! Notifications and exception alerts (issue #6 item 3): the caller's in-app
//! notifications (`/api/v1/notifications…`), group-bot webhook targets for administrators
//! (`/api/v1/webhooks…`, `notification.manage`; URLs and secrets are never returned), and
//! the managers of org units who receive alerts (`/api/v1/org-units/{id}/manager`).

use crate::auth::{AuditNote, Caller};
use crate::error::{ApiError, ApiJson, ApiResult, Problem};
use crate::notify::{self as svc, TargetChange, TargetInput};
use crate::state::AppState;
use crate::ui::i18n::Lang;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zhudai_store::notify::{DeliveryRow, TargetRow};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only unread ones.
    pub unread_only: Option<bool>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `zh-CN` (default) or `en`, for `title` and `lines`.
    pub lang: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    pub id: i64,
    pub event_id: i64,
    /// `stuck`, `sla_breach`, `funder_timeout`, `override`.
    pub kind: String,
    /// `info`, `warning`, `critical`.
    pub severity: String,
    /// Why you got it: `manager`, `watcher` or `fallback`.
    pub reason: String,
    pub title: String,
    /// Labelled lines: [label, value].
    pub lines: Vec<[String; 2]>,
    pub link: String,
    pub subject_type: Option<String>,
    pub subject_id: Option<i64>,
    pub instance_id: Option<i64>,
    pub node: Option<String>,
    pub waited_ms: Option<i64>,
    pub limit_ms: Option<i64>,
    pub detail: Option<String>,
    pub created_at_ms: i64,
    pub read_at_ms: Option<i64>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", operation_id = "notifications_list",
    params(InboxQuery), responses((status = 200, body = [NotificationView])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<InboxQuery>,
) -> ApiResult<ApiJson<Vec<NotificationView>>> {
    let limit = crate::api::worklists::limit(q.limit)?;
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or_default();
    let rows = state
        .store()
        .inbox(caller.user_id, q.unread_only.unwrap_or(false), limit)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for n in rows {
        let m = svc::message(&state, &n.event, lang).await;
        out.push(NotificationView {
            id: n.id,
            event_id: n.event.id,
            kind: n.event.kind,
            severity: n.event.severity,
            reason: n.reason,
            title: m.title,
            lines: m.lines.into_iter().map(|(a, b)| [a, b]).collect(),
            link: m.link,
            subject_type: n.event.subject_type,
            subject_id: n.event.subject_id,
            instance_id: n.event.instance_id,
            node: n.event.node,
            waited_ms: n.event.waited_ms,
            limit_ms: n.event.limit_ms,
            detail: n.event.detail,
            created_at_ms: n.event.created_at_ms,
            read_at_ms: n.read_at_ms,
        });
    }
    Ok(ApiJson(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

/// How many of the caller's notifications are unread (the bell's number).
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications", operation_id = "notifications_unread",
    responses((status = 200, body = UnreadCount)))]
pub async fn unread(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<UnreadCount>> {
    Ok(ApiJson(UnreadCount {
        unread: state.store().unread_count(caller.user_id).await?,
    }))
}

/// Mark one of the caller's notifications read (204; 404 when it is not theirs).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications", operation_id = "notifications_read",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    mark_read(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a notification of the caller read (reading it twice is fine).
pub async fn mark_read(state: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    if !state.store().notification_owned(caller.user_id, id).await? {
        return Err(ApiError::NotFound(format!("you have no notification {id}")));
    }
    state
        .store()
        .notification_read(caller.user_id, id, state.now_ms())
        .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Marked {
    pub marked: u64,
}

/// Mark all the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications", operation_id = "notifications_read_all",
    responses((status = 200, body = Marked)))]
pub async fn read_all(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Marked>> {
    Ok(ApiJson(Marked {
        marked: state
            .store()
            .notifications_read_all(caller.user_id, state.now_ms())
            .await?,
    }))
}

// ---------------------------------------------------------------------------------------
// Webhook targets

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub id: i64,
    pub name: String,
    /// `wecom`, `dingtalk` or `feishu`.
    pub format: String,
    /// `markdown` or `text` (WeCom, DingTalk); `post`, `text` or `interactive` (Feishu).
    pub msg_type: String,
    /// The address with its key masked.
    pub url_hint: String,
    /// Whether messages are signed (the secret itself is never shown).
    pub signed: bool,
    /// Alert kinds it receives; empty: all.
    pub kinds: Vec<String>,
    pub org_unit_id: Option<i64>,
    pub active: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<TargetRow> for TargetView {
    fn from(t: TargetRow) -> Self {
        TargetView {
            id: t.id,
            name: t.name,
            format: t.format,
            msg_type: t.msg_type,
            url_hint: t.url_hint,
            signed: t.secret_enc.is_some(),
            kinds: t.kinds,
            org_unit_id: t.org_unit_id,
            active: t.active,
            created_at_ms: t.created_at_ms,
            updated_at_ms: t.updated_at_ms,
        }
    }
}

/// Every webhook target.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "notifications", operation_id = "webhooks_list",
    responses((status = 200, body = [TargetView])))]
pub async fn targets(State(state): State<AppState>) -> ApiResult<ApiJson<Vec<TargetView>>> {
    Ok(ApiJson(
        state
            .store()
            .webhook_targets()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TargetCreate {
    pub name: String,
    /// `wecom`, `dingtalk` or `feishu`.
    pub format: String,
    /// Default: `markdown` (WeCom, DingTalk) or `post` (Feishu).
    pub msg_type: Option<String>,
    /// The bot's webhook address (it carries the bot's key; stored encrypted).
    pub url: String,
    /// DingTalk / Feishu signing secret (stored encrypted).
    pub secret: Option<String>,
    /// Alert kinds to send; absent or empty: all.
    pub kinds: Option<Vec<String>>,
    /// Only alerts of this org unit and the units below it.
    pub org_unit_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

/// Add a group-bot webhook target.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "notifications", operation_id = "webhooks_create",
    request_body = TargetCreate,
    responses((status = 201, body = Created),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<TargetCreate>,
) -> ApiResult<Response> {
    let id = svc::create_target(
        &state,
        &caller,
        &TargetInput {
            name: b.name,
            format: b.format,
            msg_type: b.msg_type.unwrap_or_default(),
            url: b.url,
            secret: b.secret.unwrap_or_default(),
            kinds: b.kinds.unwrap_or_default(),
            org_unit_id: b.org_unit_id,
        },
    )
    .await?;
    Ok(recorded(
        (StatusCode::CREATED, axum::Json(Created { id })).into_response(),
    ))
}

fn recorded(mut r: Response) -> Response {
    r.extensions_mut().insert(AuditNote {
        recorded: true,
        ..Default::default()
    });
    r
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub at_ms: i64,
    pub http_status: Option<i64>,
    pub ok: bool,
    /// The bot's answer (shortened) or the error.
    pub detail: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: i64,
    /// `pending`, `sent` or `failed` (given up after the last attempt).
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub log: Vec<AttemptView>,
}

pub async fn delivery_view(state: &AppState, d: DeliveryRow) -> Result<DeliveryView, ApiError> {
    let log = state
        .store()
        .delivery_attempts(d.id)
        .await?
        .into_iter()
        .map(|a| AttemptView {
            attempt: a.attempt,
            at_ms: a.at_ms,
            http_status: a.http_status,
            ok: a.ok,
            detail: a.detail,
            duration_ms: a.duration_ms,
        })
        .collect();
    Ok(DeliveryView {
        id: d.id,
        event_id: d.event_id,
        state: d.state,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at_ms: d.created_at_ms,
        sent_at_ms: d.sent_at_ms,
        log,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetDetail {
    #[serde(flatten)]
    pub target: TargetView,
    /// The latest 50 deliveries with every attempt.
    pub deliveries: Vec<DeliveryView>,
}

/// One webhook target with its delivery log.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "notifications", operation_id = "webhooks_get",
    params(("id" = i64, Path)),
    responses((status = 200, body = TargetDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn target(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<ApiJson<TargetDetail>> {
    let t = state
        .store()
        .webhook_target(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook target {id}")))?;
    let mut deliveries = Vec::new();
    for d in state.store().deliveries(Some(id), 50).await? {
        deliveries.push(delivery_view(&state, d).await?);
    }
    Ok(ApiJson(TargetDetail {
        target: t.into(),
        deliveries,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TargetPatch {
    pub msg_type: Option<String>,
    pub url: Option<String>,
    /// An empty string removes the secret.
    pub secret: Option<String>,
    pub kinds: Option<Vec<String>>,
    /// `null` is not distinguishable from absent here; use `clear_org_unit`.
    pub org_unit_id: Option<i64>,
    pub clear_org_unit: Option<bool>,
    pub active: Option<bool>,
}

/// Change a webhook target (absent fields stay as they are).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "notifications", operation_id = "webhooks_patch",
    params(("id" = i64, Path)), request_body = TargetPatch,
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<TargetPatch>,
) -> ApiResult<Response> {
    let org_unit_id = if b.clear_org_unit == Some(true) {
        Some(None)
    } else {
        b.org_unit_id.map(Some)
    };
    svc::update_target(
        &state,
        &caller,
        id,
        &TargetChange {
            msg_type: b.msg_type,
            url: b.url,
            secret: b.secret,
            kinds: b.kinds,
            org_unit_id,
            active: b.active,
        },
    )
    .await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    pub delivery_id: i64,
}

/// Queue a test message to a target (sent by the job worker; see its delivery log).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "notifications", operation_id = "webhooks_test",
    params(("id" = i64, Path)),
    responses((status = 202, body = TestQueued), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let delivery_id = svc::send_test(&state, &caller, id).await?;
    Ok(recorded(
        (StatusCode::ACCEPTED, axum::Json(TestQueued { delivery_id })).into_response(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ManagerBody {
    /// The manager; absent or null: the unit has none.
    pub user_id: Option<i64>,
}

/// Set the manager of an org unit: exception alerts about work owned in the unit (or in
/// units below it without a manager of their own) go to this person.
#[utoipa::path(put, path = "/api/v1/org-units/{id}/manager", tag = "organisation", operation_id = "org_units_manager",
    params(("id" = i64, Path)), request_body = ManagerBody,
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_manager(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<ManagerBody>,
) -> ApiResult<Response> {
    svc::set_manager(&state, &caller, id, b.user_id).await?;
    Ok(recorded(StatusCode::NO_CONTENT.into_response()))
}
