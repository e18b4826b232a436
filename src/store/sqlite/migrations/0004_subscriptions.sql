-- Calanque SQLite schema, version 4: subscriptions and the notification outbox.
CREATE TABLE subscriptions (
    tenant            TEXT NOT NULL,
    id                TEXT NOT NULL,
    doc               TEXT NOT NULL,
    times_sent        INTEGER NOT NULL DEFAULT 0,
    times_failed      INTEGER NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success      TEXT,
    last_failure      TEXT,
    dropped           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);

-- Notifications of acknowledged writes, written in the write's own transaction and
-- removed once delivered (or abandoned).
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    lease_until_ms  INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
-- The worker scans in seq order (rowid) and stops after a batch: no index on the
-- due time, which would make every claim sort the whole queue.
CREATE INDEX outbox_order ON outbox (tenant, subscription_id, entity_id, seq);
