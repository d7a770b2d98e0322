"""Share notifications in AWS: an EventBridge schedule (every minute) drains the
outbox after the consumer's own cursor and e-mails grantees through SES
(service_layer/notifications.py; docs/compliance.md, "Share notifications").

One run at a time holds the cursor; a run stops draining ``RESERVE_S`` before its
timeout.  A transient SES failure ends the run before that row (counted:
``NotificationSendFailures``, alarmed) and the next run sends it.  Without a
sender identity (``DOCS_NOTIFY_SENDER`` empty) the run does nothing.

Locally the same ``ShareNotifier`` runs in the sync loop (devtools/sync_worker.py).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.observability import lambda_handler, logger

RESERVE_S = 5.0


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notifier = bootstrap.container().share_notifier
    remaining_s = context.get_remaining_time_in_millis() / 1000 if context else 30.0
    report = notifier.drain(budget_s=max(1.0, remaining_s - RESERVE_S))
    result = {"enabled": notifier.enabled, **report.__dict__}
    logger.info("notifications done", extra=result)
    return result
