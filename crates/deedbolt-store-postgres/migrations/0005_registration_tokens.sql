-- Initial access tokens of dynamic client registration (RFC 7591 §3), issued by
-- `deedbolt client registration-token create`. Only the keyed hash of a token is stored.
CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    -- HMAC-SHA-256 of the token under the server pepper; never the token itself.
    token_hash  BYTEA NOT NULL UNIQUE,
    -- The most a registered client may get (canonical scope string); NULL: the server's
    -- open-registration scope set.
    scopes      TEXT,
    -- NULL: any number of registrations until the token expires.
    max_uses    BIGINT CHECK (max_uses IS NULL OR max_uses > 0),
    uses        BIGINT NOT NULL DEFAULT 0 CHECK (uses >= 0),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
