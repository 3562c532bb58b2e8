-- The audit log, alerts with their webhook outbox, and hourly API usage per client.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    success    INTEGER NOT NULL,
    client_id  TEXT,
    user_id    TEXT,
    ip         TEXT,
    user_agent TEXT,
    scope      TEXT,
    error      TEXT,
    session    TEXT,
    detail     TEXT
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_client ON audit_log (client_id, id);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE INDEX audit_log_ip ON audit_log (ip, id);
CREATE INDEX audit_log_kind ON audit_log (kind, id);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    alert           TEXT NOT NULL,
    delivered_at    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
) STRICT;

CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE usage_hourly (
    client_id TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (client_id, hour)
) STRICT;
