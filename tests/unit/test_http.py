from __future__ import annotations

import json

import pytest
from chalice.app import Request, Response

from chalicelib.adapters.redis.breaker import CircuitBreaker
from chalicelib.api.http import parse_json_body, rewrite_chalice_error
from chalicelib.domain.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


def _request(body: bytes, content_type: str = "application/json") -> Request:
    event = {
        "multiValueQueryStringParameters": None,
        "headers": {"content-type": content_type},
        "pathParameters": None,
        "requestContext": {"httpMethod": "POST", "resourcePath": "/documents"},
        "body": body.decode(),
        "isBase64Encoded": False,
        "stageVariables": None,
    }
    return Request(event)


def parse(body: bytes, content_type: str = "application/json", **kw: int) -> object:
    limits = {"max_bytes": kw.get("max_bytes", 1024), "max_depth": kw.get("max_depth", 32)}
    return parse_json_body(_request(body, content_type), **limits)


def test_parses_json_within_limits() -> None:
    assert parse(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert parse(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


def test_rejects_depth_size_type_and_syntax() -> None:
    deep = b"[" * 33 + b"]" * 33
    with pytest.raises(BadRequest):
        parse(deep, max_bytes=10_000)
    assert parse(b"[" * 32 + b"]" * 32, max_bytes=10_000) is not None
    with pytest.raises(BadRequest):
        parse(b"[" * 100_000 + b"]" * 100_000, max_bytes=1_000_000)
    with pytest.raises(PayloadTooLarge):
        parse(b'{"a": "' + b"x" * 2000 + b'"}')
    with pytest.raises(UnsupportedMediaType):
        parse(b"{}", "text/plain")
    for bad in [b"{", b"", b"   "]:
        with pytest.raises(BadRequest):
            parse(bad)
    with pytest.raises(BadRequest):
        parse_json_body(_request_bytes(b"\xff\xfe"), max_bytes=100, max_depth=3)


def _request_bytes(raw: bytes) -> Request:
    req = _request(b"")
    req._raw_body = raw  # a body that is not UTF-8
    return req


def test_chalice_errors_become_problems_with_allow_header() -> None:
    chalice_error = Response(
        body={"Code": "MethodNotAllowedError", "Message": "Unsupported method: PUT"},
        status_code=405,
        headers={"Allow": "GET"},
    )
    out = rewrite_chalice_error(chalice_error, "/health")
    body = json.loads(out.body)
    assert out.headers["Content-Type"] == "application/problem+json"
    assert out.headers["Allow"] == "GET"
    assert body["status"] == 405 and body["instance"] == "/health"


def test_internal_errors_never_leak_details() -> None:
    crash = Response(
        body={"Code": "InternalServerError", "Message": "secret stack"}, status_code=500
    )
    body = json.loads(rewrite_chalice_error(crash, "/x").body)
    assert "secret" not in body["detail"] and body["status"] == 500


def test_breaker_opens_after_threshold_and_half_opens_by_itself() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset_s=5, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 5.1
    assert breaker.state == "half-open" and breaker.allow()
    breaker.failure()  # the probe failed: open again
    assert breaker.state == "open"
    now[0] = 10.2
    breaker.success()
    assert breaker.state == "closed"
