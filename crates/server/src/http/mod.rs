//! Cross-cutting HTTP plumbing: request ids, access logs and metrics, uniform error
//! bodies, timeouts and graceful shutdown.

pub mod durable;
pub mod observe;
pub mod request_id;
pub mod shutdown;

use axum::http::{header, HeaderMap};

/// Reads one cookie from the request headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// True for a path on this site (`/…`), so redirecting to it can never leave the site.
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\')
}
