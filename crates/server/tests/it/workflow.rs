//! Workflow definitions through the API (list, show, validate, install new versions,
//! refuse broken ones naming the problem) and the engine on the database: steps recorded
//! with audit records, running instances kept on their version, and two approvers acting
//! at the same instant producing one outcome.

use crate::support::TestApp;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use zhudai_server::auth::{AuthKind, Caller};
use zhudai_server::workflow as wf;
use zhudai_store::testing::TestDb;
use zhudai_workflow::Action;

zhudai_store::on_both!(
    definitions_are_versioned_and_checked,
    simultaneous_approvals_give_one_outcome,
    time_limits_remind_escalate_and_return,
    a_new_release_upgrades_the_untouched_default_flow
);

async fn definitions_are_versioned_and_checked(db: &TestDb) {
    let app = TestApp::start(db).await;
    let admin = app.token_in_unit("sysadmin", None).await;
    let cm = app.token_in_unit("customer_manager", None).await;
    let c = reqwest::Client::new();
    let list: Value = c
        .get(app.url("/api/v1/workflows"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["code"], "origination");
    assert_eq!(list[0]["version"], 1);
    let one: Value = c
        .get(app.url("/api/v1/workflows/origination/1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["start"], "draft");
    assert!(one["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["guard"] == "funder.approved"));
    // A broken definition: validate says why; installing it is a 422 naming the path.
    let broken = zhudai_workflow::ORIGINATION
        .replace("guard = \"funder.approved\"", "guard = \"funder.aproved\"");
    let v: Value = c
        .post(app.url("/api/v1/workflows/validate"))
        .bearer_auth(&admin)
        .json(&json!({"source": broken}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["valid"], false);
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `funder.approved`"),
        "{v}"
    );
    let r = c
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&admin)
        .json(&json!({"source": broken}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("transitions["),
        "{p}"
    );
    // Only a holder of workflow.manage installs; a valid change becomes version 2.
    let changed =
        zhudai_workflow::ORIGINATION.replace("app.amount <= 50000.00", "app.amount <= 30000.00");
    let r = c
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&cm)
        .json(&json!({"source": changed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&admin)
        .json(&json!({"source": changed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 2);
    assert_eq!(
        db.store
            .definition_latest("origination")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    app.stop().await;
}

fn caller(id: i64, role: &str) -> Caller {
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

async fn simultaneous_approvals_give_one_outcome(db: &TestDb) {
    let app = TestApp::start(db).await;
    let store = app.state.store().clone();
    let now = app.state.now_ms();
    wf::ensure_defaults(&store, now).await.unwrap();
    let (_, def) = wf::latest(&store, "origination").await.unwrap();
    let mut facts = def.new_facts();
    let slot = |n: &str| def.schema.slot(n).unwrap();
    facts
        .set_decimal_units(slot("app.amount"), 3_000_000)
        .unwrap();
    facts.set_int(slot("app.months"), 12).unwrap();
    facts.set_str(slot("decision.outcome"), "pass").unwrap();
    facts.set_str(slot("decision.grade"), "B").unwrap();
    facts.set_bool(slot("documents.complete"), true).unwrap();
    facts.set_bool(slot("funder.approved"), true).unwrap();

    let mut tx = store.begin().await.unwrap();
    let id = wf::start_in(&mut tx, &store, "origination", "test", 1, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (who, action) in [
        (caller(1, "customer_manager"), Action::Submit),
        (caller(2, "doc_verifier"), Action::Approve),
    ] {
        let mut tx = store.begin().await.unwrap();
        wf::act_in(&mut tx, &store, Some(&who), id, None, &action, &facts, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let at_approval = store.instance(id).await.unwrap().unwrap();
    assert_eq!(
        (
            at_approval.node.as_str(),
            at_approval.assignee_role.as_deref()
        ),
        ("approval", Some("approver_l1"))
    );
    // The worklist of an approver shows it; a collector's does not.
    assert_eq!(
        store
            .worklist(&["approver_l1".into()], 99, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .worklist(&["collector".into()], 99, 10)
        .await
        .unwrap()
        .is_empty());

    // Two approvers act on the same version at the same instant.
    let run = |who: Caller| {
        let store = store.clone();
        let facts = facts.clone();
        let version = at_approval.version;
        async move {
            let mut tx = store.begin().await.unwrap();
            let r = wf::act_in(
                &mut tx,
                &store,
                Some(&who),
                id,
                Some(version),
                &Action::Approve,
                &facts,
                now,
            )
            .await;
            match r {
                Ok(a) => {
                    tx.commit().await.unwrap();
                    Ok(a)
                }
                Err(e) => {
                    tx.rollback().await.unwrap();
                    Err(e)
                }
            }
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(run(caller(3, "approver_l1"))),
        tokio::spawn(run(caller(4, "approver_l1")))
    );
    let results = [a.unwrap(), b.unwrap()];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one approval wins: {results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(zhudai_server::error::ApiError::Conflict(_)))));
    let inst = store.instance(id).await.unwrap().unwrap();
    assert_eq!(inst.node, "routing");
    let steps = store.steps(id).await.unwrap();
    let approvals: Vec<_> = steps
        .iter()
        .filter(|s| s.action == "approve" && s.from_node == "approval")
        .collect();
    assert_eq!(approvals.len(), 1, "{steps:?}");
    let seqs: Vec<i64> = steps.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        (1..=steps.len() as i64).collect::<Vec<_>>(),
        "history without gaps"
    );
    // Every step is in the audit trail, attributed.
    let audited = store
        .audit_count(&zhudai_store::audit::AuditFilter {
            target: Some("test:1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audited as usize,
        steps.len() - 1,
        "every step after the start is audited"
    );

    // A new version does not move the running instance.
    let changed =
        zhudai_workflow::ORIGINATION.replace("app.amount <= 50000.00", "app.amount <= 10000.00");
    wf::install(&store, &changed, None, now).await.unwrap();
    assert_eq!(
        store
            .instance(id)
            .await
            .unwrap()
            .unwrap()
            .definition_version,
        1
    );
    let durations = store.node_durations("origination").await.unwrap();
    assert!(
        durations
            .iter()
            .any(|(n, left, _)| n == "approval" && *left == 1),
        "{durations:?}"
    );
    app.stop().await;
}

async fn time_limits_remind_escalate_and_return(db: &TestDb) {
    let app = TestApp::start(db).await;
    let store = app.state.store().clone();
    let t0 = app.state.now_ms();
    wf::ensure_defaults(&store, t0).await.unwrap();
    let (_, def) = wf::latest(&store, "origination").await.unwrap();
    let facts = def.new_facts();
    let mut tx = store.begin().await.unwrap();
    let id = wf::start_in(&mut tx, &store, "origination", "test", 7, t0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    wf::act_in(
        &mut tx,
        &store,
        Some(&caller(1, "customer_manager")),
        id,
        None,
        &Action::Submit,
        &facts,
        t0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let h = 3_600_000;
    // doc_review: remind after 4 h, escalate after 8 h, return to the draft after 72 h.
    assert_eq!(
        wf::check_time_limits(&store, t0 + 3 * h).await.unwrap(),
        wf::SlaReport::default()
    );
    let r = wf::check_time_limits(&store, t0 + 5 * h).await.unwrap();
    assert_eq!((r.reminders, r.breaches, r.returned), (1, 0, 0));
    let r = wf::check_time_limits(&store, t0 + 9 * h).await.unwrap();
    assert_eq!(
        (r.reminders, r.breaches, r.returned),
        (0, 1, 0),
        "each alert once per node entry"
    );
    let mine = store
        .open_alerts(&["doc_verifier".into()], 0, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 2, "alerts go to the role the step waits for");
    assert!(store
        .open_alerts(&["collector".into()], 0, 10)
        .await
        .unwrap()
        .is_empty());
    let r = wf::check_time_limits(&store, t0 + 73 * h).await.unwrap();
    assert_eq!(r.returned, 1);
    let inst = store.instance(id).await.unwrap().unwrap();
    assert_eq!(inst.node, "draft", "auto-returned to the submitter");
    assert_eq!(
        store.steps(id).await.unwrap().last().unwrap().action,
        "timeout"
    );
    assert_eq!(
        wf::check_time_limits(&store, t0 + 80 * h).await.unwrap(),
        wf::SlaReport::default()
    );
    app.stop().await;
}

/// A release that ships a changed origination flow installs it as a new version when
/// the latest version is still the system's; a flow an administrator edited is left
/// alone; an unchanged flow is not installed twice.
async fn a_new_release_upgrades_the_untouched_default_flow(db: &TestDb) {
    let store = &db.store;
    // An older release's flow (different text) installed by the system.
    let older = zhudai_workflow::ORIGINATION.replacen("name = ", "# an older release\nname = ", 1);
    assert_ne!(older, zhudai_workflow::ORIGINATION);
    zhudai_server::workflow::install(store, &older, None, 1)
        .await
        .unwrap();
    zhudai_server::workflow::ensure_defaults(store, 2)
        .await
        .unwrap();
    let latest = store
        .definition_latest("origination")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 2);
    assert_eq!(
        latest.digest,
        zhudai_server::workflow::digest(zhudai_workflow::ORIGINATION)
    );
    // Again: nothing new.
    zhudai_server::workflow::ensure_defaults(store, 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .definition_latest("origination")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // An administrator's edit (created_by set) is never replaced by the bundled flow.
    let app = TestApp::start(db).await;
    let admin = app.user_with_role("sysadmin").await;
    let admin_id = store.user_by_username(&admin).await.unwrap().unwrap().id;
    zhudai_server::workflow::install(store, &older, Some(admin_id), 4)
        .await
        .unwrap();
    zhudai_server::workflow::ensure_defaults(store, 5)
        .await
        .unwrap();
    let latest = store
        .definition_latest("origination")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.version, latest.created_by), (3, Some(admin_id)));
}
