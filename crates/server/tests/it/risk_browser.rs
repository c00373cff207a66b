//! Credit decisions in a real browser (issue #7): a risk reviewer opens a decision and
//! reads its reasons, replays it, then tries to save and enable a rule set with a broken
//! rule and is shown what is wrong (nothing is saved).

use crate::browser::{demo_app, demo_sign_in, screenshot, Driver};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use zhudai_store::testing::TestDb;

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

async fn text(browser: &Client, css: &str) -> String {
    match browser.wait().for_element(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => {
            let url = browser.current_url().await.unwrap();
            let source = browser.source().await.unwrap_or_default();
            panic!(
                "{css} not found on {url}: {e}\n{}",
                &source[..source.len().min(3000)]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_reviewer_reads_a_decision_and_cannot_enable_a_broken_rule() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    // A decision to look at: a minor applying, through the API.
    let token = app.token_in_unit("risk_reviewer", None).await;
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/decisions"))
        .bearer_auth(&token)
        .json(&json!({"subject": "walk-in-7", "applicant": {"app": {"amount": "8000", "months": 12}, "applicant": {"age": 17, "has_phone": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_risk_reviewer").await;

    // The module link leads to the risk dashboard, whose tab leads to the credit-decision
    // overview; the decisions list shows it.
    browser.goto(&app.url("/m/risk")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=risk-tabs] a[href='/risk']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let in_force = text(&browser, "[data-testid=risk-in-force]").await;
    assert!(in_force.contains("german-credit-default"), "{in_force}");
    browser.goto(&app.url("/risk/decisions")).await.unwrap();
    let table = text(&browser, "[data-testid=decision-table]").await;
    assert!(
        table.contains("walk-in-7") && table.contains("拒绝"),
        "{table}"
    );

    // The decision page: outcome, score and the reasons in plain Chinese.
    browser
        .goto(&app.url(&format!("/risk/decisions/{id}")))
        .await
        .unwrap();
    let reasons = text(&browser, "[data-testid=decision-reasons]").await;
    assert!(
        reasons.contains("申请人年龄不在18至60周岁之间"),
        "{reasons}"
    );
    assert!(reasons.contains("支票账户状况：未提供"), "{reasons}");
    let summary = text(&browser, "[data-testid=decision-summary]").await;
    assert!(summary.contains("拒绝"), "{summary}");
    screenshot(&browser, "risk-decision-zh").await;
    // Replay: the same outcome, score and reasons.
    click(&browser, "[data-testid=replay]").await;
    let replay = text(&browser, "[data-testid=replay-result]").await;
    assert!(replay.contains("一致"), "{replay}");
    // In English too.
    browser
        .goto(&app.url(&format!("/lang/en?back=/risk/decisions/{id}")))
        .await
        .unwrap();
    let reasons = text(&browser, "[data-testid=decision-reasons]").await;
    assert!(
        reasons.contains("The applicant's age is outside 18–60"),
        "{reasons}"
    );

    // Rules: break one and try to save and enable it.
    browser.goto(&app.url("/risk/policy-rules")).await.unwrap();
    let source = browser
        .wait()
        .for_element(Locator::Css("[data-testid=rules-source]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(source.contains("when = \"applicant.blacklisted\""));
    let broken = source.replace(
        "when = \"applicant.blacklisted\"",
        "when = \"applicant.blacklistd\"",
    );
    browser
        .execute(
            "document.querySelector('[data-testid=rules-source]').value = arguments[0];",
            vec![json!(broken)],
        )
        .await
        .unwrap();
    click(&browser, "[data-testid=rules-enable]").await;
    let problems = text(&browser, "[data-testid=rule-problems]").await;
    assert!(
        problems.contains("rules.blacklist.when")
            && problems.contains("applicant.blacklistd")
            && problems.contains("did you mean `applicant.blacklisted`"),
        "{problems}"
    );
    screenshot(&browser, "risk-rules-broken-en").await;
    // Nothing was saved: still one version, the default, enabled.
    let versions = text(&browser, "[data-testid=rule-set-table]").await;
    assert!(
        versions.contains("v1") && !versions.contains("v2"),
        "{versions}"
    );
    assert_eq!(db.store.risk_rule_sets().await.unwrap().len(), 1);

    // Testing the fixed text on the sample rows shows which rules fire.
    browser
        .execute(
            "document.querySelector('[data-testid=rules-source]').value = arguments[0];",
            vec![json!(source)],
        )
        .await
        .unwrap();
    click(&browser, "[data-testid=rules-test]").await;
    let result = text(&browser, "[data-testid=rule-test]").await;
    assert!(result.contains("age_range"), "{result}");
    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
