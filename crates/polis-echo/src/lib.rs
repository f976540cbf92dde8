//! `echo.v1`: the smallest contract that uses every part of polis's domain
//! seam, so the seam is tested by a domain that is not rebalancing.
//!
//! A policy gets a list of integers and a scale and returns the scaled list
//! and its sum; the validator checks both against the input. The contract
//! has its own run subject (a label), context, manifest fields (none: an
//! unknown one is an error naming it), a permission (`echo:note`) and one
//! capability behind it (`echo.note`, which a sandboxed plugin calls back on
//! the host). [`builtins`] holds `echo.scale.v1`; [`NoteBook`] is a host that
//! answers `echo.note`.
//!
//! It ships with polis so that `polis plugins list`, `polis contract schema
//! echo.v1`, `polis run`, the generic `POST /api/runs` route and `polis
//! worker` can be tried on a contract other than rebalancing, and its tests
//! run every tier through the same seam.
//!
//! # Example
//!
//! ```
//! use polis_echo::{EchoInput, EchoParams, EchoSubject};
//! use polis_runtime::{Decision, Host, HostLimits};
//!
//! let host = Host::new(polis_echo::builtins::registry(), HostLimits::default()).unwrap();
//! let subject = EchoSubject { label: "demo".into() };
//! let input = EchoInput { values: vec![1, 2, 3] };
//! let params = EchoParams { scale: 2 };
//! let record = host.decide("echo.scale.v1", &Decision::new(&subject, &input, &params)).unwrap();
//! assert_eq!(record.output.values, [2, 4, 6]);
//! assert_eq!(record.output.sum, 12);
//! ```
#![deny(missing_docs)]

pub mod builtins;
pub mod conformance;

use std::sync::Mutex;

use polis_core::canonical::Digest;
use polis_core::contract::{Contract, Violation, Violations};
use polis_core::permission::{Capability, PermissionSpec};
use polis_core::policy::{HostApi, HostCallError};
use polis_core::run::{RunKey, seed_of};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most values an input may hold.
pub const MAX_VALUES: usize = 10_000;

/// Most notes one run may take through `echo.note`.
pub const MAX_NOTES: usize = 100;

/// The echo contract.
pub struct Echo;

/// What a run echoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// The values to scale, at most 10,000.
    pub values: Vec<i64>,
}

/// How to echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoParams {
    /// Every value is multiplied by this.
    pub scale: i64,
}

/// What a policy returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoOutput {
    /// The input's values times the scale, in order.
    pub values: Vec<i64>,
    /// Their sum.
    pub sum: i64,
    /// What the plugin noted through `echo.note`, in order.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// What a run is about besides its input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoSubject {
    /// A name for the run.
    pub label: String,
}

/// What a plugin sees of its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoContext {
    /// The run's label.
    pub label: String,
    /// The caller's request id, or `echo-` and 16 hex digits of the key.
    pub request_id: String,
    /// The run's seed.
    pub seed: u64,
}

/// The contract's manifest fields: there are none, so any field core does
/// not know is an error naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoManifest {}

/// `echo:note`: call `echo.note` on the host.
pub const NOTE: &str = "echo:note";

impl Contract for Echo {
    const ID: &'static str = "echo.v1";
    const PERMISSIONS: &'static [PermissionSpec] =
        &[PermissionSpec { name: NOTE, doc: "leave notes with the host through `echo.note`" }];
    const CAPABILITIES: &'static [Capability] = &[Capability {
        method: "echo.note",
        permission: NOTE,
        doc: "`{\"text\": s}` → `{\"noted\": s, \"count\": n}`: the host keeps the note and counts them",
    }];

    type Input = EchoInput;
    type Output = EchoOutput;
    type Params = EchoParams;
    type Subject = EchoSubject;
    type Context = EchoContext;
    type ManifestFields = EchoManifest;

    fn context(key: &RunKey<EchoSubject>, key_sha256: &Digest, request_id: Option<&str>) -> EchoContext {
        EchoContext {
            label: key.subject.label.clone(),
            request_id: request_id.map_or_else(|| polis_core::run::request_id("echo", key_sha256), str::to_owned),
            seed: seed_of(key_sha256),
        }
    }

    /// The expected answer, `(scaled values, sum)`, worked out once when
    /// the input is checked.
    type Checked = (Vec<i64>, i64);

    fn check_input(input: &EchoInput, params: &EchoParams) -> Result<(Vec<i64>, i64), Violations> {
        let mut found = Vec::new();
        if input.values.len() > MAX_VALUES {
            found.push(Violation::new(
                "echo.too_many_values",
                "values",
                format!("{} values exceed the limit of {MAX_VALUES}", input.values.len()),
            ));
        }
        let expected = scaled(input, params);
        if expected.is_none() {
            found.push(Violation::new("echo.overflow", "params.scale", "the scaled values or their sum overflow i64"));
        }
        Violations::check(found)?;
        expected.ok_or_else(|| Violations::one("echo.overflow", "params.scale", "the scaled values overflow i64"))
    }

    fn validate_output(
        _input: &EchoInput,
        _params: &EchoParams,
        (values, sum): &(Vec<i64>, i64),
        output: &EchoOutput,
    ) -> Result<(), Violations> {
        let mut found = Vec::new();
        if output.values.len() != values.len() {
            found.push(Violation::new(
                "echo.length",
                "values",
                format!("{} values for an input of {}", output.values.len(), values.len()),
            ));
        }
        for (i, (got, want)) in output.values.iter().zip(values).enumerate() {
            if got != want {
                found.push(Violation::new("echo.value", format!("values[{i}]"), format!("is {got}, expected {want}")));
            }
        }
        if output.sum != *sum {
            found.push(Violation::new("echo.sum", "sum", format!("is {}, expected {sum}", output.sum)));
        }
        if output.notes.len() > MAX_NOTES {
            found.push(Violation::new("echo.notes", "notes", format!("more than {MAX_NOTES} notes")));
        }
        Violations::check(found)
    }

    fn output_items(output: &EchoOutput) -> usize {
        output.values.len()
    }
}

/// The scaled values and their sum, or `None` on overflow.
pub fn scaled(input: &EchoInput, params: &EchoParams) -> Option<(Vec<i64>, i64)> {
    let values: Option<Vec<i64>> = input.values.iter().map(|v| v.checked_mul(params.scale)).collect();
    let values = values?;
    let sum = values.iter().try_fold(0i64, |acc, v| acc.checked_add(*v))?;
    Some((values, sum))
}

/// A host that answers `echo.note`: it keeps every note, in order.
#[derive(Debug, Default)]
pub struct NoteBook {
    notes: Mutex<Vec<String>>,
}

impl NoteBook {
    /// The notes taken so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

impl HostApi for NoteBook {
    fn call(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostCallError> {
        if method != "echo.note" {
            return Err(HostCallError::UnknownMethod(method.to_owned()));
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Note {
            text: String,
        }
        let note: Note = serde_json::from_slice(params)
            .map_err(|e| HostCallError::BadParams { method: method.to_owned(), message: e.to_string() })?;
        let mut notes = self.notes.lock().map_err(|_| HostCallError::Refused {
            method: method.to_owned(),
            message: "the note book is poisoned".into(),
        })?;
        if notes.len() >= MAX_NOTES {
            return Err(HostCallError::Refused {
                method: method.to_owned(),
                message: format!("more than {MAX_NOTES} notes"),
            });
        }
        notes.push(note.text.clone());
        serde_json::to_vec(&serde_json::json!({"noted": note.text, "count": notes.len()}))
            .map_err(|e| HostCallError::Refused { method: method.to_owned(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_catches_a_wrong_value_and_sum() {
        let input = EchoInput { values: vec![1, 2] };
        let params = EchoParams { scale: 3 };
        let good = EchoOutput { values: vec![3, 6], sum: 9, notes: vec![] };
        let checked = Echo::check_input(&input, &params).unwrap();
        assert!(Echo::validate_output(&input, &params, &checked, &good).is_ok());
        let bad = EchoOutput { values: vec![3, 7], sum: 10, notes: vec![] };
        let codes: Vec<&str> =
            Echo::validate_output(&input, &params, &checked, &bad).unwrap_err().0.iter().map(|v| v.code).collect();
        assert_eq!(codes, ["echo.value", "echo.sum"]);
    }

    #[test]
    fn an_overflowing_scale_is_an_invalid_input_naming_the_param() {
        let error = Echo::check_input(&EchoInput { values: vec![i64::MAX] }, &EchoParams { scale: 2 }).unwrap_err();
        assert_eq!(error.0[0].path, "params.scale");
    }

    #[test]
    fn an_unknown_manifest_field_is_refused_by_name() {
        let manifest = polis_core::Manifest::from_value(serde_json::json!({
            "contract_version": "policy.plugin.v1", "plugin_id": "t.echo.v1", "plugin_version": "1",
            "policy_version": "t.echo.v1", "strategy": "echo", "display_name": "t", "deterministic": true,
            "contract": "echo.v1", "max_horizon_steps": 3,
        }))
        .unwrap();
        let problems = Echo::manifest_fields(&manifest).unwrap_err();
        assert!(problems[0].message.contains("max_horizon_steps"), "{problems:?}");
    }

    #[test]
    fn the_note_book_keeps_notes_and_refuses_bad_params() {
        let book = NoteBook::default();
        assert_eq!(book.call("echo.note", br#"{"text":"hi"}"#).unwrap(), br#"{"count":1,"noted":"hi"}"#);
        assert!(matches!(book.call("echo.note", b"{}"), Err(HostCallError::BadParams { .. })));
        assert_eq!(book.notes(), ["hi"]);
    }
}
