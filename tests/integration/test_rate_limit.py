"""Per-principal token buckets in Redis: 429 with headers, fail-open without Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import bootstrap
from devtools.services import free_port
from tests.conftest import Invoker, make_token, namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def limited(settings):
    built = bootstrap.build(
        settings.model_copy(update={"rate_limit_reader": (0.5, 3), "rate_limit_writer": (0.5, 5)})
    )
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.uow.close()


def test_bucket_empties_then_429_with_retry_after(limited) -> None:
    reader = Invoker(make_token(org="rl-org", sub="rita", roles=("reader",)))
    seen = [reader("GET", "/documents") for _ in range(4)]
    assert [r.status for r in seen] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in seen[:3]] == ["2", "1", "0"]
    assert seen[0].headers["ratelimit-limit"] == "3"
    blocked = seen[3]
    assert blocked.headers["content-type"] == "application/problem+json"
    assert int(blocked.headers["retry-after"]) >= 1 and int(blocked.headers["ratelimit-reset"]) >= 1
    # buckets are per principal, and writers get their own rate
    assert (
        Invoker(make_token(org="rl-org", sub="ronald", roles=("reader",)))(
            "GET", "/documents"
        ).status
        == 200
    )
    writer = Invoker(make_token(org="rl-org", sub="wendy", roles=("writer",)))
    assert [writer("GET", "/documents").status for _ in range(6)].count(429) == 1


def test_bucket_is_atomic_under_concurrency(limited) -> None:
    limiter = limited.rate_limiter
    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(lambda _: limiter.check("rl-org", "burst", "writer"), range(20)))
    assert sum(d.allowed for d in decisions) == 5


def test_fails_open_when_redis_is_down(settings) -> None:
    down = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "rate_limit_reader": (0.1, 1)}
    )
    built = bootstrap.build(down)
    bootstrap.set_container(built)
    try:
        reader = Invoker(make_token(org="rl-down", roles=("reader",)))
        statuses = [reader("GET", "/documents").status for _ in range(5)]
        assert statuses == [200] * 5
        assert "ratelimit-limit" not in reader("GET", "/documents").headers
    finally:
        bootstrap.set_container(None)
        built.uow.close()


def test_leased_tokens_never_exceed_the_shared_bucket(settings) -> None:
    """Two processes (two limiters) leasing from one bucket: total allowed == burst."""
    from chalicelib.adapters.redis.cache import RedisCache
    from chalicelib.adapters.redis.rate_limit import RateLimiter

    cache = RedisCache(settings, namespace(settings.redis_key_prefix))
    limits = {"reader": (0.001, 100), "writer": (0.001, 100), "admin": (0.001, 100)}
    a = RateLimiter(cache, limits, namespace(settings.redis_key_prefix + "lease:"))
    b = RateLimiter(cache, limits, namespace(settings.redis_key_prefix + "lease:"))
    allowed = 0
    for i in range(300):
        decision = (a if i % 3 else b).check("o", "leaser", "reader")
        allowed += decision.allowed
    assert allowed == 100, "leases come out of the one shared bucket"
