//! Funder routing, orchestrated: builds the candidates of a [`RoutingRequest`] (eligibility
//! rules compiled once per rule version, quotas, pricing, past approval rates), asks the
//! pure waterfall ([`zhudai_domain::routing::plan`]) for the order, and tries each funder
//! through its [`FunderAdapter`] until one approves. Every step is recorded in
//! `routing_steps`; see `docs/decisions/0009-funder-routing.md`.
//!
//! * **Simulated funder** ([`SimulatedFunder`]): approves about `sim_approval_bp`/10,000
//!   applications, deterministically from its seed, after `sim_latency_ms` (± 50 %).
//! * **HTTP funder** ([`HttpFunder`]): `POST {endpoint}` with a JSON body signed with
//!   HMAC-SHA256 over `timestamp + "." + body` ([`sign`]); the answer is `approved`,
//!   `declined` or `pending` (decided later by a callback to
//!   `POST /api/v1/funder-callbacks/{code}`, verified by [`verify`] and idempotent by
//!   callback id).
//! * **Failures.** A decline or a timeout moves to the next funder. A funder that cannot
//!   be reached (connection refused, 5xx) is retried through the job queue with backoff
//!   (2, 4, 8 … s) up to `max_retries` times, then passed over.
//! * **One advancer per run.** A run is advanced by the request that started it, then
//!   only by whoever wins the conditional state change `retrying → running` (the retry
//!   job) or `pending → running` (a declining callback); so two workers never call a
//!   funder for the same run at once.

use crate::state::AppState;
use crate::vault::FieldAad;
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;
use zhudai_domain::partner::{may_originate, OriginationFacts, PartnerKind, PartnerStatus};
use zhudai_domain::routing::{
    plan, simulated_approves, simulated_latency_ms, Candidate, Criterion, RoutingRequest,
    SkipReason, Waterfall,
};
use zhudai_expr::{Condition, Schema, Type};
use zhudai_store::audit::AuditDraft;
use zhudai_store::batch::Batch;
use zhudai_store::jobs::{Job, NewJob};
use zhudai_store::partners::{self as store_p, Licence, Partner, ReserveRequest, RunRow, StepRow};
use zhudai_store::{Store, StoreError};

/// Job kind: continue a run (a retry after an unreachable funder, or after a declining
/// callback).
pub const ADVANCE_JOB: &str = "routing.advance";
/// Where the HMAC key is stored, bound into its ciphertext.
pub const KEY_TABLE: &str = "partners";
pub const KEY_COLUMN: &str = "hmac_key_enc";
/// Callbacks older or newer than this (ms) are refused (replay protection).
pub const CALLBACK_WINDOW_MS: i64 = 300_000;
/// Header names of the signing scheme.
pub const TIMESTAMP_HEADER: &str = "x-zhudai-timestamp";
pub const SIGNATURE_HEADER: &str = "x-zhudai-signature";
const WATERFALL_KEY: &str = "routing.waterfall";

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ---------------------------------------------------------------------------------------
// Eligibility rules

/// The fields an eligibility rule may use (`None` only if the constant schema were invalid).
pub fn rule_schema() -> Option<&'static Schema> {
    static SCHEMA: OnceLock<Option<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Schema::builder()
                .field("app.amount", Type::decimal(2))
                .field("app.months", Type::Int)
                .field("app.product", Type::String)
                .field("customer.age", Type::Int)
                .field("customer.province", Type::String)
                .field("decision.grade", Type::String)
                .field("decision.score", Type::Int)
                .build()
                .ok()
        })
        .as_ref()
}

fn schema() -> Result<&'static Schema, String> {
    rule_schema().ok_or_else(|| "the eligibility rule schema is invalid".to_owned())
}

/// Compiles `source`, or explains why it does not compile (for 422 answers).
pub fn check_rule(source: &str) -> Result<(), String> {
    Condition::compile(source, schema()?)
        .map(|_| ())
        .map_err(|e| e.render())
}

type RuleKey = (String, i64, String);

/// The compiled rule of a partner's rule version, compiled once per process.
fn compiled_rule(p: &Partner) -> Result<Arc<Condition>, String> {
    static CACHE: OnceLock<Mutex<HashMap<RuleKey, Arc<Condition>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (p.code.clone(), p.rule_version, p.eligibility_rule.clone());
    if let Ok(map) = cache.lock() {
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
    }
    let compiled =
        Arc::new(Condition::compile(&p.eligibility_rule, schema()?).map_err(|e| e.render())?);
    if let Ok(mut map) = cache.lock() {
        // Drop older versions of this partner's rule.
        map.retain(|(code, version, _), _| code != &p.code || *version > p.rule_version);
        map.insert(key, compiled.clone());
    }
    Ok(compiled)
}

/// Evaluates a partner's rule for a request: `Err` is a rule error (the funder is skipped).
pub fn eligible(p: &Partner, req: &RoutingRequest) -> Result<bool, String> {
    let rule = compiled_rule(p)?;
    let schema = schema()?;
    let mut rec = schema.new_record();
    let set = |rec: &mut zhudai_expr::Record| -> Result<(), zhudai_expr::RecordError> {
        let slot = |name: &str| schema.slot(name);
        if let Some(s) = slot("app.amount") {
            rec.set_decimal_units(s, i128::from(req.amount_fen))?;
        }
        if let Some(s) = slot("app.months") {
            rec.set_int(s, req.months)?;
        }
        if let Some(s) = slot("app.product") {
            rec.set_str(s, &req.product_code)?;
        }
        if let Some(s) = slot("customer.age") {
            rec.set_int(s, req.customer.age)?;
        }
        if let Some(s) = slot("customer.province") {
            rec.set_str(s, &req.customer.province)?;
        }
        if let Some(s) = slot("decision.grade") {
            rec.set_str(s, &req.decision.risk_grade)?;
        }
        if let Some(s) = slot("decision.score") {
            rec.set_int(s, req.decision.score)?;
        }
        Ok(())
    };
    set(&mut rec).map_err(|e| e.to_string())?;
    rule.eval(&rec).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Signing

/// `hex(HMAC-SHA256(key, timestamp_ms + "." + body))`.
pub fn sign(key: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why a signed message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is missing or not a number")]
    BadTimestamp,
    #[error("the timestamp is outside the accepted window of ±5 minutes")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a signature in constant time and the timestamp against `now_ms`.
pub fn verify(
    key: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(SignatureError::BadTimestamp)?;
    if (now_ms - ts).abs() > CALLBACK_WINDOW_MS {
        return Err(SignatureError::Stale);
    }
    let sig = signature
        .and_then(|s| hex::decode(s.trim()).ok())
        .ok_or(SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SignatureError::Mismatch)?;
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

// ---------------------------------------------------------------------------------------
// Adapters

/// What is sent to a funder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboundRequest {
    /// Unique per attempt: `run-<id>-<seq>`; funders use it as an idempotency key.
    pub request_id: String,
    pub application_ref: String,
    pub product_code: String,
    pub amount_fen: i64,
    pub months: i64,
    pub customer_age: i64,
    pub customer_province: String,
    pub risk_grade: String,
    pub score: i64,
    /// Where to post the decision when answering `pending`.
    pub callback_path: String,
}

/// A funder's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Approved {
        #[serde(default)]
        reference: Option<String>,
    },
    Declined {
        #[serde(default)]
        reason: Option<String>,
    },
    /// The decision comes later by callback.
    Pending {
        #[serde(default)]
        reference: Option<String>,
    },
}

/// An answer and, for simulations, the time it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub decision: Decision,
    /// The decision time to record when it is not the measured one (the simulator).
    pub took_ms: Option<i64>,
}

/// Why a call gave no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("the funder did not answer in time")]
    Timeout,
    /// Worth retrying later: connection failure, 5xx.
    #[error("the funder could not be reached: {0}")]
    Unreachable(String),
    /// Not worth retrying: a 4xx or an answer we cannot read.
    #[error("the funder's answer is not usable: {0}")]
    Protocol(String),
}

/// How routing talks to a funder.
pub trait FunderAdapter: Send + Sync {
    fn submit<'a>(&'a self, req: &'a OutboundRequest)
        -> BoxFuture<'a, Result<Reply, AdapterError>>;
}

/// The built-in simulated funder.
#[derive(Debug, Clone)]
pub struct SimulatedFunder {
    pub code: String,
    pub approval_bp: i64,
    pub latency_ms: i64,
    pub seed: i64,
}

impl FunderAdapter for SimulatedFunder {
    fn submit<'a>(
        &'a self,
        req: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Reply, AdapterError>> {
        Box::pin(async move {
            let latency =
                simulated_latency_ms(self.seed, &self.code, &req.application_ref, self.latency_ms);
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency as u64)).await;
            }
            let approved = simulated_approves(
                self.seed,
                &self.code,
                &req.application_ref,
                self.approval_bp,
            );
            let decision = if approved {
                Decision::Approved {
                    reference: Some(format!("SIM-{}-{}", self.code, req.request_id)),
                }
            } else {
                Decision::Declined {
                    reason: Some("simulated decline".into()),
                }
            };
            Ok(Reply {
                decision,
                took_ms: Some(latency),
            })
        })
    }
}

/// A funder reached over HTTP with HMAC-signed requests.
pub struct HttpFunder {
    pub code: String,
    pub endpoint: String,
    pub key: Zeroizing<Vec<u8>>,
    pub client: reqwest::Client,
    pub now_ms: i64,
}

impl std::fmt::Debug for HttpFunder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFunder")
            .field("code", &self.code)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FunderAdapter for HttpFunder {
    fn submit<'a>(
        &'a self,
        req: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Reply, AdapterError>> {
        Box::pin(async move {
            let body =
                serde_json::to_vec(req).map_err(|e| AdapterError::Protocol(e.to_string()))?;
            let signature = sign(&self.key, self.now_ms, &body);
            let resp = self
                .client
                .post(&self.endpoint)
                .header("content-type", "application/json")
                .header(TIMESTAMP_HEADER, self.now_ms.to_string())
                .header(SIGNATURE_HEADER, signature)
                .header("x-zhudai-partner", &self.code)
                .header("idempotency-key", &req.request_id)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        AdapterError::Timeout
                    } else {
                        AdapterError::Unreachable(e.to_string())
                    }
                })?;
            let status = resp.status();
            if status.is_server_error() {
                return Err(AdapterError::Unreachable(format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(AdapterError::Protocol(format!("HTTP {status}")));
            }
            let decision: Decision = resp
                .json()
                .await
                .map_err(|e| AdapterError::Protocol(e.to_string()))?;
            Ok(Reply {
                decision,
                took_ms: None,
            })
        })
    }
}

/// The shared outbound HTTP client.
fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// Decrypts a partner's HMAC key.
pub async fn hmac_key(state: &AppState, p: &Partner) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let Some(enc) = &p.hmac_key_enc else {
        return Ok(None);
    };
    let clear = state
        .vault()
        .decrypt_field(None, &FieldAad::new(KEY_TABLE, KEY_COLUMN, &p.code), enc)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(Zeroizing::new(clear.as_bytes().to_vec())))
}

/// The adapter of a partner, if it has one.
pub async fn adapter_for(
    state: &AppState,
    p: &Partner,
) -> Result<Option<Box<dyn FunderAdapter>>, String> {
    Ok(match p.adapter.as_str() {
        "simulated" => Some(Box::new(SimulatedFunder {
            code: p.code.clone(),
            approval_bp: p.sim_approval_bp,
            latency_ms: p.sim_latency_ms,
            seed: p.sim_seed,
        })),
        "http" => {
            let (Some(endpoint), Some(key)) = (p.endpoint_url.clone(), hmac_key(state, p).await?)
            else {
                return Err("the HTTP adapter needs an endpoint URL and an HMAC key".into());
            };
            Some(Box::new(HttpFunder {
                code: p.code.clone(),
                endpoint,
                key,
                client: http_client(),
                now_ms: state.now_ms(),
            }))
        }
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------
// Planning

fn date(s: &Option<String>) -> Option<chrono::NaiveDate> {
    s.as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The facts `may_originate` needs, read from the store.
pub async fn origination_facts(store: &Store, p: &Partner) -> Result<OriginationFacts, StoreError> {
    let licences = store.partner_licences(p.id).await?;
    Ok(origination_facts_with(p, &licences))
}

/// [`origination_facts`] with the partner's licences already read.
fn origination_facts_with(p: &Partner, licences: &[Licence]) -> OriginationFacts {
    OriginationFacts {
        kind: PartnerKind::parse(&p.kind).unwrap_or(PartnerKind::DataProvider),
        status: PartnerStatus::parse(&p.status).unwrap_or(PartnerStatus::Exited),
        listed_us_on: date(&p.listed_us_on),
        agreement_start: date(&p.agreement_start_on),
        agreement_end: date(&p.agreement_end_on),
        licences_valid_until: licences.iter().map(|l| date(&l.valid_until)).collect(),
    }
}

/// The configured waterfall (default: priority, rate, approval rate, quota left).
pub async fn waterfall(store: &Store) -> Result<Waterfall, StoreError> {
    let mut w = Waterfall::default();
    if let Some(v) = store.meta_get(WATERFALL_KEY).await? {
        if let Ok(saved) = serde_json::from_str::<Waterfall>(&v) {
            w = saved;
        }
    }
    Ok(w)
}

pub async fn set_waterfall(store: &Store, w: &Waterfall, now_ms: i64) -> Result<(), StoreError> {
    let json = serde_json::to_string(w).map_err(|e| StoreError::Invalid(e.to_string()))?;
    store.meta_set(WATERFALL_KEY, &json, now_ms).await
}

/// Every funder as a waterfall candidate for `req`.
pub async fn candidates(
    state: &AppState,
    req: &RoutingRequest,
) -> Result<Vec<Candidate>, StoreError> {
    let store = state.store();
    let today = state.clock().today();
    let day = today.to_string();
    let stats = store.routing_stats().await?;
    // Licences and prices of every funder in one statement each, not one per funder.
    let mut licences: HashMap<i64, Vec<Licence>> = HashMap::new();
    for (partner, l) in store.all_partner_licences().await? {
        licences.entry(partner).or_default().push(l);
    }
    let rates: HashMap<i64, String> = store
        .partner_rates_for(&req.product_code)
        .await?
        .into_iter()
        .collect();
    let mut out = Vec::new();
    for p in store.partners(Some("funder"), None).await? {
        let facts = origination_facts_with(&p, licences.get(&p.id).map_or(&[][..], Vec::as_slice));
        let rate = rates.get(&p.id).and_then(|r| r.parse::<Decimal>().ok());
        let left = store.quota_left(p.id, &day, &req.customer_ref).await?;
        let s = stats.iter().find(|s| s.partner_code == p.code);
        out.push(Candidate {
            origination: may_originate(&facts, today),
            rate,
            eligible: eligible(&p, req),
            daily_left_fen: left.map(|l| l.daily_left_fen).unwrap_or(0),
            total_left_fen: left.map(|l| l.total_left_fen).unwrap_or(0),
            customer_left_fen: left.and_then(|l| l.customer_left_fen),
            approved: s.map(|s| s.approved).unwrap_or(0),
            declined: s.map(|s| s.declined).unwrap_or(0),
            priority: p.priority,
            code: p.code,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Running

/// Errors of the orchestration (storage, mostly).
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("routing: {0}")]
    Other(String),
}

impl From<zhudai_store::sqlx::Error> for RoutingError {
    fn from(e: zhudai_store::sqlx::Error) -> Self {
        RoutingError::Store(StoreError::Database(e))
    }
}

fn db(e: zhudai_store::sqlx::Error) -> RoutingError {
    RoutingError::Store(StoreError::Database(e))
}

fn audit(state: &AppState, actor: &str, action: &str, target: String, outcome: &str) -> AuditDraft {
    let mut d = AuditDraft::new(state.now_ms(), action, outcome)
        .actor(actor.to_owned())
        .target(target);
    if let Some(id) = crate::http::request_id::current_request_id() {
        d = d.request_id(id);
    }
    d
}

/// Starts a run for `req`: plans, records the skipped funders, then tries funders until
/// one decides (or the run waits for a callback or a retry). Returns the run as it
/// stands then.
pub async fn start_run(
    state: &AppState,
    req: &RoutingRequest,
    actor: &str,
) -> Result<RunRow, RoutingError> {
    let cands = candidates(state, req).await?;
    let w = waterfall(state.store()).await?;
    let planned = plan(req, &cands, &w);
    let now = state.now_ms();
    let mut tx = state.store().begin().await?;
    let mut run = RunRow {
        id: 0,
        application_ref: req.application_ref.clone(),
        product_code: req.product_code.clone(),
        amount_fen: req.amount_fen,
        months: req.months,
        customer_ref: req.customer_ref.clone(),
        request: serde_json::to_string(req).map_err(|e| RoutingError::Other(e.to_string()))?,
        plan: serde_json::to_string(&planned.order)
            .map_err(|e| RoutingError::Other(e.to_string()))?,
        state: "running".into(),
        next_index: 0,
        funder_code: None,
        started_by: Some(actor.to_owned()),
        started_at_ms: now,
        finished_at_ms: None,
    };
    let run_id = store_p::run_insert(&mut tx, &run).await?;
    run.id = run_id;
    let mut steps = Vec::with_capacity(planned.skipped.len());
    for (code, reason) in &planned.skipped {
        let step = skipped_step(run_id, code, reason, now);
        store_p::step_insert(&mut tx, &step).await?;
        steps.push(step);
    }
    let draft = audit(
        state,
        actor,
        "routing.start",
        format!("routing_run:{run_id}"),
        "success",
    )
    .reason(format!(
        "application {} · order [{}] · skipped {}",
        req.application_ref,
        planned.order.join(", "),
        planned.skipped.len()
    ));
    zhudai_store::audit::commit_with_records(tx, &[draft], Batch::new()).await?;
    // The first funder is tried from the run as written, not read back.
    advance_with(state, run_id, Some((run, steps)), Some(w)).await
}

fn skipped_step(run_id: i64, code: &str, reason: &SkipReason, now: i64) -> StepRow {
    StepRow {
        id: 0,
        run_id,
        seq: 0,
        partner_code: code.to_owned(),
        outcome: "skipped".into(),
        reason_code: Some(reason.code().to_owned()),
        reason: Some(reason.to_string()),
        attempt: 1,
        reservation_id: None,
        external_ref: None,
        started_at_ms: now,
        duration_ms: None,
        decided_at_ms: None,
    }
}

/// Records a funder's step that ended its turn (skipped, declined, gave up) and moves the
/// run's cursor to the next funder.
async fn move_on(
    conn: &mut zhudai_store::sqlx::AnyConnection,
    run_id: i64,
    idx: i64,
    step: &StepRow,
    now: i64,
) -> Result<(), StoreError> {
    store_p::step_insert(conn, step).await?;
    store_p::run_advance(conn, run_id, "running", idx, "running", idx + 1, None, now).await?;
    Ok(())
}

/// Tries the run's funders from its cursor on. Returns the run afterwards.
pub async fn advance(state: &AppState, run_id: i64) -> Result<RunRow, RoutingError> {
    advance_with(state, run_id, None, None).await
}

/// [`advance`] starting from the run and its steps as the caller just wrote them (else
/// read) and the waterfall the caller read (else read).
async fn advance_with(
    state: &AppState,
    run_id: i64,
    mut first: Option<(RunRow, Vec<StepRow>)>,
    w: Option<Waterfall>,
) -> Result<RunRow, RoutingError> {
    let store = state.store();
    let w = match w {
        Some(w) => w,
        None => waterfall(store).await?,
    };
    loop {
        let (run, steps) = match first.take() {
            Some(known) => known,
            None => store
                .routing_run(run_id)
                .await?
                .ok_or_else(|| RoutingError::Other(format!("no routing run {run_id}")))?,
        };
        if run.state != "running" {
            return Ok(run);
        }
        let order: Vec<String> =
            serde_json::from_str(&run.plan).map_err(|e| RoutingError::Other(e.to_string()))?;
        let idx = run.next_index;
        let now = state.now_ms();
        let Some(code) = order.get(idx as usize).cloned() else {
            let mut tx = store.begin().await?;
            if store_p::run_advance(&mut tx, run_id, "running", idx, "exhausted", idx, None, now)
                .await?
            {
                let draft = audit(
                    state,
                    "system",
                    "routing.exhausted",
                    format!("routing_run:{run_id}"),
                    "failure",
                )
                .reason(format!(
                    "no funder accepted application {}",
                    run.application_ref
                ));
                zhudai_store::audit::append(&mut tx, &draft).await?;
            }
            tx.commit().await.map_err(db)?;
            continue;
        };
        let req: RoutingRequest =
            serde_json::from_str(&run.request).map_err(|e| RoutingError::Other(e.to_string()))?;
        let attempt = steps
            .iter()
            .filter(|s| s.partner_code == code && s.outcome == "error")
            .count() as i64
            + 1;
        let skip = |reason_code: &str, reason: String| StepRow {
            reason_code: Some(reason_code.to_owned()),
            reason: Some(reason),
            ..skipped_step(run_id, &code, &SkipReason::NoPricing, now)
        };
        // Re-check at the moment of trying: the partner may have changed since planning.
        let partner = store.partner_by_code(&code).await?;
        let check = match &partner {
            None => Err(("gone", "the partner no longer exists".to_owned())),
            Some(p) => {
                let facts = origination_facts(store, p).await?;
                may_originate(&facts, state.clock().today()).map_err(|r| (r.code(), r.to_string()))
            }
        };
        let (Some(partner), Ok(())) = (partner, check.clone()) else {
            let (c, r) = check
                .err()
                .unwrap_or(("gone", "the partner no longer exists".into()));
            let mut tx = store.begin().await?;
            move_on(&mut tx, run_id, idx, &skip(c, r), now).await?;
            tx.commit().await.map_err(db)?;
            continue;
        };
        let adapter = match adapter_for(state, &partner).await {
            Ok(Some(a)) => a,
            Ok(None) | Err(_) => {
                let mut tx = store.begin().await?;
                move_on(
                    &mut tx,
                    run_id,
                    idx,
                    &skip("no_adapter", "the funder has no usable adapter".into()),
                    now,
                )
                .await?;
                tx.commit().await.map_err(db)?;
                continue;
            }
        };
        // Reserve the quota in its own transaction, before calling out.
        let day = state.clock().today().to_string();
        let mut tx = store.begin().await?;
        let reserved = store_p::quota_reserve(
            &mut tx,
            &ReserveRequest {
                partner_id: partner.id,
                run_id: Some(run_id),
                customer_ref: &run.customer_ref,
                amount_fen: run.amount_fen,
                day: &day,
            },
            now,
        )
        .await?;
        let reservation = match reserved {
            Ok(id) => {
                tx.commit().await.map_err(db)?;
                id
            }
            Err(refusal) => {
                tx.rollback().await.map_err(db)?;
                let mut tx = store.begin().await?;
                move_on(
                    &mut tx,
                    run_id,
                    idx,
                    &skip(refusal.as_str(), format!("quota: {}", refusal.as_str())),
                    now,
                )
                .await?;
                tx.commit().await.map_err(db)?;
                continue;
            }
        };
        let outbound = OutboundRequest {
            request_id: format!("run-{run_id}-{}", steps.len() + 1),
            application_ref: run.application_ref.clone(),
            product_code: run.product_code.clone(),
            amount_fen: run.amount_fen,
            months: run.months,
            customer_age: req.customer.age,
            customer_province: req.customer.province.clone(),
            risk_grade: req.decision.risk_grade.clone(),
            score: req.decision.score,
            callback_path: format!("/api/v1/funder-callbacks/{code}"),
        };
        let started = Instant::now();
        let timeout = Duration::from_millis(partner.timeout_ms.max(1) as u64);
        let result = match tokio::time::timeout(timeout, adapter.submit(&outbound)).await {
            Ok(r) => r,
            Err(_) => Err(AdapterError::Timeout),
        };
        let measured = started.elapsed().as_millis() as i64;
        let now = state.now_ms();
        let mut step = StepRow {
            id: 0,
            run_id,
            seq: 0,
            partner_code: code.clone(),
            outcome: String::new(),
            reason_code: None,
            reason: None,
            attempt,
            reservation_id: Some(reservation),
            external_ref: None,
            started_at_ms: now,
            duration_ms: None,
            decided_at_ms: None,
        };
        let mut tx = store.begin().await?;
        match result {
            Ok(Reply {
                decision: Decision::Approved { reference },
                took_ms,
            }) => {
                store_p::quota_consume(&mut tx, reservation, now).await?;
                step.outcome = "approved".into();
                step.external_ref = reference;
                step.duration_ms = Some(took_ms.unwrap_or(measured));
                step.decided_at_ms = Some(now);
                store_p::step_insert(&mut tx, &step).await?;
                let moved = store_p::run_advance(
                    &mut tx,
                    run_id,
                    "running",
                    idx,
                    "routed",
                    idx,
                    Some(&code),
                    now,
                )
                .await?;
                let draft = audit(
                    state,
                    "system",
                    "routing.routed",
                    format!("routing_run:{run_id}"),
                    "success",
                )
                .reason(format!(
                    "application {} placed with {code}",
                    run.application_ref
                ));
                zhudai_store::audit::commit_with_records(tx, &[draft], Batch::new()).await?;
                if moved {
                    // Routed: the run as this transaction left it.
                    return Ok(RunRow {
                        state: "routed".into(),
                        next_index: idx,
                        funder_code: Some(code),
                        finished_at_ms: Some(now),
                        ..run
                    });
                }
            }
            Ok(Reply {
                decision: Decision::Pending { reference },
                ..
            }) => {
                step.outcome = "pending".into();
                step.external_ref = reference;
                store_p::step_insert(&mut tx, &step).await?;
                store_p::run_advance(
                    &mut tx,
                    run_id,
                    "running",
                    idx,
                    "pending",
                    idx,
                    Some(&code),
                    now,
                )
                .await?;
                tx.commit().await.map_err(db)?;
            }
            Ok(Reply {
                decision: Decision::Declined { reason },
                took_ms,
            }) => {
                store_p::quota_release(&mut tx, reservation, now).await?;
                step.outcome = "declined".into();
                step.reason_code = Some("declined".into());
                step.reason = reason;
                step.duration_ms = Some(took_ms.unwrap_or(measured));
                step.decided_at_ms = Some(now);
                move_on(&mut tx, run_id, idx, &step, now).await?;
                tx.commit().await.map_err(db)?;
            }
            Err(AdapterError::Unreachable(e)) if attempt < w.max_retries.max(1) => {
                store_p::quota_release(&mut tx, reservation, now).await?;
                step.outcome = "error".into();
                step.reason_code = Some("unreachable".into());
                step.reason = Some(e);
                store_p::step_insert(&mut tx, &step).await?;
                store_p::run_advance(&mut tx, run_id, "running", idx, "retrying", idx, None, now)
                    .await?;
                let backoff_ms = 1000_i64 << attempt.clamp(1, 10);
                let dedupe = format!("{ADVANCE_JOB}:{run_id}:{idx}:{attempt}");
                zhudai_store::jobs::enqueue(
                    &mut *tx,
                    &NewJob::new(
                        ADVANCE_JOB,
                        serde_json::json!({"run_id": run_id}),
                        now + backoff_ms,
                    )
                    .dedupe(&dedupe),
                    now,
                )
                .await?;
                tx.commit().await.map_err(db)?;
            }
            Err(e) => {
                store_p::quota_release(&mut tx, reservation, now).await?;
                let (outcome, code_) = match &e {
                    AdapterError::Timeout => ("timeout", "timeout"),
                    AdapterError::Unreachable(_) => ("error", "unreachable_gave_up"),
                    AdapterError::Protocol(_) => ("error", "protocol"),
                };
                step.outcome = outcome.into();
                step.reason_code = Some(code_.into());
                step.reason = Some(e.to_string());
                move_on(&mut tx, run_id, idx, &step, now).await?;
                tx.commit().await.map_err(db)?;
            }
        }
    }
}

/// The handler of [`ADVANCE_JOB`]: takes a waiting run back to `running` (only one taker
/// wins) and advances it.
pub async fn run_advance_job(state: AppState, job: Job) -> Result<(), String> {
    let run_id = job
        .payload
        .get("run_id")
        .and_then(serde_json::Value::as_i64)
        .ok_or("the job has no run_id")?;
    let store = state.store();
    let Some((run, _)) = store.routing_run(run_id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if run.state == "retrying" {
        let mut tx = store.begin().await.map_err(|e| e.to_string())?;
        let won = store_p::run_advance(
            &mut tx,
            run_id,
            "retrying",
            run.next_index,
            "running",
            run.next_index,
            None,
            state.now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        if !won {
            return Ok(());
        }
    } else if run.state != "running" {
        return Ok(());
    }
    advance(&state, run_id).await.map_err(|e| e.to_string())?;
    // Applications (issue #6): move the application's workflow on if the run finished.
    crate::applications::sync_routing_by_ref(&state, &run.application_ref).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Callbacks

/// The body a funder posts to `POST /api/v1/funder-callbacks/{code}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallbackBody {
    /// Unique per callback; a repeated id is answered with the first result.
    pub callback_id: String,
    pub application_ref: String,
    /// `approved` or `declined`.
    pub decision: String,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a callback did (also stored, and answered again for a repeated callback id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CallbackResult {
    /// `applied` or `ignored`.
    pub status: String,
    pub run_id: Option<i64>,
    pub step_id: Option<i64>,
    /// The decision applied, or why nothing was.
    pub detail: String,
    /// True when this answer repeats the first processing of the same callback id.
    #[serde(default)]
    pub duplicate: bool,
}

/// Applies a verified callback once. The caller has checked the signature.
pub async fn apply_callback(
    state: &AppState,
    partner: &Partner,
    body: &CallbackBody,
) -> Result<CallbackResult, RoutingError> {
    let store = state.store();
    let now = state.now_ms();
    let mut tx = store.begin().await?;
    // Claim the callback id first: a concurrent duplicate waits here until we commit.
    if let Some(first) =
        store_p::callback_record_once(&mut tx, partner.id, &body.callback_id, None, "", now).await?
    {
        tx.rollback().await.map_err(db)?;
        let mut r: CallbackResult = serde_json::from_str(&first).unwrap_or(CallbackResult {
            status: "ignored".into(),
            run_id: None,
            step_id: None,
            detail: "already received".into(),
            duplicate: true,
        });
        r.duplicate = true;
        return Ok(r);
    }
    let step = store_p::pending_step(&mut tx, &partner.code, &body.application_ref).await?;
    let mut result = CallbackResult {
        status: "ignored".into(),
        run_id: None,
        step_id: None,
        detail: "no pending request of this funder for this application".into(),
        duplicate: false,
    };
    let mut continue_run = None;
    if let Some(step) = step {
        let approved = body.decision == "approved";
        let outcome = if approved { "approved" } else { "declined" };
        if store_p::step_decide(
            &mut tx,
            step.id,
            outcome,
            body.reason.as_deref(),
            body.reference.as_deref(),
            now,
        )
        .await?
        {
            if let Some(res) = step.reservation_id {
                if approved {
                    store_p::quota_consume(&mut tx, res, now).await?;
                } else {
                    store_p::quota_release(&mut tx, res, now).await?;
                }
            }
            let run = store_p::run_get(&mut tx, step.run_id)
                .await?
                .ok_or_else(|| RoutingError::Other("the run of a step is missing".into()))?;
            if approved {
                store_p::run_advance(
                    &mut tx,
                    run.id,
                    "pending",
                    run.next_index,
                    "routed",
                    run.next_index,
                    Some(&partner.code),
                    now,
                )
                .await?;
            } else if store_p::run_advance(
                &mut tx,
                run.id,
                "pending",
                run.next_index,
                "running",
                run.next_index + 1,
                None,
                now,
            )
            .await?
            {
                continue_run = Some(run.id);
            }
            result = CallbackResult {
                status: "applied".into(),
                run_id: Some(run.id),
                step_id: Some(step.id),
                detail: outcome.into(),
                duplicate: false,
            };
        }
    }
    let json = serde_json::to_string(&result).map_err(|e| RoutingError::Other(e.to_string()))?;
    sqlx_set_callback_result(
        &mut tx,
        partner.id,
        &body.callback_id,
        result.step_id,
        &json,
    )
    .await?;
    if let Some(run_id) = continue_run {
        zhudai_store::jobs::enqueue(
            &mut *tx,
            &NewJob::new(ADVANCE_JOB, serde_json::json!({"run_id": run_id}), now),
            now,
        )
        .await?;
    }
    let draft = audit(
        state,
        &format!("funder:{}", partner.code),
        "routing.callback",
        format!("partner:{}", partner.code),
        "success",
    )
    .reason(format!(
        "callback {} for {}: {} ({})",
        body.callback_id, body.application_ref, body.decision, result.status
    ));
    zhudai_store::audit::append(&mut tx, &draft).await?;
    tx.commit().await.map_err(db)?;
    // Applications (issue #6): a funder's decision moves the application's workflow on.
    crate::applications::sync_routing_by_ref(state, &body.application_ref).await;
    Ok(result)
}

async fn sqlx_set_callback_result(
    conn: &mut zhudai_store::sqlx::AnyConnection,
    partner_id: i64,
    callback_id: &str,
    step_id: Option<i64>,
    result: &str,
) -> Result<(), StoreError> {
    store_p::callback_set_result(conn, partner_id, callback_id, step_id, result).await
}

/// Criteria names, for forms and documentation.
pub fn criteria() -> Vec<&'static str> {
    Criterion::ALL.iter().map(|c| c.as_str()).collect()
}
