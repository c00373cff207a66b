//! Process analytics (issue #6 item 4) against a scenario computed by hand: five
//! origination instances driven through the engine at chosen times on the injected clock,
//! then the JSON report, the XLSX export and the page checked figure by figure.
//!
//! T = 2026-11-29 10:00 (Shanghai), the test clock. H = one hour.
//!
//! | inst | amount  | steps (time: action → node) |
//! |------|---------|-----------------------------|
//! | A    | 30,000  | T submit → doc_review; T+2H approve → decision → approval; T+5H L1 approve → routing; T+6H funder approves → contract; T+8H complete → disbursement; T+9H disbursed → loan |
//! | B    | 100,000 | T+1H submit; T+4H approve → approval; T+6H L1 approve (stays); T+10H L2 reject → rejected |
//! | C    | 30,000  | T+2H submit; T+3H return → draft; T+4H submit → doc_review (still there) |
//! | D    | 30,000  | T+3H started, never submitted (at draft) |
//! | E    | 300,000 | T submit; T+1H approve → approval; T+2H L1, T+3H L2, T+4H committee 1 approve; T+5H committee 2 returns → doc_review (still there) |
//!
//! The report is read at T+12H for 2026-11-29 … 2026-12-01.

use crate::support::TestApp;
use serde_json::Value;
use std::collections::BTreeSet;
use zhudai_server::auth::{AuthKind, Caller};
use zhudai_server::workflow as wf;
use zhudai_store::testing::TestDb;
use zhudai_workflow::Action;

zhudai_store::on_both!(analytics_match_a_hand_computed_scenario);

const H: i64 = 3_600_000;

fn who(id: i64, role: &str) -> Caller {
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

async fn analytics_match_a_hand_computed_scenario(db: &TestDb) {
    let app = TestApp::start(db).await;
    let store = app.state.store().clone();
    let t0 = app.state.now_ms();
    wf::ensure_defaults(&store, t0).await.unwrap();
    let (_, def) = wf::latest(&store, "origination").await.unwrap();
    let facts = |yuan: i128, funder_ok: bool| {
        let mut f = def.new_facts();
        let slot = |n: &str| def.schema.slot(n).unwrap();
        f.set_decimal_units(slot("app.amount"), yuan * 100).unwrap();
        f.set_int(slot("app.months"), 12).unwrap();
        f.set_str(slot("decision.outcome"), "pass").unwrap();
        f.set_str(slot("decision.grade"), "B").unwrap();
        f.set_bool(slot("documents.complete"), true).unwrap();
        f.set_bool(slot("funder.approved"), funder_ok).unwrap();
        f
    };
    let cm = who(101, "customer_manager");
    let verifier = who(102, "doc_verifier");
    let l1 = who(103, "approver_l1");
    let l2 = who(104, "approver_l2");
    let c1 = who(105, "committee");
    let c2 = who(106, "committee");
    let ops = who(107, "operations");
    let reason = |s: &str| s.to_owned();
    // (hour, instance, actor (the customer manager when none; the system for events), action)
    type Act<'a> = (i64, char, Option<&'a Caller>, Action);
    let script: Vec<Act> = vec![
        (0, 'A', None, Action::Submit),
        (0, 'E', None, Action::Submit),
        (1, 'B', None, Action::Submit),
        (1, 'E', Some(&verifier), Action::Approve),
        (2, 'A', Some(&verifier), Action::Approve),
        (2, 'C', None, Action::Submit),
        (2, 'E', Some(&l1), Action::Approve),
        (
            3,
            'C',
            Some(&verifier),
            Action::Return {
                to: "draft".into(),
                reason: reason("收入证明不清晰"),
            },
        ),
        (3, 'E', Some(&l2), Action::Approve),
        (4, 'B', Some(&verifier), Action::Approve),
        (4, 'C', None, Action::Submit),
        (4, 'E', Some(&c1), Action::Approve),
        (5, 'A', Some(&l1), Action::Approve),
        (
            5,
            'E',
            Some(&c2),
            Action::Return {
                to: "doc_review".into(),
                reason: reason("补充流水"),
            },
        ),
        (
            6,
            'A',
            None,
            Action::Event {
                name: "funder_decided".into(),
            },
        ),
        (6, 'B', Some(&l1), Action::Approve),
        (8, 'A', Some(&ops), Action::Complete),
        (
            9,
            'A',
            None,
            Action::Event {
                name: "disbursed".into(),
            },
        ),
        (
            10,
            'B',
            Some(&l2),
            Action::Reject {
                reason: reason("负债率过高"),
            },
        ),
    ];
    let amount = |c: char| match c {
        'B' => 100_000,
        'E' => 300_000,
        _ => 30_000,
    };
    let starts = [(0, 'A'), (0, 'E'), (1, 'B'), (2, 'C'), (3, 'D')];
    let mut ids = std::collections::BTreeMap::new();
    let mut hour = 0;
    let mut pending_starts = starts.iter().peekable();
    for (h, inst, actor, action) in &script {
        // Start the instances due before this action.
        while let Some((sh, c)) = pending_starts.peek() {
            if *sh > *h {
                break;
            }
            app.clock.advance_millis((sh - hour) * H);
            hour = *sh;
            let mut tx = store.begin().await.unwrap();
            let id = wf::start_in(
                &mut tx,
                &store,
                "origination",
                "test",
                *c as i64,
                app.state.now_ms(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            ids.insert(*c, id);
            pending_starts.next();
        }
        app.clock.advance_millis((h - hour) * H);
        hour = *h;
        let caller = actor.unwrap_or(&cm);
        let caller = if matches!(action, Action::Event { .. }) {
            None
        } else {
            Some(caller)
        };
        let mut tx = store.begin().await.unwrap();
        wf::act_in(
            &mut tx,
            &store,
            caller,
            ids[inst],
            None,
            action,
            &facts(amount(*inst), true),
            app.state.now_ms(),
        )
        .await
        .unwrap_or_else(|e| panic!("{inst} at T+{h}h: {action:?}: {e:?}"));
        tx.commit().await.unwrap();
    }
    for (sh, c) in pending_starts {
        app.clock.advance_millis((sh - hour) * H);
        hour = *sh;
        let mut tx = store.begin().await.unwrap();
        let id = wf::start_in(
            &mut tx,
            &store,
            "origination",
            "test",
            *c as i64,
            app.state.now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.insert(*c, id);
    }
    app.clock.advance_millis((12 - hour) * H);
    assert_eq!(app.state.now_ms(), t0 + 12 * H);

    let token = app.token_in_unit("executive", None).await;
    let get = |path: String| {
        let req = app.client.get(app.url(&path)).bearer_auth(&token);
        async move { req.send().await.unwrap() }
    };
    let r =
        get("/api/v1/workflows/analytics?code=origination&from=2026-11-29&to=2026-12-01".into())
            .await;
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().await.unwrap();
    let node = |id: &str| -> Value {
        rep["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id} in {rep}"))
    };
    // (node, stays, total, mean, p50, p90, max, queue, oldest wait)
    let expect: [(&str, u64, i64, i64, i64, i64, i64, u64, Option<i64>); 7] = [
        ("draft", 5, H, H / 5, 0, H, H, 1, Some(9 * H)),
        (
            "doc_review",
            4,
            7 * H,
            7 * H / 4,
            H,
            3 * H,
            3 * H,
            2,
            Some(8 * H),
        ),
        ("decision", 3, 0, 0, 0, 0, 0, 0, None),
        (
            "approval",
            3,
            13 * H,
            13 * H / 3,
            4 * H,
            6 * H,
            6 * H,
            0,
            None,
        ),
        ("routing", 1, H, H, H, H, H, 0, None),
        ("contract", 1, 2 * H, 2 * H, 2 * H, 2 * H, 2 * H, 0, None),
        ("disbursement", 1, H, H, H, H, H, 0, None),
    ];
    for (id, stays, total, mean, p50, p90, max, queue, oldest) in expect {
        let n = node(id);
        assert_eq!(
            (
                n["stays"].as_u64().unwrap(),
                n["total_ms"].as_i64().unwrap(),
                n["mean_ms"].as_i64().unwrap(),
                n["p50_ms"].as_i64().unwrap(),
                n["p90_ms"].as_i64().unwrap(),
                n["max_ms"].as_i64().unwrap(),
                n["queue"].as_u64().unwrap(),
                n["oldest_wait_ms"].as_i64()
            ),
            (stays, total, mean, p50, p90, max, queue, oldest),
            "{id}: {n}"
        );
    }
    // How the stays ended, and the rates.
    let dr = node("doc_review");
    assert_eq!(
        (
            dr["approvals"].as_u64(),
            dr["rejections"].as_u64(),
            dr["returns"].as_u64()
        ),
        (Some(3), Some(0), Some(1))
    );
    assert_eq!(
        (dr["approval_rate"].as_str(), dr["rejection_rate"].as_str()),
        (Some("0.7500"), Some("0.0000"))
    );
    let ap = node("approval");
    assert_eq!(
        (
            ap["approvals"].as_u64(),
            ap["rejections"].as_u64(),
            ap["returns"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        (ap["approval_rate"].as_str(), ap["rejection_rate"].as_str()),
        (Some("0.3333"), Some("0.3333"))
    );
    assert_eq!(node("routing")["left_by"]["event:funder_decided"], 1);
    assert_eq!(node("draft")["left_by"]["submit"], 5);
    assert_eq!(node("draft")["approval_rate"], Value::Null);
    assert!(
        rep["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["node"] != "loan"),
        "end nodes have no stays"
    );
    // Decisions per approval level: every approver's decision counts.
    let levels: Vec<(String, i64, String, u64, u64, u64, String)> = rep["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["node"].as_str().unwrap().to_owned(),
                l["level"].as_i64().unwrap(),
                l["role"].as_str().unwrap().to_owned(),
                l["approvals"].as_u64().unwrap(),
                l["rejections"].as_u64().unwrap(),
                l["returns"].as_u64().unwrap(),
                l["approval_rate"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        levels,
        vec![
            (s("approval"), 1, s("approver_l1"), 3, 0, 0, s("1.0000")),
            (s("approval"), 2, s("approver_l2"), 1, 1, 0, s("0.5000")),
            (s("approval"), 3, s("committee"), 1, 0, 1, s("0.5000")),
        ]
    );
    // Throughput per business day, every day of the window present.
    let days: Vec<(String, u64, u64)> = rep["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["started"].as_u64().unwrap(),
                d["finished"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            (s("2026-11-29"), 5, 2),
            (s("2026-11-30"), 0, 0),
            (s("2026-12-01"), 0, 0)
        ]
    );
    assert_eq!(
        rep["days"][0]["finished_by"],
        serde_json::json!({"loan": 1, "rejected": 1})
    );
    // Cycle time: A and B both took 9 hours.
    assert_eq!(
        (
            rep["cycle"]["finished"].as_u64(),
            rep["cycle"]["p50_ms"].as_i64(),
            rep["cycle"]["p90_ms"].as_i64()
        ),
        (Some(2), Some(9 * H), Some(9 * H))
    );
    let hist: Vec<(String, u64)> = rep["cycle"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["label"].as_str().unwrap().to_owned(),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hist.iter().map(|h| h.1).sum::<u64>(), 2);
    assert_eq!(hist.iter().find(|h| h.0 == "8-24h").unwrap().1, 2);
    // Bottlenecks: longest p90 stays, biggest queues.
    assert_eq!(
        rep["bottlenecks"]["by_wait"],
        serde_json::json!(["approval", "doc_review", "contract"])
    );
    assert_eq!(
        rep["bottlenecks"]["by_queue"],
        serde_json::json!(["doc_review", "draft"])
    );

    // A window without those days counts no stays, but the queues are still today's.
    let later: Value = get("/api/v1/workflows/analytics?from=2026-11-30&to=2026-12-01".into())
        .await
        .json()
        .await
        .unwrap();
    let dr = later["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "doc_review")
        .unwrap()
        .clone();
    assert_eq!(
        (dr["stays"].as_u64(), dr["queue"].as_u64()),
        (Some(0), Some(2))
    );
    // Bad windows are refused, naming the field.
    let r = get("/api/v1/workflows/analytics?from=2026-12-02&to=2026-12-01".into()).await;
    assert_eq!(r.status(), 422);
    let r = get("/api/v1/workflows/analytics?from=2025-01-01&to=2026-12-01".into()).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["field"],
        "from"
    );
    let r = get("/api/v1/workflows/analytics?code=nope".into()).await;
    assert_eq!(r.status(), 404);

    // The XLSX export carries the same figures.
    let r = get(
        "/api/v1/workflows/analytics.xlsx?code=origination&from=2026-11-29&to=2026-12-01".into(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let nodes = book.worksheet_range("Nodes").unwrap();
    let row = nodes
        .rows()
        .find(|r| r.first() == Some(&Data::String("approval".into())))
        .unwrap()
        .to_vec();
    assert_eq!(row[2], Data::Float(3.0), "stays");
    assert_eq!(row[5], Data::Float(6.0), "p90 hours");
    assert_eq!(
        row[10],
        Data::Float(0.3333),
        "approval rate, as written from 0.3333"
    );
    let daily = book.worksheet_range("Daily").unwrap();
    assert_eq!(daily.get((1, 0)), Some(&Data::String("2026-11-29".into())));
    assert_eq!(daily.get((1, 1)), Some(&Data::Float(5.0)));
    let levels = book.worksheet_range("Levels").unwrap();
    assert_eq!(levels.get((2, 4)), Some(&Data::Float(1.0)), "L2 rejections");

    // The page shows the charts and the bottleneck list.
    app.sign_in("executive").await;
    let html = app
        .get("/workflows/analytics?code=origination&from=2026-11-29&to=2026-12-01")
        .await
        .text()
        .await
        .unwrap();
    for id in [
        "chart-wait",
        "chart-queue",
        "chart-days",
        "chart-cycle",
        "node-table",
        "level-table",
        "bottlenecks",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{id}\"")),
            "{id} missing"
        );
    }
    assert!(html.contains("<svg"), "charts are SVG");
    assert!(html.contains("75.0 %"), "doc_review approval rate shown");
    assert!(
        html.contains("data-testid=\"kpi-started\">5<"),
        "five started"
    );
    app.stop().await;
}
