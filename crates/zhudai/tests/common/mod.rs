//! What the CLI tests that run `zhudai` against a test database share.

use secrecy::ExposeSecret;
use std::process::{Command, Stdio};
use zhudai_store::testing::TestDb;
use zhudai_store::DatabaseLocation;

/// `zhudai` on `db`'s data directory and database, without the caller's `ZHUDAI_*`
/// environment or allocator settings.
pub fn zhudai(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhudai"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ZHUDAI_") {
            c.env_remove(k);
        }
    }
    // zhudai sets mimalloc's purge delay itself when it is not set (src/allocator.rs).
    c.env_remove("MIMALLOC_PURGE_DELAY");
    c.env("ZHUDAI_LOG_LEVEL", "warn");
    c.arg("--data-dir").arg(db.data_dir());
    let url = match &db.location {
        DatabaseLocation::SqliteFile(p) => format!("sqlite://{}", p.display()),
        DatabaseLocation::Postgres(u) => u.expose_secret().to_owned(),
    };
    c.arg("--database-url").arg(url);
    c
}

/// Runs `c` with no input; it must succeed. Its standard output.
pub fn ok(c: &mut Command) -> String {
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
