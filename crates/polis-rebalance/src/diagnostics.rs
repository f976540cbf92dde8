//! Diagnostics shared by the built-in policies. Everything here is a pure
//! function of the input, so diagnostics hash the same on every run.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::network::Network;

/// Eligible stations, donors, receivers and their totals.
pub fn totals(network: &Network) -> BTreeMap<String, Value> {
    let (mut eligible, mut donors, mut receivers, mut excess, mut need) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for s in network.stations().iter().filter(|s| s.eligible) {
        eligible += 1;
        let (x, n) = (s.excess(s.bikes), s.need(s.bikes));
        donors += u64::from(x > 0);
        receivers += u64::from(n > 0);
        excess += u64::from(x);
        need += u64::from(n);
    }
    BTreeMap::from([
        ("eligible_stations".to_owned(), json!(eligible)),
        ("donors".to_owned(), json!(donors)),
        ("receivers".to_owned(), json!(receivers)),
        ("total_excess".to_owned(), json!(excess)),
        ("total_need".to_owned(), json!(need)),
    ])
}

/// The weighted transfer distance `Σ bikes·dist_m` of a plan, in metres
/// rounded to 0.1 m.
pub fn effort_used(network: &Network, plan: &[(usize, usize, u32)]) -> BTreeMap<String, Value> {
    let weighted: f64 = plan.iter().map(|&(f, t, b)| f64::from(b) * network.edge(f, t).map_or(0.0, |e| e.dist_m)).sum();
    BTreeMap::from([("weighted_distance_m".to_owned(), json!((weighted * 10.0).round() / 10.0))])
}
