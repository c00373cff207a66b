//! `zhudai import customers FILE`, `zhudai export customers` and
//! `zhudai demo gen-customers`: the command-line side of bulk import and export. The
//! parsing, validation, encryption and writing are the server's import engine
//! (`zhudai_server::import`), the same the HTTP import runs.

use crate::cli::{open_store, open_vault, Failure};
use crate::config::Config;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zhudai_domain::clock::{Clock, SystemClock};
use zhudai_domain::generate::{self, SplitMix64};
use zhudai_server::import::engine::{ImportOptions, DEFAULT_BATCH_ROWS, STALE_AFTER_MS};
use zhudai_server::import::{self, Engine, Table};
use zhudai_store::customers::ScopeFilter;
use zhudai_store::imports::{self as db, NewImport};
use zhudai_store::Store;

#[derive(Debug, Subcommand)]
pub enum ImportWhat {
    /// Import customers from a CSV (UTF-8 or GBK) or XLSX file: insert new ID numbers,
    /// update existing ones; re-running a file changes nothing. A run interrupted by a
    /// crash resumes where it stopped when started again with the same file
    Customers {
        /// The file (.csv or .xlsx; the format is read from the content)
        file: PathBuf,
        /// Validate every row and report, write nothing
        #[arg(long)]
        dry_run: bool,
        /// Import nothing if any row is bad
        #[arg(long)]
        strict: bool,
        /// The user who owns the new customers (default: the only user, if there is one)
        #[arg(long, value_name = "USERNAME")]
        owner: Option<String>,
        /// Write the row-level error report (XLSX) here
        #[arg(long, value_name = "OUT.xlsx")]
        errors: Option<PathBuf>,
        /// Rows per transaction
        #[arg(long, default_value_t = DEFAULT_BATCH_ROWS, value_parser = clap::value_parser!(usize))]
        batch: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Export every customer (operator export: all fields in clear, audited)
    Customers {
        /// csv or xlsx
        #[arg(long, default_value = "csv")]
        format: String,
        /// Destination file
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Mask the sensitive fields as a role without clear access sees them
        #[arg(long)]
        masked: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoWhat {
    /// Write a CSV of synthetic customers (valid check digits, not real people), with
    /// a bad row every --bad-every rows, for trying and measuring the import
    GenCustomers {
        #[arg(long, default_value_t = 1000)]
        rows: u64,
        #[arg(long, value_name = "FILE.csv")]
        out: PathBuf,
        /// One bad row in this many (0: none)
        #[arg(long, default_value_t = 50)]
        bad_every: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub async fn run_import(config: Config, what: ImportWhat) -> Result<(), Failure> {
    let ImportWhat::Customers {
        file,
        dry_run,
        strict,
        owner,
        errors,
        batch,
    } = what;
    let bytes = std::fs::read(&file)
        .map_err(|e| Failure::Config(format!("cannot read {}: {e}", file.display())))?;
    let table =
        Table::parse(&bytes).map_err(|e| Failure::Config(format!("{}: {e}", file.display())))?;
    let store = open_store(&config).await?;
    store.migrate().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let vault = open_vault(&store, &config, clock.clone()).await?;
    let owner = owner_of(&store, owner.as_deref()).await?;
    let result = import_file(
        &store, &vault, clock, &file, &bytes, table, &owner, dry_run, strict, batch, true,
    )
    .await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let (id, o) = outcome;
    if let Some(path) = errors {
        let all = store.import_errors(id, i64::MAX).await?;
        let xlsx =
            import::report::errors_xlsx(&all).map_err(|e| Failure::Runtime(e.to_string()))?;
        std::fs::write(&path, xlsx)
            .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))?;
        eprintln_safe(&format!(
            "error report ({} problem(s)) written to {}",
            all.len(),
            path.display()
        ));
    }
    store.close().await;
    let c = o.counts;
    out(&format!(
        "import {id} {}{}: {} rows; inserted {}, updated {}, unchanged {}, rejected {}{}",
        o.status,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        o.total_rows,
        c.inserted,
        c.updated,
        c.unchanged,
        c.rejected,
        if o.resumed_after > 0 {
            format!(
                " (resumed after row {} of an interrupted run)",
                o.resumed_after
            )
        } else {
            String::new()
        }
    ));
    match o.error {
        Some(e) if o.status != "done" => Err(Failure::Runtime(e)),
        _ => Ok(()),
    }
}

/// `cli:<host>:<pid>` of this process.
fn runner_id() -> String {
    format!("cli:{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Whether the CLI process that ran an import on this machine is gone (so its import
/// was interrupted, not running right now).
fn process_gone(runner: &str) -> bool {
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

fn eprintln_safe(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The user who will own the imported customers.
pub(crate) async fn owner_of(
    store: &Store,
    username: Option<&str>,
) -> Result<zhudai_store::identity::User, Failure> {
    match username {
        Some(u) => store
            .user_by_username(u)
            .await?
            .ok_or_else(|| Failure::Config(format!("no user is called `{u}`"))),
        None => {
            let page = store
                .user_list(&zhudai_store::identity::UserQuery {
                    text: None,
                    offset: 0,
                    limit: 2,
                })
                .await?;
            match page.users.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(Failure::Config(
                    "give --owner USERNAME: the user who will own the new customers".into(),
                )),
            }
        }
    }
}

/// Runs (or resumes) an import of `bytes` with a progress bar on standard error.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn import_file(
    store: &Store,
    vault: &zhudai_server::vault::Vault,
    clock: Arc<dyn Clock>,
    file: &Path,
    bytes: &[u8],
    table: Table,
    owner: &zhudai_store::identity::User,
    dry_run: bool,
    strict: bool,
    batch: usize,
    show_progress: bool,
) -> Result<(i64, import::Outcome), Failure> {
    let now = clock.now().timestamp_millis();
    let digest = import::digest(bytes);
    let runner = runner_id();
    let earlier = store
        .import_interrupted(&digest, owner.id, dry_run, strict)
        .await?;
    let resumable = earlier.filter(|job| {
        let stale = job.heartbeat_at_ms.unwrap_or(0) < now - STALE_AFTER_MS;
        stale || job.runner.as_deref().is_some_and(process_gone)
    });
    let id = match resumable {
        Some(job) => {
            eprintln_safe(&format!(
                "resuming import {} of this file, interrupted after {} row(s)",
                job.id, job.counts.processed
            ));
            let mut conn = store.writer().acquire().await?;
            db::import_take_over(&mut conn, job.id, &runner, now).await?;
            job.id
        }
        None => {
            let mut conn = store.writer().acquire().await?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            db::import_insert(
                &mut conn,
                &NewImport {
                    file_name: &name,
                    file_format: table.format.as_str(),
                    file_digest: &digest,
                    file_size: bytes.len() as i64,
                    dry_run,
                    strict,
                    status: "running",
                    requested_by: Some(owner.id),
                    owner_user_id: owner.id,
                    org_unit_id: owner.org_unit_id,
                    runner: Some(&runner),
                },
                now,
            )
            .await?
        }
    };
    let bar = if show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} rows, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress_bar = bar.clone();
    let progress: import::ProgressFn = Arc::new(move |phase, c, total| {
        progress_bar.set_length(total.max(0) as u64);
        progress_bar.set_message(phase.to_owned());
        progress_bar.set_position(c.processed.max(0) as u64);
    });
    let engine = Engine {
        store: store.clone(),
        vault: vault.clone(),
        clock: clock.clone(),
    };
    let opts = ImportOptions {
        dry_run,
        strict,
        owner_user_id: owner.id,
        org_unit_id: owner.org_unit_id,
        requested_by: Some(owner.id),
        scope: ScopeFilter::All,
        actor: format!("cli:{}", owner.username),
        roles: "cli".into(),
        today: clock.today(),
        batch_rows: batch,
        defer_indexes_from_rows: zhudai_store::imports::DEFER_INDEXES_FROM_ROWS,
    };
    let result = engine.run(id, table, &opts, progress).await;
    bar.finish_and_clear();
    match result {
        Ok(o) => Ok((id, o)),
        Err(e) => {
            let mut conn = store.writer().acquire().await?;
            let _ = db::import_finish(
                &mut conn,
                id,
                "failed",
                Some(&e.to_string()),
                clock.now().timestamp_millis(),
            )
            .await;
            Err(Failure::Runtime(format!("import {id} failed: {e}")))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The synthetic file

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗",
];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "平",
];
const CITIES: [&str; 6] = [
    "北京市朝阳区",
    "上海市浦东新区",
    "广州市天河区",
    "深圳市南山区",
    "杭州市西湖区",
    "成都市武侯区",
];

/// Writes `rows` synthetic customers as CSV with the English header; every
/// `bad_every`-th row is bad in one of five ways. Returns the ID numbers of the good rows.
pub fn gen_customers(
    w: &mut dyn Write,
    rows: u64,
    bad_every: u64,
    seed: u64,
) -> std::io::Result<Vec<(String, bool)>> {
    let mut w = csv::Writer::from_writer(w);
    w.write_record([
        "kind",
        "name",
        "id_number",
        "phone",
        "bank_card",
        "email",
        "address",
        "monthly_income",
    ])?;
    let mut rng = SplitMix64::new(seed);
    let mut seen = HashSet::new();
    let mut good = Vec::with_capacity(rows as usize);
    let mut n = 0_u64;
    let mut s = seed.wrapping_mul(1_000_003);
    while n < rows {
        s = s.wrapping_add(1);
        let enterprise = rng.below(20) == 0;
        let id = if enterprise {
            generate::uscc(s).as_str().to_owned()
        } else {
            generate::resident_id(s).as_str().to_owned()
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        n += 1;
        let name = if enterprise {
            format!(
                "{}{}科技有限公司",
                CITIES[rng.below(6) as usize].get(0..6).unwrap_or("北京"),
                GIVEN[rng.below(20) as usize]
            )
        } else {
            format!(
                "{}{}",
                SURNAMES[rng.below(20) as usize],
                GIVEN[rng.below(20) as usize]
            )
        };
        let mut phone = generate::mobile(s).as_str().to_owned();
        let mut card = generate::unionpay_card(s).as_str().to_owned();
        let email = if rng.below(3) == 0 {
            format!("c{s}@example.com")
        } else {
            String::new()
        };
        let address = if rng.below(2) == 0 {
            format!(
                "{}{}路{}号",
                CITIES[rng.below(6) as usize],
                GIVEN[rng.below(20) as usize],
                1 + rng.below(300)
            )
        } else {
            String::new()
        };
        let mut income = if enterprise {
            String::new()
        } else {
            format!("{}.{:02}", 3000 + rng.below(50_000), rng.below(100))
        };
        let mut name = name;
        let mut id_out = id.clone();
        let bad = bad_every > 0 && n.is_multiple_of(bad_every);
        if bad {
            match (n / bad_every) % 5 {
                0 => {
                    // Wrong check character.
                    let last = id_out.pop().unwrap_or('0');
                    id_out.push(if last == '1' { '2' } else { '1' });
                    if id_out == id {
                        id_out.pop();
                        id_out.push('3');
                    }
                }
                1 => phone = "1234567".into(),
                2 => {
                    let last = card.pop().unwrap_or('0');
                    card.push(if last == '9' {
                        '0'
                    } else {
                        char::from(last as u8 + 1)
                    });
                }
                3 => name = String::new(),
                _ => {
                    if enterprise {
                        income = "1000".into();
                    } else {
                        income = "12,000元".into();
                    }
                }
            }
        } else {
            good.push((id.clone(), enterprise));
        }
        w.write_record([
            if enterprise {
                "enterprise"
            } else {
                "individual"
            },
            name.as_str(),
            id_out.as_str(),
            phone.as_str(),
            card.as_str(),
            email.as_str(),
            address.as_str(),
            income.as_str(),
        ])?;
    }
    w.flush()?;
    Ok(good)
}

pub async fn run_demo(what: DemoWhat) -> Result<(), Failure> {
    let DemoWhat::GenCustomers {
        rows,
        out: path,
        bad_every,
        seed,
    } = what;
    let file = std::fs::File::create(&path)
        .map_err(|e| Failure::Config(format!("cannot create {}: {e}", path.display())))?;
    let mut w = std::io::BufWriter::new(file);
    let good = gen_customers(&mut w, rows, bad_every, seed)
        .map_err(|e| Failure::Runtime(format!("writing {}: {e}", path.display())))?;
    w.flush().map_err(|e| Failure::Runtime(e.to_string()))?;
    out(&format!(
        "wrote {rows} customers to {} ({} valid, {} bad)",
        path.display(),
        good.len(),
        rows - good.len() as u64
    ));
    Ok(())
}

pub async fn run_export(config: Config, what: ExportWhat) -> Result<(), Failure> {
    let ExportWhat::Customers {
        format,
        out: path,
        masked,
    } = what;
    let format = zhudai_server::export::ExportFormat::parse(&format)
        .ok_or_else(|| Failure::Config("--format is csv or xlsx".into()))?;
    let store = open_store(&config).await?;
    store.migrate().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let vault = open_vault(&store, &config, clock.clone()).await?;
    let clear: Vec<&str> = if masked {
        Vec::new()
    } else {
        zhudai_domain::access::SENSITIVE_FIELDS
            .iter()
            .map(|f| f.code)
            .filter(|c| c.starts_with("customer."))
            .collect()
    };
    let result = zhudai_server::export::export_to_bytes(
        &store,
        &vault,
        &ScopeFilter::All,
        &clear,
        format,
        "cli",
        "cli",
        clock.now().timestamp_millis(),
    )
    .await;
    let (bytes, rows, draft) = match result {
        Ok(r) => r,
        Err(e) => {
            store.close().await;
            return Err(Failure::Runtime(e.to_string()));
        }
    };
    let audited = store.audit_append(&draft).await;
    store.close().await;
    audited?;
    std::fs::write(&path, bytes)
        .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))?;
    out(&format!("exported {rows} customers to {}", path.display()));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// zhudai bench import

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn line(measure: &str, value: String) {
    out(&format!("| {measure} | {value} |"));
}

pub async fn bench_import(
    config: Config,
    rows: u64,
    searches: u64,
    reimport: bool,
    batch: usize,
) -> Result<(), Failure> {
    use std::time::Instant;
    use zhudai_store::customers::{CustomerQuery, IndexedField};
    let store = open_store(&config).await?;
    store.migrate().await?;
    if store.customer_count().await? > 0 {
        store.close().await;
        return Err(Failure::Config(
            "the database already holds customers: give an empty database (--data-dir or --database-url)".into(),
        ));
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now().timestamp_millis();
    zhudai_server::auth::seed::ensure_roles(&store, now)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let vault = open_vault(&store, &config, clock.clone()).await?;
    let owner = match store.user_by_username("bench_import").await? {
        Some(u) => u,
        None => {
            zhudai_server::auth::users::create_user(
                &store,
                &vault,
                &zhudai_server::auth::users::UserSpec {
                    username: "bench_import",
                    display_name: "bench_import",
                    password: "Bench-Import-Only-1",
                    roles: &["operations".to_owned()],
                    org_unit_id: None,
                    must_change_password: true,
                    phone: None,
                    id_number: None,
                },
                &zhudai_crypto::password::Argon2Params::default(),
                now,
            )
            .await
            .map_err(|p| Failure::Runtime(format!("{p:?}")))?;
            store
                .user_by_username("bench_import")
                .await?
                .ok_or_else(|| Failure::Runtime("bench user vanished".into()))?
        }
    };
    // 1. The file.
    let path = config.data_dir.join(format!("bench-customers-{rows}.csv"));
    let t = Instant::now();
    let good = {
        let file = std::fs::File::create(&path)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", path.display())))?;
        let mut w = std::io::BufWriter::new(file);
        let good =
            gen_customers(&mut w, rows, 50, 1).map_err(|e| Failure::Runtime(e.to_string()))?;
        w.flush().map_err(|e| Failure::Runtime(e.to_string()))?;
        good
    };
    let gen_s = t.elapsed().as_secs_f64();
    let bytes = std::fs::read(&path).map_err(|e| Failure::Runtime(e.to_string()))?;
    // 2. The import.
    let t = Instant::now();
    let table = Table::parse(&bytes).map_err(|e| Failure::Runtime(e.to_string()))?;
    let (_, first) = import_file(
        &store,
        &vault,
        clock.clone(),
        &path,
        &bytes,
        table,
        &owner,
        false,
        false,
        batch,
        true,
    )
    .await?;
    let import_s = t.elapsed().as_secs_f64();
    // 3. Again: nothing changes.
    let second = if reimport {
        let t = Instant::now();
        let table = Table::parse(&bytes).map_err(|e| Failure::Runtime(e.to_string()))?;
        let (_, o) = import_file(
            &store,
            &vault,
            clock.clone(),
            &path,
            &bytes,
            table,
            &owner,
            false,
            false,
            batch,
            true,
        )
        .await?;
        Some((o, t.elapsed().as_secs_f64()))
    } else {
        None
    };
    // 4. Exact-ID search through the blind index, as the customer list does it.
    let total_customers = store.customer_count().await?;
    let step = (good.len() as u64 / searches.max(1)).max(1) as usize;
    // The first search of the process (for the file's last customer) is timed on its
    // own and kept out of the percentiles: it runs code for the first time and prepares
    // the search's statements on its connection (1.7–6.5 ms measured, against a tenth of
    // a millisecond after). The timed searches are the server's steady state.
    let mut lat = Vec::new();
    let mut acquire_ms = Vec::new();
    let mut found = 0;
    let mut cold_ms = None;
    let timed = good.iter().step_by(step).take(searches as usize);
    for (n, (id, enterprise)) in good.iter().rev().take(1).chain(timed).enumerate() {
        let t = Instant::now();
        let kind = if *enterprise {
            zhudai_crypto::blind_index::FieldKind::CreditCode
        } else {
            zhudai_crypto::blind_index::FieldKind::IdNumber
        };
        let bidx = vault.blind_index(kind, id);
        // The pool's hand-out of a reader connection is timed apart from the statements.
        let mut conn = store
            .reader()
            .acquire()
            .await
            .map_err(zhudai_store::StoreError::from)?;
        let handed_out = t.elapsed();
        let page = zhudai_store::Store::customer_list_on(
            &mut conn,
            &CustomerQuery {
                scope: &ScopeFilter::All,
                name: None,
                exact: Some((IndexedField::IdNumber, &bidx)),
                kind: None,
                status: None,
                offset: 0,
                limit: 20,
            },
        )
        .await?;
        drop(conn);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if n == 0 {
            cold_ms = Some(ms);
            continue;
        }
        lat.push(ms);
        acquire_ms.push(handed_out.as_secs_f64() * 1000.0);
        if page.rows.len() == 1 {
            found += 1;
        }
    }
    // Which timed search was the slowest.
    let slowest = (0..lat.len())
        .max_by(|&a, &b| lat[a].total_cmp(&lat[b]))
        .map_or(0, |i| i + 1);
    let slowest_acquire = acquire_ms
        .get(slowest.wrapping_sub(1))
        .copied()
        .unwrap_or(0.0);
    lat.sort_by(|a, b| a.total_cmp(b));
    acquire_ms.sort_by(|a, b| a.total_cmp(b));
    // 5. The peer: the same CSV loaded by the database's own bulk loader.
    let peer = peer_load(&config, &store, &path).await;
    let db_name = match store.sqlite_build().await? {
        Some(build) => format!(
            "{}, SQLite {} (page cache {}, memory statistics {})",
            crate::bench::database_name(&config),
            build.version,
            if build.shared_page_cache() {
                "shared"
            } else {
                "per connection"
            },
            if build.memory_statistics() {
                "on"
            } else {
                "off"
            }
        ),
        None => crate::bench::database_name(&config),
    };
    store.close().await;
    out(&format!(
        "bench import: zhudai {}, {db_name}, {}, release build: {}",
        env!("CARGO_PKG_VERSION"),
        crate::bench::machine(),
        !cfg!(debug_assertions)
    ));
    out("| measure | value |");
    out("|---|---|");
    line(
        "file",
        format!(
            "{rows} rows ({} valid, {} bad), {:.1} MB, generated in {gen_s:.1} s",
            good.len(),
            rows - good.len() as u64,
            bytes.len() as f64 / 1e6
        ),
    );
    let c = first.counts;
    line(
        "import (validation + per-customer key + encryption + blind indexes + insert)",
        format!(
            "{import_s:.1} s, **{:.0} rows/s** (inserted {}, rejected {})",
            rows as f64 / import_s,
            c.inserted,
            c.rejected
        ),
    );
    if let Some((o, s)) = &second {
        line(
            "re-import of the same file (decrypt + compare, nothing written)",
            format!(
                "{s:.1} s, {:.0} rows/s (inserted {}, updated {}, unchanged {}, rejected {})",
                rows as f64 / s,
                o.counts.inserted,
                o.counts.updated,
                o.counts.unchanged,
                o.counts.rejected
            ),
        );
    }
    line(
        &format!(
            "exact-ID search at {total_customers} customers ({} searches, {found} found)",
            lat.len()
        ),
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (search no. {slowest}); the process's first search, untimed above: {:.3} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0),
            cold_ms.unwrap_or(0.0)
        ),
    );
    line(
        "  of which the pool's hand-out of a reader connection",
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {slowest_acquire:.3} ms in the slowest search",
            percentile(&acquire_ms, 0.5),
            percentile(&acquire_ms, 0.99),
            acquire_ms.last().copied().unwrap_or(0.0),
        ),
    );
    match peer {
        Ok((what, s)) => line(
            &format!("peer: {what}"),
            format!("{s:.1} s, {:.0} rows/s", rows as f64 / s),
        ),
        Err(e) => line("peer", format!("not measured: {e}")),
    }
    Ok(())
}

/// Loads the CSV with the database's own bulk loader (no validation, no encryption) into
/// a scratch table with an index on the ID number; returns what ran and its seconds.
async fn peer_load(config: &Config, store: &Store, csv: &Path) -> Result<(String, f64), String> {
    use std::time::Instant;
    match store.backend() {
        zhudai_store::Backend::Sqlite => {
            let db = config.data_dir.join("bench-peer.db");
            let _ = std::fs::remove_file(&db);
            let script = format!(
                "PRAGMA journal_mode=WAL;\nCREATE TABLE t (kind, name, id_number, phone, bank_card, email, address, monthly_income);\n\
                 CREATE INDEX t_id ON t (id_number);\n.import --csv --skip 1 {} t\nSELECT COUNT(*) FROM t;\n",
                csv.display()
            );
            let t = Instant::now();
            let out = std::process::Command::new("sqlite3")
                .arg(&db)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut stdin) = child.stdin.take() {
                        stdin.write_all(script.as_bytes())?;
                    }
                    child.wait_with_output()
                })
                .map_err(|e| format!("sqlite3: {e}"))?;
            let s = t.elapsed().as_secs_f64();
            let _ = std::fs::remove_file(&db);
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            Ok(("sqlite3 .import of the same CSV into an indexed table (no validation, no encryption)".into(), s))
        }
        zhudai_store::Backend::Postgres => {
            let url = config
                .database_url
                .as_ref()
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned())
                .ok_or("no database URL")?;
            let script = format!(
                "DROP TABLE IF EXISTS zhudai_bench_copy_peer;\n\
                 CREATE TABLE zhudai_bench_copy_peer (kind text, name text, id_number text, phone text, bank_card text, email text, address text, monthly_income text);\n\
                 CREATE INDEX ON zhudai_bench_copy_peer (id_number);\n\
                 \\copy zhudai_bench_copy_peer FROM '{}' WITH (FORMAT csv, HEADER true)\n\
                 DROP TABLE zhudai_bench_copy_peer;\n",
                csv.display()
            );
            let t = Instant::now();
            let out = std::process::Command::new("psql")
                .arg(&url)
                .arg("-v")
                .arg("ON_ERROR_STOP=1")
                .arg("-q")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut stdin) = child.stdin.take() {
                        stdin.write_all(script.as_bytes())?;
                    }
                    child.wait_with_output()
                })
                .map_err(|e| format!("psql: {e}"))?;
            let s = t.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            Ok((
                "psql \\copy of the same CSV into an indexed table (no validation, no encryption)"
                    .into(),
                s,
            ))
        }
    }
}
