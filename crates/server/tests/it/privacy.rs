//! PIPL through the API: consents (record, withdraw, has_consent) and data-subject
//! requests (deadlines, access export, deletion refused under legal holds, otherwise
//! crypto-shredded with the blobs gone).

use crate::documents::{customer_for, member, upload, world, ID_NUMBER, PNG};
use crate::support::TestApp;
use chrono::TimeZone;
use serde_json::{json, Value};
use std::io::Read;
use zhudai_server::vault::{FieldAad, VaultError};
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    consents_are_recorded_and_withdrawn,
    requests_have_deadlines_and_exports,
    deletion_honours_holds_then_shreds
);

async fn consents_are_recorded_and_withdrawn(db: &TestDb) {
    let app = TestApp::start(db).await;
    let w = world(&app).await;
    let c = reqwest::Client::new();
    let url = app.url(&format!("/api/v1/customers/{}/consents", w.customer_id));
    let r = c
        .post(&url)
        .bearer_auth(&w.manager)
        .json(&json!({"purpose": "funder_sharing", "recipients": ["bank_a"], "policy_version": "2026.1", "channel": "app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let consent: Value = r.json().await.unwrap();
    assert_eq!(consent["active"], true);
    let now = app.state.now_ms();
    let store = app.state.store();
    use zhudai_server::customer_docs::has_consent;
    assert!(
        has_consent(store, w.customer_id, "funder_sharing", Some("bank_a"), now)
            .await
            .unwrap()
    );
    assert!(
        !has_consent(store, w.customer_id, "funder_sharing", Some("bank_b"), now)
            .await
            .unwrap()
    );
    assert!(!has_consent(store, w.customer_id, "marketing", None, now)
        .await
        .unwrap());
    // Invalid input names every bad field and stores nothing.
    let r = c
        .post(&url)
        .bearer_auth(&w.manager)
        .json(&json!({"purpose": "Bad Purpose", "channel": "fax", "evidence_document_id": 999}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    for f in [
        "purpose",
        "policy_version",
        "channel",
        "evidence_document_id",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f}: {fields:?}");
    }
    assert_eq!(
        store
            .consents_of_customer(w.customer_id)
            .await
            .unwrap()
            .len(),
        1
    );
    // A verifier cannot record consents.
    let r = c
        .post(&url)
        .bearer_auth(&w.verifier)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Withdrawal a minute later: in force before, not after.
    app.clock.advance_millis(60_000);
    let wurl = app.url(&format!(
        "/api/v1/customers/{}/consents/{}/withdraw",
        w.customer_id, consent["id"]
    ));
    let r = c
        .post(&wurl)
        .bearer_auth(&w.manager)
        .json(&json!({"channel": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["active"].as_bool(), v["withdrawn_channel"].as_str()),
        (Some(false), Some("phone"))
    );
    let later = app.state.now_ms();
    assert!(
        has_consent(store, w.customer_id, "funder_sharing", Some("bank_a"), now)
            .await
            .unwrap()
    );
    assert!(!has_consent(
        store,
        w.customer_id,
        "funder_sharing",
        Some("bank_a"),
        later
    )
    .await
    .unwrap());
    let r = c
        .post(&wurl)
        .bearer_auth(&w.manager)
        .json(&json!({"channel": "app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "already withdrawn");
    let list: Value = c
        .get(&url)
        .bearer_auth(&w.verifier)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["consents"][0]["withdrawn_channel"], "phone");
    app.stop().await;
}

async fn request(
    app: &TestApp,
    token: &str,
    customer: i64,
    kind: &str,
    details: Option<&str>,
) -> Value {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/privacy/requests"))
        .bearer_auth(token)
        .json(&json!({"customer_id": customer, "kind": kind, "channel": "web", "details": details}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn act(app: &TestApp, token: &str, id: i64, action: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(&format!("/api/v1/privacy/requests/{id}/{action}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn requests_have_deadlines_and_exports(db: &TestDb) {
    let app = TestApp::start(db).await;
    let w = world(&app).await;
    let (officer, _) = member(&app, "compliance", None, "co1").await;
    let c = reqwest::Client::new();
    upload(
        &app,
        &w.manager,
        w.customer_id,
        "front.png",
        PNG.to_vec(),
        &[("doc_type", "id_front"), ("declared_name", "张三")],
    )
    .await;
    let access = request(&app, &w.manager, w.customer_id, "access", None).await;
    // Received 2026-11-29; 15 calendar days.
    assert_eq!(
        (access["received_on"].as_str(), access["due_on"].as_str()),
        (Some("2026-11-29"), Some("2026-12-14"))
    );
    assert_eq!(
        (access["overdue"].as_bool(), access["days_left"].as_i64()),
        (Some(false), Some(15))
    );
    let corr = request(
        &app,
        &w.manager,
        w.customer_id,
        "correction",
        Some("地址改为北京市朝阳区某路1号"),
    )
    .await;
    assert_eq!(corr["details"], "地址改为北京市朝阳区某路1号");
    assert_eq!(
        corr["customer_edit_url"],
        format!("/customers/{}/edit", w.customer_id)
    );
    // A correction without details is refused.
    let r = c
        .post(app.url("/api/v1/privacy/requests"))
        .bearer_auth(&w.manager)
        .json(&json!({"customer_id": w.customer_id, "kind": "correction", "channel": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // The customer manager records but cannot list or handle.
    assert_eq!(
        c.get(app.url("/api/v1/privacy/requests"))
            .bearer_auth(&w.manager)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        act(
            &app,
            &w.manager,
            access["id"].as_i64().unwrap(),
            "start",
            json!({})
        )
        .await
        .status(),
        403
    );

    // The access export: a ZIP with the data decrypted and the document's bytes.
    let aid = access["id"].as_i64().unwrap();
    assert_eq!(
        act(&app, &officer, aid, "start", json!({})).await.status(),
        200
    );
    let r = c
        .get(app.url(&format!("/api/v1/privacy/requests/{aid}/export")))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut person = String::new();
    zip.by_name("customer.json")
        .unwrap()
        .read_to_string(&mut person)
        .unwrap();
    let person: Value = serde_json::from_str(&person).unwrap();
    assert_eq!(person["id_number"], ID_NUMBER, "decrypted in the export");
    assert_eq!(person["name"], "张三");
    let mut png = Vec::new();
    zip.by_name("documents/id_front-v1.png")
        .unwrap()
        .read_to_end(&mut png)
        .unwrap();
    assert_eq!(png, PNG);
    assert_eq!(
        act(
            &app,
            &officer,
            aid,
            "complete",
            json!({"resolution": "sent by post"})
        )
        .await
        .status(),
        200
    );
    // Once completed, no more exports, no more transitions.
    let r = c
        .get(app.url(&format!("/api/v1/privacy/requests/{aid}/export")))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        act(&app, &officer, aid, "start", json!({})).await.status(),
        409
    );
    // Refusing needs a reason.
    let cid = corr["id"].as_i64().unwrap();
    let r = act(&app, &officer, cid, "refuse", json!({})).await;
    assert_eq!(r.status(), 422);

    // Sixteen days later the open correction is overdue; the completed access is not.
    app.clock.set(
        chrono::Utc
            .with_ymd_and_hms(2026, 12, 15, 2, 0, 0)
            .single()
            .unwrap(),
    );
    let (officer, _) = app.login("co1").await; // the old session timed out
    let list: Value = c
        .get(app.url("/api/v1/privacy/requests"))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["overdue"], 1);
    let by_id = |id: i64| {
        list["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            by_id(cid)["overdue"].as_bool(),
            by_id(cid)["days_left"].as_i64()
        ),
        (Some(true), Some(-1))
    );
    assert_eq!(by_id(aid)["overdue"], false);
    let open: Value = c
        .get(app.url("/api/v1/privacy/requests?open=true"))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["requests"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn deletion_honours_holds_then_shreds(db: &TestDb) {
    let app = TestApp::start(db).await;
    let w = world(&app).await;
    let (officer, _) = member(&app, "compliance", None, "co2").await;
    let store = app.state.store();

    // 1. A customer under a legal hold: refused with the reason, nothing erased.
    let (held, held_ref) = customer_for(
        &app,
        w.manager_id,
        Some(w.branch),
        "赵六",
        "1970-01-01",
        Some("2030-01-01"),
    )
    .await;
    let r = request(&app, &w.manager, held, "deletion", None).await;
    let resp = act(
        &app,
        &officer,
        r["id"].as_i64().unwrap(),
        "complete",
        json!({}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "refused");
    assert!(
        v["resolution"].as_str().unwrap().contains("2030-01-01"),
        "{v}"
    );
    let row = store.customer_get(held).await.unwrap().unwrap();
    assert_eq!(row.status, "active");
    let plain = app
        .state
        .vault()
        .decrypt_field(
            Some(&format!("customer:{held_ref}")),
            &FieldAad::new("customers", "id_number", &held_ref),
            row.id_number_enc.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(plain.as_str(), ID_NUMBER, "still readable");

    // 2. A customer with an AML-retained document (ID card): refused too.
    let up = upload(
        &app,
        &w.manager,
        w.customer_id,
        "front.png",
        PNG.to_vec(),
        &[("doc_type", "id_front")],
    )
    .await;
    assert_eq!(up.status(), 201);
    let r = request(&app, &w.manager, w.customer_id, "deletion", None).await;
    let v: Value = act(
        &app,
        &officer,
        r["id"].as_i64().unwrap(),
        "complete",
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["status"], "refused");
    assert!(v["resolution"].as_str().unwrap().contains("AML"), "{v}");
    assert!(
        std::fs::read_dir(db.data_dir().join("blobs/documents"))
            .unwrap()
            .next()
            .is_some(),
        "the held document stays"
    );

    // 3. No hold: a customer with only standard-retention documents and a consent.
    let (free, free_ref) = customer_for(
        &app,
        w.manager_id,
        Some(w.branch),
        "钱七",
        "1992-02-02",
        None,
    )
    .await;
    let d1: Value = upload(
        &app,
        &w.manager,
        free,
        "income.png",
        PNG.to_vec(),
        &[("doc_type", "income_proof")],
    )
    .await
    .json()
    .await
    .unwrap();
    let d2: Value = upload(
        &app,
        &w.manager,
        free,
        "report.png",
        PNG.to_vec(),
        &[("doc_type", "credit_report")],
    )
    .await
    .json()
    .await
    .unwrap();
    let blob_keys: Vec<String> = store
        .documents_of_customer(free)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.blob_key)
        .collect();
    assert_eq!(blob_keys.len(), 2);
    for k in &blob_keys {
        assert!(db.data_dir().join("blobs").join(k).exists());
    }
    let before = store.customer_get(free).await.unwrap().unwrap();
    let doc_before = store
        .document_get(d1["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    let sealed_before =
        std::fs::read(db.data_dir().join("blobs").join(&doc_before.blob_key)).unwrap();
    let r = request(
        &app,
        &w.manager,
        free,
        "deletion",
        Some("请删除我的全部信息"),
    )
    .await;
    let rid = r["id"].as_i64().unwrap();
    assert_eq!(
        act(&app, &officer, rid, "start", json!({})).await.status(),
        200
    );
    let resp = act(
        &app,
        &officer,
        rid,
        "complete",
        json!({"resolution": "confirmed by phone"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert!(
        v["resolution"].as_str().unwrap().contains("2 document"),
        "{v}"
    );
    assert_eq!(
        v["details"],
        Value::Null,
        "the request's details were shredded with the customer"
    );
    // The row is cleared, the blobs are gone, and old ciphertexts no longer decrypt.
    let after = store.customer_get(free).await.unwrap().unwrap();
    assert_eq!(after.status, "erased");
    assert!(after.id_number_enc.is_none() && after.birth_date.is_none());
    for k in &blob_keys {
        assert!(!db.data_dir().join("blobs").join(k).exists(), "{k} deleted");
    }
    let subject = format!("customer:{free_ref}");
    let e = app
        .state
        .vault()
        .decrypt_field(
            Some(&subject),
            &FieldAad::new("customers", "id_number", &free_ref),
            before.id_number_enc.as_ref().unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::Shredded { .. }), "{e:?}");
    let e = app
        .state
        .vault()
        .decrypt_bytes(
            Some(&subject),
            &FieldAad::new("customer_documents", "content", &doc_before.ref_),
            &sealed_before,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, VaultError::Shredded { .. }),
        "a copy of the blob (a backup) is unreadable: {e:?}"
    );
    let c = reqwest::Client::new();
    let r = c
        .get(app.url(&format!(
            "/api/v1/customers/{free}/documents/{}/content",
            d2["id"]
        )))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nothing more can be uploaded for an erased customer.
    let r = upload(
        &app,
        &w.manager,
        free,
        "x.png",
        PNG.to_vec(),
        &[("doc_type", "other")],
    )
    .await;
    assert_eq!(r.status(), 409);
    // The audit trail records the erasure and the refusals.
    let audit = store
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                action_prefix: Some("privacy.deletion".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap();
    let actions: Vec<_> = audit.records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "privacy.deletion.refused")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "privacy.deletion.completed")
            .count(),
        1
    );
    // The chain still verifies.
    assert!(store.audit_verify(&[]).await.unwrap().is_ok());
    app.stop().await;
}
