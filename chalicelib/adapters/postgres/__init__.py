"""The PostgreSQL adapter: the unit of work and its repositories, the stores,
and the migration runner.

    uow.py              the pool; tenant-scoped transactions; maintenance transactions
    transaction.py      one open transaction and the repositories on it (``tx.*``)
    protocols.py        the transaction and the database as repositories and stores see them
    documents.py        documents, with their version, outbox and audit rows
    access.py           grants, and the SQL that keeps a viewer to what it may read
    content.py          upload and extracted-text rows; stale uploads
    changes.py          the changes feed (``tx.change_feed``)
    outbox.py           the search sync's stream: claims, dead letters, lag, retention
    index_registry.py   the search indexes' registry and the reindex's reads
    document_states.py  documents' current state as the search sync reads it
    outbox_listener.py  long-running consumers that LISTEN for outbox commits
    cache_repair.py     the cache repair queue
    audit.py            the audit trail
    personal_data.py    personal data (export and erasure) and the export jobs
    pii_reencryption.py the PII fields' re-encryption after a key rotation
    purge.py            the purge's database side
    realtime.py         the real-time fan-out's stream cursor
    identity.py         the database's identity (what the cache keys bind to)
    idempotency.py      idempotency records (while Redis is out)
    migrations.py       the migration runner and the database roles
"""

from chalicelib.adapters.postgres.migrations import MIGRATIONS_DIR, migrate
from chalicelib.adapters.postgres.uow import PostgresUnitOfWork

__all__ = ["MIGRATIONS_DIR", "PostgresUnitOfWork", "migrate"]
