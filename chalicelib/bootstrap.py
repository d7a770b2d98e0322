"""Composition root: reads config once, builds adapters lazily, wires services.

Module-scope and cached, so a Lambda execution environment builds its pool
and clients once and reuses them across invocations; nothing connects at
import time (cold starts stay short, and tests can swap the container).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.config import Settings, get_settings
from chalicelib.domain.model import Limits
from chalicelib.domain.ports import DocumentCache, SearchNudge, UnitOfWork
from chalicelib.service_layer.cache_coherence import CacheCoherence
from chalicelib.service_layer.documents import DocumentService


@dataclass
class Container:
    settings: Settings
    uow: UnitOfWork
    cache: DocumentCache
    coherence: CacheCoherence
    nudge: SearchNudge | None
    documents: DocumentService
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Close pools (tests and the local server's shutdown; Lambda never needs it)."""
        for uow in (self.uow, getattr(self.extras.get("bulk_documents"), "uow", None)):
            close = getattr(uow, "close", None)
            if close is not None:
                close()

    @property
    def bulk_documents(self) -> DocumentService:
        """The same use cases on their own small pool (a bulkhead): batch writes
        can exhaust only these connections, never the ones single reads use."""
        if "bulk_documents" not in self.extras:
            from chalicelib.adapters.postgres import PostgresUnitOfWork

            uow: Any = self.uow
            if isinstance(uow, PostgresUnitOfWork):
                uow = PostgresUnitOfWork(self.settings, pool_max=self.settings.db_bulk_pool_max)
            coherence = CacheCoherence(self.cache, uow, self.coherence.queue)
            self.extras["bulk_documents"] = _documents(self.settings, uow, coherence, self.nudge)
        service: DocumentService = self.extras["bulk_documents"]
        return service

    @property
    def rate_limiter(self) -> Any:
        """None when rate limiting is off (or the cache is not Redis)."""
        if "rate_limiter" not in self.extras:
            limiter = None
            if self.settings.rate_limit_enabled and hasattr(self.cache, "breaker"):
                from chalicelib.adapters.rate_limit import RateLimiter

                s = self.settings
                limits = {
                    "reader": s.rate_limit_reader,
                    "writer": s.rate_limit_writer,
                    "admin": s.rate_limit_admin,
                }
                limiter = RateLimiter(self.cache, limits, s.redis_key_prefix)
            self.extras["rate_limiter"] = limiter
        return self.extras["rate_limiter"]

    @property
    def idempotency(self) -> Any:
        """Built on first use: only POSTs with an Idempotency-Key need it."""
        if "idempotency" not in self.extras:
            from chalicelib.adapters.postgres_idempotency import PostgresIdempotencyRecords
            from chalicelib.idempotency import Idempotency

            records = PostgresIdempotencyRecords(self.uow)  # type: ignore[arg-type]
            self.extras["idempotency"] = Idempotency(
                records, self.cache, self.settings.redis_key_prefix
            )
        return self.extras["idempotency"]

    @property
    def content(self) -> Any:
        """Large-content use cases, built on first use (boto3 is imported only then)."""
        if "content" not in self.extras:
            from chalicelib.adapters.postgres_content import PostgresStaleUploads
            from chalicelib.adapters.s3 import S3Blobs
            from chalicelib.domain.content import ContentPolicy
            from chalicelib.service_layer.content import ContentService

            s = self.settings
            policy = ContentPolicy(
                max_bytes=s.content_max_bytes,
                allowed_types=s.content_allowed_types,
                text_max_chars=s.content_text_max_chars,
                pdf_spool_max_bytes=s.content_pdf_spool_max_bytes,
            )
            self.extras["content"] = ContentService(
                self.uow, self.coherence, S3Blobs(s), PostgresStaleUploads(self.uow),  # type: ignore[arg-type]
                bucket=s.content_bucket, policy=policy, nudge=self.nudge,
                upload_expiry_s=s.content_upload_expiry_s,
                download_expiry_s=s.content_download_expiry_s,
                chunk_bytes=s.content_chunk_bytes,
            )  # fmt: skip
        return self.extras["content"]

    @property
    def search_index(self) -> Any:
        """The OpenSearch adapter (opensearch-py is imported on first use)."""
        if "search_index" not in self.extras:
            from chalicelib.adapters.opensearch import OpenSearchIndex

            self.extras["search_index"] = OpenSearchIndex(self.settings)
        return self.extras["search_index"]

    @property
    def outbox(self) -> Any:
        if "outbox" not in self.extras:
            from chalicelib.adapters.postgres_outbox import PostgresOutbox

            self.extras["outbox"] = PostgresOutbox(self.uow, self.settings.search_alias)  # type: ignore[arg-type]
        return self.extras["outbox"]

    @property
    def search(self) -> Any:
        """POST /search and GET /changes."""
        if "search" not in self.extras:
            from chalicelib.service_layer.search import SearchService

            self.extras["search"] = SearchService(
                self.search_index, self.uow, page_secret=self.settings.page_token_secret
            )
        return self.extras["search"]

    @property
    def search_sync(self) -> Any:
        """The outbox consumer (functions/sync_search.py, the local sync loop)."""
        if "search_sync" not in self.extras:
            from chalicelib.service_layer.search import SearchSync

            s = self.settings
            self.extras["search_sync"] = SearchSync(
                self.outbox, self.search_index,
                batch_size=s.search_batch_size, max_attempts=s.search_max_attempts,
                retry_base_s=s.search_retry_base_s, retry_cap_s=s.search_retry_cap_s,
                max_chars=s.search_body_max_chars,
                grace=timedelta(seconds=s.search_reindex_grace_s),
                fault_pause_s=s.fault_sync_pause_ms / 1000,
                retention=timedelta(days=s.outbox_retention_days),
            )  # fmt: skip
        return self.extras["search_sync"]


def build(
    settings: Settings | None = None,
    *,
    uow: UnitOfWork | None = None,
    cache: DocumentCache | None = None,
) -> Container:
    settings = settings or get_settings()
    if uow is None:
        from chalicelib.adapters.postgres import PostgresUnitOfWork

        uow = PostgresUnitOfWork(settings)
    if cache is None:
        from chalicelib.adapters.redis_cache import RedisCache

        cache = RedisCache(settings)
    from chalicelib.adapters.postgres import PostgresCacheRepairQueue

    coherence = CacheCoherence(cache, uow, PostgresCacheRepairQueue(uow))  # type: ignore[arg-type]
    nudge: SearchNudge | None = None
    if settings.search_nudge == "sqs":
        from chalicelib.adapters.sqs_nudge import SqsNudge

        nudge = SqsNudge(settings)
    documents = _documents(settings, uow, coherence, nudge)
    return Container(
        settings=settings, uow=uow, cache=cache, coherence=coherence, nudge=nudge,
        documents=documents,
    )  # fmt: skip


def document_limits(settings: Settings) -> Limits:
    return Limits(
        max_bytes=settings.max_body_bytes,
        max_depth=settings.max_json_depth,
        max_patch_ops=settings.max_patch_ops,
    )


def _documents(
    settings: Settings, uow: UnitOfWork, coherence: CacheCoherence, nudge: SearchNudge | None
) -> DocumentService:
    return DocumentService(
        uow,
        coherence,
        nudge=nudge,
        page_secret=settings.page_token_secret,
        limits=document_limits(settings),
        retention=timedelta(days=settings.delete_retention_days),
        fill_delay_s=settings.fault_fill_delay_ms / 1000,
    )


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
