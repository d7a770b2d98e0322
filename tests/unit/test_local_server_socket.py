"""The local server's connections send at once (TCP_NODELAY) and never block.

A response can be written as two sends (a ``100 Continue``, then the answer);
with Nagle's algorithm on, the second waits for the client's delayed ACK of
the first, about 40 ms on Linux.  And a worker multiplexes its connections,
so no read or write on one of them may block it.
"""

from __future__ import annotations

import socket

from devtools.http_connection import Connection


def test_accepted_connections_disable_nagle_and_do_not_block() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        Connection(sock, ("127.0.0.1", 0), now=0.0)  # what a worker does with each accept
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.gettimeout() == 0.0
