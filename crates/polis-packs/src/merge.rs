//! The two override languages and provenance.
//!
//! - [`merge_patch`] is RFC 7396: objects merge key by key, `null` deletes
//!   a key, anything else (lists included) replaces. This is the original's
//!   deep merge plus deletion.
//! - [`apply_ops`] is RFC 6902, for list edits a merge patch cannot say
//!   ("append a step section": `{"op": "add", "path":
//!   "/requirements/step_sections/-", "value": "Threat Model"}`). Every
//!   `path` and `from` must point into an overridable section.
//! - [`Provenance`] records, for every leaf, the layer that set it (see
//!   [`Provenance::apply`] for the rule).

use std::collections::BTreeMap;

use polis_core::contract::Violation;
use serde::Serialize;
use serde_json::Value;

use crate::check;
use crate::error::PackError;
use crate::schema::OVERRIDABLE_SECTIONS;

/// Most RFC 6902 operations one layer may carry.
pub const MAX_OPS: usize = 200;

/// Applies an RFC 7396 merge patch to `target` in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target_map) = target else { return };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Checks RFC 6902 operations: at most [`MAX_OPS`], each well formed and
/// pointing into an overridable section.
pub fn check_ops(subject: &str, ops: &[Value]) -> Result<json_patch::Patch, PackError> {
    if ops.len() > MAX_OPS {
        return Err(PackError::Invalid {
            subject: subject.into(),
            violations: polis_core::contract::Violations(vec![Violation::new(
                "ops.too_many",
                "",
                format!("{} operations, more than the cap of {MAX_OPS}", ops.len()),
            )]),
        });
    }
    let mut violations = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        for field in ["path", "from"] {
            let Some(pointer) = op.get(field).and_then(Value::as_str) else { continue };
            let section = pointer.strip_prefix('/').and_then(|rest| rest.split('/').next()).unwrap_or("");
            if !OVERRIDABLE_SECTIONS.contains(&section) {
                violations.push(Violation::new(
                    "ops.section",
                    format!("/{i}/{field}"),
                    format!("`{pointer}` is outside the overridable sections ({})", OVERRIDABLE_SECTIONS.join(", ")),
                ));
            }
        }
    }
    check::finish(subject, violations)?;
    serde_json::from_value(Value::Array(ops.to_vec())).map_err(|e| PackError::Parse {
        subject: subject.into(),
        format: "JSON Patch",
        message: e.to_string(),
    })
}

/// Applies checked operations to `target`; a failing operation (a `test`
/// that does not hold, a missing path) leaves `target` unchanged.
pub fn apply_ops(subject: &str, target: &mut Value, patch: &json_patch::Patch) -> Result<(), PackError> {
    json_patch::patch(target, patch)
        .map_err(|e| PackError::Rejected { subject: subject.into(), message: e.to_string() })
}

/// A policy layer, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The selected pack version.
    Pack,
    /// The project's overrides, operations and enforcement setting.
    Project,
    /// The repository's own `.polis/policy.*` file.
    Repo,
}

/// The layer that set each leaf of a policy, keyed by JSON pointer.
///
/// A leaf is a scalar, an empty object or an empty list; list elements are
/// leaves of their own (`/requirements/step_sections/3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Provenance(pub BTreeMap<String, Layer>);

impl Provenance {
    /// Provenance of a document that one layer wrote entirely.
    pub fn of(value: &Value, layer: Layer) -> Self {
        let mut leaves = BTreeMap::new();
        flatten(value, String::new(), &mut leaves);
        Provenance(leaves.into_keys().map(|pointer| (pointer, layer)).collect())
    }

    /// Updates provenance after `layer` turned `before` into `after`.
    ///
    /// The rule: a leaf belongs to the highest layer that changed its value
    /// at that pointer. A layer that restates the value already there does
    /// not claim it, and a leaf a layer deleted is gone.
    pub fn apply(&mut self, before: &Value, after: &Value, layer: Layer) {
        let mut leaves = BTreeMap::new();
        flatten(after, String::new(), &mut leaves);
        let mut next = BTreeMap::new();
        for (pointer, value) in leaves {
            let unchanged = before.pointer(&pointer) == Some(value);
            let owner = match self.0.get(&pointer) {
                Some(previous) if unchanged => *previous,
                _ => layer,
            };
            next.insert(pointer, owner);
        }
        self.0 = next;
    }
}

fn flatten<'a>(value: &'a Value, pointer: String, out: &mut BTreeMap<String, &'a Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                flatten(item, format!("{pointer}/{}", check::escape(key)), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, format!("{pointer}/{i}"), out);
            }
        }
        _ => {
            out.insert(pointer, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        // The examples of RFC 7396, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (target, patch, expected) in cases {
            let mut doc = target.clone();
            merge_patch(&mut doc, &patch);
            assert_eq!(doc, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn ops_append_a_step_section() {
        let patch =
            check_ops("ops", &[json!({"op": "add", "path": "/requirements/step_sections/-", "value": "Threat Model"})])
                .unwrap();
        let mut doc = json!({"requirements": {"step_sections": ["Context"]}});
        apply_ops("ops", &mut doc, &patch).unwrap();
        assert_eq!(doc, json!({"requirements": {"step_sections": ["Context", "Threat Model"]}}));
    }

    #[test]
    fn ops_outside_the_overridable_sections_are_refused() {
        let err = check_ops("ops", &[json!({"op": "replace", "path": "/meta/key", "value": "x"})]).unwrap_err();
        assert!(err.to_string().contains("`/meta/key` is outside the overridable sections"), "{err}");
        let err = check_ops("ops", &[json!({"op": "copy", "from": "/meta", "path": "/constraints/x"})]).unwrap_err();
        assert!(err.to_string().contains("/0/from"), "{err}");
    }

    #[test]
    fn provenance_credits_the_layer_that_changed_a_leaf() {
        let pack = json!({"a": 1, "b": [1, 2], "c": {"d": true}});
        let mut provenance = Provenance::of(&pack, Layer::Pack);
        let mut project = pack.clone();
        merge_patch(&mut project, &json!({"a": 2, "b": [1, 2, 3], "c": {"d": true}}));
        provenance.apply(&pack, &project, Layer::Project);
        assert_eq!(provenance.0["/a"], Layer::Project);
        assert_eq!(provenance.0["/b/0"], Layer::Pack, "a restated value keeps its layer");
        assert_eq!(provenance.0["/b/2"], Layer::Project);
        assert_eq!(provenance.0["/c/d"], Layer::Pack);
        let mut repo = project.clone();
        merge_patch(&mut repo, &json!({"c": null}));
        provenance.apply(&project, &repo, Layer::Repo);
        assert!(!provenance.0.contains_key("/c/d"));
    }
}
