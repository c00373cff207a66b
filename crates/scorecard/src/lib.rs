//! # zhudai-scorecard — credit scorecards
//!
//! Pure computation (no database, no clock) for the risk-control core:
//!
//! * [`model`] — the versioned JSON model format: features (numeric intervals or
//!   categorical groups, each with a dedicated missing bin and an unseen-category policy),
//!   WoE and points per bin, PDO/odds scaling, intercept and coefficients, metadata, and the
//!   development-sample distributions PSI needs. [`Scorecard`] is a validated model with
//!   its lookup tables built.
//! * [`score`] — scoring a row into a score (integer points), probability of bad,
//!   per-feature contributions and reason codes, without allocation in the hot path.
//! * [`train()`] — monotonic-WoE binning ([`binning`]), IV, feature selection (IV and WoE
//!   correlation), ridge logistic regression ([`logistic`]) and scaling, with a
//!   [`TrainingReport`] (bins table, IV, AUC, KS, Gini).
//! * [`psi`] — population stability of the score and of each feature against the
//!   development sample.
//! * [`metrics`] — AUC (rank-based, ties averaged), KS, Gini.
//! * [`io`] — CSV files in and out, including the `score,probability` output contract.
//!
//! ## The method in one paragraph
//! Each feature is cut into bins whose weight of evidence `ln(%good/%bad)` is monotone in
//! the feature (numeric) or ordered by bad rate (categorical), each bin holding at least
//! 5% of the sample. Features with information value below 0.02 or whose WoE correlates
//! above 0.7 with a stronger feature are dropped. A logistic regression of *bad* on the
//! WoE values gives coefficients β; a bin's points are `−β·WoE·PDO/ln 2`, rounded, and the
//! base points absorb the intercept and the odds anchor (600 points = 50:1 good:bad, +20
//! points doubles the odds). The score is the sum; reason codes are the features whose
//! points fell furthest below their best bin.
//!
//! ## Example
//! ```
//! use zhudai_scorecard::{Dataset, Column, ColumnData, TrainingOptions, Value, train};
//!
//! let income: Vec<Option<f64>> = (0..400).map(|i| Some(f64::from(i % 100))).collect();
//! let bad: Vec<Option<f64>> = (0..400).map(|i| Some(f64::from(u8::from((i % 100 < 30 && i % 3 != 0) || i % 7 == 0)))).collect();
//! let data = Dataset::new(vec![
//!     Column { name: "income".into(), data: ColumnData::Numeric(income) },
//!     Column { name: "bad".into(), data: ColumnData::Numeric(bad) },
//! ])?;
//! let (model, report) = train(&data, "bad", &TrainingOptions::default())?;
//! let low = model.score(&[Value::Number(5.0)])?;
//! let high = model.score(&[Value::Number(95.0)])?;
//! assert!(low.score < high.score);
//! assert_eq!(low.reasons[0].feature, "income");
//! assert!(report.train.auc > 0.7);
//! # Ok::<(), zhudai_scorecard::ScorecardError>(())
//! ```

pub mod binning;
pub mod dataset;
pub mod error;
pub mod io;
mod logistic;
pub mod metrics;
pub mod model;
pub mod psi;
pub mod score;
pub mod train;

pub use binning::{BinningOptions, Trend};
pub use dataset::{Column, ColumnData, Dataset};
pub use error::{Result, ScorecardError};
pub use metrics::{auc, gini, ks, Performance};
pub use model::{
    Bin, BinStats, CategoricalBin, DevelopmentSample, FeatureBinning, FeatureSpec, ModelMetadata,
    NumericBin, Scaling, ScoreBand, Scorecard, ScorecardSpec, TargetSpec, UnseenPolicy,
    FORMAT_VERSION,
};
pub use psi::{psi, stability, StabilityMonitor, StabilityReport, DEFAULT_PSI_THRESHOLD};
pub use score::{BoundScorecard, Contribution, Reason, ScoreResult, Value};
pub use train::{
    evaluate, target_labels, train, train_with_test, FeatureReport, FeatureStatus, TrainingOptions,
    TrainingReport,
};

#[cfg(test)]
mod tests;
