//! The injected clock. Domain and engine code never read the system time directly
//! (`clippy.toml` bans it); they receive a [`Clock`], so tests can fix or move time.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// The business time zone. China has used UTC+8 without daylight saving since 1991,
/// so a fixed offset is exact for every date a loan book can hold.
pub const BUSINESS_UTC_OFFSET_SECS: i32 = 8 * 3600;

/// Source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;

    /// The current business date (Asia/Shanghai).
    fn today(&self) -> NaiveDate {
        business_date(self.now())
    }
}

/// The business date (Asia/Shanghai) of an instant.
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    match FixedOffset::east_opt(BUSINESS_UTC_OFFSET_SECS) {
        Some(tz) => at.with_timezone(&tz).date_naive(),
        None => at.date_naive(),
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place allowed to read the system time
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved; for tests and replays.
#[derive(Debug)]
pub struct FixedClock {
    millis: AtomicI64,
}

impl FixedClock {
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            millis: AtomicI64::new(at.timestamp_millis()),
        }
    }

    /// Moves the clock forward (or back, with a negative value) by `millis`.
    pub fn advance_millis(&self, millis: i64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.millis.store(at.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.millis.load(Ordering::SeqCst))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn business_date_is_shanghai_date() {
        // 2026-01-01 17:30 UTC is already 2026-01-02 01:30 in Shanghai.
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 17, 30, 0)
            .single()
            .unwrap();
        let clock = FixedClock::at(at);
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
        clock.advance_millis(-2 * 3600 * 1000);
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
    }
}
