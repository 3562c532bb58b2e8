-- DPoP (RFC 9449 §5): a public client's refresh-token family is bound to the key
-- thumbprint (RFC 7638, base64url SHA-256) of the DPoP proof it was issued with; every
-- refresh must be proven with that key. NULL: not bound (confidential clients are bound
-- by their client authentication).
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
