"""The search sync in AWS: three thin handlers over ``SearchSync``.

- ``handler``: the SQS FIFO nudge queue (message group = a digest of org and id). Each
  message syncs every due outbox row of its document.  Powertools'
  ``SqsFifoPartialProcessor`` reports partial batch failures and, as FIFO
  order requires, returns the failed message and the rest of its group (the
  same document) unprocessed, while other documents' messages go on;
  after ``maxReceiveCount`` deliveries SQS moves a message to the DLQ (alarmed),
  while its outbox rows stay pending for the sweep.
- ``sweep_handler``: an EventBridge schedule (every minute) drains whatever a
  lost nudge left behind, drops retired indexes past their grace period, prunes
  processed outbox rows past ``DOCS_OUTBOX_RETENTION_DAYS`` and publishes the
  sync lag metric.  It is also the audit chainer's floor: it links every org's
  pending audit rows and publishes their age (``AuditChainLag``,
  docs/adr/0011-audit-chain-off-the-write-path.md); ``handler`` links the
  pending rows of the orgs of its batch, so a document change is chained
  within its nudge's delay.
- ``reindex_handler``: build a new index from PostgreSQL and swap the alias
  (invoked by hand or by the deploy pipeline; see docs/search.md).

Locally the same ``SearchSync`` runs in a loop woken by LISTEN/NOTIFY
(``devtools/sync_worker.py``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import lambda_handler, logger

# Message group = document: a failure skips only the rest of *its* group (later
# nudges of that document), other documents go on.  A batch whose every message
# failed is reported like a partial failure rather than raised, so SQS redrives
# exactly those messages and counts their receives towards the DLQ.
_processor = SqsFifoPartialProcessor(skip_group_on_error=True)
_processor.raise_on_entire_batch_failure = False
SWEEP_RESERVE_S = 10.0  # stop draining this long before the function's timeout


def _nudge(record: SQSRecord) -> dict[str, int]:
    message = json.loads(record.body)
    sync = bootstrap.container().search_sync
    result: dict[str, int] = sync.sync_document(str(message["org"]), str(message["id"])).as_dict()
    return result


def _chain_audit(orgs: set[str] | None) -> dict[str, Any]:
    """Link pending audit rows (of ``orgs``, or every org's), never failing the caller:
    what is left waits for the next pass, and its age is alarmed."""
    chainer = bootstrap.container().audit_chainer
    try:
        if orgs is None:
            return {"audit_chained": chainer.chain(), **chainer.lag()}
        return {"audit_chained": sum(chainer.chain(org) for org in sorted(orgs))}
    except Exception:  # a database hiccup: the next pass catches up
        logger.exception("audit chaining failed")
        return {"audit_chained": 0}


def _orgs(event: dict[str, Any]) -> set[str]:
    orgs = set()
    for record in (event or {}).get("Records", []):
        try:
            orgs.add(str(json.loads(record["body"])["org"]))
        except (KeyError, TypeError, ValueError):
            continue
    return orgs


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = dict(
        process_partial_response(
            event=event, record_handler=_nudge, processor=_processor, context=context
        )
    )
    _chain_audit(_orgs(event))
    return result


@lambda_handler
def sweep_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    chained = _chain_audit(None)  # first: a long drain does not hold the chain back
    sync = bootstrap.container().search_sync
    remaining_s = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    deadline = time.monotonic() + max(1.0, remaining_s - SWEEP_RESERVE_S)
    report = sync.drain(deadline=deadline)
    dropped = sync.drop_expired()
    pruned = sync.prune()
    result = {**report.as_dict(), "dropped": dropped, "pruned": pruned, **sync.stats(), **chained}
    logger.info("sweep done", extra=result)
    return result


@lambda_handler
def reindex_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = bootstrap.container().search_sync.reindex(
        drop_old_now=bool((event or {}).get("drop_old_now", False))
    )
    return {
        "index": report.index,
        "previous": report.previous,
        "backfilled": report.backfilled,
        "caught_up": report.caught_up,
        "failed": report.failed[:100],
        "seconds": round(report.seconds, 3),
    }
