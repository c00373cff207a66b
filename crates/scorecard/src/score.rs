//! Scoring one applicant: bin lookup, points, probability of bad and reason codes.
//!
//! The hot path ([`Scorecard::score_into`]) does no allocation once the caller's
//! [`ScoreResult`] has grown to the model's size: feature positions are resolved before
//! scoring (either the row is in model order, or a [`BoundScorecard`] maps model features
//! to input columns once), numeric bins are found by binary search over cut points,
//! categories by binary search over the sorted category names (no hashing), and labels in the result borrow from the model.
//!
//! ## Missing and unseen values
//! * [`Value::Missing`], a NaN number, or text that is a missing token
//!   ([`crate::dataset::MISSING_TOKENS`], incl. empty) → the feature's missing bin.
//! * A category outside every group → the feature's `unseen` policy: the missing bin, or
//!   the worst regular bin (fewest points). Training writes `worst_bin` by default.
//! * Text for a numeric feature must parse as a number, else scoring fails with
//!   [`ScorecardError::NotNumeric`] — a malformed input is not silently "missing".
//!
//! ## Reason codes
//! For every feature, `points_below_best = best regular bin's points − points received`.
//! Reasons are the features with a positive shortfall, largest first (ties: model order) —
//! "what lowered the score most". The missing bin can be a reason (missing information).

use crate::dataset::{normalize_text, parse_number, Column, ColumnData, Dataset};
use crate::error::{Result, ScorecardError};
use crate::model::{CompiledFeature, Lookup, Scorecard};

/// One input value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Absent.
    Missing,
    /// A number (NaN is treated as missing).
    Number(f64),
    /// Raw text: parsed as a number for numeric features, matched for categorical ones.
    Text(&'a str),
}

/// What one feature contributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution<'m> {
    /// Feature name.
    pub feature: &'m str,
    /// Index of the feature in the model.
    pub feature_index: usize,
    /// Label of the bin the value fell in.
    pub bin: &'m str,
    /// Bin index; equal to the number of regular bins for the missing bin.
    pub bin_index: usize,
    /// Points received.
    pub points: i64,
}

/// A feature that lowered the score relative to its best bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reason<'m> {
    /// Feature name.
    pub feature: &'m str,
    /// Plain-language description from the model, if any.
    pub description: Option<&'m str>,
    /// Index of the feature in the model.
    pub feature_index: usize,
    /// Label of the bin the value fell in.
    pub bin: &'m str,
    /// Best regular bin's points minus points received (> 0).
    pub points_below_best: i64,
}

/// Result of scoring one row. Reuse one across calls of `score_into` to avoid allocation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreResult<'m> {
    /// `base_points + Σ points`.
    pub score: i64,
    /// Probability of the bad outcome from the exact (unrounded) model.
    pub probability: f64,
    /// Log-odds of bad, `intercept + Σ coefficient·woe`.
    pub log_odds: f64,
    /// Per feature, in model order.
    pub contributions: Vec<Contribution<'m>>,
    /// Features that lowered the score, most first.
    pub reasons: Vec<Reason<'m>>,
}

fn bin_of(cf: &CompiledFeature, name: &str, value: Value<'_>) -> Result<usize> {
    let missing = cf.labels_missing;
    match (&cf.lookup, value) {
        (_, Value::Missing) => Ok(missing),
        (Lookup::Numeric { uppers }, Value::Number(x)) => Ok(if x.is_nan() {
            missing
        } else {
            numeric_bin(uppers, x)
        }),
        (Lookup::Numeric { uppers }, Value::Text(t)) => match normalize_text(t) {
            None => Ok(missing),
            Some(t) => match parse_number(t) {
                Some(x) => Ok(numeric_bin(uppers, x)),
                None => Err(ScorecardError::NotNumeric {
                    feature: name.to_owned(),
                    value: t.to_owned(),
                }),
            },
        },
        (
            Lookup::Categorical {
                by_text,
                unseen_bin,
                ..
            },
            Value::Text(t),
        ) => Ok(match normalize_text(t) {
            None => missing,
            Some(t) => by_text
                .binary_search_by(|(c, _)| c.as_str().cmp(t))
                .ok()
                .and_then(|i| by_text.get(i))
                .map_or(*unseen_bin, |(_, b)| *b),
        }),
        (
            Lookup::Categorical {
                by_number,
                unseen_bin,
                ..
            },
            Value::Number(x),
        ) => Ok(if x.is_nan() {
            missing
        } else {
            by_number
                .iter()
                .find(|(c, _)| *c == x)
                .map_or(*unseen_bin, |(_, b)| *b)
        }),
    }
}

/// Intervals are right-closed: the bin is the number of cut points strictly below `x`.
fn numeric_bin(uppers: &[f64], x: f64) -> usize {
    uppers.partition_point(|&u| u < x)
}

impl Scorecard {
    /// Scores a row whose values are in model feature order ([`Scorecard::feature_names`]).
    pub fn score(&self, row: &[Value<'_>]) -> Result<ScoreResult<'_>> {
        let mut out = ScoreResult::default();
        self.score_into(row, &mut out)?;
        Ok(out)
    }

    /// Like [`Scorecard::score`], writing into `out` (no allocation once `out` has capacity).
    pub fn score_into<'m>(&'m self, row: &[Value<'_>], out: &mut ScoreResult<'m>) -> Result<()> {
        if row.len() != self.compiled.len() {
            return Err(ScorecardError::RowLength {
                expected: self.compiled.len(),
                found: row.len(),
            });
        }
        self.score_with(|i| row.get(i).copied().unwrap_or(Value::Missing), out)
    }

    /// Resolves the model's features against input column names once, for scoring rows in
    /// that column layout. Extra columns are ignored; a missing one is an error.
    pub fn bind<S: AsRef<str>>(&self, columns: &[S]) -> Result<BoundScorecard<'_>> {
        let positions = self
            .spec
            .features
            .iter()
            .map(|f| {
                columns
                    .iter()
                    .position(|c| c.as_ref().trim() == f.name)
                    .ok_or_else(|| ScorecardError::MissingColumn(f.name.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BoundScorecard {
            model: self,
            positions,
            width: columns.len(),
        })
    }

    pub(crate) fn score_with<'m, 'v>(
        &'m self,
        value: impl Fn(usize) -> Value<'v>,
        out: &mut ScoreResult<'m>,
    ) -> Result<()> {
        out.contributions.clear();
        out.reasons.clear();
        let mut score = self.spec.base_points;
        let mut log_odds = self.spec.intercept;
        for (i, (cf, f)) in self.compiled.iter().zip(&self.spec.features).enumerate() {
            let bin = bin_of(cf, &f.name, value(i))?;
            let points = cf.points.get(bin).copied().unwrap_or(0);
            score += points;
            log_odds += cf.log_odds.get(bin).copied().unwrap_or(0.0);
            let label = self.bin_label(i, bin).unwrap_or("");
            out.contributions.push(Contribution {
                feature: &f.name,
                feature_index: i,
                bin: label,
                bin_index: bin,
                points,
            });
            let below = cf.best_points - points;
            if below > 0 {
                out.reasons.push(Reason {
                    feature: &f.name,
                    description: f.description.as_deref(),
                    feature_index: i,
                    bin: label,
                    points_below_best: below,
                });
            }
        }
        out.reasons.sort_unstable_by(|a, b| {
            b.points_below_best
                .cmp(&a.points_below_best)
                .then(a.feature_index.cmp(&b.feature_index))
        });
        out.score = score;
        out.log_odds = log_odds;
        out.probability = 1.0 / (1.0 + (-log_odds).exp());
        Ok(())
    }

    /// Scores every row of a dataset (columns matched by name).
    pub fn score_dataset(&self, data: &Dataset) -> Result<Vec<ScoreResult<'_>>> {
        let columns = self
            .spec
            .features
            .iter()
            .map(|f| {
                data.column(&f.name)
                    .ok_or_else(|| ScorecardError::MissingColumn(f.name.clone()))
            })
            .collect::<Result<Vec<&Column>>>()?;
        let mut results = Vec::with_capacity(data.rows());
        for r in 0..data.rows() {
            let mut out = ScoreResult::default();
            self.score_with(
                |i| {
                    columns
                        .get(i)
                        .map_or(Value::Missing, |c| column_value(c, r))
                },
                &mut out,
            )?;
            results.push(out);
        }
        Ok(results)
    }
}

/// The value of row `r` of a column.
pub(crate) fn column_value(c: &Column, r: usize) -> Value<'_> {
    match &c.data {
        ColumnData::Numeric(v) => match v.get(r).copied().flatten() {
            Some(x) => Value::Number(x),
            None => Value::Missing,
        },
        ColumnData::Categorical { levels, codes } => match codes.get(r).copied().flatten() {
            Some(code) => levels
                .get(code as usize)
                .map_or(Value::Missing, |s| Value::Text(s)),
            None => Value::Missing,
        },
    }
}

/// A scorecard bound to an input column layout (see [`Scorecard::bind`]).
#[derive(Debug, Clone)]
pub struct BoundScorecard<'m> {
    model: &'m Scorecard,
    positions: Vec<usize>,
    width: usize,
}

impl<'m> BoundScorecard<'m> {
    /// The model.
    pub fn model(&self) -> &'m Scorecard {
        self.model
    }

    /// Scores a row in the bound column layout.
    pub fn score(&self, row: &[Value<'_>]) -> Result<ScoreResult<'m>> {
        let mut out = ScoreResult::default();
        self.score_into(row, &mut out)?;
        Ok(out)
    }

    /// Like [`BoundScorecard::score`], writing into `out`.
    pub fn score_into(&self, row: &[Value<'_>], out: &mut ScoreResult<'m>) -> Result<()> {
        if row.len() != self.width {
            return Err(ScorecardError::RowLength {
                expected: self.width,
                found: row.len(),
            });
        }
        self.model.score_with(
            |i| {
                self.positions
                    .get(i)
                    .and_then(|&p| row.get(p))
                    .copied()
                    .unwrap_or(Value::Missing)
            },
            out,
        )
    }

    /// Scores a row of raw text fields (e.g. a CSV record) in the bound layout.
    pub fn score_text_into<S: AsRef<str>>(
        &self,
        fields: &[S],
        out: &mut ScoreResult<'m>,
    ) -> Result<()> {
        if fields.len() != self.width {
            return Err(ScorecardError::RowLength {
                expected: self.width,
                found: fields.len(),
            });
        }
        self.model.score_with(
            |i| {
                self.positions
                    .get(i)
                    .and_then(|&p| fields.get(p))
                    .map_or(Value::Missing, |s| Value::Text(s.as_ref()))
            },
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn right_closed_intervals() {
        let u = [10.0, 20.0];
        assert_eq!(numeric_bin(&u, -5.0), 0);
        assert_eq!(numeric_bin(&u, 10.0), 0);
        assert_eq!(numeric_bin(&u, 10.5), 1);
        assert_eq!(numeric_bin(&u, 20.0), 1);
        assert_eq!(numeric_bin(&u, 20.1), 2);
        assert_eq!(numeric_bin(&u, f64::INFINITY), 2);
        assert_eq!(numeric_bin(&u, f64::NEG_INFINITY), 0);
    }
}
