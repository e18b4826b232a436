-- Calanque SQLite schema, version 9: value rows stored in entity order.

-- The value index had four b-trees per row (the table, a presence index, an index by
-- entity and the num or txt index), each written on every create. Keyed by
-- (entity, attr, seq) the table itself is the index by entity, and a third partial
-- index (rows with neither a number nor a text) takes the place of the presence
-- index: existence of an attribute is a row in one of the three. Each row is now
-- written to two b-trees. `seq` numbers the rows of one (entity, attr).
CREATE TABLE attr_values_by_entity (
    entity INTEGER NOT NULL,
    attr   INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    num    REAL,
    txt    TEXT,
    PRIMARY KEY (entity, attr, seq)
) WITHOUT ROWID;

INSERT INTO attr_values_by_entity (entity, attr, seq, num, txt)
SELECT entity, attr, ROW_NUMBER() OVER (PARTITION BY entity, attr ORDER BY rowid) - 1, num, txt
FROM attr_values;

DROP TABLE attr_values;
ALTER TABLE attr_values_by_entity RENAME TO attr_values;

CREATE INDEX attr_values_num ON attr_values (attr, num) WHERE num IS NOT NULL;
CREATE INDEX attr_values_txt ON attr_values (attr, txt) WHERE txt IS NOT NULL;
-- num and txt are always NULL here; listed so that the index covers an existence scan.
CREATE INDEX attr_values_bare ON attr_values (attr, num, txt) WHERE num IS NULL AND txt IS NULL;
