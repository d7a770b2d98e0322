"""Sending a webhook: the SSRF rules applied where the connection is made
(docs/webhooks.md, "Where deliveries may go"; docs/security.md).

* The URL is checked again (``check_url``: scheme, form, address literals).
* The name is resolved once (``resolver``, injectable for tests; bounded by
  ``resolve_timeout_s``); every address it resolves to must pass
  ``check_address``, else nothing is sent; the connection goes to the first of
  those checked addresses and no other (no second lookup: no DNS rebinding),
  with the name as TLS SNI, certificate name and ``Host``.
* No redirect is followed (a 3xx is a failed attempt), the response is read
  up to ``max_response_bytes`` and dropped, and connect and read have their
  own timeouts.

Standard library only (``http.client``, ``ssl``, ``socket``).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from chalicelib.config_webhooks import WebhookSettings
from chalicelib.domain.webhook_urls import IpAddress, Target, UnsafeTarget, check_address, check_url
from chalicelib.domain.webhooks import Outcome

Resolver = Callable[[str, int], list[str]]
USER_AGENT = "docs-webhooks/1"
_RESOLVERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), as text."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address, verified for (and SNI of) the URL's name."""

    def __init__(self, target: Target, address: str, timeout: tuple[float, float]) -> None:
        super().__init__(target.host, target.port, timeout=timeout[1], context=_tls())
        self._address = address
        self._connect_timeout = timeout[0]

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self._connect_timeout)
        sock.settimeout(self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    """Plain HTTP to a given address (``insecure_local`` only)."""

    def __init__(self, target: Target, address: str, timeout: tuple[float, float]) -> None:
        super().__init__(target.host, target.port, timeout=timeout[1])
        self._address = address
        self._connect_timeout = timeout[0]

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self._connect_timeout)
        sock.settimeout(self.timeout)
        self.sock = sock


_TLS: list[ssl.SSLContext] = []
_TLS_LOCK = threading.Lock()


def _tls() -> ssl.SSLContext:
    with _TLS_LOCK:
        if not _TLS:
            ctx = ssl.create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            _TLS.append(ctx)
        return _TLS[0]


class HttpSender:
    """Implements ``Sender``."""

    def __init__(
        self,
        *,
        insecure_local: bool = False,
        resolver: Resolver | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 10.0,
        resolve_timeout_s: float = 3.0,
        max_response_bytes: int = 65536,
    ) -> None:
        self.insecure_local = insecure_local
        self.resolver = resolver or system_resolver
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self.resolve_timeout_s = resolve_timeout_s
        self.max_response_bytes = max_response_bytes

    def pin(self, target: Target) -> str:
        """The one address to connect to: every resolved address checked first."""
        try:
            literal: IpAddress | None = ipaddress.ip_address(target.host)
        except ValueError:
            literal = None
        if literal is not None:
            check_address(literal, insecure_local=self.insecure_local)
            return str(literal)
        future = _RESOLVERS.submit(self.resolver, target.host, target.port)
        try:
            found = future.result(timeout=self.resolve_timeout_s)
        except FutureTimeout:
            raise UnsafeTarget(f"resolving {target.host} timed out") from None
        except OSError as exc:
            raise UnsafeTarget(f"{target.host} does not resolve ({exc})") from None
        if not found:
            raise UnsafeTarget(f"{target.host} resolves to no address")
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
        for addr in addresses:  # every one: a mixed answer is refused as a whole
            check_address(addr, insecure_local=self.insecure_local)
        return str(addresses[0])

    def send(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            target = check_url(url, insecure_local=self.insecure_local)
            address = self.pin(target)
        except UnsafeTarget as exc:
            return Outcome(None, f"refused: {exc}", took())
        kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
        conn = kind(target, address, self.timeouts)
        try:
            conn.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
            sent = {
                "Host": target.host_header,
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                "User-Agent": USER_AGENT,
                **headers,
            }
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            resp.read(self.max_response_bytes)  # bounded; the rest is dropped with the socket
            status = resp.status
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {str(exc)[:200]}", took())
        finally:
            conn.close()
        error = None
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return Outcome(status, error, took())


def sender_for(settings: WebhookSettings) -> HttpSender:
    """The sender the deliverer uses, with the settings' limits."""
    return HttpSender(
        insecure_local=settings.insecure_local,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
    )
