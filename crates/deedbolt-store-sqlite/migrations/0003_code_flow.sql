-- The authorization-code flow: users, sessions, consents, codes, revoked tokens.

-- Space-separated redirect URIs (a URI cannot contain a space); 1 for public clients.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1));

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    role          TEXT NOT NULL,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE pending_authorizations (
    id         TEXT PRIMARY KEY NOT NULL,
    request    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    -- SHA-256 of the cookie value; the value itself is never stored.
    id_hash    BLOB PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    csrf       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;

CREATE TABLE auth_codes (
    -- SHA-256 of the code.
    code_hash   BLOB PRIMARY KEY NOT NULL,
    grant_json  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER,
    replayed    INTEGER NOT NULL DEFAULT 0,
    access_jti  TEXT,
    access_exp  INTEGER
) STRICT;

CREATE TABLE revoked_tokens (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
