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
    fn labels_are_escaped() {
        let svg = bars("x", &[("<script>".into(), 1)]).into_string();
        assert!(!svg.contains("<script>"));
    }
}
