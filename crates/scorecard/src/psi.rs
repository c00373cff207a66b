//! Population stability: PSI of the score and of each feature's bins against the
//! development sample.
//!
//! `PSI = Σ (a_i − e_i) · ln(a_i / e_i)` over bins, with `e` the expected (development)
//! shares and `a` the actual shares. A share of zero would make the term infinite, so
//! shares are floored at [`PSI_EPSILON`] (1e-4) before the sum — the usual practice; the
//! floor bounds one empty bin's contribution instead of letting it dominate. Rule of thumb:
//! < 0.1 stable, 0.1–0.25 some shift, > 0.25 ([`DEFAULT_PSI_THRESHOLD`]) significant.
//!
//! The score bins are the model's `development.score_bands`; a feature's bins are its
//! regular bins plus its missing bin, with development counts from the bins' `dev` field.
//! [`StabilityMonitor`] accumulates counts from [`ScoreResult`]s one at a time, so a batch
//! never has to be held in memory.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Result, ScorecardError};
use crate::model::Scorecard;
use crate::score::ScoreResult;

/// Default alert threshold.
pub const DEFAULT_PSI_THRESHOLD: f64 = 0.25;

/// Floor applied to shares before taking logarithms.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population stability index between two share vectors over the same bins.
pub fn psi(expected: &[f64], actual: &[f64]) -> Result<f64> {
    if expected.len() != actual.len() || expected.is_empty() {
        return Err(ScorecardError::InvalidInput(format!(
            "PSI needs two non-empty share vectors of equal length (got {} and {})",
            expected.len(),
            actual.len()
        )));
    }
    if expected
        .iter()
        .chain(actual)
        .any(|s| !s.is_finite() || *s < 0.0)
    {
        return Err(ScorecardError::InvalidInput(
            "PSI shares must be finite and non-negative".into(),
        ));
    }
    Ok(expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_EPSILON), a.max(PSI_EPSILON));
            (a - e) * (a / e).ln()
        })
        .sum())
}

/// Shares of a count vector (all zero when the total is zero).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// PSI of one distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionShift {
    /// What was compared: `"score"` or the feature name.
    pub name: String,
    /// Bin labels.
    pub bins: Vec<String>,
    /// Development shares.
    pub expected: Vec<f64>,
    /// Observed shares.
    pub actual: Vec<f64>,
    /// PSI.
    pub psi: f64,
    /// `psi > threshold`.
    pub alert: bool,
}

/// PSI of the score and every feature for one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StabilityReport {
    /// Rows observed.
    pub rows: u64,
    /// Alert threshold used.
    pub threshold: f64,
    /// Score distribution shift.
    pub score: DistributionShift,
    /// Per feature, model order.
    pub features: Vec<DistributionShift>,
    /// True when the score or any feature alerts.
    pub alert: bool,
}

/// Accumulates bin counts of scored rows for a [`StabilityReport`].
#[derive(Debug, Clone)]
pub struct StabilityMonitor<'m> {
    model: &'m Scorecard,
    score_uppers: Vec<Option<i64>>,
    score_counts: Vec<u64>,
    feature_counts: Vec<Vec<u64>>,
    rows: u64,
}

impl<'m> StabilityMonitor<'m> {
    /// A monitor for `model`; fails if the model lacks development distributions.
    pub fn new(model: &'m Scorecard) -> Result<Self> {
        let dev = model.spec.development.as_ref().ok_or_else(|| {
            ScorecardError::InvalidModel("model has no development score distribution".into())
        })?;
        for f in &model.spec.features {
            if f.binning.bins().iter().any(|b| b.dev.is_none()) || f.missing.dev.is_none() {
                return Err(ScorecardError::InvalidModel(format!(
                    "feature '{}' lacks development bin counts",
                    f.name
                )));
            }
        }
        Ok(Self {
            model,
            score_uppers: dev.score_bands.iter().map(|b| b.upper).collect(),
            score_counts: vec![0; dev.score_bands.len()],
            feature_counts: model
                .spec
                .features
                .iter()
                .map(|f| vec![0; f.binning.len() + 1])
                .collect(),
            rows: 0,
        })
    }

    /// Counts one scored row (it must come from this monitor's model).
    pub fn observe(&mut self, result: &ScoreResult<'_>) {
        self.rows += 1;
        let band = self
            .score_uppers
            .partition_point(|u| u.is_some_and(|u| u < result.score));
        if let Some(c) = self.score_counts.get_mut(band) {
            *c += 1;
        }
        for c in &result.contributions {
            if let Some(n) = self
                .feature_counts
                .get_mut(c.feature_index)
                .and_then(|v| v.get_mut(c.bin_index))
            {
                *n += 1;
            }
        }
    }

    /// PSI of everything observed so far; `threshold` is usually [`DEFAULT_PSI_THRESHOLD`].
    pub fn report(&self, threshold: f64) -> Result<StabilityReport> {
        if self.rows == 0 {
            return Err(ScorecardError::InvalidInput("no rows observed".into()));
        }
        let spec = &self.model.spec;
        let dev_bands: Vec<u64> = spec
            .development
            .as_ref()
            .map(|d| d.score_bands.iter().map(|b| b.count).collect())
            .unwrap_or_default();
        let mut prev: Option<i64> = None;
        let band_labels = self
            .score_uppers
            .iter()
            .map(|u| {
                let lo = prev.map_or("-inf".to_owned(), |p| p.to_string());
                prev = *u;
                match u {
                    Some(u) => format!("({lo}, {u}]"),
                    None => format!("({lo}, +inf)"),
                }
            })
            .collect();
        let score = shift(
            "score",
            band_labels,
            &dev_bands,
            &self.score_counts,
            threshold,
        )?;
        let mut features = Vec::with_capacity(spec.features.len());
        for (f, counts) in spec.features.iter().zip(&self.feature_counts) {
            let bins: Vec<_> = f.binning.bins().into_iter().chain([&f.missing]).collect();
            let dev: Vec<u64> = bins.iter().map(|b| b.dev.map_or(0, |d| d.count)).collect();
            let labels = bins.iter().map(|b| b.label.clone()).collect();
            features.push(shift(&f.name, labels, &dev, counts, threshold)?);
        }
        let alert = score.alert || features.iter().any(|f| f.alert);
        Ok(StabilityReport {
            rows: self.rows,
            threshold,
            score,
            features,
            alert,
        })
    }
}

fn shift(
    name: &str,
    bins: Vec<String>,
    dev: &[u64],
    actual: &[u64],
    threshold: f64,
) -> Result<DistributionShift> {
    let expected = shares(dev);
    let actual = shares(actual);
    let psi = psi(&expected, &actual)?;
    Ok(DistributionShift {
        name: name.to_owned(),
        bins,
        expected,
        actual,
        psi,
        alert: psi > threshold,
    })
}

/// Scores `data` and reports PSI of score and features against the development sample.
pub fn stability(model: &Scorecard, data: &Dataset, threshold: f64) -> Result<StabilityReport> {
    let mut monitor = StabilityMonitor::new(model)?;
    for r in model.score_dataset(data)? {
        monitor.observe(&r);
    }
    monitor.report(threshold)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn identical_is_zero() {
        assert_eq!(psi(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]).unwrap(), 0.0);
    }

    #[test]
    fn hand_computed() {
        // (0.3-0.5)ln(0.3/0.5) + (0.7-0.5)ln(0.7/0.5) = 0.2·ln(5/3) + 0.2·ln(1.4)
        let expected = 0.2 * (5.0f64 / 3.0).ln() + 0.2 * 1.4f64.ln();
        let got = psi(&[0.5, 0.5], &[0.3, 0.7]).unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!((got - 0.16946).abs() < 1e-4);
    }

    #[test]
    fn empty_bin_is_floored() {
        let got = psi(&[0.5, 0.5], &[1.0, 0.0]).unwrap();
        let expected = 0.5 * 2.0f64.ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        assert!((got - expected).abs() < 1e-12);
    }

    #[test]
    fn rejects_mismatch() {
        assert!(psi(&[0.5, 0.5], &[1.0]).is_err());
        assert!(psi(&[], &[]).is_err());
        assert!(psi(&[-0.1, 1.1], &[0.5, 0.5]).is_err());
    }
}
