//! Payment policies stored per agent, the table seed 004 reads
//! (`SELECT policy_json FROM agent_policies WHERE agent_id = ?`). The store
//! keeps text and digests only; validating the DSL is the payments crate's
//! job and happens before a put.

use sqlx::Row;

use crate::{Store, StoreError};

/// One stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPolicy {
    /// The agent it is for.
    pub agent_id: String,
    /// The policy JSON as given.
    pub policy_json: String,
    /// SHA-256 of `policy_json`'s bytes, hex.
    pub policy_sha256: String,
    /// Who stored it (a token subject or `cli`).
    pub updated_by: String,
    /// When, in milliseconds since the epoch.
    pub updated_at_ms: i64,
}

impl Store {
    /// Stores `policy`, replacing the agent's previous one.
    pub async fn put_agent_policy(&self, policy: &AgentPolicy) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_policies (agent_id, policy_json, policy_sha256, updated_by, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id) DO UPDATE SET \
             policy_json = excluded.policy_json, policy_sha256 = excluded.policy_sha256, \
             updated_by = excluded.updated_by, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&policy.agent_id)
        .bind(&policy.policy_json)
        .bind(&policy.policy_sha256)
        .bind(&policy.updated_by)
        .bind(policy.updated_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The agent's stored policy, if any.
    pub async fn agent_policy(&self, agent_id: &str) -> Result<Option<AgentPolicy>, StoreError> {
        let row = sqlx::query(
            "SELECT agent_id, policy_json, policy_sha256, updated_by, updated_at_ms FROM agent_policies \
             WHERE agent_id = $1",
        )
        .bind(agent_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(policy_of).transpose()
    }

    /// Every stored policy, by agent id.
    pub async fn agent_policies(&self) -> Result<Vec<AgentPolicy>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, policy_json, policy_sha256, updated_by, updated_at_ms FROM agent_policies \
             ORDER BY agent_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(policy_of).collect()
    }
}

fn policy_of(row: &sqlx::any::AnyRow) -> Result<AgentPolicy, StoreError> {
    Ok(AgentPolicy {
        agent_id: row.try_get("agent_id")?,
        policy_json: row.try_get("policy_json")?,
        policy_sha256: row.try_get("policy_sha256")?,
        updated_by: row.try_get("updated_by")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}
