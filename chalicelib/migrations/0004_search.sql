-- Search sync: the outbox is the stream (see chalicelib/service_layer/search.py).
--
-- * outbox_feed: the changes feed reads an org's rows in (txid, seq) order.
-- * outbox_notify: wakes the local consumer (LISTEN docs_outbox) at commit,
--   only in transactions that ask for it with set_config('docs.notify', 'on',
--   true) -- in AWS nobody listens, so nobody pays NOTIFY's commit-time lock.
-- * search_dead_letters: rows that failed N times, with the reason.
-- * search_indexes: indexes being built by a reindex (the consumer writes to
--   them as well as to the alias) and retired ones waiting to be dropped.

CREATE INDEX IF NOT EXISTS outbox_feed ON outbox (org, txid, seq);

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('docs.notify', true) = 'on' THEN
    PERFORM pg_notify('docs_outbox', '');
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE IF NOT EXISTS search_dead_letters (
  seq         bigint      PRIMARY KEY,  -- the outbox row
  org         text        NOT NULL,
  doc_id      text        NOT NULL,
  version     bigint      NOT NULL,
  op          text        NOT NULL,
  attempts    integer     NOT NULL,
  reason      text        NOT NULL,
  failed_at   timestamptz NOT NULL DEFAULT now(),
  requeued_at timestamptz
);
CREATE INDEX IF NOT EXISTS search_dead_letters_org ON search_dead_letters (org, failed_at);

CREATE TABLE IF NOT EXISTS search_indexes (
  name        text        PRIMARY KEY,
  alias       text        NOT NULL,
  state       text        NOT NULL CHECK (state IN ('building', 'retired')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- every transaction that commits after the index was registered has a txid
  -- at or above this one: the reindex catch-up re-syncs their documents
  from_txid   xid8        NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot()),
  drop_after  timestamptz
);

GRANT SELECT ON search_dead_letters, search_indexes TO docs_app;

ALTER TABLE search_dead_letters ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON search_dead_letters;
CREATE POLICY tenant ON search_dead_letters TO docs_app
  USING (org = current_setting('app.org', true));
