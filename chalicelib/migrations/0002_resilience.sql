-- Resilience: idempotency records (fallback store when Redis is down) and the
-- cache repair queue (documents written while the cache could not be fenced).

CREATE TABLE IF NOT EXISTS idempotency_keys (
  key                 text        PRIMARY KEY,
  status              text        NOT NULL,
  expiry              bigint      NOT NULL,  -- epoch seconds
  in_progress_expiry  bigint,                -- epoch milliseconds
  validation          text,
  data                text,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expiry);

-- A write whose pre-commit cache fence failed records its document here in the
-- same transaction; whoever next reaches Redis fences those keys and clears them.
CREATE TABLE IF NOT EXISTS cache_dirty (
  org         text        NOT NULL,
  doc_id      text        NOT NULL,
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org, doc_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO docs_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_dirty TO docs_app;
