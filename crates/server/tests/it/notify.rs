//! Exception alerts (issue #6 item 3): routed to the manager of the node's owner (up the
//! org tree, skipping the owner, falling back to workflow administrators), watchers
//! told too, raised once; in-app notifications with mark-read; group-bot webhooks in the
//! WeCom, DingTalk and Feishu formats checked byte for byte by a local receiver, with the
//! DingTalk and Feishu signatures recomputed here; retries and the delivery log; secrets
//! encrypted at rest and never shown.

use crate::support::TestApp;
use crate::worklists::{act, caller_of, instance_with, passing_facts, person};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zhudai_server::jobs::{run_worker, JobRegistry, WorkerSettings};
use zhudai_server::notify;
use zhudai_server::workflow as wf;
use zhudai_store::testing::TestDb;
use zhudai_workflow::Action;

zhudai_store::on_both!(alerts_reach_managers_and_bots);

const H: i64 = 3_600_000;
const BASE: &str = "https://zhudai.example.com";

/// A bot server: records every request (path with query, JSON body) and answers from a
/// per-path script, then with success.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<(u16, String)>>>>,
}

impl Receiver {
    fn received(&self, path: &str) -> Vec<(String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}

async fn answer(State(r): State<Receiver>, uri: Uri, body: Bytes) -> (StatusCode, String) {
    let path = uri.path().to_owned();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push((uri.to_string(), value));
    let scripted = r
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|q| q.pop_front());
    let (status, text) = scripted.unwrap_or_else(|| {
        if path.starts_with("/feishu") {
            (200, r#"{"code":0,"msg":"success","data":{}}"#.to_owned())
        } else {
            (200, r#"{"errcode":0,"errmsg":"ok"}"#.to_owned())
        }
    });
    (StatusCode::from_u16(status).unwrap(), text)
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new().fallback(answer).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}"))
}

/// HMAC-SHA256, base64 — written here, apart from the server's code.
fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until no job is running (a failed one has been rescheduled with its backoff).
async fn settle(store: &zhudai_store::Store) {
    for _ in 0..400 {
        let counts = store.job_counts().await.unwrap();
        if counts.iter().all(|c| c.state != "running" || c.count == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("a job kept running");
}

async fn alerts_reach_managers_and_bots(db: &TestDb) {
    let app = TestApp::start_with(
        db,
        zhudai_server::ServerSettings {
            data_dir: db.data_dir(),
            public_url: Some(BASE.into()),
            ..Default::default()
        },
    )
    .await;
    let store = app.state.store().clone();
    let (bots, bot_base) = receiver().await;
    let co = app.org_unit(None, "company", "n-co").await;
    let br = app.org_unit(Some(co), "branch", "n-br").await;
    let br2 = app.org_unit(Some(co), "branch", "n-br2").await;
    let team = app.org_unit(Some(br), "team", "n-team").await;
    let (boss, _, _) = person(&app, "executive", Some(co)).await;
    let (bm, bm_token, bm_name) = person(&app, "approver_l1", Some(br)).await;
    let (cm, _, _) = person(&app, "customer_manager", Some(team)).await;
    let (v, _, v_name) = person(&app, "doc_verifier", Some(team)).await;
    let (v2, _, _) = person(&app, "doc_verifier", Some(team)).await;
    let (watcher, watcher_token, watcher_name) = person(&app, "executive", None).await;
    let (admin, admin_token, admin_name) = person(&app, "sysadmin", None).await;
    let c = reqwest::Client::new();
    let send = |m: reqwest::Method, token: &str, path: &str, body: Value| {
        let req = c.request(m, app.url(path)).bearer_auth(token).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Managers: the company's and the first branch's (the team has none).
    for (unit, user) in [(co, boss), (br, bm)] {
        let (s, b) = send(
            reqwest::Method::PUT,
            &admin_token,
            &format!("/api/v1/org-units/{unit}/manager"),
            json!({"user_id": user}),
        )
        .await;
        assert_eq!(s, 204, "{b}");
    }
    assert_eq!(
        send(
            reqwest::Method::PUT,
            &bm_token,
            &format!("/api/v1/org-units/{br}/manager"),
            json!({"user_id": bm})
        )
        .await
        .0,
        403,
        "only org.manage sets managers"
    );
    assert_eq!(
        send(
            reqwest::Method::PUT,
            &admin_token,
            "/api/v1/org-units/999999/manager",
            json!({})
        )
        .await
        .0,
        404
    );

    // Bots: four formats; one only for overrides, one only for another branch.
    let mut targets = HashMap::new();
    for (name, body) in [
        (
            "wecom",
            json!({"name": "企业微信-风控群", "format": "wecom", "url": format!("{bot_base}/wecom?key=abc123")}),
        ),
        (
            "dingtalk",
            json!({"name": "钉钉-运营群", "format": "dingtalk", "url": format!("{bot_base}/dingtalk?access_token=tok"), "secret": "SECtest"}),
        ),
        (
            "feishu",
            json!({"name": "飞书-管理群", "format": "feishu", "msg_type": "post", "url": format!("{bot_base}/feishu/post"), "secret": "fs-secret"}),
        ),
        (
            "card",
            json!({"name": "飞书-干预", "format": "feishu", "msg_type": "interactive", "url": format!("{bot_base}/feishu/card"), "kinds": ["override"]}),
        ),
        (
            "other",
            json!({"name": "其他分公司", "format": "wecom", "msg_type": "text", "url": format!("{bot_base}/other"), "org_unit_id": br2}),
        ),
    ] {
        let (s, b) = send(
            reqwest::Method::POST,
            &admin_token,
            "/api/v1/webhooks",
            body,
        )
        .await;
        assert_eq!(s, 201, "{name}: {b}");
        targets.insert(name, b["id"].as_i64().unwrap());
    }
    // Refused with each problem named.
    let (s, b) = send(
        reqwest::Method::POST,
        &admin_token,
        "/api/v1/webhooks",
        json!({"name": "x", "format": "slack", "url": "ftp://x", "kinds": ["sla_breach", "nope"]}),
    )
    .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["format", "url", "kinds"], "{b}");
    let (s, b) = send(reqwest::Method::POST, &admin_token, "/api/v1/webhooks", json!({"name": "y", "format": "feishu", "msg_type": "markdown", "url": "https://open.feishu.cn/x"})).await;
    assert_eq!(
        (s, b["errors"][0]["field"].as_str()),
        (422, Some("msg_type"))
    );
    assert_eq!(
        send(
            reqwest::Method::POST,
            &bm_token,
            "/api/v1/webhooks",
            json!({})
        )
        .await
        .0,
        403
    );
    // Secrets: encrypted at rest, never answered.
    let (_, list) = send(
        reqwest::Method::GET,
        &admin_token,
        "/api/v1/webhooks",
        Value::Null,
    )
    .await;
    let text = list.to_string();
    assert!(
        !text.contains("abc123") && !text.contains("SECtest") && !text.contains("fs-secret"),
        "{text}"
    );
    let ding = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["format"] == "dingtalk")
        .unwrap();
    assert_eq!(
        (ding["signed"].as_bool(), ding["msg_type"].as_str()),
        (Some(true), Some("markdown"))
    );
    assert!(
        ding["url_hint"].as_str().unwrap().ends_with("/…=tok"),
        "{ding}"
    );
    let stored = store
        .webhook_target(targets["wecom"])
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored.url_enc).contains("abc123"));
    let stored = store
        .webhook_target(targets["dingtalk"])
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(stored.secret_enc.as_deref().unwrap()).contains("SECtest"));

    // I: submitted by the manager of customers, then handed to verifier V (the owner).
    let t0 = app.state.now_ms();
    let i = instance_with(
        &app,
        "test",
        7,
        &[
            (caller_of(cm, "customer_manager"), Action::Submit),
            (
                caller_of(v2, "doc_verifier"),
                Action::Transfer { to_user: v },
            ),
        ],
    )
    .await;
    assert_eq!(
        send(
            reqwest::Method::PUT,
            &watcher_token,
            &format!("/api/v1/watches/{i}"),
            Value::Null
        )
        .await
        .0,
        201
    );
    // J: waits for the verifiers' role, about nothing in any unit: nobody manages it.
    let j = instance_with(
        &app,
        "test",
        8,
        &[(caller_of(cm, "customer_manager"), Action::Submit)],
    )
    .await;
    // The bots: the WeCom bot fails once before it takes the message.
    bots.script
        .lock()
        .unwrap()
        .insert("/wecom".into(), VecDeque::from([(500, "busy".to_owned())]));

    app.clock.advance_millis(9 * H);
    // Sign in again: sessions idle out while the clock moves on.
    let bm_token = app.login(&bm_name).await.0;
    let watcher_token = app.login(&watcher_name).await.0;
    let admin_token = app.login(&admin_name).await.0;
    let r = wf::check_time_limits(&store, app.state.now_ms())
        .await
        .unwrap();
    assert_eq!((r.breaches, r.notified), (2, 2), "{r:?}");
    let again = wf::check_time_limits(&store, app.state.now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(again.notified, 0, "each exception once");

    let ev_i = store.events_of_instance(i).await.unwrap();
    assert_eq!(ev_i.len(), 1);
    assert_eq!(
        (
            ev_i[0].kind.as_str(),
            ev_i[0].owner_user_id,
            ev_i[0].org_unit_id
        ),
        ("sla_breach", Some(v), Some(team))
    );
    assert_eq!(
        store.recipients(ev_i[0].id).await.unwrap(),
        vec![(bm, "manager".to_owned()), (watcher, "watcher".to_owned())],
        "the branch manager (the team has none) and the watcher; not the owner"
    );
    let ev_j = store.events_of_instance(j).await.unwrap();
    let fallback = store.recipients(ev_j[0].id).await.unwrap();
    assert!(
        fallback.contains(&(admin, "fallback".to_owned())),
        "{fallback:?}"
    );
    assert!(fallback.iter().all(|(_, r)| r == "fallback"));

    // The branch manager's inbox and bell count.
    let (_, inbox) = send(
        reqwest::Method::GET,
        &bm_token,
        "/api/v1/notifications",
        Value::Null,
    )
    .await;
    assert_eq!(inbox.as_array().map(Vec::len), Some(1), "{inbox}");
    let n = &inbox[0];
    assert_eq!(
        (
            n["kind"].as_str(),
            n["severity"].as_str(),
            n["reason"].as_str(),
            n["title"].as_str()
        ),
        (
            Some("sla_breach"),
            Some("warning"),
            Some("manager"),
            Some("超时未处理 · test #7")
        )
    );
    assert_eq!(n["link"], format!("{BASE}/notifications"));
    assert_eq!(
        (n["waited_ms"].as_i64(), n["limit_ms"].as_i64()),
        (Some(9 * H), Some(8 * H))
    );
    let (_, count) = send(
        reqwest::Method::GET,
        &bm_token,
        "/api/v1/notifications/unread-count",
        Value::Null,
    )
    .await;
    assert_eq!(count["unread"], 1);
    let nid = n["id"].as_i64().unwrap();
    assert_eq!(
        send(
            reqwest::Method::POST,
            &watcher_token,
            &format!("/api/v1/notifications/{nid}/read"),
            Value::Null
        )
        .await
        .0,
        404,
        "not theirs"
    );
    assert_eq!(
        send(
            reqwest::Method::POST,
            &bm_token,
            &format!("/api/v1/notifications/{nid}/read"),
            Value::Null
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            reqwest::Method::GET,
            &bm_token,
            "/api/v1/notifications/unread-count",
            Value::Null
        )
        .await
        .1["unread"],
        0
    );
    let (_, en) = send(
        reqwest::Method::GET,
        &watcher_token,
        "/api/v1/notifications?lang=en&unread_only=true",
        Value::Null,
    )
    .await;
    assert_eq!(en[0]["title"], "Time limit breached · test #7");

    // Deliver: the job worker sends every queued delivery.
    let send_at = app.state.now_ms();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(
        app.state.clone(),
        JobRegistry::standard(),
        WorkerSettings {
            idle_poll: Duration::from_millis(20),
            ..Default::default()
        },
        rx,
    ));
    wait_for("the first round of bot calls", || {
        bots.received("/wecom").len() == 2
            && bots.received("/dingtalk").len() == 2
            && bots.received("/feishu/post").len() == 2
    })
    .await;
    // The WeCom bot answered 500 once: retried after the queue's backoff.
    settle(&store).await;
    app.clock
        .advance_millis(zhudai_store::jobs::backoff_ms(1) + 1);
    wait_for("the WeCom retry", || bots.received("/wecom").len() == 3).await;
    settle(&store).await;

    let owner_line = format!("负责人：{v_name}");
    let link = format!("{BASE}/notifications");
    let about_i = |path: &str, title_of: fn(&Value) -> Option<&str>| -> Vec<(String, Value)> {
        bots.received(path)
            .into_iter()
            .filter(|(_, b)| title_of(b).is_some_and(|t| t.contains("test #7")))
            .collect()
    };
    // WeCom group bot: markdown; the retried message is the same message.
    let wecom = about_i("/wecom", |b| b["markdown"]["content"].as_str());
    assert!(!wecom.is_empty());
    assert!(wecom.iter().all(|w| w == &wecom[0]));
    assert_eq!(wecom[0].0, "/wecom?key=abc123");
    assert_eq!(
        wecom[0].1,
        json!({"msgtype": "markdown", "markdown": {"content": format!(
            "**超时未处理 · test #7**\n> 事项：test #7\n> 环节：资料审核\n> 已等待：9 小时 0 分钟（时限 8 小时 0 分钟）\n> {owner_line}\n\n[查看详情]({link})"
        )}})
    );
    // DingTalk custom robot: markdown, signed in the query.
    let ding = about_i("/dingtalk", |b| b["markdown"]["title"].as_str());
    assert_eq!(ding.len(), 1);
    assert_eq!(
        ding[0].1,
        json!({"msgtype": "markdown", "markdown": {"title": "超时未处理 · test #7", "text": format!(
            "**超时未处理 · test #7**\n- 事项：test #7\n- 环节：资料审核\n- 已等待：9 小时 0 分钟（时限 8 小时 0 分钟）\n- {owner_line}\n\n[查看详情]({link})"
        )}})
    );
    let url = reqwest::Url::parse(&format!("http://x{}", ding[0].0)).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["access_token"], "tok");
    let ts: i64 = q["timestamp"].parse().unwrap();
    assert_eq!(ts, send_at, "milliseconds of the injected clock");
    assert_eq!(
        q["sign"],
        hmac_b64(b"SECtest", format!("{ts}\nSECtest").as_bytes())
    );
    // Feishu custom bot: post, signed in the body.
    let fs = about_i("/feishu/post", |b| {
        b["content"]["post"]["zh_cn"]["title"].as_str()
    });
    assert_eq!(fs.len(), 1);
    let fts = fs[0].1["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(fts, (send_at / 1000).to_string(), "seconds");
    assert_eq!(
        fs[0].1,
        json!({
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": "超时未处理 · test #7", "content": [
                [{"tag": "text", "text": "事项：test #7"}],
                [{"tag": "text", "text": "环节：资料审核"}],
                [{"tag": "text", "text": "已等待：9 小时 0 分钟（时限 8 小时 0 分钟）"}],
                [{"tag": "text", "text": owner_line}],
                [{"tag": "a", "text": "查看详情", "href": link}]
            ]}}},
            "timestamp": fts,
            "sign": hmac_b64(format!("{fts}\nfs-secret").as_bytes(), b""),
        })
    );
    // The card bot takes overrides only; the bot of another branch hears nothing.
    assert!(bots.received("/feishu/card").is_empty());
    assert!(bots.received("/other").is_empty());

    // The delivery log: one WeCom delivery took two attempts.
    let (_, d) = send(
        reqwest::Method::GET,
        &admin_token,
        &format!("/api/v1/webhooks/{}", targets["wecom"]),
        Value::Null,
    )
    .await;
    let deliveries = d["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|x| x["state"] == "sent"), "{d}");
    let retried = deliveries
        .iter()
        .find(|x| x["attempts"] == 2)
        .expect("one delivery needed two attempts");
    let log: Vec<(Option<i64>, bool)> = retried["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["http_status"].as_i64(), a["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(log, vec![(Some(500), false), (Some(200), true)]);
    assert_eq!(retried["log"][0]["detail"], "busy");

    // A manual override (e.g. by the risk capability): to the overrider's manager — the
    // branch manager overrides, so the company's manager is told — and the watchers.
    let raised = notify::raise_override(
        &store,
        &notify::Override {
            subject_type: "test",
            subject_id: 7,
            by_user: bm,
            by_username: &bm_name,
            detail: "自动决策 reject → approve：补充了收入证明",
            key: "risk_decision:1",
        },
        app.state.now_ms(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        raised.recipients,
        vec![(boss, "manager"), (watcher, "watcher")]
    );
    let twice = notify::raise_override(
        &store,
        &notify::Override {
            subject_type: "test",
            subject_id: 7,
            by_user: bm,
            by_username: &bm_name,
            detail: "x",
            key: "risk_decision:1",
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    assert!(twice.is_none(), "once per key");

    wait_for("the override on the card bot", || {
        bots.received("/feishu/card").len() == 1
    })
    .await;
    let card = bots.received("/feishu/card");
    assert_eq!(
        card[0].1,
        json!({"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": true},
            "header": {"title": {"tag": "plain_text", "content": "人工干预 · test #7"}, "template": "red"},
            "elements": [
                {"tag": "div", "text": {"tag": "lark_md", "content": format!(
                    "**事项**：test #7\n**环节**：资料审核\n**说明**：自动决策 reject → approve：补充了收入证明\n**负责人**：{bm_name}\n**发起人**：{bm_name}"
                )}},
                {"tag": "action", "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": "查看详情"}, "type": "primary", "url": link}]}
            ]
        }})
    );
    settle(&store).await;

    // A bot that keeps refusing (200 with an error code) is given up after the last
    // attempt and shows as failed.
    let (s, b) = send(
        reqwest::Method::POST,
        &admin_token,
        "/api/v1/webhooks",
        json!({"name": "坏机器人", "format": "wecom", "url": format!("{bot_base}/broken")}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let broken = b["id"].as_i64().unwrap();
    bots.script.lock().unwrap().insert(
        "/broken".into(),
        VecDeque::from(vec![
            (
                200,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#.to_owned()
            );
            10
        ]),
    );
    let (s, _) = send(
        reqwest::Method::POST,
        &admin_token,
        &format!("/api/v1/webhooks/{broken}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 202);
    for attempt in 1..=notify::WEBHOOK_ATTEMPTS {
        wait_for("a call of the broken bot", || {
            bots.received("/broken").len() as i64 == attempt
        })
        .await;
        settle(&store).await;
        app.clock
            .advance_millis(zhudai_store::jobs::backoff_ms(attempt) + 1);
    }
    let mut state = String::new();
    for _ in 0..200 {
        let (_, d) = send(
            reqwest::Method::GET,
            &admin_token,
            &format!("/api/v1/webhooks/{broken}"),
            Value::Null,
        )
        .await;
        state = d["deliveries"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "failed" {
            assert_eq!(d["deliveries"][0]["attempts"], notify::WEBHOOK_ATTEMPTS);
            assert_eq!(
                d["deliveries"][0]["log"].as_array().unwrap().len() as i64,
                notify::WEBHOOK_ATTEMPTS
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state, "failed");
    assert_eq!(
        bots.received("/broken")[0].1["msgtype"],
        "markdown",
        "a test message"
    );
    let _ = stop.send(true);
    worker.await.unwrap();

    // Stuck and funder timeouts: K reaches the funder-routing wait; two days later both
    // it and I have stopped moving, and K has waited past routing's 24 h limit.
    let (_, def) = wf::latest(&store, "origination").await.unwrap();
    let k = instance_with(
        &app,
        "test",
        9,
        &[(caller_of(cm, "customer_manager"), Action::Submit)],
    )
    .await;
    act(
        &app,
        k,
        &caller_of(v, "doc_verifier"),
        &Action::Approve,
        &passing_facts(&def, 30_000),
    )
    .await;
    act(
        &app,
        k,
        &caller_of(bm, "approver_l1"),
        &Action::Approve,
        &passing_facts(&def, 30_000),
    )
    .await;
    assert_eq!(store.instance(k).await.unwrap().unwrap().node, "routing");
    app.clock.advance_millis(49 * H);
    let r = wf::check_time_limits(&store, app.state.now_ms())
        .await
        .unwrap();
    assert!(r.idle >= 2, "{r:?}");
    let kinds = |evs: Vec<zhudai_store::notify::EventRow>| {
        evs.into_iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(store.events_of_instance(k).await.unwrap()),
        ["funder_timeout", "stuck"]
    );
    assert_eq!(
        kinds(store.events_of_instance(i).await.unwrap()),
        ["sla_breach", "override", "stuck"]
    );
    let _ = t0;
    app.stop().await;
}
