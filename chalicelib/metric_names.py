"""Every EMF metric the code emits, by name: the one registry of them.

``count``, ``milliseconds`` and ``gauge`` (chalicelib/observability.py) take one of
these names; ``tests/unit/test_metrics_alarmed.py`` reads every call in
``chalicelib/``, ``functions/`` and ``app.py`` and fails on a name that is not
here, and on an ``ALARMED`` metric without an alarm (with an action) in
template.yaml.

Two kinds:

- ``ALARMED``: the code took a path that degrades the service or gives up on
  something (a dependency error, a fail-open, a dead letter, a lost nudge, a
  failed job), or a signal the service is judged by (lag, p99 latency, a job
  that must run).  Each has an alarm that notifies the alarm topic
  (docs/operations.md, "Alarms").
- ``USAGE``: what the service did (changes, cache hits, latencies of a healthy
  path).  Shown on the dashboard or read ad hoc; no alarm needed.

To add a metric: add its name here with its kind; an ``ALARMED`` one also needs its
alarm in template.yaml (the usual shape: a Metrics Insights query summing it
over every function's ``service`` dimension).
"""

from __future__ import annotations

from typing import Final, Literal

MetricKind = Literal["alarmed", "usage"]
ALARMED: Final = "alarmed"
USAGE: Final = "usage"

METRICS: Final[dict[str, MetricKind]] = {
    # ---- the API (app.py, chalicelib/api)
    "ServerErrors": ALARMED,  # the app answered 5xx
    "DependencyErrors": ALARMED,  # a dependency was unavailable (503)
    "RequestLatency": ALARMED,  # the latency a deploy is judged by (ApiLatencyP99Alarm)
    "ReadLatency": ALARMED,  # the read latency SLI (docs/slo.md; burn-rate alarms)
    "WriteLatency": ALARMED,  # the write latency SLI
    "RateLimited": USAGE,  # a caller went over its limit (a 429, the limit working)
    # a token the API's Lambda authorizer refused (a 401; functions/authorizer.py): its
    # errors alarms subtract these from the function's errors
    "AuthorizerRejected": USAGE,
    "RateLimitFailOpen": ALARMED,  # Redis down: requests pass unlimited
    "DocumentChanges": USAGE,
    "CacheHits": USAGE,
    "CacheMisses": USAGE,
    # ---- cache breaker (chalicelib/adapters/redis/cache.py)
    "CacheBreakerOpen": ALARMED,  # gauge: 1 while an API environment's breaker is open
    "CacheBreakerOpened": ALARMED,  # any function's breaker opened
    "CacheBreakerClosed": USAGE,
    # ---- database
    "DatabaseRetries": ALARMED,  # a transient database error was retried
    # ---- content uploads (chalicelib/service_layer/content.py)
    "ContentReady": USAGE,
    "ContentRejected": USAGE,  # the client's file was refused (size, type)
    "ContentSuperseded": USAGE,
    "ContentOrphaned": USAGE,
    "ContentDuplicate": USAGE,
    "ContentIgnored": USAGE,
    "ContentExpired": USAGE,
    # ---- search
    "SearchLatency": USAGE,
    "SearchIndexed": USAGE,
    "SearchRetried": ALARMED,  # OpenSearch refused or failed a batch item
    "SearchDeadLettered": ALARMED,  # an item gave up after its retries
    "SearchSyncLag": ALARMED,
    "SearchNudgeFailed": ALARMED,  # a write's nudge was lost (the sweep catches up)
    # ---- real-time (chalicelib/service_layer/realtime.py)
    "RealtimeConnected": USAGE,
    "RealtimeBadFrames": USAGE,  # a client sent a frame the protocol refuses
    "RealtimeFramesSent": USAGE,
    "RealtimeDeliveryLag": USAGE,
    "RealtimeLag": ALARMED,
    "RealtimeGone": USAGE,  # the client left: its connection is dropped
    "RealtimeDropped": ALARMED,  # frames a slow connection lost
    "RealtimeThrottled": ALARMED,
    "RealtimePostErrors": ALARMED,
    # feature flags (adapters/feature_flags.py): a failed read, answered with defaults
    "FeatureFlagsStoreFailed": ALARMED,
    "RealtimeConnectFailed": ALARMED,  # a $connect refused with a 5xx (e.g. Redis down)
    "RealtimeCloseFailed": ALARMED,  # an expired or revoked connection could not be closed
    "RealtimeNudgeFailed": ALARMED,
    # ---- signed webhooks (chalicelib/service_layer/webhooks.py)
    "WebhooksDelivered": USAGE,
    "WebhookAttemptsFailed": USAGE,  # a receiver failed an attempt (retried with backoff)
    "WebhooksDeadLettered": ALARMED,  # a delivery gave up after its retry window
    "WebhookEndpointsDisabled": USAGE,  # the org's admin is told (audit row, GET /webhooks)
    "WebhookLag": ALARMED,  # since the oldest outbox row after the deliverer's cursor
    "WebhookPendingAge": USAGE,  # the oldest pending delivery (retries included)
    # ---- audit trail and personal data
    "AuditPeriodsExported": USAGE,
    "AuditExportRuns": ALARMED,  # its absence alarms (AuditExportStaleAlarm)
    "AuditChainLag": ALARMED,  # age of the oldest audit row not chained yet (AuditChainLagAlarm)
    "AuditChainBroken": ALARMED,  # an org's chain cannot be extended (a forged row)
    "PersonalDataExports": USAGE,
    "PersonalDataExportFailures": ALARMED,
    "DocumentsPurged": USAGE,
    "PurgeFailures": ALARMED,
    # ---- share notifications (chalicelib/service_layer/notifications.py)
    "NotificationsSent": USAGE,
    "NotificationSendFailures": ALARMED,  # SES failed (retried) or refused (skipped) a mail
    "NotificationLag": ALARMED,  # age of the oldest outbox row after the consumer's cursor
    # ---- the synthetic canary (functions/canary.py): a passing run; CanaryAlarm
    # fires on a minute without one (missing data breaching)
    "CanarySucceeded": ALARMED,
}


def alarmed() -> list[str]:
    """The names that must have an alarm, sorted."""
    return sorted(name for name, kind in METRICS.items() if kind == ALARMED)
