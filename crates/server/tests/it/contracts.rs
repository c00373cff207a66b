//! Contracts and disbursement (issue #6) over HTTP on both databases: an application
//! reaches the contract step; operations generates the contract (PDF with the borrower's
//! name and ID number and the frozen disclosure figures, read back with pdftotext; hash
//! stored; encrypted at rest), records three signatures (completion refused before);
//! the funder's signed `disbursed` callback opens the loan once (repeats answer the first
//! result) and the application ends at `loan`; the simulated funder disburses by itself
//! through its job; templates are versioned and checked.

use crate::documents::{upload, PNG};
use crate::support::TestApp;
use serde_json::{json, Value};
use zhudai_server::routing::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    a_contract_is_generated_signed_and_disbursed_by_callback,
    the_simulated_funder_disburses_after_signing,
    templates_are_versioned_and_checked
);

const KEY: &str = "bank-a-callback-key-0123456789abcdef";

pub struct Journey {
    pub app: TestApp,
    pub client: reqwest::Client,
    pub cm: String,
    pub ops: String,
    pub id: i64,
    pub app_ref: String,
    pub customer: i64,
    pub id_number: String,
}

impl Journey {
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.app.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub async fn application(&self) -> Value {
        self.get(&self.cm, &format!("/api/v1/applications/{}", self.id))
            .await
            .1
    }

    pub async fn callback(&self, body: &Value, key: &str) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let ts = self.app.state.now_ms();
        let r = self
            .client
            .post(self.app.url("/api/v1/funder-callbacks/bank_a"))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(key.as_bytes(), ts, &bytes))
            .body(bytes)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

/// A demo company whose funder `bank_a` approves at once and holds a callback key; an
/// application of 30,000 yuan for 12 months carried to the contract step.
pub async fn to_contract_step(db: &TestDb) -> Journey {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    zhudai_server::contracts::ensure_default_template(app.state.store(), 1)
        .await
        .unwrap();
    let co = app.org_unit(None, "company", "t-co").await;
    let branch = app.org_unit(Some(co), "branch", "t-br").await;
    let cm = app.token_in_unit("customer_manager", Some(branch)).await;
    let verifier = app.token_in_unit("doc_verifier", Some(branch)).await;
    let l1 = app.token_in_unit("approver_l1", Some(branch)).await;
    let ops = app.token_in_unit("operations", Some(branch)).await;
    let fm = app.token_in_unit("funding_manager", None).await;
    let client = reqwest::Client::new();
    let mut j = Journey {
        app,
        client,
        cm,
        ops,
        id: 0,
        app_ref: String::new(),
        customer: 0,
        id_number: String::new(),
    };
    let r = j
        .client
        .patch(j.app.url("/api/v1/partners/bank_a"))
        .bearer_auth(&fm)
        .json(&json!({"hmac_key": KEY, "sim_approval_bp": 10000, "sim_latency_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let id_number = zhudai_domain::ident::ResidentId::from_body("11010519850101002").unwrap();
    j.id_number = id_number.as_str().to_owned();
    let (s, cust) = j
        .post(
            &j.cm,
            "/api/v1/customers",
            json!({"name": "王五", "id_number": id_number.as_str(), "phone": "13912345670"}),
        )
        .await;
    assert_eq!(s, 201, "{cust}");
    j.customer = cust["id"].as_i64().unwrap();
    let (s, a) = j
        .post(
            &j.cm,
            "/api/v1/applications",
            json!({"customer_id": j.customer, "product_code": "consumer_std", "amount": "30000", "months": 12, "purpose": "家庭装修"}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    j.id = a["id"].as_i64().unwrap();
    let act = format!("/api/v1/applications/{}/actions", j.id);
    assert_eq!(
        j.post(&j.cm, &act, json!({"action": "submit"})).await.0,
        200
    );
    for (kind, extra) in [
        (
            "id_front",
            vec![
                ("declared_name", "王五"),
                ("declared_id_number", id_number.as_str()),
            ],
        ),
        ("id_back", vec![("expiry_date", "2036-01-01")]),
        ("income_proof", vec![]),
        ("credit_report", vec![]),
    ] {
        let mut fields = vec![("doc_type", kind)];
        fields.extend(extra);
        let r = upload(&j.app, &j.cm, j.customer, "scan.png", PNG.to_vec(), &fields).await;
        assert_eq!(r.status(), 201);
        let doc = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let (s, _) = j
            .post(
                &verifier,
                &format!(
                    "/api/v1/customers/{}/documents/{doc}/verification",
                    j.customer
                ),
                json!({"decision": "verified"}),
            )
            .await;
        assert_eq!(s, 200);
    }
    assert_eq!(
        j.post(&verifier, &act, json!({"action": "approve"}))
            .await
            .0,
        200
    );
    let (s, r) = j.post(&l1, &act, json!({"action": "approve"})).await;
    assert_eq!(s, 200, "{r}");
    // The answer says where the application is after the simulated funder decided.
    assert_eq!(r["node"], "contract", "{r}");
    let d = j.application().await;
    assert_eq!(
        (d["node"].as_str(), d["status"].as_str()),
        (Some("contract"), Some("approved")),
        "bank_a approves everything now: {d}"
    );
    j.app_ref = db.store.application(j.id).await.unwrap().unwrap().ref_;
    j
}

fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils): run scripts/install-deps.sh");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn thousands(yuan: &str) -> String {
    let (int, dec) = yuan.split_once('.').unwrap();
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}.{dec}")
}

/// Generates and fully signs the contract; returns its view.
pub async fn generate_and_sign(j: &Journey) -> Value {
    let (s, c) = j
        .post(
            &j.ops,
            &format!("/api/v1/applications/{}/contract", j.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let cid = c["id"].as_i64().unwrap();
    let sig = format!("/api/v1/contracts/{cid}/signatures");
    for body in [
        json!({"party": "borrower", "method": "click_through"}),
        json!({"party": "funder", "method": "e_signature", "provider_ref": "ESIGN-1", "evidence_sha256": "ab".repeat(32)}),
        json!({"party": "company", "method": "wet_ink", "evidence_sha256": "cd".repeat(32)}),
    ] {
        let (s, v) = j.post(&j.ops, &sig, body).await;
        assert_eq!(s, 201, "{v}");
    }
    let (_, v) = j
        .get(&j.ops, &format!("/api/v1/applications/{}/contract", j.id))
        .await;
    v["contract"].clone()
}

async fn a_contract_is_generated_signed_and_disbursed_by_callback(db: &TestDb) {
    let j = to_contract_step(db).await;
    let act = format!("/api/v1/applications/{}/actions", j.id);
    // Completing the step before any contract: refused.
    let (s, r) = j.post(&j.ops, &act, json!({"action": "complete"})).await;
    assert_eq!(s, 409, "{r}");
    // The customer manager may not generate; operations does.
    let gen = format!("/api/v1/applications/{}/contract", j.id);
    assert_eq!(j.post(&j.cm, &gen, json!({})).await.0, 403);
    let (s, c) = j.post(&j.ops, &gen, json!({})).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["template_code"], "personal_loan");
    assert_eq!(c["missing"], json!(["borrower", "funder", "company"]));
    let cid = c["id"].as_i64().unwrap();

    // The frozen disclosure equals a quote priced the same day (the products' own path).
    let (s, q) = j
        .post(
            &j.cm,
            "/api/v1/quotes",
            json!({"product_code": "consumer_std", "amount": "30000", "months": 12, "method": "equal_installment"}),
        )
        .await;
    assert_eq!(s, 201, "{q}");
    let disclosure = &c["snapshot"]["quote"]["disclosure"];
    assert_eq!(disclosure, &q["snapshot"]["disclosure"]);
    assert_eq!(c["apr"], q["snapshot"]["apr"]);
    // The stored snapshot masks the ID number.
    let stored_id = c["snapshot"]["values"]["borrower.id_number"]
        .as_str()
        .unwrap();
    assert_ne!(stored_id, j.id_number);
    assert!(stored_id.contains('*'), "{stored_id}");

    // The PDF: its hash is the stored one; its text has the Chinese and the figures.
    let resp = j
        .client
        .get(j.app.url(&format!("/api/v1/contracts/{cid}/pdf")))
        .bearer_auth(&j.ops)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let pdf = resp.bytes().await.unwrap().to_vec();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&pdf)),
        c["pdf_sha256"].as_str().unwrap()
    );
    let text = pdftotext(&pdf);
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let total = thousands(disclosure["total_repayment"].as_str().unwrap());
    let interest = thousands(disclosure["total_interest"].as_str().unwrap());
    let apr = disclosure["apr"].as_str().unwrap();
    for needle in [
        "个人借款合同",
        "王五",
        j.id_number.as_str(),
        "综合融资成本明示表",
        "还款计划表",
        "人民币叁万元整",
        "甲城市商业银行股份有限公司",
        "家庭装修",
        c["contract_no"].as_str().unwrap(),
        &total,
        &interest,
        apr,
    ] {
        assert!(
            flat.contains(needle),
            "`{needle}` is not in the PDF:\n{text}"
        );
    }
    // At rest the blob is ciphertext.
    let key = db.store.contract(cid).await.unwrap().unwrap().pdf_blob_key;
    let on_disk = std::fs::read(db.data_dir().join("blobs").join(&key)).unwrap();
    assert!(!on_disk.starts_with(b"%PDF"));
    // The clear read of the ID number and the generation are in the audit trail.
    let records = db
        .store
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                target: Some(format!("customer:{}", j.customer)),
                action_prefix: Some("field.read_clear".into()),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap()
        .records;
    assert!(
        records.iter().any(|r| r
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("printed in contract")),
        "{records:?}"
    );

    // Signatures: checked, one per party; completing before all three is refused.
    let sig = format!("/api/v1/contracts/{cid}/signatures");
    let (s, v) = j
        .post(
            &j.ops,
            &sig,
            json!({"party": "borrower", "method": "click_through"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["signatures"][0]["signer_name"], "王五");
    assert_eq!(
        v["signatures"][0]["evidence_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        j.post(
            &j.ops,
            &sig,
            json!({"party": "borrower", "method": "click_through"})
        )
        .await
        .0,
        409
    );
    let (s, v) = j
        .post(
            &j.ops,
            &sig,
            json!({"party": "funder", "method": "e_signature"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"provider_ref") && fields.contains(&"evidence_sha256"),
        "{fields:?}"
    );
    let (s, r) = j.post(&j.ops, &act, json!({"action": "complete"})).await;
    assert_eq!(s, 409, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("funder"), "{r}");
    let (s, _) = j
        .post(
            &j.ops,
            &sig,
            json!({"party": "funder", "method": "e_signature", "provider_ref": "ESIGN-1", "evidence_sha256": "AB".repeat(32)}),
        )
        .await;
    assert_eq!(s, 201);
    // A partly signed contract cannot be replaced.
    assert_eq!(j.post(&j.ops, &gen, json!({})).await.0, 409);
    let (s, v) = j
        .post(
            &j.ops,
            &sig,
            json!({"party": "company", "method": "wet_ink", "evidence_sha256": "cd".repeat(32), "signer_name": "授权代表 李四"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "signed");
    assert!(v["signed_at_ms"].as_i64().is_some());

    // Complete: on to disbursement (the simulated-funder job is scheduled too).
    let (s, r) = j.post(&j.ops, &act, json!({"action": "complete"})).await;
    assert_eq!((s, r["node"].as_str()), (200, Some("disbursement")), "{r}");

    // The funder's disbursement callback: signature, amount and date checked.
    let body = json!({"message": "disbursed", "application_ref": j.app_ref, "amount": "30000.00", "disbursed_on": "2026-11-29", "funder_loan_ref": "BA-LN-0001"});
    assert_eq!(
        j.callback(&body, "wrong-key-wrong-key-wrong-key-000")
            .await
            .0,
        401
    );
    let mut wrong = body.clone();
    wrong["amount"] = json!("29000.00");
    let (s, v) = j.callback(&wrong, KEY).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"][0]["field"], "amount");
    assert_eq!(
        j.application().await["node"],
        "disbursement",
        "nothing changed"
    );
    let (s, first) = j.callback(&body, KEY).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    let loan = first["loan_id"].as_i64().unwrap();
    // A repeat answers the first result; another reference for the same application is refused.
    let (s, again) = j.callback(&body, KEY).await;
    assert_eq!(
        (s, again["duplicate"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    assert_eq!(again["loan_id"], first["loan_id"]);
    assert_eq!(again["disbursement_id"], first["disbursement_id"]);
    let mut other = body.clone();
    other["funder_loan_ref"] = json!("BA-LN-0002");
    assert_eq!(j.callback(&other, KEY).await.0, 409);

    let d = j.application().await;
    assert_eq!(
        (d["node"].as_str(), d["status"].as_str()),
        (Some("loan"), Some("disbursed")),
        "{d}"
    );
    let (s, info) = j
        .get(&j.cm, &format!("/api/v1/applications/{}/contract", j.id))
        .await;
    assert_eq!(s, 200);
    assert_eq!(info["disbursement"]["loan_id"], loan);
    assert_eq!(info["disbursement"]["source"], "callback");
    assert_eq!(info["contract"]["status"], "signed");
    // The loan exists with its schedule of 12 installments.
    let (s, l) = j.get(&j.ops, &format!("/api/v1/loans/{loan}")).await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["schedule"].as_array().unwrap().len(), 12);
    assert_eq!(l["principal"], "30000.00");
    assert_eq!(l["funder_loan_ref"], "BA-LN-0001");
    // The simulated funder's job finds the work done and changes nothing.
    let mut ran = 0;
    while let Some(job) = db
        .store
        .claim("default", "t", j.app.state.now_ms() + 60_000, 60_000)
        .await
        .unwrap()
    {
        if job.kind == zhudai_server::contracts::SIM_DISBURSE_JOB {
            zhudai_server::contracts::run_sim_disburse_job(j.app.state.clone(), job)
                .await
                .unwrap();
            ran += 1;
        }
    }
    assert_eq!(
        ran, 1,
        "the simulated disbursement was scheduled on completion"
    );
    assert_eq!(
        db.store
            .disbursement_of(j.id)
            .await
            .unwrap()
            .unwrap()
            .funder_loan_ref,
        "BA-LN-0001"
    );
    j.app.stop().await;
}

async fn the_simulated_funder_disburses_after_signing(db: &TestDb) {
    let j = to_contract_step(db).await;
    let c = generate_and_sign(&j).await;
    assert_eq!(c["status"], "signed");
    let act = format!("/api/v1/applications/{}/actions", j.id);
    let (s, r) = j.post(&j.ops, &act, json!({"action": "complete"})).await;
    assert_eq!(s, 200, "{r}");
    // The worker runs the simulated funder's job (twice: it is idempotent).
    let job = db
        .store
        .claim("default", "t", j.app.state.now_ms() + 60_000, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.kind, zhudai_server::contracts::SIM_DISBURSE_JOB);
    zhudai_server::contracts::run_sim_disburse_job(j.app.state.clone(), job.clone())
        .await
        .unwrap();
    zhudai_server::contracts::run_sim_disburse_job(j.app.state.clone(), job)
        .await
        .unwrap();
    let d = j.application().await;
    assert_eq!(
        (d["node"].as_str(), d["status"].as_str()),
        (Some("loan"), Some("disbursed"))
    );
    let disb = db.store.disbursement_of(j.id).await.unwrap().unwrap();
    assert_eq!(disb.source, "simulated");
    assert_eq!(disb.amount_fen, 3_000_000);
    let (s, l) = j
        .get(&j.ops, &format!("/api/v1/loans/{}", disb.loan_id.unwrap()))
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["schedule"].as_array().unwrap().len(), 12);
    j.app.stop().await;
}

async fn templates_are_versioned_and_checked(db: &TestDb) {
    let app = TestApp::start(db).await;
    zhudai_server::contracts::ensure_default_template(app.state.store(), 1)
        .await
        .unwrap();
    zhudai_server::contracts::ensure_default_template(app.state.store(), 2)
        .await
        .unwrap();
    let pm = app.token_in_unit("product_manager", None).await;
    let ops = app.token_in_unit("operations", None).await;
    let c = reqwest::Client::new();
    let post = |token: &str, body: Value| {
        let req = c
            .post(app.url("/api/v1/contract-templates"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let list: Value = c
        .get(app.url("/api/v1/contract-templates"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "installed once: {list}");
    assert_eq!(list[0]["version"], 1);
    let v1 = list[0]["body"].as_str().unwrap().to_owned();
    // Only template managers save.
    assert_eq!(
        post(
            &ops,
            json!({"code": "personal_loan", "name": "x", "body": v1})
        )
        .await
        .0,
        403
    );
    // A bad template: each problem with its line, and a suggestion.
    let (s, p) = post(
        &pm,
        json!({"code": "personal_loan", "name": "个人借款合同", "body": "# 合同\n借款人：{{borrower.nmae}}\n"}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    let messages: Vec<String> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("line 2") && m.contains("{{borrower.name}}")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("{{table:disclosure}}")),
        "{messages:?}"
    );
    // A good edit is version 2; version 1 is unchanged.
    let edited = v1.replace("第五条 提前还款", "第五条 提前还款（无违约金）");
    let (s, t) = post(
        &pm,
        json!({"code": "personal_loan", "name": "个人借款合同", "body": edited}),
    )
    .await;
    assert_eq!((s, t["version"].as_i64()), (201, Some(2)), "{t}");
    let old: Value = c
        .get(app.url("/api/v1/contract-templates/personal_loan/versions/1"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(old["body"].as_str().unwrap(), v1);
    // The database refuses to change a version.
    let r = zhudai_store::sqlx::query("UPDATE contract_templates SET body = 'x' WHERE version = 1")
        .execute(db.store.writer())
        .await;
    assert!(r.is_err(), "versions are immutable");
    // The sample preview is a PDF with the edit.
    let r = c
        .get(app.url("/api/v1/contract-templates/personal_loan/versions/2/preview"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = pdftotext(&r.bytes().await.unwrap());
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        flat.contains("提前还款（无违约金）") && flat.contains("张三（示例）"),
        "{text}"
    );
    app.stop().await;
}
