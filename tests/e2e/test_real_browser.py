"""A real browser: headless Chromium loads a page served from another origin that
uses the local server the way a web app would (tests/e2e/browser_page/app.js).

What the page saw is asserted: the preflighted calls, the exposed ``ETag`` and
``Location``, a conditional PATCH and a stale one (412), the change arriving on an
``EventSource`` and on a WebSocket subscription, a large answer gzipped on the
wire and decoded by the browser; and that a page from an origin not on
``DOCS_CORS_ORIGINS`` gets nothing (``fetch`` rejects, the WebSocket and the
event stream do not open). The browser is Debian's Chromium, installed by
``scripts/browser_deps.sh`` when missing (docs/local.md, "The real-browser test").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REDIS_URL, make_token
from tests.e2e.browser import Browser, chromium, ensure_browser, network_log, run_page, static_site
from tests.e2e.conftest import Client, LocalServer, server_env

pytestmark = pytest.mark.e2e
# deadlines, not expectations (the page takes a few seconds): the page waits up to 30 s
# for each change to arrive, since the feed holds rows back while an older transaction of
# the shared PostgreSQL cluster is open
PAGE_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def browser() -> Browser:
    return ensure_browser()


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[str, str]]:
    """The page's origin, on the allowlist, and a foreign one that is not."""
    with static_site() as allowed, static_site() as foreign:
        yield allowed, foreign


@pytest.fixture(scope="module")
def api_server(
    sites: tuple[str, str], database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    env = server_env(database_url, REDIS_URL, redis_prefix, **local_search_env,
                     DOCS_CORS_ORIGINS=sites[0])  # fmt: skip
    running = LocalServer(env)
    yield running
    running.stop()


@pytest.fixture
def driver(browser: Browser) -> Iterator[Any]:
    with chromium(browser) as running:
        yield running


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _exchanges(events: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    """The browser's HTTP exchanges with the API, in order: the request's method, URL and
    type (``Preflight`` for a CORS preflight), the response's status and headers, the
    bytes on the wire (``encoded``) and after decoding (``decoded``), the CORS error."""
    by_id: dict[str, dict[str, Any]] = {}
    for event in events:
        params, method = event["params"], event["method"]
        if method == "Network.requestWillBeSent" and params["request"]["url"].startswith(base):
            preflight = params.get("initiator", {}).get("type") == "preflight"
            by_id[params["requestId"]] = {
                "method": params["request"]["method"],
                "url": params["request"]["url"][len(base) :],
                "type": "Preflight" if preflight else params.get("type"),
                "decoded": 0,
            }
        exchange = by_id.get(params.get("requestId", ""))
        if exchange is None:
            continue
        if method == "Network.responseReceived":
            exchange["status"] = params["response"]["status"]
            exchange["headers"] = params["response"]["headers"]
        elif method == "Network.dataReceived":
            exchange["decoded"] += params["dataLength"]
        elif method == "Network.loadingFinished":
            exchange["encoded"] = params["encodedDataLength"]
        elif method == "Network.loadingFailed":
            exchange["cors_error"] = (params.get("corsErrorStatus") or {}).get("corsError")
    return list(by_id.values())


def test_a_web_app_on_an_allowed_origin(
    driver: Any, sites: tuple[str, str], api_server: LocalServer
) -> None:
    page_origin = sites[0]
    token = make_token(org=f"web-{uuid.uuid4().hex[:8]}", sub="page", roles=("writer",))
    results = run_page(driver, page_origin, api_server.base, token, "app", PAGE_TIMEOUT_S)
    assert results["error"] is None, results
    steps = results["steps"]
    created, read = steps["create"], steps["read"]
    doc_id = created["json"]["id"]
    # the page reads the exposed headers: Location, ETag, X-Request-Id
    assert created["status"] == 201
    assert created["location"] == f"/documents/{doc_id}"
    assert created["etag"] == created["json"]["etag"] and created["requestId"]
    assert read["status"] == 200 and read["etag"] == created["etag"]
    # a conditional PATCH with the ETag read, then the same stale ETag again
    patched, stale = steps["patch"], steps["stalePatch"]
    assert patched["status"] == 200, patched
    assert patched["json"]["version"] == 2 and patched["etag"] not in (None, read["etag"])
    assert stale["status"] == 412, stale
    assert stale["contentType"] == "application/problem+json"
    assert stale["json"]["status"] == 412
    # the change arrived on both live channels, with the PATCH's ETag
    assert steps["websocket"] == {"protocol": "docs.v1", "subscribed": True}
    for channel in ("wsChange", "sseChange"):
        change = steps[channel]
        assert (change["id"], change["version"], change["etag"]) == (doc_id, 2, patched["etag"])
    assert steps["sseChange"]["lastEventId"] == steps["sseChange"]["seq"]
    # a large answer, decoded by the browser: the page got its text back
    big = steps["gzip"]
    assert big["status"] == 200 and big["same"] is True and big["etag"]

    exchanges = _exchanges(network_log(driver), api_server.base)
    # the browser preflighted (the token in Authorization, JSON, If-Match) and was let in
    preflights = [x for x in exchanges if x["type"] == "Preflight"]
    assert {x["url"] for x in preflights} >= {"/documents", f"/documents/{doc_id}"}, exchanges
    for preflight in preflights:
        assert preflight["status"] == 204
        assert _header(preflight["headers"], "Access-Control-Allow-Origin") == page_origin
    # whichever preflight the browser reused for the PATCHes let PATCH and If-Match through
    (granted, *_) = [x["headers"] for x in preflights if x["url"] == f"/documents/{doc_id}"]
    assert "PATCH" in (_header(granted, "Access-Control-Allow-Methods") or "").split(", ")
    assert "If-Match" in (_header(granted, "Access-Control-Allow-Headers") or "").split(", ")
    assert {x["method"] for x in exchanges if x["type"] == "Fetch"} >= {"POST", "GET", "PATCH"}
    assert not [x for x in exchanges if x.get("cors_error")], exchanges
    # on the wire the large answer was gzipped: far fewer bytes than the page read
    big_url = f"/documents/{big['id']}"
    (wire,) = [x for x in exchanges if x["type"] == "Fetch" and x["url"] == big_url]
    assert _header(wire["headers"], "Content-Encoding") == "gzip"
    assert wire["decoded"] > 50_000 and wire["encoded"] < wire["decoded"] // 4, wire
    # the page's own view (Resource Timing): sizes are 0 cross-origin without
    # Timing-Allow-Origin, which the API does not send; where a browser shows them
    # they must agree
    if big["decodedBodySize"]:
        assert big["encodedBodySize"] < big["decodedBodySize"]


def test_a_page_on_another_origin_gets_nothing(
    driver: Any, sites: tuple[str, str], api_server: LocalServer
) -> None:
    token = make_token(org=f"web-{uuid.uuid4().hex[:8]}", sub="page", roles=("writer",))
    results = run_page(driver, sites[1], api_server.base, token, "foreign", PAGE_TIMEOUT_S)
    assert results["error"] is None, results
    steps = results["steps"]
    for call in ("post", "health"):  # preflighted, and a simple GET
        assert steps[call]["rejected"] is True and steps[call]["name"] == "TypeError", steps
    assert steps["websocket"] == {"opened": False, "code": 1006}
    assert steps["eventsource"] == {"opened": False, "readyState": 2}  # CLOSED: failed
    exchanges = _exchanges(network_log(driver), api_server.base)
    (preflight,) = [x for x in exchanges if x["type"] == "Preflight"]
    assert preflight["status"] == 403 and not _header(
        preflight["headers"], "Access-Control-Allow-Origin"
    )
    errors = {(x["method"], x["url"].split("?")[0]): x.get("cors_error") for x in exchanges}
    assert errors[("POST", "/documents")] == "PreflightMissingAllowOriginHeader", exchanges
    assert errors[("GET", "/health")] == "MissingAllowOriginHeader"
    assert errors[("GET", "/changes")] == "MissingAllowOriginHeader"
    # the refused preflight kept the POST from being sent at all
    listed = Client(api_server.base, token).request("GET", "/documents")
    assert listed.status == 200 and listed.json()["items"] == []
