//! An agent's `policy` entry, in every form SimCash's configuration takes,
//! lowered to one compiled policy with a record of where it came from.
//!
//! `FromJson` takes exactly one of `json_path` and `json_string` (the seed's
//! Option A). `json_path` is resolved as SimCash's examples expect: against
//! `--policy-root` when given, else the working directory, then the
//! scenario file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as Json;

use crate::dsl::{Checked, PolicyCache};

/// Where to look for `json_path` files.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    /// `--policy-root`, tried first when given.
    pub policy_root: Option<PathBuf>,
    /// The working directory.
    pub working_dir: Option<PathBuf>,
    /// The scenario file's directory.
    pub config_dir: Option<PathBuf>,
}

/// Where policies that are not in the scenario come from: the store's
/// `agent_policies` table and HTTP URLs. The caller (the CLI, the service)
/// owns the connection and the HTTP client, with their limits.
pub trait PolicyFetcher: Send + Sync {
    /// The policy JSON stored for `agent_id`, if there is one.
    fn stored(&self, agent_id: &str) -> Result<Option<String>, String>;
    /// The body at `url` (size-capped and timed out by the fetcher).
    fn url(&self, url: &str) -> Result<String, String>;
}

/// What resolving a policy entry may consult.
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    /// Where `json_path` files are looked for.
    pub resolver: &'a Resolver,
    /// Compiled policies by content hash.
    pub cache: &'a PolicyCache,
    /// `FromDatabase` and `FromUrl` sources; without one they are refused.
    pub fetcher: Option<&'a dyn PolicyFetcher>,
    /// Apply the entry's `params` (SimCash drops them, see [`resolve`]).
    pub apply_params: bool,
    /// Values set for one run of a sweep: each overrides the parameter of
    /// that name in every policy that declares it, over everything else.
    pub sweep: &'a BTreeMap<String, f64>,
}

/// Where an agent's policy came from, recorded with every simulation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PolicySourceRecord {
    /// `builtin`, `file`, `inline_string`, `inline`, `database` or `url`.
    pub kind: String,
    /// The built-in's name or the file's resolved path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The compiled policy's content hash (document plus overrides).
    pub digest: String,
    /// Its `policy_id`.
    pub policy_id: String,
}

/// A resolved policy.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The compiled policy.
    pub checked: Checked,
    /// Where it came from.
    pub source: PolicySourceRecord,
    /// SimCash's `initial_liquidity_fraction` for days after the first:
    /// the JSON policy's parameter, 1 for the built-ins.
    pub daily_liquidity_fraction: f64,
}

/// Why a policy entry could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// Where in the scenario (`agents[0].policy.json_string`).
    pub path: String,
    /// What, including every validation problem.
    pub message: String,
}

/// SimCash's FIFO policy: release every payment at once.
const FIFO: &str = r#"{"version": "1.0", "policy_id": "fifo_policy",
    "payment_tree": {"type": "action", "node_id": "A1", "action": "Release"}}"#;

/// SimCash's `deadline.json`: drop what is past its deadline, release what
/// is within `urgency_threshold` ticks of it, hold the rest.
const DEADLINE: &str = r#"{"version": "1.0", "policy_id": "deadline_policy",
    "parameters": {"urgency_threshold": 5},
    "payment_tree": {"type": "condition", "node_id": "N1",
        "condition": {"op": "<=", "left": {"field": "deadline_tick"}, "right": {"field": "current_tick"}},
        "on_true": {"type": "action", "node_id": "A1", "action": "Drop"},
        "on_false": {"type": "condition", "node_id": "N2",
            "condition": {"op": "<=", "left": {"field": "ticks_to_deadline"}, "right": {"param": "urgency_threshold"}},
            "on_true": {"type": "action", "node_id": "A2", "action": "Release"},
            "on_false": {"type": "action", "node_id": "A3", "action": "Hold"}}}}"#;

/// SimCash's `liquidity_aware.json`: as `Deadline` for urgent payments
/// (released only if effective liquidity covers them); otherwise release
/// only what keeps the balance at or above `target_buffer`.
const LIQUIDITY_AWARE: &str = r#"{"version": "1.0", "policy_id": "liquidity_aware_policy",
    "parameters": {"target_buffer": 50000, "urgency_threshold": 5},
    "payment_tree": {"type": "condition", "node_id": "N1",
        "condition": {"op": "<=", "left": {"field": "deadline_tick"}, "right": {"field": "current_tick"}},
        "on_true": {"type": "action", "node_id": "A1", "action": "Drop"},
        "on_false": {"type": "condition", "node_id": "N2",
            "condition": {"op": "<=", "left": {"field": "ticks_to_deadline"}, "right": {"param": "urgency_threshold"}},
            "on_true": {"type": "condition", "node_id": "N3",
                "condition": {"op": ">=", "left": {"field": "effective_liquidity"}, "right": {"field": "remaining_amount"}},
                "on_true": {"type": "action", "node_id": "A2", "action": "Release"},
                "on_false": {"type": "action", "node_id": "A3", "action": "Hold"}},
            "on_false": {"type": "condition", "node_id": "N4",
                "condition": {"op": "==", "left": {"param": "target_buffer"}, "right": {"value": 0}},
                "on_true": {"type": "condition", "node_id": "N5",
                    "condition": {"op": ">=", "left": {"field": "effective_liquidity"}, "right": {"field": "remaining_amount"}},
                    "on_true": {"type": "action", "node_id": "A4", "action": "Release"},
                    "on_false": {"type": "action", "node_id": "A5", "action": "Hold"}},
                "on_false": {"type": "condition", "node_id": "N6",
                    "condition": {"op": "<",
                        "left": {"compute": {"op": "-", "left": {"field": "balance"}, "right": {"field": "remaining_amount"}}},
                        "right": {"param": "target_buffer"}},
                    "on_true": {"type": "action", "node_id": "A6", "action": "Hold"},
                    "on_false": {"type": "action", "node_id": "A7", "action": "Release"}}}}}}"#;

/// SimCash's `liquidity_splitting.json`: drop what is past its deadline;
/// release what the balance covers; otherwise, with a positive balance,
/// split urgent payments (within 5 ticks) into `max_splits` parts and others
/// in two; hold when the balance is not positive. (`min_split_amount` is a
/// parameter SimCash's tree never reads.)
const LIQUIDITY_SPLITTING: &str = r#"{"version": "1.0", "policy_id": "liquidity_splitting_policy",
    "parameters": {"max_splits": 4, "min_split_amount": 10000},
    "payment_tree": {"type": "condition", "node_id": "N1",
        "condition": {"op": "<=", "left": {"field": "deadline_tick"}, "right": {"field": "current_tick"}},
        "on_true": {"type": "action", "node_id": "A1", "action": "Drop"},
        "on_false": {"type": "condition", "node_id": "N2",
            "condition": {"op": "<=", "left": {"field": "ticks_to_deadline"}, "right": {"value": 5}},
            "on_true": {"type": "condition", "node_id": "N3",
                "condition": {"op": ">=", "left": {"field": "balance"}, "right": {"field": "amount"}},
                "on_true": {"type": "action", "node_id": "A2", "action": "Release"},
                "on_false": {"type": "condition", "node_id": "N4",
                    "condition": {"op": ">", "left": {"field": "balance"}, "right": {"value": 0}},
                    "on_true": {"type": "action", "node_id": "A3", "action": "Split",
                        "parameters": {"num_splits": {"param": "max_splits"}}},
                    "on_false": {"type": "action", "node_id": "A4", "action": "Hold"}}},
            "on_false": {"type": "condition", "node_id": "N5",
                "condition": {"op": ">=", "left": {"field": "balance"}, "right": {"field": "amount"}},
                "on_true": {"type": "action", "node_id": "A5", "action": "Release"},
                "on_false": {"type": "condition", "node_id": "N6",
                    "condition": {"op": ">", "left": {"field": "balance"}, "right": {"value": 0}},
                    "on_true": {"type": "action", "node_id": "A7", "action": "Split",
                        "parameters": {"num_splits": {"value": 2}}},
                    "on_false": {"type": "action", "node_id": "A6", "action": "Hold"}}}}}}"#;

/// SimCash's `mock_splitting.json`: split every payment in `num_splits`.
const MOCK_SPLITTING: &str = r#"{"version": "1.0", "policy_id": "mock_splitting_policy",
    "parameters": {"num_splits": 2},
    "payment_tree": {"type": "action", "node_id": "A1", "action": "Split",
        "parameters": {"num_splits": {"param": "num_splits"}}}}"#;

/// A parameterised built-in's tree and its required fields with the ranges
/// SimCash's schema (`config/schemas.py`) allows.
fn builtin_tree(kind: &str) -> (&'static str, &'static [(&'static str, i64, i64)]) {
    match kind {
        "Deadline" => (DEADLINE, &[("urgency_threshold", 1, i64::MAX)]),
        "LiquidityAware" => (LIQUIDITY_AWARE, &[("target_buffer", 0, i64::MAX), ("urgency_threshold", 1, i64::MAX)]),
        "LiquiditySplitting" => (LIQUIDITY_SPLITTING, &[("max_splits", 2, 10), ("min_split_amount", 1, i64::MAX)]),
        _ => (MOCK_SPLITTING, &[("num_splits", 2, 10)]),
    }
}

/// Lowers an agent's `policy` entry (`None` is SimCash's default, `Fifo`).
/// `lookup.apply_params` is false on SimCash's path, whose schema drops
/// `params` (`config/schemas.py` `_policy_to_ffi_dict`); they are still
/// checked. `agent_id` is the default row of `FromDatabase`.
pub fn resolve(entry: Option<&Json>, path: &str, agent_id: &str, lookup: &Lookup<'_>) -> Result<Resolved, PolicyError> {
    let (resolver, apply_params) = (lookup.resolver, lookup.apply_params);
    let fail = |p: &str, m: String| PolicyError { path: p.to_string(), message: m };
    let Some(entry) = entry else {
        return builtin("Fifo", FIFO, &BTreeMap::new(), path, lookup);
    };
    let Some(obj) = entry.as_object() else {
        return Err(fail(path, "a policy must be an object with a `type`".into()));
    };
    let kind = obj.get("type").and_then(Json::as_str).ok_or_else(|| fail(path, "policy has no `type`".into()))?;
    let mut overrides = params(obj.get("params"), &format!("{path}.params"))?;
    if !apply_params {
        overrides.clear();
    }
    match kind {
        "Fifo" => builtin("Fifo", FIFO, &overrides, path, lookup),
        "Deadline" | "LiquidityAware" | "LiquiditySplitting" | "MockSplitting" => {
            let (text, fields) = builtin_tree(kind);
            for &(field, min, max) in fields {
                let at = format!("{path}.{field}");
                let value = obj.get(field).ok_or_else(|| fail(path, format!("`{kind}` needs `{field}`")))?;
                let n = value
                    .as_i64()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| fail(&at, format!("must be an integer from {min} to {max}, got {value}")))?;
                // The configured value wins over `params`, as SimCash's
                // factory injects it last.
                overrides.insert(field.to_string(), n as f64);
            }
            builtin(kind, text, &overrides, path, lookup)
        }
        "FromJson" => {
            let json_path = obj.get("json_path");
            let json_string = obj.get("json_string");
            match (json_path, json_string) {
                (None, None) => Err(fail(path, "`FromJson` needs either `json_path` or `json_string`".into())),
                (Some(_), Some(_)) => Err(fail(path, "`FromJson` takes `json_path` or `json_string`, not both".into())),
                (Some(p), None) => {
                    let p = p.as_str().ok_or_else(|| fail(&format!("{path}.json_path"), "must be a string".into()))?;
                    from_file(p, &overrides, &format!("{path}.json_path"), resolver, lookup)
                }
                (None, Some(s)) => {
                    let s =
                        s.as_str().ok_or_else(|| fail(&format!("{path}.json_string"), "must be a string".into()))?;
                    from_string(s, &overrides, &format!("{path}.json_string"), lookup)
                }
            }
        }
        "FromDatabase" => {
            let id = match obj.get("agent_id") {
                None => agent_id,
                Some(v) => v.as_str().ok_or_else(|| fail(&format!("{path}.agent_id"), "must be a string".into()))?,
            };
            let fetcher = lookup.fetcher.ok_or_else(|| {
                fail(path, "`FromDatabase` needs a store (`polis payments simulate --database-url`)".into())
            })?;
            let text = fetcher
                .stored(id)
                .map_err(|m| fail(path, format!("cannot read agent_policies: {m}")))?
                .ok_or_else(|| fail(path, format!("no policy is stored for agent `{id}` in agent_policies")))?;
            let json = parse_text(&text, path, "the stored policy")?;
            let checked = compile(&json, &overrides, path, lookup)?;
            Ok(record(checked, "database", Some(format!("agent_policies/{id}")), &json))
        }
        "FromUrl" => {
            let url = obj
                .get("url")
                .and_then(Json::as_str)
                .ok_or_else(|| fail(path, "`FromUrl` needs a `url` string".into()))?;
            let fetcher = lookup.fetcher.ok_or_else(|| fail(path, "`FromUrl` is not available here".into()))?;
            let text =
                fetcher.url(url).map_err(|m| fail(&format!("{path}.url"), format!("cannot fetch `{url}`: {m}")))?;
            let json = parse_text(&text, path, &format!("`{url}`"))?;
            let checked = compile(&json, &overrides, path, lookup)?;
            Ok(record(checked, "url", Some(url.to_string()), &json))
        }
        "InlineJson" => {
            let s = obj
                .get("json_string")
                .and_then(Json::as_str)
                .ok_or_else(|| fail(path, "`InlineJson` needs a `json_string` string".into()))?;
            from_string(s, &overrides, &format!("{path}.json_string"), lookup)
        }
        "Inline" => {
            let trees =
                obj.get("decision_trees").ok_or_else(|| fail(path, "`Inline` needs `decision_trees`".into()))?;
            let checked = compile(trees, &overrides, &format!("{path}.decision_trees"), lookup)?;
            Ok(record(checked, "inline", None, trees))
        }
        other => Err(fail(
            &format!("{path}.type"),
            format!(
                "unknown policy type `{other}` (Fifo, FromJson, InlineJson, Inline, Deadline, LiquidityAware, LiquiditySplitting, MockSplitting, FromDatabase, FromUrl)"
            ),
        )),
    }
}

fn params(value: Option<&Json>, path: &str) -> Result<BTreeMap<String, f64>, PolicyError> {
    let mut out = BTreeMap::new();
    match value {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (k, v) in map {
                let x = v
                    .as_f64()
                    .ok_or_else(|| PolicyError { path: format!("{path}.{k}"), message: "must be a number".into() })?;
                out.insert(k.clone(), x);
            }
        }
        Some(_) => return Err(PolicyError { path: path.into(), message: "must be an object of numbers".into() }),
    }
    Ok(out)
}

fn builtin(
    name: &str,
    text: &str,
    overrides: &BTreeMap<String, f64>,
    path: &str,
    lookup: &Lookup<'_>,
) -> Result<Resolved, PolicyError> {
    let json: Json =
        serde_json::from_str(text).map_err(|e| PolicyError { path: path.into(), message: e.to_string() })?;
    let checked = compile(&json, overrides, path, lookup)?;
    let mut resolved = record(checked, "builtin", Some(name.to_string()), &json);
    resolved.daily_liquidity_fraction = 1.0;
    Ok(resolved)
}

fn parse_text(text: &str, path: &str, what: &str) -> Result<Json, PolicyError> {
    if text.len() > crate::dsl::Limits::default().max_bytes {
        return Err(PolicyError { path: path.into(), message: format!("{what} is larger than the policy size limit") });
    }
    serde_json::from_str(text)
        .map_err(|e| PolicyError { path: path.into(), message: format!("{what} is not valid JSON: {e}") })
}

fn from_string(
    text: &str,
    overrides: &BTreeMap<String, f64>,
    path: &str,
    lookup: &Lookup<'_>,
) -> Result<Resolved, PolicyError> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| PolicyError { path: path.into(), message: format!("invalid JSON in `json_string`: {e}") })?;
    let checked = compile(&json, overrides, path, lookup)?;
    Ok(record(checked, "inline_string", None, &json))
}

fn from_file(
    name: &str,
    overrides: &BTreeMap<String, f64>,
    path: &str,
    resolver: &Resolver,
    lookup: &Lookup<'_>,
) -> Result<Resolved, PolicyError> {
    let tried = candidates(name, resolver);
    let Some(found) = tried.iter().find(|p| p.is_file()) else {
        let list: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
        return Err(PolicyError {
            path: path.into(),
            message: format!("policy file `{name}` not found; tried {}", list.join(", ")),
        });
    };
    let text = read_capped(found).map_err(|m| PolicyError { path: path.into(), message: m })?;
    let json: Json = serde_json::from_str(&text).map_err(|e| PolicyError {
        path: path.into(),
        message: format!("`{}` is not valid JSON: {e}", found.display()),
    })?;
    let checked = compile(&json, overrides, path, lookup)?;
    Ok(record(checked, "file", Some(found.display().to_string()), &json))
}

/// The places `json_path` is looked for, in order.
pub fn candidates(name: &str, resolver: &Resolver) -> Vec<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return vec![p.to_path_buf()];
    }
    [&resolver.policy_root, &resolver.working_dir, &resolver.config_dir]
        .into_iter()
        .flatten()
        .map(|d| d.join(p))
        .collect()
}

fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let cap = crate::dsl::Limits::default().max_bytes as u64 + 1;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(cap).read_to_string(&mut text))
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    Ok(text)
}

fn compile(
    json: &Json,
    overrides: &BTreeMap<String, f64>,
    path: &str,
    lookup: &Lookup<'_>,
) -> Result<Checked, PolicyError> {
    let declared = json.get("parameters").and_then(Json::as_object);
    let swept = lookup.sweep.iter().filter(|(name, _)| declared.is_some_and(|d| d.contains_key(name.as_str())));
    let mut overrides = overrides.clone();
    overrides.extend(swept.map(|(name, value)| (name.clone(), *value)));
    lookup.cache.get_or_compile(json, &overrides).map_err(|report| {
        let lines: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        PolicyError { path: path.into(), message: format!("policy is not valid: {}", lines.join("; ")) }
    })
}

fn record(checked: Checked, kind: &str, location: Option<String>, json: &Json) -> Resolved {
    let daily_liquidity_fraction = json["parameters"]["initial_liquidity_fraction"].as_f64().unwrap_or(1.0);
    let source = PolicySourceRecord {
        kind: kind.into(),
        location,
        digest: checked.digest.to_hex(),
        policy_id: checked.policy.policy_id.clone(),
    };
    Resolved { checked, source, daily_liquidity_fraction }
}
