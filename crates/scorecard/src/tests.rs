//! Behaviour tests of the public API on hand-made models and synthetic data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use crate::*;

/// age: (-inf,25] 10 pts, (25,40] 20, (40,+inf) 30, missing 5.
/// housing: [own] 25, [rent] 10, [free, other] 15, missing 12; unseen → worst (rent).
fn hand_model(unseen: &str) -> Scorecard {
    let json = format!(
        r#"{{
      "format_version": 1,
      "metadata": {{ "name": "hand", "version": "7", "created": "2025-01-01T00:00:00Z" }},
      "scaling": {{ "base_score": 600, "base_odds": 50, "pdo": 20 }},
      "intercept": -1.0,
      "base_points": 500,
      "features": [
        {{ "name": "age", "type": "numeric", "coefficient": -1.0, "description": "Age",
          "bins": [
            {{ "upper": 25, "label": "(-inf, 25]", "woe": -0.5, "points": 10, "dev": {{ "count": 30, "bad": 12 }} }},
            {{ "upper": 40, "label": "(25, 40]", "woe": 0.1, "points": 20, "dev": {{ "count": 40, "bad": 8 }} }},
            {{ "upper": null, "label": "(40, +inf)", "woe": 0.6, "points": 30, "dev": {{ "count": 20, "bad": 2 }} }}
          ],
          "missing": {{ "label": "missing", "woe": -0.2, "points": 5, "dev": {{ "count": 10, "bad": 3 }} }} }},
        {{ "name": "housing", "type": "categorical", "coefficient": -0.8, "unseen": "{unseen}",
          "bins": [
            {{ "categories": ["own"], "label": "own", "woe": 0.4, "points": 25, "dev": {{ "count": 60, "bad": 10 }} }},
            {{ "categories": ["rent"], "label": "rent", "woe": -0.6, "points": 10, "dev": {{ "count": 25, "bad": 10 }} }},
            {{ "categories": ["free", "other"], "label": "free | other", "woe": -0.1, "points": 15, "dev": {{ "count": 15, "bad": 5 }} }}
          ],
          "missing": {{ "label": "missing", "woe": 0.0, "points": 12, "dev": {{ "count": 0, "bad": 0 }} }} }}
      ],
      "development": {{ "rows": 100, "bad": 25,
        "score_bands": [ {{ "upper": 530, "count": 40 }}, {{ "upper": 545, "count": 30 }}, {{ "upper": null, "count": 30 }} ] }}
    }}"#
    );
    Scorecard::from_json(&json).unwrap()
}

#[test]
fn scores_points_probability_and_reasons() {
    let m = hand_model("worst_bin");
    let r = m
        .score(&[Value::Number(30.0), Value::Text("rent")])
        .unwrap();
    assert_eq!(r.score, 500 + 20 + 10);
    let lo = -1.0 - 0.1 + (-0.8 * -0.6);
    assert!((r.log_odds - lo).abs() < 1e-12);
    assert!((r.probability - 1.0 / (1.0 + (-lo).exp())).abs() < 1e-12);
    assert_eq!(r.contributions[0].bin, "(25, 40]");
    assert_eq!(r.contributions[1].bin, "rent");
    // housing is 15 below its best (own, 25); age 10 below (40+, 30).
    let reasons: Vec<_> = r
        .reasons
        .iter()
        .map(|x| (x.feature, x.points_below_best))
        .collect();
    assert_eq!(reasons, vec![("housing", 15), ("age", 10)]);
    assert_eq!(r.reasons[1].description, Some("Age"));

    let best = m.score(&[Value::Text("41"), Value::Text(" own ")]).unwrap();
    assert_eq!(best.score, 555);
    assert!(best.reasons.is_empty());
}

#[test]
fn interval_edges_are_right_closed() {
    let m = hand_model("worst_bin");
    let bin = |x: f64| {
        m.score(&[Value::Number(x), Value::Missing])
            .unwrap()
            .contributions[0]
            .bin_index
    };
    assert_eq!(bin(25.0), 0);
    assert_eq!(bin(25.000001), 1);
    assert_eq!(bin(40.0), 1);
    assert_eq!(bin(40.5), 2);
}

#[test]
fn missing_values_use_the_missing_bin() {
    let m = hand_model("worst_bin");
    for age in [
        Value::Missing,
        Value::Number(f64::NAN),
        Value::Text(""),
        Value::Text("NA"),
    ] {
        let r = m.score(&[age, Value::Text("null")]).unwrap();
        assert_eq!(r.contributions[0].bin, "missing");
        assert_eq!(r.contributions[1].bin, "missing");
        assert_eq!(r.score, 500 + 5 + 12);
    }
}

#[test]
fn unseen_category_policies() {
    let worst = hand_model("worst_bin");
    let r = worst
        .score(&[Value::Number(50.0), Value::Text("castle")])
        .unwrap();
    assert_eq!(r.contributions[1].bin, "rent");
    assert_eq!(r.contributions[1].points, 10);

    let as_missing = hand_model("missing_bin");
    let r = as_missing
        .score(&[Value::Number(50.0), Value::Text("castle")])
        .unwrap();
    assert_eq!(r.contributions[1].bin, "missing");
    assert_eq!(r.contributions[1].points, 12);
}

#[test]
fn malformed_numeric_text_is_an_error_not_missing() {
    let m = hand_model("worst_bin");
    let e = m.score(&[Value::Text("abc"), Value::Missing]).unwrap_err();
    assert!(matches!(e, ScorecardError::NotNumeric { .. }), "{e}");
    assert!(m.score(&[Value::Missing]).is_err());
}

#[test]
fn bind_resolves_columns_once() {
    let m = hand_model("worst_bin");
    let bound = m.bind(&["id", "housing", "x", "age"]).unwrap();
    let r = bound
        .score(&[
            Value::Text("42"),
            Value::Text("own"),
            Value::Missing,
            Value::Number(50.0),
        ])
        .unwrap();
    assert_eq!(r.score, 555);
    assert!(matches!(
        m.bind(&["age"]),
        Err(ScorecardError::MissingColumn(c)) if c == "housing"
    ));
}

#[test]
fn score_into_reuses_buffers() {
    let m = hand_model("worst_bin");
    let mut out = ScoreResult::default();
    m.score_into(&[Value::Number(20.0), Value::Text("rent")], &mut out)
        .unwrap();
    let (c1, c2) = (out.contributions.capacity(), out.reasons.capacity());
    let p1 = out.contributions.as_ptr();
    m.score_into(&[Value::Number(50.0), Value::Text("own")], &mut out)
        .unwrap();
    assert_eq!(out.score, 555);
    assert_eq!(out.contributions.as_ptr(), p1);
    assert_eq!(
        (out.contributions.capacity(), out.reasons.capacity()),
        (c1, c2)
    );
}

#[test]
fn json_round_trip_and_validation() {
    let m = hand_model("missing_bin");
    let json = m.to_json_pretty().unwrap();
    let again = Scorecard::from_json(&json).unwrap();
    assert_eq!(m, again);

    let mut spec = m.spec().clone();
    spec.format_version = 2;
    assert!(matches!(
        Scorecard::new(spec),
        Err(ScorecardError::UnsupportedFormat { found: 2, .. })
    ));
    let bad_order = json.replacen("\"upper\": 40.0", "\"upper\": 10.0", 1);
    assert!(
        Scorecard::from_json(&bad_order).is_err(),
        "uppers must increase"
    );
    let dup = json.replacen("\"rent\"", "\"own\"", 1);
    assert!(Scorecard::from_json(&dup).is_err(), "category in two bins");
    let open_middle = json.replacen("\"upper\": 25.0", "\"upper\": null", 1);
    assert!(Scorecard::from_json(&open_middle).is_err());
}

#[test]
fn stability_monitor_against_development() {
    let m = hand_model("worst_bin");
    let mut mon = StabilityMonitor::new(&m).unwrap();
    // Everyone young and renting: a big shift.
    for _ in 0..50 {
        let r = m
            .score(&[Value::Number(20.0), Value::Text("rent")])
            .unwrap();
        mon.observe(&r);
    }
    let rep = mon.report(DEFAULT_PSI_THRESHOLD).unwrap();
    assert_eq!(rep.rows, 50);
    assert!(rep.alert);
    assert!(rep.score.psi > 0.25);
    let age = &rep.features[0];
    assert_eq!(age.actual, vec![1.0, 0.0, 0.0, 0.0]);
    assert_eq!(age.expected, vec![0.3, 0.4, 0.2, 0.1]);
    let expected_psi = psi(&age.expected, &age.actual).unwrap();
    assert!((age.psi - expected_psi).abs() < 1e-12);
    assert_eq!(rep.score.bins[0], "(-inf, 530]");
}

#[test]
fn score_csv_contract() {
    let m = hand_model("worst_bin");
    let input = "housing,age,extra\nown,50,x\n\"rent\",,y\ncastle,30,z\n";
    let mut out = Vec::new();
    let n = io::score_csv(&m, input.as_bytes(), &mut out).unwrap();
    assert_eq!(n, 3);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "score,probability");
    assert!(lines[1].starts_with("555,"));
    assert!(lines[2].starts_with("515,"));
    assert!(lines[3].starts_with("530,"));
}

/// Synthetic portfolio with a known structure, for training tests.
fn synthetic(rows: usize, seed: u64) -> Dataset {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut income, mut debt, mut region, mut noise, mut income2, mut y) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rows {
        let inc = (next() * 100.0).floor();
        let d = (next() * 50.0).floor();
        let reg = ["north", "south", "east", "west", "tiny"][(next() * 5.0) as usize % 5];
        let reg = if reg == "tiny" && next() > 0.05 {
            "east"
        } else {
            reg
        };
        let reg_effect = match reg {
            "north" => -0.5,
            "south" => 0.6,
            _ => 0.0,
        };
        let logit = -1.0 - 0.03 * (inc - 50.0) + 0.04 * (d - 25.0) + reg_effect;
        let p = 1.0 / (1.0 + (-logit).exp());
        y.push(Some(if next() < p { "bad" } else { "good" }.to_owned()));
        income.push(if next() < 0.03 { None } else { Some(inc) });
        income2.push(Some(inc * 2.0 + (next() * 4.0).floor()));
        debt.push(Some(d));
        region.push(Some(reg.to_owned()));
        noise.push(Some((next() * 10.0).floor()));
    }
    Dataset::new(vec![
        Column {
            name: "income".into(),
            data: ColumnData::Numeric(income),
        },
        Column {
            name: "income_x2".into(),
            data: ColumnData::Numeric(income2),
        },
        Column {
            name: "debt".into(),
            data: ColumnData::Numeric(debt),
        },
        Column {
            name: "region".into(),
            data: ColumnData::categorical(&region),
        },
        Column {
            name: "noise".into(),
            data: ColumnData::Numeric(noise),
        },
        Column {
            name: "outcome".into(),
            data: ColumnData::categorical(&y),
        },
    ])
    .unwrap()
}

#[test]
fn training_selects_bins_and_scales() {
    let data = synthetic(4000, 7);
    let opts = TrainingOptions::default();
    let (model, report) = train(&data, "outcome", &opts).unwrap();
    assert_eq!(report.target.bad_value, "bad");

    let status = |n: &str| {
        report
            .features
            .iter()
            .find(|f| f.name == n)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(status("noise"), FeatureStatus::LowIv);
    assert!(
        matches!(status("income_x2"), FeatureStatus::Correlated { ref with, .. } if with == "income")
            || matches!(status("income"), FeatureStatus::Correlated { ref with, .. } if with == "income_x2"),
        "one of the twin income features must be dropped for correlation"
    );
    assert!(report.selected.contains(&"debt".to_owned()));
    assert!(report.selected.contains(&"region".to_owned()));
    assert!(report.train.auc > 0.7, "{}", report.to_text());
    assert!((report.train.gini - (2.0 * report.train.auc - 1.0)).abs() < 1e-12);

    for f in &model.spec().features {
        assert!(f.coefficient < 0.0, "{} has the wrong sign", f.name);
        let bins = f.binning.bins();
        for b in &bins {
            let share = b.dev.unwrap().count as f64 / 4000.0;
            assert!(
                share >= 0.05,
                "{} bin {} has share {share}",
                f.name,
                b.label
            );
        }
        // Monotone WoE, and points follow WoE.
        let woes: Vec<f64> = bins.iter().map(|b| b.woe).collect();
        let up = woes.windows(2).all(|w| w[0] < w[1]);
        let down = woes.windows(2).all(|w| w[0] > w[1]);
        assert!(up || down, "{}: {woes:?}", f.name);
        let points: Vec<i64> = bins.iter().map(|b| b.points).collect();
        assert!(
            points
                .windows(2)
                .all(|w| (w[0] <= w[1]) == up || w[0] == w[1]),
            "{}: {points:?}",
            f.name
        );
    }
    // The tiny region category (≈1%) is grouped, not its own bin.
    let region = model
        .spec()
        .features
        .iter()
        .find(|f| f.name == "region")
        .unwrap();
    if let FeatureBinning::Categorical { bins, unseen } = &region.binning {
        assert_eq!(*unseen, UnseenPolicy::WorstBin);
        assert!(bins
            .iter()
            .any(|b| b.categories.contains(&"tiny".to_owned()) && b.categories.len() > 1));
    } else {
        panic!("region must be categorical");
    }

    // Scaling: the score maps back to the odds of the exact model within rounding.
    let s = opts.scaling;
    let r = model.score_dataset(&data).unwrap();
    for x in r.iter().take(200) {
        let exact = s.offset() + s.factor() * (-x.log_odds);
        assert!((x.score as f64 - exact).abs() <= 0.5 * (model.feature_count() as f64 + 1.0));
    }

    // Determinism.
    let (again, _) = train(&data, "outcome", &opts).unwrap();
    assert_eq!(
        model.to_json_pretty().unwrap(),
        again.to_json_pretty().unwrap()
    );

    // Same population: stable.
    let other = synthetic(3000, 99);
    let st = stability(&model, &other, DEFAULT_PSI_THRESHOLD).unwrap();
    assert!(st.score.psi < 0.1, "{st:?}");
    assert!(!st.alert);
    let perf = evaluate(&model, &other, None).unwrap();
    assert!(perf.auc > 0.7);
}

#[test]
fn target_resolution() {
    let data = synthetic(200, 1);
    let opts = TrainingOptions {
        bad_value: Some("good".into()),
        ..TrainingOptions::default()
    };
    let (_, rep) = train(&data, "outcome", &opts).unwrap();
    assert_eq!(
        rep.bad,
        rep.rows
            - synthetic(200, 1)
                .column("outcome")
                .map_or(0, |c| match &c.data {
                    ColumnData::Categorical { levels, codes } => codes
                        .iter()
                        .filter(|c| levels[c.unwrap() as usize] == "bad")
                        .count(),
                    ColumnData::Numeric(_) => 0,
                })
    );
    assert!(matches!(
        train(&data, "region", &TrainingOptions::default()),
        Err(ScorecardError::InvalidTarget(_))
    ));
    assert!(matches!(
        train(&data, "nope", &TrainingOptions::default()),
        Err(ScorecardError::MissingColumn(_))
    ));
}

/// Throughput of `score_into` on a 20-feature model. Run in release:
/// `cargo test -p zhudai-scorecard --release --lib -- --ignored --nocapture bench_score`
#[test]
#[ignore]
fn bench_score_20_features() {
    let mut features = Vec::new();
    for j in 0..20 {
        let binning = if j % 2 == 0 {
            FeatureBinning::Numeric {
                bins: (0..6)
                    .map(|k| NumericBin {
                        upper: if k < 5 { Some(f64::from(k * 10)) } else { None },
                        bin: Bin {
                            label: format!("b{k}"),
                            woe: 0.1 * f64::from(k) - 0.2,
                            points: k.into(),
                            dev: None,
                        },
                    })
                    .collect(),
            }
        } else {
            FeatureBinning::Categorical {
                bins: (0..5)
                    .map(|k| CategoricalBin {
                        categories: vec![format!("cat{k}"), format!("alt{k}")],
                        bin: Bin {
                            label: format!("g{k}"),
                            woe: 0.1 * f64::from(k) - 0.2,
                            points: k.into(),
                            dev: None,
                        },
                    })
                    .collect(),
                unseen: UnseenPolicy::WorstBin,
            }
        };
        features.push(FeatureSpec {
            name: format!("f{j}"),
            description: None,
            coefficient: -0.7,
            binning,
            missing: Bin {
                label: "missing".into(),
                woe: 0.0,
                points: 0,
                dev: None,
            },
        });
    }
    let model = Scorecard::new(ScorecardSpec {
        format_version: FORMAT_VERSION,
        metadata: ModelMetadata::default(),
        target: None,
        scaling: Scaling::default(),
        intercept: -1.0,
        base_points: 500,
        features,
        development: None,
    })
    .unwrap();
    let cats = ["cat0", "alt1", "cat2", "alt3", "cat4", "unknown"];
    let rows: Vec<Vec<Value<'static>>> = (0..1024)
        .map(|i| {
            (0..20)
                .map(|j| {
                    if j % 2 == 0 {
                        Value::Number(f64::from((i * 7 + j * 13) % 60))
                    } else {
                        Value::Text(cats[(i + j) as usize % cats.len()])
                    }
                })
                .collect()
        })
        .collect();
    let mut out = ScoreResult::default();
    let n = 2_000_000usize;
    let cpu0 = thread_cpu_ns();
    let start = std::time::Instant::now();
    let mut checksum = 0i64;
    for i in 0..n {
        model.score_into(&rows[i % rows.len()], &mut out).unwrap();
        checksum = checksum.wrapping_add(out.score);
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => wall,
    };
    println!(
        "score_into, 20 features, with reason codes: {:.0} rows per CPU-second \
         ({:.0} ns/row; wall clock {:.0} rows/s; checksum {checksum})",
        n as f64 / cpu,
        cpu * 1e9 / n as f64,
        n as f64 / wall,
    );
}

/// Nanoseconds this thread has run on a CPU (Linux schedstat): on a shared, loaded
/// machine wall time includes waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
