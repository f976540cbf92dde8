//! A domain that is only a contract: its plugins run through the generic
//! run path (`POST /api/runs`, jobs of kind `run`), are listed with every
//! other plugin, and need no routes, tables or job kinds of their own.
//! The echo test contract is served this way.

use std::sync::Arc;

use axum::Router;
use polis_core::contract::Contract;
use polis_core::registry::Registry;
use polis_runtime::{Host, HostLimits};

use crate::domain::{ContractService, Domain, HostService};

/// The domain of contract `C` alone.
pub struct ContractOnly<C: Contract> {
    name: &'static str,
    title: &'static str,
    host: Arc<Host<C>>,
}

impl<C: Contract> Domain for ContractOnly<C> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn title(&self) -> &'static str {
        self.title
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        vec![Arc::new(HostService::new(Arc::clone(&self.host)))]
    }

    fn router(&self) -> Router {
        Router::new()
    }
}

/// The domain of contract `C` over `builtins` plus every plugin of `C` in
/// the plugin directories.
pub fn domain<C: Contract>(
    name: &'static str,
    title: &'static str,
    builtins: Registry<C>,
    plugins: &super::Plugins<'_>,
) -> Result<Arc<dyn Domain>, super::DomainError> {
    let host = Arc::new(Host::new(plugins.load(builtins), HostLimits::default())?);
    Ok(Arc::new(ContractOnly { name, title, host }))
}
