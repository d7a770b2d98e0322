"""The API's Lambda TOKEN authorizer (functions/authorizer.py): RS256 tokens of a local
OIDC issuer, verified with the app's code; the answer API Gateway caches, and the app
reading it back (chalicelib/api/auth.py ``principal_from_context``)."""

from __future__ import annotations

import functools
import time
from typing import Any

import jwt
import pytest

from chalicelib.api import auth
from chalicelib.api.auth import authenticate, principal_for, principal_from_context
from chalicelib.api.oidc import JwksKeys
from chalicelib.config import Settings
from chalicelib.domain.errors import Unauthorized
from devtools.events import LambdaContext
from functions import authorizer
from tests.oidc_issuer import SigningKey

ISSUER, AUDIENCE = "https://issuer.test/pool", "docs-api"
METHOD = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/documents/d1"
STAGE = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/*/*"
KEY = SigningKey("k1")


JWKS_URL = "https://issuer.test/pool/.well-known/jwks.json"


def _published(keys: list[SigningKey]) -> Any:
    """The issuer's JWKS as the fetch returns it (unit tests open no socket; the HTTP
    fetch itself: tests/integration/test_oidc.py)."""

    def fetch(url: str, timeout_s: float) -> dict[str, Any]:
        if not keys:
            raise OSError("the issuer is unreachable")
        return {"keys": [k.jwk for k in keys]}

    return fetch


@pytest.fixture(autouse=True)
def issuer(monkeypatch: pytest.MonkeyPatch) -> list[SigningKey]:
    """One key cache per test, over the keys the issuer publishes."""
    keys = [KEY]

    def cache(url: str, ttl_s: int, min_refresh_s: float, timeout_s: float) -> JwksKeys:
        return JwksKeys(url, ttl_s=ttl_s, min_refresh_s=min_refresh_s, fetch=_published(keys))

    monkeypatch.setattr(auth, "_jwks_keys", functools.lru_cache(maxsize=4)(cache))
    return keys


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    configured = Settings(
        jwt_jwks_url=JWKS_URL,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        machine_clients=("bot-a=org-a",),
        trust_authorizer_claims=True,
    )
    monkeypatch.setattr(authorizer, "get_settings", lambda: configured)
    return configured


def user_token(key: SigningKey = KEY, **claims: Any) -> str:
    defaults = {"iss": ISSUER, "aud": AUDIENCE, "roles": ["reader", "writer"]}
    return key.token(**{**defaults, **claims})


def machine_token(key: SigningKey = KEY, **claims: Any) -> str:
    """A client-credentials access token as Cognito issues it: no aud, org or roles."""
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "bot-a", "client_id": "bot-a", "token_use": "access",
               "scope": "docs/write", "iat": now, "exp": now + 300, **claims}  # fmt: skip
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})


def invoke(token: str, method_arn: str = METHOD) -> dict[str, Any]:
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": method_arn}
    answer: dict[str, Any] = authorizer.handler(event, LambdaContext.new())  # type: ignore[arg-type]
    return answer


def _allowed_on_the_stage(answer: dict[str, Any]) -> None:
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement == {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE}
    assert all(isinstance(v, str) for v in answer["context"].values())  # flat, API Gateway's


def test_a_users_id_token_is_allowed_on_the_whole_stage_with_its_principal(
    settings: Settings,
) -> None:
    token = user_token()
    answer = invoke(token)
    _allowed_on_the_stage(answer)
    context = answer["context"]
    assert answer["principalId"] == "alice"
    assert (context["sub"], context["org"], context["roles"]) == ("alice", "acme", "reader,writer")
    assert (context["machine"], context["iss"], context["aud"]) == ("false", ISSUER, AUDIENCE)
    assert abs(int(context["exp"]) - (time.time() + 300)) < 60
    # the app reads the same principal it would get from the token itself
    header = authenticate({"authorization": f"Bearer {token}"}, {}, settings, "r1")
    assert principal_from_context({**context, "principalId": "alice"}, settings, "r1") == header


def test_a_machine_clients_access_token_is_allowed_as_its_registration(settings: Settings) -> None:
    token = machine_token()
    answer = invoke(token)
    _allowed_on_the_stage(answer)
    context = answer["context"]
    assert (context["sub"], context["org"], context["roles"]) == ("bot-a", "org-a", "writer")
    assert (context["machine"], context["client_id"], context["token_use"]) == (
        "true",
        "bot-a",
        "access",
    )
    who = principal_from_context(context, settings, "r2")
    assert who.machine and who.org == "org-a" and who.roles == {"writer"}
    assert who == authenticate({"authorization": f"Bearer {token}"}, {}, settings, "r2")


def test_the_policy_covers_every_method_because_the_answer_is_cached_per_token(
    settings: Settings,
) -> None:
    post = METHOD.replace("/GET/documents/d1", "/POST/documents")
    assert invoke(user_token(), post)["policyDocument"]["Statement"][0]["Resource"] == STAGE
    with pytest.raises(ValueError, match="execute-api"):
        authorizer.stage_arn("arn:aws:lambda:us-east-1:1:function:x")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: user_token(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda: user_token(iss="https://evil.test/pool"), id="wrong-issuer"),
        pytest.param(lambda: user_token(aud="another-api"), id="wrong-audience"),
        pytest.param(lambda: machine_token(sub="bot-z", client_id="bot-z"), id="unregistered"),
        pytest.param(lambda: machine_token(org="org-b"), id="machine-claims-another-org"),
        pytest.param(lambda: user_token(SigningKey("k1")), id="forged-same-kid"),
        pytest.param(lambda: user_token(SigningKey("k9")), id="unknown-key"),
        pytest.param(lambda: user_token()[:-6] + "AAAAAA", id="tampered-signature"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
def test_a_bad_token_is_api_gateways_401(settings: Settings, token: Any) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$") as raised:
        invoke(token())
    assert type(raised.value) is Exception  # the exact shape API Gateway turns into 401


def test_a_missing_or_non_bearer_header_is_a_401(settings: Settings) -> None:
    for header in ("", "Basic abc", "Bearer "):
        event = {"type": "TOKEN", "authorizationToken": header, "methodArn": METHOD}
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorizer.handler(event, LambdaContext.new())  # type: ignore[arg-type]


def test_a_machine_client_without_the_apis_scopes_is_denied(settings: Settings) -> None:
    answer = invoke(machine_token(scope="other/read"))
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and "context" not in answer


def test_an_issuer_whose_keys_cannot_be_fetched_is_a_failure_not_a_401(
    settings: Settings, issuer: list[SigningKey]
) -> None:
    issuer.clear()  # nothing fetched yet, and the fetch fails: a 500, nothing cached
    with pytest.raises(authorizer.AuthorizerUnavailable):
        invoke(user_token())


def test_the_load_probe_is_answered_without_a_token() -> None:
    from chalicelib.observability import SMOKE_PROBE

    probe = {SMOKE_PROBE: "load"}
    assert authorizer.handler(probe, LambdaContext.new()) == {"smoke": "ok"}  # type: ignore[arg-type]


# -- the app reading the context back -------------------------------------------------
def _context(settings: Settings, **changes: str) -> dict[str, Any]:
    claims = {"sub": "alice", "org": "acme", "roles": ["reader"], "iss": ISSUER,
              "aud": AUDIENCE, "exp": int(time.time()) + 300}  # fmt: skip
    who = principal_for(claims, settings, None)
    return {**authorizer.context_of(claims, who), "principalId": "alice", **changes}


def test_the_app_refuses_a_cached_context_whose_token_has_expired(settings: Settings) -> None:
    """API Gateway may serve a cached Allow for the TTL after the token's exp."""
    past = str(int(time.time()) - settings.jwt_leeway_s - 5)
    with pytest.raises(Unauthorized, match="expired"):
        principal_from_context(_context(settings, exp=past), settings, None)
    within_leeway = str(int(time.time()) - 1)
    assert principal_from_context(_context(settings, exp=within_leeway), settings, None)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": ""},
        {"exp": "soon"},
        {"iss": "https://evil.test/pool"},
        {"aud": "another-api"},
        {"sub": ""},
        {"org": ""},
        {"org": "a\x00b"},
        {"machine": "true"},  # a user's token said to be a machine client's
        {"token_use": "access", "client_id": "bot-a", "aud": ""},  # a machine's, said a user's
    ],
)
def test_the_app_holds_the_context_to_its_settings(
    settings: Settings, changes: dict[str, str]
) -> None:
    with pytest.raises(Unauthorized):
        principal_from_context(_context(settings, **changes), settings, None)


def test_a_machine_context_must_match_the_apps_registration(settings: Settings) -> None:
    answer = invoke(machine_token())
    context = answer["context"]
    assert principal_from_context(context, settings, None).org == "org-a"
    with pytest.raises(Unauthorized, match="not registered"):
        principal_from_context({**context, "org": "org-b"}, settings, None)
    moved = Settings(jwt_jwks_url=JWKS_URL, jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                     machine_clients=("bot-a=org-c",))  # fmt: skip
    with pytest.raises(Unauthorized, match="not registered"):  # re-registered since the cache
        principal_from_context(context, moved, None)
