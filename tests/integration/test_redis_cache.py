"""The Redis cache adapter against the machine's Redis (own key prefix)."""

from __future__ import annotations

import threading
import uuid

import pytest

from chalicelib.adapters.redis.cache import _SET_IF_NEWER, RedisCache
from chalicelib.config import Settings
from chalicelib.domain.cache import CachedDocument
from devtools.services import free_port
from tests.conftest import namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def cache(settings: Settings) -> RedisCache:
    return RedisCache(settings, namespace(settings.redis_key_prefix))


def test_set_if_newer_is_atomic_under_races(cache: RedisCache) -> None:
    barrier = threading.Barrier(20)

    def fill(version: int) -> None:
        barrier.wait()
        cache.put_if_newer(
            "o", "race", CachedDocument(version, f'"{version}"', f'{{"v":{version}}}')
        )

    threads = [threading.Thread(target=fill, args=(v,)) for v in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = cache.get("o", "race")
    assert got is not None and got.version == 20 and got.body == '{"v":20}'
    cache.put_if_newer("o", "race", CachedDocument(3, '"3"', "{}"))
    assert cache.get("o", "race").version == 20


def test_tombstone_blocks_resurrection_and_keys_are_org_scoped(cache: RedisCache) -> None:
    cache.put_if_newer("o", "gone", CachedDocument(1, '"1"', "{}"))
    cache.put_if_newer("o", "gone", CachedDocument(2, '"2"', None))
    cache.put_if_newer("o", "gone", CachedDocument(1, '"1"', "{}"))  # a late fill
    entry = cache.get("o", "gone")
    assert entry is not None and entry.version == 2 and entry.body is None
    assert cache.get("other-org", "gone") is None
    # this test's orgs only: other tests of the run share the prefix (and may use "gone")
    mine = (cache._doc_key("o", "gone"), cache._doc_key("other-org", "gone"))
    scanned = [k.decode() for k in cache.client.scan_iter(match=f"{cache.prefix}*gone")]
    keys = [k for k in scanned if k.endswith((":1:o4:gone", ":9:other-org4:gone"))]
    assert keys == [mine[0]]


def test_ttl_is_applied(cache: RedisCache, settings: Settings) -> None:
    cache.put_if_newer("o", "ttl", CachedDocument(1, '"1"', "{}"))
    ttl = cache.client.pttl(cache._doc_key("o", "ttl"))
    assert 0 < ttl <= settings.cache_doc_ttl_s * 1000


def test_list_generation_makes_old_pages_unreachable(cache: RedisCache) -> None:
    page, gen = cache.get_list("o", "k")
    assert page is None
    cache.put_list("o", "k", gen, "page-1")
    assert cache.get_list("o", "k")[0] == "page-1"
    cache.bump_lists("o")
    assert cache.get_list("o", "k")[0] is None
    cache.put_list("o", "k", gen, "stale page built before the write")
    assert cache.get_list("o", "k")[0] is None


def test_dead_redis_degrades_to_misses_and_opens_the_breaker() -> None:
    dead = RedisCache(
        Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", breaker_failure_threshold=3),
        namespace(""),
    )
    for _ in range(5):
        assert dead.get("o", "x") is None
        dead.put_if_newer("o", "x", CachedDocument(1, '"1"', "{}"))
    assert dead.breaker.state == "open" and dead.status() == "degraded"
    assert dead.errors == 3, "after opening, the breaker stops calling Redis"


def test_publish_is_one_command_that_stores_and_bumps_the_lists_once(cache: RedisCache) -> None:
    """The publish script stores the version and moves the org's list generation on,
    in one EVALSHA; when the server does not know the script (a restarted Redis),
    it is loaded and run again, and the generation still moves on exactly once."""
    org = "pub-org"
    gen_key = cache._listgen_key(org)
    before = int(cache.client.get(gen_key) or 0)
    assert cache.publish(org, "d", CachedDocument(2, '"2"', '{"v":2}'))
    assert int(cache.client.get(gen_key) or 0) == before + 1
    # a publish that loses to a newer version still moves the lists on
    assert cache.publish(org, "d", CachedDocument(1, '"1"', '{"v":1}'))
    assert int(cache.client.get(gen_key) or 0) == before + 2
    assert cache.get(org, "d") == CachedDocument(2, '"2"', '{"v":2}', "")
    # a script the server does not know under this sha: NOSCRIPT, load, run once
    cache._script.sha = "0" * 40
    assert cache.publish(org, "d", CachedDocument(3, '"3"', '{"v":3}'))
    assert int(cache.client.get(gen_key) or 0) == before + 3
    assert cache.get(org, "d") == CachedDocument(3, '"3"', '{"v":3}', "")


def test_a_fill_sent_without_waiting_is_read_back_before_the_next_call(cache: RedisCache) -> None:
    """A fill does not wait for its reply; the adapter's next call reads it first, so
    the process sees its own fill, and the connection goes back to the pool."""
    entry = CachedDocument(4, '"4"', '{"v":4}', "")
    cache.put_if_newer("o", "fill", entry)
    assert len(cache._unread) == 1  # sent, reply not read yet
    assert cache.get("o", "fill") == entry
    assert cache._unread == []
    # a later fill of an older version loses, as it always did
    cache.put_if_newer("o", "fill", CachedDocument(3, '"3"', '{"v":3}', ""))
    assert cache.get("o", "fill") == entry


def test_a_fill_the_server_has_no_script_for_is_lost_then_the_script_is_loaded(
    cache: RedisCache,
) -> None:
    """A restarted Redis forgets scripts: the unanswered fill comes back NOSCRIPT (a
    miss later, nothing worse); reading that reply loads the script for the next."""
    cache._script = cache.client.register_script(_fresh_script_text())  # never loaded
    cache.put_if_newer("o", "noscript", CachedDocument(1, '"1"', "{}"))
    assert cache.get("o", "noscript") is None  # lost; the read loaded the script
    assert cache.breaker.state == "closed"
    cache.put_if_newer("o", "noscript", CachedDocument(1, '"1"', "{}"))
    assert cache.get("o", "noscript") == CachedDocument(1, '"1"', "{}", "")


def _fresh_script_text() -> str:
    return f"{_SET_IF_NEWER}\n-- {uuid.uuid4().hex}\n"
