"""Browsers against the local server: CORS, preflights, gzip, WebSocket Origin."""

from __future__ import annotations

import gzip
import http.client
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import REDIS_URL, make_token
from tests.e2e.conftest import Client, HttpResponse, LocalServer, server_env

pytestmark = pytest.mark.e2e
APP = "https://app.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture(scope="module")
def browser_server(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    env = server_env(database_url, REDIS_URL, redis_prefix, **local_search_env,
                     DOCS_CORS_ORIGINS=f"{APP}, http://localhost:3000/")  # fmt: skip
    running = LocalServer(env)
    yield running
    running.stop()


@pytest.fixture
def api(browser_server: LocalServer) -> Client:
    org = f"br-{uuid.uuid4().hex[:8]}"
    return Client(browser_server.base, make_token(org=org, roles=("writer",)))


def _vary(r: HttpResponse) -> set[str]:
    return {t.strip().lower() for t in r.headers.get("vary", "").split(",") if t.strip()}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/documents", "POST"),
        ("/documents/x", "PATCH"),
        ("/search", "POST"),
        ("/me/export", "POST"),
    ],
)
def test_preflight_over_http(browser_server: LocalServer, path: str, method: str) -> None:
    anonymous = Client(browser_server.base)
    asked = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "if-match"}
    ok = anonymous.request("OPTIONS", path, headers={"Origin": APP, **asked})
    assert ok.status == 204, ok.body
    assert ok.headers["access-control-allow-origin"] == APP
    assert method in ok.headers["access-control-allow-methods"]
    assert "If-Match" in ok.headers["access-control-allow-headers"]
    # the allowlist's trailing slash and case do not matter
    local = anonymous.request("OPTIONS", path, headers={"Origin": "http://localhost:3000", **asked})
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    refused = anonymous.request("OPTIONS", path, headers={"Origin": EVIL, **asked})
    assert refused.status == 403
    assert "access-control-allow-origin" not in refused.headers


def test_gzip_is_negotiated_and_the_etag_stays(api: Client) -> None:
    big = {"title": "big", "body": {"text": "lorem ipsum dolor sit amet " * 200}}
    doc = api.request("POST", "/documents", big, headers={"Origin": APP}).json()
    path = f"/documents/{doc['id']}"
    plain = api.request("GET", path, headers={"Origin": APP})
    zipped = api.request("GET", path, headers={"Origin": APP, "Accept-Encoding": "gzip, br"})
    refused = api.request("GET", path, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body) // 4
    assert int(zipped.headers["content-length"]) == len(zipped.body)
    assert zipped.headers["etag"] == plain.headers["etag"] == doc["etag"]
    assert {"accept-encoding", "origin"} <= _vary(zipped) and "accept-encoding" in _vary(plain)
    assert zipped.headers["access-control-allow-origin"] == APP
    # a conditional GET with the ETag of the gzipped answer matches too
    again = api.request("GET", path, headers={"If-None-Match": zipped.headers["etag"],
                                              "Accept-Encoding": "gzip"})  # fmt: skip
    assert again.status == 304
    # small answers go out as they are
    small = api.request("GET", "/health", headers={"Accept-Encoding": "gzip"})
    assert small.status == 200 and "content-encoding" not in small.headers


def test_the_servers_own_errors_carry_cors_headers(browser_server: LocalServer) -> None:
    anonymous = Client(browser_server.base)
    no_route = anonymous.request("GET", "/nowhere", headers={"Origin": APP})
    assert no_route.status == 404
    assert no_route.headers["access-control-allow-origin"] == APP
    assert no_route.headers["content-type"] == "application/problem+json"
    unauthenticated = anonymous.request("GET", "/documents", headers={"Origin": APP})
    assert unauthenticated.status == 401
    assert unauthenticated.headers["access-control-allow-origin"] == APP
    # an early error of the server itself (a declared body over 10 MiB)
    conn = http.client.HTTPConnection(urlsplit(browser_server.base).netloc, timeout=30)
    conn.putrequest("POST", "/documents")
    conn.putheader("Origin", APP)
    conn.putheader("Content-Length", str(11 * 2**20))
    conn.endheaders()
    early = conn.getresponse()
    assert early.status == 413
    assert early.getheader("Access-Control-Allow-Origin") == APP
    assert "ETag" in (early.getheader("Access-Control-Expose-Headers") or "")
    conn.close()
    foreign = anonymous.request("GET", "/nowhere", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in foreign.headers


def test_websocket_origin_is_checked(browser_server: LocalServer) -> None:
    url = f"ws://127.0.0.1:{browser_server.port}/realtime"
    protocols = ["docs.v1", f"bearer.{make_token(roles=('reader',))}"]
    with pytest.raises(InvalidStatus) as refused:
        connect(url, subprotocols=protocols, origin=EVIL, open_timeout=20)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    for origin in (APP, None):  # an allowed page, and a client that is no browser
        with connect(url, subprotocols=protocols, origin=origin, open_timeout=20) as ws:  # type: ignore[arg-type]
            ws.send('{"action": "ping"}')
            assert '"pong"' in str(ws.recv(timeout=20))


def test_an_event_stream_on_another_origin_gets_cors_headers(browser_server: LocalServer) -> None:
    token = make_token(roles=("reader",))
    conn = http.client.HTTPConnection(urlsplit(browser_server.base).netloc, timeout=30)
    conn.request("GET", f"/changes?feed=eventsource&token={token}", headers={"Origin": APP})
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Access-Control-Allow-Origin") == APP
    conn.close()
