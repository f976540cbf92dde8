//! The feature pipeline against TA-Lib itself.
//!
//! The peer's numbers come from the `ta-lib` Python package (TA-Lib's C
//! library), run by `tests/reference/talib_features.py` on the same CSV file
//! the pipeline reads; nothing on the reference side comes from polis. Every
//! bar of every feature must agree within max(1e-9·|x|, 1e-10), and every
//! feature must appear on the same first bar. `scripts/test` installs
//! `ta-lib` and `backtesting` (whose `GOOG.csv` is the real series); without
//! them the test says it is skipped, and fails under CI.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use polis_strategy::bars::read_bars;
use polis_strategy::features::{FeatureSet, Pipeline};

const EXTRA: [&str; 4] = ["ema_50", "rsi_7", "sma_5", "atr_3"];

/// The `python3` that has TA-Lib, or `None` (skipped; a failure under CI).
fn python_with_talib() -> Option<()> {
    let ok = Command::new("python3").args(["-c", "import talib, backtesting"]).status().is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    assert!(std::env::var_os("CI").is_none(), "CI needs `pip install ta-lib backtesting` (scripts/test does it)");
    eprintln!("skipped: python3 cannot import talib and backtesting (pip install ta-lib backtesting)");
    None
}

fn goog_csv() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import backtesting, os; print(os.path.join(os.path.dirname(backtesting.__file__), 'test', 'GOOG.csv'))",
        ])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn talib_values(csv: &Path) -> BTreeMap<String, Vec<Option<f64>>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/talib_features.py");
    let out = Command::new("python3").arg(script).arg(csv).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Compares every feature at every bar; returns how many values agreed.
fn check(csv: &Path) -> usize {
    let reference = talib_values(csv);
    let bars = read_bars(std::fs::File::open(csv).unwrap(), "X").unwrap();
    let mut names: Vec<&str> = polis_strategy::features::DEFAULT_FEATURES.to_vec();
    names.extend(EXTRA);
    let set = Arc::new(FeatureSet::new(&names).unwrap());
    let mut pipeline = Pipeline::new(set.clone(), "X");
    let rows: Vec<_> = bars.iter().map(|b| pipeline.push(b)).collect();
    let mut compared = 0;
    for name in &names {
        let want = &reference[*name];
        assert_eq!(want.len(), rows.len(), "{name}: bar count");
        let first_ours = rows.iter().position(|r| r.get(name).is_some());
        let first_theirs = want.iter().position(Option::is_some);
        assert_eq!(first_ours, first_theirs, "{name}: first bar");
        for (i, (row, theirs)) in rows.iter().zip(want).enumerate() {
            let ours = row.get(name);
            match (ours, theirs) {
                (Some(a), Some(b)) => {
                    let tol = (1e-9 * b.abs()).max(1e-10);
                    assert!((a - b).abs() <= tol, "{name} at bar {i}: ours {a:e}, TA-Lib {b:e}");
                    compared += 1;
                }
                (None, None) => {}
                _ => panic!("{name} at bar {i}: ours {ours:?}, TA-Lib {theirs:?}"),
            }
        }
    }
    compared
}

#[test]
fn every_feature_matches_talib_on_goog_daily() {
    if python_with_talib().is_none() {
        return;
    }
    let compared = check(&goog_csv());
    assert!(compared > 2000 * 20, "{compared}");
}

/// 20,000 bars of a seeded random walk with flat stretches (where σ, RSI
/// and realised volatility hit TA-Lib's zero rules), a zero-volume bar and
/// a gap, written as two-decimal prices.
fn synthetic_csv(path: &Path) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    let mut close: f64 = 50.0;
    for i in 0..20_000i64 {
        let flat = (3_000..3_060).contains(&i) || (9_000..9_025).contains(&i);
        let (o, h, l, c, v);
        if flat {
            (o, h, l, c) = (close, close, close, close);
            v = 0.0;
        } else {
            let step = (next() - 0.5) * 0.04;
            let new = (close * (1.0 + step)).max(1.0);
            o = close;
            c = new;
            h = o.max(c) * (1.0 + next() * 0.01);
            l = o.min(c) * (1.0 - next() * 0.01);
            v = if i == 777 { 0.0 } else { (next() * 1e6).floor() };
        }
        let r = |x: f64| (x * 100.0).round() / 100.0;
        let (o, h, l, c) = (r(o), r(h), r(l), r(c));
        text.push_str(&format!("{},{o},{},{},{c},{v}\n", 1_600_000_000 + i * 60, h.max(o).max(c), l.min(o).min(c)));
        close = c;
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_feature_matches_talib_on_a_long_synthetic_series_with_flat_stretches() {
    if python_with_talib().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("synthetic.csv");
    synthetic_csv(&csv);
    let compared = check(&csv);
    assert!(compared > 20_000 * 20, "{compared}");
}
