-- Identity and access: roles, permissions, users, sessions, API tokens; the data keys
-- of field encryption; the hash-chained audit log and its signed checkpoints.
-- Booleans are BIGINT 0/1 so they read the same through sqlx's Any driver on both databases.

CREATE TABLE roles (
    id {{ID}},
    code TEXT NOT NULL CONSTRAINT roles_code_key UNIQUE,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    data_scope TEXT NOT NULL CONSTRAINT roles_data_scope_check CHECK (data_scope IN ('own', 'team', 'branch', 'all')),
    is_system BIGINT NOT NULL DEFAULT 0 CONSTRAINT roles_is_system_check CHECK (is_system IN (0, 1)),
    requires_2fa BIGINT NOT NULL DEFAULT 0 CONSTRAINT roles_requires_2fa_check CHECK (requires_2fa IN (0, 1)),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Permission strings such as `customer.read`; the catalogue lives in code.
CREATE TABLE role_permissions (
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role_id, permission)
);

-- Sensitive fields (e.g. `customer.id_number`) a role may see in clear; all others are masked.
CREATE TABLE role_field_access (
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    CONSTRAINT role_field_access_pkey PRIMARY KEY (role_id, field)
);

-- `status` is the administrative state; a lockout after failed logins is temporary and
-- kept in `locked_until_ms` instead.
CREATE TABLE users (
    id {{ID}},
    username TEXT NOT NULL CONSTRAINT users_username_key UNIQUE,
    display_name TEXT NOT NULL,
    org_unit_id BIGINT CONSTRAINT users_org_unit_id_fkey REFERENCES org_units (id),
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CONSTRAINT users_status_check CHECK (status IN ('active', 'locked', 'disabled')),
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until_ms BIGINT,
    totp_secret_enc {{BLOB}},
    totp_enabled BIGINT NOT NULL DEFAULT 0 CONSTRAINT users_totp_enabled_check CHECK (totp_enabled IN (0, 1)),
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    must_change_password BIGINT NOT NULL DEFAULT 0 CONSTRAINT users_must_change_password_check CHECK (must_change_password IN (0, 1)),
    password_changed_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CONSTRAINT users_totp_check CHECK (totp_enabled = 0 OR totp_secret_enc IS NOT NULL)
);
CREATE INDEX users_org_unit_idx ON users (org_unit_id);

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles (id),
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_idx ON user_roles (role_id);

-- Server-side sessions. Only hashes of the cookie token and of the CSRF token are kept.
-- The idle timeout is policy, applied by the caller to `last_seen_ms`.
CREATE TABLE sessions (
    id {{ID}},
    token_hash TEXT NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    absolute_expires_at_ms BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    csrf_token_hash TEXT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Bearer tokens for API access; `scopes` is space-separated (OAuth style).
CREATE TABLE api_tokens (
    id {{ID}},
    token_hash TEXT NOT NULL CONSTRAINT api_tokens_token_hash_key UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT,
    last_used_ms BIGINT
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Data-encryption keys, wrapped by a master key. `subject` names the person a per-person
-- key belongs to (NULL for system keys). Destroying a key (crypto-shredding) empties
-- `wrapped`; the check makes a destroyed key with key material impossible.
CREATE TABLE data_keys (
    id TEXT NOT NULL CONSTRAINT data_keys_pkey PRIMARY KEY,
    subject TEXT CONSTRAINT data_keys_subject_key UNIQUE,
    wrapped {{BLOB}} NOT NULL,
    master_key_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    destroyed_at_ms BIGINT,
    CONSTRAINT data_keys_destroyed_check CHECK (destroyed_at_ms IS NULL OR length(wrapped) = 0)
);
CREATE INDEX data_keys_master_idx ON data_keys (master_key_id, id);

-- The audit trail: one row per event, `seq` allocated without gaps by the appender (not
-- by a sequence, which skips numbers on rollback). See zhudai_crypto::audit_chain.
CREATE TABLE audit_log (
    seq BIGINT NOT NULL CONSTRAINT audit_log_pkey PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT,
    role TEXT,
    source_ip TEXT,
    request_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    change_digest TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at_ms);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, seq);
CREATE INDEX audit_log_target_idx ON audit_log (target, seq);

-- The chain head: one row, updated in the appending transaction. Its row lock (a write
-- lock on SQLite) serialises appenders; verification also checks the log still reaches it,
-- so deleting the newest records is detected even before a checkpoint covers them.
CREATE TABLE audit_head (
    id BIGINT NOT NULL CONSTRAINT audit_head_pkey PRIMARY KEY CONSTRAINT audit_head_id_check CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed statements "the chain had hash H at seq N" (ed25519), for anchoring outside.
CREATE TABLE audit_checkpoints (
    seq BIGINT NOT NULL CONSTRAINT audit_checkpoints_pkey PRIMARY KEY,
    hash TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    signature TEXT NOT NULL,
    public_key TEXT NOT NULL
);

-- Checkpoint signing keys, the secret encrypted under a data key. `active` is 1 for the
-- one key in use and NULL for retired keys (kept to verify old checkpoints).
CREATE TABLE audit_signing_keys (
    public_key TEXT NOT NULL CONSTRAINT audit_signing_keys_pkey PRIMARY KEY,
    secret_enc {{BLOB}} NOT NULL,
    active BIGINT CONSTRAINT audit_signing_keys_active_key UNIQUE CONSTRAINT audit_signing_keys_active_check CHECK (active = 1),
    created_at_ms BIGINT NOT NULL,
    retired_at_ms BIGINT
);

-- Tamper resistance in the database itself: audit rows and checkpoints cannot be
-- changed or deleted through SQL. (An owner can still drop the triggers; the hash chain
-- and signed checkpoints are what detect that.)
--@sqlite
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
--@end
--@postgres
CREATE FUNCTION zhudai_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION zhudai_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_append_only();
--@end
