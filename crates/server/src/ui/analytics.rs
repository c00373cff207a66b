//! `/workflows/analytics` (issue #6 item 4): time per node, throughput per day, approval
//! rates per node and per approver level, cycle time and the bottlenecks, as SVG charts
//! and tables, filtered by definition and date range, with the XLSX export.

use crate::analytics as svc;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::notify::duration_text;
use crate::state::AppState;
use crate::ui::chart;
use crate::ui::i18n::Lang;
use crate::ui::layout::{page, Ctx};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub struct Filter {
    code: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Hours with one decimal, from milliseconds (display only).
fn hours(ms: i64) -> String {
    let tenths = (ms + 180_000) / 360_000;
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn pct(r: &Option<rust_decimal::Decimal>) -> String {
    match r {
        Some(d) => format!("{:.1} %", *d * rust_decimal::Decimal::from(100)),
        None => "—".to_owned(),
    }
}

/// GET `/workflows/analytics`.
pub async fn page_handler(
    State(state): State<AppState>,
    lang: Lang,
    caller: Caller,
    Query(f): Query<Filter>,
) -> Result<Response, ApiError> {
    let t = state.i18n().bundle(lang);
    crate::workflow::ensure_defaults(state.store(), state.now_ms()).await?;
    let mut codes: Vec<String> = state
        .store()
        .definitions()
        .await?
        .into_iter()
        .map(|d| d.code)
        .collect();
    codes.dedup();
    let code = f
        .code
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "origination".into());
    let window = svc::window(f.from.as_deref(), f.to.as_deref(), state.clock().today());
    let (w, errors) = match window {
        Ok(w) => (w, Vec::new()),
        Err(ApiError::Validation(e)) => (svc::window(None, None, state.clock().today())?, e),
        Err(e) => return Err(e),
    };
    let r = svc::report(&state, &code, w).await?;
    let name = |n: &zhudai_workflow::analytics::NodeStats| match (lang, &n.name_en) {
        (Lang::En, Some(en)) => en.clone(),
        _ => n.name.clone(),
    };
    let name_of = |id: &str| {
        r.nodes
            .iter()
            .find(|n| n.node == id)
            .map(name)
            .unwrap_or_else(|| id.to_owned())
    };
    let with_stays: Vec<_> = r.nodes.iter().filter(|n| n.stays > 0).collect();
    let p90_bars: Vec<(String, i64, String)> = with_stays
        .iter()
        .map(|n| {
            (
                name(n),
                n.p90_ms.unwrap_or(0),
                format!(
                    "p50 {} / p90 {} h",
                    hours(n.p50_ms.unwrap_or(0)),
                    hours(n.p90_ms.unwrap_or(0))
                ),
            )
        })
        .collect();
    let queue_bars: Vec<(String, i64, String)> = r
        .nodes
        .iter()
        .filter(|n| n.queue > 0)
        .map(|n| (name(n), n.queue as i64, n.queue.to_string()))
        .collect();
    let days: Vec<(String, i64, Option<i64>)> = r
        .days
        .iter()
        .map(|d| {
            (
                d.date.format("%m-%d").to_string(),
                d.started as i64,
                Some(d.finished as i64),
            )
        })
        .collect();
    let histogram: Vec<(String, i64, Option<i64>)> = r
        .cycle
        .histogram
        .iter()
        .map(|b| (b.label.clone(), b.count as i64, None))
        .collect();
    let queue_total: u64 = r.nodes.iter().map(|n| n.queue).sum();
    let started: u64 = r.days.iter().map(|d| d.started).sum();
    let export = format!(
        "/api/v1/workflows/analytics.xlsx?{}",
        serde_urlencoded::to_string([
            ("code", code.clone()),
            ("from", r.from.to_string()),
            ("to", r.to.to_string())
        ])
        .unwrap_or_default()
    );
    let content = html! {
        section.card {
            form.filters method="get" action="/workflows/analytics" data-testid="analytics-filter" {
                label { (t.get("analytics.workflow")) " "
                    select name="code" { @for c in &codes { option value=(c) selected[*c == code] { (c) } } } }
                label { (t.get("analytics.from")) " " input type="date" name="from" value=(r.from.to_string()); }
                label { (t.get("analytics.to")) " " input type="date" name="to" value=(r.to.to_string()); }
                button type="submit" { (t.get("analytics.apply")) }
                a.button.secondary href=(export) data-testid="analytics-export" { (t.get("analytics.export")) }
            }
            @if !errors.is_empty() { div.field-error role="alert" { @for e in &errors { p { code { (e.field) } " — " (e.message) } } } }
            p.muted { (t.get("analytics.intro")) }
            div.kpis data-testid="analytics-kpis" {
                div.kpi { div.kpi-value data-testid="kpi-started" { (started) } div.kpi-label { (t.get("analytics.started")) } }
                div.kpi { div.kpi-value data-testid="kpi-finished" { (r.cycle.finished) } div.kpi-label { (t.get("analytics.finished")) } }
                div.kpi { div.kpi-value { (r.cycle.p50_ms.map(|v| duration_text(t, v)).unwrap_or_else(|| "—".into())) } div.kpi-label { (t.get("analytics.cycle_p50")) } }
                div.kpi { div.kpi-value { (r.cycle.p90_ms.map(|v| duration_text(t, v)).unwrap_or_else(|| "—".into())) } div.kpi-label { (t.get("analytics.cycle_p90")) } }
                div.kpi { div.kpi-value data-testid="kpi-queue" { (queue_total) } div.kpi-label { (t.get("analytics.in_progress")) } }
            }
        }
        div.grid {
            section.card data-testid="bottlenecks" {
                h2 { (t.get("analytics.bottlenecks")) }
                h3 { (t.get("analytics.by_wait")) }
                @if r.bottlenecks.by_wait.is_empty() { p.muted { (t.get("analytics.none")) } }
                ol { @for id in &r.bottlenecks.by_wait {
                    @if let Some(n) = r.nodes.iter().find(|n| &n.node == id) {
                        li data-node=(id) { strong { (name_of(id)) } " — p90 " (n.p90_ms.map(|v| duration_text(t, v)).unwrap_or_default()) }
                    }
                } }
                h3 { (t.get("analytics.by_queue")) }
                @if r.bottlenecks.by_queue.is_empty() { p.muted { (t.get("analytics.none")) } }
                ol { @for id in &r.bottlenecks.by_queue {
                    @if let Some(n) = r.nodes.iter().find(|n| &n.node == id) {
                        li data-node=(id) { strong { (name_of(id)) } " — " (n.queue) " · " (t.get("analytics.oldest")) " " (n.oldest_wait_ms.map(|v| duration_text(t, v)).unwrap_or_default()) }
                    }
                } }
            }
            section.card data-testid="chart-wait" {
                h2 { (t.get("analytics.wait_chart")) }
                @if p90_bars.is_empty() { p.muted { (t.get("analytics.none")) } }
                @else { (chart::bars_labelled(&t.get("analytics.wait_chart"), &p90_bars)) }
            }
            section.card data-testid="chart-queue" {
                h2 { (t.get("analytics.queue_chart")) }
                @if queue_bars.is_empty() { p.muted { (t.get("analytics.none")) } }
                @else { (chart::bars_labelled(&t.get("analytics.queue_chart"), &queue_bars)) }
            }
        }
        section.card.wide data-testid="chart-days" {
            h2 { (t.get("analytics.throughput")) }
            (chart::columns(&t.get("analytics.throughput"), (&t.get("analytics.started"), Some(&t.get("analytics.finished"))), &days))
        }
        section.card data-testid="chart-cycle" {
            h2 { (t.get("analytics.cycle")) }
            (chart::columns(&t.get("analytics.cycle"), (&t.get("analytics.instances"), None), &histogram))
        }
        section.card.wide data-testid="node-table" {
            h2 { (t.get("analytics.nodes")) }
            table.table {
                thead { tr {
                    th { (t.get("analytics.node")) } th.num { (t.get("analytics.stays")) } th.num { (t.get("analytics.mean")) }
                    th.num { "p50" } th.num { "p90" } th.num { (t.get("analytics.max")) }
                    th.num { (t.get("analytics.approvals")) } th.num { (t.get("analytics.rejections")) } th.num { (t.get("analytics.returns")) }
                    th.num { (t.get("analytics.approval_rate")) } th.num { (t.get("analytics.queue")) } th.num { (t.get("analytics.oldest")) }
                } }
                tbody { @for n in &r.nodes { tr data-node=(n.node) {
                    td { (name(n)) " " code.muted { (n.node) } }
                    td.num { (n.stays) }
                    td.num { (n.mean_ms.map(hours).unwrap_or_default()) }
                    td.num { (n.p50_ms.map(hours).unwrap_or_default()) }
                    td.num { (n.p90_ms.map(hours).unwrap_or_default()) }
                    td.num { (n.max_ms.map(hours).unwrap_or_default()) }
                    td.num { (n.approvals) }
                    td.num { (n.rejections) }
                    td.num { (n.returns) }
                    td.num data-testid="approval-rate" { (pct(&n.approval_rate)) }
                    td.num { (n.queue) }
                    td.num { (n.oldest_wait_ms.map(hours).unwrap_or_default()) }
                } } }
            }
            p.muted { (t.get("analytics.hours_note")) }
        }
        section.card data-testid="level-table" {
            h2 { (t.get("analytics.levels")) }
            @if r.levels.is_empty() { p.muted { (t.get("analytics.none")) } }
            @else {
                table.table {
                    thead { tr { th { (t.get("analytics.node")) } th { (t.get("analytics.level")) } th.num { (t.get("analytics.approvals")) } th.num { (t.get("analytics.rejections")) } th.num { (t.get("analytics.returns")) } th.num { (t.get("analytics.approval_rate")) } th.num { (t.get("analytics.rejection_rate")) } } }
                    tbody { @for l in &r.levels { tr {
                        td { (name_of(&l.node)) }
                        td { "L" (l.level) " · " code { (l.role) } }
                        td.num { (l.approvals) } td.num { (l.rejections) } td.num { (l.returns) }
                        td.num { (pct(&l.approval_rate)) } td.num { (pct(&l.rejection_rate)) }
                    } } }
                }
            }
        }
    };
    let ctx = Ctx {
        lang,
        caller: Some(caller),
    };
    Ok(page(&state, &ctx, "tasks", &t.get("analytics.title"), content).into_response())
}
