//! The partner registry through the API: registration, status lifecycle, admission with
//! four eyes, limits and pricing, contacts (encrypted, masked), reminders, performance
//! and its XLSX export (read back with openpyxl).

use crate::support::TestApp;
use serde_json::{json, Value};
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    registry_admission_with_four_eyes,
    lifecycle_limits_pricing_and_origination,
    contacts_are_encrypted_and_masked,
    reminders_are_recorded_once,
    performance_and_xlsx_export,
);

pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn as_role(app: &TestApp, roles: &[&str]) -> Api {
        let username = app.user_with_role(roles[0]).await;
        if roles.len() > 1 {
            let user = app
                .state
                .store()
                .user_by_username(&username)
                .await
                .unwrap()
                .unwrap();
            let mut ids = Vec::new();
            for r in roles {
                ids.push(app.state.store().role_by_code(r).await.unwrap().unwrap().id);
            }
            app.state
                .store()
                .user_update(
                    user.id,
                    &zhudai_store::identity::UserUpdate {
                        role_ids: Some(&ids),
                        ..Default::default()
                    },
                    app.state.now_ms(),
                )
                .await
                .unwrap();
        }
        let (token, _) = app.login(&username).await;
        Api {
            base: app.base.clone(),
            token,
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
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

/// Every standard applying to a funder, passed, with evidence.
pub async fn full_checklist(api: &Api) -> Value {
    let (_, standards) = api.get("/api/v1/admission-standards").await;
    let items: Vec<Value> = standards
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let kinds = s["kinds"].as_array().unwrap();
            kinds.is_empty() || kinds.iter().any(|k| k == "funder")
        })
        .map(|s| json!({"code": s["code"], "passed": true, "evidence": "checked the original"}))
        .collect();
    json!({ "items": items })
}

async fn registry_admission_with_four_eyes(db: &TestDb) {
    let app = TestApp::start(db).await;
    let manager = Api::as_role(&app, &["funding_manager"]).await;
    let compliance = Api::as_role(&app, &["compliance"]).await;

    // Bad input names each field and writes nothing.
    let (s, p) = manager
        .post(
            "/api/v1/partners",
            json!({"code": "Bank-A", "kind": "bank", "name_zh": "", "name_en": "Bank A"}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(fields(&p), ["code", "kind", "name_zh"]);
    assert!(app
        .state
        .store()
        .partners(None, None)
        .await
        .unwrap()
        .is_empty());

    let (s, p) = manager.post("/api/v1/partners", json!({"code": "bank_a", "kind": "funder", "name_zh": "甲银行", "name_en": "Bank A", "uscc": "91110000600037341L"})).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["status"], "applying");
    assert_eq!(p["origination"]["reason_code"], "not_admitted");
    let (s, p) = manager
        .post(
            "/api/v1/partners",
            json!({"code": "bank_a", "kind": "funder", "name_zh": "x", "name_en": "x"}),
        )
        .await;
    assert_eq!((s, fields(&p)), (422, vec!["code".to_owned()]));

    // Admission cannot be forced through the status route.
    let (s, p) = manager
        .post("/api/v1/partners/bank_a/status", json!({"to": "admitted"}))
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["code"], "needs_admission");

    // An incomplete checklist is refused, naming what is missing.
    let (s, p) = manager
        .post(
            "/api/v1/partners/bank_a/admission",
            json!({"items": [{"code": "licence_valid", "passed": true, "evidence": " "}]}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        fields(&p).contains(&"items[0].evidence".to_owned())
            && fields(&p).contains(&"items".to_owned()),
        "{p}"
    );

    // One failed required standard: may be submitted, but not approved.
    let mut checklist = full_checklist(&manager).await;
    checklist["items"][0]["passed"] = json!(false);
    let (s, p) = manager
        .post("/api/v1/partners/bank_a/admission", checklist)
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, _) = manager
        .post(
            "/api/v1/partners/bank_a/admission",
            full_checklist(&manager).await,
        )
        .await;
    assert_eq!(s, 409, "one open submission at a time");
    // The submitter's role cannot approve at all.
    let (s, _) = manager
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, p) = compliance
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("licence_valid"),
        "{p}"
    );
    // Rejecting needs a note; then a clean checklist is submitted again.
    let (s, _) = compliance
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": false}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = compliance
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": false, "note": "licence copy unreadable"}),
        )
        .await;
    assert_eq!(s, 200);

    // Four eyes: a person holding both powers still cannot approve their own submission.
    let both = Api::as_role(&app, &["funding_manager", "compliance"]).await;
    let (s, _) = both
        .post(
            "/api/v1/partners/bank_a/admission",
            full_checklist(&both).await,
        )
        .await;
    assert_eq!(s, 201);
    let (s, p) = both
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("four eyes"), "{p}");
    let (s, p) = compliance
        .post(
            "/api/v1/partners/bank_a/admission/decision",
            json!({"approve": true, "note": "ok"}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "admitted");
    assert_eq!(p["next_review_on"], "2027-11-29");
    let (_, d) = manager.get("/api/v1/partners/bank_a").await;
    let states: Vec<_> = d["admissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["approved", "rejected"]);
    assert_eq!(d["history"].as_array().unwrap().len(), 2);
    // Each decision is in the audit trail, written with the change.
    let page = app
        .state
        .store()
        .audit_search(
            &AuditFilter {
                action_prefix: Some("partner.admission.".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap();
    let actions: Vec<_> = page.records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "partner.admission.approve")
            .count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "partner.admission.submit")
            .count(),
        2,
        "{actions:?}"
    );
    app.stop().await;
}

async fn lifecycle_limits_pricing_and_origination(db: &TestDb) {
    let app = TestApp::start(db).await;
    let manager = Api::as_role(&app, &["funding_manager"]).await;
    let compliance = Api::as_role(&app, &["compliance"]).await;
    manager
        .post(
            "/api/v1/partners",
            json!({"code": "cfc_b", "kind": "funder", "name_zh": "乙消金", "name_en": "CFC B"}),
        )
        .await;
    manager
        .post(
            "/api/v1/partners/cfc_b/admission",
            full_checklist(&manager).await,
        )
        .await;
    let (s, _) = compliance
        .post(
            "/api/v1/partners/cfc_b/admission/decision",
            json!({"approve": true}),
        )
        .await;
    assert_eq!(s, 200);
    // Admitted but not yet on their partner list: no origination.
    let (_, d) = manager.get("/api/v1/partners/cfc_b").await;
    assert_eq!(
        d["partner"]["origination"]["reason_code"],
        "not_on_partner_list"
    );
    let (s, p) = manager.patch("/api/v1/partners/cfc_b", json!({"listed_us_on": "2026-13-01", "eligibility_rule": "customer.agee > 1", "agreement_start_on": "2026-01-01", "agreement_end_on": "2025-01-01"})).await;
    assert_eq!(s, 422);
    assert_eq!(
        fields(&p),
        ["listed_us_on", "agreement_end_on", "eligibility_rule"]
    );
    assert!(
        p["errors"][2]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `customer.age`"),
        "{p}"
    );
    let (s, p) = manager.patch("/api/v1/partners/cfc_b", json!({"listed_us_on": "2026-01-01", "agreement_start_on": "2026-01-01", "agreement_end_on": "2027-12-31", "eligibility_rule": "customer.age >= 22"})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["rule_version"], 2);
    assert_eq!(p["origination"]["reason_code"], "no_valid_licence");
    let (s, _) = manager.post("/api/v1/partners/cfc_b/licences", json!({"licence_type": "金融许可证", "number": "N0012H233010001", "issuer": "浙江监管局", "valid_until": "2030-12-31"})).await;
    assert_eq!(s, 201);
    let (s, _) = manager.post("/api/v1/partners/cfc_b/licences", json!({"licence_type": "金融许可证", "number": "N0012H233010001", "issuer": "浙江监管局"})).await;
    assert_eq!(s, 422, "a licence is registered once");
    let (_, d) = manager.get("/api/v1/partners/cfc_b").await;
    assert_eq!(d["partner"]["origination"]["allowed"], true, "{d}");

    // Limits and pricing.
    let (s, p) = manager
        .put(
            "/api/v1/partners/cfc_b/limits",
            json!({"daily_quota_fen": 200, "total_quota_fen": 100}),
        )
        .await;
    assert_eq!((s, fields(&p)), (422, vec!["daily_quota_fen".to_owned()]));
    let (s, _) = manager.put("/api/v1/partners/cfc_b/limits", json!({"daily_quota_fen": 100_000_000, "total_quota_fen": 500_000_000, "per_customer_max_fen": 20_000_000})).await;
    assert_eq!(s, 204);
    let (s, p) = manager
        .put(
            "/api/v1/partners/cfc_b/pricing",
            json!({"product_code": "consumer_12_36", "annual_rate": "0.40"}),
        )
        .await;
    assert_eq!((s, fields(&p)), (422, vec!["annual_rate".to_owned()]));
    let (s, _) = manager
        .put(
            "/api/v1/partners/cfc_b/pricing",
            json!({"product_code": "consumer_12_36", "annual_rate": "0.0980"}),
        )
        .await;
    assert_eq!(s, 204);
    let (_, d) = manager.get("/api/v1/partners/cfc_b").await;
    assert_eq!(d["limits"]["total_quota_fen"], 500_000_000);
    assert_eq!(d["pricing"][0]["annual_rate"], "0.098");

    // Lifecycle: suspending needs a reason; exited is final.
    let (s, p) = manager
        .post("/api/v1/partners/cfc_b/status", json!({"to": "suspended"}))
        .await;
    assert_eq!((s, fields(&p)), (422, vec!["reason".to_owned()]));
    let (s, p) = manager
        .post(
            "/api/v1/partners/cfc_b/status",
            json!({"to": "suspended", "reason": "regulatory review"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["origination"]["reason_code"], "not_admitted");
    let (s, _) = manager
        .post("/api/v1/partners/cfc_b/status", json!({"to": "admitted"}))
        .await;
    assert_eq!(s, 200, "a suspended partner may be reinstated");
    let (s, _) = manager
        .post(
            "/api/v1/partners/cfc_b/status",
            json!({"to": "exited", "reason": "agreement terminated"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, p) = manager
        .post("/api/v1/partners/cfc_b/status", json!({"to": "admitted"}))
        .await;
    assert_eq!(s, 422);
    assert_eq!(p["errors"][0]["code"], "illegal_transition");
    let (_, list) = manager.get("/api/v1/partners?status=exited").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, _) = manager.get("/api/v1/partners?kind=bank").await;
    assert_eq!(s, 422);
    // Read-only roles see partners but cannot change them.
    let exec = Api::as_role(&app, &["executive"]).await;
    assert_eq!(exec.get("/api/v1/partners/cfc_b").await.0, 200);
    assert_eq!(
        exec.patch("/api/v1/partners/cfc_b", json!({"notes": "x"}))
            .await
            .0,
        403
    );
    app.stop().await;
}

async fn contacts_are_encrypted_and_masked(db: &TestDb) {
    let app = TestApp::start(db).await;
    let manager = Api::as_role(&app, &["funding_manager"]).await;
    manager
        .post(
            "/api/v1/partners",
            json!({"code": "ce_c", "kind": "credit_enhancer", "name_zh": "丙担保", "name_en": "C"}),
        )
        .await;
    let (s, p) = manager
        .post(
            "/api/v1/partners/ce_c/contacts",
            json!({"name": "王经理", "phone": "1391234567"}),
        )
        .await;
    assert_eq!((s, fields(&p)), (422, vec!["phone".to_owned()]));
    let (s, _) = manager.post("/api/v1/partners/ce_c/contacts", json!({"name": "王经理", "title": "业务部", "phone": "13912345678", "email": "wang@example.cn"})).await;
    assert_eq!(s, 201);
    let (_, d) = manager.get("/api/v1/partners/ce_c").await;
    assert_eq!(
        d["contacts"][0]["phone"], "13912345678",
        "the funding manager sees it in clear"
    );
    let exec = Api::as_role(&app, &["executive"]).await;
    let (_, d) = exec.get("/api/v1/partners/ce_c").await;
    assert_eq!(d["contacts"][0]["phone"], "139****5678");
    // Stored only encrypted.
    use zhudai_store::sqlx::Row;
    let row = zhudai_store::sqlx::query("SELECT phone_enc FROM partner_contacts")
        .fetch_one(db.store.reader())
        .await
        .unwrap();
    let enc: Vec<u8> = row.try_get("phone_enc").unwrap();
    assert!(!enc.windows(11).any(|w| w == b"13912345678"));
    // The clear read was audited.
    let page = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("field.read_clear".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    app.stop().await;
}

async fn reminders_are_recorded_once(db: &TestDb) {
    let app = TestApp::start(db).await;
    let manager = Api::as_role(&app, &["funding_manager"]).await;
    manager
        .post(
            "/api/v1/partners",
            json!({"code": "dp_d", "kind": "data_provider", "name_zh": "丁数据", "name_en": "D"}),
        )
        .await;
    // Review in 20 days, agreement ending in 40 (outside the 30-day window).
    manager.patch("/api/v1/partners/dp_d", json!({"next_review_on": "2026-12-19", "agreement_start_on": "2025-01-01", "agreement_end_on": "2027-01-08"})).await;
    let (_, d) = manager.get("/api/v1/partners/dp_d").await;
    assert_eq!(
        d["due"],
        json!([{"kind": "annual_review", "due_on": "2026-12-19"}])
    );
    assert_eq!(
        zhudai_server::partners::record_reminders(&app.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        zhudai_server::partners::record_reminders(&app.state)
            .await
            .unwrap(),
        0,
        "once"
    );
    // Ten days later the agreement is within the window too.
    app.clock.advance_millis(10 * 86_400_000);
    assert_eq!(
        zhudai_server::partners::record_reminders(&app.state)
            .await
            .unwrap(),
        1
    );
    // (Sessions idle out over ten days: sign in again.)
    let manager = Api::as_role(&app, &["funding_manager"]).await;
    let (_, d) = manager.get("/api/v1/partners/dp_d").await;
    assert_eq!(d["reminders"].as_array().unwrap().len(), 2);
    let page = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("partner.reminder.".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    // The job is registered and scheduled once per day.
    let kinds: Vec<_> = zhudai_server::jobs::JobRegistry::standard()
        .kinds()
        .cloned()
        .collect();
    assert!(
        kinds.contains(&"funders.reminders".to_owned())
            && kinds.contains(&"routing.advance".to_owned())
    );
    let now = app.state.now_ms();
    assert!(zhudai_server::partners::schedule_reminders(&db.store, now)
        .await
        .unwrap()
        .is_some());
    assert!(zhudai_server::partners::schedule_reminders(&db.store, now)
        .await
        .unwrap()
        .is_none());
    app.stop().await;
}

async fn performance_and_xlsx_export(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let exec = Api::as_role(&app, &["executive"]).await;
    let (s, p) = exec.get("/api/v1/partners/bank_a/performance").await;
    assert_eq!(s, 200, "{p}");
    let attempts = p["attempts"].as_i64().unwrap();
    let approved = p["approved"].as_i64().unwrap();
    let declined = p["declined"].as_i64().unwrap();
    assert!(attempts > 10 && approved > 0 && declined > 0, "{p}");
    // The approval rate is approved / decided, computed independently here.
    let rate: f64 = p["approval_rate"].as_str().unwrap().parse().unwrap();
    assert!(
        (rate - approved as f64 / (approved + declined) as f64).abs() < 1e-4,
        "{p}"
    );
    assert!(p["avg_decision_ms"].as_i64().unwrap() > 0);
    assert_eq!(p["disbursed_balance_fen"], Value::Null, "no loans yet");
    assert_eq!(p["overdue_rate"], Value::Null);
    // Once the loan ledger writes exposures, balance and overdue rate appear.
    zhudai_store::sqlx::query("INSERT INTO funder_exposures (partner_code, loan_ref, outstanding_fen, overdue_fen, days_past_due, as_of, updated_at_ms)
        VALUES ('bank_a', 'L1', 900000, 0, 0, '2026-11-29', 1), ('bank_a', 'L2', 100000, 20000, 45, '2026-11-29', 1)")
        .execute(db.store.writer())
        .await
        .unwrap();
    let (_, p) = exec.get("/api/v1/partners/bank_a/performance").await;
    assert_eq!(p["disbursed_balance_fen"], 1_000_000);
    assert_eq!(p["overdue_rate"], "0.1");

    let resp = exec
        .client
        .get(format!("{}/api/v1/funder-performance.xlsx", exec.base))
        .bearer_auth(&exec.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    let bytes = resp.bytes().await.unwrap();
    let path = db.dir.path().join("perf.xlsx");
    std::fs::write(&path, &bytes).unwrap();
    use calamine::{open_workbook, Data, DataType, Reader, Xlsx};
    let mut book: Xlsx<_> = open_workbook(&path).unwrap();
    assert_eq!(book.sheet_names(), ["Funders", "Daily"]);
    let rows: Vec<Vec<Data>> = book
        .worksheet_range("Funders")
        .unwrap()
        .rows()
        .map(|r| r.to_vec())
        .collect();
    assert_eq!(rows[0][0], Data::String("code".into()));
    let bank = rows
        .iter()
        .find(|r| r[0] == Data::String("bank_a".into()))
        .unwrap();
    assert_eq!(bank[2].as_f64().unwrap() as i64, attempts);
    assert_eq!(bank[3].as_f64().unwrap() as i64, approved);
    assert!(
        (bank[7].as_f64().unwrap() - rate).abs() < 1e-4,
        "approval rate: {bank:?}"
    );
    assert!(
        (bank[10].as_f64().unwrap() - 10_000.0).abs() < 1e-9,
        "balance in yuan: {bank:?}"
    );
    let cfc = rows
        .iter()
        .find(|r| r[0] == Data::String("cfc_b".into()))
        .unwrap();
    assert_eq!(cfc[10], Data::String("—".into()), "no balance yet");
    let daily = book.worksheet_range("Daily").unwrap();
    assert_eq!(
        daily.rows().count() as i64,
        1 + 3 * zhudai_server::partners::PERFORMANCE_DAYS,
        "three demo funders (one still applying) × 14 days"
    );
    // The export is audited.
    let page = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("partner.performance.export".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    app.stop().await;
}
