//! `GET /`: the status page. One small HTML document, no script and no external asset
//! (it must work on a host without internet): every leaf with its phase, address, since
//! when, the last decision and open problems; for an awake leaf the watchdog's periods
//! against its threshold as an inline SVG chart, and when it sleeps if nothing changes;
//! hours up this month. It reloads itself every 10 s.

use std::fmt::Write as _;

use crate::clock::Timestamp;
use crate::status::LeafView;

/// Chart size in SVG user units.
const W: f64 = 360.0;
const H: f64 = 80.0;

/// The page for `leafs` at `now`.
pub fn render(leafs: &[LeafView], now: Timestamp) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>container-manager</title><style>\
         body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}\
         td,th{padding:.4em .7em;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}\
         .phase{font-weight:600}.up{color:#1a7f37}.asleep{color:#666}.waking,.stopping{color:#9a6700}.quarantined,.problem{color:#cf222e}\
         svg .traffic{fill:none;stroke:#0969da;stroke-width:2}svg .threshold{stroke:#cf222e;stroke-dasharray:4 3}\
         small{color:#666}</style></head><body><h1>container-manager</h1>",
    );
    let _ = write!(html, "<p><small>{} leafs, as of {now}</small></p><table><thead><tr><th>leaf</th><th>phase</th><th>address</th><th>since</th><th>last decision</th><th>traffic (B/s) against the idle threshold</th><th>up this month</th></tr></thead><tbody>", leafs.len());
    for leaf in leafs {
        row(&mut html, leaf);
    }
    html.push_str("</tbody></table></body></html>\n");
    html
}

fn row(html: &mut String, leaf: &LeafView) {
    let phase = if leaf.quarantined_until.is_some() { "quarantined" } else { leaf.phase.as_str() };
    let env = leaf.env.as_deref().map(|e| format!(" <small>[{}]</small>", escape(e))).unwrap_or_default();
    let address = if leaf.ips.is_empty() { escape(&leaf.domain) } else { format!("{}<br><small>{}</small>", escape(&leaf.domain), escape(&leaf.ips.join(", "))) };
    let since = leaf.since.map(|t| t.to_string()).unwrap_or_default();
    let decision = leaf.last_decision.as_ref().map(|d| format!("{}<br><small>{}</small>", escape(&d.what), escape(&d.why))).unwrap_or_default();
    let problems = leaf.problems.iter().fold(String::new(), |mut out, p| {
        let _ = write!(out, "<br><span class=\"problem\">{}</span>", escape(p));
        out
    });
    let _ = write!(
        html,
        "<tr><td>{}{env}</td><td class=\"phase {phase}\">{phase}</td><td>{address}</td><td><small>{since}</small></td><td>{decision}{problems}</td><td>{}</td><td>{}</td></tr>",
        escape(&leaf.name),
        chart(leaf),
        if leaf.up_hours_month < 1.0 { format!("{:.0} min", leaf.up_hours_month * 60.0) } else { format!("{:.1} h", leaf.up_hours_month) }
    );
}

/// The watchdog's periods as a line, with the threshold as a dashed line across.
fn chart(leaf: &LeafView) -> String {
    let values: Vec<f64> = leaf.periods.iter().map(|p| p.bytes_per_s.unwrap_or(0.0)).collect();
    if values.is_empty() {
        return String::new();
    }
    let top = values.iter().copied().fold(leaf.threshold, f64::max).max(1.0) * 1.15;
    let y = |v: f64| H - v / top * H;
    let step = if values.len() > 1 { W / f64::from(u32::try_from(values.len() - 1).unwrap_or(1)) } else { 0.0 };
    let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", f64::from(u32::try_from(i).unwrap_or(0)) * step, y(*v))).collect();
    let sleeps = leaf.sleeps_at.map(|t| format!("<br><small>sleeps at {t} if it stays quiet</small>")).unwrap_or_default();
    format!(
        "<svg role=\"img\" aria-label=\"traffic of {name} against its threshold of {th} B/s\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <line class=\"threshold\" x1=\"0\" x2=\"{W}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\"><title>idle threshold {th} B/s</title></line>\
         <polyline class=\"traffic\" points=\"{points}\"/></svg><br><small>latest {latest} B/s, threshold {th} B/s</small>{sleeps}",
        name = escape(&leaf.name),
        th = leaf.threshold,
        ty = y(leaf.threshold),
        points = points.join(" "),
        latest = values.last().copied().unwrap_or(0.0).round(),
    )
}

/// Text as HTML (names and problems come from config and AWS).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchdog::Period;

    #[test]
    fn an_awake_leaf_gets_its_chart_with_the_threshold_and_names_are_escaped() {
        let up = LeafView {
            name: "mc".into(),
            phase: "up".into(),
            domain: "mc.example.com".into(),
            ips: vec!["54.1.2.3".into()],
            threshold: 1175.0,
            periods: (0..6).map(|i| Period { start: Timestamp(i * 60_000), bytes_per_s: Some(if i < 3 { 5000.0 } else { 20.0 }) }).collect(),
            problems: vec!["<script>".into()],
            ..LeafView::default()
        };
        let html = render(&[up, LeafView { name: "valheim".into(), phase: "asleep".into(), ..LeafView::default() }], Timestamp(0));
        assert!(html.contains("class=\"threshold\"") && html.contains("<polyline class=\"traffic\""), "{html}");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "nothing from AWS or the config runs in the page");
        assert!(html.contains("valheim") && html.contains("phase asleep"));
        assert!(!html.contains("http://") && !html.contains("https://"), "no external asset");
    }
}
