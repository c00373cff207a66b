//! The daily close (issue #8 item 3) on both databases: a scenario whose days past
//! due, tiers, buckets, penalty interest and guarantee payout equal figures worked out by
//! hand; closing a day twice changes nothing; a repayment closes its loan first; manual
//! floors need a second person; a restructured loan stays 关注; and the ledger proves
//! itself after every step.

use crate::support::TestApp;
use chrono::NaiveDate;
use serde_json::{json, Value};
use zhudai_server::cob::{CobSettings, RunOptions, RunOutcome};
use zhudai_store::sqlx::{self, Row};
use zhudai_store::testing::TestDb;
use zhudai_store::Store;

zhudai_store::on_both!(
    close_matches_hand_computed_figures,
    crash_and_rerun_equal_one_clean_run_and_duckdb_agrees,
    close_reports_overdue_loans_to_the_warning_rules,
    the_rust_test_for_a_needed_close_agrees_with_the_close_selection,
    packed_installments_read_as_the_rows_do,
);

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A customer of `cm` applies for `product`; the application is approved and the loan
/// opened with `funder` on `disbursed_on`.
#[allow(clippy::too_many_arguments)]
pub async fn open_loan(
    app: &TestApp,
    cm: &str,
    id_body: &str,
    product: &str,
    amount: &str,
    months: i64,
    method: &str,
    disbursed_on: &str,
    funder: &str,
) -> i64 {
    let c = reqwest::Client::new();
    let id_number = zhudai_domain::ident::ResidentId::from_body(id_body).unwrap();
    let r: Value = c
        .post(app.url("/api/v1/customers"))
        .bearer_auth(cm)
        .json(&json!({"name": "钱七", "id_number": id_number.as_str(), "phone": "13912345679"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customer = r["id"].as_i64().unwrap_or_else(|| panic!("{r}"));
    let r: Value = c
        .post(app.url("/api/v1/applications"))
        .bearer_auth(cm)
        .json(&json!({"customer_id": customer, "product_code": product, "amount": amount, "months": months, "method": method}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let application = r["id"].as_i64().unwrap_or_else(|| panic!("{r}"));
    zhudai_store::applications::application_set_progress(
        app.state.store().writer(),
        application,
        "approved",
        "disbursement",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let mut tx = app.state.store().begin().await.unwrap();
    let id = zhudai_server::loans::open_from_application(
        &mut tx,
        &app.state,
        &zhudai_server::loans::Disbursement {
            application_id: application,
            amount_fen: zhudai_domain::money::Fen::parse(amount).unwrap().as_fen(),
            disbursed_on: d(disbursed_on),
            funder_code: funder.into(),
            funder_loan_ref: Some(format!("{funder}-{application}")),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Closes `date` on the app's store with the app's settings and clock.
pub async fn close(app: &TestApp, date: &str, opts: RunOptions) -> RunOutcome {
    close_with(
        app.state.store(),
        &app.state.settings().cob,
        app,
        date,
        opts,
    )
    .await
}

pub async fn close_with(
    store: &Store,
    settings: &CobSettings,
    app: &TestApp,
    date: &str,
    opts: RunOptions,
) -> RunOutcome {
    let clock = app.clock.clone();
    let now = move || zhudai_domain::clock::Clock::now(clock.as_ref()).timestamp_millis();
    let opts = if opts.worker.is_empty() {
        RunOptions {
            worker: "test".into(),
            ..opts
        }
    } else {
        opts
    };
    zhudai_server::cob::run(
        store,
        settings,
        app.state.settings().apr_cap,
        d(date),
        zhudai_domain::clock::Clock::today(app.clock.as_ref()),
        &now,
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap()
}

/// Everything the close writes, as text without generated ids, in a fixed order: equal
/// dumps mean equal results.
pub async fn dump(store: &Store) -> Vec<String> {
    let queries: &[(&str, &str)] = &[
        ("loans", "SELECT id, status, dpd, COALESCE(overdue_since, '-') AS a, classification, COALESCE(classification_floor, '-') AS b, collection_bucket, penalty_outstanding_fen, COALESCE(last_closed_on, '-') AS c, version FROM loans ORDER BY id"),
        ("installments", "SELECT loan_id, number, penalty_accrued_fen, COALESCE(penalty_accrued_through, '-') AS a, COALESCE(settled_on, '-') AS b FROM loan_installments ORDER BY loan_id, number"),
        ("journal", "SELECT e.kind, COALESCE(l.loan_id, 0) AS loan, l.account_code, CAST(SUM(l.debit_fen) AS BIGINT) AS dr, CAST(SUM(l.credit_fen) AS BIGINT) AS cr, COUNT(*) AS n FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id GROUP BY e.kind, l.loan_id, l.account_code ORDER BY 1, 2, 3"),
        ("class_history", "SELECT loan_id, business_date, from_class, to_class, dpd, source FROM loan_classification_history ORDER BY loan_id, business_date, from_class"),
        ("bucket_history", "SELECT loan_id, business_date, from_bucket, to_bucket, dpd FROM loan_bucket_history ORDER BY loan_id, business_date, from_bucket"),
        ("cases", "SELECT loan_id, bucket, state, opened_on, COALESCE(closed_on, '-') AS a, COALESCE(close_reason, '-') AS b FROM collection_cases ORDER BY loan_id, opened_on, state"),
        ("payouts", "SELECT loan_id, funder_code, business_date, dpd, principal_fen, interest_fen, total_fen FROM guarantee_payouts ORDER BY loan_id"),
        ("snapshots", "SELECT business_date, classification, collection_bucket, loans, principal_fen FROM cob_snapshots ORDER BY 1, 2, 3"),
        ("runs", "SELECT business_date, state, chunks_total, loans_closed, overdue_loans, penalty_fen, reclassified, bucket_moves, cases_opened, cases_closed, payouts, payout_fen FROM cob_runs ORDER BY business_date"),
        ("observations", "SELECT loan_id, restructured_on, observe_from, observation_ends_on, COALESCE(active_flag, 0) AS a FROM loan_restructurings ORDER BY loan_id, id"),
    ];
    let mut out = Vec::new();
    for (name, sql) in queries {
        let rows = sqlx::query(sql).fetch_all(store.reader()).await.unwrap();
        for r in rows {
            let mut cells = Vec::new();
            for i in 0..r.len() {
                let v = r
                    .try_get::<i64, _>(i)
                    .map(|v| v.to_string())
                    .or_else(|_| r.try_get::<String, _>(i))
                    .unwrap_or_else(|_| "NULL".into());
                cells.push(v);
            }
            out.push(format!("{name}: {}", cells.join(" | ")));
        }
    }
    out
}

pub async fn verify(store: &Store) {
    let rep = store.ledger_verify().await.unwrap();
    assert!(rep.ok(), "{:#?}", rep.problems);
}

async fn loan(store: &Store, id: i64) -> zhudai_store::loans::LoanRow {
    store.loan(id).await.unwrap().unwrap()
}

async fn insts(store: &Store, id: i64) -> Vec<zhudai_store::loans::InstallmentRow> {
    store.loan_installments(id).await.unwrap()
}

/// One day's penalty at 22.5 % a year (consumer_std: 15 % × 1.5), worked out with the
/// rate as the fraction 225/1000: p × 225 / (360 × 1000), half-up.
fn daily_225(p: i64) -> i64 {
    (2 * p * 225 + 360 * 1000) / (2 * 360 * 1000)
}

fn fen(v: &Value) -> i64 {
    zhudai_domain::money::Fen::parse(v.as_str().unwrap_or_else(|| panic!("{v}")))
        .unwrap()
        .as_fen()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn close_matches_hand_computed_figures(db: &TestDb) {
    // Loan A: 100,000 yuan, 12 months equal installments at 15 % (penalty 22.5 %),
    // disbursed 2026-06-15; installments 1–3 paid on their due dates, 4 (10-15) and 5
    // (11-15) not.
    let f = crate::loans::fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let app = &f.app;
    let store = app.state.store();
    let a = f.loan;
    for k in 0..3 {
        let l = f.detail().await;
        let p = &l["schedule"][k];
        let (s, r) = f
            .repay(
                &format!("a-{k}"),
                json!({"kind": "scheduled", "amount": p["outstanding"], "value_date": p["due_date"], "payer_name": "赵六"}),
            )
            .await;
        assert_eq!(s, 201, "{r}");
    }
    // Loan B: the same product from 2026-01-10, never paid: 291 days past due on 11-28.
    // Loan C: disbursed 2026-11-01, nothing due yet.
    let b = open_loan(
        app,
        &f.cm,
        "11010519860202005",
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-01-10",
        "bank_a",
    )
    .await;
    let c = open_loan(
        app,
        &f.cm,
        "11010519870303007",
        "consumer_std",
        "50000",
        12,
        "equal_principal",
        "2026-11-01",
        "cfc_b",
    )
    .await;
    // bank_a pays out its guarantee at 180 days past due.
    let fm = app.token_in_unit("funding_manager", None).await;
    let r = reqwest::Client::new()
        .put(app.url("/api/v1/partners/bank_a/guarantee"))
        .bearer_auth(&fm)
        .json(&json!({"payout_dpd": 180}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let out = close(app, "2026-11-28", RunOptions::default()).await;
    assert!(out.done && !out.already_done);

    // Loan A: oldest unsettled installment due 10-15 → 44 days past due on 11-28.
    let la = loan(store, a).await;
    assert_eq!(
        (la.dpd, la.overdue_since.as_deref(), la.status.as_str()),
        (44, Some("2026-10-16"), "overdue")
    );
    assert_eq!(
        (la.classification.as_str(), la.collection_bucket.as_str()),
        ("special_mention", "M2")
    );
    let ia = insts(store, a).await;
    let p4 = ia.iter().find(|i| i.number == 4).unwrap();
    let p5 = ia.iter().find(|i| i.number == 5).unwrap();
    // The schedule's principal of periods 4 and 5 (15 % / 12 equal installments).
    assert_eq!(
        (p4.principal_due_fen, p5.principal_due_fen),
        (807_108, 817_197)
    );
    // 807,108 × 0.225 / 360 = 504.44 → 504 a day for 44 days; 817,197 → 510.75 → 511 for 13.
    assert_eq!((daily_225(807_108), daily_225(817_197)), (504, 511));
    assert_eq!(
        (p4.penalty_accrued_fen, p5.penalty_accrued_fen),
        (504 * 44, 511 * 13)
    );
    assert_eq!(p4.penalty_accrued_through.as_deref(), Some("2026-11-28"));
    assert_eq!(la.penalty_outstanding_fen, 22_176 + 6_643);

    // Loan B: due 02-10 first → 291 days: 可疑 (> 270), M6+; every installment due
    // before 11-28 accrues for its own days; paid out at ≥ 180 days.
    let lb = loan(store, b).await;
    assert_eq!(
        (
            lb.dpd,
            lb.classification.as_str(),
            lb.collection_bucket.as_str()
        ),
        (291, "doubtful", "M6+")
    );
    let ib = insts(store, b).await;
    let mut want_penalty = 0;
    let mut want_interest = 0;
    for i in ib.iter().filter(|i| i.due_date.as_str() < "2026-11-28") {
        let days = (d("2026-11-28") - d(&i.due_date)).num_days();
        assert_eq!(
            i.penalty_accrued_fen,
            daily_225(i.principal_due_fen) * days,
            "installment {}",
            i.number
        );
        want_penalty += daily_225(i.principal_due_fen) * days;
        want_interest += i.interest_due_fen;
    }
    assert_eq!(
        ib.iter()
            .filter(|i| i.due_date.as_str() < "2026-11-28")
            .count(),
        10
    );
    assert_eq!(lb.penalty_outstanding_fen, want_penalty);
    let payout = store.guarantee_payout_of(b).await.unwrap().unwrap();
    assert_eq!((payout.funder_code.as_str(), payout.dpd), ("bank_a", 291));
    assert_eq!(
        (payout.principal_fen, payout.interest_fen),
        (10_000_000, want_interest)
    );
    // Loan A (bank_a, 44 days) is below the threshold; loan C's funder has none.
    assert!(store.guarantee_payout_of(a).await.unwrap().is_none());

    // Loan C: nothing due, not touched.
    let lc = loan(store, c).await;
    assert_eq!(
        (
            lc.dpd,
            lc.classification.as_str(),
            lc.collection_bucket.as_str(),
            lc.last_closed_on.as_deref()
        ),
        (0, "normal", "M0", None)
    );

    // History, cases, the run's figures, the snapshot.
    let hist = store.classification_history(a).await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(
        (
            hist[0].from_class.as_str(),
            hist[0].to_class.as_str(),
            hist[0].dpd
        ),
        ("normal", "special_mention", 44)
    );
    let bh = store.bucket_history(b).await.unwrap();
    assert_eq!(
        (bh[0].from_bucket.as_str(), bh[0].to_bucket.as_str()),
        ("M0", "M6+")
    );
    let cases_a = store.cases_of_loan(a).await.unwrap();
    assert_eq!(
        (
            cases_a.len(),
            cases_a[0].bucket.as_str(),
            cases_a[0].state.as_str()
        ),
        (1, "M2", "open")
    );
    let t = out.run.totals;
    assert_eq!(
        (
            t.loans_closed,
            t.overdue_loans,
            t.reclassified,
            t.bucket_moves,
            t.cases_opened,
            t.payouts
        ),
        (2, 2, 2, 2, 2, 1)
    );
    assert_eq!(t.penalty_fen, 22_176 + 6_643 + want_penalty);
    assert_eq!(t.payout_fen, 10_000_000 + want_interest);
    let snap = store.cob_snapshot("2026-11-28").await.unwrap();
    let normal: i64 = snap
        .iter()
        .filter(|s| s.classification == "normal")
        .map(|s| s.loans)
        .sum();
    assert_eq!((snap.iter().map(|s| s.loans).sum::<i64>(), normal), (3, 1));
    // The journal: one penalty entry per overdue loan (Dr 应收罚息 / Cr 罚息收入) and the
    // payout (Dr 代偿追偿款 / Cr 应付资金方款项); the ledger proves itself.
    let sums: Vec<(String, String, i64, i64)> = sqlx::query(
        "SELECT e.kind, l.account_code, CAST(SUM(l.debit_fen) AS BIGINT) AS dr, CAST(SUM(l.credit_fen) AS BIGINT) AS cr
           FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
          WHERE e.kind IN ('penalty_accrual', 'guarantee_payout') GROUP BY e.kind, l.account_code ORDER BY 1, 2",
    )
    .fetch_all(store.reader())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect();
    let pen = 22_176 + 6_643 + want_penalty;
    let pay = 10_000_000 + want_interest;
    assert_eq!(
        sums,
        vec![
            ("guarantee_payout".into(), "funder_payable".into(), 0, pay),
            (
                "guarantee_payout".into(),
                "guarantee_recoverable".into(),
                pay,
                0
            ),
            ("penalty_accrual".into(), "penalty_income".into(), 0, pen),
            (
                "penalty_accrual".into(),
                "penalty_receivable".into(),
                pen,
                0
            ),
        ]
    );
    verify(store).await;

    // The same day again changes nothing.
    let before = dump(store).await;
    let again = close(app, "2026-11-28", RunOptions::default()).await;
    assert!(again.already_done);
    assert_eq!(dump(store).await, before);
    // An earlier day is refused once a later one is closed.
    let clock = app.clock.clone();
    let now = move || zhudai_domain::clock::Clock::now(clock.as_ref()).timestamp_millis();
    let err = zhudai_server::cob::run(
        store,
        &app.state.settings().cob,
        app.state.settings().apr_cap,
        d("2026-11-27"),
        d("2026-11-29"),
        &now,
        &RunOptions {
            worker: "t".into(),
            ..Default::default()
        },
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, zhudai_server::cob::CobError::LaterRunExists(_)),
        "{err}"
    );

    // 11-29: one more day on both installments of loan A; no second payout for B.
    close(app, "2026-11-29", RunOptions::default()).await;
    let la = loan(store, a).await;
    assert_eq!(la.dpd, 45);
    assert_eq!(la.penalty_outstanding_fen, 22_176 + 6_643 + 504 + 511);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM guarantee_payouts")
            .fetch_one(store.reader())
            .await
            .unwrap(),
        1
    );
    verify(store).await;

    // The borrower pays everything due on 11-29 (penalty first): the loan is current,
    // and the next close moves it back to 正常 / M0 and closes its case as cured.
    let l = f.detail().await;
    let due = fen(&l["due"]["due_now"]);
    assert_eq!(
        due,
        ia.iter()
            .filter(|i| i.number == 4 || i.number == 5)
            .map(|i| i.principal_due_fen + i.interest_due_fen + i.fee_due_fen)
            .sum::<i64>()
            + 22_176
            + 6_643
            + 504
            + 511
    );
    let (s, r) = f
        .repay("a-cure", json!({"kind": "scheduled", "amount": l["due"]["due_now"], "value_date": "2026-11-29", "payer_name": "赵六"}))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(fen(&r["penalty"]), 22_176 + 6_643 + 504 + 511);
    app.clock.advance_millis(86_400_000);
    close(app, "2026-11-30", RunOptions::default()).await;
    let la = loan(store, a).await;
    assert_eq!(
        (
            la.dpd,
            la.status.as_str(),
            la.classification.as_str(),
            la.collection_bucket.as_str()
        ),
        (0, "active", "normal", "M0")
    );
    let cases_a = store.cases_of_loan(a).await.unwrap();
    assert_eq!(
        (
            cases_a[0].state.as_str(),
            cases_a[0].close_reason.as_deref()
        ),
        ("closed", Some("cured"))
    );
    verify(store).await;

    // A manual floor on loan C: asked by one risk reviewer, not decided by the asker,
    // approved by another: 可疑 at once, and kept by the next close.
    let pl = app.token_in_unit("risk_reviewer", None).await;
    let rr = app.token_in_unit("risk_reviewer", None).await;
    let (s, req) = post(
        app,
        &pl,
        &format!("/api/v1/loans/{c}/classification-requests"),
        json!({"floor": "doubtful", "reason": "borrower's business closed"}),
    )
    .await;
    assert_eq!(s, 201, "{req}");
    let rid = req["id"].as_i64().unwrap();
    let (s, _) = post(
        app,
        &pl,
        &format!("/api/v1/classification-requests/{rid}/decision"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(s, 403, "the asker may not decide");
    let (s, _) = post(
        app,
        &rr,
        &format!("/api/v1/loans/{c}/classification-requests"),
        json!({"floor": "loss", "reason": "second request"}),
    )
    .await;
    assert_eq!(s, 409, "one open request per loan");
    let (s, r) = post(
        app,
        &rr,
        &format!("/api/v1/classification-requests/{rid}/decision"),
        json!({"approve": true, "note": "agreed"}),
    )
    .await;
    assert_eq!(s, 204, "{r}");
    assert_eq!(loan(store, c).await.classification, "doubtful");
    // Loan A restructured on 11-30: 关注 through its observation period (a year here).
    let (s, r) = post(
        app,
        &rr,
        &format!("/api/v1/loans/{a}/restructuring"),
        json!({"restructured_on": "2026-11-30", "note": "terms extended"}),
    )
    .await;
    assert_eq!(
        (s, r["observation_ends_on"].as_str()),
        (201, Some("2027-11-30")),
        "{r}"
    );
    assert_eq!(loan(store, a).await.classification, "special_mention");
    app.clock.advance_millis(86_400_000);
    close(app, "2026-12-01", RunOptions::default()).await;
    assert_eq!(loan(store, c).await.classification, "doubtful");
    assert_eq!(loan(store, a).await.classification, "special_mention");
    // (A fresh sign-in: the clock moved past the earlier sessions' idle limit.)
    let ops = app.token_in_unit("operations", None).await;
    let sh = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/loans/{a}/servicing")))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let sources: Vec<&str> = sh["classification"]
        .as_array()
        .unwrap_or_else(|| panic!("{sh}"))
        .iter()
        .map(|h| h["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["cob", "cob", "restructuring"], "{sh}");
    assert_eq!(sh["cases"][0]["close_reason"], "cured");
    verify(store).await;
}

/// Generates the same small book into `db`.
pub async fn book(app: &TestApp, loans: u64, seed: u64) -> zhudai_server::book::BookSummary {
    zhudai_server::demo::seed(app.state.store(), app.state.now_ms())
        .await
        .unwrap();
    let owner_name = app.user_with_role("customer_manager").await;
    let owner = app
        .state
        .store()
        .user_by_username(&owner_name)
        .await
        .unwrap()
        .unwrap();
    zhudai_server::book::generate(
        app.state.store(),
        app.state.vault(),
        app.state.clock_arc(),
        &owner,
        &zhudai_server::book::BookSpec {
            loans,
            closed_pct: 10,
            seed,
            as_of: d("2026-11-28"),
            batch: 97,
        },
        std::sync::Arc::new(|_, _, _| {}),
    )
    .await
    .unwrap()
}

async fn crash_and_rerun_equal_one_clean_run_and_duckdb_agrees(db: &TestDb) {
    let app = TestApp::start(db).await;
    let sum = book(&app, 400, 11).await;
    assert_eq!((sum.loans, sum.open_loans + sum.paid_off), (440, 440));
    assert!(sum.in_arrears > 20 && sum.repayments > 1000, "{sum:?}");
    verify(app.state.store()).await;
    // The twin: the same book on a second database of the same kind, closed in one go.
    let twin_db = match db.store.backend() {
        zhudai_store::Backend::Sqlite => TestDb::sqlite().await.unwrap(),
        zhudai_store::Backend::Postgres => TestDb::postgres().await.unwrap(),
    };
    let twin = TestApp::start(&twin_db).await;
    assert_eq!(book(&twin, 400, 11).await, sum);
    let settings = CobSettings {
        chunk_size: 40,
        ..app.state.settings().cob.clone()
    };
    let clean = close_with(
        twin.state.store(),
        &settings,
        &twin,
        "2026-11-28",
        RunOptions::default(),
    )
    .await;
    assert!(clean.done);
    assert!(clean.run.chunks_total >= 10, "{:?}", clean.run);

    // Here: three chunks, then a worker dies in the middle of its chunk (its transaction
    // is dropped, its chunk stays claimed) …
    let store = app.state.store().clone();
    let o = close_with(
        &store,
        &settings,
        &app,
        "2026-11-28",
        RunOptions {
            worker: "w1".into(),
            max_chunks: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((o.chunks, o.done), (3, false));
    let o = close_with(
        &store,
        &settings,
        &app,
        "2026-11-28",
        RunOptions {
            worker: "w2".into(),
            crash_in_chunk: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((o.chunks, o.done), (0, false));
    let holders = store.cob_chunk_holders(o.run.id).await.unwrap();
    assert_eq!(holders, vec!["w2".to_owned()]);
    // … and after its lease two workers finish the run side by side.
    app.clock.advance_millis(settings.chunk_lease_ms + 1_000);
    let (s1, s2) = (store.clone(), store.clone());
    let (set1, set2) = (settings.clone(), settings.clone());
    let clock = app.clock.clone();
    let task = |s: Store, set: CobSettings, worker: &'static str| {
        let clock = clock.clone();
        let cap = app.state.settings().apr_cap;
        tokio::spawn(async move {
            let now = move || zhudai_domain::clock::Clock::now(clock.as_ref()).timestamp_millis();
            zhudai_server::cob::run(
                &s,
                &set,
                cap,
                d("2026-11-28"),
                d("2026-11-29"),
                &now,
                &RunOptions {
                    worker: worker.into(),
                    ..Default::default()
                },
                &mut |_| {},
            )
            .await
            .unwrap()
        })
    };
    let (a, b) = (task(s1, set1, "w3"), task(s2, set2, "w4"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    // The one that closes the last chunk finishes the run; the other may stop first.
    assert!(a.done || b.done, "{a:?} {b:?}");
    assert_eq!(
        store.cob_run("2026-11-28").await.unwrap().unwrap().state,
        "done"
    );
    assert_eq!(
        3 + a.chunks + b.chunks,
        clean.run.chunks_total as usize,
        "every chunk closed once"
    );
    let mine = dump(&store).await;
    let theirs = dump(twin.state.store()).await;
    assert_eq!(mine.len(), theirs.len());
    for (m, t) in mine.iter().zip(&theirs) {
        assert_eq!(m, t);
    }
    verify(&store).await;
    assert!(
        clean.run.totals.penalty_fen > 0 && clean.run.totals.cases_opened > 20,
        "{:?}",
        clean.run.totals
    );

    // DuckDB computes the tiers, days past due and buckets from the raw rows: the same.
    let dir = tempfile::tempdir().unwrap();
    let n = zhudai_server::cob::export_check_inputs(&store, &settings, d("2026-11-28"), dir.path())
        .await
        .unwrap();
    let check = zhudai_server::cob::run_duckdb_check(dir.path()).unwrap();
    assert_eq!(check["loans"].as_u64(), Some(n), "{check}");
    assert_eq!(n, sum.open_loans);
    assert_eq!(check["mismatches"], 0, "{check}");
    let tiers = check["by_tier"].as_object().unwrap();
    assert!(
        tiers.len() >= 4,
        "a book with every kind of arrears: {check}"
    );
    twin_db.close().await;
}

/// The close hands each loan that entered a later bucket past due to the risk-warning
/// rules as an `overdue` event (issue #8 item 3): the rule fires once, in the chunk's
/// transaction; closing the day again (or the next day, same bucket) adds nothing, and
/// a loan still current raises nothing.
async fn close_reports_overdue_loans_to_the_warning_rules(db: &TestDb) {
    // Never paid since 2026-06-15: the first installment fell due 07-15, 136 days before
    // 11-28 (M5).
    let f = crate::loans::fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let app = &f.app;
    let store = app.state.store();
    // A loan disbursed 11-01: nothing due yet, so no event.
    open_loan(
        app,
        &f.cm,
        "11010519870303007",
        "consumer_std",
        "50000",
        12,
        "equal_principal",
        "2026-11-01",
        "cfc_b",
    )
    .await;
    let rm = app.token_in_unit("risk_manager", None).await;
    crate::warnings::enabled_rule(
        app,
        &rm,
        crate::warnings::rule(
            "cob_dpd_90",
            &["overdue"],
            "event.days > 90 && loan.days_past_due == event.days && loan.outstanding > 1000",
            "critical",
            json!([]),
        ),
    )
    .await;
    let out = close(app, "2026-11-28", RunOptions::default()).await;
    assert!(out.done && !out.already_done);
    let customer: i64 = sqlx::query_scalar("SELECT customer_id FROM loans WHERE id = $1")
        .bind(f.loan)
        .fetch_one(store.reader())
        .await
        .unwrap();
    let events = |store: Store| async move {
        sqlx::query("SELECT event_type, customer_id, days, source FROM risk_events ORDER BY id")
            .fetch_all(store.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<i64, _>(1),
                    r.get::<i64, _>(2),
                    r.get::<String, _>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events(store.clone()).await,
        [("overdue".to_owned(), customer, 136, "cob".to_owned())]
    );
    let warnings = |store: Store| async move {
        sqlx::query("SELECT rule_code, customer_id, hits, status FROM risk_warnings ORDER BY id")
            .fetch_all(store.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<i64, _>(1),
                    r.get::<i64, _>(2),
                    r.get::<String, _>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    let opened = vec![("cob_dpd_90".to_owned(), customer, 1, "open".to_owned())];
    assert_eq!(warnings(store.clone()).await, opened);
    // The same day again: done before, nothing evaluated twice.
    assert!(
        close(app, "2026-11-28", RunOptions::default())
            .await
            .already_done
    );
    // The next day: 137 days, still M5: no new event, the warning unchanged.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    assert!(close(app, "2026-11-29", RunOptions::default()).await.done);
    assert_eq!(events(store.clone()).await.len(), 1);
    assert_eq!(warnings(store.clone()).await, opened);
    verify(store).await;
}

/// Every loan's id in order; checks they are the book's loans.
async fn loan_ids(store: &zhudai_store::Store, sum: &zhudai_server::book::BookSummary) -> Vec<i64> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM loans ORDER BY id")
        .fetch_all(store.reader())
        .await
        .unwrap();
    assert_eq!(ids.len() as u64, sum.loans);
    ids
}

/// A repayment skips the on-demand close when `loan_needs_close` says there is nothing to
/// do; that is only sound if it picks exactly the loans the close's own SQL selects.
async fn the_rust_test_for_a_needed_close_agrees_with_the_close_selection(db: &TestDb) {
    let app = TestApp::start(db).await;
    let sum = book(&app, 300, 5).await;
    let store = app.state.store();
    let ids = loan_ids(store, &sum).await;
    let (first, last) = (ids[0], ids[ids.len() - 1]);
    // Before the book's date, on it, and months later (most of the book falls due).
    for date in ["2026-06-01", "2026-11-28", "2026-11-29", "2027-03-15"] {
        let mut tx = store.begin().await.unwrap();
        let by_sql = zhudai_store::cob::loans_to_close(&mut tx, first, last, d(date))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let mut by_rust = Vec::new();
        for &id in &ids {
            if zhudai_store::cob::loan_needs_close(
                &loan(store, id).await,
                &insts(store, id).await,
                d(date),
            ) {
                by_rust.push(id);
            }
        }
        assert_eq!(by_rust, by_sql, "{date}");
        // Neither side is trivially empty or full on the book's own date.
        if date == "2026-11-29" {
            assert!(
                !by_sql.is_empty() && by_sql.len() < ids.len(),
                "{}",
                by_sql.len()
            );
        }
    }
}

/// The one-row (JSON) read of a schedule that repayments use gives exactly the rows the
/// plain read gives, in order, on both databases; and nothing for a loan without any.
async fn packed_installments_read_as_the_rows_do(db: &TestDb) {
    let app = TestApp::start(db).await;
    let sum = book(&app, 60, 9).await;
    let store = app.state.store();
    let ids = loan_ids(store, &sum).await;
    let mut compared = 0;
    for id in ids.iter().copied().chain([i64::MAX]) {
        let mut b = zhudai_store::batch::Batch::new();
        b.push(zhudai_store::loans::installments_packed_stmt(
            id,
            store.backend(),
        ));
        let mut conn = store.reader().acquire().await.unwrap();
        let r = b.run(&mut conn).await.unwrap();
        let packed = zhudai_store::loans::installments_from_packed(&r[0]).unwrap();
        let plain = if id == i64::MAX {
            Vec::new()
        } else {
            insts(store, id).await
        };
        assert_eq!(packed, plain, "loan {id}");
        compared += plain.len();
    }
    assert!(compared > ids.len(), "schedules have several installments");
}
