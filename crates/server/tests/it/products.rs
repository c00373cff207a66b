//! Products and pricing through the API: create/version/status, field errors, the APR cap
//! refusal naming the combination, immutable versions, and quotes whose disclosure equals
//! the domain maths.

use crate::support::TestApp;
use chrono::NaiveDate;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zhudai_domain::money::Fen;
use zhudai_domain::product::{self, apr_4dp, QuoteRequest};
use zhudai_domain::schedule::RepaymentMethod;
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    product_lifecycle_and_versions,
    bad_products_are_refused_with_field_errors,
    quotes_match_the_domain_maths,
);

pub fn consumer_product(code: &str) -> Value {
    json!({
        "code": code,
        "name": "消费贷",
        "methods": ["equal_installment", "equal_principal"],
        "min_months": 6,
        "max_months": 24,
        "min_amount": "5000.00",
        "max_amount": "200000.00",
        "annual_rate": "0.15",
        "fees": [
            {"kind": "guarantee", "collector": "guarantor", "charge": "monthly_on_principal", "rate": "0.001"},
            {"kind": "service", "collector": "funder", "charge": "upfront", "amount": "50.00"}
        ],
        "penalty_markup": "0.3",
        "eligibility": {"min_age": 22, "max_age": 55, "required_materials": ["id_front", "id_back", "income_proof"]},
        "funder_codes": ["bank_a", "cfc_b"],
        "note": "first version"
    })
}

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn as_role<'a>(app: &'a TestApp, role: &str) -> Api<'a> {
        let user = app.user_with_role(role).await;
        let (token, _) = app.login(&user).await;
        Api { app, token }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn audits(db: &TestDb, prefix: &str) -> i64 {
    db.store
        .audit_count(&AuditFilter {
            action_prefix: Some(prefix.into()),
            outcome: Some("success".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn product_lifecycle_and_versions(db: &TestDb) {
    let app = TestApp::start(db).await;
    let pm = Api::as_role(&app, "product_manager").await;
    let (s, body) = pm
        .post("/api/v1/products", &consumer_product("consumer"))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["status"], "draft");
    assert_eq!(body["version"]["version"], 1);
    assert_eq!(
        body["version"]["spec"]["funder_codes"],
        json!(["bank_a", "cfc_b"])
    );
    // The cap search result is kept with the version.
    let worst: f64 = body["version"]["worst_apr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worst > 0.15 && worst <= 0.24, "{body}");
    assert_eq!(body["version"]["cap_check"]["violations"], 0);
    assert_eq!(audits(db, "product.create").await, 1);

    // A taken code is a field error.
    let (s, body) = pm
        .post("/api/v1/products", &consumer_product("consumer"))
        .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&body), ["code"]);

    // A new version leaves the old one as it was.
    let mut v2 = consumer_product("consumer");
    v2.as_object_mut().unwrap().remove("code");
    v2["annual_rate"] = json!("0.12");
    v2["name"] = json!("消费贷（优惠）");
    let (s, body) = pm.post("/api/v1/products/consumer/versions", &v2).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["version"], 2);
    let (s, list) = pm.get("/api/v1/products/consumer/versions").await;
    assert_eq!(s, 200);
    let rates: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["spec"]["annual_rate"].as_str().unwrap())
        .collect();
    assert_eq!(rates, ["0.12", "0.15"]);
    let (_, p) = pm.get("/api/v1/products/consumer").await;
    assert_eq!(
        (p["name"].as_str(), p["current_version"].as_i64()),
        (Some("消费贷（优惠）"), Some(2))
    );
    assert_eq!(audits(db, "product.version").await, 1);
    let (s, _) = pm.post("/api/v1/products/nothing/versions", &v2).await;
    assert_eq!(s, 404);

    // Status: draft → active → retired; retired → draft refused.
    let (s, body) = pm
        .post(
            "/api/v1/products/consumer/status",
            &json!({"status": "active"}),
        )
        .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("active")),
        "{body}"
    );
    let (s, body) = pm
        .post(
            "/api/v1/products/consumer/status",
            &json!({"status": "draft"}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&body), ["status"]);
    let (s, _) = pm
        .post(
            "/api/v1/products/consumer/status",
            &json!({"status": "retired"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        audits(db, "product.active").await + audits(db, "product.retired").await,
        2
    );

    // Permissions: a customer manager reads but cannot manage.
    let cm = Api::as_role(&app, "customer_manager").await;
    let (s, list) = cm.get("/api/v1/products").await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    let (s, _) = cm
        .post("/api/v1/products", &consumer_product("other"))
        .await;
    assert_eq!(s, 403);
    app.stop().await;
}

async fn bad_products_are_refused_with_field_errors(db: &TestDb) {
    let app = TestApp::start(db).await;
    let pm = Api::as_role(&app, "product_manager").await;
    let mut bad = consumer_product("Bad Code");
    bad["annual_rate"] = json!("twelve");
    bad["methods"] = json!(["balloon"]);
    bad["fees"][0]["collector"] = json!("nobody");
    bad["min_amount"] = json!("1.234");
    let (s, body) = pm.post("/api/v1/products", &bad).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["type"], "urn:zhudai:problem:validation");
    let f = fields(&body);
    for want in [
        "code",
        "annual_rate",
        "methods[0]",
        "fees[0].collector",
        "min_amount",
    ] {
        assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
    }
    // Rules beyond parsing: platform fees, ranges, unknown materials.
    let mut bad = consumer_product("rules");
    bad["fees"][1]["collector"] = json!("platform");
    bad["max_months"] = json!(3);
    bad["eligibility"]["required_materials"] = json!(["palm_reading"]);
    let (s, body) = pm.post("/api/v1/products", &bad).await;
    assert_eq!(s, 422);
    let f = fields(&body);
    for want in [
        "fees[1].collector",
        "max_months",
        "eligibility.required_materials[0]",
    ] {
        assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
    }

    // Too expensive: a 300-yuan upfront fee on 5,000 over 6 months. The error names the
    // worst combination (smallest amount, shortest term) and its APR.
    let mut dear = consumer_product("dear");
    dear["fees"][1]["amount"] = json!("300.00");
    let (s, body) = pm.post("/api/v1/products", &dear).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(fields(&body), ["apr"]);
    let e = &body["errors"][0];
    assert_eq!(e["code"], "above_cap");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("5000.00 yuan over 6 months"), "{msg}");
    assert!(msg.contains("0.24"), "{msg}");
    // The APR it names is the real one of that loan.
    let spec =
        zhudai_server::api::products::parse_spec(&serde_json::from_value(dear.clone()).unwrap())
            .unwrap();
    let real = [
        RepaymentMethod::EqualInstallment,
        RepaymentMethod::EqualPrincipal,
    ]
    .into_iter()
    .map(|m| {
        let t = spec
            .terms(
                m,
                Fen::from_yuan(5_000).unwrap(),
                6,
                NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            )
            .unwrap();
        zhudai_domain::schedule::RepaymentSchedule::generate(&t)
            .unwrap()
            .apr()
            .unwrap()
    })
    .max()
    .unwrap();
    assert!(msg.contains("(equal_principal)"), "{msg}");
    assert!(
        msg.contains(&apr_4dp(real)),
        "{msg} should name {}",
        apr_4dp(real)
    );
    // A rate just under the cap plus a small monthly fee is refused as well, and a cost
    // on default above the cap too.
    let mut steep = consumer_product("steep");
    steep["fees"] = json!([{"kind": "guarantee", "collector": "guarantor", "charge": "monthly_on_principal", "rate": "0.0002"}]);
    steep["annual_rate"] = json!("0.238");
    steep["penalty_markup"] = json!("0");
    let (s, body) = pm.post("/api/v1/products", &steep).await;
    assert_eq!((s, fields(&body)), (422, vec!["apr".to_owned()]), "{body}");
    let mut penal = consumer_product("penal");
    penal["annual_rate"] = json!("0.2");
    penal["fees"] = json!([]);
    penal["penalty_markup"] = json!("0.5");
    let (s, body) = pm.post("/api/v1/products", &penal).await;
    assert_eq!(
        (s, fields(&body)),
        (422, vec!["penalty_markup".to_owned()]),
        "{body}"
    );

    // Nothing was written.
    assert!(db.store.products().await.unwrap().is_empty());
    assert_eq!(audits(db, "product.").await, 0);
    app.stop().await;
}

async fn quotes_match_the_domain_maths(db: &TestDb) {
    let app = TestApp::start(db).await;
    let pm = Api::as_role(&app, "product_manager").await;
    let (s, _) = pm
        .post("/api/v1/products", &consumer_product("consumer"))
        .await;
    assert_eq!(s, 201);
    let cm = Api::as_role(&app, "customer_manager").await;
    let ask = json!({"product_code": "consumer", "amount": "100000.00", "months": 12,
                     "method": "equal_installment", "start_date": "2026-12-10"});
    // A draft product is not quoted.
    let (s, body) = cm.post("/api/v1/quotes", &ask).await;
    assert_eq!((s, fields(&body)), (422, vec!["product_code".to_owned()]));
    pm.post(
        "/api/v1/products/consumer/status",
        &json!({"status": "active"}),
    )
    .await;

    let (s, q) = cm.post("/api/v1/quotes", &ask).await;
    assert_eq!(s, 201, "{q}");
    let snap = &q["snapshot"];
    // The same quote from the domain crate.
    let stored = db.store.product_by_code("consumer").await.unwrap().unwrap();
    let version = db
        .store
        .product_version(stored.id, None)
        .await
        .unwrap()
        .unwrap();
    let req = QuoteRequest {
        amount: Fen::from_yuan(100_000).unwrap(),
        months: 12,
        method: RepaymentMethod::EqualInstallment,
        start_date: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
    };
    let (schedule, disclosure) =
        product::quote(&version.spec, &req, app.state.settings().apr_cap).unwrap();
    let periods = snap["schedule"]["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 12);
    for (p, d) in periods.iter().zip(&schedule.periods) {
        assert_eq!(p["payment"], d.payment.to_string());
        assert_eq!(p["interest"], d.interest.to_string());
        assert_eq!(p["fee"], d.fee.to_string());
        assert_eq!(p["balance"], d.remaining.to_string());
        assert_eq!(p["due_date"], d.due_date.to_string());
    }
    assert_eq!(
        snap["disclosure"],
        serde_json::to_value(&disclosure).unwrap()
    );
    assert_eq!(snap["apr"], apr_4dp(schedule.apr().unwrap()));
    // The disclosure's lines: interest, the guarantee fee (12 × 100.00 to the guarantor),
    // the upfront service fee; totals add up.
    let items = snap["disclosure"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["collector"], "guarantor");
    assert_eq!(items[1]["total"], "1200.00");
    assert_eq!(items[2]["charged"], "upfront");
    assert_eq!(items[2]["total"], "50.00");
    assert_eq!(snap["disclosure"]["total_fees"], "1250.00");
    assert_eq!(
        snap["disclosure"]["default_cost"]["penalty_annual_rate"],
        "0.195"
    );
    // The digest is SHA-256 of the stored snapshot text; reading it back is identical.
    let (s, back) = cm.get(&format!("/api/v1/quotes/{}", q["id"])).await;
    assert_eq!(s, 200);
    assert_eq!(back["snapshot"], q["snapshot"]);
    assert_eq!(back["digest"], q["digest"]);
    let text = db
        .store
        .quote_by_id(q["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap()
        .snapshot;
    assert_eq!(q["digest"], hex::encode(Sha256::digest(text.as_bytes())));
    assert_eq!(audits(db, "quote.create").await, 1);

    // Outside the product: term, amount, method — each a field error, nothing stored.
    for (patch, field) in [
        (json!({"months": 36}), "months"),
        (json!({"amount": "1000.00"}), "amount"),
        (json!({"method": "bullet"}), "method"),
        (json!({"start_date": "10/12/2026"}), "start_date"),
    ] {
        let mut a = ask.clone();
        for (k, v) in patch.as_object().unwrap() {
            a[k] = v.clone();
        }
        let (s, body) = cm.post("/api/v1/quotes", &a).await;
        assert_eq!((s, fields(&body)), (422, vec![field.to_owned()]), "{a}");
    }
    assert_eq!(audits(db, "quote.create").await, 1);
    // An auditor may read a quote but not make one.
    let auditor = Api::as_role(&app, "auditor").await;
    let (s, _) = auditor.post("/api/v1/quotes", &ask).await;
    assert_eq!(s, 403);
    let (s, _) = auditor.get(&format!("/api/v1/quotes/{}", q["id"])).await;
    assert_eq!(s, 200);
    let (s, _) = cm.get("/api/v1/quotes/999999").await;
    assert_eq!(s, 404);
    app.stop().await;
}
