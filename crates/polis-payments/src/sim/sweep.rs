//! `--sweep NAME=a..b:step`: the same scenario run once per value, in
//! parallel, each run deterministic on its own. `NAME` is a policy
//! parameter (set in every policy that declares it, over the tree's value
//! and any configured one) or, when it holds a `.` or `[`, a path into the
//! scenario such as `agents[0].opening_balance` or
//! `cost_rates.delay_cost_per_tick_per_cent`.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value as Json;

use super::plot::escape;
use super::{Options, Report, SimulateError, simulate};
use crate::dsl::PolicyCache;

/// The most points one sweep may have.
pub const MAX_POINTS: usize = 1000;

/// A parsed `NAME=a..b:step`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The parameter or scenario path.
    pub name: String,
    /// The values, from `a` up to `b` inclusive.
    pub values: Vec<f64>,
}

/// One run of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// The value swept.
    pub value: f64,
    /// The run's report.
    pub report: Report,
}

/// Parses `NAME=a..b:step` (`step` > 0, `a` ≤ `b`).
pub fn parse(spec: &str) -> Result<Spec, String> {
    let bad = || format!("`{spec}`: expected NAME=START..END:STEP, such as urgency_threshold=1..10:1");
    let (name, range) = spec.split_once('=').ok_or_else(bad)?;
    let (bounds, step) = range.rsplit_once(':').ok_or_else(bad)?;
    let (start, end) = bounds.split_once("..").ok_or_else(bad)?;
    let num = |t: &str| t.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let (start, end, step) = (num(start).ok_or_else(bad)?, num(end).ok_or_else(bad)?, num(step).ok_or_else(bad)?);
    if name.trim().is_empty() || step <= 0.0 || start > end {
        return Err(bad());
    }
    let count = ((end - start) / step + 1e-9).floor() as usize + 1;
    if count > MAX_POINTS {
        return Err(format!("`{spec}` has {count} points, more than {MAX_POINTS}"));
    }
    // Each value from its index, so steps never accumulate rounding.
    let values = (0..count).map(|k| start + step * k as f64).collect();
    Ok(Spec { name: name.trim().to_string(), values })
}

/// How one point of a sweep changes its run: a scenario path edits the
/// scenario (read once, here), a parameter name is set through
/// [`Options::sweep`].
pub struct Plan {
    name: String,
    base: Option<Json>,
}

impl Plan {
    /// The plan for sweeping `name` over `text`.
    pub fn new(text: &str, name: &str) -> Result<Plan, SimulateError> {
        let base = if name.contains('.') || name.contains('[') {
            let doc = serde_yaml::from_str(text)
                .map_err(|e| SimulateError::Sweep(format!("scenario is not valid YAML: {e}")))?;
            Some(doc)
        } else {
            None
        };
        Ok(Plan { name: name.to_string(), base })
    }

    /// Runs the point `value` alone, as any sweep would.
    pub fn run_point(
        &self,
        text: &str,
        value: f64,
        options: &Options,
        cache: &PolicyCache,
    ) -> Result<Point, SimulateError> {
        let mut options = options.clone();
        let text = match &self.base {
            Some(doc) => {
                let mut doc = doc.clone();
                set_path(&mut doc, &self.name, value).map_err(SimulateError::Sweep)?;
                serde_json::to_string(&doc).map_err(|e| SimulateError::Sweep(e.to_string()))?
            }
            None => {
                options.sweep.insert(self.name.clone(), value);
                text.to_string()
            }
        };
        let simulation = simulate(&text, &options, cache)
            .map_err(|e| SimulateError::Sweep(format!("{} = {value}: {e}", self.name)))?;
        Ok(Point { value, report: Report::of(&simulation) })
    }
}

/// Runs every point of `spec` on `threads` threads (at least one) and
/// returns the points in value order, calling `done` after each. A failing
/// point fails the sweep, naming its value.
pub fn run(
    text: &str,
    spec: &Spec,
    options: &Options,
    cache: &PolicyCache,
    threads: usize,
    done: &(dyn Fn() + Sync),
) -> Result<Vec<Point>, SimulateError> {
    let plan = Plan::new(text, &spec.name)?;
    let one = |value: f64| plan.run_point(text, value, options, cache);
    let threads = threads.clamp(1, spec.values.len().max(1));
    let mut results: Vec<Option<Result<Point, SimulateError>>> = (0..spec.values.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let chunks: Vec<_> = results.chunks_mut(spec.values.len().div_ceil(threads)).collect();
        let mut start = 0;
        for chunk in chunks {
            let values = &spec.values[start..start + chunk.len()];
            start += chunk.len();
            let one = &one;
            scope.spawn(move || {
                for (slot, &value) in chunk.iter_mut().zip(values) {
                    *slot = Some(one(value));
                    done();
                }
            });
        }
    });
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(SimulateError::Sweep("a point did not run".into())))).collect()
}

/// Sets the number at `path` (`agents[0].opening_balance`), keeping an
/// integer where the scenario had one.
fn set_path(doc: &mut Json, path: &str, value: f64) -> Result<(), String> {
    let mut at = doc;
    for part in path.replace('[', ".").replace(']', "").split('.').filter(|p| !p.is_empty()) {
        at = match part.parse::<usize>() {
            Ok(i) => at.get_mut(i),
            Err(_) => at.get_mut(part),
        }
        .ok_or_else(|| format!("the scenario has nothing at `{path}` (`{part}` is missing)"))?;
    }
    if !at.is_number() {
        return Err(format!("`{path}` is not a number in the scenario"));
    }
    *at = if at.is_i64() || at.is_u64() {
        if value.fract() != 0.0 {
            return Err(format!("`{path}` is an integer; {value} is not"));
        }
        Json::from(value as i64)
    } else {
        Json::from(value)
    };
    Ok(())
}

/// The results as CSV: value, system total cost, settlement rate, then
/// each agent's total cost.
pub fn csv(points: &[Point]) -> String {
    let mut out = String::from("value,total_cost,settlement_rate");
    if let Some(first) = points.first() {
        for a in &first.report.agents {
            let _ = write!(out, ",{}", a.id);
        }
    }
    out.push('\n');
    for p in points {
        let _ = write!(out, "{},{},{}", p.value, p.report.system.total_cost, p.report.system.settlement_rate);
        for a in &p.report.agents {
            let _ = write!(out, ",{}", a.total_cost);
        }
        out.push('\n');
    }
    out
}

/// Total cost against the swept value, one line per agent and the system.
pub fn svg(points: &[Point], name: &str) -> String {
    let (w, h, pad) = (800.0_f64, 320.0_f64, 50.0_f64);
    let (lo, hi) = match (points.first(), points.last()) {
        (Some(a), Some(b)) if b.value > a.value => (a.value, b.value),
        (Some(a), _) => (a.value - 1.0, a.value + 1.0),
        _ => (0.0, 1.0),
    };
    let max_cost = points.iter().map(|p| p.report.system.total_cost).max().unwrap_or(0).max(1) as f64;
    let x = |v: f64| pad + (w - 2.0 * pad) * (v - lo) / (hi - lo);
    let y = |c: i64| h - pad - (h - 2.0 * pad) * c as f64 / max_cost;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="18">total cost (cents, max {max_cost}) by {}</text>
<text x="{pad}" y="{}">{lo}</text><text x="{}" y="{}" text-anchor="end">{hi}</text>
"##,
        escape(name),
        h - 20.0,
        w - pad,
        h - 20.0
    );
    let palette = ["#4472c4", "#ed7d31", "#70ad47", "#ffc000", "#5b9bd5", "#a5a5a5"];
    let agents = points.first().map_or(0, |p| p.report.agents.len());
    let mut line = |color: &str, label: &str, cost: &dyn Fn(&Point) -> i64, k: usize| {
        let pts: Vec<String> = points.iter().map(|p| format!("{:.2},{:.2}", x(p.value), y(cost(p)))).collect();
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"##,
            pts.join(" ")
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" fill="{color}">{}</text>"##,
            w - pad + 4.0,
            30.0 + 14.0 * k as f64,
            escape(label)
        );
    };
    line("#000000", "system", &|p| p.report.system.total_cost, 0);
    // A line per agent only while the chart stays readable.
    if agents <= palette.len() {
        for (i, color) in palette.iter().enumerate().take(agents) {
            let label = points[0].report.agents[i].id.clone();
            line(color, &label, &|p| p.report.agents[i].total_cost, i + 1);
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_lists_every_value_from_start_to_end() {
        let s = parse("urgency_threshold=1..3:0.5").unwrap();
        assert_eq!(s.name, "urgency_threshold");
        assert_eq!(s.values, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(parse("x=0..1:0.1").unwrap().values.len(), 11);
    }

    #[test]
    fn bad_specs_are_refused_with_the_expected_form() {
        for bad in ["x", "x=1..2", "x=2..1:1", "x=1..2:0", "=1..2:1", "x=a..2:1"] {
            assert!(parse(bad).unwrap_err().contains("NAME=START..END:STEP"), "{bad}");
        }
        assert!(parse("x=0..1e6:1").unwrap_err().contains("more than 1000"));
    }

    #[test]
    fn a_scenario_path_sets_integers_as_integers() {
        let mut doc = serde_json::json!({"agents": [{"opening_balance": 10, "rate": 0.5}]});
        set_path(&mut doc, "agents[0].opening_balance", 20.0).unwrap();
        set_path(&mut doc, "agents[0].rate", 0.25).unwrap();
        assert_eq!(doc, serde_json::json!({"agents": [{"opening_balance": 20, "rate": 0.25}]}));
        assert!(set_path(&mut doc, "agents[0].opening_balance", 1.5).unwrap_err().contains("integer"));
        assert!(set_path(&mut doc, "agents[3].x", 1.0).unwrap_err().contains("nothing at"));
    }
}
