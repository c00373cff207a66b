//! Supervised binning with monotonic weight of evidence.
//!
//! ## Numeric features
//! 1. **Fine bins**: up to `max_initial_bins` (default 20) quantile bins over the sorted
//!    non-missing values. Cut points are observed values and intervals are right-closed,
//!    `(a, b]`, so heavy ties never split one value across bins.
//! 2. **Monotonic merge** (pool-adjacent-violators): walking left to right, a bin whose bad
//!    rate does not strictly continue the trend is merged into its left neighbour, and the
//!    pooled bin is re-checked against *its* left neighbour. Done for both trends (bad rate
//!    rising and falling with the value); the trend whose result has the larger IV wins
//!    (ties: rising). Merging adjacent bins of a monotone sequence keeps it monotone, so
//!    steps 3–4 preserve the trend.
//! 3. **Size and purity**: while some bin holds fewer than `min_bin_share` (default 5%) of
//!    all rows, or fewer than `min_class_count` goods or bads (so every WoE is finite),
//!    the smallest such bin is merged with the neighbour whose merge loses less IV.
//! 4. **At most `max_bins`**: merge the adjacent pair that loses the least IV.
//!
//! ## Categorical features
//! Categories are ordered by bad rate (ties by name) — in that order WoE is monotone by
//! construction — and steps 2 (merging equal rates), 3 and 4 group them. Small categories
//! therefore join the group of neighbouring risk.
//!
//! ## WoE and IV
//! `WoE = ln((good_i/G) / (bad_i/B))` with `G`, `B` the totals over all rows (missing
//! included); `IV = Σ (good_i/G − bad_i/B) · WoE_i` over the regular bins **and** the
//! missing bin. The missing bin keeps its own WoE; when it is empty its WoE is 0 (neutral:
//! nothing is known), and when it holds only goods or only bads 0.5 is added to both counts
//! so the WoE stays finite.

use serde::{Deserialize, Serialize};

use crate::dataset::ColumnData;

/// Binning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinningOptions {
    /// Quantile bins to start from (numeric features).
    pub max_initial_bins: usize,
    /// Minimum share of all rows per regular bin.
    pub min_bin_share: f64,
    /// Minimum number of goods and of bads per regular bin (≥ 1 keeps WoE finite).
    pub min_class_count: u64,
    /// Maximum regular bins per feature.
    pub max_bins: usize,
}

impl Default for BinningOptions {
    fn default() -> Self {
        Self {
            max_initial_bins: 20,
            min_bin_share: 0.05,
            min_class_count: 1,
            max_bins: 10,
        }
    }
}

/// Direction of the bad rate along a numeric feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Bad rate rises with the value.
    Ascending,
    /// Bad rate falls as the value rises.
    Descending,
}

/// Good/bad counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Good rows.
    pub good: u64,
    /// Bad rows.
    pub bad: u64,
}

impl Counts {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.good + self.bad
    }

    fn add(self, o: Counts) -> Counts {
        Counts {
            good: self.good + o.good,
            bad: self.bad + o.bad,
        }
    }

    fn count(&mut self, bad: bool) {
        if bad {
            self.bad += 1;
        } else {
            self.good += 1;
        }
    }

    /// `self` has a strictly lower bad rate than `o` (exact integer comparison).
    fn rate_lt(&self, o: &Counts) -> bool {
        u128::from(self.bad) * u128::from(o.total()) < u128::from(o.bad) * u128::from(self.total())
    }
}

/// `ln((good/G)/(bad/B))`, with 0.5 added to both counts when one is zero.
pub(crate) fn woe(c: Counts, totals: Counts) -> f64 {
    let (g, b) = if c.good == 0 || c.bad == 0 {
        (c.good as f64 + 0.5, c.bad as f64 + 0.5)
    } else {
        (c.good as f64, c.bad as f64)
    };
    ((g / totals.good as f64) / (b / totals.bad as f64)).ln()
}

/// IV term of one bin (0 for an empty bin).
pub(crate) fn iv_term(c: Counts, totals: Counts) -> f64 {
    if c.total() == 0 {
        return 0.0;
    }
    let pg = c.good as f64 / totals.good as f64;
    let pb = c.bad as f64 / totals.bad as f64;
    (pg - pb) * woe(c, totals)
}

/// How a feature's rows map to bins.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BinRule {
    /// Finite inclusive uppers of all bins but the last.
    Numeric { uppers: Vec<f64> },
    /// Per bin, the categories it holds; `by_level[code]` is the bin of a dataset level.
    Categorical {
        groups: Vec<Vec<String>>,
        by_level: Vec<usize>,
    },
}

/// The binning of one feature on the development sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureBins {
    pub rule: BinRule,
    pub trend: Option<Trend>,
    pub counts: Vec<Counts>,
    pub missing: Counts,
    pub woe: Vec<f64>,
    pub missing_woe: f64,
    pub iv: f64,
    /// Per row: bin index, `counts.len()` for missing.
    pub row_bins: Vec<usize>,
}

impl FeatureBins {
    pub fn labels(&self) -> Vec<String> {
        match &self.rule {
            BinRule::Numeric { uppers } => numeric_labels(uppers),
            BinRule::Categorical { groups, .. } => groups.iter().map(|g| g.join(" | ")).collect(),
        }
    }
}

pub(crate) fn numeric_labels(uppers: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(uppers.len() + 1);
    let mut lo = "-inf".to_owned();
    for u in uppers {
        labels.push(format!("({lo}, {u}]"));
        lo = u.to_string();
    }
    labels.push(format!("({lo}, +inf)"));
    labels
}

/// A run of adjacent initial bins `start..end` with pooled counts.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: usize,
    end: usize,
    counts: Counts,
}

fn join(a: Segment, b: Segment) -> Segment {
    Segment {
        start: a.start,
        end: b.end,
        counts: a.counts.add(b.counts),
    }
}

fn merge_loss(a: Segment, b: Segment, totals: Counts) -> f64 {
    iv_term(a.counts, totals) + iv_term(b.counts, totals) - iv_term(a.counts.add(b.counts), totals)
}

/// Merges adjacent initial bins: monotone trend, then size/purity, then bin count.
fn merge(initial: &[Counts], trend: Trend, opts: &BinningOptions, totals: Counts) -> Vec<Segment> {
    let all_rows = totals.total();
    let mut segs: Vec<Segment> = Vec::with_capacity(initial.len());
    for (i, &c) in initial.iter().enumerate() {
        let mut cur = Segment {
            start: i,
            end: i + 1,
            counts: c,
        };
        while let Some(&prev) = segs.last() {
            let ok = match trend {
                Trend::Ascending => prev.counts.rate_lt(&cur.counts),
                Trend::Descending => cur.counts.rate_lt(&prev.counts),
            };
            if ok {
                break;
            }
            segs.pop();
            cur = join(prev, cur);
        }
        segs.push(cur);
    }

    let min_rows = (opts.min_bin_share * all_rows as f64).ceil() as u64;
    let too_small = |s: &Segment| {
        s.counts.total() < min_rows
            || s.counts.good < opts.min_class_count
            || s.counts.bad < opts.min_class_count
    };
    while segs.len() > 1 {
        let Some(i) = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| too_small(s))
            .min_by_key(|(i, s)| (s.counts.total(), *i))
            .map(|(i, _)| i)
        else {
            break;
        };
        let left = i
            .checked_sub(1)
            .and_then(|l| Some((l, merge_loss(*segs.get(l)?, *segs.get(i)?, totals))));
        let right = segs
            .get(i + 1)
            .and_then(|r| Some((i, merge_loss(*segs.get(i)?, *r, totals))));
        let at = match (left, right) {
            (Some((l, ll)), Some((r, rl))) => {
                if ll <= rl {
                    l
                } else {
                    r
                }
            }
            (Some((l, _)), None) => l,
            (None, Some((r, _))) => r,
            (None, None) => break,
        };
        merge_at(&mut segs, at);
    }

    while segs.len() > opts.max_bins.max(1) {
        let Some(at) = segs
            .windows(2)
            .enumerate()
            .map(|(i, w)| (i, merge_loss(w[0], w[1], totals)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
        else {
            break;
        };
        merge_at(&mut segs, at);
    }
    segs
}

/// Merges `segs[at]` and `segs[at + 1]`.
fn merge_at(segs: &mut Vec<Segment>, at: usize) {
    if at + 1 < segs.len() {
        let b = segs.remove(at + 1);
        if let Some(a) = segs.get_mut(at) {
            *a = join(*a, b);
        }
    }
}

fn iv_of(segs: &[Segment], missing: Counts, totals: Counts) -> f64 {
    segs.iter().map(|s| iv_term(s.counts, totals)).sum::<f64>() + iv_term(missing, totals)
}

fn finish(
    rule: BinRule,
    trend: Option<Trend>,
    counts: Vec<Counts>,
    missing: Counts,
    totals: Counts,
    row_bins: Vec<usize>,
) -> FeatureBins {
    let woe_v = counts.iter().map(|&c| woe(c, totals)).collect();
    let missing_woe = if missing.total() == 0 {
        0.0
    } else {
        woe(missing, totals)
    };
    let iv = counts.iter().map(|&c| iv_term(c, totals)).sum::<f64>() + iv_term(missing, totals);
    FeatureBins {
        rule,
        trend,
        counts,
        missing,
        woe: woe_v,
        missing_woe,
        iv,
        row_bins,
    }
}

/// Bins one column against the labels. `totals` are the good/bad counts of all rows.
pub(crate) fn bin_column(
    data: &ColumnData,
    bad: &[bool],
    opts: &BinningOptions,
    totals: Counts,
) -> FeatureBins {
    match data {
        ColumnData::Numeric(values) => bin_numeric(values, bad, opts, totals),
        ColumnData::Categorical { levels, codes } => {
            bin_categorical(levels, codes, bad, opts, totals)
        }
    }
}

fn bin_numeric(
    values: &[Option<f64>],
    bad: &[bool],
    opts: &BinningOptions,
    totals: Counts,
) -> FeatureBins {
    let mut missing = Counts::default();
    let mut pairs: Vec<(f64, bool)> = Vec::with_capacity(values.len());
    for (v, &b) in values.iter().zip(bad) {
        match v {
            Some(x) => pairs.push((*x, b)),
            None => missing.count(b),
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Fine quantile cut points: observed values, strictly increasing, below the maximum.
    let m = pairs.len();
    let max = pairs.last().map_or(0.0, |p| p.0);
    let fine_bins = opts.max_initial_bins.max(1);
    let mut cuts: Vec<f64> = Vec::new();
    for k in 1..fine_bins {
        let idx = (k * m).div_ceil(fine_bins).saturating_sub(1);
        if let Some(&(v, _)) = pairs.get(idx) {
            if v < max && cuts.last().is_none_or(|&c| c < v) {
                cuts.push(v);
            }
        }
    }
    let mut initial = vec![Counts::default(); cuts.len() + 1];
    for &(x, b) in &pairs {
        let i = cuts.partition_point(|&c| c < x);
        if let Some(c) = initial.get_mut(i) {
            c.count(b);
        }
    }

    let mut best: Option<(Trend, Vec<Segment>, f64)> = None;
    for trend in [Trend::Ascending, Trend::Descending] {
        let segs = merge(&initial, trend, opts, totals);
        let iv = iv_of(&segs, missing, totals);
        if best.as_ref().is_none_or(|(_, _, b)| iv > *b) {
            best = Some((trend, segs, iv));
        }
    }
    let (trend, segs) = best.map_or((Trend::Ascending, Vec::new()), |(t, s, _)| (t, s));
    // Upper of a segment = the cut closing its last fine bin; the last segment is open.
    let uppers: Vec<f64> = segs
        .iter()
        .take(segs.len().saturating_sub(1))
        .filter_map(|s| cuts.get(s.end - 1).copied())
        .collect();
    let mut counts: Vec<Counts> = segs.iter().map(|s| s.counts).collect();
    if counts.is_empty() {
        counts.push(Counts::default());
    }
    let n = counts.len();
    let row_bins = values
        .iter()
        .map(|v| v.map_or(n, |x| uppers.partition_point(|&u| u < x)))
        .collect();
    finish(
        BinRule::Numeric { uppers },
        Some(trend),
        counts,
        missing,
        totals,
        row_bins,
    )
}

fn bin_categorical(
    levels: &[String],
    codes: &[Option<u32>],
    bad: &[bool],
    opts: &BinningOptions,
    totals: Counts,
) -> FeatureBins {
    let mut missing = Counts::default();
    let mut per_level = vec![Counts::default(); levels.len()];
    for (code, &b) in codes.iter().zip(bad) {
        match code.and_then(|c| per_level.get_mut(c as usize)) {
            Some(c) => c.count(b),
            None => missing.count(b),
        }
    }
    // Observed levels ordered by bad rate, ties by name (levels are sorted, so by index).
    let mut order: Vec<usize> = (0..levels.len())
        .filter(|&i| per_level.get(i).is_some_and(|c| c.total() > 0))
        .collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (per_level[a], per_level[b]);
        let lhs = u128::from(ca.bad) * u128::from(cb.total());
        let rhs = u128::from(cb.bad) * u128::from(ca.total());
        lhs.cmp(&rhs).then(a.cmp(&b))
    });
    let initial: Vec<Counts> = order.iter().map(|&i| per_level[i]).collect();
    let segs = merge(&initial, Trend::Ascending, opts, totals);

    let mut by_level = vec![usize::MAX; levels.len()];
    let mut groups = Vec::with_capacity(segs.len());
    for (g, s) in segs.iter().enumerate() {
        let mut names: Vec<String> = Vec::new();
        for &lvl in order.get(s.start..s.end).unwrap_or(&[]) {
            if let Some(slot) = by_level.get_mut(lvl) {
                *slot = g;
            }
            if let Some(name) = levels.get(lvl) {
                names.push(name.clone());
            }
        }
        groups.push(names);
    }
    let mut counts: Vec<Counts> = segs.iter().map(|s| s.counts).collect();
    if counts.is_empty() {
        counts.push(Counts::default());
        groups.push(Vec::new());
    }
    let n = counts.len();
    let row_bins = codes
        .iter()
        .map(|c| {
            c.and_then(|c| by_level.get(c as usize).copied())
                .filter(|&b| b != usize::MAX)
                .unwrap_or(n)
        })
        .collect();
    finish(
        BinRule::Categorical { groups, by_level },
        None,
        counts,
        missing,
        totals,
        row_bins,
    )
}

/// Categories per bin as a map.
#[cfg(test)]
pub(crate) fn category_bins(fb: &FeatureBins) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    if let BinRule::Categorical { groups, .. } = &fb.rule {
        for (i, g) in groups.iter().enumerate() {
            for c in g {
                m.insert(c.clone(), i);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn totals(bad: &[bool]) -> Counts {
        let b = bad.iter().filter(|&&x| x).count() as u64;
        Counts {
            good: bad.len() as u64 - b,
            bad: b,
        }
    }

    /// Bad rate rising with x but with a dip; result must be monotone and each bin ≥ 5%.
    #[test]
    fn numeric_bins_are_monotone_and_large_enough() {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..1000u64 {
            let x = (i % 100) as f64;
            // bad probability rises with x, deterministic pattern with noise-like dips
            let threshold = 10 + (x as u64) * 6 / 10 + if i % 7 == 0 { 15 } else { 0 };
            ys.push((i * 37 + 11) % 100 < threshold);
            xs.push(Some(x));
        }
        let t = totals(&ys);
        let opts = BinningOptions::default();
        let fb = bin_numeric(&xs, &ys, &opts, t);
        assert_eq!(fb.trend, Some(Trend::Ascending));
        assert!(fb.counts.len() >= 2);
        for w in fb.woe.windows(2) {
            assert!(w[0] > w[1], "WoE must fall as bad rate rises: {:?}", fb.woe);
        }
        for c in &fb.counts {
            assert!(c.total() as f64 >= 0.05 * 1000.0);
        }
        if let BinRule::Numeric { uppers } = &fb.rule {
            assert_eq!(uppers.len() + 1, fb.counts.len());
            assert!(uppers.windows(2).all(|w| w[0] < w[1]));
        }
        // Row assignment agrees with counts.
        let mut c = vec![0u64; fb.counts.len() + 1];
        for &b in &fb.row_bins {
            c[b] += 1;
        }
        for (i, k) in fb.counts.iter().enumerate() {
            assert_eq!(c[i], k.total());
        }
    }

    #[test]
    fn descending_trend_is_found() {
        let xs: Vec<Option<f64>> = (0..400).map(|i| Some(f64::from(i % 40))).collect();
        let ys: Vec<bool> = (0..400).map(|i| (i % 40) < 10 || i % 9 == 0).collect();
        let fb = bin_numeric(&xs, &ys, &BinningOptions::default(), totals(&ys));
        assert_eq!(fb.trend, Some(Trend::Descending));
        assert!(fb.woe.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn missing_values_get_their_own_bin() {
        let mut xs: Vec<Option<f64>> = (0..200).map(|i| Some(f64::from(i))).collect();
        xs.extend(std::iter::repeat_n(None, 20));
        let mut ys: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        ys.extend((0..20).map(|i| i % 2 == 0));
        let fb = bin_numeric(&xs, &ys, &BinningOptions::default(), totals(&ys));
        assert_eq!(fb.missing, Counts { good: 10, bad: 10 });
        assert!(fb.row_bins[200..].iter().all(|&b| b == fb.counts.len()));
        assert!(fb.missing_woe.is_finite());
    }

    #[test]
    fn categorical_groups_by_bad_rate_and_merges_small() {
        // A: 40% bad (100 rows), B: 10% bad (100), C: 40% bad (100), D: 3 rows, all bad.
        let mut vals = Vec::new();
        let mut ys = Vec::new();
        for (cat, n, nbad) in [("A", 100, 40), ("B", 100, 10), ("C", 100, 40), ("D", 3, 3)] {
            for i in 0..n {
                vals.push(Some(cat.to_owned()));
                ys.push(i < nbad);
            }
        }
        let ColumnData::Categorical { levels, codes } = ColumnData::categorical(&vals) else {
            panic!()
        };
        let fb = bin_categorical(
            &levels,
            &codes,
            &ys,
            &BinningOptions::default(),
            totals(&ys),
        );
        let m = category_bins(&fb);
        assert_eq!(m["A"], m["C"], "equal bad rates share a group");
        assert_eq!(m["D"], m["A"], "tiny D joins its nearest-risk neighbour");
        assert_ne!(m["B"], m["A"]);
        assert!(fb.woe.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn woe_and_iv_hand_computed() {
        let t = Counts { good: 80, bad: 20 };
        let c = Counts { good: 40, bad: 4 };
        // ln((40/80)/(4/20)) = ln(2.5)
        assert!((woe(c, t) - 2.5f64.ln()).abs() < 1e-12);
        assert!((iv_term(c, t) - (0.5 - 0.2) * 2.5f64.ln()).abs() < 1e-12);
        let z = Counts { good: 10, bad: 0 };
        assert!((woe(z, t) - ((10.5 / 80.0) / (0.5 / 20.0f64)).ln()).abs() < 1e-12);
    }
}
