"""Access reviews as use cases: the org's effective access, and a review's attestation.

Admins only (403 otherwise), the caller's org only.  The review is read in
keyset pages (a sealed page token bound to the org, the endpoint and the
view), one statement each, so an org of any size is read a page at a time;
the CSV rendering (api/access_review.py) pages the same way.  An attestation
is stored append-only with its audit row in one transaction.  What counts
as effective access and as a stale grant: domain/access_review.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.access_review import Attestation, parse_attestation, parse_view
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.model import new_id
from chalicelib.domain.pagination import decode_token, encode_token, page_scope
from chalicelib.domain.ports.access_review import AccessReviewStore
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.retry import retry_transient
from chalicelib.settings_groups import AccessReviewSettings

ENDPOINT = "GET /access-review"


class AccessReviewService:
    """``GET /access-review`` and ``POST /access-review/attestations``."""

    def __init__(
        self,
        store: AccessReviewStore,
        *,
        page_secret: str,
        settings: AccessReviewSettings | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.page_secret = page_secret
        self.window = timedelta(days=(settings or AccessReviewSettings()).stale_days)
        self._clock = clock or (lambda: datetime.now(UTC))

    @retry_transient()
    def page(
        self, who: Principal, *, view: str | None, page_token: str | None, limit: int
    ) -> dict[str, Any]:
        """One page of the review: ``items``, ``next_page_token``, and the rules that
        frame it (the staleness window, what the role rule means)."""
        who.require("admin")
        chosen = parse_view(view)
        scope = page_scope(who.org, ENDPOINT, view=chosen)
        cursor = decode_token(page_token, self.page_secret, scope) or {}
        now = self._clock()
        token = None
        items: list[dict[str, Any]]
        if chosen == "documents":
            after = cursor.get("d", "")
            if not isinstance(after, str):
                raise BadRequest("page_token is not valid; use the next_page_token of a response.")
            docs = self.store.documents(who.org, after=after, limit=limit + 1)
            if len(docs) > limit:
                docs = docs[:limit]
                token = encode_token({"d": docs[-1].document}, self.page_secret, scope)
            items = [d.to_json(now, self.window) for d in docs]
        else:
            position = cursor.get("u", ["", ""])
            if not (isinstance(position, list) and len(position) == 2):
                raise BadRequest("page_token is not valid; use the next_page_token of a response.")
            rows = self.store.users(
                who.org, after=(str(position[0]), str(position[1])), limit=limit + 1
            )
            if len(rows) > limit:
                rows = rows[:limit]
                last = [rows[-1].user, rows[-1].document]
                token = encode_token({"u": last}, self.page_secret, scope)
            items = [r.to_json(now, self.window) for r in rows]
        return {
            "view": chosen,
            "stale_after_days": self.window.days,
            "items": items,
            "next_page_token": token,
        }

    @retry_transient()
    def attest(self, who: Principal, data: Any) -> dict[str, Any]:
        """Record a completed review (admin): stored append-only, audited."""
        who.require("admin")
        notes, revoked = parse_attestation(data)
        review = Attestation(new_id(), who.sub, self._clock(), notes, revoked)
        audit = AuditEntry(
            "access-review.attest",
            who.sub,
            request_id=who.request_id,
            details={"review": review.id, "revoked": len(revoked)},
        )
        return self.store.attest(who.org, review, audit).to_json()
