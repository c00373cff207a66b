//! `zhudai bench guards` (issue #6): guard evaluations per second. The origination
//! definition is compiled once; its transition guards and approval-chain rules (the
//! expressions the engine evaluates while moving an instance) are evaluated over 4,096
//! varied fact records — amounts from 1,000 to 500,000 yuan, every grade and decision
//! outcome, documents complete or not, funder approving or not — on one thread, then on
//! every core at once. The peer, measured in the same run, is the same five conditions
//! written by hand in Rust over a plain struct: the ceiling of what compiling can reach.

use crate::cli::Failure;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};
use zhudai_expr::{Condition, Record};
use zhudai_workflow::Definition;

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The same facts as a plain struct, for the hand-written peer.
#[derive(Debug, Clone)]
struct Plain {
    amount_cents: i128,
    outcome: &'static str,
    grade: &'static str,
    funder_approved: bool,
    documents_complete: bool,
}

const OUTCOMES: [&str; 4] = ["approve", "refer", "reject", "pass"];
const GRADES: [&str; 5] = ["A", "B", "C", "D", "E"];

/// Deterministic varied facts (a linear congruential sequence, so runs compare).
fn facts(def: &Definition, n: usize) -> Result<(Vec<Record>, Vec<Plain>), Failure> {
    let slot = |name: &str| {
        def.schema
            .slot(name)
            .ok_or_else(|| Failure::Runtime(format!("the origination flow has no `{name}`")))
    };
    let (amount, months, outcome, grade, funder, docs) = (
        slot("app.amount")?,
        slot("app.months")?,
        slot("decision.outcome")?,
        slot("decision.grade")?,
        slot("funder.approved")?,
        slot("documents.complete")?,
    );
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        x >> 33
    };
    let err = |e: zhudai_expr::RecordError| Failure::Runtime(e.to_string());
    let mut records = Vec::with_capacity(n);
    let mut plain = Vec::with_capacity(n);
    for _ in 0..n {
        let cents = i128::from(100_000 + next() % 49_900_000);
        let p = Plain {
            amount_cents: cents,
            outcome: OUTCOMES[(next() % 4) as usize],
            grade: GRADES[(next() % 5) as usize],
            funder_approved: next() % 3 != 0,
            documents_complete: next() % 5 != 0,
        };
        let mut r = def.new_facts();
        r.set_decimal_units(amount, p.amount_cents).map_err(err)?;
        r.set_int(months, [6, 12, 24, 36][(next() % 4) as usize])
            .map_err(err)?;
        r.set_str(outcome, p.outcome).map_err(err)?;
        r.set_str(grade, p.grade).map_err(err)?;
        r.set_bool(funder, p.funder_approved).map_err(err)?;
        r.set_bool(docs, p.documents_complete).map_err(err)?;
        records.push(r);
        plain.push(p);
    }
    Ok((records, plain))
}

/// Every guard and chain rule of the definition, compiled.
fn conditions(def: &Definition) -> Vec<(&str, &Condition)> {
    let mut v: Vec<(&str, &Condition)> = def
        .transitions
        .iter()
        .filter_map(|t| t.guard.as_ref())
        .map(|g| (g.source.as_str(), &g.condition))
        .collect();
    for n in &def.nodes {
        for c in &n.chain {
            if let Some(g) = &c.when {
                v.push((g.source.as_str(), &g.condition));
            }
        }
    }
    v
}

/// The hand-written peer: the origination flow's five conditions in Rust (a referred
/// decision needs one approval level more than its amount would).
fn plain_eval(p: &Plain) -> u32 {
    let de = matches!(p.grade, "D" | "E");
    let refer = p.outcome == "refer";
    u32::from(p.documents_complete)
        + u32::from(p.outcome == "reject")
        + u32::from(p.funder_approved)
        + u32::from(p.amount_cents <= 5_000_000 && !de && !refer)
        + u32::from(p.amount_cents <= 20_000_000 && !de && !(refer && p.amount_cents > 5_000_000))
}

/// Runs `round` (which evaluates `per_round` conditions) for `seconds`: (evaluations,
/// wall seconds, CPU seconds of this thread).
fn timed(
    seconds: u64,
    per_round: u64,
    mut round: impl FnMut() -> Result<u32, Failure>,
) -> Result<(u64, f64, Option<f64>), Failure> {
    let limit = Duration::from_secs(seconds);
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    let mut evals = 0u64;
    let mut hits = 0u64;
    loop {
        hits += u64::from(round()?);
        evals += per_round;
        let elapsed = t0.elapsed();
        if elapsed >= limit {
            black_box(hits);
            let cpu = cpu0
                .zip(thread_cpu_ns())
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9)
                .filter(|s| *s > 0.0);
            return Ok((evals, elapsed.as_secs_f64(), cpu));
        }
    }
}

fn line(json: bool, measure: &str, value: f64, unit: &str, n: u64) {
    if json {
        out(&serde_json::json!({"bench": "guards", "measure": measure, "value": value, "unit": unit, "n": n}).to_string());
    } else {
        out(&format!("{measure:<64} {value:>14.0} {unit:<12} (n = {n})"));
    }
}

/// `zhudai bench guards`.
pub fn guards(seconds: u64, threads: Option<usize>, json: bool) -> Result<(), Failure> {
    let def = Definition::from_toml(zhudai_workflow::ORIGINATION).map_err(|p| {
        Failure::Runtime(format!(
            "the origination definition does not compile: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let conds = conditions(&def);
    let (records, plain) = facts(&def, 4096)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or(cores).max(1);
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    if json {
        out(&serde_json::json!({"kind": "context", "bench": "guards", "build": build, "cpus": cores,
            "threads": threads, "conditions": conds.iter().map(|c| c.0).collect::<Vec<_>>(), "facts": records.len()}).to_string());
    } else {
        out(&format!(
            "zhudai bench guards · {build} build · {cores} CPU(s) · origination v1: {} guards and chain rules × {} varied fact records",
            conds.len(),
            records.len()
        ));
        for (src, _) in &conds {
            out(&format!("  {src}"));
        }
    }
    let per_round = (conds.len() * records.len()) as u64;
    let eval_all = |records: &[Record]| -> Result<u32, Failure> {
        let mut hits = 0u32;
        for r in records {
            for (_, c) in &conds {
                if c.eval(black_box(r))
                    .map_err(|e| Failure::Runtime(e.to_string()))?
                {
                    hits += 1;
                }
            }
        }
        Ok(hits)
    };
    // 1. One thread.
    let (n, wall, cpu) = timed(seconds, per_round, || eval_all(&records))?;
    line(
        json,
        "guard evaluations per second, 1 thread",
        n as f64 / wall,
        "evals/s",
        n,
    );
    if let Some(cpu) = cpu {
        line(
            json,
            "guard evaluations per CPU-second (per core)",
            n as f64 / cpu,
            "evals/cpu-s",
            n,
        );
    }
    // 2. Every core at once: each thread its own copy of the facts.
    let results: Vec<Result<(u64, f64, Option<f64>), Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mine = records.clone();
                let eval_all = &eval_all;
                s.spawn(move || timed(seconds, per_round, || eval_all(&mine)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::Runtime("a bench thread panicked".into())))
            })
            .collect()
    });
    let mut total = 0u64;
    let mut wall_max = 0f64;
    let mut cpu_sum = 0f64;
    for r in results {
        let (n, wall, cpu) = r?;
        total += n;
        wall_max = wall_max.max(wall);
        cpu_sum += cpu.unwrap_or(0.0);
    }
    line(
        json,
        &format!("guard evaluations per second, {threads} threads together"),
        total as f64 / wall_max,
        "evals/s",
        total,
    );
    line(
        json,
        &format!("  per core ({threads} threads ÷ {threads})"),
        total as f64 / wall_max / threads as f64,
        "evals/s",
        total,
    );
    if cpu_sum > 0.0 {
        line(
            json,
            "  per CPU-second of the threads",
            total as f64 / cpu_sum,
            "evals/cpu-s",
            total,
        );
    }
    // 3. The peer: the same conditions by hand, one thread.
    let per_round_plain = (5 * plain.len()) as u64;
    let (n, wall, cpu) = timed(seconds, per_round_plain, || {
        Ok(plain.iter().map(|p| plain_eval(black_box(p))).sum())
    })?;
    line(
        json,
        "peer: the same conditions hand-written in Rust, 1 thread",
        n as f64 / wall,
        "evals/s",
        n,
    );
    if let Some(cpu) = cpu {
        line(
            json,
            "peer: per CPU-second",
            n as f64 / cpu,
            "evals/cpu-s",
            n,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The peer computes what the compiled conditions compute, on every record.
    #[test]
    fn the_peer_agrees_with_the_compiled_conditions() {
        let def = Definition::from_toml(zhudai_workflow::ORIGINATION).unwrap();
        let conds = conditions(&def);
        assert_eq!(
            conds.len(),
            5,
            "{:?}",
            conds.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        let (records, plain) = facts(&def, 512).unwrap();
        for (r, p) in records.iter().zip(&plain) {
            let compiled: u32 = conds
                .iter()
                .map(|(_, c)| u32::from(c.eval(r).unwrap()))
                .sum();
            assert_eq!(compiled, plain_eval(p), "{p:?}");
        }
    }
}
