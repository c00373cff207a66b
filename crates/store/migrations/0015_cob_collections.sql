-- The daily close of business, collections, funder reconciliation and portfolio reports
-- (issue #8 items 3–7). See docs/decisions/0018-daily-close-and-collections.md.

-- Partner settings the close and collections read.
-- A funder's guarantee payout (代偿) happens at this many days past due (NULL: none).
ALTER TABLE partners ADD COLUMN guarantee_payout_dpd BIGINT
    CONSTRAINT partners_guarantee_payout_dpd_check CHECK (guarantee_payout_dpd IS NULL OR guarantee_payout_dpd BETWEEN 1 AND 720);
-- A collection agency's default commission rate (decimal text, e.g. '0.15').
ALTER TABLE partners ADD COLUMN commission_rate TEXT;

-- What the close looks at. An unsettled installment (settled_on IS NULL) is either due
-- later or overdue; the close reads only these, by loan.
CREATE INDEX loan_installments_open_idx ON loan_installments (loan_id, due_date) WHERE settled_on IS NULL;
-- Loans that need the close even when no installment fell due: overdue, or not in the
-- plain state (a cured loan's bucket, a manual floor, a restructured loan's 关注).
CREATE INDEX loans_cob_attention_idx ON loans (id) WHERE status IN ('active', 'overdue')
    AND (status = 'overdue' OR dpd > 0 OR collection_bucket <> 'M0' OR classification <> 'normal' OR classification_floor IS NOT NULL);

-- One run per business date. The run is cut into chunks of loan ids when it starts;
-- each chunk commits its work and its own 'done' mark in one transaction, so a crash
-- loses at most the chunk in progress and a rerun skips what is done. Chunks are
-- claimed like jobs (a lease; FOR UPDATE SKIP LOCKED on PostgreSQL).
CREATE TABLE cob_runs (
    id {{ID}},
    business_date TEXT NOT NULL CONSTRAINT cob_runs_business_date_key UNIQUE,
    state TEXT NOT NULL DEFAULT 'running' CONSTRAINT cob_runs_state_check CHECK (state IN ('running', 'done')),
    chunk_size BIGINT NOT NULL,
    chunks_total BIGINT NOT NULL,
    started_by TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    -- Totals over the chunks, filled when the run is done.
    loans_closed BIGINT NOT NULL DEFAULT 0,
    overdue_loans BIGINT NOT NULL DEFAULT 0,
    penalty_fen BIGINT NOT NULL DEFAULT 0,
    reclassified BIGINT NOT NULL DEFAULT 0,
    bucket_moves BIGINT NOT NULL DEFAULT 0,
    cases_opened BIGINT NOT NULL DEFAULT 0,
    cases_closed BIGINT NOT NULL DEFAULT 0,
    payouts BIGINT NOT NULL DEFAULT 0,
    payout_fen BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE cob_chunks (
    id {{ID}},
    run_id BIGINT NOT NULL CONSTRAINT cob_chunks_run_fkey REFERENCES cob_runs (id),
    seq BIGINT NOT NULL,
    first_loan_id BIGINT NOT NULL,
    last_loan_id BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT cob_chunks_state_check CHECK (state IN ('pending', 'running', 'done')),
    locked_by TEXT,
    lease_until_ms BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    loans_closed BIGINT NOT NULL DEFAULT 0,
    overdue_loans BIGINT NOT NULL DEFAULT 0,
    penalty_fen BIGINT NOT NULL DEFAULT 0,
    reclassified BIGINT NOT NULL DEFAULT 0,
    bucket_moves BIGINT NOT NULL DEFAULT 0,
    cases_opened BIGINT NOT NULL DEFAULT 0,
    cases_closed BIGINT NOT NULL DEFAULT 0,
    payouts BIGINT NOT NULL DEFAULT 0,
    payout_fen BIGINT NOT NULL DEFAULT 0,
    finished_at_ms BIGINT,
    CONSTRAINT cob_chunks_run_seq_key UNIQUE (run_id, seq)
);
CREATE INDEX cob_chunks_claim_idx ON cob_chunks (run_id, state, seq);

-- Balance and count of open loans by tier and bucket at the end of each run: the
-- dashboard's tier and bucket charts and their history.
CREATE TABLE cob_snapshots (
    business_date TEXT NOT NULL,
    classification TEXT NOT NULL,
    collection_bucket TEXT NOT NULL,
    loans BIGINT NOT NULL,
    principal_fen BIGINT NOT NULL,
    CONSTRAINT cob_snapshots_pkey PRIMARY KEY (business_date, classification, collection_bucket)
);

-- Every change of a loan's tier (by the close, or by an approved manual floor).
CREATE TABLE loan_classification_history (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT loan_classification_history_loan_fkey REFERENCES loans (id),
    business_date TEXT NOT NULL,
    from_class TEXT NOT NULL,
    to_class TEXT NOT NULL,
    dpd BIGINT NOT NULL,
    source TEXT NOT NULL CONSTRAINT loan_classification_history_source_check CHECK (source IN ('cob', 'manual', 'restructuring')),
    note TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX loan_classification_history_loan_idx ON loan_classification_history (loan_id, id);

-- Every change of a loan's collection bucket. A loan's bucket at the end of any past
-- business date is its last row on or before it (M0 without one): roll rates between
-- two closes are read from here.
CREATE TABLE loan_bucket_history (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT loan_bucket_history_loan_fkey REFERENCES loans (id),
    business_date TEXT NOT NULL,
    from_bucket TEXT NOT NULL,
    to_bucket TEXT NOT NULL,
    dpd BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX loan_bucket_history_loan_idx ON loan_bucket_history (loan_id, business_date);
CREATE INDEX loan_bucket_history_date_idx ON loan_bucket_history (business_date, loan_id);

-- Manual classification floors (maker-checker): a request waits for another person's
-- approval; at most one is open per loan. `floor` NULL asks to remove the floor.
CREATE TABLE classification_requests (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT classification_requests_loan_fkey REFERENCES loans (id),
    floor TEXT CONSTRAINT classification_requests_floor_check
        CHECK (floor IN ('normal', 'special_mention', 'substandard', 'doubtful', 'loss')),
    reason TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CONSTRAINT classification_requests_state_check CHECK (state IN ('pending', 'approved', 'rejected')),
    open_flag BIGINT CONSTRAINT classification_requests_open_check CHECK (open_flag = 1),
    requested_by BIGINT NOT NULL,
    requested_by_name TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    decided_by BIGINT,
    decided_by_name TEXT,
    decided_at_ms BIGINT,
    decision_note TEXT,
    CONSTRAINT classification_requests_open_key UNIQUE (loan_id, open_flag),
    CONSTRAINT classification_requests_four_eyes_check CHECK (decided_by IS NULL OR decided_by <> requested_by)
);

-- Restructured loans and their observation period (at least two periods and a year,
-- restarted by a missed payment): the close keeps such a loan at least 关注 until
-- `observation_ends_on`. `active_flag` is 1 while observed.
CREATE TABLE loan_restructurings (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT loan_restructurings_loan_fkey REFERENCES loans (id),
    restructured_on TEXT NOT NULL,
    observe_from TEXT NOT NULL,
    observation_ends_on TEXT NOT NULL,
    active_flag BIGINT CONSTRAINT loan_restructurings_active_check CHECK (active_flag = 1),
    ended_on TEXT,
    note TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT loan_restructurings_active_key UNIQUE (loan_id, active_flag)
);

-- Guarantee payouts (代偿): one per loan, with its journal entry
-- (Dr guarantee_recoverable / Cr funder_payable).
CREATE TABLE guarantee_payouts (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT guarantee_payouts_loan_key UNIQUE
        CONSTRAINT guarantee_payouts_loan_fkey REFERENCES loans (id),
    funder_code TEXT NOT NULL,
    business_date TEXT NOT NULL,
    dpd BIGINT NOT NULL,
    principal_fen BIGINT NOT NULL,
    interest_fen BIGINT NOT NULL,
    total_fen BIGINT NOT NULL CONSTRAINT guarantee_payouts_total_check CHECK (total_fen > 0),
    entry_id BIGINT NOT NULL CONSTRAINT guarantee_payouts_entry_fkey REFERENCES journal_entries (id),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX guarantee_payouts_funder_idx ON guarantee_payouts (funder_code, business_date);

-- Collection cases: opened by the close when a loan leaves M0, moved with its bucket,
-- closed when cured or repaid (or by a manager). One open case per loan.
CREATE TABLE collection_cases (
    id {{ID}},
    loan_id BIGINT NOT NULL CONSTRAINT collection_cases_loan_fkey REFERENCES loans (id),
    customer_id BIGINT NOT NULL,
    owner_user_id BIGINT NOT NULL,
    org_unit_id BIGINT,
    bucket TEXT NOT NULL CONSTRAINT collection_cases_bucket_check
        CHECK (bucket IN ('M0', 'M1', 'M2', 'M3', 'M4', 'M5', 'M6+')),
    state TEXT NOT NULL DEFAULT 'open' CONSTRAINT collection_cases_state_check CHECK (state IN ('open', 'closed')),
    open_flag BIGINT CONSTRAINT collection_cases_open_check CHECK (open_flag = 1),
    opened_on TEXT NOT NULL,
    assignee_user_id BIGINT CONSTRAINT collection_cases_assignee_fkey REFERENCES users (id),
    -- The agency working the case now (its assignment row has the commission).
    agency_code TEXT,
    -- The latest promise to pay.
    promised_amount_fen BIGINT,
    promised_date TEXT,
    contacts BIGINT NOT NULL DEFAULT 0,
    last_contact_at_ms BIGINT,
    closed_on TEXT,
    close_reason TEXT CONSTRAINT collection_cases_close_reason_check
        CHECK (close_reason IS NULL OR close_reason IN ('cured', 'paid_off', 'written_off', 'guarantee_paid', 'other')),
    closed_by TEXT,
    close_note TEXT,
    version BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CONSTRAINT collection_cases_open_key UNIQUE (loan_id, open_flag)
);
CREATE INDEX collection_cases_queue_idx ON collection_cases (state, bucket, assignee_user_id, id);
CREATE INDEX collection_cases_assignee_idx ON collection_cases (assignee_user_id, state, id);

-- The contact log. `local_date` is the Asia/Shanghai date of `at_ms`.
CREATE TABLE collection_contacts (
    id {{ID}},
    case_id BIGINT NOT NULL CONSTRAINT collection_contacts_case_fkey REFERENCES collection_cases (id),
    loan_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    local_date TEXT NOT NULL,
    channel TEXT NOT NULL CONSTRAINT collection_contacts_channel_check
        CHECK (channel IN ('phone', 'sms', 'wechat', 'letter', 'visit', 'email')),
    outcome TEXT NOT NULL CONSTRAINT collection_contacts_outcome_check
        CHECK (outcome IN ('promise_to_pay', 'no_answer', 'left_message', 'refused', 'dispute', 'wrong_number', 'third_party', 'paid', 'other')),
    promised_amount_fen BIGINT,
    promised_date TEXT,
    note TEXT,
    user_id BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    agency_code TEXT
);
CREATE INDEX collection_contacts_case_idx ON collection_contacts (case_id, id);

-- Contacts per debtor per local day: the daily limit is enforced by one atomic upsert
-- on this row, so two collectors at once cannot both pass the last free slot.
CREATE TABLE collection_contact_days (
    customer_id BIGINT NOT NULL,
    local_date TEXT NOT NULL,
    contacts BIGINT NOT NULL,
    CONSTRAINT collection_contact_days_pkey PRIMARY KEY (customer_id, local_date)
);

-- Outsourced agencies (委外催收). Recovered = the loan's posted repayments with a value
-- date in the assignment; commission = rate × recovered. Both are frozen when the
-- assignment ends.
CREATE TABLE collection_agency_assignments (
    id {{ID}},
    case_id BIGINT NOT NULL CONSTRAINT collection_agency_assignments_case_fkey REFERENCES collection_cases (id),
    loan_id BIGINT NOT NULL,
    agency_code TEXT NOT NULL,
    commission_rate TEXT NOT NULL,
    assigned_on TEXT NOT NULL,
    ended_on TEXT,
    active_flag BIGINT CONSTRAINT collection_agency_assignments_active_check CHECK (active_flag = 1),
    recovered_fen BIGINT,
    commission_fen BIGINT,
    assigned_by TEXT NOT NULL,
    ended_by TEXT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT collection_agency_assignments_active_key UNIQUE (case_id, active_flag)
);
CREATE INDEX collection_agency_assignments_agency_idx ON collection_agency_assignments (agency_code, id);

-- Funder reconciliation: an imported daily repayment file, its lines, and the breaks
-- found against our repayments (missing / extra / amount_differs), each resolved with a
-- note. The same file (by digest) is imported once per funder.
CREATE TABLE recon_files (
    id {{ID}},
    funder_code TEXT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    date_from TEXT NOT NULL,
    date_to TEXT NOT NULL,
    lines BIGINT NOT NULL,
    matched BIGINT NOT NULL,
    breaks BIGINT NOT NULL,
    funder_total_fen BIGINT NOT NULL,
    ours_total_fen BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at_ms BIGINT NOT NULL,
    CONSTRAINT recon_files_digest_key UNIQUE (funder_code, sha256)
);

CREATE TABLE recon_lines (
    id {{ID}},
    file_id BIGINT NOT NULL CONSTRAINT recon_lines_file_fkey REFERENCES recon_files (id),
    line_no BIGINT NOT NULL,
    loan_ref TEXT,
    funder_loan_ref TEXT,
    loan_id BIGINT,
    value_date TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    external_ref TEXT
);
CREATE INDEX recon_lines_file_idx ON recon_lines (file_id, line_no);

CREATE TABLE recon_breaks (
    id {{ID}},
    file_id BIGINT NOT NULL CONSTRAINT recon_breaks_file_fkey REFERENCES recon_files (id),
    funder_code TEXT NOT NULL,
    kind TEXT NOT NULL CONSTRAINT recon_breaks_kind_check CHECK (kind IN ('missing', 'extra', 'amount_differs')),
    loan_id BIGINT,
    loan_ref TEXT NOT NULL,
    value_date TEXT NOT NULL,
    funder_fen BIGINT NOT NULL,
    ours_fen BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open' CONSTRAINT recon_breaks_state_check CHECK (state IN ('open', 'resolved')),
    resolution_note TEXT,
    resolved_by TEXT,
    resolved_at_ms BIGINT
);
CREATE INDEX recon_breaks_state_idx ON recon_breaks (state, funder_code, id);
CREATE INDEX recon_breaks_file_idx ON recon_breaks (file_id, id);

-- Vintage curves (overdue rate by disbursement month and months on book), recomputed
-- after each close from the installments' due and settlement dates.
CREATE TABLE portfolio_vintages (
    vintage TEXT NOT NULL,
    mob BIGINT NOT NULL,
    point_date TEXT NOT NULL,
    loans BIGINT NOT NULL,
    overdue_loans BIGINT NOT NULL,
    overdue30_loans BIGINT NOT NULL,
    as_of TEXT NOT NULL,
    CONSTRAINT portfolio_vintages_pkey PRIMARY KEY (vintage, mob)
);
