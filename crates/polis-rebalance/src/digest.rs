//! `SHA-256(JCS(input))` with the neighbour graph hashed once while it
//! repeats.
//!
//! RFC 8785 writes an input's members in key order:
//! `{"effort":…,"neighbors":[…],"stations":[…],"targets":…}`. Effort and
//! neighbours come first, and in a replay or a service deciding one
//! snapshot time after another they repeat while the stations change; the
//! graph is most of the bytes. The process keeps the hash state after
//! `{"effort":E,"neighbors":N,"stations":` with a copy of E and N, and an
//! input with equal effort and neighbours continues from that state. The
//! comparison is in full, so the digest is `SHA-256(JCS(input))` in every
//! case (tests compare both on real snapshots and edge cases); equal values
//! have equal canonical bytes (`-0.0 == 0.0`, and RFC 8785 writes both as
//! `0`). One graph is kept at a time: the latest one hashed.

use std::sync::{Mutex, PoisonError};

use polis_core::canonical::{CanonicalError, Digest, DigestWriter};

use crate::contract::{Effort, Neighbor, PolicyInput};

/// The hashed prefix and what it was made of.
struct Prefix {
    effort: Effort,
    neighbors: Vec<Neighbor>,
    state: DigestWriter,
}

static PREFIX: Mutex<Option<Prefix>> = Mutex::new(None);

/// `SHA-256(JCS(input))`.
pub fn input_digest(input: &PolicyInput) -> Result<Digest, CanonicalError> {
    // A poisoned lock only means another thread panicked while replacing
    // the cache; the entry is checked in full before use either way.
    let cached = PREFIX
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|p| p.effort == input.effort && p.neighbors == input.neighbors)
        .map(|p| p.state.clone());
    let mut state = match cached {
        Some(state) => state,
        None => {
            let mut state = DigestWriter::new();
            state.update(b"{\"effort\":");
            state.update_canonical(&input.effort)?;
            state.update(b",\"neighbors\":");
            state.update_canonical(&input.neighbors)?;
            state.update(b",\"stations\":");
            *PREFIX.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Prefix { effort: input.effort.clone(), neighbors: input.neighbors.clone(), state: state.clone() });
            state
        }
    };
    state.update_canonical(&input.stations)?;
    state.update(b",\"targets\":");
    state.update_canonical(&input.targets)?;
    state.update(b"}");
    Ok(state.finish())
}

#[cfg(test)]
mod tests {
    use polis_core::canonical::digest_of;

    use super::*;
    use crate::contract::{Station, Targets};

    fn input(bikes: u32, dist_m: f64) -> PolicyInput {
        let station = |key: &str, bikes: u32| Station {
            bikes,
            bucket_quality: "ok".to_owned(),
            capacity: 10,
            docks: 10 - bikes,
            station_key: key.to_owned(),
        };
        PolicyInput {
            stations: vec![station("a", bikes), station("b\u{e9}\"", 1)],
            neighbors: vec![Neighbor {
                dist_m,
                from_station_key: "a".to_owned(),
                rank: 1,
                to_station_key: "b\u{e9}\"".to_owned(),
            }],
            effort: Effort { bike_move_budget_per_step: 60, max_stations_touched: 30, max_moves: 20 },
            targets: Targets { alpha: 0.2, beta: 0.8, min_capacity_for_policy: 1 },
        }
    }

    #[test]
    fn the_digest_is_the_canonical_hash_whether_the_graph_repeats_or_changes() {
        for (bikes, dist_m) in [(9, 120.5), (8, 120.5), (8, 99.0), (9, 120.5), (0, -0.0), (0, 0.0)] {
            let input = input(bikes, dist_m);
            assert_eq!(input_digest(&input).unwrap(), digest_of(&input).unwrap(), "bikes {bikes}, dist {dist_m}");
        }
    }

    #[test]
    fn a_graph_that_cannot_be_canonicalised_is_an_error() {
        assert!(input_digest(&input(1, f64::NAN)).is_err());
    }
}
