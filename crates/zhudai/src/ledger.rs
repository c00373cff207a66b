//! `zhudai ledger …` (issue #8): prove the double-entry ledger against the database the
//! server uses.

use crate::cli::Failure;
use clap::Subcommand;
use std::io::Write;
use zhudai_store::Store;

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Prove every journal entry balances and every loan's balances equal its journal lines
    /// and its installments; exit 1 naming each bad entry, line, repayment or loan
    Verify,
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub async fn run(store: &Store, action: LedgerAction) -> Result<(), Failure> {
    match action {
        LedgerAction::Verify => verify(store).await,
    }
}

async fn verify(store: &Store) -> Result<(), Failure> {
    let report = store.ledger_verify().await?;
    if report.ok() {
        out(&format!(
            "ledger balanced: {} journal entries, {} lines, {} loans agree with their entries and installments",
            report.entries, report.lines, report.loans
        ));
        return Ok(());
    }
    for p in &report.problems {
        let _ = writeln!(std::io::stderr().lock(), "{p}");
    }
    let more = report.problem_count.saturating_sub(report.problems.len());
    Err(Failure::Runtime(format!(
        "ledger verification failed: {} problem(s){} in {} journal entries and {} loans",
        report.problem_count,
        if more > 0 {
            format!(" ({more} not listed)")
        } else {
            String::new()
        },
        report.entries,
        report.loans
    )))
}
