//! Credit limits (issue #7 item 4): maker-checker changes with their audit records, draws
//! reserved and released inside a caller's transaction (as the loans code does), refusals
//! on frozen, lapsed and exhausted lines, group lines over an enterprise and the people
//! linked to it, the daily expiry job, and two draws racing for the last of a line.

use crate::support::TestApp;
use crate::warnings::{customer, enterprise, get, open_line, post};
use serde_json::json;
use zhudai_domain::Fen;
use zhudai_server::limits::{release, reserve};
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    changes_need_a_second_person,
    draws_are_checked_against_the_line,
    group_lines_cap_the_group,
    lines_expire_and_are_renewed,
    racing_draws_never_exceed_the_line,
);

async fn audit_count(app: &TestApp, prefix: &str) -> i64 {
    app.state
        .store()
        .audit_count(&AuditFilter {
            action_prefix: Some(prefix.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Reserves in a transaction of its own, like the loans code; returns the problem code on
/// refusal.
async fn draw(app: &TestApp, customer: i64, fen: i64, reference: &str) -> Result<(), String> {
    let mut tx = app.state.store().begin().await.unwrap();
    let r = reserve(
        &mut tx,
        customer,
        Fen::new(fen),
        reference,
        "loans",
        app.state.clock().today(),
        app.state.now_ms(),
    )
    .await;
    match r {
        Ok(_) => {
            tx.commit().await.unwrap();
            Ok(())
        }
        Err(e) => {
            tx.rollback().await.unwrap();
            let p = e.to_problem();
            Err(p
                .errors
                .first()
                .map(|e| format!("{} {}", e.code, e.message))
                .unwrap_or(p.detail.unwrap_or_default()))
        }
    }
}

async fn changes_need_a_second_person(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let maker = app.token_in_unit("risk_manager", None).await;
    let checker = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let c = customer(&app, &cm, 101).await;
    // Bad input is named and changes nothing.
    let (s, p) = post(
        &app,
        &maker,
        "/api/v1/risk/limits/adjustments",
        json!({"customer_id": c, "amount": "-5", "valid_until": "2026-11-29", "reason": ""}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"].as_array().unwrap().len(), 3, "{p}");
    let (s, _) = post(&app, &maker, "/api/v1/risk/limits/adjustments", json!({"customer_id": c, "scope": "group", "amount": "5", "valid_until": "2027-11-29", "reason": "x"})).await;
    assert_eq!(s, 422, "a group line is set on an enterprise");
    // A request; a second one for the same line waits its turn.
    let (s, a) = post(&app, &maker, "/api/v1/risk/limits/adjustments", json!({"customer_id": c, "amount": "50000.00", "valid_until": "2027-11-29", "reason": "初次授信"})).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["status"], "pending");
    assert_eq!(
        post(
            &app,
            &reviewer,
            "/api/v1/risk/limits/adjustments",
            json!({"customer_id": c, "amount": "1.00", "valid_until": "2027-11-29", "reason": "x"})
        )
        .await
        .0,
        409
    );
    let (_, pending) = get(&app, &checker, "/api/v1/risk/limits/adjustments").await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let decide = format!("/api/v1/risk/limits/adjustments/{}/decision", a["id"]);
    // The requester cannot approve it; a reviewer has no approval power.
    let (s, p) = post(&app, &maker, &decide, json!({"decision": "approve"})).await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("cannot approve"),
        "{p}"
    );
    assert_eq!(
        post(&app, &reviewer, &decide, json!({"decision": "approve"}))
            .await
            .0,
        403
    );
    assert_eq!(
        post(&app, &checker, &decide, json!({"decision": "reject"}))
            .await
            .0,
        422,
        "a rejection needs a note"
    );
    let (s, d) = post(
        &app,
        &checker,
        &decide,
        json!({"decision": "approve", "note": "同意"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "approved");
    let line = d["limit_id"].as_i64().unwrap();
    assert_eq!(
        post(&app, &checker, &decide, json!({"decision": "approve"}))
            .await
            .0,
        409,
        "decided once"
    );
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(
        (l["line"]["amount"].as_str(), l["line"]["status"].as_str()),
        (Some("50000.00"), Some("active")),
        "{l}"
    );
    assert_eq!(l["history"][0]["action"], "open");
    assert_eq!(audit_count(&app, "credit_limit.request").await, 1);
    assert_eq!(audit_count(&app, "credit_limit.approve").await, 1);
    // Raising it: a new request, rejected with a reason; nothing changes.
    let (_, a2) = post(&app, &maker, "/api/v1/risk/limits/adjustments", json!({"customer_id": c, "amount": "80000.00", "valid_until": "2027-11-29", "reason": "提额"})).await;
    let (s, _) = post(
        &app,
        &checker,
        &format!("/api/v1/risk/limits/adjustments/{}/decision", a2["id"]),
        json!({"decision": "reject", "note": "收入证明不足"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}"))
            .await
            .1["line"]["amount"],
        "50000.00"
    );
    // Freeze at once (one person); lifting it is another maker-checker request.
    let (s, f) = post(
        &app,
        &reviewer,
        &format!("/api/v1/risk/limits/{line}/freeze"),
        json!({"reason": "涉诉"}),
    )
    .await;
    assert_eq!((s, f["status"].as_str()), (200, Some("frozen")), "{f}");
    assert_eq!(
        post(
            &app,
            &reviewer,
            &format!("/api/v1/risk/limits/{line}/freeze"),
            json!({"reason": "x"})
        )
        .await
        .0,
        409
    );
    let (s, u) = post(
        &app,
        &reviewer,
        &format!("/api/v1/risk/limits/{line}/unfreeze"),
        json!({"reason": "已结案"}),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(
        get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}"))
            .await
            .1["line"]["status"],
        "frozen"
    );
    let (s, _) = post(
        &app,
        &checker,
        &format!("/api/v1/risk/limits/adjustments/{}/decision", u["id"]),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(l["line"]["status"], "active");
    let actions: Vec<&str> = l["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["open", "freeze", "unfreeze"]);
    assert_eq!(audit_count(&app, "credit_limit.freeze").await, 1);
    // The pages: the checker sees approve buttons, the maker the four-eyes note.
    let (_, a3) = post(&app, &maker, "/api/v1/risk/limits/adjustments", json!({"customer_id": c, "amount": "60000.00", "valid_until": "2027-11-29", "reason": "提额"})).await;
    assert_eq!(a3["status"], "pending");
    app.sign_in("risk_manager").await;
    let html = app.get("/risk/limits").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="approve""#),
        "another person may approve"
    );
    app.stop().await;
}

async fn draws_are_checked_against_the_line(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let c = customer(&app, &cm, 201).await;
    let nobody = customer(&app, &cm, 202).await;
    assert!(draw(&app, nobody, 100, "N-1")
        .await
        .unwrap_err()
        .starts_with("limit.no_line"));
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
    draw(&app, c, 3_000_000, "L-1").await.unwrap();
    // Beyond the available 20,000.00: refused with the figures.
    let e = draw(&app, c, 2_500_000, "L-2").await.unwrap_err();
    assert!(
        e.starts_with("limit.exceeded") && e.contains("available 20000.00"),
        "{e}"
    );
    assert!(draw(&app, c, 0, "L-0")
        .await
        .unwrap_err()
        .starts_with("limit.not_positive"));
    // The same reference again is the same reservation (idempotent); another amount, a conflict.
    draw(&app, c, 3_000_000, "L-1").await.unwrap();
    assert!(draw(&app, c, 10, "L-1").await.is_err());
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(
        (l["line"]["used"].as_str(), l["line"]["available"].as_str()),
        (Some("30000.00"), Some("20000.00"))
    );
    assert_eq!(l["line"]["utilisation_pct"], "60.0");
    // Repayment releases part of it; then the draw fits.
    let mut tx = app.state.store().begin().await.unwrap();
    let r = release(
        &mut tx,
        "L-1",
        Some(Fen::new(1_000_000)),
        "loans",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (r.released, r.status.as_str()),
        (Fen::new(1_000_000), "reserved")
    );
    draw(&app, c, 2_500_000, "L-2").await.unwrap();
    // Releasing more than is reserved is refused; all of it closes the reservation.
    let mut tx = app.state.store().begin().await.unwrap();
    assert!(release(
        &mut tx,
        "L-1",
        Some(Fen::new(2_000_001)),
        "loans",
        app.state.now_ms()
    )
    .await
    .is_err());
    let r = release(&mut tx, "L-1", None, "loans", app.state.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(r.status, "released");
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(l["line"]["used"], "25000.00");
    assert_eq!(l["reservations"].as_array().unwrap().len(), 2);
    // Frozen: refused.
    post(
        &app,
        &reviewer,
        &format!("/api/v1/risk/limits/{line}/freeze"),
        json!({"reason": "失联"}),
    )
    .await;
    assert!(draw(&app, c, 100, "L-3")
        .await
        .unwrap_err()
        .starts_with("limit.frozen"));
    // Every reservation and release is audited.
    assert_eq!(audit_count(&app, "credit_limit.reserve").await, 2);
    assert_eq!(audit_count(&app, "credit_limit.release").await, 2);
    app.stop().await;
}

async fn group_lines_cap_the_group(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let e = enterprise(&app, &cm, 301).await;
    let p = customer(&app, &cm, 302).await;
    let outsider = customer(&app, &cm, 303).await;
    let (s, _) = post(
        &app,
        &cm,
        &format!("/api/v1/customers/{e}/relations"),
        json!({"person_id": p, "role": "actual_controller"}),
    )
    .await;
    assert_eq!(s, 201);
    let group = open_line(&app, &reviewer, &rm, e, "group", "100000.00", "2027-11-29").await;
    open_line(
        &app,
        &reviewer,
        &rm,
        e,
        "customer",
        "80000.00",
        "2027-11-29",
    )
    .await;
    open_line(
        &app,
        &reviewer,
        &rm,
        p,
        "customer",
        "50000.00",
        "2027-11-29",
    )
    .await;
    open_line(
        &app,
        &reviewer,
        &rm,
        outsider,
        "customer",
        "50000.00",
        "2027-11-29",
    )
    .await;
    draw(&app, e, 6_000_000, "E-1").await.unwrap();
    // The controller's own line has room, but the group's does not.
    let err = draw(&app, p, 5_000_000, "P-1").await.unwrap_err();
    assert!(
        err.starts_with("limit.exceeded")
            && err.contains("group line")
            && err.contains("available 40000.00"),
        "{err}"
    );
    draw(&app, p, 4_000_000, "P-1").await.unwrap();
    // Someone outside the group is not held by it.
    draw(&app, outsider, 5_000_000, "O-1").await.unwrap();
    let (_, g) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{group}")).await;
    assert_eq!(
        (g["line"]["used"].as_str(), g["line"]["available"].as_str()),
        (Some("100000.00"), Some("0.00")),
        "{g}"
    );
    // A frozen group line stops every member.
    post(
        &app,
        &reviewer,
        &format!("/api/v1/risk/limits/{group}/freeze"),
        json!({"reason": "集团涉诉"}),
    )
    .await;
    let mut tx = app.state.store().begin().await.unwrap();
    release(&mut tx, "E-1", None, "loans", app.state.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let err = draw(&app, e, 100, "E-2").await.unwrap_err();
    assert!(
        err.starts_with("limit.frozen") && err.contains("group"),
        "{err}"
    );
    // Lists filter by scope.
    let (_, lines) = get(&app, &reviewer, "/api/v1/risk/limits?scope=group").await;
    assert_eq!(lines.as_array().unwrap().len(), 1);
    assert_eq!(
        get(&app, &reviewer, "/api/v1/risk/limits?scope=planet")
            .await
            .0,
        422
    );
    app.stop().await;
}

async fn lines_expire_and_are_renewed(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let c = customer(&app, &cm, 401).await;
    // Valid until 2026-12-01 (the test clock is 2026-11-29).
    let line = open_line(
        &app,
        &reviewer,
        &rm,
        c,
        "customer",
        "10000.00",
        "2026-12-01",
    )
    .await;
    draw(&app, c, 100, "X-1").await.unwrap();
    // On 2026-12-02 the line has lapsed: refused even before the job runs.
    app.clock.advance_millis(3 * 24 * 3_600_000);
    // (Sessions idle out meanwhile: sign in again.)
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let e = draw(&app, c, 100, "X-2").await.unwrap_err();
    assert!(
        e.starts_with("limit.expired") && e.contains("2026-12-01"),
        "{e}"
    );
    assert_eq!(
        get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}"))
            .await
            .1["line"]["status"],
        "active"
    );
    // The daily job marks it expired, once.
    let n = zhudai_server::limits::expire_lapsed(
        app.state.store(),
        app.state.clock().today(),
        app.state.now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let n = zhudai_server::limits::expire_lapsed(
        app.state.store(),
        app.state.clock().today(),
        app.state.now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}"))
            .await
            .1["line"]["status"],
        "expired"
    );
    assert_eq!(audit_count(&app, "credit_limit.expire").await, 1);
    // Renewed through maker-checker: active again, with its use kept.
    let renewed = open_line(
        &app,
        &reviewer,
        &rm,
        c,
        "customer",
        "20000.00",
        "2027-12-31",
    )
    .await;
    assert_eq!(renewed, line);
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(
        (
            l["line"]["status"].as_str(),
            l["line"]["used"].as_str(),
            l["line"]["amount"].as_str()
        ),
        (Some("active"), Some("1.00"), Some("20000.00"))
    );
    draw(&app, c, 100, "X-2").await.unwrap();
    // The job is registered and scheduled once per day.
    zhudai_server::limits::schedule(app.state.store(), app.state.now_ms())
        .await
        .unwrap();
    zhudai_server::limits::schedule(app.state.store(), app.state.now_ms())
        .await
        .unwrap();
    let jobs: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'risk.limits.expire'",
    )
    .fetch_one(app.state.store().reader())
    .await
    .unwrap();
    assert_eq!(jobs, 1);
    assert!(zhudai_server::jobs::JobRegistry::standard()
        .kinds()
        .any(|k| k == "risk.limits.expire"));
    app.stop().await;
}

async fn racing_draws_never_exceed_the_line(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let rm = app.token_in_unit("risk_manager", None).await;
    let reviewer = app.token_in_unit("risk_reviewer", None).await;
    let c = customer(&app, &cm, 501).await;
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
    let mut tasks = Vec::new();
    for i in 0..6 {
        let state = app.state.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = state.store().begin().await.unwrap();
            let r = reserve(
                &mut tx,
                c,
                Fen::new(1_000_000),
                &format!("R-{i}"),
                "loans",
                state.clock().today(),
                state.now_ms(),
            )
            .await;
            match r {
                Ok(_) => tx.commit().await.map(|_| true).unwrap_or(false),
                Err(_) => {
                    let _ = tx.rollback().await;
                    false
                }
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    // 50,000 fits five draws of 10,000 and not six.
    assert_eq!(ok, 5);
    let (_, l) = get(&app, &reviewer, &format!("/api/v1/risk/limits/{line}")).await;
    assert_eq!(l["line"]["used"], "50000.00");
    app.stop().await;
}
