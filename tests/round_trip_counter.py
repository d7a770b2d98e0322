"""Counts the PostgreSQL and Redis statements and round trips a block of code makes.

PostgreSQL: every ``Cursor.execute`` is one round trip (the service sets no
prepare threshold, so psycopg never adds a PREPARE of its own); its statements
are the result sets it got back (``BEGIN; SELECT ...; COMMIT`` sent as one
simple-protocol query is one round trip and three statements).  Redis: a
command sent alone is one command and one round trip (an EVALSHA is one
command, whatever its script does); a pipeline is one round trip carrying its
commands.  Only the calling thread is counted, so a background consumer
sharing the process cannot move the figures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis.client

from chalicelib.adapters.redis.cache import RedisCache


@dataclass
class Counts:
    """What one block sent: statements and round trips per server, and the text."""

    pg_statements: int = 0
    pg_round_trips: int = 0
    redis_commands: int = 0
    redis_round_trips: int = 0
    sent: list[str] = field(default_factory=list)

    def budget(self) -> tuple[int, int, int, int]:
        return (self.pg_statements, self.pg_round_trips, self.redis_commands,
                self.redis_round_trips)  # fmt: skip


@contextmanager
def counting() -> Iterator[Counts]:
    """Count what the current thread sends to PostgreSQL and Redis inside the block."""
    counts = Counts()
    me = threading.get_ident()
    execute: Callable[..., Any] = psycopg.Cursor.execute  # ClientCursor's too
    command: Callable[..., Any] = redis.client.Redis.execute_command
    pipeline: Callable[..., Any] = redis.client.Pipeline.execute
    # a cache fill is sent with its reply read later (adapters/redis/cache.py): still
    # one command and one round trip, though the request does not wait for it
    unanswered: Callable[..., Any] = RedisCache._send_unanswered

    def pg_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        result = execute(self, query, *args, **kwargs)
        text = query.as_string(self) if isinstance(query, psycopg.sql.Composable) else str(query)
        # the pool's liveness check of a long-idle connection sends an empty query
        if threading.get_ident() == me and text:
            counts.pg_round_trips += 1
            counts.pg_statements += max(1, len(self._results))
            counts.sent.append("pg: " + " ".join(text.split()))
        return result

    def redis_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            counts.redis_round_trips += 1
            counts.redis_commands += 1
            counts.sent.append(f"redis: {args[0]}")
        return command(self, *args, **kwargs)

    def redis_pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me and self.command_stack:
            counts.redis_round_trips += 1
            counts.redis_commands += len(self.command_stack)
            names = " ".join(str(c[0][0]) for c in self.command_stack)
            counts.sent.append(f"redis: pipeline[{names}]")
        return pipeline(self, *args, **kwargs)

    def redis_unanswered(self: Any, keys: list[str], args: list[Any]) -> Any:
        if threading.get_ident() == me:
            counts.redis_round_trips += 1
            counts.redis_commands += 1
            counts.sent.append("redis: EVALSHA (reply read later)")
        return unanswered(self, keys, args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RedisCache, "_send_unanswered", redis_unanswered)
        patch.setattr(psycopg.Cursor, "execute", pg_execute)
        patch.setattr(redis.client.Redis, "execute_command", redis_command)
        patch.setattr(redis.client.Pipeline, "execute", redis_pipeline)
        yield counts
