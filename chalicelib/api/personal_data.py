"""Views of personal data (docs/compliance.md): the caller's data export and an
admin's erasure of a user."""

from __future__ import annotations

from urllib.parse import quote

from chalice.app import Response

from chalicelib.api.endpoint import NO_STORE, Call
from chalicelib.api.http import json_response
from chalicelib.domain.timestamps import iso_z


def start_export(call: Call) -> Response:
    """Start an export of everything about the caller: 202 and where to follow it."""
    job = call.services.personal_data.start_export(call.who)
    location = f"/me/export/{quote(job.id, safe='')}"
    body = {"id": job.id, "state": job.state, "created_at": iso_z(job.created_at),
            "status_url": location}  # fmt: skip
    return json_response(body, status=202, headers={"Location": location, **NO_STORE})


def export_status(call: Call, job_id: str) -> Response:
    """The export's state and, once ready, a short-lived download URL (requester only)."""
    status = call.services.personal_data.export_status(call.who, job_id)
    headers = dict(NO_STORE)
    if status["state"] == "pending":
        headers["Retry-After"] = "2"
    return json_response(status, headers=headers)


def erase_user(call: Call, user: str) -> Response:
    """Erase a user's personal data in the caller's org (admins only)."""
    call.who.require("admin")
    result = call.services.personal_data.erase(call.who, user, call.json())
    return json_response(result, headers=dict(NO_STORE))
