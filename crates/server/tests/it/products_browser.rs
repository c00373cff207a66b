//! Products and pricing in a real browser: a product manager creates a product, sees the
//! APR-cap refusal as a field message on a too-expensive one, activates the product and
//! runs a quote whose disclosure and chart are shown.

use crate::browser::{screenshot, text_when, Driver};
use crate::support::TestApp;
use fantoccini::{Client, Locator};
use zhudai_store::testing::TestDb;

async fn fill(browser: &Client, id: &str, value: &str) {
    let e = browser.wait().for_element(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
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
async fn a_product_manager_creates_a_product_and_quotes_it() {
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

    browser
        .goto(&app.url("/lang/en?back=/login"))
        .await
        .unwrap();
    fill(&browser, "username", "demo_product_manager").await;
    fill(
        &browser,
        "password",
        zhudai_server::ui::account::DEMO_PASSWORD,
    )
    .await;
    click(&browser, "form button[type=submit]").await;
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=current-user]"))
        .await
        .unwrap();

    // The module link leads to the product list; the demo products are there.
    browser.goto(&app.url("/m/products")).await.unwrap();
    let table = text(&browser, "[data-testid=product-table]").await;
    assert!(table.contains("consumer_std"), "{table}");
    click(&browser, "[data-testid=new-product]").await;

    // Too expensive: 23.99 % plus a 500-yuan upfront fee on 5,000 over 6 months.
    fill(&browser, "pf-code", "ui_cash").await;
    fill(&browser, "pf-name", "UI 现金贷").await;
    fill(&browser, "pf-rate", "0.2399").await;
    fill(&browser, "pf-penalty", "0").await;
    fill(&browser, "pf-fee1", "500.00").await;
    click(&browser, "[data-testid=save-product]").await;
    let refusal = text(&browser, "[data-testid=cap-error]").await;
    assert!(refusal.contains("5000.00 yuan over 6 months"), "{refusal}");
    assert!(refusal.contains("0.24"), "{refusal}");
    screenshot(&browser, "products-cap-refused").await;
    assert!(db.store.product_by_code("ui_cash").await.unwrap().is_none());

    // The form kept what was typed; fix it and save.
    fill(&browser, "pf-rate", "0.18").await;
    fill(&browser, "pf-fee1", "").await;
    fill(&browser, "pf-fee0", "0.001").await;
    click(&browser, "[data-testid=save-product]").await;
    let summary = text(&browser, "[data-testid=product-summary]").await;
    assert!(
        summary.contains("ui_cash") && summary.contains("Draft"),
        "{summary}"
    );
    let cap = text(&browser, "[data-testid=cap-explanation]").await;
    assert!(cap.contains("≤ 0.24"), "{cap}");
    click(&browser, "[data-testid=to-active]").await;
    let status = text_when(&browser, "[data-testid=product-status]", |t| t != "Draft").await;
    assert_eq!(status, "Active");

    // Quote it.
    click(&browser, "[data-testid=quote-this]").await;
    fill(&browser, "qf-amount", "20000").await;
    fill(&browser, "qf-months", "12").await;
    click(&browser, "[data-testid=run-quote]").await;
    let apr = text(&browser, "[data-testid=quote-apr]").await;
    let items = text(&browser, "[data-testid=disclosure-items]").await;
    assert!(
        items.contains("Guarantee") || items.contains("guarantee"),
        "{items}"
    );
    assert!(
        items.contains("240.00"),
        "12 × 20.00 guarantee fee: {items}"
    );
    browser
        .wait()
        .for_element(Locator::Css(
            "[data-testid=quote-chart] svg rect.chart-bar-alt",
        ))
        .await
        .unwrap();
    let schedule = text(&browser, "[data-testid=quote-schedule]").await;
    assert!(schedule.contains("20000.00"), "{schedule}");
    screenshot(&browser, "products-quote").await;

    // The page shows the quote's stored APR, which is the domain's.
    let id: i64 = browser
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stored = db.store.quote_by_id(id).await.unwrap().unwrap();
    assert_eq!(apr, stored.apr);
    let v: serde_json::Value = serde_json::from_str(&stored.snapshot).unwrap();
    assert_eq!(v["disclosure"]["items"][1]["total"], "240.00");

    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
