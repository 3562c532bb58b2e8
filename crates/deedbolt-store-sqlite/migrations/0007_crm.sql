-- The PropTech CRM: managers of properties, tenants, the ledger, maintenance requests.

ALTER TABLE properties ADD COLUMN manager_id TEXT;
CREATE INDEX properties_manager ON properties (manager_id, id);

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    email       TEXT,
    phone       TEXT,
    -- The tenant's user account; one tenant record per user.
    user_id     TEXT UNIQUE,
    property_id INTEGER NOT NULL REFERENCES properties (id),
    unit        TEXT NOT NULL,
    -- Money is integer minor units, never floating point.
    rent_minor  INTEGER NOT NULL CHECK (rent_minor > 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    lease_start TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX tenants_property ON tenants (property_id, id);

CREATE TABLE ledger_entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id),
    kind         TEXT NOT NULL CHECK (kind IN ('charge', 'payment', 'credit')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    description  TEXT NOT NULL,
    effective_on TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_tenant ON ledger_entries (tenant_id, id);

-- The ledger is append-only: corrections are new entries.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

CREATE TABLE maintenance_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    property_id INTEGER NOT NULL REFERENCES properties (id),
    unit        TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    -- Priority rank: 0 low, 1 normal, 2 high, 3 urgent (sorts by urgency).
    priority    INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    status      TEXT NOT NULL,
    assignee    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
) STRICT;
CREATE INDEX maintenance_tenant ON maintenance_requests (tenant_id, id);
CREATE INDEX maintenance_property ON maintenance_requests (property_id, id);
