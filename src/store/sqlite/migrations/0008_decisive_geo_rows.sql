-- Calanque SQLite schema, version 8: geo rows that decide a `near` query alone.

-- True on the rows of an attribute whose every instance has a box and none expires:
-- those boxes stand for the whole attribute, so a `near` query decided on them need
-- not read the entity's document. Written with the rows; computed here for rows
-- already stored (names a JSON path cannot hold stay 0: their documents decide).
ALTER TABLE geo_rows ADD COLUMN decisive INTEGER NOT NULL DEFAULT 0;
UPDATE geo_rows SET decisive = COALESCE((
    SELECT instr(json_extract(e.doc, '$.attrs."' || n.name || '"'), '"expiresAt"') = 0
       AND json_array_length(e.doc, '$.attrs."' || n.name || '"') =
           (SELECT COUNT(*) FROM geo_rows c WHERE c.entity = geo_rows.entity AND c.attr = geo_rows.attr)
    FROM entities e JOIN names n ON n.id = geo_rows.attr
    WHERE e.rowid = geo_rows.entity AND instr(n.name, '"') = 0 AND instr(n.name, '\') = 0
), 0);
