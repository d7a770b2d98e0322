-- Version floors (docs/compliance.md, "Retention and purge"): an id reused after
-- its purge keeps counting versions above its purged life.
--
-- The purge removes every row of a document but the search index keeps its
-- delete, at an external version above the last one the document had (the
-- purge's version).  A new document at the same id used to start again at
-- version 1, below that delete, so the index refused its writes as stale and
-- search never found it.  The purge transaction now records its version here,
-- and a create starts the id at floor + 1 (adapters/postgres/documents.py,
-- ``insert``), so every write of the new life is newer than anything the index
-- or the cache ever held for the id.
--
-- Tenant data (one row per purged (org, id), nothing else: no title, no
-- content), under the same row-level security as every tenant table.  The
-- runtime never deletes a floor: it only grows.  Expand-only: one new table.

CREATE TABLE IF NOT EXISTS document_version_floors (
  org      text        NOT NULL,
  doc_id   text        NOT NULL,
  version  bigint      NOT NULL CHECK (version > 0),  -- the purge's version: the next life starts above
  set_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, doc_id)
);

GRANT SELECT, INSERT, UPDATE ON document_version_floors TO docs_app;
ALTER TABLE document_version_floors ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_version_floors FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON document_version_floors;
CREATE POLICY tenant ON document_version_floors TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
