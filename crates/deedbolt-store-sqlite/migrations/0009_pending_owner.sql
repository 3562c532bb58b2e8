-- Who started each pending authorization request (the client IP), so that the rows one
-- requester can hold are bounded: an anonymous flood of /authorize replaces its own oldest
-- pending requests instead of growing the table.
ALTER TABLE pending_authorizations ADD COLUMN owner TEXT NOT NULL DEFAULT '';

CREATE INDEX pending_authorizations_owner ON pending_authorizations (owner);
