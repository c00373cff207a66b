//! Deciding: the champion scorecard's score, the policy rules, and from them the outcome,
//! grade, recommended limit, price band and reason codes. Challengers are scored on the
//! same input for comparison and decide nothing.
//!
//! ## The outcome
//! 1. Any enabled `reject` rule that fires → **reject**.
//! 2. Else a score below `thresholds.refer` → **reject**.
//! 3. Else any `refer` rule that fires, any rule that could not be evaluated, or a score
//!    below `thresholds.approve` → **refer** (manual review).
//! 4. Else → **approve**.
//!
//! The grade is the score's band in the rule set. The recommended limit is 0 for a
//! reject, else the requested amount × the grade's `limit_share`, capped at
//! `income_multiple` × monthly income when the income is known, rounded down to 100 yuan.
//!
//! ## Reason codes
//! In order: the rules that fired (their own plain-language reasons), rules that could not
//! be evaluated, the threshold that decided when the score did, then up to `max_reasons`
//! score factors — the features whose points fell furthest below their best bin, named by
//! the model's input labels, with the bin the applicant fell in (the missing bin reads
//! "not provided"). Every reason carries Chinese and English text.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zhudai_expr::Record;
use zhudai_scorecard::{ScoreResult, Scorecard, Value};

use crate::applicant::{fill, slots, units2, Applicant, Slots};
use crate::inputs::{Inputs, RowValue};
use crate::rules::{RuleAction, RuleSet};

/// The three outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    Refer,
    Reject,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Refer => "refer",
            Outcome::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "approve" => Some(Outcome::Approve),
            "refer" => Some(Outcome::Refer),
            "reject" => Some(Outcome::Reject),
            _ => None,
        }
    }
}

/// One reason code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCode {
    /// `rule`, `rule_error`, `threshold` or `score_factor`.
    pub kind: String,
    /// The rule code, `score_below_refer` / `score_below_approve`, or the feature name.
    pub code: String,
    pub zh: String,
    pub en: String,
    /// For score factors: points below the feature's best bin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_below_best: Option<i64>,
}

/// A challenger model's view of the same input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerScore {
    pub model_id: i64,
    pub score: i64,
    pub probability: f64,
    /// The outcome the challenger would have given with the same rules.
    pub outcome: Outcome,
    pub grade: String,
}

/// What the engine decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub score: i64,
    /// Probability of the bad outcome from the champion.
    pub probability: f64,
    pub grade: String,
    /// Recommended limit in fen.
    pub limit_fen: i64,
    pub price_band: String,
    pub reasons: Vec<ReasonCode>,
    /// Codes of the rules that fired.
    pub rules_fired: Vec<String>,
    pub challengers: Vec<ChallengerScore>,
}

/// Errors that stop a decision (bad input, not policy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("the amount {0} has more than two decimals")]
    Amount(String),
    #[error("model input: {0}")]
    Model(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// A model with its checked input mapping and its stored id.
#[derive(Debug, Clone)]
pub struct BoundModel {
    pub id: i64,
    pub model: Arc<Scorecard>,
    pub inputs: Arc<Inputs>,
}

/// A rule set and models ready to decide (build once, share, decide many times).
#[derive(Debug, Clone)]
pub struct Policy {
    pub rule_set_id: i64,
    pub rules: Arc<RuleSet>,
    pub champion: BoundModel,
    pub challengers: Vec<BoundModel>,
    slots: Slots,
}

/// Reusable buffers for one thread.
#[derive(Debug)]
pub struct Scratch {
    record: Record,
    row: Vec<RowValue>,
}

impl Scratch {
    pub fn new() -> Option<Scratch> {
        Some(Scratch {
            record: crate::applicant::schema()?.new_record(),
            row: Vec::new(),
        })
    }
}

/// What the rules said.
struct RuleOutcome {
    reject: bool,
    refer: bool,
    fired: Vec<(usize, RuleAction)>,
    errors: Vec<(usize, String)>,
}

impl Policy {
    pub fn new(
        rule_set_id: i64,
        rules: Arc<RuleSet>,
        champion: BoundModel,
        challengers: Vec<BoundModel>,
    ) -> Result<Policy, DecideError> {
        let slots = slots().ok_or_else(|| DecideError::Internal("applicant schema".into()))?;
        Ok(Policy {
            rule_set_id,
            rules,
            champion,
            challengers,
            slots,
        })
    }

    fn score<'m>(
        m: &'m BoundModel,
        a: &Applicant,
        scratch: &mut Scratch,
    ) -> Result<ScoreResult<'m>, DecideError> {
        m.inputs.row(a, &mut scratch.row);
        let values: Vec<Value<'_>> = scratch.row.iter().map(RowValue::as_value).collect();
        m.model
            .score(&values)
            .map_err(|e| DecideError::Model(e.to_string()))
    }

    fn run_rules(
        &self,
        a: &Applicant,
        score: i64,
        scratch: &mut Scratch,
    ) -> Result<RuleOutcome, DecideError> {
        fill(&mut scratch.record, &self.slots, a, score)
            .map_err(|_| DecideError::Amount(a.app.amount.to_string()))?;
        let mut out = RuleOutcome {
            reject: false,
            refer: false,
            fired: Vec::new(),
            errors: Vec::new(),
        };
        for (i, r) in self.rules.rules.iter().enumerate() {
            match r.condition.eval(&scratch.record) {
                Ok(true) => {
                    match r.spec.action {
                        RuleAction::Reject => out.reject = true,
                        RuleAction::Refer => out.refer = true,
                    }
                    out.fired.push((i, r.spec.action));
                }
                Ok(false) => {}
                Err(e) => {
                    out.refer = true;
                    out.errors.push((i, e.to_string()));
                }
            }
        }
        Ok(out)
    }

    fn outcome(&self, score: i64, r: &RuleOutcome) -> Outcome {
        let t = self.rules.spec.thresholds;
        if r.reject || score < t.refer {
            Outcome::Reject
        } else if r.refer || score < t.approve {
            Outcome::Refer
        } else {
            Outcome::Approve
        }
    }

    /// Decides for one applicant.
    pub fn decide(&self, a: &Applicant, scratch: &mut Scratch) -> Result<Decision, DecideError> {
        if units2(a.app.amount).is_none() {
            return Err(DecideError::Amount(a.app.amount.to_string()));
        }
        let champion = &self.champion;
        let result = Self::score(champion, a, scratch)?;
        let score = result.score;
        let rules = self.run_rules(a, score, scratch)?;
        let outcome = self.outcome(score, &rules);
        let grade = self.rules.grade_for(score);
        let limit_fen = match (outcome, grade) {
            (Outcome::Reject, _) | (_, None) => 0,
            (_, Some(g)) => {
                let mut limit = a.app.amount * g.limit_share;
                if let (Some(m), Some(inc)) = (g.income_multiple, a.applicant.monthly_income) {
                    limit = limit.min(inc * Decimal::from(m));
                }
                // Down to whole hundreds of yuan.
                let hundreds = (limit / Decimal::from(100)).floor();
                let fen = hundreds * Decimal::from(10_000);
                i64::try_from(fen.mantissa() / 10i128.pow(fen.scale())).unwrap_or(0)
            }
        };
        let mut reasons = Vec::new();
        for (i, _) in &rules.fired {
            if let Some(r) = self.rules.rules.get(*i) {
                reasons.push(ReasonCode {
                    kind: "rule".into(),
                    code: r.spec.code.clone(),
                    zh: r.spec.reason_zh.clone(),
                    en: r.spec.reason_en.clone(),
                    points_below_best: None,
                });
            }
        }
        for (i, e) in &rules.errors {
            if let Some(r) = self.rules.rules.get(*i) {
                reasons.push(ReasonCode {
                    kind: "rule_error".into(),
                    code: r.spec.code.clone(),
                    zh: format!("规则“{}”无法判断（缺少数据），转人工审核：{e}", r.spec.reason_zh),
                    en: format!(
                        "Rule “{}” could not be evaluated (missing data); referred to a person: {e}",
                        r.spec.reason_en
                    ),
                    points_below_best: None,
                });
            }
        }
        let t = self.rules.spec.thresholds;
        if !rules.reject && score < t.refer {
            reasons.push(ReasonCode {
                kind: "threshold".into(),
                code: "score_below_refer".into(),
                zh: format!("信用评分 {score} 低于拒绝线 {}", t.refer),
                en: format!("Credit score {score} is below the cut-off of {}", t.refer),
                points_below_best: None,
            });
        } else if !rules.reject && outcome == Outcome::Refer && score < t.approve {
            reasons.push(ReasonCode {
                kind: "threshold".into(),
                code: "score_below_approve".into(),
                zh: format!("信用评分 {score} 低于自动批准线 {}，需人工审核", t.approve),
                en: format!(
                    "Credit score {score} is below the automatic approval level of {}; a person reviews it",
                    t.approve
                ),
                points_below_best: None,
            });
        }
        let model = champion.model.as_ref();
        for r in result.reasons.iter().take(self.rules.spec.max_reasons) {
            let missing = match (
                result.contributions.get(r.feature_index),
                model.spec().features.get(r.feature_index),
            ) {
                (Some(c), Some(f)) => c.bin_index == f.binning.len(),
                _ => false,
            };
            let zh_label = champion.inputs.label(r.feature_index, model, true);
            let en_label = champion.inputs.label(r.feature_index, model, false);
            let (zh, en) = if missing {
                (
                    format!("{zh_label}：未提供（评分 −{}）", r.points_below_best),
                    format!("{en_label}: not provided (−{} points)", r.points_below_best),
                )
            } else {
                (
                    format!("{zh_label}：{}（评分 −{}）", r.bin, r.points_below_best),
                    format!("{en_label}: {} (−{} points)", r.bin, r.points_below_best),
                )
            };
            reasons.push(ReasonCode {
                kind: "score_factor".into(),
                code: r.feature.to_owned(),
                zh,
                en,
                points_below_best: Some(r.points_below_best),
            });
        }
        let probability = result.probability;
        drop(result);
        let mut challengers = Vec::with_capacity(self.challengers.len());
        for c in &self.challengers {
            let r = Self::score(c, a, scratch)?;
            let (cs, cp) = (r.score, r.probability);
            drop(r);
            let cr = self.run_rules(a, cs, scratch)?;
            challengers.push(ChallengerScore {
                model_id: c.id,
                score: cs,
                probability: cp,
                outcome: self.outcome(cs, &cr),
                grade: self
                    .rules
                    .grade_for(cs)
                    .map(|g| g.grade.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(Decision {
            outcome,
            score,
            probability,
            grade: grade.map(|g| g.grade.clone()).unwrap_or_default(),
            limit_fen,
            price_band: grade.map(|g| g.price_band.clone()).unwrap_or_default(),
            reasons,
            rules_fired: rules
                .fired
                .iter()
                .filter_map(|(i, _)| self.rules.rules.get(*i).map(|r| r.spec.code.clone()))
                .collect(),
            challengers,
        })
    }

    /// Only the rules (for testing a rule set against sample rows before enabling it):
    /// codes of the rules that fired, and of those that could not be evaluated with why.
    pub fn rules_only(
        rules: &RuleSet,
        a: &Applicant,
        score: i64,
        scratch: &mut Scratch,
    ) -> Result<RulesOnly, DecideError> {
        let slots = slots().ok_or_else(|| DecideError::Internal("applicant schema".into()))?;
        fill(&mut scratch.record, &slots, a, score)
            .map_err(|_| DecideError::Amount(a.app.amount.to_string()))?;
        let mut fired = Vec::new();
        let mut errors = Vec::new();
        for r in &rules.rules {
            match r.condition.eval(&scratch.record) {
                Ok(true) => fired.push(r.spec.code.clone()),
                Ok(false) => {}
                Err(e) => errors.push((r.spec.code.clone(), e.to_string())),
            }
        }
        Ok((fired, errors))
    }
}

/// Codes of the rules that fired, and (code, why) of those that could not be evaluated.
pub type RulesOnly = (Vec<String>, Vec<(String, String)>);
