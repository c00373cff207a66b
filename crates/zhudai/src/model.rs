//! `zhudai model …` (issue #7): scorecard development without a database.
//!
//! ```text
//! zhudai model train --data FILE.csv --target COLUMN --out MODEL.json
//!     [--bad VALUE] [--name NAME] [--model-version V] [--exclude COL]… [--max-features N]
//!     [--test-data FILE.csv] [--report FILE] [--json-report]
//! zhudai model score --model MODEL.json --data FILE.csv [--out FILE.csv]
//! ```
//!
//! `train` bins every candidate column with monotonic WoE, computes its IV, selects
//! features (IV ≥ 0.02, WoE correlation ≤ 0.7, right coefficient sign), fits the logistic
//! regression, scales to points (600 = 50:1, PDO 20), writes MODEL.json and prints the
//! report (bins table, IV, KS, AUC, Gini; on `--test-data` too) to stdout or `--report`.
//! A progress bar on stderr shows the stages.
//!
//! `score` prints CSV with the header `score,probability` and one line per input record,
//! in order; `probability` is the probability of the bad outcome. Columns are matched by
//! name (extra columns ignored). Empty fields and `NA`/`null`-style tokens score in the
//! feature's missing bin; a category the model never saw scores per the model's `unseen`
//! policy (training writes `worst_bin`); text in a numeric column is an error naming the
//! line, the column and the value.

use crate::cli::Failure;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use zhudai_scorecard::io::{read_dataset, score_csv};
use zhudai_scorecard::{train, train_with_test, ModelMetadata, Scorecard, TrainingOptions};

#[derive(Debug, Subcommand)]
pub enum ModelWhat {
    /// Train a scorecard from a CSV file: binning, IV, feature selection, logistic
    /// regression, scaling; writes MODEL.json and a report (bins, IV, KS, AUC, Gini)
    Train(TrainArgs),
    /// Score a CSV file with a model: prints `score,probability` per input row, in order
    Score(ScoreArgs),
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training data: CSV with a header line (UTF-8)
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// The outcome column
    #[arg(long, value_name = "COLUMN")]
    pub target: String,
    /// Where to write the model JSON
    #[arg(long, value_name = "MODEL.json")]
    pub out: PathBuf,
    /// The target value meaning "bad" (default: 1 for a 0/1 column, `bad` for good/bad)
    #[arg(long, value_name = "VALUE")]
    pub bad: Option<String>,
    /// Model name written into the JSON (default: the data file's stem)
    #[arg(long)]
    pub name: Option<String>,
    /// Model version written into the JSON
    #[arg(long = "model-version", default_value = "1")]
    pub model_version: String,
    /// A column that is never a feature, e.g. an ID (repeatable)
    #[arg(long, value_name = "COLUMN")]
    pub exclude: Vec<String>,
    /// Keep at most this many features (highest IV first)
    #[arg(long, value_name = "N")]
    pub max_features: Option<usize>,
    /// Hold-out data scored after training; its AUC/KS/Gini join the report
    #[arg(long, value_name = "FILE.csv")]
    pub test_data: Option<PathBuf>,
    /// Write the report to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The report as JSON instead of text
    #[arg(long)]
    pub json_report: bool,
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// The model JSON (from `zhudai model train` or an uploaded model)
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// Data to score: CSV with a header line naming the model's features
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// Write the scores here instead of stdout
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
}

fn usage(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::Config(format!("{}: {e}", path.display()))
}

fn bar(stages: u64) -> ProgressBar {
    let pb = ProgressBar::new(stages);
    if let Ok(style) = ProgressStyle::with_template("{msg:32} [{bar:20}] {pos}/{len} {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

pub fn run(what: ModelWhat) -> Result<(), Failure> {
    match what {
        ModelWhat::Train(a) => train_cmd(&a),
        ModelWhat::Score(a) => score_cmd(&a),
    }
}

fn train_cmd(a: &TrainArgs) -> Result<(), Failure> {
    let stages = if a.test_data.is_some() { 4 } else { 3 };
    let pb = bar(stages);
    pb.set_message("reading the training data");
    let data = read_dataset(&a.data, &[]).map_err(|e| usage(&a.data, e))?;
    pb.inc(1);
    let test = match &a.test_data {
        Some(p) => {
            pb.set_message("reading the test data");
            let t = read_dataset(p, &[]).map_err(|e| usage(p, e))?;
            pb.inc(1);
            Some(t)
        }
        None => None,
    };
    let name = a.name.clone().unwrap_or_else(|| {
        a.data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scorecard".into())
    });
    let options = TrainingOptions {
        metadata: ModelMetadata {
            name,
            version: a.model_version.clone(),
            created: Some(
                zhudai_domain::clock::Clock::now(&zhudai_domain::clock::SystemClock)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            ),
            description: Some(format!(
                "trained by zhudai model train on {} ({} rows)",
                a.data
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                data.rows()
            )),
        },
        bad_value: a.bad.clone(),
        exclude: a.exclude.clone(),
        max_features: a.max_features,
        ..TrainingOptions::default()
    };
    pb.set_message(format!(
        "binning and fitting {} columns",
        data.columns().len().saturating_sub(1)
    ));
    let started = std::time::Instant::now();
    let (model, report) = match &test {
        Some(t) => train_with_test(&data, t, &a.target, &options),
        None => train(&data, &a.target, &options),
    }
    .map_err(|e| Failure::Config(format!("training failed: {e}")))?;
    let took = started.elapsed();
    pb.inc(1);
    pb.set_message("writing the model");
    let json = model
        .to_json_pretty()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    std::fs::write(&a.out, json + "\n").map_err(|e| usage(&a.out, e))?;
    pb.inc(1);
    pb.finish_and_clear();
    let text = if a.json_report {
        serde_json::to_string_pretty(&report).map_err(|e| Failure::Runtime(e.to_string()))?
    } else {
        format!(
            "model {} v{} → {} ({} of {} candidate features, trained in {:.1} ms)\n{}",
            model.spec().metadata.name,
            model.spec().metadata.version,
            a.out.display(),
            report.selected.len(),
            report.features.len(),
            took.as_secs_f64() * 1e3,
            report.to_text()
        )
    };
    match &a.report {
        Some(p) => std::fs::write(p, text + "\n").map_err(|e| usage(p, e))?,
        None => {
            let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
        }
    }
    Ok(())
}

fn score_cmd(a: &ScoreArgs) -> Result<(), Failure> {
    let json = std::fs::read_to_string(&a.model).map_err(|e| usage(&a.model, e))?;
    let model = Scorecard::from_json(&json).map_err(|e| usage(&a.model, e))?;
    let file = std::fs::File::open(&a.data).map_err(|e| usage(&a.data, e))?;
    let input = std::io::BufReader::new(file);
    let result = match &a.out {
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|e| usage(p, e))?;
            let mut w = std::io::BufWriter::new(f);
            let n = score_csv(&model, input, &mut w);
            w.flush().map_err(|e| usage(p, e))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let n = score_csv(&model, input, &mut w);
            let _ = w.flush();
            n
        }
    };
    result.map(|_| ()).map_err(|e| usage(&a.data, e))
}
