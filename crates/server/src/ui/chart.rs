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
