//! The built-in policies, `rebal.greedy.v1` and `rebal.global.v1`, and the
//! registry that holds them.

use std::sync::{Arc, OnceLock};

use polis_core::manifest::Manifest;
use polis_core::policy::{Policy, PolicyError};
use polis_core::registry::Registry;
use polis_core::run::RunContext;

use crate::contract::{PolicyInput, PolicyOutput, Rebalance, RebalanceParams};
use crate::network::Network;

/// Which built-in algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `rebal.greedy.v1`.
    Greedy,
    /// `rebal.global.v1`.
    Global,
}

impl Builtin {
    /// Both built-ins, in listing order.
    pub const ALL: [Builtin; 2] = [Builtin::Greedy, Builtin::Global];

    /// The policy version callers ask for.
    pub fn policy_version(self) -> &'static str {
        match self {
            Builtin::Greedy => "rebal.greedy.v1",
            Builtin::Global => "rebal.global.v1",
        }
    }

    /// The built-in's manifest.
    pub fn manifest(self) -> Manifest {
        let (id, strategy, name, description) = match self {
            Builtin::Greedy => (
                "polis.rebal.greedy.v1",
                "greedy.v1",
                "Greedy nearest-first",
                "Repeatedly moves min(excess, need) bikes along the shortest eligible neighbour edge, largest transfer first on ties.",
            ),
            Builtin::Global => (
                "polis.rebal.global.v1",
                "global.v1",
                "Global min-cost flow",
                "Maximises bikes delivered to stations in need, then minimises bike-metres, by min-cost flow over the neighbour graph; repairs deterministically when move or station caps bind.",
            ),
        };
        Manifest {
            contract_version: polis_core::manifest::MANIFEST_CONTRACT_VERSION.to_owned(),
            plugin_id: id.to_owned(),
            plugin_version: "1.0.0".to_owned(),
            policy_version: self.policy_version().to_owned(),
            strategy: strategy.to_owned(),
            display_name: name.to_owned(),
            description: Some(description.to_owned()),
            author: Some("polis".to_owned()),
            deterministic: true,
            supports_horizon_steps: false,
            max_horizon_steps: 0,
            requires_neighbor_graph: true,
            input_schema_version: "policy.input.v1".to_owned(),
            output_schema_version: "policy.output.v1".to_owned(),
            runtime: None,
            permissions: Vec::new(),
            limits: None,
            params_schema: None,
            warmup_bars: None,
            required_features: Vec::new(),
        }
    }

    /// Runs the algorithm on a validated network.
    pub fn decide(self, network: &Network<'_>) -> PolicyOutput {
        match self {
            Builtin::Greedy => crate::greedy::run(network),
            Builtin::Global => crate::global::run(network),
        }
    }
}

/// A built-in policy behind the [`Policy`] trait.
pub struct BuiltinPolicy {
    which: Builtin,
    manifest: Manifest,
}

impl BuiltinPolicy {
    /// Wraps a built-in.
    pub fn new(which: Builtin) -> Self {
        BuiltinPolicy { which, manifest: which.manifest() }
    }
}

impl Policy<Rebalance> for BuiltinPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn run(
        &self,
        _ctx: &RunContext,
        input: &PolicyInput,
        params: &RebalanceParams,
    ) -> Result<PolicyOutput, PolicyError> {
        let network = Network::new(input, params).map_err(|v| PolicyError::Rejected(v.to_string()))?;
        Ok(self.which.decide(&network))
    }
}

/// A registry holding both built-ins. Plugin tiers add to a clone of it.
pub fn registry() -> Registry<Rebalance> {
    static BUILTINS: OnceLock<Registry<Rebalance>> = OnceLock::new();
    BUILTINS
        .get_or_init(|| {
            let mut registry = Registry::new();
            for which in Builtin::ALL {
                // Built-in manifests are valid by construction; a failure
                // would show as a disabled plugin in `polis plugins list`.
                let _ = registry.register(Arc::new(BuiltinPolicy::new(which)), None);
            }
            registry
        })
        .clone()
}
