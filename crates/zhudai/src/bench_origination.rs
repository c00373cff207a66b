//! `zhudai bench origination` (issue #6): applications carried from submission to loan
//! per second through the HTTP API, with persistence and audit, on a fresh SQLite
//! database (group commit by default, `--sqlite-synchronous`) in a temporary directory, against an in-process server.
//!
//! Set-up (not timed): the demo company, a funder (`bank_a`, simulated: it approves at
//! once) holding a callback key, staff users, and for each application a customer whose
//! four materials are uploaded and verified, and the application created as a draft.
//!
//! Timed, per application, from `--clients` concurrent keep-alive clients, every request
//! a real route with its transaction and audit record: submit (customer manager) →
//! pass document review (verifier) → approve (approver L1; the automatic decision and the
//! simulated funder's routing run inside this request) → generate the contract (PDF with
//! the CJK font, SHA-256, encrypted blob) → three signatures → complete the contract step
//! → the funder's HMAC-signed `disbursed` callback (loan opened, workflow to `loan`).
//! Nine requests per application.

use crate::cli::Failure;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const KEY: &str = "bench-origination-callback-key-0123456789";
const PASSWORD: &str = "Bench-Origination-2026!";

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn line(json: bool, measure: &str, value: f64, unit: &str, n: u64) {
    if json {
        out(&serde_json::json!({"bench": "origination", "measure": measure, "value": value, "unit": unit, "n": n}).to_string());
    } else {
        out(&format!("{measure:<58} {value:>14.1} {unit:<14} (n = {n})"));
    }
}

fn fail(e: &dyn std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, username: &str) -> Result<String, Failure> {
        let v: serde_json::Value = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| fail(&e))?
            .json()
            .await
            .map_err(|e| fail(&e))?;
        v["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure::Runtime(format!("login of {username} failed: {v}")))
    }

    /// POSTs JSON; the status must be `want`.
    async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
        want: u16,
    ) -> Result<serde_json::Value, String> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let s = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
        if s == want {
            Ok(v)
        } else {
            Err(format!("POST {path}: {s} {v}"))
        }
    }
}

struct Tokens {
    cm: String,
    verifier: String,
    l1: String,
    ops: String,
}

/// What `carry` answers for an application declined at approval (by the credit decision
/// or, with no funder taking it, by routing).
const REJECTED: &str = "declined at approval";

/// One application through the timed part. Returns the loan id.
/// The steps timed separately (milliseconds are added into `steps`).
const STEPS: [&str; 9] = [
    "submit",
    "pass document review",
    "approve (decision + routing inside)",
    "generate the contract (PDF)",
    "sign: borrower",
    "sign: funder",
    "sign: company",
    "complete the contract step",
    "disbursed callback (loan opened)",
];

async fn carry(
    api: &Api,
    t: &Tokens,
    id: i64,
    app_ref: &str,
    today: &str,
    steps: &mut [f64; 9],
) -> Result<i64, String> {
    let mut clock = Instant::now();
    let mut lap = |i: usize| {
        let now = Instant::now();
        steps[i] += (now - clock).as_secs_f64() * 1e3;
        clock = now;
    };
    let act = format!("/api/v1/applications/{id}/actions");
    api.post(&t.cm, &act, serde_json::json!({"action": "submit"}), 200)
        .await?;
    lap(0);
    api.post(
        &t.verifier,
        &act,
        serde_json::json!({"action": "approve"}),
        200,
    )
    .await?;
    lap(1);
    let r = api
        .post(&t.l1, &act, serde_json::json!({"action": "approve"}), 200)
        .await?;
    lap(2);
    if r["node"] == "rejected" {
        // Declined by the credit policy (or no funder took it): a legitimate end, counted apart.
        return Err(REJECTED.into());
    }
    if r["node"] != "contract" {
        return Err(format!(
            "after approval the application is at {}",
            r["node"]
        ));
    }
    let c = api
        .post(
            &t.ops,
            &format!("/api/v1/applications/{id}/contract"),
            serde_json::json!({}),
            201,
        )
        .await?;
    lap(3);
    let cid = c["id"].as_i64().ok_or("no contract id")?;
    let sig = format!("/api/v1/contracts/{cid}/signatures");
    api.post(
        &t.ops,
        &sig,
        serde_json::json!({"party": "borrower", "method": "click_through"}),
        201,
    )
    .await?;
    lap(4);
    api.post(
        &t.ops,
        &sig,
        serde_json::json!({"party": "funder", "method": "e_signature", "provider_ref": format!("ES-{id}"), "evidence_sha256": "ab".repeat(32)}),
        201,
    )
    .await?;
    lap(5);
    api.post(
        &t.ops,
        &sig,
        serde_json::json!({"party": "company", "method": "click_through"}),
        201,
    )
    .await?;
    lap(6);
    api.post(&t.ops, &act, serde_json::json!({"action": "complete"}), 200)
        .await?;
    lap(7);
    let body = serde_json::to_vec(&serde_json::json!({
        "message": "disbursed", "application_ref": app_ref, "amount": "30000.00",
        "disbursed_on": today, "funder_loan_ref": format!("BA-{id}"),
    }))
    .map_err(|e| e.to_string())?;
    #[allow(clippy::disallowed_methods)]
    // the benchmark signs with the wall clock, as a funder would
    let ts = chrono::Utc::now().timestamp_millis();
    let r = api
        .client
        .post(format!("{}/api/v1/funder-callbacks/bank_a", api.base))
        .header("content-type", "application/json")
        .header(zhudai_server::routing::TIMESTAMP_HEADER, ts.to_string())
        .header(
            zhudai_server::routing::SIGNATURE_HEADER,
            zhudai_server::routing::sign(KEY.as_bytes(), ts, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    if s != 200 {
        return Err(format!("disbursed callback: {s} {v}"));
    }
    lap(8);
    v["loan_id"].as_i64().ok_or_else(|| format!("no loan: {v}"))
}

/// `zhudai bench origination`.
pub async fn origination(
    applications: u64,
    clients: u32,
    sync: zhudai_store::SqliteSync,
    contract_font: Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    use zhudai_domain::clock::{Clock, SystemClock};
    let dir = std::env::temp_dir().join(format!("zhudai-bench-origination-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let location = zhudai_store::DatabaseLocation::SqliteFile(dir.join("zhudai.db"));
    let opts = zhudai_store::StoreOptions {
        sqlite_sync: sync,
        ..zhudai_store::StoreOptions::default()
    };
    let store = zhudai_store::Store::open(&location, &opts)
        .await
        .map_err(|e| fail(&e))?;
    store.migrate().await.map_err(|e| fail(&e))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now().timestamp_millis();
    zhudai_server::demo::seed(&store, now)
        .await
        .map_err(|e| fail(&e))?;
    zhudai_server::auth::seed::ensure_roles(&store, now)
        .await
        .map_err(|e| fail(&e))?;
    zhudai_server::contracts::ensure_default_template(&store, now)
        .await
        .map_err(|e| Failure::Runtime(format!("{e:?}")))?;
    let font =
        zhudai_server::contract_pdf::font(contract_font.as_deref()).map_err(Failure::Runtime)?;
    let vault = zhudai_server::vault::Vault::open(
        &store,
        &dir,
        None,
        zhudai_crypto::envelope::Algorithm::Aes256Gcm,
        clock.clone(),
    )
    .await
    .map_err(|e| fail(&e))?;
    let units = store.org_units().await.map_err(|e| fail(&e))?;
    let unit = |code: &str| units.iter().find(|u| u.code == code).map(|u| u.id);
    for (name, role, org) in [
        ("bench_cm", "customer_manager", unit("SH-T1")),
        ("bench_verifier", "doc_verifier", unit("SH")),
        ("bench_l1", "approver_l1", unit("SH")),
        ("bench_ops", "operations", None),
        ("bench_fm", "funding_manager", None),
    ] {
        zhudai_server::auth::users::create_user(
            &store,
            &vault,
            &zhudai_server::auth::users::UserSpec {
                username: name,
                display_name: name,
                password: PASSWORD,
                roles: &[role.to_owned()],
                org_unit_id: org,
                must_change_password: false,
                phone: None,
                id_number: None,
            },
            &zhudai_crypto::password::Argon2Params {
                m_cost_kib: 1024,
                t_cost: 1,
                p_cost: 1,
            },
            now,
        )
        .await
        .map_err(|e| Failure::Runtime(format!("{e:?}")))?;
    }
    let settings = zhudai_server::ServerSettings {
        data_dir: dir.clone(),
        contract_font_path: contract_font.clone(),
        // The benchmark's staff have no authenticator; two-factor is not what is measured.
        auth: zhudai_server::auth::login::AuthPolicy {
            enforce_2fa: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let state = zhudai_server::AppState::new(store.clone(), clock.clone(), settings, vault);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(&e))?;
    let addr = listener.local_addr().map_err(|e| fail(&e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zhudai_server::serve(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }));
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };
    let fm = api.login("bench_fm").await?;
    let r = api
        .client
        .patch(format!("{}/api/v1/partners/bank_a", api.base))
        .bearer_auth(&fm)
        .json(&serde_json::json!({"hmac_key": KEY, "sim_approval_bp": 10000, "sim_latency_ms": 0}))
        .send()
        .await
        .map_err(|e| fail(&e))?;
    if r.status().as_u16() != 200 {
        return Err(Failure::Runtime(format!(
            "configuring bank_a: {}",
            r.status()
        )));
    }
    // The demo's daily quota (5 million yuan) would end the run after some 160 loans of
    // 30,000 yuan, and every later application would be declined by routing: lift it so
    // what is measured is the flow, not the quota.
    let r = api
        .client
        .put(format!("{}/api/v1/partners/bank_a/limits", api.base))
        .bearer_auth(&fm)
        .json(&serde_json::json!({"daily_quota_fen": 100_000_000_000_i64, "total_quota_fen": 100_000_000_000_i64}))
        .send()
        .await
        .map_err(|e| fail(&e))?;
    if r.status().as_u16() != 204 {
        return Err(Failure::Runtime(format!(
            "lifting bank_a's quotas: {}",
            r.status()
        )));
    }
    let tokens = Arc::new(Tokens {
        cm: api.login("bench_cm").await?,
        verifier: api.login("bench_verifier").await?,
        l1: api.login("bench_l1").await?,
        ops: api.login("bench_ops").await?,
    });

    // Set-up: customers with verified materials and draft applications.
    let bar = indicatif::ProgressBar::new(applications);
    bar.set_style(
        indicatif::ProgressStyle::with_template("set-up {bar:40} {pos}/{len} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let mut apps: Vec<(i64, String)> = Vec::new();
    let setup_parallel = 4_u64;
    let mut i = 0_u64;
    while i < applications {
        let mut batch = Vec::new();
        for k in i..(i + setup_parallel).min(applications) {
            let (api, tokens, store) = (api.clone(), tokens.clone(), store.clone());
            batch.push(tokio::spawn(async move {
                // Ages 30–45: inside the product's and the funder's ranges.
                let birth = format!("19{}0{}15", 80 + k % 15, 1 + k % 9);
                let body = format!("110105{birth}{:03}", k % 1000);
                let id = zhudai_domain::ident::ResidentId::from_body(&body)
                    .map_err(|e| format!("{e:?}"))?;
                let c = api
                    .post(
                        &tokens.cm,
                        "/api/v1/customers",
                        serde_json::json!({"name": format!("客户{k}"), "id_number": id.as_str(), "phone": format!("139{:08}", k)}),
                        201,
                    )
                    .await?;
                let cust = c["id"].as_i64().ok_or("no customer id")?;
                for (kind, extra) in [
                    ("id_front", vec![("declared_name", format!("客户{k}")), ("declared_id_number", id.as_str().to_owned())]),
                    ("id_back", vec![("expiry_date", "2036-01-01".to_owned())]),
                    ("income_proof", vec![]),
                    ("credit_report", vec![]),
                ] {
                    let mut form = reqwest::multipart::Form::new()
                        .part("file", reqwest::multipart::Part::bytes(png.to_vec()).file_name("scan.png"))
                        .text("doc_type", kind);
                    for (f, v) in extra {
                        form = form.text(f, v);
                    }
                    let r = api
                        .client
                        .post(format!("{}/api/v1/customers/{cust}/documents", api.base))
                        .bearer_auth(&tokens.cm)
                        .multipart(form)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                    let doc = v["id"].as_i64().ok_or_else(|| format!("upload: {v}"))?;
                    api.post(
                        &tokens.verifier,
                        &format!("/api/v1/customers/{cust}/documents/{doc}/verification"),
                        serde_json::json!({"decision": "verified"}),
                        200,
                    )
                    .await?;
                }
                let a = api
                    .post(
                        &tokens.cm,
                        "/api/v1/applications",
                        serde_json::json!({"customer_id": cust, "product_code": "consumer_std", "amount": "30000", "months": 12}),
                        201,
                    )
                    .await?;
                let aid = a["id"].as_i64().ok_or("no application id")?;
                let r = store
                    .application(aid)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the application vanished")?
                    .ref_;
                Ok::<(i64, String), String>((aid, r))
            }));
        }
        for t in batch {
            apps.push(t.await.map_err(|e| fail(&e))?.map_err(Failure::Runtime)?);
            bar.inc(1);
        }
        i += setup_parallel;
    }
    bar.finish_and_clear();

    let header = format!(
        "zhudai bench origination · {} build · {} CPU(s) · {applications} applications · {clients} keep-alive client(s) · in-process server · SQLite synchronous={} in a temporary directory · font {} (face {})",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        sync.as_str(),
        font.path.display(),
        font.index,
    );
    if json {
        out(
            &serde_json::json!({"kind": "context", "bench": "origination", "setup": header})
                .to_string(),
        );
    } else {
        out(&header);
    }
    // Timed: every application from submission to loan.
    let today = clock.today().to_string();
    let queue = Arc::new(std::sync::Mutex::new(apps));
    let done = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let rejected = rejected.clone();
        let (api, tokens, queue, done, errors, today) = (
            Api {
                client: reqwest::Client::new(),
                base: api.base.clone(),
            },
            tokens.clone(),
            queue.clone(),
            done.clone(),
            errors.clone(),
            today.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut steps = [0.0_f64; 9];
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((id, r)) = next else { break };
                let t = Instant::now();
                match carry(&api, &tokens, id, &r, &today, &mut steps).await {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Err(e) if e == REJECTED => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(e);
                        }
                    }
                }
            }
            (latencies, steps)
        }));
    }
    let mut latencies = Vec::new();
    let mut steps = [0.0_f64; 9];
    for t in tasks {
        let (l, s) = t.await.map_err(|e| fail(&e))?;
        latencies.extend(l);
        for (a, b) in steps.iter_mut().zip(s) {
            *a += b;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let n = done.load(Ordering::Relaxed);
    let declined = rejected.load(Ordering::Relaxed);
    // Check the outcome in the database, not only the answers.
    let loans = zhudai_store::sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM applications WHERE status = 'disbursed' AND node = 'loan'",
    )
    .fetch_one(store.reader())
    .await
    .map_err(|e| fail(&e))?;
    let audit = zhudai_store::sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log")
        .fetch_one(store.reader())
        .await
        .map_err(|e| fail(&e))?;
    // The contract PDF alone (sample contract, no database, no HTTP), one at a time:
    // what one core renders per second, a ceiling on the flow's rate per core.
    let pdf_rate = {
        let t = store
            .contract_template(zhudai_domain::contract::DEFAULT_TEMPLATE_CODE, None)
            .await
            .map_err(|e| fail(&e))?
            .ok_or_else(|| Failure::Runtime("the default contract template is missing".into()))?;
        let started = Instant::now();
        let mut rendered = 0_u64;
        let mut bytes = 0_usize;
        while started.elapsed().as_secs_f64() < 3.0 {
            bytes = zhudai_server::contracts::preview_pdf(&state, &t)
                .await
                .map_err(|e| Failure::Runtime(format!("{e:?}")))?
                .len();
            rendered += 1;
        }
        (
            rendered as f64 / started.elapsed().as_secs_f64(),
            rendered,
            bytes,
        )
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    line(
        json,
        "applications carried from submit to loan per second",
        n as f64 / wall,
        "applications/s",
        n,
    );
    // A declined application made three requests (submit, review, approval).
    let requests = n * 9 + declined * 3;
    line(
        json,
        "HTTP requests per second (9 per loan, 3 per declined application)",
        requests as f64 / wall,
        "requests/s",
        requests,
    );
    line(
        json,
        "applications declined at approval (credit decision or funder)",
        declined as f64,
        "applications",
        declined,
    );
    line(
        json,
        "one application, submit to loan: p50",
        pct(0.5),
        "ms",
        n,
    );
    line(
        json,
        "one application, submit to loan: p99",
        pct(0.99),
        "ms",
        n,
    );
    if let Some(cpu) = cpu {
        line(
            json,
            "process CPU time per application (server and clients)",
            cpu * 1e3 / n.max(1) as f64,
            "ms",
            n,
        );
    }
    for (i, (name, total)) in STEPS.iter().zip(steps).enumerate() {
        // The first three steps were also taken by the declined applications.
        let count = if i < 3 { n + declined } else { n };
        line(
            json,
            &format!("  mean latency: {name}"),
            total / count.max(1) as f64,
            "ms",
            count,
        );
    }
    line(
        json,
        "applications at `loan`, status disbursed (database)",
        loans as f64,
        "applications",
        n,
    );
    line(
        json,
        "audit records in the chain at the end",
        audit as f64,
        "records",
        n,
    );
    line(
        json,
        "contract PDFs rendered per second, one at a time (no database)",
        pdf_rate.0,
        "PDFs/s",
        pdf_rate.1,
    );
    line(
        json,
        "contract PDF size (sample contract)",
        pdf_rate.2 as f64 / 1024.0,
        "KiB",
        1,
    );
    let errs = errors.lock().map(|e| e.clone()).unwrap_or_default();
    line(
        json,
        "failed applications",
        errs.len() as f64,
        "applications",
        errs.len() as u64,
    );
    if let Some(first) = errs.first() {
        return Err(Failure::Runtime(format!(
            "{} applications failed; first: {first}",
            errs.len()
        )));
    }
    if loans as u64 != n {
        return Err(Failure::Runtime(format!(
            "{n} answered, but {loans} applications reached the loan"
        )));
    }
    Ok(())
}

/// CPU seconds (user and system) this process has used so far, from `/proc/self/stat`
/// (Linux; clock ticks of 1/100 s, the kernel's `USER_HZ` on every architecture it
/// exports it for). `None` where that file cannot be read.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
