"""``Idempotency-Key`` for POSTs, on Powertools' idempotency utility.

Same key + same body within 24 h → the first response again (with
``Idempotent-Replayed: true``); same key + another body → 422; the first
request still running → 409 with ``Retry-After``.  Keys are scoped to
(org, subject, route), so two callers can never see each other's responses.

Records live in Redis (Powertools' Redis persistence layer, which claims a key
with ``SET NX``) and, while the Redis breaker is open, in PostgreSQL
(``idempotency_keys``, claimed with ``INSERT … ON CONFLICT``): retries keep
working during a cache outage.  The PostgreSQL records hold whole response
bodies, so they are tenant rows like any other: each carries its org and is
read and written in that org's transaction (row-level security applies); the
org comes from ``Idempotency.run`` through a context variable, since
Powertools calls the persistence layer with the hashed key only.  Only
successful responses are stored; a request that failed may be retried with
the same key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

import redis
from aws_lambda_powertools.utilities.idempotency import (
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.persistence.redis import (
    RedisCachePersistenceLayer,
    RedisClientProtocol,
)

from chalicelib.domain.errors import BadRequest, Conflict, DependencyUnavailable, ValidationFailed
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.model import IDEMPOTENT_REPLAYED
from chalicelib.domain.ports.idempotency import IdempotencyRecords

Result = dict[str, Any]
A = TypeVar("A")
R = TypeVar("R")
TTL_S = 24 * 3600
_REDIS_ERRORS = (redis.RedisError, OSError)
# the org of the request ``Idempotency.run`` is wrapping (never a default: a
# persistence call outside ``run`` fails rather than guess a tenant)
_ORG: ContextVar[str | None] = ContextVar("idempotency_org", default=None)


class RecordsPersistenceLayer(BasePersistenceLayer):
    """Powertools persistence on ``IdempotencyRecords`` (PostgreSQL), in the org's
    transactions: the org comes from ``Idempotency.run`` (a context variable)."""

    def __init__(self, records: IdempotencyRecords) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.records = records

    @staticmethod
    def _org() -> str:
        org = _ORG.get()
        if not org:
            raise RuntimeError("idempotency records are per org: use Idempotency.run")
        return org

    def _get_record(self, idempotency_key: str) -> DataRecord:
        record = self.records.get(self._org(), idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return DataRecord(
            idempotency_key=record.key,
            status=record.status,
            expiry_timestamp=record.expiry,
            in_progress_expiry_timestamp=record.in_progress_expiry,
            response_data=record.data or "",
            payload_hash=record.validation or "",
        )

    def _put_record(self, data_record: DataRecord) -> None:
        now_s, now_ms = int(time.time()), int(time.time() * 1000)
        # claim the key if it is free, expired, or an abandoned in-progress record
        if not self.records.claim(self._org(), _record(data_record), now_s=now_s, now_ms=now_ms):
            raise IdempotencyItemAlreadyExistsError

    def _update_record(self, data_record: DataRecord) -> None:
        self.records.update(self._org(), _record(data_record))

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.delete(self._org(), data_record.idempotency_key)


def _record(data: DataRecord) -> IdempotencyRecord:
    assert data.expiry_timestamp is not None  # Powertools sets it on every record it saves
    return IdempotencyRecord(
        key=data.idempotency_key,
        status=data.status,
        expiry=data.expiry_timestamp,
        in_progress_expiry=data.in_progress_expiry_timestamp,
        data=data.response_data,
        validation=data.payload_hash,
    )


class RedisPersistenceLayer(RedisCachePersistenceLayer):
    """Powertools' Redis layer, keeping the payload hash when a record completes.

    The stock ``_update_record`` rewrites the record without its validation
    hash, so a retry with the *same* body would be refused as a mismatch.
    """

    def _update_record(self, data_record: DataRecord) -> None:
        item = {
            self.data_attr: data_record.response_data,
            self.status_attr: data_record.status,
            self.expiry_attr: data_record.expiry_timestamp,
        }
        if self.payload_validation_enabled:
            item[self.validation_key_attr] = data_record.payload_hash
        ttl = self._get_expiry_second(data_record.expiry_timestamp)
        self.client.set(name=data_record.idempotency_key, value=self._json_serializer(item), ex=ttl)


class Breaker(Protocol):
    def allow(self) -> bool: ...

    def success(self) -> None: ...

    def failure(self) -> None: ...


class SharedRedis(Protocol):
    """The Redis connection the cache owns (adapters/redis/cache.py): its client, and
    its breaker, the one source of truth on whether Redis is up."""

    @property
    def client(self) -> redis.Redis[bytes]: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def breaker(self) -> Breaker: ...


class FallbackPersistenceLayer(BasePersistenceLayer):
    """Redis first; the records port (PostgreSQL) while the breaker says Redis is out."""

    def __init__(
        self, primary: BasePersistenceLayer, fallback: BasePersistenceLayer, redis: SharedRedis
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.primary = primary
        self.fallback = fallback
        self.redis = redis

    def configure(
        self,
        config: IdempotencyConfig,
        function_name: str | None = None,
        key_prefix: str | None = None,
    ) -> None:
        super().configure(config, function_name, key_prefix)
        self.primary.configure(config, function_name, key_prefix)
        self.fallback.configure(config, function_name, key_prefix)

    def _call(self, primary: Callable[[A], R], fallback: Callable[[A], R], arg: A) -> R:
        breaker = self.redis.breaker
        if self.redis.enabled and breaker.allow():
            try:
                result = primary(arg)
            except _REDIS_ERRORS:
                breaker.failure()
            else:
                breaker.success()
                return result
        return fallback(arg)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self._call(self.primary._get_record, self.fallback._get_record, idempotency_key)
        except IdempotencyItemNotFoundError:
            # the first attempt may have been recorded while Redis was out
            return self.fallback._get_record(idempotency_key)

    def _put_record(self, data_record: DataRecord) -> None:
        try:  # a record written to PostgreSQL during an outage still counts
            existing = self.fallback._get_record(data_record.idempotency_key)
        except IdempotencyItemNotFoundError:
            existing = None
        if existing is not None and not existing.is_expired:
            raise IdempotencyItemAlreadyExistsError
        self._call(self.primary._put_record, self.fallback._put_record, data_record)

    def _update_record(self, data_record: DataRecord) -> None:
        self._call(self.primary._update_record, self.fallback._update_record, data_record)

    def _delete_record(self, data_record: DataRecord) -> None:
        self._call(self.primary._delete_record, self.fallback._delete_record, data_record)


def _mark_replay(response: Any, record: DataRecord) -> Any:
    if isinstance(response, dict):
        response = {**response, "headers": {**response["headers"], IDEMPOTENT_REPLAYED: "true"}}
    return response


CONFIG = IdempotencyConfig(
    event_key_jmespath="[org, sub, route, key]",
    payload_validation_jmespath="body",
    expires_after_seconds=TTL_S,
    response_hook=_mark_replay,  # type: ignore[arg-type]
)


def _run(request: dict[str, Any], action: Callable[[], Result]) -> Result:
    return action()


class Idempotency:
    """Wraps a write so that retries with the same ``Idempotency-Key`` are safe."""

    def __init__(self, records: IdempotencyRecords, redis: SharedRedis, key_prefix: str) -> None:
        # the same client, seen through Powertools' protocol (types-redis's stubs
        # of the client type memoryview keys differently)
        primary = RedisPersistenceLayer(client=cast(RedisClientProtocol, redis.client))
        store = FallbackPersistenceLayer(primary, RecordsPersistenceLayer(records), redis)
        self._idempotent = idempotent_function(
            _run,
            data_keyword_argument="request",
            persistence_store=store,
            config=CONFIG,
            key_prefix=f"{key_prefix}idem",
        )

    def run(
        self,
        *,
        org: str,
        sub: str,
        route: str,
        key: str,
        body: Any,
        action: Callable[[], Result],
        context: Any = None,
    ) -> Result:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise BadRequest("Idempotency-Key must be 1 to 255 printable characters.")
        if context is not None:  # in-progress records then expire with the invocation
            CONFIG.register_lambda_context(context)
        request = {"org": org, "sub": sub, "route": route, "key": key, "body": body}
        scope = _ORG.set(org)  # the PostgreSQL records are written in this org's transactions
        try:
            result: Result = self._idempotent(request=request, action=action)
        except IdempotencyValidationError:
            raise ValidationFailed(
                "This Idempotency-Key was used with a different request body."
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress.",
                headers={"Retry-After": "1"},
            ) from None
        except IdempotencyPersistenceLayerError as exc:
            raise DependencyUnavailable("Idempotency records are unavailable.") from exc
        finally:
            _ORG.reset(scope)
        return result
