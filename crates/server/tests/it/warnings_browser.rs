//! A risk manager writes a warning rule in the browser: a misspelt field is named and the
//! rule cannot be enabled; fixed, tested against sample rows and enabled, it fires on
//! events reported through the API, and the warning shows on the risk dashboard.

use crate::browser::{demo_app, demo_sign_in, screenshot, Driver};
use crate::warnings::events;
use fantoccini::{Client, Locator};
use serde_json::json;
use zhudai_store::testing::TestDb;

async fn text(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let e = browser.wait().for_element(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Waits until the page's path is `path` (the new page has loaded).
async fn wait_path(browser: &Client, path: &str) {
    for _ in 0..100 {
        if browser.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never reached {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_manager_writes_a_rule_that_fires_and_shows_on_the_dashboard() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    let customer: i64 =
        zhudai_store::sqlx::query_scalar("SELECT MIN(id) FROM customers WHERE kind = 'individual'")
            .fetch_one(app.state.store().reader())
            .await
            .unwrap();
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_risk_manager").await;

    // The risk module opens on its dashboard.
    browser.goto(&app.url("/m/risk")).await.unwrap();
    wait_path(&browser, "/risk/dashboard").await;
    assert_eq!(text(&browser, "[data-testid=kpi-open]").await, "0");

    // A rule with a misspelt field: saved as a draft, the error names the field.
    browser.goto(&app.url("/risk/rules/new")).await.unwrap();
    fill(&browser, "#code", "failed_twice").await;
    fill(&browser, "#name", "30天内两次扣款失败").await;
    fill(&browser, "#condition", "customer.agee > 60").await;
    click(&browser, "[data-testid=save-rule]").await;
    wait_path(&browser, "/risk/rules/failed_twice").await;
    let err = text(&browser, "[data-testid=compile-error]").await;
    assert!(
        err.contains("customer.agee") && err.contains("customer.age"),
        "{err}"
    );
    // Enabling is refused and says why.
    click(&browser, "[data-testid=enable-rule]").await;
    let refusal = text(&browser, "[data-testid=form-errors]").await;
    assert!(
        refusal.contains("E101") && refusal.contains("customer.agee"),
        "{refusal}"
    );
    assert_eq!(text(&browser, "[data-testid=rule-state]").await, "无法编译");
    screenshot(&browser, "risk-rule-unknown-field").await;

    // Fixed: two failed repayments within 30 days.
    fill(&browser, "#condition", "count(repayment_failed, 30d) >= 2").await;
    fill(&browser, "#on_events", "repayment_failed").await;
    click(&browser, "[data-testid=save-rule]").await;
    let saved = text(&browser, "[data-testid=notice-ok]").await;
    assert!(saved.contains("已保存"), "{saved}");
    assert!(browser
        .find_all(Locator::Css("[data-testid=compile-error]"))
        .await
        .unwrap()
        .is_empty());
    // Tested on the sample rows before enabling: the second and third failures fire.
    click(&browser, "[data-testid=run-test]").await;
    let summary = text(&browser, "[data-testid=test-summary]").await;
    assert!(summary.contains("2 / 3"), "{summary}");
    screenshot(&browser, "risk-rule-test").await;
    click(&browser, "[data-testid=enable-rule]").await;
    let enabled = text(&browser, "[data-testid=notice-ok]").await;
    assert!(enabled.contains("已启用"), "{enabled}");
    assert_eq!(text(&browser, "[data-testid=rule-state]").await, "已启用");

    // Repayments fail twice (reported through the API by the servicing system).
    let token = app.token_in_unit("risk_manager", None).await;
    let failure =
        json!([{"type": "repayment_failed", "customer_id": customer, "amount": "800.00"}]);
    let (s, r) = events(&app, &token, failure.clone()).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = events(&app, &token, failure).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["hits"][0]["opened"], true, "{r}");

    // The warning is on the dashboard, counted by type and severity.
    browser.goto(&app.url("/risk/dashboard")).await.unwrap();
    assert_eq!(text(&browser, "[data-testid=kpi-open]").await, "1");
    let recent = text(&browser, "[data-testid=recent-warnings]").await;
    assert!(recent.contains("30天内两次扣款失败"), "{recent}");
    let chart = browser
        .find(Locator::Css("[data-testid=chart-by-type] svg"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(
        chart.contains("还款") && chart.contains("data-segment=\"1\""),
        "{chart}"
    );
    screenshot(&browser, "risk-dashboard").await;
    // Its page shows the playbook's due time.
    click(&browser, "[data-testid=recent-warnings] tbody a").await;
    let facts = text(&browser, "[data-testid=warning-facts]").await;
    assert!(facts.contains("30天内两次扣款失败"), "{facts}");
    assert!(text(&browser, "[data-testid=warning-playbook]")
        .await
        .contains("三日内"));
    browser.close().await.unwrap();
}
