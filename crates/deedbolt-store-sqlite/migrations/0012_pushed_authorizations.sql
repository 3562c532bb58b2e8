-- Pushed authorization requests (RFC 9126): a validated authorization request waits here,
-- for at most a minute, for the browser to bring its request_uri to /authorize. Keyed by
-- the SHA-256 of the request_uri (the reference itself is never stored); taken once, and
-- only by the client that pushed it; gone with its client.
CREATE TABLE pushed_authorizations (
    key_hash   BLOB PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX pushed_authorizations_expiry ON pushed_authorizations (expires_at);
CREATE INDEX pushed_authorizations_client ON pushed_authorizations (client_id);
