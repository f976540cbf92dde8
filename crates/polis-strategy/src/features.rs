//! The streaming feature pipeline: OHLCV bars in, `FeatureVectorV3`s out.
//!
//! A [`FeatureSet`] is a sorted set of feature names ([`DEFAULT_FEATURES`]
//! or any a strategy requires, such as `ema_50` or `rsi_7`); a [`Pipeline`]
//! computes them for one symbol, one bar at a time, in O(1) per feature.
//! A feature is present from the first bar at which TA-Lib returns a value
//! and absent before it; it is never NaN, null or zero-filled. The values
//! sit in slots in the set's (byte-order) name order, so built-in
//! strategies read them by index and [`Row::to_vector`] builds the wire
//! document without sorting.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bars::Bar;
use crate::indicators::{Atr, Bollinger, Ema, Macd, RealizedVol, Rsi, Sma};

/// The `schema_version` of every feature vector.
pub const SCHEMA_VERSION: &str = "feature_vector.v3";

/// The features `polis strategy features` computes by default.
pub const DEFAULT_FEATURES: [&str; 17] = [
    "close",
    "volume",
    "return_1",
    "log_return_1",
    "sma_20",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi_14",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "bb_zscore",
    "realized_vol_20",
];

/// Longest period a feature name may ask for.
pub const MAX_PERIOD: usize = 10_000;

/// One computable feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// The bar's close.
    Close,
    /// The bar's volume.
    Volume,
    /// `close / previous close - 1`.
    Return1,
    /// `ln(close / previous close)`.
    LogReturn1,
    /// `sma_N`.
    Sma(usize),
    /// `ema_N`.
    Ema(usize),
    /// `macd` (12, 26, 9).
    Macd,
    /// `macd_signal`.
    MacdSignal,
    /// `macd_hist`.
    MacdHist,
    /// `rsi_N`.
    Rsi(usize),
    /// `atr_N`.
    Atr(usize),
    /// `bb_upper` (20, 2σ).
    BbUpper,
    /// `bb_middle`.
    BbMiddle,
    /// `bb_lower`.
    BbLower,
    /// `(close - bb_middle) / σ20`; absent where σ20 is zero.
    BbZscore,
    /// `realized_vol_N`.
    RealizedVol(usize),
}

/// A feature name the pipeline cannot produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature `{name}`: {reason}")]
pub struct UnknownFeature {
    /// The name asked for.
    pub name: String,
    /// Why it is not known.
    pub reason: String,
}

impl Feature {
    /// Parses a feature name.
    pub fn parse(name: &str) -> Result<Feature, UnknownFeature> {
        let fixed = match name {
            "close" => Some(Feature::Close),
            "volume" => Some(Feature::Volume),
            "return_1" => Some(Feature::Return1),
            "log_return_1" => Some(Feature::LogReturn1),
            "macd" => Some(Feature::Macd),
            "macd_signal" => Some(Feature::MacdSignal),
            "macd_hist" => Some(Feature::MacdHist),
            "bb_upper" => Some(Feature::BbUpper),
            "bb_middle" => Some(Feature::BbMiddle),
            "bb_lower" => Some(Feature::BbLower),
            "bb_zscore" => Some(Feature::BbZscore),
            _ => None,
        };
        if let Some(f) = fixed {
            return Ok(f);
        }
        let unknown = |reason: String| UnknownFeature { name: name.to_owned(), reason };
        let (stem, period) = name.rsplit_once('_').ok_or_else(|| {
            unknown("known features are the defaults and sma_N, ema_N, rsi_N, atr_N, realized_vol_N".into())
        })?;
        let make: fn(usize) -> Feature = match stem {
            "sma" => Feature::Sma,
            "ema" => Feature::Ema,
            "rsi" => Feature::Rsi,
            "atr" => Feature::Atr,
            "realized_vol" => Feature::RealizedVol,
            _ => return Err(unknown(format!("no feature family `{stem}`"))),
        };
        let digits = !period.is_empty() && period.bytes().all(|b| b.is_ascii_digit());
        let n: usize = period
            .parse()
            .ok()
            .filter(|_| digits && !(period.len() > 1 && period.starts_with('0')))
            .ok_or_else(|| unknown(format!("`{period}` is not a period")))?;
        let min = if matches!(stem, "rsi" | "atr") { 2 } else { 1 };
        if !(min..=MAX_PERIOD).contains(&n) {
            return Err(unknown(format!("the period must be between {min} and {MAX_PERIOD}")));
        }
        Ok(make(n))
    }

    /// The first bar (0-based) at which the feature has a value, as TA-Lib's
    /// lookback says.
    pub fn first_bar(self) -> usize {
        match self {
            Feature::Close | Feature::Volume => 0,
            Feature::Return1 | Feature::LogReturn1 => 1,
            Feature::Sma(n) | Feature::Ema(n) => n - 1,
            Feature::Macd | Feature::MacdSignal | Feature::MacdHist => 33,
            Feature::Rsi(n) | Feature::Atr(n) | Feature::RealizedVol(n) => n,
            Feature::BbUpper | Feature::BbMiddle | Feature::BbLower | Feature::BbZscore => 19,
        }
    }
}

/// A sorted, deduplicated set of feature names, shared by every row a
/// pipeline makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSet {
    names: Vec<String>,
    features: Vec<Feature>,
}

impl FeatureSet {
    /// The set of these names, every unknown one reported.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<FeatureSet, Vec<UnknownFeature>> {
        let mut sorted: BTreeMap<String, Feature> = BTreeMap::new();
        let mut unknown = Vec::new();
        for name in names {
            match Feature::parse(name.as_ref()) {
                Ok(f) => {
                    sorted.insert(name.as_ref().to_owned(), f);
                }
                Err(e) => unknown.push(e),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let (names, features) = sorted.into_iter().unzip();
        Ok(FeatureSet { names, features })
    }

    /// [`DEFAULT_FEATURES`].
    pub fn default_set() -> FeatureSet {
        FeatureSet::new(&DEFAULT_FEATURES).unwrap_or_else(|_| FeatureSet { names: Vec::new(), features: Vec::new() })
    }

    /// The names, in slot order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The slot of a name.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The union of two sets.
    pub fn union(&self, other: &FeatureSet) -> FeatureSet {
        let mut all: BTreeMap<String, Feature> =
            self.names.iter().cloned().zip(self.features.iter().copied()).collect();
        all.extend(other.names.iter().cloned().zip(other.features.iter().copied()));
        let (names, features) = all.into_iter().unzip();
        FeatureSet { names, features }
    }

    /// How many bars pass before every feature of the set has a value.
    pub fn warmup(&self) -> usize {
        self.features.iter().map(|f| f.first_bar()).max().unwrap_or(0)
    }
}

/// A feature vector as the `strategy.v1` contract and
/// `polis strategy features` carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureVectorV3 {
    /// The instrument.
    pub symbol: String,
    /// The bar's time, RFC 3339 UTC (`2004-08-19T00:00:00Z`).
    #[serde(with = "crate::ts")]
    #[schemars(with = "String")]
    pub event_ts: i64,
    /// The bar length, such as `1d` or `5m`.
    pub timeframe: String,
    /// Always `feature_vector.v3`.
    pub schema_version: String,
    /// Feature values by name; a feature without a value yet is absent.
    pub values: BTreeMap<String, f64>,
}

/// One bar's features in slot order, as a pipeline makes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The instrument.
    pub symbol: Arc<str>,
    /// Epoch seconds UTC.
    pub ts: i64,
    /// The set the slots follow.
    pub set: Arc<FeatureSet>,
    /// One value per slot; `None` before the feature's first bar.
    pub values: Vec<Option<f64>>,
}

impl Row {
    /// The value of a feature by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.set.slot(name).and_then(|i| self.values[i])
    }

    /// The wire document.
    pub fn to_vector(&self, timeframe: &str) -> FeatureVectorV3 {
        let values =
            self.set.names().iter().zip(&self.values).filter_map(|(name, v)| v.map(|v| (name.clone(), v))).collect();
        FeatureVectorV3 {
            symbol: self.symbol.to_string(),
            event_ts: self.ts,
            timeframe: timeframe.to_owned(),
            schema_version: SCHEMA_VERSION.to_owned(),
            values,
        }
    }
}

/// Slot indices of one indicator's outputs.
#[derive(Debug, Clone, Copy, Default)]
struct MacdSlots {
    macd: Option<usize>,
    signal: Option<usize>,
    hist: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
struct BbSlots {
    upper: Option<usize>,
    middle: Option<usize>,
    lower: Option<usize>,
    zscore: Option<usize>,
}

/// The incremental computation of one symbol's features.
#[derive(Debug, Clone)]
pub struct Pipeline {
    set: Arc<FeatureSet>,
    symbol: Arc<str>,
    prev_close: Option<f64>,
    close: Option<usize>,
    volume: Option<usize>,
    ret: Option<usize>,
    log_ret: Option<usize>,
    smas: Vec<(Sma, usize)>,
    emas: Vec<(Ema, usize)>,
    rsis: Vec<(Rsi, usize)>,
    atrs: Vec<(Atr, usize)>,
    vols: Vec<(RealizedVol, usize)>,
    macd: Option<(Macd, MacdSlots)>,
    bb: Option<(Bollinger, BbSlots)>,
}

impl Pipeline {
    /// A pipeline for `symbol` computing `set`.
    pub fn new(set: Arc<FeatureSet>, symbol: &str) -> Pipeline {
        let mut p = Pipeline {
            set: set.clone(),
            symbol: Arc::from(symbol),
            prev_close: None,
            close: None,
            volume: None,
            ret: None,
            log_ret: None,
            smas: Vec::new(),
            emas: Vec::new(),
            rsis: Vec::new(),
            atrs: Vec::new(),
            vols: Vec::new(),
            macd: None,
            bb: None,
        };
        let mut macd = MacdSlots::default();
        let mut bb = BbSlots::default();
        for (slot, f) in set.features.iter().enumerate() {
            match *f {
                Feature::Close => p.close = Some(slot),
                Feature::Volume => p.volume = Some(slot),
                Feature::Return1 => p.ret = Some(slot),
                Feature::LogReturn1 => p.log_ret = Some(slot),
                Feature::Sma(n) => p.smas.push((Sma::new(n), slot)),
                Feature::Ema(n) => p.emas.push((Ema::new(n), slot)),
                Feature::Rsi(n) => p.rsis.push((Rsi::new(n), slot)),
                Feature::Atr(n) => p.atrs.push((Atr::new(n), slot)),
                Feature::RealizedVol(n) => p.vols.push((RealizedVol::new(n), slot)),
                Feature::Macd => macd.macd = Some(slot),
                Feature::MacdSignal => macd.signal = Some(slot),
                Feature::MacdHist => macd.hist = Some(slot),
                Feature::BbUpper => bb.upper = Some(slot),
                Feature::BbMiddle => bb.middle = Some(slot),
                Feature::BbLower => bb.lower = Some(slot),
                Feature::BbZscore => bb.zscore = Some(slot),
            }
        }
        if macd.macd.is_some() || macd.signal.is_some() || macd.hist.is_some() {
            p.macd = Some((Macd::new(12, 26, 9), macd));
        }
        if bb.upper.is_some() || bb.middle.is_some() || bb.lower.is_some() || bb.zscore.is_some() {
            p.bb = Some((Bollinger::new(20, 2.0), bb));
        }
        p
    }

    /// The set this pipeline computes.
    pub fn set(&self) -> &Arc<FeatureSet> {
        &self.set
    }

    /// Computes one bar's features into `values` (one per slot), which is
    /// cleared first; reusing the buffer keeps the hot path free of
    /// allocation.
    pub fn push_into(&mut self, bar: &Bar, values: &mut Vec<Option<f64>>) {
        values.clear();
        values.resize(self.set.names.len(), None);
        let put = |values: &mut Vec<Option<f64>>, slot: Option<usize>, v: Option<f64>| {
            if let Some(s) = slot {
                values[s] = v;
            }
        };
        let c = bar.close;
        put(values, self.close, Some(c));
        put(values, self.volume, Some(bar.volume));
        let log_ret = self.prev_close.map(|p| (c / p).ln());
        if let Some(p) = self.prev_close {
            put(values, self.ret, Some(c / p - 1.0));
            put(values, self.log_ret, log_ret);
        }
        self.prev_close = Some(c);
        for (sma, slot) in &mut self.smas {
            values[*slot] = sma.push(c);
        }
        for (ema, slot) in &mut self.emas {
            values[*slot] = ema.push(c);
        }
        for (rsi, slot) in &mut self.rsis {
            values[*slot] = rsi.push(c);
        }
        for (atr, slot) in &mut self.atrs {
            values[*slot] = atr.push(bar.high, bar.low, c);
        }
        if let Some(r) = log_ret {
            for (vol, slot) in &mut self.vols {
                values[*slot] = vol.push(r);
            }
        }
        if let Some((macd, slots)) = &mut self.macd
            && let Some(m) = macd.push(c)
        {
            put(values, slots.macd, Some(m.macd));
            put(values, slots.signal, Some(m.signal));
            put(values, slots.hist, Some(m.hist));
        }
        if let Some((bb, slots)) = &mut self.bb
            && let Some(b) = bb.push(c)
        {
            put(values, slots.upper, Some(b.upper));
            put(values, slots.middle, Some(b.middle));
            put(values, slots.lower, Some(b.lower));
            put(values, slots.zscore, (b.sigma != 0.0).then(|| (c - b.middle) / b.sigma));
        }
    }

    /// Computes one bar's features.
    pub fn push(&mut self, bar: &Bar) -> Row {
        let mut values = Vec::with_capacity(self.set.names.len());
        self.push_into(bar, &mut values);
        Row { symbol: self.symbol.clone(), ts: bar.ts, set: self.set.clone(), values }
    }
}

/// Pipelines for every symbol of a stream, created on a symbol's first bar.
#[derive(Debug, Clone)]
pub struct Streams {
    set: Arc<FeatureSet>,
    pipelines: BTreeMap<String, Pipeline>,
}

impl Streams {
    /// Streams computing `set`.
    pub fn new(set: FeatureSet) -> Streams {
        Streams { set: Arc::new(set), pipelines: BTreeMap::new() }
    }

    /// Computes one bar's features on its symbol's pipeline.
    pub fn push(&mut self, bar: &Bar) -> Row {
        if let Some(p) = self.pipelines.get_mut(&bar.symbol) {
            return p.push(bar);
        }
        let mut p = Pipeline::new(self.set.clone(), &bar.symbol);
        let row = p.push(bar);
        self.pipelines.insert(bar.symbol.clone(), p);
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_periods_and_refuse_the_rest() {
        assert_eq!(Feature::parse("ema_50"), Ok(Feature::Ema(50)));
        assert_eq!(Feature::parse("rsi_7"), Ok(Feature::Rsi(7)));
        assert_eq!(Feature::parse("realized_vol_5"), Ok(Feature::RealizedVol(5)));
        for bad in ["ema_0", "ema_007", "ema_x", "rsi_1", "foo_3", "ema_99999999999999999999", "closing", "sma_10001"] {
            assert!(Feature::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_set_is_sorted_and_reports_every_unknown_name() {
        let set = FeatureSet::new(&["rsi_14", "close", "close"]).unwrap();
        assert_eq!(set.names(), ["close", "rsi_14"]);
        let errors = FeatureSet::new(&["x", "close", "ema_0"]).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(FeatureSet::default_set().names().len(), 17);
        assert_eq!(FeatureSet::default_set().warmup(), 33);
    }

    #[test]
    fn a_vector_has_no_value_before_its_first_bar() {
        let mut p = Pipeline::new(Arc::new(FeatureSet::default_set()), "X");
        let bar = |i: i64| Bar {
            symbol: "X".into(),
            ts: 86_400 * i,
            open: 10.0,
            high: 11.0 + (i % 3) as f64,
            low: 9.0,
            close: 10.0 + (i % 5) as f64,
            volume: 100.0,
        };
        let v0 = p.push(&bar(0)).to_vector("1d");
        assert_eq!(v0.values.keys().collect::<Vec<_>>(), ["close", "volume"]);
        assert_eq!(v0.schema_version, "feature_vector.v3");
        let text = serde_json::to_string(&v0).unwrap();
        assert_eq!(
            text,
            r#"{"symbol":"X","event_ts":"1970-01-01T00:00:00Z","timeframe":"1d","schema_version":"feature_vector.v3","values":{"close":10.0,"volume":100.0}}"#
        );
        for i in 1..33 {
            assert!(!p.push(&bar(i)).to_vector("1d").values.contains_key("macd"));
        }
        assert_eq!(p.push(&bar(33)).to_vector("1d").values.len(), 17);
    }
}
