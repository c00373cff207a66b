//! One test binary for the expression language (linking several is slow).
// Test helpers outside `#[test]` fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod conformance;
mod semantics;
mod window;
