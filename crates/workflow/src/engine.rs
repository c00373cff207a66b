//! Running an instance: a pure state machine. [`apply`] takes the definition, the
//! instance's state, who acts, what they do and the current facts, and returns the new
//! state with the history entries to record — or a refusal saying why. The engine itself
//! enforces four eyes and separation of duties: the submitter never approves, nobody
//! approves twice in one chain, only a holder of the level's role (or the person a task was
//! transferred or added to) may act, and a four-eyes task is never done by its submitter.
//! Persistence (with a version check so two simultaneous approvals give one outcome), the
//! job queue for time limits and the audit trail live in the outer layers.

use crate::definition::{ApprovalMode, Definition, LevelSpec, NodeKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use zhudai_expr::Record;

/// Where an instance is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    Running,
    Finished { outcome: String },
}

/// One level of the approval chain in force at the current node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub role: String,
    pub mode: ApprovalMode,
    pub count: u32,
    /// A specific person (after a transfer, or an added approver) instead of the role.
    pub user: Option<i64>,
    /// Approvals given at this level.
    pub approvals: Vec<i64>,
}

/// The state of one instance; stored as JSON beside the instance row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub node: String,
    pub status: Status,
    pub submitter: Option<i64>,
    /// The task of the current human node was transferred to this person.
    pub assigned_user: Option<i64>,
    /// The approval chain of the current approval node.
    pub levels: Vec<Level>,
    pub level: usize,
    /// Everyone who approved anything in this instance's current chain.
    pub approved_by: BTreeSet<i64>,
    /// Nodes visited, in order (a return goes back to one of these).
    pub path: Vec<String>,
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub roles: Vec<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            user_id: 0,
            roles: vec!["system".into()],
        }
    }

    fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// What an actor does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Leave the start node (the actor becomes the submitter).
    Submit,
    /// Finish a task.
    Complete,
    Approve,
    Reject {
        reason: String,
    },
    /// Send the instance back to a node it has visited.
    Return {
        to: String,
        reason: String,
    },
    /// Hand the current task or approval to a specific person.
    Transfer {
        to_user: i64,
    },
    /// Add an approver before or after the current level.
    AddApprover {
        user: i64,
        before: bool,
    },
    /// The submitter withdraws.
    Withdraw {
        reason: String,
    },
    /// An outside event (a funder's callback…).
    Event {
        name: String,
    },
    /// A time limit passed (the job queue sends this).
    Timeout,
    /// A comment; changes nothing but the history.
    Comment {
        text: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Complete => "complete",
            Action::Approve => "approve",
            Action::Reject { .. } => "reject",
            Action::Return { .. } => "return",
            Action::Transfer { .. } => "transfer",
            Action::AddApprover { .. } => "add_approver",
            Action::Withdraw { .. } => "withdraw",
            Action::Event { .. } => "event",
            Action::Timeout => "timeout",
            Action::Comment { .. } => "comment",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the instance is finished ({0})")]
    Finished(String),
    #[error("`{action}` is not possible at `{node}`")]
    NotHere { action: String, node: String },
    #[error("you do not hold the role `{0}` this step needs")]
    NotAssignee(String),
    #[error("this step was transferred to someone else")]
    AssignedToOther,
    #[error("the person who submitted may not approve or verify it (four eyes)")]
    Submitter,
    #[error("you already approved in this chain; a second person must decide")]
    Twice,
    #[error("only the person who submitted may withdraw it")]
    NotSubmitter,
    #[error("`{0}` is not a node this instance has passed through")]
    NotVisited(String),
    #[error("a reason is required")]
    ReasonRequired,
    #[error("no transition applies from `{node}` on `{on}`: every guard was false")]
    NoTransition { node: String, on: String },
    #[error("a guard could not be evaluated: {0}")]
    Guard(String),
    #[error("no approval-chain rule matches these facts at `{0}`")]
    NoChain(String),
    #[error("the instance moved through more than 64 automatic steps: the definition loops")]
    Loop,
    #[error("the definition has no node `{0}`")]
    UnknownNode(String),
}

impl Refusal {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Finished(_) => "finished",
            Refusal::NotHere { .. } => "not_here",
            Refusal::NotAssignee(_) => "not_assignee",
            Refusal::AssignedToOther => "assigned_to_other",
            Refusal::Submitter => "four_eyes",
            Refusal::Twice => "approved_twice",
            Refusal::NotSubmitter => "not_submitter",
            Refusal::NotVisited(_) => "not_visited",
            Refusal::ReasonRequired => "reason_required",
            Refusal::NoTransition { .. } => "no_transition",
            Refusal::Guard(_) => "guard_error",
            Refusal::NoChain(_) => "no_chain",
            Refusal::Loop => "loop",
            Refusal::UnknownNode(_) => "unknown_node",
        }
    }

    /// A refusal of who may act (403) rather than of what (409/422).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Refusal::NotAssignee(_)
                | Refusal::AssignedToOther
                | Refusal::Submitter
                | Refusal::Twice
                | Refusal::NotSubmitter
        )
    }
}

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub actor: i64,
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    pub detail: Option<String>,
    /// An approver's decision at an approval node: the chain level it was taken at
    /// (1-based) and that level's role (for approval rates per level).
    #[serde(default)]
    pub level: Option<u32>,
    #[serde(default)]
    pub level_role: Option<String>,
}

/// The result of an accepted action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub state: InstanceState,
    pub steps: Vec<Step>,
}

/// A new instance at the start node.
pub fn start(def: &Definition) -> InstanceState {
    let id = def.nodes[def.start].spec.id.clone();
    InstanceState {
        node: id.clone(),
        status: Status::Running,
        submitter: None,
        assigned_user: None,
        levels: Vec::new(),
        level: 0,
        approved_by: BTreeSet::new(),
        path: vec![id],
    }
}

fn idx(def: &Definition, id: &str) -> Result<usize, Refusal> {
    def.node_index(id)
        .ok_or_else(|| Refusal::UnknownNode(id.to_owned()))
}

fn guard_ok(g: &Option<crate::definition::Guard>, facts: &Record) -> Result<bool, Refusal> {
    match g {
        None => Ok(true),
        Some(g) => g
            .condition
            .eval(facts)
            .map_err(|e| Refusal::Guard(format!("`{}`: {e}", g.source))),
    }
}

/// The first transition from `node` on `on` whose guard holds.
fn pick(def: &Definition, node: usize, on: &str, facts: &Record) -> Result<usize, Refusal> {
    for t in def
        .transitions
        .iter()
        .filter(|t| t.from == node && t.on == on)
    {
        if guard_ok(&t.guard, facts)? {
            return Ok(t.to);
        }
    }
    Err(Refusal::NoTransition {
        node: def.nodes[node].spec.id.clone(),
        on: on.to_owned(),
    })
}

fn chain_for(def: &Definition, node: usize, facts: &Record) -> Result<Vec<Level>, Refusal> {
    for rule in &def.nodes[node].chain {
        if guard_ok(&rule.when, facts)? {
            return Ok(rule.levels.iter().map(level_of).collect());
        }
    }
    Err(Refusal::NoChain(def.nodes[node].spec.id.clone()))
}

fn level_of(l: &LevelSpec) -> Level {
    Level {
        role: l.role.clone(),
        mode: l.mode,
        count: match l.mode {
            ApprovalMode::OneOf => 1,
            ApprovalMode::AllOf => l.count.unwrap_or(2),
        },
        user: None,
        approvals: Vec::new(),
    }
}

/// Moves to node `to`, then follows automatic nodes as far as they go.
#[allow(clippy::too_many_arguments)] // the step's cause (actor, action, detail) travels with it
fn enter(
    def: &Definition,
    st: &mut InstanceState,
    to: usize,
    actor: i64,
    action: &str,
    detail: Option<String>,
    facts: &Record,
    steps: &mut Vec<Step>,
) -> Result<(), Refusal> {
    let mut to = to;
    let mut action = action.to_owned();
    let mut detail = detail;
    for _ in 0..64 {
        let from = st.node.clone();
        let node = &def.nodes[to];
        st.node = node.spec.id.clone();
        st.path.push(st.node.clone());
        st.assigned_user = None;
        st.levels.clear();
        st.level = 0;
        steps.push(Step {
            actor,
            action: action.clone(),
            from_node: from,
            to_node: st.node.clone(),
            detail: detail.take(),
            level: None,
            level_role: None,
        });
        match node.spec.kind {
            NodeKind::End => {
                st.status = Status::Finished {
                    outcome: node.spec.outcome.clone().unwrap_or_default(),
                };
                return Ok(());
            }
            NodeKind::Approval => {
                st.levels = chain_for(def, to, facts)?;
                st.approved_by.clear();
                return Ok(());
            }
            NodeKind::Automatic => {
                to = pick(def, to, "auto", facts)?;
                action = "auto".into();
            }
            NodeKind::Task | NodeKind::Wait => return Ok(()),
        }
    }
    Err(Refusal::Loop)
}

fn may_act_on_human_node(
    def: &Definition,
    st: &InstanceState,
    node: usize,
    actor: &Actor,
) -> Result<(), Refusal> {
    let spec = &def.nodes[node].spec;
    if let Some(u) = st.assigned_user {
        if u != actor.user_id {
            return Err(Refusal::AssignedToOther);
        }
    } else if let Some(a) = &spec.assignee {
        if a.role == "submitter" {
            if st.submitter.is_some() && st.submitter != Some(actor.user_id) {
                return Err(Refusal::NotSubmitter);
            }
        } else if !actor.has(&a.role) {
            return Err(Refusal::NotAssignee(a.role.clone()));
        }
    }
    if spec.four_eyes && st.submitter == Some(actor.user_id) {
        return Err(Refusal::Submitter);
    }
    Ok(())
}

/// Records on the first step of an action (the approver's own) the chain level (0-based
/// `lv`) and role it was decided at.
fn mark_level(steps: &mut [Step], lv: usize, role: &str) {
    if let Some(s) = steps.first_mut() {
        s.level = u32::try_from(lv + 1).ok();
        s.level_role = Some(role.to_owned());
    }
}

/// Applies `action` by `actor` to an instance in state `st` with the current `facts`.
pub fn apply(
    def: &Definition,
    st: &InstanceState,
    actor: &Actor,
    action: &Action,
    facts: &Record,
) -> Result<Applied, Refusal> {
    if let Status::Finished { outcome } = &st.status {
        return Err(Refusal::Finished(outcome.clone()));
    }
    let mut st = st.clone();
    let mut steps = Vec::new();
    let here = idx(def, &st.node)?;
    let kind = def.nodes[here].spec.kind;
    let not_here = || Refusal::NotHere {
        action: action.name().to_owned(),
        node: def.nodes[here].spec.id.clone(),
    };
    match action {
        Action::Comment { text } => {
            steps.push(Step {
                actor: actor.user_id,
                action: "comment".into(),
                from_node: st.node.clone(),
                to_node: st.node.clone(),
                detail: Some(text.clone()),
                level: None,
                level_role: None,
            });
        }
        Action::Submit => {
            if here != def.start {
                return Err(not_here());
            }
            may_act_on_human_node(def, &st, here, actor)?;
            st.submitter = Some(actor.user_id);
            let to = pick(def, here, "submit", facts)?;
            enter(
                def,
                &mut st,
                to,
                actor.user_id,
                "submit",
                None,
                facts,
                &mut steps,
            )?;
        }
        Action::Complete => {
            if kind != NodeKind::Task {
                return Err(not_here());
            }
            may_act_on_human_node(def, &st, here, actor)?;
            let to = pick(def, here, "complete", facts)?;
            enter(
                def,
                &mut st,
                to,
                actor.user_id,
                "complete",
                None,
                facts,
                &mut steps,
            )?;
        }
        Action::Approve | Action::Reject { .. } => {
            if kind == NodeKind::Task {
                // A task may offer approve/reject transitions (e.g. verification).
                may_act_on_human_node(def, &st, here, actor)?;
                let (on, detail) = match action {
                    Action::Reject { reason } => {
                        if reason.trim().is_empty() {
                            return Err(Refusal::ReasonRequired);
                        }
                        ("reject", Some(reason.clone()))
                    }
                    _ => ("approve", None),
                };
                let to = pick(def, here, on, facts)?;
                enter(
                    def,
                    &mut st,
                    to,
                    actor.user_id,
                    on,
                    detail,
                    facts,
                    &mut steps,
                )?;
                return Ok(Applied { state: st, steps });
            }
            if kind != NodeKind::Approval {
                return Err(not_here());
            }
            if st.submitter == Some(actor.user_id) {
                return Err(Refusal::Submitter);
            }
            let Some(level) = st.levels.get(st.level).cloned() else {
                return Err(not_here());
            };
            match level.user {
                Some(u) if u != actor.user_id => return Err(Refusal::AssignedToOther),
                Some(_) => {}
                None if !actor.has(&level.role) => {
                    return Err(Refusal::NotAssignee(level.role.clone()))
                }
                None => {}
            }
            if st.approved_by.contains(&actor.user_id) {
                return Err(Refusal::Twice);
            }
            if let Action::Reject { reason } = action {
                if reason.trim().is_empty() {
                    return Err(Refusal::ReasonRequired);
                }
                let lv = st.level;
                let to = pick(def, here, "reject", facts)?;
                enter(
                    def,
                    &mut st,
                    to,
                    actor.user_id,
                    "reject",
                    Some(reason.clone()),
                    facts,
                    &mut steps,
                )?;
                mark_level(&mut steps, lv, &level.role);
                return Ok(Applied { state: st, steps });
            }
            st.approved_by.insert(actor.user_id);
            let lv = st.level;
            st.levels[lv].approvals.push(actor.user_id);
            let done = st.levels[lv].approvals.len() as u32 >= st.levels[lv].count;
            let detail = Some(format!(
                "level {} of {} ({})",
                lv + 1,
                st.levels.len(),
                level.role
            ));
            if done && lv + 1 >= st.levels.len() {
                let to = pick(def, here, "approve", facts)?;
                enter(
                    def,
                    &mut st,
                    to,
                    actor.user_id,
                    "approve",
                    detail,
                    facts,
                    &mut steps,
                )?;
            } else {
                if done {
                    st.level += 1;
                }
                steps.push(Step {
                    actor: actor.user_id,
                    action: "approve".into(),
                    from_node: st.node.clone(),
                    to_node: st.node.clone(),
                    detail,
                    level: None,
                    level_role: None,
                });
            }
            mark_level(&mut steps, lv, &level.role);
        }
        Action::Return { to, reason } => {
            if !matches!(kind, NodeKind::Task | NodeKind::Approval) {
                return Err(not_here());
            }
            if reason.trim().is_empty() {
                return Err(Refusal::ReasonRequired);
            }
            let mut decided_at = None;
            if kind == NodeKind::Approval {
                let Some(level) = st.levels.get(st.level) else {
                    return Err(not_here());
                };
                let allowed = match level.user {
                    Some(u) => u == actor.user_id,
                    None => actor.has(&level.role),
                };
                if !allowed {
                    return Err(Refusal::NotAssignee(level.role.clone()));
                }
                decided_at = Some((st.level, level.role.clone()));
            } else {
                may_act_on_human_node(def, &st, here, actor)?;
            }
            let pos = st.path[..st.path.len().saturating_sub(1)]
                .iter()
                .any(|n| n == to);
            if !pos {
                return Err(Refusal::NotVisited(to.clone()));
            }
            let target = idx(def, to)?;
            if !matches!(
                def.nodes[target].spec.kind,
                NodeKind::Task | NodeKind::Approval
            ) {
                return Err(Refusal::NotVisited(to.clone()));
            }
            enter(
                def,
                &mut st,
                target,
                actor.user_id,
                "return",
                Some(reason.clone()),
                facts,
                &mut steps,
            )?;
            if let Some((lv, role)) = decided_at {
                mark_level(&mut steps, lv, &role);
            }
        }
        Action::Transfer { to_user } => {
            if kind == NodeKind::Approval {
                let Some(level) = st.levels.get(st.level).cloned() else {
                    return Err(not_here());
                };
                let allowed = match level.user {
                    Some(u) => u == actor.user_id,
                    None => actor.has(&level.role),
                };
                if !allowed {
                    return Err(Refusal::NotAssignee(level.role));
                }
                if st.submitter == Some(*to_user) {
                    return Err(Refusal::Submitter);
                }
                let lv = st.level;
                st.levels[lv].user = Some(*to_user);
            } else if kind == NodeKind::Task {
                may_act_on_human_node(def, &st, here, actor)?;
                if def.nodes[here].spec.four_eyes && st.submitter == Some(*to_user) {
                    return Err(Refusal::Submitter);
                }
                st.assigned_user = Some(*to_user);
            } else {
                return Err(not_here());
            }
            steps.push(Step {
                actor: actor.user_id,
                action: "transfer".into(),
                from_node: st.node.clone(),
                to_node: st.node.clone(),
                detail: Some(format!("to user {to_user}")),
                level: None,
                level_role: None,
            });
        }
        Action::AddApprover { user, before } => {
            if kind != NodeKind::Approval {
                return Err(not_here());
            }
            let Some(level) = st.levels.get(st.level).cloned() else {
                return Err(not_here());
            };
            let allowed = match level.user {
                Some(u) => u == actor.user_id,
                None => actor.has(&level.role),
            };
            if !allowed {
                return Err(Refusal::NotAssignee(level.role));
            }
            if st.submitter == Some(*user) {
                return Err(Refusal::Submitter);
            }
            let added = Level {
                role: level.role.clone(),
                mode: ApprovalMode::OneOf,
                count: 1,
                user: Some(*user),
                approvals: Vec::new(),
            };
            let at = if *before { st.level } else { st.level + 1 };
            st.levels.insert(at, added);
            steps.push(Step {
                actor: actor.user_id,
                action: "add_approver".into(),
                from_node: st.node.clone(),
                to_node: st.node.clone(),
                detail: Some(format!(
                    "user {user} {}",
                    if *before { "before" } else { "after" }
                )),
                level: None,
                level_role: None,
            });
        }
        Action::Withdraw { reason } => {
            if st.submitter != Some(actor.user_id) {
                return Err(Refusal::NotSubmitter);
            }
            if reason.trim().is_empty() {
                return Err(Refusal::ReasonRequired);
            }
            let to = pick(def, here, "withdraw", facts).map_err(|_| not_here())?;
            enter(
                def,
                &mut st,
                to,
                actor.user_id,
                "withdraw",
                Some(reason.clone()),
                facts,
                &mut steps,
            )?;
        }
        Action::Event { name } => {
            let on = format!("event:{name}");
            // A wait node takes the event it waits for; any other running node takes an
            // event its definition has an `event:` transition for (issue #7: an approved
            // override of the credit decision at the approval step).
            let accepted = if kind == NodeKind::Wait {
                def.nodes[here].spec.event.as_deref() == Some(name.as_str())
            } else {
                def.transitions.iter().any(|t| t.from == here && t.on == on)
            };
            if !accepted {
                return Err(not_here());
            }
            let to = pick(def, here, &on, facts)?;
            enter(
                def,
                &mut st,
                to,
                actor.user_id,
                &on,
                None,
                facts,
                &mut steps,
            )?;
        }
        Action::Timeout => {
            let to = pick(def, here, "timeout", facts).map_err(|_| not_here())?;
            enter(
                def,
                &mut st,
                to,
                actor.user_id,
                "timeout",
                None,
                facts,
                &mut steps,
            )?;
        }
    }
    Ok(Applied { state: st, steps })
}

/// Who may act now: the role or person of the current step (for worklists).
pub fn current_assignee(
    def: &Definition,
    st: &InstanceState,
) -> Option<(Option<String>, Option<i64>)> {
    if !matches!(st.status, Status::Running) {
        return None;
    }
    let node = &def.nodes[def.node_index(&st.node)?];
    match node.spec.kind {
        NodeKind::Approval => st
            .levels
            .get(st.level)
            .map(|l| (l.user.is_none().then(|| l.role.clone()), l.user)),
        NodeKind::Task => {
            let role = node.spec.assignee.as_ref().map(|a| a.role.clone());
            match st.assigned_user {
                Some(u) => Some((None, Some(u))),
                None if role.as_deref() == Some("submitter") => Some((None, st.submitter)),
                None => Some((role, None)),
            }
        }
        _ => None,
    }
}
