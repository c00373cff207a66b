//! Customers through the API: validation that names each field and stores nothing,
//! data scopes from the org tree, masking and audited reveal, duplicate flags that do not
//! leak out-of-scope customers, exact search through blind indexes, optimistic edits,
//! enterprise links, and no clear identifiers in the database.

use crate::support::TestApp;
use crate::users::{all_database_text, contains};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zhudai_domain::generate;
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    bad_input_names_fields_and_stores_nothing,
    scopes_masking_reveal_and_duplicates,
    search_edit_relations_and_history
);

const ID: &str = "11010519491231002X";
const PHONE: &str = "13912345678";

struct Api {
    app: TestApp,
    c: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .c
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(token, reqwest::Method::GET, path, None).await
    }
    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(token, reqwest::Method::POST, path, Some(body))
            .await
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn bad_input_names_fields_and_stores_nothing(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let api = Api {
        app,
        c: reqwest::Client::new(),
    };
    // The contract: a wrong check digit is a 422 naming `id_number`.
    let (s, p) = api
        .post(&cm, "/api/v1/customers", json!({"kind": "individual", "name": "张三", "id_number": "110105194912310021", "phone": PHONE}))
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(fields(&p), vec!["id_number"]);
    // Every bad field at once.
    let (s, p) = api
        .post(&cm, "/api/v1/customers", json!({"name": "", "id_number": ID, "phone": "1234", "bank_card": "6222020000000000001", "email": "x@", "monthly_income": "abc"}))
        .await;
    assert_eq!(s, 422);
    let f = fields(&p);
    for want in ["name", "phone", "bank_card", "email", "monthly_income"] {
        assert!(f.contains(&want.to_owned()), "{want} not in {f:?}");
    }
    // Wrong JSON types are field errors too.
    let (s, _) = api
        .post(
            &cm,
            "/api/v1/customers",
            json!({"name": 5, "id_number": ID}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        db.store.customer_count().await.unwrap(),
        0,
        "nothing stored"
    );
    let (s, body) = api
        .post(
            &cm,
            "/api/v1/customers",
            json!({"kind": "individual", "name": "张三", "id_number": ID, "phone": PHONE}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert!(body["id"].as_i64().unwrap() > 0);
    assert_eq!(db.store.customer_count().await.unwrap(), 1);
    api.app.stop().await;
    // The identifiers exist only encrypted (and as blind indexes).
    let text = all_database_text(db).await;
    assert!(!contains(&text, ID), "ID number stored in clear");
    assert!(!contains(&text, PHONE), "phone stored in clear");
}

async fn scopes_masking_reveal_and_duplicates(db: &TestDb) {
    let app = TestApp::start(db).await;
    let co = app.org_unit(None, "company", "co").await;
    let north = app.org_unit(Some(co), "branch", "north").await;
    let south = app.org_unit(Some(co), "branch", "south").await;
    let n1 = app.org_unit(Some(north), "team", "n1").await;
    let s1 = app.org_unit(Some(south), "team", "s1").await;
    let cm_a = app.token_in_unit("customer_manager", Some(n1)).await;
    let cm_b = app.token_in_unit("customer_manager", Some(n1)).await;
    let cm_south = app.token_in_unit("customer_manager", Some(s1)).await;
    let verifier_north = app.token_in_unit("doc_verifier", Some(n1)).await;
    let verifier_south = app.token_in_unit("doc_verifier", Some(s1)).await;
    let api = Api {
        app,
        c: reqwest::Client::new(),
    };
    let card = generate::unionpay_card(3);
    let (s, body) = api
        .post(&cm_a, "/api/v1/customers", json!({"name": "王小明", "id_number": ID, "phone": PHONE, "bank_card": card.as_str(), "monthly_income": "15000"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["duplicates"], json!([]));
    let path = format!("/api/v1/customers/{id}");

    // `own` scope: the creator sees it; a colleague in the same team does not.
    assert_eq!(api.get(&cm_a, "/api/v1/customers").await.1["total"], 1);
    assert_eq!(api.get(&cm_b, "/api/v1/customers").await.1["total"], 0);
    assert_eq!(api.get(&cm_b, &path).await.0, 403);
    // `branch` scope: the verifier of the same branch sees it, the other branch's does not.
    assert_eq!(api.get(&verifier_north, &path).await.0, 200);
    assert_eq!(api.get(&verifier_south, &path).await.0, 403);
    assert_eq!(
        api.get(&verifier_south, "/api/v1/customers").await.1["total"],
        0
    );
    // Data scopes are cached with each caller's access; a change to the org tree (plain
    // SQL here, as another instance would make it) decides the very next request.
    for (parent, south_sees) in [(south, 200), (north, 403)] {
        zhudai_store::sqlx::query("UPDATE org_units SET parent_id = $1 WHERE id = $2")
            .bind(parent)
            .bind(n1)
            .execute(db.store.writer())
            .await
            .unwrap();
        let team = format!("team n1 under {parent}");
        assert_eq!(
            api.get(&verifier_south, &path).await.0,
            south_sees,
            "{team}"
        );
        assert_eq!(api.get(&verifier_north, &path).await.0, 200, "{team}");
    }

    // Masking follows the role's clear fields: the manager sees the phone, the verifier the ID.
    let (_, c) = api.get(&cm_a, &path).await;
    assert_eq!(c["phone"], PHONE);
    assert_eq!(c["id_number"], "110***********002X");
    assert_eq!(c["monthly_income"], "***");
    assert_eq!(
        (
            c["gender"].as_str(),
            c["birth_date"].as_str(),
            c["age"].as_i64()
        ),
        (Some("female"), Some("1949-12-31"), Some(76))
    );
    assert_eq!(c["province"], "北京市");
    let (_, v) = api.get(&verifier_north, &path).await;
    assert_eq!(v["id_number"], ID);
    assert_ne!(v["phone"], PHONE);
    assert!(v["bank_card"]
        .as_str()
        .unwrap()
        .ends_with(&card.as_str()[card.as_str().len() - 4..]));
    let reads = db
        .store
        .audit_count(&AuditFilter {
            action_prefix: Some("field.read_clear".into()),
            target: Some(format!("customer:{id}")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(reads >= 2, "clear reads are audited ({reads})");

    // Reveal needs a reason and is audited with it.
    let (s, p) = api
        .post(
            &cm_a,
            &format!("{path}/reveal"),
            json!({"field": "id_number", "reason": ""}),
        )
        .await;
    assert_eq!((s.as_u16(), fields(&p)), (422, vec!["reason".to_owned()]));
    let (s, r) = api
        .post(
            &cm_a,
            &format!("{path}/reveal"),
            json!({"field": "id_number", "reason": "核对身份证原件"}),
        )
        .await;
    assert_eq!((s.as_u16(), r["value"].as_str()), (200, Some(ID)));
    let rec = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("field.reveal".into()),
                ..Default::default()
            },
            None,
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        rec.records[0].target.as_deref(),
        Some(format!("customer:{id}").as_str())
    );
    assert!(rec.records[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("核对身份证原件"));
    assert_eq!(
        api.post(
            &cm_b,
            &format!("{path}/reveal"),
            json!({"field": "phone", "reason": "just looking"})
        )
        .await
        .0,
        403
    );

    // Same ID number again inside the creator's scope: 409 pointing at the existing one.
    let (s, p) = api
        .post(
            &cm_a,
            "/api/v1/customers",
            json!({"name": "王小明", "id_number": ID}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains(&id.to_string()));
    // From another branch: created, flagged, and the other customer is not revealed.
    let (s, body) = api
        .post(
            &cm_south,
            "/api/v1/customers",
            json!({"name": "王晓明", "id_number": ID, "phone": PHONE}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let dup = body["duplicates"].as_array().unwrap();
    assert_eq!(dup.len(), 2, "{body}");
    for flag in dup {
        assert_eq!(flag["visible_ids"], json!([]));
        assert_eq!(flag["outside_scope"], 1);
    }
    // The northern verifier sees the original flagged with the southern one hidden.
    let (_, v) = api.get(&verifier_north, &path).await;
    assert_eq!(v["duplicate"], true);
    assert!(v["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["outside_scope"] == 1));
    assert!(!v.to_string().contains("王晓明"));
    api.app.stop().await;
}

async fn search_edit_relations_and_history(db: &TestDb) {
    let app = TestApp::start(db).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let api = Api {
        app,
        c: reqwest::Client::new(),
    };
    let legacy = "110105491231002"; // the 15-digit form of ID
    let (s, body) = api
        .post(
            &cm,
            "/api/v1/customers",
            json!({"name": "张三", "id_number": legacy, "phone": PHONE}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let person = body["id"].as_i64().unwrap();
    let other = generate::resident_id(9);
    let (s, _) = api
        .post(
            &cm,
            "/api/v1/customers",
            json!({"name": "李四", "id_number": other.as_str()}),
        )
        .await;
    assert_eq!(s, 201);
    // Exact ID search through the blind index, in either form.
    for q in [ID, legacy, "11010519491231002x"] {
        let (s, r) = api
            .get(&cm, &format!("/api/v1/customers?id_number={q}"))
            .await;
        assert_eq!(
            (s.as_u16(), r["total"].as_i64()),
            (200, Some(1)),
            "{q}: {r}"
        );
        assert_eq!(r["customers"][0]["id"], person);
    }
    assert_eq!(
        api.get(&cm, &format!("/api/v1/customers?phone={PHONE}"))
            .await
            .1["total"],
        1
    );
    assert_eq!(
        api.get(&cm, "/api/v1/customers?name=李").await.1["total"],
        1
    );
    assert_eq!(api.get(&cm, "/api/v1/customers?id_number=123").await.0, 422);
    assert_eq!(api.get(&cm, "/api/v1/customers?limit=0").await.0, 422);

    // Edits: optimistic version, full re-validation, nothing written on error.
    let path = format!("/api/v1/customers/{person}");
    let (s, p) = api
        .send(
            &cm,
            reqwest::Method::PATCH,
            &path,
            Some(json!({"version": 1, "phone": "99"})),
        )
        .await;
    assert_eq!((s.as_u16(), fields(&p)), (422, vec!["phone".to_owned()]));
    let (s, c) = api.send(&cm, reqwest::Method::PATCH, &path, Some(json!({"version": 1, "phone": "13800000000", "address": "上海市浦东新区世纪大道100号"}))).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["version"].as_i64(), c["phone"].as_str()),
        (Some(2), Some("13800000000"))
    );
    assert_eq!(c["address"], "上海市浦东新区世纪大道100号");
    let (s, _) = api
        .send(
            &cm,
            reqwest::Method::PATCH,
            &path,
            Some(json!({"version": 1, "name": "张三丰"})),
        )
        .await;
    assert_eq!(s, 409, "stale version");
    assert_eq!(
        api.get(&cm, &format!("/api/v1/customers?phone={PHONE}"))
            .await
            .1["total"],
        0,
        "old phone index gone"
    );

    // An enterprise with its legal representative.
    let uscc = generate::uscc(5);
    let (s, e) = api.post(&cm, "/api/v1/customers", json!({"kind": "enterprise", "name": "上海某某科技有限公司", "id_number": uscc.as_str()})).await;
    assert_eq!(s, 201, "{e}");
    let ent = e["id"].as_i64().unwrap();
    let (s, links) = api
        .post(
            &cm,
            &format!("/api/v1/customers/{ent}/relations"),
            json!({"person_id": person, "role": "legal_representative"}),
        )
        .await;
    assert_eq!(s, 201, "{links}");
    assert_eq!(links[0]["person_name"], "张三");
    let (s, p) = api
        .post(
            &cm,
            &format!("/api/v1/customers/{ent}/relations"),
            json!({"person_id": ent, "role": "boss", "share_bp": 20000}),
        )
        .await;
    assert_eq!(s, 422);
    let f = fields(&p);
    assert!(
        f.contains(&"role".into())
            && f.contains(&"share_bp".into())
            && f.contains(&"person_id".into()),
        "{f:?}"
    );
    assert_eq!(
        api.post(
            &cm,
            &format!("/api/v1/customers/{ent}/relations"),
            json!({"person_id": person, "role": "legal_representative"})
        )
        .await
        .0,
        409
    );
    let (_, detail) = api.get(&cm, &path).await;
    assert_eq!(
        detail["relations"][0]["enterprise_name"],
        "上海某某科技有限公司"
    );

    // History comes from the audit trail.
    let (s, h) = api.get(&cm, &format!("{path}/history")).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"customer.create") && actions.contains(&"customer.update"),
        "{actions:?}"
    );
    api.app.stop().await;
}
