//! Funder routing (资金路由): the pure waterfall that orders the funders an approved
//! application may go to. The server evaluates eligibility rules, reads quotas and
//! history, then asks [`plan`] for the order; it tries each funder in turn and moves to
//! the next on a decline or a timeout.
//!
//! Filters, in this order (the first that fails is recorded as the skip reason):
//! 1. the product allows the funder (its version lists the funder's code);
//! 2. the funder may originate today ([`crate::partner::may_originate`]);
//! 3. the funder prices the product (a rate for the product code);
//! 4. the funder's eligibility rule holds (a rule error skips, never passes);
//! 5. quota left: daily, total and per-customer exposure cover the amount.
//!
//! The survivors are ordered by the configured criteria ([`Waterfall`]), each a
//! tie-break for the one before, and finally by code so the order is deterministic.

use crate::partner::Reason;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What the caller knows of the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFacts {
    pub age: i64,
    /// Province name or code as the application records it (e.g. `上海` or `SH`).
    pub province: String,
}

/// The credit decision on the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionFacts {
    /// Risk grade, e.g. `A`…`E`.
    pub risk_grade: String,
    pub score: i64,
}

/// An approved application to place with a funder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRequest {
    /// The application's reference (issue #6 fills this with its id).
    pub application_ref: String,
    pub product_code: String,
    /// Amount in fen.
    pub amount_fen: i64,
    pub months: i64,
    /// An opaque reference of the customer, for the per-customer exposure limit.
    pub customer_ref: String,
    pub customer: CustomerFacts,
    pub decision: DecisionFacts,
    /// The funder codes the product version allows (`funder_codes`); `None` = no
    /// restriction from the product.
    #[serde(default)]
    pub allowed_funders: Option<Vec<String>>,
}

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

impl RoutingRequest {
    /// Every problem with the request (empty when it is usable).
    pub fn problems(&self) -> Vec<RequestProblem> {
        let mut out = Vec::new();
        let mut p = |field, code, message| {
            out.push(RequestProblem {
                field,
                code,
                message,
            })
        };
        if self.application_ref.trim().is_empty() || self.application_ref.len() > 64 {
            p(
                "application_ref",
                "required",
                "give the application reference (1–64 characters)",
            );
        }
        if self.product_code.trim().is_empty() {
            p("product_code", "required", "give the product code");
        }
        if self.amount_fen <= 0 {
            p(
                "amount_fen",
                "out_of_range",
                "the amount must be positive (in fen)",
            );
        }
        if !(1..=360).contains(&self.months) {
            p("months", "out_of_range", "the term is 1–360 months");
        }
        if self.customer_ref.trim().is_empty() || self.customer_ref.len() > 64 {
            p(
                "customer_ref",
                "required",
                "give the customer reference (1–64 characters)",
            );
        }
        if !(16..=100).contains(&self.customer.age) {
            p("customer.age", "out_of_range", "the age is 16–100");
        }
        if self.customer.province.trim().is_empty() {
            p("customer.province", "required", "give the province");
        }
        if self.decision.risk_grade.trim().is_empty() {
            p("decision.risk_grade", "required", "give the risk grade");
        }
        out
    }
}

/// One funder as the waterfall sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub code: String,
    /// [`crate::partner::may_originate`] today.
    pub origination: Result<(), Reason>,
    /// The funder's annual rate for the product; `None` when it does not price it.
    pub rate: Option<Decimal>,
    /// The eligibility rule's verdict; `Err` carries the rule error.
    pub eligible: Result<bool, String>,
    pub daily_left_fen: i64,
    pub total_left_fen: i64,
    /// `None` when the funder sets no per-customer limit.
    pub customer_left_fen: Option<i64>,
    /// Past decisions, for the approval rate.
    pub approved: i64,
    pub declined: i64,
    /// Manual priority: lower goes first.
    pub priority: i64,
}

impl Candidate {
    /// The approval rate with a uniform prior, (approved + 1) / (decided + 2), as a
    /// fraction: a new funder starts at ½ rather than at 0 or 1.
    pub fn approval_rate(&self) -> (i128, i128) {
        (
            i128::from(self.approved.max(0)) + 1,
            i128::from(self.approved.max(0) + self.declined.max(0)) + 2,
        )
    }
}

/// Why a funder is not tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    NotAllowedForProduct,
    CannotOriginate { reason: Reason },
    NoPricing,
    Ineligible,
    RuleError { error: String },
    DailyQuota { left_fen: i64 },
    TotalQuota { left_fen: i64 },
    CustomerLimit { left_fen: i64 },
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NotAllowedForProduct => "not_allowed_for_product",
            SkipReason::CannotOriginate { .. } => "cannot_originate",
            SkipReason::NoPricing => "no_pricing",
            SkipReason::Ineligible => "ineligible",
            SkipReason::RuleError { .. } => "rule_error",
            SkipReason::DailyQuota { .. } => "daily_quota",
            SkipReason::TotalQuota { .. } => "total_quota",
            SkipReason::CustomerLimit { .. } => "customer_limit",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotAllowedForProduct => write!(f, "the product does not list this funder"),
            SkipReason::CannotOriginate { reason } => write!(f, "{reason}"),
            SkipReason::NoPricing => write!(f, "the funder has no price for this product"),
            SkipReason::Ineligible => write!(f, "the eligibility rule does not hold"),
            SkipReason::RuleError { error } => write!(f, "the eligibility rule failed: {error}"),
            SkipReason::DailyQuota { left_fen } => {
                write!(f, "daily quota left {left_fen} fen is short")
            }
            SkipReason::TotalQuota { left_fen } => {
                write!(f, "total quota left {left_fen} fen is short")
            }
            SkipReason::CustomerLimit { left_fen } => {
                write!(f, "per-customer limit left {left_fen} fen is short")
            }
        }
    }
}

/// One ordering criterion of the waterfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Manual priority, lower first.
    Priority,
    /// The funder's rate for the product, cheapest first.
    Rate,
    /// Past approval rate, highest first.
    ApprovalRate,
    /// Total quota left, most first.
    QuotaLeft,
}

impl Criterion {
    pub const ALL: [Criterion; 4] = [
        Criterion::Priority,
        Criterion::Rate,
        Criterion::ApprovalRate,
        Criterion::QuotaLeft,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Priority => "priority",
            Criterion::Rate => "rate",
            Criterion::ApprovalRate => "approval_rate",
            Criterion::QuotaLeft => "quota_left",
        }
    }

    pub fn parse(s: &str) -> Option<Criterion> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn compare(self, a: &Candidate, b: &Candidate) -> Ordering {
        match self {
            Criterion::Priority => a.priority.cmp(&b.priority),
            Criterion::Rate => a.rate.cmp(&b.rate),
            Criterion::ApprovalRate => {
                let (an, ad) = a.approval_rate();
                let (bn, bd) = b.approval_rate();
                // Higher first: compare b with a by cross-multiplication (exact).
                (bn * ad).cmp(&(an * bd))
            }
            Criterion::QuotaLeft => b.total_left_fen.cmp(&a.total_left_fen),
        }
    }
}

/// The configured order of criteria.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waterfall {
    pub order: Vec<Criterion>,
    /// How many times a funder that cannot be reached is retried (with backoff) before
    /// the run moves on.
    pub max_retries: i64,
}

impl Default for Waterfall {
    fn default() -> Self {
        Waterfall {
            order: vec![
                Criterion::Priority,
                Criterion::Rate,
                Criterion::ApprovalRate,
                Criterion::QuotaLeft,
            ],
            max_retries: 3,
        }
    }
}

impl Waterfall {
    /// Parses `priority,rate,…`; every criterion at most once.
    pub fn parse_order(s: &str) -> Result<Vec<Criterion>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let c = Criterion::parse(part).ok_or_else(|| {
                format!("unknown criterion `{part}`: use priority, rate, approval_rate, quota_left")
            })?;
            if out.contains(&c) {
                return Err(format!("criterion `{part}` is listed twice"));
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// The order in which funders will be tried, and why the others are not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub order: Vec<String>,
    pub skipped: Vec<(String, SkipReason)>,
}

/// Why `c` cannot take `req`, if it cannot.
pub fn skip_reason(req: &RoutingRequest, c: &Candidate) -> Option<SkipReason> {
    if let Some(allowed) = &req.allowed_funders {
        if !allowed.contains(&c.code) {
            return Some(SkipReason::NotAllowedForProduct);
        }
    }
    if let Err(reason) = &c.origination {
        return Some(SkipReason::CannotOriginate {
            reason: reason.clone(),
        });
    }
    if c.rate.is_none() {
        return Some(SkipReason::NoPricing);
    }
    match &c.eligible {
        Ok(true) => {}
        Ok(false) => return Some(SkipReason::Ineligible),
        Err(e) => return Some(SkipReason::RuleError { error: e.clone() }),
    }
    if c.daily_left_fen < req.amount_fen {
        return Some(SkipReason::DailyQuota {
            left_fen: c.daily_left_fen,
        });
    }
    if c.total_left_fen < req.amount_fen {
        return Some(SkipReason::TotalQuota {
            left_fen: c.total_left_fen,
        });
    }
    if let Some(left) = c.customer_left_fen.filter(|l| *l < req.amount_fen) {
        return Some(SkipReason::CustomerLimit { left_fen: left });
    }
    None
}

/// Filters and orders the candidates.
pub fn plan(req: &RoutingRequest, candidates: &[Candidate], waterfall: &Waterfall) -> Plan {
    let mut keep: Vec<&Candidate> = Vec::new();
    let mut skipped = Vec::new();
    for c in candidates {
        match skip_reason(req, c) {
            Some(r) => skipped.push((c.code.clone(), r)),
            None => keep.push(c),
        }
    }
    keep.sort_by(|a, b| {
        waterfall
            .order
            .iter()
            .map(|k| k.compare(a, b))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.code.cmp(&b.code))
    });
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    Plan {
        order: keep.into_iter().map(|c| c.code.clone()).collect(),
        skipped,
    }
}

/// A simulated funder's decision for an application: deterministic in (seed, funder,
/// application), approving about `approval_bp` in 10,000. FNV-1a over the inputs, so the
/// same demo data and tests give the same answers on every machine.
pub fn simulated_approves(
    seed: i64,
    funder: &str,
    application_ref: &str,
    approval_bp: i64,
) -> bool {
    simulated_draw(seed, funder, application_ref, "decision") % 10_000
        < approval_bp.clamp(0, 10_000) as u64
}

/// A simulated latency in milliseconds: `base_ms` ± 50 %, deterministic like
/// [`simulated_approves`].
pub fn simulated_latency_ms(seed: i64, funder: &str, application_ref: &str, base_ms: i64) -> i64 {
    if base_ms <= 0 {
        return 0;
    }
    let spread = base_ms.max(1) as u64;
    let jitter = simulated_draw(seed, funder, application_ref, "latency") % (spread + 1);
    base_ms / 2 + jitter as i64
}

fn simulated_draw(seed: i64, funder: &str, application_ref: &str, what: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    eat(funder.as_bytes());
    eat(application_ref.as_bytes());
    eat(what.as_bytes());
    // Final avalanche (splitmix64) so nearby inputs spread over the whole range.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn req(amount: i64) -> RoutingRequest {
        RoutingRequest {
            application_ref: "APP-1".into(),
            product_code: "consumer_12_36".into(),
            amount_fen: amount,
            months: 12,
            customer_ref: "C-1".into(),
            customer: CustomerFacts {
                age: 30,
                province: "上海".into(),
            },
            decision: DecisionFacts {
                risk_grade: "B".into(),
                score: 650,
            },
            allowed_funders: None,
        }
    }

    fn cand(code: &str, rate: Decimal, priority: i64) -> Candidate {
        Candidate {
            code: code.into(),
            origination: Ok(()),
            rate: Some(rate),
            eligible: Ok(true),
            daily_left_fen: 1_000_000,
            total_left_fen: 10_000_000,
            customer_left_fen: None,
            approved: 0,
            declined: 0,
            priority,
        }
    }

    #[test]
    fn filters_record_the_first_failing_reason() {
        let r = req(500_000);
        let mut a = cand("a", dec!(0.08), 1);
        a.origination = Err(Reason::NotOnPartnerList);
        a.eligible = Ok(false); // not reached: origination fails first
        let mut b = cand("b", dec!(0.08), 1);
        b.rate = None;
        let mut c = cand("c", dec!(0.08), 1);
        c.eligible = Err("R001 field unset".into());
        let mut d = cand("d", dec!(0.08), 1);
        d.daily_left_fen = 499_999;
        let mut e = cand("e", dec!(0.08), 1);
        e.customer_left_fen = Some(100);
        let mut f = cand("f", dec!(0.08), 1);
        f.total_left_fen = 0;
        let g = cand("g", dec!(0.08), 1);
        let p = plan(&r, &[a, b, c, d, e, f, g], &Waterfall::default());
        assert_eq!(p.order, ["g"]);
        let codes: Vec<_> = p
            .skipped
            .iter()
            .map(|(c, r)| (c.as_str(), r.code()))
            .collect();
        assert_eq!(
            codes,
            [
                ("a", "cannot_originate"),
                ("b", "no_pricing"),
                ("c", "rule_error"),
                ("d", "daily_quota"),
                ("e", "customer_limit"),
                ("f", "total_quota")
            ]
        );
        let mut r2 = req(500_000);
        r2.allowed_funders = Some(vec!["x".into()]);
        let p = plan(&r2, &[cand("g", dec!(0.08), 1)], &Waterfall::default());
        assert_eq!(p.skipped[0].1, SkipReason::NotAllowedForProduct);
    }

    #[test]
    fn criteria_order_and_tie_breaks() {
        let r = req(100);
        let cheap = cand("cheap", dec!(0.06), 5);
        let mut good = cand("good", dec!(0.09), 5);
        good.approved = 90;
        good.declined = 10;
        let first = cand("first", dec!(0.10), 1);
        let all = [cheap.clone(), good.clone(), first.clone()];
        let w = Waterfall::default();
        assert_eq!(plan(&r, &all, &w).order, ["first", "cheap", "good"]);
        let w = Waterfall {
            order: vec![Criterion::ApprovalRate, Criterion::Rate],
            ..Waterfall::default()
        };
        // good 91/102 ≈ 0.89; cheap and first are both ½ → then cheapest.
        assert_eq!(plan(&r, &all, &w).order, ["good", "cheap", "first"]);
        let w = Waterfall {
            order: vec![],
            ..Waterfall::default()
        };
        assert_eq!(plan(&r, &all, &w).order, ["cheap", "first", "good"]);
    }

    #[test]
    fn waterfall_order_parses() {
        assert_eq!(
            Waterfall::parse_order("rate, approval_rate").unwrap(),
            [Criterion::Rate, Criterion::ApprovalRate]
        );
        assert!(Waterfall::parse_order("rate,rate").is_err());
        assert!(Waterfall::parse_order("cost").is_err());
    }

    #[test]
    fn simulated_funder_is_deterministic_and_near_its_rate() {
        let approved = (0..10_000)
            .filter(|i| simulated_approves(7, "bank_a", &format!("APP-{i}"), 7_000))
            .count();
        assert!((6_800..=7_200).contains(&approved), "{approved}");
        assert_eq!(
            simulated_approves(7, "bank_a", "APP-1", 5_000),
            simulated_approves(7, "bank_a", "APP-1", 5_000)
        );
        assert!(!simulated_approves(7, "bank_a", "APP-1", 0));
        assert!(simulated_approves(7, "bank_a", "APP-1", 10_000));
        for i in 0..100 {
            let l = simulated_latency_ms(1, "x", &format!("{i}"), 100);
            assert!((50..=150).contains(&l), "{l}");
        }
        assert_eq!(simulated_latency_ms(1, "x", "y", 0), 0);
    }

    #[test]
    fn request_problems_name_fields() {
        let mut r = req(0);
        r.months = 0;
        r.customer.age = 12;
        let fields: Vec<_> = r.problems().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["amount_fen", "months", "customer.age"]);
        assert!(req(1).problems().is_empty());
    }
}
