"""The views of the access review (docs/compliance.md, "Access reviews"): admins only.

``GET /access-review`` answers JSON, or CSV when the client accepts
``text/csv``: the same page as rows, a header line first, and the next page
in a ``Link: <...>; rel="next"`` header (a client follows it until there is
none: an org of any size is read a page at a time).  A cell that a
spreadsheet would run as a formula (``= + - @``, tab, carriage return) is
prefixed with ``'``: ids are chosen by users.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.access_review import ROLE_RULE
from chalicelib.domain.model import parse_limit

CSV = "text/csv"
DOCUMENT_COLUMNS = (
    "document", "visibility", "owner", "subject", "access", "via", "role", "granted_by",
    "granted_at", "last_activity", "stale",
)  # fmt: skip
USER_COLUMNS = (
    "user", "document", "visibility", "access", "via", "role", "granted_at", "last_activity",
    "stale",
)  # fmt: skip
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _wants_csv(accept: str | None) -> bool:
    media = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    return CSV in media and "application/json" not in media[: media.index(CSV)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _document_rows(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A document as lines: its role rule, its owner, each grant."""
    base = {"document": item["document"], "visibility": item["visibility"], "owner": item["owner"]}
    read_role, write_role = ROLE_RULE[item["visibility"]]
    if read_role != write_role:
        yield {**base, "subject": f"role:{read_role}", "access": "read", "via": "role"}
    yield {**base, "subject": f"role:{write_role}", "access": "write", "via": "role"}
    yield {**base, "subject": item["owner"], "access": "write", "via": "owner"}
    for g in item["grants"]:
        access = "write" if g["role"] == "writer" else "read"
        yield {**base, "subject": g["user"], "access": access, "via": "grant", **{
            k: g[k] for k in ("role", "granted_by", "granted_at", "last_activity", "stale")
        }}  # fmt: skip


def _csv(page: dict[str, Any]) -> str:
    out = io.StringIO()
    documents = page["view"] == "documents"
    columns = DOCUMENT_COLUMNS if documents else USER_COLUMNS
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in page["items"]:
        for row in _document_rows(item) if documents else [item]:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def access_review(call: Call) -> Response:
    """The org's effective access, by document or by user; JSON or CSV."""
    params = call.query
    limit = parse_limit(params.get("limit"), default=100, maximum=500)
    page = call.services.access_review.page(
        call.who, view=params.get("view"), page_token=params.get("page_token"), limit=limit
    )
    if not _wants_csv(call.header("Accept")):
        return json_response(page, headers=dict(NO_STORE))
    headers: dict[str, str | list[str]] = {**NO_STORE, "Content-Type": f"{CSV}; charset=utf-8"}
    if page["next_page_token"]:
        query = urlencode(
            {"view": page["view"], "limit": limit, "page_token": page["next_page_token"]}
        )
        headers["Link"] = f'</access-review?{query}>; rel="next"'
    return Response(body=_csv(page), status_code=200, headers=headers)


def attest(call: Call) -> Response:
    """Record a completed review (admin): 201 with its id, who and when."""
    call.who.require("admin")  # before the body is looked at: a 403, not a 422
    review = call.services.access_review.attest(call.who, call.json())
    return json_response(review, status=201, headers=dict(NO_STORE))
