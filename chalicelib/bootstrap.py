"""Composition root: reads config once, builds the adapters and wires the services.

Module-scope and cached: a Lambda environment builds its pool and clients once;
nothing connects at import time, and heavy adapters (S3, OpenSearch, Powertools)
are imported on first use.  Tests build their own container (``build``,
``set_container``).  The one place that knows which adapter implements which
port and that chooses the fault wrappers (adapters/faults.py, ``DOCS_FAULT_*``);
every public member is a port or a service, each given its settings group.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.config import Settings, get_settings
from chalicelib.domain.ports.cache import CacheRepairQueue, DocumentCache
from chalicelib.domain.ports.content import BlobStore
from chalicelib.domain.ports.flags import FeatureFlags
from chalicelib.domain.ports.idempotency import IdempotentRuns
from chalicelib.domain.ports.outbox import Outbox, OutboxNudge
from chalicelib.domain.ports.pii import PiiReencryptionStore
from chalicelib.domain.ports.purge import ObjectPurger
from chalicelib.domain.ports.rate_limit import RateLimit
from chalicelib.domain.ports.search import SearchIndex
from chalicelib.domain.ports.transaction import UnitOfWork
from chalicelib.service_layer.cache_coherence import CacheCoherence
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.health import HealthService
from chalicelib.service_layer.pii_fields import PiiFields
from chalicelib.webhook_wiring import WebhookMembers

if TYPE_CHECKING:
    from chalicelib.adapters.postgres.uow import PostgresUnitOfWork
    from chalicelib.adapters.redis.cache import RedisCache
    from chalicelib.domain.ports.realtime import ConnectionRegistry, Poster, ReadFilter
    from chalicelib.domain.realtime import Credentials
    from chalicelib.service_layer.access import AccessService
    from chalicelib.service_layer.access_review import AccessReviewService
    from chalicelib.service_layer.audit import AuditChainer, AuditService
    from chalicelib.service_layer.consents import ConsentService
    from chalicelib.service_layer.content import ContentService
    from chalicelib.service_layer.fanout import FanOut
    from chalicelib.service_layer.notifications import NotificationSettingsService, ShareNotifier
    from chalicelib.service_layer.personal_data import PersonalDataService
    from chalicelib.service_layer.purge import Purge
    from chalicelib.service_layer.realtime import RealtimeService
    from chalicelib.service_layer.search import SearchService
    from chalicelib.service_layer.search_sync import SearchSync


class Container(WebhookMembers):
    """One process's services and the ports they are built from."""

    def __init__(
        self,
        settings: Settings,
        *,
        postgres: PostgresUnitOfWork,
        redis: RedisCache,
        repair_queue: CacheRepairQueue,
        nudge: OutboxNudge | None,
    ) -> None:
        self.settings = settings
        # the adapters behind the ports: one pool for the Postgres stores, and
        self._postgres = postgres
        self.uow: UnitOfWork = postgres
        # one Redis client: the document cache, rate limits, idempotency, real-time registry
        self._redis = redis
        self.cache: DocumentCache = redis
        self.nudge = nudge
        self.coherence = CacheCoherence(_document_cache(settings, redis), postgres, repair_queue)
        self.documents = self._documents(postgres)
        self._bulk_uow: UnitOfWork | None = None

    def _documents(self, uow: UnitOfWork) -> DocumentService:
        s = self.settings
        coherence = self.coherence
        if uow is not self.uow:  # a write that cannot publish queues its repair on its own pool
            coherence = CacheCoherence(coherence.cache, uow, coherence.queue)
        return DocumentService(
            uow,
            coherence,
            page_secret=s.page_token_secret,
            settings=s.documents,
            nudge=self.nudge,
            personal_data=self.pii,
        )

    @cached_property
    def bulk_documents(self) -> DocumentService:
        """The same use cases on their own small pool (a bulkhead): batch writes
        can exhaust only these connections, never the ones single reads use."""
        from chalicelib.adapters.postgres.uow import PostgresUnitOfWork

        self._bulk_uow = PostgresUnitOfWork(self.settings, pool_max=self.settings.db_bulk_pool_max)
        return self._documents(self._bulk_uow)

    @cached_property
    def rate_limiter(self) -> RateLimit | None:
        """None when rate limiting is off."""
        limits = self.settings.rate_limits.by_role
        if limits is None:
            return None
        from chalicelib.adapters.redis.rate_limit import RateLimiter

        return RateLimiter(self._redis, limits, self._redis.namespace)

    @cached_property
    def idempotency(self) -> IdempotentRuns:
        """Built on first use: only POSTs with an Idempotency-Key need it."""
        from chalicelib.adapters.idempotency import Idempotency
        from chalicelib.adapters.postgres.idempotency import PostgresIdempotencyRecords

        records = PostgresIdempotencyRecords(self._postgres)
        return Idempotency(records, self._redis, self._redis.namespace.prefix)

    @cached_property
    def blobs(self) -> BlobStore:
        """S3 (boto3 is imported on first use)."""
        from chalicelib.adapters.s3 import S3Blobs

        return S3Blobs(self.settings)

    @cached_property
    def content(self) -> ContentService:
        """Large-content use cases."""
        from chalicelib.adapters.postgres.content import PostgresStaleUploads
        from chalicelib.service_layer.content import ContentService

        stale = PostgresStaleUploads(self._postgres)
        return ContentService(
            self.uow,
            self.coherence,
            self.blobs,
            stale,
            settings=self.settings.content,
            nudge=self.nudge,
        )

    @cached_property
    def search_index(self) -> SearchIndex:
        """The OpenSearch adapter (opensearch-py is imported on first use)."""
        from chalicelib.adapters.opensearch import OpenSearchIndex

        return OpenSearchIndex(self.settings)

    @cached_property
    def outbox(self) -> Outbox:
        from chalicelib.adapters.postgres.outbox import PostgresOutbox

        return PostgresOutbox(self._postgres, self.settings.search_alias)

    @cached_property
    def search(self) -> SearchService:
        """POST /search and GET /changes."""
        from chalicelib.service_layer.search import SearchService

        secret = self.settings.page_token_secret
        return SearchService(
            self.search_index, self.uow, page_secret=secret, personal_data=self.pii
        )

    @cached_property
    def search_sync(self) -> SearchSync:
        """The outbox consumer (functions/sync_search.py, the local sync loop)."""
        from chalicelib.service_layer.search_sync import SearchSync

        s = self.settings
        index: SearchIndex = self.search_index
        if s.fault_sync_pause_ms:
            from chalicelib.adapters.faults import PauseAfterIndexWrites

            index = PauseAfterIndexWrites(index, s.fault_sync_pause_ms / 1000)
        return SearchSync(self.outbox, index, s.search)

    # -- document permissions ----------------------------------------
    @cached_property
    def access(self) -> AccessService:
        """Grants, visibility, and ``readable_ids`` (the real-time fan-out's ACL query)."""
        from chalicelib.service_layer.access import AccessService

        return AccessService(self.uow, self.coherence, nudge=self.nudge)

    # -- audit trail and personal data -----------------------
    @cached_property
    def audit(self) -> AuditService:
        """GET /audit, the chain verifier and the scheduled export of closed periods."""
        from chalicelib.adapters.postgres.audit import PostgresAuditTrail
        from chalicelib.adapters.s3 import S3Archive
        from chalicelib.service_layer.audit import AuditService

        s = self.settings
        return AuditService(
            PostgresAuditTrail(self._postgres),
            page_secret=s.page_token_secret,
            settings=s.audit,
            archive=lambda: S3Archive(s, bucket=s.audit.bucket),
        )

    @cached_property
    def audit_chainer(self) -> AuditChainer:
        """Links pending audit rows (the sync worker, the search sweep and nudges)."""
        from chalicelib.adapters.postgres.audit import PostgresAuditTrail
        from chalicelib.service_layer.audit import AuditChainer

        return AuditChainer(PostgresAuditTrail(self._postgres))

    @cached_property
    def access_review(self) -> AccessReviewService:
        """GET /access-review and POST /access-review/attestations."""
        from chalicelib.adapters.postgres.access_review import PostgresAccessReview
        from chalicelib.service_layer.access_review import AccessReviewService

        s = self.settings
        return AccessReviewService(
            PostgresAccessReview(self._postgres),
            page_secret=s.page_token_secret,
            settings=s.access_review,
        )

    @cached_property
    def personal_data(self) -> PersonalDataService:
        """POST /me/export (and its worker), POST /users/{user}/erasure."""
        from chalicelib.adapters.postgres.personal_data import (
            PostgresExportJobs,
            PostgresPersonalData,
        )
        from chalicelib.adapters.s3 import S3Archive
        from chalicelib.service_layer.personal_data import PersonalDataService

        s = self.settings
        return PersonalDataService(
            PostgresExportJobs(self._postgres),
            PostgresPersonalData(self._postgres),
            self.coherence,
            settings=s.personal_data,
            archive=lambda: S3Archive(s, bucket=s.personal_data.export_bucket),
            nudge=self.nudge,
            pii=self.pii,  # the archive holds the subject's personal-data fields in clear
            revoke=self.access.delete_grant,  # grants go as versioned, audited writes
            end_streams=self._end_realtime_streams,
            open_notifications=self.notification_settings.export,
        )

    @cached_property
    def consents(self) -> ConsentService:
        """GET/PUT /me/consents, GET /users/{user}/consents, and ``granted``: the
        check for anything that needs a user's consent."""
        from chalicelib.adapters.postgres.consents import PostgresConsentRecords
        from chalicelib.service_layer.consents import ConsentService

        return ConsentService(PostgresConsentRecords(self._postgres), self.settings.consents)

    @cached_property
    def notification_settings(self) -> NotificationSettingsService:
        """GET/PUT /me/notification-settings (the address sealed like PII fields)."""
        from chalicelib.adapters.pii import build_cipher
        from chalicelib.adapters.postgres.notifications import PostgresNotificationSettings
        from chalicelib.service_layer.notifications import NotificationSettingsService

        store = PostgresNotificationSettings(self._postgres)
        return NotificationSettingsService(store, build_cipher(self.settings))

    @cached_property
    def share_notifier(self) -> ShareNotifier:
        """The outbox consumer that e-mails grantees (off without DOCS_NOTIFY_SENDER)."""
        from chalicelib.adapters.postgres.notifications import PostgresShareStream
        from chalicelib.adapters.ses import SesMailer
        from chalicelib.domain.flags import SHARE_NOTIFICATIONS
        from chalicelib.domain.notifications import PURPOSE
        from chalicelib.service_layer.notifications import ShareNotifier

        s = self.settings
        mailer = (
            SesMailer(s.notify_sender, s.aws_region, s.aws_endpoint_url)
            if s.notify_sender
            else None
        )
        return ShareNotifier(
            PostgresShareStream(self._postgres),
            mailer,
            lambda org, user: self.consents.granted(org, user, PURPOSE),
            self.notification_settings.cipher,
            window_s=s.notify_window_s,
            link_base=s.notify_link_base,
            switched_on=lambda org, user: self.flags.enabled(
                SHARE_NOTIFICATIONS, org=org, user=user
            ),
        )

    def _end_realtime_streams(self, org: str, user: str) -> None:
        """Erasure's real-time hook: the user's open streams end (docs/realtime.md)."""
        self.realtime.revoke_user(org, user)

    # -- personal data and purge ----------------------------------------------
    @cached_property
    def pii(self) -> PiiFields:
        """The declared personal-data fields and their cipher (KMS or local keys;
        without a key every use of such a field is a 503, never clear storage)."""
        fields = self.settings.pii_fields
        if not fields:
            return PiiFields()
        from chalicelib.adapters.pii import build_cipher

        return PiiFields(fields, build_cipher(self.settings))

    @cached_property
    def pii_reencryption_store(self) -> PiiReencryptionStore:
        from chalicelib.adapters.postgres.pii_reencryption import PostgresPiiReencryptionStore

        return PostgresPiiReencryptionStore(self._postgres)

    @cached_property
    def purge(self) -> Purge:
        """The scheduled purge (functions/purge.py, ``cli purge``, the local sync loop)."""
        from chalicelib.adapters.postgres.purge import PostgresPurgeStore
        from chalicelib.service_layer.purge import Purge

        return Purge(
            PostgresPurgeStore(self._postgres),
            settings=self.settings.purge,
            objects=self.object_purger,
            cache=self._redis,
            droppers=[self._drop_realtime_subscriptions],
            nudge=self.nudge,
        )

    def _drop_realtime_subscriptions(self, org: str, doc_id: str) -> None:
        """The purge's real-time hook: nobody stays subscribed to a purged document."""
        self.realtime.drop_document(org, doc_id)

    @cached_property
    def object_purger(self) -> ObjectPurger:
        from chalicelib.adapters.s3 import S3Blobs

        return S3Blobs(self.settings)

    # -- real-time updates (docs/realtime.md) -------------------------
    @cached_property
    def realtime_read_filter(self) -> ReadFilter:
        """THE one injection point for what a real-time subscriber may read: the
        subscribe check, the catch-up and the fan-out all ask it.  Document grants
        and private documents decide (service_layer/access.py, one query a batch)."""
        return self.access

    @cached_property
    def realtime_registry(self) -> ConnectionRegistry:
        """Connections and subscriptions in Redis (the cache's client and key
        namespace, not its breaker)."""
        from chalicelib.adapters.redis.realtime import RedisConnectionRegistry

        ttl_s = self.settings.realtime.connection_ttl_s
        return RedisConnectionRegistry(self._redis.client, self._redis.namespace, ttl_s=ttl_s)

    @cached_property
    def realtime(self) -> RealtimeService:
        """Connect, subscribe, unsubscribe, disconnect (functions/realtime.py, local hub)."""
        from chalicelib.api.problems import error_frame_of
        from chalicelib.service_layer.realtime import RealtimeService

        return RealtimeService(
            self.realtime_registry,
            self.uow,
            self.realtime_read_filter,
            page_secret=self.settings.page_token_secret,
            settings=self.settings.realtime,
            error_frame=error_frame_of,
            verify=self.stream_credentials,
        )

    def stream_credentials(self, token: str, request_id: str | None) -> Credentials:
        """The HTTP API's token verification, as a stream holds its result (expiry)."""
        from chalicelib.api.auth import credentials

        return credentials(token, self.settings, request_id)

    @cached_property
    def realtime_poster(self) -> Poster:
        """API Gateway's management API (the local server brings its own poster)."""
        from chalicelib.adapters.apigw_connections import ApiGatewayPoster

        s = self.settings
        return ApiGatewayPoster(s.realtime_endpoint_url or "", s.aws_region)

    def realtime_fanout(self, poster: Poster | None = None) -> FanOut:
        """The fan-out over the outbox with its own cursor; one per process and poster."""
        from chalicelib.adapters.postgres.realtime import PostgresRealtimeStream
        from chalicelib.service_layer.fanout import FanOut

        if poster is None and self._fanout is not None:
            return self._fanout
        s = self.settings
        fanout = FanOut(
            PostgresRealtimeStream(self._postgres, s.realtime.consumer),
            self.realtime_registry,
            poster or self.realtime_poster,
            self.realtime_read_filter,
            page_secret=s.page_token_secret,
            settings=s.realtime,
        )
        if poster is None:
            self._fanout = fanout
        return fanout

    _fanout: FanOut | None = None

    @cached_property
    def flags(self) -> FeatureFlags:
        """Feature flags (docs/feature-flags.md): AppConfig or a JSON file, cached;
        Powertools is imported on first use."""
        from chalicelib.adapters.feature_flags import build_flags

        s = self.settings
        return build_flags(s.feature_flags_store, s.feature_flags_source, s.feature_flags_max_age_s)

    # -- operations ---------------------------------------------------------------
    @cached_property
    def health(self) -> HealthService:
        """GET /health and the edge's cache-breaker gauge."""
        search = None
        if self.settings.opensearch_url:
            search = lambda: (self.search_index, self.outbox)  # noqa: E731 - built on first probe
        return HealthService(self.uow, self._redis, blobs=self._configured_blobs, search=search)

    def _configured_blobs(self) -> BlobStore | None:
        """S3 where one is configured (a local endpoint, or on Lambda)."""
        if self.settings.aws_endpoint_url or os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            return self.blobs
        return None

    def close(self) -> None:
        """Close pools (tests and the local server's shutdown; Lambda never needs it)."""
        self.uow.close()
        if self._bulk_uow is not None:
            self._bulk_uow.close()


def _document_cache(settings: Settings, cache: RedisCache) -> DocumentCache:
    if not settings.fault_fill_delay_ms:
        return cache
    from chalicelib.adapters.faults import SlowCacheFills

    return SlowCacheFills(cache, settings.fault_fill_delay_ms / 1000)


def build(settings: Settings | None = None) -> Container:
    from chalicelib.adapters.postgres.cache_repair import PostgresCacheRepairQueue
    from chalicelib.adapters.postgres.uow import PostgresUnitOfWork
    from chalicelib.adapters.redis.cache import RedisCache
    from chalicelib.adapters.redis.namespace import KeyNamespace

    settings = settings or get_settings()
    uow = PostgresUnitOfWork(settings)
    nudge: OutboxNudge | None = None
    if settings.search_nudge == "sqs":
        from chalicelib.adapters.sqs_nudge import SqsNudge

        nudge = SqsNudge(settings)
    nudge = _with_realtime_nudge(settings, nudge)
    return Container(
        settings,
        postgres=uow,
        # every Redis key is bound to this database (its id is read on first use)
        redis=RedisCache(settings, KeyNamespace(settings.redis_key_prefix, uow.database_id)),
        repair_queue=PostgresCacheRepairQueue(uow),
        nudge=nudge,
    )


def _with_realtime_nudge(settings: Settings, nudge: OutboxNudge | None) -> OutboxNudge | None:
    """Real-time: in AWS writes also wake the fan-out's own queue."""
    if not settings.realtime_nudge_queue_url:
        return nudge
    from chalicelib.adapters.sqs_nudge import Nudges, SqsNudge

    queue_url = settings.realtime_nudge_queue_url
    realtime = SqsNudge(settings, queue_url=queue_url, failure_metric="RealtimeNudgeFailed")
    return realtime if nudge is None else Nudges(nudge, realtime)


_container: Container | None = None
_lock = threading.Lock()


def container() -> Container:
    global _container  # noqa: PLW0603 - the process-wide composition root
    if _container is None:
        with _lock:
            if _container is None:
                _container = build()
    return _container


def set_container(value: Container | None) -> None:
    """Swap the composition root (tests, local server after config changes)."""
    global _container  # noqa: PLW0603
    _container = value
