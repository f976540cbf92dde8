-- Policy packs (seed 002): published pack versions, projects and their
-- policy selection, answers, waivers, the protocol runs and steps found in
-- a project's repository, and the events (findings, gates, audit) recorded
-- with the effective hash they were made under. Every change is numbered by
-- a per-scope counter (`pack_sequences`), so records order without a clock.

CREATE TABLE pack_versions (
    pack_key TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    body_json TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    builtin BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (pack_key, version)
);

CREATE TABLE projects (
    project_id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    repo_path TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- A project's selection: pack key, pinned version (NULL: latest active),
-- overrides (an RFC 7396 merge patch), RFC 6902 operations, whether the
-- repository's own file is read, and the enforcement mode (NULL: the
-- policy's). One row per project; absent means the default pack.
CREATE TABLE project_policies (
    project_id TEXT NOT NULL PRIMARY KEY REFERENCES projects (project_id),
    pack_key TEXT NOT NULL,
    pack_version TEXT,
    overrides_json TEXT,
    ops_json TEXT NOT NULL,
    repo_local BIGINT NOT NULL,
    enforcement_mode TEXT,
    updated_by TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Protocol runs (`.protocols/<name>/`) and their steps, given stable ids
-- the first time a scan sees them.
CREATE TABLE pack_protocols (
    protocol_id TEXT NOT NULL PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    run_name TEXT NOT NULL,
    UNIQUE (project_id, run_name)
);

CREATE TABLE pack_steps (
    step_id TEXT NOT NULL PRIMARY KEY,
    protocol_id TEXT NOT NULL REFERENCES pack_protocols (protocol_id),
    step_name TEXT NOT NULL,
    UNIQUE (protocol_id, step_name)
);

-- An answer is scoped to the project (`scope` = 'project') or to one
-- protocol run or step (`scope` = its id).
CREATE TABLE pack_answers (
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    scope TEXT NOT NULL,
    clarification_key TEXT NOT NULL,
    value_json TEXT NOT NULL,
    answered_by TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    answered_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, scope, clarification_key)
);

CREATE TABLE pack_waivers (
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    waiver_seq BIGINT NOT NULL,
    waiver_json TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project_id, waiver_seq)
);

-- Per-scope counters: `project:<id>` numbers a project's events and
-- waivers, `packs` numbers the catalog's audit records.
CREATE TABLE pack_sequences (
    scope TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Findings evaluated, gate decisions and audit records. `subject` is the
-- project, protocol or step id the event is about; `scope` is the counter
-- that numbered it; `kind` is findings, gate or audit.
CREATE TABLE pack_events (
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    project_id TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    hash_before TEXT,
    hash_after TEXT,
    body_json TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, seq)
);

CREATE INDEX pack_events_project ON pack_events (project_id, kind, seq);
