//! A worker process behind the `Policy` trait of any contract.

use std::marker::PhantomData;

use polis_core::contract::Contract;
use polis_core::manifest::Manifest;
use polis_core::permission::{Grants, Permission};
use polis_core::policy::{Policy, PolicyError, RunControl, decode_reply, encode_request};
use polis_core::run::RunContext;

use crate::worker::ProcessPlugin;

/// A process plugin of contract `C`: sends the context (with
/// `context:read`), input and params as the `run` request's params and
/// decodes the result into the contract's output, which the runtime's guard
/// then validates like any built-in's.
pub struct ProcessPolicy<C: Contract> {
    plugin: ProcessPlugin,
    context_read: bool,
    _contract: PhantomData<fn() -> C>,
}

impl<C: Contract> ProcessPolicy<C> {
    /// Wraps a started plugin.
    pub fn new(plugin: ProcessPlugin) -> Self {
        let context_read = Grants::resolve(&plugin.manifest().permissions).allows(Permission::ContextRead);
        ProcessPolicy { plugin, context_read, _contract: PhantomData }
    }

    /// The plugin.
    pub fn plugin(&self) -> &ProcessPlugin {
        &self.plugin
    }
}

impl<C: Contract> Policy<C> for ProcessPolicy<C> {
    fn manifest(&self) -> &Manifest {
        self.plugin.manifest()
    }

    fn run(&self, ctx: &RunContext, input: &C::Input, params: &C::Params) -> Result<C::Output, PolicyError> {
        self.run_controlled(ctx, input, params, &RunControl::new())
    }

    fn run_controlled(
        &self,
        ctx: &RunContext,
        input: &C::Input,
        params: &C::Params,
        control: &RunControl,
    ) -> Result<C::Output, PolicyError> {
        let request = encode_request::<C>(ctx, input, params, self.context_read)?;
        let result = self.plugin.call_controlled(&request, control)?;
        decode_reply(&result, C::OUTPUT_SCHEMA_VERSION)
    }
}
