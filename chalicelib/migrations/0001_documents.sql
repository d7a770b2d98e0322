-- Documents, every version, the outbox (search sync + changes feed) and the audit log.
-- Row-level security by org is the backstop: the app runs each transaction as
-- role docs_app with app.org set (set_config(..., true) = SET LOCAL).

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'docs_app') THEN
    CREATE ROLE docs_app NOLOGIN;
  END IF;
END $$;

DO $$
BEGIN
  -- the connecting user must be able to switch to docs_app inside a transaction
  EXECUTE format('GRANT docs_app TO %I', current_user);
EXCEPTION WHEN others THEN NULL;  -- superusers need no grant; re-grants are harmless
END $$;

CREATE TABLE IF NOT EXISTS documents (
  org         text        NOT NULL,
  id          text        NOT NULL,
  title       text        NOT NULL,
  body        jsonb       NOT NULL DEFAULT 'null'::jsonb,
  tags        text[]      NOT NULL DEFAULT '{}',
  metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
  version     bigint      NOT NULL CHECK (version >= 1),
  owner       text        NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  deleted_at  timestamptz,
  content     jsonb,
  PRIMARY KEY (org, id)
);
CREATE INDEX IF NOT EXISTS documents_live_newest
  ON documents (org, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS documents_tags ON documents USING gin (tags);

CREATE TABLE IF NOT EXISTS document_versions (
  org         text        NOT NULL,
  id          text        NOT NULL,
  version     bigint      NOT NULL,
  title       text        NOT NULL,
  body        jsonb       NOT NULL,
  tags        text[]      NOT NULL,
  metadata    jsonb       NOT NULL,
  content     jsonb,
  deleted     boolean     NOT NULL DEFAULT false,
  author      text        NOT NULL,
  action      text        NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (org, id, version)
);

-- One row per committed change.  seq orders the stream; txid lets readers of
-- the feed skip past rows only once every older transaction has finished
-- (sequence values are handed out before commit, so they commit out of order).
CREATE TABLE IF NOT EXISTS outbox (
  seq             bigserial   PRIMARY KEY,
  txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
  org             text        NOT NULL,
  doc_id          text        NOT NULL,
  version         bigint      NOT NULL,
  op              text        NOT NULL CHECK (op IN ('upsert', 'delete', 'purge')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  processed_at    timestamptz,
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (next_attempt_at, seq) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_org_seq ON outbox (org, seq);

CREATE TABLE IF NOT EXISTS audit_log (
  id          bigserial   PRIMARY KEY,
  org         text        NOT NULL,
  actor       text        NOT NULL,
  action      text        NOT NULL,
  doc_id      text,
  version     bigint,
  request_id  text,
  at          timestamptz NOT NULL DEFAULT now(),
  details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_org_at ON audit_log (org, at);

-- append-only: no role may rewrite history
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
DROP TRIGGER IF EXISTS audit_log_no_rewrite ON audit_log;
CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

GRANT SELECT, INSERT, UPDATE ON documents, document_versions TO docs_app;
GRANT SELECT, INSERT, UPDATE ON outbox TO docs_app;
GRANT SELECT, INSERT ON audit_log TO docs_app;
GRANT USAGE ON SEQUENCE outbox_seq_seq, audit_log_id_seq TO docs_app;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant ON documents;
CREATE POLICY tenant ON documents TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
DROP POLICY IF EXISTS tenant ON document_versions;
CREATE POLICY tenant ON document_versions TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
DROP POLICY IF EXISTS tenant ON outbox;
CREATE POLICY tenant ON outbox TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
DROP POLICY IF EXISTS tenant ON audit_log;
CREATE POLICY tenant ON audit_log TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
