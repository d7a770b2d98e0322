"""OpenSearch adapter (opensearch-py): one client per process, created on first use.

Lambda-grade: ``opensearchpy`` is imported lazily (it pulls in a lot; the API
Lambda only pays for it on its first search), the client keeps its HTTP
connection pool across invocations, and with ``DOCS_OPENSEARCH_SIGV4`` every
request is signed with the function's IAM credentials (Amazon OpenSearch
Service).  Locally the same code talks to an OpenSearch-compatible in-memory
server.

Indexes are ``{alias}-v{N}`` behind the alias; writes are bulk requests with
``version_type=external`` (the document version), so a replayed or reordered
write can never move a document backwards: OpenSearch answers 409, which the
sync treats as "already newer", and deletes leave a versioned tombstone.

OpenSearch's own error text (exception types, Lucene and Java messages) never
reaches a client: it is logged here, and the caller gets a generic problem.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from chalicelib.config import Settings
from chalicelib.domain.errors import BadRequest, SearchUnavailable
from chalicelib.domain.search_index import ItemResult, SearchDocument, index_body
from chalicelib.observability import logger, tracer

SEARCH_REFUSED = "The search could not be run; check q, or start again without a page_token."


class OpenSearchIndex:
    """Implements ``SearchIndex`` (plus reads for tests and checks: ``get``, ``all_documents``)."""

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self.alias = settings.search_alias
        self._client = client
        self._lock = threading.Lock()
        self._name = re.compile(rf"^{re.escape(self.alias)}-v(\d+)$")

    # -- client ------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        from opensearchpy import OpenSearch, RequestsHttpConnection, Urllib3HttpConnection

        url = self.settings.opensearch_url
        if not url:
            raise SearchUnavailable("Search is not configured (OPENSEARCH_URL is unset).")
        parsed = urlparse(url)
        kwargs: dict[str, Any] = {
            "hosts": [url],
            "timeout": self.settings.opensearch_timeout_s,
            "max_retries": 0,  # the sync retries rows with backoff; a search fails fast
            "retry_on_timeout": False,
            "pool_maxsize": 4,
            "use_ssl": parsed.scheme == "https",
            "verify_certs": parsed.scheme == "https",
            "connection_class": Urllib3HttpConnection,
        }
        if self.settings.opensearch_sigv4:
            import boto3
            from opensearchpy import AWSV4SignerAuth

            credentials = boto3.Session().get_credentials()
            kwargs["http_auth"] = AWSV4SignerAuth(credentials, self.settings.aws_region, "es")
            kwargs["connection_class"] = RequestsHttpConnection
        return OpenSearch(**kwargs)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call; transport failures become ``SearchUnavailable``."""
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        try:
            return fn(*args, **kwargs)
        except OsConnectionError as exc:
            logger.warning("opensearch unreachable", error=str(exc)[:500])
            raise SearchUnavailable() from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if status >= 500 or status in (0, 429):
                logger.warning("opensearch failed", status=status, reason=_reason(exc.info))
                raise SearchUnavailable() from exc
            raise

    # -- health ------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    # -- indexes and the alias ------------------------------------------------------
    def live_index(self) -> str | None:
        """The index the alias points at (None before the first index exists)."""
        from opensearchpy.exceptions import NotFoundError

        try:
            found = self._call(self.client.indices.get_alias, name=self.alias)
        except NotFoundError:
            return None
        names = sorted(found)
        return names[-1] if names else None

    def versioned_indexes(self) -> list[str]:
        from opensearchpy.exceptions import NotFoundError

        try:
            found = self._call(self.client.indices.get, index=f"{self.alias}-v*")
        except NotFoundError:
            return []
        return sorted((n for n in found if self._name.match(n)), key=self._number)

    def _number(self, name: str) -> int:
        match = self._name.match(name)
        return int(match.group(1)) if match else 0

    def schema_version(self, name: str) -> int:
        """The ``_meta.schema`` of an index's mapping (1: none, the first schema)."""
        found = self._call(self.client.indices.get_mapping, index=name)
        meta = (found.get(name) or {}).get("mappings", {}).get("_meta") or {}
        schema = meta.get("schema", 1)
        return schema if isinstance(schema, int) and not isinstance(schema, bool) else 1

    def next_index_name(self) -> str:
        existing = self.versioned_indexes()
        return f"{self.alias}-v{self._number(existing[-1]) + 1 if existing else 1}"

    def create_index(self, name: str) -> None:
        from opensearchpy.exceptions import RequestError

        body = index_body(self.settings.search_shards, self.settings.search_replicas)
        try:
            self._call(self.client.indices.create, index=name, body=body)
        except RequestError as exc:
            if "already_exists" not in str(exc.error):
                raise

    def ensure(self) -> str:
        """The live index; creates ``{alias}-v1`` and the alias when there is none."""
        live = self.live_index()
        if live is not None:
            return live
        name = self.next_index_name()
        self.create_index(name)
        self.swap_alias(None, name)
        return name

    def swap_alias(self, old: str | None, new: str) -> None:
        """Point the alias at ``new`` in one atomic ``_aliases`` request."""
        actions: list[dict[str, Any]] = []
        if old is not None:
            actions.append({"remove": {"index": old, "alias": self.alias}})
        actions.append({"add": {"index": new, "alias": self.alias, "is_write_index": True}})
        self._call(self.client.indices.update_aliases, body={"actions": actions})

    def drop_index(self, name: str) -> None:
        from opensearchpy.exceptions import NotFoundError

        with contextlib.suppress(NotFoundError):
            self._call(self.client.indices.delete, index=name)

    def refresh(self, index: str | None = None) -> None:
        self._call(self.client.indices.refresh, index=index or self.alias)

    # -- writes ------------------------------------------------------------------
    @tracer.capture_method(capture_response=False)
    def write(self, docs: Iterable[SearchDocument], indexes: list[str]) -> list[ItemResult]:
        """Index or delete each document in each index, external-versioned.

        Transport failures raise ``SearchUnavailable`` (nothing is known to be
        applied; the caller retries the whole batch).  Per-document failures are
        returned: 429/5xx items are retryable, others (a mapping conflict, say)
        are not and will end in the dead-letter table.
        """
        from opensearchpy import helpers
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        docs = list(docs)
        results: list[ItemResult] = []
        for index in indexes:
            actions = list(_actions(docs, index))
            if not actions:
                continue
            try:
                for ok, item in helpers.streaming_bulk(
                    self.client,
                    actions,
                    chunk_size=1000,
                    max_chunk_bytes=self.settings.search_bulk_max_bytes,
                    raise_on_error=False,
                    raise_on_exception=True,
                    max_retries=0,
                    # through the alias, never auto-create an index named like it
                    require_alias=index == self.alias,
                ):
                    results.append(_item_result(ok, item))
            except (OsConnectionError, TransportError) as exc:
                raise SearchUnavailable() from exc
        return results

    # -- reads ------------------------------------------------------------------
    @tracer.capture_method(capture_response=False)
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """One page; a refused query is a generic 400, any other failure a generic
        503 (OpenSearch's text is logged, never returned)."""
        from opensearchpy.exceptions import NotFoundError, TransportError

        try:
            result: dict[str, Any] = self._call(self.client.search, index=self.alias, body=body)
        except NotFoundError:  # nothing indexed yet
            return {"hits": {"hits": [], "total": {"value": 0, "relation": "eq"}}}
        except TransportError as exc:  # 4xx other than 404 and 429 (see _call)
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            logger.warning("search refused by opensearch", status=status, reason=_reason(exc.info))
            if status == 400:  # lenient queries make this rare; still not a 500
                raise BadRequest(SEARCH_REFUSED) from None
            raise SearchUnavailable() from None  # 401/403 (credentials), 409, ...
        return result

    def get(self, index_id: str, index: str | None = None) -> dict[str, Any] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            found: dict[str, Any] = self._call(
                self.client.get, index=index or self.alias, id=index_id
            )
        except NotFoundError:
            return None
        return found

    def all_documents(self, index: str | None = None) -> dict[str, tuple[int, dict[str, Any]]]:
        """index id → (version, source) of every document (tests and checks)."""
        out: dict[str, tuple[int, dict[str, Any]]] = {}
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": {"match_all": {}},
                "size": 1000,
                "version": True,
                "sort": [{"org": "asc"}, {"id": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            page = self._call(self.client.search, index=index or self.alias, body=body)
            hits = page["hits"]["hits"]
            for hit in hits:
                out[hit["_id"]] = (int(hit.get("_version", 0)), hit["_source"])
            if len(hits) < 1000:
                return out
            after = hits[-1]["sort"]


def _actions(docs: Iterable[SearchDocument], index: str) -> Iterator[dict[str, Any]]:
    for doc in docs:
        action: dict[str, Any] = {
            "_index": index,
            "_id": doc.index_id,
            "version": doc.version,
            "version_type": "external",
        }
        if doc.source is None:
            action["_op_type"] = "delete"
        else:
            action["_op_type"] = "index"
            action["_source"] = doc.source
        yield action


def _item_result(ok: bool, item: dict[str, Any]) -> ItemResult:
    op, info = next(iter(item.items()))
    index, index_id = str(info.get("_index")), str(info.get("_id"))
    status = int(info.get("status", 0))
    missing_index = "index_not_found" in str(info.get("error"))
    if ok or status == 409 or (op == "delete" and status == 404 and not missing_index):
        # 409: the index already holds this version or a newer one; 404 on a
        # delete: nothing to delete (the versioned tombstone is recorded anyway)
        return ItemResult(index, index_id, ok=True)
    reason = _reason(info.get("error"))
    if missing_index:
        logger.warning("search index missing", index=index, reason=reason)
        raise SearchUnavailable("The search index is missing.")
    return ItemResult(
        index, index_id, ok=False, retryable=status == 429 or status >= 500, reason=reason
    )


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        inner = error.get("error", error)
        if isinstance(inner, dict):
            return f"{inner.get('type', 'error')}: {inner.get('reason', '')}"[:1000]
    return str(error)[:1000]
