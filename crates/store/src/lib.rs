//! zhudai storage: the one place that talks to a database.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL (production): queries
//! are written once in the SQL both understand, executed through sqlx's `Any` driver, and
//! the few places where the dialects differ (identity columns, row locking) are spelled out
//! next to each other here. See `docs/decisions/0002-storage.md`.
//!
//! Conventions every table follows: integer ids; instants as `BIGINT` unix milliseconds
//! (UTC); business dates as `TEXT` `YYYY-MM-DD`; money as `BIGINT` fen; never floats for
//! amounts.

pub mod applications;
pub mod audit;
pub mod batch;
// Contracts and disbursement (issue #6).
pub mod contracts;
// Bulk inserts of the synthetic book generator (issue #8 items 3–7).
pub mod bulk;
// Daily close, collections, funder reconciliation, portfolio reports (issue #8 items 3–7).
pub mod cob;
pub mod collections;
pub mod customers;
pub mod db;
pub mod documents;
pub mod error;
pub mod identity;
pub mod immutable;
pub mod imports;
pub mod jobs;
pub mod keys;
// Loans, the ledger, repayments, idempotency keys (issue #8).
pub mod loans;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod limits;
pub mod meta;
pub mod migrate;
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
pub mod notify;
pub mod worklists;
// Funder network (issue #5).
pub mod partners;
// Portfolio reports (issue #8 items 3–7).
pub mod portfolio;
pub mod products;
// Credit decisions (issue #7).
pub mod risk;
// Funder reconciliation (issue #8 items 3–7).
pub mod recon;
pub mod staff;
#[cfg(feature = "testing")]
pub mod testing;
pub mod workflow;
pub mod writer;
// Risk warnings (issue #7 item 3).
pub mod warnings;

/// Re-exported so upper layers name the same sqlx types the store uses.
pub use sqlx;

pub use db::{
    track_writes, Backend, DatabaseLocation, SqliteBuild, SqliteSync, Store, StoreOptions,
};
pub use error::{StoreError, Violation};
