//! Contracts: the typed, versioned agreement between a host and its
//! policies.
//!
//! A domain implements [`Contract`] once: its input, output and params
//! types, their JSON Schemas (2020-12, generated from the Rust types), and a
//! semantic validator that checks an output against the input it answers.
//! Every output from every tier passes [`Contract::validate_output`] before
//! anything is stored or acted on.

use std::fmt;

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

/// A versioned contract family, such as `rebalance.v1`.
pub trait Contract: Send + Sync + 'static {
    /// The contract id, such as `rebalance.v1`.
    const ID: &'static str;
    /// The input document version a manifest names, such as
    /// `policy.input.v1`.
    const INPUT_SCHEMA_VERSION: &'static str;
    /// The output document version a manifest names.
    const OUTPUT_SCHEMA_VERSION: &'static str;

    /// What a policy decides on.
    type Input: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// What a policy returns.
    type Output: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;
    /// Host-side configuration of a run that is not part of the input.
    type Params: Serialize + DeserializeOwned + JsonSchema + Default + Send + Sync + 'static;

    /// Checks an input before any policy sees it.
    fn validate_input(input: &Self::Input, params: &Self::Params) -> Result<(), Violations>;

    /// Checks an output against the input it answers: the contract's
    /// semantic rules beyond what the schema can say.
    fn validate_output(input: &Self::Input, params: &Self::Params, output: &Self::Output) -> Result<(), Violations>;

    /// How many items (moves, intents, findings) an output holds, for the
    /// guard's item cap.
    fn output_items(output: &Self::Output) -> usize;
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
}

/// Generates the schemas of a contract from its Rust types.
pub fn schemas<C: Contract>() -> ContractSchemas {
    ContractSchemas {
        contract: C::ID,
        context: schema_value::<crate::run::RunContext>(),
        input: schema_value::<C::Input>(),
        output: schema_value::<C::Output>(),
        params: schema_value::<C::Params>(),
    }
}

/// The 2020-12 JSON Schema of `T` as a JSON value.
pub fn schema_value<T: JsonSchema>() -> serde_json::Value {
    schemars::SchemaGenerator::default().into_root_schema_for::<T>().to_value()
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

    /// The first violation's code.
    pub fn first_code(&self) -> &'static str {
        self.0.first().map_or("contract.violation", |v| v.code)
    }
}
