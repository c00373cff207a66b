//! The post-loan pages over plain HTTP on both databases (issue #8 items 3–6): the
//! collection case's contact form refuses bad input and the compliance guards with plain
//! messages and saves nothing; the portfolio report shows the close's figures and its
//! workbook downloads; a reconciliation file's break is shown and resolved; a manual
//! classification floor needs a second person; the close page refuses a day before a
//! closed one.

use crate::support::TestApp;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(post_loan_pages_work_over_http);

fn form(token: &str, app: &TestApp, path: &str, body: &[(&str, &str)]) -> reqwest::RequestBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url(path))
        .bearer_auth(token)
        .form(body)
}

async fn page(token: &str, app: &TestApp, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, String, String) {
    let r = rb.send().await.unwrap();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), loc, r.text().await.unwrap())
}

fn shanghai(h: u32, m: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
        .and_utc()
        - chrono::Duration::hours(8)
}

async fn post_loan_pages_work_over_http(db: &TestDb) {
    // Never repaid since 2026-06-15: 136 days past due at the close of 2026-11-28 (M5).
    let f = crate::loans::fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let app = &f.app;
    let store = app.state.store();
    let out = crate::cob::close(app, "2026-11-28", Default::default()).await;
    assert!(out.done);
    let co = store
        .org_units()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.code == "l-co")
        .unwrap()
        .id;
    let pl = app.token_in_unit("post_loan", Some(co)).await;

    // The queue and the case.
    let cases = store.cases_of_loan(f.loan).await.unwrap();
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    assert_eq!((case.bucket.as_str(), case.dpd), ("M5", 136));
    let (s, html) = page(&pl, app, "/collections?bucket=M5").await;
    assert_eq!(s, 200);
    assert!(
        html.contains(&format!("data-case=\"{}\"", case.id)),
        "{html}"
    );
    let (s, html) = page(&pl, app, "/collections?bucket=M1").await;
    assert_eq!(s, 200);
    assert!(!html.contains("data-testid=\"case-row\""));
    let path = format!("/collections/cases/{}", case.id);
    let (s, html) = page(&pl, app, &path).await;
    assert_eq!(s, 200);
    assert!(html.contains("data-testid=\"case-dpd\">136<"), "{html}");
    let contacts = |id: i64| async move { store.contacts_of(id).await.unwrap().len() };

    // A promise without an amount: a plain message on the field, nothing saved.
    let contact = format!("{path}/contacts");
    let (s, _, html) = send(form(
        &pl,
        app,
        &contact,
        &[
            ("channel", "phone"),
            ("outcome", "promise_to_pay"),
            ("promised_date", "2026-12-05"),
        ],
    ))
    .await;
    assert_eq!(s, 422);
    assert!(html.contains("承诺还款需要填写大于 0 的金额"), "{html}");
    assert_eq!(contacts(case.id).await, 0);
    // 07:30 in Shanghai is before the allowed hours.
    app.clock.set(shanghai(7, 30));
    let good = [
        ("channel", "phone"),
        ("outcome", "promise_to_pay"),
        ("promised_amount", "500"),
        ("promised_date", "2026-12-05"),
    ];
    let (s, _, html) = send(form(&pl, app, &contact, &good)).await;
    assert_eq!(s, 422);
    assert!(
        html.contains("现在是 07:30，不在允许联系的时间（08:00–21:00）内，本次联系未保存"),
        "{html}"
    );
    assert_eq!(contacts(case.id).await, 0);
    app.clock.set(shanghai(10, 0));
    let (s, loc, _) = send(form(&pl, app, &contact, &good)).await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("{path}?done=contact").as_str())
    );
    assert_eq!(contacts(case.id).await, 1);
    let (_, html) = page(&pl, app, &path).await;
    assert!(html.contains("500.00 · 2026-12-05"), "{html}");
    // The daily limit (3 per debtor): two more, then a refusal naming it.
    let no_answer = [("channel", "sms"), ("outcome", "no_answer")];
    for _ in 0..2 {
        assert_eq!(send(form(&pl, app, &contact, &no_answer)).await.0, 303);
    }
    let (s, _, html) = send(form(&pl, app, &contact, &no_answer)).await;
    assert_eq!(s, 422);
    assert!(
        html.contains("该债务人今天已联系 3 次，达到每日上限"),
        "{html}"
    );
    assert_eq!(contacts(case.id).await, 3);

    // Assigning, the agency and closing go through the same services.
    let (s, _, html) = send(form(
        &pl,
        app,
        &format!("{path}/assign"),
        &[("user_id", "999999")],
    ))
    .await;
    assert_eq!(s, 422, "{html}");
    let collector = app.user_in_unit("collector", Some(co)).await;
    let collector = store.user_by_username(&collector).await.unwrap().unwrap();
    let (s, loc, _) = send(form(
        &pl,
        app,
        &format!("{path}/assign"),
        &[("user_id", &collector.id.to_string())],
    ))
    .await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("{path}?done=assign").as_str())
    );
    assert_eq!(
        store.case(case.id).await.unwrap().unwrap().assignee_user_id,
        Some(collector.id)
    );
    let agency = format!("{path}/agency");
    let (s, _, _) = send(form(
        &pl,
        app,
        &agency,
        &[("agency_code", "ca_e"), ("commission_rate", "0.15")],
    ))
    .await;
    assert_eq!(s, 303);
    let (_, html) = page(&pl, app, &path).await;
    assert!(
        html.contains("data-testid=\"agency-row\"><td>ca_e"),
        "{html}"
    );
    let (s, _, html) = send(form(
        &pl,
        app,
        &agency,
        &[("agency_code", "ca_e"), ("commission_rate", "0.15")],
    ))
    .await;
    assert_eq!(s, 409);
    assert!(html.contains("with an agency already"), "{html}");
    let (s, _, _) = send(form(&pl, app, &format!("{path}/agency/end"), &[])).await;
    assert_eq!(s, 303);
    assert!(store
        .assignments_of(case.id, "2026-11-29")
        .await
        .unwrap()
        .iter()
        .all(|a| !a.active));
    let (s, _, _) = send(form(
        &pl,
        app,
        &format!("{path}/close"),
        &[("reason", "other"), ("note", "")],
    ))
    .await;
    assert_eq!(s, 422);
    assert_eq!(store.case(case.id).await.unwrap().unwrap().state, "open");
    let (s, _, _) = send(form(
        &pl,
        app,
        &format!("{path}/close"),
        &[("reason", "other"), ("note", "借款人协商分期，转入重组")],
    ))
    .await;
    assert_eq!(s, 303);
    assert_eq!(store.case(case.id).await.unwrap().unwrap().state, "closed");
    let (_, html) = page(&pl, app, &path).await;
    assert!(
        html.contains("已结案") && !html.contains("data-testid=\"contact-form\""),
        "{html}"
    );
    assert_eq!(send(form(&pl, app, &contact, &no_answer)).await.0, 409);
    assert_eq!(contacts(case.id).await, 3);

    // The portfolio report: one loan, 100,000 yuan less nothing repaid, in M5 and 次级
    // or worse.
    let (s, html) = page(&pl, app, "/reports/portfolio").await;
    assert_eq!(s, 200);
    let d = zhudai_server::portfolio::dashboard(&app.state, None, None)
        .await
        .unwrap();
    assert_eq!(d.loans, 1);
    let m5 = d.by_bucket.iter().find(|b| b.key == "M5").unwrap();
    assert_eq!(m5.loans, 1);
    let principal = zhudai_domain::money::Fen::new(m5.principal_fen).to_string();
    assert!(
        html.contains(&format!(
            "<tr data-bucket=\"M5\"><td>M5</td><td class=\"num\" data-testid=\"loans\">1</td><td class=\"num\" data-testid=\"principal\">{principal}</td>"
        )),
        "{html}"
    );
    assert!(html.contains("aria-label=\"五级分类本金余额\""));
    let (s, html) = page(&pl, app, "/reports/portfolio?lang=en").await;
    assert_eq!(s, 200);
    assert!(html.contains("Principal by five-tier class") && html.contains("Roll-rate matrix"));
    let (s, html) = page(&pl, app, "/reports/portfolio?from=2026-13-01").await;
    assert_eq!(s, 422);
    assert!(html.contains("请填写日期"));
    let r = reqwest::Client::new()
        .get(app.url("/reports/portfolio.xlsx"))
        .bearer_auth(&pl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(r.bytes().await.unwrap().starts_with(b"PK"));

    // Reconciliation: a line of an unknown loan is missing on our side.
    let csv = "funder_loan_ref,value_date,amount\nBA-9999,2026-11-20,123.45\n";
    let multipart = reqwest::multipart::Form::new()
        .text("funder", "bank_a")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("ba.csv"),
        );
    let (s, loc, _) = send(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(app.url("/reconciliation"))
            .bearer_auth(&f.ops)
            .multipart(multipart),
    )
    .await;
    assert_eq!(s, 303);
    assert!(loc.starts_with("/reconciliation/files/"), "{loc}");
    let (s, html) = page(&f.ops, app, &loc).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("data-kind=\"missing\"") && html.contains("123.45"),
        "{html}"
    );
    let b = store.recon_breaks("open", 10).await.unwrap();
    assert_eq!(b.len(), 1);
    let file_id = loc.trim_start_matches("/reconciliation/files/");
    let (s, loc, _) = send(form(
        &f.ops,
        app,
        &format!("/reconciliation/breaks/{}/resolve", b[0].id),
        &[("note", "资金方确认误报"), ("back", file_id)],
    ))
    .await;
    assert_eq!(s, 303, "{loc}");
    assert!(store.recon_breaks("open", 10).await.unwrap().is_empty());
    let (_, html) = page(&f.ops, app, "/reconciliation").await;
    assert!(html.contains("没有未处理的差异"));

    // A manual floor: asked by the post-loan officer, decided by the risk manager; the
    // asker cannot decide their own.
    let servicing = format!("/loans/{}/servicing", f.loan);
    let (s, loc, _) = send(form(
        &pl,
        app,
        &format!("/loans/{}/classification-requests", f.loan),
        &[("floor", "loss"), ("reason", "借款人失联，诉讼中")],
    ))
    .await;
    assert_eq!(s, 303);
    assert!(loc.starts_with(&servicing), "{loc}");
    let req = store.floor_requests_of(f.loan).await.unwrap();
    assert_eq!((req.len(), req[0].state.as_str()), (1, "pending"));
    let decision = format!("/classification-requests/{}/decision", req[0].id);
    let loan_id = f.loan.to_string();
    let (s, _, _) = send(form(
        &pl,
        app,
        &decision,
        &[("approve", "true"), ("loan_id", &loan_id)],
    ))
    .await;
    assert_eq!(s, 403, "post-loan officers do not approve floors");
    let rm = app.token_in_unit("risk_manager", None).await;
    let (s, _, _) = send(form(
        &rm,
        app,
        &decision,
        &[("approve", "true"), ("note", "同意"), ("loan_id", &loan_id)],
    ))
    .await;
    assert_eq!(s, 303);
    assert_eq!(
        store.loan(f.loan).await.unwrap().unwrap().classification,
        "loss"
    );
    let (s, html) = page(&rm, app, &servicing).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("人工下限") && html.contains("已批准"),
        "{html}"
    );

    // The close page: figures of the close, and a day before it refused on the field.
    let (s, html) = page(&f.ops, app, "/cob").await;
    assert_eq!(s, 200);
    assert!(html.contains("data-date=\"2026-11-28\""));
    let (s, _, html) = send(form(
        &f.ops,
        app,
        "/cob/run",
        &[("business_date", "2026-11-27")],
    ))
    .await;
    assert_eq!(s, 422);
    assert!(html.contains("不能关闭 2026-11-27"), "{html}");
    let (s, loc, _) = send(form(
        &f.ops,
        app,
        "/cob/run",
        &[("business_date", "2026-11-29")],
    ))
    .await;
    assert_eq!((s, loc.as_str()), (303, "/cob?requested=2026-11-29"));
    f.app.stop().await;
}
