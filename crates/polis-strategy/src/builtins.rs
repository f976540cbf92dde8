//! The built-in strategy families (seed 001 §"Built-In Plugin Families").
//!
//! Each family has a params JSON Schema ([`Family::params_schema`]), its
//! required features and its warm-up, and emits an intent only when its
//! target changes (the host enforces cooldown and position limits). Rules:
//!
//! - `legacy_macd_rsi@1.0.0` (long only, the migration-parity strategy):
//!   when the MACD line crosses above its signal (the previous bar's
//!   `macd - macd_signal` ≤ 0, this bar's > 0) and `rsi_14 < rsi_buy_max`,
//!   go long `notional`; when it crosses below and `rsi_14 > rsi_sell_min`,
//!   go flat. Confidence `min(1, |macd_hist| / close × 100)`. Warm-up 34
//!   bars: MACD's first value is at bar 33 and a cross needs the bar before.
//! - `trend_multifactor@1.0.0`: a weighted vote of three signs: the slope
//!   of `ema_{ema_period}` (this bar against the last), `macd_hist`, and a
//!   breakout (close above the highest close of the previous
//!   `breakout_period` bars +1, below the lowest −1, else 0). The score is
//!   Σ wᵢ·voteᵢ / Σ wᵢ; ≥ `threshold` long, ≤ −`threshold` short, else flat;
//!   confidence |score|.
//! - `mean_reversion@1.0.0`: `bb_zscore ≤ −entry_z` long, `≥ entry_z`
//!   short; a position goes flat once `|bb_zscore| ≤ exit_z`. Confidence
//!   `min(1, |z| / (2·entry_z))`.
//! - `volatility_overlay@1.0.0`: follows the latest intents of the
//!   strategies in `sources` on its symbol (their signed notionals summed)
//!   and scales the sum by `min(max_scale, vol_target / realized_vol_20)`
//!   (`max_scale` when the volatility is zero); it emits when the scaled
//!   target moves by more than `min_change` of the last one, or changes
//!   sign.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::contract::{Direction, Event, PluginFault, StrategyContext, StrategyIntent, StrategyPlugin};
use crate::features::FeatureSet;

/// A family's lifecycle under the seed's versioning policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Runs.
    Stable,
    /// Runs with a warning for one release; then it is removed.
    Deprecated,
}

/// A plugin family at one version.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Such as `legacy_macd_rsi`.
    pub strategy_type: &'static str,
    /// Semantic version.
    pub version: &'static str,
    /// Whether it is deprecated.
    pub support: Support,
    /// A fresh instance.
    pub make: fn() -> Box<dyn StrategyPlugin>,
    /// The params JSON Schema.
    pub params_schema: fn() -> Value,
}

/// Every built-in family, ordered by type then version.
pub fn families() -> Vec<Family> {
    vec![
        Family {
            strategy_type: "legacy_macd_rsi",
            version: "1.0.0",
            support: Support::Stable,
            make: || Box::new(LegacyMacdRsi::default()),
            params_schema: legacy_schema,
        },
        Family {
            strategy_type: "mean_reversion",
            version: "1.0.0",
            support: Support::Stable,
            make: || Box::new(MeanReversion::default()),
            params_schema: mean_reversion_schema,
        },
        Family {
            strategy_type: "trend_multifactor",
            version: "1.0.0",
            support: Support::Stable,
            make: || Box::new(TrendMultifactor::default()),
            params_schema: trend_schema,
        },
        Family {
            strategy_type: "volatility_overlay",
            version: "1.0.0",
            support: Support::Stable,
            make: || Box::new(VolatilityOverlay::default()),
            params_schema: overlay_schema,
        },
    ]
}

/// Reads params one key at a time so that every problem is reported.
struct Params<'a> {
    map: Option<&'a Map<String, Value>>,
    known: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> Params<'a> {
    fn new(value: &'a Value) -> Params<'a> {
        let mut problems = Vec::new();
        let map = value.as_object();
        if map.is_none() && !value.is_null() {
            problems.push("params must be an object".to_owned());
        }
        Params { map, known: Vec::new(), problems }
    }

    fn num(&mut self, key: &'static str, default: f64, min: f64, max: f64) -> f64 {
        self.known.push(key);
        let Some(v) = self.map.and_then(|m| m.get(key)) else { return default };
        match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.problems.push(format!("`{key}`: {n} is outside [{min}, {max}]"));
                default
            }
            None => {
                self.problems.push(format!("`{key}`: {v} is not a number"));
                default
            }
        }
    }

    fn int(&mut self, key: &'static str, default: usize, min: usize, max: usize) -> usize {
        self.known.push(key);
        let Some(v) = self.map.and_then(|m| m.get(key)) else { return default };
        match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problems.push(format!("`{key}`: {v} is not an integer in [{min}, {max}]"));
                default
            }
        }
    }

    fn strings(&mut self, key: &'static str) -> Vec<String> {
        self.known.push(key);
        let Some(v) = self.map.and_then(|m| m.get(key)) else {
            self.problems.push(format!("`{key}` is required"));
            return Vec::new();
        };
        match v.as_array().map(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()) {
            Some(Some(list)) if !list.is_empty() => list,
            _ => {
                self.problems.push(format!("`{key}` must be a non-empty list of strategy ids"));
                Vec::new()
            }
        }
    }

    fn finish(mut self) -> Result<(), Vec<String>> {
        if let Some(map) = self.map {
            for key in map.keys() {
                if !self.known.contains(&key.as_str()) {
                    self.problems.push(format!("unknown param `{key}` (known: {})", self.known.join(", ")));
                }
            }
        }
        if self.problems.is_empty() { Ok(()) } else { Err(self.problems) }
    }
}

fn schema(properties: Value, required: &[&str]) -> Value {
    json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
           "additionalProperties": false, "properties": properties, "required": required})
}

fn number(default: f64, min: f64, max: f64, doc: &str) -> Value {
    json!({"type": "number", "default": default, "minimum": min, "maximum": max, "description": doc})
}

/// Slot indices resolved once per feature set.
#[derive(Debug, Default)]
struct Slots {
    set: Option<Arc<FeatureSet>>,
    slots: Vec<Option<usize>>,
}

impl Slots {
    /// The values of `names` in this event, `None` where missing.
    fn read<const N: usize>(&mut self, event: &Event<'_>, names: &[String; N]) -> [Option<f64>; N] {
        let row = event.row;
        if !self.set.as_ref().is_some_and(|s| Arc::ptr_eq(s, &row.set)) {
            self.slots = names.iter().map(|n| row.set.slot(n)).collect();
            self.set = Some(row.set.clone());
        }
        let mut out = [None; N];
        for (o, s) in out.iter_mut().zip(&self.slots) {
            *o = s.and_then(|i| row.values[i]);
        }
        out
    }
}

fn intent(
    ctx: &StrategyContext,
    event: &Event<'_>,
    direction: Direction,
    confidence: f64,
    notional: f64,
    rationale: Vec<String>,
) -> StrategyIntent {
    StrategyIntent {
        strategy_id: ctx.strategy_id.clone(),
        symbol: event.row.symbol.to_string(),
        direction,
        confidence: confidence.clamp(0.0, 1.0),
        target_notional: if direction == Direction::Flat { 0.0 } else { notional },
        horizon: event.timeframe.to_owned(),
        rationale,
        meta: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------- legacy

/// `legacy_macd_rsi@1.0.0`.
#[derive(Debug)]
pub struct LegacyMacdRsi {
    notional: f64,
    rsi_buy_max: f64,
    rsi_sell_min: f64,
    names: [String; 4],
    slots: Slots,
    prev_diff: Option<f64>,
    long: bool,
}

impl Default for LegacyMacdRsi {
    fn default() -> Self {
        LegacyMacdRsi {
            notional: 10_000.0,
            rsi_buy_max: 70.0,
            rsi_sell_min: 30.0,
            names: ["macd".into(), "macd_signal".into(), "rsi_14".into(), "close".into()],
            slots: Slots::default(),
            prev_diff: None,
            long: false,
        }
    }
}

fn legacy_schema() -> Value {
    schema(
        json!({"notional": number(10_000.0, 0.0, 1e12, "notional held while long"),
               "rsi_buy_max": number(70.0, 0.0, 100.0, "a bullish cross buys only below this RSI"),
               "rsi_sell_min": number(30.0, 0.0, 100.0, "a bearish cross sells only above this RSI")}),
        &[],
    )
}

impl StrategyPlugin for LegacyMacdRsi {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut p = Params::new(params);
        self.notional = p.num("notional", 10_000.0, 0.0, 1e12);
        self.rsi_buy_max = p.num("rsi_buy_max", 70.0, 0.0, 100.0);
        self.rsi_sell_min = p.num("rsi_sell_min", 30.0, 0.0, 100.0);
        p.finish()
    }

    fn required_features(&self) -> Vec<String> {
        self.names.to_vec()
    }

    fn warmup_bars(&self) -> usize {
        34
    }

    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        let [Some(macd), Some(signal), Some(rsi), Some(close)] = self.slots.read(event, &self.names) else {
            return Ok(None);
        };
        let diff = macd - signal;
        let Some(prev) = self.prev_diff.replace(diff) else { return Ok(None) };
        let confidence = (diff.abs() / close * 100.0).min(1.0);
        if prev <= 0.0 && diff > 0.0 && rsi < self.rsi_buy_max && !self.long {
            self.long = true;
            let why = vec![
                format!("macd crossed above signal ({macd:.4} > {signal:.4})"),
                format!("rsi_14 {rsi:.2} < {}", self.rsi_buy_max),
            ];
            return Ok(Some(intent(ctx, event, Direction::Long, confidence, self.notional, why)));
        }
        if prev >= 0.0 && diff < 0.0 && rsi > self.rsi_sell_min && self.long {
            self.long = false;
            let why = vec![
                format!("macd crossed below signal ({macd:.4} < {signal:.4})"),
                format!("rsi_14 {rsi:.2} > {}", self.rsi_sell_min),
            ];
            return Ok(Some(intent(ctx, event, Direction::Flat, confidence, 0.0, why)));
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------- trend

/// `trend_multifactor@1.0.0`.
#[derive(Debug)]
pub struct TrendMultifactor {
    notional: f64,
    ema_period: usize,
    breakout_period: usize,
    weights: [f64; 3],
    threshold: f64,
    names: [String; 3],
    slots: Slots,
    prev_ema: Option<f64>,
    highs: VecDeque<(usize, f64)>,
    lows: VecDeque<(usize, f64)>,
    bar: usize,
    direction: Direction,
}

impl Default for TrendMultifactor {
    fn default() -> Self {
        TrendMultifactor {
            notional: 10_000.0,
            ema_period: 50,
            breakout_period: 20,
            weights: [1.0, 1.0, 1.0],
            threshold: 0.5,
            names: ["ema_50".into(), "macd_hist".into(), "close".into()],
            slots: Slots::default(),
            prev_ema: None,
            highs: VecDeque::new(),
            lows: VecDeque::new(),
            bar: 0,
            direction: Direction::Flat,
        }
    }
}

fn trend_schema() -> Value {
    schema(
        json!({"notional": number(10_000.0, 0.0, 1e12, "notional held while long or short"),
               "ema_period": {"type": "integer", "default": 50, "minimum": 2, "maximum": 1000},
               "breakout_period": {"type": "integer", "default": 20, "minimum": 2, "maximum": 1000},
               "weight_ema_slope": number(1.0, 0.0, 100.0, "weight of the EMA slope vote"),
               "weight_macd_hist": number(1.0, 0.0, 100.0, "weight of the MACD histogram vote"),
               "weight_breakout": number(1.0, 0.0, 100.0, "weight of the breakout vote"),
               "threshold": number(0.5, 0.0, 1.0, "score needed to go long or short")}),
        &[],
    )
}

impl StrategyPlugin for TrendMultifactor {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut p = Params::new(params);
        self.notional = p.num("notional", 10_000.0, 0.0, 1e12);
        self.ema_period = p.int("ema_period", 50, 2, 1000);
        self.breakout_period = p.int("breakout_period", 20, 2, 1000);
        self.weights = [
            p.num("weight_ema_slope", 1.0, 0.0, 100.0),
            p.num("weight_macd_hist", 1.0, 0.0, 100.0),
            p.num("weight_breakout", 1.0, 0.0, 100.0),
        ];
        self.threshold = p.num("threshold", 0.5, 0.0, 1.0);
        if self.weights.iter().sum::<f64>() <= 0.0 {
            p.problems.push("the weights sum to zero".into());
        }
        self.names[0] = format!("ema_{}", self.ema_period);
        p.finish()
    }

    fn required_features(&self) -> Vec<String> {
        self.names.to_vec()
    }

    fn warmup_bars(&self) -> usize {
        self.ema_period.max(34).max(self.breakout_period + 1)
    }

    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        let [ema, hist, close] = self.slots.read(event, &self.names);
        let Some(close) = close else { return Ok(None) };
        // The breakout compares with the previous `breakout_period` closes:
        // monotonic deques give their max and min in O(1) amortised.
        let bar = self.bar;
        self.bar += 1;
        let oldest = bar.saturating_sub(self.breakout_period);
        while self.highs.front().is_some_and(|&(i, _)| i < oldest) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|&(i, _)| i < oldest) {
            self.lows.pop_front();
        }
        let full = bar >= self.breakout_period;
        let breakout = match (self.highs.front(), self.lows.front()) {
            (Some(&(_, hi)), Some(&(_, lo))) if full => {
                if close > hi {
                    1.0
                } else if close < lo {
                    -1.0
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        while self.highs.back().is_some_and(|&(_, v)| v <= close) {
            self.highs.pop_back();
        }
        self.highs.push_back((bar, close));
        while self.lows.back().is_some_and(|&(_, v)| v >= close) {
            self.lows.pop_back();
        }
        self.lows.push_back((bar, close));
        let (Some(ema), Some(hist)) = (ema, hist) else { return Ok(None) };
        let Some(prev_ema) = self.prev_ema.replace(ema) else { return Ok(None) };
        let sign = |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        let votes = [sign(ema - prev_ema), sign(hist), breakout];
        let total: f64 = self.weights.iter().sum();
        let score = votes.iter().zip(&self.weights).map(|(v, w)| v * w).sum::<f64>() / total;
        let direction = if score >= self.threshold {
            Direction::Long
        } else if score <= -self.threshold {
            Direction::Short
        } else {
            Direction::Flat
        };
        if direction == self.direction {
            return Ok(None);
        }
        self.direction = direction;
        let why = vec![
            format!("score {score:.3} (threshold {})", self.threshold),
            format!("votes: ema slope {}, macd_hist {}, breakout {}", votes[0], votes[1], votes[2]),
        ];
        Ok(Some(intent(ctx, event, direction, score.abs(), self.notional, why)))
    }
}

// ---------------------------------------------------------- mean reversion

/// `mean_reversion@1.0.0`.
#[derive(Debug)]
pub struct MeanReversion {
    notional: f64,
    entry_z: f64,
    exit_z: f64,
    names: [String; 1],
    slots: Slots,
    direction: Direction,
}

impl Default for MeanReversion {
    fn default() -> Self {
        MeanReversion {
            notional: 10_000.0,
            entry_z: 2.0,
            exit_z: 0.5,
            names: ["bb_zscore".into()],
            slots: Slots::default(),
            direction: Direction::Flat,
        }
    }
}

fn mean_reversion_schema() -> Value {
    schema(
        json!({"notional": number(10_000.0, 0.0, 1e12, "notional held while in a position"),
               "entry_z": number(2.0, 0.1, 10.0, "|bb_zscore| that opens a position against the move"),
               "exit_z": number(0.5, 0.0, 10.0, "|bb_zscore| at or below which a position closes")}),
        &[],
    )
}

impl StrategyPlugin for MeanReversion {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut p = Params::new(params);
        self.notional = p.num("notional", 10_000.0, 0.0, 1e12);
        self.entry_z = p.num("entry_z", 2.0, 0.1, 10.0);
        self.exit_z = p.num("exit_z", 0.5, 0.0, 10.0);
        if self.exit_z >= self.entry_z {
            p.problems.push(format!("`exit_z` {} must be below `entry_z` {}", self.exit_z, self.entry_z));
        }
        p.finish()
    }

    fn required_features(&self) -> Vec<String> {
        self.names.to_vec()
    }

    fn warmup_bars(&self) -> usize {
        20
    }

    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        let [Some(z)] = self.slots.read(event, &self.names) else { return Ok(None) };
        let next = if z <= -self.entry_z {
            Direction::Long
        } else if z >= self.entry_z {
            Direction::Short
        } else if z.abs() <= self.exit_z {
            Direction::Flat
        } else {
            self.direction
        };
        if next == self.direction {
            return Ok(None);
        }
        self.direction = next;
        let why = vec![format!("bb_zscore {z:.3} (entry ±{}, exit ±{})", self.entry_z, self.exit_z)];
        Ok(Some(intent(ctx, event, next, (z.abs() / (2.0 * self.entry_z)).min(1.0), self.notional, why)))
    }
}

// ------------------------------------------------------------- overlay

/// `volatility_overlay@1.0.0`.
#[derive(Debug)]
pub struct VolatilityOverlay {
    sources: Vec<String>,
    vol_target: f64,
    max_scale: f64,
    min_change: f64,
    names: [String; 1],
    slots: Slots,
    latest: BTreeMap<String, f64>,
    last: f64,
}

impl Default for VolatilityOverlay {
    fn default() -> Self {
        VolatilityOverlay {
            sources: Vec::new(),
            vol_target: 0.05,
            max_scale: 2.0,
            min_change: 0.1,
            names: ["realized_vol_20".into()],
            slots: Slots::default(),
            latest: BTreeMap::new(),
            last: 0.0,
        }
    }
}

fn overlay_schema() -> Value {
    schema(
        json!({"sources": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                           "description": "strategy ids whose intents are scaled"},
               "vol_target": number(0.05, 1e-6, 10.0, "target realized_vol_20 (20-bar, not annualised)"),
               "max_scale": number(2.0, 0.0, 100.0, "most the overlay scales a notional up"),
               "min_change": number(0.1, 0.0, 10.0, "relative change of the target that emits a new intent")}),
        &["sources"],
    )
}

impl VolatilityOverlay {
    /// The strategy ids it consumes.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

impl StrategyPlugin for VolatilityOverlay {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut p = Params::new(params);
        self.sources = p.strings("sources");
        self.vol_target = p.num("vol_target", 0.05, 1e-6, 10.0);
        self.max_scale = p.num("max_scale", 2.0, 0.0, 100.0);
        self.min_change = p.num("min_change", 0.1, 0.0, 10.0);
        p.finish()
    }

    fn required_features(&self) -> Vec<String> {
        self.names.to_vec()
    }

    fn warmup_bars(&self) -> usize {
        21
    }

    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        for up in event.upstream {
            if self.sources.contains(&up.intent.strategy_id) {
                self.latest
                    .insert(up.intent.strategy_id.clone(), up.intent.direction.sign() * up.intent.target_notional);
            }
        }
        let [Some(vol)] = self.slots.read(event, &self.names) else { return Ok(None) };
        let combined: f64 = self.latest.values().sum();
        let scale = if vol > 0.0 { (self.vol_target / vol).min(self.max_scale) } else { self.max_scale };
        let target = combined * scale;
        let sign_changed = target.signum() != self.last.signum() || (target == 0.0) != (self.last == 0.0);
        let moved = (target - self.last).abs() > self.min_change * self.last.abs();
        if !sign_changed && !moved {
            return Ok(None);
        }
        self.last = target;
        let direction = if target > 0.0 {
            Direction::Long
        } else if target < 0.0 {
            Direction::Short
        } else {
            Direction::Flat
        };
        let why = vec![format!(
            "sources want {combined:.2}; realized_vol_20 {vol:.5} against target {} scales by {scale:.3}",
            self.vol_target
        )];
        let mut out = intent(ctx, event, direction, 1.0, target.abs(), why);
        out.meta.insert("scale".into(), json!(scale));
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_params_problem_is_reported_at_once() {
        let mut p = MeanReversion::default();
        let problems = p.validate_params(&json!({"entry_z": 50, "exit_z": "x", "colour": 1})).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|m| m.contains("unknown param `colour`")));
        let mut o = VolatilityOverlay::default();
        assert_eq!(o.validate_params(&json!({})).unwrap_err(), ["`sources` is required"]);
    }

    #[test]
    fn a_family_schema_compiles_and_defaults_validate() {
        for f in families() {
            let schema = (f.params_schema)();
            assert!(jsonschema_ok(&schema), "{}", f.strategy_type);
            if f.strategy_type != "volatility_overlay" {
                assert!((f.make)().validate_params(&json!({})).is_ok(), "{}", f.strategy_type);
            }
        }
    }

    fn jsonschema_ok(schema: &Value) -> bool {
        polis_core::contract::compile_schema(schema, "strategy.v1", "params").is_ok()
    }
}
