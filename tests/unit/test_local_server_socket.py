"""The local server's connections send at once (TCP_NODELAY).

A response is written as two sends (head, then body); with Nagle's algorithm
on, the body waits for the client's delayed ACK of the head, about 40 ms per
response on Linux, which made every keep-alive request cost that much.
"""

from __future__ import annotations

import socket

from devtools.server import _Handler


def test_accepted_connections_disable_nagle() -> None:
    handler = _Handler.__new__(_Handler)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        handler.request = sock
        handler.setup()  # what the server does with each accepted connection
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            handler.rfile.close()
            handler.wfile.close()
