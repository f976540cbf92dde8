//! A sandboxed strategy plugin (process, wasm or remote tier) behind the
//! typed [`StrategyPlugin`] surface.
//!
//! A sandboxed tier runs one worker (or module) per plugin, not one per
//! instance, so the instance's state lives in the plugin keyed by an
//! `instance` id the host chooses (one per strategy and symbol). Each of
//! the four methods is one request naming the instance:
//!
//! | method | request | reply |
//! |---|---|---|
//! | `validate_params` | `{"instance", "params"}` | `{"errors": [..]}` (empty when valid) |
//! | `required_features` | `{"instance"}` | `["close", ..]` |
//! | `warmup_bars` | `{"instance"}` | `34` |
//! | `on_event` | `{"instance", "fv", "ctx", "upstream"}` | `{"intent": null \| {..}}` |
//!
//! `fv` is the `FeatureVectorV3` wire document; `upstream` the intents an
//! overlay consumes. A reply's intent passes the semantic validator on its
//! raw JSON ([`validate_intent_value`]), so an unknown direction or a NaN
//! sent as a string is caught, not lost in decoding. `required_features`
//! and `warmup_bars` are asked once, right after valid params.

use std::sync::Arc;

use polis_core::policy::{CallEnv, PluginEndpoint, RunControl, no_host};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::contract::{Event, PluginFault, StrategyContext, StrategyIntent, StrategyPlugin, validate_intent_value};

/// One instance of a sandboxed strategy plugin.
pub struct EndpointStrategy {
    endpoint: Arc<dyn PluginEndpoint>,
    instance: String,
    features: Vec<String>,
    warmup: usize,
    control: RunControl,
}

impl std::fmt::Debug for EndpointStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointStrategy")
            .field("plugin_id", &self.endpoint.manifest().plugin_id)
            .field("instance", &self.instance)
            .finish()
    }
}

impl EndpointStrategy {
    /// The instance `instance` of the plugin behind `endpoint`.
    pub fn new(endpoint: Arc<dyn PluginEndpoint>, instance: impl Into<String>) -> EndpointStrategy {
        EndpointStrategy {
            endpoint,
            instance: instance.into(),
            features: Vec::new(),
            warmup: 0,
            control: RunControl::new(),
        }
    }

    fn call<T: for<'de> Deserialize<'de>>(&self, method: &str, request: &Value) -> Result<T, String> {
        let bytes = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let host = no_host();
        let env = CallEnv { seed: 0, control: &self.control, host: &host };
        let reply = self.endpoint.call(method, &bytes, &env).map_err(|e| format!("`{method}`: {e}"))?;
        serde_json::from_slice(&reply).map_err(|e| format!("`{method}` replied with something else: {e}"))
    }
}

impl StrategyPlugin for EndpointStrategy {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        #[derive(Deserialize)]
        struct Reply {
            errors: Vec<String>,
        }
        let reply: Reply =
            self.call("validate_params", &json!({"instance": self.instance, "params": params})).map_err(|e| vec![e])?;
        if !reply.errors.is_empty() {
            return Err(reply.errors);
        }
        self.features = self.call("required_features", &json!({"instance": self.instance})).map_err(|e| vec![e])?;
        self.warmup = self.call("warmup_bars", &json!({"instance": self.instance})).map_err(|e| vec![e])?;
        Ok(())
    }

    fn required_features(&self) -> Vec<String> {
        self.features.clone()
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn on_event(&mut self, event: &Event<'_>, ctx: &StrategyContext) -> Result<Option<StrategyIntent>, PluginFault> {
        let fv = event.row.to_vector(event.timeframe);
        let request = json!({"instance": self.instance, "fv": fv, "ctx": ctx, "upstream": event.upstream});
        let reply: Value = self.call("on_event", &request).map_err(PluginFault)?;
        let intent = reply.get("intent").ok_or_else(|| PluginFault("`on_event` reply has no `intent`".into()))?;
        if intent.is_null() {
            return Ok(None);
        }
        validate_intent_value(intent, &fv.symbol, &ctx.strategy_id)
            .map(Some)
            .map_err(|v| PluginFault(format!("invalid intent: {v}")))
    }
}
