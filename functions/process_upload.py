"""S3 ObjectCreated → the content processor (``ContentService.process_object``).

One handler for the three ways the notification can arrive:

- direct S3 notifications (``Records[].eventSource == "aws:s3"``): a failure
  raises, and Lambda's async retries (then the function's DLQ) take over;
- through SQS (``Records[].eventSource == "aws:sqs"``, the S3 event — or an
  EventBridge/SNS envelope of it — in the body): Powertools ``BatchProcessor``
  reports partial batch failures, so only the failed messages come back;
- EventBridge (``source == "aws.s3"``, ``detail-type == "Object Created"``).

S3 notification keys are URL-encoded (``unquote_plus``); EventBridge keys are
not.  ``s3:TestEvent`` messages (sent when a notification is configured) are
skipped.  Duplicates and out-of-order deliveries are the service's concern:
processing is idempotent (see service_layer/content.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import lambda_handler, logger


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # decoded
    size: int | None = None
    version_id: str | None = None


def _created(
    where: dict[str, Any], *, version_field: str, decode: Callable[[str], str]
) -> ObjectCreated | None:
    """The object named by a notification's ``bucket`` and ``object`` members."""
    obj = where.get("object") or {}
    if "key" not in obj:
        return None
    return ObjectCreated(
        bucket=str((where.get("bucket") or {}).get("name", "")),
        key=decode(str(obj["key"])),
        size=obj.get("size"),
        version_id=obj.get(version_field) or None,
    )


def _from_s3_record(record: dict[str, Any]) -> ObjectCreated | None:
    if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return None
    return _created(record.get("s3") or {}, version_field="versionId", decode=unquote_plus)


def _from_eventbridge(event: dict[str, Any]) -> ObjectCreated | None:
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        return None
    # EventBridge keys are not URL-encoded
    return _created(event.get("detail") or {}, version_field="version-id", decode=str)


def objects_in(payload: Any) -> list[ObjectCreated]:
    """The ObjectCreated notifications in a (possibly wrapped) S3 event; [] for others."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return []
    if not isinstance(payload, dict):
        return []
    if payload.get("Type") == "Notification" and "Message" in payload:  # SNS envelope
        return objects_in(payload["Message"])
    found = _from_eventbridge(payload)
    if found is not None:
        return [found]
    out = []
    for record in payload.get("Records") or []:
        if isinstance(record, dict) and record.get("eventSource") == "aws:s3":
            item = _from_s3_record(record)
            if item is not None:
                out.append(item)
    return out


def process(item: ObjectCreated) -> str:
    outcome: str = bootstrap.container().content.process_object(
        item.bucket, item.key, version_id=item.version_id, size=item.size
    )
    return outcome


def _sqs_record(record: SQSRecord) -> list[str]:
    """One SQS message: every object in it (raising fails just this message)."""
    return [process(item) for item in objects_in(record.body)]


_processor = BatchProcessor(event_type=EventType.SQS)


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and all(r.get("eventSource") == "aws:sqs" for r in records):
        return dict(
            process_partial_response(
                event=event, record_handler=_sqs_record, processor=_processor, context=context
            )
        )
    outcomes = [process(item) for item in objects_in(event)]
    if not outcomes:
        logger.info("no ObjectCreated notification in the event (e.g. s3:TestEvent)")
    return {"outcomes": outcomes}


@lambda_handler
def expire_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled: finish uploads whose URL expired without an ObjectCreated event
    (processed now if the object is there after all, else rejected as expired)."""
    return {"outcomes": bootstrap.container().content.expire_uploads()}
