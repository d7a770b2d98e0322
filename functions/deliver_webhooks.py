"""The webhook deliverer in AWS (docs/webhooks.md): a thin handler over ``Deliverer``.

An EventBridge schedule (every minute) invokes it: it fans in the outbox rows
after the deliverer's own cursor (deliveries for every matching endpoint),
sends every delivery that is due (retries included), until caught up or close
to the timeout, and publishes the lag metrics (``WebhookLag``, alarmed).  A
failure raises: the cursor did not move and nothing acknowledged is lost; the
next minute takes it up again.  It runs in the VPC and reaches receivers
through the NAT gateway (docs/deploy.md).

Locally the same ``Deliverer`` runs in a loop woken by LISTEN/NOTIFY
(``devtools/webhook_worker.py``).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib import bootstrap
from chalicelib.adapters.webhook_http import sender_for
from chalicelib.observability import lambda_handler, logger

RESERVE_S = 15.0  # stop this long before the timeout (a send may take connect + read)


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    container = bootstrap.container()
    deliverer = container.deliverer(sender_for(container.settings.webhooks))
    remaining_s = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    deadline = time.monotonic() + max(1.0, remaining_s - RESERVE_S)
    report = deliverer.run_once(deadline=deadline)
    while report.busy and time.monotonic() < deadline:
        more = deliverer.run_once(deadline=deadline)
        for key, value in more.as_dict().items():
            setattr(report, key, getattr(report, key) + value)
        if not more.busy:
            break
    result: dict[str, Any] = {**report.as_dict(), **deliverer.publish_stats()}
    if report.busy:
        logger.info("webhooks delivered", extra=result)
    return result
