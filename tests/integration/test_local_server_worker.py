"""A local server worker's accept loop, on real loopback sockets (no app, no database)."""

from __future__ import annotations

import socket

import pytest

from devtools import server


def test_a_worker_at_its_connection_cap_leaves_new_ones_in_the_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``MAX_CONNECTIONS`` a worker stops accepting (another worker, or this one
    once a connection ends, takes the next) instead of failing to accept in a loop."""
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 2)
    listener = server.listen("127.0.0.1", 0)
    worker = server._Worker(listener)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        for _ in range(5):
            worker.step()
        assert len(worker.conns) == 2 and worker.accepting_after is not None
        clients[0].close()  # one ends: the worker takes the waiting one
        for _ in range(5):
            worker.step()
        assert len(worker.conns) == 2
        assert worker.accepting_after is not None  # at the cap again
    finally:
        for client in clients:
            client.close()
        for conn in worker.conns:
            conn.release()
        listener.close()
