-- Calanque SQLite schema, version 2: indexes that let q and geoQ run in SQL.

-- One row per scalar value of an attribute instance (each element for arrays): numbers
-- in `num`, strings and relationship objects in `txt`.
CREATE TABLE attr_values (
    tenant TEXT NOT NULL,
    id     TEXT NOT NULL,
    attr   TEXT NOT NULL,
    num    REAL,
    txt    TEXT
);
CREATE INDEX attr_values_num ON attr_values (tenant, attr, num) WHERE num IS NOT NULL;
CREATE INDEX attr_values_txt ON attr_values (tenant, attr, txt) WHERE txt IS NOT NULL;
CREATE INDEX attr_values_entity ON attr_values (tenant, id, attr);

-- Bounding boxes of GeoProperty values, for an R*Tree prefilter of geo-queries.
CREATE VIRTUAL TABLE geo_index USING rtree(rid, min_x, max_x, min_y, max_y);
CREATE TABLE geo_rows (
    rid    INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id     TEXT NOT NULL,
    attr   TEXT NOT NULL
);
CREATE INDEX geo_rows_entity ON geo_rows (tenant, id, attr);
CREATE INDEX geo_rows_attr ON geo_rows (tenant, attr);
