"""Attacks on the local server's edge, black-box over raw sockets.

Every answer the server gives itself (unknown route, oversized or malformed
requests, timeouts) must carry what the app's answers carry: problem+json,
the security headers, ``Cache-Control: no-store`` and ``X-Request-Id``.
Slow or lying clients (slowloris, short bodies, bad ``Content-Length``) must
get 400/408 or be closed, and never hold the workers beyond the timeouts;
neither may idle keep-alive connections.  The server runs with 2 workers and
1 s timeouts; nothing here asserts a time.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.api.http import SECURITY_HEADERS
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Client, LocalServer, server_env

pytestmark = pytest.mark.e2e

WORKERS = 2
CLIENT_TIMEOUT_S = 15.0  # far above the server's 1 s timeouts; only a hang reaches it


@pytest.fixture(scope="module")
def edge_server(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    running = LocalServer(
        server_env(
            database_url,
            REDIS_URL,
            redis_prefix,
            **local_search_env,
            DOCS_WORKERS=str(WORKERS),
            DOCS_LOCAL_HEADER_TIMEOUT_S="1",
            DOCS_LOCAL_BODY_TIMEOUT_S="1",
            DOCS_LOCAL_IDLE_TIMEOUT_S="1",
            DOCS_LOCAL_MAX_REQUESTS="5",
        )
    )
    yield running
    running.stop()


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(server: LocalServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket, *, head_only: bool = False) -> bytes:
    """One response, by its Content-Length (the connection may stay open)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if head_only:
        return head + b"\r\n\r\n"
    length = int(parse(head + b"\r\n\r\n").headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def read_responses(sock: socket.socket, n: int) -> list[bytes]:
    """``n`` responses in a row, each by its Content-Length: pipelined answers may
    arrive in one read, so what follows one answer is kept for the next (where
    ``read_response`` would take it as part of the first)."""
    data, answers = b"", []
    while len(answers) < n:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            length = int(parse(data[: end + 4]).headers.get("content-length", "0"))
            if len(data) >= end + 4 + length:
                answers.append(data[: end + 4 + length])
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            answers.append(data)  # what came before the close (parse() says if nothing)
            data = b""
            continue
        data += chunk
    return answers


def parse(data: bytes) -> Raw:
    assert data, "the server closed the connection without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0] == "HTTP/1.1", lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Raw(int(parts[1]), headers, body)


def exchange(server: LocalServer, data: bytes) -> Raw:
    with connect(server) as sock:
        sock.sendall(data)
        return parse(read_response(sock))


def assert_edge(r: Raw | Any, status: int, request_id: str | None = None) -> None:
    """The full header set and an RFC 9457 body, as the app's own problems have."""
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers["content-type"] == "application/problem+json", r.headers
    assert r.headers["cache-control"] == "no-store", r.headers
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name.lower()) == value, (name, r.headers)
    rid = r.headers["x-request-id"]
    if request_id is None:
        uuid.UUID(rid)  # a fresh one
    else:
        assert rid == request_id
    problem = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(problem), problem
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["type"].startswith("/problems/")
    assert r.headers["content-length"] == str(len(r.body))
    if status != 404:  # after these the rest of the stream is not trusted: closed
        assert r.headers["connection"] == "close"


def assert_serving(server: LocalServer) -> None:
    """A normal request still gets its answer."""
    r = Client(server.base).request("GET", "/health", headers={"X-Request-Id": "still-ok"})
    assert r.status == 200
    assert r.headers["x-request-id"] == "still-ok"


def test_limits_come_from_the_environment() -> None:
    from devtools.server import Limits

    assert Limits.from_env({}) == Limits()
    assert Limits() == Limits(10.0, 30.0, 10240, 10 * 1024 * 1024, 5.0, 100)
    idle = Limits.from_env({"DOCS_LOCAL_IDLE_TIMEOUT_S": "2", "DOCS_LOCAL_MAX_REQUESTS": "7"})
    assert (idle.idle_timeout_s, idle.max_requests) == (2.0, 7)
    env = {"DOCS_LOCAL_HEADER_TIMEOUT_S": "2.5", "DOCS_LOCAL_BODY_TIMEOUT_S": "7"}
    limits = Limits.from_env({**env, "DOCS_LOCAL_MAX_HEADER_BYTES": "16384"})
    assert (limits.header_timeout_s, limits.body_timeout_s, limits.max_header_bytes) == (
        2.5,
        7.0,
        16384,
    )
    with pytest.raises(ValueError, match="positive"):
        Limits.from_env({"DOCS_LOCAL_HEADER_TIMEOUT_S": "0"})


# ------------------------------------------------------------------ error classes
def test_unknown_route_is_a_full_404(edge_server: LocalServer) -> None:
    r = exchange(edge_server, b"GET /no/such/route?x=1 HTTP/1.1\r\nX-Request-Id: probe-404\r\n\r\n")
    assert_edge(r, 404, "probe-404")
    assert r.json()["instance"] == "/no/such/route"
    r = Client(edge_server.base).request("DELETE", "/nowhere")
    assert_edge(r, 404)


def test_an_unacceptable_request_id_is_replaced(edge_server: LocalServer) -> None:
    for bad in ("x" * 201, "tab\there"):
        r = exchange(edge_server, f"GET /nowhere HTTP/1.1\r\nX-Request-Id: {bad}\r\n\r\n".encode())
        assert_edge(r, 404)  # a fresh uuid, as the app does


def test_over_10_mib_is_a_full_413(edge_server: LocalServer) -> None:
    declared = b"POST /documents HTTP/1.1\r\nContent-Length: 11534336\r\nX-Request-Id: big\r\n\r\n"
    assert_edge(exchange(edge_server, declared), 413, "big")
    digits = b"POST /documents HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"
    assert_edge(exchange(edge_server, digits), 413)  # not int()'s 4300-digit ValueError
    # a client that sends the whole body before reading still gets the answer
    r = Client(edge_server.base).request("POST", "/documents", raw=b"x" * (11 * 1024 * 1024))
    assert_edge(r, 413)
    assert_serving(edge_server)


@pytest.mark.parametrize("size", [12_000, 70_000], ids=["over-api-gateway", "over-http-server"])
def test_long_uri_is_a_full_414(edge_server: LocalServer, size: int) -> None:
    r = exchange(edge_server, b"GET /documents?q=" + b"a" * size + b" HTTP/1.1\r\n\r\n")
    assert_edge(r, 414)


def test_60_kb_authorization_header_is_a_full_431(edge_server: LocalServer) -> None:
    token = "Bearer " + "a" * 60_000
    r = Client(edge_server.base).request("GET", "/documents", headers={"Authorization": token})
    assert_edge(r, 431)
    raw = exchange(
        edge_server, f"GET /documents HTTP/1.1\r\nAuthorization: {token}\r\n\r\n".encode()
    )
    assert_edge(raw, 431)
    assert_serving(edge_server)


@pytest.mark.parametrize(
    "fields",
    [
        b"X-Long: " + b"b" * 70_000 + b"\r\n",  # one line over http.server's own limit
        b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 500) for i in range(30)),  # many, over 10 KiB
        b"".join(b"X-H%d: 1\r\n" % i for i in range(120)),  # over http.server's 100 headers
    ],
    ids=["line-too-long", "total-too-large", "too-many"],
)
def test_oversized_header_section_is_a_full_431(edge_server: LocalServer, fields: bytes) -> None:
    assert_edge(exchange(edge_server, b"GET /health HTTP/1.1\r\n" + fields + b"\r\n"), 431)


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GARBAGE", 400),
        (b"GET / FOO/1.1", 400),
        (b"GET /health HTTP/1.1 extra", 400),
        (b"GET /health", 400),  # HTTP/0.9: an answer without any header, before
        (b"GET /health HTTP/2.0", 505),
    ],
)
def test_http_server_own_errors_are_full_problems(
    edge_server: LocalServer, request_line: bytes, status: int
) -> None:
    assert_edge(exchange(edge_server, request_line + b"\r\nHost: x\r\n\r\n"), status)


# ------------------------------------------------------------------ Content-Length
@pytest.mark.parametrize(
    "lengths",
    [["-1"], ["abc"], ["+5"], ["0x10"], ["5, 6"], ["5", "6"], [""]],
    ids=["negative", "not-a-number", "signed", "hex", "list-conflict", "two-conflict", "empty"],
)
def test_bad_content_length_is_a_full_400(edge_server: LocalServer, lengths: list[str]) -> None:
    fields = "".join(f"Content-Length: {v}\r\n" for v in lengths)
    r = exchange(
        edge_server,
        f"POST /documents HTTP/1.1\r\nX-Request-Id: bad-len\r\n{fields}\r\nhello".encode(),
    )
    assert_edge(r, 400, "bad-len")
    assert "Content-Length" in r.json()["detail"]


def test_repeated_equal_content_lengths_are_one_length(edge_server: LocalServer) -> None:
    r = exchange(
        edge_server,
        b"GET /health HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello",
    )
    assert r.status == 200, r


def test_body_shorter_than_content_length_is_a_full_408(edge_server: LocalServer) -> None:
    with connect(edge_server) as sock:
        sock.sendall(
            b"POST /documents HTTP/1.1\r\nContent-Length: 100\r\nX-Request-Id: short\r\n\r\n{"
        )
        r = parse(read_all(sock))  # the server times out and answers; the client just waits
    assert_edge(r, 408, "short")
    assert_serving(edge_server)


# ------------------------------------------------------------------ slow clients
class Dripper:
    """N sockets that send a request one byte at a time, never finishing it."""

    def __init__(self, server: LocalServer, count: int, prefix: bytes, drip: bytes) -> None:
        self.socks = [connect(server) for _ in range(count)]
        self.drip = drip
        self.stop = threading.Event()
        for sock in self.socks:
            sock.sendall(prefix)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        live = list(self.socks)
        while live and not self.stop.wait(0.3):  # well inside the 1 s timeout
            for sock in list(live):
                try:
                    sock.send(self.drip)
                except OSError:
                    live.remove(sock)

    def answers(self) -> list[bytes]:
        try:
            return [read_all(sock) for sock in self.socks]
        finally:
            self.stop.set()
            self.thread.join()
            for sock in self.socks:
                sock.close()


@pytest.mark.parametrize(
    ("prefix", "drip"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a"),  # slowloris: headers
        (b"POST /documents HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", b"{"),  # slow body
    ],
    ids=["headers", "body"],
)
def test_slow_clients_cannot_hold_every_worker(
    edge_server: LocalServer, prefix: bytes, drip: bytes
) -> None:
    stalled = Dripper(edge_server, WORKERS + 1, prefix, drip)
    idle = [connect(edge_server) for _ in range(WORKERS + 1)]  # connect, send nothing
    try:
        assert_serving(edge_server)  # answered, not stuck behind them
        for data in stalled.answers():
            if data:  # closed, or told why
                assert_edge(parse(data), 408)
        for sock in idle:
            assert read_all(sock) == b""  # nothing was asked: closed without an answer
    finally:
        for sock in idle:
            sock.close()


# ------------------------------------------------------------------ client disconnects
def test_client_gone_mid_response_leaves_no_traceback(edge_server: LocalServer) -> None:
    for _ in range(5):
        with connect(edge_server) as sock:
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(1)  # the answer has started
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # closed with a reset, the rest of the answer has nowhere to go
    for _ in range(5):
        with connect(edge_server) as sock:
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert_serving(edge_server)
    log = edge_server.log_path.read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log, log[-3000:]


# ------------------------------------------------------------------ keep-alive
def _get(sock: socket.socket, extra: str = "", version: str = "HTTP/1.1") -> None:
    sock.sendall(f"GET /health {version}\r\nHost: x\r\n{extra}\r\n".encode())


def test_one_connection_carries_several_requests(edge_server: LocalServer) -> None:
    with connect(edge_server) as sock:
        for i in range(3):
            _get(sock, f"X-Request-Id: ka-{i}\r\n")
            r = parse(read_response(sock))
            assert r.status == 200 and r.headers["x-request-id"] == f"ka-{i}"
            assert "connection" not in r.headers  # HTTP/1.1: persistent by default
            assert r.headers["keep-alive"] == f"timeout=1, max={4 - i}"
        _get(sock, "Connection: close\r\n")
        r = parse(read_all(sock))  # answered, then closed
        assert r.status == 200 and r.headers["connection"] == "close"


def test_pipelined_requests_are_answered_in_order(edge_server: LocalServer) -> None:
    with connect(edge_server) as sock:
        sock.sendall(
            b"".join(
                f"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: p-{i}\r\n\r\n".encode()
                for i in range(3)
            )
        )
        ids = [parse(answer).headers["x-request-id"] for answer in read_responses(sock, 3)]
    assert ids == ["p-0", "p-1", "p-2"]


def test_a_connection_ends_after_max_requests(edge_server: LocalServer) -> None:
    with connect(edge_server) as sock:
        answers = []
        for _ in range(5):  # DOCS_LOCAL_MAX_REQUESTS=5
            _get(sock)
            answers.append(parse(read_response(sock)))
        assert [a.status for a in answers] == [200] * 5
        assert [a.headers.get("connection") for a in answers] == [None] * 4 + ["close"]
        assert read_all(sock) == b""


def test_http_1_0_keeps_alive_only_when_asked(edge_server: LocalServer) -> None:
    with connect(edge_server) as sock:
        _get(sock, version="HTTP/1.0")
        assert parse(read_all(sock)).headers["connection"] == "close"
    with connect(edge_server) as sock:
        for _ in range(2):
            _get(sock, "Connection: keep-alive\r\n", version="HTTP/1.0")
            r = parse(read_response(sock))
            assert r.status == 200 and r.headers["connection"] == "keep-alive"


def test_a_body_that_was_not_read_ends_the_connection(edge_server: LocalServer) -> None:
    """A chunked body is not read as a body: it must never be read as a request."""
    with connect(edge_server) as sock:
        sock.sendall(
            b"POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"30\r\nGET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled\r\n\r\n\r\n0\r\n\r\n"
        )
        data = read_all(sock)
    assert data.count(b"HTTP/1.1 ") == 1 and b"smuggled" not in data
    assert parse(data).headers["connection"] == "close"


def test_idle_keep_alive_clients_cannot_hold_every_worker(edge_server: LocalServer) -> None:
    held = []
    try:
        for _ in range(WORKERS + 1):  # each holds a worker until its idle timeout
            sock = connect(edge_server)
            held.append(sock)
            _get(sock)
            r = parse(read_response(sock))
            assert r.status == 200 and "connection" not in r.headers
        assert_serving(edge_server)  # answered, not stuck behind them
        for sock in held:
            assert read_all(sock) == b""  # closed by the server, quietly
    finally:
        for sock in held:
            sock.close()
