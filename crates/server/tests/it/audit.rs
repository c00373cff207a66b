//! The auditor's view of the audit trail: search, export, verification, checkpoints and
//! the `/audit` page, on SQLite and PostgreSQL.

use crate::support::{TestApp, PASSWORD};
use serde_json::{json, Value};
use zhudai_crypto::audit_chain::{sign_checkpoint, CheckpointSigningKey};
use zhudai_server::audit_checkpoint;
use zhudai_store::audit::{AuditDraft, AuditFilter};
use zhudai_store::jobs::Job;
use zhudai_store::testing::TestDb;
use zhudai_store::{sqlx, Backend, Store};

zhudai_store::on_both!(
    audit_search_filters_and_pages,
    audit_export_csv,
    audit_is_refused_to_other_roles,
    audit_verify_intact_then_tampered,
    audit_checkpoint_job_and_forged_keys,
    audit_page_for_auditors
);

/// 2026-11-28 12:00 Beijing.
const DAY1: i64 = 1_795_838_400_000;
/// 2026-11-29 09:00 Beijing.
const DAY2: i64 = 1_795_914_000_000;

/// 12 `loan.` records: 6 on each day; actors 张三/李四 alternate; every third is denied.
async fn loan_records(s: &Store) {
    for i in 0..12_i64 {
        let at = if i < 6 { DAY1 + i } else { DAY2 + i };
        let d = AuditDraft::new(
            at,
            format!("loan.approve.{i}"),
            if i % 3 == 0 { "denied" } else { "success" },
        )
        .actor(if i % 2 == 0 { "张三" } else { "李四" })
        .role("approver")
        .source_ip("10.1.2.3")
        .target(format!("loan:{i}"))
        .reason(format!("理由 {i}"));
        s.audit_append(&d).await.unwrap();
    }
}

async fn auditor_token(app: &TestApp) -> (String, String) {
    let user = app.user_with_role("auditor").await;
    let (token, _) = app.login(&user).await;
    (user, token)
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn count(s: &Store, action: &str) -> i64 {
    s.audit_count(&AuditFilter {
        action_prefix: Some(action.into()),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn seqs(page: &Value) -> Vec<i64> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect()
}

async fn audit_search_filters_and_pages(db: &TestDb) {
    let app = TestApp::start(db).await;
    loan_records(&db.store).await;
    let (auditor, token) = auditor_token(&app).await;

    // Keyset paging, newest first, through all 12.
    let mut all = Vec::new();
    let mut path = "/api/v1/audit?action=loan.&limit=5".to_owned();
    loop {
        let (status, page) = get_json(&app, &token, &path).await;
        assert_eq!(status, 200, "{page}");
        all.extend(seqs(&page));
        match page["next_before_seq"].as_i64() {
            Some(next) => path = format!("/api/v1/audit?action=loan.&limit=5&before_seq={next}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 12);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "{all:?}");

    let (_, page) = get_json(
        &app,
        &token,
        "/api/v1/audit?action=loan.&actor=%E5%BC%A0%E4%B8%89",
    )
    .await;
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.len(), 6);
    assert!(recs.iter().all(|r| r["actor"] == "张三"));
    assert_eq!(recs[0]["role"], "approver");
    assert_eq!(recs[0]["source_ip"], "10.1.2.3");
    assert!(recs[0]["at"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(recs[0]["hash"].as_str().unwrap().len(), 64);

    let (_, page) = get_json(&app, &token, "/api/v1/audit?action=loan.&outcome=denied").await;
    assert_eq!(seqs(&page).len(), 4);
    let (_, page) = get_json(&app, &token, "/api/v1/audit?target=loan:7").await;
    assert_eq!(page["records"][0]["action"], "loan.approve.7");
    // Dates are Beijing days; `to` includes its whole day.
    let (_, page) = get_json(
        &app,
        &token,
        "/api/v1/audit?action=loan.&from=2026-11-28&to=2026-11-28",
    )
    .await;
    assert_eq!(seqs(&page).len(), 6);
    let (_, page) = get_json(
        &app,
        &token,
        &format!("/api/v1/audit?action=loan.&from={DAY2}"),
    )
    .await;
    assert_eq!(seqs(&page).len(), 6);
    let (_, page) = get_json(
        &app,
        &token,
        &format!("/api/v1/audit?action=loan.&from={DAY1}&to={}", DAY1 + 3),
    )
    .await;
    assert_eq!(seqs(&page).len(), 3);

    // Invalid parameters: 422 naming each field.
    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("from=yesterday", "from"),
        ("before_seq=abc", "before_seq"),
        ("from=2026-11-29&to=2026-11-28", "to"),
    ] {
        let r = reqwest::Client::new()
            .get(app.url(&format!("/api/v1/audit?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }

    // Reading the trail is itself audited, with what was asked for.
    let reads = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("audit.search".into()),
                actor: Some(auditor.clone()),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert!(reads.records.len() >= 8, "{}", reads.records.len());
    assert!(reads
        .records
        .iter()
        .any(|r| r.target.as_deref() == Some("audit?target=loan:7")));
    assert!(reads
        .records
        .iter()
        .any(|r| r.target.as_deref() == Some("audit?actor=张三&action=loan.")));
    assert!(reads.records.iter().any(|r| r.outcome == "rejected"));
    assert!(reads
        .records
        .iter()
        .all(|r| r.role.as_deref() == Some("auditor")));
    app.stop().await;
}

async fn audit_export_csv(db: &TestDb) {
    let app = TestApp::start(db).await;
    loan_records(&db.store).await;
    let (_, token) = auditor_token(&app).await;
    let c = reqwest::Client::new();
    let r = c
        .get(app.url("/api/v1/audit/export?action=loan."))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert_eq!(r.headers()["x-zhudai-export-truncated"], "false");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(
        &bytes[..3],
        b"\xEF\xBB\xBF",
        "UTF-8 byte-order mark for Excel"
    );
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
    assert!(lines[0].starts_with("seq,time_beijing,at_ms,actor,role,source_ip"));
    assert_eq!(lines.len(), 13);
    assert!(
        lines[1].starts_with("12,2026-11-29 09:00:00,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(",李四,approver,10.1.2.3,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",理由 11,"), "{}", lines[1]);

    // A capped export says so in its first row and names where to continue.
    let r = c
        .get(app.url("/api/v1/audit/export?action=loan.&limit=5"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-zhudai-export-truncated"], "true");
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text
        .trim_start_matches('\u{feff}')
        .trim_end()
        .split("\r\n")
        .collect();
    assert!(
        lines[0].contains("truncated") && lines[0].contains("before_seq=8"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 7);
    // Exactly the cap, nothing older: not truncated.
    let r = c
        .get(app.url("/api/v1/audit/export?action=loan.&limit=12"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-zhudai-export-truncated"], "false");
    let r = c
        .get(app.url("/api/v1/audit/export?limit=100001"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(count(&db.store, "audit.export").await, 4);
    app.stop().await;
}

async fn audit_is_refused_to_other_roles(db: &TestDb) {
    let app = TestApp::start(db).await;
    for role in ["customer_manager", "sysadmin", "security_officer"] {
        let user = app.user_with_role(role).await;
        let (token, _) = app.login(&user).await;
        let c = reqwest::Client::new();
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/export",
            "/api/v1/audit/checkpoints",
            "/audit",
        ] {
            let r = c
                .get(app.url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{role} GET {path}");
        }
        let r = c
            .post(app.url("/api/v1/audit/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{role} verify");
    }
    // The refusals are themselves in the trail.
    let denied = db
        .store
        .audit_count(&AuditFilter {
            action_prefix: Some("GET /api/v1/audit".into()),
            outcome: Some("denied".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(denied, 9);
    app.stop().await;
}

/// Plays the insider with database access: switches the append-only triggers off.
async fn disable_triggers(s: &Store) {
    let sql = match s.backend() {
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
    };
    sqlx::raw_sql(sql).execute(s.writer()).await.unwrap();
}

async fn post_verify(app: &TestApp, token: &str) -> Value {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/audit/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn audit_verify_intact_then_tampered(db: &TestDb) {
    let app = TestApp::start(db).await;
    loan_records(&db.store).await;
    let (_, token) = auditor_token(&app).await;
    let v = post_verify(&app, &token).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["first_break"], Value::Null);
    assert!(v["records_checked"].as_i64().unwrap() >= 12);
    assert_eq!(v["head_seq"], v["records_checked"]);

    // A signed checkpoint is listed and checked.
    let cp = audit_checkpoint::sign_checkpoint_now(&app.state)
        .await
        .unwrap()
        .unwrap();
    let (status, list) = get_json(&app, &token, "/api/v1/audit/checkpoints").await;
    assert_eq!(status, 200);
    assert_eq!(list["checkpoints"][0]["seq"], cp.seq);
    assert_eq!(list["checkpoints"][0]["signature_valid"], true);
    assert_eq!(list["keys"][0]["trusted"], true);
    assert_eq!(list["keys"][0]["active"], true);
    let v = post_verify(&app, &token).await;
    assert_eq!(
        (v["ok"].clone(), v["checkpoints_checked"].clone()),
        (json!(true), json!(1)),
        "{v}"
    );

    disable_triggers(&db.store).await;
    sqlx::query("UPDATE audit_log SET reason = '已批准' WHERE seq = 5")
        .execute(db.store.writer())
        .await
        .unwrap();
    let v = post_verify(&app, &token).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_break"]["seq"], 5, "{v}");
    assert_eq!(v["first_break"]["kind"], "altered", "{v}");
    assert_eq!(v["records_checked"], 4);
    // The verification is audited with its verdict.
    let runs = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("audit.verify".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(runs.records.len(), 3);
    assert_eq!(runs.records[0].outcome, "failed");
    assert!(runs.records[0].reason.as_deref().unwrap().contains("seq 5"));
    // Nothing signs a chain tampered with since the last checkpoint.
    let after_cp = cp.seq + 1;
    sqlx::query("UPDATE audit_log SET reason = 'nothing happened' WHERE seq = $1")
        .bind(after_cp)
        .execute(db.store.writer())
        .await
        .unwrap();
    let err = audit_checkpoint::sign_checkpoint_now(&app.state)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("seq {after_cp}: altered")),
        "{err}"
    );
    assert_eq!(db.store.audit_checkpoints().await.unwrap().len(), 1);
    app.stop().await;
}

async fn audit_checkpoint_job_and_forged_keys(db: &TestDb) {
    let app = TestApp::start(db).await;
    let s = &db.store;
    loan_records(s).await;
    let now = app.state.now_ms();
    assert!(audit_checkpoint::schedule(s, now).await.unwrap().is_some());
    assert!(
        audit_checkpoint::schedule(s, now).await.unwrap().is_none(),
        "once per hour"
    );
    assert!(zhudai_server::jobs::JobRegistry::standard()
        .kinds()
        .any(|k| k == audit_checkpoint::JOB_KIND));
    let job = Job {
        id: 0,
        queue: "default".into(),
        kind: audit_checkpoint::JOB_KIND.into(),
        payload: json!({}),
        attempts: 1,
        max_attempts: 5,
        run_at_ms: now,
    };
    audit_checkpoint::run_job(app.state.clone(), job.clone())
        .await
        .unwrap();
    audit_checkpoint::run_job(app.state.clone(), job)
        .await
        .unwrap();
    let cps = s.audit_checkpoints().await.unwrap();
    assert_eq!(cps.len(), 1, "the same head is signed once");
    assert_eq!(cps[0].seq, s.audit_head().await.unwrap().seq);
    // The next hour's run is queued.
    let next = s.next_run_at("default").await.unwrap();
    assert!(next.is_some());

    // A key row planted by someone without the master key is not trusted, nor are
    // checkpoints it signs.
    let rogue = CheckpointSigningKey::generate().unwrap();
    sqlx::query("INSERT INTO audit_signing_keys (public_key, secret_enc, active, created_at_ms) VALUES ($1, $2, NULL, 1)")
        .bind(rogue.public_key_hex())
        .bind(vec![1_u8; 60])
        .execute(s.writer())
        .await
        .unwrap();
    let head = s.audit_head().await.unwrap();
    s.audit_append(&AuditDraft::new(now, "loan.extra", "success"))
        .await
        .unwrap();
    let forged = sign_checkpoint(
        &rogue,
        head.seq + 1,
        &s.audit_head().await.unwrap().hash,
        now,
    );
    s.audit_checkpoint_store(&forged).await.unwrap();
    let report = audit_checkpoint::verify(s, app.state.vault())
        .await
        .unwrap();
    assert!(!report.ok);
    let brk = report.first_break.unwrap();
    assert_eq!(
        (brk.seq, brk.kind.as_str()),
        (head.seq + 1, "forged_checkpoint")
    );
    let keys = audit_checkpoint::key_statuses(s, app.state.vault())
        .await
        .unwrap();
    assert_eq!(keys.iter().filter(|k| k.trusted).count(), 1);
    app.stop().await;
}

async fn audit_page_for_auditors(db: &TestDb) {
    let app = TestApp::start(db).await;
    loan_records(&db.store).await;
    let user = app.user_with_role("auditor").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app.get("/audit?action=loan.&limit=5").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("审计日志"), "zh-CN by default");
    assert_eq!(html.matches("<tr data-seq=").count(), 5);
    assert!(html.contains("2026-11-29 09:00:00"), "Beijing time");
    assert!(html.contains("badge badge-bad"), "denied badge");
    assert!(
        html.contains("href=\"/audit?action=loan.&amp;limit=5&amp;before_seq=8\""),
        "next page link"
    );
    assert!(
        html.contains("href=\"/api/v1/audit/export?action=loan.\""),
        "export link"
    );
    assert!(html.contains("<svg"), "chart");
    assert!(html.contains(&format!("name=\"_csrf\" value=\"{csrf}\"")));
    let r = app
        .get("/audit?action=loan.&limit=5&before_seq=8&lang=en")
        .await;
    let html = r.text().await.unwrap();
    assert!(html.contains("Audit trail"));
    assert_eq!(html.matches("<tr data-seq=").count(), 5);
    assert!(html.contains("First page"));
    // Bad filter: the form says which field.
    let html = app.get("/audit?from=nonsense").await.text().await.unwrap();
    assert!(html.contains("data-testid=\"audit-errors\""), "{html}");
    assert!(html.contains("<code>from</code>"));

    // The verify button.
    let r = app
        .client
        .post(app.url("/audit/verify"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"audit-verify-result\" data-ok=\"true\""),
        "{html}"
    );
    let r = app
        .client
        .post(app.url("/audit/verify"))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "CSRF token required");
    // The navigation entry leads here.
    let r = app.get("/m/audit").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/audit");
    app.stop().await;
}

/// An auditor in a real browser: signs in, filters the trail, verifies the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_searches_and_verifies_in_a_browser() {
    use crate::browser::{screenshot, Driver};
    use fantoccini::Locator;
    let db = TestDb::sqlite().await.unwrap();
    let app = TestApp::start(&db).await;
    loan_records(&db.store).await;
    let user = app.user_with_role("auditor").await;
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    browser.goto(&app.url("/login?next=/audit")).await.unwrap();
    for (id, text) in [("username", user.as_str()), ("password", PASSWORD)] {
        browser
            .find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=audit-filter]"))
        .await
        .unwrap();
    assert_eq!(browser.title().await.unwrap(), "审计日志 · 助贷运营系统");
    browser
        .find(Locator::Id("actor"))
        .await
        .unwrap()
        .send_keys("张三")
        .await
        .unwrap();
    browser
        .find(Locator::Css(
            "[data-testid=audit-filter] button[type=submit]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The filtered page has loaded when the actor field holds the filter.
    browser
        .wait()
        .for_element(Locator::Css("input#actor[value='张三']"))
        .await
        .unwrap();
    let rows = browser
        .find_all(Locator::Css("[data-testid=audit-records] tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    let first = rows[0].text().await.unwrap();
    assert!(
        first.contains("张三") && first.contains("loan.approve.10"),
        "{first}"
    );
    screenshot(&browser, "audit-zh").await;
    browser
        .find(Locator::Css("[data-testid=audit-verify]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = browser
        .wait()
        .for_element(Locator::Css("[data-testid=audit-verify-result]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(verdict.contains("审计链完整"), "{verdict}");
    screenshot(&browser, "audit-verified").await;
    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
