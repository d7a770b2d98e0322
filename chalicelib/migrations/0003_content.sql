-- Large content: the uploads the service issued, and the text extracted from
-- each processed object (what the search sync indexes with that version).

CREATE TABLE IF NOT EXISTS content_uploads (
  org             text        NOT NULL,
  upload_id       text        NOT NULL,
  doc_id          text        NOT NULL,
  key             text        NOT NULL,
  content_type    text        NOT NULL,
  sha256          text,                    -- declared by the client (hex), checked by the processor
  size            bigint,                  -- declared by the client
  filename        text,
  max_bytes       bigint      NOT NULL,
  actor           text        NOT NULL,
  request_id      text,
  created_at      timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  status          text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'ready', 'rejected', 'superseded', 'orphaned')),
  object_version  text,                    -- S3 version id of the processed bytes
  object_etag     text,
  result          jsonb,
  processed_at    timestamptz,
  PRIMARY KEY (org, upload_id)
);
CREATE INDEX IF NOT EXISTS content_uploads_doc ON content_uploads (org, doc_id, created_at DESC);

-- One row per document version whose content was processed.  The search sync
-- reads the newest row at or below the version it indexes.
CREATE TABLE IF NOT EXISTS document_content_text (
  org         text        NOT NULL,
  doc_id      text        NOT NULL,
  version     bigint      NOT NULL,
  upload_id   text        NOT NULL,
  text        text        NOT NULL,
  truncated   boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, doc_id, version)
);

GRANT SELECT, INSERT, UPDATE ON content_uploads TO docs_app;
GRANT SELECT, INSERT ON document_content_text TO docs_app;

ALTER TABLE content_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_content_text ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant ON content_uploads;
CREATE POLICY tenant ON content_uploads TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
DROP POLICY IF EXISTS tenant ON document_content_text;
CREATE POLICY tenant ON document_content_text TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
