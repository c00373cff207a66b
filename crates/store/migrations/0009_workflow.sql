-- Workflow definitions (versioned; a running instance stays on the version it started
-- with), instances with their engine state and an optimistic version (two people acting
-- at the same instant on the same step: one wins, the other is told to reload), and the
-- full step history of every instance.
CREATE TABLE workflow_definitions (
    id {{ID}},
    code TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    -- The definition as loaded (TOML), and its SHA-256.
    source TEXT NOT NULL,
    digest TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT workflow_definitions_code_version_key UNIQUE (code, version)
);

CREATE TABLE workflow_instances (
    id {{ID}},
    definition_code TEXT NOT NULL,
    definition_version BIGINT NOT NULL,
    -- What the instance is about, e.g. ('application', 42).
    subject_type TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    node TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT workflow_instances_status_check CHECK (status IN ('running', 'finished')),
    outcome TEXT,
    -- Engine state (JSON).
    state TEXT NOT NULL,
    -- Who may act now: a role code or a user id (worklists).
    assignee_role TEXT,
    assignee_user BIGINT,
    submitter BIGINT,
    node_entered_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT workflow_instances_subject_key UNIQUE (subject_type, subject_id, definition_code)
);
CREATE INDEX workflow_instances_role_idx ON workflow_instances (status, assignee_role);
CREATE INDEX workflow_instances_user_idx ON workflow_instances (status, assignee_user);

CREATE TABLE workflow_steps (
    id {{ID}},
    instance_id BIGINT NOT NULL REFERENCES workflow_instances (id),
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor BIGINT,
    action TEXT NOT NULL,
    from_node TEXT NOT NULL,
    to_node TEXT NOT NULL,
    detail TEXT,
    CONSTRAINT workflow_steps_seq_key UNIQUE (instance_id, seq)
);
CREATE INDEX workflow_steps_actor_idx ON workflow_steps (actor, at_ms);

-- Exceptions raised by time limits and stuck instances: one row per (instance, node
-- entry, kind), so the scan that raises them can run any number of times.
CREATE TABLE workflow_alerts (
    id {{ID}},
    instance_id BIGINT NOT NULL REFERENCES workflow_instances (id),
    node TEXT NOT NULL,
    node_entered_at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL CONSTRAINT workflow_alerts_kind_check
        CHECK (kind IN ('remind', 'sla_breach', 'auto_return', 'stuck')),
    assignee_role TEXT,
    assignee_user BIGINT,
    detail TEXT,
    created_at_ms BIGINT NOT NULL,
    acknowledged_by BIGINT REFERENCES users (id),
    acknowledged_at_ms BIGINT,
    CONSTRAINT workflow_alerts_once UNIQUE (instance_id, node_entered_at_ms, kind)
);
CREATE INDEX workflow_alerts_open_idx ON workflow_alerts (acknowledged_at_ms, assignee_role);
