"""Attacks on the API's Lambda authorizer (functions/authorizer.py) and on the app's
trust in its context (docs/security.md, "The API's authorizer"): through the
authorizer's handler with RS256 tokens of a JWKS issuer, then through ``app.handler``
with the context API Gateway would pass on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from devtools.events import LambdaContext, api_gateway_event
from functions import authorizer
from tests.oidc_issuer import JwksServer, SigningKey

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Authz"
AUDIENCE = "users-app-client"
METHOD = "arn:aws:execute-api:eu-west-1:123456789012:api1/prod/GET/documents"
KEY = SigningKey("authz-rsa")


@pytest.fixture
def deployed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The app and the authorizer configured as in AWS (one issuer, JWKS, registrations)."""
    from chalicelib import bootstrap

    issuer = JwksServer([KEY])
    update = {"machine_clients": ("bot-a=org-a",), "jwt_secret": None, "jwt_issuer": ISSUER,
              "jwt_audience": AUDIENCE, "trust_authorizer_claims": True,
              "jwt_jwks_url": f"{issuer.url}?t={uuid.uuid4().hex}"}  # fmt: skip
    built = bootstrap.build(settings.model_copy(update=update))
    bootstrap.set_container(built)
    monkeypatch.setattr(authorizer, "get_settings", lambda: built.settings)
    try:
        yield built
    finally:
        bootstrap.set_container(None)
        built.close()
        issuer.close()


def _authorize(token: str) -> dict[str, Any]:
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD}
    answer: dict[str, Any] = authorizer.handler(event, LambdaContext.new())  # type: ignore[arg-type]
    return answer


def _user(**claims: Any) -> str:
    return KEY.token(
        **{"iss": ISSUER, "aud": AUDIENCE, "org": "org-a", "roles": ["admin"], **claims}
    )


def _machine(**claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "bot-a", "client_id": "bot-a", "token_use": "access", "iss": ISSUER,
               "scope": "docs/read", "iat": now, "exp": now + 300, **claims}  # fmt: skip
    return jwt.encode(payload, KEY.private, algorithm="RS256", headers={"kid": KEY.kid})


def _through_the_app(context: dict[str, Any]) -> dict[str, Any]:
    """``GET /documents`` as API Gateway invokes the API after the authorizer allowed it."""
    import app

    event = api_gateway_event(tuple(app.app.routes), "GET", "/documents", headers={})
    event["requestContext"]["authorizer"] = {"principalId": context["sub"], **context}
    answer: dict[str, Any] = app.handler(event, LambdaContext.new())
    return answer


def _hs256_with_the_public_key() -> str:
    from cryptography.hazmat.primitives import serialization

    public = KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": KEY.kid, "typ": "JWT"}
    claims = jwt.decode(_user(), options={"verify_signature": False})
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(public, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


def _unsigned() -> str:
    claims = jwt.decode(_user(), options={"verify_signature": False})
    return jwt.encode(claims, None, algorithm="none", headers={"kid": KEY.kid})


@pytest.mark.parametrize(
    "forge",
    [
        # algorithm confusion: the issuer's public key used as an HMAC secret
        pytest.param(_hs256_with_the_public_key, id="hs256-with-public-key"),
        pytest.param(_unsigned, id="alg-none"),
        pytest.param(lambda: _machine(org="org-b"), id="machine-claims-another-org"),
        pytest.param(lambda: _machine(sub="bot-z", client_id="bot-z"), id="unregistered-client"),
        pytest.param(lambda: _machine(sub="alice"), id="user-access-token-of-other-client"),
        pytest.param(lambda: _user(aud="another-app-client"), id="another-app-clients-id-token"),
        pytest.param(lambda: _user(exp=int(time.time()) + 10**9), id="lives-too-long"),
    ],
)
def test_forged_or_misbound_tokens_are_refused_at_the_gateway(deployed: Any, forge: Any) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        _authorize(forge())


def test_a_cached_allow_replayed_after_the_tokens_exp_is_refused_by_the_app(deployed: Any) -> None:
    """API Gateway caches the Allow per token for 300 s; a token that expires inside that
    window is still let through the gateway, and the app answers 401."""
    answer = _authorize(_user(exp=int(time.time()) + 2))
    assert _through_the_app(answer["context"])["statusCode"] == 200
    late = {**answer["context"], "exp": str(int(time.time()) - deployed.settings.jwt_leeway_s - 1)}
    result = _through_the_app(late)
    assert result["statusCode"] == 401, result["body"]


def test_a_machine_client_deregistered_since_its_answer_was_cached_is_refused(
    deployed: Any,
) -> None:
    from chalicelib import bootstrap

    answer = _authorize(_machine())
    assert _through_the_app(answer["context"])["statusCode"] == 200
    moved = deployed.settings.model_copy(update={"machine_clients": ("bot-a=org-b",)})
    bootstrap.container().settings = moved  # the app redeployed with another registration
    assert _through_the_app(answer["context"])["statusCode"] == 401


def test_a_context_claiming_machine_for_a_users_token_is_refused(deployed: Any) -> None:
    context = _authorize(_user())["context"]
    assert _through_the_app({**context, "machine": "true"})["statusCode"] == 401
    assert _through_the_app({**context, "iss": "https://evil.example"})["statusCode"] == 401
