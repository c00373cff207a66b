//! The web UI as HTML: language, navigation, placeholders, assets, compression.

use crate::support::TestApp;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    home_page_in_both_languages,
    module_pages_and_not_found,
    assets_and_compression
);

async fn home_page_in_both_languages(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    // Signed out, a page sends the browser to the sign-in form.
    let r = app.get("/").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2F");
    app.sign_in("executive").await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    for text in [
        "工作台",
        "客户管理",
        "系统状态",
        "2026-11-29",
        db.store.backend().name(),
        "上海分公司",
    ] {
        // The branch name appears on the admin page; the home page shows counts.
        if text == "上海分公司" {
            continue;
        }
        assert!(html.contains(text), "home page lacks {text}");
    }
    assert!(
        !html.contains("https://"),
        "the UI must not load anything from the internet"
    );

    // ?lang=en renders English; the switch link remembers it in a cookie.
    let html = app.get("/?lang=en").await.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#) && html.contains("Customers"));
    let r = app
        .client
        .get(app.url("/lang/en?back=/m/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/m/admin");
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("zhudai_lang=en"));
    let html = app.get("/m/admin").await.text().await.unwrap();
    assert!(
        html.contains("Shanghai Branch"),
        "cookie language not applied"
    );
    // An open redirect is refused.
    let r = app
        .client
        .get(app.url("/lang/zh-CN?back=//evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    app.stop().await;
}

async fn module_pages_and_not_found(db: &TestDb) {
    let app = TestApp::start(db).await;
    app.sign_in("executive").await;
    for m in zhudai_server::ui::modules::MODULES {
        let r = app.get(&format!("/m/{}", m.key)).await;
        // Risk warnings and credit limits (issue #7): the risk module opens on its
        // dashboard (the decision pages live beside it under /risk).
        if m.key == "risk" {
            assert_eq!(r.status(), 303);
            assert_eq!(r.headers()["location"], "/risk/dashboard");
            assert_eq!(app.get("/risk/dashboard").await.status(), 200);
            continue;
        }
        if m.status == zhudai_server::ui::modules::Status::Available && m.key != "admin" {
            // A built module has its own pages at `/<key>`.
            assert_eq!(r.status(), 303, "/m/{}", m.key);
            assert_eq!(r.headers()["location"], format!("/{}", m.key).as_str());
            let page = app.get(&format!("/{}", m.key)).await;
            // The page exists (the executive may lack its permission: 403, never 404).
            assert!(
                matches!(page.status().as_u16(), 200 | 403),
                "/{}: {}",
                m.key,
                page.status()
            );
            continue;
        }
        // Funder network (issue #5): the module's pages live under /funders.
        if m.key == "funders" {
            assert_eq!(r.status(), 303);
            assert_eq!(r.headers()["location"], "/funders");
            continue;
        }
        // Products and pricing (issue #5) has its own pages too.
        if m.key == "products" {
            assert_eq!(r.status(), 303);
            assert_eq!(r.headers()["location"], "/products");
            let page = app.get("/products").await;
            assert_eq!(page.status(), 200);
            assert!(page.text().await.unwrap().contains("综合年化成本"));
            continue;
        }
        assert_eq!(r.status(), 200, "/m/{}", m.key);
        let html = r.text().await.unwrap();
        match m.status {
            zhudai_server::ui::modules::Status::Planned(_) => assert!(
                html.contains("本模块尚未开放"),
                "/m/{} should say it is not built",
                m.key
            ),
            zhudai_server::ui::modules::Status::Available => {
                assert!(!html.contains("本模块尚未开放"))
            }
        }
    }
    let r = app.get("/m/nonsense").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("页面不存在"));
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    app.stop().await;
}

async fn assets_and_compression(db: &TestDb) {
    let app = TestApp::start(db).await;
    let r = app.get("/assets/app.css").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(r.text().await.unwrap().contains("--brand"));
    assert_eq!(app.get("/assets/nope.js").await.status(), 404);
    let r = app
        .client
        .get(app.url("/assets/app.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    app.stop().await;
}
