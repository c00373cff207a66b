//! Logistic regression by Newton–Raphson (IRLS) with an L2 ridge.
//!
//! Maximises `Σ [y·η − ln(1 + e^η)] − ½·λ·Σ_j β_j²` with `η = β₀ + Σ β_j x_j`; the
//! intercept is not penalised. `λ` (default 1.0) is the same scale as scikit-learn's
//! `1/C`: tiny next to hundreds of rows, it only keeps the Hessian well conditioned when
//! two WoE columns are nearly collinear. Each Newton step solves `H Δ = g` by Cholesky
//! (the Hessian of a ridge-penalised log-likelihood is positive definite) and is halved
//! until the objective does not decrease, so the iteration cannot diverge. f64 throughout:
//! this is estimation, not money. Deterministic: fixed start, fixed order of sums.

use crate::error::{Result, ScorecardError};

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogisticFit {
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

fn log1pexp(eta: f64) -> f64 {
    if eta > 0.0 {
        eta + (-eta).exp().ln_1p()
    } else {
        eta.exp().ln_1p()
    }
}

fn sigmoid(eta: f64) -> f64 {
    1.0 / (1.0 + (-eta).exp())
}

fn objective(columns: &[Vec<f64>], y: &[bool], beta: &[f64], l2: f64) -> f64 {
    let mut ll = 0.0;
    for (i, &yi) in y.iter().enumerate() {
        let eta = linear(columns, beta, i);
        ll += if yi { eta } else { 0.0 } - log1pexp(eta);
    }
    ll - 0.5 * l2 * beta.iter().skip(1).map(|b| b * b).sum::<f64>()
}

fn linear(columns: &[Vec<f64>], beta: &[f64], row: usize) -> f64 {
    let mut eta = beta.first().copied().unwrap_or(0.0);
    for (c, b) in columns.iter().zip(beta.iter().skip(1)) {
        eta += b * c.get(row).copied().unwrap_or(0.0);
    }
    eta
}

/// Fits `P(y) = σ(β₀ + Σ β_j x_j)`; `columns[j][i]` is feature `j` of row `i`.
pub(crate) fn fit(columns: &[Vec<f64>], y: &[bool], l2: f64) -> Result<LogisticFit> {
    let n = y.len();
    let k = columns.len() + 1;
    let positives = y.iter().filter(|&&v| v).count();
    if positives == 0 || positives == n {
        return Err(ScorecardError::Training(
            "logistic regression needs both outcomes".into(),
        ));
    }
    let mut beta = vec![0.0; k];
    if let Some(b0) = beta.first_mut() {
        *b0 = (positives as f64 / (n - positives) as f64).ln();
    }
    let mut current = objective(columns, y, &beta, l2);
    let mut x = vec![0.0; k];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < 100 {
        iterations += 1;
        let mut grad = vec![0.0; k];
        let mut hess = vec![0.0; k * k];
        for (i, &yi) in y.iter().enumerate() {
            if let Some(x0) = x.first_mut() {
                *x0 = 1.0;
            }
            for (xj, c) in x.iter_mut().skip(1).zip(columns) {
                *xj = c.get(i).copied().unwrap_or(0.0);
            }
            let p = sigmoid(linear(columns, &beta, i));
            let r = f64::from(u8::from(yi)) - p;
            let w = p * (1.0 - p);
            for a in 0..k {
                let xa = x[a];
                grad[a] += r * xa;
                for b in 0..=a {
                    hess[a * k + b] += w * xa * x[b];
                }
            }
        }
        for a in 1..k {
            grad[a] -= l2 * beta[a];
            hess[a * k + a] += l2;
        }
        for a in 0..k {
            for b in 0..a {
                hess[b * k + a] = hess[a * k + b];
            }
        }
        let step = solve_spd(&hess, &grad, k)?;
        let mut scale = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + scale * s).collect();
            let value = objective(columns, y, &trial, l2);
            if value >= current - 1e-12 * current.abs() {
                beta = trial;
                current = value;
                accepted = true;
                break;
            }
            scale *= 0.5;
        }
        let max_step = step.iter().fold(0.0f64, |m, s| m.max((s * scale).abs()));
        if !accepted || max_step < 1e-9 {
            converged = accepted || max_step < 1e-9;
            break;
        }
    }
    let intercept = beta.first().copied().unwrap_or(0.0);
    Ok(LogisticFit {
        intercept,
        coefficients: beta.into_iter().skip(1).collect(),
        iterations,
        converged,
    })
}

/// Solves `A x = b` for symmetric positive definite `A` (row-major `k × k`) by Cholesky.
fn solve_spd(a: &[f64], b: &[f64], k: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut sum = a[i * k + j];
            for p in 0..j {
                sum -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return Err(ScorecardError::Training(
                        "Hessian is not positive definite (perfectly collinear features?)".into(),
                    ));
                }
                l[i * k + i] = sum.sqrt();
            } else {
                l[i * k + j] = sum / l[j * k + j];
            }
        }
    }
    let mut z = vec![0.0; k];
    for i in 0..k {
        let mut sum = b[i];
        for p in 0..i {
            sum -= l[i * k + p] * z[p];
        }
        z[i] = sum / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut sum = z[i];
        for p in i + 1..k {
            sum -= l[p * k + i] * x[p];
        }
        x[i] = sum / l[i * k + i];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn intercept_only_matches_log_odds() {
        let y = [true, false, false, false];
        let f = fit(&[], &y, 1.0).unwrap();
        assert!((f.intercept - (1.0f64 / 3.0).ln()).abs() < 1e-9);
        assert!(f.converged);
    }

    #[test]
    fn recovers_a_known_model_from_grouped_data() {
        // Two groups x=0 (25% bad) and x=1 (75% bad): the MLE without penalty is
        // β0 = ln(1/3), β1 = ln(3) − ln(1/3) = ln 9.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..400 {
            let g = i % 2;
            x.push(f64::from(g));
            y.push(if g == 0 { i % 8 == 0 } else { i % 8 != 1 });
        }
        let f = fit(&[x], &y, 0.0).unwrap();
        assert!((f.intercept - (1.0f64 / 3.0).ln()).abs() < 1e-6, "{f:?}");
        assert!((f.coefficients[0] - 9.0f64.ln()).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn spd_solver() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = solve_spd(&a, &[2.0, 1.0], 2).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
    }
}
