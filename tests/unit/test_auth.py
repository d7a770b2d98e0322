from __future__ import annotations

import re
import time

import jwt
import pytest

from chalicelib.api.auth import authenticate, mint_token, verify_token
from chalicelib.config import Settings
from chalicelib.domain.errors import Forbidden, Unauthorized
from chalicelib.domain.principal import Principal

SECRET = "unit-secret-" + "y" * 40
SETTINGS = Settings(jwt_secret=SECRET)


def _token(secret: str = SECRET, **overrides: object) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "org": "acme", "roles": ["writer"], "iss": "docs-local",
              "aud": "docs-api", "exp": now + 60}  # fmt: skip
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_valid_token_gives_principal() -> None:
    who = authenticate({"authorization": f"Bearer {_token()}"}, {}, SETTINGS, "rid")
    assert who == Principal("alice", "acme", frozenset({"writer"}), "rid")


@pytest.mark.parametrize(
    "token",
    [
        _token(exp=int(time.time()) - 3600),
        _token(secret="wrong-secret-" + "z" * 40),
        _token(iss="someone-else"),
        _token(aud="another-api"),
        _token(exp=None),
        _token(org=None),
        _token()[:-4] + "AAAA",
        "not-a-jwt",
        "a.b.c",
    ],
)
def test_bad_tokens_are_unauthorized(token: str) -> None:
    with pytest.raises(Unauthorized):
        authenticate({"authorization": f"Bearer {token}"}, {}, SETTINGS, None)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(
        {
            "sub": "a",
            "org": "acme",
            "iss": "docs-local",
            "aud": "docs-api",
            "exp": int(time.time()) + 60,
        },
        key="",
        algorithm="none",
    )
    with pytest.raises(Unauthorized):
        verify_token(unsigned, SETTINGS)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_missing_or_malformed_header_is_unauthorized(header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    with pytest.raises(Unauthorized):
        authenticate(headers, {}, SETTINGS, None)


POOL = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"
CLIENT = "app-client-id"
TRUSTING = Settings(trust_authorizer_claims=True, jwt_issuer=POOL, jwt_audience=CLIENT)


def _authorizer(**claims: object) -> dict[str, object]:
    base = {"sub": "bob", "org": "beta", "roles": "[reader]", "iss": POOL, "aud": CLIENT}
    base.update(claims)
    return {"authorizer": {"claims": {k: v for k, v in base.items() if v is not None}}}


def test_authorizer_claims_are_trusted_only_when_configured() -> None:
    context = {"authorizer": {"claims": {"sub": "bob", "org": "beta", "roles": "[reader writer]",
                                         "iss": "docs-local", "aud": "docs-api"}}}  # fmt: skip
    trusting = Settings(jwt_secret=SECRET, trust_authorizer_claims=True)
    who = authenticate({}, context, trusting, None)
    assert who.org == "beta" and who.roles == frozenset({"reader", "writer"})
    with pytest.raises(Unauthorized):
        authenticate({}, context, SETTINGS, None)


def test_roles_are_cumulative() -> None:
    reader = Principal("a", "o", frozenset({"reader"}))
    admin = Principal("a", "o", frozenset({"admin"}))
    reader.require("reader")
    admin.require("writer")
    with pytest.raises(Forbidden):
        reader.require("writer")
    with pytest.raises(Forbidden):
        Principal("a", "o", frozenset({"superuser"})).require("reader")


def test_mint_token_round_trips_and_refuses_without_secret() -> None:
    token = mint_token(SETTINGS, org="acme", sub="z", roles=["admin"])
    assert verify_token(token, SETTINGS)["roles"] == ["admin"]
    with pytest.raises(RuntimeError):
        mint_token(Settings(jwt_secret=None), org="acme", sub="z", roles=[])


def test_verified_tokens_are_cached_but_expiry_still_applies(monkeypatch) -> None:
    import chalicelib.api.auth as auth

    calls = {"n": 0}
    real = auth._verify

    def counting(token: str, settings: Settings, keys: object = None) -> tuple[dict, str | None]:
        calls["n"] += 1
        return real(token, settings, keys)

    monkeypatch.setattr(auth, "_verify", counting)
    token = _token(jti="unique-to-this-test")
    for _ in range(3):
        assert verify_token(token, SETTINGS)["sub"] == "alice"
    assert calls["n"] == 1
    other = Settings(jwt_secret="another-secret-" + "q" * 40)
    with pytest.raises(Unauthorized):
        verify_token(token, other)  # a different key never reuses the cached result
    cache = auth._VerifiedTokens(size=2)
    cache.put(("old",), {"exp": time.time() - 100})
    assert cache.get(("old",), leeway_s=30) is None, "expired claims are never served"
    for name in ("a", "b", "c"):
        cache.put((name,), {"exp": time.time() + 100})
    assert cache.get(("a",), 0) is None and cache.get(("c",), 0) is not None, "bounded LRU"


@pytest.mark.parametrize(
    "claims",
    [
        {},  # an ID token: aud is the app client
        {"aud": None, "client_id": CLIENT, "token_use": "access"},  # an access token
        {"aud": f"[other-client {CLIENT}]"},  # the authorizer's stringified list
    ],
)
def test_authorizer_claims_of_our_pool_and_client_pass(claims: dict[str, object]) -> None:
    who = authenticate({}, _authorizer(**claims), TRUSTING, "rid")
    assert (who.sub, who.org) == ("bob", "beta")


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"}, "(iss)"),
        ({"iss": None}, "(iss)"),
        ({"aud": "another-client"}, "(aud)"),
        ({"aud": None}, "(aud)"),
        ({"aud": None, "client_id": "another-client"}, "(aud)"),
        ({"aud": "[another-client third]"}, "(aud)"),
        ({"aud": ["x"]}, "(aud)"),
    ],
)
def test_authorizer_claims_of_another_pool_or_client_are_refused(
    claims: dict[str, object], detail: str
) -> None:
    """The Cognito authorizer accepts any token of its pools, whatever the client: the
    app pins the issuer and audience (DOCS_JWT_ISSUER / DOCS_JWT_AUDIENCE) itself."""
    with pytest.raises(Unauthorized, match=re.escape(detail)):
        authenticate({}, _authorizer(**claims), TRUSTING, None)
