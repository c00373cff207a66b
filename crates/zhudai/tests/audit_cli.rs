//! `zhudai audit verify` and `zhudai audit checkpoint` as an operator runs them, on SQLite
//! and PostgreSQL: an intact chain passes; editing, deleting or swapping one row, or
//! rewriting the tail below a signed checkpoint, fails naming the record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secrecy::ExposeSecret;
use std::process::{Command, Output, Stdio};
use zhudai_crypto::audit_chain::{verify_checkpoint, Checkpoint};
use zhudai_store::audit::AuditDraft;
use zhudai_store::sqlx;
use zhudai_store::testing::TestDb;
use zhudai_store::{Backend, DatabaseLocation, Store};

zhudai_store::on_both!(
    verify_intact_then_edited,
    verify_deleted_row,
    verify_swapped_rows,
    checkpoint_export_and_rewritten_tail
);

fn zhudai(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhudai"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ZHUDAI_") {
            c.env_remove(k);
        }
    }
    c.env("ZHUDAI_LOG_LEVEL", "warn");
    c.arg("--data-dir").arg(db.dir.path());
    if let DatabaseLocation::Postgres(url) = &db.location {
        c.arg("--database-url").arg(url.expose_secret());
    }
    c
}

fn run(db: &TestDb, args: &[&str]) -> Output {
    let out = zhudai(db).args(args).stdin(Stdio::null()).output().unwrap();
    eprintln!(
        "zhudai {args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn records(s: &Store, n: i64) {
    for i in 1..=n {
        let d = AuditDraft::new(
            1_795_917_600_000 + i,
            format!("loan.disburse.{i}"),
            "success",
        )
        .actor("张三")
        .role("loan_officer")
        .source_ip("10.0.0.8")
        .target(format!("loan:{i}"));
        s.audit_append(&d).await.unwrap();
    }
}

/// Plays the insider with database access: switches the append-only triggers off.
async fn disable_triggers(s: &Store) {
    let sql = match s.backend() {
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
    };
    sqlx::raw_sql(sql).execute(s.writer()).await.unwrap();
}

fn assert_broken(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

async fn verify_intact_then_edited(db: &TestDb) {
    let s = &db.store;
    records(s, 5).await;
    let head = s.audit_head().await.unwrap();
    let o = run(db, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "audit chain intact: 5 records, head seq 5, hash {}",
            head.hash
        )
    );
    disable_triggers(s).await;
    sqlx::query("UPDATE audit_log SET actor = '李四' WHERE seq = 3")
        .execute(s.writer())
        .await
        .unwrap();
    let o = run(db, &["audit", "verify"]);
    assert_broken(&o, "audit chain broken at seq 3: altered");
}

async fn verify_deleted_row(db: &TestDb) {
    let s = &db.store;
    records(s, 5).await;
    disable_triggers(s).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(s.writer())
        .await
        .unwrap();
    let o = run(db, &["audit", "verify"]);
    assert_broken(&o, "audit chain broken at seq 3: deleted");
    // Deleting the newest records is caught by the chain head.
    sqlx::query("DELETE FROM audit_log WHERE seq >= 3")
        .execute(s.writer())
        .await
        .unwrap();
    let o = run(db, &["audit", "verify"]);
    assert_broken(
        &o,
        "audit chain broken at seq 3: deleted — records 3..5 are missing",
    );
}

async fn verify_swapped_rows(db: &TestDb) {
    let s = &db.store;
    records(s, 5).await;
    disable_triggers(s).await;
    for (from, to) in [(3, -3), (4, 3), (-3, 4)] {
        sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
            .bind(to)
            .bind(from)
            .execute(s.writer())
            .await
            .unwrap();
    }
    let o = run(db, &["audit", "verify"]);
    assert_broken(&o, "audit chain broken at seq 3: reordered");
}

async fn checkpoint_export_and_rewritten_tail(db: &TestDb) {
    let s = &db.store;
    // An empty trail: a key is made, nothing is signed.
    let o = run(db, &["audit", "checkpoint"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to sign"), "{}", stdout(&o));
    records(s, 5).await;
    let file = db.dir.path().join("checkpoints.jsonl");
    let o = run(
        db,
        &["audit", "checkpoint", "--export", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("signed checkpoint at seq 5"), "{text}");
    let public_key = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(public_key.len(), 64);
    let lines: Vec<Checkpoint> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].seq, 5);
    assert_eq!(lines[0].hash, s.audit_head().await.unwrap().hash);
    verify_checkpoint(&lines[0], &public_key).unwrap();
    // The key's secret is stored encrypted, never in clear.
    let key = s.audit_signing_key_active().await.unwrap().unwrap();
    assert_eq!(key.public_key, public_key);
    assert!(key.secret_enc.len() > 32);

    let o = run(db, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 signed checkpoint(s) verified"),
        "{}",
        stdout(&o)
    );

    // An insider rewrites record 2 and re-chains everything after it, head included: the
    // chain alone looks intact, the signed checkpoint does not match.
    disable_triggers(s).await;
    let mut prev = s.audit_record(1).await.unwrap().unwrap().hash;
    for seq in 2..=5 {
        let mut r = s.audit_record(seq).await.unwrap().unwrap();
        if seq == 2 {
            r.outcome = "denied".into();
        }
        let r = r.seal(&prev);
        sqlx::query("UPDATE audit_log SET outcome = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(r.outcome.as_str())
            .bind(r.prev_hash.as_str())
            .bind(r.hash.as_str())
            .bind(seq)
            .execute(s.writer())
            .await
            .unwrap();
        prev = r.hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev.as_str())
        .execute(s.writer())
        .await
        .unwrap();
    let o = run(db, &["audit", "verify"]);
    assert_broken(&o, "audit chain broken at seq 5: rewritten");
    // And nothing signs the rewritten head.
    let o = run(db, &["audit", "checkpoint"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to sign"), "{}", stderr(&o));
}
