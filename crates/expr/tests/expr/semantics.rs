//! Language behaviour: values, decimals, errors, missing data, compile diagnostics.

use chrono::NaiveDate;
use rust_decimal_macros::dec;
use zhudai_expr::{
    CompileError, Condition, ErrorCode, EvalErrorKind, Program, Record, RecordError, Schema, Type,
    Value,
};

fn schema() -> Schema {
    Schema::builder()
        .field("app.amount", Type::decimal(2))
        .field("app.rate", Type::decimal(6))
        .field("app.channel", Type::String)
        .field("app.term", Type::Int)
        .field("app.apply_date", Type::Date)
        .field("app.co_borrower", Type::optional(Type::String))
        .field("app.tags", Type::list(Type::String))
        .field("app.scores", Type::list(Type::Int))
        .field("app.fees", Type::list(Type::decimal(2)))
        .field("customer.age", Type::Int)
        .field("customer.blacklisted", Type::Bool)
        .field("customer.name", Type::String)
        .field("customer.phone", Type::String)
        .field("customer.income", Type::optional(Type::decimal(2)))
        .field("customer.birth", Type::Date)
        .field("now.date", Type::Date)
        .build()
        .unwrap()
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn record(schema: &Schema) -> Record {
    let mut r = schema.new_record();
    r.set("app.amount", Value::Decimal(dec!(80000.00))).unwrap();
    r.set("app.rate", Value::Decimal(dec!(0.0365))).unwrap();
    r.set("app.channel", Value::String("web".into())).unwrap();
    r.set("app.term", Value::Int(12)).unwrap();
    r.set("app.apply_date", Value::Date(d("2024-01-31")))
        .unwrap();
    r.set(
        "app.tags",
        Value::List(vec![
            Value::String("new".into()),
            Value::String("vip".into()),
        ]),
    )
    .unwrap();
    r.set(
        "app.scores",
        Value::List(vec![Value::Int(640), Value::Int(710), Value::Int(580)]),
    )
    .unwrap();
    r.set(
        "app.fees",
        Value::List(vec![Value::Decimal(dec!(10.50)), Value::Decimal(dec!(99))]),
    )
    .unwrap();
    r.set("customer.age", Value::Int(35)).unwrap();
    r.set("customer.blacklisted", Value::Bool(false)).unwrap();
    r.set("customer.name", Value::String("张三".into()))
        .unwrap();
    r.set("customer.phone", Value::String("6217001234".into()))
        .unwrap();
    r.set("customer.birth", Value::Date(d("1989-06-04")))
        .unwrap();
    r.set("now.date", Value::Date(d("2024-03-01"))).unwrap();
    r
}

fn eval(src: &str) -> Result<Value, zhudai_expr::EvalError> {
    let s = schema();
    let p = Program::compile(src, &s).unwrap_or_else(|e| panic!("{}", e.render()));
    p.eval(&record(&s))
}

fn yes(src: &str) {
    assert_eq!(eval(src), Ok(Value::Bool(true)), "{src}");
}

fn compile_err(src: &str) -> CompileError {
    match Program::compile(src, &schema()) {
        Ok(_) => panic!("`{src}` compiled"),
        Err(e) => e,
    }
}

fn eval_err(src: &str) -> EvalErrorKind {
    match eval(src) {
        Ok(v) => panic!("`{src}` evaluated to {v}"),
        Err(e) => e.kind(),
    }
}

const FIVE: &str = r#"app.amount > 50000.00 && customer.age >= 18 && customer.age <= 60 && !customer.blacklisted && app.channel in ["web", "app"]"#;

#[test]
fn five_clause_rule() {
    let s = schema();
    let rule = Condition::compile(FIVE, &s).unwrap();
    let mut r = record(&s);
    assert_eq!(rule.eval(&r), Ok(true));
    r.set("app.channel", Value::String("branch".into()))
        .unwrap();
    assert_eq!(rule.eval(&r), Ok(false));
    r.set("app.channel", Value::String("app".into())).unwrap();
    r.set("customer.age", Value::Int(61)).unwrap();
    assert_eq!(rule.eval(&r), Ok(false));
    r.set("customer.age", Value::Int(60)).unwrap();
    r.set("app.amount", Value::Decimal(dec!(50000.00))).unwrap();
    assert_eq!(rule.eval(&r), Ok(false));
    r.set("app.amount", Value::Decimal(dec!(50000.01))).unwrap();
    assert_eq!(rule.eval(&r), Ok(true));
    r.set("customer.blacklisted", Value::Bool(true)).unwrap();
    assert_eq!(rule.eval(&r), Ok(false));
    assert_eq!(rule.source(), FIVE);
}

#[test]
fn decimals_are_exact() {
    yes("0.1 + 0.2 == 0.3");
    yes("app.amount == 80000");
    yes("app.amount == 80000.000");
    yes("app.amount > 79999.999");
    yes("app.rate == 0.0365");
    // scale 2 × scale 6 → scale 8
    assert_eq!(
        eval("app.amount * app.rate"),
        Ok(Value::Decimal(dec!(2920.00000000)))
    );
    assert_eq!(
        eval("app.amount / 3"),
        Ok(Value::Decimal(dec!(26666.66666667)))
    );
    assert_eq!(eval("1.00 / 8"), Ok(Value::Decimal(dec!(0.12500000))));
    assert_eq!(
        eval("-app.amount + 0.5"),
        Ok(Value::Decimal(dec!(-79999.50)))
    );
    assert_eq!(eval("10.5 % 3"), Ok(Value::Decimal(dec!(1.5))));
    yes(r#"decimal("1.10") == 1.1"#);
    yes("decimal(3) == 3.0");
    assert_eq!(eval("int(app.amount / 7)"), Ok(Value::Int(11428)));
    assert_eq!(eval("int(-2.9)"), Ok(Value::Int(-2)));
    assert_eq!(
        eval("string(app.amount)"),
        Ok(Value::String("80000.00".into()))
    );
    assert_eq!(eval("string(-0.05)"), Ok(Value::String("-0.05".into())));
    assert_eq!(eval_err("app.amount / 0"), EvalErrorKind::DivisionByZero);
    assert_eq!(eval_err("app.amount / 0.00"), EvalErrorKind::DivisionByZero);
    yes("app.fees.exists(f, f >= 99) && !app.fees.exists(f, f > 99)");
    yes("app.amount in [1.5, 80000] && !(app.amount in [1.5, 2]) && 1.25 in [1.5, 1.250]");
    yes("app.amount in [1.5, customer.age, 80000]");
    yes("99 in app.fees && 10.5 in app.fees && !(10.501 in app.fees) && 99.000 in app.fees");
    assert_eq!(
        Program::compile("app.amount * app.rate", &schema())
            .unwrap()
            .result_type(),
        &Type::decimal(8)
    );
}

#[test]
fn integers_follow_cel() {
    yes("-7 / 2 == -3 && -7 % 2 == -1 && 7 % -3 == 1");
    yes("0x10 == 16");
    assert_eq!(eval_err("9223372036854775807 + 1"), EvalErrorKind::Overflow);
    assert_eq!(
        eval_err("-9223372036854775808 - 1"),
        EvalErrorKind::Overflow
    );
    assert_eq!(
        eval_err("-9223372036854775808 / -1"),
        EvalErrorKind::Overflow
    );
    assert_eq!(eval_err("-(-9223372036854775808)"), EvalErrorKind::Overflow);
    assert_eq!(
        eval_err("customer.age / (app.term - 12)"),
        EvalErrorKind::DivisionByZero
    );
    assert_eq!(eval_err("customer.age % 0"), EvalErrorKind::DivisionByZero);
    assert_eq!(eval("customer.age * 2 + app.term"), Ok(Value::Int(82)));
    assert_eq!(eval(r#"int("42") + 1"#), Ok(Value::Int(43)));
    assert_eq!(eval_err(r#"int(customer.name)"#), EvalErrorKind::Conversion);
    // CEL builds a list before measuring it: an element's error is the result.
    assert_eq!(
        eval_err("size([1, 1 / 0]) == 2"),
        EvalErrorKind::DivisionByZero
    );
    yes("size([1, 2, customer.age]) == 3");
}

#[test]
fn strings() {
    yes(r#"customer.phone.startsWith("62") && customer.phone.endsWith("34")"#);
    yes(r#"customer.phone.contains("700") && !customer.phone.contains("999")"#);
    yes(r#"customer.phone.matches("^62[0-9]{8}$") && !customer.name.matches("[a-z]")"#);
    yes(r#"matches(customer.phone, "^6")"#);
    yes(r#"size(customer.name) == 2 && customer.name.size() == 2 && size("") == 0"#);
    yes(r#"customer.name + "先生" == "张三先生""#);
    yes(r#""a\tb" == 'a\x09b' && "\u00e9" == "é" && r"\d" == "\\d""#);
    yes(r#""abc" < "abd" && "Z" < "a" && "" < "a""#);
    yes(r#"string(customer.age) == "35" && string(true) == "true""#);
    yes(r#"string(now.date) == "2024-03-01""#);
}

#[test]
fn lists_and_macros() {
    yes(r#""vip" in app.tags && !("gold" in app.tags)"#);
    yes("710 in app.scores && size(app.scores) == 3 && app.scores[1] == 710");
    yes("app.scores.exists(s, s < 600) && !app.scores.all(s, s >= 600)");
    yes("app.scores.exists_one(s, s > 700)");
    yes(r#"app.tags.all(t, size(t) == 3)"#);
    yes(r#"[1, 2, 3].exists(x, x == customer.age - 33)"#);
    yes(r#"["a", customer.name].exists(n, n.startsWith("张"))"#);
    yes("[customer.age, app.term].all(x, x > 10)");
    yes("customer.age in [app.term, 35, 40]");
    yes(r#"customer.name in ["李四", customer.name]"#);
    // Nested macros with shadowing-free names.
    yes("app.scores.exists(a, app.scores.exists(b, a - b == 130))");
    // An element variable shadows nothing in the schema but can't be selected into.
    let e = compile_err("app.scores.exists(s, s.x > 1)");
    assert_eq!(e.code, ErrorCode::TypeMismatch);
    assert_eq!(
        eval_err("app.scores[3] > 0"),
        EvalErrorKind::IndexOutOfRange
    );
    assert_eq!(
        eval_err("app.scores[-1] > 0"),
        EvalErrorKind::IndexOutOfRange
    );
    // Large constant lists use a hash set.
    let many: Vec<String> = (0..40).map(|i| format!("\"c{i}\"")).collect();
    let src = format!("app.channel in [{}, \"web\"]", many.join(", "));
    yes(&src);
    let ints: Vec<String> = (100..140).map(|i| i.to_string()).collect();
    yes(&format!("!(customer.age in [{}])", ints.join(",")));
    yes(&format!("(customer.age + 100) in [{}]", ints.join(",")));
}

#[test]
fn dates() {
    yes("days_between(app.apply_date, now.date) == 30");
    yes(r#"add_days(app.apply_date, 30) == now.date && add_days(now.date, -30) == app.apply_date"#);
    yes(r#"app.apply_date < now.date && app.apply_date == date("2024-01-31")"#);
    yes(r#"days_between("2024-01-01", "2025-01-01") == 366"#);
    yes(r#"days_between(customer.birth, now.date) / 365 >= 18"#);
    assert_eq!(
        compile_err(r#"date("2024-02-30") < now.date"#).code,
        ErrorCode::BadConstant
    );
    assert_eq!(compile_err("now.date + 1").code, ErrorCode::TypeMismatch);
    assert_eq!(
        eval_err("add_days(now.date, 9223372036854775807) > now.date"),
        EvalErrorKind::Overflow
    );
}

#[test]
fn conditional_and_logic() {
    assert_eq!(
        eval(r#"customer.age > 30 ? "senior" : "junior""#),
        Ok(Value::String("senior".into()))
    );
    assert_eq!(
        eval("customer.age > 40 ? 1 : 2.50"),
        Ok(Value::Decimal(dec!(2.50)))
    );
    yes("true ? true : 1 / 0 == 1");
    yes("(customer.age > 60 || customer.age < 18) == false");
    yes("!!true && !false");
    // CEL: a decisive operand absorbs an error on either side.
    yes("1 / 0 == 1 || true");
    yes("!(1 / 0 == 1 && false)");
    yes("!(false && 1 / 0 == 1)");
    assert_eq!(
        eval_err("1 / 0 == 1 && true"),
        EvalErrorKind::DivisionByZero
    );
    assert_eq!(
        eval_err("1 / 0 == 1 || false"),
        EvalErrorKind::DivisionByZero
    );
    assert_eq!(
        eval_err("app.scores.exists(s, 1 / (s - 580) > 5)"),
        EvalErrorKind::DivisionByZero
    );
    yes("app.scores.exists(s, 1 / (s - 580) == 0)");
}

#[test]
fn missing_and_optional_fields() {
    let s = schema();
    let mut r = record(&s);
    let p = |src: &str| Condition::compile(src, &s).unwrap();
    assert_eq!(p("has(app.co_borrower)").eval(&r), Ok(false));
    assert_eq!(p("app.co_borrower == null").eval(&r), Ok(true));
    assert_eq!(p("null != app.co_borrower").eval(&r), Ok(false));
    assert_eq!(
        p(r#"has(app.co_borrower) && app.co_borrower != "x""#).eval(&r),
        Ok(false)
    );
    let e = p(r#"app.co_borrower == "x""#).eval(&r).unwrap_err();
    assert_eq!(e.kind(), EvalErrorKind::AbsentOptional);
    assert_eq!(e.detail(), Some("app.co_borrower"));
    r.set("app.co_borrower", Value::String("x".into())).unwrap();
    assert_eq!(p(r#"app.co_borrower == "x""#).eval(&r), Ok(true));
    r.set("app.co_borrower", Value::Null).unwrap();
    assert_eq!(p("has(app.co_borrower)").eval(&r), Ok(false));
    assert_eq!(
        p("!has(customer.income) || customer.income > 5000").eval(&r),
        Ok(true)
    );
    // Required field left unset: an error naming the field, never a silent default.
    let age = s.slot("customer.age").unwrap();
    r.unset(age).unwrap();
    let e = p("customer.age >= 18").eval(&r).unwrap_err();
    assert_eq!(e.kind(), EvalErrorKind::MissingField);
    assert_eq!(e.detail(), Some("customer.age"));
    assert_eq!(e.kind().as_str(), "R003");
    // Cleared record: everything absent; refilled: fine again (buffers reused).
    r.clear();
    assert!(p("app.term > 0").eval(&r).is_err());
    r.set_int(s.slot("app.term").unwrap(), 6).unwrap();
    assert_eq!(p("app.term > 0").eval(&r), Ok(true));
    assert_eq!(
        compile_err("customer.age == null").code,
        ErrorCode::NullMisuse
    );
    assert_eq!(
        compile_err("null < app.co_borrower").code,
        ErrorCode::NullMisuse
    );
    assert_eq!(compile_err("1 == null").code, ErrorCode::NullMisuse);
    assert_eq!(compile_err("has(customer)").code, ErrorCode::TypeMismatch);
}

#[test]
fn diagnostics() {
    let e = compile_err("app.amout > 5");
    assert_eq!(e.code, ErrorCode::UnknownField);
    assert_eq!(
        e.message,
        "unknown field `app.amout`; did you mean `app.amount`?"
    );
    assert_eq!((e.line, e.column), (1, 1));
    assert_eq!(
        e.render(),
        "error[E101]: unknown field `app.amout`; did you mean `app.amount`?\n --> line 1, column 1\n  |\n1 | app.amout > 5\n  | ^^^^^^^^^"
    );
    let e = compile_err("customer.age >= 18 &&\n  customer.age == \"18\"");
    assert_eq!(e.code, ErrorCode::TypeMismatch);
    assert_eq!((e.line, e.column), (2, 3));
    assert!(
        e.message.contains("cannot compare int with string"),
        "{}",
        e.message
    );
    assert!(
        e.render()
            .ends_with("2 |   customer.age == \"18\"\n  |   ^^^^^^^^^^^^^^^^^^^^"),
        "{}",
        e.render()
    );
    let cases: &[(&str, ErrorCode)] = &[
        ("customer.age = 18", ErrorCode::UnexpectedChar),
        ("customer.age > 1 & true", ErrorCode::UnexpectedChar),
        ("\"abc", ErrorCode::UnterminatedString),
        (r#""\q" == "x""#, ErrorCode::BadEscape),
        ("99999999999999999999 > 1", ErrorCode::BadNumber),
        ("(customer.age > 1", ErrorCode::UnexpectedEnd),
        ("customer.age > ", ErrorCode::UnexpectedEnd),
        ("customer.age > 1 )", ErrorCode::UnexpectedToken),
        ("1.5e3 > 1", ErrorCode::Unsupported),
        ("1u > 1", ErrorCode::Unsupported),
        ("{'a': 1}", ErrorCode::Unsupported),
        ("b'ab' == 1", ErrorCode::Unsupported),
        ("double(1) > 1", ErrorCode::Unsupported),
        ("app.tags.map(t, t)", ErrorCode::Unsupported),
        (
            "customer.phone.startswith(\"6\")",
            ErrorCode::UnknownFunction,
        ),
        ("lenght(customer.name) > 1", ErrorCode::UnknownFunction),
        ("size(customer.age) > 1", ErrorCode::TypeMismatch),
        ("size() > 1", ErrorCode::Arity),
        ("customer.age", ErrorCode::NotBool),
        ("app > 1", ErrorCode::TypeMismatch),
        ("customer.age.years > 1", ErrorCode::UnknownField),
        ("customer.phone.matches(\"[\")", ErrorCode::BadRegex),
        ("customer.age in app.tags", ErrorCode::TypeMismatch),
        ("customer.age > 1 ? 1 : \"x\"", ErrorCode::TypeMismatch),
        ("customer.age && true", ErrorCode::TypeMismatch),
        ("[] == []", ErrorCode::TypeMismatch),
        ("if > 1", ErrorCode::UnexpectedToken),
        ("customer.age > 1 # comment", ErrorCode::UnexpectedChar),
    ];
    for (src, code) in cases {
        let e = match Condition::compile(src, &schema()) {
            Ok(_) => panic!("`{src}` compiled"),
            Err(e) => e,
        };
        assert_eq!(e.code, *code, "{src}: {}", e.render());
        assert!(!e.message.is_empty());
        assert!(e.render().contains('^'));
    }
    let e = compile_err("customer.phone.startswith(\"6\")");
    assert!(
        e.message.contains("did you mean `startsWith`?"),
        "{}",
        e.message
    );
    let e = compile_err("customer.nmae == \"x\"");
    assert!(
        e.message.contains("did you mean `customer.name`?"),
        "{}",
        e.message
    );
    // Comments are allowed.
    assert!(Condition::compile("customer.age > 1 // adults only", &schema()).is_ok());
}

#[test]
fn schema_and_record_errors() {
    let dup = Schema::builder()
        .field("a.b", Type::Int)
        .field("a.b", Type::Int)
        .build();
    assert_eq!(dup.unwrap_err().code, ErrorCode::BadSchema);
    let clash = Schema::builder()
        .field("a", Type::Int)
        .field("a.b", Type::Int)
        .build();
    assert_eq!(clash.unwrap_err().code, ErrorCode::BadSchema);
    let nested = Schema::builder()
        .field("a.b", Type::list(Type::list(Type::Int)))
        .build();
    assert_eq!(nested.unwrap_err().code, ErrorCode::BadSchema);
    assert!(Schema::builder().field("a-b", Type::Int).build().is_err());

    let s = schema();
    let mut r = s.new_record();
    let amount = s.slot("app.amount").unwrap();
    assert!(matches!(
        r.set_decimal(amount, dec!(1.234)),
        Err(RecordError::Precision { .. })
    ));
    assert!(r.set_decimal(amount, dec!(1.230)).is_ok());
    assert!(matches!(
        r.set_int(amount, 1),
        Err(RecordError::TypeMismatch { .. })
    ));
    assert!(matches!(
        r.set("nope", Value::Int(1)),
        Err(RecordError::UnknownField(_))
    ));
    assert!(matches!(
        r.set("customer.age", Value::Null),
        Err(RecordError::NotOptional(_))
    ));
    // A slot or record from another schema is refused, not misread.
    let other = schema();
    let mut r2 = other.new_record();
    assert_eq!(
        r2.set_decimal(amount, dec!(1)),
        Err(RecordError::ForeignSlot)
    );
    let rule = Condition::compile("app.term > 1", &s).unwrap();
    assert_eq!(
        rule.eval(&r2).unwrap_err().kind(),
        EvalErrorKind::SchemaMismatch
    );
}

#[test]
fn programs_and_threads() {
    let s = schema();
    let r = record(&s);
    let p = Program::compile("app.amount * 2", &s).unwrap();
    assert_eq!(p.eval_decimal_units(&r).unwrap(), Ok(16_000_000));
    let p = Program::compile("customer.age + 1", &s).unwrap();
    assert_eq!(p.eval_int(&r).unwrap(), Ok(36));
    assert_eq!(p.result_type(), &Type::Int);
    let p = Program::compile("\"const\"", &s).unwrap();
    assert_eq!(p.eval(&r), Ok(Value::String("const".into())));
    let p = Program::compile("add_days(now.date, 1)", &s).unwrap();
    assert_eq!(p.eval(&r), Ok(Value::Date(d("2024-03-02"))));
    assert!(Program::compile("app.tags", &s).is_err());

    fn send_sync<T: Send + Sync>() {}
    send_sync::<Condition>();
    send_sync::<Program>();
    let rule = std::sync::Arc::new(Condition::compile(FIVE, &s).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let rule = rule.clone();
            let r = r.clone();
            std::thread::spawn(move || rule.eval(&r))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(true));
    }
}

#[test]
fn deep_expressions_within_limits_compile_and_run() {
    // Near the parser's nesting limit: compiling and evaluating must not exhaust a
    // default 2 MiB test-thread stack (debug build).
    let s = schema();
    let r = record(&s);
    let parens = format!("{}customer.age{} == 35", "(".repeat(90), ")".repeat(90));
    assert_eq!(Condition::compile(&parens, &s).unwrap().eval(&r), Ok(true));
    let sum = format!("{} == 90", vec!["1"; 90].join(" + "));
    assert_eq!(Condition::compile(&sum, &s).unwrap().eval(&r), Ok(true));
    let nots = format!("{}true", "!".repeat(90));
    assert_eq!(Condition::compile(&nots, &s).unwrap().eval(&r), Ok(true));
    let ternary = format!("{}true", "customer.age < 1 ? false : ".repeat(45));
    assert_eq!(Condition::compile(&ternary, &s).unwrap().eval(&r), Ok(true));
    let and = vec!["customer.age > 1"; 3000].join(" && ");
    assert_eq!(Condition::compile(&and, &s).unwrap().eval(&r), Ok(true));
    let too_deep = format!("{}1{} == 1", "(".repeat(200), ")".repeat(200));
    assert_eq!(compile_err(&too_deep).code, ErrorCode::TooDeep);
}
