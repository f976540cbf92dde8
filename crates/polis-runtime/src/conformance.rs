//! What `polis plugin test` and `polis plugin new` need from a contract,
//! and the conformance check itself.
//!
//! A contract that implements [`Conformance`] gives the fixtures a plugin of
//! it must pass and the starting code of a new plugin in each language; the
//! CLI does the rest the same way for every contract: load the plugin,
//! decide every fixture twice through the guard (schema and semantic
//! validation, limits), require the same output hash both times and the
//! hash in `expected/<fixture>.sha256` when the plugin directory has one.

use std::path::Path;

use polis_core::contract::Contract;
use serde::Serialize;

use crate::host::{Decision, Host};
use crate::parity::Case;

/// A contract's conformance fixtures and plugin templates.
pub trait Conformance: Contract + Sized {
    /// The cases every plugin of the contract must decide validly and
    /// deterministically, each named.
    fn fixtures() -> Vec<Case<Self>>;

    /// How `polis plugin new` starts a plugin of this contract.
    fn scaffold() -> Scaffold;
}

/// The languages `polis plugin new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Python 3, process tier.
    Python,
    /// TypeScript compiled by `tsc`, run by Node.js, process tier.
    Typescript,
    /// Rust compiled to wasm32, wasm tier.
    Rust,
}

/// How a contract's new plugins start.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The policy version is this prefix plus the plugin id without its
    /// first segment: `rebal.` makes `research.my_algo.v1` answer
    /// `rebal.my_algo.v1`.
    pub policy_version_prefix: &'static str,
    /// The contract's own manifest fields a new plugin starts with, as a
    /// JSON object; `contract` is set by the CLI.
    pub manifest_fields: serde_json::Value,
    /// The code files of a new Python plugin, `(path, text)`:
    /// `plugin.py` and `test_plugin.py`. The CLI adds the SDK and the
    /// manifest.
    pub python: &'static [(&'static str, &'static str)],
    /// Those of a TypeScript plugin: `decide.ts`, `plugin.ts` and
    /// `decide.test.mjs`; the CLI adds the SDK and the build files.
    pub typescript: &'static [(&'static str, &'static str)],
    /// Those of a Rust plugin: `src/lib.rs`; the CLI adds the vendored guest
    /// SDK and `Cargo.toml`.
    pub rust: &'static [(&'static str, &'static str)],
}

impl Scaffold {
    /// The code files of a new plugin in `language`.
    pub fn files(&self, language: Language) -> &'static [(&'static str, &'static str)] {
        match language {
            Language::Python => self.python,
            Language::Typescript => self.typescript,
            Language::Rust => self.rust,
        }
    }
}

/// How one fixture went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixtureResult {
    /// The fixture's name.
    pub fixture: String,
    /// The output hash, when the plugin decided.
    pub output_sha256: Option<String>,
    /// What is wrong; empty when the fixture passed.
    pub problems: Vec<String>,
}

/// Decides every fixture of `C` twice with `policy_version` and checks the
/// outputs against each other and against `expected/<fixture>.sha256` in
/// `dir`, when present.
pub fn check<C: Conformance>(host: &Host<C>, policy_version: &str, dir: &Path) -> Vec<FixtureResult> {
    C::fixtures()
        .into_iter()
        .map(|fixture| {
            let decision = Decision::new(&fixture.subject, &fixture.input, &fixture.params);
            let mut problems = Vec::new();
            let mut output_sha256 = None;
            match (host.decide(policy_version, &decision), host.decide(policy_version, &decision)) {
                (Ok(a), Ok(b)) => {
                    output_sha256 = Some(a.output_sha256.to_hex());
                    if a.output_sha256 != b.output_sha256 {
                        problems.push(format!(
                            "nondeterministic: two runs gave outputs {} and {}",
                            a.output_sha256.to_hex(),
                            b.output_sha256.to_hex()
                        ));
                    }
                    let expected = dir.join("expected").join(format!("{}.sha256", fixture.label));
                    if let Ok(text) = std::fs::read_to_string(&expected)
                        && text.trim() != a.output_sha256.to_hex()
                    {
                        problems.push(format!(
                            "output {} differs from the expected {}",
                            a.output_sha256.to_hex(),
                            text.trim()
                        ));
                    }
                }
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{e} [{}]", e.code())),
            }
            FixtureResult { fixture: fixture.label, output_sha256, problems }
        })
        .collect()
}
