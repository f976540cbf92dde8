//! The plugin registry cache and each plugin's system allowlist.
//!
//! The registry itself lives in memory (built-ins plus loaded plugins);
//! this table mirrors it so that every process, and people looking at the
//! database, see the same plugins, hashes and activation. The allowlist is
//! owned here: a `*` row enables a plugin for every system, and a row for a
//! named system overrides it either way.

use sqlx::Row;

use crate::{Store, StoreError, flag};

/// One plugin as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRecord {
    /// The plugin id.
    pub plugin_id: String,
    /// The contract it serves, such as `rebalance.v1`.
    pub contract: String,
    /// Its policy version.
    pub policy_version: String,
    /// Its strategy.
    pub strategy: String,
    /// Its tier, such as `builtin`.
    pub tier: String,
    /// Its manifest hash, hex.
    pub manifest_sha256: Option<String>,
    /// Its artifact hash, hex.
    pub artifact_sha256: Option<String>,
    /// `active` or `disabled`.
    pub activation: String,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
}

/// An approved plugin version, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// The plugin id.
    pub plugin_id: String,
    /// The plugin version approved.
    pub plugin_version: String,
    /// The approved file list's digest, hex.
    pub files_sha256: String,
    /// Who approved it.
    pub approved_by: String,
    /// When, epoch ms.
    pub approved_at_ms: i64,
}

/// One allowlist row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemOverride {
    /// A system id, or `*` for every system.
    pub system_id: String,
    /// Whether the plugin runs for it.
    pub enabled: bool,
}

impl Store {
    /// Mirrors the registry: upserts every plugin and gives plugins seen
    /// for the first time the allowlist `*` (every system), leaving
    /// allowlists an admin has changed alone.
    pub async fn sync_plugins(&self, plugins: &[PluginRecord], now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for p in plugins {
            sqlx::query(
                "INSERT INTO plugins (plugin_id, contract, policy_version, strategy, tier, manifest_sha256, artifact_sha256, \
                 activation, disabled_reason, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (plugin_id) DO UPDATE SET contract = excluded.contract, policy_version = excluded.policy_version, \
                 strategy = excluded.strategy, tier = excluded.tier, manifest_sha256 = excluded.manifest_sha256, \
                 artifact_sha256 = excluded.artifact_sha256, activation = excluded.activation, \
                 disabled_reason = excluded.disabled_reason, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(&p.plugin_id)
            .bind(&p.contract)
            .bind(&p.policy_version)
            .bind(&p.strategy)
            .bind(&p.tier)
            .bind(&p.manifest_sha256)
            .bind(&p.artifact_sha256)
            .bind(&p.activation)
            .bind(&p.disabled_reason)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let has_rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM plugin_systems WHERE plugin_id = $1")
                .bind(&p.plugin_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if has_rows == 0 {
                sqlx::query(
                    "INSERT INTO plugin_systems (plugin_id, system_id, enabled, updated_at_ms) VALUES ($1, '*', 1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&p.plugin_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every cached plugin, by plugin id.
    pub async fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT plugin_id, contract, policy_version, strategy, tier, manifest_sha256, artifact_sha256, activation, \
             disabled_reason FROM plugins ORDER BY plugin_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PluginRecord {
                    plugin_id: r.try_get("plugin_id")?,
                    contract: r.try_get("contract")?,
                    policy_version: r.try_get("policy_version")?,
                    strategy: r.try_get("strategy")?,
                    tier: r.try_get("tier")?,
                    manifest_sha256: r.try_get("manifest_sha256")?,
                    artifact_sha256: r.try_get("artifact_sha256")?,
                    activation: r.try_get("activation")?,
                    disabled_reason: r.try_get("disabled_reason")?,
                })
            })
            .collect()
    }

    /// A plugin's allowlist rows, `*` first then by system id.
    pub async fn plugin_systems(&self, plugin_id: &str) -> Result<Vec<SystemOverride>, StoreError> {
        let rows = sqlx::query("SELECT system_id, enabled FROM plugin_systems WHERE plugin_id = $1 ORDER BY system_id")
            .bind(plugin_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(SystemOverride { system_id: r.try_get("system_id")?, enabled: flag(r.try_get("enabled")?) }))
            .collect()
    }

    /// Enables or disables a plugin for a system (`*` for the default).
    /// Returns false when the plugin is not cached.
    pub async fn set_plugin_system(
        &self,
        plugin_id: &str,
        system_id: &str,
        enabled: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let known: i64 = sqlx::query("SELECT COUNT(*) AS n FROM plugins WHERE plugin_id = $1")
            .bind(plugin_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        if known == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO plugin_systems (plugin_id, system_id, enabled, updated_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin_id, system_id) DO UPDATE SET enabled = excluded.enabled, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(plugin_id)
        .bind(system_id)
        .bind(i64::from(enabled))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(true)
    }

    /// Whether a plugin may run for a system: its row for the system if
    /// there is one, else its `*` row, else no.
    pub async fn plugin_enabled_for(&self, plugin_id: &str, system_id: &str) -> Result<bool, StoreError> {
        let rows = sqlx::query(
            "SELECT system_id, enabled FROM plugin_systems WHERE plugin_id = $1 AND (system_id = $2 OR system_id = '*')",
        )
        .bind(plugin_id)
        .bind(system_id)
        .fetch_all(self.pool())
        .await?;
        let mut wildcard = false;
        for r in &rows {
            let system: String = r.try_get("system_id")?;
            let enabled = flag(r.try_get("enabled")?);
            if system == system_id {
                return Ok(enabled);
            }
            wildcard = enabled;
        }
        Ok(wildcard)
    }

    /// Records an approval unless the version already has one, and returns
    /// the stored row: the new one, or the earlier one (which the caller
    /// compares, since a version is approved once).
    pub async fn approve_plugin(&self, approval: &ApprovalRecord) -> Result<ApprovalRecord, StoreError> {
        sqlx::query(
            "INSERT INTO plugin_approvals (plugin_id, plugin_version, files_sha256, approved_by, approved_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (plugin_id, plugin_version) DO NOTHING",
        )
        .bind(&approval.plugin_id)
        .bind(&approval.plugin_version)
        .bind(&approval.files_sha256)
        .bind(&approval.approved_by)
        .bind(approval.approved_at_ms)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT plugin_id, plugin_version, files_sha256, approved_by, approved_at_ms FROM plugin_approvals \
             WHERE plugin_id = $1 AND plugin_version = $2",
        )
        .bind(&approval.plugin_id)
        .bind(&approval.plugin_version)
        .fetch_one(self.pool())
        .await?;
        approval_of(&row)
    }

    /// Every approval, by plugin id then version.
    pub async fn plugin_approvals(&self) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT plugin_id, plugin_version, files_sha256, approved_by, approved_at_ms FROM plugin_approvals \
             ORDER BY plugin_id, plugin_version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(approval_of).collect()
    }
}

fn approval_of(row: &sqlx::any::AnyRow) -> Result<ApprovalRecord, StoreError> {
    Ok(ApprovalRecord {
        plugin_id: row.try_get("plugin_id")?,
        plugin_version: row.try_get("plugin_version")?,
        files_sha256: row.try_get("files_sha256")?,
        approved_by: row.try_get("approved_by")?,
        approved_at_ms: row.try_get("approved_at_ms")?,
    })
}
