-- deedbolt's PostgreSQL schema: the SQLite schema (crates/deedbolt-store-sqlite/migrations,
-- versions 1 to 9) as it stands, in one migration, written for PostgreSQL. Times are Unix
-- seconds (BIGINT), hashes and key material BYTEA, flags BOOLEAN. `seq` identity columns
-- stand in for SQLite's rowid where insertion order matters.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    name          TEXT NOT NULL,
    -- HMAC-SHA-256 of the secret under the server pepper; never the secret itself.
    secret_hash   BYTEA,
    -- Space-separated grant types, scopes and redirect URIs, in their wire spelling.
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '',
    public        BOOLEAN NOT NULL DEFAULT FALSE,
    introspection BOOLEAN NOT NULL DEFAULT FALSE,
    -- Space-separated property ids a machine client is limited to; NULL for all.
    properties    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Change counters let in-process caches notice changes made by other processes (the CLI,
-- other instances) with one cheap periodic read instead of a query per request.
CREATE TABLE change_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counters (name, value) VALUES ('clients', 0);

CREATE FUNCTION clients_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'clients';
    RETURN NULL;
END $$;

-- Inserts need no signal: caches never remember a client that did not exist.
CREATE TRIGGER clients_changed_on_update AFTER UPDATE ON clients
    FOR EACH ROW EXECUTE FUNCTION clients_changed();
CREATE TRIGGER clients_changed_on_delete AFTER DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION clients_changed();

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    alg         TEXT NOT NULL,
    -- PKCS#8 private key: AES-256-GCM sealed when `sealed`, plain in development mode.
    private_key BYTEA NOT NULL,
    sealed      BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    -- TRUE for the one key that signs; NULL for retired keys.
    is_current  BOOLEAN CHECK (is_current)
);
-- At most one current signing key, enforced by the database.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (is_current);

CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  BYTEA NOT NULL,
    sealed BOOLEAN NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    role          TEXT NOT NULL,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Who started each pending request (the client IP) bounds the rows one requester holds.
CREATE TABLE pending_authorizations (
    id         TEXT PRIMARY KEY,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    request    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    owner      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pending_authorizations_owner ON pending_authorizations (owner, seq);
CREATE INDEX pending_authorizations_expiry ON pending_authorizations (expires_at);

CREATE TABLE sessions (
    -- SHA-256 of the cookie value; the value itself is never stored.
    id_hash    BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    csrf       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE auth_codes (
    -- SHA-256 of the code.
    code_hash   BYTEA PRIMARY KEY,
    grant_json  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    redeemed_at BIGINT,
    replayed    BOOLEAN NOT NULL DEFAULT FALSE,
    access_jti  TEXT,
    access_exp  BIGINT
);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- `seq` is a cursor that instances poll: rows are inserted under a transaction-level
-- advisory lock (see the store), so they commit in `seq` order and no poller skips one.
CREATE TABLE revoked_tokens (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jti        TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash BYTEA PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    state      TEXT NOT NULL CHECK (state IN ('active', 'rotated', 'revoked')),
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Access tokens issued in a family, so that revoking the family revokes them too.
CREATE TABLE family_access_tokens (
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (family_id, jti)
);
CREATE INDEX family_access_tokens_jti ON family_access_tokens (jti);

-- "Everything issued to this client (or user) before `cutoff` is revoked".
CREATE TABLE revocation_cutoffs (
    kind    TEXT NOT NULL CHECK (kind IN ('client', 'subject')),
    subject TEXT NOT NULL,
    cutoff  BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    success    BOOLEAN NOT NULL,
    client_id  TEXT,
    user_id    TEXT,
    ip         TEXT,
    user_agent TEXT,
    scope      TEXT,
    error      TEXT,
    session    TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_client ON audit_log (client_id, id);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE INDEX audit_log_ip ON audit_log (ip, id);
CREATE INDEX audit_log_kind ON audit_log (kind, id);

CREATE TABLE alerts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT NOT NULL,
    alert           JSONB NOT NULL,
    delivered_at    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL
);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE usage_hourly (
    client_id TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (client_id, hour)
);

-- The privileged scopes each client has used, so "first use" alerts survive restarts.
CREATE TABLE privileged_scopes_seen (
    client_id TEXT PRIMARY KEY,
    scopes    TEXT NOT NULL
);

-- The PropTech CRM.
CREATE TABLE properties (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Byte order ("C"), as in SQLite, so sorted pages are the same on both backends.
    name       TEXT COLLATE "C" NOT NULL,
    address    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    units      BIGINT NOT NULL,
    manager_id TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX properties_manager ON properties (manager_id, id);

CREATE TABLE tenants (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    email       TEXT,
    phone       TEXT,
    -- The tenant's user account; one tenant record per user.
    user_id     TEXT UNIQUE,
    property_id BIGINT NOT NULL REFERENCES properties (id),
    unit        TEXT NOT NULL,
    -- Money is integer minor units, never floating point.
    rent_minor  BIGINT NOT NULL CHECK (rent_minor > 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    -- ISO dates (YYYY-MM-DD) as text: they compare and sort as dates.
    lease_start TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX tenants_property ON tenants (property_id, id);

CREATE TABLE ledger_entries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    BIGINT NOT NULL REFERENCES tenants (id),
    kind         TEXT NOT NULL CHECK (kind IN ('charge', 'payment', 'credit')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    description  TEXT NOT NULL,
    effective_on TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX ledger_tenant ON ledger_entries (tenant_id, id);

-- The ledger is append-only: corrections are new entries.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END $$;
CREATE TRIGGER ledger_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE maintenance_requests (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    property_id BIGINT NOT NULL REFERENCES properties (id),
    unit        TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    -- Priority rank: 0 low, 1 normal, 2 high, 3 urgent (sorts by urgency).
    priority    BIGINT NOT NULL CHECK (priority BETWEEN 0 AND 3),
    status      TEXT NOT NULL,
    assignee    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX maintenance_tenant ON maintenance_requests (tenant_id, id);
CREATE INDEX maintenance_property ON maintenance_requests (property_id, id);
