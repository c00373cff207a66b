-- The funder network (合作机构): partners and their licences, documents, contacts and
-- status history; admission (准入) standards and checklists; limits, quota usage and
-- per-product pricing; routing runs and steps; funder callbacks; reminders; and the
-- per-loan funder exposure table that loans (issue #8) fill for performance reports.

CREATE TABLE partners (
    id {{ID}},
    code TEXT NOT NULL CONSTRAINT partners_code_key UNIQUE,
    kind TEXT NOT NULL CONSTRAINT partners_kind_check CHECK (kind IN ('funder', 'credit_enhancer', 'data_provider', 'collection_agency')),
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    uscc TEXT,
    status TEXT NOT NULL DEFAULT 'applying' CONSTRAINT partners_status_check CHECK (status IN ('applying', 'admitted', 'suspended', 'exited')),
    -- Business date of the last status change.
    status_since TEXT NOT NULL,
    status_reason TEXT,
    -- From when the partner's published partner list (名单制) includes us; NULL = it does not.
    listed_us_on TEXT,
    agreement_start_on TEXT,
    agreement_end_on TEXT,
    next_review_on TEXT,
    -- How routing reaches the funder: none, the built-in simulator, or HTTP.
    adapter TEXT NOT NULL DEFAULT 'none' CONSTRAINT partners_adapter_check CHECK (adapter IN ('none', 'simulated', 'http')),
    endpoint_url TEXT,
    -- HMAC-SHA256 key for requests and callbacks, encrypted by the vault.
    hmac_key_enc {{BLOB}},
    timeout_ms BIGINT NOT NULL DEFAULT 5000 CONSTRAINT partners_timeout_check CHECK (timeout_ms BETWEEN 10 AND 120000),
    sim_approval_bp BIGINT NOT NULL DEFAULT 7000 CONSTRAINT partners_sim_approval_check CHECK (sim_approval_bp BETWEEN 0 AND 10000),
    sim_latency_ms BIGINT NOT NULL DEFAULT 0 CONSTRAINT partners_sim_latency_check CHECK (sim_latency_ms BETWEEN 0 AND 120000),
    sim_seed BIGINT NOT NULL DEFAULT 1,
    priority BIGINT NOT NULL DEFAULT 100,
    -- Eligibility rule in the expression language; version bumps on every change.
    eligibility_rule TEXT NOT NULL DEFAULT 'true',
    rule_version BIGINT NOT NULL DEFAULT 1,
    notes TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX partners_kind_status_idx ON partners (kind, status);

CREATE TABLE partner_status_history (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_status_history_partner_fkey REFERENCES partners (id),
    from_status TEXT,
    to_status TEXT NOT NULL,
    on_date TEXT NOT NULL,
    reason TEXT,
    actor TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX partner_status_history_partner_idx ON partner_status_history (partner_id, id);

CREATE TABLE partner_licences (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_licences_partner_fkey REFERENCES partners (id),
    licence_type TEXT NOT NULL,
    number TEXT NOT NULL,
    issuer TEXT NOT NULL,
    valid_until TEXT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT partner_licences_number_key UNIQUE (partner_id, licence_type, number)
);

-- Document metadata; the file itself lives in document storage (customer issue).
CREATE TABLE partner_documents (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_documents_partner_fkey REFERENCES partners (id),
    reference TEXT NOT NULL,
    description TEXT NOT NULL,
    sha256 TEXT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT partner_documents_reference_key UNIQUE (partner_id, reference)
);

CREATE TABLE partner_contacts (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_contacts_partner_fkey REFERENCES partners (id),
    name TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    email TEXT,
    -- Mobile, encrypted by the vault (bound to this row's `row_key`).
    phone_enc {{BLOB}},
    row_key TEXT NOT NULL CONSTRAINT partner_contacts_row_key_key UNIQUE,
    created_at_ms BIGINT NOT NULL
);

-- The configurable admission checklist. `kinds` is a comma list; empty = every kind.
CREATE TABLE admission_standards (
    id {{ID}},
    code TEXT NOT NULL CONSTRAINT admission_standards_code_key UNIQUE,
    title_zh TEXT NOT NULL,
    title_en TEXT NOT NULL,
    kinds TEXT NOT NULL DEFAULT '',
    required BIGINT NOT NULL DEFAULT 1 CONSTRAINT admission_standards_required_check CHECK (required IN (0, 1)),
    position BIGINT NOT NULL DEFAULT 0,
    active BIGINT NOT NULL DEFAULT 1 CONSTRAINT admission_standards_active_check CHECK (active IN (0, 1))
);
INSERT INTO admission_standards (code, title_zh, title_en, kinds, required, position) VALUES
 ('licence_valid', '持有有效金融牌照，经营范围覆盖合作业务', 'Holds a valid financial licence covering the business', '', 1, 10),
 ('no_major_penalty', '近三年无重大违法违规及监管处罚', 'No major violations or regulatory penalties in three years', '', 1, 20),
 ('capital_adequacy', '资本充足率、不良率等监管指标达标', 'Capital adequacy, NPL and other regulatory ratios met', 'funder,credit_enhancer', 1, 30),
 ('partner_list', '已将我司纳入其公布的合作机构名单', 'Lists us on its published partner list', 'funder,credit_enhancer', 1, 40),
 ('pricing_cap', '合作产品综合融资成本不超过 24%', 'All-in cost of joint products within 24 %', 'funder', 1, 50),
 ('data_security', '数据安全与个人信息保护能力达标（等保三级）', 'Data security and personal-information protection (MLPS level 3)', '', 1, 60),
 ('consumer_protection', '消费者权益保护与投诉处理机制健全', 'Consumer protection and complaint handling in place', '', 1, 70),
 ('aml_controls', '反洗钱内控制度健全', 'Anti-money-laundering controls in place', 'funder,credit_enhancer', 1, 80),
 ('collection_conduct', '催收行为规范，无暴力或骚扰催收记录', 'Lawful collection conduct, no record of abusive collection', 'collection_agency', 1, 90),
 ('data_source_legal', '数据来源合法并取得用户授权', 'Data sources lawful with user consent', 'data_provider', 1, 100);

-- One admission checklist per submission. `open_flag` is 1 while submitted and NULL once
-- decided, so a partner has at most one open submission.
CREATE TABLE partner_admissions (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_admissions_partner_fkey REFERENCES partners (id),
    state TEXT NOT NULL CONSTRAINT partner_admissions_state_check CHECK (state IN ('submitted', 'approved', 'rejected')),
    open_flag BIGINT CONSTRAINT partner_admissions_open_check CHECK (open_flag = 1),
    items TEXT NOT NULL,
    submitted_by BIGINT NOT NULL,
    submitted_by_name TEXT NOT NULL,
    submitted_at_ms BIGINT NOT NULL,
    decided_by BIGINT,
    decided_by_name TEXT,
    decided_at_ms BIGINT,
    decision_note TEXT,
    CONSTRAINT partner_admissions_open_key UNIQUE (partner_id, open_flag),
    CONSTRAINT partner_admissions_four_eyes_check CHECK (decided_by IS NULL OR decided_by <> submitted_by)
);

-- Quotas in fen. `total_used_fen` counts reserved and consumed amounts.
CREATE TABLE partner_limits (
    partner_id BIGINT NOT NULL CONSTRAINT partner_limits_pkey PRIMARY KEY CONSTRAINT partner_limits_partner_fkey REFERENCES partners (id),
    daily_quota_fen BIGINT NOT NULL CONSTRAINT partner_limits_daily_check CHECK (daily_quota_fen >= 0),
    total_quota_fen BIGINT NOT NULL CONSTRAINT partner_limits_total_check CHECK (total_quota_fen >= 0),
    per_customer_max_fen BIGINT CONSTRAINT partner_limits_customer_check CHECK (per_customer_max_fen IS NULL OR per_customer_max_fen >= 0),
    total_used_fen BIGINT NOT NULL DEFAULT 0 CONSTRAINT partner_limits_used_check CHECK (total_used_fen >= 0),
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE partner_daily_usage (
    partner_id BIGINT NOT NULL CONSTRAINT partner_daily_usage_partner_fkey REFERENCES partners (id),
    day TEXT NOT NULL,
    used_fen BIGINT NOT NULL DEFAULT 0 CONSTRAINT partner_daily_usage_used_check CHECK (used_fen >= 0),
    CONSTRAINT partner_daily_usage_pkey PRIMARY KEY (partner_id, day)
);

CREATE TABLE quota_reservations (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT quota_reservations_partner_fkey REFERENCES partners (id),
    run_id BIGINT,
    customer_ref TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CONSTRAINT quota_reservations_amount_check CHECK (amount_fen > 0),
    day TEXT NOT NULL,
    state TEXT NOT NULL CONSTRAINT quota_reservations_state_check CHECK (state IN ('reserved', 'consumed', 'released')),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX quota_reservations_customer_idx ON quota_reservations (partner_id, customer_ref, state);

-- The funder's annual rate (decimal text, e.g. 0.0850) for a product code.
CREATE TABLE partner_pricing (
    partner_id BIGINT NOT NULL CONSTRAINT partner_pricing_partner_fkey REFERENCES partners (id),
    product_code TEXT NOT NULL,
    annual_rate TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CONSTRAINT partner_pricing_pkey PRIMARY KEY (partner_id, product_code)
);

CREATE TABLE routing_runs (
    id {{ID}},
    application_ref TEXT NOT NULL,
    product_code TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    months BIGINT NOT NULL,
    customer_ref TEXT NOT NULL,
    request TEXT NOT NULL,
    -- JSON array of funder codes in waterfall order.
    plan TEXT NOT NULL,
    state TEXT NOT NULL CONSTRAINT routing_runs_state_check CHECK (state IN ('running', 'pending', 'retrying', 'routed', 'exhausted')),
    -- Index into `plan` of the funder being tried.
    next_index BIGINT NOT NULL DEFAULT 0,
    funder_code TEXT,
    started_by TEXT,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX routing_runs_application_idx ON routing_runs (application_ref);
CREATE INDEX routing_runs_started_idx ON routing_runs (started_at_ms);

CREATE TABLE routing_steps (
    id {{ID}},
    run_id BIGINT NOT NULL CONSTRAINT routing_steps_run_fkey REFERENCES routing_runs (id),
    seq BIGINT NOT NULL,
    partner_code TEXT NOT NULL,
    outcome TEXT NOT NULL CONSTRAINT routing_steps_outcome_check CHECK (outcome IN ('skipped', 'pending', 'approved', 'declined', 'timeout', 'error')),
    reason_code TEXT,
    reason TEXT,
    attempt BIGINT NOT NULL DEFAULT 1,
    reservation_id BIGINT,
    external_ref TEXT,
    started_at_ms BIGINT NOT NULL,
    -- Time the funder took to decide (also set when a callback decides a pending step).
    duration_ms BIGINT,
    decided_at_ms BIGINT,
    CONSTRAINT routing_steps_seq_key UNIQUE (run_id, seq)
);
CREATE INDEX routing_steps_partner_idx ON routing_steps (partner_code, outcome);

-- Inbound callbacks, kept so the same callback id is processed once.
CREATE TABLE funder_callbacks (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT funder_callbacks_partner_fkey REFERENCES partners (id),
    callback_id TEXT NOT NULL,
    step_id BIGINT,
    received_at_ms BIGINT NOT NULL,
    result TEXT NOT NULL,
    CONSTRAINT funder_callbacks_callback_key UNIQUE (partner_id, callback_id)
);

CREATE TABLE partner_reminders (
    id {{ID}},
    partner_id BIGINT NOT NULL CONSTRAINT partner_reminders_partner_fkey REFERENCES partners (id),
    kind TEXT NOT NULL CONSTRAINT partner_reminders_kind_check CHECK (kind IN ('annual_review', 'agreement_expiry')),
    due_on TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT partner_reminders_key UNIQUE (partner_id, kind, due_on)
);

-- One row per loan funded by a partner, kept current by the loan ledger (issue #8):
-- outstanding principal and overdue amount in fen, days past due. Funder performance
-- reads disbursed balance and overdue rate from here; until #8 writes rows they show "—".
CREATE TABLE funder_exposures (
    id {{ID}},
    partner_code TEXT NOT NULL,
    loan_ref TEXT NOT NULL CONSTRAINT funder_exposures_loan_key UNIQUE,
    outstanding_fen BIGINT NOT NULL CONSTRAINT funder_exposures_outstanding_check CHECK (outstanding_fen >= 0),
    overdue_fen BIGINT NOT NULL DEFAULT 0 CONSTRAINT funder_exposures_overdue_check CHECK (overdue_fen >= 0),
    days_past_due BIGINT NOT NULL DEFAULT 0,
    as_of TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX funder_exposures_partner_idx ON funder_exposures (partner_code);
