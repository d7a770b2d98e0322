"""OIDC verification against a local JWKS server (docs/security.md, "Production identity").

The service verifies the tokens itself (``DOCS_JWT_JWKS_URL``), as it does
locally: keys by ``kid``, RS256 and ES256, the key set cached and refetched
once (and at most once per interval) for an unknown ``kid``, a rotation with
two keys, and a removed key refused after the refresh.  The claim checks are
the same strict ones as for HS256 tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import jwt
import pytest

from chalicelib.api.auth import authenticate, jwks_keys
from chalicelib.api.oidc import JwksKeys
from chalicelib.config import Settings
from chalicelib.domain.errors import DependencyUnavailable, Unauthorized
from tests.oidc_issuer import JwksServer, SigningKey

pytestmark = pytest.mark.integration

OLD = SigningKey("old-rsa")
NEW = SigningKey("new-ec", "ES256")


@pytest.fixture
def issuer() -> Iterator[JwksServer]:
    server = JwksServer([OLD])
    yield server
    server.close()


def settings_for(server: JwksServer, **extra: object) -> Settings:
    # a fresh key cache per test: the path makes the URL (the cache key) unique
    url = f"{server.url}?t={uuid.uuid4().hex}"
    return Settings(jwt_jwks_url=url, jwt_secret=None, jwt_jwks_min_refresh_s=3600, **extra)


def who(token: str, settings: Settings) -> str:
    principal = authenticate({"authorization": f"Bearer {token}"}, {}, settings, "rid")
    return f"{principal.org}/{principal.sub}"


def test_rs256_and_es256_tokens_verify_by_kid(issuer: JwksServer) -> None:
    issuer.keys = [OLD, NEW]
    settings = settings_for(issuer)
    assert who(OLD.token(sub="rsa-user"), settings) == "acme/rsa-user"
    assert who(NEW.token(sub="ec-user"), settings) == "acme/ec-user"
    assert issuer.fetches == 1  # one fetch served both keys


def test_a_rotation_fetches_once_then_both_keys_verify_until_the_old_one_goes(
    issuer: JwksServer,
) -> None:
    settings = Settings(jwt_jwks_url=f"{issuer.url}?t={uuid.uuid4().hex}", jwt_secret=None,
                        jwt_jwks_min_refresh_s=0)  # fmt: skip
    old_token = OLD.token()
    assert who(old_token, settings) == "acme/alice"
    issuer.keys = [OLD, NEW]  # the issuer publishes the new key, then signs with it
    assert who(NEW.token(), settings) == "acme/alice"
    assert issuer.fetches == 2  # the unknown kid refreshed the set once
    assert who(OLD.token(sub="bob"), settings) == "acme/bob"  # old key: still valid
    assert issuer.fetches == 2
    issuer.keys = [NEW]  # the old key is withdrawn
    forged_kid = SigningKey("old-rsa-2").token()
    with pytest.raises(Unauthorized, match="signing key is not known"):
        who(forged_kid, settings)  # an unknown kid refreshes: the old key is gone now
    with pytest.raises(Unauthorized, match="signing key is not known"):
        who(OLD.token(sub="carol"), settings)
    with pytest.raises(Unauthorized):
        who(old_token, settings)  # verified before, cached: dropped with its key
    assert who(NEW.token(), settings) == "acme/alice"


def test_unknown_kids_cannot_cause_a_refresh_storm(issuer: JwksServer) -> None:
    now = [0.0]
    keys = JwksKeys(issuer.url, ttl_s=300, min_refresh_s=30, clock=lambda: now[0])
    assert keys.signing_key(OLD.token())[1] == "RS256"
    assert issuer.fetches == 1
    for at, expected in ((10.0, 1), (31.0, 2), (45.0, 2), (62.0, 3)):
        now[0] = at
        for n in range(20):  # many tokens naming made-up keys, at once
            with pytest.raises(Unauthorized):
                keys.signing_key(OLD.token(header={"kid": f"made-up-{n}"}))
        assert issuer.fetches == expected  # at most one refresh per interval
    now[0] = 400.0  # past the TTL the set is refetched anyway, once
    keys.signing_key(OLD.token())
    keys.signing_key(OLD.token())
    assert issuer.fetches == 4


def test_the_claims_are_held_to_the_same_strict_shape(issuer: JwksServer) -> None:
    issuer.keys = [OLD, NEW]
    settings = settings_for(issuer)
    claims = jwt.decode(OLD.token(), options={"verify_signature": False})
    for bad in (
        OLD.token(iss="elsewhere"),
        OLD.token(aud="another-api"),
        OLD.token(exp=1),
        OLD.token(roles="admin"),
        OLD.token(org="a\nb"),
        OLD.token(iat=0, exp=10**10),  # lives far too long
        OLD.token()[:-6] + "AAAAAA",  # a signature that does not verify
        jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "old-rsa"}),
        jwt.encode(claims, None, algorithm="none", headers={"kid": "old-rsa"}),
        NEW.token(header={"kid": "old-rsa"}),  # an ES256 signature under an RS256 key's kid
    ):
        with pytest.raises(Unauthorized):
            who(bad, settings)


def test_an_issuer_that_cannot_be_reached_is_a_503_not_a_401() -> None:
    settings = Settings(jwt_jwks_url=f"http://127.0.0.1:9/{uuid.uuid4().hex}", jwt_secret=None,
                        jwt_jwks_timeout_s=0.5)  # fmt: skip
    with pytest.raises(DependencyUnavailable):
        who(OLD.token(), settings)
    assert jwks_keys(settings).fetches == 1
    with pytest.raises(DependencyUnavailable):
        who(OLD.token(), settings)  # and it is not asked again at once
    assert jwks_keys(settings).fetches == 1


def test_the_jwks_url_must_be_https_outside_loopback() -> None:
    from chalicelib.api.oidc import check_url

    assert check_url("https://issuer.example/.well-known/jwks.json")
    assert check_url("http://localhost:8000/jwks")
    for url in ("http://issuer.example/jwks", "file:///etc/passwd", "ftp://x/jwks"):
        with pytest.raises(ValueError, match="must be https"):
            check_url(url)
