"""Where one process's Redis keys start: bound to the database the data comes from.

``KeyNamespace.prefix`` is ``{DOCS_REDIS_KEY_PREFIX}@{database id}:`` (domain/keys.py,
``namespace_prefix``).  The id comes from the database itself (a random id it
generated in migration 0013, its OID and its cluster's identifier:
adapters/postgres/identity.py) and is read once per process, on first use (the
unit of work reads it with its first connection, so no request pays a round trip
for it and none waits for a second connection while it holds one).  Every
adapter that keeps data derived from the database in Redis (the cache, list
pages, rate limits, idempotency, the real-time registry) builds its keys under
this prefix, so two stacks that share a Redis and a configured prefix but not a
database never share an entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chalicelib.domain.keys import namespace_prefix


class KeyNamespace:
    """The configured prefix and the database's id, joined on first use and kept."""

    def __init__(self, configured: str, database_id: Callable[[], str]) -> None:
        namespace_prefix(configured, "0" * 32)  # a bad configured prefix fails at once
        self.configured = configured
        self._database_id = database_id
        self._prefix: str | None = None
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        if self._prefix is None:
            with self._lock:
                if self._prefix is None:
                    self._prefix = namespace_prefix(self.configured, self._database_id())
        return self._prefix
