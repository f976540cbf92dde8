//! `behavior.v1`: the contract behaviour plugins declare, so polis's plugin
//! loader claims their manifests and gives them the seed's permissions and
//! capabilities.
//!
//! A behaviour plugin answers several methods (see [`crate::plugin`]), so
//! the engine drives it through [`crate::BehaviorPlugin`] rather than one
//! `run`. The contract's input and output describe its central method,
//! `evaluate_condition`, so that `polis contract schema behavior.v1` shows
//! what a plugin is sent and must answer.

use polis_core::canonical::Digest;
use polis_core::contract::{Contract, Violations};
use polis_core::manifest::FieldProblem;
use polis_core::run::{RunKey, seed_of};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::permissions::{CAPABILITIES, GROUPS, PERMISSIONS};

/// The behaviour contract.
pub struct Behavior;

/// The methods every sandboxed behaviour plugin must answer (wasm plugins
/// must export them). The others (`evaluate_condition`, `apply_effect`,
/// `on_event`) are needed only by plugins that register something that
/// calls them; a missing one fails that call, which falls back.
pub const REQUIRED_METHODS: &[&str] = &["register"];

/// The longest a remote behaviour plugin's call may take (the seed's
/// `timeout_ms` default): polis loads remote behaviour plugins with the
/// remote tier's ceiling lowered to it, and a manifest's `limits.timeout_ms`
/// can tighten it further. A condition past it is false, an effect skipped,
/// a webhook attempt failed.
pub const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// What `evaluate_condition` is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionRequest {
    /// `plugin:<plugin id>:<name>`.
    pub condition_id: String,
    /// The registered name.
    pub name: String,
    /// The condition's params.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The NPC decided for.
    #[serde(default)]
    pub npc_id: Option<String>,
    /// A seed for anything random.
    #[serde(default)]
    pub seed: u64,
    /// For remote plugins: what their permissions let them see.
    #[serde(default)]
    pub context: Option<Value>,
}

/// What `evaluate_condition` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionReply {
    /// Whether the condition holds.
    pub result: bool,
}

/// No params beyond the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviorParams {}

/// A condition evaluation is about one condition in one world.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviorSubject {
    /// The world.
    pub world_id: String,
    /// The condition.
    pub condition_id: String,
}

/// What a plugin sees of a run besides its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviorContext {
    /// The world.
    pub world_id: String,
    /// The run's seed.
    pub seed: u64,
}

/// The contract's manifest fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviorManifest {
    /// What the plugin is, the original's manifest `kind`. By default
    /// `remote_feature` for a remote-tier plugin and `feature` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PluginKind>,
}

/// What a behaviour plugin is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Extends behaviour: conditions, effects, simulation config, events.
    #[default]
    Feature,
    /// Also serves HTTP routes it declares while loading, under
    /// `/api/plugins/{plugin_id}/…` (and world-scoped).
    Route,
    /// A feature plugin behind an HTTP endpoint (the remote tier):
    /// `POST {endpoint}/evaluate-condition` and `/apply-effect`.
    RemoteFeature,
}

impl PluginKind {
    /// Its name as a manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Feature => "feature",
            PluginKind::Route => "route",
            PluginKind::RemoteFeature => "remote_feature",
        }
    }

    /// The manifest's kind, or its tier's default. A manifest whose fields
    /// do not decode gets the default too: the loader refuses such
    /// manifests before this is asked.
    pub fn of(manifest: &polis_core::manifest::Manifest) -> PluginKind {
        let given = manifest.parse_fields::<BehaviorManifest>().ok().and_then(|f| f.kind);
        given.unwrap_or(if manifest.tier() == polis_core::manifest::TierKind::Remote {
            PluginKind::RemoteFeature
        } else {
            PluginKind::Feature
        })
    }
}

impl Contract for Behavior {
    const ID: &'static str = "behavior.v1";
    const METHOD: &'static str = "evaluate_condition";
    const PERMISSIONS: &'static [polis_core::permission::PermissionSpec] = PERMISSIONS;
    const PERMISSION_GROUPS: &'static [polis_core::permission::PermissionGroup] = GROUPS;
    const CAPABILITIES: &'static [polis_core::permission::Capability] = CAPABILITIES;

    type Input = ConditionRequest;
    type Output = ConditionReply;
    type Params = BehaviorParams;
    type Subject = BehaviorSubject;
    type Context = BehaviorContext;
    type ManifestFields = BehaviorManifest;

    fn manifest_fields(manifest: &polis_core::manifest::Manifest) -> Result<BehaviorManifest, Vec<FieldProblem>> {
        let fields: BehaviorManifest = manifest.parse_fields()?;
        if fields.kind == Some(PluginKind::RemoteFeature) && manifest.tier() != polis_core::manifest::TierKind::Remote {
            let message =
                format!("`remote_feature` is the kind of remote-tier plugins, not of a `{}` one", manifest.tier());
            return Err(vec![FieldProblem { field: "kind".to_owned(), message }]);
        }
        Ok(fields)
    }

    fn context(key: &RunKey<BehaviorSubject>, key_sha256: &Digest, _request_id: Option<&str>) -> BehaviorContext {
        BehaviorContext { world_id: key.subject.world_id.clone(), seed: seed_of(key_sha256) }
    }

    type Checked = ();

    fn check_input(_input: &ConditionRequest, _params: &BehaviorParams) -> Result<(), Violations> {
        Ok(())
    }

    fn validate_output(
        _input: &ConditionRequest,
        _params: &BehaviorParams,
        (): &(),
        _output: &ConditionReply,
    ) -> Result<(), Violations> {
        Ok(())
    }

    fn output_items(_output: &ConditionReply) -> usize {
        1
    }
}
