//! The echo contract's built-in policy, `echo.scale.v1`.

use std::sync::Arc;

use polis_core::manifest::{MANIFEST_CONTRACT_VERSION, Manifest};
use polis_core::policy::{Call, Policy, PolicyError};
use polis_core::registry::Registry;

use crate::{Echo, EchoOutput, scaled};

/// Scales every value by the params' scale and sums them.
pub struct Scale {
    manifest: Manifest,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            manifest: Manifest {
                contract_version: MANIFEST_CONTRACT_VERSION.to_owned(),
                plugin_id: "polis.echo.scale.v1".to_owned(),
                plugin_version: "1.0.0".to_owned(),
                policy_version: "echo.scale.v1".to_owned(),
                strategy: "scale.v1".to_owned(),
                display_name: "Echo, scaled".to_owned(),
                description: Some("Returns the input's values times the scale, and their sum.".to_owned()),
                author: Some("polis".to_owned()),
                deterministic: true,
                contract: Some("echo.v1".to_owned()),
                runtime: None,
                permissions: Vec::new(),
                limits: None,
                params_schema: None,
                extensions: Default::default(),
            },
        }
    }
}

impl Policy<Echo> for Scale {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn run(&self, call: &Call<'_, Echo>) -> Result<EchoOutput, PolicyError> {
        call.check_cancelled()?;
        let (values, sum) = scaled(call.input, call.params)
            .ok_or_else(|| PolicyError::Rejected("the scaled values overflow i64".to_owned()))?;
        Ok(EchoOutput { values, sum, notes: Vec::new() })
    }
}

/// A registry holding `echo.scale.v1`.
pub fn registry() -> Registry<Echo> {
    let mut registry = Registry::new();
    // The manifest is valid by construction; a failure would list the
    // plugin as disabled with its reason.
    let _ = registry.register(Arc::new(Scale::default()), None);
    registry
}
