"""Redis keys are bound to their database (domain/keys.py ``namespace_prefix``,
adapters/redis/namespace.py): whatever two stacks configure as their prefix, the
keys of two databases never meet, and the id is read once per process."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.adapters.postgres.identity import namespace_id
from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.adapters.redis.namespace import KeyNamespace
from chalicelib.adapters.redis.rate_limit import RateLimiter
from chalicelib.adapters.redis.realtime import RedisConnectionRegistry
from chalicelib.config import Settings
from chalicelib.domain.keys import DATABASE_ID, namespace_prefix
from chalicelib.domain.realtime import Topic
from tests.unit.properties import BOUNDED

ids = st.text("0123456789abcdef", min_size=32, max_size=32)
# configured prefixes as an operator might write them, or as one might forge them
prefixes = st.text(alphabet=st.sampled_from("ab:-_1f0é "), max_size=12)
rests = st.text(alphabet=st.sampled_from("ab:@1f0doc"), max_size=50)


@BOUNDED
@given(p1=prefixes, d1=ids, r1=rests, p2=prefixes, d2=ids, r2=rests)
def test_keys_of_two_databases_never_meet(
    p1: str, d1: str, r1: str, p2: str, d2: str, r2: str
) -> None:
    """Even a prefix chosen to hold the other database's namespace cannot make one
    key of database 1 equal one of database 2."""
    if d1 != d2:
        assert namespace_prefix(p1, d1) + r1 != namespace_prefix(p2, d2) + r2
        forged = namespace_prefix(p1, d1) + r1
        if "@" not in forged:  # (a configured prefix never holds "@")
            assert namespace_prefix(forged, d2) + r2 != namespace_prefix(p1, d1) + r1


@pytest.mark.parametrize(
    ("prefix", "database_id"),
    [("a@b:", "0" * 32), ("", "0" * 31), ("", "0" * 33), ("", "G" * 32), ("", "A" * 32)],
)
def test_a_prefix_with_an_at_sign_or_a_malformed_id_is_refused(prefix, database_id) -> None:
    with pytest.raises(ValueError, match=r"prefix|database id"):
        namespace_prefix(prefix, database_id)


def test_settings_refuse_a_key_prefix_with_an_at_sign() -> None:
    with pytest.raises(ValidationError):
        Settings(redis_key_prefix="docs@x:")
    assert Settings(redis_key_prefix="docs-local:").redis_key_prefix == "docs-local:"
    with pytest.raises(ValueError, match="may not hold"):
        KeyNamespace("x@", lambda: "0" * 32)  # at construction, not on first use


def test_the_database_id_is_read_once_and_only_when_a_key_is_needed() -> None:
    reads: list[int] = []
    gate = threading.Barrier(8)

    def database_id() -> str:
        reads.append(1)
        return "ab" * 16

    ns = KeyNamespace("p:", database_id)
    assert reads == []  # building it reads nothing (Lambda: at first use)
    seen: list[str] = []

    def use() -> None:
        gate.wait()
        seen.append(ns.prefix)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == [1] and set(seen) == {"p:@" + "ab" * 16 + ":"}


def test_every_adapter_builds_its_keys_under_the_namespace() -> None:
    ns = KeyNamespace("p:", lambda: "cd" * 16)
    start = "p:@" + "cd" * 16 + ":"
    cache = RedisCache(Settings(), ns)
    keys = [
        cache._doc_key("o", "d"),
        cache._etag_key("o", "d"),
        cache._listgen_key("o"),
        cache._list_key("o", "h"),
    ]
    registry = RedisConnectionRegistry(None, ns)  # type: ignore[arg-type]
    keys += [
        registry._conn_key("c"),
        registry._subs_key("c"),
        registry._topic_key("o", Topic("org")),
    ]
    assert all(key.startswith(start) for key in keys), keys
    assert RateLimiter(cache, {}, ns).namespace.prefix == start


@BOUNDED
@given(
    a=st.tuples(
        ids, st.integers(1, 2**32), st.none() | st.from_regex(r"[0-9]{1,19}", fullmatch=True)
    ),
    b=st.tuples(
        ids, st.integers(1, 2**32), st.none() | st.from_regex(r"[0-9]{1,19}", fullmatch=True)
    ),
)
def test_a_copy_of_a_database_gets_its_own_namespace(
    a: tuple[str, int, str | None], b: tuple[str, int, str | None]
) -> None:
    """The stored id, the database's OID and the cluster's identifier all count: a
    template clone (same id, new OID) or a dump restored elsewhere (same id, new
    cluster) is a namespace of its own; the same database is always the same one."""
    assert namespace_id(*a) == namespace_id(*a)
    assert DATABASE_ID.fullmatch(namespace_id(*a))
    if a != b:
        assert namespace_id(*a) != namespace_id(*b)
