//! Personal-information protection (PIPL 个人信息保护法): consents per purpose and per
//! recipient, versioned and withdrawable (art. 13–16, 23), and data-subject requests —
//! access/copy, correction, deletion (art. 44–50) — tracked to completion against a
//! deadline, with deletion subject to legal holds (AML record keeping).

use crate::customer::FieldProblem;
use crate::document::add_years;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// How a consent (or its withdrawal) was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    App,
    Web,
    Paper,
    Phone,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::App, Channel::Web, Channel::Paper, Channel::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::Web => "web",
            Channel::Paper => "paper",
            Channel::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }
}

/// Purposes offered in the UI. Any code matching `[a-z0-9_.]{2,64}` is accepted, so a
/// new purpose needs no release.
pub const KNOWN_PURPOSES: &[&str] = &[
    "credit_assessment",
    "credit_bureau_query",
    "funder_sharing",
    "sensitive_pi",
    "marketing",
    "collection_contact",
];

/// A purpose or recipient code: 2–64 of `a-z 0-9 _ . -`.
pub fn check_code(field: &'static str, raw: &str) -> Result<String, FieldProblem> {
    let s = raw.trim();
    let ok = (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(FieldProblem::new(
            field,
            "invalid",
            "use 2–64 lower-case letters, digits, `_`, `.` or `-` (e.g. credit_assessment, funder.bank_a)",
        ))
    }
}

/// A consent as entered.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConsentInput {
    pub purpose: Option<String>,
    /// Who receives the data (e.g. a funder's code); empty for the company's own use.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub policy_version: Option<String>,
    pub channel: Option<String>,
    /// When the customer consented (unix ms); now when absent.
    pub given_at_ms: Option<i64>,
    /// A document holding the signed consent (paper) or a recording reference.
    pub evidence_document_id: Option<i64>,
}

/// A validated consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidConsent {
    pub purpose: String,
    pub recipients: Vec<String>,
    pub policy_version: String,
    pub channel: Channel,
    pub given_at_ms: i64,
    pub evidence_document_id: Option<i64>,
}

impl ConsentInput {
    /// Validates every field at once; `now_ms` is the default time and the latest
    /// accepted one (a consent cannot be given in the future).
    pub fn validate(&self, now_ms: i64) -> Result<ValidConsent, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let purpose = match self.purpose.as_deref() {
            Some(p) if !p.trim().is_empty() => {
                check_code("purpose", p).map_err(|e| problems.push(e)).ok()
            }
            _ => {
                problems.push(FieldProblem::new(
                    "purpose",
                    "required",
                    "name the purpose the customer consents to",
                ));
                None
            }
        };
        let mut recipients = Vec::new();
        for r in &self.recipients {
            match check_code("recipients", r) {
                Ok(r) if !recipients.contains(&r) => recipients.push(r),
                Ok(_) => {}
                Err(e) => problems.push(e),
            }
        }
        if recipients.len() > 20 {
            problems.push(FieldProblem::new(
                "recipients",
                "too_many",
                "record at most 20 recipients per consent",
            ));
        }
        let policy_version = match self.policy_version.as_deref().map(str::trim) {
            Some(v)
                if !v.is_empty() && v.chars().count() <= 32 && !v.chars().any(char::is_control) =>
            {
                Some(v.to_owned())
            }
            _ => {
                problems.push(FieldProblem::new(
                    "policy_version",
                    "required",
                    "enter the version of the privacy policy the customer accepted (1–32 characters)",
                ));
                None
            }
        };
        let channel = match self.channel.as_deref().and_then(Channel::parse) {
            Some(c) => Some(c),
            None => {
                problems.push(FieldProblem::new(
                    "channel",
                    "invalid",
                    "the channel is app, web, paper or phone",
                ));
                None
            }
        };
        let given_at_ms = self.given_at_ms.unwrap_or(now_ms);
        if given_at_ms > now_ms {
            problems.push(FieldProblem::new(
                "given_at_ms",
                "in_future",
                "a consent cannot be given in the future",
            ));
        }
        match (purpose, policy_version, channel) {
            (Some(purpose), Some(policy_version), Some(channel)) if problems.is_empty() => {
                Ok(ValidConsent {
                    purpose,
                    recipients,
                    policy_version,
                    channel,
                    given_at_ms,
                    evidence_document_id: self.evidence_document_id,
                })
            }
            _ => Err(problems),
        }
    }
}

/// What [`has_consent`] needs of a stored consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFacts {
    pub purpose: String,
    pub recipients: Vec<String>,
    pub given_at_ms: i64,
    pub withdrawn_at_ms: Option<i64>,
}

/// Whether, at instant `at_ms`, the customer's consents cover `purpose` for `recipient`:
/// some consent for that purpose was given at or before `at_ms`, not withdrawn at or
/// before `at_ms`, and names the recipient (`None` = the company's own processing,
/// which any consent for the purpose covers).
pub fn has_consent(
    consents: &[ConsentFacts],
    purpose: &str,
    recipient: Option<&str>,
    at_ms: i64,
) -> bool {
    consents.iter().any(|c| {
        c.purpose == purpose
            && c.given_at_ms <= at_ms
            && c.withdrawn_at_ms.is_none_or(|w| w > at_ms)
            && recipient.is_none_or(|r| c.recipients.iter().any(|x| x == r))
    })
}

/// The kind of a data-subject request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Access and copy (查阅、复制): an export of the person's data.
    Access,
    /// Correction (更正、补充): the requested change is recorded; staff edit the customer.
    Correction,
    /// Deletion (删除): crypto-shredding, unless a legal hold applies.
    Deletion,
}

impl RequestKind {
    pub const ALL: [RequestKind; 3] = [
        RequestKind::Access,
        RequestKind::Correction,
        RequestKind::Deletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Correction => "correction",
            RequestKind::Deletion => "deletion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Open,
    InProgress,
    Completed,
    Refused,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 4] = [
        RequestStatus::Open,
        RequestStatus::InProgress,
        RequestStatus::Completed,
        RequestStatus::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::InProgress => "in_progress",
            RequestStatus::Completed => "completed",
            RequestStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }

    pub fn is_closed(self) -> bool {
        matches!(self, RequestStatus::Completed | RequestStatus::Refused)
    }

    /// open → in_progress; open or in_progress → completed / refused.
    pub fn may_become(self, next: RequestStatus) -> bool {
        matches!(
            (self, next),
            (RequestStatus::Open, RequestStatus::InProgress)
                | (
                    RequestStatus::Open | RequestStatus::InProgress,
                    RequestStatus::Completed | RequestStatus::Refused
                )
        )
    }
}

/// The due date of a request received on `received`: `days` calendar days later.
/// (PIPL practice is 15 working days; zhudai counts calendar days until a holiday
/// calendar exists, which is stricter.)
pub fn due_date(received: NaiveDate, days: u32) -> NaiveDate {
    received
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(received)
}

/// An open request past its due date.
pub fn is_overdue(status: RequestStatus, due: NaiveDate, today: NaiveDate) -> bool {
    !status.is_closed() && today > due
}

/// Why a deletion must wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// `legal_hold` (set on the customer), `aml_retention` or `contract_retention`.
    pub code: &'static str,
    /// Until when, if known.
    pub until: Option<NaiveDate>,
    pub detail: String,
}

/// One document's retention, for [`erasure_holds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionFacts {
    pub document_id: i64,
    pub class: crate::document::RetentionClass,
    pub retain_until: Option<NaiveDate>,
}

/// Everything that forbids erasing a customer on `today`: the customer's own legal hold
/// (`legal_hold_until`, inclusive) and every document under a legal-hold retention class
/// (AML 10 years; contracts 5 years after they end, indefinitely while the end is
/// unknown). Empty when the customer may be erased.
pub fn erasure_holds(
    legal_hold_until: Option<NaiveDate>,
    documents: &[RetentionFacts],
    today: NaiveDate,
) -> Vec<Hold> {
    use crate::document::RetentionClass;
    let mut holds = Vec::new();
    if let Some(until) = legal_hold_until.filter(|u| *u >= today) {
        holds.push(Hold {
            code: "legal_hold",
            until: Some(until),
            detail: format!("the customer is under a legal hold until {until}"),
        });
    }
    for d in documents.iter().filter(|d| d.class.is_legal_hold()) {
        match (d.class, d.retain_until) {
            (_, Some(until)) if until < today => {}
            (RetentionClass::Aml10y, until) => holds.push(Hold {
                code: "aml_retention",
                until,
                detail: format!(
                    "document {} is a due-diligence record kept for 10 years (AML law){}",
                    d.document_id,
                    until.map(|u| format!(", until {u}")).unwrap_or_default()
                ),
            }),
            (_, until) => holds.push(Hold {
                code: "contract_retention",
                until,
                detail: match until {
                    Some(u) => format!("document {} is a contract kept until {u}", d.document_id),
                    None => format!(
                        "document {} is a contract kept 5 years after it ends, and its end date is not recorded",
                        d.document_id
                    ),
                },
            }),
        }
    }
    holds
}

/// The latest date among holds (the earliest day erasure could be possible), `None`
/// when some hold has no end date.
pub fn holds_end(holds: &[Hold]) -> Option<NaiveDate> {
    let mut end: Option<NaiveDate> = None;
    for h in holds {
        let u = h.until?;
        end = Some(end.map_or(u, |e| e.max(u)));
    }
    end.and_then(|e| e.succ_opt())
}

/// Suggested legal hold for a customer with a closed business relationship: 10 years
/// after `ended` (AML).
pub fn aml_hold_after(ended: NaiveDate) -> Option<NaiveDate> {
    add_years(ended, 10)
}

/// Validates the free-text details of a request (what the person asks; for a correction
/// the requested change): 1–2000 characters, required for corrections.
pub fn check_details(
    kind: RequestKind,
    details: Option<&str>,
) -> Result<Option<String>, FieldProblem> {
    let d = details.map(str::trim).filter(|s| !s.is_empty());
    match d {
        None if kind == RequestKind::Correction => Err(FieldProblem::new(
            "details",
            "required",
            "describe the correction the person asks for (which field, what value)",
        )),
        Some(s) if s.chars().count() > 2000 => Err(FieldProblem::new(
            "details",
            "too_long",
            "details are at most 2000 characters",
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::RetentionClass;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn consent_validation() {
        let ok = ConsentInput {
            purpose: Some("funder_sharing".into()),
            recipients: vec!["bank_a".into(), "bank_a".into()],
            policy_version: Some("2026.1".into()),
            channel: Some("app".into()),
            ..Default::default()
        }
        .validate(1000)
        .unwrap();
        assert_eq!(ok.recipients, vec!["bank_a".to_owned()]);
        assert_eq!(ok.given_at_ms, 1000);
        let bad = ConsentInput {
            purpose: Some("Funder Sharing".into()),
            recipients: vec!["x".into()],
            channel: Some("fax".into()),
            given_at_ms: Some(2000),
            ..Default::default()
        }
        .validate(1000)
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|p| p.field).collect();
        for f in [
            "purpose",
            "recipients",
            "policy_version",
            "channel",
            "given_at_ms",
        ] {
            assert!(fields.contains(&f), "{f}: {fields:?}");
        }
    }

    #[test]
    fn consent_covers_purpose_recipient_and_time() {
        let c = vec![ConsentFacts {
            purpose: "funder_sharing".into(),
            recipients: vec!["bank_a".into()],
            given_at_ms: 100,
            withdrawn_at_ms: Some(500),
        }];
        assert!(has_consent(&c, "funder_sharing", Some("bank_a"), 100));
        assert!(has_consent(&c, "funder_sharing", None, 499));
        assert!(
            !has_consent(&c, "funder_sharing", Some("bank_a"), 500),
            "withdrawn"
        );
        assert!(
            !has_consent(&c, "funder_sharing", Some("bank_a"), 99),
            "not yet given"
        );
        assert!(
            !has_consent(&c, "funder_sharing", Some("bank_b"), 200),
            "other recipient"
        );
        assert!(!has_consent(&c, "marketing", None, 200), "other purpose");
    }

    #[test]
    fn request_lifecycle_and_deadlines() {
        use RequestStatus::*;
        assert!(Open.may_become(InProgress));
        assert!(InProgress.may_become(Completed));
        assert!(Open.may_become(Refused));
        assert!(!Completed.may_become(InProgress));
        assert!(!InProgress.may_become(Open));
        assert!(!Refused.may_become(Completed));
        let due = due_date(d(2026, 11, 29), 15);
        assert_eq!(due, d(2026, 12, 14));
        assert!(!is_overdue(Open, due, d(2026, 12, 14)));
        assert!(is_overdue(InProgress, due, d(2026, 12, 15)));
        assert!(!is_overdue(Completed, due, d(2027, 1, 1)));
        assert!(check_details(RequestKind::Correction, Some("  ")).is_err());
        assert_eq!(check_details(RequestKind::Access, None), Ok(None));
    }

    #[test]
    fn holds_block_erasure() {
        let today = d(2026, 11, 29);
        assert!(erasure_holds(None, &[], today).is_empty());
        assert!(erasure_holds(Some(d(2026, 11, 28)), &[], today).is_empty());
        let h = erasure_holds(Some(today), &[], today);
        assert_eq!(h[0].code, "legal_hold");
        let docs = vec![
            RetentionFacts {
                document_id: 1,
                class: RetentionClass::Standard3y,
                retain_until: Some(d(2029, 1, 1)),
            },
            RetentionFacts {
                document_id: 2,
                class: RetentionClass::Aml10y,
                retain_until: Some(d(2036, 11, 29)),
            },
            RetentionFacts {
                document_id: 3,
                class: RetentionClass::Contract5yAfterEnd,
                retain_until: None,
            },
            RetentionFacts {
                document_id: 4,
                class: RetentionClass::Aml10y,
                retain_until: Some(d(2020, 1, 1)),
            },
        ];
        let h = erasure_holds(None, &docs, today);
        let codes: Vec<_> = h.iter().map(|h| h.code).collect();
        assert_eq!(codes, vec!["aml_retention", "contract_retention"]);
        assert_eq!(holds_end(&h), None);
        assert_eq!(holds_end(&h[..1]), Some(d(2036, 11, 30)));
        assert_eq!(aml_hold_after(d(2026, 1, 1)), Some(d(2036, 1, 1)));
    }
}
