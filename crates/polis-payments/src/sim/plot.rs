//! A small SVG of throughput and liquidity per tick, with no dependencies:
//! settlements per tick as bars, total overdraft as a line.

use std::fmt::Write as _;

use super::TickStats;

/// The SVG document for `ticks` (one bar per tick).
pub fn svg(ticks: &[TickStats], title: &str) -> String {
    let (w, h, pad) = (800.0_f64, 300.0_f64, 40.0_f64);
    let n = ticks.len().max(1) as f64;
    let max_settle = ticks.iter().map(|t| t.settlements).max().unwrap_or(0).max(1) as f64;
    let max_od = ticks.iter().map(|t| t.overdraft).max().unwrap_or(0).max(1) as f64;
    let bar = (w - 2.0 * pad) / n;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="16">{}</text>
<text x="{pad}" y="{}" fill="#4472c4">settlements per tick (max {max_settle})</text>
<text x="{}" y="{}" fill="#c0504d" text-anchor="end">total overdraft, cents (max {max_od})</text>
"##,
        escape(title),
        h - 8.0,
        w - pad,
        h - 8.0
    );
    for (i, t) in ticks.iter().enumerate() {
        let bh = (h - 2.0 * pad) * t.settlements as f64 / max_settle;
        let _ = writeln!(
            out,
            r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#4472c4"/>"##,
            pad + i as f64 * bar,
            h - pad - bh,
            (bar * 0.9).max(0.5),
            bh
        );
    }
    let points: Vec<String> = ticks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{:.2},{:.2}",
                pad + (i as f64 + 0.5) * bar,
                h - pad - (h - 2.0 * pad) * t.overdraft as f64 / max_od
            )
        })
        .collect();
    let _ =
        writeln!(out, r##"<polyline fill="none" stroke="#c0504d" stroke-width="1.5" points="{}"/>"##, points.join(" "));
    out.push_str("</svg>\n");
    out
}

/// Text made safe inside SVG.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
