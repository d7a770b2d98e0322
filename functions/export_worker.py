"""The personal-data export worker (EventBridge, every minute): runs the pending
``POST /me/export`` jobs of every org (``PersonalDataService.run_due``).

A job that fails is marked failed (its requester sees it in the status and can
ask again); the error is logged and counted, and the next job goes on.
Locally the same service runs in the local server's export loop
(devtools/export_worker.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import count, lambda_handler, logger


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = bootstrap.container().personal_data
    done = failed = 0
    for org, job_id in service.jobs.due(service.export_batch):
        try:
            service.run(org, job_id)
            done += 1
        except Exception:
            failed += 1
            logger.exception("export job failed", org=org, job=job_id)
    count("PersonalDataExports", done)
    if failed:
        count("PersonalDataExportFailures", failed)
    return {"done": done, "failed": failed}
