//! Throughput of a five-clause rule, ours vs the `cel` crate with a reused context.
//!
//! `cargo test -p zhudai-expr --release --test expr -- --ignored --nocapture bench_five_clause`

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use zhudai_expr::{Condition, Schema, Type};

const RULE: &str = r#"app.amount > 50000.00 && customer.age >= 18 && customer.age <= 60 && !customer.blacklisted && app.channel in ["web", "app"]"#;

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), so that the per-core
/// rate is honest on a shared, loaded machine where wall time includes waiting.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `f` and returns (wall seconds, on-CPU seconds if known).
fn timed(f: impl FnOnce()) -> (f64, Option<f64>) {
    let c0 = cpu_ns();
    let t = Instant::now();
    f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = match (c0, cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    (wall, cpu)
}

fn report(label: &str, n: u64, (wall, cpu): (f64, Option<f64>)) {
    match cpu {
        Some(c) => println!(
            "  {label:<40} {} per CPU-second; wall clock {}",
            rate(n, c),
            rate(n, wall)
        ),
        None => println!("  {label:<40} wall clock {}", rate(n, wall)),
    }
}

fn rate(n: u64, secs: f64) -> String {
    let per_sec = n as f64 / secs;
    let ns = secs * 1e9 / n as f64;
    if per_sec >= 1e6 {
        format!("{:.1}M evals/s ({ns:.1} ns/eval)", per_sec / 1e6)
    } else {
        format!("{:.1}k evals/s ({ns:.0} ns/eval)", per_sec / 1e3)
    }
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_five_clause() {
    let schema = Schema::builder()
        .field("app.amount", Type::decimal(2))
        .field("app.channel", Type::String)
        .field("customer.age", Type::Int)
        .field("customer.blacklisted", Type::Bool)
        .build()
        .unwrap();
    let rule = Condition::compile(RULE, &schema).unwrap();
    let amount = schema.slot("app.amount").unwrap();
    let channel = schema.slot("app.channel").unwrap();
    let age = schema.slot("customer.age").unwrap();
    let black = schema.slot("customer.blacklisted").unwrap();

    // 1. Ours, one reused record, all clauses evaluated (the rule passes).
    let mut rec = schema.new_record();
    rec.set_decimal_units(amount, 8_000_000).unwrap();
    rec.set_str(channel, "app").unwrap();
    rec.set_int(age, 35).unwrap();
    rec.set_bool(black, false).unwrap();
    assert_eq!(rule.eval(&rec), Ok(true));
    let n: u64 = 50_000_000;
    let mut hits = 0u64;
    let ours = timed(|| {
        for _ in 0..n {
            if let Ok(true) = rule.eval(black_box(&rec)) {
                hits += 1;
            }
        }
    });
    assert_eq!(hits, n);

    // 2. Ours, refilling the record each time from a small rotating input set
    //    (what an AML stream does: one record per event, slots reused).
    let inputs: Vec<(i128, &str, i64, bool)> = (0..1024)
        .map(|i| {
            (
                (i as i128 * 7919) % 10_000_000,
                ["web", "app", "branch"][i % 3],
                (i as i64 * 13) % 80,
                i % 17 == 0,
            )
        })
        .collect();
    let n2: u64 = 20_000_000;
    let mut passed = 0u64;
    let ours_fill = timed(|| {
        for i in 0..n2 {
            let (a, c, g, b) = inputs[(i % 1024) as usize];
            rec.set_decimal_units(amount, a).unwrap();
            rec.set_str(channel, c).unwrap();
            rec.set_int(age, g).unwrap();
            rec.set_bool(black, b).unwrap();
            if let Ok(true) = rule.eval(black_box(&rec)) {
                passed += 1;
            }
        }
    });
    black_box(passed);

    // 3. The cel crate, one reused context.
    let program = cel::Program::compile(RULE).unwrap();
    let mut ctx = cel::Context::default();
    let mut app: HashMap<String, cel::Value> = HashMap::new();
    app.insert("amount".into(), cel::Value::Float(80000.0));
    app.insert("channel".into(), cel::Value::String(Arc::new("app".into())));
    let mut customer: HashMap<String, cel::Value> = HashMap::new();
    customer.insert("age".into(), cel::Value::Int(35));
    customer.insert("blacklisted".into(), cel::Value::Bool(false));
    ctx.add_variable_from_value("app", app.clone());
    ctx.add_variable_from_value("customer", customer.clone());
    assert_eq!(program.execute(&ctx), Ok(cel::Value::Bool(true)));
    let n3: u64 = 300_000;
    let cel_reused = timed(|| {
        for _ in 0..n3 {
            black_box(program.execute(black_box(&ctx)).unwrap());
        }
    });

    // 4. The cel crate, a fresh context per evaluation.
    let n4: u64 = 20_000;
    let cel_fresh = timed(|| {
        for _ in 0..n4 {
            let mut ctx = cel::Context::default();
            ctx.add_variable_from_value("app", app.clone());
            ctx.add_variable_from_value("customer", customer.clone());
            black_box(program.execute(&ctx).unwrap());
        }
    });

    println!("five-clause rule: {RULE}");
    report("zhudai-expr, reused record:", n, ours);
    report("zhudai-expr, record refilled per eval:", n2, ours_fill);
    report("cel 0.15, reused context:", n3, cel_reused);
    report("cel 0.15, fresh context per eval:", n4, cel_fresh);
    let per_sec = |n: u64, (w, c): (f64, Option<f64>)| n as f64 / c.unwrap_or(w);
    println!(
        "  speed-up vs cel with a reused context: {:.0}x",
        per_sec(n, ours) / per_sec(n3, cel_reused)
    );
}
