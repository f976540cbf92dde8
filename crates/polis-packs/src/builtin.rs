//! polis's own five packs, version `1.0` each, with the intents of seed
//! 002's recommended set, written for polis. They leave `defaults.models`
//! unset: polis runs no models, so a team states its own in an override
//! and the planning guidance passes it on.
//!
//! | key | intent |
//! |---|---|
//! | `default` | a baseline that requires nothing and asks for the CI provider |
//! | `beginner-guided` | protocol files, four step sections, four checks, light QA |
//! | `startup-fast` | one check, two step sections; only check findings can block |
//! | `team-standard` | protocol files, seven step sections, four checks |
//! | `enterprise-compliance` | eight step sections, five checks, five blocking questions; meant for `block` |

use crate::error::PackError;
use crate::pack::PackDocument;

/// The built-in packs' source, by file name.
pub const SOURCES: [(&str, &str); 5] = [
    ("default.json", include_str!("builtin/default.json")),
    ("beginner-guided.json", include_str!("builtin/beginner-guided.json")),
    ("startup-fast.json", include_str!("builtin/startup-fast.json")),
    ("team-standard.json", include_str!("builtin/team-standard.json")),
    ("enterprise-compliance.json", include_str!("builtin/enterprise-compliance.json")),
];

/// The key of the pack a project gets when it chooses none.
pub const DEFAULT_KEY: &str = "default";

/// The five built-in packs, validated like any posted pack.
pub fn all() -> Result<Vec<PackDocument>, PackError> {
    SOURCES
        .iter()
        .map(|(file, text)| PackDocument::from_json(&format!("built-in pack `{file}`"), text.as_bytes()))
        .collect()
}
