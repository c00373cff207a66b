//! `zhudai import customers` as an operator meets it, including a crash: the process is
//! killed (SIGKILL) in the middle of an import, and the database must hold only whole
//! customers (each row with its data key, each decrypting), counts that agree with the
//! job row, and a re-run that resumes and completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, zhudai};
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zhudai_store::testing::TestDb;

zhudai_store::on_both!(killed_mid_import_leaves_whole_customers_and_resumes);

async fn killed_mid_import_leaves_whole_customers_and_resumes(db: &TestDb) {
    // An owner.
    let mut c = zhudai(db);
    let mut child = c
        .args([
            "user",
            "create",
            "--username",
            "ops",
            "--role",
            "operations",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Correct-Horse-42\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    // The file: 2% bad rows.
    let file = db.data_dir().join("c.csv");
    let rows = 30_000_u64;
    let out = ok(zhudai(db)
        .args([
            "demo",
            "gen-customers",
            "--rows",
            &rows.to_string(),
            "--bad-every",
            "50",
            "--out",
        ])
        .arg(&file));
    assert!(out.contains("29400 valid"), "{out}");
    let valid = 29_400_i64;
    // Start the import in small batches and kill it once some batches are in.
    let store = &db.store;
    let mut child = zhudai(db)
        .args(["import", "customers", "--batch", "200"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let n = store.customer_count().await.unwrap_or(0);
        if n >= 1_000 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the import made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs.
    child.wait().unwrap();

    // Only whole customers: every row has its key and decrypts; the job row agrees.
    let vault = zhudai_server::vault::Vault::open(
        store,
        &db.data_dir(),
        None,
        zhudai_crypto::envelope::Algorithm::Aes256Gcm,
        Arc::new(zhudai_domain::clock::SystemClock),
    )
    .await
    .unwrap();
    let jobs = store.import_list(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.status, "running", "the killed run never finished");
    let customers = store.customer_count().await.unwrap();
    assert!(customers < valid, "killed before the end ({customers})");
    assert_eq!(
        job.counts.inserted, customers,
        "the job's count is the committed rows"
    );
    assert_eq!(
        job.counts.processed,
        job.counts.inserted + job.counts.rejected,
        "{:?}",
        job.counts
    );
    assert_eq!(job.counts.processed % 200, 0, "whole batches only");
    let mut after = 0;
    let mut seen = 0;
    loop {
        let page = store
            .customers_scan(&zhudai_store::customers::ScopeFilter::All, after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in &page {
            let clear = zhudai_server::customers::decrypt(&vault, r).await.unwrap();
            assert_eq!(
                clear.id_number.as_ref().map(String::len),
                Some(18),
                "customer {}",
                r.id
            );
            assert!(clear.phone.is_some());
            seen += 1;
        }
    }
    assert_eq!(seen, customers);
    let keys: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM data_keys WHERE subject LIKE 'customer:%'",
    )
    .fetch_one(store.reader())
    .await
    .unwrap();
    assert_eq!(keys, customers, "one data key per customer, no orphan key");

    // The re-run resumes the same job and completes it.
    let out = ok(zhudai(db).args(["import", "customers"]).arg(&file));
    assert!(out.contains("resumed after row"), "{out}");
    let job = store.import_get(job.id).await.unwrap().unwrap();
    assert_eq!(job.status, "done");
    assert_eq!(job.counts.inserted, valid);
    assert_eq!(job.counts.rejected, rows as i64 - valid);
    assert_eq!(store.customer_count().await.unwrap(), valid);
    assert_eq!(
        store.import_errors(job.id, 10_000).await.unwrap().len(),
        600
    );
    // And once more: nothing changes.
    let out = ok(zhudai(db).args(["import", "customers"]).arg(&file));
    assert!(
        out.contains(&format!(
            "inserted 0, updated 0, unchanged {valid}, rejected 600"
        )),
        "{out}"
    );
    assert_eq!(store.customer_count().await.unwrap(), valid);
}
