"""The PostgreSQL adapter: the unit of work and its repositories, the outbox,
content and idempotency records, and the migration runner.

    uow.py           the pool; tenant-scoped transactions; maintenance transactions
    transaction.py   one open transaction and the repositories on it (``tx.*``)
    documents.py     documents, with their version, outbox and audit rows
    content.py       upload and extracted-text rows; stale uploads
    outbox.py        the search sync's stream and index registry; the changes feed
    cache_repair.py  the cache repair queue
    idempotency.py   idempotency records (while Redis is out)
    migrations.py    the migration runner and the database roles
"""

from chalicelib.adapters.postgres.migrations import MIGRATIONS_DIR, migrate
from chalicelib.adapters.postgres.uow import PostgresUnitOfWork

__all__ = ["MIGRATIONS_DIR", "PostgresUnitOfWork", "migrate"]
