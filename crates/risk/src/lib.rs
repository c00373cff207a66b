//! # zhudai-risk — the credit decision engine (pure)
//!
//! A decision reads an [`Applicant`] (what is asked for and what we know about the
//! person), scores it with the champion scorecard ([`zhudai_scorecard`]) through the
//! model's input mapping ([`inputs`]), runs the policy rules of the enabled rule set
//! ([`rules`], written in the project's expression language and compiled once against the
//! typed [`applicant::schema`]), and returns the outcome approve / refer / reject, the risk
//! grade A–E, a recommended limit, a price band and plain-language reason codes in Chinese
//! and English ([`engine`]). No I/O and no clock: the same input, model and rule set give
//! the same decision, which is what makes stored decisions replayable.
//!
//! The server stores models, rule sets and decisions (migration 0013) and gathers the
//! applicant facts from customers, documents and applications; see
//! `docs/decisions/0017-credit-decisions.md`.
//!
//! ## Defaults
//! [`DEFAULT_MODEL`] is a scorecard trained by `zhudai model train` on the German credit
//! data (1,000 applicants; provenance in `defaults/README.md`), [`DEFAULT_INPUTS`] its
//! mapping from what zhudai knows, and [`DEFAULT_RULES`] the default policy. The server
//! installs them on first start so that the origination flow decides out of the box.

pub mod applicant;
pub mod engine;
pub mod inputs;
pub mod rules;

pub use applicant::{AppFacts, Applicant, FeatureValue, PersonFacts};
pub use engine::{
    BoundModel, ChallengerScore, DecideError, Decision, Outcome, Policy, ReasonCode, Scratch,
};
pub use inputs::{InputSpec, Inputs};
pub use rules::{Problem, RuleAction, RuleSet, RuleSetSpec};

/// The default scorecard (JSON, format 1).
pub const DEFAULT_MODEL: &str = include_str!("../defaults/german_credit.json");
/// The default scorecard's input mapping (JSON list of [`InputSpec`]).
pub const DEFAULT_INPUTS: &str = include_str!("../defaults/german_credit_inputs.json");
/// The default rule set (TOML).
pub const DEFAULT_RULES: &str = include_str!("../defaults/rules.toml");

#[cfg(test)]
mod tests;
