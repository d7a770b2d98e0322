"""Views of documents and their versions: parse, call DocumentService, shape the response."""

from __future__ import annotations

from typing import Any

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, REVALIDATE, Call
from chalicelib.api.http import json_response, media_type, positive_int
from chalicelib.api.problems import problem_of
from chalicelib.domain.model import idempotent_id, parse_limit
from chalicelib.domain.patching import PATCH_MEDIA_TYPES
from chalicelib.observability import count
from chalicelib.service_layer.documents import BatchItem

ACCEPT_PATCH = ", ".join(PATCH_MEDIA_TYPES)


def doc_headers(
    etag: str, *, cache: str | None = None, location: str | None = None
) -> dict[str, str]:
    headers = {"ETag": etag, **REVALIDATE}
    if cache:
        headers["X-Cache"] = cache
    if location:
        headers["Location"] = location
    return headers


def create_document(call: Call) -> Response:
    who, body = call.who, call.json()
    key = call.header("idempotency-key")

    def create() -> Response:
        # with a key, the id comes from it: a retry after an unknown commit outcome
        # (a 503 while committing) finds the first attempt's document
        doc_id = idempotent_id(who.org, who.sub, key) if key else None
        doc = call.services.documents.create(who, body, doc_id=doc_id, replay=bool(key))
        count("DocumentChanges")
        return json_response(
            doc.to_json(),
            status=201,
            headers=doc_headers(doc.etag, location=f"/documents/{doc.id}"),
        )

    def recheck() -> None:  # a replay answers with the document: may the caller read it now?
        assert key is not None
        call.services.documents.recheck(who, idempotent_id(who.org, who.sub, key), write=False)

    return call.idempotent("POST /documents", body, create, recheck=recheck)


def create_documents_batch(call: Call) -> Response:
    """Up to 100 documents; each succeeds or fails on its own (bulkhead pool)."""
    body = call.json()
    items = body.get("documents") if isinstance(body, dict) else None

    def create_all() -> Response:
        outcomes = call.services.bulk_documents.create_many(call.who, items)
        results = [_batch_result(r) for r in outcomes]
        created = sum(1 for r in results if r["status"] == 201)
        count("DocumentChanges", created)
        return json_response({"results": results}, status=207 if created < len(results) else 200)

    return call.idempotent("POST /documents:batch", body, create_all)


def _batch_result(item: BatchItem) -> dict[str, Any]:
    """One item's entry of the batch answer: 201 and the document, or its problem."""
    if item.document is not None:
        doc = item.document
        return {
            "index": item.index,
            "status": 201,
            "id": doc.id,
            "version": doc.version,
            "etag": doc.etag,
        }
    assert item.error is not None
    kind = problem_of(item.error)
    error = {"title": kind.title, "detail": item.error.detail, "errors": item.error.errors}
    return {"index": item.index, "status": kind.status, "error": error}


def list_documents(call: Call) -> Response:
    params = call.query
    page, cache = call.services.documents.list_documents(
        call.who,
        limit=parse_limit(params.get("limit")),
        page_token=params.get("page_token"),
        tag=params.get("tag"),
    )
    return json_response(page, headers={"X-Cache": cache, **REVALIDATE})


def get_document(call: Call, doc_id: str) -> Response:
    rendered = call.services.documents.get(
        call.who, doc_id, if_none_match=call.header("if-none-match")
    )
    count("CacheHits" if rendered.cache == "hit" else "CacheMisses")
    headers = {**doc_headers(rendered.etag, cache=rendered.cache), "Accept-Patch": ACCEPT_PATCH}
    if rendered.not_modified:
        return Response(body="", status_code=304, headers=dict(headers))
    return json_response(rendered.body, headers=headers)


def put_document(call: Call, doc_id: str) -> Response:
    doc, created = call.services.documents.put(
        call.who,
        doc_id,
        call.json(doc_id=doc_id),
        if_match=call.header("if-match"),
        if_none_match=call.header("if-none-match"),
    )
    count("DocumentChanges")
    return json_response(
        doc.to_json(),
        status=201 if created else 200,
        headers=doc_headers(doc.etag, location=f"/documents/{doc.id}" if created else None),
    )


def _change(call: Call, doc_id: str, mtype: str, patch: Any) -> Response:
    doc = call.services.documents.change(
        call.who, doc_id, mtype, patch, if_match=call.header("if-match")
    )
    count("DocumentChanges")
    return json_response(doc.to_json(), headers=doc_headers(doc.etag))


def _patch_input(call: Call, doc_id: str) -> tuple[str, Any]:
    return media_type(call.request), call.json(PATCH_MEDIA_TYPES, doc_id=doc_id)


def post_changes(call: Call, doc_id: str) -> Response:
    mtype, patch = _patch_input(call, doc_id)
    body = {"doc": doc_id, "type": mtype, "if_match": call.header("if-match"), "patch": patch}
    return call.idempotent(
        "POST /documents/{id}/changes",
        body,
        lambda: _change(call, doc_id, mtype, patch),
        recheck=lambda: call.services.documents.recheck(call.who, doc_id, write=True),
    )


def patch_document(call: Call, doc_id: str) -> Response:
    mtype, patch = _patch_input(call, doc_id)
    response = _change(call, doc_id, mtype, patch)
    response.headers["Accept-Patch"] = ACCEPT_PATCH
    return response


def delete_document(call: Call, doc_id: str) -> Response:
    call.services.documents.delete(call.who, doc_id, if_match=call.header("if-match"))
    count("DocumentChanges")
    return Response(body="", status_code=204, headers=dict(NO_STORE))


def restore_document(call: Call, doc_id: str) -> Response:
    doc = call.services.documents.restore(call.who, doc_id)
    return json_response(doc.to_json(), headers=doc_headers(doc.etag))


def list_versions(call: Call, doc_id: str) -> Response:
    params = call.query
    page = call.services.documents.list_versions(
        call.who, doc_id, limit=parse_limit(params.get("limit")),
        page_token=params.get("page_token"),
    )  # fmt: skip
    return json_response(
        {"items": page.items, "next_page_token": page.next_page_token}, headers=REVALIDATE
    )


def get_version(call: Call, doc_id: str, n: str) -> Response:
    version = call.services.documents.get_version(call.who, doc_id, positive_int(n, "version"))
    # an old version never changes: it may be cached by the client for long
    return json_response(
        version,
        headers={"ETag": version["etag"], "Cache-Control": "private, max-age=86400, immutable"},
    )


def restore_version(call: Call, doc_id: str, n: str) -> Response:
    doc = call.services.documents.restore_version(
        call.who, doc_id, positive_int(n, "version"), if_match=call.header("if-match")
    )
    count("DocumentChanges")
    return json_response(doc.to_json(), headers=doc_headers(doc.etag))
