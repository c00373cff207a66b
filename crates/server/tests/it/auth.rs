//! Authentication end to end: login, bearer and cookie use, lockout, CSRF, expiry, audit.

use crate::support::{TestApp, PASSWORD};
use serde_json::{json, Value};
use zhudai_store::audit::AuditFilter;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    login_bearer_cookie_and_logout,
    lockout_after_repeated_failures,
    csrf_expiry_and_forgery,
    bad_input_writes_only_audit,
    separation_of_duties_on_user_creation,
    access_changes_take_effect_on_the_next_request
);

async fn audit_count(db: &TestDb, action: &str) -> i64 {
    db.store
        .audit_count(&AuditFilter {
            action_prefix: Some(action.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn login_bearer_cookie_and_logout(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("customer_manager").await;
    let (token, _csrf) = app.login(&user).await;
    let c = reqwest::Client::new();
    let me: Value = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], user);
    assert_eq!(me["roles"], json!(["customer_manager"]));
    assert_eq!(me["data_scope"], "own");
    assert!(me["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("customer.create")));
    // Permission enforced: a customer manager may not list users.
    let r = c
        .get(app.url("/api/v1/system/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The cookie session of a browser works the same.
    app.sign_in("customer_manager").await;
    assert_eq!(app.get("/api/v1/auth/me").await.status(), 200);
    // Logout revokes the session.
    let r = c
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    assert!(audit_count(db, "auth.login").await >= 2);
    assert_eq!(audit_count(db, "auth.logout").await, 1);
    app.stop().await;
}

async fn lockout_after_repeated_failures(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("collector").await;
    let c = reqwest::Client::new();
    for _ in 0..4 {
        let r = c
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": user, "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["detail"], "the username or password is wrong");
    }
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("locked"));
    // Locked: even the right password is refused until the lock expires.
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.clock.advance_millis(16 * 60 * 1000);
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An unknown user gets the same answer as a wrong password.
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "nobody", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "the username or password is wrong"
    );
    app.stop().await;
}

async fn csrf_expiry_and_forgery(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("executive").await;
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = jar
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A cookie-authenticated write without the CSRF token is refused and changes nothing.
    let r = jar
        .post(app.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("CSRF"));
    assert_eq!(
        jar.get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "session survived"
    );
    let r = jar
        .post(app.url("/api/v1/auth/logout"))
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = jar
        .post(app.url("/api/v1/auth/logout-all"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        jar.get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A forged cookie or token is refused.
    let c = reqwest::Client::new();
    let r = c
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", "zhudai_session=zd_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth("zd_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // An idle session expires.
    let (token, _) = app.login(&user).await;
    app.clock.advance_millis(31 * 60 * 1000);
    let r = c
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("expired"));
    app.stop().await;
}

async fn bad_input_writes_only_audit(db: &TestDb) {
    let app = TestApp::start(db).await;
    let c = reqwest::Client::new();
    let sessions_before = db.store.audit_head().await.unwrap().seq;
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "password");
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "", "password": ""}))
        .send()
        .await
        .unwrap();
    let p: Value = r.json().await.unwrap();
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["username", "password"]);
    let r = c
        .post(app.url("/api/v1/auth/login"))
        .body(vec![b'{'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Nothing but audit records of the attempts was written: no user, no session.
    assert_eq!(
        db.store
            .user_list(&zhudai_store::identity::UserQuery {
                text: None,
                offset: 0,
                limit: 10
            })
            .await
            .unwrap()
            .total,
        0
    );
    assert!(db.store.audit_head().await.unwrap().seq > sessions_before);
    app.stop().await;
}

async fn separation_of_duties_on_user_creation(db: &TestDb) {
    let app = TestApp::start(db).await;
    let err = zhudai_server::auth::users::create_user(
        &db.store,
        app.state.vault(),
        &zhudai_server::auth::users::UserSpec {
            username: "both",
            display_name: "both",
            password: PASSWORD,
            roles: &["sysadmin".to_owned(), "auditor".to_owned()],
            org_unit_id: None,
            must_change_password: false,
            phone: None,
            id_number: None,
        },
        &crate::support::cheap_argon(),
        1,
    )
    .await
    .unwrap_err();
    assert!(err.iter().any(|e| e.code == "sod.admin_audit"), "{err:?}");
    let err = zhudai_server::auth::users::create_user(
        &db.store,
        app.state.vault(),
        &zhudai_server::auth::users::UserSpec {
            username: "x",
            display_name: "x",
            password: "short",
            roles: &["nope".to_owned()],
            org_unit_id: None,
            must_change_password: false,
            phone: Some("12345"),
            id_number: Some("110105194912310021"),
        },
        &crate::support::cheap_argon(),
        1,
    )
    .await
    .unwrap_err();
    let fields: std::collections::BTreeSet<_> = err.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields.into_iter().collect::<Vec<_>>(),
        ["id_number", "password", "phone", "roles", "username"],
        "{err:?}"
    );
    assert!(err.iter().any(|e| e.message.contains("`nope`")));
    assert_eq!(
        db.store
            .user_list(&zhudai_store::identity::UserQuery {
                text: None,
                offset: 0,
                limit: 10
            })
            .await
            .unwrap()
            .total,
        0
    );
    app.stop().await;
}

/// Roles and permissions are cached per user under the database's access stamp; a
/// change made anywhere (here: plain SQL, as another server instance would) must decide
/// the very next request: a removed permission, a restored one, a locked account.
async fn access_changes_take_effect_on_the_next_request(db: &TestDb) {
    let app = TestApp::start(db).await;
    let user = app.user_with_role("customer_manager").await;
    let (token, _) = app.login(&user).await;
    let client = reqwest::Client::new();
    let get = || async {
        client
            .get(app.url("/api/v1/customers"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get().await, 200);
    assert_eq!(get().await, 200, "served from the cache");
    let role_id: i64 =
        zhudai_store::sqlx::query_scalar("SELECT id FROM roles WHERE code = 'customer_manager'")
            .fetch_one(db.store.reader())
            .await
            .unwrap();
    let stamp = db.store.access_stamp().await.unwrap();
    zhudai_store::sqlx::query(
        "DELETE FROM role_permissions WHERE role_id = $1 AND permission = 'customer.read'",
    )
    .bind(role_id)
    .execute(db.store.writer())
    .await
    .unwrap();
    assert!(
        db.store.access_stamp().await.unwrap() > stamp,
        "the trigger bumps the stamp"
    );
    assert_eq!(get().await, 403, "the removed permission no longer admits");
    zhudai_store::sqlx::query(
        "INSERT INTO role_permissions (role_id, permission) VALUES ($1, 'customer.read')",
    )
    .bind(role_id)
    .execute(db.store.writer())
    .await
    .unwrap();
    assert_eq!(get().await, 200, "the restored permission admits again");
    zhudai_store::sqlx::query("UPDATE users SET status = 'locked' WHERE username = $1")
        .bind(&user)
        .execute(db.store.writer())
        .await
        .unwrap();
    assert_eq!(get().await, 401, "a locked account is refused at once");
}
