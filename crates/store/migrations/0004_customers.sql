-- Customers (客户): individuals and enterprises. Sensitive fields (C3: ID number, mobile,
-- bank card, income; C2: e-mail, address) are stored only as ciphertexts under the
-- customer's own data key (subject `customer:<ref>`), so destroying that key crypto-shreds
-- the person. Exact-match search goes through HMAC blind indexes. Facts derived from the
-- ID number (birth date, gender, region) are computed at write time, never typed in.
CREATE TABLE customers (
    id {{ID}},
    -- Public reference (UUID): the row key in each field's AAD and the key subject name.
    ref TEXT NOT NULL CONSTRAINT customers_ref_key UNIQUE,
    kind TEXT NOT NULL CONSTRAINT customers_kind_check CHECK (kind IN ('individual', 'enterprise')),
    name TEXT NOT NULL,
    id_kind TEXT NOT NULL CONSTRAINT customers_id_kind_check
        CHECK (id_kind IN ('resident', 'hk_permit', 'mo_permit', 'tw_permit', 'uscc')),
    id_number_enc {{BLOB}},
    id_number_bidx TEXT,
    phone_enc {{BLOB}},
    phone_bidx TEXT,
    bank_card_enc {{BLOB}},
    bank_card_bidx TEXT,
    email_enc {{BLOB}},
    address_enc {{BLOB}},
    monthly_income_enc {{BLOB}},
    birth_date TEXT,
    gender TEXT,
    region_code TEXT,
    owner_user_id BIGINT NOT NULL REFERENCES users (id),
    org_unit_id BIGINT REFERENCES org_units (id),
    status TEXT NOT NULL DEFAULT 'active'
        CONSTRAINT customers_status_check CHECK (status IN ('active', 'closed', 'erased')),
    -- AML/contract retention: no erasure before this date (YYYY-MM-DD).
    legal_hold_until TEXT,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    -- Optimistic concurrency for edits.
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX customers_id_number_bidx_idx ON customers (id_number_bidx);
CREATE INDEX customers_phone_bidx_idx ON customers (phone_bidx);
CREATE INDEX customers_bank_card_bidx_idx ON customers (bank_card_bidx);
CREATE INDEX customers_org_unit_idx ON customers (org_unit_id, id);
CREATE INDEX customers_owner_idx ON customers (owner_user_id, id);
CREATE INDEX customers_name_idx ON customers (name);

-- Links between an enterprise and the individuals behind it.
CREATE TABLE customer_relations (
    id {{ID}},
    enterprise_id BIGINT NOT NULL REFERENCES customers (id),
    person_id BIGINT NOT NULL REFERENCES customers (id),
    role TEXT NOT NULL CONSTRAINT customer_relations_role_check
        CHECK (role IN ('legal_representative', 'beneficial_owner', 'actual_controller', 'shareholder')),
    -- Ownership share in basis points (beneficial owners, shareholders).
    share_bp BIGINT,
    created_by BIGINT REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT customer_relations_unique UNIQUE (enterprise_id, person_id, role)
);
CREATE INDEX customer_relations_person_idx ON customer_relations (person_id);
