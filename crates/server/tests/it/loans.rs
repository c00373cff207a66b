//! Loans, repayments and the ledger (issue #8) over HTTP, on both databases: a loan is
//! opened from an approved application (once, however often asked); repayments are
//! allocated penalty → fee → interest → principal; early partial and early full
//! repayments agree with an independent Python computation; a hundred concurrent copies
//! of one request post once; a reversal restores every balance; bad input changes
//! nothing; and `ledger_verify` passes after every scenario and fails once a journal line
//! is altered behind the application's back.

use crate::support::TestApp;
use chrono::NaiveDate;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use zhudai_store::sqlx;
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(
    opening_is_idempotent_and_balanced,
    concurrent_duplicates_post_once,
    allocation_order_and_penalty,
    early_repayments_match_the_reference,
    early_repayments_equal_principal,
    reversal_restores_balances,
    bad_input_changes_nothing,
    scope_and_permissions,
    verify_catches_an_altered_line,
);

pub struct Fixture {
    pub app: TestApp,
    pub loan: i64,
    /// Operations (loan.repay, loan.reverse, ledger.read), scope all.
    pub ops: String,
    /// The customer manager who owns the loan.
    pub cm: String,
    pub application: i64,
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A customer's application on `product`, approved, and its loan opened on `disbursed_on`.
pub async fn fixture(
    db: &TestDb,
    product: &str,
    amount: &str,
    months: i64,
    method: &str,
    disbursed_on: &str,
) -> Fixture {
    zhudai_server::demo::seed(&db.store, 1).await.unwrap();
    let app = TestApp::start(db).await;
    let co = app.org_unit(None, "company", "l-co").await;
    let team = app.org_unit(Some(co), "team", "l-team").await;
    let cm = app.token_in_unit("customer_manager", Some(team)).await;
    let ops = app.token_in_unit("operations", Some(co)).await;
    let c = reqwest::Client::new();
    let id_number = zhudai_domain::ident::ResidentId::from_body("11010519850101002").unwrap();
    let r: Value = c
        .post(app.url("/api/v1/customers"))
        .bearer_auth(&cm)
        .json(&json!({"name": "赵六", "id_number": id_number.as_str(), "phone": "13912345671"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customer = r["id"].as_i64().unwrap();
    let r: Value = c
        .post(app.url("/api/v1/applications"))
        .bearer_auth(&cm)
        .json(&json!({"customer_id": customer, "product_code": product, "amount": amount, "months": months, "method": method}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let application = r["id"].as_i64().unwrap_or_else(|| panic!("{r}"));
    // The workflow steps to the disbursement are the applications' tests' business.
    zhudai_store::applications::application_set_progress(
        db.store.writer(),
        application,
        "approved",
        "disbursement",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let loan = open(&app, application, amount, disbursed_on).await;
    Fixture {
        app,
        loan,
        ops,
        cm,
        application,
    }
}

async fn open(app: &TestApp, application: i64, amount: &str, disbursed_on: &str) -> i64 {
    let mut tx = app.state.store().begin().await.unwrap();
    let id = zhudai_server::loans::open_from_application(
        &mut tx,
        &app.state,
        &zhudai_server::loans::Disbursement {
            application_id: application,
            amount_fen: zhudai_domain::money::Fen::parse(amount).unwrap().as_fen(),
            disbursed_on: d(disbursed_on),
            funder_code: "bank_a".into(),
            funder_loan_ref: Some("BA-0001".into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

impl Fixture {
    pub async fn repay(&self, key: &str, body: Value) -> (u16, Value) {
        self.repay_as(&self.ops, key, body).await
    }

    pub async fn repay_as(&self, token: &str, key: &str, body: Value) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(
                self.app
                    .url(&format!("/api/v1/loans/{}/repayments", self.loan)),
            )
            .bearer_auth(token)
            .json(&body);
        if !key.is_empty() {
            req = req.header("Idempotency-Key", key);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn reverse(&self, rid: i64, key: &str, reason: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.app.url(&format!(
                "/api/v1/loans/{}/repayments/{rid}/reversal",
                self.loan
            )))
            .bearer_auth(&self.ops)
            .header("Idempotency-Key", key)
            .json(&json!({"reason": reason}))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn detail(&self) -> Value {
        let r = reqwest::Client::new()
            .get(self.app.url(&format!("/api/v1/loans/{}", self.loan)))
            .bearer_auth(&self.ops)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// The ledger proves itself.
    pub async fn verify_ok(&self) {
        let rep = self.app.state.store().ledger_verify().await.unwrap();
        assert!(rep.ok(), "{:#?}", rep.problems);
        assert!(rep.loans >= 1 && rep.entries >= 1);
    }
}

fn fen(v: &Value) -> i64 {
    zhudai_domain::money::Fen::parse_signed(v.as_str().unwrap_or_else(|| panic!("{v}")))
        .unwrap()
        .as_fen()
}

fn body(kind: &str, amount: &str, value_date: &str) -> Value {
    json!({"kind": kind, "amount": amount, "value_date": value_date, "payer_name": "赵六"})
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db.store.reader())
        .await
        .unwrap()
}

async fn opening_is_idempotent_and_balanced(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    // A second opening returns the same loan and writes nothing.
    let entries = count(db, "journal_entries").await;
    assert_eq!(
        open(&f.app, f.application, "100000", "2026-06-15").await,
        f.loan
    );
    assert_eq!(count(db, "journal_entries").await, entries);
    let l = f.detail().await;
    assert_eq!(l["principal"], "100000.00");
    assert_eq!(l["funder_code"], "bank_a");
    // Recorded after five due dates: overdue since the day after the first one.
    assert_eq!(l["status"], "overdue");
    assert_eq!(l["dpd"], 137);
    assert_eq!(l["overdue_since"], "2026-07-16");
    let schedule = l["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 12);
    assert_eq!(schedule[0]["due_date"], "2026-07-15");
    // 15 % a year, 100,000 yuan, 12 months: installment 9,025.83 + 100.00 guarantee fee.
    assert_eq!(schedule[0]["interest_due"], "1250.00");
    assert_eq!(schedule[0]["fee_due"], "100.00");
    let p0 = fen(&schedule[0]["principal_due"]) + fen(&schedule[0]["interest_due"]);
    assert_eq!(p0, 902_583);
    let total_interest: i64 = schedule.iter().map(|p| fen(&p["interest_due"])).sum();
    assert_eq!(fen(&l["interest_outstanding"]), total_interest);
    // The disbursement entry: four lines, balanced; per-loan balances from it.
    let j = l["journal"].as_array().unwrap();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["kind"], "disbursement");
    let bal = |code: &str| {
        l["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["account"] == code)
            .map(|b| fen(&b["balance"]))
            .unwrap_or(0)
    };
    assert_eq!(bal("loan_principal"), 10_000_000);
    assert_eq!(bal("funder_funding"), 10_000_000);
    assert_eq!(bal("interest_receivable"), total_interest);
    assert_eq!(bal("fee_receivable"), 120_000);
    // Book-wide balances per funder and account.
    let c = reqwest::Client::new();
    let funders: Value = c
        .get(f.app.url("/api/v1/ledger/funders?funder_code=bank_a"))
        .bearer_auth(&f.ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(funders
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["account"] == "loan_principal" && b["balance"] == "100000.00"));
    let accounts: Value = c
        .get(f.app.url("/api/v1/ledger/accounts"))
        .bearer_auth(&f.ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 17);
    // 5 installments are due by 2026-11-29 and unpaid: the loan shows what is due.
    assert_eq!(
        fen(&l["due"]["due_now"]),
        schedule[..5]
            .iter()
            .map(|p| fen(&p["outstanding"]))
            .sum::<i64>()
    );
    // The list filters by status.
    let list: Value = c
        .get(f.app.url("/api/v1/loans?status=overdue&limit=10"))
        .bearer_auth(&f.ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    f.verify_ok().await;
}

async fn concurrent_duplicates_post_once(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let due = f.detail().await["schedule"][0]["outstanding"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = body("scheduled", &due, "2026-07-15");
    let mut tasks = Vec::new();
    let f = std::sync::Arc::new(f);
    for _ in 0..100 {
        let f = f.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move { f.repay("dup-key-1", b).await }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, r) = t.await.unwrap();
        assert_eq!(s, 201, "{r}");
        ids.insert(r["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 1, "every copy answers with the one repayment");
    assert_eq!(count(db, "repayments").await, 1);
    assert_eq!(count(db, "journal_entries").await, 2);
    // Once more, sequentially: the same answer, marked as a replay.
    let r = reqwest::Client::new()
        .post(f.app.url(&format!("/api/v1/loans/{}/repayments", f.loan)))
        .bearer_auth(&f.ops)
        .header("Idempotency-Key", "dup-key-1")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    // The same key with another body: refused, nothing posted.
    let (s, p) = f
        .repay("dup-key-1", body("scheduled", "9999.00", "2026-08-15"))
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(p["errors"][0]["code"], "reused");
    // No key at all: refused.
    let (s, p) = f.repay("", b.clone()).await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );
    assert_eq!(count(db, "repayments").await, 1);
    let l = f.detail().await;
    assert!(l["schedule"][0]["settled_on"] == "2026-07-15");
    f.verify_ok().await;
}

/// Accrues penalty on an installment the way the daily close will: the installment's
/// accrued penalty, the loan's outstanding penalty and a balanced journal entry.
async fn accrue_penalty(f: &Fixture, number: i64, fen: i64, on: &str) {
    let store = f.app.state.store();
    let mut tx = store.begin().await.unwrap();
    sqlx::query("UPDATE loan_installments SET penalty_accrued_fen = penalty_accrued_fen + $1, penalty_accrued_through = $2 WHERE loan_id = $3 AND number = $4")
        .bind(fen)
        .bind(on)
        .bind(f.loan)
        .bind(number)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE loans SET penalty_outstanding_fen = penalty_outstanding_fen + $1 WHERE id = $2",
    )
    .bind(fen)
    .bind(f.loan)
    .execute(&mut *tx)
    .await
    .unwrap();
    zhudai_store::loans::entry_insert(
        &mut tx,
        &zhudai_store::loans::NewEntry {
            kind: "penalty_accrual",
            loan_id: Some(f.loan),
            funder_code: Some("bank_a"),
            business_date: on,
            reverses_entry_id: None,
            memo: None,
            created_by: Some("test"),
        },
        &[("penalty_receivable", fen, 0), ("penalty_income", 0, fen)],
        1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn allocation_order_and_penalty(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let l = f.detail().await;
    let s0 = &l["schedule"][0];
    // Installment 1 overdue with 12.34 yuan of penalty; a partial payment of 1,000 yuan
    // pays penalty 12.34, the fee 100.00, interest 1,250.00 — only 1,000 is there:
    // penalty, fee, then 887.66 of interest; nothing to principal.
    accrue_penalty(&f, 1, 1234, "2026-07-20").await;
    f.verify_ok().await;
    let (s, r) = f
        .repay("alloc-1", body("partial", "1000", "2026-07-20"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (
            r["penalty"].as_str(),
            r["fee"].as_str(),
            r["interest"].as_str(),
            r["principal"].as_str()
        ),
        (Some("12.34"), Some("100.00"), Some("887.66"), Some("0.00"))
    );
    assert_eq!(r["loan_status"], "overdue");
    // The rest of installment 1 as "partial" is refused (it covers what is due) …
    let l = f.detail().await;
    let rest = l["schedule"][0]["outstanding"].as_str().unwrap().to_owned();
    let (s, p) = f
        .repay("alloc-2", body("partial", &rest, "2026-07-21"))
        .await;
    assert_eq!(
        (s, p["errors"][0]["code"].as_str()),
        (422, Some("servicing.not_below_due"))
    );
    // … and accepted as scheduled, with 50 yuan over held as credit (溢缴款).
    let over = zhudai_domain::money::Fen::new(fen(&json!(rest)) + 5000).to_string();
    let (s, r) = f
        .repay("alloc-2", body("scheduled", &over, "2026-07-21"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["overpaid"], "50.00");
    assert_eq!(
        fen(&r["interest"]) + fen(&r["principal"]),
        fen(&s0["interest_due"]) + fen(&s0["principal_due"]) - 88_766
    );
    let l = f.detail().await;
    assert_eq!(l["overpaid"], "50.00");
    assert_eq!(l["schedule"][0]["settled_on"], "2026-07-21");
    // The next payment uses the credit first: 50.00 credit + installment − 50.00 cash.
    let inst2 = fen(&l["schedule"][1]["outstanding"]);
    let cash = zhudai_domain::money::Fen::new(inst2 - 5000).to_string();
    let (s, r) = f
        .repay("alloc-3", body("scheduled", &cash, "2026-08-15"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["credit_used"], "50.00");
    let l = f.detail().await;
    assert_eq!(l["overpaid"], "0.00");
    assert_eq!(l["schedule"][1]["settled_on"], "2026-08-15");
    // A third party pays installment 3, flagged with the relation.
    let inst3 = l["schedule"][2]["outstanding"].as_str().unwrap().to_owned();
    let (s, p) = f
        .repay("alloc-4", json!({"kind": "scheduled", "amount": inst3, "value_date": "2026-09-15", "payer_name": "赵母", "third_party": true}))
        .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (422, Some("payer_relation"))
    );
    let (s, r) = f
        .repay("alloc-4", json!({"kind": "scheduled", "amount": inst3, "value_date": "2026-09-15", "payer_name": "赵母", "third_party": true, "payer_relation": "母亲", "channel": "counter"}))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (r["third_party"].as_bool(), r["payer_relation"].as_str()),
        (Some(true), Some("母亲"))
    );
    // Days past due: installments 4 and 5 (due 10-15 and 11-15) are unpaid on 11-29.
    let l = f.detail().await;
    assert_eq!(l["dpd"], 45);
    assert_eq!(l["overdue_since"], "2026-10-16");
    f.verify_ok().await;
}

/// Runs the Python reference with `cases`; returns its results.
fn reference(cases: Value) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/loans_reference.py");
    let py = std::env::var("ZHUDAI_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed (scripts/install-deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!({ "cases": cases }).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference failed ({}; exit 3 = numpy-financial missing, run scripts/install-deps.sh): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["results"].as_array().unwrap().clone()
}

async fn pay_due(f: &Fixture, n: usize, key: &str) {
    for k in 0..n {
        let l = f.detail().await;
        let p = &l["schedule"][k];
        let (s, r) = f
            .repay(
                &format!("{key}-{k}"),
                body(
                    "scheduled",
                    p["outstanding"].as_str().unwrap(),
                    p["due_date"].as_str().unwrap(),
                ),
            )
            .await;
        assert_eq!(s, 201, "{r}");
    }
}

async fn early_repayments_match_the_reference(db: &TestDb) {
    early_repayments(db, "equal_installment").await;
}

async fn early_repayments_equal_principal(db: &TestDb) {
    early_repayments(db, "equal_principal").await;
}

async fn early_repayments(db: &TestDb, method: &str) {
    let f = fixture(db, "consumer_std", "120000", 24, method, "2026-06-15").await;
    pay_due(&f, 3, method).await;
    // Early partial on 2026-09-20 (after period 3): 30,000 yuan beyond what is due.
    let (s, r) = f
        .repay("ep", body("early_partial", "30000", "2026-09-20"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["principal"], "30000.00");
    let l = f.detail().await;
    let got: Vec<(i64, i64)> = l["schedule"].as_array().unwrap()[3..]
        .iter()
        .enumerate()
        .map(|(j, p)| {
            // The prepayment is recorded on period 4 as principal due and paid.
            let prepaid = if j == 0 { 3_000_000 } else { 0 };
            (fen(&p["principal_due"]) - prepaid, fen(&p["interest_due"]))
        })
        .collect();
    let results = reference(json!([
        {"principal_fen": 12_000_000, "annual_rate": "0.15", "months": 24, "method": method,
         "paid_periods": 3, "prepay_fen": 3_000_000, "kind": "early_partial"},
    ]));
    let want: Vec<(i64, i64)> = results[0]["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    assert_eq!(got, want, "{method}: the recalculated schedule");
    // Periods 4 and 5 as scheduled, then settle on 2026-11-29: 14 days after 11-15.
    pay_due_from(&f, 3, 5, "p").await;
    let (s, p) = f
        .repay("ef-low", body("early_full", "1000", "2026-11-29"))
        .await;
    assert_eq!(
        (s, p["errors"][0]["code"].as_str()),
        (422, Some("servicing.below_payoff"))
    );
    let q = f.detail().await;
    let balance: i64 = q["schedule"].as_array().unwrap()[5..]
        .iter()
        .map(|p| fen(&p["principal_due"]) - fen(&p["principal_paid"]))
        .sum();
    let results = reference(json!([{
        "principal_fen": balance, "annual_rate": "0.15", "months": 1, "method": method,
        "paid_periods": 0, "days": 14, "kind": "early_full"}]));
    let payoff_ref = results[0]["payoff_fen"].as_i64().unwrap();
    assert_eq!(
        fen(&q["due"]["payoff"]),
        payoff_ref,
        "{method}: the payoff quote"
    );
    let amount = zhudai_domain::money::Fen::new(payoff_ref).to_string();
    let (s, r) = f
        .repay("ef", body("early_full", &amount, "2026-11-29"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["loan_status"], "paid_off");
    let l = f.detail().await;
    assert_eq!(
        (
            l["principal_outstanding"].as_str(),
            l["interest_outstanding"].as_str(),
            l["fee_outstanding"].as_str()
        ),
        (Some("0.00"), Some("0.00"), Some("0.00"))
    );
    assert_eq!(l["closed_on"], "2026-11-29");
    assert!(l["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["outstanding"] == "0.00"));
    // Nothing more can be paid.
    let (s, p) = f
        .repay("ef-again", body("scheduled", "1", "2026-11-29"))
        .await;
    assert_eq!(
        (s, p["errors"][0]["code"].as_str()),
        (422, Some("servicing.loan_closed"))
    );
    f.verify_ok().await;
}

async fn pay_due_from(f: &Fixture, from: usize, to: usize, key: &str) {
    for k in from..to {
        let l = f.detail().await;
        let p = &l["schedule"][k];
        let (s, r) = f
            .repay(
                &format!("{key}-{k}"),
                body(
                    "scheduled",
                    p["outstanding"].as_str().unwrap(),
                    p["due_date"].as_str().unwrap(),
                ),
            )
            .await;
        assert_eq!(s, 201, "{r}");
    }
}

async fn reversal_restores_balances(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    pay_due(&f, 2, "r").await;
    let before = f.detail().await;
    let (s, ep) = f
        .repay("r-ep", body("early_partial", "20000", "2026-08-20"))
        .await;
    assert_eq!(s, 201, "{ep}");
    let after = f.detail().await;
    assert_ne!(before["schedule"], after["schedule"]);
    // Only the newest posted repayment may be reversed.
    let first = before["repayments"][0]["id"].as_i64().unwrap();
    let (s, _) = f.reverse(first, "rev-old", "wrong loan").await;
    assert_eq!(s, 409);
    let (s, p) = f.reverse(ep["id"].as_i64().unwrap(), "rev-1", "").await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (422, Some("reason")));
    let (s, r) = f
        .reverse(
            ep["id"].as_i64().unwrap(),
            "rev-1",
            "bank returned the transfer",
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "reversed");
    // The same reversal again (same key): the same answer; with a new key: refused.
    let (s, r2) = f
        .reverse(
            ep["id"].as_i64().unwrap(),
            "rev-1",
            "bank returned the transfer",
        )
        .await;
    assert_eq!((s, r2["id"].clone()), (200, r["id"].clone()));
    let (s, _) = f
        .reverse(ep["id"].as_i64().unwrap(), "rev-2", "again")
        .await;
    assert_eq!(s, 409);
    let restored = f.detail().await;
    assert_eq!(restored["schedule"], before["schedule"]);
    for k in [
        "principal_outstanding",
        "interest_outstanding",
        "fee_outstanding",
        "overpaid",
        "status",
        "dpd",
    ] {
        assert_eq!(restored[k], before[k], "{k}");
    }
    let bal = |v: &Value| {
        v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["account"].clone(), b["balance"].clone()))
            .filter(|(a, _)| a != "cash_clearing")
            .collect::<Vec<_>>()
    };
    assert_eq!(bal(&restored), bal(&before));
    // The journal keeps both: the repayment and its mirror.
    let j = restored["journal"].as_array().unwrap();
    let last = j.last().unwrap();
    assert_eq!(last["kind"], "reversal");
    assert_eq!(last["reverses_entry_id"], ep["entry_id"]);
    assert_eq!(restored["repayments"].as_array().unwrap().len(), 3);
    f.verify_ok().await;
    // After the reversal the earlier repayment is the newest and can be reversed too.
    let second = before["repayments"][1]["id"].as_i64().unwrap();
    let (s, _) = f.reverse(second, "rev-3", "duplicate").await;
    assert_eq!(s, 200);
    let l = f.detail().await;
    assert_eq!(l["schedule"][1]["settled_on"], Value::Null);
    f.verify_ok().await;
}

async fn bad_input_changes_nothing(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let before = f.detail().await;
    let lines = count(db, "journal_lines").await;
    let (s, p) = f
        .repay("bad-1", json!({"kind": "sometimes", "amount": "12.345", "value_date": "2026-13-01", "payer_name": ""}))
        .await;
    assert_eq!(s, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["kind", "amount", "value_date", "payer_name"]);
    for (b, field) in [
        (body("scheduled", "-5", "2026-07-15"), "amount"),
        (body("scheduled", "100", "2026-12-01"), "value_date"),
        (body("scheduled", "100", "2026-06-01"), "value_date"),
        (body("scheduled", "100", "2026-07-15"), "amount"),
        (body("early_full", "100", "2026-07-15"), "amount"),
        (
            json!({"kind": "scheduled", "amount": "100", "payer_name": "x", "channel": "pigeon"}),
            "channel",
        ),
    ] {
        let (s, p) = f.repay("bad-2", b).await;
        assert_eq!(
            (s, p["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{p}"
        );
    }
    let (s, _) = f.repay("bad-3", json!({"kind": "scheduled"})).await;
    assert_eq!(s, 422);
    assert_eq!(count(db, "journal_lines").await, lines);
    assert_eq!(count(db, "repayments").await, 0);
    assert_eq!(count(db, "idempotency_keys").await, 0);
    assert_eq!(f.detail().await["schedule"], before["schedule"]);
    // The key of a refused request is free: the corrected request posts with it.
    let due = before["schedule"][0]["outstanding"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, r) = f
        .repay("bad-2", body("scheduled", &due, "2026-07-15"))
        .await;
    assert_eq!(s, 201, "{r}");
    // Unknown loan: 404.
    let r = reqwest::Client::new()
        .post(f.app.url("/api/v1/loans/999999/repayments"))
        .bearer_auth(&f.ops)
        .header("Idempotency-Key", "k")
        .json(&body("scheduled", "1", "2026-07-15"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    f.verify_ok().await;
}

async fn scope_and_permissions(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    let c = reqwest::Client::new();
    // The owner sees the loan; another customer manager (own scope) does not.
    let r = c
        .get(f.app.url(&format!("/api/v1/loans/{}", f.loan)))
        .bearer_auth(&f.cm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let other = f.app.token_in_unit("customer_manager", None).await;
    let r = c
        .get(f.app.url(&format!("/api/v1/loans/{}", f.loan)))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let list: Value = c
        .get(f.app.url("/api/v1/loans"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
    // Reading is not paying: the customer manager may not post; nor see book balances.
    let (s, _) = f
        .repay_as(&f.cm, "perm-1", body("scheduled", "1", "2026-07-15"))
        .await;
    assert_eq!(s, 403);
    let r = c
        .get(f.app.url("/api/v1/ledger/accounts"))
        .bearer_auth(&f.cm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(f.app.url("/api/v1/loans?status=nope&limit=0"))
        .bearer_auth(&f.ops)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Every write is audited in its transaction.
    let due = f.detail().await["schedule"][0]["outstanding"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = f
        .repay("perm-2", body("scheduled", &due, "2026-07-15"))
        .await;
    assert_eq!(s, 201);
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action IN ('loan.open', 'loan.repayment')",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap();
    assert_eq!(n, 2);
}

async fn verify_catches_an_altered_line(db: &TestDb) {
    let f = fixture(
        db,
        "consumer_std",
        "100000",
        12,
        "equal_installment",
        "2026-06-15",
    )
    .await;
    pay_due(&f, 2, "v").await;
    f.verify_ok().await;
    // Someone with database access edits a line (the append-only trigger refuses a
    // plain UPDATE, so they drop it first).
    let store = f.app.state.store();
    let refused = sqlx::query("UPDATE journal_lines SET debit_fen = debit_fen + 100 WHERE id = (SELECT MIN(id) FROM journal_lines WHERE debit_fen > 0)")
        .execute(store.writer())
        .await;
    assert!(refused.is_err(), "journal lines are append-only");
    let drop = match store.backend() {
        zhudai_store::Backend::Sqlite => "DROP TRIGGER journal_lines_no_update",
        zhudai_store::Backend::Postgres => {
            "DROP TRIGGER journal_lines_append_only ON journal_lines"
        }
    };
    sqlx::query(drop).execute(store.writer()).await.unwrap();
    let (line, entry): (i64, i64) = {
        let r = sqlx::query_as::<_, (i64, i64)>("SELECT id, entry_id FROM journal_lines WHERE account_code = 'loan_principal' AND debit_fen > 0 ORDER BY id LIMIT 1")
            .fetch_one(store.reader())
            .await
            .unwrap();
        r
    };
    sqlx::query("UPDATE journal_lines SET debit_fen = debit_fen + 100 WHERE id = $1")
        .bind(line)
        .execute(store.writer())
        .await
        .unwrap();
    let rep = store.ledger_verify().await.unwrap();
    assert!(!rep.ok());
    let text = rep.problems.join("\n");
    assert!(
        text.contains(&format!("journal entry {entry} does not balance")),
        "{text}"
    );
    assert!(text.contains(&format!("loan {}", f.loan)), "{text}");
}
