//! The DSL over SimCash's policy corpus and over hostile policies, one per
//! kind of validation error.

use std::collections::BTreeMap;

use polis_payments::dsl::{self, Context, DecisionPath, Field, PaymentAction, PolicyCache, ProblemKind};
use serde_json::{Value, json};

#[expect(clippy::expect_used, reason = "a test helper: unreadable data should fail the test loudly")]
fn corpus() -> Option<Vec<(String, String)>> {
    let dir = polis_testdata::require("simcash-policies")?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Some(
        files
            .into_iter()
            .map(|p| {
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).expect("readable"))
            })
            .collect(),
    )
}

#[test]
fn every_corpus_policy_validates_and_compiles() {
    let Some(corpus) = corpus() else { return };
    assert_eq!(corpus.len(), 29, "SimCash's corpus has 29 policies");
    for (name, text) in &corpus {
        let report = dsl::check(text);
        assert!(report.is_ok(), "{name}:\n{report}");
        let checked = dsl::compile(text, &BTreeMap::new()).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert!(!checked.policy.policy_id.is_empty(), "{name}");
    }
}

/// A context where every field reads the same number.
struct Flat(f64);
impl Context for Flat {
    fn field(&self, _: Field) -> f64 {
        self.0
    }
    fn register(&self, _: usize) -> f64 {
        0.0
    }
}

#[test]
fn every_corpus_payment_tree_evaluates_over_a_range_of_contexts() {
    let Some(corpus) = corpus() else { return };
    for (name, text) in &corpus {
        let checked = dsl::compile(text, &BTreeMap::new()).unwrap_or_else(|r| panic!("{name}: {r}"));
        let Some(tree) = &checked.policy.payment else { continue };
        for x in [-1e6, -1.0, 0.5, 1.0, 3.0, 1e6] {
            let mut path = DecisionPath::default();
            match tree.evaluate(&Flat(x), Some(&mut path)) {
                Ok(_) => assert!(path.0.last().is_some_and(|s| s.result.is_none()), "{name}: path ends at an action"),
                Err(e) => assert!(e.to_string().contains("division by zero"), "{name}: {e}"),
            }
        }
    }
}

fn policy(trees: Value) -> String {
    let mut doc = json!({"version": "1.0", "policy_id": "t", "parameters": {"threshold": 5.0}});
    if let (Some(doc), Some(trees)) = (doc.as_object_mut(), trees.as_object()) {
        for (k, v) in trees {
            doc.insert(k.clone(), v.clone());
        }
    }
    doc.to_string()
}

fn action(id: &str, action: &str) -> Value {
    json!({"type": "action", "node_id": id, "action": action})
}

fn cond(id: &str, condition: Value, t: Value, f: Value) -> Value {
    json!({"type": "condition", "node_id": id, "condition": condition, "on_true": t, "on_false": f})
}

fn gt(left: Value, right: Value) -> Value {
    json!({"op": ">", "left": left, "right": right})
}

/// The one error `text` produces: its kind and path.
fn only_error(text: &str) -> (ProblemKind, String, String) {
    let report = dsl::check(text);
    assert_eq!(report.errors.len(), 1, "expected one error, got:\n{report}");
    let e = &report.errors[0];
    (e.kind, e.path.clone(), e.message.clone())
}

#[test]
fn duplicate_node_ids_across_trees_are_reported_at_the_second() {
    let text = policy(json!({
        "payment_tree": action("A1", "Release"),
        "bank_tree": action("A1", "NoAction"),
    }));
    let (kind, path, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::DuplicateNodeId);
    assert_eq!(path, "$.bank_tree");
    assert!(message.contains("`A1`") && message.contains("$.payment_tree"), "{message}");
}

fn chain(depth: usize) -> Value {
    let mut node = action("leaf", "Release");
    for i in 0..depth {
        node = cond(
            &format!("N{i}"),
            gt(json!({"field": "balance"}), json!({"value": 0})),
            node,
            action(&format!("H{i}"), "Hold"),
        );
    }
    node
}

#[test]
fn a_tree_of_depth_100_passes_and_101_is_too_deep() {
    assert!(dsl::check(&policy(json!({"payment_tree": chain(100)}))).is_ok());
    let (kind, path, message) = only_error(&policy(json!({"payment_tree": chain(101)})));
    assert_eq!(kind, ProblemKind::ExcessiveDepth);
    assert_eq!(path, "$.payment_tree");
    assert!(message.contains("101"), "{message}");
}

#[test]
fn nesting_beyond_the_parser_limit_is_refused_without_recursing() {
    // 5,000 nested conditions as raw text: far past serde_json's limit.
    let mut text = String::from(r#"{"version":"1.0","payment_tree":"#);
    for i in 0..5000 {
        text.push_str(&format!(
            r#"{{"type":"condition","node_id":"N{i}","condition":{{"op":"==","left":{{"value":1}},"right":{{"field":"balance"}}}},"on_false":{{"type":"action","node_id":"F{i}","action":"Hold"}},"on_true":"#
        ));
    }
    text.push_str(r#"{"type":"action","node_id":"L","action":"Release"}"#);
    text.push_str(&"}".repeat(5001));
    let (kind, path, message) = only_error(&text);
    assert_eq!((kind, path.as_str()), (ProblemKind::InvalidJson, "$"));
    assert!(message.contains("recursion limit"), "{message}");
}

#[test]
fn huge_input_is_refused_before_parsing() {
    let text = format!(r#"{{"version":"1.0","description":"{}"}}"#, "x".repeat(2 << 20));
    let (kind, _, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::TooLarge);
    assert!(message.contains("bytes"), "{message}");
}

#[test]
fn too_many_nodes_are_refused() {
    // A wide, shallow tree: 20,000 actions under `and` leaves is not
    // possible, so use many trees' worth of nodes via a balanced tree.
    fn balanced(depth: usize, next: &mut usize) -> Value {
        *next += 1;
        let id = format!("n{next}");
        if depth == 0 {
            return action(&id, "Release");
        }
        let t = balanced(depth - 1, next);
        let f = balanced(depth - 1, next);
        cond(&id, gt(json!({"field": "balance"}), json!({"value": 0})), t, f)
    }
    let mut next = 0;
    let text = policy(json!({"payment_tree": balanced(14, &mut next)}));
    assert!(text.len() < 1 << 20 || dsl::check(&text).errors[0].kind == ProblemKind::TooLarge);
    let report = dsl::check(&text);
    assert_eq!(report.errors[0].kind, ProblemKind::TooLarge, "{report}");
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let text = policy(
        json!({"payment_tree": cond("N1", gt(json!({"field": "balanse"}), json!({"value": 0})), action("A", "Release"), action("B", "Hold"))}),
    );
    let (kind, path, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::UnknownField);
    assert_eq!(path, "$.payment_tree.condition.left");
    assert!(message.contains("`balanse`"));
}

#[test]
fn transaction_fields_are_refused_outside_the_payment_tree() {
    let text = policy(
        json!({"strategic_collateral_tree": cond("N1", gt(json!({"field": "amount"}), json!({"value": 0})), action("A", "HoldCollateral"), action("B", "HoldCollateral"))}),
    );
    let (kind, path, _) = only_error(&text);
    assert_eq!(kind, ProblemKind::FieldNotInTree);
    assert_eq!(path, "$.strategic_collateral_tree.condition.left");
    // The same field is fine in the payment tree, as are state registers anywhere.
    let ok = policy(json!({
        "payment_tree": cond("N1", gt(json!({"field": "amount"}), json!({"field": "bank_state_x"})), action("A", "Release"), action("B", "Hold")),
        "bank_tree": cond("N2", gt(json!({"field": "bank_state_x"}), json!({"value": 0})), action("C", "NoAction"), action("D", "NoAction")),
    }));
    assert!(dsl::check(&ok).is_ok());
}

#[test]
fn unknown_parameters_are_refused() {
    let text = policy(
        json!({"payment_tree": cond("N1", gt(json!({"field": "balance"}), json!({"param": "treshold"})), action("A", "Release"), action("B", "Hold"))}),
    );
    let (kind, path, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::UnknownParameter);
    assert_eq!(path, "$.payment_tree.condition.right");
    assert!(message.contains("`treshold`") && message.contains("threshold"), "{message}");
}

#[test]
fn a_literal_zero_denominator_is_refused_but_div0_is_not() {
    let div = |op: &str, zero: &str| {
        let compute = if op == "/" {
            json!({"op": "/", "left": {"field": "balance"}, "right": {"value": 0}})
        } else {
            json!({"op": "div0", "numerator": {"field": "balance"}, "denominator": {"value": 0}, "default": {"value": 1}})
        };
        let _ = zero;
        policy(
            json!({"payment_tree": cond("N1", gt(json!({"compute": compute}), json!({"value": 1})), action("A", "Release"), action("B", "Hold"))}),
        )
    };
    let (kind, path, _) = only_error(&div("/", "0"));
    assert_eq!(kind, ProblemKind::ZeroDenominator);
    assert_eq!(path, "$.payment_tree.condition.left.compute.right");
    assert!(dsl::check(&div("div0", "0")).is_ok());
}

#[test]
fn an_action_behind_a_constant_condition_is_unreachable() {
    let always = json!({"op": "==", "left": {"value": 1}, "right": {"value": 1}});
    let text = policy(json!({"payment_tree": cond("N1", always, action("A", "Release"), action("B", "Hold"))}));
    let (kind, path, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::UnreachableAction);
    assert_eq!(path, "$.payment_tree.on_false");
    assert!(message.contains("`B`"));
}

#[test]
fn empty_and_is_true_and_empty_or_is_false() {
    let and = policy(
        json!({"payment_tree": cond("N1", json!({"op": "and", "conditions": []}), action("A", "Release"), action("B", "Hold"))}),
    );
    assert_eq!(only_error(&and).1, "$.payment_tree.on_false");
    let or = policy(
        json!({"payment_tree": cond("N1", json!({"op": "or", "conditions": []}), action("A", "Release"), action("B", "Hold"))}),
    );
    assert_eq!(only_error(&or).1, "$.payment_tree.on_true");
}

#[test]
fn an_action_in_the_wrong_tree_is_refused() {
    let text = policy(json!({"payment_tree": action("A", "PostCollateral")}));
    let (kind, path, message) = only_error(&text);
    assert_eq!(kind, ProblemKind::ActionNotAllowed);
    assert_eq!(path, "$.payment_tree.action");
    assert!(message.contains("Release"), "{message}");
    let text = policy(json!({"end_of_tick_collateral_tree": action("A", "SetState")}));
    assert_eq!(only_error(&text).0, ProblemKind::ActionNotAllowed);
}

#[test]
fn a_payment_action_in_the_bank_tree_acts_as_no_action_with_a_warning() {
    // SimCash's build_bank_decision falls back to NoAction; its corpus
    // (sophisticated_adaptive_bank.json) relies on that.
    let text = policy(json!({"bank_tree": action("A", "Hold")}));
    let report = dsl::check(&text);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings[0].kind, ProblemKind::ActionNotAllowed);
    assert_eq!(report.warnings[0].path, "$.bank_tree.action");
    let checked = dsl::compile(&text, &BTreeMap::new()).expect("valid");
    let tree = checked.policy.bank.as_ref().expect("bank tree");
    assert!(matches!(tree.evaluate(&Flat(0.0), None), Ok(polis_payments::dsl::BankAction::NoAction)));
}

#[test]
fn malformed_nodes_are_all_reported() {
    let text = policy(json!({"payment_tree": {
        "type": "condition", "node_id": "N1",
        "condition": {"op": "~=", "left": {"field": "balance"}, "right": {"value": 0}},
        "on_true": {"type": "action", "node_id": "A", "action": "Teleport"},
        "on_false": {"type": "leaf", "node_id": "B"}
    }}));
    let report = dsl::check(&text);
    let got: Vec<(ProblemKind, &str)> = report.errors.iter().map(|e| (e.kind, e.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (ProblemKind::MalformedNode, "$.payment_tree.condition.op"),
            (ProblemKind::MalformedNode, "$.payment_tree.on_true.action"),
            (ProblemKind::MalformedNode, "$.payment_tree.on_false.type"),
        ]
    );
}

#[test]
fn missing_and_mistyped_action_parameters_are_refused() {
    let text = policy(json!({"payment_tree": cond("N1", gt(json!({"field": "balance"}), json!({"value": 0})),
        action("A", "Split"),
        json!({"type": "action", "node_id": "B", "action": "ResubmitToRtgs", "parameters": {"rtgs_priority": {"value": "Soon"}}}))}));
    let report = dsl::check(&text);
    let got: Vec<(ProblemKind, &str)> = report.errors.iter().map(|e| (e.kind, e.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (ProblemKind::InvalidActionParameter, "$.payment_tree.on_true.parameters"),
            (ProblemKind::InvalidActionParameter, "$.payment_tree.on_false.parameters.rtgs_priority"),
        ]
    );
}

#[test]
fn every_error_is_collected_not_just_the_first() {
    let text = policy(json!({
        "payment_tree": cond("N1", gt(json!({"field": "nope"}), json!({"param": "nada"})), action("A", "NoAction"), action("N1", "Hold")),
    }));
    let kinds: Vec<ProblemKind> = dsl::check(&text).errors.iter().map(|e| e.kind).collect();
    for kind in [
        ProblemKind::UnknownField,
        ProblemKind::UnknownParameter,
        ProblemKind::ActionNotAllowed,
        ProblemKind::DuplicateNodeId,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
    }
}

#[test]
fn keys_simcash_ignores_are_warnings() {
    let text = policy(
        json!({"payment_tree": {"type": "action", "node_id": "A", "action": "Release", "comment": "hi"}, "lsm_enabled": true}),
    );
    let report = dsl::check(&text);
    assert!(report.is_ok());
    let paths: Vec<&str> = report.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, vec!["$.lsm_enabled", "$.payment_tree.comment"]);
}

/// A context with named fields, zero elsewhere.
struct Named(BTreeMap<Field, f64>);
impl Context for Named {
    fn field(&self, f: Field) -> f64 {
        self.0.get(&f).copied().unwrap_or(0.0)
    }
    fn register(&self, _: usize) -> f64 {
        0.0
    }
}

#[test]
fn compiled_trees_follow_simcash_semantics_and_record_the_path() {
    // Release when ticks_to_deadline <= threshold (with ε), else hold.
    let text = policy(json!({"payment_tree": cond("N1",
        json!({"op": "<=", "left": {"field": "ticks_to_deadline"}, "right": {"param": "threshold"}}),
        action("A1", "Release"),
        cond("N2", json!({"op": "or", "conditions": [
            {"op": "<", "left": {"field": "ticks_to_deadline"}, "right": {"value": 0}},
            {"op": ">", "left": {"field": "ticks_to_deadline"}, "right": {"value": 5.5}}]}),
            action("A2", "Drop"), action("A3", "Hold"))
    )}));
    let checked = dsl::compile(&text, &BTreeMap::new()).expect("valid");
    let tree = checked.policy.payment.as_ref().expect("payment tree");
    let ctx = |t: f64| Named(BTreeMap::from([(Field::TicksToDeadline, t)]));
    let mut path = DecisionPath::default();
    assert!(matches!(tree.evaluate(&ctx(5.0 + 1e-10), Some(&mut path)), Ok(PaymentAction::Release { .. })));
    assert_eq!(path.to_string(), "N1(true) → A1");
    let mut path = DecisionPath::default();
    assert!(matches!(tree.evaluate(&ctx(6.0), Some(&mut path)), Ok(PaymentAction::Drop)));
    assert_eq!(path.to_string(), "N1(false) → N2(true) → A2");
    // A configuration override changes the folded parameter.
    let checked = dsl::compile(&text, &BTreeMap::from([("threshold".to_string(), 10.0)])).expect("valid");
    let tree = checked.policy.payment.as_ref().expect("payment tree");
    assert!(matches!(tree.evaluate(&ctx(6.0), None), Ok(PaymentAction::Release { .. })));
}

#[test]
fn division_by_a_computed_zero_fails_the_evaluation() {
    let text = policy(json!({"payment_tree": cond("N1",
        gt(json!({"compute": {"op": "/", "left": {"value": 1}, "right": {"field": "balance"}}}), json!({"value": 0})),
        action("A1", "Release"), action("A2", "Hold"))}));
    let checked = dsl::compile(&text, &BTreeMap::new()).expect("valid");
    let tree = checked.policy.payment.as_ref().expect("payment tree");
    let err = tree.evaluate(&Named(BTreeMap::new()), None).expect_err("division by zero");
    assert_eq!(err.to_string(), "division by zero at node `N1`");
}

#[test]
fn the_cache_compiles_each_content_hash_once() {
    let cache = PolicyCache::new();
    let a: Value =
        serde_json::from_str(r#"{"version":"1.0","payment_tree":{"type":"action","node_id":"A","action":"Release"}}"#)
            .expect("json");
    // Same document, different key order and spacing.
    let b: Value = serde_json::from_str(
        r#"{ "payment_tree": {"action":"Release","node_id":"A","type":"action"}, "version": "1.0" }"#,
    )
    .expect("json");
    let first = cache.get_or_compile(&a, &BTreeMap::new()).expect("valid");
    let second = cache.get_or_compile(&b, &BTreeMap::new()).expect("valid");
    assert!(std::sync::Arc::ptr_eq(&first.policy, &second.policy));
    assert_eq!(cache.len(), 1);
    let other = cache.get_or_compile(&a, &BTreeMap::from([("x".to_string(), 1.0)])).expect("valid");
    assert_ne!(other.digest, first.digest);
    assert_eq!(cache.len(), 2);
    assert_eq!(first.policy.policy_id, format!("policy_{}", &first.digest.to_hex()[..12]), "defaulted policy_id");
}
