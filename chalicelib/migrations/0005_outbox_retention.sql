-- Outbox retention: processed rows older than DOCS_OUTBOX_RETENTION_DAYS are
-- pruned (by the sweep).  The feed position up to which rows may be missing is
-- kept here, so a changes-feed cursor older than it gets 410 Gone instead of a
-- silently incomplete feed.
CREATE TABLE IF NOT EXISTS outbox_pruned (
  id       integer     PRIMARY KEY CHECK (id = 1),
  txid     xid8        NOT NULL,
  seq      bigint      NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON outbox_pruned TO docs_app;
GRANT DELETE ON outbox TO docs_app;
