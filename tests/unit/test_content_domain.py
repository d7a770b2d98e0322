"""Content domain: keys, upload requests, sniffing, streamed inspection (no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from chalicelib.domain.content.inspect import Inspector, effective_type, sniff
from chalicelib.domain.content.keys import ContentKey, parse_content_key
from chalicelib.domain.content.policy import (
    ContentPolicy,
    content_disposition,
    normalize_sha256,
    parse_upload_request,
)
from chalicelib.domain.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from chalicelib.domain.model import new_id
from tests.content_samples import make_pdf

EVENTS = Path(__file__).resolve().parents[2] / "events"
POLICY = ContentPolicy(max_bytes=10_000, text_max_chars=500)


def inspect(data: bytes, declared: str, *, sha: str | None = None, chunk: int = 7,
            policy: ContentPolicy = POLICY, max_bytes: int | None = None):  # fmt: skip
    inspector = Inspector(
        declared_type=declared,
        declared_sha256=sha,
        max_bytes=max_bytes or policy.max_bytes,
        policy=policy,
    )
    for i in range(0, len(data), chunk):
        inspector.feed(data[i : i + chunk])
        if inspector.done:
            break
    return inspector.finish()


# ----------------------------------------------------------------------- keys
def test_key_is_built_from_server_values_and_parses_back() -> None:
    upload = new_id()
    key = ContentKey("acme corp/x", "doc-1", upload).key
    assert key == f"content/acme%20corp%2Fx/doc-1/{upload}"
    assert parse_content_key(key) == ContentKey("acme corp/x", "doc-1", upload)


@pytest.mark.parametrize(
    "key",
    [
        "other/acme/doc/01JD6ZC3Q6V6M1K8B0N7W2X4YZ",
        "content/acme/doc",
        "content/acme/doc/01JD6ZC3Q6V6M1K8B0N7W2X4YZ/extra",
        "content/acme/doc/not-an-upload-id",
        "content/acme/d o c/01JD6ZC3Q6V6M1K8B0N7W2X4YZ",
        "content//doc/01JD6ZC3Q6V6M1K8B0N7W2X4YZ",
        "content/a b/doc/01JD6ZC3Q6V6M1K8B0N7W2X4YZ",  # org not in its quoted form
    ],
)
def test_keys_the_service_never_issues_do_not_parse(key: str) -> None:
    assert parse_content_key(key) is None


# -------------------------------------------------------------- upload request
def test_upload_request_accepts_hex_or_base64_sha256() -> None:
    digest = hashlib.sha256(b"x").digest()
    req = parse_upload_request(
        {"content_type": "Text/Plain; charset=utf-8", "sha256": base64.b64encode(digest).decode()},
        POLICY,
    )
    assert req.content_type == "text/plain" and req.sha256 == digest.hex()
    assert normalize_sha256(digest.hex().upper()) == digest.hex()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, ValidationFailed),
        ({"content_type": "image/png"}, UnsupportedMediaType),
        ({"content_type": "text/plain", "sha256": "abc"}, ValidationFailed),
        ({"content_type": "text/plain", "size": 0}, ValidationFailed),
        ({"content_type": "text/plain", "size": 10_001}, PayloadTooLarge),
        ({"content_type": "text/plain", "bogus": 1}, ValidationFailed),
        ([], ValidationFailed),
    ],
)
def test_bad_upload_requests(body: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_upload_request(body, POLICY)


def test_content_disposition_is_attachment_with_a_safe_name() -> None:
    value = content_disposition('plan "q3"/ü.txt', "doc")
    assert value.startswith('attachment; filename="plan _q3__')
    assert "filename*=UTF-8''plan%20%22q3%22%2F%C3%BC.txt" in value


# ------------------------------------------------------------------- sniffing
def test_sniffing() -> None:
    assert sniff(b"%PDF-1.7\n...") == "application/pdf"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff("héllo".encode()) == "text"
    assert sniff("h\xe9".encode()[:2]) == "text"  # cut inside a character: still text
    assert sniff(b"a\x00b") == "application/octet-stream"
    assert effective_type("text/plain", "image/png", POLICY.allowed_types)[1].startswith(
        "disallowed_type"
    )
    assert effective_type("application/pdf", "text", POLICY.allowed_types)[1].startswith(
        "type_mismatch"
    )


# ----------------------------------------------------------------- inspection
def test_plain_text_is_hashed_and_extracted_across_chunk_boundaries() -> None:
    data = ("\ufeffQuarterly plan — é ü 😀 " * 3).encode()
    result = inspect(data, "text/plain", sha=hashlib.sha256(data).hexdigest(), chunk=3)
    assert result.accepted, result.reason
    assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.text.startswith("Quarterly plan — é ü 😀")


def test_markdown_json_html_extraction() -> None:
    md = inspect(b"# Title\n\nSome *bold* [link](http://x) text", "text/markdown")
    assert md.text == "Title\n\nSome bold link text"
    js = inspect(json.dumps({"title": "Plan", "n": 1, "tags": ["q3"]}).encode(), "application/json")
    assert js.accepted and js.text.split() == ["title", "n", "tags", "Plan", "q3"]
    html = inspect(
        b"<html><head><style>p{}</style><script>var x=1</script></head>"
        b"<body><p>Hello &amp; welcome</p></body></html>",
        "text/html",
    )
    assert html.accepted and html.text == "Hello & welcome"


def test_pdf_is_spooled_and_its_text_extracted(tmp_path) -> None:
    policy = ContentPolicy(max_bytes=10_000, spool_dir=str(tmp_path))
    result = inspect(make_pdf("Quarterly revenue plan"), "application/pdf", policy=policy)
    assert result.accepted and result.text == "Quarterly revenue plan"
    assert os.listdir(tmp_path) == []  # the spool file is gone


def test_pdf_over_the_spool_cap_is_accepted_without_text(tmp_path) -> None:
    policy = ContentPolicy(max_bytes=10_000, spool_dir=str(tmp_path), pdf_spool_max_bytes=100)
    result = inspect(make_pdf("Quarterly revenue plan"), "application/pdf", policy=policy)
    assert result.accepted and result.text == "" and "not extracted" in (result.note or "")
    assert os.listdir(tmp_path) == []


def test_text_is_capped() -> None:
    result = inspect(b"word " * 1000, "text/plain")
    assert result.accepted and len(result.text) <= 500 and result.text_truncated


@pytest.mark.parametrize(
    ("data", "declared", "code"),
    [
        (b"x" * 10_001, "text/plain", "too_large"),
        (b"", "text/plain", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "text/plain", "disallowed_type"),
        (b"hello", "application/pdf", "type_mismatch"),
        (b"%PDF-1.4 broken", "application/pdf", "invalid_pdf"),
        (b"ok" * 4900 + b"\xff\xfe", "text/plain", "invalid_text"),
        (b"ok" * 4900 + b"\x00", "text/plain", "invalid_text"),  # NUL after the sniffed head
        (b"abc\x00def" * 1000, "text/plain", "disallowed_type"),  # binary from the start
        (b"{not json", "application/json", "invalid_json"),
        (b"ab\xc3", "text/plain", "invalid_text"),  # ends inside a character
    ],
)
def test_rejections(data: bytes, declared: str, code: str) -> None:
    result = inspect(data, declared, chunk=4096)
    assert not result.accepted
    assert result.reason is not None and result.reason.startswith(code), result.reason


def test_checksum_mismatch_is_rejected() -> None:
    result = inspect(b"hello", "text/plain", sha=hashlib.sha256(b"other").hexdigest())
    assert result.reason is not None and result.reason.startswith("checksum_mismatch")
    content = result.content("U1", None)
    assert content["status"] == "rejected" and content["sha256"] == result.sha256


def test_oversize_stops_reading_early_and_reports_no_digest() -> None:
    inspector = Inspector(
        declared_type="text/plain", declared_sha256=None, max_bytes=10, policy=POLICY
    )
    inspector.feed(b"x" * 8)
    inspector.feed(b"x" * 8)
    assert inspector.done
    result = inspector.finish()
    assert result.reason.startswith("too_large") and "sha256" not in result.content("U", None)


# ---------------------------------------------------------------- event shapes
def test_sample_events_parse_to_object_created() -> None:
    from functions.process_upload import objects_in

    put = objects_in(json.loads((EVENTS / "s3_object_created_put.json").read_text()))
    assert [(o.bucket, o.key, o.size) for o in put] == [
        ("docs-content-local", "content/acme/event-doc/01JD6ZC3Q6V6M1K8B0N7W2X4YZ", 1024)
    ]
    multipart = objects_in(json.loads((EVENTS / "s3_object_created_multipart.json").read_text()))
    assert multipart[0].version_id == "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G"
    sqs = json.loads((EVENTS / "sqs_s3_object_created.json").read_text())
    bodies = [objects_in(r["body"]) for r in sqs["Records"]]
    assert bodies[0] == put and bodies[1] == []  # the s3:TestEvent is skipped


def test_url_encoded_keys_eventbridge_and_sns_envelopes() -> None:
    from functions.process_upload import objects_in

    s3 = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "content%2Fa%2540b%2Fd+x"}},
            },
            {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {}},
        ]
    }
    assert [o.key for o in objects_in(s3)] == ["content/a%40b/d x"]
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "content/a%40b/d", "size": 3}},
    }
    assert [o.key for o in objects_in(bridge)] == ["content/a%40b/d"]  # not decoded
    sns = {"Type": "Notification", "Message": json.dumps(s3)}
    assert len(objects_in(json.dumps(sns))) == 1
    assert objects_in("not json") == [] and objects_in({"Service": "Amazon S3"}) == []
