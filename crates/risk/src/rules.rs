//! Rule sets: the policy a decision applies, written in TOML with rules in the
//! expression language, checked and compiled once against [`crate::applicant::schema`].
//!
//! ```toml
//! name = "默认授信策略"
//! recent_applications_days = 30     # the 多头 window the server counts applications in
//! max_reasons = 4                   # score factors shown
//!
//! [thresholds]
//! approve = 520                     # score ≥ 520: approve (unless a rule refers/rejects)
//! refer = 480                       # 480 ≤ score < 520: refer; below 480: reject
//!
//! [[grades]]                        # highest first; the first whose min_score ≤ score
//! grade = "A"
//! min_score = 560
//! limit_share = "1.00"              # share of the requested amount
//! income_multiple = 20              # at most 20 × monthly income, when it is known
//! price_band = "P1"
//!
//! [[rules]]
//! code = "age_range"
//! action = "reject"                 # reject (hard reject) or refer (manual review)
//! when = "has(applicant.age) && (applicant.age < 18 || applicant.age > 60)"
//! reason_zh = "年龄不在18至60周岁之间"
//! reason_en = "Age is outside 18–60"
//! enabled = true                    # default
//! ```
//!
//! A rule *fires* when its condition is true. A rule whose evaluation fails (for example
//! an optional fact read without `has()`) neither passes nor fails: the decision records
//! a rule error and refers the application to a person.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zhudai_expr::Condition;

/// What a fired rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Hard reject.
    Reject,
    /// Manual review.
    Refer,
}

/// One policy rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable code (letters, digits, `_`), shown in reason codes.
    pub code: String,
    pub action: RuleAction,
    /// The condition; the rule fires when it is true.
    pub when: String,
    /// Plain-language reason (Chinese).
    pub reason_zh: String,
    /// Plain-language reason (English).
    pub reason_en: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Score thresholds of the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest score approved automatically.
    pub approve: i64,
    /// Lowest score referred to a person; below it the score rejects.
    pub refer: i64,
}

/// A risk grade: a score band with its limit and price band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeSpec {
    /// `A` … `E`.
    pub grade: String,
    /// Lowest score of the grade; absent on the last (catch-all) grade.
    #[serde(default)]
    pub min_score: Option<i64>,
    /// Share of the requested amount recommended (0–1).
    #[serde(with = "rust_decimal::serde::str")]
    pub limit_share: Decimal,
    /// At most this many monthly incomes, when the income is known.
    #[serde(default)]
    pub income_multiple: Option<i64>,
    /// Price band code.
    pub price_band: String,
}

/// A rule set document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Days back the server counts applications for `applicant.recent_applications`.
    #[serde(default = "thirty")]
    pub recent_applications_days: u32,
    /// Most score factors given as reasons.
    #[serde(default = "four")]
    pub max_reasons: usize,
    pub thresholds: Thresholds,
    pub grades: Vec<GradeSpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

fn thirty() -> u32 {
    30
}

fn four() -> usize {
    4
}

/// A problem with a rule set, located by a path such as `rules.age_range.when`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    /// `toml`, `duplicate`, `invalid`, or the expression error code (`E101` …).
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

fn problem(path: impl Into<String>, code: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        code: code.into(),
        message: message.into(),
    }
}

/// A rule compiled for evaluation.
#[derive(Debug)]
pub struct CompiledRule {
    pub spec: RuleSpec,
    pub condition: Condition,
}

/// A checked rule set: every enabled and disabled rule compiled.
#[derive(Debug)]
pub struct RuleSet {
    pub spec: RuleSetSpec,
    /// Enabled rules, in file order.
    pub rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// Parses and checks a TOML rule set; every problem is listed (a rule that does not
    /// parse, names an unknown field or is not a condition is one, even when disabled).
    pub fn from_toml(source: &str) -> Result<RuleSet, Vec<Problem>> {
        let spec: RuleSetSpec =
            toml::from_str(source).map_err(|e| vec![problem("", "toml", e.message())])?;
        Self::from_spec(spec)
    }

    /// Checks a parsed spec.
    pub fn from_spec(spec: RuleSetSpec) -> Result<RuleSet, Vec<Problem>> {
        let mut problems = Vec::new();
        let Some(schema) = crate::applicant::schema() else {
            return Err(vec![problem(
                "",
                "internal",
                "the applicant schema is broken",
            )]);
        };
        if spec.name.trim().is_empty() {
            problems.push(problem("name", "required", "give the rule set a name"));
        }
        if spec.thresholds.refer > spec.thresholds.approve {
            problems.push(problem(
                "thresholds.refer",
                "invalid",
                format!(
                    "the refer threshold ({}) is above the approve threshold ({})",
                    spec.thresholds.refer, spec.thresholds.approve
                ),
            ));
        }
        if !(1..=3650).contains(&spec.recent_applications_days) {
            problems.push(problem(
                "recent_applications_days",
                "invalid",
                "the window is 1–3650 days",
            ));
        }
        if spec.grades.is_empty() {
            problems.push(problem("grades", "required", "list at least one grade"));
        }
        let mut last_min: Option<i64> = None;
        for (i, g) in spec.grades.iter().enumerate() {
            let path = format!("grades.{}", g.grade);
            let is_last = i + 1 == spec.grades.len();
            match (g.min_score, is_last) {
                (None, false) => problems.push(problem(
                    format!("{path}.min_score"),
                    "required",
                    "only the last grade may leave min_score out",
                )),
                (Some(m), _) => {
                    if last_min.is_some_and(|l| m >= l) {
                        problems.push(problem(
                            format!("{path}.min_score"),
                            "invalid",
                            "grades go from the highest min_score down",
                        ));
                    }
                    last_min = Some(m);
                }
                (None, true) => {}
            }
            if g.limit_share < Decimal::ZERO || g.limit_share > Decimal::ONE {
                problems.push(problem(
                    format!("{path}.limit_share"),
                    "invalid",
                    "limit_share is between 0 and 1",
                ));
            }
            if g.income_multiple.is_some_and(|m| m < 0) {
                problems.push(problem(
                    format!("{path}.income_multiple"),
                    "invalid",
                    "income_multiple is not negative",
                ));
            }
            if spec.grades[..i].iter().any(|o| o.grade == g.grade) {
                problems.push(problem(&path, "duplicate", "this grade is listed twice"));
            }
        }
        let mut rules = Vec::new();
        for (i, r) in spec.rules.iter().enumerate() {
            let path = if r.code.is_empty() {
                format!("rules[{i}]")
            } else {
                format!("rules.{}", r.code)
            };
            if r.code.is_empty()
                || !r
                    .code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                problems.push(problem(
                    format!("{path}.code"),
                    "invalid",
                    "a rule code is letters, digits and _",
                ));
            }
            if spec.rules[..i].iter().any(|o| o.code == r.code) {
                problems.push(problem(&path, "duplicate", "two rules have this code"));
            }
            if r.reason_zh.trim().is_empty() || r.reason_en.trim().is_empty() {
                problems.push(problem(
                    format!("{path}.reason"),
                    "required",
                    "give the reason in Chinese and English (reason_zh, reason_en)",
                ));
            }
            match Condition::compile(&r.when, schema) {
                Ok(condition) => {
                    if r.enabled {
                        rules.push(CompiledRule {
                            spec: r.clone(),
                            condition,
                        });
                    }
                }
                Err(e) => problems.push(problem(
                    format!("{path}.when"),
                    e.code.as_str(),
                    format!(
                        "rule `{}`: {} (line {}, column {})",
                        r.code, e.message, e.line, e.column
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(RuleSet { spec, rules })
        } else {
            Err(problems)
        }
    }

    /// The grade a score falls in (the last grade when below every `min_score`).
    pub fn grade_for(&self, score: i64) -> Option<&GradeSpec> {
        self.spec
            .grades
            .iter()
            .find(|g| g.min_score.is_none_or(|m| score >= m))
            .or(self.spec.grades.last())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_default_rule_set_compiles() {
        let rs = RuleSet::from_toml(crate::DEFAULT_RULES).unwrap();
        assert!(rs.rules.len() >= 6);
        assert_eq!(rs.grade_for(10_000).unwrap().grade, "A");
        assert_eq!(rs.grade_for(-10_000).unwrap().grade, "E");
    }

    #[test]
    fn broken_rules_are_named() {
        let src = crate::DEFAULT_RULES.replace(
            "when = \"applicant.blacklisted\"",
            "when = \"applicant.blacklistd\"",
        );
        let e = RuleSet::from_toml(&src).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "rules.blacklist.when");
        assert_eq!(e[0].code, "E101");
        assert!(
            e[0].message.contains("applicant.blacklistd")
                && e[0]
                    .message
                    .contains("did you mean `applicant.blacklisted`"),
            "{}",
            e[0].message
        );
        let src = crate::DEFAULT_RULES.replace(
            "when = \"applicant.blacklisted\"",
            "when = \"applicant.blacklisted &&\"",
        );
        let e = RuleSet::from_toml(&src).unwrap_err();
        assert!(e[0].code.starts_with("E0"), "{e:?}");
        // Not a condition.
        let src = crate::DEFAULT_RULES.replace(
            "when = \"applicant.blacklisted\"",
            "when = \"app.months + 1\"",
        );
        assert!(RuleSet::from_toml(&src).is_err());
        assert_eq!(RuleSet::from_toml("name = 1").unwrap_err()[0].code, "toml");
    }
}
