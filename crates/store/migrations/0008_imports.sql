-- Bulk customer import and export (客户批量导入导出).
--
-- An import is a job row that outlives the process running it: its status, counts and
-- progress are written in the same transaction as each batch of customers, so after a
-- crash the row says exactly which rows are in, and a re-run resumes after them (an
-- import is also idempotent by ID number, so running a file twice changes nothing).
CREATE TABLE customer_imports (
    id {{ID}},
    file_name TEXT NOT NULL,
    file_format TEXT NOT NULL CONSTRAINT customer_imports_format_check CHECK (file_format IN ('csv', 'xlsx')),
    -- SHA-256 (hex) of the uploaded bytes: the same file re-run resumes the interrupted import.
    file_digest TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    dry_run BIGINT NOT NULL,
    strict BIGINT NOT NULL,
    status TEXT NOT NULL CONSTRAINT customer_imports_status_check
        CHECK (status IN ('queued', 'running', 'done', 'rejected', 'failed')),
    -- `validating` (strict mode's first pass) or `writing`.
    phase TEXT NOT NULL DEFAULT 'writing',
    total_rows BIGINT NOT NULL DEFAULT 0,
    -- Rows handled, in file order: everything up to here is committed (the resume point).
    processed_rows BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    requested_by BIGINT REFERENCES users (id),
    -- Owner and unit of the customers the import creates.
    owner_user_id BIGINT NOT NULL REFERENCES users (id),
    org_unit_id BIGINT REFERENCES org_units (id),
    error TEXT,
    -- Who runs it: `cli:<host>:<pid>` or `worker`; a CLI re-run resumes a run whose
    -- process is gone.
    runner TEXT,
    created_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    heartbeat_at_ms BIGINT,
    finished_at_ms BIGINT
);
CREATE INDEX customer_imports_digest_idx ON customer_imports (file_digest, status);
CREATE INDEX customer_imports_requester_idx ON customer_imports (requested_by, id);

-- Every problem of every rejected row. Values are stored masked, never in clear.
CREATE TABLE customer_import_errors (
    id {{ID}},
    import_id BIGINT NOT NULL REFERENCES customer_imports (id),
    row_no BIGINT NOT NULL,
    field TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    value_masked TEXT
);
CREATE INDEX customer_import_errors_import_idx ON customer_import_errors (import_id, row_no);

-- The uploaded file of an import waiting for (or running in) the job worker, encrypted
-- under the system data key. Deleted when the import finishes.
CREATE TABLE customer_import_files (
    import_id BIGINT NOT NULL CONSTRAINT customer_import_files_pkey PRIMARY KEY REFERENCES customer_imports (id),
    content_enc {{BLOB}} NOT NULL
);

-- Exports above the approval threshold: requested by one person, approved by another
-- (four eyes), downloaded once by the requester.
CREATE TABLE customer_exports (
    id {{ID}},
    requested_by BIGINT NOT NULL REFERENCES users (id),
    file_format TEXT NOT NULL CONSTRAINT customer_exports_format_check CHECK (file_format IN ('csv', 'xlsx')),
    row_count BIGINT NOT NULL,
    -- Comma-separated fields the requester sees in clear.
    clear_fields TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT customer_exports_status_check
        CHECK (status IN ('pending', 'approved', 'rejected', 'downloaded')),
    decided_by BIGINT REFERENCES users (id),
    decided_at_ms BIGINT,
    decision_note TEXT,
    downloaded_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX customer_exports_status_idx ON customer_exports (status, id);
