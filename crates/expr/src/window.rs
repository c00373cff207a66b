//! Windowed aggregates over a subject's recent events: `count(repayment_failed, 30d)` and
//! `sum(repayment_made.amount, 90d)`.
//!
//! An aggregate is **not** computed by the expression. It is a declared field of the
//! schema, filled by the caller before evaluation, exactly like `customer.age`: the
//! expression stays a pure function of one [`Record`](crate::Record), so evaluation keeps
//! its cost (one slot read) and its guarantees (no I/O, no allocation). The language only
//! gives the field a readable spelling and checks it:
//!
//! 1. The schema declares which event types may be aggregated and their numeric fields
//!    ([`SchemaBuilder::window_event`](crate::SchemaBuilder::window_event)).
//! 2. [`Schema::window_aggregates`](crate::Schema::window_aggregates) parses a rule and
//!    lists the aggregates it uses, refusing unknown event types, unknown or non-numeric
//!    fields and bad windows with the usual positioned [`CompileError`].
//! 3. [`Schema::with_aggregates`](crate::Schema::with_aggregates) lays out one slot per
//!    aggregate (an `int` for a count, the field's type for a sum); rules compile against
//!    that schema, and the caller fills each slot (see
//!    [`Schema::aggregate_slot`](crate::Schema::aggregate_slot)) with the count or sum of
//!    the subject's events in the window before evaluating.
//!
//! A window `Nd` covers the instants `(t − N days, t]` for the evaluation instant `t`; what
//! "the subject" and "t" are is the caller's contract (the risk-warning engine documents
//! its own).

use std::fmt;

use crate::error::{CompileError, ErrorCode, Span};
use crate::syntax::{Expr, ExprKind};

/// Longest window, in days (ten years).
pub const MAX_WINDOW_DAYS: u32 = 3660;

/// The two aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateFn {
    /// Number of events of a type in the window (`int`).
    Count,
    /// Sum of a numeric field of the events of a type in the window (the field's type;
    /// 0 when there are none).
    Sum,
}

impl AggregateFn {
    /// `count` or `sum`.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Sum => "sum",
        }
    }
}

/// One windowed aggregate, e.g. `count(repayment_failed, 30d)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowAggregate {
    /// Count or sum.
    pub function: AggregateFn,
    /// The event type, e.g. `repayment_failed`.
    pub event: String,
    /// The summed field (sums only), e.g. `amount`.
    pub field: Option<String>,
    /// Window length in days.
    pub days: u32,
}

impl WindowAggregate {
    /// `count(event, {days}d)`.
    pub fn count(event: &str, days: u32) -> Self {
        WindowAggregate {
            function: AggregateFn::Count,
            event: event.to_owned(),
            field: None,
            days,
        }
    }

    /// `sum(event.field, {days}d)`.
    pub fn sum(event: &str, field: &str, days: u32) -> Self {
        WindowAggregate {
            function: AggregateFn::Sum,
            event: event.to_owned(),
            field: Some(field.to_owned()),
            days,
        }
    }

    /// The reserved schema field that holds the aggregate's value
    /// (`window.count.repayment_failed.d30`).
    pub fn field_name(&self) -> String {
        match &self.field {
            Some(f) => format!(
                "window.{}.{}.{f}.d{}",
                self.function.as_str(),
                self.event,
                self.days
            ),
            None => format!(
                "window.{}.{}.d{}",
                self.function.as_str(),
                self.event,
                self.days
            ),
        }
    }
}

impl fmt::Display for WindowAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{}({}.{field}, {}d)",
                self.function.as_str(),
                self.event,
                self.days
            ),
            None => write!(
                f,
                "{}({}, {}d)",
                self.function.as_str(),
                self.event,
                self.days
            ),
        }
    }
}

/// The prefix of the reserved aggregate fields.
pub(crate) const RESERVED_PREFIX: &str = "window.";

/// Reads a call of `count`/`sum` as an aggregate; `Ok(None)` for any other function.
pub(crate) fn recognise(
    name: &str,
    args: &[Expr],
    sp: Span,
) -> Result<Option<WindowAggregate>, CompileError> {
    let function = match name {
        "count" => AggregateFn::Count,
        "sum" => AggregateFn::Sum,
        _ => return Ok(None),
    };
    let shape = match function {
        AggregateFn::Count => "an event type and a window, e.g. `count(repayment_failed, 30d)`",
        AggregateFn::Sum => "an event field and a window, e.g. `sum(repayment_made.amount, 90d)`",
    };
    let [what, window] = args else {
        return Err(CompileError::new(
            ErrorCode::Arity,
            format!("`{name}` takes 2 arguments: {shape}"),
            sp,
        ));
    };
    let days = match window.kind {
        ExprKind::Days(d) => u32::try_from(d)
            .ok()
            .filter(|d| (1..=MAX_WINDOW_DAYS).contains(d))
            .ok_or_else(|| {
                CompileError::new(
                    ErrorCode::BadNumber,
                    format!("a window is 1 to {MAX_WINDOW_DAYS} days"),
                    window.span,
                )
            })?,
        _ => {
            return Err(CompileError::new(
                ErrorCode::TypeMismatch,
                format!("the second argument of `{name}` is a window in days such as `30d`"),
                window.span,
            ))
        }
    };
    let agg = match (function, &what.kind) {
        (AggregateFn::Count, ExprKind::Ident(event)) => WindowAggregate::count(event, days),
        (AggregateFn::Sum, ExprKind::Select(inner, field)) => match &inner.kind {
            ExprKind::Ident(event) => WindowAggregate::sum(event, field, days),
            _ => return Err(first_arg(name, shape, what.span)),
        },
        _ => return Err(first_arg(name, shape, what.span)),
    };
    Ok(Some(agg))
}

fn first_arg(name: &str, shape: &str, span: Span) -> CompileError {
    CompileError::new(
        ErrorCode::TypeMismatch,
        format!("`{name}` takes {shape}"),
        span,
    )
}

/// Every aggregate call in the tree with its span, in source order (not deduplicated).
pub(crate) fn collect(
    e: &Expr,
    out: &mut Vec<(WindowAggregate, Span, Span)>,
) -> Result<(), CompileError> {
    match &e.kind {
        ExprKind::Call {
            target: None,
            name,
            args,
            ..
        } if matches!(name.as_str(), "count" | "sum") => {
            if let Some(agg) = recognise(name, args, e.span)? {
                let what = args.first().map_or(e.span, |a| a.span);
                out.push((agg, e.span, what));
            }
            Ok(())
        }
        ExprKind::Call { target, args, .. } => {
            if let Some(t) = target {
                collect(t, out)?;
            }
            args.iter().try_for_each(|a| collect(a, out))
        }
        ExprKind::Select(inner, _) | ExprKind::Not(inner) | ExprKind::Neg(inner) => {
            collect(inner, out)
        }
        ExprKind::List(items) => items.iter().try_for_each(|a| collect(a, out)),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
            collect(a, out)?;
            collect(b, out)
        }
        ExprKind::Cond(a, b, c) => {
            collect(a, out)?;
            collect(b, out)?;
            collect(c, out)
        }
        ExprKind::Int(_)
        | ExprKind::Days(_)
        | ExprKind::Dec(..)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Null
        | ExprKind::Ident(_) => Ok(()),
    }
}

/// The event types a schema lets rules aggregate, with their numeric fields.
pub(crate) type Windows = Vec<(String, Vec<(String, crate::types::Scalar)>)>;

/// Checks an aggregate against the declared event types; returns the type of its value.
/// `what` is the span of its first argument (for the caret).
pub(crate) fn check(
    windows: &Windows,
    agg: &WindowAggregate,
    what: Span,
) -> Result<crate::types::Scalar, CompileError> {
    use crate::types::Scalar;
    let Some((_, fields)) = windows.iter().find(|(e, _)| *e == agg.event) else {
        let names = windows.iter().map(|(e, _)| e.as_str());
        let msg = match crate::compile::suggest(&agg.event, names) {
            Some(s) => format!(
                "unknown event type `{}` in `{}`; did you mean `{s}`?",
                agg.event,
                agg.function.as_str()
            ),
            None if windows.is_empty() => format!(
                "`{}` over events is not available here: no event types are declared",
                agg.function.as_str()
            ),
            None => format!(
                "unknown event type `{}` in `{}`; known: {}",
                agg.event,
                agg.function.as_str(),
                windows
                    .iter()
                    .map(|(e, _)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(CompileError::new(ErrorCode::UnknownField, msg, what));
    };
    if !(1..=MAX_WINDOW_DAYS).contains(&agg.days) {
        return Err(CompileError::new(
            ErrorCode::BadNumber,
            format!("a window is 1 to {MAX_WINDOW_DAYS} days"),
            what,
        ));
    }
    match &agg.field {
        None => Ok(Scalar::Int),
        Some(f) => match fields.iter().find(|(n, _)| n == f) {
            Some((_, t)) => Ok(*t),
            None => {
                let msg = match crate::compile::suggest(f, fields.iter().map(|(n, _)| n.as_str())) {
                    Some(s) => format!(
                        "event `{}` has no numeric field `{f}`; did you mean `{}.{s}`?",
                        agg.event, agg.event
                    ),
                    None if fields.is_empty() => {
                        format!("event `{}` has no numeric fields to sum", agg.event)
                    }
                    None => format!(
                        "event `{}` has no numeric field `{f}`; it has: {}",
                        agg.event,
                        fields
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Err(CompileError::new(ErrorCode::UnknownField, msg, what))
            }
        },
    }
}
