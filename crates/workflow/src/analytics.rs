//! Process analytics (issue #6 item 4): the figures an operations manager uses to improve
//! a flow, computed from instance histories. Pure: the server reads the steps and the
//! running instances and passes them in.
//!
//! * **Stays.** An instance *stays* at a node from the step that entered it to the step
//!   that left it (to another node). Steps that keep it where it is — a comment, a
//!   transfer, one level of a multi-level approval — do not end a stay. A stay counts in
//!   the window when it *ended* in the window; stays still open are the node's *queue*.
//! * **Percentiles** are nearest-rank: the p-th percentile of n sorted values is the value
//!   at rank ⌈p·n/100⌉ (1-based), so it is always a time that really occurred.
//! * **Decisions.** How stays at a node ended (`approve`, `reject`, `return`, `withdraw`,
//!   `timeout`, …, by the action that left the node); the approval rate of a node is
//!   approvals ÷ (approvals + rejections + returns). Per approval level every approver's
//!   decision counts, partial ones included (an `all_of` level of two is two decisions).
//! * **Throughput** per business day (Asia/Shanghai): instances started, and finished per
//!   outcome (the end node reached).
//! * **Cycle time**: start to end of the instances that finished in the window.
//! * **Bottlenecks**: the nodes with the longest p90 stays, and with the biggest queues.

use crate::definition::NodeKind;
use chrono::{Duration, FixedOffset, NaiveDate, Offset, TimeZone};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One step of an instance's history, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFact {
    pub instance_id: i64,
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<i64>,
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    /// Approval level (1-based) and role of an approver's decision.
    pub level: Option<i64>,
    pub level_role: Option<String>,
}

/// A node as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub name_en: Option<String>,
}

/// Business dates, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The longest window a report covers (days), so a request cannot ask for millions of rows.
pub const MAX_DAYS: i64 = 366;

fn shanghai() -> FixedOffset {
    // East 8 h is always a valid offset; UTC is only the type checker's fallback.
    FixedOffset::east_opt(8 * 3600).unwrap_or(chrono::Utc.fix())
}

/// The business date of an instant (ms).
pub fn business_day(at_ms: i64) -> NaiveDate {
    shanghai()
        .timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// The first instant (ms) of a business date.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    shanghai()
        .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

impl Window {
    /// `[from 00:00, to+1 00:00)` in Shanghai time, as ms.
    pub fn bounds_ms(&self) -> (i64, i64) {
        (
            day_start_ms(self.from),
            day_start_ms(self.to + Duration::days(1)),
        )
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    fn contains(&self, at_ms: i64) -> bool {
        let (a, b) = self.bounds_ms();
        at_ms >= a && at_ms < b
    }
}

/// The p-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p as usize * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// `num / den` to four decimals (half away from zero); `None` when `den` is 0.
pub fn rate(num: u64, den: u64) -> Option<Decimal> {
    if den == 0 {
        return None;
    }
    let mut r = (Decimal::from(num) / Decimal::from(den))
        .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    r.rescale(4);
    Some(r)
}

/// Figures of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    pub node: String,
    pub kind: Option<NodeKind>,
    pub name: String,
    pub name_en: Option<String>,
    /// Stays that ended in the window.
    pub stays: u64,
    pub total_ms: i64,
    pub mean_ms: Option<i64>,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub max_ms: Option<i64>,
    /// How those stays ended: the leaving action → count.
    pub left_by: BTreeMap<String, u64>,
    pub approvals: u64,
    pub rejections: u64,
    pub returns: u64,
    /// approvals ÷ (approvals + rejections + returns).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub approval_rate: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub rejection_rate: Option<Decimal>,
    /// Instances at this node now, and how long the oldest has waited.
    pub queue: u64,
    pub oldest_wait_ms: Option<i64>,
}

/// Decisions at one approval level of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelStats {
    pub node: String,
    pub level: i64,
    pub role: String,
    pub approvals: u64,
    pub rejections: u64,
    pub returns: u64,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub approval_rate: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub rejection_rate: Option<Decimal>,
}

/// One business day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayStats {
    pub date: NaiveDate,
    pub started: u64,
    pub finished: u64,
    /// End node reached → count.
    pub finished_by: BTreeMap<String, u64>,
}

/// One bar of the cycle-time histogram: `[from_ms, to_ms)`, `to_ms` `None` for the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub label: String,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub count: u64,
}

/// Start-to-end time of the instances that finished in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleStats {
    pub finished: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bottlenecks {
    /// Nodes by p90 stay, longest first (at most three; only nodes with a stay > 0).
    pub by_wait: Vec<String>,
    /// Nodes by queue, biggest first (at most three; only non-empty queues).
    pub by_queue: Vec<String>,
}

/// Everything the analytics page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub nodes: Vec<NodeStats>,
    pub levels: Vec<LevelStats>,
    pub days: Vec<DayStats>,
    pub cycle: CycleStats,
    pub bottlenecks: Bottlenecks,
}

const HOUR: i64 = 3_600_000;

/// Cycle-time buckets: under 1 h, 1–4 h, 4–8 h, 8–24 h, 1–3 d, 3–7 d, 7 d and more.
pub const CYCLE_BUCKETS: &[(&str, i64)] = &[
    ("<1h", 0),
    ("1-4h", HOUR),
    ("4-8h", 4 * HOUR),
    ("8-24h", 8 * HOUR),
    ("1-3d", 24 * HOUR),
    ("3-7d", 72 * HOUR),
    (">=7d", 168 * HOUR),
];

#[derive(Default)]
struct Acc {
    durations: Vec<i64>,
    left_by: BTreeMap<String, u64>,
    queue: u64,
    oldest_since: Option<i64>,
}

/// Computes the report. `steps` may come in any order; `nodes` gives the order and kinds
/// (nodes seen only in older versions' histories are added at the end); `now_ms` dates
/// the queues.
pub fn report(nodes: &[NodeInfo], steps: &[StepFact], window: Window, now_ms: i64) -> Report {
    let mut by_instance: HashMap<i64, Vec<&StepFact>> = HashMap::new();
    for s in steps {
        by_instance.entry(s.instance_id).or_default().push(s);
    }
    let kind_of: HashMap<&str, NodeKind> = nodes.iter().map(|n| (n.id.as_str(), n.kind)).collect();
    let is_end = |n: &str| kind_of.get(n) == Some(&NodeKind::End);
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut levels: BTreeMap<(String, i64, String), (u64, u64, u64)> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, DayStats> = BTreeMap::new();
    let mut day = window.from;
    while day <= window.to {
        days.insert(
            day,
            DayStats {
                date: day,
                started: 0,
                finished: 0,
                finished_by: BTreeMap::new(),
            },
        );
        day += Duration::days(1);
    }
    let mut cycles = Vec::new();
    let mut instance_ids: Vec<i64> = by_instance.keys().copied().collect();
    instance_ids.sort_unstable();
    for id in instance_ids {
        let Some(list) = by_instance.get_mut(&id) else {
            continue;
        };
        list.sort_by_key(|s| s.seq);
        // The stay in progress: (node, entered at).
        let mut stay: Option<(&str, i64)> = None;
        let mut started_at = None;
        for s in list.iter() {
            if s.action == "start" {
                started_at = Some(s.at_ms);
                if window.contains(s.at_ms) {
                    if let Some(d) = days.get_mut(&business_day(s.at_ms)) {
                        d.started += 1;
                    }
                }
            }
            if let (Some(level), Some(role)) = (s.level, s.level_role.as_ref()) {
                if window.contains(s.at_ms) {
                    let e = levels
                        .entry((s.from_node.clone(), level, role.clone()))
                        .or_default();
                    match s.action.as_str() {
                        "approve" => e.0 += 1,
                        "reject" => e.1 += 1,
                        "return" => e.2 += 1,
                        _ => {}
                    }
                }
            }
            if s.to_node == s.from_node {
                continue;
            }
            if let Some((node, since)) = stay.take() {
                if window.contains(s.at_ms) {
                    let a = acc.entry(node.to_owned()).or_default();
                    a.durations.push(s.at_ms - since);
                    *a.left_by.entry(s.action.clone()).or_default() += 1;
                }
            }
            stay = Some((s.to_node.as_str(), s.at_ms));
            if is_end(&s.to_node) {
                stay = None;
                if window.contains(s.at_ms) {
                    if let Some(d) = days.get_mut(&business_day(s.at_ms)) {
                        d.finished += 1;
                        *d.finished_by.entry(s.to_node.clone()).or_default() += 1;
                    }
                    if let Some(t0) = started_at {
                        cycles.push(s.at_ms - t0);
                    }
                }
            }
        }
        if let Some((node, since)) = stay {
            let a = acc.entry(node.to_owned()).or_default();
            a.queue += 1;
            a.oldest_since = Some(a.oldest_since.map_or(since, |o: i64| o.min(since)));
        }
    }
    let mut order: Vec<NodeInfo> = nodes.to_vec();
    for id in acc.keys() {
        if !order.iter().any(|n| &n.id == id) {
            order.push(NodeInfo {
                id: id.clone(),
                kind: NodeKind::Task,
                name: id.clone(),
                name_en: None,
            });
        }
    }
    let known: std::collections::HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut node_stats = Vec::new();
    for n in &order {
        if n.kind == NodeKind::End {
            continue;
        }
        let mut a = acc.remove(&n.id).unwrap_or_default();
        a.durations.sort_unstable();
        let count = a.durations.len() as u64;
        let total: i64 = a.durations.iter().sum();
        let get = |k: &str| a.left_by.get(k).copied().unwrap_or(0);
        let (ap, rj, rt) = (get("approve"), get("reject"), get("return"));
        node_stats.push(NodeStats {
            node: n.id.clone(),
            kind: known.contains(n.id.as_str()).then_some(n.kind),
            name: n.name.clone(),
            name_en: n.name_en.clone(),
            stays: count,
            total_ms: total,
            mean_ms: (count > 0).then(|| total / count as i64),
            p50_ms: percentile(&a.durations, 50),
            p90_ms: percentile(&a.durations, 90),
            max_ms: a.durations.last().copied(),
            approvals: ap,
            rejections: rj,
            returns: rt,
            approval_rate: rate(ap, ap + rj + rt),
            rejection_rate: rate(rj, ap + rj + rt),
            left_by: a.left_by,
            queue: a.queue,
            oldest_wait_ms: a.oldest_since.map(|s| now_ms - s),
        });
    }
    let levels = levels
        .into_iter()
        .map(|((node, level, role), (ap, rj, rt))| LevelStats {
            node,
            level,
            role,
            approvals: ap,
            rejections: rj,
            returns: rt,
            approval_rate: rate(ap, ap + rj + rt),
            rejection_rate: rate(rj, ap + rj + rt),
        })
        .collect();
    cycles.sort_unstable();
    let histogram = CYCLE_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (label, from))| {
            let to = CYCLE_BUCKETS.get(i + 1).map(|b| b.1);
            Bucket {
                label: (*label).to_owned(),
                from_ms: *from,
                to_ms: to,
                count: cycles
                    .iter()
                    .filter(|c| **c >= *from && to.is_none_or(|t| **c < t))
                    .count() as u64,
            }
        })
        .collect();
    let mut by_wait: Vec<&NodeStats> = node_stats
        .iter()
        .filter(|n| n.p90_ms.unwrap_or(0) > 0)
        .collect();
    by_wait.sort_by(|a, b| b.p90_ms.cmp(&a.p90_ms).then(b.mean_ms.cmp(&a.mean_ms)));
    let mut by_queue: Vec<&NodeStats> = node_stats.iter().filter(|n| n.queue > 0).collect();
    by_queue.sort_by(|a, b| {
        b.queue
            .cmp(&a.queue)
            .then(b.oldest_wait_ms.cmp(&a.oldest_wait_ms))
    });
    Report {
        from: window.from,
        to: window.to,
        bottlenecks: Bottlenecks {
            by_wait: by_wait.iter().take(3).map(|n| n.node.clone()).collect(),
            by_queue: by_queue.iter().take(3).map(|n| n.node.clone()).collect(),
        },
        nodes: node_stats,
        levels,
        days: days.into_values().collect(),
        cycle: CycleStats {
            finished: cycles.len() as u64,
            p50_ms: percentile(&cycles, 50),
            p90_ms: percentile(&cycles, 90),
            histogram,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 100), Some(10));
    }

    #[test]
    fn rates_round_to_four_places() {
        assert_eq!(rate(2, 3).unwrap().to_string(), "0.6667");
        assert_eq!(rate(1, 8).unwrap().to_string(), "0.1250");
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn business_days_are_shanghai_days() {
        // 2026-11-29 16:30 UTC is 2026-11-30 00:30 in Shanghai.
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 16, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(business_day(at).to_string(), "2026-11-30");
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(day_start_ms(d), at - 30 * 60_000);
        let w = Window { from: d, to: d };
        assert_eq!(w.bounds_ms(), (at - 1_800_000, at - 1_800_000 + 86_400_000));
        assert_eq!(w.days(), 1);
    }

    fn step(inst: i64, seq: i64, h: i64, action: &str, from: &str, to: &str) -> StepFact {
        StepFact {
            instance_id: inst,
            seq,
            at_ms: day_start_ms(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()) + h * HOUR,
            actor: Some(1),
            action: action.into(),
            from_node: from.into(),
            to_node: to.into(),
            level: None,
            level_role: None,
        }
    }

    #[test]
    fn stays_skip_steps_that_keep_the_node_and_open_stays_are_queues() {
        let nodes = vec![
            NodeInfo {
                id: "a".into(),
                kind: NodeKind::Task,
                name: "A".into(),
                name_en: None,
            },
            NodeInfo {
                id: "b".into(),
                kind: NodeKind::Approval,
                name: "B".into(),
                name_en: None,
            },
            NodeInfo {
                id: "end".into(),
                kind: NodeKind::End,
                name: "E".into(),
                name_en: None,
            },
        ];
        let mut partial = step(1, 3, 3, "approve", "b", "b");
        partial.level = Some(1);
        partial.level_role = Some("l1".into());
        let mut last = step(1, 4, 5, "approve", "b", "end");
        last.level = Some(2);
        last.level_role = Some("l2".into());
        let steps = vec![
            step(1, 1, 0, "start", "", "a"),
            step(1, 2, 2, "submit", "a", "b"),
            partial,
            step(1, 5, 5, "comment", "end", "end"),
            last,
            step(2, 1, 1, "start", "", "a"),
        ];
        let w = Window {
            from: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 1, 6).unwrap(),
        };
        let now = steps[0].at_ms + 10 * HOUR;
        let r = report(&nodes, &steps, w, now);
        let a = &r.nodes[0];
        assert_eq!(
            (a.stays, a.total_ms, a.queue, a.oldest_wait_ms),
            (1, 2 * HOUR, 1, Some(9 * HOUR))
        );
        let b = &r.nodes[1];
        assert_eq!((b.stays, b.total_ms, b.approvals), (1, 3 * HOUR, 1));
        assert_eq!(b.approval_rate.unwrap().to_string(), "1.0000");
        assert_eq!(r.nodes.len(), 2, "end nodes have no stays");
        assert_eq!(r.levels.len(), 2);
        assert_eq!((r.levels[0].level, r.levels[0].approvals), (1, 1));
        assert_eq!(r.days[0].started, 2);
        assert_eq!(r.days[0].finished_by.get("end"), Some(&1));
        assert_eq!(r.days[1].started, 0);
        assert_eq!(r.cycle.finished, 1);
        assert_eq!(r.cycle.p50_ms, Some(5 * HOUR));
        assert_eq!(r.cycle.histogram[2].count, 1, "5 h is in 4-8h");
        assert_eq!(r.bottlenecks.by_wait, ["b", "a"]);
        assert_eq!(r.bottlenecks.by_queue, ["a"]);
    }
}
