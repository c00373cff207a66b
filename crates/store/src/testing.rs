//! Throw-away databases for tests: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created on the server named by `ZHUDAI_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL tests fail, never skip, when the
//! server cannot be reached.

/// Runs each named `async fn NAME(db: &TestDb)` of the calling module as two tests,
/// `sqlite::NAME` and `postgres::NAME`, each on a fresh, migrated database. PostgreSQL is
/// required: when it cannot be reached the `postgres::` tests fail.
///
/// ```ignore
/// zhudai_store::on_both!(round_trip, constraint_names);
/// ```
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
            let db = $crate::testing::TestDb::sqlite().await.expect("sqlite test db");
            super::$name(&db).await;
            db.close().await;
        } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
            let db = $crate::testing::TestDb::postgres().await.expect("PostgreSQL must be reachable for the conformance suite");
            super::$name(&db).await;
            db.close().await;
        } )* }
    };
}

use crate::db::{DatabaseLocation, Store, StoreOptions};
use crate::error::StoreError;
use secrecy::SecretString;
use std::path::PathBuf;

/// The admin URL used to create per-test PostgreSQL databases.
pub fn pg_admin_url() -> String {
    std::env::var("ZHUDAI_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A test database; call [`TestDb::close`] to drop a PostgreSQL one.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    pub location: DatabaseLocation,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// A migrated SQLite database in a fresh temporary directory.
    pub async fn sqlite() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Invalid(e.to_string()))?;
        let location = DatabaseLocation::SqliteFile(dir.path().join("zhudai.db"));
        let store = Store::open(&location, &StoreOptions::default()).await?;
        store.migrate().await?;
        Ok(TestDb {
            store,
            location,
            dir,
            pg_name: None,
        })
    }

    /// A migrated, brand-new PostgreSQL database.
    pub async fn postgres() -> Result<Self, StoreError> {
        let (location, name) = create_pg_database().await?;
        let store = Store::open(
            &location,
            &StoreOptions {
                max_connections: 8,
                ..Default::default()
            },
        )
        .await?;
        store.migrate().await?;
        let dir = tempfile::tempdir().map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(TestDb {
            store,
            location,
            dir,
            pg_name: Some(name),
        })
    }

    /// The data directory to hand to code that wants one.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Closes the pools and drops a PostgreSQL database.
    pub async fn close(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name {
            drop_pg_database(&name).await;
        }
    }
}

/// Creates an empty PostgreSQL database and returns its location (for tests that start
/// the binary themselves) and name.
pub async fn create_pg_database() -> Result<(DatabaseLocation, String), StoreError> {
    sqlx::any::install_default_drivers();
    let admin_url = pg_admin_url();
    let name = format!("zhudai_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .map_err(|e| StoreError::Connect {
            backend: "PostgreSQL (tests need it: set ZHUDAI_TEST_PG_URL)",
            reason: e.to_string(),
        })?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    let url = format!("{base}/{name}");
    Ok((DatabaseLocation::Postgres(SecretString::from(url)), name))
}

/// Drops a database made by [`create_pg_database`]; failures are ignored (best effort).
pub async fn drop_pg_database(name: &str) {
    if let Ok(mut admin) = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg_admin_url()).await
    {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}
