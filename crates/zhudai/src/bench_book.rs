//! Post-loan benchmarks (issue #8):
//!
//! - `zhudai bench generate --loans N --seed S`: the synthetic book
//!   ([`zhudai_server::book`]) on the configured database, with a progress bar;
//! - `zhudai bench cob --date D`: the daily close of that book on the configured database,
//!   timed, then the same classification recomputed by DuckDB from the exported rows in
//!   the same run (load and query timed separately), with the disagreements counted;
//! - `zhudai bench repayments`: repayments posted per second through
//!   `POST /api/v1/loans/{id}/repayments` (idempotency key, allocation, journal entry,
//!   audit record, on-demand close; a partial payment on an overdue loan, an early
//!   partial repayment with the schedule recalculated on a current one) against an in-process server on a fresh SQLite
//!   database holding a generated book.

use crate::cli::Failure;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use zhudai_domain::clock::{Clock, SystemClock};

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn fail(e: &dyn std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

fn line(json: bool, bench: &str, measure: &str, value: f64, unit: &str, n: u64) {
    if json {
        out(&serde_json::json!({"bench": bench, "measure": measure, "value": value, "unit": unit, "n": n}).to_string());
    } else {
        out(&format!("{measure:<60} {value:>14.2} {unit:<12} (n = {n})"));
    }
}

fn parse_date(flag: &str, s: &str) -> Result<NaiveDate, Failure> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Failure::Config(format!("{flag} `{s}` is not a date such as 2026-11-28")))
}

fn phase_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<12} [{bar:40}] {pos}/{len} {elapsed_precise} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// The demo company, its products and funders, the standard roles; the owner of the
/// book: `owner`, or `demo_customer_manager` (created with the demo accounts when the
/// database is a fresh demo).
async fn prepare(
    store: &zhudai_store::Store,
    owner: Option<&str>,
    now: i64,
) -> Result<zhudai_store::identity::User, Failure> {
    let outcome = zhudai_server::demo::seed(store, now)
        .await
        .map_err(|e| Failure::Runtime(format!("seeding the demo company failed: {e}")))?;
    zhudai_server::auth::seed::ensure_roles(store, now)
        .await
        .map_err(|e| Failure::Runtime(format!("installing the standard roles failed: {e}")))?;
    let name = owner.unwrap_or("demo_customer_manager");
    if let Some(u) = store.user_by_username(name).await? {
        return Ok(u);
    }
    if owner.is_none() && matches!(outcome, zhudai_server::demo::DemoOutcome::Seeded { .. }) {
        zhudai_server::demo::seed_accounts(store, now)
            .await
            .map_err(|e| Failure::Runtime(format!("creating demo accounts failed: {e}")))?;
        if let Some(u) = store.user_by_username(name).await? {
            return Ok(u);
        }
    }
    Err(Failure::Config(format!(
        "no user is called `{name}`: give --owner USERNAME, the user who will own the generated customers and loans"
    )))
}

async fn generate_into(
    store: &zhudai_store::Store,
    vault: &zhudai_server::vault::Vault,
    clock: Arc<dyn Clock>,
    owner: &zhudai_store::identity::User,
    spec: &zhudai_server::book::BookSpec,
    show: bool,
) -> Result<zhudai_server::book::BookSummary, Failure> {
    let bar = if show {
        phase_bar()
    } else {
        ProgressBar::hidden()
    };
    let b = bar.clone();
    let progress: zhudai_server::book::Progress = Arc::new(move |phase: &str, done, total| {
        b.set_message(phase.to_owned());
        b.set_length(total);
        b.set_position(done);
    });
    let r = zhudai_server::book::generate(store, vault, clock, owner, spec, progress).await;
    bar.finish_and_clear();
    r.map_err(|e| Failure::Runtime(format!("generating the book failed: {e}")))
}

/// `zhudai bench generate`.
pub async fn generate(
    config: crate::config::Config,
    loans: u64,
    seed: u64,
    as_of: Option<String>,
    closed_pct: u64,
    batch: usize,
    owner: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let today = clock.today();
    let as_of = match as_of {
        Some(s) => parse_date("--as-of", &s)?,
        None => today.pred_opt().unwrap_or(today),
    };
    if as_of >= today {
        return Err(Failure::Config(format!(
            "--as-of {as_of} must be before today ({today}): the book's history ends that day"
        )));
    }
    let store = crate::cli::open_store(&config).await?;
    store.migrate().await?;
    let now = clock.now().timestamp_millis();
    let owner = prepare(&store, owner.as_deref(), now).await?;
    let vault = crate::cli::open_vault(&store, &config, clock.clone()).await?;
    let spec = zhudai_server::book::BookSpec {
        loans,
        closed_pct,
        seed,
        as_of,
        batch: batch.max(1),
    };
    let started = Instant::now();
    let sum = generate_into(&store, &vault, clock, &owner, &spec, !json).await?;
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    if json {
        out(&serde_json::json!({
            "as_of": as_of.to_string(), "seed": seed, "seconds": secs,
            "customers": sum.customers, "loans": sum.loans, "open_loans": sum.open_loans,
            "in_arrears": sum.in_arrears, "paid_off": sum.paid_off,
            "installments": sum.installments, "repayments": sum.repayments,
            "journal_entries": sum.journal_entries,
        })
        .to_string());
    } else {
        out(&format!(
            "generated a book as of {as_of} (seed {seed}) in {secs:.1} s: {} customers, {} loans ({} open, {} in arrears, {} repaid), {} installments, {} repayments, {} journal entries",
            sum.customers, sum.loans, sum.open_loans, sum.in_arrears, sum.paid_off,
            sum.installments, sum.repayments, sum.journal_entries
        ));
        out(&format!(
            "close it with: zhudai bench cob --date {as_of}   (or zhudai cob run --date {as_of})"
        ));
    }
    Ok(())
}

/// `zhudai bench cob`.
pub async fn cob(
    config: crate::config::Config,
    date: String,
    chunk_size: Option<i64>,
    duckdb: bool,
    json: bool,
) -> Result<(), Failure> {
    let date = parse_date("--date", &date)?;
    let mut settings = config.cob_settings().map_err(Failure::Config)?;
    if let Some(c) = chunk_size {
        if c < 1 {
            return Err(Failure::Config("--chunk-size must be at least 1".into()));
        }
        settings.chunk_size = c;
    }
    let store = crate::cli::open_store(&config).await?;
    store.migrate().await?;
    let d = date.format("%Y-%m-%d").to_string();
    if store.cob_run(&d).await?.is_some() {
        return Err(Failure::Config(format!(
            "{d} was already closed (or started) on this database: the benchmark times a first close; generate a fresh book"
        )));
    }
    let active: i64 = zhudai_store::sqlx::query_scalar(
        "SELECT COUNT(*) FROM loans WHERE status IN ('active', 'overdue') AND disbursed_on <= $1",
    )
    .bind(&d)
    .fetch_one(store.reader())
    .await
    .map_err(|e| fail(&e))?;
    let backend = format!("{:?}", store.backend()).to_lowercase();
    let bar = if json {
        ProgressBar::hidden()
    } else {
        phase_bar()
    };
    bar.set_message("close");
    let pb = bar.clone();
    let now = || SystemClock.now().timestamp_millis();
    let today = SystemClock.today();
    let started = Instant::now();
    let outcome = zhudai_server::cob::run(
        &store,
        &settings,
        config.apr_cap,
        date,
        today,
        &now,
        &zhudai_server::cob::RunOptions {
            worker: crate::cob::runner_id(),
            ..Default::default()
        },
        &mut |p| {
            pb.set_length(p.chunks_total.max(0) as u64);
            pb.set_position(p.chunks_done.max(0) as u64);
        },
    )
    .await
    .map_err(|e| Failure::Runtime(e.to_string()))?;
    let close_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if !outcome.done {
        return Err(Failure::Runtime(format!(
            "the close of {d} did not finish: {} of {} chunks",
            outcome.run.chunks_done, outcome.run.chunks_total
        )));
    }
    let t = outcome.run.totals;
    let n = active.max(0) as u64;
    line(
        json,
        "cob",
        &format!("close of {d} on {backend}"),
        close_secs,
        "s",
        n,
    );
    line(
        json,
        "cob",
        &format!("loans closed per second on {backend}"),
        n as f64 / close_secs.max(1e-9),
        "loans/s",
        n,
    );
    if !json {
        out(&format!(
            "  {} chunks of {}; {} overdue, {} tier changes, {} bucket moves, {} cases opened, {} payouts",
            outcome.run.chunks_total,
            settings.chunk_size,
            t.overdue_loans,
            t.reclassified,
            t.bucket_moves,
            t.cases_opened,
            t.payouts
        ));
    }
    if duckdb {
        let dir = std::env::temp_dir().join(format!("zhudai-bench-cob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
        let started = Instant::now();
        let exported = zhudai_server::cob::export_check_inputs(&store, &settings, date, &dir)
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let export_secs = started.elapsed().as_secs_f64();
        let check = zhudai_server::cob::run_duckdb_check(&dir).map_err(Failure::Runtime)?;
        let _ = std::fs::remove_dir_all(&dir);
        let load = check["load_seconds"].as_f64().unwrap_or(f64::NAN);
        let query = check["query_seconds"].as_f64().unwrap_or(f64::NAN);
        let mismatches = check["mismatches"].as_u64().unwrap_or(u64::MAX);
        line(
            json,
            "cob",
            "export of the check rows (CSV)",
            export_secs,
            "s",
            exported,
        );
        line(
            json,
            "cob",
            "DuckDB: load the CSV files",
            load,
            "s",
            exported,
        );
        line(
            json,
            "cob",
            "DuckDB: DPD, tier and bucket per loan (query)",
            query,
            "s",
            exported,
        );
        line(
            json,
            "cob",
            "loans where DuckDB and the close disagree",
            mismatches as f64,
            "loans",
            exported,
        );
        if !json {
            out(&format!("  by tier (DuckDB): {}", check["by_tier"]));
        }
        if mismatches != 0 {
            store.close().await;
            return Err(Failure::Runtime(format!(
                "DuckDB disagrees with the close on {mismatches} loans, e.g. {}",
                check["examples"]
            )));
        }
    }
    store.close().await;
    Ok(())
}

/// `zhudai bench repayments`.
pub async fn repayments(
    loans: u64,
    seconds: u64,
    clients: u32,
    sync: zhudai_store::SqliteSync,
    json: bool,
) -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("zhudai-bench-repayments-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let r = repayments_in(&dir, loans, seconds, clients, sync, json).await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

async fn repayments_in(
    dir: &std::path::Path,
    loans: u64,
    seconds: u64,
    clients: u32,
    sync: zhudai_store::SqliteSync,
    json: bool,
) -> Result<(), Failure> {
    let location = zhudai_store::DatabaseLocation::SqliteFile(dir.join("zhudai.db"));
    let opts = zhudai_store::StoreOptions {
        sqlite_sync: sync,
        ..zhudai_store::StoreOptions::default()
    };
    let store = zhudai_store::Store::open(&location, &opts)
        .await
        .map_err(|e| fail(&e))?;
    store.migrate().await.map_err(|e| fail(&e))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now().timestamp_millis();
    let owner = prepare(&store, None, now).await?;
    let vault = zhudai_server::vault::Vault::open(
        &store,
        dir,
        None,
        zhudai_crypto::envelope::Algorithm::Aes256Gcm,
        clock.clone(),
    )
    .await
    .map_err(|e| fail(&e))?;
    let today = clock.today();
    let yesterday = today.pred_opt().unwrap_or(today);
    // Set-up, untimed: the book, closed through yesterday so no loan is stale.
    let sum = generate_into(
        &store,
        &vault,
        clock.clone(),
        &owner,
        &zhudai_server::book::BookSpec {
            loans,
            closed_pct: 0,
            seed: 7,
            as_of: yesterday,
            batch: 500,
        },
        !json,
    )
    .await?;
    let settings = zhudai_server::ServerSettings {
        data_dir: dir.to_path_buf(),
        // The benchmark's staff have no authenticator; two-factor is not what is measured.
        auth: zhudai_server::auth::login::AuthPolicy {
            enforce_2fa: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let now_fn = || SystemClock.now().timestamp_millis();
    zhudai_server::cob::run(
        &store,
        &settings.cob,
        settings.apr_cap,
        yesterday,
        today,
        &now_fn,
        &zhudai_server::cob::RunOptions {
            worker: crate::cob::runner_id(),
            ..Default::default()
        },
        &mut |_| {},
    )
    .await
    .map_err(|e| Failure::Runtime(e.to_string()))?;
    // Overdue loans take a partial payment of what is due; current ones an early partial
    // repayment (the schedule is recalculated).
    // (Loans with an installment falling due today are left out: they take a scheduled
    // payment of that installment, not 10 yuan.)
    let ids: Vec<(i64, &'static str)> = zhudai_store::sqlx::query_as::<_, (i64, String)>(
        "SELECT l.id, l.status FROM loans l
          WHERE l.status = 'overdue'
             OR (l.status = 'active' AND NOT EXISTS (SELECT 1 FROM loan_installments i
                  WHERE i.loan_id = l.id AND i.settled_on IS NULL AND i.due_date <= $1))
          ORDER BY l.id",
    )
    .bind(today.format("%Y-%m-%d").to_string())
    .fetch_all(store.reader())
    .await
    .map_err(|e| fail(&e))?
    .into_iter()
    .map(|(id, status)| {
        (
            id,
            if status == "overdue" {
                "partial"
            } else {
                "early_partial"
            },
        )
    })
    .collect();
    if ids.is_empty() {
        return Err(Failure::Runtime(
            "the generated book has no open loan".into(),
        ));
    }
    let ids = Arc::new(ids);
    let state = zhudai_server::AppState::new(store.clone(), clock.clone(), settings, vault);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(&e))?;
    let addr = listener.local_addr().map_err(|e| fail(&e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zhudai_server::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "demo_operations", "password": zhudai_server::ui::account::DEMO_PASSWORD}))
        .send()
        .await
        .map_err(|e| fail(&e))?
        .json()
        .await
        .map_err(|e| fail(&e))?;
    let token = Arc::new(
        login["token"]
            .as_str()
            .ok_or_else(|| Failure::Runtime(format!("login of demo_operations failed: {login}")))?
            .to_owned(),
    );
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, token, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0_u64;
            let mut first_error = None;
            let mut i = c as usize;
            while Instant::now() < deadline {
                // Each client walks its own share of the loans: small partial payments.
                let (loan, kind) = ids[i % ids.len()];
                i += clients as usize;
                let t0 = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/loans/{loan}/repayments"))
                    .bearer_auth(token.as_str())
                    .header("Idempotency-Key", format!("bench-{c}-{i}"))
                    // 1 yuan on an overdue loan, so that a loan met again in a long run
                    // still owes more than the payment (a payment covering what is due
                    // must be posted as scheduled, and would be refused).
                    .json(&serde_json::json!({
                        "kind": kind,
                        "amount": if kind == "partial" { "1.00" } else { "10.00" },
                        "payer_name": "借款人"
                    }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(r) => {
                        errors += 1;
                        if first_error.is_none() {
                            let s = r.status();
                            first_error =
                                Some(format!("{s}: {}", r.text().await.unwrap_or_default()));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(e.to_string());
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, f) = t.await.map_err(|e| fail(&e))?;
        lat.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = server.await;
    // The book must still balance, and the audit chain still hold, after the run.
    let verify = store.ledger_verify().await?;
    let chain = store.audit_verify(&[]).await?;
    store.close().await;
    if let Some(f) = first_error {
        return Err(Failure::Runtime(format!(
            "{errors} repayment(s) failed, the first: {f}"
        )));
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let k = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[k.min(lat.len() - 1)]
    };
    let n = lat.len() as u64;
    if !json {
        out(&format!(
            "book: {} open loans ({} in arrears); {clients} clients for {seconds} s; SQLite synchronous={}",
            sum.open_loans,
            sum.in_arrears,
            sync.as_str()
        ));
    }
    line(
        json,
        "repayments",
        "repayments posted per second (API)",
        n as f64 / secs,
        "req/s",
        n,
    );
    line(json, "repayments", "latency p50", pct(0.50), "ms", n);
    line(json, "repayments", "latency p99", pct(0.99), "ms", n);
    if !verify.ok() {
        return Err(Failure::Runtime(format!(
            "ledger verification failed after the run: {} problem(s), e.g. {:?}",
            verify.problem_count,
            verify.problems.first()
        )));
    }
    let head = chain.map_err(|b| {
        Failure::Runtime(format!(
            "the audit chain is broken after the run at record {}: {:?}",
            b.seq, b.kind
        ))
    })?;
    if !json {
        out(&format!(
            "ledger verify after the run: {} entries balanced, {} loans agree; audit chain: {} records verified",
            verify.entries, verify.loans, head.records_checked
        ));
    }
    Ok(())
}
