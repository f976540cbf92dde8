//! Cross-tier parity: does a policy decide exactly like a reference on
//! every snapshot of a window?
//!
//! Each tier's parity test (wasm, process, remote) and anyone porting a
//! built-in to another language ask the same question, so it is answered
//! once here: both policies decide through the same [`Host`] on inputs
//! built by the same [`SnapshotBuilder`], and their output hashes are
//! compared. Equal hashes mean byte-identical canonical outputs.

use crate::contract::{PolicyOutput, RebalanceParams};
use crate::gbfs::Feed;
use crate::host::{Decision, Host, HostError};
use crate::snapshot::{SnapshotBuilder, SnapshotOptions};

/// The first snapshot on which the two policies disagreed.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The snapshot's time, epoch seconds.
    pub ts: i64,
    /// The reference's output.
    pub reference: PolicyOutput,
    /// The candidate's output.
    pub candidate: PolicyOutput,
}

/// What a comparison found.
#[derive(Debug, Clone, Default)]
pub struct Parity {
    /// Snapshots both policies decided.
    pub compared: usize,
    /// Of those, how many the reference moved bikes on (a comparison of
    /// nothing but no-ops would prove little).
    pub with_moves: usize,
    /// The first disagreement; comparison stops there.
    pub mismatch: Option<Mismatch>,
}

/// Decides every snapshot of `feed` in `[from, from + seconds)` with
/// `reference` and `candidate`, with default snapshot options and params.
/// A decision error of either policy ends the comparison with that error.
pub fn compare(
    host: &Host,
    feed: &Feed,
    from: i64,
    seconds: i64,
    reference: &str,
    candidate: &str,
) -> Result<Parity, (i64, HostError)> {
    let mut builder = SnapshotBuilder::new(SnapshotOptions::default());
    let params = RebalanceParams::default();
    let mut parity = Parity::default();
    let window = feed.snapshots.iter().skip_while(|s| s.ts < from).take_while(|s| s.ts < from + seconds);
    for snapshot in window {
        let built = builder.build(feed, snapshot, Some(snapshot.ts));
        let decision = Decision {
            system_id: &built.system_id,
            sv: &built.sv,
            decision_bucket_ts: built.decision_bucket_ts,
            horizon_steps: 0,
            request_id: None,
            input: &built.input,
            params: &params,
            control: None,
        };
        let expected = host.decide(reference, &decision).map_err(|e| (snapshot.ts, e))?;
        let actual = host.decide(candidate, &decision).map_err(|e| (snapshot.ts, e))?;
        parity.compared += 1;
        parity.with_moves += usize::from(!expected.output.moves.is_empty());
        if actual.output_sha256 != expected.output_sha256 {
            parity.mismatch = Some(Mismatch { ts: snapshot.ts, reference: expected.output, candidate: actual.output });
            break;
        }
    }
    Ok(parity)
}

impl Parity {
    /// Panics unless the comparison covered more than `min_compared`
    /// snapshots, most with moves, and found no mismatch. For tests.
    pub fn assert_identical(&self, min_compared: usize) {
        if let Some(m) = &self.mismatch {
            #[expect(clippy::panic, reason = "a test assertion with the evidence attached")]
            {
                panic!(
                    "snapshot at {}: output differs from the reference's\ncandidate: {:?}\nreference: {:?}",
                    m.ts, m.candidate, m.reference
                );
            }
        }
        assert!(self.compared > min_compared, "only {} snapshots compared", self.compared);
        assert!(
            self.with_moves > self.compared / 2,
            "only {} of {} snapshots had moves",
            self.with_moves,
            self.compared
        );
    }
}
