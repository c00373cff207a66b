//! Credit decisions (issue #7) over HTTP on both databases: the origination flow's
//! automatic decision (approve → one-level chain, refer → a level more, reject →
//! rejected), stored with model, rule set, input digest and reasons, and replayed to the
//! same result; raw applicants; rule sets that do not compile refused, tested on samples,
//! enabled; models uploaded as challengers (scored alongside), compared and promoted;
//! overrides under the two-person rule.

use crate::documents::{upload, PNG};
use crate::support::TestApp;
use serde_json::{json, Value};
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(origination_decides_and_replays, rules_models_and_overrides);

struct Ctx<'a> {
    app: &'a TestApp,
    c: reqwest::Client,
}

impl Ctx<'_> {
    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .c
            .post(self.app.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .c
            .get(self.app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    }
}

struct People {
    cm: String,
    verifier: String,
    risk: String,
    risk2: String,
}

async fn people(app: &TestApp) -> People {
    let co = app.org_unit(None, "company", "r-co").await;
    let branch = app.org_unit(Some(co), "branch", "r-br").await;
    let team = app.org_unit(Some(branch), "team", "r-team").await;
    People {
        cm: app.token_in_unit("customer_manager", Some(team)).await,
        verifier: app.token_in_unit("doc_verifier", Some(branch)).await,
        risk: app.token_in_unit("risk_reviewer", Some(branch)).await,
        risk2: app.token_in_unit("risk_reviewer", Some(branch)).await,
    }
}

/// A customer (born per the ID body) with all materials verified and an application of
/// `amount` for 12 months submitted and through document review. Returns (customer,
/// application, the review response).
async fn through_review(
    x: &Ctx<'_>,
    p: &People,
    id_body: &str,
    phone: &str,
    amount: &str,
) -> (i64, i64, Value) {
    let id_number = zhudai_domain::ident::ResidentId::from_body(id_body).unwrap();
    let (s, cust) = x
        .post(
            &p.cm,
            "/api/v1/customers",
            json!({"name": "赵六", "id_number": id_number.as_str(), "phone": phone, "monthly_income": "12000.00"}),
        )
        .await;
    assert_eq!(s, 201, "{cust}");
    let customer = cust["id"].as_i64().unwrap();
    let (s, a) = x
        .post(
            &p.cm,
            "/api/v1/applications",
            json!({"customer_id": customer, "product_code": "consumer_std", "amount": amount, "months": 12}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_i64().unwrap();
    let act = format!("/api/v1/applications/{id}/actions");
    assert_eq!(
        x.post(&p.cm, &act, json!({"action": "submit"})).await.0,
        200
    );
    for (kind, extra) in [
        (
            "id_front",
            vec![
                ("declared_name", "赵六"),
                ("declared_id_number", id_number.as_str()),
            ],
        ),
        ("id_back", vec![("expiry_date", "2036-01-01")]),
        ("income_proof", vec![]),
        ("credit_report", vec![]),
    ] {
        let mut fields = vec![("doc_type", kind)];
        fields.extend(extra);
        let r = upload(x.app, &p.cm, customer, "scan.png", PNG.to_vec(), &fields).await;
        assert_eq!(r.status(), 201);
        let doc = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let (s, r) = x
            .post(
                &p.verifier,
                &format!("/api/v1/customers/{customer}/documents/{doc}/verification"),
                json!({"decision": "verified"}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, r) = x
        .post(&p.verifier, &act, json!({"action": "approve"}))
        .await;
    assert_eq!(s, 200, "{r}");
    (customer, id, r)
}

async fn decision_of(x: &Ctx<'_>, token: &str, app_id: i64) -> Value {
    let (s, list) = x
        .get(token, &format!("/api/v1/decisions?application_id={app_id}"))
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_i64().unwrap();
    let (s, d) = x.get(token, &format!("/api/v1/decisions/{id}")).await;
    assert_eq!(s, 200, "{d}");
    d
}

/// [`zhudai_store::Store::risk_applicant_history`] against the separate reads it
/// replaced, for an application's customer at several windows; returns the history.
async fn history_agrees(db: &TestDb, app_id: i64) -> zhudai_store::risk::ApplicantHistory {
    use zhudai_store::customers::IndexedField;
    let s = &db.store;
    let a = s.application(app_id).await.unwrap().unwrap();
    let c = s.customer_get(a.customer_id).await.unwrap().unwrap();
    let mut out = None;
    for since in [0, a.created_at_ms, a.created_at_ms + 1, i64::MAX] {
        let h = s
            .risk_applicant_history(&zhudai_store::risk::HistoryKeys {
                id_number_bidx: c.id_number_bidx.as_deref(),
                phone_bidx: c.phone_bidx.as_deref(),
                bank_card_bidx: c.bank_card_bidx.as_deref(),
                customer_id: c.id,
                application_id: app_id,
                since_ms: since,
            })
            .await
            .unwrap();
        let mut keys = Vec::new();
        for (field, b) in [
            ("id_number", &c.id_number_bidx),
            ("phone", &c.phone_bidx),
            ("bank_card", &c.bank_card_bidx),
        ] {
            if let Some(b) = b {
                keys.push((field, b.as_str()));
            }
        }
        assert_eq!(h.blacklisted, s.risk_blacklisted(&keys).await.unwrap());
        let recent = match &c.id_number_bidx {
            Some(b) => s
                .risk_recent_applications(b, since, Some(app_id))
                .await
                .unwrap(),
            None => 0,
        };
        assert_eq!(h.recent_applications, recent, "since {since}");
        for (field, b, dup) in [
            (
                IndexedField::IdNumber,
                &c.id_number_bidx,
                h.duplicate_id_number,
            ),
            (IndexedField::Phone, &c.phone_bidx, h.duplicate_phone),
            (
                IndexedField::BankCard,
                &c.bank_card_bidx,
                h.duplicate_bank_card,
            ),
        ] {
            let matches = match b {
                Some(b) => !s
                    .customer_matches(field, b, Some(c.id))
                    .await
                    .unwrap()
                    .is_empty(),
                None => false,
            };
            assert_eq!(dup, matches, "{field:?}");
        }
        assert_eq!(
            h.existing_loans,
            s.risk_existing_loans(c.id, app_id).await.unwrap()
        );
        out = Some(h);
    }
    out.unwrap()
}

async fn origination_decides_and_replays(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let x = Ctx {
        app: &app,
        c: reqwest::Client::new(),
    };
    let p = people(&app).await;

    // 1. Born 1985, 30,000 yuan for 12 months: 512 + 6 + 6 = 524 → approve, grade C.
    let (_, id, r) = through_review(&x, &p, "11010519850101003", "13912340001", "30000").await;
    assert_eq!(r["node"], "approval", "{r}");
    let d = decision_of(&x, &p.risk, id).await;
    assert_eq!(d["outcome"], "approve", "{d}");
    assert_eq!(d["final_outcome"], "approve");
    assert_eq!(
        (d["score"].as_i64(), d["grade"].as_str()),
        (Some(524), Some("C"))
    );
    assert_eq!(d["limit"], "24000.00");
    assert_eq!(d["price_band"], "P3");
    assert_eq!(d["input"]["applicant"]["age"], 41);
    assert_eq!(d["input"]["applicant"]["identity_match"], true);
    assert_eq!(d["input"]["applicant"]["monthly_income"], "12000.00");
    assert_eq!(d["input_digest"].as_str().unwrap().len(), 64);
    let reasons = d["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 4, "four score factors: {d}");
    assert!(reasons.iter().all(|r| r["kind"] == "score_factor"), "{d}");
    // The term asked for is a real factor (12 months: 19 points below 6 months); facts
    // zhudai does not collect are named as not provided.
    let term = reasons
        .iter()
        .find(|r| r["code"] == "duration_in_month")
        .unwrap();
    assert_eq!(term["points_below_best"], 19);
    assert_eq!(term["zh"], "借款期限（月）：(10, 15]（评分 −19）");
    assert_eq!(
        reasons[0]["en"],
        "Checking account status: not provided (−26 points)"
    );
    let (_, a) = x.get(&p.cm, &format!("/api/v1/applications/{id}")).await;
    assert_eq!(a["waiting_for_role"], "approver_l1", "approve: one level");
    // The decision's step and the decision share a transaction; it is audited.
    let did = d["id"].as_i64().unwrap();
    let (s, rp) = x
        .post(
            &p.risk,
            &format!("/api/v1/decisions/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rp}");
    assert_eq!(rp["same"], true, "{rp}");
    assert_eq!(rp["input_intact"], true);
    assert_eq!(rp["score"], 524);
    assert_eq!(rp["reasons"], d["reasons"]);

    // 2. A second customer with the same phone: duplicate contact → refer → two levels.
    let (_, id2, r) = through_review(&x, &p, "11010519850101011", "13912340001", "30000").await;
    assert_eq!(r["node"], "approval", "{r}");
    let d2 = decision_of(&x, &p.risk, id2).await;
    assert_eq!(d2["outcome"], "refer", "{d2}");
    assert_eq!(d2["rules_fired"], json!(["duplicate_contact"]));
    assert_eq!(d2["reasons"][0]["code"], "duplicate_contact");
    assert!(d2["reasons"][0]["zh"].as_str().unwrap().contains("手机号"));
    let (_, a2) = x.get(&p.cm, &format!("/api/v1/applications/{id2}")).await;
    assert_eq!(a2["waiting_for_role"], "approver_l1");
    let run = db
        .store
        .instance_of("application", id2)
        .await
        .unwrap()
        .unwrap();
    let st: zhudai_workflow::InstanceState = serde_json::from_str(&run.state).unwrap();
    assert_eq!(
        st.levels
            .iter()
            .map(|l| l.role.as_str())
            .collect::<Vec<_>>(),
        ["approver_l1", "approver_l2"],
        "refer lifts 30,000 yuan to two levels"
    );

    // 3. A blacklisted ID number: hard reject → the application is rejected.
    let (s, r) = x
        .post(
            &p.risk,
            "/api/v1/blacklist",
            json!({"field": "id_number", "value": zhudai_domain::ident::ResidentId::from_body("11010519900101002").unwrap().as_str(), "reason": "fraud ring"}),
        )
        .await;
    assert_eq!((s, &r["added"]), (201, &json!(true)), "{r}");
    let (_, id3, r) = through_review(&x, &p, "11010519900101002", "13912340003", "30000").await;
    assert_eq!(r["node"], "rejected", "{r}");
    assert_eq!(r["finished"], "rejected");
    let d3 = decision_of(&x, &p.risk, id3).await;
    assert_eq!(d3["outcome"], "reject");
    assert_eq!(d3["limit"], "0.00");
    assert_eq!(d3["reasons"][0]["code"], "blacklist");
    let (_, a3) = x.get(&p.cm, &format!("/api/v1/applications/{id3}")).await;
    assert_eq!(a3["status"], "rejected");
    // The applicant's history is read in one statement; it agrees with the separate
    // reads it replaced, for every applicant so far.
    let mut seen = Vec::new();
    for app_id in [id, id2, id3] {
        seen.push(history_agrees(db, app_id).await);
    }
    assert!(
        seen[0].duplicate_phone && seen[1].duplicate_phone,
        "{seen:?}"
    );
    assert!(!seen[0].blacklisted && seen[2].blacklisted, "{seen:?}");
    // The entry can be removed again, with a reason (audited); without one nothing changes.
    let (_, list) = x.get(&p.risk, "/api/v1/blacklist").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let entry = list[0]["id"].as_i64().unwrap();
    let removal = format!("/api/v1/blacklist/{entry}/removal");
    let (s, e) = x.post(&p.risk, &removal, json!({"reason": " "})).await;
    assert_eq!(
        (s, e["errors"][0]["field"].as_str()),
        (422, Some("reason")),
        "{e}"
    );
    assert_eq!(x.get(&p.risk, "/api/v1/blacklist").await.1, list);
    assert_eq!(
        x.post(&p.cm, &removal, json!({"reason": "误录"})).await.0,
        403
    );
    assert_eq!(
        x.post(&p.risk, &removal, json!({"reason": "误录"})).await.0,
        204
    );
    assert_eq!(x.get(&p.risk, "/api/v1/blacklist").await.1, json!([]));
    assert_eq!(
        x.post(&p.risk, &removal, json!({"reason": "误录"})).await.0,
        404
    );
    let removed: String = zhudai_store::sqlx::query_scalar(
        "SELECT reason FROM audit_log WHERE action = 'risk.blacklist.remove'",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap();
    assert_eq!(removed, "id_number: 误录");

    // 4. A raw applicant through the API: a minor is rejected, and the replay agrees.
    let (s, raw) = x
        .post(
            &p.risk,
            "/api/v1/decisions",
            json!({"subject": "bench-1", "applicant": {"app": {"amount": "5000", "months": 6}, "applicant": {"age": 17}}}),
        )
        .await;
    assert_eq!(s, 201, "{raw}");
    assert_eq!(raw["outcome"], "reject");
    assert_eq!(raw["rules_fired"], json!(["age_range"]));
    assert_eq!(raw["application_id"], Value::Null);
    let (_, rp) = x
        .post(
            &p.risk,
            &format!("/api/v1/decisions/{}/replay", raw["id"]),
            json!({}),
        )
        .await;
    assert_eq!(rp["same"], true, "{rp}");
    // Population stability: the decision is an observation of the champion (its score
    // and every model feature), and the default champion is monitored against its
    // development sample.
    let obs = zhudai_store::sqlx::query(
        "SELECT model_name, score, features FROM score_observations WHERE subject = $1",
    )
    .bind(format!("decision:{}", raw["id"]))
    .fetch_all(db.store.reader())
    .await
    .unwrap();
    assert_eq!(obs.len(), 1);
    use zhudai_store::sqlx::Row;
    assert_eq!(obs[0].get::<String, _>(0), "german-credit-default");
    assert_eq!(Some(obs[0].get::<i64, _>(1)), raw["score"].as_i64());
    let features: serde_json::Map<String, Value> =
        serde_json::from_str(&obs[0].get::<String, _>(2)).unwrap();
    let model = zhudai_scorecard::Scorecard::from_json(zhudai_risk::DEFAULT_MODEL).unwrap();
    assert_eq!(
        features
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        model
            .feature_names()
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let baselines: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM psi_baselines WHERE model_name = 'german-credit-default'",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap();
    assert_eq!(baselines, 1);
    // A typo in the applicant is named.
    let (s, e) = x
        .post(
            &p.risk,
            "/api/v1/decisions",
            json!({"applicant": {"app": {"amount": "5000", "months": 6}, "applicant": {"agee": 17}}}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(e.to_string().contains("agee"), "{e}");
    // Deciding needs risk.manage; reading needs risk.read.
    assert_eq!(
        x.post(&p.cm, "/api/v1/decisions", json!({"application_id": id}))
            .await
            .0,
        403
    );
    assert_eq!(x.get(&p.cm, "/api/v1/decisions").await.0, 403);
    // Every decision wrote an audit record.
    let n: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'risk.decide'",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap();
    assert_eq!(n, 4);
    app.stop().await;
}

async fn rules_models_and_overrides(db: &TestDb) {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let x = Ctx {
        app: &app,
        c: reqwest::Client::new(),
    };
    let p = people(&app).await;
    let (_, rule_sets) = x.get(&p.risk, "/api/v1/rule-sets").await;
    assert_eq!(rule_sets.as_array().unwrap().len(), 1, "{rule_sets}");
    assert_eq!(rule_sets[0]["enabled"], true);
    let source = rule_sets[0]["source"].as_str().unwrap().to_owned();

    // A rule naming an unknown field cannot be saved or enabled; the error names it.
    let broken = source.replace(
        "when = \"applicant.blacklisted\"",
        "when = \"applicant.blacklistd\"",
    );
    for enable in [false, true] {
        let (s, e) = x
            .post(
                &p.risk,
                "/api/v1/rule-sets",
                json!({"source": broken, "enable": enable}),
            )
            .await;
        assert_eq!(s, 422, "{e}");
        assert_eq!(e["errors"][0]["field"], "rules.blacklist.when");
        assert!(
            e["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("did you mean `applicant.blacklisted`"),
            "{e}"
        );
    }
    // One that does not parse.
    let (s, e) = x
        .post(&p.risk, "/api/v1/rule-sets", json!({"source": source.replace("when = \"applicant.blacklisted\"", "when = \"applicant.blacklisted &&\"")}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        x.get(&p.risk, "/api/v1/rule-sets")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Test a stricter version on sample rows (CSV and JSON) before saving.
    let stricter = source.replace(
        "applicant.recent_applications >= 5",
        "applicant.recent_applications >= 2",
    );
    let (s, rows) = x
        .post(
            &p.risk,
            "/api/v1/rule-sets/test",
            json!({"source": stricter, "samples": "app.amount,app.months,applicant.age,applicant.recent_applications\n30000,12,41,2\n30000,12,41,0\n30000,x,41,0\n"}),
        )
        .await;
    assert_eq!(s, 200, "{rows}");
    assert_eq!(rows[0]["fired"], json!(["multi_lending_hard"]));
    assert_eq!(rows[0]["outcome"], "reject");
    assert_eq!(rows[1]["fired"], json!([]));
    assert_eq!(rows[1]["outcome"], "approve");
    assert!(rows[2]["invalid"].as_str().unwrap().contains("app.months"));
    let (s, rows) = x
        .post(
            &p.risk,
            "/api/v1/rule-sets/test",
            json!({"source": stricter, "samples": "[{\"app\":{\"amount\":\"1000\",\"months\":6},\"applicant\":{\"age\":70}}]"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(rows[0]["fired"], json!(["age_range"]));

    // A raw decision under v1, then v2 saved and enabled: new decisions use v2, the old
    // one still replays with v1.
    let applicant = json!({"app": {"amount": "30000", "months": 12}, "applicant": {"age": 41, "recent_applications": 2}});
    let (_, d1) = x
        .post(
            &p.risk,
            "/api/v1/decisions",
            json!({"applicant": applicant}),
        )
        .await;
    assert_eq!(d1["outcome"], "approve", "{d1}");
    let (s, saved) = x
        .post(&p.risk, "/api/v1/rule-sets", json!({"source": stricter}))
        .await;
    assert_eq!((s, &saved["version"]), (201, &json!(2)), "{saved}");
    let (s, _) = x
        .post(
            &p.risk,
            &format!("/api/v1/rule-sets/{}/enable", saved["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, 204);
    let (_, d2) = x
        .post(
            &p.risk,
            "/api/v1/decisions",
            json!({"applicant": applicant}),
        )
        .await;
    assert_eq!(d2["outcome"], "reject", "{d2}");
    assert_eq!(d2["rule_set_id"], saved["id"]);
    let (_, rp) = x
        .post(
            &p.risk,
            &format!("/api/v1/decisions/{}/replay", d1["id"]),
            json!({}),
        )
        .await;
    assert_eq!(
        (&rp["same"], &rp["outcome"]),
        (&json!(true), &json!("approve")),
        "{rp}"
    );

    // A challenger model: the default with the age feature mapped away and a new version.
    let (_, models) = x.get(&p.risk, "/api/v1/models").await;
    assert_eq!(models.as_array().unwrap().len(), 1);
    let champion_id = models[0]["id"].as_i64().unwrap();
    assert_eq!(models[0]["status"], "champion");
    let (_, m) = x
        .get(&p.risk, &format!("/api/v1/models/{champion_id}"))
        .await;
    let mut spec = m["model"].clone();
    spec["metadata"]["version"] = json!("2026.2");
    let inputs = json!([{"feature": "duration_in_month", "from": "app.months"}]);
    // Bad mappings are named.
    let (s, e) = x
        .post(
            &p.risk,
            "/api/v1/models",
            json!({"model": spec, "inputs": [{"feature": "nope"}]}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["errors"][0]["field"], "inputs.nope");
    let (s, up) = x
        .post(
            &p.risk,
            "/api/v1/models",
            json!({"model": spec, "inputs": inputs, "note": "no age"}),
        )
        .await;
    assert_eq!(s, 201, "{up}");
    let challenger = up["id"].as_i64().unwrap();
    assert_eq!(
        x.post(&p.risk, "/api/v1/models", json!({"model": spec}))
            .await
            .0,
        422,
        "same name and version twice"
    );
    let (_, d3) = x
        .post(&p.risk, "/api/v1/decisions", json!({"applicant": {"app": {"amount": "30000", "months": 12}, "applicant": {"age": 41}}}))
        .await;
    assert_eq!(d3["score"], 524);
    assert_eq!(d3["model_id"], champion_id);
    assert_eq!(d3["challengers"][0]["model_id"], challenger);
    assert_eq!(d3["challengers"][0]["score"], 518, "no age points: 512 + 6");
    // Compare with a labelled sample.
    let sample = "duration_in_month,age_in_years,creditability\n6,50,good\n48,20,bad\n12,35,good\n36,22,bad\n";
    let (s, cmp) = x
        .post(
            &p.risk,
            "/api/v1/models/compare",
            json!({"a": champion_id, "b": challenger, "sample_csv": sample}),
        )
        .await;
    assert_eq!(s, 200, "{cmp}");
    assert_eq!(cmp["a"]["auc"], 1.0);
    assert_eq!(cmp["a"]["dev_rows"], 1000);
    assert!(
        cmp["a"]["features"][0]["iv"].as_f64().unwrap() > 0.6,
        "{cmp}"
    );
    assert!(!cmp["b"]["live_scores"].as_array().unwrap().is_empty());
    // Promote (risk.manage only), then the challenger decides.
    assert_eq!(
        x.post(
            &p.cm,
            &format!("/api/v1/models/{challenger}/promote"),
            json!({})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        x.post(
            &p.risk,
            &format!("/api/v1/models/{challenger}/promote"),
            json!({})
        )
        .await
        .0,
        204
    );
    let (_, models) = x.get(&p.risk, "/api/v1/models").await;
    let status = |id: i64| {
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        (status(challenger), status(champion_id)),
        (json!("champion"), json!("challenger"))
    );
    let (_, d4) = x
        .post(&p.risk, "/api/v1/decisions", json!({"applicant": {"app": {"amount": "30000", "months": 12}, "applicant": {"age": 41}}}))
        .await;
    assert_eq!(
        (d4["model_id"].as_i64(), d4["score"].as_i64()),
        (Some(challenger), Some(518))
    );
    // The champion cannot be retired; the old champion can.
    assert_eq!(
        x.post(
            &p.risk,
            &format!("/api/v1/models/{challenger}/status"),
            json!({"status": "retired"})
        )
        .await
        .0,
        409
    );
    assert_eq!(
        x.post(
            &p.risk,
            &format!("/api/v1/models/{champion_id}/status"),
            json!({"status": "retired"})
        )
        .await
        .0,
        204
    );
    // Back to the default champion for the workflow part.
    x.post(
        &p.risk,
        &format!("/api/v1/models/{champion_id}/status"),
        json!({"status": "challenger"}),
    )
    .await;
    assert_eq!(
        x.post(
            &p.risk,
            &format!("/api/v1/models/{champion_id}/promote"),
            json!({})
        )
        .await
        .0,
        204
    );
    // v1 rules again.
    x.post(
        &p.risk,
        &format!("/api/v1/rule-sets/{}/enable", rule_sets[0]["id"]),
        json!({}),
    )
    .await;

    // Overrides: an application approved by the engine, overridden to reject by two
    // people, is rejected while it waits for approval.
    let (_, id, r) = through_review(&x, &p, "11010519850101003", "13912340011", "30000").await;
    assert_eq!(r["node"], "approval");
    let d = decision_of(&x, &p.risk, id).await;
    let did = d["id"].as_i64().unwrap();
    let path = format!("/api/v1/decisions/{did}/overrides");
    let (s, e) = x
        .post(&p.risk, &path, json!({"outcome": "reject", "reason": ""}))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, o) = x
        .post(
            &p.risk,
            &path,
            json!({"outcome": "reject", "reason": "fraud suspected by the call centre"}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let oid = o["id"].as_i64().unwrap();
    assert_eq!(
        x.post(
            &p.risk2,
            &path,
            json!({"outcome": "refer", "reason": "another one"})
        )
        .await
        .0,
        409,
        "one pending override per decision"
    );
    let decide = format!("{path}/{oid}/decision");
    let (s, e) = x.post(&p.risk, &decide, json!({"approve": true})).await;
    assert_eq!(s, 403, "the requester cannot approve: {e}");
    assert!(e["detail"].as_str().unwrap().contains("two-person"));
    assert_eq!(
        x.post(&p.risk2, &decide, json!({"approve": true})).await.0,
        204
    );
    assert_eq!(
        x.post(&p.risk2, &decide, json!({"approve": true})).await.0,
        409
    );
    let d = decision_of(&x, &p.risk, id).await;
    assert_eq!(
        (d["outcome"].as_str(), d["final_outcome"].as_str()),
        (Some("approve"), Some("reject"))
    );
    assert_eq!(d["overrides"][0]["state"], "approved");
    let (_, a) = x.get(&p.cm, &format!("/api/v1/applications/{id}")).await;
    assert_eq!(
        (a["status"].as_str(), a["node"].as_str()),
        (Some("rejected"), Some("rejected")),
        "{a}"
    );
    // Replay still reproduces the engine's own decision.
    let (_, rp) = x
        .post(
            &p.risk,
            &format!("/api/v1/decisions/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(
        (&rp["same"], &rp["outcome"]),
        (&json!(true), &json!("approve"))
    );
    let n: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action IN ('risk.override.request', 'risk.override.decide', 'risk.model.promote', 'risk.rules.save', 'risk.rules.enable', 'risk.model.upload')",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap();
    assert!(n >= 8, "{n}");
    app.stop().await;
}
