//! Serde for event times: epoch seconds inside, RFC 3339 UTC on the wire.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes epoch seconds as RFC 3339 UTC.
pub fn serialize<S: Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::bars::rfc3339(*ts))
}

/// Reads an RFC 3339 time (or any time the bar reader accepts).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    crate::bars::parse_time(&text).map_err(serde::de::Error::custom)
}
