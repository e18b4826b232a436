-- Calanque SQLite schema, version 6: staged restores and the record of entity renames.

-- A restore in progress: items are staged here as they are read, then applied in one
-- transaction (or dropped) at the end, so a bad dump leaves nothing half-imported.
CREATE TABLE restore_staging (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    item    TEXT NOT NULL
);
CREATE INDEX restore_staging_session ON restore_staging (session, seq);

-- Entities moved to a new id (`calanque rename`), kept for the record and the dump.
CREATE TABLE renames (
    tenant     TEXT NOT NULL,
    old_id     TEXT NOT NULL,
    new_id     TEXT NOT NULL,
    renamed_at TEXT NOT NULL,
    rewritten  TEXT NOT NULL,
    PRIMARY KEY (tenant, old_id, new_id, renamed_at)
);
