-- Worklists, exception alerts, notifications and process analytics (issue #6 items 3–4).

-- The head of an org unit: exception alerts about work owned in the unit go to the
-- nearest manager up the tree (team → branch → company).
ALTER TABLE org_units ADD COLUMN manager_user_id BIGINT REFERENCES users (id);

-- The approval level (1-based) and its role when a step is an approver's decision at an
-- approval node, so analytics can give approval rates per level.
ALTER TABLE workflow_steps ADD COLUMN approval_level BIGINT;
ALTER TABLE workflow_steps ADD COLUMN approval_role TEXT;
CREATE INDEX workflow_steps_at_idx ON workflow_steps (at_ms);
CREATE INDEX workflow_instances_updated_idx ON workflow_instances (status, updated_at_ms);

-- A user's watch list (关注): instances whose changes they follow. `seen_at_ms` is when
-- they last looked, so the list can say what changed since.
CREATE TABLE workflow_watches (
    user_id BIGINT NOT NULL REFERENCES users (id),
    instance_id BIGINT NOT NULL REFERENCES workflow_instances (id),
    created_at_ms BIGINT NOT NULL,
    seen_at_ms BIGINT NOT NULL,
    CONSTRAINT workflow_watches_pkey PRIMARY KEY (user_id, instance_id)
);
CREATE INDEX workflow_watches_instance_idx ON workflow_watches (instance_id);

-- One exception (or test message), raised once per `dedupe_key` however many scans see it.
CREATE TABLE notification_events (
    id {{ID}},
    kind TEXT NOT NULL CONSTRAINT notification_events_kind_check
        CHECK (kind IN ('stuck', 'sla_breach', 'funder_timeout', 'override', 'test')),
    severity TEXT NOT NULL CONSTRAINT notification_events_severity_check
        CHECK (severity IN ('info', 'warning', 'critical')),
    subject_type TEXT,
    subject_id BIGINT,
    subject_ref TEXT,
    instance_id BIGINT REFERENCES workflow_instances (id),
    node TEXT,
    -- The node's owner: a person, or the org unit the work belongs to.
    owner_user_id BIGINT REFERENCES users (id),
    org_unit_id BIGINT REFERENCES org_units (id),
    -- How long it waited and the limit it passed (ms), when a time is the reason.
    waited_ms BIGINT,
    limit_ms BIGINT,
    detail TEXT,
    raised_by TEXT NOT NULL,
    dedupe_key TEXT NOT NULL CONSTRAINT notification_events_dedupe_key UNIQUE,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX notification_events_instance_idx ON notification_events (instance_id);

-- In-app notifications: one row per recipient of an event.
CREATE TABLE notifications (
    id {{ID}},
    event_id BIGINT NOT NULL REFERENCES notification_events (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    -- Why this person got it: the owner's manager, a watcher, or the fallback (nobody
    -- manages the unit: the holders of workflow.manage).
    reason TEXT NOT NULL CONSTRAINT notifications_reason_check
        CHECK (reason IN ('manager', 'watcher', 'fallback')),
    read_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT notifications_once UNIQUE (event_id, user_id)
);
CREATE INDEX notifications_inbox_idx ON notifications (user_id, read_at_ms, id);

-- Group-bot webhooks (WeCom, DingTalk, Feishu/Lark). The URL (which carries the bot's
-- key) and the signing secret are encrypted with the vault; `url_hint` is the masked URL.
CREATE TABLE webhook_targets (
    id {{ID}},
    name TEXT NOT NULL CONSTRAINT webhook_targets_name_key UNIQUE,
    format TEXT NOT NULL CONSTRAINT webhook_targets_format_check
        CHECK (format IN ('wecom', 'dingtalk', 'feishu')),
    msg_type TEXT NOT NULL CONSTRAINT webhook_targets_msg_type_check
        CHECK (msg_type IN ('markdown', 'text', 'post', 'interactive')),
    url_enc {{BLOB}} NOT NULL,
    url_hint TEXT NOT NULL,
    secret_enc {{BLOB}},
    -- Comma-separated event kinds it receives; empty: every kind.
    kinds TEXT NOT NULL DEFAULT '',
    -- Only events of this unit and the units below it; NULL: every unit.
    org_unit_id BIGINT REFERENCES org_units (id),
    active BIGINT NOT NULL DEFAULT 1 CONSTRAINT webhook_targets_active_check CHECK (active IN (0, 1)),
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- One delivery of an event to a target (sent by the `notify.webhook` job, retried with
-- the queue's backoff), and the log of every attempt.
CREATE TABLE webhook_deliveries (
    id {{ID}},
    event_id BIGINT NOT NULL REFERENCES notification_events (id),
    target_id BIGINT NOT NULL REFERENCES webhook_targets (id),
    state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT webhook_deliveries_state_check
        CHECK (state IN ('pending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_status BIGINT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT,
    CONSTRAINT webhook_deliveries_once UNIQUE (event_id, target_id)
);
CREATE INDEX webhook_deliveries_target_idx ON webhook_deliveries (target_id, id);

CREATE TABLE webhook_attempts (
    id {{ID}},
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    attempt BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    http_status BIGINT,
    ok BIGINT NOT NULL CONSTRAINT webhook_attempts_ok_check CHECK (ok IN (0, 1)),
    -- The bot's answer (shortened) or the error.
    detail TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- Installations made before this version: the system administrator's role gets the new
-- permission, as a new installation's seed role has it.
INSERT INTO role_permissions (role_id, permission)
SELECT id, 'notification.manage' FROM roles WHERE code = 'sysadmin';
