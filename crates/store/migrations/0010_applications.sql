-- Loan applications (进件): a customer asks for an amount and a term on one version of a
-- product. The application's progress is its workflow instance (subject 'application');
-- `status` mirrors the instance for lists and reports.
CREATE TABLE applications (
    id {{ID}},
    ref TEXT NOT NULL CONSTRAINT applications_ref_key UNIQUE,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    amount_fen BIGINT NOT NULL CONSTRAINT applications_amount_check CHECK (amount_fen > 0),
    months BIGINT NOT NULL CONSTRAINT applications_months_check CHECK (months > 0),
    method TEXT NOT NULL,
    purpose TEXT,
    status TEXT NOT NULL DEFAULT 'draft' CONSTRAINT applications_status_check
        CHECK (status IN ('draft', 'in_progress', 'approved', 'rejected', 'withdrawn', 'expired', 'disbursed')),
    node TEXT NOT NULL DEFAULT 'draft',
    -- Funder routing: the run placing it and the funder that took it.
    routing_run_id BIGINT,
    funder_code TEXT,
    owner_user_id BIGINT NOT NULL REFERENCES users (id),
    org_unit_id BIGINT REFERENCES org_units (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX applications_customer_idx ON applications (customer_id);
CREATE INDEX applications_scope_idx ON applications (org_unit_id, id);
CREATE INDEX applications_owner_idx ON applications (owner_user_id, id);
CREATE INDEX applications_status_idx ON applications (status, id);
