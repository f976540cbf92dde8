//! Contracts: the typed, versioned agreement between a host and its
//! policies.
//!
//! A domain implements [`Contract`] once: its input, output and params
//! types and their JSON Schemas (2020-12, generated from the Rust types);
//! the *subject* that, with the policy version and spec hash, makes its run
//! key; the context a plugin sees; its own manifest fields; the permissions
//! and host capabilities it offers plugins; and a semantic validator that
//! checks an output against the input it answers. Every output from every
//! tier passes [`Contract::validate_output`] before anything is stored or
//! acted on.
//!
//! Core knows no contract. [`ContractInfo`] is the object-safe description
//! of one, so binaries can list, print and check every registered contract
//! without naming its types.

use std::fmt;

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use crate::canonical::Digest;
use crate::manifest::{FieldProblem, Manifest};
use crate::permission::{Capability, PermissionCatalog, PermissionGroup, PermissionSpec};
use crate::run::RunKey;

/// A versioned contract family, such as `rebalance.v1`.
pub trait Contract: Send + Sync + 'static {
    /// The contract id, such as `rebalance.v1`.
    const ID: &'static str;

    /// The request method a sandboxed plugin answers for one run. By
    /// default `run`.
    const METHOD: &'static str = "run";

    /// What messages call the output document, such as `policy.output.v1`.
    /// By default the contract id.
    const OUTPUT_DOCUMENT: &'static str = Self::ID;

    /// Permissions this contract's plugins may ask for, beyond the
    /// platform's (`log:emit`, `random`, `context:read`). By default none.
    const PERMISSIONS: &'static [PermissionSpec] = &[];

    /// Groups of this contract's permissions. By default none.
    const PERMISSION_GROUPS: &'static [PermissionGroup] = &[];

    /// Host methods this contract offers plugins, each behind one of its
    /// permissions. By default none.
    const CAPABILITIES: &'static [Capability] = &[];

    /// What a policy decides on.
    type Input: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// What a policy returns.
    type Output: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// Host-side configuration of a run that is not part of the input.
    type Params: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// What a run decides on besides its input; with the policy version and
    /// spec hash it makes the [`RunKey`]. Its fields are flattened into the
    /// key, so they must not be named `policy_version` or
    /// `policy_spec_sha256`.
    type Subject: Serialize + DeserializeOwned + JsonSchema + Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// What a plugin sees of the run besides its input (with `context:read`
    /// in the sandboxed tiers).
    type Context: Serialize + DeserializeOwned + JsonSchema + Clone + fmt::Debug + Send + Sync + 'static;
    /// The contract's own manifest fields, decoded and checked from
    /// [`Manifest::extensions`].
    type ManifestFields: Serialize + DeserializeOwned + JsonSchema + Clone + fmt::Debug + Send + Sync + 'static;

    /// Whether this contract claims `manifest`. By default: the manifest
    /// names it in `contract`. A contract whose seed manifests predate that
    /// field also claims manifests by one of its own fields.
    fn claims(manifest: &Manifest) -> bool {
        manifest.contract.as_deref() == Some(Self::ID)
    }

    /// Decodes and checks the contract's manifest fields, naming the field
    /// of every problem.
    fn manifest_fields(manifest: &Manifest) -> Result<Self::ManifestFields, Vec<FieldProblem>> {
        manifest.parse_fields()
    }

    /// The context a plugin sees for the run `key`, whose digest is
    /// `key_sha256` (the run's seed is [`crate::run::seed_of`] it).
    /// `request_id` is the caller's, when it gave one.
    fn context(key: &RunKey<Self::Subject>, key_sha256: &Digest, request_id: Option<&str>) -> Self::Context;

    /// What checking an input leaves behind for the policies that decide
    /// on it and for the output check, so a host validates each input once
    /// however many policies it runs (rebalancing keeps its validated
    /// network). `()` for a contract with nothing to keep.
    type Checked: Send + Sync + 'static;

    /// Checks an input before any policy sees it.
    fn check_input(input: &Self::Input, params: &Self::Params) -> Result<Self::Checked, Violations>;

    /// `SHA-256(JCS(input))`, the digest run records carry. The default
    /// writes the canonical form and hashes it; a contract whose inputs
    /// repeat a large part from call to call (rebalancing's neighbour graph)
    /// may reuse the hash state of that part, and must give the same digest.
    fn input_digest(input: &Self::Input) -> Result<Digest, crate::canonical::CanonicalError> {
        crate::canonical::digest_of(input)
    }

    /// Whether a plugin with these manifest fields may run this subject and
    /// input (a horizon it supports, features it requires). By default yes.
    fn admit(
        _fields: &Self::ManifestFields,
        _subject: &Self::Subject,
        _input: &Self::Input,
        _params: &Self::Params,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Checks an output against the input it answers (and what
    /// [`Contract::check_input`] kept of it): the contract's semantic rules
    /// beyond what the schema can say.
    fn validate_output(
        input: &Self::Input,
        params: &Self::Params,
        checked: &Self::Checked,
        output: &Self::Output,
    ) -> Result<(), Violations>;

    /// How many items (moves, intents, findings) an output holds, for the
    /// guard's item cap.
    fn output_items(output: &Self::Output) -> usize;
}

/// Every permission, group and capability the plugins of `C` may ask for.
pub fn permission_catalog<C: Contract>() -> PermissionCatalog {
    PermissionCatalog::with_domain(C::PERMISSIONS, C::PERMISSION_GROUPS, C::CAPABILITIES)
}

/// The JSON Schemas of a contract, keyed by part.
#[derive(Debug, Clone, Serialize)]
pub struct ContractSchemas {
    /// The contract id.
    pub contract: &'static str,
    /// Schema of the run context.
    pub context: serde_json::Value,
    /// Schema of the input document.
    pub input: serde_json::Value,
    /// Schema of the output document.
    pub output: serde_json::Value,
    /// Schema of the params.
    pub params: serde_json::Value,
    /// Schema of the run subject.
    pub subject: serde_json::Value,
    /// Schema of the contract's own manifest fields.
    pub manifest_fields: serde_json::Value,
}

/// Generates the schemas of a contract from its Rust types.
pub fn schemas<C: Contract>() -> ContractSchemas {
    ContractSchemas {
        contract: C::ID,
        context: schema_value::<C::Context>(),
        input: schema_value::<C::Input>(),
        output: schema_value::<C::Output>(),
        params: schema_value::<C::Params>(),
        subject: schema_value::<C::Subject>(),
        manifest_fields: schema_value::<C::ManifestFields>(),
    }
}

/// The 2020-12 JSON Schema of `T` as a JSON value.
pub fn schema_value<T: JsonSchema>() -> serde_json::Value {
    schemars::SchemaGenerator::default().into_root_schema_for::<T>().to_value()
}

/// Why a schema could not be compiled into a validator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {part} schema of `{contract}` does not compile: {message}")]
pub struct SchemaError {
    /// The contract.
    pub contract: String,
    /// Which part, such as `output` or `params`.
    pub part: &'static str,
    /// The compiler's message.
    pub message: String,
}

impl SchemaError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "contract.schema_invalid"
    }
}

/// Compiles a schema with every remote `$ref` refused, so validation never
/// reaches the network.
pub fn compile_schema(
    schema: &serde_json::Value,
    contract: &str,
    part: &'static str,
) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::draft202012::new(schema).map_err(|e| SchemaError {
        contract: contract.to_owned(),
        part,
        message: e.to_string(),
    })
}

/// An object-safe description of one contract, for binaries that list,
/// print and check every registered contract without naming its types.
#[derive(Clone, Copy)]
pub struct ContractInfo {
    /// The contract id.
    pub id: &'static str,
    /// Whether it claims a manifest ([`Contract::claims`]).
    pub claims: fn(&Manifest) -> bool,
    /// Checks a manifest's contract fields, returning them normalised as
    /// JSON ([`Contract::manifest_fields`]).
    pub check_manifest: fn(&Manifest) -> Result<serde_json::Value, Vec<FieldProblem>>,
    /// The contract's schemas.
    pub schemas: fn() -> ContractSchemas,
    /// Its permission catalog.
    pub permissions: fn() -> PermissionCatalog,
}

impl fmt::Debug for ContractInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractInfo").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ContractInfo {
    /// The description of `C`.
    pub fn of<C: Contract>() -> ContractInfo {
        ContractInfo {
            id: C::ID,
            claims: C::claims,
            check_manifest: |manifest| {
                let fields = C::manifest_fields(manifest)?;
                serde_json::to_value(&fields).map_err(|e| {
                    vec![FieldProblem { field: String::new(), message: format!("fields do not serialise: {e}") }]
                })
            },
            schemas: schemas::<C>,
            permissions: permission_catalog::<C>,
        }
    }

    /// The contract among `contracts` that claims `manifest`: the one it
    /// names, else the first whose own fields claim it. `Err` says which
    /// contracts this build knows.
    pub fn claiming<'a>(contracts: &'a [ContractInfo], manifest: &Manifest) -> Result<&'a ContractInfo, FieldProblem> {
        if let Some(named) = &manifest.contract {
            return contracts.iter().find(|c| c.id == named).ok_or_else(|| FieldProblem {
                field: "contract".to_owned(),
                message: format!("unknown contract `{named}`; this build knows {}", known(contracts)),
            });
        }
        contracts.iter().find(|c| (c.claims)(manifest)).ok_or_else(|| FieldProblem {
            field: "contract".to_owned(),
            message: format!("no contract claims this manifest; name one of {} in `contract`", known(contracts)),
        })
    }
}

fn known(contracts: &[ContractInfo]) -> String {
    contracts.iter().map(|c| format!("`{}`", c.id)).collect::<Vec<_>>().join(", ")
}

/// One broken rule, with the JSON path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// A stable code, such as `move.not_neighbor`.
    pub code: &'static str,
    /// Where, as a path into the document, such as `moves[2].bikes_moved`.
    pub path: String,
    /// What is wrong, lowercase without a trailing period.
    pub message: String,
}

impl Violation {
    /// Builds a violation.
    pub fn new(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { code, path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} [{}]", self.message, self.code)
        } else {
            write!(f, "`{}`: {} [{}]", self.path, self.message, self.code)
        }
    }
}

/// A non-empty list of violations, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct Violations(pub Vec<Violation>);

/// At most this many violations are spelled out in a message; the rest are
/// counted.
const SHOWN: usize = 5;

fn summary(list: &[Violation]) -> String {
    let mut text = list.iter().take(SHOWN).map(ToString::to_string).collect::<Vec<_>>().join("; ");
    if list.len() > SHOWN {
        text.push_str(&format!("; and {} more", list.len() - SHOWN));
    }
    text
}

impl Violations {
    /// Collects violations, returning `Ok` when there are none.
    pub fn check(list: Vec<Violation>) -> Result<(), Violations> {
        if list.is_empty() { Ok(()) } else { Err(Violations(list)) }
    }

    /// One violation.
    pub fn one(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Violations {
        Violations(vec![Violation::new(code, path, message)])
    }

    /// The first violation's code.
    pub fn first_code(&self) -> &'static str {
        self.0.first().map_or("contract.violation", |v| v.code)
    }
}
