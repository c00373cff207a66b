-- Risk warnings and credit limits (issue #7 items 3 and 4).
--
-- Warning rules (expressions of zhudai-expr, compiled by the server) with their version
-- history; an emergency playbook per severity; the events rules react to (kept for the
-- windowed aggregates); warnings with their tasks; population stability (PSI) baselines,
-- the score observations fed by credit decisions, and the PSI runs; credit lines per
-- customer and per enterprise group with reservations, maker-checker adjustments and a
-- history.

CREATE TABLE risk_rules (
    id {{ID}},
    code TEXT NOT NULL CONSTRAINT risk_rules_code_key UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL CONSTRAINT risk_rules_category_check
        CHECK (category IN ('repayment', 'fraud', 'credit', 'behaviour', 'legal', 'partner', 'model_drift', 'other')),
    stage TEXT NOT NULL CONSTRAINT risk_rules_stage_check CHECK (stage IN ('pre_loan', 'in_loan', 'post_loan')),
    severity TEXT NOT NULL CONSTRAINT risk_rules_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- Event types the rule reacts to, comma-separated; empty = every event.
    on_events TEXT NOT NULL DEFAULT '',
    condition TEXT NOT NULL,
    -- JSON list of actions (assign_task, freeze_line, cut_line, suspend_partner).
    actions TEXT NOT NULL DEFAULT '[]',
    enabled BIGINT NOT NULL DEFAULT 0 CONSTRAINT risk_rules_enabled_check CHECK (enabled IN (0, 1)),
    -- The compile error of the current condition (NULL when it compiles); an invalid
    -- rule cannot be enabled.
    compile_error TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    updated_by BIGINT REFERENCES users (id),
    updated_at_ms BIGINT NOT NULL
);

-- Every saved version of a rule, so a warning can be traced to the text that raised it.
CREATE TABLE risk_rule_versions (
    id {{ID}},
    rule_id BIGINT NOT NULL CONSTRAINT risk_rule_versions_rule_fkey REFERENCES risk_rules (id),
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    severity TEXT NOT NULL,
    on_events TEXT NOT NULL,
    condition TEXT NOT NULL,
    actions TEXT NOT NULL,
    changed_by BIGINT REFERENCES users (id),
    changed_at_ms BIGINT NOT NULL,
    CONSTRAINT risk_rule_versions_key UNIQUE (rule_id, version)
);

-- The emergency playbook of each severity: who is told, what must be done, by when.
CREATE TABLE risk_playbooks (
    severity TEXT NOT NULL CONSTRAINT risk_playbooks_pkey PRIMARY KEY
        CONSTRAINT risk_playbooks_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    respond_within_hours BIGINT NOT NULL CONSTRAINT risk_playbooks_hours_check CHECK (respond_within_hours > 0),
    -- Role codes, comma-separated.
    notify_roles TEXT NOT NULL,
    steps TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    updated_by BIGINT REFERENCES users (id),
    updated_at_ms BIGINT NOT NULL
);
INSERT INTO risk_playbooks (severity, respond_within_hours, notify_roles, steps, updated_at_ms) VALUES
    ('low', 168, 'risk_reviewer', '1. 一周内复核客户情况并记录结论。', 0),
    ('medium', 72, 'risk_reviewer,post_loan', '1. 三日内联系客户核实情况；2. 评估是否调整额度；3. 记录处置结论。', 0),
    ('high', 24, 'risk_manager,risk_reviewer,post_loan', '1. 24小时内联系客户及担保人；2. 冻结或压降额度；3. 通知资金方；4. 制定回收方案。', 0),
    ('critical', 4, 'risk_manager,executive,compliance', '1. 4小时内启动应急预案，上报管理层；2. 立即冻结相关额度、暂停相关合作机构；3. 评估是否报告监管；4. 每日跟进至风险解除。', 0);

-- Risk events: what rules react to, kept for the windowed aggregates (count/sum over the
-- last N days per customer).
CREATE TABLE risk_events (
    id {{ID}},
    event_type TEXT NOT NULL,
    customer_id BIGINT CONSTRAINT risk_events_customer_fkey REFERENCES customers (id),
    loan_ref TEXT,
    partner_code TEXT,
    occurred_at_ms BIGINT NOT NULL,
    amount_fen BIGINT,
    days BIGINT,
    count_value BIGINT,
    -- Decimal text (e.g. 0.125).
    rate TEXT,
    code TEXT,
    -- The event as submitted (JSON), including the loan facts it carried.
    payload TEXT NOT NULL,
    -- Who reported it: `api:<username>`, `cob`, …
    source TEXT NOT NULL,
    -- A caller-chosen key: the same event reported twice is stored once.
    dedupe_key TEXT CONSTRAINT risk_events_dedupe_key UNIQUE,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX risk_events_customer_idx ON risk_events (customer_id, occurred_at_ms);
CREATE INDEX risk_events_received_idx ON risk_events (received_at_ms);

CREATE TABLE risk_warnings (
    id {{ID}},
    -- NULL for warnings not raised by a rule (population stability).
    rule_id BIGINT CONSTRAINT risk_warnings_rule_fkey REFERENCES risk_rules (id),
    rule_code TEXT NOT NULL,
    rule_version BIGINT NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    severity TEXT NOT NULL CONSTRAINT risk_warnings_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- What it is about: ('customer', id), ('partner', code), ('model', name:version).
    subject_type TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    customer_id BIGINT CONSTRAINT risk_warnings_customer_fkey REFERENCES customers (id),
    -- The event that opened it (NULL for PSI).
    event_id BIGINT CONSTRAINT risk_warnings_event_fkey REFERENCES risk_events (id),
    title TEXT NOT NULL,
    -- JSON: the facts the rule saw when it fired.
    facts TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT risk_warnings_status_check CHECK (status IN ('open', 'acknowledged', 'closed')),
    -- Repeat hits while open are counted on the warning, not opened again.
    hits BIGINT NOT NULL DEFAULT 1,
    last_hit_at_ms BIGINT NOT NULL,
    opened_at_ms BIGINT NOT NULL,
    due_at_ms BIGINT NOT NULL,
    -- The playbook as it was when the warning opened.
    notify_roles TEXT NOT NULL,
    playbook_steps TEXT NOT NULL,
    -- JSON list of what the actions did.
    actions_taken TEXT NOT NULL DEFAULT '[]',
    acknowledged_by BIGINT REFERENCES users (id),
    acknowledged_at_ms BIGINT,
    acknowledge_note TEXT,
    closed_by BIGINT REFERENCES users (id),
    closed_at_ms BIGINT,
    close_note TEXT,
    -- `<rule_code>|<subject_type>:<subject_ref>` while not closed, NULL once closed: at
    -- most one open warning per rule and subject.
    open_key TEXT CONSTRAINT risk_warnings_open_key UNIQUE
);
CREATE INDEX risk_warnings_status_idx ON risk_warnings (status, due_at_ms);
CREATE INDEX risk_warnings_opened_idx ON risk_warnings (opened_at_ms);
CREATE INDEX risk_warnings_customer_idx ON risk_warnings (customer_id);

CREATE TABLE risk_tasks (
    id {{ID}},
    warning_id BIGINT NOT NULL CONSTRAINT risk_tasks_warning_fkey REFERENCES risk_warnings (id),
    role TEXT NOT NULL,
    title TEXT NOT NULL,
    due_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL CONSTRAINT risk_tasks_status_check CHECK (status IN ('open', 'done')),
    done_by BIGINT REFERENCES users (id),
    done_at_ms BIGINT,
    note TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX risk_tasks_role_idx ON risk_tasks (status, role);
CREATE INDEX risk_tasks_warning_idx ON risk_tasks (warning_id);

-- Population stability. A baseline is a scorecard model (JSON, with its development
-- sample) under monitoring; observations are scored applications (model, score, the
-- feature values), fed by the credit decision engine; each run stores PSI per feature.
CREATE TABLE psi_baselines (
    id {{ID}},
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_json TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1 CONSTRAINT psi_baselines_active_check CHECK (active IN (0, 1)),
    registered_by TEXT NOT NULL,
    registered_at_ms BIGINT NOT NULL,
    CONSTRAINT psi_baselines_model_key UNIQUE (model_name, model_version)
);

CREATE TABLE score_observations (
    id {{ID}},
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    -- What was scored, e.g. `application:42`.
    subject TEXT,
    observed_at_ms BIGINT NOT NULL,
    score BIGINT NOT NULL,
    -- JSON object: feature name → value (number, text or null).
    features TEXT NOT NULL
);
CREATE INDEX score_observations_model_idx ON score_observations (model_name, model_version, observed_at_ms);

CREATE TABLE psi_runs (
    id {{ID}},
    baseline_id BIGINT NOT NULL CONSTRAINT psi_runs_baseline_fkey REFERENCES psi_baselines (id),
    -- Business date of the run (one run per baseline and day).
    run_on TEXT NOT NULL,
    window_from_ms BIGINT NOT NULL,
    window_to_ms BIGINT NOT NULL,
    rows_observed BIGINT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    alert BIGINT NOT NULL CONSTRAINT psi_runs_alert_check CHECK (alert IN (0, 1)),
    warning_id BIGINT CONSTRAINT psi_runs_warning_fkey REFERENCES risk_warnings (id),
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT psi_runs_day_key UNIQUE (baseline_id, run_on)
);

CREATE TABLE psi_results (
    id {{ID}},
    run_id BIGINT NOT NULL CONSTRAINT psi_results_run_fkey REFERENCES psi_runs (id),
    -- `score` or a feature name.
    name TEXT NOT NULL,
    psi DOUBLE PRECISION NOT NULL,
    alert BIGINT NOT NULL CONSTRAINT psi_results_alert_check CHECK (alert IN (0, 1)),
    -- JSON: {"bins": [...], "expected": [...], "actual": [...]}.
    bins TEXT NOT NULL,
    CONSTRAINT psi_results_name_key UNIQUE (run_id, name)
);

-- Credit lines.
CREATE TABLE credit_limits (
    id {{ID}},
    scope TEXT NOT NULL CONSTRAINT credit_limits_scope_check CHECK (scope IN ('customer', 'group')),
    -- The customer, or for a group line the enterprise at its head.
    customer_id BIGINT NOT NULL CONSTRAINT credit_limits_customer_fkey REFERENCES customers (id),
    amount_fen BIGINT NOT NULL CONSTRAINT credit_limits_amount_check CHECK (amount_fen >= 0),
    -- Reserved by draws (customer lines; a group's use is the sum of its members').
    used_fen BIGINT NOT NULL DEFAULT 0 CONSTRAINT credit_limits_used_check CHECK (used_fen >= 0),
    status TEXT NOT NULL CONSTRAINT credit_limits_status_check CHECK (status IN ('active', 'frozen', 'expired', 'closed')),
    valid_until TEXT NOT NULL,
    frozen_reason TEXT,
    -- `<scope>:<customer_id>` unless closed: one current line per customer and scope.
    current_key TEXT CONSTRAINT credit_limits_current_key UNIQUE,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX credit_limits_status_idx ON credit_limits (status, valid_until);

CREATE TABLE credit_limit_reservations (
    id {{ID}},
    limit_id BIGINT NOT NULL CONSTRAINT credit_limit_reservations_limit_fkey REFERENCES credit_limits (id),
    -- The caller's reference (a contract or loan number): reserving twice is idempotent.
    reference TEXT NOT NULL CONSTRAINT credit_limit_reservations_reference_key UNIQUE,
    amount_fen BIGINT NOT NULL CONSTRAINT credit_limit_reservations_amount_check CHECK (amount_fen > 0),
    released_fen BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL CONSTRAINT credit_limit_reservations_status_check CHECK (status IN ('reserved', 'released')),
    actor TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE credit_limit_adjustments (
    id {{ID}},
    -- NULL when the request creates a line.
    limit_id BIGINT CONSTRAINT credit_limit_adjustments_limit_fkey REFERENCES credit_limits (id),
    scope TEXT NOT NULL,
    customer_id BIGINT NOT NULL CONSTRAINT credit_limit_adjustments_customer_fkey REFERENCES customers (id),
    -- `set` (new line, amount or end date) or `unfreeze`.
    kind TEXT NOT NULL CONSTRAINT credit_limit_adjustments_kind_check CHECK (kind IN ('set', 'unfreeze')),
    new_amount_fen BIGINT,
    new_valid_until TEXT,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT credit_limit_adjustments_status_check CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    requested_at_ms BIGINT NOT NULL,
    decided_by BIGINT REFERENCES users (id),
    decided_at_ms BIGINT,
    decision_note TEXT,
    -- `<scope>:<customer_id>` while pending: one pending change per line.
    pending_key TEXT CONSTRAINT credit_limit_adjustments_pending_key UNIQUE
);
CREATE INDEX credit_limit_adjustments_status_idx ON credit_limit_adjustments (status, id);

CREATE TABLE credit_limit_history (
    id {{ID}},
    limit_id BIGINT NOT NULL CONSTRAINT credit_limit_history_limit_fkey REFERENCES credit_limits (id),
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_amount_fen BIGINT,
    to_amount_fen BIGINT,
    from_status TEXT,
    to_status TEXT,
    note TEXT
);
CREATE INDEX credit_limit_history_limit_idx ON credit_limit_history (limit_id, id);
