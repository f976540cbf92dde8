//! Cross-tier parity: does a policy decide exactly like a reference on
//! every case of a corpus?
//!
//! Each tier's parity test (wasm, process, remote) and anyone porting a
//! built-in to another language ask the same question of every domain, so
//! it is answered once here: both policies decide through the same
//! [`Host`] on the same inputs, and their output hashes are compared. Equal
//! hashes mean byte-identical canonical outputs.

use polis_core::contract::Contract;

use crate::host::{Decision, Host, HostError};

/// One case both policies decide.
pub struct Case<C: Contract> {
    /// How the case is named in a report, such as a snapshot time.
    pub label: String,
    /// The run subject.
    pub subject: C::Subject,
    /// The input.
    pub input: C::Input,
    /// The params.
    pub params: C::Params,
}

/// The first case on which the two policies disagreed.
#[derive(Debug, Clone)]
pub struct Mismatch<O> {
    /// The case's label.
    pub label: String,
    /// The reference's output.
    pub reference: O,
    /// The candidate's output.
    pub candidate: O,
}

/// What a comparison found.
#[derive(Debug, Clone)]
pub struct Parity<O> {
    /// Cases both policies decided.
    pub compared: usize,
    /// Of those, how many the reference's output counted items in (a
    /// comparison of nothing but empty outputs would prove little).
    pub with_items: usize,
    /// The first disagreement; comparison stops there.
    pub mismatch: Option<Mismatch<O>>,
}

/// Decides every case with `reference` and `candidate` and compares their
/// output hashes. A decision error of either policy ends the comparison
/// with the case's label and that error.
pub fn compare<C: Contract>(
    host: &Host<C>,
    cases: impl IntoIterator<Item = Case<C>>,
    reference: &str,
    candidate: &str,
) -> Result<Parity<C::Output>, (String, HostError)> {
    let mut parity = Parity { compared: 0, with_items: 0, mismatch: None };
    for case in cases {
        let decision = Decision::new(&case.subject, &case.input, &case.params);
        // Both policies decide the same input: check and hash it once.
        let checked = host.check_input(&case.input, &case.params).map_err(|e| (case.label.clone(), e))?;
        let expected = host.decide_checked(reference, &decision, &checked).map_err(|e| (case.label.clone(), e))?;
        let actual = host.decide_checked(candidate, &decision, &checked).map_err(|e| (case.label.clone(), e))?;
        parity.compared += 1;
        parity.with_items += usize::from(C::output_items(&expected.output) > 0);
        if actual.output_sha256 != expected.output_sha256 {
            parity.mismatch =
                Some(Mismatch { label: case.label, reference: expected.output, candidate: actual.output });
            break;
        }
    }
    Ok(parity)
}

impl<O: std::fmt::Debug> Parity<O> {
    /// Panics unless the comparison covered more than `min_compared`
    /// cases, most with items, and found no mismatch. For tests.
    pub fn assert_identical(&self, min_compared: usize) {
        if let Some(m) = &self.mismatch {
            #[expect(clippy::panic, reason = "a test assertion with the evidence attached")]
            {
                panic!(
                    "case {}: output differs from the reference's\ncandidate: {:?}\nreference: {:?}",
                    m.label, m.candidate, m.reference
                );
            }
        }
        assert!(self.compared > min_compared, "only {} cases compared", self.compared);
        assert!(self.with_items > self.compared / 2, "only {} of {} cases had items", self.with_items, self.compared);
    }
}
