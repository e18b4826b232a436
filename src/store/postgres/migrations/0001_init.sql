-- Calanque PostgreSQL schema, version 1: everything the SQLite schema 1-5 holds.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- One row per entity. `doc` is the entity in stored form, kept as `json` so that the
-- attribute order and member order read back exactly as written; `attrs` is the same
-- attributes as `jsonb` (computed by PostgreSQL) for q and attrs selections. `seq`
-- orders query results in creation order, as SQLite's rowid does.
CREATE TABLE entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    doc         JSON NOT NULL,
    types       TEXT[] NOT NULL,
    attrs       JSONB GENERATED ALWAYS AS (COALESCE((doc::jsonb) -> 'attrs', '{}'::jsonb)) STORED,
    scope       JSONB,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at  TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX entities_seq ON entities (seq);
CREATE INDEX entities_tenant_seq ON entities (tenant, seq);
-- `types && ARRAY[...]` / `types @> ARRAY[...]` and `attrs ? name` use these.
CREATE INDEX entities_types ON entities USING GIN (types);
CREATE INDEX entities_attrs ON entities USING GIN (attrs);

-- GeoProperty values, one row per instance, for geo-queries with PostGIS.
CREATE TABLE entity_geo (
    entity BIGINT NOT NULL,
    attr   TEXT NOT NULL,
    geom   geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX entity_geo_entity ON entity_geo (entity);
CREATE INDEX entity_geo_geom ON entity_geo USING GIST (geom);

-- The scalar values of an attribute's instances that q compares (each element of an
-- array value): numbers in `num`, strings in `txt`. The same rule as SQLite's
-- `attr_values` index, so both backends decide the same terms exactly.
CREATE FUNCTION calanque_scalars(instances jsonb)
RETURNS TABLE (num double precision, txt text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::double precision END,
           CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' END
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(instances) = 'array' THEN instances ELSE '[]'::jsonb END) i,
         LATERAL (SELECT CASE COALESCE(i ->> 'type', 'Property')
                           WHEN 'Property' THEN i -> 'value'
                           WHEN 'Relationship' THEN i -> 'object'
                           WHEN 'VocabProperty' THEN i -> 'vocab'
                         END AS m) member,
         LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(member.m) = 'array' THEN member.m
                                           ELSE jsonb_build_array(member.m) END) v
    WHERE jsonb_typeof(v) IN ('number', 'string')
$$;

-- A GeoJSON geometry for the geo index, NULL (not an error) if PostGIS cannot read it.
CREATE FUNCTION calanque_geometry(geojson text) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN ST_SetSRID(ST_GeomFromGeoJSON(geojson), 4326);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Takes the transaction-scoped advisory locks of the entities a write touches, in the
-- order given (callers sort the keys: two writes never wait on each other in a cycle).
CREATE FUNCTION calanque_lock(keys bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k bigint;
BEGIN
    FOREACH k IN ARRAY keys LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
END
$$;

CREATE TABLE contexts (
    url        TEXT PRIMARY KEY,
    local_id   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tenant     TEXT
);

-- Attribute history: the temporal representation of entities (kept after deletion).
CREATE TABLE temporal_entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    types       JSONB NOT NULL,
    scope       TEXT,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (tenant, id)
);

-- One series per (entity, attribute, datasetId).
CREATE TABLE temporal_series (
    series     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    attr       TEXT NOT NULL,
    dataset_id TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant, entity_id, attr, dataset_id)
);

-- One row per attribute instance; times in microseconds since the epoch. A plain
-- floating-point Property keeps only `num` (`doc` NULL).
CREATE TABLE attr_instances (
    instance    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series      BIGINT NOT NULL,
    observed_us BIGINT,
    created_us  BIGINT NOT NULL,
    modified_us BIGINT NOT NULL,
    deleted_us  BIGINT,
    num         DOUBLE PRECISION,
    doc         TEXT
);
CREATE INDEX attr_instances_observed ON attr_instances (series, observed_us);
CREATE INDEX attr_instances_modified ON attr_instances (series, modified_us);
-- Years of data arrive roughly in time order: a BRIN index keeps time-range scans
-- over the whole table cheap at a negligible size.
CREATE INDEX attr_instances_modified_brin ON attr_instances USING BRIN (modified_us);

CREATE TABLE subscriptions (
    tenant            TEXT NOT NULL,
    id                TEXT NOT NULL,
    doc               TEXT NOT NULL,
    times_sent        BIGINT NOT NULL DEFAULT 0,
    times_failed      BIGINT NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success      TEXT,
    last_failure      TEXT,
    dropped           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);

-- Notifications of acknowledged writes, written in the write's own transaction.
-- `lease_owner` names the broker process holding the lease (its connections carry
-- the same application_name), so a restarted broker can release the leases of dead
-- brokers without stealing those of live ones.
CREATE TABLE outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_order ON outbox (tenant, subscription_id, entity_id, seq);
