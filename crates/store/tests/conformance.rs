//! The storage conformance suite: every scenario runs on SQLite and on PostgreSQL.
//! PostgreSQL is required: when it cannot be reached these tests fail.

// The scenarios are plain async fns run by `on_both!`, not `#[test]`s, so clippy's
// allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use zhudai_store::jobs::{FailOutcome, NewJob};
use zhudai_store::meta::NewOrgUnit;
use zhudai_store::migrate::{latest_version, MIGRATIONS};
use zhudai_store::testing::TestDb;
use zhudai_store::{Store, StoreError, Violation};

use zhudai_store::on_both;

on_both!(
    migrations_are_idempotent_and_recorded,
    edited_migration_is_refused,
    newer_schema_is_refused,
    metadata_round_trip,
    org_units_and_constraint_violations,
    value_types_round_trip,
    jobs_lifecycle,
    jobs_dedupe_and_schedule,
    jobs_lease_expiry_and_death,
    concurrent_claims_never_share_a_job,
    transaction_rolls_back_everything,
    batches_return_each_statements_rows_and_roll_back_whole,
    an_abandoned_write_transaction_is_rolled_back,
    concurrent_transactions_commit_alone_or_together_but_never_early,
    a_transaction_of_its_own_commits_rolls_back_and_restores_foreign_keys,
    sqlite_is_built_with_the_projects_settings,
    readers_have_no_memory_map,
    audit_records_ride_with_the_commit_and_keep_the_chain,
);

async fn migrations_are_idempotent_and_recorded(db: &TestDb) {
    let again = db.store.migrate().await.unwrap();
    assert!(
        again.applied.is_empty(),
        "second run applied {:?}",
        again.applied
    );
    assert_eq!(again.current, latest_version());
    assert_eq!(db.store.schema_version().await.unwrap(), latest_version());
    // Versions strictly increase and each is recorded. (Parallel capabilities reserve
    // numbers: products is 5 while the funder registry's 4 lands in another branch, so
    // the list may have a gap until both are merged.)
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(versions.last().copied(), Some(latest_version()));
    let recorded: Vec<i64> = sqlx::query("SELECT version FROM zhudai_migrations ORDER BY version")
        .fetch_all(db.store.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::try_get(r, "version").unwrap())
        .collect();
    assert_eq!(recorded, versions);
}

async fn edited_migration_is_refused(db: &TestDb) {
    sqlx::query("UPDATE zhudai_migrations SET checksum = 'x' WHERE version = 1")
        .execute(db.store.writer())
        .await
        .unwrap();
    let err = db.store.migrate().await.unwrap_err();
    assert!(
        matches!(err, StoreError::ChecksumMismatch { version: 1, .. }),
        "{err}"
    );
}

async fn newer_schema_is_refused(db: &TestDb) {
    sqlx::query("INSERT INTO zhudai_migrations (version, name, checksum, applied_at_ms) VALUES (9999, 'future', 'x', 0)")
        .execute(db.store.writer())
        .await
        .unwrap();
    let err = db.store.migrate().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { db: 9999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade zhudai"));
}

async fn metadata_round_trip(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.meta_get("k").await.unwrap(), None);
    s.meta_set("k", "v1", 1).await.unwrap();
    s.meta_set("k", "v2", 2).await.unwrap();
    assert_eq!(s.meta_get("k").await.unwrap().as_deref(), Some("v2"));
    assert!(s.meta_set_once("once", "a", 3).await.unwrap());
    assert!(!s.meta_set_once("once", "b", 4).await.unwrap());
    assert_eq!(s.meta_get("once").await.unwrap().as_deref(), Some("a"));
}

async fn org_units_and_constraint_violations(db: &TestDb) {
    let s = &db.store;
    let company = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "company",
                code: "HQ",
                name_zh: "总部",
                name_en: "HQ",
            },
            1,
        )
        .await
        .unwrap();
    let branch = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: Some(company),
                kind: "branch",
                code: "SH",
                name_zh: "上海分公司",
                name_en: "Shanghai",
            },
            1,
        )
        .await
        .unwrap();
    let units = s.org_units().await.unwrap();
    assert_eq!(units.len(), 2);
    assert_eq!(units[1].parent_id, Some(company));
    assert_eq!(units[1].name_zh, "上海分公司");
    assert!(branch > company);

    let dup = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "company",
                code: "HQ",
                name_zh: "x",
                name_en: "x",
            },
            1,
        )
        .await
        .unwrap_err();
    assert!(
        dup.is_unique_violation("org_units_code_key", "org_units.code"),
        "{dup:?}"
    );

    let orphan = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: Some(987_654),
                kind: "team",
                code: "T",
                name_zh: "x",
                name_en: "x",
            },
            1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(orphan.violation(), Some(Violation::ForeignKey { .. })),
        "{orphan:?}"
    );

    let bad_kind = s
        .org_unit_create(
            &NewOrgUnit {
                parent_id: None,
                kind: "galaxy",
                code: "G",
                name_zh: "x",
                name_en: "x",
            },
            1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(bad_kind.violation(), Some(Violation::Check { .. })),
        "{bad_kind:?}"
    );
    assert_eq!(
        s.org_units().await.unwrap().len(),
        2,
        "failed writes left rows behind"
    );
}

async fn value_types_round_trip(db: &TestDb) {
    use sqlx::Row;
    let s = &db.store;
    sqlx::raw_sql(
        "CREATE TABLE t_types (i BIGINT NOT NULL, t TEXT, b BYTEA_OR_BLOB, n BIGINT)"
            .replace(
                "BYTEA_OR_BLOB",
                if s.backend() == zhudai_store::Backend::Postgres {
                    "BYTEA"
                } else {
                    "BLOB"
                },
            )
            .as_str(),
    )
    .execute(s.writer())
    .await
    .unwrap();
    let big = 9_007_199_254_740_993_i64; // not representable in f64: proves no float detour
    sqlx::query("INSERT INTO t_types (i, t, b, n) VALUES ($1, $2, $3, $4)")
        .bind(big)
        .bind("客户 ✓")
        .bind(vec![0_u8, 255, 7])
        .bind(Option::<i64>::None)
        .execute(s.writer())
        .await
        .unwrap();
    let row = sqlx::query("SELECT i, t, b, n FROM t_types")
        .fetch_one(s.reader())
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>("i").unwrap(), big);
    assert_eq!(row.try_get::<String, _>("t").unwrap(), "客户 ✓");
    assert_eq!(row.try_get::<Vec<u8>, _>("b").unwrap(), vec![0, 255, 7]);
    assert_eq!(row.try_get::<Option<i64>, _>("n").unwrap(), None);
}

async fn jobs_lifecycle(db: &TestDb) {
    let s = &db.store;
    let id = s
        .enqueue(
            &NewJob::new("demo.echo", serde_json::json!({"n": 1}), 100),
            100,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(s
        .claim("other-queue", "w1", 200, 1000)
        .await
        .unwrap()
        .is_none());
    let job = s
        .claim("default", "w1", 200, 1000)
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!(job.id, id);
    assert_eq!(job.kind, "demo.echo");
    assert_eq!(job.payload["n"], 1);
    assert_eq!(job.attempts, 1);
    assert!(
        s.claim("default", "w2", 300, 1000).await.unwrap().is_none(),
        "leased job claimed twice"
    );
    assert!(
        !s.complete(id, "w2", 400).await.unwrap(),
        "a worker completed a job it does not hold"
    );
    assert!(s.complete(id, "w1", 400).await.unwrap());
    let counts = s.job_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].state.as_str(), counts[0].count), ("done", 1));
}

async fn jobs_dedupe_and_schedule(db: &TestDb) {
    let s = &db.store;
    let first = s
        .enqueue(
            &NewJob::new("cob", serde_json::json!({}), 5_000).dedupe("cob:2026-11-29"),
            0,
        )
        .await
        .unwrap();
    let second = s
        .enqueue(
            &NewJob::new("cob", serde_json::json!({}), 5_000).dedupe("cob:2026-11-29"),
            0,
        )
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(second, None, "dedupe key accepted twice");
    assert_eq!(s.next_run_at("default").await.unwrap(), Some(5_000));
    assert!(
        s.claim("default", "w", 4_999, 1000)
            .await
            .unwrap()
            .is_none(),
        "claimed before run_at"
    );
    assert!(s
        .claim("default", "w", 5_000, 1000)
        .await
        .unwrap()
        .is_some());
    // Enqueue inside a transaction that rolls back: the job must not exist.
    let mut tx = s.begin().await.unwrap();
    zhudai_store::jobs::enqueue(&mut *tx, &NewJob::new("x", serde_json::json!({}), 0), 0)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        s.job_counts()
            .await
            .unwrap()
            .iter()
            .map(|c| c.count)
            .sum::<i64>(),
        1
    );
}

async fn jobs_lease_expiry_and_death(db: &TestDb) {
    let s = &db.store;
    let mut job = NewJob::new("flaky", serde_json::json!({}), 0);
    job.max_attempts = 2;
    let id = s.enqueue(&job, 0).await.unwrap().unwrap();
    // Worker 1 claims and dies; after the lease worker 2 takes over.
    s.claim("default", "w1", 0, 1_000).await.unwrap().unwrap();
    assert!(s
        .claim("default", "w2", 999, 1_000)
        .await
        .unwrap()
        .is_none());
    let again = s
        .claim("default", "w2", 1_001, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (id, 2));
    assert_eq!(
        s.fail(id, "w1", "late", 1_100).await.unwrap(),
        FailOutcome::LostLease
    );
    assert_eq!(
        s.fail(id, "w2", "boom", 1_100).await.unwrap(),
        FailOutcome::Dead
    );
    assert!(
        s.claim("default", "w3", 10_000_000, 1_000)
            .await
            .unwrap()
            .is_none(),
        "dead job claimed"
    );

    // A job that fails with attempts left is retried after a backoff.
    let id2 = s
        .enqueue(&NewJob::new("retry", serde_json::json!({}), 0), 0)
        .await
        .unwrap()
        .unwrap();
    s.claim("default", "w", 0, 1_000).await.unwrap().unwrap();
    let FailOutcome::Retry { at_ms } = s.fail(id2, "w", "transient", 10).await.unwrap() else {
        panic!("expected a retry");
    };
    assert_eq!(at_ms, 10 + zhudai_store::jobs::backoff_ms(1));
    assert!(s
        .claim("default", "w", at_ms - 1, 1_000)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.claim("default", "w", at_ms, 1_000)
            .await
            .unwrap()
            .unwrap()
            .id,
        id2
    );

    // A worker that vanishes on the last attempt leaves a job the reaper parks as dead.
    let mut last = NewJob::new("vanish", serde_json::json!({}), 0);
    last.max_attempts = 1;
    s.enqueue(&last, 0).await.unwrap().unwrap();
    s.claim("default", "gone", 20_000_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.reap_abandoned(20_002_000).await.unwrap(), 1);
}

async fn concurrent_claims_never_share_a_job(db: &TestDb) {
    let s = &db.store;
    const JOBS: i64 = 60;
    for n in 0..JOBS {
        s.enqueue(&NewJob::new("n", serde_json::json!({ "n": n }), 0), 0)
            .await
            .unwrap();
    }
    // Two "instances" (separate pools on the same database) with several workers each.
    let other = Store::open(&db.location, &Default::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { s.clone() } else { other.clone() };
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store
                .claim("default", &format!("w{w}"), 1, 60_000)
                .await
                .unwrap()
            {
                mine.push(job.id);
                assert!(store.complete(job.id, &format!("w{w}"), 2).await.unwrap());
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        for id in h.await.unwrap() {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len() as i64, JOBS);
    other.close().await;
}

async fn transaction_rolls_back_everything(db: &TestDb) {
    let s = &db.store;
    let mut tx = s.begin().await.unwrap();
    sqlx::query("INSERT INTO system_meta (key, value, updated_at_ms) VALUES ('a', '1', 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let second =
        sqlx::query("INSERT INTO system_meta (key, value, updated_at_ms) VALUES ('a', '2', 0)")
            .execute(&mut *tx)
            .await;
    assert!(second.is_err());
    drop(tx); // dropped without commit: rolled back
    assert_eq!(s.meta_get("a").await.unwrap(), None);
}

/// A batch runs its statements in order in the caller's transaction and hands back each
/// statement's rows separately; a failing statement fails the batch and the transaction
/// leaves nothing behind.
async fn batches_return_each_statements_rows_and_roll_back_whole(db: &TestDb) {
    use zhudai_store::batch::{Batch, Stmt};
    use zhudai_store::sqlx::Row;
    let s = &db.store;
    zhudai_store::sqlx::query("CREATE TABLE batch_t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
        .execute(s.writer())
        .await
        .unwrap();
    let tx = s.begin().await.unwrap();
    let mut b = Batch::new();
    let ins = b.push(Stmt::new(
        "INSERT INTO batch_t (k, v) VALUES ($1, $2), ($3, $4) RETURNING k",
        vec!["a".into(), 1i64.into(), "b".into(), 2i64.into()],
    ));
    let upd = b.push(Stmt::new(
        "UPDATE batch_t SET v = v + $1 WHERE k = $2",
        vec![10i64.into(), "b".into()],
    ));
    let none = b.push(Stmt::new(
        "SELECT k FROM batch_t WHERE v > $1",
        vec![100i64.into()],
    ));
    let sel = b.push(Stmt::new(
        "SELECT k, v FROM batch_t WHERE k IN ($1, $2) ORDER BY k",
        vec!["a".into(), "b".into()],
    ));
    // The batch ends the transaction: its COMMIT rides along on SQLite.
    let rows = tx.commit_with(b).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[ins].len(), 2);
    assert!(rows[upd].is_empty() && rows[none].is_empty());
    let got: Vec<(String, i64)> = rows[sel]
        .iter()
        .map(|r| (r.get::<String, _>("k"), r.get::<i64, _>("v")))
        .collect();
    assert_eq!(got, vec![("a".to_owned(), 1), ("b".to_owned(), 12)]);

    // The second statement violates the key: the batch fails and, rolled back, the first
    // statement's row is gone too.
    let mut tx = s.begin().await.unwrap();
    let mut b = Batch::new();
    b.push(Stmt::new(
        "INSERT INTO batch_t (k, v) VALUES ($1, $2)",
        vec!["c".into(), 3i64.into()],
    ));
    b.push(Stmt::new(
        "INSERT INTO batch_t (k, v) VALUES ($1, $2)",
        vec!["a".into(), 9i64.into()],
    ));
    assert!(b.run(&mut tx).await.is_err());
    tx.rollback().await.unwrap();
    let n: i64 = zhudai_store::sqlx::query_scalar("SELECT COUNT(*) FROM batch_t")
        .fetch_one(s.reader())
        .await
        .unwrap();
    assert_eq!(n, 2);
}

/// A write transaction dropped without commit (an early `?` return) leaves nothing, and
/// the next writer works normally.
async fn an_abandoned_write_transaction_is_rolled_back(db: &TestDb) {
    let s = &db.store;
    zhudai_store::sqlx::query("CREATE TABLE abandon_t (k BIGINT PRIMARY KEY)")
        .execute(s.writer())
        .await
        .unwrap();
    {
        let mut tx = s.begin().await.unwrap();
        zhudai_store::sqlx::query("INSERT INTO abandon_t (k) VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // dropped here
    }
    let mut tx = s.begin().await.unwrap();
    zhudai_store::sqlx::query("INSERT INTO abandon_t (k) VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ks: Vec<i64> = zhudai_store::sqlx::query_scalar("SELECT k FROM abandon_t ORDER BY k")
        .fetch_all(s.reader())
        .await
        .unwrap();
    assert_eq!(ks, vec![2]);
}

/// `begin_alone` (bulk writes): commits, rolls back when dropped, and on SQLite switches
/// foreign-key enforcement off only for its own transaction, whatever way it ends.
async fn a_transaction_of_its_own_commits_rolls_back_and_restores_foreign_keys(db: &TestDb) {
    let s = &db.store;
    let sqlite = s.backend() == zhudai_store::Backend::Sqlite;
    for sql in [
        "CREATE TABLE alone_parent (k BIGINT PRIMARY KEY)",
        "CREATE TABLE alone_child (k BIGINT PRIMARY KEY, p BIGINT NOT NULL REFERENCES alone_parent (k))",
        "INSERT INTO alone_parent (k) VALUES (1)",
    ] {
        zhudai_store::sqlx::query(sql)
            .execute(s.writer())
            .await
            .unwrap();
    }
    let child = |k: i64, p: i64| {
        zhudai_store::sqlx::query("INSERT INTO alone_child (k, p) VALUES ($1, $2)")
            .bind(k)
            .bind(p)
    };
    // Committed.
    let mut tx = s.writer().begin_alone(true).await.unwrap();
    child(1, 1).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    // Dropped: rolled back before the next writer.
    {
        let mut tx = s.writer().begin_alone(false).await.unwrap();
        child(2, 1).execute(&mut *tx).await.unwrap();
    }
    // Without enforcement (SQLite) a dangling reference goes in; rolled back, it is gone.
    let mut tx = s.writer().begin_alone(false).await.unwrap();
    let dangling = child(3, 99).execute(&mut *tx).await;
    assert_eq!(dangling.is_ok(), sqlite, "{dangling:?}");
    if sqlite {
        tx.rollback().await.unwrap();
    } else {
        drop(tx);
    }
    // Enforcement is back for everyone else: shared transactions and single statements.
    let mut tx = s.begin().await.unwrap();
    assert!(child(4, 99).execute(&mut *tx).await.is_err());
    tx.rollback().await.unwrap();
    assert!(child(5, 99).execute(s.writer()).await.is_err());
    // Also after a transaction that was abandoned with enforcement off.
    {
        let mut tx = s.writer().begin_alone(false).await.unwrap();
        child(6, 1).execute(&mut *tx).await.unwrap();
    }
    assert!(child(7, 99).execute(s.writer()).await.is_err());
    let ks: Vec<i64> = zhudai_store::sqlx::query_scalar("SELECT k FROM alone_child ORDER BY k")
        .fetch_all(s.reader())
        .await
        .unwrap();
    assert_eq!(ks, vec![1]);
}

/// Many writers at once (on SQLite they share commits): each committed transaction is
/// visible to a reader as soon as `commit` returns, none of the rolled-back or abandoned
/// ones is, and one failing transaction takes nobody else's rows with it.
async fn concurrent_transactions_commit_alone_or_together_but_never_early(db: &TestDb) {
    let s = db.store.clone();
    zhudai_store::sqlx::query("CREATE TABLE group_t (k BIGINT PRIMARY KEY)")
        .execute(s.writer())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = s.begin().await.unwrap();
            zhudai_store::sqlx::query("INSERT INTO group_t (k) VALUES ($1)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
            match i % 5 {
                // A duplicate key: the statement fails, the transaction is abandoned.
                0 => {
                    let dup = zhudai_store::sqlx::query("INSERT INTO group_t (k) VALUES ($1)")
                        .bind(i)
                        .execute(&mut *tx)
                        .await;
                    assert!(dup.is_err());
                    drop(tx);
                    false
                }
                1 => {
                    tx.rollback().await.unwrap();
                    false
                }
                _ => {
                    tx.commit().await.unwrap();
                    let seen: i64 = zhudai_store::sqlx::query_scalar(
                        "SELECT COUNT(*) FROM group_t WHERE k = $1",
                    )
                    .bind(i)
                    .fetch_one(s.reader())
                    .await
                    .unwrap();
                    assert_eq!(seen, 1, "commit of {i} returned before it was visible");
                    true
                }
            }
        }));
    }
    let mut expected = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            expected.push(i as i64);
        }
    }
    // A plain statement after the storm (it commits any transaction still shared).
    zhudai_store::sqlx::query("INSERT INTO group_t (k) VALUES (1000)")
        .execute(s.writer())
        .await
        .unwrap();
    expected.push(1000);
    let got: Vec<i64> = zhudai_store::sqlx::query_scalar("SELECT k FROM group_t ORDER BY k")
        .fetch_all(s.reader())
        .await
        .unwrap();
    assert_eq!(got, expected);
}

/// `.cargo/config.toml` builds SQLite without its unified page cache (one global mutex
/// taken on every page fetch by every connection) and without memory statistics (a
/// global mutex on every allocation). A CFLAGS set in the environment replaces those
/// settings; this test says so instead of leaving a slower build unnoticed.
async fn sqlite_is_built_with_the_projects_settings(db: &TestDb) {
    let build = db.store.sqlite_build().await.unwrap();
    let Some(zhudai_store::SqliteBuild { version, options }) = build else {
        assert_eq!(db.store.backend(), zhudai_store::Backend::Postgres);
        return;
    };
    assert!(version.starts_with("3."), "{version}");
    assert!(
        options.iter().any(|o| o == "THREADSAFE=1"),
        "compile options are read: {options:?}"
    );
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "SQLite was built with its unified page cache (CFLAGS from the environment \
         override .cargo/config.toml?): {options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "SQLite was built with memory statistics: {options:?}"
    );
}

/// SQLite readers read the file without a memory map (a WAL reader drops its whole map
/// after every commit by another connection, ADR 0020 item 10); the writer keeps one.
async fn readers_have_no_memory_map(db: &TestDb) {
    if db.store.backend() != zhudai_store::Backend::Sqlite {
        return;
    }
    let mut conn = db.store.reader().acquire().await.unwrap();
    let reader: i64 = zhudai_store::sqlx::query_scalar("PRAGMA mmap_size")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(reader, 0);
    let mut w = db.store.writer().acquire().await.unwrap();
    let writer: i64 = zhudai_store::sqlx::query_scalar("PRAGMA mmap_size")
        .fetch_one(&mut *w)
        .await
        .unwrap();
    assert_eq!(writer, 268_435_456);
}

/// `audit::commit_with_records` seals its records after a reserved head and writes them
/// with the transaction's last statements and the commit. Interleaved with plain appends
/// and with transactions that roll back, from many tasks at once, the chain stays whole
/// and every committed record and statement is there, and nothing of a rolled-back one.
async fn audit_records_ride_with_the_commit_and_keep_the_chain(db: &TestDb) {
    use zhudai_store::audit::{self, AuditDraft};
    use zhudai_store::batch::{Batch, Stmt};
    let s = db.store.clone();
    zhudai_store::sqlx::query("CREATE TABLE ride_t (k BIGINT PRIMARY KEY)")
        .execute(s.writer())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = s.begin().await.unwrap();
            match i % 4 {
                // Two records and a statement ride with the commit.
                0 | 1 => {
                    let mut extra = Batch::new();
                    extra.push(Stmt::new(
                        "INSERT INTO ride_t (k) VALUES ($1)",
                        vec![i.into()],
                    ));
                    let drafts = [
                        AuditDraft::new(i, format!("ride.{i}.a"), "success"),
                        AuditDraft::new(i, format!("ride.{i}.b"), "success"),
                    ];
                    let records = audit::commit_with_records(tx, &drafts, extra)
                        .await
                        .unwrap();
                    assert_eq!(records.len(), 2);
                    assert_eq!(records[1].seq, records[0].seq + 1);
                    assert_eq!(records[1].prev_hash, records[0].hash);
                    (2, true)
                }
                // A plain append, then commit.
                2 => {
                    audit::append(
                        &mut tx,
                        &AuditDraft::new(i, format!("plain.{i}"), "success"),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                    (1, false)
                }
                // An append that is rolled back takes its record with it.
                _ => {
                    audit::append(
                        &mut tx,
                        &AuditDraft::new(i, format!("undone.{i}"), "success"),
                    )
                    .await
                    .unwrap();
                    tx.rollback().await.unwrap();
                    (0, false)
                }
            }
        }));
    }
    let mut records = 0;
    let mut rows = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (n, row) = t.await.unwrap();
        records += n;
        if row {
            rows.push(i as i64);
        }
    }
    let head = s
        .audit_verify(&[])
        .await
        .unwrap()
        .expect("the chain is whole");
    assert_eq!(head.seq, records);
    let undone: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'undone.%'",
    )
    .fetch_one(s.reader())
    .await
    .unwrap();
    assert_eq!(undone, 0);
    let got: Vec<i64> = zhudai_store::sqlx::query_scalar("SELECT k FROM ride_t ORDER BY k")
        .fetch_all(s.reader())
        .await
        .unwrap();
    assert_eq!(got, rows);
}
