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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

/// Savepoint name of the transaction in progress inside the shared transaction.
const SP: &str = "zhudai_tx";

/// At most this many transactions share one commit.
const MAX_MEMBERS: usize = 64;

/// How long a transaction that released its savepoint waits for the shared commit before
/// it checks whether anyone is left to make it (and makes it itself).
const SHARED_COMMIT_PATIENCE: Duration = Duration::from_millis(20);

/// The SQLite writer connection and its state (private to this module; public only as
/// the type inside the guards).
#[derive(Debug)]
pub struct Slot {
    conn: AnyConnection,
    /// A transaction was abandoned unfinished: undo it first (`undo_abandoned`).
    dirty: bool,
    closed: bool,
    /// The shared transaction open on the connection, if any.
    outer: Option<Outer>,
    /// A transaction of its own ([`Writer::begin_alone`]) is open on the connection.
    alone: bool,
    /// Foreign-key enforcement is off for that transaction: switch it back on after.
    fk_off: bool,
}

/// A transaction several [`WriteTx`] share on SQLite: each runs inside a savepoint of
/// it, and none is told it committed before the shared `COMMIT` has run.
#[derive(Debug)]
struct Outer {
    /// `Some(true)` once committed, `Some(false)` once rolled back.
    done: Arc<watch::Sender<Option<bool>>>,
    members: usize,
    /// Members that released their savepoint and wait for the commit.
    pending: usize,
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
    /// Tasks waiting for the connection: while there are any, a finished transaction
    /// leaves the shared transaction open for them instead of committing it.
    waiting: Arc<AtomicUsize>,
}

/// Counts a waiter for as long as it waits (also when its future is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Waiting(n.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn shared_failed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(
        "the shared SQLite transaction this write belonged to was rolled back",
    ))
}

/// Commits the shared transaction (if one is open) and tells its members.
async fn commit_outer(g: &mut Slot) -> Result<(), sqlx::Error> {
    let Some(outer) = g.outer.take() else {
        return Ok(());
    };
    match g.conn.execute("COMMIT").await {
        Ok(_) => {
            outer.done.send_replace(Some(true));
            Ok(())
        }
        Err(e) => {
            if let Err(r) = g.conn.execute("ROLLBACK").await {
                tracing::debug!(error = %r, "rolling back after a failed COMMIT");
            }
            outer.done.send_replace(Some(false));
            Err(e)
        }
    }
}

/// Rolls the shared transaction back and tells its members.
async fn abort_outer(g: &mut Slot) {
    if let Some(outer) = g.outer.take() {
        if let Err(e) = g.conn.execute("ROLLBACK").await {
            tracing::debug!(error = %e, "rolling back the shared transaction");
        }
        outer.done.send_replace(Some(false));
    }
}

/// Switches foreign-key enforcement back on after a transaction that ran without it.
async fn restore_foreign_keys(g: &mut Slot) {
    if g.fk_off {
        match g.conn.execute("PRAGMA foreign_keys = ON").await {
            Ok(_) => g.fk_off = false,
            // Left marked: the next holder tries again before using the connection.
            Err(e) => tracing::warn!(error = %e, "switching foreign keys back on"),
        }
    }
}

/// Undoes an abandoned or failed transaction: a transaction of its own is rolled back
/// (and foreign keys switched back on); a savepoint is rolled back to, and if that is
/// impossible (the savepoint is gone), the whole shared transaction.
async fn undo_abandoned(g: &mut Slot) {
    g.dirty = false;
    if g.alone {
        g.alone = false;
        if let Err(e) = g.conn.execute("ROLLBACK").await {
            tracing::debug!(error = %e, "rolling back an abandoned transaction");
        }
        restore_foreign_keys(g).await;
        return;
    }
    if g.outer.is_none() {
        return;
    }
    let sql = format!("ROLLBACK TO {SP}; RELEASE {SP}");
    if let Err(e) = g.conn.execute(sql.as_str()).await {
        tracing::debug!(error = %e, "undoing a savepoint; rolling back the shared transaction");
        abort_outer(g).await;
    }
}

impl SqliteWriter {
    pub(crate) fn new(conn: AnyConnection, acquire_timeout: Duration) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                conn,
                dirty: false,
                closed: false,
                outer: None,
                alone: false,
                fk_off: false,
            })),
            acquire_timeout,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The connection, with any abandoned savepoint undone; a shared transaction may
    /// still be open (a transaction joins it).
    async fn lock_tx(&self) -> Result<OwnedMutexGuard<Slot>, sqlx::Error> {
        let waiting = Waiting::new(&self.waiting);
        let mut g = tokio::time::timeout(self.acquire_timeout, self.slot.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        drop(waiting);
        if g.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        if g.dirty {
            undo_abandoned(&mut g).await;
        }
        if g.fk_off && !g.alone {
            restore_foreign_keys(&mut g).await;
        }
        Ok(g)
    }

    /// The connection outside any transaction (the shared one committed first), for
    /// single statements and [`Writer::acquire`].
    async fn lock(&self) -> Result<OwnedMutexGuard<Slot>, sqlx::Error> {
        let mut g = self.lock_tx().await?;
        commit_outer(&mut g).await?;
        Ok(g)
    }

    /// Ends the shared transaction now if nobody is waiting to join it (or it is full).
    async fn settle(&self, g: &mut Slot) -> Result<(), sqlx::Error> {
        let full = g.outer.as_ref().is_some_and(|o| o.members >= MAX_MEMBERS);
        if self.waiting.load(Ordering::SeqCst) == 0 || full {
            commit_outer(g).await?;
        }
        Ok(())
    }

    /// Refuses further use and checkpoints the log into the database file (after
    /// waiting for the current holder). The connection itself closes when the last
    /// handle to the store is dropped.
    pub(crate) async fn close(&self) {
        let mut g = self.slot.clone().lock_owned().await;
        if g.closed {
            return;
        }
        if g.dirty {
            undo_abandoned(&mut g).await;
        }
        if let Err(e) = commit_outer(&mut g).await {
            tracing::warn!(error = %e, "committing the shared transaction at close");
        }
        g.closed = true;
        if let Err(e) = g.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
            tracing::warn!(error = %e, "checkpointing SQLite's log at close");
        }
    }

    /// Starts a transaction (joining the shared one, or opening it) and runs `batch`
    /// first, in one round trip.
    async fn begin_with(
        self: &Arc<Self>,
        batch: crate::batch::Batch,
    ) -> Result<(SqliteTx, Vec<Vec<AnyRow>>), StoreError> {
        let mut g = self.lock_tx().await?;
        let mut all = crate::batch::Batch::new();
        let opens = g.outer.is_none();
        if opens {
            all.push(crate::batch::Stmt::new("BEGIN IMMEDIATE", Vec::new()));
        }
        all.push(crate::batch::Stmt::new(
            format!("SAVEPOINT {SP}"),
            Vec::new(),
        ));
        all.extend(batch.into_stmts());
        if opens {
            g.outer = Some(Outer {
                done: Arc::new(watch::channel(None).0),
                members: 0,
                pending: 0,
            });
        }
        let done = match g.outer.as_mut() {
            Some(o) => {
                o.members += 1;
                o.done.clone()
            }
            None => return Err(StoreError::Invalid("no shared transaction".into())),
        };
        let mut tx = SqliteTx {
            guard: g,
            writer: self.clone(),
            done,
            finished: false,
        };
        // On an error `tx` is dropped unfinished: its savepoint is undone.
        let mut rows = all.run(&mut tx.guard.conn).await?;
        rows.drain(..if opens { 2 } else { 1 });
        Ok((tx, rows))
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
            Writer::Sqlite(w) => WriteTx(TxInner::Sqlite(
                w.begin_with(crate::batch::Batch::new()).await?.0,
            )),
        })
    }

    /// Starts a write transaction that shares nothing: on SQLite a plain `BEGIN
    /// IMMEDIATE` … `COMMIT`, with no savepoint, after the shared transaction (if any)
    /// has committed. For bulk writes: a savepoint makes SQLite copy every page it
    /// changes into a sub-journal first (measured: a fifth of a bulk import's time),
    /// which buys nothing for a transaction that is large enough on its own. Writes
    /// queue behind it as behind any transaction; on PostgreSQL it is [`Self::begin`].
    ///
    /// `foreign_keys: false` switches SQLite's foreign-key enforcement off for this
    /// transaction (and back on after it, whatever happens), for bulk inserts whose
    /// references the caller has checked itself: a multi-row INSERT into a table others
    /// refer to otherwise searches every referring table for each new row, and its
    /// checks oblige SQLite to keep a statement journal. PostgreSQL always enforces them.
    pub async fn begin_alone(&self, foreign_keys: bool) -> Result<WriteTx, StoreError> {
        match self {
            Writer::Pool(_) => self.begin().await,
            Writer::Sqlite(w) => {
                let mut guard = w.lock().await?;
                if !foreign_keys {
                    guard.fk_off = true;
                    guard.conn.execute("PRAGMA foreign_keys = OFF").await?;
                }
                if let Err(e) = guard.conn.execute("BEGIN IMMEDIATE").await {
                    restore_foreign_keys(&mut guard).await;
                    return Err(e.into());
                }
                guard.alone = true;
                Ok(WriteTx(TxInner::Alone(AloneTx {
                    guard,
                    writer: w.clone(),
                    finished: false,
                })))
            }
        }
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
                let (tx, rows) = w.begin_with(batch).await?;
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
///
/// On SQLite it is a savepoint inside a transaction it may share with the writes queued
/// behind it ("group commit" of transactions): `commit` releases the savepoint and
/// returns once the shared transaction has committed — by this caller when nobody is
/// waiting for the connection, otherwise by the last of the group. Pages the group's
/// writes share (the audit chain's head and tail, journal and index leaves) are written
/// to the log once per group instead of once per request.
pub struct WriteTx(TxInner);

enum TxInner {
    Pool(sqlx::Transaction<'static, Any>),
    Sqlite(SqliteTx),
    Alone(AloneTx),
}

/// A plain SQLite transaction holding the writer (see [`Writer::begin_alone`]).
struct AloneTx {
    guard: OwnedMutexGuard<Slot>,
    writer: Arc<SqliteWriter>,
    /// Ended by `end`; otherwise dropping it rolls it back.
    finished: bool,
}

impl AloneTx {
    async fn end(
        mut self,
        mut batch: crate::batch::Batch,
        commit: bool,
    ) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        batch.push(crate::batch::Stmt::new(
            if commit { "COMMIT" } else { "ROLLBACK" },
            Vec::new(),
        ));
        let result = batch.run(&mut self.guard.conn).await;
        self.finished = true;
        match result {
            Ok(mut rows) => {
                self.guard.alone = false;
                restore_foreign_keys(&mut self.guard).await;
                rows.pop();
                Ok(rows)
            }
            Err(e) => {
                // Still inside the transaction (a statement or the COMMIT failed).
                undo_abandoned(&mut self.guard).await;
                Err(e)
            }
        }
    }
}

impl Drop for AloneTx {
    fn drop(&mut self) {
        if !self.finished {
            abandon(&mut self.guard, &self.writer);
        }
    }
}

/// A transaction inside the shared SQLite transaction.
struct SqliteTx {
    guard: OwnedMutexGuard<Slot>,
    writer: Arc<SqliteWriter>,
    done: Arc<watch::Sender<Option<bool>>>,
    /// Ended by `end`; otherwise dropping it undoes its savepoint.
    finished: bool,
}

impl SqliteTx {
    /// Releases (`commit`) or undoes (`!commit`) the savepoint after running `batch`,
    /// then waits for the shared transaction's outcome (committing it when nobody else
    /// will).
    async fn end(
        mut self,
        mut batch: crate::batch::Batch,
        commit: bool,
    ) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        // Nobody waiting to join (or the group is full): the shared transaction ends
        // with this one, and its `COMMIT` rides in the same round trip.
        let commit_now = commit
            && (self.writer.waiting.load(Ordering::SeqCst) == 0
                || self
                    .guard
                    .outer
                    .as_ref()
                    .is_some_and(|o| o.members >= MAX_MEMBERS));
        let extra = if commit {
            batch.push(crate::batch::Stmt::new(format!("RELEASE {SP}"), Vec::new()));
            if commit_now {
                batch.push(crate::batch::Stmt::new("COMMIT".to_owned(), Vec::new()));
                2
            } else {
                1
            }
        } else {
            batch.push(crate::batch::Stmt::new(
                format!("ROLLBACK TO {SP}"),
                Vec::new(),
            ));
            batch.push(crate::batch::Stmt::new(format!("RELEASE {SP}"), Vec::new()));
            2
        };
        let writer = self.writer.clone();
        let done = self.done.clone();
        let mut rows = match batch.run(&mut self.guard.conn).await {
            Ok(rows) => rows,
            Err(e) => {
                self.finished = true;
                undo_abandoned(&mut self.guard).await;
                if let Err(c) = writer.settle(&mut self.guard).await {
                    tracing::debug!(error = %c, "settling after a failed transaction");
                }
                return Err(e);
            }
        };
        self.finished = true;
        rows.truncate(rows.len().saturating_sub(extra));
        if commit_now {
            // Committed: tell every member of the shared transaction.
            if let Some(outer) = self.guard.outer.take() {
                outer.done.send_replace(Some(true));
            }
        } else if commit {
            if let Some(o) = self.guard.outer.as_mut() {
                o.pending += 1;
            }
        }
        let settled = writer.settle(&mut self.guard).await;
        let still_open = self
            .guard
            .outer
            .as_ref()
            .is_some_and(|o| Arc::ptr_eq(&o.done, &done));
        // Hands the connection to the next writer.
        drop(self);
        settled?;
        if !commit {
            return Ok(rows);
        }
        if still_open {
            await_shared(&writer, &done).await?;
            return Ok(rows);
        }
        let committed = *done.borrow() == Some(true);
        if committed {
            Ok(rows)
        } else {
            Err(shared_failed().into())
        }
    }
}

/// Waits until the shared transaction `done` belongs to has ended; makes the commit
/// itself if the writes it was left open for never came.
async fn await_shared(
    writer: &SqliteWriter,
    done: &Arc<watch::Sender<Option<bool>>>,
) -> Result<(), StoreError> {
    let mut rx = done.subscribe();
    loop {
        // The outcome as a plain value: a `watch::Ref` must not live across an await.
        let outcome: Option<bool> = match tokio::time::timeout(
            SHARED_COMMIT_PATIENCE,
            rx.wait_for(Option::is_some),
        )
        .await
        {
            Ok(Ok(v)) => Some(*v == Some(true)),
            Ok(Err(_)) => Some(false),
            Err(_) => None,
        };
        match outcome {
            Some(true) => return Ok(()),
            Some(false) => return Err(shared_failed().into()),
            None => {
                let mut g = writer.lock_tx().await?;
                let mine = g.outer.as_ref().is_some_and(|o| Arc::ptr_eq(&o.done, done));
                if mine {
                    commit_outer(&mut g).await?;
                }
            }
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.finished {
            abandon(&mut self.guard, &self.writer);
        }
    }
}

/// A transaction dropped unfinished (an early error return): its work is undone before
/// anyone else writes — now, on a task, or else by the next holder (`lock_tx`) — and a
/// shared transaction nobody is waiting to join is committed.
fn abandon(guard: &mut Slot, writer: &Arc<SqliteWriter>) {
    guard.dirty = true;
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let writer = writer.clone();
        rt.spawn(async move {
            if let Ok(mut g) = writer.lock_tx().await {
                if let Err(e) = writer.settle(&mut g).await {
                    tracing::debug!(error = %e, "settling after an abandoned transaction");
                }
            }
        });
    }
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            TxInner::Pool(_) => "pool",
            TxInner::Sqlite(_) => "sqlite",
            TxInner::Alone(_) => "sqlite-alone",
        };
        f.debug_struct("WriteTx").field("kind", &kind).finish()
    }
}

fn to_sqlx(e: StoreError) -> sqlx::Error {
    match e {
        StoreError::Database(e) => e,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

impl WriteTx {
    /// Runs `batch` as the transaction's last statements, then commits (`commit`) or
    /// rolls back; the rows of each statement.
    async fn finish(
        self,
        batch: crate::batch::Batch,
        commit: bool,
    ) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        match self.0 {
            TxInner::Pool(mut tx) => {
                let rows = batch.run(&mut tx).await?;
                if commit {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(rows)
            }
            TxInner::Sqlite(tx) => tx.end(batch, commit).await,
            TxInner::Alone(tx) => tx.end(batch, commit).await,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.finish(crate::batch::Batch::new(), true)
            .await
            .map(|_| ())
            .map_err(to_sqlx)
    }

    /// Runs `batch` as the transaction's last statements and commits, in one round trip
    /// on SQLite (the `COMMIT` rides along when it is this caller's to make); the rows
    /// of each statement.
    pub async fn commit_with(
        self,
        batch: crate::batch::Batch,
    ) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        self.finish(batch, true).await
    }

    /// The database this transaction runs on.
    pub fn backend(&self) -> crate::db::Backend {
        match &self.0 {
            TxInner::Pool(_) => crate::db::Backend::Postgres,
            TxInner::Sqlite(_) | TxInner::Alone(_) => crate::db::Backend::Sqlite,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.finish(crate::batch::Batch::new(), false)
            .await
            .map(|_| ())
            .map_err(to_sqlx)
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            TxInner::Pool(tx) => tx,
            TxInner::Sqlite(tx) => &tx.guard.conn,
            TxInner::Alone(tx) => &tx.guard.conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            TxInner::Pool(tx) => tx,
            TxInner::Sqlite(tx) => &mut tx.guard.conn,
            TxInner::Alone(tx) => &mut tx.guard.conn,
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
