//! zhudai's domain: the types and rules of a loan-facilitation business, free of I/O.
//!
//! Everything here is pure: no database, no network, no file system and no reads of the
//! system clock (the [`clock::Clock`] is passed in). Outer crates (store, server, CLI)
//! depend on this one; it depends on none of them.

pub mod clock;
