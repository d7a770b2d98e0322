"""Views of large content: uploads go straight to S3, downloads come straight from it."""

from __future__ import annotations

import base64

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response, positive_int
from chalicelib.observability import count


def start_content_upload(call: Call, doc_id: str) -> Response:
    body = call.json(doc_id=doc_id)
    if_match = call.header("if-match")

    def start() -> Response:
        ticket = call.services.content.start_upload(call.who, doc_id, body, if_match=if_match)
        count("DocumentChanges")
        return json_response(ticket.to_json(), headers={"ETag": ticket.document.etag, **NO_STORE})

    key_body = {"doc": doc_id, "if_match": if_match, "body": body}
    return call.idempotent(
        "POST /documents/{id}/content",
        key_body,
        start,
        recheck=lambda: call.services.documents.recheck(call.who, doc_id, write=True),
    )


def _content_response(call: Call, doc_id: str, version: int | None) -> Response:
    """302 to a short-lived presigned GET; HEAD answers with the size and SHA-256 only."""
    download = call.services.content.download(call.who, doc_id, version)
    content = download.content
    headers: dict[str, str | list[str]] = {
        "X-Content-Size": str(content.get("size")),
        "X-Content-Sha256": str(content.get("sha256")),
        "X-Content-Type": str(content.get("content_type")),
        **NO_STORE,
    }
    sha = content.get("sha256")
    if isinstance(sha, str) and sha:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
    if call.request.method == "HEAD":
        return Response(body="", status_code=200, headers=headers)
    return Response(body="", status_code=302, headers={**headers, "Location": download.url})


def get_content(call: Call, doc_id: str) -> Response:
    return _content_response(call, doc_id, None)


def get_version_content(call: Call, doc_id: str, n: str) -> Response:
    return _content_response(call, doc_id, positive_int(n, "version"))
