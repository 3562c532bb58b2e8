-- One current signing key per algorithm instead of one overall: access tokens are signed
-- with the configured algorithm's key, ID tokens with the algorithm each client registered
-- (id_token_signed_response_alg, RS256 by default as OpenID Connect Core defines it).
DROP INDEX signing_keys_one_current;
-- At most one current signing key per algorithm, enforced by the database (retired keys
-- have is_current NULL, and NULLs never collide).
CREATE UNIQUE INDEX signing_keys_one_current_per_alg ON signing_keys (alg, is_current);

-- The JWS algorithm a client's ID tokens are signed with (OpenID Connect Dynamic Client
-- Registration §2); clients registered before it existed get the specification's default.
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
