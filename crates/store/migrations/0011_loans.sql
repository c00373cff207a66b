-- Loans, the double-entry ledger, repayments and idempotency keys (issue #8 part 1).
-- See docs/decisions/0014-loans-and-ledger.md for the model. In short:
--   * a loan is opened from a disbursed application; its schedule is `loan_installments`;
--   * every money movement is one balanced `journal_entries` row with its
--     `journal_lines` (both append-only); balances per loan / funder / account are sums
--     of the lines;
--   * the loan's stored outstanding amounts and each installment's due / paid amounts
--     must equal the ledger (`zhudai ledger verify` proves it).

-- Chart of accounts (科目表). `code` is the stable key used in journal lines.
CREATE TABLE ledger_accounts (
    code TEXT NOT NULL CONSTRAINT ledger_accounts_pkey PRIMARY KEY,
    number TEXT NOT NULL CONSTRAINT ledger_accounts_number_key UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind TEXT NOT NULL CONSTRAINT ledger_accounts_kind_check
        CHECK (kind IN ('asset', 'liability', 'equity', 'income', 'expense')),
    -- The side that increases the account: balance = debits − credits for 'debit'.
    normal_side TEXT NOT NULL CONSTRAINT ledger_accounts_side_check
        CHECK (normal_side IN ('debit', 'credit'))
);
INSERT INTO ledger_accounts (code, number, name_zh, name_en, kind, normal_side) VALUES
    ('cash_clearing', '1001', '还款清算户', 'Repayment clearing', 'asset', 'debit'),
    ('loan_principal', '1122', '贷款本金', 'Loan principal', 'asset', 'debit'),
    ('interest_receivable', '1132', '应收利息', 'Interest receivable', 'asset', 'debit'),
    ('fee_receivable', '1133', '应收费用', 'Fees receivable', 'asset', 'debit'),
    ('penalty_receivable', '1134', '应收罚息', 'Penalty interest receivable', 'asset', 'debit'),
    ('guarantee_recoverable', '1221', '代偿追偿款', 'Guarantee payouts to recover', 'asset', 'debit'),
    ('funder_funding', '2001', '资金方出资', 'Funder funding', 'liability', 'credit'),
    ('funder_payable', '2202', '应付资金方款项', 'Payable to funders', 'liability', 'credit'),
    ('borrower_overpayment', '2241', '溢缴款', 'Borrower overpayments', 'liability', 'credit'),
    ('interest_unearned', '2401', '未实现利息收入', 'Unearned interest', 'liability', 'credit'),
    ('fee_unearned', '2402', '未实现费用收入', 'Unearned fees', 'liability', 'credit'),
    ('interest_income', '6011', '利息收入', 'Interest income', 'income', 'credit'),
    ('fee_income', '6021', '服务费收入', 'Service-fee income', 'income', 'credit'),
    ('penalty_income', '6031', '罚息收入', 'Penalty interest income', 'income', 'credit'),
    ('recovery_income', '6111', '追偿收入', 'Recoveries', 'income', 'credit'),
    ('write_off_expense', '6701', '核销损失', 'Write-off losses', 'expense', 'debit'),
    ('guarantee_expense', '6702', '代偿支出', 'Guarantee payouts', 'expense', 'debit');

-- A loan (借据). One per application. Terms are frozen at opening (`terms_json` is the
-- domain `LoanTerms`). The outstanding columns equal the ledger per account
-- (principal → loan_principal, interest → interest_receivable, fee → fee_receivable,
-- penalty → penalty_receivable, overpaid → borrower_overpayment).
-- The COB columns (dpd, overdue_since, classification, collection_bucket,
-- last_closed_on) are maintained by the daily close; repayments refresh dpd and
-- overdue_since as of their value date.
CREATE TABLE loans (
    id {{ID}},
    ref TEXT NOT NULL CONSTRAINT loans_ref_key UNIQUE,
    application_id BIGINT NOT NULL CONSTRAINT loans_application_key UNIQUE
        REFERENCES applications (id),
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    funder_code TEXT NOT NULL,
    funder_loan_ref TEXT,
    owner_user_id BIGINT NOT NULL REFERENCES users (id),
    org_unit_id BIGINT REFERENCES org_units (id),
    principal_fen BIGINT NOT NULL CONSTRAINT loans_principal_check CHECK (principal_fen > 0),
    -- Decimal strings, e.g. '0.12'.
    annual_rate TEXT NOT NULL,
    penalty_annual_rate TEXT NOT NULL,
    method TEXT NOT NULL CONSTRAINT loans_method_check
        CHECK (method IN ('equal_installment', 'equal_principal', 'interest_first', 'bullet')),
    months BIGINT NOT NULL CONSTRAINT loans_months_check CHECK (months > 0),
    day_count TEXT NOT NULL,
    terms_json TEXT NOT NULL,
    disbursed_on TEXT NOT NULL,
    maturity_date TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CONSTRAINT loans_status_check
        CHECK (status IN ('active', 'overdue', 'paid_off', 'written_off')),
    principal_outstanding_fen BIGINT NOT NULL,
    interest_outstanding_fen BIGINT NOT NULL DEFAULT 0,
    fee_outstanding_fen BIGINT NOT NULL DEFAULT 0,
    penalty_outstanding_fen BIGINT NOT NULL DEFAULT 0,
    overpaid_fen BIGINT NOT NULL DEFAULT 0,
    -- Days past due of the oldest unpaid installment, as of last_closed_on / the last repayment.
    dpd BIGINT NOT NULL DEFAULT 0 CONSTRAINT loans_dpd_check CHECK (dpd >= 0),
    overdue_since TEXT,
    -- 五级分类: normal 正常, special_mention 关注, substandard 次级, doubtful 可疑, loss 损失.
    classification TEXT NOT NULL DEFAULT 'normal' CONSTRAINT loans_classification_check
        CHECK (classification IN ('normal', 'special_mention', 'substandard', 'doubtful', 'loss')),
    -- A manually set floor (approved elsewhere); the tier is max(floor by DPD, this).
    classification_floor TEXT CONSTRAINT loans_classification_floor_check
        CHECK (classification_floor IN ('normal', 'special_mention', 'substandard', 'doubtful', 'loss')),
    collection_bucket TEXT NOT NULL DEFAULT 'M0' CONSTRAINT loans_bucket_check
        CHECK (collection_bucket IN ('M0', 'M1', 'M2', 'M3', 'M4', 'M5', 'M6+')),
    -- The last business date the daily close finished for this loan.
    last_closed_on TEXT,
    -- The date it was repaid in full (or written off).
    closed_on TEXT,
    version BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX loans_customer_idx ON loans (customer_id);
CREATE INDEX loans_scope_idx ON loans (org_unit_id, id);
CREATE INDEX loans_owner_idx ON loans (owner_user_id, id);
CREATE INDEX loans_status_idx ON loans (status, id);
CREATE INDEX loans_funder_idx ON loans (funder_code, id);
CREATE INDEX loans_close_idx ON loans (last_closed_on, id);

-- The schedule (还款计划), one row per period. Number 0, when present, is the upfront fee
-- due on the disbursement date. The *_due columns hold the current schedule (early
-- repayments recalculate them); Σ principal_due_fen over a loan = loans.principal_fen.
-- penalty_accrued_fen is accrued by the daily close (through penalty_accrued_through).
-- settled_on is the date the installment was fully paid (NULL while anything is due).
CREATE TABLE loan_installments (
    id {{ID}},
    loan_id BIGINT NOT NULL REFERENCES loans (id),
    number BIGINT NOT NULL CONSTRAINT loan_installments_number_check CHECK (number >= 0),
    due_date TEXT NOT NULL,
    principal_due_fen BIGINT NOT NULL,
    interest_due_fen BIGINT NOT NULL,
    fee_due_fen BIGINT NOT NULL,
    penalty_accrued_fen BIGINT NOT NULL DEFAULT 0,
    principal_paid_fen BIGINT NOT NULL DEFAULT 0,
    interest_paid_fen BIGINT NOT NULL DEFAULT 0,
    fee_paid_fen BIGINT NOT NULL DEFAULT 0,
    penalty_paid_fen BIGINT NOT NULL DEFAULT 0,
    penalty_accrued_through TEXT,
    settled_on TEXT,
    CONSTRAINT loan_installments_loan_number_key UNIQUE (loan_id, number),
    CONSTRAINT loan_installments_amounts_check CHECK (
        principal_due_fen >= 0 AND interest_due_fen >= 0 AND fee_due_fen >= 0 AND penalty_accrued_fen >= 0
        AND principal_paid_fen >= 0 AND interest_paid_fen >= 0 AND fee_paid_fen >= 0 AND penalty_paid_fen >= 0
        AND principal_paid_fen <= principal_due_fen AND interest_paid_fen <= interest_due_fen
        AND fee_paid_fen <= fee_due_fen AND penalty_paid_fen <= penalty_accrued_fen)
);
CREATE INDEX loan_installments_due_idx ON loan_installments (due_date, loan_id);

-- One balanced entry per money movement. `kind` names the movement; a reversal points
-- at the entry it reverses (each entry is reversed at most once).
CREATE TABLE journal_entries (
    id {{ID}},
    kind TEXT NOT NULL CONSTRAINT journal_entries_kind_check CHECK (kind IN (
        'disbursement', 'repayment', 'reversal', 'penalty_accrual', 'interest_recognition',
        'fee_recognition', 'guarantee_payout', 'recovery', 'write_off', 'funder_settlement',
        'overpayment_refund', 'adjustment')),
    loan_id BIGINT REFERENCES loans (id),
    funder_code TEXT,
    -- The business (value) date, YYYY-MM-DD.
    business_date TEXT NOT NULL,
    reverses_entry_id BIGINT CONSTRAINT journal_entries_reverses_key UNIQUE
        REFERENCES journal_entries (id),
    memo TEXT,
    created_by TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX journal_entries_loan_idx ON journal_entries (loan_id, id);
CREATE INDEX journal_entries_date_idx ON journal_entries (business_date, id);

-- Exactly one of debit / credit is positive on each line. loan_id and funder_code are
-- copied from the entry so balances per loan and per funder are single-table sums.
CREATE TABLE journal_lines (
    id {{ID}},
    entry_id BIGINT NOT NULL REFERENCES journal_entries (id),
    account_code TEXT NOT NULL REFERENCES ledger_accounts (code),
    loan_id BIGINT,
    funder_code TEXT,
    debit_fen BIGINT NOT NULL DEFAULT 0,
    credit_fen BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT journal_lines_side_check CHECK (
        (debit_fen > 0 AND credit_fen = 0) OR (debit_fen = 0 AND credit_fen > 0))
);
CREATE INDEX journal_lines_entry_idx ON journal_lines (entry_id);
CREATE INDEX journal_lines_loan_idx ON journal_lines (loan_id, account_code);
CREATE INDEX journal_lines_account_idx ON journal_lines (account_code, funder_code);

-- A repayment as received. The allocation totals equal its journal entry's credits;
-- `overpaid_fen` went to borrower_overpayment, `credit_used_fen` came from it.
-- A reversal never deletes: it posts the mirror entry and marks the row reversed.
CREATE TABLE repayments (
    id {{ID}},
    ref TEXT NOT NULL CONSTRAINT repayments_ref_key UNIQUE,
    loan_id BIGINT NOT NULL REFERENCES loans (id),
    kind TEXT NOT NULL CONSTRAINT repayments_kind_check
        CHECK (kind IN ('scheduled', 'partial', 'early_partial', 'early_full')),
    amount_fen BIGINT NOT NULL CONSTRAINT repayments_amount_check CHECK (amount_fen > 0),
    value_date TEXT NOT NULL,
    payer_name TEXT NOT NULL,
    third_party BIGINT NOT NULL DEFAULT 0 CONSTRAINT repayments_third_party_check CHECK (third_party IN (0, 1)),
    payer_relation TEXT,
    channel TEXT NOT NULL DEFAULT 'transfer',
    external_ref TEXT,
    principal_fen BIGINT NOT NULL,
    interest_fen BIGINT NOT NULL,
    fee_fen BIGINT NOT NULL,
    penalty_fen BIGINT NOT NULL,
    overpaid_fen BIGINT NOT NULL DEFAULT 0,
    credit_used_fen BIGINT NOT NULL DEFAULT 0,
    entry_id BIGINT NOT NULL REFERENCES journal_entries (id),
    status TEXT NOT NULL DEFAULT 'posted' CONSTRAINT repayments_status_check
        CHECK (status IN ('posted', 'reversed')),
    reversal_entry_id BIGINT REFERENCES journal_entries (id),
    reversal_reason TEXT,
    reversed_by TEXT,
    reversed_at_ms BIGINT,
    -- The loan's state before this repayment, to restore on reversal (JSON).
    prior_state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX repayments_loan_idx ON repayments (loan_id, id);
CREATE INDEX repayments_date_idx ON repayments (value_date, id);

-- What a repayment paid on each installment, and the schedule it replaced (early
-- repayments): old_* are the installment's due amounts before, NULL when unchanged.
CREATE TABLE repayment_allocations (
    id {{ID}},
    repayment_id BIGINT NOT NULL REFERENCES repayments (id),
    installment_id BIGINT NOT NULL REFERENCES loan_installments (id),
    principal_fen BIGINT NOT NULL DEFAULT 0,
    interest_fen BIGINT NOT NULL DEFAULT 0,
    fee_fen BIGINT NOT NULL DEFAULT 0,
    penalty_fen BIGINT NOT NULL DEFAULT 0,
    old_principal_due_fen BIGINT,
    old_interest_due_fen BIGINT,
    old_fee_due_fen BIGINT,
    old_settled_on TEXT,
    CONSTRAINT repayment_allocations_key UNIQUE (repayment_id, installment_id)
);

-- Idempotency keys of money-moving requests: the first request with a key in a scope
-- stores its response; a repeat with the same digest gets that response, a repeat with
-- another body is refused. The row is inserted first in the request's transaction, so
-- concurrent repeats wait on it.
CREATE TABLE idempotency_keys (
    id {{ID}},
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    response_status BIGINT,
    response_body TEXT,
    resource TEXT,
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT idempotency_keys_scope_key_key UNIQUE (scope, key)
);

--@sqlite
CREATE TRIGGER journal_entries_no_update BEFORE UPDATE ON journal_entries
BEGIN SELECT RAISE(ABORT, 'journal_entries is append-only'); END;
CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries
BEGIN SELECT RAISE(ABORT, 'journal_entries is append-only'); END;
CREATE TRIGGER journal_lines_no_update BEFORE UPDATE ON journal_lines
BEGIN SELECT RAISE(ABORT, 'journal_lines is append-only'); END;
CREATE TRIGGER journal_lines_no_delete BEFORE DELETE ON journal_lines
BEGIN SELECT RAISE(ABORT, 'journal_lines is append-only'); END;
--@end
--@postgres
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_append_only();
--@end
