"""The local server's request framing (``devtools/http_framing.py``), head by head.

The black-box version, with a smuggled request behind each head, is
``tests/security/test_http_framing.py``; this one covers the class faster,
including heads generated from every control byte and whitespace placement.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.http_framing import Refused, parse_head

LINE = b"POST /documents HTTP/1.1\r\n"
LIMIT = 10240


def _status(head: bytes) -> int:
    try:
        parse_head(head, LIMIT)
    except Refused as exc:
        return exc.status
    return 200


@pytest.mark.parametrize(
    ("head", "chunked", "length"),
    [
        (LINE + b"Host: x\r\n\r\n", False, 0),
        (LINE + b"Host: x\r\nContent-Length: 5\r\n\r\n", False, 5),
        (LINE + b"Host: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n", False, 5),
        (LINE + b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", True, 0),
        (LINE + b"Host: x\r\nTransfer-Encoding: Chunked \r\n\r\n", True, 0),
        (LINE + b"Content-Length: 3\r\n\r\n", False, 3),  # no Host: still served
        (b"GET / HTTP/1.0\r\n\r\n", False, 0),
        (LINE + b"Host: x\r\nX-Tab: a\tb\r\nX-Latin: caf\xe9\r\n\r\n", False, 0),
    ],
)
def test_well_formed_heads_are_framed(head: bytes, chunked: bool, length: int) -> None:
    message = parse_head(head, LIMIT)
    assert (message.chunked, message.length) == (chunked, length)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (b"Transfer-Encoding : chunked\r\n", 400),
        (b"Content-Length\t: 5\r\n", 400),
        (b"X-A: a\r\n Transfer-Encoding: chunked\r\n", 400),
        (b"Transfer-Encoding:\r\n\tchunked\r\n", 400),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
        (b"Transfer-Encoding: gzip\r\n", 501),
        (b"Transfer-Encoding: chunked, chunked\r\n", 501),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        (b"Content-Length: 1" + b"0" * 5000 + b"\r\n", 400),
        (b"X-\x00A: b\r\n", 400),
        (b"X-A: b\x00\r\n", 400),
        (b"X-A: b\x7f\r\n", 400),
        (b"X-A: b\rc\r\n", 400),
        (b"X-A: b\nc\r\n", 400),
        (b"Host: y\r\n", 400),  # a second Host
    ],
)
def test_malformed_or_ambiguous_heads_are_refused(fields: bytes, status: int) -> None:
    assert _status(LINE + b"Host: x\r\n" + fields + b"\r\n") == status


def test_transfer_encoding_in_http_1_0_is_refused() -> None:
    assert _status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400


@pytest.mark.parametrize(
    "line",
    [
        b"POST  / HTTP/1.1",
        b"POST / HTTP/1.1 ",
        b"POST\t/ HTTP/1.1",
        b"POST /\x7f HTTP/1.1",
        b" POST / HTTP/1.1",
        b"POST / HTTP/1.1\x00",
    ],
)
def test_malformed_request_lines_are_refused(line: bytes) -> None:
    assert _status(line + b"\r\nHost: x\r\n\r\n") == 400


def test_the_refusal_does_not_echo_the_line() -> None:
    with pytest.raises(Refused) as caught:
        parse_head(LINE + b"Authorization : Bearer secret-token\r\n\r\n", LIMIT)
    assert "secret" not in caught.value.detail and "Bearer" not in caught.value.detail


@given(
    byte=st.integers(0, 31).filter(lambda b: b != 9) | st.just(127),
    where=st.sampled_from(["name", "value", "target"]),
)
def test_every_control_byte_anywhere_is_refused(byte: int, where: str) -> None:
    ctl = bytes([byte])
    name, value, target = b"X-A", b"b", b"/"
    if where == "name":
        name = b"X-" + ctl + b"A"
    elif where == "value":
        value = b"b" + ctl + b"c"
    else:
        target = b"/" + ctl
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + name + b": " + value + b"\r\n\r\n"
    assert _status(head) == 400


@given(
    space=st.sampled_from([b" ", b"\t", b"  ", b" \t"]),
    name=st.sampled_from([b"Transfer-Encoding", b"Content-Length", b"Host", b"X-Any"]),
)
def test_whitespace_before_the_colon_or_a_fold_is_refused(space: bytes, name: bytes) -> None:
    before_colon = LINE + b"Host: x\r\n" + name + space + b": 5\r\n\r\n"
    folded = LINE + b"Host: x\r\nX-A: a\r\n" + space + name + b": 5\r\n\r\n"
    assert _status(before_colon) == 400
    assert _status(folded) == 400


def test_a_chunked_body_is_decoded_and_what_follows_is_kept() -> None:
    message = parse_head(LINE + b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", LIMIT)
    body, done = message.read(b"3\r\nabc\r\n")
    assert (body, done) == (b"abc", False)
    body, done = message.read(b"")  # nothing new: still waiting, not the end of the stream
    assert (body, done) == (b"", False)
    body, done = message.read(b"2;ext=1\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    assert (body, done) == (b"de", True)
    assert message.rest() == b"GET / HTTP/1.1\r\n"


def test_a_malformed_chunk_is_a_400() -> None:
    message = parse_head(LINE + b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", LIMIT)
    with pytest.raises(Refused) as caught:
        message.read(b"3\r\nabcX\r\n")
    assert caught.value.status == 400


# ------------------------------------------------------------------ Fields
def test_fields_read_as_http_servers_headers_did() -> None:
    """``Fields`` replaced http.server's ``email``-parsed headers: same answers."""
    import email.parser
    from http.client import HTTPMessage

    from devtools.http_framing import Fields

    raw = (
        b"Host: a\r\nX-Twice: one\r\nx-twice: two  \r\nAccept-Encoding:\t gzip\r\n"
        b"Empty:\r\nColon: a:b\r\n\r\n"
    )
    ours = Fields.parse(raw)
    theirs = email.parser.Parser(_class=HTTPMessage).parsestr(raw.decode("iso-8859-1"))
    for name in ("host", "X-TWICE", "accept-encoding", "empty", "colon", "missing"):
        assert ours.get(name) == theirs.get(name), name
        assert ours.get_all(name) == theirs.get_all(name), name
    assert ours.items() == theirs.items()
    assert ours.get("missing", "d") == "d"


def test_more_than_100_fields_are_a_431() -> None:
    from devtools.http_framing import Fields

    assert len(Fields.parse(b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n").items())
    with pytest.raises(Refused) as err:
        Fields.parse(b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n")
    assert err.value.status == 431


def test_declared_length() -> None:
    from devtools.http_framing import declared_length

    assert declared_length([]) == 0
    assert declared_length(["012", "12, 12"]) == 12
    for bad in (["-1"], ["1e3"], ["1", "2"]):
        with pytest.raises(Refused) as err:
            declared_length(bad)
        assert err.value.status == 400


def test_the_date_header_is_an_imf_fixdate() -> None:
    import email.utils

    from devtools.http_framing import http_date

    value = http_date()
    assert value.endswith(" GMT") and email.utils.parsedate_to_datetime(value) is not None


@pytest.mark.parametrize(
    "line",
    [
        b"GET /documents HTTP/1.1\r\n",
        b"GET //evil.example/x HTTP/1.1\r\n",
        b"GET /\r\n",
        b"POST /\r\n",
        b"GET / HTTP/2.0\r\n",
        b"GET / HTTP/1.1.1\r\n",
        b"GET / HTTP/\xc2\xb2.1\r\n",
        b"GET / http/1.1\r\n",
        b"GET / HTTP/01.10\r\n",
        b"GET / HTTP/1.12345678901\r\n",
        b"GET / x HTTP/1.1\r\n",
        b"GET\r\n",
        b" \r\n",
    ],
)
def test_the_request_line_is_read_as_http_server_read_it(line: bytes) -> None:
    """``request_line`` replaced http.server's ``parse_request``: same answers."""
    from http.server import BaseHTTPRequestHandler

    from devtools.http_framing import request_line

    class Theirs(BaseHTTPRequestHandler):
        def __init__(self) -> None:
            self.raw_requestline = line
            self.rfile = __import__("io").BytesIO(b"\r\n")
            self.error: tuple[int, str] | None = None

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            self.error = (code, message or "")

    theirs = Theirs()
    ok = theirs.parse_request()
    try:
        ours: tuple[str, str, str] | tuple[int, str] = request_line(line)
    except Refused as exc:
        ours = (exc.status, exc.detail)
    if ok:
        assert ours == (theirs.command, theirs.path, theirs.request_version)
    else:
        assert ours == (theirs.error or (400, "Malformed request."))
