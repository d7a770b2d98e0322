"""Large content end to end: API → presigned PUT (moto server) → S3 event → SQS →
``functions.process_upload.handler`` → PostgreSQL; then presigned downloads.

moto runs as a private ThreadedMotoServer on a free port (presigned URLs need
a real endpoint); the bucket and queue names are unique per test; PostgreSQL
is the run's own database (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from devtools.events import LambdaContext
from tests.conftest import Invoker, make_token
from tests.content_samples import make_pdf

pytestmark = pytest.mark.integration
MAX_BYTES = 100_000


@dataclass
class Env:
    container: Any
    api: Invoker
    org: str
    endpoint: str
    bucket: str
    queue_url: str
    database_url: str

    def s3(self) -> Any:
        from chalicelib.adapters.s3 import client

        return client(self.endpoint, "us-east-1")

    def deliver(self, handler: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
        """Drain the queue through the Lambda handler, as the SQS event source would."""
        import boto3

        from devtools.s3_stack import Poller

        poller = Poller(self.endpoint, self.queue_url, handler=handler, wait_s=0)
        sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1")
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        results: list[dict[str, Any]] = []
        recorder = poller.handler()

        def record(event: dict[str, Any], context: Any) -> Any:
            result = recorder(event, context)
            results.append(result)
            return result

        poller._handler = record
        while poller.poll_once(sqs, arn):
            pass
        return results

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, args).fetchall()

    def doc(self, doc_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/documents/{doc_id}")
        assert r.status == 200, r
        return r.json()

    def new_doc(self) -> str:
        r = self.api("POST", "/documents", {"title": "with content"})
        assert r.status == 201, r
        return str(r.json()["id"])

    def start(self, doc_id: str, **body: Any) -> dict[str, Any]:
        r = self.api("POST", f"/documents/{doc_id}/content", {"content_type": "text/plain", **body})
        assert r.status == 200, r
        return r.json()


@pytest.fixture
def env(settings: Any, moto_endpoint: str) -> Iterator[Env]:
    from chalicelib import bootstrap
    from devtools.s3_stack import ensure_resources

    suffix = uuid.uuid4().hex[:10]
    bucket = f"docs-t-{suffix}"
    queue_url = ensure_resources(
        moto_endpoint, bucket, queue=f"docs-t-{suffix}", visibility_timeout_s=0
    )
    test_settings = settings.model_copy(
        update={
            "aws_endpoint_url": moto_endpoint,
            "content_bucket": bucket,
            "content_max_bytes": MAX_BYTES,
        }
    )
    built = bootstrap.build(test_settings)
    bootstrap.set_container(built)
    org = f"content-{suffix}"
    try:
        yield Env(
            built,
            Invoker(make_token(org=org)),
            org,
            moto_endpoint,
            bucket,
            queue_url,
            settings.database_url,
        )
    finally:
        bootstrap.set_container(None)
        built.close()


def put(ticket: dict[str, Any], data: bytes, headers: dict[str, str] | None = None) -> int:
    hdrs = {k: v for k, v in ticket["headers"].items() if k.lower() != "content-length"}
    hdrs.update(headers or {})
    req = urllib.request.Request(ticket["upload_url"], data=data, method="PUT", headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def outcomes(env: Env) -> list[str]:
    """Deliver the queued events; what ``process_object`` answered for each object."""
    content = env.container.content
    real = content.process_object
    found: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> str:
        found.append(real(*args, **kwargs))
        return found[-1]

    content.process_object = spy
    try:
        env.deliver()
    finally:
        del content.process_object
    return found


def key_of(env: Env, doc_id: str, ticket: dict[str, Any]) -> str:
    return f"content/{env.org}/{doc_id}/{ticket['upload_id']}"


def s3_event(env: Env, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": env.bucket}, "object": {"key": key.replace("/", "%2F")}},
            }
        ]
    }


def run_handler(event: dict[str, Any]) -> dict[str, Any]:
    from functions.process_upload import handler

    return dict(handler(event, LambdaContext.new()))


# ------------------------------------------------------------------- the flow
def test_upload_event_ready_with_text_then_download(env: Env) -> None:
    doc_id = env.new_doc()
    data = b"Quarterly plan: grow revenue in Q3.\n" * 10
    sha = hashlib.sha256(data).hexdigest()
    ticket = env.start(doc_id, sha256=sha, filename="plan.txt")
    assert set(ticket) >= {"upload_url", "method", "headers", "expires_at", "max_bytes"}
    assert ticket["method"] == "PUT" and ticket["max_bytes"] == MAX_BYTES
    assert env.doc(doc_id)["content"]["status"] == "pending"
    assert env.api("GET", f"/documents/{doc_id}/content").status == 409

    assert put(ticket, data) == 200
    results = env.deliver()
    assert results[-1] == {"batchItemFailures": []}

    doc = env.doc(doc_id)
    assert doc["content"] == {
        "status": "ready",
        "upload_id": ticket["upload_id"],
        "size": len(data),
        "sha256": sha,
        "content_type": "text/plain",
        "filename": "plan.txt",
    }
    assert doc["version"] == 3  # create, upload started, content ready
    rows = env.sql(
        "SELECT version, text FROM document_content_text WHERE org = %s AND doc_id = %s",
        env.org,
        doc_id,
    )
    assert rows == [(3, data.decode().strip())]
    actions = env.sql(
        "SELECT v.action, o.op, a.action FROM document_versions v "
        "JOIN outbox o ON (o.org, o.doc_id, o.version) = (v.org, v.id, v.version) "
        "JOIN audit_log a ON (a.org, a.doc_id, a.version) = (v.org, v.id, v.version) "
        "WHERE v.org = %s AND v.id = %s ORDER BY v.version",
        env.org,
        doc_id,
    )
    assert actions == [
        ("create", "upsert", "create"),
        ("content-upload", "upsert", "content-upload"),
        ("content-ready", "upsert", "content-ready"),
    ]

    r = env.api("GET", f"/documents/{doc_id}/content")
    assert r.status == 302 and r.headers["x-content-sha256"] == sha
    location = r.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert query["response-content-disposition"][0].startswith('attachment; filename="plan.txt"')
    status, headers, body = fetch(location)
    assert status == 200 and body == data
    assert headers["content-disposition"].startswith("attachment")

    head = env.api("HEAD", f"/documents/{doc_id}/content")
    assert head.status == 200 and head.text == ""
    assert head.headers["x-content-size"] == str(len(data))
    assert head.headers["x-content-sha256"] == sha


def test_presigned_put_url_properties(env: Env) -> None:
    doc_id = env.new_doc()
    sha = hashlib.sha256(b"abc").hexdigest()
    ticket = env.start(doc_id, content_type="text/markdown", sha256=sha, size=3)
    url = urlsplit(ticket["upload_url"])
    query = parse_qs(url.query)
    assert url.path == f"/{env.bucket}/content/{env.org}/{doc_id}/{ticket['upload_id']}"
    assert int(query["X-Amz-Expires"][0]) <= 900
    signed = query["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-type", "x-amz-checksum-sha256", "content-length"} <= set(signed)
    assert ticket["headers"]["Content-Type"] == "text/markdown"
    assert ticket["headers"]["x-amz-checksum-sha256"]  # base64 of the declared digest
    assert (
        env.api("POST", f"/documents/{doc_id}/content", {"content_type": "image/png"}).status == 415
    )
    assert (
        env.api(
            "POST", f"/documents/{doc_id}/content", {"content_type": "text/plain"},
            headers={"If-Match": '"stale"'},
        ).status
        == 412
    )  # fmt: skip
    reader = Invoker(make_token(org=env.org, roles=("reader",)))
    assert (
        reader("POST", f"/documents/{doc_id}/content", {"content_type": "text/plain"}).status == 403
    )
    other = Invoker(make_token(org="someone-else"))
    assert (
        other("POST", f"/documents/{doc_id}/content", {"content_type": "text/plain"}).status == 404
    )


def test_pdf_markdown_and_html_become_searchable_text(env: Env) -> None:
    cases = [
        ("application/pdf", make_pdf("Revenue forecast for Q3"), "Revenue forecast for Q3"),
        (
            "text/markdown",
            b"# Plan\n\n*Grow* the [business](http://x)",
            "Plan\n\nGrow the business",
        ),
        ("text/html", b"<p>Hello <b>world</b></p><script>x()</script>", "Hello world"),
    ]
    for content_type, data, text in cases:
        doc_id = env.new_doc()
        assert put(env.start(doc_id, content_type=content_type), data) == 200
        env.deliver()
        assert env.doc(doc_id)["content"]["status"] == "ready", content_type
        rows = env.sql("SELECT text FROM document_content_text WHERE doc_id = %s", doc_id)
        assert rows == [(text,)], content_type


# ----------------------------------------------------------------- rejections
def _rejected(env: Env, doc_id: str, code: str) -> dict[str, Any]:
    content = env.doc(doc_id)["content"]
    assert content["status"] == "rejected" and content["reason"].startswith(code), content
    assert env.api("GET", f"/documents/{doc_id}/content").status == 404
    assert env.sql("SELECT 1 FROM document_content_text WHERE doc_id = %s", doc_id) == []
    return content


def _gone(env: Env, key: str) -> bool:
    listing = env.s3().list_objects_v2(Bucket=env.bucket, Prefix=key)
    return listing.get("KeyCount", 0) == 0


def test_oversize_object_is_rejected_and_deleted(env: Env) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id)
    assert put(ticket, b"x" * (MAX_BYTES + 1)) == 200
    env.deliver()
    _rejected(env, doc_id, "too_large")
    assert _gone(env, key_of(env, doc_id, ticket))


def test_bad_checksum_is_rejected(env: Env) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id, sha256=hashlib.sha256(b"what I meant").hexdigest())
    # bytes that do not match the declared digest, written around the presigned URL
    env.s3().put_object(
        Bucket=env.bucket, Key=key_of(env, doc_id, ticket), Body=b"what I sent",
        ContentType="text/plain",
    )  # fmt: skip
    env.deliver()
    _rejected(env, doc_id, "checksum_mismatch")
    assert _gone(env, key_of(env, doc_id, ticket))


def test_disallowed_type_and_empty_object_are_rejected(env: Env) -> None:
    png = env.new_doc()
    assert put(env.start(png), b"\x89PNG\r\n\x1a\n" + os.urandom(64)) == 200
    empty = env.new_doc()
    assert put(env.start(empty), b"") == 200
    env.deliver()
    _rejected(env, png, "disallowed_type")
    _rejected(env, empty, "empty")


def test_objects_under_keys_never_issued_are_ignored_and_logged(env: Env, caplog) -> None:
    s3 = env.s3()
    doc_id = env.new_doc()
    forged = f"content/{env.org}/{doc_id}/01JD6ZC3Q6V6M1K8B0N7W2X4YZ"
    s3.put_object(Bucket=env.bucket, Key=forged, Body=b"forged", ContentType="text/plain")
    s3.put_object(Bucket=env.bucket, Key="content/elsewhere.txt", Body=b"x")
    assert sorted(outcomes(env)) == ["ignored", "ignored"]
    assert run_handler(s3_event(env, "not-content/x")) == {"outcomes": ["ignored"]}
    logged = caplog.text
    assert "no upload was issued" in logged and "not a key this service issues" in logged
    assert env.doc(doc_id)["version"] == 1 and env.doc(doc_id)["content"] is None


# ------------------------------------------------- duplicates, order, crashes
def test_duplicate_events_change_nothing(env: Env) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id)
    assert put(ticket, b"hello") == 200
    assert outcomes(env) == ["ready"]
    before = env.doc(doc_id)
    event = s3_event(env, key_of(env, doc_id, ticket))
    assert run_handler(event) == {"outcomes": ["duplicate"]}
    assert run_handler(event) == {"outcomes": ["duplicate"]}
    assert env.doc(doc_id) == before
    assert env.sql("SELECT count(*) FROM outbox WHERE doc_id = %s", doc_id) == [(3,)]


def test_an_older_upload_finishing_late_does_not_win(env: Env) -> None:
    doc_id = env.new_doc()
    older, newer = env.start(doc_id), env.start(doc_id)
    s3 = env.s3()
    for ticket, body in ((older, b"older"), (newer, b"newer")):
        s3.put_object(Bucket=env.bucket, Key=key_of(env, doc_id, ticket), Body=body)
    env.deliver(handler=lambda e, c: {"batchItemFailures": []})  # drop the in-order events
    assert run_handler(s3_event(env, key_of(env, doc_id, newer))) == {"outcomes": ["ready"]}
    assert run_handler(s3_event(env, key_of(env, doc_id, older))) == {"outcomes": ["superseded"]}
    doc = env.doc(doc_id)
    assert doc["content"]["upload_id"] == newer["upload_id"] and doc["content"]["status"] == "ready"
    assert _gone(env, key_of(env, doc_id, older))
    status, _, body = fetch(env.api("GET", f"/documents/{doc_id}/content").headers["location"])
    assert body == b"newer"
    # the other order: the older one arrives while the newer is still pending
    doc2 = env.new_doc()
    first, second = env.start(doc2), env.start(doc2)
    s3.put_object(Bucket=env.bucket, Key=key_of(env, doc2, first), Body=b"first")
    assert outcomes(env) == ["superseded"]
    assert env.doc(doc2)["content"] == {
        "status": "pending",
        "upload_id": second["upload_id"],
        "content_type": "text/plain",
    }


def test_crash_mid_stream_then_redelivery(env: Env, monkeypatch) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id)
    data = b"line of text\n" * 2000
    content = env.container.content
    monkeypatch.setattr(content, "chunk_bytes", 1024)
    original = content.blobs.chunks
    crashes = []

    def crash_once(key: str, **kw: Any) -> Iterator[bytes]:
        for n, chunk in enumerate(original(key, **kw)):
            if n == 3 and not crashes:
                crashes.append(key)
                raise RuntimeError("simulated crash mid-stream")
            yield chunk

    monkeypatch.setattr(content.blobs, "chunks", crash_once)
    assert put(ticket, data) == 200
    env.deliver()  # first delivery fails, the message comes back, the second succeeds
    assert crashes and env.doc(doc_id)["content"]["status"] == "ready"
    assert env.doc(doc_id)["version"] == 3  # nothing was recorded by the crashed attempt


def test_crash_after_commit_before_delete_is_repaired_by_redelivery(env: Env, monkeypatch) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id)
    key = key_of(env, doc_id, ticket)
    assert put(ticket, b"") == 200
    content = env.container.content
    real_delete = content.blobs.delete
    monkeypatch.setattr(
        content.blobs, "delete", lambda *a, **k: (_ for _ in ()).throw(OSError("s3 down"))
    )
    env.deliver(handler=lambda e, c: {"batchItemFailures": []})
    with pytest.raises(OSError, match="s3 down"):
        run_handler(s3_event(env, key))
    assert env.doc(doc_id)["content"]["status"] == "rejected" and not _gone(env, key)
    monkeypatch.setattr(content.blobs, "delete", real_delete)
    assert run_handler(s3_event(env, key)) == {"outcomes": ["duplicate"]}
    assert _gone(env, key)


# ------------------------------------------------------------------ downloads
def test_old_versions_content_stays_downloadable(env: Env) -> None:
    doc_id = env.new_doc()
    assert env.api("GET", f"/documents/{doc_id}/content").status == 404
    assert put(env.start(doc_id), b"first edition") == 200
    env.deliver()
    first_version = env.doc(doc_id)["version"]
    assert put(env.start(doc_id), b"second edition") == 200
    env.deliver()
    old = env.api("GET", f"/documents/{doc_id}/versions/{first_version}/content")
    assert old.status == 302
    assert fetch(old.headers["location"])[2] == b"first edition"
    assert fetch(env.api("GET", f"/documents/{doc_id}/content").headers["location"])[2] == (
        b"second edition"
    )
    assert env.api("GET", f"/documents/{doc_id}/versions/1/content").status == 404
    assert env.api("GET", f"/documents/{doc_id}/versions/99/content").status == 404
    assert env.api("HEAD", f"/documents/{doc_id}/versions/{first_version}/content").status == 200


def test_inline_bodies_over_1_mib_point_at_the_upload_endpoint(env: Env) -> None:
    doc_id = env.new_doc()
    big = json.dumps({"title": "big", "body": "x" * (1024 * 1024)}).encode()
    r = env.api("PUT", f"/documents/{doc_id}", raw=big, headers={"If-Match": "*"})
    assert r.status == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert f"/documents/{doc_id}/content" in r.json()["detail"]


def test_direct_and_eventbridge_notifications_are_processed(env: Env) -> None:
    doc_id = env.new_doc()
    ticket = env.start(doc_id)
    env.s3().put_object(Bucket=env.bucket, Key=key_of(env, doc_id, ticket), Body=b"via bridge")
    env.deliver(handler=lambda e, c: {"batchItemFailures": []})
    bridge = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": env.bucket}, "object": {"key": key_of(env, doc_id, ticket)}},
    }
    assert run_handler(bridge) == {"outcomes": ["ready"]}
    assert env.doc(doc_id)["content"]["size"] == len(b"via bridge")


def test_uploads_that_never_arrive_expire_and_late_objects_are_processed(env: Env) -> None:
    """The scheduled expiry: a document is never left 'pending' for ever."""
    from functions.process_upload import expire_handler

    never = env.new_doc()
    env.start(never)
    arrived = env.new_doc()
    data = b"late but here\n" * 20
    ticket = env.start(arrived)
    assert put(ticket, data) == 200  # its notification is late: not delivered yet
    fresh = env.new_doc()
    env.start(fresh)

    # nothing is stale yet: the URLs have not expired
    assert expire_handler({}, LambdaContext.new()) == {"outcomes": {}}
    # later: both tickets' URLs expired over an hour ago (the fresh one too, but
    # it is handled like the others; only pending uploads are touched)
    moved = env.sql(
        "UPDATE content_uploads SET expires_at = now() - interval '2 hours' "
        "WHERE org = %s AND doc_id IN (%s, %s) RETURNING doc_id",
        env.org,
        never,
        arrived,
    )
    assert len(moved) == 2
    out = expire_handler({}, LambdaContext.new())
    assert out == {"outcomes": {"rejected": 1, "ready": 1}}
    _rejected(env, never, "expired")
    assert env.doc(arrived)["content"]["status"] == "ready"
    assert env.doc(fresh)["content"]["status"] == "pending"
    # a second run finds nothing; the late notification changes nothing
    assert expire_handler({}, LambdaContext.new()) == {"outcomes": {}}
    assert outcomes(env) == ["duplicate"]
    assert env.doc(arrived)["version"] == 3
    history = env.sql(
        "SELECT action FROM audit_log WHERE org = %s AND doc_id = %s ORDER BY id", env.org, never
    )
    assert [a for (a,) in history][-1] == "content-rejected"


def test_the_local_stacks_expiry_job_calls_the_handler_as_lambda_does(env: Env) -> None:
    """``serve``'s poller process runs this every minute, with a Lambda context (the
    logging decorator rejects ``None``)."""
    from devtools import s3_stack

    never = env.new_doc()
    env.start(never)
    assert s3_stack.expire_uploads_once() == {"outcomes": {}}
    moved = env.sql(
        "UPDATE content_uploads SET expires_at = now() - interval '2 hours' "
        "WHERE org = %s AND doc_id = %s RETURNING doc_id",
        env.org,
        never,
    )
    assert len(moved) == 1
    assert s3_stack.expire_uploads_once() == {"outcomes": {"rejected": 1}}
    _rejected(env, never, "expired")
