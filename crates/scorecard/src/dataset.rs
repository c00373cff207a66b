//! In-memory, column-oriented training data and the one rule for what counts as missing.
//!
//! A [`Dataset`] holds named columns, each either numeric (`Option<f64>`) or categorical
//! (dictionary-encoded: sorted distinct levels plus a code per row). Training, evaluation
//! and PSI work on it; reading a CSV file into it lives in [`crate::io`].
//!
//! Text is normalised the same way everywhere (training, scoring, CSV): surrounding
//! whitespace is trimmed, and the tokens in [`MISSING_TOKENS`] (and the empty string) mean
//! *missing*. A column is numeric when every non-missing value parses as a finite number.

use std::collections::BTreeMap;

use crate::error::{Result, ScorecardError};

/// Text values (after trimming) that mean "missing". Matched case-sensitively, as written.
pub const MISSING_TOKENS: &[&str] = &["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"];

/// Trims `raw` and returns `None` when it is a missing token.
pub fn normalize_text(raw: &str) -> Option<&str> {
    let t = raw.trim();
    // Every token is at most 4 bytes: skip the comparisons for longer values.
    if t.len() <= 4 && MISSING_TOKENS.contains(&t) {
        None
    } else {
        Some(t)
    }
}

/// Parses a normalised text as a finite number.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Numbers; `None` is missing. Never holds NaN or infinities.
    Numeric(Vec<Option<f64>>),
    /// Dictionary-encoded text: `levels` sorted and distinct, `codes[i]` indexes `levels`.
    Categorical {
        /// Distinct values, sorted.
        levels: Vec<String>,
        /// Per row: index into `levels`, or `None` when missing.
        codes: Vec<Option<u32>>,
    },
}

impl ColumnData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a categorical column from optional strings (levels sorted, deterministic).
    pub fn categorical<S: AsRef<str>>(values: &[Option<S>]) -> Self {
        let mut index: BTreeMap<&str, u32> = BTreeMap::new();
        for v in values.iter().flatten() {
            index.insert(v.as_ref(), 0);
        }
        let levels: Vec<String> = index.keys().map(|s| (*s).to_owned()).collect();
        for (i, code) in index.values_mut().enumerate() {
            *code = u32::try_from(i).unwrap_or(u32::MAX);
        }
        let codes = values
            .iter()
            .map(|v| v.as_ref().and_then(|s| index.get(s.as_ref()).copied()))
            .collect();
        ColumnData::Categorical { levels, codes }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name (unique within a dataset).
    pub name: String,
    /// Values.
    pub data: ColumnData,
}

/// A table of equally long, uniquely named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    columns: Vec<Column>,
    rows: usize,
}

impl Dataset {
    /// Builds a dataset; columns must have equal lengths and unique names. Numeric columns
    /// must not contain NaN or infinities (use `None` for missing).
    pub fn new(columns: Vec<Column>) -> Result<Self> {
        let rows = columns.first().map_or(0, |c| c.data.len());
        let mut seen = std::collections::BTreeSet::new();
        for c in &columns {
            if !seen.insert(c.name.as_str()) {
                return Err(ScorecardError::InvalidDataset(format!(
                    "duplicate column '{}'",
                    c.name
                )));
            }
            if c.data.len() != rows {
                return Err(ScorecardError::InvalidDataset(format!(
                    "column '{}' has {} rows, expected {rows}",
                    c.name,
                    c.data.len()
                )));
            }
            if let ColumnData::Numeric(v) = &c.data {
                if v.iter().flatten().any(|x| !x.is_finite()) {
                    return Err(ScorecardError::InvalidDataset(format!(
                        "numeric column '{}' holds a non-finite value",
                        c.name
                    )));
                }
            }
        }
        Ok(Self { columns, rows })
    }

    /// Builds a dataset from text records (e.g. parsed CSV), inferring each column's type:
    /// numeric when all non-missing values parse as finite numbers, else categorical.
    /// Columns named in `force_categorical` are categorical regardless.
    pub fn from_text_records<S: AsRef<str>>(
        header: &[S],
        records: &[Vec<String>],
        force_categorical: &[&str],
    ) -> Result<Self> {
        for (i, r) in records.iter().enumerate() {
            if r.len() != header.len() {
                return Err(ScorecardError::InvalidDataset(format!(
                    "record {} has {} fields, header has {}",
                    i + 1,
                    r.len(),
                    header.len()
                )));
            }
        }
        let mut columns = Vec::with_capacity(header.len());
        for (j, name) in header.iter().enumerate() {
            let name = name.as_ref().trim();
            let texts: Vec<Option<&str>> = records
                .iter()
                .map(|r| r.get(j).and_then(|s| normalize_text(s)))
                .collect();
            let numeric: Option<Vec<Option<f64>>> = if force_categorical.contains(&name) {
                None
            } else {
                texts
                    .iter()
                    .map(|t| match t {
                        None => Some(None),
                        Some(s) => parse_number(s).map(Some),
                    })
                    .collect()
            };
            let data = match numeric {
                Some(v) => ColumnData::Numeric(v),
                None => ColumnData::categorical(&texts),
            };
            columns.push(Column {
                name: name.to_owned(),
                data,
            });
        }
        let mut ds = Self::new(columns)?;
        ds.rows = records.len();
        Ok(ds)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Keeps only the given rows, in the given order (indexes must be in range).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.rows) {
            return Err(ScorecardError::InvalidDataset(format!(
                "row {bad} out of range ({} rows)",
                self.rows
            )));
        }
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Numeric(v) => ColumnData::Numeric(
                        rows.iter().filter_map(|&r| v.get(r).copied()).collect(),
                    ),
                    ColumnData::Categorical { levels, codes } => ColumnData::Categorical {
                        levels: levels.clone(),
                        codes: rows.iter().filter_map(|&r| codes.get(r).copied()).collect(),
                    },
                },
            })
            .collect();
        Ok(Self {
            columns,
            rows: rows.len(),
        })
    }
}
