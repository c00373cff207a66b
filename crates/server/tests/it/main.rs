//! Integration tests of the server: the real router on a real socket, a fresh database
//! per test, on SQLite and on PostgreSQL. One test binary (linking several is slow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod applications;
mod audit;
mod auth;
mod browser;
mod customers;
mod documents;
mod imports;
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
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
mod analytics;
mod notify;
mod worklists;
mod worklists_browser;
