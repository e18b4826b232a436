-- Calanque PostgreSQL schema, version 2: staged restores and the record of entity
-- renames (SQLite schema 6).

-- A restore in progress: items are staged here as they are read, then applied in one
-- transaction (or dropped) at the end, so a bad dump leaves nothing half-imported.
-- Keyed by session, so brokers sharing the database may each run their own.
CREATE TABLE restore_staging (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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

-- Dumps page by id in bytewise order (as SQLite compares text): these keep each page
-- a range scan instead of a sort of the whole tenant.
CREATE INDEX entities_tenant_id_c ON entities (tenant, id COLLATE "C");
CREATE INDEX temporal_entities_tenant_id_c ON temporal_entities (tenant, id COLLATE "C");
