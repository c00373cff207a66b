//! The daily close of business (日终批处理, COB): the steps it runs in order, and the
//! rules it applies to one loan, as pure functions. The store runs the same rules as
//! set-based SQL over chunks of loans; its tests compare every figure with
//! [`close_loan`].
//!
//! # Conventions
//! - **Business date.** `close(D)` brings a loan to the end of business day `D`.
//!   An installment due on `T` and not settled by the end of `D > T` is `D − T` days past
//!   due (the day after the due date is the first overdue day). Days past due (DPD) of a
//!   loan are those of its oldest unsettled installment; an installment is settled when
//!   nothing (penalty included) is outstanding on it.
//! - **Penalty interest (罚息)** accrues on each installment's overdue principal (never on
//!   interest, fees or penalty: no compound interest), for every overdue day, at the
//!   loan's penalty annual rate capped by the all-in cost cap (`apr_cap`, 24 % by
//!   default; courts cut overdue charges above it, 法发〔2017〕22号). The daily amount is
//!   `overdue principal × rate / 360`, rounded half-up to the fen, so a close that
//!   catches up `n` days posts exactly what `n` daily closes would. Each installment
//!   remembers the last day accrued (`penalty_accrued_through`): closing a day twice
//!   accrues nothing the second time.
//! - **Tier** = max(floor by DPD, the approved manual floor, 关注 while a restructured
//!   loan is under observation) — [`ClassificationPolicy::classify`].
//! - **Collection bucket** by DPD ([`CollectionBucket::from_dpd`]). A loan leaving M0
//!   opens a collection case; a case moves with the bucket; back to M0 closes it (cured).
//! - **Guarantee payout (代偿)**: when a funder's agreement says the guarantor pays after
//!   `n` days past due, the first close at which the loan is `n` or more days past due
//!   pays the funder the outstanding principal and the overdue interest, once per loan.

use crate::classify::{ClassificationFacts, ClassificationPolicy, CollectionBucket, FiveTierClass};
use crate::money::div_round_half_up;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One step of the close, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CobStep {
    /// Days past due and overdue status from the oldest unsettled installment.
    Delinquency,
    /// Penalty interest on overdue principal, journalled (Dr 应收罚息 / Cr 罚息收入).
    PenaltyAccrual,
    /// Five-tier classification, history of every change.
    Classification,
    /// Collection bucket M0 … M6+, history of every change (roll rates read it).
    CollectionBucket,
    /// Collection cases opened, moved with the bucket, closed when cured or repaid.
    CollectionCases,
    /// The risk-warning engine's rules over the loans that changed.
    RiskWarnings,
    /// Guarantee payout (代偿) at the funder's configured days past due.
    GuaranteePayout,
}

impl CobStep {
    pub const PLAN: [CobStep; 7] = [
        CobStep::Delinquency,
        CobStep::PenaltyAccrual,
        CobStep::Classification,
        CobStep::CollectionBucket,
        CobStep::CollectionCases,
        CobStep::RiskWarnings,
        CobStep::GuaranteePayout,
    ];

    pub fn code(self) -> &'static str {
        match self {
            CobStep::Delinquency => "delinquency",
            CobStep::PenaltyAccrual => "penalty_accrual",
            CobStep::Classification => "classification",
            CobStep::CollectionBucket => "collection_bucket",
            CobStep::CollectionCases => "collection_cases",
            CobStep::RiskWarnings => "risk_warnings",
            CobStep::GuaranteePayout => "guarantee_payout",
        }
    }
}

/// Rates in SQL are integers in units of 10⁻⁸ a year.
pub const RATE_SCALE: i64 = 100_000_000;
/// Penalty interest is daily at annual / 360.
pub const PENALTY_DAY_BASIS: i64 = 360;

/// The penalty annual rate the close applies: the loan's rate, at most `cap`, as an
/// integer of 10⁻⁸ (half-up). Negative rates count as 0.
pub fn capped_penalty_rate_e8(penalty_annual: Decimal, cap: Decimal) -> i64 {
    let r = penalty_annual.min(cap).max(Decimal::ZERO) * Decimal::from(RATE_SCALE);
    r.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .try_into()
        .unwrap_or(0)
}

/// One day's penalty on `overdue_principal` fen at `rate_e8`: principal × rate / 360,
/// half-up to the fen.
pub fn daily_penalty_fen(overdue_principal: i64, rate_e8: i64) -> i64 {
    if overdue_principal <= 0 || rate_e8 <= 0 {
        return 0;
    }
    let v = div_round_half_up(
        i128::from(overdue_principal) * i128::from(rate_e8),
        i128::from(PENALTY_DAY_BASIS) * i128::from(RATE_SCALE),
    );
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Whole days from `from` to `to` (0 when `to` is not after `from`).
pub fn days_after(from: NaiveDate, to: NaiveDate) -> u32 {
    u32::try_from((to - from).num_days().max(0)).unwrap_or(u32::MAX)
}

/// An installment as the close sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallmentState {
    pub due_date: NaiveDate,
    pub principal_due: i64,
    pub principal_paid: i64,
    pub interest_due: i64,
    pub interest_paid: i64,
    pub fee_due: i64,
    pub fee_paid: i64,
    pub penalty_accrued: i64,
    pub penalty_paid: i64,
    /// The last day penalty was accrued for (None: never).
    pub penalty_accrued_through: Option<NaiveDate>,
}

impl InstallmentState {
    pub fn outstanding(&self) -> i64 {
        (self.principal_due - self.principal_paid)
            + (self.interest_due - self.interest_paid)
            + (self.fee_due - self.fee_paid)
            + (self.penalty_accrued - self.penalty_paid)
    }

    pub fn is_settled(&self) -> bool {
        self.outstanding() <= 0
    }

    pub fn principal_outstanding(&self) -> i64 {
        (self.principal_due - self.principal_paid).max(0)
    }
}

/// What the loan looked like before the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanBefore {
    pub dpd: u32,
    pub classification: FiveTierClass,
    pub bucket: CollectionBucket,
}

/// Everything the close of one loan depends on.
#[derive(Debug, Clone, Copy)]
pub struct CloseInput<'a> {
    pub as_of: NaiveDate,
    pub installments: &'a [InstallmentState],
    pub before: LoanBefore,
    /// The approved manual classification floor.
    pub manual_floor: Option<FiveTierClass>,
    /// Restructured and still inside its observation period on `as_of`.
    pub in_observation: bool,
    /// [`capped_penalty_rate_e8`] of the loan.
    pub penalty_rate_e8: i64,
    pub policy: &'a ClassificationPolicy,
    /// The funder's guarantee-payout threshold in days past due (None: no guarantee).
    pub payout_dpd: Option<u32>,
    /// A payout was already made for this loan.
    pub paid_out: bool,
}

/// Penalty accrued on one installment by this close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PenaltyAccrual {
    /// Index into [`CloseInput::installments`].
    pub index: usize,
    /// Overdue days accrued (from the day after the later of the due date and the last
    /// accrued day, through `as_of`).
    pub days: u32,
    pub fen: i64,
}

/// What happens to the loan's collection case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseAction {
    None,
    /// The loan left M0: open a case in this bucket.
    Open(CollectionBucket),
    /// The bucket changed: the open case follows.
    Move(CollectionBucket),
    /// Back to M0: close the open case as cured.
    CloseCured,
}

/// The guarantee payout of this close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Payout {
    pub principal: i64,
    pub interest: i64,
}

impl Payout {
    pub fn total(&self) -> i64 {
        self.principal + self.interest
    }
}

/// The result of closing one loan for one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloseOutcome {
    pub dpd: u32,
    /// The first overdue day of the oldest unsettled installment.
    pub overdue_since: Option<NaiveDate>,
    pub classification: FiveTierClass,
    pub bucket: CollectionBucket,
    pub penalties: Vec<PenaltyAccrual>,
    pub case: CaseAction,
    pub payout: Option<Payout>,
}

impl CloseOutcome {
    pub fn penalty_fen(&self) -> i64 {
        self.penalties.iter().map(|p| p.fen).sum()
    }

    pub fn is_overdue(&self) -> bool {
        self.dpd > 0
    }
}

/// Days past due and the first overdue day of the oldest unsettled installment due
/// before `as_of`.
pub fn delinquency(insts: &[InstallmentState], as_of: NaiveDate) -> (u32, Option<NaiveDate>) {
    insts
        .iter()
        .filter(|i| i.due_date < as_of && !i.is_settled())
        .map(|i| i.due_date)
        .min()
        .map_or((0, None), |d| (days_after(d, as_of), d.succ_opt()))
}

/// The collection-case consequence of a bucket change.
pub fn case_action(before: CollectionBucket, after: CollectionBucket) -> CaseAction {
    match (before.is_delinquent(), after.is_delinquent()) {
        (false, true) => CaseAction::Open(after),
        (true, true) if before != after => CaseAction::Move(after),
        (true, false) => CaseAction::CloseCured,
        _ => CaseAction::None,
    }
}

/// Closes one loan for `as_of`.
pub fn close_loan(input: &CloseInput<'_>) -> CloseOutcome {
    let as_of = input.as_of;
    let (dpd, overdue_since) = delinquency(input.installments, as_of);
    let mut penalties = Vec::new();
    for (index, i) in input.installments.iter().enumerate() {
        if i.due_date >= as_of || i.is_settled() || i.principal_outstanding() == 0 {
            continue;
        }
        let from = i
            .penalty_accrued_through
            .map_or(i.due_date, |t| t.max(i.due_date));
        let days = days_after(from, as_of);
        if days == 0 {
            continue;
        }
        let fen = daily_penalty_fen(i.principal_outstanding(), input.penalty_rate_e8)
            .saturating_mul(i64::from(days));
        penalties.push(PenaltyAccrual { index, days, fen });
    }
    let classification = input.policy.classify(&ClassificationFacts {
        days_past_due: dpd,
        manual_floor: input.manual_floor,
        restructured_in_observation: input.in_observation,
    });
    let bucket = CollectionBucket::from_dpd(dpd);
    let payout = (!input.paid_out && input.payout_dpd.is_some_and(|t| dpd >= t)).then(|| Payout {
        principal: input
            .installments
            .iter()
            .map(InstallmentState::principal_outstanding)
            .sum(),
        interest: input
            .installments
            .iter()
            .filter(|i| i.due_date < as_of)
            .map(|i| (i.interest_due - i.interest_paid).max(0))
            .sum(),
    });
    CloseOutcome {
        dpd,
        overdue_since,
        classification,
        bucket,
        penalties,
        case: case_action(input.before.bucket, bucket),
        payout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn inst(due: NaiveDate, principal: i64, interest: i64) -> InstallmentState {
        InstallmentState {
            due_date: due,
            principal_due: principal,
            principal_paid: 0,
            interest_due: interest,
            interest_paid: 0,
            fee_due: 0,
            fee_paid: 0,
            penalty_accrued: 0,
            penalty_paid: 0,
            penalty_accrued_through: None,
        }
    }

    fn before() -> LoanBefore {
        LoanBefore {
            dpd: 0,
            classification: FiveTierClass::Normal,
            bucket: CollectionBucket::M0,
        }
    }

    #[test]
    fn penalty_rate_is_capped_and_daily_amount_rounds_half_up() {
        assert_eq!(capped_penalty_rate_e8(dec!(0.156), dec!(0.24)), 15_600_000);
        assert_eq!(capped_penalty_rate_e8(dec!(0.30), dec!(0.24)), 24_000_000);
        assert_eq!(capped_penalty_rate_e8(dec!(-0.1), dec!(0.24)), 0);
        // 10,000.00 yuan at 18 %: 1,000,000 × 0.18 / 360 = 500 fen a day exactly.
        assert_eq!(daily_penalty_fen(1_000_000, 18_000_000), 500);
        // 8,333.33 yuan at 15.6 %: 833,333 × 0.156 / 360 = 361.11 → 361.
        assert_eq!(daily_penalty_fen(833_333, 15_600_000), 361);
        // 25.00 yuan at 7.2 %: 2,500 × 0.072 / 360 = 0.5 fen, half-up to 1.
        assert_eq!(daily_penalty_fen(2_500, 7_200_000), 1); // 0.5 fen → 1
        assert_eq!(daily_penalty_fen(2_499, 7_200_000), 0); // 0.4998 → 0
        assert_eq!(daily_penalty_fen(0, 18_000_000), 0);
    }

    #[test]
    fn a_missed_installment_ages_accrues_and_classifies() {
        let insts = [
            inst(d(2026, 2, 15), 1_000_000, 100_000),
            inst(d(2026, 3, 15), 1_000_000, 90_000),
        ];
        let policy = ClassificationPolicy::default();
        let input = CloseInput {
            as_of: d(2026, 2, 15),
            installments: &insts,
            before: before(),
            manual_floor: None,
            in_observation: false,
            penalty_rate_e8: 18_000_000,
            policy: &policy,
            payout_dpd: Some(80),
            paid_out: false,
        };
        // On the due date nothing is overdue yet.
        let o = close_loan(&input);
        assert_eq!(
            (o.dpd, o.bucket, o.penalty_fen()),
            (0, CollectionBucket::M0, 0)
        );
        // Ten days later: 10 DPD, 10 days × 500 fen, 关注, M1, a case opens.
        let o = close_loan(&CloseInput {
            as_of: d(2026, 2, 25),
            ..input
        });
        assert_eq!(o.dpd, 10);
        assert_eq!(o.overdue_since, Some(d(2026, 2, 16)));
        assert_eq!(o.penalty_fen(), 5_000);
        assert_eq!(o.classification, FiveTierClass::SpecialMention);
        assert_eq!(o.case, CaseAction::Open(CollectionBucket::M1));
        assert_eq!(o.payout, None);
        // 2026-05-20: the first installment is 94 DPD, the second 66 (both accrue).
        let o = close_loan(&CloseInput {
            as_of: d(2026, 5, 20),
            before: LoanBefore {
                dpd: 64,
                classification: FiveTierClass::SpecialMention,
                bucket: CollectionBucket::M3,
            },
            ..input
        });
        assert_eq!(o.dpd, 94);
        assert_eq!(o.classification, FiveTierClass::Substandard);
        assert_eq!(o.bucket, CollectionBucket::M4);
        assert_eq!(o.case, CaseAction::Move(CollectionBucket::M4));
        assert_eq!(o.penalty_fen(), 94 * 500 + 66 * 500);
        // Payout at ≥ 80 DPD: all principal + interest of installments due before.
        assert_eq!(
            o.payout,
            Some(Payout {
                principal: 2_000_000,
                interest: 190_000
            })
        );
    }

    #[test]
    fn closing_twice_or_in_one_catch_up_accrues_the_same() {
        let policy = ClassificationPolicy::default();
        let mut insts = vec![inst(d(2026, 2, 15), 833_333, 100_000)];
        let base = |as_of, insts: &[InstallmentState]| {
            close_loan(&CloseInput {
                as_of,
                installments: insts,
                before: before(),
                manual_floor: None,
                in_observation: false,
                penalty_rate_e8: 15_600_000,
                policy: &policy,
                payout_dpd: None,
                paid_out: false,
            })
        };
        // Daily closes from 02-16 to 02-28.
        let mut daily = 0;
        for day in 16..=28 {
            let o = base(d(2026, 2, day), &insts);
            for p in &o.penalties {
                insts[p.index].penalty_accrued += p.fen;
                insts[p.index].penalty_accrued_through = Some(d(2026, 2, day));
                daily += p.fen;
            }
            // The same day again adds nothing.
            assert_eq!(base(d(2026, 2, day), &insts).penalty_fen(), 0);
        }
        let fresh = [inst(d(2026, 2, 15), 833_333, 100_000)];
        let once = base(d(2026, 2, 28), &fresh).penalty_fen();
        assert_eq!(daily, once);
        assert_eq!(once, 13 * 361);
    }

    #[test]
    fn settled_installments_and_paid_principal_do_not_accrue() {
        let policy = ClassificationPolicy::default();
        let mut a = inst(d(2026, 2, 15), 1_000_000, 100_000);
        a.principal_paid = 1_000_000; // principal paid, interest still due
        let mut b = inst(d(2026, 1, 15), 500_000, 0);
        b.principal_paid = 500_000; // settled
        let insts = [b, a];
        let o = close_loan(&CloseInput {
            as_of: d(2026, 3, 1),
            installments: &insts,
            before: LoanBefore {
                dpd: 5,
                classification: FiveTierClass::SpecialMention,
                bucket: CollectionBucket::M1,
            },
            manual_floor: Some(FiveTierClass::Doubtful),
            in_observation: true,
            penalty_rate_e8: 18_000_000,
            policy: &policy,
            payout_dpd: Some(10),
            paid_out: true,
        });
        assert_eq!(o.dpd, 14, "interest still due keeps it overdue");
        assert_eq!(o.penalty_fen(), 0, "no penalty on interest");
        assert_eq!(o.classification, FiveTierClass::Doubtful, "manual floor");
        assert_eq!(o.case, CaseAction::None);
        assert_eq!(o.payout, None, "paid out before");
    }

    #[test]
    fn cure_closes_the_case_and_observation_holds_special_mention() {
        let policy = ClassificationPolicy::default();
        let mut a = inst(d(2026, 2, 15), 1_000_000, 100_000);
        a.principal_paid = 1_000_000;
        a.interest_paid = 100_000;
        let insts = [a];
        let o = close_loan(&CloseInput {
            as_of: d(2026, 3, 1),
            installments: &insts,
            before: LoanBefore {
                dpd: 12,
                classification: FiveTierClass::SpecialMention,
                bucket: CollectionBucket::M1,
            },
            manual_floor: None,
            in_observation: true,
            penalty_rate_e8: 18_000_000,
            policy: &policy,
            payout_dpd: None,
            paid_out: false,
        });
        assert_eq!((o.dpd, o.overdue_since), (0, None));
        assert_eq!(o.case, CaseAction::CloseCured);
        assert_eq!(o.classification, FiveTierClass::SpecialMention);
    }

    #[test]
    fn case_actions() {
        use CollectionBucket::*;
        assert_eq!(case_action(M0, M0), CaseAction::None);
        assert_eq!(case_action(M0, M2), CaseAction::Open(M2));
        assert_eq!(case_action(M1, M1), CaseAction::None);
        assert_eq!(case_action(M1, M2), CaseAction::Move(M2));
        assert_eq!(case_action(M3, M0), CaseAction::CloseCured);
    }
}
