//! Strategy plugins from plugin directories, run beside the built-in
//! families.
//!
//! [`LoadedStrategies::load`] walks allowlisted plugin roots with
//! [`polis_plugins::load_stateful_endpoints`] for the [`Strategy`]
//! contract: every subdirectory whose `manifest.json` names
//! `"contract": "strategy.v1"` loads in its tier (process, wasm, remote),
//! and each one that fails is reported with its reason. A wasm plugin keeps
//! one module instance for all its calls, as a process plugin keeps its
//! worker, so the instances' state lives in the plugin keyed by `instance`
//! ([`crate::endpoint`]).
//!
//! **The naming rule.** A catalog entry runs a plugin when its
//! `strategy_type` is the plugin manifest's `policy_version` and its
//! `version` the manifest's `plugin_version`:
//!
//! ```toml
//! [[strategies]]
//! strategy_id = "mr_py"
//! strategy_type = "strategy.mean_reversion_py.v1"   # manifest policy_version
//! version = "1.0.0"                                 # manifest plugin_version
//! params = { entry_z = 1.8 }
//! symbols = ["GOOG"]
//! ```
//!
//! A policy version has at least two dot-separated segments, so it is never
//! a built-in family's name (`mean_reversion`, …); a plugin whose policy
//! version is an earlier plugin's does not load. Fail
//! closed: an entry naming no built-in and no loaded plugin is disabled
//! (`unknown strategy_type`), as is one whose version is not the plugin's
//! or whose params the plugin refuses (every reason it gives), or whose
//! plugin cannot be reached.
//!
//! **Instances.** [`engine_for`] makes one [`EndpointStrategy`] per
//! (strategy, symbol), on the symbol's first event, with the instance id
//! `e<N>/<strategy_id>@<version>/<k>`: `N` counts the engines made from
//! this [`LoadedStrategies`] (so an engine rebuilt after a catalog reload
//! never meets an older engine's state in the same worker) and `k` counts
//! the entry's instances in the order their symbols first appear, so a
//! replay names them the same way every time.
//!
//! [`conformance`] runs the strategy test matrix on one plugin
//! (`polis plugin test`).
//!
//! # Wiring `--plugin-dir`
//!
//! ```no_run
//! # fn demo(catalog: &polis_strategy::catalog::Catalog) -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use polis_strategy::plugins::{LoadedStrategies, engine_for};
//!
//! let tiers = polis_plugins::Tiers::new()?;
//! let (plugins, reports) = LoadedStrategies::load(&[Path::new("plugins")], &tiers);
//! for report in reports.iter().filter(|r| r.outcome.is_err()) {
//!     eprintln!("warning: plugin in `{}` disabled: {:?}", report.source.display(), report.outcome);
//! }
//! // What `catalog check` shows: the entries re-checked against the plugins.
//! let checked = plugins.check(catalog);
//! let engine = engine_for(&checked, Default::default(), &plugins);
//! # let _ = engine;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use polis_core::canonical::Digest;
use polis_core::policy::PluginEndpoint;
use polis_plugins::{LoadReport, Loaded, Tiers};
use polis_runtime::BreakerConfig;

use crate::bars::Bar;
use crate::catalog::{Catalog, CatalogEntry, CheckedEntry, EntryState};
use crate::contract::{Event, IntentRecord, REQUIRED_METHODS, Strategy, StrategyPlugin};
use crate::endpoint::EndpointStrategy;
use crate::engine::Engine;
use crate::features::{Row, Streams};

/// The strategy plugins loaded from plugin roots, by policy version.
pub struct LoadedStrategies {
    plugins: BTreeMap<String, Loaded>,
    /// Engines and checks made so far, for instance ids.
    scopes: AtomicU64,
}

impl std::fmt::Debug for LoadedStrategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedStrategies").field("plugins", &self.plugins.keys().collect::<Vec<_>>()).finish()
    }
}

impl Default for LoadedStrategies {
    fn default() -> Self {
        LoadedStrategies::none()
    }
}

impl LoadedStrategies {
    /// No plugins: only built-in families run.
    pub fn none() -> LoadedStrategies {
        LoadedStrategies { plugins: BTreeMap::new(), scopes: AtomicU64::new(0) }
    }

    /// Loads every `strategy.v1` plugin in the subdirectories of `roots`
    /// (each root as `--plugin-dir` names it), with one report per claimed
    /// directory, in directory order. A plugin whose policy version is an
    /// earlier plugin's is reported as not loaded. Process workers start on a plugin's first call unless
    /// `tiers.start_processes`.
    pub fn load(roots: &[&Path], tiers: &Tiers) -> (LoadedStrategies, Vec<LoadReport>) {
        let (loaded, mut reports) = polis_plugins::load_stateful_endpoints::<Strategy>(roots, tiers, REQUIRED_METHODS);
        let mut loaded = loaded.into_iter();
        let mut plugins = LoadedStrategies::none();
        for report in &mut reports {
            if report.outcome.is_ok()
                && let Some(plugin) = loaded.next()
            {
                report.outcome = plugins.add(plugin);
            }
        }
        (plugins, reports)
    }

    /// Loads the one plugin in `dir`; `None` when its manifest names
    /// another contract.
    pub fn load_plugin(dir: &Path, tiers: &Tiers) -> Option<(LoadedStrategies, LoadReport)> {
        let (loaded, mut report) = polis_plugins::load_stateful_dir::<Strategy>(dir, tiers, REQUIRED_METHODS)?;
        let mut plugins = LoadedStrategies::none();
        if let (Some(plugin), Ok(())) = (loaded, &report.outcome) {
            report.outcome = plugins.add(plugin);
        }
        Some((plugins, report))
    }

    fn add(&mut self, plugin: Loaded) -> Result<(), String> {
        let version = plugin.manifest.policy_version.clone();
        let id = &plugin.manifest.plugin_id;
        if let Some(other) = self.plugins.get(&version) {
            return Err(format!(
                "plugin `{id}`: policy_version `{version}` is already plugin `{}`'s",
                other.manifest.plugin_id
            ));
        }
        self.plugins.insert(version, plugin);
        Ok(())
    }

    /// The loaded plugins, by policy version.
    pub fn plugins(&self) -> impl Iterator<Item = &Loaded> {
        self.plugins.values()
    }

    /// Whether no plugin loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugin an entry names, by the naming rule; `None` when its
    /// `strategy_type` is no plugin's policy version, `Err` when the
    /// version is not the plugin's.
    fn find(&self, entry: &CatalogEntry) -> Option<Result<&Loaded, String>> {
        let plugin = self.plugins.get(&entry.strategy_type)?;
        let m = &plugin.manifest;
        if m.plugin_version != entry.version {
            return Some(Err(format!(
                "plugin `{}` (`{}`) is version `{}`, not `{}`",
                m.plugin_id, m.policy_version, m.plugin_version, entry.version
            )));
        }
        Some(Ok(plugin))
    }

    fn scope(&self, what: &str) -> String {
        format!("{what}{}", self.scopes.fetch_add(1, Ordering::Relaxed))
    }

    /// The catalog's entries checked again with these plugins: an entry
    /// naming a plugin is enabled when the plugin accepts its params (its
    /// features and warm-up are the plugin's answers), else disabled with
    /// the reasons. Checking asks each such plugin `validate_params`,
    /// `required_features` and `warmup_bars` on an instance of its own.
    pub fn check(&self, catalog: &Catalog) -> Catalog {
        if self.plugins.is_empty() {
            return catalog.clone();
        }
        let scope = self.scope("check");
        catalog.recheck(&|entry: &CatalogEntry| {
            let plugin = match self.find(entry)? {
                Ok(plugin) => plugin,
                Err(reason) => return Some(Err(reason)),
            };
            let instance = format!("{scope}/{}@{}", entry.strategy_id, entry.version);
            Some(Ok(Box::new(EndpointStrategy::new(plugin.endpoint.clone(), instance)) as Box<dyn StrategyPlugin>))
        })
    }
}

/// The factory [`Engine::with_plugins`] takes, per entry.
type Factory = Box<dyn Fn() -> Box<dyn StrategyPlugin> + Send>;

/// An engine for the catalog's enabled entries: built-in families, and
/// the loaded plugins by the naming rule (the module doc), one
/// [`EndpointStrategy`] instance per (strategy, symbol). The catalog is
/// first re-checked with the plugins ([`LoadedStrategies::check`]), so a
/// catalog loaded with [`Catalog::load`] alone, whose plugin entries it
/// disabled as unknown, can be passed as it is; with no plugins this is
/// [`Engine::new`].
pub fn engine_for(catalog: &Catalog, breaker: BreakerConfig, plugins: &LoadedStrategies) -> Engine {
    if plugins.is_empty() {
        return Engine::new(catalog, breaker);
    }
    let checked = plugins.check(catalog);
    let scope = plugins.scope("e");
    Engine::with_plugins(&checked, breaker, |entry: &CheckedEntry| -> Option<Factory> {
        if let Some(family) = entry.family() {
            return Some(Box::new(move || (family.make)()));
        }
        let endpoint: Arc<dyn PluginEndpoint> = plugins.find(&entry.entry)?.ok()?.endpoint.clone();
        let prefix = format!("{scope}/{}", entry.key());
        let made = AtomicUsize::new(0);
        Some(Box::new(move || {
            let k = made.fetch_add(1, Ordering::Relaxed);
            Box::new(EndpointStrategy::new(endpoint.clone(), format!("{prefix}/{k}"))) as Box<dyn StrategyPlugin>
        }))
    })
}

// -------------------------------------------------------------- conformance

/// Bars in the conformance fixture.
pub const FIXTURE_BARS: usize = 1_000;

/// The slowest a plugin may be in the conformance run, events a second
/// (1 ms an event, features and host included).
pub const MIN_EVENTS_PER_SECOND: f64 = 1_000.0;

/// The parameter no plugin knows, which it must refuse.
pub const UNKNOWN_PARAM: &str = "polis_conformance_unknown_param";

/// The conformance fixture: `n` seeded daily bars of symbol `SYN`, a
/// random walk of ±1 % a day from 100, the same on every machine.
pub fn fixture_bars(n: usize) -> Vec<Bar> {
    // 2020-01-01 plus i days.
    crate::bars::random_walk(n, 1_577_836_800, 86_400)
}

/// One check of the strategy test matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCheck {
    /// `catalog`, `deterministic`, `params`, `warmup_boundary`,
    /// `missing_features`, `stale_events`, `performance` or `replay_parity`.
    pub name: &'static str,
    /// The intent digest of the run it checked, when it ran one.
    pub digest: Option<String>,
    /// What is wrong; empty when it passed.
    pub problems: Vec<String>,
    /// What it measured or found, for the report.
    pub note: Option<String>,
}

impl MatrixCheck {
    fn new(name: &'static str) -> MatrixCheck {
        MatrixCheck { name, digest: None, problems: Vec::new(), note: None }
    }
}

/// A run of an engine over rows: the intents, the digest, the time taken
/// and the counters of its one strategy.
struct Run {
    intents: Vec<IntentRecord>,
    digest: Digest,
    seconds: f64,
    counters: crate::engine::StrategyCounters,
}

fn run_rows(engine: &mut Engine, rows: &[Row]) -> Result<Run, String> {
    let start = Instant::now();
    let mut intents = Vec::new();
    for row in rows {
        intents.extend(engine.on_row(row, "1d"));
    }
    let seconds = start.elapsed().as_secs_f64();
    let bytes = crate::replay::intents_jsonl(&intents).map_err(|e| e.to_string())?;
    let counters = engine.counters().into_iter().next().map(|(_, c)| c).unwrap_or_default();
    Ok(Run { intents, digest: Digest::of_bytes(&bytes), seconds, counters })
}

/// Runs the strategy test matrix (the seed's "required per plugin") on the
/// one plugin of `plugins`, whose directory is `dir`, over
/// [`fixture_bars`]`(`[`FIXTURE_BARS`]`)` with the plugin's default params
/// (`{}`, which it must accept):
///
/// - `catalog`: an entry naming the plugin is enabled;
/// - `deterministic`: two runs on fresh instances give the same intents
///   (digest reported), without a plugin error;
/// - `params`: `validate_params` refuses [`UNKNOWN_PARAM`];
/// - `warmup_boundary`: the plugin started fresh `warmup_bars` before a bar
///   at which the full run holds no position (at or after the middle of the
///   fixture) emits, from that bar on, exactly the full run's intents;
///   given the same feature vectors, so only the plugin's own memory is
///   tested: more history than its warm-up must not matter;
/// - `missing_features`: for each required feature, an event without it
///   gets no intent (and no error) from a validated instance;
/// - `stale_events`: an event repeated or out of order produces no intent
///   and the intents after it are the clean run's;
/// - `performance`: at least [`MIN_EVENTS_PER_SECOND`] (events/s noted);
/// - `replay_parity`: the digest equals `expected/replay.sha256` in `dir`,
///   when the file exists (else the note says what to write there).
pub fn conformance(plugins: &LoadedStrategies, dir: &Path) -> Vec<MatrixCheck> {
    let mut checks = Vec::new();
    let Some(plugin) = plugins.plugins().next() else { return checks };
    let m = &plugin.manifest;
    let text = format!(
        "[[strategies]]\nstrategy_id = \"conformance\"\nstrategy_type = {}\nversion = {}\nsymbols = [\"SYN\"]\n",
        toml_str(&m.policy_version),
        toml_str(&m.plugin_version)
    );
    let mut catalog_check = MatrixCheck::new("catalog");
    let catalog = match Catalog::load("conformance.toml", &text) {
        Ok(catalog) => plugins.check(&catalog),
        Err(e) => {
            catalog_check.problems.push(e.to_string());
            checks.push(catalog_check);
            return checks;
        }
    };
    let Some(entry) = catalog.entries.first().cloned() else { return checks };
    if entry.state != EntryState::Enabled {
        catalog_check.problems.extend(entry.reasons.iter().map(|r| format!("with params `{{}}`: {r}")));
        checks.push(catalog_check);
        return checks;
    }
    catalog_check.note = Some(format!("features [{}], warm-up {} bars", entry.features.join(", "), entry.warmup_bars));
    checks.push(catalog_check);

    let bars = fixture_bars(FIXTURE_BARS);
    let breaker = BreakerConfig::default();
    let mut first = engine_for(&catalog, breaker, plugins);
    let mut streams = Streams::new(first.features().clone());
    let rows: Vec<Row> = bars.iter().map(|b| streams.push(b)).collect();
    let runs = (run_rows(&mut first, &rows), run_rows(&mut engine_for(&catalog, breaker, plugins), &rows));

    let mut det = MatrixCheck::new("deterministic");
    let (a, b) = match runs {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            det.problems.push(e);
            checks.push(det);
            return checks;
        }
    };
    det.digest = Some(a.digest.to_hex());
    if a.counters.errors > 0 {
        det.problems.push(format!(
            "the plugin failed on {} of {} events; last: {}",
            a.counters.errors,
            a.counters.events,
            a.counters.last_error.as_deref().unwrap_or("?")
        ));
    }
    if a.digest != b.digest {
        let at = crate::replay::first_difference(&a.intents, &b.intents).map_or(0, |(i, _, _)| i);
        det.problems.push(format!(
            "nondeterministic: two runs gave digests {} and {}; they first differ at intent {at}",
            a.digest.to_hex(),
            b.digest.to_hex()
        ));
    }
    det.note = Some(format!("{} intents over {} events", a.intents.len(), rows.len()));
    checks.push(det);

    checks.push(check_params(plugin));
    checks.push(check_warmup(&catalog, plugins, &rows, &a, entry.warmup_bars));
    checks.push(check_missing(plugin, &entry, &rows));
    checks.push(check_stale(&catalog, plugins, &rows, &a));

    let mut perf = MatrixCheck::new("performance");
    let rate = rows.len() as f64 / a.seconds.max(1e-9);
    perf.note = Some(format!(
        "{rate:.0} events/s ({:.1} µs an event, features and host included)",
        a.seconds * 1e6 / rows.len() as f64
    ));
    if rate < MIN_EVENTS_PER_SECOND {
        perf.problems.push(format!("{rate:.0} events/s is below the budget of {MIN_EVENTS_PER_SECOND:.0}"));
    }
    checks.push(perf);

    let expected = dir.join("expected").join("replay.sha256");
    let mut parity = MatrixCheck::new("replay_parity");
    parity.digest = Some(a.digest.to_hex());
    match std::fs::read_to_string(&expected) {
        Ok(text) => {
            let want = text.trim();
            if want != a.digest.to_hex() {
                parity.problems.push(format!(
                    "digest {} differs from `{}` ({want})",
                    a.digest.to_hex(),
                    expected.display()
                ));
            }
            checks.push(parity);
        }
        Err(_) => {
            parity.note =
                Some(format!("no `{}`; write {} there to freeze this replay", expected.display(), a.digest.to_hex()));
            checks.push(parity);
        }
    }
    checks
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn check_params(plugin: &Loaded) -> MatrixCheck {
    let mut check = MatrixCheck::new("params");
    let mut instance = EndpointStrategy::new(plugin.endpoint.clone(), "conformance/params");
    match instance.validate_params(&serde_json::json!({ UNKNOWN_PARAM: 1 })) {
        Ok(()) => check.problems.push(format!("accepted the unknown param `{UNKNOWN_PARAM}`; a plugin must refuse it")),
        Err(reasons) => check.note = Some(format!("refused `{UNKNOWN_PARAM}`: {}", reasons.join("; "))),
    }
    check
}

fn check_warmup(catalog: &Catalog, plugins: &LoadedStrategies, rows: &[Row], full: &Run, warmup: usize) -> MatrixCheck {
    let mut check = MatrixCheck::new("warmup_boundary");
    // The full run's position after each bar: that of its latest intent.
    let mut flat_after = Vec::with_capacity(rows.len());
    let mut intents = full.intents.iter().peekable();
    let mut flat = true;
    for row in rows {
        while let Some(i) = intents.next_if(|i| i.event_ts <= row.ts) {
            flat = i.intent.direction == crate::contract::Direction::Flat;
        }
        flat_after.push(flat);
    }
    // The first active bar of the cut run: at or after the middle, with the
    // full run flat just before the cut starts.
    let start = (rows.len() / 2).max(warmup + 1);
    let Some(active) = (start..rows.len()).find(|&c| flat_after[c - warmup - 1]) else {
        check.problems.push(format!(
            "no bar after the middle of the {}-bar fixture is {warmup} bars after a flat position",
            rows.len()
        ));
        return check;
    };
    let mut engine = engine_for(catalog, BreakerConfig::default(), plugins);
    let cut = match run_rows(&mut engine, &rows[active - warmup..]) {
        Ok(run) => run,
        Err(e) => {
            check.problems.push(e);
            return check;
        }
    };
    let from = rows[active].ts;
    let want: Vec<&IntentRecord> = full.intents.iter().filter(|i| i.event_ts >= from).collect();
    let got: Vec<&IntentRecord> = cut.intents.iter().collect();
    check.digest = Some(cut.digest.to_hex());
    if let Some(k) = (0..want.len().max(got.len())).find(|&k| want.get(k) != got.get(k)) {
        let show = |i: Option<&&IntentRecord>| {
            i.map_or("none".to_owned(), |i| {
                format!(
                    "{} at {} ({})",
                    serde_json::to_string(&i.intent.direction).unwrap_or_default(),
                    i.event_ts,
                    i.intent_id
                )
            })
        };
        check.problems.push(format!(
            "started {warmup} bars (its warm-up) before bar {active}, it differs from the full run at intent {k} from that bar: {} instead of {}; does it need more history than `warmup_bars`?",
            show(got.get(k)),
            show(want.get(k))
        ));
    }
    check.note =
        Some(format!("cut at bar {}, first active bar {active}; {} intents after it", active - warmup, want.len()));
    check
}

fn check_missing(plugin: &Loaded, entry: &CheckedEntry, rows: &[Row]) -> MatrixCheck {
    let mut check = MatrixCheck::new("missing_features");
    let Some(last) = rows.last() else { return check };
    let ctx = entry.context();
    for (k, feature) in entry.features.iter().enumerate() {
        let mut instance = EndpointStrategy::new(plugin.endpoint.clone(), format!("conformance/missing/{k}"));
        if let Err(reasons) = instance.validate_params(&entry.entry.params) {
            check.problems.push(format!("params refused: {}", reasons.join("; ")));
            return check;
        }
        let mut row = last.clone();
        if let Some(slot) = row.set.slot(feature) {
            row.values[slot] = None;
        }
        let event = Event { row: &row, timeframe: "1d", upstream: &[] };
        match instance.on_event(&event, &ctx) {
            Ok(None) => {}
            Ok(Some(intent)) => check.problems.push(format!(
                "without `{feature}` it emitted a {} intent; with a required feature missing it must emit none",
                serde_json::to_string(&intent.direction).unwrap_or_default()
            )),
            Err(e) => check.problems.push(format!("without `{feature}` it failed ({e}); it must answer no intent")),
        }
    }
    check.note = Some(format!("each of [{}] left out in turn", entry.features.join(", ")));
    check
}

fn check_stale(catalog: &Catalog, plugins: &LoadedStrategies, rows: &[Row], clean: &Run) -> MatrixCheck {
    let mut check = MatrixCheck::new("stale_events");
    // Every 50th event is followed by itself again and by its predecessor.
    let mut noisy = Vec::with_capacity(rows.len() + rows.len() / 25);
    let mut injected = 0;
    for (i, row) in rows.iter().enumerate() {
        noisy.push(row.clone());
        if i > 0 && i % 50 == 0 {
            noisy.push(row.clone());
            noisy.push(rows[i - 1].clone());
            injected += 2;
        }
    }
    let mut engine = engine_for(catalog, BreakerConfig::default(), plugins);
    match run_rows(&mut engine, &noisy) {
        Ok(run) => {
            if run.counters.stale != injected {
                check.problems.push(format!("{} of {injected} stale events were dropped", run.counters.stale));
            }
            if run.digest != clean.digest {
                let at = crate::replay::first_difference(&run.intents, &clean.intents).map_or(0, |(i, _, _)| i);
                check.problems.push(format!("stale events changed the intents (first at intent {at})"));
            }
            check.note = Some(format!("{injected} repeated or out-of-order events"));
        }
        Err(e) => check.problems.push(e),
    }
    check
}
