//! Collections (催收): contact channels and outcomes, promises to pay, the compliance
//! guards on contacting a debtor (allowed hours and a daily limit per person, both
//! settings), agency commission, and why a case closes.
//!
//! The guards follow the industry's conduct rules (no contact late at night or early in
//! the morning, no harassment by repeated calls): the defaults are 08:00–21:00 local time
//! (Asia/Shanghai) and 3 contacts a day per debtor, counted over all of the debtor's
//! cases.

use crate::money::{div_round_half_up, Fen};
use chrono::{NaiveDate, NaiveTime, Timelike};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $( $variant:ident => $code:literal, $zh:literal, $en:literal; )* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $( $variant, )* }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            pub fn code(self) -> &'static str {
                match self { $( $name::$variant => $code, )* }
            }

            pub fn zh_name(self) -> &'static str {
                match self { $( $name::$variant => $zh, )* }
            }

            pub fn en_name(self) -> &'static str {
                match self { $( $name::$variant => $en, )* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == s.trim())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_enum! {
    /// How the debtor was contacted.
    Channel {
        Phone => "phone", "电话", "Phone";
        Sms => "sms", "短信", "SMS";
        Wechat => "wechat", "微信", "WeChat";
        Letter => "letter", "信函", "Letter";
        Visit => "visit", "外访", "Visit";
        Email => "email", "电子邮件", "E-mail";
    }
}

code_enum! {
    /// What came of a contact.
    Outcome {
        PromiseToPay => "promise_to_pay", "承诺还款", "Promise to pay";
        NoAnswer => "no_answer", "未接通", "No answer";
        LeftMessage => "left_message", "已留言", "Left a message";
        Refused => "refused", "拒绝还款", "Refused";
        Dispute => "dispute", "有异议", "Disputes the debt";
        WrongNumber => "wrong_number", "号码错误", "Wrong number";
        ThirdParty => "third_party", "第三方接听", "Third party answered";
        Paid => "paid", "称已还款", "Says paid";
        Other => "other", "其他", "Other";
    }
}

code_enum! {
    /// Why a case closed.
    CloseReason {
        Cured => "cured", "已结清逾期", "Arrears cleared";
        PaidOff => "paid_off", "贷款已结清", "Loan repaid";
        WrittenOff => "written_off", "已核销", "Written off";
        GuaranteePaid => "guarantee_paid", "已代偿", "Guarantee paid out";
        Other => "other", "其他", "Other";
    }
}

/// The hours in which a debtor may be contacted, local time, `start` inclusive and
/// `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for ContactHours {
    /// 08:00–21:00.
    fn default() -> Self {
        ContactHours {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl ContactHours {
    /// Parses `"08:00-21:00"` (or with `–`); start must be before end.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a range of hours such as 08:00-21:00");
        let (a, b) = s
            .split_once('-')
            .or_else(|| s.split_once('–'))
            .ok_or_else(bad)?;
        let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (t(a)?, t(b)?);
        if start >= end {
            return Err(format!("`{s}`: the start must be before the end"));
        }
        Ok(ContactHours { start, end })
    }

    pub fn allows(&self, local: NaiveTime) -> bool {
        local >= self.start && local < self.end
    }
}

impl fmt::Display for ContactHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}–{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

/// The compliance guards on contacting a debtor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPolicy {
    pub hours: ContactHours,
    /// Contacts a day per debtor, over all their cases (default 3).
    pub daily_limit: u32,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        ContactPolicy {
            hours: ContactHours::default(),
            daily_limit: 3,
        }
    }
}

/// Why a contact may not happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContactRefusal {
    #[error("debtors may be contacted only between {hours} local time; it is {}", now.format("%H:%M"))]
    OutsideHours { hours: ContactHours, now: NaiveTime },
    #[error("this debtor was already contacted {made} time(s) today; the limit is {limit} a day")]
    DailyLimit { made: u32, limit: u32 },
}

impl ContactRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ContactRefusal::OutsideHours { .. } => "collection.outside_hours",
            ContactRefusal::DailyLimit { .. } => "collection.daily_limit",
        }
    }
}

impl ContactPolicy {
    /// May the debtor be contacted at `local` when `made` contacts were logged today?
    pub fn check(&self, local: NaiveTime, made: u32) -> Result<(), ContactRefusal> {
        if !self.hours.allows(local) {
            return Err(ContactRefusal::OutsideHours {
                hours: self.hours,
                now: local,
            });
        }
        if made >= self.daily_limit {
            return Err(ContactRefusal::DailyLimit {
                made,
                limit: self.daily_limit,
            });
        }
        Ok(())
    }
}

/// A promise to pay, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Promise {
    pub amount: Fen,
    pub date: NaiveDate,
}

/// Why a promise to pay is not acceptable, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromiseError {
    #[error("a promise to pay needs an amount above 0")]
    Amount,
    #[error("a promise to pay needs a date, today or later")]
    Date,
    #[error("only a promise-to-pay outcome carries an amount and a date")]
    NotAPromise,
}

impl PromiseError {
    pub fn field(&self) -> &'static str {
        match self {
            PromiseError::Amount => "promised_amount",
            PromiseError::Date | PromiseError::NotAPromise => "promised_date",
        }
    }
}

/// Checks the promise fields against the outcome: a promise to pay needs both, dated
/// today or later (at most a year ahead); other outcomes carry neither.
pub fn promise(
    outcome: Outcome,
    amount: Option<Fen>,
    date: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<Option<Promise>, PromiseError> {
    if outcome != Outcome::PromiseToPay {
        return if amount.is_some() || date.is_some() {
            Err(PromiseError::NotAPromise)
        } else {
            Ok(None)
        };
    }
    let amount = amount
        .filter(|a| a.is_positive())
        .ok_or(PromiseError::Amount)?;
    let date = date
        .filter(|d| *d >= today && (*d - today).num_days() <= 366)
        .ok_or(PromiseError::Date)?;
    Ok(Some(Promise { amount, date }))
}

/// Agency commission: `rate` × recovered, half-up to the fen.
pub fn commission(recovered: Fen, rate: Decimal) -> Fen {
    if !recovered.is_positive() || rate <= Decimal::ZERO {
        return Fen::ZERO;
    }
    // rate has at most 28 digits; scale it to an integer over 10^s.
    let scale = rate.scale();
    let mantissa = rate.mantissa();
    let v = div_round_half_up(
        i128::from(recovered.as_fen()) * mantissa,
        10_i128.pow(scale),
    );
    Fen::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Validates a commission rate: more than 0 and at most 0.5 (50 %).
pub fn parse_commission_rate(s: &str) -> Result<Decimal, String> {
    let r: Decimal = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a rate such as 0.15"))?;
    if r <= Decimal::ZERO || r > Decimal::new(5, 1) {
        return Err("a commission rate is more than 0 and at most 0.5 (50 %)".into());
    }
    Ok(r.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn hours_are_half_open_and_parse() {
        let p = ContactPolicy::default();
        assert!(p.check(t(8, 0), 0).is_ok());
        assert!(p.check(t(20, 59), 2).is_ok());
        assert_eq!(
            p.check(t(21, 0), 0),
            Err(ContactRefusal::OutsideHours {
                hours: ContactHours::default(),
                now: t(21, 0)
            })
        );
        assert!(p.check(t(7, 59), 0).is_err());
        assert_eq!(
            p.check(t(10, 0), 3),
            Err(ContactRefusal::DailyLimit { made: 3, limit: 3 })
        );
        let h = ContactHours::parse("09:30-18:00").unwrap();
        assert_eq!(h.to_string(), "09:30–18:00");
        assert!(ContactHours::parse("18:00-09:00").is_err());
        assert!(ContactHours::parse("nine to five").is_err());
        let msg = p.check(t(22, 15), 0).unwrap_err().to_string();
        assert!(
            msg.contains("08:00–21:00") && msg.contains("22:15"),
            "{msg}"
        );
    }

    #[test]
    fn promises() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let tomorrow = today.succ_opt().unwrap();
        let a = Some(Fen::new(100_000));
        assert_eq!(
            promise(Outcome::PromiseToPay, a, Some(tomorrow), today),
            Ok(Some(Promise {
                amount: Fen::new(100_000),
                date: tomorrow
            }))
        );
        assert_eq!(
            promise(Outcome::PromiseToPay, None, Some(tomorrow), today),
            Err(PromiseError::Amount)
        );
        assert_eq!(
            promise(Outcome::PromiseToPay, a, today.pred_opt(), today),
            Err(PromiseError::Date)
        );
        assert_eq!(
            promise(Outcome::NoAnswer, a, None, today),
            Err(PromiseError::NotAPromise)
        );
        assert_eq!(promise(Outcome::NoAnswer, None, None, today), Ok(None));
    }

    #[test]
    fn commission_is_rate_times_recovered_half_up() {
        assert_eq!(
            commission(Fen::new(1_000_000), dec!(0.15)),
            Fen::new(150_000)
        );
        // 333.33 × 0.125 = 41.66625 → 41.67
        assert_eq!(commission(Fen::new(33_333), dec!(0.125)), Fen::new(4_167));
        assert_eq!(commission(Fen::ZERO, dec!(0.2)), Fen::ZERO);
        assert!(parse_commission_rate("0.6").is_err());
        assert!(parse_commission_rate("0").is_err());
        assert_eq!(parse_commission_rate(" 0.150 ").unwrap(), dec!(0.15));
    }

    #[test]
    fn codes_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.code()), Some(*c));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.code()), Some(*o));
        }
        for r in CloseReason::ALL {
            assert_eq!(CloseReason::parse(r.code()), Some(*r));
        }
    }
}
