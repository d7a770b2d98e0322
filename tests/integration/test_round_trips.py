"""Round-trip budgets: what one request costs in PostgreSQL and Redis, asserted exactly.

Each operation runs once through ``app.handler`` on the real PostgreSQL and
Redis (and the search backend in use); ``tests/round_trip_counter.py`` counts
PostgreSQL statements and round trips and Redis commands and round trips.  The
budget is asserted with equality: a change that adds a round trip, or saves
one, fails here and updates ``BUDGETS`` on purpose.  ``docs/benchmarks.md``
lists the same table ("Round-trip budgets"), and a test holds the two equal.

Not in the per-request figures, and each counted once on its own:

- the rate limiter's lease: a process takes up to 10 tokens from the shared
  bucket in one EVALSHA and spends them locally for up to a second, so nine
  requests in ten pay nothing for the limit and the tenth one Redis round trip
  (``rate limit lease taken`` is a GET hit that takes one); every counted
  request here spends a leased token (the limiter's clock is frozen);
- the cache repair check, at most once a second per process on the read path
  (``cache repair check``: a GET hit when one is due);
- the pool's liveness check of a connection idle for a while (an empty query).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Invoker, Response, fresh_container, make_token, sync_search
from tests.round_trip_counter import Counts, counting

pytestmark = pytest.mark.integration

# operation -> (PostgreSQL statements, PostgreSQL round trips, Redis commands, Redis round trips)
BUDGETS: dict[str, tuple[int, int, int, int]] = {
    "GET hit": (0, 0, 1, 1),
    "GET 304 (If-None-Match)": (0, 0, 1, 1),
    "GET miss": (4, 1, 2, 2),
    "POST create": (4, 2, 1, 1),
    "PUT replace": (5, 2, 2, 2),
    "PATCH (merge patch)": (5, 2, 2, 2),
    "POST changes (merge patch)": (5, 2, 2, 2),
    "DELETE": (5, 2, 2, 2),
    "restore": (5, 2, 2, 2),
    "list, uncached page": (4, 3, 3, 2),
    "list, cached page": (0, 0, 2, 1),
    "search": (4, 1, 0, 0),
    "changes feed page": (6, 5, 0, 0),
    "grant put": (7, 5, 2, 2),
    "grant delete": (7, 5, 2, 2),
    "batch create, 1 documents": (4, 2, 1, 1),
    "batch create, 3 documents": (12, 6, 3, 3),
    "audit page": (5, 3, 0, 0),  # the org's pending rows chained first (same round trip)
    "rate limit lease taken": (0, 0, 2, 2),
    "cache repair check": (4, 3, 1, 1),
}

DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
ORG = "rt-org"
MERGE = {"Content-Type": "application/merge-patch+json"}


class Bench:
    """One container, its callers, and a measure step that counts one request."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.writer = Invoker(make_token(org=ORG, sub="alice"))
        self.admin = Invoker(make_token(org=ORG, sub="root", roles=("admin",)))
        limiter = container.rate_limiter
        limiter._clock = lambda: 0.0  # a lease never expires: the limit costs nothing
        self.limiter = limiter

    def doc(self, title: str = "x") -> dict[str, Any]:
        r = self.writer("POST", "/documents", {"title": title, "body": {"text": title}})
        assert r.status == 201, r
        result: dict[str, Any] = r.json()
        return result

    def ready(self, lease: bool = True, repair: bool = False) -> None:
        """Before a counted request: a lease in hand for both callers, the repair not due."""
        self.limiter._leases.clear()
        if lease:
            self.limiter.check(ORG, "alice", "writer")
            self.limiter.check(ORG, "root", "admin")
        self.container.cache._next_repair = 0.0 if repair else float("inf")

    def measure(
        self, call: Callable[[], Response], status: int, *, lease: bool = True,
        repair: bool = False, cache: str | None = None,
    ) -> Counts:  # fmt: skip
        self.ready(lease, repair)
        with counting() as counts:
            r = call()
        assert r.status == status, r
        if cache is not None:
            assert r.headers.get("x-cache") == cache, r.headers
        return counts

    def evict(self, doc_id: str) -> None:
        cache = self.container.cache
        cache.client.delete(cache._doc_key(ORG, doc_id), cache._etag_key(ORG, doc_id))


def one_pass(b: Bench) -> dict[str, Counts]:
    """Every operation once, each counted."""
    w, admin = b.writer, b.admin
    out: dict[str, Counts] = {}
    d = b.doc()
    path = f"/documents/{d['id']}"
    w("GET", path)
    out["GET hit"] = b.measure(lambda: w("GET", path), 200, cache="hit")
    out["rate limit lease taken"] = b.measure(lambda: w("GET", path), 200, lease=False, cache="hit")
    out["cache repair check"] = b.measure(lambda: w("GET", path), 200, repair=True, cache="hit")
    out["GET 304 (If-None-Match)"] = b.measure(
        lambda: w("GET", path, headers={"If-None-Match": d["etag"]}), 304
    )
    b.evict(d["id"])
    out["GET miss"] = b.measure(lambda: w("GET", path), 200, cache="miss")
    out["POST create"] = b.measure(lambda: w("POST", "/documents", {"title": "n"}), 201)
    r = w("GET", path)
    out["PUT replace"] = b.measure(
        lambda: w("PUT", path, {"title": "y"}, headers={"If-Match": r.headers["etag"]}), 200
    )
    r = w("GET", path)
    out["PATCH (merge patch)"] = b.measure(
        lambda: w("PATCH", path, {"title": "z"}, headers={**MERGE, "If-Match": r.headers["etag"]}),
        200,
    )
    r = w("GET", path)
    out["POST changes (merge patch)"] = b.measure(
        lambda: w("POST", f"{path}/changes", {"title": "c"},
                  headers={**MERGE, "If-Match": r.headers["etag"]}),
        200,
    )  # fmt: skip
    r = w("GET", path)
    out["DELETE"] = b.measure(
        lambda: w("DELETE", path, headers={"If-Match": r.headers["etag"]}), 204
    )
    out["restore"] = b.measure(lambda: admin("POST", f"{path}/restore"), 200)
    out["list, uncached page"] = b.measure(lambda: w("GET", "/documents?limit=5"), 200)
    out["list, cached page"] = b.measure(lambda: w("GET", "/documents?limit=5"), 200)
    sync_search(b.container)
    out["search"] = b.measure(lambda: w("POST", "/search", {"q": "x", "size": 5}), 200)
    out["changes feed page"] = b.measure(lambda: w("GET", "/changes?since=0&limit=5"), 200)
    out["grant put"] = b.measure(lambda: w("PUT", f"{path}/grants/gary", {"role": "reader"}), 200)
    out["grant delete"] = b.measure(lambda: w("DELETE", f"{path}/grants/gary"), 204)
    for n in (1, 3):
        items = {"documents": [{"title": f"b{i}"} for i in range(n)]}
        out[f"batch create, {n} documents"] = b.measure(
            lambda items=items: w("POST", "/documents:batch", items), 200
        )
    out["audit page"] = b.measure(lambda: admin("GET", "/audit?limit=5"), 200)
    return out


def run_all(b: Bench) -> dict[str, Counts]:
    """Every operation twice: the first pass warms up (pools, scripts); the second counts."""
    one_pass(b)
    return one_pass(b)


@pytest.fixture(scope="module")
def measured(settings: Any, opensearch_url: str) -> Iterator[dict[str, Counts]]:
    with fresh_container(settings, search_url=opensearch_url) as built:
        yield run_all(Bench(built))


@pytest.mark.parametrize("operation", list(BUDGETS))
def test_each_operation_keeps_its_round_trip_budget(measured, operation: str) -> None:
    counts = measured[operation]
    assert counts.budget() == BUDGETS[operation], "\n".join(counts.sent)


def test_every_measured_operation_has_a_budget(measured) -> None:
    assert set(measured) == set(BUDGETS)


def test_batch_costs_the_same_per_document() -> None:
    one, three = BUDGETS["batch create, 1 documents"], BUDGETS["batch create, 3 documents"]
    assert three == tuple(3 * n for n in one)


def documented_budgets() -> dict[str, tuple[int, int, int, int]]:
    """The rows of the "Round-trip budgets" table in docs/benchmarks.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Round-trip budgets", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[int, int, int, int]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and all(re.fullmatch(r"\d+", c) for c in cells[1:]):
            a, b, c, d = (int(x) for x in cells[1:])
            rows[cells[0].strip("`")] = (a, b, c, d)
    return rows


def test_the_documented_budgets_are_the_tested_ones() -> None:
    assert documented_budgets() == BUDGETS


def test_the_database_id_is_read_once_per_process(settings: Any) -> None:
    """Every Redis key holds the database's id (adapters/redis/namespace.py): a new
    process reads it with its first connection, and no request after that does."""
    from chalicelib import bootstrap

    built = bootstrap.build(settings)
    bootstrap.set_container(built)
    try:
        api = Invoker(make_token(org="rt-id"))
        with counting() as counts:
            doc = api("POST", "/documents", {"title": "x"}).json()
            for _ in range(3):
                assert api("GET", f"/documents/{doc['id']}").status == 200
            assert api("GET", "/documents").status == 200
        reads = [s for s in counts.sent if "database_identity" in s]
        assert len(reads) == 1, counts.sent
        built.cache._next_repair = float("inf")
        with counting() as counts:
            assert api("GET", f"/documents/{doc['id']}").headers["x-cache"] == "hit"
        assert counts.pg_round_trips == 0, counts.sent
    finally:
        bootstrap.set_container(None)
        built.close()
