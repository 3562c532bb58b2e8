-- Refresh-token families, revocation cutoffs, and the introspection permission.

ALTER TABLE clients ADD COLUMN introspection INTEGER NOT NULL DEFAULT 0 CHECK (introspection IN (0, 1));

CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash BLOB PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    state      TEXT NOT NULL CHECK (state IN ('active', 'rotated', 'revoked')),
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
) STRICT;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Access tokens issued in a family, so that revoking the family revokes them too.
CREATE TABLE family_access_tokens (
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (family_id, jti)
) STRICT;

-- "Everything issued to this client (or user) before `cutoff` is revoked": how an
-- operator cuts off stateless access tokens without knowing their ids.
CREATE TABLE revocation_cutoffs (
    kind    TEXT NOT NULL CHECK (kind IN ('client', 'subject')),
    subject TEXT NOT NULL,
    cutoff  INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) STRICT;
