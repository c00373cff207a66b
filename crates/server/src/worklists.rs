//! Each user's worklists (issue #6 item 3), shared by the API and the `/tasks` tabs:
//!
//! * **To do (待办)**: steps waiting for one of the user's roles or for them personally,
//!   oldest first, each with its due time (the node's escalation limit, else its reminder)
//!   and how long it is overdue.
//! * **Done (已办)**: instances the user acted on, their latest action first, with where
//!   each is now.
//! * **Watched (关注)**: instances the user follows, with the changes since they last
//!   looked; watchers also receive the exception alerts of what they watch. A user may
//!   watch what they may read: an application in their data scope, or any instance with
//!   `workflow.read`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::workflow as wf;
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_store::workflow::InstanceRow;

const HOUR: i64 = 3_600_000;

/// What a worklist row says about its instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemHead {
    pub instance_id: i64,
    pub workflow: String,
    pub subject_type: String,
    pub subject_id: i64,
    /// The application's reference, for applications.
    pub subject_ref: Option<String>,
    /// Where the instance is now.
    pub node: String,
    pub node_name: String,
    pub node_name_en: Option<String>,
    /// `running` or `finished`.
    pub status: String,
    pub outcome: Option<String>,
    pub version: i64,
}

/// A to-do item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TodoItem {
    #[serde(flatten)]
    pub head: ItemHead,
    /// The role the step waits for, or `None` when it waits for you personally.
    pub role: Option<String>,
    pub waiting_since_ms: i64,
    /// When the node's escalation limit (else its reminder) passes; `None` without a limit.
    pub due_at_ms: Option<i64>,
    /// Past the due time.
    pub overdue: bool,
    /// How long past the due time (0 when not overdue).
    pub overdue_ms: i64,
}

/// An item the user acted on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DoneItem {
    #[serde(flatten)]
    pub head: ItemHead,
    /// The user's latest action on it, where and when.
    pub my_action: String,
    pub my_node: String,
    pub my_node_name: String,
    pub my_node_name_en: Option<String>,
    pub acted_at_ms: i64,
    pub my_detail: Option<String>,
}

/// A watched item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WatchItem {
    #[serde(flatten)]
    pub head: ItemHead,
    pub watched_at_ms: i64,
    pub seen_at_ms: i64,
    /// Steps since the user last marked it seen.
    pub changes: i64,
    pub last_action: Option<String>,
    pub last_at_ms: Option<i64>,
}

async fn node_names(
    state: &AppState,
    row: &InstanceRow,
    node: &str,
) -> Result<
    (
        String,
        Option<String>,
        Option<zhudai_workflow::definition::SlaSpec>,
    ),
    ApiError,
> {
    let def = wf::definition(state.store(), &row.definition_code, row.definition_version).await?;
    Ok(match def.node_index(node).map(|i| &def.nodes[i].spec) {
        Some(n) => (n.name.clone(), n.name_en.clone(), n.sla),
        None => (node.to_owned(), None, None),
    })
}

async fn head(state: &AppState, row: &InstanceRow) -> Result<ItemHead, ApiError> {
    let (name, name_en, _) = node_names(state, row, &row.node).await?;
    let subject_ref = if row.subject_type == "application" {
        state
            .store()
            .application(row.subject_id)
            .await?
            .map(|a| a.ref_)
    } else {
        None
    };
    Ok(ItemHead {
        instance_id: row.id,
        workflow: row.definition_code.clone(),
        subject_type: row.subject_type.clone(),
        subject_id: row.subject_id,
        subject_ref,
        node: row.node.clone(),
        node_name: name,
        node_name_en: name_en,
        status: row.status.clone(),
        outcome: row.outcome.clone(),
        version: row.version,
    })
}

/// The caller's to-do list, oldest step first.
pub async fn todo(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<TodoItem>, ApiError> {
    let rows = state
        .store()
        .worklist(&caller.roles, caller.user_id, limit)
        .await?;
    let now = state.now_ms();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (_, _, sla) = node_names(state, &r, &r.node).await?;
        let due = sla
            .and_then(|s| s.escalate_after_hours.or(s.remind_after_hours))
            .map(|h| r.node_entered_at_ms + i64::from(h) * HOUR);
        let overdue_ms = due.map_or(0, |d| (now - d).max(0));
        out.push(TodoItem {
            head: head(state, &r).await?,
            role: r.assignee_role.clone(),
            waiting_since_ms: r.node_entered_at_ms,
            due_at_ms: due,
            overdue: due.is_some_and(|d| now > d),
            overdue_ms,
        });
    }
    Ok(out)
}

/// What the caller acted on, newest first.
pub async fn done(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<DoneItem>, ApiError> {
    let rows = state.store().done_list(caller.user_id, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        let (my_name, my_name_en, _) = node_names(state, &d.instance, &d.at_node).await?;
        out.push(DoneItem {
            head: head(state, &d.instance).await?,
            my_action: d.action,
            my_node: d.at_node,
            my_node_name: my_name,
            my_node_name_en: my_name_en,
            acted_at_ms: d.at_ms,
            my_detail: d.detail,
        });
    }
    Ok(out)
}

/// What the caller watches, the most recently changed first.
pub async fn watched(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<WatchItem>, ApiError> {
    let rows = state.store().watched(caller.user_id, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for w in rows {
        out.push(WatchItem {
            head: head(state, &w.instance).await?,
            watched_at_ms: w.watched_at_ms,
            seen_at_ms: w.seen_at_ms,
            changes: w.changes,
            last_action: w.last_action,
            last_at_ms: w.last_at_ms,
        });
    }
    Ok(out)
}

/// The instance `id` if the caller may read it: an application in their data scope, or
/// any instance with `workflow.read` (404 unknown, 403 outside).
pub async fn readable(state: &AppState, caller: &Caller, id: i64) -> Result<InstanceRow, ApiError> {
    let row = state
        .store()
        .instance(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow instance {id}")))?;
    if caller.can("workflow.read") {
        return Ok(row);
    }
    if row.subject_type == "application" && caller.can("application.read") {
        crate::applications::load(state, caller, row.subject_id).await?;
        return Ok(row);
    }
    Err(ApiError::Forbidden(
        "you may not read this workflow instance".into(),
    ))
}

/// Adds instance `id` to the caller's watch list; false when it was there already.
pub async fn watch(state: &AppState, caller: &Caller, id: i64) -> Result<bool, ApiError> {
    readable(state, caller, id).await?;
    Ok(state
        .store()
        .watch(caller.user_id, id, state.now_ms())
        .await?)
}

/// Removes instance `id` from the caller's watch list; false when it was not there.
pub async fn unwatch(state: &AppState, caller: &Caller, id: i64) -> Result<bool, ApiError> {
    Ok(state.store().unwatch(caller.user_id, id).await?)
}
