//! Risk warnings (风险预警, issue #7 item 3), shared by the API (`api::warnings`), the
//! pages (`ui::warnings`) and jobs.
//!
//! * **Rules** are expressions of `zhudai-expr` over the event, customer, loan and credit
//!   line facts and windowed aggregates (see [`engine`]). A rule is saved even when its
//!   condition does not compile (as a disabled draft, with the error shown), but it cannot
//!   be enabled until it does; every saved version is kept.
//! * **Events** come in through [`evaluate_events`] — the in-process entry point the daily
//!   close and other jobs call — or `POST /api/v1/risk/events`. One call stores the
//!   events, evaluates the enabled rules (compiled once per rule-set version, cached),
//!   opens warnings and runs their actions in **one transaction** with the audit records.
//! * **Warnings**: one open warning per rule and subject (repeat hits are counted on it);
//!   its due time comes from the severity's playbook; actions (assign a task, freeze or
//!   cut the credit line, suspend a partner) run once, when it opens.
//! * **Population stability** is in [`psi`].

pub mod engine;
pub mod psi;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use chrono::{DateTime, NaiveDate};
use engine::{
    CustomerFacts, Facts, HistEvent, LimitFacts, LoanFacts, Outcome, RuleProblem, RuleSet,
    RuleSpec, Subject,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use utoipa::{IntoParams, ToSchema};
use zhudai_domain::risk_warning::{
    due_at_ms, event_type, is_overdue, Action, Category, EventField, Severity, Stage,
    WarningStatus, EVENT_TYPES,
};
use zhudai_domain::Fen;
use zhudai_store::audit::AuditDraft;
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::warnings::{self as sw, RuleRow, WarningRow};
use zhudai_store::StoreError;

/// Most events one call may carry.
pub const MAX_EVENTS: usize = 1000;
/// Most sample rows one rule test may carry.
pub const MAX_SAMPLE_ROWS: usize = 1000;

// ---------------------------------------------------------------------------------------
// Rules

/// A rule as written by a risk manager.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// `a-z 0-9 _ -` (new rules only; the path names an existing one).
    #[serde(default)]
    pub code: Option<String>,
    pub name: String,
    /// `repayment`, `fraud`, `credit`, `behaviour`, `legal`, `partner`, `model_drift`, `other`.
    pub category: String,
    /// `pre_loan`, `in_loan`, `post_loan`.
    pub stage: String,
    /// `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// Event types the rule reacts to; empty: every event.
    #[serde(default)]
    pub on_events: Vec<String>,
    /// A bool expression, e.g. `count(repayment_failed, 30d) >= 3`.
    pub condition: String,
    /// `{"kind": "assign_task", "role": "post_loan", "title": "…"}`, `{"kind": "freeze_line"}`,
    /// `{"kind": "cut_line", "percent": 50}`, `{"kind": "suspend_partner"}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<serde_json::Value>,
    /// The version being edited (required to update; a stale one is a conflict).
    #[serde(default)]
    pub version: Option<i64>,
}

/// Why a condition does not compile, with its position.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ConditionError {
    /// Stable code, e.g. `E101` (unknown field).
    pub code: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
    /// The source line with carets under the problem.
    pub rendered: String,
}

impl ConditionError {
    fn of(p: &RuleProblem) -> Self {
        match p {
            RuleProblem::Condition(e) => ConditionError {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
                line: e.line,
                column: e.column,
                rendered: e.render(),
            },
            other => ConditionError {
                code: "E101".into(),
                message: other.to_string(),
                line: 0,
                column: 0,
                rendered: other.to_string(),
            },
        }
    }

    /// One line: `E101 at line 1, column 1: unknown field …`.
    pub fn summary(&self) -> String {
        format!(
            "{} at line {}, column {}: {}",
            self.code, self.line, self.column, self.message
        )
    }

    fn field_error(&self) -> FieldError {
        FieldError::new("condition", self.code.clone(), self.summary())
    }
}

/// A stored rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub category: String,
    pub stage: String,
    pub severity: String,
    pub on_events: Vec<String>,
    pub condition: String,
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<serde_json::Value>,
    pub enabled: bool,
    /// Why the condition does not compile (such a rule cannot be enabled).
    pub compile_error: Option<ConditionError>,
    /// The windowed aggregates it uses, e.g. `count(repayment_failed, 30d)`.
    pub aggregates: Vec<String>,
    pub version: i64,
    pub updated_at_ms: i64,
}

fn split_events(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The view of a stored rule (its condition checked against today's schema).
pub fn rule_view(r: &RuleRow) -> RuleView {
    let on_events = split_events(&r.on_events);
    let (compile_error, aggregates) = match engine::check(&r.condition, &on_events) {
        Ok(aggs) => (None, aggs.iter().map(ToString::to_string).collect()),
        Err(p) => (Some(ConditionError::of(&p)), Vec::new()),
    };
    RuleView {
        id: r.id,
        code: r.code.clone(),
        name: r.name.clone(),
        category: r.category.clone(),
        stage: r.stage.clone(),
        severity: r.severity.clone(),
        on_events,
        condition: r.condition.clone(),
        actions: serde_json::from_str(&r.actions).unwrap_or_default(),
        enabled: r.enabled,
        compile_error,
        aggregates,
        version: r.version,
        updated_at_ms: r.updated_at_ms,
    }
}

/// A rule input checked field by field; the condition's compile error is not a field
/// error here (a draft may be saved with it), it is returned alongside.
struct CheckedRule {
    name: String,
    category: Category,
    stage: Stage,
    severity: Severity,
    on_events: Vec<String>,
    condition: String,
    actions: Vec<Action>,
    compile_error: Option<ConditionError>,
}

async fn check_input(state: &AppState, input: &RuleInput) -> ApiResult<CheckedRule> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new(
            "name",
            "required",
            "give a name of 1 to 100 characters",
        ));
    }
    let category = Category::parse(&input.category);
    if category.is_none() {
        errors.push(FieldError::new(
            "category",
            "invalid",
            format!(
                "use one of {}",
                Category::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let stage = Stage::parse(&input.stage);
    if stage.is_none() {
        errors.push(FieldError::new(
            "stage",
            "invalid",
            "use pre_loan, in_loan or post_loan",
        ));
    }
    let severity = Severity::parse(&input.severity);
    if severity.is_none() {
        errors.push(FieldError::new(
            "severity",
            "invalid",
            "use low, medium, high or critical",
        ));
    }
    let mut on_events = Vec::new();
    for (i, e) in input.on_events.iter().enumerate() {
        let e = e.trim();
        if event_type(e).is_none() {
            errors.push(FieldError::new(
                format!("on_events[{i}]"),
                "unknown_event",
                format!(
                    "unknown event type `{e}`; known: {}",
                    EVENT_TYPES
                        .iter()
                        .map(|t| t.code)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        } else if !on_events.iter().any(|x| x == e) {
            on_events.push(e.to_owned());
        }
    }
    let condition = input.condition.trim().to_owned();
    if condition.is_empty() || condition.len() > 10_000 {
        errors.push(FieldError::new(
            "condition",
            "required",
            "write a condition (at most 10,000 characters)",
        ));
    }
    let roles = state.store().roles().await?;
    let mut actions = Vec::new();
    for (i, v) in input.actions.iter().enumerate() {
        match serde_json::from_value::<Action>(v.clone()) {
            Ok(a) => {
                if let Err(m) = a.check() {
                    errors.push(FieldError::new(format!("actions[{i}]"), "invalid", m));
                } else if let Action::AssignTask { role, .. } = &a {
                    if !roles.iter().any(|r| &r.code == role) {
                        errors.push(FieldError::new(
                            format!("actions[{i}].role"),
                            "unknown_role",
                            format!("no role has code `{role}`"),
                        ));
                    } else {
                        actions.push(a);
                    }
                } else {
                    actions.push(a);
                }
            }
            Err(e) => errors.push(FieldError::new(
                format!("actions[{i}]"),
                "invalid",
                format!("{e}; kinds: assign_task {{role, title}}, freeze_line, cut_line {{percent}}, suspend_partner"),
            )),
        }
    }
    let (Some(category), Some(stage), Some(severity)) = (category, stage, severity) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let compile_error = engine::check(&condition, &on_events)
        .err()
        .map(|p| ConditionError::of(&p));
    Ok(CheckedRule {
        name,
        category,
        stage,
        severity,
        on_events,
        condition,
        actions,
        compile_error,
    })
}

fn actions_json(actions: &[Action]) -> String {
    serde_json::to_string(actions).unwrap_or_else(|_| "[]".into())
}

fn rule_draft(state: &AppState, caller: &Caller, action: &str, code: &str) -> AuditDraft {
    crate::customers::audit_draft(caller, state.now_ms(), action, format!("risk_rule:{code}"))
}

pub async fn find_rule(state: &AppState, code: &str) -> ApiResult<RuleRow> {
    state
        .store()
        .risk_rule_by_code(code)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no warning rule has code `{code}`")))
}

/// Saves a new rule, disabled. A condition that does not compile is kept with its error
/// (a draft) and the rule cannot be enabled until it is fixed.
pub async fn create_rule(
    state: &AppState,
    caller: &Caller,
    input: &RuleInput,
) -> ApiResult<RuleView> {
    let code = input.code.as_deref().unwrap_or("").trim().to_owned();
    let mut errors = Vec::new();
    if let Err(m) = zhudai_domain::risk_warning::check_rule_code(&code) {
        errors.push(FieldError::new("code", "invalid", m));
    }
    let checked = match check_input(state, input).await {
        Ok(c) => Some(c),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let Some(c) = checked.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = state.now_ms();
    let on = c.on_events.join(",");
    let actions = actions_json(&c.actions);
    let err_text = c.compile_error.as_ref().map(ConditionError::summary);
    let mut tx = state.store().begin().await?;
    let values = sw::RuleValues {
        name: &c.name,
        category: c.category.as_str(),
        stage: c.stage.as_str(),
        severity: c.severity.as_str(),
        on_events: &on,
        condition: &c.condition,
        actions: &actions,
        compile_error: err_text.as_deref(),
    };
    match sw::rule_insert(&mut tx, &code, &values, Some(caller.user_id), now).await {
        Ok(_) => {}
        Err(e) if e.is_unique_violation("risk_rules_code_key", "risk_rules.code") => {
            return Err(ApiError::Conflict(format!(
                "a warning rule with code `{code}` exists"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let d = rule_draft(state, caller, "risk.rule.create", &code).reason(c.condition.clone());
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(rule_view(&find_rule(state, &code).await?))
}

/// Saves a new version of a rule. A condition that no longer compiles disables it.
pub async fn update_rule(
    state: &AppState,
    caller: &Caller,
    code: &str,
    input: &RuleInput,
) -> ApiResult<RuleView> {
    let row = find_rule(state, code).await?;
    let Some(version) = input.version else {
        return Err(ApiError::field(
            "version",
            "required",
            "send the version you edited",
        ));
    };
    let c = check_input(state, input).await?;
    let now = state.now_ms();
    let on = c.on_events.join(",");
    let actions = actions_json(&c.actions);
    let err_text = c.compile_error.as_ref().map(ConditionError::summary);
    let mut tx = state.store().begin().await?;
    let values = sw::RuleValues {
        name: &c.name,
        category: c.category.as_str(),
        stage: c.stage.as_str(),
        severity: c.severity.as_str(),
        on_events: &on,
        condition: &c.condition,
        actions: &actions,
        compile_error: err_text.as_deref(),
    };
    let Some(v) =
        sw::rule_update(&mut tx, row.id, version, &values, Some(caller.user_id), now).await?
    else {
        return Err(ApiError::Conflict(format!(
            "the rule is at version {}, not {version}; reload it and edit again",
            row.version
        )));
    };
    let mut d = rule_draft(state, caller, "risk.rule.update", code)
        .reason(format!("v{v}: {}", c.condition));
    if row.enabled && c.compile_error.is_some() {
        d = d.reason(format!("v{v} does not compile; disabled: {}", c.condition));
    }
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(rule_view(&find_rule(state, code).await?))
}

/// Enables or disables a rule. Enabling refuses a condition that does not parse or names
/// an unknown field (422 naming it), checked against the schema of this server.
pub async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    code: &str,
    enabled: bool,
) -> ApiResult<RuleView> {
    let row = find_rule(state, code).await?;
    if enabled {
        if let Err(p) = engine::check(&row.condition, &split_events(&row.on_events)) {
            return Err(ApiError::Validation(vec![
                ConditionError::of(&p).field_error()
            ]));
        }
        if row.compile_error.is_some() {
            // Stored as broken by an older schema but fine now: clear it with the enable.
            let mut tx = state.store().begin().await?;
            zhudai_store::sqlx::query("UPDATE risk_rules SET compile_error = NULL WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            tx.commit().await.map_err(StoreError::from)?;
        }
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let changed = sw::rule_set_enabled(&mut tx, row.id, enabled, Some(caller.user_id), now).await?;
    if changed {
        let d = rule_draft(
            state,
            caller,
            if enabled {
                "risk.rule.enable"
            } else {
                "risk.rule.disable"
            },
            code,
        )
        .reason(format!("v{}", row.version));
        zhudai_store::audit::append(&mut tx, &d).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(rule_view(&find_rule(state, code).await?))
}

/// Every rule.
pub async fn rules(state: &AppState) -> ApiResult<Vec<RuleView>> {
    Ok(state
        .store()
        .risk_rules()
        .await?
        .iter()
        .map(rule_view)
        .collect())
}

fn spec_of(r: &RuleRow) -> RuleSpec {
    RuleSpec {
        id: r.id,
        code: r.code.clone(),
        version: r.version,
        name: r.name.clone(),
        category: Category::parse(&r.category).unwrap_or(Category::Other),
        stage: Stage::parse(&r.stage).unwrap_or(Stage::InLoan),
        severity: Severity::parse(&r.severity).unwrap_or(Severity::Medium),
        on_events: split_events(&r.on_events),
        condition: r.condition.clone(),
        actions: serde_json::from_str(&r.actions).unwrap_or_default(),
    }
}

type Compiled = (Arc<RuleSet>, Arc<Vec<(String, RuleProblem)>>);

/// The enabled rules compiled into one set, cached by the digest of their texts (rules
/// are compiled once per rule-set version, not per event or per call).
async fn enabled_set(store: &zhudai_store::Store) -> ApiResult<Compiled> {
    compiled(store.risk_rules_enabled().await?)
}

/// [`enabled_set`] read on the caller's connection (inside its transaction).
async fn enabled_set_in(conn: &mut AnyConnection) -> ApiResult<Compiled> {
    compiled(sw::rules_enabled(conn).await?)
}

fn compiled(rows: Vec<RuleRow>) -> ApiResult<Compiled> {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let mut h = Sha256::new();
    for r in &rows {
        h.update(r.id.to_le_bytes());
        h.update(r.version.to_le_bytes());
        for part in [&r.condition, &r.on_events, &r.actions, &r.severity, &r.name] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    let key = hex::encode(h.finalize());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
    }
    let specs: Vec<RuleSpec> = rows.iter().map(spec_of).collect();
    let (set, problems) = RuleSet::compile(&specs).map_err(ApiError::internal)?;
    for (code, p) in &problems {
        tracing::warn!(rule = %code, problem = %p, "an enabled warning rule does not compile; it is skipped");
    }
    let compiled: Compiled = (Arc::new(set), Arc::new(problems));
    if let Ok(mut map) = cache.lock() {
        if map.len() > 32 {
            map.clear();
        }
        map.insert(key, compiled.clone());
    }
    Ok(compiled)
}

// ---------------------------------------------------------------------------------------
// Events

/// Loan facts carried by an event (the loans capability or the daily close fills them).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoanInput {
    /// Yuan, e.g. `"10000.00"`.
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub outstanding: Option<String>,
    #[serde(default)]
    pub days_past_due: Option<i64>,
    #[serde(default)]
    pub product: Option<String>,
    /// The funder's partner code.
    #[serde(default)]
    pub funder: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// One risk event.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// An event type of the catalogue, e.g. `repayment_failed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The customer concerned (required unless `partner` is given).
    #[serde(default)]
    pub customer_id: Option<i64>,
    /// A partner code (required for `partner_signal`).
    #[serde(default)]
    pub partner: Option<String>,
    #[serde(default)]
    pub loan_ref: Option<String>,
    /// RFC 3339; default: now. Not more than 5 minutes ahead.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Yuan, e.g. `"1200.50"`.
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(default)]
    pub count: Option<i64>,
    /// A decimal such as `"0.125"`.
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub loan: Option<LoanInput>,
    /// The same key twice is stored and evaluated once.
    #[serde(default)]
    pub dedupe_key: Option<String>,
}

/// A batch of events.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<EventInput>,
}

/// A checked event, ready for [`evaluate_events`]. Jobs (the daily close) build these
/// directly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RiskEvent {
    /// A code of [`EVENT_TYPES`].
    pub event_type: String,
    pub customer_id: Option<i64>,
    pub partner: Option<String>,
    pub loan_ref: Option<String>,
    pub occurred_at_ms: i64,
    pub amount_fen: Option<i64>,
    pub days: Option<i64>,
    pub count: Option<i64>,
    pub rate: Option<Decimal>,
    pub code: Option<String>,
    pub loan: Option<LoanFacts>,
    pub dedupe_key: Option<String>,
}

fn money_field(field: String, v: &Option<String>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let v = v.as_deref()?;
    match Fen::parse(v) {
        Ok(f) => Some(f.as_fen()),
        Err(e) => {
            errors.push(FieldError::new(field, e.code(), e.to_string()));
            None
        }
    }
}

fn loan_facts(prefix: &str, l: &LoanInput, errors: &mut Vec<FieldError>) -> LoanFacts {
    LoanFacts {
        principal_fen: money_field(format!("{prefix}.principal"), &l.principal, errors),
        outstanding_fen: money_field(format!("{prefix}.outstanding"), &l.outstanding, errors),
        days_past_due: l.days_past_due,
        product: l.product.clone(),
        funder: l.funder.clone(),
        status: l.status.clone(),
    }
}

fn parse_instant(field: &str, v: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match DateTime::parse_from_rfc3339(v.trim()) {
        Ok(t) => Some(t.timestamp_millis()),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid_instant",
                "use RFC 3339, e.g. 2026-11-29T10:00:00+08:00",
            ));
            None
        }
    }
}

/// Parses the API form of events (field errors name `events[i].field`).
pub fn parse_events(inputs: &[EventInput], now_ms: i64) -> ApiResult<Vec<RiskEvent>> {
    let mut errors = Vec::new();
    if inputs.is_empty() || inputs.len() > MAX_EVENTS {
        return Err(ApiError::field(
            "events",
            "count",
            format!("send 1 to {MAX_EVENTS} events"),
        ));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (i, e) in inputs.iter().enumerate() {
        let p = format!("events[{i}]");
        let occurred_at_ms = match &e.occurred_at {
            Some(t) => parse_instant(&format!("{p}.occurred_at"), t, &mut errors).unwrap_or(now_ms),
            None => now_ms,
        };
        let rate = match e.rate.as_deref() {
            Some(r) => match Decimal::from_str(r.trim()) {
                Ok(d) if d.scale() <= engine::RATE_SCALE => Some(d),
                _ => {
                    errors.push(FieldError::new(
                        format!("{p}.rate"),
                        "invalid",
                        "a decimal with at most 6 places, e.g. 0.125",
                    ));
                    None
                }
            },
            None => None,
        };
        out.push(RiskEvent {
            event_type: e.event_type.trim().to_owned(),
            customer_id: e.customer_id,
            partner: e.partner.as_deref().map(str::trim).map(str::to_owned),
            loan_ref: e.loan_ref.clone(),
            occurred_at_ms,
            amount_fen: money_field(format!("{p}.amount"), &e.amount, &mut errors),
            days: e.days,
            count: e.count,
            rate,
            code: e.code.clone(),
            loan: e
                .loan
                .as_ref()
                .map(|l| loan_facts(&format!("{p}.loan"), l, &mut errors)),
            dedupe_key: e.dedupe_key.clone(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The shape checks of an event: known type, allowed and required fields, ranges.
fn check_event(i: usize, e: &RiskEvent, now_ms: i64, errors: &mut Vec<FieldError>) {
    let p = format!("events[{i}]");
    let Some(def) = event_type(&e.event_type) else {
        errors.push(FieldError::new(
            format!("{p}.type"),
            "unknown_event",
            format!(
                "unknown event type `{}`; known: {}",
                e.event_type,
                EVENT_TYPES
                    .iter()
                    .map(|t| t.code)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        return;
    };
    let present = [
        (EventField::Amount, e.amount_fen.is_some()),
        (EventField::Days, e.days.is_some()),
        (EventField::Count, e.count.is_some()),
        (EventField::Rate, e.rate.is_some()),
        (EventField::Code, e.code.is_some()),
        (EventField::Partner, e.partner.is_some()),
    ];
    for (f, set) in present {
        // A partner may name the subject of any event that has no customer.
        let allowed =
            def.fields.contains(&f) || (f == EventField::Partner && e.customer_id.is_none());
        if set && !allowed {
            errors.push(FieldError::new(
                format!("{p}.{}", f.as_str()),
                "not_allowed",
                format!("a `{}` event has no field `{}`", def.code, f.as_str()),
            ));
        }
        if !set && def.required.contains(&f) {
            errors.push(FieldError::new(
                format!("{p}.{}", f.as_str()),
                "required",
                format!("a `{}` event needs `{}`", def.code, f.as_str()),
            ));
        }
    }
    if e.customer_id.is_none() && e.partner.is_none() {
        errors.push(FieldError::new(
            format!("{p}.customer_id"),
            "required",
            "name the customer (or, for partner events, the partner)",
        ));
    }
    for (f, v) in [("days", e.days), ("count", e.count)] {
        if v.is_some_and(|v| !(0..=1_000_000).contains(&v)) {
            errors.push(FieldError::new(
                format!("{p}.{f}"),
                "out_of_range",
                "0 to 1,000,000",
            ));
        }
    }
    for (f, v) in [
        ("code", &e.code),
        ("loan_ref", &e.loan_ref),
        ("dedupe_key", &e.dedupe_key),
        ("partner", &e.partner),
    ] {
        if v.as_ref()
            .is_some_and(|s| s.trim().is_empty() || s.chars().count() > 200)
        {
            errors.push(FieldError::new(
                format!("{p}.{f}"),
                "invalid",
                "1 to 200 characters",
            ));
        }
    }
    if e.occurred_at_ms > now_ms + 300_000 {
        errors.push(FieldError::new(
            format!("{p}.occurred_at"),
            "future",
            "an event cannot occur more than 5 minutes from now",
        ));
    }
}

/// What one rule hit did.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct HitView {
    pub rule: String,
    pub event_id: i64,
    pub warning_id: i64,
    /// `true`: a new warning opened (and its actions ran); `false`: counted on the open one.
    pub opened: bool,
}

/// A rule that could not decide on an event (missing data, overflow).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RuleErrorView {
    pub rule: String,
    pub event_id: i64,
    /// `R0xx`.
    pub code: String,
    pub message: String,
}

/// What [`evaluate_events`] did.
#[derive(Debug, Clone, Serialize, ToSchema, Default, PartialEq, Eq)]
pub struct EvaluationReport {
    /// Events received.
    pub events: usize,
    /// Events stored now (the rest were duplicates of a `dedupe_key`).
    pub stored: usize,
    pub event_ids: Vec<i64>,
    /// Rule evaluations run.
    pub evaluations: u64,
    pub hits: Vec<HitView>,
    pub rule_errors: Vec<RuleErrorView>,
    /// Enabled rules that do not compile on this server and were skipped.
    pub skipped_rules: Vec<String>,
}

/// What an action did, as kept on the warning.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ActionResult {
    pub kind: String,
    pub done: bool,
    pub detail: String,
}

fn age_at(birth: Option<&str>, on: NaiveDate) -> Option<i64> {
    use chrono::Datelike;
    let b = NaiveDate::parse_from_str(birth?, "%Y-%m-%d").ok()?;
    let mut years = on.year() - b.year();
    if (on.month(), on.day()) < (b.month(), b.day()) {
        years -= 1;
    }
    Some(i64::from(years))
}

fn facts_json(f: &Facts, aggregates: &[(String, String)]) -> serde_json::Value {
    let def = EVENT_TYPES.get(f.event_type);
    serde_json::json!({
        "event": {
            "type": def.map(|d| d.code),
            "occurred_at_ms": f.occurred_at_ms,
            "amount": f.amount_fen.map(|v| Fen::new(v).to_string()),
            "days": f.days,
            "count": f.count,
            "rate": f.rate.map(|r| r.to_string()),
            "code": f.code,
            "partner": f.partner,
        },
        "customer": f.customer.as_ref().map(|c| serde_json::json!({
            "kind": c.kind, "age": c.age, "region": c.region, "in_group": c.in_group,
        })),
        "loan": f.loan.as_ref().map(|l| serde_json::json!({
            "principal": l.principal_fen.map(|v| Fen::new(v).to_string()),
            "outstanding": l.outstanding_fen.map(|v| Fen::new(v).to_string()),
            "days_past_due": l.days_past_due, "product": l.product, "funder": l.funder, "status": l.status,
        })),
        "limit": f.limit.as_ref().map(|l| serde_json::json!({
            "amount": Fen::new(l.amount_fen).to_string(), "used": Fen::new(l.used_fen).to_string(), "status": l.status,
        })),
        "aggregates": aggregates.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
    })
}

fn hist_of_row(r: &sw::EventRow) -> Option<HistEvent> {
    Some(HistEvent {
        at_ms: r.occurred_at_ms,
        event_type: engine::event_index(&r.event_type)?,
        amount_fen: r.amount_fen.unwrap_or(0),
        days: r.days.unwrap_or(0),
        count: r.count_value.unwrap_or(0),
        rate_units: r
            .rate
            .as_deref()
            .and_then(|s| Decimal::from_str(s).ok())
            .map_or(0, engine::rate_units),
    })
}

/// Evaluates the enabled warning rules on `events` — the in-process entry point for jobs
/// (the daily close reports post-loan events here) and the API.
///
/// In one transaction: stores the events (a repeated `dedupe_key` is skipped), brings in
/// each subject's earlier events for the windowed aggregates, evaluates the rules that
/// react to each event's type, opens warnings (or counts a repeat hit on the open one),
/// runs each new warning's actions and appends the audit records. `source` says who
/// reported the events (`api:<user>`, `cob`, …). Invalid events refuse the whole batch
/// (422 naming `events[i].field`); a rule that cannot decide on an event (e.g. it reads
/// loan facts the event did not carry) is reported in `rule_errors`, never as a hit.
pub async fn evaluate_events(
    state: &AppState,
    events: &[RiskEvent],
    source: &str,
) -> ApiResult<EvaluationReport> {
    let now = state.now_ms();
    let mut errors = Vec::new();
    for (i, e) in events.iter().enumerate() {
        check_event(i, e, now, &mut errors);
    }
    // Customers and partners must exist.
    for (i, e) in events.iter().enumerate() {
        if let Some(c) = e.customer_id {
            if state.store().customer_get(c).await?.is_none() {
                errors.push(FieldError::new(
                    format!("events[{i}].customer_id"),
                    "unknown",
                    format!("no customer has id {c}"),
                ));
            }
        }
        if let Some(p) = &e.partner {
            if state.store().partner_by_code(p).await?.is_none() {
                errors.push(FieldError::new(
                    format!("events[{i}].partner"),
                    "unknown",
                    format!("no partner has code `{p}`"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let compiled = enabled_set(state.store()).await?;
    let mut tx = state.store().begin().await?;
    let report = evaluate_in(
        &mut tx,
        &compiled,
        now,
        state.clock().today(),
        events,
        source,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    metrics::counter!("zhudai_risk_events_total").increment(report.stored as u64);
    metrics::counter!("zhudai_risk_rule_evaluations_total").increment(report.evaluations);
    metrics::counter!("zhudai_risk_rule_errors_total").increment(report.rule_errors.len() as u64);
    Ok(report)
}

/// Whether any enabled rule reacts to events of `event_type` (the daily close asks
/// before it builds events).
pub async fn any_rule_on(store: &zhudai_store::Store, event_type: &str) -> ApiResult<bool> {
    let (set, _) = enabled_set(store).await?;
    Ok(reacts(&set, event_type))
}

/// [`any_rule_on`] on the caller's connection (inside its transaction).
pub async fn any_rule_on_in(conn: &mut AnyConnection, event_type: &str) -> ApiResult<bool> {
    let (set, _) = enabled_set_in(conn).await?;
    Ok(reacts(&set, event_type))
}

fn reacts(set: &RuleSet, event_type: &str) -> bool {
    set.rules()
        .iter()
        .any(|r| r.spec.on_events.iter().any(|e| e == event_type))
}

/// The post-loan events of a daily-close chunk, evaluated inside the chunk's transaction
/// (`conn`): a crash re-runs them with the chunk, and a `dedupe_key` per loan and day
/// keeps a re-run from counting twice. The events must be well-formed (the close builds
/// them; their customers exist by foreign key).
pub async fn evaluate_close_events(
    conn: &mut AnyConnection,
    now_ms: i64,
    today: NaiveDate,
    events: &[RiskEvent],
) -> ApiResult<EvaluationReport> {
    let mut errors = Vec::new();
    for (i, e) in events.iter().enumerate() {
        check_event(i, e, now_ms, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let compiled = enabled_set_in(conn).await?;
    let report = evaluate_in(conn, &compiled, now_ms, today, events, "cob").await?;
    metrics::counter!("zhudai_risk_events_total").increment(report.stored as u64);
    metrics::counter!("zhudai_risk_rule_evaluations_total").increment(report.evaluations);
    Ok(report)
}

/// The body of [`evaluate_events`] inside the caller's transaction, on checked events.
async fn evaluate_in(
    tx: &mut AnyConnection,
    compiled: &Compiled,
    now: i64,
    today: NaiveDate,
    events: &[RiskEvent],
    source: &str,
) -> ApiResult<EvaluationReport> {
    let (set, problems) = compiled;
    let mut report = EvaluationReport {
        events: events.len(),
        skipped_rules: problems.iter().map(|(c, _)| c.clone()).collect(),
        ..Default::default()
    };
    // 1. Store the events.
    let mut batch: Vec<(usize, i64)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let payload = serde_json::json!({
            "type": e.event_type, "customer_id": e.customer_id, "partner": e.partner, "loan_ref": e.loan_ref,
            "occurred_at_ms": e.occurred_at_ms, "amount_fen": e.amount_fen, "days": e.days, "count": e.count,
            "rate": e.rate.map(|r| r.to_string()), "code": e.code,
            "loan": e.loan.as_ref().map(|l| serde_json::json!({
                "principal_fen": l.principal_fen, "outstanding_fen": l.outstanding_fen, "days_past_due": l.days_past_due,
                "product": l.product, "funder": l.funder, "status": l.status,
            })),
        })
        .to_string();
        let rate = e.rate.map(|r| r.to_string());
        let (id, new) = sw::event_insert(
            &mut *tx,
            &sw::NewEvent {
                event_type: &e.event_type,
                customer_id: e.customer_id,
                loan_ref: e.loan_ref.as_deref(),
                partner_code: e.partner.as_deref(),
                occurred_at_ms: e.occurred_at_ms,
                amount_fen: e.amount_fen,
                days: e.days,
                count_value: e.count,
                rate: rate.as_deref(),
                code: e.code.as_deref(),
                payload: &payload,
                source,
                dedupe_key: e.dedupe_key.as_deref(),
            },
            now,
        )
        .await?;
        report.event_ids.push(id);
        if new {
            report.stored += 1;
            batch.push((i, id));
        }
    }
    // 2. Group the new events by subject.
    let mut subjects: BTreeMap<String, (Subject, Vec<(usize, i64)>)> = BTreeMap::new();
    for (i, id) in &batch {
        let Some(e) = events.get(*i) else { continue };
        let subject = match (e.customer_id, &e.partner) {
            (Some(c), _) => Subject::Customer(c),
            (None, Some(p)) => Subject::Partner(p.clone()),
            (None, None) => continue,
        };
        let key = format!("{subject:?}");
        subjects
            .entry(key)
            .or_insert_with(|| (subject, Vec::new()))
            .1
            .push((*i, *id));
    }
    let mut ev = set.evaluator();
    let mut out: Vec<Outcome> = Vec::new();
    let mut drafts: Vec<AuditDraft> = Vec::new();
    let window = set.max_window_ms();
    for (_, (subject, items)) in subjects {
        // The subject's facts, once.
        let (customer, customer_name, limit) = match &subject {
            Subject::Customer(c) => {
                let row = sw::customer_facts(&mut *tx, *c).await?;
                let line = zhudai_store::limits::limit_current(&mut *tx, "customer", *c).await?;
                (
                    row.as_ref().map(|r| CustomerFacts {
                        kind: r.kind.clone(),
                        age: age_at(r.birth_date.as_deref(), today),
                        region: r.region_code.clone(),
                        in_group: r.links > 0,
                    }),
                    row.map(|r| r.name),
                    line.map(|l| LimitFacts {
                        amount_fen: l.amount_fen,
                        used_fen: l.used_fen,
                        status: l.status,
                    }),
                )
            }
            _ => (None, None, None),
        };
        let by_id: HashMap<i64, usize> = items.iter().map(|(i, id)| (*id, *i)).collect();
        let min_t = items
            .iter()
            .filter_map(|(i, _)| events.get(*i))
            .map(|e| e.occurred_at_ms)
            .min()
            .unwrap_or(now);
        let max_t = items
            .iter()
            .filter_map(|(i, _)| events.get(*i))
            .map(|e| e.occurred_at_ms)
            .max()
            .unwrap_or(now);
        // Earlier events inside the longest window, and the batch's own events, in order.
        let from = min_t.saturating_sub(window).saturating_sub(1);
        let rows = match &subject {
            Subject::Customer(c) => sw::customer_events(&mut *tx, *c, from, max_t).await?,
            Subject::Partner(p) => sw::partner_events(&mut *tx, p, from, max_t).await?,
            Subject::Sample(_) => Vec::new(),
        };
        for row in &rows {
            let Some(&i) = by_id.get(&row.id) else {
                if window > 0 {
                    if let Some(h) = hist_of_row(row) {
                        ev.history(&subject, h);
                    }
                }
                continue;
            };
            let Some(e) = events.get(i) else { continue };
            let Some(ty) = engine::event_index(&e.event_type) else {
                continue;
            };
            let facts = Facts {
                event_type: ty,
                occurred_at_ms: e.occurred_at_ms,
                amount_fen: e.amount_fen,
                days: e.days,
                count: e.count,
                rate: e.rate,
                code: e.code.clone(),
                partner: e.partner.clone(),
                customer: customer.clone(),
                loan: e.loan.clone(),
                limit: limit.clone(),
            };
            ev.evaluate(&subject, &facts, &mut out)
                .map_err(ApiError::internal)?;
            report.evaluations += out.len() as u64;
            let aggregates = ev.aggregate_values();
            for o in out.drain(..) {
                let Some(rule) = set.rules().get(o.rule) else {
                    continue;
                };
                match o.result {
                    Ok(false) => {}
                    Err(err) => report.rule_errors.push(RuleErrorView {
                        rule: rule.spec.code.clone(),
                        event_id: row.id,
                        code: err.kind().as_str().to_owned(),
                        message: err.to_string(),
                    }),
                    Ok(true) => {
                        let hit = open_or_hit(
                            &mut *tx,
                            &rule.spec,
                            &subject,
                            customer_name.as_deref(),
                            row.id,
                            &facts,
                            &aggregates,
                            source,
                            now,
                            today,
                            &mut drafts,
                        )
                        .await?;
                        report.hits.push(hit);
                    }
                }
            }
        }
    }
    for d in &drafts {
        zhudai_store::audit::append(&mut *tx, d).await?;
    }
    Ok(report)
}

/// Opens the warning of a fired rule (running its actions), or counts the hit on the
/// rule's open warning for the same subject.
#[allow(clippy::too_many_arguments)]
async fn open_or_hit(
    conn: &mut AnyConnection,
    rule: &RuleSpec,
    subject: &Subject,
    customer_name: Option<&str>,
    event_id: i64,
    facts: &Facts,
    aggregates: &[(String, String)],
    source: &str,
    now: i64,
    today: NaiveDate,
    drafts: &mut Vec<AuditDraft>,
) -> ApiResult<HitView> {
    let (subject_type, subject_ref, customer_id) = match subject {
        Subject::Customer(c) => ("customer", c.to_string(), Some(*c)),
        Subject::Partner(p) => ("partner", p.clone(), None),
        Subject::Sample(s) => ("sample", s.clone(), None),
    };
    let key = sw::open_key(&rule.code, subject_type, &subject_ref);
    if let Some((id, _)) = sw::warning_open_for(conn, &key).await? {
        sw::warning_hit(conn, id, now).await?;
        return Ok(HitView {
            rule: rule.code.clone(),
            event_id,
            warning_id: id,
            opened: false,
        });
    }
    let playbook = sw::playbook_get(conn, rule.severity.as_str()).await?;
    let (hours, notify, steps) = playbook
        .map(|p| (p.respond_within_hours, p.notify_roles, p.steps))
        .unwrap_or((24, String::new(), String::new()));
    let due = due_at_ms(now, hours);
    let who = customer_name.map_or_else(|| subject_ref.clone(), str::to_owned);
    let title = format!("{} · {who}", rule.name);
    let facts_text = facts_json(facts, aggregates).to_string();
    let id = sw::warning_insert(
        conn,
        &sw::NewWarning {
            rule_id: Some(rule.id),
            rule_code: &rule.code,
            rule_version: rule.version,
            category: rule.category.as_str(),
            stage: rule.stage.as_str(),
            severity: rule.severity.as_str(),
            subject_type,
            subject_ref: &subject_ref,
            customer_id,
            event_id: Some(event_id),
            title: &title,
            facts: &facts_text,
            opened_at_ms: now,
            due_at_ms: due,
            notify_roles: &notify,
            playbook_steps: &steps,
        },
    )
    .await?;
    drafts.push(
        AuditDraft::new(now, "risk.warning.open", "success")
            .actor(source.to_owned())
            .target(format!("risk_warning:{id}"))
            .reason(format!(
                "{} v{} ({}) on event {event_id}: {title}",
                rule.code,
                rule.version,
                rule.severity.as_str()
            )),
    );
    let actor = format!("system:rule:{}", rule.code);
    let why = format!("risk warning #{id} ({})", rule.code);
    let mut results = Vec::new();
    for a in &rule.actions {
        let r = run_action(
            conn,
            a,
            id,
            customer_id,
            facts,
            &actor,
            &why,
            due,
            now,
            today,
            drafts,
        )
        .await?;
        results.push(r);
    }
    sw::warning_set_actions(
        conn,
        id,
        &serde_json::to_string(&results).unwrap_or_else(|_| "[]".into()),
    )
    .await?;
    Ok(HitView {
        rule: rule.code.clone(),
        event_id,
        warning_id: id,
        opened: true,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_action(
    conn: &mut AnyConnection,
    a: &Action,
    warning_id: i64,
    customer_id: Option<i64>,
    facts: &Facts,
    actor: &str,
    why: &str,
    due: i64,
    now: i64,
    today: NaiveDate,
    drafts: &mut Vec<AuditDraft>,
) -> ApiResult<ActionResult> {
    let kind = a.kind().to_owned();
    let result = |done: bool, detail: String| ActionResult {
        kind: kind.clone(),
        done,
        detail,
    };
    let protective = |p: crate::limits::Protective| match p {
        crate::limits::Protective::Done { detail, .. } => (true, detail),
        crate::limits::Protective::NoLine => (false, "the customer has no credit line".into()),
        crate::limits::Protective::Unchanged { detail, .. } => (false, detail),
    };
    Ok(match a {
        Action::AssignTask { role, title } => {
            let t = sw::task_insert(conn, warning_id, role, title, due, now).await?;
            result(true, format!("task {t} for {role}"))
        }
        Action::FreezeLine => match customer_id {
            Some(c) => {
                let (p, d) = crate::limits::freeze_in(conn, c, why, actor, now).await?;
                drafts.extend(d);
                let (done, detail) = protective(p);
                result(done, detail)
            }
            None => result(false, "no customer".into()),
        },
        Action::CutLine { percent } => match customer_id {
            Some(c) => {
                let (p, d) = crate::limits::cut_in(conn, c, *percent, why, actor, now).await?;
                drafts.extend(d);
                let (done, detail) = protective(p);
                result(done, detail)
            }
            None => result(false, "no customer".into()),
        },
        Action::SuspendPartner => {
            let code = facts
                .partner
                .clone()
                .or_else(|| facts.loan.as_ref().and_then(|l| l.funder.clone()));
            match code {
                None => result(false, "the event names no partner or funder".into()),
                Some(code) => suspend_partner(conn, &code, actor, why, now, today, drafts)
                    .await
                    .map(|(done, detail)| result(done, detail))?,
            }
        }
    })
}

async fn suspend_partner(
    conn: &mut AnyConnection,
    code: &str,
    actor: &str,
    why: &str,
    now: i64,
    today: NaiveDate,
    drafts: &mut Vec<AuditDraft>,
) -> ApiResult<(bool, String)> {
    use zhudai_store::sqlx::Row;
    let row = zhudai_store::sqlx::query("SELECT id, status FROM partners WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    let Some(row) = row else {
        return Ok((false, format!("no partner has code `{code}`")));
    };
    let id: i64 = row.try_get("id").map_err(StoreError::from)?;
    let status: String = row.try_get("status").map_err(StoreError::from)?;
    if status != "admitted" {
        return Ok((false, format!("partner `{code}` is {status}")));
    }
    let on = today.to_string();
    let changed = zhudai_store::partners::partner_set_status(
        conn,
        &zhudai_store::partners::StatusChange {
            partner_id: id,
            from: "admitted",
            to: "suspended",
            on_date: &on,
            reason: Some(why),
            actor,
            next_review_on: None,
        },
        now,
    )
    .await?;
    if !changed {
        return Ok((false, format!("partner `{code}` changed meanwhile")));
    }
    drafts.push(
        AuditDraft::new(now, "partner.status", "success")
            .actor(actor.to_owned())
            .target(format!("partner:{code}"))
            .reason(format!("admitted → suspended: {why}")),
    );
    Ok((true, format!("partner `{code}` suspended")))
}

// ---------------------------------------------------------------------------------------
// Testing a rule against sample rows

/// Customer facts of a sample row.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SampleCustomer {
    #[serde(default = "individual")]
    pub kind: String,
    #[serde(default)]
    pub age: Option<i64>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub in_group: bool,
}

fn individual() -> String {
    "individual".into()
}

/// Credit line facts of a sample row.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SampleLimit {
    pub amount: String,
    #[serde(default)]
    pub used: Option<String>,
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "active".into()
}

/// One sample event. Rows with the same `subject` share windowed aggregates; rows are
/// evaluated in order (`occurred_at` defaults to one second after the previous row).
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SampleRow {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub partner: Option<String>,
    #[serde(default)]
    pub customer: Option<SampleCustomer>,
    #[serde(default)]
    pub loan: Option<LoanInput>,
    #[serde(default)]
    pub limit: Option<SampleLimit>,
}

/// A rule test: a condition (saved or not) and sample rows.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleTestRequest {
    pub condition: String,
    #[serde(default)]
    pub on_events: Vec<String>,
    pub rows: Vec<SampleRow>,
}

/// What the rule did on one row.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct SampleResult {
    pub row: usize,
    /// `fired`, `not_fired`, `not_evaluated` (the rule does not react to the type) or
    /// `error`.
    pub outcome: String,
    /// The evaluation error (`R0xx …`) when `outcome` is `error`.
    pub error: Option<String>,
    /// The windowed aggregates as the rule saw them.
    pub aggregates: BTreeMap<String, String>,
}

/// The result of a rule test.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RuleTestResult {
    pub aggregates: Vec<String>,
    pub fired: usize,
    pub rows: Vec<SampleResult>,
}

/// Runs a condition over sample rows with the production engine (nothing is stored). A
/// condition that does not compile is a 422 naming the problem.
pub fn test_rule(req: &RuleTestRequest, now_ms: i64) -> ApiResult<RuleTestResult> {
    if req.rows.is_empty() || req.rows.len() > MAX_SAMPLE_ROWS {
        return Err(ApiError::field(
            "rows",
            "count",
            format!("give 1 to {MAX_SAMPLE_ROWS} sample rows"),
        ));
    }
    let on_events: Vec<String> = req.on_events.iter().map(|s| s.trim().to_owned()).collect();
    let aggs = engine::check(&req.condition, &on_events)
        .map_err(|p| ApiError::Validation(vec![ConditionError::of(&p).field_error()]))?;
    let spec = RuleSpec {
        id: 0,
        code: "test".into(),
        version: 0,
        name: "test".into(),
        category: Category::Other,
        stage: Stage::InLoan,
        severity: Severity::Low,
        on_events,
        condition: req.condition.clone(),
        actions: Vec::new(),
    };
    let (set, problems) =
        RuleSet::compile(std::slice::from_ref(&spec)).map_err(ApiError::internal)?;
    if let Some((_, p)) = problems.first() {
        return Err(ApiError::Validation(vec![
            ConditionError::of(p).field_error()
        ]));
    }
    let mut errors = Vec::new();
    let mut facts_rows = Vec::new();
    let mut t = now_ms;
    for (i, r) in req.rows.iter().enumerate() {
        let p = format!("rows[{i}]");
        let Some(ty) = engine::event_index(r.event_type.trim()) else {
            errors.push(FieldError::new(
                format!("{p}.type"),
                "unknown_event",
                format!("unknown event type `{}`", r.event_type),
            ));
            continue;
        };
        t = match &r.occurred_at {
            Some(s) => parse_instant(&format!("{p}.occurred_at"), s, &mut errors).unwrap_or(t),
            None if i == 0 => t,
            None => t + 1000,
        };
        let rate = r
            .rate
            .as_deref()
            .and_then(|s| Decimal::from_str(s.trim()).ok());
        let limit = r.limit.as_ref().map(|l| LimitFacts {
            amount_fen: money_field(
                format!("{p}.limit.amount"),
                &Some(l.amount.clone()),
                &mut errors,
            )
            .unwrap_or(0),
            used_fen: money_field(format!("{p}.limit.used"), &l.used, &mut errors).unwrap_or(0),
            status: l.status.clone(),
        });
        let facts = Facts {
            event_type: ty,
            occurred_at_ms: t,
            amount_fen: money_field(format!("{p}.amount"), &r.amount, &mut errors),
            days: r.days,
            count: r.count,
            rate,
            code: r.code.clone(),
            partner: r.partner.clone(),
            customer: r.customer.as_ref().map(|c| CustomerFacts {
                kind: c.kind.clone(),
                age: c.age,
                region: c.region.clone(),
                in_group: c.in_group,
            }),
            loan: r
                .loan
                .as_ref()
                .map(|l| loan_facts(&format!("{p}.loan"), l, &mut errors)),
            limit,
        };
        facts_rows.push((
            Subject::Sample(r.subject.clone().unwrap_or_default()),
            facts,
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut ev = set.evaluator();
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut fired = 0;
    for (i, (subject, facts)) in facts_rows.iter().enumerate() {
        ev.evaluate(subject, facts, &mut out)
            .map_err(ApiError::internal)?;
        let (outcome, error) = match out.first().map(|o| &o.result) {
            None => ("not_evaluated", None),
            Some(Ok(true)) => {
                fired += 1;
                ("fired", None)
            }
            Some(Ok(false)) => ("not_fired", None),
            Some(Err(e)) => ("error", Some(format!("{}: {e}", e.kind().as_str()))),
        };
        rows.push(SampleResult {
            row: i,
            outcome: outcome.into(),
            error,
            aggregates: ev.aggregate_values().into_iter().collect(),
        });
    }
    Ok(RuleTestResult {
        aggregates: aggs.iter().map(ToString::to_string).collect(),
        fired,
        rows,
    })
}

// ---------------------------------------------------------------------------------------
// Warnings

/// A warning.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WarningView {
    pub id: i64,
    pub rule_code: String,
    pub rule_version: i64,
    pub category: String,
    pub stage: String,
    pub severity: String,
    /// `customer`, `partner` or `model`.
    pub subject_type: String,
    pub subject_ref: String,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub event_id: Option<i64>,
    pub title: String,
    /// `open`, `acknowledged`, `closed`.
    pub status: String,
    pub hits: i64,
    pub opened_at_ms: i64,
    pub last_hit_at_ms: i64,
    /// When the playbook wants it dealt with.
    pub due_at_ms: i64,
    /// Not closed and past its due time.
    pub overdue: bool,
    pub notify_roles: Vec<String>,
    pub playbook_steps: String,
    /// What the rule saw.
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
    pub actions_taken: Vec<ActionResult>,
    pub acknowledged_by: Option<i64>,
    pub acknowledged_at_ms: Option<i64>,
    pub acknowledge_note: Option<String>,
    pub closed_by: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub close_note: Option<String>,
}

pub fn warning_view(w: WarningRow, now_ms: i64) -> WarningView {
    let status = WarningStatus::parse(&w.status).unwrap_or(WarningStatus::Open);
    WarningView {
        overdue: is_overdue(status, w.due_at_ms, now_ms),
        id: w.id,
        rule_code: w.rule_code,
        rule_version: w.rule_version,
        category: w.category,
        stage: w.stage,
        severity: w.severity,
        subject_type: w.subject_type,
        subject_ref: w.subject_ref,
        customer_id: w.customer_id,
        customer_name: w.customer_name,
        event_id: w.event_id,
        title: w.title,
        status: w.status,
        hits: w.hits,
        opened_at_ms: w.opened_at_ms,
        last_hit_at_ms: w.last_hit_at_ms,
        due_at_ms: w.due_at_ms,
        notify_roles: split_events(&w.notify_roles),
        playbook_steps: w.playbook_steps,
        facts: serde_json::from_str(&w.facts).unwrap_or(serde_json::Value::Null),
        actions_taken: serde_json::from_str(&w.actions_taken).unwrap_or_default(),
        acknowledged_by: w.acknowledged_by,
        acknowledged_at_ms: w.acknowledged_at_ms,
        acknowledge_note: w.acknowledge_note,
        closed_by: w.closed_by,
        closed_at_ms: w.closed_at_ms,
        close_note: w.close_note,
    }
}

/// A task of a warning.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub id: i64,
    pub warning_id: i64,
    pub warning_title: String,
    pub warning_severity: String,
    pub role: String,
    pub title: String,
    pub due_at_ms: i64,
    pub overdue: bool,
    /// `open` or `done`.
    pub status: String,
    pub done_by: Option<i64>,
    pub done_at_ms: Option<i64>,
    pub note: Option<String>,
}

pub fn task_view(t: sw::TaskRow, now_ms: i64) -> TaskView {
    TaskView {
        overdue: t.status == "open" && now_ms > t.due_at_ms,
        id: t.id,
        warning_id: t.warning_id,
        warning_title: t.warning_title,
        warning_severity: t.warning_severity,
        role: t.role,
        title: t.title,
        due_at_ms: t.due_at_ms,
        status: t.status,
        done_by: t.done_by,
        done_at_ms: t.done_at_ms,
        note: t.note,
    }
}

/// A warning with its tasks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WarningDetail {
    pub warning: WarningView,
    pub tasks: Vec<TaskView>,
}

/// Filters of the warning list.
#[derive(Debug, Clone, Deserialize, IntoParams, ToSchema, Default)]
#[into_params(parameter_in = Query)]
pub struct WarningFilter {
    /// `open`, `acknowledged`, `closed`, or `active` (open or acknowledged).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    /// Only warnings past their due time and not closed.
    #[serde(default)]
    pub overdue: Option<bool>,
    #[serde(default)]
    pub customer_id: Option<i64>,
    #[serde(default)]
    pub page: Option<i64>,
}

/// One page of warnings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WarningPage {
    pub items: Vec<WarningView>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

pub const PER_PAGE: i64 = 50;

/// Warnings in the caller's data scope.
pub async fn list(state: &AppState, caller: &Caller, f: &WarningFilter) -> ApiResult<WarningPage> {
    let mut errors = Vec::new();
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let status = blank(&f.status);
    let (status, not_closed) = match status.as_deref() {
        None => (None, false),
        Some("active") => (None, true),
        Some(s) if WarningStatus::parse(s).is_some() => (Some(s.to_owned()), false),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "invalid",
                "use open, acknowledged, closed or active",
            ));
            (None, false)
        }
    };
    let severity = blank(&f.severity);
    if severity
        .as_deref()
        .is_some_and(|s| Severity::parse(s).is_none())
    {
        errors.push(FieldError::new("severity", "invalid", "unknown severity"));
    }
    let category = blank(&f.category);
    if category
        .as_deref()
        .is_some_and(|s| Category::parse(s).is_none())
    {
        errors.push(FieldError::new("category", "invalid", "unknown category"));
    }
    let stage = blank(&f.stage);
    if stage.as_deref().is_some_and(|s| Stage::parse(s).is_none()) {
        errors.push(FieldError::new("stage", "invalid", "unknown stage"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    let page = f.page.unwrap_or(1).max(1);
    let now = state.now_ms();
    let (rows, total) = state
        .store()
        .risk_warnings(&sw::WarningQuery {
            scope: &scope,
            status: status.as_deref(),
            not_closed,
            severity: severity.as_deref(),
            category: category.as_deref(),
            stage: stage.as_deref(),
            customer_id: f.customer_id,
            overdue_at_ms: f.overdue.filter(|o| *o).map(|_| now),
            limit: PER_PAGE,
            offset: (page - 1) * PER_PAGE,
        })
        .await?;
    Ok(WarningPage {
        items: rows.into_iter().map(|w| warning_view(w, now)).collect(),
        total,
        page,
        per_page: PER_PAGE,
    })
}

/// A warning in the caller's scope (404 unknown, 403 outside the scope).
pub async fn find(state: &AppState, caller: &Caller, id: i64) -> ApiResult<WarningRow> {
    let w = state
        .store()
        .risk_warning(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no warning has id {id}")))?;
    if let Some(c) = w.customer_id {
        crate::customers::load_in_scope(state, caller, c).await?;
    }
    Ok(w)
}

pub async fn detail(state: &AppState, caller: &Caller, id: i64) -> ApiResult<WarningDetail> {
    let w = find(state, caller, id).await?;
    let now = state.now_ms();
    let tasks = state
        .store()
        .risk_tasks_of(id)
        .await?
        .into_iter()
        .map(|t| task_view(t, now))
        .collect();
    Ok(WarningDetail {
        warning: warning_view(w, now),
        tasks,
    })
}

/// A note on acknowledging or closing.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    #[serde(default)]
    pub note: Option<String>,
}

fn note_of(n: &NoteInput) -> Option<String> {
    n.note
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(2000).collect())
}

/// Someone takes the warning on (an optional note).
pub async fn acknowledge(
    state: &AppState,
    caller: &Caller,
    id: i64,
    n: &NoteInput,
) -> ApiResult<WarningDetail> {
    let w = find(state, caller, id).await?;
    let note = note_of(n);
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sw::warning_acknowledge(&mut tx, w.id, caller.user_id, note.as_deref(), now).await? {
        return Err(ApiError::Conflict(format!(
            "the warning is {}, not open",
            w.status
        )));
    }
    let d = crate::customers::audit_draft(
        caller,
        now,
        "risk.warning.acknowledge",
        format!("risk_warning:{id}"),
    )
    .reason(note.unwrap_or_default());
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    detail(state, caller, id).await
}

/// Closes the warning; a note saying what was done is required.
pub async fn close(
    state: &AppState,
    caller: &Caller,
    id: i64,
    n: &NoteInput,
) -> ApiResult<WarningDetail> {
    let w = find(state, caller, id).await?;
    let Some(note) = note_of(n) else {
        return Err(ApiError::field(
            "note",
            "required",
            "say what was done before closing the warning",
        ));
    };
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sw::warning_close(&mut tx, w.id, Some(caller.user_id), &note, now).await? {
        return Err(ApiError::Conflict("the warning is already closed".into()));
    }
    let d = crate::customers::audit_draft(
        caller,
        now,
        "risk.warning.close",
        format!("risk_warning:{id}"),
    )
    .reason(note);
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    detail(state, caller, id).await
}

/// Marks a task done: by someone holding its role, or a risk manager.
pub async fn task_done(
    state: &AppState,
    caller: &Caller,
    id: i64,
    n: &NoteInput,
) -> ApiResult<TaskView> {
    let t = state
        .store()
        .risk_task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task has id {id}")))?;
    find(state, caller, t.warning_id).await?;
    if !caller.roles.contains(&t.role) && !caller.can("risk.manage") {
        return Err(ApiError::Forbidden(format!(
            "the task is for the role `{}`",
            t.role
        )));
    }
    let note = note_of(n);
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sw::task_done(&mut tx, id, caller.user_id, note.as_deref(), now).await? {
        return Err(ApiError::Conflict("the task is already done".into()));
    }
    let d = crate::customers::audit_draft(caller, now, "risk.task.done", format!("risk_task:{id}"))
        .reason(note.unwrap_or_default());
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let t = state
        .store()
        .risk_task(id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(task_view(t, now))
}

/// Open tasks for the caller's roles.
pub async fn my_tasks(state: &AppState, caller: &Caller) -> ApiResult<Vec<TaskView>> {
    let now = state.now_ms();
    Ok(state
        .store()
        .risk_tasks_for_roles(&caller.roles)
        .await?
        .into_iter()
        .map(|t| task_view(t, now))
        .collect())
}

// ---------------------------------------------------------------------------------------
// Playbooks

/// The emergency playbook of a severity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlaybookView {
    pub severity: String,
    /// Warnings of this severity are due this many hours after they open.
    pub respond_within_hours: i64,
    /// Who is told (role codes).
    pub notify_roles: Vec<String>,
    /// What must be done.
    pub steps: String,
    pub version: i64,
    pub updated_by: Option<i64>,
    pub updated_at_ms: i64,
}

/// A playbook edit.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PlaybookInput {
    pub respond_within_hours: i64,
    pub notify_roles: Vec<String>,
    pub steps: String,
    /// The version being edited.
    pub version: i64,
}

pub async fn playbooks(state: &AppState) -> ApiResult<Vec<PlaybookView>> {
    Ok(state
        .store()
        .risk_playbooks()
        .await?
        .into_iter()
        .map(|p| PlaybookView {
            severity: p.severity,
            respond_within_hours: p.respond_within_hours,
            notify_roles: split_events(&p.notify_roles),
            steps: p.steps,
            version: p.version,
            updated_by: p.updated_by,
            updated_at_ms: p.updated_at_ms,
        })
        .collect())
}

/// Edits a severity's playbook (warnings opened later use it; open ones keep theirs).
pub async fn update_playbook(
    state: &AppState,
    caller: &Caller,
    severity: &str,
    input: &PlaybookInput,
) -> ApiResult<PlaybookView> {
    let Some(sev) = Severity::parse(severity) else {
        return Err(ApiError::NotFound(format!("no severity `{severity}`")));
    };
    let mut errors = Vec::new();
    if !(1..=720).contains(&input.respond_within_hours) {
        errors.push(FieldError::new(
            "respond_within_hours",
            "out_of_range",
            "1 to 720 hours",
        ));
    }
    let roles = state.store().roles().await?;
    let mut notify = Vec::new();
    for (i, r) in input.notify_roles.iter().enumerate() {
        let r = r.trim();
        if !roles.iter().any(|x| x.code == r) {
            errors.push(FieldError::new(
                format!("notify_roles[{i}]"),
                "unknown_role",
                format!("no role has code `{r}`"),
            ));
        } else if !notify.iter().any(|x: &String| x == r) {
            notify.push(r.to_owned());
        }
    }
    if notify.is_empty() && errors.is_empty() {
        errors.push(FieldError::new(
            "notify_roles",
            "required",
            "name at least one role to tell",
        ));
    }
    let steps = input.steps.trim();
    if steps.is_empty() || steps.chars().count() > 4000 {
        errors.push(FieldError::new(
            "steps",
            "required",
            "describe what must be done (at most 4,000 characters)",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !sw::playbook_update(
        &mut tx,
        sev.as_str(),
        input.version,
        input.respond_within_hours,
        &notify.join(","),
        steps,
        Some(caller.user_id),
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the playbook was changed meanwhile; reload it and edit again".into(),
        ));
    }
    let d = crate::customers::audit_draft(
        caller,
        now,
        "risk.playbook.update",
        format!("risk_playbook:{}", sev.as_str()),
    )
    .reason(format!(
        "{} h, notify {}: {steps}",
        input.respond_within_hours,
        notify.join(",")
    ));
    zhudai_store::audit::append(&mut tx, &d).await?;
    tx.commit().await.map_err(StoreError::from)?;
    playbooks(state)
        .await?
        .into_iter()
        .find(|p| p.severity == sev.as_str())
        .ok_or_else(|| ApiError::internal("playbook vanished"))
}

// ---------------------------------------------------------------------------------------
// Dashboard

/// Warning counts for the dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardCounts {
    /// Counted from this instant (30 days back).
    pub since_ms: i64,
    pub open: i64,
    pub acknowledged: i64,
    pub closed: i64,
    /// Not closed and past due.
    pub overdue: i64,
    /// (category, severity, count) over warnings opened since `since_ms`.
    pub by_type: Vec<TypeCount>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct TypeCount {
    pub category: String,
    pub severity: String,
    pub count: i64,
}

pub async fn dashboard_counts(state: &AppState, caller: &Caller) -> ApiResult<DashboardCounts> {
    let scope = crate::customers::scope_of(caller, state.store()).await?;
    let now = state.now_ms();
    let since = now - 30 * engine::DAY_MS;
    let counts = state.store().risk_warning_counts(&scope, since).await?;
    let sum = |status: &str| {
        counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.count)
            .sum::<i64>()
    };
    let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in &counts {
        *by.entry((c.category.clone(), c.severity.clone()))
            .or_default() += c.count;
    }
    let (_, overdue) = state
        .store()
        .risk_warnings(&sw::WarningQuery {
            scope: &scope,
            status: None,
            not_closed: true,
            severity: None,
            category: None,
            stage: None,
            customer_id: None,
            overdue_at_ms: Some(now),
            limit: 1,
            offset: 0,
        })
        .await?;
    Ok(DashboardCounts {
        since_ms: since,
        open: sum("open"),
        acknowledged: sum("acknowledged"),
        closed: sum("closed"),
        overdue,
        by_type: by
            .into_iter()
            .map(|((category, severity), count)| TypeCount {
                category,
                severity,
                count,
            })
            .collect(),
    })
}
