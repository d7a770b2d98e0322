"""The frozen settings groups each concern reads (``settings.documents``, ...).

``chalicelib.config.Settings`` parses the flat environment and builds these; they
live here so that the parser and the groups each stay a readable size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from chalicelib.domain.content.policy import ContentPolicy
from chalicelib.domain.model import DEFAULT_LIMITS, Limits
from chalicelib.domain.realtime import MAX_SUBSCRIPTIONS


@dataclass(frozen=True)
class DocumentSettings:
    """The document use cases: what a stored document may be, and how long a
    deleted one can be restored."""

    limits: Limits = DEFAULT_LIMITS
    retention: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class ContentSettings:
    """Large content in S3: the bucket, the upload policy, the presigned URLs' lives."""

    bucket: str = "docs-content-local"
    policy: ContentPolicy = field(default_factory=ContentPolicy)
    upload_expiry_s: int = 900
    download_expiry_s: int = 60
    chunk_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class SearchSettings:
    """The search sync: batches, retries with backoff, the indexed text, retention."""

    batch_size: int = 200
    max_attempts: int = 8
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    body_max_chars: int = 200_000
    reindex_grace: timedelta = timedelta(hours=1)
    outbox_retention: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class RealtimeSettings:
    """Real-time updates: subscriptions, catch-up, revocations and the fan-out."""

    max_subscriptions: int = MAX_SUBSCRIPTIONS
    catch_up_limit: int = 100
    revocation_ttl_s: int = 86_400 + 60  # a token's longest life and the leeway
    connection_ttl_s: int = 7200
    consumer: str = "realtime"
    batch_size: int = 500
    post_attempts: int = 4
    parallel_posts: int = 8


@dataclass(frozen=True)
class PersonalDataSettings:
    """Personal-data export archives: where they go and how long their links live."""

    export_bucket: str = "docs-exports-local"
    export_url_expiry_s: int = 300
    export_batch: int = 10


@dataclass(frozen=True)
class ConsentSettings:
    """The purposes a user consents to, and the version of the policy in force."""

    purposes: tuple[str, ...] = ("notifications", "analytics")
    policy_version: str = "1"


@dataclass(frozen=True)
class PurgeSettings:
    """The scheduled purge of documents deleted longer than ``retention`` ago."""

    retention: timedelta = timedelta(days=30)
    batch_size: int = 100


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail's scheduled export of closed periods."""

    bucket: str = "docs-audit-local"
    export_prefix: str = "audit"
    export_days: int = 3


@dataclass(frozen=True)
class AccessReviewSettings:
    """The access review: a grant unused this many days is flagged stale."""

    stale_days: int = 90


@dataclass(frozen=True)
class RateLimitSettings:
    """Per-principal token buckets, ``role -> (requests per second, burst)``; None: off."""

    by_role: dict[str, tuple[float, int]] | None = None
