//! Inputs stored content-addressed: any domain submits its own input, kept
//! once under its `SHA-256(JCS(input))` however many runs use it.

use sqlx::Row;

use crate::{Store, StoreError};

/// A stored input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInput {
    /// Its digest, hex.
    pub input_sha256: String,
    /// The contract it is an input of.
    pub contract: String,
    /// The input as canonical JSON.
    pub body_json: String,
}

impl Store {
    /// Stores an input under its digest; storing the same input again
    /// changes nothing. The caller computed `input_sha256` from the
    /// canonical `body_json`; [`Store::input`] returns exactly these bytes.
    pub async fn put_input(&self, input: &StoredInput, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inputs (input_sha256, contract, body_json, size_bytes, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (input_sha256) DO NOTHING",
        )
        .bind(&input.input_sha256)
        .bind(&input.contract)
        .bind(&input.body_json)
        .bind(i64::try_from(input.body_json.len()).unwrap_or(i64::MAX))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The input with this digest.
    pub async fn input(&self, input_sha256: &str) -> Result<Option<StoredInput>, StoreError> {
        let row = sqlx::query("SELECT input_sha256, contract, body_json FROM inputs WHERE input_sha256 = $1")
            .bind(input_sha256)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(StoredInput {
                input_sha256: r.try_get("input_sha256")?,
                contract: r.try_get("contract")?,
                body_json: r.try_get("body_json")?,
            })
        })
        .transpose()
    }
}
