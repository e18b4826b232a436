-- Calanque SQLite schema, version 1.
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- One row per entity; `doc` is the entity in stored form (JSON), the other columns are
-- what queries filter on.
CREATE TABLE entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at  TEXT,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE entity_types (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;
CREATE INDEX entity_types_by_entity ON entity_types (tenant, id);

CREATE TABLE entity_attrs (
    tenant TEXT NOT NULL,
    attr   TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, attr, id)
) WITHOUT ROWID;
CREATE INDEX entity_attrs_by_entity ON entity_attrs (tenant, id);

CREATE TABLE contexts (
    url        TEXT PRIMARY KEY,
    local_id   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
