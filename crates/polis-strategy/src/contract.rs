//! `strategy.v1` in the seed's own terms: the context, the intent, the
//! plugin surface and the semantic validator.
//!
//! A plugin is *stateful*: the host makes one instance per configured
//! strategy and symbol and calls it on every feature vector of that symbol
//! in time order. The four methods are the seed's:
//!
//! - `validate_params(params)`: every reason the params are wrong, or
//!   nothing; the instance keeps valid params for the stream;
//! - `required_features()`: the feature names it reads;
//! - `warmup_bars()`: how many bars it consumes before its intents count;
//! - `on_event(fv, ctx)`: an intent or nothing.
//!
//! `volatility_overlay` also consumes intents: the host gives it, with each
//! event, the intents the strategies named in its `sources` param emitted on
//! that same event (in catalog priority order), as [`Event::upstream`]; a
//! sandboxed plugin gets them as the request's `upstream` array.
//!
//! Intents are never orders: a direction, a confidence and a target
//! notional. An intent's id is derived from `strategy_id@version`, the
//! symbol and the event time, so a replay gives the same ids.

use std::collections::BTreeMap;

use polis_core::canonical::digest_of;
use polis_core::contract::{Violation, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::features::Row;

/// The contract id.
pub const CONTRACT_ID: &str = "strategy.v1";

/// What a strategy instance knows about its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyContext {
    /// The catalog entry's id.
    pub strategy_id: String,
    /// The plugin family, such as `legacy_macd_rsi`.
    pub strategy_type: String,
    /// The family's semantic version, such as `1.0.0`.
    pub version: String,
    /// The entry's params, as the catalog gives them.
    pub params: serde_json::Value,
}

/// Where an intent wants the position to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Hold `target_notional` long.
    Long,
    /// Hold `target_notional` short.
    Short,
    /// Hold nothing.
    Flat,
}

impl Direction {
    /// +1, -1 or 0.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Long => 1.0,
            Direction::Short => -1.0,
            Direction::Flat => 0.0,
        }
    }
}

/// What a strategy wants: a target, never an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyIntent {
    /// The strategy that wants it.
    pub strategy_id: String,
    /// The instrument; must be the event's.
    pub symbol: String,
    /// Long, short or flat.
    pub direction: Direction,
    /// How sure, in [0, 1].
    pub confidence: f64,
    /// The absolute notional to hold (the direction gives the sign);
    /// finite and not negative.
    pub target_notional: f64,
    /// How long the intent is meant to hold, such as `1d`.
    pub horizon: String,
    /// Why, one reason a line.
    pub rationale: Vec<String>,
    /// Anything else the strategy wants recorded.
    pub meta: BTreeMap<String, serde_json::Value>,
}

/// An intent as the host records it: with its id, the event it answers and
/// the strategy version that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntentRecord {
    /// SHA-256 of the canonical `{"strategy", "symbol", "event_ts"}`.
    pub intent_id: String,
    /// The event's time, RFC 3339 UTC.
    #[serde(with = "crate::ts")]
    #[schemars(with = "String")]
    pub event_ts: i64,
    /// `strategy_id@version`.
    pub strategy: String,
    /// The intent.
    pub intent: StrategyIntent,
}

/// The deterministic id of the intent `strategy` (`id@version`) emits for
/// `symbol` at `event_ts`.
pub fn intent_id(strategy: &str, symbol: &str, event_ts: i64) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        strategy: &'a str,
        symbol: &'a str,
        event_ts: i64,
    }
    digest_of(&Key { strategy, symbol, event_ts }).map(|d| d.to_hex()).unwrap_or_default()
}

/// One event as a plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The feature vector, in slots.
    pub row: &'a Row,
    /// The bar length.
    pub timeframe: &'a str,
    /// Intents emitted on this event by the strategies an overlay consumes;
    /// empty for every other family.
    pub upstream: &'a [IntentRecord],
}

/// Why a plugin failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PluginFault(pub String);

/// The plugin surface every tier implements. One instance per configured
/// strategy and symbol; it may keep any state it needs between events.
pub trait StrategyPlugin: Send {
    /// Checks `params`, keeping them when valid; `Err` lists every reason.
    fn validate_params(&mut self, params: &serde_json::Value) -> Result<(), Vec<String>>;
    /// The features it reads (after `validate_params`).
    fn required_features(&self) -> Vec<String>;
    /// Bars consumed before its intents count (after `validate_params`).
    fn warmup_bars(&self) -> usize;
    /// Decides on one event.
    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault>;
}

/// The semantic validator: checks an intent, as JSON, against the event it
/// answers and the strategy that made it. It rejects a NaN or infinite
/// number anywhere (JSON cannot carry one, so a tier that let one through
/// sends it as a string or a huge literal), a confidence outside [0, 1], an
/// unknown direction, a negative notional, a symbol that was not the
/// event's and a strategy id that is not the caller's.
pub fn validate_intent_value(
    value: &serde_json::Value,
    event_symbol: &str,
    strategy_id: &str,
) -> Result<StrategyIntent, Violations> {
    let mut found = Vec::new();
    if let Some(d) = value.get("direction")
        && !matches!(d.as_str(), Some("long" | "short" | "flat"))
    {
        {
            found.push(Violation::new(
                "intent.direction",
                "direction",
                format!("unknown direction {d}; use long, short or flat"),
            ));
        }
    }
    for field in ["confidence", "target_notional"] {
        if let Some(v) = value.get(field)
            && (v.is_string() && matches!(v.as_str(), Some("NaN" | "nan" | "Infinity" | "-Infinity")))
        {
            found.push(Violation::new("intent.not_finite", field, format!("{v} is not a finite number")));
        }
    }
    Violations::check(found)?;
    let intent: StrategyIntent = serde_json::from_value(value.clone())
        .map_err(|e| Violations::one("intent.schema", "", format!("not a strategy intent: {e}")))?;
    validate_intent(&intent, event_symbol, strategy_id)?;
    Ok(intent)
}

/// The semantic validator for a typed intent (the built-in tier).
pub fn validate_intent(intent: &StrategyIntent, event_symbol: &str, strategy_id: &str) -> Result<(), Violations> {
    let mut found = Vec::new();
    if !intent.confidence.is_finite() {
        found.push(Violation::new("intent.not_finite", "confidence", "NaN or infinite"));
    } else if !(0.0..=1.0).contains(&intent.confidence) {
        found.push(Violation::new(
            "intent.confidence",
            "confidence",
            format!("{} is outside [0, 1]", intent.confidence),
        ));
    }
    if !intent.target_notional.is_finite() {
        found.push(Violation::new("intent.not_finite", "target_notional", "NaN or infinite"));
    } else if intent.target_notional < 0.0 {
        found.push(Violation::new(
            "intent.notional",
            "target_notional",
            format!("{} is negative; the direction carries the sign", intent.target_notional),
        ));
    }
    if intent.symbol != event_symbol {
        found.push(Violation::new(
            "intent.symbol",
            "symbol",
            format!("`{}` was not in the event (its symbol is `{event_symbol}`)", intent.symbol),
        ));
    }
    if intent.strategy_id != strategy_id {
        found.push(Violation::new(
            "intent.strategy_id",
            "strategy_id",
            format!("`{}` is not the calling strategy `{strategy_id}`", intent.strategy_id),
        ));
    }
    for (key, v) in &intent.meta {
        if let Some(n) = v.as_f64()
            && !n.is_finite()
        {
            found.push(Violation::new("intent.not_finite", format!("meta.{key}"), "NaN or infinite"));
        }
    }
    Violations::check(found)
}

// ------------------------------------------------------- the declared contract

/// `strategy.v1` as a declared [`polis_core::contract::Contract`], so the
/// plugin loader claims manifests naming it (`"contract": "strategy.v1"`)
/// and `polis contract schema strategy.v1` shows what a plugin is sent.
///
/// A strategy plugin answers four methods ([`REQUIRED_METHODS`]; see
/// [`crate::endpoint`] for each request and reply), so the engine drives it
/// through [`crate::endpoint::EndpointStrategy`] rather than one `run`. The
/// contract's input and output describe its central method, `on_event`.
pub struct Strategy;

/// The methods every sandboxed strategy plugin answers (wasm plugins must
/// export each as `polis_<method>`).
pub const REQUIRED_METHODS: &[&str] = &["validate_params", "required_features", "warmup_bars", "on_event"];

/// What `on_event` is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnEventRequest {
    /// The instance (one per strategy and symbol) the event is for; the
    /// host chose it and named it in `validate_params` first.
    pub instance: String,
    /// The feature vector (`feature_vector.v3`).
    pub fv: crate::features::FeatureVectorV3,
    /// The strategy's configuration.
    pub ctx: StrategyContext,
    /// For an overlay, the intents its sources emitted on this event, in
    /// catalog order; empty otherwise.
    #[serde(default)]
    pub upstream: Vec<IntentRecord>,
}

/// What `on_event` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnEventReply {
    /// The intent, or `null` for none.
    pub intent: Option<StrategyIntent>,
}

/// No params beyond the request: a strategy's params travel in
/// `validate_params` and in `ctx.params`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyParams {}

/// An event decision is about one strategy on one symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategySubject {
    /// The catalog entry's `strategy_id`.
    pub strategy_id: String,
    /// The instrument.
    pub symbol: String,
}

/// What a plugin sees of a run besides its request (with `context:read`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyRunContext {
    /// The catalog entry's `strategy_id`.
    pub strategy_id: String,
    /// The instrument.
    pub symbol: String,
    /// The run's seed.
    pub seed: u64,
}

/// The contract's manifest fields: none beyond the common ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyManifest {}

impl polis_core::contract::Contract for Strategy {
    const ID: &'static str = CONTRACT_ID;
    const METHOD: &'static str = "on_event";

    type Input = OnEventRequest;
    type Output = OnEventReply;
    type Params = StrategyParams;
    type Subject = StrategySubject;
    type Context = StrategyRunContext;
    type ManifestFields = StrategyManifest;

    fn context(
        key: &polis_core::run::RunKey<StrategySubject>,
        key_sha256: &polis_core::canonical::Digest,
        _request_id: Option<&str>,
    ) -> StrategyRunContext {
        StrategyRunContext {
            strategy_id: key.subject.strategy_id.clone(),
            symbol: key.subject.symbol.clone(),
            seed: polis_core::run::seed_of(key_sha256),
        }
    }

    type Checked = ();

    fn check_input(input: &OnEventRequest, _params: &StrategyParams) -> Result<(), Violations> {
        let mut found = Vec::new();
        if input.instance.is_empty() {
            found.push(Violation::new("request.instance", "instance", "is empty"));
        }
        if input.fv.schema_version != crate::features::SCHEMA_VERSION {
            found.push(Violation::new(
                "request.schema_version",
                "fv.schema_version",
                format!("`{}` is not `{}`", input.fv.schema_version, crate::features::SCHEMA_VERSION),
            ));
        }
        Violations::check(found)
    }

    fn validate_output(
        input: &OnEventRequest,
        _params: &StrategyParams,
        (): &(),
        output: &OnEventReply,
    ) -> Result<(), Violations> {
        match &output.intent {
            Some(intent) => validate_intent(intent, &input.fv.symbol, &input.ctx.strategy_id),
            None => Ok(()),
        }
    }

    fn output_items(output: &OnEventReply) -> usize {
        usize::from(output.intent.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent() -> serde_json::Value {
        json!({"strategy_id": "s", "symbol": "GOOG", "direction": "long", "confidence": 0.5,
               "target_notional": 1000.0, "horizon": "1d", "rationale": [], "meta": {}})
    }

    fn codes(value: serde_json::Value) -> Vec<&'static str> {
        validate_intent_value(&value, "GOOG", "s")
            .err()
            .map(|v| v.0.iter().map(|x| x.code).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_good_intent_passes() {
        assert!(codes(intent()).is_empty());
    }

    #[test]
    fn the_validator_rejects_each_bad_field_by_code() {
        let with = |k: &str, v: serde_json::Value| {
            let mut i = intent();
            i[k] = v;
            i
        };
        assert_eq!(codes(with("confidence", json!(1.5))), ["intent.confidence"]);
        assert_eq!(codes(with("confidence", json!(-0.1))), ["intent.confidence"]);
        assert_eq!(codes(with("confidence", json!("NaN"))), ["intent.not_finite"]);
        assert_eq!(codes(with("direction", json!("sideways"))), ["intent.direction"]);
        assert_eq!(codes(with("symbol", json!("MSFT"))), ["intent.symbol"]);
        assert_eq!(codes(with("target_notional", json!(-5))), ["intent.notional"]);
        assert_eq!(codes(with("strategy_id", json!("other"))), ["intent.strategy_id"]);
    }

    #[test]
    fn a_typed_nan_is_rejected() {
        let mut i: StrategyIntent = serde_json::from_value(intent()).unwrap();
        i.confidence = f64::NAN;
        assert_eq!(validate_intent(&i, "GOOG", "s").unwrap_err().first_code(), "intent.not_finite");
    }

    #[test]
    fn intent_ids_depend_on_strategy_version_symbol_and_time_only() {
        let a = intent_id("s@1.0.0", "GOOG", 1);
        assert_eq!(a, intent_id("s@1.0.0", "GOOG", 1));
        assert_ne!(a, intent_id("s@1.1.0", "GOOG", 1));
        assert_ne!(a, intent_id("s@1.0.0", "MSFT", 1));
        assert_ne!(a, intent_id("s@1.0.0", "GOOG", 2));
        assert_eq!(a.len(), 64);
    }
}
