//! Funder routing end to end: the waterfall over simulated funders, and a fake HTTP funder
//! (a tiny axum server on 127.0.0.1:0) that checks our signatures and declines, answers
//! late, fails, or decides later by callback — sent twice.

use crate::partners::Api;
use crate::support::TestApp;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zhudai_server::routing::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use zhudai_store::partners as sp;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    waterfall_skips_declines_and_routes,
    a_funder_that_times_out_is_passed_over,
    http_funder_signed_decline_and_double_callback,
    unreachable_funder_is_retried_with_backoff_then_passed_over,
);

const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

/// An admitted, listed, licensed funder with limits and a price for `consumer_12_36`,
/// written straight to the store.
async fn funder(
    app: &TestApp,
    code: &str,
    priority: i64,
    approval_bp: i64,
    latency_ms: i64,
    timeout_ms: i64,
) -> i64 {
    let store = app.state.store();
    let p = sp::Partner {
        id: 0,
        code: code.into(),
        kind: "funder".into(),
        name_zh: code.into(),
        name_en: code.into(),
        uscc: None,
        status: "admitted".into(),
        status_since: "2026-01-01".into(),
        status_reason: None,
        listed_us_on: Some("2026-01-01".into()),
        agreement_start_on: Some("2026-01-01".into()),
        agreement_end_on: Some("2027-12-31".into()),
        next_review_on: None,
        adapter: "simulated".into(),
        endpoint_url: None,
        hmac_key_enc: None,
        timeout_ms,
        sim_approval_bp: approval_bp,
        sim_latency_ms: latency_ms,
        sim_seed: 7,
        priority,
        eligibility_rule: "true".into(),
        rule_version: 1,
        notes: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let mut tx = store.begin().await.unwrap();
    let id = sp::partner_insert(&mut tx, &p, "test", 1).await.unwrap();
    sp::licence_insert(
        &mut tx,
        id,
        &sp::Licence {
            id: 0,
            licence_type: "金融许可证".into(),
            number: format!("L-{code}"),
            issuer: "NFRA".into(),
            valid_until: None,
        },
        1,
    )
    .await
    .unwrap();
    sp::limits_set(&mut tx, id, 100_000_000, 1_000_000_000, None, 1)
        .await
        .unwrap();
    sp::pricing_set(&mut tx, id, "consumer_12_36", Some("0.08"), 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn request(app_ref: &str, amount_fen: i64) -> Value {
    json!({
        "application_ref": app_ref,
        "product_code": "consumer_12_36",
        "amount_fen": amount_fen,
        "months": 12,
        "customer_ref": format!("C-{app_ref}"),
        "customer": {"age": 30, "province": "上海"},
        "decision": {"risk_grade": "B", "score": 650}
    })
}

fn outcomes(run: &Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["partner_code"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

async fn used(app: &TestApp, id: i64) -> i64 {
    app.state
        .store()
        .partner_limits(id)
        .await
        .unwrap()
        .unwrap()
        .total_used_fen
}

async fn waterfall_skips_declines_and_routes(db: &TestDb) {
    let app = TestApp::start(db).await;
    let ops = Api::as_role(&app, &["funding_manager"]).await;
    let decliner = funder(&app, "f_decline", 1, 0, 0, 1000).await;
    let approver = funder(&app, "f_approve", 2, 10_000, 0, 1000).await;
    let unlisted = funder(&app, "f_unlisted", 0, 10_000, 0, 1000).await;
    let picky = funder(&app, "f_picky", 0, 10_000, 0, 1000).await;
    let expired = funder(&app, "f_expired", 0, 10_000, 0, 1000).await;
    let unpriced = funder(&app, "f_unpriced", 0, 10_000, 0, 1000).await;
    let mut tx = db.store.begin().await.unwrap();
    let mut p = sp::partner_for_update(&mut tx, &db.store, "f_unlisted")
        .await
        .unwrap()
        .unwrap();
    p.listed_us_on = None;
    sp::partner_save(&mut tx, &p, 2).await.unwrap();
    let mut p = sp::partner_for_update(&mut tx, &db.store, "f_picky")
        .await
        .unwrap()
        .unwrap();
    p.eligibility_rule = r#"customer.province == "四川" && app.amount >= 1000.00"#.into();
    sp::partner_save(&mut tx, &p, 2).await.unwrap();
    // Candidates read every funder's licences and prices in one statement each: a funder
    // whose only licence expired, and one priced for another product only.
    zhudai_store::sqlx::query(
        "UPDATE partner_licences SET valid_until = '2020-01-01' WHERE partner_id = $1",
    )
    .bind(expired)
    .execute(&mut *tx)
    .await
    .unwrap();
    sp::pricing_set(&mut tx, unpriced, "consumer_12_36", None, 2)
        .await
        .unwrap();
    sp::pricing_set(&mut tx, unpriced, "consumer_other", Some("0.07"), 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (s, run) = ops
        .post("/api/v1/routing/runs", request("APP-1", 5_000_000))
        .await;
    assert_eq!(s, 201, "{run}");
    assert_eq!(run["state"], "routed");
    assert_eq!(run["funder_code"], "f_approve");
    assert_eq!(run["plan"], json!(["f_decline", "f_approve"]));
    assert_eq!(
        outcomes(&run),
        [
            pair("f_expired", "skipped"),
            pair("f_picky", "skipped"),
            pair("f_unlisted", "skipped"),
            pair("f_unpriced", "skipped"),
            pair("f_decline", "declined"),
            pair("f_approve", "approved")
        ]
    );
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[0]["reason_code"], "cannot_originate");
    assert!(
        steps[0]["reason"].as_str().unwrap().contains("licence"),
        "{}",
        steps[0]
    );
    assert_eq!(steps[1]["reason_code"], "ineligible");
    assert_eq!(steps[2]["reason_code"], "cannot_originate");
    assert_eq!(steps[3]["reason_code"], "no_pricing");
    // Quota: the decline gave its reservation back; the approval keeps it.
    assert_eq!(used(&app, decliner).await, 0);
    assert_eq!(used(&app, approver).await, 5_000_000);
    assert_eq!(
        (used(&app, unlisted).await, used(&app, picky).await),
        (0, 0)
    );

    // A product that lists only the decliner: nobody accepts.
    let mut r = request("APP-2", 100_000);
    r["allowed_funders"] = json!(["f_decline"]);
    let (_, run) = ops.post("/api/v1/routing/runs", r).await;
    assert_eq!(run["state"], "exhausted");
    assert_eq!(run["funder_code"], Value::Null);
    // Bad requests name their fields.
    let mut r = request("", 0);
    r["months"] = json!(0);
    let (s, p) = ops.post("/api/v1/routing/runs", r).await;
    assert_eq!(s, 422);
    assert_eq!(p["errors"].as_array().unwrap().len(), 3, "{p}");
    // History, filtered by funder.
    let (_, runs) = ops.get("/api/v1/routing/runs?partner=f_approve").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let (_, runs) = ops.get("/api/v1/routing/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
    // The waterfall order is configurable: approval rate first puts the approver ahead.
    let (s, _) = ops
        .put(
            "/api/v1/routing/waterfall",
            json!({"order": ["approval_rate", "priority"], "max_retries": 3}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, run) = ops
        .post("/api/v1/routing/runs", request("APP-3", 100_000))
        .await;
    assert_eq!(run["plan"], json!(["f_approve", "f_decline"]));
    let (s, _) = ops
        .put(
            "/api/v1/routing/waterfall",
            json!({"order": ["cost"], "max_retries": 3}),
        )
        .await;
    assert_eq!(s, 422);
    // Performance counts what routing did.
    let (_, perf) = ops.get("/api/v1/partners/f_decline/performance").await;
    assert_eq!(
        (
            perf["attempts"].as_i64(),
            perf["declined"].as_i64(),
            perf["approval_rate"].as_str()
        ),
        (Some(2), Some(2), Some("0"))
    );
    app.stop().await;
}

async fn a_funder_that_times_out_is_passed_over(db: &TestDb) {
    let app = TestApp::start(db).await;
    let ops = Api::as_role(&app, &["operations"]).await;
    // Answers after ~2 s but is given 150 ms.
    let slow = funder(&app, "f_slow", 1, 10_000, 2_000, 150).await;
    let fast = funder(&app, "f_fast", 2, 10_000, 0, 1_000).await;
    let started = std::time::Instant::now();
    let (s, run) = ops
        .post("/api/v1/routing/runs", request("APP-T", 300_000))
        .await;
    assert_eq!(s, 201, "{run}");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the timeout was not applied"
    );
    assert_eq!(
        outcomes(&run),
        [pair("f_slow", "timeout"), pair("f_fast", "approved")]
    );
    assert_eq!(run["funder_code"], "f_fast");
    assert_eq!(
        used(&app, slow).await,
        0,
        "the timed-out reservation was released"
    );
    assert_eq!(used(&app, fast).await, 300_000);
    app.stop().await;
}

/// What the fake funder saw and how it answers.
#[derive(Default)]
struct FakeFunder {
    seen: Mutex<Vec<(String, bool)>>,
}

async fn start_fake_funder(now_ms: i64) -> (String, Arc<FakeFunder>) {
    let state = Arc::new(FakeFunder::default());
    let s2 = state.clone();
    let app = axum::Router::new().route(
        "/apply",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s2.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let valid = zhudai_server::routing::verify(
                    KEY.as_bytes(),
                    h(TIMESTAMP_HEADER).as_deref(),
                    h(SIGNATURE_HEADER).as_deref(),
                    &body,
                    now_ms,
                )
                .is_ok();
                let req: Value = serde_json::from_slice(&body).unwrap();
                let app_ref = req["application_ref"].as_str().unwrap().to_owned();
                s.seen.lock().unwrap().push((app_ref.clone(), valid));
                if app_ref.starts_with("DOWN") {
                    return (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({})),
                    )
                        .into_response_parts_ok();
                }
                if app_ref.starts_with("DECL") {
                    return (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"decision": "declined", "reason": "outside appetite"})),
                    )
                        .into_response_parts_ok();
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"decision": "pending", "reference": format!("H-{app_ref}")})),
                )
                    .into_response_parts_ok()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/apply"), state)
}

trait OkResponse {
    fn into_response_parts_ok(self) -> axum::response::Response;
}
impl<T: axum::response::IntoResponse> OkResponse for T {
    fn into_response_parts_ok(self) -> axum::response::Response {
        self.into_response()
    }
}

async fn http_funder(app: &TestApp, ops: &Api, code: &str, endpoint: &str) -> i64 {
    let id = funder(app, code, 1, 0, 0, 2_000).await;
    let (s, p) = ops
        .patch(
            &format!("/api/v1/partners/{code}"),
            json!({"adapter": "http", "endpoint_url": endpoint, "hmac_key": KEY}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["has_hmac_key"], true);
    id
}

async fn callback(app: &TestApp, code: &str, body: &Value, ts: i64, key: &str) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let resp = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/funder-callbacks/{code}")))
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, sign(key.as_bytes(), ts, &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn run_pending_jobs(app: &TestApp) -> usize {
    let mut ran = 0;
    while let Some(job) = app
        .state
        .store()
        .claim("default", "test-worker", app.state.now_ms(), 60_000)
        .await
        .unwrap()
    {
        assert_eq!(job.kind, "routing.advance");
        zhudai_server::routing::run_advance_job(app.state.clone(), job.clone())
            .await
            .unwrap();
        app.state
            .store()
            .complete(job.id, "test-worker", app.state.now_ms())
            .await
            .unwrap();
        ran += 1;
    }
    ran
}

async fn http_funder_signed_decline_and_double_callback(db: &TestDb) {
    let app = TestApp::start(db).await;
    let ops = Api::as_role(&app, &["funding_manager"]).await;
    let now = app.state.now_ms();
    let (endpoint, fake) = start_fake_funder(now).await;
    let http_id = http_funder(&app, &ops, "f_http", &endpoint).await;
    let backup = funder(&app, "f_backup", 5, 10_000, 0, 1_000).await;

    // A decline moves on to the next funder; our request was signed correctly.
    let (_, run) = ops
        .post("/api/v1/routing/runs", request("DECL-1", 100_000))
        .await;
    assert_eq!(
        outcomes(&run),
        [pair("f_http", "declined"), pair("f_backup", "approved")]
    );
    assert_eq!(run["steps"][0]["reason"], "outside appetite");
    assert_eq!(
        fake.seen.lock().unwrap().clone(),
        [("DECL-1".to_owned(), true)]
    );

    // Pending: the run waits for the callback with the quota reserved.
    let (_, run) = ops
        .post("/api/v1/routing/runs", request("PEND-1", 700_000))
        .await;
    assert_eq!(run["state"], "pending", "{run}");
    assert_eq!(run["steps"][0]["external_ref"], "H-PEND-1");
    assert_eq!(used(&app, http_id).await, 700_000);
    let run_id = run["id"].as_i64().unwrap();

    let cb = json!({"callback_id": "cb-1", "application_ref": "PEND-1", "decision": "approved", "reference": "LOAN-77"});
    // Wrong key, stale timestamp: refused, nothing applied.
    assert_eq!(
        callback(
            &app,
            "f_http",
            &cb,
            now,
            "another-key-another-key-another-key"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        callback(&app, "f_http", &cb, now - 600_000, KEY).await.0,
        401
    );
    assert_eq!(callback(&app, "nobody", &cb, now, KEY).await.0, 404);
    assert_eq!(
        ops.get(&format!("/api/v1/routing/runs/{run_id}")).await.1["state"],
        "pending"
    );
    // The same callback twice: processed once, the second answered with the first result.
    let (s1, r1) = callback(&app, "f_http", &cb, now, KEY).await;
    let (s2, r2) = callback(&app, "f_http", &cb, now + 1_000, KEY).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(r1["status"], "applied");
    assert_eq!(r1["duplicate"], false);
    assert_eq!(r2["duplicate"], true);
    assert_eq!(
        (
            r2["run_id"].clone(),
            r2["step_id"].clone(),
            r2["detail"].clone()
        ),
        (
            r1["run_id"].clone(),
            r1["step_id"].clone(),
            r1["detail"].clone()
        )
    );
    let (_, run) = ops.get(&format!("/api/v1/routing/runs/{run_id}")).await;
    assert_eq!(run["state"], "routed");
    assert_eq!(run["funder_code"], "f_http");
    assert_eq!(run["steps"][0]["external_ref"], "LOAN-77");
    assert_eq!(used(&app, http_id).await, 700_000, "consumed once");
    // A new callback id for a decided request changes nothing.
    let (s, r) = callback(
        &app,
        "f_http",
        &json!({"callback_id": "cb-2", "application_ref": "PEND-1", "decision": "declined"}),
        now,
        KEY,
    )
    .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("ignored")));
    assert_eq!(used(&app, http_id).await, 700_000);

    // A declining callback: the run goes on to the next funder through the job queue.
    let (_, run) = ops
        .post("/api/v1/routing/runs", request("PEND-2", 200_000))
        .await;
    let run_id = run["id"].as_i64().unwrap();
    let (s, _) = callback(&app, "f_http", &json!({"callback_id": "cb-3", "application_ref": "PEND-2", "decision": "declined", "reason": "no"}), now, KEY).await;
    assert_eq!(s, 200);
    assert_eq!(
        used(&app, http_id).await,
        700_000,
        "the declined reservation was released"
    );
    assert_eq!(run_pending_jobs(&app).await, 1);
    let (_, run) = ops.get(&format!("/api/v1/routing/runs/{run_id}")).await;
    assert_eq!(run["state"], "routed");
    assert_eq!(
        outcomes(&run),
        [pair("f_http", "declined"), pair("f_backup", "approved")]
    );
    assert_eq!(used(&app, backup).await, 100_000 + 200_000);
    // Callbacks are in the audit trail.
    let page = db
        .store
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                action_prefix: Some("routing.callback".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        page.records.len(),
        3,
        "two applied and one ignored; the duplicate adds none of its own"
    );
    app.stop().await;
}

async fn unreachable_funder_is_retried_with_backoff_then_passed_over(db: &TestDb) {
    let app = TestApp::start(db).await;
    let ops = Api::as_role(&app, &["funding_manager"]).await;
    let (endpoint, fake) = start_fake_funder(app.state.now_ms()).await;
    let http_id = http_funder(&app, &ops, "f_down", &endpoint).await;
    funder(&app, "f_backup", 5, 10_000, 0, 1_000).await;
    let (_, run) = ops
        .post("/api/v1/routing/runs", request("DOWN-1", 100_000))
        .await;
    assert_eq!(run["state"], "retrying", "{run}");
    let run_id = run["id"].as_i64().unwrap();
    // The retry waits for its backoff (2 s after the first failure).
    assert_eq!(run_pending_jobs(&app).await, 0);
    app.clock.advance_millis(2_000);
    assert_eq!(run_pending_jobs(&app).await, 1);
    assert_eq!(
        ops.get(&format!("/api/v1/routing/runs/{run_id}")).await.1["state"],
        "retrying"
    );
    app.clock.advance_millis(3_999);
    assert_eq!(run_pending_jobs(&app).await, 0, "the second backoff is 4 s");
    app.clock.advance_millis(1);
    assert_eq!(run_pending_jobs(&app).await, 1);
    let (_, run) = ops.get(&format!("/api/v1/routing/runs/{run_id}")).await;
    assert_eq!(run["state"], "routed");
    assert_eq!(
        outcomes(&run),
        [
            pair("f_down", "error"),
            pair("f_down", "error"),
            pair("f_down", "error"),
            pair("f_backup", "approved")
        ]
    );
    let attempts: Vec<i64> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 1]);
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
    assert_eq!(used(&app, http_id).await, 0);
    app.stop().await;
}
