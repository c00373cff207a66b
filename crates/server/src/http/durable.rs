//! Nothing is acknowledged before it is on disk. With SQLite in group-commit mode
//! (`sqlite_synchronous = "group"`, the default) commits are not fsynced one by one; this
//! layer makes the response to every request that wrote — any POST, PUT, PATCH or DELETE,
//! and a read that wrote (an audited reveal, a session touch) — wait for
//! [`zhudai_store::Store::durable`], which fsyncs the write-ahead log once for all the
//! commits made before it started. Concurrent requests share that fsync. On PostgreSQL
//! and with `full` or `normal` durability the wait is immediate.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn ack_when_durable(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (response, wrote) = zhudai_store::track_writes(next.run(req)).await;
    if writes || wrote {
        if let Err(e) = state.store().durable().await {
            tracing::error!(error = %e, "a write could not be made durable; not acknowledging it");
            return ApiError::Unavailable(
                "the write could not be confirmed on disk; it may not have been saved, check before retrying".into(),
            )
            .into_response();
        }
    }
    response
}
