//! The API's contract: health, readiness, OpenAPI, problem+json for every error.

use crate::support::TestApp;
use serde_json::Value;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    health_and_readiness,
    openapi_describes_every_route,
    errors_are_problem_json,
    request_ids_are_echoed,
    metrics_are_prometheus_text,
    org_units_and_system_info,
);

async fn health_and_readiness(db: &TestDb) {
    let app = TestApp::start(db).await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["database"], db.store.backend().name());
    assert_eq!(
        body["schema_version"],
        zhudai_store::migrate::latest_version()
    );
    app.stop().await;
}

async fn openapi_describes_every_route(db: &TestDb) {
    let app = TestApp::start(db).await;
    app.sign_in("auditor").await;
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/system/info",
        "/api/v1/system/jobs",
        "/api/v1/org-units",
        "/api/v1/openapi.json",
    ] {
        let item = paths
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from the OpenAPI document"));
        let get = &item["get"];
        assert!(
            get["responses"]["200"].is_object(),
            "{p} has no 200 response"
        );
        // Every documented route answers (no phantom documentation).
        let status = app.get(p).await.status();
        assert_eq!(status, 200, "{p} is documented but answers {status}");
    }
    // An independent validator agrees the document is valid OpenAPI.
    let file = db.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, json; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
        .arg(&file)
        .output()
        .expect("python3 is needed: run scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document (run scripts/install-deps.sh if it is missing): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The human-readable reference lists the same routes.
    let page = app.get("/api/docs").await.text().await.unwrap();
    assert!(page.contains("/api/v1/org-units") && page.contains("/readyz"));
    app.stop().await;
}

async fn assert_problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "content-type {ct}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:zhudai:problem:"));
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    body
}

async fn errors_are_problem_json(db: &TestDb) {
    let app = TestApp::start(db).await;
    assert_problem(app.get("/api/v1/no-such-thing").await, 404).await;
    let r = app
        .client
        .post(app.url("/api/v1/system/info"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().contains_key("allow"),
        "405 keeps the Allow header"
    );
    assert_problem(r, 405).await;
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = app
        .client
        .post(app.url("/api/v1/system/info"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413).await;
    app.stop().await;
}

async fn request_ids_are_echoed(db: &TestDb) {
    let app = TestApp::start(db).await;
    let r = app
        .client
        .get(app.url("/api/v1/missing"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let body = assert_problem(r, 404).await;
    assert_eq!(body["request_id"], "trace-42");
    // A malformed id is replaced, so log lines cannot be forged through it.
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "a b\tc")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "a b\tc");
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    app.stop().await;
}

async fn metrics_are_prometheus_text(db: &TestDb) {
    let app = TestApp::start(db).await;
    app.get("/healthz").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(text.contains("zhudai_http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/healthz""#), "{text}");
    assert!(
        text.contains("zhudai_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("zhudai_build_info{"), "{text}");
    app.stop().await;
}

async fn org_units_and_system_info(db: &TestDb) {
    let app = TestApp::start(db).await;
    app.sign_in("auditor").await;
    let units: Value = app.get("/api/v1/org-units").await.json().await.unwrap();
    assert_eq!(units.as_array().unwrap().len(), 0);
    let outcome = zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    assert_eq!(
        outcome,
        zhudai_server::demo::DemoOutcome::Seeded { org_units: 9 }
    );
    assert_eq!(
        zhudai_server::demo::seed(&db.store, 2).await.unwrap(),
        zhudai_server::demo::DemoOutcome::AlreadySeeded
    );
    let units: Value = app.get("/api/v1/org-units").await.json().await.unwrap();
    let units = units.as_array().unwrap();
    assert_eq!(units.len(), 9);
    assert_eq!(units.iter().filter(|u| u["kind"] == "branch").count(), 3);
    let hq = units.iter().find(|u| u["kind"] == "company").unwrap();
    assert!(units
        .iter()
        .filter(|u| u["kind"] == "branch")
        .all(|b| b["parent_id"] == hq["id"]));
    let info: Value = app.get("/api/v1/system/info").await.json().await.unwrap();
    assert_eq!(info["database"], db.store.backend().name());
    assert_eq!(info["business_date"], "2026-11-29");
    assert_eq!(info["demo"], false);
    assert_eq!(info["audit_retention_days"], 3650);
    app.stop().await;
}
