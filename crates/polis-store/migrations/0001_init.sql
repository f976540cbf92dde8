-- One schema for SQLite and PostgreSQL: only types and statements both
-- accept. Times are epoch milliseconds (BIGINT), flags are 0/1 BIGINTs,
-- hashes are 64-digit lowercase hex, documents are canonical JSON text.

CREATE TABLE plugins (
    plugin_id TEXT NOT NULL PRIMARY KEY,
    contract TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    strategy TEXT NOT NULL,
    tier TEXT NOT NULL,
    manifest_sha256 TEXT,
    artifact_sha256 TEXT,
    activation TEXT NOT NULL,
    disabled_reason TEXT,
    updated_at_ms BIGINT NOT NULL
);

-- The allowlist of systems per plugin. `*` stands for every system; a row
-- for a named system overrides the `*` row.
CREATE TABLE plugin_systems (
    plugin_id TEXT NOT NULL,
    system_id TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, system_id)
);

CREATE TABLE station_info (
    system_id TEXT NOT NULL,
    station_key TEXT NOT NULL,
    name TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    capacity BIGINT NOT NULL,
    PRIMARY KEY (system_id, station_key)
);

CREATE TABLE station_graphs (
    graph_sha256 TEXT NOT NULL PRIMARY KEY,
    neighbors_json TEXT NOT NULL
);

CREATE TABLE station_snapshots (
    system_id TEXT NOT NULL,
    snapshot_ts BIGINT NOT NULL,
    sv TEXT NOT NULL,
    decision_bucket_ts BIGINT NOT NULL,
    view_snapshot_id TEXT NOT NULL,
    view_snapshot_sha256 TEXT NOT NULL,
    body_json TEXT NOT NULL,
    graph_sha256 TEXT NOT NULL REFERENCES station_graphs (graph_sha256),
    ingested_at_ms BIGINT NOT NULL,
    PRIMARY KEY (system_id, snapshot_ts)
);

CREATE UNIQUE INDEX station_snapshots_sv ON station_snapshots (system_id, sv);

CREATE TABLE policy_runs (
    run_id TEXT NOT NULL PRIMARY KEY,
    run_key_sha256 TEXT NOT NULL UNIQUE,
    system_id TEXT NOT NULL,
    sv TEXT NOT NULL,
    decision_bucket_ts BIGINT NOT NULL,
    policy_version TEXT NOT NULL,
    policy_spec_sha256 TEXT NOT NULL,
    horizon_steps BIGINT NOT NULL,
    policy_spec_json TEXT NOT NULL,
    view_snapshot_id TEXT NOT NULL,
    view_snapshot_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    plugin_id TEXT,
    manifest_sha256 TEXT,
    input_sha256 TEXT,
    output_sha256 TEXT,
    output_json TEXT,
    diagnostics_json TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    finished_at_ms BIGINT,
    plugin_us BIGINT
);

CREATE INDEX policy_runs_queue ON policy_runs (status, created_at_ms, run_id);
CREATE INDEX policy_runs_recent ON policy_runs (created_at_ms);

CREATE TABLE policy_moves (
    run_id TEXT NOT NULL REFERENCES policy_runs (run_id),
    move_rank BIGINT NOT NULL,
    from_station_key TEXT NOT NULL,
    to_station_key TEXT NOT NULL,
    bikes_moved BIGINT NOT NULL,
    dist_m DOUBLE PRECISION NOT NULL,
    budget_exhausted BIGINT NOT NULL,
    neighbor_exhausted BIGINT NOT NULL,
    reason_codes_json TEXT NOT NULL,
    PRIMARY KEY (run_id, move_rank)
);
