"""Attacks by machine clients (docs/security.md, "Machine clients").

A client-credentials token is bound to the org its client was registered for:
whatever org it claims (a claim in the token, a header, the body), it acts in
that org or is refused; its scopes cap what it may do; an unregistered client
gets nothing.  Through the Lambda handler, real PostgreSQL and Redis, with the
dev HS256 tokens (``devtools.cli token --client``) and with RS256 tokens of an
OIDC issuer's JWKS shaped as Cognito issues them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.api.auth import mint_machine_token
from tests.conftest import JWT_SECRET, Invoker, make_token
from tests.oidc_issuer import JwksServer, SigningKey

pytestmark = pytest.mark.integration

ORG_A, ORG_B = f"mc-a-{uuid.uuid4().hex[:6]}", f"mc-b-{uuid.uuid4().hex[:6]}"
CLIENTS = (f"bot-a={ORG_A}", f"bot-b={ORG_B}")


@pytest.fixture
def machine_container(settings: Any) -> Iterator[Any]:
    from chalicelib import bootstrap

    built = bootstrap.build(settings.model_copy(update={"machine_clients": CLIENTS}))
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def client(client_id: str, scopes: str) -> Invoker:
    from chalicelib.config import Settings

    settings = Settings(jwt_secret=JWT_SECRET)
    return Invoker(mint_machine_token(settings, client_id=client_id, scopes=scopes.split()))


def token_with(client_id: str = "bot-a", **claims: Any) -> str:
    import jwt

    now = int(time.time())
    payload = {"sub": client_id, "client_id": client_id, "token_use": "access",
               "scope": "docs/write", "iss": "docs-local", "iat": now, "exp": now + 300,
               **claims}  # fmt: skip
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def create(api: Invoker, title: str, **kw: Any) -> Any:
    return api("POST", "/documents", {"title": title, "body": {"n": 1}}, **kw)


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_a_client_acts_in_its_registered_org_only(machine_container: Any) -> None:
    bot_a = client("bot-a", "docs/read docs/write")
    r = create(bot_a, "from bot-a")
    assert r.status == 201, r
    doc_id = r.json()["id"]
    assert bot_a("GET", f"/documents/{doc_id}").status == 200
    # another org's client and another org's admin see nothing of it
    bot_b = client("bot-b", "docs/admin")
    assert bot_b("GET", f"/documents/{doc_id}").status == 404
    assert doc_id not in {d["id"] for d in bot_b("GET", "/documents").json()["items"]}
    admin_b = Invoker(make_token(org=ORG_B, sub="ada", roles=("admin",)))
    assert admin_b("GET", f"/documents/{doc_id}").status == 404
    # org A's admin sees it, and the audit trail names the client
    admin_a = Invoker(make_token(org=ORG_A, sub="ada", roles=("admin",)))
    assert admin_a("GET", f"/documents/{doc_id}").status == 200
    audit = admin_a("GET", f"/audit?document={doc_id}").json()["items"]
    assert [row["actor"] for row in audit] == ["bot-a"], audit


def test_a_client_cannot_reach_another_org_by_claim_header_or_body(
    machine_container: Any,
) -> None:
    # a token that claims org B is refused outright
    claims_b = Invoker(token_with(org=ORG_B))
    problem(create(claims_b, "claims B"), 401)
    problem(claims_b("GET", "/documents"), 401)
    # headers and body fields naming org B change nothing: the document lands in A
    bot_a = client("bot-a", "docs/write")
    headers = {"X-Org": ORG_B, "X-Tenant": ORG_B, "X-Amz-Org": ORG_B}
    r = bot_a("POST", "/documents", {"title": "t", "org": ORG_B, "metadata": {"org": ORG_B}},
              headers=headers)  # fmt: skip
    if r.status == 201:
        doc_id = r.json()["id"]
    else:  # the body's unknown field refused: the same document without it
        problem(r, r.status)
        r = create(bot_a, "t", headers=headers)
        assert r.status == 201, r
        doc_id = r.json()["id"]
    admin_b = Invoker(make_token(org=ORG_B, sub="ada", roles=("admin",)))
    assert admin_b("GET", f"/documents/{doc_id}").status == 404
    admin_a = Invoker(make_token(org=ORG_A, sub="ada", roles=("admin",)))
    assert admin_a("GET", f"/documents/{doc_id}").status == 200
    # roles in the token are not read: scopes only
    reader_claiming_admin = Invoker(token_with(scope="docs/read", roles=["admin"]))
    problem(create(reader_claiming_admin, "no"), 403)


def test_scopes_cap_what_a_client_may_do(machine_container: Any) -> None:
    writer = client("bot-a", "docs/write")
    r = create(writer, "scoped")
    assert r.status == 201, r
    doc_id, etag = r.json()["id"], r.headers["etag"]
    reader = client("bot-a", "docs/read")
    assert reader("GET", f"/documents/{doc_id}").status == 200
    body = problem(create(reader, "no"), 403)
    assert "writer" in body["detail"]
    problem(reader("DELETE", f"/documents/{doc_id}", headers={"If-Match": etag}), 403)
    problem(writer("GET", "/audit"), 403)  # admin only
    assert client("bot-a", "docs/admin")("GET", "/audit").status == 200
    # none of the API's scopes: 403, whatever else the token says
    for scopes in ("openid", "other/admin", "aws.cognito.signin.user.admin"):
        body = problem(client("bot-a", scopes)("GET", "/documents"), 403)
        assert "docs/read" in body["detail"]


def test_an_unregistered_or_malformed_client_is_refused(machine_container: Any) -> None:
    problem(client("bot-z", "docs/admin")("GET", "/documents"), 401)
    problem(Invoker(token_with(sub="bot-b"))("GET", "/documents"), 401)  # sub is not client_id
    problem(Invoker(token_with(scope=["docs/admin"]))("GET", "/documents"), 401)
    # signed with another key: not a token of this issuer at all
    import jwt

    forged = jwt.encode(jwt.decode(token_with(), options={"verify_signature": False}),
                        "x" * 48, algorithm="HS256")  # fmt: skip
    problem(Invoker(forged)("GET", "/documents"), 401)


def test_cognito_shaped_rs256_access_tokens_through_the_issuers_jwks(settings: Any) -> None:
    from chalicelib import bootstrap

    key = SigningKey("cognito-rsa")
    issuer = JwksServer([key])
    cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test"
    update = {"machine_clients": CLIENTS, "jwt_secret": None, "jwt_issuer": cognito,
              "jwt_audience": "users-app-client",
              "jwt_jwks_url": f"{issuer.url}?t={uuid.uuid4().hex}"}  # fmt: skip
    built = bootstrap.build(settings.model_copy(update=update))
    bootstrap.set_container(built)
    try:

        def access(client_id: str, scope: str, **extra: Any) -> Invoker:
            # what Cognito's token endpoint answers a client-credentials grant with
            import jwt

            now = int(time.time())
            claims = {"sub": client_id, "client_id": client_id, "token_use": "access",
                      "scope": scope, "iss": cognito, "version": 2, "auth_time": now,
                      "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex, **extra}  # fmt: skip
            raw = jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid})
            return Invoker(raw)

        r = create(access("bot-a", "docs/write"), "via cognito")
        assert r.status == 201, r
        doc_id = r.json()["id"]
        assert access("bot-b", "docs/admin")("GET", f"/documents/{doc_id}").status == 404
        problem(access("bot-a", "docs/read")("DELETE", f"/documents/{doc_id}",
                                             headers={"If-Match": r.headers["etag"]}), 403)  # fmt: skip
        problem(access("bot-z", "docs/admin")("GET", "/documents"), 401)
        problem(access("bot-a", "docs/write", org=ORG_B)("GET", "/documents"), 401)
        problem(access("bot-a", "docs/write", iss="https://elsewhere")("GET", "/documents"), 401)
        assert issuer.fetches == 1
    finally:
        bootstrap.set_container(None)
        built.close()
        issuer.close()
