//! A validated policy lowered to a compact evaluator.
//!
//! Nodes sit in one array per tree and branch by index; fields are enum
//! variants the caller's [`Context`] answers (so a simulator computes only
//! the fields a policy reads); parameters are folded into constants and
//! state registers into slots. Nothing at run time looks at JSON or a name.
//! The arithmetic is SimCash's (`interpreter.rs`), f64 throughout.

use std::fmt;
use std::sync::Arc;

use super::ast::*;
use super::fields::{Field, STATE_PREFIX};
use super::validate::compare;

/// What a tree reads while it evaluates.
pub trait Context {
    /// The value of a context field.
    fn field(&self, field: Field) -> f64;
    /// The value of state register `slot` (an index into
    /// [`CompiledPolicy::registers`]); an unset register is 0.
    fn register(&self, slot: usize) -> f64;
}

/// Why an evaluation failed at run time. Validation rules out every other
/// failure, so this is only SimCash's division by a computed zero.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A `/` met a denominator within `f64::EPSILON` of zero.
    #[error("division by zero at node `{node}`")]
    DivisionByZero {
        /// The node being evaluated.
        node: Arc<str>,
    },
}

#[derive(Clone, Debug)]
enum CVal {
    Const(f64),
    Field(Field),
    Register(usize),
    Bin(BinOp, Box<CVal>, Box<CVal>),
    Max(Box<[CVal]>),
    Min(Box<[CVal]>),
    Un(UnOp, Box<CVal>),
    Clamp(Box<[CVal; 3]>),
    Div0(Box<[CVal; 3]>),
}

#[derive(Clone, Debug)]
enum CExpr {
    Cmp(CmpOp, CVal, CVal),
    And(Box<[CExpr]>),
    Or(Box<[CExpr]>),
    Not(Box<CExpr>),
}

#[derive(Clone, Debug)]
enum CNode<A> {
    Condition { id: Arc<str>, test: CExpr, on_true: u32, on_false: u32 },
    Action { id: Arc<str>, action: A },
}

/// One compiled tree whose leaves are actions of type `A`.
#[derive(Clone, Debug)]
pub struct Tree<A> {
    nodes: Vec<CNode<A>>,
}

/// One step of a decision path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The node visited.
    pub node_id: Arc<str>,
    /// For a condition, its result; `None` for the action at the end.
    pub result: Option<bool>,
}

/// The nodes an evaluation visited, printed as SimCash prints them:
/// `N1(true) → N2(false) → A3`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionPath(pub Vec<Step>);

impl fmt::Display for DecisionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            match step.result {
                Some(result) => write!(f, "{}({result})", step.node_id)?,
                None => f.write_str(&step.node_id)?,
            }
        }
        Ok(())
    }
}

impl<A> Tree<A> {
    /// Every action the tree can reach, in node order.
    pub fn actions(&self) -> impl Iterator<Item = &A> {
        self.nodes.iter().filter_map(|n| match n {
            CNode::Action { action, .. } => Some(action),
            CNode::Condition { .. } => None,
        })
    }

    /// Walks the tree from the root; returns the action reached and, when
    /// `path` is given, records every node visited into it.
    pub fn evaluate<C: Context>(&self, ctx: &C, mut path: Option<&mut DecisionPath>) -> Result<&A, EvalError> {
        let mut at = 0usize;
        loop {
            match self.nodes.get(at) {
                Some(CNode::Condition { id, test, on_true, on_false }) => {
                    let result = eval_expr(test, ctx, id)?;
                    if let Some(path) = path.as_deref_mut() {
                        path.0.push(Step { node_id: id.clone(), result: Some(result) });
                    }
                    at = if result { *on_true } else { *on_false } as usize;
                }
                Some(CNode::Action { id, action }) => {
                    if let Some(path) = path.as_deref_mut() {
                        path.0.push(Step { node_id: id.clone(), result: None });
                    }
                    return Ok(action);
                }
                // Compilation only emits indices of nodes it pushed.
                None => unreachable_index(),
            }
        }
    }
}

#[expect(clippy::panic, reason = "compilation emits only valid node indices; reaching this is a bug")]
fn unreachable_index() -> ! {
    panic!("compiled tree branched to a node that does not exist")
}

/// A numeric action parameter, evaluated when the action is taken.
#[derive(Clone, Debug)]
pub struct Num(CVal);

impl Num {
    /// Evaluates the parameter.
    pub fn eval<C: Context>(&self, ctx: &C, node: &Arc<str>) -> Result<f64, EvalError> {
        eval_val(&self.0, ctx, node)
    }
}

/// A payment-tree action, with its parameters compiled.
#[derive(Clone, Debug)]
#[expect(missing_docs, reason = "fields are the SimCash action parameters of the same names")]
pub enum PaymentAction {
    /// `Release` or `ReleaseWithCredit` (SimCash treats them alike).
    Release { priority_flag: Option<u8>, timed_for_tick: Option<Num> },
    /// `Split` or `PaceAndRelease`.
    Split { num_splits: Num },
    /// `StaggerSplit`.
    StaggerSplit { num_splits: Num, stagger_first_now: Num, stagger_gap_ticks: Num, priority_boost_children: Num },
    /// `Hold`.
    Hold { reason: Arc<str> },
    /// `Drop`.
    Drop,
    /// `Reprioritize`.
    Reprioritize { new_priority: Num },
    /// `WithdrawFromRtgs`.
    WithdrawFromRtgs,
    /// `ResubmitToRtgs`.
    ResubmitToRtgs { rtgs_priority: Arc<str> },
}

/// A bank-tree action.
#[derive(Clone, Debug)]
#[expect(missing_docs, reason = "fields are the SimCash action parameters of the same names")]
pub enum BankAction {
    /// `SetReleaseBudget`.
    SetReleaseBudget {
        max_value_to_release: Num,
        focus_counterparties: Option<Vec<String>>,
        max_per_counterparty: Option<Num>,
    },
    /// `SetState`: register `slot` becomes `value`.
    SetState { slot: usize, value: Num },
    /// `AddState`: register `slot` grows by `value`.
    AddState { slot: usize, value: Num },
    /// `NoAction`.
    NoAction,
}

/// A collateral-tree action.
#[derive(Clone, Debug)]
#[expect(missing_docs, reason = "fields are the SimCash action parameters of the same names")]
pub enum CollateralAction {
    /// `PostCollateral`.
    Post { amount: Num, auto_withdraw_after_ticks: Option<Num> },
    /// `WithdrawCollateral`.
    Withdraw { amount: Num },
    /// `HoldCollateral`.
    Hold,
}

/// A policy ready to run: its trees compiled, its parameters folded in.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// `policy_id` (defaulted when the document has none).
    pub policy_id: String,
    /// The parameters after configuration overrides.
    pub parameters: std::collections::BTreeMap<String, f64>,
    /// State-register names, by slot.
    pub registers: Vec<String>,
    /// The context fields each tree reads, by [`TreeKind::index`], so a
    /// simulator can compute only those (or refuse fields it lacks).
    pub fields: [std::collections::BTreeSet<Field>; 4],
    /// `payment_tree`.
    pub payment: Option<Tree<PaymentAction>>,
    /// `bank_tree`.
    pub bank: Option<Tree<BankAction>>,
    /// `strategic_collateral_tree`.
    pub strategic_collateral: Option<Tree<CollateralAction>>,
    /// `end_of_tick_collateral_tree`.
    pub end_of_tick_collateral: Option<Tree<CollateralAction>>,
}

/// Why compilation refused a document (validation should have caught it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot compile {path}: {message}")]
pub struct CompileError {
    /// Where.
    pub path: String,
    /// What.
    pub message: String,
}

/// Lowers a document that passed validation.
pub(crate) fn compile(doc: &PolicyDoc, policy_id: String) -> Result<CompiledPolicy, CompileError> {
    let mut registers = Vec::new();
    for (_, root) in &doc.trees {
        collect_registers(root, &mut registers);
    }
    registers.sort();
    registers.dedup();
    let lower = Lower { params: &doc.parameters, registers: &registers };
    let mut policy = CompiledPolicy {
        policy_id,
        parameters: doc.parameters.clone(),
        registers: registers.clone(),
        fields: Default::default(),
        payment: None,
        bank: None,
        strategic_collateral: None,
        end_of_tick_collateral: None,
    };
    for (kind, root) in &doc.trees {
        if let Some(set) = policy.fields.get_mut(kind.index()) {
            collect_fields(root, set);
        }
        match kind {
            TreeKind::Payment => policy.payment = Some(lower.tree(root, &|n, a, p| lower.payment(n, a, p))?),
            TreeKind::Bank => policy.bank = Some(lower.tree(root, &|n, a, p| lower.bank(n, a, p))?),
            TreeKind::StrategicCollateral => {
                policy.strategic_collateral = Some(lower.tree(root, &|n, a, p| lower.collateral(n, a, p))?)
            }
            TreeKind::EndOfTickCollateral => {
                policy.end_of_tick_collateral = Some(lower.tree(root, &|n, a, p| lower.collateral(n, a, p))?)
            }
        }
    }
    Ok(policy)
}

fn collect_registers(node: &Node, out: &mut Vec<String>) {
    visit_values(node, &mut |value| {
        if let ValueKind::Field(name) = &value.kind
            && name.starts_with(STATE_PREFIX)
        {
            out.push(name.clone());
        }
    });
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match &node.body {
            NodeBody::Condition { on_true, on_false, .. } => {
                stack.push(on_true);
                stack.push(on_false);
            }
            NodeBody::Action { parameters, .. } => {
                if let Some(ActionParam::Text(key)) = parameters.get("key") {
                    out.push(key.clone());
                }
            }
            NodeBody::Invalid => {}
        }
    }
}

/// The context fields a tree reads (not counting state registers).
fn collect_fields(node: &Node, out: &mut std::collections::BTreeSet<Field>) {
    visit_values(node, &mut |value| {
        if let ValueKind::Field(name) = &value.kind
            && let Some(field) = Field::from_name(name)
        {
            out.insert(field);
        }
    });
}

/// Calls `f` on every value in the tree: in conditions, computations and
/// numeric action parameters.
fn visit_values(node: &Node, f: &mut dyn FnMut(&Value)) {
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match &node.body {
            NodeBody::Condition { condition, on_true, on_false } => {
                expr_values(condition, f);
                stack.push(on_true);
                stack.push(on_false);
            }
            NodeBody::Action { parameters, .. } => {
                for param in parameters.values() {
                    if let ActionParam::Number(v) = param {
                        value_values(v, f);
                    }
                }
            }
            NodeBody::Invalid => {}
        }
    }
}

fn expr_values(expr: &Expr, f: &mut dyn FnMut(&Value)) {
    match &expr.kind {
        ExprKind::Compare(_, l, r) => {
            value_values(l, f);
            value_values(r, f);
        }
        ExprKind::And(items) | ExprKind::Or(items) => items.iter().for_each(|e| expr_values(e, f)),
        ExprKind::Not(inner) => expr_values(inner, f),
        ExprKind::Invalid => {}
    }
}

fn value_values(value: &Value, f: &mut dyn FnMut(&Value)) {
    f(value);
    if let ValueKind::Compute(c) = &value.kind {
        match c.as_ref() {
            Compute::Binary(_, a, b) => {
                value_values(a, f);
                value_values(b, f);
            }
            Compute::Max(vs) | Compute::Min(vs) => vs.iter().for_each(|v| value_values(v, f)),
            Compute::Unary(_, v) => value_values(v, f),
            Compute::Clamp(a, b, c) | Compute::Div0(a, b, c) => {
                value_values(a, f);
                value_values(b, f);
                value_values(c, f);
            }
        }
    }
}

type ActionLower<'l, A> =
    dyn Fn(&Node, Action, &std::collections::BTreeMap<String, ActionParam>) -> Result<A, CompileError> + 'l;

struct Lower<'a> {
    params: &'a std::collections::BTreeMap<String, f64>,
    registers: &'a [String],
}

impl Lower<'_> {
    fn tree<A>(&self, root: &Node, action: &ActionLower<'_, A>) -> Result<Tree<A>, CompileError> {
        let mut nodes = Vec::new();
        self.node(root, action, &mut nodes)?;
        Ok(Tree { nodes })
    }

    /// Pushes `node` and its subtree in pre-order; returns its index.
    /// Depth is bounded by validation (at most 100 conditions).
    fn node<A>(
        &self,
        node: &Node,
        action: &ActionLower<'_, A>,
        nodes: &mut Vec<CNode<A>>,
    ) -> Result<u32, CompileError> {
        let index = u32::try_from(nodes.len()).map_err(|_| self.fail(node, "too many nodes"))?;
        let id: Arc<str> = Arc::from(node.id.as_str());
        match &node.body {
            NodeBody::Condition { condition, on_true, on_false } => {
                let test = self.expr(condition)?;
                nodes.push(CNode::Condition { id: id.clone(), test, on_true: 0, on_false: 0 });
                let t = self.node(on_true, action, nodes)?;
                let f = self.node(on_false, action, nodes)?;
                if let Some(CNode::Condition { on_true, on_false, .. }) = nodes.get_mut(index as usize) {
                    *on_true = t;
                    *on_false = f;
                }
            }
            NodeBody::Action { action: kind, parameters } => {
                let lowered = action(node, *kind, parameters)?;
                nodes.push(CNode::Action { id, action: lowered });
            }
            NodeBody::Invalid => return Err(self.fail(node, "malformed node")),
        }
        Ok(index)
    }

    fn payment(
        &self,
        node: &Node,
        action: Action,
        p: &std::collections::BTreeMap<String, ActionParam>,
    ) -> Result<PaymentAction, CompileError> {
        Ok(match action {
            Action::Release | Action::ReleaseWithCredit => PaymentAction::Release {
                priority_flag: match p.get("priority_flag") {
                    // SimCash maps HIGH/MEDIUM/LOW to 10/5/1, anything else to 5.
                    Some(ActionParam::Text(flag)) => Some(match flag.as_str() {
                        "HIGH" => 10,
                        "LOW" => 1,
                        _ => 5,
                    }),
                    _ => None,
                },
                timed_for_tick: self.opt_num(node, p, "timed_for_tick")?,
            },
            Action::Split | Action::PaceAndRelease => {
                PaymentAction::Split { num_splits: self.num(node, p, "num_splits")? }
            }
            Action::StaggerSplit => PaymentAction::StaggerSplit {
                num_splits: self.num(node, p, "num_splits")?,
                stagger_first_now: self.num(node, p, "stagger_first_now")?,
                stagger_gap_ticks: self.num(node, p, "stagger_gap_ticks")?,
                priority_boost_children: self.num(node, p, "priority_boost_children")?,
            },
            Action::Hold => PaymentAction::Hold {
                reason: match p.get("reason") {
                    Some(ActionParam::Text(r)) => Arc::from(r.as_str()),
                    _ => Arc::from("Policy decision"),
                },
            },
            Action::Drop => PaymentAction::Drop,
            Action::Reprioritize => PaymentAction::Reprioritize { new_priority: self.num(node, p, "new_priority")? },
            Action::WithdrawFromRtgs => PaymentAction::WithdrawFromRtgs,
            Action::ResubmitToRtgs => {
                PaymentAction::ResubmitToRtgs { rtgs_priority: self.text(node, p, "rtgs_priority")? }
            }
            other => return Err(self.fail(node, &format!("`{}` is not a payment action", other.name()))),
        })
    }

    fn bank(
        &self,
        node: &Node,
        action: Action,
        p: &std::collections::BTreeMap<String, ActionParam>,
    ) -> Result<BankAction, CompileError> {
        Ok(match action {
            Action::SetReleaseBudget => BankAction::SetReleaseBudget {
                max_value_to_release: self.num(node, p, "max_value_to_release")?,
                focus_counterparties: match p.get("focus_counterparties") {
                    Some(ActionParam::List(list)) if !list.is_empty() => Some(list.clone()),
                    _ => None,
                },
                max_per_counterparty: self.opt_num(node, p, "max_per_counterparty")?,
            },
            Action::SetState | Action::AddState => {
                let key = self.text(node, p, "key")?;
                let slot = self
                    .registers
                    .iter()
                    .position(|r| **r == *key)
                    .ok_or_else(|| self.fail(node, "state register not collected"))?;
                let value = self.num(node, p, "value")?;
                if action == Action::SetState {
                    BankAction::SetState { slot, value }
                } else {
                    BankAction::AddState { slot, value }
                }
            }
            // SimCash's fallback: any other action in a bank tree is NoAction
            // (validation warns about it).
            _ => BankAction::NoAction,
        })
    }

    fn collateral(
        &self,
        node: &Node,
        action: Action,
        p: &std::collections::BTreeMap<String, ActionParam>,
    ) -> Result<CollateralAction, CompileError> {
        Ok(match action {
            Action::PostCollateral => CollateralAction::Post {
                amount: self.num(node, p, "amount")?,
                auto_withdraw_after_ticks: self.opt_num(node, p, "auto_withdraw_after_ticks")?,
            },
            Action::WithdrawCollateral => CollateralAction::Withdraw { amount: self.num(node, p, "amount")? },
            Action::HoldCollateral => CollateralAction::Hold,
            other => return Err(self.fail(node, &format!("`{}` is not a collateral action", other.name()))),
        })
    }

    fn num(
        &self,
        node: &Node,
        p: &std::collections::BTreeMap<String, ActionParam>,
        name: &str,
    ) -> Result<Num, CompileError> {
        self.opt_num(node, p, name)?.ok_or_else(|| self.fail(node, &format!("missing `{name}`")))
    }

    fn opt_num(
        &self,
        node: &Node,
        p: &std::collections::BTreeMap<String, ActionParam>,
        name: &str,
    ) -> Result<Option<Num>, CompileError> {
        match p.get(name) {
            None => Ok(None),
            Some(ActionParam::Number(v)) => Ok(Some(Num(self.val(v)?))),
            Some(_) => Err(self.fail(node, &format!("`{name}` must be a number"))),
        }
    }

    fn text(
        &self,
        node: &Node,
        p: &std::collections::BTreeMap<String, ActionParam>,
        name: &str,
    ) -> Result<Arc<str>, CompileError> {
        match p.get(name) {
            Some(ActionParam::Text(t)) => Ok(Arc::from(t.as_str())),
            _ => Err(self.fail(node, &format!("`{name}` must be a string"))),
        }
    }

    fn expr(&self, expr: &Expr) -> Result<CExpr, CompileError> {
        Ok(match &expr.kind {
            ExprKind::Compare(op, l, r) => CExpr::Cmp(*op, self.val(l)?, self.val(r)?),
            ExprKind::And(items) => CExpr::And(items.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?),
            ExprKind::Or(items) => CExpr::Or(items.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?),
            ExprKind::Not(inner) => CExpr::Not(Box::new(self.expr(inner)?)),
            ExprKind::Invalid => {
                return Err(CompileError { path: expr.path.clone(), message: "malformed expression".into() });
            }
        })
    }

    fn val(&self, value: &Value) -> Result<CVal, CompileError> {
        let fail = |message: &str| CompileError { path: value.path.clone(), message: message.to_string() };
        Ok(match &value.kind {
            ValueKind::Literal(x) => CVal::Const(*x),
            ValueKind::Param(name) => CVal::Const(*self.params.get(name).ok_or_else(|| fail("unknown parameter"))?),
            ValueKind::Field(name) if name.starts_with(STATE_PREFIX) => CVal::Register(
                self.registers.iter().position(|r| r == name).ok_or_else(|| fail("register not collected"))?,
            ),
            ValueKind::Field(name) => CVal::Field(Field::from_name(name).ok_or_else(|| fail("unknown field"))?),
            ValueKind::Compute(c) => match c.as_ref() {
                Compute::Binary(op, a, b) => CVal::Bin(*op, Box::new(self.val(a)?), Box::new(self.val(b)?)),
                Compute::Max(vs) => CVal::Max(vs.iter().map(|v| self.val(v)).collect::<Result<_, _>>()?),
                Compute::Min(vs) => CVal::Min(vs.iter().map(|v| self.val(v)).collect::<Result<_, _>>()?),
                Compute::Unary(op, v) => CVal::Un(*op, Box::new(self.val(v)?)),
                Compute::Clamp(a, b, c) => CVal::Clamp(Box::new([self.val(a)?, self.val(b)?, self.val(c)?])),
                Compute::Div0(a, b, c) => CVal::Div0(Box::new([self.val(a)?, self.val(b)?, self.val(c)?])),
            },
            ValueKind::Invalid => return Err(fail("malformed value")),
        })
    }

    fn fail(&self, node: &Node, message: &str) -> CompileError {
        CompileError { path: node.path.clone(), message: message.to_string() }
    }
}

fn eval_expr<C: Context>(expr: &CExpr, ctx: &C, node: &Arc<str>) -> Result<bool, EvalError> {
    Ok(match expr {
        CExpr::Cmp(op, l, r) => {
            let l = eval_val(l, ctx, node)?;
            let r = eval_val(r, ctx, node)?;
            compare(*op, l, r)
        }
        CExpr::And(items) => {
            for item in items.iter() {
                if !eval_expr(item, ctx, node)? {
                    return Ok(false);
                }
            }
            true
        }
        CExpr::Or(items) => {
            for item in items.iter() {
                if eval_expr(item, ctx, node)? {
                    return Ok(true);
                }
            }
            false
        }
        CExpr::Not(inner) => !eval_expr(inner, ctx, node)?,
    })
}

fn eval_val<C: Context>(value: &CVal, ctx: &C, node: &Arc<str>) -> Result<f64, EvalError> {
    Ok(match value {
        CVal::Const(x) => *x,
        CVal::Field(f) => ctx.field(*f),
        CVal::Register(slot) => ctx.register(*slot),
        CVal::Bin(op, a, b) => {
            let a = eval_val(a, ctx, node)?;
            let b = eval_val(b, ctx, node)?;
            match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b.abs() < f64::EPSILON {
                        return Err(EvalError::DivisionByZero { node: node.clone() });
                    }
                    a / b
                }
            }
        }
        CVal::Max(vs) => {
            let mut best = f64::NEG_INFINITY;
            for v in vs.iter() {
                let x = eval_val(v, ctx, node)?;
                if x > best {
                    best = x;
                }
            }
            best
        }
        CVal::Min(vs) => {
            let mut best = f64::INFINITY;
            for v in vs.iter() {
                let x = eval_val(v, ctx, node)?;
                if x < best {
                    best = x;
                }
            }
            best
        }
        CVal::Un(op, v) => {
            let x = eval_val(v, ctx, node)?;
            match op {
                UnOp::Ceil => x.ceil(),
                UnOp::Floor => x.floor(),
                UnOp::Round => x.round(),
                UnOp::Abs => x.abs(),
            }
        }
        CVal::Clamp(parts) => {
            let [v, lo, hi] = parts.as_ref();
            let v = eval_val(v, ctx, node)?;
            let lo = eval_val(lo, ctx, node)?;
            let hi = eval_val(hi, ctx, node)?;
            v.max(lo).min(hi)
        }
        CVal::Div0(parts) => {
            let [n, d, default] = parts.as_ref();
            let n = eval_val(n, ctx, node)?;
            let d = eval_val(d, ctx, node)?;
            if d.abs() < 1e-9 { eval_val(default, ctx, node)? } else { n / d }
        }
    })
}
