-- The privileged scopes each client has used, so that "first use of a privileged scope"
-- alerts survive restarts instead of firing again.
CREATE TABLE privileged_scopes_seen (
    client_id TEXT PRIMARY KEY NOT NULL,
    scopes    TEXT NOT NULL
) STRICT;
