//! The portfolio dashboard's figures (issue #8 item 6): balance by tier and by bucket
//! from the last close's snapshot, the NPL trend over closes, vintage curves, and a
//! roll-rate matrix between two closes; and the same as an XLSX workbook.

use crate::error::ApiError;
use crate::state::AppState;
use chrono::{Months, NaiveDate};
use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;
use utoipa::ToSchema;
use zhudai_domain::classify::{CollectionBucket, FiveTierClass};
use zhudai_domain::portfolio::{RollMatrix, RollTo};
use zhudai_store::jobs::Job;
use zhudai_store::portfolio::VintagePoint;

/// The job that recomputes the vintage curves after a close.
pub const VINTAGE_JOB: &str = "portfolio.vintages";
/// Months on book the curves follow.
pub const MAX_MOB: u32 = 36;

pub async fn run_vintage_job(state: AppState, job: Job) -> Result<(), String> {
    let as_of = job
        .payload
        .get("as_of")
        .and_then(|v| v.as_str())
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or("payload needs as_of")?;
    state
        .store()
        .refresh_vintages(as_of, MAX_MOB)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Loans and outstanding principal of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Slice {
    /// A tier code or a bucket label.
    pub key: String,
    pub loans: i64,
    pub principal_fen: i64,
}

/// The roll-rate matrix between two closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Roll {
    pub from: String,
    pub to: String,
    /// Rows M0 … M6+ (bucket at `from`), columns M0 … M6+ then closed.
    pub counts: Vec<Vec<u64>>,
}

impl Roll {
    pub fn matrix(&self) -> RollMatrix {
        let mut m = RollMatrix::default();
        for (r, row) in self.counts.iter().enumerate().take(7) {
            for (c, n) in row.iter().enumerate().take(8) {
                m.counts[r][c] = *n;
            }
        }
        m
    }
}

/// One point of the NPL trend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrendPoint {
    pub business_date: String,
    pub principal_fen: i64,
    pub npl_fen: i64,
}

/// One vintage curve point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Vintage {
    pub vintage: String,
    pub mob: i64,
    pub point_date: String,
    pub loans: i64,
    pub overdue_loans: i64,
    pub overdue30_loans: i64,
}

impl From<VintagePoint> for Vintage {
    fn from(v: VintagePoint) -> Self {
        Vintage {
            vintage: v.vintage,
            mob: v.mob,
            point_date: v.point_date,
            loans: v.loans,
            overdue_loans: v.overdue_loans,
            overdue30_loans: v.overdue30_loans,
        }
    }
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Dashboard {
    /// The last finished close (the figures are as of its end); absent before the first.
    pub as_of: Option<String>,
    pub loans: i64,
    pub principal_fen: i64,
    /// 次级 + 可疑 + 损失.
    pub npl_fen: i64,
    pub by_tier: Vec<Slice>,
    pub by_bucket: Vec<Slice>,
    pub npl_trend: Vec<TrendPoint>,
    pub vintages: Vec<Vintage>,
    pub roll: Option<Roll>,
}

/// The roll-rate matrix from the end of `from` to the end of `to`.
pub async fn roll(state: &AppState, from: &str, to: &str) -> Result<Roll, ApiError> {
    let f = state.store().roll_facts(from, to).await?;
    let mut m = RollMatrix::default();
    let bucket = |s: Option<&String>| {
        s.and_then(|b| CollectionBucket::parse(b))
            .unwrap_or(CollectionBucket::M0)
    };
    let closed: std::collections::HashSet<i64> = f.closed.iter().copied().collect();
    let mut seen: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for id in f.from.keys().chain(f.to.keys()).chain(f.closed.iter()) {
        if !seen.insert(*id) {
            continue;
        }
        let a = bucket(f.from.get(id));
        let b = if closed.contains(id) {
            RollTo::Closed
        } else {
            RollTo::Bucket(bucket(f.to.get(id)))
        };
        m.add(a, b, 1);
    }
    let rest = (f.open_at_from - seen.len() as i64).max(0) as u64;
    m.add(
        CollectionBucket::M0,
        RollTo::Bucket(CollectionBucket::M0),
        rest,
    );
    Ok(Roll {
        from: from.to_owned(),
        to: to.to_owned(),
        counts: m.counts.iter().map(|r| r.to_vec()).collect(),
    })
}

/// The dashboard as of the last finished close; the roll rates run from the last close
/// a month or more before it (or the first close) to it, unless `from`/`to` are given.
pub async fn dashboard(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Dashboard, ApiError> {
    let store = state.store();
    let last = store.cob_last_done().await?;
    let Some(last) = last else {
        return Ok(Dashboard {
            as_of: None,
            loans: 0,
            principal_fen: 0,
            npl_fen: 0,
            by_tier: Vec::new(),
            by_bucket: Vec::new(),
            npl_trend: Vec::new(),
            vintages: store
                .vintages()
                .await?
                .into_iter()
                .map(Vintage::from)
                .collect(),
            roll: None,
        });
    };
    let snap = store.cob_snapshot(&last.business_date).await?;
    let mut by_tier: Vec<Slice> = FiveTierClass::ALL
        .iter()
        .map(|t| Slice {
            key: t.code().into(),
            ..Default::default()
        })
        .collect();
    let mut by_bucket: Vec<Slice> = CollectionBucket::ALL
        .iter()
        .map(|b| Slice {
            key: b.label().into(),
            ..Default::default()
        })
        .collect();
    for r in &snap {
        if let Some(s) = by_tier.iter_mut().find(|s| s.key == r.classification) {
            s.loans += r.loans;
            s.principal_fen += r.principal_fen;
        }
        if let Some(s) = by_bucket.iter_mut().find(|s| s.key == r.collection_bucket) {
            s.loans += r.loans;
            s.principal_fen += r.principal_fen;
        }
    }
    let loans = by_tier.iter().map(|s| s.loans).sum();
    let principal_fen = by_tier.iter().map(|s| s.principal_fen).sum();
    let npl_fen = by_tier
        .iter()
        .filter(|s| FiveTierClass::parse(&s.key).is_ok_and(FiveTierClass::is_npl))
        .map(|s| s.principal_fen)
        .sum();
    let npl_trend = store
        .npl_trend(60)
        .await?
        .into_iter()
        .map(|(d, t, n)| TrendPoint {
            business_date: d,
            principal_fen: t,
            npl_fen: n,
        })
        .collect();
    let to_date = to.unwrap_or(&last.business_date).to_owned();
    let from_date = match from {
        Some(f) => Some(f.to_owned()),
        None => default_roll_from(state, &to_date).await?,
    };
    let roll = match from_date {
        Some(f) if f < to_date => Some(roll(state, &f, &to_date).await?),
        _ => None,
    };
    Ok(Dashboard {
        as_of: Some(last.business_date),
        loans,
        principal_fen,
        npl_fen,
        by_tier,
        by_bucket,
        npl_trend,
        vintages: store
            .vintages()
            .await?
            .into_iter()
            .map(Vintage::from)
            .collect(),
        roll,
    })
}

async fn default_roll_from(state: &AppState, to: &str) -> Result<Option<String>, ApiError> {
    let runs = state.store().cob_runs(400).await?;
    let done: Vec<&str> = runs
        .iter()
        .filter(|r| r.state == "done" && r.business_date.as_str() < to)
        .map(|r| r.business_date.as_str())
        .collect();
    let month_before = NaiveDate::parse_from_str(to, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_sub_months(Months::new(1)))
        .map(|d| d.format("%Y-%m-%d").to_string());
    // Newest first: the first close on or before a month earlier, else the oldest.
    let pick = month_before
        .as_deref()
        .and_then(|m| done.iter().find(|d| **d <= m).copied())
        .or_else(|| done.last().copied());
    Ok(pick.map(str::to_owned))
}

/// The dashboard as an XLSX workbook: tiers, buckets, NPL trend, vintages, roll rates.
pub fn xlsx(d: &Dashboard, zh: bool) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("#,##0.00");
    let pct = Format::new().set_num_format("0.00%");
    let t = |zh_s: &'static str, en: &'static str| if zh { zh_s } else { en };
    let yuan = |fen: i64| fen as f64 / 100.0;
    {
        let ws = wb.add_worksheet().set_name(t("五级分类", "Tiers"))?;
        ws.write_string_with_format(0, 0, t("数据日期", "As of"), &bold)?;
        ws.write_string(0, 1, d.as_of.clone().unwrap_or_default())?;
        for (c, h) in [
            t("分类", "Tier"),
            t("笔数", "Loans"),
            t("本金余额（元）", "Principal (yuan)"),
            t("占比", "Share"),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(2, c as u16, *h, &bold)?;
        }
        for (i, s) in d.by_tier.iter().enumerate() {
            let row = 3 + i as u32;
            let tier = FiveTierClass::parse(&s.key).ok();
            ws.write_string(
                row,
                0,
                tier.map_or(s.key.clone(), |t| {
                    if zh {
                        t.zh_name().into()
                    } else {
                        t.en_name().into()
                    }
                }),
            )?;
            ws.write_number(row, 1, s.loans as f64)?;
            ws.write_number_with_format(row, 2, yuan(s.principal_fen), &money)?;
            let share = if d.principal_fen > 0 {
                s.principal_fen as f64 / d.principal_fen as f64
            } else {
                0.0
            };
            ws.write_number_with_format(row, 3, share, &pct)?;
        }
        ws.set_column_width(0, 18)?;
        ws.set_column_width(2, 20)?;
    }
    {
        let ws = wb.add_worksheet().set_name(t("逾期账龄", "DPD buckets"))?;
        for (c, h) in [
            t("账龄", "Bucket"),
            t("笔数", "Loans"),
            t("本金余额（元）", "Principal (yuan)"),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        for (i, s) in d.by_bucket.iter().enumerate() {
            let row = 1 + i as u32;
            ws.write_string(row, 0, &s.key)?;
            ws.write_number(row, 1, s.loans as f64)?;
            ws.write_number_with_format(row, 2, yuan(s.principal_fen), &money)?;
        }
        ws.set_column_width(2, 20)?;
    }
    {
        let ws = wb.add_worksheet().set_name(t("不良趋势", "NPL trend"))?;
        for (c, h) in [
            t("日期", "Date"),
            t("本金余额（元）", "Principal (yuan)"),
            t("不良余额（元）", "NPL (yuan)"),
            t("不良率", "NPL ratio"),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        for (i, p) in d.npl_trend.iter().enumerate() {
            let row = 1 + i as u32;
            ws.write_string(row, 0, &p.business_date)?;
            ws.write_number_with_format(row, 1, yuan(p.principal_fen), &money)?;
            ws.write_number_with_format(row, 2, yuan(p.npl_fen), &money)?;
            let r = if p.principal_fen > 0 {
                p.npl_fen as f64 / p.principal_fen as f64
            } else {
                0.0
            };
            ws.write_number_with_format(row, 3, r, &pct)?;
        }
        ws.set_column_width(0, 12)?;
        ws.set_column_width(1, 20)?;
        ws.set_column_width(2, 20)?;
    }
    {
        let ws = wb.add_worksheet().set_name(t("账龄分析", "Vintages"))?;
        for (c, h) in [
            t("放款月", "Vintage"),
            t("账龄月", "MOB"),
            t("观察日", "Point"),
            t("笔数", "Loans"),
            t("逾期笔数", "Overdue"),
            t("逾期率", "Overdue rate"),
            t("逾期30天以上", "30+ DPD"),
            t("30+逾期率", "30+ rate"),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        for (i, v) in d.vintages.iter().enumerate() {
            let row = 1 + i as u32;
            ws.write_string(row, 0, &v.vintage)?;
            ws.write_number(row, 1, v.mob as f64)?;
            ws.write_string(row, 2, &v.point_date)?;
            ws.write_number(row, 3, v.loans as f64)?;
            ws.write_number(row, 4, v.overdue_loans as f64)?;
            let r = |n: i64| {
                if v.loans > 0 {
                    n as f64 / v.loans as f64
                } else {
                    0.0
                }
            };
            ws.write_number_with_format(row, 5, r(v.overdue_loans), &pct)?;
            ws.write_number(row, 6, v.overdue30_loans as f64)?;
            ws.write_number_with_format(row, 7, r(v.overdue30_loans), &pct)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name(t("迁徙率", "Roll rates"))?;
        if let Some(r) = &d.roll {
            ws.write_string_with_format(0, 0, t("期初", "From"), &bold)?;
            ws.write_string(0, 1, &r.from)?;
            ws.write_string_with_format(0, 2, t("期末", "To"), &bold)?;
            ws.write_string(0, 3, &r.to)?;
            let cols: Vec<String> = CollectionBucket::ALL
                .iter()
                .map(|b| b.label().to_owned())
                .chain([t("结清/核销", "Closed").to_owned()])
                .collect();
            for (c, h) in cols.iter().enumerate() {
                ws.write_string_with_format(2, 1 + c as u16, h, &bold)?;
            }
            ws.write_string_with_format(2, 9, t("合计", "Total"), &bold)?;
            let m = r.matrix();
            for (ri, b) in CollectionBucket::ALL.iter().enumerate() {
                let row = 3 + ri as u32;
                ws.write_string_with_format(row, 0, b.label(), &bold)?;
                let total = m.row_total(*b);
                for c in 0..8 {
                    let n = m.counts[ri][c];
                    if total > 0 {
                        ws.write_number_with_format(
                            row,
                            1 + c as u16,
                            n as f64 / total as f64,
                            &pct,
                        )?;
                    }
                }
                ws.write_number(row, 9, total as f64)?;
            }
        } else {
            ws.write_string(0, 0, t("需要至少两次日终", "Needs two closes"))?;
        }
    }
    wb.save_to_buffer()
}
