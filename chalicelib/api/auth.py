"""Who is calling: bearer JWT verification, or the API Gateway authorizer's claims.

In AWS the API Gateway authorizer (functions/authorizer.py, a Lambda TOKEN
authorizer running this module's ``verify_token``) verifies the token and puts
the verified principal in the request context (``DOCS_TRUST_AUTHORIZER_CLAIMS=true``),
and the app still holds its ``iss``, ``aud`` (or ``client_id``) and ``exp`` to its
settings (``principal_from_context``; a Cognito authorizer's ``claims`` are read too); locally the
service verifies the token itself: HS256 with ``DOCS_JWT_SECRET``, or RS256
or RS256 / ES256 through an OIDC issuer's JWKS (``DOCS_JWT_JWKS_URL``, keys by
``kid``, cached and refreshed with restraint: chalicelib/api/oidc.py).  The org comes only from the
verified claims, which are held to a strict shape (docs/security.md):

* ``iss``, ``aud``, ``sub`` and ``exp`` are required; ``exp``, ``nbf`` and
  ``iat`` must be JSON numbers; clocks may disagree by ``DOCS_JWT_LEEWAY_S``
  (30 s) either way; a token may not live longer than
  ``DOCS_JWT_MAX_LIFETIME_S`` (24 h: ``exp - iat``, or ``exp - now`` without
  ``iat``);
* ``org`` is 1-256 printable characters (no NUL or other control
  characters); ``sub`` is a user id under the one rule of
  domain/user_id.py (no look-alikes: no outer or doubled spaces, no
  invisible characters, NFC, no ``*`` or ``/``);
* ``roles`` is a list of role names (``reader``, ``writer``, ``admin``);
  names it does not know are ignored, anything but a list is refused.  Only
  the claims API Gateway's authorizer hands over may carry the list as the
  string it makes of one (``"[reader writer]"``).

An OAuth2 access token of a machine client (client credentials: ``token_use``
``access``, a ``client_id`` other than the users' app client, no ``aud``) is
held to its registration instead of ``aud`` and ``org``, and its scopes give
its role: chalicelib/api/machine_clients.py.

Failures are 401s with a fixed sentence per kind; no decoder text reaches
the client.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt

from chalicelib.api.machine_clients import is_machine_token, machine_principal, registration
from chalicelib.api.oidc import JwksKeys
from chalicelib.config import Settings
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.principal import ROLE_RANK, Principal
from chalicelib.domain.user_id import user_id_problem

if TYPE_CHECKING:
    from chalicelib.domain.realtime import Credentials

_REQUIRED = ["exp", "iss", "sub"]  # and aud, but for a machine client's access token
_TIME_CLAIMS = ("exp", "nbf", "iat")
_MAX_NAME = 256
# a fixed sentence per failure: library messages can quote the token's bytes
_JWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf or iat is in the future)."),
    (jwt.InvalidAudienceError, "The token is not meant for this API (aud)."),
    (jwt.InvalidIssuerError, "The token was not issued by a trusted issuer (iss)."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim (exp, iss, aud, sub)."),
    (jwt.InvalidSignatureError, "The token's signature does not verify."),
    (jwt.InvalidAlgorithmError, "The token is signed with an algorithm this API does not take."),
    (jwt.PyJWKClientError, "The token's signing key is not known."),
    (jwt.DecodeError, "The token is malformed: it is not a signed JWT this API can read."),
)


@lru_cache(maxsize=4)
def _jwks_keys(url: str, ttl_s: int, min_refresh_s: float, timeout_s: float) -> JwksKeys:
    """One key cache per issuer (and settings), for the life of the process."""
    return JwksKeys(url, ttl_s=ttl_s, min_refresh_s=min_refresh_s, timeout_s=timeout_s)


def jwks_keys(settings: Settings) -> JwksKeys:
    assert settings.jwt_jwks_url
    return _jwks_keys(
        settings.jwt_jwks_url,
        settings.jwt_jwks_ttl_s,
        settings.jwt_jwks_min_refresh_s,
        settings.jwt_jwks_timeout_s,
    )


def _roles(raw: Any, *, stringified: bool) -> frozenset[str]:
    """The known roles in a ``roles`` claim, which must be a list of names.

    ``stringified``: claims from API Gateway's authorizer, which turns a list
    into ``"[reader writer]"``; only that bracketed form is read as a list.
    """
    if raw is None:
        return frozenset()
    if stringified and isinstance(raw, str):
        text = raw.strip()
        if not (text.startswith("[") and text.endswith("]")):
            raise Unauthorized("The token's 'roles' claim must be a list of role names.")
        raw = text[1:-1].replace(",", " ").split()
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise Unauthorized("The token's 'roles' claim must be a list of role names.")
    return frozenset(r for r in raw if r in ROLE_RANK)


def _name(claims: dict[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise Unauthorized(f"The token has no '{claim}' claim.")
    if len(value) > _MAX_NAME or not value.isprintable():
        raise Unauthorized(
            f"The token's '{claim}' claim must be 1-{_MAX_NAME} printable characters "
            "(no control characters)."
        )
    return value


def _subject(claims: dict[str, Any]) -> str:
    sub = _name(claims, "sub")
    problem = user_id_problem(sub)
    if problem is not None:
        raise Unauthorized(f"The token's 'sub' claim is not a user id: a user id {problem}.")
    return sub


def principal_from_claims(
    claims: dict[str, Any], request_id: str | None, *, stringified: bool = False
) -> Principal:
    return Principal(
        sub=_subject(claims),
        org=_name(claims, "org"),
        roles=_roles(claims.get("roles"), stringified=stringified),
        request_id=request_id,
    )


def principal_for(
    claims: dict[str, Any], settings: Settings, request_id: str | None, *, stringified: bool = False
) -> Principal:
    """A user's principal, or a machine client's (chalicelib/api/machine_clients.py)."""
    if is_machine_token(claims, settings):
        return machine_principal(claims, settings, request_id)
    return principal_from_claims(claims, request_id, stringified=stringified)


def credentials(token: str, settings: Settings, request_id: str | None) -> Credentials:
    """A verified token as a real-time stream holds it: the caller, and the
    window the token is good for.  The stream ends where the HTTP API starts
    answering 401 for the same token: at ``exp`` plus ``DOCS_JWT_LEEWAY_S``."""
    from chalicelib.domain.realtime import Credentials

    claims = verify_token(token, settings)
    who = principal_for(claims, settings, request_id)
    exp = float(claims["exp"])
    iat = claims.get("iat")
    # without iat, the earliest a token of the allowed lifetime could have been issued
    issued_at = float(iat) if iat is not None else exp - settings.jwt_max_lifetime_s
    return Credentials(who, issued_at=issued_at, expires_at=exp + settings.jwt_leeway_s)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_times(claims: dict[str, Any], max_lifetime_s: int, now: float | None = None) -> None:
    """Time claims are numbers, and the token does not live longer than allowed."""
    for claim in _TIME_CLAIMS:
        if claim in claims and not _is_number(claims[claim]):
            raise Unauthorized(f"The token's '{claim}' claim must be a number (seconds).")
    start = claims.get("iat", time.time() if now is None else now)
    if claims["exp"] - start > max_lifetime_s:
        raise Unauthorized(
            f"The token lives longer than this API accepts ({max_lifetime_s} s from "
            "'iat' to 'exp'); ask the issuer for a shorter-lived token."
        )


class _VerifiedTokens:
    """A small LRU of tokens already verified, so a warm function does not
    re-check the signature of the same bearer token on every request.

    Only successful verifications are kept, keyed by the token *and* the
    verification settings; ``exp`` is re-checked on every hit.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        # token (+ settings) -> (claims, kid of the key that verified it: JWKS only)
        self._items: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        key: tuple[Any, ...],
        leeway_s: int,
        still_valid: Callable[[str | None], bool] | None = None,
    ) -> dict[str, Any] | None:
        """The claims of a token verified before, unless it expired or its key
        (``still_valid(kid)``) was withdrawn since."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            claims, kid = item
            withdrawn = still_valid is not None and not still_valid(kid)
            if claims["exp"] + leeway_s < time.time() or withdrawn:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return claims

    def put(self, key: tuple[Any, ...], claims: dict[str, Any], kid: str | None = None) -> None:
        with self._lock:
            self._items[key] = (claims, kid)
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
    keys = jwks_keys(settings) if settings.jwt_jwks_url else None
    cached = _VERIFIED.get(key, settings.jwt_leeway_s, keys.known if keys else None)
    if cached is not None:
        return cached
    claims, kid = _verify(token, settings, keys)
    check_times(claims, settings.jwt_max_lifetime_s)  # before caching: exp is then a number
    _VERIFIED.put(key, claims, kid)
    return claims


def _verify(
    token: str, settings: Settings, keys: JwksKeys | None
) -> tuple[dict[str, Any], str | None]:
    """The verified claims, and the ``kid`` of the JWKS key that verified them."""
    options = {"require": _REQUIRED, "verify_aud": False}  # aud: _check_audience
    kid = None
    try:
        if keys is not None:  # OIDC: the issuer's key named by kid (chalicelib/api/oidc.py)
            key, algorithm = keys.signing_key(token)
            algorithms = [algorithm]
            kid = jwt.get_unverified_header(token).get("kid")
        elif settings.jwt_secret:
            key, algorithms = settings.jwt_secret, ["HS256"]
        else:
            raise Unauthorized("Token verification is not configured on this server.")
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=algorithms,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.PyJWTError as exc:
        detail = next((text for kind, text in _JWT_ERRORS if isinstance(exc, kind)), None)
        raise Unauthorized(detail or "The token is not valid.") from None
    except (ValueError, TypeError, OverflowError):  # malformed segments some decoders let by
        raise Unauthorized(_JWT_ERRORS[-1][1]) from None
    if not isinstance(claims, dict):
        raise Unauthorized(_JWT_ERRORS[-1][1])
    if not is_machine_token(claims, settings):
        _check_audience(claims.get("aud"), settings.jwt_audience)
    return claims, kid


def _check_audience(aud: Any, audience: str) -> None:
    """``aud`` names this API: the string, or a list of strings holding it."""
    if aud is None:
        raise Unauthorized("The token lacks a required claim (exp, iss, aud, sub).")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise Unauthorized("The token is not meant for this API (aud).")
    if audience not in audiences:
        raise Unauthorized("The token is not meant for this API (aud).")


def _claim_values(raw: Any) -> list[str]:
    """A claim that may hold one string or several: a list, or the authorizer's
    stringified list ``"[a b]"``."""
    if isinstance(raw, list):
        return [v for v in raw if isinstance(v, str)]
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            return text[1:-1].replace(",", " ").split()
        return [text]
    return []


def check_authorizer_claims(claims: dict[str, Any], settings: Settings) -> None:
    """The issuer and audience of claims the API Gateway authorizer verified.

    A Cognito user-pool authorizer accepts any token of its pool(s), whatever app
    client it was issued to; the app holds it to ``DOCS_JWT_ISSUER`` (``iss``, the
    pool's URL) and ``DOCS_JWT_AUDIENCE`` (``aud`` of an ID token, ``client_id``
    of an access token: the app client id), as it does for tokens it verifies itself.
    """
    if claims.get("iss") != settings.jwt_issuer:
        raise Unauthorized("The token was not issued by a trusted issuer (iss).")
    if is_machine_token(claims, settings):
        return  # held to its registration instead (machine_principal)
    audiences = _claim_values(claims.get("aud")) or _claim_values(claims.get("client_id"))
    if settings.jwt_audience not in audiences:
        raise Unauthorized("The token is not meant for this API (aud).")


def _context_exp(raw: Any) -> float:
    """The ``exp`` the Lambda authorizer passed on: API Gateway hands context values
    over as strings (or numbers); seconds since the epoch either way."""
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return float(raw)
    if _is_number(raw):
        return float(raw)
    raise Unauthorized("The authorizer's context lacks the token's expiry (exp).")


def principal_from_context(
    context: Mapping[str, Any], settings: Settings, request_id: str | None
) -> Principal:
    """The principal the Lambda authorizer verified (functions/authorizer.py), from
    its flat context: the same Principal the claims would give, held again to the
    issuer and audience (``check_authorizer_claims``), to the machine client's
    registration, and to ``exp``: API Gateway caches an authorizer's answer per token
    for its TTL, which may outlive the token."""
    if _context_exp(context.get("exp")) + settings.jwt_leeway_s < time.time():
        raise Unauthorized("The token has expired.")
    claims = {k: context.get(k) for k in ("iss", "aud", "client_id", "token_use", "sub", "org")}
    check_authorizer_claims(claims, settings)
    machine = context.get("machine") in ("true", True)
    if machine != is_machine_token(claims, settings):
        raise Unauthorized("The authorizer's context does not say what kind of token it was.")
    sub, org = _subject(claims), _name(claims, "org")
    raw_roles = context.get("roles") or ""
    if not isinstance(raw_roles, str):
        raise Unauthorized("The token's 'roles' claim must be a list of role names.")
    roles = frozenset(r for r in raw_roles.split(",") if r in ROLE_RANK)
    if machine:  # the registration is the app's to hold, whatever the cache says
        found = registration(settings, sub)
        if found is None or found.org != org or claims.get("client_id") != sub:
            raise Unauthorized("The token's client (client_id) is not registered with this API.")
    return Principal(sub=sub, org=org, roles=roles, request_id=request_id, machine=machine)


def authenticate(
    headers: Mapping[str, str], context: dict[str, Any], settings: Settings, request_id: str | None
) -> Principal:
    if settings.trust_authorizer_claims:
        authorizer = context.get("authorizer") or {}
        claims = authorizer.get("claims") or (authorizer.get("jwt") or {}).get("claims")
        if isinstance(claims, dict):  # a Cognito user-pool authorizer's (or an HTTP API's)
            check_authorizer_claims(claims, settings)
            return principal_for(claims, settings, request_id, stringified=True)
        if authorizer.get("principalId") is not None:  # the Lambda authorizer's flat context
            return principal_from_context(authorizer, settings, request_id)
    header = headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal_for(verify_token(token.strip(), settings), settings, request_id)


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


def mint_machine_token(
    settings: Settings, *, client_id: str, scopes: list[str], ttl_s: int = 3600
) -> str:
    """A dev client-credentials access token, the shape Cognito issues (no ``aud``,
    no ``org``: the org comes from the client's registration), signed with the local
    secret (refuses without one)."""
    if not settings.jwt_secret:
        raise RuntimeError("DOCS_JWT_SECRET is not set: there is no dev secret to sign with.")
    now = int(time.time())
    claims = {
        "sub": client_id,
        "client_id": client_id,
        "token_use": "access",
        "scope": " ".join(scopes),
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
