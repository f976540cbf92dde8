//! `equity.svg`: each strategy's equity curve with its intents marked,
//! readable without the terminal (title, axes with dates and values, a
//! legend; long intents as up triangles, short as down, flat as circles).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bars::rfc3339;
use crate::contract::{Direction, IntentRecord};

const W: f64 = 960.0;
const H: f64 = 540.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Draws the curves (`strategy@version` → (time, equity) points) and the
/// intents.
pub fn equity_svg(title: &str, equity: &BTreeMap<String, Vec<(i64, f64)>>, intents: &[IntentRecord]) -> String {
    let points = equity.values().flatten();
    let (mut t0, mut t1, mut lo, mut hi) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    for &(t, v) in points {
        t0 = t0.min(t);
        t1 = t1.max(t);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#, esc(title));
    if t0 > t1 {
        let _ = writeln!(out, r#"<text x="{LEFT}" y="{}">no bars</text></svg>"#, H / 2.0);
        return out;
    }
    if hi - lo < 1e-9 {
        hi += 1.0;
        lo -= 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| LEFT + (t - t0) as f64 / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let (x0, x1, yb) = (LEFT, W - RIGHT, H - BOTTOM);
    let _ = writeln!(
        out,
        r##"<rect x="{x0}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        x1 - x0,
        yb - TOP
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x0}" x2="{x1}" y1="{0:.1}" y2="{0:.1}" stroke="#eee"/><text x="{1}" y="{2:.1}" text-anchor="end">{3:.0}</text>"##,
            y(v),
            x0 - 6.0,
            y(v) + 4.0,
            v
        );
    }
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            x(t),
            yb + 18.0,
            &rfc3339(t)[..10]
        );
    }
    let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="middle">time</text>"#, (x0 + x1) / 2.0, yb + 40.0);
    let _ = writeln!(
        out,
        r#"<text x="20" y="{}" transform="rotate(-90 20 {0})" text-anchor="middle">equity</text>"#,
        (TOP + yb) / 2.0
    );
    for (i, (key, curve)) in equity.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = curve.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let by_ts: BTreeMap<i64, f64> = curve.iter().copied().collect();
        for intent in intents.iter().filter(|r| &r.strategy == key) {
            let Some(&v) = by_ts.get(&intent.event_ts) else { continue };
            let (cx, cy) = (x(intent.event_ts), y(v));
            let shape = match intent.intent.direction {
                Direction::Long => format!(r#"<path d="M{cx:.1},{:.1} l4,7 h-8 z" fill="{colour}"/>"#, cy - 4.0),
                Direction::Short => format!(r#"<path d="M{cx:.1},{:.1} l4,-7 h-8 z" fill="{colour}"/>"#, cy + 4.0),
                Direction::Flat => {
                    format!(r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="3" fill="none" stroke="{colour}"/>"#)
                }
            };
            out.push_str(&shape);
            out.push('\n');
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            x1 + 14.0,
            ly - 4.0,
            x1 + 34.0,
            ly + 2.0,
            esc(key)
        );
    }
    let ly = TOP + 30.0 + 20.0 * equity.len() as f64;
    let _ = writeln!(out, r##"<text x="{}" y="{ly}" fill="#555">▲ long  ▼ short  ○ flat</text>"##, x1 + 14.0);
    out.push_str("</svg>\n");
    out
}
