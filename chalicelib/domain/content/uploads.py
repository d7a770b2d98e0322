"""Uploads the service issued, and what the object store says of an object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None
    version_id: str | None
    content_type: str | None


@dataclass(frozen=True)
class Upload:
    """An upload the service issued (its row in ``content_uploads``)."""

    org: str
    doc_id: str
    upload_id: str
    key: str
    content_type: str
    sha256: str | None
    size: int | None
    filename: str | None
    max_bytes: int
    actor: str
    request_id: str | None
    created_at: datetime
    expires_at: datetime
    status: str = "pending"  # pending | ready | rejected | superseded | orphaned
    object_version: str | None = None
    object_etag: str | None = None
    result: dict[str, Any] | None = None


class StaleUpload(NamedTuple):
    org: str
    upload_id: str
    doc_id: str
