//! The warning engine, pure: rules compiled once against the warning schema, windowed
//! aggregates maintained incrementally per subject and written into the record before the
//! rules run. No I/O, no clock: [`super::evaluate_events`] feeds it from the database, the
//! rule tester feeds it sample rows, `zhudai bench warnings` feeds it synthetic events.
//!
//! # What a rule sees
//!
//! One [`Record`] per event, of the schema [`base_schema`] extended with the aggregates
//! the rule set uses: `event.*` (the event), `customer.*`, `loan.*` and `limit.*` (facts
//! the caller supplies; optional fields, test them with `has()`), and each
//! `count(type, Nd)` / `sum(type.field, Nd)`.
//!
//! # Windowed aggregates
//!
//! The subject of an event is its customer or, for events without one, its partner. A
//! window `Nd` at an event occurring at `t` covers the subject's events with
//! `t − N·86 400 000 ms < occurred_at ≤ t` **including the event itself** (so
//! `count(repayment_failed, 30d) >= 3` fires on the third failure). Events of a subject
//! must be fed in time order; each aggregate keeps a running count and sum and a pointer
//! to the oldest event inside its window, so an event costs O(1) per aggregate however
//! long the window.

use std::collections::HashMap;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use zhudai_domain::risk_warning::{Action, Category, EventField, Severity, Stage, EVENT_TYPES};
use zhudai_expr::{
    AggregateFn, CompileError, Condition, EvalError, Record, RecordError, Schema, Slot, Type,
    WindowAggregate,
};

/// Milliseconds per day (windows are whole days of 24 hours).
pub const DAY_MS: i64 = 86_400_000;

/// Scale of `event.rate` and of sums of rates.
pub const RATE_SCALE: u32 = 6;

/// The fields every warning rule may read, with their types.
pub const FIELDS: &[(&str, FieldType)] = &[
    ("event.type", FieldType::Str),
    ("event.stage", FieldType::Str),
    ("event.date", FieldType::Date),
    ("event.amount", FieldType::OptMoney),
    ("event.days", FieldType::OptInt),
    ("event.count", FieldType::OptInt),
    ("event.rate", FieldType::OptRate),
    ("event.code", FieldType::OptStr),
    ("event.partner", FieldType::OptStr),
    ("customer.kind", FieldType::OptStr),
    ("customer.age", FieldType::OptInt),
    ("customer.region", FieldType::OptStr),
    ("customer.in_group", FieldType::OptBool),
    ("loan.principal", FieldType::OptMoney),
    ("loan.outstanding", FieldType::OptMoney),
    ("loan.days_past_due", FieldType::OptInt),
    ("loan.product", FieldType::OptStr),
    ("loan.funder", FieldType::OptStr),
    ("loan.status", FieldType::OptStr),
    ("limit.amount", FieldType::OptMoney),
    ("limit.used", FieldType::OptMoney),
    ("limit.available", FieldType::OptMoney),
    ("limit.status", FieldType::OptStr),
];

/// The type of a schema field, as rule authors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Date,
    OptStr,
    OptInt,
    OptBool,
    /// `optional<decimal(2)>`, yuan.
    OptMoney,
    /// `optional<decimal(6)>`.
    OptRate,
}

impl FieldType {
    pub fn to_type(self) -> Type {
        match self {
            FieldType::Str => Type::String,
            FieldType::Date => Type::Date,
            FieldType::OptStr => Type::optional(Type::String),
            FieldType::OptInt => Type::optional(Type::Int),
            FieldType::OptBool => Type::optional(Type::Bool),
            FieldType::OptMoney => Type::optional(Type::decimal(2)),
            FieldType::OptRate => Type::optional(Type::decimal(RATE_SCALE)),
        }
    }
}

fn numeric_type(f: EventField) -> Option<Type> {
    match f {
        EventField::Amount => Some(Type::decimal(2)),
        EventField::Days | EventField::Count => Some(Type::Int),
        EventField::Rate => Some(Type::decimal(RATE_SCALE)),
        EventField::Code | EventField::Partner => None,
    }
}

/// The schema of warning rules without aggregates (`None` only if the constant
/// declarations above were invalid, which a unit test rules out).
pub fn base_schema() -> Option<&'static Schema> {
    static SCHEMA: OnceLock<Option<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut b = Schema::builder();
            for (name, t) in FIELDS {
                b = b.field(name, t.to_type());
            }
            for e in EVENT_TYPES {
                let numeric: Vec<(&str, Type)> = e
                    .fields
                    .iter()
                    .filter_map(|f| numeric_type(*f).map(|t| (f.as_str(), t)))
                    .collect();
                b = b.window_event(e.code, &numeric);
            }
            b.build().ok()
        })
        .as_ref()
}

/// A rule as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub id: i64,
    pub code: String,
    pub version: i64,
    pub name: String,
    pub category: Category,
    pub stage: Stage,
    pub severity: Severity,
    /// Event types it reacts to; empty = every event.
    pub on_events: Vec<String>,
    pub condition: String,
    pub actions: Vec<Action>,
}

/// Why a rule cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleProblem {
    /// The condition does not parse or type-check (names the field, with position).
    Condition(CompileError),
    /// An unknown event type in `on_events`.
    UnknownEvent(String),
    /// The warning schema itself is broken (a unit test rules this out).
    Internal(String),
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleProblem::Condition(e) => write!(f, "{e}"),
            RuleProblem::UnknownEvent(e) => write!(f, "unknown event type `{e}`"),
            RuleProblem::Internal(e) => f.write_str(e),
        }
    }
}

/// Checks a condition and its event list; returns the aggregates it uses.
pub fn check(condition: &str, on_events: &[String]) -> Result<Vec<WindowAggregate>, RuleProblem> {
    for e in on_events {
        if zhudai_domain::risk_warning::event_type(e).is_none() {
            return Err(RuleProblem::UnknownEvent(e.clone()));
        }
    }
    let base = base_schema()
        .ok_or_else(|| RuleProblem::Internal("the warning schema is invalid".into()))?;
    let aggs = base
        .window_aggregates(condition)
        .map_err(RuleProblem::Condition)?;
    let schema = base
        .with_aggregates(&aggs)
        .map_err(RuleProblem::Condition)?;
    Condition::compile(condition, &schema).map_err(RuleProblem::Condition)?;
    Ok(aggs)
}

/// One event as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Index into [`EVENT_TYPES`].
    pub event_type: usize,
    pub occurred_at_ms: i64,
    pub amount_fen: Option<i64>,
    pub days: Option<i64>,
    pub count: Option<i64>,
    pub rate: Option<Decimal>,
    pub code: Option<String>,
    pub partner: Option<String>,
    pub customer: Option<CustomerFacts>,
    pub loan: Option<LoanFacts>,
    pub limit: Option<LimitFacts>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFacts {
    pub kind: String,
    pub age: Option<i64>,
    pub region: Option<String>,
    pub in_group: bool,
}

/// Loan facts the caller supplies (the loans capability, the daily close).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoanFacts {
    pub principal_fen: Option<i64>,
    pub outstanding_fen: Option<i64>,
    pub days_past_due: Option<i64>,
    pub product: Option<String>,
    pub funder: Option<String>,
    pub status: Option<String>,
}

/// The customer's credit line at the time of the event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitFacts {
    pub amount_fen: i64,
    pub used_fen: i64,
    pub status: String,
}

/// An event in a subject's history: what the aggregates add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistEvent {
    pub at_ms: i64,
    pub event_type: usize,
    pub amount_fen: i64,
    pub days: i64,
    pub count: i64,
    /// Rate in millionths.
    pub rate_units: i128,
}

impl HistEvent {
    pub fn of(f: &Facts) -> Self {
        HistEvent {
            at_ms: f.occurred_at_ms,
            event_type: f.event_type,
            amount_fen: f.amount_fen.unwrap_or(0),
            days: f.days.unwrap_or(0),
            count: f.count.unwrap_or(0),
            rate_units: f.rate.map_or(0, rate_units),
        }
    }
}

/// A rate as millionths (truncated beyond six places).
pub fn rate_units(r: Decimal) -> i128 {
    let mut r = r;
    r.rescale(RATE_SCALE);
    r.mantissa()
}

/// What a subject's history is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Customer(i64),
    Partner(String),
    /// Sample rows of the rule tester, keyed by their label.
    Sample(String),
}

#[derive(Debug, Clone)]
struct AggPlan {
    agg: WindowAggregate,
    slot: Slot,
    event_type: usize,
    field: Option<EventField>,
    window_ms: i64,
}

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    pub spec: RuleSpec,
    condition: Condition,
}

#[derive(Debug, Clone, Copy)]
struct Slots {
    ev_type: Slot,
    ev_stage: Slot,
    ev_date: Slot,
    ev_amount: Slot,
    ev_days: Slot,
    ev_count: Slot,
    ev_rate: Slot,
    ev_code: Slot,
    ev_partner: Slot,
    c_kind: Slot,
    c_age: Slot,
    c_region: Slot,
    c_group: Slot,
    l_principal: Slot,
    l_outstanding: Slot,
    l_dpd: Slot,
    l_product: Slot,
    l_funder: Slot,
    l_status: Slot,
    lim_amount: Slot,
    lim_used: Slot,
    lim_available: Slot,
    lim_status: Slot,
}

/// The enabled rules, compiled against one schema, indexed by the event types they
/// react to.
#[derive(Debug)]
pub struct RuleSet {
    schema: Schema,
    slots: Slots,
    aggs: Vec<AggPlan>,
    rules: Vec<CompiledRule>,
    by_type: Vec<Vec<usize>>,
}

impl RuleSet {
    /// Compiles `specs` into one set. A rule that does not compile (say, an enabled rule
    /// written for an older schema) is left out and returned with its problem.
    pub fn compile(specs: &[RuleSpec]) -> Result<(RuleSet, Vec<(String, RuleProblem)>), String> {
        let base = base_schema().ok_or("the warning schema is invalid")?;
        let mut problems = Vec::new();
        let mut good: Vec<(&RuleSpec, Vec<WindowAggregate>)> = Vec::new();
        for s in specs {
            match check(&s.condition, &s.on_events) {
                Ok(aggs) => good.push((s, aggs)),
                Err(p) => problems.push((s.code.clone(), p)),
            }
        }
        let all: Vec<&WindowAggregate> = good.iter().flat_map(|(_, a)| a.iter()).collect();
        let schema = base.with_aggregates(all).map_err(|e| e.to_string())?;
        let slot = |n: &str| schema.slot(n).ok_or_else(|| format!("no slot {n}"));
        let slots = Slots {
            ev_type: slot("event.type")?,
            ev_stage: slot("event.stage")?,
            ev_date: slot("event.date")?,
            ev_amount: slot("event.amount")?,
            ev_days: slot("event.days")?,
            ev_count: slot("event.count")?,
            ev_rate: slot("event.rate")?,
            ev_code: slot("event.code")?,
            ev_partner: slot("event.partner")?,
            c_kind: slot("customer.kind")?,
            c_age: slot("customer.age")?,
            c_region: slot("customer.region")?,
            c_group: slot("customer.in_group")?,
            l_principal: slot("loan.principal")?,
            l_outstanding: slot("loan.outstanding")?,
            l_dpd: slot("loan.days_past_due")?,
            l_product: slot("loan.product")?,
            l_funder: slot("loan.funder")?,
            l_status: slot("loan.status")?,
            lim_amount: slot("limit.amount")?,
            lim_used: slot("limit.used")?,
            lim_available: slot("limit.available")?,
            lim_status: slot("limit.status")?,
        };
        let mut aggs = Vec::new();
        for agg in schema.aggregates() {
            let event_type = EVENT_TYPES
                .iter()
                .position(|e| e.code == agg.event)
                .ok_or_else(|| format!("unknown event {}", agg.event))?;
            let field = match &agg.field {
                Some(f) => Some(
                    EventField::ALL
                        .iter()
                        .copied()
                        .find(|x| x.as_str() == f)
                        .ok_or_else(|| format!("unknown field {f}"))?,
                ),
                None => None,
            };
            aggs.push(AggPlan {
                slot: schema
                    .aggregate_slot(agg)
                    .ok_or_else(|| format!("no slot for {agg}"))?,
                agg: agg.clone(),
                event_type,
                field,
                window_ms: i64::from(agg.days) * DAY_MS,
            });
        }
        let mut rules = Vec::new();
        let mut by_type = vec![Vec::new(); EVENT_TYPES.len()];
        for (spec, _) in good {
            match Condition::compile(&spec.condition, &schema) {
                Ok(condition) => {
                    let i = rules.len();
                    for (t, e) in EVENT_TYPES.iter().enumerate() {
                        if spec.on_events.is_empty() || spec.on_events.iter().any(|x| x == e.code) {
                            if let Some(v) = by_type.get_mut(t) {
                                v.push(i);
                            }
                        }
                    }
                    rules.push(CompiledRule {
                        spec: spec.clone(),
                        condition,
                    });
                }
                Err(e) => problems.push((spec.code.clone(), RuleProblem::Condition(e))),
            }
        }
        Ok((
            RuleSet {
                schema,
                slots,
                aggs,
                rules,
                by_type,
            },
            problems,
        ))
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The aggregates the set uses.
    pub fn aggregates(&self) -> impl Iterator<Item = &WindowAggregate> {
        self.aggs.iter().map(|a| &a.agg)
    }

    /// The longest window, in ms (how much history a batch needs).
    pub fn max_window_ms(&self) -> i64 {
        self.aggs.iter().map(|a| a.window_ms).max().unwrap_or(0)
    }

    /// The rules that react to an event type.
    pub fn rules_for(&self, event_type: usize) -> &[usize] {
        self.by_type.get(event_type).map_or(&[], |v| v.as_slice())
    }

    /// Evaluates rule `i` on a record of this set's schema.
    #[inline]
    pub fn eval_rule(&self, i: usize, rec: &Record) -> Option<Result<bool, EvalError>> {
        self.rules.get(i).map(|r| r.condition.eval(rec))
    }

    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator {
            set: self,
            rec: self.schema.new_record(),
            windows: HashMap::new(),
            values: vec![AggValue::default(); self.aggs.len()],
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AggValue {
    count: i64,
    /// Sum in the field's units (fen, days, count, millionths).
    sum: i128,
}

#[derive(Debug, Default)]
struct Window {
    events: Vec<HistEvent>,
    /// Per aggregate: index of the oldest event inside its window, and its value.
    state: Vec<(usize, AggValue)>,
}

fn contribution(e: &HistEvent, field: Option<EventField>) -> i128 {
    match field {
        Some(EventField::Amount) => i128::from(e.amount_fen),
        Some(EventField::Days) => i128::from(e.days),
        Some(EventField::Count) => i128::from(e.count),
        Some(EventField::Rate) => e.rate_units,
        _ => 0,
    }
}

impl Window {
    fn push(&mut self, aggs: &[AggPlan], e: HistEvent) {
        if self.state.len() != aggs.len() {
            self.state = vec![(0, AggValue::default()); aggs.len()];
        }
        self.events.push(e);
        for (plan, (lo, v)) in aggs.iter().zip(self.state.iter_mut()) {
            if e.event_type == plan.event_type {
                v.count += 1;
                v.sum += contribution(&e, plan.field);
            }
            let start = e.at_ms - plan.window_ms;
            while let Some(old) = self.events.get(*lo) {
                if old.at_ms > start {
                    break;
                }
                if old.event_type == plan.event_type {
                    v.count -= 1;
                    v.sum -= contribution(old, plan.field);
                }
                *lo += 1;
            }
        }
        // Drop what every window has passed, now and then.
        let oldest = self
            .state
            .iter()
            .map(|(lo, _)| *lo)
            .min()
            .unwrap_or(self.events.len());
        if oldest > 64 && oldest * 2 > self.events.len() {
            self.events.drain(..oldest);
            for (lo, _) in &mut self.state {
                *lo -= oldest;
            }
        }
    }
}

/// What one rule did on one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Index into [`RuleSet::rules`].
    pub rule: usize,
    /// `Ok(true)`: fired. `Err`: the rule has no outcome for this event (rule error).
    pub result: Result<bool, EvalError>,
}

/// Evaluates events one after the other, keeping each subject's window.
#[derive(Debug)]
pub struct Evaluator<'r> {
    set: &'r RuleSet,
    rec: Record,
    windows: HashMap<Subject, Window>,
    values: Vec<AggValue>,
}

impl Evaluator<'_> {
    /// Adds an earlier event to a subject's history without evaluating rules.
    pub fn history(&mut self, subject: &Subject, e: HistEvent) {
        let aggs = &self.set.aggs;
        match self.windows.get_mut(subject) {
            Some(w) => w.push(aggs, e),
            None => {
                let mut w = Window::default();
                w.push(aggs, e);
                self.windows.insert(subject.clone(), w);
            }
        }
    }

    /// Adds the event to its subject's history, fills the record, and evaluates the rules
    /// that react to its type; `out` receives one outcome per rule evaluated.
    pub fn evaluate(
        &mut self,
        subject: &Subject,
        f: &Facts,
        out: &mut Vec<Outcome>,
    ) -> Result<(), RecordError> {
        out.clear();
        self.prepare(subject, f)?;
        for &i in self.set.rules_for(f.event_type) {
            if let Some(r) = self.set.rules.get(i) {
                out.push(Outcome {
                    rule: i,
                    result: r.condition.eval(&self.rec),
                });
            }
        }
        Ok(())
    }

    /// The first half of [`Evaluator::evaluate`]: adds the event to its subject's window
    /// and fills the record (aggregates included) without running any rule. With
    /// [`Evaluator::record`] and [`RuleSet::eval_rule`] it lets a benchmark time rule
    /// evaluation apart from the rest.
    pub fn prepare(&mut self, subject: &Subject, f: &Facts) -> Result<(), RecordError> {
        self.history(subject, HistEvent::of(f));
        if let Some(w) = self.windows.get(subject) {
            for (v, (_, s)) in self.values.iter_mut().zip(&w.state) {
                *v = *s;
            }
        }
        self.fill(f)
    }

    /// The record of the last prepared event.
    pub fn record(&self) -> &Record {
        &self.rec
    }

    /// The aggregates of the last prepared event in their units (a count; fen, days,
    /// counts or millionths for a sum), in the order of [`RuleSet::aggregates`].
    pub fn aggregate_units(&self) -> Vec<i128> {
        self.set
            .aggs
            .iter()
            .zip(&self.values)
            .map(|(p, v)| match p.agg.function {
                AggregateFn::Count => i128::from(v.count),
                AggregateFn::Sum => v.sum,
            })
            .collect()
    }

    /// The aggregates of the last evaluated event, as `("count(x, 30d)", "3")`.
    pub fn aggregate_values(&self) -> Vec<(String, String)> {
        self.set
            .aggs
            .iter()
            .zip(&self.values)
            .map(|(p, v)| {
                let text = match (p.agg.function, p.field) {
                    (AggregateFn::Count, _) => v.count.to_string(),
                    (AggregateFn::Sum, Some(EventField::Amount)) => {
                        zhudai_domain::Fen::new(i64::try_from(v.sum).unwrap_or(i64::MAX))
                            .to_string()
                    }
                    (AggregateFn::Sum, Some(EventField::Rate)) => {
                        Decimal::try_from_i128_with_scale(v.sum, RATE_SCALE)
                            .map(|d| d.normalize().to_string())
                            .unwrap_or_default()
                    }
                    (AggregateFn::Sum, _) => v.sum.to_string(),
                };
                (p.agg.to_string(), text)
            })
            .collect()
    }

    fn fill(&mut self, f: &Facts) -> Result<(), RecordError> {
        let s = self.set.slots;
        let rec = &mut self.rec;
        rec.clear();
        let def = EVENT_TYPES.get(f.event_type);
        rec.set_str(s.ev_type, def.map_or("", |d| d.code))?;
        rec.set_str(s.ev_stage, def.map_or("", |d| d.stage.as_str()))?;
        let date = chrono::DateTime::from_timestamp_millis(f.occurred_at_ms)
            .map(zhudai_domain::clock::business_date)
            .unwrap_or_default();
        rec.set_date(s.ev_date, date)?;
        if let Some(v) = f.amount_fen {
            rec.set_decimal_units(s.ev_amount, i128::from(v))?;
        }
        if let Some(v) = f.days {
            rec.set_int(s.ev_days, v)?;
        }
        if let Some(v) = f.count {
            rec.set_int(s.ev_count, v)?;
        }
        if let Some(v) = f.rate {
            rec.set_decimal_units(s.ev_rate, rate_units(v))?;
        }
        if let Some(v) = &f.code {
            rec.set_str(s.ev_code, v)?;
        }
        if let Some(v) = &f.partner {
            rec.set_str(s.ev_partner, v)?;
        }
        if let Some(c) = &f.customer {
            rec.set_str(s.c_kind, &c.kind)?;
            if let Some(a) = c.age {
                rec.set_int(s.c_age, a)?;
            }
            if let Some(r) = &c.region {
                rec.set_str(s.c_region, r)?;
            }
            rec.set_bool(s.c_group, c.in_group)?;
        }
        if let Some(l) = &f.loan {
            if let Some(v) = l.principal_fen {
                rec.set_decimal_units(s.l_principal, i128::from(v))?;
            }
            if let Some(v) = l.outstanding_fen {
                rec.set_decimal_units(s.l_outstanding, i128::from(v))?;
            }
            if let Some(v) = l.days_past_due {
                rec.set_int(s.l_dpd, v)?;
            }
            if let Some(v) = &l.product {
                rec.set_str(s.l_product, v)?;
            }
            if let Some(v) = &l.funder {
                rec.set_str(s.l_funder, v)?;
            }
            if let Some(v) = &l.status {
                rec.set_str(s.l_status, v)?;
            }
        }
        if let Some(l) = &f.limit {
            rec.set_decimal_units(s.lim_amount, i128::from(l.amount_fen))?;
            rec.set_decimal_units(s.lim_used, i128::from(l.used_fen))?;
            rec.set_decimal_units(
                s.lim_available,
                i128::from((l.amount_fen - l.used_fen).max(0)),
            )?;
            rec.set_str(s.lim_status, &l.status)?;
        }
        for (p, v) in self.set.aggs.iter().zip(&self.values) {
            match p.agg.function {
                AggregateFn::Count => rec.set_int(p.slot, v.count)?,
                AggregateFn::Sum => match p.field {
                    Some(EventField::Days | EventField::Count) => {
                        rec.set_int(p.slot, i64::try_from(v.sum).unwrap_or(i64::MAX))?
                    }
                    _ => rec.set_decimal_units(p.slot, v.sum)?,
                },
            }
        }
        Ok(())
    }
}

/// The index of an event type in [`EVENT_TYPES`].
pub fn event_index(code: &str) -> Option<usize> {
    EVENT_TYPES.iter().position(|e| e.code == code)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn spec(code: &str, on: &[&str], condition: &str) -> RuleSpec {
        RuleSpec {
            id: 1,
            code: code.into(),
            version: 1,
            name: code.into(),
            category: Category::Repayment,
            stage: Stage::InLoan,
            severity: Severity::High,
            on_events: on.iter().map(|s| s.to_string()).collect(),
            condition: condition.into(),
            actions: vec![],
        }
    }

    fn failed(at_ms: i64) -> Facts {
        Facts {
            event_type: event_index("repayment_failed").unwrap(),
            occurred_at_ms: at_ms,
            amount_fen: Some(10_000),
            ..Default::default()
        }
    }

    #[test]
    fn the_base_schema_builds() {
        assert!(base_schema().is_some());
        assert!(check("event.amount > 1.00", &[]).is_ok());
    }

    #[test]
    fn unknown_fields_and_events_are_named() {
        match check("customer.agee > 30", &[]) {
            Err(RuleProblem::Condition(e)) => {
                assert_eq!(e.code.as_str(), "E101");
                assert!(e.message.contains("did you mean `customer.age`"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        match check("count(repayment_faild, 30d) > 1", &[]) {
            Err(RuleProblem::Condition(e)) => assert!(e.message.contains("repayment_failed")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            check("true", &["nope".into()]),
            Err(RuleProblem::UnknownEvent("nope".into()))
        );
    }

    #[test]
    fn counts_include_the_event_and_slide() {
        let (set, problems) = RuleSet::compile(&[spec(
            "three",
            &["repayment_failed"],
            "count(repayment_failed, 30d) >= 3",
        )])
        .unwrap();
        assert!(problems.is_empty());
        let mut ev = set.evaluator();
        let s = Subject::Customer(7);
        let mut out = Vec::new();
        let day = DAY_MS;
        ev.evaluate(&s, &failed(0), &mut out).unwrap();
        assert_eq!(out[0].result, Ok(false));
        ev.evaluate(&s, &failed(10 * day), &mut out).unwrap();
        assert_eq!(out[0].result, Ok(false));
        ev.evaluate(&s, &failed(29 * day), &mut out).unwrap();
        assert_eq!(out[0].result, Ok(true));
        // Exactly 30 days after the first: the first is outside (t − 30d, t].
        ev.evaluate(&s, &failed(30 * day), &mut out).unwrap();
        assert_eq!(out[0].result, Ok(true), "{:?}", ev.aggregate_values());
        assert_eq!(ev.aggregate_values()[0].1, "3");
        // Another customer has its own window.
        ev.evaluate(&Subject::Customer(8), &failed(30 * day), &mut out)
            .unwrap();
        assert_eq!(out[0].result, Ok(false));
        // Other event types do not reach the rule.
        let paid = Facts {
            event_type: event_index("repayment_made").unwrap(),
            occurred_at_ms: 31 * day,
            amount_fen: Some(1),
            ..Default::default()
        };
        ev.evaluate(&s, &paid, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn sums_match_a_naive_recount() {
        // sum(repayment_failed.amount, 7d) against a direct recount over random events.
        let (set, _) = RuleSet::compile(&[spec(
            "s",
            &[],
            "sum(repayment_failed.amount, 7d) > 500.00 || count(overdue, 3d) > 1",
        )])
        .unwrap();
        let mut ev = set.evaluator();
        let mut out = Vec::new();
        let mut seed = 42u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let mut hist: Vec<(i64, usize, i64)> = Vec::new();
        let mut t = 0;
        let types = [
            event_index("repayment_failed").unwrap(),
            event_index("overdue").unwrap(),
            event_index("repayment_made").unwrap(),
        ];
        for _ in 0..2000 {
            t += next() % (DAY_MS / 2);
            let ty = types[(next() % 3) as usize];
            let amount = next() % 30_000;
            let f = Facts {
                event_type: ty,
                occurred_at_ms: t,
                amount_fen: Some(amount),
                days: Some(1),
                ..Default::default()
            };
            hist.push((t, ty, amount));
            ev.evaluate(&Subject::Customer(1), &f, &mut out).unwrap();
            let sum: i64 = hist
                .iter()
                .filter(|(at, ty, _)| *ty == types[0] && *at > t - 7 * DAY_MS)
                .map(|(_, _, a)| a)
                .sum();
            let overdue = hist
                .iter()
                .filter(|(at, ty, _)| *ty == types[1] && *at > t - 3 * DAY_MS)
                .count();
            assert_eq!(out[0].result, Ok(sum > 50_000 || overdue > 1));
        }
    }

    #[test]
    fn bad_rules_are_left_out_and_errors_are_outcomes() {
        let (set, problems) = RuleSet::compile(&[
            spec("bad", &[], "customer.nope"),
            spec("absent", &[], "loan.days_past_due > 30"),
        ])
        .unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "bad");
        let mut ev = set.evaluator();
        let mut out = Vec::new();
        ev.evaluate(&Subject::Customer(1), &failed(0), &mut out)
            .unwrap();
        // No loan facts: reading an absent optional is a rule error, not a pass.
        assert!(out[0].result.is_err());
    }
}
