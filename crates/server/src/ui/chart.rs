//! Charts drawn on the server as inline SVG: they need no JavaScript, no CDN, print well
//! and can be tested as plain markup.

use maud::{html, Markup};

/// A horizontal bar chart of labelled non-negative values.
pub fn bars(aria_label: &str, items: &[(String, i64)]) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row_h = 28;
    let label_w = 96;
    let bar_w = 200;
    let height = (items.len().max(1) * row_h) as i64 + 4;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {} {}", label_w + bar_w + 70, height))
            width=(label_w + bar_w + 70) height=(height) {
            title { (aria_label) }
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = (i * row_h) as i64 + 4;
                @let w = if *value > 0 { (*value * bar_w as i64 / max).max(2) } else { 0 };
                text x=(label_w - 8) y=(y + 16) text-anchor="end" class="chart-label" { (label) }
                rect x=(label_w) y=(y) width=(w) height="20" rx="3" class="chart-bar" {}
                text x=(label_w as i64 + w + 6) y=(y + 15) class="chart-value" { (value) }
            }
        }
    }
}

// --- Products and pricing (issue #5) ---

/// Stacked columns, one per label, of two non-negative series (e.g. principal and
/// interest per period). `series` names the two parts for the legend.
pub fn stacked_columns(
    aria_label: &str,
    series: (&str, &str),
    items: &[(String, i64, i64)],
) -> Markup {
    let max = items
        .iter()
        .map(|(_, a, b)| a.saturating_add(*b))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = items.len().max(1) as i64;
    let plot_h: i64 = 160;
    let col_w: i64 = (480 / n).clamp(4, 40);
    let gap: i64 = (col_w / 5).max(1);
    let width = 40 + n * col_w + 10;
    let height = plot_h + 50;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) {
            title { (aria_label) }
            @for (i, (label, a, b)) in items.iter().enumerate() {
                @let x = 40 + i as i64 * col_w;
                @let ha = a.max(&0) * plot_h / max;
                @let hb = b.max(&0) * plot_h / max;
                rect x=(x) y=(10 + plot_h - ha) width=(col_w - gap) height=(ha) class="chart-bar" data-part="a" { title { (label) ": " (a) } }
                rect x=(x) y=(10 + plot_h - ha - hb) width=(col_w - gap) height=(hb) class="chart-bar-alt" data-part="b" { title { (label) ": " (b) } }
                @if n <= 24 || i % ((n / 12).max(1) as usize) == 0 {
                    text x=(x + (col_w - gap) / 2) y=(plot_h + 24) text-anchor="middle" class="chart-label" { (label) }
                }
            }
            rect x="40" y=(plot_h + 32) width="10" height="10" class="chart-bar" {}
            text x="54" y=(plot_h + 41) class="chart-label" { (series.0) }
            rect x="140" y=(plot_h + 32) width="10" height="10" class="chart-bar-alt" {}
            text x="154" y=(plot_h + 41) class="chart-label" { (series.1) }
        }
    }
}

// --- Process analytics (issue #6 item 4) ---

/// A horizontal bar chart whose bars are scaled by a number and labelled with a text
/// (e.g. hours shown as `12.5 h`, rates as `66.7 %`).
pub fn bars_labelled(aria_label: &str, items: &[(String, i64, String)]) -> Markup {
    let max = items.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1);
    let row_h = 26;
    let label_w = 150;
    let bar_w = 260;
    let height = (items.len().max(1) * row_h) as i64 + 4;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {} {}", label_w + bar_w + 90, height))
            width=(label_w + bar_w + 90) height=(height) {
            title { (aria_label) }
            @for (i, (label, value, text)) in items.iter().enumerate() {
                @let y = (i * row_h) as i64 + 4;
                @let w = if *value > 0 { (*value * bar_w as i64 / max).max(2) } else { 0 };
                text x=(label_w - 8) y=(y + 15) text-anchor="end" class="chart-label" { (label) }
                rect x=(label_w) y=(y) width=(w) height="18" rx="3" class="chart-bar" data-value=(value) {}
                text x=(label_w as i64 + w + 6) y=(y + 14) class="chart-value" { (text) }
            }
        }
    }
}

/// Vertical columns of two series side by side per label (e.g. started and finished per
/// day), or of one series when every second value is absent. Labels are thinned to about
/// a dozen when there are many columns.
pub fn columns(
    aria_label: &str,
    series: (&str, Option<&str>),
    items: &[(String, i64, Option<i64>)],
) -> Markup {
    let max = items
        .iter()
        .map(|(_, a, b)| (*a).max(b.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let paired = series.1.is_some();
    let n = items.len().max(1) as i64;
    let plot_h: i64 = 150;
    let group_w: i64 = (560 / n).clamp(8, 60);
    let bar_w: i64 = if paired {
        (group_w - 2) / 2
    } else {
        group_w - 2
    }
    .max(2);
    let width = 40 + n * group_w + 10;
    let height = plot_h + 52;
    let every = (n / 12).max(1) as usize;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) {
            title { (aria_label) }
            line x1="38" y1=(10 + plot_h) x2=(width - 6) y2=(10 + plot_h) stroke="#ccc" {}
            text x="34" y="18" text-anchor="end" class="chart-label" { (max) }
            @for (i, (label, a, b)) in items.iter().enumerate() {
                @let x = 40 + i as i64 * group_w;
                @let ha = a.max(&0) * plot_h / max;
                rect x=(x) y=(10 + plot_h - ha) width=(bar_w) height=(ha) class="chart-bar" data-part="a" data-value=(a) { title { (label) " · " (series.0) ": " (a) } }
                @if let Some(b) = b {
                    @let hb = b.max(&0) * plot_h / max;
                    rect x=(x + bar_w) y=(10 + plot_h - hb) width=(bar_w) height=(hb) class="chart-bar-alt" data-part="b" data-value=(b) { title { (label) " · " (series.1.unwrap_or("")) ": " (b) } }
                }
                @if i % every == 0 {
                    text x=(x + group_w / 2) y=(plot_h + 24) text-anchor="middle" class="chart-label" { (label) }
                }
            }
            rect x="40" y=(plot_h + 34) width="10" height="10" class="chart-bar" {}
            text x="54" y=(plot_h + 43) class="chart-label" { (series.0) }
            @if let Some(s) = series.1 {
                rect x="160" y=(plot_h + 34) width="10" height="10" class="chart-bar-alt" {}
                text x="174" y=(plot_h + 43) class="chart-label" { (s) }
            }
        }
    }
}
// --- Risk warnings (issue #7 item 3) ---

/// Horizontal bars split into coloured segments (e.g. warnings per type, split by
/// severity). `legend` names the segments; each row has one value per segment. Segment
/// `i` has the class `chart-seg-<i>`.
pub fn stacked_rows(aria_label: &str, legend: &[String], rows: &[(String, Vec<i64>)]) -> Markup {
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().map(|x| (*x).max(0)).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let row_h: i64 = 28;
    let label_w: i64 = 110;
    let bar_w: i64 = 260;
    let legend_h: i64 = 24;
    let height = rows.len().max(1) as i64 * row_h + legend_h + 8;
    let width = label_w + bar_w + 60;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) {
            title { (aria_label) }
            @for (i, (label, values)) in rows.iter().enumerate() {
                @let y = i as i64 * row_h + 4;
                @let total: i64 = values.iter().map(|v| (*v).max(0)).sum();
                text x=(label_w - 8) y=(y + 16) text-anchor="end" class="chart-label" { (label) }
                @let widths: Vec<i64> = values.iter().map(|v| (*v).max(0) * bar_w / max).collect();
                @for (k, v) in values.iter().enumerate() {
                    @let w = widths[k];
                    @let x = label_w + widths[..k].iter().sum::<i64>();
                    @if w > 0 {
                        rect x=(x) y=(y) width=(w) height="20" class=(format!("chart-seg-{k}")) data-segment=(k) { title { (legend.get(k).cloned().unwrap_or_default()) ": " (v) } }
                    }
                }
                text x=(label_w + total * bar_w / max + 6) y=(y + 15) class="chart-value" { (total) }
            }
            @let ly = rows.len().max(1) as i64 * row_h + 10;
            @for (k, name) in legend.iter().enumerate() {
                rect x=(label_w + k as i64 * 80) y=(ly) width="10" height="10" class=(format!("chart-seg-{k}")) {}
                text x=(label_w + k as i64 * 80 + 14) y=(ly + 9) class="chart-label" { (name) }
            }
        }
    }
}

/// Lines over shared x labels (e.g. PSI per feature over run dates), with an optional
/// dashed threshold line. Values are non-negative; the y axis starts at 0.
pub fn lines(
    aria_label: &str,
    x_labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
    threshold: Option<f64>,
) -> Markup {
    let plot_w: f64 = 420.0;
    let plot_h: f64 = 160.0;
    let left: f64 = 44.0;
    let top: f64 = 10.0;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .chain(threshold)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let n = x_labels.len().max(1);
    let x_of = |i: usize| {
        if n <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: f64| top + plot_h - (v.clamp(0.0, max) / max) * plot_h;
    let legend_y = top + plot_h + 38.0;
    let height = legend_y + 8.0 + 16.0 * series.len().div_ceil(3) as f64;
    let width = left + plot_w + 20.0;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {width:.0} {height:.0}")) width=(format!("{width:.0}")) height=(format!("{height:.0}")) {
            title { (aria_label) }
            line x1=(left) y1=(top + plot_h) x2=(left + plot_w) y2=(top + plot_h) class="chart-axis" {}
            line x1=(left) y1=(top) x2=(left) y2=(top + plot_h) class="chart-axis" {}
            text x=(left - 4.0) y=(top + 10.0) text-anchor="end" class="chart-label" { (format!("{:.2}", max)) }
            text x=(left - 4.0) y=(top + plot_h) text-anchor="end" class="chart-label" { "0" }
            @if let Some(t) = threshold {
                line x1=(left) y1=(format!("{:.1}", y_of(t))) x2=(left + plot_w) y2=(format!("{:.1}", y_of(t))) class="chart-threshold" data-threshold=(t) {}
            }
            @for (i, l) in x_labels.iter().enumerate() {
                @if n <= 8 || i % n.div_ceil(8) == 0 {
                    text x=(format!("{:.1}", x_of(i))) y=(top + plot_h + 16.0) text-anchor="middle" class="chart-label" { (l) }
                }
            }
            @for (k, (name, values)) in series.iter().enumerate() {
                @let pts: Vec<String> = values.iter().enumerate().filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x_of(i), y_of(v)))).collect();
                polyline points=(pts.join(" ")) class=(format!("chart-line chart-stroke-{}", k % 6)) data-series=(name) {}
                @for (i, v) in values.iter().enumerate() {
                    @if let Some(v) = v {
                        circle cx=(format!("{:.1}", x_of(i))) cy=(format!("{:.1}", y_of(*v))) r="2.5" class=(format!("chart-dot chart-fill-{}", k % 6)) { title { (name) " " (x_labels.get(i).cloned().unwrap_or_default()) ": " (format!("{v:.4}")) } }
                    }
                }
                rect x=(left + (k % 3) as f64 * 140.0) y=(legend_y + (k / 3) as f64 * 16.0 - 9.0) width="10" height="10" class=(format!("chart-fill-{}", k % 6)) {}
                text x=(left + (k % 3) as f64 * 140.0 + 14.0) y=(legend_y + (k / 3) as f64 * 16.0) class="chart-label" { (name) }
            }
        }
    }
}

/// Paired columns per label: development share (a) against observed share (b), as in
/// a histogram of the score bands. Shares are 0..=1.
pub fn paired_columns(
    aria_label: &str,
    series: (&str, &str),
    items: &[(String, f64, f64)],
) -> Markup {
    let max = items
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let n = items.len().max(1) as f64;
    let plot_h: f64 = 140.0;
    let group_w: f64 = (480.0 / n).clamp(18.0, 70.0);
    let col_w = (group_w - 6.0) / 2.0;
    let width = 40.0 + n * group_w + 10.0;
    let height = plot_h + 56.0;
    html! {
        svg.chart role="img" aria-label=(aria_label) viewBox=(format!("0 0 {width:.0} {height:.0}")) width=(format!("{width:.0}")) height=(format!("{height:.0}")) {
            title { (aria_label) }
            @for (i, (label, a, b)) in items.iter().enumerate() {
                @let x = 40.0 + i as f64 * group_w;
                @let ha = a.max(0.0) / max * plot_h;
                @let hb = b.max(0.0) / max * plot_h;
                rect x=(format!("{x:.1}")) y=(format!("{:.1}", 10.0 + plot_h - ha)) width=(format!("{col_w:.1}")) height=(format!("{ha:.1}")) class="chart-bar" data-part="expected" { title { (label) ": " (format!("{:.1}%", a * 100.0)) } }
                rect x=(format!("{:.1}", x + col_w)) y=(format!("{:.1}", 10.0 + plot_h - hb)) width=(format!("{col_w:.1}")) height=(format!("{hb:.1}")) class="chart-bar-alt" data-part="actual" { title { (label) ": " (format!("{:.1}%", b * 100.0)) } }
                text x=(format!("{:.1}", x + col_w)) y=(plot_h + 24.0) text-anchor="middle" class="chart-label chart-small" { (label) }
            }
            rect x="40" y=(plot_h + 36.0) width="10" height="10" class="chart-bar" {}
            text x="54" y=(plot_h + 45.0) class="chart-label" { (series.0) }
            rect x="180" y=(plot_h + 36.0) width="10" height="10" class="chart-bar-alt" {}
            text x="194" y=(plot_h + 45.0) class="chart-label" { (series.1) }
        }
    }
}

#[cfg(test)]
mod risk_chart_tests {
    use super::*;

    #[test]
    fn stacked_rows_split_by_segment() {
        let svg = stacked_rows(
            "w",
            &["low".into(), "high".into()],
            &[
                ("repayment".into(), vec![1, 3]),
                ("fraud".into(), vec![0, 2]),
            ],
        )
        .into_string();
        // The longest row (4) fills 260 px: 65 + 195; the zero segment is not drawn.
        assert!(
            svg.contains(r#"width="65""#) && svg.contains(r#"width="195""#),
            "{svg}"
        );
        assert_eq!(svg.matches(r#"data-segment="0""#).count(), 1);
        assert_eq!(svg.matches(r#"data-segment="1""#).count(), 2);
    }

    #[test]
    fn lines_and_threshold() {
        let svg = lines(
            "psi",
            &["11-28".into(), "11-29".into()],
            &[("score".into(), vec![Some(0.1), Some(0.3)])],
            Some(0.25),
        )
        .into_string();
        assert!(svg.contains(r#"data-threshold="0.25""#), "{svg}");
        assert!(svg.contains(r#"data-series="score""#));
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn paired_columns_scale_to_the_largest_share() {
        let svg = paired_columns("h", ("dev", "now"), &[("a".into(), 0.5, 0.25)]).into_string();
        assert!(
            svg.contains(r#"height="140.0""#) && svg.contains(r#"height="70.0""#),
            "{svg}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bars(
            "jobs",
            &[("done".into(), 10), ("dead".into(), 5), ("none".into(), 0)],
        )
        .into_string();
        assert!(svg.contains(r#"width="200""#), "{svg}");
        assert!(svg.contains(r#"width="100""#), "{svg}");
        assert!(svg.contains(r#"width="0""#), "{svg}");
        assert!(svg.contains("<title>jobs</title>"));
    }

    #[test]
    fn stacked_columns_scale_to_the_tallest_stack() {
        let svg = stacked_columns(
            "plan",
            ("principal", "interest"),
            &[("1".into(), 75, 25), ("2".into(), 40, 10)],
        )
        .into_string();
        // The tallest stack (100) fills the 160-pixel plot: 120 + 40.
        assert!(
            svg.contains(r#"height="120""#) && svg.contains(r#"height="40""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"height="64""#) && svg.contains(r#"height="16""#),
            "{svg}"
        );
        assert_eq!(svg.matches("data-part=\"b\"").count(), 2);
    }

    #[test]
    fn labelled_bars_and_columns_scale_to_the_largest_value() {
        let svg = bars_labelled(
            "p90",
            &[
                ("a".into(), 30, "3.0 h".into()),
                ("b".into(), 15, "1.5 h".into()),
            ],
        )
        .into_string();
        assert!(
            svg.contains(r#"width="260""#) && svg.contains(r#"width="130""#),
            "{svg}"
        );
        assert!(svg.contains("1.5 h"));
        let svg = columns(
            "days",
            ("started", Some("finished")),
            &[("1".into(), 4, Some(2)), ("2".into(), 0, Some(1))],
        )
        .into_string();
        // The tallest value (4) fills the 150-pixel plot.
        assert!(
            svg.contains(r#"height="150""#) && svg.contains(r#"height="75""#),
            "{svg}"
        );
        assert_eq!(svg.matches("data-part=\"b\"").count(), 2);
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("x", &[("<script>".into(), 1)]).into_string();
        assert!(!svg.contains("<script>"));
    }
}
