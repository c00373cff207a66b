//! Cross-cutting HTTP plumbing: request ids, access logs and metrics, uniform error
//! bodies, timeouts and graceful shutdown.

pub mod observe;
pub mod request_id;
pub mod shutdown;
