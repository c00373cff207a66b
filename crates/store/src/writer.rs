//! The write side of a [`Store`](crate::Store): on PostgreSQL a pool, on SQLite the one
//! connection that may write, owned behind an async mutex.
//!
//! Why not a pool of one connection on SQLite? Every statement on a sqlx SQLite
//! connection is a round trip to the connection's own thread, and a pool adds several
//! more around each use: a ping when the connection is handed out, a task spawned to
//! ping it again when it comes back, then the wake-up of the next waiter. With one
//! writer those hops sit on the path every write waits for (measured: a third of the
//! repayment rate). Behind a mutex the hand-over is one wake-up, and a transaction is
//! `BEGIN IMMEDIATE` … `COMMIT` on the same connection.
//!
//! A [`WriteTx`] dropped without `commit` or `rollback` (an error returned early) marks
//! the connection; a task rolls it back at once and the next holder would too before
//! using it, so an abandoned transaction never leaks into the next one.

use crate::error::StoreError;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The SQLite writer connection and whether a transaction was abandoned on it (private
/// to this module; public only as the type inside the guards).
#[derive(Debug)]
pub struct Slot {
    conn: AnyConnection,
    dirty: bool,
    closed: bool,
}

/// Where writes go. `&Writer` is a sqlx [`Executor`] (one statement, autocommit), like
/// the pool it replaces.
#[derive(Debug, Clone)]
pub enum Writer {
    Pool(AnyPool),
    Sqlite(Arc<SqliteWriter>),
}

#[derive(Debug)]
pub struct SqliteWriter {
    slot: Arc<Mutex<Slot>>,
    acquire_timeout: Duration,
}

impl SqliteWriter {
    pub(crate) fn new(conn: AnyConnection, acquire_timeout: Duration) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                conn,
                dirty: false,
                closed: false,
            })),
            acquire_timeout,
        }
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<Slot>, sqlx::Error> {
        let mut g = tokio::time::timeout(self.acquire_timeout, self.slot.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if g.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        if g.dirty {
            // Fails harmlessly when no transaction is open (BEGIN itself had failed).
            if let Err(e) = g.conn.execute("ROLLBACK").await {
                tracing::debug!(error = %e, "rolling back an abandoned transaction");
            }
            g.dirty = false;
        }
        Ok(g)
    }

    /// Refuses further use and checkpoints the log into the database file (after
    /// waiting for the current holder). The connection itself closes when the last
    /// handle to the store is dropped.
    pub(crate) async fn close(&self) {
        let mut g = self.slot.clone().lock_owned().await;
        if g.closed {
            return;
        }
        g.closed = true;
        if let Err(e) = g.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
            tracing::warn!(error = %e, "checkpointing SQLite's log at close");
        }
    }
}

impl Writer {
    /// The write connection for several statements (not a transaction: each commits on
    /// its own unless the caller says `BEGIN`).
    pub async fn acquire(&self) -> Result<WriteConn, StoreError> {
        Ok(match self {
            Writer::Pool(p) => WriteConn(ConnInner::Pool(p.acquire().await?)),
            Writer::Sqlite(w) => WriteConn(ConnInner::Sqlite(w.lock().await?)),
        })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        Ok(match self {
            Writer::Pool(p) => WriteTx(TxInner::Pool(p.begin().await?)),
            Writer::Sqlite(w) => {
                let mut g = w.lock().await?;
                g.conn.execute("BEGIN IMMEDIATE").await?;
                WriteTx(TxInner::Sqlite(SqliteTx {
                    guard: g,
                    slot: w.slot.clone(),
                    finished: false,
                }))
            }
        })
    }

    /// Starts a write transaction whose first statements are `batch`: on SQLite the
    /// `BEGIN` rides along in the same round trip. The rows of each statement.
    pub async fn begin_with(
        &self,
        batch: crate::batch::Batch,
    ) -> Result<(WriteTx, Vec<Vec<AnyRow>>), StoreError> {
        match self {
            Writer::Pool(_) => {
                let mut tx = self.begin().await?;
                let rows = batch.run(&mut tx).await?;
                Ok((tx, rows))
            }
            Writer::Sqlite(w) => {
                let g = w.lock().await?;
                let mut tx = SqliteTx {
                    guard: g,
                    slot: w.slot.clone(),
                    // Dropped on an error, it is rolled back (harmless if BEGIN
                    // itself failed; see `lock`).
                    finished: false,
                };
                let mut all = crate::batch::Batch::new();
                all.push(crate::batch::Stmt::new("BEGIN IMMEDIATE", Vec::new()));
                all.extend(batch.into_stmts());
                let mut rows = all.run(&mut tx.guard.conn).await?;
                rows.remove(0);
                Ok((WriteTx(TxInner::Sqlite(tx)), rows))
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Writer::Pool(p) => p.close().await,
            Writer::Sqlite(w) => w.close().await,
        }
    }
}

/// A write connection held for several statements; see [`Writer::acquire`].
pub struct WriteConn(ConnInner);

enum ConnInner {
    Pool(sqlx::pool::PoolConnection<Any>),
    Sqlite(OwnedMutexGuard<Slot>),
}

impl std::fmt::Debug for WriteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteConn")
    }
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            ConnInner::Pool(c) => c,
            ConnInner::Sqlite(g) => &g.conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            ConnInner::Pool(c) => c,
            ConnInner::Sqlite(g) => &mut g.conn,
        }
    }
}

/// A write transaction: `commit` or `rollback` it; dropped, it rolls back.
pub struct WriteTx(TxInner);

enum TxInner {
    Pool(sqlx::Transaction<'static, Any>),
    Sqlite(SqliteTx),
}

/// The SQLite writer held inside `BEGIN IMMEDIATE`; rolls back if dropped unfinished.
struct SqliteTx {
    guard: OwnedMutexGuard<Slot>,
    slot: Arc<Mutex<Slot>>,
    finished: bool,
}

impl SqliteTx {
    async fn end(mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.guard.conn.execute(sql).await?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Dropped inside the transaction (an early error return), or COMMIT/ROLLBACK
        // failed: whoever holds the connection next rolls back first. Do it now rather
        // than then, so SQLite's write lock is not held meanwhile (another process may
        // be waiting for it).
        self.guard.dirty = true;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let slot = self.slot.clone();
            rt.spawn(async move {
                let mut g = slot.lock_owned().await;
                if g.dirty && g.conn.execute("ROLLBACK").await.is_ok() {
                    g.dirty = false;
                }
            });
        }
    }
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            TxInner::Pool(_) => "pool",
            TxInner::Sqlite(_) => "sqlite",
        };
        f.debug_struct("WriteTx").field("kind", &kind).finish()
    }
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            TxInner::Pool(tx) => tx.commit().await,
            TxInner::Sqlite(tx) => tx.end("COMMIT").await,
        }
    }

    /// Runs `batch` as the transaction's last statements and commits, in one round trip
    /// on SQLite (the `COMMIT` rides along); the rows of each statement.
    pub async fn commit_with(
        self,
        mut batch: crate::batch::Batch,
    ) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        match self.0 {
            TxInner::Pool(mut tx) => {
                let rows = batch.run(&mut tx).await?;
                tx.commit().await?;
                Ok(rows)
            }
            TxInner::Sqlite(mut tx) => {
                batch.push(crate::batch::Stmt::new("COMMIT", Vec::new()));
                let mut rows = batch.run(&mut tx.guard.conn).await?;
                tx.finished = true;
                rows.pop();
                Ok(rows)
            }
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            TxInner::Pool(tx) => tx.rollback().await,
            TxInner::Sqlite(tx) => tx.end("ROLLBACK").await,
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            TxInner::Pool(tx) => tx,
            TxInner::Sqlite(tx) => &tx.guard.conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            TxInner::Pool(tx) => tx,
            TxInner::Sqlite(tx) => &mut tx.guard.conn,
        }
    }
}

/// Runs `f` on the SQLite writer connection and hands back everything it produced (the
/// stream of a single statement; buffered because the connection is behind a guard).
fn sqlite_stream<'e, 'q: 'e, E>(
    w: Arc<SqliteWriter>,
    query: E,
) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
where
    E: 'q + Execute<'q, Any>,
{
    stream::once(async move {
        let mut g = match w.lock().await {
            Ok(g) => g,
            Err(e) => return vec![Err(e)],
        };
        let mut out = Vec::new();
        let mut s = g.conn.fetch_many(query);
        while let Some(item) = s.next().await {
            let stop = item.is_err();
            out.push(item);
            if stop {
                break;
            }
        }
        out
    })
    .flat_map(stream::iter)
    .boxed()
}

impl<'p> Executor<'p> for &'_ Writer {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Writer::Pool(p) => p.fetch_many(query),
            Writer::Sqlite(w) => sqlite_stream(w.clone(), query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Writer::Pool(p) => p.fetch_optional(query),
            Writer::Sqlite(w) => {
                let w = w.clone();
                Box::pin(async move {
                    let mut g = w.lock().await?;
                    g.conn.fetch_optional(query).await
                })
            }
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>> {
        match self {
            Writer::Pool(p) => p.prepare_with(sql, parameters),
            Writer::Sqlite(w) => {
                let w = w.clone();
                Box::pin(async move {
                    let mut g = w.lock().await?;
                    g.conn.prepare_with(sql, parameters).await
                })
            }
        }
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>> {
        match self {
            Writer::Pool(p) => p.describe(sql),
            Writer::Sqlite(w) => {
                let w = w.clone();
                Box::pin(async move {
                    let mut g = w.lock().await?;
                    g.conn.describe(sql).await
                })
            }
        }
    }
}
