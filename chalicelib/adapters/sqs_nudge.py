"""The search nudge in AWS: after a commit, one message on an SQS FIFO queue.

Message group = ``{org}:{id}``, so one document's nudges are delivered in
order and never to two consumers at once; the deduplication id carries the
version, so a retried send is dropped by SQS.  A nudge is only a wake-up call
(the outbox row is the truth): when SQS cannot be reached the write still
succeeds, the failure is counted, and the scheduled sweep syncs the row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from chalicelib.aws_client import LazyClient
from chalicelib.config import Settings
from chalicelib.domain.keys import join_key
from chalicelib.domain.model import Document
from chalicelib.observability import count, logger, subsegment


class SqsNudge:
    def __init__(
        self, settings: Settings, *, client: Any = None, queue_url: str | None = None,
        failure_metric: str = "SearchNudgeFailed",
    ) -> None:  # fmt: skip
        # queue_url: another consumer's nudge queue (the real-time fan-out's)
        if not (queue_url or settings.search_nudge_queue_url):
            raise ValueError("DOCS_SEARCH_NUDGE=sqs needs DOCS_SEARCH_NUDGE_QUEUE_URL")
        self.queue_url = queue_url or settings.search_nudge_queue_url
        self.failure_metric = failure_metric
        self.settings = settings
        self._sqs = LazyClient(
            "sqs",
            client=client,
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config={"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 2}},
        )

    @property
    def client(self) -> Any:
        return self._sqs.get()

    def __call__(self, doc: Document) -> None:
        try:
            with subsegment("sqs.send_message", org=doc.org, doc_id=doc.id):
                self.client.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=json.dumps({"org": doc.org, "id": doc.id, "version": doc.version}),
                    # hashed: an org may hold any character, and ids are capped at 128
                    MessageGroupId=_digest(doc.org, doc.id),
                    MessageDeduplicationId=_digest(doc.org, doc.id, str(doc.version)),
                )
        except Exception:
            count(self.failure_metric)
            logger.warning(
                "nudge failed", queue=self.queue_url, org=doc.org, doc_id=doc.id, exc_info=True
            )


def _digest(*parts: str) -> str:
    """A FIFO group or deduplication id for these parts: 64 hex characters (SQS takes
    at most 128 of a restricted set, and orgs may hold any character)."""
    return hashlib.sha256(join_key(*parts).encode()).hexdigest()


class Nudges:
    """Several wake-up calls after one commit (search sync, real-time fan-out)."""

    def __init__(self, *nudges: Callable[[Document], None]) -> None:
        self.nudges = nudges

    def __call__(self, doc: Document) -> None:
        for nudge in self.nudges:
            nudge(doc)
