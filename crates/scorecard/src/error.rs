//! Errors of the scorecard crate: one type for model loading, scoring, training and I/O.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
pub enum ScorecardError {
    /// The model JSON is not a model this code understands, or breaks an invariant.
    #[error("invalid scorecard model: {0}")]
    InvalidModel(String),
    /// The model's `format_version` is not supported.
    #[error("unsupported scorecard format_version {found} (this build reads {supported})")]
    UnsupportedFormat {
        /// Version found in the document.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// An input row or dataset lacks a column the model needs.
    #[error("input has no column '{0}' required by the model")]
    MissingColumn(String),
    /// The row passed to scoring has the wrong number of values.
    #[error("row has {found} values, expected {expected}")]
    RowLength {
        /// Values expected (features of the model, or columns of the bound layout).
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// A numeric feature received text that is neither a number nor a missing token.
    #[error("feature '{feature}' is numeric but got '{value}'")]
    NotNumeric {
        /// Feature name.
        feature: String,
        /// The offending text.
        value: String,
    },
    /// A dataset could not be built or lacks what training needs.
    #[error("invalid dataset: {0}")]
    InvalidDataset(String),
    /// The target column cannot be turned into good/bad labels.
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// Training could not produce a model (e.g. no feature passed selection).
    #[error("training failed: {0}")]
    Training(String),
    /// Bad arguments to a metric or PSI computation.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// CSV syntax error.
    #[error("CSV line {line}: {message}")]
    Csv {
        /// 1-based physical line where the record starts.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// File or stream I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias of this crate.
pub type Result<T, E = ScorecardError> = std::result::Result<T, E>;
