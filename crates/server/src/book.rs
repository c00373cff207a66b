//! The synthetic loan book (issue #8 item 7): `zhudai bench generate --loans N --seed S`
//! fills a database with customers (valid resident IDs, mobiles and UnionPay cards from
//! `zhudai_domain::generate`, imported through the bulk import so they are encrypted and
//! blind-indexed like real ones), their applications and loans across the active
//! products, methods and funders, each loan's schedule from its product version, and a
//! repayment history: most borrowers pay on the due date, some pay late, some stopped
//! paying at some point (so the book has every bucket), and a share of older loans is
//! repaid in full. Every repayment is a `repayments` row with its allocation and a
//! balanced journal entry, the disbursement is journalled like a real one, so
//! `ledger verify` passes on the generated book.
//!
//! The same seed gives the same book (on an empty database the same ids too). Rows are
//! written with multi-row inserts, one transaction per batch of loans. The loans' days
//! past due, tiers and buckets are left for the daily close to compute (a generated
//! book's first close is the "catch-up" close).
//!
//! Late payers' penalty interest is not generated (treated as waived); penalty on the
//! arrears at the book's date comes from the close.

use crate::import::engine::{Engine, ImportOptions};
use crate::import::read::Table;
use crate::vault::Vault;
use chrono::{Days, NaiveDate};
use std::collections::HashSet;
use std::sync::Arc;
use zhudai_domain::clock::Clock;
use zhudai_domain::generate::{self as gen, SplitMix64};
use zhudai_domain::ledger::{self, Account};
use zhudai_domain::money::Fen;
use zhudai_domain::product::{ProductSpec, ProductStatus};
use zhudai_domain::schedule::RepaymentMethod;
use zhudai_domain::servicing::{self, Installment};
use zhudai_store::bulk::{self, Rows, V};
use zhudai_store::identity::User;
use zhudai_store::Store;

/// What to generate.
#[derive(Debug, Clone)]
pub struct BookSpec {
    /// Loans on the book at `as_of` (open: active or overdue).
    pub loans: u64,
    /// Additional loans repaid in full before `as_of`, per cent of `loans`.
    pub closed_pct: u64,
    pub seed: u64,
    /// The business date the book is as of (its history ends that day).
    pub as_of: NaiveDate,
    /// Loans per transaction.
    pub batch: usize,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookSummary {
    pub customers: u64,
    pub loans: u64,
    pub open_loans: u64,
    pub in_arrears: u64,
    pub paid_off: u64,
    pub installments: u64,
    pub repayments: u64,
    pub journal_entries: u64,
}

/// Progress: phase, done, total.
pub type Progress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("storage: {0}")]
    Store(#[from] zhudai_store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<zhudai_store::sqlx::Error> for BookError {
    fn from(e: zhudai_store::sqlx::Error) -> Self {
        BookError::Store(e.into())
    }
}

struct Product {
    code: String,
    version: i64,
    spec: ProductSpec,
    penalty: String,
}

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗",
];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "平",
];

/// The CSV of `n` individual customers born 1966–2000 (ages the demo products accept).
fn customers_csv(n: u64, seed: u64) -> Vec<u8> {
    let mut out = String::with_capacity(n as usize * 90);
    out.push_str("kind,name,id_number,phone,bank_card,monthly_income\n");
    let mut rng = SplitMix64::new(seed ^ 0xC0FF_EE00);
    let mut seen = HashSet::with_capacity(n as usize);
    let mut s = seed.wrapping_mul(1_000_003);
    let from = NaiveDate::from_ymd_opt(1966, 1, 1).unwrap_or(NaiveDate::MIN);
    let provinces = ["11", "31", "44", "33", "51", "32", "42", "37"];
    let mut made = 0;
    while made < n {
        s = s.wrapping_add(1);
        let birth = from + Days::new(rng.below(34 * 365));
        let gender = if rng.below(2) == 0 {
            zhudai_domain::ident::Gender::Male
        } else {
            zhudai_domain::ident::Gender::Female
        };
        let Ok(id) = gen::resident_id_with(s, provinces[rng.below(8) as usize], birth, gender)
        else {
            continue;
        };
        if !seen.insert(id.as_str().to_owned()) {
            continue;
        }
        made += 1;
        out.push_str(&format!(
            "individual,{}{},{},{},{},{}.00\n",
            SURNAMES[rng.below(20) as usize],
            GIVEN[rng.below(20) as usize],
            id.as_str(),
            gen::mobile(s).as_str(),
            gen::unionpay_card(s).as_str(),
            3000 + rng.below(40_000)
        ));
    }
    out.into_bytes()
}

const APP_COLS: &[&str] = &[
    "id",
    "ref",
    "customer_id",
    "product_code",
    "product_version",
    "amount_fen",
    "months",
    "method",
    "status",
    "node",
    "funder_code",
    "owner_user_id",
    "org_unit_id",
    "created_at_ms",
    "updated_at_ms",
];
const LOAN_COLS: &[&str] = &[
    "id",
    "ref",
    "application_id",
    "customer_id",
    "product_code",
    "product_version",
    "funder_code",
    "funder_loan_ref",
    "owner_user_id",
    "org_unit_id",
    "principal_fen",
    "annual_rate",
    "penalty_annual_rate",
    "method",
    "months",
    "day_count",
    "terms_json",
    "disbursed_on",
    "maturity_date",
    "status",
    "principal_outstanding_fen",
    "interest_outstanding_fen",
    "fee_outstanding_fen",
    "closed_on",
    "created_at_ms",
    "updated_at_ms",
];
const INST_COLS: &[&str] = &[
    "id",
    "loan_id",
    "number",
    "due_date",
    "principal_due_fen",
    "interest_due_fen",
    "fee_due_fen",
    "principal_paid_fen",
    "interest_paid_fen",
    "fee_paid_fen",
    "settled_on",
];
const ENTRY_COLS: &[&str] = &[
    "id",
    "kind",
    "loan_id",
    "funder_code",
    "business_date",
    "created_by",
    "created_at_ms",
];
const LINE_COLS: &[&str] = &[
    "entry_id",
    "account_code",
    "loan_id",
    "funder_code",
    "debit_fen",
    "credit_fen",
];
const REPAY_COLS: &[&str] = &[
    "id",
    "ref",
    "loan_id",
    "kind",
    "amount_fen",
    "value_date",
    "payer_name",
    "third_party",
    "channel",
    "principal_fen",
    "interest_fen",
    "fee_fen",
    "penalty_fen",
    "overpaid_fen",
    "credit_used_fen",
    "entry_id",
    "status",
    "prior_state",
    "created_by",
    "created_at_ms",
];
const ALLOC_COLS: &[&str] = &[
    "repayment_id",
    "installment_id",
    "principal_fen",
    "interest_fen",
    "fee_fen",
    "penalty_fen",
];

struct Ids {
    app: i64,
    loan: i64,
    inst: i64,
    entry: i64,
    repay: i64,
}

struct Buffers {
    apps: Rows,
    loans: Rows,
    insts: Rows,
    entries: Rows,
    lines: Rows,
    repays: Rows,
    allocs: Rows,
}

impl Buffers {
    fn new() -> Self {
        Buffers {
            apps: Rows::new("applications", APP_COLS),
            loans: Rows::new("loans", LOAN_COLS),
            insts: Rows::new("loan_installments", INST_COLS),
            entries: Rows::new("journal_entries", ENTRY_COLS),
            lines: Rows::new("journal_lines", LINE_COLS),
            repays: Rows::new("repayments", REPAY_COLS),
            allocs: Rows::new("repayment_allocations", ALLOC_COLS),
        }
    }

    async fn flush(&mut self, store: &Store) -> Result<(), BookError> {
        let mut tx = store.begin().await?;
        for rows in [
            &self.apps,
            &self.loans,
            &self.insts,
            &self.entries,
            &self.lines,
            &self.repays,
            &self.allocs,
        ] {
            bulk::insert(&mut tx, rows).await?;
        }
        tx.commit().await?;
        for rows in [
            &mut self.apps,
            &mut self.loans,
            &mut self.insts,
            &mut self.entries,
            &mut self.lines,
            &mut self.repays,
            &mut self.allocs,
        ] {
            rows.clear();
        }
        Ok(())
    }
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// How a borrower pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Habit {
    OnTime,
    /// Every installment this many days late.
    Late(u64),
    /// Paid on time until installment index `k`, nothing since.
    Stopped(usize),
}

/// Generates the book. `owner` owns every customer, application and loan.
pub async fn generate(
    store: &Store,
    vault: &Vault,
    clock: Arc<dyn Clock>,
    owner: &User,
    spec: &BookSpec,
    progress: Progress,
) -> Result<BookSummary, BookError> {
    let now = clock.now().timestamp_millis();
    // Products and funders: the active products' current versions.
    let mut products = Vec::new();
    for p in store.products().await? {
        if p.status != ProductStatus::Active {
            continue;
        }
        if let Some(v) = store.product_version(p.id, None).await? {
            if v.spec.funder_codes.is_empty() || v.spec.methods.is_empty() {
                continue;
            }
            products.push(Product {
                penalty: v.spec.penalty_annual_rate().to_string(),
                code: p.code,
                version: v.version,
                spec: v.spec,
            });
        }
    }
    if products.is_empty() {
        return Err(BookError::Other(
            "no active product with funders: run `zhudai serve --demo` once, or create products first".into(),
        ));
    }
    let closed = spec.loans * spec.closed_pct / 100;
    let total = spec.loans + closed;
    let n_customers = (total * 4 / 5).max(1);
    // 1. Customers, through the bulk import (encrypted, blind-indexed).
    progress("customers", 0, n_customers);
    let before_customer: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM customers",
    )
    .fetch_one(store.reader())
    .await?;
    let csv = customers_csv(n_customers, spec.seed);
    let table = Table::parse(&csv).map_err(|e| BookError::Other(e.to_string()))?;
    let digest = crate::import::digest(&csv);
    let import_id = {
        let mut conn = store.writer().acquire().await?;
        zhudai_store::imports::import_insert(
            &mut conn,
            &zhudai_store::imports::NewImport {
                file_name: "synthetic-book.csv",
                file_format: "csv",
                file_digest: &digest,
                file_size: csv.len() as i64,
                dry_run: false,
                strict: false,
                status: "running",
                requested_by: Some(owner.id),
                owner_user_id: owner.id,
                org_unit_id: owner.org_unit_id,
                runner: Some("book-generator"),
            },
            now,
        )
        .await?
    };
    let engine = Engine {
        store: store.clone(),
        vault: vault.clone(),
        clock: clock.clone(),
    };
    let opts = ImportOptions {
        dry_run: false,
        strict: false,
        owner_user_id: owner.id,
        org_unit_id: owner.org_unit_id,
        requested_by: Some(owner.id),
        scope: zhudai_store::customers::ScopeFilter::All,
        actor: "book-generator".into(),
        roles: "cli".into(),
        today: clock.today(),
        batch_rows: crate::import::engine::DEFAULT_BATCH_ROWS,
        defer_indexes_from_rows: zhudai_store::imports::DEFER_INDEXES_FROM_ROWS,
    };
    let p2: crate::import::engine::ProgressFn = {
        let progress = progress.clone();
        Arc::new(move |_phase, c, _t| {
            progress("customers", c.processed.max(0) as u64, n_customers);
        })
    };
    let outcome = engine
        .run(import_id, table, &opts, p2)
        .await
        .map_err(|e| BookError::Other(format!("customer import: {e}")))?;
    if outcome.status != "done" {
        return Err(BookError::Other(format!(
            "customer import ended {}: {}",
            outcome.status,
            outcome.error.unwrap_or_default()
        )));
    }
    let customers: Vec<i64> =
        zhudai_store::sqlx::query_scalar("SELECT id FROM customers WHERE id > $1 ORDER BY id")
            .bind(before_customer)
            .fetch_all(store.reader())
            .await?;
    if customers.is_empty() {
        return Err(BookError::Other(
            "the customer import created nobody".into(),
        ));
    }
    progress("customers", customers.len() as u64, n_customers);
    // 2. Loans with their histories.
    let mut ids = {
        let mut conn = store.writer().acquire().await?;
        Ids {
            app: bulk::max_id(&mut conn, "applications").await?,
            loan: bulk::max_id(&mut conn, "loans").await?,
            inst: bulk::max_id(&mut conn, "loan_installments").await?,
            entry: bulk::max_id(&mut conn, "journal_entries").await?,
            repay: bulk::max_id(&mut conn, "repayments").await?,
        }
    };
    let first_entry = ids.entry;
    let mut buf = Buffers::new();
    let mut sum = BookSummary {
        customers: customers.len() as u64,
        ..Default::default()
    };
    let owner_unit: V = owner.org_unit_id.into();
    for i in 0..total {
        let mut rng = SplitMix64::new(spec.seed ^ (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let is_closed = i >= spec.loans;
        // Product: the first active product twice as often as each other one.
        let weights: Vec<u64> = (0..products.len())
            .map(|k| if k == 0 { 2 } else { 1 })
            .collect();
        let wsum: u64 = weights.iter().sum();
        let mut pick = rng.below(wsum);
        let mut pi = 0;
        for (k, w) in weights.iter().enumerate() {
            if pick < *w {
                pi = k;
                break;
            }
            pick -= w;
        }
        let prod = &products[pi];
        let s = &prod.spec;
        let method: RepaymentMethod = s.methods[rng.below(s.methods.len() as u64) as usize];
        let months = s.min_months + rng.below(u64::from(s.max_months - s.min_months) + 1) as u32;
        let lo = s.min_amount.as_fen() / 100_000;
        let hi = (s.max_amount.as_fen() / 100_000).max(lo);
        let amount = Fen::new((lo + rng.below((hi - lo + 1) as u64) as i64) * 100_000);
        let funder = &s.funder_codes[rng.below(s.funder_codes.len() as u64) as usize];
        // Open loans: disbursed within their term before as_of; closed ones: matured.
        let span = u64::from(months) * 30;
        let disbursed = if is_closed {
            spec.as_of - Days::new(span + 1 + rng.below(365))
        } else {
            spec.as_of - Days::new(rng.below(span.max(1)))
        };
        let Some(terms) = s.terms(method, amount, months, disbursed) else {
            continue;
        };
        let Ok((_, insts)) = servicing::opening_installments(&terms) else {
            continue;
        };
        let due: Vec<usize> = (0..insts.len())
            .filter(|&k| insts[k].due_date <= spec.as_of && insts[k].due.total() > 0)
            .collect();
        let habit = if is_closed {
            Habit::OnTime
        } else {
            match rng.below(100) {
                0..=84 => Habit::OnTime,
                85..=92 => Habit::Late(1 + rng.below(20)),
                _ => Habit::Stopped(rng.below(due.len() as u64 + 1) as usize),
            }
        };
        ids.app += 1;
        ids.loan += 1;
        let loan_id = ids.loan;
        let customer = customers[(i as usize) % customers.len()];
        let aref = format!("bk{:x}-a{}", spec.seed, i);
        let lref = format!("bk{:x}-l{}", spec.seed, i);
        let created = now;
        buf.apps.push([
            ids.app.into(),
            aref.into(),
            customer.into(),
            V::S(prod.code.clone()),
            prod.version.into(),
            amount.as_fen().into(),
            i64::from(months).into(),
            method.code().into(),
            "disbursed".into(),
            "disbursed".into(),
            V::S(funder.clone()),
            owner.id.into(),
            owner_unit.clone(),
            created.into(),
            created.into(),
        ]);
        // Inst ids first, so repayments can allocate to them.
        let first_inst = ids.inst + 1;
        ids.inst += insts.len() as i64;
        // The disbursement entry.
        let total_due = servicing::outstanding(&insts);
        let entry = ledger::disbursement(
            amount,
            Fen::new(total_due.interest),
            Fen::new(total_due.fee),
        )
        .map_err(|e| BookError::Other(e.to_string()))?;
        ids.entry += 1;
        push_entry(
            &mut buf,
            ids.entry,
            "disbursement",
            loan_id,
            funder,
            &ymd(disbursed),
            created,
        );
        for l in entry.lines() {
            buf.lines.push([
                ids.entry.into(),
                l.account.code().into(),
                loan_id.into(),
                V::S(funder.clone()),
                l.debit_fen().into(),
                l.credit_fen().into(),
            ]);
        }
        // The history.
        let mut paid: Vec<Option<NaiveDate>> = vec![None; insts.len()];
        for (n, &k) in due.iter().enumerate() {
            let on = match habit {
                Habit::OnTime => Some(insts[k].due_date),
                Habit::Late(days) => {
                    let d = insts[k].due_date + Days::new(days);
                    (d <= spec.as_of).then_some(d)
                }
                Habit::Stopped(stop) => (n < stop).then_some(insts[k].due_date),
            };
            let Some(on) = on else { break };
            paid[k] = Some(on);
            let inst: &Installment = &insts[k];
            let amt = inst.due;
            ids.repay += 1;
            ids.entry += 1;
            let date = ymd(on);
            push_entry(
                &mut buf,
                ids.entry,
                "repayment",
                loan_id,
                funder,
                &date,
                created,
            );
            buf.lines.push([
                ids.entry.into(),
                Account::CashClearing.code().into(),
                loan_id.into(),
                V::S(funder.clone()),
                amt.total().into(),
                0.into(),
            ]);
            for (acct, v) in [
                (Account::FeeReceivable, amt.fee),
                (Account::InterestReceivable, amt.interest),
                (Account::LoanPrincipal, amt.principal),
            ] {
                if v > 0 {
                    buf.lines.push([
                        ids.entry.into(),
                        acct.code().into(),
                        loan_id.into(),
                        V::S(funder.clone()),
                        0.into(),
                        v.into(),
                    ]);
                }
            }
            buf.repays.push([
                ids.repay.into(),
                format!("bk{:x}-r{}-{}", spec.seed, i, inst.number).into(),
                loan_id.into(),
                "scheduled".into(),
                amt.total().into(),
                date.clone().into(),
                "本人".into(),
                0.into(),
                "withhold".into(),
                amt.principal.into(),
                amt.interest.into(),
                amt.fee.into(),
                0.into(),
                0.into(),
                0.into(),
                ids.entry.into(),
                "posted".into(),
                "{}".into(),
                "book-generator".into(),
                created.into(),
            ]);
            buf.allocs.push([
                ids.repay.into(),
                (first_inst + k as i64).into(),
                amt.principal.into(),
                amt.interest.into(),
                amt.fee.into(),
                0.into(),
            ]);
            sum.repayments += 1;
        }
        // The upfront fee (installment 0 with nothing else) of a loan paid at all.
        let mut out = (0_i64, 0_i64, 0_i64);
        let mut all_settled = true;
        let mut last_paid = disbursed;
        for (k, inst) in insts.iter().enumerate() {
            let p = paid[k];
            let (pp, pi, pf) = if p.is_some() {
                (inst.due.principal, inst.due.interest, inst.due.fee)
            } else {
                (0, 0, 0)
            };
            if inst.due.total() > 0 && p.is_none() {
                all_settled = false;
            }
            if let Some(p) = p {
                last_paid = last_paid.max(p);
            }
            out.0 += inst.due.principal - pp;
            out.1 += inst.due.interest - pi;
            out.2 += inst.due.fee - pf;
            buf.insts.push([
                (first_inst + k as i64).into(),
                loan_id.into(),
                i64::from(inst.number).into(),
                ymd(inst.due_date).into(),
                inst.due.principal.into(),
                inst.due.interest.into(),
                inst.due.fee.into(),
                pp.into(),
                pi.into(),
                pf.into(),
                p.map(ymd).into(),
            ]);
            sum.installments += 1;
        }
        let status = if all_settled { "paid_off" } else { "active" };
        if all_settled {
            sum.paid_off += 1;
        } else {
            sum.open_loans += 1;
            if insts
                .iter()
                .enumerate()
                .any(|(k, it)| it.due.total() > 0 && it.due_date < spec.as_of && paid[k].is_none())
            {
                sum.in_arrears += 1;
            }
        }
        let maturity = insts.last().map_or(disbursed, |x| x.due_date);
        let terms_json =
            serde_json::to_string(&terms).map_err(|e| BookError::Other(e.to_string()))?;
        buf.loans.push([
            loan_id.into(),
            lref.into(),
            ids.app.into(),
            customer.into(),
            V::S(prod.code.clone()),
            prod.version.into(),
            V::S(funder.clone()),
            V::S(format!("{}-{:08}", funder.to_uppercase(), i)),
            owner.id.into(),
            owner_unit.clone(),
            amount.as_fen().into(),
            terms.annual_rate.to_string().into(),
            V::S(prod.penalty.clone()),
            method.code().into(),
            i64::from(months).into(),
            terms.day_count.code().into(),
            terms_json.into(),
            ymd(disbursed).into(),
            ymd(maturity).into(),
            status.into(),
            out.0.into(),
            out.1.into(),
            out.2.into(),
            all_settled.then(|| ymd(last_paid)).into(),
            created.into(),
            created.into(),
        ]);
        sum.loans += 1;
        if buf.loans.len() >= spec.batch.max(1) {
            buf.flush(store).await?;
            progress("loans", i + 1, total);
        }
    }
    buf.flush(store).await?;
    progress("loans", total, total);
    let mut conn = store.writer().acquire().await?;
    let tables = [
        "applications",
        "loans",
        "loan_installments",
        "journal_entries",
        "journal_lines",
        "repayments",
        "repayment_allocations",
    ];
    bulk::fix_sequences(&mut conn, &tables).await?;
    bulk::analyze(&mut conn, &tables).await?;
    sum.journal_entries = (ids.entry - first_entry).max(0) as u64;
    Ok(sum)
}

fn push_entry(
    buf: &mut Buffers,
    id: i64,
    kind: &'static str,
    loan: i64,
    funder: &str,
    date: &str,
    at: i64,
) {
    buf.entries.push([
        id.into(),
        kind.into(),
        loan.into(),
        V::S(funder.to_owned()),
        V::S(date.to_owned()),
        "book-generator".into(),
        at.into(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customer_file_is_valid_and_reproducible() {
        let a = customers_csv(300, 7);
        assert_eq!(a, customers_csv(300, 7));
        assert_ne!(a, customers_csv(300, 8));
        let t = Table::parse(&a).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let mut n = 0;
        for row in t.rows() {
            let row = row.unwrap();
            assert!(row.input.validate(today).is_ok(), "{row:?}");
            n += 1;
        }
        assert_eq!(n, 300);
    }
}
