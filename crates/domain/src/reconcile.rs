//! Funder reconciliation (资金方对账): a funder's daily repayment file against our
//! repayments. Both sides are summed per loan and value date; a key on one side only
//! is a break, and so is a key whose sums differ.
//!
//! - **missing**: the funder reports money we have no record of;
//! - **extra**: we recorded money the funder does not report;
//! - **amount_differs**: both report the loan on that day with different totals.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One movement on either side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Our loan reference (what the funder's line resolved to, or the raw reference
    /// from the file when it names no loan of ours).
    pub loan_ref: String,
    /// Our loan, when known.
    pub loan_id: Option<i64>,
    pub value_date: NaiveDate,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    Missing,
    Extra,
    AmountDiffers,
}

impl BreakKind {
    pub const ALL: [BreakKind; 3] = [
        BreakKind::Missing,
        BreakKind::Extra,
        BreakKind::AmountDiffers,
    ];

    pub fn code(self) -> &'static str {
        match self {
            BreakKind::Missing => "missing",
            BreakKind::Extra => "extra",
            BreakKind::AmountDiffers => "amount_differs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == s)
    }
}

/// A difference to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub kind: BreakKind,
    pub loan_ref: String,
    pub loan_id: Option<i64>,
    pub value_date: NaiveDate,
    /// What the funder reports (0 for `extra`).
    pub funder_fen: i64,
    /// What we recorded (0 for `missing`).
    pub ours_fen: i64,
}

/// The result of matching.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Matching {
    /// Keys (loan, day) whose totals agree.
    pub matched: usize,
    pub breaks: Vec<Break>,
}

type Key = (String, NaiveDate);

fn sums(side: &[Movement]) -> BTreeMap<Key, (i64, Option<i64>)> {
    let mut m: BTreeMap<Key, (i64, Option<i64>)> = BTreeMap::new();
    for mv in side {
        let e = m
            .entry((mv.loan_ref.clone(), mv.value_date))
            .or_insert((0, mv.loan_id));
        e.0 += mv.amount_fen;
        e.1 = e.1.or(mv.loan_id);
    }
    m
}

/// Matches the funder's movements against ours, per loan and value date. Breaks come
/// ordered by loan reference and date.
pub fn reconcile(funder: &[Movement], ours: &[Movement]) -> Matching {
    let f = sums(funder);
    let o = sums(ours);
    let mut out = Matching::default();
    let keys: std::collections::BTreeSet<&Key> = f.keys().chain(o.keys()).collect();
    for key in keys {
        let (loan_ref, value_date) = (key.0.clone(), key.1);
        match (f.get(key), o.get(key)) {
            (Some(&(fa, fid)), Some(&(oa, oid))) => {
                if fa == oa {
                    out.matched += 1;
                } else {
                    out.breaks.push(Break {
                        kind: BreakKind::AmountDiffers,
                        loan_ref,
                        loan_id: oid.or(fid),
                        value_date,
                        funder_fen: fa,
                        ours_fen: oa,
                    });
                }
            }
            (Some(&(fa, fid)), None) => out.breaks.push(Break {
                kind: BreakKind::Missing,
                loan_ref,
                loan_id: fid,
                value_date,
                funder_fen: fa,
                ours_fen: 0,
            }),
            (None, Some(&(oa, oid))) => out.breaks.push(Break {
                kind: BreakKind::Extra,
                loan_ref,
                loan_id: oid,
                value_date,
                funder_fen: 0,
                ours_fen: oa,
            }),
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(r: &str, id: Option<i64>, day: u32, fen: i64) -> Movement {
        Movement {
            loan_ref: r.into(),
            loan_id: id,
            value_date: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            amount_fen: fen,
        }
    }

    #[test]
    fn three_kinds_of_break() {
        let funder = [
            mv("L1", Some(1), 28, 100_00),
            mv("L2", Some(2), 28, 50_00),
            mv("L2", Some(2), 28, 50_00), // two lines, one repayment of ours: sums agree
            mv("L3", Some(3), 28, 70_00),
            mv("X9", None, 28, 10_00), // a loan we do not know
        ];
        let ours = [
            mv("L1", Some(1), 28, 100_00),
            mv("L2", Some(2), 28, 100_00),
            mv("L3", Some(3), 28, 75_00),
            mv("L4", Some(4), 28, 20_00),
        ];
        let m = reconcile(&funder, &ours);
        assert_eq!(m.matched, 2);
        let kinds: Vec<_> = m
            .breaks
            .iter()
            .map(|b| (b.loan_ref.as_str(), b.kind, b.funder_fen, b.ours_fen))
            .collect();
        assert_eq!(
            kinds,
            [
                ("L3", BreakKind::AmountDiffers, 70_00, 75_00),
                ("L4", BreakKind::Extra, 0, 20_00),
                ("X9", BreakKind::Missing, 10_00, 0),
            ]
        );
        assert_eq!(reconcile(&ours, &ours).breaks, vec![]);
    }

    #[test]
    fn same_loan_other_day_is_two_breaks() {
        let m = reconcile(&[mv("L1", Some(1), 28, 5)], &[mv("L1", Some(1), 27, 5)]);
        assert_eq!(m.matched, 0);
        assert_eq!(m.breaks.len(), 2);
    }
}
