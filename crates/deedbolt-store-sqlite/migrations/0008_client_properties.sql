-- The properties a machine client's own tokens are limited to: space-separated ids, or
-- NULL for the whole portfolio (within its scopes).
ALTER TABLE clients ADD COLUMN properties TEXT;
