//! Short-lived in-memory caches of the lookups `POST /api/policy/run`
//! makes before its ready cache: whether a plugin is enabled for a system
//! (the allow-list) and which snapshot serves a bucket or an `sv`.
//!
//! Without them a cached answer would still cost two database queries.
//! Their freshness is bounded two ways:
//!
//! - **In this process, exactly.** A change this process makes (an admin
//!   call to the allow-list, an ingest) invalidates the table it touches
//!   before the call answers, so the next request sees it. Each table
//!   carries a generation that invalidation bumps; a lookup that raced
//!   with an invalidation does not store what it read, so a stale answer
//!   read before the change cannot outlive it.
//! - **Across processes, by a TTL** ([`crate::ServiceConfig::lookup_ttl`],
//!   2 s by default). A change another process makes is seen here at most
//!   that long after.
//!
//! The TTL is checked against the monotonic clock; that is the only clock
//! these caches read. It decides only how fresh a lookup is, never what a
//! policy decides: a run key names its snapshot by `sv`, and a snapshot
//! once stored never changes (ingest leaves stored ones alone), so a cached
//! identity is the stored one.
//!
//! The tables are `HashMap`s that are only ever probed by key and never
//! iterated, so their order cannot leak into any answer. When a table is
//! full it is emptied, which costs only re-reading the store.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polis_core::canonical::{self, Digest};
use polis_rebalance::contract::RebalanceParams;
use polis_rebalance::host::Host;
use polis_store::rebalance::SnapshotRecord;

/// What a run needs of a snapshot: its identity, not its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotIdentity {
    /// The serving view token.
    pub sv: String,
    /// `{system_id}@{snapshot_ts}`.
    pub view_snapshot_id: String,
    /// The view's hash, hex.
    pub view_snapshot_sha256: String,
}

impl From<SnapshotRecord> for SnapshotIdentity {
    fn from(record: SnapshotRecord) -> Self {
        SnapshotIdentity {
            sv: record.sv,
            view_snapshot_id: record.view_snapshot_id,
            view_snapshot_sha256: record.view_snapshot_sha256,
        }
    }
}

/// How a request names its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SnapshotKey {
    /// The snapshot serving a bucket (its start, epoch seconds).
    Bucket {
        /// The system.
        system_id: String,
        /// The bucket start.
        bucket_ts: i64,
    },
    /// The snapshot with this serving view.
    Sv {
        /// The system.
        system_id: String,
        /// The serving view token.
        sv: String,
    },
}

/// A snapshot lookup's answer: `None` when the store has no such snapshot.
pub type SnapshotAnswer = Option<Arc<SnapshotIdentity>>;

/// The canonical text of a default policy spec and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecText {
    /// The RFC 8785 text of the spec.
    pub json: Arc<str>,
    /// Its SHA-256.
    pub sha256: Digest,
}

/// The lookup caches of one process.
#[derive(Debug)]
pub struct Lookups {
    ttl: Duration,
    allow: Table<(String, String), bool>,
    snapshots: Table<SnapshotKey, SnapshotAnswer>,
    default_specs: Mutex<HashMap<String, SpecText>>,
}

/// A ticket for storing a lookup: the table's generation when the lookup
/// began. Storing with a ticket from before an invalidation does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Lookups {
    /// Caches whose entries live `ttl` (zero disables them) and hold at
    /// most `capacity` entries per table.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Lookups {
            ttl,
            allow: Table::new(capacity),
            snapshots: Table::new(capacity),
            default_specs: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `plugin_id` is enabled for `system_id`, if known and fresh;
    /// otherwise the ticket to store the store's answer with.
    pub fn allowed(&self, plugin_id: &str, system_id: &str) -> Result<bool, Ticket> {
        self.allow.get(&(plugin_id.to_owned(), system_id.to_owned()), Instant::now())
    }

    /// Keeps the store's allow-list answer, read under `ticket`.
    pub fn keep_allowed(&self, plugin_id: &str, system_id: &str, enabled: bool, ticket: Ticket) {
        self.allow.insert((plugin_id.to_owned(), system_id.to_owned()), enabled, ticket, self.expiry());
    }

    /// Forgets every allow-list answer: this process changed the list.
    pub fn invalidate_allow(&self) {
        self.allow.invalidate();
    }

    /// The snapshot a request names, if known and fresh; otherwise the
    /// ticket to store the store's answer with.
    pub fn snapshot(&self, key: &SnapshotKey) -> Result<SnapshotAnswer, Ticket> {
        self.snapshots.get(key, Instant::now())
    }

    /// Keeps the store's snapshot answer, read under `ticket`.
    pub fn keep_snapshot(&self, key: SnapshotKey, answer: SnapshotAnswer, ticket: Ticket) {
        self.snapshots.insert(key, answer, ticket, self.expiry());
    }

    /// Forgets every snapshot answer: this process ingested.
    pub fn invalidate_snapshots(&self) {
        self.snapshots.invalidate();
    }

    /// The spec of `policy_version` with default params, canonicalised
    /// once per version. Specs depend on nothing but their arguments, so
    /// this cache never expires.
    pub fn default_spec(&self, policy_version: &str) -> Option<SpecText> {
        if let Ok(specs) = self.default_specs.lock()
            && let Some(found) = specs.get(policy_version)
        {
            return Some(found.clone());
        }
        let text = spec_text(policy_version, &RebalanceParams::default())?;
        if let Ok(mut specs) = self.default_specs.lock() {
            specs.insert(policy_version.to_owned(), text.clone());
        }
        Some(text)
    }

    fn expiry(&self) -> Option<Instant> {
        if self.ttl.is_zero() {
            return None;
        }
        Instant::now().checked_add(self.ttl)
    }
}

/// The canonical text and hash of the spec of `policy_version` with
/// `params`; `None` if it does not canonicalise (a non-finite number).
pub fn spec_text(policy_version: &str, params: &RebalanceParams) -> Option<SpecText> {
    let spec = Host::spec(policy_version, params).ok()?;
    let json = canonical::to_canonical_vec(&spec).ok().and_then(|b| String::from_utf8(b).ok())?;
    let sha256 = Digest::of_bytes(json.as_bytes());
    Some(SpecText { json: json.into(), sha256 })
}

#[derive(Debug)]
struct Table<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    generation: u64,
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash, V: Clone> Table<K, V> {
    fn new(capacity: usize) -> Self {
        Table { capacity, inner: Mutex::new(Inner { generation: 0, entries: HashMap::new() }) }
    }

    fn get(&self, key: &K, now: Instant) -> Result<V, Ticket> {
        let Ok(inner) = self.inner.lock() else {
            return Err(Ticket(u64::MAX));
        };
        match inner.entries.get(key) {
            Some((value, expires)) if now < *expires => Ok(value.clone()),
            _ => Err(Ticket(inner.generation)),
        }
    }

    fn insert(&self, key: K, value: V, ticket: Ticket, expires: Option<Instant>) {
        let Some(expires) = expires else { return };
        if self.capacity == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.clear();
        }
        inner.entries.insert(key, (value, expires));
    }

    fn invalidate(&self) {
        // A poisoned lock means a thread panicked while holding it; the
        // map is still consistent (every update is a single insert), so
        // recover it rather than keep serving from a table we cannot clear.
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_kept() {
        let lookups = Lookups::new(Duration::from_secs(60), 10);
        let Err(ticket) = lookups.allowed("p", "s") else { unreachable!("empty cache") };
        lookups.invalidate_allow();
        lookups.keep_allowed("p", "s", true, ticket);
        assert!(lookups.allowed("p", "s").is_err(), "a raced answer must not be kept");
        let Err(ticket) = lookups.allowed("p", "s") else { unreachable!("still empty") };
        lookups.keep_allowed("p", "s", false, ticket);
        assert_eq!(lookups.allowed("p", "s"), Ok(false));
        lookups.invalidate_allow();
        assert!(lookups.allowed("p", "s").is_err());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let table: Table<u8, u8> = Table::new(10);
        let now = Instant::now();
        table.insert(1, 7, Ticket(0), Some(now + Duration::from_secs(2)));
        assert_eq!(table.get(&1, now), Ok(7));
        assert!(table.get(&1, now + Duration::from_secs(2)).is_err());
        let off = Lookups::new(Duration::ZERO, 10);
        let Err(ticket) = off.snapshot(&SnapshotKey::Sv { system_id: "s".into(), sv: "v".into() }) else {
            unreachable!("empty cache")
        };
        off.keep_snapshot(SnapshotKey::Sv { system_id: "s".into(), sv: "v".into() }, None, ticket);
        assert!(off.snapshot(&SnapshotKey::Sv { system_id: "s".into(), sv: "v".into() }).is_err());
    }

    #[test]
    fn a_full_table_is_emptied() {
        let table: Table<u8, u8> = Table::new(2);
        let later = Some(Instant::now() + Duration::from_secs(60));
        for k in 0..3 {
            table.insert(k, k, Ticket(0), later);
        }
        let now = Instant::now();
        assert!(table.get(&0, now).is_err());
        assert_eq!(table.get(&2, now), Ok(2));
    }

    #[test]
    fn the_default_spec_is_the_spec_of_default_params() {
        let lookups = Lookups::new(Duration::from_secs(2), 10);
        let memo = lookups.default_spec("rebal.global.v1");
        assert_eq!(memo, spec_text("rebal.global.v1", &RebalanceParams::default()));
        assert_eq!(lookups.default_spec("rebal.global.v1"), memo);
    }
}
