#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::*;
use zhudai_scorecard::Scorecard;

fn default_policy() -> Policy {
    let model = Arc::new(Scorecard::from_json(DEFAULT_MODEL).unwrap());
    let specs: Vec<InputSpec> = serde_json::from_str(DEFAULT_INPUTS).unwrap();
    let inputs = Arc::new(Inputs::new(&specs, &model).unwrap());
    let rules = Arc::new(RuleSet::from_toml(DEFAULT_RULES).unwrap());
    Policy::new(
        1,
        rules,
        BoundModel {
            id: 1,
            model: model.clone(),
            inputs: inputs.clone(),
        },
        vec![BoundModel {
            id: 2,
            model,
            inputs,
        }],
    )
    .unwrap()
}

fn applicant(json: &str) -> Applicant {
    serde_json::from_str(json).unwrap()
}

#[test]
fn a_plain_applicant_is_approved_with_reasons() {
    let p = default_policy();
    let mut s = Scratch::new().unwrap();
    let a = applicant(
        r#"{"app":{"amount":"30000.00","months":12,"product":"consumer_std"},"applicant":{"age":41,"monthly_income":"12000.00","identity_match":true,"has_phone":true}}"#,
    );
    let d = p.decide(&a, &mut s).unwrap();
    // 512 base + 6 (12 months) + 6 (age 41); every other feature in its missing bin.
    assert_eq!(d.score, 524);
    assert_eq!(d.outcome, Outcome::Approve);
    assert_eq!(d.grade, "C");
    assert_eq!(d.price_band, "P3");
    // 80% of 30,000.
    assert_eq!(d.limit_fen, 2_400_000);
    assert!(d.rules_fired.is_empty());
    let factors: Vec<&ReasonCode> = d
        .reasons
        .iter()
        .filter(|r| r.kind == "score_factor")
        .collect();
    assert_eq!(factors.len(), 4);
    assert_eq!(factors[0].code, "status_of_existing_checking_account");
    assert!(
        factors[0].zh.contains("未提供") && factors[0].en.contains("not provided"),
        "{:?}",
        factors[0]
    );
    assert!(factors
        .windows(2)
        .all(|w| w[0].points_below_best >= w[1].points_below_best));
    // The challenger (here the same model) is scored alongside and decides nothing.
    assert_eq!(d.challengers.len(), 1);
    assert_eq!(d.challengers[0].score, d.score);
    // Same input, same decision.
    assert_eq!(p.decide(&a, &mut s).unwrap(), d);
}

#[test]
fn hard_rules_reject_and_soft_rules_refer() {
    let p = default_policy();
    let mut s = Scratch::new().unwrap();
    let d = p
        .decide(&applicant(r#"{"app":{"amount":"30000","months":12},"applicant":{"age":17,"blacklisted":true}}"#), &mut s)
        .unwrap();
    assert_eq!(d.outcome, Outcome::Reject);
    assert_eq!(d.rules_fired, ["age_range", "blacklist"]);
    assert_eq!(d.limit_fen, 0);
    assert_eq!(d.reasons[0].kind, "rule");
    assert!(d.reasons[0].zh.contains("年龄"));
    let d = p
        .decide(&applicant(r#"{"app":{"amount":"30000","months":12},"applicant":{"age":30,"recent_applications":3,"duplicate_phone":true}}"#), &mut s)
        .unwrap();
    assert_eq!(d.outcome, Outcome::Refer);
    assert_eq!(d.rules_fired, ["multi_lending_soft", "duplicate_contact"]);
    // Unknown age: the refer rule, not an evaluation error.
    let d = p
        .decide(
            &applicant(r#"{"app":{"amount":"30000","months":12}}"#),
            &mut s,
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::Refer);
    assert_eq!(d.rules_fired, ["age_unknown"]);
    // Income caps the limit: grade C (income multiple 10) on 2,000 a month.
    let d = p
        .decide(&applicant(r#"{"app":{"amount":"30000","months":12},"applicant":{"age":41,"monthly_income":"2000"}}"#), &mut s)
        .unwrap();
    assert_eq!((d.outcome, d.limit_fen), (Outcome::Approve, 2_000_000));
}

#[test]
fn low_scores_refer_or_reject_by_threshold() {
    let p = default_policy();
    let mut s = Scratch::new().unwrap();
    // 48 months and age 22: 512 − 18 − 12 = 482: between refer (460) and approve (500).
    let d = p
        .decide(
            &applicant(r#"{"app":{"amount":"30000","months":48},"applicant":{"age":22}}"#),
            &mut s,
        )
        .unwrap();
    assert_eq!(
        (d.score, d.outcome, d.grade.as_str()),
        (482, Outcome::Refer, "D")
    );
    assert!(d.reasons.iter().any(|r| r.code == "score_below_approve"));
    // Given features: a bad checking account and history push it below 460.
    let d = p
        .decide(&applicant(r#"{"app":{"amount":"30000","months":48},"applicant":{"age":22},
            "features":{"status_of_existing_checking_account":"... < 0 DM","credit_history":"no credits taken/ all credits paid back duly"}}"#), &mut s)
        .unwrap();
    assert_eq!(d.score, 482 - 18 - 24);
    assert_eq!(d.outcome, Outcome::Reject);
    assert!(d.reasons.iter().any(|r| r.code == "score_below_refer"));
    let f = d
        .reasons
        .iter()
        .find(|r| r.code == "credit_history")
        .unwrap();
    assert!(
        f.en.contains("Credit history: all credits at this bank paid back duly"),
        "{f:?}"
    );
}

#[test]
fn an_evaluation_error_refers() {
    let src = DEFAULT_RULES.replace(
        "when = \"!has(applicant.age)\"",
        "when = \"applicant.age > 200\"",
    );
    let rules = Arc::new(RuleSet::from_toml(&src).unwrap());
    let base = default_policy();
    let p = Policy::new(2, rules, base.champion.clone(), vec![]).unwrap();
    let mut s = Scratch::new().unwrap();
    let d = p
        .decide(
            &applicant(
                r#"{"app":{"amount":"30000","months":12},"applicant":{"monthly_income":"9000"}}"#,
            ),
            &mut s,
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::Refer);
    let e = d.reasons.iter().find(|r| r.kind == "rule_error").unwrap();
    assert_eq!(e.code, "age_unknown");
}

#[test]
fn inputs_are_checked_against_the_model() {
    let model = Scorecard::from_json(DEFAULT_MODEL).unwrap();
    let bad = vec![
        InputSpec {
            feature: "nope".into(),
            from: None,
            map: Default::default(),
            label_zh: None,
            label_en: None,
        },
        InputSpec {
            feature: "age_in_years".into(),
            from: Some("applicant.agee".into()),
            map: Default::default(),
            label_zh: None,
            label_en: None,
        },
    ];
    let e = Inputs::new(&bad, &model).unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].code, "unknown_feature");
    assert_eq!(e[1].code, "unknown_field");
}
