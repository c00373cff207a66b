//! The funder network at rest, on SQLite and on PostgreSQL: partners and their status
//! history, admissions (one open at a time, four eyes in the schema), quotas that never
//! go negative nor over the limit under concurrency, idempotent callbacks and reminders,
//! routing figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use zhudai_store::on_both;
use zhudai_store::partners::{self as p, Partner, QuotaRefusal, ReserveRequest, RunRow, StepRow};
use zhudai_store::testing::TestDb;
use zhudai_store::Store;

on_both!(
    partner_round_trip_and_status_history,
    one_open_admission_and_four_eyes,
    concurrent_reservations_never_exceed_the_total_quota,
    concurrent_reservations_respect_daily_and_customer_limits,
    release_and_consume_are_idempotent,
    callbacks_and_reminders_are_recorded_once,
    routing_runs_steps_and_stats,
);

fn partner(code: &str) -> Partner {
    Partner {
        id: 0,
        code: code.into(),
        kind: "funder".into(),
        name_zh: "甲银行".into(),
        name_en: "Bank A".into(),
        uscc: None,
        status: "applying".into(),
        status_since: "2026-11-01".into(),
        status_reason: None,
        listed_us_on: None,
        agreement_start_on: None,
        agreement_end_on: None,
        next_review_on: None,
        adapter: "simulated".into(),
        endpoint_url: None,
        hmac_key_enc: None,
        timeout_ms: 5000,
        sim_approval_bp: 7000,
        sim_latency_ms: 0,
        sim_seed: 1,
        priority: 100,
        eligibility_rule: "true".into(),
        rule_version: 1,
        notes: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

async fn insert(store: &Store, code: &str) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = p::partner_insert(&mut tx, &partner(code), "tester", 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn with_limits(store: &Store, id: i64, daily: i64, total: i64, per_customer: Option<i64>) {
    let mut tx = store.begin().await.unwrap();
    p::limits_set(&mut tx, id, daily, total, per_customer, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn partner_round_trip_and_status_history(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    let mut tx = s.begin().await.unwrap();
    let err = p::partner_insert(&mut tx, &partner("bank_a"), "tester", 1)
        .await
        .unwrap_err();
    assert!(
        err.is_unique_violation("partners_code_key", "partners.code"),
        "{err}"
    );
    tx.rollback().await.unwrap();

    let mut got = s.partner_by_code("bank_a").await.unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.rule_version, 1);
    // Saving the same rule keeps the version; a new rule bumps it.
    got.listed_us_on = Some("2026-01-01".into());
    let mut tx = s.begin().await.unwrap();
    p::partner_save(&mut tx, &got, 2).await.unwrap();
    got.eligibility_rule = "customer.age >= 22".into();
    p::partner_save(&mut tx, &got, 3).await.unwrap();
    tx.commit().await.unwrap();
    let got = s.partner_by_code("bank_a").await.unwrap().unwrap();
    assert_eq!(got.rule_version, 2);
    assert_eq!(got.listed_us_on.as_deref(), Some("2026-01-01"));

    // A status change applies only from the expected status.
    let mut tx = s.begin().await.unwrap();
    let change = p::StatusChange {
        partner_id: id,
        from: "applying",
        to: "admitted",
        on_date: "2026-11-29",
        reason: None,
        actor: "approver",
        next_review_on: Some("2027-11-29"),
    };
    assert!(p::partner_set_status(&mut tx, &change, 4).await.unwrap());
    assert!(!p::partner_set_status(&mut tx, &change, 5).await.unwrap());
    tx.commit().await.unwrap();
    let got = s.partner_by_code("bank_a").await.unwrap().unwrap();
    assert_eq!(got.status, "admitted");
    assert_eq!(got.next_review_on.as_deref(), Some("2027-11-29"));
    let history = s.partner_status_history(id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| h.to_status.as_str())
            .collect::<Vec<_>>(),
        ["applying", "admitted"]
    );
    // The kind is checked by the schema too.
    let mut bad = partner("weird");
    bad.kind = "bank".into();
    let mut tx = s.begin().await.unwrap();
    assert!(p::partner_insert(&mut tx, &bad, "t", 1).await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(s.partners(Some("funder"), None).await.unwrap().len(), 1);
    assert!(s.partners(None, Some("exited")).await.unwrap().is_empty());
    assert_eq!(s.admission_standards().await.unwrap().len(), 10);
}

async fn one_open_admission_and_four_eyes(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    let mut tx = s.begin().await.unwrap();
    let first = p::admission_submit(&mut tx, id, "[]", 7, "Li", 1)
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(
        p::admission_submit(&mut tx, id, "[]", 7, "Li", 2)
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    let open = {
        let mut conn = s.writer().acquire().await.unwrap();
        p::admission_open(&mut conn, id).await.unwrap().unwrap()
    };
    // The schema refuses the submitter as decider even if the code forgot to.
    let mut tx = s.begin().await.unwrap();
    assert!(
        p::admission_decide(&mut tx, open.id, "approved", 7, "Li", None, 3)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(
        p::admission_decide(&mut tx, open.id, "approved", 8, "Wang", Some("ok"), 3)
            .await
            .unwrap()
    );
    assert!(
        !p::admission_decide(&mut tx, open.id, "rejected", 8, "Wang", None, 4)
            .await
            .unwrap()
    );
    // Decided: a new submission may be opened.
    assert!(p::admission_submit(&mut tx, id, "[]", 7, "Li", 5)
        .await
        .unwrap()
        .is_some());
    tx.commit().await.unwrap();
    let all = s.admissions(id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].state, "approved");
    assert_eq!(all[1].decided_by_name.as_deref(), Some("Wang"));
}

async fn concurrent_reservations_never_exceed_the_total_quota(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    // Room for exactly 7 reservations of 100 in total; the daily quota is not binding.
    with_limits(s, id, 1_000_000, 700, None).await;
    let mut handles = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let customer = format!("C{i}");
            s.quota_reserve_now(
                &ReserveRequest {
                    partner_id: id,
                    run_id: None,
                    customer_ref: &customer,
                    amount_fen: 100,
                    day: "2026-11-29",
                },
                1,
            )
            .await
            .unwrap()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(QuotaRefusal::TotalQuota) => refused += 1,
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!((ok, refused), (7, 13));
    let limits = s.partner_limits(id).await.unwrap().unwrap();
    assert_eq!(limits.total_used_fen, 700);
    assert_eq!(s.partner_daily_used(id, "2026-11-29").await.unwrap(), 700);
    // Without limits nothing can be reserved.
    let other = insert(s, "cfc_b").await;
    let r = s
        .quota_reserve_now(
            &ReserveRequest {
                partner_id: other,
                run_id: None,
                customer_ref: "C",
                amount_fen: 1,
                day: "2026-11-29",
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(r, Err(QuotaRefusal::NoLimits));
}

async fn concurrent_reservations_respect_daily_and_customer_limits(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    // Daily 500: at most 5 of 100 today; per customer 300: at most 3 for customer X.
    with_limits(s, id, 500, 1_000_000, Some(300)).await;
    let mut handles = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            // Half the calls are for customer X, the others for distinct customers.
            let customer = if i % 2 == 0 {
                "X".to_owned()
            } else {
                format!("C{i}")
            };
            let r = s
                .quota_reserve_now(
                    &ReserveRequest {
                        partner_id: id,
                        run_id: None,
                        customer_ref: &customer,
                        amount_fen: 100,
                        day: "2026-11-29",
                    },
                    1,
                )
                .await
                .unwrap();
            (customer, r)
        }));
    }
    let mut per_x = 0;
    let mut total = 0;
    for h in handles {
        let (customer, r) = h.await.unwrap();
        if r.is_ok() {
            total += 1;
            if customer == "X" {
                per_x += 1;
            }
        }
    }
    assert_eq!(total, 5, "the daily quota admits exactly five");
    assert!(per_x <= 3, "customer X got {per_x} > 3");
    assert_eq!(s.partner_daily_used(id, "2026-11-29").await.unwrap(), 500);
    assert_eq!(
        s.partner_limits(id).await.unwrap().unwrap().total_used_fen,
        500
    );
    assert_eq!(
        s.partner_customer_exposure(id, "X").await.unwrap(),
        per_x * 100
    );
    // Another day has its own daily quota.
    let r = s
        .quota_reserve_now(
            &ReserveRequest {
                partner_id: id,
                run_id: None,
                customer_ref: "Y",
                amount_fen: 100,
                day: "2026-11-30",
            },
            1,
        )
        .await
        .unwrap();
    assert!(r.is_ok());
    let left = s.quota_left(id, "2026-11-29", "X").await.unwrap().unwrap();
    assert_eq!(left.daily_left_fen, 0);
    assert_eq!(left.customer_left_fen, Some(300 - per_x * 100));
    assert_eq!(left.total_left_fen, 1_000_000 - 600);
    // The one-statement answer agrees with the three reads it replaces, for a day with
    // and without usage and a customer with and without exposure.
    for (day, customer) in [
        ("2026-11-29", "X"),
        ("2026-11-30", "Y"),
        ("2026-12-01", "Z"),
    ] {
        let left = s.quota_left(id, day, customer).await.unwrap().unwrap();
        let limits = s.partner_limits(id).await.unwrap().unwrap();
        let daily = s.partner_daily_used(id, day).await.unwrap();
        let exposure = s.partner_customer_exposure(id, customer).await.unwrap();
        assert_eq!(left.daily_left_fen, limits.daily_quota_fen - daily, "{day}");
        assert_eq!(
            left.total_left_fen,
            limits.total_quota_fen - limits.total_used_fen
        );
        assert_eq!(left.customer_left_fen, Some(300 - exposure), "{customer}");
    }
    // No limits: nothing may be reserved, and nothing is left.
    let other = insert(s, "bank_b").await;
    assert!(s
        .quota_left(other, "2026-11-29", "X")
        .await
        .unwrap()
        .is_none());
}

async fn release_and_consume_are_idempotent(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    with_limits(s, id, 1_000, 1_000, None).await;
    let req = ReserveRequest {
        partner_id: id,
        run_id: None,
        customer_ref: "C",
        amount_fen: 400,
        day: "2026-11-29",
    };
    let a = s.quota_reserve_now(&req, 1).await.unwrap().unwrap();
    let b = s.quota_reserve_now(&req, 1).await.unwrap().unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(p::quota_release(&mut tx, a, 2).await.unwrap());
    assert!(
        !p::quota_release(&mut tx, a, 3).await.unwrap(),
        "released twice"
    );
    assert!(p::quota_consume(&mut tx, b, 2).await.unwrap());
    assert!(!p::quota_consume(&mut tx, b, 3).await.unwrap());
    assert!(
        !p::quota_release(&mut tx, b, 3).await.unwrap(),
        "a consumed amount stays used"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.partner_limits(id).await.unwrap().unwrap().total_used_fen,
        400
    );
    assert_eq!(s.partner_daily_used(id, "2026-11-29").await.unwrap(), 400);
    // Lowering the quota below what is used keeps the used amount; new reservations fail.
    with_limits(s, id, 1_000, 300, None).await;
    assert_eq!(
        s.quota_reserve_now(&req, 4).await.unwrap(),
        Err(QuotaRefusal::TotalQuota)
    );
    // Used amounts cannot go negative, even by a direct write.
    let neg = sqlx::query("UPDATE partner_limits SET total_used_fen = -1 WHERE partner_id = $1")
        .bind(id)
        .execute(s.writer())
        .await;
    assert!(neg.is_err());
}

async fn callbacks_and_reminders_are_recorded_once(db: &TestDb) {
    let s = &db.store;
    let id = insert(s, "bank_a").await;
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        p::callback_record_once(&mut tx, id, "cb-1", None, "{\"n\":1}", 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        p::callback_record_once(&mut tx, id, "cb-1", None, "{\"n\":2}", 2)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"n\":1}")
    );
    assert!(
        p::reminder_insert_once(&mut tx, id, "annual_review", "2026-12-20", 1)
            .await
            .unwrap()
    );
    assert!(
        !p::reminder_insert_once(&mut tx, id, "annual_review", "2026-12-20", 2)
            .await
            .unwrap()
    );
    assert!(
        p::reminder_insert_once(&mut tx, id, "agreement_expiry", "2026-12-20", 2)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(s.partner_reminders(id).await.unwrap().len(), 2);
}

async fn routing_runs_steps_and_stats(db: &TestDb) {
    let s = &db.store;
    insert(s, "bank_a").await;
    let mut tx = s.begin().await.unwrap();
    let run = RunRow {
        id: 0,
        application_ref: "APP-1".into(),
        product_code: "consumer_12_36".into(),
        amount_fen: 5_000_000,
        months: 12,
        customer_ref: "C1".into(),
        request: "{}".into(),
        plan: "[\"bank_a\",\"cfc_b\"]".into(),
        state: "running".into(),
        next_index: 0,
        funder_code: None,
        started_by: Some("t".into()),
        started_at_ms: 1_000,
        finished_at_ms: None,
    };
    let run_id = p::run_insert(&mut tx, &run).await.unwrap();
    let step = |code: &str, outcome: &str, duration: Option<i64>| StepRow {
        id: 0,
        run_id,
        seq: 0,
        partner_code: code.into(),
        outcome: outcome.into(),
        reason_code: None,
        reason: None,
        attempt: 1,
        reservation_id: None,
        external_ref: None,
        started_at_ms: 1_000,
        duration_ms: duration,
        decided_at_ms: None,
    };
    p::step_insert(&mut tx, &step("dp_c", "skipped", None))
        .await
        .unwrap();
    p::step_insert(&mut tx, &step("bank_a", "declined", Some(100)))
        .await
        .unwrap();
    let pending = p::step_insert(&mut tx, &step("cfc_b", "pending", None))
        .await
        .unwrap();
    assert!(
        p::run_advance(&mut tx, run_id, "running", 0, "pending", 1, None, 1_100)
            .await
            .unwrap()
    );
    assert!(
        !p::run_advance(&mut tx, run_id, "running", 0, "pending", 1, None, 1_100)
            .await
            .unwrap()
    );
    let found = p::pending_step(&mut tx, "cfc_b", "APP-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, pending);
    assert!(
        p::step_decide(&mut tx, pending, "approved", None, Some("L-9"), 1_400)
            .await
            .unwrap()
    );
    assert!(
        !p::step_decide(&mut tx, pending, "declined", None, None, 1_500)
            .await
            .unwrap()
    );
    assert!(p::run_advance(
        &mut tx,
        run_id,
        "pending",
        1,
        "routed",
        1,
        Some("cfc_b"),
        1_400
    )
    .await
    .unwrap());
    tx.commit().await.unwrap();
    let (run, steps) = s.routing_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.state, "routed");
    assert_eq!(run.finished_at_ms, Some(1_400));
    assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(steps[2].duration_ms, Some(400));
    let stats = s.routing_stats().await.unwrap();
    let b = stats.iter().find(|x| x.partner_code == "cfc_b").unwrap();
    assert_eq!(
        (
            b.attempts,
            b.approved,
            b.approved_amount_fen,
            b.avg_decision_ms
        ),
        (1, 1, 5_000_000, Some(400))
    );
    let a = stats.iter().find(|x| x.partner_code == "bank_a").unwrap();
    assert_eq!((a.attempts, a.declined, a.approved_amount_fen), (1, 1, 0));
    let c = stats.iter().find(|x| x.partner_code == "dp_c").unwrap();
    assert_eq!(c.attempts, 0);
    // The per-funder sums kept by triggers equal the sums over every step, computed
    // here the way the store did before migration 19 (after a deleted step too: below).
    assert_eq!(stats, stats_from_steps(s).await);
    assert_eq!(
        s.routing_runs(Some("bank_a"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .routing_runs(Some("dp_c"), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.routing_steps_since("cfc_b", 0).await.unwrap().len(), 1);
    // No exposure until the loan ledger writes rows.
    assert_eq!(s.funder_exposure("cfc_b").await.unwrap(), None);
    sqlx::query("INSERT INTO funder_exposures (partner_code, loan_ref, outstanding_fen, overdue_fen, days_past_due, as_of, updated_at_ms)
                 VALUES ('cfc_b', 'L1', 1000, 0, 0, '2026-11-29', 1), ('cfc_b', 'L2', 3000, 500, 35, '2026-11-29', 1)")
        .execute(s.writer())
        .await
        .unwrap();
    let e = s.funder_exposure("cfc_b").await.unwrap().unwrap();
    assert_eq!(
        (
            e.loans,
            e.outstanding_fen,
            e.overdue_fen,
            e.overdue_outstanding_fen
        ),
        (2, 4000, 500, 3000)
    );
    // The migration's copy of the sums of steps recorded before it gives the same rows.
    let migration = include_str!("../migrations/0019_routing_stats.sql");
    let start = migration.find("INSERT INTO partner_routing_stats").unwrap();
    let end = start + migration[start..].find(';').unwrap();
    sqlx::query("DELETE FROM partner_routing_stats")
        .execute(s.writer())
        .await
        .unwrap();
    sqlx::query(&migration[start..end])
        .execute(s.writer())
        .await
        .unwrap();
    assert_eq!(s.routing_stats().await.unwrap(), stats_from_steps(s).await);
    assert_eq!(s.routing_stats().await.unwrap().len(), 3);
    sqlx::query("DELETE FROM routing_steps WHERE partner_code = 'bank_a'")
        .execute(s.writer())
        .await
        .unwrap();
    let stats = s.routing_stats().await.unwrap();
    assert_eq!(stats, stats_from_steps(s).await);
    let a = stats.iter().find(|x| x.partner_code == "bank_a").unwrap();
    assert_eq!((a.attempts, a.declined, a.avg_decision_ms), (0, 0, None));
}

/// Routing figures per funder summed over every routing step (the store's query before
/// the figures were kept by triggers); funders whose sums are all zero included as the
/// kept rows are.
async fn stats_from_steps(s: &zhudai_store::Store) -> Vec<zhudai_store::partners::RoutingStats> {
    use sqlx::Row;
    let kept: Vec<String> = sqlx::query_scalar("SELECT partner_code FROM partner_routing_stats")
        .fetch_all(s.reader())
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT s.partner_code AS code,
            CAST(SUM(CASE WHEN s.outcome <> 'skipped' THEN 1 ELSE 0 END) AS BIGINT) AS attempts,
            CAST(SUM(CASE WHEN s.outcome = 'approved' THEN 1 ELSE 0 END) AS BIGINT) AS approved,
            CAST(SUM(CASE WHEN s.outcome = 'declined' THEN 1 ELSE 0 END) AS BIGINT) AS declined,
            CAST(SUM(CASE WHEN s.outcome = 'timeout' THEN 1 ELSE 0 END) AS BIGINT) AS timeouts,
            CAST(SUM(CASE WHEN s.outcome = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors,
            CAST(SUM(CASE WHEN s.outcome = 'pending' THEN 1 ELSE 0 END) AS BIGINT) AS pending,
            CAST(SUM(CASE WHEN s.outcome IN ('approved', 'declined') AND s.duration_ms IS NOT NULL THEN s.duration_ms ELSE 0 END) AS BIGINT) AS decided_ms,
            CAST(SUM(CASE WHEN s.outcome IN ('approved', 'declined') AND s.duration_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS timed,
            CAST(SUM(CASE WHEN s.outcome = 'approved' THEN r.amount_fen ELSE 0 END) AS BIGINT) AS approved_amount
         FROM routing_steps s JOIN routing_runs r ON r.id = s.run_id
         GROUP BY s.partner_code ORDER BY s.partner_code",
    )
    .fetch_all(s.reader())
    .await
    .unwrap();
    let mut out: Vec<zhudai_store::partners::RoutingStats> = rows
        .iter()
        .map(|r| {
            let timed: i64 = r.get("timed");
            let decided_ms: i64 = r.get("decided_ms");
            zhudai_store::partners::RoutingStats {
                partner_code: r.get("code"),
                attempts: r.get("attempts"),
                approved: r.get("approved"),
                declined: r.get("declined"),
                timeouts: r.get("timeouts"),
                errors: r.get("errors"),
                pending: r.get("pending"),
                avg_decision_ms: (timed > 0).then(|| decided_ms / timed),
                approved_amount_fen: r.get("approved_amount"),
            }
        })
        .collect();
    for code in kept {
        if !out.iter().any(|x| x.partner_code == code) {
            out.push(zhudai_store::partners::RoutingStats {
                partner_code: code,
                ..Default::default()
            });
        }
    }
    out.sort_by(|a, b| a.partner_code.cmp(&b.partner_code));
    out
}
