//! Windowed aggregates: `count(event, Nd)` and `sum(event.field, Nd)` as declared,
//! caller-filled fields with a checked spelling.

use zhudai_expr::{
    AggregateFn, Condition, ErrorCode, Schema, Type, WindowAggregate, MAX_WINDOW_DAYS,
};

fn base() -> Schema {
    Schema::builder()
        .field("event.type", Type::String)
        .field("customer.age", Type::Int)
        .window_event("repayment_failed", &[("amount", Type::decimal(2))])
        .window_event(
            "repayment_made",
            &[("amount", Type::decimal(2)), ("days_late", Type::Int)],
        )
        .window_event("login", &[])
        .build()
        .unwrap()
}

#[test]
fn aggregates_are_listed_checked_and_compiled_as_fields() {
    let base = base();
    let src = "count(repayment_failed, 30d) >= 3 && sum(repayment_made.amount, 90d) < 100.00 \
               || count(repayment_failed, 30d) > 10 || sum(repayment_made.days_late, 7d) > 20";
    let aggs = base.window_aggregates(src).unwrap();
    assert_eq!(
        aggs,
        vec![
            WindowAggregate::count("repayment_failed", 30),
            WindowAggregate::sum("repayment_made", "amount", 90),
            WindowAggregate::sum("repayment_made", "days_late", 7),
        ]
    );
    assert_eq!(aggs[0].to_string(), "count(repayment_failed, 30d)");
    assert_eq!(aggs[1].to_string(), "sum(repayment_made.amount, 90d)");
    assert_eq!(aggs[0].function, AggregateFn::Count);

    // The base schema has no slots for them: compiling says so instead of guessing.
    let e = Condition::compile(src, &base).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownField);
    assert!(e.message.contains("count(repayment_failed, 30d)"), "{e}");

    let schema = base.with_aggregates(&aggs).unwrap();
    assert_eq!(schema.aggregates().count(), 3);
    let rule = Condition::compile(src, &schema).unwrap();
    let mut rec = schema.new_record();
    let failed = schema.aggregate_slot(&aggs[0]).unwrap();
    let paid = schema.aggregate_slot(&aggs[1]).unwrap();
    let late = schema.aggregate_slot(&aggs[2]).unwrap();
    rec.set_int(failed, 3).unwrap();
    rec.set_decimal_units(paid, 9_999).unwrap(); // 99.99
    rec.set_int(late, 0).unwrap();
    assert_eq!(rule.eval(&rec), Ok(true));
    rec.set_decimal_units(paid, 10_000).unwrap();
    assert_eq!(rule.eval(&rec), Ok(false));
    rec.set_int(late, 21).unwrap();
    assert_eq!(rule.eval(&rec), Ok(true));
    // A sum of an int field is an int: comparing it with a string is a type error.
    let e = Condition::compile(r#"sum(repayment_made.days_late, 7d) == "x""#, &schema).unwrap_err();
    assert_eq!(e.code, ErrorCode::TypeMismatch, "{e}");
    // An unset aggregate is an evaluation error, never a silent 0.
    let mut empty = schema.new_record();
    empty.set_int(failed, 0).unwrap();
    assert!(rule.eval(&empty).is_err());
    // with_aggregates keeps what was declared and adds once.
    let again = schema.with_aggregates(&aggs[..1]).unwrap();
    assert_eq!(again.aggregates().count(), 3);
}

#[test]
fn unknown_events_fields_and_bad_windows_are_named() {
    let s = base();
    let e = s
        .window_aggregates("count(repayment_faild, 30d) > 1")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownField);
    assert!(
        e.message.contains(
            "unknown event type `repayment_faild` in `count`; did you mean `repayment_failed`?"
        ),
        "{e}"
    );
    assert_eq!((e.line, e.column), (1, 7));
    let e = s
        .window_aggregates("customer.age > 1 && sum(repayment_made.amout, 30d) > 1")
        .unwrap_err();
    assert!(
        e.message
            .contains("no numeric field `amout`; did you mean `repayment_made.amount`?"),
        "{e}"
    );
    let e = s
        .window_aggregates("sum(login.amount, 30d) > 1")
        .unwrap_err();
    assert!(e.message.contains("no numeric fields"), "{e}");
    let e = s
        .window_aggregates("sum(repayment_failed, 30d) > 1")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TypeMismatch);
    let e = s
        .window_aggregates("count(repayment_failed, 30) > 1")
        .unwrap_err();
    assert!(e.message.contains("window in days such as `30d`"), "{e}");
    let e = s
        .window_aggregates("count(repayment_failed, 0d) > 1")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadNumber);
    let e = s
        .window_aggregates(&format!(
            "count(repayment_failed, {}d) > 1",
            MAX_WINDOW_DAYS + 1
        ))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadNumber);
    let e = s
        .window_aggregates("count(repayment_failed) > 1")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Arity);
    // A window anywhere else is refused by the compiler.
    let e = Condition::compile("customer.age > 30d", &s).unwrap_err();
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(e.message.contains("window"), "{e}");
    // A schema without event types says so.
    let plain = Schema::builder().field("a.b", Type::Int).build().unwrap();
    let e = plain.window_aggregates("count(x, 1d) > 0").unwrap_err();
    assert!(e.message.contains("no event types are declared"), "{e}");
}

#[test]
fn schema_declarations_are_checked() {
    let e = Schema::builder()
        .field("window.count.x.d1", Type::Int)
        .build()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadSchema);
    let e = Schema::builder()
        .window_event("x", &[("note", Type::String)])
        .build()
        .unwrap_err();
    assert!(e.message.contains("only int and decimal"), "{e}");
    let e = Schema::builder()
        .window_event("x", &[])
        .window_event("x", &[])
        .build()
        .unwrap_err();
    assert!(e.message.contains("twice"), "{e}");
    let e = Schema::builder()
        .aggregate(&WindowAggregate::count("nope", 3))
        .build()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadSchema);
}
