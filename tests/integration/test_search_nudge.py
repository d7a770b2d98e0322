"""The SQS FIFO nudge (moto server for SQS; real PostgreSQL/Redis): one message
per committed write, grouped by document; a dead queue never fails a write."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.sqs_nudge import _digest
from tests.conftest import Invoker, admin_connection, make_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sqs(moto_endpoint: str) -> tuple[str, Any]:
    import boto3

    return moto_endpoint, boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")


def _nudged(settings: Any, endpoint: str, queue_url: str) -> Any:
    built = bootstrap.build(
        settings.model_copy(
            update={
                "aws_endpoint_url": endpoint,
                "search_nudge": "sqs",
                "search_nudge_queue_url": queue_url,
            }
        )
    )
    bootstrap.set_container(built)
    return built


def test_each_write_sends_one_fifo_nudge_per_version(settings, sqs) -> None:
    endpoint, client = sqs
    queue = client.create_queue(
        QueueName=f"nudge-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    built = _nudged(settings, endpoint, queue)
    try:
        org = f"org-{uuid.uuid4().hex[:6]}"
        api = Invoker(make_token(org=org))
        doc = api("POST", "/documents", {"title": "n"}).json()
        r = api(
            "PUT", f"/documents/{doc['id']}", {"title": "n2"}, headers={"If-Match": doc["etag"]}
        )
        assert r.status == 200
        got = client.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]
        )["Messages"]
        bodies = [json.loads(m["Body"]) for m in got]
        assert bodies == [{"org": org, "id": doc["id"], "version": v} for v in (1, 2)]
        # one group per document; ids are digests of the length-prefixed parts
        assert {m["Attributes"]["MessageGroupId"] for m in got} == {_digest(org, doc["id"])}
        assert [m["Attributes"]["MessageDeduplicationId"] for m in got] == [
            _digest(org, doc["id"], "1"),
            _digest(org, doc["id"], "2"),
        ]
        assert _digest("a:b", "c") != _digest("a", "b:c")
    finally:
        bootstrap.set_container(None)
        built.close()


def test_a_missing_queue_never_fails_the_write(settings, sqs) -> None:
    endpoint, _ = sqs
    built = _nudged(settings, endpoint, f"{endpoint}/123456789012/does-not-exist.fifo")
    try:
        api = Invoker(make_token(org=f"org-{uuid.uuid4().hex[:6]}"))
        r = api("POST", "/documents", {"title": "still saved"})
        assert r.status == 201
        assert api("GET", f"/documents/{r.json()['id']}").status == 200
        with admin_connection(built) as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM outbox WHERE doc_id = %s AND processed_at IS NULL",
                (r.json()["id"],),
            ).fetchone()
        assert row["n"] == 1  # the sweep will find it
    finally:
        bootstrap.set_container(None)
        built.close()
