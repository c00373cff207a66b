//! Worklists (issue #6 item 3): the to-do list with due times and how long each item is
//! overdue, the done list newest first, the watch list with changes since last seen,
//! and who may watch what — through the API and the `/tasks` tabs.

use crate::support::{TestApp, PASSWORD};
use serde_json::Value;
use std::collections::BTreeSet;
use zhudai_server::auth::{AuthKind, Caller};
use zhudai_server::workflow as wf;
use zhudai_store::testing::TestDb;
use zhudai_workflow::Action;

zhudai_store::on_both!(worklists_todo_done_and_watch);

const H: i64 = 3_600_000;

pub fn caller_of(id: i64, role: &str) -> Caller {
    Caller {
        user_id: id,
        username: format!("user{id}"),
        display_name: String::new(),
        org_unit_id: None,
        roles: vec![role.to_owned()],
        permissions: BTreeSet::new(),
        clear_fields: BTreeSet::new(),
        scope: "all".into(),
        auth: AuthKind::ApiToken { token_id: 0 },
        csrf: None,
        needs_2fa_enrolment: false,
        scope_filter: None,
    }
}

/// A user of `role` in `unit`: (user id, bearer token, username).
pub async fn person(app: &TestApp, role: &str, unit: Option<i64>) -> (i64, String, String) {
    let name = app.user_in_unit(role, unit).await;
    let id = app
        .state
        .store()
        .user_by_username(&name)
        .await
        .unwrap()
        .unwrap()
        .id;
    let token = app.login(&name).await.0;
    (id, token, name)
}

/// Facts under which every guard of the origination flow lets an instance through.
pub fn passing_facts(def: &zhudai_workflow::Definition, yuan: i128) -> zhudai_expr::Record {
    let mut f = def.new_facts();
    let slot = |n: &str| def.schema.slot(n).unwrap();
    f.set_decimal_units(slot("app.amount"), yuan * 100).unwrap();
    f.set_int(slot("app.months"), 12).unwrap();
    f.set_str(slot("decision.outcome"), "pass").unwrap();
    f.set_str(slot("decision.grade"), "B").unwrap();
    f.set_bool(slot("documents.complete"), true).unwrap();
    f.set_bool(slot("funder.approved"), true).unwrap();
    f
}

/// Starts an origination instance about (`subject`, `id`) and applies `actions` now.
pub async fn instance_with(
    app: &TestApp,
    subject: &str,
    subject_id: i64,
    actions: &[(Caller, Action)],
) -> i64 {
    let store = app.state.store();
    wf::ensure_defaults(store, app.state.now_ms())
        .await
        .unwrap();
    let (_, def) = wf::latest(store, "origination").await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let id = wf::start_in(
        &mut tx,
        store,
        "origination",
        subject,
        subject_id,
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for (who, a) in actions {
        act(app, id, who, a, &passing_facts(&def, 30_000)).await;
    }
    id
}

pub async fn act(app: &TestApp, id: i64, who: &Caller, a: &Action, facts: &zhudai_expr::Record) {
    let store = app.state.store();
    let mut tx = store.begin().await.unwrap();
    wf::act_in(
        &mut tx,
        store,
        Some(who),
        id,
        None,
        a,
        facts,
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn worklists_todo_done_and_watch(db: &TestDb) {
    let app = TestApp::start(db).await;
    let (cm_id, _, cm_name) = person(&app, "customer_manager", None).await;
    let (ver_id, _, ver_name) = person(&app, "doc_verifier", None).await;
    let (_, _, exec_name) = person(&app, "executive", None).await;
    let cm_c = caller_of(cm_id, "customer_manager");
    let ver_c = caller_of(ver_id, "doc_verifier");
    let t0 = app.state.now_ms();
    let i1 = instance_with(&app, "test", 1, &[(cm_c.clone(), Action::Submit)]).await;
    app.clock.advance_millis(H);
    let i2 = instance_with(&app, "test", 2, &[(cm_c.clone(), Action::Submit)]).await;
    app.clock.advance_millis(9 * H);
    // Sign in now: sessions idle out while the clock moves on.
    let cm = app.login(&cm_name).await.0;
    let ver = app.login(&ver_name).await.0;
    let exec = app.login(&exec_name).await.0;
    let c = reqwest::Client::new();
    let get = |token: &str, path: &str| {
        let req = c.get(app.url(path)).bearer_auth(token);
        let path = path.to_owned();
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };

    // To do: both wait for the verifier, the oldest first; doc_review escalates after 8 h.
    let todo = get(&ver, "/api/v1/tasks").await;
    let rows: Vec<(i64, i64, bool, i64)> = todo
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["instance_id"].as_i64().unwrap(),
                t["due_at_ms"].as_i64().unwrap(),
                t["overdue"].as_bool().unwrap(),
                t["overdue_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![(i1, t0 + 8 * H, true, 2 * H), (i2, t0 + 9 * H, true, H)]
    );
    assert_eq!(todo[0]["node_name"], "资料审核");
    assert_eq!(todo[0]["role"], "doc_verifier");
    assert!(get(&cm, "/api/v1/tasks")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // Done: the verifier approves the first; each sees what they did, newest first.
    let (_, def) = wf::latest(app.state.store(), "origination").await.unwrap();
    act(
        &app,
        i1,
        &ver_c,
        &Action::Approve,
        &passing_facts(&def, 30_000),
    )
    .await;
    let done = get(&cm, "/api/v1/tasks/done").await;
    let mine: Vec<(i64, &str)> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["instance_id"].as_i64().unwrap(),
                d["my_action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(mine, vec![(i2, "submit"), (i1, "submit")]);
    let done = get(&ver, "/api/v1/tasks/done").await;
    assert_eq!(done.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            done[0]["instance_id"].as_i64(),
            done[0]["my_action"].as_str(),
            done[0]["my_node"].as_str(),
            done[0]["node"].as_str(),
            done[0]["acted_at_ms"].as_i64()
        ),
        (
            Some(i1),
            Some("approve"),
            Some("doc_review"),
            Some("approval"),
            Some(t0 + 10 * H)
        )
    );
    assert_eq!(
        get(&ver, "/api/v1/tasks").await.as_array().unwrap().len(),
        1
    );

    // Watch: only what you may read (a test instance needs workflow.read).
    let put = |token: &str, id: i64| {
        let req = c
            .put(app.url(&format!("/api/v1/watches/{id}")))
            .bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(put(&cm, i1).await, 403);
    assert_eq!(put(&exec, i1).await, 201);
    assert_eq!(put(&exec, i1).await, 200, "watching twice is one watch");
    assert_eq!(put(&exec, 999_999).await, 404);
    let w = get(&exec, "/api/v1/tasks/watched").await;
    assert_eq!(
        (
            w[0]["instance_id"].as_i64(),
            w[0]["changes"].as_i64(),
            w[0]["node"].as_str()
        ),
        (Some(i1), Some(0), Some("approval"))
    );
    app.clock.advance_millis(H);
    act(
        &app,
        i1,
        &ver_c,
        &Action::Comment {
            text: "补充说明".into(),
        },
        &def.new_facts(),
    )
    .await;
    let exec = app.login(&exec_name).await.0;
    let w = get(&exec, "/api/v1/tasks/watched").await;
    assert_eq!(
        (
            w[0]["changes"].as_i64(),
            w[0]["last_action"].as_str(),
            w[0]["last_at_ms"].as_i64()
        ),
        (Some(1), Some("comment"), Some(t0 + 11 * H))
    );
    let r = c
        .post(app.url("/api/v1/tasks/watched/seen"))
        .bearer_auth(&exec)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 1);
    assert_eq!(get(&exec, "/api/v1/tasks/watched").await[0]["changes"], 0);
    let del = |id: i64| {
        let req = c
            .delete(app.url(&format!("/api/v1/watches/{id}")))
            .bearer_auth(&exec);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(del(i1).await, 204);
    assert_eq!(del(i1).await, 404);
    assert!(get(&exec, "/api/v1/tasks/watched")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // The /tasks tabs: overdue rows highlighted with how long they are overdue.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": ver_name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = |path: &str| {
        let req = browser.get(app.url(path));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let html = page("/tasks").await;
    for id in [
        "tab-todo",
        "tab-done",
        "tab-watch",
        "task-table",
        "overdue-summary",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{id}\"")),
            "{id}: {html}"
        );
    }
    // I2 entered at T+1H, due T+9H, now T+11H: overdue by 2 h.
    assert!(html.contains("已超时 2 小时 0 分钟"), "{html}");
    assert!(
        html.contains("class=\"overdue\""),
        "overdue row highlighted"
    );
    let html = page("/tasks?tab=done&lang=en").await;
    assert!(
        html.contains("data-testid=\"done-table\"")
            && html.contains("<code>comment</code> · Approval"),
        "{html}"
    );
    let html = page("/tasks?tab=watch").await;
    assert!(html.contains("data-testid=\"no-watched\""));
    app.stop().await;
}
