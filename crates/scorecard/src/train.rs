//! Training a scorecard from a dataset.
//!
//! 1. **Target**: the target column becomes bad = 1 / good = 0 (see [`TrainingOptions::bad_value`]).
//! 2. **Binning** of every candidate feature with monotonic WoE ([`crate::binning`]) and
//!    its information value.
//! 3. **Selection**: drop features with IV < `min_iv` (0.02); then, in decreasing IV
//!    order (ties by name), keep a feature only if the Pearson correlation of its WoE
//!    column with every kept feature is at most `max_correlation` (0.7) in absolute value;
//!    optionally keep only the `max_features` highest-IV survivors.
//! 4. **Logistic regression** of bad on the WoE columns ([`crate::logistic`]). With WoE =
//!    ln(good/bad) every coefficient should be negative; a feature with a positive
//!    coefficient (a sign flip caused by collinearity) is dropped — the most positive
//!    first — and the model refitted, so that each bin's points move in the direction its
//!    WoE says.
//! 5. **Scaling** to points ([`crate::model::Scaling`]), development distributions of the
//!    score (decile bands) and of each feature's bins, and a [`TrainingReport`] with the
//!    bins table, IV, and AUC / KS / Gini on the training data (and on test data with
//!    [`train_with_test`]).
//!
//! Everything is deterministic: no randomness, sorted iteration, ties broken by position.

use serde::{Deserialize, Serialize};

use crate::binning::{bin_column, BinRule, BinningOptions, Counts, FeatureBins, Trend};
use crate::dataset::{normalize_text, parse_number, ColumnData, Dataset};
use crate::error::{Result, ScorecardError};
use crate::logistic;
use crate::metrics::Performance;
use crate::model::{
    Bin, BinStats, CategoricalBin, DevelopmentSample, FeatureBinning, FeatureSpec, ModelMetadata,
    NumericBin, Scaling, ScoreBand, Scorecard, ScorecardSpec, TargetSpec, UnseenPolicy,
    FORMAT_VERSION,
};

/// Training settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingOptions {
    /// Name, version and creation stamp written into the model.
    pub metadata: ModelMetadata,
    /// Target value meaning *bad*. `None`: a numeric 0/1 target has bad = 1; a text target
    /// whose values are `good`/`bad` (any case) has bad = `bad`; anything else is an error.
    pub bad_value: Option<String>,
    /// Candidate features; `None` = every column except the target and `exclude`.
    pub features: Option<Vec<String>>,
    /// Columns never used as features (e.g. IDs).
    pub exclude: Vec<String>,
    /// Binning settings.
    pub binning: BinningOptions,
    /// Minimum IV to keep a feature (0.02).
    pub min_iv: f64,
    /// Maximum absolute correlation between kept WoE columns (0.7).
    pub max_correlation: f64,
    /// Keep at most this many features (highest IV first); `None` = no limit.
    pub max_features: Option<usize>,
    /// L2 ridge of the logistic regression (1.0).
    pub l2: f64,
    /// Drop features whose coefficient has the wrong sign and refit (true).
    pub drop_wrong_sign: bool,
    /// Points scaling (600 points at 50:1, 20 PDO).
    pub scaling: Scaling,
    /// What unseen categories score as (worst bin).
    pub unseen: UnseenPolicy,
    /// Quantile bands of the development score distribution, for PSI (10).
    pub score_bands: usize,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            metadata: ModelMetadata {
                name: "scorecard".into(),
                version: "1".into(),
                created: None,
                description: None,
            },
            bad_value: None,
            features: None,
            exclude: Vec::new(),
            binning: BinningOptions::default(),
            min_iv: 0.02,
            max_correlation: 0.7,
            max_features: None,
            l2: 1.0,
            drop_wrong_sign: true,
            scaling: Scaling::default(),
            unseen: UnseenPolicy::WorstBin,
            score_bands: 10,
        }
    }
}

/// Why a candidate feature is or is not in the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FeatureStatus {
    /// In the model.
    Selected,
    /// IV below `min_iv`.
    LowIv,
    /// Too correlated with a kept feature of higher IV.
    Correlated {
        /// The kept feature.
        with: String,
        /// Pearson correlation of the WoE columns.
        correlation: f64,
    },
    /// Beyond `max_features`.
    OverLimit,
    /// Coefficient of the wrong sign in the regression.
    WrongSign {
        /// The coefficient when dropped.
        coefficient: f64,
    },
}

/// One bin in the report's bins table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinReport {
    /// Bin label (`missing` for the missing bin).
    pub label: String,
    /// Rows.
    pub count: u64,
    /// Good rows.
    pub good: u64,
    /// Bad rows.
    pub bad: u64,
    /// Share of all rows.
    pub share: f64,
    /// Bad rate (0 for an empty bin).
    pub bad_rate: f64,
    /// Weight of evidence.
    pub woe: f64,
    /// IV contribution.
    pub iv: f64,
    /// Points, for selected features.
    pub points: Option<i64>,
}

/// Binning and selection outcome of one candidate feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// Column name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Direction of the bad rate for numeric features.
    pub trend: Option<Trend>,
    /// Information value.
    pub iv: f64,
    /// Selection outcome.
    #[serde(flatten)]
    pub status: FeatureStatus,
    /// Regression coefficient, for selected features.
    pub coefficient: Option<f64>,
    /// Regular bins then the missing bin.
    pub bins: Vec<BinReport>,
}

/// What training did and how well the model separates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// Target column and bad value.
    pub target: TargetSpec,
    /// Training rows.
    pub rows: usize,
    /// Bad rows.
    pub bad: usize,
    /// Every candidate, in decreasing IV order.
    pub features: Vec<FeatureReport>,
    /// Selected feature names, model order.
    pub selected: Vec<String>,
    /// Regression intercept.
    pub intercept: f64,
    /// Newton iterations of the final fit.
    pub iterations: usize,
    /// Whether the final fit converged.
    pub converged: bool,
    /// Metrics on the training data (of the probability of bad).
    pub train: Performance,
    /// Metrics on test data, when given.
    pub test: Option<Performance>,
}

impl TrainingReport {
    /// A plain-text summary: IV table, coefficients, metrics.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rows {} (bad {}), target {} = '{}'",
            self.rows, self.bad, self.target.column, self.target.bad_value
        );
        for f in &self.features {
            let status = match &f.status {
                FeatureStatus::Selected => "selected".to_owned(),
                FeatureStatus::LowIv => "dropped: IV".to_owned(),
                FeatureStatus::Correlated { with, correlation } => {
                    format!("dropped: corr {correlation:.2} with {with}")
                }
                FeatureStatus::OverLimit => "dropped: max_features".to_owned(),
                FeatureStatus::WrongSign { coefficient } => {
                    format!("dropped: sign {coefficient:.3}")
                }
            };
            let _ = writeln!(s, "{:<60} IV {:>7.4}  {status}", f.name, f.iv);
            if f.status == FeatureStatus::Selected {
                for b in &f.bins {
                    let _ = writeln!(
                        s,
                        "    {:<50} n {:>5} bad {:>6.3} woe {:>7.3} pts {:>5}",
                        b.label,
                        b.count,
                        b.bad_rate,
                        b.woe,
                        b.points.unwrap_or(0)
                    );
                }
            }
        }
        let fmt = |p: &Performance| format!("AUC {:.4} KS {:.4} Gini {:.4}", p.auc, p.ks, p.gini);
        let _ = writeln!(s, "train: {}", fmt(&self.train));
        if let Some(t) = &self.test {
            let _ = writeln!(s, "test:  {}", fmt(t));
        }
        s
    }
}

/// Reads the good/bad labels of `data` per `target` (true = bad). Missing targets are errors.
pub fn target_labels(data: &Dataset, target: &TargetSpec) -> Result<Vec<bool>> {
    let col = data
        .column(&target.column)
        .ok_or_else(|| ScorecardError::MissingColumn(target.column.clone()))?;
    let missing =
        || ScorecardError::InvalidTarget(format!("'{}' has missing values", target.column));
    match &col.data {
        ColumnData::Numeric(v) => {
            let bad = parse_number(target.bad_value.trim()).ok_or_else(|| {
                ScorecardError::InvalidTarget(format!(
                    "numeric target '{}' but bad value '{}' is not a number",
                    target.column, target.bad_value
                ))
            })?;
            v.iter()
                .map(|x| x.map(|x| x == bad).ok_or_else(missing))
                .collect()
        }
        ColumnData::Categorical { levels, codes } => {
            let bad = target.bad_value.trim();
            let bad_code = levels.iter().position(|l| l == bad);
            codes
                .iter()
                .map(|c| c.map(|c| Some(c as usize) == bad_code).ok_or_else(missing))
                .collect()
        }
    }
}

fn resolve_target(data: &Dataset, column: &str, bad_value: Option<&str>) -> Result<TargetSpec> {
    let col = data
        .column(column)
        .ok_or_else(|| ScorecardError::MissingColumn(column.to_owned()))?;
    let bad_value = match (bad_value, &col.data) {
        (Some(b), _) => normalize_text(b).unwrap_or(b).to_owned(),
        (None, ColumnData::Numeric(v)) => {
            if v.iter().flatten().any(|&x| x != 0.0 && x != 1.0) {
                return Err(ScorecardError::InvalidTarget(format!(
                    "numeric target '{column}' must be 0/1, or set bad_value"
                )));
            }
            "1".to_owned()
        }
        (None, ColumnData::Categorical { levels, .. }) => {
            let lower: Vec<String> = levels.iter().map(|l| l.to_lowercase()).collect();
            match (lower.len(), lower.iter().position(|l| l == "bad")) {
                (2, Some(i)) if lower.iter().any(|l| l == "good") => {
                    levels.get(i).cloned().unwrap_or_default()
                }
                _ => {
                    return Err(ScorecardError::InvalidTarget(format!(
                        "target '{column}' has values {levels:?}; set bad_value"
                    )))
                }
            }
        }
    };
    Ok(TargetSpec {
        column: column.to_owned(),
        bad_value,
    })
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

struct Candidate {
    name: String,
    numeric: bool,
    bins: FeatureBins,
    woe_column: Vec<f64>,
    status: FeatureStatus,
}

impl Candidate {
    fn woe_of(&self, bin: usize) -> f64 {
        self.bins
            .woe
            .get(bin)
            .copied()
            .unwrap_or(self.bins.missing_woe)
    }
}

/// Trains a scorecard on `data` with `target` as the outcome column.
pub fn train(
    data: &Dataset,
    target: &str,
    options: &TrainingOptions,
) -> Result<(Scorecard, TrainingReport)> {
    let target = resolve_target(data, target, options.bad_value.as_deref())?;
    let labels = target_labels(data, &target)?;
    let n_bad = labels.iter().filter(|&&b| b).count();
    if n_bad == 0 || n_bad == labels.len() {
        return Err(ScorecardError::InvalidTarget(
            "training data needs both good and bad rows".into(),
        ));
    }
    let totals = Counts {
        good: (labels.len() - n_bad) as u64,
        bad: n_bad as u64,
    };

    // 1–2: bin every candidate.
    let names: Vec<String> = match &options.features {
        Some(f) => f.clone(),
        None => data
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| *n != target.column && !options.exclude.contains(n))
            .collect(),
    };
    let mut candidates = Vec::with_capacity(names.len());
    for name in names {
        let col = data
            .column(&name)
            .ok_or_else(|| ScorecardError::MissingColumn(name.clone()))?;
        let bins = bin_column(&col.data, &labels, &options.binning, totals);
        let mut c = Candidate {
            numeric: matches!(col.data, ColumnData::Numeric(_)),
            name,
            woe_column: Vec::new(),
            status: FeatureStatus::Selected,
            bins,
        };
        c.woe_column = c.bins.row_bins.iter().map(|&b| c.woe_of(b)).collect();
        candidates.push(c);
    }
    candidates.sort_by(|a, b| b.bins.iv.total_cmp(&a.bins.iv).then(a.name.cmp(&b.name)));

    // 3: selection.
    let mut kept: Vec<usize> = Vec::new();
    for i in 0..candidates.len() {
        let status = {
            let c = &candidates[i];
            if c.bins.iv < options.min_iv || c.bins.counts.len() < 2 {
                FeatureStatus::LowIv
            } else if let Some((with, correlation)) = kept
                .iter()
                .map(|&k| {
                    let other = &candidates[k];
                    (
                        other.name.clone(),
                        pearson(&c.woe_column, &other.woe_column),
                    )
                })
                .find(|(_, r)| r.abs() > options.max_correlation)
            {
                FeatureStatus::Correlated { with, correlation }
            } else if options.max_features.is_some_and(|m| kept.len() >= m) {
                FeatureStatus::OverLimit
            } else {
                FeatureStatus::Selected
            }
        };
        if status == FeatureStatus::Selected {
            kept.push(i);
        }
        candidates[i].status = status;
    }

    // 4: regression, dropping wrong-sign features.
    let fit = loop {
        if kept.is_empty() {
            return Err(ScorecardError::Training(
                "no feature passed selection (IV, correlation, coefficient sign)".into(),
            ));
        }
        let columns: Vec<Vec<f64>> = kept
            .iter()
            .map(|&i| candidates[i].woe_column.clone())
            .collect();
        let fit = logistic::fit(&columns, &labels, options.l2)?;
        let worst = fit
            .coefficients
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0.0)
            .max_by(|a, b| a.1.total_cmp(b.1));
        match worst {
            Some((j, &b)) if options.drop_wrong_sign => {
                let i = kept.remove(j);
                candidates[i].status = FeatureStatus::WrongSign { coefficient: b };
            }
            _ => break fit,
        }
    };

    // 5: scaling and model.
    let factor = options.scaling.factor();
    let base_points = (options.scaling.offset() - factor * fit.intercept).round() as i64;
    let all_rows = labels.len() as f64;
    let mut features = Vec::with_capacity(kept.len());
    for (&i, &beta) in kept.iter().zip(&fit.coefficients) {
        let c = &candidates[i];
        let points_of = |w: f64| (-factor * beta * w).round() as i64;
        let labels_v = c.bins.labels();
        let make_bin = |k: usize| Bin {
            label: labels_v.get(k).cloned().unwrap_or_default(),
            woe: c.bins.woe.get(k).copied().unwrap_or(0.0),
            points: points_of(c.bins.woe.get(k).copied().unwrap_or(0.0)),
            dev: c.bins.counts.get(k).map(|cnt| BinStats {
                count: cnt.total(),
                bad: cnt.bad,
            }),
        };
        let binning = match &c.bins.rule {
            BinRule::Numeric { uppers } => FeatureBinning::Numeric {
                bins: (0..c.bins.counts.len())
                    .map(|k| NumericBin {
                        upper: uppers.get(k).copied(),
                        bin: make_bin(k),
                    })
                    .collect(),
            },
            BinRule::Categorical { groups, .. } => FeatureBinning::Categorical {
                bins: groups
                    .iter()
                    .enumerate()
                    .map(|(k, g)| CategoricalBin {
                        categories: g.clone(),
                        bin: make_bin(k),
                    })
                    .collect(),
                unseen: options.unseen,
            },
        };
        features.push(FeatureSpec {
            name: c.name.clone(),
            description: None,
            coefficient: beta,
            binning,
            missing: Bin {
                label: "missing".into(),
                woe: c.bins.missing_woe,
                points: points_of(c.bins.missing_woe),
                dev: Some(BinStats {
                    count: c.bins.missing.total(),
                    bad: c.bins.missing.bad,
                }),
            },
        });
    }
    let spec = ScorecardSpec {
        format_version: FORMAT_VERSION,
        metadata: options.metadata.clone(),
        target: Some(target.clone()),
        scaling: options.scaling,
        intercept: fit.intercept,
        base_points,
        features,
        development: None,
    };
    let mut model = Scorecard::new(spec)?;

    // Development score distribution and training metrics.
    let results = model.score_dataset(data)?;
    let scores: Vec<i64> = results.iter().map(|r| r.score).collect();
    let probabilities: Vec<f64> = results.iter().map(|r| r.probability).collect();
    drop(results);
    let train_perf = Performance::compute(&probabilities, &labels)?;
    let mut spec = model.spec.clone();
    spec.development = Some(DevelopmentSample {
        rows: labels.len() as u64,
        bad: n_bad as u64,
        score_bands: score_bands(&scores, options.score_bands),
    });
    model = Scorecard::new(spec)?;

    let reports = candidates
        .iter()
        .map(|c| {
            let position = kept
                .iter()
                .position(|&k| candidates.get(k).is_some_and(|x| x.name == c.name));
            let model_feature = position.and_then(|p| model.spec.features.get(p));
            let mut bins: Vec<BinReport> = c
                .bins
                .labels()
                .into_iter()
                .zip(c.bins.counts.iter().zip(&c.bins.woe))
                .enumerate()
                .map(|(k, (label, (&cnt, &w)))| {
                    bin_report(
                        label,
                        cnt,
                        w,
                        totals,
                        all_rows,
                        model_feature
                            .and_then(|f| f.binning.bin(k))
                            .map(|b| b.points),
                    )
                })
                .collect();
            bins.push(bin_report(
                "missing".into(),
                c.bins.missing,
                c.bins.missing_woe,
                totals,
                all_rows,
                model_feature.map(|f| f.missing.points),
            ));
            FeatureReport {
                name: c.name.clone(),
                kind: if c.numeric { "numeric" } else { "categorical" }.into(),
                trend: c.bins.trend,
                iv: c.bins.iv,
                status: c.status.clone(),
                coefficient: position.and_then(|p| fit.coefficients.get(p).copied()),
                bins,
            }
        })
        .collect();

    let report = TrainingReport {
        target,
        rows: labels.len(),
        bad: n_bad,
        features: reports,
        selected: model.feature_names().map(str::to_owned).collect(),
        intercept: fit.intercept,
        iterations: fit.iterations,
        converged: fit.converged,
        train: train_perf,
        test: None,
    };
    Ok((model, report))
}

fn bin_report(
    label: String,
    c: Counts,
    woe: f64,
    totals: Counts,
    all_rows: f64,
    points: Option<i64>,
) -> BinReport {
    let n = c.total();
    BinReport {
        label,
        count: n,
        good: c.good,
        bad: c.bad,
        share: n as f64 / all_rows,
        bad_rate: if n == 0 { 0.0 } else { c.bad as f64 / n as f64 },
        woe,
        iv: crate::binning::iv_term(c, totals),
        points,
    }
}

/// Quantile bands of the scores: uppers are observed scores, right-closed, last open.
fn score_bands(scores: &[i64], bands: usize) -> Vec<ScoreBand> {
    let mut sorted = scores.to_vec();
    sorted.sort_unstable();
    let max = sorted.last().copied().unwrap_or(0);
    let k = bands.max(1);
    let mut uppers: Vec<i64> = Vec::new();
    for q in 1..k {
        let idx = (q * sorted.len()).div_ceil(k).saturating_sub(1);
        if let Some(&v) = sorted.get(idx) {
            if v < max && uppers.last().is_none_or(|&u| u < v) {
                uppers.push(v);
            }
        }
    }
    let mut counts = vec![0u64; uppers.len() + 1];
    for &s in &sorted {
        if let Some(c) = counts.get_mut(uppers.partition_point(|&u| u < s)) {
            *c += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| ScoreBand {
            upper: uppers.get(i).copied(),
            count,
        })
        .collect()
}

/// AUC / KS / Gini of `model` on `data`, reading labels per the model's target (or `target`).
pub fn evaluate(
    model: &Scorecard,
    data: &Dataset,
    target: Option<&TargetSpec>,
) -> Result<Performance> {
    let target = target.or(model.spec.target.as_ref()).ok_or_else(|| {
        ScorecardError::InvalidTarget("the model records no target; pass one".into())
    })?;
    let labels = target_labels(data, target)?;
    let probabilities: Vec<f64> = model
        .score_dataset(data)?
        .iter()
        .map(|r| r.probability)
        .collect();
    Performance::compute(&probabilities, &labels)
}

/// [`train`] on `train_data`, then fills the report's test metrics from `test_data`.
pub fn train_with_test(
    train_data: &Dataset,
    test_data: &Dataset,
    target: &str,
    options: &TrainingOptions,
) -> Result<(Scorecard, TrainingReport)> {
    let (model, mut report) = train(train_data, target, options)?;
    report.test = Some(evaluate(&model, test_data, Some(&report.target))?);
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn score_bands_are_quantiles() {
        let scores: Vec<i64> = (1..=100).collect();
        let b = score_bands(&scores, 4);
        assert_eq!(
            b.iter().map(|b| b.upper).collect::<Vec<_>>(),
            vec![Some(25), Some(50), Some(75), None]
        );
        assert!(b.iter().all(|b| b.count == 25));
        let same = score_bands(&[7; 10], 10);
        assert_eq!(
            same,
            vec![ScoreBand {
                upper: None,
                count: 10
            }]
        );
    }

    #[test]
    fn pearson_basic() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }
}
