//! Portfolio reports: roll-rate matrices between two closes and the month arithmetic of
//! vintage curves (overdue rate by disbursement month and months on book).

use crate::classify::CollectionBucket;
use chrono::{Datelike, Months, NaiveDate};
use serde::Serialize;

/// Where a loan went between two closes: a bucket, or closed (repaid or written off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RollTo {
    Bucket(CollectionBucket),
    Closed,
}

/// Counts of loans by bucket at the first close (rows, M0…M6+) and where they were at
/// the second (columns M0…M6+, then closed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RollMatrix {
    pub counts: [[u64; 8]; 7],
}

impl RollMatrix {
    pub fn add(&mut self, from: CollectionBucket, to: RollTo, n: u64) {
        let r = from as usize;
        let c = match to {
            RollTo::Bucket(b) => b as usize,
            RollTo::Closed => 7,
        };
        self.counts[r][c] += n;
    }

    pub fn row_total(&self, from: CollectionBucket) -> u64 {
        self.counts[from as usize].iter().sum()
    }

    /// Share of the loans in `from` at the first close that were in `to` at the second,
    /// in basis points (None when the row is empty).
    pub fn rate_bp(&self, from: CollectionBucket, to: RollTo) -> Option<u64> {
        let total = self.row_total(from);
        let c = match to {
            RollTo::Bucket(b) => b as usize,
            RollTo::Closed => 7,
        };
        (total > 0).then(|| (self.counts[from as usize][c] * 10_000 + total / 2) / total)
    }

    /// Share of `from` that rolled into a worse bucket, in basis points.
    pub fn roll_forward_bp(&self, from: CollectionBucket) -> Option<u64> {
        let total = self.row_total(from);
        let worse: u64 = self.counts[from as usize][(from as usize + 1)..7]
            .iter()
            .sum();
        (total > 0).then(|| (worse * 10_000 + total / 2) / total)
    }
}

/// `YYYY-MM` of a date.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The first day of a `YYYY-MM` month.
pub fn parse_month(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d").ok()
}

/// The last day of the month `k` months after the month starting on `first`.
pub fn month_end_after(first: NaiveDate, k: u32) -> Option<NaiveDate> {
    first
        .with_day(1)?
        .checked_add_months(Months::new(k + 1))?
        .pred_opt()
}

/// Month-end observation points of a vintage (months on book 1, 2, …) up to `as_of`:
/// `(mob, month end)`; the last point is `as_of` itself when the month is not over.
pub fn vintage_points(
    vintage_first: NaiveDate,
    as_of: NaiveDate,
    max_mob: u32,
) -> Vec<(u32, NaiveDate)> {
    let mut out = Vec::new();
    for k in 1..=max_mob {
        let Some(end) = month_end_after(vintage_first, k) else {
            break;
        };
        if end <= as_of {
            out.push((k, end));
        } else {
            if month_end_after(vintage_first, k - 1).is_some_and(|prev| prev < as_of) {
                out.push((k, as_of));
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use CollectionBucket::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn roll_rates() {
        let mut m = RollMatrix::default();
        m.add(M1, RollTo::Bucket(M2), 3);
        m.add(M1, RollTo::Bucket(M0), 6);
        m.add(M1, RollTo::Closed, 1);
        assert_eq!(m.row_total(M1), 10);
        assert_eq!(m.rate_bp(M1, RollTo::Bucket(M2)), Some(3_000));
        assert_eq!(m.rate_bp(M1, RollTo::Closed), Some(1_000));
        assert_eq!(m.roll_forward_bp(M1), Some(3_000));
        assert_eq!(m.rate_bp(M4, RollTo::Closed), None);
    }

    #[test]
    fn month_arithmetic() {
        assert_eq!(month_of(d(2026, 2, 14)), "2026-02");
        assert_eq!(parse_month("2026-02"), Some(d(2026, 2, 1)));
        assert_eq!(month_end_after(d(2026, 1, 1), 1), Some(d(2026, 2, 28)));
        assert_eq!(month_end_after(d(2026, 1, 1), 0), Some(d(2026, 1, 31)));
        let pts = vintage_points(d(2026, 8, 1), d(2026, 11, 29), 36);
        assert_eq!(
            pts,
            vec![
                (1, d(2026, 9, 30)),
                (2, d(2026, 10, 31)),
                (3, d(2026, 11, 29))
            ]
        );
        assert_eq!(vintage_points(d(2026, 11, 1), d(2026, 11, 29), 36), vec![]);
        assert_eq!(
            vintage_points(d(2026, 10, 1), d(2026, 11, 30), 36),
            vec![(1, d(2026, 11, 30))]
        );
    }
}
