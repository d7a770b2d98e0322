"""Search use cases: ``POST /search`` and ``GET /changes``, reads scoped to the caller's org.

The index is kept in sync by service_layer/search_sync.py; every query this
builds filters on the caller's org (domain/search.py), and feed cursors are
sealed and bound to the org (domain/changes.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalicelib.domain.access import viewer_of
from chalicelib.domain.changes import FeedCursor, FeedRow, feed_sealer
from chalicelib.domain.ports.search import SearchIndex
from chalicelib.domain.ports.transaction import UnitOfWork
from chalicelib.domain.principal import Principal
from chalicelib.domain.search import (
    TOTAL_CHECKED,
    SearchRequest,
    build_query,
    candidate_ids,
    candidates_query,
    decode_page_token,
    parse_search_request,
    shape_results,
    without,
)
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.viewer import Viewer
from chalicelib.observability import milliseconds
from chalicelib.service_layer.pii_fields import PiiFields


class SearchService:
    """``POST /search`` and ``GET /changes``: reads, scoped to the caller's org."""

    def __init__(
        self,
        index: SearchIndex,
        uow: UnitOfWork,
        *,
        page_secret: str,
        personal_data: PiiFields | None = None,
    ) -> None:
        self.index = index
        self.pii = personal_data or PiiFields()  # filter.metadata: blind-index tokens
        self.uow = uow
        self.page_secret = page_secret
        self.sealer = feed_sealer(page_secret)  # feed cursors: sealed, bound to the org

    def search(self, who: Principal, data: Any) -> dict[str, Any]:
        """One page of hits, and figures that count only what ``who`` may read now.

        The index holds each document's ACL and filters on it (domain/access.py),
        but learns of an ACL change (or a delete) through the outbox, a moment
        after PostgreSQL: a document just made private may still match there.
        So every search asks the index for the ids of its first
        ``TOTAL_CHECKED`` matches, keeps those PostgreSQL says ``who`` may read
        (one query), and then asks for the page without the others.  ``total``
        is that readable count (exact, or a lower bound past ``TOTAL_CHECKED``);
        hits, sort values and the page token come from readable documents only.
        Every search does the same three calls, so the time of an answer does not
        depend on whether a hidden document matched."""
        who.require("reader")
        req = parse_search_request(data)
        after = decode_page_token(req, self.page_secret, who.org)
        wanted = req.filter.metadata
        blind = self.pii.blind_filter(who.org, wanted) if wanted else None
        page = build_query(who.org, req, after, blind, viewer=viewer_of(who))
        started = time.perf_counter()
        try:
            return self._readable_page(who, req, page)
        finally:
            milliseconds("SearchLatency", (time.perf_counter() - started) * 1000)

    def _readable_page(
        self, who: Principal, req: SearchRequest, page: dict[str, Any]
    ) -> dict[str, Any]:
        viewer = viewer_of(who)
        candidates = candidate_ids(self.index.search(candidates_query(page)))
        exact = len(candidates) <= TOTAL_CHECKED
        checked = candidates[:TOTAL_CHECKED]
        # the same query when nothing matched: an empty answer takes no less time
        # when what matched was hidden ("" is no document's id)
        readable = self.uow.readable_ids(who.org, viewer, checked or [""])
        raw = self.index.search(without(page, [i for i in checked if i not in readable]))
        result = shape_results(
            raw, req, self.page_secret, who.org, total=len(readable), exact=exact
        )
        unchecked = [h["id"] for h in result["hits"] if h["id"] not in readable]
        if unchecked:  # past the checked matches (or indexed a moment ago): one more query
            allowed = self.uow.readable_ids(who.org, viewer, unchecked)
            result["hits"] = [h for h in result["hits"] if h["id"] in readable | allowed]
        return result

    def changes(
        self,
        who: Principal,
        *,
        since: str | None,
        limit: int,
        longpoll_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        who.require("reader")
        cursor = None if since == "now" else FeedCursor.parse(since, who.org, self.sealer)
        viewer = viewer_of(who)  # changes of documents the caller may not read are left out
        rows, nxt = self._changes(who.org, cursor, limit, viewer)
        deadline = time.monotonic() + longpoll_s
        while not rows and time.monotonic() < deadline:
            sleep(0.25)
            rows, nxt = self._changes(who.org, nxt, limit, viewer)
        return {
            "changes": [
                {
                    # the change's own position, sealed: resuming from it gives the
                    # changes after it (global txid/seq never reach a client)
                    "seq": FeedCursor(r.txid, r.seq).encode(who.org, self.sealer),
                    "id": r.doc_id,
                    "version": r.version,
                    "deleted": r.op != "upsert",
                    "at": iso_z(r.created_at),
                }
                for r in rows
            ],
            "next": nxt.encode(who.org, self.sealer),
        }

    def _changes(
        self, org: str, since: FeedCursor | None, limit: int, viewer: Viewer
    ) -> tuple[list[FeedRow], FeedCursor]:
        with self.uow.transaction(org) as tx:
            return tx.change_feed.changes(since, limit, viewer=viewer)
