-- Customer documents, their verification, PIPL consents and data-subject requests.
-- Document contents live in the blob store (DATA_DIR/blobs by default), encrypted under
-- the customer's own data key (subject `customer:<ref>`); this table holds metadata. The
-- declared name and ID number and the original file name are ciphertexts under the same
-- key, so crypto-shredding the customer makes every copy unreadable.
CREATE TABLE customer_documents (
    id {{ID}},
    -- Public reference (UUID): the row key in the AAD of the content and of each field.
    ref TEXT NOT NULL CONSTRAINT customer_documents_ref_key UNIQUE,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    doc_type TEXT NOT NULL CONSTRAINT customer_documents_type_check CHECK (doc_type IN
        ('id_front', 'id_back', 'residence_permit', 'income_proof', 'bank_statement',
         'credit_report', 'business_licence', 'contract', 'other')),
    -- 1, 2, …: a new upload of the same type for the same customer is the next version.
    version BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    -- SHA-256 (hex) of the plaintext content.
    sha256 TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    original_name_enc {{BLOB}},
    retention_class TEXT NOT NULL CONSTRAINT customer_documents_retention_check
        CHECK (retention_class IN ('aml_10y', 'contract_5y_after_end', 'standard_3y')),
    -- Last day the document must be kept (NULL: not known yet, e.g. a running contract).
    retain_until TEXT,
    expiry_date TEXT,
    issued_date TEXT,
    contract_end_date TEXT,
    declared_name_enc {{BLOB}},
    declared_id_number_enc {{BLOB}},
    status TEXT NOT NULL DEFAULT 'pending' CONSTRAINT customer_documents_status_check
        CHECK (status IN ('pending', 'verified', 'rejected', 'needs_more')),
    uploaded_by BIGINT REFERENCES users (id),
    uploaded_at_ms BIGINT NOT NULL,
    verified_by BIGINT REFERENCES users (id),
    verified_at_ms BIGINT,
    verification_note TEXT,
    -- Set when the customer was erased: content deleted, fields cleared.
    erased_at_ms BIGINT,
    CONSTRAINT customer_documents_version_key UNIQUE (customer_id, doc_type, version)
);
CREATE INDEX customer_documents_status_idx ON customer_documents (status, id);

-- Every verification decision, with the cross-checks the verifier saw.
CREATE TABLE document_verifications (
    id {{ID}},
    document_id BIGINT NOT NULL REFERENCES customer_documents (id),
    decision TEXT NOT NULL CONSTRAINT document_verifications_decision_check
        CHECK (decision IN ('verified', 'rejected', 'needs_more')),
    note TEXT,
    checks_json TEXT NOT NULL,
    verifier_id BIGINT NOT NULL REFERENCES users (id),
    at_ms BIGINT NOT NULL
);
CREATE INDEX document_verifications_document_idx ON document_verifications (document_id, id);

-- PIPL consents: per purpose and recipients, versioned by policy, withdrawable.
CREATE TABLE customer_consents (
    id {{ID}},
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    purpose TEXT NOT NULL,
    -- JSON array of recipient codes (e.g. funder codes); [] = the company's own use.
    recipients TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    channel TEXT NOT NULL CONSTRAINT customer_consents_channel_check
        CHECK (channel IN ('app', 'web', 'paper', 'phone')),
    given_at_ms BIGINT NOT NULL,
    evidence_document_id BIGINT REFERENCES customer_documents (id),
    recorded_by BIGINT REFERENCES users (id),
    recorded_at_ms BIGINT NOT NULL,
    withdrawn_at_ms BIGINT,
    withdrawn_channel TEXT CONSTRAINT customer_consents_withdrawn_channel_check
        CHECK (withdrawn_channel IS NULL OR withdrawn_channel IN ('app', 'web', 'paper', 'phone')),
    withdrawn_by BIGINT REFERENCES users (id)
);
CREATE INDEX customer_consents_customer_idx ON customer_consents (customer_id, purpose);

-- Data-subject requests (access/copy, correction, deletion), tracked to completion.
CREATE TABLE privacy_requests (
    id {{ID}},
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    kind TEXT NOT NULL CONSTRAINT privacy_requests_kind_check
        CHECK (kind IN ('access', 'correction', 'deletion')),
    status TEXT NOT NULL DEFAULT 'open' CONSTRAINT privacy_requests_status_check
        CHECK (status IN ('open', 'in_progress', 'completed', 'refused')),
    channel TEXT NOT NULL CONSTRAINT privacy_requests_channel_check
        CHECK (channel IN ('app', 'web', 'paper', 'phone')),
    -- What the person asks (the requested change of a correction): a ciphertext under
    -- the customer's key, so it is shredded with them.
    details_enc {{BLOB}},
    received_on TEXT NOT NULL,
    due_on TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    handled_by BIGINT REFERENCES users (id),
    -- Outcome: why it was refused, or what was done.
    resolution TEXT,
    closed_at_ms BIGINT,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX privacy_requests_status_idx ON privacy_requests (status, due_on);
CREATE INDEX privacy_requests_customer_idx ON privacy_requests (customer_id);
