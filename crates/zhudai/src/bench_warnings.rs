//! `zhudai bench warnings` (risk warnings, issue #7 item 3): rule evaluations per second
//! per core of the warning engine, on synthetic events, next to a hand-written Rust peer
//! of the same rules.
//!
//! * **engine, end to end**: every event goes through `Evaluator::evaluate` — its
//!   customer's windowed aggregates are brought up to date, the record is filled from the
//!   event, customer and loan facts, and the rules that react to its type run. Reported
//!   as events and rule evaluations per CPU-second of the one thread doing it.
//! * **rules only**: records prepared beforehand (a sample of the stream, aggregates
//!   included); the timed loop only evaluates compiled rules — once with the per-type
//!   dispatch the engine uses, once with every rule on every record.
//! * **peer**: the same predicates written as Rust closures over a plain struct, over the
//!   same sample — the ceiling an interpreter-free design could reach. The outcomes of
//!   engine and peer are compared on the sample (a mismatch fails the benchmark).
//!
//! No database is involved: `evaluate_events` adds storage (one transaction per batch)
//! and is measured separately by the integration tests' correctness only.

use crate::cli::Failure;
use std::io::Write;
use std::time::{Duration, Instant};
use zhudai_domain::generate::SplitMix64;
use zhudai_domain::risk_warning::{Category, Severity, Stage};
use zhudai_expr::{Record, WindowAggregate};
use zhudai_server::warnings::engine::{
    event_index, CustomerFacts, Facts, LoanFacts, RuleSet, RuleSpec, Subject, DAY_MS,
};

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// CPU time of the calling thread, from /proc (Linux).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn line(json: bool, measure: &str, value: f64, unit: &str, n: u64) {
    if json {
        out(&serde_json::json!({"bench": "warnings", "measure": measure, "value": value, "unit": unit, "n": n}).to_string());
    } else {
        out(&format!("{measure:<64} {value:>14.0} {unit:<12} (n = {n})"));
    }
}

/// One synthetic event, compact.
#[derive(Debug, Clone, Copy)]
struct Ev {
    customer: u32,
    ty: usize,
    at_ms: i64,
    amount_fen: i64,
    days: i64,
    count: i64,
    dpd: Option<i64>,
}

const TYPES: &[(&str, u64)] = &[
    ("repayment_made", 40),
    ("repayment_failed", 15),
    ("overdue", 10),
    ("credit_inquiry", 10),
    ("application_submitted", 10),
    ("disbursed", 5),
    ("contact_lost", 5),
    ("fraud_report", 5),
];

const REGIONS: &[&str] = &["110105", "310101", "440305", "330106", "510107"];

/// A rule template: its condition text and the same predicate in Rust.
#[derive(Debug, Clone, Copy)]
enum Template {
    FailedCount { w: u32, k: i64 },
    FailedSum { w: u32, x: i64 },
    Dpd { d: i64 },
    OverdueDays { d: i64, w: u32, k: i64 },
    Inquiries { c: i64, a: i64 },
    BigApplication { x: i64, a: i64 },
    LatePayments { d: i64, w: u32, x: i64 },
    LostAndFailing { w: u32, k: i64 },
    FraudInRegion,
    DisbursedAfterInquiries { x: i64, w: u32, k: i64 },
}

impl Template {
    fn on(self) -> &'static [&'static str] {
        match self {
            Template::FailedCount { .. } | Template::FailedSum { .. } => &["repayment_failed"],
            Template::Dpd { .. } | Template::OverdueDays { .. } => &["overdue"],
            Template::Inquiries { .. } => &["credit_inquiry"],
            Template::BigApplication { .. } => &["application_submitted"],
            Template::LatePayments { .. } => &["repayment_made"],
            Template::LostAndFailing { .. } => &["contact_lost"],
            Template::FraudInRegion => &[],
            Template::DisbursedAfterInquiries { .. } => &["disbursed"],
        }
    }

    fn condition(self) -> String {
        match self {
            Template::FailedCount { w, k } => format!("count(repayment_failed, {w}d) >= {k}"),
            Template::FailedSum { w, x } => format!("sum(repayment_failed.amount, {w}d) > {x}.00"),
            Template::Dpd { d } => format!("has(loan.days_past_due) && loan.days_past_due > {d}"),
            Template::OverdueDays { d, w, k } => {
                format!("event.days >= {d} && count(overdue, {w}d) >= {k}")
            }
            Template::Inquiries { c, a } => {
                format!("event.count >= {c} && has(customer.age) && customer.age < {a}")
            }
            Template::BigApplication { x, a } => {
                format!("event.amount > {x}.00 && has(customer.age) && customer.age >= {a}")
            }
            Template::LatePayments { d, w, x } => format!(
                "has(event.days) && event.days > {d} && sum(repayment_made.amount, {w}d) < {x}.00"
            ),
            Template::LostAndFailing { w, k } => {
                format!("count(contact_lost, {w}d) >= 1 && count(repayment_failed, {w}d) >= {k}")
            }
            Template::FraudInRegion => {
                r#"event.type == "fraud_report" && has(customer.region) && customer.region.startsWith("44")"#.into()
            }
            Template::DisbursedAfterInquiries { x, w, k } => {
                format!("event.amount > {x}.00 && count(credit_inquiry, {w}d) >= {k}")
            }
        }
    }

    /// The aggregates the template reads, in the order the native closure expects.
    fn aggregates(self) -> Vec<WindowAggregate> {
        match self {
            Template::FailedCount { w, .. } => vec![WindowAggregate::count("repayment_failed", w)],
            Template::FailedSum { w, .. } => {
                vec![WindowAggregate::sum("repayment_failed", "amount", w)]
            }
            Template::OverdueDays { w, .. } => vec![WindowAggregate::count("overdue", w)],
            Template::LatePayments { w, .. } => {
                vec![WindowAggregate::sum("repayment_made", "amount", w)]
            }
            Template::LostAndFailing { w, .. } => vec![
                WindowAggregate::count("contact_lost", w),
                WindowAggregate::count("repayment_failed", w),
            ],
            Template::DisbursedAfterInquiries { w, .. } => {
                vec![WindowAggregate::count("credit_inquiry", w)]
            }
            _ => Vec::new(),
        }
    }
}

/// What the native peer reads: the event and customer facts and the aggregates.
#[derive(Debug, Clone)]
struct NativeRow {
    ty: usize,
    amount_fen: i64,
    days: i64,
    count: i64,
    dpd: Option<i64>,
    age: i64,
    region: &'static str,
    aggs: Vec<i128>,
}

type Native = Box<dyn Fn(&NativeRow) -> bool + Send + Sync>;

fn native(t: Template, idx: Vec<usize>, fraud: usize) -> Native {
    let a0 = idx.first().copied().unwrap_or(0);
    let a1 = idx.get(1).copied().unwrap_or(0);
    let agg = move |r: &NativeRow, i: usize| r.aggs.get(i).copied().unwrap_or(0);
    match t {
        Template::FailedCount { k, .. } => Box::new(move |r| agg(r, a0) >= i128::from(k)),
        Template::FailedSum { x, .. } => Box::new(move |r| agg(r, a0) > i128::from(x) * 100),
        Template::Dpd { d } => Box::new(move |r| r.dpd.is_some_and(|v| v > d)),
        Template::OverdueDays { d, k, .. } => {
            Box::new(move |r| r.days >= d && agg(r, a0) >= i128::from(k))
        }
        Template::Inquiries { c, a } => Box::new(move |r| r.count >= c && r.age < a),
        Template::BigApplication { x, a } => {
            Box::new(move |r| r.amount_fen > x * 100 && r.age >= a)
        }
        Template::LatePayments { d, x, .. } => {
            Box::new(move |r| r.days > d && agg(r, a0) < i128::from(x) * 100)
        }
        Template::LostAndFailing { k, .. } => {
            Box::new(move |r| agg(r, a0) >= 1 && agg(r, a1) >= i128::from(k))
        }
        Template::FraudInRegion => Box::new(move |r| r.ty == fraud && r.region.starts_with("44")),
        Template::DisbursedAfterInquiries { x, k, .. } => {
            Box::new(move |r| r.amount_fen > x * 100 && agg(r, a0) >= i128::from(k))
        }
    }
}

fn templates(n: usize) -> Vec<Template> {
    let windows = [7u32, 30, 90];
    (0..n)
        .map(|i| {
            let w = windows[i % 3];
            let j = (i / 10) as i64;
            match i % 10 {
                0 => Template::FailedCount { w, k: 2 + j },
                1 => Template::FailedSum {
                    w,
                    x: 5_000 + 5_000 * j,
                },
                2 => Template::Dpd { d: 15 + 15 * j },
                3 => Template::OverdueDays {
                    d: 10 * j,
                    w,
                    k: 2 + j,
                },
                4 => Template::Inquiries {
                    c: 3 + j,
                    a: 25 + 3 * j,
                },
                5 => Template::BigApplication {
                    x: 20_000 + 5_000 * j,
                    a: 55 - j,
                },
                6 => Template::LatePayments {
                    d: 3 + j,
                    w,
                    x: 10_000 * (1 + j),
                },
                7 => Template::LostAndFailing { w, k: 1 + j },
                8 => Template::FraudInRegion,
                _ => Template::DisbursedAfterInquiries {
                    x: 10_000,
                    w,
                    k: 2 + j,
                },
            }
        })
        .collect()
}

fn generate(events: u64, customers: u32, seed: u64) -> (Vec<Ev>, Vec<(i64, usize)>) {
    let mut rng = SplitMix64::new(seed);
    let people: Vec<(i64, usize)> = (0..customers)
        .map(|_| {
            (
                18 + rng.below(55) as i64,
                rng.below(REGIONS.len() as u64) as usize,
            )
        })
        .collect();
    let total: u64 = TYPES.iter().map(|(_, w)| w).sum();
    let idx: Vec<usize> = TYPES
        .iter()
        .map(|(t, _)| event_index(t).unwrap_or(0))
        .collect();
    let span = 180 * DAY_MS;
    let start = 1_767_225_600_000; // 2026-01-01 00:00 UTC
    let mut out = Vec::with_capacity(events as usize);
    for i in 0..events {
        let mut pick = rng.below(total);
        let mut k = 0;
        for (j, (_, w)) in TYPES.iter().enumerate() {
            if pick < *w {
                k = j;
                break;
            }
            pick -= w;
        }
        let name = TYPES[k].0;
        out.push(Ev {
            customer: rng.below(u64::from(customers)) as u32,
            ty: idx[k],
            at_ms: start + (i as i64) * span / events.max(1) as i64,
            amount_fen: 10_000 + rng.below(5_000_000) as i64,
            days: rng.below(120) as i64,
            count: 1 + rng.below(15) as i64,
            dpd: (name == "overdue").then(|| rng.below(120) as i64),
        });
    }
    (out, people)
}

/// Fills the reusable facts from a compact event (what a caller does per event).
fn facts_of(f: &mut Facts, e: &Ev, people: &[(i64, usize)], names: &[&str]) {
    let (age, region) = people.get(e.customer as usize).copied().unwrap_or((30, 0));
    f.event_type = e.ty;
    f.occurred_at_ms = e.at_ms;
    let name = names.get(e.ty).copied().unwrap_or("");
    let has = |field: &str| {
        zhudai_domain::risk_warning::event_type(name)
            .is_some_and(|d| d.fields.iter().any(|x| x.as_str() == field))
    };
    f.amount_fen = has("amount").then_some(e.amount_fen);
    f.days = has("days").then_some(e.days);
    f.count = has("count").then_some(e.count);
    if let Some(c) = f.customer.as_mut() {
        c.age = Some(age);
        c.region.get_or_insert_with(String::new).clear();
        if let Some(r) = c.region.as_mut() {
            r.push_str(REGIONS.get(region).copied().unwrap_or(""));
        }
    }
    f.loan = e.dpd.map(|d| LoanFacts {
        days_past_due: Some(d),
        ..Default::default()
    });
}

/// `zhudai bench warnings`.
pub fn warnings(
    events: u64,
    rules: usize,
    customers: u32,
    seconds: u64,
    json: bool,
) -> Result<(), Failure> {
    let fail = |m: String| Failure::Runtime(m);
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let ts = templates(rules);
    let specs: Vec<RuleSpec> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| RuleSpec {
            id: i as i64 + 1,
            code: format!("bench_{i}"),
            version: 1,
            name: format!("bench {i}"),
            category: Category::Other,
            stage: Stage::InLoan,
            severity: Severity::Low,
            on_events: t.on().iter().map(|s| (*s).to_owned()).collect(),
            condition: t.condition(),
            actions: Vec::new(),
        })
        .collect();
    let compile_start = Instant::now();
    let (set, problems) = RuleSet::compile(&specs).map_err(fail)?;
    let compile_time = compile_start.elapsed();
    if let Some((code, p)) = problems.first() {
        return Err(fail(format!("rule {code} does not compile: {p}")));
    }
    let aggs: Vec<WindowAggregate> = set.aggregates().cloned().collect();
    if json {
        out(&serde_json::json!({"kind": "context", "bench": "warnings", "build": build, "cpus": cpus, "load": load.trim(),
            "events": events, "rules": rules, "customers": customers, "aggregates": aggs.len()}).to_string());
    } else {
        out(&format!(
            "zhudai bench warnings · {build} build · {cpus} CPU(s) · /proc/loadavg {} · {events} events, {customers} customers, {rules} rules ({} distinct windowed aggregates), compiled in {:.1} ms",
            load.trim(),
            aggs.len(),
            compile_time.as_secs_f64() * 1000.0
        ));
    }
    let (stream, people) = generate(events, customers, 2026);
    let names: Vec<&str> = zhudai_domain::risk_warning::EVENT_TYPES
        .iter()
        .map(|e| e.code)
        .collect();
    let subjects: Vec<Subject> = (0..customers)
        .map(|c| Subject::Customer(i64::from(c)))
        .collect();

    // 1. End to end: windows, record filling and the applicable rules, event after event.
    let mut facts = Facts {
        customer: Some(CustomerFacts {
            kind: "individual".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut outcomes = Vec::new();
    let sample_every = (events / 20_000).max(1);
    let mut sample: Vec<(usize, Record, NativeRow)> = Vec::new();
    let mut ev = set.evaluator();
    let mut evaluations = 0u64;
    let mut fired = 0u64;
    let mut errors = 0u64;
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    for (i, e) in stream.iter().enumerate() {
        facts_of(&mut facts, e, &people, &names);
        let subject = subjects
            .get(e.customer as usize)
            .ok_or_else(|| fail("customer out of range".into()))?;
        ev.evaluate(subject, &facts, &mut outcomes)
            .map_err(|e| fail(e.to_string()))?;
        evaluations += outcomes.len() as u64;
        for o in &outcomes {
            match o.result {
                Ok(true) => fired += 1,
                Ok(false) => {}
                Err(_) => errors += 1,
            }
        }
        if (i as u64).is_multiple_of(sample_every) && sample.len() < 20_000 {
            let (age, region) = people.get(e.customer as usize).copied().unwrap_or((30, 0));
            sample.push((
                e.ty,
                ev.record().clone(),
                NativeRow {
                    ty: e.ty,
                    amount_fen: facts.amount_fen.unwrap_or(0),
                    days: facts.days.unwrap_or(0),
                    count: facts.count.unwrap_or(0),
                    dpd: e.dpd,
                    age,
                    region: REGIONS.get(region).copied().unwrap_or(""),
                    aggs: ev.aggregate_units(),
                },
            ));
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a));
    // The sample's cloning is inside the loop: 20,000 clones out of the whole stream.
    let per_cpu =
        |n: u64, ns: Option<u64>| ns.filter(|n| *n > 0).map(|ns| n as f64 / (ns as f64 / 1e9));
    line(
        json,
        "engine end to end: events per second (wall)",
        events as f64 / wall.as_secs_f64(),
        "events/s",
        events,
    );
    if let Some(v) = per_cpu(events, cpu) {
        line(
            json,
            "engine end to end: events per CPU-second",
            v,
            "events/cpu-s",
            events,
        );
    }
    if let Some(v) = per_cpu(evaluations, cpu) {
        line(
            json,
            "engine end to end: rule evaluations per CPU-second",
            v,
            "evals/cpu-s",
            evaluations,
        );
    }
    line(
        json,
        "engine end to end: rules fired",
        fired as f64,
        "hits",
        evaluations,
    );
    line(
        json,
        "engine end to end: rule errors (no outcome)",
        errors as f64,
        "errors",
        evaluations,
    );

    // 2. Rules only, on prepared records.
    let limit = Duration::from_secs(seconds);
    let timed = |f: &mut dyn FnMut() -> u64| -> (u64, Duration, Option<u64>) {
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < limit {
            n += f();
        }
        (
            n,
            t0.elapsed(),
            cpu0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a)),
        )
    };
    let mut hits_engine = 0u64;
    let (n, wall, cpu) = timed(&mut || {
        let mut n = 0;
        for (ty, rec, _) in &sample {
            for &i in set.rules_for(*ty) {
                if let Some(Ok(true)) = set.eval_rule(i, rec) {
                    hits_engine += 1;
                }
                n += 1;
            }
        }
        n
    });
    line(
        json,
        "rules only, per-type dispatch: evaluations per second (wall)",
        n as f64 / wall.as_secs_f64(),
        "evals/s",
        n,
    );
    if let Some(v) = per_cpu(n, cpu) {
        line(
            json,
            "rules only, per-type dispatch: evaluations per CPU-second",
            v,
            "evals/cpu-s",
            n,
        );
    }
    let rule_count = set.rules().len();
    let (n, wall, cpu) = timed(&mut || {
        let mut n = 0;
        for (_, rec, _) in &sample {
            for i in 0..rule_count {
                let _ = std::hint::black_box(set.eval_rule(i, rec));
                n += 1;
            }
        }
        n
    });
    line(
        json,
        "rules only, all rules on every record: evaluations per second (wall)",
        n as f64 / wall.as_secs_f64(),
        "evals/s",
        n,
    );
    if let Some(v) = per_cpu(n, cpu) {
        line(
            json,
            "rules only, all rules on every record: evaluations per CPU-second",
            v,
            "evals/cpu-s",
            n,
        );
    }

    // 3. Peer: the same predicates as Rust closures over a plain struct.
    let fraud = event_index("fraud_report").unwrap_or(usize::MAX);
    let natives: Vec<Native> = ts
        .iter()
        .map(|t| {
            let idx = t
                .aggregates()
                .iter()
                .map(|a| aggs.iter().position(|x| x == a).unwrap_or(usize::MAX))
                .collect();
            native(*t, idx, fraud)
        })
        .collect();
    // The engine's rule i is spec i (all compiled), so dispatch lists match.
    let mut hits_native = 0u64;
    let (n, wall, cpu) = timed(&mut || {
        let mut n = 0;
        for (ty, _, row) in &sample {
            for &i in set.rules_for(*ty) {
                if natives.get(i).is_some_and(|f| f(row)) {
                    hits_native += 1;
                }
                n += 1;
            }
        }
        n
    });
    line(
        json,
        "peer (hand-written Rust closures), per-type dispatch: per second (wall)",
        n as f64 / wall.as_secs_f64(),
        "evals/s",
        n,
    );
    if let Some(v) = per_cpu(n, cpu) {
        line(
            json,
            "peer (hand-written Rust closures), per-type dispatch: per CPU-second",
            v,
            "evals/cpu-s",
            n,
        );
    }
    // Same outcomes on one pass of the sample.
    let mut mismatches = 0;
    for (ty, rec, row) in &sample {
        for &i in set.rules_for(*ty) {
            let a = matches!(set.eval_rule(i, rec), Some(Ok(true)));
            let b = natives.get(i).is_some_and(|f| f(row));
            if a != b {
                mismatches += 1;
            }
        }
    }
    line(
        json,
        "sample records (engine and peer agree on every outcome)",
        sample.len() as f64,
        "records",
        sample.len() as u64,
    );
    let _ = (hits_engine, hits_native);
    if mismatches > 0 {
        return Err(fail(format!(
            "the engine and the peer disagree on {mismatches} outcomes"
        )));
    }
    Ok(())
}
