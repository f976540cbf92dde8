//! SimCash's payment-policy DSL: JSON decision trees, validated before use
//! and compiled to an evaluator.
//!
//! [`check`] parses and validates, collecting every problem with its JSON
//! path; [`compile`] does the same and returns a [`CompiledPolicy`];
//! [`PolicyCache`] keeps compiled policies by the RFC 8785 hash of the
//! document and its parameter overrides, so the same policy injected by a
//! thousand agents or sweep points compiles once.

pub mod ast;
pub mod compile;
pub mod fields;
mod parse;
pub mod problem;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use polis_core::canonical::{self, Digest};
use serde_json::Value as Json;

pub use compile::{
    BankAction, CollateralAction, CompiledPolicy, Context, DecisionPath, EvalError, Num, PaymentAction, Step, Tree,
};
pub use fields::Field;
pub use problem::{Problem, ProblemKind, Report};

/// Bounds on what a policy document may be, so that a hostile one cannot
/// exhaust the host. Beyond these, SimCash's own limit applies: at most
/// [`validate::MAX_TREE_DEPTH`] nested conditions per tree, and the JSON
/// parser's nesting limit of 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest policy text accepted, in bytes. By default 1 MiB (the
    /// largest policy in SimCash's corpus is 19 KiB).
    pub max_bytes: usize,
    /// The most nodes (conditions and actions, over all trees). By default
    /// 10,000.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 1 << 20, max_nodes: 10_000 }
    }
}

/// A policy that passed validation, with what validation warned about.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The compiled policy.
    pub policy: Arc<CompiledPolicy>,
    /// `SHA-256(JCS({"policy": document, "params": overrides}))`, the cache key.
    pub digest: Digest,
    /// Warnings (keys SimCash ignores).
    pub warnings: Vec<Problem>,
}

/// Parses and validates policy text; the report lists every problem.
pub fn check(text: &str) -> Report {
    let mut report = Report::default();
    if let Some(doc) = parse::parse_text(text, &Limits::default(), &mut report) {
        validate::validate(&doc, &mut report);
    }
    report
}

/// Parses, validates and compiles policy text, with configuration-level
/// `params` overriding (or adding to) the document's `parameters`.
pub fn compile(text: &str, overrides: &BTreeMap<String, f64>) -> Result<Checked, Report> {
    let limits = Limits::default();
    let mut report = Report::default();
    let json: Json = match parse_json(text, &limits, &mut report) {
        Some(json) => json,
        None => return Err(report),
    };
    compile_value_with(&json, overrides, &limits, report)
}

/// Like [`compile`], for a document already decoded (SimCash's
/// `Inline {decision_trees}`).
pub fn compile_value(json: &Json, overrides: &BTreeMap<String, f64>) -> Result<Checked, Report> {
    compile_value_with(json, overrides, &Limits::default(), Report::default())
}

fn parse_json(text: &str, limits: &Limits, report: &mut Report) -> Option<Json> {
    if text.len() > limits.max_bytes {
        report.error(
            ProblemKind::TooLarge,
            "$",
            format!("policy is {} bytes, more than the limit of {}", text.len(), limits.max_bytes),
        );
        return None;
    }
    match serde_json::from_str(text) {
        Ok(json) => Some(json),
        Err(e) => {
            report.error(ProblemKind::InvalidJson, "$", format!("not valid JSON: {e}"));
            None
        }
    }
}

fn compile_value_with(
    json: &Json,
    overrides: &BTreeMap<String, f64>,
    limits: &Limits,
    mut report: Report,
) -> Result<Checked, Report> {
    let digest = cache_key(json, overrides, &mut report)?;
    let Some(mut doc) = parse::parse_value(json, limits, &mut report) else {
        return Err(report);
    };
    for (name, value) in overrides {
        doc.parameters.insert(name.clone(), *value);
    }
    validate::validate(&doc, &mut report);
    if !report.is_ok() {
        return Err(report);
    }
    let policy_id = doc.policy_id.clone().unwrap_or_else(|| format!("policy_{}", &digest.to_hex()[..12]));
    match compile::compile(&doc, policy_id) {
        Ok(policy) => Ok(Checked { policy: Arc::new(policy), digest, warnings: report.warnings }),
        Err(e) => {
            report.error(ProblemKind::MalformedNode, &e.path, e.message);
            Err(report)
        }
    }
}

fn cache_key(json: &Json, overrides: &BTreeMap<String, f64>, report: &mut Report) -> Result<Digest, Report> {
    let key = serde_json::json!({ "policy": json, "params": overrides });
    canonical::digest_of(&key).map_err(|e| {
        report.error(ProblemKind::InvalidJson, "$", e.to_string());
        std::mem::take(report)
    })
}

/// Compiled policies by content hash. Cloning shares the cache.
#[derive(Clone, Debug, Default)]
pub struct PolicyCache {
    entries: Arc<Mutex<BTreeMap<Digest, Checked>>>,
}

impl PolicyCache {
    /// An empty cache.
    pub fn new() -> Self {
        PolicyCache::default()
    }

    /// The compiled form of `json` with `overrides`, compiling it only the
    /// first time its hash is seen. Failures are not cached.
    pub fn get_or_compile(&self, json: &Json, overrides: &BTreeMap<String, f64>) -> Result<Checked, Report> {
        let mut report = Report::default();
        let digest = cache_key(json, overrides, &mut report)?;
        if let Some(hit) = self.lock().get(&digest) {
            return Ok(hit.clone());
        }
        let checked = compile_value(json, overrides)?;
        self.lock().insert(digest, checked.clone());
        Ok(checked)
    }

    /// How many compiled policies the cache holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Digest, Checked>> {
        // A panic while holding the lock leaves the map consistent (inserts
        // are single calls), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
