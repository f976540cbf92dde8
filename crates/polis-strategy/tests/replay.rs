//! Replays over GOOG daily (backtesting.py's `GOOG.csv`): the legacy
//! strategy's golden intents, identical digests across replays, the
//! breaker isolating a failing strategy, and the host's limits.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::process::Command;

mod common;

use common::goog;
use polis_runtime::BreakerConfig;
use polis_strategy::catalog::Catalog;
use polis_strategy::contract::{Event, PluginFault, StrategyContext, StrategyIntent, StrategyPlugin};
use polis_strategy::engine::Engine;
use polis_strategy::replay::{ReplayConfig, first_difference, replay, replay_with};

const CATALOG: &str = r#"
[[strategies]]
strategy_id = "legacy"
strategy_type = "legacy_macd_rsi"
version = "1.0.0"
symbols = ["GOOG"]

[[strategies]]
strategy_id = "trend"
strategy_type = "trend_multifactor"
version = "1.0.0"
priority = 1
symbols = ["GOOG"]

[[strategies]]
strategy_id = "mr"
strategy_type = "mean_reversion"
version = "1.0.0"
priority = 2
symbols = ["GOOG"]

[[strategies]]
strategy_id = "overlay"
strategy_type = "volatility_overlay"
version = "1.0.0"
priority = 9
params = { sources = ["trend"], vol_target = 0.08 }
symbols = ["GOOG"]
"#;

fn catalog() -> Catalog {
    Catalog::load("strategies.toml", CATALOG).unwrap()
}

#[test]
fn legacy_macd_rsi_reproduces_its_golden_intents_on_goog() {
    let Some(bars) = goog() else { return };
    let only =
        Catalog::load("s.toml", &CATALOG[..CATALOG.find("[[strategies]]\nstrategy_id = \"trend\"").unwrap()]).unwrap();
    let out = replay(&bars, &only, &ReplayConfig::default()).unwrap();
    // Each line: time, direction, rationale. Checked against an independent
    // implementation of the rule on TA-Lib's numbers (below).
    let lines: Vec<String> = out
        .intents
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {}",
                &polis_strategy::bars::rfc3339(r.event_ts)[..10],
                r.intent.direction,
                r.intent.rationale.join("; ")
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
    // The same rule written on TA-Lib's own MACD and RSI gives the same list.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/legacy_macd_rsi.py");
    let peer = Command::new("python3").arg(script).output().unwrap();
    assert!(peer.status.success(), "{}", String::from_utf8_lossy(&peer.stderr));
    let ours: Vec<String> = lines.iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
    let theirs: Vec<String> = String::from_utf8_lossy(&peer.stdout).lines().map(str::to_owned).collect();
    assert_eq!(ours, theirs);
    assert_eq!(out.evaluations[0].counters.warmup, 34);
}

#[test]
fn two_replays_have_the_same_digest_and_no_difference() {
    let Some(bars) = goog() else { return };
    let a = replay(&bars, &catalog(), &ReplayConfig::default()).unwrap();
    let b = replay(&bars, &catalog(), &ReplayConfig::default()).unwrap();
    assert_eq!(a.digest, b.digest);
    assert!(first_difference(&a.intents, &b.intents).is_none());
    assert_eq!(a.evaluations.len(), 4);
    assert!(a.evaluations.iter().all(|e| e.intents > 0), "{:?}", a.evaluations);
    // A change of a param shows as a different digest and a first difference.
    let tweaked = Catalog::load("s.toml", &CATALOG.replace("vol_target = 0.08", "vol_target = 0.09")).unwrap();
    let c = replay(&bars, &tweaked, &ReplayConfig::default()).unwrap();
    assert_ne!(a.digest, c.digest);
    let (_, left, right) = first_difference(&a.intents, &c.intents).unwrap();
    assert_eq!(left.unwrap().strategy, "overlay@1.0.0");
    assert_eq!(right.unwrap().strategy, "overlay@1.0.0");
}

/// Fails on every tenth event it is called on.
struct Flaky {
    calls: u64,
}

impl StrategyPlugin for Flaky {
    fn validate_params(&mut self, _: &serde_json::Value) -> Result<(), Vec<String>> {
        Ok(())
    }
    fn required_features(&self) -> Vec<String> {
        vec!["close".into()]
    }
    fn warmup_bars(&self) -> usize {
        0
    }
    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        self.calls += 1;
        if self.calls.is_multiple_of(10) {
            if self.calls.is_multiple_of(20) {
                panic!("flaky panics");
            }
            return Err(PluginFault("flaky fails".into()));
        }
        Ok(Some(StrategyIntent {
            strategy_id: ctx.strategy_id.clone(),
            symbol: event.row.symbol.to_string(),
            direction: if self.calls.is_multiple_of(2) {
                polis_strategy::contract::Direction::Long
            } else {
                polis_strategy::contract::Direction::Flat
            },
            confidence: 0.5,
            target_notional: 1.0,
            horizon: "1d".into(),
            rationale: vec![],
            meta: Default::default(),
        }))
    }
}

#[test]
fn a_strategy_that_fails_every_tenth_event_opens_its_breaker_and_the_others_digest_is_unchanged() {
    let Some(bars) = goog() else { return };
    let breaker = BreakerConfig {
        error_budget: 3,
        window: std::time::Duration::from_secs(86_400 * 60),
        cooldown: std::time::Duration::from_secs(86_400 * 10),
    };
    let config = ReplayConfig { breaker, ..ReplayConfig::default() };
    let clean = replay(&bars, &catalog(), &config).unwrap();
    let with_flaky = format!(
        "{CATALOG}\n[[strategies]]\nstrategy_id = \"flaky\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\npriority = 5\nsymbols = [\"GOOG\"]\n"
    );
    let catalog = Catalog::load("s.toml", &with_flaky).unwrap();
    let mut engine = Engine::with_plugins(&catalog, breaker, |entry| {
        if entry.entry.strategy_id == "flaky" {
            return Some(Box::new(|| Box::new(Flaky { calls: 0 }) as Box<dyn StrategyPlugin>));
        }
        let family = entry.family()?;
        Some(Box::new(move || (family.make)()))
    });
    let std_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let noisy = replay_with(&bars, &mut engine, &config).unwrap();
    std::panic::set_hook(std_hook);
    let flaky = noisy.evaluations.iter().find(|e| e.strategy == "flaky@1.0.0").unwrap();
    assert!(flaky.counters.circuit_opened >= 1, "{:?}", flaky.counters);
    assert!(flaky.counters.circuit_open > 0);
    assert!(flaky.counters.errors >= 3);
    let others: Vec<_> = noisy.intents.iter().filter(|r| r.strategy != "flaky@1.0.0").cloned().collect();
    let others_digest =
        polis_core::canonical::Digest::of_bytes(&polis_strategy::replay::intents_jsonl(&others).unwrap());
    assert_eq!(others_digest, clean.digest);
}

#[test]
fn cooldown_and_position_limits_are_enforced_by_the_host() {
    let Some(bars) = goog() else { return };
    let free = Catalog::load("s.toml", "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nsymbols = [\"GOOG\"]\n").unwrap();
    let cooled = Catalog::load("s.toml", "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\ncooldown_seconds = 2592000\nsymbols = [\"GOOG\"]\n").unwrap();
    let limited = Catalog::load("s.toml", "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nmax_parallel_positions = 0\nsymbols = [\"GOOG\"]\n").unwrap();
    let a = replay(&bars, &free, &ReplayConfig::default()).unwrap();
    let b = replay(&bars, &cooled, &ReplayConfig::default()).unwrap();
    let c = replay(&bars, &limited, &ReplayConfig::default()).unwrap();
    assert!(b.intents.len() < a.intents.len());
    assert!(b.evaluations[0].counters.cooldown > 0);
    for w in b.intents.windows(2) {
        assert!(w[1].event_ts - w[0].event_ts >= 2_592_000);
    }
    // Openings are refused; the plugin's own exits (flat) still pass.
    assert!(c.intents.iter().all(|r| r.intent.direction == polis_strategy::contract::Direction::Flat));
    assert!(c.evaluations[0].counters.max_positions > 0);
}

#[test]
fn the_equity_plot_draws_a_curve_per_strategy_and_a_mark_per_intent() {
    let Some(bars) = goog() else { return };
    let out = replay(&bars, &catalog(), &ReplayConfig { cost_bps: 5.0, ..ReplayConfig::default() }).unwrap();
    let svg = polis_strategy::svg::equity_svg("GOOG", &out.equity, &out.intents);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<polyline").count(), 4);
    let marks = svg.matches("<path d=").count() + svg.matches("<circle").count();
    assert_eq!(marks, out.intents.len());
    for key in ["legacy@1.0.0", "trend@1.0.0", "mr@1.0.0", "overlay@1.0.0", "2004-08-19", "2013-03-01"] {
        assert!(svg.contains(key), "{key}");
    }
}
