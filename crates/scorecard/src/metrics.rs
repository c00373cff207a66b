//! Discrimination metrics: AUC, KS and Gini.
//!
//! Convention everywhere: `scores` rank risk — a **higher score means more likely bad** (use
//! the probability of bad, or the negated points score) — and `bad[i]` is true for a bad
//! outcome.
//!
//! * **AUC** is the Mann–Whitney statistic: the probability that a random bad row scores
//!   higher than a random good row, ties counting one half. Computed from average ranks
//!   (ties share the mean of their ranks): `AUC = (R_bad − n_bad(n_bad+1)/2) / (n_bad·n_good)`.
//! * **KS** is `max_t |F_bad(t) − F_good(t)|` over every distinct score `t`, with `F` the
//!   empirical CDFs; tied scores move together.
//! * **Gini** (accuracy ratio) is `2·AUC − 1`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ScorecardError};

fn check(scores: &[f64], bad: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != bad.len() {
        return Err(ScorecardError::InvalidInput(format!(
            "{} scores but {} labels",
            scores.len(),
            bad.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(ScorecardError::InvalidInput("a score is NaN".into()));
    }
    let n_bad = bad.iter().filter(|&&b| b).count();
    let n_good = bad.len() - n_bad;
    if n_bad == 0 || n_good == 0 {
        return Err(ScorecardError::InvalidInput(
            "need at least one bad and one good row".into(),
        ));
    }
    Ok((n_bad, n_good))
}

fn sorted_order(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let sa = scores.get(a).copied().unwrap_or(0.0);
        let sb = scores.get(b).copied().unwrap_or(0.0);
        sa.total_cmp(&sb).then(a.cmp(&b))
    });
    order
}

/// Calls `f(bad_in_group, good_in_group)` for each group of equal scores, ascending.
fn for_each_tie_group(scores: &[f64], bad: &[bool], mut f: impl FnMut(usize, usize, usize)) {
    let order = sorted_order(scores);
    let mut start = 0;
    while start < order.len() {
        let s = order.get(start).and_then(|&i| scores.get(i)).copied();
        let mut end = start;
        let (mut nb, mut ng) = (0, 0);
        while let Some(&i) = order.get(end) {
            if scores.get(i).copied() != s {
                break;
            }
            if bad.get(i).copied().unwrap_or(false) {
                nb += 1;
            } else {
                ng += 1;
            }
            end += 1;
        }
        f(start, nb, ng);
        start = end;
    }
}

/// Area under the ROC curve, ties handled by average ranks.
pub fn auc(scores: &[f64], bad: &[bool]) -> Result<f64> {
    let (n_bad, n_good) = check(scores, bad)?;
    let mut rank_sum_bad = 0.0;
    for_each_tie_group(scores, bad, |start, nb, ng| {
        // Ranks are 1-based: the group occupies ranks start+1 ..= start+size.
        let size = (nb + ng) as f64;
        let mean_rank = start as f64 + (size + 1.0) / 2.0;
        rank_sum_bad += mean_rank * nb as f64;
    });
    let nb = n_bad as f64;
    Ok((rank_sum_bad - nb * (nb + 1.0) / 2.0) / (nb * n_good as f64))
}

/// Kolmogorov–Smirnov statistic between the bad and good score distributions.
pub fn ks(scores: &[f64], bad: &[bool]) -> Result<f64> {
    let (n_bad, n_good) = check(scores, bad)?;
    let (mut cb, mut cg, mut best) = (0usize, 0usize, 0.0f64);
    for_each_tie_group(scores, bad, |_, nb, ng| {
        cb += nb;
        cg += ng;
        let d = (cb as f64 / n_bad as f64 - cg as f64 / n_good as f64).abs();
        best = best.max(d);
    });
    Ok(best)
}

/// Gini coefficient, `2·AUC − 1`.
pub fn gini(scores: &[f64], bad: &[bool]) -> Result<f64> {
    Ok(2.0 * auc(scores, bad)? - 1.0)
}

/// AUC, KS and Gini of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Rows.
    pub rows: usize,
    /// Bad rows.
    pub bad: usize,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Kolmogorov–Smirnov statistic.
    pub ks: f64,
    /// `2·AUC − 1`.
    pub gini: f64,
}

impl Performance {
    /// Computes all three metrics.
    pub fn compute(scores: &[f64], bad: &[bool]) -> Result<Self> {
        let auc = auc(scores, bad)?;
        Ok(Self {
            rows: scores.len(),
            bad: bad.iter().filter(|&&b| b).count(),
            auc,
            ks: ks(scores, bad)?,
            gini: 2.0 * auc - 1.0,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_perfect_and_reversed() {
        let bad = [false, false, true, true];
        assert!(close(auc(&[0.1, 0.2, 0.8, 0.9], &bad).unwrap(), 1.0));
        assert!(close(auc(&[0.9, 0.8, 0.2, 0.1], &bad).unwrap(), 0.0));
        assert!(close(gini(&[0.1, 0.2, 0.8, 0.9], &bad).unwrap(), 1.0));
    }

    #[test]
    fn auc_hand_computed_with_ties() {
        // bad scores {0.4, 0.6, 0.6}, good scores {0.2, 0.6, 0.5}.
        // Pairs (bad, good): 0.4>0.2 yes, 0.4 vs 0.6 no, 0.4 vs 0.5 no  -> 1
        // 0.6>0.2 yes, 0.6=0.6 half, 0.6>0.5 yes                          -> 2.5, twice
        // total 6 out of 9.
        let scores = [0.4, 0.6, 0.6, 0.2, 0.6, 0.5];
        let bad = [true, true, true, false, false, false];
        assert!(close(auc(&scores, &bad).unwrap(), 6.0 / 9.0));
        assert!(close(gini(&scores, &bad).unwrap(), 2.0 * 6.0 / 9.0 - 1.0));
    }

    #[test]
    fn all_tied_is_half() {
        let bad = [true, false, true, false, false];
        assert!(close(auc(&[1.0; 5], &bad).unwrap(), 0.5));
        assert!(close(ks(&[1.0; 5], &bad).unwrap(), 0.0));
    }

    #[test]
    fn ks_hand_computed() {
        // Ascending scores: g(0.1) g(0.2) b(0.3) g(0.4) b(0.5) b(0.6); 3 bad, 3 good.
        // After 0.2: F_good=2/3, F_bad=0 -> 0.667; after 0.4: 1 vs 1/3 -> 0.667.
        let scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let bad = [false, false, true, false, true, true];
        assert!(close(ks(&scores, &bad).unwrap(), 2.0 / 3.0));
        // AUC: bad 0.3 beats 2 goods, 0.5 and 0.6 beat 3 each: 8/9.
        assert!(close(auc(&scores, &bad).unwrap(), 8.0 / 9.0));
    }

    #[test]
    fn ks_ties_move_together() {
        // A tie of one bad and one good at 0.5 must not count the bad first.
        let scores = [0.5, 0.5];
        let bad = [true, false];
        assert!(close(ks(&scores, &bad).unwrap(), 0.0));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(auc(&[0.1], &[true, false]).is_err());
        assert!(auc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(auc(&[f64::NAN, 0.2], &[true, false]).is_err());
    }
}
