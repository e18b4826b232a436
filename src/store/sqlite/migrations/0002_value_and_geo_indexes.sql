-- Calanque SQLite schema, version 2: indexes that let attrs, q and geoQ run in SQL.

-- One presence row per attribute of an entity (num and txt NULL), plus one row per
-- scalar value of its instances (each element for arrays): numbers in `num`, strings
-- and relationship objects in `txt`.
CREATE TABLE attr_values (
    attr   INTEGER NOT NULL,
    entity INTEGER NOT NULL,
    num    REAL,
    txt    TEXT
);
CREATE INDEX attr_values_presence ON attr_values (attr, entity);
CREATE INDEX attr_values_num ON attr_values (attr, num) WHERE num IS NOT NULL;
CREATE INDEX attr_values_txt ON attr_values (attr, txt) WHERE txt IS NOT NULL;
CREATE INDEX attr_values_entity ON attr_values (entity, attr);

-- Bounding boxes of GeoProperty values, for an R*Tree prefilter of geo-queries.
CREATE VIRTUAL TABLE geo_index USING rtree(rid, min_x, max_x, min_y, max_y);
CREATE TABLE geo_rows (
    rid    INTEGER PRIMARY KEY,
    entity INTEGER NOT NULL,
    attr   INTEGER NOT NULL
);
CREATE INDEX geo_rows_entity ON geo_rows (entity, attr);
