//! zhudai's domain: the types and rules of a loan-facilitation business, free of I/O.
//!
//! Everything here is pure: no database, no network, no file system and no reads of the
//! system clock (the [`clock::Clock`] is passed in). Outer crates (store, server, CLI)
//! depend on this one; it depends on none of them.
//!
//! | module | owns |
//! |---|---|
//! | [`money`] | exact amounts in fen, annual and fee rates, half-up rounding |
//! | [`ident`] | resident ID, USCC, bank card, mobile, e-mail |
//! | [`customer`] | customers, validated input, field sensitivity (C1–C3) |
//! | [`document`] | customer documents: types, content sniffing, retention, verification, cross-checks, completeness |
//! | [`privacy`] | PIPL consents, data-subject requests, deadlines, erasure holds |
//! | [`mask`] | masking of personal information for display |
//! | [`schedule`] | loan terms, fees, repayment schedules, prepayment, payoff |
//! | [`apr`] | all-in annual cost by IRR |
//! | [`product`] | loan product versions, the all-in cost cap check, quotes and the 综合融资成本明示表 |
//! | [`classify`] | five-tier classification and collection buckets |
//! | [`generate`] | deterministic valid identifiers for synthetic data and tests |
//! | [`partner`] | partners (合作机构): kinds, status lifecycle, admission checklist, may-originate |
//! | [`routing`] | the funder waterfall and the simulated funder's draws |
//! | [`ledger`] | chart of accounts, balanced journal entries, reversal (issue #8) |
//! | [`servicing`] | installments, payment allocation, early repayment, overpayment, days past due (issue #8) |
//! | [`risk_warning`] | risk warnings: stages, severities, categories, the event catalogue, actions |
//! | [`credit_limit`] | credit lines per customer and group: draws, refusals, cuts, four eyes |
//! | [`cob`] | the daily close: its steps, penalty accrual within the cap, one loan's close (issue #8) |
//! | [`collection`] | collections: channels, outcomes, contact guards, promises, agency commission (issue #8) |
//! | [`reconcile`] | funder reconciliation: matching a funder's repayment file against ours (issue #8) |
//! | [`portfolio`] | roll-rate matrices and vintage month arithmetic (issue #8) |

pub mod access;
pub mod apr;
pub mod classify;
pub mod clock;
// Contracts (issue #6): the template language and amounts in Chinese capitals.
pub mod contract;
pub mod customer;
pub mod document;
pub mod generate;
pub mod ident;
// Loans and the ledger (issue #8).
pub mod ledger;
pub mod mask;
pub mod money;
pub mod privacy;
pub mod servicing;
// Funder network (issue #5): partners, admission, routing waterfall.
pub mod partner;
pub mod product;
pub mod routing;
pub mod schedule;
// Risk warnings and credit limits (issue #7 items 3 and 4).
pub mod credit_limit;
pub mod risk_warning;
// Daily close, collections, funder reconciliation, portfolio reports (issue #8 items 3–7).
pub mod cob;
pub mod collection;
pub mod portfolio;
pub mod reconcile;

pub use apr::AprError;
pub use classify::{ClassificationPolicy, ClassifyError, CollectionBucket, FiveTierClass};
pub use ident::{BankCard, Email, IdentError, Mobile, ResidentId, Uscc};
pub use money::{FeeRate, Fen, MoneyError, Rate};
pub use schedule::{LoanTerms, Period, RepaymentMethod, RepaymentSchedule, ScheduleError, Term};
