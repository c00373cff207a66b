//! Demo data for risk warnings and credit limits (issue #7 items 3 and 4): a handful of
//! warning rules, credit lines for demo customers (requested by the demo risk reviewer,
//! approved by the demo risk manager), a week of events that open warnings through the
//! real engine, and a scorecard under stability monitoring with a week of PSI runs
//! drifting past the threshold. Runs once per database (a metadata key), after the demo
//! customers exist.

use crate::state::AppState;
use crate::warnings::{self, engine::LoanFacts, RiskEvent};
use serde_json::json;
use zhudai_store::meta::meta_insert_once;
use zhudai_store::StoreError;

const SEEDED_KEY: &str = "demo.risk.seeded";
const DAY_MS: i64 = 86_400_000;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// The demo rules: (code, name, category, stage, severity, on_events, condition, actions).
const RULES: &[(&str, &str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "failed_3x_30d",
        "30天内扣款失败3次",
        "repayment",
        "in_loan",
        "high",
        "repayment_failed",
        "count(repayment_failed, 30d) >= 3",
        r#"[{"kind":"assign_task","role":"post_loan","title":"致电客户核实还款能力"},{"kind":"freeze_line"}]"#,
    ),
    (
        "dpd_over_30",
        "逾期超过30天",
        "repayment",
        "post_loan",
        "critical",
        "overdue",
        "event.days > 30",
        r#"[{"kind":"assign_task","role":"collector","title":"启动催收"},{"kind":"cut_line","percent":100}]"#,
    ),
    (
        "multi_lender",
        "多头借贷：7天内查询机构数过多",
        "credit",
        "pre_loan",
        "medium",
        "credit_inquiry",
        "sum(credit_inquiry.count, 7d) >= 8",
        r#"[{"kind":"assign_task","role":"risk_reviewer","title":"复核多头借贷情况"}]"#,
    ),
    (
        "blacklist",
        "命中黑名单",
        "fraud",
        "pre_loan",
        "critical",
        "blacklist_hit",
        "true",
        r#"[{"kind":"freeze_line"}]"#,
    ),
    (
        "funder_overdue",
        "资金方逾期率过高",
        "partner",
        "in_loan",
        "high",
        "partner_signal",
        "has(event.rate) && event.rate > 0.08",
        r#"[{"kind":"assign_task","role":"funding_manager","title":"核查资金方资产质量"}]"#,
    ),
];

/// Seeds the risk demo once; returns whether it did.
pub async fn seed(state: &AppState) -> Result<bool, StoreError> {
    let store = state.store();
    let now = state.now_ms();
    let customers: Vec<i64> = zhudai_store::sqlx::query_scalar(
        "SELECT id FROM customers WHERE kind = 'individual' AND status = 'active' ORDER BY id LIMIT 6",
    )
    .fetch_all(store.reader())
    .await?;
    let (Some(reviewer), Some(manager)) = (
        store.user_by_username("demo_risk_reviewer").await?,
        store.user_by_username("demo_risk_manager").await?,
    ) else {
        return Ok(false);
    };
    if customers.len() < 3 {
        return Ok(false);
    }
    let mut tx = store.begin().await?;
    if !meta_insert_once(&mut *tx, SEEDED_KEY, "done", now).await? {
        return Ok(false);
    }
    for (code, name, category, stage, severity, on, condition, actions) in RULES {
        let values = zhudai_store::warnings::RuleValues {
            name,
            category,
            stage,
            severity,
            on_events: on,
            condition,
            actions,
            compile_error: None,
        };
        let id = zhudai_store::warnings::rule_insert(&mut tx, code, &values, Some(manager.id), now)
            .await?;
        zhudai_store::warnings::rule_set_enabled(&mut tx, id, true, Some(manager.id), now).await?;
    }
    // Credit lines: requested by the reviewer, approved by the manager.
    let until = (state.clock().today() + chrono::Days::new(365)).to_string();
    for (i, c) in customers.iter().enumerate() {
        let amount = 3_000_000 + 1_000_000 * i as i64;
        let a = zhudai_store::limits::adjustment_insert(
            &mut tx,
            &zhudai_store::limits::NewAdjustment {
                limit_id: None,
                scope: "customer",
                customer_id: *c,
                kind: "set",
                new_amount_fen: Some(amount),
                new_valid_until: Some(&until),
                reason: "初次授信（演示）",
                requested_by: reviewer.id,
            },
            now - 20 * DAY_MS,
        )
        .await?;
        let id = zhudai_store::limits::limit_insert(
            &mut tx,
            "customer",
            *c,
            amount,
            &until,
            &manager.username,
            now - 20 * DAY_MS,
        )
        .await?;
        zhudai_store::limits::history_insert(
            &mut tx,
            id,
            &manager.username,
            "open",
            (None, None),
            (Some(amount), Some("active")),
            Some("初次授信（演示）"),
            now - 20 * DAY_MS,
        )
        .await?;
        zhudai_store::limits::adjustment_decide(
            &mut tx,
            a,
            true,
            manager.id,
            Some("同意"),
            Some(id),
            now - 20 * DAY_MS,
        )
        .await?;
    }
    // One increase waits for the checker.
    if let Some(c) = customers.first() {
        zhudai_store::limits::adjustment_insert(
            &mut tx,
            &zhudai_store::limits::NewAdjustment {
                limit_id: None,
                scope: "customer",
                customer_id: *c,
                kind: "set",
                new_amount_fen: Some(8_000_000),
                new_valid_until: Some(&until),
                reason: "收入提升，申请提额（演示）",
                requested_by: reviewer.id,
            },
            now - DAY_MS,
        )
        .await
        .map(|_| ())
        .or_else(|e| {
            if e.is_unique_violation(
                "credit_limit_adjustments_pending_key",
                "credit_limit_adjustments.pending_key",
            ) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    }
    tx.commit().await?;
    // Draws on two lines.
    for (i, c) in customers.iter().take(2).enumerate() {
        let mut tx = store.begin().await?;
        crate::limits::reserve(
            &mut tx,
            *c,
            zhudai_domain::Fen::new(1_500_000),
            &format!("DEMO-LN-{i}"),
            "demo",
            state.clock().today(),
            now,
        )
        .await
        .map_err(err)?;
        tx.commit().await?;
    }
    // A week of events through the engine.
    let c0 = customers[0];
    let c1 = customers[1];
    let c2 = customers[2];
    let mut events = Vec::new();
    for d in [6, 3, 1] {
        events.push(RiskEvent {
            event_type: "repayment_failed".into(),
            customer_id: Some(c0),
            occurred_at_ms: now - d * DAY_MS,
            amount_fen: Some(250_000),
            code: Some("insufficient_funds".into()),
            ..Default::default()
        });
    }
    events.push(RiskEvent {
        event_type: "overdue".into(),
        customer_id: Some(c1),
        occurred_at_ms: now - 2 * DAY_MS,
        days: Some(35),
        amount_fen: Some(480_000),
        loan: Some(LoanFacts {
            days_past_due: Some(35),
            ..Default::default()
        }),
        ..Default::default()
    });
    for (d, n) in [(5, 3), (2, 6)] {
        events.push(RiskEvent {
            event_type: "credit_inquiry".into(),
            customer_id: Some(c2),
            occurred_at_ms: now - d * DAY_MS,
            count: Some(n),
            ..Default::default()
        });
    }
    warnings::evaluate_events(state, &events, "demo")
        .await
        .map_err(err)?;
    // Population stability: a scorecard and a week of scored applications drifting
    // towards lower incomes.
    let model = demo_model().map_err(err)?;
    let mut tx = store.begin().await?;
    warnings::psi::register_baseline(&mut tx, &model, "demo", now)
        .await
        .map_err(err)?;
    let mut rng = zhudai_domain::generate::SplitMix64::new(11);
    for day in (0..8).rev() {
        for k in 0..120 {
            // Day 7 looks like development; by day 0 incomes have shifted down.
            let shift = (7 - day) as u64 * 7;
            let income = rng.below(100 - shift.min(60));
            let mut features = serde_json::Map::new();
            features.insert("income".into(), json!(income));
            features.insert("age".into(), json!(20 + rng.below(40)));
            warnings::psi::record_observation(
                &mut tx,
                "retail_demo",
                "2026.1",
                Some(&format!("application:demo-{day}-{k}")),
                now - day * DAY_MS - k * 60_000,
                0,
                &features,
            )
            .await?;
        }
    }
    tx.commit().await?;
    let threshold = state.settings().psi_threshold;
    for day in (0..7).rev() {
        let at = now - day * DAY_MS;
        let on = zhudai_domain::clock::business_date(
            chrono::DateTime::from_timestamp_millis(at).unwrap_or_default(),
        );
        // Each day's run compares the applications of the 30 days before it.
        warnings::psi::run(store, threshold, on, at).await?;
    }
    Ok(true)
}

/// A small scorecard (income, age) trained on synthetic applicants.
fn demo_model() -> Result<String, String> {
    use zhudai_scorecard::{Column, ColumnData, Dataset, TrainingOptions};
    let mut rng = zhudai_domain::generate::SplitMix64::new(7);
    let n = 3000;
    let (mut income, mut age, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let inc = rng.below(100) as f64;
        let a = 20.0 + rng.below(40) as f64;
        let p_bad = 0.05 + 0.4 * (1.0 - inc / 100.0) + 0.1 * (1.0 - (a - 20.0) / 40.0);
        income.push(Some(inc));
        age.push(Some(a));
        bad.push(Some(f64::from(u8::from(
            (rng.below(10_000) as f64) < p_bad * 10_000.0,
        ))));
    }
    let data = Dataset::new(vec![
        Column {
            name: "income".into(),
            data: ColumnData::Numeric(income),
        },
        Column {
            name: "age".into(),
            data: ColumnData::Numeric(age),
        },
        Column {
            name: "bad".into(),
            data: ColumnData::Numeric(bad),
        },
    ])
    .map_err(|e| e.to_string())?;
    let (model, _) = zhudai_scorecard::train(&data, "bad", &TrainingOptions::default())
        .map_err(|e| e.to_string())?;
    let mut v: serde_json::Value =
        serde_json::from_str(&model.to_json_pretty().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    v["metadata"]["name"] = json!("retail_demo");
    v["metadata"]["version"] = json!("2026.1");
    Ok(v.to_string())
}
