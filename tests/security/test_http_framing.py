"""Request framing on the local server's socket, black-box (RFC 9112).

One parser decides where a request ends.  A header that could frame the body
differently for another reader (a ``Transfer-Encoding`` it does not take at
face value, a folded or oddly spelled line, a bare LF, a control character)
is a 400, or a 501 for a transfer coding it does not implement, and the
connection is closed: whatever the client sent after it never runs as a
request.  Each case below hides a second, authenticated ``PUT`` behind the
first request's Content-Length framing; the test checks the answer, that the
connection was closed after it, and that the smuggled document does not exist.

Written against the socket only, so it holds for any server behind the port.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_token
from tests.e2e.conftest import Client
from tests.security.test_local_server_edge import assert_edge, parse, read_all

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Target:
    base: str
    port: int


@pytest.fixture
def framing_server(server: str) -> Target:
    """The run's local server (``server`` in tests/conftest.py), by its socket."""
    return Target(server, int(urlsplit(server).port or 80))


def connect(target: Target) -> socket.socket:
    return socket.create_connection(("127.0.0.1", target.port), timeout=15)


def _smuggled(token: str, doc_id: str) -> bytes:
    body = json.dumps({"title": "smuggled"}).encode()
    return (
        f"PUT /documents/{doc_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# (head fields after the request line, request line) of a first request whose body
# is framed by "Content-Length: 5" ("0\r\n\r\n", the end of a chunked body)
CL5 = b"Content-Length: 5\r\n"
CASES: dict[str, tuple[bytes, int]] = {
    "te-space-before-colon": (b"Host: x\r\nTransfer-Encoding : chunked\r\n" + CL5, 400),
    "te-tab-before-colon": (b"Host: x\r\nTransfer-Encoding\t: chunked\r\n" + CL5, 400),
    "cl-space-before-colon": (b"Host: x\r\nContent-Length : 5\r\n", 400),
    "te-folded-value": (b"Host: x\r\nTransfer-Encoding:\r\n chunked\r\n" + CL5, 400),
    "te-folded-into-other": (b"Host: x\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\n" + CL5, 400),
    "te-folded-tab": (b"Host: x\r\nX-Pad: a\r\n\tTransfer-Encoding: chunked\r\n" + CL5, 400),
    "bare-lf-everywhere": (b"Host: x\nX-Pad: a\n" + CL5, 400),
    "bare-lf-one-line": (b"Host: x\r\nX-Pad: a\n" + CL5, 400),
    "bare-cr-in-value": (b"Host: x\r\nX-Pad: a\rTransfer-Encoding: chunked\r\n" + CL5, 400),
    "nul-in-name": (b"Host: x\r\nX-\x00Pad: a\r\n" + CL5, 400),
    "nul-in-value": (b"Host: x\r\nX-Pad: a\x00b\r\n" + CL5, 400),
    "ctl-in-name": (b"Host: x\r\nX-\x01Pad: a\r\n" + CL5, 400),
    "del-in-value": (b"Host: x\r\nX-Pad: a\x7fb\r\n" + CL5, 400),
    "non-token-name": (b"Host: x\r\nX(Pad): a\r\n" + CL5, 400),
    "non-ascii-name": (b"Host: x\r\nX-P\xe4d: a\r\n" + CL5, 400),
    "empty-name": (b"Host: x\r\n: a\r\n" + CL5, 400),
    "te-and-cl": (b"Host: x\r\nTransfer-Encoding: chunked\r\n" + CL5, 400),
    "te-twice": (
        b"Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        501,
    ),
    "te-unknown": (b"Host: x\r\nTransfer-Encoding: xchunked\r\n" + CL5, 501),
    "te-gzip-chunked": (b"Host: x\r\nTransfer-Encoding: gzip, chunked\r\n", 501),
    "cl-two-values": (b"Host: x\r\nContent-Length: 5\r\nContent-Length: 50\r\n", 400),
    "cl-list": (b"Host: x\r\nContent-Length: 5, 50\r\n", 400),
    "cl-hex": (b"Host: x\r\nContent-Length: 0x5\r\n", 400),
    "two-hosts": (b"Host: x\r\nHost: y\r\n" + CL5, 400),
    "space-before-first-field": (b" Host: x\r\n" + CL5, 400),
}
REQUEST_LINE = b"POST /health HTTP/1.1\r\n"
BAD_LINES: dict[str, bytes] = {
    "two-spaces": b"POST  /health HTTP/1.1\r\n",
    "trailing-space": b"POST /health HTTP/1.1 \r\n",
    "tab-separator": b"POST\t/health HTTP/1.1\r\n",
    "lower-case-version": b"POST /health http/1.1\r\n",
    "ctl-in-target": b"POST /health\x01 HTTP/1.1\r\n",
    "bare-lf-request-line": b"POST /health HTTP/1.1\n",
}


def _attack(server: Target, head: bytes) -> tuple[bytes, str, str]:
    """Send ``head`` + a 5-byte body + a smuggled PUT in one go; what came back,
    the smuggled document's id and its token."""
    org = f"fr-{uuid.uuid4().hex[:8]}"
    token = make_token(org=org, roles=("writer",))
    doc_id = f"smuggled-{uuid.uuid4().hex[:8]}"
    with connect(server) as sock:
        sock.sendall(head + b"0\r\n\r\n" + _smuggled(token, doc_id))
        data = read_all(sock)
    return data, doc_id, token


def _assert_refused(server: Target, head: bytes, status: int) -> None:
    data, doc_id, token = _attack(server, head)
    assert data.count(b"HTTP/1.1 ") == 1, data[:600]  # one answer, then closed
    assert_edge(parse(data), status)
    r = Client(server.base, token).request("GET", f"/documents/{doc_id}")
    assert r.status == 404, ("the smuggled PUT ran", r.status, r.body[:200])


@pytest.mark.parametrize(("fields", "status"), list(CASES.values()), ids=list(CASES))
def test_ambiguous_framing_is_refused_and_nothing_is_smuggled(
    framing_server: Target, fields: bytes, status: int
) -> None:
    _assert_refused(framing_server, REQUEST_LINE + fields + b"\r\n", status)


@pytest.mark.parametrize("line", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_a_malformed_request_line_is_refused(framing_server: Target, line: bytes) -> None:
    _assert_refused(framing_server, line + b"Host: x\r\n" + CL5 + b"\r\n", 400)


def test_transfer_encoding_in_http_1_0_is_refused(framing_server: Target) -> None:
    head = b"POST /health HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
    _assert_refused(framing_server, head, 400)


@pytest.mark.parametrize("target", [b"/realtime", b"/changes?feed=eventsource"])
@pytest.mark.parametrize("framing", [CL5, b"Transfer-Encoding: chunked\r\n"], ids=["cl", "te"])
def test_a_stream_request_with_a_body_is_refused(
    framing_server: Target, target: bytes, framing: bytes
) -> None:
    """A stream is handed over with the bytes read after its head: it has no body."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + framing
    _assert_refused(framing_server, head + b"\r\n", 400)


def test_the_server_still_answers_after_the_attacks(framing_server: Target) -> None:
    r = Client(framing_server.base).request("GET", "/health", headers={"X-Request-Id": "ok"})
    assert r.status == 200 and r.headers["x-request-id"] == "ok"


# ------------------------------------------------------------------ chunked bodies
def _chunked(body: bytes, size: int = 7) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_as_the_body(framing_server: Target) -> None:
    """A chunked request is decoded, not misframed: the document is created from it,
    and bytes after the last chunk never run as a request."""
    org = f"fr-{uuid.uuid4().hex[:8]}"
    token = make_token(org=org, roles=("writer",))
    doc_id, smuggled_id = f"chunked-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"title": "from chunks"}).encode()
    head = (
        f"PUT /documents/{doc_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with connect(framing_server) as sock:
        sock.sendall(head + _chunked(body) + _smuggled(token, smuggled_id))
        data = read_all(sock)
    assert data.count(b"HTTP/1.1 ") == 1, data[:600]
    r = parse(data)
    assert r.status == 201, r.body[:300]
    assert r.headers["connection"] == "close"
    api = Client(framing_server.base, token)
    assert api.request("GET", f"/documents/{doc_id}").json()["title"] == "from chunks"
    assert api.request("GET", f"/documents/{smuggled_id}").status == 404


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\r\nhello\r\n0\r\nX\r\n\r\n",  # a trailer line without a colon
        b"5\r\nhelloXX0\r\n\r\n",  # chunk data not followed by CRLF
        b"zz\r\nhello\r\n0\r\n\r\n",  # size is not hex
        b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
        b"-5\r\nhello\r\n0\r\n\r\n",  # negative size
    ],
    ids=["bad-trailer", "no-crlf-after-data", "not-hex", "bare-lf-size", "negative"],
)
def test_a_malformed_chunked_body_is_a_400(framing_server: Target, chunks: bytes) -> None:
    head = b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with connect(framing_server) as sock:
        sock.sendall(head + chunks)
        data = read_all(sock)
    assert data.count(b"HTTP/1.1 ") == 1, data[:600]
    assert_edge(parse(data), 400)


def test_a_chunked_body_over_the_limit_is_a_413(framing_server: Target) -> None:
    head = b"POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    with connect(framing_server) as sock:
        sock.sendall(head)
        try:
            for _ in range(11):
                sock.sendall(chunk)
        except OSError:
            pass  # refused while still sending
        data = read_all(sock)
    assert_edge(parse(data), 413)
