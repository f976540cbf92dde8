//! The seed's metrics in Prometheus's text format, labelled by strategy
//! (`strategy="<strategy_id>@<version>"`):
//!
//! | metric | type | what |
//! |---|---|---|
//! | `strategy_plugin_loaded` | gauge | 1 when the entry's plugin was found and its params checked (enabled or off), 0 when disabled |
//! | `strategy_plugin_enabled` | gauge | 1 when the entry runs |
//! | `strategy_events_total` | counter | events routed to it |
//! | `strategy_intents_total` | counter | intents it emitted (after the host's limits) |
//! | `strategy_errors_total` | counter | errors, panics and invalid intents |
//! | `strategy_eval_latency_ms` | histogram | plugin call latency, when measured |
//! | `strategy_circuit_open_total` | counter | times its breaker opened |
//!
//! Strategies are listed in catalog order, so the text is the same for the
//! same state.

use std::fmt::Write;

use crate::catalog::{Catalog, EntryState};
use crate::engine::{Engine, LATENCY_BUCKETS_MS};

/// Renders the metrics of `engine` running `catalog`.
pub fn render(catalog: &Catalog, engine: &Engine) -> String {
    let mut out = String::new();
    let mut lines: Vec<String> = Vec::new();
    let loaded = family(
        &mut out,
        "strategy_plugin_loaded",
        "gauge",
        "Whether the strategy's plugin was found and its params checked.",
    );
    for e in &catalog.entries {
        let v = u8::from(e.state != EntryState::Disabled);
        lines.push(format!("{loaded}{{strategy=\"{}\"}} {v}", escape(&e.key())));
    }
    flush(&mut out, &mut lines);
    let enabled = family(&mut out, "strategy_plugin_enabled", "gauge", "Whether the strategy runs.");
    for e in &catalog.entries {
        let v = u8::from(e.state == EntryState::Enabled);
        lines.push(format!("{enabled}{{strategy=\"{}\"}} {v}", escape(&e.key())));
    }
    flush(&mut out, &mut lines);
    let counters = engine.counters();
    let counter_families: [(&str, &str, Count); 4] = [
        ("strategy_events_total", "Events routed to the strategy.", |c| c.events),
        ("strategy_intents_total", "Intents the strategy emitted.", |c| c.intents),
        ("strategy_errors_total", "Errors, panics and invalid intents.", |c| c.errors),
        ("strategy_circuit_open_total", "Times the strategy's breaker opened.", |c| c.circuit_opened),
    ];
    for (name, help, get) in counter_families {
        let name = family(&mut out, name, "counter", help);
        for (key, c) in &counters {
            lines.push(format!("{name}{{strategy=\"{}\"}} {}", escape(key), get(c)));
        }
        flush(&mut out, &mut lines);
    }
    let name = family(&mut out, "strategy_eval_latency_ms", "histogram", "Plugin call latency, milliseconds.");
    for (key, latency) in engine.latencies() {
        let key = escape(&key);
        for (bound, n) in LATENCY_BUCKETS_MS.iter().zip(latency.buckets) {
            lines.push(format!("{name}_bucket{{strategy=\"{key}\",le=\"{bound}\"}} {n}"));
        }
        lines.push(format!("{name}_bucket{{strategy=\"{key}\",le=\"+Inf\"}} {}", latency.count));
        lines.push(format!("{name}_sum{{strategy=\"{key}\"}} {}", latency.sum_ms));
        lines.push(format!("{name}_count{{strategy=\"{key}\"}} {}", latency.count));
    }
    flush(&mut out, &mut lines);
    out
}

/// Reads one counter of a strategy.
type Count = fn(&crate::engine::StrategyCounters) -> u64;

/// Writes a family's `# HELP` and `# TYPE` lines; returns its name.
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_owned()
}

fn flush(out: &mut String, lines: &mut Vec<String>) {
    for line in lines.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// A label value as Prometheus's text format quotes it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FeatureSet, Streams};
    use polis_runtime::BreakerConfig;

    #[test]
    fn every_seed_metric_is_rendered_per_strategy_with_a_full_histogram() {
        let text = "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nsymbols = [\"X\"]\n\n[[strategies]]\nstrategy_id = \"bad\"\nstrategy_type = \"nope\"\nversion = \"1.0.0\"\nsymbols = [\"X\"]\n";
        let catalog = Catalog::load("s.toml", text).unwrap();
        let mut engine = Engine::new(&catalog, BreakerConfig::default());
        engine.measure_latency(true);
        let mut streams = Streams::new(FeatureSet::default_set());
        for i in 0..30 {
            let c = 100.0 + f64::from(i % 7);
            let bar = crate::bars::Bar {
                symbol: "X".into(),
                ts: i64::from(i) * 86_400,
                open: c,
                high: c + 1.0,
                low: c - 1.0,
                close: c,
                volume: 1.0,
            };
            engine.on_row(&streams.push(&bar), "1d");
        }
        let out = render(&catalog, &engine);
        assert!(out.contains("strategy_plugin_loaded{strategy=\"mr@1.0.0\"} 1\n"), "{out}");
        assert!(out.contains("strategy_plugin_loaded{strategy=\"bad@1.0.0\"} 0\n"), "{out}");
        assert!(out.contains("strategy_plugin_enabled{strategy=\"bad@1.0.0\"} 0\n"), "{out}");
        assert!(out.contains("strategy_events_total{strategy=\"mr@1.0.0\"} 30\n"), "{out}");
        assert!(out.contains("strategy_eval_latency_ms_count{strategy=\"mr@1.0.0\"} 30\n"), "{out}");
        assert!(out.contains("strategy_eval_latency_ms_bucket{strategy=\"mr@1.0.0\",le=\"+Inf\"} 30\n"), "{out}");
        for name in ["strategy_intents_total", "strategy_errors_total", "strategy_circuit_open_total"] {
            assert!(out.contains(&format!("# TYPE {name} counter\n")), "{name}: {out}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
