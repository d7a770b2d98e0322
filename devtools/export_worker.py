"""The personal-data export worker as a local loop: what functions/export_worker.py
does on its one-minute schedule in AWS, every ``poll_s`` here, so a local
``POST /me/export`` is ready within a second or two.

At start it creates the local buckets the audit features write to (on the local
moto server only): the exports bucket and the audit bucket, the latter with
Object Lock in compliance mode like template.yaml's ``AuditBucket``.

Never imported by Lambda code paths.
"""

from __future__ import annotations

import contextlib
import time

from chalicelib.config import Settings
from chalicelib.domain.errors import DomainError
from devtools.logline import log_line


def ensure_buckets(settings: Settings) -> None:
    """The local exports and audit buckets (a no-op against real AWS: no endpoint)."""
    if not settings.aws_endpoint_url:
        return
    import boto3

    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=settings.export_bucket)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=settings.audit_bucket, ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket=settings.audit_bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 7}},
            },
        )


def main(poll_s: float = 1.0) -> None:
    from chalicelib import bootstrap

    container = bootstrap.container()
    ensure_buckets(container.settings)
    service = container.personal_data
    while True:
        try:
            for org, job_id in service.jobs.due(service.export_batch):
                try:
                    service.run(org, job_id)
                    log_line("export ready", org=org, job=job_id)
                except Exception as exc:  # marked failed; the loop goes on
                    log_line("export failed", org=org, job=job_id, error=type(exc).__name__)
        except DomainError as exc:  # PostgreSQL away for a moment: try again
            log_line("export loop waiting", error=str(exc))
        time.sleep(poll_s)
