"""OIDC signing keys: the issuer's JWKS, by ``kid``, cached, refreshed with restraint.

Tokens of an OIDC issuer (Cognito, or any other) are signed with one of the
keys its JWKS document publishes, named by the token header's ``kid``:

* the key set is fetched once and used for ``DOCS_JWT_JWKS_TTL_S`` (300 s);
* a token naming a ``kid`` the cached set lacks (the issuer rotated: a new
  key appeared) refetches the set **once**, and at most once per
  ``DOCS_JWT_JWKS_MIN_REFRESH_S`` (30 s) whatever the tokens say, so tokens
  with made-up ``kid`` values cannot turn every request into a fetch (no
  refresh storm, no amplification towards the issuer);
* during a rotation the set holds the old and the new key and both verify;
  a key the issuer removed stops verifying at the next refresh, and tokens
  verified with it before are dropped from the verified-token cache then too
  (``known``);
* RS256 (RSA) and ES256 (EC P-256) keys; the algorithm is the key's, and the
  token header must name the same one (no algorithm confusion: an RSA public
  key is never used as an HMAC secret, ``none`` is never accepted);
* a fetch that fails keeps serving the keys it had (the issuer's outage is
  not ours); with no keys at all it is a 503, not a 401.

The URL must be ``https``, or ``http`` to a loopback address (local tests and
the local stack).  The answer is read up to 64 KiB.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt

from chalicelib.domain.errors import DependencyUnavailable, Unauthorized

ALGORITHMS = ("RS256", "ES256")
_MAX_BYTES = 64 * 1024
_UNKNOWN_KEY = "The token's signing key is not known."


def _algorithm(jwk: dict[str, Any]) -> str | None:
    """The algorithm a JWK is for: its ``alg``, else what its key type implies."""
    alg = jwk.get("alg")
    if alg is None:
        if jwk.get("kty") == "RSA":
            alg = "RS256"
        elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            alg = "ES256"
    return alg if alg in ALGORITHMS else None


def check_url(url: str) -> str:
    """``https``, or ``http`` to a loopback host; anything else is a setup error."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):  # a name, not an address
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return url
    raise ValueError(f"DOCS_JWT_JWKS_URL must be https (or http to a loopback host): {url!r}")


def fetch_jwks(url: str, timeout_s: float) -> dict[str, Any]:
    """GET the JWKS document (urllib: no dependency for one small request)."""
    request = urllib.request.Request(  # noqa: S310 - the URL passed check_url
        check_url(url), headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - checked
        raw = response.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise ValueError("the JWKS document is too large")
    document = json.loads(raw)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    return document


class JwksKeys:
    """One issuer's signing keys (see the module docstring); thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 300.0,
        min_refresh_s: float = 30.0,
        timeout_s: float = 2.0,
        fetch: Callable[[str, float], dict[str, Any]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(url)
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.timeout_s = timeout_s
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, tuple[Any, str]] = {}  # kid -> (public key, algorithm)
        self._fetched_at: float | None = None  # last fetch that succeeded
        self._tried_at: float | None = None  # last fetch attempt
        self._lock = threading.Lock()
        self.fetches = 0

    def signing_key(self, token: str) -> tuple[Any, str]:
        """(public key, algorithm) for ``token``, by its header's ``kid``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(
                "The token is malformed: it is not a signed JWT this API can read."
            ) from None
        kid, alg = header.get("kid"), header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized("The token is signed with an algorithm this API does not take.")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("The token names no signing key (kid).")
        found = self._lookup(kid)
        if found is None:
            raise Unauthorized(_UNKNOWN_KEY)
        if found[1] != alg:
            raise Unauthorized("The token is signed with an algorithm this API does not take.")
        return found

    def known(self, kid: str | None) -> bool:
        """Whether ``kid`` is in the current set (no fetch): a token verified with a
        key the issuer has since removed is not trusted from a cache any more."""
        self._refresh_if_stale()
        return kid is not None and kid in self._keys

    def _lookup(self, kid: str) -> tuple[Any, str] | None:
        self._refresh_if_stale()
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:  # an unknown kid: one refresh, rate-limited, for every thread
            found = self._keys.get(kid)
            if found is None and self._may_refresh():
                self._refresh()
                found = self._keys.get(kid)
        return found

    def _refresh_if_stale(self) -> None:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at < self.ttl_s:
            return
        with self._lock:
            fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self.ttl_s
            if not fresh and self._may_refresh():
                self._refresh()
        if not self._keys and self._fetched_at is None:
            raise DependencyUnavailable(
                "The token issuer's signing keys cannot be fetched; retry shortly.",
                retry_after_s=5,
            )

    def _may_refresh(self) -> bool:
        return self._tried_at is None or self._clock() - self._tried_at >= self.min_refresh_s

    def _refresh(self) -> None:
        """Fetch the set (under the lock); on failure keep what we had."""
        self._tried_at = self._clock()
        self.fetches += 1
        try:
            document = self._fetch(self.url, self.timeout_s)
        except (OSError, ValueError):
            return
        keys: dict[str, tuple[Any, str]] = {}
        for jwk in document["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            kid, alg = jwk.get("kid"), _algorithm(jwk)
            if not isinstance(kid, str) or alg is None:
                continue
            try:
                keys[kid] = (jwt.PyJWK(jwk, algorithm=alg).key, alg)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # one bad key does not spoil the set
        self._keys = keys
        self._fetched_at = self._clock()
