"""Redis read-through cache with version fencing and a circuit breaker.

Keys (all org-scoped, under the process's ``KeyNamespace``: the configured
prefix and the database's id, so two databases never share an entry; the parts
after the kind are joined by ``domain.keys.join_key``, which writes each as
``<length>:<part>``, so an org holding ``:`` cannot share another org's keys):

- ``doc:{org,id}``         ``"{version}\\n{etag}\\n{state}"`` where state is the rendered
                           JSON document (an object: it starts with ``{``), the
                           document's ACL and the document (``"[acl]\\n{...}"``, for a
                           document not open to the whole org: domain/access.py; the
                           rendered JSON holds no raw newline), ``""`` (a tombstone:
                           deleted) or ``"~"`` (a fence: a write of that version is
                           committing);
- ``etag:{org,id}``        ``"{version}\\n{etag}"`` of a live cached document open to the
                           whole org, so a conditional GET can answer 304 without
                           fetching the body (a document with an ACL has none: its
                           304 would answer a caller who may not read it);
- ``listgen:{org}``        a generation counter bumped after every write;
- ``list:{org,h}``         ``"{gen}\\n{page}"``: a list page (30 s) and the generation it
                           was built at; served only while that is still the org's
                           generation (both read in one pipelined round trip).

Why a read never goes back in time once a write was acknowledged:

1. Every store goes through one Lua script that keeps an entry only if its
   version is higher than the cached one (or equal, replacing a fence by the
   real value).  A fill carrying an old version therefore loses to anything
   newer, whichever reaches Redis first; deletes store a versioned tombstone
   instead of deleting the key, so a slow fill cannot resurrect the document.
2. Inside the write's transaction, before COMMIT, the writer stores a *fence*
   carrying the new version.  Readers treat a fence as a miss and go to
   PostgreSQL, and their fills of the old version are refused by it.  After
   COMMIT the writer replaces the fence with the document.  If that write-back
   times out, the fence is still there: readers keep going to PostgreSQL (and
   fill the committed version themselves) until it expires (60 s, longer than
   any invocation, so no fill of the old version can still be in flight).
3. A write tries its fence (and write-back) even while its own breaker is
   open: another process's breaker may have closed already, and a skipped
   fence would let that process serve the version it cached before the write.
   If the fence cannot be stored (Redis unreachable), the write still
   commits and records the document in ``cache_dirty`` in the same
   transaction.  A process whose breaker half-opens first re-fences every dirty
   key before it trusts the cache again, and every process checks the dirty
   table at most once a second on its read path, so a writer cut off from a
   Redis its readers can still reach leaves stale entries for at most ~1 s.
   The service layer runs that repair (service_layer/cache_coherence.py): this
   adapter only says when one is due (``repair_due``) and fences the keys.

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

from chalicelib.adapters.redis.breaker import CircuitBreaker
from chalicelib.adapters.redis.namespace import KeyNamespace
from chalicelib.config import Settings
from chalicelib.domain.cache import CachedDocument, CacheRepair
from chalicelib.domain.keys import join_key
from chalicelib.observability import count, subsegment

T = TypeVar("T")

FENCE = "~"
FENCE_TTL_MS = 60_000

# KEYS = doc key, etag key[, the org's list generation: a publish bumps it whatever
# the outcome]; ARGV = version, payload, ttl ms, etag line ('' = drop it)
_SET_IF_NEWER = """
if KEYS[3] then redis.call('INCR', KEYS[3]) end
local cur = redis.call('GET', KEYS[1])
local new_v = tonumber(ARGV[1])
if cur then
  local v, state = string.match(cur, '^(%d+)\\n[^\\n]*\\n(.*)$')
  v = tonumber(v)
  if v then
    if v > new_v then return 0 end
    if v == new_v and not (state == '~' and string.sub(ARGV[2], -2) ~= '\\n~') then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
end
return 1
"""


def _entry(entry: CachedDocument) -> tuple[str, str]:
    """The ``doc:`` value of an entry, and its ``etag:`` line ('' = none)."""
    if entry.body and entry.acl:
        return f"{entry.version}\n{entry.etag}\n{entry.acl}\n{entry.body}", ""
    etag_line = f"{entry.version}\n{entry.etag}" if entry.body else ""
    return f"{entry.version}\n{entry.etag}\n{entry.body or ''}", etag_line


class RedisCache:
    """Implements ``DocumentCache``; every method degrades to a miss/no-op on failure."""

    def __init__(
        self,
        settings: Settings,
        namespace: KeyNamespace,
        client: redis.Redis[bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = namespace
        self.doc_ttl_ms = settings.cache_doc_ttl_s * 1000
        self.list_ttl_s = settings.cache_list_ttl_s
        self.enabled = settings.cache_enabled
        self.breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_s)
        self._client = client
        self._script: Any = None
        # connections whose last command (a fill) was sent without reading its reply
        self._unread: list[Any] = []
        self._unread_lock = threading.Lock()
        self.errors = 0
        self.repair_interval_s = settings.cache_repair_interval_s
        self._next_repair = 0.0

    @property
    def prefix(self) -> str:
        """Where this process's keys start (the database's id is read on first use)."""
        return self.namespace.prefix

    @property
    def client(self) -> redis.Redis[bytes]:
        if self._unread:
            self._drain()  # a fill's reply first: then whatever comes next sees the fill
        return self._connect()

    def _connect(self) -> redis.Redis[bytes]:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.settings.redis_url,
                socket_timeout=self.settings.redis_socket_timeout_s,
                socket_connect_timeout=self.settings.redis_connect_timeout_s,
                health_check_interval=30,
                retry_on_timeout=False,
            )
        return self._client

    def _guard(
        self,
        fn: Callable[[], T],
        default: T,
        *,
        op: str,
        read: bool = False,
        always: bool = False,
    ) -> T:
        """Run one Redis call behind the breaker.

        ``read``: a read the service layer repaired the cache for first, when a
        repair was due (``repair_due``).  A write or a ping that closes the
        breaker makes a repair due on the next read.

        ``always``: a write's fence and write-back are tried even while this
        process's breaker is open.  Another process's breaker may have closed
        already (Redis is back), and it serves and fills from the cache: a
        write that skipped its fence would let it serve the old version after
        the write was acknowledged.  A failed try costs one refused connection
        (at most ``redis_connect_timeout_s``) on a write, never a read.
        """
        if not self.enabled or not (always or self.breaker.allow()):
            return default
        was = self.breaker.state
        try:
            with subsegment(f"redis.{op}"):
                result = fn()
        except (redis.RedisError, OSError):
            self._failed(was)
            return default
        if was != "closed":
            count("CacheBreakerClosed")
            if not read:
                self._next_repair = 0.0  # closed by a write or a ping: repair on the next read
        self.breaker.success()
        return result

    def _failed(self, was: str) -> None:
        self.errors += 1
        self.breaker.failure()
        if was == "closed" and self.breaker.state == "open":
            count("CacheBreakerOpened")

    # -- repair (run by the service layer: service_layer/cache_coherence.py) -----
    def repair_due(self) -> bool:
        """Before the next read: after an outage (the breaker lets a probe through),
        and at most once per repair interval otherwise."""
        if not self.enabled or not self.breaker.allow():
            return False
        return self.breaker.state == "half-open" or time.monotonic() >= self._next_repair

    def repair_keys(self, items: list[CacheRepair]) -> bool:
        """Fence documents written while Redis was unreachable, and their orgs' lists.

        False on Redis errors (counted against the breaker; the caller keeps the
        queue for next time).  A success does not close the breaker: the read
        that follows does."""
        was = self.breaker.state
        try:
            for org, doc_id, version in items:
                self._put_fence(org, doc_id, version)
            for org in {item.org for item in items}:
                self.client.incr(self._listgen_key(org))
        except (redis.RedisError, OSError):
            self._failed(was)
            return False
        return True

    def repaired(self) -> None:
        self._next_repair = time.monotonic() + self.repair_interval_s

    def repair_failed(self) -> None:
        self.breaker.failure()

    def _doc_key(self, org: str, doc_id: str) -> str:
        return f"{self.prefix}doc:{join_key(org, doc_id)}"

    def _etag_key(self, org: str, doc_id: str) -> str:
        return f"{self.prefix}etag:{join_key(org, doc_id)}"

    def _listgen_key(self, org: str) -> str:
        return f"{self.prefix}listgen:{join_key(org)}"

    # -- documents --------------------------------------------------------------
    def get(self, org: str, doc_id: str) -> CachedDocument | None:
        raw = self._guard(
            lambda: self.client.get(self._doc_key(org, doc_id)), None, op="get", read=True
        )
        if raw is None:
            return None
        version, etag, state = bytes(raw).decode().split("\n", 2)
        if state == FENCE:
            return None  # a write is committing: read PostgreSQL
        acl = ""
        if state.startswith("["):  # an ACL line before the document
            acl, state = state.split("\n", 1)
        return CachedDocument(int(version), etag, state or None, acl)

    def get_etag(self, org: str, doc_id: str) -> tuple[int, str] | None:
        """The cached validator of a live document (for If-None-Match), or None."""
        key = self._etag_key(org, doc_id)
        raw = self._guard(lambda: self.client.get(key), None, op="get_etag", read=True)
        if raw is None:
            return None
        version, etag = bytes(raw).decode().split("\n", 1)
        return int(version), etag

    def _store(
        self,
        org: str,
        doc_id: str,
        version: int,
        payload: str,
        *,
        ttl_ms: int,
        etag_line: str,
        bump_lists: bool = False,
    ) -> None:
        """One EVALSHA of the set-if-newer script (redis-py's ``Script`` loads it
        when the server does not know it); ``bump_lists`` also moves the org's
        list generation on, in the same command."""
        if self._script is None:
            self._script = self.client.register_script(_SET_IF_NEWER)
        keys = [self._doc_key(org, doc_id), self._etag_key(org, doc_id)]
        if bump_lists:
            keys.append(self._listgen_key(org))
        self._script(keys=keys, args=[version, payload, ttl_ms, etag_line])

    def publish(self, org: str, doc_id: str, entry: CachedDocument) -> bool:
        """After a commit: store the new version and bump the org's list generation,
        in one command (the script does both: no pipeline to build, one round
        trip).  False when Redis could not be reached."""
        if not self.enabled:
            return True  # nothing is cached, so there is nothing to repair
        payload, etag_line = _entry(entry)

        def run() -> bool:
            self._store(
                org, doc_id, entry.version, payload,
                ttl_ms=self.doc_ttl_ms, etag_line=etag_line, bump_lists=True,
            )  # fmt: skip
            return True

        return self._guard(run, False, op="publish", always=True)

    def _put_fence(self, org: str, doc_id: str, version: int) -> None:
        payload = f"{version}\n-\n{FENCE}"
        self._store(org, doc_id, version, payload, ttl_ms=FENCE_TTL_MS, etag_line="")

    def put_if_newer(self, org: str, doc_id: str, entry: CachedDocument) -> None:
        """The fill after a read of PostgreSQL: sent, and its reply read later.

        Nothing waits for a fill's outcome (set-if-newer decides it in Redis,
        and a refused or lost fill only costs a later miss), so the reader does
        not wait a round trip for it: the EVALSHA goes out and the connection
        stays aside until this adapter's next Redis call reads the reply first
        (``_drain``), so this process never sees the cache from before its own
        fill.  A fill that fails is counted against the breaker when its reply
        is read."""
        payload, etag_line = _entry(entry)
        keys = [self._doc_key(org, doc_id), self._etag_key(org, doc_id)]
        args = [entry.version, payload, self.doc_ttl_ms, etag_line]
        self._guard(lambda: self._send_unanswered(keys, args), None, op="fill")

    def _send_unanswered(self, keys: list[str], args: list[Any]) -> None:
        """One EVALSHA of the set-if-newer script, its reply left to ``_drain``."""
        client = self.client
        if self._script is None:
            self._script = client.register_script(_SET_IF_NEWER)
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        with self._unread_lock:
            self._unread.append(conn)

    def _drain(self) -> None:
        """Read the replies of fills sent without waiting, and give their connections
        back to the pool.  A server that did not know the script (restarted) gets it
        loaded for the next fill; a connection that failed is dropped."""
        with self._unread_lock:
            pending, self._unread = self._unread, []
        reload = False
        for conn in pending:
            try:
                conn.read_response()
            except redis.exceptions.NoScriptError:
                reload = True
            except (redis.RedisError, OSError):
                conn.disconnect()
                self._failed(self.breaker.state)
            finally:
                self._connect().connection_pool.release(conn)
        if reload:
            try:
                self._connect().script_load(self._script.script)  # type: ignore[no-untyped-call]
            except (redis.RedisError, OSError):
                self._failed(self.breaker.state)

    def fence(self, org: str, doc_id: str, version: int) -> bool:
        """Before COMMIT: stop reads of ``doc_id`` from being served or filled below ``version``.

        False when Redis could not be reached: the caller records the document
        in ``cache_dirty`` in the same transaction.
        """
        if not self.enabled:
            return True  # nothing is cached, so there is nothing to repair

        def run() -> bool:
            self._put_fence(org, doc_id, version)
            return True

        return self._guard(run, False, op="fence", always=True)

    # -- list pages ---------------------------------------------------------------
    def _list_key(self, org: str, key: str) -> str:
        return f"{self.prefix}list:{join_key(org, key)}"

    def get_list(self, org: str, key: str) -> tuple[str | None, str]:
        """The cached page (or None) and the generation to store a fresh one under.

        The generation is read *before* the caller reads PostgreSQL, so a page
        built from data older than a concurrent write carries the old
        generation and is never served.  The generation and the page travel
        in one pipeline: one round trip.
        """

        def run() -> tuple[str | None, str]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self._listgen_key(org))
            pipe.get(self._list_key(org, key))
            gen_raw, raw = pipe.execute()
            gen = bytes(gen_raw).decode() if gen_raw is not None else "0"
            if raw is None:
                return None, gen
            built_at, page = bytes(raw).decode().split("\n", 1)
            return (page if built_at == gen else None), gen

        unavailable: tuple[str | None, str] = (None, "")
        return self._guard(run, unavailable, op="get_list")

    def put_list(self, org: str, key: str, generation: str, value: str) -> None:
        if not generation:
            return  # the cache was unavailable when the page was read
        self._guard(
            lambda: self.client.set(
                self._list_key(org, key), f"{generation}\n{value}", ex=self.list_ttl_s
            ),
            None,
            op="put_list",
        )

    def bump_lists(self, org: str) -> bool:
        def run() -> bool:
            self.client.incr(self._listgen_key(org))
            return True

        return self._guard(run, False, op="bump_lists")

    # -- purge ---------------------------------------------------------------
    def evict_document(self, org: str, doc_id: str) -> bool:
        """Implements ``CacheEviction``: the document's entry (a tombstone, a fence or
        a body), its validator, and every list page of its org (the generation
        moves on; old pages expire within the list TTL and are unreachable at once).
        A purge deletes rather than stores a tombstone: the document no longer
        exists, and an id reused later counts on above the purge's version (its
        version floor, migration 0011), so nothing older can shadow it."""
        if not self.enabled:
            return True

        def run() -> bool:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self._doc_key(org, doc_id), self._etag_key(org, doc_id))
            pipe.incr(self._listgen_key(org))
            pipe.execute()
            return True

        return self._guard(run, False, op="evict", always=True)

    # -- health ---------------------------------------------------------------------
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        return "ok" if self.breaker.state == "closed" else "degraded"

    def ping(self) -> bool:
        return bool(self._guard(self.client.ping, False, op="ping"))
