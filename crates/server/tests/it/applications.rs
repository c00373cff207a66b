//! An application carried through the origination workflow over HTTP: created on an
//! active product for a customer in scope, checked against the product's ranges and age,
//! submitted by its manager, held at document review until every required material is
//! verified by someone else, then approved at one level (30,000 yuan) — with the
//! submitter and a second approval refused — and on to funder routing.

use crate::documents::{upload, PNG};
use crate::support::TestApp;
use serde_json::{json, Value};
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    an_application_goes_from_draft_to_routing,
    demo_applications_fill_the_verifiers_list
);

async fn an_application_goes_from_draft_to_routing(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let co = app.org_unit(None, "company", "t-co").await;
    let branch = app.org_unit(Some(co), "branch", "t-br").await;
    let team = app.org_unit(Some(branch), "team", "t-team").await;
    let cm = app.token_in_unit("customer_manager", Some(team)).await;
    let verifier = app.token_in_unit("doc_verifier", Some(branch)).await;
    let l1 = app.token_in_unit("approver_l1", Some(branch)).await;
    let l1b = app.token_in_unit("approver_l1", Some(branch)).await;
    let c = reqwest::Client::new();
    let post = |token: &str, path: &str, body: Value| {
        let req = c.post(app.url(path)).bearer_auth(token).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let id_number = zhudai_domain::ident::ResidentId::from_body("11010519850101002").unwrap();
    let (s, cust) = post(
        &cm,
        "/api/v1/customers",
        json!({"name": "王五", "id_number": id_number.as_str(), "phone": "13912345670"}),
    )
    .await;
    assert_eq!(s, 201, "{cust}");
    let customer = cust["id"].as_i64().unwrap();

    // Out of the product's range, an unknown product, a method it does not offer: 422 each.
    let (s, p) = post(&cm, "/api/v1/applications", json!({"customer_id": customer, "product_code": "consumer_std", "amount": "1000", "months": 6, "method": "bullet"})).await;
    assert_eq!(s, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"amount") && fields.contains(&"months") && fields.contains(&"method"),
        "{fields:?}"
    );
    assert_eq!(post(&cm, "/api/v1/applications", json!({"customer_id": customer, "product_code": "nope", "amount": "30000", "months": 12})).await.0, 422);
    let (s, a) = post(&cm, "/api/v1/applications", json!({"customer_id": customer, "product_code": "consumer_std", "amount": "30000", "months": 12})).await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_i64().unwrap();
    let path = format!("/api/v1/applications/{id}");
    let get = |token: &str| {
        let req = c.get(app.url(&path)).bearer_auth(token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let d = get(&cm).await;
    assert_eq!(
        (d["status"].as_str(), d["node"].as_str()),
        (Some("draft"), Some("draft"))
    );

    let act = format!("{path}/actions");
    // Only the customer manager submits; then the verifier's step waits for the documents.
    assert_eq!(
        post(&verifier, &act, json!({"action": "submit"})).await.0,
        403
    );
    let (s, r) = post(
        &cm,
        &act,
        json!({"action": "submit", "version": d["version"]}),
    )
    .await;
    assert_eq!((s, r["node"].as_str()), (200, Some("doc_review")), "{r}");
    let (s, r) = post(&verifier, &act, json!({"action": "approve"})).await;
    assert_eq!(s, 409, "documents are not verified yet: {r}");
    assert_eq!(get(&cm).await["documents_complete"], false);

    // The manager collects the materials; the verifier verifies them (four eyes).
    let mut docs = Vec::new();
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
        let r = upload(&app, &cm, customer, "scan.png", PNG.to_vec(), &fields).await;
        assert_eq!(r.status(), 201, "{kind}: {:?}", r.text().await);
        docs.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    for doc in &docs {
        let (s, r) = post(
            &verifier,
            &format!("/api/v1/customers/{customer}/documents/{doc}/verification"),
            json!({"decision": "verified"}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
    assert_eq!(get(&cm).await["documents_complete"], true);
    let (s, r) = post(&verifier, &act, json!({"action": "approve"})).await;
    assert_eq!((s, r["node"].as_str()), (200, Some("approval")), "{r}");
    let d = get(&cm).await;
    assert_eq!(
        d["waiting_for_role"], "approver_l1",
        "30,000 yuan: one level"
    );

    // The submitter may not approve; two approvers on the same version: one wins.
    assert_eq!(post(&cm, &act, json!({"action": "approve"})).await.0, 403);
    let v = d["version"].clone();
    let (a1, a2) = tokio::join!(
        post(&l1, &act, json!({"action": "approve", "version": v})),
        post(&l1b, &act, json!({"action": "approve", "version": v}))
    );
    let codes = [a1.0, a2.0];
    assert!(
        codes.contains(&200) && codes.contains(&409),
        "{codes:?} {a1:?} {a2:?}"
    );
    // Approved: routed to the product's funders (simulated in the demo), whose decision
    // moves the workflow on by itself.
    let d = get(&cm).await;
    let steps: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to_node"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps[..5],
        ["draft", "doc_review", "decision", "approval", "routing"]
    );
    let run = db
        .store
        .application(id)
        .await
        .unwrap()
        .unwrap()
        .routing_run_id;
    assert!(run.is_some(), "a routing run was started");
    // The demo's simulated funders draw from the application's random reference: the
    // workflow must follow whatever the routing run concluded.
    let (run, _) = db.store.routing_run(run.unwrap()).await.unwrap().unwrap();
    let row = db.store.application(id).await.unwrap().unwrap();
    match run.state.as_str() {
        "routed" => {
            assert_eq!(
                (d["status"].as_str(), d["node"].as_str()),
                (Some("approved"), Some("contract")),
                "{d}"
            );
            assert_eq!(row.funder_code, run.funder_code);
            assert!(
                matches!(row.funder_code.as_deref(), Some("bank_a" | "cfc_b")),
                "{:?}",
                row.funder_code
            );
        }
        "exhausted" => {
            assert_eq!(
                (d["status"].as_str(), d["node"].as_str()),
                (Some("rejected"), Some("rejected")),
                "{d}"
            );
            assert_eq!(row.funder_code, None);
        }
        other => panic!("the simulated funders decide at once; the run is {other}"),
    }
    assert_eq!(steps.last().copied(), d["node"].as_str());
    // The approver's list shows it; the manager's list too (own scope).
    let list: Value = c
        .get(app.url("/api/v1/applications"))
        .bearer_auth(&cm)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], id);
    app.stop().await;
}

async fn demo_applications_fill_the_verifiers_list(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    zhudai_server::demo::seed_accounts(&db.store, 1)
        .await
        .unwrap();
    zhudai_server::demo::seed_customers(&app.state)
        .await
        .unwrap();
    let n = zhudai_server::demo::seed_applications(&app.state)
        .await
        .unwrap();
    assert!(n >= 3, "demo applications: {n}");
    assert_eq!(
        zhudai_server::demo::seed_applications(&app.state)
            .await
            .unwrap(),
        0,
        "seeded once"
    );
    let all = db
        .store
        .applications(&zhudai_store::customers::ScopeFilter::All, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), n);
    let waiting = all.iter().filter(|a| a.node == "doc_review").count();
    assert!(
        waiting >= 1 && all.iter().any(|a| a.node == "draft"),
        "{all:?}"
    );
    let list = db
        .store
        .worklist(&["doc_verifier".into()], 0, 100)
        .await
        .unwrap();
    assert_eq!(
        list.len(),
        waiting,
        "every submitted application waits for a verifier"
    );
    app.stop().await;
}
