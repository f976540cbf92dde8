//! Tree evaluations per second: the compiled evaluator against a walk over
//! the policy's JSON (what an interpreter without compilation does).
//!
//! `cargo run --release -p polis-payments --example eval_bench -- POLICY.json`

#![expect(clippy::expect_used, reason = "a benchmark program: bad arguments end it")]

use std::collections::BTreeMap;
use std::time::Instant;

use polis_payments::dsl::{self, Context, Field};
use serde_json::Value;

/// Field values both by name (for the JSON walk) and by enum index (for
/// the compiled trees, as the simulator answers them).
struct Fields {
    by_name: BTreeMap<String, f64>,
    by_index: Vec<f64>,
}

impl Context for Fields {
    fn field(&self, f: Field) -> f64 {
        self.by_index[f as usize]
    }
    fn register(&self, _: usize) -> f64 {
        0.0
    }
}

fn num(v: &Value, ctx: &Fields, params: &BTreeMap<String, f64>) -> f64 {
    if let Some(f) = v.get("field").and_then(Value::as_str) {
        return ctx.by_name.get(f).copied().unwrap_or(0.0);
    }
    if let Some(p) = v.get("param").and_then(Value::as_str) {
        return params.get(p).copied().unwrap_or(0.0);
    }
    if let Some(x) = v.get("value") {
        return x.as_f64().unwrap_or(if x.as_bool() == Some(true) { 1.0 } else { 0.0 });
    }
    let c = &v["compute"];
    let arg = |k: &str| num(&c[k], ctx, params);
    match c["op"].as_str().unwrap_or("") {
        "+" => arg("left") + arg("right"),
        "-" => arg("left") - arg("right"),
        "*" => arg("left") * arg("right"),
        "/" => arg("left") / arg("right"),
        "max" => {
            c["values"].as_array().into_iter().flatten().map(|x| num(x, ctx, params)).fold(f64::NEG_INFINITY, f64::max)
        }
        "min" => {
            c["values"].as_array().into_iter().flatten().map(|x| num(x, ctx, params)).fold(f64::INFINITY, f64::min)
        }
        "abs" => arg("value").abs(),
        _ => 0.0,
    }
}

fn test(e: &Value, ctx: &Fields, params: &BTreeMap<String, f64>) -> bool {
    match e["op"].as_str().unwrap_or("") {
        "and" => e["conditions"].as_array().into_iter().flatten().all(|c| test(c, ctx, params)),
        "or" => e["conditions"].as_array().into_iter().flatten().any(|c| test(c, ctx, params)),
        "not" => !test(&e["condition"], ctx, params),
        op => {
            let (a, b) = (num(&e["left"], ctx, params), num(&e["right"], ctx, params));
            match op {
                "==" => (a - b).abs() < 1e-9,
                "!=" => (a - b).abs() >= 1e-9,
                "<" => a < b,
                "<=" => a <= b || (a - b).abs() < 1e-9,
                ">" => a > b,
                _ => a >= b || (a - b).abs() < 1e-9,
            }
        }
    }
}

fn walk<'a>(mut node: &'a Value, ctx: &Fields, params: &BTreeMap<String, f64>) -> &'a str {
    while node["type"] == "condition" {
        node = if test(&node["condition"], ctx, params) { &node["on_true"] } else { &node["on_false"] };
    }
    node["action"].as_str().unwrap_or("")
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: eval_bench POLICY.json");
    let text = std::fs::read_to_string(&path).expect("readable policy");
    let json: Value = serde_json::from_str(&text).expect("JSON");
    let params: BTreeMap<String, f64> = json["parameters"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    let compiled = dsl::compile(&text, &BTreeMap::new()).expect("valid policy");
    let tree = compiled.policy.payment.as_ref().expect("a payment tree");
    // 64 contexts with varied field values, reused round robin.
    let contexts: Vec<Fields> = (0..64)
        .map(|i| {
            let value = |f: &Field| ((i * 7919 + f.name().len() * 31) % 1000) as f64 * 1000.0 - 2e5;
            Fields {
                by_name: Field::ALL.iter().map(|f| (f.name().to_string(), value(f))).collect(),
                by_index: Field::ALL.iter().map(value).collect(),
            }
        })
        .collect();
    let n = 2_000_000usize;
    let t = Instant::now();
    let mut releases = 0usize;
    for i in 0..n {
        if let Ok(polis_payments::dsl::PaymentAction::Release { .. }) = tree.evaluate(&contexts[i % 64], None) {
            releases += 1;
        }
    }
    let compiled_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut releases_json = 0usize;
    for i in 0..n {
        if walk(&json["payment_tree"], &contexts[i % 64], &params).starts_with("Release") {
            releases_json += 1;
        }
    }
    let json_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{path}: compiled {compiled_rate:.0}/s, JSON walk {json_rate:.0}/s, ratio {:.1}x (releases {releases} vs {releases_json})",
        compiled_rate / json_rate
    );
}
