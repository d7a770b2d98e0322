"""Local S3 content pipeline: bucket → ObjectCreated → SQS → the same Lambda handler.

``start`` (used by ``cli serve``) creates the content bucket in the local moto
server, with versioning and CORS like template.yaml, configures its
ObjectCreated notifications to an SQS queue (with a DLQ after 5 receives), and
runs a ``Poller``: a small thread that long-polls the queue and invokes
``functions.process_upload.handler`` with the real SQS event shape, deleting
the messages the handler did not report as failed — what the Lambda SQS event
source mapping does in AWS.  The same process runs the scheduled upload expiry
(``expire_handler``) every minute.  Both handlers are called through
``devtools.events.invoke``: an event and a context object, as Lambda calls them.

The poller runs in its own forked process: the server's parent process forks
its HTTP workers and must hold no database pool or client of its own.
Never imported by Lambda code paths.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from devtools.events import invoke, scheduled_event

log = logging.getLogger("docs.local.s3")
PROCESS_UPLOAD = "docs-process-upload"  # the local stand-ins' function names
EXPIRE_UPLOADS = "docs-expire-uploads"
QUEUE = "docs-content-events"
_PREFIX = "content/"


def _clients(endpoint: str, region: str) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": region}
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return boto3.client("s3", config=cfg, **kw), boto3.client("sqs", **kw)


def ensure_resources(endpoint: str, bucket: str, *, region: str = "us-east-1",
                     queue: str = QUEUE, visibility_timeout_s: int = 10) -> str:  # fmt: skip
    """Bucket (versioned, CORS), queue + DLQ, notification; returns the queue URL."""
    s3, sqs = _clients(endpoint, region)
    try:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": ["PUT", "GET", "HEAD"],
                        "AllowedOrigins": ["*"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 600,
                    }
                ]
            },
        )
        dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName=queue,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout_s),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}
                ),
            },
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": _PREFIX}]}},
                    }
                ]
            },
        )
        return str(queue_url)
    finally:
        s3.close()
        sqs.close()


def verify_sender(endpoint: str, sender: str, *, region: str = "us-east-1") -> None:
    """The share-notification sender as a verified SES identity of the moto server
    (in AWS the account verifies it once; docs/compliance.md, "Share notifications")."""
    import boto3

    ses = boto3.client("sesv2", endpoint_url=endpoint, region_name=region)
    try:
        ses.create_email_identity(EmailIdentity=sender)
    except ses.exceptions.AlreadyExistsException:
        pass
    finally:
        ses.close()


class Poller:
    """Long-polls the queue; hands each batch to ``handler`` as an SQS event."""

    def __init__(
        self,
        endpoint: str,
        queue_url: str,
        *,
        handler: Callable[[dict[str, Any], Any], Any] | None = None,
        region: str = "us-east-1",
        wait_s: int = 1,
    ) -> None:
        self.endpoint = endpoint
        self.queue_url = queue_url
        self.region = region
        self.wait_s = wait_s
        self._handler = handler
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0

    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        if self._handler is None:
            from functions.process_upload import handler

            self._handler = handler
        return self._handler

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name="s3-event-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_s + 5)

    def _run(self) -> None:
        _, sqs = _clients(self.endpoint, self.region)
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        while not self._stop.is_set():
            try:
                self.poll_once(sqs, arn)
            except Exception:
                log.exception("polling the content event queue failed")
                self._stop.wait(1)

    def poll_once(self, sqs: Any, arn: str) -> int:
        messages = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m, arn) for m in messages]}
        try:
            result = invoke(self.handler(), event, PROCESS_UPLOAD, timeout_s=900) or {}
        except Exception:
            log.exception("the upload processor failed; the batch will be redelivered")
            return 0
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        self.batches += 1
        return len(messages)

    def _record(self, message: dict[str, Any], arn: str) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": self.region,
        }


def expire_uploads_once() -> dict[str, Any]:
    """One run of the scheduled upload expiry (``ExpireUploadsFunction``, every 15
    minutes in AWS): its handler, called as Lambda calls it."""
    from functions.process_upload import expire_handler

    result: dict[str, Any] = invoke(
        expire_handler, scheduled_event(EXPIRE_UPLOADS), EXPIRE_UPLOADS, timeout_s=300
    )
    return result


def _poller_process(
    endpoint: str, queue_url: str, region: str, expire_every_s: float, inherited: tuple[Any, ...]
) -> None:
    for sock in inherited:  # e.g. the HTTP listening socket: not ours to hold the port with
        sock.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's parent coordinates shutdown
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    poller = Poller(endpoint, queue_url, region=region).start()
    while not stopped.wait(expire_every_s):
        try:
            expire_uploads_once()
        except Exception:
            log.exception("expiring stale uploads failed; trying again in a minute")
    poller.stop()
    sys.exit(0)


def start(
    endpoint: str,
    bucket: str,
    *,
    region: str = "us-east-1",
    expire_every_s: float = 60.0,
    inherited: tuple[Any, ...] = (),
) -> Callable[[], None]:
    """Create the resources and start the poller process (closing ``inherited``
    sockets in it); returns its stop function."""
    queue_url = ensure_resources(endpoint, bucket, region=region)
    proc = multiprocessing.get_context("fork").Process(
        target=_poller_process, args=(endpoint, queue_url, region, expire_every_s, inherited),
        daemon=True, name="s3-event-poller",
    )  # fmt: skip
    proc.start()

    def stop() -> None:
        proc.terminate()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()

    return stop
