//! Untrusted repo-local policy text (`.polis/policy.json|yml`) and pack
//! documents: parsing and checking must never panic, and a YAML or JSON
//! policy that parses must check as an override layer without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polis_packs::local;

fuzz_target!(|data: &[u8]| {
    let _ = polis_packs::PackDocument::from_json("fuzz", data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    for parsed in [local::parse_json("fuzz", text), local::parse_yaml("fuzz", text)] {
        if let Ok(value) = parsed {
            let _ = polis_packs::check::policy("fuzz", &value, polis_packs::check::Kind::Override);
        }
    }
});
