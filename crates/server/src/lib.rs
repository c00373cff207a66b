//! zhudai's HTTP server: the JSON API under `/api/v1`, the server-rendered web UI, and the
//! background job worker.
//!
//! Handlers are thin: they parse input into domain types, call the store, and render.
//! Everything a request passes through is assembled in [`app`]; the order of the layers
//! there is the order a request meets them.

pub mod api;
pub mod applications;
pub mod audit_checkpoint;
pub mod auth;
pub mod blobs;
// Contracts and disbursement (issue #6).
pub mod contract_pdf;
pub mod contracts;
// The synthetic loan book (issue #8 items 3–7).
pub mod book;
// Daily close, collections, funder reconciliation, portfolio reports (issue #8 items 3–7).
pub mod cob;
pub mod collections;
pub mod customer_docs;
pub mod customers;
pub mod demo;
pub mod portfolio;
pub mod reconciliation;
// Funder network (issue #5).
pub mod demo_funders;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod demo_risk;
pub mod error;
pub mod http;
// Bulk customer import and export (issue #4 part 5).
pub mod export;
pub mod import;
pub mod jobs;
// Loans, the ledger and repayments (issue #8).
pub mod loans;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod limits;
// Worklists, exception alerts, notifications, process analytics (issue #6 items 3–4).
pub mod analytics;
pub mod notify;
pub mod worklists;
// Funder network (issue #5).
pub mod partners;
// Credit decisions (issue #7).
pub mod risk;
pub mod routing;
pub mod state;
pub mod ui;
pub mod vault;
// Risk warnings (issue #7 item 3).
pub mod warnings;
pub mod workflow;

pub use state::{AppState, ServerSettings};

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use std::future::Future;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;

/// The whole application as one router, ready to serve.
pub fn app(state: AppState) -> Router {
    let (api_router, openapi) = api::router().split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    let body_limit = state.settings().body_limit_bytes;
    // Document uploads may be larger than other bodies: the outer limit admits them, and
    // every other route keeps `body_limit` through `DefaultBodyLimit` (the upload routes
    // disable it and count the bytes themselves against `document_max_bytes`).
    let outer_limit = body_limit.max(
        state
            .settings()
            .document_max_bytes
            .saturating_add(customer_docs::MULTIPART_OVERHEAD),
    );
    let timeout = state.settings().request_timeout;
    Router::new()
        .merge(api_router.layer(axum::Extension(openapi.clone())))
        .merge(api::docs::router(openapi))
        // The UI pages count the caller's unread notifications for the header's bell
        // (issue #6 item 3).
        .merge(ui::router().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ui::notifications::with_unread,
        )))
        .fallback(ui::pages::not_found)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(http::observe::observe))
                // Acknowledge a write only once it is on disk (group commit on SQLite).
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    http::durable::ack_when_durable,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::authorize,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    customer_docs::body_limit_guard,
                ))
                .layer(CompressionLayer::new())
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    // The only error the stack below produces is the timeout.
                    StatusCode::REQUEST_TIMEOUT.into_response()
                }))
                .timeout(timeout)
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(RequestBodyLimitLayer::new(outer_limit)),
        )
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
