//! `zhudai cob run --date YYYY-MM-DD`: the daily close of business from the command line,
//! on the configured database, with a progress bar. Safe to run while servers run their
//! nightly job, and again after a crash: chunks done are skipped, the chunk a killed
//! `zhudai cob run` on this machine held is taken over at once.

use crate::cli::Failure;
use crate::config::Config;
use chrono::NaiveDate;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::Path;
use zhudai_domain::clock::{Clock, SystemClock};
use zhudai_domain::money::Fen;

#[derive(Debug, Subcommand)]
pub enum CobAction {
    /// Close one business day (days past due, penalty interest, tiers, buckets, cases,
    /// guarantee payouts). Idempotent: a closed day is reported, not closed again
    Run {
        /// The business day to close, YYYY-MM-DD (default: yesterday)
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Loan ids per chunk (default: the `cob_chunk_size` setting)
        #[arg(long)]
        chunk_size: Option<i64>,
        /// Print the figures as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// The latest closes and their figures
    Status {
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `cli:<host>:<pid>` of this process.
pub(crate) fn runner_id() -> String {
    format!("cli:{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A `cli:<host>:<pid>` runner on this machine whose process is gone.
pub(crate) fn process_gone(runner: &str) -> bool {
    let mut parts = runner.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("cli"), Some(host), Some(pid)) if host == host_name() => {
            pid.parse::<u32>().is_ok_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
        }
        _ => false,
    }
}

pub async fn run(config: Config, action: CobAction) -> Result<(), Failure> {
    match action {
        CobAction::Run {
            date,
            chunk_size,
            json,
        } => run_close(config, date.as_deref(), chunk_size, json).await,
        CobAction::Status { limit } => status(config, limit).await,
    }
}

async fn run_close(
    config: Config,
    date: Option<&str>,
    chunk_size: Option<i64>,
    json: bool,
) -> Result<(), Failure> {
    let mut settings = config.cob_settings().map_err(Failure::Config)?;
    if let Some(c) = chunk_size {
        if c < 1 {
            return Err(Failure::Config("--chunk-size must be at least 1".into()));
        }
        settings.chunk_size = c;
    }
    let clock = SystemClock;
    let today = clock.today();
    let date = match date {
        Some(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            Failure::Config(format!("--date `{s}` is not a date such as 2026-11-28"))
        })?,
        None => today.pred_opt().unwrap_or(today),
    };
    let store = crate::cli::open_store(&config).await?;
    store.migrate().await?;
    let worker = runner_id();
    // Chunks held by a `zhudai cob run` of this machine that was killed.
    let gone: Vec<String> = match store.cob_run(&date.format("%Y-%m-%d").to_string()).await? {
        Some(r) => store
            .cob_chunk_holders(r.id)
            .await?
            .into_iter()
            .filter(|w| process_gone(w))
            .collect(),
        None => Vec::new(),
    };
    if !gone.is_empty() {
        eprint(&format!(
            "taking over the chunk(s) of {} (process gone)",
            gone.join(", ")
        ));
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "close {msg} [{bar:40}] {pos}/{len} chunks, {elapsed_precise}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(date.to_string());
    let started = std::time::Instant::now();
    let progress_bar = bar.clone();
    let now = || SystemClock.now().timestamp_millis();
    let outcome = zhudai_server::cob::run(
        &store,
        &settings,
        config.apr_cap,
        date,
        today,
        &now,
        &zhudai_server::cob::RunOptions {
            worker,
            gone,
            ..Default::default()
        },
        &mut |p| {
            progress_bar.set_length(p.chunks_total.max(0) as u64);
            progress_bar.set_position(p.chunks_done.max(0) as u64);
        },
    )
    .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    store.close().await;
    let outcome = outcome.map_err(|e| match e {
        zhudai_server::cob::CobError::LaterRunExists(_)
        | zhudai_server::cob::CobError::Future(_) => Failure::Config(e.to_string()),
        other => Failure::Runtime(other.to_string()),
    })?;
    let t = outcome.run.totals;
    if json {
        out(&serde_json::json!({
            "business_date": outcome.run.business_date,
            "state": outcome.run.state,
            "already_done": outcome.already_done,
            "chunks": outcome.run.chunks_total,
            "seconds": elapsed.as_secs_f64(),
            "totals": t,
            "this_run": outcome.counts,
        })
        .to_string());
    } else if outcome.already_done {
        out(&format!(
            "{} was closed before: {} loans closed, {} overdue, penalty {} yuan (nothing done now)",
            outcome.run.business_date,
            t.loans_closed,
            t.overdue_loans,
            Fen::new(t.penalty_fen)
        ));
    } else if outcome.done {
        out(&format!(
            "closed {} in {:.1} s: {} chunks; {} loans needed the close, {} overdue; penalty interest {} yuan; {} tier changes, {} bucket moves; {} cases opened, {} closed; {} guarantee payouts ({} yuan)",
            outcome.run.business_date,
            elapsed.as_secs_f64(),
            outcome.run.chunks_total,
            t.loans_closed,
            t.overdue_loans,
            Fen::new(t.penalty_fen),
            t.reclassified,
            t.bucket_moves,
            t.cases_opened,
            t.cases_closed,
            t.payouts,
            Fen::new(t.payout_fen)
        ));
    } else {
        return Err(Failure::Runtime(format!(
            "{} is not closed yet: {} of {} chunks done (other workers hold the rest; run again to finish)",
            outcome.run.business_date, outcome.run.chunks_done, outcome.run.chunks_total
        )));
    }
    Ok(())
}

fn eprint(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

async fn status(config: Config, limit: i64) -> Result<(), Failure> {
    let store = crate::cli::open_store(&config).await?;
    store.migrate().await?;
    let runs = store.cob_runs(limit.clamp(1, 1000)).await?;
    store.close().await;
    if runs.is_empty() {
        out("no close has run yet");
    }
    for r in runs {
        out(&format!(
            "{}  {:<7}  {}/{} chunks  {} loans  {} overdue  penalty {} yuan  {} payouts",
            r.business_date,
            r.state,
            r.chunks_done,
            r.chunks_total,
            r.totals.loans_closed,
            r.totals.overdue_loans,
            Fen::new(r.totals.penalty_fen),
            r.totals.payouts
        ));
    }
    Ok(())
}
