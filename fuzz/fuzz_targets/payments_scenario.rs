//! Untrusted scenario text: reading a SimCash scenario must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = polis_payments::sim::config::parse(text, false);
});
