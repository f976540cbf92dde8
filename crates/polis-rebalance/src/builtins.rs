//! The built-in policies, `rebal.greedy.v1` and `rebal.global.v1`, and the
//! registry that holds them.

use std::sync::{Arc, OnceLock};

use polis_core::manifest::Manifest;
use polis_core::policy::{Call, Policy, PolicyError};
use polis_core::registry::Registry;

use crate::contract::{PolicyOutput, Rebalance, RebalanceManifest};
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
        builtin_manifest(id, self.policy_version(), strategy, name, description, &RebalanceManifest::builtin())
    }

    /// Runs the algorithm on a validated network.
    pub fn decide(self, network: &Network) -> PolicyOutput {
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

/// The manifest of a policy compiled into polis. Built-ins keep the seed's
/// manifest shape (no `contract` field), so their manifest hashes are the
/// ones every earlier run recorded.
pub fn builtin_manifest(
    plugin_id: &str,
    policy_version: &str,
    strategy: &str,
    display_name: &str,
    description: &str,
    fields: &RebalanceManifest,
) -> Manifest {
    use serde_json::json;
    let extensions = std::collections::BTreeMap::from([
        ("supports_horizon_steps".to_owned(), json!(fields.supports_horizon_steps)),
        ("max_horizon_steps".to_owned(), json!(fields.max_horizon_steps)),
        ("requires_neighbor_graph".to_owned(), json!(fields.requires_neighbor_graph)),
        ("input_schema_version".to_owned(), json!(fields.input_schema_version)),
        ("output_schema_version".to_owned(), json!(fields.output_schema_version)),
    ]);
    Manifest {
        contract_version: polis_core::manifest::MANIFEST_CONTRACT_VERSION.to_owned(),
        plugin_id: plugin_id.to_owned(),
        plugin_version: "1.0.0".to_owned(),
        policy_version: policy_version.to_owned(),
        strategy: strategy.to_owned(),
        display_name: display_name.to_owned(),
        description: Some(description.to_owned()),
        author: Some("polis".to_owned()),
        deterministic: true,
        contract: None,
        runtime: None,
        permissions: Vec::new(),
        limits: None,
        params_schema: None,
        extensions,
    }
}

impl Policy<Rebalance> for BuiltinPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn run(&self, call: &Call<'_, Rebalance>) -> Result<PolicyOutput, PolicyError> {
        call.check_cancelled()?;
        // The guard built and validated the network once for this input.
        Ok(self.which.decide(call.checked))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of `rebal.greedy.v1`'s manifest before the manifest's
    /// domain fields moved to the contract: the document is the same, so
    /// every stored run keeps naming the same manifest.
    const GREEDY_MANIFEST_SHA256: &str = "af67f3c1d8515e273071634de3097e1d06eac76ca539b625a2a7603891f3d33e";

    #[test]
    fn built_in_manifest_hashes_are_the_ones_earlier_runs_recorded() {
        assert_eq!(Builtin::Greedy.manifest().digest().unwrap().to_hex(), GREEDY_MANIFEST_SHA256);
        let registry = registry();
        let entry = registry.resolve("rebal.greedy.v1").unwrap();
        assert_eq!(
            entry.manifest_digest.to_hex(),
            GREEDY_MANIFEST_SHA256,
            "the registry's normalised form is the same"
        );
    }
}
