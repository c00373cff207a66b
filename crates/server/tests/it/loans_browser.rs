//! A person services a loan through the pages (issue #8): the operations officer finds an
//! overdue demo loan through the loan list's filter, reads its schedule, journal and
//! balances, posts a partial repayment with the form (a bad amount first comes back with
//! the field explained and nothing posted), and sees it in the repayments and the journal.

use crate::browser::{demo_app, demo_sign_in, screenshot, text_when, Driver};
use fantoccini::{Client, Locator};
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

async fn fill(browser: &Client, id: &str, value: &str) {
    let e = browser.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operations_officer_posts_a_repayment_on_an_overdue_loan() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    let opened = zhudai_server::demo::seed_loans(&app.state).await.unwrap();
    assert!(opened >= 5, "{opened}");
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_operations").await;

    // The sidebar's loans module leads to the list; the status filter finds overdue loans.
    browser.goto(&app.url("/m/loans")).await.unwrap();
    let all = text(&browser, "[data-testid=loan-table]").await;
    assert!(all.contains("已结清") && all.contains("逾期"), "{all}");
    browser
        .goto(&app.url("/loans?status=overdue"))
        .await
        .unwrap();
    let table = text(&browser, "[data-testid=loan-table]").await;
    assert!(
        table.contains("逾期") && !table.contains("已结清"),
        "{table}"
    );
    screenshot(&browser, "loans-list").await;
    browser
        .find(Locator::Css("[data-testid=loan-link]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let facts = text(&browser, "[data-testid=loan-facts]").await;
    assert!(facts.contains("逾期"), "{facts}");
    let schedule = text(&browser, "[data-testid=loan-schedule]").await;
    assert!(schedule.contains("应还日"), "{schedule}");
    let journal = text(&browser, "[data-testid=loan-journal]").await;
    assert!(
        journal.contains("放款") && journal.contains("贷款本金"),
        "{journal}"
    );
    let before = browser
        .find_all(Locator::Css("[data-testid=repayment-row]"))
        .await
        .unwrap()
        .len();

    // A bad amount: the field says why, nothing is posted.
    browser
        .find(Locator::Css("#rp-kind option[value=partial]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&browser, "rp-amount", "12.345").await;
    fill(&browser, "rp-payer", "借款人本人").await;
    browser
        .find(Locator::Css("[data-testid=post-repayment]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = text_when(&browser, "[data-testid=error-amount]", |t| !t.is_empty()).await;
    assert!(!err.is_empty(), "the amount field explains the problem");
    assert_eq!(
        browser
            .find_all(Locator::Css("[data-testid=repayment-row]"))
            .await
            .unwrap()
            .len(),
        before
    );
    // 100 yuan as a partial repayment: posted, listed, and in the journal.
    fill(&browser, "rp-amount", "100.00").await;
    browser
        .find(Locator::Css("[data-testid=post-repayment]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = text(&browser, "[data-testid=notice]").await;
    assert!(notice.contains("已登记还款"), "{notice}");
    let rows = browser
        .find_all(Locator::Css("[data-testid=repayment-row]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), before + 1);
    let last = rows.last().unwrap().text().await.unwrap();
    assert!(
        last.contains("部分还款") && last.contains("100.00"),
        "{last}"
    );
    let journal = text(&browser, "[data-testid=loan-journal]").await;
    assert!(journal.contains("还款清算户"), "{journal}");
    screenshot(&browser, "loan-page").await;

    // In English.
    let url = browser.current_url().await.unwrap();
    browser
        .goto(&format!(
            "{}{}lang=en",
            url.as_str(),
            if url.query().is_some() { "&" } else { "?" }
        ))
        .await
        .unwrap();
    let facts = text(&browser, "[data-testid=loan-balances]").await;
    assert!(facts.contains("Principal outstanding"), "{facts}");

    // The ledger is still proven.
    let rep = app.state.store().ledger_verify().await.unwrap();
    assert!(rep.ok(), "{:?}", rep.problems);
    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
