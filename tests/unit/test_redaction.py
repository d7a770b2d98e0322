"""``chalicelib.redaction.redact``: no credential survives, everything else does."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.redaction import REDACTED, is_credential_name, redact
from tests.conftest import make_token

B64URL = string.ascii_letters + string.digits + "-_"
segment = st.text(B64URL, min_size=8, max_size=60)
jwts = st.builds(lambda a, b, c: f"eyJ{a}.{b}.{c}", segment, segment, segment)
# opaque secrets, marked so that none is a substring of the record around it
secrets_ = st.text(string.ascii_letters + string.digits + "-_.~", min_size=10, max_size=80).map(
    lambda text: "zq" + text
)
CREDENTIAL_PARAMS = [
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "Token",
    "jwt",
    "api_key",
    "apikey",
    "client_secret",
    "password",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "auth",
    "sig",
]


@given(token=jwts, prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_no_jwt_survives_in_any_text(token: str, prefix: str, suffix: str) -> None:
    out = redact(prefix + token + suffix)
    assert "eyJ" not in out[len(prefix) :] or "eyJ" in suffix
    assert token not in out


@given(
    token=jwts | secrets_,
    name=st.sampled_from(CREDENTIAL_PARAMS),
    path=st.sampled_from(["/realtime", "/changes", "/documents/a%20b", ""]),
    before=st.sampled_from(["", "feed=eventsource&", "since=12&x=1&"]),
    after=st.sampled_from(["", "&since=3", "#frag", " HTTP/1.1"]),
)
def test_credential_query_parameters_are_redacted(
    token: str, name: str, path: str, before: str, after: str
) -> None:
    url = f"{path}?{before}{name}={token}{after}"
    out = redact(url)
    assert token not in out
    assert out == f"{path}?{before}{name}={REDACTED}{after}"


@given(token=jwts | secrets_)
def test_bearer_credentials_are_redacted(token: str) -> None:
    for text in (
        f"Authorization: Bearer {token}",
        f"docs.v1, bearer.{token}",
        f"authorization: Basic {token}",
        f"Cookie: session={token}",
    ):
        assert token not in redact(text), text


@given(token=jwts | secrets_, value=st.text(max_size=11))
def test_a_logged_event_keeps_its_shape_and_loses_its_credentials(token: str, value: str) -> None:
    event = {
        "path": f"/realtime?token={token}",
        "headers": {
            "Authorization": f"Bearer {token}",
            "Sec-WebSocket-Protocol": f"docs.v1, bearer.{token}",
            "Host": "example.org",
            "X-Other": value,
        },
        "multiValueHeaders": {"authorization": [f"Bearer {token}"]},
        "queryStringParameters": {"token": token, "since": "5"},
        "multiValueQueryStringParameters": {"access_token": [token]},
        "requestContext": {"requestId": "r-1", "routeKey": "$connect"},
    }
    out = redact(event)
    assert token not in json.dumps(out)
    assert out["headers"]["Host"] == "example.org"
    assert out["headers"]["Authorization"] == REDACTED
    assert out["queryStringParameters"] == {"token": REDACTED, "since": "5"}
    assert out["requestContext"] == event["requestContext"]


@pytest.mark.parametrize(
    "text",
    [
        "GET /documents/d1 200",
        "/changes?feed=eventsource&since=42",
        "search sync retry org=acme doc_id=d-1 reason=timeout",
        "ignored object: not a key this service issues",
        "key=uploads/acme/d1/v1 bucket=content",
        "a token bucket of 5 (rate limit)",
        "the basic plan",
    ],
)
def test_ordinary_log_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


@given(
    st.recursive(
        st.text() | st.integers() | st.none(),
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=10), kids, max_size=3)
        ),
    )
)
def test_redaction_is_idempotent(value: Any) -> None:
    once = redact(value)
    assert redact(once) == once


def test_credential_names() -> None:
    for name in [*CREDENTIAL_PARAMS, "Authorization", "Sec-WebSocket-Protocol", "Set-Cookie"]:
        assert is_credential_name(name), name
    for name in ("since", "feed", "key", "org", "doc_id", "code", "request_id", "path"):
        assert not is_credential_name(name), name


def test_a_real_token_in_a_websocket_url() -> None:
    token = make_token()
    line = {"method": "GET", "path": f"/realtime?token={token}", "status": 101}
    assert "eyJ" not in json.dumps(redact(line))
