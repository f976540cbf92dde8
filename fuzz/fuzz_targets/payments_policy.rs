//! Untrusted payment-policy text: validation must never panic, and a policy
//! that validates must compile and evaluate without panicking.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use polis_payments::dsl::{self, Context, Field};

struct Zero;
impl Context for Zero {
    fn field(&self, _: Field) -> f64 {
        0.0
    }
    fn register(&self, _: usize) -> f64 {
        0.0
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = dsl::check(text);
    if let Ok(checked) = dsl::compile(text, &BTreeMap::new()) {
        assert!(report.is_ok());
        if let Some(tree) = &checked.policy.payment {
            let _ = tree.evaluate(&Zero, None);
        }
    }
});
