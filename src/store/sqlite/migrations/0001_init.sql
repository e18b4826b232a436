-- Calanque SQLite schema, version 1.
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- Expanded type and attribute names, each stored once; indexes refer to them by id.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per entity; `doc` is the entity in stored form (JSON). The rowid is the
-- entity's key in every index table (small integers instead of repeated URIs).
CREATE TABLE entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at  TEXT,
    UNIQUE (tenant, id)
);

CREATE TABLE entity_types (
    type   INTEGER NOT NULL,
    entity INTEGER NOT NULL,
    PRIMARY KEY (type, entity)
) WITHOUT ROWID;
CREATE INDEX entity_types_by_entity ON entity_types (entity);

CREATE TABLE contexts (
    url        TEXT PRIMARY KEY,
    local_id   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
