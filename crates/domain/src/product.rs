//! Loan products (贷款产品) and quotes: what one version of a product allows, the rules a
//! version must meet before it may be saved (above all the all-in cost cap), and the quote
//! with its 综合融资成本明示表 (disclosure of the all-in financing cost).
//!
//! # The cap check
//!
//! A version may not be saved when the all-in annual cost (APR by IRR, see [`crate::apr`])
//! of ANY loan it allows exceeds the cap. The search ([`ProductSpec::cap_check`]) covers:
//!
//! - **every repayment method** the version allows and **every term** in its range (the
//!   APR is not monotone in the term: an upfront fee weighs less on a long loan, a monthly
//!   fee on the original principal weighs more, since the balance falls);
//! - **the smallest amount**, where the APR is highest, plus the largest amount and two
//!   amounts in between. Why the smallest amount is the worst case: before rounding, every
//!   payment is proportional to the amount `A` (`p_k = A·e_k`: interest and monthly fees
//!   are rates of the amount), while an upfront fee `U` is fixed. The periodic IRR `i`
//!   solves `1 − U/A = Σ e_k (1+i)^−k`; the right side falls as `i` rises, and the left
//!   side rises with `A`, so `i` falls as `A` grows when `U > 0` and does not depend on `A`
//!   when `U = 0`. Rounding to the fen moves payments by a few fen (the last period
//!   absorbs at most about one fen per period), which can move the APR of an individual
//!   amount by about `12·n/A` (under 0.00004 a year for 36 periods on 10,000 yuan); the
//!   extra amounts checked catch gross surprises, and every quote re-checks its own APR
//!   against the cap, so no single loan can exceed it;
//! - **every start date**, for the day counts by actual days: the check prices every period
//!   as a 31-day month (annual rate × 31/30 for ACT/360, × 372/365 for ACT/365, rounded
//!   up), the longest a regular period can be. Every payment of every method is
//!   non-decreasing in each period's interest (equal installment: more interest leaves more
//!   balance for the last period), and the IRR increases with the payments, so this bounds
//!   the APR of any start date.
//!
//! The default cost (逾期成本) is penalty interest (罚息) on overdue principal at the
//! annual rate × (1 + markup), accrued daily at 1/360 (PBOC: 30 %–50 % above the contract
//! rate). It must not exceed the cap either (courts cut overdue charges above it,
//! 法发〔2017〕22号).

use crate::apr::APR_DECIMALS;
use crate::money::{FeeRate, Fen, Rate};
use crate::schedule::{
    Collector, DayCount, FeeCharge, FeeItem, FeeKind, LoanTerms, Period, RepaymentMethod,
    RepaymentSchedule, Term, MAX_PRINCIPAL,
};
use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Default all-in cost cap: 24 % a year (rules-cn.md).
pub const DEFAULT_APR_CAP: Decimal = Decimal::from_parts(24, 0, 0, false, 2);
/// No setting may raise the cap above 36 % a year.
pub const MAX_APR_CAP: Decimal = Decimal::from_parts(36, 0, 0, false, 2);
/// Highest penalty markup: the PBOC range is 30 %–50 % above the contract rate.
pub const MAX_PENALTY_MARKUP: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// Material types a product may require (what the document module collects).
pub const MATERIAL_TYPES: &[&str] = &[
    "id_front",
    "id_back",
    "income_proof",
    "bank_statement",
    "credit_report",
    "business_licence",
];

/// Checks that a cap setting is allowed: more than 0 and at most 36 %.
pub fn validate_cap(cap: Decimal) -> Result<(), String> {
    if cap <= Decimal::ZERO || cap > MAX_APR_CAP {
        return Err(format!(
            "the APR cap {cap} must be more than 0 and at most {MAX_APR_CAP} (36 % a year)"
        ));
    }
    Ok(())
}

/// Where a product stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// Being designed: no quotes for customers.
    Draft,
    /// Open for quotes and applications.
    Active,
    /// Closed for new business; existing contracts keep their version.
    Retired,
}

impl ProductStatus {
    pub fn code(self) -> &'static str {
        match self {
            ProductStatus::Draft => "draft",
            ProductStatus::Active => "active",
            ProductStatus::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(ProductStatus::Draft),
            "active" => Some(ProductStatus::Active),
            "retired" => Some(ProductStatus::Retired),
            _ => None,
        }
    }

    /// Allowed changes: draft → active, draft/active → retired, retired → active (re-open).
    pub fn can_become(self, next: ProductStatus) -> bool {
        matches!(
            (self, next),
            (ProductStatus::Draft, ProductStatus::Active)
                | (ProductStatus::Draft, ProductStatus::Retired)
                | (ProductStatus::Active, ProductStatus::Retired)
                | (ProductStatus::Retired, ProductStatus::Active)
        )
    }
}

/// Who may borrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligibility {
    pub min_age: u32,
    pub max_age: u32,
    /// Material types from [`MATERIAL_TYPES`].
    #[serde(default)]
    pub required_materials: Vec<String>,
}

impl Default for Eligibility {
    fn default() -> Self {
        Eligibility {
            min_age: 18,
            max_age: 60,
            required_materials: vec!["id_front".into(), "id_back".into()],
        }
    }
}

/// The content of one product version (everything a quote depends on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSpec {
    /// Allowed repayment methods (at least one).
    pub methods: Vec<RepaymentMethod>,
    pub min_months: u32,
    pub max_months: u32,
    pub min_amount: Fen,
    pub max_amount: Fen,
    /// Nominal annual interest rate.
    pub annual_rate: Rate,
    #[serde(default)]
    pub day_count: DayCount,
    #[serde(default)]
    pub fees: Vec<FeeItem>,
    /// Penalty interest on overdue principal = annual rate × (1 + markup); 0–0.5.
    #[serde(default = "default_markup")]
    pub penalty_markup: Decimal,
    #[serde(default)]
    pub eligibility: Eligibility,
    /// Codes of the funders (partners) that may take this product.
    #[serde(default)]
    pub funder_codes: Vec<String>,
}

fn default_markup() -> Decimal {
    Decimal::new(5, 1)
}

/// A problem with one field of a product, for the API to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductProblem {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn problem(
    field: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> ProductProblem {
    ProductProblem {
        field: field.into(),
        code,
        message: message.into(),
    }
}

/// One loan the product allows, and its all-in cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Combination {
    pub method: RepaymentMethod,
    pub amount: Fen,
    pub months: u32,
    /// APR, 6 decimals.
    pub apr: Decimal,
}

/// The result of the cap search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapCheck {
    pub cap: Decimal,
    /// The combination with the highest APR found.
    pub worst: Combination,
    /// How many combinations were priced.
    pub combinations: usize,
    /// Combinations above the cap (the worst first is [`CapCheck::worst`]).
    pub violations: usize,
}

impl CapCheck {
    pub fn within_cap(&self) -> bool {
        self.violations == 0
    }
}

/// A fixed start date for pricing a product: the cap check does not depend on it (see the
/// module doc), and a fixed date keeps the check reproducible.
fn pricing_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
}

impl ProductSpec {
    /// The penalty annual rate (罚息年利率) = annual × (1 + markup), 6 decimals.
    pub fn penalty_annual_rate(&self) -> Decimal {
        (self.annual_rate.annual() * (Decimal::ONE + self.penalty_markup))
            .round_dp_with_strategy(APR_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
    }

    /// Field rules that do not need pricing. Empty when the spec is well formed.
    pub fn problems(&self, cap: Decimal) -> Vec<ProductProblem> {
        let mut out = Vec::new();
        if self.methods.is_empty() {
            out.push(problem(
                "methods",
                "required",
                "choose at least one repayment method",
            ));
        }
        let mut seen = Vec::new();
        for m in &self.methods {
            if seen.contains(m) {
                out.push(problem(
                    "methods",
                    "duplicate",
                    format!("{} is listed twice", m.code()),
                ));
            }
            seen.push(*m);
        }
        if Term::months(self.min_months).is_err() {
            out.push(problem(
                "min_months",
                "out_of_range",
                "the shortest term must be 1–360 months",
            ));
        }
        if Term::months(self.max_months).is_err() {
            out.push(problem(
                "max_months",
                "out_of_range",
                "the longest term must be 1–360 months",
            ));
        }
        if self.min_months > self.max_months {
            out.push(problem(
                "max_months",
                "below_min",
                "the longest term must not be shorter than the shortest",
            ));
        }
        if !self.min_amount.is_positive() || self.min_amount > MAX_PRINCIPAL {
            out.push(problem(
                "min_amount",
                "out_of_range",
                "the smallest amount must be more than 0",
            ));
        }
        if !self.max_amount.is_positive() || self.max_amount > MAX_PRINCIPAL {
            out.push(problem(
                "max_amount",
                "out_of_range",
                "the largest amount must be more than 0 and at most 10,000,000,000,000.00",
            ));
        }
        if self.min_amount > self.max_amount {
            out.push(problem(
                "max_amount",
                "below_min",
                "the largest amount must not be below the smallest",
            ));
        }
        for (i, f) in self.fees.iter().enumerate() {
            if let FeeCharge::Upfront { amount } = f.charge {
                if amount.is_negative() {
                    out.push(problem(
                        format!("fees[{i}].amount"),
                        "negative",
                        "a fee cannot be negative",
                    ));
                } else if amount >= self.min_amount && self.min_amount.is_positive() {
                    out.push(problem(
                        format!("fees[{i}].amount"),
                        "exceeds_amount",
                        "an upfront fee must be less than the smallest loan amount",
                    ));
                }
            }
            if f.collector == Collector::Platform {
                // 金规〔2025〕9号: the platform may not charge the borrower. Refused outright.
                out.push(problem(
                    format!("fees[{i}].collector"),
                    "platform_may_not_charge",
                    "under 金规〔2025〕9号 the facilitation platform may not charge the borrower any fee; the collector must be the funder or a credit enhancer",
                ));
            }
        }
        if self.penalty_markup < Decimal::ZERO || self.penalty_markup > MAX_PENALTY_MARKUP {
            out.push(problem(
                "penalty_markup",
                "out_of_range",
                "the penalty markup must be 0–0.5 (0–50 % above the contract rate)",
            ));
        } else if self.penalty_annual_rate() > cap {
            out.push(problem(
                "penalty_markup",
                "above_cap",
                format!(
                    "the cost on default (penalty rate {} a year) exceeds the cap {cap}; lower the markup or the rate",
                    self.penalty_annual_rate().normalize()
                ),
            ));
        }
        let e = &self.eligibility;
        if !(18..=100).contains(&e.min_age) {
            out.push(problem(
                "eligibility.min_age",
                "out_of_range",
                "the minimum age must be 18–100",
            ));
        }
        if !(18..=100).contains(&e.max_age) || e.max_age < e.min_age {
            out.push(problem(
                "eligibility.max_age",
                "out_of_range",
                "the maximum age must be 18–100 and not below the minimum",
            ));
        }
        for (i, m) in e.required_materials.iter().enumerate() {
            if !MATERIAL_TYPES.contains(&m.as_str()) {
                out.push(problem(
                    format!("eligibility.required_materials[{i}]"),
                    "unknown",
                    format!(
                        "unknown material type `{m}`; use one of {}",
                        MATERIAL_TYPES.join(", ")
                    ),
                ));
            }
        }
        for (i, c) in self.funder_codes.iter().enumerate() {
            if !is_code(c) {
                out.push(problem(
                    format!("funder_codes[{i}]"),
                    "invalid",
                    "a funder code is 2–32 lower-case letters, digits or _",
                ));
            }
        }
        out
    }

    /// The amounts the cap check prices: both ends and two points in between (geometric).
    pub fn check_amounts(&self) -> Vec<Fen> {
        let (lo, hi) = (self.min_amount.as_fen(), self.max_amount.as_fen());
        let mut v = vec![lo];
        if hi > lo {
            // lo·(hi/lo)^(1/3), lo·(hi/lo)^(2/3) in integer-safe steps via Decimal.
            let ratio = Decimal::from(hi) / Decimal::from(lo);
            for k in [1_u32, 2] {
                let mut x = Decimal::from(lo);
                // cube root by Newton on Decimal: r³ = ratio.
                let r = cube_root(ratio);
                for _ in 0..k {
                    x *= r;
                }
                let a = x.round().try_into().unwrap_or(lo).clamp(lo, hi);
                if !v.contains(&a) {
                    v.push(a);
                }
            }
            if !v.contains(&hi) {
                v.push(hi);
            }
        }
        v.into_iter().map(Fen::new).collect()
    }

    /// The annual rate the cap check prices with: the rate itself for 按月计息, the rate of
    /// a 31-day month for the actual day counts (rounded up to 10 decimals).
    fn check_rate(&self) -> Option<Rate> {
        let (n, d) = self.day_count.longest_month_factor();
        if n == d {
            return Some(self.annual_rate);
        }
        let r = self.annual_rate.annual() * Decimal::from(n as i64) / Decimal::from(d as i64);
        Rate::from_decimal(r.round_dp_with_strategy(10, RoundingStrategy::AwayFromZero)).ok()
    }

    /// Loan terms for one combination, priced from `start`.
    pub fn terms(
        &self,
        method: RepaymentMethod,
        amount: Fen,
        months: u32,
        start: NaiveDate,
    ) -> Option<LoanTerms> {
        let mut t = LoanTerms::new(
            amount,
            self.annual_rate,
            Term::months(months).ok()?,
            method,
            start,
        )
        .with_day_count(self.day_count);
        t.fees = self.fees.clone();
        Some(t)
    }

    /// Prices every combination the cap argument needs (see the module doc) and reports
    /// the worst. `None` when the spec has field problems that make pricing impossible
    /// (call [`ProductSpec::problems`] first).
    pub fn cap_check(&self, cap: Decimal) -> Option<CapCheck> {
        if self.methods.is_empty()
            || self.min_months == 0
            || self.min_months > self.max_months
            || Term::months(self.max_months).is_err()
        {
            return None;
        }
        let rate = self.check_rate()?;
        let amounts = self.check_amounts();
        let mut worst: Option<Combination> = None;
        let (mut combinations, mut violations) = (0, 0);
        let mut periods = Vec::with_capacity(self.max_months as usize);
        for &method in &self.methods {
            for months in self.min_months..=self.max_months {
                for &amount in &amounts {
                    let mut t = self.terms(method, amount, months, pricing_date())?;
                    t.annual_rate = rate;
                    t.day_count = DayCount::Monthly;
                    crate::schedule::generate_into(&t, &mut periods).ok()?;
                    let upfront = t.upfront_fee().ok()?;
                    let apr = apr_of(amount, upfront, &periods)?;
                    combinations += 1;
                    if apr > cap {
                        violations += 1;
                    }
                    if worst.as_ref().is_none_or(|w| apr > w.apr) {
                        worst = Some(Combination {
                            method,
                            amount,
                            months,
                            apr,
                        });
                    }
                }
            }
        }
        Some(CapCheck {
            cap,
            worst: worst?,
            combinations,
            violations,
        })
    }
}

fn apr_of(amount: Fen, upfront: Fen, periods: &[Period]) -> Option<Decimal> {
    let net = amount.checked_sub(upfront).ok()?;
    let payments: Vec<Fen> = periods.iter().map(|p| p.payment).collect();
    crate::apr::annualised_irr(net, &payments, 12).ok()
}

fn cube_root(x: Decimal) -> Decimal {
    if x <= Decimal::ONE {
        return Decimal::ONE;
    }
    let mut r = Decimal::ONE + (x - Decimal::ONE) / Decimal::from(3);
    for _ in 0..60 {
        let r2 = r * r;
        if r2.is_zero() {
            break;
        }
        let next = r - (r2 * r - x) / (Decimal::from(3) * r2);
        if (next - r).abs() < Decimal::new(1, 12) {
            return next;
        }
        r = next;
    }
    r
}

/// A code: 2–32 of `a-z 0-9 _`, starting with a letter.
pub fn is_code(s: &str) -> bool {
    (2..=32).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The all-in cost as a 4-decimal string (`"0.1280"`), as the CLI and disclosure show it.
pub fn apr_4dp(apr: Decimal) -> String {
    format!(
        "{:.4}",
        apr.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
    )
}

/// What a quote asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteRequest {
    pub amount: Fen,
    pub months: u32,
    pub method: RepaymentMethod,
    pub start_date: NaiveDate,
}

/// One line of the disclosure table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureItem {
    /// `interest` or a fee kind code (`service`, `guarantee`, …).
    pub item: String,
    pub item_zh: String,
    /// `per_period_on_balance`, `upfront`, `per_period_on_principal`.
    pub charged: String,
    pub charged_zh: String,
    /// The rate as written (`0.12` a year, `0.003` a month) or the fixed amount.
    pub rate: String,
    pub collector: String,
    pub collector_zh: String,
    /// Total over the loan.
    pub total: Fen,
}

/// What default costs (逾期成本).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultCost {
    pub penalty_annual_rate: String,
    /// penalty annual rate / 360, 8 decimals.
    pub penalty_daily_rate: String,
    pub rule: String,
    pub rule_zh: String,
    /// Penalty for 30 days on the first period's overdue principal, as an example.
    pub example_30_days: Fen,
}

/// The 综合融资成本明示表 of one quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    pub principal: Fen,
    /// Amount the borrower receives (the whole principal; Civil Code art. 670).
    pub disbursed: Fen,
    pub months: u32,
    pub method: RepaymentMethod,
    pub method_zh: String,
    pub annual_rate: String,
    pub day_count: DayCount,
    pub items: Vec<DisclosureItem>,
    pub total_interest: Fen,
    pub total_fees: Fen,
    /// Interest + all fees.
    pub total_cost: Fen,
    /// Everything the borrower pays: principal + interest + fees (upfront included).
    pub total_repayment: Fen,
    /// All-in annual cost (IRR method), 4 decimals.
    pub apr: String,
    /// The same, 6 decimals.
    pub apr_exact: String,
    pub default_cost: DefaultCost,
}

/// Why a quote was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// A field is outside what the product allows.
    Field(ProductProblem),
    /// Pricing failed.
    Pricing(String),
}

/// Builds the schedule and disclosure of a quote, checking the request against the
/// product and the quote's own APR against `cap`.
pub fn quote(
    spec: &ProductSpec,
    req: &QuoteRequest,
    cap: Decimal,
) -> Result<(RepaymentSchedule, Disclosure), QuoteError> {
    if !spec.methods.contains(&req.method) {
        return Err(QuoteError::Field(problem(
            "method",
            "not_offered",
            format!(
                "this product offers {}",
                spec.methods
                    .iter()
                    .map(|m| m.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    if req.months < spec.min_months || req.months > spec.max_months {
        return Err(QuoteError::Field(problem(
            "months",
            "out_of_range",
            format!(
                "the term must be {}–{} months",
                spec.min_months, spec.max_months
            ),
        )));
    }
    if req.amount < spec.min_amount || req.amount > spec.max_amount {
        return Err(QuoteError::Field(problem(
            "amount",
            "out_of_range",
            format!(
                "the amount must be {}–{} yuan",
                spec.min_amount, spec.max_amount
            ),
        )));
    }
    let terms = spec
        .terms(req.method, req.amount, req.months, req.start_date)
        .ok_or_else(|| QuoteError::Pricing("invalid term".into()))?;
    let schedule =
        RepaymentSchedule::generate(&terms).map_err(|e| QuoteError::Pricing(e.to_string()))?;
    let apr = schedule
        .apr()
        .map_err(|e| QuoteError::Pricing(e.to_string()))?;
    if apr > cap {
        return Err(QuoteError::Field(problem(
            "amount",
            "above_cap",
            format!("the all-in annual cost of this loan ({apr}) exceeds the cap {cap}"),
        )));
    }
    let disclosure = disclose(spec, &terms, &schedule, apr);
    Ok((schedule, disclosure))
}

fn disclose(
    spec: &ProductSpec,
    terms: &LoanTerms,
    s: &RepaymentSchedule,
    apr: Decimal,
) -> Disclosure {
    let n = i64::from(terms.term.get());
    let mut items = vec![DisclosureItem {
        item: "interest".into(),
        item_zh: "利息".into(),
        charged: "per_period_on_balance".into(),
        charged_zh: format!("每期按剩余本金计息（{}）", terms.day_count.zh_name()),
        rate: format!("{} / year", terms.annual_rate),
        collector: "funder".into(),
        collector_zh: Collector::Funder.zh_name().into(),
        total: s.total_interest(),
    }];
    let mut fees_total = 0_i64;
    for f in &terms.fees {
        let (charged, charged_zh, rate, total) = match f.charge {
            FeeCharge::Upfront { amount } => (
                "upfront",
                "放款时一次性收取（另行支付，不从本金中扣除）".to_owned(),
                format!("{amount} (fixed)"),
                amount,
            ),
            FeeCharge::MonthlyOnPrincipal { rate } => {
                let per = rate.apply(terms.principal);
                (
                    "per_period_on_principal",
                    "每期按借款本金×月费率收取".to_owned(),
                    format!("{rate} / month"),
                    Fen::new(per.as_fen().saturating_mul(n)),
                )
            }
        };
        fees_total = fees_total.saturating_add(total.as_fen());
        items.push(DisclosureItem {
            item: fee_code(f.kind).into(),
            item_zh: f.kind.zh_name().into(),
            charged: charged.into(),
            charged_zh,
            rate,
            collector: collector_code(f.collector).into(),
            collector_zh: f.collector.zh_name().into(),
            total,
        });
    }
    let total_interest = s.total_interest();
    let total_fees = Fen::new(fees_total);
    let total_cost = Fen::new(total_interest.as_fen().saturating_add(fees_total));
    let penalty = spec.penalty_annual_rate();
    let daily = (penalty / Decimal::from(360))
        .round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero);
    let first_principal = s
        .periods
        .first()
        .map_or(Fen::ZERO, |p| p.principal.max(Fen::new(1)));
    let example = first_principal
        .mul_decimal_half_up(penalty * Decimal::from(30) / Decimal::from(360))
        .unwrap_or(Fen::ZERO);
    Disclosure {
        principal: terms.principal,
        disbursed: terms.principal,
        months: terms.term.get(),
        method: terms.method,
        method_zh: terms.method.zh_name().into(),
        annual_rate: terms.annual_rate.to_string(),
        day_count: terms.day_count,
        items,
        total_interest,
        total_fees,
        total_cost,
        total_repayment: Fen::new(terms.principal.as_fen().saturating_add(total_cost.as_fen())),
        apr: apr_4dp(apr),
        apr_exact: format!("{apr:.6}"),
        default_cost: DefaultCost {
            penalty_annual_rate: format!("{}", penalty.normalize()),
            penalty_daily_rate: format!("{daily}"),
            rule: format!(
                "overdue principal accrues penalty interest daily at the annual rate × {} / 360; unpaid fees stay due; no compound interest",
                Decimal::ONE + spec.penalty_markup
            ),
            rule_zh: format!(
                "逾期本金按日计收罚息，罚息日利率 = 合同年利率 × {} / 360；未付费用仍需支付；不计复利",
                Decimal::ONE + spec.penalty_markup
            ),
            example_30_days: example,
        },
    }
}

pub fn fee_code(kind: FeeKind) -> &'static str {
    match kind {
        FeeKind::Service => "service",
        FeeKind::Guarantee => "guarantee",
        FeeKind::Insurance => "insurance",
        FeeKind::Management => "management",
        FeeKind::Other => "other",
    }
}

pub fn collector_code(c: Collector) -> &'static str {
    match c {
        Collector::Funder => "funder",
        Collector::Platform => "platform",
        Collector::Guarantor => "guarantor",
    }
}

/// Parses a fee kind code.
pub fn parse_fee_kind(s: &str) -> Option<FeeKind> {
    [
        FeeKind::Service,
        FeeKind::Guarantee,
        FeeKind::Insurance,
        FeeKind::Management,
        FeeKind::Other,
    ]
    .into_iter()
    .find(|k| fee_code(*k) == s)
}

/// Parses a collector code.
pub fn parse_collector(s: &str) -> Option<Collector> {
    [Collector::Funder, Collector::Platform, Collector::Guarantor]
        .into_iter()
        .find(|c| collector_code(*c) == s)
}

/// A monthly fee item (convenience for callers and tests).
pub fn monthly_fee(kind: FeeKind, collector: Collector, rate: FeeRate) -> FeeItem {
    FeeItem {
        kind,
        collector,
        charge: FeeCharge::MonthlyOnPrincipal { rate },
    }
}

/// An upfront fee item.
pub fn upfront_fee(kind: FeeKind, collector: Collector, amount: Fen) -> FeeItem {
    FeeItem {
        kind,
        collector,
        charge: FeeCharge::Upfront { amount },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn spec() -> ProductSpec {
        ProductSpec {
            methods: vec![RepaymentMethod::EqualInstallment],
            min_months: 3,
            max_months: 36,
            min_amount: Fen::from_yuan(1_000).unwrap(),
            max_amount: Fen::from_yuan(200_000).unwrap(),
            annual_rate: Rate::parse("0.18").unwrap(),
            day_count: DayCount::Monthly,
            fees: vec![],
            penalty_markup: dec!(0.3),
            eligibility: Eligibility::default(),
            funder_codes: vec!["bank_a".into()],
        }
    }

    #[test]
    fn plain_product_is_within_cap_at_its_rate() {
        let c = spec().cap_check(DEFAULT_APR_CAP).unwrap();
        assert!(c.within_cap());
        assert!(
            (c.worst.apr - dec!(0.18)).abs() < dec!(0.0002),
            "{:?}",
            c.worst
        );
        assert_eq!(c.combinations, 34 * 4);
        assert!(spec().problems(DEFAULT_APR_CAP).is_empty());
    }

    #[test]
    fn upfront_fee_worst_case_is_the_smallest_amount_and_shortest_term() {
        let mut s = spec();
        s.fees.push(upfront_fee(
            FeeKind::Service,
            Collector::Funder,
            Fen::from_yuan(50).unwrap(),
        ));
        let c = s.cap_check(DEFAULT_APR_CAP).unwrap();
        assert_eq!(c.worst.amount, s.min_amount);
        assert_eq!(c.worst.months, 3);
        // 50 on 1,000 over 3 months is ~40 % a year on top of 18 %.
        assert!(!c.within_cap());
        assert!(c.worst.apr > dec!(0.45), "{:?}", c.worst);
    }

    #[test]
    fn monthly_fee_worst_case_can_be_inside_the_term_range() {
        let mut s = spec();
        s.fees.push(monthly_fee(
            FeeKind::Guarantee,
            Collector::Guarantor,
            FeeRate::parse("0.002").unwrap(),
        ));
        let c = s.cap_check(DEFAULT_APR_CAP).unwrap();
        // Not monotone in the term: the worst is inside the range, so every term is priced.
        let by_term: Vec<(u32, Decimal)> = (s.min_months..=s.max_months)
            .map(|m| {
                let t = s
                    .terms(
                        RepaymentMethod::EqualInstallment,
                        s.min_amount,
                        m,
                        pricing_date(),
                    )
                    .unwrap();
                (m, RepaymentSchedule::generate(&t).unwrap().apr().unwrap())
            })
            .collect();
        let (argmax, max) = by_term.iter().copied().max_by_key(|(_, a)| *a).unwrap();
        assert!(
            argmax > s.min_months && argmax < s.max_months,
            "{by_term:?}"
        );
        assert_eq!(c.worst.months, argmax);
        // (Another amount of that term may beat the smallest by rounding, ~1e-5.)
        assert!(
            c.worst.apr >= max && c.worst.apr - max < dec!(0.0001),
            "{c:?} vs {max}"
        );
        assert!(
            c.worst.apr > dec!(0.21) && c.worst.apr < dec!(0.24),
            "{:?}",
            c.worst
        );
        assert!(c.within_cap());
    }

    #[test]
    fn brute_force_never_beats_the_search_by_more_than_rounding() {
        // Every amount on a fine grid and every term: the search's worst is the max up
        // to the rounding bound of the module doc.
        let mut s = spec();
        s.min_amount = Fen::from_yuan(500).unwrap();
        s.max_amount = Fen::from_yuan(5_000).unwrap();
        s.max_months = 12;
        s.fees.push(upfront_fee(
            FeeKind::Service,
            Collector::Funder,
            Fen::new(1_234),
        ));
        s.fees.push(monthly_fee(
            FeeKind::Guarantee,
            Collector::Guarantor,
            FeeRate::parse("0.0015").unwrap(),
        ));
        let found = s.cap_check(DEFAULT_APR_CAP).unwrap().worst.apr;
        let mut brute = Decimal::ZERO;
        for months in s.min_months..=s.max_months {
            for amount in (50_000..=500_000).step_by(997) {
                let t = s
                    .terms(
                        RepaymentMethod::EqualInstallment,
                        Fen::new(amount),
                        months,
                        pricing_date(),
                    )
                    .unwrap();
                let apr = RepaymentSchedule::generate(&t).unwrap().apr().unwrap();
                brute = brute.max(apr);
            }
        }
        assert!(
            brute <= found + dec!(0.0003),
            "brute {brute} vs search {found}"
        );
    }

    #[test]
    fn actual_day_count_is_checked_at_31_day_months() {
        let mut s = spec();
        s.annual_rate = Rate::parse("0.235").unwrap();
        assert!(s.cap_check(DEFAULT_APR_CAP).unwrap().within_cap());
        s.day_count = DayCount::Actual360;
        // 23.5 % × 31/30 ≈ 24.28 %: refused.
        let c = s.cap_check(DEFAULT_APR_CAP).unwrap();
        assert!(!c.within_cap(), "{c:?}");
        // And a real start date never exceeds what the check priced.
        for day in 1..=28 {
            let start = NaiveDate::from_ymd_opt(2026, 1, day).unwrap();
            for months in [3, 12, 36] {
                let t = s
                    .terms(
                        RepaymentMethod::EqualInstallment,
                        s.min_amount,
                        months,
                        start,
                    )
                    .unwrap();
                let apr = RepaymentSchedule::generate(&t).unwrap().apr().unwrap();
                assert!(
                    apr <= c.worst.apr,
                    "{start} {months}: {apr} > {}",
                    c.worst.apr
                );
            }
        }
    }

    #[test]
    fn field_problems_are_named() {
        let mut s = spec();
        s.methods.clear();
        s.min_months = 40;
        s.fees.push(upfront_fee(
            FeeKind::Service,
            Collector::Platform,
            Fen::from_yuan(10).unwrap(),
        ));
        s.eligibility.required_materials.push("selfie".into());
        s.funder_codes.push("Bank A".into());
        s.penalty_markup = dec!(0.6);
        let fields: Vec<String> = s
            .problems(DEFAULT_APR_CAP)
            .into_iter()
            .map(|p| p.field)
            .collect();
        for f in [
            "methods",
            "max_months",
            "fees[0].collector",
            "eligibility.required_materials[2]",
            "funder_codes[1]",
            "penalty_markup",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
        }
        // The penalty rate above the cap is refused too.
        let mut s = spec();
        s.annual_rate = Rate::parse("0.2").unwrap();
        s.penalty_markup = dec!(0.5);
        assert_eq!(s.problems(DEFAULT_APR_CAP)[0].code, "above_cap");
    }

    #[test]
    fn quote_checks_the_request_and_discloses() {
        let mut s = spec();
        s.fees.push(upfront_fee(
            FeeKind::Service,
            Collector::Funder,
            Fen::from_yuan(100).unwrap(),
        ));
        s.fees.push(monthly_fee(
            FeeKind::Guarantee,
            Collector::Guarantor,
            FeeRate::parse("0.001").unwrap(),
        ));
        let req = QuoteRequest {
            amount: Fen::from_yuan(100_000).unwrap(),
            months: 12,
            method: RepaymentMethod::EqualInstallment,
            start_date: NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
        };
        let (sched, d) = quote(&s, &req, DEFAULT_APR_CAP).unwrap();
        assert_eq!(d.items.len(), 3);
        assert_eq!(d.items[0].total, sched.total_interest());
        assert_eq!(d.items[1].total, Fen::from_yuan(100).unwrap());
        assert_eq!(d.items[2].total, Fen::from_yuan(1_200).unwrap());
        assert_eq!(d.total_fees, Fen::from_yuan(1_300).unwrap());
        assert_eq!(d.apr, apr_4dp(sched.apr().unwrap()));
        assert_eq!(d.default_cost.penalty_annual_rate, "0.234");
        let bad = QuoteRequest {
            months: 48,
            ..req.clone()
        };
        assert!(
            matches!(quote(&s, &bad, DEFAULT_APR_CAP), Err(QuoteError::Field(p)) if p.field == "months")
        );
        let bad = QuoteRequest {
            method: RepaymentMethod::Bullet,
            ..req.clone()
        };
        assert!(
            matches!(quote(&s, &bad, DEFAULT_APR_CAP), Err(QuoteError::Field(p)) if p.field == "method")
        );
        // A quote above a (lower) cap is refused on its own.
        assert!(
            matches!(quote(&s, &req, dec!(0.15)), Err(QuoteError::Field(p)) if p.code == "above_cap")
        );
    }

    #[test]
    fn cap_setting_bounds() {
        assert!(validate_cap(dec!(0.24)).is_ok());
        assert!(validate_cap(dec!(0.36)).is_ok());
        assert!(validate_cap(dec!(0.3601)).is_err());
        assert!(validate_cap(Decimal::ZERO).is_err());
        assert_eq!(DEFAULT_APR_CAP, dec!(0.24));
        assert_eq!(apr_4dp(dec!(0.128049)), "0.1280");
        assert_eq!(apr_4dp(dec!(0.12805)), "0.1281");
    }

    #[test]
    fn status_changes() {
        use ProductStatus::*;
        assert!(Draft.can_become(Active));
        assert!(Active.can_become(Retired));
        assert!(!Active.can_become(Draft));
        assert!(!Retired.can_become(Draft));
        assert_eq!(ProductStatus::parse("retired"), Some(Retired));
    }
}
