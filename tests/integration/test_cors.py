"""CORS through the real handler: preflights, allowed and refused origins, errors."""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.api.cors import ALLOW_HEADERS, EXPOSE_HEADERS
from tests.conftest import Invoker, make_token

pytestmark = pytest.mark.integration

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
)


@pytest.fixture
def browsers(settings):
    built = bootstrap.build(
        settings.model_copy(
            update={
                "cors_origins": (APP, "http://localhost:3000"),
                "rate_limit_reader": (0.5, 2),
            }
        )
    )
    bootstrap.set_container(built)
    yield Invoker(make_token(org="cors-org", sub="carla", roles=("writer",)))
    bootstrap.set_container(None)
    built.close()


def _vary(response) -> set[str]:
    return {t.strip().lower() for t in response.headers.get("vary", "").split(",") if t.strip()}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/documents", "POST"),
        ("/documents/d1", "PATCH"),
        ("/documents/d1/versions", "GET"),
        ("/search", "POST"),
        ("/changes", "GET"),
        ("/openapi.json", "GET"),
    ],
)
def test_preflight_from_an_allowed_origin_needs_no_token(browsers, path, method) -> None:
    r = browsers(
        "OPTIONS",
        path,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
        token=False,
    )
    assert r.status == 204, r
    assert r.headers["access-control-allow-origin"] == APP
    assert method in r.headers["access-control-allow-methods"].split(", ")
    assert r.headers["access-control-allow-headers"] == ALLOW_HEADERS
    for name in ("authorization", "content-type", "if-match", "if-none-match", "idempotency-key"):
        assert name in r.headers["access-control-allow-headers"].lower()
    assert int(r.headers["access-control-max-age"]) > 0
    assert "origin" in _vary(r)
    assert "access-control-allow-credentials" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]


def test_preflight_from_another_origin_is_refused_without_cors_headers(browsers) -> None:
    r = browsers(
        "OPTIONS",
        "/documents",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        token=False,
    )
    assert r.status == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert not any(name in r.headers for name in CORS_HEADERS)
    assert "origin" in _vary(r)


def test_plain_options_lists_the_methods(browsers) -> None:
    r = browsers("OPTIONS", "/documents/d1", token=False)
    assert r.status == 204
    assert {"GET", "PATCH", "DELETE", "OPTIONS"} <= set(r.headers["allow"].split(", "))
    assert "access-control-allow-origin" not in r.headers


def test_an_allowed_origin_reads_answers_and_their_headers(browsers) -> None:
    created = browsers("POST", "/documents", {"title": "t", "body": {}}, headers={"Origin": APP})
    assert created.status == 201, created
    assert created.headers["access-control-allow-origin"] == APP
    exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
    assert {"ETag", "Location", "X-Request-Id", "Retry-After", "RateLimit-Limit"} <= exposed
    assert created.headers["access-control-expose-headers"] == EXPOSE_HEADERS
    assert {"origin", "accept-encoding"} <= _vary(created)
    # the origin is matched whatever its case, and echoed as sent
    r = browsers("GET", f"/documents/{created.json()['id']}", headers={"Origin": APP.upper()})
    assert r.headers["access-control-allow-origin"] == APP.upper()


def test_another_origin_gets_no_cors_headers(browsers) -> None:
    for origin in (EVIL, "null", APP + ".evil.net", "http://app.example.com"):
        r = browsers("GET", "/documents", headers={"Origin": origin})
        assert r.status == 200
        assert not any(name in r.headers for name in CORS_HEADERS), origin
        assert "origin" in _vary(r)


def test_errors_carry_the_cors_headers(browsers) -> None:
    origin = {"Origin": APP}
    unauthenticated = browsers("GET", "/documents", headers=origin, token=False)
    missing = browsers("GET", "/documents/nope", headers=origin)
    wrong_method = browsers("PUT", "/documents", headers=origin)
    reader = Invoker(make_token(org="cors-org", sub="rhea", roles=("reader",)))
    limited = [reader("GET", "/documents", headers=origin) for _ in range(3)][-1]
    for r, status in (
        (unauthenticated, 401),
        (missing, 404),
        (wrong_method, 405),
        (limited, 429),
    ):
        assert r.status == status, r
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["access-control-allow-origin"] == APP, status
        assert "Retry-After" in r.headers["access-control-expose-headers"]
    assert limited.headers["retry-after"]


def test_no_allowlist_means_no_cors_headers(container) -> None:
    invoke = Invoker(make_token(org="cors-org", sub="carla", roles=("writer",)))
    r = invoke("GET", "/documents", headers={"Origin": APP})
    assert r.status == 200
    assert not any(name in r.headers for name in CORS_HEADERS)
    assert "origin" not in _vary(r)
    refused = invoke("OPTIONS", "/documents", headers={"Origin": APP}, token=False)
    assert refused.status == 403
