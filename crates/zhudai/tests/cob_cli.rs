//! `zhudai cob run` killed (SIGKILL) in the middle of a close and run again gives the
//! same book as one clean run of the same close on a twin database (issue #8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, zhudai};
use std::process::Stdio;
use std::time::{Duration, Instant};
use zhudai_store::sqlx::Row;
use zhudai_store::testing::TestDb;

const DATE: &str = "2026-11-28";

fn generate(db: &TestDb) {
    ok(zhudai(db).args([
        "bench", "generate", "--loans", "1000", "--seed", "5", "--as-of", DATE,
    ]));
}

/// What a close decides, loan by loan, and the ledger it leaves (ids left out: they
/// may differ between the two databases only where nothing depends on them).
async fn dump(db: &TestDb) -> Vec<String> {
    let queries = [
        "SELECT ref, status, dpd, COALESCE(overdue_since, '-'), classification, collection_bucket, penalty_outstanding_fen, COALESCE(last_closed_on, '-'), version FROM loans ORDER BY ref",
        "SELECT l.ref, i.number, i.penalty_accrued_fen, COALESCE(i.penalty_accrued_through, '-') FROM loan_installments i JOIN loans l ON l.id = i.loan_id ORDER BY l.ref, i.number",
        "SELECT e.kind, l.account_code, CAST(SUM(l.debit_fen) AS BIGINT), CAST(SUM(l.credit_fen) AS BIGINT), COUNT(*) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id GROUP BY e.kind, l.account_code ORDER BY 1, 2",
        "SELECT l.ref, h.from_class, h.to_class, h.dpd FROM loan_classification_history h JOIN loans l ON l.id = h.loan_id ORDER BY l.ref, h.from_class",
        "SELECT l.ref, h.from_bucket, h.to_bucket, h.dpd FROM loan_bucket_history h JOIN loans l ON l.id = h.loan_id ORDER BY l.ref, h.from_bucket",
        "SELECT l.ref, c.bucket, c.state FROM collection_cases c JOIN loans l ON l.id = c.loan_id ORDER BY l.ref, c.state",
        "SELECT business_date, classification, collection_bucket, loans, principal_fen FROM cob_snapshots ORDER BY 1, 2, 3",
        "SELECT business_date, state, chunks_total, loans_closed, overdue_loans, penalty_fen, reclassified, bucket_moves, cases_opened FROM cob_runs ORDER BY business_date",
    ];
    let mut out = Vec::new();
    for sql in queries {
        let rows = zhudai_store::sqlx::query(sql)
            .fetch_all(db.store.reader())
            .await
            .unwrap();
        for r in rows {
            let cells: Vec<String> = (0..r.len())
                .map(|i| {
                    r.try_get::<i64, _>(i)
                        .map(|v| v.to_string())
                        .or_else(|_| r.try_get::<String, _>(i))
                        .unwrap_or_else(|_| "NULL".into())
                })
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

async fn chunks_done(db: &TestDb) -> i64 {
    zhudai_store::sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM cob_chunks WHERE state = 'done'",
    )
    .fetch_one(db.store.reader())
    .await
    .unwrap_or(0)
}

zhudai_store::on_both!(killed_mid_close_then_rerun_equals_one_clean_close);

async fn killed_mid_close_then_rerun_equals_one_clean_close(db: &TestDb) {
    // The twin: the same generated book, closed in one go.
    let twin = match db.store.backend() {
        zhudai_store::Backend::Sqlite => TestDb::sqlite().await.unwrap(),
        zhudai_store::Backend::Postgres => TestDb::postgres().await.unwrap(),
    };
    generate(db);
    generate(&twin);
    assert_eq!(
        dump(db).await,
        dump(&twin).await,
        "the same seed, the same book"
    );
    ok(zhudai(&twin).args(["cob", "run", "--date", DATE, "--chunk-size", "1"]));
    let clean = dump(&twin).await;
    assert!(
        clean
            .iter()
            .any(|l| l.starts_with(&format!("{DATE} | done"))),
        "the clean close finished"
    );

    // Here: killed once a few chunks are done, then run again.
    let mut child = zhudai(db)
        .args(["cob", "run", "--date", DATE, "--chunk-size", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while chunks_done(db).await < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the close finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the close made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The process being killed is the one doing the work: zhudai executed itself again
    // (same process id) with mimalloc's purge delay set (src/allocator.rs).
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|v| v == b"MIMALLOC_PURGE_DELAY=10000"),
        "zhudai runs with its allocator settings"
    );
    child.kill().unwrap(); // SIGKILL: no cleanup runs.
    child.wait().unwrap();
    let state: String =
        zhudai_store::sqlx::query_scalar("SELECT state FROM cob_runs WHERE business_date = $1")
            .bind(DATE)
            .fetch_one(db.store.reader())
            .await
            .unwrap();
    assert_eq!(state, "running", "killed before the close was done");
    assert_ne!(dump(db).await, clean, "killed part-way");

    ok(zhudai(db).args(["cob", "run", "--date", DATE, "--chunk-size", "1"]));
    assert_eq!(dump(db).await, clean);
    // And a third run changes nothing: the day is closed.
    ok(zhudai(db).args(["cob", "run", "--date", DATE, "--chunk-size", "1"]));
    assert_eq!(dump(db).await, clean);
    let verify = ok(zhudai(db).args(["ledger", "verify"]));
    assert!(!verify.is_empty());
}
