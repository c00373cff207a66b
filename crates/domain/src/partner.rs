//! Partners (合作机构): funders (资金方), credit enhancers (增信机构), data providers and
//! collection agencies. Their kinds, their status lifecycle, the admission (准入) checklist
//! rules with four-eyes approval, and whether a funder may take new loans today.
//!
//! Under 金规〔2025〕9号 a bank works only with platforms and credit enhancers on its
//! published partner list (名单制): origination with a funder whose list does not include
//! us is refused ([`may_originate`]).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// What a partner does for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    Funder,
    CreditEnhancer,
    DataProvider,
    CollectionAgency,
}

impl PartnerKind {
    pub const ALL: [PartnerKind; 4] = [
        PartnerKind::Funder,
        PartnerKind::CreditEnhancer,
        PartnerKind::DataProvider,
        PartnerKind::CollectionAgency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartnerKind::Funder => "funder",
            PartnerKind::CreditEnhancer => "credit_enhancer",
            PartnerKind::DataProvider => "data_provider",
            PartnerKind::CollectionAgency => "collection_agency",
        }
    }

    pub fn parse(s: &str) -> Option<PartnerKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a partner stands: applying → admitted → suspended → exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    /// Registered, admission not yet approved.
    Applying,
    /// Admitted: may do business (funders also need the partner list and an agreement).
    Admitted,
    /// Temporarily stopped; may be reinstated.
    Suspended,
    /// The relationship has ended. Final.
    Exited,
}

impl PartnerStatus {
    pub const ALL: [PartnerStatus; 4] = [
        PartnerStatus::Applying,
        PartnerStatus::Admitted,
        PartnerStatus::Suspended,
        PartnerStatus::Exited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Applying => "applying",
            PartnerStatus::Admitted => "admitted",
            PartnerStatus::Suspended => "suspended",
            PartnerStatus::Exited => "exited",
        }
    }

    pub fn parse(s: &str) -> Option<PartnerStatus> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How a status change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionPath {
    /// A direct request (`POST …/status`).
    Direct,
    /// The approval of an admission checklist (the only way to be admitted first).
    AdmissionApproval,
}

/// Why a status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a partner cannot go from {from} to {to}")]
    Illegal {
        from: &'static str,
        to: &'static str,
    },
    #[error("a partner is admitted only by approving its admission checklist")]
    NeedsAdmission,
    #[error("a reason is required for this change")]
    ReasonRequired,
}

impl TransitionError {
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::Illegal { .. } => "illegal_transition",
            TransitionError::NeedsAdmission => "needs_admission",
            TransitionError::ReasonRequired => "required",
        }
    }
}

/// Checks a status change. Allowed: applying → admitted (admission approval only),
/// applying → exited (withdrawn), admitted ⇄ suspended, admitted/suspended → exited.
/// Suspending and exiting need a reason.
pub fn check_transition(
    from: PartnerStatus,
    to: PartnerStatus,
    path: TransitionPath,
    reason: Option<&str>,
) -> Result<(), TransitionError> {
    use PartnerStatus::*;
    let legal = matches!(
        (from, to),
        (Applying, Admitted)
            | (Applying, Exited)
            | (Admitted, Suspended)
            | (Suspended, Admitted)
            | (Admitted, Exited)
            | (Suspended, Exited)
    );
    if !legal {
        return Err(TransitionError::Illegal {
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    if from == Applying && to == Admitted && path != TransitionPath::AdmissionApproval {
        return Err(TransitionError::NeedsAdmission);
    }
    if matches!(to, Suspended | Exited) && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(TransitionError::ReasonRequired);
    }
    Ok(())
}

/// Validates a partner code: 2–32 characters of `a-z 0-9 _`, starting with a letter.
pub fn check_code(code: &str) -> Result<(), &'static str> {
    let ok_len = (2..=32).contains(&code.len());
    let mut chars = code.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = code
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok_len && first_ok && rest_ok {
        Ok(())
    } else {
        Err("use 2–32 characters a-z, 0-9 and _, starting with a letter (e.g. bank_a)")
    }
}

/// The facts [`may_originate`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginationFacts {
    pub kind: PartnerKind,
    pub status: PartnerStatus,
    /// The date from which the partner's published list includes us; `None` when it
    /// does not.
    pub listed_us_on: Option<NaiveDate>,
    pub agreement_start: Option<NaiveDate>,
    pub agreement_end: Option<NaiveDate>,
    /// The `valid_until` of each licence (`None`: no expiry).
    pub licences_valid_until: Vec<Option<NaiveDate>>,
}

/// Why a partner may not take a new loan today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    #[error("the partner is not a funder")]
    NotAFunder,
    #[error("the funder is {status}, not admitted")]
    NotAdmitted { status: String },
    #[error("the funder's published partner list does not include us (名单制)")]
    NotOnPartnerList,
    #[error("the funder lists us only from {from}")]
    ListedLater { from: NaiveDate },
    #[error("there is no cooperation agreement")]
    NoAgreement,
    #[error("the cooperation agreement starts on {from}")]
    AgreementNotStarted { from: NaiveDate },
    #[error("the cooperation agreement ended on {on}")]
    AgreementEnded { on: NaiveDate },
    #[error("the funder has no licence valid today")]
    NoValidLicence,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotAFunder => "not_a_funder",
            Reason::NotAdmitted { .. } => "not_admitted",
            Reason::NotOnPartnerList => "not_on_partner_list",
            Reason::ListedLater { .. } => "listed_later",
            Reason::NoAgreement => "no_agreement",
            Reason::AgreementNotStarted { .. } => "agreement_not_started",
            Reason::AgreementEnded { .. } => "agreement_ended",
            Reason::NoValidLicence => "no_valid_licence",
        }
    }
}

/// Whether the partner may fund a new loan on `today`: a funder, admitted, whose published
/// partner list includes us, under an agreement in force, with a licence valid today.
pub fn may_originate(p: &OriginationFacts, today: NaiveDate) -> Result<(), Reason> {
    if p.kind != PartnerKind::Funder {
        return Err(Reason::NotAFunder);
    }
    if p.status != PartnerStatus::Admitted {
        return Err(Reason::NotAdmitted {
            status: p.status.as_str().to_owned(),
        });
    }
    match p.listed_us_on {
        None => return Err(Reason::NotOnPartnerList),
        Some(from) if from > today => return Err(Reason::ListedLater { from }),
        Some(_) => {}
    }
    match (p.agreement_start, p.agreement_end) {
        (None, _) => return Err(Reason::NoAgreement),
        (Some(from), _) if from > today => return Err(Reason::AgreementNotStarted { from }),
        (_, Some(on)) if on < today => return Err(Reason::AgreementEnded { on }),
        _ => {}
    }
    if !p
        .licences_valid_until
        .iter()
        .any(|v| v.is_none_or(|until| until >= today))
    {
        return Err(Reason::NoValidLicence);
    }
    Ok(())
}

/// One standard of the admission checklist (configurable; seeded with defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionStandard {
    pub code: String,
    pub title_zh: String,
    pub title_en: String,
    /// Kinds it applies to; empty means every kind.
    pub kinds: Vec<PartnerKind>,
    /// A required standard must be answered with evidence, and must pass for approval.
    pub required: bool,
}

impl AdmissionStandard {
    pub fn applies_to(&self, kind: PartnerKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// One answered checklist item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub code: String,
    pub passed: bool,
    /// What was checked and what it showed.
    pub evidence: String,
    /// A document reference (see the partner's documents), if any.
    #[serde(default)]
    pub document_ref: Option<String>,
}

/// A problem with one checklist item (index into the submitted list, or the code of a
/// missing standard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecklistProblem {
    /// `items[3].evidence` or `items` for a missing standard.
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Checks a checklist before it is submitted: every item names a standard applying to
/// this kind, at most once, with evidence; every required standard is answered.
pub fn check_checklist(
    kind: PartnerKind,
    standards: &[AdmissionStandard],
    items: &[ChecklistItem],
) -> Vec<ChecklistProblem> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        match standards.iter().find(|s| s.code == item.code) {
            Some(s) if s.applies_to(kind) => {}
            Some(_) => problems.push(ChecklistProblem {
                field: format!("items[{i}].code"),
                code: "not_applicable",
                message: format!(
                    "standard `{}` does not apply to this kind of partner",
                    item.code
                ),
            }),
            None => problems.push(ChecklistProblem {
                field: format!("items[{i}].code"),
                code: "unknown",
                message: format!("there is no admission standard `{}`", item.code),
            }),
        }
        if !seen.insert(item.code.as_str()) {
            problems.push(ChecklistProblem {
                field: format!("items[{i}].code"),
                code: "duplicate",
                message: format!("standard `{}` is answered twice", item.code),
            });
        }
        if item.evidence.trim().is_empty() {
            problems.push(ChecklistProblem {
                field: format!("items[{i}].evidence"),
                code: "required",
                message: "describe the evidence checked".into(),
            });
        }
    }
    for s in standards
        .iter()
        .filter(|s| s.required && s.applies_to(kind))
    {
        if !items.iter().any(|i| i.code == s.code) {
            problems.push(ChecklistProblem {
                field: "items".into(),
                code: "missing",
                message: format!("the required standard `{}` is not answered", s.code),
            });
        }
    }
    problems
}

/// Why an admission cannot be approved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("the submitter cannot approve their own admission (four eyes)")]
    SameUser,
    #[error("required standards failed: {0}")]
    FailedStandards(String),
}

/// Four eyes and pass/fail: the approver is not the submitter, and every required
/// standard that applies passed.
pub fn check_approval(
    submitted_by: i64,
    approver: i64,
    kind: PartnerKind,
    standards: &[AdmissionStandard],
    items: &[ChecklistItem],
) -> Result<(), ApprovalError> {
    if submitted_by == approver {
        return Err(ApprovalError::SameUser);
    }
    let failed: Vec<&str> = standards
        .iter()
        .filter(|s| s.required && s.applies_to(kind))
        .filter(|s| !items.iter().any(|i| i.code == s.code && i.passed))
        .map(|s| s.code.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ApprovalError::FailedStandards(failed.join(", ")))
    }
}

/// The next annual review after admission (or after a review) on `on`.
pub fn next_review(on: NaiveDate) -> NaiveDate {
    on.checked_add_months(chrono::Months::new(12)).unwrap_or(on)
}

/// Days ahead within which reviews and agreement expiries raise a reminder (a setting's
/// default; callers may pass another).
pub const REMINDER_WINDOW_DAYS: i64 = 30;

/// What is due soon for one partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    AnnualReview,
    AgreementExpiry,
}

impl ReminderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::AnnualReview => "annual_review",
            ReminderKind::AgreementExpiry => "agreement_expiry",
        }
    }
}

/// The reminders due for a partner with these dates: a review or an agreement end within
/// `window_days` of `today` (or already past).
pub fn reminders_due(
    status: PartnerStatus,
    next_review_on: Option<NaiveDate>,
    agreement_end: Option<NaiveDate>,
    today: NaiveDate,
    window_days: i64,
) -> Vec<(ReminderKind, NaiveDate)> {
    if status == PartnerStatus::Exited {
        return Vec::new();
    }
    let horizon = today + chrono::Duration::days(window_days);
    let mut out = Vec::new();
    if let Some(d) = next_review_on.filter(|d| *d <= horizon) {
        out.push((ReminderKind::AnnualReview, d));
    }
    if let Some(d) = agreement_end.filter(|d| *d <= horizon) {
        out.push((ReminderKind::AgreementExpiry, d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn funder() -> OriginationFacts {
        OriginationFacts {
            kind: PartnerKind::Funder,
            status: PartnerStatus::Admitted,
            listed_us_on: Some(d("2026-01-01")),
            agreement_start: Some(d("2026-01-01")),
            agreement_end: Some(d("2027-12-31")),
            licences_valid_until: vec![Some(d("2030-01-01"))],
        }
    }

    #[test]
    fn lifecycle_allows_only_the_documented_moves() {
        use PartnerStatus::*;
        let direct = TransitionPath::Direct;
        let mut allowed = Vec::new();
        for from in PartnerStatus::ALL {
            for to in PartnerStatus::ALL {
                let path = if from == Applying && to == Admitted {
                    TransitionPath::AdmissionApproval
                } else {
                    direct
                };
                if check_transition(from, to, path, Some("r")).is_ok() {
                    allowed.push((from, to));
                }
            }
        }
        assert_eq!(
            allowed,
            [
                (Applying, Admitted),
                (Applying, Exited),
                (Admitted, Suspended),
                (Admitted, Exited),
                (Suspended, Admitted),
                (Suspended, Exited)
            ]
        );
        assert_eq!(
            check_transition(Applying, Admitted, direct, None),
            Err(TransitionError::NeedsAdmission)
        );
        assert_eq!(
            check_transition(Admitted, Suspended, direct, Some("  ")),
            Err(TransitionError::ReasonRequired)
        );
        assert!(matches!(
            check_transition(Exited, Admitted, direct, Some("x")),
            Err(TransitionError::Illegal { .. })
        ));
    }

    #[test]
    fn origination_needs_list_agreement_and_licence() {
        let today = d("2026-11-29");
        assert_eq!(may_originate(&funder(), today), Ok(()));
        let mut p = funder();
        p.listed_us_on = None;
        assert_eq!(may_originate(&p, today), Err(Reason::NotOnPartnerList));
        p.listed_us_on = Some(d("2026-12-01"));
        assert_eq!(
            may_originate(&p, today),
            Err(Reason::ListedLater {
                from: d("2026-12-01")
            })
        );
        let mut p = funder();
        p.status = PartnerStatus::Suspended;
        assert_eq!(may_originate(&p, today).unwrap_err().code(), "not_admitted");
        let mut p = funder();
        p.agreement_end = Some(d("2026-11-28"));
        assert_eq!(
            may_originate(&p, today).unwrap_err().code(),
            "agreement_ended"
        );
        // The last day of the agreement is still in force.
        p.agreement_end = Some(today);
        assert_eq!(may_originate(&p, today), Ok(()));
        let mut p = funder();
        p.agreement_start = None;
        assert_eq!(may_originate(&p, today), Err(Reason::NoAgreement));
        let mut p = funder();
        p.licences_valid_until = vec![Some(d("2026-11-28"))];
        assert_eq!(may_originate(&p, today), Err(Reason::NoValidLicence));
        p.licences_valid_until.push(None);
        assert_eq!(may_originate(&p, today), Ok(()));
        let mut p = funder();
        p.kind = PartnerKind::CreditEnhancer;
        assert_eq!(may_originate(&p, today), Err(Reason::NotAFunder));
    }

    fn standards() -> Vec<AdmissionStandard> {
        vec![
            AdmissionStandard {
                code: "licence".into(),
                title_zh: "牌照".into(),
                title_en: "Licence".into(),
                kinds: vec![],
                required: true,
            },
            AdmissionStandard {
                code: "capital".into(),
                title_zh: "资本".into(),
                title_en: "Capital".into(),
                kinds: vec![PartnerKind::Funder],
                required: true,
            },
            AdmissionStandard {
                code: "extra".into(),
                title_zh: "其他".into(),
                title_en: "Other".into(),
                kinds: vec![],
                required: false,
            },
        ]
    }

    fn item(code: &str, passed: bool) -> ChecklistItem {
        ChecklistItem {
            code: code.into(),
            passed,
            evidence: "checked".into(),
            document_ref: None,
        }
    }

    #[test]
    fn checklist_must_answer_required_standards_with_evidence() {
        let s = standards();
        assert!(check_checklist(
            PartnerKind::Funder,
            &s,
            &[item("licence", true), item("capital", false)]
        )
        .is_empty());
        let mut bad = item("licence", true);
        bad.evidence = " ".into();
        let p = check_checklist(
            PartnerKind::Funder,
            &s,
            &[bad, item("nope", true), item("licence", true)],
        );
        let codes: Vec<_> = p.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            codes,
            [
                ("items[0].evidence", "required"),
                ("items[1].code", "unknown"),
                ("items[2].code", "duplicate"),
                ("items", "missing")
            ]
        );
        // `capital` applies to funders only.
        let p = check_checklist(
            PartnerKind::DataProvider,
            &s,
            &[item("licence", true), item("capital", true)],
        );
        assert_eq!(p[0].code, "not_applicable");
    }

    #[test]
    fn approval_needs_another_person_and_passing_standards() {
        let s = standards();
        let items = [item("licence", true), item("capital", true)];
        assert_eq!(
            check_approval(7, 7, PartnerKind::Funder, &s, &items),
            Err(ApprovalError::SameUser)
        );
        assert_eq!(
            check_approval(7, 8, PartnerKind::Funder, &s, &items),
            Ok(())
        );
        let items = [item("licence", true), item("capital", false)];
        assert_eq!(
            check_approval(7, 8, PartnerKind::Funder, &s, &items),
            Err(ApprovalError::FailedStandards("capital".into()))
        );
        // A failed optional standard does not block.
        let items = [item("licence", true), item("extra", false)];
        assert_eq!(
            check_approval(7, 8, PartnerKind::DataProvider, &s, &items),
            Ok(())
        );
    }

    #[test]
    fn reminders_fall_due_within_the_window() {
        let today = d("2026-11-29");
        let r = reminders_due(
            PartnerStatus::Admitted,
            Some(d("2026-12-29")),
            Some(d("2026-12-30")),
            today,
            30,
        );
        assert_eq!(r, [(ReminderKind::AnnualReview, d("2026-12-29"))]);
        let r = reminders_due(
            PartnerStatus::Suspended,
            Some(d("2025-01-01")),
            Some(d("2026-12-01")),
            today,
            30,
        );
        assert_eq!(r.len(), 2);
        assert!(reminders_due(
            PartnerStatus::Exited,
            Some(d("2026-12-01")),
            None,
            today,
            30
        )
        .is_empty());
        assert_eq!(next_review(d("2024-02-29")), d("2025-02-28"));
    }

    #[test]
    fn codes_are_checked() {
        assert!(check_code("bank_a").is_ok());
        assert!(check_code("cfc_b2").is_ok());
        for bad in ["B", "Bank", "1bank", "bank-a", "", "a", &"x".repeat(33)] {
            assert!(check_code(bad).is_err(), "{bad}");
        }
    }
}
