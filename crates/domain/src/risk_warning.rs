//! Risk warnings (风险预警, issue #7 item 3): the vocabulary of the warning engine.
//!
//! * [`Stage`] — pre-loan (贷前), in-loan (贷中), post-loan (贷后).
//! * [`Severity`] — low, medium, high, critical; each has an emergency playbook (who is
//!   told, what must be done, by when), so a warning carries a due time.
//! * [`Category`] — the "type" of a warning on the dashboard.
//! * [`EVENT_TYPES`] — the events rules react to, with the payload fields each may carry.
//!   The catalogue is code, not data: a rule is compiled against it, so a misspelt event
//!   type is a compile error when the rule is saved, never a silently dead rule.
//! * [`Action`] — what a firing rule does besides opening the warning: assign a task to
//!   a role, freeze or cut the customer's credit line, suspend a partner.
//!
//! Rules themselves are expressions of `zhudai-expr`, compiled by the server's warning
//! engine; this module has no expression code.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            /// Parses the stored spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }
    };
}

string_enum! {
    /// When in the life of a loan a signal matters.
    Stage {
        /// 贷前: application and assessment.
        PreLoan => "pre_loan",
        /// 贷中: from disbursement while repayments run.
        InLoan => "in_loan",
        /// 贷后: overdue, collection, legal.
        PostLoan => "post_loan",
    }
}

string_enum! {
    /// How bad a warning is; orders low < medium < high < critical.
    Severity {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

string_enum! {
    /// The type of a warning, for counting and routing.
    Category {
        /// Missed or late repayments, overdue.
        Repayment => "repayment",
        /// Fraud, identity and blacklist signals.
        Fraud => "fraud",
        /// Over-borrowing (多头), limit use, income.
        Credit => "credit",
        /// Contact lost, behaviour changes.
        Behaviour => "behaviour",
        /// Court cases, enforcement.
        Legal => "legal",
        /// A funder's or partner's own risk.
        Partner => "partner",
        /// Population stability: the score or a feature drifted (PSI).
        ModelDrift => "model_drift",
        Other => "other",
    }
}

string_enum! {
    /// Where a warning stands.
    WarningStatus {
        Open => "open",
        /// Someone took it on (the due time still applies until it is closed).
        Acknowledged => "acknowledged",
        Closed => "closed",
    }
}

/// A payload field an event may carry, and its type in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventField {
    /// `event.amount`: money in yuan, `decimal(2)` (stored in fen).
    Amount,
    /// `event.days`: a number of days (days late, days past due), `int`.
    Days,
    /// `event.count`: a count (lenders queried, attempts), `int`.
    Count,
    /// `event.rate`: a rate such as a funder's overdue ratio, `decimal(6)`.
    Rate,
    /// `event.code`: a reason or list code, `string`.
    Code,
    /// `event.partner`: the partner concerned (its code), `string`.
    Partner,
}

impl EventField {
    pub const ALL: &'static [EventField] = &[
        EventField::Amount,
        EventField::Days,
        EventField::Count,
        EventField::Rate,
        EventField::Code,
        EventField::Partner,
    ];

    /// The field's name after `event.` and in `sum(event_type.<name>, 30d)`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventField::Amount => "amount",
            EventField::Days => "days",
            EventField::Count => "count",
            EventField::Rate => "rate",
            EventField::Code => "code",
            EventField::Partner => "partner",
        }
    }

    /// Whether `sum()` may add it up.
    pub fn numeric(self) -> bool {
        matches!(
            self,
            EventField::Amount | EventField::Days | EventField::Count | EventField::Rate
        )
    }
}

/// One event type of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeDef {
    /// Identifier used in rules (`count(repayment_failed, 30d)`) and in the API.
    pub code: &'static str,
    /// The stage the signal usually belongs to (rules declare their own stage).
    pub stage: Stage,
    pub zh: &'static str,
    pub en: &'static str,
    /// Payload fields it may carry; others are refused.
    pub fields: &'static [EventField],
    /// Fields it must carry.
    pub required: &'static [EventField],
}

use EventField as F;

/// The events the warning engine knows. Loans, repayments and the daily close report
/// the in- and post-loan ones; origination reports the pre-loan ones; anything else
/// may submit them through `POST /api/v1/risk/events`.
pub const EVENT_TYPES: &[EventTypeDef] = &[
    EventTypeDef {
        code: "application_submitted",
        stage: Stage::PreLoan,
        zh: "提交贷款申请",
        en: "Application submitted",
        fields: &[F::Amount, F::Code],
        required: &[F::Amount],
    },
    EventTypeDef {
        code: "credit_inquiry",
        stage: Stage::PreLoan,
        zh: "多头借贷查询",
        en: "Credit inquiry by other lenders",
        fields: &[F::Count, F::Code],
        required: &[F::Count],
    },
    EventTypeDef {
        code: "blacklist_hit",
        stage: Stage::PreLoan,
        zh: "命中黑名单",
        en: "Blacklist hit",
        fields: &[F::Code],
        required: &[F::Code],
    },
    EventTypeDef {
        code: "identity_mismatch",
        stage: Stage::PreLoan,
        zh: "身份核验不一致",
        en: "Identity mismatch",
        fields: &[F::Code],
        required: &[],
    },
    EventTypeDef {
        code: "disbursed",
        stage: Stage::InLoan,
        zh: "放款",
        en: "Loan disbursed",
        fields: &[F::Amount, F::Partner],
        required: &[F::Amount],
    },
    EventTypeDef {
        code: "repayment_made",
        stage: Stage::InLoan,
        zh: "还款成功",
        en: "Repayment made",
        fields: &[F::Amount, F::Days],
        required: &[F::Amount],
    },
    EventTypeDef {
        code: "repayment_failed",
        stage: Stage::InLoan,
        zh: "扣款失败",
        en: "Repayment failed",
        fields: &[F::Amount, F::Code],
        required: &[],
    },
    EventTypeDef {
        code: "overdue",
        stage: Stage::PostLoan,
        zh: "逾期",
        en: "Overdue",
        fields: &[F::Amount, F::Days],
        required: &[F::Days],
    },
    EventTypeDef {
        code: "contact_lost",
        stage: Stage::PostLoan,
        zh: "失联",
        en: "Contact lost",
        fields: &[F::Code],
        required: &[],
    },
    EventTypeDef {
        code: "court_case",
        stage: Stage::PostLoan,
        zh: "涉诉",
        en: "Court case",
        fields: &[F::Amount, F::Code],
        required: &[],
    },
    EventTypeDef {
        code: "fraud_report",
        stage: Stage::InLoan,
        zh: "欺诈举报",
        en: "Fraud report",
        fields: &[F::Code],
        required: &[],
    },
    EventTypeDef {
        code: "partner_signal",
        stage: Stage::InLoan,
        zh: "合作机构风险信号",
        en: "Partner risk signal",
        fields: &[F::Partner, F::Rate, F::Count, F::Code],
        required: &[F::Partner],
    },
];

/// The catalogue entry of an event type.
pub fn event_type(code: &str) -> Option<&'static EventTypeDef> {
    EVENT_TYPES.iter().find(|e| e.code == code)
}

/// What a firing rule does besides opening the warning. Actions run once, when the
/// warning opens (a repeat hit on an open warning only counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A task for everyone holding `role`, due when the severity's playbook says.
    AssignTask { role: String, title: String },
    /// Freeze the customer's credit line (no new draws until unfrozen with approval).
    FreezeLine,
    /// Cut the customer's credit line by `percent` (1–100) of its amount.
    CutLine { percent: u32 },
    /// Suspend the partner named by the event (`event.partner`) or the loan's funder.
    SuspendPartner,
}

impl Action {
    /// `assign_task`, `freeze_line`, `cut_line`, `suspend_partner`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AssignTask { .. } => "assign_task",
            Action::FreezeLine => "freeze_line",
            Action::CutLine { .. } => "cut_line",
            Action::SuspendPartner => "suspend_partner",
        }
    }

    /// The shape checks that need no database (roles are checked by the server).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Action::AssignTask { role, title } => {
                if role.trim().is_empty() {
                    return Err("assign_task needs a role".into());
                }
                if title.trim().is_empty() || title.chars().count() > 200 {
                    return Err("assign_task needs a title of 1 to 200 characters".into());
                }
                Ok(())
            }
            Action::CutLine { percent } if !(1..=100).contains(percent) => {
                Err("cut_line takes a percent from 1 to 100".into())
            }
            _ => Ok(()),
        }
    }
}

/// A rule code: `a-z 0-9 _ -`, 2–64 characters, starting with a letter.
pub fn check_rule_code(code: &str) -> Result<(), String> {
    let ok = (2..=64).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("use 2–64 characters a-z, 0-9, _ or -, starting with a letter".into())
    }
}

/// When a warning opened at `opened_at_ms` must be dealt with, by its playbook.
pub fn due_at_ms(opened_at_ms: i64, respond_within_hours: i64) -> i64 {
    opened_at_ms.saturating_add(respond_within_hours.saturating_mul(3_600_000))
}

/// Whether a warning is overdue: not closed and past its due time.
pub fn is_overdue(status: WarningStatus, due_at_ms: i64, now_ms: i64) -> bool {
    status != WarningStatus::Closed && now_ms > due_at_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()), Some(*s));
        }
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(*s));
        }
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(*c));
        }
        assert!(Severity::Low < Severity::Critical);
        assert_eq!(Severity::parse("urgent"), None);
    }

    #[test]
    fn catalogue_is_consistent() {
        let mut codes: Vec<_> = EVENT_TYPES.iter().map(|e| e.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), EVENT_TYPES.len());
        for e in EVENT_TYPES {
            for r in e.required {
                assert!(
                    e.fields.contains(r),
                    "{}: required field not allowed",
                    e.code
                );
            }
        }
        assert_eq!(
            event_type("overdue").map(|e| e.stage),
            Some(Stage::PostLoan)
        );
    }

    #[test]
    fn actions_parse_from_json_and_are_checked() {
        let a: Vec<Action> = serde_json::from_str(
            r#"[{"kind":"assign_task","role":"post_loan","title":"Call the customer"},
                {"kind":"freeze_line"},{"kind":"cut_line","percent":50},{"kind":"suspend_partner"}]"#,
        )
        .unwrap();
        assert_eq!(a.len(), 4);
        assert!(a.iter().all(|x| x.check().is_ok()));
        assert!(Action::CutLine { percent: 0 }.check().is_err());
        assert!(serde_json::from_str::<Action>(r#"{"kind":"launch_missiles"}"#).is_err());
    }

    #[test]
    fn due_and_overdue() {
        assert_eq!(due_at_ms(1_000, 2), 1_000 + 7_200_000);
        assert!(is_overdue(WarningStatus::Open, 10, 11));
        assert!(!is_overdue(WarningStatus::Closed, 10, 11));
        assert!(!is_overdue(WarningStatus::Acknowledged, 10, 10));
        assert!(check_rule_code("overdue-3x").is_ok());
        assert!(check_rule_code("3x").is_err());
    }
}
