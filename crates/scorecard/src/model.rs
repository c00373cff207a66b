//! The scorecard model format (versioned JSON) and its validated, pre-compiled form.
//!
//! A model is a [`ScorecardSpec`] — plain data that serialises to JSON with a
//! `format_version` — and a [`Scorecard`] is a spec that passed validation and has its
//! lookup tables built (cut points, category → bin maps, points and log-odds per bin).
//! `Scorecard` (de)serialises as its spec, so loading JSON always validates.
//!
//! ## Format, version 1
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "metadata": { "name": "german", "version": "1", "created": "2025-01-01" },
//!   "target": { "column": "creditability", "bad_value": "bad" },
//!   "scaling": { "base_score": 600.0, "base_odds": 50.0, "pdo": 20.0 },
//!   "intercept": -0.85,
//!   "base_points": 512,
//!   "features": [
//!     { "name": "duration_in_month", "type": "numeric", "coefficient": -0.9,
//!       "bins": [ { "upper": 11.0, "label": "(-inf, 11]", "woe": 0.6, "points": 16,
//!                   "dev": { "count": 120, "bad": 20 } },
//!                 { "upper": null, "label": "(11, +inf)", "woe": -0.2, "points": -5 } ],
//!       "missing": { "label": "missing", "woe": 0.0, "points": 0 } },
//!     { "name": "purpose", "type": "categorical", "coefficient": -1.0, "unseen": "worst_bin",
//!       "bins": [ { "categories": ["car (new)", "others"], "label": "car (new) | others",
//!                   "woe": -0.3, "points": -9 } ],
//!       "missing": { "label": "missing", "woe": 0.0, "points": 0 } }
//!   ],
//!   "development": { "rows": 700, "bad": 210,
//!                    "score_bands": [ { "upper": 480, "count": 70 }, { "upper": null, "count": 630 } ] }
//! }
//! ```
//!
//! * **Numeric bins** are left-open, right-closed intervals given by their `upper` bound in
//!   strictly increasing order: bin *k* is `(upper[k-1], upper[k]]`, the first starts at −∞
//!   and the last has `"upper": null` (+∞).
//! * **Categorical bins** are groups of categories (exact match after trimming). A category
//!   not in any group is *unseen* and scored per `unseen`: `"missing_bin"` (treat as
//!   missing) or `"worst_bin"` (the regular bin with the fewest points — the conservative
//!   default of training).
//! * Every feature has a dedicated **missing bin** (`missing`), used for absent values and
//!   the tokens in [`crate::dataset::MISSING_TOKENS`].
//! * **WoE** is `ln(%good / %bad)` of the bin in the development sample (higher = safer);
//!   `coefficient` is the logistic-regression weight of the WoE on the log-odds of *bad*.
//!   The probability of bad is `1 / (1 + exp(-(intercept + Σ coefficient·woe)))`.
//! * **Points**: `score = base_points + Σ points(bin)`, integers. Training sets
//!   `points = round(-factor·coefficient·woe)` and `base_points = round(offset −
//!   factor·intercept)` with `factor = pdo / ln 2` and `offset = base_score − factor·ln(base_odds)`,
//!   so `base_score` points mean good:bad odds of `base_odds`, and every `pdo` points
//!   double the odds.
//! * `dev` (per bin) and `development.score_bands` are the development-sample
//!   distributions that [`crate::psi`] compares new populations against. Optional for
//!   hand-written models; PSI needs them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, ScorecardError};

/// The only `format_version` this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The serialisable model document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardSpec {
    /// Always [`FORMAT_VERSION`] for documents this build writes.
    pub format_version: u32,
    /// Name, version, creation stamp.
    pub metadata: ModelMetadata,
    /// How the training target was read; lets evaluation read labels the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// Points-to-odds scaling.
    pub scaling: Scaling,
    /// Logistic-regression intercept (log-odds of bad at WoE 0).
    pub intercept: f64,
    /// Points every applicant starts with.
    pub base_points: i64,
    /// Features in scoring order.
    pub features: Vec<FeatureSpec>,
    /// Development-sample score distribution (for PSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub development: Option<DevelopmentSample>,
}

/// Identification of a model. `created` is supplied by the caller (this crate has no clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    /// Model name, e.g. `"retail-application"`.
    pub name: String,
    /// Model version, e.g. `"2025.1"`; decisions store it.
    pub version: String,
    /// Creation time as text (e.g. RFC 3339), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The target column and which of its values means *bad*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Column name.
    pub column: String,
    /// The value (as text, e.g. `"bad"` or `"1"`) that marks a bad outcome.
    pub bad_value: String,
}

/// Points-to-odds scaling: `base_score` points at good:bad odds `base_odds`, `pdo` points
/// to double the odds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// Score at the base odds (default 600).
    pub base_score: f64,
    /// Good:bad odds at the base score (default 50, i.e. 50:1).
    pub base_odds: f64,
    /// Points to double the odds (default 20).
    pub pdo: f64,
}

impl Default for Scaling {
    fn default() -> Self {
        Self {
            base_score: 600.0,
            base_odds: 50.0,
            pdo: 20.0,
        }
    }
}

impl Scaling {
    /// Points per unit of ln(odds): `pdo / ln 2`.
    pub fn factor(&self) -> f64 {
        self.pdo / std::f64::consts::LN_2
    }

    /// `base_score − factor·ln(base_odds)`.
    pub fn offset(&self) -> f64 {
        self.base_score - self.factor() * self.base_odds.ln()
    }
}

/// What an unseen category scores as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnseenPolicy {
    /// Score it as the feature's missing bin.
    MissingBin,
    /// Score it as the regular bin with the fewest points (conservative; training default).
    #[default]
    WorstBin,
}

/// One feature of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Input column name.
    pub name: String,
    /// Plain-language text for reason codes, e.g. "Checking account balance".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Logistic-regression coefficient of this feature's WoE.
    pub coefficient: f64,
    /// Type and bins.
    #[serde(flatten)]
    pub binning: FeatureBinning,
    /// The dedicated missing bin.
    pub missing: Bin,
}

/// A feature's type and its regular bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeatureBinning {
    /// Ordered intervals.
    Numeric {
        /// Bins in increasing order of `upper`.
        bins: Vec<NumericBin>,
    },
    /// Groups of categories.
    Categorical {
        /// Groups.
        bins: Vec<CategoricalBin>,
        /// What a category outside every group scores as.
        #[serde(default)]
        unseen: UnseenPolicy,
    },
}

/// A numeric interval `(previous upper, upper]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericBin {
    /// Inclusive upper bound; `None` (JSON `null`) for +∞, only on the last bin.
    pub upper: Option<f64>,
    /// Label, WoE, points, development counts.
    #[serde(flatten)]
    pub bin: Bin,
}

/// A group of categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalBin {
    /// The categories (exact text) in this group.
    pub categories: Vec<String>,
    /// Label, WoE, points, development counts.
    #[serde(flatten)]
    pub bin: Bin,
}

/// What a bin is worth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Human-readable label, e.g. `"(12, 24]"`.
    pub label: String,
    /// Weight of evidence, `ln(%good/%bad)`.
    pub woe: f64,
    /// Points added to the score.
    pub points: i64,
    /// Development-sample counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<BinStats>,
}

/// Development-sample counts of a bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinStats {
    /// Rows in the bin.
    pub count: u64,
    /// Bad rows in the bin.
    pub bad: u64,
}

/// Development-sample summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevelopmentSample {
    /// Rows.
    pub rows: u64,
    /// Bad rows.
    pub bad: u64,
    /// Score distribution in bands `(previous upper, upper]`, last `upper` null.
    pub score_bands: Vec<ScoreBand>,
}

/// One score band of the development distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBand {
    /// Inclusive upper score; `None` for the last band.
    pub upper: Option<i64>,
    /// Development rows in the band.
    pub count: u64,
}

/// How a feature finds its bin, precomputed.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    Numeric {
        /// Finite upper bounds of all bins but the last.
        uppers: Vec<f64>,
    },
    Categorical {
        /// (category, bin), sorted by category, for binary search without hashing.
        by_text: Vec<(String, usize)>,
        /// Categories that are numbers, for `Value::Number` inputs.
        by_number: Vec<(f64, usize)>,
        unseen_bin: usize,
    },
}

/// One feature ready for scoring: bins `0..n` are regular, bin `n` is the missing bin.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFeature {
    pub(crate) lookup: Lookup,
    pub(crate) points: Vec<i64>,
    pub(crate) log_odds: Vec<f64>,
    pub(crate) labels_missing: usize,
    pub(crate) best_points: i64,
}

/// A validated model with its lookup tables built. Create with [`Scorecard::new`] or by
/// deserialising JSON ([`Scorecard::from_json`]).
#[derive(Debug, Clone)]
pub struct Scorecard {
    pub(crate) spec: ScorecardSpec,
    pub(crate) compiled: Vec<CompiledFeature>,
}

impl PartialEq for Scorecard {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

fn invalid(msg: impl Into<String>) -> ScorecardError {
    ScorecardError::InvalidModel(msg.into())
}

impl Scorecard {
    /// Validates `spec` and builds the lookup tables.
    pub fn new(spec: ScorecardSpec) -> Result<Self> {
        if spec.format_version != FORMAT_VERSION {
            return Err(ScorecardError::UnsupportedFormat {
                found: spec.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let s = &spec.scaling;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(s.pdo) || !positive(s.base_odds) || !s.base_score.is_finite() {
            return Err(invalid(
                "scaling needs pdo > 0, base_odds > 0, finite base_score",
            ));
        }
        if !spec.intercept.is_finite() {
            return Err(invalid("intercept is not finite"));
        }
        if spec.features.is_empty() {
            return Err(invalid("a model needs at least one feature"));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut compiled = Vec::with_capacity(spec.features.len());
        for f in &spec.features {
            if !names.insert(f.name.as_str()) {
                return Err(invalid(format!("duplicate feature '{}'", f.name)));
            }
            compiled.push(compile_feature(f)?);
        }
        if let Some(dev) = &spec.development {
            check_bands(&dev.score_bands)?;
        }
        Ok(Self { spec, compiled })
    }

    /// Parses and validates a JSON model.
    pub fn from_json(json: &str) -> Result<Self> {
        Ok(serde_json::from_str(json)?)
    }

    /// Pretty JSON of the model.
    pub fn to_json_pretty(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(&self.spec)?)
    }

    /// The model document.
    pub fn spec(&self) -> &ScorecardSpec {
        &self.spec
    }

    /// Feature names in scoring order (the order [`Scorecard::score`] expects values in).
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.spec.features.iter().map(|f| f.name.as_str())
    }

    /// Number of features.
    pub fn feature_count(&self) -> usize {
        self.spec.features.len()
    }

    /// Label of bin `bin` of feature `feature` (bin == number of regular bins: missing).
    pub fn bin_label(&self, feature: usize, bin: usize) -> Option<&str> {
        let f = self.spec.features.get(feature)?;
        let n = f.binning.len();
        if bin == n {
            return Some(f.missing.label.as_str());
        }
        f.binning.bin(bin).map(|b| b.label.as_str())
    }
}

impl FeatureBinning {
    /// Number of regular (non-missing) bins.
    pub fn len(&self) -> usize {
        match self {
            FeatureBinning::Numeric { bins } => bins.len(),
            FeatureBinning::Categorical { bins, .. } => bins.len(),
        }
    }

    /// True when there are no regular bins (never for a valid model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Regular bin `i`.
    pub fn bin(&self, i: usize) -> Option<&Bin> {
        match self {
            FeatureBinning::Numeric { bins } => bins.get(i).map(|b| &b.bin),
            FeatureBinning::Categorical { bins, .. } => bins.get(i).map(|b| &b.bin),
        }
    }

    /// Regular bins in order.
    pub fn bins(&self) -> Vec<&Bin> {
        match self {
            FeatureBinning::Numeric { bins } => bins.iter().map(|b| &b.bin).collect(),
            FeatureBinning::Categorical { bins, .. } => bins.iter().map(|b| &b.bin).collect(),
        }
    }
}

fn check_bands(bands: &[ScoreBand]) -> Result<()> {
    let Some((last, rest)) = bands.split_last() else {
        return Err(invalid("development.score_bands is empty"));
    };
    if last.upper.is_some() || rest.iter().any(|b| b.upper.is_none()) {
        return Err(invalid("only the last score band has upper = null"));
    }
    if rest.windows(2).any(|w| w[0].upper >= w[1].upper) {
        return Err(invalid("score band uppers must increase strictly"));
    }
    Ok(())
}

fn compile_feature(f: &FeatureSpec) -> Result<CompiledFeature> {
    let name = &f.name;
    if !f.coefficient.is_finite() {
        return Err(invalid(format!(
            "feature '{name}': coefficient is not finite"
        )));
    }
    let bins = f.binning.bins();
    if bins.is_empty() {
        return Err(invalid(format!("feature '{name}' has no bins")));
    }
    if bins
        .iter()
        .copied()
        .chain([&f.missing])
        .any(|b| !b.woe.is_finite())
    {
        return Err(invalid(format!("feature '{name}': a WoE is not finite")));
    }
    let n = bins.len();
    let points: Vec<i64> = bins
        .iter()
        .map(|b| b.points)
        .chain([f.missing.points])
        .collect();
    let log_odds: Vec<f64> = bins
        .iter()
        .map(|b| f.coefficient * b.woe)
        .chain([f.coefficient * f.missing.woe])
        .collect();
    let regular = points.get(..n).unwrap_or(&[]);
    let best_points = regular.iter().copied().max().unwrap_or(0);
    let lookup = match &f.binning {
        FeatureBinning::Numeric { bins } => {
            let (last, rest) = bins
                .split_last()
                .ok_or_else(|| invalid(format!("feature '{name}' has no bins")))?;
            if last.upper.is_some() {
                return Err(invalid(format!(
                    "feature '{name}': the last numeric bin must have upper = null"
                )));
            }
            let mut uppers = Vec::with_capacity(rest.len());
            for b in rest {
                match b.upper {
                    Some(u) if u.is_finite() && uppers.last().is_none_or(|&p| p < u) => {
                        uppers.push(u)
                    }
                    _ => {
                        return Err(invalid(format!(
                            "feature '{name}': bin uppers must be finite and strictly increasing, \
                             and only the last may be null"
                        )))
                    }
                }
            }
            Lookup::Numeric { uppers }
        }
        FeatureBinning::Categorical { bins, unseen } => {
            let mut by_text: Vec<(String, usize)> = Vec::new();
            let mut by_number = Vec::new();
            for (i, b) in bins.iter().enumerate() {
                if b.categories.is_empty() {
                    return Err(invalid(format!(
                        "feature '{name}': bin '{}' has no categories",
                        b.bin.label
                    )));
                }
                for c in &b.categories {
                    let key = c.trim();
                    by_text.push((key.to_owned(), i));
                    if let Some(x) = crate::dataset::parse_number(key) {
                        by_number.push((x, i));
                    }
                }
            }
            by_text.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = by_text.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(invalid(format!(
                    "feature '{name}': category '{}' is in two bins",
                    w[0].0
                )));
            }
            let unseen_bin = match unseen {
                UnseenPolicy::MissingBin => n,
                UnseenPolicy::WorstBin => regular
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, p)| (**p, *i))
                    .map_or(n, |(i, _)| i),
            };
            Lookup::Categorical {
                by_text,
                by_number,
                unseen_bin,
            }
        }
    };
    Ok(CompiledFeature {
        lookup,
        points,
        log_odds,
        labels_missing: n,
        best_points,
    })
}

impl Serialize for Scorecard {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Scorecard {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let spec = ScorecardSpec::deserialize(deserializer)?;
        Scorecard::new(spec).map_err(serde::de::Error::custom)
    }
}
