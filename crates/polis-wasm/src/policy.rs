//! A wasm module behind the `Policy` trait of any contract.

use std::marker::PhantomData;

use polis_core::contract::Contract;
use polis_core::manifest::Manifest;
use polis_core::permission::Permission;
use polis_core::policy::{Policy, PolicyError, decode_reply, encode_request};
use polis_core::run::RunContext;
use serde::Deserialize;

use crate::module::{RunControl, WasmModule};

/// The reply document of the ABI.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply<O> {
    #[serde(default = "Option::default")]
    ok: Option<O>,
    #[serde(default)]
    error: Option<GuestError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestError {
    kind: String,
    message: String,
}

/// A wasm plugin of contract `C`: encodes the context, input and params as
/// JSON, runs the module in a fresh instance, and decodes its output. The
/// runtime's guard then validates the output like any built-in's.
pub struct WasmPolicy<C: Contract> {
    module: WasmModule,
    _contract: PhantomData<fn() -> C>,
}

impl<C: Contract> WasmPolicy<C> {
    /// Wraps a loaded module.
    pub fn new(module: WasmModule) -> Self {
        WasmPolicy { module, _contract: PhantomData }
    }

    /// The module.
    pub fn module(&self) -> &WasmModule {
        &self.module
    }

    /// Like [`Policy::run`], cancellable through `control`.
    pub fn run_with(
        &self,
        ctx: &RunContext,
        input: &C::Input,
        params: &C::Params,
        control: &RunControl,
    ) -> Result<C::Output, PolicyError> {
        let with_context = self.module.grants().allows(Permission::ContextRead);
        let request = encode_request::<C>(ctx, input, params, with_context)?;
        let reply = self.module.call(&request, ctx.seed, control)?;
        decode::<C::Output>(&reply, C::OUTPUT_SCHEMA_VERSION)
    }
}

/// Decodes a reply, naming the JSON path of the first problem.
fn decode<O: serde::de::DeserializeOwned>(reply: &[u8], output_version: &str) -> Result<O, PolicyError> {
    let reply: Reply<O> = decode_reply(reply, output_version)?;
    match (reply.ok, reply.error) {
        (Some(output), None) => Ok(output),
        (None, Some(error)) if error.kind == "rejected" => Err(PolicyError::Rejected(error.message)),
        (None, Some(error)) => Err(PolicyError::Failed(format!("{} ({})", error.message, error.kind))),
        _ => Err(PolicyError::Failed("reply must hold exactly one of `ok` and `error`".to_owned())),
    }
}

impl<C: Contract> Policy<C> for WasmPolicy<C> {
    fn manifest(&self) -> &Manifest {
        self.module.manifest()
    }

    fn run(&self, ctx: &RunContext, input: &C::Input, params: &C::Params) -> Result<C::Output, PolicyError> {
        self.run_with(ctx, input, params, &RunControl::new())
    }

    fn run_controlled(
        &self,
        ctx: &RunContext,
        input: &C::Input,
        params: &C::Params,
        control: &RunControl,
    ) -> Result<C::Output, PolicyError> {
        self.run_with(ctx, input, params, control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(reply: &str) -> Result<Vec<u32>, PolicyError> {
        decode::<Vec<u32>>(reply.as_bytes(), "v1")
    }

    #[test]
    fn replies_decode_into_outputs_and_errors() {
        assert_eq!(check(r#"{"ok":[1,2]}"#), Ok(vec![1, 2]));
        assert_eq!(check(r#"{"error":{"kind":"rejected","message":"no"}}"#), Err(PolicyError::Rejected("no".into())));
        assert!(
            matches!(check(r#"{"error":{"kind":"failed","message":"boom"}}"#), Err(PolicyError::Failed(m)) if m.contains("boom"))
        );
    }

    #[test]
    fn bad_replies_say_what_is_wrong() {
        assert!(matches!(check("{\"ok\":[1,"), Err(PolicyError::Failed(m)) if m.contains("not valid JSON")));
        assert!(
            matches!(check(r#"{"ok":["x"]}"#), Err(PolicyError::Failed(m)) if m.contains("does not match `v1` at `ok[0]`"))
        );
        assert!(matches!(check(r#"{}"#), Err(PolicyError::Failed(m)) if m.contains("exactly one")));
        assert!(matches!(check(r#"{"ok":[1]} trailing"#), Err(PolicyError::Failed(_))));
    }
}
