//! End-to-end in a real headless Chromium driven through WebDriver (Debian `chromium` and
//! `chromium-driver`, installed by `scripts/install-deps.sh`). Checks what a person sees.

use crate::support::TestApp;
use fantoccini::{ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use zhudai_store::testing::TestDb;

/// A chromedriver process on a free port, killed on drop.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed for browser tests: run scripts/install-deps.sh");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Driver { child, port };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromedriver did not start on port {port}");
    }

    pub async fn browser(&self, profile: &std::path::Path) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", "--no-first-run", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000", format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        // Several crypto back-ends are linked into the test binary; pick one explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

/// A demo-mode server on `db` with the demo organisation, products, funders and accounts.
pub async fn demo_app(db: &TestDb) -> TestApp {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start_with(
        db,
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
    app
}

/// Signs a demo account in through the login form and waits for the signed-in page.
pub async fn demo_sign_in(browser: &fantoccini::Client, app: &TestApp, username: &str) {
    sign_in_with(
        browser,
        app,
        username,
        zhudai_server::ui::account::DEMO_PASSWORD,
    )
    .await;
}

/// Signs `username` in through the login form and waits for the signed-in page.
pub async fn sign_in_with(
    browser: &fantoccini::Client,
    app: &TestApp,
    username: &str,
    password: &str,
) {
    browser.goto(&app.url("/login")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(username)
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=current-user]"))
        .await
        .unwrap();
}

/// Saves a screenshot under target/screenshots for people to look at.
/// The text of `css` once it satisfies `ready`: the element may already be on the page
/// a click or form post is replacing (an empty error span, an old status), so poll, and
/// ignore the replaced page's stale elements.
pub async fn text_when(
    browser: &fantoccini::Client,
    css: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = browser.find(fantoccini::Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ready(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never became ready; last text: {last:?}");
}

pub async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_the_home_page_and_switches_language() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;

    // Signed out: the home page sends the person to the sign-in form, which in demo mode
    // lists one account per role.
    browser.goto(&app.url("/")).await.unwrap();
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/login"));
    let demo_accounts = browser
        .wait()
        .for_element(Locator::Css("[data-testid=demo-accounts]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        demo_accounts.contains("demo_auditor") && demo_accounts.contains("客户经理"),
        "{demo_accounts}"
    );
    screenshot(&browser, "login-zh").await;
    // A wrong password gets a friendly message and the form back.
    browser
        .wait()
        .for_element(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("demo_executive")
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong-password")
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = browser
        .wait()
        .for_element(Locator::Css("[data-testid=login-error]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(error, "用户名或密码错误。");
    browser
        .wait()
        .for_element(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("demo_executive")
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(zhudai_server::ui::account::DEMO_PASSWORD)
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let me = browser
        .wait()
        .for_element(Locator::Css("[data-testid=current-user]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(me, "演示·管理层");
    assert_eq!(browser.title().await.unwrap(), "工作台 · 助贷运营系统");
    let status = browser
        .wait()
        .for_element(Locator::Css("[data-testid=system-status]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.contains("系统状态") && status.contains("sqlite"),
        "{status}"
    );
    let demo = browser
        .wait()
        .for_element(Locator::Css(".badge-warn"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(demo, "演示模式");
    let org = browser
        .wait()
        .for_element(Locator::Css("[data-testid=organisation]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(org.contains('3') && org.contains("分公司"), "{org}");
    // The stylesheet really applied (served by us, not a CDN): the sidebar is laid out.
    let width = browser
        .execute(
            "return document.querySelector('.sidebar').getBoundingClientRect().width",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width.as_f64().unwrap().round(), 208.0);
    screenshot(&browser, "home-zh").await;

    // Navigate as a person would: click a module in the sidebar.
    let links = browser
        .find_all(Locator::Css(".sidebar a.nav-item"))
        .await
        .unwrap();
    let mut planned = None;
    for l in links {
        if l.text().await.unwrap().starts_with("合规与反洗钱") {
            planned = Some(l);
        }
    }
    planned
        .expect("a 合规与反洗钱 entry in the sidebar (a module not built yet)")
        .click()
        .await
        .unwrap();
    let notice = browser
        .wait()
        .for_element(Locator::Css("[data-testid=not-built]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("本模块尚未开放"), "{notice}");
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/m/aml"));

    // Switch to English and stay on the same page.
    browser
        .wait()
        .for_element(Locator::Css("a.lang-switch"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = browser
        .wait()
        .for_element(Locator::Css("h1.page-title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, "Compliance & AML");
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/m/aml"));
    browser.goto(&app.url("/m/admin")).await.unwrap();
    let table = browser
        .wait()
        .for_element(Locator::Css("[data-testid=org-units]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("Shanghai Branch") && table.contains("Consumer Team 1"),
        "{table}"
    );
    screenshot(&browser, "admin-en").await;
    // Signing out ends the session: the next page asks to sign in again.
    browser
        .wait()
        .for_element(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.goto(&app.url("/m/admin")).await.unwrap();
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/login"));

    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_users_and_enrols_two_factor() {
    use zhudai_domain::clock::Clock;
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;

    browser.goto(&app.url("/login")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("demo_sysadmin")
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(zhudai_server::ui::account::DEMO_PASSWORD)
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signed in (navigating away before the answer would cancel the sign-in).
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=current-user]"))
        .await
        .unwrap();

    // Users: a bad form comes back with the fields marked, a good one creates the user.
    browser.goto(&app.url("/m/admin")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=link-users]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form = browser
        .wait()
        .for_element(Locator::Css("[data-testid=new-user] form"))
        .await
        .unwrap();
    form.find(Locator::Id("nu-username"))
        .await
        .unwrap()
        .send_keys("wang.fang")
        .await
        .unwrap();
    form.find(Locator::Id("nu-name"))
        .await
        .unwrap()
        .send_keys("王芳")
        .await
        .unwrap();
    form.find(Locator::Id("nu-password"))
        .await
        .unwrap()
        .send_keys("weak")
        .await
        .unwrap();
    form.find(Locator::Id("nu-phone"))
        .await
        .unwrap()
        .send_keys("13800001234")
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = browser
        .wait()
        .for_element(Locator::Css("[data-testid=new-user] [role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(alert, "请修改标红的字段后重新提交。");
    let kept = browser
        .wait()
        .for_element(Locator::Id("nu-username"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("wang.fang"),
        "the form keeps what was typed"
    );
    browser
        .wait()
        .for_element(Locator::Id("nu-password"))
        .await
        .unwrap()
        .send_keys("Strong-Passw0rd-9")
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=new-user] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=created]"))
        .await
        .unwrap();
    let table = browser
        .wait()
        .for_element(Locator::Css("[data-testid=user-table]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("wang.fang") && table.contains("138****1234"),
        "{table}"
    );
    assert!(
        !table.contains("13800001234"),
        "the administrator sees the mobile masked"
    );
    screenshot(&browser, "users-zh").await;

    // Roles: the permission matrix.
    browser.goto(&app.url("/admin/roles")).await.unwrap();
    let matrix = browser
        .wait()
        .for_element(Locator::Css("[data-testid=role-matrix]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        matrix.contains("审计管理员") && matrix.contains("audit.read"),
        "matrix lacks roles or permissions"
    );
    screenshot(&browser, "roles-zh").await;

    // Two-factor enrolment by QR code, confirmed with a code computed from the shown key.
    browser.goto(&app.url("/account")).await.unwrap();
    screenshot(&browser, "account-zh").await;
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=two-factor] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let qr = browser
        .wait()
        .for_element(Locator::Css("[data-testid=totp-enrol] .qr svg"))
        .await
        .unwrap();
    assert!(qr.is_displayed().await.unwrap());
    screenshot(&browser, "totp-enrol").await;
    let key = browser
        .wait()
        .for_element(Locator::Css("[data-testid=totp-secret]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = zhudai_crypto::totp::TotpSecret::from_base32(&key).unwrap();
    let code =
        zhudai_crypto::totp::code_at(&secret, (app.clock.now().timestamp_millis() / 1000) as u64)
            .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("code"))
        .await
        .unwrap()
        .send_keys(&code)
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=totp-enrol] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = browser
        .wait()
        .for_element(Locator::Css("[data-testid=two-factor] .badge-ok"))
        .await
        .unwrap();
    let status = status.text().await.unwrap();
    assert!(status.contains("已启用"), "{status}");

    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_manager_creates_and_finds_a_customer() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    let seeded = zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    assert!(seeded >= 20, "{seeded}");
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_customer_manager").await;

    // The list shows the demo customers, masked where the role must not see clear values.
    browser.goto(&app.url("/m/customers")).await.unwrap();
    let table = browser
        .wait()
        .for_element(Locator::Css("[data-testid=customer-table]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("*"),
        "ID numbers are masked for a customer manager: {table}"
    );
    assert!(
        table.contains("重复"),
        "the shared mobile is flagged: {table}"
    );
    screenshot(&browser, "customers-list").await;

    // A wrong check digit comes back as a friendly message on that field; nothing is created.
    browser
        .find(Locator::Css("[data-testid=new-customer]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("cf-name"))
        .await
        .unwrap()
        .send_keys("赵六")
        .await
        .unwrap();
    browser
        .find(Locator::Id("cf-id_number"))
        .await
        .unwrap()
        .send_keys("110105194912310021")
        .await
        .unwrap();
    browser
        .find(Locator::Id("cf-phone"))
        .await
        .unwrap()
        .send_keys("13912345678")
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=create-customer]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=form-error]"))
        .await
        .unwrap();
    let err = browser
        .find(Locator::Css("[data-testid=error-id_number]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!err.is_empty(), "the ID number field explains the problem");
    assert_eq!(
        browser
            .find(Locator::Id("cf-name"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("赵六"),
        "the form keeps what was typed"
    );
    let id = browser.find(Locator::Id("cf-id_number")).await.unwrap();
    id.clear().await.unwrap();
    id.send_keys("11010519491231002X").await.unwrap();
    browser
        .find(Locator::Css("[data-testid=create-customer]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = browser
        .wait()
        .for_element(Locator::Css("[data-testid=notice]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("客户已创建"), "{notice}");
    let age = browser
        .find(Locator::Css("[data-testid=age]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(age, "76", "age is derived from the ID number");
    screenshot(&browser, "customer-page").await;

    // Exact search by the full ID number finds exactly that customer.
    browser.goto(&app.url("/customers")).await.unwrap();
    let q = browser
        .wait()
        .for_element(Locator::Css("[data-testid=customer-search] input[name=q]"))
        .await
        .unwrap();
    q.send_keys("11010519491231002X").await.unwrap();
    browser
        .find(Locator::Css(
            "[data-testid=customer-search] select[name=by] option[value=id_number]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Css(
            "[data-testid=customer-search] button[type=submit]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Wait for the result page itself (the list page before it has a table too).
    let mut rows = String::new();
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains("by=id_number")) {
            if let Ok(t) = browser
                .find(Locator::Css("[data-testid=customer-table] tbody"))
                .await
            {
                if let Ok(text) = t.text().await {
                    rows = text;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rows.contains("赵六") && rows.lines().count() == 1, "{rows}");
    browser.close().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_reviews_and_checks_a_workflow() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_sysadmin").await;
    browser.goto(&app.url("/workflows")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=workflow-table] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let svg = browser
        .wait()
        .for_element(Locator::Css("[data-testid=workflow-diagram]"))
        .await
        .unwrap();
    let nodes = svg.find_all(Locator::Css("g[data-node]")).await.unwrap();
    assert_eq!(nodes.len(), 11, "every node is drawn");
    screenshot(&browser, "workflow-diagram").await;
    // Break a guard in the editor: the check names the transition and the typo.
    let area = browser
        .find(Locator::Css("textarea[name=source]"))
        .await
        .unwrap();
    let source = area.prop("value").await.unwrap().unwrap();
    area.clear().await.unwrap();
    area.send_keys(&source.replace(
        "guard = \"documents.complete\"",
        "guard = \"documents.compete\"",
    ))
    .await
    .unwrap();
    browser
        .find(Locator::Css("[data-testid=workflow-validate]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let problems = browser
        .wait()
        .for_element(Locator::Css("[data-testid=workflow-problems]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        problems.contains("transitions[2].guard") && problems.contains("documents.complete"),
        "{problems}"
    );
    browser.close().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_manager_imports_customers_through_the_wizard() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    let good1 = zhudai_domain::generate::resident_id(71);
    let good2 = zhudai_domain::generate::resident_id(72);
    let csv = format!(
        "姓名,证件号码,手机号\n李雷,{},13911112222\n韩梅梅,{},13933334444\n错号,110105194912310021,13955556666\n",
        good1.as_str(),
        good2.as_str()
    );
    let file = db.dir.path().join("customers.csv");
    std::fs::write(&file, csv).unwrap();
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_customer_manager").await;
    browser.goto(&app.url("/customers/import")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Id("im-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=import-submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=import-progress]"))
        .await
        .unwrap();
    // The worker's part, then the page (it refreshes itself while running) shows the report.
    crate::imports::drain_jobs(&app).await;
    browser.refresh().await.unwrap();
    let problems = browser
        .wait()
        .for_element(Locator::Css("[data-testid=import-problems]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        problems.contains('4') && problems.contains("110***********0021"),
        "row 4 and its masked value: {problems}"
    );
    assert_eq!(
        browser
            .find(Locator::Css("[data-testid=import-rejected]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(
        db.store.customer_count().await.unwrap(),
        0,
        "a dry run writes nothing"
    );
    screenshot(&browser, "import-dry-run").await;
    browser
        .find(Locator::Css("[data-testid=import-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The dry run's page has a progress card too: wait until the confirmation's answer
    // (the real import's page, without the confirm button) has replaced it, so the job
    // exists before the jobs are drained.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while browser
        .find(Locator::Css("[data-testid=import-confirm]"))
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the confirmation was not answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=import-progress]"))
        .await
        .unwrap();
    crate::imports::drain_jobs(&app).await;
    browser.refresh().await.unwrap();
    let status = browser
        .wait()
        .for_element(Locator::Css("[data-testid=import-status]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "已完成");
    assert_eq!(
        db.store.customer_count().await.unwrap(),
        2,
        "the good rows are imported"
    );
    browser.close().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_manager_files_and_submits_an_application() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    // A customer of the demo customer manager, aged 41 on the test date.
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "demo_customer_manager", "password": zhudai_server::ui::account::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id_number = zhudai_domain::ident::ResidentId::from_body("31011519850101003").unwrap();
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "周八", "id_number": id_number.as_str(), "phone": "13812345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let customer = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;
    demo_sign_in(&browser, &app, "demo_customer_manager").await;
    browser.goto(&app.url("/m/applications")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=new-application]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Id("ap-customer"))
        .await
        .unwrap()
        .send_keys(&customer.to_string())
        .await
        .unwrap();
    browser
        .find(Locator::Css("#ap-product option[value=consumer_std]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Too small for the product: the amount field says so.
    browser
        .find(Locator::Id("ap-amount"))
        .await
        .unwrap()
        .send_keys("100")
        .await
        .unwrap();
    browser
        .find(Locator::Id("ap-months"))
        .await
        .unwrap()
        .send_keys("12")
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=create-application]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[role=alert]"))
        .await
        .unwrap();
    let amount = browser.find(Locator::Id("ap-amount")).await.unwrap();
    amount.clear().await.unwrap();
    amount.send_keys("30000").await.unwrap();
    browser
        .find(Locator::Css("[data-testid=create-application]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = browser
        .wait()
        .for_element(Locator::Css("[data-testid=application-status]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "草稿");
    browser
        .find(Locator::Css("[data-testid=act-submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut node = String::new();
    for _ in 0..50 {
        if let Ok(e) = browser
            .find(Locator::Css("[data-testid=application-node]"))
            .await
        {
            if let Ok(t) = e.text().await {
                node = t;
                if node == "doc_review" {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(node, "doc_review", "submitted to document review");
    let history = browser
        .find(Locator::Css("[data-testid=application-history]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("submit"), "{history}");
    screenshot(&browser, "application-submitted").await;
    browser.close().await.unwrap();
    app.stop().await;
}
