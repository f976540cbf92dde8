//! The checks a parsed policy must pass before it runs, each reported with
//! its path. They follow SimCash's `validate_tree`
//! (`simulator/src/policy/tree/validation.rs`) and go further where SimCash
//! would only fail at run time (an action in the wrong tree, a transaction
//! field in a bank tree, a missing action parameter).

use std::collections::BTreeMap;

use super::ast::*;
use super::fields::{Field, STATE_PREFIX, Scope};
use super::problem::{ProblemKind as K, Report};

/// The deepest chain of condition nodes a tree may have (SimCash's
/// `MAX_TREE_DEPTH`).
pub const MAX_TREE_DEPTH: usize = 100;

/// Runs every check on `doc`, adding what it finds to `report`.
pub(crate) fn validate(doc: &PolicyDoc, report: &mut Report) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (kind, root) in &doc.trees {
        let depth = depth_of(root);
        if depth > MAX_TREE_DEPTH {
            report.error(
                K::ExcessiveDepth,
                &root.path,
                format!("`{}` nests {depth} conditions, more than the limit of {MAX_TREE_DEPTH}", kind.key()),
            );
        }
        let mut check = Checker { tree: *kind, params: &doc.parameters, report };
        check.node(root, &mut seen, true);
    }
}

fn depth_of(node: &Node) -> usize {
    // Iterative, so that validation never recurses deeper than parsing did.
    let mut deepest = 0;
    let mut stack = vec![(node, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        match &node.body {
            NodeBody::Condition { on_true, on_false, .. } => {
                stack.push((on_true, depth + 1));
                stack.push((on_false, depth + 1));
            }
            _ => deepest = deepest.max(depth),
        }
    }
    deepest
}

struct Checker<'a, 'r> {
    tree: TreeKind,
    params: &'a BTreeMap<String, f64>,
    report: &'r mut Report,
}

impl<'d> Checker<'_, '_> {
    fn node(&mut self, node: &'d Node, seen: &mut BTreeMap<&'d str, &'d str>, reachable: bool) {
        if !node.id.is_empty() {
            if let Some(first) = seen.get(node.id.as_str()) {
                self.report.error(
                    K::DuplicateNodeId,
                    &node.path,
                    format!("node id `{}` is already used at {first}", node.id),
                );
            } else {
                seen.insert(&node.id, &node.path);
            }
        }
        match &node.body {
            NodeBody::Condition { condition, on_true, on_false } => {
                self.expr(condition);
                let constant = const_bool(condition);
                self.node(on_true, seen, reachable && constant != Some(false));
                self.node(on_false, seen, reachable && constant != Some(true));
            }
            NodeBody::Action { action, parameters } => {
                if !reachable {
                    self.report.error(
                        K::UnreachableAction,
                        &node.path,
                        format!("action `{}` can never be reached: a condition above it is constant", node.id),
                    );
                }
                self.action(node, *action, parameters);
            }
            NodeBody::Invalid => {}
        }
    }

    fn action(&mut self, node: &Node, action: Action, parameters: &BTreeMap<String, ActionParam>) {
        if !action.allowed_in(self.tree) {
            let allowed: Vec<&str> = Action::ALL.iter().filter(|a| a.allowed_in(self.tree)).map(|a| a.name()).collect();
            let path = format!("{}.action", node.path);
            let message = format!(
                "`{}` cannot be taken in `{}` (allowed: {})",
                action.name(),
                self.tree.key(),
                allowed.join(", ")
            );
            if self.tree == TreeKind::Bank {
                // SimCash's `build_bank_decision` turns any other action into
                // `NoAction` (its corpus relies on it), so this only warns.
                self.report.warn(
                    K::ActionNotAllowed,
                    &path,
                    format!("{message}; it acts as `NoAction`, as in SimCash"),
                );
            } else {
                self.report.error(K::ActionNotAllowed, &path, message);
            }
            return;
        }
        let spec = action.params();
        for (name, kind, required) in spec {
            let ppath = format!("{}.parameters.{name}", node.path);
            match parameters.get(*name) {
                None if *required => self.report.error(
                    K::InvalidActionParameter,
                    &format!("{}.parameters", node.path),
                    format!("`{}` requires parameter `{name}`", action.name()),
                ),
                None => {}
                Some(param) => self.param(action, name, *kind, param, &ppath),
            }
        }
        for name in parameters.keys() {
            if !spec.iter().any(|(known, _, _)| known == name) {
                self.report.warn(
                    K::UnknownKey,
                    &format!("{}.parameters.{name}", node.path),
                    format!("`{}` does not read parameter `{name}` (SimCash ignores it)", action.name()),
                );
            }
        }
    }

    fn param(&mut self, action: Action, name: &str, kind: ParamKind, param: &ActionParam, path: &str) {
        match (kind, param) {
            (ParamKind::Number, ActionParam::Number(value)) => {
                self.value(value);
                if let (
                    Action::Split | Action::PaceAndRelease | Action::StaggerSplit,
                    "num_splits",
                    ValueKind::Literal(n),
                ) = (action, name, &value.kind)
                    && *n < 2.0
                {
                    self.report.error(K::InvalidActionParameter, path, "`num_splits` must be at least 2");
                }
            }
            (ParamKind::Text, ActionParam::Text(text)) => {
                if name == "rtgs_priority" && !["HighlyUrgent", "Urgent", "Normal"].contains(&text.as_str()) {
                    self.report.error(
                        K::InvalidActionParameter,
                        path,
                        format!("`rtgs_priority` must be `HighlyUrgent`, `Urgent` or `Normal`, not `{text}`"),
                    );
                }
                if name == "key" && !text.starts_with(STATE_PREFIX) {
                    self.report.error(
                        K::InvalidActionParameter,
                        path,
                        format!("state register `{text}` must start with `{STATE_PREFIX}`"),
                    );
                }
            }
            (ParamKind::List, ActionParam::List(_)) => {}
            (want, _) => {
                let want = match want {
                    ParamKind::Number => "a number, field, param or computation",
                    ParamKind::Text => "a literal string",
                    ParamKind::List => "a literal list of strings",
                };
                self.report.error(
                    K::InvalidActionParameter,
                    path,
                    format!("parameter `{name}` of `{}` must be {want}", action.name()),
                );
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Compare(_, left, right) => {
                self.value(left);
                self.value(right);
            }
            ExprKind::And(items) | ExprKind::Or(items) => items.iter().for_each(|e| self.expr(e)),
            ExprKind::Not(inner) => self.expr(inner),
            ExprKind::Invalid => {}
        }
    }

    fn value(&mut self, value: &Value) {
        match &value.kind {
            ValueKind::Field(name) => self.field(name, &value.path),
            ValueKind::Param(name) => {
                if !self.params.contains_key(name) {
                    let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                    let hint = if known.is_empty() { "none defined".to_string() } else { known.join(", ") };
                    self.report.error(
                        K::UnknownParameter,
                        &value.path,
                        format!("parameter `{name}` is not in `parameters` ({hint})"),
                    );
                }
            }
            ValueKind::Literal(_) | ValueKind::Invalid => {}
            ValueKind::Compute(compute) => self.compute(compute),
        }
    }

    fn compute(&mut self, compute: &Compute) {
        match compute {
            Compute::Binary(op, left, right) => {
                self.value(left);
                self.value(right);
                if let (BinOp::Div, ValueKind::Literal(x)) = (op, &right.kind)
                    && x.abs() < f64::EPSILON
                {
                    self.report.error(
                        K::ZeroDenominator,
                        &right.path,
                        "division by a literal zero (use `div0` for a default)",
                    );
                }
            }
            Compute::Max(values) | Compute::Min(values) => values.iter().for_each(|v| self.value(v)),
            Compute::Unary(_, v) => self.value(v),
            Compute::Clamp(a, b, c) | Compute::Div0(a, b, c) => {
                self.value(a);
                self.value(b);
                self.value(c);
            }
        }
    }

    fn field(&mut self, name: &str, path: &str) {
        if name.starts_with(STATE_PREFIX) {
            return;
        }
        match Field::from_name(name) {
            None => self.report.error(K::UnknownField, path, format!("unknown field `{name}`")),
            Some(field) if field.scope() == Scope::Transaction && self.tree != TreeKind::Payment => self.report.error(
                K::FieldNotInTree,
                path,
                format!(
                    "field `{name}` describes a payment and is only available in `payment_tree`, not `{}`",
                    self.tree.key()
                ),
            ),
            Some(_) => {}
        }
    }
}

/// The value of `expr` when it depends on literals only (no field, no
/// param, since a configuration may override params).
pub(crate) fn const_bool(expr: &Expr) -> Option<bool> {
    match &expr.kind {
        ExprKind::Compare(op, left, right) => Some(compare(*op, const_num(left)?, const_num(right)?)),
        ExprKind::And(items) => {
            let mut all = true;
            for item in items {
                match const_bool(item) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => all = false,
                }
            }
            all.then_some(true)
        }
        ExprKind::Or(items) => {
            let mut all = true;
            for item in items {
                match const_bool(item) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => all = false,
                }
            }
            all.then_some(false)
        }
        ExprKind::Not(inner) => const_bool(inner).map(|b| !b),
        ExprKind::Invalid => None,
    }
}

fn const_num(value: &Value) -> Option<f64> {
    match &value.kind {
        ValueKind::Literal(x) => Some(*x),
        _ => None,
    }
}

/// SimCash's comparison semantics (`interpreter.rs` `evaluate_expression`).
pub(crate) fn compare(op: CmpOp, l: f64, r: f64) -> bool {
    const EPS: f64 = 1e-9;
    match op {
        CmpOp::Eq => (l - r).abs() < EPS,
        CmpOp::Ne => (l - r).abs() >= EPS,
        CmpOp::Lt => l < r,
        CmpOp::Le => l <= r || (l - r).abs() < EPS,
        CmpOp::Gt => l > r,
        CmpOp::Ge => l >= r || (l - r).abs() < EPS,
    }
}
