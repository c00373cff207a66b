//! Risk warnings through the API (issue #7 item 3): rules that do not compile cannot be
//! enabled, events fire rules with windowed aggregates, warnings carry the playbook's due
//! time and run their actions (task, freeze the line, suspend a partner) in the same
//! transaction as the audit records, overdue warnings, acknowledge / close, the rule
//! tester, the in-process entry point the daily close calls, and population stability.

use crate::support::TestApp;
use serde_json::{json, Value};
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    rules_that_do_not_compile_cannot_be_enabled,
    events_fire_rules_and_open_warnings_with_actions,
    warnings_become_overdue_and_are_closed_with_a_note,
    bad_events_change_nothing_and_duplicates_count_once,
    rule_errors_and_the_in_process_entry_point,
    a_partner_signal_suspends_the_funder,
    playbooks_set_the_due_time,
    population_stability_opens_a_drift_warning,
    demo_risk_data_fills_the_pages,
);

pub const HOUR_MS: i64 = 3_600_000;

/// A bearer-token JSON client.
pub async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(app, token, reqwest::Method::POST, path, Some(body)).await
}

pub async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    call(app, token, reqwest::Method::GET, path, None).await
}

/// An individual customer created by `cm`; returns its id.
pub async fn customer(app: &TestApp, cm: &str, seed: u64) -> i64 {
    let id = zhudai_domain::generate::resident_id(seed);
    let phone = zhudai_domain::generate::mobile(seed);
    let (s, c) = post(
        app,
        cm,
        "/api/v1/customers",
        json!({"name": format!("客户{seed}"), "id_number": id.as_str(), "phone": phone.as_str()}),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// An enterprise customer created by `cm`; returns its id.
pub async fn enterprise(app: &TestApp, cm: &str, seed: u64) -> i64 {
    let uscc = zhudai_domain::generate::uscc(seed);
    let (s, c) = post(
        app,
        cm,
        "/api/v1/customers",
        json!({"kind": "enterprise", "name": format!("企业{seed}有限公司"), "id_number": uscc.as_str()}),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    c["id"].as_i64().unwrap()
}

/// Opens a line through maker (request) and checker (approval); returns the line id.
pub async fn open_line(
    app: &TestApp,
    maker: &str,
    checker: &str,
    customer: i64,
    scope: &str,
    amount: &str,
    valid_until: &str,
) -> i64 {
    let (s, a) = post(
        app,
        maker,
        "/api/v1/risk/limits/adjustments",
        json!({"customer_id": customer, "scope": scope, "amount": amount, "valid_until": valid_until, "reason": "授信审批通过"}),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let (s, d) = post(
        app,
        checker,
        &format!("/api/v1/risk/limits/adjustments/{}/decision", a["id"]),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    d["limit_id"].as_i64().unwrap()
}

pub fn rule(code: &str, on: &[&str], condition: &str, severity: &str, actions: Value) -> Value {
    json!({
        "code": code, "name": format!("规则 {code}"), "category": "repayment", "stage": "in_loan",
        "severity": severity, "on_events": on, "condition": condition, "actions": actions,
    })
}

/// Creates and enables a rule.
pub async fn enabled_rule(app: &TestApp, token: &str, body: Value) {
    let code = body["code"].as_str().unwrap().to_owned();
    let (s, r) = post(app, token, "/api/v1/risk/rules", body).await;
    assert_eq!(s, 201, "{r}");
    assert!(r["compile_error"].is_null(), "{r}");
    let (s, r) = post(
        app,
        token,
        &format!("/api/v1/risk/rules/{code}/enable"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["enabled"], true);
}

pub async fn events(app: &TestApp, token: &str, events: Value) -> (u16, Value) {
    post(
        app,
        token,
        "/api/v1/risk/events",
        json!({ "events": events }),
    )
    .await
}

async fn audit_actions(app: &TestApp, action: &str) -> usize {
    app.state
        .store()
        .audit_count(&AuditFilter {
            action_prefix: Some(action.into()),
            ..Default::default()
        })
        .await
        .unwrap() as usize
}

async fn rules_that_do_not_compile_cannot_be_enabled(db: &TestDb) {
    let app = TestApp::start(db).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;

    // An unknown field: saved as a draft with the error naming it, refused on enable.
    let (s, r) = post(
        &app,
        &rm,
        "/api/v1/risk/rules",
        rule("age_check", &[], "customer.agee > 60", "low", json!([])),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["enabled"], false);
    assert_eq!(r["compile_error"]["code"], "E101");
    let msg = r["compile_error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("customer.agee") && msg.contains("did you mean `customer.age`"),
        "{msg}"
    );
    let (s, p) = post(&app, &rm, "/api/v1/risk/rules/age_check/enable", json!({})).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "condition");
    assert_eq!(p["errors"][0]["code"], "E101");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("customer.agee"),
        "{p}"
    );
    assert_eq!(
        get(&app, &rm, "/api/v1/risk/rules/age_check").await.1["enabled"],
        false
    );
    assert_eq!(audit_actions(&app, "risk.rule.enable").await, 0);

    // A syntax error and an unknown event type in an aggregate are named too.
    let (s, r) = post(
        &app,
        &rm,
        "/api/v1/risk/rules",
        rule(
            "broken",
            &[],
            "count(repayment_faild, 30d) >= 3 &&",
            "low",
            json!([]),
        ),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert!(
        r["compile_error"]["code"]
            .as_str()
            .unwrap()
            .starts_with('E'),
        "{r}"
    );
    assert_eq!(
        post(&app, &rm, "/api/v1/risk/rules/broken/enable", json!({}))
            .await
            .0,
        422
    );

    // Field errors: bad category, unknown event in on_events, unknown role, bad action.
    let mut bad = rule(
        "bad_fields",
        &["nope"],
        "true",
        "urgent",
        json!([{"kind": "assign_task", "role": "ghost", "title": "x"}, {"kind": "launch"}]),
    );
    bad["category"] = json!("weather");
    let (s, p) = post(&app, &rm, "/api/v1/risk/rules", bad).await;
    assert_eq!(s, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "category",
        "severity",
        "on_events[0]",
        "actions[0].role",
        "actions[1]",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    assert_eq!(get(&app, &rm, "/api/v1/risk/rules/bad_fields").await.0, 404);
    // The code is unique.
    let (s, _) = post(
        &app,
        &rm,
        "/api/v1/risk/rules",
        rule("age_check", &[], "true", "low", json!([])),
    )
    .await;
    assert_eq!(s, 409);

    // Fix it (with the version edited), enable it.
    let mut fixed = rule(
        "age_check",
        &[],
        "has(customer.age) && customer.age > 60",
        "low",
        json!([]),
    );
    fixed["version"] = json!(1);
    let (s, r) = call(
        &app,
        &rm,
        reqwest::Method::PUT,
        "/api/v1/risk/rules/age_check",
        Some(fixed.clone()),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["version"], 2);
    assert!(r["compile_error"].is_null());
    // Editing a stale version is a conflict.
    let (s, _) = call(
        &app,
        &rm,
        reqwest::Method::PUT,
        "/api/v1/risk/rules/age_check",
        Some(fixed),
    )
    .await;
    assert_eq!(s, 409);
    let (s, r) = post(&app, &rm, "/api/v1/risk/rules/age_check/enable", json!({})).await;
    assert_eq!((s, r["enabled"].as_bool()), (200, Some(true)), "{r}");
    // Editing an enabled rule into something that does not compile disables it.
    let mut worse = rule("age_check", &[], "customer.age >", "low", json!([]));
    worse["version"] = json!(2);
    let (s, r) = call(
        &app,
        &rm,
        reqwest::Method::PUT,
        "/api/v1/risk/rules/age_check",
        Some(worse),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["enabled"], false);
    assert!(r["compile_error"].is_object());
    // Two versions history rows and the audit trail.
    let versions: i64 = zhudai_store::sqlx::query_scalar("SELECT COUNT(*) FROM risk_rule_versions WHERE rule_id = (SELECT id FROM risk_rules WHERE code = 'age_check')")
        .fetch_one(app.state.store().reader())
        .await
        .unwrap();
    assert_eq!(versions, 3);
    assert_eq!(audit_actions(&app, "risk.rule.enable").await, 1);
    assert!(audit_actions(&app, "risk.rule.update").await >= 2);

    // A reviewer reads rules but cannot write them.
    assert_eq!(get(&app, &reviewer, "/api/v1/risk/rules").await.0, 200);

    // The tester runs the production engine over sample rows, aggregates included.
    let (s, t) = post(
        &app,
        &rm,
        "/api/v1/risk/rules/test",
        json!({
            "condition": "count(repayment_failed, 30d) >= 2 && sum(repayment_failed.amount, 30d) > 1000.00",
            "on_events": ["repayment_failed"],
            "rows": [
                {"type": "repayment_failed", "amount": "600.00", "occurred_at": "2026-11-01T10:00:00+08:00"},
                {"type": "repayment_made", "amount": "600.00", "occurred_at": "2026-11-02T10:00:00+08:00"},
                {"type": "repayment_failed", "amount": "500.00", "occurred_at": "2026-11-03T10:00:00+08:00"},
                {"type": "repayment_failed", "amount": "500.00", "occurred_at": "2026-12-10T10:00:00+08:00"},
                {"subject": "other", "type": "repayment_failed", "amount": "5000.00", "occurred_at": "2026-12-10T10:00:00+08:00"}
            ]
        }),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let outcomes: Vec<&str> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    // Row 4 is 37 days after row 3's neighbours: only itself in the window.
    assert_eq!(
        outcomes,
        [
            "not_fired",
            "not_evaluated",
            "fired",
            "not_fired",
            "not_fired"
        ]
    );
    assert_eq!(
        t["rows"][2]["aggregates"]["sum(repayment_failed.amount, 30d)"],
        "1100.00"
    );
    assert_eq!(
        t["rows"][2]["aggregates"]["count(repayment_failed, 30d)"],
        "2"
    );
    assert_eq!(t["fired"], 1);
    let (s, p) = post(
        &app,
        &rm,
        "/api/v1/risk/rules/test",
        json!({"condition": "loan.dpd > 3", "rows": [{"type": "overdue", "days": 3}]}),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("loan.dpd"),
        "{p}"
    );
    app.stop().await;
}

async fn events_fire_rules_and_open_warnings_with_actions(db: &TestDb) {
    let app = TestApp::start(db).await;
    // The post-loan manager sees the customers of her branch.
    let co = app.org_unit(None, "company", "w-co").await;
    let branch = app.org_unit(Some(co), "branch", "w-br").await;
    let team = app.org_unit(Some(branch), "team", "w-team").await;
    let cm = app.token_in_unit("customer_manager", Some(team)).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let post_loan = app.token_in_unit("post_loan", Some(branch)).await;
    let c = customer(&app, &cm, 11).await;
    let other = customer(&app, &cm, 12).await;
    let line = open_line(
        &app,
        &reviewer,
        &rm,
        c,
        "customer",
        "50000.00",
        "2027-11-29",
    )
    .await;
    enabled_rule(
        &app,
        &rm,
        rule(
            "failed_3x",
            &["repayment_failed"],
            "count(repayment_failed, 30d) >= 3",
            "high",
            json!([{"kind": "assign_task", "role": "post_loan", "title": "致电客户核实"}, {"kind": "freeze_line"}]),
        ),
    )
    .await;
    let failed = |customer: i64| json!([{"type": "repayment_failed", "customer_id": customer, "amount": "1200.00", "code": "insufficient_funds"}]);
    // Two failures: counted, nothing fires.
    for _ in 0..2 {
        let (s, r) = events(&app, &rm, failed(c)).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["evaluations"], 1);
        assert!(r["hits"].as_array().unwrap().is_empty(), "{r}");
    }
    // Events of another customer do not count for this one; two of hers are in the
    // past beyond the window (40 days ago).
    let old = "2026-10-20T10:00:00+08:00";
    let (s, r) = events(
        &app,
        &rm,
        json!([
            {"type": "repayment_failed", "customer_id": other, "occurred_at": old},
            {"type": "repayment_failed", "customer_id": other, "occurred_at": old},
            {"type": "repayment_failed", "customer_id": other}
        ]),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["hits"].as_array().unwrap().is_empty(), "{r}");
    // The third failure in 30 days fires: a warning with the high playbook's 24 h.
    let now = app.state.now_ms();
    let (s, r) = events(&app, &rm, failed(c)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["hits"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["hits"][0]["opened"], true);
    let wid = r["hits"][0]["warning_id"].as_i64().unwrap();
    let (s, w) = get(&app, &reviewer, &format!("/api/v1/risk/warnings/{wid}")).await;
    assert_eq!(s, 200, "{w}");
    let warning = &w["warning"];
    assert_eq!(warning["severity"], "high");
    assert_eq!(warning["status"], "open");
    assert_eq!(warning["customer_id"], c);
    assert_eq!(warning["due_at_ms"].as_i64().unwrap(), now + 24 * HOUR_MS);
    assert_eq!(warning["overdue"], false);
    assert_eq!(
        warning["facts"]["aggregates"]["count(repayment_failed, 30d)"],
        "3"
    );
    assert_eq!(warning["facts"]["limit"]["amount"], "50000.00");
    assert!(warning["notify_roles"]
        .as_array()
        .unwrap()
        .contains(&json!("risk_manager")));
    // The actions ran: a task for post-loan, the line frozen (with its audit record).
    let actions = warning["actions_taken"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert!(actions.iter().all(|a| a["done"] == true), "{actions:?}");
    assert_eq!(w["tasks"][0]["role"], "post_loan");
    assert_eq!(
        w["tasks"][0]["due_at_ms"].as_i64().unwrap(),
        now + 24 * HOUR_MS
    );
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(l["line"]["status"], "frozen", "{l}");
    assert!(l["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["action"] == "freeze" && h["actor"] == "system:rule:failed_3x"));
    assert_eq!(audit_actions(&app, "risk.warning.open").await, 1);
    assert_eq!(audit_actions(&app, "credit_limit.freeze").await, 1);
    // A draw on the frozen line is refused with a clear problem.
    let mut tx = app.state.store().begin().await.unwrap();
    let refused = zhudai_server::limits::reserve(
        &mut tx,
        c,
        zhudai_domain::Fen::new(100),
        "L-1",
        "loans",
        app.state.clock().today(),
        now,
    )
    .await;
    tx.rollback().await.unwrap();
    let e = refused.unwrap_err().to_problem();
    assert_eq!(
        (e.status, e.errors[0].code.as_str()),
        (422, "limit.frozen"),
        "{e:?}"
    );
    // The post-loan manager sees the task and marks it done.
    let (s, tasks) = get(&app, &post_loan, "/api/v1/risk/tasks").await;
    assert_eq!(s, 200);
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["warning_id"] == wid)
        .unwrap()
        .clone();
    let (s, t) = post(
        &app,
        &post_loan,
        &format!("/api/v1/risk/tasks/{}/done", task["id"]),
        json!({"note": "已联系，客户承诺周五还款"}),
    )
    .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("done")), "{t}");
    // A fourth failure counts on the open warning: no second warning, no second freeze.
    let (s, r) = events(&app, &rm, failed(c)).await;
    assert_eq!(s, 200);
    assert_eq!(r["hits"][0]["opened"], false);
    assert_eq!(r["hits"][0]["warning_id"], wid);
    let (_, w) = get(&app, &reviewer, &format!("/api/v1/risk/warnings/{wid}")).await;
    assert_eq!(w["warning"]["hits"], 2);
    assert_eq!(audit_actions(&app, "risk.warning.open").await, 1);
    // Filters: by category and severity, and the dashboard counts.
    let (_, page) = get(
        &app,
        &reviewer,
        "/api/v1/risk/warnings?severity=high&status=open",
    )
    .await;
    assert_eq!(page["total"], 1);
    let (_, page) = get(&app, &reviewer, "/api/v1/risk/warnings?category=fraud").await;
    assert_eq!(page["total"], 0);
    assert_eq!(
        get(&app, &reviewer, "/api/v1/risk/warnings?severity=urgent")
            .await
            .0,
        422
    );
    let (_, d) = get(&app, &reviewer, "/api/v1/risk/dashboard").await;
    assert_eq!(d["open"], 1);
    assert_eq!(
        d["by_type"],
        json!([{"category": "repayment", "severity": "high", "count": 1}])
    );
    // A customer manager (no risk.read) cannot list warnings.
    assert_eq!(get(&app, &cm, "/api/v1/risk/warnings").await.0, 403);
    app.stop().await;
}

async fn warnings_become_overdue_and_are_closed_with_a_note(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let c = customer(&app, &cm, 21).await;
    let mut r = rule(
        "big_failure",
        &["repayment_failed"],
        "has(event.amount) && event.amount >= 5000.00",
        "critical",
        json!([]),
    );
    r["category"] = json!("credit");
    enabled_rule(&app, &rm, r).await;
    let (_, res) = events(
        &app,
        &rm,
        json!([{"type": "repayment_failed", "customer_id": c, "amount": "8000.00"}]),
    )
    .await;
    let wid = res["hits"][0]["warning_id"].as_i64().unwrap();
    // Critical: 4 hours. Five hours later it is overdue, in the list and on the page.
    app.clock.advance_millis(5 * HOUR_MS);
    // (Sessions idle out meanwhile: sign in again.)
    let rm = app.token_in_unit("risk_manager", None).await;
    let (_, page) = get(&app, &rm, "/api/v1/risk/warnings?overdue=true").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["overdue"], true);
    assert_eq!(
        get(&app, &rm, "/api/v1/risk/dashboard").await.1["overdue"],
        1
    );
    app.sign_in("risk_manager").await;
    let html = app.get("/risk/warnings").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="warning-overdue""#),
        "overdue row highlighted"
    );
    let html = app.get("/risk/dashboard").await.text().await.unwrap();
    assert!(
        html.contains("data-segment=\"3\""),
        "critical segment in the type chart"
    );
    // Acknowledge (still overdue until closed), then close: the note is required.
    let (s, d) = post(
        &app,
        &rm,
        &format!("/api/v1/risk/warnings/{wid}/acknowledge"),
        json!({"note": "跟进中"}),
    )
    .await;
    assert_eq!(
        (s, d["warning"]["status"].as_str()),
        (200, Some("acknowledged"))
    );
    assert_eq!(d["warning"]["overdue"], true);
    assert_eq!(
        post(
            &app,
            &rm,
            &format!("/api/v1/risk/warnings/{wid}/acknowledge"),
            json!({})
        )
        .await
        .0,
        409
    );
    let (s, p) = post(
        &app,
        &rm,
        &format!("/api/v1/risk/warnings/{wid}/close"),
        json!({"note": "  "}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "note");
    let (s, d) = post(
        &app,
        &rm,
        &format!("/api/v1/risk/warnings/{wid}/close"),
        json!({"note": "客户已全额还款"}),
    )
    .await;
    assert_eq!(
        (s, d["warning"]["status"].as_str()),
        (200, Some("closed")),
        "{d}"
    );
    assert_eq!(d["warning"]["overdue"], false);
    assert_eq!(
        post(
            &app,
            &rm,
            &format!("/api/v1/risk/warnings/{wid}/close"),
            json!({"note": "x"})
        )
        .await
        .0,
        409
    );
    assert_eq!(
        get(&app, &rm, "/api/v1/risk/warnings?overdue=true").await.1["total"],
        0
    );
    assert_eq!(audit_actions(&app, "risk.warning.close").await, 1);
    // Closed, the rule and customer are free: the next hit opens a new warning.
    let (_, res) = events(
        &app,
        &rm,
        json!([{"type": "repayment_failed", "customer_id": c, "amount": "9000.00"}]),
    )
    .await;
    assert_eq!(res["hits"][0]["opened"], true);
    assert_ne!(res["hits"][0]["warning_id"].as_i64().unwrap(), wid);
    app.stop().await;
}

async fn bad_events_change_nothing_and_duplicates_count_once(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let c = customer(&app, &cm, 31).await;
    enabled_rule(
        &app,
        &rm,
        rule(
            "any_failure",
            &["repayment_failed"],
            "true",
            "low",
            json!([]),
        ),
    )
    .await;
    let count = || async {
        zhudai_store::sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM risk_events")
            .fetch_one(app.state.store().reader())
            .await
            .unwrap()
    };
    // One bad event refuses the batch, naming each problem; nothing is stored.
    let (s, p) = events(&app, &rm, json!([
        {"type": "repayment_failed", "customer_id": c},
        {"type": "weather", "customer_id": c},
        {"type": "blacklist_hit", "customer_id": c, "amount": "1.00"},
        {"type": "overdue", "customer_id": c},
        {"type": "repayment_failed", "customer_id": 999999},
        {"type": "repayment_failed"},
        {"type": "repayment_failed", "customer_id": c, "occurred_at": "2027-01-01T00:00:00+08:00"}
    ])).await;
    assert_eq!(s, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "events[1].type",
        "events[2].amount",
        "events[2].code",
        "events[3].days",
        "events[4].customer_id",
        "events[5].customer_id",
        "events[6].occurred_at",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    assert_eq!(count().await, 0);
    assert_eq!(events(&app, &rm, json!([])).await.0, 422);
    // The same dedupe key twice: stored and evaluated once.
    let e = json!([{"type": "repayment_failed", "customer_id": c, "dedupe_key": "bank:txn:42"}]);
    let (_, r1) = events(&app, &rm, e.clone()).await;
    let (_, r2) = events(&app, &rm, e).await;
    assert_eq!(
        (r1["stored"].as_i64(), r1["evaluations"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (r2["stored"].as_i64(), r2["evaluations"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(r1["event_ids"], r2["event_ids"]);
    assert_eq!(count().await, 1);
    // Only holders of risk.event report events.
    let reviewer_without = app.token_in_unit("approver_l1", None).await;
    assert_eq!(
        events(
            &app,
            &reviewer_without,
            json!([{"type": "repayment_failed", "customer_id": c}])
        )
        .await
        .0,
        403
    );
    app.stop().await;
}

async fn rule_errors_and_the_in_process_entry_point(db: &TestDb) {
    use zhudai_server::warnings::{engine::LoanFacts, evaluate_events, RiskEvent};
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let c = customer(&app, &cm, 41).await;
    let mut r = rule(
        "dpd_30",
        &["overdue"],
        "loan.days_past_due > 30 && count(overdue, 90d) >= 1",
        "medium",
        json!([]),
    );
    r["stage"] = json!("post_loan");
    enabled_rule(&app, &rm, r).await;
    // Without loan facts the rule cannot decide: a rule error, never a hit.
    let (s, res) = events(
        &app,
        &rm,
        json!([{"type": "overdue", "customer_id": c, "days": 5}]),
    )
    .await;
    assert_eq!(s, 200, "{res}");
    assert!(res["hits"].as_array().unwrap().is_empty());
    assert_eq!(res["rule_errors"][0]["rule"], "dpd_30");
    assert_eq!(res["rule_errors"][0]["code"], "R004");
    // The daily close calls the engine in process with the loan facts it has.
    let today_ms = app.state.now_ms();
    let cob = vec![
        RiskEvent {
            event_type: "overdue".into(),
            customer_id: Some(c),
            loan_ref: Some("LN-0001".into()),
            occurred_at_ms: today_ms,
            days: Some(12),
            amount_fen: Some(150_000),
            loan: Some(LoanFacts {
                days_past_due: Some(12),
                outstanding_fen: Some(900_000),
                ..Default::default()
            }),
            dedupe_key: Some("cob:2026-11-29:LN-0001".into()),
            ..Default::default()
        },
        RiskEvent {
            event_type: "overdue".into(),
            customer_id: Some(c),
            loan_ref: Some("LN-0002".into()),
            occurred_at_ms: today_ms,
            days: Some(45),
            loan: Some(LoanFacts {
                days_past_due: Some(45),
                funder: Some("bank_a".into()),
                ..Default::default()
            }),
            dedupe_key: Some("cob:2026-11-29:LN-0002".into()),
            ..Default::default()
        },
    ];
    let report = evaluate_events(&app.state, &cob, "cob").await.unwrap();
    assert_eq!(report.stored, 2);
    assert_eq!(report.evaluations, 2);
    assert_eq!(report.hits.len(), 1);
    assert!(report.rule_errors.is_empty());
    // Re-running the day's close is idempotent (dedupe keys).
    let again = evaluate_events(&app.state, &cob, "cob").await.unwrap();
    assert_eq!((again.stored, again.evaluations), (0, 0));
    let w = app
        .state
        .store()
        .risk_warning(report.hits[0].warning_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.stage, "post_loan");
    let facts: Value = serde_json::from_str(&w.facts).unwrap();
    assert_eq!(facts["loan"]["days_past_due"], 45);
    // The in-process entry point refuses bad events the same way.
    let bad = vec![RiskEvent {
        event_type: "nope".into(),
        customer_id: Some(c),
        ..Default::default()
    }];
    let e = evaluate_events(&app.state, &bad, "cob").await.unwrap_err();
    assert_eq!(e.to_problem().errors[0].field, "events[0].type");
    app.stop().await;
}

async fn a_partner_signal_suspends_the_funder(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let p = app
        .state
        .store()
        .partner_by_code("bank_a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, "admitted");
    let mut r = rule(
        "funder_overdue",
        &["partner_signal"],
        "has(event.rate) && event.rate > 0.08 && count(partner_signal, 7d) >= 1",
        "critical",
        json!([{"kind": "suspend_partner"}, {"kind": "assign_task", "role": "funding_manager", "title": "核查资金方风险"}]),
    );
    r["category"] = json!("partner");
    enabled_rule(&app, &rm, r).await;
    let (s, res) = events(
        &app,
        &rm,
        json!([{"type": "partner_signal", "partner": "bank_a", "rate": "0.05"}]),
    )
    .await;
    assert_eq!(s, 200, "{res}");
    assert!(res["hits"].as_array().unwrap().is_empty());
    let (_, res) = events(&app, &rm, json!([{"type": "partner_signal", "partner": "bank_a", "rate": "0.125", "code": "overdue_rate"}])).await;
    let wid = res["hits"][0]["warning_id"].as_i64().unwrap();
    let p = app
        .state
        .store()
        .partner_by_code("bank_a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, "suspended");
    assert!(p.status_reason.unwrap().contains(&format!("#{wid}")));
    let w = app.state.store().risk_warning(wid).await.unwrap().unwrap();
    assert_eq!(
        (w.subject_type.as_str(), w.subject_ref.as_str()),
        ("partner", "bank_a")
    );
    assert_eq!(audit_actions(&app, "partner.status").await, 1);
    // Unknown partners are refused up front.
    assert_eq!(
        events(
            &app,
            &rm,
            json!([{"type": "partner_signal", "partner": "nobody", "rate": "0.5"}])
        )
        .await
        .0,
        422
    );
    app.stop().await;
}

async fn playbooks_set_the_due_time(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    // An executive reads playbooks but cannot edit them (no risk.manage).
    let reviewer = app.token_in_unit("executive", None).await;
    let (s, books) = get(&app, &reviewer, "/api/v1/risk/playbooks").await;
    assert_eq!(s, 200);
    assert_eq!(books.as_array().unwrap().len(), 4);
    let medium = books
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["severity"] == "medium")
        .unwrap()
        .clone();
    assert_eq!(medium["respond_within_hours"], 72);
    let put = |token: String, body: Value| {
        let app = &app;
        async move {
            call(
                app,
                &token,
                reqwest::Method::PUT,
                "/api/v1/risk/playbooks/medium",
                Some(body),
            )
            .await
        }
    };
    let body = json!({"respond_within_hours": 2, "notify_roles": ["risk_manager", "post_loan"], "steps": "两小时内电话核实。", "version": medium["version"]});
    // Only risk.manage edits; an unknown role and a bad time are named.
    assert_eq!(put(reviewer.clone(), body.clone()).await.0, 403);
    let (s, p) = put(
        rm.clone(),
        json!({"respond_within_hours": 0, "notify_roles": ["ghost"], "steps": "", "version": 1}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"].as_array().unwrap().len(), 3);
    let (s, p) = put(rm.clone(), body.clone()).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["respond_within_hours"], 2);
    assert_eq!(put(rm.clone(), body).await.0, 409, "stale version");
    assert_eq!(audit_actions(&app, "risk.playbook.update").await, 1);
    // A medium warning opened now is due in two hours and carries the new steps.
    let c = customer(&app, &cm, 51).await;
    let mut r = rule(
        "inquiries",
        &["credit_inquiry"],
        "event.count >= 5",
        "medium",
        json!([]),
    );
    r["stage"] = json!("pre_loan");
    r["category"] = json!("credit");
    enabled_rule(&app, &rm, r).await;
    let now = app.state.now_ms();
    let (_, res) = events(
        &app,
        &rm,
        json!([{"type": "credit_inquiry", "customer_id": c, "count": 7}]),
    )
    .await;
    let (_, w) = get(
        &app,
        &rm,
        &format!("/api/v1/risk/warnings/{}", res["hits"][0]["warning_id"]),
    )
    .await;
    assert_eq!(
        w["warning"]["due_at_ms"].as_i64().unwrap(),
        now + 2 * HOUR_MS
    );
    assert_eq!(w["warning"]["playbook_steps"], "两小时内电话核实。");
    assert_eq!(
        w["warning"]["notify_roles"],
        json!(["risk_manager", "post_loan"])
    );
    app.stop().await;
}

/// A scorecard trained on synthetic data, with its development sample.
fn model_json() -> String {
    use zhudai_scorecard::{Column, ColumnData, Dataset, TrainingOptions};
    let mut rng = zhudai_domain::generate::SplitMix64::new(7);
    let n = 3000;
    let mut income = Vec::with_capacity(n);
    let mut age = Vec::with_capacity(n);
    let mut bad = Vec::with_capacity(n);
    for _ in 0..n {
        let inc = rng.below(100) as f64;
        let a = 20.0 + rng.below(40) as f64;
        let p_bad = 0.05 + 0.4 * (1.0 - inc / 100.0) + 0.1 * (1.0 - (a - 20.0) / 40.0);
        let is_bad = (rng.below(10_000) as f64) < p_bad * 10_000.0;
        income.push(Some(inc));
        age.push(Some(a));
        bad.push(Some(if is_bad { 1.0 } else { 0.0 }));
    }
    let data = Dataset::new(vec![
        Column {
            name: "income".into(),
            data: ColumnData::Numeric(income),
        },
        Column {
            name: "age".into(),
            data: ColumnData::Numeric(age),
        },
        Column {
            name: "bad".into(),
            data: ColumnData::Numeric(bad),
        },
    ])
    .unwrap();
    let (model, _) = zhudai_scorecard::train(&data, "bad", &TrainingOptions::default()).unwrap();
    let mut v: Value = serde_json::from_str(&model.to_json_pretty().unwrap()).unwrap();
    v["metadata"]["name"] = json!("retail");
    v["metadata"]["version"] = json!("2026.1");
    v.to_string()
}

/// PSI computed here from the model's bins and development counts, independently of the
/// server's monitor: shares, floored at 1e-4, Σ (a − e)·ln(a/e).
fn psi_by_hand(model: &Value, feature: &str, values: &[f64]) -> f64 {
    let f = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == feature)
        .unwrap();
    let bins = f["bins"].as_array().unwrap();
    let uppers: Vec<Option<f64>> = bins.iter().map(|b| b["upper"].as_f64()).collect();
    let mut dev: Vec<f64> = bins
        .iter()
        .map(|b| b["dev"]["count"].as_f64().unwrap())
        .collect();
    dev.push(f["missing"]["dev"]["count"].as_f64().unwrap_or(0.0));
    let mut act = vec![0.0; dev.len()];
    for x in values {
        let i = uppers
            .iter()
            .position(|u| u.is_none_or(|u| *x <= u))
            .unwrap();
        act[i] += 1.0;
    }
    let (td, ta): (f64, f64) = (dev.iter().sum(), act.iter().sum());
    dev.iter()
        .zip(&act)
        .map(|(d, a)| {
            let (e, a) = ((d / td).max(1e-4), (a / ta).max(1e-4));
            (a - e) * (a / e).ln()
        })
        .sum()
}

async fn population_stability_opens_a_drift_warning(db: &TestDb) {
    let app = TestApp::start(db).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let json_text = model_json();
    let model: Value = serde_json::from_str(&json_text).unwrap();
    assert!(
        model["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "income"),
        "income selected"
    );
    // A model without development counts cannot be monitored.
    let mut bare = model.clone();
    bare["development"] = Value::Null;
    assert_eq!(
        post(
            &app,
            &rm,
            "/api/v1/risk/psi/baselines",
            json!({"model": bare})
        )
        .await
        .0,
        422
    );
    let (s, b) = post(
        &app,
        &rm,
        "/api/v1/risk/psi/baselines",
        json!({"model": model}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["model_name"].as_str(), b["model_version"].as_str()),
        (Some("retail"), Some("2026.1"))
    );
    // Too few observations: no run.
    let (_, runs) = post(&app, &rm, "/api/v1/risk/psi/run", json!({})).await;
    assert_eq!(runs[0]["outcome"], "too_few");
    // 200 recent applications with low incomes (a shifted population), fed as the
    // decision engine will feed them.
    let mut rng = zhudai_domain::generate::SplitMix64::new(99);
    let now = app.state.now_ms();
    let mut incomes = Vec::new();
    let mut tx = app.state.store().begin().await.unwrap();
    for i in 0..200 {
        let income = rng.below(30) as f64;
        incomes.push(income);
        let mut features = serde_json::Map::new();
        features.insert("income".into(), json!(income));
        features.insert("age".into(), json!(20 + rng.below(40)));
        zhudai_server::warnings::psi::record_observation(
            &mut tx,
            "retail",
            "2026.1",
            Some(&format!("application:{i}")),
            now - i * 60_000,
            500,
            &features,
        )
        .await
        .unwrap();
    }
    // An old observation outside the 30-day window is not counted.
    zhudai_server::warnings::psi::record_observation(
        &mut tx,
        "retail",
        "2026.1",
        None,
        now - 40 * 24 * HOUR_MS,
        500,
        &serde_json::Map::new(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (s, runs) = post(&app, &rm, "/api/v1/risk/psi/run", json!({})).await;
    assert_eq!(s, 200, "{runs}");
    assert_eq!(runs[0]["outcome"], "ran", "{runs}");
    assert_eq!(runs[0]["rows"], 200);
    assert_eq!(runs[0]["alert"], true);
    let wid = runs[0]["warning_id"].as_i64().unwrap();
    // The stored PSI of income matches the hand computation.
    let (_, o) = get(&app, &reviewer, "/api/v1/risk/psi").await;
    assert_eq!(o["threshold"], 0.25);
    let run = &o["baselines"][0]["runs"][0];
    let income = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "income")
        .unwrap();
    let expected = psi_by_hand(&model, "income", &incomes);
    let got = income["psi"].as_f64().unwrap();
    assert!(
        (got - expected).abs() < 1e-9,
        "server {got} vs hand {expected}"
    );
    assert!(got > 0.25 && income["alert"] == true);
    assert_eq!(run["results"][0]["name"], "score");
    // The drift warning, on the model.
    let (_, w) = get(&app, &reviewer, &format!("/api/v1/risk/warnings/{wid}")).await;
    assert_eq!(w["warning"]["category"], "model_drift");
    assert_eq!(w["warning"]["subject_ref"], "retail:2026.1");
    assert!(
        w["warning"]["title"].as_str().unwrap().contains("income"),
        "{w}"
    );
    // Once per business day.
    let (_, again) = post(&app, &rm, "/api/v1/risk/psi/run", json!({})).await;
    assert_eq!(again[0]["outcome"], "already_ran");
    // The dashboard draws PSI over time and the histogram.
    app.sign_in("risk_reviewer").await;
    let html = app.get("/risk/dashboard").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="psi-lines""#)
            && html.contains(r#"data-testid="psi-histogram""#)
    );
    assert!(html.contains(r#"data-series="income""#));
    // Next day, a population like the development sample: stable, no new warning.
    app.clock.advance_millis(24 * HOUR_MS);
    let rm = app.token_in_unit("risk_manager", None).await;
    let mut tx = app.state.store().begin().await.unwrap();
    let now = app.state.now_ms();
    zhudai_store::sqlx::query("DELETE FROM score_observations")
        .execute(&mut *tx)
        .await
        .unwrap();
    for i in 0..2000 {
        let mut features = serde_json::Map::new();
        features.insert("income".into(), json!(rng.below(100)));
        features.insert("age".into(), json!(20 + rng.below(40)));
        zhudai_server::warnings::psi::record_observation(
            &mut tx,
            "retail",
            "2026.1",
            None,
            now - i * 1000,
            500,
            &features,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let (_, runs) = post(&app, &rm, "/api/v1/risk/psi/run", json!({})).await;
    assert_eq!(runs[0]["outcome"], "ran", "{runs}");
    assert_eq!(runs[0]["alert"], false, "{runs}");
    assert!(runs[0]["score_psi"].as_f64().unwrap() < 0.1, "{runs}");
    app.stop().await;
}

async fn demo_risk_data_fills_the_pages(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    zhudai_server::demo::seed_accounts(&db.store, 1)
        .await
        .unwrap();
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    assert!(zhudai_server::demo_risk::seed(&app.state).await.unwrap());
    assert!(
        !zhudai_server::demo_risk::seed(&app.state).await.unwrap(),
        "once"
    );
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let (_, rules) = get(&app, &reviewer, "/api/v1/risk/rules").await;
    assert_eq!(rules.as_array().unwrap().len(), 5);
    assert!(rules
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["enabled"] == true && r["compile_error"].is_null()));
    let (_, page) = get(&app, &reviewer, "/api/v1/risk/warnings").await;
    let cats: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["rule_code"].as_str().unwrap())
        .collect();
    for c in ["failed_3x_30d", "dpd_over_30", "multi_lender", "psi"] {
        assert!(cats.contains(&c), "{c} in {cats:?}");
    }
    let (_, o) = get(&app, &reviewer, "/api/v1/risk/psi").await;
    let runs = o["baselines"][0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 7);
    assert_eq!(runs[0]["alert"], true, "drifted by the last day");
    assert_eq!(runs[6]["alert"], false, "stable on the first day");
    let (_, pending) = get(&app, &reviewer, "/api/v1/risk/limits/adjustments").await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    app.stop().await;
}
