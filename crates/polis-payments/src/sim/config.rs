//! SimCash's scenario format (`api/payment_simulator/config/schemas.py`),
//! read from YAML or JSON unchanged.
//!
//! Keys SimCash does not read are accepted, as Pydantic accepts them, but
//! each is returned as a warning naming its path (`--strict` makes them
//! errors). Keys SimCash reads but drops before its engine sees them (the
//! YAML path's `to_ffi_dict`) are warned about as "not applied".

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
pub struct Scenario {
    /// `simulation`.
    pub simulation: Simulation,
    /// `agents`, in file order (which decides counterparty draws).
    pub agents: Vec<AgentConfig>,
    /// `cost_rates`, SimCash's defaults when absent.
    #[serde(default)]
    pub cost_rates: CostRates,
    /// `lsm_config`.
    #[serde(default)]
    pub lsm_config: LsmConfig,
    /// `scenario_events`.
    #[serde(default)]
    pub scenario_events: Option<Vec<ScenarioEvent>>,
    /// `deferred_crediting`: credits land at the end of the tick.
    #[serde(default)]
    pub deferred_crediting: bool,
    /// `deadline_cap_at_eod`: deadlines never pass the end of their day.
    #[serde(default)]
    pub deadline_cap_at_eod: bool,
    /// `priority_escalation` (SimCash drops it on the YAML path).
    #[serde(default)]
    pub priority_escalation: Option<serde_json::Value>,
    /// `priority_mode` (dropped on the YAML path).
    #[serde(default)]
    pub priority_mode: Option<serde_json::Value>,
    /// `queue1_ordering` (dropped on the YAML path).
    #[serde(default)]
    pub queue1_ordering: Option<serde_json::Value>,
    /// `algorithm_sequencing` (dropped on the YAML path).
    #[serde(default)]
    pub algorithm_sequencing: Option<serde_json::Value>,
    /// `entry_disposition_offsetting` (dropped on the YAML path).
    #[serde(default)]
    pub entry_disposition_offsetting: Option<serde_json::Value>,
    /// `eod_rush_threshold` (dropped on the YAML path; 0.8 applies).
    #[serde(default)]
    pub eod_rush_threshold: Option<serde_json::Value>,
    /// `policy_feature_toggles`.
    #[serde(default)]
    pub policy_feature_toggles: Option<serde_json::Value>,
    /// `cost_feature_toggles`.
    #[serde(default)]
    pub cost_feature_toggles: Option<serde_json::Value>,
}

/// `simulation`.
#[derive(Clone, Debug, Deserialize)]
pub struct Simulation {
    /// Ticks in one business day.
    pub ticks_per_day: usize,
    /// Days to simulate.
    pub num_days: usize,
    /// The seed of the one random stream.
    pub rng_seed: u64,
}

/// One agent (a bank).
#[derive(Clone, Debug, Deserialize)]
pub struct AgentConfig {
    /// Unique id.
    pub id: String,
    /// Opening balance, cents.
    pub opening_balance: i64,
    /// Unsecured overdraft capacity, cents.
    #[serde(default)]
    pub unsecured_cap: i64,
    /// The policy; `Fifo` when absent.
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
    /// Poisson arrivals.
    #[serde(default)]
    pub arrival_config: Option<ArrivalConfig>,
    /// Per-band arrivals.
    #[serde(default)]
    pub arrival_bands: Option<ArrivalBands>,
    /// Dropped on SimCash's YAML path.
    #[serde(default)]
    pub posted_collateral: Option<i64>,
    /// Dropped on SimCash's YAML path.
    #[serde(default)]
    pub collateral_haircut: Option<f64>,
    /// Maximum collateral capacity.
    #[serde(default)]
    pub max_collateral_capacity: Option<i64>,
    /// Dropped on SimCash's YAML path.
    #[serde(default)]
    pub limits: Option<serde_json::Value>,
    /// External liquidity, cents.
    #[serde(default)]
    pub liquidity_pool: Option<i64>,
    /// The fraction of the pool allocated on day 0 (default 1).
    #[serde(default)]
    pub liquidity_allocation_fraction: Option<f64>,
}

/// `arrival_config`.
#[derive(Clone, Debug, Deserialize)]
pub struct ArrivalConfig {
    /// Expected arrivals per tick.
    pub rate_per_tick: f64,
    /// Amounts.
    pub amount_distribution: AmountDistribution,
    /// Counterparty weights; a counterparty not listed weighs 1.
    #[serde(default)]
    pub counterparty_weights: BTreeMap<String, f64>,
    /// `[min, max]` ticks from arrival to deadline.
    pub deadline_range: [usize; 2],
    /// A fixed priority (default 5).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// A sampled priority, instead of `priority`.
    #[serde(default)]
    pub priority_distribution: Option<PriorityDistribution>,
    /// Ignored by SimCash's engine: policies may split any payment.
    #[serde(default)]
    pub divisible: Option<bool>,
}

fn default_priority() -> u8 {
    5
}

/// Amount distributions, in cents.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum AmountDistribution {
    /// `range(min, max + 1)`.
    Uniform {
        /// Inclusive minimum.
        min: i64,
        /// Inclusive maximum.
        max: i64,
    },
    /// Rounded, at least 1.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std_dev: f64,
    },
    /// `mean` and `std_dev` are moments of the amount itself.
    LogNormal {
        /// Mean of the amount.
        mean: f64,
        /// Standard deviation of the amount.
        std_dev: f64,
    },
    /// `−ln(u)/λ`, rounded.
    Exponential {
        /// λ.
        lambda: f64,
    },
}

/// Priority distributions.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum PriorityDistribution {
    /// Always `value`.
    Fixed {
        /// The priority.
        value: u8,
    },
    /// One draw over `values` with `weights`.
    Categorical {
        /// Priorities.
        values: Vec<u8>,
        /// Their weights.
        weights: Vec<f64>,
    },
    /// `range(min, max + 1)`, capped at 10.
    Uniform {
        /// Inclusive minimum.
        min: u8,
        /// Inclusive maximum.
        max: u8,
    },
}

/// A penalty: a fixed amount, or basis points of the payment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Penalty {
    /// Cents per event.
    Fixed(i64),
    /// Basis points of the amount per event.
    Rate(f64),
}

impl Penalty {
    /// SimCash's `resolve`: `floor(|amount| × floor(bps×1e6) / 1e10)` in
    /// rate mode.
    pub fn resolve(self, amount: i64) -> i64 {
        match self {
            Penalty::Fixed(cents) => cents,
            Penalty::Rate(bps) => {
                let scaled = (bps * 1e6).floor().max(0.0) as u128;
                let value = u128::from(amount.unsigned_abs()) * scaled / 10_000_000_000;
                i64::try_from(value).unwrap_or(i64::MAX)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Penalty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Mode { mode: String, amount: Option<i64>, bps_per_event: Option<f64> },
        }
        match Raw::deserialize(d)? {
            Raw::Int(cents) => Ok(Penalty::Fixed(cents)),
            Raw::Mode { mode, amount, bps_per_event } => match (mode.as_str(), amount, bps_per_event) {
                ("fixed", Some(a), _) => Ok(Penalty::Fixed(a)),
                ("rate", _, Some(b)) => Ok(Penalty::Rate(b)),
                ("fixed", None, _) => Err(serde::de::Error::custom("fixed mode requires `amount`")),
                ("rate", _, None) => Err(serde::de::Error::custom("rate mode requires `bps_per_event`")),
                (other, _, _) => Err(serde::de::Error::custom(format!("unknown penalty mode `{other}`"))),
            },
        }
    }
}

/// `priority_delay_multipliers`.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct PriorityDelayMultipliers {
    /// Priorities 8–10.
    #[serde(default = "one")]
    pub urgent_multiplier: f64,
    /// Priorities 4–7.
    #[serde(default = "one")]
    pub normal_multiplier: f64,
    /// Priorities 0–3.
    #[serde(default = "one")]
    pub low_multiplier: f64,
}

impl PriorityDelayMultipliers {
    /// The multiplier for a priority band.
    pub fn for_priority(&self, priority: u8) -> f64 {
        match priority {
            8.. => self.urgent_multiplier,
            4..=7 => self.normal_multiplier,
            _ => self.low_multiplier,
        }
    }
}

fn one() -> f64 {
    1.0
}

/// `cost_rates`, with SimCash's defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct CostRates {
    /// Basis points of the overdraft per tick (default 0.001).
    pub overdraft_bps_per_tick: f64,
    /// Per tick per cent queued (default 0.0001).
    pub delay_cost_per_tick_per_cent: f64,
    /// Basis points of posted collateral per tick (default 0.0002).
    pub collateral_cost_per_tick_bps: f64,
    /// Per overdue payment at end of day (default 10,000 cents).
    #[serde(alias = "eod_penalty_per_transaction")]
    pub eod_penalty: Penalty,
    /// Once per payment that misses its deadline (default 50,000 cents).
    pub deadline_penalty: Penalty,
    /// Per extra child of a split (default 1,000 cents).
    pub split_friction_cost: i64,
    /// Delay multiplier once overdue (default 5).
    pub overdue_delay_multiplier: f64,
    /// Delay multipliers by priority band.
    pub priority_delay_multipliers: Option<PriorityDelayMultipliers>,
    /// Basis points of allocated liquidity per tick (default 0).
    pub liquidity_cost_per_tick_bps: f64,
}

impl Default for CostRates {
    fn default() -> Self {
        CostRates {
            overdraft_bps_per_tick: 0.001,
            delay_cost_per_tick_per_cent: 0.0001,
            collateral_cost_per_tick_bps: 0.0002,
            eod_penalty: Penalty::Fixed(10_000),
            deadline_penalty: Penalty::Fixed(50_000),
            split_friction_cost: 1000,
            overdue_delay_multiplier: 5.0,
            priority_delay_multipliers: None,
            liquidity_cost_per_tick_bps: 0.0,
        }
    }
}

/// `lsm_config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LsmConfig {
    /// Bilateral offsetting (default on).
    pub enable_bilateral: bool,
    /// Cycle settlement (default on).
    pub enable_cycles: bool,
    /// Longest cycle (default 4).
    pub max_cycle_length: usize,
    /// Most cycles per tick (default 10).
    pub max_cycles_per_tick: usize,
}

impl Default for LsmConfig {
    fn default() -> Self {
        LsmConfig { enable_bilateral: true, enable_cycles: true, max_cycle_length: 4, max_cycles_per_tick: 10 }
    }
}

/// When an event fires.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Schedule {
    /// Once, at `tick`.
    OneTime {
        /// The tick.
        #[serde(deserialize_with = "yaml11_tick")]
        tick: usize,
    },
    /// At `start_tick` and every `interval` after, until `end_tick`.
    Repeating {
        /// First tick.
        #[serde(deserialize_with = "yaml11_tick")]
        start_tick: usize,
        /// Ticks between firings (at least 1).
        #[serde(deserialize_with = "yaml11_tick")]
        interval: usize,
        /// Last tick, if any.
        #[serde(default, deserialize_with = "yaml11_optional_tick")]
        end_tick: Option<usize>,
    },
}

/// A tick as SimCash's PyYAML (YAML 1.1) reads a plain scalar: `060` is
/// octal 48 (SimCash's `suboptimal_policies_10day.yaml` schedules an event
/// at `tick: 060`), `0x30` hex, `1_000` decimal. YAML 1.2 reads those as
/// strings; polis takes them as PyYAML does. (A quoted `"060"` reads the
/// same here, where PyYAML would keep a string and pydantic make it 60.)
fn yaml11_tick<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(usize),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => yaml11_int(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid tick `{text}`: expected a non-negative integer"))),
    }
}

fn yaml11_optional_tick<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "yaml11_tick")] usize);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(n)| n))
}

/// PyYAML's `int` resolver for non-negative values: `0[0-7]+` octal,
/// `0x…` hex, `0b…` binary, decimal, each allowing `_`.
fn yaml11_int(text: &str) -> Option<usize> {
    let digits: String = text.trim_start_matches('+').chars().filter(|&c| c != '_').collect();
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits.as_str())
    };
    if body.is_empty() {
        return None;
    }
    usize::from_str_radix(body, radix).ok()
}

impl Schedule {
    /// Whether the event fires at `tick`.
    pub fn fires_at(&self, tick: usize) -> bool {
        match self {
            Schedule::OneTime { tick: t } => *t == tick,
            Schedule::Repeating { start_tick, interval, end_tick } => {
                tick >= *start_tick
                    && end_tick.is_none_or(|end| tick <= end)
                    && (tick - start_tick).is_multiple_of((*interval).max(1))
            }
        }
    }
}

/// `scenario_events`: the kinds SimCash defines.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ScenarioEvent {
    /// Moves balance directly.
    DirectTransfer {
        /// Payer.
        from_agent: String,
        /// Payee.
        to_agent: String,
        /// Cents.
        amount: i64,
        /// When.
        schedule: Schedule,
    },
    /// A scripted payment, queued before the tick's Poisson arrivals.
    CustomTransactionArrival {
        /// Payer.
        from_agent: String,
        /// Payee.
        to_agent: String,
        /// Cents.
        amount: i64,
        /// Default 5.
        #[serde(default)]
        priority: Option<u8>,
        /// Ticks after arrival (default `max(ticks_per_day/10, 5)`).
        #[serde(default)]
        deadline: Option<usize>,
        /// Ignored by SimCash's engine.
        #[serde(default)]
        is_divisible: Option<bool>,
        /// When.
        schedule: Schedule,
    },
    /// Changes an agent's `unsecured_cap` by `delta`.
    CollateralAdjustment {
        /// The agent.
        agent: String,
        /// Cents.
        delta: i64,
        /// When.
        schedule: Schedule,
    },
    /// Every arrival rate becomes base × multiplier.
    GlobalArrivalRateChange {
        /// The factor.
        multiplier: f64,
        /// When.
        schedule: Schedule,
    },
    /// One agent's rate becomes base × multiplier.
    AgentArrivalRateChange {
        /// The agent.
        agent: String,
        /// The factor.
        multiplier: f64,
        /// When.
        schedule: Schedule,
    },
    /// Sets one counterparty weight.
    CounterpartyWeightChange {
        /// The agent.
        agent: String,
        /// The counterparty.
        counterparty: String,
        /// Its weight.
        new_weight: f64,
        /// Rescale the others.
        #[serde(default)]
        auto_balance_others: bool,
        /// When.
        schedule: Schedule,
    },
    /// Scales deadline ranges.
    DeadlineWindowChange {
        /// Factor on the minimum.
        #[serde(default)]
        min_ticks_multiplier: Option<f64>,
        /// Factor on the maximum.
        #[serde(default)]
        max_ticks_multiplier: Option<f64>,
        /// When.
        schedule: Schedule,
    },
    /// A payment settled through RTGS at once.
    ScheduledSettlement {
        /// Payer.
        from_agent: String,
        /// Payee.
        to_agent: String,
        /// Cents.
        amount: i64,
        /// When.
        schedule: Schedule,
    },
}

/// `arrival_bands`: arrivals per priority band (SimCash's
/// `ArrivalBandsConfig`), each band its own Poisson stream.
#[derive(Clone, Debug, Deserialize)]
pub struct ArrivalBands {
    /// Priorities 8–10.
    #[serde(default)]
    pub urgent: Option<ArrivalBand>,
    /// Priorities 4–7.
    #[serde(default)]
    pub normal: Option<ArrivalBand>,
    /// Priorities 0–3.
    #[serde(default)]
    pub low: Option<ArrivalBand>,
}

impl ArrivalBands {
    /// The configured bands in SimCash's order, with their priority ranges.
    pub fn in_order(&self) -> impl Iterator<Item = (&ArrivalBand, u8, u8)> {
        [(&self.urgent, 8, 10), (&self.normal, 4, 7), (&self.low, 0, 3)]
            .into_iter()
            .filter_map(|(band, lo, hi)| band.as_ref().map(|b| (b, lo, hi)))
    }
}

/// One band of `arrival_bands`.
#[derive(Clone, Debug, Deserialize)]
pub struct ArrivalBand {
    /// Poisson λ per tick.
    pub rate_per_tick: f64,
    /// Amounts.
    pub amount_distribution: AmountDistribution,
    /// Fewest ticks to the deadline.
    pub deadline_offset_min: usize,
    /// Most ticks to the deadline.
    pub deadline_offset_max: usize,
    /// Receivers' weights (empty: uniform over the others).
    #[serde(default)]
    pub counterparty_weights: BTreeMap<String, f64>,
    /// Never stored by SimCash.
    #[serde(default)]
    pub divisible: Option<bool>,
}

/// Why a scenario could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where (`agents[1].policy`, or `$` for the whole file).
    pub path: String,
    /// What.
    pub message: String,
}

/// A scenario and what was ignored in it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// One line per key SimCash ignores or drops, with its path.
    pub warnings: Vec<String>,
}

/// The largest scenario file read, in bytes (the 100-bank scale files are
/// under 40 KiB).
pub const MAX_SCENARIO_BYTES: usize = 8 << 20;

/// Reads a scenario from YAML (or JSON, which is YAML). Unknown keys are
/// warnings; with `strict` they are errors.
pub fn parse(text: &str, strict: bool) -> Result<Loaded, ConfigError> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(ConfigError {
            path: "$".into(),
            message: format!("scenario is {} bytes, more than the limit of {MAX_SCENARIO_BYTES}", text.len()),
        });
    }
    let value: serde_json::Value = serde_yaml::from_str(text)
        .map_err(|e| ConfigError { path: "$".into(), message: format!("not valid YAML: {e}") })?;
    let mut ignored = Vec::new();
    let scenario: Scenario = {
        let mut record = |path: serde_ignored::Path<'_>| ignored.push(path.to_string());
        let de = serde_ignored::Deserializer::new(&value, &mut record);
        serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError { path: e.path().to_string(), message: e.inner().to_string() })?
    };
    let mut warnings: Vec<String> =
        ignored.into_iter().map(|p| format!("{}: not read (SimCash ignores this key)", bracketed(&p))).collect();
    if strict && !warnings.is_empty() {
        return Err(ConfigError { path: "$".into(), message: warnings.join("; ") });
    }
    warnings.extend(dropped(&scenario));
    validate(&scenario)?;
    Ok(Loaded { scenario, warnings })
}

/// `agents.0.x` as `agents[0].x`, the form errors use.
fn bracketed(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for (i, part) in path.split('.').enumerate() {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if i > 0 {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// What SimCash's YAML path drops before its engine runs.
fn dropped(s: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let top = [
        ("priority_escalation", s.priority_escalation.is_some()),
        ("priority_mode", s.priority_mode.is_some()),
        ("queue1_ordering", s.queue1_ordering.is_some()),
        ("algorithm_sequencing", s.algorithm_sequencing.is_some()),
        ("entry_disposition_offsetting", s.entry_disposition_offsetting.is_some()),
        ("eod_rush_threshold", s.eod_rush_threshold.is_some()),
    ];
    for (key, present) in top {
        if present {
            out.push(format!("{key}: not applied (SimCash's YAML path drops it)"));
        }
    }
    for (i, a) in s.agents.iter().enumerate() {
        let fields = [
            ("posted_collateral", a.posted_collateral.is_some()),
            ("collateral_haircut", a.collateral_haircut.is_some()),
            ("limits", a.limits.is_some()),
        ];
        for (key, present) in fields {
            if present {
                let honoured = if key == "limits" { "" } else { "; --honour-all applies it" };
                out.push(format!("agents[{i}].{key}: not applied (SimCash's YAML path drops it{honoured})"));
            }
        }
        if a.arrival_config.as_ref().is_some_and(|c| c.divisible.is_some()) {
            out.push(format!("agents[{i}].arrival_config.divisible: not applied (SimCash never stores it)"));
        }
    }
    out
}

/// Greater than zero (NaN is not).
fn is_positive(x: f64) -> bool {
    x.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater)
}

fn validate(s: &Scenario) -> Result<(), ConfigError> {
    let err = |path: String, message: String| Err(ConfigError { path, message });
    if s.simulation.ticks_per_day == 0 || s.simulation.num_days == 0 {
        return err("simulation".into(), "`ticks_per_day` and `num_days` must be at least 1".into());
    }
    if s.simulation.ticks_per_day.saturating_mul(s.simulation.num_days) > 10_000_000 {
        return err("simulation".into(), "more than 10,000,000 ticks".into());
    }
    if s.agents.is_empty() {
        return err("agents".into(), "at least one agent is required".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, a) in s.agents.iter().enumerate() {
        if a.id.trim().is_empty() {
            return err(format!("agents[{i}].id"), "agent id cannot be empty".into());
        }
        if !seen.insert(a.id.as_str()) {
            return err(format!("agents[{i}].id"), format!("duplicate agent id `{}`", a.id));
        }
        if a.unsecured_cap < 0 {
            return err(format!("agents[{i}].unsecured_cap"), "must be at least 0".into());
        }
        if let Some(f) = a.liquidity_allocation_fraction
            && !(0.0..=1.0).contains(&f)
        {
            return err(format!("agents[{i}].liquidity_allocation_fraction"), "must be between 0 and 1".into());
        }
        if let Some(bands) = &a.arrival_bands {
            if bands.in_order().next().is_none() {
                return err(
                    format!("agents[{i}].arrival_bands"),
                    "at least one of `urgent`, `normal`, `low` is needed".into(),
                );
            }
            for (band, _, _) in bands.in_order() {
                if band.deadline_offset_min == 0 || band.deadline_offset_max < band.deadline_offset_min {
                    return err(
                        format!("agents[{i}].arrival_bands"),
                        "deadline offsets must be at least 1 with `deadline_offset_max` >= `deadline_offset_min`"
                            .into(),
                    );
                }
                if band.rate_per_tick.is_nan() || band.rate_per_tick < 0.0 {
                    return err(format!("agents[{i}].arrival_bands"), "`rate_per_tick` must be at least 0".into());
                }
            }
        }
        if a.arrival_config.is_some() && a.arrival_bands.is_some() {
            return err(format!("agents[{i}]"), "`arrival_config` and `arrival_bands` are mutually exclusive".into());
        }
        if let Some(c) = &a.arrival_config {
            let path = format!("agents[{i}].arrival_config");
            if !(c.rate_per_tick >= 0.0 && c.rate_per_tick <= 10_000.0) {
                return err(format!("{path}.rate_per_tick"), "must be between 0 and 10,000".into());
            }
            if c.deadline_range[0] > c.deadline_range[1] {
                return err(format!("{path}.deadline_range"), "min must not exceed max".into());
            }
            if let AmountDistribution::Uniform { min, max } = c.amount_distribution
                && (min < 0 || max < min)
            {
                return err(format!("{path}.amount_distribution"), "need 0 <= min <= max".into());
            }
            for name in c.counterparty_weights.keys() {
                if !s.agents.iter().any(|b| &b.id == name) {
                    return err(format!("{path}.counterparty_weights.{name}"), format!("unknown agent `{name}`"));
                }
            }
        }
    }
    for (i, e) in s.scenario_events.iter().flatten().enumerate() {
        // The ranges SimCash's schema (`config/schemas.py`) enforces.
        let range_error = match e {
            ScenarioEvent::GlobalArrivalRateChange { multiplier, .. }
            | ScenarioEvent::AgentArrivalRateChange { multiplier, .. }
                if !is_positive(*multiplier) =>
            {
                Some("`multiplier` must be greater than 0")
            }
            ScenarioEvent::CounterpartyWeightChange { new_weight, .. } if !(0.0..=1.0).contains(new_weight) => {
                Some("`new_weight` must be from 0 to 1")
            }
            ScenarioEvent::DeadlineWindowChange { min_ticks_multiplier: None, max_ticks_multiplier: None, .. } => {
                Some("give `min_ticks_multiplier`, `max_ticks_multiplier` or both")
            }
            ScenarioEvent::DeadlineWindowChange { min_ticks_multiplier, max_ticks_multiplier, .. }
                if [min_ticks_multiplier, max_ticks_multiplier].into_iter().flatten().any(|m| !is_positive(*m)) =>
            {
                Some("deadline multipliers must be greater than 0")
            }
            ScenarioEvent::ScheduledSettlement { amount, .. } if *amount <= 0 => {
                Some("`amount` must be greater than 0")
            }
            _ => None,
        };
        if let Some(message) = range_error {
            return err(format!("scenario_events[{i}]"), message.into());
        }
        let agents: Vec<&String> = match e {
            ScenarioEvent::DirectTransfer { from_agent, to_agent, .. }
            | ScenarioEvent::CustomTransactionArrival { from_agent, to_agent, .. }
            | ScenarioEvent::ScheduledSettlement { from_agent, to_agent, .. } => vec![from_agent, to_agent],
            ScenarioEvent::CollateralAdjustment { agent, .. } | ScenarioEvent::AgentArrivalRateChange { agent, .. } => {
                vec![agent]
            }
            ScenarioEvent::CounterpartyWeightChange { agent, counterparty, .. } => vec![agent, counterparty],
            _ => vec![],
        };
        for name in agents {
            if !s.agents.iter().any(|b| &b.id == name) {
                return err(format!("scenario_events[{i}]"), format!("unknown agent `{name}`"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_pyyaml_reads_plain_integers() {
        assert_eq!(yaml11_int("060"), Some(48));
        assert_eq!(yaml11_int("0x30"), Some(48));
        assert_eq!(yaml11_int("0b11"), Some(3));
        assert_eq!(yaml11_int("1_000"), Some(1000));
        assert_eq!(yaml11_int("0"), Some(0));
        assert_eq!(yaml11_int("089"), None);
        assert_eq!(yaml11_int("soon"), None);
    }

    #[test]
    fn an_octal_looking_tick_in_a_schedule_is_octal() {
        let s: Schedule = serde_json::from_value(serde_json::json!({"type": "OneTime", "tick": "060"})).unwrap();
        assert!(s.fires_at(48));
    }
}
