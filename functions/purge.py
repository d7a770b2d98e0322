"""The scheduled purge: documents deleted longer ago than the restore window
(``DOCS_DELETE_RETENTION_DAYS``) leave PostgreSQL, the index, the cache, S3 and
the real-time registry (service_layer/purge.py; docs/compliance.md).

An EventBridge schedule invokes ``handler`` every hour (template.yaml,
``PurgeFunction``), one run at a time; each run purges at most
``DOCS_PURGE_BATCH_SIZE`` documents and first finishes what an earlier run
left (a crash, S3 or Redis unreachable).  A run that could not finish a task
fails the invocation, so the function's Errors alarm (and the PurgeFailures
metric) says so; the task waits, recorded, for the next run.

Locally the same ``Purge`` runs from ``python -m chalicelib.cli purge`` and,
hourly, from the local sync loop (devtools/sync_worker.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import lambda_handler, logger


class PurgeIncomplete(RuntimeError):
    """Some purge tasks could not be finished in this run (they are retried)."""


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = bootstrap.container().purge.run(request_id=context.aws_request_id)
    result = report.as_dict()
    logger.info("purge done", extra=result)
    if report.failed:
        raise PurgeIncomplete(f"{report.failed} purge task(s) failed: {report.errors[:3]}")
    return result
