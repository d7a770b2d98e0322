"""Where a webhook may be sent (docs/webhooks.md, "Where deliveries may go"; SSRF).

Pure rules, applied twice: to the URL when an endpoint is registered (its
scheme and form, and its host when that is an address literal), and to every
address the name resolves to when a delivery is made (the sender connects to
one of those checked addresses and no other: no second lookup, no rebinding).

* ``https`` only.  ``insecure_local`` (``DOCS_WEBHOOKS_INSECURE_LOCAL``, the
  local stack and tests; never honoured in AWS) also allows ``http`` and
  loopback targets, and nothing else that is not public.
* An address must be globally routable: private, loopback, link-local (the
  instance metadata service at 169.254.169.254 among them), shared (CGNAT),
  multicast, reserved, unspecified and documentation ranges are refused, for
  IPv4, IPv6 and IPv4 written inside IPv6 (mapped, 6to4, NAT64 well-known).
* No user name or password in the URL, no fragment, at most 2048 characters.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.domain.errors import ValidationFailed

MAX_URL = 2048
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    """A URL or address a delivery must not go to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL, split the way the sender needs it."""

    scheme: str
    host: str  # the name (or literal) sent as SNI and Host
    port: int
    path: str  # path and query

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def check_address(addr: IpAddress, *, insecure_local: bool = False) -> None:
    """Raise ``UnsafeTarget`` unless a delivery may connect to ``addr``."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_v4(addr)
        if inner is not None:
            check_address(inner, insecure_local=insecure_local)
            return
    if addr.is_loopback:
        if insecure_local:
            return
        raise UnsafeTarget(f"{addr} is a loopback address")
    if addr.is_multicast:
        raise UnsafeTarget(f"{addr} is a multicast address")
    if addr.is_link_local:
        raise UnsafeTarget(f"{addr} is a link-local address (instance metadata lives there)")
    if addr.is_private:
        raise UnsafeTarget(f"{addr} is a private address")
    if addr.is_reserved or addr.is_unspecified or not addr.is_global:
        raise UnsafeTarget(f"{addr} is not a public address")


def _check_host(host: str, insecure_local: bool) -> None:
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, insecure_local=insecure_local)
        return
    lowered = host.lower()
    is_local_name = lowered == "localhost" or lowered.endswith(".localhost")
    if is_local_name and not insecure_local:
        raise UnsafeTarget(f"{host} names this machine")
    if lowered in _METADATA_NAMES or lowered.endswith(".internal"):
        raise UnsafeTarget(f"{host} is an internal name")
    if "." not in lowered and not is_local_name:
        raise UnsafeTarget(f"{host} is not a fully qualified name")


def check_url(url: str, *, insecure_local: bool = False) -> Target:
    """The URL split into a ``Target``, or ``UnsafeTarget`` saying why it is refused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UnsafeTarget(f"the URL must be a string of 1-{MAX_URL} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeTarget("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"the URL is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and insecure_local):
        raise UnsafeTarget("only https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not carry a user name or password")
    if parts.fragment:
        raise UnsafeTarget("the URL must not have a fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("the URL has no host")
    if port == 0:
        raise UnsafeTarget("port 0 is not a port")
    _check_host(host, insecure_local)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def validate_url(url: object, *, insecure_local: bool = False) -> str:
    """The registration rule: the URL, or a 422 naming ``body.url``."""
    try:
        check_url(url if isinstance(url, str) else "", insecure_local=insecure_local)
    except UnsafeTarget as exc:
        raise ValidationFailed(
            f"url is refused: {exc}.",
            errors=[{"loc": ["body", "url"], "msg": str(exc), "type": "value_error.url"}],
        ) from None
    assert isinstance(url, str)
    return url
