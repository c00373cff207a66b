//! Opening a database: the backend is chosen from the URL scheme, SQLite is tuned in one
//! place, and the store hands out a read pool and a write pool.
//!
//! SQLite allows one writer at a time; a deferred transaction that later writes can fail
//! with `SQLITE_BUSY` instead of waiting. So on SQLite every write goes through a pool of
//! exactly one connection (writes queue in-process, reads run in parallel under WAL). On
//! PostgreSQL both pools are the same pool.

use crate::error::StoreError;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// The database products zhudai runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a connection talks to.
    pub(crate) fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// Where the data lives, parsed from the configured URL.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    SqliteFile(PathBuf),
    Postgres(SecretString),
}

impl DatabaseLocation {
    /// Parses a database URL; `None` means the embedded default, `DATA_DIR/zhudai.db`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(DatabaseLocation::SqliteFile(data_dir.join("zhudai.db")));
        };
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or(url);
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(DatabaseLocation::Postgres(SecretString::from(
                url.to_owned(),
            ))),
            "sqlite" => {
                let rest = &url[scheme.len() + 1..];
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() || path == ":memory:" {
                    return Err(StoreError::Invalid(
                        "a sqlite URL needs a file path, e.g. sqlite://./zhudai-data/zhudai.db"
                            .into(),
                    ));
                }
                Ok(DatabaseLocation::SqliteFile(PathBuf::from(path)))
            }
            other if url.contains("://") || url.starts_with(&format!("{other}:")) => {
                Err(StoreError::UnsupportedScheme(other.to_owned()))
            }
            _ => Err(StoreError::UnsupportedScheme(url.to_owned())),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseLocation::SqliteFile(_) => Backend::Sqlite,
            DatabaseLocation::Postgres(_) => Backend::Postgres,
        }
    }

    /// A description safe to log: the SQLite path, or the PostgreSQL host and database
    /// without user or password.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseLocation::SqliteFile(p) => format!("sqlite://{}", p.display()),
            DatabaseLocation::Postgres(url) => redact_url(url.expose_secret()),
        }
    }
}

fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
            let host = host.split('?').next().unwrap_or(host);
            format!("{scheme}://***@{host}")
        }
        None => "***".into(),
    }
}

/// SQLite durability.
///
/// * `Group` (the default): commits are not fsynced one by one (`synchronous=NORMAL`), but
///   nothing is acknowledged before it is on disk: [`Store::durable`] — which the HTTP
///   layer awaits before sending any response to a request that wrote — fsyncs the
///   write-ahead log once for every commit made before it started, so concurrent requests
///   share one fsync (group commit). An acknowledged write survives a power cut, as with
///   `Full`, at a fraction of the fsyncs.
/// * `Full`: every commit fsyncs the write-ahead log (`synchronous=FULL`).
/// * `Normal`: `synchronous=NORMAL` without the barrier: survives a process crash, not a
///   power cut (the last commits may be lost; the database stays consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    #[default]
    Group,
    Full,
    Normal,
}

impl SqliteSync {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSync::Group => "group",
            SqliteSync::Full => "full",
            SqliteSync::Normal => "normal",
        }
    }
}

/// How the linked SQLite was compiled (see [`Store::sqlite_build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteBuild {
    /// `sqlite_version()`.
    pub version: String,
    /// `PRAGMA compile_options`, e.g. `THREADSAFE=1`.
    pub options: Vec<String>,
}

impl SqliteBuild {
    /// One page cache shared by all connections behind a global mutex
    /// (`ENABLE_MEMORY_MANAGEMENT`; `.cargo/config.toml` turns it off).
    pub fn shared_page_cache(&self) -> bool {
        self.options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT")
    }

    /// Memory statistics, a global mutex on every allocation (on unless
    /// `DEFAULT_MEMSTATUS=0`, which `.cargo/config.toml` sets).
    pub fn memory_statistics(&self) -> bool {
        !self.options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0")
    }
}

/// Group commit for SQLite in `SqliteSync::Group` mode: tickets taken after commits, one
/// fsync of the write-ahead log covering every ticket taken before it started.
#[derive(Debug)]
struct GroupSync {
    wal: PathBuf,
    /// Serialises the fsyncs; waiters queue here and usually find their ticket covered.
    lock: tokio::sync::Mutex<()>,
    tickets: AtomicU64,
    synced: AtomicU64,
    fsyncs: AtomicU64,
}

impl GroupSync {
    async fn durable(&self) -> Result<(), StoreError> {
        // The caller's commits returned before this ticket was taken, so their frames are
        // in the log file (in the page cache) already.
        let mine = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            if self.synced.load(Ordering::SeqCst) >= mine {
                return Ok(());
            }
            let _one_at_a_time = self.lock.lock().await;
            if self.synced.load(Ordering::SeqCst) >= mine {
                return Ok(());
            }
            // Every ticket taken so far belongs to a commit that finished before the
            // fsync below starts: it is covered.
            let upto = self.tickets.load(Ordering::SeqCst);
            let wal = self.wal.clone();
            tokio::task::spawn_blocking(move || sync_file(&wal))
                .await
                .map_err(|e| StoreError::Invalid(format!("the log fsync task failed: {e}")))?
                .map_err(|e| {
                    StoreError::Invalid(format!("fsync of the write-ahead log failed: {e}"))
                })?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.synced.fetch_max(upto, Ordering::SeqCst);
        }
    }
}

tokio::task_local! {
    /// Set when the task running inside [`track_writes`] may have written
    /// ([`Store::begin`], [`Store::writer`]) to a group-commit store.
    static WROTE: std::cell::Cell<bool>;
}

/// Runs `f` and says whether it may have written to a group-commit SQLite store (it
/// called [`Store::begin`] or [`Store::writer`] in this task). The HTTP layer uses it to
/// make the response to a read that wrote (an audited reveal, a session touch) wait for
/// [`Store::durable`] too.
pub async fn track_writes<F: std::future::Future>(f: F) -> (F::Output, bool) {
    WROTE
        .scope(std::cell::Cell::new(false), async {
            let out = f.await;
            let wrote = WROTE.try_with(|w| w.get()).unwrap_or(false);
            (out, wrote)
        })
        .await
}

/// fsyncs `path` if it exists (no write-ahead log: everything is checkpointed into the
/// database file, which SQLite syncs at each checkpoint).
fn sync_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Knobs for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub sqlite_sync: SqliteSync,
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            sqlite_sync: SqliteSync::Group,
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// The handle every query goes through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    read: AnyPool,
    write: crate::writer::Writer,
    location: String,
    /// SQLite in `SqliteSync::Group` mode.
    group: Option<Arc<GroupSync>>,
    /// Rows that never change once written, kept for the life of the store.
    pub(crate) immutable: Arc<crate::immutable::Immutable>,
}

static DRIVERS: Once = Once::new();

impl Store {
    /// Opens (creating the SQLite file and its directory if needed) without migrating.
    pub async fn open(
        location: &DatabaseLocation,
        opts: &StoreOptions,
    ) -> Result<Self, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        match location {
            DatabaseLocation::SqliteFile(path) => Self::open_sqlite(path, opts).await,
            DatabaseLocation::Postgres(url) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.acquire_timeout)
                    .connect(url.expose_secret())
                    .await
                    .map_err(|e| StoreError::Connect {
                        backend: "PostgreSQL",
                        reason: format!("{} ({e})", location.redacted()),
                    })?;
                Ok(Store {
                    backend: Backend::Postgres,
                    read: pool.clone(),
                    write: crate::writer::Writer::Pool(pool),
                    location: location.redacted(),
                    group: None,
                    immutable: Arc::default(),
                })
            }
        }
    }

    async fn open_sqlite(path: &Path, opts: &StoreOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            ensure_writable_dir(dir)?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pragmas: Vec<String> = vec![
            "PRAGMA journal_mode=WAL".into(),
            format!(
                "PRAGMA synchronous={}",
                match opts.sqlite_sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal | SqliteSync::Group => "NORMAL",
                }
            ),
            format!(
                "PRAGMA busy_timeout={}",
                opts.sqlite_busy_timeout.as_millis()
            ),
            "PRAGMA foreign_keys=ON".into(),
            // Sorting and temporary indexes in memory; the writer reads through a memory
            // map (readers switch it off below).
            "PRAGMA temp_store=MEMORY".into(),
            "PRAGMA mmap_size=268435456".into(),
        ];
        // SQLite's default page cache is 2 MiB; with a million customers the blind-index
        // B-trees are far larger, and every random insert then misses the cache. The one
        // writer gets 256 MiB, each reader 8 MiB (see READER_CACHE_KIB; negative = KiB).
        let make = |max: u32, cache_kib: u32| {
            let mut pragmas = pragmas.clone();
            pragmas.push(format!("PRAGMA cache_size=-{cache_kib}"));
            // No memory map for readers: at its first read after any commit by another
            // connection, a WAL reader unmaps the whole file (`pagerBeginReadTransaction`
            // calls `unixUnfetch`), then maps it again and faults its pages back in, and
            // every unmap interrupts the other core to flush its TLB. Reads from the
            // OS's page cache with `pread` cost less (ADR 0020 item 10).
            pragmas.push("PRAGMA mmap_size=0".into());
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(opts.acquire_timeout)
                // A connection to a local file does not go stale while idle, and the
                // release already pings it: skip the second round trip to the
                // connection's thread on every acquire (it sits on the writer's path).
                .test_before_acquire(false)
                .after_connect(move |conn, _meta| {
                    let pragmas = pragmas.clone();
                    Box::pin(async move {
                        for pragma in &pragmas {
                            sqlx::Executor::execute(&mut *conn, pragma.as_str()).await?;
                        }
                        Ok(())
                    })
                })
        };
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            backend: "SQLite",
            reason: format!("{} ({e})", path.display()),
        };
        // The writer first: it creates the file and switches it to WAL. One connection,
        // owned behind a mutex rather than pooled (see `writer`).
        let mut write_conn = <AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .map_err(connect_err)?;
        for pragma in pragmas.iter().chain(std::iter::once(&format!(
            "PRAGMA cache_size=-{WRITER_CACHE_KIB}"
        ))) {
            sqlx::Executor::execute(&mut write_conn, pragma.as_str())
                .await
                .map_err(connect_err)?;
        }
        let write = crate::writer::Writer::Sqlite(Arc::new(crate::writer::SqliteWriter::new(
            write_conn,
            opts.acquire_timeout,
        )));
        let read = make(opts.max_connections.max(2), READER_CACHE_KIB)
            .connect(&url)
            .await
            .map_err(connect_err)?;
        let group = (opts.sqlite_sync == SqliteSync::Group).then(|| {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            Arc::new(GroupSync {
                wal: PathBuf::from(wal),
                lock: tokio::sync::Mutex::new(()),
                tickets: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                fsyncs: AtomicU64::new(0),
            })
        });
        Ok(Store {
            backend: Backend::Sqlite,
            read,
            write,
            location: format!("sqlite://{}", path.display()),
            group,
            immutable: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite's version and its compile-time options (`PRAGMA compile_options`), for
    /// benchmark reports and the check that the project's build settings took effect
    /// (`.cargo/config.toml`). `None` on PostgreSQL.
    pub async fn sqlite_build(&self) -> Result<Option<SqliteBuild>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.read)
            .await?;
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&self.read)
            .await?;
        Ok(Some(SqliteBuild { version, options }))
    }

    /// Where the data lives, safe to show and log.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The pool for queries that only read.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Where writes go: an [`Executor`](sqlx::Executor) for single statements, and
    /// [`Writer::acquire`](crate::writer::Writer::acquire) for several.
    pub fn writer(&self) -> &crate::writer::Writer {
        self.note_write();
        &self.write
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<crate::writer::WriteTx, StoreError> {
        self.note_write();
        self.write.begin().await
    }

    /// Starts a write transaction with `batch` as its first statements (one round trip
    /// on SQLite); the rows of each.
    pub async fn begin_with(
        &self,
        batch: crate::batch::Batch,
    ) -> Result<(crate::writer::WriteTx, Vec<Vec<AnyRow>>), StoreError> {
        self.note_write();
        self.write.begin_with(batch).await
    }

    fn note_write(&self) {
        if self.group.is_some() {
            let _ = WROTE.try_with(|w| w.set(true));
        }
    }

    /// Returns once every commit that finished before the call is on disk. Immediate on
    /// PostgreSQL and on SQLite with `Full` or `Normal` durability; with `Group` it waits
    /// for (or performs) one fsync of the write-ahead log shared by every caller waiting
    /// at the same moment. Await it before acknowledging a write.
    pub async fn durable(&self) -> Result<(), StoreError> {
        match &self.group {
            Some(g) => g.durable().await,
            None => Ok(()),
        }
    }

    /// How many group fsyncs this store made (group-commit mode; for benchmarks).
    pub fn group_fsyncs(&self) -> u64 {
        self.group
            .as_ref()
            .map_or(0, |g| g.fsyncs.load(Ordering::Relaxed))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let row: AnyRow = sqlx::query("SELECT 1 AS one").fetch_one(&self.read).await?;
        let one: i32 = row
            .try_get::<i32, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v as i32))?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid(
                "database answered SELECT 1 wrongly".into(),
            ))
        }
    }

    /// Closes both pools, waiting for connections to be returned. Everything committed
    /// is on disk afterwards (the pools' close checkpoints SQLite's log; before that, the
    /// group-commit barrier).
    pub async fn close(&self) {
        if let Err(e) = self.durable().await {
            tracing::error!(error = %e, "syncing the write-ahead log at close failed");
        }
        self.write.close().await;
        self.read.close().await;
    }

    /// `FOR UPDATE SKIP LOCKED` where the database has it. SQLite serialises writers, so a
    /// single `UPDATE … WHERE id = (SELECT …)` statement is already atomic there.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }
}

/// Creates `dir` if needed and proves it is writable by writing and removing a probe file.
pub fn ensure_writable_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |reason: String| StoreError::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(".zhudai-write-probe");
    std::fs::write(&probe, b"probe").map_err(|e| fail(format!("cannot write there ({e})")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Page cache of SQLite's one writer connection, in KiB (256 MiB).
pub(crate) const WRITER_CACHE_KIB: u32 = 262_144;

/// Page cache of each SQLite reader connection, in KiB (8 MiB). Small on purpose: a
/// reader throws its whole cache away at the start of its first read after any commit
/// by another connection (SQLite's WAL change check), so on a system that writes, a
/// large reader cache is rarely reused, and emptying a full one costs its first query
/// after the write several milliseconds (measured: the first exact-ID search after
/// re-importing a million customers took 8.2–9.1 ms with 64 MiB readers, 3.5–3.8 ms
/// with 2 or 8 MiB; a two-second pause before it changed nothing). Readers read the
/// database file with `pread` from the OS's page cache (no memory map: SQLite drops a
/// reader's map after every commit too).
pub(crate) const READER_CACHE_KIB: u32 = 8_192;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes() {
        let dir = Path::new("/data");
        assert!(matches!(
            DatabaseLocation::parse(None, dir).unwrap(),
            DatabaseLocation::SqliteFile(p) if p == Path::new("/data/zhudai.db")
        ));
        assert!(matches!(
            DatabaseLocation::parse(Some("sqlite:///tmp/x.db"), dir).unwrap(),
            DatabaseLocation::SqliteFile(p) if p == Path::new("/tmp/x.db")
        ));
        assert!(matches!(
            DatabaseLocation::parse(Some("sqlite://rel/x.db?mode=rwc"), dir).unwrap(),
            DatabaseLocation::SqliteFile(p) if p == Path::new("rel/x.db")
        ));
        let pg = DatabaseLocation::parse(Some("postgres://u:secret@h:5432/db"), dir).unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.redacted(), "postgres://***@h:5432/db");
        assert!(!format!("{pg:?}").contains("secret"));
        let err = DatabaseLocation::parse(Some("mysql://root@h/db"), dir).unwrap_err();
        assert!(err.to_string().contains("`mysql`"), "{err}");
        assert!(DatabaseLocation::parse(Some("nonsense"), dir).is_err());
    }

    /// Group commit: every caller's commit is covered by an fsync that started after it,
    /// concurrent callers share fsyncs, and only writes are tracked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_shares_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &DatabaseLocation::SqliteFile(dir.path().join("g.db")),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .execute(store.writer())
            .await
            .unwrap();
        store.durable().await.unwrap();
        let before = store.group_fsyncs();
        assert!(before >= 1);
        // A read alone is not a write.
        let ((), wrote) = track_writes(async {
            store.ping().await.unwrap();
        })
        .await;
        assert!(!wrote);
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let ((), wrote) = track_writes(async {
                    let mut tx = store.begin().await.unwrap();
                    sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
                        .bind(i as i64)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
                .await;
                assert!(wrote);
                store.durable().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let used = store.group_fsyncs() - before;
        assert!((1..64).contains(&used), "{used} fsyncs for 64 commits");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(n, 64);
        store.close().await;
        // Full durability has no barrier.
        let full = Store::open(
            &DatabaseLocation::SqliteFile(dir.path().join("f.db")),
            &StoreOptions {
                sqlite_sync: SqliteSync::Full,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        full.durable().await.unwrap();
        assert_eq!(full.group_fsyncs(), 0);
        full.close().await;
    }
}
