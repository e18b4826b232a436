-- Calanque SQLite schema, version 5: hosted @contexts belong to the tenant that
-- added them (NULL: shared by every tenant, as cached contexts are).
ALTER TABLE contexts ADD COLUMN tenant TEXT;
