-- Registration metadata beyond the core columns (token_endpoint_auth_method, keys,
-- sender-constraint and PAR requirements, informational URIs: RFC 7591 §2, RFC 8705,
-- RFC 9126, RFC 9449) as one JSON document, and the keyed hash of the RFC 7592
-- registration access token of clients that registered themselves.
ALTER TABLE clients ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;
