-- Change counters let in-process caches notice changes made by other processes (the CLI,
-- other instances) with one cheap periodic read instead of a query per request.

CREATE TABLE change_counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;

INSERT INTO change_counters (name, value) VALUES ('clients', 0);

-- Inserts need no signal: caches never remember a client that did not exist.
CREATE TRIGGER clients_changed_on_update AFTER UPDATE ON clients
BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'clients';
END;

CREATE TRIGGER clients_changed_on_delete AFTER DELETE ON clients
BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'clients';
END;
