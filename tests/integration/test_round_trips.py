"""The hot paths' PostgreSQL round trips, counted (benchmarks/bench_api.py times them).

A GET that misses the cache is one round trip (BEGIN, the tenant settings, the
read and COMMIT together); a PUT or PATCH is two (BEGIN, settings and the read
of the current row; the write with its records and COMMIT); a GET served from
the cache needs none.  Each ``execute`` is one round trip; not counted: the
pool's liveness check of a connection idle for a while, and the cache repair
check a process makes at most once a second (both off the per-request path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration


@contextmanager
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    sent: list[str] = []
    real: Callable[..., Any] = psycopg.Cursor.execute  # ClientCursor's too

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if str(query):  # the pool's liveness check sends an empty query
            sent.append(str(query)[:60])
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    yield sent
    monkeypatch.undo()


def test_hot_paths_keep_their_round_trips(container: Any, monkeypatch) -> None:
    api = Invoker(make_token(org="rt-org"))
    doc = api("POST", "/documents", {"title": "x"}).json()
    path = f"/documents/{doc['id']}"
    container.cache.client.delete(container.cache._doc_key("rt-org", doc["id"]))
    container.cache._next_repair = float("inf")  # the once-a-second repair check is not due

    with counted(monkeypatch) as sent:
        assert api("GET", path).headers["x-cache"] == "miss"
    assert len(sent) == 1, sent
    with counted(monkeypatch) as sent:
        assert api("GET", path).headers["x-cache"] == "hit"
    assert sent == []
    with counted(monkeypatch) as sent:
        r = api("PUT", path, {"title": "y"}, headers={"If-Match": doc["etag"]})
        assert r.status == 200, r
    assert len(sent) == 2, sent
    with counted(monkeypatch) as sent:
        r = api("PATCH", path, {"title": "z"}, headers={
            "If-Match": r.headers["etag"], "Content-Type": "application/merge-patch+json"
        })  # fmt: skip
        assert r.status == 200, r
    assert len(sent) == 2, sent
    with counted(monkeypatch) as sent:
        assert api("POST", "/documents", {"title": "new"}).status == 201
    assert len(sent) == 2, sent


def test_the_database_id_is_read_once_per_process(settings: Any, monkeypatch) -> None:
    """Every Redis key holds the database's id (adapters/redis/namespace.py): a new
    process reads it with its first connection, and no request after that does."""
    from chalicelib import bootstrap

    built = bootstrap.build(settings)
    bootstrap.set_container(built)
    try:
        api = Invoker(make_token(org="rt-id"))
        reads: list[str] = []
        real: Callable[..., Any] = psycopg.Cursor.execute

        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if "database_identity" in str(query):
                reads.append(str(query))
            return real(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", execute)
        doc = api("POST", "/documents", {"title": "x"}).json()
        for _ in range(3):
            assert api("GET", f"/documents/{doc['id']}").status == 200
        assert api("GET", "/documents").status == 200
        monkeypatch.undo()
        assert len(reads) == 1, reads
        with counted(monkeypatch) as sent:
            assert api("GET", f"/documents/{doc['id']}").headers["x-cache"] == "hit"
        assert sent == []
    finally:
        bootstrap.set_container(None)
        built.close()
