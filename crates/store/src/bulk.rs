//! Multi-row inserts with explicit ids, for the synthetic book generator (issue #8 item
//! 7): values are bound, never formatted into SQL; SQLite gets anonymous `?`
//! placeholders (sqlx looks numbered ones up by name, which is quadratic in a
//! statement's parameters), PostgreSQL `$n` with large statements.

use crate::error::StoreError;
use sqlx::AnyConnection;

/// One value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    I(i64),
    S(String),
    T(&'static str),
    /// A NULL of an integer column (PostgreSQL types its parameters).
    NullI,
    /// A NULL of a text column.
    NullS,
}

impl From<i64> for V {
    fn from(v: i64) -> Self {
        V::I(v)
    }
}

impl From<&'static str> for V {
    fn from(v: &'static str) -> Self {
        V::T(v)
    }
}

impl From<String> for V {
    fn from(v: String) -> Self {
        V::S(v)
    }
}

impl From<Option<String>> for V {
    fn from(v: Option<String>) -> Self {
        v.map_or(V::NullS, V::S)
    }
}

impl From<Option<i64>> for V {
    fn from(v: Option<i64>) -> Self {
        v.map_or(V::NullI, V::I)
    }
}

/// Rows of one table, flattened.
#[derive(Debug, Clone)]
pub struct Rows {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    pub values: Vec<V>,
}

impl Rows {
    pub fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        Rows {
            table,
            columns,
            values: Vec::new(),
        }
    }

    /// Adds a row; `row` must have one value per column.
    pub fn push(&mut self, row: impl IntoIterator<Item = V>) {
        let before = self.values.len();
        self.values.extend(row);
        debug_assert_eq!(
            self.values.len() - before,
            self.columns.len(),
            "{}",
            self.table
        );
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn clear(&mut self) {
        self.values.clear();
    }
}

fn sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("sqlite")
}

/// Inserts every row, in statements of at most ~2,000 (SQLite) or ~30,000 (PostgreSQL)
/// values.
pub async fn insert(conn: &mut AnyConnection, rows: &Rows) -> Result<(), StoreError> {
    use std::fmt::Write;
    let cols = rows.columns.len();
    if cols == 0 || rows.values.is_empty() {
        return Ok(());
    }
    let anonymous = sqlite(conn);
    let per = ((if anonymous { 2_000 } else { 30_000 }) / cols).max(1);
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        rows.table,
        rows.columns.join(", ")
    );
    let mut cached: Option<(usize, String)> = None;
    for chunk in rows.values.chunks(per * cols) {
        let n = chunk.len() / cols;
        let sql = match &cached {
            Some((k, s)) if *k == n => s.clone(),
            _ => {
                let mut s = head.clone();
                let mut p = 0;
                for r in 0..n {
                    if r > 0 {
                        s.push_str(", ");
                    }
                    s.push('(');
                    for c in 0..cols {
                        if c > 0 {
                            s.push_str(", ");
                        }
                        p += 1;
                        if anonymous {
                            s.push('?');
                        } else {
                            let _ = write!(s, "${p}");
                        }
                    }
                    s.push(')');
                }
                cached = Some((n, s.clone()));
                s
            }
        };
        let mut q = sqlx::query(&sql);
        for v in chunk {
            q = match v {
                V::I(i) => q.bind(*i),
                V::S(s) => q.bind(s.as_str()),
                V::T(s) => q.bind(*s),
                V::NullI => q.bind(None::<i64>),
                V::NullS => q.bind(None::<String>),
            };
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The largest id of a table (0 when empty).
pub async fn max_id(conn: &mut AnyConnection, table: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar::<_, i64>(&format!(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM {table}"
    ))
    .fetch_one(&mut *conn)
    .await?)
}

/// After inserts with explicit ids: moves PostgreSQL's identity sequences past them
/// (SQLite's AUTOINCREMENT follows explicit ids by itself).
pub async fn fix_sequences(conn: &mut AnyConnection, tables: &[&str]) -> Result<(), StoreError> {
    if sqlite(conn) {
        return Ok(());
    }
    for t in tables {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{t}', 'id'), GREATEST((SELECT MAX(id) FROM {t}), 1))"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Refreshes PostgreSQL's planner statistics after a bulk load (no-op on SQLite).
pub async fn analyze(conn: &mut AnyConnection, tables: &[&str]) -> Result<(), StoreError> {
    if sqlite(conn) {
        return Ok(());
    }
    for t in tables {
        sqlx::query(&format!("ANALYZE {t}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
