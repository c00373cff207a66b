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

/// `sql` with every `$n` placeholder shifted by `by`. Placeholders only: the statements
/// zhudai batches carry no `$` inside literals (checked by the caller's tests; a literal
/// would be renumbered and the statement would fail to bind, not misbehave silently).
fn shift_placeholders(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(&(_, d)) = chars.peek() {
            if d.is_ascii_digit() {
                digits.push(d);
                chars.next();
            } else {
                break;
            }
        }
        match digits.parse::<usize>() {
            Ok(n) => {
                out.push('$');
                out.push_str(&(n + by).to_string());
            }
            Err(_) => {
                out.push('$');
                out.push_str(&digits);
            }
        }
    }
    out
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
            sql.push_str(&shift_placeholders(&s.sql, args.len()));
            sql.push_str(";\n");
            args.extend(s.args.iter().cloned());
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
    fn placeholders_shift_and_everything_else_stays() {
        assert_eq!(
            shift_placeholders("UPDATE t SET a = $1, b = $12 WHERE c = $2 AND d = '$'", 3),
            "UPDATE t SET a = $4, b = $15 WHERE c = $5 AND d = '$'"
        );
        assert_eq!(shift_placeholders("SELECT 1", 7), "SELECT 1");
        assert_eq!(placeholder_rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholder_rows(1, 2, 4), "($4, $5)");
    }
}
