"""The bucket whole objects are written to (audit exports, personal-data archives)."""

from __future__ import annotations

from typing import Protocol


class ArchiveStore(Protocol):
    """A bucket the service writes whole objects to (audit exports, personal-data
    archives)."""

    def put(self, key: str, data: bytes, *, content_type: str) -> str:
        """Store ``data`` (SHA-256 checked by the store); returns its hex SHA-256."""

    def exists(self, key: str) -> bool: ...

    def presign_get(self, key: str, *, filename: str, expires_s: int) -> str: ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes (small objects: manifests); None if there is none."""

    def keys(self, prefix: str) -> list[str]: ...
