//! Built-in behaviour plugins, written against [`PluginContext`] directly.

use polis_core::manifest::{MANIFEST_CONTRACT_VERSION, Manifest};
use polis_core::policy::PolicyError;
use serde_json::{Value, json};

use crate::context::{ContextError, PluginContext};
use crate::plugin::{BehaviorPlugin, ConditionCall, EffectCall};

/// `polis.behavior.moody`: a condition `cheerful` (the NPC's mood valence
/// is at least `params.threshold`, default 10) and an effect `cheer` (adds
/// `params.amount`, default 15, to the NPC's mood). It asks for
/// `group:behavior` and `npc:write`, and nothing else.
pub struct Moody {
    manifest: Manifest,
}

impl Default for Moody {
    fn default() -> Self {
        Moody {
            manifest: Manifest {
                contract_version: MANIFEST_CONTRACT_VERSION.to_owned(),
                plugin_id: "polis.behavior.moody".to_owned(),
                plugin_version: "1.0.0".to_owned(),
                policy_version: "behavior.moody.v1".to_owned(),
                strategy: "moody.v1".to_owned(),
                display_name: "Moody".to_owned(),
                description: Some("A mood condition and a mood effect".to_owned()),
                author: Some("polis".to_owned()),
                deterministic: true,
                contract: Some("behavior.v1".to_owned()),
                runtime: None,
                permissions: vec!["group:behavior".to_owned(), "npc:write".to_owned()],
                limits: None,
                params_schema: None,
                extensions: Default::default(),
            },
        }
    }
}

fn rejected(e: ContextError) -> PolicyError {
    PolicyError::Rejected(e.to_string())
}

fn npc_of(npc_id: Option<&str>) -> Result<&str, PolicyError> {
    npc_id.ok_or_else(|| PolicyError::Rejected("the call names no NPC".to_owned()))
}

impl BehaviorPlugin for Moody {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        let api = ctx.behavior();
        api.register_condition_evaluator("cheerful", Some("the NPC's mood valence is at least `threshold`"))
            .map_err(rejected)?;
        let defaults = json!({"amount": 15}).as_object().cloned().unwrap_or_default();
        api.register_effect_handler("cheer", Some("adds `amount` to the NPC's mood"), defaults).map_err(rejected)?;
        Ok(())
    }

    fn evaluate_condition(&self, call: &ConditionCall, ctx: &PluginContext) -> Result<bool, PolicyError> {
        let npc = ctx.npc().map_err(rejected)?.get(npc_of(call.npc_id.as_deref())?).map_err(rejected)?;
        let valence = npc["state"]["moodState"]["valence"].as_f64().unwrap_or(0.0);
        let threshold = call.params.get("threshold").and_then(Value::as_f64).unwrap_or(10.0);
        Ok(valence >= threshold)
    }

    fn apply_effect(&self, call: &EffectCall, ctx: &PluginContext) -> Result<(), PolicyError> {
        let amount = call.params.get("amount").and_then(Value::as_f64).unwrap_or(0.0);
        let state = ctx
            .npc_mut()
            .map_err(rejected)?
            .update_state(npc_of(call.npc_id.as_deref())?, None, Some(amount))
            .map_err(rejected)?;
        if let Ok(log) = ctx.log() {
            log.emit("info", &format!("cheered up to {}", state["moodState"]["valence"]));
        }
        Ok(())
    }
}
