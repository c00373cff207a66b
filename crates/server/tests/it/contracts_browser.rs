//! The origination journey in a real browser (issue #6): a customer manager files and
//! submits an application, a verifier verifies the documents and passes the review, two
//! approvers approve (80,000 yuan: two levels), the simulated funder approves, operations
//! generates the contract and records the three signatures, completes the step, the
//! simulated funder disburses (the job worker runs), and the loan exists with its
//! schedule (read through the loans API: the loan pages come with issue #8).

use crate::browser::{demo_app, demo_sign_in, screenshot, Driver};
use crate::documents::{upload, PNG};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use std::time::Duration;
use zhudai_store::testing::TestDb;

async fn token(app: &crate::support::TestApp, username: &str) -> String {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": zhudai_server::ui::account::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn click(b: &Client, testid: &str) {
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .unwrap_or_else(|e| panic!("{testid}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text_of(b: &Client, testid: &str) -> String {
    match b
        .find(Locator::Css(&format!("[data-testid={testid}]")))
        .await
    {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Reloads the application page until its step is `node` (the page after a form post
/// is a new page: wait for it instead of racing the navigation).
async fn wait_for_node(b: &Client, app: &crate::support::TestApp, id: i64, node: &str) {
    let mut seen = String::new();
    for i in 0..100 {
        if i > 0 && i % 10 == 0 {
            b.goto(&app.url(&format!("/applications/{id}")))
                .await
                .unwrap();
        }
        seen = text_of(b, "application-node").await;
        if seen == node {
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    screenshot(b, &format!("journey-stuck-{node}")).await;
    panic!("application {id} did not reach {node}; it shows {seen:?}");
}

async fn switch_user(b: &Client, app: &crate::support::TestApp, username: &str) {
    b.delete_all_cookies().await.unwrap();
    demo_sign_in(b, app, username).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_goes_from_submission_to_a_loan_in_the_browser() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    zhudai_server::contracts::ensure_default_template(app.state.store(), 1)
        .await
        .unwrap();
    // The demo funder bank_a approves at once (its approval rate is a demo setting).
    let fm = token(&app, "demo_funding_manager").await;
    let r = reqwest::Client::new()
        .patch(app.url("/api/v1/partners/bank_a"))
        .bearer_auth(&fm)
        .json(&json!({"sim_approval_bp": 10000, "sim_latency_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The customer and the materials the manager collected (uploads have their own test).
    let cm = token(&app, "demo_customer_manager").await;
    let id_number = zhudai_domain::ident::ResidentId::from_body("31011519880303004").unwrap();
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&cm)
        .json(&json!({"name": "赵六", "id_number": id_number.as_str(), "phone": "13812345679"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let customer = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for (kind, extra) in [
        (
            "id_front",
            vec![
                ("declared_name", "赵六"),
                ("declared_id_number", id_number.as_str()),
            ],
        ),
        ("id_back", vec![("expiry_date", "2036-01-01")]),
        ("income_proof", vec![]),
        ("credit_report", vec![]),
    ] {
        let mut fields = vec![("doc_type", kind)];
        fields.extend(extra);
        let r = upload(&app, &cm, customer, "scan.png", PNG.to_vec(), &fields).await;
        assert_eq!(r.status(), 201);
    }
    // The job worker: the simulated funder's disbursement runs there.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(zhudai_server::jobs::run_worker(
        app.state.clone(),
        zhudai_server::jobs::JobRegistry::standard(),
        zhudai_server::jobs::WorkerSettings {
            idle_poll: Duration::from_millis(100),
            ..Default::default()
        },
        stop_rx,
    ));

    let driver = Driver::start().await;
    let b = driver.browser(&db.dir.path().join("chrome-profile")).await;

    // 1. The customer manager files the application and submits it.
    demo_sign_in(&b, &app, "demo_customer_manager").await;
    b.goto(&app.url("/applications/new")).await.unwrap();
    b.wait()
        .for_element(Locator::Id("ap-customer"))
        .await
        .unwrap()
        .send_keys(&customer.to_string())
        .await
        .unwrap();
    b.find(Locator::Css("#ap-product option[value=consumer_std]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find(Locator::Id("ap-amount"))
        .await
        .unwrap()
        .send_keys("80000")
        .await
        .unwrap();
    b.find(Locator::Id("ap-months"))
        .await
        .unwrap()
        .send_keys("12")
        .await
        .unwrap();
    click(&b, "create-application").await;
    b.wait()
        .for_element(Locator::Css("[data-testid=act-submit]"))
        .await
        .unwrap();
    let url = b.current_url().await.unwrap();
    let id: i64 = url.path().rsplit('/').next().unwrap().parse().unwrap();
    click(&b, "act-submit").await;
    wait_for_node(&b, &app, id, "doc_review").await;

    // 2. The verifier verifies the four materials, then passes the review.
    switch_user(&b, &app, "demo_doc_verifier").await;
    for _ in 0..4 {
        b.goto(&app.url("/documents/verify")).await.unwrap();
        click(&b, "verify-submit").await;
        b.wait()
            .for_element(Locator::Css("[data-testid=flash-ok]"))
            .await
            .unwrap();
    }
    b.goto(&app.url("/documents/verify")).await.unwrap();
    b.wait()
        .for_element(Locator::Css("[data-testid=queue-empty]"))
        .await
        .unwrap();
    b.goto(&app.url(&format!("/applications/{id}")))
        .await
        .unwrap();
    click(&b, "act-approve").await;
    wait_for_node(&b, &app, id, "approval").await;

    // 3. Two approvers: level 1, then level 2; the simulated funder approves at once.
    switch_user(&b, &app, "demo_approver_l1").await;
    b.goto(&app.url(&format!("/applications/{id}")))
        .await
        .unwrap();
    click(&b, "act-approve").await;
    // Still at approval, now waiting for level 2.
    for _ in 0..50 {
        if b.find(Locator::Css("[data-testid=act-approve]"))
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    switch_user(&b, &app, "demo_approver_l2").await;
    b.goto(&app.url(&format!("/applications/{id}")))
        .await
        .unwrap();
    click(&b, "act-approve").await;
    wait_for_node(&b, &app, id, "contract").await;

    // 4. Operations generates the contract and records the three signatures.
    switch_user(&b, &app, "demo_operations").await;
    b.goto(&app.url(&format!("/applications/{id}")))
        .await
        .unwrap();
    click(&b, "generate-contract").await;
    b.wait()
        .for_element(Locator::Css("[data-testid=contract-status]"))
        .await
        .unwrap();
    assert_eq!(text_of(&b, "contract-status").await, "待签署");
    screenshot(&b, "contract-generated").await;
    for _ in 0..3 {
        click(&b, "sign-contract").await;
        // Wait for the new page: one more signature row each time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.wait()
            .for_element(Locator::Css("[data-testid=contract-section]"))
            .await
            .unwrap();
    }
    for _ in 0..50 {
        if text_of(&b, "contract-status").await == "已签署" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text_of(&b, "contract-status").await, "已签署");
    let rows = b
        .find_all(Locator::Css("[data-testid=signature-table] tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    // The PDF the page links to is the stored one, in Chinese.
    let href = b
        .find(Locator::Css("[data-testid=contract-pdf]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let ops = token(&app, "demo_operations").await;
    let pdf = reqwest::Client::new()
        .get(app.url(&href.replace("/contracts/", "/api/v1/contracts/")))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    screenshot(&b, "contract-signed").await;
    click(&b, "act-complete").await;

    // 5. The simulated funder disburses; the application ends at the loan.
    wait_for_node(&b, &app, id, "loan").await;
    assert_eq!(text_of(&b, "application-status").await, "已放款");
    let loan_href = b
        .wait()
        .for_element(Locator::Css("[data-testid=loan-link]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    screenshot(&b, "application-disbursed").await;
    assert!(loan_href.starts_with("/loans/"), "{loan_href}");
    // The loan and its schedule (the loan pages belong to the loan ledger, issue #8).
    let loan_id: i64 = loan_href.rsplit('/').next().unwrap().parse().unwrap();
    let l: Value = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/loans/{loan_id}")))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(l["principal"], "80000.00", "{l}");
    assert_eq!(l["schedule"].as_array().unwrap().len(), 12);
    let _ = stop_tx.send(true);
    let _ = worker.await;
    b.close().await.unwrap();
    app.stop().await;
}
