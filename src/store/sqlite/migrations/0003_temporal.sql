-- Calanque SQLite schema, version 3: attribute history.

-- The temporal representation of an entity (kept after the entity is deleted).
CREATE TABLE temporal_entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    types       TEXT NOT NULL,
    scope       TEXT,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (tenant, id)
);

-- One series per (entity, attribute, datasetId): instances refer to it by a small key,
-- so the names are not repeated on every instance.
CREATE TABLE temporal_series (
    series     INTEGER PRIMARY KEY,
    tenant     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    attr       TEXT NOT NULL,
    dataset_id TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant, entity_id, attr, dataset_id)
);

-- One row per attribute instance. Times are microseconds since the epoch. A plain
-- numeric Property keeps only `num` (and `doc` is NULL): that is most sensor data.
CREATE TABLE attr_instances (
    instance    INTEGER PRIMARY KEY,
    series      INTEGER NOT NULL,
    observed_us INTEGER,
    created_us  INTEGER NOT NULL,
    modified_us INTEGER NOT NULL,
    deleted_us  INTEGER,
    num         REAL,
    doc         TEXT
);
CREATE INDEX attr_instances_observed ON attr_instances (series, observed_us);
CREATE INDEX attr_instances_modified ON attr_instances (series, modified_us);
