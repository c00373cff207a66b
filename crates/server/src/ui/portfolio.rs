//! Portfolio reports (issue #8 item 6): `/reports` lists the reports; `/reports/portfolio`
//! is the dashboard as of the last close — KPIs, balance by five-tier class and by DPD
//! bucket, the NPL trend, vintage curves and the roll-rate matrix between two closes, as
//! SVG charts and tables — with the same workbook as the API's XLSX export. The figures
//! come from [`crate::portfolio::dashboard`], as in the API.

use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use crate::portfolio::{self as svc, Dashboard};
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::{Bundle, Lang};
use crate::ui::layout::{page, Ctx};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::collections::BTreeMap;
use zhudai_domain::classify::{CollectionBucket, FiveTierClass};
use zhudai_domain::money::Fen;
use zhudai_domain::portfolio::RollTo;

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_string()
}

/// Basis points as a percentage with two decimals (`12.34 %`).
pub fn bp_text(bp: u64) -> String {
    format!("{}.{:02} %", bp / 100, bp % 100)
}

/// `part / whole` in basis points, rounded half up (None when `whole` is 0).
pub fn ratio_bp(part: i64, whole: i64) -> Option<u64> {
    if whole <= 0 || part < 0 {
        return None;
    }
    let (p, w) = (part as i128, whole as i128);
    u64::try_from((p * 10_000 + w / 2) / w).ok()
}

fn tier_name(lang: Lang, code: &str) -> String {
    match FiveTierClass::parse(code) {
        Ok(t) if lang == Lang::En => t.en_name().to_owned(),
        Ok(t) => t.zh_name().to_owned(),
        Err(_) => code.to_owned(),
    }
}

/// GET `/reports`: the reports there are.
pub async fn index(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let content = html! {
        section.card data-testid="report-index" {
            ul.report-list {
                li {
                    a href="/reports/portfolio" data-testid="report-portfolio" { (t.get("reports.portfolio")) }
                    " — " span.muted { (t.get("reports.portfolio.summary")) }
                }
                @if caller.can("loan.read") {
                    li {
                        a href="/cob" { (t.get("cob.title")) }
                        " — " span.muted { (t.get("reports.cob.summary")) }
                    }
                }
                @if caller.can("funder.reconcile") {
                    li {
                        a href="/reconciliation" { (t.get("recon.title")) }
                        " — " span.muted { (t.get("reports.recon.summary")) }
                    }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "reports", &t.get("reports.title"), content).into_response())
}

#[derive(Debug, Deserialize, Default)]
pub struct RollQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn date_or_error(field: &str, s: &str, errors: &mut Vec<FieldError>, t: &Bundle) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => Some(d.format("%Y-%m-%d").to_string()),
        Err(_) => {
            errors.push(FieldError::new(field, "invalid", t.get("reports.bad_date")));
            None
        }
    }
}

/// The vintage curves: months on book as x labels, one series per disbursement month of
/// `numerator(point) / loans` in percent (display only).
fn vintage_series(
    d: &Dashboard,
    numerator: fn(&svc::Vintage) -> i64,
) -> (Vec<String>, Vec<(String, Vec<Option<f64>>)>) {
    let max_mob = d.vintages.iter().map(|v| v.mob).max().unwrap_or(0).max(0);
    let labels: Vec<String> = (0..=max_mob).map(|m| m.to_string()).collect();
    let mut by: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for v in &d.vintages {
        let row = by
            .entry(v.vintage.as_str())
            .or_insert_with(|| vec![None; labels.len()]);
        if let (Ok(i), Some(bp)) = (usize::try_from(v.mob), ratio_bp(numerator(v), v.loans)) {
            if let Some(slot) = row.get_mut(i) {
                *slot = Some(bp as f64 / 100.0);
            }
        }
    }
    (
        labels,
        by.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    )
}

/// GET `/reports/portfolio`.
pub async fn portfolio(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(q): Query<RollQuery>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    let mut errors = Vec::new();
    let from = date_or_error("from", &q.from, &mut errors, t);
    let to = date_or_error("to", &q.to, &mut errors, t);
    if let (Some(f), Some(tt)) = (&from, &to) {
        if f >= tt {
            errors.push(FieldError::new(
                "to",
                "invalid",
                t.get("reports.to_after_from"),
            ));
        }
    }
    let d = if errors.is_empty() {
        svc::dashboard(&state, from.as_deref(), to.as_deref()).await?
    } else {
        svc::dashboard(&state, None, None).await?
    };
    let npl_bp = ratio_bp(d.npl_fen, d.principal_fen);
    let tier_bars: Vec<(String, i64, String)> = d
        .by_tier
        .iter()
        .map(|s| {
            (
                tier_name(lang, &s.key),
                s.principal_fen,
                yuan(s.principal_fen),
            )
        })
        .collect();
    let bucket_cols: Vec<(String, i64, Option<i64>)> = d
        .by_bucket
        .iter()
        .map(|s| (s.key.clone(), s.loans, None))
        .collect();
    let bucket_bars: Vec<(String, i64, String)> = d
        .by_bucket
        .iter()
        .map(|s| (s.key.clone(), s.principal_fen, yuan(s.principal_fen)))
        .collect();
    let trend_labels: Vec<String> = d
        .npl_trend
        .iter()
        .map(|p| {
            p.business_date
                .get(5..)
                .unwrap_or(&p.business_date)
                .to_owned()
        })
        .collect();
    let trend_series = vec![(
        t.get("reports.npl_ratio"),
        d.npl_trend
            .iter()
            .map(|p| ratio_bp(p.npl_fen, p.principal_fen).map(|bp| bp as f64 / 100.0))
            .collect::<Vec<_>>(),
    )];
    let (mob_labels, overdue_series) = vintage_series(&d, |v| v.overdue_loans);
    let (_, overdue30_series) = vintage_series(&d, |v| v.overdue30_loans);
    let xlsx = format!(
        "/reports/portfolio.xlsx?{}",
        serde_urlencoded::to_string([
            (
                "from",
                d.roll.as_ref().map(|r| r.from.clone()).unwrap_or_default()
            ),
            (
                "to",
                d.roll.as_ref().map(|r| r.to.clone()).unwrap_or_default()
            ),
        ])
        .unwrap_or_default()
    );
    let matrix = d.roll.as_ref().map(|r| r.matrix());
    let content = html! {
        section.card {
            p.muted data-testid="as-of" {
                @match &d.as_of {
                    Some(a) => { (t.get("reports.as_of")) " " (a) }
                    None => { (t.get("reports.no_close")) }
                }
            }
            div.kpis data-testid="portfolio-kpis" {
                div.kpi { div.kpi-value data-testid="kpi-loans" { (d.loans) } div.kpi-label { (t.get("reports.loans")) } }
                div.kpi { div.kpi-value data-testid="kpi-principal" { (yuan(d.principal_fen)) } div.kpi-label { (t.get("reports.principal")) } }
                div.kpi { div.kpi-value data-testid="kpi-npl" { (yuan(d.npl_fen)) } div.kpi-label { (t.get("reports.npl")) } }
                div.kpi { div.kpi-value data-testid="kpi-npl-ratio" { (npl_bp.map(bp_text).unwrap_or_else(|| "—".into())) } div.kpi-label { (t.get("reports.npl_ratio")) } }
            }
            form.filters method="get" action="/reports/portfolio" data-testid="roll-form" {
                label for="roll-from" { (t.get("reports.roll_from")) } " "
                input #roll-from type="date" name="from" value=(d.roll.as_ref().map(|r| r.from.as_str()).unwrap_or(q.from.as_str()));
                label for="roll-to" { (t.get("reports.roll_to")) } " "
                input #roll-to type="date" name="to" value=(d.roll.as_ref().map(|r| r.to.as_str()).unwrap_or(q.to.as_str()));
                button type="submit" { (t.get("reports.apply")) }
                @if caller.can("report.export") {
                    a.button.secondary href=(xlsx) data-testid="portfolio-xlsx" { (t.get("reports.export")) }
                }
            }
            @if !errors.is_empty() { div.field-error role="alert" data-testid="roll-errors" { @for e in &errors { p { (e.message) } } } }
        }
        div.grid {
            section.card data-testid="chart-tier" {
                h2 { (t.get("reports.by_tier")) }
                (chart::bars_labelled(&t.get("reports.by_tier"), &tier_bars))
                table.table data-testid="tier-table" {
                    thead { tr { th { (t.get("reports.tier")) } th.num { (t.get("reports.loans")) } th.num { (t.get("reports.principal")) } th.num { (t.get("reports.share")) } } }
                    tbody { @for s in &d.by_tier { tr data-tier=(s.key) {
                        td { (tier_name(lang, &s.key)) }
                        td.num data-testid="loans" { (s.loans) }
                        td.num data-testid="principal" { (yuan(s.principal_fen)) }
                        td.num { (ratio_bp(s.principal_fen, d.principal_fen).map(bp_text).unwrap_or_else(|| "—".into())) }
                    } } }
                }
            }
            section.card data-testid="chart-bucket" {
                h2 { (t.get("reports.by_bucket")) }
                (chart::columns(&t.get("reports.bucket_loans"), (&t.get("reports.loans"), None), &bucket_cols))
                (chart::bars_labelled(&t.get("reports.bucket_balance"), &bucket_bars))
                table.table data-testid="bucket-table" {
                    thead { tr { th { (t.get("reports.bucket")) } th.num { (t.get("reports.loans")) } th.num { (t.get("reports.principal")) } } }
                    tbody { @for s in &d.by_bucket { tr data-bucket=(s.key) {
                        td { (s.key) }
                        td.num data-testid="loans" { (s.loans) }
                        td.num data-testid="principal" { (yuan(s.principal_fen)) }
                    } } }
                }
            }
        }
        section.card.wide data-testid="chart-npl" {
            h2 { (t.get("reports.npl_trend")) }
            @if d.npl_trend.is_empty() { p.muted { (t.get("reports.none")) } }
            @else { (chart::lines(&t.get("reports.npl_trend"), &trend_labels, &trend_series, None)) }
            p.muted { (t.get("reports.percent_note")) }
        }
        div.grid {
            section.card data-testid="chart-vintage" {
                h2 { (t.get("reports.vintage")) }
                @if d.vintages.is_empty() { p.muted { (t.get("reports.none")) } }
                @else { (chart::lines(&t.get("reports.vintage"), &mob_labels, &overdue_series, None)) }
                p.muted { (t.get("reports.vintage_note")) }
            }
            section.card data-testid="chart-vintage30" {
                h2 { (t.get("reports.vintage30")) }
                @if d.vintages.is_empty() { p.muted { (t.get("reports.none")) } }
                @else { (chart::lines(&t.get("reports.vintage30"), &mob_labels, &overdue30_series, None)) }
                p.muted { (t.get("reports.vintage_note")) }
            }
        }
        section.card.wide data-testid="roll-matrix" {
            h2 { (t.get("reports.roll")) }
            @match (&d.roll, &matrix) {
                (Some(r), Some(m)) => {
                    p.muted { (r.from) " → " (r.to) " · " (t.get("reports.roll_note")) }
                    table.table {
                        thead { tr {
                            th { (t.get("reports.bucket")) }
                            @for b in CollectionBucket::ALL { th.num { (b.label()) } }
                            th.num { (t.get("reports.closed")) }
                            th.num { (t.get("reports.row_total")) }
                            th.num { (t.get("reports.roll_forward")) }
                        } }
                        tbody { @for from in CollectionBucket::ALL { tr data-from=(from.label()) {
                            th { (from.label()) }
                            @for to in CollectionBucket::ALL.iter().map(|b| RollTo::Bucket(*b)).chain([RollTo::Closed]) {
                                @let c = match to { RollTo::Bucket(b) => b as usize, RollTo::Closed => 7 };
                                @let n = m.counts[from as usize][c];
                                td.num data-count=(n) {
                                    @if n > 0 {
                                        (n) br; span.muted { (m.rate_bp(from, to).map(bp_text).unwrap_or_default()) }
                                    } @else { span.muted { "·" } }
                                }
                            }
                            td.num { (m.row_total(from)) }
                            td.num { (m.roll_forward_bp(from).map(bp_text).unwrap_or_else(|| "—".into())) }
                        } } }
                    }
                }
                _ => { p.muted { (t.get("reports.no_roll")) } }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    let mut r = page(
        &state,
        &ctx,
        "reports",
        &t.get("reports.portfolio"),
        content,
    )
    .into_response();
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// GET `/reports/portfolio.xlsx`: the API's workbook, in the page's language.
pub async fn portfolio_xlsx(
    State(state): State<AppState>,
    lang: Lang,
    Query(q): Query<RollQuery>,
) -> Result<Response, ApiError> {
    let pick = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    crate::api::reports::portfolio_xlsx(
        State(state),
        Query(crate::api::reports::RollParams {
            from: pick(&q.from),
            to: pick(&q.to),
            lang: Some(if lang == Lang::En { "en" } else { "zh" }.into()),
        }),
    )
    .await
    .map(|r| {
        let mut r = r;
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_in_basis_points_round_half_up() {
        assert_eq!(ratio_bp(1, 3), Some(3333));
        assert_eq!(ratio_bp(2, 3), Some(6667));
        assert_eq!(ratio_bp(4_500_000, 46_226_676), Some(973));
        assert_eq!(ratio_bp(1, 0), None);
        assert_eq!(ratio_bp(i64::MAX, i64::MAX), Some(10_000));
        assert_eq!(bp_text(973), "9.73 %");
        assert_eq!(bp_text(10_000), "100.00 %");
        assert_eq!(bp_text(5), "0.05 %");
    }
}
