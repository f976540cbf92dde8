//! The two demand models and the rules they share.
//!
//! **Observed changes.** For each station, consecutive observations (two
//! snapshots that list it, with any snapshots that do not in between)
//! give a net change `Δ = bikes_after − bikes_before`.
//!
//! **Operator-rebalancing jumps.** A change with `|Δ| ≥ J` bikes (the
//! jump threshold, [`super::DEFAULT_JUMP_THRESHOLD`] by default) is taken
//! to be a van, not riders, and is left out of both models. Snapshots are
//! about 8–10 minutes apart (never more than 45 in the Bay Wheels week),
//! and 99.9 % of the week's changes are below 6 bikes. `J = 0` keeps every
//! change.
//!
//! **Flow replay** applies each kept `Δ` to the simulated station at the
//! later observation's time, clamped: a negative change takes at most the
//! bikes there (the rest are failed rentals), a positive one docks at most
//! the free usable docks (the rest are failed returns).
//!
//! **Stochastic** demand is a Poisson process per station and kind with a
//! rate per 15-minute slot of the day (UTC), pooled over the days of the
//! window. A kept change counts `max(−Δ, 0)` rentals and `max(Δ, 0)`
//! returns, spread over the slots the interval overlaps in proportion to
//! the overlap. *Censoring correction*: riders cannot rent from an empty
//! station or return to a full one, so rentals are divided by the seconds
//! the station was non-empty (at the start of an interval, or rentals
//! happened in it) and returns by the seconds it was non-full, not by
//! wall time. *Common random numbers*: each station and kind draws from
//! its own ChaCha8 stream seeded with `SHA-256(seed, replication,
//! station_id, kind)`, and the events are generated once per replication
//! and shared by every policy, so policies differ only by what they do.

use polis_core::canonical::Digest;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::sim::World;

/// Slot length of the stochastic rates, seconds.
pub const SLOT_S: i64 = 900;

/// Slots in a day.
pub const SLOTS: usize = (86_400 / SLOT_S) as usize;

/// A rental or a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A rider takes a bike.
    Rental,
    /// A rider docks a bike.
    Return,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Rental => "rental",
            Kind::Return => "return",
        }
    }
}

/// One rider at one station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DemandEvent {
    /// When, epoch seconds.
    pub t: i64,
    /// Local station index.
    pub station: u32,
    /// What the rider wants.
    pub kind: Kind,
}

/// The demand of one replication.
#[derive(Debug, Clone)]
pub enum Demand {
    /// Replay the observed changes.
    Flow,
    /// These events, sorted by time.
    Events(Vec<DemandEvent>),
}

/// Whether an observed change is an operator-rebalancing jump.
pub fn is_jump(change: i64, threshold: u32) -> bool {
    threshold > 0 && change.unsigned_abs() >= u64::from(threshold)
}

/// Observed changes in the world that the jump rule leaves out.
pub fn count_jumps(world: &World<'_>, threshold: u32) -> u64 {
    let mut last: Vec<Option<u32>> = vec![None; world.stations.len()];
    let mut jumps = 0;
    for frame in &world.frames {
        for &(l, status) in &frame.rows {
            if let Some(before) = last[l as usize] {
                jumps += u64::from(is_jump(i64::from(status.bikes) - i64::from(before), threshold));
            }
            last[l as usize] = Some(status.bikes);
        }
    }
    jumps
}

/// Censoring-corrected rates per station, kind and slot, per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// `[rentals, returns]` per local station, each `SLOTS` long.
    pub rates: Vec<[Vec<f64>; 2]>,
}

impl Rates {
    /// Estimates the rates from the observed changes in the world.
    pub fn estimate(world: &World<'_>, jump_threshold: u32) -> Rates {
        let n = world.stations.len();
        let mut counts = vec![[vec![0.0f64; SLOTS], vec![0.0f64; SLOTS]]; n];
        let mut exposure = vec![[vec![0.0f64; SLOTS], vec![0.0f64; SLOTS]]; n];
        let mut last: Vec<Option<(i64, u32, u32)>> = vec![None; n];
        for frame in &world.frames {
            for &(l, status) in &frame.rows {
                let l = l as usize;
                if let Some((before_ts, before_bikes, before_docks)) = last[l] {
                    let change = i64::from(status.bikes) - i64::from(before_bikes);
                    if !is_jump(change, jump_threshold) && frame.ts > before_ts {
                        let rentals = (-change).max(0) as f64;
                        let returns = change.max(0) as f64;
                        let rent_exposed = before_bikes > 0 || rentals > 0.0;
                        let return_exposed = before_docks > 0 || returns > 0.0;
                        let length = (frame.ts - before_ts) as f64;
                        for (slot, overlap) in slot_overlaps(before_ts, frame.ts) {
                            let share = overlap as f64 / length;
                            counts[l][0][slot] += rentals * share;
                            counts[l][1][slot] += returns * share;
                            if rent_exposed {
                                exposure[l][0][slot] += overlap as f64;
                            }
                            if return_exposed {
                                exposure[l][1][slot] += overlap as f64;
                            }
                        }
                    }
                }
                last[l] = Some((frame.ts, status.bikes, status.docks));
            }
        }
        let rates = counts
            .iter()
            .zip(&exposure)
            .map(|(c, e)| {
                let rate = |k: usize| -> Vec<f64> {
                    (0..SLOTS).map(|s| if e[k][s] > 0.0 { c[k][s] / e[k][s] } else { 0.0 }).collect()
                };
                [rate(0), rate(1)]
            })
            .collect();
        Rates { rates }
    }

    /// Expected events of one kind over the whole window, for reports.
    pub fn expected(&self, world: &World<'_>, kind: Kind) -> f64 {
        let k = kind as usize;
        self.rates
            .iter()
            .map(|r| {
                slot_overlaps(world.start, world.end).map(|(slot, overlap)| r[k][slot] * overlap as f64).sum::<f64>()
            })
            .sum()
    }

    /// The demand of replication `replication`: every station's and
    /// kind's own stream, merged in time order.
    pub fn generate(&self, world: &World<'_>, seed: u64, replication: u32) -> Vec<DemandEvent> {
        let mut events = Vec::new();
        for (l, rates) in self.rates.iter().enumerate() {
            for kind in [Kind::Rental, Kind::Return] {
                let mut rng = stream(seed, replication, world.key(l), kind);
                let mut segment_start = world.start;
                while segment_start < world.end {
                    let slot = slot_of(segment_start);
                    let segment_end = ((segment_start.div_euclid(SLOT_S) + 1) * SLOT_S).min(world.end);
                    let rate = rates[kind as usize][slot];
                    if rate > 0.0 {
                        // Exponential gaps; memorylessness lets each slot
                        // start afresh.
                        let mut t = segment_start as f64;
                        loop {
                            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                            t += -(1.0 - u).ln() / rate;
                            if t >= segment_end as f64 {
                                break;
                            }
                            events.push(DemandEvent { t: t.floor() as i64, station: l as u32, kind });
                        }
                    }
                    segment_start = segment_end;
                }
            }
        }
        events.sort_unstable();
        events
    }
}

/// The random stream of one station and kind in one replication.
fn stream(seed: u64, replication: u32, station_id: &str, kind: Kind) -> ChaCha8Rng {
    let mut material = Vec::with_capacity(64 + station_id.len());
    material.extend_from_slice(b"polis.replay.demand.v1\0");
    material.extend_from_slice(&seed.to_be_bytes());
    material.extend_from_slice(&replication.to_be_bytes());
    material.extend_from_slice(station_id.as_bytes());
    material.push(0);
    material.extend_from_slice(kind.label().as_bytes());
    ChaCha8Rng::from_seed(*Digest::of_bytes(&material).as_bytes())
}

/// The slot of the day a time falls in.
pub fn slot_of(t: i64) -> usize {
    (t.rem_euclid(86_400) / SLOT_S) as usize
}

/// `(slot of day, seconds)` for each slot `[from, to)` overlaps.
fn slot_overlaps(from: i64, to: i64) -> impl Iterator<Item = (usize, i64)> {
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= to {
            return None;
        }
        let end = ((at.div_euclid(SLOT_S) + 1) * SLOT_S).min(to);
        let item = (slot_of(at), end - at);
        at = end;
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_are_changes_at_or_above_the_threshold() {
        assert!(is_jump(6, 6));
        assert!(is_jump(-9, 6));
        assert!(!is_jump(5, 6));
        assert!(!is_jump(-5, 6));
        assert!(!is_jump(40, 0), "threshold 0 keeps every change");
    }

    #[test]
    fn slot_overlaps_split_an_interval_at_slot_boundaries() {
        let parts: Vec<(usize, i64)> = slot_overlaps(86_400 - 100, 86_400 + 1000).collect();
        assert_eq!(parts, vec![(95, 100), (0, 900), (1, 100)]);
    }

    #[test]
    fn streams_differ_by_station_kind_and_replication_only() {
        let draw = |r: u32, s: &str, k: Kind| stream(7, r, s, k).next_u64();
        assert_eq!(draw(0, "a", Kind::Rental), draw(0, "a", Kind::Rental));
        assert_ne!(draw(0, "a", Kind::Rental), draw(0, "a", Kind::Return));
        assert_ne!(draw(0, "a", Kind::Rental), draw(0, "b", Kind::Rental));
        assert_ne!(draw(0, "a", Kind::Rental), draw(1, "a", Kind::Rental));
    }
}
