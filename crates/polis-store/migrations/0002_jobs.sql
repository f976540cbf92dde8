-- The store becomes domain-neutral at its core: a generic job queue with
-- one result per key (`jobs`), and inputs stored content-addressed
-- (`inputs`). Rebalancing keeps its own columns and its moves in its own
-- tables (`rebalance_runs`, `rebalance_moves`), and every run stored before
-- this migration moves there unchanged.

CREATE TABLE inputs (
    input_sha256 TEXT NOT NULL PRIMARY KEY,
    contract TEXT NOT NULL,
    body_json TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- A job is any domain's work: one policy run, a replay, a simulation, an
-- evaluation. `key_sha256` is unique, so asking for the same work twice
-- never computes it twice; `kind` says which domain handler runs it.
CREATE TABLE jobs (
    job_id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    contract TEXT,
    key_sha256 TEXT NOT NULL UNIQUE,
    key_json TEXT,
    payload_json TEXT,
    policy_version TEXT,
    status TEXT NOT NULL,
    plugin_id TEXT,
    manifest_sha256 TEXT,
    input_sha256 TEXT,
    output_sha256 TEXT,
    result_json TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    finished_at_ms BIGINT,
    plugin_us BIGINT,
    submitted_by TEXT
);

CREATE INDEX jobs_queue ON jobs (status, created_at_ms, job_id);
CREATE INDEX jobs_recent ON jobs (created_at_ms);
CREATE INDEX jobs_plugin ON jobs (plugin_id, status, finished_at_ms);

-- A rebalancing decision: the run key's subject, the spec and the snapshot
-- the job is bound to. `jobs.policy_version` and `jobs.key_sha256` hold the
-- rest of the seed's key.
CREATE TABLE rebalance_runs (
    job_id TEXT NOT NULL PRIMARY KEY REFERENCES jobs (job_id),
    system_id TEXT NOT NULL,
    sv TEXT NOT NULL,
    decision_bucket_ts BIGINT NOT NULL,
    policy_spec_sha256 TEXT NOT NULL,
    horizon_steps BIGINT NOT NULL,
    policy_spec_json TEXT NOT NULL,
    view_snapshot_id TEXT NOT NULL,
    view_snapshot_sha256 TEXT NOT NULL,
    diagnostics_json TEXT
);

CREATE TABLE rebalance_moves (
    job_id TEXT NOT NULL REFERENCES jobs (job_id),
    move_rank BIGINT NOT NULL,
    from_station_key TEXT NOT NULL,
    to_station_key TEXT NOT NULL,
    bikes_moved BIGINT NOT NULL,
    dist_m DOUBLE PRECISION NOT NULL,
    budget_exhausted BIGINT NOT NULL,
    neighbor_exhausted BIGINT NOT NULL,
    reason_codes_json TEXT NOT NULL,
    PRIMARY KEY (job_id, move_rank)
);

INSERT INTO jobs (job_id, kind, contract, key_sha256, key_json, payload_json, policy_version, status, plugin_id,
    manifest_sha256, input_sha256, output_sha256, result_json, error_code, error_message, attempts, lease_owner,
    lease_expires_at_ms, created_at_ms, started_at_ms, finished_at_ms, plugin_us, submitted_by)
SELECT run_id, 'rebalance.decide', 'rebalance.v1', run_key_sha256, NULL, NULL, policy_version, status, plugin_id,
    manifest_sha256, input_sha256, output_sha256, output_json, error_code, error_message, attempts, lease_owner,
    lease_expires_at_ms, created_at_ms, started_at_ms, finished_at_ms, plugin_us, NULL
FROM policy_runs;

INSERT INTO rebalance_runs (job_id, system_id, sv, decision_bucket_ts, policy_spec_sha256, horizon_steps,
    policy_spec_json, view_snapshot_id, view_snapshot_sha256, diagnostics_json)
SELECT run_id, system_id, sv, decision_bucket_ts, policy_spec_sha256, horizon_steps, policy_spec_json,
    view_snapshot_id, view_snapshot_sha256, diagnostics_json
FROM policy_runs;

INSERT INTO rebalance_moves (job_id, move_rank, from_station_key, to_station_key, bikes_moved, dist_m,
    budget_exhausted, neighbor_exhausted, reason_codes_json)
SELECT run_id, move_rank, from_station_key, to_station_key, bikes_moved, dist_m, budget_exhausted,
    neighbor_exhausted, reason_codes_json
FROM policy_moves;

DROP TABLE policy_moves;
DROP TABLE policy_runs;
