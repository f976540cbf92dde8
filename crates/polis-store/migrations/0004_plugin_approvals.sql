-- Approvals of plugin versions: an admin approved exactly the files
-- (`files_sha256`, the digest of the plugin directory's file list) a
-- plugin version holds. One row per (plugin, version), never replaced: a
-- version whose files change needs a new version.
CREATE TABLE plugin_approvals (
    plugin_id TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    files_sha256 TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at_ms BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, plugin_version)
);
