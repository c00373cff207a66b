//! Bulk customer import (客户批量导入): reading CSV/XLSX files, the import engine and the
//! row-level error report. The CLI (`zhudai import customers`) and the HTTP import job
//! both run [`engine::Engine::run`], so a file imports the same way through either.
//! Design: docs/decisions/0011-bulk-import.md.

pub mod engine;
pub mod job;
pub mod read;
pub mod report;

pub use engine::{Engine, ImportFailure, ImportOptions, Outcome, ProgressFn};
pub use read::{FileError, Format, Table};

use sha2::{Digest, Sha256};

/// SHA-256 (hex) of a file: the identity of an import for resuming.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
