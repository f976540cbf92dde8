//! The plugin manifest, `policy.plugin.v1`.
//!
//! One manifest format serves every plugin of every domain. It holds the
//! fields every plugin has (identity, determinism, how it runs, what it may
//! do, its limits and params schema) and names its contract in `contract`.
//! Fields that only one domain understands (seed 000's
//! `supports_horizon_steps`, a strategy's `warmup_bars`) are kept, as
//! given, in [`Manifest::extensions`]; the contract that claims the
//! manifest checks them ([`crate::Contract::manifest_fields`]), so core
//! never knows a domain. Seed manifests that predate `contract` are claimed
//! by a field only their contract uses (seed 000's `input_schema_version`).
//!
//! [`Manifest::from_json`] parses and validates the common fields in one
//! step and reports every problem with the field it concerns, so a
//! researcher fixes a bad manifest in one pass.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::canonical::{self, CanonicalError, Digest};

/// The only manifest format version this build understands.
pub const MANIFEST_CONTRACT_VERSION: &str = "policy.plugin.v1";

/// Manifests larger than this are rejected before parsing.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A plugin manifest: the fields every plugin has, plus its contract's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    /// Manifest format version; must be `policy.plugin.v1`.
    pub contract_version: String,
    /// Globally unique plugin id, dot-separated lowercase segments such as
    /// `research.my_algo.v1`.
    pub plugin_id: String,
    /// The plugin's own version string, for example `1.0.0`.
    pub plugin_version: String,
    /// The external version name callers ask for, such as `rebal.greedy.v1`.
    /// A semantic change needs a new `policy_version`.
    pub policy_version: String,
    /// Strategy family name, for example `greedy.v1`.
    pub strategy: String,
    /// Human-readable name.
    pub display_name: String,
    /// What the policy does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Must be `true`: polis only runs deterministic policies.
    pub deterministic: bool,
    /// The contract the plugin implements, such as `rebalance.v1`. Seed
    /// manifests without it are claimed by their contract's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// How the plugin runs. Absent means a built-in policy compiled into
    /// polis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeSpec>,
    /// Capabilities the plugin asks for, such as `log:emit`. Unknown names
    /// are reported and never granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Per-run limits; absent fields take the host's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// JSON Schema (2020-12) the plugin's params must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<serde_json::Value>,
    /// Every other field, kept as given for the contract to check: the
    /// contract rejects the ones it does not know, by name.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// Where and how a plugin's code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// The execution tier.
    pub tier: TierKind,
    /// Tier-specific entry point: a `.wasm` file, a command line, or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// The execution tiers polis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    /// Rust code compiled into polis.
    Builtin,
    /// A WebAssembly module run in a sandbox.
    Wasm,
    /// A worker process speaking JSON-RPC 2.0 over stdio.
    Process,
    /// An HTTP endpoint.
    Remote,
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TierKind::Builtin => "builtin",
            TierKind::Wasm => "wasm",
            TierKind::Process => "process",
            TierKind::Remote => "remote",
        })
    }
}

/// Per-run limits a manifest may tighten. Every field is optional; the host
/// fills in its defaults and never loosens its own ceilings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget for one run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory budget, in mebibytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Largest serialised output, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// Largest number of output items (moves, intents, findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_items: Option<u64>,
}

/// One thing wrong with a manifest, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field path, such as `max_horizon_steps` or `limits.timeout_ms`.
    pub field: String,
    /// What is wrong, in lowercase without a trailing period.
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {size} bytes, larger than the {limit}-byte limit")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not JSON, or a field has the wrong type.
    #[error("manifest does not parse: {0}")]
    Parse(FieldProblem),
    /// The document parsed but breaks one or more rules.
    #[error("manifest is invalid: {}", list(.0))]
    Invalid(Vec<FieldProblem>),
}

impl ManifestError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ManifestError::TooLarge { .. } => "manifest.too_large",
            ManifestError::Parse(_) => "manifest.parse",
            ManifestError::Invalid(_) => "manifest.invalid",
        }
    }

    /// Every problem with the field it concerns.
    pub fn problems(&self) -> Vec<FieldProblem> {
        match self {
            ManifestError::TooLarge { size, limit } => {
                vec![FieldProblem { field: String::new(), message: format!("{size} bytes exceeds {limit}") }]
            }
            ManifestError::Parse(problem) => vec![problem.clone()],
            ManifestError::Invalid(problems) => problems.clone(),
        }
    }
}

fn list(problems: &[FieldProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl Manifest {
    /// Parses and validates a manifest from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::parse(bytes)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parses a manifest without checking its rules, so a caller can report
    /// the common fields' problems and its contract's fields' problems in
    /// one pass; [`Manifest::validate`] checks the rules.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { size: bytes.len(), limit: MAX_MANIFEST_BYTES });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            ManifestError::Parse(FieldProblem {
                field: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            })
        })?;
        de.end().map_err(|e| ManifestError::Parse(FieldProblem { field: String::new(), message: e.to_string() }))?;
        Ok(manifest)
    }

    /// Parses and validates a manifest from a JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Manifest, ManifestError> {
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| ManifestError::Parse(FieldProblem { field: String::new(), message: e.to_string() }))?;
        Manifest::from_json(&bytes)
    }

    /// Checks every rule a parsed manifest must satisfy, reporting all
    /// problems at once.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldProblem { field: field.to_owned(), message });
        };
        if self.contract_version != MANIFEST_CONTRACT_VERSION {
            problem(
                "contract_version",
                format!(
                    "unknown contract version `{}`; this build understands `{MANIFEST_CONTRACT_VERSION}`",
                    self.contract_version
                ),
            );
        }
        if let Err(why) = check_dotted_id(&self.plugin_id) {
            problem("plugin_id", format!("malformed plugin id `{}`: {why}", self.plugin_id));
        }
        if let Err(why) = check_dotted_id(&self.policy_version) {
            problem("policy_version", format!("malformed policy version `{}`: {why}", self.policy_version));
        }
        for (field, value) in [
            ("plugin_version", &self.plugin_version),
            ("strategy", &self.strategy),
            ("display_name", &self.display_name),
        ] {
            if value.trim().is_empty() {
                problem(field, "must not be empty".to_owned());
            } else if value.len() > 200 {
                problem(field, format!("is {} characters long; the limit is 200", value.len()));
            }
        }
        if !self.deterministic {
            problem(
                "deterministic",
                "must be `true`: polis only runs deterministic policies, randomness must come from the run seed"
                    .to_owned(),
            );
        }
        if let Some(contract) = &self.contract
            && let Err(why) = check_dotted_id(contract)
        {
            problem("contract", format!("malformed contract id `{contract}`: {why}"));
        }
        if let Some(limits) = &self.limits {
            for (field, value) in [
                ("limits.timeout_ms", limits.timeout_ms),
                ("limits.memory_mb", limits.memory_mb),
                ("limits.max_output_bytes", limits.max_output_bytes),
                ("limits.max_output_items", limits.max_output_items),
            ] {
                if value == Some(0) {
                    problem(field, "must be positive when given".to_owned());
                }
            }
        }
        if let Some(schema) = &self.params_schema
            && let Err(e) = jsonschema::draft202012::meta::validate(schema)
        {
            problem("params_schema", format!("is not a valid JSON Schema: {e}"));
        }
        if let Some(runtime) = &self.runtime
            && runtime.tier != TierKind::Builtin
            && runtime.entry.as_deref().is_none_or(str::is_empty)
        {
            problem("runtime.entry", format!("a `{}` plugin needs an entry point", runtime.tier));
        }
        for (i, name) in self.permissions.iter().enumerate() {
            if name.trim().is_empty() {
                problem(&format!("permissions[{i}]"), "must not be empty".to_owned());
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ManifestError::Invalid(problems)) }
    }

    /// The manifest hash: `SHA-256(JCS(manifest))` over the normalised
    /// document (absent optional fields omitted, defaults filled in).
    pub fn digest(&self) -> Result<Digest, CanonicalError> {
        canonical::digest_of(self)
    }

    /// The tier this manifest asks for; no `runtime` means built-in.
    pub fn tier(&self) -> TierKind {
        self.runtime.as_ref().map_or(TierKind::Builtin, |r| r.tier)
    }

    /// Decodes the contract-specific fields ([`Manifest::extensions`]) into
    /// `F`, naming the field of every problem. `F` decides what is unknown:
    /// with `#[serde(deny_unknown_fields)]` a misspelt field is an error
    /// that names it.
    pub fn parse_fields<F: DeserializeOwned>(&self) -> Result<F, Vec<FieldProblem>> {
        let object: serde_json::Map<String, serde_json::Value> =
            self.extensions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let value = serde_json::Value::Object(object);
        serde_path_to_error::deserialize::<_, F>(value).map_err(|e| {
            let path = e.path().to_string();
            vec![FieldProblem {
                field: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }]
        })
    }

    /// Replaces the contract-specific fields by `fields` as JSON (an object),
    /// so the manifest and its digest hold them normalised: defaults filled
    /// in, whatever order and spelling they arrived in.
    pub fn with_fields<F: Serialize>(mut self, fields: &F) -> Result<Manifest, FieldProblem> {
        let value = serde_json::to_value(fields)
            .map_err(|e| FieldProblem { field: String::new(), message: format!("fields do not serialise: {e}") })?;
        let serde_json::Value::Object(object) = value else {
            return Err(FieldProblem { field: String::new(), message: "contract fields must be a JSON object".into() });
        };
        self.extensions = object.into_iter().collect();
        Ok(self)
    }
}

/// Checks a dot-separated identifier such as `research.my_algo.v1`: two or
/// more segments of lowercase ASCII letters, digits, `_` or `-`, each
/// starting with a letter or digit, at most 128 characters in all.
pub fn check_dotted_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("it is empty".to_owned());
    }
    if id.len() > 128 {
        return Err(format!("it is {} characters long; the limit is 128", id.len()));
    }
    let segments: Vec<&str> = id.split('.').collect();
    if segments.len() < 2 {
        return Err("it needs at least two dot-separated segments, like `team.algo.v1`".to_owned());
    }
    for segment in segments {
        let Some(first) = segment.chars().next() else {
            return Err("it has an empty segment".to_owned());
        };
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(format!("segment `{segment}` must start with a lowercase letter or digit"));
        }
        if let Some(bad) =
            segment.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(format!("character `{bad}` is not allowed (use a-z, 0-9, `_`, `-`)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The seed's §12 example manifest, verbatim.
    fn seed_example() -> Value {
        json!({
            "contract_version": "policy.plugin.v1",
            "plugin_id": "research.baseline.shift.v1",
            "plugin_version": "1.0.0",
            "policy_version": "rebal.research.shift.v1",
            "strategy": "research.shift.v1",
            "display_name": "Research Shift Baseline",
            "deterministic": true,
            "supports_horizon_steps": false,
            "max_horizon_steps": 0,
            "requires_neighbor_graph": true,
            "input_schema_version": "policy.input.v1",
            "output_schema_version": "policy.output.v1",
        })
    }

    fn problems_for(mut patch: impl FnMut(&mut Value)) -> Vec<FieldProblem> {
        let mut doc = seed_example();
        patch(&mut doc);
        match Manifest::from_value(doc) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems(),
        }
    }

    fn fields(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn seed_example_loads_with_its_domain_fields_kept_as_extensions() {
        let manifest = Manifest::from_value(seed_example()).unwrap();
        assert_eq!(manifest.plugin_id, "research.baseline.shift.v1");
        assert_eq!(manifest.tier(), TierKind::Builtin);
        assert_eq!(manifest.contract, None);
        assert_eq!(manifest.extensions["input_schema_version"], json!("policy.input.v1"));
        assert_eq!(manifest.extensions.len(), 5);
    }

    #[test]
    fn serialising_keeps_every_field_of_the_document() {
        let manifest = Manifest::from_value(seed_example()).unwrap();
        assert_eq!(serde_json::to_value(&manifest).unwrap(), seed_example());
    }

    #[test]
    fn unknown_contract_version_names_the_field() {
        let problems = problems_for(|d| d["contract_version"] = json!("policy.plugin.v2"));
        assert_eq!(fields(&problems), ["contract_version"]);
        assert!(problems[0].message.contains("policy.plugin.v2"));
    }

    #[test]
    fn nondeterministic_manifest_is_rejected() {
        let problems = problems_for(|d| d["deterministic"] = json!(false));
        assert_eq!(fields(&problems), ["deterministic"]);
    }

    #[test]
    fn malformed_plugin_ids_are_rejected() {
        for bad in ["", "single", "Research.algo", "a..b", "a.b c", "a.b/c", ".a.b", "a.b."] {
            let problems = problems_for(|d| d["plugin_id"] = json!(bad));
            assert_eq!(fields(&problems), ["plugin_id"], "id {bad:?}");
        }
    }

    #[test]
    fn malformed_contract_id_names_the_field() {
        let problems = problems_for(|d| d["contract"] = json!("Rebalance"));
        assert_eq!(fields(&problems), ["contract"]);
    }

    #[test]
    fn wrong_type_of_a_common_field_names_the_field() {
        let problems = problems_for(|d| d["deterministic"] = json!("yes"));
        assert_eq!(fields(&problems), ["deterministic"]);
        let problems = problems_for(|d| d["limits"] = json!({"timeout_ms": "soon"}));
        assert_eq!(fields(&problems), ["limits.timeout_ms"]);
    }

    #[test]
    fn several_problems_are_reported_together() {
        let problems = problems_for(|d| {
            d["deterministic"] = json!(false);
            d["plugin_id"] = json!("BAD");
        });
        assert_eq!(fields(&problems), ["plugin_id", "deterministic"]);
    }

    #[test]
    fn non_builtin_runtime_needs_an_entry() {
        let problems = problems_for(|d| d["runtime"] = json!({"tier": "wasm"}));
        assert_eq!(fields(&problems), ["runtime.entry"]);
    }

    #[test]
    fn parse_fields_names_the_domain_field_at_fault() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only decoding is under test")]
        struct Domain {
            max_horizon_steps: i64,
            #[serde(default)]
            supports_horizon_steps: bool,
            #[serde(default)]
            requires_neighbor_graph: bool,
            input_schema_version: String,
            output_schema_version: String,
        }
        let manifest = Manifest::from_value(seed_example()).unwrap();
        assert!(manifest.parse_fields::<Domain>().is_ok());
        let mut doc = seed_example();
        doc["max_horizon_steps"] = json!("twelve");
        let problems = Manifest::from_value(doc).unwrap().parse_fields::<Domain>().unwrap_err();
        assert_eq!(fields(&problems), ["max_horizon_steps"]);
        let mut doc = seed_example();
        doc["determinstic"] = json!(true);
        let problems = Manifest::from_value(doc).unwrap().parse_fields::<Domain>().unwrap_err();
        assert!(problems[0].message.contains("determinstic"), "{problems:?}");
    }

    #[test]
    fn digest_ignores_key_order() {
        let a = Manifest::from_value(seed_example()).unwrap();
        let mut doc = seed_example();
        doc.as_object_mut().unwrap().remove("requires_neighbor_graph");
        doc["requires_neighbor_graph"] = json!(true);
        let b = Manifest::from_value(doc).unwrap();
        assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    }

    #[test]
    fn oversize_manifest_is_rejected_before_parsing() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(Manifest::from_json(&big), Err(ManifestError::TooLarge { .. })));
    }
}
