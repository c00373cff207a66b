//! The `zhudai` binary: the server and every command-line tool in one executable.

// mimalloc's purge delay (ADR 0020 item 11).
mod allocator;
mod audit;
mod bench;
// Post-loan benchmarks (issue #8).
mod bench_book;
// Contracts and disbursement (issue #6).
mod bench_origination;
// Workflow guards benchmark (issue #6).
mod bench_guards;
mod bench_products;
// Risk warnings (issue #7 item 3).
mod bench_warnings;
mod calc;
mod cli;
// Daily close (issue #8 items 3–7).
mod cob;
mod config;
mod import;
mod keys;
// Loans and the ledger (issue #8).
mod ledger;
// Risk control (issue #7).
mod bench_risk;
mod model;

use std::io::Write;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc (for SQLite's allocations too, through the
/// `override` feature): see docs/decisions/0020-sqlite-write-path.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    allocator::apply();
    let args = <cli::Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&cli::Failure::Runtime(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

/// One clear line on stderr and a non-zero exit: 2 for configuration and usage
/// problems the operator must fix, 1 for everything else.
fn fail(failure: &cli::Failure) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "zhudai: error: {failure}");
    ExitCode::from(failure.exit_code())
}
