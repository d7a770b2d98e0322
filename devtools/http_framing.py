"""Where a request ends: RFC 9112 message framing for the local server, by h11.

The local server reads the request head itself (it owns the deadlines and size
limits), then hands the head to h11, a well-kept sans-I/O HTTP/1.1 parser,
which validates the request line and every header field and decides the body's
framing (Content-Length or chunked); the body is then read through the same h11
connection, so the parser that validated the head is also the one that frames
the body.  No framing decision is made by a second reader.

h11 accepts a few things a server must not, because another reader of the
same bytes could frame them differently (request smuggling); they are refused
here before h11 sees the head:

* a line ending in a bare LF, or a bare CR anywhere (RFC 9112 2.2);
* obsolete line folding, and whitespace before the first field (RFC 9112 5.2,
  2.2) -- h11 would unfold them;
* a control character anywhere in the head (NUL ... US, DEL; HTAB only inside
  field values) -- h11 lets DEL through in values;

and after h11 has parsed it:

* ``Transfer-Encoding`` together with ``Content-Length`` (RFC 9112 6.1 lets a
  server reject it; a proxy in front might honour the other one);
* ``Transfer-Encoding`` in an HTTP/1.0 request (RFC 9112 6.1: faulty framing).

Everything h11 refuses is a 400 (a transfer coding other than exactly
``chunked`` is h11's 501: RFC 9112 6.1, a coding the server does not
implement).  In every case the server answers and closes the connection.

An HTTP/1.1 request without ``Host`` is still served (the local server always
did; framing does not depend on it): h11 requires one, so a placeholder is
added to the copy h11 validates.  Two ``Host`` fields remain a 400.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import time
from email.utils import formatdate
from typing import Any

import h11

# a CTL other than HTAB; CR and LF are checked as line ends
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HOST_FIELD = re.compile(rb"\r\nhost:", re.IGNORECASE)
_PLACEHOLDER_HOST = b"Host: localhost\r\n"
_DIGITS = re.compile(r"[0-9]+")
_QUOTED = re.compile(r":?\s*bytearray\(|:?\s*b['\"]")


class Refused(Exception):
    """The request cannot be framed unambiguously: answer ``status`` and close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclasses.dataclass
class Message:
    """A validated request head and the h11 connection that reads its body."""

    connection: h11.Connection
    length: int  # the declared Content-Length (0 without one; unused when chunked)
    chunked: bool

    def read(self, data: bytes) -> tuple[bytes, bool]:
        """Feed what arrived; the body bytes it completes, and whether the body
        ended (then ``rest`` is what followed it).  ``Refused`` (400) on a
        malformed chunked body."""
        if data:  # (h11 reads an empty feed as the end of the stream)
            self.connection.receive_data(data)
        parts: list[bytes] = []
        while True:
            try:
                event = self.connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(400, _sentence(f"chunked body: {exc}")) from None
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts), True
            else:  # NEED_DATA
                return b"".join(parts), False

    def rest(self) -> bytes:
        """The bytes received after the end of the body (a pipelined request)."""
        data, _closed = self.connection.trailing_data
        return data


def request_line(line: bytes) -> tuple[str, str, str]:
    """(method, target, version) of a request line, read with http.server's rules and
    answers (``BaseHTTPRequestHandler.parse_request``, whose header parsing through the
    ``email`` package cost more than the rest of the head): a malformed version is a
    400, 2.0 and later a 505, a two-word line an HTTP/0.9 GET; ``//`` at the start of
    the target is one ``/``.  h11 then frames the head (``parse_head``)."""
    text = str(line, "iso-8859-1").rstrip("\r\n")
    words = text.split()
    if not words:
        raise Refused(400, "Malformed request.")
    version = "HTTP/0.9"
    if len(words) >= 3:
        version = words[-1]
        base = version[5:]
        numbers = base.split(".")
        try:
            if (
                not version.startswith("HTTP/")
                or len(numbers) != 2
                or not all(n.isdigit() and len(n) <= 10 for n in numbers)
            ):
                raise ValueError
            number = int(numbers[0]), int(numbers[1])  # ("²".isdigit(), but not int("²"))
        except ValueError:
            raise Refused(400, f"Bad request version ({version!r})") from None
        if number >= (2, 0):
            raise Refused(505, f"Invalid HTTP version ({base})")
    if not 2 <= len(words) <= 3:
        raise Refused(400, f"Bad request syntax ({text!r})")
    method, target = words[:2]
    if len(words) == 2 and method != "GET":
        raise Refused(400, f"Bad HTTP/0.9 request type ({method!r})")
    if target.startswith("//"):  # http.server's guard against open redirects (gh-87389)
        target = "/" + target.lstrip("/")
    return method, target, version


def declared_length(values: list[str]) -> int:
    """The body length the ``Content-Length`` field values declare (0 without one);
    ``Refused`` (400) when one is not a decimal integer or they disagree."""
    parts = [part.strip() for v in values for part in v.split(",")]
    if not parts:
        return 0
    if not all(_DIGITS.fullmatch(v) for v in parts):
        raise Refused(400, "Content-Length must be a non-negative decimal integer.")
    distinct = {v.lstrip("0") or "0" for v in parts}
    if len(distinct) > 1:
        raise Refused(400, "The request has conflicting Content-Length values.")
    value = distinct.pop()
    # (int() refuses over 4300 digits; anything past 18 is over every limit anyway)
    return int(value) if len(value) <= 18 else sys.maxsize


def parse_head(head: bytes, max_line_bytes: int) -> Message:
    """Validate a complete request head (request line to the blank line, CRLF
    line ends); ``Refused`` when it is malformed or its framing is ambiguous.
    ``max_line_bytes`` bounds a chunk-size line of the body."""
    _check_bytes(head)
    lines_end = head.find(b"\r\n")
    fed = head
    if _HOST_FIELD.search(head) is None:
        fed = head[: lines_end + 2] + _PLACEHOLDER_HOST + head[lines_end + 2 :]
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=max(max_line_bytes, 1024))
    connection.receive_data(fed)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        raise Refused(exc.error_status_hint, _sentence(str(exc))) from None
    except ValueError:  # int() of a Content-Length of thousands of digits
        raise Refused(400, "Malformed request: bad Content-Length.") from None
    if not isinstance(event, h11.Request):  # the head was complete: cannot happen
        raise Refused(400, "The request head is incomplete.")
    names = [name for name, _ in event.headers]
    chunked = b"transfer-encoding" in names
    if chunked and b"content-length" in names:
        raise Refused(400, "A request cannot carry both Transfer-Encoding and Content-Length.")
    if chunked and event.http_version == b"1.0":
        raise Refused(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.")
    length = next((int(v) for n, v in event.headers if n == b"content-length"), 0)
    return Message(connection, length, chunked)


def _check_bytes(head: bytes) -> None:
    """What h11 would accept but must be refused: bare line ends, folded lines,
    control characters."""
    unpaired = head.replace(b"\r\n", b"")
    if b"\r" in unpaired or b"\n" in unpaired:
        raise Refused(400, "Every line of the request head must end in CRLF.")
    if b"\r\n " in head or b"\r\n\t" in head:
        raise Refused(400, "Header fields cannot be folded or start with whitespace.")
    if _CTL.search(head) is not None:
        raise Refused(400, "The request head holds a control character.")
    if not head.endswith(b"\r\n\r\n"):
        raise Refused(400, "The request head must end in an empty line.")
    if b"\t" in head[: head.find(b"\r\n")]:
        raise Refused(400, "The request line holds a control character.")


def _sentence(text: str) -> str:
    """h11's reason as a sentence, without the bytes it quotes (a malformed
    ``Authorization`` line would otherwise be echoed back)."""
    text = _QUOTED.split(text)[0].strip()[:120]
    return f"Malformed request: {text}." if text else "Malformed request."


class Fields:
    """A request's header fields as http.server's ``headers`` is used here (``get``:
    the first value, ``get_all``, ``items`` in arrival order; names case-insensitive),
    parsed as its parser would (a value loses its leading blanks), in one pass: the
    ``email`` parser behind http.server took as long as the app's GET hit's own
    Python.  A malformed head is refused right after by h11 (``parse_head``)."""

    __slots__ = ("_by_name", "_items")
    MAX_FIELDS = 100  # http.client's limit, answered with the same 431

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._by_name: dict[str, list[str]] = {}
        for name, value in items:
            self._by_name.setdefault(name.lower(), []).append(value)

    @classmethod
    def parse(cls, fields: bytes) -> Fields:
        items: list[tuple[str, str]] = []
        for count, raw in enumerate(fields.decode("iso-8859-1").split("\n"), start=1):
            line = raw.rstrip("\r\n")
            if not line:
                break  # the empty line that ends the head
            if count > cls.MAX_FIELDS:
                raise Refused(431, "Too many headers")
            name, colon, value = line.partition(":")
            if colon:  # (a line without one makes h11 refuse the head)
                items.append((name, value.lstrip(" \t")))
        return cls(items)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, default: Any = None) -> Any:
        return list(self._by_name.get(name.lower(), ())) or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def http_date() -> str:
    """The ``Date`` header's value (RFC 9110 IMF-fixdate), made once a second."""
    return _date_of(int(time.time()))


@functools.lru_cache(maxsize=1)
def _date_of(second: int) -> str:
    return formatdate(second, usegmt=True)
