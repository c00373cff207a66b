//! `zhudai bench schedules` and `zhudai bench quotes` (products and pricing, issue #5).
//!
//! * `schedules`: 12-period schedules generated per second on one thread (one core), for
//!   each repayment method, reusing one period buffer (`generate_into`), plus the rate of
//!   schedule + all-in APR (IRR). Target: ≥ 1,000,000 12-period schedules/s per core.
//! * `quotes`: quotes per second through the HTTP API (`POST /api/v1/quotes`: pricing,
//!   disclosure, a frozen snapshot with its digest and an audit record, all committed)
//!   against an in-process server on a fresh SQLite database in a temporary directory,
//!   from `--clients` concurrent keep-alive HTTP clients.

use crate::cli::Failure;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zhudai_domain::money::{Fen, Rate};
use zhudai_domain::schedule::{generate_into, LoanTerms, RepaymentMethod, Term};

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// CPU time of the calling thread, from /proc (Linux).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn line(json: bool, bench: &str, measure: &str, value: f64, unit: &str, n: u64) {
    if json {
        out(&serde_json::json!({"bench": bench, "measure": measure, "value": value, "unit": unit, "n": n}).to_string());
    } else {
        out(&format!("{measure:<58} {value:>14.0} {unit:<10} (n = {n})"));
    }
}

fn header(json: bool, what: &str, extra: &str) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    if json {
        out(&serde_json::json!({"kind": "context", "bench": what, "cpus": cpus, "build": build, "setup": extra}).to_string());
    } else {
        out(&format!(
            "zhudai bench {what} · {build} build · {cpus} CPU(s) · {extra}"
        ));
    }
}

/// `zhudai bench schedules`.
pub fn schedules(seconds: u64, json: bool) -> Result<(), Failure> {
    header(
        json,
        "schedules",
        "12 monthly periods, 100,000.00 ± 0.10 yuan at 12 %, one thread",
    );
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 15)
        .ok_or_else(|| Failure::Runtime("calendar".into()))?;
    let rate = Rate::parse("0.12").map_err(|e| Failure::Runtime(e.to_string()))?;
    let term = Term::months(12).map_err(|e| Failure::Runtime(e.to_string()))?;
    let mut buf = Vec::with_capacity(12);
    for method in RepaymentMethod::ALL {
        let mut terms = LoanTerms::new(Fen::new(10_000_000), rate, term, method, start);
        let (ops, wall, cpu) = timed(seconds, |i| {
            // A different principal each time, so nothing is hoisted out of the loop.
            terms.principal = Fen::new(10_000_000 + (i % 21) as i64 - 10);
            generate_into(&terms, &mut buf).map_err(|e| Failure::Runtime(e.to_string()))?;
            std::hint::black_box(&buf);
            Ok(())
        })?;
        line(
            json,
            "schedules",
            &format!("{} schedules per second", method.code()),
            ops as f64 / wall,
            "sched/s",
            ops,
        );
        if let Some(cpu) = cpu {
            line(
                json,
                "schedules",
                &format!("{} schedules per CPU-second", method.code()),
                ops as f64 / cpu,
                "sched/cpu-s",
                ops,
            );
        }
    }
    // Schedule + all-in APR by IRR (Decimal), the cost of pricing one loan.
    let mut terms = LoanTerms::new(
        Fen::new(10_000_000),
        rate,
        term,
        RepaymentMethod::EqualInstallment,
        start,
    );
    let (ops, wall, cpu) = timed(seconds, |i| {
        terms.principal = Fen::new(10_000_000 + (i % 21) as i64 - 10);
        let s = zhudai_domain::schedule::RepaymentSchedule::generate(&terms)
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        std::hint::black_box(s.apr().map_err(|e| Failure::Runtime(e.to_string()))?);
        Ok(())
    })?;
    line(
        json,
        "schedules",
        "equal_installment schedule + APR (IRR) per second",
        ops as f64 / wall,
        "ops/s",
        ops,
    );
    if let Some(cpu) = cpu {
        line(
            json,
            "schedules",
            "equal_installment schedule + APR (IRR) per CPU-second",
            ops as f64 / cpu,
            "ops/cpu-s",
            ops,
        );
    }
    Ok(())
}

/// Runs `op(i)` for `seconds`; returns (operations, wall seconds, CPU seconds).
fn timed(
    seconds: u64,
    mut op: impl FnMut(u64) -> Result<(), Failure>,
) -> Result<(u64, f64, Option<f64>), Failure> {
    let limit = Duration::from_secs(seconds);
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    let mut i = 0u64;
    loop {
        for _ in 0..1024 {
            op(i)?;
            i += 1;
        }
        let elapsed = t0.elapsed();
        if elapsed >= limit {
            let cpu = cpu0
                .zip(thread_cpu_ns())
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9)
                .filter(|s| *s > 0.0);
            return Ok((i, elapsed.as_secs_f64(), cpu));
        }
    }
}

/// `zhudai bench quotes`.
pub async fn quotes(seconds: u64, clients: u32, json: bool) -> Result<(), Failure> {
    use zhudai_domain::clock::{Clock, SystemClock};
    let fail = |e: &dyn std::fmt::Display| Failure::Runtime(e.to_string());
    let dir = tempfile_dir()?;
    let location = zhudai_store::DatabaseLocation::SqliteFile(dir.join("zhudai.db"));
    let store = zhudai_store::Store::open(&location, &zhudai_store::StoreOptions::default())
        .await
        .map_err(|e| fail(&e))?;
    store.migrate().await.map_err(|e| fail(&e))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now().timestamp_millis();
    zhudai_server::demo::seed(&store, now)
        .await
        .map_err(|e| fail(&e))?;
    zhudai_server::auth::seed::ensure_roles(&store, now)
        .await
        .map_err(|e| fail(&e))?;
    let vault = zhudai_server::vault::Vault::open(
        &store,
        &dir,
        None,
        zhudai_crypto::envelope::Algorithm::Aes256Gcm,
        clock.clone(),
    )
    .await
    .map_err(|e| fail(&e))?;
    let password = "Bench-Quotes-2026!";
    zhudai_server::auth::users::create_user(
        &store,
        &vault,
        &zhudai_server::auth::users::UserSpec {
            username: "bench_quotes",
            display_name: "bench",
            password,
            roles: &["customer_manager".to_owned()],
            org_unit_id: None,
            must_change_password: false,
            phone: None,
            id_number: None,
        },
        &zhudai_crypto::password::Argon2Params::default(),
        now,
    )
    .await
    .map_err(|e| Failure::Runtime(format!("{e:?}")))?;
    let settings = zhudai_server::ServerSettings {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let state = zhudai_server::AppState::new(store.clone(), clock, settings, vault);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(&e))?;
    let addr = listener.local_addr().map_err(|e| fail(&e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zhudai_server::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "bench_quotes", "password": password}))
        .send()
        .await
        .map_err(|e| fail(&e))?
        .json()
        .await
        .map_err(|e| fail(&e))?;
    let token = login["token"]
        .as_str()
        .ok_or_else(|| Failure::Runtime(format!("login failed: {login}")))?
        .to_owned();
    header(
        json,
        "quotes",
        &format!("POST /api/v1/quotes, product consumer_std (12–36 months), in-process server, SQLite (synchronous=FULL) in a temporary directory, {clients} keep-alive client(s)"),
    );
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, token, done, errors) = (
            reqwest::Client::new(),
            base.clone(),
            token.clone(),
            done.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = u64::from(c);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let months = 12 + (i % 25);
                let amount = 5_000 + (i * 7_919) % 195_000;
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/quotes"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"product_code": "consumer_std", "amount": format!("{amount}.00"),
                        "months": months, "method": if i % 2 == 0 { "equal_installment" } else { "equal_principal" }}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        done.fetch_add(1, Ordering::Relaxed);
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += u64::from(clients);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(|e| fail(&e))?);
    }
    let wall = t0.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = server.await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let n = done.load(Ordering::Relaxed);
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    line(
        json,
        "quotes",
        "quotes per second (201 Created)",
        n as f64 / wall,
        "quotes/s",
        n,
    );
    line(json, "quotes", "latency p50", pct(0.5) * 1000.0, "µs", n);
    line(json, "quotes", "latency p99", pct(0.99) * 1000.0, "µs", n);
    let errs = errors.load(Ordering::Relaxed);
    line(
        json,
        "quotes",
        "failed requests",
        errs as f64,
        "requests",
        errs,
    );
    if errs > 0 {
        return Err(Failure::Runtime(format!("{errs} quote requests failed")));
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, Failure> {
    let base = std::env::temp_dir().join(format!("zhudai-bench-quotes-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(base)
}
