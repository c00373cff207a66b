//! Several statements sent as one: fewer round trips on a hot write path.
//!
//! On SQLite every statement costs a round trip to the connection's own thread (two
//! thread wake-ups), which on a busy 2-core machine is several times the statement's own
//! work. A [`Batch`] sends its statements as one multi-statement text with the
//! placeholders renumbered (SQLite binds `$n` by number across the whole text), and
//! splits the rows that come back per statement. PostgreSQL's extended protocol takes
//! one statement per prepare, so there the statements run one after another on the same
//! connection: same results, same transaction, just no saving.
//!
//! Statements in a batch may not depend on each other's results in Rust (they may in
//! SQL, e.g. a subquery reading a row an earlier statement wrote).

use crate::db::Backend;
use crate::error::StoreError;
use futures_util::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either, Executor};

/// A bind value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

/// One statement with `$1…$n` placeholders and its arguments in that order.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, args: Vec<Arg>) -> Self {
        Stmt {
            sql: sql.into(),
            args,
        }
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        bind_all(sqlx::query(&self.sql), &self.args)
    }

    /// Runs this one statement; the number of rows it changed.
    pub async fn execute(&self, conn: &mut AnyConnection) -> Result<u64, StoreError> {
        Ok(self.query().execute(&mut *conn).await?.rows_affected())
    }

    /// Runs this one statement on any executor (a pool, the writer, a transaction's
    /// connection); the number of rows it changed.
    pub async fn execute_on<'c, E>(&self, exec: E) -> Result<u64, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        Ok(self.query().execute(exec).await?.rows_affected())
    }

    /// Runs this one statement; its rows.
    pub async fn fetch_all(&self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, StoreError> {
        Ok(self.query().fetch_all(&mut *conn).await?)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// `rows` VALUES tuples of `width` placeholders numbered from `$first` on:
/// `placeholder_rows(2, 3, 1)` is `($1, $2, $3), ($4, $5, $6)`.
pub fn placeholder_rows(rows: usize, width: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..width)
                .map(|c| format!("${}", first + r * width + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements to run in order on one connection (inside the caller's transaction).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    stmts: Vec<Stmt>,
}

/// Appends `sql` to `out` with every `$n` placeholder replaced by an anonymous `?`, and
/// `args[n - 1]` to `bound` for each, in the order they occur (a placeholder used twice
/// binds its value twice). Why: sqlx asks SQLite for each parameter's name to find its
/// value, and SQLite finds a name by walking the statement's list of named parameters,
/// so numbered parameters cost the square of their number per statement (measured: 7 %
/// of the writer thread's time posting repayments); a statement with only anonymous
/// parameters has no such list. Placeholders only: the statements zhudai batches carry
/// no `$` or `?` inside literals (a `$n` naming no argument is an error; a stray `$` is
/// copied as it is and fails to prepare, never binds a wrong value).
fn anonymise_placeholders(
    sql: &str,
    args: &[Arg],
    out: &mut String,
    bound: &mut Vec<Arg>,
) -> Result<(), StoreError> {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => {
                let arg = n.checked_sub(1).and_then(|i| args.get(i)).ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "placeholder ${n} has no argument ({} given)",
                        args.len()
                    ))
                })?;
                out.push('?');
                bound.push(arg.clone());
            }
            Err(_) => out.push('$'),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok(())
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a statement; returns its index in [`run`](Self::run)'s result.
    pub fn push(&mut self, stmt: Stmt) -> usize {
        self.stmts.push(stmt);
        self.stmts.len() - 1
    }

    pub fn extend(&mut self, stmts: impl IntoIterator<Item = Stmt>) {
        self.stmts.extend(stmts);
    }

    pub fn into_stmts(self) -> Vec<Stmt> {
        self.stmts
    }

    pub fn len(&self) -> usize {
        self.stmts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    /// Runs the statements in order; the rows each returned, by index.
    pub async fn run(&self, conn: &mut AnyConnection) -> Result<Vec<Vec<AnyRow>>, StoreError> {
        let backend = if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Postgres || self.stmts.len() < 2 {
            let mut out = Vec::with_capacity(self.stmts.len());
            for s in &self.stmts {
                out.push(s.fetch_all(conn).await?);
            }
            return Ok(out);
        }
        let mut sql = String::new();
        let mut args: Vec<Arg> = Vec::new();
        for s in &self.stmts {
            anonymise_placeholders(&s.sql, &s.args, &mut sql, &mut args)?;
            sql.push_str(";\n");
        }
        let q = bind_all(sqlx::query(&sql), &args);
        let mut out: Vec<Vec<AnyRow>> = vec![Vec::new()];
        let mut stream = conn.fetch_many(q);
        while let Some(item) = stream.next().await {
            match item? {
                Either::Right(row) => {
                    if let Some(last) = out.last_mut() {
                        last.push(row);
                    }
                }
                Either::Left(_) => out.push(Vec::new()),
            }
        }
        drop(stream);
        out.pop();
        if out.len() != self.stmts.len() {
            return Err(StoreError::Invalid(format!(
                "a batch of {} statements reported {} results",
                self.stmts.len(),
                out.len()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_anonymous_and_everything_else_stays() {
        let args: Vec<Arg> = (1..=12).map(|i: i64| Arg::from(i * 10)).collect();
        let (mut sql, mut bound) = (String::from("X; "), vec![Arg::from("kept")]);
        anonymise_placeholders(
            "UPDATE t SET a = $1, b = $12 WHERE c = $2 AND e = $1 AND d = '$'",
            &args,
            &mut sql,
            &mut bound,
        )
        .unwrap();
        assert_eq!(
            sql,
            "X; UPDATE t SET a = ?, b = ? WHERE c = ? AND e = ? AND d = '$'"
        );
        assert_eq!(
            bound,
            vec![
                Arg::from("kept"),
                Arg::from(10),
                Arg::from(120),
                Arg::from(20),
                Arg::from(10)
            ]
        );
        let (mut sql, mut bound) = (String::new(), Vec::new());
        anonymise_placeholders("SELECT 1", &[], &mut sql, &mut bound).unwrap();
        assert_eq!((sql.as_str(), bound.len()), ("SELECT 1", 0));
        for bad in ["SELECT $3", "SELECT $0"] {
            let (mut sql, mut bound) = (String::new(), Vec::new());
            assert!(anonymise_placeholders(bad, &args[..2], &mut sql, &mut bound).is_err());
        }
        assert_eq!(placeholder_rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholder_rows(1, 2, 4), "($4, $5)");
    }
}
