//! Storage errors, and the translation of database constraint violations into something
//! the upper layers can turn into field errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL scheme `{0}`: use sqlite://PATH (embedded) or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedScheme(String),
    #[error("data directory {path} is not usable: {reason}; choose another with --data-dir or ZHUDAI_DATA_DIR")]
    DataDir { path: PathBuf, reason: String },
    #[error("cannot connect to the {backend} database: {reason}")]
    Connect {
        backend: &'static str,
        reason: String,
    },
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        version: i64,
        name: &'static str,
        reason: String,
    },
    #[error("the database schema is at version {db} but this zhudai knows versions up to {known}: upgrade zhudai before using this database")]
    SchemaTooNew { db: i64, known: i64 },
    #[error("migration {version} ({name}) was changed after it was applied to this database (checksum mismatch)")]
    ChecksumMismatch { version: i64, name: String },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A named constraint that a write broke, in a form both databases produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A unique constraint or index; `name` is the constraint name on PostgreSQL and
    /// `table.column[, table.column]` on SQLite.
    Unique {
        name: String,
    },
    ForeignKey {
        name: String,
    },
    Check {
        name: String,
    },
}

impl StoreError {
    /// The constraint this error broke, if it is a constraint violation.
    pub fn violation(&self) -> Option<Violation> {
        let StoreError::Database(sqlx::Error::Database(db)) = self else {
            return None;
        };
        let message = db.message().to_owned();
        let name = db
            .constraint()
            .map(str::to_owned)
            .or_else(|| message.split_once(": ").map(|(_, rest)| rest.to_owned()))
            .unwrap_or_default();
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => Some(Violation::Unique { name }),
            sqlx::error::ErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey { name }),
            sqlx::error::ErrorKind::CheckViolation => Some(Violation::Check { name }),
            _ => None,
        }
    }

    /// True when the error is a unique violation on the named constraint (PostgreSQL name)
    /// or on the named `table.column` (SQLite).
    pub fn is_unique_violation(&self, pg_name: &str, sqlite_column: &str) -> bool {
        matches!(self.violation(), Some(Violation::Unique { name }) if name == pg_name || name.contains(sqlite_column))
    }
}
