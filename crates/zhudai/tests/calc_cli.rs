//! `zhudai calc schedule`: the CLI contract of issue #5, checked against the rules-cn.md
//! reference rows and against numpy-financial (`pmt` for the installment, `irr` for the
//! APR), computed by Python from the CLI's own JSON. Needs Python 3 with
//! numpy-financial (scripts/install-deps.sh); `ZHUDAI_PYTHON` overrides the interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn calc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zhudai"))
        .args(["calc", "schedule"])
        .args(args)
        // No configuration and no database may be needed.
        .env("ZHUDAI_DATA_DIR", "/nonexistent/zhudai-calc-test")
        .env_remove("ZHUDAI_DATABASE_URL")
        .output()
        .unwrap()
}

fn calc_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = calc(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} is not a string in {v}"))
}

const PY: &str = r#"
import json, sys
import numpy_financial as npf
cases = json.load(sys.stdin)
out = []
for c in cases:
    rate = float(c["rate"]) / 12
    pmt = float(npf.pmt(rate, c["months"], -c["principal"])) if c["months"] else None
    irr = float(npf.irr([-(c["principal"] - c["upfront"])] + c["payments"])) * 12
    out.append({"pmt": pmt, "irr": irr})
json.dump(out, sys.stdout)
"#;

fn python(cases: &Value) -> Vec<Value> {
    let interpreter = std::env::var("ZHUDAI_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&interpreter)
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {interpreter}: {e}; run scripts/install-deps.sh"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "numpy-financial reference failed (run scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn fen(yuan: &str) -> i64 {
    let (a, b) = yuan.split_once('.').unwrap();
    assert_eq!(b.len(), 2, "two decimals: {yuan}");
    a.parse::<i64>().unwrap() * 100 + b.parse::<i64>().unwrap()
}

#[test]
fn reference_rows_of_rules_cn() {
    let v = calc_json(&[
        "--principal",
        "100000",
        "--annual-rate",
        "0.12",
        "--months",
        "12",
        "--method",
        "equal-installment",
    ]);
    let periods = v["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 12);
    for p in &periods[..11] {
        assert_eq!(s(p, "payment"), "8884.88");
    }
    assert_eq!(s(&periods[11], "payment"), "8884.85");
    assert_eq!(s(&periods[11], "balance"), "0.00");
    assert_eq!(periods[0]["period"], 1);
    assert_eq!(s(&v["totals"], "interest"), "6618.53");
    assert_eq!(s(&v, "apr"), "0.1200");

    let v = calc_json(&[
        "--principal",
        "120000",
        "--annual-rate",
        "0.12",
        "--months",
        "12",
        "--method",
        "equal-principal",
    ]);
    let p = v["periods"].as_array().unwrap();
    assert_eq!(s(&p[0], "payment"), "11200.00");
    assert_eq!(s(&p[11], "payment"), "10100.00");
    assert_eq!(s(&v["totals"], "interest"), "7800.00");

    let v = calc_json(&[
        "--principal",
        "100000",
        "--annual-rate",
        "0.12",
        "--months",
        "12",
        "--method",
        "interest-first",
    ]);
    let p = v["periods"].as_array().unwrap();
    assert!(p[..11].iter().all(|x| s(x, "payment") == "1000.00"));
    assert_eq!(s(&p[11], "payment"), "101000.00");
    assert_eq!(s(&v["totals"], "interest"), "12000.00");
    assert_eq!(s(&v, "apr"), "0.1200");

    // The rules-cn.md APR example: an upfront fee of 1,000 raises the APR above 12 %.
    let v = calc_json(&[
        "--principal",
        "100000",
        "--annual-rate",
        "0.12",
        "--months",
        "12",
        "--method",
        "equal-installment",
        "--upfront-fee",
        "1000",
    ]);
    assert_eq!(s(&v, "apr"), "0.1391");
    assert_eq!(s(&v, "upfront_fee"), "1000.00");
}

/// principal, annual rate, months, method, upfront fee, monthly fee rate.
type Case = (
    &'static str,
    &'static str,
    u32,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn agrees_with_numpy_financial() {
    let cases: [Case; 8] = [
        ("100000", "0.12", 12, "equal-installment", None, None),
        (
            "100000",
            "0.12",
            12,
            "equal-installment",
            Some("1000"),
            Some("0.006"),
        ),
        (
            "35000",
            "0.0888",
            36,
            "equal-installment",
            Some("300"),
            None,
        ),
        (
            "5000.55",
            "0.2399",
            6,
            "equal-principal",
            None,
            Some("0.001"),
        ),
        ("250000", "0.0735", 24, "interest-first", Some("2500"), None),
        ("80000", "0.15", 9, "bullet", None, Some("0.002")),
        ("1234.56", "0", 7, "equal-installment", None, None),
        (
            "999999.99",
            "0.18",
            60,
            "equal-installment",
            Some("9999"),
            Some("0.0005"),
        ),
    ];
    let mut outputs = Vec::new();
    let mut request = Vec::new();
    for (principal, rate, months, method, upfront, fee_rate) in cases {
        let mut args = vec![
            "--principal".to_owned(),
            principal.to_owned(),
            "--annual-rate".into(),
            rate.into(),
            "--months".into(),
            months.to_string(),
            "--method".into(),
            method.into(),
        ];
        if let Some(u) = upfront {
            args.extend(["--upfront-fee".into(), u.into()]);
        }
        if let Some(f) = fee_rate {
            args.extend(["--monthly-fee-rate".into(), f.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = calc_json(&args);
        let payments: Vec<i64> = v["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| fen(s(p, "payment")))
            .collect();
        request.push(serde_json::json!({
            "principal": fen(s(&v, "principal")),
            "rate": rate,
            "months": months,
            "upfront": fen(s(&v, "upfront_fee")),
            "payments": payments,
        }));
        outputs.push((method, v));
    }
    let answers = python(&Value::Array(request));
    for ((method, v), py) in outputs.iter().zip(&answers) {
        let periods = v["periods"].as_array().unwrap();
        // Every period: payment = principal + interest + fee; balances fall to zero.
        let mut balance = fen(s(v, "principal"));
        for p in periods {
            let (pr, i, f) = (
                fen(s(p, "principal")),
                fen(s(p, "interest")),
                fen(s(p, "fee")),
            );
            assert_eq!(fen(s(p, "payment")), pr + i + f, "{p}");
            balance -= pr;
            assert_eq!(fen(s(p, "balance")), balance, "{p}");
        }
        assert_eq!(balance, 0);
        if *method == "equal-installment" {
            // numpy_financial.pmt rounded half-up to the fen = every installment but the last.
            let pmt = py["pmt"].as_f64().unwrap();
            let expected = (pmt + 0.5).floor() as i64;
            for p in &periods[..periods.len() - 1] {
                assert_eq!(
                    fen(s(p, "principal")) + fen(s(p, "interest")),
                    expected,
                    "pmt {pmt} for {v}"
                );
            }
        }
        // APR: numpy_financial.irr × 12 of the same cash flows, to 1e-6 (and the
        // 4-decimal contract string is that value rounded).
        let irr = py["irr"].as_f64().unwrap();
        let exact: f64 = s(v, "apr_exact").parse().unwrap();
        assert!(
            (exact - irr).abs() <= 1e-6,
            "apr {exact} vs numpy {irr} for {v}"
        );
        let four: f64 = s(v, "apr").parse().unwrap();
        assert!((four - irr).abs() <= 0.00005 + 1e-9, "{four} vs {irr}");
        assert_eq!(s(v, "apr").split('.').nth(1).unwrap().len(), 4);
    }
}

#[test]
fn table_has_totals_and_apr() {
    let out = calc(&[
        "--principal",
        "100000",
        "--annual-rate",
        "0.12",
        "--months",
        "12",
        "--method",
        "equal-installment",
        "--upfront-fee",
        "1000",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("8884.85"), "{text}");
    assert!(
        text.contains("total") && text.contains("106618.53"),
        "{text}"
    );
    assert!(text.contains("APR") && text.contains("0.1391"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("2026-")).count(), 11);
}

#[test]
fn bad_input_names_the_flag() {
    for (args, flag) in [
        (
            vec![
                "--principal",
                "abc",
                "--annual-rate",
                "0.12",
                "--months",
                "12",
                "--method",
                "bullet",
            ],
            "--principal",
        ),
        (
            vec![
                "--principal",
                "1000",
                "--annual-rate",
                "0.12",
                "--months",
                "0",
                "--method",
                "bullet",
            ],
            "--months",
        ),
        (
            vec![
                "--principal",
                "1000",
                "--annual-rate",
                "0.12",
                "--months",
                "3",
                "--method",
                "balloon",
            ],
            "--method",
        ),
        (
            vec![
                "--principal",
                "1000",
                "--annual-rate",
                "0.12",
                "--months",
                "3",
                "--method",
                "bullet",
                "--upfront-fee",
                "1000",
            ],
            "--upfront-fee",
        ),
    ] {
        let out = calc(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
