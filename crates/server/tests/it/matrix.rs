//! The role × route matrix: every route of the API (from the OpenAPI document) and of the
//! UI (from the policy table) is called without credentials and as every standard role;
//! the answer must match the route's policy and the role's permissions. A route without
//! a policy entry fails the test.

use crate::support::TestApp;
use zhudai_domain::access::SEED_ROLES;
use zhudai_server::auth::policy::{access_for, Access, POLICY};
use zhudai_store::testing::TestDb;

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{code}", "sysadmin")
        .replace("{module}", "admin")
        .replace("{file}", "app.css")
}

/// Every (method, route) the server serves: the OpenAPI document's operations plus the
/// policy table's UI routes.
async fn all_routes(app: &TestApp) -> Vec<(String, String)> {
    let doc: serde_json::Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    for (m, r, _) in POLICY {
        if !r.starts_with("/api/v1/") && !matches!(*r, "/healthz" | "/readyz" | "/metrics") {
            routes.push((m.to_string(), r.to_string()));
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

/// Routes that have no policy: the list must be empty.
pub fn unguarded(routes: &[(String, String)]) -> Vec<String> {
    routes
        .iter()
        .filter(|(m, r)| access_for(&m.parse().unwrap(), r).is_none())
        .map(|(m, r)| format!("{m} {r}"))
        .collect()
}

#[test]
fn a_route_without_policy_is_reported() {
    let routes = vec![
        ("GET".to_owned(), "/api/v1/org-units".to_owned()),
        ("POST".to_owned(), "/api/v1/brand-new".to_owned()),
    ];
    assert_eq!(unguarded(&routes), ["POST /api/v1/brand-new"]);
}

zhudai_store::on_both!(every_route_for_every_role);

async fn every_route_for_every_role(db: &TestDb) {
    let app = TestApp::start(db).await;
    let routes = all_routes(&app).await;
    assert!(routes.len() > 20);
    assert_eq!(
        unguarded(&routes),
        Vec::<String>::new(),
        "routes without an access policy"
    );
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut failures = Vec::new();
    // Without credentials.
    for (m, r) in &routes {
        let access = access_for(&m.parse().unwrap(), r).unwrap();
        let resp = c
            .request(m.parse().unwrap(), app.url(&concrete(r)))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        let ok = match access {
            Access::Public => s != 401 && s != 403,
            _ if !r.starts_with("/api/") && m == "GET" => s == 303,
            _ => s == 401,
        };
        if !ok {
            failures.push(format!("anonymous {m} {r}: {s} ({access:?})"));
        }
    }
    // As each role, with a fresh session per call (so logout routes do not end the test).
    let users: Vec<(String, String)> = {
        let mut v = Vec::new();
        for role in SEED_ROLES {
            v.push((role.code.to_owned(), app.user_with_role(role.code).await));
        }
        v
    };
    for (role, username) in &users {
        let perms = SEED_ROLES
            .iter()
            .find(|r| r.code == role)
            .unwrap()
            .permissions;
        for (m, r) in &routes {
            let access = access_for(&m.parse().unwrap(), r).unwrap();
            let (token, _) = app.login(username).await;
            let resp = c
                .request(m.parse().unwrap(), app.url(&concrete(r)))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let s = resp.status().as_u16();
            let allowed = match access {
                Access::Public | Access::SignedIn => true,
                Access::Permission(p) => perms.contains(&p),
            };
            let ok = if allowed {
                s != 401 && s != 403
            } else {
                s == 403
            };
            if !ok {
                failures.push(format!(
                    "{role} {m} {r}: {s}, expected {}",
                    if allowed { "allowed" } else { "403" }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} matrix failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}
