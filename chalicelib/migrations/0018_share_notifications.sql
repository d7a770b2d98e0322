-- Share notifications (docs/compliance.md, "Share notifications"): an e-mail to a
-- user a grant gives access to a document, sent by an outbox consumer with a cursor
-- of its own (realtime_cursors row 'notifications', the functions of 0008).
--
-- * notification_settings: per user of an org, the address share e-mails go to (an
--   envelope of domain/pii.py, never the address in clear; NULL: none given) and
--   whether the user wants them (``shares``; false: unsubscribed).  Erasure deletes
--   the row; the subject's export carries it.
-- * notifications_sent: the last share e-mail per document and recipient; the
--   consumer claims a row in the transaction that moves its cursor, so a redelivered
--   batch finds it and sends nothing more within the window (one per hour).
--   Erasure deletes a recipient's rows.
--
-- Both are tenant tables: forced row-level security, the tenant policy, runtime role
-- grants.  Expand-only: new tables only.

CREATE TABLE IF NOT EXISTS notification_settings (
  org         text        NOT NULL,
  user_id     text        NOT NULL,
  email       jsonb,
  shares      boolean     NOT NULL DEFAULT true,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, user_id)
);

CREATE TABLE IF NOT EXISTS notifications_sent (
  org         text        NOT NULL,
  doc_id      text        NOT NULL,
  recipient   text        NOT NULL,
  sent_at     timestamptz NOT NULL,
  PRIMARY KEY (org, doc_id, recipient)
);
-- erasure: a recipient's rows
CREATE INDEX IF NOT EXISTS notifications_sent_recipient ON notifications_sent (org, recipient);

GRANT SELECT, INSERT, UPDATE, DELETE ON notification_settings, notifications_sent TO docs_app;

ALTER TABLE notification_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_settings FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON notification_settings;
CREATE POLICY tenant ON notification_settings TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));

ALTER TABLE notifications_sent ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications_sent FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON notifications_sent;
CREATE POLICY tenant ON notifications_sent TO docs_app
  USING (org = current_setting('app.org', true)) WITH CHECK (org = current_setting('app.org', true));
