//! Repayment schedules (还款计划): loan terms, fee items and who collects them, the four
//! repayment methods, the period-by-period plan, early partial repayment and early payoff.
//!
//! # Convention (reproduces the reference table of `rules-cn.md` exactly)
//! - Monthly periods; the monthly rate is exactly `annual / 12`, kept as a fraction.
//! - Each period's interest = outstanding principal × monthly rate, rounded half-up to
//!   the fen.
//! - Equal installment (等额本息): the installment is the annuity
//!   `P·r / (1 − (1+r)^−n)` rounded half-up to the fen; principal part = installment −
//!   interest. Equal principal (等额本金): principal part = `P / n` rounded half-up.
//!   In both, the last period repays whatever principal remains (absorbing rounding), and
//!   no period repays more principal than is outstanding.
//! - Interest first (先息后本): interest each period, all principal in the last period.
//! - Bullet (一次性还本付息): nothing is due before the last period; the interest of each
//!   month accrues by the same rule (balance × monthly rate, rounded) and the sum is paid
//!   with the principal in the last period. (So its total interest equals that of
//!   interest-first; the periods before the last only carry monthly fees, if any.)
//! - Fees: an upfront fee is paid by the borrower at the start, separately (principal is
//!   disbursed in full, Civil Code art. 670); a monthly fee is `rate × original
//!   principal`, rounded half-up per fee item, added to every period.
//! - Due dates: period k is due `k − 1` months after the first due date if one is given,
//!   else `k` months after the start date; the day is clamped to the month end, always
//!   counted from the anchor (31 Jan → 28/29 Feb → 31 Mar).
//!
//! # Speed
//! Generation is integer arithmetic on fen (`i64`, `i128` products, integer half-up
//! division); only the annuity factor of an equal-installment loan is computed once per
//! schedule in `Decimal`. [`generate_into`] writes into a caller's `Vec`, so a loop that
//! reuses one buffer allocates nothing.

use crate::apr::{self, AprError};
use crate::money::{div_round_half_up, FeeRate, Fen, Rate};
use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Longest accepted term, in months.
pub const MAX_TERM_MONTHS: u32 = 360;

/// Largest accepted principal: 10^15 fen (10 trillion yuan). The bound keeps every
/// product and sum of the schedule arithmetic far inside `i64`/`i128`.
pub const MAX_PRINCIPAL: Fen = Fen::new(1_000_000_000_000_000);

/// Why a schedule could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("term must be between 1 and 360 months")]
    TermOutOfRange,
    #[error("principal must be more than 0 and at most 10,000,000,000,000.00 yuan")]
    PrincipalOutOfRange,
    #[error("fee amount must not be negative")]
    NegativeFee,
    #[error("first due date must be after the start date")]
    FirstDueDateNotAfterStart,
    #[error("first due date must be at most two months after the start date")]
    FirstDueDateTooLate,
    #[error("a due date falls outside the supported calendar")]
    DateOutOfRange,
    #[error("unknown repayment method")]
    UnknownMethod,
    #[error("the period given is not one after which principal remains to be repaid")]
    PeriodOutOfRange,
    #[error("prepayment amount must be more than 0 and less than the outstanding principal (use the payoff amount to repay in full)")]
    PrepaymentOutOfRange,
    #[error("the schedule is empty")]
    EmptySchedule,
    #[error("amount overflow in schedule arithmetic")]
    Overflow,
}

impl ScheduleError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::TermOutOfRange => "schedule.term_out_of_range",
            ScheduleError::PrincipalOutOfRange => "schedule.principal_out_of_range",
            ScheduleError::NegativeFee => "schedule.negative_fee",
            ScheduleError::FirstDueDateNotAfterStart => "schedule.first_due_date_not_after_start",
            ScheduleError::FirstDueDateTooLate => "schedule.first_due_date_too_late",
            ScheduleError::DateOutOfRange => "schedule.date_out_of_range",
            ScheduleError::UnknownMethod => "schedule.unknown_method",
            ScheduleError::PeriodOutOfRange => "schedule.period_out_of_range",
            ScheduleError::PrepaymentOutOfRange => "schedule.prepayment_out_of_range",
            ScheduleError::EmptySchedule => "schedule.empty",
            ScheduleError::Overflow => "schedule.overflow",
        }
    }
}

/// Loan term in months, 1..=360.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Term(u16);

impl Term {
    pub fn months(months: u32) -> Result<Self, ScheduleError> {
        if (1..=MAX_TERM_MONTHS).contains(&months) {
            Ok(Term(months as u16))
        } else {
            Err(ScheduleError::TermOutOfRange)
        }
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl TryFrom<u32> for Term {
    type Error = ScheduleError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Term::months(v)
    }
}

impl From<Term> for u32 {
    fn from(t: Term) -> u32 {
        t.get()
    }
}

/// How principal and interest are spread over the periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepaymentMethod {
    /// 等额本息: equal total installments.
    EqualInstallment,
    /// 等额本金: equal principal parts, interest on the falling balance.
    EqualPrincipal,
    /// 先息后本: interest monthly, principal at maturity.
    InterestFirst,
    /// 一次性还本付息: principal and all interest at maturity.
    Bullet,
}

impl RepaymentMethod {
    pub const ALL: [RepaymentMethod; 4] = [
        RepaymentMethod::EqualInstallment,
        RepaymentMethod::EqualPrincipal,
        RepaymentMethod::InterestFirst,
        RepaymentMethod::Bullet,
    ];

    /// Stable code, as in JSON: `equal_installment`, `equal_principal`,
    /// `interest_first`, `bullet`.
    pub fn code(self) -> &'static str {
        match self {
            RepaymentMethod::EqualInstallment => "equal_installment",
            RepaymentMethod::EqualPrincipal => "equal_principal",
            RepaymentMethod::InterestFirst => "interest_first",
            RepaymentMethod::Bullet => "bullet",
        }
    }

    pub fn zh_name(self) -> &'static str {
        match self {
            RepaymentMethod::EqualInstallment => "等额本息",
            RepaymentMethod::EqualPrincipal => "等额本金",
            RepaymentMethod::InterestFirst => "先息后本",
            RepaymentMethod::Bullet => "一次性还本付息",
        }
    }

    /// Parses a code (see [`RepaymentMethod::code`]) or the Chinese name.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|m| m.code() == s || m.zh_name() == s)
            .ok_or(ScheduleError::UnknownMethod)
    }
}

/// Who receives a fee (shown per item in the 综合融资成本明示表).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    /// 资金方: the lending bank or institution.
    Funder,
    /// 平台: the facilitation platform (note: under 金规〔2025〕9号 the platform may not
    /// charge the borrower; the product rules, not this type, enforce that).
    Platform,
    /// 增信方: the guarantor or insurer providing credit enhancement.
    Guarantor,
}

impl Collector {
    pub fn zh_name(self) -> &'static str {
        match self {
            Collector::Funder => "资金方",
            Collector::Platform => "平台",
            Collector::Guarantor => "增信方",
        }
    }
}

/// What a fee is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    Service,
    Guarantee,
    Insurance,
    Management,
    Other,
}

impl FeeKind {
    pub fn zh_name(self) -> &'static str {
        match self {
            FeeKind::Service => "服务费",
            FeeKind::Guarantee => "担保费",
            FeeKind::Insurance => "保险费",
            FeeKind::Management => "管理费",
            FeeKind::Other => "其他费用",
        }
    }
}

/// How a fee is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FeeCharge {
    /// A fixed amount paid by the borrower at the start, separately from the principal.
    Upfront { amount: Fen },
    /// `rate × original principal` (rounded half-up) added to every period.
    MonthlyOnPrincipal { rate: FeeRate },
}

/// One fee item of a loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeeItem {
    pub kind: FeeKind,
    pub collector: Collector,
    pub charge: FeeCharge,
}

impl FeeItem {
    /// The amount this item adds to each period (zero for an upfront fee).
    pub fn per_period(&self, principal: Fen) -> Fen {
        match self.charge {
            FeeCharge::Upfront { .. } => Fen::ZERO,
            FeeCharge::MonthlyOnPrincipal { rate } => rate.apply(principal),
        }
    }

    /// The amount paid at the start (zero for a monthly fee).
    pub fn upfront(&self) -> Fen {
        match self.charge {
            FeeCharge::Upfront { amount } => amount,
            FeeCharge::MonthlyOnPrincipal { .. } => Fen::ZERO,
        }
    }
}

/// How interest accrues over a period (计息方式).
///
/// The PBOC rule for RMB loans (《人民币利率管理规定》 and 银发〔2005〕129号): the monthly
/// rate is the annual rate / 12 and the daily rate the annual rate / 360; a lender may
/// count a period as whole months plus odd days (整月按月利率, 零头天数按日利率) or by the
/// actual number of days (按实际天数计息). Some lenders use a 365-day year instead.
///
/// Whatever the day count, the equal installment is the annuity at `annual / 12` and the
/// last period repays what remains, so a day count changes interest and the last payment,
/// never the installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayCount {
    /// 按月计息 (30/360): a whole month is `annual / 12` whatever its length; the odd days
    /// of a broken first period (when the first due date is not one month after the start)
    /// accrue at `annual / 360` a day. The default, and the convention of the rules-cn.md
    /// reference table.
    #[default]
    Monthly,
    /// 按实际天数, 日利率 = 年利率 / 360 (ACT/360).
    Actual360,
    /// 按实际天数, 日利率 = 年利率 / 365 (ACT/365).
    Actual365,
}

impl DayCount {
    pub const ALL: [DayCount; 3] = [DayCount::Monthly, DayCount::Actual360, DayCount::Actual365];

    /// Stable code, as in JSON: `monthly`, `actual_360`, `actual_365`.
    pub fn code(self) -> &'static str {
        match self {
            DayCount::Monthly => "monthly",
            DayCount::Actual360 => "actual_360",
            DayCount::Actual365 => "actual_365",
        }
    }

    pub fn zh_name(self) -> &'static str {
        match self {
            DayCount::Monthly => "按月计息（30/360）",
            DayCount::Actual360 => "按实际天数（日利率=年利率/360）",
            DayCount::Actual365 => "按实际天数（日利率=年利率/365）",
        }
    }

    /// Parses a code (see [`DayCount::code`]); `30/360`, `act/360`, `act/365` also work.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "monthly" | "30/360" | "30_360" => Some(DayCount::Monthly),
            "actual_360" | "act/360" | "act_360" => Some(DayCount::Actual360),
            "actual_365" | "act/365" | "act_365" => Some(DayCount::Actual365),
            _ => None,
        }
    }

    /// The longest regular (one-month) period's interest fraction relative to the monthly
    /// rate, as `(numerator, denominator)`: 1 for [`DayCount::Monthly`], 31/30 and
    /// 31·12/365 for the actual counts. Used to bound the cost of a product over every
    /// possible start date.
    pub fn longest_month_factor(self) -> (i128, i128) {
        match self {
            DayCount::Monthly => (1, 1),
            DayCount::Actual360 => (31, 30),
            DayCount::Actual365 => (31 * 12, 365),
        }
    }
}

/// Whole months and odd days from `from` to `to` (`to >= from`), months counted with the
/// day clamped to the month end (31 Jan + 1 month = 28/29 Feb).
pub fn months_and_days(from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let mut months = 0_i64;
    let mut reached = from;
    loop {
        let next = add_months_clamped(from, (months + 1) as i32);
        match next {
            Some(d) if d <= to => {
                months += 1;
                reached = d;
            }
            _ => break,
        }
    }
    (months, (to - reached).num_days())
}

/// `date` plus `months` months, the day clamped to the month end.
pub fn add_months_clamped(date: NaiveDate, months: i32) -> Option<NaiveDate> {
    let m = date.year() * 12 + date.month0() as i32 + months;
    let (year, month) = (m.div_euclid(12), m.rem_euclid(12) as u32 + 1);
    NaiveDate::from_ymd_opt(year, month, date.day().min(days_in_month(year, month)))
}

/// The interest fraction of one period (multiply the balance by `num / den`).
#[derive(Debug, Clone, Copy)]
struct Accrual {
    day_count: DayCount,
    /// The monthly rate `num / den`.
    num: i128,
    den: i128,
}

impl Accrual {
    /// The fraction for the period `from → to`; `regular` periods are exactly one month
    /// by construction (every period but a broken first one).
    #[inline]
    fn fraction(&self, from: NaiveDate, to: NaiveDate, regular: bool) -> (i128, i128) {
        match self.day_count {
            DayCount::Monthly if regular => (self.num, self.den),
            DayCount::Monthly => {
                let (m, d) = months_and_days(from, to);
                (self.num * i128::from(30 * m + d), self.den * 30)
            }
            DayCount::Actual360 => {
                let days = (to - from).num_days().max(0);
                (self.num * i128::from(days), self.den * 30)
            }
            DayCount::Actual365 => {
                let days = (to - from).num_days().max(0);
                (self.num * i128::from(days) * 12, self.den * 365)
            }
        }
    }
}

/// Everything a schedule depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanTerms {
    pub principal: Fen,
    pub annual_rate: Rate,
    pub term: Term,
    pub method: RepaymentMethod,
    /// Value date (起息日): the day the principal is disbursed.
    pub start_date: NaiveDate,
    /// Due date of period 1; `None` means one month after the start date.
    #[serde(default)]
    pub first_due_date: Option<NaiveDate>,
    #[serde(default)]
    pub fees: Vec<FeeItem>,
    /// How interest accrues (default [`DayCount::Monthly`]).
    #[serde(default)]
    pub day_count: DayCount,
}

impl LoanTerms {
    /// Terms without fees, first due one month after `start_date`.
    pub fn new(
        principal: Fen,
        annual_rate: Rate,
        term: Term,
        method: RepaymentMethod,
        start_date: NaiveDate,
    ) -> Self {
        LoanTerms {
            principal,
            annual_rate,
            term,
            method,
            start_date,
            first_due_date: None,
            fees: Vec::new(),
            day_count: DayCount::Monthly,
        }
    }

    pub fn with_day_count(mut self, day_count: DayCount) -> Self {
        self.day_count = day_count;
        self
    }

    pub fn with_fee(mut self, fee: FeeItem) -> Self {
        self.fees.push(fee);
        self
    }

    pub fn with_first_due_date(mut self, date: NaiveDate) -> Self {
        self.first_due_date = Some(date);
        self
    }

    /// Checks the cross-field rules (the field types already hold valid values).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !self.principal.is_positive() || self.principal > MAX_PRINCIPAL {
            return Err(ScheduleError::PrincipalOutOfRange);
        }
        if self.fees.iter().any(|f| f.upfront().is_negative()) {
            return Err(ScheduleError::NegativeFee);
        }
        if let Some(first) = self.first_due_date {
            if first <= self.start_date {
                return Err(ScheduleError::FirstDueDateNotAfterStart);
            }
            if add_months_clamped(self.start_date, 2).is_none_or(|limit| first > limit) {
                return Err(ScheduleError::FirstDueDateTooLate);
            }
        }
        Ok(())
    }

    /// Sum of the upfront fees.
    pub fn upfront_fee(&self) -> Result<Fen, ScheduleError> {
        Fen::checked_sum(self.fees.iter().map(FeeItem::upfront))
            .map_err(|_| ScheduleError::Overflow)
    }

    /// Sum of the monthly fees added to every period (each item rounded on its own).
    pub fn monthly_fee(&self) -> Fen {
        // Each item is at most the principal (rate < 1) and the principal is bounded,
        // so this sum cannot overflow for any realistic number of items.
        Fen::new(
            self.fees
                .iter()
                .map(|f| f.per_period(self.principal).as_fen())
                .sum(),
        )
    }

    /// The due date of period `number` (1-based).
    pub fn due_date(&self, number: u32) -> Result<NaiveDate, ScheduleError> {
        DueDates::of(self).date(number.saturating_sub(1))
    }
}

/// One period of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// 1-based period number.
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Fen,
    pub interest: Fen,
    pub fee: Fen,
    /// `principal + interest + fee`.
    pub payment: Fen,
    /// Principal outstanding after this period is paid.
    pub remaining: Fen,
}

/// A generated schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepaymentSchedule {
    /// Principal outstanding at the start of the plan (the loan principal, or the balance
    /// after a prepayment for a recomputed plan; see [`Prepayment`]).
    pub principal: Fen,
    /// Fees paid by the borrower at the start.
    pub upfront_fee: Fen,
    pub periods: Vec<Period>,
}

impl RepaymentSchedule {
    /// Builds the schedule of `terms`.
    pub fn generate(terms: &LoanTerms) -> Result<Self, ScheduleError> {
        let mut periods = Vec::with_capacity(terms.term.get() as usize);
        generate_into(terms, &mut periods)?;
        Ok(RepaymentSchedule {
            principal: terms.principal,
            upfront_fee: terms.upfront_fee()?,
            periods,
        })
    }

    pub fn total_principal(&self) -> Fen {
        sum(self.periods.iter().map(|p| p.principal))
    }

    pub fn total_interest(&self) -> Fen {
        sum(self.periods.iter().map(|p| p.interest))
    }

    /// Sum of the per-period fees (the upfront fee is not included).
    pub fn total_fee(&self) -> Fen {
        sum(self.periods.iter().map(|p| p.fee))
    }

    pub fn total_payment(&self) -> Fen {
        sum(self.periods.iter().map(|p| p.payment))
    }

    /// All-in annual cost (综合年化成本) of this schedule by the IRR method: the borrower
    /// receives `principal − upfront fee` and pays every period's payment; APR = monthly
    /// IRR × 12, rounded to 6 decimals.
    pub fn apr(&self) -> Result<Decimal, AprError> {
        let net = self
            .principal
            .checked_sub(self.upfront_fee)
            .map_err(|_| AprError::Overflow)?;
        let payments: Vec<Fen> = self.periods.iter().map(|p| p.payment).collect();
        apr::annualised_irr(net, &payments, 12)
    }
}

fn sum<I: Iterator<Item = Fen>>(it: I) -> Fen {
    // Bounded by MAX_PRINCIPAL × (1 + 10·360/12 + 360): far inside i64.
    Fen::new(it.map(Fen::as_fen).sum())
}

/// Generates the periods of `terms` into `out` (cleared first; its capacity is reused).
/// This is the schedule engine; [`RepaymentSchedule::generate`] wraps it.
pub fn generate_into(terms: &LoanTerms, out: &mut Vec<Period>) -> Result<(), ScheduleError> {
    terms.validate()?;
    out.clear();
    let dates = DueDates::of(terms);
    let (num, den) = terms.annual_rate.monthly_fraction();
    let plan = Plan {
        method: terms.method,
        balance: terms.principal.as_fen(),
        periods: terms.term.get(),
        num,
        den,
        day_count: terms.day_count,
        period_start: terms.start_date,
        broken_first: terms.first_due_date.is_some(),
        fee: terms.monthly_fee().as_fen(),
        carried_interest: 0,
        first_number: 1,
    };
    run(&plan, |i| dates.date(i), out)
}

/// Due-date calculator anchored on one date; day clamped to the month end.
#[derive(Debug, Clone, Copy)]
struct DueDates {
    months0: i32,
    day: u32,
    offset: u32,
}

impl DueDates {
    fn of(terms: &LoanTerms) -> Self {
        let (anchor, offset) = match terms.first_due_date {
            Some(d) => (d, 0),
            None => (terms.start_date, 1),
        };
        DueDates {
            months0: anchor.year() * 12 + anchor.month0() as i32,
            day: anchor.day(),
            offset,
        }
    }

    /// Due date of the 0-based period `index`.
    fn date(&self, index: u32) -> Result<NaiveDate, ScheduleError> {
        let m = self.months0 + (index + self.offset) as i32;
        let (year, month) = (m.div_euclid(12), m.rem_euclid(12) as u32 + 1);
        let day = self.day.min(days_in_month(year, month));
        NaiveDate::from_ymd_opt(year, month, day).ok_or(ScheduleError::DateOutOfRange)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The state the engine starts from: a fresh loan, or the tail after a prepayment.
#[derive(Debug, Clone, Copy)]
struct Plan {
    method: RepaymentMethod,
    /// Outstanding principal, fen.
    balance: i64,
    /// Number of periods to generate.
    periods: u32,
    /// Monthly rate `num / den`.
    num: i128,
    den: i128,
    day_count: DayCount,
    /// Start of the first generated period (the value date, or a due date).
    period_start: NaiveDate,
    /// The first generated period is period 1 with a first due date given, so it may be
    /// longer or shorter than a month.
    broken_first: bool,
    /// Fee added to every period, fen.
    fee: i64,
    /// Bullet only: interest accrued before this plan starts, paid in its last period.
    carried_interest: i64,
    /// Number of the first generated period.
    first_number: u32,
}

#[inline]
fn interest_on(balance: i64, num: i128, den: i128) -> i64 {
    // balance ≤ 10^15 and num < 10^11, so the product fits i128 and the result fits i64.
    div_round_half_up(i128::from(balance) * num, den) as i64
}

fn run(
    plan: &Plan,
    mut due: impl FnMut(u32) -> Result<NaiveDate, ScheduleError>,
    out: &mut Vec<Period>,
) -> Result<(), ScheduleError> {
    let n = plan.periods;
    if n == 0 {
        return Ok(());
    }
    out.reserve(n as usize);
    let mut balance = plan.balance;
    let installment = match plan.method {
        RepaymentMethod::EqualInstallment => annuity_installment(balance, plan.num, plan.den, n)?,
        RepaymentMethod::EqualPrincipal => {
            div_round_half_up(i128::from(balance), i128::from(n)) as i64
        }
        RepaymentMethod::InterestFirst | RepaymentMethod::Bullet => 0,
    };
    let mut accrued = plan.carried_interest;
    let accrual_rule = Accrual {
        day_count: plan.day_count,
        num: plan.num,
        den: plan.den,
    };
    // The common case (按月计息, whole months) needs no dates for interest.
    let monthly = plan.day_count == DayCount::Monthly;
    let mut from = plan.period_start;
    for i in 0..n {
        let last = i + 1 == n;
        let due_date = due(i)?;
        let accrual = if monthly && !(i == 0 && plan.broken_first) {
            interest_on(balance, plan.num, plan.den)
        } else {
            let (num, den) = accrual_rule.fraction(from, due_date, !(i == 0 && plan.broken_first));
            interest_on(balance, num, den)
        };
        from = due_date;
        let (principal, interest) = match plan.method {
            RepaymentMethod::EqualInstallment => {
                let p = if last {
                    balance
                } else {
                    (installment - accrual).clamp(0, balance)
                };
                (p, accrual)
            }
            RepaymentMethod::EqualPrincipal => {
                let p = if last {
                    balance
                } else {
                    installment.min(balance)
                };
                (p, accrual)
            }
            RepaymentMethod::InterestFirst => (if last { balance } else { 0 }, accrual),
            RepaymentMethod::Bullet => {
                accrued += accrual;
                if last {
                    (balance, accrued)
                } else {
                    (0, 0)
                }
            }
        };
        balance -= principal;
        out.push(Period {
            number: plan.first_number + i,
            due_date,
            principal: Fen::new(principal),
            interest: Fen::new(interest),
            fee: Fen::new(plan.fee),
            payment: Fen::new(principal + interest + plan.fee),
            remaining: Fen::new(balance),
        });
    }
    Ok(())
}

/// The equal installment `P·r / (1 − (1+r)^−n)`, rounded half-up to the fen.
///
/// Computed as `P·(r + r/e)` with `e = (1+r)^n − 1` built by binary powering in the
/// form `e_{a+b} = e_a + e_b + e_a·e_b`, which never subtracts nearly equal numbers,
/// so small rates keep all 28 significant digits of `Decimal` (an error many orders of
/// magnitude below the half-fen that decides the rounding).
fn annuity_installment(principal: i64, num: i128, den: i128, n: u32) -> Result<i64, ScheduleError> {
    if num == 0 {
        return Ok(div_round_half_up(i128::from(principal), i128::from(n)) as i64);
    }
    let to_dec = |v: i128| -> Result<Decimal, ScheduleError> {
        i64::try_from(v)
            .map(Decimal::from)
            .map_err(|_| ScheduleError::Overflow)
    };
    let r = to_dec(num)?
        .checked_div(to_dec(den)?)
        .ok_or(ScheduleError::Overflow)?;
    let combine = |a: Decimal, b: Decimal| -> Result<Decimal, ScheduleError> {
        a.checked_mul(b)
            .and_then(|ab| ab.checked_add(a))
            .and_then(|s| s.checked_add(b))
            .ok_or(ScheduleError::Overflow)
    };
    // e = (1+r)^n − 1 by square-and-multiply on the "minus one" form.
    let mut result: Option<Decimal> = None;
    let mut base = r;
    let mut k = n;
    loop {
        if k & 1 == 1 {
            result = Some(match result {
                None => base,
                Some(acc) => combine(acc, base)?,
            });
        }
        k >>= 1;
        if k == 0 {
            break;
        }
        base = combine(base, base)?;
    }
    let e = result.ok_or(ScheduleError::Overflow)?;
    let factor = r
        .checked_div(e)
        .and_then(|q| q.checked_add(r))
        .ok_or(ScheduleError::Overflow)?;
    let payment = Decimal::from(principal)
        .checked_mul(factor)
        .ok_or(ScheduleError::Overflow)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(payment).map_err(|_| ScheduleError::Overflow)
}

/// The result of an early partial repayment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepayment {
    /// The borrower paid periods `1..=after_period` as scheduled, then `amount` of extra
    /// principal on the due date of `after_period` (the start date if 0).
    pub after_period: u32,
    pub amount: Fen,
    /// Periods `1..=after_period` unchanged, followed by the recomputed periods. Its
    /// `principal` is the original one, so `total_principal() + amount == principal`.
    pub schedule: RepaymentSchedule,
}

/// Early partial repayment, keeping the term and reducing the installment (缩短金额,
/// 期限不变): periods after `after_period` are recomputed with the same method, rate,
/// per-period fee and due dates on the reduced balance.
///
/// `schedule` must be the one generated from `terms` (or a previous result of this
/// function for them). For a bullet loan, interest already accrued on the old balance
/// stays due at maturity.
pub fn prepay(
    terms: &LoanTerms,
    schedule: &RepaymentSchedule,
    after_period: u32,
    amount: Fen,
) -> Result<Prepayment, ScheduleError> {
    let periods = &schedule.periods;
    let last = periods.last().ok_or(ScheduleError::EmptySchedule)?;
    let k = after_period as usize;
    if k >= periods.len() {
        return Err(ScheduleError::PeriodOutOfRange);
    }
    let balance_before = outstanding_after(schedule, after_period)?;
    if !amount.is_positive() || amount >= balance_before {
        return Err(ScheduleError::PrepaymentOutOfRange);
    }
    let new_balance = balance_before.as_fen() - amount.as_fen();
    let (num, den) = terms.annual_rate.monthly_fraction();
    let remaining_periods = (periods.len() - k) as u32;
    let carried_interest = match terms.method {
        RepaymentMethod::Bullet => {
            // Interest accrued so far = final interest − what the rest would accrue.
            let rest = tail_accrual(terms, schedule, k, balance_before.as_fen());
            (last.interest.as_fen() - rest).max(0)
        }
        _ => 0,
    };
    let plan = Plan {
        method: terms.method,
        balance: new_balance,
        periods: remaining_periods,
        num,
        den,
        day_count: terms.day_count,
        period_start: period_start(terms, schedule, k),
        broken_first: k == 0 && terms.first_due_date.is_some(),
        fee: periods[k].fee.as_fen(),
        carried_interest,
        first_number: periods[k].number,
    };
    let mut new_periods = Vec::with_capacity(periods.len());
    new_periods.extend_from_slice(&periods[..k]);
    let tail = &periods[k..];
    run(&plan, |i| Ok(tail[i as usize].due_date), &mut new_periods)?;
    Ok(Prepayment {
        after_period,
        amount,
        schedule: RepaymentSchedule {
            principal: schedule.principal,
            upfront_fee: schedule.upfront_fee,
            periods: new_periods,
        },
    })
}

/// The start of period `k + 1` (0-based `k`): the start date, or the due date of period `k`.
fn period_start(terms: &LoanTerms, schedule: &RepaymentSchedule, k: usize) -> NaiveDate {
    match k {
        0 => terms.start_date,
        _ => schedule
            .periods
            .get(k - 1)
            .map_or(terms.start_date, |p| p.due_date),
    }
}

/// Interest the periods after the first `k` accrue on a constant `balance` (bullet loans:
/// what is not yet accrued at the due date of period `k`).
fn tail_accrual(terms: &LoanTerms, schedule: &RepaymentSchedule, k: usize, balance: i64) -> i64 {
    let (num, den) = terms.annual_rate.monthly_fraction();
    let rule = Accrual {
        day_count: terms.day_count,
        num,
        den,
    };
    let mut from = period_start(terms, schedule, k);
    let mut total = 0;
    for (i, p) in schedule.periods.iter().enumerate().skip(k) {
        let regular = !(i == 0 && terms.first_due_date.is_some());
        let (n, d) = rule.fraction(from, p.due_date, regular);
        total += interest_on(balance, n, d);
        from = p.due_date;
    }
    total
}

fn outstanding_after(
    schedule: &RepaymentSchedule,
    after_period: u32,
) -> Result<Fen, ScheduleError> {
    let k = after_period as usize;
    if k == 0 {
        // Before any period: everything the plan still has to repay.
        return Ok(schedule.total_principal());
    }
    schedule
        .periods
        .get(k - 1)
        .map(|p| p.remaining)
        .ok_or(ScheduleError::PeriodOutOfRange)
}

/// What it takes to repay the loan in full early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyPayoff {
    pub after_period: u32,
    /// Outstanding principal.
    pub principal: Fen,
    /// Interest accrued but not yet paid (bullet loans only; other methods pay interest
    /// every period, and interest is not charged for periods not reached).
    pub interest: Fen,
    /// `principal + interest`. Any prepayment penalty is a product setting, not here.
    pub total: Fen,
}

/// The amount that settles the loan on the due date of `after_period` (the start date
/// if 0), once that period has been paid.
pub fn payoff(
    terms: &LoanTerms,
    schedule: &RepaymentSchedule,
    after_period: u32,
) -> Result<EarlyPayoff, ScheduleError> {
    let last = schedule
        .periods
        .last()
        .ok_or(ScheduleError::EmptySchedule)?;
    if after_period as usize > schedule.periods.len() {
        return Err(ScheduleError::PeriodOutOfRange);
    }
    let principal = outstanding_after(schedule, after_period)?;
    let interest = match terms.method {
        RepaymentMethod::Bullet if after_period as usize == schedule.periods.len() => Fen::ZERO,
        RepaymentMethod::Bullet => {
            let rest = tail_accrual(terms, schedule, after_period as usize, principal.as_fen());
            Fen::new((last.interest.as_fen() - rest).max(0))
        }
        _ => Fen::ZERO,
    };
    Ok(EarlyPayoff {
        after_period,
        principal,
        interest,
        total: principal
            .checked_add(interest)
            .map_err(|_| ScheduleError::Overflow)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn terms(principal_yuan: i64, rate: &str, months: u32, method: RepaymentMethod) -> LoanTerms {
        LoanTerms::new(
            Fen::from_yuan(principal_yuan).unwrap(),
            Rate::parse(rate).unwrap(),
            Term::months(months).unwrap(),
            method,
            d(2026, 1, 15),
        )
    }

    #[test]
    fn equal_installment_reference() {
        let s = RepaymentSchedule::generate(&terms(
            100_000,
            "0.12",
            12,
            RepaymentMethod::EqualInstallment,
        ))
        .unwrap();
        for p in &s.periods[..11] {
            assert_eq!(p.payment, Fen::new(888_488), "period {}", p.number);
        }
        assert_eq!(s.periods[11].payment, Fen::new(888_485));
        assert_eq!(s.total_interest(), Fen::new(661_853));
        assert_eq!(s.periods[0].interest, Fen::new(100_000));
        assert_eq!(s.periods[11].remaining, Fen::ZERO);
    }

    #[test]
    fn equal_principal_reference() {
        let s = RepaymentSchedule::generate(&terms(
            120_000,
            "0.12",
            12,
            RepaymentMethod::EqualPrincipal,
        ))
        .unwrap();
        assert_eq!(s.periods[0].payment, Fen::new(1_120_000));
        assert_eq!(s.periods[11].payment, Fen::new(1_010_000));
        assert_eq!(s.total_interest(), Fen::new(780_000));
    }

    #[test]
    fn interest_first_and_bullet() {
        let s = RepaymentSchedule::generate(&terms(
            100_000,
            "0.12",
            12,
            RepaymentMethod::InterestFirst,
        ))
        .unwrap();
        assert!(s.periods[..11]
            .iter()
            .all(|p| p.payment == Fen::new(100_000)));
        assert_eq!(s.periods[11].payment, Fen::new(10_100_000));
        assert_eq!(s.total_interest(), Fen::new(1_200_000));

        let b = RepaymentSchedule::generate(&terms(100_000, "0.12", 12, RepaymentMethod::Bullet))
            .unwrap();
        assert!(b.periods[..11].iter().all(|p| p.payment == Fen::ZERO));
        assert_eq!(b.periods[11].payment, Fen::new(11_200_000));
        assert_eq!(b.periods[11].interest, Fen::new(1_200_000));
    }

    #[test]
    fn zero_rate_and_tiny_loans() {
        let s = RepaymentSchedule::generate(&terms(100, "0", 3, RepaymentMethod::EqualInstallment))
            .unwrap();
        let pays: Vec<i64> = s.periods.iter().map(|p| p.payment.as_fen()).collect();
        assert_eq!(pays, vec![3333, 3333, 3334]);
        let mut t = terms(1, "0", 12, RepaymentMethod::EqualPrincipal);
        t.principal = Fen::new(10);
        let s = RepaymentSchedule::generate(&t).unwrap();
        assert_eq!(s.total_principal(), Fen::new(10));
        assert!(s.periods.iter().all(|p| !p.remaining.is_negative()));
    }

    #[test]
    fn due_dates_clamp_to_month_end() {
        let t = terms(1000, "0.12", 4, RepaymentMethod::EqualInstallment)
            .with_first_due_date(d(2024, 1, 31));
        let mut t = t;
        t.start_date = d(2023, 12, 31);
        let s = RepaymentSchedule::generate(&t).unwrap();
        let dates: Vec<NaiveDate> = s.periods.iter().map(|p| p.due_date).collect();
        assert_eq!(
            dates,
            vec![
                d(2024, 1, 31),
                d(2024, 2, 29),
                d(2024, 3, 31),
                d(2024, 4, 30)
            ]
        );
        let mut t = terms(1000, "0.12", 2, RepaymentMethod::EqualInstallment);
        t.start_date = d(2025, 12, 31);
        let s = RepaymentSchedule::generate(&t).unwrap();
        assert_eq!(s.periods[0].due_date, d(2026, 1, 31));
        assert_eq!(s.periods[1].due_date, d(2026, 2, 28));
        assert_eq!(t.due_date(2), Ok(d(2026, 2, 28)));
    }

    #[test]
    fn fees_are_added_per_period_and_upfront() {
        let t = terms(100_000, "0.12", 12, RepaymentMethod::EqualInstallment)
            .with_fee(FeeItem {
                kind: FeeKind::Service,
                collector: Collector::Funder,
                charge: FeeCharge::Upfront {
                    amount: Fen::from_yuan(1000).unwrap(),
                },
            })
            .with_fee(FeeItem {
                kind: FeeKind::Guarantee,
                collector: Collector::Guarantor,
                charge: FeeCharge::MonthlyOnPrincipal {
                    rate: FeeRate::parse("0.001").unwrap(),
                },
            });
        let s = RepaymentSchedule::generate(&t).unwrap();
        assert_eq!(s.upfront_fee, Fen::from_yuan(1000).unwrap());
        assert!(s
            .periods
            .iter()
            .all(|p| p.fee == Fen::from_yuan(100).unwrap()));
        assert_eq!(s.periods[0].payment, Fen::new(888_488 + 10_000));
        assert_eq!(s.total_fee(), Fen::from_yuan(1200).unwrap());
    }

    #[test]
    fn rejects_invalid_terms() {
        let mut t = terms(1, "0.12", 12, RepaymentMethod::EqualInstallment);
        t.principal = Fen::ZERO;
        assert_eq!(
            RepaymentSchedule::generate(&t),
            Err(ScheduleError::PrincipalOutOfRange)
        );
        let t = terms(1, "0.12", 12, RepaymentMethod::Bullet).with_first_due_date(d(2026, 1, 15));
        assert_eq!(
            RepaymentSchedule::generate(&t),
            Err(ScheduleError::FirstDueDateNotAfterStart)
        );
        assert_eq!(Term::months(0), Err(ScheduleError::TermOutOfRange));
        assert_eq!(Term::months(361), Err(ScheduleError::TermOutOfRange));
        assert_eq!(
            RepaymentMethod::parse("等额本息"),
            Ok(RepaymentMethod::EqualInstallment)
        );
        assert_eq!(
            RepaymentMethod::parse("bullet"),
            Ok(RepaymentMethod::Bullet)
        );
        assert_eq!(
            RepaymentMethod::parse("x"),
            Err(ScheduleError::UnknownMethod)
        );
    }

    #[test]
    fn generate_into_reuses_buffer() {
        let t = terms(100_000, "0.12", 12, RepaymentMethod::EqualInstallment);
        let mut buf = Vec::new();
        generate_into(&t, &mut buf).unwrap();
        let cap = buf.capacity();
        let ptr = buf.as_ptr();
        generate_into(&t, &mut buf).unwrap();
        assert_eq!(buf.len(), 12);
        assert_eq!((buf.capacity(), buf.as_ptr()), (cap, ptr));
    }

    #[test]
    fn prepayment_keeps_term_and_lowers_installment() {
        let t = terms(100_000, "0.12", 12, RepaymentMethod::EqualInstallment);
        let s = RepaymentSchedule::generate(&t).unwrap();
        let pre = prepay(&t, &s, 6, Fen::from_yuan(20_000).unwrap()).unwrap();
        let ns = &pre.schedule;
        assert_eq!(ns.periods.len(), 12);
        assert_eq!(&ns.periods[..6], &s.periods[..6]);
        assert!(ns.periods[6].payment < s.periods[6].payment);
        assert_eq!(ns.periods[6].number, 7);
        assert_eq!(ns.periods[6].due_date, s.periods[6].due_date);
        assert_eq!(ns.periods[11].remaining, Fen::ZERO);
        assert_eq!(
            ns.total_principal().checked_add(pre.amount).unwrap(),
            t.principal
        );
        // Prepaying the whole balance is a payoff, not a prepayment.
        let bal = s.periods[5].remaining;
        assert_eq!(
            prepay(&t, &s, 6, bal),
            Err(ScheduleError::PrepaymentOutOfRange)
        );
        assert_eq!(
            prepay(&t, &s, 12, Fen::new(1)),
            Err(ScheduleError::PeriodOutOfRange)
        );
        let off = payoff(&t, &s, 6).unwrap();
        assert_eq!(off.total, bal);
    }

    #[test]
    fn bullet_prepayment_keeps_accrued_interest() {
        let t = terms(100_000, "0.12", 12, RepaymentMethod::Bullet);
        let s = RepaymentSchedule::generate(&t).unwrap();
        let off = payoff(&t, &s, 6).unwrap();
        assert_eq!(off.interest, Fen::from_yuan(6_000).unwrap());
        assert_eq!(off.total, Fen::from_yuan(106_000).unwrap());
        let pre = prepay(&t, &s, 6, Fen::from_yuan(50_000).unwrap()).unwrap();
        let last = pre.schedule.periods[11];
        // 6 months on 100,000 + 6 months on 50,000 at 1 % a month.
        assert_eq!(last.interest, Fen::from_yuan(6_000 + 3_000).unwrap());
        assert_eq!(last.principal, Fen::from_yuan(50_000).unwrap());
        // And a second prepayment still keeps what accrued before.
        let pre2 = prepay(&t, &pre.schedule, 9, Fen::from_yuan(10_000).unwrap()).unwrap();
        assert_eq!(
            pre2.schedule.periods[11].interest,
            Fen::from_yuan(6_000 + 1_500 + 1_200).unwrap()
        );
    }

    #[test]
    fn monthly_day_count_broken_first_period() {
        // A first due date exactly one month out is the same as none.
        let plain = terms(100_000, "0.12", 12, RepaymentMethod::EqualInstallment);
        let same = plain.clone().with_first_due_date(d(2026, 2, 15));
        assert_eq!(
            RepaymentSchedule::generate(&plain).unwrap().periods,
            RepaymentSchedule::generate(&same).unwrap().periods
        );
        // 15 Jan → 25 Feb: one month and 10 days = 40/360 of a year.
        let broken = plain.clone().with_first_due_date(d(2026, 2, 25));
        let s = RepaymentSchedule::generate(&broken).unwrap();
        assert_eq!(s.periods[0].interest, Fen::new(133_333));
        assert_eq!(s.periods[0].due_date, d(2026, 2, 25));
        assert_eq!(s.periods[1].due_date, d(2026, 3, 25));
        // The installment is unchanged; later periods are whole months.
        assert_eq!(s.periods[1].payment, Fen::new(888_488));
        assert_eq!(s.total_principal(), Fen::from_yuan(100_000).unwrap());
        // A short first period: 15 Jan → 5 Feb = 21 days.
        let short = plain.clone().with_first_due_date(d(2026, 2, 5));
        let s = RepaymentSchedule::generate(&short).unwrap();
        assert_eq!(s.periods[0].interest, Fen::new(70_000));
        assert_eq!(
            RepaymentSchedule::generate(&plain.with_first_due_date(d(2026, 3, 16))),
            Err(ScheduleError::FirstDueDateTooLate)
        );
    }

    #[test]
    fn actual_day_counts() {
        let base = terms(100_000, "0.12", 3, RepaymentMethod::InterestFirst);
        // 15 Jan → 15 Feb = 31 days, → 15 Mar = 28 days, → 15 Apr = 31 days.
        let s365 =
            RepaymentSchedule::generate(&base.clone().with_day_count(DayCount::Actual365)).unwrap();
        let i365: Vec<i64> = s365.periods.iter().map(|p| p.interest.as_fen()).collect();
        // 100,000 × 12 % × 31/365 = 1,019.178… ; × 28/365 = 920.547…
        assert_eq!(i365, vec![101_918, 92_055, 101_918]);
        let s360 =
            RepaymentSchedule::generate(&base.clone().with_day_count(DayCount::Actual360)).unwrap();
        let i360: Vec<i64> = s360.periods.iter().map(|p| p.interest.as_fen()).collect();
        assert_eq!(i360, vec![103_333, 93_333, 103_333]);
        // Bullet: the same accruals, paid at the end; payoff keeps what accrued.
        let b = base.clone().with_day_count(DayCount::Actual365);
        let b = LoanTerms {
            method: RepaymentMethod::Bullet,
            ..b
        };
        let bs = RepaymentSchedule::generate(&b).unwrap();
        assert_eq!(bs.periods[2].interest, Fen::new(101_918 + 92_055 + 101_918));
        let off = payoff(&b, &bs, 1).unwrap();
        assert_eq!(off.interest, Fen::new(101_918));
        assert_eq!(DayCount::parse("ACT/365"), Some(DayCount::Actual365));
        assert_eq!(DayCount::parse("nope"), None);
    }

    #[test]
    fn months_and_days_clamps_month_ends() {
        assert_eq!(months_and_days(d(2026, 1, 31), d(2026, 2, 28)), (1, 0));
        assert_eq!(months_and_days(d(2026, 1, 15), d(2026, 2, 25)), (1, 10));
        assert_eq!(months_and_days(d(2026, 1, 15), d(2026, 2, 5)), (0, 21));
        assert_eq!(months_and_days(d(2024, 1, 31), d(2024, 3, 31)), (2, 0));
    }

    fn arb_terms() -> impl Strategy<Value = LoanTerms> {
        (
            1_i64..=10_000_000_000,
            0_u32..=360_000,
            1_u32..=60,
            0_usize..4,
            0_u32..=50,
            (0_usize..3, 0_i64..=45, 0_i64..60),
        )
            .prop_map(
                |(principal, rate_bp, months, m, fee_bp, (dc, first_days, start_off))| {
                    let rate = Rate::from_decimal(Decimal::new(i64::from(rate_bp), 6)).unwrap();
                    let mut t = LoanTerms::new(
                        Fen::new(principal),
                        rate,
                        Term::months(months).unwrap(),
                        RepaymentMethod::ALL[m],
                        NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()
                            + chrono::Days::new(start_off as u64),
                    )
                    .with_day_count(DayCount::ALL[dc]);
                    if first_days >= 10 {
                        let first = t.start_date + chrono::Days::new(first_days as u64);
                        t = t.with_first_due_date(first);
                    }
                    if fee_bp > 0 {
                        t = t.with_fee(FeeItem {
                            kind: FeeKind::Service,
                            collector: Collector::Platform,
                            charge: FeeCharge::MonthlyOnPrincipal {
                                rate: FeeRate::from_decimal(Decimal::new(i64::from(fee_bp), 4))
                                    .unwrap(),
                            },
                        });
                    }
                    t
                },
            )
    }

    proptest! {
        #[test]
        fn schedule_invariants(t in arb_terms()) {
            let s = RepaymentSchedule::generate(&t).unwrap();
            prop_assert_eq!(s.periods.len() as u32, t.term.get());
            prop_assert_eq!(s.total_principal(), t.principal);
            let mut balance = t.principal;
            for p in &s.periods {
                prop_assert!(!p.principal.is_negative());
                prop_assert!(!p.interest.is_negative());
                prop_assert_eq!(p.payment.as_fen(), p.principal.as_fen() + p.interest.as_fen() + p.fee.as_fen());
                balance = balance.checked_sub(p.principal).unwrap();
                prop_assert_eq!(p.remaining, balance);
                prop_assert!(!p.remaining.is_negative());
            }
            prop_assert_eq!(s.periods.last().unwrap().remaining, Fen::ZERO);
            // Every period but the last follows the method exactly; the last one absorbs
            // the rounding (and only there may the regular amount be off).
            let n = s.periods.len();
            let fee = t.monthly_fee();
            match t.method {
                RepaymentMethod::EqualInstallment if t.day_count == DayCount::Monthly && t.first_due_date.is_none() => {
                    let first = s.periods[0].payment;
                    for p in &s.periods[..n - 1] {
                        // Equal until the balance runs out (tiny loans at high rates).
                        prop_assert!(p.payment == first || p.principal.is_zero() || p.remaining.is_zero());
                    }
                }
                RepaymentMethod::EqualPrincipal => {
                    let part = Fen::new(div_round_half_up(i128::from(t.principal.as_fen()), n as i128) as i64);
                    for p in &s.periods[..n - 1] {
                        prop_assert!(p.principal == part || p.remaining.is_zero());
                    }
                }
                RepaymentMethod::InterestFirst | RepaymentMethod::Bullet => {
                    for p in &s.periods[..n - 1] {
                        prop_assert!(p.principal.is_zero());
                    }
                    prop_assert_eq!(s.periods[n - 1].principal, t.principal);
                }
                _ => {}
            }
            for p in &s.periods {
                prop_assert_eq!(p.fee, fee);
            }
        }

        #[test]
        fn prepayment_invariants(t in arb_terms(), k_seed in 0_u32..360, permille in 1_i64..1000) {
            let s = RepaymentSchedule::generate(&t).unwrap();
            let n = s.periods.len() as u32;
            let k = k_seed % n;
            let bal = if k == 0 { t.principal } else { s.periods[k as usize - 1].remaining };
            let amount = Fen::new(bal.as_fen() * permille / 1000);
            match prepay(&t, &s, k, amount) {
                Ok(pre) => {
                    let ns = pre.schedule;
                    prop_assert_eq!(ns.total_principal().checked_add(amount).unwrap(), t.principal);
                    prop_assert_eq!(ns.periods.last().unwrap().remaining, Fen::ZERO);
                    for p in &ns.periods {
                        prop_assert!(!p.remaining.is_negative());
                        prop_assert_eq!(p.payment.as_fen(), p.principal.as_fen() + p.interest.as_fen() + p.fee.as_fen());
                    }
                }
                Err(e) => prop_assert_eq!(e, ScheduleError::PrepaymentOutOfRange),
            }
        }
    }
}
