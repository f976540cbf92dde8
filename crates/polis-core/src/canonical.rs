//! RFC 8785 canonical JSON and SHA-256 digests.
//!
//! Every hash polis records is `SHA-256(JCS(value))`: the value is serialised
//! with sorted object keys, no insignificant whitespace and ECMAScript number
//! formatting, so the same logical document hashes the same whatever the key
//! order or spacing it arrived with, and in whatever language it was made.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a value could not be canonicalised.
#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalise value: {0}")]
pub struct CanonicalError(String);

impl CanonicalError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        CanonicalError(message.into())
    }
}

/// Serialises `value` as RFC 8785 canonical JSON.
///
/// Object keys are sorted by their UTF-16 code units, numbers use the
/// ECMAScript shortest round-trip form (integers beyond 2^53 go through
/// IEEE 754 doubles, as the RFC requires), and strings use the minimal
/// escaping JSON allows. Fails for values JSON cannot represent, such as a
/// NaN or infinite float.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    crate::jcs::write(&mut out, value).map_err(|e| CanonicalError(e.0))?;
    Ok(out)
}

/// Returns `SHA-256(JCS(value))`.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> Result<Digest, CanonicalError> {
    Ok(Digest::of_bytes(&to_canonical_vec(value)?))
}

/// A SHA-256 digest, shown and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

/// SHA-256 over bytes given in pieces. Cloning it keeps the state of what
/// was hashed so far, so a prefix shared by many documents is hashed once.
#[derive(Clone, Default)]
pub struct DigestWriter(Sha256);

impl DigestWriter {
    /// A writer with nothing hashed.
    pub fn new() -> Self {
        DigestWriter::default()
    }

    /// Hashes `bytes` after what came before.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Hashes the canonical form of `value`.
    pub fn update_canonical<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonicalError> {
        self.0.update(to_canonical_vec(value)?);
        Ok(())
    }

    /// The digest of everything written.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

impl std::fmt::Debug for DigestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestWriter")
    }
}

impl Digest {
    /// Hashes raw bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The lowercase hex form, as stored and printed.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Digest(out))
    }

    /// The first eight bytes as a big-endian integer, for deriving seeds.
    pub fn prefix_u64(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits of a SHA-256 digest"))
    }
}

impl schemars::JsonSchema for Digest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha256Hex".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "SHA-256 digest as 64 lowercase hex digits"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_digest() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2.5]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2.5],"b":1}"#).unwrap();
        assert_eq!(digest_of(&a).unwrap(), digest_of(&b).unwrap());
    }

    #[test]
    fn canonical_form_follows_rfc_8785() {
        let value = json!({"z": 1.0, "a": "\u{e9}", "m": [1e21, 0.1]});
        let text = String::from_utf8(to_canonical_vec(&value).unwrap()).unwrap();
        assert_eq!(text, r#"{"a":"é","m":[1e+21,0.1],"z":1}"#);
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB01 (FB01),
        // although its UTF-8 bytes sort after.
        let value = json!({"\u{fb01}": 1, "\u{1f600}": 2});
        let text = String::from_utf8(to_canonical_vec(&value).unwrap()).unwrap();
        assert_eq!(text, "{\"\u{1f600}\":2,\"\u{fb01}\":1}");
    }

    #[test]
    fn numbers_follow_ecmascript_formatting() {
        let value = json!([0.0, -0.0, 1e-7, 123456789012345680000.0, 9007199254740993u64, -5, 0.000001]);
        let text = String::from_utf8(to_canonical_vec(&value).unwrap()).unwrap();
        assert_eq!(text, "[0,0,1e-7,123456789012345680000,9007199254740992,-5,0.000001]");
    }

    #[test]
    fn strings_use_minimal_escapes() {
        let value = json!("a\"b\\c\n\u{1}/\u{2028}");
        let text = String::from_utf8(to_canonical_vec(&value).unwrap()).unwrap();
        assert_eq!(text, "\"a\\\"b\\\\c\\n\\u0001/\u{2028}\"");
    }

    #[test]
    fn non_finite_numbers_have_no_canonical_form() {
        assert!(to_canonical_vec(&f64::NAN).is_err());
        assert!(to_canonical_vec(&[1.0, f64::INFINITY]).is_err());
    }

    #[test]
    fn structs_enums_and_options_canonicalise_like_their_json() {
        #[derive(serde::Serialize)]
        enum Shape {
            Dot,
            Line(u8, u8),
            Box { w: u8, h: u8 },
        }
        #[derive(serde::Serialize)]
        struct Doc {
            zeta: Option<u8>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            alpha: Vec<Shape>,
            map: std::collections::BTreeMap<u32, &'static str>,
        }
        let doc = Doc {
            zeta: None,
            skipped: None,
            alpha: vec![Shape::Dot, Shape::Line(1, 2), Shape::Box { w: 3, h: 4 }],
            map: [(10, "x"), (9, "y")].into_iter().collect(),
        };
        let text = String::from_utf8(to_canonical_vec(&doc).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"alpha":["Dot",{"Line":[1,2]},{"Box":{"h":4,"w":3}}],"map":{"10":"x","9":"y"},"zeta":null}"#
        );
        let via_value = to_canonical_vec(&serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(text.as_bytes(), via_value.as_slice());
    }

    #[test]
    fn hex_round_trips() {
        let d = Digest::of_bytes(b"polis");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }

    #[test]
    fn sha256_of_empty_input_is_the_known_constant() {
        assert_eq!(Digest::of_bytes(b"").to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    /// RFC 8785 written out plainly over `serde_json::Value`: the writer
    /// must agree with it byte for byte.
    fn reference(value: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) if i.unsigned_abs() <= 1 << 53 => out.push_str(&i.to_string()),
                (_, Some(u), _) if u <= 1 << 53 => out.push_str(&u.to_string()),
                (_, _, Some(f)) => out.push_str(ryu_js::Buffer::new().format_finite(f)),
                _ => unreachable!("a JSON number is an i64, a u64 or an f64"),
            },
            Value::String(text) => out.push_str(&serde_json::to_string(text).unwrap()),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(item, out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                let mut keys: Vec<&String> = members.keys().collect();
                keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push(':');
                    reference(&members[key], out);
                }
                out.push('}');
            }
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        // Keys mix ASCII, high-BMP and astral characters, where UTF-16
        // order and byte order disagree.
        let key = proptest::sample::select(vec!["a", "B", "ab", "z", "é", "\u{ff61}", "\u{1f600}", "10", "9", ""]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "[a-z\"\\\\\u{0}-\u{1f}é😀]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone().prop_map(str::to_owned), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_writer_agrees_with_a_plain_reference(value in json_value()) {
            let mut expected = String::new();
            reference(&value, &mut expected);
            let written = to_canonical_vec(&value).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }
}
