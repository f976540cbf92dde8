-- Payment policies stored per agent (seed 004's `agent_policies`): the
-- policy JSON exactly as given (validated as DSL before it was stored), its
-- SHA-256, and who stored it when. One row per agent: a put replaces it,
-- and a simulation records the digest it ran, so a replaced policy never
-- rewrites what an earlier run used.
CREATE TABLE agent_policies (
    agent_id TEXT PRIMARY KEY,
    policy_json TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
