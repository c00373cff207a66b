//! The all-in annual cost (综合融资成本 / APR) of a loan by the IRR method
//! (PBOC announcement 〔2021〕No.3): solve the periodic internal rate of return of the
//! borrower's cash flows `[-(principal − upfront fees), payment₁, …, paymentₙ]` and
//! multiply by the periods per year.
//!
//! Everything is `Decimal` (28 significant digits); no `f64` anywhere. The solver works
//! on the discount factor `v = 1/(1+i)`, where the net present value is a polynomial
//! that is strictly increasing for non-negative payments, so the root is unique; it runs
//! Newton's method kept inside a bisection bracket, so it always converges.

use crate::money::Fen;
use rust_decimal::{Decimal, RoundingStrategy};

/// Decimal places of the returned APR.
pub const APR_DECIMALS: u32 = 6;

/// Why an APR could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AprError {
    #[error("there are no payments")]
    NoPayments,
    #[error("the amount received by the borrower must be more than 0")]
    NonPositiveNetAmount,
    #[error("payments must not be negative")]
    NegativePayment,
    #[error("the cash flows have no rate of return that can be computed")]
    NoSolution,
    #[error("overflow while computing the rate")]
    Overflow,
}

impl AprError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            AprError::NoPayments => "apr.no_payments",
            AprError::NonPositiveNetAmount => "apr.non_positive_net_amount",
            AprError::NegativePayment => "apr.negative_payment",
            AprError::NoSolution => "apr.no_solution",
            AprError::Overflow => "apr.overflow",
        }
    }
}

/// `(f(v), f'(v))` for `f(v) = −net + Σ payment_k · v^k`, by Horner's rule.
fn npv_and_slope(net: Decimal, payments: &[Decimal], v: Decimal) -> Option<(Decimal, Decimal)> {
    let mut f = Decimal::ZERO; // Σ p_k v^(k-1), built from the last payment down
    let mut df = Decimal::ZERO; // its derivative
    for p in payments.iter().rev() {
        df = df.checked_mul(v)?.checked_add(f)?;
        f = f.checked_mul(v)?.checked_add(*p)?;
    }
    // g(v) = v · f(v): value v·f − net, slope f + v·f'.
    let value = v.checked_mul(f)?.checked_sub(net)?;
    let slope = f.checked_add(v.checked_mul(df)?)?;
    Some((value, slope))
}

/// The periodic IRR `i` solving `net = Σ payment_k / (1+i)^k`, unrounded (about 20
/// significant digits).
pub fn periodic_irr(net_received: Fen, payments: &[Fen]) -> Result<Decimal, AprError> {
    if payments.is_empty() {
        return Err(AprError::NoPayments);
    }
    if !net_received.is_positive() {
        return Err(AprError::NonPositiveNetAmount);
    }
    if payments.iter().any(|p| p.is_negative()) {
        return Err(AprError::NegativePayment);
    }
    if payments.iter().all(|p| p.is_zero()) {
        return Err(AprError::NoSolution);
    }
    let net = Decimal::from(net_received.as_fen());
    let pays: Vec<Decimal> = payments.iter().map(|p| Decimal::from(p.as_fen())).collect();
    let eval = |v: Decimal| npv_and_slope(net, &pays, v).ok_or(AprError::Overflow);

    // Bracket: f(0) = −net < 0. Find hi with f(hi) ≥ 0 (hi = 1 means IRR ≥ 0).
    let mut lo = Decimal::ZERO;
    let mut hi = Decimal::ONE;
    let mut tries = 0;
    while eval(hi)?.0 < Decimal::ZERO {
        lo = hi;
        hi = hi.checked_mul(Decimal::TWO).ok_or(AprError::Overflow)?;
        tries += 1;
        if tries > 16 {
            return Err(AprError::NoSolution);
        }
    }
    let tolerance = Decimal::new(1, 24);
    // Start near a 1 % monthly rate, a typical value, clamped into the bracket.
    let mut v = Decimal::new(99, 2);
    if v <= lo || v >= hi {
        v = (lo + hi) / Decimal::TWO;
    }
    for _ in 0..400 {
        let (f, df) = eval(v)?;
        if f.is_zero() {
            break;
        }
        if f < Decimal::ZERO {
            lo = v;
        } else {
            hi = v;
        }
        let newton = if df > Decimal::ZERO {
            f.checked_div(df).and_then(|step| v.checked_sub(step))
        } else {
            None
        };
        let next = match newton {
            Some(x) if x > lo && x < hi => x,
            _ => (lo + hi) / Decimal::TWO,
        };
        let done = (next - v).abs() < tolerance || (hi - lo) < tolerance;
        v = next;
        if done {
            break;
        }
    }
    if v <= Decimal::ZERO {
        return Err(AprError::NoSolution);
    }
    Decimal::ONE
        .checked_div(v)
        .and_then(|x| x.checked_sub(Decimal::ONE))
        .ok_or(AprError::Overflow)
}

/// Periodic IRR × `periods_per_year`, rounded half-up to [`APR_DECIMALS`] places
/// (0.123456 = 12.3456 % a year).
pub fn annualised_irr(
    net_received: Fen,
    payments: &[Fen],
    periods_per_year: u32,
) -> Result<Decimal, AprError> {
    let i = periodic_irr(net_received, payments)?;
    i.checked_mul(Decimal::from(periods_per_year))
        .map(|a| a.round_dp_with_strategy(APR_DECIMALS, RoundingStrategy::MidpointAwayFromZero))
        .ok_or(AprError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Rate;
    use crate::schedule::{
        Collector, FeeCharge, FeeItem, FeeKind, LoanTerms, RepaymentMethod, RepaymentSchedule, Term,
    };
    use chrono::NaiveDate;
    use rust_decimal_macros::dec;

    fn schedule(method: RepaymentMethod, upfront_yuan: i64) -> RepaymentSchedule {
        let mut t = LoanTerms::new(
            Fen::from_yuan(100_000).unwrap(),
            Rate::parse("0.12").unwrap(),
            Term::months(12).unwrap(),
            method,
            NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        );
        if upfront_yuan > 0 {
            t = t.with_fee(FeeItem {
                kind: FeeKind::Service,
                collector: Collector::Funder,
                charge: FeeCharge::Upfront {
                    amount: Fen::from_yuan(upfront_yuan).unwrap(),
                },
            });
        }
        RepaymentSchedule::generate(&t).unwrap()
    }

    #[test]
    fn no_fee_equal_installment_apr_is_nominal_rate() {
        let apr = schedule(RepaymentMethod::EqualInstallment, 0)
            .apr()
            .unwrap();
        assert!((apr - dec!(0.12)).abs() <= dec!(0.000001), "{apr}");
    }

    #[test]
    fn no_fee_interest_first_apr_is_exactly_nominal() {
        let apr = schedule(RepaymentMethod::InterestFirst, 0).apr().unwrap();
        assert_eq!(apr, dec!(0.12));
    }

    #[test]
    fn upfront_fee_raises_apr() {
        let apr = schedule(RepaymentMethod::EqualInstallment, 1_000)
            .apr()
            .unwrap();
        assert!(apr > dec!(0.12), "{apr}");
        // Receiving 99,000 and paying 8,884.88 × 11 + 8,884.85: about 13.9 % a year.
        assert!(apr > dec!(0.138) && apr < dec!(0.140), "{apr}");
    }

    #[test]
    fn simple_one_period_irr() {
        // Receive 100, pay 110 a period later: 10 % a period.
        let i = periodic_irr(Fen::new(10_000), &[Fen::new(11_000)]).unwrap();
        assert!((i - dec!(0.1)).abs() < dec!(0.0000000001), "{i}");
        // Paying back less than received: a negative rate.
        let i = periodic_irr(Fen::new(10_000), &[Fen::new(9_000)]).unwrap();
        assert!((i - dec!(-0.1)).abs() < dec!(0.0000000001), "{i}");
    }

    #[test]
    fn rejects_degenerate_flows() {
        assert_eq!(periodic_irr(Fen::new(1), &[]), Err(AprError::NoPayments));
        assert_eq!(
            periodic_irr(Fen::ZERO, &[Fen::new(1)]),
            Err(AprError::NonPositiveNetAmount)
        );
        assert_eq!(
            periodic_irr(Fen::new(1), &[Fen::new(-1)]),
            Err(AprError::NegativePayment)
        );
        assert_eq!(
            periodic_irr(Fen::new(1), &[Fen::ZERO]),
            Err(AprError::NoSolution)
        );
    }
}
