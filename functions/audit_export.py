"""The scheduled audit export (EventBridge, daily): every org's closed UTC days not
exported yet, as gzipped JSON Lines plus a checksum manifest, into the audit
bucket (Object Lock, compliance mode, 7 years; template.yaml ``AuditBucket``).

Idempotent: a period already recorded in ``audit_exports`` is skipped, and an
object already in the bucket is not written again (Object Lock would refuse
to replace it anyway), so a retried or doubled invocation exports nothing twice.
Each run looks back ``DOCS_AUDIT_EXPORT_DAYS`` closed days, so a failed night is
caught up by the next.  The template alarms on its errors and on a day without
a successful run (the export falling behind).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import count, lambda_handler, logger


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    written = bootstrap.container().audit.export_closed_periods()
    count("AuditPeriodsExported", len(written))
    count("AuditExportRuns")  # the template's AuditExportStaleAlarm watches for a day without
    result = {"exported": len(written), "objects": [m["objects"][0]["key"] for m in written]}
    logger.info("audit export done", extra=result)
    return result
