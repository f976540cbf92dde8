//! Untrusted manifest bytes: parsing and validation must never panic, and a
//! manifest that validates must hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polis_core::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_json(data) {
        assert!(manifest.digest().is_ok());
    }
});
