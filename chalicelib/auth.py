"""Who is calling: bearer JWT verification, or the API Gateway authorizer's claims.

In AWS the API Gateway authorizer verifies the token and puts its claims in
the request context (``DOCS_TRUST_AUTHORIZER_CLAIMS=true``); locally the
service verifies the token itself: HS256 with ``DOCS_JWT_SECRET``, or RS256
through a JWKS URL (``DOCS_JWT_JWKS_URL``).  ``iss``, ``aud`` and ``exp`` are
always required.  The org comes only from the verified claims.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jwt

from chalicelib.config import Settings
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.principal import ROLE_RANK, Principal

_REQUIRED = ["exp", "iss", "aud", "sub"]


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def _roles(raw: Any) -> frozenset[str]:
    if isinstance(raw, str):  # Cognito/API GW stringify lists: "[reader writer]" or "a,b"
        raw = raw.strip("[]").replace(",", " ").split()
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(r for r in raw if isinstance(r, str) and r in ROLE_RANK)


def principal_from_claims(claims: dict[str, Any], request_id: str | None) -> Principal:
    org, sub = claims.get("org"), claims.get("sub")
    if not isinstance(org, str) or not org or not isinstance(sub, str) or not sub:
        raise Unauthorized("The token has no 'org' or 'sub' claim.")
    return Principal(sub=sub, org=org, roles=_roles(claims.get("roles")), request_id=request_id)


class _VerifiedTokens:
    """A small LRU of tokens already verified, so a warm function does not
    re-check the signature of the same bearer token on every request.

    Only successful verifications are kept, keyed by the token *and* the
    verification settings; ``exp`` is re-checked on every hit.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], leeway_s: int) -> dict[str, Any] | None:
        with self._lock:
            claims = self._items.get(key)
            if claims is None:
                return None
            if claims["exp"] + leeway_s < time.time():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return claims

    def put(self, key: tuple[Any, ...], claims: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = claims
            if len(self._items) > self.size:
                self._items.popitem(last=False)


_VERIFIED = _VerifiedTokens()


def verify_token(token: str, settings: Settings) -> dict[str, Any]:
    key = (
        token,
        settings.jwt_secret,
        settings.jwt_jwks_url,
        settings.jwt_issuer,
        settings.jwt_audience,
    )
    cached = _VERIFIED.get(key, settings.jwt_leeway_s)
    if cached is not None:
        return cached
    claims = _verify(token, settings)
    _VERIFIED.put(key, claims)
    return claims


def _verify(token: str, settings: Settings) -> dict[str, Any]:
    options = {"require": _REQUIRED}
    try:
        if settings.jwt_jwks_url:
            key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
            algorithms = ["RS256"]
        elif settings.jwt_secret:
            key, algorithms = settings.jwt_secret, ["HS256"]
        else:
            raise Unauthorized("Token verification is not configured on this server.")
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from None
    return claims


def authenticate(
    headers: Mapping[str, str], context: dict[str, Any], settings: Settings, request_id: str | None
) -> Principal:
    if settings.trust_authorizer_claims:
        authorizer = context.get("authorizer") or {}
        claims = authorizer.get("claims") or (authorizer.get("jwt") or {}).get("claims")
        if isinstance(claims, dict):
            return principal_from_claims(claims, request_id)
    header = headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal_from_claims(verify_token(token.strip(), settings), request_id)


def mint_token(
    settings: Settings, *, org: str, sub: str, roles: list[str], ttl_s: int = 3600
) -> str:
    """A dev token signed with the local secret (refuses without one)."""
    if not settings.jwt_secret:
        raise RuntimeError("DOCS_JWT_SECRET is not set: there is no dev secret to sign with.")
    now = int(time.time())
    claims = {
        "sub": sub,
        "org": org,
        "roles": roles,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
