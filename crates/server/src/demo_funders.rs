//! Demo data of the funder network (demo mode only): a city commercial bank and a
//! consumer-finance company as funders, a credit enhancer, a data provider and a
//! collection agency, all admitted with checklists, limits and pricing for the demo
//! products `consumer_std`, `biz_interest_first`, `bridge_bullet` and `consumer_pilot`; one more bank still applying (to try the
//! admission workflow); and simulated routing runs so the performance pages have data.

use zhudai_domain::routing::{
    simulated_approves, simulated_latency_ms, CustomerFacts, DecisionFacts, RoutingRequest,
};
use zhudai_store::partners::{self as sp, Licence, Partner, ReserveRequest, RunRow, StepRow};
use zhudai_store::sqlx::AnyConnection;
use zhudai_store::StoreError;

struct Seed {
    code: &'static str,
    kind: &'static str,
    zh: &'static str,
    en: &'static str,
    admitted: bool,
    approval_bp: i64,
    latency_ms: i64,
    priority: i64,
    rule: &'static str,
    licence: (&'static str, &'static str, &'static str),
    /// (daily, total, per customer) in yuan.
    limits: Option<(i64, i64, i64)>,
    pricing: &'static [(&'static str, &'static str)],
    review_on: &'static str,
}

const SEEDS: &[Seed] = &[
    Seed {
        code: "bank_a",
        kind: "funder",
        zh: "甲城市商业银行股份有限公司",
        en: "Bank A City Commercial Bank",
        admitted: true,
        approval_bp: 7_500,
        latency_ms: 800,
        priority: 10,
        rule: r#"customer.age >= 22 && customer.age <= 55 && decision.grade in ["A", "B", "C"]"#,
        licence: (
            "金融许可证",
            "B0217H231000001",
            "国家金融监督管理总局上海监管局",
        ),
        limits: Some((5_000_000, 200_000_000, 300_000)),
        pricing: &[
            ("consumer_std", "0.072"),
            ("biz_interest_first", "0.065"),
            ("bridge_bullet", "0.07"),
            ("consumer_pilot", "0.075"),
        ],
        review_on: "2026-12-20",
    },
    Seed {
        code: "cfc_b",
        kind: "funder",
        zh: "乙消费金融有限公司",
        en: "CFC B Consumer Finance Co., Ltd.",
        admitted: true,
        approval_bp: 6_000,
        latency_ms: 400,
        priority: 20,
        rule: "app.amount <= 200000.00 && decision.score >= 560",
        licence: (
            "金融许可证（消费金融公司）",
            "N0012H233010001",
            "国家金融监督管理总局浙江监管局",
        ),
        limits: Some((2_000_000, 80_000_000, 200_000)),
        pricing: &[("consumer_std", "0.098"), ("consumer_pilot", "0.098")],
        review_on: "2027-06-30",
    },
    Seed {
        code: "ce_c",
        kind: "credit_enhancer",
        zh: "丙融资担保有限公司",
        en: "Guarantor C Financing Guarantee Co., Ltd.",
        admitted: true,
        approval_bp: 0,
        latency_ms: 0,
        priority: 100,
        rule: "true",
        licence: (
            "融资担保业务经营许可证",
            "沪0102023",
            "上海市地方金融管理局",
        ),
        limits: None,
        pricing: &[],
        review_on: "2027-03-31",
    },
    Seed {
        code: "dp_d",
        kind: "data_provider",
        zh: "丁数据科技有限公司",
        en: "Data D Technology Co., Ltd.",
        admitted: true,
        approval_bp: 0,
        latency_ms: 0,
        priority: 100,
        rule: "true",
        licence: (
            "企业征信机构备案",
            "310000-2023-0018",
            "中国人民银行上海总部",
        ),
        limits: None,
        pricing: &[],
        review_on: "2027-01-15",
    },
    Seed {
        code: "ca_e",
        kind: "collection_agency",
        zh: "戊资产管理有限公司",
        en: "Collections E Asset Management Co., Ltd.",
        admitted: true,
        approval_bp: 0,
        latency_ms: 0,
        priority: 100,
        rule: "true",
        licence: (
            "营业执照（商务服务）",
            "91510100MA6DEMO05",
            "成都市市场监督管理局",
        ),
        limits: None,
        pricing: &[],
        review_on: "2027-02-28",
    },
    Seed {
        code: "bank_f",
        kind: "funder",
        zh: "己农村商业银行股份有限公司",
        en: "Bank F Rural Commercial Bank",
        admitted: false,
        approval_bp: 7_000,
        latency_ms: 600,
        priority: 30,
        rule: "true",
        licence: (
            "金融许可证",
            "B1024H251010001",
            "国家金融监督管理总局四川监管局",
        ),
        limits: Some((3_000_000, 100_000_000, 300_000)),
        pricing: &[("consumer_std", "0.078"), ("biz_interest_first", "0.068")],
        review_on: "",
    },
];

const CHECKLIST: &[(&str, &str)] = &[
    ("licence_valid", "核验牌照原件及监管公示信息"),
    (
        "no_major_penalty",
        "查询监管处罚公示与裁判文书网，近三年无重大处罚",
    ),
    (
        "capital_adequacy",
        "2025 年报：资本充足率 13.2%，不良率 1.3%",
    ),
    ("partner_list", "其官网公示的合作机构名单已包含我司"),
    ("pricing_cap", "联合产品综合融资成本测算不超过 24%"),
    ("data_security", "等保三级备案证明及最近一次测评报告"),
    ("consumer_protection", "消保制度及投诉处理流程文件"),
    ("aml_controls", "反洗钱内控制度及最近一次审计报告"),
    (
        "collection_conduct",
        "催收行为规范、录音抽检记录，无投诉处罚",
    ),
    ("data_source_legal", "数据来源合规承诺及用户授权样本"),
];

fn partner(s: &Seed) -> Partner {
    Partner {
        id: 0,
        code: s.code.into(),
        kind: s.kind.into(),
        name_zh: s.zh.into(),
        name_en: s.en.into(),
        uscc: None,
        status: "applying".into(),
        status_since: "2025-03-01".into(),
        status_reason: None,
        listed_us_on: (s.kind == "funder" || s.kind == "credit_enhancer")
            .then(|| "2025-10-01".into()),
        agreement_start_on: Some("2025-04-01".into()),
        agreement_end_on: Some(
            if s.code == "cfc_b" {
                "2026-12-31"
            } else {
                "2028-03-31"
            }
            .into(),
        ),
        next_review_on: None,
        adapter: if s.kind == "funder" {
            "simulated"
        } else {
            "none"
        }
        .into(),
        endpoint_url: None,
        hmac_key_enc: None,
        timeout_ms: 5_000,
        sim_approval_bp: s.approval_bp,
        sim_latency_ms: s.latency_ms,
        sim_seed: 2026,
        priority: s.priority,
        eligibility_rule: s.rule.into(),
        rule_version: 1,
        notes: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

/// Seeds the partners and simulated runs inside the demo transaction.
pub async fn seed(conn: &mut AnyConnection, now_ms: i64) -> Result<usize, StoreError> {
    let standards: Vec<(String, String)> = {
        let rows = zhudai_store::sqlx::query(
            "SELECT code, kinds FROM admission_standards WHERE active = 1",
        )
        .fetch_all(&mut *conn)
        .await?;
        use zhudai_store::sqlx::Row;
        rows.iter()
            .map(|r| Ok((r.try_get("code")?, r.try_get("kinds")?)))
            .collect::<Result<_, StoreError>>()?
    };
    let mut funders = Vec::new();
    for s in SEEDS {
        let p = partner(s);
        let id = sp::partner_insert(conn, &p, "demo", now_ms).await?;
        sp::licence_insert(
            conn,
            id,
            &Licence {
                id: 0,
                licence_type: s.licence.0.into(),
                number: s.licence.1.into(),
                issuer: s.licence.2.into(),
                valid_until: Some("2030-12-31".into()),
            },
            now_ms,
        )
        .await?;
        sp::document_insert(
            conn,
            id,
            &sp::Document {
                id: 0,
                reference: format!("doc:partners/{}/cooperation-agreement.pdf", s.code),
                description: "合作协议（签署版）".into(),
                sha256: None,
            },
            now_ms,
        )
        .await?;
        sp::contact_insert(
            conn,
            id,
            &sp::Contact {
                id: 0,
                name: "业务对接人".into(),
                title: "合作业务部".into(),
                email: Some(format!(
                    "partner-desk@{}.example.cn",
                    s.code.replace('_', "-")
                )),
                phone_enc: None,
                row_key: format!("demo-{}", s.code),
            },
            now_ms,
        )
        .await?;
        let items: Vec<serde_json::Value> = standards
            .iter()
            .filter(|(_, kinds)| kinds.is_empty() || kinds.split(',').any(|k| k == s.kind))
            .filter_map(|(code, _)| {
                CHECKLIST.iter().find(|(c, _)| c == code).map(|(c, e)| {
                    serde_json::json!({"code": c, "passed": true, "evidence": e, "document_ref": null})
                })
            })
            .collect();
        if s.admitted {
            let items = serde_json::Value::Array(items).to_string();
            if let Some(adm) =
                sp::admission_submit(conn, id, &items, 0, "演示·资金合作经理", now_ms).await?
            {
                sp::admission_decide(
                    conn,
                    adm,
                    "approved",
                    -1,
                    "演示·合规/反洗钱专员",
                    Some("材料齐全，准予准入"),
                    now_ms,
                )
                .await?;
            }
            sp::partner_set_status(
                conn,
                &sp::StatusChange {
                    partner_id: id,
                    from: "applying",
                    to: "admitted",
                    on_date: "2025-03-20",
                    reason: Some("admission approved"),
                    actor: "demo",
                    next_review_on: Some(s.review_on),
                },
                now_ms,
            )
            .await?;
        }
        if let Some((daily, total, per_customer)) = s.limits {
            sp::limits_set(
                conn,
                id,
                daily * 100,
                total * 100,
                Some(per_customer * 100),
                now_ms,
            )
            .await?;
        }
        for (product, rate) in s.pricing {
            sp::pricing_set(conn, id, product, Some(rate), now_ms).await?;
        }
        if s.kind == "funder" && s.admitted {
            let mut p = p;
            p.id = id;
            funders.push(p);
        }
    }
    seed_runs(conn, &funders, now_ms).await
}

/// About forty simulated runs over the last two weeks.
async fn seed_runs(
    conn: &mut AnyConnection,
    funders: &[Partner],
    now_ms: i64,
) -> Result<usize, StoreError> {
    const PROVINCES: [&str; 5] = ["上海", "浙江", "四川", "江苏", "广东"];
    const GRADES: [&str; 5] = ["A", "B", "C", "C", "D"];
    let mut runs = 0;
    for i in 0..40_i64 {
        let at = now_ms - (i % 14) * 86_400_000 - (i * 7_919 % 36_000) * 1000;
        let product = if i % 4 == 3 {
            "biz_interest_first"
        } else {
            "consumer_std"
        };
        let req = RoutingRequest {
            application_ref: format!("DEMO-APP-{:04}", i + 1),
            product_code: product.into(),
            amount_fen: (20_000 + (i * 13_337) % 180_000) * 100,
            months: [12, 24, 36][(i % 3) as usize],
            customer_ref: format!("DEMO-C-{:03}", i % 31),
            customer: CustomerFacts {
                age: 22 + (i * 7) % 38,
                province: PROVINCES[(i % 5) as usize].into(),
            },
            decision: DecisionFacts {
                risk_grade: GRADES[(i % 5) as usize].into(),
                score: 540 + (i * 37) % 200,
            },
            allowed_funders: None,
        };
        // The demo funders' order is fixed by priority (bank_a, then cfc_b).
        let mut order = Vec::new();
        let mut skipped = Vec::new();
        for f in funders {
            let prices = sp_prices(f);
            let ok = prices.contains(&product) && crate::routing::eligible(f, &req) == Ok(true);
            if ok {
                order.push(f);
            } else {
                skipped.push(f);
            }
        }
        let mut tx_steps = Vec::new();
        let mut routed = None;
        for f in &order {
            let approved =
                simulated_approves(f.sim_seed, &f.code, &req.application_ref, f.sim_approval_bp);
            let latency =
                simulated_latency_ms(f.sim_seed, &f.code, &req.application_ref, f.sim_latency_ms);
            tx_steps.push((f, if approved { "approved" } else { "declined" }, latency));
            if approved {
                routed = Some(*f);
                break;
            }
        }
        let run_id = sp::run_insert(
            conn,
            &RunRow {
                id: 0,
                application_ref: req.application_ref.clone(),
                product_code: req.product_code.clone(),
                amount_fen: req.amount_fen,
                months: req.months,
                customer_ref: req.customer_ref.clone(),
                request: serde_json::to_string(&req).unwrap_or_default(),
                plan: serde_json::to_string(
                    &order.iter().map(|f| f.code.clone()).collect::<Vec<_>>(),
                )
                .unwrap_or_default(),
                state: if routed.is_some() {
                    "routed"
                } else {
                    "exhausted"
                }
                .into(),
                next_index: tx_steps.len().saturating_sub(1) as i64,
                funder_code: routed.map(|f| f.code.clone()),
                started_by: Some("demo".into()),
                started_at_ms: at,
                finished_at_ms: None,
            },
        )
        .await?;
        let base = StepRow {
            id: 0,
            run_id,
            seq: 0,
            partner_code: String::new(),
            outcome: String::new(),
            reason_code: None,
            reason: None,
            attempt: 1,
            reservation_id: None,
            external_ref: None,
            started_at_ms: at,
            duration_ms: None,
            decided_at_ms: None,
        };
        for f in &skipped {
            sp::step_insert(
                conn,
                &StepRow {
                    partner_code: f.code.clone(),
                    outcome: "skipped".into(),
                    reason_code: Some("ineligible".into()),
                    reason: Some("the eligibility rule does not hold".into()),
                    ..base.clone()
                },
            )
            .await?;
        }
        for (f, outcome, latency) in tx_steps {
            let mut reservation = None;
            if outcome == "approved" {
                let day = zhudai_domain::clock::business_date(
                    chrono::DateTime::from_timestamp_millis(at).unwrap_or_default(),
                )
                .to_string();
                if let Ok(id) = sp::quota_reserve(
                    conn,
                    &ReserveRequest {
                        partner_id: f.id,
                        run_id: Some(run_id),
                        customer_ref: &req.customer_ref,
                        amount_fen: req.amount_fen,
                        day: &day,
                    },
                    at,
                )
                .await?
                {
                    sp::quota_consume(conn, id, at).await?;
                    reservation = Some(id);
                }
            }
            sp::step_insert(
                conn,
                &StepRow {
                    partner_code: f.code.clone(),
                    outcome: outcome.into(),
                    reason_code: (outcome == "declined").then(|| "declined".into()),
                    reason: (outcome == "declined").then(|| "simulated decline".into()),
                    reservation_id: reservation,
                    external_ref: (outcome == "approved")
                        .then(|| format!("SIM-{}-{run_id}", f.code)),
                    duration_ms: Some(latency),
                    decided_at_ms: Some(at + latency),
                    ..base.clone()
                },
            )
            .await?;
        }
        runs += 1;
    }
    Ok(runs)
}

fn sp_prices(f: &Partner) -> Vec<&'static str> {
    SEEDS
        .iter()
        .find(|s| s.code == f.code)
        .map(|s| s.pricing.iter().map(|(p, _)| *p).collect())
        .unwrap_or_default()
}
