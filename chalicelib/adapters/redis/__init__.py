"""The Redis adapters, sharing one client and one circuit breaker per process.

cache.py        the versioned document cache (``DocumentCache``)
rate_limit.py   per-principal token buckets
breaker.py      the circuit breaker they share
"""
