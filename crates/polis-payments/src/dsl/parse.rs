//! From JSON to [`PolicyDoc`], reporting every malformed part with its path.
//!
//! The JSON is first read into a `serde_json::Value` (whose parser refuses
//! nesting deeper than 128, which bounds every recursion below), then walked
//! by hand. Keys SimCash reads are checked for shape; keys it ignores are
//! kept as warnings, because SimCash's serde types ignore them too.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::Limits;
use super::ast::*;
use super::problem::{ProblemKind as K, Report};

/// Parses policy text. Returns the document (possibly with `Invalid`
/// placeholders) when the text is JSON at all.
pub(crate) fn parse_text(text: &str, limits: &Limits, report: &mut Report) -> Option<PolicyDoc> {
    if text.len() > limits.max_bytes {
        report.error(
            K::TooLarge,
            "$",
            format!("policy is {} bytes, more than the limit of {}", text.len(), limits.max_bytes),
        );
        return None;
    }
    let json: Json = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => {
            report.error(K::InvalidJson, "$", format!("not valid JSON: {e}"));
            return None;
        }
    };
    parse_value(&json, limits, report)
}

/// Parses an already-decoded policy document.
pub(crate) fn parse_value(json: &Json, limits: &Limits, report: &mut Report) -> Option<PolicyDoc> {
    let Some(obj) = json.as_object() else {
        report.error(K::MalformedNode, "$", format!("a policy must be a JSON object, not {}", kind_of(json)));
        return None;
    };
    let mut parser = Parser { report, nodes: 0, limits, stopped: false };
    Some(parser.doc(obj))
}

struct Parser<'a> {
    report: &'a mut Report,
    nodes: usize,
    limits: &'a Limits,
    stopped: bool,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "policy_id",
    "description",
    "parameters",
    "payment_tree",
    "bank_tree",
    "strategic_collateral_tree",
    "end_of_tick_collateral_tree",
];

impl Parser<'_> {
    fn doc(&mut self, obj: &Map<String, Json>) -> PolicyDoc {
        self.unknown_keys("$", obj, TOP_KEYS);
        let version = match obj.get("version") {
            Some(Json::String(v)) => v.clone(),
            Some(other) => {
                self.malformed("$.version", format!("`version` must be a string, not {}", kind_of(other)));
                String::new()
            }
            None => {
                self.malformed("$", "missing `version`");
                String::new()
            }
        };
        let policy_id = self.optional_string(obj, "policy_id", "$.policy_id");
        let description = self.optional_string(obj, "description", "$.description");
        let mut parameters = BTreeMap::new();
        match obj.get("parameters") {
            None | Some(Json::Null) => {}
            Some(Json::Object(map)) => {
                for (name, value) in map {
                    match value.as_f64() {
                        Some(number) => {
                            parameters.insert(name.clone(), number);
                        }
                        None => self.malformed(
                            &format!("$.parameters.{name}"),
                            format!("parameter `{name}` must be a number, not {}", kind_of(value)),
                        ),
                    }
                }
            }
            Some(other) => {
                self.malformed("$.parameters", format!("`parameters` must be an object, not {}", kind_of(other)))
            }
        }
        let mut trees = Vec::new();
        for kind in TreeKind::ALL {
            match obj.get(kind.key()) {
                None | Some(Json::Null) => {}
                Some(node) => {
                    let path = format!("$.{}", kind.key());
                    trees.push((kind, self.node(node, &path)));
                }
            }
        }
        PolicyDoc { version, policy_id, description, parameters, trees }
    }

    fn node(&mut self, json: &Json, path: &str) -> Node {
        let invalid = |id: String| Node { id, path: path.to_string(), body: NodeBody::Invalid };
        if self.stopped {
            return invalid(String::new());
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            self.report.error(K::TooLarge, path, format!("policy has more than {} nodes", self.limits.max_nodes));
            self.stopped = true;
            return invalid(String::new());
        }
        let Some(obj) = json.as_object() else {
            self.malformed(path, format!("a node must be an object, not {}", kind_of(json)));
            return invalid(String::new());
        };
        let id = match obj.get("node_id") {
            Some(Json::String(id)) => id.clone(),
            Some(other) => {
                self.malformed(
                    &format!("{path}.node_id"),
                    format!("`node_id` must be a string, not {}", kind_of(other)),
                );
                String::new()
            }
            None => {
                self.malformed(path, "node has no `node_id`");
                String::new()
            }
        };
        match obj.get("type").and_then(Json::as_str) {
            Some("condition") => {
                self.unknown_keys(path, obj, &["type", "node_id", "description", "condition", "on_true", "on_false"]);
                let condition = match obj.get("condition") {
                    Some(c) => self.expr(c, &format!("{path}.condition")),
                    None => {
                        self.malformed(path, format!("condition node `{id}` has no `condition`"));
                        Expr { path: format!("{path}.condition"), kind: ExprKind::Invalid }
                    }
                };
                let on_true = self.branch(obj, "on_true", path, &id);
                let on_false = self.branch(obj, "on_false", path, &id);
                Node {
                    id,
                    path: path.to_string(),
                    body: NodeBody::Condition { condition, on_true: Box::new(on_true), on_false: Box::new(on_false) },
                }
            }
            Some("action") => {
                self.unknown_keys(path, obj, &["type", "node_id", "description", "action", "parameters"]);
                let action = match obj.get("action") {
                    Some(Json::String(name)) => match Action::from_name(name) {
                        Some(action) => action,
                        None => {
                            self.malformed(&format!("{path}.action"), format!("unknown action `{name}`"));
                            return invalid(id);
                        }
                    },
                    Some(other) => {
                        self.malformed(
                            &format!("{path}.action"),
                            format!("`action` must be a string, not {}", kind_of(other)),
                        );
                        return invalid(id);
                    }
                    None => {
                        self.malformed(path, format!("action node `{id}` has no `action`"));
                        return invalid(id);
                    }
                };
                let mut parameters = BTreeMap::new();
                match obj.get("parameters") {
                    None | Some(Json::Null) => {}
                    Some(Json::Object(map)) => {
                        for (name, value) in map {
                            let ppath = format!("{path}.parameters.{name}");
                            if let Some(param) = self.action_param(value, &ppath) {
                                parameters.insert(name.clone(), param);
                            }
                        }
                    }
                    Some(other) => self.malformed(
                        &format!("{path}.parameters"),
                        format!("`parameters` must be an object, not {}", kind_of(other)),
                    ),
                }
                Node { id, path: path.to_string(), body: NodeBody::Action { action, parameters } }
            }
            Some(other) => {
                self.malformed(
                    &format!("{path}.type"),
                    format!("node type must be `condition` or `action`, not `{other}`"),
                );
                invalid(id)
            }
            None => {
                self.malformed(path, "node has no `type` (`condition` or `action`)");
                invalid(id)
            }
        }
    }

    fn branch(&mut self, obj: &Map<String, Json>, key: &str, path: &str, id: &str) -> Node {
        let bpath = format!("{path}.{key}");
        match obj.get(key) {
            Some(child) => self.node(child, &bpath),
            None => {
                self.malformed(path, format!("condition node `{id}` has no `{key}`"));
                Node { id: String::new(), path: bpath, body: NodeBody::Invalid }
            }
        }
    }

    fn expr(&mut self, json: &Json, path: &str) -> Expr {
        let kind = self.expr_kind(json, path);
        Expr { path: path.to_string(), kind }
    }

    fn expr_kind(&mut self, json: &Json, path: &str) -> ExprKind {
        let Some(obj) = json.as_object() else {
            self.malformed(path, format!("an expression must be an object, not {}", kind_of(json)));
            return ExprKind::Invalid;
        };
        let Some(op) = obj.get("op").and_then(Json::as_str) else {
            self.malformed(path, "expression has no `op`");
            return ExprKind::Invalid;
        };
        let cmp = match op {
            "==" => Some(CmpOp::Eq),
            "!=" => Some(CmpOp::Ne),
            "<" => Some(CmpOp::Lt),
            "<=" => Some(CmpOp::Le),
            ">" => Some(CmpOp::Gt),
            ">=" => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(cmp) = cmp {
            self.unknown_keys(path, obj, &["op", "left", "right"]);
            let left = self.operand(obj, "left", path);
            let right = self.operand(obj, "right", path);
            return ExprKind::Compare(cmp, left, right);
        }
        match op {
            "and" | "or" => {
                self.unknown_keys(path, obj, &["op", "conditions"]);
                let Some(list) = obj.get("conditions").and_then(Json::as_array) else {
                    self.malformed(path, format!("`{op}` needs a `conditions` array"));
                    return ExprKind::Invalid;
                };
                let items =
                    list.iter().enumerate().map(|(i, c)| self.expr(c, &format!("{path}.conditions[{i}]"))).collect();
                if op == "and" { ExprKind::And(items) } else { ExprKind::Or(items) }
            }
            "not" => {
                self.unknown_keys(path, obj, &["op", "condition"]);
                match obj.get("condition") {
                    Some(c) => ExprKind::Not(Box::new(self.expr(c, &format!("{path}.condition")))),
                    None => {
                        self.malformed(path, "`not` needs a `condition`");
                        ExprKind::Invalid
                    }
                }
            }
            other => {
                self.malformed(&format!("{path}.op"), format!("unknown operator `{other}`"));
                ExprKind::Invalid
            }
        }
    }

    fn operand(&mut self, obj: &Map<String, Json>, key: &str, path: &str) -> Value {
        let vpath = format!("{path}.{key}");
        match obj.get(key) {
            Some(v) => self.value(v, &vpath),
            None => {
                self.malformed(path, format!("missing `{key}`"));
                Value { path: vpath, kind: ValueKind::Invalid }
            }
        }
    }

    fn value(&mut self, json: &Json, path: &str) -> Value {
        let kind = self.value_kind(json, path);
        Value { path: path.to_string(), kind }
    }

    /// The single tag among `field`, `param`, `value` and `compute`.
    fn value_tag<'j>(&mut self, obj: &'j Map<String, Json>, path: &str) -> Option<(&'static str, &'j Json)> {
        let tags: Vec<(&'static str, &Json)> = ["field", "param", "value", "compute"]
            .into_iter()
            .filter_map(|tag| obj.get(tag).map(|v| (tag, v)))
            .collect();
        match tags.as_slice() {
            [one] => {
                self.unknown_keys(path, obj, &[one.0]);
                Some(*one)
            }
            [] => {
                self.malformed(path, "a value needs one of `field`, `param`, `value` or `compute`");
                None
            }
            _ => {
                let names: Vec<String> = tags.iter().map(|(t, _)| format!("`{t}`")).collect();
                self.malformed(path, format!("a value takes exactly one of its forms, not {}", names.join(" and ")));
                None
            }
        }
    }

    fn value_kind(&mut self, json: &Json, path: &str) -> ValueKind {
        let Some(obj) = json.as_object() else {
            self.malformed(path, format!("a value must be an object, not {}", kind_of(json)));
            return ValueKind::Invalid;
        };
        let Some((tag, inner)) = self.value_tag(obj, path) else {
            return ValueKind::Invalid;
        };
        let ipath = format!("{path}.{tag}");
        match tag {
            "field" | "param" => match inner.as_str() {
                Some(name) if tag == "field" => ValueKind::Field(name.to_string()),
                Some(name) => ValueKind::Param(name.to_string()),
                None => {
                    self.malformed(&ipath, format!("`{tag}` must be a string name, not {}", kind_of(inner)));
                    ValueKind::Invalid
                }
            },
            "value" => match inner {
                Json::Number(n) => match n.as_f64() {
                    Some(x) => ValueKind::Literal(x),
                    None => {
                        self.malformed(&ipath, "number out of range");
                        ValueKind::Invalid
                    }
                },
                Json::Bool(b) => ValueKind::Literal(if *b { 1.0 } else { 0.0 }),
                other => {
                    self.malformed(&ipath, format!("a literal must be a number or a bool, not {}", kind_of(other)));
                    ValueKind::Invalid
                }
            },
            _ => match self.compute(inner, &ipath) {
                Some(c) => ValueKind::Compute(Box::new(c)),
                None => ValueKind::Invalid,
            },
        }
    }

    fn compute(&mut self, json: &Json, path: &str) -> Option<Compute> {
        let Some(obj) = json.as_object() else {
            self.malformed(path, format!("a computation must be an object, not {}", kind_of(json)));
            return None;
        };
        let Some(op) = obj.get("op").and_then(Json::as_str) else {
            self.malformed(path, "computation has no `op`");
            return None;
        };
        let binary = match op {
            "+" => Some(BinOp::Add),
            "-" => Some(BinOp::Sub),
            "*" => Some(BinOp::Mul),
            "/" => Some(BinOp::Div),
            _ => None,
        };
        if let Some(bin) = binary {
            self.unknown_keys(path, obj, &["op", "left", "right"]);
            return Some(Compute::Binary(bin, self.operand(obj, "left", path), self.operand(obj, "right", path)));
        }
        let unary = match op {
            "ceil" => Some(UnOp::Ceil),
            "floor" => Some(UnOp::Floor),
            "round" => Some(UnOp::Round),
            "abs" => Some(UnOp::Abs),
            _ => None,
        };
        if let Some(un) = unary {
            self.unknown_keys(path, obj, &["op", "value"]);
            return Some(Compute::Unary(un, self.operand(obj, "value", path)));
        }
        match op {
            "max" | "min" => {
                self.unknown_keys(path, obj, &["op", "values"]);
                let Some(list) = obj.get("values").and_then(Json::as_array) else {
                    self.malformed(path, format!("`{op}` needs a `values` array"));
                    return None;
                };
                if list.is_empty() {
                    self.malformed(&format!("{path}.values"), format!("`{op}` of no values"));
                    return None;
                }
                let values =
                    list.iter().enumerate().map(|(i, v)| self.value(v, &format!("{path}.values[{i}]"))).collect();
                Some(if op == "max" { Compute::Max(values) } else { Compute::Min(values) })
            }
            "clamp" => {
                self.unknown_keys(path, obj, &["op", "value", "min", "max"]);
                Some(Compute::Clamp(
                    self.operand(obj, "value", path),
                    self.operand(obj, "min", path),
                    self.operand(obj, "max", path),
                ))
            }
            "div0" => {
                self.unknown_keys(path, obj, &["op", "numerator", "denominator", "default"]);
                Some(Compute::Div0(
                    self.operand(obj, "numerator", path),
                    self.operand(obj, "denominator", path),
                    self.operand(obj, "default", path),
                ))
            }
            other => {
                self.malformed(&format!("{path}.op"), format!("unknown computation `{other}`"));
                None
            }
        }
    }

    fn action_param(&mut self, json: &Json, path: &str) -> Option<ActionParam> {
        let Some(obj) = json.as_object() else {
            self.malformed(path, format!("an action parameter must be an object, not {}", kind_of(json)));
            return None;
        };
        if let Some(Json::String(text)) = obj.get("value") {
            self.unknown_keys(path, obj, &["value"]);
            return Some(ActionParam::Text(text.clone()));
        }
        if let Some(Json::Bool(b)) = obj.get("value") {
            self.unknown_keys(path, obj, &["value"]);
            return Some(ActionParam::Bool(*b));
        }
        if let Some(Json::Array(items)) = obj.get("value") {
            self.unknown_keys(path, obj, &["value"]);
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => list.push(s.to_string()),
                    None => self.malformed(&format!("{path}.value[{i}]"), "a list parameter holds strings only"),
                }
            }
            return Some(ActionParam::List(list));
        }
        match self.value_kind(json, path) {
            ValueKind::Invalid => None,
            kind => Some(ActionParam::Number(Value { path: path.to_string(), kind })),
        }
    }

    fn optional_string(&mut self, obj: &Map<String, Json>, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => {
                self.malformed(path, format!("`{key}` must be a string, not {}", kind_of(other)));
                None
            }
        }
    }

    fn unknown_keys(&mut self, path: &str, obj: &Map<String, Json>, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                self.report.warn(
                    K::UnknownKey,
                    &format!("{path}.{key}"),
                    format!("`{key}` is not read (SimCash ignores it)"),
                );
            }
        }
    }

    fn malformed(&mut self, path: &str, message: impl Into<String>) {
        self.report.error(K::MalformedNode, path, message);
    }
}

/// A word for the JSON type of `v`, for messages.
fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
