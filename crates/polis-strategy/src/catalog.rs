//! The strategy catalog (`strategies.toml` or `.json`), checked fail-closed.
//!
//! Each entry names a plugin family and version, its params, the features
//! it requires beyond the family's own, the host's limits (cooldown, most
//! parallel positions), a priority and the symbols it trades. Checking
//! never stops at a bad entry: an unknown type or version, invalid params
//! (every reason), a feature the pipeline cannot produce, or no symbols
//! disables that entry with its reasons and leaves the others enabled. A
//! deprecated version runs with a warning. [`Catalog::load`] either yields
//! a whole checked catalog or an error, so a reload swaps catalogs
//! atomically: the caller keeps the old one when the new one fails to parse.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::builtins::{Family, Support, families};
use crate::contract::StrategyContext;
use crate::features::Feature;

/// Most entries a catalog may hold.
pub const MAX_ENTRIES: usize = 1_000;

/// One entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Unique id.
    pub strategy_id: String,
    /// Family.
    pub strategy_type: String,
    /// Family version.
    pub version: String,
    /// Params for the family.
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Features required beyond the family's own.
    #[serde(default)]
    pub feature_requirements: Vec<String>,
    /// Least seconds between two intents of one symbol; none by default.
    #[serde(default)]
    pub cooldown_seconds: Option<u64>,
    /// Most symbols with an open position at once; unlimited by default.
    #[serde(default)]
    pub max_parallel_positions: Option<usize>,
    /// Lower runs first on each event (ties by id).
    #[serde(default)]
    pub priority: i64,
    /// Whether it should run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The symbols it trades.
    #[serde(default)]
    pub symbols: Vec<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    strategies: Vec<CatalogEntry>,
}

/// An entry's state after checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// It runs.
    Enabled,
    /// The catalog turned it off.
    Off,
    /// Checking failed; it does not run.
    Disabled,
}

/// A checked entry.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: CatalogEntry,
    /// Its state.
    pub state: EntryState,
    /// Why it is disabled (empty when enabled).
    pub reasons: Vec<String>,
    /// Warnings that do not disable it (a deprecated version).
    pub warnings: Vec<String>,
    /// Every feature it needs (family's and the entry's), sorted.
    pub features: Vec<String>,
    /// Bars consumed before its intents count.
    pub warmup_bars: usize,
}

impl CheckedEntry {
    /// `strategy_id@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.entry.strategy_id, self.entry.version)
    }

    /// The context its instances see.
    pub fn context(&self) -> StrategyContext {
        StrategyContext {
            strategy_id: self.entry.strategy_id.clone(),
            strategy_type: self.entry.strategy_type.clone(),
            version: self.entry.version.clone(),
            params: self.entry.params.clone(),
        }
    }

    /// The family, when known.
    pub fn family(&self) -> Option<Family> {
        find_family(&self.entry.strategy_type, &self.entry.version)
    }
}

/// Families beyond the built-ins, for [`Catalog::check_with`].
pub type OtherFamilies<'a> =
    dyn Fn(&CatalogEntry) -> Option<Result<Box<dyn crate::contract::StrategyPlugin>, String>> + 'a;

/// Why a catalog file cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog `{file}`: {message}")]
pub struct CatalogError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// A checked catalog, entries in run order (priority, then id).
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// Every entry with its state.
    pub entries: Vec<CheckedEntry>,
}

fn find_family(strategy_type: &str, version: &str) -> Option<Family> {
    families().into_iter().find(|f| f.strategy_type == strategy_type && f.version == version)
}

impl Catalog {
    /// Parses (`.json` by extension, else TOML) and checks a catalog.
    pub fn load(file: &str, text: &str) -> Result<Catalog, CatalogError> {
        let err = |message: String| CatalogError { file: file.to_owned(), message };
        let parsed: CatalogFile = if file.ends_with(".json") {
            serde_json::from_str(text).map_err(|e| err(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| err(e.to_string()))?
        };
        if parsed.strategies.len() > MAX_ENTRIES {
            return Err(err(format!("{} entries exceed the limit of {MAX_ENTRIES}", parsed.strategies.len())));
        }
        Ok(Catalog::check(parsed.strategies))
    }

    /// Checks entries, every problem of every entry collected.
    pub fn check(entries: Vec<CatalogEntry>) -> Catalog {
        Catalog::check_with(entries, &|_| None)
    }

    /// Checks entries as [`Catalog::check`] does, with `other` giving the
    /// families beyond the built-ins (loaded plugins): for an entry whose
    /// type no built-in has, `None` means unknown, `Some(Err(reason))`
    /// disables the entry with the reason, `Some(Ok(plugin))` is an
    /// instance to check the params on (and read features and warm-up
    /// from). A built-in family wins over `other`.
    pub fn check_with(mut entries: Vec<CatalogEntry>, other: &OtherFamilies<'_>) -> Catalog {
        entries.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.strategy_id.cmp(&b.strategy_id)));
        let mut seen = BTreeSet::new();
        let checked = entries
            .into_iter()
            .map(|entry| {
                let duplicate = !seen.insert(entry.strategy_id.clone());
                check_entry(entry, duplicate, other)
            })
            .collect();
        Catalog { entries: checked }
    }

    /// The same entries checked again with `other` families
    /// ([`Catalog::check_with`]); entries that were off stay off.
    pub fn recheck(&self, other: &OtherFamilies<'_>) -> Catalog {
        Catalog::check_with(self.entries.iter().map(|e| e.entry.clone()).collect(), other)
    }

    /// The entries that run.
    pub fn enabled(&self) -> impl Iterator<Item = &CheckedEntry> {
        self.entries.iter().filter(|e| e.state == EntryState::Enabled)
    }
}

fn check_entry(entry: CatalogEntry, duplicate: bool, other: &OtherFamilies<'_>) -> CheckedEntry {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    let mut features = BTreeSet::new();
    let mut warmup = 0;
    if duplicate {
        reasons.push(format!("strategy_id `{}` appears more than once", entry.strategy_id));
    }
    if entry.symbols.is_empty() {
        reasons.push("no symbols to trade".to_owned());
    }
    let plugin = match find_family(&entry.strategy_type, &entry.version) {
        Some(family) => {
            if family.support == Support::Deprecated {
                warnings.push(format!(
                    "`{}@{}` is deprecated and will be removed next release",
                    family.strategy_type, family.version
                ));
            }
            Some((family.make)())
        }
        None => match other(&entry) {
            Some(Ok(plugin)) => Some(plugin),
            Some(Err(reason)) => {
                reasons.push(reason);
                None
            }
            None => {
                let known: Vec<String> = families()
                    .iter()
                    .filter(|f| f.strategy_type == entry.strategy_type)
                    .map(|f| f.version.to_owned())
                    .collect();
                reasons.push(if known.is_empty() {
                    format!("unknown strategy_type `{}`", entry.strategy_type)
                } else {
                    format!(
                        "`{}` has no version `{}` (known: {})",
                        entry.strategy_type,
                        entry.version,
                        known.join(", ")
                    )
                });
                None
            }
        },
    };
    if let Some(mut plugin) = plugin {
        match plugin.validate_params(&entry.params) {
            Ok(()) => {
                features.extend(plugin.required_features());
                warmup = plugin.warmup_bars();
            }
            Err(problems) => reasons.extend(problems.into_iter().map(|p| format!("params: {p}"))),
        }
    }
    features.extend(entry.feature_requirements.iter().cloned());
    for name in &features {
        if let Err(e) = Feature::parse(name) {
            reasons.push(format!("the pipeline cannot produce {e}"));
        }
    }
    let state = if !reasons.is_empty() {
        EntryState::Disabled
    } else if entry.enabled {
        EntryState::Enabled
    } else {
        EntryState::Off
    };
    CheckedEntry { entry, state, reasons, warnings, features: features.into_iter().collect(), warmup_bars: warmup }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
[[strategies]]
strategy_id = "macd"
strategy_type = "legacy_macd_rsi"
version = "1.0.0"
symbols = ["GOOG"]

[[strategies]]
strategy_id = "ghost"
strategy_type = "moon_phase"
version = "1.0.0"
symbols = ["GOOG"]

[[strategies]]
strategy_id = "mr"
strategy_type = "mean_reversion"
version = "1.0.0"
params = { entry_z = 50, exit_z = 60 }
symbols = ["GOOG"]

[[strategies]]
strategy_id = "trend"
strategy_type = "trend_multifactor"
version = "2.0.0"
symbols = ["GOOG"]

[[strategies]]
strategy_id = "wants_magic"
strategy_type = "mean_reversion"
version = "1.0.0"
feature_requirements = ["magic_7"]
symbols = ["GOOG"]
"#;

    #[test]
    fn a_bad_entry_is_disabled_with_reasons_and_the_rest_stay_enabled() {
        let catalog = Catalog::load("strategies.toml", CATALOG).unwrap();
        let state: Vec<(&str, &EntryState, &[String])> =
            catalog.entries.iter().map(|e| (e.entry.strategy_id.as_str(), &e.state, e.reasons.as_slice())).collect();
        insta::assert_debug_snapshot!(state);
        assert_eq!(catalog.enabled().map(|e| e.entry.strategy_id.as_str()).collect::<Vec<_>>(), ["macd"]);
    }

    #[test]
    fn an_unparseable_catalog_is_an_error_not_an_empty_catalog() {
        let err = Catalog::load("s.toml", "[[strategies]]\nstrategy_id = 3\n").unwrap_err();
        assert!(err.to_string().starts_with("catalog `s.toml`:"), "{err}");
        assert!(Catalog::load("s.json", "{\"strategies\": [], \"extra\": 1}").is_err());
    }
}
