//! `kpis.svg`: the replay's KPI comparison as a chart, one panel per key
//! figure and one bar per policy, so the policies compare at a glance
//! where the table asks the reader to compare digits.
//!
//! Each panel has its own scale from zero to a round number above the
//! largest value (or interval end); a bar's label gives the mean and, for
//! every policy but `noop`, its paired difference to `noop`. With several
//! replications a whisker shows the 95 % interval. Policies keep one colour
//! across panels, in configuration order. The same replay gives the same
//! bytes.

use std::fmt::Write as _;

use polis_core::run::rfc3339;

use super::kpi::{Estimate, MetricSummary};
use super::{DemandModel, NOOP_VERSION, Replay};

const W: f64 = 960.0;
const LABEL_W: f64 = 150.0;
const VALUE_W: f64 = 230.0;
const BAR_H: f64 = 16.0;
const BAR_GAP: f64 = 6.0;
const PANEL_TITLE_H: f64 = 24.0;
const TICKS_H: f64 = 14.0;
const PANEL_GAP: f64 = 14.0;
const TOP: f64 = 56.0;
const COLOURS: [&str; 8] = ["#8c8c8c", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];

/// The figures drawn: metric name, panel title, divisor for display and
/// the decimals shown.
const PANELS: [(&str, &str, f64, usize); 6] = [
    ("constrained_station_minutes", "constrained station-minutes (empty + full); lower is better", 1.0, 0),
    ("failed_rentals", "failed rentals (no bike); lower is better", 1.0, 0),
    ("failed_returns", "failed returns (no dock); lower is better", 1.0, 0),
    ("bikes_moved", "bikes moved", 1.0, 0),
    ("stations_touched", "stations touched", 1.0, 0),
    ("weighted_distance_m", "bike-km driven", 1000.0, 1),
];

/// Escapes text for SVG and HTML (`&`, `<`, `>`, `"`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `value` (1 for zero).
pub fn round_up(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * power).find(|&v| v >= value * (1.0 - 1e-12)).unwrap_or(value)
}

/// A tick value with at most two decimals and no trailing zeros (quarters
/// of a 2.5 × 10ⁿ scale need two).
fn tick_label(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn signed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') || text.trim_start_matches(['0', '.']).is_empty() { text } else { format!("+{text}") }
}

/// Draws `replay`'s summary for `system_id`.
pub fn kpis_svg(system_id: &str, replay: &Replay) -> String {
    let config = &replay.config;
    let policies = &replay.summary.policies;
    let replications = config.demand.replications();
    let panel_h = PANEL_TITLE_H + policies.len() as f64 * (BAR_H + BAR_GAP) + TICKS_H + PANEL_GAP;
    let h = TOP + PANELS.len() as f64 * panel_h + 10.0;
    let model = match config.demand {
        DemandModel::Flow => "flow replay".to_owned(),
        DemandModel::Stochastic { replications } => {
            format!("stochastic demand, {replications} replications (whiskers: 95 % interval)")
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12" role="img" aria-label="KPI comparison">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">{} · {} to {}</text>"#,
        escape(system_id),
        rfc3339(config.from),
        rfc3339(config.to)
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="42" fill="#444">{model}, {}-second decisions; labels: mean (difference to noop)</text>"##,
        config.bucket_s
    );
    let bar_w = W - LABEL_W - VALUE_W - 20.0;
    for (p, (metric, title, divisor, decimals)) in PANELS.into_iter().enumerate() {
        let y0 = TOP + p as f64 * panel_h;
        let of = |summary: &super::kpi::PolicySummary| -> Option<MetricSummary> { summary.get(metric).cloned() };
        let figures: Vec<Option<MetricSummary>> = policies.iter().map(of).collect();
        let top = figures.iter().flatten().map(|m| m.value.ci95_high.max(m.value.mean) / divisor).fold(0.0, f64::max);
        let scale_max = round_up(top);
        let x = |value: f64| LABEL_W + (value / divisor / scale_max).clamp(0.0, 1.0) * bar_w;
        let _ = writeln!(
            out,
            r#"<g class="panel" data-metric="{metric}"><text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y0 + 16.0,
            escape(title)
        );
        let bars_top = y0 + PANEL_TITLE_H;
        let bars_bottom = bars_top + policies.len() as f64 * (BAR_H + BAR_GAP) - BAR_GAP;
        for tick in 0..=4 {
            let value = scale_max * f64::from(tick) / 4.0;
            let tx = LABEL_W + bar_w * f64::from(tick) / 4.0;
            let _ = writeln!(
                out,
                r##"<line x1="{tx:.1}" y1="{bars_top:.1}" x2="{tx:.1}" y2="{bars_bottom:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" font-size="10" fill="#666" text-anchor="middle">{}</text>"##,
                bars_bottom + 12.0,
                tick_label(value)
            );
        }
        for (i, (policy, figure)) in policies.iter().zip(&figures).enumerate() {
            let y = bars_top + i as f64 * (BAR_H + BAR_GAP);
            let colour = COLOURS[i % COLOURS.len()];
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL_W - 8.0,
                y + BAR_H - 4.0,
                escape(&policy.policy)
            );
            let Some(m) = figure else {
                let _ = writeln!(out, r#"<text x="{LABEL_W}" y="{:.1}">not measured</text>"#, y + BAR_H - 4.0);
                continue;
            };
            let end = x(m.value.mean);
            let _ = write!(
                out,
                r#"<rect class="bar" data-policy="{}" x="{LABEL_W}" y="{y:.1}" width="{:.1}" height="{BAR_H}" fill="{colour}"><title>{}: {}</title></rect>"#,
                escape(&policy.policy),
                end - LABEL_W,
                escape(&policy.policy),
                label(m, divisor, decimals, policy.policy == NOOP_VERSION)
            );
            if replications > 1 {
                whisker(&mut out, m.value, &x, y);
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x(m.value.ci95_high.max(m.value.mean)) + 6.0,
                y + BAR_H - 4.0,
                escape(&label(m, divisor, decimals, policy.policy == NOOP_VERSION))
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

fn label(m: &MetricSummary, divisor: f64, decimals: usize, is_noop: bool) -> String {
    let mean = format!("{:.decimals$}", m.value.mean / divisor);
    match m.delta_vs_noop {
        Some(delta) if !is_noop => format!("{mean} ({} vs noop)", signed(delta.mean / divisor, decimals)),
        _ => mean,
    }
}

fn whisker(out: &mut String, value: Estimate, x: &dyn Fn(f64) -> f64, y: f64) {
    let (lo, hi, mid) = (x(value.ci95_low), x(value.ci95_high), y + BAR_H / 2.0);
    let _ = write!(
        out,
        r##"<path d="M{lo:.1},{mid:.1}H{hi:.1}M{lo:.1},{:.1}V{:.1}M{hi:.1},{:.1}V{:.1}" stroke="#111" fill="none"/>"##,
        mid - 4.0,
        mid + 4.0,
        mid - 4.0,
        mid + 4.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(1.0), 1.0);
        assert_eq!(round_up(1.2), 2.0);
        assert_eq!(round_up(2.1), 2.5);
        assert_eq!(round_up(321_436.0), 500_000.0);
        assert_eq!(round_up(0.03), 0.05);
    }

    #[test]
    fn ticks_show_quarters_without_trailing_zeros() {
        assert_eq!(tick_label(6.25), "6.25");
        assert_eq!(tick_label(12.5), "12.5");
        assert_eq!(tick_label(500_000.0), "500000");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn differences_carry_their_sign() {
        assert_eq!(signed(12.0, 0), "+12");
        assert_eq!(signed(-3.25, 1), "-3.2");
        assert_eq!(signed(0.0, 0), "0");
    }
}
