//! The policy document as parsed: SimCash's decision-tree DSL
//! (`simulator/src/policy/tree/types.rs`) with the JSON path of every part,
//! so that validation can say where each problem is.
//!
//! A part that did not parse is kept as an `Invalid` placeholder, so that
//! one malformed node does not hide the problems in the rest of the policy.

use std::collections::BTreeMap;

/// The four trees a policy may define, in the order SimCash evaluates them
/// within a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeKind {
    /// `bank_tree`: once per agent per tick, budgets and state registers.
    Bank,
    /// `payment_tree`: once per queued payment, release or hold.
    Payment,
    /// `strategic_collateral_tree`: before settlement, post or withdraw.
    StrategicCollateral,
    /// `end_of_tick_collateral_tree`: after settlement, post or withdraw.
    EndOfTickCollateral,
}

impl TreeKind {
    /// Every tree, in document order of SimCash's examples.
    pub const ALL: [TreeKind; 4] =
        [TreeKind::Payment, TreeKind::Bank, TreeKind::StrategicCollateral, TreeKind::EndOfTickCollateral];

    /// The tree's key in policy JSON.
    pub fn key(self) -> &'static str {
        match self {
            TreeKind::Bank => "bank_tree",
            TreeKind::Payment => "payment_tree",
            TreeKind::StrategicCollateral => "strategic_collateral_tree",
            TreeKind::EndOfTickCollateral => "end_of_tick_collateral_tree",
        }
    }

    /// A dense index, for arrays of per-tree data.
    pub fn index(self) -> usize {
        match self {
            TreeKind::Payment => 0,
            TreeKind::Bank => 1,
            TreeKind::StrategicCollateral => 2,
            TreeKind::EndOfTickCollateral => 3,
        }
    }
}

/// A parsed policy document.
#[derive(Clone, Debug)]
pub struct PolicyDoc {
    /// `version`, a free string.
    pub version: String,
    /// `policy_id`, if given.
    pub policy_id: Option<String>,
    /// `description`, if given.
    pub description: Option<String>,
    /// `parameters`: named constants the trees read with `{"param": …}`.
    pub parameters: BTreeMap<String, f64>,
    /// The trees present, in [`TreeKind::ALL`] order.
    pub trees: Vec<(TreeKind, Node)>,
}

/// A tree node.
#[derive(Clone, Debug)]
pub struct Node {
    /// `node_id` (empty when missing, which is reported).
    pub id: String,
    /// Where the node is.
    pub path: String,
    /// What the node does.
    pub body: NodeBody,
}

/// A condition or an action.
#[derive(Clone, Debug)]
pub enum NodeBody {
    /// Evaluate `condition`, then continue with one branch.
    Condition {
        /// The test.
        condition: Expr,
        /// Taken when the test holds.
        on_true: Box<Node>,
        /// Taken otherwise.
        on_false: Box<Node>,
    },
    /// A leaf: the decision.
    Action {
        /// Which action.
        action: Action,
        /// Its parameters, by name.
        parameters: BTreeMap<String, ActionParam>,
    },
    /// A node that did not parse (already reported).
    Invalid,
}

/// A boolean expression.
#[derive(Clone, Debug)]
pub struct Expr {
    /// Where the expression is.
    pub path: String,
    /// What it computes.
    pub kind: ExprKind,
}

/// The comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`, within ε = 1e-9.
    Eq,
    /// `!=`, at least ε apart.
    Ne,
    /// `<`.
    Lt,
    /// `<=`, or within ε.
    Le,
    /// `>`.
    Gt,
    /// `>=`, or within ε.
    Ge,
}

/// The shapes of an expression.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// `left op right`.
    Compare(CmpOp, Value, Value),
    /// All of, left to right, stopping at the first false; empty is true.
    And(Vec<Expr>),
    /// Any of, left to right, stopping at the first true; empty is false.
    Or(Vec<Expr>),
    /// The negation.
    Not(Box<Expr>),
    /// An expression that did not parse (already reported).
    Invalid,
}

/// A numeric value.
#[derive(Clone, Debug)]
pub struct Value {
    /// Where the value is.
    pub path: String,
    /// What it is.
    pub kind: ValueKind,
}

/// The shapes of a value.
#[derive(Clone, Debug)]
pub enum ValueKind {
    /// `{"field": name}`: read from the evaluation context.
    Field(String),
    /// `{"param": name}`: a policy parameter.
    Param(String),
    /// `{"value": x}`: a number, or a bool read as 1 or 0.
    Literal(f64),
    /// `{"compute": …}`: arithmetic.
    Compute(Box<Compute>),
    /// A value that did not parse (already reported).
    Invalid,
}

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`: a denominator within `f64::EPSILON` of zero fails the evaluation.
    Div,
}

/// Unary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `ceil`.
    Ceil,
    /// `floor`.
    Floor,
    /// `round`, half away from zero.
    Round,
    /// `abs`.
    Abs,
}

/// The shapes of a computation.
#[derive(Clone, Debug)]
pub enum Compute {
    /// `+ - * /` over `left` and `right`.
    Binary(BinOp, Value, Value),
    /// `max` over `values` (never empty after validation).
    Max(Vec<Value>),
    /// `min` over `values` (never empty after validation).
    Min(Vec<Value>),
    /// `ceil`, `floor`, `round`, `abs` of `value`.
    Unary(UnOp, Value),
    /// `clamp`: `value.max(min).min(max)`.
    Clamp(Value, Value, Value),
    /// `div0`: `numerator / denominator`, or `default` when the denominator
    /// is within 1e-9 of zero.
    Div0(Value, Value, Value),
}

/// An action parameter as written.
#[derive(Clone, Debug)]
pub enum ActionParam {
    /// A number: a literal, field, param or computation.
    Number(Value),
    /// `{"value": "text"}`.
    Text(String),
    /// `{"value": ["a", "b"]}`.
    List(Vec<String>),
    /// `{"value": true}`, which no action parameter accepts.
    Bool(bool),
}

/// The kind of value an action parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A number (literal, field, param or computation).
    Number,
    /// A literal string.
    Text,
    /// A literal list of strings.
    List,
}

macro_rules! actions {
    ($( $var:ident = $name:literal in [$($tree:ident),*] { $($param:literal : $kind:ident $req:ident),* } ),* $(,)?) => {
        /// An action, by SimCash's name (`ActionType`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[expect(missing_docs, reason = "each variant is the SimCash action its name() gives")]
        pub enum Action { $($var),* }

        impl Action {
            /// Every action.
            pub const ALL: &'static [Action] = &[$(Action::$var),*];

            /// The action's name in policy JSON.
            pub fn name(self) -> &'static str {
                match self { $(Action::$var => $name),* }
            }

            /// The action called `name`.
            pub fn from_name(name: &str) -> Option<Action> {
                match name { $($name => Some(Action::$var),)* _ => None }
            }

            /// Whether a tree of this kind may take the action.
            pub fn allowed_in(self, tree: TreeKind) -> bool {
                match self { $(Action::$var => matches!(tree, $(TreeKind::$tree)|*)),* }
            }

            /// The parameters SimCash reads for this action:
            /// `(name, kind, required)`.
            pub fn params(self) -> &'static [(&'static str, ParamKind, bool)] {
                match self { $(Action::$var => &[$(($param, ParamKind::$kind, actions!(@req $req))),*]),* }
            }
        }
    };
    (@req required) => { true };
    (@req optional) => { false };
}

actions! {
    Release = "Release" in [Payment] { "priority_flag": Text optional, "timed_for_tick": Number optional },
    ReleaseWithCredit = "ReleaseWithCredit" in [Payment] { "priority_flag": Text optional, "timed_for_tick": Number optional },
    Split = "Split" in [Payment] { "num_splits": Number required },
    PaceAndRelease = "PaceAndRelease" in [Payment] { "num_splits": Number required },
    StaggerSplit = "StaggerSplit" in [Payment] {
        "num_splits": Number required, "stagger_first_now": Number required,
        "stagger_gap_ticks": Number required, "priority_boost_children": Number required
    },
    Hold = "Hold" in [Payment] { "reason": Text optional },
    Drop = "Drop" in [Payment] {},
    Reprioritize = "Reprioritize" in [Payment] { "new_priority": Number required },
    WithdrawFromRtgs = "WithdrawFromRtgs" in [Payment] {},
    ResubmitToRtgs = "ResubmitToRtgs" in [Payment] { "rtgs_priority": Text required },
    SetReleaseBudget = "SetReleaseBudget" in [Bank] {
        "max_value_to_release": Number required, "focus_counterparties": List optional,
        "max_per_counterparty": Number optional
    },
    SetState = "SetState" in [Bank] { "key": Text required, "value": Number required, "reason": Text optional },
    AddState = "AddState" in [Bank] { "key": Text required, "value": Number required, "reason": Text optional },
    NoAction = "NoAction" in [Bank] {},
    PostCollateral = "PostCollateral" in [StrategicCollateral, EndOfTickCollateral] {
        "amount": Number required, "reason": Text optional, "auto_withdraw_after_ticks": Number optional
    },
    WithdrawCollateral = "WithdrawCollateral" in [StrategicCollateral, EndOfTickCollateral] {
        "amount": Number required, "reason": Text optional
    },
    HoldCollateral = "HoldCollateral" in [StrategicCollateral, EndOfTickCollateral] {},
}
