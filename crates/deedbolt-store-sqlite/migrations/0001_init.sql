-- deedbolt's embedded schema, version 1.

CREATE TABLE clients (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    -- HMAC-SHA-256 of the secret under the server pepper; never the secret itself.
    secret_hash BLOB,
    -- Space-separated grant types and scopes, in their wire spelling.
    grant_types TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    -- PKCS#8 private key: AES-256-GCM sealed when sealed = 1, plain in development mode.
    private_key BLOB NOT NULL,
    sealed      INTEGER NOT NULL CHECK (sealed IN (0, 1)),
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    -- 1 for the one key that signs; NULL for retired keys.
    is_current  INTEGER CHECK (is_current = 1)
) STRICT;

-- At most one current signing key, enforced by the database.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (is_current);

CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY NOT NULL,
    value  BLOB NOT NULL,
    sealed INTEGER NOT NULL CHECK (sealed IN (0, 1))
) STRICT;

CREATE TABLE properties (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    units      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
) STRICT;
