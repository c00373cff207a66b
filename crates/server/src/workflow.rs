//! Running workflows: compiled definitions cached by (code, version), instances started
//! and advanced inside the caller's transaction with an optimistic version check (two
//! people acting at the same instant on one step: one wins, the other gets 409), every
//! step written to the instance history and to the audit trail in the same transaction.

use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use zhudai_expr::Record;
use zhudai_store::batch::Batch;
use zhudai_store::workflow::{
    definition_insert, instance_insert, instance_update_stmt, step_append, step_insert_stmt,
    InstanceRow, InstanceUpdate, NewStep,
};
use zhudai_store::Store;
use zhudai_workflow::engine::current_assignee;
use zhudai_workflow::{Action, Actor, Definition, InstanceState, Problem, Refusal, Status};

type Cache = Mutex<HashMap<(String, i64), Arc<Definition>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// SHA-256 of a definition's source.
pub fn digest(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// Problems of a definition as field errors (`path` as the field).
pub fn problems_to_fields(problems: Vec<Problem>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|p| FieldError::new(p.path, p.code, p.message))
        .collect()
}

/// The compiled definition `code` at `version` (cached; definitions never change).
pub async fn definition(
    store: &Store,
    code: &str,
    version: i64,
) -> Result<Arc<Definition>, ApiError> {
    let key = (code.to_owned(), version);
    if let Some(d) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(d);
    }
    let row = store
        .definition_version(code, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow `{code}` version {version}")))?;
    let def = Definition::from_toml(&row.source).map_err(|p| {
        ApiError::Internal(format!(
            "stored workflow `{code}` v{version} no longer compiles: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let def = Arc::new(def);
    if let Ok(mut c) = cache().lock() {
        c.insert(key, def.clone());
    }
    Ok(def)
}

/// The newest version of `code`.
pub async fn latest(store: &Store, code: &str) -> Result<(i64, Arc<Definition>), ApiError> {
    let row = store
        .definition_latest(code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow `{code}` is installed")))?;
    Ok((row.version, definition(store, code, row.version).await?))
}

/// Checks `source` and stores it as the next version of its code. Returns (code,
/// version), or every problem as a field error.
pub async fn install(
    store: &Store,
    source: &str,
    created_by: Option<i64>,
    now_ms: i64,
) -> Result<(String, i64), ApiError> {
    let def =
        Definition::from_toml(source).map_err(|p| ApiError::Validation(problems_to_fields(p)))?;
    let mut tx = store.begin().await?;
    let version = definition_insert(
        &mut tx,
        &def.spec.code,
        &def.spec.name,
        source,
        &digest(source),
        created_by,
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok((def.spec.code.clone(), version))
}

/// Installs the default origination flow as version 1 when no version exists, and the
/// bundled flow as a new version when a newer release ships a changed one and the latest
/// version is still the system's (nobody edited the flow since). An edited flow belongs
/// to its editor and is left alone. Running instances stay on their version either way.
pub async fn ensure_defaults(store: &Store, now_ms: i64) -> Result<(), ApiError> {
    let bundled = digest(zhudai_workflow::ORIGINATION);
    let stale = match store.definition_latest("origination").await? {
        None => true,
        Some(latest) => latest.created_by.is_none() && latest.digest != bundled,
    };
    if !stale {
        return Ok(());
    }
    match install(store, zhudai_workflow::ORIGINATION, None, now_ms).await {
        Ok((_, version)) => {
            tracing::info!(version, "installed the bundled origination flow");
            Ok(())
        }
        // Two instances starting at once: the other one installed it.
        Err(ApiError::Internal(_))
            if store
                .definition_latest("origination")
                .await?
                .is_some_and(|l| l.digest == bundled) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn state_json(st: &InstanceState) -> Result<String, ApiError> {
    serde_json::to_string(st).map_err(ApiError::internal)
}

pub fn parse_state(row: &InstanceRow) -> Result<InstanceState, ApiError> {
    serde_json::from_str(&row.state)
        .map_err(|e| ApiError::Internal(format!("instance {} has a damaged state: {e}", row.id)))
}

fn assignee(def: &Definition, st: &InstanceState) -> (Option<String>, Option<i64>) {
    current_assignee(def, st).unwrap_or((None, None))
}

/// Starts an instance of the newest `code` for a subject, inside `tx`.
pub async fn start_in(
    tx: &mut zhudai_store::sqlx::AnyConnection,
    store: &Store,
    code: &str,
    subject_type: &str,
    subject_id: i64,
    now_ms: i64,
) -> Result<i64, ApiError> {
    let (version, def) = latest(store, code).await?;
    let st = zhudai_workflow::start(&def);
    let (role, _) = assignee(&def, &st);
    let id = instance_insert(
        &mut *tx,
        code,
        version,
        subject_type,
        subject_id,
        &st.node,
        &state_json(&st)?,
        role.as_deref(),
        now_ms,
    )
    .await?;
    step_append(tx, id, now_ms, None, "start", "", &st.node, None).await?;
    Ok(id)
}

/// Maps an engine refusal to the HTTP answer.
pub fn refusal(r: Refusal) -> ApiError {
    if r.is_forbidden() {
        ApiError::Forbidden(r.to_string())
    } else {
        match r {
            Refusal::ReasonRequired => ApiError::field("reason", r.code(), r.to_string()),
            Refusal::Guard(_) | Refusal::NoChain(_) | Refusal::Loop | Refusal::UnknownNode(_) => {
                ApiError::Internal(r.to_string())
            }
            _ => ApiError::Conflict(r.to_string()),
        }
    }
}

/// The outcome of an action.
#[derive(Debug, Clone)]
pub struct Acted {
    pub node: String,
    pub finished: Option<String>,
    pub version: i64,
    /// Every node entered by this action, in order (automatic nodes included).
    pub visited: Vec<String>,
}

/// Applies `action` by `caller` (or the system) to instance `id`, which the caller read
/// at `expected_version`, with `facts`. Everything is written in `tx` (the caller
/// commits): the new state with a version check, the steps, an audit record per step.
#[allow(clippy::too_many_arguments)] // the act, who, on what, with which facts
pub async fn act_in(
    tx: &mut zhudai_store::sqlx::AnyConnection,
    store: &Store,
    caller: Option<&Caller>,
    id: i64,
    expected_version: Option<i64>,
    action: &Action,
    facts: &Record,
    now_ms: i64,
) -> Result<Acted, ApiError> {
    let row = store
        .instance(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow instance {id}")))?;
    act_on(
        tx,
        store,
        caller,
        &row,
        expected_version,
        action,
        facts,
        now_ms,
    )
    .await
}

/// [`act_in`] on an instance the caller has just read. The instance's update checks
/// its version, so an action taken meanwhile by anyone else makes this one a conflict.
#[allow(clippy::too_many_arguments)]
pub async fn act_on(
    tx: &mut zhudai_store::sqlx::AnyConnection,
    store: &Store,
    caller: Option<&Caller>,
    row: &InstanceRow,
    expected_version: Option<i64>,
    action: &Action,
    facts: &Record,
    now_ms: i64,
) -> Result<Acted, ApiError> {
    let id = row.id;
    let version = expected_version.unwrap_or(row.version);
    if version != row.version {
        return Err(ApiError::Conflict(format!(
            "this item changed since you opened it (version {version}, now {}); reload it",
            row.version
        )));
    }
    let def = definition(store, &row.definition_code, row.definition_version).await?;
    let st = parse_state(row)?;
    let actor = match caller {
        Some(c) => Actor {
            user_id: c.user_id,
            roles: c.roles.clone(),
        },
        None => Actor::system(),
    };
    let applied = zhudai_workflow::apply(&def, &st, &actor, action, facts).map_err(refusal)?;
    let new = applied.state;
    let (role, user) = assignee(&def, &new);
    let (finished, outcome) = match &new.status {
        Status::Finished { outcome } => (true, Some(outcome.clone())),
        Status::Running => (false, None),
    };
    // Two round trips, whatever the number of steps: the instance's update (with its
    // version check), the steps and the audit head's reservation; then the sealed audit
    // records (one per step) and the head.
    let update = InstanceUpdate {
        node: &new.node,
        finished,
        outcome: outcome.as_deref(),
        state: &state_json(&new)?,
        assignee_role: role.as_deref(),
        assignee_user: user,
        submitter: new.submitter,
        node_changed: new.node != st.node || new.path.len() != st.path.len(),
    };
    let mut first = Batch::new();
    let updated = first.push(instance_update_stmt(id, version, &update, now_ms));
    for s in &applied.steps {
        first.push(step_insert_stmt(&NewStep {
            instance_id: id,
            at_ms: now_ms,
            actor: (s.actor != 0).then_some(s.actor),
            action: &s.action,
            from_node: &s.from_node,
            to_node: &s.to_node,
            detail: s.detail.as_deref(),
            level: s
                .level
                .zip(s.level_role.as_deref())
                .map(|(l, r)| (i64::from(l), r)),
        }));
    }
    let head = first.push(zhudai_store::audit::head_reserve_stmt(store.backend()));
    let rows = first.run(tx).await?;
    if rows.get(updated).is_none_or(Vec::is_empty) {
        return Err(ApiError::Conflict(
            "someone else acted on this item at the same moment; reload it".into(),
        ));
    }
    let head = rows.get(head).map(Vec::as_slice).unwrap_or_default();
    let mut records = Batch::new();
    let mut last = None;
    for s in &applied.steps {
        let mut draft = zhudai_store::audit::AuditDraft::new(
            now_ms,
            format!("workflow.{}", s.action.split(':').next().unwrap_or("step")),
            "success",
        )
        .target(format!("{}:{}", row.subject_type, row.subject_id))
        .reason(format!(
            "{} → {}{}",
            s.from_node,
            s.to_node,
            s.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
        if let Some(c) = caller {
            draft = draft.actor(c.username.clone()).role(c.roles.join(","));
        } else {
            draft = draft.actor("system");
        }
        let record = match &last {
            None => zhudai_store::audit::seal_after(head, &draft)?,
            Some(prev) => zhudai_store::audit::seal_next(prev, &draft),
        };
        records.extend(zhudai_store::audit::record_stmts(&record));
        last = Some(record);
    }
    if !records.is_empty() {
        records.run(tx).await?;
    }
    Ok(Acted {
        node: new.node,
        finished: outcome,
        version: version + 1,
        visited: applied.steps.iter().map(|s| s.to_node.clone()).collect(),
    })
}

/// The job kind of the time-limit scan.
pub const SLA_JOB: &str = "workflow.sla";
const SLA_PERIOD_MS: i64 = 5 * 60_000;

/// What one time-limit scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaReport {
    pub reminders: usize,
    pub breaches: usize,
    pub returned: usize,
    pub stuck: usize,
    // --- Exception alerts (issue #6 item 3) ---
    /// Submitted instances found with no step for the stuck limit.
    pub idle: usize,
    /// Routing runs found hanging (`running` with no change for ten minutes).
    pub hung_runs: usize,
    /// Exception alerts raised to managers (each once).
    pub notified: usize,
}

// --- Exception alerts (issue #6 item 3) ---

/// What the exception scan looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionPolicy {
    /// A submitted instance with no step for this long is stuck.
    pub stuck_after_ms: i64,
}

impl Default for ExceptionPolicy {
    fn default() -> Self {
        ExceptionPolicy {
            stuck_after_ms: 48 * 3_600_000,
        }
    }
}

impl ExceptionPolicy {
    pub fn from_settings(s: &crate::state::ServerSettings) -> Self {
        ExceptionPolicy {
            stuck_after_ms: i64::from(s.workflow_stuck_after_hours.max(1)) * 3_600_000,
        }
    }
}

/// A routing run `running` without change for this long has lost its worker or its funder
/// hangs (funder calls time out in seconds).
pub const ROUTING_RUN_STALE_MS: i64 = 10 * 60_000;

/// Raises an exception for `row` to its owner's manager; true when it is new.
async fn notify_exception(
    store: &Store,
    row: &InstanceRow,
    kind: crate::notify::Kind,
    waited_ms: i64,
    limit_ms: Option<i64>,
    detail: String,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let raised = crate::notify::raise(
        store,
        &crate::notify::Exception {
            kind,
            instance: Some(row),
            subject: None,
            owner_user: None,
            waited_ms: Some(waited_ms),
            limit_ms,
            detail: (!detail.is_empty()).then_some(detail),
            raised_by: "system",
            dedupe_key: format!("{}:{}:{}", kind.as_str(), row.id, row.node_entered_at_ms),
        },
        now_ms,
    )
    .await?;
    Ok(raised.is_some())
}

/// [`check_time_limits_with`] the default exception policy.
pub async fn check_time_limits(store: &Store, now_ms: i64) -> Result<SlaReport, ApiError> {
    check_time_limits_with(store, now_ms, &ExceptionPolicy::default()).await
}

/// Checks the time limits of every running instance: raises a reminder and an SLA-breach
/// alert (once per node entry each) for the current assignee, and sends the `timeout`
/// action when a node's auto-return limit passed (an instance whose definition has no
/// timeout transition there is reported as stuck instead). Safe to run any number of
/// times and on several servers: alerts are unique per node entry and the action goes
/// through the instance's version check.
///
/// Exceptions (issue #6 item 3) go to the manager of the node's owner as notifications:
/// an SLA breach (at a wait node: a funder timeout), an instance stuck (no time-out path,
/// or no step for `policy.stuck_after_ms`), and routing runs that hang.
pub async fn check_time_limits_with(
    store: &Store,
    now_ms: i64,
    policy: &ExceptionPolicy,
) -> Result<SlaReport, ApiError> {
    let mut report = SlaReport::default();
    let hour = 3_600_000_i64;
    let waiting = store.instances_waiting_since(now_ms - hour, 5_000).await?;
    for row in waiting {
        let def = definition(store, &row.definition_code, row.definition_version).await?;
        let Some(sla) = def
            .node_index(&row.node)
            .and_then(|i| def.nodes[i].spec.sla)
        else {
            continue;
        };
        let waited = now_ms - row.node_entered_at_ms;
        let passed = |h: Option<u32>| h.is_some_and(|h| waited >= i64::from(h) * hour);
        let raise = |kind: &'static str, detail: String| {
            let row = row.clone();
            async move {
                zhudai_store::workflow::alert_raise(
                    store.writer(),
                    row.id,
                    &row.node,
                    row.node_entered_at_ms,
                    kind,
                    row.assignee_role.as_deref(),
                    row.assignee_user,
                    Some(&detail),
                    now_ms,
                )
                .await
            }
        };
        let hours = waited / hour;
        if passed(sla.remind_after_hours)
            && raise("remind", format!("waiting {hours} h at {}", row.node)).await?
        {
            report.reminders += 1;
        }
        if passed(sla.escalate_after_hours)
            && raise(
                "sla_breach",
                format!(
                    "{} h at {}: past the {} h limit",
                    hours,
                    row.node,
                    sla.escalate_after_hours.unwrap_or(0)
                ),
            )
            .await?
        {
            report.breaches += 1;
            // A wait for an outside event is a wait for the funder.
            let at_wait = def
                .node_index(&row.node)
                .is_some_and(|i| def.nodes[i].spec.kind == zhudai_workflow::NodeKind::Wait);
            let (kind, detail) = if at_wait {
                (
                    crate::notify::Kind::FunderTimeout,
                    funder_wait_detail(store, &row).await?,
                )
            } else {
                (crate::notify::Kind::SlaBreach, String::new())
            };
            if notify_exception(
                store,
                &row,
                kind,
                waited,
                sla.escalate_after_hours.map(|h| i64::from(h) * hour),
                detail,
                now_ms,
            )
            .await?
            {
                report.notified += 1;
            }
        }
        if passed(sla.auto_return_after_hours) {
            let facts = def.new_facts();
            let mut tx = store.begin().await?;
            match act_in(
                &mut tx,
                store,
                None,
                row.id,
                Some(row.version),
                &Action::Timeout,
                &facts,
                now_ms,
            )
            .await
            {
                Ok(_) => {
                    tx.commit().await?;
                    raise("auto_return", format!("returned after {hours} h")).await?;
                    report.returned += 1;
                }
                Err(ApiError::Conflict(_)) => {
                    tx.rollback().await?;
                    // Acted on meanwhile, or no timeout transition from this node.
                    if store
                        .instance(row.id)
                        .await?
                        .is_some_and(|r| r.version == row.version)
                        && raise("stuck", format!("no time-out path from {}", row.node)).await?
                    {
                        report.stuck += 1;
                        if notify_exception(
                            store,
                            &row,
                            crate::notify::Kind::Stuck,
                            waited,
                            sla.auto_return_after_hours.map(|h| i64::from(h) * hour),
                            format!("no time-out path from {}", row.node),
                            now_ms,
                        )
                        .await?
                        {
                            report.notified += 1;
                        }
                    }
                }
                Err(e) => {
                    tx.rollback().await?;
                    if raise("stuck", e.to_string()).await? {
                        report.stuck += 1;
                        if notify_exception(
                            store,
                            &row,
                            crate::notify::Kind::Stuck,
                            waited,
                            None,
                            e.to_string(),
                            now_ms,
                        )
                        .await?
                        {
                            report.notified += 1;
                        }
                    }
                }
            }
        }
    }
    // Instances that stopped moving (read after the time-outs above moved some on).
    for row in store
        .instances_idle_since(now_ms - policy.stuck_after_ms, 5_000)
        .await?
    {
        let idle = now_ms - row.updated_at_ms;
        zhudai_store::workflow::alert_raise(
            store.writer(),
            row.id,
            &row.node,
            row.node_entered_at_ms,
            "stuck",
            row.assignee_role.as_deref(),
            row.assignee_user,
            Some(&format!("no step for {} h", idle / hour)),
            now_ms,
        )
        .await?;
        if notify_exception(
            store,
            &row,
            crate::notify::Kind::Stuck,
            idle,
            Some(policy.stuck_after_ms),
            String::new(),
            now_ms,
        )
        .await?
        {
            report.idle += 1;
            report.notified += 1;
        }
    }
    // Routing runs whose advancer died or whose funder hangs.
    for (run, app_ref, funder, updated) in store
        .routing_runs_stale(now_ms - ROUTING_RUN_STALE_MS)
        .await?
    {
        let app = store.application_by_ref(&app_ref).await?;
        let inst = match &app {
            Some(a) => store.instance_of("application", a.id).await?,
            None => None,
        };
        let raised = crate::notify::raise(
            store,
            &crate::notify::Exception {
                kind: crate::notify::Kind::FunderTimeout,
                instance: inst.as_ref(),
                subject: app.as_ref().map(|a| ("application", a.id)),
                owner_user: None,
                waited_ms: Some(now_ms - updated),
                limit_ms: Some(ROUTING_RUN_STALE_MS),
                detail: Some(format!(
                    "routing run {run} has not moved{}",
                    funder
                        .as_deref()
                        .map(|f| format!(" (waiting for {f})"))
                        .unwrap_or_default()
                )),
                raised_by: "system",
                dedupe_key: format!("routing_run:{run}:{updated}"),
            },
            now_ms,
        )
        .await?;
        if raised.is_some() {
            report.hung_runs += 1;
            report.notified += 1;
        }
    }
    Ok(report)
}

/// What an application waiting for its funder is waiting on: the routing run's state and
/// funder.
async fn funder_wait_detail(store: &Store, row: &InstanceRow) -> Result<String, ApiError> {
    if row.subject_type != "application" {
        return Ok(String::new());
    }
    let Some(app) = store.application(row.subject_id).await? else {
        return Ok(String::new());
    };
    let Some(run_id) = app.routing_run_id else {
        return Ok("no routing run".to_owned());
    };
    Ok(match store.routing_run(run_id).await? {
        Some((run, _)) => format!(
            "routing run {run_id}: {}{}",
            run.state,
            run.funder_code
                .as_deref()
                .map(|f| format!(", {f}"))
                .unwrap_or_default()
        ),
        None => String::new(),
    })
}

async fn enqueue_sla(store: &Store, slot: i64, now_ms: i64) -> Result<(), ApiError> {
    store
        .enqueue(
            &zhudai_store::jobs::NewJob::new(
                SLA_JOB,
                serde_json::json!({ "slot": slot }),
                slot * SLA_PERIOD_MS,
            )
            .dedupe(&format!("{SLA_JOB}:{slot}")),
            now_ms,
        )
        .await?;
    Ok(())
}

/// Schedules the time-limit scan (every five minutes, once however many servers start).
pub async fn schedule(store: &Store, now_ms: i64) -> Result<(), ApiError> {
    enqueue_sla(store, now_ms.div_euclid(SLA_PERIOD_MS) + 1, now_ms).await
}

/// The job handler: schedules the next scan, then scans.
pub async fn run_sla_job(
    state: crate::state::AppState,
    _job: zhudai_store::jobs::Job,
) -> Result<(), String> {
    let now = state.now_ms();
    enqueue_sla(state.store(), now.div_euclid(SLA_PERIOD_MS) + 1, now)
        .await
        .map_err(|e| e.to_string())?;
    let policy = ExceptionPolicy::from_settings(state.settings());
    let r = check_time_limits_with(state.store(), now, &policy)
        .await
        .map_err(|e| e.to_string())?;
    if r != SlaReport::default() {
        tracing::info!(
            reminders = r.reminders,
            breaches = r.breaches,
            returned = r.returned,
            stuck = r.stuck,
            idle = r.idle,
            hung_runs = r.hung_runs,
            notified = r.notified,
            "workflow time limits"
        );
    }
    Ok(())
}
