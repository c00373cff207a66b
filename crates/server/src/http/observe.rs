//! The outermost middleware: gives each request an id and a tracing span, records
//! Prometheus metrics, writes one access-log line, and makes sure every API error body is
//! problem+json (including the ones produced by axum and tower themselves: 404, 405, 413,
//! 408…).

use crate::error::{problem_response, Problem, PROBLEM_JSON};
use crate::http::request_id;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::from_headers(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let is_api = path.starts_with("/api/");
    let mut response = request_id::scope(id.clone(), async move {
        let response = next.run(req).await;
        if is_api {
            ensure_problem_json(response).await
        } else {
            response
        }
    })
    .instrument(span.clone())
    .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, v);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("zhudai_http_requests_total", &labels).increment(1);
    metrics::histogram!("zhudai_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    });
    response
}

/// Rewrites an error response that is not problem+json into one, keeping the status and
/// using the original text (axum's rejection messages are clear) as the detail.
async fn ensure_problem_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = match status {
        StatusCode::NOT_FOUND => {
            "no API route matches this path; see /api/v1/openapi.json".to_owned()
        }
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept this HTTP method".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the configured limit".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was stopped".to_owned(),
        _ if status.is_server_error() => {
            "an unexpected error occurred; quote the request id when reporting it".to_owned()
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let problem = Problem {
        kind: format!("urn:zhudai:problem:http-{}", status.as_u16()),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: Some(detail),
        request_id: request_id::current_request_id(),
        errors: Vec::new(),
    };
    let mut fresh = problem_response(&problem);
    // Keep headers such as `Allow` (405) and `Retry-After` (429).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}
