//! Credit decisions (issue #7): the models and rule sets in force, the applicant facts
//! gathered for an application, deciding and storing a decision (in the caller's
//! transaction, so the workflow step and its decision commit together), replay, overrides
//! under the two-person rule, and the blacklist. The engine itself is the pure
//! `zhudai-risk` crate; see docs/decisions/0017-credit-decisions.md.

use crate::auth::Caller;
use crate::customers::audit_draft;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use zhudai_domain::document::{CustomerFacts, DocFacts};
use zhudai_risk::{
    AppFacts, Applicant, BoundModel, Decision, InputSpec, Inputs, Outcome, PersonFacts, Policy,
    Problem, RuleSet, Scratch,
};
use zhudai_scorecard::Scorecard;
use zhudai_store::applications::ApplicationRow;
use zhudai_store::customers::CustomerRow;
use zhudai_store::risk::{ChallengerRow, DecisionRow, ModelRow, NewDecision, NewModel};
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::Store;

/// SHA-256 hex of some text.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn model_digest(spec: &str, inputs: &str) -> String {
    digest(&format!("{spec}\n{inputs}"))
}

/// Problems as field errors (their path as the field).
pub fn problems_to_fields(problems: Vec<Problem>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|p| FieldError::new(&p.path, &p.code, p.message))
        .collect()
}

// ------------------------------------------------------------------ caches

type ModelCache = Mutex<HashMap<i64, BoundModel>>;
type RuleCache = Mutex<HashMap<i64, Arc<RuleSet>>>;

fn model_cache() -> &'static ModelCache {
    static C: OnceLock<ModelCache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

fn rule_cache() -> &'static RuleCache {
    static C: OnceLock<RuleCache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Checks a model document and its input mapping.
pub fn check_model(spec: &str, inputs: &str) -> Result<(Scorecard, Inputs), Vec<FieldError>> {
    let model = Scorecard::from_json(spec)
        .map_err(|e| vec![FieldError::new("model", "invalid", e.to_string())])?;
    let specs: Vec<InputSpec> = if inputs.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(inputs)
            .map_err(|e| vec![FieldError::new("inputs", "invalid", e.to_string())])?
    };
    let inputs = Inputs::new(&specs, &model).map_err(problems_to_fields)?;
    Ok((model, inputs))
}

/// Model `id` compiled (cached: a stored model never changes).
pub async fn bound_model(store: &Store, id: i64) -> Result<BoundModel, ApiError> {
    if let Some(m) = model_cache().lock().ok().and_then(|c| c.get(&id).cloned()) {
        return Ok(m);
    }
    let row = store
        .risk_model(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no model has id {id}")))?;
    let (model, inputs) = check_model(&row.spec, &row.inputs).map_err(|e| {
        ApiError::Internal(format!(
            "stored model {id} no longer loads: {}",
            e.iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let bound = BoundModel {
        id,
        model: Arc::new(model),
        inputs: Arc::new(inputs),
    };
    if let Ok(mut c) = model_cache().lock() {
        c.insert(id, bound.clone());
    }
    Ok(bound)
}

/// Rule set `id` compiled (cached: a stored version never changes).
pub async fn rule_set(store: &Store, id: i64) -> Result<Arc<RuleSet>, ApiError> {
    if let Some(r) = rule_cache().lock().ok().and_then(|c| c.get(&id).cloned()) {
        return Ok(r);
    }
    let row = store
        .risk_rule_set(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rule set has id {id}")))?;
    let rules = RuleSet::from_toml(&row.source).map_err(|p| {
        ApiError::Internal(format!(
            "stored rule set v{} no longer compiles: {}",
            row.version,
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let rules = Arc::new(rules);
    if let Ok(mut c) = rule_cache().lock() {
        c.insert(id, rules.clone());
    }
    Ok(rules)
}

/// The policy in force: the enabled rule set, the champion and the challengers.
pub async fn policy_in_force(store: &Store) -> Result<Policy, ApiError> {
    let (rules_id, champion_id, challenger_ids) = store.risk_policy_ids().await?;
    let (Some(rules_id), Some(champion_id)) = (rules_id, champion_id) else {
        return Err(ApiError::Conflict(
            "no rule set is enabled or no champion model is set; install the defaults or upload a model".into(),
        ));
    };
    let rules = rule_set(store, rules_id).await?;
    let champion = bound_model(store, champion_id).await?;
    let mut challengers = Vec::new();
    for id in challenger_ids {
        challengers.push(bound_model(store, id).await?);
    }
    Policy::new(rules_id, rules, champion, challengers).map_err(ApiError::internal)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Runs the engine (pure) with this thread's reusable buffers.
pub fn run(policy: &Policy, a: &Applicant) -> Result<Decision, ApiError> {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Scratch::new();
        }
        let scratch = slot
            .as_mut()
            .ok_or_else(|| ApiError::Internal("applicant schema".into()))?;
        policy.decide(a, scratch).map_err(|e| match e {
            zhudai_risk::DecideError::Amount(m) => ApiError::field("app.amount", "invalid", m),
            zhudai_risk::DecideError::Model(m) => ApiError::field("features", "invalid", m),
            zhudai_risk::DecideError::Internal(m) => ApiError::Internal(m),
        })
    })
}

// ------------------------------------------------------------------ defaults

/// Installs the default model (champion) and rule set (enabled) when none exists.
pub async fn ensure_defaults(store: &Store, now_ms: i64) -> Result<(), ApiError> {
    if store.risk_models().await?.is_empty() {
        let model = Scorecard::from_json(zhudai_risk::DEFAULT_MODEL).map_err(ApiError::internal)?;
        let meta = &model.spec().metadata;
        let mut tx = store.begin().await?;
        let r = zhudai_store::risk::model_insert(
            &mut tx,
            &NewModel {
                name: &meta.name,
                version: &meta.version,
                status: "champion",
                spec: zhudai_risk::DEFAULT_MODEL,
                inputs: zhudai_risk::DEFAULT_INPUTS,
                digest: &model_digest(zhudai_risk::DEFAULT_MODEL, zhudai_risk::DEFAULT_INPUTS),
                note: Some("default (German credit, see crates/risk/defaults/README.md)"),
                created_by: None,
            },
            now_ms,
        )
        .await;
        match r {
            Ok(_) => {
                monitor(&mut tx, zhudai_risk::DEFAULT_MODEL, "system", now_ms).await?;
                tx.commit().await?
            }
            // Another instance installed it at the same moment.
            Err(e) if e.violation().is_some() => tx.rollback().await?,
            Err(e) => return Err(e.into()),
        }
    }
    if store.risk_rule_sets().await?.is_empty() {
        let rules = RuleSet::from_toml(zhudai_risk::DEFAULT_RULES)
            .map_err(|p| ApiError::Internal(format!("{p:?}")))?;
        let mut tx = store.begin().await?;
        let r = zhudai_store::risk::rule_set_insert(
            &mut tx,
            &rules.spec.name,
            zhudai_risk::DEFAULT_RULES,
            &digest(zhudai_risk::DEFAULT_RULES),
            None,
            now_ms,
        )
        .await;
        match r {
            Ok((id, _)) => {
                zhudai_store::risk::rule_set_enable(&mut tx, id, None, now_ms).await?;
                tx.commit().await?;
            }
            Err(e) if e.violation().is_some() => tx.rollback().await?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ facts

/// The applicant facts of an application (see docs/decisions/0017 for the mapping).
pub async fn gather(
    state: &AppState,
    app: &ApplicationRow,
    window_days: u32,
) -> Result<Applicant, ApiError> {
    let customer = state
        .store()
        .customer_get(app.customer_id)
        .await?
        .ok_or_else(|| ApiError::Internal("customer vanished".into()))?;
    let docs = crate::customer_docs::facts(state, &customer).await?;
    gather_with(state, app, &customer, &docs, window_days).await
}

/// [`gather`] with the application's customer and the facts of the customer's documents
/// already read (the approval that runs the decision has them).
pub async fn gather_with(
    state: &AppState,
    app: &ApplicationRow,
    customer: &CustomerRow,
    docs: &(CustomerFacts, Vec<DocFacts>),
    window_days: u32,
) -> Result<Applicant, ApiError> {
    let store = state.store();
    let age = customer
        .birth_date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|b| state.clock().today().years_since(b))
        .map(i64::from);
    let monthly_income = match &customer.monthly_income_enc {
        Some(ct) => state
            .vault()
            .decrypt_field(
                Some(&crate::customers::subject(&customer.ref_)),
                &crate::vault::FieldAad::new("customers", "monthly_income_enc", &customer.ref_),
                ct,
            )
            .await
            .ok()
            .and_then(|v| Decimal::from_str(v.to_string().trim()).ok()),
        None => None,
    };
    let checks = zhudai_domain::document::cross_checks(
        &docs.0,
        &docs.1,
        state.clock().today(),
        zhudai_domain::document::AgeLimits::default(),
    );
    let identity_match = if checks
        .iter()
        .any(|c| matches!(c.code, "name_mismatch" | "id_mismatch"))
    {
        Some(false)
    } else if checks
        .iter()
        .any(|c| matches!(c.code, "name_consistent" | "id_consistent"))
    {
        Some(true)
    } else {
        None
    };
    let history = store
        .risk_applicant_history(&zhudai_store::risk::HistoryKeys {
            id_number_bidx: customer.id_number_bidx.as_deref(),
            phone_bidx: customer.phone_bidx.as_deref(),
            bank_card_bidx: customer.bank_card_bidx.as_deref(),
            customer_id: customer.id,
            application_id: app.id,
            since_ms: app.created_at_ms - i64::from(window_days) * 86_400_000,
        })
        .await?;
    let province = customer
        .region_code
        .as_deref()
        .and_then(|r| r.get(..2))
        .and_then(zhudai_domain::ident::province_name)
        .map(str::to_owned);
    Ok(Applicant {
        app: AppFacts {
            amount: Decimal::new(app.amount_fen, 2),
            months: app.months,
            product: app.product_code.clone(),
            purpose: app.purpose.clone(),
        },
        applicant: PersonFacts {
            age,
            monthly_income,
            identity_match,
            blacklisted: history.blacklisted,
            recent_applications: history.recent_applications,
            duplicate_phone: history.duplicate_phone,
            duplicate_bank_card: history.duplicate_bank_card,
            duplicate_id_number: history.duplicate_id_number,
            has_phone: customer.phone_bidx.is_some(),
            existing_loans: history.existing_loans,
            province,
        },
        features: Default::default(),
    })
}

/// A decision made but not stored yet.
#[derive(Debug, Clone)]
pub struct Pending {
    pub applicant: Applicant,
    pub decision: Decision,
    pub model_id: i64,
    pub rule_set_id: i64,
    /// What population stability monitoring records of it (see [`observation`]).
    pub observation: Option<Observation>,
}

/// A scored application as population stability sees it: the champion's name and
/// version and the feature values it scored (`crate::warnings::psi`).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub model_name: String,
    pub model_version: String,
    pub features: serde_json::Map<String, serde_json::Value>,
}

/// The champion's view of `a` for stability monitoring: each model feature with the
/// value the champion scored (numbers, texts, or null for missing).
pub fn observation(policy: &Policy, a: &Applicant) -> Observation {
    let champion = &policy.champion;
    let mut row = Vec::new();
    champion.inputs.row(a, &mut row);
    let mut features = serde_json::Map::new();
    for (name, v) in champion.model.feature_names().zip(&row) {
        let value = match v {
            zhudai_risk::inputs::RowValue::Missing => serde_json::Value::Null,
            zhudai_risk::inputs::RowValue::Number(x) => serde_json::Number::from_f64(*x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            zhudai_risk::inputs::RowValue::Text(t) => serde_json::Value::String(t.clone()),
        };
        features.insert(name.to_owned(), value);
    }
    let meta = &champion.model.spec().metadata;
    Observation {
        model_name: meta.name.clone(),
        model_version: meta.version.clone(),
        features,
    }
}

/// Registers `model_json` for population stability monitoring when it carries its
/// development distributions (a model without them cannot be monitored; that is not an
/// error here). Registering the same version again keeps the first baseline.
async fn monitor(
    tx: &mut AnyConnection,
    model_json: &str,
    by: &str,
    now_ms: i64,
) -> Result<(), ApiError> {
    if crate::warnings::psi::check_model(model_json).is_err() {
        return Ok(());
    }
    crate::warnings::psi::register_baseline(tx, model_json, by, now_ms).await?;
    Ok(())
}

/// The policy in force, installing the defaults first when nothing is installed yet
/// (the first decision of a fresh database). Costs one statement once installed.
pub async fn policy_ready(store: &Store, now_ms: i64) -> Result<Policy, ApiError> {
    match policy_in_force(store).await {
        Err(ApiError::Conflict(_)) => {
            ensure_defaults(store, now_ms).await?;
            policy_in_force(store).await
        }
        other => other,
    }
}

/// Decides for an application with the policy in force (nothing stored).
pub async fn decide_application(
    state: &AppState,
    app: &ApplicationRow,
) -> Result<Pending, ApiError> {
    let policy = policy_ready(state.store(), state.now_ms()).await?;
    let applicant = gather(state, app, policy.rules.spec.recent_applications_days).await?;
    decided(&policy, applicant)
}

/// [`decide_application`] with the customer and the facts of the customer's documents
/// already read.
pub async fn decide_application_with(
    state: &AppState,
    app: &ApplicationRow,
    customer: &CustomerRow,
    docs: &(CustomerFacts, Vec<DocFacts>),
) -> Result<Pending, ApiError> {
    let policy = policy_ready(state.store(), state.now_ms()).await?;
    let applicant = gather_with(
        state,
        app,
        customer,
        docs,
        policy.rules.spec.recent_applications_days,
    )
    .await?;
    decided(&policy, applicant)
}

fn decided(policy: &Policy, applicant: Applicant) -> Result<Pending, ApiError> {
    let decision = run(policy, &applicant)?;
    Ok(Pending {
        observation: Some(observation(policy, &applicant)),
        applicant,
        decision,
        model_id: policy.champion.id,
        rule_set_id: policy.rule_set_id,
    })
}

/// What storing a decision writes, prepared once for either way of writing it.
struct DecisionWrite<'a> {
    p: &'a Pending,
    application_id: Option<i64>,
    subject: &'a str,
    caller: Option<&'a Caller>,
    now_ms: i64,
    input: String,
    digest: String,
    probability: String,
    reasons: String,
    fired: String,
    challengers: Vec<ChallengerRow>,
}

impl<'a> DecisionWrite<'a> {
    fn new(
        p: &'a Pending,
        application_id: Option<i64>,
        subject: &'a str,
        caller: Option<&'a Caller>,
        now_ms: i64,
    ) -> Result<Self, ApiError> {
        let d = &p.decision;
        Ok(DecisionWrite {
            p,
            application_id,
            subject,
            caller,
            now_ms,
            input: p.applicant.to_canonical_json(),
            digest: p.applicant.digest(),
            probability: d.probability.to_string(),
            reasons: serde_json::to_string(&d.reasons).map_err(ApiError::internal)?,
            fired: serde_json::to_string(&d.rules_fired).map_err(ApiError::internal)?,
            challengers: d
                .challengers
                .iter()
                .map(|c| ChallengerRow {
                    decision_id: 0,
                    model_id: c.model_id,
                    score: c.score,
                    probability: c.probability.to_string(),
                    outcome: c.outcome.as_str().into(),
                    grade: c.grade.clone(),
                })
                .collect(),
        })
    }

    fn decision(&self) -> NewDecision<'_> {
        let d = &self.p.decision;
        NewDecision {
            application_id: self.application_id,
            subject: self.subject,
            model_id: self.p.model_id,
            rule_set_id: self.p.rule_set_id,
            input: &self.input,
            input_digest: &self.digest,
            score: d.score,
            probability: &self.probability,
            outcome: d.outcome.as_str(),
            grade: &d.grade,
            limit_fen: d.limit_fen,
            price_band: &d.price_band,
            reasons: &self.reasons,
            rules_fired: &self.fired,
            created_by: self.caller.map(|c| c.user_id),
        }
    }

    fn audit(&self, id: i64) -> zhudai_store::audit::AuditDraft {
        let d = &self.p.decision;
        let draft = match self.caller {
            Some(c) => audit_draft(c, self.now_ms, "risk.decide", format!("decision:{id}")),
            None => zhudai_store::audit::AuditDraft::new(self.now_ms, "risk.decide", "success")
                .actor("system")
                .target(format!("decision:{id}")),
        };
        draft.reason(format!(
            "{}: {} score {} grade {} (model {}, rule set {}, input sha256 {})",
            self.subject,
            d.outcome.as_str(),
            d.score,
            d.grade,
            self.p.model_id,
            self.p.rule_set_id,
            self.digest
        ))
    }

    /// Population stability (issue #7 item 3): every stored decision is an observation
    /// of the champion's score and features, in the decision's transaction.
    fn observation(&self, id: i64) -> Option<zhudai_store::batch::Stmt> {
        self.p.observation.as_ref().map(|o| {
            zhudai_store::warnings::observation_insert_stmt(
                &o.model_name,
                &o.model_version,
                Some(&format!("decision:{id}")),
                self.now_ms,
                self.p.decision.score,
                &serde_json::Value::Object(o.features.clone()).to_string(),
            )
        })
    }
}

/// Stores a decision (and its challenger scores) in `tx`, with an audit record.
pub async fn store_in(
    tx: &mut AnyConnection,
    p: &Pending,
    application_id: Option<i64>,
    subject: &str,
    caller: Option<&Caller>,
    now_ms: i64,
) -> Result<i64, ApiError> {
    let w = DecisionWrite::new(p, application_id, subject, caller, now_ms)?;
    let id = zhudai_store::risk::decision_insert(tx, &w.decision(), &w.challengers, now_ms).await?;
    zhudai_store::audit::append(tx, &w.audit(id)).await?;
    if let Some(stmt) = w.observation(id) {
        stmt.fetch_all(tx).await?;
    }
    Ok(id)
}

/// [`store_in`] as a transaction of its own in two round trips on SQLite (the decision
/// and the audit head with `BEGIN`; the challengers, the audit record and the
/// observation with `COMMIT`). The stored row and its challenger scores.
pub async fn store(
    state: &AppState,
    p: &Pending,
    application_id: Option<i64>,
    subject: &str,
    caller: Option<&Caller>,
) -> Result<(DecisionRow, Vec<ChallengerRow>), ApiError> {
    let now_ms = state.now_ms();
    let w = DecisionWrite::new(p, application_id, subject, caller, now_ms)?;
    let mut b = zhudai_store::batch::Batch::new();
    b.push(zhudai_store::risk::decision_insert_stmt(
        &w.decision(),
        now_ms,
    ));
    b.push(zhudai_store::audit::head_advance_stmt());
    let (tx, r) = state.store().begin_with(b).await?;
    let row = zhudai_store::risk::decision_from_rows(&r[0])?;
    let record = zhudai_store::audit::seal_after(&r[1], &w.audit(row.id))?;
    let mut b = zhudai_store::batch::Batch::new();
    if let Some(stmt) = zhudai_store::risk::challengers_insert_stmt(row.id, &w.challengers) {
        b.push(stmt);
    }
    b.extend(zhudai_store::audit::record_stmts(&record));
    if let Some(stmt) = w.observation(row.id) {
        b.push(stmt);
    }
    tx.commit_with(b).await?;
    let challengers = w
        .challengers
        .into_iter()
        .map(|c| ChallengerRow {
            decision_id: row.id,
            ..c
        })
        .collect();
    Ok((row, challengers))
}

/// The latest decision of an application: its outcome in force, grade and score.
pub async fn latest_for(
    store: &Store,
    application_id: i64,
) -> Result<Option<DecisionRow>, ApiError> {
    Ok(store
        .risk_decisions(&zhudai_store::risk::DecisionQuery {
            application_id: Some(application_id),
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_iter()
        .next())
}

// ------------------------------------------------------------------ replay

/// What a replay found.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Replay {
    /// Outcome, score, probability, grade, limit, price band and reasons all equal.
    pub same: bool,
    /// The stored input still hashes to the stored digest.
    pub input_intact: bool,
    pub outcome: String,
    pub score: i64,
    pub probability: f64,
    pub grade: String,
    pub limit_fen: i64,
    pub price_band: String,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<zhudai_risk::ReasonCode>,
    /// What differs, if anything.
    pub differences: Vec<String>,
}

/// Re-runs a stored decision from its stored input with its own model and rule set
/// versions (challengers are not re-run).
pub async fn replay(store: &Store, row: &DecisionRow) -> Result<Replay, ApiError> {
    let applicant: Applicant = serde_json::from_str(&row.input)
        .map_err(|e| ApiError::Internal(format!("decision {} input: {e}", row.id)))?;
    let input_intact = applicant.digest() == row.input_digest;
    let rules = rule_set(store, row.rule_set_id).await?;
    let champion = bound_model(store, row.model_id).await?;
    let policy =
        Policy::new(row.rule_set_id, rules, champion, Vec::new()).map_err(ApiError::internal)?;
    let d = run(&policy, &applicant)?;
    let stored_reasons: Vec<zhudai_risk::ReasonCode> =
        serde_json::from_str(&row.reasons).map_err(ApiError::internal)?;
    let mut differences = Vec::new();
    if !input_intact {
        differences.push("input digest".to_owned());
    }
    if d.outcome.as_str() != row.outcome {
        differences.push(format!("outcome {} → {}", row.outcome, d.outcome.as_str()));
    }
    if d.score != row.score {
        differences.push(format!("score {} → {}", row.score, d.score));
    }
    if d.probability.to_string() != row.probability {
        differences.push(format!(
            "probability {} → {}",
            row.probability, d.probability
        ));
    }
    if d.grade != row.grade {
        differences.push(format!("grade {} → {}", row.grade, d.grade));
    }
    if d.limit_fen != row.limit_fen {
        differences.push(format!("limit {} → {}", row.limit_fen, d.limit_fen));
    }
    if d.price_band != row.price_band {
        differences.push(format!("price band {} → {}", row.price_band, d.price_band));
    }
    if d.reasons != stored_reasons {
        differences.push("reasons".to_owned());
    }
    Ok(Replay {
        same: differences.is_empty(),
        input_intact,
        outcome: d.outcome.as_str().into(),
        score: d.score,
        probability: d.probability,
        grade: d.grade,
        limit_fen: d.limit_fen,
        price_band: d.price_band,
        reasons: d.reasons,
        differences,
    })
}

// ------------------------------------------------------------------ models

/// Stores an uploaded model as a challenger (or champion when none exists).
pub async fn upload_model(
    state: &AppState,
    caller: &Caller,
    spec: &str,
    inputs: &str,
    note: Option<&str>,
) -> Result<i64, ApiError> {
    let (model, _) = check_model(spec, inputs).map_err(ApiError::Validation)?;
    let meta = &model.spec().metadata;
    if meta.name.trim().is_empty() || meta.version.trim().is_empty() {
        return Err(ApiError::field(
            "model",
            "invalid",
            "metadata.name and metadata.version are required",
        ));
    }
    let inputs = if inputs.trim().is_empty() {
        "[]"
    } else {
        inputs
    };
    let now = state.now_ms();
    let status = if state.store().risk_in_force().await?.1.is_none() {
        "champion"
    } else {
        "challenger"
    };
    let mut tx = state.store().begin().await?;
    let id = match zhudai_store::risk::model_insert(
        &mut tx,
        &NewModel {
            name: &meta.name,
            version: &meta.version,
            status,
            spec,
            inputs,
            digest: &model_digest(spec, inputs),
            note,
            created_by: Some(caller.user_id),
        },
        now,
    )
    .await
    {
        Ok(id) => id,
        Err(e) if e.is_unique_violation("risk_models_name_version_key", "risk_models.name") => {
            return Err(ApiError::field(
                "model",
                "duplicate",
                format!(
                    "model {} version {} is already stored",
                    meta.name, meta.version
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "risk.model.upload", format!("model:{id}")).reason(format!(
            "{} v{} as {status}, sha256 {}",
            meta.name,
            meta.version,
            model_digest(spec, inputs)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Makes a challenger the champion (the champion becomes a challenger); audited.
pub async fn promote(state: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    let row = state
        .store()
        .risk_model(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no model has id {id}")))?;
    if row.status == "retired" {
        return Err(ApiError::Conflict(
            "a retired model cannot be promoted; make it a challenger first".into(),
        ));
    }
    // Loads before it decides anything.
    bound_model(state.store(), id).await?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let previous = zhudai_store::risk::model_promote(&mut tx, id, caller.user_id, now).await?;
    monitor(&mut tx, &row.spec, &caller.username, now).await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "risk.model.promote", format!("model:{id}")).reason(format!(
            "{} v{} is the champion (was model {})",
            row.name,
            row.version,
            previous.map_or_else(|| "none".into(), |p| p.to_string())
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Retires a model, or brings a retired one back as a challenger; audited.
pub async fn set_model_status(
    state: &AppState,
    caller: &Caller,
    id: i64,
    status: &str,
) -> Result<(), ApiError> {
    if !matches!(status, "challenger" | "retired") {
        return Err(ApiError::field(
            "status",
            "invalid",
            "status is `challenger` or `retired` (promote makes a champion)",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    if !zhudai_store::risk::model_set_status(&mut tx, id, status).await? {
        return Err(ApiError::Conflict(
            "no such model, or it is the champion: promote another one first".into(),
        ));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "risk.model.status", format!("model:{id}"))
            .reason(status.to_owned()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Parsed model row for pages.
pub fn parse_model(row: &ModelRow) -> Option<Scorecard> {
    Scorecard::from_json(&row.spec).ok()
}

// ------------------------------------------------------------------ rule sets

/// Checks rule set source; every problem as a field error.
pub fn check_rules(source: &str) -> Result<RuleSet, Vec<FieldError>> {
    RuleSet::from_toml(source).map_err(problems_to_fields)
}

/// Saves a checked rule set as the next version, enabling it when asked; audited.
pub async fn save_rules(
    state: &AppState,
    caller: &Caller,
    source: &str,
    enable: bool,
) -> Result<(i64, i64), ApiError> {
    let rules = check_rules(source).map_err(ApiError::Validation)?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let (id, version) = zhudai_store::risk::rule_set_insert(
        &mut tx,
        &rules.spec.name,
        source,
        &digest(source),
        Some(caller.user_id),
        now,
    )
    .await?;
    if enable {
        zhudai_store::risk::rule_set_enable(&mut tx, id, Some(caller.user_id), now).await?;
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "risk.rules.save", format!("rule_set:{id}")).reason(format!(
            "version {version}{}, {} rules, sha256 {}",
            if enable { ", enabled" } else { "" },
            rules.spec.rules.len(),
            digest(source)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok((id, version))
}

/// Enables a stored version (it is compiled again first); audited.
pub async fn enable_rules(state: &AppState, caller: &Caller, id: i64) -> Result<i64, ApiError> {
    let row = state
        .store()
        .risk_rule_set(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rule set has id {id}")))?;
    check_rules(&row.source).map_err(ApiError::Validation)?;
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    zhudai_store::risk::rule_set_enable(&mut tx, id, Some(caller.user_id), now).await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(caller, now, "risk.rules.enable", format!("rule_set:{id}"))
            .reason(format!("version {}", row.version)),
    )
    .await?;
    tx.commit().await?;
    Ok(row.version)
}

/// One sample row's result in a rule test.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RuleTestRow {
    pub row: usize,
    /// The champion's score of the row.
    pub score: Option<i64>,
    /// The outcome with this rule set and the champion.
    pub outcome: Option<String>,
    pub grade: Option<String>,
    pub fired: Vec<String>,
    /// Rules that could not be evaluated, with why.
    pub errors: Vec<String>,
    /// The row itself could not be read.
    pub invalid: Option<String>,
}

/// Sample rows: a JSON array of applicants, or CSV whose header names fields
/// (`app.amount`, `applicant.age`, `features.<name>`).
pub fn parse_samples(text: &str) -> Vec<Result<Applicant, String>> {
    let t = text.trim();
    if t.starts_with('[') || t.starts_with('{') {
        let values: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(t) {
            Ok(serde_json::Value::Array(a)) => a,
            Ok(v) => vec![v],
            Err(e) => return vec![Err(format!("JSON: {e}"))],
        };
        return values
            .into_iter()
            .map(|v| serde_json::from_value::<Applicant>(v).map_err(|e| e.to_string()))
            .collect();
    }
    let table = match zhudai_scorecard::io::read_csv(t.as_bytes()) {
        Ok(t) => t,
        Err(e) => return vec![Err(e.to_string())],
    };
    table
        .records
        .iter()
        .map(|r| {
            let pairs: Vec<(&str, &str)> = table
                .header
                .iter()
                .map(String::as_str)
                .zip(r.iter().map(String::as_str))
                .collect();
            Applicant::from_flat(&pairs)
        })
        .collect()
}

/// Runs a (not yet saved) rule set over sample rows with the champion model.
pub async fn test_rules(
    state: &AppState,
    source: &str,
    samples: &str,
) -> Result<Vec<RuleTestRow>, ApiError> {
    let rules = Arc::new(check_rules(source).map_err(ApiError::Validation)?);
    ensure_defaults(state.store(), state.now_ms()).await?;
    let (_, champion) = state.store().risk_in_force().await?;
    let champion = match champion {
        Some(id) => Some(bound_model(state.store(), id).await?),
        None => None,
    };
    let policy = match champion {
        Some(c) => Some(Policy::new(0, rules.clone(), c, Vec::new()).map_err(ApiError::internal)?),
        None => None,
    };
    let rows = parse_samples(samples);
    if rows.len() > 1000 {
        return Err(ApiError::field(
            "samples",
            "too_many",
            "test at most 1,000 rows at a time",
        ));
    }
    let mut out = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        let mut row = RuleTestRow {
            row: i + 1,
            score: None,
            outcome: None,
            grade: None,
            fired: Vec::new(),
            errors: Vec::new(),
            invalid: None,
        };
        match r {
            Err(e) => row.invalid = Some(e),
            Ok(a) => {
                if let Some(p) = &policy {
                    match run(p, &a) {
                        Ok(d) => {
                            row.score = Some(d.score);
                            row.outcome = Some(d.outcome.as_str().into());
                            row.grade = Some(d.grade.clone());
                            row.fired = d.rules_fired.clone();
                            row.errors = d
                                .reasons
                                .iter()
                                .filter(|r| r.kind == "rule_error")
                                .map(|r| format!("{}: {}", r.code, r.en))
                                .collect();
                        }
                        Err(e) => row.invalid = Some(e.to_string()),
                    }
                }
            }
        }
        out.push(row);
    }
    Ok(out)
}

// ------------------------------------------------------------------ overrides

/// Asks for a decision's outcome to be changed; another person must approve it.
pub async fn request_override(
    state: &AppState,
    caller: &Caller,
    decision_id: i64,
    outcome: &str,
    reason: &str,
) -> Result<i64, ApiError> {
    let mut errors = Vec::new();
    if Outcome::parse(outcome).is_none() {
        errors.push(FieldError::new(
            "outcome",
            "invalid",
            "the outcome is approve, refer or reject",
        ));
    }
    if reason.trim().chars().count() < 4 {
        errors.push(FieldError::new(
            "reason",
            "required",
            "say why the decision should change",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let d = state
        .store()
        .risk_decision(decision_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no decision has id {decision_id}")))?;
    if d.final_outcome == outcome {
        return Err(ApiError::field(
            "outcome",
            "unchanged",
            format!("the decision's outcome is already {outcome}"),
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let id = match zhudai_store::risk::override_insert(
        &mut tx,
        decision_id,
        outcome,
        reason.trim(),
        caller.user_id,
        now,
    )
    .await
    {
        Ok(id) => id,
        Err(e) if e.is_unique_violation("risk_overrides_pending_key", "pending_decision") => {
            return Err(ApiError::Conflict(
                "an override of this decision is already waiting for approval".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "risk.override.request",
            format!("decision:{decision_id}"),
        )
        .reason(format!(
            "{} → {outcome}: {}",
            d.final_outcome,
            reason.trim()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Approves or refuses a pending override (never by its requester). An approved
/// override changes the decision's outcome in force; when it rejects an application still
/// waiting for approval, the application is rejected (workflow event `risk_override`).
pub async fn decide_override(
    state: &AppState,
    caller: &Caller,
    decision_id: i64,
    override_id: i64,
    approve: bool,
    note: Option<&str>,
) -> Result<(), ApiError> {
    let o = state
        .store()
        .risk_override(override_id)
        .await?
        .filter(|o| o.decision_id == decision_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no override {override_id} of decision {decision_id}"
            ))
        })?;
    if o.requested_by == caller.user_id {
        return Err(ApiError::Forbidden(
            "two-person rule: you asked for this override, so someone else must decide it".into(),
        ));
    }
    if o.state != "pending" {
        return Err(ApiError::Conflict(format!(
            "this override was already {}",
            o.state
        )));
    }
    let d = state
        .store()
        .risk_decision(decision_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no decision has id {decision_id}")))?;
    let now = state.now_ms();
    let state_s = if approve { "approved" } else { "refused" };
    // An approved rejection of an application waiting for approval moves its workflow.
    let app = match (approve, o.outcome.as_str(), d.application_id) {
        (true, "reject", Some(app_id)) => state.store().application(app_id).await?,
        _ => None,
    };
    let moving = match &app {
        Some(a) => {
            let inst = crate::applications::instance(state, a).await?;
            (inst.node == "approval" && inst.status == "running").then_some((a.clone(), inst))
        }
        None => None,
    };
    let facts = match &moving {
        Some((a, inst)) => {
            let def = crate::workflow::definition(
                state.store(),
                &inst.definition_code,
                inst.definition_version,
            )
            .await?;
            Some(crate::applications::facts(state, a, &def).await?)
        }
        None => None,
    };
    let mut tx = state.store().begin().await?;
    if !zhudai_store::risk::override_decide(
        &mut tx,
        override_id,
        state_s,
        caller.user_id,
        note,
        now,
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "someone decided this override at the same moment; reload it".into(),
        ));
    }
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "risk.override.decide",
            format!("decision:{decision_id}"),
        )
        .reason(format!(
            "override {override_id} {state_s}: {} → {} ({})",
            d.final_outcome, o.outcome, o.reason
        )),
    )
    .await?;
    if let (Some((a, inst)), Some(facts)) = (moving, facts) {
        let acted = crate::workflow::act_in(
            &mut tx,
            state.store(),
            None,
            inst.id,
            Some(inst.version),
            &zhudai_workflow::Action::Event {
                name: "risk_override".into(),
            },
            &facts,
            now,
        )
        .await?;
        zhudai_store::applications::application_set_progress(
            &mut *tx,
            a.id,
            crate::applications::status_after(&acted),
            &acted.node,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

// ------------------------------------------------------------------ blacklist

/// Adds an identifier to the blacklist (stored as its blind index only); audited.
pub async fn blacklist_add(
    state: &AppState,
    caller: &Caller,
    field: &str,
    value: &str,
    reason: &str,
) -> Result<bool, ApiError> {
    use zhudai_crypto::blind_index::FieldKind;
    let v = state.vault();
    let bidx = match field {
        "id_number" => {
            let id = zhudai_domain::ident::ResidentId::parse(value)
                .map_err(|e| ApiError::field("value", e.code(), e.to_string()))?;
            v.blind_index(FieldKind::IdNumber, id.as_str())
        }
        "phone" => {
            let m = zhudai_domain::ident::Mobile::parse(value)
                .map_err(|e| ApiError::field("value", e.code(), e.to_string()))?;
            v.blind_index(FieldKind::Phone, m.as_str())
        }
        "bank_card" => {
            let c = zhudai_domain::ident::BankCard::parse(value)
                .map_err(|e| ApiError::field("value", e.code(), e.to_string()))?;
            v.blind_index(FieldKind::BankCard, c.as_str())
        }
        _ => {
            return Err(ApiError::field(
                "field",
                "invalid",
                "the field is id_number, phone or bank_card",
            ))
        }
    };
    if reason.trim().is_empty() {
        return Err(ApiError::field(
            "reason",
            "required",
            "say why it is listed",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let added = zhudai_store::risk::blacklist_insert(
        &mut *tx,
        field,
        &bidx,
        reason.trim(),
        Some(caller.user_id),
        now,
    )
    .await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "risk.blacklist.add",
            format!("blacklist:{field}"),
        )
        .reason(reason.trim().to_owned()),
    )
    .await?;
    tx.commit().await?;
    Ok(added)
}

/// Removes a blacklist entry (listed by mistake, or the reason has lapsed). A reason is
/// required; the removal is audited with the entry's field, and the audit trail keeps
/// when it was listed and by whom.
pub async fn blacklist_remove(
    state: &AppState,
    caller: &Caller,
    id: i64,
    reason: &str,
) -> Result<(), ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::field(
            "reason",
            "required",
            "say why it is removed",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let field = zhudai_store::risk::blacklist_delete(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no blacklist entry has id {id}")))?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "risk.blacklist.remove",
            format!("blacklist:{id}"),
        )
        .reason(format!("{field}: {reason}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
