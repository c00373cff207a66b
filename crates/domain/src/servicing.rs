//! Loan servicing (贷后还款): a loan's installments, the allocation of a payment over them
//! in a configurable order, early partial and early full repayment with the schedule
//! recalculated by [`crate::schedule`], overpayment held as a credit, and days past due.
//!
//! # Rules
//! - **What is due** on a value date: every unsettled installment whose due date is on or
//!   before it (installment 0 is an upfront fee, due on the disbursement date).
//! - **Allocation** (default): oldest installment first, within it penalty → fee →
//!   interest → principal. The component order is configurable, and so is the strategy
//!   ([`AllocationStrategy::ComponentFirst`] pays one component on every installment
//!   before the next component).
//! - **Scheduled** pays everything due (or, when nothing is due yet, the next installment
//!   in full, ahead of its date); **partial** pays less than is due (and needs something
//!   due). What is left over is held as a credit (溢缴款) and used first by the next
//!   posting.
//! - **Early partial** (提前部分还款) pays what is due, then the rest reduces principal.
//!   The periods after the last due (or settled) one are recomputed by
//!   [`schedule::prepay`]: same term, lower installments, the prepayment taking effect
//!   from the start of the current period (the convention of `schedule.rs`).
//! - **Early full** (提前结清) pays what is due, the outstanding principal, interest
//!   carried by a bullet loan ([`schedule::payoff`]) and interest on the outstanding
//!   principal for the days of the current period up to the value date (daily rate =
//!   annual / 360, or / 365 for ACT/365). Later periods' interest and fees are not
//!   charged. An excess is held as a credit.
//! - Amounts already paid on an installment are never reduced by a recalculation: a
//!   prepaid amount is recorded on the first recomputed installment as principal both due
//!   and paid, so Σ principal due over a loan always equals its principal.

use crate::ledger::{Account, Entry, EntryBuilder, EntryKind, LedgerError};
use crate::money::{div_round_half_up, Fen};
use crate::schedule::{
    self, DayCount, LoanTerms, Period, RepaymentMethod, RepaymentSchedule, ScheduleError,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A part of what an installment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Penalty,
    Fee,
    Interest,
    Principal,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Penalty,
        Component::Fee,
        Component::Interest,
        Component::Principal,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Component::Penalty => "penalty",
            Component::Fee => "fee",
            Component::Interest => "interest",
            Component::Principal => "principal",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.code() == s.trim())
    }

    /// The receivable account of this component.
    pub fn account(self) -> Account {
        match self {
            Component::Penalty => Account::PenaltyReceivable,
            Component::Fee => Account::FeeReceivable,
            Component::Interest => Account::InterestReceivable,
            Component::Principal => Account::LoanPrincipal,
        }
    }
}

/// How a payment is spread over several installments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationStrategy {
    /// Oldest installment first, every component of it in order (横向, the default).
    #[default]
    InstallmentFirst,
    /// The first component on every installment (oldest first), then the next (纵向).
    ComponentFirst,
}

/// The allocation order (还款冲销顺序).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AllocationOrder {
    pub components: [Component; 4],
    #[serde(default)]
    pub strategy: AllocationStrategy,
}

impl Default for AllocationOrder {
    /// penalty → fee → interest → principal, installment first.
    fn default() -> Self {
        AllocationOrder {
            components: Component::ALL,
            strategy: AllocationStrategy::InstallmentFirst,
        }
    }
}

impl AllocationOrder {
    /// Parses `"penalty,fee,interest,principal"` (every component exactly once).
    pub fn parse(s: &str, strategy: AllocationStrategy) -> Option<AllocationOrder> {
        let parts: Vec<Component> = s
            .split([',', '>', ' '])
            .filter(|p| !p.trim().is_empty())
            .map(Component::parse)
            .collect::<Option<_>>()?;
        if parts.len() != 4 || Component::ALL.iter().any(|c| !parts.contains(c)) {
            return None;
        }
        Some(AllocationOrder {
            components: [parts[0], parts[1], parts[2], parts[3]],
            strategy,
        })
    }
}

/// Amounts per component, in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Amounts {
    pub principal: i64,
    pub interest: i64,
    pub fee: i64,
    pub penalty: i64,
}

impl Amounts {
    pub fn get(&self, c: Component) -> i64 {
        match c {
            Component::Penalty => self.penalty,
            Component::Fee => self.fee,
            Component::Interest => self.interest,
            Component::Principal => self.principal,
        }
    }

    fn slot(&mut self, c: Component) -> &mut i64 {
        match c {
            Component::Penalty => &mut self.penalty,
            Component::Fee => &mut self.fee,
            Component::Interest => &mut self.interest,
            Component::Principal => &mut self.principal,
        }
    }

    pub fn total(&self) -> i64 {
        self.principal + self.interest + self.fee + self.penalty
    }

    pub fn minus(&self, o: &Amounts) -> Amounts {
        Amounts {
            principal: self.principal - o.principal,
            interest: self.interest - o.interest,
            fee: self.fee - o.fee,
            penalty: self.penalty - o.penalty,
        }
    }

    pub fn plus(&self, o: &Amounts) -> Amounts {
        Amounts {
            principal: self.principal + o.principal,
            interest: self.interest + o.interest,
            fee: self.fee + o.fee,
            penalty: self.penalty + o.penalty,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Amounts::default()
    }
}

/// One installment as stored: what is due (penalty = accrued so far) and what was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installment {
    /// 0 = the upfront fee; 1… the periods of the schedule.
    pub number: u32,
    pub due_date: NaiveDate,
    pub due: Amounts,
    pub paid: Amounts,
}

impl Installment {
    pub fn outstanding(&self) -> Amounts {
        self.due.minus(&self.paid)
    }

    pub fn is_settled(&self) -> bool {
        self.outstanding().total() == 0
    }
}

/// The installments of a new loan: installment 0 for upfront fees (if any), then one per
/// period of the schedule of `terms`.
pub fn opening_installments(
    terms: &LoanTerms,
) -> Result<(RepaymentSchedule, Vec<Installment>), ScheduleError> {
    let s = RepaymentSchedule::generate(terms)?;
    let mut out = Vec::with_capacity(s.periods.len() + 1);
    if s.upfront_fee.is_positive() {
        out.push(Installment {
            number: 0,
            due_date: terms.start_date,
            due: Amounts {
                fee: s.upfront_fee.as_fen(),
                ..Amounts::default()
            },
            paid: Amounts::default(),
        });
    }
    out.extend(s.periods.iter().map(|p| Installment {
        number: p.number,
        due_date: p.due_date,
        due: Amounts {
            principal: p.principal.as_fen(),
            interest: p.interest.as_fen(),
            fee: p.fee.as_fen(),
            penalty: 0,
        },
        paid: Amounts::default(),
    }));
    Ok((s, out))
}

/// What the borrower intends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepaymentKind {
    Scheduled,
    Partial,
    EarlyPartial,
    EarlyFull,
}

impl RepaymentKind {
    pub const ALL: [RepaymentKind; 4] = [
        RepaymentKind::Scheduled,
        RepaymentKind::Partial,
        RepaymentKind::EarlyPartial,
        RepaymentKind::EarlyFull,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RepaymentKind::Scheduled => "scheduled",
            RepaymentKind::Partial => "partial",
            RepaymentKind::EarlyPartial => "early_partial",
            RepaymentKind::EarlyFull => "early_full",
        }
    }

    pub fn parse(s: &str) -> Option<RepaymentKind> {
        RepaymentKind::ALL
            .into_iter()
            .find(|k| k.code() == s.trim())
    }
}

/// A payment to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: RepaymentKind,
    /// Money received now.
    pub cash: Fen,
    /// Credit held for the borrower from earlier overpayments (used first).
    pub credit: Fen,
    pub value_date: NaiveDate,
}

/// Why a payment cannot be posted as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicingError {
    #[error("the amount must be more than 0")]
    AmountNotPositive,
    #[error("the loan is fully repaid")]
    LoanClosed,
    #[error("less than the {due} yuan due; post it as a partial repayment")]
    BelowDue { due: Fen },
    #[error("{due} yuan is due and the amount covers it; post it as a scheduled repayment")]
    NotBelowDue { due: Fen },
    #[error("nothing is due yet; pay the next installment in full or repay early")]
    NothingDue,
    #[error("the amount must be more than the {due} yuan due; what is left reduces principal")]
    NothingToPrepay { due: Fen },
    #[error("the amount settles the loan ({payoff} yuan); post it as an early full repayment")]
    CoversPayoff { payoff: Fen },
    #[error("settling the loan takes {payoff} yuan")]
    BelowPayoff { payoff: Fen },
    #[error("no installment is left after the value date; repay as scheduled")]
    NoFutureInstallment,
    #[error("installment {0} was partly paid ahead; pay it in full first")]
    FuturePartlyPaid(u32),
    #[error("schedule: {0}")]
    Schedule(#[from] ScheduleError),
}

impl ServicingError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            ServicingError::AmountNotPositive => "servicing.amount_not_positive",
            ServicingError::LoanClosed => "servicing.loan_closed",
            ServicingError::BelowDue { .. } => "servicing.below_due",
            ServicingError::NotBelowDue { .. } => "servicing.not_below_due",
            ServicingError::NothingDue => "servicing.nothing_due",
            ServicingError::NothingToPrepay { .. } => "servicing.nothing_to_prepay",
            ServicingError::CoversPayoff { .. } => "servicing.covers_payoff",
            ServicingError::BelowPayoff { .. } => "servicing.below_payoff",
            ServicingError::NoFutureInstallment => "servicing.no_future_installment",
            ServicingError::FuturePartlyPaid(_) => "servicing.future_partly_paid",
            ServicingError::Schedule(e) => e.code(),
        }
    }

    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ServicingError::LoanClosed
            | ServicingError::NothingDue
            | ServicingError::NoFutureInstallment
            | ServicingError::FuturePartlyPaid(_)
            | ServicingError::NotBelowDue { .. }
            | ServicingError::CoversPayoff { .. } => "kind",
            _ => "amount",
        }
    }
}

/// What posting changes on one installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstallmentChange {
    /// Index into the installments given to [`post`].
    pub index: usize,
    /// Paid by this posting.
    pub paid: Amounts,
    /// The recalculated due amounts (penalty unchanged), if the schedule changed.
    pub new_due: Option<Amounts>,
    /// This posting settles the installment.
    pub settles: bool,
}

/// The outcome of posting a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub kind: RepaymentKind,
    pub cash: Fen,
    pub changes: Vec<InstallmentChange>,
    /// Paid per component (principal includes a prepayment).
    pub paid: Amounts,
    /// Principal repaid ahead of the schedule (early repayments).
    pub prepaid_principal: Fen,
    /// New total interest due − old (a recalculation; negative when interest is saved).
    pub interest_due_delta: i64,
    pub fee_due_delta: i64,
    /// Held credit used by this posting.
    pub credit_used: Fen,
    /// Excess added to the held credit.
    pub overpaid: Fen,
    /// Every installment is settled afterwards.
    pub paid_off: bool,
    /// The installments after posting.
    pub after: Vec<Installment>,
}

impl Posting {
    /// The balanced journal entry of this posting.
    pub fn entry(&self) -> Result<Entry, LedgerError> {
        let mut b = EntryBuilder::new(EntryKind::Repayment)
            .debit(Account::CashClearing, self.cash)
            .debit(Account::BorrowerOverpayment, self.credit_used);
        for c in Component::ALL {
            b = b.credit(c.account(), Fen::new(self.paid.get(c)));
        }
        b.credit(Account::BorrowerOverpayment, self.overpaid)
            .shift(
                Account::InterestReceivable,
                Account::InterestUnearned,
                self.interest_due_delta,
            )
            .shift(
                Account::FeeReceivable,
                Account::FeeUnearned,
                self.fee_due_delta,
            )
            .build()
    }
}

/// Sum of what is outstanding on the installments due on or before `as_of`.
pub fn due_now(insts: &[Installment], as_of: NaiveDate) -> Fen {
    Fen::new(
        insts
            .iter()
            .filter(|i| i.due_date <= as_of)
            .map(|i| i.outstanding().total())
            .sum(),
    )
}

/// Everything still outstanding on the loan.
pub fn outstanding(insts: &[Installment]) -> Amounts {
    insts
        .iter()
        .fold(Amounts::default(), |a, i| a.plus(&i.outstanding()))
}

/// Days past due and the first overdue day, as of a business date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Delinquency {
    /// Days since the due date of the oldest unpaid installment due before `as_of`.
    pub dpd: u32,
    /// The day after that due date (the first day it was overdue).
    pub overdue_since: Option<NaiveDate>,
}

/// An installment is overdue from the day after its due date until it is settled.
pub fn delinquency(insts: &[Installment], as_of: NaiveDate) -> Delinquency {
    insts
        .iter()
        .filter(|i| i.due_date < as_of && !i.is_settled())
        .map(|i| i.due_date)
        .min()
        .map_or(Delinquency::default(), |d| Delinquency {
            dpd: u32::try_from((as_of - d).num_days()).unwrap_or(u32::MAX),
            overdue_since: d.succ_opt(),
        })
}

/// What settling the loan on a date takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PayoffQuote {
    pub value_date: NaiveDate,
    /// Outstanding on installments due by the value date (penalty included).
    pub due_now: Fen,
    /// Principal not yet due.
    pub principal: Fen,
    /// Interest of the current period to the value date, plus a bullet loan's carried
    /// interest.
    pub interest: Fen,
    pub total: Fen,
}

/// The amount that settles the loan on `value_date` (early full repayment).
pub fn payoff_quote(
    insts: &[Installment],
    terms: &LoanTerms,
    value_date: NaiveDate,
) -> Result<PayoffQuote, ServicingError> {
    let ctx = EarlyContext::of(insts, terms, value_date)?;
    let interest = ctx.payoff_interest(terms)?;
    let due = due_now(insts, value_date).as_fen();
    Ok(PayoffQuote {
        value_date,
        due_now: Fen::new(due),
        principal: Fen::new(ctx.balance),
        interest: Fen::new(interest),
        total: Fen::new(due + ctx.balance + interest),
    })
}

/// The periods after the last due or settled one, and the schedule as it stands.
struct EarlyContext {
    /// Indices (into the installments) of the periods, number ≥ 1, in order.
    periods: Vec<usize>,
    /// Periods before the current one (due or settled).
    k: usize,
    /// The schedule with future periods' principal reduced by what was prepaid on them.
    schedule: RepaymentSchedule,
    /// Principal not yet due.
    balance: i64,
    /// Days of the current period up to the value date.
    days: i64,
}

impl EarlyContext {
    fn of(
        insts: &[Installment],
        terms: &LoanTerms,
        value_date: NaiveDate,
    ) -> Result<Self, ServicingError> {
        if insts.iter().all(Installment::is_settled) {
            return Err(ServicingError::LoanClosed);
        }
        let mut periods: Vec<usize> = (0..insts.len()).filter(|&i| insts[i].number >= 1).collect();
        periods.sort_by_key(|&i| insts[i].number);
        let k = periods
            .iter()
            .take_while(|&&i| {
                // Due, or paid ahead in full (a period with nothing due, such as a
                // bullet loan's, is not "paid ahead").
                let it = &insts[i];
                it.due_date <= value_date || (it.is_settled() && it.due.total() > 0)
            })
            .count();
        if k == periods.len() {
            return Err(ServicingError::NoFutureInstallment);
        }
        for &i in &periods[k..] {
            let p = &insts[i].paid;
            if p.interest != 0 || p.fee != 0 || p.penalty != 0 {
                return Err(ServicingError::FuturePartlyPaid(insts[i].number));
            }
        }
        let mut rows: Vec<Period> = periods
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let it = &insts[i];
                let principal = if j >= k {
                    it.due.principal - it.paid.principal
                } else {
                    it.due.principal
                };
                Period {
                    number: it.number,
                    due_date: it.due_date,
                    principal: Fen::new(principal),
                    interest: Fen::new(it.due.interest),
                    fee: Fen::new(it.due.fee),
                    payment: Fen::new(principal + it.due.interest + it.due.fee),
                    remaining: Fen::ZERO,
                }
            })
            .collect();
        let total: i64 = rows.iter().map(|p| p.principal.as_fen()).sum();
        let mut left = total;
        for p in &mut rows {
            left -= p.principal.as_fen();
            p.remaining = Fen::new(left);
        }
        let balance: i64 = rows[k..].iter().map(|p| p.principal.as_fen()).sum();
        let start = if k == 0 {
            terms.start_date
        } else {
            insts[periods[k - 1]].due_date
        };
        let days = (value_date - start).num_days().max(0);
        Ok(EarlyContext {
            periods,
            k,
            schedule: RepaymentSchedule {
                principal: Fen::new(total),
                upfront_fee: Fen::ZERO,
                periods: rows,
            },
            balance,
            days,
        })
    }

    /// Interest charged on early full repayment: a bullet loan's accrued interest to the
    /// start of the current period, plus the current period's days on the balance.
    fn payoff_interest(&self, terms: &LoanTerms) -> Result<i64, ServicingError> {
        let carried = match terms.method {
            RepaymentMethod::Bullet => schedule::payoff(terms, &self.schedule, self.k as u32)?
                .interest
                .as_fen(),
            _ => 0,
        };
        Ok(carried + broken_interest(terms, self.balance, self.days))
    }
}

/// Interest on `amount` for `days` days at the daily rate of the terms' day count
/// (annual / 360; annual / 365 for ACT/365), rounded half-up to the fen.
pub fn broken_interest(terms: &LoanTerms, amount: i64, days: i64) -> i64 {
    let (num, den) = terms.annual_rate.monthly_fraction();
    // annual = 12·num/den
    let basis: i128 = match terms.day_count {
        DayCount::Actual365 => 365,
        DayCount::Monthly | DayCount::Actual360 => 360,
    };
    div_round_half_up(
        i128::from(amount) * 12 * num * i128::from(days),
        den * basis,
    ) as i64
}

/// Pays `funds` over `targets` in `order`; returns what is left.
fn allocate(w: &mut [Installment], targets: &[usize], funds: i64, order: &AllocationOrder) -> i64 {
    let mut left = funds;
    let pay = |inst: &mut Installment, c: Component, left: &mut i64| {
        let owed = inst.due.get(c) - inst.paid.get(c);
        let x = owed.min(*left).max(0);
        *inst.paid.slot(c) += x;
        *left -= x;
    };
    match order.strategy {
        AllocationStrategy::InstallmentFirst => {
            for &t in targets {
                for c in order.components {
                    pay(&mut w[t], c, &mut left);
                }
            }
        }
        AllocationStrategy::ComponentFirst => {
            for c in order.components {
                for &t in targets {
                    pay(&mut w[t], c, &mut left);
                }
            }
        }
    }
    left
}

/// Posts a payment on `insts` (the loan's installments, in any order).
pub fn post(
    insts: &[Installment],
    terms: &LoanTerms,
    order: &AllocationOrder,
    req: &Request,
) -> Result<Posting, ServicingError> {
    if !req.cash.is_positive() || req.credit.is_negative() {
        return Err(ServicingError::AmountNotPositive);
    }
    if insts.iter().all(Installment::is_settled) {
        return Err(ServicingError::LoanClosed);
    }
    let funds = req.cash.as_fen() + req.credit.as_fen();
    let mut order_idx: Vec<usize> = (0..insts.len()).collect();
    order_idx.sort_by_key(|&i| (insts[i].due_date, insts[i].number));
    let due_idx: Vec<usize> = order_idx
        .iter()
        .copied()
        .filter(|&i| insts[i].due_date <= req.value_date && !insts[i].is_settled())
        .collect();
    let due: i64 = due_idx
        .iter()
        .map(|&i| insts[i].outstanding().total())
        .sum();
    let mut w = insts.to_vec();
    let mut prepaid = 0_i64;
    let leftover = match req.kind {
        RepaymentKind::Scheduled | RepaymentKind::Partial => {
            let targets = if due > 0 {
                due_idx
            } else if req.kind == RepaymentKind::Partial {
                return Err(ServicingError::NothingDue);
            } else {
                order_idx
                    .iter()
                    .copied()
                    .find(|&i| !insts[i].is_settled())
                    .into_iter()
                    .collect()
            };
            let target: i64 = targets
                .iter()
                .map(|&i| insts[i].outstanding().total())
                .sum();
            match req.kind {
                RepaymentKind::Scheduled if funds < target => {
                    return Err(ServicingError::BelowDue {
                        due: Fen::new(target),
                    })
                }
                RepaymentKind::Partial if funds >= target => {
                    return Err(ServicingError::NotBelowDue {
                        due: Fen::new(target),
                    })
                }
                _ => {}
            }
            allocate(&mut w, &targets, funds, order)
        }
        RepaymentKind::EarlyPartial => {
            let ctx = EarlyContext::of(insts, terms, req.value_date)?;
            let rest = funds - due;
            if rest <= 0 {
                return Err(ServicingError::NothingToPrepay { due: Fen::new(due) });
            }
            if rest >= ctx.balance {
                let payoff = due + ctx.balance + ctx.payoff_interest(terms)?;
                return Err(ServicingError::CoversPayoff {
                    payoff: Fen::new(payoff),
                });
            }
            allocate(&mut w, &due_idx, due, order);
            let pre = schedule::prepay(terms, &ctx.schedule, ctx.k as u32, Fen::new(rest))?;
            for (j, np) in pre.schedule.periods[ctx.k..].iter().enumerate() {
                let inst = &mut w[ctx.periods[ctx.k + j]];
                inst.due.principal = np.principal.as_fen() + inst.paid.principal;
                inst.due.interest = np.interest.as_fen();
                inst.due.fee = np.fee.as_fen();
            }
            let first = &mut w[ctx.periods[ctx.k]];
            first.due.principal += rest;
            first.paid.principal += rest;
            prepaid = rest;
            0
        }
        RepaymentKind::EarlyFull => {
            let ctx = EarlyContext::of(insts, terms, req.value_date)?;
            let interest = ctx.payoff_interest(terms)?;
            let payoff = due + ctx.balance + interest;
            if funds < payoff {
                return Err(ServicingError::BelowPayoff {
                    payoff: Fen::new(payoff),
                });
            }
            allocate(&mut w, &due_idx, due, order);
            for (j, &i) in ctx.periods[ctx.k..].iter().enumerate() {
                let inst = &mut w[i];
                let prior = inst.paid.principal;
                inst.due = Amounts {
                    principal: prior + if j == 0 { ctx.balance } else { 0 },
                    interest: if j == 0 { interest } else { 0 },
                    fee: 0,
                    penalty: inst.due.penalty,
                };
                inst.paid = inst.due;
            }
            prepaid = ctx.balance;
            funds - payoff
        }
    };
    let mut changes = Vec::new();
    let mut paid = Amounts::default();
    let (mut di, mut df) = (0_i64, 0_i64);
    for (i, (old, new)) in insts.iter().zip(&w).enumerate() {
        if old == new {
            continue;
        }
        let p = new.paid.minus(&old.paid);
        paid = paid.plus(&p);
        di += new.due.interest - old.due.interest;
        df += new.due.fee - old.due.fee;
        let due_changed = new.due != old.due;
        changes.push(InstallmentChange {
            index: i,
            paid: p,
            new_due: due_changed.then_some(new.due),
            settles: !old.is_settled() && new.is_settled(),
        });
    }
    let credit = req.credit.as_fen();
    Ok(Posting {
        kind: req.kind,
        cash: req.cash,
        changes,
        paid,
        prepaid_principal: Fen::new(prepaid),
        interest_due_delta: di,
        fee_due_delta: df,
        credit_used: Fen::new((credit - leftover).max(0)),
        overpaid: Fen::new((leftover - credit).max(0)),
        paid_off: w.iter().all(Installment::is_settled),
        after: w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Account;
    use crate::money::Rate;
    use crate::schedule::Term;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn terms(method: RepaymentMethod) -> LoanTerms {
        LoanTerms::new(
            Fen::from_yuan(100_000).unwrap(),
            Rate::parse("0.12").unwrap(),
            Term::months(12).unwrap(),
            method,
            d(2026, 1, 15),
        )
    }

    fn req(kind: RepaymentKind, fen: i64, date: NaiveDate) -> Request {
        Request {
            kind,
            cash: Fen::new(fen),
            credit: Fen::ZERO,
            value_date: date,
        }
    }

    fn apply(insts: &mut Vec<Installment>, p: &Posting) {
        *insts = p.after.clone();
    }

    /// Every posting keeps the ledger identity: the entry's effect on each receivable
    /// equals the change in what the installments have outstanding.
    fn check(before: &[Installment], p: &Posting) {
        let e = p.entry().unwrap();
        let b = outstanding(before);
        let a = outstanding(&p.after);
        for c in Component::ALL {
            assert_eq!(
                e.effect_on(c.account()),
                a.get(c) - b.get(c),
                "{c:?} in {p:?}"
            );
        }
        let sum_principal: i64 = p.after.iter().map(|i| i.due.principal).sum();
        assert_eq!(sum_principal, 10_000_000);
        assert_eq!(e.effect_on(Account::CashClearing), p.cash.as_fen());
    }

    #[test]
    fn scheduled_and_partial_follow_the_order() {
        let t = terms(RepaymentMethod::EqualInstallment);
        let (_, mut insts) = opening_installments(&t).unwrap();
        // Nothing due on 2026-02-10: scheduled pays installment 1 ahead, in full.
        assert_eq!(
            post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(RepaymentKind::Partial, 100, d(2026, 2, 10))
            ),
            Err(ServicingError::NothingDue)
        );
        assert_eq!(
            post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(RepaymentKind::Scheduled, 100, d(2026, 2, 10))
            ),
            Err(ServicingError::BelowDue {
                due: Fen::new(888_488)
            })
        );
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::Scheduled, 900_000, d(2026, 2, 10)),
        )
        .unwrap();
        check(&insts, &p);
        assert_eq!(p.paid.interest, 100_000);
        assert_eq!(p.paid.principal, 788_488);
        assert_eq!(p.overpaid, Fen::new(900_000 - 888_488));
        assert!(p.changes[0].settles);
        apply(&mut insts, &p);
        // Installment 2 overdue with a penalty accrued; a partial payment pays penalty,
        // then interest, then principal.
        insts[1].due.penalty = 500;
        let credit = Fen::new(900_000 - 888_488);
        let r = Request {
            kind: RepaymentKind::Partial,
            cash: Fen::new(100_000),
            credit,
            value_date: d(2026, 3, 20),
        };
        let p = post(&insts, &t, &AllocationOrder::default(), &r).unwrap();
        check(&insts, &p);
        assert_eq!(p.paid.penalty, 500);
        assert_eq!(p.paid.interest, insts[1].due.interest);
        assert_eq!(
            p.paid.principal,
            100_000 + credit.as_fen() - 500 - insts[1].due.interest
        );
        assert_eq!(p.credit_used, credit);
        assert_eq!(p.overpaid, Fen::ZERO);
        let e = p.entry().unwrap();
        assert_eq!(e.effect_on(Account::BorrowerOverpayment), -credit.as_fen());
        // Principal first instead: the same money goes to principal, nothing to penalty.
        let o = AllocationOrder::parse(
            "principal,interest,fee,penalty",
            AllocationStrategy::InstallmentFirst,
        )
        .unwrap();
        let p2 = post(&insts, &t, &o, &r).unwrap();
        assert_eq!(p2.paid.penalty, 0);
        assert_eq!(p2.paid.principal, 100_000 + credit.as_fen());
        assert!(
            AllocationOrder::parse("principal,interest,fee", AllocationStrategy::default())
                .is_none()
        );
        assert!(AllocationOrder::parse(
            "principal,interest,fee,fee",
            AllocationStrategy::default()
        )
        .is_none());
    }

    #[test]
    fn component_first_pays_every_installments_interest_first() {
        let t = terms(RepaymentMethod::EqualInstallment);
        let (_, insts) = opening_installments(&t).unwrap();
        // Three installments due; 300,000 fen.
        let order = AllocationOrder::parse(
            "interest,principal,fee,penalty",
            AllocationStrategy::ComponentFirst,
        )
        .unwrap();
        let p = post(
            &insts,
            &t,
            &order,
            &req(RepaymentKind::Partial, 300_000, d(2026, 4, 20)),
        )
        .unwrap();
        check(&insts, &p);
        let interest: i64 = insts[..3].iter().map(|i| i.due.interest).sum();
        assert_eq!(p.paid.interest, interest);
        assert_eq!(p.paid.principal, 300_000 - interest);
        // Installment first would have paid installment 1 in full first.
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::Partial, 300_000, d(2026, 4, 20)),
        )
        .unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.paid.principal, 200_000);
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::Partial, 1_000_000, d(2026, 4, 20)),
        )
        .unwrap();
        assert!(p.changes[0].settles);
        assert_eq!(p.changes[1].paid.total(), 1_000_000 - 888_488);
        assert_eq!(delinquency(&p.after, d(2026, 4, 20)).dpd, 36);
        assert_eq!(
            delinquency(&p.after, d(2026, 4, 20)).overdue_since,
            Some(d(2026, 3, 16))
        );
        assert_eq!(delinquency(&insts, d(2026, 2, 15)).dpd, 0);
        assert_eq!(delinquency(&insts, d(2026, 2, 16)).dpd, 1);
    }

    #[test]
    fn early_partial_recalculates_with_prepay() {
        let t = terms(RepaymentMethod::EqualInstallment);
        let (s, mut insts) = opening_installments(&t).unwrap();
        for k in 0..6 {
            let date = insts[k].due_date;
            let p = post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(RepaymentKind::Scheduled, insts[k].due.total(), date),
            )
            .unwrap();
            apply(&mut insts, &p);
        }
        // On 2026-08-01 (between periods 6 and 7): 20,000 yuan extra.
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::EarlyPartial, 2_000_000, d(2026, 8, 1)),
        )
        .unwrap();
        check(&insts, &p);
        let expected = schedule::prepay(&t, &s, 6, Fen::new(2_000_000)).unwrap();
        for (j, np) in expected.schedule.periods[6..].iter().enumerate() {
            let inst = &p.after[6 + j];
            let prepaid = if j == 0 { 2_000_000 } else { 0 };
            assert_eq!(inst.due.principal, np.principal.as_fen() + prepaid);
            assert_eq!(inst.due.interest, np.interest.as_fen());
        }
        let old_interest: i64 = insts[6..].iter().map(|i| i.due.interest).sum();
        let new_interest: i64 = expected.schedule.periods[6..]
            .iter()
            .map(|p| p.interest.as_fen())
            .sum();
        assert_eq!(p.interest_due_delta, new_interest - old_interest);
        assert!(p.interest_due_delta < 0);
        assert_eq!(p.prepaid_principal, Fen::new(2_000_000));
        apply(&mut insts, &p);
        // A second early partial in the same period works on the reduced balance.
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::EarlyPartial, 1_000_000, d(2026, 8, 5)),
        )
        .unwrap();
        check(&insts, &p);
        let bal: i64 = insts[6..]
            .iter()
            .map(|i| i.due.principal - i.paid.principal)
            .sum();
        let bal_after: i64 = p.after[6..]
            .iter()
            .map(|i| i.due.principal - i.paid.principal)
            .sum();
        assert_eq!(bal - bal_after, 1_000_000);
        // Too much for a partial: it settles the loan.
        assert!(matches!(
            post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(RepaymentKind::EarlyPartial, 99_000_000, d(2026, 8, 5))
            ),
            Err(ServicingError::CoversPayoff { .. })
        ));
    }

    #[test]
    fn early_full_charges_the_days_of_the_current_period() {
        let t = terms(RepaymentMethod::EqualInstallment);
        let (s, mut insts) = opening_installments(&t).unwrap();
        for k in 0..3 {
            let p = post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(
                    RepaymentKind::Scheduled,
                    insts[k].due.total(),
                    insts[k].due_date,
                ),
            )
            .unwrap();
            apply(&mut insts, &p);
        }
        // 2026-04-15 → 2026-05-05 = 20 days on the balance after period 3.
        let bal = s.periods[2].remaining.as_fen();
        let q = payoff_quote(&insts, &t, d(2026, 5, 5)).unwrap();
        assert_eq!(q.principal.as_fen(), bal);
        // bal × 0.12 × 20 / 360, half-up.
        let expect = (i128::from(bal) * 12 * 20 * 2 + 100 * 360) / (2 * 100 * 360);
        assert_eq!(q.interest.as_fen() as i128, expect);
        assert_eq!(q.due_now, Fen::ZERO);
        assert_eq!(
            post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(
                    RepaymentKind::EarlyFull,
                    q.total.as_fen() - 1,
                    d(2026, 5, 5)
                )
            ),
            Err(ServicingError::BelowPayoff { payoff: q.total })
        );
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(
                RepaymentKind::EarlyFull,
                q.total.as_fen() + 700,
                d(2026, 5, 5),
            ),
        )
        .unwrap();
        check(&insts, &p);
        assert!(p.paid_off);
        assert_eq!(p.overpaid, Fen::new(700));
        assert_eq!(p.paid.total(), q.total.as_fen());
        assert_eq!(outstanding(&p.after), Amounts::default());
        apply(&mut insts, &p);
        assert_eq!(
            post(
                &insts,
                &t,
                &AllocationOrder::default(),
                &req(RepaymentKind::Scheduled, 1, d(2026, 5, 6))
            ),
            Err(ServicingError::LoanClosed)
        );
    }

    #[test]
    fn bullet_payoff_keeps_carried_interest_and_overdue_goes_first() {
        let t = terms(RepaymentMethod::Bullet);
        let (_, insts) = opening_installments(&t).unwrap();
        // Nothing is due before maturity for a bullet loan; on 2026-07-25: 6 months and
        // 10 days of interest.
        let q = payoff_quote(&insts, &t, d(2026, 7, 25)).unwrap();
        assert_eq!(q.interest, Fen::new(600_000 + 33_333));
        assert_eq!(q.total, Fen::new(10_000_000 + 633_333));
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::EarlyFull, q.total.as_fen(), d(2026, 7, 25)),
        )
        .unwrap();
        check(&insts, &p);
        assert!(p.paid_off);
        // Equal principal with an overdue installment: early full pays it (with its
        // penalty) first.
        let t = terms(RepaymentMethod::EqualPrincipal);
        let (_, mut insts) = opening_installments(&t).unwrap();
        insts[0].due.penalty = 1234;
        let q = payoff_quote(&insts, &t, d(2026, 2, 20)).unwrap();
        assert_eq!(q.due_now.as_fen(), insts[0].due.total());
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::EarlyFull, q.total.as_fen(), d(2026, 2, 20)),
        )
        .unwrap();
        check(&insts, &p);
        assert_eq!(p.paid.penalty, 1234);
    }

    #[test]
    fn upfront_fee_is_installment_zero() {
        use crate::schedule::{Collector, FeeCharge, FeeItem, FeeKind};
        let t = terms(RepaymentMethod::EqualInstallment).with_fee(FeeItem {
            kind: FeeKind::Service,
            collector: Collector::Platform,
            charge: FeeCharge::Upfront {
                amount: Fen::from_yuan(1000).unwrap(),
            },
        });
        let (_, insts) = opening_installments(&t).unwrap();
        assert_eq!(insts[0].number, 0);
        assert_eq!(insts[0].due.fee, 100_000);
        assert_eq!(insts[0].due_date, t.start_date);
        assert_eq!(due_now(&insts, t.start_date), Fen::new(100_000));
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::Scheduled, 100_000, t.start_date),
        )
        .unwrap();
        check(&insts, &p);
        assert_eq!(p.paid.fee, 100_000);
        // Early partial before the first period: the upfront fee (due) is paid first.
        let p = post(
            &insts,
            &t,
            &AllocationOrder::default(),
            &req(RepaymentKind::EarlyPartial, 1_100_000, d(2026, 1, 20)),
        )
        .unwrap();
        check(&insts, &p);
        assert_eq!(p.paid.fee, 100_000);
        assert_eq!(p.prepaid_principal, Fen::new(1_000_000));
    }
}
