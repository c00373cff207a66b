//! `zhudai calc …`: loan maths for loan officers and scripts, with no database and no
//! configuration. The contract (issue #5):
//!
//! ```text
//! zhudai calc schedule --principal 100000 --annual-rate 0.12 --months 12
//!     --method equal-installment|equal-principal|interest-first|bullet
//!     [--upfront-fee 1000] [--monthly-fee-rate 0.006] [--json]
//! ```
//!
//! prints the schedule as a table with totals and the all-in APR, or with `--json` an
//! object `{"periods":[{"period":1,"principal":"…","interest":"…","fee":"…",
//! "payment":"…","balance":"…"},…],"apr":"0.1280",…}`: amounts are decimal strings in
//! yuan with two decimals, `apr` has four decimals.

use crate::cli::Failure;
use chrono::NaiveDate;
use clap::Subcommand;
use std::io::Write;
use zhudai_domain::money::{FeeRate, Fen, Rate};
use zhudai_domain::product::apr_4dp;
use zhudai_domain::schedule::{
    Collector, DayCount, FeeCharge, FeeItem, FeeKind, LoanTerms, RepaymentMethod,
    RepaymentSchedule, Term,
};

#[derive(Debug, Subcommand)]
pub enum CalcWhat {
    /// A repayment schedule with its totals and all-in APR (IRR method)
    Schedule(ScheduleArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// Principal in yuan, e.g. 100000 or 100000.00
    #[arg(long)]
    pub principal: String,
    /// Nominal annual interest rate as a fraction, e.g. 0.12
    #[arg(long)]
    pub annual_rate: String,
    /// Term in months (1–360)
    #[arg(long)]
    pub months: u32,
    /// equal-installment (等额本息), equal-principal (等额本金), interest-first (先息后本) or bullet (一次性还本付息)
    #[arg(long)]
    pub method: String,
    /// A fee in yuan paid once at the start, separately from the principal
    #[arg(long)]
    pub upfront_fee: Option<String>,
    /// A monthly fee as a fraction of the original principal, e.g. 0.006
    #[arg(long)]
    pub monthly_fee_rate: Option<String>,
    /// Value date YYYY-MM-DD (default 2026-01-01; due dates follow it month by month)
    #[arg(long)]
    pub start_date: Option<String>,
    /// Interest day count: monthly (30/360, default), actual-360 or actual-365
    #[arg(long)]
    pub day_count: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

fn bad(field: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Config(format!("--{field}: {e}"))
}

/// Builds the loan terms from the arguments; every mistake names its flag.
pub fn terms_from(args: &ScheduleArgs) -> Result<LoanTerms, Failure> {
    let principal = Fen::parse(&args.principal).map_err(|e| bad("principal", e))?;
    let rate = Rate::parse(&args.annual_rate).map_err(|e| bad("annual-rate", e))?;
    let term = Term::months(args.months).map_err(|e| bad("months", e))?;
    let method = RepaymentMethod::parse(&args.method.replace('-', "_")).map_err(|_| {
        bad(
            "method",
            format!(
                "`{}` is not a method; use equal-installment, equal-principal, interest-first or bullet",
                args.method
            ),
        )
    })?;
    let start = match &args.start_date {
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| bad("start-date", "use YYYY-MM-DD"))?,
        None => NaiveDate::from_ymd_opt(2026, 1, 1)
            .ok_or_else(|| Failure::Runtime("calendar".into()))?,
    };
    let day_count = match &args.day_count {
        Some(s) => DayCount::parse(&s.replace('-', "_"))
            .ok_or_else(|| bad("day-count", "use monthly, actual-360 or actual-365"))?,
        None => DayCount::Monthly,
    };
    let mut terms = LoanTerms::new(principal, rate, term, method, start).with_day_count(day_count);
    if let Some(f) = &args.upfront_fee {
        let amount = Fen::parse(f).map_err(|e| bad("upfront-fee", e))?;
        if amount.is_positive() {
            terms = terms.with_fee(FeeItem {
                kind: FeeKind::Service,
                collector: Collector::Funder,
                charge: FeeCharge::Upfront { amount },
            });
        }
    }
    if let Some(r) = &args.monthly_fee_rate {
        let rate = FeeRate::parse(r).map_err(|e| bad("monthly-fee-rate", e))?;
        terms = terms.with_fee(FeeItem {
            kind: FeeKind::Service,
            collector: Collector::Funder,
            charge: FeeCharge::MonthlyOnPrincipal { rate },
        });
    }
    terms.validate().map_err(|e| bad("principal", e))?;
    if terms.upfront_fee().map_err(|e| bad("upfront-fee", e))? >= terms.principal {
        return Err(bad(
            "upfront-fee",
            "the upfront fee must be less than the principal",
        ));
    }
    Ok(terms)
}

/// The JSON document of a schedule (see the module doc).
pub fn to_json(terms: &LoanTerms, s: &RepaymentSchedule) -> Result<serde_json::Value, Failure> {
    let apr = s.apr().map_err(|e| Failure::Runtime(format!("APR: {e}")))?;
    let periods: Vec<serde_json::Value> = s
        .periods
        .iter()
        .map(|p| {
            serde_json::json!({
                "period": p.number,
                "due_date": p.due_date.to_string(),
                "principal": p.principal.to_string(),
                "interest": p.interest.to_string(),
                "fee": p.fee.to_string(),
                "payment": p.payment.to_string(),
                "balance": p.remaining.to_string(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "method": terms.method.code(),
        "principal": terms.principal.to_string(),
        "annual_rate": terms.annual_rate.to_string(),
        "months": terms.term.get(),
        "day_count": terms.day_count.code(),
        "start_date": terms.start_date.to_string(),
        "upfront_fee": s.upfront_fee.to_string(),
        "periods": periods,
        "totals": {
            "principal": s.total_principal().to_string(),
            "interest": s.total_interest().to_string(),
            "fee": s.total_fee().to_string(),
            "payment": s.total_payment().to_string(),
        },
        "apr": apr_4dp(apr),
        "apr_exact": format!("{apr:.6}"),
    }))
}

/// The schedule as a plain-text table.
pub fn to_table(terms: &LoanTerms, s: &RepaymentSchedule) -> Result<String, Failure> {
    let apr = s.apr().map_err(|e| Failure::Runtime(format!("APR: {e}")))?;
    let mut out = String::new();
    out.push_str(&format!(
        "{} ({}), principal {}, {} months, annual rate {}, day count {}\n",
        terms.method.code(),
        terms.method.zh_name(),
        terms.principal,
        terms.term.get(),
        terms.annual_rate,
        terms.day_count.code()
    ));
    let line = format!(
        "{:>6}  {:<10}  {:>16}  {:>14}  {:>12}  {:>16}  {:>16}\n",
        "period", "due", "principal", "interest", "fee", "payment", "balance"
    );
    out.push_str(&line);
    out.push_str(&format!("{}\n", "-".repeat(line.trim_end().len())));
    for p in &s.periods {
        out.push_str(&format!(
            "{:>6}  {:<10}  {:>16}  {:>14}  {:>12}  {:>16}  {:>16}\n",
            p.number,
            p.due_date.to_string(),
            p.principal.to_string(),
            p.interest.to_string(),
            p.fee.to_string(),
            p.payment.to_string(),
            p.remaining.to_string()
        ));
    }
    out.push_str(&format!("{}\n", "-".repeat(line.trim_end().len())));
    out.push_str(&format!(
        "{:>6}  {:<10}  {:>16}  {:>14}  {:>12}  {:>16}\n",
        "total",
        "",
        s.total_principal().to_string(),
        s.total_interest().to_string(),
        s.total_fee().to_string(),
        s.total_payment().to_string()
    ));
    if s.upfront_fee.is_positive() {
        out.push_str(&format!(
            "upfront fee (paid separately at the start): {}\n",
            s.upfront_fee
        ));
    }
    out.push_str(&format!(
        "APR (all-in annual cost, IRR × 12): {} ({:.2} %)\n",
        apr_4dp(apr),
        apr * rust_decimal::Decimal::ONE_HUNDRED
    ));
    Ok(out)
}

pub fn run(what: CalcWhat) -> Result<(), Failure> {
    match what {
        CalcWhat::Schedule(args) => {
            let terms = terms_from(&args)?;
            let s = RepaymentSchedule::generate(&terms).map_err(|e| bad("months", e))?;
            let text = if args.json {
                to_json(&terms, &s)?.to_string()
            } else {
                to_table(&terms, &s)?
            };
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", text.trim_end()).map_err(|e| Failure::Runtime(e.to_string()))?;
            Ok(())
        }
    }
}
