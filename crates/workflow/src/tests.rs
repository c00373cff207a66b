#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::definition::NodeSpec;
use crate::engine::Level;
use crate::*;
use rust_decimal::Decimal;
use zhudai_expr::Record;

fn origination() -> Definition {
    Definition::from_toml(ORIGINATION).unwrap_or_else(|p| panic!("{p:#?}"))
}

fn facts(
    def: &Definition,
    amount_yuan: i64,
    grade: &str,
    outcome: &str,
    docs: bool,
    funder: bool,
) -> Record {
    let mut r = def.new_facts();
    let s = |n: &str| def.schema.slot(n).unwrap();
    r.set_decimal(s("app.amount"), Decimal::new(amount_yuan * 100, 2))
        .unwrap();
    r.set_int(s("app.months"), 12).unwrap();
    r.set_str(s("decision.grade"), grade).unwrap();
    r.set_str(s("decision.outcome"), outcome).unwrap();
    r.set_bool(s("documents.complete"), docs).unwrap();
    r.set_bool(s("funder.approved"), funder).unwrap();
    r
}

fn who(id: i64, roles: &[&str]) -> Actor {
    Actor {
        user_id: id,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn spec_with(edit: impl FnOnce(&mut DefinitionSpec)) -> Result<Definition, Vec<Problem>> {
    let mut spec: DefinitionSpec = toml::from_str(ORIGINATION).unwrap();
    edit(&mut spec);
    Definition::compile(spec)
}

#[test]
fn the_default_flow_compiles_and_draws() {
    let def = origination();
    assert_eq!(def.nodes.len(), 11);
    let edges = def.edges();
    assert!(edges.iter().any(|(f, t, on, g)| f == "routing"
        && t == "contract"
        && on == "event:funder_decided"
        && g.as_deref() == Some("funder.approved")));
}

#[test]
fn broken_definitions_are_refused_naming_the_problem() {
    // An unreachable node.
    let p = spec_with(|s| {
        s.transitions
            .retain(|t| !(t.from == "contract" && t.to == "withdrawn"));
        s.nodes.push(NodeSpec {
            id: "island".into(),
            ..s.nodes[10].clone()
        });
    })
    .unwrap_err();
    assert!(
        p.iter()
            .any(|p| p.code == "unreachable" && p.message.contains("island")),
        "{p:#?}"
    );
    // A guard that does not parse, and one that names an unknown field.
    let p =
        spec_with(|s| s.transitions[2].guard = Some("documents.complete &&".into())).unwrap_err();
    assert_eq!(p[0].path, "transitions[2].guard");
    assert_eq!(p[0].code, "guard");
    let p = spec_with(|s| s.nodes[3].chain[0].when = Some("app.amont <= 1".into())).unwrap_err();
    assert_eq!(p[0].path, "nodes[approval].chain[0].when");
    assert!(
        p[0].message.contains("did you mean `app.amount`"),
        "{}",
        p[0].message
    );
    // A task without an assignee; an approval without a chain.
    let p = spec_with(|s| {
        s.nodes[1].assignee = None;
        s.nodes[3].chain.clear();
    })
    .unwrap_err();
    assert!(p
        .iter()
        .any(|p| p.path == "nodes[doc_review].assignee" && p.code == "no_assignee"));
    assert!(p
        .iter()
        .any(|p| p.path == "nodes[approval].chain" && p.code == "no_assignee"));
    // Unknown nodes, actions and field types; a dead end.
    let p = spec_with(|s| {
        s.transitions[0].to = "nowhere".into();
        s.transitions[1].on = "jump".into();
        s.fields.insert("x".into(), "float".into());
    })
    .unwrap_err();
    let codes: Vec<_> = p.iter().map(|p| p.code).collect();
    assert!(
        codes.contains(&"unknown_node")
            && codes.contains(&"unknown_action")
            && codes.contains(&"type"),
        "{codes:?}"
    );
    let p = spec_with(|s| s.transitions.retain(|t| t.from != "contract")).unwrap_err();
    assert!(
        p.iter()
            .any(|p| p.code == "dead_end" && p.message.contains("contract")),
        "{p:#?}"
    );
    // The file format itself.
    assert_eq!(
        Definition::from_toml("code = ").unwrap_err()[0].code,
        "syntax"
    );
    assert_eq!(
        Definition::from_json("{\"code\": \"x\"}").unwrap_err()[0].code,
        "syntax"
    );
}

#[test]
fn a_full_journey_with_four_eyes() {
    let def = origination();
    let cm = who(1, &["customer_manager"]);
    let verifier = who(2, &["doc_verifier"]);
    let l1 = who(3, &["approver_l1"]);
    let l2 = who(4, &["approver_l2"]);
    let ops = who(5, &["operations"]);
    let f = facts(&def, 100_000, "B", "pass", true, true);
    let st = start(&def);
    // Only a customer manager drafts and submits.
    assert_eq!(
        apply(&def, &st, &verifier, &Action::Submit, &f).unwrap_err(),
        Refusal::NotAssignee("customer_manager".into())
    );
    let st = apply(&def, &st, &cm, &Action::Submit, &f).unwrap().state;
    assert_eq!((st.node.as_str(), st.submitter), ("doc_review", Some(1)));
    // The submitter may not verify, even holding the verifier role.
    let both = who(1, &["customer_manager", "doc_verifier"]);
    assert_eq!(
        apply(&def, &st, &both, &Action::Approve, &f).unwrap_err(),
        Refusal::Submitter
    );
    // Documents incomplete: verification cannot pass.
    let incomplete = facts(&def, 100_000, "B", "pass", false, true);
    assert!(matches!(
        apply(&def, &st, &verifier, &Action::Approve, &incomplete).unwrap_err(),
        Refusal::NoTransition { .. }
    ));
    // Verified → automatic decision (pass-through) → approval chain of two levels for 100k.
    let a = apply(&def, &st, &verifier, &Action::Approve, &f).unwrap();
    let st = a.state;
    assert_eq!(st.node, "approval");
    assert_eq!(
        a.steps
            .iter()
            .map(|s| s.to_node.as_str())
            .collect::<Vec<_>>(),
        vec!["decision", "approval"]
    );
    assert_eq!(
        st.levels
            .iter()
            .map(|l| l.role.as_str())
            .collect::<Vec<_>>(),
        vec!["approver_l1", "approver_l2"]
    );
    // The submitter never approves; the wrong level's role may not act.
    let cm_l1 = who(1, &["customer_manager", "approver_l1"]);
    assert_eq!(
        apply(&def, &st, &cm_l1, &Action::Approve, &f).unwrap_err(),
        Refusal::Submitter
    );
    assert_eq!(
        apply(&def, &st, &l2, &Action::Approve, &f).unwrap_err(),
        Refusal::NotAssignee("approver_l1".into())
    );
    let st = apply(&def, &st, &l1, &Action::Approve, &f).unwrap().state;
    assert_eq!((st.node.as_str(), st.level), ("approval", 1));
    // Nobody approves twice in one chain, even with both roles.
    let l1_l2 = who(3, &["approver_l1", "approver_l2"]);
    assert_eq!(
        apply(&def, &st, &l1_l2, &Action::Approve, &f).unwrap_err(),
        Refusal::Twice
    );
    assert_eq!(
        apply(&def, &st, &l2, &Action::Reject { reason: " ".into() }, &f).unwrap_err(),
        Refusal::ReasonRequired
    );
    let st = apply(&def, &st, &l2, &Action::Approve, &f).unwrap().state;
    assert_eq!(st.node, "routing");
    // The funder's decision arrives as an event; the contract is signed; the money lands.
    assert!(apply(
        &def,
        &st,
        &ops,
        &Action::Event {
            name: "disbursed".into()
        },
        &f
    )
    .is_err());
    let st = apply(
        &def,
        &st,
        &Actor::system(),
        &Action::Event {
            name: "funder_decided".into(),
        },
        &f,
    )
    .unwrap()
    .state;
    assert_eq!(st.node, "contract");
    assert_eq!(
        apply(&def, &st, &l1, &Action::Complete, &f).unwrap_err(),
        Refusal::NotAssignee("operations".into())
    );
    let st = apply(&def, &st, &ops, &Action::Complete, &f).unwrap().state;
    let st = apply(
        &def,
        &st,
        &Actor::system(),
        &Action::Event {
            name: "disbursed".into(),
        },
        &f,
    )
    .unwrap()
    .state;
    assert_eq!(
        st.status,
        Status::Finished {
            outcome: "disbursed".into()
        }
    );
    assert_eq!(st.path.first().map(String::as_str), Some("draft"));
    assert_eq!(st.path.last().map(String::as_str), Some("loan"));
    assert!(matches!(
        apply(&def, &st, &ops, &Action::Complete, &f).unwrap_err(),
        Refusal::Finished(_)
    ));
}

#[test]
fn chains_follow_amount_and_grade() {
    let def = origination();
    let roles = |amount: i64, grade: &str| -> Vec<(String, u32)> {
        let f = facts(&def, amount, grade, "pass", true, true);
        let st = apply(
            &def,
            &start(&def),
            &who(1, &["customer_manager"]),
            &Action::Submit,
            &f,
        )
        .unwrap()
        .state;
        let st = apply(&def, &st, &who(2, &["doc_verifier"]), &Action::Approve, &f)
            .unwrap()
            .state;
        st.levels
            .iter()
            .map(|l: &Level| (l.role.clone(), l.count))
            .collect()
    };
    assert_eq!(roles(50_000, "A"), vec![("approver_l1".into(), 1)]);
    assert_eq!(roles(50_001, "A").len(), 2);
    assert_eq!(roles(200_000, "C").len(), 2);
    let big = roles(200_001, "A");
    assert_eq!(big.len(), 3);
    assert_eq!(big[2], ("committee".into(), 2));
    assert_eq!(
        roles(10_000, "E").len(),
        3,
        "high risk goes to the committee whatever the amount"
    );
    // A decision of `reject` ends the instance without a human.
    let f = facts(&def, 10_000, "A", "reject", true, true);
    let st = apply(
        &def,
        &start(&def),
        &who(1, &["customer_manager"]),
        &Action::Submit,
        &f,
    )
    .unwrap()
    .state;
    let st = apply(&def, &st, &who(2, &["doc_verifier"]), &Action::Approve, &f)
        .unwrap()
        .state;
    assert_eq!(
        st.status,
        Status::Finished {
            outcome: "rejected".into()
        }
    );
}

#[test]
fn committee_needs_two_distinct_members_and_actions_reshape_the_chain() {
    let def = origination();
    let f = facts(&def, 500_000, "A", "pass", true, true);
    let st = apply(
        &def,
        &start(&def),
        &who(1, &["customer_manager"]),
        &Action::Submit,
        &f,
    )
    .unwrap()
    .state;
    let st = apply(&def, &st, &who(2, &["doc_verifier"]), &Action::Approve, &f)
        .unwrap()
        .state;
    // Transfer level 1 to a specific approver: other holders of the role are now refused.
    let st = apply(
        &def,
        &st,
        &who(3, &["approver_l1"]),
        &Action::Transfer { to_user: 30 },
        &f,
    )
    .unwrap()
    .state;
    assert_eq!(
        apply(&def, &st, &who(3, &["approver_l1"]), &Action::Approve, &f).unwrap_err(),
        Refusal::AssignedToOther
    );
    assert_eq!(
        apply(
            &def,
            &st,
            &who(30, &["approver_l1"]),
            &Action::Transfer { to_user: 1 },
            &f
        )
        .unwrap_err(),
        Refusal::Submitter
    );
    // Add an approver before the current level: they decide first.
    let st = apply(
        &def,
        &st,
        &who(30, &["approver_l1"]),
        &Action::AddApprover {
            user: 40,
            before: true,
        },
        &f,
    )
    .unwrap()
    .state;
    assert_eq!(st.levels.len(), 4);
    assert_eq!(
        apply(&def, &st, &who(30, &["approver_l1"]), &Action::Approve, &f).unwrap_err(),
        Refusal::AssignedToOther
    );
    let st = apply(
        &def,
        &st,
        &who(40, &["risk_reviewer"]),
        &Action::Approve,
        &f,
    )
    .unwrap()
    .state;
    let st = apply(&def, &st, &who(30, &["approver_l1"]), &Action::Approve, &f)
        .unwrap()
        .state;
    let st = apply(&def, &st, &who(4, &["approver_l2"]), &Action::Approve, &f)
        .unwrap()
        .state;
    let st = apply(&def, &st, &who(5, &["committee"]), &Action::Approve, &f)
        .unwrap()
        .state;
    assert_eq!(st.node, "approval", "one committee vote is not enough");
    assert_eq!(
        apply(&def, &st, &who(5, &["committee"]), &Action::Approve, &f).unwrap_err(),
        Refusal::Twice
    );
    // Return to verification (visited), not to an unvisited node.
    assert_eq!(
        apply(
            &def,
            &st,
            &who(6, &["committee"]),
            &Action::Return {
                to: "contract".into(),
                reason: "x".into()
            },
            &f
        )
        .unwrap_err(),
        Refusal::NotVisited("contract".into())
    );
    let back = apply(
        &def,
        &st,
        &who(6, &["committee"]),
        &Action::Return {
            to: "doc_review".into(),
            reason: "收入证明不清晰".into(),
        },
        &f,
    )
    .unwrap();
    assert_eq!(back.state.node, "doc_review");
    assert_eq!(back.steps[0].detail.as_deref(), Some("收入证明不清晰"));
    // Or the second member approves and the instance moves on.
    let st = apply(&def, &st, &who(6, &["committee"]), &Action::Approve, &f)
        .unwrap()
        .state;
    assert_eq!(st.node, "routing");
    // Only the submitter withdraws; a funder decline ends it as rejected.
    assert_eq!(
        apply(
            &def,
            &st,
            &who(2, &["doc_verifier"]),
            &Action::Withdraw { reason: "x".into() },
            &f
        )
        .unwrap_err(),
        Refusal::NotSubmitter
    );
    let declined = facts(&def, 500_000, "A", "pass", true, false);
    let st = apply(
        &def,
        &st,
        &Actor::system(),
        &Action::Event {
            name: "funder_decided".into(),
        },
        &declined,
    )
    .unwrap()
    .state;
    assert_eq!(
        st.status,
        Status::Finished {
            outcome: "rejected".into()
        }
    );
}

#[test]
fn random_actors_never_break_four_eyes() {
    // Random sequences of actions by random people holding random roles: whatever is
    // accepted, the submitter never approves and nobody approves twice in one chain.
    let def = origination();
    let roles = [
        "customer_manager",
        "doc_verifier",
        "approver_l1",
        "approver_l2",
        "committee",
        "operations",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut approvals_seen = 0;
    for run in 0..400 {
        let f = facts(
            &def,
            [30_000, 150_000, 900_000][run % 3],
            "B",
            "pass",
            true,
            true,
        );
        let mut st = start(&def);
        let mut chain_approvers: Vec<i64> = Vec::new();
        for _ in 0..40 {
            let user = next(5) as i64 + 1;
            let mut held: Vec<&str> = vec![roles[next(6) as usize]];
            if next(2) == 0 {
                held.push(roles[next(6) as usize]);
            }
            let actor = who(user, &held);
            let action = match next(6) {
                0 => Action::Submit,
                1 => Action::Complete,
                2 | 3 => Action::Approve,
                4 => Action::Event {
                    name: "funder_decided".into(),
                },
                _ => Action::Event {
                    name: "disbursed".into(),
                },
            };
            let before = st.node.clone();
            if let Ok(a) = apply(&def, &st, &actor, &action, &f) {
                if action == Action::Approve && before == "approval" {
                    approvals_seen += 1;
                    assert_ne!(Some(user), st.submitter, "the submitter approved");
                    assert!(
                        !chain_approvers.contains(&user),
                        "user {user} approved twice"
                    );
                    chain_approvers.push(user);
                }
                if a.state.node != "approval" {
                    chain_approvers.clear();
                }
                st = a.state;
            }
        }
    }
    assert!(
        approvals_seen > 100,
        "the random walk reached approvals ({approvals_seen})"
    );
}

/// Issue #6 item 4: an approver's step records the chain level (1-based) and its role,
/// so analytics can count decisions per level; other steps carry none.
#[test]
fn approvers_steps_carry_their_level() {
    let def = origination();
    let f = facts(&def, 100_000, "B", "pass", true, true);
    let st = start(&def);
    let submitted = apply(
        &def,
        &st,
        &who(1, &["customer_manager"]),
        &Action::Submit,
        &f,
    )
    .unwrap();
    assert!(submitted.steps.iter().all(|s| s.level.is_none()));
    let st = apply(
        &def,
        &submitted.state,
        &who(2, &["doc_verifier"]),
        &Action::Approve,
        &f,
    )
    .unwrap()
    .state;
    let l1 = apply(&def, &st, &who(3, &["approver_l1"]), &Action::Approve, &f).unwrap();
    assert_eq!(
        (l1.steps[0].level, l1.steps[0].level_role.as_deref()),
        (Some(1), Some("approver_l1"))
    );
    let rejected = apply(
        &def,
        &l1.state,
        &who(4, &["approver_l2"]),
        &Action::Reject {
            reason: "负债率过高".into(),
        },
        &f,
    )
    .unwrap();
    assert_eq!(rejected.state.node, "rejected");
    assert_eq!(
        (
            rejected.steps[0].level,
            rejected.steps[0].level_role.as_deref(),
            rejected.steps[0].detail.as_deref()
        ),
        (Some(2), Some("approver_l2"), Some("负债率过高"))
    );
    // A return by an approver records its level too.
    let back = apply(
        &def,
        &l1.state,
        &who(4, &["approver_l2"]),
        &Action::Return {
            to: "doc_review".into(),
            reason: "补充材料".into(),
        },
        &f,
    )
    .unwrap();
    assert_eq!(back.steps[0].level, Some(2));
    assert_eq!(back.state.node, "doc_review");
}
