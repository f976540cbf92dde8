//! `strategy.v1`: trading strategies as stateful plugins over a streaming
//! feature pipeline (seed 001).
//!
//! A researcher writes a strategy once; polis turns OHLCV bars into
//! `FeatureVectorV3`s ([`features`], TA-Lib's numbers computed
//! incrementally by [`indicators`]), feeds them to one plugin instance per
//! configured strategy and symbol, and collects *intents* (a target
//! direction and notional, never an order).
//!
//! - [`bars`]: the OHLCV CSV reader (line and column in every error).
//! - [`features`]: feature names, the per-symbol [`features::Pipeline`] and
//!   the wire [`features::FeatureVectorV3`].
//! - [`indicators`]: SMA, EMA, MACD, RSI, ATR, Bollinger bands exactly as
//!   TA-Lib computes them, one bar at a time.
//! - [`contract`]: `strategy.v1`: context, intent, the plugin surface and
//!   the semantic validator; [`builtins`]: the four families;
//!   [`catalog`]: the fail-closed catalog; [`engine`]: the host loop
//!   (warm-up, cooldown, position limits, breakers, counters);
//!   [`replay`]: intents, digest, evaluation; [`svg`]: `equity.svg`;
//!   [`endpoint`]: a sandboxed plugin (process, wasm, remote) behind the
//!   typed surface; [`plugins`]: strategy plugins loaded from plugin
//!   directories, the naming rule and the conformance matrix; [`live`]:
//!   the live loop (JSON lines, atomic reload);
//!   [`metrics`]: the seed's metrics in Prometheus's text format.
//!
//! # Example
//!
//! ```
//! use polis_strategy::bars::read_bars;
//! use polis_strategy::features::{FeatureSet, Streams};
//!
//! let csv = ",Open,High,Low,Close,Volume\n2004-08-19,100,104.06,95.96,100.34,22351900\n";
//! let mut streams = Streams::new(FeatureSet::default_set());
//! for bar in read_bars(csv.as_bytes(), "GOOG").unwrap() {
//!     let v = streams.push(&bar).to_vector("1d");
//!     assert_eq!(v.values["close"], 100.34);
//! }
//! ```
#![deny(missing_docs)]

pub mod bars;
pub mod builtins;
pub mod catalog;
pub mod contract;
pub mod endpoint;
pub mod engine;
pub mod features;
pub mod indicators;
pub mod live;
pub mod metrics;
pub mod plugins;
pub mod replay;
pub mod svg;
mod ts;
