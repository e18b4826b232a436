-- Calanque SQLite schema, version 7: history read straight from its index.

-- Aggregates and time windows read (series, time, deleted, number) in time order from
-- the index alone, without visiting the table row of every instance.
DROP INDEX attr_instances_observed;
CREATE INDEX attr_instances_observed ON attr_instances (series, observed_us, deleted_us, num);

-- Written for every instance but read only by queries on timeproperty=modifiedAt,
-- which now scan the series' range of the index above: one index less per instance.
DROP INDEX attr_instances_modified;

-- A reading with a unit code (`{"type":"Property","value":21.5,"observedAt":…,
-- "unitCode":"CEL"}`) is stored as its number and unit instead of ~80 bytes of JSON.
ALTER TABLE attr_instances ADD COLUMN unit TEXT;
