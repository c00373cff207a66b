//! Process analytics (issue #6 item 4), shared by the JSON API, the XLSX export and the
//! `/workflows/analytics` page: reads the histories of a definition's instances (every
//! version) and hands them to the pure [`zhudai_workflow::analytics::report`].

use crate::error::{ApiError, FieldError};
use crate::state::AppState;
use crate::workflow as wf;
use chrono::NaiveDate;
use zhudai_workflow::analytics::{self as an, NodeInfo, Report, StepFact, Window};

/// The window of a request: `from`/`to` as `YYYY-MM-DD` (both included); by default the
/// 30 days up to today. At most [`an::MAX_DAYS`] days.
pub fn window(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Window, ApiError> {
    let mut errors = Vec::new();
    let parse = |name: &str, v: Option<&str>, errors: &mut Vec<FieldError>| {
        v.filter(|s| !s.trim().is_empty()).and_then(|s| {
            match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(FieldError::new(name, "invalid", "a date YYYY-MM-DD"));
                    None
                }
            }
        })
    };
    let to_d = parse("to", to, &mut errors).unwrap_or(today);
    let from_d =
        parse("from", from, &mut errors).unwrap_or_else(|| to_d - chrono::Duration::days(29));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let w = Window {
        from: from_d,
        to: to_d,
    };
    if from_d > to_d {
        return Err(ApiError::field("from", "after_to", "`from` is after `to`"));
    }
    if w.days() > an::MAX_DAYS {
        return Err(ApiError::field(
            "from",
            "too_long",
            format!("at most {} days at a time", an::MAX_DAYS),
        ));
    }
    Ok(w)
}

/// The nodes of every version of `code`, the newest version's order first.
async fn nodes(state: &AppState, code: &str) -> Result<Vec<NodeInfo>, ApiError> {
    let mut versions: Vec<i64> = state
        .store()
        .definitions()
        .await?
        .into_iter()
        .filter(|d| d.code == code)
        .map(|d| d.version)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no workflow `{code}` is installed"
        )));
    }
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut out: Vec<NodeInfo> = Vec::new();
    for v in versions {
        let def = wf::definition(state.store(), code, v).await?;
        for n in &def.nodes {
            if !out.iter().any(|o| o.id == n.spec.id) {
                out.push(NodeInfo {
                    id: n.spec.id.clone(),
                    kind: n.spec.kind,
                    name: n.spec.name.clone(),
                    name_en: n.spec.name_en.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The analytics of workflow `code` over `w`.
pub async fn report(state: &AppState, code: &str, w: Window) -> Result<Report, ApiError> {
    wf::ensure_defaults(state.store(), state.now_ms()).await?;
    let nodes = nodes(state, code).await?;
    let (from_ms, to_ms) = w.bounds_ms();
    let steps: Vec<StepFact> = state
        .store()
        .analytics_steps(code, from_ms, to_ms)
        .await?
        .into_iter()
        .map(|s| StepFact {
            instance_id: s.instance_id,
            seq: s.seq,
            at_ms: s.at_ms,
            actor: s.actor,
            action: s.action,
            from_node: s.from_node,
            to_node: s.to_node,
            level: s.approval_level,
            level_role: s.approval_role,
        })
        .collect();
    Ok(an::report(&nodes, &steps, w, state.now_ms()))
}

fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

fn rate(r: &Option<rust_decimal::Decimal>) -> Option<f64> {
    r.and_then(|d| d.to_string().parse::<f64>().ok())
}

/// The report as an XLSX workbook: sheets `Nodes`, `Levels`, `Daily`, `Cycle time`.
pub fn xlsx(code: &str, r: &Report) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let h2 = Format::new().set_num_format("0.00");
    let pct = Format::new().set_num_format("0.00%");
    let sheet = book.add_worksheet();
    sheet.set_name("Nodes")?;
    sheet.write_string_with_format(0, 0, format!("{code} {} – {}", r.from, r.to), &bold)?;
    let headers = [
        "node",
        "name",
        "stays",
        "mean_hours",
        "p50_hours",
        "p90_hours",
        "max_hours",
        "approvals",
        "rejections",
        "returns",
        "approval_rate",
        "rejection_rate",
        "queue",
        "oldest_wait_hours",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(1, c as u16, *h, &bold)?;
    }
    for (i, n) in r.nodes.iter().enumerate() {
        let row = i as u32 + 2;
        sheet.write_string(row, 0, &n.node)?;
        sheet.write_string(row, 1, &n.name)?;
        sheet.write_number(row, 2, n.stays as f64)?;
        for (c, v) in [(3, n.mean_ms), (4, n.p50_ms), (5, n.p90_ms), (6, n.max_ms)] {
            if let Some(v) = v {
                sheet.write_number_with_format(row, c, hours(v), &h2)?;
            }
        }
        sheet.write_number(row, 7, n.approvals as f64)?;
        sheet.write_number(row, 8, n.rejections as f64)?;
        sheet.write_number(row, 9, n.returns as f64)?;
        if let Some(v) = rate(&n.approval_rate) {
            sheet.write_number_with_format(row, 10, v, &pct)?;
        }
        if let Some(v) = rate(&n.rejection_rate) {
            sheet.write_number_with_format(row, 11, v, &pct)?;
        }
        sheet.write_number(row, 12, n.queue as f64)?;
        if let Some(v) = n.oldest_wait_ms {
            sheet.write_number_with_format(row, 13, hours(v), &h2)?;
        }
    }
    sheet.autofit();
    let levels = book.add_worksheet();
    levels.set_name("Levels")?;
    for (c, h) in [
        "node",
        "level",
        "role",
        "approvals",
        "rejections",
        "returns",
        "approval_rate",
        "rejection_rate",
    ]
    .iter()
    .enumerate()
    {
        levels.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (i, l) in r.levels.iter().enumerate() {
        let row = i as u32 + 1;
        levels.write_string(row, 0, &l.node)?;
        levels.write_number(row, 1, l.level as f64)?;
        levels.write_string(row, 2, &l.role)?;
        levels.write_number(row, 3, l.approvals as f64)?;
        levels.write_number(row, 4, l.rejections as f64)?;
        levels.write_number(row, 5, l.returns as f64)?;
        if let Some(v) = rate(&l.approval_rate) {
            levels.write_number_with_format(row, 6, v, &pct)?;
        }
        if let Some(v) = rate(&l.rejection_rate) {
            levels.write_number_with_format(row, 7, v, &pct)?;
        }
    }
    levels.autofit();
    let daily = book.add_worksheet();
    daily.set_name("Daily")?;
    let mut outcomes: Vec<&String> = r.days.iter().flat_map(|d| d.finished_by.keys()).collect();
    outcomes.sort();
    outcomes.dedup();
    daily.write_string_with_format(0, 0, "date", &bold)?;
    daily.write_string_with_format(0, 1, "started", &bold)?;
    daily.write_string_with_format(0, 2, "finished", &bold)?;
    for (j, o) in outcomes.iter().enumerate() {
        daily.write_string_with_format(0, 3 + j as u16, format!("finished:{o}"), &bold)?;
    }
    for (i, d) in r.days.iter().enumerate() {
        let row = i as u32 + 1;
        daily.write_string(row, 0, d.date.to_string())?;
        daily.write_number(row, 1, d.started as f64)?;
        daily.write_number(row, 2, d.finished as f64)?;
        for (j, o) in outcomes.iter().enumerate() {
            daily.write_number(
                row,
                3 + j as u16,
                d.finished_by.get(*o).copied().unwrap_or(0) as f64,
            )?;
        }
    }
    daily.autofit();
    let cycle = book.add_worksheet();
    cycle.set_name("Cycle time")?;
    cycle.write_string_with_format(0, 0, "bucket", &bold)?;
    cycle.write_string_with_format(0, 1, "instances", &bold)?;
    for (i, b) in r.cycle.histogram.iter().enumerate() {
        cycle.write_string(i as u32 + 1, 0, &b.label)?;
        cycle.write_number(i as u32 + 1, 1, b.count as f64)?;
    }
    let base = r.cycle.histogram.len() as u32 + 2;
    cycle.write_string_with_format(base, 0, "finished", &bold)?;
    cycle.write_number(base, 1, r.cycle.finished as f64)?;
    if let Some(v) = r.cycle.p50_ms {
        cycle.write_string_with_format(base + 1, 0, "p50_hours", &bold)?;
        cycle.write_number_with_format(base + 1, 1, hours(v), &h2)?;
    }
    if let Some(v) = r.cycle.p90_ms {
        cycle.write_string_with_format(base + 2, 0, "p90_hours", &bold)?;
        cycle.write_number_with_format(base + 2, 1, hours(v), &h2)?;
    }
    cycle.autofit();
    book.save_to_buffer()
}
