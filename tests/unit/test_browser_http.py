"""The browser rules on their own: Accept-Encoding, the gzip threshold, the allowlist."""

from __future__ import annotations

import gzip

import pytest

from chalicelib.api import cors
from chalicelib.config import Settings
from devtools.browser_http import finish, gzip_accepted

JSON = {"Content-Type": "application/json", "ETag": '"v1"'}


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("*", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("identity", False),
        ("br", False),
        ("", False),
        (None, False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert gzip_accepted(header) is accepted


def test_only_json_of_the_threshold_and_up_is_compressed_and_the_etag_stays() -> None:
    big = b'{"x": "' + b"a" * cors.COMPRESSION_MIN_BYTES + b'"}'
    small = b'{"x": 1}'
    headers, body = finish(JSON, big, origin=None, accept_encoding="gzip", origins=())
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == big
    assert headers["ETag"] == '"v1"' and headers["Vary"] == "Accept-Encoding"
    assert finish(JSON, small, origin=None, accept_encoding="gzip", origins=())[1] == small
    octets = {"Content-Type": "application/octet-stream"}
    assert finish(octets, big, origin=None, accept_encoding="gzip", origins=())[1] == big
    encoded = {**JSON, "Content-Encoding": "br"}
    assert finish(encoded, big, origin=None, accept_encoding="gzip", origins=())[1] == big
    problem = {"Content-Type": "application/problem+json"}
    assert finish(problem, big, origin=None, accept_encoding="gzip", origins=())[1] != big


def test_the_allowlist_is_normalised_and_exact() -> None:
    settings = Settings(cors_origins=" https://App.Example.com/ ,http://localhost:3000,")
    origins = settings.cors_origins
    assert origins == ("https://app.example.com", "http://localhost:3000")
    assert cors.allowed("https://app.example.com", origins)
    assert cors.allowed("HTTPS://APP.EXAMPLE.COM", origins)
    for other in ("https://app.example.com.evil.net", "http://app.example.com", "null", None):
        assert not cors.allowed(other, origins)
    assert Settings().cors_origins == ()


def test_vary_is_merged_once() -> None:
    headers = {"vary": "Accept"}
    cors.add_vary(headers, "Origin")
    cors.add_vary(headers, "origin")
    assert headers == {"vary": "Accept, Origin"}
