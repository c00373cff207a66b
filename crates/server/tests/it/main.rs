//! Integration tests of the server: the real router on a real socket, a fresh database
//! per test, on SQLite and on PostgreSQL. One test binary (linking several is slow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod applications;
mod audit;
mod auth;
mod browser;
// Daily close, collections, reconciliation, reports (issue #8 items 3–7).
mod cob;
mod customers;
mod documents;
mod imports;
// Loans, repayments and the ledger (issue #8).
mod loans;
mod matrix;
mod privacy;
// Funder network (issue #5).
mod funders_browser;
mod partners;
mod products;
mod products_browser;
mod routing;
mod support;
mod twofactor;
mod ui;
mod users;
mod worker;
mod workflow;
