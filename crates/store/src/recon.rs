//! Funder reconciliation (issue #8 item 5): imported repayment files, their lines, and
//! the breaks found against our repayments.

use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A loan of a funder, as the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunderLoan {
    pub id: i64,
    pub ref_: String,
    pub funder_loan_ref: Option<String>,
}

/// One of our posted repayments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurRepayment {
    pub loan_id: i64,
    pub loan_ref: String,
    pub value_date: String,
    pub amount_fen: i64,
}

/// A file line to store.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub line_no: i64,
    pub loan_ref: Option<String>,
    pub funder_loan_ref: Option<String>,
    pub loan_id: Option<i64>,
    pub value_date: String,
    pub amount_fen: i64,
    pub external_ref: Option<String>,
}

/// A break to store.
#[derive(Debug, Clone)]
pub struct NewBreak {
    pub kind: String,
    pub loan_id: Option<i64>,
    pub loan_ref: String,
    pub value_date: String,
    pub funder_fen: i64,
    pub ours_fen: i64,
}

/// An imported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    pub id: i64,
    pub funder_code: String,
    pub file_name: String,
    pub sha256: String,
    pub date_from: String,
    pub date_to: String,
    pub lines: i64,
    pub matched: i64,
    pub breaks: i64,
    pub open_breaks: i64,
    pub funder_total_fen: i64,
    pub ours_total_fen: i64,
    pub imported_by: String,
    pub imported_at_ms: i64,
}

/// A break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakRow {
    pub id: i64,
    pub file_id: i64,
    pub funder_code: String,
    pub kind: String,
    pub loan_id: Option<i64>,
    pub loan_ref: String,
    pub value_date: String,
    pub funder_fen: i64,
    pub ours_fen: i64,
    pub state: String,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at_ms: Option<i64>,
}

const FILE_COLUMNS: &str = "f.id, f.funder_code, f.file_name, f.sha256, f.date_from, f.date_to, f.lines, f.matched, \
    f.breaks, f.funder_total_fen, f.ours_total_fen, f.imported_by, f.imported_at_ms, \
    (SELECT COUNT(*) FROM recon_breaks b WHERE b.file_id = f.id AND b.state = 'open') AS open_breaks";

fn file_row(r: &AnyRow) -> Result<FileRow, StoreError> {
    Ok(FileRow {
        id: r.try_get("id")?,
        funder_code: r.try_get("funder_code")?,
        file_name: r.try_get("file_name")?,
        sha256: r.try_get("sha256")?,
        date_from: r.try_get("date_from")?,
        date_to: r.try_get("date_to")?,
        lines: r.try_get("lines")?,
        matched: r.try_get("matched")?,
        breaks: r.try_get("breaks")?,
        open_breaks: r.try_get("open_breaks")?,
        funder_total_fen: r.try_get("funder_total_fen")?,
        ours_total_fen: r.try_get("ours_total_fen")?,
        imported_by: r.try_get("imported_by")?,
        imported_at_ms: r.try_get("imported_at_ms")?,
    })
}

const BREAK_COLUMNS: &str =
    "id, file_id, funder_code, kind, loan_id, loan_ref, value_date, funder_fen, ours_fen, state, \
    resolution_note, resolved_by, resolved_at_ms";

fn break_row(r: &AnyRow) -> Result<BreakRow, StoreError> {
    Ok(BreakRow {
        id: r.try_get("id")?,
        file_id: r.try_get("file_id")?,
        funder_code: r.try_get("funder_code")?,
        kind: r.try_get("kind")?,
        loan_id: r.try_get("loan_id")?,
        loan_ref: r.try_get("loan_ref")?,
        value_date: r.try_get("value_date")?,
        funder_fen: r.try_get("funder_fen")?,
        ours_fen: r.try_get("ours_fen")?,
        state: r.try_get("state")?,
        resolution_note: r.try_get("resolution_note")?,
        resolved_by: r.try_get("resolved_by")?,
        resolved_at_ms: r.try_get("resolved_at_ms")?,
    })
}

/// The stored file of a funder with this digest.
pub async fn file_by_digest(
    conn: &mut AnyConnection,
    funder: &str,
    sha256: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM recon_files WHERE funder_code = $1 AND sha256 = $2")
            .bind(funder)
            .bind(sha256)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Stores a file with its lines and breaks; `None` when the same file (digest) of this
/// funder was imported before (a concurrent import won).
#[allow(clippy::too_many_arguments)]
pub async fn file_insert(
    conn: &mut AnyConnection,
    funder: &str,
    file_name: &str,
    sha256: &str,
    range: (&str, &str),
    matched: i64,
    totals: (i64, i64),
    lines: &[NewLine],
    breaks: &[NewBreak],
    by: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO recon_files (funder_code, file_name, sha256, date_from, date_to, lines, matched, breaks,
            funder_total_fen, ours_total_fen, imported_by, imported_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (funder_code, sha256) DO NOTHING RETURNING id",
    )
    .bind(funder)
    .bind(file_name)
    .bind(sha256)
    .bind(range.0)
    .bind(range.1)
    .bind(lines.len() as i64)
    .bind(matched)
    .bind(breaks.len() as i64)
    .bind(totals.0)
    .bind(totals.1)
    .bind(by)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else { return Ok(None) };
    for chunk in lines.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO recon_lines (file_id, line_no, loan_ref, funder_loan_ref, loan_id, value_date, amount_fen, external_ref) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let b = i * 7 + 2;
            sql.push_str(&format!(
                "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        let mut q = sqlx::query(&sql).bind(id);
        for l in chunk {
            q = q
                .bind(l.line_no)
                .bind(l.loan_ref.as_deref())
                .bind(l.funder_loan_ref.as_deref())
                .bind(l.loan_id)
                .bind(&l.value_date)
                .bind(l.amount_fen)
                .bind(l.external_ref.as_deref());
        }
        q.execute(&mut *conn).await?;
    }
    for b in breaks {
        sqlx::query(
            "INSERT INTO recon_breaks (file_id, funder_code, kind, loan_id, loan_ref, value_date, funder_fen, ours_fen, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open')",
        )
        .bind(id)
        .bind(funder)
        .bind(&b.kind)
        .bind(b.loan_id)
        .bind(&b.loan_ref)
        .bind(&b.value_date)
        .bind(b.funder_fen)
        .bind(b.ours_fen)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(id))
}

/// Resolves an open break with a note; false when it was not open.
pub async fn break_resolve(
    conn: &mut AnyConnection,
    id: i64,
    note: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE recon_breaks SET state = 'resolved', resolution_note = $2, resolved_by = $3, resolved_at_ms = $4
         WHERE id = $1 AND state = 'open'",
    )
    .bind(id)
    .bind(note)
    .bind(by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

impl Store {
    /// The funder's loans named by our references or its own.
    pub async fn funder_loans(
        &self,
        funder: &str,
        refs: &[String],
        funder_refs: &[String],
    ) -> Result<Vec<FunderLoan>, StoreError> {
        let mut out = Vec::new();
        for (col, list) in [("ref", refs), ("funder_loan_ref", funder_refs)] {
            for chunk in list.chunks(500) {
                if chunk.is_empty() {
                    continue;
                }
                let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                let sql = format!(
                    "SELECT id, ref, funder_loan_ref FROM loans WHERE funder_code = $1 AND {col} IN ({})",
                    marks.join(", ")
                );
                let mut q = sqlx::query(&sql).bind(funder);
                for r in chunk {
                    q = q.bind(r.as_str());
                }
                for r in q.fetch_all(self.reader()).await? {
                    out.push(FunderLoan {
                        id: r.try_get("id")?,
                        ref_: r.try_get("ref")?,
                        funder_loan_ref: r.try_get("funder_loan_ref")?,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Our posted repayments on the funder's loans with value dates in `from..=to`.
    pub async fn funder_repayments(
        &self,
        funder: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<OurRepayment>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.loan_id, l.ref, r.value_date, r.amount_fen FROM repayments r JOIN loans l ON l.id = r.loan_id
              WHERE l.funder_code = $1 AND r.status = 'posted' AND r.value_date >= $2 AND r.value_date <= $3
              ORDER BY r.id",
        )
        .bind(funder)
        .bind(from)
        .bind(to)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OurRepayment {
                    loan_id: r.try_get("loan_id")?,
                    loan_ref: r.try_get("ref")?,
                    value_date: r.try_get("value_date")?,
                    amount_fen: r.try_get("amount_fen")?,
                })
            })
            .collect()
    }

    pub async fn recon_files(&self, limit: i64) -> Result<Vec<FileRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM recon_files f ORDER BY f.id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(file_row).collect()
    }

    pub async fn recon_file(&self, id: i64) -> Result<Option<FileRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM recon_files f WHERE f.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(file_row).transpose()
    }

    pub async fn recon_breaks_of(&self, file_id: i64) -> Result<Vec<BreakRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE file_id = $1 ORDER BY id"
        ))
        .bind(file_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(break_row).collect()
    }

    /// Breaks in a state (`open` / `resolved`), oldest first.
    pub async fn recon_breaks(&self, state: &str, limit: i64) -> Result<Vec<BreakRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE state = $1 ORDER BY id LIMIT $2"
        ))
        .bind(state)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(break_row).collect()
    }

    pub async fn recon_break(&self, id: i64) -> Result<Option<BreakRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        r.as_ref().map(break_row).transpose()
    }
}
