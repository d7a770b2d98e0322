-- Document permissions (docs/security.md, "Document permissions").
--
-- * documents.visibility: 'org' (every reader of the org reads it, every writer
--   writes it: the org role decides) or 'private' (only its owner, the org's
--   admins and its grantees; writes need a 'writer' grant, or owner, or admin).
-- * document_grants: per-user grants of one document, inside one org.  A grant
--   only narrows what the org role allows (chalicelib/domain/access.py): a
--   'writer' grant to a user whose token says 'reader' still only reads.
--
-- Reads fetch the grants in the same statement as the document (a subquery on
-- the primary key below); the search sync reads them with the document under
-- the document's org (row-level security applies), so no maintenance function
-- changes: grants are tenant data like the rest.
--
-- Expand-only: a column with a default (old code neither writes nor reads it,
-- and every existing document is 'org', i.e. what it was) and a new table.

ALTER TABLE documents ADD COLUMN IF NOT EXISTS visibility text NOT NULL DEFAULT 'org';
DO $$
BEGIN
  ALTER TABLE documents ADD CONSTRAINT documents_visibility_known
    CHECK (visibility IN ('org', 'private'));
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS document_grants (
  org         text        NOT NULL,
  doc_id      text        NOT NULL,
  grantee     text        NOT NULL,
  role        text        NOT NULL CHECK (role IN ('reader', 'writer')),
  granted_by  text        NOT NULL,
  granted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, doc_id, grantee)
);
-- "what may this user read" (lists, the real-time fan-out): by grantee
CREATE INDEX IF NOT EXISTS document_grants_grantee ON document_grants (org, grantee);

GRANT SELECT, INSERT, UPDATE, DELETE ON document_grants TO docs_app;

ALTER TABLE document_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_grants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON document_grants;
CREATE POLICY tenant ON document_grants TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
