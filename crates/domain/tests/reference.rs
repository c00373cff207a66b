//! The reference figures of `shared/design/rules-cn.md`, checked through the public API
//! only: the three reference schedules (12 % a year, 12 monthly periods), the APR
//! example, and the identifier vectors.

// Helpers outside `#[test]` functions are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use rust_decimal_macros::dec;
use zhudai_domain::generate;
use zhudai_domain::ident::{ResidentId, Uscc};
use zhudai_domain::money::{Fen, Rate};
use zhudai_domain::schedule::{
    generate_into, Collector, FeeCharge, FeeItem, FeeKind, LoanTerms, RepaymentMethod,
    RepaymentSchedule, Term,
};

fn yuan(s: &str) -> Fen {
    Fen::parse(s).unwrap()
}

fn reference_terms(principal: &str, method: RepaymentMethod) -> LoanTerms {
    LoanTerms::new(
        yuan(principal),
        Rate::parse("0.12").unwrap(),
        Term::months(12).unwrap(),
        method,
        NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
    )
}

#[test]
fn equal_installment_100000() {
    let s = RepaymentSchedule::generate(&reference_terms(
        "100000.00",
        RepaymentMethod::EqualInstallment,
    ))
    .unwrap();
    assert_eq!(s.periods.len(), 12);
    for p in &s.periods[..11] {
        assert_eq!(p.payment, yuan("8884.88"), "period {}", p.number);
    }
    assert_eq!(s.periods[11].payment, yuan("8884.85"));
    assert_eq!(s.total_interest(), yuan("6618.53"));
    assert_eq!(s.total_principal(), yuan("100000.00"));
    assert_eq!(s.periods[11].remaining, Fen::ZERO);
}

#[test]
fn equal_principal_120000() {
    let s = RepaymentSchedule::generate(&reference_terms(
        "120000.00",
        RepaymentMethod::EqualPrincipal,
    ))
    .unwrap();
    assert_eq!(s.periods[0].payment, yuan("11200.00"));
    assert_eq!(s.periods[11].payment, yuan("10100.00"));
    assert_eq!(s.total_interest(), yuan("7800.00"));
    assert!(s.periods.iter().all(|p| p.principal == yuan("10000.00")));
}

#[test]
fn interest_first_100000() {
    let s = RepaymentSchedule::generate(&reference_terms(
        "100000.00",
        RepaymentMethod::InterestFirst,
    ))
    .unwrap();
    for p in &s.periods[..11] {
        assert_eq!(p.payment, yuan("1000.00"));
    }
    assert_eq!(s.periods[11].payment, yuan("101000.00"));
    assert_eq!(s.total_interest(), yuan("12000.00"));
}

#[test]
fn apr_example_with_upfront_fee() {
    let plain = reference_terms("100000.00", RepaymentMethod::EqualInstallment);
    let apr = RepaymentSchedule::generate(&plain).unwrap().apr().unwrap();
    assert!((apr - dec!(0.12)).abs() <= dec!(0.000001), "{apr}");
    // Rounding of the payments puts the exact IRR at 0.11999974 a year.
    assert_eq!(apr, dec!(0.120000));

    let with_fee = plain.with_fee(FeeItem {
        kind: FeeKind::Service,
        collector: Collector::Funder,
        charge: FeeCharge::Upfront {
            amount: yuan("1000.00"),
        },
    });
    let s = RepaymentSchedule::generate(&with_fee).unwrap();
    // The fee is paid separately: the payments are the same 8,884.88 × 11 + 8,884.85.
    assert_eq!(s.periods[0].payment, yuan("8884.88"));
    let apr = s.apr().unwrap();
    assert!(apr > dec!(0.12), "{apr}");
    assert_eq!(apr.scale(), 6);
    // Independently computed: receive 99,000, pay 8,884.88 × 11 + 8,884.85.
    assert_eq!(apr, dec!(0.139131));
}

#[test]
fn identifier_vectors() {
    assert!(ResidentId::parse("11010519491231002X").is_ok());
    assert!(ResidentId::parse("110105194912310021").is_err());
    assert!(Uscc::parse("91110000600037341L").is_ok());
    assert_eq!(
        ResidentId::parse("110105194912310021").unwrap_err().code(),
        "resident_id.checksum"
    );
}

#[test]
fn generated_identifiers_are_valid() {
    for seed in 0..100 {
        assert!(ResidentId::parse(generate::resident_id(seed).as_str()).is_ok());
        assert!(Uscc::parse(generate::uscc(seed).as_str()).is_ok());
    }
}

/// Throughput of the schedule engine; run with
/// `cargo test --release -p zhudai-domain --test reference -- --ignored --nocapture`.
/// The target is at least 1,000,000 twelve-period schedules a second on one core.
#[test]
#[ignore = "timing; run in release"]
fn schedule_throughput() {
    let count = 2_000_000_u32;
    for method in RepaymentMethod::ALL {
        let mut terms = reference_terms("100000.00", method);
        let mut buf = Vec::with_capacity(12);
        let mut check = 0_i64;
        let start = std::time::Instant::now();
        for i in 0..count {
            // Vary the principal so nothing is hoisted out of the loop.
            terms.principal = Fen::new(1_000_000 + i64::from(i));
            generate_into(&terms, &mut buf).unwrap();
            check = check.wrapping_add(buf[11].payment.as_fen());
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{:>18}: {:>10.0} schedules/s (checksum {check})",
            method.code(),
            f64::from(count) / secs
        );
    }
}
