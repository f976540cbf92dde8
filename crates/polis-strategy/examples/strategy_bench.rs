//! Throughput of the feature pipeline and the built-in strategies, beside
//! a naive recompute, on a seeded synthetic series.
//!
//! `cargo run --release -p polis-strategy --example strategy_bench -- [BARS]
//! [--csv OUT.csv] [--goog GOOG.csv] [--plugins N]` (1,000,000 bars by
//! default; `--csv` writes the synthetic series for the backtesting.py
//! peer, `--goog` also times `legacy_macd_rsi` on that file; `--plugins N`
//! times only `mean_reversion` as the built-in, a wasm plugin and a Python
//! process plugin on the first N bars, and one wasm call resident against
//! a fresh instance). Prints events/s for: the default features alone;
//! features + each built-in family through the host (`Engine`, with
//! validation and counters); and the naive alternative, which recomputes
//! every feature for each bar from a fresh pipeline over its trailing
//! 100 bars (as a per-bar rolling-window recompute does), run on a
//! 20,000-bar slice. One run, one core.

use std::sync::Arc;
use std::time::Instant;

use polis_runtime::BreakerConfig;
use polis_strategy::bars::Bar;
use polis_strategy::catalog::Catalog;
use polis_strategy::engine::Engine;
use polis_strategy::features::{FeatureSet, Pipeline};

fn bars(n: usize) -> Vec<Bar> {
    polis_strategy::bars::random_walk(n, 1_000_000_000, 60)
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:>8.2} M events/s ({:.1} ns/event)", n as f64 / secs / 1e6, secs * 1e9 / n as f64)
}

/// Times features + `legacy_macd_rsi` through the engine, best of 3 (the
/// peer's figure is one `Backtest.run()`).
fn legacy(data: &[Bar], label: &str) {
    let catalog = match Catalog::load(
        "bench.toml",
        "[[strategies]]\nstrategy_id = \"legacy\"\nstrategy_type = \"legacy_macd_rsi\"\nversion = \"1.0.0\"\nsymbols = [\"SYN\"]\n",
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut best = f64::INFINITY;
    let mut intents = 0;
    for _ in 0..3 {
        let mut engine = Engine::new(&catalog, BreakerConfig::default());
        let mut streams = polis_strategy::features::Streams::new(engine.features().clone());
        let start = Instant::now();
        intents = 0;
        for b in data {
            let row = streams.push(b);
            intents += engine.on_row(&row, "1d").len();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "polis legacy_macd_rsi {label}: {} bars, {best:.4} s, {:.0} bars/s, {intents} intents",
        data.len(),
        data.len() as f64 / best
    );
}

/// Per-event cost of `mean_reversion` as a sandboxed Python process plugin
/// (tests/fixtures/mean_reversion_py) against the built-in, on `data`.
fn process(data: &[Bar]) {
    use polis_core::policy::PluginEndpoint;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mean_reversion_py");
    let manifest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .and_then(|v| polis_core::Manifest::from_value(v).ok());
    let Some(manifest) = manifest else {
        eprintln!("cannot load the fixture manifest");
        std::process::exit(2);
    };
    let python = polis_testdata::python();
    let mut sandbox = polis_process::SandboxConfig::default();
    sandbox.read_paths.extend([python.prefix.clone(), python.sdk.clone()]);
    if let Some(bin) = python.exe.parent() {
        sandbox.read_paths.push(bin.to_path_buf());
    }
    let env = vec![("PYTHONPATH".to_owned(), python.sdk.display().to_string())];
    let spec = polis_process::ProcessSpec { program: python.exe, args: vec!["plugin.py".into()], dir, env };
    let config = polis_process::ProcessConfig { sandbox, ..polis_process::ProcessConfig::default() };
    let plugin = polis_process::ProcessPlugin::new(
        manifest,
        spec,
        config,
        polis_core::permission::PermissionCatalog::platform(),
    );
    if let Err(e) = plugin.start_worker() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let endpoint: Arc<dyn PluginEndpoint> = Arc::new(plugin);
    let text = "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nsymbols = [\"SYN\"]\n";
    let Ok(catalog) = Catalog::load("bench.toml", text) else { std::process::exit(2) };
    let mut engine = Engine::with_plugins(&catalog, BreakerConfig::default(), |_| {
        let endpoint = endpoint.clone();
        Some(Box::new(move || {
            Box::new(polis_strategy::endpoint::EndpointStrategy::new(endpoint.clone(), "mr"))
                as Box<dyn polis_strategy::contract::StrategyPlugin>
        }))
    });
    let mut streams = polis_strategy::features::Streams::new(engine.features().clone());
    let start = Instant::now();
    let mut intents = 0;
    for b in data {
        let row = streams.push(b);
        intents += engine.on_row(&row, "1d").len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("features + mean_reversion, Python process plugin  {}  [{intents} intents]", rate(data.len(), secs));
}

/// A plugin root in a scratch directory holding the Python mean_reversion
/// fixture (with the SDK) and the wasm one (examples/plugins/mean-reversion-rust,
/// built for wasm32-unknown-unknown).
fn plugin_root() -> Result<std::path::PathBuf, String> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = std::env::temp_dir().join(format!("polis-strategy-bench-{}", std::process::id()));
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to.parent().unwrap_or(to))
            .and_then(|()| std::fs::copy(from, to))
            .map_err(|e| format!("`{}`: {e}", from.display()))
    };
    let py = repo.join("crates/polis-strategy/tests/fixtures/mean_reversion_py");
    for (from, name) in [(&py, "manifest.json"), (&py, "plugin.py")] {
        copy(&from.join(name), &root.join("py").join(name))?;
    }
    for name in ["polis_plugin.py", "polis_strategy.py"] {
        copy(&repo.join("sdk/python").join(name), &root.join("py").join(name))?;
    }
    copy(&repo.join("examples/plugins/mean-reversion-rust/manifest.json"), &root.join("wasm/manifest.json"))?;
    let module = "polis_example_mean_reversion.wasm";
    copy(&repo.join("target/wasm32-unknown-unknown/release").join(module), &root.join("wasm").join(module)).map_err(
        |e| {
            format!(
                "{e}; build it: cargo build --release -p polis-example-mean-reversion --target wasm32-unknown-unknown"
            )
        },
    )?;
    Ok(root)
}

/// Per-event cost of `mean_reversion` as the built-in, as a wasm plugin
/// (one resident module instance) and as a Python process plugin, each
/// loaded as `--plugin-dir` loads it and run through the engine with the
/// features; and the cost of one call in a resident module against a fresh
/// instance per call (`warmup_bars`, the cheapest method). Best of 3.
fn plugins(data: &[Bar]) {
    use polis_core::policy::{CallEnv, RunControl, no_host};
    use polis_strategy::plugins::{LoadedStrategies, engine_for};
    let root = match plugin_root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let Ok(tiers) = polis_plugins::Tiers::new() else { std::process::exit(2) };
    let (loaded, reports) = LoadedStrategies::load(&[&root], &tiers);
    if let Some(r) = reports.iter().find(|r| r.outcome.is_err()) {
        eprintln!("`{}`: {:?}", r.source.display(), r.outcome);
        std::process::exit(2);
    }
    println!("plugin tiers, {} bars of SYN:", data.len());
    let mut builtin_ns = 0.0;
    for (label, strategy_type) in [
        ("built-in", "mean_reversion"),
        ("wasm plugin (resident instance)", "strategy.mean_reversion_wasm.v1"),
        ("Python process plugin", "strategy.mean_reversion_py.v1"),
    ] {
        let text = format!(
            "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"{strategy_type}\"\nversion = \"1.0.0\"\nsymbols = [\"SYN\"]\n"
        );
        let Ok(catalog) = Catalog::load("bench.toml", &text) else { std::process::exit(2) };
        let mut best = f64::INFINITY;
        let mut intents = 0;
        for _ in 0..3 {
            let mut engine = engine_for(&catalog, BreakerConfig::default(), &loaded);
            let mut streams = polis_strategy::features::Streams::new(engine.features().clone());
            let start = Instant::now();
            intents = 0;
            for b in data {
                let row = streams.push(b);
                intents += engine.on_row(&row, "1d").len();
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let ns = best * 1e9 / data.len() as f64;
        if builtin_ns == 0.0 {
            builtin_ns = ns;
        }
        println!(
            "  features + mean_reversion, {label:<32} {}  [{intents} intents, {:.0}x the built-in]",
            rate(data.len(), best),
            ns / builtin_ns
        );
    }
    let per_call = polis_plugins::load_endpoints::<polis_strategy::contract::Strategy>(
        &[&root],
        &tiers,
        polis_strategy::contract::REQUIRED_METHODS,
    )
    .0
    .into_iter()
    .find(|l| l.manifest.plugin_id.contains("wasm"));
    let resident = loaded.plugins().find(|l| l.manifest.plugin_id.contains("wasm"));
    let (Some(per_call), Some(resident)) = (per_call, resident) else { std::process::exit(2) };
    let control = RunControl::new();
    let host = no_host();
    let env = CallEnv { seed: 0, control: &control, host: &host };
    for (label, endpoint) in
        [("resident instance", &resident.endpoint), ("fresh instance per call", &per_call.endpoint)]
    {
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            let _ = endpoint.call("warmup_bars", br#"{"instance":"bench"}"#, &env);
        }
        let secs = start.elapsed().as_secs_f64();
        println!("  one wasm call (`warmup_bars`), {label:<24} {:>8.2} µs", secs * 1e6 / f64::from(n));
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let data = bars(n);
    if let Some(path) = flag("--csv") {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        for b in &data {
            text.push_str(&format!("{},{},{},{},{},{}\n", b.ts, b.open, b.high, b.low, b.close, b.volume));
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write `{path}`: {e}");
            std::process::exit(2);
        }
    }
    if let Some(path) = flag("--goog") {
        let goog = match std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| polis_strategy::bars::read_bars(f, "SYN").map_err(|e| e.to_string()))
        {
            Ok(b) => b,
            Err(e) => {
                eprintln!("`{path}`: {e}");
                std::process::exit(2);
            }
        };
        legacy(&goog, "GOOG.csv");
        process(&goog);
    }
    if let Some(n) = flag("--plugins") {
        let n: usize = n.parse().unwrap_or(20_000);
        plugins(&data[..n.min(data.len())]);
        return;
    }
    legacy(&data, "synthetic");
    let set = Arc::new(FeatureSet::default_set());

    let start = Instant::now();
    let mut p = Pipeline::new(set.clone(), "SYN");
    let mut values = Vec::new();
    let mut check = 0.0;
    for b in &data {
        p.push_into(b, &mut values);
        check += values[0].unwrap_or(0.0);
    }
    let features = start.elapsed().as_secs_f64();
    println!("bars: {n}");
    println!("features (17 defaults), incremental      {}  [checksum {check:.3}]", rate(n, features));

    let slice = &data[..n.min(20_000)];
    let start = Instant::now();
    let mut check = 0.0;
    for i in 0..slice.len() {
        let mut fresh = Pipeline::new(set.clone(), "SYN");
        let mut last = None;
        for b in &slice[i.saturating_sub(99)..=i] {
            last = Some(fresh.push(b));
        }
        check += last.and_then(|r| r.values[0]).unwrap_or(0.0);
    }
    let naive = start.elapsed().as_secs_f64();
    println!("features, naive 100-bar recompute        {}  [checksum {check:.3}]", rate(slice.len(), naive));
    println!("ratio incremental / naive: {:.0}x", (naive / slice.len() as f64) / (features / n as f64));

    for (family, params) in [
        ("legacy_macd_rsi", ""),
        ("trend_multifactor", ""),
        ("mean_reversion", ""),
        ("volatility_overlay", "params = { sources = [\"trend\"] }\n"),
    ] {
        let mut text = format!(
            "[[strategies]]\nstrategy_id = \"s\"\nstrategy_type = \"{family}\"\nversion = \"1.0.0\"\n{params}symbols = [\"SYN\"]\n"
        );
        if family == "volatility_overlay" {
            text.push_str("[[strategies]]\nstrategy_id = \"trend\"\nstrategy_type = \"trend_multifactor\"\nversion = \"1.0.0\"\npriority = -1\nsymbols = [\"SYN\"]\n");
        }
        let catalog = match Catalog::load("bench.toml", &text) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        let mut engine = Engine::new(&catalog, BreakerConfig::default());
        let mut streams = polis_strategy::features::Streams::new(engine.features().clone());
        let start = Instant::now();
        let mut intents = 0;
        for b in &data {
            let row = streams.push(b);
            intents += engine.on_row(&row, "1m").len();
        }
        let secs = start.elapsed().as_secs_f64();
        let label = if family == "volatility_overlay" { "volatility_overlay + trend" } else { family };
        println!("features + {label:<28}  {}  [{intents} intents]", rate(n, secs));
    }
}
