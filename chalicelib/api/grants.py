"""Views of document permissions: grants and visibility (service_layer/access.py).

``GET /documents/{id}/grants`` lists them, ``PUT``/``DELETE
/documents/{id}/grants/{user}`` add, change or remove one, ``PUT
/documents/{id}/visibility`` opens a document to its org or makes it private;
all for the document's owner or an admin (docs/security.md, "Document
permissions").  Each change is a new version of the document: the response
carries its ``ETag``.
"""

from __future__ import annotations

from chalice.app import Response

from chalicelib.api.documents import doc_headers
from chalicelib.api.endpoint import NO_STORE, REVALIDATE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.timestamps import iso_z
from chalicelib.observability import count


def list_grants(call: Call, doc_id: str) -> Response:
    doc, grants = call.services.access.list_grants(call.who, doc_id)
    listing = {
        "id": doc.id,
        "owner": doc.owner,
        "visibility": doc.visibility,
        "version": doc.version,
        "etag": doc.etag,
        "grants": [
            {
                "user": g.user,
                "role": g.role,
                "granted_by": g.granted_by,
                "granted_at": iso_z(g.granted_at),
            }
            for g in grants
        ],
    }
    return json_response(listing, headers={"ETag": doc.etag, **REVALIDATE})


def put_grant(call: Call, doc_id: str, user: str) -> Response:
    grantee = user  # path parameters arrive decoded
    doc = call.services.access.put_grant(call.who, doc_id, grantee, call.json())
    count("DocumentChanges")
    body = {"id": doc.id, "user": grantee, "role": doc.grants[grantee], "version": doc.version}
    return json_response(body, headers=doc_headers(doc.etag))


def delete_grant(call: Call, doc_id: str, user: str) -> Response:
    doc = call.services.access.delete_grant(call.who, doc_id, user)
    count("DocumentChanges")
    return Response(body="", status_code=204, headers={"ETag": doc.etag, **NO_STORE})


def put_visibility(call: Call, doc_id: str) -> Response:
    doc = call.services.access.set_visibility(
        call.who, doc_id, call.json(), if_match=call.header("if-match")
    )
    count("DocumentChanges")
    return json_response(doc.to_json(), headers=doc_headers(doc.etag))
