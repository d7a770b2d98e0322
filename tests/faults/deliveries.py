"""Faults in delivery: SQS nudges and S3 events duplicated, reordered, dropped, poisoned.

``ChaosDelivery`` plays the Lambda SQS event source over a real (moto) queue,
badly: it drops some messages (deletes them unprocessed: a lost delivery),
delivers some twice (the copy later, after newer messages: duplicated *and*
out of order), shuffles every batch, and redelivers what the handler reports
as failed until the queue's redrive policy moves it to the DLQ.  Poison
messages (ones no handler can process) are injected next to the real ones and
never dropped, so the DLQ must end up holding exactly them.

What completes a dropped delivery is the design's safety net, run here as its
schedule would: the search sweep (``functions.sync_search.sweep_handler``) for
nudges, the upload expiry (``ContentService.expire_uploads``, with the clock an
hour past the URLs' expiry) for S3 events.
"""

from __future__ import annotations

import json
import random
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3

from chalicelib import bootstrap
from devtools.events import invoke, scheduled_event
from tests.conftest import Invoker, make_token
from tests.faults.load import Ack, MixedLoad
from tests.faults.registry import Notes, fault
from tests.faults.stack import Campaign
from tests.polling import poll


class ChaosDelivery:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Callable[[dict[str, Any], Any], Any],
        *,
        name: str,
        poison: set[str],
        rng: random.Random,
        drop: float = 0.2,
        duplicate: float = 0.3,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.name = name
        self.poison = poison
        self.rng = rng
        self.drop = drop
        self.duplicate = duplicate
        self.arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.stats: Counter[str] = Counter()

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": self.arn, "awsRegion": "us-east-1",
        }  # fmt: skip

    def _deliver(self, records: list[dict[str, Any]]) -> set[str]:
        self.rng.shuffle(records)
        self.stats["batches"] += 1
        try:
            result = invoke(self.handler, {"Records": records}, self.name, timeout_s=120) or {}
        except Exception:  # the invocation failed (e.g. every record did): all come back
            self.stats["failed invocations"] += 1
            return {r["messageId"] for r in records}
        return {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}

    def _empty(self) -> bool:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(int(v) == 0 for v in attrs.values())

    def pump(self, timeout_s: float = 90.0) -> Counter[str]:
        """Deliver until the queue is empty (poison gone to the DLQ)."""
        held: list[dict[str, Any]] = []  # copies, delivered after newer messages

        def step() -> bool:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                AttributeNames=["All"],
            ).get("Messages", [])  # fmt: skip
            if not messages:
                if held:
                    self.stats["duplicates delivered"] += len(held)
                    self._deliver(held[::-1])  # late, newest first; their failures don't count
                    held.clear()
                return self._empty()
            batch = []
            for m in messages:
                if m["Body"] not in self.poison and self.rng.random() < self.drop:
                    self.sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"]
                    )
                    self.stats["dropped"] += 1
                    continue
                batch.append(self._record(m))
                if self.rng.random() < self.duplicate:
                    held.append(self._record(m))
            if batch:
                failed = self._deliver(batch)
                self.stats["failed deliveries"] += len(failed)
                for rec in batch:
                    if rec["messageId"] not in failed:
                        self.sqs.delete_message(
                            QueueUrl=self.queue_url, ReceiptHandle=rec["receiptHandle"]
                        )
            return False

        assert poll(step, timeout_s=timeout_s, interval_s=0.2), "the queue emptied"
        return self.stats


def _sqs(campaign: Campaign) -> Any:
    return boto3.client("sqs", endpoint_url=campaign.moto, region_name="us-east-1")


def _dlq_bodies(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return sorted(bodies)
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@contextmanager
def _handlers_on(campaign: Campaign, **settings: Any) -> Iterator[Any]:
    """An in-process container on the campaign's stack as the Lambda handlers'."""
    built = bootstrap.build(campaign.settings.model_copy(update=settings))
    bootstrap.set_container(built)
    try:
        yield built
    finally:
        bootstrap.set_container(None)
        built.close()


def _ack(campaign: Campaign, org: str, doc: dict[str, Any]) -> None:
    campaign.acks[(org, doc["id"])] = Ack(int(doc["version"]))


# ------------------------------------------------------------------------ nudges
@fault(
    "SQS nudges: dup/reorder/drop + poison",
    "consumers killed; FIFO nudges delivered twice, shuffled, 20% dropped; 2 poison; then sweep",
)
def nudges(campaign: Campaign, load: MixedLoad) -> Notes:
    from functions import sync_search

    sqs = _sqs(campaign)
    suffix = uuid.uuid4().hex[:8]
    fifo = {"FifoQueue": "true"}
    dlq = sqs.create_queue(QueueName=f"faults-nudge-dlq-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    queue = sqs.create_queue(
        QueueName=f"faults-nudge-{suffix}.fifo",
        Attributes={**fifo, "VisibilityTimeout": "1", "RedrivePolicy": redrive},
    )["QueueUrl"]
    campaign.kill_consumers()  # the nudges (and then the sweep) must do all the work
    org = "f-nudges-handler"
    campaign.orgs.append(org)
    poison = {"not json", json.dumps({"org": org})}  # unparseable; no document id
    with _handlers_on(campaign, search_nudge="sqs", search_nudge_queue_url=queue):
        api = Invoker(make_token(org=org, sub="faults"))
        docs = [api("POST", "/documents", {"title": f"n{i}"}).json() for i in range(12)]
        for doc in docs * 2:  # two more versions each: three nudges per document
            current = api("GET", f"/documents/{doc['id']}")
            r = api(
                "PATCH", f"/documents/{doc['id']}", {"title": "again"},
                headers={"Content-Type": "application/merge-patch+json",
                         "If-Match": current.headers["etag"]},
            )  # fmt: skip
            assert r.status == 200, r
            _ack(campaign, org, r.json())
        for n, body in enumerate(sorted(poison)):
            sqs.send_message(
                QueueUrl=queue, MessageBody=body, MessageGroupId=f"poison-{n}",
                MessageDeduplicationId=f"poison-{n}",
            )  # fmt: skip
        stats = ChaosDelivery(
            sqs, queue, sync_search.handler, name="docs-sync-search", poison=poison,
            rng=random.Random(15),
        ).pump()  # fmt: skip
        left = campaign.pending_outbox()  # dropped nudges, and the HTTP load's rows
        sweep = invoke(sync_search.sweep_handler, scheduled_event("docs-sweep"), "docs-sweep",
                       timeout_s=120)  # fmt: skip
    campaign.start_sync()
    assert stats["dropped"] > 0 and stats["duplicates delivered"] > 0, stats
    dead = _dlq_bodies(sqs, dlq)
    assert dead == sorted(poison), f"the DLQ holds exactly the poison, not {dead}; {stats}"
    return {
        **{k: v for k, v in stats.items() if k != "batches"},
        "left for the sweep": left,
        "swept": sweep["rows"],
        "DLQ": f"{len(poison)} poison only",
    }


# ------------------------------------------------------------------------ S3 events
def _put(ticket: dict[str, Any], data: bytes) -> int:
    headers = {k: v for k, v in ticket["headers"].items() if k.lower() != "content-length"}
    req = urllib.request.Request(ticket["upload_url"], data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


@fault(
    "S3 events: dup/reorder/drop + poison",
    "ObjectCreated via SQS delivered twice, shuffled, 20% dropped; 1 poison; then upload expiry",
)
def s3_events(campaign: Campaign, load: MixedLoad) -> Notes:
    from devtools.s3_stack import ensure_resources
    from functions import process_upload

    sqs = _sqs(campaign)
    suffix = uuid.uuid4().hex[:8]
    bucket = f"faults-content-{suffix}"
    queue = ensure_resources(
        campaign.moto, bucket, queue=f"faults-content-{suffix}", visibility_timeout_s=1
    )
    dlq = sqs.get_queue_url(QueueName=f"faults-content-{suffix}-dlq")["QueueUrl"]
    org = "f-s3-handler"
    campaign.orgs.append(org)
    # a record the handler cannot read (its "s3" member is not an object): fails every time
    poison = {json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                       "s3": ["not", "an", "object"]}]})}  # fmt: skip
    with _handlers_on(campaign, content_bucket=bucket) as built:
        api = Invoker(make_token(org=org, sub="faults"))
        uploads = {}
        for i in range(10):
            doc = api("POST", "/documents", {"title": f"s{i}"}).json()
            ticket = api("POST", f"/documents/{doc['id']}/content",
                         {"content_type": "text/plain", "filename": f"s{i}.txt"}).json()  # fmt: skip
            assert _put(ticket, f"content {i} ".encode() * 50) == 200
            uploads[doc["id"]] = ticket["upload_id"]
        for body in poison:
            sqs.send_message(QueueUrl=queue, MessageBody=body)
        stats = ChaosDelivery(
            sqs, queue, process_upload.handler, name="docs-process-upload", poison=poison,
            rng=random.Random(16),
        ).pump()  # fmt: skip
        expired = built.content.expire_uploads(grace=timedelta(hours=-1))  # the clock moved on
        final = {doc_id: api("GET", f"/documents/{doc_id}").json() for doc_id in uploads}
    for doc in final.values():
        _ack(campaign, org, doc)
    wrong = {
        d: (doc["version"], (doc["content"] or {}).get("status"))
        for d, doc in final.items()
        if (doc["version"], (doc["content"] or {}).get("status")) != (3, "ready")
        or doc["content"]["upload_id"] != uploads[d]
    }
    assert wrong == {}, "each object processed exactly once: created, pending, ready = version 3"
    assert stats["dropped"] > 0 and stats["duplicates delivered"] > 0, stats
    dead = _dlq_bodies(sqs, dlq)
    assert dead == sorted(poison), f"the DLQ holds exactly the poison, not {dead}; {stats}"
    return {
        **{k: v for k, v in stats.items() if k != "batches"},
        "finished by expiry": sum(expired.values()),
        "DLQ": f"{len(poison)} poison only",
    }
