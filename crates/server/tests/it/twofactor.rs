//! Two-factor enrolment and sign-in, and scoped API tokens.

use crate::support::{TestApp, PASSWORD};
use serde_json::{json, Value};
use zhudai_domain::clock::Clock;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    totp_enrol_login_and_replay,
    enforcement_blocks_until_enrolled,
    scoped_tokens,
    password_change
);

fn code_now(app: &TestApp, secret_b32: &str) -> String {
    let secret = zhudai_crypto::totp::TotpSecret::from_base32(secret_b32).unwrap();
    zhudai_crypto::totp::code_at(&secret, (app.clock.now().timestamp_millis() / 1000) as u64)
        .unwrap()
}

async fn totp_enrol_login_and_replay(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("approver_l1").await;
    let (t, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let e: Value = c
        .post(app.url("/api/v1/auth/totp/enrol"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(e["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = e["secret_base32"].as_str().unwrap().to_owned();
    let r = c
        .post(app.url("/api/v1/auth/totp/confirm"))
        .bearer_auth(&t)
        .json(&json!({"code": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = c
        .post(app.url("/api/v1/auth/totp/confirm"))
        .bearer_auth(&t)
        .json(&json!({"code": code_now(&app, &secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Re-enrolling (which would replace the factor) is refused.
    assert_eq!(
        c.post(app.url("/api/v1/auth/totp/enrol"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    // Next sign-in needs the code; the code used at enrolment cannot be replayed.
    let login = |totp: Option<String>| {
        let c = c.clone();
        let url = app.url("/api/v1/auth/login");
        let user = user.clone();
        async move {
            c.post(url)
                .json(&json!({"username": user, "password": PASSWORD, "totp": totp}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = login(None).await;
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("6-digit"));
    let r = login(Some(code_now(&app, &secret))).await;
    assert_eq!(r.status(), 401, "replayed code accepted");
    app.clock.advance_millis(30_000);
    let r = login(Some(code_now(&app, &secret))).await;
    assert_eq!(r.status(), 200);
    let r = login(Some(code_now(&app, &secret))).await;
    assert_eq!(r.status(), 401, "the same code twice");
    app.stop().await;
}

async fn enforcement_blocks_until_enrolled(db: &TestDb) {
    let mut settings = zhudai_server::ServerSettings {
        data_dir: db.data_dir(),
        ..Default::default()
    };
    settings.auth.enforce_2fa = true;
    let app = TestApp::start_enforcing(db, settings).await;
    let user = app.user_with_role("sysadmin").await; // sysadmin requires 2FA
    let (t, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let me: Value = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["needs_2fa_enrolment"], true);
    let r = c
        .get(app.url("/api/v1/users"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("two-factor"));
    let e: Value = c
        .post(app.url("/api/v1/auth/totp/enrol"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = code_now(&app, e["secret_base32"].as_str().unwrap());
    assert_eq!(
        c.post(app.url("/api/v1/auth/totp/confirm"))
            .bearer_auth(&t)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(app.url("/api/v1/users"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

async fn scoped_tokens(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("auditor").await;
    let (session, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let r = c.post(app.url("/api/v1/auth/tokens")).bearer_auth(&session)
        .json(&json!({"name": "export", "scopes": ["org.read", "user.manage"], "expires_in_days": 400})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scopes", "expires_in_days"]);
    let r = c
        .post(app.url("/api/v1/auth/tokens"))
        .bearer_auth(&session)
        .json(&json!({"name": "export", "scopes": ["org.read"], "expires_in_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("zd_"));
    // The token carries only its scope, though the auditor holds system.read.
    assert_eq!(
        c.get(app.url("/api/v1/org-units"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(app.url("/api/v1/system/jobs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.get(app.url("/api/v1/system/jobs"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Listed without its value; revocable; revoked means refused.
    let list: Value = c
        .get(app.url("/api/v1/auth/tokens"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "export");
    assert!(list[0].get("token").is_none());
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        c.delete(app.url(&format!("/api/v1/auth/tokens/{id}")))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(app.url("/api/v1/org-units"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Expiry.
    let r: Value = c
        .post(app.url("/api/v1/auth/tokens"))
        .bearer_auth(&session)
        .json(&json!({"name": "short", "scopes": ["org.read"], "expires_in_days": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let short = r["token"].as_str().unwrap().to_owned();
    assert_eq!(
        c.get(app.url("/api/v1/org-units"))
            .bearer_auth(&short)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.clock.advance_millis(86_400_001);
    assert_eq!(
        c.get(app.url("/api/v1/org-units"))
            .bearer_auth(&short)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}

async fn password_change(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("collector").await;
    let (t1, _) = app.login(&user).await;
    let (t2, _) = app.login(&user).await;
    let c = reqwest::Client::new();
    let r = c
        .post(app.url("/api/v1/auth/password"))
        .bearer_auth(&t1)
        .json(&json!({"current_password": "nope", "new_password": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "current_password");
    assert!(p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["field"] == "new_password"));
    let r = c
        .post(app.url("/api/v1/auth/password"))
        .bearer_auth(&t1)
        .json(&json!({"current_password": PASSWORD, "new_password": "Another-Strong-Pass-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // This session stays; the other one is signed out; the old password no longer works.
    assert_eq!(
        c.get(app.url("/api/v1/auth/me"))
            .bearer_auth(&t1)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(app.url("/api/v1/auth/me"))
            .bearer_auth(&t2)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}
