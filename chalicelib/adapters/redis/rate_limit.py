"""Per-principal token bucket in Redis: one Lua script, atomic, clocked by Redis.

Each principal (org + subject) has a bucket of ``burst`` tokens refilled at
``rate`` per second (both per role, configurable).  A request takes one token;
an empty bucket means 429 with ``Retry-After`` and ``RateLimit-*`` headers.
The limiter fails open: when Redis is unreachable (or its breaker is open)
requests are allowed and counted in the ``RateLimitFailOpen`` metric, because
availability matters more than exact fairness.

To keep the hot path at one Redis round trip, a process *leases* a few tokens
at a time (burst / 20, between 1 and 10) and spends them locally for up to
``lease_s``.  Leased tokens are taken from the shared bucket, so the limit is
never exceeded; the price is that tokens a process leased but did not use
expire, so a principal spread over P processes may be refused up to
P * (lease - 1) requests early.  With a burst under 40 the lease is 1: exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from chalicelib.adapters.redis.cache import RedisCache
from chalicelib.adapters.redis.namespace import KeyNamespace
from chalicelib.domain.keys import join_key
from chalicelib.observability import count

# KEYS[1] = bucket; ARGV = rate per second, burst, tokens wanted.
# Returns {tokens granted (0..wanted), tokens left * 1000}.
_BUCKET_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = math.min(tonumber(ARGV[3]), math.floor(tokens))
tokens = tokens - allowed
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


@dataclass
class _Lease:
    tokens: int
    shared_left: float  # what the shared bucket held when we leased
    expires: float


class RateLimiter:
    def __init__(
        self,
        cache: RedisCache,
        limits: dict[str, tuple[float, int]],
        namespace: KeyNamespace,
        *,
        lease_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache  # the RedisCache: shares its client and breaker
        self.limits = limits  # role -> (rate per second, burst)
        self.namespace = namespace
        self.lease_s = lease_s
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._script: Any = None

    def check(self, org: str, sub: str, role: str) -> Decision | None:
        """A decision, or None when the limiter is off or failing open."""
        rate, burst = self.limits.get(role, self.limits["reader"])
        key = f"{self.namespace.prefix}rl:{join_key(org, sub)}"
        now = self._clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and lease.tokens > 0 and lease.expires > now:
                lease.tokens -= 1
                return self._decision(True, lease.shared_left + lease.tokens, rate, burst)
        breaker = self.cache.breaker
        if not self.cache.enabled or not breaker.allow():
            count("RateLimitFailOpen")
            return None
        want = max(1, min(10, burst // 20))
        try:
            if self._script is None:
                self._script = self.cache.client.register_script(_BUCKET_SCRIPT)
            granted, milli_tokens = self._script(keys=[key], args=[rate, burst, want])
        except (redis.RedisError, OSError):
            breaker.failure()
            count("RateLimitFailOpen")
            return None
        breaker.success()
        shared_left = int(milli_tokens) / 1000
        granted = int(granted)
        if granted > 1:
            with self._lock:
                self._leases[key] = _Lease(granted - 1, shared_left, now + self.lease_s)
        return self._decision(granted > 0, shared_left + max(0, granted - 1), rate, burst)

    @staticmethod
    def _decision(allowed: bool, tokens: float, rate: float, burst: int) -> Decision:
        return Decision(
            allowed=allowed,
            limit=burst,
            remaining=int(tokens),
            reset_s=math.ceil((burst - tokens) / rate),
            retry_after_s=max(1, math.ceil((1 - tokens) / rate)),
        )
