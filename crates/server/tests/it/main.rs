//! Integration tests of the server: the real router on a real socket, a fresh database
//! per test, on SQLite and on PostgreSQL. One test binary (linking several is slow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod applications;
mod audit;
mod auth;
mod browser;
// Contracts and disbursement (issue #6).
mod contracts;
mod contracts_browser;
// Daily close, collections, reconciliation, reports (issue #8 items 3–7).
mod cob;
mod customers;
mod documents;
mod imports;
// Loans, repayments and the ledger (issue #8).
mod loans;
mod loans_browser;
mod matrix;
mod privacy;
// Funder network (issue #5).
mod funders_browser;
mod partners;
mod products;
mod products_browser;
// Credit decisions (issue #7).
mod risk;
mod risk_browser;
mod routing;
mod support;
mod twofactor;
mod ui;
mod users;
mod worker;
mod workflow;
// Risk warnings and credit limits (issue #7 items 3 and 4).
mod limits;
mod warnings;
mod warnings_browser;
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
mod analytics;
mod notify;
mod worklists;
mod worklists_browser;
// Post-loan pages: daily close, collections, reports, reconciliation (issue #8).
mod post_loan;
mod post_loan_browser;
