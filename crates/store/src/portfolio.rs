//! Portfolio reports (issue #8 item 6): the tier and bucket snapshot of each close,
//! vintage curves recomputed from the installments' due and settlement dates, and
//! buckets as of any past close (from the bucket history) for roll rates.

use crate::db::Store;
use crate::error::StoreError;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use zhudai_domain::portfolio::{parse_month, vintage_points};

const DATE: &str = "%Y-%m-%d";

/// One cell of a close's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRow {
    pub classification: String,
    pub collection_bucket: String,
    pub loans: i64,
    pub principal_fen: i64,
}

/// A point of a vintage curve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VintagePoint {
    pub vintage: String,
    pub mob: i64,
    pub point_date: String,
    pub loans: i64,
    pub overdue_loans: i64,
    pub overdue30_loans: i64,
}

/// A loan's bucket at a past close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAt {
    pub loan_id: i64,
    pub bucket: String,
}

/// What a roll-rate matrix needs from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollFacts {
    /// Loans open at the end of the first date.
    pub open_at_from: i64,
    /// Non-M0 buckets at the first date (open loans only).
    pub from: HashMap<i64, String>,
    /// Non-M0 buckets at the second date, of loans open at the first.
    pub to: HashMap<i64, String>,
    /// Loans open at the first date and closed (repaid, written off) by the second.
    pub closed: Vec<i64>,
}

impl Store {
    /// The snapshot of a close (empty when none was taken that day).
    pub async fn cob_snapshot(&self, date: &str) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT classification, collection_bucket, loans, principal_fen FROM cob_snapshots
              WHERE business_date = $1 ORDER BY classification, collection_bucket",
        )
        .bind(date)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SnapshotRow {
                    classification: r.try_get("classification")?,
                    collection_bucket: r.try_get("collection_bucket")?,
                    loans: r.try_get("loans")?,
                    principal_fen: r.try_get("principal_fen")?,
                })
            })
            .collect()
    }

    /// Per close date: open balance and the NPL (次级 + 可疑 + 损失) balance, oldest first.
    pub async fn npl_trend(&self, limit: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT business_date, CAST(SUM(principal_fen) AS BIGINT) AS total,
                CAST(SUM(CASE WHEN classification IN ('substandard', 'doubtful', 'loss') THEN principal_fen ELSE 0 END) AS BIGINT) AS npl
               FROM cob_snapshots GROUP BY business_date ORDER BY business_date DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut out: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("business_date")?,
                    r.try_get("total")?,
                    r.try_get("npl")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    /// Recomputes the vintage curves as of `as_of`: for each disbursement month and each
    /// month-end on book (1 … `max_mob`, the last one `as_of`), the loans of the month,
    /// those overdue at that day's end (an installment due before it and not settled by
    /// it) and those more than 30 days overdue. Replaces the stored curves.
    pub async fn refresh_vintages(
        &self,
        as_of: NaiveDate,
        max_mob: u32,
    ) -> Result<usize, StoreError> {
        let d = as_of.format(DATE).to_string();
        let mut conn = self.reader().acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for sql in [
            "CREATE TEMP TABLE IF NOT EXISTS vintage_late (loan_id BIGINT NOT NULL, vintage TEXT NOT NULL, due_date TEXT NOT NULL, settled_on TEXT)",
            "CREATE TEMP TABLE IF NOT EXISTS vintage_pts (vintage TEXT NOT NULL, mob BIGINT NOT NULL, point_date TEXT NOT NULL, point30 TEXT NOT NULL)",
            "DELETE FROM vintage_late",
            "DELETE FROM vintage_pts",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        let sizes = sqlx::query(
            "SELECT substr(disbursed_on, 1, 7) AS vintage, COUNT(*) AS n FROM loans WHERE disbursed_on <= $1
              GROUP BY substr(disbursed_on, 1, 7)",
        )
        .bind(&d)
        .fetch_all(&mut *tx)
        .await?;
        let mut loans_of: HashMap<String, i64> = HashMap::new();
        let mut points: Vec<(String, i64, String, String)> = Vec::new();
        for r in &sizes {
            let v: String = r.try_get("vintage")?;
            let n: i64 = r.try_get("n")?;
            let Some(first) = parse_month(&v) else {
                continue;
            };
            for (mob, date) in vintage_points(first, as_of, max_mob) {
                let p30 = date - chrono::Days::new(30);
                points.push((
                    v.clone(),
                    i64::from(mob),
                    date.format(DATE).to_string(),
                    p30.format(DATE).to_string(),
                ));
            }
            loans_of.insert(v, n);
        }
        for chunk in points.chunks(200) {
            let mut sql =
                String::from("INSERT INTO vintage_pts (vintage, mob, point_date, point30) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let b = i * 4 + 1;
                sql.push_str(&format!("(${}, ${}, ${}, ${})", b, b + 1, b + 2, b + 3));
            }
            let mut q = sqlx::query(&sql);
            for (v, mob, date, p30) in chunk {
                q = q.bind(v).bind(*mob).bind(date).bind(p30);
            }
            q.execute(&mut *tx).await?;
        }
        // Installments that were ever overdue: due before as_of, settled after their due
        // date or not at all, with something due.
        sqlx::query(
            "INSERT INTO vintage_late (loan_id, vintage, due_date, settled_on)
             SELECT i.loan_id, substr(l.disbursed_on, 1, 7), i.due_date, i.settled_on
               FROM loan_installments i JOIN loans l ON l.id = i.loan_id
              WHERE i.due_date < $1 AND (i.settled_on IS NULL OR i.settled_on > i.due_date)
                AND i.principal_due_fen + i.interest_due_fen + i.fee_due_fen > 0 AND l.disbursed_on <= $1",
        )
        .bind(&d)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT pt.vintage, pt.mob, pt.point_date,
                COUNT(DISTINCT t.loan_id) AS overdue,
                COUNT(DISTINCT CASE WHEN t.due_date < pt.point30 THEN t.loan_id END) AS overdue30
               FROM vintage_pts pt JOIN vintage_late t ON t.vintage = pt.vintage AND t.due_date < pt.point_date
                AND (t.settled_on IS NULL OR t.settled_on > pt.point_date)
              GROUP BY pt.vintage, pt.mob, pt.point_date",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut found: HashMap<(String, i64), (i64, i64)> = HashMap::new();
        for r in &rows {
            found.insert(
                (r.try_get("vintage")?, r.try_get("mob")?),
                (r.try_get("overdue")?, r.try_get("overdue30")?),
            );
        }
        tx.rollback().await?;
        drop(conn);
        let mut w = self.begin().await?;
        sqlx::query("DELETE FROM portfolio_vintages")
            .execute(&mut *w)
            .await?;
        for chunk in points.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO portfolio_vintages (vintage, mob, point_date, loans, overdue_loans, overdue30_loans, as_of) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let b = i * 7 + 1;
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b,
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            let mut q = sqlx::query(&sql);
            for (v, mob, date, _) in chunk {
                let (o, o30) = found.get(&(v.clone(), *mob)).copied().unwrap_or((0, 0));
                q = q
                    .bind(v)
                    .bind(*mob)
                    .bind(date)
                    .bind(loans_of.get(v).copied().unwrap_or(0))
                    .bind(o)
                    .bind(o30)
                    .bind(&d);
            }
            q.execute(&mut *w).await?;
        }
        w.commit().await?;
        Ok(points.len())
    }

    /// The stored vintage curves.
    pub async fn vintages(&self) -> Result<Vec<VintagePoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT vintage, mob, point_date, loans, overdue_loans, overdue30_loans FROM portfolio_vintages
              ORDER BY vintage, mob",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VintagePoint {
                    vintage: r.try_get("vintage")?,
                    mob: r.try_get("mob")?,
                    point_date: r.try_get("point_date")?,
                    loans: r.try_get("loans")?,
                    overdue_loans: r.try_get("overdue_loans")?,
                    overdue30_loans: r.try_get("overdue30_loans")?,
                })
            })
            .collect()
    }

    /// Non-M0 buckets of the loans open at the end of `date` (their last bucket change
    /// on or before it).
    async fn buckets_as_of(
        &self,
        date: &str,
        open_on: &str,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.loan_id, h.to_bucket FROM loan_bucket_history h JOIN loans l ON l.id = h.loan_id
              WHERE h.business_date <= $1 AND l.disbursed_on <= $2 AND (l.closed_on IS NULL OR l.closed_on > $2)
                AND h.id = (SELECT MAX(h2.id) FROM loan_bucket_history h2
                             WHERE h2.loan_id = h.loan_id AND h2.business_date <= $1)
                AND h.to_bucket <> 'M0'",
        )
        .bind(date)
        .bind(open_on)
        .fetch_all(self.reader())
        .await?;
        let mut m = HashMap::new();
        for r in rows {
            m.insert(r.try_get("loan_id")?, r.try_get("to_bucket")?);
        }
        Ok(m)
    }

    /// The facts of a roll-rate matrix from the end of `from` to the end of `to`.
    pub async fn roll_facts(&self, from: &str, to: &str) -> Result<RollFacts, StoreError> {
        let open_at_from: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM loans WHERE disbursed_on <= $1 AND (closed_on IS NULL OR closed_on > $1)",
        )
        .bind(from)
        .fetch_one(self.reader())
        .await?;
        let closed: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM loans WHERE disbursed_on <= $1 AND closed_on > $1 AND closed_on <= $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.reader())
        .await?;
        Ok(RollFacts {
            open_at_from,
            from: self.buckets_as_of(from, from).await?,
            to: self.buckets_as_of(to, from).await?,
            closed,
        })
    }
}
