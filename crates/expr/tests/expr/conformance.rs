//! Differential test against the `cel` crate: random well-typed expressions over ints,
//! bools and strings, random records; wherever both implementations produce a value, the
//! values must be equal. This is the check that our semantics are CEL's.

use std::collections::HashMap;
use std::sync::Arc;

use zhudai_expr::{Program, Schema, Type, Value};

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const INTS: &[&str] = &["v.i1", "v.i2", "v.i3"];
const BOOLS: &[&str] = &["v.b1", "v.b2"];
const STRS: &[&str] = &["v.s1", "v.s2"];
const WORDS: &[&str] = &[
    "", "a", "ab", "62", "621", "web", "app", "中文", "x\"y", "a\\b",
];

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn int_lit(r: &mut Rng) -> String {
    match r.below(10) {
        0 => "9223372036854775807".into(),
        1 => "-9223372036854775808".into(),
        2 => "0".into(),
        _ => (r.below(41) as i64 - 20).to_string(),
    }
}

fn gen_int(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(30) {
        return if r.chance(50) {
            r.pick(INTS).to_string()
        } else {
            int_lit(r)
        };
    }
    match r.below(9) {
        0..=3 => {
            let op = r.pick(&["+", "-", "*", "/", "%"]);
            let (a, b) = (gen_int(r, depth - 1), gen_int(r, depth - 1));
            // Unparenthesised half the time: precedence must agree too.
            if r.chance(50) {
                format!("{a} {op} {b}")
            } else {
                format!("({a} {op} {b})")
            }
        }
        4 => format!("-({})", gen_int(r, depth - 1)),
        5 => format!("size({})", gen_str(r, depth - 1)),
        6 => format!(
            "({} ? {} : {})",
            gen_bool(r, depth - 1),
            gen_int(r, depth - 1),
            gen_int(r, depth - 1)
        ),
        7 => format!("int({})", quote(&int_lit(r))),
        _ => format!(
            "size([{}, {}])",
            gen_int(r, depth - 1),
            gen_int(r, depth - 1)
        ),
    }
}

fn gen_str(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(40) {
        return if r.chance(50) {
            r.pick(STRS).to_string()
        } else {
            quote(r.pick(WORDS))
        };
    }
    match r.below(3) {
        0 => format!("({} + {})", gen_str(r, depth - 1), gen_str(r, depth - 1)),
        1 => format!(
            "({} ? {} : {})",
            gen_bool(r, depth - 1),
            gen_str(r, depth - 1),
            gen_str(r, depth - 1)
        ),
        _ => format!("string({})", gen_int(r, depth - 1)),
    }
}

fn gen_bool(r: &mut Rng, depth: u32) -> String {
    if depth == 0 || r.chance(20) {
        return match r.below(3) {
            0 => r.pick(&["true", "false"]).to_string(),
            _ => r.pick(BOOLS).to_string(),
        };
    }
    let d = depth - 1;
    match r.below(14) {
        0 | 1 => {
            let op = r.pick(&["<", "<=", ">", ">=", "==", "!="]);
            format!("({} {op} {})", gen_int(r, d), gen_int(r, d))
        }
        2 => {
            let op = r.pick(&["<", "<=", ">", ">=", "==", "!="]);
            format!("({} {op} {})", gen_str(r, d), gen_str(r, d))
        }
        3 => {
            let op = r.pick(&["==", "!=", "<", ">"]);
            format!("({} {op} {})", gen_bool(r, d), gen_bool(r, d))
        }
        4 | 5 => {
            let op = r.pick(&["&&", "||"]);
            let (a, b) = (gen_bool(r, d), gen_bool(r, d));
            if r.chance(50) {
                format!("{a} {op} {b}")
            } else {
                format!("({a} {op} {b})")
            }
        }
        6 => format!("!{}", gen_bool(r, d)),
        7 => {
            let n = r.below(4) + 1;
            let items: Vec<String> = (0..n).map(|_| gen_int(r, d.min(1))).collect();
            format!("({} in [{}])", gen_int(r, d), items.join(", "))
        }
        8 => {
            let n = r.below(4) + 1;
            let items: Vec<String> = (0..n).map(|_| quote(r.pick(WORDS))).collect();
            format!("({} in [{}])", gen_str(r, d), items.join(", "))
        }
        9 => {
            let m = r.pick(&["startsWith", "endsWith", "contains"]);
            format!("{}.{m}({})", gen_str(r, d), gen_str(r, d))
        }
        10 => format!(
            "({} ? {} : {})",
            gen_bool(r, d),
            gen_bool(r, d),
            gen_bool(r, d)
        ),
        11 => format!("(size({}) > {})", gen_str(r, d), gen_int(r, d)),
        12 => {
            let m = r.pick(&["exists", "all", "exists_one"]);
            let op = r.pick(&["<", ">", "=="]);
            format!(
                "[{}, {}, {}].{m}(x, x {op} {})",
                gen_int(r, 0),
                gen_int(r, 0),
                gen_int(r, 0),
                gen_int(r, d.min(1))
            )
        }
        _ => format!(
            "{}.matches({})",
            gen_str(r, d),
            quote(r.pick(&["^6", "b$", "a|中", "^$"]))
        ),
    }
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    for f in INTS {
        b = b.field(f, Type::Int);
    }
    for f in BOOLS {
        b = b.field(f, Type::Bool);
    }
    for f in STRS {
        b = b.field(f, Type::String);
    }
    b.build().unwrap()
}

fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Int(i) => cel::Value::Int(*i),
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        other => panic!("not generated: {other}"),
    }
}

fn same(ours: &Value, theirs: &cel::Value) -> bool {
    match (ours, theirs) {
        (Value::Int(a), cel::Value::Int(b)) => a == b,
        (Value::Bool(a), cel::Value::Bool(b)) => a == b,
        (Value::String(a), cel::Value::String(b)) => a.as_str() == b.as_str(),
        _ => false,
    }
}

#[test]
fn differential_against_cel_crate() {
    let schema = schema();
    let mut rng = Rng(0x5EED_2024);
    let (mut agree, mut both_err, mut only_ours_err, mut only_cel_err) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let cases = 4000;
    for case in 0..cases {
        let src = match case % 3 {
            0 => gen_bool(&mut rng, 4),
            1 => gen_int(&mut rng, 4),
            _ => gen_str(&mut rng, 3),
        };
        // Our type checker must accept every generated (well-typed) expression.
        let ours_prog = match Program::compile(&src, &schema) {
            Ok(p) => p,
            Err(e) => panic!("ours refused a well-typed expression:\n{}", e.render()),
        };
        let theirs_prog = match cel::Program::compile(&src) {
            Ok(p) => p,
            Err(e) => panic!("cel refused `{src}`: {e:?}"),
        };
        for _ in 0..3 {
            let mut rec = schema.new_record();
            let mut vars: HashMap<String, cel::Value> = HashMap::new();
            let mut put = |name: &str, v: Value| {
                vars.insert(name.trim_start_matches("v.").to_string(), to_cel(&v));
                rec.set(name, v).unwrap();
            };
            for f in INTS {
                let v = match rng.below(12) {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => rng.below(21) as i64 - 10,
                };
                put(f, Value::Int(v));
            }
            for f in BOOLS {
                put(f, Value::Bool(rng.chance(50)));
            }
            for f in STRS {
                put(f, Value::String(rng.pick(WORDS).to_string()));
            }
            let mut ctx = cel::Context::default();
            ctx.add_variable_from_value("v", vars);
            let ours = ours_prog.eval(&rec);
            let theirs = theirs_prog.execute(&ctx);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) if same(a, b) => agree += 1,
                (Ok(a), Ok(b)) => mismatches.push(format!("{src}\n  ours {a:?}, cel {b:?}")),
                (Err(_), Err(_)) => both_err += 1,
                (Err(a), Ok(b)) => {
                    only_ours_err += 1;
                    eprintln!("only ours errors: {src}\n  ours {a}, cel {b:?}");
                }
                (Ok(a), Err(b)) => {
                    only_cel_err += 1;
                    if only_cel_err < 15 {
                        eprintln!("only cel errors: {src}\n  ours {a:?}, cel {b:?}");
                    }
                }
            }
        }
    }
    let total = cases * 3;
    eprintln!(
        "differential vs cel: {total} evaluations, {agree} equal values, {both_err} both errors, \
         {only_ours_err} only ours error, {only_cel_err} only cel errors, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Errors must agree too: a value on one side and an error on the other is a semantic
    // difference (e.g. an element error inside `size([...])`).
    assert_eq!(
        (only_ours_err, only_cel_err),
        (0, 0),
        "error behaviour differs"
    );
    // Most evaluations must produce a value on both sides, or the test proves little.
    assert!(
        agree * 10 >= total * 7,
        "only {agree} of {total} comparable"
    );
}
