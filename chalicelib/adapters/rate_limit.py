"""Per-principal token bucket in Redis: one Lua script, atomic, clocked by Redis.

Each principal (org + subject) has a bucket of ``burst`` tokens refilled at
``rate`` per second (both per role, configurable).  A request takes one token;
an empty bucket means 429 with ``Retry-After`` and ``RateLimit-*`` headers.
The limiter fails open: when Redis is unreachable (or its breaker is open)
requests are allowed and counted in the ``RateLimitFailOpen`` metric, because
availability matters more than exact fairness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

from chalicelib.observability import count

# KEYS[1] = bucket; ARGV = rate per second, burst.  Returns {allowed, tokens left * 1000}.
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
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
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


class RateLimiter:
    def __init__(self, cache: Any, limits: dict[str, tuple[float, int]], prefix: str) -> None:
        self.cache = cache  # the RedisCache: shares its client and breaker
        self.limits = limits  # role -> (rate per second, burst)
        self.prefix = prefix
        self._script: Any = None

    def check(self, org: str, sub: str, role: str) -> Decision | None:
        """A decision, or None when the limiter is off or failing open."""
        rate, burst = self.limits.get(role, self.limits["reader"])
        breaker = self.cache.breaker
        if not self.cache.enabled or not breaker.allow():
            count("RateLimitFailOpen")
            return None
        try:
            if self._script is None:
                self._script = self.cache.client.register_script(_BUCKET_SCRIPT)
            allowed, milli_tokens = self._script(
                keys=[f"{self.prefix}rl:{org}:{sub}"], args=[rate, burst]
            )
        except (redis.RedisError, OSError):
            breaker.failure()
            count("RateLimitFailOpen")
            return None
        breaker.success()
        tokens = int(milli_tokens) / 1000
        return Decision(
            allowed=bool(allowed),
            limit=burst,
            remaining=int(tokens),
            reset_s=math.ceil((burst - tokens) / rate),
            retry_after_s=max(1, math.ceil((1 - tokens) / rate)),
        )
