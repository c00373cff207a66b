//! A person admits a funder through the pages: the funding manager fills in and submits
//! the admission checklist, a compliance officer (another person) approves it; then the
//! performance page of a funder with routing history shows its figures and charts.

use crate::browser::{screenshot, Driver};
use crate::support::TestApp;
use fantoccini::{Client, Locator};
use zhudai_store::testing::TestDb;

use crate::browser::demo_sign_in as sign_in;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funder_is_admitted_by_two_people_and_its_performance_is_shown() {
    let db = TestDb::sqlite().await.unwrap();
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start_with(
        &db,
        zhudai_server::ServerSettings {
            data_dir: db.data_dir(),
            demo: true,
            ..Default::default()
        },
    )
    .await;
    zhudai_server::demo::seed_accounts(&db.store, 1)
        .await
        .unwrap();
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;

    // The funding manager finds the applying bank through the sidebar and the filters.
    sign_in(&browser, &app, "demo_funding_manager").await;
    browser.goto(&app.url("/m/funders")).await.unwrap();
    let table = text(&browser, "[data-testid=partner-table]").await;
    assert!(
        table.contains("bank_a") && table.contains("ca_e"),
        "{table}"
    );
    browser
        .goto(&app.url("/funders?status=applying"))
        .await
        .unwrap();
    let table = text(&browser, "[data-testid=partner-table]").await;
    assert!(
        table.contains("bank_f") && !table.contains("bank_a"),
        "{table}"
    );
    browser
        .wait()
        .for_element(Locator::LinkText("bank_f"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=start-admission]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Submitting with nothing filled in shows what is missing.
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=submit-admission]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let errors = text(&browser, "[data-testid=form-errors]").await;
    assert!(errors.contains("licence_valid"), "{errors}");
    // Fill in every standard: passed, with evidence.
    for input in browser
        .find_all(Locator::Css("input[name^=evidence_]"))
        .await
        .unwrap()
    {
        input.clear().await.unwrap();
        input.send_keys("已核验原件").await.unwrap();
    }
    for check in browser
        .find_all(Locator::Css("input[type=checkbox]"))
        .await
        .unwrap()
    {
        if !check.is_selected().await.unwrap() {
            check.click().await.unwrap();
        }
    }
    screenshot(&browser, "funder-admission-form").await;
    browser
        .find(Locator::Css("[data-testid=submit-admission]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = text(&browser, "[data-testid=notice-ok]").await;
    assert!(notice.contains("另一位同事"), "{notice}");
    assert!(text(&browser, "[data-testid=submitter]")
        .await
        .contains("资金合作经理"));
    assert_eq!(
        text(
            &browser,
            "[data-testid=partner-facts] [data-testid=partner-status]"
        )
        .await,
        "准入中"
    );
    // The submitter has no approve button.
    assert!(browser
        .find(Locator::Css("[data-testid=approve]"))
        .await
        .is_err());

    // Another person, from compliance, approves.
    browser
        .find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("username"))
        .await
        .unwrap();
    sign_in(&browser, &app, "demo_compliance").await;
    browser.goto(&app.url("/funders/bank_f")).await.unwrap();
    let checklist = text(&browser, "[data-testid=admission] [data-testid=checklist]").await;
    assert!(checklist.contains("已核验原件"), "{checklist}");
    browser
        .wait()
        .for_element(Locator::Id("decision-note"))
        .await
        .unwrap()
        .send_keys("材料齐全")
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&browser, "[data-testid=notice-ok]")
        .await
        .contains("审批结果已记录"));
    assert_eq!(
        text(
            &browser,
            "[data-testid=partner-facts] [data-testid=partner-status]"
        )
        .await,
        "已准入"
    );
    assert_eq!(
        text(&browser, "[data-testid=may-originate]").await,
        "可以放款"
    );
    let reminders = text(&browser, "[data-testid=status-history]").await;
    assert!(reminders.contains("admission approved"), "{reminders}");
    screenshot(&browser, "funder-admitted").await;

    // The performance of a funder with routing history: figures and charts.
    browser.goto(&app.url("/funders/bank_a")).await.unwrap();
    let attempts: i64 = text(&browser, "[data-testid=kpi-attempts]")
        .await
        .parse()
        .unwrap();
    assert!(attempts > 10, "{attempts}");
    assert!(text(&browser, "[data-testid=kpi-approval]")
        .await
        .ends_with('%'));
    assert_eq!(
        text(&browser, "[data-testid=kpi-balance]").await,
        "—",
        "no loans yet"
    );
    let charts = browser
        .find_all(Locator::Css("[data-testid=performance] svg.chart"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 2);
    let history = text(&browser, "[data-testid=routing-history]").await;
    assert!(history.contains("DEMO-APP-"), "{history}");
    screenshot(&browser, "funder-performance").await;

    // In English too.
    browser
        .goto(&app.url("/funders/bank_a?lang=en"))
        .await
        .unwrap();
    assert!(text(&browser, "[data-testid=performance] h2")
        .await
        .contains("Funder performance"));
    let _ = browser.close().await;
    app.stop().await;
    db.close().await;
}
