//! The JSON Schemas of a pack document, of a pack's policy body and of an
//! override (a partial policy), built from one description of the
//! sections so the three cannot drift apart.
//!
//! The caps are the original's (TasksGodzilla `validate_policy_pack_definition`):
//! at most 30 step sections, 50 protocol files, 50 required checks, 200
//! clarifications and 200 block codes. Sections are open objects (a pack
//! may carry fields polis does not use, such as `defaults.git.prefer_ssh`),
//! but every field polis does use is typed. The byte cap (256 KB) and the
//! unknown-top-level-key rule are checked in code, before the schema, so
//! their messages name the key.

use serde_json::{Value, json};

/// Most step sections a policy may require.
pub const MAX_STEP_SECTIONS: usize = 30;
/// Most protocol files a policy may require.
pub const MAX_PROTOCOL_FILES: usize = 50;
/// Most required checks in one list (`defaults.ci.required_checks` or
/// `requirements.required_checks`).
pub const MAX_REQUIRED_CHECKS: usize = 50;
/// Most clarifications a policy may ask.
pub const MAX_CLARIFICATIONS: usize = 200;
/// Most block codes a policy may list.
pub const MAX_BLOCK_CODES: usize = 200;

/// The sections a pack's body holds, in the original's order.
pub const PACK_SECTIONS: [&str; 6] =
    ["meta", "defaults", "requirements", "clarifications", "enforcement", "constraints"];

/// The sections an override may set: every section but `meta`.
pub const OVERRIDABLE_SECTIONS: [&str; 5] =
    ["defaults", "requirements", "clarifications", "enforcement", "constraints"];

/// The top-level keys of a pack document.
pub const DOCUMENT_KEYS: [&str; 6] = ["key", "version", "name", "description", "status", "pack"];

/// The phases a clarification applies to, in the order a project meets them.
pub const PHASES: [&str; 4] = ["onboarding", "planning", "execution", "qa"];

fn non_empty_strings(max: usize) -> Value {
    json!({
        "type": "array",
        "maxItems": max,
        "items": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "\\S"}
    })
}

/// Each overridable section's schema, by name.
fn sections() -> Value {
    json!({
        "defaults": {
            "type": "object",
            "properties": {
                "models": {
                    "type": "object",
                    "properties": {
                        "planning": {"type": "string"},
                        "decompose": {"type": "string"},
                        "exec": {"type": "string"},
                        "qa": {"type": "string"}
                    }
                },
                "qa": {
                    "type": "object",
                    "properties": {
                        "policy": {"enum": ["skip", "light", "full"]},
                        "auto_after_exec": {"type": "boolean"},
                        "auto_on_ci": {"type": "boolean"}
                    }
                },
                "git": {
                    "type": "object",
                    "properties": {
                        "prefer_ssh": {"type": "boolean"},
                        "branch_pattern": {"type": "string"},
                        "draft_pr_default": {"type": "boolean"}
                    }
                },
                "ci": {
                    "type": "object",
                    "properties": {
                        "provider": {"type": "string"},
                        "required_checks": non_empty_strings(MAX_REQUIRED_CHECKS)
                    }
                }
            }
        },
        "requirements": {
            "type": "object",
            "properties": {
                "protocol_files": non_empty_strings(MAX_PROTOCOL_FILES),
                "step_sections": non_empty_strings(MAX_STEP_SECTIONS),
                "required_checks": non_empty_strings(MAX_REQUIRED_CHECKS),
                "artifacts": {"type": "array", "maxItems": 200}
            }
        },
        "clarifications": {
            "type": "array",
            "maxItems": MAX_CLARIFICATIONS,
            "items": {
                "type": "object",
                "required": ["key", "question"],
                "properties": {
                    "key": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_.-]+$"},
                    "question": {"type": "string", "minLength": 1},
                    "options": {"type": "array", "minItems": 1, "maxItems": 200},
                    "blocking": {"type": "boolean"},
                    "applies_to": {"enum": PHASES}
                }
            }
        },
        "enforcement": {
            "type": "object",
            "properties": {
                "mode": {"enum": ["warn", "block"]},
                "block_codes": {
                    "type": "array",
                    "maxItems": MAX_BLOCK_CODES,
                    "items": {"type": ["string", "number"]}
                }
            }
        },
        "constraints": {"type": "object"}
    })
}

/// The schema of a pack's body (`pack` in a pack document).
pub fn pack_body() -> Value {
    let mut properties = sections();
    properties["meta"] = json!({
        "type": "object",
        "required": ["key", "version"],
        "properties": {
            "key": {"type": "string", "minLength": 1},
            "version": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
            "description": {"type": "string"}
        }
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["meta"],
        "additionalProperties": false,
        "properties": properties
    })
}

/// The schema of an override: any overridable section, each optional.
pub fn override_body() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "properties": sections()
    })
}

/// The schema of a pack document, the payload of `POST /policy_packs`.
pub fn document() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["key", "version", "pack"],
        "additionalProperties": false,
        "properties": {
            "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
            "version": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$"},
            "name": {"type": "string", "maxLength": 200},
            "description": {"type": "string", "maxLength": 4000},
            "status": {"enum": ["active", "deprecated", "disabled"]},
            "pack": pack_body()
        }
    })
}
