-- NPC behaviour (seed 003): worlds and sessions as JSON documents, and
-- each session's activity timeline. Everything plugins configure lives in
-- the documents themselves (`meta.behavior.enabledPlugins`, session flags
-- under `plugin:<id>:`), as the seed asks: no table holds plugin
-- configuration.
--
-- A world is stored once under its id; posting other content under the same
-- id is refused, so a session always plays the world it was created on.
CREATE TABLE behavior_worlds (
    world_id TEXT PRIMARY KEY,
    world_json TEXT NOT NULL,
    world_sha256 TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- A session's `version` counts the advances applied to it: an advance
-- writes only if the version is still the one it read, so two advances of
-- one session never interleave.
CREATE TABLE behavior_sessions (
    session_id TEXT PRIMARY KEY,
    world_id TEXT NOT NULL REFERENCES behavior_worlds (world_id),
    session_json TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE INDEX behavior_sessions_by_world ON behavior_sessions (world_id, session_id);

-- The timeline entries of every advance, numbered from 0 in the order the
-- engine wrote them; `version` is the session version the advance produced.
CREATE TABLE behavior_timeline (
    session_id TEXT NOT NULL REFERENCES behavior_sessions (session_id),
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    entry_json TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
