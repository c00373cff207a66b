//! Credit limits (授信额度, issue #7 item 4): lines per customer and per enterprise group,
//! utilisation, maker-checker adjustments, freezes and expiry — the rules, without I/O.
//!
//! * A **customer line** caps what one customer may draw. Draws reserve part of it (the
//!   loans code reserves at contract and releases on repayment or cancellation).
//! * A **group line** is set on an enterprise and caps the sum of what its group draws:
//!   the enterprise itself and every person linked to it in `customer_relations` (legal
//!   representative, beneficial owners, actual controllers, shareholders). A person linked
//!   to two enterprises counts against both groups.
//! * A draw is refused on a frozen, expired or closed line, on a line past its
//!   `valid_until` date (even before the expiry job has marked it), and beyond the
//!   available amount of the customer line or of any group line over the customer.
//! * Changing a line (a new line, a new amount or end date, lifting a freeze) is
//!   requested by one person and approved by another ([`check_four_eyes`]). Freezing is
//!   immediate: it only protects.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::Fen;

/// Whose line it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Customer,
    /// Set on an enterprise; covers its group.
    Group,
}

impl LimitScope {
    pub const ALL: &'static [LimitScope] = &[LimitScope::Customer, LimitScope::Group];
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Customer => "customer",
            LimitScope::Group => "group",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(LimitScope::Customer),
            "group" => Some(LimitScope::Group),
            _ => None,
        }
    }
}

/// Where a line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    Active,
    /// No new draws; existing ones stand.
    Frozen,
    /// Past `valid_until` (set by the daily expiry job).
    Expired,
    Closed,
}

impl LimitStatus {
    pub const ALL: &'static [LimitStatus] = &[
        LimitStatus::Active,
        LimitStatus::Frozen,
        LimitStatus::Expired,
        LimitStatus::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LimitStatus::Active => "active",
            LimitStatus::Frozen => "frozen",
            LimitStatus::Expired => "expired",
            LimitStatus::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(LimitStatus::Active),
            "frozen" => Some(LimitStatus::Frozen),
            "expired" => Some(LimitStatus::Expired),
            "closed" => Some(LimitStatus::Closed),
            _ => None,
        }
    }
}

/// The state of a line that a draw is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub scope: LimitScope,
    pub amount: Fen,
    pub used: Fen,
    pub status: LimitStatus,
    pub valid_until: NaiveDate,
}

impl Line {
    /// What may still be drawn (never negative: a cut line may be over-used).
    pub fn available(&self) -> Fen {
        Fen::new((self.amount.as_fen() - self.used.as_fen()).max(0))
    }

    /// Whether the line is past its end date on `today`.
    pub fn lapsed(&self, today: NaiveDate) -> bool {
        today > self.valid_until
    }
}

/// Why a draw was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the amount must be more than zero")]
    NotPositive,
    #[error("the customer has no credit line")]
    NoLine,
    #[error("the {scope} credit line is frozen")]
    Frozen { scope: &'static str },
    #[error("the {scope} credit line expired on {valid_until}")]
    Expired {
        scope: &'static str,
        valid_until: NaiveDate,
    },
    #[error("the {scope} credit line is closed")]
    Closed { scope: &'static str },
    #[error(
        "{requested} exceeds the {scope} line's available {available} (limit {limit}, used {used})"
    )]
    Exceeded {
        scope: &'static str,
        requested: Fen,
        available: Fen,
        limit: Fen,
        used: Fen,
    },
}

impl Refusal {
    /// Stable code for the problem body.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotPositive => "limit.not_positive",
            Refusal::NoLine => "limit.no_line",
            Refusal::Frozen { .. } => "limit.frozen",
            Refusal::Expired { .. } => "limit.expired",
            Refusal::Closed { .. } => "limit.closed",
            Refusal::Exceeded { .. } => "limit.exceeded",
        }
    }
}

/// May `amount` be drawn on `line` on `today`? `used` may be the sum of a group.
pub fn check_draw(line: &Line, amount: Fen, today: NaiveDate) -> Result<(), Refusal> {
    let scope = line.scope.as_str();
    if !amount.is_positive() {
        return Err(Refusal::NotPositive);
    }
    match line.status {
        LimitStatus::Frozen => return Err(Refusal::Frozen { scope }),
        LimitStatus::Closed => return Err(Refusal::Closed { scope }),
        LimitStatus::Expired => {
            return Err(Refusal::Expired {
                scope,
                valid_until: line.valid_until,
            })
        }
        LimitStatus::Active => {}
    }
    if line.lapsed(today) {
        return Err(Refusal::Expired {
            scope,
            valid_until: line.valid_until,
        });
    }
    if amount > line.available() {
        return Err(Refusal::Exceeded {
            scope,
            requested: amount,
            available: line.available(),
            limit: line.amount,
            used: line.used,
        });
    }
    Ok(())
}

/// The amount after cutting `amount` by `percent` (1–100), rounded down to the fen.
pub fn cut(amount: Fen, percent: u32) -> Fen {
    let p = i128::from(percent.min(100));
    let kept = i128::from(amount.as_fen()) * (100 - p) / 100;
    Fen::new(i64::try_from(kept).unwrap_or(0).max(0))
}

/// Maker-checker: the approver must be someone other than the requester.
pub fn check_four_eyes(requested_by: i64, approver: i64) -> Result<(), &'static str> {
    if requested_by == approver {
        Err("the person who requested a limit change cannot approve it; another person with risk.limit.approve must")
    } else {
        Ok(())
    }
}

/// Checks a requested line: amount at least 0 and an end date after `today`.
pub fn check_request(
    amount: Fen,
    valid_until: NaiveDate,
    today: NaiveDate,
) -> Vec<(&'static str, &'static str, String)> {
    let mut errors = Vec::new();
    if amount.is_negative() {
        errors.push((
            "amount",
            "negative",
            "the amount must not be negative".to_owned(),
        ));
    }
    if valid_until <= today {
        errors.push((
            "valid_until",
            "not_future",
            format!("the end date must be after today ({today})"),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn line(amount: i64, used: i64, status: LimitStatus) -> Line {
        Line {
            scope: LimitScope::Customer,
            amount: Fen::new(amount),
            used: Fen::new(used),
            status,
            valid_until: d("2026-12-31"),
        }
    }

    #[test]
    fn draws_within_the_available_amount_only() {
        let today = d("2026-11-29");
        let l = line(10_000, 4_000, LimitStatus::Active);
        assert_eq!(l.available(), Fen::new(6_000));
        assert!(check_draw(&l, Fen::new(6_000), today).is_ok());
        let e = check_draw(&l, Fen::new(6_001), today).unwrap_err();
        assert_eq!(e.code(), "limit.exceeded");
        assert!(e.to_string().contains("available 60.00"), "{e}");
        assert_eq!(
            check_draw(&l, Fen::ZERO, today).unwrap_err(),
            Refusal::NotPositive
        );
    }

    #[test]
    fn frozen_expired_and_lapsed_lines_refuse() {
        let today = d("2026-11-29");
        let frozen = line(10_000, 0, LimitStatus::Frozen);
        assert_eq!(
            check_draw(&frozen, Fen::new(1), today).unwrap_err().code(),
            "limit.frozen"
        );
        let expired = line(10_000, 0, LimitStatus::Expired);
        assert_eq!(
            check_draw(&expired, Fen::new(1), today).unwrap_err().code(),
            "limit.expired"
        );
        // Past the end date but not yet marked by the job: refused all the same.
        let lapsed = Line {
            valid_until: d("2026-11-28"),
            ..line(10_000, 0, LimitStatus::Active)
        };
        assert_eq!(
            check_draw(&lapsed, Fen::new(1), today).unwrap_err().code(),
            "limit.expired"
        );
        // The last day is still valid.
        let last = Line {
            valid_until: today,
            ..lapsed
        };
        assert!(check_draw(&last, Fen::new(1), today).is_ok());
    }

    #[test]
    fn cuts_round_down_and_over_use_is_not_negative() {
        assert_eq!(cut(Fen::new(10_001), 50), Fen::new(5_000));
        assert_eq!(cut(Fen::new(10_000), 100), Fen::ZERO);
        let l = line(5_000, 8_000, LimitStatus::Active);
        assert_eq!(l.available(), Fen::ZERO);
    }

    #[test]
    fn four_eyes_and_requests() {
        assert!(check_four_eyes(1, 1).is_err());
        assert!(check_four_eyes(1, 2).is_ok());
        let today = d("2026-11-29");
        assert!(check_request(Fen::new(1), d("2027-01-01"), today).is_empty());
        assert_eq!(check_request(Fen::new(-1), today, today).len(), 2);
    }
}
