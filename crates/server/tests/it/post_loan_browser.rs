//! Post-loan work through the pages (issue #8 items 3–6): the operations officer asks for
//! a daily close on /cob and sees its figures; the post-loan officer assigns a case to
//! the collector; the collector logs contacts on the case page (a promise without an
//! amount, a contact after hours and one over the daily limit come back as plain field
//! errors with nothing saved); the post-loan officer reads the portfolio report, whose
//! charts and tier and bucket figures agree with the API's JSON, and downloads the
//! workbook; the operations officer imports a funder's file and resolves the break it
//! shows.

use crate::browser::{demo_app, demo_sign_in, screenshot, Driver};
use fantoccini::{Client, Locator};
use serde_json::Value;
use zhudai_domain::clock::Clock;
use zhudai_domain::money::Fen;
use zhudai_store::sqlx::{self, Row};
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

/// Sets a date input's value (typing into one follows the browser's locale).
async fn set_date(browser: &Client, id: &str, value: &str) {
    browser
        .execute(
            "document.getElementById(arguments[0]).value = arguments[1];",
            vec![id.into(), value.into()],
        )
        .await
        .unwrap();
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

/// Clicks something that loads a new page and waits for that page.
async fn go(browser: &Client, css: &str) {
    browser
        .execute("window.__old_page = true;", vec![])
        .await
        .unwrap();
    click(browser, css).await;
    wait_new_page(browser).await;
}

async fn wait_new_page(browser: &Client) {
    for _ in 0..200 {
        let fresh = browser
            .execute(
                "return window.__old_page === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap();
        if fresh.as_bool() == Some(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no new page after 10 s");
}

async fn count(browser: &Client, css: &str) -> usize {
    browser.find_all(Locator::Css(css)).await.unwrap().len()
}

async fn switch_user(browser: &Client, app: &crate::support::TestApp, username: &str) {
    browser.delete_all_cookies().await.unwrap();
    demo_sign_in(browser, app, username).await;
}

async fn close_day(app: &crate::support::TestApp, date: &str) -> zhudai_server::cob::RunOutcome {
    crate::cob::close(app, date, Default::default()).await
}

async fn contacts_in_db(app: &crate::support::TestApp, case: i64) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM collection_contacts WHERE case_id = $1")
        .bind(case)
        .fetch_one(app.state.store().reader())
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

/// Shanghai wall-clock time on the test's business day.
fn at_shanghai(h: u32, m: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
        .and_utc()
        - chrono::Duration::hours(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_loan_pages_close_collect_report_and_reconcile() {
    let db = TestDb::sqlite().await.unwrap();
    let app = demo_app(&db).await;
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    let opened = zhudai_server::demo::seed_loans(&app.state).await.unwrap();
    assert!(opened >= 5, "{opened}");
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;

    // --- The daily close: asked for on /cob, run by the job's code, shown with figures.
    demo_sign_in(&browser, &app, "demo_operations").await;
    browser.goto(&app.url("/cob")).await.unwrap();
    assert!(text(&browser, "[data-testid=cob-runs]")
        .await
        .contains("还没有执行过日终"));
    // A day in the future is refused on the field.
    set_date(&browser, "cob-date", "2026-12-31").await;
    go(&browser, "[data-testid=cob-run]").await;
    let err = text(&browser, "[data-testid=error-business_date]").await;
    assert!(
        err.contains("2026-12-31") && err.contains("今天或更早"),
        "{err}"
    );
    set_date(&browser, "cob-date", "2026-11-28").await;
    go(&browser, "[data-testid=cob-run]").await;
    let notice = text(&browser, "[data-testid=notice]").await;
    assert!(
        notice.contains("已提交日终") && notice.contains("2026-11-28"),
        "{notice}"
    );
    let queued: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'cob.run'")
        .fetch_one(app.state.store().reader())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(queued, 1, "the form queued one close job");
    // The test server runs no job worker: close the two days as the job would.
    let first = close_day(&app, "2026-11-28").await;
    assert!(first.done);
    let second = close_day(&app, "2026-11-29").await;
    assert!(second.done);
    app.state
        .store()
        .refresh_vintages(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            zhudai_server::portfolio::MAX_MOB,
        )
        .await
        .unwrap();
    let run = app
        .state
        .store()
        .cob_run("2026-11-28")
        .await
        .unwrap()
        .unwrap();
    assert!(run.totals.cases_opened >= 1, "{run:?}");
    browser.goto(&app.url("/cob")).await.unwrap();
    let row = text(
        &browser,
        "[data-testid=cob-run-row][data-date='2026-11-28']",
    )
    .await;
    assert!(row.contains("已完成"), "{row}");
    assert_eq!(
        text(
            &browser,
            "[data-testid=cob-run-row][data-date='2026-11-28'] [data-testid=cases-opened]"
        )
        .await,
        run.totals.cases_opened.to_string()
    );
    assert_eq!(
        text(
            &browser,
            "[data-testid=cob-run-row][data-date='2026-11-28'] [data-testid=loans-closed]"
        )
        .await,
        run.totals.loans_closed.to_string()
    );
    screenshot(&browser, "cob-runs").await;

    // --- The post-loan officer assigns an open case to the collector.
    let collector = app
        .state
        .store()
        .user_by_username("demo_collector")
        .await
        .unwrap()
        .unwrap();
    switch_user(&browser, &app, "demo_post_loan").await;
    browser.goto(&app.url("/m/collections")).await.unwrap();
    let table = text(&browser, "[data-testid=case-table]").await;
    assert!(table.contains("M"), "{table}");
    let open_cases: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM collection_cases WHERE state = 'open'")
            .fetch_one(app.state.store().reader())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert!(open_cases >= 1);
    assert_eq!(
        count(&browser, "[data-testid=case-row]").await as i64,
        open_cases
    );
    let case_id: i64 = browser
        .find(Locator::Css("[data-testid=case-row]"))
        .await
        .unwrap()
        .attr("data-case")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    go(&browser, "[data-testid=case-link]").await;
    let facts = text(&browser, "[data-testid=case-facts]").await;
    let case = app.state.store().case(case_id).await.unwrap().unwrap();
    assert!(facts.contains(&case.loan_ref), "{facts}");
    assert_eq!(
        text(&browser, "[data-testid=case-dpd]").await,
        case.dpd.to_string()
    );
    assert!(case.dpd > 0);
    click(
        &browser,
        &format!("#as-user option[value='{}']", collector.id),
    )
    .await;
    go(&browser, "[data-testid=assign-submit]").await;
    let notice = text(&browser, "[data-testid=notice]").await;
    assert!(notice.contains("已分配"), "{notice}");
    assert_eq!(
        text(&browser, "[data-testid=case-assignee]").await,
        collector.display_name
    );

    // --- The collector sees the case in the queue and logs contacts.
    switch_user(&browser, &app, "demo_collector").await;
    browser.goto(&app.url("/m/collections")).await.unwrap();
    assert_eq!(count(&browser, "[data-testid=case-row]").await, 1);
    go(&browser, "[data-testid=case-link]").await;
    assert_eq!(count(&browser, "[data-testid=contact-row]").await, 0);

    // A promise to pay without an amount: the field says why; nothing is saved.
    click(&browser, "#ct-outcome option[value=promise_to_pay]").await;
    set_date(&browser, "ct-date", "2026-12-05").await;
    go(&browser, "[data-testid=contact-submit]").await;
    let err = text(&browser, "[data-testid=error-promised_amount]").await;
    assert!(err.contains("大于 0 的金额"), "{err}");
    assert!(text(&browser, "[data-testid=contact-errors]")
        .await
        .contains("未保存"));
    assert_eq!(count(&browser, "[data-testid=contact-row]").await, 0);
    assert_eq!(contacts_in_db(&app, case_id).await, 0);

    // Before hours (07:30 in Shanghai; earlier than the session's last use, which keeps
    // it alive): refused with the hours named; nothing is saved.
    app.clock.set(at_shanghai(7, 30));
    fill(&browser, "ct-amount", "500.00").await;
    go(&browser, "[data-testid=contact-submit]").await;
    let err = text(&browser, "[data-testid=error-at]").await;
    assert!(
        err.contains("07:30") && err.contains("08:00–21:00") && err.contains("未保存"),
        "{err}"
    );
    assert_eq!(count(&browser, "[data-testid=contact-row]").await, 0);
    assert_eq!(contacts_in_db(&app, case_id).await, 0);

    // Back in office hours the same promise is saved and shown.
    app.clock.set(at_shanghai(10, 0));
    go(&browser, "[data-testid=contact-submit]").await;
    let notice = text(&browser, "[data-testid=notice]").await;
    assert!(notice.contains("联系记录已保存"), "{notice}");
    let rows = browser
        .find_all(Locator::Css("[data-testid=contact-row]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].text().await.unwrap();
    assert!(
        row.contains("电话") && row.contains("承诺还款") && row.contains("500.00 · 2026-12-05"),
        "{row}"
    );
    assert_eq!(
        text(&browser, "[data-testid=case-promise]").await,
        "500.00 · 2026-12-05"
    );
    assert_eq!(contacts_in_db(&app, case_id).await, 1);

    // Two more contacts reach the daily limit of three; the fourth is refused.
    for _ in 0..2 {
        click(&browser, "#ct-outcome option[value=no_answer]").await;
        go(&browser, "[data-testid=contact-submit]").await;
        text(&browser, "[data-testid=notice]").await;
    }
    assert_eq!(count(&browser, "[data-testid=contact-row]").await, 3);
    click(&browser, "#ct-outcome option[value=no_answer]").await;
    go(&browser, "[data-testid=contact-submit]").await;
    let err = text(&browser, "[data-testid=error-at]").await;
    assert!(err.contains("每日上限") && err.contains('3'), "{err}");
    assert_eq!(count(&browser, "[data-testid=contact-row]").await, 3);
    assert_eq!(contacts_in_db(&app, case_id).await, 3);
    screenshot(&browser, "collection-case").await;

    // --- The portfolio report agrees with the API's JSON.
    let token = app.token_in_unit("post_loan", None).await;
    let json: Value = reqwest::Client::new()
        .get(app.url("/api/v1/reports/portfolio"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["as_of"], "2026-11-29");
    assert!(json["loans"].as_i64().unwrap() >= 4, "{json}");
    switch_user(&browser, &app, "demo_post_loan").await;
    browser.goto(&app.url("/m/reports")).await.unwrap();
    go(&browser, "[data-testid=report-portfolio]").await;
    assert_eq!(
        text(&browser, "[data-testid=kpi-loans]").await,
        json["loans"].as_i64().unwrap().to_string()
    );
    assert_eq!(
        text(&browser, "[data-testid=kpi-principal]").await,
        Fen::new(json["principal_fen"].as_i64().unwrap()).to_string()
    );
    assert_eq!(
        text(&browser, "[data-testid=kpi-npl]").await,
        Fen::new(json["npl_fen"].as_i64().unwrap()).to_string()
    );
    for (list, attr) in [("by_tier", "data-tier"), ("by_bucket", "data-bucket")] {
        let slices = json[list].as_array().unwrap();
        assert!(!slices.is_empty());
        for s in slices {
            let key = s["key"].as_str().unwrap();
            let sel = format!("tr[{attr}='{key}']");
            assert_eq!(
                text(&browser, &format!("{sel} [data-testid=loans]")).await,
                s["loans"].as_i64().unwrap().to_string(),
                "{list} {key}"
            );
            assert_eq!(
                text(&browser, &format!("{sel} [data-testid=principal]")).await,
                Fen::new(s["principal_fen"].as_i64().unwrap()).to_string(),
                "{list} {key}"
            );
        }
    }
    let delinquent: i64 = json["by_bucket"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["key"] != "M0")
        .map(|s| s["loans"].as_i64().unwrap())
        .sum();
    assert!(delinquent >= 1, "{json}");
    for label in [
        "五级分类本金余额",
        "各账龄贷款笔数",
        "各账龄本金余额",
        "不良率趋势（%）",
        "账龄分析：逾期率（%）",
        "账龄分析：逾期 30 天以上比率（%）",
    ] {
        assert_eq!(
            count(&browser, &format!("svg.chart[aria-label='{label}']")).await,
            1,
            "{label}"
        );
    }
    // One vintage line per disbursement month.
    let vintages: std::collections::BTreeSet<&str> = json["vintages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vintage"].as_str().unwrap())
        .collect();
    assert!(!vintages.is_empty(), "{json}");
    assert_eq!(
        count(
            &browser,
            "[data-testid=chart-vintage] polyline[data-series]"
        )
        .await,
        vintages.len()
    );
    // The roll-rate matrix from the first close to the second, cell by cell.
    let roll = &json["roll"];
    assert_eq!(roll["from"], "2026-11-28");
    for (r, from) in ["M0", "M1", "M2", "M3", "M4", "M5", "M6+"]
        .iter()
        .enumerate()
    {
        let cells = browser
            .find_all(Locator::Css(&format!(
                "[data-testid=roll-matrix] tr[data-from='{from}'] td[data-count]"
            )))
            .await
            .unwrap();
        assert_eq!(cells.len(), 8);
        for (c, cell) in cells.iter().enumerate() {
            assert_eq!(
                cell.attr("data-count").await.unwrap().unwrap(),
                roll["counts"][r][c].as_u64().unwrap().to_string(),
                "{from} → {c}"
            );
        }
    }
    screenshot(&browser, "portfolio-report").await;

    // The workbook link downloads the XLSX with the session cookie.
    let href = browser
        .find(Locator::Css("[data-testid=portfolio-xlsx]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let cookie = browser
        .get_named_cookie("zhudai_session")
        .await
        .unwrap()
        .value()
        .to_owned();
    let r = reqwest::Client::new()
        .get(app.url(&href))
        .header("cookie", format!("zhudai_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "a zip container");
    assert!(bytes.len() > 2000);

    // --- The operations officer imports a funder's file and sees the break.
    switch_user(&browser, &app, "demo_operations").await;
    browser.goto(&app.url("/reconciliation")).await.unwrap();
    let csv = db.dir.path().join("bank_a-2026-11-20.csv");
    std::fs::write(
        &csv,
        "funder_loan_ref,value_date,amount\nBANK_A-DEMO-9999,2026-11-20,123.45\n",
    )
    .unwrap();
    click(&browser, "#rc-funder option[value=bank_a]").await;
    browser
        .find(Locator::Id("rc-file"))
        .await
        .unwrap()
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    go(&browser, "[data-testid=recon-submit]").await;
    assert_eq!(text(&browser, "[data-testid=file-lines]").await, "1");
    let missing = text(&browser, "[data-testid=break-row][data-kind=missing]").await;
    assert!(
        missing.contains("我方缺失") && missing.contains("123.45") && missing.contains("0.00"),
        "{missing}"
    );
    assert_eq!(
        text(&browser, "[data-testid=file-funder-total]").await,
        "123.45"
    );
    // Open breaks on the list page too; resolve this one with a note.
    browser.goto(&app.url("/reconciliation")).await.unwrap();
    let open_before = count(
        &browser,
        "[data-testid=recon-open-breaks] [data-testid=break-row]",
    )
    .await;
    assert!(open_before >= 1);
    let form = browser
        .find(Locator::Css(
            "[data-testid=recon-open-breaks] [data-testid=break-row][data-kind=missing]",
        ))
        .await
        .unwrap();
    form.find(Locator::Css("input[name=note]"))
        .await
        .unwrap()
        .send_keys("资金方确认为误报")
        .await
        .unwrap();
    browser
        .execute("window.__old_page = true;", vec![])
        .await
        .unwrap();
    form.find(Locator::Css("[data-testid=resolve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_new_page(&browser).await;
    let notice = text(&browser, "[data-testid=notice]").await;
    assert!(notice.contains("差异已处理"), "{notice}");
    assert_eq!(
        count(
            &browser,
            "[data-testid=recon-open-breaks] [data-testid=break-row]"
        )
        .await,
        open_before - 1
    );
    screenshot(&browser, "reconciliation").await;

    // The servicing page of the case's loan shows its bucket history and the case.
    browser
        .goto(&app.url(&format!("/loans/{}", case.loan_id)))
        .await
        .unwrap();
    go(&browser, "[data-testid=servicing-link]").await;
    let history = text(&browser, "[data-testid=bucket-history]").await;
    assert!(
        history.contains("2026-11-28") && history.contains("M0"),
        "{history}"
    );
    let cases = text(&browser, "[data-testid=loan-cases]").await;
    assert!(cases.contains(&case_id.to_string()), "{cases}");

    let rep = app.state.store().ledger_verify().await.unwrap();
    assert!(rep.ok(), "{:?}", rep.problems);
    let _ = app.clock.now();
    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
