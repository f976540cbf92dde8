//! A wasm plugin that exercises the Rust guest SDK's host functions: it
//! moves nothing, logs how many stations it saw (`log:emit`), and reports
//! three draws from the generator polis seeds from the run key (`random`),
//! so the same run always draws the same numbers.
//!
//! Build with `cargo build -p polis-example-seeded --release --target
//! wasm32-unknown-unknown`.

use polis_guest::{Error, Request, host};
use serde_json::{Value, json};

/// The no-op decision with the draws as diagnostics.
pub fn decide(request: Request<Value, Value>) -> Result<Value, Error> {
    let stations = request.input["stations"].as_array().map_or(0, Vec::len);
    host::log(&format!("saw {stations} stations"));
    // Kept below 2^53 so the numbers survive any JSON reader exactly.
    let draws: Vec<u64> = (0..3).map(|_| host::random_u64() >> 11).collect();
    Ok(json!({
        "moves": [],
        "summary": {"bikes_moved_total": 0, "stations_touched": 0, "no_op": true},
        "diagnostics": {"stations_seen": stations, "draws": draws},
    }))
}

polis_guest::export_policy!(decide);
