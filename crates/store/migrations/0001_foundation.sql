-- Foundation: instance metadata, the job queue, the organisation tree.

CREATE TABLE system_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Database-backed job queue. A worker claims a job by moving it from 'pending' to
-- 'running' with a lease; a job whose lease ran out (its worker died) is claimable again.
CREATE TABLE jobs (
    id {{ID}},
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CONSTRAINT jobs_state_check CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    locked_by TEXT,
    lease_until_ms BIGINT,
    last_error TEXT,
    dedupe_key TEXT CONSTRAINT jobs_dedupe_key_key UNIQUE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX jobs_claim_idx ON jobs (queue, state, run_at_ms);

-- Company → branch → team. Users (a later migration) belong to one unit; data scopes
-- (own / team / branch / all) are computed over this tree.
CREATE TABLE org_units (
    id {{ID}},
    parent_id BIGINT REFERENCES org_units (id),
    kind TEXT NOT NULL CONSTRAINT org_units_kind_check CHECK (kind IN ('company', 'branch', 'team')),
    code TEXT NOT NULL CONSTRAINT org_units_code_key UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX org_units_parent_idx ON org_units (parent_id);
