//! The binary as an operator meets it: help, configuration mistakes, migrations, serving
//! on SQLite and PostgreSQL, graceful stop, backups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn zhudai() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhudai"));
    // Start from a clean environment of settings: the developer's ZHUDAI_* must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("ZHUDAI_") {
            c.env_remove(k);
        }
    }
    c.env("ZHUDAI_LOG_LEVEL", "warn");
    c
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit code 2 and exactly one line saying what to fix.
fn assert_config_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("zhudai: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn help_explains_every_command() {
    let o = run(zhudai().arg("--help"));
    assert!(o.status.success());
    let text = stdout(&o);
    for cmd in [
        "serve",
        "migrate",
        "backup",
        "config",
        "--data-dir",
        "--database-url",
        "--config",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
    let o = run(zhudai().args(["serve", "--help"]));
    assert!(stdout(&o).contains("--demo") && stdout(&o).contains("--listen"));
}

#[test]
fn unknown_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(zhudai()
        .arg("config")
        .env("ZHUDAI_LISTN", "127.0.0.1:1")
        .current_dir(dir.path()));
    assert_config_error(&o, "listn");
    let file = dir.path().join("z.toml");
    std::fs::write(&file, "data_dri = \"x\"\n").unwrap();
    let o = run(zhudai().args(["config", "--config"]).arg(&file));
    assert_config_error(&o, "data_dri");
    let o = run(zhudai().args(["config", "--config", "/no/such/file.toml"]));
    assert_config_error(&o, "does not exist");
}

#[test]
fn bad_database_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(zhudai()
        .args([
            "migrate",
            "--database-url",
            "mysql://root@localhost/db",
            "--data-dir",
        ])
        .arg(dir.path()));
    assert_config_error(&o, "unsupported database URL scheme `mysql`");
}

#[test]
fn unusable_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = run(zhudai()
        .args(["migrate", "--data-dir"])
        .arg(file.join("sub")));
    assert_config_error(&o, "data directory");
}

#[test]
fn port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let o = run(zhudai()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path()));
    assert_config_error(&o, "already in use");
}

#[test]
fn migrate_and_check_with_global_flags_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(zhudai()
        .args(["migrate", "--check", "--data-dir"])
        .arg(dir.path()));
    assert_eq!(
        o.status.code(),
        Some(3),
        "pending migrations: {}",
        stderr(&o)
    );
    let o = run(zhudai().arg("--data-dir").arg(dir.path()).arg("migrate"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("applied migration"));
    let o = run(zhudai()
        .args(["migrate", "--check", "--data-dir"])
        .arg(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("zhudai.db").exists());
}

#[test]
fn config_shows_effective_values_without_secrets() {
    let o = run(zhudai()
        .arg("config")
        .env(
            "ZHUDAI_DATABASE_URL",
            "postgres://u:s3cret@db.example:5432/z",
        )
        .env("ZHUDAI_LISTEN", "127.0.0.1:9999"));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("127.0.0.1:9999"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// A running `zhudai serve`, stopped with SIGTERM on drop.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    async fn start(args: &[&str], data_dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = zhudai()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if reqwest::get(format!("{}/healthz", server.base))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("zhudai serve did not answer /healthz");
    }

    /// SIGTERM, then the exit status (graceful shutdown exits 0).
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("zhudai did not stop after SIGTERM");
    }
}

#[tokio::test]
async fn serves_demo_on_sqlite_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--demo"], dir.path()).await;
    let r = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let units: serde_json::Value = demo_get(&server.base, "/api/v1/org-units").await;
    assert_eq!(units.as_array().unwrap().len(), 9, "demo data seeded");
    let login = reqwest::get(format!("{}/login", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains("演示模式") && login.contains("demo_sysadmin"),
        "the demo sign-in page lists the accounts"
    );
    assert!(server.terminate().success());
    // Restarting on the same data does not seed twice.
    let server = Server::start(&["--demo"], dir.path()).await;
    let units: serde_json::Value = demo_get(&server.base, "/api/v1/org-units").await;
    assert_eq!(units.as_array().unwrap().len(), 9);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn serves_on_postgresql_with_migrations() {
    let (location, name) = zhudai_store::testing::create_pg_database()
        .await
        .expect("PostgreSQL is required");
    let url = match &location {
        zhudai_store::DatabaseLocation::Postgres(u) => {
            secrecy::ExposeSecret::expose_secret(u).to_owned()
        }
        _ => unreachable!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--database-url", &url, "--demo"], dir.path()).await;
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "postgres");
    assert_eq!(
        ready["schema_version"],
        zhudai_store::migrate::latest_version()
    );
    assert!(server.terminate().success());
    assert!(
        !dir.path().join("zhudai.db").exists(),
        "no SQLite file when running on PostgreSQL"
    );
    zhudai_store::testing::drop_pg_database(&name).await;
}

#[tokio::test]
async fn backup_of_a_live_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--demo"], dir.path()).await;
    let out = dir.path().join("backup.db");
    let o = run(zhudai()
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("integrity ok"));
    assert!(server.terminate().success());
    // The copy is a working database with the demo data.
    let copy = zhudai_store::Store::open(
        &zhudai_store::DatabaseLocation::SqliteFile(out.clone()),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(copy.org_units().await.unwrap().len(), 9);
    copy.close().await;
    let o = run(zhudai()
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out));
    assert_config_error(&o, "already exists");
}

#[tokio::test]
async fn first_start_explains_how_to_create_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], dir.path()).await;
    let child = server.child;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zhudai user create --username admin --role sysadmin --password-stdin"),
        "{err}"
    );
}

#[test]
fn user_create_reads_the_password_from_stdin_and_checks_it() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let create = |password: &str, roles: &[&str]| {
        let mut cmd = zhudai();
        cmd.args([
            "user",
            "create",
            "--username",
            "admin",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path());
        for r in roles {
            cmd.args(["--role", r]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = create("short", &["sysadmin"]);
    assert_config_error(&o, "password");
    let o = create("Very-Strong-Passw0rd", &["sysadmin", "auditor"]);
    assert_config_error(&o, "separation of duties");
    let o = create("Very-Strong-Passw0rd", &["sysadmin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("created user admin"));
    let o = create("Very-Strong-Passw0rd", &["sysadmin"]);
    assert_config_error(&o, "already taken");
}

/// GET as the demo executive (demo accounts exist only with --demo).
async fn demo_get(base: &str, path: &str) -> serde_json::Value {
    let c = reqwest::Client::new();
    let login: serde_json::Value = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "demo_executive", "password": "Demo-2026-zhudai"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("demo login works")
        .to_owned();
    c.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[test]
fn audit_retention_below_six_months_is_refused() {
    let o = run(zhudai()
        .arg("config")
        .env("ZHUDAI_AUDIT_RETENTION_DAYS", "30"));
    assert_config_error(&o, "audit_retention_days");
}

// --- Loans and the ledger (issue #8) ---

/// `zhudai ledger verify` on the demo book: it passes after the demo loans' disbursements
/// and repayments, and fails naming the entry and the loan once a journal line is altered
/// in the database directly.
#[tokio::test]
async fn ledger_verify_passes_then_catches_an_altered_line() {
    use zhudai_store::sqlx;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--demo"], dir.path()).await;
    let loans = demo_get(&server.base, "/api/v1/loans").await;
    assert!(loans["total"].as_i64().unwrap() >= 5, "{loans}");
    assert!(server.terminate().success());
    let o = run(zhudai()
        .args(["ledger", "verify", "--data-dir"])
        .arg(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ledger balanced"), "{}", stdout(&o));
    // Alter one line of a loan's repayment entry behind zhudai's back.
    let location = zhudai_store::DatabaseLocation::SqliteFile(dir.path().join("zhudai.db"));
    let store = zhudai_store::Store::open(&location, &Default::default())
        .await
        .unwrap();
    let (line, entry, loan): (i64, i64, i64) = sqlx::query_as(
        "SELECT l.id, l.entry_id, l.loan_id FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
         WHERE e.kind = 'repayment' AND l.account_code = 'interest_receivable' ORDER BY l.id LIMIT 1",
    )
    .fetch_one(store.reader())
    .await
    .unwrap();
    sqlx::query("DROP TRIGGER journal_lines_no_update")
        .execute(store.writer())
        .await
        .unwrap();
    sqlx::query("UPDATE journal_lines SET credit_fen = credit_fen - 1 WHERE id = $1")
        .bind(line)
        .execute(store.writer())
        .await
        .unwrap();
    store.close().await;
    let o = run(zhudai()
        .args(["ledger", "verify", "--data-dir"])
        .arg(dir.path()));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("journal entry {entry} does not balance")),
        "{err}"
    );
    assert!(err.contains(&format!("loan {loan}:")), "{err}");
    assert!(err.contains("ledger verification failed"), "{err}");
}
