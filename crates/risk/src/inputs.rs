//! How a scorecard's features are fed from what zhudai knows about an applicant.
//!
//! A model is developed on someone's data with its own column names (German credit:
//! `duration_in_month`, `age_in_years` …). Its *input mapping*, stored with the model
//! version, says for each feature which applicant fact feeds it, an optional value map
//! (e.g. `true` → `"yes, registered under the customers name"`), and the plain-language
//! labels used in reason codes. A feature with no mapping, and a fact that is absent, score
//! in the feature's **missing bin**; a value given in the applicant's `features` wins over
//! the mapping.
//!
//! ```json
//! [ { "feature": "duration_in_month", "from": "app.months",
//!     "label_zh": "借款期限", "label_en": "Loan term" },
//!   { "feature": "telephone", "from": "applicant.has_phone",
//!     "map": { "true": "yes, registered under the customers name", "false": "none" } },
//!   { "feature": "status_of_existing_checking_account", "label_zh": "支票账户状况" } ]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zhudai_scorecard::{Scorecard, Value};

use crate::applicant::{field_value, Applicant, FieldValue};
use crate::rules::Problem;

/// One feature's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Model feature name.
    pub feature: String,
    /// Applicant field path (see [`crate::applicant::FIELDS`]); absent: only a value given
    /// in `features` feeds it, else the missing bin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Fact value (as text) → model value; a value not in the map is passed through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_zh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_en: Option<String>,
}

/// A mapping checked against a model: one entry per model feature, in model order.
#[derive(Debug, Clone)]
pub struct Inputs {
    per_feature: Vec<InputSpec>,
}

impl Inputs {
    /// Checks `specs` against `model`: every feature named must be the model's, at most
    /// once; every `from` must be an applicant field. Features without an entry get an
    /// empty one (missing unless given directly).
    pub fn new(specs: &[InputSpec], model: &Scorecard) -> Result<Inputs, Vec<Problem>> {
        let mut problems = Vec::new();
        let names: Vec<&str> = model.feature_names().collect();
        for (i, s) in specs.iter().enumerate() {
            let path = format!("inputs.{}", s.feature);
            if !names.contains(&s.feature.as_str()) {
                problems.push(Problem {
                    path: path.clone(),
                    code: "unknown_feature".into(),
                    message: format!("the model has no feature `{}`", s.feature),
                });
            }
            if specs[..i].iter().any(|o| o.feature == s.feature) {
                problems.push(Problem {
                    path: path.clone(),
                    code: "duplicate".into(),
                    message: "this feature is mapped twice".into(),
                });
            }
            if let Some(from) = &s.from {
                if !crate::applicant::FIELDS.iter().any(|(f, _)| f == from)
                    || from == "score.points"
                {
                    problems.push(Problem {
                        path: format!("{path}.from"),
                        code: "unknown_field".into(),
                        message: format!("`{from}` is not an applicant fact"),
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let per_feature = names
            .iter()
            .map(|n| {
                specs
                    .iter()
                    .find(|s| s.feature == *n)
                    .cloned()
                    .unwrap_or_else(|| InputSpec {
                        feature: (*n).to_owned(),
                        from: None,
                        map: BTreeMap::new(),
                        label_zh: None,
                        label_en: None,
                    })
            })
            .collect();
        Ok(Inputs { per_feature })
    }

    /// The mapping, in model order.
    pub fn specs(&self) -> &[InputSpec] {
        &self.per_feature
    }

    /// Label of feature `i` in Chinese or English (falls back to the model's description,
    /// then the feature name).
    pub fn label<'a>(&'a self, i: usize, model: &'a Scorecard, zh: bool) -> &'a str {
        let spec = self.per_feature.get(i);
        let own = spec.and_then(|s| {
            if zh {
                s.label_zh.as_deref()
            } else {
                s.label_en.as_deref()
            }
        });
        own.or_else(|| {
            model
                .spec()
                .features
                .get(i)
                .and_then(|f| f.description.as_deref())
        })
        .or(spec.map(|s| s.feature.as_str()))
        .unwrap_or("")
    }

    /// The model row for `a` (owned texts in `buf`, values borrowing from it).
    pub fn row(&self, a: &Applicant, buf: &mut Vec<RowValue>) {
        buf.clear();
        for s in &self.per_feature {
            if let Some(given) = a.features.get(&s.feature) {
                buf.push(match given {
                    None => RowValue::Missing,
                    Some(crate::applicant::FeatureValue::Number(x)) => RowValue::Number(*x),
                    Some(crate::applicant::FeatureValue::Text(t)) => RowValue::Text(t.clone()),
                });
                continue;
            }
            let v = s.from.as_deref().and_then(|f| field_value(a, f));
            buf.push(match v {
                None => RowValue::Missing,
                Some(FieldValue::Number(x)) => match s.map.get(&fmt_number(x)) {
                    Some(m) => RowValue::Text(m.clone()),
                    None => RowValue::Number(x),
                },
                Some(FieldValue::Text(t)) => match s.map.get(&t) {
                    Some(m) => RowValue::Text(m.clone()),
                    None => RowValue::Text(t),
                },
            });
        }
    }
}

fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// An owned model input value.
#[derive(Debug, Clone, PartialEq)]
pub enum RowValue {
    Missing,
    Number(f64),
    Text(String),
}

impl RowValue {
    /// As the scorecard's borrowed value.
    pub fn as_value(&self) -> Value<'_> {
        match self {
            RowValue::Missing => Value::Missing,
            RowValue::Number(x) => Value::Number(*x),
            RowValue::Text(t) => Value::Text(t),
        }
    }
}
