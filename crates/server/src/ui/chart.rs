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
    fn labels_are_escaped() {
        let svg = bars("x", &[("<script>".into(), 1)]).into_string();
        assert!(!svg.contains("<script>"));
    }
}
