//! What validation found: every problem with the JSON path it sits at.

use std::fmt;

use serde::Serialize;

/// The kind of a problem. Its `code()` is stable and appears in `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The text is not JSON, or nests deeper than the parser allows.
    InvalidJson,
    /// The text is larger than [`super::Limits::max_bytes`] or has more
    /// nodes than [`super::Limits::max_nodes`].
    TooLarge,
    /// A node, expression or value does not have the shape the DSL defines.
    MalformedNode,
    /// Two nodes share a `node_id` (across all trees).
    DuplicateNodeId,
    /// A tree nests more than 100 condition nodes.
    ExcessiveDepth,
    /// A `field` that SimCash's context does not define.
    UnknownField,
    /// A transaction field read outside `payment_tree`.
    FieldNotInTree,
    /// A `param` that `parameters` does not define.
    UnknownParameter,
    /// A `/` whose denominator is a literal zero.
    ZeroDenominator,
    /// An action no evaluation can reach (a constant condition leads away).
    UnreachableAction,
    /// An action that the tree it sits in cannot take.
    ActionNotAllowed,
    /// An action lacks a parameter it requires, or has one of the wrong type.
    InvalidActionParameter,
    /// A key SimCash does not read; SimCash ignores it, so polis warns.
    UnknownKey,
}

impl ProblemKind {
    /// The stable code, as in `--json` output.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::InvalidJson => "invalid_json",
            ProblemKind::TooLarge => "too_large",
            ProblemKind::MalformedNode => "malformed_node",
            ProblemKind::DuplicateNodeId => "duplicate_node_id",
            ProblemKind::ExcessiveDepth => "excessive_depth",
            ProblemKind::UnknownField => "unknown_field",
            ProblemKind::FieldNotInTree => "field_not_in_tree",
            ProblemKind::UnknownParameter => "unknown_parameter",
            ProblemKind::ZeroDenominator => "zero_denominator",
            ProblemKind::UnreachableAction => "unreachable_action",
            ProblemKind::ActionNotAllowed => "action_not_allowed",
            ProblemKind::InvalidActionParameter => "invalid_action_parameter",
            ProblemKind::UnknownKey => "unknown_key",
        }
    }
}

/// One problem: its kind, where it is (`$.payment_tree.on_true.condition`)
/// and what is wrong, in words.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The JSON path of the offending value, `$` being the policy document.
    pub path: String,
    /// What is wrong, lowercase, user input in backticks.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.path, self.message, self.kind.code())
    }
}

/// Everything validation found. A policy is usable when `errors` is empty;
/// `warnings` name keys SimCash would silently ignore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Problems that stop the policy from running.
    pub errors: Vec<Problem>,
    /// Keys SimCash ignores; harmless, but probably a typo.
    pub warnings: Vec<Problem>,
}

impl Report {
    /// Records an error.
    pub(crate) fn error(&mut self, kind: ProblemKind, path: &str, message: impl Into<String>) {
        self.errors.push(Problem { kind, path: path.to_string(), message: message.into() });
    }

    /// Records a warning.
    pub(crate) fn warn(&mut self, kind: ProblemKind, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem { kind, path: path.to_string(), message: message.into() });
    }

    /// True when nothing stops the policy from running.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}
