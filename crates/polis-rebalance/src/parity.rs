//! Cross-tier parity on real data: does a policy decide exactly like a
//! reference on every snapshot of a window?
//!
//! The comparison itself is the runtime's ([`polis_runtime::parity`]); this
//! module turns a window of GBFS snapshots into its cases, with inputs built
//! by the same [`SnapshotBuilder`] the CLI and the service use.

use polis_runtime::parity::{self, Case};

use crate::contract::{PolicyOutput, Rebalance};
use crate::gbfs::Feed;
use crate::host::{Host, HostError};
use crate::snapshot::{SnapshotBuilder, SnapshotError, SnapshotOptions};

fn not_run(error: &SnapshotError) -> polis_runtime::RunError {
    polis_runtime::RunError::NotCanonical { what: "snapshot", message: error.to_string() }
}

/// What a comparison found.
pub type Parity = parity::Parity<PolicyOutput>;

/// The cases of every snapshot of `feed` in `[from, from + seconds)`, with
/// default snapshot options and params, labelled by snapshot time.
pub fn cases(feed: &Feed, from: i64, seconds: i64) -> Result<Vec<Case<Rebalance>>, SnapshotError> {
    let mut builder = SnapshotBuilder::new(SnapshotOptions::default());
    let window = feed.snapshots.iter().skip_while(|s| s.ts < from).take_while(|s| s.ts < from + seconds);
    window
        .map(|snapshot| {
            Ok(crate::conformance::case(snapshot.ts.to_string(), builder.build(feed, snapshot, Some(snapshot.ts))?))
        })
        .collect()
}

/// Decides every snapshot of `feed` in `[from, from + seconds)` with
/// `reference` and `candidate` and compares their output hashes. A decision
/// error of either policy ends the comparison with the snapshot's time and
/// that error.
pub fn compare(
    host: &Host,
    feed: &Feed,
    from: i64,
    seconds: i64,
    reference: &str,
    candidate: &str,
) -> Result<Parity, (String, HostError)> {
    let cases = cases(feed, from, seconds).map_err(|e| (e.to_string(), HostError::Run(not_run(&e))))?;
    parity::compare(host, cases, reference, candidate)
}
