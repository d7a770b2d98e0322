"""No connection waits on another: idle, slow or stalled connections are parked.

Each worker process multiplexes its connections (devtools/server.py): one
that is idle between requests, or still sending its head or its body, holds
no worker, so a new connection's request is answered while more of them than
there are workers stay open.  The server here has long timeouts (60 s), so a
server that gave each connection a worker until its timeout would leave the
new request unanswered; the client's 15 s timeout is only a hang guard, and
nothing here asserts a time.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.conftest import LocalServer, server_env
from tests.security.test_local_server_edge import assert_edge, parse, read_all, read_response

pytestmark = pytest.mark.e2e

WORKERS = 2
HANG_GUARD_S = 15.0  # far below the server's 60 s timeouts: only a stalled server reaches it
CONNECTIONS = 4 * WORKERS


@pytest.fixture(scope="module")
def patient_server(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> Iterator[LocalServer]:
    running = LocalServer(
        server_env(
            database_url,
            REDIS_URL,
            redis_prefix,
            **local_search_env,
            DOCS_WORKERS=str(WORKERS),
            DOCS_LOCAL_HEADER_TIMEOUT_S="60",
            DOCS_LOCAL_BODY_TIMEOUT_S="60",
            DOCS_LOCAL_IDLE_TIMEOUT_S="60",
        )
    )
    yield running
    running.stop()


def connect(server: LocalServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S)


def get_health(sock: socket.socket, rid: str) -> None:
    """One keep-alive GET /health on ``sock``, answered with its request id."""
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n\r\n".encode())
    r = parse(read_response(sock))
    assert (r.status, r.headers["x-request-id"]) == (200, rid), r
    assert "connection" not in r.headers  # still open


def answered_on_a_new_connection(server: LocalServer, rid: str) -> None:
    with connect(server) as sock:
        get_health(sock, rid)


def test_idle_keep_alive_connections_hold_no_worker(patient_server: LocalServer) -> None:
    held = [connect(patient_server) for _ in range(CONNECTIONS)]
    try:
        for i, sock in enumerate(held):  # each connection is served, then stays idle
            get_health(sock, f"held-{i}")
        answered_on_a_new_connection(patient_server, "newcomer")
        for i, sock in enumerate(held):  # every one was kept open, and still serves
            get_health(sock, f"again-{i}")
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # inside the head
        b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",  # the body
    ],
    ids=["head", "body"],
)
def test_unfinished_requests_hold_no_worker(patient_server: LocalServer, partial: bytes) -> None:
    stalled = [connect(patient_server) for _ in range(CONNECTIONS)]
    try:
        for sock in stalled:
            sock.sendall(partial)
        answered_on_a_new_connection(patient_server, "past-the-stalled")
    finally:
        for sock in stalled:
            sock.close()


def test_a_stalled_request_is_answered_once_it_completes(patient_server: LocalServer) -> None:
    """A request sent in pieces, with other connections served in between, is
    framed as one request and answered on its own connection."""
    with connect(patient_server) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHo")
        answered_on_a_new_connection(patient_server, "between-1")
        slow.sendall(b"st: x\r\nX-Request-Id: pie")
        answered_on_a_new_connection(patient_server, "between-2")
        slow.sendall(b"ces\r\n\r\n")
        r = parse(read_response(slow))
        assert (r.status, r.headers["x-request-id"]) == (200, "pieces")


def test_a_malformed_request_among_parked_ones_is_refused_alone(
    patient_server: LocalServer,
) -> None:
    held = [connect(patient_server) for _ in range(CONNECTIONS)]
    try:
        for i, sock in enumerate(held):
            get_health(sock, f"parked-{i}")
        with connect(patient_server) as bad:
            bad.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")  # folded
            assert_edge(parse(read_all(bad)), 400)
        for i, sock in enumerate(held):
            get_health(sock, f"unharmed-{i}")
    finally:
        for sock in held:
            sock.close()
