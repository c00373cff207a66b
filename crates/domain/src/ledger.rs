//! The double-entry ledger (复式记账): the chart of accounts, balanced journal entries and
//! their reversal. Every money movement of a loan is one [`Entry`] whose debits equal its
//! credits; balances per loan, funder or account are sums of lines.
//!
//! The chart mirrors the `ledger_accounts` rows of migration 0011 (a unit test and the
//! store's conformance test keep them in step). The loan model (see
//! `docs/decisions/0014-loans-and-ledger.md`):
//!
//! - disbursement: Dr `loan_principal` / Cr `funder_funding`; the contractual interest and
//!   fees: Dr `interest_receivable` / Cr `interest_unearned`, Dr `fee_receivable` /
//!   Cr `fee_unearned`;
//! - repayment: Dr `cash_clearing` (and `borrower_overpayment` for held credit used) /
//!   Cr the receivables paid (and `borrower_overpayment` for an excess);
//! - a recalculated schedule: the change in contractual interest and fees between the
//!   receivable and the unearned account;
//! - penalty accrual (daily close): Dr `penalty_receivable` / Cr `penalty_income`;
//! - income recognition (daily close): Dr `interest_unearned` / Cr `interest_income`.

use crate::money::Fen;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which side of an account a line is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn code(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// What an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Asset,
    Liability,
    Equity,
    Income,
    Expense,
}

impl AccountKind {
    pub fn code(self) -> &'static str {
        match self {
            AccountKind::Asset => "asset",
            AccountKind::Liability => "liability",
            AccountKind::Equity => "equity",
            AccountKind::Income => "income",
            AccountKind::Expense => "expense",
        }
    }

    /// The side that increases an account of this kind.
    pub fn normal_side(self) -> Side {
        match self {
            AccountKind::Asset | AccountKind::Expense => Side::Debit,
            AccountKind::Liability | AccountKind::Equity | AccountKind::Income => Side::Credit,
        }
    }
}

macro_rules! accounts {
    ($( $variant:ident => $code:literal, $number:literal, $kind:ident, $zh:literal, $en:literal; )*) => {
        /// The chart of accounts (科目表).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Account { $( $variant, )* }

        impl Account {
            pub const ALL: &'static [Account] = &[ $( Account::$variant, )* ];

            /// Stable code, as stored in journal lines.
            pub fn code(self) -> &'static str {
                match self { $( Account::$variant => $code, )* }
            }

            /// The account number shown to accountants.
            pub fn number(self) -> &'static str {
                match self { $( Account::$variant => $number, )* }
            }

            pub fn kind(self) -> AccountKind {
                match self { $( Account::$variant => AccountKind::$kind, )* }
            }

            pub fn zh_name(self) -> &'static str {
                match self { $( Account::$variant => $zh, )* }
            }

            pub fn en_name(self) -> &'static str {
                match self { $( Account::$variant => $en, )* }
            }
        }
    };
}

accounts! {
    CashClearing => "cash_clearing", "1001", Asset, "还款清算户", "Repayment clearing";
    LoanPrincipal => "loan_principal", "1122", Asset, "贷款本金", "Loan principal";
    InterestReceivable => "interest_receivable", "1132", Asset, "应收利息", "Interest receivable";
    FeeReceivable => "fee_receivable", "1133", Asset, "应收费用", "Fees receivable";
    PenaltyReceivable => "penalty_receivable", "1134", Asset, "应收罚息", "Penalty interest receivable";
    GuaranteeRecoverable => "guarantee_recoverable", "1221", Asset, "代偿追偿款", "Guarantee payouts to recover";
    FunderFunding => "funder_funding", "2001", Liability, "资金方出资", "Funder funding";
    FunderPayable => "funder_payable", "2202", Liability, "应付资金方款项", "Payable to funders";
    BorrowerOverpayment => "borrower_overpayment", "2241", Liability, "溢缴款", "Borrower overpayments";
    InterestUnearned => "interest_unearned", "2401", Liability, "未实现利息收入", "Unearned interest";
    FeeUnearned => "fee_unearned", "2402", Liability, "未实现费用收入", "Unearned fees";
    InterestIncome => "interest_income", "6011", Income, "利息收入", "Interest income";
    FeeIncome => "fee_income", "6021", Income, "服务费收入", "Service-fee income";
    PenaltyIncome => "penalty_income", "6031", Income, "罚息收入", "Penalty interest income";
    RecoveryIncome => "recovery_income", "6111", Income, "追偿收入", "Recoveries";
    WriteOffExpense => "write_off_expense", "6701", Expense, "核销损失", "Write-off losses";
    GuaranteeExpense => "guarantee_expense", "6702", Expense, "代偿支出", "Guarantee payouts";
}

impl Account {
    pub fn parse(code: &str) -> Option<Account> {
        Account::ALL.iter().copied().find(|a| a.code() == code)
    }

    pub fn normal_side(self) -> Side {
        self.kind().normal_side()
    }

    /// The account's balance on its normal side from its debit and credit totals
    /// (positive = the usual state: an asset owed to us, a liability we owe).
    pub fn balance(self, debits: i64, credits: i64) -> i64 {
        match self.normal_side() {
            Side::Debit => debits - credits,
            Side::Credit => credits - debits,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The movement an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Disbursement,
    Repayment,
    Reversal,
    PenaltyAccrual,
    InterestRecognition,
    FeeRecognition,
    GuaranteePayout,
    Recovery,
    WriteOff,
    FunderSettlement,
    OverpaymentRefund,
    Adjustment,
}

impl EntryKind {
    pub const ALL: [EntryKind; 12] = [
        EntryKind::Disbursement,
        EntryKind::Repayment,
        EntryKind::Reversal,
        EntryKind::PenaltyAccrual,
        EntryKind::InterestRecognition,
        EntryKind::FeeRecognition,
        EntryKind::GuaranteePayout,
        EntryKind::Recovery,
        EntryKind::WriteOff,
        EntryKind::FunderSettlement,
        EntryKind::OverpaymentRefund,
        EntryKind::Adjustment,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EntryKind::Disbursement => "disbursement",
            EntryKind::Repayment => "repayment",
            EntryKind::Reversal => "reversal",
            EntryKind::PenaltyAccrual => "penalty_accrual",
            EntryKind::InterestRecognition => "interest_recognition",
            EntryKind::FeeRecognition => "fee_recognition",
            EntryKind::GuaranteePayout => "guarantee_payout",
            EntryKind::Recovery => "recovery",
            EntryKind::WriteOff => "write_off",
            EntryKind::FunderSettlement => "funder_settlement",
            EntryKind::OverpaymentRefund => "overpayment_refund",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn parse(code: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One line: an amount (always positive) on one side of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub account: Account,
    pub side: Side,
    pub amount: Fen,
}

impl Line {
    pub fn debit_fen(&self) -> i64 {
        match self.side {
            Side::Debit => self.amount.as_fen(),
            Side::Credit => 0,
        }
    }

    pub fn credit_fen(&self) -> i64 {
        match self.side {
            Side::Credit => self.amount.as_fen(),
            Side::Debit => 0,
        }
    }
}

/// Why an entry is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a journal entry needs at least one debit and one credit")]
    TooFewLines,
    #[error("a journal line amount must be positive")]
    NonPositiveAmount,
    #[error("debits ({debits}) and credits ({credits}) differ")]
    Unbalanced { debits: i64, credits: i64 },
    #[error("amount overflow in a journal entry")]
    Overflow,
}

/// A balanced journal entry: only [`EntryBuilder::build`] and [`Entry::reversal`] make
/// one, so holding an `Entry` proves its debits equal its credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    kind: EntryKind,
    lines: Vec<Line>,
}

impl Entry {
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Total of the debits (= total of the credits).
    pub fn total(&self) -> Fen {
        Fen::new(self.lines.iter().map(Line::debit_fen).sum())
    }

    /// The entry that undoes this one: every line on the opposite side.
    pub fn reversal(&self) -> Entry {
        Entry {
            kind: EntryKind::Reversal,
            lines: self
                .lines
                .iter()
                .map(|l| Line {
                    side: l.side.opposite(),
                    ..*l
                })
                .collect(),
        }
    }

    /// The net effect on one account (on its normal side).
    pub fn effect_on(&self, account: Account) -> i64 {
        let (d, c) = self
            .lines
            .iter()
            .filter(|l| l.account == account)
            .fold((0, 0), |(d, c), l| (d + l.debit_fen(), c + l.credit_fen()));
        account.balance(d, c)
    }
}

/// Collects lines; zero amounts are skipped, so callers may add every component.
#[derive(Debug, Clone)]
pub struct EntryBuilder {
    kind: EntryKind,
    lines: Vec<Line>,
    error: Option<LedgerError>,
}

impl EntryBuilder {
    pub fn new(kind: EntryKind) -> Self {
        EntryBuilder {
            kind,
            lines: Vec::new(),
            error: None,
        }
    }

    fn push(mut self, account: Account, side: Side, amount: Fen) -> Self {
        if amount.is_negative() {
            self.error.get_or_insert(LedgerError::NonPositiveAmount);
        } else if amount.is_positive() {
            self.lines.push(Line {
                account,
                side,
                amount,
            });
        }
        self
    }

    pub fn debit(self, account: Account, amount: Fen) -> Self {
        self.push(account, Side::Debit, amount)
    }

    pub fn credit(self, account: Account, amount: Fen) -> Self {
        self.push(account, Side::Credit, amount)
    }

    /// Moves `delta` between two accounts: a positive delta debits `up` and credits
    /// `down`; a negative one the other way round; zero adds nothing.
    pub fn shift(self, up: Account, down: Account, delta: i64) -> Self {
        if delta >= 0 {
            self.debit(up, Fen::new(delta))
                .credit(down, Fen::new(delta))
        } else {
            let d = Fen::new(delta.saturating_neg());
            self.debit(down, d).credit(up, d)
        }
    }

    /// Checks the entry balances and has at least one line on each side.
    pub fn build(self) -> Result<Entry, LedgerError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut debits: i64 = 0;
        let mut credits: i64 = 0;
        for l in &self.lines {
            debits = debits
                .checked_add(l.debit_fen())
                .ok_or(LedgerError::Overflow)?;
            credits = credits
                .checked_add(l.credit_fen())
                .ok_or(LedgerError::Overflow)?;
        }
        if debits == 0 || credits == 0 {
            return Err(LedgerError::TooFewLines);
        }
        if debits != credits {
            return Err(LedgerError::Unbalanced { debits, credits });
        }
        Ok(Entry {
            kind: self.kind,
            lines: self.lines,
        })
    }
}

/// The disbursement of a loan: principal from the funder, and the contractual interest
/// and fees of its schedule as receivables against unearned income.
pub fn disbursement(principal: Fen, interest: Fen, fees: Fen) -> Result<Entry, LedgerError> {
    EntryBuilder::new(EntryKind::Disbursement)
        .debit(Account::LoanPrincipal, principal)
        .credit(Account::FunderFunding, principal)
        .debit(Account::InterestReceivable, interest)
        .credit(Account::InterestUnearned, interest)
        .debit(Account::FeeReceivable, fees)
        .credit(Account::FeeUnearned, fees)
        .build()
}

/// Checks stored lines (`(debit, credit)` pairs) the way [`EntryBuilder::build`] does:
/// each line has exactly one positive side and the sides balance. For verification of
/// what a database holds.
pub fn check_lines(lines: &[(i64, i64)]) -> Result<(), LedgerError> {
    let mut debits: i128 = 0;
    let mut credits: i128 = 0;
    for &(d, c) in lines {
        let one_sided = (d > 0 && c == 0) || (d == 0 && c > 0);
        if !one_sided {
            return Err(LedgerError::NonPositiveAmount);
        }
        debits += i128::from(d);
        credits += i128::from(c);
    }
    if debits == 0 || credits == 0 {
        return Err(LedgerError::TooFewLines);
    }
    if debits != credits {
        return Err(LedgerError::Unbalanced {
            debits: i64::try_from(debits).unwrap_or(i64::MAX),
            credits: i64::try_from(credits).unwrap_or(i64::MAX),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_consistent() {
        let mut codes: Vec<_> = Account::ALL.iter().map(|a| a.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Account::ALL.len());
        let mut numbers: Vec<_> = Account::ALL.iter().map(|a| a.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), Account::ALL.len());
        for a in Account::ALL {
            assert_eq!(Account::parse(a.code()), Some(*a));
            // Assets and expenses start with 1 or 6(7); liabilities with 2; income with 6.
            let first = a.number().as_bytes()[0];
            match a.kind() {
                AccountKind::Asset => assert_eq!(first, b'1'),
                AccountKind::Liability => assert_eq!(first, b'2'),
                AccountKind::Income | AccountKind::Expense => assert_eq!(first, b'6'),
                AccountKind::Equity => assert_eq!(first, b'4'),
            }
        }
        // The migration seeds exactly this chart.
        let sql = include_str!("../../store/migrations/0011_loans.sql");
        for a in Account::ALL {
            let row = format!(
                "('{}', '{}', '{}', '{}', '{}', '{}')",
                a.code(),
                a.number(),
                a.zh_name(),
                a.en_name(),
                a.kind().code(),
                a.normal_side().code()
            );
            assert!(sql.contains(&row), "migration lacks {row}");
        }
        for k in EntryKind::ALL {
            assert!(sql.contains(&format!("'{}'", k.code())), "{k:?}");
        }
    }

    #[test]
    fn entries_must_balance() {
        let e = EntryBuilder::new(EntryKind::Adjustment)
            .debit(Account::CashClearing, Fen::new(100))
            .credit(Account::LoanPrincipal, Fen::new(60))
            .credit(Account::InterestReceivable, Fen::new(40))
            .credit(Account::FeeReceivable, Fen::ZERO)
            .build()
            .unwrap();
        assert_eq!(e.lines().len(), 3);
        assert_eq!(e.total(), Fen::new(100));
        assert_eq!(e.effect_on(Account::LoanPrincipal), -60);
        let r = e.reversal();
        assert_eq!(r.kind(), EntryKind::Reversal);
        assert_eq!(r.effect_on(Account::LoanPrincipal), 60);
        assert_eq!(r.total(), Fen::new(100));
        assert_eq!(
            EntryBuilder::new(EntryKind::Adjustment)
                .debit(Account::CashClearing, Fen::new(100))
                .credit(Account::LoanPrincipal, Fen::new(99))
                .build(),
            Err(LedgerError::Unbalanced {
                debits: 100,
                credits: 99
            })
        );
        assert_eq!(
            EntryBuilder::new(EntryKind::Adjustment)
                .debit(Account::CashClearing, Fen::ZERO)
                .build(),
            Err(LedgerError::TooFewLines)
        );
        assert_eq!(
            EntryBuilder::new(EntryKind::Adjustment)
                .debit(Account::CashClearing, Fen::new(-1))
                .credit(Account::LoanPrincipal, Fen::new(-1))
                .build(),
            Err(LedgerError::NonPositiveAmount)
        );
    }

    #[test]
    fn shift_moves_either_way() {
        let e = EntryBuilder::new(EntryKind::Adjustment)
            .shift(Account::InterestReceivable, Account::InterestUnearned, -50)
            .build()
            .unwrap();
        assert_eq!(e.effect_on(Account::InterestReceivable), -50);
        assert_eq!(e.effect_on(Account::InterestUnearned), -50);
        let d = disbursement(Fen::new(1000), Fen::new(120), Fen::ZERO).unwrap();
        assert_eq!(d.lines().len(), 4);
        assert_eq!(d.effect_on(Account::FunderFunding), 1000);
        assert!(check_lines(&[(100, 0), (0, 100)]).is_ok());
        assert!(check_lines(&[(100, 0), (0, 99)]).is_err());
        assert!(check_lines(&[(100, 100)]).is_err());
    }
}
