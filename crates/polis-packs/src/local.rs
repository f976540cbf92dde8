//! The repo-local policy file, read as untrusted input.
//!
//! polis looks for `.polis/policy.json`, `.polis/policy.yml`,
//! `.polis/policy.yaml`, and, for repositories set up for TasksGodzilla,
//! the same names under `.tasksgodzilla/`. More than one present is an
//! error (polis will not guess which one the repository meant); none is no
//! repo-local layer.
//!
//! The file must be a regular file (a symbolic link is refused, so the
//! repository cannot point polis at a file outside it), at most
//! [`MAX_FILE_BYTES`], UTF-8, and one JSON object or one YAML document.
//! YAML is parsed by serde-saphyr under a budget: at most
//! [`MAX_YAML_ALIASES`] aliases and anchors (so an alias bomb stops
//! early), nesting at most [`crate::check::MAX_DEPTH`], duplicate keys an
//! error, no custom tags, no property interpolation (so `${VAR}` is never
//! expanded from the environment). The parsed value then passes every
//! check an override passes ([`crate::check::policy`]), including the
//! secrets rule. Error messages name the file and never quote it.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::check::{self, Kind};
use crate::error::PackError;

/// Largest repo-local file polis reads.
pub const MAX_FILE_BYTES: u64 = check::MAX_BYTES as u64;

/// Most aliases, and most anchors, a repo-local YAML file may use.
pub const MAX_YAML_ALIASES: usize = 64;

/// Where polis looks, relative to the repository root, in this order.
pub const CANDIDATES: [&str; 6] = [
    ".polis/policy.json",
    ".polis/policy.yml",
    ".polis/policy.yaml",
    ".tasksgodzilla/policy.json",
    ".tasksgodzilla/policy.yml",
    ".tasksgodzilla/policy.yaml",
];

/// A loaded, checked repo-local policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoLocal {
    /// The file, relative to the repository root.
    pub file: String,
    /// Its content: a partial policy applied as a merge patch.
    pub patch: Value,
}

/// Finds and loads the repository's policy file, if it has one.
pub fn load(repo: &Path) -> Result<Option<RepoLocal>, PackError> {
    let present: Vec<&str> = CANDIDATES.iter().copied().filter(|c| repo.join(c).symlink_metadata().is_ok()).collect();
    match present.as_slice() {
        [] => Ok(None),
        [file] => {
            let path = repo.join(file);
            let patch = load_file(&path, file)?;
            Ok(Some(RepoLocal { file: (*file).to_owned(), patch }))
        }
        many => Err(PackError::Rejected {
            subject: format!("repository `{}`", repo.display()),
            message: format!("has more than one repo-local policy file ({}); keep one", many.join(", ")),
        }),
    }
}

/// Reads and checks one repo-local policy file; `name` is how errors refer
/// to it.
pub fn load_file(path: &Path, name: &str) -> Result<Value, PackError> {
    read_policy_file(path, &format!("repo-local policy `{name}`"))
}

/// Reads and checks any partial-policy file (a repo-local file, or project
/// overrides given to the CLI) under the rules of this module: JSON when
/// the name ends in `.json`, YAML otherwise.
pub fn read_policy_file(path: &Path, subject: &str) -> Result<Value, PackError> {
    let value = read_document(path, subject)?;
    check::policy(subject, &value, Kind::Override)?;
    Ok(value)
}

/// Reads one JSON or YAML document under this module's caps, without the
/// policy checks (for answers, waivers and operations files).
pub fn read_document(path: &Path, subject: &str) -> Result<Value, PackError> {
    let subject = subject.to_owned();
    let name = path.to_string_lossy().into_owned();
    let io = |e: std::io::Error| PackError::Io { subject: subject.clone(), message: e.to_string() };
    let meta = path.symlink_metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(PackError::Rejected {
            subject,
            message: "must be a regular file (symbolic links and devices are refused)".into(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(PackError::TooLarge { subject, bytes: meta.len(), cap: MAX_FILE_BYTES });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(io)?.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PackError::TooLarge { subject, bytes: bytes.len() as u64, cap: MAX_FILE_BYTES });
    }
    let text = String::from_utf8(bytes).map_err(|_| PackError::Parse {
        subject: subject.clone(),
        format: "UTF-8",
        message: "the file is not UTF-8 text".into(),
    })?;
    if name.ends_with(".json") { parse_json(&subject, &text) } else { parse_yaml(&subject, &text) }
}

/// Parses JSON, refusing repeated keys; serde_json's own recursion limit
/// (128) stops a deeply nested file before the depth check does.
pub fn parse_json(subject: &str, text: &str) -> Result<Value, PackError> {
    parse_json_strict(subject, text.as_bytes())
}

/// Parses one YAML document under the budget described in this module.
pub fn parse_yaml(subject: &str, text: &str) -> Result<Value, PackError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = check::MAX_DEPTH + 1;
    budget.max_aliases = MAX_YAML_ALIASES;
    budget.max_anchors = MAX_YAML_ALIASES;
    budget.max_documents = 1;
    budget.max_nodes = 100_000;
    budget.max_events = 200_000;
    budget.max_total_scalar_bytes = check::MAX_BYTES;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_recorded_anchor_bytes = check::MAX_BYTES;
    budget.flow_nesting_limit = check::MAX_DEPTH + 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options.reject_unsupported_tags = true;
    options.with_snippet = false;
    let value: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| PackError::Parse {
        subject: subject.into(),
        format: "YAML",
        message: e.to_string(),
    })?;
    Ok(value)
}

/// A JSON value whose objects may not repeat a key. serde_json keeps the
/// last of repeated keys silently; a policy file that says two things
/// about one key is refused instead.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|Strict(v)| v)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON text, refusing repeated keys.
pub fn parse_json_strict(subject: &str, bytes: &[u8]) -> Result<Value, PackError> {
    serde_json::from_slice::<Strict>(bytes).map(|Strict(v)| v).map_err(|e| PackError::Parse {
        subject: subject.into(),
        format: "JSON",
        message: e.to_string(),
    })
}
