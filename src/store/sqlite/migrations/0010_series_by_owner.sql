-- Calanque SQLite schema, version 10: history series keyed by small integers.

-- A series was keyed by (tenant, entity id, expanded attribute name, datasetId) as
-- text, stored in the table and again in its unique index: ~200 bytes per series and
-- one series per attribute of every entity (about 2 GB of a million-entity store),
-- written at random places of the index on every create. It is now keyed by
-- (owner, attr, dataset): the rowid of its temporal entity and the interned names of
-- the attribute and datasetId (0 for the default instance). Series ids are kept, so
-- the instances are untouched. Rows of `temporal_entities` are never deleted while
-- their series exist and the database is never vacuumed, so their rowids are stable.

INSERT OR IGNORE INTO names (name) SELECT attr FROM temporal_series;
INSERT OR IGNORE INTO names (name) SELECT dataset_id FROM temporal_series WHERE dataset_id <> '';

-- History without a temporal entity row (no write path stores it that way, but an old
-- store might hold some) gets one, so that no instance is lost.
INSERT OR IGNORE INTO temporal_entities (tenant, id, types, created_at, modified_at)
SELECT tenant, entity_id, '[]', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM temporal_series GROUP BY tenant, entity_id;

CREATE TABLE temporal_series_by_owner (
    series  INTEGER PRIMARY KEY,
    owner   INTEGER NOT NULL,
    attr    INTEGER NOT NULL,
    dataset INTEGER NOT NULL,
    UNIQUE (owner, attr, dataset)
);

INSERT INTO temporal_series_by_owner (series, owner, attr, dataset)
SELECT s.series, t.rowid, a.id, COALESCE(d.id, 0)
FROM temporal_series s
JOIN temporal_entities t ON t.tenant = s.tenant AND t.id = s.entity_id
JOIN names a ON a.name = s.attr
LEFT JOIN names d ON d.name = s.dataset_id AND s.dataset_id <> '';

DROP TABLE temporal_series;
ALTER TABLE temporal_series_by_owner RENAME TO temporal_series;
