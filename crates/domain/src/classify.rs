//! Loan risk classification: the five tiers (五级分类, 银保监会/人民银行令〔2023〕第1号),
//! the thresholds as a [`ClassificationPolicy`] whose defaults are the regulatory
//! figures, and the collection buckets (M0, M1 … M6+) by days past due.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The five tiers, ordered from best to worst (`Normal < … < Loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FiveTierClass {
    /// 正常
    Normal,
    /// 关注
    SpecialMention,
    /// 次级
    Substandard,
    /// 可疑
    Doubtful,
    /// 损失
    Loss,
}

impl FiveTierClass {
    pub const ALL: [FiveTierClass; 5] = [
        FiveTierClass::Normal,
        FiveTierClass::SpecialMention,
        FiveTierClass::Substandard,
        FiveTierClass::Doubtful,
        FiveTierClass::Loss,
    ];

    pub fn zh_name(self) -> &'static str {
        match self {
            FiveTierClass::Normal => "正常",
            FiveTierClass::SpecialMention => "关注",
            FiveTierClass::Substandard => "次级",
            FiveTierClass::Doubtful => "可疑",
            FiveTierClass::Loss => "损失",
        }
    }

    /// Stable code, as in JSON.
    pub fn code(self) -> &'static str {
        match self {
            FiveTierClass::Normal => "normal",
            FiveTierClass::SpecialMention => "special_mention",
            FiveTierClass::Substandard => "substandard",
            FiveTierClass::Doubtful => "doubtful",
            FiveTierClass::Loss => "loss",
        }
    }

    /// Parses a code or the Chinese name.
    pub fn parse(s: &str) -> Result<Self, ClassifyError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.code() == s || c.zh_name() == s)
            .ok_or(ClassifyError::UnknownTier)
    }

    /// Non-performing loan: 次级, 可疑 or 损失.
    pub fn is_npl(self) -> bool {
        self >= FiveTierClass::Substandard
    }

    // --- Daily close (issue #8 items 3–7) ---

    /// 0 (正常) … 4 (损失): the order the set-based close compares tiers in SQL.
    pub fn rank(self) -> u8 {
        match self {
            FiveTierClass::Normal => 0,
            FiveTierClass::SpecialMention => 1,
            FiveTierClass::Substandard => 2,
            FiveTierClass::Doubtful => 3,
            FiveTierClass::Loss => 4,
        }
    }

    /// The tier of a [`rank`](Self::rank); ranks above 4 are 损失.
    pub fn from_rank(rank: u8) -> Self {
        Self::ALL[usize::from(rank.min(4))]
    }

    /// English name, for the UI and exports.
    pub fn en_name(self) -> &'static str {
        match self {
            FiveTierClass::Normal => "Normal",
            FiveTierClass::SpecialMention => "Special mention",
            FiveTierClass::Substandard => "Substandard",
            FiveTierClass::Doubtful => "Doubtful",
            FiveTierClass::Loss => "Loss",
        }
    }
}

impl fmt::Display for FiveTierClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh_name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("unknown five-tier class")]
    UnknownTier,
    #[error("classification thresholds must increase: tolerance < substandard < doubtful < loss")]
    ThresholdsNotIncreasing,
}

impl ClassifyError {
    /// Stable machine code, for the API layer to map to a field error.
    pub fn code(&self) -> &'static str {
        match self {
            ClassifyError::UnknownTier => "classify.unknown_tier",
            ClassifyError::ThresholdsNotIncreasing => "classify.thresholds_not_increasing",
        }
    }
}

/// Day thresholds of the classification floor. A loan more than `x_after_days` days past
/// due is at least tier `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationPolicy {
    /// Days past due tolerated as a technical delay before 关注 (default 0, i.e. any
    /// overdue day makes the loan 关注; the rules leave this to the institution (verify)).
    pub technical_delay_tolerance_days: u32,
    /// 次级 when days past due exceed this (default 90).
    pub substandard_after_days: u32,
    /// 可疑 when days past due exceed this (default 270).
    pub doubtful_after_days: u32,
    /// 损失 when days past due exceed this (default 360).
    pub loss_after_days: u32,
}

impl Default for ClassificationPolicy {
    fn default() -> Self {
        ClassificationPolicy {
            technical_delay_tolerance_days: 0,
            substandard_after_days: 90,
            doubtful_after_days: 270,
            loss_after_days: 360,
        }
    }
}

impl ClassificationPolicy {
    /// Credit-card thresholds: 关注 1–90, 次级 91–120, 可疑 121–180, 损失 > 180.
    pub fn credit_card() -> Self {
        ClassificationPolicy {
            technical_delay_tolerance_days: 0,
            substandard_after_days: 90,
            doubtful_after_days: 120,
            loss_after_days: 180,
        }
    }

    /// Checks that the thresholds increase strictly.
    pub fn validate(self) -> Result<Self, ClassifyError> {
        if self.technical_delay_tolerance_days < self.substandard_after_days
            && self.substandard_after_days < self.doubtful_after_days
            && self.doubtful_after_days < self.loss_after_days
        {
            Ok(self)
        } else {
            Err(ClassifyError::ThresholdsNotIncreasing)
        }
    }

    /// The floor set by days past due alone.
    pub fn floor_for_dpd(&self, days_past_due: u32) -> FiveTierClass {
        if days_past_due > self.loss_after_days {
            FiveTierClass::Loss
        } else if days_past_due > self.doubtful_after_days {
            FiveTierClass::Doubtful
        } else if days_past_due > self.substandard_after_days {
            FiveTierClass::Substandard
        } else if days_past_due > self.technical_delay_tolerance_days {
            FiveTierClass::SpecialMention
        } else {
            FiveTierClass::Normal
        }
    }

    /// Tier = max(floor by days past due, manual floor, 关注 while a restructured loan is
    /// in its observation period). An approved manual floor can only make the class
    /// worse, never better than what the days past due demand.
    pub fn classify(&self, facts: &ClassificationFacts) -> FiveTierClass {
        let mut tier = self.floor_for_dpd(facts.days_past_due);
        if let Some(manual) = facts.manual_floor {
            tier = tier.max(manual);
        }
        if facts.restructured_in_observation {
            tier = tier.max(FiveTierClass::SpecialMention);
        }
        tier
    }
}

/// The observation period of a restructured loan (重组观察期): at least `min_periods`
/// repayment periods and `min_months` months, counted from the later of the
/// restructuring and the last day the loan was past due (a missed payment restarts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationPolicy {
    /// Default 12 (one year).
    pub min_months: u32,
    /// Default 2 repayment periods.
    pub min_periods: u32,
}

impl Default for ObservationPolicy {
    fn default() -> Self {
        ObservationPolicy {
            min_months: 12,
            min_periods: 2,
        }
    }
}

impl ObservationPolicy {
    /// The last day of the observation period that starts on `from`: the later of
    /// `from` + `min_months` and the due date of the `min_periods`-th installment due
    /// after `from` (`due_dates` in any order; when the loan has fewer installments left,
    /// its `maturity`).
    pub fn ends_on(
        &self,
        from: chrono::NaiveDate,
        due_dates: &[chrono::NaiveDate],
        maturity: chrono::NaiveDate,
    ) -> chrono::NaiveDate {
        let by_months = from
            .checked_add_months(chrono::Months::new(self.min_months))
            .unwrap_or(chrono::NaiveDate::MAX);
        let mut after: Vec<_> = due_dates.iter().copied().filter(|d| *d > from).collect();
        after.sort_unstable();
        let by_periods = if self.min_periods == 0 {
            from
        } else {
            after
                .get(self.min_periods as usize - 1)
                .copied()
                .unwrap_or(maturity.max(from))
        };
        by_months.max(by_periods)
    }
}

/// The facts about one loan that decide its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassificationFacts {
    pub days_past_due: u32,
    /// An approved manual classification floor.
    pub manual_floor: Option<FiveTierClass>,
    /// Restructured and still inside the observation period (at least two repayment
    /// periods and one year, restarted by a missed payment); tracked by the caller.
    pub restructured_in_observation: bool,
}

/// Collection bucket by days past due: M0 current, M1 = 1–30, M2 = 31–60, …,
/// M5 = 121–150, M6+ = over 150.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CollectionBucket {
    M0,
    M1,
    M2,
    M3,
    M4,
    M5,
    #[serde(rename = "M6+")]
    M6Plus,
}

impl CollectionBucket {
    // --- Daily close (issue #8 items 3–7) ---
    pub const ALL: [CollectionBucket; 7] = [
        CollectionBucket::M0,
        CollectionBucket::M1,
        CollectionBucket::M2,
        CollectionBucket::M3,
        CollectionBucket::M4,
        CollectionBucket::M5,
        CollectionBucket::M6Plus,
    ];

    /// The largest days past due of each bucket M0…M5 (M6+ has no upper bound): the
    /// thresholds the set-based close writes into its `CASE` expression.
    pub const UPPER_DPD: [u32; 6] = [0, 30, 60, 90, 120, 150];

    /// Parses a label (`M0` … `M6+`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.label() == s.trim())
    }

    /// In collection: any bucket but M0.
    pub fn is_delinquent(self) -> bool {
        self != CollectionBucket::M0
    }

    pub fn from_dpd(days_past_due: u32) -> Self {
        match days_past_due {
            0 => CollectionBucket::M0,
            1..=30 => CollectionBucket::M1,
            31..=60 => CollectionBucket::M2,
            61..=90 => CollectionBucket::M3,
            91..=120 => CollectionBucket::M4,
            121..=150 => CollectionBucket::M5,
            _ => CollectionBucket::M6Plus,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CollectionBucket::M0 => "M0",
            CollectionBucket::M1 => "M1",
            CollectionBucket::M2 => "M2",
            CollectionBucket::M3 => "M3",
            CollectionBucket::M4 => "M4",
            CollectionBucket::M5 => "M5",
            CollectionBucket::M6Plus => "M6+",
        }
    }
}

impl fmt::Display for CollectionBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FiveTierClass::*;

    #[test]
    fn default_floors_match_rules() {
        let p = ClassificationPolicy::default();
        let cases = [
            (0, Normal),
            (1, SpecialMention),
            (90, SpecialMention),
            (91, Substandard),
            (270, Substandard),
            (271, Doubtful),
            (360, Doubtful),
            (361, Loss),
        ];
        for (dpd, tier) in cases {
            assert_eq!(p.floor_for_dpd(dpd), tier, "dpd {dpd}");
        }
    }

    #[test]
    fn tolerance_and_manual_floor() {
        let p = ClassificationPolicy {
            technical_delay_tolerance_days: 3,
            ..Default::default()
        };
        assert_eq!(p.floor_for_dpd(3), Normal);
        assert_eq!(p.floor_for_dpd(4), SpecialMention);
        let facts = ClassificationFacts {
            days_past_due: 0,
            manual_floor: Some(Doubtful),
            restructured_in_observation: false,
        };
        assert_eq!(p.classify(&facts), Doubtful);
        // A manual floor never improves on the DPD floor.
        let facts = ClassificationFacts {
            days_past_due: 400,
            manual_floor: Some(SpecialMention),
            ..Default::default()
        };
        assert_eq!(p.classify(&facts), Loss);
        let facts = ClassificationFacts {
            restructured_in_observation: true,
            ..Default::default()
        };
        assert_eq!(p.classify(&facts), SpecialMention);
    }

    #[test]
    fn npl_and_names() {
        assert!(!Normal.is_npl() && !SpecialMention.is_npl());
        assert!(Substandard.is_npl() && Doubtful.is_npl() && Loss.is_npl());
        assert_eq!(Substandard.zh_name(), "次级");
        assert_eq!(FiveTierClass::parse("可疑"), Ok(Doubtful));
        assert_eq!(FiveTierClass::parse("loss"), Ok(Loss));
        assert_eq!(FiveTierClass::parse("bad"), Err(ClassifyError::UnknownTier));
    }

    #[test]
    fn policy_validation_and_credit_card() {
        assert!(ClassificationPolicy::default().validate().is_ok());
        let cc = ClassificationPolicy::credit_card().validate().unwrap();
        assert_eq!(cc.floor_for_dpd(120), Substandard);
        assert_eq!(cc.floor_for_dpd(121), Doubtful);
        assert_eq!(cc.floor_for_dpd(181), Loss);
        let bad = ClassificationPolicy {
            doubtful_after_days: 80,
            ..Default::default()
        };
        assert_eq!(bad.validate(), Err(ClassifyError::ThresholdsNotIncreasing));
    }

    #[test]
    fn ranks_round_trip_and_order() {
        for t in FiveTierClass::ALL {
            assert_eq!(FiveTierClass::from_rank(t.rank()), t);
        }
        assert_eq!(FiveTierClass::from_rank(9), Loss);
        assert!(FiveTierClass::ALL
            .windows(2)
            .all(|w| w[0].rank() < w[1].rank()));
        for b in CollectionBucket::ALL {
            assert_eq!(CollectionBucket::parse(b.label()), Some(b));
        }
        // The thresholds match from_dpd at every edge.
        for (i, upper) in CollectionBucket::UPPER_DPD.iter().enumerate() {
            assert_eq!(CollectionBucket::from_dpd(*upper), CollectionBucket::ALL[i]);
            assert_eq!(
                CollectionBucket::from_dpd(*upper + 1),
                CollectionBucket::ALL[i + 1]
            );
        }
    }

    #[test]
    fn observation_lasts_a_year_and_two_periods() {
        let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let p = ObservationPolicy::default();
        let monthly: Vec<_> = (1..=24)
            .map(|k| {
                d(2026, 1, 15)
                    .checked_add_months(chrono::Months::new(k))
                    .unwrap()
            })
            .collect();
        // A year is longer than two monthly periods.
        assert_eq!(
            p.ends_on(d(2026, 3, 1), &monthly, d(2028, 1, 15)),
            d(2027, 3, 1)
        );
        // Quarterly payments: the second period after ends later than a year.
        let quarterly: Vec<_> = (1..=8)
            .map(|k| {
                d(2026, 1, 15)
                    .checked_add_months(chrono::Months::new(3 * k))
                    .unwrap()
            })
            .collect();
        let p2 = ObservationPolicy {
            min_months: 3,
            min_periods: 2,
        };
        assert_eq!(
            p2.ends_on(d(2026, 3, 1), &quarterly, d(2028, 1, 15)),
            d(2026, 7, 15)
        );
        // Fewer installments left than periods: the maturity.
        let p3 = ObservationPolicy {
            min_months: 1,
            min_periods: 2,
        };
        assert_eq!(
            p3.ends_on(d(2027, 11, 1), &quarterly, d(2028, 1, 15)),
            d(2028, 1, 15)
        );
    }

    #[test]
    fn buckets() {
        use CollectionBucket::*;
        let cases = [
            (0, M0),
            (1, M1),
            (30, M1),
            (31, M2),
            (90, M3),
            (120, M4),
            (150, M5),
            (151, M6Plus),
            (10_000, M6Plus),
        ];
        for (dpd, b) in cases {
            assert_eq!(CollectionBucket::from_dpd(dpd), b, "dpd {dpd}");
        }
        assert_eq!(M6Plus.to_string(), "M6+");
        assert_eq!(serde_json::to_string(&M6Plus).unwrap(), "\"M6+\"");
    }
}
