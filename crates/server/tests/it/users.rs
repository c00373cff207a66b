//! Users with personal fields: encrypted at rest, masked on read, revealed only with a
//! reason (rate-limited, audited); nothing in clear in the database or the logs.

use crate::support::TestApp;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    personal_fields_are_encrypted_masked_and_revealed_with_audit,
    user_admin_rules
);

const PHONE: &str = "13912345678";
const ID: &str = "11010519491231002X";

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);
impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) async fn all_database_text(db: &TestDb) -> Vec<u8> {
    match db.store.backend() {
        zhudai_store::Backend::Sqlite => {
            db.store.close().await; // flush the WAL into the file
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(db.dir.path()).unwrap() {
                let p = entry.unwrap().path();
                if p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("zhudai.db")
                {
                    bytes.extend(std::fs::read(p).unwrap());
                }
            }
            bytes
        }
        zhudai_store::Backend::Postgres => {
            use zhudai_store::sqlx::Row;
            let tables = zhudai_store::sqlx::query("SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(db.store.reader())
                .await
                .unwrap();
            let mut text = Vec::new();
            for t in tables {
                let name: String = t.try_get(0).unwrap();
                let rows = zhudai_store::sqlx::query(&format!(
                    "SELECT row_to_json(x)::text AS j FROM {name} x"
                ))
                .fetch_all(db.store.reader())
                .await
                .unwrap();
                for r in rows {
                    text.extend(r.try_get::<String, _>("j").unwrap().into_bytes());
                }
            }
            text
        }
    }
}

pub(crate) fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn personal_fields_are_encrypted_masked_and_revealed_with_audit(db: &TestDb) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .try_init();
    let app = TestApp::start(db).await;
    let admin = app.user_with_role("sysadmin").await;
    let (admin_token, _) = app.login(&admin).await;
    let c = reqwest::Client::new();
    let r = c
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin_token)
        .json(&json!({"username": "li.na", "display_name": "李娜", "password": "Qiang-Mima-2026", "roles": ["customer_manager"], "phone": PHONE, "id_number": ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // Masked for the administrator, whose role does not see personal fields in clear.
    let u: Value = c
        .get(app.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["phone"], "139****5678");
    assert_eq!(u["id_number"], "110***********002X");
    // Exact search by phone goes through the blind index.
    let found: Value = c
        .get(app.url(&format!("/api/v1/users?phone=+86 {PHONE}")))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["users"][0]["username"], "li.na");
    // The administrator may not reveal (no `user.reveal`); the auditor may, with a reason.
    let r = c
        .post(app.url(&format!("/api/v1/users/{id}/reveal")))
        .bearer_auth(&admin_token)
        .json(&json!({"field": "phone", "reason": "check"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let auditor = app.user_with_role("auditor").await;
    let (aud_token, _) = app.login(&auditor).await;
    let r = c
        .post(app.url(&format!("/api/v1/users/{id}/reveal")))
        .bearer_auth(&aud_token)
        .json(&json!({"field": "phone", "reason": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["field"],
        "reason"
    );
    let r = c
        .post(app.url(&format!("/api/v1/users/{id}/reveal")))
        .bearer_auth(&aud_token)
        .json(&json!({"field": "id_number", "reason": "spot check #12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["value"], ID);
    let page = db
        .store
        .audit_search(
            &AuditFilter {
                action_prefix: Some("field.reveal".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let rec = page
        .records
        .iter()
        .find(|r| r.outcome == "success")
        .expect("a successful reveal record");
    assert_eq!(rec.actor.as_deref(), Some(auditor.as_str()));
    assert_eq!(rec.reason.as_deref(), Some("spot check #12"));
    assert_eq!(
        rec.target.as_deref(),
        Some(format!("user:{id}.id_number").as_str())
    );
    // Rate limit: the policy allows 30 an hour.
    for _ in 0..29 {
        let r = c
            .post(app.url(&format!("/api/v1/users/{id}/reveal")))
            .bearer_auth(&aud_token)
            .json(&json!({"field": "phone", "reason": "bulk check"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .post(app.url(&format!("/api/v1/users/{id}/reveal")))
        .bearer_auth(&aud_token)
        .json(&json!({"field": "phone", "reason": "one more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    app.stop().await;
    // Nowhere in clear: not in the database, not in the logs.
    let everything = all_database_text(db).await;
    // Positive control: the scan does see plain columns such as the username.
    assert!(
        contains(&everything, "li.na"),
        "the database scan found nothing; it proves nothing"
    );
    for secret in [PHONE, ID] {
        assert!(
            !contains(&everything, secret),
            "{secret} found in clear in the {} database",
            db.store.backend().name()
        );
    }
    let log_text = logs.0.lock().unwrap().clone();
    assert!(!log_text.is_empty(), "the log capture saw nothing");
    assert!(
        !contains(&log_text, PHONE) && !contains(&log_text, ID),
        "a sensitive value reached the logs"
    );
}

async fn user_admin_rules(db: &TestDb) {
    let app = TestApp::start(db).await;
    let admin = app.user_with_role("sysadmin").await;
    let (t, _) = app.login(&admin).await;
    let c = reqwest::Client::new();
    // Field-level errors, nothing stored.
    let r = c.post(app.url("/api/v1/users")).bearer_auth(&t)
        .json(&json!({"username": "x", "display_name": "", "password": "weak", "roles": ["auditor", "security_officer"], "phone": "123", "id_number": "110105194912310021"}))
        .send().await.unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    let fields: std::collections::BTreeSet<String> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    for f in [
        "username",
        "display_name",
        "password",
        "roles",
        "phone",
        "id_number",
    ] {
        assert!(fields.contains(f), "{f} missing from {p}");
    }
    assert!(p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "sod.security_audit"));
    // An administrator cannot change their own roles.
    let me: Value = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .patch(app.url(&format!("/api/v1/users/{}", me["user_id"])))
        .bearer_auth(&t)
        .json(&json!({"roles": ["sysadmin", "auditor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Disabling a user ends their sessions.
    let victim = app.user_with_role("collector").await;
    let (vt, _) = app.login(&victim).await;
    let vid = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&vt)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["user_id"]
        .clone();
    let r = c
        .patch(app.url(&format!("/api/v1/users/{vid}")))
        .bearer_auth(&t)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.get(app.url("/api/v1/auth/me"))
            .bearer_auth(&vt)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Roles: a role cannot be given powers that break separation of duties.
    let r = c.put(app.url("/api/v1/roles/collector")).bearer_auth(&t)
        .json(&json!({"name_zh": "催收专员", "name_en": "Collector", "data_scope": "own", "requires_2fa": false, "permissions": ["user.manage", "audit.read"], "clear_fields": []}))
        .send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = c.put(app.url("/api/v1/roles/collector")).bearer_auth(&t)
        .json(&json!({"name_zh": "催收专员", "name_en": "Collector", "data_scope": "team", "requires_2fa": false, "permissions": ["collection.read", "collection.work", "loan.read"], "clear_fields": ["customer.phone"]}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let roles: Value = c
        .get(app.url("/api/v1/roles"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let collector = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "collector")
        .unwrap();
    assert_eq!(collector["data_scope"], "team");
    assert_eq!(collector["permissions"].as_array().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_edited_through_the_form() {
    let db = TestDb::sqlite().await.unwrap();
    let app = TestApp::start(&db).await;
    let admin = app.user_with_role("sysadmin").await;
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login: Value = jar
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": admin, "password": crate::support::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let page = jar
        .get(app.url("/admin/roles/collector"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="permission" value="collection.work""#));
    let form = [
        ("_csrf", csrf.as_str()),
        ("name_zh", "催收专员"),
        ("name_en", "Collector"),
        ("data_scope", "team"),
        ("permission", "collection.read"),
        ("permission", "loan.read"),
        ("clear_field", "customer.phone"),
    ];
    let r = jar
        .post(app.url("/admin/roles/collector"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let role = db.store.role_by_code("collector").await.unwrap().unwrap();
    assert_eq!(role.data_scope.as_str(), "team");
    assert_eq!(
        db.store.role_permissions(role.id).await.unwrap(),
        ["collection.read", "loan.read"]
    );
    // A combination breaking separation of duties comes back with the reason, unchanged.
    let bad = [
        ("_csrf", csrf.as_str()),
        ("name_zh", "x"),
        ("name_en", "x"),
        ("data_scope", "own"),
        ("permission", "user.manage"),
        ("permission", "audit.read"),
    ];
    let r = jar
        .post(app.url("/admin/roles/collector"))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("separation of duties"));
    assert_eq!(
        db.store.role_permissions(role.id).await.unwrap(),
        ["collection.read", "loan.read"]
    );
    // Without the CSRF token the form is refused.
    let r = jar
        .post(app.url("/admin/roles/collector"))
        .form(&form[1..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
    db.close().await;
}
