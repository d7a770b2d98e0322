"""Redis read-through cache with version fencing and a circuit breaker.

Keys (all org-scoped, under an optional prefix for test isolation):

- ``doc:{org}:{id}``       the rendered document, ``"{version}\\n{etag}\\n{json}"``
                           (an empty json part is a tombstone: deleted);
- ``listgen:{org}``        a generation counter bumped after every write;
- ``list:{org}:{gen}:{h}`` a list page, unreachable once the generation moves.

Why reads cannot go back in time: every store (a fill after a miss, or the
write-back after a commit) goes through one Lua script that keeps the entry
only if its version is higher than the one already cached.  A fill racing a
write therefore loses to the write's entry whichever reaches Redis first, and
deletes store a versioned tombstone rather than deleting the key (a delete
would let a slow fill resurrect the old version).

Redis errors are never client errors: each call is guarded by a breaker that
opens after N consecutive failures (reads then go to PostgreSQL), and lets one
probe through after a cool-down to close again by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from chalicelib.config import Settings
from chalicelib.domain.ports import CachedDocument

T = TypeVar("T")

# KEYS[1] = doc key; ARGV = version, payload, ttl ms
_SET_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class CircuitBreaker:
    """Consecutive-failure breaker: closed → open (after N) → half-open (after reset_s)."""

    def __init__(self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold or self._opened_at is not None:
                self._opened_at = self._clock()


class RedisCache:
    """Implements ``DocumentCache``; every method degrades to a miss/no-op on failure."""

    def __init__(self, settings: Settings, client: redis.Redis[bytes] | None = None) -> None:
        self.settings = settings
        self.prefix = settings.redis_key_prefix
        self.doc_ttl_ms = settings.cache_doc_ttl_s * 1000
        self.list_ttl_s = settings.cache_list_ttl_s
        self.enabled = settings.cache_enabled
        self.breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_s)
        self._client = client
        self._script: Any = None
        self.errors = 0

    @property
    def client(self) -> redis.Redis[bytes]:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.settings.redis_url,
                socket_timeout=self.settings.redis_socket_timeout_s,
                socket_connect_timeout=self.settings.redis_connect_timeout_s,
                health_check_interval=30,
                retry_on_timeout=False,
            )
        return self._client

    def _guard(self, fn: Callable[[], T], default: T) -> T:
        if not self.enabled or not self.breaker.allow():
            return default
        try:
            result = fn()
        except (redis.RedisError, OSError):
            self.errors += 1
            self.breaker.failure()
            return default
        self.breaker.success()
        return result

    def _doc_key(self, org: str, doc_id: str) -> str:
        return f"{self.prefix}doc:{org}:{doc_id}"

    # -- documents --------------------------------------------------------------
    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        raw = self._guard(lambda: self.client.get(self._doc_key(org, doc_id)), None)
        if raw is None:
            return None
        version, etag, body = bytes(raw).decode().split("\n", 2)
        return CachedDocument(int(version), etag, body or None)

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        payload = f"{entry.version}\n{entry.etag}\n{entry.body or ''}"

        def run() -> None:
            if self._script is None:
                self._script = self.client.register_script(_SET_IF_NEWER)
            self._script(
                keys=[self._doc_key(org, doc_id)], args=[entry.version, payload, self.doc_ttl_ms]
            )

        self._guard(run, None)

    # -- list pages ---------------------------------------------------------------
    def _list_key(self, org: str, gen: str, key: str) -> str:
        return f"{self.prefix}list:{org}:{gen}:{key}"

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        """The cached page (or None) and the generation to store a fresh one under.

        The generation is read *before* the caller reads PostgreSQL, so a page
        built from data older than a concurrent write is stored under the old
        generation and is never served.
        """

        def run() -> tuple[str | None, str]:
            gen_raw = self.client.get(f"{self.prefix}listgen:{org}")
            gen = bytes(gen_raw).decode() if gen_raw is not None else "0"
            raw = self.client.get(self._list_key(org, gen, key))
            return (bytes(raw).decode() if raw is not None else None), gen

        unavailable: tuple[str | None, str] = (None, "")
        return self._guard(run, unavailable)

    def put_list(self, org: str, key: str, generation: str, value: str) -> None:
        if not generation:
            return  # the cache was unavailable when the page was read
        self._guard(
            lambda: self.client.set(
                self._list_key(org, generation, key), value, ex=self.list_ttl_s
            ),
            None,
        )

    def bump_lists(self, org: str) -> None:
        self._guard(lambda: self.client.incr(f"{self.prefix}listgen:{org}"), None)

    # -- health ---------------------------------------------------------------------
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        return "ok" if self.breaker.state == "closed" else "degraded"

    def ping(self) -> bool:
        return bool(self._guard(self.client.ping, False))
