-- Contracts and disbursement (issue #6): versioned contract templates, the contract of an
-- application (the PDF encrypted in the blob store, its SHA-256 here, the disclosure table
-- frozen at generation), who signed it and how, and the funder's disbursement that opens
-- the loan.

-- Every save of a template is a new row; a version never changes (triggers below).
CREATE TABLE contract_templates (
    id {{ID}},
    code TEXT NOT NULL,
    version BIGINT NOT NULL CONSTRAINT contract_templates_version_check CHECK (version > 0),
    name TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'zh-CN',
    body TEXT NOT NULL,
    -- SHA-256 hex of `body`.
    digest TEXT NOT NULL,
    created_by TEXT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT contract_templates_code_version_key UNIQUE (code, version)
);

--@sqlite
CREATE TRIGGER contract_templates_no_update BEFORE UPDATE ON contract_templates
BEGIN SELECT RAISE(ABORT, 'contract_templates versions are immutable'); END;
CREATE TRIGGER contract_templates_no_delete BEFORE DELETE ON contract_templates
BEGIN SELECT RAISE(ABORT, 'contract_templates versions are immutable'); END;
--@end
--@postgres
CREATE TRIGGER contract_templates_immutable BEFORE UPDATE OR DELETE ON contract_templates
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
--@end

CREATE TABLE contracts (
    id {{ID}},
    contract_no TEXT NOT NULL CONSTRAINT contracts_no_key UNIQUE,
    application_id BIGINT NOT NULL REFERENCES applications (id),
    template_id BIGINT NOT NULL REFERENCES contract_templates (id),
    status TEXT NOT NULL DEFAULT 'draft' CONSTRAINT contracts_status_check
        CHECK (status IN ('draft', 'signed', 'void')),
    -- 1 while the contract is not void: at most one live contract per application.
    live BIGINT CONSTRAINT contracts_live_check CHECK (live = 1),
    funder_code TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CONSTRAINT contracts_amount_check CHECK (amount_fen > 0),
    months BIGINT NOT NULL,
    method TEXT NOT NULL,
    -- The values filled in (borrower masked), the quote snapshot with the disclosure
    -- table (综合融资成本明示表) and schedule, exactly as at generation (JSON).
    snapshot TEXT NOT NULL,
    snapshot_digest TEXT NOT NULL,
    apr TEXT NOT NULL,
    -- The PDF: encrypted in the blob store under the customer's key.
    pdf_blob_key TEXT NOT NULL,
    pdf_sha256 TEXT NOT NULL,
    pdf_bytes BIGINT NOT NULL,
    generated_by TEXT NOT NULL,
    generated_at_ms BIGINT NOT NULL,
    signed_at_ms BIGINT,
    void_reason TEXT,
    voided_by TEXT,
    voided_at_ms BIGINT,
    CONSTRAINT contracts_live_key UNIQUE (application_id, live)
);
CREATE INDEX contracts_application_idx ON contracts (application_id, id);

CREATE TABLE contract_signatures (
    id {{ID}},
    contract_id BIGINT NOT NULL REFERENCES contracts (id),
    -- borrower | company (us, the facilitator) | funder (the lender)
    party TEXT NOT NULL CONSTRAINT contract_signatures_party_check
        CHECK (party IN ('borrower', 'company', 'funder')),
    -- click_through (electronic, in our system) | e_signature (a provider's reference)
    -- | wet_ink (a scanned paper signature)
    method TEXT NOT NULL CONSTRAINT contract_signatures_method_check
        CHECK (method IN ('click_through', 'e_signature', 'wet_ink')),
    signer_name TEXT NOT NULL,
    provider_ref TEXT,
    -- SHA-256 hex of the evidence (the provider's signed file, the scan, or for a
    -- click-through the record itself bound to the PDF's hash).
    evidence_sha256 TEXT NOT NULL,
    signed_at_ms BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    CONSTRAINT contract_signatures_party_key UNIQUE (contract_id, party)
);

CREATE TABLE disbursements (
    id {{ID}},
    application_id BIGINT NOT NULL REFERENCES applications (id)
        CONSTRAINT disbursements_application_key UNIQUE,
    contract_id BIGINT NOT NULL REFERENCES contracts (id),
    funder_code TEXT NOT NULL,
    funder_loan_ref TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CONSTRAINT disbursements_amount_check CHECK (amount_fen > 0),
    disbursed_on TEXT NOT NULL,
    -- callback (the funder's signed message) | simulated (the simulated funder's job)
    source TEXT NOT NULL CONSTRAINT disbursements_source_check
        CHECK (source IN ('callback', 'simulated')),
    loan_id BIGINT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT disbursements_funder_ref_key UNIQUE (funder_code, funder_loan_ref)
);
