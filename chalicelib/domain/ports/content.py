"""The object store and the upload records of the content use cases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.content.uploads import ObjectInfo, StaleUpload, Upload


class BlobStore(Protocol):
    """The object store (S3) as the content use cases need it."""

    def presign_put(
        self, key: str, *, content_type: str, sha256_b64: str | None, size: int | None,
        expires_s: int,
    ) -> tuple[str, dict[str, str]]:  # fmt: skip
        """(URL, headers the client must send with the PUT)."""

    def presign_get(
        self, key: str, *, version_id: str | None, content_type: str, disposition: str,
        expires_s: int,
    ) -> str:  # fmt: skip
        ...

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo | None: ...

    def chunks(self, key: str, *, version_id: str | None, chunk_bytes: int) -> Iterator[bytes]:
        """The object's bytes, ``chunk_bytes`` at a time (nothing if it is gone)."""

    def delete(self, key: str, *, version_id: str | None = None) -> None: ...

    def ping(self) -> None:
        """Raises ``DependencyUnavailable`` when the store cannot be reached."""


class ContentRecords(Protocol):
    """Upload and extracted-text rows, inside the document transaction."""

    def add_upload(self, upload: Upload) -> None: ...

    def get_upload(self, upload_id: str, *, lock: bool = False) -> Upload | None: ...

    def finish_upload(
        self, upload_id: str, *, status: str, result: dict[str, Any] | None,
        object_version: str | None, object_etag: str | None,
    ) -> None:  # fmt: skip
        ...

    def put_text(
        self, doc_id: str, version: int, upload_id: str, text: str, truncated: bool
    ) -> None: ...


class StaleUploads(Protocol):
    def __call__(self, cutoff: datetime, limit: int) -> list[StaleUpload]:
        """Pending uploads of every org whose URL expired before ``cutoff`` (ids only)."""
