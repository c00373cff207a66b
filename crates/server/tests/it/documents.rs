//! Customer documents through the API: encrypted upload and download, content sniffing,
//! size limit, versions, four-eyes verification, cross-checks and completeness.

use crate::support::{cheap_argon, TestApp, PASSWORD};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use zhudai_server::vault::FieldAad;
use zhudai_store::customers::{customer_insert, CustomerValues};
use zhudai_store::meta::NewOrgUnit;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    upload_download_round_trip_and_versions,
    content_type_and_size_are_checked,
    four_eyes_verification_cross_checks_and_status
);

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

pub const ID_NUMBER: &str = "11010519491231002X";

/// People and a customer for document tests: a branch, a customer manager who owns the
/// customer, and users of other roles in the same branch (so branch-scoped roles see
/// the customer).
pub struct World {
    pub branch: i64,
    pub customer_id: i64,
    /// Bearer tokens.
    pub manager: String,
    pub manager_id: i64,
    pub verifier: String,
    pub verifier_id: i64,
}

/// Creates a user of `role` in `unit` and signs them in; (token, user id).
pub async fn member(app: &TestApp, role: &str, unit: Option<i64>, name: &str) -> (String, i64) {
    member_of(app, &[role], unit, name).await
}

/// Like [`member`], holding several roles.
pub async fn member_of(
    app: &TestApp,
    roles: &[&str],
    unit: Option<i64>,
    name: &str,
) -> (String, i64) {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let id = zhudai_server::auth::users::create_user(
        app.state.store(),
        app.state.vault(),
        &zhudai_server::auth::users::UserSpec {
            username: name,
            display_name: name,
            password: PASSWORD,
            roles: &roles,
            org_unit_id: unit,
            must_change_password: false,
            phone: None,
            id_number: None,
        },
        &cheap_argon(),
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let (token, _) = app.login(name).await;
    (token, id)
}

/// Inserts a customer owned by `owner` in `unit`, its ID number encrypted under its own
/// subject key (as the customer API will).
pub async fn customer_for(
    app: &TestApp,
    owner: i64,
    unit: Option<i64>,
    name: &str,
    birth: &str,
    legal_hold_until: Option<&str>,
) -> (i64, String) {
    let r = uuid::Uuid::new_v4().to_string();
    let subject = format!("customer:{r}");
    let enc = app
        .state
        .vault()
        .encrypt_field(
            Some(&subject),
            &FieldAad::new("customers", "id_number", &r),
            ID_NUMBER,
        )
        .await
        .unwrap();
    let store = app.state.store();
    let mut tx = store.begin().await.unwrap();
    let id = customer_insert(
        &mut *tx,
        &CustomerValues {
            ref_: r.clone(),
            kind: "individual".into(),
            name: name.into(),
            id_kind: "resident".into(),
            id_number_enc: Some(enc),
            birth_date: Some(birth.into()),
            owner_user_id: owner,
            org_unit_id: unit,
            created_by: Some(owner),
            ..Default::default()
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    if let Some(hold) = legal_hold_until {
        zhudai_store::customers::customer_set_status(
            store.writer(),
            id,
            "active",
            Some(hold),
            app.state.now_ms(),
        )
        .await
        .unwrap();
    }
    (id, r)
}

pub async fn world(app: &TestApp) -> World {
    let branch = app
        .state
        .store()
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "branch",
                code: "bj",
                name_zh: "北京分公司",
                name_en: "Beijing",
            },
            1,
        )
        .await
        .unwrap();
    let (manager, manager_id) = member(app, "customer_manager", Some(branch), "cm1").await;
    let (verifier, verifier_id) = member(app, "doc_verifier", Some(branch), "dv1").await;
    let (customer_id, _) =
        customer_for(app, manager_id, Some(branch), "张三", "1990-03-07", None).await;
    World {
        branch,
        customer_id,
        manager,
        manager_id,
        verifier,
        verifier_id,
    }
}

pub async fn upload(
    app: &TestApp,
    token: &str,
    customer: i64,
    file_name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    reqwest::Client::new()
        .post(app.url(&format!("/api/v1/customers/{customer}/documents")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn upload_download_round_trip_and_versions(db: &TestDb) {
    let app = TestApp::start(db).await;
    let w = world(&app).await;
    let c = reqwest::Client::new();
    // A 300 KiB "PDF" with varied bytes.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..300 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let r = upload(
        &app,
        &w.manager,
        w.customer_id,
        "收入证明.pdf",
        pdf.clone(),
        &[("doc_type", "income_proof")],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let v1: Value = r.json().await.unwrap();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["content_type"], "application/pdf");
    assert_eq!(v1["size_bytes"], pdf.len());
    assert_eq!(v1["retention_class"], "standard_3y");
    assert_eq!(v1["retain_until"], "2029-11-29");
    assert_eq!(v1["original_name"], "收入证明.pdf");
    assert_eq!(v1["status"], "pending");
    // The hash is SHA-256 of the plaintext, checked independently with sha256sum.
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &pdf).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(tmp.path())
        .output()
        .unwrap();
    let expected = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        v1["sha256"].as_str().unwrap(),
        expected.split_whitespace().next().unwrap()
    );

    // On disk: one blob, not containing the plaintext (encrypted), not the PDF header.
    let blobs = files_under(&db.data_dir().join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let sealed = std::fs::read(&blobs[0]).unwrap();
    assert!(!sealed.windows(8).any(|w| w == b"%PDF-1.7"));
    assert!(!sealed.windows(64).any(|x| x == &pdf[1000..1064]));

    // Download = the same bytes, with the detected type; audited.
    let id1 = v1["id"].as_i64().unwrap();
    let r = c
        .get(app.url(&format!(
            "/api/v1/customers/{}/documents/{id1}/content",
            w.customer_id
        )))
        .bearer_auth(&w.verifier)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("income_proof-v1.pdf"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), pdf.as_slice());
    let audit = app
        .state
        .store()
        .audit_search(
            &zhudai_store::audit::AuditFilter {
                action_prefix: Some("document.".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .await
        .unwrap();
    let actions: Vec<_> = audit.records.iter().map(|r| r.action.as_str()).collect();
    assert!(
        actions.contains(&"document.upload") && actions.contains(&"document.download"),
        "{actions:?}"
    );

    // A second upload of the same type is version 2; version 1 is kept.
    let r = upload(
        &app,
        &w.manager,
        w.customer_id,
        "p.png",
        PNG.to_vec(),
        &[("doc_type", "income_proof")],
    )
    .await;
    assert_eq!(r.status(), 201);
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["version"], 2);
    let list: Value = c
        .get(app.url(&format!("/api/v1/customers/{}/documents", w.customer_id)))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let docs = list["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        (docs[0]["version"].as_i64(), docs[0]["current"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(
        (docs[1]["version"].as_i64(), docs[1]["current"].as_bool()),
        (Some(2), Some(true))
    );
    let old = c
        .get(app.url(&format!(
            "/api/v1/customers/{}/documents/{id1}/content",
            w.customer_id
        )))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.bytes().await.unwrap().as_ref(),
        pdf.as_slice(),
        "old versions stay readable"
    );

    // Scope: a customer manager who does not own the customer sees nothing.
    let (other_cm, _) = member(&app, "customer_manager", Some(w.branch), "cm2").await;
    let r = c
        .get(app.url(&format!("/api/v1/customers/{}/documents", w.customer_id)))
        .bearer_auth(&other_cm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "outside the data scope");
    let r = upload(
        &app,
        &other_cm,
        w.customer_id,
        "p.png",
        PNG.to_vec(),
        &[("doc_type", "other")],
    )
    .await;
    assert_eq!(r.status(), 403, "outside the data scope");
    // A document id of another customer is not reachable through this one.
    let (c2, _) = customer_for(
        &app,
        w.manager_id,
        Some(w.branch),
        "李四",
        "1980-01-01",
        None,
    )
    .await;
    let r = c
        .get(app.url(&format!("/api/v1/customers/{c2}/documents/{id1}/content")))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn content_type_and_size_are_checked(db: &TestDb) {
    let settings = zhudai_server::ServerSettings {
        data_dir: db.data_dir(),
        document_max_bytes: 64 * 1024,
        ..Default::default()
    };
    let app = TestApp::start_with(db, settings).await;
    let w = world(&app).await;
    let exe = {
        let mut b = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
        b.extend([0u8; 200]);
        b
    };
    for (name, bytes, code) in [
        ("scan.pdf", exe.clone(), "unsupported_type"),
        ("scan.exe", exe, "unsupported_type"),
        (
            "notes.txt",
            b"just some text, not a document".to_vec(),
            "unsupported_type",
        ),
        ("photo.pdf", PNG.to_vec(), "type_mismatch"),
        ("photo.png", Vec::new(), "empty"),
    ] {
        let r = upload(
            &app,
            &w.manager,
            w.customer_id,
            name,
            bytes,
            &[("doc_type", "other")],
        )
        .await;
        assert_eq!(r.status(), 422, "{name}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "file", "{name}: {p}");
        assert_eq!(p["errors"][0]["code"], code, "{name}: {p}");
    }
    // Bad metadata names each field.
    let r = upload(
        &app,
        &w.manager,
        w.customer_id,
        "a.png",
        PNG.to_vec(),
        &[
            ("doc_type", "id_back"),
            ("declared_id_number", "110105194912310021"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"expiry_date".to_owned())
            && fields.contains(&"declared_id_number".to_owned()),
        "{fields:?}"
    );
    // Over the limit (64 KiB here; far above the 2 MiB body limit in the next test).
    let mut big = PNG.to_vec();
    big.extend(vec![0u8; 70 * 1024]);
    let r = upload(
        &app,
        &w.manager,
        w.customer_id,
        "big.png",
        big,
        &[("doc_type", "other")],
    )
    .await;
    assert_eq!(r.status(), 413);
    // Nothing was stored by any refused upload.
    assert!(app
        .state
        .store()
        .documents_of_customer(w.customer_id)
        .await
        .unwrap()
        .is_empty());
    assert!(files_under(&db.data_dir().join("blobs")).is_empty());
    // Not multipart at all.
    let r = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/customers/{}/documents", w.customer_id)))
        .bearer_auth(&w.manager)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    app.stop().await;

    // Default settings: a 3 MiB document passes although body_limit_bytes is 2 MiB,
    // and a 3 MiB JSON body elsewhere is still refused.
    let app = TestApp::start(db).await;
    let w2_branch = w.branch;
    let (cm, cm_id) = member(&app, "customer_manager", Some(w2_branch), "cm3").await;
    let (cust, _) = customer_for(&app, cm_id, Some(w2_branch), "王五", "1985-05-05", None).await;
    let mut big = b"%PDF-1.4\n".to_vec();
    big.extend(vec![7u8; 3 * 1024 * 1024]);
    let r = upload(
        &app,
        &cm,
        cust,
        "big.pdf",
        big,
        &[("doc_type", "bank_statement")],
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/tokens"))
        .bearer_auth(&cm)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(3 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    app.stop().await;
}

async fn four_eyes_verification_cross_checks_and_status(db: &TestDb) {
    let app = TestApp::start(db).await;
    let w = world(&app).await;
    let c = reqwest::Client::new();
    let front = upload(
        &app,
        &w.manager,
        w.customer_id,
        "front.png",
        PNG.to_vec(),
        &[
            ("doc_type", "id_front"),
            ("declared_name", "张三"),
            ("declared_id_number", ID_NUMBER),
        ],
    )
    .await;
    assert_eq!(front.status(), 201);
    let front: Value = front.json().await.unwrap();
    // The customer manager sees the declared ID number masked.
    assert_eq!(front["declared_id_number"], "110***********002X");
    // The ID card's back expired yesterday (clock: 2026-11-29).
    let back: Value = upload(
        &app,
        &w.manager,
        w.customer_id,
        "back.png",
        PNG.to_vec(),
        &[
            ("doc_type", "id_back"),
            ("expiry_date", "2026-11-28"),
            ("declared_name", "张三"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let status_url = format!(
        "/api/v1/customers/{}/documents/status?required=id_front,id_back,income_proof",
        w.customer_id
    );
    let st: Value = c
        .get(app.url(&status_url))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["complete"], false);
    let missing: Vec<(String, String)> = st["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["doc_type"].as_str().unwrap().to_owned(),
                m["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        missing,
        vec![
            ("id_front".to_owned(), "pending".to_owned()),
            ("id_back".to_owned(), "pending".to_owned()),
            ("income_proof".to_owned(), "missing".to_owned()),
        ]
    );
    let codes: Vec<&str> = st["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"expired"), "{codes:?}");
    assert!(
        codes.contains(&"name_consistent")
            && codes.contains(&"id_consistent")
            && codes.contains(&"age_ok"),
        "{codes:?}"
    );
    let st: Value = c
        .get(app.url(&format!("{status_url}&min_age=40")))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        st["checks"].to_string().contains("age_out_of_range"),
        "36 < 40"
    );
    let r = c
        .get(app.url(&format!("{status_url},passport")))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // The queue shows the pending versions with their checks to the verifier.
    let q: Value = c
        .get(app.url("/api/v1/documents/pending"))
        .bearer_auth(&w.verifier)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["pending"].as_array().unwrap().len(), 2);
    assert_eq!(q["pending"][0]["own_upload"], false);
    assert!(q["pending"][0]["checks"].to_string().contains("expired"));

    let verify = |doc: i64, token: String, body: Value| {
        let c = c.clone();
        let url = app.url(&format!(
            "/api/v1/customers/{}/documents/{doc}/verification",
            w.customer_id
        ));
        async move {
            c.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let front_id = front["id"].as_i64().unwrap();
    let back_id = back["id"].as_i64().unwrap();
    // Four eyes: someone who may both upload and verify (two roles) may not verify
    // their own upload.
    let (own, own_id) = member_of(
        &app,
        &["customer_manager", "doc_verifier"],
        Some(w.branch),
        "dv2",
    )
    .await;
    let up: Value = upload(
        &app,
        &own,
        w.customer_id,
        "i.png",
        PNG.to_vec(),
        &[("doc_type", "income_proof")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(up["uploaded_by"], own_id);
    let r = verify(
        up["id"].as_i64().unwrap(),
        own.clone(),
        json!({"decision": "verified"}),
    )
    .await;
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    assert_eq!(
        app.state
            .store()
            .document_get(up["id"].as_i64().unwrap())
            .await
            .unwrap()
            .unwrap()
            .status,
        "pending"
    );
    // Reasons are required to reject or ask for more.
    let r = verify(back_id, w.verifier.clone(), json!({"decision": "rejected"})).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "note");
    // The customer manager lacks document.verify.
    let r = verify(front_id, w.manager.clone(), json!({"decision": "verified"})).await;
    assert_eq!(r.status(), 403);
    // Someone else verifies and decides.
    let r = verify(
        front_id,
        w.verifier.clone(),
        json!({"decision": "verified"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["verified_by"].as_i64()),
        (Some("verified"), Some(w.verifier_id))
    );
    // The verifier role sees the declared ID number in clear.
    assert_eq!(v["declared_id_number"], ID_NUMBER);
    let r = verify(
        back_id,
        w.verifier.clone(),
        json!({"decision": "needs_more", "note": "证件已过期，请上传新证件"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Deciding again is a conflict.
    let r = verify(
        front_id,
        w.verifier.clone(),
        json!({"decision": "rejected", "note": "x"}),
    )
    .await;
    assert_eq!(r.status(), 409);
    // The decision history keeps the checks the verifier saw.
    let detail: Value = c
        .get(app.url(&format!(
            "/api/v1/customers/{}/documents/{back_id}",
            w.customer_id
        )))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["verifications"][0]["decision"], "needs_more");
    assert!(detail["verifications"][0]["checks"]
        .to_string()
        .contains("expired"));

    // A new back (version 2), verified by someone else: id_front and id_back complete.
    let back2: Value = upload(
        &app,
        &w.manager,
        w.customer_id,
        "back2.png",
        PNG.to_vec(),
        &[("doc_type", "id_back"), ("expiry_date", "2036-11-28")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(back2["version"], 2);
    assert_eq!(
        verify(
            back2["id"].as_i64().unwrap(),
            w.verifier.clone(),
            json!({"decision": "verified"})
        )
        .await
        .status(),
        200
    );
    let st: Value = c
        .get(app.url(&format!(
            "/api/v1/customers/{}/documents/status?required=id_front,id_back",
            w.customer_id
        )))
        .bearer_auth(&w.manager)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["complete"], true, "{st}");
    assert!(
        !st["checks"].to_string().contains("\"expired\""),
        "the expired version is superseded: {st}"
    );
    app.stop().await;
}

/// Signs a browser in through the login form.
async fn browser_sign_in(browser: &fantoccini::Client, app: &TestApp, username: &str) {
    crate::browser::sign_in_with(browser, app, username, PASSWORD).await;
}

/// In a real browser: a customer manager uploads a PNG on the customer's documents page;
/// a document verifier finds it in the queue with its cross-checks and verifies it; the
/// customer manager then sees it verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_upload_then_verify_by_another_person() {
    use crate::browser::{screenshot, Driver};
    use fantoccini::Locator;
    let db = TestDb::sqlite().await.unwrap();
    let app = TestApp::start(&db).await;
    let w = world(&app).await;
    let _ = (&w.manager, &w.verifier); // API tokens unused: the browser signs in itself
    let driver = Driver::start().await;
    let browser = driver.browser(&db.dir.path().join("chrome-profile")).await;

    browser_sign_in(&browser, &app, "cm1").await;
    let page = app.url(&format!("/customers/{}/documents", w.customer_id));
    browser.goto(&page).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=upload-form]"))
        .await
        .unwrap();
    let file = db.dir.path().join("身份证正面.png");
    std::fs::write(&file, PNG).unwrap();
    browser
        .find(Locator::Css("select[name=doc_type]"))
        .await
        .unwrap()
        .select_by_value("id_front")
        .await
        .unwrap();
    browser
        .find(Locator::Css("input[name=declared_name]"))
        .await
        .unwrap()
        .send_keys("张三")
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=upload-file]"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    browser
        .find(Locator::Css("[data-testid=upload-submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ok = browser
        .wait()
        .for_element(Locator::Css("[data-testid=flash-ok]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ok.contains("id_front v1"), "{ok}");
    let row = browser
        .find(Locator::Css("tr[data-doc-type=id_front]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("image/png") && row.contains("待核验"), "{row}");
    screenshot(&browser, "documents-uploaded").await;
    // The stored content is the file, byte for byte.
    let docs = app
        .state
        .store()
        .documents_of_customer(w.customer_id)
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].uploaded_by, Some(w.manager_id));

    // The verifier signs in, sees the item with its checks, and verifies it.
    browser.delete_all_cookies().await.unwrap();
    browser_sign_in(&browser, &app, "dv1").await;
    browser.goto(&app.url("/documents/verify")).await.unwrap();
    let item = browser
        .wait()
        .for_element(Locator::Css("[data-testid=queue-item]"))
        .await
        .unwrap();
    let text = item.text().await.unwrap();
    assert!(text.contains("张三") && text.contains("姓名一致"), "{text}");
    screenshot(&browser, "documents-verify-queue").await;
    browser
        .find(Locator::Css("[data-testid=verify-submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=flash-ok]"))
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("[data-testid=queue-empty]"))
        .await
        .unwrap();
    let d = app
        .state
        .store()
        .document_get(docs[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status.as_str(), d.verified_by),
        ("verified", Some(w.verifier_id))
    );

    // Back as the customer manager: the document shows as verified.
    browser.delete_all_cookies().await.unwrap();
    browser_sign_in(&browser, &app, "cm1").await;
    browser.goto(&page).await.unwrap();
    let status = browser
        .wait()
        .for_element(Locator::Css(
            "tr[data-doc-type=id_front] [data-testid=doc-status]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "已核验");
    browser.close().await.unwrap();
    app.stop().await;
    db.close().await;
}
