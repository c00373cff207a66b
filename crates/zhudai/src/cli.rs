//! Commands. Global options (`--config`, `--data-dir`, `--database-url`) are accepted
//! before or after the subcommand.

use crate::config::{CliOverrides, Config, LogFormat};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zhudai_domain::clock::{Clock, SystemClock};
use zhudai_server::{AppState, ServerSettings};
use zhudai_store::{DatabaseLocation, Store, StoreOptions};

#[derive(Debug, Parser)]
#[command(
    name = "zhudai",
    version,
    about = "zhudai (助贷): the operating system of a loan-facilitation company",
    long_about = "zhudai (助贷): customers, credit decisions, approvals, funders, loans, collections, \
AML, performance, security and audit in one binary.\n\n\
Settings come from defaults, then an optional TOML file (--config), then ZHUDAI_* environment \
variables, then these flags. SQLite under --data-dir is the default database; give \
--database-url postgres://… for PostgreSQL.",
    after_help = "Quick start: zhudai serve --demo   then open http://127.0.0.1:8080"
)]
pub struct Cli {
    /// TOML configuration file [env: ZHUDAI_CONFIG]
    #[arg(long, global = true, env = "ZHUDAI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for zhudai's files (default ./zhudai-data) [env: ZHUDAI_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST:PORT/DB (default: SQLite in the data dir) [env: ZHUDAI_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (UI + API) and the background job worker
    Serve {
        /// Address to listen on (default 127.0.0.1:8080) [env: ZHUDAI_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Fill an empty database with demo data and show demo hints. Never in production
        #[arg(long)]
        demo: bool,
    },
    /// Create or upgrade the database schema, then exit
    Migrate {
        /// Only report; exit with status 3 when migrations are pending
        #[arg(long)]
        check: bool,
    },
    /// Write a consistent copy of the database while zhudai may be running
    Backup {
        /// Destination file (SQLite: a database file; PostgreSQL: a pg_dump custom-format archive)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the effective configuration (secrets redacted)
    Config,
    /// Manage user accounts (how an operator creates the first administrator)
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Encryption key management
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The audit trail: verify the hash chain, sign and export checkpoints
    Audit {
        #[command(subcommand)]
        action: crate::audit::AuditAction,
    },
    /// Measure this machine (login cost, field encryption, audit appends, start-up);
    /// the figures belong in docs/benchmarks.md
    Bench {
        #[command(subcommand)]
        what: crate::bench::BenchWhat,
    },
    // --- Products and pricing (issue #5): loan maths, no database needed ---
    /// Loan maths without a database: repayment schedules and the all-in APR
    Calc {
        #[command(subcommand)]
        what: crate::calc::CalcWhat,
    },
    // --- Bulk customer import and export (issue #4 part 5) ---
    /// Import data from files (CSV, XLSX) with a progress bar
    Import {
        #[command(subcommand)]
        what: crate::import::ImportWhat,
    },
    /// Export data to files
    Export {
        #[command(subcommand)]
        what: crate::import::ExportWhat,
    },
    /// Demo and test data
    Demo {
        #[command(subcommand)]
        what: crate::import::DemoWhat,
    },
    // --- end bulk import and export ---
    // --- Loans and the ledger (issue #8) ---
    /// The double-entry ledger: prove every entry balances and every loan agrees with it
    Ledger {
        #[command(subcommand)]
        action: crate::ledger::LedgerAction,
    },
    // --- end loans ---
    // --- Risk control (issue #7): scorecards, no database needed ---
    /// Scorecards: train one from a CSV file, score a CSV file with one
    Model {
        #[command(subcommand)]
        what: crate::model::ModelWhat,
    },
    // --- end risk control ---
    // --- Daily close (issue #8 items 3–7) ---
    /// The daily close of business: days past due, penalty interest, five-tier
    /// classification, collection buckets and cases, guarantee payouts
    Cob {
        #[command(subcommand)]
        action: crate::cob::CobAction,
    },
    // --- end daily close ---
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; the password is read from standard input (never from the command line)
    Create {
        #[arg(long)]
        username: String,
        /// Role code, e.g. sysadmin, security_officer, auditor, customer_manager (repeatable)
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Display name (defaults to the username)
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a new master key and re-wrap every data key under it, while zhudai runs
    Rotate,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Pending(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Runtime(_) => 1,
            Failure::Pending(_) => 3,
        }
    }
}

impl From<zhudai_store::StoreError> for Failure {
    fn from(e: zhudai_store::StoreError) -> Self {
        use zhudai_store::StoreError as E;
        match e {
            E::UnsupportedScheme(_) | E::DataDir { .. } | E::Invalid(_) | E::Connect { .. } => {
                Failure::Config(e.to_string())
            }
            other => Failure::Runtime(other.to_string()),
        }
    }
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    // Products and pricing (issue #5): `calc` needs neither configuration nor a database.
    if let Command::Calc { what } = cli.command {
        return crate::calc::run(what);
    }
    // Risk control (issue #7): `model` needs neither configuration nor a database.
    if let Command::Model { what } = cli.command {
        return crate::model::run(what);
    }
    let listen = match &cli.command {
        Command::Serve { listen, .. } => listen.clone(),
        _ => None,
    };
    let overrides = CliOverrides {
        database_url: cli.database_url.clone(),
        data_dir: cli.data_dir.clone(),
        listen,
    };
    let config = Config::load(cli.config.as_deref(), &overrides).map_err(Failure::Config)?;
    init_logging(&config);
    match cli.command {
        Command::Serve { demo, .. } => serve(config, demo).await,
        Command::Migrate { check } => migrate(config, check).await,
        Command::Backup { out: path } => backup(config, &path).await,
        Command::User {
            action:
                UserAction::Create {
                    username,
                    roles,
                    name,
                    password_stdin: _,
                },
        } => user_create(config, &username, &roles, name.as_deref()).await,
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let store = open_store(&config).await?;
            let summary = crate::keys::rotate(&store, &config.data_dir, config.master_key.as_ref())
                .await
                .map_err(Failure::Runtime)?;
            store.close().await;
            out(&summary);
            Ok(())
        }
        Command::Audit { action } => {
            let store = open_store(&config).await?;
            let vault = if crate::audit::needs_vault(&store, &action).await? {
                Some(open_vault(&store, &config, Arc::new(SystemClock)).await?)
            } else {
                None
            };
            let result = crate::audit::run(&store, vault.as_ref(), action).await;
            store.close().await;
            result
        }
        Command::Config => {
            out(config.to_redacted_toml().trim_end());
            Ok(())
        }
        Command::Bench { what } => crate::bench::run(config, what).await,
        Command::Calc { what } => crate::calc::run(what),
        // Bulk customer import and export (issue #4 part 5).
        Command::Import { what } => crate::import::run_import(config, what).await,
        Command::Export { what } => crate::import::run_export(config, what).await,
        Command::Demo { what } => crate::import::run_demo(what).await,
        // Loans and the ledger (issue #8).
        Command::Ledger { action } => {
            let store = open_store(&config).await?;
            let result = crate::ledger::run(&store, action).await;
            store.close().await;
            result
        }
        Command::Model { what } => crate::model::run(what),
        // Daily close (issue #8 items 3–7).
        Command::Cob { action } => crate::cob::run(config, action).await,
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

fn location(config: &Config) -> Result<DatabaseLocation, Failure> {
    let url = config
        .database_url
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    Ok(DatabaseLocation::parse(url.as_deref(), &config.data_dir)?)
}

pub(crate) async fn open_store(config: &Config) -> Result<Store, Failure> {
    zhudai_store::db::ensure_writable_dir(&config.data_dir)?;
    let location = location(config)?;
    let opts = StoreOptions {
        max_connections: config.max_connections,
        sqlite_sync: config.sqlite_synchronous,
        ..StoreOptions::default()
    };
    Ok(Store::open(&location, &opts).await?)
}

async fn serve(config: Config, demo: bool) -> Result<(), Failure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Bind first: a port in use is the most common start-up mistake; say so before
    // touching the database.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            Failure::Config(format!(
                "cannot listen on {}: {}; choose another address with --listen or ZHUDAI_LISTEN",
                config.listen,
                match e.kind() {
                    std::io::ErrorKind::AddrInUse => "the address is already in use".to_owned(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                    _ => e.to_string(),
                }
            ))
        })?;
    let store = open_store(&config).await?;
    let report = store.migrate().await?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, version = report.current, "database schema upgraded");
    }
    if demo {
        let outcome = zhudai_server::demo::seed(&store, clock.now().timestamp_millis())
            .await
            .map_err(|e| Failure::Runtime(format!("seeding demo data failed: {e}")))?;
        tracing::info!(?outcome, "demo data");
    }
    let settings = ServerSettings {
        data_dir: config.data_dir.clone(),
        body_limit_bytes: config.body_limit_bytes,
        request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
        demo,
        auth: zhudai_server::auth::login::AuthPolicy {
            // Demo accounts have no authenticator; everywhere else the roles' rule holds.
            enforce_2fa: !demo && config.enforce_2fa,
            cookie_secure: config.cookie_secure,
            ..Default::default()
        },
        audit_retention_days: config.audit_retention_days,
        document_max_bytes: config.document_max_bytes,
        privacy_request_days: config.privacy_request_days,
        apr_cap: config.apr_cap,
        export_approval_rows: config.export_approval_rows,
        contract_font_path: config.contract_font_path.clone(),
        // Loans and the ledger (issue #8).
        repayment_order: Default::default(),
        // Risk warnings (issue #7 item 3).
        psi_threshold: config.psi_threshold,
        // Daily close and collections (issue #8 items 3–7).
        cob: config.cob_settings().map_err(Failure::Config)?,
        collection: config.contact_policy().map_err(Failure::Config)?,
        workflow_stuck_after_hours: config.workflow_stuck_after_hours,
        public_url: config.public_url.clone(),
    };
    let vault = open_vault(&store, &config, clock.clone()).await?;
    let created = zhudai_server::auth::seed::ensure_roles(&store, clock.now().timestamp_millis())
        .await
        .map_err(|e| Failure::Runtime(format!("installing the standard roles failed: {e}")))?;
    if created > 0 {
        tracing::info!(created, "installed standard roles");
    }
    if demo {
        let n = zhudai_server::demo::seed_accounts(&store, clock.now().timestamp_millis())
            .await
            .map_err(|e| Failure::Runtime(format!("creating demo accounts failed: {e}")))?;
        if n > 0 {
            tracing::info!(
                accounts = n,
                password = zhudai_server::ui::account::DEMO_PASSWORD,
                "demo accounts created (demo mode only)"
            );
        }
    } else if user_count(&store).await == 0 {
        tracing::warn!(
            "no user exists yet: create the first administrator with\n  zhudai user create --username admin --role sysadmin --password-stdin{}",
            data_dir_hint(&config)
        );
    }
    let state = AppState::new(store.clone(), clock, settings, vault);
    if demo {
        match zhudai_server::demo::seed_customers(&state).await {
            Ok(n) if n > 0 => tracing::info!(customers = n, "demo customers created"),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::Runtime(format!(
                    "creating demo customers failed: {e}"
                )))
            }
        }
        match zhudai_server::demo::seed_applications(&state).await {
            Ok(n) if n > 0 => tracing::info!(applications = n, "demo applications created"),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::Runtime(format!(
                    "creating demo applications failed: {e}"
                )))
            }
        }
        // Loans and the ledger (issue #8).
        match zhudai_server::demo::seed_loans(&state).await {
            Ok(n) if n > 0 => tracing::info!(loans = n, "demo loans opened"),
            Ok(_) => {}
            Err(e) => return Err(Failure::Runtime(format!("opening demo loans failed: {e}"))),
        }
        // Risk warnings and credit limits (issue #7 items 3 and 4).
        match zhudai_server::demo_risk::seed(&state).await {
            Ok(true) => tracing::info!("demo risk rules, credit lines and warnings created"),
            Ok(false) => {}
            Err(e) => {
                return Err(Failure::Runtime(format!(
                    "creating demo risk data failed: {e}"
                )))
            }
        }
    }
    if let Err(e) = zhudai_server::workflow::ensure_defaults(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not install the default workflow definitions");
    }
    // Contracts (issue #6): the default template, and a warning when no CJK font is found.
    if let Err(e) = zhudai_server::contracts::ensure_default_template(&store, state.now_ms()).await
    {
        tracing::warn!(error = %e, "could not install the default contract template");
    }
    if let Err(e) = zhudai_server::contract_pdf::font(config.contract_font_path.as_deref()) {
        tracing::warn!("contracts cannot be generated: {e}");
    }
    // Credit decisions (issue #7): the default scorecard and rule set.
    if let Err(e) = zhudai_server::risk::ensure_defaults(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not install the default credit policy");
    }
    if let Err(e) = zhudai_server::workflow::schedule(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not schedule the workflow time-limit scan");
    }
    if let Err(e) = zhudai_server::audit_checkpoint::schedule(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not schedule the hourly audit checkpoint");
    }
    // Daily close (issue #8 items 3–7): the nightly close of the previous day.
    if let Err(e) = zhudai_server::cob::schedule(
        &store,
        &state.settings().cob,
        state.clock().today(),
        state.now_ms(),
    )
    .await
    {
        tracing::warn!(error = %e, "could not schedule the nightly close");
    }
    // Funder network (issue #5): the daily review and agreement-expiry reminders.
    if let Err(e) = zhudai_server::partners::schedule_reminders(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not schedule the funder reminders");
    }
    // Risk warnings and credit limits (issue #7 items 3 and 4): the daily stability run
    // and the daily expiry of credit lines.
    if let Err(e) = zhudai_server::warnings::psi::schedule(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not schedule the population stability run");
    }
    if let Err(e) = zhudai_server::limits::schedule(&store, state.now_ms()).await {
        tracing::warn!(error = %e, "could not schedule the credit line expiry");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = config.worker.then(|| {
        tokio::spawn(zhudai_server::jobs::run_worker(
            state.clone(),
            zhudai_server::jobs::JobRegistry::standard(),
            zhudai_server::jobs::WorkerSettings::default(),
            stop_rx,
        ))
    });
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        database = store.location(),
        demo,
        "zhudai is serving http://{addr}"
    );
    zhudai_server::serve(listener, state, zhudai_server::http::shutdown::signal())
        .await
        .map_err(|e| Failure::Runtime(format!("server error: {e}")))?;
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    store.close().await;
    tracing::info!("zhudai stopped");
    Ok(())
}

async fn user_count(store: &Store) -> i64 {
    store
        .user_list(&zhudai_store::identity::UserQuery {
            text: None,
            offset: 0,
            limit: 1,
        })
        .await
        .map(|p| p.total)
        .unwrap_or(0)
}

fn data_dir_hint(config: &Config) -> String {
    format!(" --data-dir {}", config.data_dir.display())
}

pub(crate) async fn open_vault(
    store: &Store,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<zhudai_server::vault::Vault, Failure> {
    let algorithm = match config.field_cipher.as_str() {
        "sm4-gcm" => zhudai_crypto::envelope::Algorithm::Sm4Gcm,
        _ => zhudai_crypto::envelope::Algorithm::Aes256Gcm,
    };
    zhudai_server::vault::Vault::open(
        store,
        &config.data_dir,
        config.master_key.as_ref(),
        algorithm,
        clock,
    )
    .await
    .map_err(|e| Failure::Config(format!("cannot open the encryption keys: {e}")))
}

async fn migrate(config: Config, check: bool) -> Result<(), Failure> {
    let store = open_store(&config).await?;
    if check {
        let current = store.schema_version().await.unwrap_or(0);
        let latest = zhudai_store::migrate::latest_version();
        store.close().await;
        if current < latest {
            return Err(Failure::Pending(format!("database is at schema version {current}; {} migration(s) pending (latest {latest})", latest - current)));
        }
        out(&format!("database schema is current (version {current})"));
        return Ok(());
    }
    let report = store.migrate().await?;
    store.close().await;
    if report.applied.is_empty() {
        out(&format!(
            "database schema is current (version {})",
            report.current
        ));
    } else {
        out(&format!(
            "applied migration(s) {:?}; database schema is at version {}",
            report.applied, report.current
        ));
    }
    Ok(())
}

async fn backup(config: Config, path: &Path) -> Result<(), Failure> {
    if path.exists() {
        return Err(Failure::Config(format!(
            "{} already exists; choose a new file name",
            path.display()
        )));
    }
    match location(&config)? {
        DatabaseLocation::SqliteFile(_) => {
            let store = open_store(&config).await?;
            let target = path
                .to_str()
                .ok_or_else(|| Failure::Config("the backup path must be valid UTF-8".into()))?;
            // VACUUM INTO writes a consistent, compacted copy while other connections work.
            zhudai_store::sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(store.writer())
                .await
                .map_err(|e| Failure::Runtime(format!("backup failed: {e}")))?;
            store.close().await;
            // Prove the copy opens and is intact before calling it a backup.
            let copy = Store::open(
                &DatabaseLocation::SqliteFile(path.to_path_buf()),
                &StoreOptions::default(),
            )
            .await?;
            let check: String = zhudai_store::sqlx::Row::try_get(
                &zhudai_store::sqlx::query("PRAGMA integrity_check")
                    .fetch_one(copy.reader())
                    .await
                    .map_err(|e| Failure::Runtime(e.to_string()))?,
                0,
            )
            .map_err(|e| Failure::Runtime(e.to_string()))?;
            let version = copy.schema_version().await?;
            copy.close().await;
            if check != "ok" {
                return Err(Failure::Runtime(format!(
                    "the backup failed its integrity check: {check}"
                )));
            }
            out(&format!(
                "backup written to {} (schema version {version}, integrity ok)",
                path.display()
            ));
            Ok(())
        }
        DatabaseLocation::Postgres(url) => {
            let status = tokio::process::Command::new("pg_dump")
                .arg("--format=custom")
                .arg("--file")
                .arg(path)
                .arg(url.expose_secret())
                .status()
                .await
                .map_err(|e| {
                    Failure::Runtime(format!(
                        "cannot run pg_dump (install the PostgreSQL client tools): {e}"
                    ))
                })?;
            if !status.success() {
                return Err(Failure::Runtime(format!("pg_dump failed with {status}")));
            }
            out(&format!(
                "backup written to {} (pg_dump custom format; restore with pg_restore)",
                path.display()
            ));
            Ok(())
        }
    }
}

async fn user_create(
    config: Config,
    username: &str,
    roles: &[String],
    name: Option<&str>,
) -> Result<(), Failure> {
    use std::io::BufRead;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| {
            Failure::Runtime(format!("cannot read the password from standard input: {e}"))
        })?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let store = open_store(&config).await?;
    store.migrate().await?;
    let clock = SystemClock;
    let now = clock.now().timestamp_millis();
    zhudai_server::auth::seed::ensure_roles(&store, now)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let vault = open_vault(&store, &config, Arc::new(SystemClock)).await?;
    let result = zhudai_server::auth::users::create_user(
        &store,
        &vault,
        &zhudai_server::auth::users::UserSpec {
            username,
            display_name: name.unwrap_or(username),
            password: &password,
            roles,
            org_unit_id: None,
            must_change_password: false,
            phone: None,
            id_number: None,
        },
        &zhudai_crypto::password::Argon2Params::default(),
        now,
    )
    .await;
    store.close().await;
    match result {
        Ok(id) => {
            out(&format!(
                "created user {username} (id {id}) with role(s) {}",
                roles.join(", ")
            ));
            Ok(())
        }
        Err(problems) => Err(Failure::Config(
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}
