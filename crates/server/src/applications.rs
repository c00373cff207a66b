//! Loan applications on the origination workflow: created for a customer in the caller's
//! scope on an active product version (amount, term, method and the customer's age
//! checked against it), carried by the workflow engine with facts computed from the
//! application, the product and the customer's verified documents.

use crate::auth::Caller;
use crate::customers::{audit_draft, load_in_scope, scope_of};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::workflow as wf;
use zhudai_domain::document::{materials_complete, CustomerFacts, DocFacts, DocumentType};
use zhudai_domain::money::Fen;
use zhudai_domain::product::ProductStatus;
use zhudai_domain::schedule::RepaymentMethod;
use zhudai_expr::Record;
use zhudai_store::applications::{
    application_insert, application_set_progress_stmt, application_set_routing_stmt,
    ApplicationRow, NewApplication,
};
use zhudai_store::batch::Batch;
use zhudai_store::customers::CustomerRow;
use zhudai_store::risk::DecisionRow;
use zhudai_store::workflow::InstanceRow;
use zhudai_workflow::{Action, Status};

/// The workflow every application follows.
pub const WORKFLOW: &str = "origination";

/// What a new application asks for.
#[derive(Debug, Clone, Default)]
pub struct ApplicationInput {
    pub customer_id: i64,
    pub product_code: String,
    /// Yuan, e.g. `"30000"`.
    pub amount: String,
    pub months: i64,
    /// `equal_installment`, `equal_principal`, `interest_first` or `bullet`; the
    /// product's first method when empty.
    pub method: String,
    pub purpose: Option<String>,
}

/// Creates the application and starts its workflow instance in one transaction.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: &ApplicationInput,
) -> Result<i64, ApiError> {
    let mut errors = Vec::new();
    let customer = match load_in_scope(state, caller, input.customer_id).await {
        Ok((c, _)) => Some(c),
        Err(ApiError::NotFound(m) | ApiError::Forbidden(m)) => {
            errors.push(FieldError::new("customer_id", "unknown", m));
            None
        }
        Err(e) => return Err(e),
    };
    if customer.as_ref().is_some_and(|c| c.status != "active") {
        errors.push(FieldError::new(
            "customer_id",
            "inactive",
            "the customer is not active",
        ));
    }
    let product = state.store().product_by_code(&input.product_code).await?;
    let version = match &product {
        Some(p) if p.status == ProductStatus::Active => {
            state.store().product_version(p.id, None).await?
        }
        Some(_) => {
            errors.push(FieldError::new(
                "product_code",
                "inactive",
                "the product is not open for applications",
            ));
            None
        }
        None => {
            errors.push(FieldError::new(
                "product_code",
                "unknown",
                format!("no product has the code `{}`", input.product_code),
            ));
            None
        }
    };
    let amount = match Fen::parse(&input.amount) {
        Ok(a) if a.is_positive() => Some(a),
        _ => {
            errors.push(FieldError::new(
                "amount",
                "invalid",
                "the amount is a positive sum in yuan such as 30000.00",
            ));
            None
        }
    };
    let mut method = None;
    if let Some(v) = &version {
        let spec = &v.spec;
        if let Some(a) = amount {
            if a < spec.min_amount || a > spec.max_amount {
                errors.push(FieldError::new(
                    "amount",
                    "out_of_range",
                    format!(
                        "this product lends {} to {} yuan",
                        spec.min_amount, spec.max_amount
                    ),
                ));
            }
        }
        if input.months < i64::from(spec.min_months) || input.months > i64::from(spec.max_months) {
            errors.push(FieldError::new(
                "months",
                "out_of_range",
                format!(
                    "this product's terms are {}–{} months",
                    spec.min_months, spec.max_months
                ),
            ));
        }
        method = if input.method.trim().is_empty() {
            spec.methods.first().copied()
        } else {
            match RepaymentMethod::parse(&input.method) {
                Ok(m) if spec.methods.contains(&m) => Some(m),
                _ => {
                    errors.push(FieldError::new(
                        "method",
                        "not_offered",
                        "this product does not offer that repayment method",
                    ));
                    None
                }
            }
        };
        if let Some(c) = &customer {
            let age = c
                .birth_date
                .as_deref()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .and_then(|b| state.clock().today().years_since(b));
            if let Some(age) = age {
                let e = &spec.eligibility;
                if age < e.min_age || age > e.max_age {
                    errors.push(FieldError::new(
                        "customer_id",
                        "age",
                        format!(
                            "the customer is {age}; this product lends to ages {}–{}",
                            e.min_age, e.max_age
                        ),
                    ));
                }
            }
        }
    }
    let (Some(customer), Some(version), Some(amount), Some(method), true) =
        (customer, version, amount, method, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let now = state.now_ms();
    let ref_ = uuid::Uuid::now_v7().to_string();
    let purpose = input
        .purpose
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    // Installing the default flow takes the writer: before this transaction does.
    wf::ensure_defaults(state.store(), now).await?;
    let mut tx = state.store().begin().await?;
    let id = application_insert(
        &mut *tx,
        &NewApplication {
            ref_: &ref_,
            customer_id: customer.id,
            product_code: &input.product_code,
            product_version: version.version,
            amount_fen: amount.as_fen(),
            months: input.months,
            method: method.code(),
            purpose,
            owner_user_id: caller.user_id,
            org_unit_id: caller.org_unit_id,
        },
        now,
    )
    .await?;
    wf::start_in(&mut tx, state.store(), WORKFLOW, "application", id, now).await?;
    zhudai_store::audit::append(
        &mut tx,
        &audit_draft(
            caller,
            now,
            "application.create",
            format!("application:{id}"),
        )
        .reason(format!(
            "customer:{} {} v{} {} yuan {} months",
            customer.id, input.product_code, version.version, amount, input.months
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Loads an application inside the caller's data scope (404 / 403).
pub async fn load(state: &AppState, caller: &Caller, id: i64) -> Result<ApplicationRow, ApiError> {
    let app = state
        .store()
        .application(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no application has id {id}")))?;
    in_scope(state, caller, app).await
}

/// [`load`] and [`instance`] in one read.
pub async fn load_at(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(ApplicationRow, InstanceRow), ApiError> {
    let (app, inst) = state
        .store()
        .application_with_instance(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no application has id {id}")))?;
    let app = in_scope(state, caller, app).await?;
    let inst =
        inst.ok_or_else(|| ApiError::Internal(format!("application {} has no workflow", app.id)))?;
    Ok((app, inst))
}

async fn in_scope(
    state: &AppState,
    caller: &Caller,
    app: ApplicationRow,
) -> Result<ApplicationRow, ApiError> {
    let scope = scope_of(caller, state.store()).await?;
    if !scope.admits(app.owner_user_id, app.org_unit_id) {
        return Err(ApiError::Forbidden(
            "this application is outside your data scope".into(),
        ));
    }
    Ok(app)
}

/// The workflow instance of an application.
pub async fn instance(state: &AppState, app: &ApplicationRow) -> Result<InstanceRow, ApiError> {
    state
        .store()
        .instance_of("application", app.id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("application {} has no workflow", app.id)))
}

/// The workflow node where the credit decision is made (issue #7).
pub const DECISION_NODE: &str = "decision";

/// The facts the guards and approval-chain rules read. `decision.outcome` and
/// `decision.grade` are those of the application's latest credit decision (issue #7), its
/// outcome in force after any approved override; before any decision, `pass` and `C`.
pub async fn facts(
    state: &AppState,
    app: &ApplicationRow,
    def: &zhudai_workflow::Definition,
) -> Result<Record, ApiError> {
    Ok(gather(state, app, def).await?.facts)
}

/// [`facts`] with the rows they were computed from: an approval that goes on to funder
/// routing in the same request reuses them instead of reading them again.
#[derive(Debug)]
pub struct Gathered {
    pub facts: Record,
    pub customer: CustomerRow,
    /// The customer's facts and the facts of the customer's documents.
    pub docs: (CustomerFacts, Vec<DocFacts>),
    /// The application's latest credit decision when the facts were gathered.
    pub latest: Option<DecisionRow>,
}

/// Reads what [`facts`] needs and computes them.
pub async fn gather(
    state: &AppState,
    app: &ApplicationRow,
    def: &zhudai_workflow::Definition,
) -> Result<Gathered, ApiError> {
    let mut r = def.new_facts();
    let mut set =
        |name: &str,
         f: &dyn Fn(&mut Record, zhudai_expr::Slot) -> Result<(), zhudai_expr::RecordError>|
         -> Result<(), ApiError> {
            if let Some(slot) = def.schema.slot(name) {
                f(&mut r, slot).map_err(|e| ApiError::Internal(format!("fact `{name}`: {e}")))?;
            }
            Ok(())
        };
    set("app.amount", &|r, s| {
        r.set_decimal_units(s, i128::from(app.amount_fen))
    })?;
    set("app.months", &|r, s| r.set_int(s, app.months))?;
    let latest = crate::risk::latest_for(state.store(), app.id).await?;
    let (outcome, grade) = latest.as_ref().map_or(("pass", "C"), |d| {
        (d.final_outcome.as_str(), d.grade.as_str())
    });
    set("decision.outcome", &|r, s| r.set_str(s, outcome))?;
    set("decision.grade", &|r, s| r.set_str(s, grade))?;
    set("funder.approved", &|r, s| r.set_bool(s, false))?;
    let customer = customer_of(state, app).await?;
    let docs = crate::customer_docs::facts(state, &customer).await?;
    let complete = materials_verified(state, app, &docs.1).await?;
    set("documents.complete", &|r, s| r.set_bool(s, complete))?;
    Ok(Gathered {
        facts: r,
        customer,
        docs,
        latest,
    })
}

async fn customer_of(state: &AppState, app: &ApplicationRow) -> Result<CustomerRow, ApiError> {
    state
        .store()
        .customer_get(app.customer_id)
        .await?
        .ok_or_else(|| ApiError::Internal("customer vanished".into()))
}

/// Every material the product version requires is verified (newest version of each).
pub async fn documents_complete(state: &AppState, app: &ApplicationRow) -> Result<bool, ApiError> {
    let customer = customer_of(state, app).await?;
    let (_, docs) = crate::customer_docs::facts(state, &customer).await?;
    materials_verified(state, app, &docs).await
}

/// [`documents_complete`] with the facts of the customer's documents already read.
async fn materials_verified(
    state: &AppState,
    app: &ApplicationRow,
    docs: &[DocFacts],
) -> Result<bool, ApiError> {
    let version = state
        .store()
        .product_version_of(&app.product_code, app.product_version)
        .await?
        .ok_or_else(|| ApiError::Internal("product version vanished".into()))?;
    let required: Vec<DocumentType> = version
        .spec
        .eligibility
        .required_materials
        .iter()
        .filter_map(|m| DocumentType::parse(m))
        .collect();
    Ok(materials_complete(&required, docs, state.clock().today()).is_ok())
}

/// The application status an action left it in.
pub(crate) fn status_after(acted: &wf::Acted) -> &'static str {
    match &acted.finished {
        Some(o) => status_of(&acted.node, &Status::Finished { outcome: o.clone() }),
        None => status_of(&acted.node, &Status::Running),
    }
}

fn status_of(node: &str, status: &Status) -> &'static str {
    match status {
        Status::Finished { outcome } => match outcome.as_str() {
            "disbursed" => "disbursed",
            "rejected" => "rejected",
            "withdrawn" => "withdrawn",
            _ => "expired",
        },
        Status::Running => match node {
            "draft" => "draft",
            "routing" | "contract" | "disbursement" => "approved",
            _ => "in_progress",
        },
    }
}

/// Applies a person's action to an application's workflow (inside the caller's scope),
/// mirroring its new position on the application in the same transaction.
pub async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    expected_version: Option<i64>,
    action: &Action,
) -> Result<wf::Acted, ApiError> {
    let (app, inst) = load_at(state, caller, id).await?;
    let def = wf::definition(
        state.store(),
        &inst.definition_code,
        inst.definition_version,
    )
    .await?;
    let mut gathered = gather(state, &app, &def).await?;
    // Issue #7: when this step can lead into the automatic decision, decide first (the
    // engine is pure; the facts it reads are gathered here), so the guards after the
    // decision node see its outcome and grade; it is stored only if the step went there.
    let on = match action {
        Action::Event { name } => format!("event:{name}"),
        other => other.name().to_owned(),
    };
    let pending = if def
        .spec
        .transitions
        .iter()
        .any(|t| t.from == inst.node && t.to == DECISION_NODE && t.on == on)
    {
        let p =
            crate::risk::decide_application_with(state, &app, &gathered.customer, &gathered.docs)
                .await?;
        for (name, value) in [
            ("decision.outcome", p.decision.outcome.as_str()),
            ("decision.grade", p.decision.grade.as_str()),
        ] {
            if let Some(slot) = def.schema.slot(name) {
                gathered
                    .facts
                    .set_str(slot, value)
                    .map_err(|e| ApiError::Internal(format!("fact `{name}`: {e}")))?;
            }
        }
        Some(p)
    } else {
        None
    };
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    // Contracts (issue #6): the contract step is completed only with a signed contract.
    crate::contracts::before_action(&mut tx, &app, &inst.node, action).await?;
    let acted = wf::act_on(
        &mut tx,
        state.store(),
        Some(caller),
        &inst,
        expected_version,
        action,
        &gathered.facts,
        now,
    )
    .await?;
    let mut decided = None;
    if let Some(p) = &pending {
        if acted.visited.iter().any(|n| n == DECISION_NODE) {
            crate::risk::store_in(
                &mut tx,
                p,
                Some(app.id),
                &format!("application:{}", app.id),
                None,
                now,
            )
            .await?;
            decided = Some(RoutedOn {
                grade: p.decision.grade.clone(),
                score: p.decision.score,
            });
        }
    }
    // Contracts (issue #6): void on withdrawal, simulated disbursement on completion.
    crate::contracts::after_action(
        &mut tx,
        state,
        &app,
        &inst.node,
        &acted.node,
        &caller.username,
        now,
    )
    .await?;
    // The application's new position rides with the commit.
    let mut last = Batch::new();
    last.push(application_set_progress_stmt(
        id,
        status_after(&acted),
        &acted.node,
        now,
    ));
    tx.commit_with(last).await?;
    if acted.node == "routing" && acted.finished.is_none() {
        // The decision routing goes by: the one this action just made, or the latest.
        let decision = decided.or_else(|| {
            gathered.latest.as_ref().map(|d| RoutedOn {
                grade: d.grade.clone(),
                score: d.score,
            })
        });
        let at = AtRouting {
            instance_id: inst.id,
            version: acted.version,
            def,
            facts: gathered.facts,
        };
        // A funder that decided at once moved the flow on: answer with where the
        // application is now, not where this action left it.
        if let Some(moved) = route(state, &app, &gathered.customer, decision.as_ref(), at).await? {
            return Ok(wf::Acted {
                visited: acted.visited,
                ..moved
            });
        }
    }
    Ok(acted)
}

/// The credit decision routing passes on to funders.
#[derive(Debug, Clone)]
pub struct RoutedOn {
    pub grade: String,
    pub score: i64,
}

/// Where the workflow stood when routing started inside the same request: the
/// instance, its version after the action, and the facts its guards were given (the
/// event that follows routing reuses them instead of reading them again).
#[derive(Debug)]
pub struct AtRouting {
    pub instance_id: i64,
    pub version: i64,
    pub def: std::sync::Arc<zhudai_workflow::Definition>,
    pub facts: Record,
}

/// Places an approved application with a funder: starts a routing run with the product
/// version's funders and the customer's facts (read by the approval), then syncs the
/// workflow with its result (a simulated funder decides at once; an HTTP funder may
/// answer later by callback). A run that finished at once moves the workflow on from
/// the position `at` (the approval's) describes, and the new position is returned.
async fn route(
    state: &AppState,
    app: &ApplicationRow,
    customer: &CustomerRow,
    decision: Option<&RoutedOn>,
    at: AtRouting,
) -> Result<Option<wf::Acted>, ApiError> {
    let version = state
        .store()
        .product_version_of(&app.product_code, app.product_version)
        .await?
        .ok_or_else(|| ApiError::Internal("product version vanished".into()))?;
    let age = customer
        .birth_date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|b| state.clock().today().years_since(b))
        .unwrap_or(0);
    let province = customer
        .region_code
        .as_deref()
        .and_then(|r| r.get(..2))
        .and_then(zhudai_domain::ident::province_name)
        .unwrap_or("")
        .to_owned();
    let req = zhudai_domain::routing::RoutingRequest {
        application_ref: app.ref_.clone(),
        product_code: app.product_code.clone(),
        amount_fen: app.amount_fen,
        months: app.months,
        customer_ref: customer.ref_.clone(),
        customer: zhudai_domain::routing::CustomerFacts {
            age: i64::from(age),
            province,
        },
        // Issue #7: the application's latest credit decision.
        decision: zhudai_domain::routing::DecisionFacts {
            risk_grade: decision.map_or_else(|| "C".into(), |d| d.grade.clone()),
            score: decision.map_or(0, |d| d.score),
        },
        allowed_funders: Some(version.spec.funder_codes.clone()),
    };
    let run = crate::routing::start_run(state, &req, "system")
        .await
        .map_err(|e| ApiError::Internal(format!("routing: {e}")))?;
    let finished = matches!(run.state.as_str(), "routed" | "exhausted");
    let remember = || {
        zhudai_store::applications::application_set_routing(
            state.store().writer(),
            app.id,
            run.id,
            None,
            state.now_ms(),
        )
    };
    if finished {
        // Decided at once: the workflow's event records the run with the outcome.
        let moved = sync_run(state, app.id, &run, Some(at)).await;
        if !matches!(moved, Ok(Some(_))) {
            // The event did not happen here (someone acted meanwhile, or it failed):
            // the application still names its run, for a later sync.
            remember().await?;
        }
        moved
    } else {
        // Still waiting (a callback or a retry will sync it): remember the run, then
        // sync in case a callback finished it before the application named it.
        remember().await?;
        sync_routing(state, app.id).await.map(|_| None)
    }
}

/// Moves the workflow on when the application's routing run has finished: the
/// `funder_decided` event with `funder.approved` true when a funder took it. Does
/// nothing while the run is still waiting (a callback or a retry will call this again).
pub async fn sync_routing(state: &AppState, app_id: i64) -> Result<(), ApiError> {
    let Some(app) = state.store().application(app_id).await? else {
        return Ok(());
    };
    let Some(run_id) = app.routing_run_id else {
        return Ok(());
    };
    let Some((run, _)) = state.store().routing_run(run_id).await? else {
        return Ok(());
    };
    sync_run(state, app_id, &run, None).await.map(|_| ())
}

/// [`sync_routing`] for a run already read. Without `at`, the workflow's position and
/// facts are read; with it, they are those the approval in this request left.
async fn sync_run(
    state: &AppState,
    app_id: i64,
    run: &zhudai_store::partners::RunRow,
    at: Option<AtRouting>,
) -> Result<Option<wf::Acted>, ApiError> {
    let approved = match run.state.as_str() {
        "routed" => true,
        "exhausted" => false,
        _ => return Ok(None),
    };
    let (instance_id, version, def, mut facts) = match at {
        Some(at) => (at.instance_id, at.version, at.def, at.facts),
        None => {
            let Some(app) = state.store().application(app_id).await? else {
                return Ok(None);
            };
            let inst = instance(state, &app).await?;
            if inst.node != "routing" || inst.status != "running" {
                return Ok(None);
            }
            let def = wf::definition(
                state.store(),
                &inst.definition_code,
                inst.definition_version,
            )
            .await?;
            let facts = facts(state, &app, &def).await?;
            (inst.id, inst.version, def, facts)
        }
    };
    if let Some(slot) = def.schema.slot("funder.approved") {
        facts
            .set_bool(slot, approved)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    // The version check refuses the event if anyone moved the workflow meanwhile.
    let acted = match wf::act_in(
        &mut tx,
        state.store(),
        None,
        instance_id,
        Some(version),
        &Action::Event {
            name: "funder_decided".into(),
        },
        &facts,
        now,
    )
    .await
    {
        Ok(a) => a,
        // Someone else synced it at the same moment.
        Err(ApiError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut last = Batch::new();
    last.push(application_set_progress_stmt(
        app_id,
        status_after(&acted),
        &acted.node,
        now,
    ));
    last.push(application_set_routing_stmt(
        app_id,
        run.id,
        run.funder_code.as_deref().filter(|_| approved),
        now,
    ));
    tx.commit_with(last).await?;
    Ok(Some(acted))
}

/// [`sync_routing`] for the application a routing run was started for (by its ref);
/// called when a run finishes outside a request of ours (a callback, a retry).
pub async fn sync_routing_by_ref(state: &AppState, application_ref: &str) {
    match state.store().application_by_ref(application_ref).await {
        Ok(Some(app)) => {
            if let Err(e) = sync_routing(state, app.id).await {
                tracing::warn!(application = app.id, error = %e, "could not move the application on after routing");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "looking up a routed application"),
    }
}
