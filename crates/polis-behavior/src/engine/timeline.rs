//! The timeline a run produces: each NPC's activity changes, their
//! digest, and `timeline.jsonl`, the form `--out` writes and `--verify`
//! reads back.

use std::collections::BTreeMap;

use polis_core::canonical::{self, Digest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::tiers::DetailLevel;

/// One change of an NPC's activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The tick, from 0.
    pub tick: u64,
    /// World seconds.
    pub at_seconds: i64,
    /// The activity started, or `null` when the NPC became idle.
    pub activity_id: Option<String>,
    /// The NPC's simulation tier.
    pub tier: String,
    /// The tier's detail level.
    pub detail: DetailLevel,
    /// Energy once the activity started.
    pub energy: f64,
    /// Valence once the activity started.
    pub valence: f64,
}

/// Every NPC's entries, by NPC id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Entries per NPC, in time order.
    pub npcs: BTreeMap<String, Vec<Entry>>,
}

impl Timeline {
    /// SHA-256 of the timeline's RFC 8785 JSON (`{"npcs": …}`).
    pub fn digest(&self) -> Digest {
        canonical::digest_of(self).unwrap_or_else(|_| Digest::of_bytes(b""))
    }

    /// One line per entry, `{"npc", …entry}`, in tick order then NPC id
    /// order, each line canonical JSON.
    pub fn jsonl(&self) -> String {
        let mut rows: Vec<(u64, &str, &Entry)> =
            self.npcs.iter().flat_map(|(id, es)| es.iter().map(move |e| (e.tick, id.as_str(), e))).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut out = String::new();
        for (_, npc, entry) in rows {
            let mut line = serde_json::to_value(entry).unwrap_or(Value::Null);
            line["npc"] = json!(npc);
            out.push_str(&String::from_utf8_lossy(&canonical::to_canonical_vec(&line).unwrap_or_default()));
            out.push('\n');
        }
        out
    }

    /// Reads [`Timeline::jsonl`] back; the error names the line.
    pub fn from_jsonl(text: &str) -> Result<Timeline, String> {
        #[derive(Deserialize)]
        struct Row {
            npc: String,
            #[serde(flatten)]
            entry: Value,
        }
        let mut timeline = Timeline::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Row = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            let entry: Entry = serde_json::from_value(row.entry).map_err(|e| format!("line {}: {e}", i + 1))?;
            timeline.npcs.entry(row.npc).or_default().push(entry);
        }
        Ok(timeline)
    }

    /// The first entry where `self` and `other` differ, described, or
    /// `None` when they are equal.
    pub fn first_difference(&self, other: &Timeline) -> Option<String> {
        let ids: std::collections::BTreeSet<&String> = self.npcs.keys().chain(other.npcs.keys()).collect();
        let mut first: Option<(u64, String)> = None;
        for id in ids {
            let (a, b) =
                (self.npcs.get(id).map_or(&[][..], Vec::as_slice), other.npcs.get(id).map_or(&[][..], Vec::as_slice));
            let at = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
            if let Some(i) = at {
                let tick = a.get(i).or_else(|| b.get(i)).map_or(0, |e| e.tick);
                let describe = |e: Option<&Entry>| {
                    e.map_or("nothing".to_owned(), |e| serde_json::to_string(e).unwrap_or_default())
                };
                let text = format!("NPC `{id}` entry {i}: expected {}, got {}", describe(a.get(i)), describe(b.get(i)));
                if first.as_ref().is_none_or(|(t, _)| tick < *t) {
                    first = Some((tick, text));
                }
            }
        }
        first.map(|(_, text)| text)
    }
}
