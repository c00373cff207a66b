-- Credit decisions (issue #7): scorecard models (versioned, champion/challenger/retired),
-- rule sets (versioned, one enabled), every decision with what it was made from, challenger
-- scores beside it, overrides under the two-person rule, and the blacklist the policy
-- rules read.

CREATE TABLE risk_models (
    id {{ID}},
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT risk_models_status_check
        CHECK (status IN ('champion', 'challenger', 'retired')),
    -- 1 on the champion, NULL otherwise: at most one champion.
    champion BIGINT CONSTRAINT risk_models_champion_key UNIQUE,
    -- The scorecard JSON (zhudai-scorecard format 1) and its input mapping (JSON list).
    spec TEXT NOT NULL,
    inputs TEXT NOT NULL,
    -- SHA-256 of spec and inputs.
    digest TEXT NOT NULL,
    note TEXT,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    promoted_by BIGINT REFERENCES users (id),
    promoted_at_ms BIGINT,
    CONSTRAINT risk_models_name_version_key UNIQUE (name, version),
    CONSTRAINT risk_models_champion_check CHECK (champion = 1 AND status = 'champion' OR champion IS NULL AND status <> 'champion')
);

CREATE TABLE risk_rule_sets (
    id {{ID}},
    version BIGINT NOT NULL CONSTRAINT risk_rule_sets_version_key UNIQUE,
    name TEXT NOT NULL,
    -- The TOML source as saved (it compiled when saved) and its SHA-256.
    source TEXT NOT NULL,
    digest TEXT NOT NULL,
    -- 1 on the enabled version, NULL otherwise.
    active BIGINT CONSTRAINT risk_rule_sets_active_key UNIQUE,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    enabled_by BIGINT REFERENCES users (id),
    enabled_at_ms BIGINT,
    CONSTRAINT risk_rule_sets_active_check CHECK (active = 1)
);

CREATE TABLE risk_decisions (
    id {{ID}},
    -- The application decided, or NULL for a raw applicant sent to the API.
    application_id BIGINT REFERENCES applications (id),
    -- `application:<id>` or the caller's reference for a raw applicant.
    subject TEXT NOT NULL,
    model_id BIGINT NOT NULL REFERENCES risk_models (id),
    rule_set_id BIGINT NOT NULL REFERENCES risk_rule_sets (id),
    -- The applicant facts (canonical JSON) and their SHA-256.
    input TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    score BIGINT NOT NULL,
    -- Shortest round-trip text of the probability of bad (exact on replay).
    probability TEXT NOT NULL,
    outcome TEXT NOT NULL CONSTRAINT risk_decisions_outcome_check
        CHECK (outcome IN ('approve', 'refer', 'reject')),
    grade TEXT NOT NULL,
    limit_fen BIGINT NOT NULL,
    price_band TEXT NOT NULL,
    -- JSON lists: reason codes (zh/en) and the codes of the rules that fired.
    reasons TEXT NOT NULL,
    rules_fired TEXT NOT NULL,
    -- The outcome in force: the engine's, or an approved override's.
    final_outcome TEXT NOT NULL CONSTRAINT risk_decisions_final_outcome_check
        CHECK (final_outcome IN ('approve', 'refer', 'reject')),
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX risk_decisions_application_idx ON risk_decisions (application_id, id);
CREATE INDEX risk_decisions_created_idx ON risk_decisions (created_at_ms, id);

-- Challenger models scored on the same input; they decide nothing.
CREATE TABLE risk_challenger_scores (
    decision_id BIGINT NOT NULL REFERENCES risk_decisions (id),
    model_id BIGINT NOT NULL REFERENCES risk_models (id),
    score BIGINT NOT NULL,
    probability TEXT NOT NULL,
    outcome TEXT NOT NULL,
    grade TEXT NOT NULL,
    CONSTRAINT risk_challenger_scores_pkey PRIMARY KEY (decision_id, model_id)
);
CREATE INDEX risk_challenger_scores_model_idx ON risk_challenger_scores (model_id);

-- A manual override: requested with a reason, approved or refused by another person.
CREATE TABLE risk_overrides (
    id {{ID}},
    decision_id BIGINT NOT NULL REFERENCES risk_decisions (id),
    outcome TEXT NOT NULL CONSTRAINT risk_overrides_outcome_check
        CHECK (outcome IN ('approve', 'refer', 'reject')),
    reason TEXT NOT NULL,
    requested_by BIGINT NOT NULL REFERENCES users (id),
    requested_at_ms BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT risk_overrides_state_check
        CHECK (state IN ('pending', 'approved', 'refused')),
    -- The decision id while pending, NULL once decided: one open request per decision.
    pending_decision BIGINT CONSTRAINT risk_overrides_pending_key UNIQUE,
    decided_by BIGINT REFERENCES users (id),
    decided_at_ms BIGINT,
    decision_note TEXT,
    CONSTRAINT risk_overrides_two_person_check CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX risk_overrides_decision_idx ON risk_overrides (decision_id, id);

-- Identifiers the policy rules see as `applicant.blacklisted`, by blind index only.
CREATE TABLE risk_blacklist (
    id {{ID}},
    field TEXT NOT NULL CONSTRAINT risk_blacklist_field_check
        CHECK (field IN ('id_number', 'phone', 'bank_card')),
    bidx TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT risk_blacklist_key UNIQUE (field, bidx)
);
