//! Worklists and the notification bell in a real browser (issue #6 item 3): the demo's
//! submitted applications pass doc_review's 8-hour limit; the Shanghai branch's manager
//! sees the bell count, opens the notifications and marks one read; the verifier sees
//! the overdue rows on the to-do tab, watches an application and finds it on the watch
//! tab; the customer manager finds what they submitted on the done tab.

use crate::browser::{demo_app, demo_sign_in, screenshot, Driver};
use fantoccini::{Client, Locator};
use zhudai_store::testing::TestDb;

async fn text(b: &Client, css: &str) -> String {
    b.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn click(b: &Client, css: &str) {
    b.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn sign_out(b: &Client) {
    click(b, "form[action='/logout'] button").await;
    b.wait().for_element(Locator::Id("username")).await.unwrap();
}

/// Waits until the page's path is `path` (after a click that navigates).
async fn at(b: &Client, path: &str) {
    for _ in 0..100 {
        if b.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "never reached {path}: at {}",
        b.current_url().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bell_rings_after_an_sla_breach_and_the_task_tabs_work() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    zhudai_server::demo::seed_applications(&app.state)
        .await
        .unwrap();
    let store = app.state.store().clone();
    let verifier_items = store
        .worklist(&["doc_verifier".into()], 0, 100)
        .await
        .unwrap();
    let submitted = verifier_items.len();
    assert!(
        submitted >= 2,
        "demo applications at doc_review: {submitted}"
    );
    // Nine hours later: past doc_review's 8-hour escalation limit.
    app.clock.advance_millis(9 * 3_600_000);
    let r = zhudai_server::workflow::check_time_limits(&store, app.state.now_ms())
        .await
        .unwrap();
    assert_eq!(r.breaches, submitted);

    let driver = Driver::start().await;
    let b = driver.browser(&db.dir.path().join("chrome-profile")).await;

    // The Shanghai branch's manager: the bell shows one unread alert per application.
    demo_sign_in(&b, &app, "demo_approver_l1").await;
    assert_eq!(
        text(&b, "[data-testid=bell-count]").await,
        submitted.to_string()
    );
    screenshot(&b, "bell-after-sla-breach").await;
    click(&b, "[data-testid=bell]").await;
    at(&b, "/notifications").await;
    let items = b
        .find_all(Locator::Css("[data-testid=notification]"))
        .await
        .unwrap();
    assert_eq!(items.len(), submitted);
    let first = items[0].text().await.unwrap();
    assert!(
        first.contains("超时未处理")
            && first.contains("资料审核")
            && first.contains("您是负责人的上级"),
        "{first}"
    );
    screenshot(&b, "notifications").await;
    click(&b, "[data-testid=mark-read]").await;
    // The page reloads with one fewer unread.
    let want = (submitted - 1).to_string();
    let mut seen = String::new();
    for _ in 0..100 {
        seen = match b.find(Locator::Css("[data-testid=bell-count]")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => "0".into(),
        };
        if seen == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, want, "one read");
    assert_eq!(
        b.find_all(Locator::Css("li.unread[data-testid=notification]"))
            .await
            .unwrap()
            .len(),
        submitted - 1
    );
    sign_out(&b).await;

    // The verifier: every to-do row overdue by an hour, highlighted.
    demo_sign_in(&b, &app, "demo_doc_verifier").await;
    b.goto(&app.url("/tasks")).await.unwrap();
    let summary = text(&b, "[data-testid=overdue-summary]").await;
    assert!(summary.contains(&submitted.to_string()), "{summary}");
    let overdue = b
        .find_all(Locator::Css("tr.overdue [data-testid=overdue]"))
        .await
        .unwrap();
    assert_eq!(overdue.len(), submitted);
    assert_eq!(overdue[0].text().await.unwrap(), "已超时 1 小时 0 分钟");
    screenshot(&b, "tasks-todo-overdue").await;
    // Done tab: nothing yet.
    click(&b, "[data-testid=tab-done]").await;
    text(&b, "[data-testid=no-done]").await;
    // Watch an application from its page, then find it on the watch tab.
    click(&b, "[data-testid=tab-todo]").await;
    click(&b, "[data-testid=task-table] tbody tr td a").await;
    text(&b, "[data-testid=application-facts]").await;
    let app_path = b.current_url().await.unwrap().path().to_owned();
    click(&b, "[data-testid=watch]").await;
    b.wait()
        .for_element(Locator::Css("[data-testid=unwatch]"))
        .await
        .unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), app_path);
    b.goto(&app.url("/tasks")).await.unwrap();
    click(&b, "[data-testid=tab-watch]").await;
    let watched = text(&b, "[data-testid=watch-table]").await;
    assert!(watched.contains("资料审核"), "{watched}");
    screenshot(&b, "tasks-watch").await;
    sign_out(&b).await;

    // The customer manager submitted them: the done tab lists them, newest first.
    demo_sign_in(&b, &app, "demo_customer_manager").await;
    b.goto(&app.url("/tasks?tab=done")).await.unwrap();
    let rows = b
        .find_all(Locator::Css("[data-testid=done-table] tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), submitted);
    assert!(rows[0].text().await.unwrap().contains("submit"));
    screenshot(&b, "tasks-done").await;
    b.close().await.unwrap();
    app.stop().await;
}
