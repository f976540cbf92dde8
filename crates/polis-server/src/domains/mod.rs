//! The registration list: every domain the service serves, built from the
//! service's settings. Adding a domain adds its module here and one line to
//! [`all`]; nothing else in the server names a domain.

pub mod behavior;
pub mod contract_only;
pub mod packs;
pub mod payments;
pub mod rebalance;
pub mod strategy;

use std::path::PathBuf;
use std::sync::Arc;

use crate::Core;
use crate::domain::Domain;

/// What the domains are built from.
#[derive(Clone, Default)]
pub struct Settings {
    /// Allowlisted plugin directories; each domain loads the plugins whose
    /// manifests its contracts claim.
    pub plugin_dirs: Vec<PathBuf>,
    /// The tiers plugins load into; `None` builds the default ones when a
    /// plugin directory is given.
    pub tiers: Option<polis_plugins::Tiers>,
    /// Rebalancing's settings.
    pub rebalance: rebalance::Settings,
    /// The policy packs' settings.
    pub packs: packs::Settings,
    /// The strategy service's settings.
    pub strategy: strategy::Settings,
    /// The behaviour service's settings.
    pub behavior: behavior::Settings,
}

/// Where a domain's plugins come from.
#[derive(Clone, Copy)]
pub struct Plugins<'a> {
    /// Allowlisted plugin directories.
    pub dirs: &'a [PathBuf],
    /// The tiers to load them into; `None` when there are no directories.
    pub tiers: Option<&'a polis_plugins::Tiers>,
}

impl Plugins<'_> {
    /// `base` plus every plugin of contract `C` under the directories.
    pub fn load<C: polis_core::Contract>(&self, base: polis_core::Registry<C>) -> polis_core::Registry<C> {
        let Some(tiers) = self.tiers else { return base };
        let roots: Vec<&std::path::Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        polis_plugins::load_roots(base, &roots, tiers).0
    }
}

/// Why a domain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A contract's schema does not compile.
    #[error(transparent)]
    Schema(#[from] polis_core::contract::SchemaError),
    /// The plugin tiers could not start.
    #[error("plugin tiers could not start: {0}")]
    Tiers(String),
    /// The configured strategy catalog does not parse.
    #[error(transparent)]
    Catalog(polis_strategy::catalog::CatalogError),
    /// The store failed while the service started.
    #[error(transparent)]
    Store(#[from] polis_store::StoreError),
}

/// Every registered domain, in the order the console lists them.
pub fn all(core: &Core, settings: &Settings) -> Result<Vec<Arc<dyn Domain>>, DomainError> {
    // The tiers (a wasm engine, process sandboxes) start only when there
    // are plugin directories to load from.
    let tiers = match (&settings.tiers, settings.plugin_dirs.is_empty()) {
        (Some(tiers), _) => Some(tiers.clone()),
        (None, true) => None,
        (None, false) => Some(polis_plugins::Tiers::new().map_err(|e| DomainError::Tiers(e.to_string()))?),
    };
    let plugins = Plugins { dirs: &settings.plugin_dirs, tiers: tiers.as_ref() };
    Ok(vec![
        rebalance::domain(core, &plugins, &settings.rebalance)?,
        contract_only::domain::<polis_echo::Echo>(
            "echo",
            "Echo (test contract)",
            polis_echo::builtins::registry(),
            &plugins,
        )?,
        packs::domain(core, &settings.packs),
        strategy::domain(core, &plugins, &settings.strategy)?,
        payments::domain(core),
        behavior::domain(core, &plugins, settings.behavior),
    ])
}
